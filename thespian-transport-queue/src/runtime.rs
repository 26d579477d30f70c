//! The running system: actors, delivery, the worker loop, and the `Services` the machines use.
//!
//! This module exists to drive `thespian-core`'s machines on many threads. It holds no
//! lifecycle rule of its own: [`ActorCell`] decides what one message does to one actor (retry,
//! poison, exit propagation, status) and [`Registry`] (behind one mutex, off the send path)
//! decides creates, global names, dead letters and capability updates. What it adds is where
//! things live and who runs them:
//!
//! * an actor is a [`Node`]: its mailbox and its slot (cell + actor value), found through the
//!   sharded [`Directory`];
//! * a send looks the target up under a shard read lock, appends to the mailbox, and, when the
//!   mailbox was idle, hands the node to the [`Scheduler`] (to the sending worker's `next`
//!   slot from inside an actor, to the injector from outside). If the running actor keeps
//!   feeding the actor waiting in `next` ([`FEED_PROMOTE`] messages), that one is promoted to
//!   the stealable queue so a pipeline runs on two cores while request/reply stays on one;
//! * a worker takes a node's whole queue (a swap), runs it through the cell message by message,
//!   and every [`BATCH`] messages yields if other work waits for it (the rest goes back in
//!   front of newer messages and the node to the back of the worker's queue); with nothing
//!   waiting it goes on, so a flooded actor is not slowed by needless requeues;
//! * external endpoints are crossbeam channels that `ask`/`listen` block on with a deadline;
//! * wakeups go to the one timer thread, fd watches to the one poller thread;
//! * a panic outside `receive` (the cell catches those) is caught around the batch, so it never
//!   kills a worker.
//!
//! Shutdown asks the roots to exit, waits (bounded by [`SHUTDOWN_GRACE`]) until every actor has
//! exited, then stops the scheduler and joins every thread (a worker stuck for good in a
//! `receive` is left behind after another grace period, with an error logged); messages still
//! queued then are dropped with the nodes.
//!
//! Locks only, apart from two plain atomics (the shutdown phase and the capabilities' version
//! number, each read and written whole); the lock-free counters of the scheduling protocol live
//! in `scheduler`, where loom checks them.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use thespian_core::activity::ActivityClock;
use thespian_core::actor::panic_text;
use thespian_core::base::{not_issued_error, not_issued_poison};
use thespian_core::context::Created;
use thespian_core::registry::{ActorRecord, CreatePlan, DeadLetterRoute};
use thespian_core::system_messages::{passes_to_external, Fd};
use thespian_core::{
    Actor, ActorAddress, ActorCell, ActorExitRequest, Capabilities, CapabilityValue, CellState,
    ChildActorExited, CreateRequest, Envelope, Payload, Registry, Result, Services, StatusRequest,
    SystemId, ThespianError, WakeupMessage,
};

use crate::directory::Directory;
use crate::locks::{Condvar, Mutex, RwLock};
use crate::mailbox::{Finish, Handled, Mailbox, Push, SETTLE_EVERY};
use crate::scheduler::{Config, Cursor, Scheduler};
use crate::timer::{Action, Timers};
use crate::watches::Watcher;
use crate::BASE_NAME;

/// Messages an actor handles before its worker moves on to another actor, when other actors
/// are waiting for the worker (with nothing waiting, the actor goes on).
pub(crate) const BATCH: usize = 64;
/// A worker keeps its (empty) batch buffer for the next batch unless it grew beyond this.
const BATCH_BUFFER_MAX: usize = 4096;
/// A busy worker that never waits for work reads the activity clock once per this many
/// batches: actors' last activity lags by at most that much work, and the hot path stays
/// free of clock reads.
const TICK_EVERY: u32 = 16;
/// How long a shutdown waits for the actors to exit before stopping the workers anyway.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// While waiting for exits, how often a shutdown looks for new roots (orphans) to ask.
const ROOT_RESCAN: Duration = Duration::from_millis(100);

const RUNNING: u8 = 0;
const SHUTTING_DOWN: u8 = 1;
const STOPPED: u8 = 2;

thread_local! {
    /// The system whose worker this thread is (its `Inner` address), or 0.
    static WORKER_OF: Cell<usize> = const { Cell::new(0) };
}

/// Spare mailbox buffers a worker keeps (see `mailbox`): at most this many...
const SPARES: usize = 32;
/// ...of at most this many slots each.
const SPARE_CAPACITY: usize = 256;

/// Messages the running actor may send to the actor waiting in its worker's `next` slot before
/// that one is promoted to the stealable queue (see [`Scheduler::promote_next`]).
const FEED_PROMOTE: u32 = 32;

/// A worker thread's own state: its scheduling cursor, its spare mailbox buffers, and which
/// node it put in its `next` slot (and how many messages followed it there).
pub(crate) struct Worker {
    cursor: Cursor,
    spares: RefCell<Vec<VecDeque<Envelope>>>,
    next: Cell<*const Node>,
    fed: Cell<u32>,
    /// This worker's reading of the activity clock, stamped on the actors it runs: refreshed
    /// when it took work after waiting, and every [`TICK_EVERY`] batches (so the hot path
    /// reads no clock per message).
    tick: u32,
    /// Batches since `tick` was read.
    since_tick: u32,
    /// The nodes this worker last sent to, by id (direct-mapped on the id's low bits): a send
    /// to one of them takes no directory lock. An entry may outlive its actor; its closed
    /// mailbox then refuses the message, which goes to dead letters as it would for an id the
    /// directory no longer has (ids are never reused), and the entry is dropped.
    targets: RefCell<[Option<Target>; TARGETS]>,
}

/// A cached send target: an actor's id and its node.
type Target = (u64, Arc<Node>);

