//! The TCP endpoint behind `thespian-core`'s transport seam.
//!
//! This module exists so the multi-process driver can use a [`TcpEndpoint`] without naming
//! it: here, and only here, the endpoint's events and send errors are translated into the
//! seam's vocabulary ([`TransportEvent`], [`ThespianError`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use thespian_core::transport::{
    too_large, FailureKind, TransportEvent, TransportPoll, TransportSend,
};
use thespian_core::{MessageId, Result, ThespianError, WireMessage};

use crate::connection::{Event, FailReason, SendError};
use crate::endpoint::{EndpointEvent, EndpointSender, TcpEndpoint};
use crate::wire::RejectKind;

impl TransportSend for EndpointSender {
    fn send(&self, peer: SocketAddr, message: WireMessage) -> Result<MessageId> {
        let target = message.target.clone();
        EndpointSender::send(self, peer, message).map_err(|e| match e {
            SendError::TooLarge { size, limit } => too_large(size, limit),
            SendError::QueueFull { .. } => ThespianError::QueueFull { target },
            SendError::Closed => ThespianError::SystemShutDown,
            other => ThespianError::SystemFailure(other.to_string()),
        })
    }

    fn interrupt(&self) {
        EndpointSender::interrupt(self);
    }

    fn peer_gone(&self, _peer: SocketAddr) {
        // A closed TCP port refuses the next connection at once: nothing to hasten.
    }

    fn revive(&self, _peer: SocketAddr) {
        // TCP remembers no dead addresses: every connection attempt asks afresh.
    }
}

impl TransportPoll for TcpEndpoint {
    fn poll(&mut self, timeout: Option<Duration>) -> io::Result<Vec<TransportEvent>> {
        Ok(seam_events(self.poll_events(timeout)?))
    }

    fn close(&mut self) -> Vec<TransportEvent> {
        seam_events(TcpEndpoint::close(self))
    }
}

/// The endpoint's events in the seam's terms; what the driver has no use for (connection
/// progress, rejected strangers) is logged here and dropped.
fn seam_events(events: Vec<EndpointEvent>) -> Vec<TransportEvent> {
    events
        .into_iter()
        .filter_map(|event| match event {
            EndpointEvent::Peer { peer, event } => match event {
                Event::Delivered(message) => Some(TransportEvent::Delivered(message)),
                Event::Acked(ids) => Some(TransportEvent::Acked(ids)),
                Event::Failed { ids, reason } => Some(TransportEvent::Failed {
                    ids,
                    dead_target: reason.is_dead_target(),
                    remembered_dead: false,
                    kind: failure_kind(&reason),
                    reason: format!("{peer}: {reason}"),
                }),
                other => {
                    log::trace!("TCP peer {peer}: {other:?}");
                    None
                }
            },
            EndpointEvent::Rejected { from, reason } => {
                log::debug!("TCP connection from {from} rejected: {reason}");
                None
            }
        })
        .collect()
}

/// A reason for failing messages in the seam's vocabulary (a refusal by its reject kind, never
/// by the peer's text).
fn failure_kind(reason: &FailReason) -> FailureKind {
    match reason {
        FailReason::Refused | FailReason::PeerRestarted | FailReason::Unreachable => {
            FailureKind::Unreachable
        }
        FailReason::TimedOut => FailureKind::TimedOut,
        FailReason::TooLarge { .. } => FailureKind::TooLarge,
        FailReason::VersionMismatch { .. } => FailureKind::VersionMismatch,
        FailReason::Rejected { kind, .. } => match kind {
            RejectKind::Overloaded => FailureKind::Overloaded,
            RejectKind::ShuttingDown => FailureKind::ShuttingDown,
            RejectKind::Authentication => FailureKind::WrongSecret,
            RejectKind::Version => FailureKind::VersionMismatch,
            RejectKind::Protocol => FailureKind::Other,
        },
        FailReason::AuthenticationFailed => FailureKind::WrongSecret,
        FailReason::WrongPeer { .. } => FailureKind::WrongPeer,
        FailReason::NotAPeer(_) => FailureKind::NotAPeer,
        FailReason::Protocol(_) | FailReason::QueueFull => FailureKind::Other,
        FailReason::Shutdown => FailureKind::Closed,
    }
}
