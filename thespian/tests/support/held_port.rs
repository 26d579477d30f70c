//! A TCP port where nothing listens, held for a test's duration: for tests that check what
//! happens when nothing listens at an address, without probing a port, dropping it and
//! hoping nobody takes it before it is used. Shared by `admin_port.rs` and, through
//! `#[path]`, the `thespian` command's live tests (crates' test targets share no library).

/// A TCP port of 127.0.0.1 where nothing listens, held until the socket returned is dropped:
/// the socket is bound there with `SO_REUSEADDR` and never listens. The OS gives the port to
/// no port-0 bind meanwhile, and a listener's bind (which sets `SO_REUSEADDR` too) still
/// succeeds there, as on a free port, which is how an attach finds that nothing listens.
pub(crate) fn held_tcp_port() -> (std::os::fd::OwnedFd, u16) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` is a descriptor socket(2) just returned, owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    // SAFETY: a live socket, and an option value of the size passed.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            std::ptr::from_ref(&one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_REUSEADDR: {}", std::io::Error::last_os_error());
    // SAFETY: `sockaddr_in` is plain old data; all zeroes is a valid value.
    let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    address.sin_family = libc::AF_INET as libc::sa_family_t;
    address.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let mut length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a live socket and a `sockaddr_in` of the length passed.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            std::ptr::from_ref(&address).cast(),
            length,
        )
    };
    assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
    // SAFETY: a live socket, and a `sockaddr_in` and its length, both writable, to fill.
    let named = unsafe {
        libc::getsockname(
            socket.as_raw_fd(),
            std::ptr::from_mut(&mut address).cast(),
            &mut length,
        )
    };
    assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
    (socket, u16::from_be(address.sin_port))
}
