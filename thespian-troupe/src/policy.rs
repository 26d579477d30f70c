//! The troupe leader's dispatch policy as a sans-IO machine.
//!
//! Every decision a troupe leader makes (which worker gets a piece of work, when a worker is
//! created, what waits, what is shed, which workers are dismissed, what happens to the work of
//! a worker that exits) is taken here, from events the driver feeds in, and comes back as
//! [`Action`]s the driver carries out. The machine opens nothing, spawns nothing and reads no
//! clock: creating a worker is a callback the driver passes in (it returns the new worker's
//! handle at once, as `Context::create` does), and the dismissal debounce is an action asking
//! the driver for a wakeup. So the rules can be checked exhaustively by property tests with
//! plain integers for workers.
//!
//! The rules (Thespian 3.9.8+, reference §7.2, plus the bound and key affinity):
//! - new work goes to the first idle worker (FIFO), else to an extra worker awaiting
//!   dismissal, else to a new worker while fewer than `max_count` exist, else it waits in the
//!   pending queue; over `pending_limit` it is rejected (load shedding);
//! - work with an affinity key goes to the worker the key is bound to, waiting for it when it
//!   is busy; an unbound key binds to whichever worker takes the work; the binding lasts while
//!   work of that key waits or is with the worker (and the worker lives), so the bindings never
//!   outnumber the work held, however many distinct keys pass;
//! - a worker that says it is ready takes the oldest pending work it may take; with none, it
//!   becomes idle, or "extra" when more than `idle_count` workers exist and at least
//!   `idle_count` are idle already; extras are dismissed together after the debounce;
//! - the work of a worker that exits goes back to the front of the pending queue and is
//!   dispatched again at once when a worker is free (or one can be created): never lost;
//! - each piece of work is with at most one worker at a time.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

/// Thespian's default `max_count`.
pub const DEFAULT_MAX_COUNT: u32 = 10;
/// Thespian's default `idle_count`.
pub const DEFAULT_IDLE_COUNT: u32 = 2;
/// Thespian's `DISMISS_EXTRA_PERIOD`: how long extra workers wait before they are dismissed.
pub const DEFAULT_DISMISS_AFTER: Duration = Duration::from_secs(2);
/// The default bound on the pending queue: the Queue base's per-sender queue bound.
pub const DEFAULT_PENDING_LIMIT: usize = 50_000;

/// A troupe's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TroupeSettings {
    /// The most workers the troupe has at once (at least 1).
    pub max_count: u32,
    /// How many idle workers the troupe keeps once work dries up.
    pub idle_count: u32,
    /// How long extra idle workers wait before they are dismissed (Thespian: 2 s).
    pub dismiss_after: Duration,
    /// The most work items that wait for a worker; more is rejected back to its sender.
    pub pending_limit: usize,
}

impl Default for TroupeSettings {
    fn default() -> TroupeSettings {
        TroupeSettings {
            max_count: DEFAULT_MAX_COUNT,
            idle_count: DEFAULT_IDLE_COUNT,
            dismiss_after: DEFAULT_DISMISS_AFTER,
            pending_limit: DEFAULT_PENDING_LIMIT,
        }
    }
}

impl TroupeSettings {
    /// These settings with `max_count` (raised to 1 if 0: a troupe has at least one worker).
    pub fn max_count(mut self, max_count: u32) -> TroupeSettings {
        self.max_count = max_count.max(1);
        self
    }

    /// These settings with `idle_count`.
    pub fn idle_count(mut self, idle_count: u32) -> TroupeSettings {
        self.idle_count = idle_count;
        self
    }

    /// These settings with the dismissal debounce.
    pub fn dismiss_after(mut self, dismiss_after: Duration) -> TroupeSettings {
        self.dismiss_after = dismiss_after;
        self
    }

    /// These settings with the pending queue's bound.
    pub fn pending_limit(mut self, pending_limit: usize) -> TroupeSettings {
        self.pending_limit = pending_limit;
        self
    }
}

/// The number the leader gives each piece of work (Thespian's 32-bit wrapping `ident`).
pub type WorkId = u32;

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<A, T> {
    /// Send `item` to `worker` as work `id`.
    Assign {
        /// The worker.
        worker: A,
        /// The work's number, which the worker names when it is ready.
        id: WorkId,
        /// The work.
        item: T,
    },
    /// Give `item` back to its sender: it was not accepted or could not be done.
    Reject {
        /// The work.
        item: T,
        /// Why, for the sender.
        reason: String,
    },
    /// Ask `worker` to exit (Thespian sends it an `ActorExitRequest`).
    Dismiss(A),
    /// Deliver a [`TroupePolicy::dismiss_extras`] call after this delay.
    ScheduleDismissal(Duration),
}

/// One piece of work the policy holds.
#[derive(Clone, Debug)]
struct Work<T> {
    id: WorkId,
    key: Option<u64>,
    item: T,
}