/// Entries of a worker's [`Worker::targets`] (a power of two): a request/reply pair and a few
/// fan-out targets fit.
const TARGETS: usize = 4;

impl Worker {
    fn new(index: usize) -> Worker {
        Worker {
            cursor: Cursor::new(index),
            spares: RefCell::new(Vec::with_capacity(SPARES)),
            next: Cell::new(std::ptr::null()),
            fed: Cell::new(0),
            tick: 1,
            since_tick: TICK_EVERY,
            targets: RefCell::new(Default::default()),
        }
    }

    /// Runs `f` on the node of actor `id`: from this worker's cache if it is there (no lock),
    /// else looked up in `actors` and cached.
    fn with_target<R>(
        &self,
        actors: &Directory<Arc<Node>>,
        id: u64,
        f: impl FnOnce(Option<&Arc<Node>>) -> R,
    ) -> R {
        let mut targets = self.targets.borrow_mut();
        let entry = &mut targets[(id as usize) & (TARGETS - 1)];
        if !matches!(entry, Some((cached, _)) if *cached == id) {
            match actors.with(id, |node| node.cloned()) {
                Some(node) => *entry = Some((id, node)),
                None => return f(None),
            }
        }
        f(entry.as_ref().map(|(_, node)| node))
    }

    /// Forgets the cached node of actor `id` (its mailbox is closed).
    fn forget_target(&self, id: u64) {
        let mut targets = self.targets.borrow_mut();
        let entry = &mut targets[(id as usize) & (TARGETS - 1)];
        if entry.as_ref().is_some_and(|(cached, _)| *cached == id) {
            *entry = None;
        }
    }

    /// Reads the clock again if the cached tick may be old: after a wait for work, or after
    /// [`TICK_EVERY`] batches.
    fn refresh_tick(&mut self, clock: &ActivityClock) {
        if self.cursor.take_waited() || self.since_tick >= TICK_EVERY {
            self.tick = clock.tick_at(Instant::now());
            self.since_tick = 0;
        } else {
            self.since_tick += 1;
        }
    }

    /// A message was queued for `node`, already scheduled: when it is the one waiting in our
    /// `next` slot and keeps being fed, let another worker run it.
    fn fed(&self, inner: &Inner, node: &Node) {
        if std::ptr::eq(self.next.get(), node) {
            let fed = self.fed.get() + 1;
            self.fed.set(fed);
            if fed == FEED_PROMOTE {
                self.next.set(std::ptr::null());
                inner.sched.promote_next(&self.cursor);
            }
        }
    }

    /// A buffer for a mailbox that has none.
    fn spare(&self) -> Option<VecDeque<Envelope>> {
        self.spares.borrow_mut().pop()
    }

    /// Keeps an empty buffer for reuse (or frees it).
    fn keep(&self, mut buffer: VecDeque<Envelope>) {
        if !buffer.is_empty() {
            buffer.clear();
        }
        let mut spares = self.spares.borrow_mut();
        if spares.len() < SPARES && (1..=SPARE_CAPACITY).contains(&buffer.capacity()) {
            spares.push(buffer);
        }
    }
}

/// The user's actor and the framework's state for it.
struct Slot {
    cell: ActorCell,
    actor: Box<dyn Actor>,
}

/// One actor: its mailbox and, while it lives, its slot (cell and actor value).
///
/// The slot is only ever touched by the one thread that owns the mailbox's `SCHEDULED` state:
/// the creator (before [`Mailbox::release`]) and then, batch by batch, the worker that took
/// the node from a run queue ([`Inner::run_batch`]). That ownership passes between threads
/// only through mutexes (the mailbox's, whose push turns `IDLE` into `SCHEDULED`, and the run
/// queues'), which also order the slot accesses. So the slot needs no lock of its own; a
/// mutex here would cost 16 bytes per actor (a malloc size class) and an atomic per batch.
pub(crate) struct Node {
    mailbox: Mailbox<Envelope>,
    slot: UnsafeCell<Option<Slot>>,
}

// SAFETY: the only non-`Sync` part is `slot`, accessed by one thread at a time as documented
// on `Node` (see `Node::slot_mut`'s callers).
unsafe impl Sync for Node {}

impl Node {
    fn new() -> Node {
        Node {
            mailbox: Mailbox::new_owned(),
            slot: UnsafeCell::new(None),
        }
    }

    /// The slot.
    ///
    /// # Safety
    /// The caller owns the mailbox's `SCHEDULED` state (it created the node and has not
    /// released it yet, or it took the node from a run queue and has not finished the batch),
    /// and holds no other reference into the slot.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot_mut(&self) -> &mut Option<Slot> {
        // SAFETY: exclusive per the caller's contract.
        unsafe { &mut *self.slot.get() }
    }
}

/// An external endpoint: replies to `ask`/`listen` callers.
struct Endpoint {
    tx: Sender<Envelope>,
    rx: Receiver<Envelope>,
}

/// What a send found at the target.
enum Delivery {
    Done,
    Schedule(Arc<Node>),
    Dead(Envelope),
    Missing(Envelope),
    Full,
}

/// The bound of a send: what the sender may have queued to its target before the send fails.
/// The framework's own deliveries (dead letters, exit requests, status replies) are
/// [`Bound::NONE`]; user sends ([`Inner::send`]) have the configured limit, except for system
/// messages, which are never refused (an actor must hear of its child's exit, say).
#[derive(Copy, Clone)]
struct Bound(u32);

impl Bound {
    const NONE: Bound = Bound(u32::MAX);
}

#[derive(Default)]
struct Threads {
    workers: Vec<JoinHandle<()>>,
    timer: Option<JoinHandle<()>>,
    poller: Option<JoinHandle<()>>,
}

