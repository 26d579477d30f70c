//! What admins of a convention say to each other, and how they name each other.
//!
//! These are the only types of this crate that cross the wire: the driver serialises a
//! [`ConventionMessage`] into an admin-to-admin message and hands what arrives back to the
//! machine. A system is named by where its admin listens plus the incarnation that answered
//! there, so a restarted system (same socket, new incarnation) is told apart from the one
//! before it.

use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};
use thespian_core::{Capabilities, SystemId};

/// Where a system's admin listens, and which incarnation answered there.
///
/// `incarnation` is [`SystemId::from_raw(0)`](SystemId::from_raw) while it is not yet known:
/// a configured leader before first contact, or a pre-registered remote that never answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AdminRef {
    /// The admin's socket: the identity of a remote system across its restarts.
    pub socket: SocketAddrV4,
    /// The incarnation that answered at `socket` (0 = not known yet).
    pub incarnation: SystemId,
}

impl AdminRef {
    /// The incarnation meaning "not known yet".
    pub const UNKNOWN_INCARNATION: SystemId = SystemId::from_raw(0);

    /// A system known only by its socket (incarnation not known yet).
    pub const fn unknown(socket: SocketAddrV4) -> AdminRef {
        AdminRef {
            socket,
            incarnation: AdminRef::UNKNOWN_INCARNATION,
        }
    }

    /// True when the incarnation is known.
    pub fn is_known(&self) -> bool {
        self.incarnation != AdminRef::UNKNOWN_INCARNATION
    }
}

/// A message from one admin to another about the convention.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum ConventionMessage {
    /// "I am a member (or a leader answering a member)": sent to every leader candidate,
    /// first at once and then every registration period; a leader answers it with its own.
    Register {
        /// The sender.
        from: AdminRef,
        /// The sender's capabilities now (they replace whatever the receiver knew).
        capabilities: Capabilities,
        /// The sender has no valid registration with the receiver: the receiver forgets what
        /// it knew of the sender (a "removed" then an "added" notification) and re-adds it.
        first_time: bool,
    },
    /// "I am leaving" (or, from a leader, "you are no longer my member").
    DeRegister {
        /// The sender.
        from: AdminRef,
    },
    /// "Join my convention, with me as your leader" (the sender pre-registered the receiver).
    Invite {
        /// The sender, to be the receiver's leader.
        from: AdminRef,
    },
    /// A liveness probe of a leader candidate, sent at a fraction of the registration period;
    /// any system answers it with [`ConventionMessage::Alive`].
    Probe {
        /// The sender.
        from: AdminRef,
    },
    /// The answer to a [`ConventionMessage::Probe`].
    Alive {
        /// The sender (its incarnation tells the prober whether it restarted).
        from: AdminRef,
    },
}

impl ConventionMessage {
    /// The system that sent it.
    pub fn from(&self) -> AdminRef {
        match self {
            ConventionMessage::Register { from, .. }
            | ConventionMessage::DeRegister { from }
            | ConventionMessage::Invite { from }
            | ConventionMessage::Probe { from }
            | ConventionMessage::Alive { from } => *from,
        }
    }

    /// A short name of the message's kind, for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            ConventionMessage::Register {
                first_time: true, ..
            } => "Register(first)",
            ConventionMessage::Register { .. } => "Register",
            ConventionMessage::DeRegister { .. } => "DeRegister",
            ConventionMessage::Invite { .. } => "Invite",
            ConventionMessage::Probe { .. } => "Probe",
            ConventionMessage::Alive { .. } => "Alive",
        }
    }
}

/// A member joined or left, as told to a watcher (Thespian's `ActorSystemConventionUpdate`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConventionUpdate {
    /// The remote system.
    pub remote: AdminRef,
    /// Its capabilities (the last known ones, when it left).
    pub capabilities: Capabilities,
    /// `true`: it joined; `false`: it left (de-registered, expired or restarted).
    pub added: bool,
}

// Its own wire prefix (not the admin protocol's): when the transport cannot deliver one, the
// node hands it back to the sending admin instead of dropping it, so the machine learns of it.
thespian_core::message!(ConventionMessage = "thespian.convention.Message");
