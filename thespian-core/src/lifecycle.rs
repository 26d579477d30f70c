//! The sans-IO actor-lifecycle machine: what happens to one actor when a message arrives.
//!
//! Every base drives this one machine, so each rule is written once: one message at a time;
//! a failure (an `Err` or a caught panic) is retried once at once, then returned to the sender
//! as a `PoisonMessage` (never poison of poison); `ActorExitRequest` runs the handler, then the
//! children exit first, bottom-up, each ancestor getting `ChildActorExited`; while exiting only
//! exit traffic is handled and the rest becomes dead letters; status requests are answered by
//! the framework. The machine performs no IO: every effect goes through [`Services`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::actor::{panic_text, Actor, ActorSpec};
use crate::address::ActorAddress;
use crate::capabilities::Requirements;
use crate::children::Children;
use crate::context::{Context, Services};
use crate::message::{Envelope, Payload};
use crate::system_messages::{
    ActorExitRequest, ActorStatus, ChildActorExited, PoisonMessage, StatusRequest, WakeupMessage,
};

/// Where an actor is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CellState {
    /// Handling messages.
    Running,
    /// Handled its exit request; waiting for its children to exit.
    Exiting,
    /// Gone: the driver drops the actor and dead-letters what is still queued for it.
    Exited,
}

/// The rarely used part of an actor's state, allocated only for actors that have any of it
/// (requirements, a global name, a pending wakeup): most actors have none, and a million idle
/// actors should not carry 72 bytes each of empty fields.
#[derive(Debug, Default)]
pub(crate) struct CellExtra {
    pub(crate) requirements: Requirements,
    pub(crate) global_name: Option<String>,
    pub(crate) pending_wakeups: Vec<Duration>,
}

/// Requirements of an actor created without any.
static NO_REQUIREMENTS: Requirements = Requirements::new();

/// The framework's state for one actor, next to the user's actor value.
#[derive(Debug)]
pub struct ActorCell {
    address: ActorAddress,
    parent: ActorAddress,
    spec: ActorSpec,
    children: Children,
    /// Requirements, global name and pending wakeups, when the actor has any.
    extra: Option<Box<CellExtra>>,
    received: u64,
    /// Failed attempts, in three bytes so that `last_active` fits beside `state` in the word
    /// the old `u32` count shared with it: an idle actor is no bigger for keeping its last
    /// activity.
    failures: Failures,
    state: CellState,
    /// When it last handled a message, on its base's coarse clock
    /// ([`Services::activity_tick`]); 0 before its first message or where the base keeps no
    /// clock.
    last_active: u32,
}

/// A count of failed attempts in 24 bits, saturating at 16,777,215 (every failure also logs a
/// line, so no actor gets near).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct Failures([u8; 3]);

impl Failures {
    const MAX: u32 = (1 << 24) - 1;

    fn get(self) -> u32 {
        let [a, b, c] = self.0;
        u32::from_le_bytes([a, b, c, 0])
    }

    fn add(&mut self) {
        let n = self.get();
        if n < Self::MAX {
            let [a, b, c, _] = (n + 1).to_le_bytes();
            self.0 = [a, b, c];
        }
    }
}

impl ActorCell {
    /// The state of a newly constructed actor. `parent` is the admin for top-level actors.
    pub fn new(
        address: ActorAddress,
        parent: ActorAddress,
        spec: ActorSpec,
        requirements: Requirements,
        global_name: Option<String>,
    ) -> ActorCell {
        let extra = (!requirements.is_empty() || global_name.is_some()).then(|| {
            Box::new(CellExtra {
                requirements,
                global_name,
                pending_wakeups: Vec::new(),
            })
        });
        ActorCell {
            address,
            parent,
            spec,
            children: Children::default(),
            extra,
            received: 0,
            failures: Failures::default(),
            state: CellState::Running,
            last_active: 0,
        }
    }

    /// The actor's address.
    pub fn address(&self) -> &ActorAddress {
        &self.address
    }

    /// The actor's parent (the admin for top-level actors).
    pub fn parent(&self) -> &ActorAddress {
        &self.parent
    }

    /// Where the actor is in its life.
    pub fn state(&self) -> CellState {
        self.state
    }

    /// The actor's live children.
    pub fn children(&self) -> &[ActorAddress] {
        self.children.as_slice()
    }

