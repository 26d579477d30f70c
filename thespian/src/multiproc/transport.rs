//! The one seam between the multi-process driver and a transport crate.
//!
//! The driver is written once for TCP and UDP: it needs a way to hand a [`WireMessage`] to
//! the endpoint at a socket address and to learn what became of it. Each transport's endpoint
//! is adapted here; nothing else in the driver names a transport.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use thespian_core::{MessageError, MessageId, Result, SystemId, ThespianError, WireMessage};
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

/// What became of messages, and what arrived.
#[derive(Debug)]
pub(crate) enum TransportEvent {
    /// A message for this endpoint.
    Delivered(WireMessage),
    /// These messages reached their endpoints.
    Acked(Vec<MessageId>),
    /// These messages will not be delivered.
    Failed {
        /// The messages.
        ids: Vec<MessageId>,
        /// Nobody is there any more (a dead letter), rather than a failure to reach it.
        dead_target: bool,
        /// Not sent at all: the transport remembers the address as dead (for an earlier
        /// process there, perhaps, not necessarily the one the messages are for).
        remembered_dead: bool,
        /// Why, for the log and for `PoisonMessage` details.
        reason: String,
    },
}

/// The sending half of an endpoint: any thread.
pub(crate) trait TransportSend: Send + Sync {
    /// Queues `message` for the endpoint at `peer`; errors only for what is known at once.
    fn send(&self, peer: SocketAddr, message: WireMessage) -> Result<MessageId>;
    /// Makes the endpoint's poll return, so its thread can notice it should stop.
    fn interrupt(&self);
    /// The process at `peer` is known to be gone (its parent reaped it): what is still
    /// unacknowledged there fails now instead of after the retries.
    fn peer_gone(&self, peer: SocketAddr);
    /// A newer process than the one given up listens at `peer`: stop failing sends to it.
    fn revive(&self, peer: SocketAddr);
}

/// The polling half of an endpoint: one thread.
pub(crate) trait TransportPoll: Send {
    /// Waits for events, at most `timeout` when given (returns early, possibly empty, after
    /// an interrupt).
    fn poll(&mut self, timeout: Option<std::time::Duration>) -> io::Result<Vec<TransportEvent>>;
    /// Closes the endpoint; what was still queued fails.
    fn close(&mut self) -> Vec<TransportEvent>;
}

fn too_large(size: usize, limit: usize) -> ThespianError {
    ThespianError::Message(MessageError::TooLarge { size, limit })
}

impl TransportSend for tcp::EndpointSender {
    fn send(&self, peer: SocketAddr, message: WireMessage) -> Result<MessageId> {
        let target = message.target.clone();
        tcp::EndpointSender::send(self, peer, message).map_err(|e| match e {
            tcp::SendError::TooLarge { size, limit } => too_large(size, limit),
            tcp::SendError::QueueFull { .. } => ThespianError::QueueFull { target },
            tcp::SendError::Closed => ThespianError::SystemShutDown,
            other => ThespianError::SystemFailure(other.to_string()),
        })
    }

    fn interrupt(&self) {
        tcp::EndpointSender::interrupt(self);
    }

    fn peer_gone(&self, _peer: SocketAddr) {
        // A closed TCP port refuses the next connection at once: nothing to hasten.
    }

    fn revive(&self, _peer: SocketAddr) {
        // TCP remembers no dead addresses: every connection attempt asks afresh.
    }
}

impl TransportPoll for tcp::TcpEndpoint {
    fn poll(&mut self, timeout: Option<std::time::Duration>) -> io::Result<Vec<TransportEvent>> {
        Ok(convert_tcp(self.poll_events(timeout)?))
    }

    fn close(&mut self) -> Vec<TransportEvent> {
        convert_tcp(tcp::TcpEndpoint::close(self))
    }
}

fn convert_tcp(events: Vec<tcp::EndpointEvent>) -> Vec<TransportEvent> {
    events
        .into_iter()
        .filter_map(|event| match event {
            tcp::EndpointEvent::Peer { peer, event } => match event {
                tcp::Event::Delivered(message) => Some(TransportEvent::Delivered(message)),
                tcp::Event::Acked(ids) => Some(TransportEvent::Acked(ids)),
                tcp::Event::Failed { ids, reason } => Some(TransportEvent::Failed {
                    ids,
                    dead_target: reason.is_dead_target(),
                    remembered_dead: false,
                    reason: format!("{peer}: {reason}"),
                }),
                other => {
                    log::trace!("TCP peer {peer}: {other:?}");
                    None
                }
            },
            tcp::EndpointEvent::Rejected { from, reason } => {
                log::debug!("TCP connection from {from} rejected: {reason}");
                None
            }
        })
        .collect()
}

impl TransportSend for udp::UdpSender {
    fn send(&self, peer: SocketAddr, message: WireMessage) -> Result<MessageId> {
        let target = message.target.clone();
        udp::UdpSender::send(self, peer, message).map_err(|e| match e {
            udp::SendError::TooLarge { size, limit } => too_large(size, limit),
            udp::SendError::WindowFull { .. } => ThespianError::QueueFull { target },
            udp::SendError::Closed => ThespianError::SystemShutDown,
        })
    }

    fn interrupt(&self) {
        udp::UdpSender::interrupt(self);
    }

    fn peer_gone(&self, peer: SocketAddr) {
        let _ = self.mark_dead(peer);
    }

    fn revive(&self, peer: SocketAddr) {
        let _ = udp::UdpSender::revive(self, peer);
    }
}

impl TransportPoll for udp::UdpEndpoint {
    fn poll(&mut self, timeout: Option<std::time::Duration>) -> io::Result<Vec<TransportEvent>> {
        Ok(convert_udp(self.poll_events(timeout)?))
    }

    fn close(&mut self) -> Vec<TransportEvent> {
        convert_udp(udp::UdpEndpoint::close(self))
    }
}

fn convert_udp(events: Vec<udp::Event>) -> Vec<TransportEvent> {
    events
        .into_iter()
        .filter_map(|event| match event {
            udp::Event::Delivered { message, .. } => Some(TransportEvent::Delivered(message)),
            udp::Event::Acked { ids, .. } => Some(TransportEvent::Acked(ids)),
            udp::Event::Undeliverable {
                peer, id, reason, ..
            } => Some(TransportEvent::Failed {
                ids: vec![id],
                // Unanswered retries mean nobody listens there any more: a dead letter (the
                // admin knows whether the actor was aborted, and who handles dead letters).
                dead_target: reason.is_dead_target()
                    || matches!(reason, udp::UndeliverableReason::RetriesExhausted { .. }),
                remembered_dead: reason == udp::UndeliverableReason::DeadAddress,
                reason: format!("{peer}: {reason}"),
            }),
            udp::Event::PeerRestarted { peer, .. } => {
                log::debug!("UDP peer {peer} restarted");
                None
            }
        })
        .collect()
}
