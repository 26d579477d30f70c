//! The UDP endpoint behind `thespian-core`'s transport seam.
//!
//! This module exists so the multi-process driver can use a [`UdpEndpoint`] without naming
//! it: here, and only here, the endpoint's events and send errors are translated into the
//! seam's vocabulary ([`TransportEvent`], [`ThespianError`]), including what the machine's
//! reasons for giving a message up mean to Thespian.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use thespian_core::transport::{
    too_large, FailureKind, TransportEvent, TransportPoll, TransportSend,
};
use thespian_core::{MessageId, Result, ThespianError, WireMessage};

use crate::driver::{UdpEndpoint, UdpSender};
use crate::machine::{Event, SendError, UndeliverableReason};

impl TransportSend for UdpSender {
    fn send(&self, peer: SocketAddr, message: WireMessage) -> Result<MessageId> {
        let target = message.target.clone();
        UdpSender::send(self, peer, message).map_err(|e| match e {
            SendError::TooLarge { size, limit } => too_large(size, limit),
            SendError::WindowFull { .. } => ThespianError::QueueFull { target },
            SendError::Closed => ThespianError::SystemShutDown,
        })
    }

    fn interrupt(&self) {
        UdpSender::interrupt(self);
    }

    fn peer_gone(&self, peer: SocketAddr) {
        let _ = self.mark_dead(peer);
    }

    fn revive(&self, peer: SocketAddr) {
        let _ = UdpSender::revive(self, peer);
    }
}

impl TransportPoll for UdpEndpoint {
    fn poll(&mut self, timeout: Option<Duration>) -> io::Result<Vec<TransportEvent>> {
        Ok(seam_events(self.poll_events(timeout)?))
    }

    fn close(&mut self) -> Vec<TransportEvent> {
        seam_events(UdpEndpoint::close(self))
    }
}

/// The endpoint's events in the seam's terms; a peer's restart is only logged (the driver
/// learns of it from the messages that fail).
fn seam_events(events: Vec<Event>) -> Vec<TransportEvent> {
    events
        .into_iter()
        .filter_map(|event| match event {
            Event::Delivered { message, .. } => Some(TransportEvent::Delivered(message)),
            Event::Acked { ids, .. } => Some(TransportEvent::Acked(ids)),
            Event::Undeliverable {
                peer, id, reason, ..
            } => Some(TransportEvent::Failed {
                ids: vec![id],
                // Unanswered retries mean nobody listens there any more: a dead letter (the
                // admin knows whether the actor was aborted, and who handles dead letters).
                dead_target: reason.is_dead_target()
                    || matches!(reason, UndeliverableReason::RetriesExhausted { .. }),
                remembered_dead: reason == UndeliverableReason::DeadAddress,
                kind: failure_kind(&reason),
                reason: format!("{peer}: {reason}"),
            }),
            Event::PeerRestarted { peer, .. } => {
                log::debug!("UDP peer {peer} restarted");
                None
            }
        })
        .collect()
}

/// A reason for giving a message up in the seam's vocabulary.
fn failure_kind(reason: &UndeliverableReason) -> FailureKind {
    match reason {
        // Unanswered retries: nobody listens there any more.
        UndeliverableReason::RetriesExhausted { .. }
        | UndeliverableReason::DeadAddress
        | UndeliverableReason::PeerRestarted { .. }
        | UndeliverableReason::MarkedDead
        | UndeliverableReason::PortUnreachable => FailureKind::Unreachable,
        UndeliverableReason::VersionMismatch { .. } => FailureKind::VersionMismatch,
        UndeliverableReason::AuthenticationFailed(_) => FailureKind::WrongSecret,
        UndeliverableReason::Shutdown | UndeliverableReason::Refused(SendError::Closed) => {
            FailureKind::Closed
        }
        UndeliverableReason::Refused(SendError::TooLarge { .. }) => FailureKind::TooLarge,
        UndeliverableReason::Refused(SendError::WindowFull { .. }) => FailureKind::Other,
    }
}
