//! Several datagrams per system call: `sendmmsg` and `recvmmsg` on Linux, one call per
//! datagram elsewhere.
//!
//! This module exists because a system call per datagram is a large part of what a small
//! message costs the driver: it sends everything the machine has to transmit in one call and
//! reads every datagram waiting (up to [`RECV_BATCH`]) in one. A read that returns fewer
//! datagrams than it asked for found the socket empty, so the driver skips the extra call
//! that would only say `EAGAIN` (the socket is edge-triggered: whatever arrives later raises
//! a new readiness event).
//!
//! Errors follow `sendmmsg`: a call fails only when its *first* datagram fails; a failure
//! later in a batch ends the batch early (the count says where), and the next call meets it
//! again or goes on. An ICMP error that stopped a batch leaves its destination in the error
//! queue, so the driver still learns which peer refused (the private `icmp` module).

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;

/// Most datagrams handed to one send call.
pub(crate) const SEND_BATCH: usize = 64;
/// Most datagrams read in one receive call.
pub(crate) const RECV_BATCH: usize = 32;
/// One receive slot: larger than any UDP datagram over IPv4 or IPv6 (without jumbograms),
/// so nothing is truncated.
const SLOT: usize = 65_536;

/// Sends the first datagrams of `datagrams` (at most [`SEND_BATCH`]) in order; returns how
/// many the socket took (at least one; fewer than offered when the socket filled up or a
/// datagram failed), or the error of the first one (`WouldBlock` when the socket is full).
pub(crate) fn send(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
    imp::send(socket, datagrams)
}

/// Where [`recv`] puts datagrams: [`RECV_BATCH`] slots of 64 KiB (allocated zeroed, so the
/// pages of a slot are only backed once a datagram that long was read into it).
pub(crate) struct RecvBuffers {
    data: Vec<u8>,
    /// Per slot filled by the last [`recv`]: the datagram's length and sender (`None`: not
    /// an IP sender, nothing a peer sends; skipped).
    received: Vec<(usize, Option<SocketAddr>)>,
}

impl RecvBuffers {
    pub(crate) fn new() -> RecvBuffers {
        RecvBuffers {
            data: vec![0; RECV_BATCH * SLOT],
            received: Vec::with_capacity(RECV_BATCH),
        }
    }

    /// The `i`-th datagram read by the last [`recv`]: its sender and bytes.
    pub(crate) fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        let (len, from) = self.received[i];
        Some((from?, &self.data[i * SLOT..i * SLOT + len]))
    }
}