/// The state of one running Queue system, shared by its threads and its handle.
pub(crate) struct Inner {
    /// This system itself (for threads started later, like the poller).
    #[cfg(feature = "watch")]
    me: std::sync::Weak<Inner>,
    system: SystemId,
    /// What one sender may have queued to one actor (see [`crate::QueueConfig`]).
    queue_limit: Bound,
    admin: ActorAddress,
    registry: Mutex<Registry>,
    /// Notified (with `registry`'s lock) when the last actor exits during a shutdown.
    all_exited: Condvar,
    caps: RwLock<Arc<Capabilities>>,
    caps_version: AtomicU64,
    actors: Directory<Arc<Node>>,
    /// The clock actors' last activity is kept on (see [`Worker::refresh_tick`]).
    clock: ActivityClock,
    endpoints: RwLock<HashMap<u64, Arc<Endpoint>>>,
    sched: Scheduler<Arc<Node>>,
    timers: Timers,
    watcher: OnceLock<Arc<Watcher>>,
    /// Serialises starting the poller.
    #[cfg(feature = "watch")]
    watcher_init: Mutex<()>,
    phase: AtomicU8,
    asked_to_exit: Mutex<HashSet<ActorAddress>>,
    threads: Mutex<Threads>,
    /// Worker threads that have not returned yet (and their condition variable).
    workers_running: Mutex<usize>,
    workers_done: Condvar,
    /// Serialises stopping and joining the workers and the poller.
    join_lock: Mutex<()>,
}

impl Inner {
    /// A system with `workers` worker threads (not started yet; see [`Inner::spawn_threads`])
    /// where one sender may have `queue_limit` messages queued to one actor.
    pub(crate) fn new(
        system: SystemId,
        capabilities: Capabilities,
        workers: usize,
        queue_limit: usize,
    ) -> Arc<Inner> {
        let registry = Registry::new(system, BASE_NAME, capabilities.clone());
        Arc::new_cyclic(|_me| Inner {
            #[cfg(feature = "watch")]
            me: _me.clone(),
            system,
            queue_limit: Bound(u32::try_from(queue_limit).unwrap_or(u32::MAX - 1)),
            admin: registry.admin_address(),
            registry: Mutex::new(registry),
            all_exited: Condvar::new(),
            caps: RwLock::new(Arc::new(capabilities)),
            caps_version: AtomicU64::new(0),
            actors: Directory::new(),
            clock: ActivityClock::new(Instant::now()),
            endpoints: RwLock::new(HashMap::new()),
            sched: Scheduler::new(workers, Config::default()),
            timers: Timers::new(),
            watcher: OnceLock::new(),
            #[cfg(feature = "watch")]
            watcher_init: Mutex::new(()),
            phase: AtomicU8::new(RUNNING),
            asked_to_exit: Mutex::new(HashSet::new()),
            threads: Mutex::new(Threads::default()),
            workers_running: Mutex::new(0),
            workers_done: Condvar::new(),
            join_lock: Mutex::new(()),
        })
    }

    /// Starts the worker threads and the timer thread.
    pub(crate) fn spawn_threads(self: &Arc<Inner>) -> std::io::Result<()> {
        let mut threads = self.threads.lock();
        for index in 0..self.sched.worker_count() {
            let inner = self.clone();
            // Counted before it starts (it counts itself out when it returns).
            *self.workers_running.lock() += 1;
            match std::thread::Builder::new()
                .name(format!("thespian-q-w{index}"))
                .spawn(move || inner.worker_main(index))
            {
                Ok(handle) => threads.workers.push(handle),
                Err(e) => {
                    *self.workers_running.lock() -= 1;
                    return Err(e);
                }
            }
        }
        let inner = self.clone();
        threads.timer = Some(
            std::thread::Builder::new()
                .name("thespian-q-timer".into())
                .spawn(move || inner.timer_main())?,
        );
        Ok(())
    }

    pub(crate) fn admin(&self) -> &ActorAddress {
        &self.admin
    }

    pub(crate) fn capabilities(&self) -> Arc<Capabilities> {
        self.caps.read().clone()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.phase.load(Ordering::Acquire) == STOPPED
    }

    pub(crate) fn check_running(&self) -> Result<()> {
        if self.is_stopped() {
            Err(ThespianError::SystemShutDown)
        } else {
            Ok(())
        }
    }

    /// True on a worker thread of this system.
    fn on_own_worker(&self) -> bool {
        WORKER_OF.with(Cell::get) == self as *const Inner as usize
    }

    // ----- delivery -------------------------------------------------------------------------

    /// A user's send (`tell`, `ask`, `ctx.send`) of `payload` from `from` to `to`: bounded by
    /// the queue limit, and an error for an address this system did not issue. `via` is the
    /// sending worker, if any.
    fn send(
        &self,
        from: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
        via: Option<&Worker>,
    ) -> Result<()> {
        if to.system() != self.system {
            return Err(not_issued_error(to));
        }
        self.deliver_bounded(from.clone(), to, payload, via, self.queue_limit)
    }

    /// The framework's own delivery of `payload` from `from` to `to`: never refused (a message
    /// to an address of another system, or to nobody, is a dead letter). `via` is the sending
    /// worker, if any.
    fn deliver(
        &self,
        from: ActorAddress,
        to: &ActorAddress,
        payload: Payload,
        via: Option<&Worker>,
    ) {
        if to.system() != self.system {
            log::debug!("{to} belongs to another actor system; dead letter");
            self.dead_letter(to, Envelope::new(from, payload), via);
            return;
        }
        let delivered = self.deliver_bounded(from, to, payload, via, Bound::NONE);
        debug_assert!(delivered.is_ok(), "an unbounded delivery is never refused");
    }