/// Where a live worker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Holding work `WorkId`, or finishing work in progress after it (`None`).
    Busy(Option<WorkId>),
    /// On the idle list.
    Idle,
    /// On the extra list, awaiting dismissal.
    Extra,
    /// Asked to exit; counted until it has exited.
    Dismissed,
}

/// The troupe's counts, as the typed status reply reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Live workers (busy, idle, extra and dismissed but not yet exited).
    pub workers: usize,
    /// Idle workers.
    pub idle: usize,
    /// Extra workers awaiting dismissal.
    pub extra: usize,
    /// Work waiting for a worker.
    pub pending: usize,
    /// Work a worker has finished.
    pub handled: u64,
    /// Work rejected (pending queue full, or a worker could not be created).
    pub rejected: u64,
}

/// The leader's dispatch policy: `A` names a worker (an actor address in the driver, an
/// integer in tests), `T` is a piece of work.
#[derive(Debug)]
pub struct TroupePolicy<A, T> {
    settings: TroupeSettings,
    /// Live workers in creation order (the status line lists them so).
    workers: Vec<A>,
    state: HashMap<A, State>,
    idle: VecDeque<A>,
    extra: VecDeque<A>,
    pending: VecDeque<Work<T>>,
    in_flight: HashMap<WorkId, (A, Work<T>)>,
    /// Affinity: key → the worker it is bound to, and each worker's keys.
    keys: HashMap<u64, A>,
    keys_of: HashMap<A, Vec<u64>>,
    /// Work of each key pending or in flight; a key leaves every map when it drops to zero.
    live_keys: HashMap<u64, usize>,
    dismissal_scheduled: bool,
    /// The leader is exiting: nothing is dispatched or created any more.
    closed: bool,
    next_id: WorkId,
    handled: u64,
    rejected: u64,
}

impl<A: Clone + Eq + Hash + Debug, T: Clone> TroupePolicy<A, T> {
    /// A troupe with no workers yet.
    pub fn new(settings: TroupeSettings) -> TroupePolicy<A, T> {
        TroupePolicy {
            settings: settings.max_count(settings.max_count),
            workers: Vec::new(),
            state: HashMap::new(),
            idle: VecDeque::new(),
            extra: VecDeque::new(),
            pending: VecDeque::new(),
            in_flight: HashMap::new(),
            keys: HashMap::new(),
            keys_of: HashMap::new(),
            live_keys: HashMap::new(),
            dismissal_scheduled: false,
            closed: false,
            next_id: 0,
            handled: 0,
            rejected: 0,
        }
    }

    /// The current settings.
    pub fn settings(&self) -> TroupeSettings {
        self.settings
    }

    /// The counts for a status reply.
    pub fn counts(&self) -> Counts {
        Counts {
            workers: self.workers.len(),
            idle: self.idle.len(),
            extra: self.extra.len(),
            pending: self.pending.len(),
            handled: self.handled,
            rejected: self.rejected,
        }
    }

