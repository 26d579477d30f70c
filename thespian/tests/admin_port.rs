//! The API a tool attaching to a system uses: `admin_port()`, attach-only starts, and the
//! admin's run-time log level, on the bases that have no admin daemon and on a port where
//! nothing listens. (A system on a port the OS chose, and the log level of a live admin, are
//! exercised by `thespian-cli`'s tests.)

use std::time::Duration;

use thespian::prelude::*;
use thespian::{keys, ThespianError};

thespian::test_entry_point!();

#[test]
fn in_process_bases_have_no_admin_port_and_no_admin_log_level() {
    for base in [SystemBase::Simple, SystemBase::Queue] {
        let sys = ActorSystem::builder()
            .base(base)
            .transient_unique(true)
            .start()
            .expect("starts");
        assert_eq!(sys.admin_port(), None);
        assert!(matches!(
            sys.set_admin_log_level("debug"),
            Err(ThespianError::NotSupported { .. })
        ));
        let status = sys.status(Duration::from_secs(5)).expect("a status");
        assert_eq!(status.processes, 1);
        assert_eq!(
            sys.global_actor("nobody", Duration::from_secs(5)).ok(),
            Some(None)
        );
        sys.shutdown().expect("shut down");
    }
}

#[test]
fn attach_only_fails_clearly_where_nothing_listens() {
    // TCP: a port held for the whole test where nothing listens. UDP: a socket there would be
    // a listener, so the port is one the OS found free just before (another port-0 bind could
    // take it in between: the window is this loop's few instructions).
    let (held, tcp_port) = held_tcp_port();
    for base in [SystemBase::Tcp, SystemBase::Udp] {
        let port = match base {
            SystemBase::Udp => std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .expect("a free port")
                .port(),
            _ => tcp_port,
        };
        let error = ActorSystem::builder()
            .base(base)
            .capability(keys::ADMIN_PORT, i64::from(port))
            .attach_only(true)
            .transient_unique(true)
            .test_entry_point()
            .start()
            .expect_err("nothing to attach to");
        assert!(
            matches!(&error, ThespianError::StartupFailure(text) if text.contains("nothing listens")),
            "{error}"
        );
    }
    drop(held);
    let error = ActorSystem::builder()
        .base(SystemBase::Tcp)
        .capability(keys::ADMIN_PORT, 0i64)
        .attach_only(true)
        .transient_unique(true)
        .test_entry_point()
        .start()
        .expect_err("port 0 names no system");
    assert!(
        error.to_string().contains("names no running system"),
        "{error}"
    );
}

/// A TCP port of 127.0.0.1 where nothing listens, held until the socket returned is dropped:
/// the socket is bound there with `SO_REUSEADDR` and never listens. The OS gives the port to
/// no port-0 bind meanwhile, and a listener's bind (which sets `SO_REUSEADDR` too) still
/// succeeds there, as on a free port, which is how an attach finds that nothing listens.
fn held_tcp_port() -> (std::os::fd::OwnedFd, u16) {
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