    /// Delivers to an address of this system: `Err(QueueFull)` when `from` already has `bound`
    /// messages queued to `to` and this is not a system message.
    fn deliver_bounded(
        &self,
        from: ActorAddress,
        to: &ActorAddress,
        payload: Payload,
        via: Option<&Worker>,
        bound: Bound,
    ) -> Result<()> {
        let sender = from.id();
        let envelope = Envelope::new(from, payload);
        if to.is_admin() {
            self.admin_receive(envelope, via);
            return Ok(());
        }
        let push = |node: Option<&Arc<Node>>| match node {
            Some(node) => match node.mailbox.push(
                envelope,
                sender,
                bound.0,
                |envelope| envelope.payload().is_system(),
                || via.and_then(Worker::spare),
            ) {
                Push::Queued => {
                    if let Some(worker) = via {
                        worker.fed(self, node);
                    }
                    Delivery::Done
                }
                Push::Schedule => Delivery::Schedule(node.clone()),
                Push::Refused(envelope) => Delivery::Dead(envelope),
                // Dropped here, and the sender is told.
                Push::Full(_) => Delivery::Full,
            },
            None => Delivery::Missing(envelope),
        };
        let delivery = match via {
            Some(worker) => worker.with_target(&self.actors, to.id(), push),
            None => self.actors.with(to.id(), push),
        };
        match delivery {
            Delivery::Full => {
                return Err(ThespianError::QueueFull { target: to.clone() });
            }
            Delivery::Done => {}
            Delivery::Schedule(node) => self.schedule(node, via),
            Delivery::Dead(envelope) => {
                if let Some(worker) = via {
                    worker.forget_target(to.id());
                }
                self.dead_letter(to, envelope, via)
            }
            Delivery::Missing(envelope) => {
                let unknown = match self.endpoints.read().get(&to.id()) {
                    // Unbounded, and the endpoint holds its receiver: this neither blocks nor
                    // fails.
                    Some(endpoint) => endpoint.tx.send(envelope).err().map(|e| e.into_inner()),
                    None => Some(envelope),
                };
                if let Some(envelope) = unknown {
                    self.dead_letter(to, envelope, via);
                }
            }
        }
        Ok(())
    }

    /// Delivers a wakeup or watch notice to `actor` from itself, only while it runs normally.
    fn deliver_if_running(&self, actor: &ActorAddress, payload: Payload) {
        let envelope = Envelope::new(actor.clone(), payload);
        let node = self.actors.with(actor.id(), |node| {
            node.and_then(
                |node| match node.mailbox.push_if_running(envelope, actor.id()) {
                    Push::Schedule => Some(node.clone()),
                    Push::Queued | Push::Refused(_) | Push::Full(_) => None,
                },
            )
        });
        if let Some(node) = node {
            self.schedule(node, None);
        }
    }

    fn schedule(&self, node: Arc<Node>, via: Option<&Worker>) {
        match via {
            Some(worker) => {
                worker.next.set(Arc::as_ptr(&node));
                worker.fed.set(0);
                self.sched.push_next(&worker.cursor, node)
            }
            None => self.sched.push_external(node),
        }
    }

    /// A message for `target` that cannot be delivered.
    fn dead_letter(&self, target: &ActorAddress, envelope: Envelope, via: Option<&Worker>) {
        let route = self.registry.lock().route_dead_letter(target, envelope);
        match route {
            DeadLetterRoute::Handler { handler, payload } => {
                self.deliver(self.admin.clone(), &handler, payload, via)
            }
            DeadLetterRoute::ChildAborted { sender, payload } => {
                self.deliver(target.clone(), &sender, payload, via)
            }
            DeadLetterRoute::Drop => {}
        }
    }

    /// Messages to the admin: status requests are answered; anything else is discarded.
    fn admin_receive(&self, envelope: Envelope, via: Option<&Worker>) {
        if envelope.payload().has_type::<StatusRequest>() {
            let mut status = self.registry.lock().status();
            // A scan at status time: the send path keeps no shared counter.
            status.pending_messages = Some(self.actors.sum(|node| node.mailbox.len() as u64));
            self.deliver(
                self.admin.clone(),
                envelope.sender(),
                Payload::new(status),
                via,
            );
        } else {
            log::warn!(
                "ADMIN DISCARD: {} from {}",
                envelope.type_name(),
                envelope.sender()
            );
        }
    }

    // ----- creation -------------------------------------------------------------------------

    /// Creates an actor for `parent` (the admin for top-level actors). `Err` for a refused
    /// plan; `Ok((created, Err(e)))` when the actor was planned but its constructor failed.
    ///
    /// One registry lock plans and registers the actor (the registry is the only global lock
    /// of this base; creates are its busiest users). The address is then reachable at once:
    /// messages wait in the owned mailbox while the constructor runs outside every lock.
    fn create(
        &self,
        parent: &ActorAddress,
        request: CreateRequest,
        caps: &Capabilities,
        via: Option<&Worker>,
    ) -> Result<(Created, Result<()>)> {
        let node = Arc::new(Node::new());
        let record = ActorRecord {
            parent: parent.clone(),
            spec: request.spec,
            requirements: request.requirements.clone(),
            global_name: request.global_name.clone(),
        };
        let address = {
            let mut registry = self.registry.lock();
            let address = match registry.plan_create(&request)? {
                CreatePlan::New(address) => address,
                CreatePlan::Existing(address) => {
                    return Ok((
                        Created {
                            address,
                            is_child: false,
                        },
                        Ok(()),
                    ))
                }
            };
            registry.register(address.clone(), record);
            address
        };
        // A shutdown racing this create may ask it to exit before it is in the directory; the
        // shutdown asks again when exits stall (see `await_exits`).
        self.actors.insert(address.id(), node.clone());
        let CreateRequest {
            spec,
            requirements,
            global_name,
            ..
        } = request;
        let created = Created {
            address: address.clone(),
            is_child: true,
        };
        match spec.construct(caps, &requirements) {
            Ok(actor) => {
                let cell = ActorCell::new(
                    address.clone(),
                    parent.clone(),
                    spec,
                    requirements,
                    global_name,
                );
                // SAFETY: the mailbox is still owned by this creator (released just below).
                *unsafe { node.slot_mut() } = Some(Slot { cell, actor });
                if node.mailbox.release() {
                    self.schedule(node, via);
                }
                Ok((created, Ok(())))
            }
            Err(reason) => {
                log::warn!(
                    "actor {} ({address}) failed to start: {reason}",
                    spec.type_name()
                );
                {
                    let mut registry = self.registry.lock();
                    registry.exited(&address);
                    registry.abort(&address);
                    if registry.in_shutdown() && registry.live_count() == 0 {
                        self.all_exited.notify_all();
                    }
                }
                self.actors.remove(address.id());
                for envelope in node.mailbox.close() {
                    self.dead_letter(&address, envelope, via);
                }
                Ok((
                    created,
                    Err(ThespianError::ActorCreationFailed {
                        actor_type: spec.type_name().to_owned(),
                        reason,
                    }),
                ))
            }
        }
    }

