//! The `Simple` base (Thespian's `simpleSystemBase`): every actor runs in the caller's thread,
//! during `tell`, `ask` and `listen`, in one global FIFO order, deterministically.
//!
//! It is the synchronous driver of `thespian-core`'s machines: [`ActorCell`] decides what one
//! message does to one actor, [`Registry`] decides creates, names, dead letters and capability
//! updates; this module only queues messages, keeps timers and calls them. A processing limit
//! per call (and the `ask`/`listen` deadline) keeps a message loop from hanging the caller.
//!
//! Messages wait in one global queue between deliveries (and between calls, when the
//! processing limit stops a call), so the base bounds what one sender may have there for one
//! target (SPEC §8.13): over the queue limit a user's send fails with `QueueFull`. The counts
//! are kept per (sender, target) next to the queue and counted down as messages are delivered.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thespian_core::activity::ActivityClock;
use thespian_core::base::{self, not_issued_error, not_issued_poison};
use thespian_core::context::Created;
use thespian_core::registry::{ActorRecord, AddressHasher, CreatePlan, DeadLetterRoute};
use thespian_core::system_messages::passes_to_external;
use thespian_core::{
    Actor, ActorAddress, ActorCell, ActorExitRequest, BaseDriver, Capabilities, CapabilityValue,
    CellState, ChildActorExited, CreateRequest, Envelope, Payload, Registry, Result, Services,
    StatusRequest, SystemId, ThespianError, WakeupMessage,
};

/// Thespian's name of this base.
pub(crate) const BASE_NAME: &str = "simpleSystemBase";
/// `Thespian ActorSystem Version` of this base.
pub(crate) const BASE_VERSION: i64 = 2;
/// Capacity of the buffer of actors created during one delivery that is kept between deliveries.
const SPAWN_BUFFER_KEPT: usize = 64;
/// Default processing limit: messages delivered per `tell`/`ask`/`listen` call.
pub(crate) const DEFAULT_PROCESSING_LIMIT: usize = 1_000_000;

thread_local! {
    /// Set while this thread runs actors of a simple base: a re-entrant call would deadlock.
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

struct Slot {
    cell: ActorCell,
    actor: Box<dyn Actor>,
}

struct Timer {
    due: Instant,
    seq: u64,
    target: ActorAddress,
    message: WakeupMessage,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Timer) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Timer) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Timer) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Messages of one sender to one target waiting in the queue, keyed by (sender, target)
/// numbers: every queued message's target is of this system, and so is its sender, except
/// for poison coming back from an address no system issued (whose number may then share a
/// count with a local sender's; that only makes that sender's bound tighter by the poison).
type QueuedCounts = HashMap<(u64, u64), usize, BuildHasherDefault<AddressHasher>>;

/// How many messages of one run share a reading of the activity clock.
const TICK_EVERY: u32 = 16;

/// Everything but the actors themselves: the `Services` the lifecycle machine acts through.
struct World {
    registry: Registry,
    queue: VecDeque<(ActorAddress, Envelope)>,
    /// What each sender has queued to each target, for the queue limit: kept only while the
    /// queue is long (`None` otherwise). A sender can have `queue_limit` messages queued to one
    /// target only when the whole queue holds that many, so a shorter queue needs no count and
    /// the usual short queue costs no map work per message. Counted from the queue when it
    /// first reaches the limit at a check, dropped when it falls under half of it again: at
    /// most one scan per `queue_limit / 2` messages.
    queued: Option<QueuedCounts>,
    /// What one sender may have queued to one target (see `ActorSystemBuilder::queue_limit`).
    queue_limit: usize,
    endpoints: HashMap<ActorAddress, VecDeque<Envelope>>,
    timers: BinaryHeap<Reverse<Timer>>,
    timer_seq: u64,
    spawned: Vec<(ActorAddress, Slot)>,
    shutdown_requested: bool,
    /// The clock actors' last activity is kept on, and the tick handed to them: refreshed
    /// when a run starts and every [`TICK_EVERY`] messages of a run (the loop reads the time
    /// once per round anyway; the tick arithmetic is what is saved).
    clock: ActivityClock,
    tick: u32,
}

