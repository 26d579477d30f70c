//! Which destination refused a datagram: the ICMP errors of an unconnected socket, on Linux.
//!
//! A datagram sent to a port where nothing listens draws an ICMP port unreachable. An
//! unconnected socket hears of it only with `IP_RECVERR` (`IPV6_RECVERR`) set: the error then
//! waits in the socket's error queue with the original destination, read with
//! `recvmsg(MSG_ERRQUEUE)`. The driver hands each refused destination to
//! [`Machine::refused`](crate::Machine::refused), so the messages of a peer that went away are
//! reported at once rather than after the retransmissions. ICMP is a hint (it can be filtered
//! or rate-limited): the retransmission limit stays the rule, and on other systems the only one.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;

/// Asks the kernel to queue ICMP errors on `socket` (a no-op where unsupported).
pub(crate) fn enable(socket: &UdpSocket) -> io::Result<()> {
    imp::enable(socket)
}

/// Drains the socket's error queue; returns the destinations that refused a datagram (port
/// unreachable). Other errors (e.g. host unreachable) are left to the retransmissions.
pub(crate) fn refused_destinations(socket: &UdpSocket) -> io::Result<Vec<SocketAddr>> {
    imp::refused_destinations(socket)
}

/// C socket addresses, shared with the batched send and receive of the `batch` module.
#[cfg(target_os = "linux")]
pub(crate) use imp::{to_sockaddr, to_socket_addr};

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::mem::{size_of, size_of_val, MaybeUninit};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    use mio::net::UdpSocket;

    pub(super) fn enable(socket: &UdpSocket) -> io::Result<()> {
        let (level, name) = match socket.local_addr()? {
            SocketAddr::V4(_) => (libc::SOL_IP, libc::IP_RECVERR),
            SocketAddr::V6(_) => (libc::SOL_IPV6, libc::IPV6_RECVERR),
        };
        let on: libc::c_int = 1;
        // SAFETY: `on` is a live c_int and its exact size is passed; the fd is open for the
        // duration of the call because `socket` is borrowed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub(super) fn refused_destinations(socket: &UdpSocket) -> io::Result<Vec<SocketAddr>> {
        let mut refused = Vec::new();
        loop {
            let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
            // The original datagram's payload comes back as data: only its start is read.
            let mut data = [0u8; 16];
            let mut iov = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            // u64 elements keep the control buffer aligned for `cmsghdr`.
            let mut control = [0u64; 64];
            // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = name.as_mut_ptr().cast();
            msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control) as _;
            // SAFETY: every pointer in `msg` points into a local buffer that outlives the
            // call, with its true length; the kernel writes at most those lengths.
            let n = unsafe {
                libc::recvmsg(
                    socket.as_raw_fd(),
                    &mut msg,
                    libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(refused),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            if !is_port_unreachable(&msg) {
                continue;
            }
            // SAFETY: the kernel initialised `msg_namelen` bytes of `name` (the zeroed rest
            // is initialised too).
            let name = unsafe { name.assume_init() };
            if let Some(addr) = to_socket_addr(&name, msg.msg_namelen) {
                refused.push(addr);
            }
        }
    }

    /// True when the message's extended error says the destination port refused.
    fn is_port_unreachable(msg: &libc::msghdr) -> bool {
        let mut found = false;
        // SAFETY: `msg` was filled by a successful recvmsg; the CMSG_* walkers stay within
        // `msg_controllen`, and `sock_extended_err` is read unaligned from a cmsg of exactly
        // that type.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(msg);
            while !cmsg.is_null() {
                let hdr = &*cmsg;
                let is_recverr = (hdr.cmsg_level == libc::SOL_IP
                    && hdr.cmsg_type == libc::IP_RECVERR)
                    || (hdr.cmsg_level == libc::SOL_IPV6 && hdr.cmsg_type == libc::IPV6_RECVERR);
                if is_recverr {
                    let err: libc::sock_extended_err =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    found |= err.ee_errno == libc::ECONNREFUSED as u32;
                }
                cmsg = libc::CMSG_NXTHDR(msg, cmsg);
            }
        }
        found
    }

    /// Writes `addr` as a C socket address into `name`; returns its length.
    pub(crate) fn to_sockaddr(
        addr: SocketAddr,
        name: &mut MaybeUninit<libc::sockaddr_storage>,
    ) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: an all-zero sockaddr_in is a valid value.
                let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                // SAFETY: sockaddr_storage is larger than sockaddr_in and aligned for it.
                unsafe { name.as_mut_ptr().cast::<libc::sockaddr_in>().write(sin) };
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                // SAFETY: an all-zero sockaddr_in6 is a valid value.
                let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_scope_id = a.scope_id();
                // SAFETY: sockaddr_storage is larger than sockaddr_in6 and aligned for it.
                unsafe { name.as_mut_ptr().cast::<libc::sockaddr_in6>().write(sin6) };
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// The address in `name`, of which the kernel wrote `len` bytes (`None`: not IPv4 or
    /// IPv6).
    pub(crate) fn to_socket_addr(
        name: &libc::sockaddr_storage,
        len: libc::socklen_t,
    ) -> Option<SocketAddr> {
        let len = len as usize;
        match libc::c_int::from(name.ss_family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, and it is as long.
                let sin: libc::sockaddr_in = unsafe {
                    std::ptr::read_unaligned((name as *const libc::sockaddr_storage).cast())
                };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says the storage holds a sockaddr_in6, and it is as long.
                let sin6: libc::sockaddr_in6 = unsafe {
                    std::ptr::read_unaligned((name as *const libc::sockaddr_storage).cast())
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    // Peers are known by address, port and scope; the flow label is no part
                    // of who they are.
                    0,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::net::SocketAddr;

    use mio::net::UdpSocket;

    pub(super) fn enable(_socket: &UdpSocket) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn refused_destinations(_socket: &UdpSocket) -> io::Result<Vec<SocketAddr>> {
        Ok(Vec::new())
    }
}
