//! The messages between the processes of a multi-process system and its admin.
//!
//! They travel as ordinary messages (wire names `thespian.admin.*`) over whatever transport
//! the base uses, so the admin protocol is written once for TCP and UDP. A request that wants
//! an answer is sent from a fresh address of the requesting process; the answer goes back to
//! that sender, so no request ids are needed.

use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};
use thespian_core::{message, ActorAddress, Capabilities, CapabilityValue, Payload};
use thespian_core::{RemoteSystem, Requirements, ThespianError};

/// A process introduces itself to the admin (Thespian's `QueryExists`); answered by
/// [`Welcome`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The process id.
    pub pid: u32,
}

/// The admin's answer to [`Hello`] (Thespian's `QueryAck`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Welcome {
    /// The admin's own address (its incarnation).
    pub admin: ActorAddress,
    /// The admin's process id.
    pub admin_pid: u32,
    /// The system's capabilities.
    pub capabilities: Capabilities,
    /// True once the system is shutting down: such an admin is not attached to.
    pub in_shutdown: bool,
}

/// Create an actor (from outside, or on behalf of a parent actor); answered by [`CreateReply`].
///
/// The type travels as its name only: the admin looks it up among the types its own
/// executable registered, and runs the actor in a process of that executable (or a thread of
/// its own). Nothing here names a program, a path or code.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateActor {
    /// The parent: the admin for creates from outside the actors.
    pub parent: ActorAddress,
    /// The actor type's registered name (`Actor::type_name`).
    pub type_name: String,
    /// The create request's requirements.
    pub requirements: Requirements,
    /// The create request's global name.
    pub global_name: Option<String>,
    /// Answer only once the actor is constructed (or failed to be): creates from outside
    /// report constructor failures as errors. Actors get their child's address at once and
    /// hear of a failed start as `ChildActorExited` plus `Child Aborted` poison.
    pub wait_until_started: bool,
    /// Set when another system's admin asks (remote create by capability): the answer is a
    /// [`CreateReply`] carrying the same ticket, and a create this system cannot place either
    /// goes on to the systems not yet tried.
    pub remote: Option<RemoteOrigin>,
}

/// A [`CreateActor`] from another system's admin (its `remote` is set). Its own wire prefix,
/// outside the admin protocol's: one the transport cannot deliver comes back to the sending
/// admin, which then asks the next system.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteCreate {
    /// The request.
    pub create: CreateActor,
}

/// Where a create placed by another system's admin comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteOrigin {
    /// The asking admin's number for this create, echoed in the [`CreateReply`].
    pub ticket: u64,
    /// The admins (their sockets) already asked, the asking one included: never asked again.
    pub already_tried: Vec<SocketAddrV4>,
}

/// Why a create failed, as it crosses processes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateFailure {
    /// No system fits the actor's capability conditions.
    NoCompatibleSystem {
        /// The actor type.
        actor_type: String,
        /// The unmet conditions.
        unmet: Vec<String>,
    },
    /// The actor was placed but its constructor (or its process) failed.
    CreationFailed {
        /// The actor type.
        actor_type: String,
        /// Why.
        reason: String,
    },
    /// The admin's executable has no actor type registered under this name.
    InvalidActorSpecification {
        /// The requested type name.
        spec: String,
        /// Why it cannot be resolved, and how to fix it.
        reason: String,
    },
    /// The system is shutting down.
    ShuttingDown,
}

impl From<CreateFailure> for ThespianError {
    fn from(failure: CreateFailure) -> ThespianError {
        match failure {
            CreateFailure::NoCompatibleSystem { actor_type, unmet } => {
                ThespianError::NoCompatibleSystem { actor_type, unmet }
            }
            CreateFailure::CreationFailed { actor_type, reason } => {
                ThespianError::ActorCreationFailed { actor_type, reason }
            }
            CreateFailure::InvalidActorSpecification { spec, reason } => {
                ThespianError::InvalidActorSpecification { spec, reason }
            }
            CreateFailure::ShuttingDown => {
                ThespianError::SystemFailure("the actor system is shutting down".into())
            }
        }
    }
}

/// The answer to [`CreateActor`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateReply {
    /// The actor, or why there is none.
    pub result: Result<CreatedActor, CreateFailure>,
    /// The [`RemoteOrigin::ticket`] of a create another admin asked for; `None` otherwise.
    pub ticket: Option<u64>,
}

/// A created (or found, by global name) actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedActor {
    /// Its address.
    pub address: ActorAddress,
    /// False when a global name already named a live actor.
    pub is_child: bool,
}

/// An actor's host constructed it: it is running.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActorStarted {
    /// The actor.
    pub address: ActorAddress,
}

/// An actor's host could not construct it (or its process could not start).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActorFailedToStart {
    /// The actor.
    pub address: ActorAddress,
    /// Why.
    pub reason: String,
}

/// An actor exited normally (its exit handler ran and its children are gone); answered by
/// [`ExitNoted`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActorExited {
    /// The actor.
    pub address: ActorAddress,
}

/// The admin's answer to [`ActorExited`]: the exit is recorded, so the actor's process may
/// end without its end being taken for a crash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExitNoted;

/// A message that could not be delivered to `target`: the admin routes it (back to the sender
/// as `Child Aborted` poison when the target never started, else to the dead-letter handler).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Who it was for.
    pub target: ActorAddress,
    /// Who sent it.
    pub sender: ActorAddress,
    /// The message.
    pub payload: Payload,
}