impl World {
    /// The framework's own delivery: never refused.
    fn enqueue(&mut self, from: &ActorAddress, to: &ActorAddress, payload: Payload) {
        let envelope = Envelope::new(from.clone(), payload);
        if let Some(inbox) = self.endpoints.get_mut(to) {
            inbox.push_back(envelope);
        } else {
            self.push(to.clone(), envelope);
        }
    }

    /// A user's send (`tell`, `ask`, `ctx.send`): an error for an address this system did not
    /// issue, `QueueFull` when `from` already has the limit queued to `to` (system messages
    /// excepted). Messages to external endpoints are not bounded.
    fn enqueue_bounded(
        &mut self,
        from: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
    ) -> Result<()> {
        if to.system() != self.registry.admin_address().system() {
            return Err(not_issued_error(to));
        }
        if self.queue.len() >= self.queue_limit
            && !payload.is_system()
            && !self.endpoints.contains_key(to)
        {
            let queue = &self.queue;
            let counts = self.queued.get_or_insert_with(|| {
                let mut counts = QueuedCounts::default();
                for (to, envelope) in queue {
                    *counts.entry((envelope.sender().id(), to.id())).or_insert(0) += 1;
                }
                counts
            });
            let queued = counts.get(&(from.id(), to.id())).copied().unwrap_or(0);
            if queued >= self.queue_limit {
                return Err(ThespianError::QueueFull { target: to.clone() });
            }
        }
        self.enqueue(from, to, payload);
        Ok(())
    }

    /// Queues a message for an actor (or the admin), counting it for its sender while counts
    /// are kept.
    fn push(&mut self, to: ActorAddress, envelope: Envelope) {
        if let Some(counts) = &mut self.queued {
            *counts.entry((envelope.sender().id(), to.id())).or_insert(0) += 1;
        }
        self.queue.push_back((to, envelope));
    }

    /// Takes the next queued message, counting it down for its sender.
    fn pop(&mut self) -> Option<(ActorAddress, Envelope)> {
        let (to, envelope) = self.queue.pop_front()?;
        if let Some(counts) = &mut self.queued {
            let key = (envelope.sender().id(), to.id());
            if let Some(count) = counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&key);
                }
            }
            if self.queue.is_empty() || self.queue.len() < self.queue_limit / 2 {
                self.queued = None;
            }
        }
        Some((to, envelope))
    }

    /// Drops every queued message.
    fn clear_queue(&mut self) {
        self.queue.clear();
        self.queued = None;
    }

    fn construct(
        &mut self,
        parent: &ActorAddress,
        address: ActorAddress,
        request: CreateRequest,
    ) -> Result<Slot> {
        let caps = self.registry.capabilities().clone();
        match request.spec.construct(&caps, &request.requirements) {
            Ok(actor) => {
                self.registry.register(
                    address.clone(),
                    ActorRecord {
                        parent: parent.clone(),
                        spec: request.spec,
                        requirements: request.requirements.clone(),
                        global_name: request.global_name.clone(),
                    },
                );
                let cell = ActorCell::new(
                    address,
                    parent.clone(),
                    request.spec,
                    request.requirements,
                    request.global_name,
                );
                Ok(Slot { cell, actor })
            }
            Err(reason) => {
                log::warn!(
                    "actor {} ({address}) failed to start: {reason}",
                    request.spec.type_name()
                );
                self.registry.abort(&address);
                Err(ThespianError::ActorCreationFailed {
                    actor_type: request.spec.type_name().to_owned(),
                    reason,
                })
            }
        }
    }

    fn update_capability(&mut self, name: &str, value: Option<CapabilityValue>) -> Result<()> {
        let admin = self.registry.admin_address();
        for misfit in self.registry.update_capability(name, value) {
            log::info!("{misfit} no longer fits the capabilities after updating {name:?}; asking it to exit");
            self.enqueue(&admin, &misfit, Payload::new(ActorExitRequest::new()));
        }
        Ok(())
    }
}

