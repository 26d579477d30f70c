//! The seam between a multi-process driver and a transport: what it hands a transport and what
//! it hears back.
//!
//! This module exists so that the driver of the multi-process bases is written once and never
//! names a transport: each transport crate implements [`TransportSend`] and [`TransportPoll`]
//! for its endpoint and turns its own events into [`TransportEvent`]s, and the driver sees only
//! these names. A transport decides here, once, what its failures mean to Thespian (a dead
//! letter or a `PoisonMessage`, an error at the sender), so the driver needs no per-transport
//! case.
//!
//! Like the rest of the crate, nothing here opens a socket or reads the clock: a socket address
//! is only a name for a peer, and time enters as the poll's timeout.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ThespianError};
use crate::message::MessageError;
use crate::wire::{MessageId, WireMessage};

/// What an endpoint reports: what arrived, and what became of the messages sent through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// A message for this endpoint.
    Delivered(WireMessage),
    /// These messages reached their endpoints.
    Acked(Vec<MessageId>),
    /// These messages will not be delivered.
    Failed {
        /// The messages.
        ids: Vec<MessageId>,
        /// Nobody is there any more (the messages become dead letters), rather than a failure
        /// to reach whoever is there (they come back to their senders as poison).
        dead_target: bool,
        /// Not sent at all: the transport remembers the address as dead (for an earlier
        /// process there, perhaps, not necessarily the one the messages are for).
        remembered_dead: bool,
        /// What kind of failure, for a driver that decides on it (never on the text).
        kind: FailureKind,
        /// Why, for the log and for `PoisonMessage` details.
        reason: String,
    },
}

/// What kind of failure a [`TransportEvent::Failed`] reports, in one vocabulary for every
/// transport: each transport maps its own reasons onto these in its seam, and the text beside
/// the kind says the details to people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FailureKind {
    /// Whatever answered at the address is not a thespian endpoint (its answer is no
    /// handshake of this transport).
    NotAPeer,
    /// The peer is a thespian endpoint holding another secret.
    WrongSecret,
    /// The system that answered is not the one dialed (it says it listens elsewhere).
    WrongPeer,
    /// The peer speaks another protocol version.
    VersionMismatch,
    /// The peer refused for now (too busy) until the messages' deadline.
    Overloaded,
    /// The peer is shutting down.
    ShuttingDown,
    /// Nobody is there any more: the connection or port was refused, the peer is unreachable
    /// or gone, or a newer process replaced it.
    Unreachable,
    /// Not acknowledged in time.
    TimedOut,
    /// Larger than the peer accepts.
    TooLarge,
    /// This endpoint was closed before the messages were settled.
    Closed,
    /// Anything else (a peer that broke the protocol, a full queue).
    Other,
}

/// The sending half of an endpoint, usable from any thread.
pub trait TransportSend: Send + Sync {
    /// Queues `message` for the endpoint at `peer`. Errors only for what is known at once: a
    /// message over the transport's size limit ([`too_large`]), a full per-peer budget
    /// ([`ThespianError::QueueFull`]), a closed endpoint ([`ThespianError::SystemShutDown`]).
    fn send(&self, peer: SocketAddr, message: WireMessage) -> Result<MessageId>;
    /// Makes the endpoint's [`TransportPoll::poll`] return, so its thread can notice it should
    /// stop.
    fn interrupt(&self);
    /// The process at `peer` is known to be gone (its parent reaped it): what is still
    /// unacknowledged there may fail now instead of after the retries.
    fn peer_gone(&self, peer: SocketAddr);
    /// A newer process than the one given up listens at `peer`: sends to it must not fail
    /// because of what the transport remembers of the old one.
    fn revive(&self, peer: SocketAddr);
}

/// The polling half of an endpoint, driven by one thread.
pub trait TransportPoll: Send {
    /// Waits for events, at most `timeout` when given; returns early, possibly with none, after
    /// [`TransportSend::interrupt`].
    fn poll(&mut self, timeout: Option<Duration>) -> io::Result<Vec<TransportEvent>>;
    /// Closes the endpoint; what was still queued is reported failed.
    fn close(&mut self) -> Vec<TransportEvent>;
}

/// The error of a send refused because the message is `size` bytes encoded and the transport
/// carries at most `limit`.
pub fn too_large(size: usize, limit: usize) -> ThespianError {
    ThespianError::Message(MessageError::TooLarge { size, limit })
}
