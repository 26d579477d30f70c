//! Thespian's system messages, with Thespian's equality rules.
//!
//! Every type here has a wire name starting with `thespian.`, which is how any payload (local or
//! from the wire) is recognised as a system message. The equality rules are the ones Thespian's
//! `test_msg_*` files check: they matter for tests and for de-duplicating convention traffic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::address::ActorAddress;
use crate::capabilities::Capabilities;
use crate::message::{IntoMessage, Message, MessageError, Payload};

macro_rules! system_message {
    ($($ty:ident => $name:literal),+ $(,)?) => {
        $( impl Message for $ty {
            fn wire_name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(concat!("thespian.", $name))
            }
        } )+
    };
}

/// Asks an actor to exit. Its handler runs first; then, unless [`not_recursive`] was called,
/// its children exit (bottom-up) before it does. All exit requests are equal.
///
/// [`not_recursive`]: ActorExitRequest::not_recursive
#[derive(Debug, Serialize, Deserialize)]
pub struct ActorExitRequest {
    recursive: AtomicBool,
}

impl Clone for ActorExitRequest {
    fn clone(&self) -> Self {
        ActorExitRequest {
            recursive: AtomicBool::new(self.is_recursive()),
        }
    }
}

impl ActorExitRequest {
    /// A recursive exit request (the default).
    pub fn new() -> ActorExitRequest {
        ActorExitRequest {
            recursive: AtomicBool::new(true),
        }
    }

    /// An exit request that leaves the children running.
    pub fn non_recursive() -> ActorExitRequest {
        ActorExitRequest {
            recursive: AtomicBool::new(false),
        }
    }

    /// Called by the receiving actor's handler: exit without stopping the children.
    pub fn not_recursive(&self) {
        self.recursive.store(false, Ordering::Relaxed);
    }

    /// Whether the children will be asked to exit too.
    pub fn is_recursive(&self) -> bool {
        self.recursive.load(Ordering::Relaxed)
    }
}

impl Default for ActorExitRequest {
    fn default() -> Self {
        ActorExitRequest::new()
    }
}

impl PartialEq for ActorExitRequest {
    fn eq(&self, _: &ActorExitRequest) -> bool {
        true
    }
}

/// Tells a parent that one of its children has exited. Equal by child address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildActorExited {
    /// The child that exited.
    pub child_address: ActorAddress,
}

impl ChildActorExited {
    /// Builds the notice for `child`.
    pub fn new(child_address: ActorAddress) -> ChildActorExited {
        ChildActorExited { child_address }
    }
}

/// A message that made its target fail twice, returned to its sender. Equal by the message only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoisonMessage {
    /// The message that failed.
    pub poison_message: Payload,
    /// What went wrong (the error or panic text, or `Child Aborted`).
    pub details: String,
}

impl PoisonMessage {
    /// Wraps the failed message with the failure details.
    pub fn new(poison_message: Payload, details: impl Into<String>) -> PoisonMessage {
        PoisonMessage {
            poison_message,
            details: details.into(),
        }
    }
}

impl PartialEq for PoisonMessage {
    fn eq(&self, other: &PoisonMessage) -> bool {
        self.poison_message == other.poison_message
    }
}

/// A message that could not be delivered because its target is dead, given to the dead-letter
/// handler. Equal by both fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadEnvelope {
    /// The address that could not be reached.
    pub dead_address: ActorAddress,
    /// The undelivered message.
    pub dead_message: Payload,
}

impl DeadEnvelope {
    /// Builds a dead letter.
    pub fn new(dead_address: ActorAddress, dead_message: Payload) -> DeadEnvelope {
        DeadEnvelope {
            dead_address,
            dead_message,
        }
    }
}

/// Delivered to an actor after the delay it gave to `wakeup_after`; the sender is the actor
/// itself. Equal by delay and payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WakeupMessage {
    /// The delay that was requested.
    pub delay_period: Duration,
    /// The payload given to `wakeup_after`, if any.
    pub payload: Option<Payload>,
}

impl WakeupMessage {
    /// Builds a wakeup notice.
    pub fn new(delay_period: Duration, payload: Option<Payload>) -> WakeupMessage {
        WakeupMessage {
            delay_period,
            payload,
        }
    }

    /// Reads the payload as an `M`; `Ok(None)` when there is none.
    pub fn payload_as<M: Message>(&self) -> Result<Option<&M>, MessageError> {
        self.payload.as_ref().map(Payload::get::<M>).transpose()
    }