    /// The actor's type description.
    pub fn spec(&self) -> &ActorSpec {
        &self.spec
    }

    /// The requirements the actor was created with.
    pub fn requirements(&self) -> &Requirements {
        self.extra
            .as_ref()
            .map_or(&NO_REQUIREMENTS, |e| &e.requirements)
    }

    /// The global name the actor was created with, if any.
    pub fn global_name(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.global_name.as_deref())
    }

    /// Handles one message for this actor. Returns the state afterwards; on `Exited` the driver
    /// drops the actor (the machine has already told the parent and called `actor_exited`).
    pub fn handle(
        &mut self,
        actor: &mut dyn Actor,
        envelope: Envelope,
        services: &mut dyn Services,
    ) -> CellState {
        let payload = envelope.payload();
        if payload.has_type::<StatusRequest>() {
            self.reply_status(envelope.sender(), services);
            return self.state;
        }
        match self.state {
            CellState::Exited => services.dead_letter(&self.address.clone(), envelope),
            CellState::Exiting => self.handle_while_exiting(actor, envelope, services),
            CellState::Running => self.handle_running(actor, envelope, services),
        }
        self.state
    }

    /// Starts this actor's exit without running its handler (used when its process or host is
    /// lost). Children are asked to exit as for a recursive request.
    pub fn begin_exit(&mut self, services: &mut dyn Services) -> CellState {
        if self.state == CellState::Running {
            self.start_exit(true, services);
        }
        self.state
    }

    fn handle_running(
        &mut self,
        actor: &mut dyn Actor,
        envelope: Envelope,
        services: &mut dyn Services,
    ) {
        self.received += 1;
        if let Some(tick) = services.activity_tick() {
            self.last_active = tick;
        }
        let payload = envelope.payload();
        if let Some(exit) = payload.try_get::<ActorExitRequest>() {
            // The handler runs once; a failing exit handler still exits.
            if let Err(details) = self.attempt(actor, &envelope, services) {
                log::warn!(
                    "{}: exit handler failed (exiting anyway): {details}",
                    self.address
                );
            }
            let recursive = exit.is_recursive();
            self.start_exit(recursive, services);
            return;
        }
        if let Some(exited) = payload.try_get::<ChildActorExited>() {
            let child = exited.child_address.clone();
            self.forget_child(&child);
        } else if payload.has_type::<WakeupMessage>() {
            if let (Ok(w), Some(extra)) = (payload.get::<WakeupMessage>(), &mut self.extra) {
                let pending = &mut extra.pending_wakeups;
                if let Some(i) = pending.iter().position(|d| *d == w.delay_period) {
                    pending.remove(i);
                }
            }
        }
        self.deliver_with_retry(actor, envelope, services);
    }

    fn handle_while_exiting(
        &mut self,
        actor: &mut dyn Actor,
        envelope: Envelope,
        services: &mut dyn Services,
    ) {
        let payload = envelope.payload();
        if let Some(exited) = payload.try_get::<ChildActorExited>() {
            let child = exited.child_address.clone();
            self.forget_child(&child);
            if let Err(details) = self.attempt(actor, &envelope, services) {
                log::warn!(
                    "{}: ChildActorExited handler failed while exiting: {details}",
                    self.address
                );
            }
            if self.children.is_empty() {
                self.finish_exit(services);
            }
        } else if payload.has_type::<ActorExitRequest>() {
            // Already exiting: a repeated request changes nothing.
        } else {
            let me = self.address.clone();
            services.dead_letter(&me, envelope);
        }
    }

    /// Runs `receive` once, catching panics. The error text on failure.
    fn attempt(
        &mut self,
        actor: &mut dyn Actor,
        envelope: &Envelope,
        services: &mut dyn Services,
    ) -> Result<(), String> {
        let mut ctx = Context::new(&self.address, &mut self.children, &mut self.extra, services);
        match catch_unwind(AssertUnwindSafe(|| actor.receive(envelope, &mut ctx))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(format!("panic: {}", panic_text(&*panic))),
        }
    }

    fn deliver_with_retry(
        &mut self,
        actor: &mut dyn Actor,
        envelope: Envelope,
        services: &mut dyn Services,
    ) {
        let first = match self.attempt(actor, &envelope, services) {
            Ok(()) => return,
            Err(details) => details,
        };
        self.failures.add();
        log::warn!(
            "{} ({}) failed on {:?}, retrying once: {first}",
            self.address,
            self.spec.type_name(),
            envelope.type_name()
        );
        let details = match self.attempt(actor, &envelope, services) {
            Ok(()) => return,
            Err(details) => details,
        };
        self.failures.add();
        log::error!(
            "{} ({}) failed twice on {:?}: {details}",
            self.address,
            self.spec.type_name(),
            envelope.type_name()
        );
        let (sender, payload) = envelope.into_parts();
        if payload.has_type::<PoisonMessage>() {
            return; // Poison never wraps poison.
        }
        let poison = Payload::new(PoisonMessage::new(payload, details));
        services.poison_returned(&self.address);
        if let Err(e) = services.send(&self.address, &sender, poison) {
            log::error!(
                "{}: could not return PoisonMessage to {sender}: {e}",
                self.address
            );
        }
    }

    fn start_exit(&mut self, recursive: bool, services: &mut dyn Services) {
        self.state = CellState::Exiting;
        if let Some(extra) = &mut self.extra {
            extra.pending_wakeups = Vec::new();
        }
        if !recursive {
            self.children.clear(); // Orphaned: they keep running.
        }
        if self.children.is_empty() {
            self.finish_exit(services);
            return;
        }
        for child in self.children.as_slice().to_vec() {
            if let Err(e) =
                services.send(&self.address, &child, Payload::new(ActorExitRequest::new()))
            {
                log::warn!(
                    "{}: exit request to child {child} failed ({e}); treating it as exited",
                    self.address
                );
                self.forget_child(&child);
            }
        }
        if self.children.is_empty() {
            self.finish_exit(services);
        }
    }

    /// Drops `child` from the live children.
    fn forget_child(&mut self, child: &ActorAddress) {
        self.children.remove(child);
    }

    fn finish_exit(&mut self, services: &mut dyn Services) {
        self.state = CellState::Exited;
        let me = self.address.clone();
        services.actor_exited(&me);
        if !self.parent.is_admin() {
            let notice = Payload::new(ChildActorExited::new(me.clone()));
            if let Err(e) = services.send(&me, &self.parent.clone(), notice) {
                log::debug!("{me}: ChildActorExited to parent failed: {e}");
            }
        }
    }

    fn reply_status(&self, to: &ActorAddress, services: &mut dyn Services) {
        let status = self.status(services);
        if let Err(e) = services.send(&self.address, to, Payload::new(status)) {
            log::debug!("{}: status reply to {to} failed: {e}", self.address);
        }
    }

    /// The actor's status, as a `StatusRequest` is answered (also what drivers log on
    /// request, e.g. on `SIGUSR1`).
    pub fn status(&self, services: &dyn Services) -> ActorStatus {
        ActorStatus {
            actor_address: self.address.clone(),
            actor_type: self.spec.type_name().to_owned(),
            admin_address: services.admin_address(),
            parent_address: self.parent.clone(),
            global_name: self.global_name().map(str::to_owned),
            exiting: self.state != CellState::Running,
            child_actors: self.children.as_slice().to_vec(),
            pending_messages: services.mailbox_len(&self.address),
            received_messages: self.received,
            pending_wakeups: self
                .extra
                .as_ref()
                .map(|e| e.pending_wakeups.clone())
                .unwrap_or_default(),
            failures: u64::from(self.failures.get()),
            pid: services.process_id(),
            idle_for: services.idle_for(&self.address).or_else(|| {
                (self.last_active != 0)
                    .then(|| services.since_tick(self.last_active))
                    .flatten()
            }),
        }
    }
}

#[cfg(test)]
mod failures_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn failures_saturate() {
        let mut f = Failures([0xFF, 0xFF, 0xFE]);
        assert_eq!(f.get(), Failures::MAX - 0x1_0000);
        f = Failures([0xFF; 3]);
        f.add();
        assert_eq!(f.get(), Failures::MAX);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x11FE_0001),
            cases: 256,
            ..ProptestConfig::default()
        })]

        /// Adding one to any count below the bound gives the next count.
        #[test]
        fn add_counts_one(n in 0u32..Failures::MAX) {
            let [a, b, c, _] = n.to_le_bytes();
            let mut f = Failures([a, b, c]);
            prop_assert_eq!(f.get(), n);
            f.add();
            prop_assert_eq!(f.get(), n + 1);
        }
    }
}
