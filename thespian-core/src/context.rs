//! The `Context` an actor acts through, and the `Services` a base provides behind it.
//!
//! Every Thespian actor call is a method on [`Context`]. The context itself performs no IO: it
//! forwards each effect to the base's [`Services`], the one seam between the lifecycle machine
//! and a driver. A call a base cannot serve returns [`ThespianError::NotSupported`], never a
//! silent no-op.

use std::time::Duration;

use crate::actor::{Actor, ActorSpec, CreateOptions, CreateRequest, NewActor};
use crate::address::ActorAddress;
use crate::capabilities::{Capabilities, CapabilityValue};
use crate::children::Children;
use crate::error::{Result, ThespianError};
use crate::lifecycle::CellExtra;
use crate::message::{Envelope, IntoMessage, Payload};
use crate::system_messages::Fd;

/// The result of a create: the address, and whether the requester became the parent (false
/// when a global name already named a live actor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The actor's address.
    pub address: ActorAddress,
    /// True when the requester is the new actor's parent.
    pub is_child: bool,
}

/// A remote system named in `de_register_remote_system`: by address string or admin address.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RemoteSystem {
    /// A transport address string such as `"host:port"`.
    Address(String),
    /// The remote admin's address (e.g. from an `ActorSystemConventionUpdate`).
    Admin(ActorAddress),
}