    /// True when the payload is `value`.
    pub fn payload_is<M: IntoMessage>(&self, value: M) -> bool
    where
        M::Message: PartialEq,
    {
        let value = value.into_message();
        self.payload_as::<M::Message>().ok().flatten() == Some(&value)
    }
}

/// Raw file descriptor number, as watched by `Context::watch`.
pub type Fd = i32;

/// Delivered when watched file descriptors are readable. Equal by the ready set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchMessage {
    /// The watched descriptors that are readable.
    pub ready: Vec<Fd>,
}

/// A remote system joined or left the convention (to actors that asked to be notified).
/// Equal by all three fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorSystemConventionUpdate {
    /// The remote system's admin address.
    pub remote_admin_address: ActorAddress,
    /// The remote system's capabilities.
    pub remote_capabilities: Capabilities,
    /// True when it joined, false when it left or was declared dead.
    pub remote_added: bool,
}

/// A loaded source awaiting validation, sent to the Source Authority. Equal by hash only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidateSource {
    /// The source's hash.
    pub source_hash: String,
    /// The bytes given to `load_actor_source` (`None` in an unload request).
    pub source_data: Option<Vec<u8>>,
    /// Where the source came from (a file name).
    pub source_info: Option<String>,
}

impl PartialEq for ValidateSource {
    fn eq(&self, other: &ValidateSource) -> bool {
        self.source_hash == other.source_hash
    }
}

/// The Source Authority's verdict: the validated source, or `None` to reject it. Equal by hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidatedSource {
    /// The source's hash.
    pub source_hash: String,
    /// The validated, loadable source; `None` rejects it.
    pub source_zip: Option<Vec<u8>>,
    /// Where the source came from.
    pub source_info: Option<String>,
}

impl PartialEq for ValidatedSource {
    fn eq(&self, other: &ValidatedSource) -> bool {
        self.source_hash == other.source_hash
    }
}

/// A source became available on this system. Equal by hash and info.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedSource {
    /// The source's hash.
    pub source_hash: String,
    /// Where the source came from.
    pub source_info: String,
}

/// A source was unloaded from this system. Equal by hash and info.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnloadedSource {
    /// The source's hash.
    pub source_hash: String,
    /// Where the source came from.
    pub source_info: String,
}

/// Asks an actor or a system admin for its status (`Thespian_StatusReq`). Handled by the
/// framework, never by `receive`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest;

/// An actor's status (`Thespian_ActorStatus`). Informational; fields may grow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorStatus {
    /// The actor.
    pub actor_address: ActorAddress,
    /// The actor's type name.
    pub actor_type: String,
    /// Its system's admin.
    pub admin_address: ActorAddress,
    /// Its parent (the admin for top-level actors).
    pub parent_address: ActorAddress,
    /// Its global name, if any.
    pub global_name: Option<String>,
    /// True while it is exiting.
    pub exiting: bool,
    /// Its live children.
    pub child_actors: Vec<ActorAddress>,
    /// Messages waiting in its mailbox, where the base can tell.
    pub pending_messages: usize,
    /// Messages it has received.
    pub received_messages: u64,
    /// Wakeups requested and not yet delivered, with their delays.
    pub pending_wakeups: Vec<Duration>,
    /// Failed attempts to handle a message (an `Err` or a panic; a retried message that
    /// fails again counts twice).
    #[serde(default)]
    pub failures: u64,
    /// The process it runs in (multi-process bases; `None` on the in-process ones).
    #[serde(default)]
    pub pid: Option<u32>,
    /// How long ago it last handled a message (status requests aside): its last activity.
    /// The multi-process bases read the clock per message, in the actor's own process; the
    /// in-process ones keep a coarse millisecond tick that their drivers refresh now and then
    /// ([`activity`](crate::activity)), so it may read a little long there. `None` before its
    /// first message.
    #[serde(default)]
    pub idle_for: Option<Duration>,
}

/// One actor in a [`SystemStatus`]: what the system's registry knows of it. The actor's own
/// counters (messages, failures, mailbox) are in its [`ActorStatus`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorSummary {
    /// The actor.
    pub address: ActorAddress,
    /// Its type name.
    pub actor_type: String,
    /// Its parent (the admin for top-level actors).
    pub parent: ActorAddress,
    /// Its global name, if any.
    pub global_name: Option<String>,
    /// The process it runs in (multi-process bases; `None` on the in-process ones).
    pub pid: Option<u32>,
}