/// Reads up to [`RECV_BATCH`] waiting datagrams into `buffers`; returns how many (at least
/// one; fewer than [`RECV_BATCH`] when the socket had no more), or the error (`WouldBlock`
/// when nothing waits).
pub(crate) fn recv(socket: &UdpSocket, buffers: &mut RecvBuffers) -> io::Result<usize> {
    buffers.received.clear();
    imp::recv(socket, buffers)?;
    Ok(buffers.received.len())
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::mem::{size_of, MaybeUninit};
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use mio::net::UdpSocket;

    use super::{RecvBuffers, RECV_BATCH, SEND_BATCH, SLOT};
    use crate::icmp::{to_sockaddr, to_socket_addr};

    pub(super) fn send(
        socket: &UdpSocket,
        datagrams: &[(SocketAddr, Vec<u8>)],
    ) -> io::Result<usize> {
        let n = datagrams.len().min(SEND_BATCH);
        if n == 0 {
            return Ok(0);
        }
        let mut names = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; SEND_BATCH];
        let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; SEND_BATCH];
        let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; SEND_BATCH];
        for (i, (to, bytes)) in datagrams[..n].iter().enumerate() {
            let name_len = to_sockaddr(*to, &mut names[i]);
            iovs[i].write(libc::iovec {
                // The kernel only reads through it (sendmmsg).
                iov_base: bytes.as_ptr().cast_mut().cast(),
                iov_len: bytes.len(),
            });
            // SAFETY: an all-zero mmsghdr is a valid value (null pointers, zero lengths).
            let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
            hdr.msg_hdr.msg_name = names[i].as_mut_ptr().cast();
            hdr.msg_hdr.msg_namelen = name_len;
            hdr.msg_hdr.msg_iov = iovs[i].as_mut_ptr();
            hdr.msg_hdr.msg_iovlen = 1;
            hdrs[i].write(hdr);
        }
        // SAFETY: the first `n` headers are initialised and point into `names` (each
        // initialised for its `msg_namelen` bytes), `iovs` and the datagrams' bytes, all of
        // which outlive the call; the kernel reads those and writes only `msg_len`.
        let rc = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr().cast(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }

    pub(super) fn recv(socket: &UdpSocket, buffers: &mut RecvBuffers) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_storage is a valid value (family AF_UNSPEC).
        let mut names: [libc::sockaddr_storage; RECV_BATCH] = unsafe { std::mem::zeroed() };
        let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; RECV_BATCH];
        let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; RECV_BATCH];
        for (i, slot) in buffers.data.chunks_exact_mut(SLOT).enumerate() {
            iovs[i].write(libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            });
            // SAFETY: an all-zero mmsghdr is a valid value (null pointers, zero lengths).
            let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
            hdr.msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = iovs[i].as_mut_ptr();
            hdr.msg_hdr.msg_iovlen = 1;
            hdrs[i].write(hdr);
        }
        // SAFETY: all RECV_BATCH headers are initialised and point into `names`, `iovs` and
        // the slots of `buffers.data`, with their true lengths, all of which outlive the call;
        // the kernel writes at most those lengths.
        let rc = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr().cast(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        for i in 0..rc as usize {
            // SAFETY: the kernel filled the first `rc` headers (msg_len, msg_namelen).
            let hdr = unsafe { hdrs[i].assume_init_ref() };
            let from = to_socket_addr(&names[i], hdr.msg_hdr.msg_namelen);
            buffers.received.push((hdr.msg_len as usize, from));
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::net::SocketAddr;

    use mio::net::UdpSocket;

    use super::{RecvBuffers, RECV_BATCH, SEND_BATCH, SLOT};

    pub(super) fn send(
        socket: &UdpSocket,
        datagrams: &[(SocketAddr, Vec<u8>)],
    ) -> io::Result<usize> {
        let mut sent = 0;
        for (to, bytes) in datagrams.iter().take(SEND_BATCH) {
            match socket.send_to(bytes, *to) {
                Ok(_) => sent += 1,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(sent)
    }

    pub(super) fn recv(socket: &UdpSocket, buffers: &mut RecvBuffers) -> io::Result<()> {
        for i in 0..RECV_BATCH {
            let slot = &mut buffers.data[i * SLOT..(i + 1) * SLOT];
            match socket.recv_from(slot) {
                Ok((len, from)) => buffers.received.push((len, Some(from))),
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket as StdSocket;
    use std::time::{Duration, Instant};

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(10);

    fn sender() -> UdpSocket {
        let socket = StdSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let socket = UdpSocket::from_std(socket);
        crate::icmp::enable(&socket).unwrap();
        socket
    }

    fn receiver() -> (StdSocket, SocketAddr) {
        let socket = StdSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

    fn received(socket: &StdSocket, count: usize) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 64];
        (0..count)
            .map(|_| {
                let (n, _) = socket.recv_from(&mut buf).expect("a datagram in time");
                buf[..n].to_vec()
            })
            .collect()
    }

    /// Sends every datagram as the driver does: batch after batch, the refusals read when a
    /// batch ends early or fails with an ICMP error, the datagrams to a refused destination
    /// dropped. Returns the refused destinations.
    fn send_all(socket: &UdpSocket, mut datagrams: Vec<(SocketAddr, Vec<u8>)>) -> Vec<SocketAddr> {
        let deadline = Instant::now() + DEADLINE;
        let mut refused = Vec::new();
        while !datagrams.is_empty() {
            assert!(Instant::now() < deadline, "the batch was never sent");
            let offered = datagrams.len().min(SEND_BATCH);
            let ended_early = match send(socket, &datagrams) {
                Ok(n) => {
                    assert!((1..=offered).contains(&n), "{n} of {offered}");
                    datagrams.drain(..n);
                    n < offered
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) => panic!("send failed: {e}"),
            };
            if ended_early {
                let now = crate::icmp::refused_destinations(socket).unwrap();
                datagrams.retain(|(to, _)| !now.contains(to));
                refused.extend(now);
            }
        }
        refused
    }

    #[test]
    fn a_batch_reaches_every_destination_in_order() {
        let socket = sender();
        let (a, a_addr) = receiver();
        let (b, b_addr) = receiver();
        // More than a batch: the rest goes in the next call.
        let datagrams: Vec<(SocketAddr, Vec<u8>)> = (0..SEND_BATCH as u8 + 10)
            .map(|i| {
                (
                    if i % 2 == 0 { a_addr } else { b_addr },
                    vec![i; 1 + usize::from(i) % 16],
                )
            })
            .collect();
        let expected_a: Vec<Vec<u8>> = datagrams
            .iter()
            .filter(|(to, _)| *to == a_addr)
            .map(|(_, d)| d.clone())
            .collect();
        let expected_b: Vec<Vec<u8>> = datagrams
            .iter()
            .filter(|(to, _)| *to == b_addr)
            .map(|(_, d)| d.clone())
            .collect();
        assert!(send_all(&socket, datagrams).is_empty());
        assert_eq!(received(&a, expected_a.len()), expected_a);
        assert_eq!(received(&b, expected_b.len()), expected_b);
    }

    #[test]
    fn a_refused_destination_inside_a_batch_is_named_and_the_rest_arrive() {
        let socket = sender();
        let (a, a_addr) = receiver();
        let nobody = StdSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap();
        let datagrams = vec![
            (a_addr, vec![1]),
            (nobody, vec![2]),
            (a_addr, vec![3]),
            (a_addr, vec![4]),
            (a_addr, vec![5]),
        ];
        let refused = send_all(&socket, datagrams);
        assert_eq!(received(&a, 4), vec![vec![1], vec![3], vec![4], vec![5]]);
        // The error may also surface only after the batch: drain the queue once more.
        let mut refused = refused;
        refused.extend(crate::icmp::refused_destinations(&socket).unwrap());
        if cfg!(target_os = "linux") {
            assert_eq!(refused, vec![nobody]);
        }
    }

    #[test]
    fn a_read_returns_every_waiting_datagram_with_its_sender() {
        let (tx, tx_addr) = receiver();
        let rx = StdSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let rx_addr = rx.local_addr().unwrap();
        let rx = UdpSocket::from_std(rx);
        let mut poll = mio::Poll::new().unwrap();
        let mut rx = rx;
        poll.registry()
            .register(&mut rx, mio::Token(0), mio::Interest::READABLE)
            .unwrap();
        let total = RECV_BATCH + 8;
        for i in 0..total {
            tx.send_to(&[i as u8; 3], rx_addr).unwrap();
        }
        let mut buffers = RecvBuffers::new();
        let mut got = Vec::new();
        let mut events = mio::Events::with_capacity(4);
        let deadline = Instant::now() + DEADLINE;
        while got.len() < total {
            assert!(
                Instant::now() < deadline,
                "only {} datagrams arrived",
                got.len()
            );
            match recv(&rx, &mut buffers) {
                Ok(n) => {
                    assert!((1..=RECV_BATCH).contains(&n));
                    for i in 0..n {
                        let (from, bytes) = buffers.get(i).expect("an IP sender");
                        assert_eq!(from, tx_addr);
                        got.push(bytes.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll.poll(&mut events, Some(Duration::from_millis(100)))
                        .unwrap();
                }
                Err(e) => panic!("receive failed: {e}"),
            }
        }
        let expected: Vec<Vec<u8>> = (0..total).map(|i| vec![i as u8; 3]).collect();
        assert_eq!(got, expected);
        assert_eq!(
            recv(&rx, &mut buffers).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
