//! The one error type of the public API.
//!
//! Each variant maps one of Thespian's exceptions (reference §1.6) or one failure Thespian left
//! silent; the mapping is listed in `docs/DIFFERENCES.md`.

use std::fmt;

use crate::address::ActorAddress;
use crate::capabilities::CapabilityError;
use crate::message::MessageError;

/// Errors returned by `ActorSystem` and `Context` calls.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ThespianError {
    /// `InvalidActorAddress`: the address cannot be used for this (e.g. no such admin).
    InvalidActorAddress {
        /// The address.
        address: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// `NoCompatibleSystemForActor`: no system can host this actor type.
    NoCompatibleSystem {
        /// The actor type.
        actor_type: String,
        /// The unmet conditions.
        unmet: Vec<String>,
    },
    /// `ActorSystemFailure`: the system could not do what was asked.
    SystemFailure(String),
    /// `ActorSystemStartupFailure`: the system could not start.
    StartupFailure(String),
    /// `ActorSystemRequestTimeout`: the system did not answer in time.
    RequestTimeout(String),
    /// `InvalidActorSourceHash`: the source hash matches no loaded source.
    InvalidSourceHash(String),
    /// `InvalidActorSpecification`: the actor type cannot be resolved (e.g. not registered).
    InvalidActorSpecification {
        /// The requested type.
        spec: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The actor's constructor failed or panicked.
    ActorCreationFailed {
        /// The actor type.
        actor_type: String,
        /// The constructor's error or panic text.
        reason: String,
    },
    /// The operation exists in Thespian but this system base cannot serve it.
    NotSupported {
        /// The operation.
        operation: &'static str,
        /// The base's Thespian name.
        base: &'static str,
    },
    /// The system has been shut down; the handle can no longer be used.
    SystemShutDown,
    /// A message could not be encoded, decoded or read as the asked type.
    Message(MessageError),
    /// A capability has a value of the wrong type or an unusable value.
    Capability(CapabilityError),
    /// The outbound queue to a target is full (back-pressure); try again later.
    QueueFull {
        /// The target.
        target: ActorAddress,
    },
}

impl fmt::Display for ThespianError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThespianError::InvalidActorAddress { address, reason } => {
                write!(f, "{address} is {reason}")
            }
            ThespianError::NoCompatibleSystem { actor_type, unmet } => write!(
                f,
                "No compatible ActorSystem could be found for Actor {actor_type} (unmet: {})",
                unmet.join("; ")
            ),
            ThespianError::SystemFailure(s) => write!(f, "actor system failure: {s}"),
            ThespianError::StartupFailure(s) => write!(f, "actor system failed to start: {s}"),
            ThespianError::RequestTimeout(s) => write!(f, "actor system request timed out: {s}"),
            ThespianError::InvalidSourceHash(h) => {
                write!(f, "Source hash {h} does not match any loaded sources.")
            }
            ThespianError::InvalidActorSpecification { spec, reason } => {
                write!(f, "Invalid Actor Specification: {spec} ({reason})")
            }
            ThespianError::ActorCreationFailed { actor_type, reason } => {
                write!(f, "creating actor {actor_type} failed: {reason}")
            }
            ThespianError::NotSupported { operation, base } => {
                write!(f, "{operation} is not supported by this base ({base})")
            }
            ThespianError::SystemShutDown => f.write_str("the actor system has been shut down"),
            ThespianError::Message(e) => e.fmt(f),
            ThespianError::Capability(e) => e.fmt(f),
            ThespianError::QueueFull { target } => {
                write!(f, "outbound queue to {target} is full")
            }
        }
    }
}

impl std::error::Error for ThespianError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ThespianError::Message(e) => Some(e),
            ThespianError::Capability(e) => Some(e),
            _ => None,
        }
    }
}

impl From<MessageError> for ThespianError {
    fn from(e: MessageError) -> Self {
        ThespianError::Message(e)
    }
}

impl From<CapabilityError> for ThespianError {
    fn from(e: CapabilityError) -> Self {
        ThespianError::Capability(e)
    }
}

/// Result of the public API.
pub type Result<T, E = ThespianError> = std::result::Result<T, E>;
