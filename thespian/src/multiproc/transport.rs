//! The one seam between the multi-process driver and a transport crate.
//!
//! The driver is written once for TCP and UDP: it needs a way to hand a [`WireMessage`] to
//! the endpoint at a socket address and to learn what became of it: `thespian-core`'s
//! transport seam, which each transport crate implements. Its sockets are bound and its
//! endpoints built here; nothing else in the driver names a transport.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

pub(crate) use thespian_core::transport::{TransportEvent, TransportPoll, TransportSend};
use thespian_core::SystemId;
use thespian_transport_tcp as tcp;
use thespian_transport_udp as udp;

/// Which transport a multi-process system uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum TransportKind {
    /// `multiprocTCPBase`.
    Tcp,
    /// `multiprocUDPBase`.
    Udp,
}

/// A socket bound before its endpoint exists (so its address is known first), ready to be
/// handed to another process or turned into an endpoint.
pub(crate) enum BoundSocket {
    /// A listening TCP socket.
    Tcp(TcpListener),
    /// A UDP socket.
    Udp(UdpSocket),
}

impl BoundSocket {
    /// Binds a socket of `kind` at `addr`.
    pub(crate) fn bind(kind: TransportKind, addr: SocketAddr) -> io::Result<BoundSocket> {
        Ok(match kind {
            TransportKind::Tcp => BoundSocket::Tcp(TcpListener::bind(addr)?),
            TransportKind::Udp => BoundSocket::Udp(UdpSocket::bind(addr)?),
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            BoundSocket::Tcp(l) => l.local_addr(),
            BoundSocket::Udp(s) => s.local_addr(),
        }
    }

    /// The socket as an owned descriptor (to become a child process's stdin).
    pub(crate) fn into_fd(self) -> std::os::fd::OwnedFd {
        match self {
            BoundSocket::Tcp(l) => l.into(),
            BoundSocket::Udp(s) => s.into(),
        }
    }

    /// Takes back a socket of `kind` from a descriptor this process was given.
    pub(crate) fn from_fd(kind: TransportKind, fd: std::os::fd::OwnedFd) -> BoundSocket {
        match kind {
            TransportKind::Tcp => BoundSocket::Tcp(TcpListener::from(fd)),
            TransportKind::Udp => BoundSocket::Udp(UdpSocket::from(fd)),
        }
    }

    /// Builds the transport endpoint on this socket; it authenticates every session with
    /// `secret` (thespian-auth).
    pub(crate) fn into_endpoint(
        self,
        incarnation: SystemId,
        secret: thespian_auth::Secret,
    ) -> io::Result<(Box<dyn TransportPoll>, Box<dyn TransportSend>)> {
        Ok(match self {
            BoundSocket::Tcp(listener) => {
                let config = tcp::EndpointConfig::new(incarnation, secret);
                let (endpoint, _) = tcp::TcpEndpoint::from_listener(listener, config)?;
                let sender = endpoint.sender();
                (Box::new(endpoint), Box::new(sender))
            }
            BoundSocket::Udp(socket) => {
                let mut config = udp::EndpointConfig::new(incarnation, secret);
                config.transport = udp_settings();
                let (endpoint, _) = udp::UdpEndpoint::from_socket(socket, config)?;
                let sender = endpoint.sender();
                (Box::new(endpoint), Box::new(sender))
            }
        })
    }
}

/// The UDP machine's timing in a multi-process system: processes of one system sit on one
/// host or one network, so a peer silent for about 3 s (16 retransmissions, 20 ms backing off
/// to 250 ms) is taken for gone, and its messages become dead letters, instead of the
/// transport's cautious default of more than a minute.
fn udp_settings() -> udp::Config {
    udp::Config {
        initial_rto: std::time::Duration::from_millis(20),
        max_rto: std::time::Duration::from_millis(250),
        max_retransmits: 16,
        ..udp::Config::default()
    }
}