    /// Top-level create from outside.
    pub(crate) fn create_external(&self, request: CreateRequest) -> Result<ActorAddress> {
        self.check_running()?;
        let caps = self.capabilities();
        let (created, constructed) = self.create(&self.admin.clone(), request, &caps, None)?;
        constructed.map(|()| created.address)
    }

    // ----- capabilities, exits, shutdown ------------------------------------------------------

    fn update_capability(
        &self,
        name: &str,
        value: Option<CapabilityValue>,
        via: Option<&Worker>,
    ) -> Result<()> {
        let misfits = {
            let mut registry = self.registry.lock();
            let misfits = registry.update_capability(name, value);
            *self.caps.write() = Arc::new(registry.capabilities().clone());
            self.caps_version.fetch_add(1, Ordering::Release);
            misfits
        };
        for misfit in misfits {
            log::info!(
                "{misfit} no longer fits the capabilities after updating {name:?}; asking it to exit"
            );
            self.deliver(
                self.admin.clone(),
                &misfit,
                Payload::new(ActorExitRequest::new()),
                via,
            );
        }
        Ok(())
    }

    /// Forgets an exited actor; wakes a waiting shutdown when it was the last one.
    fn forget(&self, actor: &ActorAddress) {
        let mut registry = self.registry.lock();
        registry.exited(actor);
        if registry.in_shutdown() && registry.live_count() == 0 {
            self.all_exited.notify_all();
        }
    }