impl Services for World {
    fn base_name(&self) -> &'static str {
        BASE_NAME
    }

    fn capabilities(&self) -> &Capabilities {
        self.registry.capabilities()
    }

    fn admin_address(&self) -> ActorAddress {
        self.registry.admin_address()
    }

    fn send(&mut self, from: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()> {
        if to.system() != self.registry.admin_address().system() {
            // No system issued `to`: the message comes back to its sender as poison.
            match not_issued_poison(to, payload) {
                Ok(poison) => {
                    self.registry.poison_returned();
                    self.enqueue(to, from, poison)
                }
                // Poison never wraps poison: this one is a dead letter.
                Err(poison) => self.dead_letter(to, Envelope::new(from.clone(), poison)),
            }
            return Ok(());
        }
        self.enqueue_bounded(from, to, payload)
    }

    fn create_actor(&mut self, parent: &ActorAddress, request: CreateRequest) -> Result<Created> {
        match self.registry.plan_create(&request)? {
            CreatePlan::Existing(address) => Ok(Created {
                address,
                is_child: false,
            }),
            CreatePlan::New(address) => {
                match self.construct(parent, address.clone(), request) {
                    Ok(slot) => self.spawned.push((address.clone(), slot)),
                    // The child never started: its parent hears of it as of any child's exit.
                    Err(_) => {
                        let notice = Payload::new(ChildActorExited::new(address.clone()));
                        self.enqueue(&address, parent, notice);
                    }
                }
                Ok(Created {
                    address,
                    is_child: true,
                })
            }
        }
    }

    fn wakeup_after(&mut self, actor: &ActorAddress, delay: Duration, payload: Option<Payload>) {
        self.timer_seq += 1;
        self.timers.push(Reverse(Timer {
            // Due `delay` after the call itself, not after the delivery began.
            due: Instant::now() + delay,
            seq: self.timer_seq,
            target: actor.clone(),
            message: WakeupMessage::new(delay, payload),
        }));
    }

    fn handle_dead_letters(&mut self, actor: &ActorAddress, enable: bool) {
        self.registry.handle_dead_letters(actor, enable);
    }

    fn update_capability(
        &mut self,
        _actor: &ActorAddress,
        name: &str,
        value: Option<CapabilityValue>,
    ) -> Result<()> {
        World::update_capability(self, name, value)
    }

    fn actor_system_shutdown(&mut self, actor: &ActorAddress) {
        log::info!("{actor} asked for the actor system to shut down");
        self.shutdown_requested = true;
    }

    fn dead_letter(&mut self, target: &ActorAddress, envelope: Envelope) {
        match self.registry.route_dead_letter(target, envelope) {
            DeadLetterRoute::Handler { handler, payload } => {
                let admin = self.registry.admin_address();
                self.enqueue(&admin, &handler, payload);
            }
            DeadLetterRoute::ChildAborted { sender, payload } => {
                self.enqueue(target, &sender, payload)
            }
            DeadLetterRoute::Drop => {}
        }
    }

    fn actor_exited(&mut self, actor: &ActorAddress) {
        self.registry.exited(actor);
    }

    fn mailbox_len(&self, actor: &ActorAddress) -> usize {
        self.queue.iter().filter(|(t, _)| t == actor).count()
    }

    fn poison_returned(&mut self, _actor: &ActorAddress) {
        self.registry.poison_returned();
    }

    fn activity_tick(&self) -> Option<u32> {
        Some(self.tick)
    }

    fn since_tick(&self, tick: u32) -> Option<Duration> {
        Some(self.clock.since(tick, Instant::now()))
    }
}

struct Core {
    world: World,
    actors: HashMap<ActorAddress, Slot>,
    processing_limit: usize,
    shut_down: bool,
}

impl Core {
    fn deliver(&mut self, target: ActorAddress, envelope: Envelope) {
        if target.is_admin() && target == self.world.registry.admin_address() {
            self.admin_receive(envelope);
            return;
        }
        match self.actors.get_mut(&target) {
            Some(slot) => {
                let state = slot
                    .cell
                    .handle(&mut *slot.actor, envelope, &mut self.world);
                if state == CellState::Exited {
                    self.actors.remove(&target);
                }
            }
            None => self.world.dead_letter(&target, envelope),
        }
        for (address, slot) in self.world.spawned.drain(..) {
            self.actors.insert(address, slot);
        }
        // One handler spawning a million children must not keep a million-slot buffer alive.
        self.world.spawned.shrink_to(SPAWN_BUFFER_KEPT);
    }