/// What a system base provides to the lifecycle machine: every effect an actor can have.
///
/// `actor` is always the calling actor. Optional features default to `NotSupported`.
pub trait Services {
    /// The base's Thespian name (e.g. `simpleSystemBase`).
    fn base_name(&self) -> &'static str;
    /// The local system's capabilities.
    fn capabilities(&self) -> &Capabilities;
    /// The local system's admin address.
    fn admin_address(&self) -> ActorAddress;
    /// Sends `payload` from `from` to `to`. Errors only for what is known at once.
    fn send(&mut self, from: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()>;
    /// Creates an actor requested by `parent`.
    fn create_actor(&mut self, parent: &ActorAddress, request: CreateRequest) -> Result<Created>;
    /// Delivers a `WakeupMessage` to `actor` after `delay`.
    fn wakeup_after(&mut self, actor: &ActorAddress, delay: Duration, payload: Option<Payload>);
    /// Registers (or, for the current handler, unregisters) the dead-letter handler.
    fn handle_dead_letters(&mut self, actor: &ActorAddress, enable: bool);
    /// Sets (`Some`) or removes (`None`) a capability of the local system. [`Context`] has
    /// already checked the update ([`check_change`](crate::capabilities::check_change)).
    fn update_capability(
        &mut self,
        actor: &ActorAddress,
        name: &str,
        value: Option<CapabilityValue>,
    ) -> Result<()>;
    /// Shuts the local system down.
    fn actor_system_shutdown(&mut self, actor: &ActorAddress);
    /// A message for `target` that can no longer be delivered (the target exited).
    fn dead_letter(&mut self, target: &ActorAddress, envelope: Envelope);
    /// `actor` has exited: forget it, free its global name.
    fn actor_exited(&mut self, actor: &ActorAddress);
    /// The operating-system process the actors run in, on bases that run them in processes
    /// of their own; `None` on the in-process bases.
    fn process_id(&self) -> Option<u32> {
        None
    }
    /// How long ago `actor` last handled a message, on bases that keep the time (for its
    /// status); `None` by default.
    fn idle_for(&self, _actor: &ActorAddress) -> Option<Duration> {
        None
    }
    /// The base's coarse activity clock, for an actor to stamp when it handles a message:
    /// milliseconds since the system started, never 0, as last read by the calling thread's
    /// driver (which may lag the true time a little: drivers refresh it now and then, not on
    /// every message). `None` (the default) where the base keeps no such clock.
    fn activity_tick(&self) -> Option<u32> {
        None
    }
    /// How long ago `tick` (an [`activity_tick`](Self::activity_tick) reading) was, from a
    /// fresh reading of the clock: an actor's last activity in its status.
    fn since_tick(&self, _tick: u32) -> Option<Duration> {
        None
    }
    /// Messages waiting for `actor`, where the base can tell.
    fn mailbox_len(&self, _actor: &ActorAddress) -> usize {
        0
    }
    /// `actor` is returning a `PoisonMessage` to a sender (it failed twice on a message): the
    /// base counts it for its [`SystemStatus`](crate::SystemStatus). A rare path; nothing by
    /// default.
    fn poison_returned(&mut self, _actor: &ActorAddress) {}

    /// Registers for `ActorSystemConventionUpdate` notices.
    fn notify_on_system_registration_changes(
        &mut self,
        _actor: &ActorAddress,
        _enable: bool,
    ) -> Result<()> {
        Err(self.not_supported("notify_on_system_registration_changes"))
    }
    /// Makes this system the convention leader of a remote system.
    fn pre_register_remote_system(
        &mut self,
        _actor: &ActorAddress,
        _remote: &str,
        _capabilities: Capabilities,
    ) -> Result<()> {
        Err(self.not_supported("pre_register_remote_system"))
    }
    /// Drops a remote system from the convention.
    fn de_register_remote_system(
        &mut self,
        _actor: &ActorAddress,
        _remote: RemoteSystem,
    ) -> Result<()> {
        Err(self.not_supported("de_register_remote_system"))
    }
    /// Loads an actor source; returns its hash.
    fn load_actor_source(
        &mut self,
        _actor: &ActorAddress,
        _source: Vec<u8>,
        _info: Option<String>,
    ) -> Result<String> {
        Err(self.not_supported("load_actor_source"))
    }
    /// Unloads an actor source.
    fn unload_actor_source(&mut self, _actor: &ActorAddress, _hash: &str) -> Result<()> {
        Err(self.not_supported("unload_actor_source"))
    }
    /// Registers for `LoadedSource` / `UnloadedSource` notices.
    fn notify_on_source_availability(
        &mut self,
        _actor: &ActorAddress,
        _enable: bool,
    ) -> Result<()> {
        Err(self.not_supported("notify_on_source_availability"))
    }
    /// Makes `actor` the Source Authority.
    fn register_source_authority(&mut self, _actor: &ActorAddress) -> Result<()> {
        Err(self.not_supported("register_source_authority"))
    }
    /// Watches file descriptors for readability until the actor's next message.
    fn watch(&mut self, _actor: &ActorAddress, _fds: &[Fd]) -> Result<()> {
        Err(self.not_supported("watch (ThespianWatch)"))
    }

    /// The `NotSupported` error for `operation` on this base.
    fn not_supported(&self, operation: &'static str) -> ThespianError {
        ThespianError::NotSupported {
            operation,
            base: self.base_name(),
        }
    }
}

/// What an actor can do while handling a message.
pub struct Context<'a> {
    me: &'a ActorAddress,
    children: &'a mut Children,
    extra: &'a mut Option<Box<CellExtra>>,
    services: &'a mut dyn Services,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        me: &'a ActorAddress,
        children: &'a mut Children,
        extra: &'a mut Option<Box<CellExtra>>,
        services: &'a mut dyn Services,
    ) -> Context<'a> {
        Context {
            me,
            children,
            extra,
            services,
        }
    }

    fn pending_wakeups(&mut self) -> &mut Vec<Duration> {
        &mut self.extra.get_or_insert_with(Box::default).pending_wakeups
    }

    /// This actor's address.
    pub fn my_address(&self) -> &ActorAddress {
        self.me
    }

    /// The global name this actor was created with, if any.
    pub fn global_name(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.global_name.as_deref())
    }

    /// The hosting system's capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        self.services.capabilities()
    }

    /// The hosting system's admin address (target of status requests).
    pub fn admin_address(&self) -> ActorAddress {
        self.services.admin_address()
    }

    /// The hosting base's Thespian name.
    pub fn base_name(&self) -> &'static str {
        self.services.base_name()
    }

    /// This actor's live children.
    pub fn children(&self) -> &[ActorAddress] {
        self.children.as_slice()
    }

    /// Sends a message. Returns an error only for what is known at once (a message too large
    /// for the transport, a full outbound queue); later failures come back as `PoisonMessage`
    /// or dead letters.
    pub fn send(&mut self, to: &ActorAddress, message: impl IntoMessage) -> Result<()> {
        self.services.send(self.me, to, Payload::new(message))
    }

    /// Sends an already type-erased payload (e.g. forwarding a received one undecoded).
    pub fn send_payload(&mut self, to: &ActorAddress, payload: Payload) -> Result<()> {
        self.services.send(self.me, to, payload)
    }

    /// Forwards a received envelope's message to `to`, without decoding it.
    pub fn forward(&mut self, to: &ActorAddress, envelope: &Envelope) -> Result<()> {
        self.services.send(self.me, to, envelope.payload().clone())
    }

    /// Creates a child actor of type `A`. The address is usable at once.
    pub fn create_actor<A: Actor + NewActor>(&mut self) -> Result<ActorAddress> {
        self.create(CreateRequest::of::<A>())
    }

    /// Creates an actor of type `A` with requirements, a global name or a source hash: the
    /// same [`CreateOptions`] as `ActorSystem::create_actor_with`. With a global name that
    /// already names a live actor, that actor's address is returned (and this actor does not
    /// become its parent).
    pub fn create_actor_with<A: Actor + NewActor>(
        &mut self,
        options: CreateOptions,
    ) -> Result<ActorAddress> {
        self.create(options.request(ActorSpec::of::<A>()))
    }

    /// Creates an actor with requirements, a global name or a source hash. With a global name
    /// that already names a live actor, that actor's address is returned (and this actor does
    /// not become its parent).
    pub fn create(&mut self, request: CreateRequest) -> Result<ActorAddress> {
        let created = self.services.create_actor(self.me, request)?;
        // A child's address is freshly allocated, so it is never listed yet: no `contains`
        // scan (it made an actor creating n children O(n²)).
        if created.is_child {
            self.children.push(created.address.clone());
        }
        Ok(created.address)
    }

    /// Schedules a `WakeupMessage` (without payload) to this actor after `delay`.
    pub fn wakeup_after(&mut self, delay: Duration) {
        self.pending_wakeups().push(delay);
        self.services.wakeup_after(self.me, delay, None);
    }

    /// Schedules a `WakeupMessage` carrying `payload` to this actor after `delay`. Several may
    /// be pending; none can be cancelled.
    pub fn wakeup_after_with(&mut self, delay: Duration, payload: impl IntoMessage) {
        self.pending_wakeups().push(delay);
        self.services
            .wakeup_after(self.me, delay, Some(Payload::new(payload)));
    }

    /// Becomes (`true`) or stops being (`false`) the system's dead-letter handler. The latest
    /// registration wins; stopping only works for the current handler.
    pub fn handle_dead_letters(&mut self, enable: bool) {
        self.services.handle_dead_letters(self.me, enable);
    }

    /// Registers for `ActorSystemConventionUpdate` notices (convention bases).
    pub fn notify_on_system_registration_changes(&mut self, enable: bool) -> Result<()> {
        self.services
            .notify_on_system_registration_changes(self.me, enable)
    }

    /// Makes this system the leader of the remote system at `remote` (`"host:port"`).
    pub fn pre_register_remote_system(
        &mut self,
        remote: &str,
        capabilities: Capabilities,
    ) -> Result<()> {
        self.services
            .pre_register_remote_system(self.me, remote, capabilities)
    }

    /// Drops a remote system from this system's convention.
    pub fn de_register_remote_system(&mut self, remote: RemoteSystem) -> Result<()> {
        self.services.de_register_remote_system(self.me, remote)
    }

    /// Loads an actor source (guarded by the Source Authority); returns its hash at once.
    pub fn load_actor_source(&mut self, source: Vec<u8>, info: Option<String>) -> Result<String> {
        self.services.load_actor_source(self.me, source, info)
    }

    /// Unloads an actor source; running actors from it keep running.
    pub fn unload_actor_source(&mut self, hash: &str) -> Result<()> {
        self.services.unload_actor_source(self.me, hash)
    }

    /// Registers for `LoadedSource` / `UnloadedSource` notices.
    pub fn notify_on_source_availability(&mut self, enable: bool) -> Result<()> {
        self.services.notify_on_source_availability(self.me, enable)
    }

    /// Becomes the system's Source Authority.
    pub fn register_source_authority(&mut self) -> Result<()> {
        self.services.register_source_authority(self.me)
    }

    /// Sets (`Some`) or removes (`None`) a capability of the local system. Actors that no
    /// longer fit are asked to exit, possibly including this one.
    pub fn update_capability(&mut self, name: &str, value: Option<CapabilityValue>) -> Result<()> {
        crate::capabilities::check_change(name, value.as_ref())?;
        self.services.update_capability(self.me, name, value)
    }

    /// Shuts the whole local actor system down.
    pub fn actor_system_shutdown(&mut self) {
        self.services.actor_system_shutdown(self.me);
    }

    /// Thespian's `ThespianWatch`: until the next message, deliver a `WatchMessage` when any of
    /// `fds` is readable.
    pub fn watch(&mut self, fds: &[Fd]) -> Result<()> {
        self.services.watch(self.me, fds)
    }
}