    /// Starts a shutdown (idempotent): no more creates, no more wakeups, roots asked to exit.
    fn begin_shutdown(&self) {
        let roots = {
            let mut registry = self.registry.lock();
            if registry.in_shutdown() {
                return;
            }
            registry.begin_shutdown();
            registry.roots()
        };
        let _ = self.phase.compare_exchange(
            RUNNING,
            SHUTTING_DOWN,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.timers.clear();
        self.ask_to_exit(roots, false);
    }

    /// Sends `ActorExitRequest` to `roots`; unless `again`, only to those not asked before.
    fn ask_to_exit(&self, roots: Vec<ActorAddress>, again: bool) {
        let fresh: Vec<ActorAddress> = {
            let mut asked = self.asked_to_exit.lock();
            roots
                .into_iter()
                .filter(|r| asked.insert(r.clone()) || again)
                .collect()
        };
        for root in fresh {
            self.deliver(
                self.admin.clone(),
                &root,
                Payload::new(ActorExitRequest::new()),
                None,
            );
        }
    }

    /// Waits (bounded) until every actor has exited. When exits stall for a while, looks for
    /// roots again (orphans of non-recursive exits, actors whose create raced the shutdown) and
    /// asks them; the scan is O(actors), so it is not done while exits make progress.
    fn await_exits(&self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut registry = self.registry.lock();
        let mut last_live = registry.live_count();
        loop {
            let live = registry.live_count();
            if live == 0 {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                log::warn!(
                    "shutdown: {live} actors still alive after {SHUTDOWN_GRACE:?}; stopping anyway"
                );
                return;
            }
            let wake = (now + ROOT_RESCAN).min(deadline);
            let (relocked, timed_out) = self.all_exited.wait_until(registry, wake);
            registry = relocked;
            let live = registry.live_count();
            if timed_out && live > 0 && live == last_live {
                // Stalled: ask every root (again: a repeated exit request changes nothing, and
                // one that raced a create's directory insert was lost).
                let roots = registry.roots();
                drop(registry);
                self.ask_to_exit(roots, true);
                registry = self.registry.lock();
            }
            last_live = live;
        }
    }

    /// Stops the scheduler and joins the workers and the poller; drops what is left. Not on a
    /// worker thread.
    fn stop_workers(&self) {
        let _join = self.join_lock.lock();
        let workers = std::mem::take(&mut self.threads.lock().workers);
        self.sched.stop();
        // Bounded: a worker stuck for good in some actor's `receive` must not hang the
        // shutdown.
        let all_returned = {
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            let mut running = self.workers_running.lock();
            while *running > 0 {
                let (relocked, timed_out) = self.workers_done.wait_until(running, deadline);
                running = relocked;
                if timed_out {
                    break;
                }
            }
            *running == 0
        };
        for worker in workers {
            // Every worker has returned (or is returning) unless the wait timed out; then only
            // the finished ones are joined.
            if !all_returned && !worker.is_finished() {
                log::error!(
                    "queue-base worker {:?} is stuck in an actor's receive; leaving it behind",
                    worker.thread().name()
                );
                continue;
            }
            if worker.join().is_err() {
                log::error!("a queue-base worker thread panicked");
            }
        }
        // Only workers start the poller, so after them it is safe to take its handle.
        let poller = self.threads.lock().poller.take();
        if let Some(watcher) = self.watcher.get() {
            watcher.stop();
        }
        if let Some(poller) = poller {
            let _ = poller.join();
        }
        self.phase.store(STOPPED, Ordering::Release);
        // Whatever is left (actors that did not exit in time, queued messages) goes now.
        let left = self.sched.drain().len() + self.actors.len();
        // Dropping a node drops its actor; a worker left stuck in a `receive` holds its own
        // reference to that node, so its actor is not dropped under it.
        for node in self.actors.drain() {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(node))) {
                log::error!("an actor panicked when dropped: {}", panic_text(&*panic));
            }
        }
        if left > 0 {
            log::debug!("shutdown dropped {left} queued or live actors");
        }
    }

    /// Shutdown from outside the workers: orderly exit, then stop and join every thread.
    pub(crate) fn shutdown(&self) {
        if self.on_own_worker() {
            // A worker cannot wait for itself: the timer thread finishes the job.
            self.begin_shutdown();
            self.timers.request_shutdown_coordination();
            return;
        }
        if !self.is_stopped() {
            self.begin_shutdown();
            self.await_exits();
            self.stop_workers();
        }
        self.timers.stop();
        let timer = self.threads.lock().timer.take();
        if let Some(timer) = timer {
            if timer.thread().id() != std::thread::current().id() {
                let _ = timer.join();
            }
        }
    }

    // ----- threads ----------------------------------------------------------------------------

    fn worker_main(self: Arc<Inner>, index: usize) {
        /// Counts the worker out however it leaves (a panic included).
        struct Running<'a>(&'a Inner);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                *self.0.workers_running.lock() -= 1;
                self.0.workers_done.notify_all();
            }
        }
        let _running = Running(&self);
        WORKER_OF.with(|w| w.set(Arc::as_ptr(&self) as usize));
        let mut worker = Worker::new(index);
        let mut batch = VecDeque::new();
        let mut caps = CapsCache {
            version: self.caps_version.load(Ordering::Acquire),
            caps: self.capabilities(),
        };
        let mut handled = Handled::default();
        while let Some(node) = self.sched.next(&mut worker.cursor) {
            worker.refresh_tick(&self.clock);
            let run = catch_unwind(AssertUnwindSafe(|| {
                self.run_batch(&node, &worker, &mut batch, &mut handled, &mut caps)
            }));
            if let Err(panic) = run {
                // The cell catches panics in `receive`; this is a panic elsewhere (a Drop, a
                // logger). The worker survives; the batch's remaining messages are dropped.
                log::error!(
                    "queue-base worker {index} caught a panic outside receive: {}",
                    panic_text(&*panic)
                );
                // They will never be handled: their senders may queue more.
                for envelope in batch.iter() {
                    handled.note(envelope.sender().id());
                }
                batch = VecDeque::new();
                if node
                    .mailbox
                    .finish_batch(&mut VecDeque::new(), &mut handled, false, false)
                    .requeue
                {
                    self.sched.push_yield(&worker.cursor, node);
                }
            }
        }
    }

    fn run_batch(
        &self,
        node: &Arc<Node>,
        worker: &Worker,
        batch: &mut VecDeque<Envelope>,
        handled: &mut Handled,
        caps: &mut CapsCache,
    ) {
        if std::ptr::eq(worker.next.get(), Arc::as_ptr(node)) {
            worker.next.set(std::ptr::null());
        }
        // SAFETY: this worker took `node` from a run queue, so it owns the `SCHEDULED` state
        // until `finish_batch` below (or until the actor exits and the mailbox is closed, after
        // which no one schedules the node again); nothing else borrows the slot meanwhile.
        let slot_ref = unsafe { node.slot_mut() };
        let Some(slot) = slot_ref.as_mut() else {
            return; // Exited meanwhile: its mailbox is closed.
        };
        let mut watching = node.mailbox.take_batch(batch);
        let address = slot.cell.address().clone();
        let mut services = WorkerServices {
            inner: self,
            worker,
            address: &address,
            caps,
            node,
            pending: 0,
            watch: None,
            leftovers: None,
        };
        let mut count = 0usize;
        // Set when the batch ended in the refill's lock: the node may be another worker's now.
        let mut finished = None;
        loop {
            // Fairness: every `BATCH` messages, yield if other work waits for this worker.
            if count > 0 && count.is_multiple_of(BATCH) && self.sched.others_waiting(&worker.cursor)
            {
                break;
            }
            // The bound: let the senders of what was handled queue more.
            if handled.len() >= SETTLE_EVERY {
                node.mailbox.settle(handled);
            }
            let Some(envelope) = batch.pop_front() else {
                // Took everything: take what arrived meanwhile (an O(1) swap), or end the batch
                // in the same lock when nothing did. The cell has not exited here (that breaks
                // out below), so it has no leftovers.
                let exiting = slot.cell.state() == CellState::Exiting;
                match node
                    .mailbox
                    .refill_or_finish(batch, handled, watching, exiting)
                {
                    None => continue,
                    Some(finish) => {
                        finished = Some(finish);
                        break;
                    }
                }
            };
            count += 1;
            handled.note(envelope.sender().id());
            if watching {
                if let Some(watcher) = self.watcher.get() {
                    watcher.clear(address.id());
                }
                watching = false;
            }
            services.refresh_caps();
            services.pending = batch.len();
            let state = slot.cell.handle(&mut *slot.actor, envelope, &mut services);
            if let Some(fds) = services.watch.take() {
                if state != CellState::Exited {
                    watching = self.activate_watch(&address, &fds);
                }
            }
            if state == CellState::Exited {
                break;
            }
        }
        if let Some(finish) = finished {
            // The slot is not touched after this point (see below).
            debug_assert!(services.leftovers.is_none());
            drop(services);
            self.after_batch(node, worker, batch, finish);
            return;
        }
        let state = slot.cell.state();
        let leftovers = services.leftovers.take();
        drop(services);
        if state == CellState::Exited {
            // The mailbox is closed: there is nothing left to count down.
            handled.clear();
            let buffer = std::mem::take(batch);
            if watching {
                if let Some(watcher) = self.watcher.get() {
                    watcher.clear(address.id());
                }
            }
            let actor = slot_ref.take();
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(actor))) {
                log::error!("{address} panicked when dropped: {}", panic_text(&*panic));
            }
            for envelope in buffer.into_iter().chain(leftovers.into_iter().flatten()) {
                self.dead_letter(&address, envelope, Some(worker));
            }
            return;
        }
        // The slot is not touched after this point: `finish_batch` may hand the node to others.
        let finish =
            node.mailbox
                .finish_batch(batch, handled, watching, state == CellState::Exiting);
        self.after_batch(node, worker, batch, finish);
    }

    /// After a batch ended (`batch` is empty): keeps the buffers for reuse and requeues the
    /// node if messages wait.
    fn after_batch(
        &self,
        node: &Arc<Node>,
        worker: &Worker,
        batch: &mut VecDeque<Envelope>,
        finish: Finish<Envelope>,
    ) {
        // `batch` is empty now: it goes into the next mailbox this worker takes from (so a
        // flooded mailbox does not regrow its buffer every round), unless it is huge.
        if batch.capacity() > BATCH_BUFFER_MAX {
            *batch = VecDeque::new();
        }
        if let Some(spare) = finish.spare {
            worker.keep(spare);
        }
        if finish.requeue {
            self.sched.push_yield(&worker.cursor, node.clone());
        }
    }

    fn activate_watch(&self, actor: &ActorAddress, fds: &[Fd]) -> bool {
        match self.watcher.get() {
            Some(watcher) => watcher.set(actor, fds),
            None => false,
        }
    }

    /// The poller, started with the first watch.
    #[cfg(feature = "watch")]
    fn ensure_watcher(&self) -> Result<()> {
        if self.watcher.get().is_some() {
            return Ok(());
        }
        let _init = self.watcher_init.lock();
        if self.watcher.get().is_some() {
            return Ok(());
        }
        let (watcher, poll) = Watcher::new().map_err(|e| {
            ThespianError::SystemFailure(format!("cannot start the fd watch poller: {e}"))
        })?;
        let watcher = Arc::new(watcher);
        let inner = self.me.upgrade().ok_or(ThespianError::SystemShutDown)?;
        let thread_watcher = watcher.clone();
        let handle = std::thread::Builder::new()
            .name("thespian-q-poll".into())
            .spawn(move || {
                thread_watcher.run(poll, |actor, ready| {
                    inner.deliver_if_running(
                        &actor,
                        Payload::new(thespian_core::WatchMessage { ready }),
                    )
                })
            })
            .map_err(|e| {
                ThespianError::SystemFailure(format!("cannot start the fd watch poller: {e}"))
            })?;
        let _ = self.watcher.set(watcher);
        self.threads.lock().poller = Some(handle);
        if self.is_stopped() {
            // Raced with a shutdown that already joined the threads: stop it here.
            if let Some(w) = self.watcher.get() {
                w.stop();
            }
        }
        Ok(())
    }

    fn timer_main(self: Arc<Inner>) {
        loop {
            match self.timers.next_action() {
                Action::Stop => return,
                Action::Fire(entries) => {
                    for entry in entries {
                        self.deliver_if_running(&entry.target, Payload::new(entry.message));
                    }
                }
                Action::CoordinateShutdown => {
                    self.await_exits();
                    self.stop_workers();
                    return;
                }
            }
        }
    }

    // ----- external endpoints --------------------------------------------------------------

    pub(crate) fn open_endpoint(&self) -> Result<ActorAddress> {
        self.check_running()?;
        let address = self.registry.lock().allocate();
        let (tx, rx) = crossbeam_channel::unbounded();
        self.endpoints
            .write()
            .insert(address.id(), Arc::new(Endpoint { tx, rx }));
        Ok(address)
    }

    pub(crate) fn close_endpoint(&self, endpoint: &ActorAddress) {
        self.endpoints.write().remove(&endpoint.id());
    }

    pub(crate) fn tell(
        &self,
        from: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
    ) -> Result<()> {
        self.check_running()?;
        self.send(from, to, payload, None)
    }

    pub(crate) fn update_capability_external(
        &self,
        name: &str,
        value: Option<CapabilityValue>,
    ) -> Result<()> {
        self.check_running()?;
        self.update_capability(name, value, None)
    }

    /// Waits until `deadline` for a message to `endpoint` that external callers see.
    pub(crate) fn receive(
        &self,
        endpoint: &ActorAddress,
        deadline: Instant,
    ) -> Result<Option<Envelope>> {
        let rx = self
            .endpoints
            .read()
            .get(&endpoint.id())
            .map(|e| e.rx.clone())
            .ok_or_else(|| ThespianError::InvalidActorAddress {
                address: endpoint.to_string(),
                reason: "not an open external endpoint of this system".into(),
            })?;
        loop {
            match rx.recv_deadline(deadline) {
                Ok(envelope) if passes_to_external(envelope.payload()) => {
                    return Ok(Some(envelope))
                }
                Ok(envelope) => log::debug!(
                    "external endpoint {endpoint} skips internal {}",
                    envelope.type_name()
                ),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return Ok(None)
                }
            }
        }
    }

    /// Diagnostics for tests: (live actors, directory entries, pending wakeups).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (
            self.registry.lock().live_count(),
            self.actors.len(),
            self.timers.len(),
        )
    }
}