    /// Messages to the admin: status requests are answered; anything else is discarded.
    fn admin_receive(&mut self, envelope: Envelope) {
        let admin = self.world.registry.admin_address();
        if envelope.payload().has_type::<StatusRequest>() {
            let mut status = self.world.registry.status();
            // The one queue holds every waiting message, the admin's included.
            status.pending_messages = Some(self.world.queue.len() as u64);
            self.world
                .enqueue(&admin, envelope.sender(), Payload::new(status));
        } else {
            log::warn!(
                "ADMIN DISCARD: {} from {}",
                envelope.type_name(),
                envelope.sender()
            );
        }
    }

    fn fire_due_timers(&mut self, now: Instant) {
        while let Some(Reverse(timer)) = self.world.timers.peek() {
            if timer.due > now {
                break;
            }
            let Reverse(timer) = self.world.timers.pop().expect("peeked");
            let alive = self
                .actors
                .get(&timer.target)
                .is_some_and(|s| s.cell.state() == CellState::Running);
            if alive {
                self.world.push(
                    timer.target.clone(),
                    Envelope::new(timer.target, Payload::new(timer.message)),
                );
            }
        }
    }

    fn has_reply(&self, endpoint: &ActorAddress) -> bool {
        self.world
            .endpoints
            .get(endpoint)
            .is_some_and(|inbox| inbox.iter().any(|e| passes_to_external(e.payload())))
    }