    /// Live workers in creation order, each with `"I:"` when idle, `"E:"` when extra (the
    /// prefixes of Thespian's status line).
    pub fn roster(&self) -> impl Iterator<Item = (&'static str, &A)> + '_ {
        self.workers.iter().map(|w| {
            let prefix = match self.state.get(w) {
                Some(State::Idle) => "I:",
                Some(State::Extra) => "E:",
                _ => "",
            };
            (prefix, w)
        })
    }

    /// True when `worker` is one of this troupe's live workers.
    pub fn is_worker(&self, worker: &A) -> bool {
        self.state.contains_key(worker)
    }

    /// How many affinity keys are bound to a worker now: at most the number of keyed work
    /// items pending or in flight.
    pub fn affinity_bindings(&self) -> usize {
        self.keys.len()
    }

    /// The worker that holds work `id`, if any.
    pub fn holder(&self, id: WorkId) -> Option<&A> {
        self.in_flight.get(&id).map(|(w, _)| w)
    }

    /// New work arrived, with an optional affinity key. `spawn` creates a worker and returns
    /// its handle (or why it could not).
    pub fn new_work(
        &mut self,
        item: T,
        key: Option<u64>,
        spawn: &mut dyn FnMut() -> Result<A, String>,
    ) -> Vec<Action<A, T>> {
        if self.closed {
            return Vec::new();
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let work = Work { id, key, item };
        let mut actions = Vec::new();
        if let Some(key) = key {
            *self.live_keys.entry(key).or_default() += 1;
        }
        self.pending.push_back(work);
        // Oldest first, so work of one key starts in order even after a failed create.
        self.pump(spawn, &mut actions);
        let still_waiting = self.pending.back().is_some_and(|w| w.id == id);
        if still_waiting && self.pending.len() > self.settings.pending_limit {
            let work = self.pending.pop_back().expect("just queued");
            self.work_gone(work.key);
            self.rejected += 1;
            actions.push(Action::Reject {
                item: work.item,
                reason: format!(
                    "troupe overloaded: {} work items already wait for a worker (the pending limit)",
                    self.pending.len()
                ),
            });
        }
        actions
    }

    /// `worker` says it finished work `id` (`None`: work in progress that followed its work)
    /// and is ready for more.
    pub fn ready(
        &mut self,
        worker: &A,
        id: Option<WorkId>,
        spawn: &mut dyn FnMut() -> Result<A, String>,
    ) -> Vec<Action<A, T>> {
        if self.closed {
            return Vec::new();
        }
        let mut actions = Vec::new();
        match (self.state.get(worker), id) {
            (Some(State::Busy(Some(held))), Some(id)) if *held == id => {
                if let Some((_, work)) = self.in_flight.remove(&id) {
                    self.work_gone(work.key);
                }
                self.handled += 1;
            }
            (Some(State::Busy(None)), _) => {}
            // Not ours, not busy, or naming other work than it holds: nothing changes.
            _ => return actions,
        }
        self.worker_free(worker, &mut actions);
        // A ready worker may also unblock keyed work for others; a place for more workers may
        // have opened (settings changed while it worked).
        self.pump(spawn, &mut actions);
        actions
    }

    /// Work `id`, held by `worker`, failed there for good (the worker returned it as poison):
    /// it goes back to its sender, and the worker is ready for more.
    pub fn failed(
        &mut self,
        worker: &A,
        id: WorkId,
        details: &str,
        spawn: &mut dyn FnMut() -> Result<A, String>,
    ) -> Vec<Action<A, T>> {
        if self.closed {
            return Vec::new();
        }
        let mut actions = Vec::new();
        if !self.in_flight.get(&id).is_some_and(|(w, _)| w == worker) {
            return actions;
        }
        let (_, work) = self.in_flight.remove(&id).expect("checked above");
        self.work_gone(work.key);
        self.rejected += 1;
        actions.push(Action::Reject {
            item: work.item,
            reason: details.to_string(),
        });
        if let Some(State::Busy(_)) = self.state.get(worker) {
            self.state.insert(worker.clone(), State::Busy(None));
            self.worker_free(worker, &mut actions);
        }
        self.pump(spawn, &mut actions);
        actions
    }

    /// `worker` exited: its work (if any) goes back to the front of the queue and is
    /// dispatched again.
    pub fn worker_exited(
        &mut self,
        worker: &A,
        spawn: &mut dyn FnMut() -> Result<A, String>,
    ) -> Vec<Action<A, T>> {
        if self.closed {
            return Vec::new();
        }
        let mut actions = Vec::new();
        let Some(state) = self.state.remove(worker) else {
            return actions;
        };
        self.workers.retain(|w| w != worker);
        match state {
            State::Idle => self.idle.retain(|w| w != worker),
            State::Extra => self.extra.retain(|w| w != worker),
            State::Busy(Some(id)) => {
                if let Some((_, work)) = self.in_flight.remove(&id) {
                    self.pending.push_front(work);
                }
            }
            State::Busy(None) | State::Dismissed => {}
        }
        for key in self.keys_of.remove(worker).unwrap_or_default() {
            self.keys.remove(&key);
        }
        self.pump(spawn, &mut actions);
        actions
    }

    /// The leader is exiting (its workers with it): from now on no work is dispatched and
    /// no worker created; every event is answered with no action.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// True once [`TroupePolicy::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The dismissal debounce ran out: every extra worker is asked to exit.
    pub fn dismiss_extras(&mut self) -> Vec<Action<A, T>> {
        if self.closed {
            return Vec::new();
        }
        self.dismissal_scheduled = false;
        let mut actions = Vec::new();
        while let Some(worker) = self.extra.pop_front() {
            self.state.insert(worker.clone(), State::Dismissed);
            actions.push(Action::Dismiss(worker));
        }
        actions
    }

    /// Changes `max_count` (at least 1) and/or `idle_count` at run time. Lowering them takes
    /// effect as workers finish; raising `max_count` creates workers for waiting work at once.
    pub fn update(
        &mut self,
        max_count: Option<u32>,
        idle_count: Option<u32>,
        spawn: &mut dyn FnMut() -> Result<A, String>,
    ) -> Vec<Action<A, T>> {
        if self.closed {
            return Vec::new();
        }
        if let Some(max) = max_count {
            self.settings.max_count = max.max(1);
        }
        if let Some(idle) = idle_count {
            self.settings.idle_count = idle;
        }
        let mut actions = Vec::new();
        self.pump(spawn, &mut actions);
        actions
    }

    /// Tries to give pending work `index` to a worker; true when it left the queue.
    fn place(
        &mut self,
        index: usize,
        spawn: &mut dyn FnMut() -> Result<A, String>,
        actions: &mut Vec<Action<A, T>>,
    ) -> bool {
        let key = self.pending[index].key;
        let worker = match key.and_then(|k| self.keys.get(&k)).cloned() {
            Some(bound) => match self.state.get(&bound) {
                Some(State::Idle) => {
                    self.idle.retain(|w| *w != bound);
                    bound
                }
                Some(State::Extra) => {
                    self.extra.retain(|w| *w != bound);
                    bound
                }
                // It waits for its worker.
                _ => return false,
            },
            None => {
                if let Some(w) = self.idle.pop_front() {
                    w
                } else if let Some(w) = self.extra.pop_front() {
                    w
                } else if self.workers.len() < self.settings.max_count as usize {
                    match spawn() {
                        Ok(w) => {
                            self.workers.push(w.clone());
                            self.state.insert(w.clone(), State::Busy(None));
                            w
                        }
                        Err(reason) => {
                            if self.workers.is_empty() {
                                let work = self.pending.remove(index).expect("index in range");
                                self.work_gone(work.key);
                                self.rejected += 1;
                                actions.push(Action::Reject {
                                    item: work.item,
                                    reason: format!("troupe could not create a worker: {reason}"),
                                });
                                return true;
                            }
                            // A live worker will take it when it is ready.
                            return false;
                        }
                    }
                } else {
                    return false;
                }
            }
        };
        let work = self.pending.remove(index).expect("index in range");
        self.start(worker, work, actions);
        true
    }

    /// Hands `work` to `worker`, binding its key.
    fn start(&mut self, worker: A, work: Work<T>, actions: &mut Vec<Action<A, T>>) {
        if let Some(key) = work.key {
            if let std::collections::hash_map::Entry::Vacant(entry) = self.keys.entry(key) {
                entry.insert(worker.clone());
                self.keys_of.entry(worker.clone()).or_default().push(key);
            }
        }
        self.state
            .insert(worker.clone(), State::Busy(Some(work.id)));
        actions.push(Action::Assign {
            worker: worker.clone(),
            id: work.id,
            item: work.item.clone(),
        });
        self.in_flight.insert(work.id, (worker, work));
    }

    /// A piece of work with `key` finished or was rejected: with no other work of that key
    /// pending or in flight, the key is unbound (the next work of it may go to any worker).
    fn work_gone(&mut self, key: Option<u64>) {
        let Some(key) = key else { return };
        let std::collections::hash_map::Entry::Occupied(mut live) = self.live_keys.entry(key)
        else {
            return;
        };
        *live.get_mut() -= 1;
        if *live.get() > 0 {
            return;
        }
        live.remove();
        let Some(worker) = self.keys.remove(&key) else {
            return;
        };
        if let Some(keys) = self.keys_of.get_mut(&worker) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.keys_of.remove(&worker);
            }
        }
    }