/// A system's status (`Thespian_SystemStatus`). Informational; fields may grow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemStatus {
    /// The admin.
    pub admin_address: ActorAddress,
    /// The system's capabilities.
    pub capabilities: Capabilities,
    /// True while the system is shutting down.
    pub in_shutdown: bool,
    /// The registered dead-letter handler.
    pub dead_letter_handler: Option<ActorAddress>,
    /// Global names and their actors.
    pub global_actors: Vec<(String, ActorAddress)>,
    /// Top-level actors (children of the admin).
    pub child_actors: Vec<ActorAddress>,
    /// Number of live actors.
    pub live_actors: usize,
    /// The convention as this system sees it (multi-process bases; `None` elsewhere).
    #[serde(default)]
    pub convention: Option<ConventionStatus>,
    /// The base's Thespian name (`simpleSystemBase`, `multiprocTCPBase`, …).
    #[serde(default)]
    pub base: String,
    /// Every live actor of the system, in address order.
    #[serde(default)]
    pub actors: Vec<ActorSummary>,
    /// The operating-system processes of the system: 1 for the in-process bases; the admin
    /// and each actor process on the multi-process ones.
    #[serde(default)]
    pub processes: usize,
    /// Dead letters the system has had since it started (messages to actors that had exited).
    #[serde(default)]
    pub dead_letters: u64,
    /// Messages waiting in the system's mailboxes when the status was taken: the in-process
    /// bases sum their mailboxes; the multi-process admins ask each actor's node, which answers
    /// on arrival, and sum the answers that come within a second (an actor whose process does
    /// not answer in time, busy or gone, is not counted: see `pending_unanswered`); a request
    /// within a second of the last count gets that count. `None` where no count was taken: a
    /// status taken directly from a registry or an admin machine, or a request beyond the
    /// number one gathering answers at once.
    pub pending_messages: Option<u64>,
    /// `PoisonMessage`s the system has returned to senders since it started: for messages an
    /// actor failed to handle twice, sent to an actor that never started (`Child Aborted`),
    /// sent by an actor to an address no system issued, or that the transport could not
    /// deliver to a live peer.
    #[serde(default)]
    pub poison_messages: u64,
    /// Actors whose mailboxes `pending_messages` leaves out because their processes did not
    /// answer in time (multi-process bases): when not 0, the count is a lower bound. Last, so
    /// that a reader built before it still decodes the rest.
    #[serde(default)]
    pub pending_unanswered: usize,
}

/// A system's view of its convention, in a [`SystemStatus`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConventionStatus {
    /// The active leader's admin; `None` when this system leads (or has no convention).
    pub leader: Option<ActorAddress>,
    /// The remote systems this one knows, in a stable order.
    pub members: Vec<ConventionMemberStatus>,
}

/// One remote system of a convention, in a [`ConventionStatus`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConventionMemberStatus {
    /// Its admin (usable with `de_register_remote_system`).
    pub admin_address: ActorAddress,
    /// Its capabilities as last heard.
    pub capabilities: Capabilities,
    /// How long ago it was last heard from; `None` if never (pre-registered only).
    pub last_heard: Option<Duration>,
    /// This system pre-registered it (and invites it).
    pub pre_registered: bool,
    /// It is the active leader.
    pub is_leader: bool,
    /// Creates this system placed there (those refused or moved on excluded; exits there are
    /// not counted down).
    pub actors_placed: u64,
}

system_message!(
    ActorExitRequest => "ActorExitRequest",
    ChildActorExited => "ChildActorExited",
    PoisonMessage => "PoisonMessage",
    DeadEnvelope => "DeadEnvelope",
    WakeupMessage => "WakeupMessage",
    WatchMessage => "WatchMessage",
    ActorSystemConventionUpdate => "ActorSystemConventionUpdate",
    ValidateSource => "ValidateSource",
    ValidatedSource => "ValidatedSource",
    LoadedSource => "LoadedSource",
    UnloadedSource => "UnloadedSource",
    StatusRequest => "StatusRequest",
    ActorStatus => "ActorStatus",
    SystemStatus => "SystemStatus",
);

/// True for the system messages an external `ask`/`listen` hands back to the caller: poison
/// (unless it wraps another system message) and status replies. All other system messages are
/// internal and skipped.
pub fn passes_to_external(payload: &Payload) -> bool {
    if !payload.is_system() {
        return true;
    }
    if payload.has_type::<ActorStatus>() || payload.has_type::<SystemStatus>() {
        return true;
    }
    match payload.get::<PoisonMessage>() {
        Ok(p) => passes_to_external(&p.poison_message),
        Err(_) => false,
    }
}

/// True for messages that are never turned into dead letters themselves (no recursion).
pub fn is_never_dead_lettered(payload: &Payload) -> bool {
    payload.has_type::<DeadEnvelope>() || payload.has_type::<ChildActorExited>()
}