    /// Runs actors until quiescent, until `endpoint` has a reply (if given), until the
    /// deadline, or until the processing limit.
    fn run(&mut self, endpoint: Option<&ActorAddress>, deadline: Option<Instant>) {
        let mut processed = 0usize;
        let mut since_tick = TICK_EVERY;
        loop {
            if endpoint.is_some_and(|e| self.has_reply(e)) {
                return;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return;
            }
            self.fire_due_timers(now);
            if !self.world.queue.is_empty() {
                if since_tick >= TICK_EVERY {
                    self.world.tick = self.world.clock.tick_at(now);
                    since_tick = 0;
                }
                since_tick += 1;
                if processed >= self.processing_limit {
                    log::warn!(
                        "simple base: processing limit of {} messages reached for this call",
                        self.processing_limit
                    );
                    return;
                }
                let (target, envelope) = self.world.pop().expect("the queue is not empty");
                processed += 1;
                self.deliver(target, envelope);
                continue;
            }
            if self.world.shutdown_requested {
                self.begin_shutdown();
                continue;
            }
            if self.world.registry.in_shutdown() {
                self.finish_shutdown();
                return;
            }
            // Quiescent: wait for a wakeup due before the deadline, if any.
            let next_due = self.world.timers.peek().map(|Reverse(t)| t.due);
            match (deadline, next_due) {
                (Some(deadline), Some(due)) if due <= deadline => {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                _ => return,
            }
        }
    }

    fn begin_shutdown(&mut self) {
        self.world.shutdown_requested = false;
        if self.world.registry.in_shutdown() {
            return;
        }
        self.world.registry.begin_shutdown();
        self.world.timers.clear();
        let admin = self.world.registry.admin_address();
        for root in self.world.registry.roots() {
            self.world
                .enqueue(&admin, &root, Payload::new(ActorExitRequest::new()));
        }
    }

    fn finish_shutdown(&mut self) {
        self.actors.clear();
        self.world.clear_queue();
        self.world.timers.clear();
        self.shut_down = true;
    }

    /// Runs the actors until a reply for `endpoint` waits or `deadline` passes; takes the reply.
    fn receive(&mut self, endpoint: &ActorAddress, deadline: Instant) -> Option<Envelope> {
        self.run(Some(endpoint), Some(deadline));
        self.pop_reply(endpoint)
    }

    fn pop_reply(&mut self, endpoint: &ActorAddress) -> Option<Envelope> {
        let inbox = self.world.endpoints.get_mut(endpoint)?;
        while let Some(envelope) = inbox.pop_front() {
            if passes_to_external(envelope.payload()) {
                return Some(envelope);
            }
            log::debug!(
                "external endpoint {endpoint} skips internal {}",
                envelope.type_name()
            );
        }
        None
    }
}

/// The simple base: one [`Core`] behind a lock; whichever thread calls drives it.
pub(crate) struct SimpleBase {
    core: Mutex<Core>,
    shut_down: AtomicBool,
}

impl SimpleBase {
    pub(crate) fn new(
        system: SystemId,
        capabilities: Capabilities,
        processing_limit: usize,
        queue_limit: usize,
    ) -> SimpleBase {
        let world = World {
            registry: Registry::new(system, BASE_NAME, capabilities),
            queue: VecDeque::new(),
            queued: None,
            queue_limit,
            endpoints: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            spawned: Vec::new(),
            shutdown_requested: false,
            clock: ActivityClock::new(Instant::now()),
            tick: 1,
        };
        SimpleBase {
            core: Mutex::new(Core {
                world,
                actors: HashMap::new(),
                processing_limit,
                shut_down: false,
            }),
            shut_down: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the core, refusing re-entrant calls from inside an actor and calls after
    /// shutdown.
    fn with_core<T>(&self, f: impl FnOnce(&mut Core) -> Result<T>) -> Result<T> {
        if DRIVING.with(Cell::get) {
            return Err(ThespianError::SystemFailure(
                "the simple base cannot be called from inside one of its actors".into(),
            ));
        }
        let mut core = self
            .core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if core.shut_down {
            return Err(ThespianError::SystemShutDown);
        }
        DRIVING.with(|d| d.set(true));
        let result = f(&mut core);
        DRIVING.with(|d| d.set(false));
        if core.shut_down {
            self.shut_down.store(true, Ordering::Release);
        }
        result
    }
}

impl BaseDriver for SimpleBase {
    fn base_name(&self) -> &'static str {
        BASE_NAME
    }

    fn capabilities(&self) -> Capabilities {
        let core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        core.world.registry.capabilities().clone()
    }

    fn admin_address(&self) -> ActorAddress {
        let core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        core.world.registry.admin_address()
    }

    fn open_endpoint(&self) -> Result<ActorAddress> {
        self.with_core(|core| {
            let address = core.world.registry.allocate();
            core.world
                .endpoints
                .insert(address.clone(), VecDeque::new());
            Ok(address)
        })
    }

    fn close_endpoint(&self, endpoint: &ActorAddress) {
        let _ = self.with_core(|core| {
            core.world.endpoints.remove(endpoint);
            Ok(())
        });
    }

    fn create_actor(
        &self,
        endpoint: &ActorAddress,
        request: CreateRequest,
    ) -> Result<ActorAddress> {
        self.with_core(|core| {
            let admin = core.world.registry.admin_address();
            match core.world.registry.plan_create(&request)? {
                CreatePlan::Existing(address) => Ok(address),
                CreatePlan::New(address) => {
                    let slot = core.world.construct(&admin, address.clone(), request)?;
                    core.actors.insert(address.clone(), slot);
                    log::debug!("{endpoint} created top-level actor {address}");
                    Ok(address)
                }
            }
        })
    }

    fn tell(&self, endpoint: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()> {
        self.with_core(|core| {
            core.world.enqueue_bounded(endpoint, to, payload)?;
            core.run(None, None);
            Ok(())
        })
    }

    /// Not the provided `tell` + `listen`: this base's `tell` runs the actors until they are
    /// idle, while an `ask` runs them only until the first reply (or the deadline), in one call.
    fn ask(
        &self,
        endpoint: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
        timeout: Duration,
    ) -> Result<Option<Envelope>> {
        let deadline = base::deadline(Instant::now(), timeout);
        self.with_core(|core| {
            core.world.enqueue_bounded(endpoint, to, payload)?;
            Ok(core.receive(endpoint, deadline))
        })
    }

    fn listen(&self, endpoint: &ActorAddress, timeout: Duration) -> Result<Option<Envelope>> {
        let deadline = base::deadline(Instant::now(), timeout);
        self.with_core(|core| Ok(core.receive(endpoint, deadline)))
    }

    fn update_capability(&self, name: &str, value: Option<CapabilityValue>) -> Result<()> {
        self.with_core(|core| {
            core.world.update_capability(name, value)?;
            core.run(None, None);
            Ok(())
        })
    }

    fn shutdown(&self) -> Result<()> {
        match self.with_core(|core| {
            core.world.shutdown_requested = true;
            core.run(None, None);
            if !core.shut_down {
                // The processing limit stopped the orderly exit: drop what is left.
                core.finish_shutdown();
            }
            Ok(())
        }) {
            Ok(()) | Err(ThespianError::SystemShutDown) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }
}