/// Register (`enable`) or unregister the dead-letter handler.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HandleDeadLetters {
    /// The handler.
    pub actor: ActorAddress,
    /// Register or unregister.
    pub enable: bool,
}

/// Set (`Some`) or remove (`None`) a system capability; answered by [`Capabilities`] of the
/// system afterwards ([`CapabilitiesNow`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateCapability {
    /// The capability.
    pub name: String,
    /// Its new value.
    pub value: Option<CapabilityValue>,
}

/// The system's capabilities, after an [`UpdateCapability`]; also sent by the admin to every
/// actor host when they change, so hosts check their actors against them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapabilitiesNow {
    /// The capabilities.
    pub capabilities: Capabilities,
}

/// Shut the system down; answered by [`ShutdownComplete`] once every actor has exited.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShutdownSystem;

/// Every actor has exited and their processes are gone; the admin exits next.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShutdownComplete;

/// A log record from an actor's process, for the admin's log sink.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogRecord {
    /// `log::Level` as a number (1 = error … 5 = trace).
    pub level: u8,
    /// The record's target.
    pub target: String,
    /// The formatted message.
    pub text: String,
    /// The actor that logged it, if any.
    pub actor: Option<ActorAddress>,
    /// Set when another system of the convention forwarded it (central logging): that
    /// system's name. Such a record is logged here and never forwarded again.
    #[serde(default)]
    pub system: Option<String>,
}

/// A node returned a `PoisonMessage` to a sender (an actor failed twice on a message, an actor
/// sent to an address no system issued, the transport could not deliver a message): the
/// admin counts it for the system's status. Sent on those rare paths only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoisonReturned;

/// The admin asks the node hosting an actor how many messages wait in that actor's mailbox,
/// to fill a system status's pending count. The node answers on arrival with
/// [`MailboxDepth`], without queueing the question behind the messages it counts; only a
/// question from the node's own admin is answered.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailboxDepthQuery {
    /// The admin's status round this question belongs to.
    pub round: u64,
}

/// A node's answer to a [`MailboxDepthQuery`], sent from the actor's address.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailboxDepth {
    /// The round asked about.
    pub round: u64,
    /// Messages waiting in the actor's mailbox when the question arrived.
    pub depth: u64,
}

/// An actor asks to hear of convention changes (`ActorSystemConventionUpdate`), or to stop.
/// The watcher is the sender.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WatchConvention {
    /// Start (true) or stop (false).
    pub enable: bool,
}

/// An actor makes this system the convention leader of a remote system
/// (`pre_register_remote_system`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreRegisterRemote {
    /// The remote admin's socket.
    pub remote: SocketAddrV4,
    /// What the remote is expected to offer until it registers with its own capabilities.
    pub capabilities: Capabilities,
}

/// An actor drops a remote system from the convention (`de_register_remote_system`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeRegisterRemote {
    /// The remote, by address string or by its admin's address.
    pub remote: RemoteSystem,
}

/// Change the admin's log filter at run time (`thespian log-level`); answered by
/// [`LogLevelSet`]. Only authenticated peers reach the admin, as for every message here.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetLogLevel {
    /// The new level: `off`, `error`, `warn`, `info`, `debug` or `trace` (any case).
    pub level: String,
}

/// The answer to [`SetLogLevel`]: the level before and after, or why nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLevelSet {
    /// `Ok((previous, now))` with the level names, or the reason of a refusal.
    pub result: Result<(String, String), String>,
}

message!(
    SetLogLevel = "thespian.admin.SetLogLevel",
    LogLevelSet = "thespian.admin.LogLevelSet",
);

message!(
    Hello = "thespian.admin.Hello",
    Welcome = "thespian.admin.Welcome",
    CreateActor = "thespian.admin.CreateActor",
    CreateReply = "thespian.admin.CreateReply",
    ActorStarted = "thespian.admin.ActorStarted",
    ActorFailedToStart = "thespian.admin.ActorFailedToStart",
    ActorExited = "thespian.admin.ActorExited",
    ExitNoted = "thespian.admin.ExitNoted",
    DeadLetter = "thespian.admin.DeadLetter",
    HandleDeadLetters = "thespian.admin.HandleDeadLetters",
    UpdateCapability = "thespian.admin.UpdateCapability",
    CapabilitiesNow = "thespian.admin.CapabilitiesNow",
    ShutdownSystem = "thespian.admin.ShutdownSystem",
    ShutdownComplete = "thespian.admin.ShutdownComplete",
    LogRecord = "thespian.admin.LogRecord",
    WatchConvention = "thespian.admin.WatchConvention",
    PoisonReturned = "thespian.admin.PoisonReturned",
    MailboxDepthQuery = "thespian.admin.MailboxDepthQuery",
    MailboxDepth = "thespian.admin.MailboxDepth",
    RemoteCreate = "thespian.convention.RemoteCreate",
    PreRegisterRemote = "thespian.admin.PreRegisterRemote",
    DeRegisterRemote = "thespian.admin.DeRegisterRemote",
);

/// The prefix of every admin-protocol wire name: such messages are never dead-lettered.
pub const WIRE_PREFIX: &str = "thespian.admin.";