    /// `worker` (busy) has finished: it takes the oldest pending work it may take, or becomes
    /// idle or extra.
    fn worker_free(&mut self, worker: &A, actions: &mut Vec<Action<A, T>>) {
        let eligible =
            self.pending
                .iter()
                .position(|w| match w.key.and_then(|k| self.keys.get(&k)) {
                    Some(bound) => bound == worker,
                    None => true,
                });
        if let Some(index) = eligible {
            let work = self.pending.remove(index).expect("index in range");
            self.start(worker.clone(), work, actions);
            return;
        }
        let idle_count = self.settings.idle_count as usize;
        if self.workers.len() > idle_count && self.idle.len() >= idle_count {
            self.state.insert(worker.clone(), State::Extra);
            self.extra.push_back(worker.clone());
            if !self.dismissal_scheduled {
                self.dismissal_scheduled = true;
                actions.push(Action::ScheduleDismissal(self.settings.dismiss_after));
            }
        } else {
            self.state.insert(worker.clone(), State::Idle);
            self.idle.push_back(worker.clone());
        }
    }

    /// Places every pending item that can be placed now, oldest first.
    fn pump(
        &mut self,
        spawn: &mut dyn FnMut() -> Result<A, String>,
        actions: &mut Vec<Action<A, T>>,
    ) {
        let mut index = 0;
        // Keys of work left waiting: later work of those keys waits behind it.
        let mut blocked: std::collections::HashSet<u64> = std::collections::HashSet::new();
        while index < self.pending.len() {
            let nothing_free = self.idle.is_empty()
                && self.extra.is_empty()
                && self.workers.len() >= self.settings.max_count as usize;
            if nothing_free {
                break;
            }
            let key = self.pending[index].key;
            if key.is_some_and(|k| blocked.contains(&k)) || !self.place(index, spawn, actions) {
                blocked.extend(key);
                index += 1;
            }
        }
    }
}
