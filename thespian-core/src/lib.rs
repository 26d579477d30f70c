//! The shared vocabulary of thespian-rs.
//!
//! Every other crate speaks these types: [`ActorAddress`], [`Message`] / [`Payload`] /
//! [`Envelope`], [`Capabilities`], Thespian's system messages, the [`Actor`] trait and its
//! [`Context`], the type [`dispatch`](mod@dispatch)er, the [`WireMessage`] every transport
//! carries, and the two sans-IO machines every base drives: the per-actor [`ActorCell`] and the
//! per-system [`Registry`]. Nothing here opens a socket, spawns a thread or reads the clock;
//! system bases are drivers around these machines.

#![warn(missing_docs)]

pub mod activity;
pub mod actor;
pub mod address;
pub mod base;
pub mod capabilities;
mod children;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod id_table;
pub mod lifecycle;
pub mod message;
pub mod registry;
pub mod system_messages;
pub mod transport;
pub mod typed;
pub mod wire;

pub use actor::{
    Actor, ActorError, ActorResult, ActorSpec, CreateOptions, CreateRequest, NewActor,
};
pub use address::{ActorAddress, SystemId};
pub use base::BaseDriver;
pub use capabilities::{
    keys, Capabilities, CapabilityError, CapabilityValue, RequireCapability, Requirements,
};
pub use context::{Context, Created, RemoteSystem, Services};
pub use dispatch::{dispatch, Dispatch, Flow};
pub use error::{Result, ThespianError};
pub use lifecycle::{ActorCell, CellState};
pub use message::{Envelope, IntoMessage, Message, MessageError, Payload, TakeError};
pub use registry::Registry;
pub use system_messages::{
    ActorExitRequest, ActorStatus, ActorSummary, ActorSystemConventionUpdate, ChildActorExited,
    ConventionMemberStatus, ConventionStatus, DeadEnvelope, LoadedSource, PoisonMessage,
    StatusRequest, SystemStatus, UnloadedSource, ValidateSource, ValidatedSource, WakeupMessage,
    WatchMessage,
};
pub use typed::{Handler, IntoReply, Request, RequestError};
pub use wire::{MessageId, SendBudget, WireMessage};

/// `#[derive(Message)]` (feature `derive`, on by default): implements [`Message`] and, with
/// `#[message(reply = T)]`, [`Request`]; see the `thespian-macros` crate for its attributes.
#[cfg(feature = "derive")]
pub use thespian_macros::CoreMessage as Message;