/// A worker's copy of the system capabilities, refreshed when they change.
struct CapsCache {
    version: u64,
    caps: Arc<Capabilities>,
}

/// The `Services` of one worker while it runs one actor's batch.
struct WorkerServices<'a> {
    inner: &'a Inner,
    worker: &'a Worker,
    address: &'a ActorAddress,
    caps: &'a mut CapsCache,
    node: &'a Arc<Node>,
    /// Messages of the current batch not yet handled (for status reports).
    pending: usize,
    /// A watch requested by the current `receive`.
    watch: Option<Vec<Fd>>,
    /// The mailbox's content when the actor exited (to dead-letter).
    leftovers: Option<VecDeque<Envelope>>,
}

impl WorkerServices<'_> {
    fn refresh_caps(&mut self) {
        let version = self.inner.caps_version.load(Ordering::Acquire);
        if version != self.caps.version {
            self.caps.version = version;
            self.caps.caps = self.inner.capabilities();
        }
    }
}

impl Services for WorkerServices<'_> {
    fn base_name(&self) -> &'static str {
        BASE_NAME
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps.caps
    }

    fn admin_address(&self) -> ActorAddress {
        self.inner.admin.clone()
    }

    fn send(&mut self, from: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()> {
        if to.system() != self.inner.system {
            // No system issued `to`: the message comes back to its sender as poison.
            match not_issued_poison(to, payload) {
                Ok(poison) => {
                    self.inner.registry.lock().poison_returned();
                    self.inner
                        .deliver(to.clone(), from, poison, Some(self.worker))
                }
                // Poison never wraps poison: this one is a dead letter.
                Err(poison) => self.inner.dead_letter(
                    to,
                    Envelope::new(from.clone(), poison),
                    Some(self.worker),
                ),
            }
            return Ok(());
        }
        self.inner.send(from, to, payload, Some(self.worker))
    }

    fn create_actor(&mut self, parent: &ActorAddress, request: CreateRequest) -> Result<Created> {
        let caps = self.caps.caps.clone();
        let (created, constructed) =
            self.inner
                .create(parent, request, &caps, Some(self.worker))?;
        if constructed.is_err() {
            // The child never started: its parent hears of it as of any child's exit.
            self.inner.deliver(
                created.address.clone(),
                parent,
                Payload::new(ChildActorExited::new(created.address.clone())),
                Some(self.worker),
            );
        }
        Ok(created)
    }

    fn wakeup_after(&mut self, actor: &ActorAddress, delay: Duration, payload: Option<Payload>) {
        if self.inner.phase.load(Ordering::Acquire) != RUNNING {
            return; // A shutdown dropped the pending wakeups; new ones would never fire.
        }
        let now = Instant::now();
        let due = now
            .checked_add(delay)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        self.inner
            .timers
            .schedule(due, actor.clone(), WakeupMessage::new(delay, payload));
    }

    fn handle_dead_letters(&mut self, actor: &ActorAddress, enable: bool) {
        self.inner
            .registry
            .lock()
            .handle_dead_letters(actor, enable);
    }

    fn update_capability(
        &mut self,
        _actor: &ActorAddress,
        name: &str,
        value: Option<CapabilityValue>,
    ) -> Result<()> {
        self.inner
            .update_capability(name, value, Some(self.worker))?;
        self.refresh_caps();
        Ok(())
    }

    fn actor_system_shutdown(&mut self, actor: &ActorAddress) {
        log::info!("{actor} asked for the actor system to shut down");
        self.inner.begin_shutdown();
        self.inner.timers.request_shutdown_coordination();
    }

    fn dead_letter(&mut self, target: &ActorAddress, envelope: Envelope) {
        self.inner.dead_letter(target, envelope, Some(self.worker));
    }

    fn actor_exited(&mut self, actor: &ActorAddress) {
        // Close first: from here on sends to it are dead letters, before the parent hears.
        self.leftovers = Some(self.node.mailbox.close());
        self.inner.actors.remove(actor.id());
        self.inner.forget(actor);
    }

    fn poison_returned(&mut self, _actor: &ActorAddress) {
        self.inner.registry.lock().poison_returned();
    }

    fn activity_tick(&self) -> Option<u32> {
        Some(self.worker.tick)
    }

    fn since_tick(&self, tick: u32) -> Option<Duration> {
        Some(self.inner.clock.since(tick, Instant::now()))
    }

    fn mailbox_len(&self, actor: &ActorAddress) -> usize {
        if actor == self.address {
            return self.node.mailbox.len() + self.pending;
        }
        self.inner
            .actors
            .with(actor.id(), |n| n.map_or(0, |n| n.mailbox.len()))
    }

    /// Without the `watch` feature this is the trait's `NotSupported` default.
    #[cfg(feature = "watch")]
    fn watch(&mut self, _actor: &ActorAddress, fds: &[Fd]) -> Result<()> {
        self.inner.ensure_watcher()?;
        self.watch = Some(fds.to_vec());
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// An idle actor's own allocation (the `Arc<Node>`) stays within 184 bytes, so glibc's
    /// chunk for it (size + 8, rounded up to 16) is at most 192: memory per idle actor is a
    /// headline figure of this base.
    #[test]
    fn node_stays_small() {
        let node = std::mem::size_of::<super::Node>();
        let arc_header = 2 * std::mem::size_of::<usize>();
        eprintln!(
            "Node {node} B (cell {} B, mailbox {} B, envelope {} B)",
            std::mem::size_of::<thespian_core::ActorCell>(),
            std::mem::size_of::<crate::mailbox::Mailbox<thespian_core::Envelope>>(),
            std::mem::size_of::<thespian_core::Envelope>(),
        );
        assert!(node + arc_header <= 184, "Node grew to {node} bytes");
    }
}
