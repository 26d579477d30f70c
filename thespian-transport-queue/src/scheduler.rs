//! The M:N scheduler: run queues, work stealing, and parking idle workers without lost wakeups.
//!
//! This module exists to decide which worker thread runs which ready actor, and it is written
//! generically over the task type so the same code runs under loom's model checker. A task is
//! an actor whose mailbox turned `SCHEDULED` (see `mailbox`); it is in at most one queue.
//!
//! * Each worker has a local queue (a `VecDeque` behind a mutex, so other workers can steal
//!   half of it) plus a `next` slot. An actor that makes another one ready puts it in `next`,
//!   so a request/reply pair keeps running on one warm core without waking anyone (ping-pong);
//!   a worker runs at most [`MAX_LIFO_STREAK`] `next` tasks in a row before taking from its queue,
//!   so the pair cannot starve the queue. When the running actor keeps feeding the task in `next`
//!   (a pipeline, not a reply), the driver promotes it to the stealable queue
//!   ([`Scheduler::promote_next`]) so it runs in parallel. External threads, timers and the fd poller push to
//!   one global injector, which workers also check every [`INJECTOR_INTERVAL`] tasks.
//! * A worker without work becomes a *searcher* (at most half of the workers at once), spins
//!   briefly while looking at the queues' length hints, then parks. Producers wake a parked
//!   worker only when nobody is searching and somebody is idle, so a busy system makes no
//!   wake-up system calls; an idle system blocks every worker in the kernel.
//! * A worker whose `next` task is stuck behind a receive that blocks would hold that task
//!   forever; so while any worker is busy, parked workers park with a timeout (backing off from
//!   1 ms to 50 ms) and may then steal `next` slots too. When every worker is idle they park
//!   without a timeout.
//!
//! The lock-free parts are the counters `num_idle` and `num_searching` and the length hints,
//! read by producers without the idle lock. The no-lost-wakeup argument: a worker registers as
//! idle (and stops searching) *before* re-checking every queue under its lock; a producer
//! pushes under the queue's lock *before* reading the counters; so for every queue either the
//! worker's re-check sees the task or the producer sees the worker idle and wakes it. A
//! searcher that finds work and was the last one wakes another worker if the hints still show
//! work. All those accesses are `SeqCst`. The loom tests at the bottom check the protocol with
//! the code as shipped (with loom, parks never time out, so a lost wakeup is a deadlock).

use std::collections::VecDeque;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::time::Duration;

use crate::sync::{spin_hint, yield_now, AtomicBool, AtomicUsize, Condvar, Mutex};

/// At most this many `next`-slot tasks run in a row before the local queue gets a turn.
pub(crate) const MAX_LIFO_STREAK: u32 = 3;
/// Every this many tasks, a worker looks at the global injector before its own queue.
pub(crate) const INJECTOR_INTERVAL: u32 = 61;
/// First timed park while another worker is busy.
const PARK_MIN: Duration = Duration::from_millis(1);
/// Longest timed park while another worker is busy.
const PARK_MAX: Duration = Duration::from_millis(50);

/// Tuning of a scheduler.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// Rounds of spinning (exponential, then yielding) before a worker parks.
    pub(crate) spin_rounds: u32,
    /// Park with a timeout while another worker is busy (see the module docs).
    pub(crate) timed_park: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            spin_rounds: 24,
            timed_park: true,
        }
    }
}

struct Local<T> {
    next: Option<T>,
    queue: VecDeque<T>,
}

/// A worker's shared part, on its own cache lines.
#[repr(align(128))]
struct WorkerShared<T> {
    local: Mutex<Local<T>>,
    /// Tasks in `local.queue`, the stealable part (hint for thieves and searchers).
    len: AtomicUsize,
    parker: Parker,
}

/// Blocks one worker until it is notified (a token: a notify before the park is not lost).
struct Parker {
    notified: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    fn new() -> Parker {
        Parker {
            notified: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    fn park(&self, timeout: Option<Duration>) {
        let mut notified = self.notified.lock();
        if !*notified {
            notified = match timeout {
                Some(t) => self.cv.wait_for(notified, t),
                None => self.cv.wait(notified),
            };
        }
        *notified = false;
    }

    fn unpark(&self) {
        *self.notified.lock() = true;
        self.cv.notify_one();
    }
}

/// A worker's private scheduling state (lives on the worker's stack).
#[derive(Debug)]
pub(crate) struct Cursor {
    index: usize,
    searching: bool,
    lifo_streak: u32,
    tick: u32,
    backoff: Duration,
    steal_next: bool,
    /// [`Scheduler::next`] found no work at once (it spun or parked) since the last
    /// [`Cursor::take_waited`]: the worker's cached clock reading may be old.
    waited: bool,
}

impl Cursor {
    /// The state of worker `index`.
    pub(crate) fn new(index: usize) -> Cursor {
        Cursor {
            index,
            searching: false,
            lifo_streak: 0,
            tick: 0,
            backoff: PARK_MIN,
            steal_next: false,
            waited: false,
        }
    }

    /// True if the worker waited for work (spun or parked) since the last call.
    pub(crate) fn take_waited(&mut self) -> bool {
        std::mem::take(&mut self.waited)
    }
}

/// The run queues of one system and its idle workers.
pub(crate) struct Scheduler<T> {
    injector: Mutex<VecDeque<T>>,
    injector_len: AtomicUsize,
    workers: Box<[WorkerShared<T>]>,
    idle: Mutex<Vec<usize>>,
    num_idle: AtomicUsize,
    num_searching: AtomicUsize,
    stopping: AtomicBool,
    config: Config,
}

impl<T> Scheduler<T> {
    /// A scheduler for `workers` worker threads (at least one).
    pub(crate) fn new(workers: usize, config: Config) -> Scheduler<T> {
        let workers = workers.max(1);
        Scheduler {
            injector: Mutex::new(VecDeque::new()),
            injector_len: AtomicUsize::new(0),
            workers: (0..workers)
                .map(|_| WorkerShared {
                    local: Mutex::new(Local {
                        next: None,
                        queue: VecDeque::new(),
                    }),
                    len: AtomicUsize::new(0),
                    parker: Parker::new(),
                })
                .collect(),
            idle: Mutex::new(Vec::with_capacity(workers)),
            num_idle: AtomicUsize::new(0),
            num_searching: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            config,
        }
    }

    /// Number of workers.
    pub(crate) fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Queues a task from outside the workers (external threads, timers, the poller).
    pub(crate) fn push_external(&self, task: T) {
        {
            let mut injector = self.injector.lock();
            injector.push_back(task);
            self.injector_len.store(injector.len(), SeqCst);
        }
        self.notify_if_needed();
    }

    /// Queues a task made ready by the actor worker `cursor` is running: it runs next on this
    /// worker (a task it displaces from `next` goes to the back of the local queue).
    pub(crate) fn push_next(&self, cursor: &Cursor, task: T) {
        let me = &self.workers[cursor.index];
        let displaced = {
            let mut local = me.local.lock();
            let displaced = match local.next.replace(task) {
                Some(old) => {
                    local.queue.push_back(old);
                    true
                }
                None => false,
            };
            if displaced {
                me.len.store(local.queue.len(), SeqCst);
            }
            displaced
        };
        if displaced {
            self.notify_if_needed();
        }
    }

    /// Moves the task in worker `cursor`'s `next` slot to its stealable queue and wakes a
    /// worker if needed: the running actor keeps feeding it (a pipeline, not a reply), so it
    /// should run in parallel rather than after the feeder.
    pub(crate) fn promote_next(&self, cursor: &Cursor) {
        let me = &self.workers[cursor.index];
        {
            let mut local = me.local.lock();
            let Some(task) = local.next.take() else {
                return;
            };
            local.queue.push_back(task);
            me.len.store(local.queue.len(), SeqCst);
        }
        self.notify_if_needed();
    }

    /// Requeues a task that used up its batch, at the back of the worker's local queue.
    pub(crate) fn push_yield(&self, cursor: &Cursor, task: T) {
        let me = &self.workers[cursor.index];
        let others_waiting = {
            let mut local = me.local.lock();
            let waiting = local.queue.len() + usize::from(local.next.is_some());
            local.queue.push_back(task);
            me.len.store(local.queue.len(), SeqCst);
            waiting > 0
        };
        // Alone in the queue it simply runs again here; with company, another worker may help.
        if others_waiting {
            self.notify_if_needed();
        }
    }

    /// True when other tasks wait for worker `cursor`: in its own queue or `next` slot, or in
    /// the injector (which it would look at next). The running actor should yield.
    pub(crate) fn others_waiting(&self, cursor: &Cursor) -> bool {
        if self.injector_len.load(SeqCst) > 0 {
            return true;
        }
        let local = self.workers[cursor.index].local.lock();
        local.next.is_some() || !local.queue.is_empty()
    }

    /// The next task for worker `cursor`, blocking (spinning briefly, then parked) until there
    /// is one. `None` once [`Scheduler::stop`] was called.
    pub(crate) fn next(&self, cursor: &mut Cursor) -> Option<T> {
        loop {
            if self.stopping.load(Acquire) {
                self.stop_searching(cursor);
                return None;
            }
            if let Some(task) = self.find_work(cursor, false) {
                self.found_work(cursor);
                return Some(task);
            }
            cursor.waited = true;
            if !cursor.searching {
                let searching = self.num_searching.load(SeqCst);
                if 2 * searching < self.workers.len()
                    && self
                        .num_searching
                        .compare_exchange(searching, searching + 1, SeqCst, Relaxed)
                        .is_ok()
                {
                    cursor.searching = true;
                }
            }
            for round in 0..self.config.spin_rounds {
                if self.stopping.load(Acquire) {
                    break;
                }
                if self.any_work_hinted() {
                    if let Some(task) = self.find_work(cursor, false) {
                        self.found_work(cursor);
                        return Some(task);
                    }
                }
                if round < 8 {
                    for _ in 0..(1u32 << round) {
                        spin_hint();
                    }
                } else {
                    yield_now();
                }
            }
            if let Some(task) = self.park(cursor) {
                self.found_work(cursor);
                return Some(task);
            }
        }
    }

    /// Stops the scheduler: every worker's `next` returns `None` from now on.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, SeqCst);
        // Parker tokens make this race-free: a worker about to park returns at once.
        for worker in self.workers.iter() {
            worker.parker.unpark();
        }
    }

    /// Takes every queued task (after the workers stopped), to drop them.
    pub(crate) fn drain(&self) -> Vec<T> {
        let mut out: Vec<T> = self.injector.lock().drain(..).collect();
        self.injector_len.store(0, SeqCst);
        for worker in self.workers.iter() {
            let mut local = worker.local.lock();
            out.extend(local.next.take());
            out.extend(local.queue.drain(..));
            worker.len.store(0, SeqCst);
        }
        out
    }

    fn stop_searching(&self, cursor: &mut Cursor) -> bool {
        if cursor.searching {
            cursor.searching = false;
            self.num_searching.fetch_sub(1, SeqCst) == 1
        } else {
            false
        }
    }

    fn found_work(&self, cursor: &mut Cursor) {
        cursor.backoff = PARK_MIN;
        cursor.steal_next = false;
        if self.stop_searching(cursor) && self.any_work_hinted() {
            // The last searcher found work and more is visible: keep one worker looking.
            self.notify_if_needed();
        }
    }

    fn notify_if_needed(&self) {
        if self.num_searching.load(SeqCst) != 0 || self.num_idle.load(SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut idle = self.idle.lock();
            if self.num_searching.load(SeqCst) != 0 {
                return;
            }
            let Some(index) = idle.pop() else { return };
            self.num_idle.store(idle.len(), SeqCst);
            // Counted as searching on its behalf, so concurrent producers do not wake more.
            self.num_searching.fetch_add(1, SeqCst);
            index
        };
        self.workers[woken].parker.unpark();
    }

    fn any_work_hinted(&self) -> bool {
        self.injector_len.load(SeqCst) > 0 || self.workers.iter().any(|w| w.len.load(SeqCst) > 0)
    }

    fn pop_injector(&self) -> Option<T> {
        let mut injector = self.injector.lock();
        let task = injector.pop_front();
        if task.is_some() {
            self.injector_len.store(injector.len(), SeqCst);
        }
        task
    }

    fn pop_local(&self, cursor: &mut Cursor) -> Option<T> {
        let me = &self.workers[cursor.index];
        let mut local = me.local.lock();
        if let Some(task) = local.next.take() {
            if cursor.lifo_streak < MAX_LIFO_STREAK {
                cursor.lifo_streak += 1;
                return Some(task);
            }
            local.queue.push_back(task);
        }
        cursor.lifo_streak = 0;
        let task = local.queue.pop_front();
        me.len.store(local.queue.len(), SeqCst);
        task
    }

    /// Looks for a task: own `next`/queue, the injector (first every `INJECTOR_INTERVAL`
    /// tasks), then other workers' queues. `thorough` locks every queue regardless of hints.
    fn find_work(&self, cursor: &mut Cursor, thorough: bool) -> Option<T> {
        cursor.tick = cursor.tick.wrapping_add(1);
        if cursor.tick.is_multiple_of(INJECTOR_INTERVAL) {
            if let Some(task) = self.pop_injector() {
                return Some(task);
            }
        }
        if let Some(task) = self.pop_local(cursor) {
            return Some(task);
        }
        if thorough || self.injector_len.load(SeqCst) > 0 {
            if let Some(task) = self.pop_injector() {
                return Some(task);
            }
        }
        let n = self.workers.len();
        for k in 1..n {
            let victim = (cursor.index + k) % n;
            if thorough || self.workers[victim].len.load(SeqCst) > 0 {
                if let Some(task) = self.steal(cursor, victim) {
                    return Some(task);
                }
            }
        }
        None
    }

    /// Steals half of `victim`'s queue (one task to run, the rest into our queue); its `next`
    /// slot only after a timed park (the victim looks stuck).
    fn steal(&self, cursor: &Cursor, victim: usize) -> Option<T> {
        let mut stolen: VecDeque<T> = {
            let them = &self.workers[victim];
            let mut local = them.local.lock();
            let take = local.queue.len().div_ceil(2);
            let at = local.queue.len() - take;
            let mut stolen = local.queue.split_off(at);
            if stolen.is_empty() && cursor.steal_next {
                stolen.extend(local.next.take());
            }
            them.len.store(local.queue.len(), SeqCst);
            stolen
        };
        let task = stolen.pop_front()?;
        if !stolen.is_empty() {
            let me = &self.workers[cursor.index];
            let mut local = me.local.lock();
            local.queue.extend(stolen);
            me.len.store(local.queue.len(), SeqCst);
        }
        Some(task)
    }

    /// Registers as idle, re-checks every queue, and parks. Returns a task found by the
    /// re-check; `None` after a wakeup (the caller loops).
    fn park(&self, cursor: &mut Cursor) -> Option<T> {
        self.stop_searching(cursor);
        let all_idle = {
            let mut idle = self.idle.lock();
            idle.push(cursor.index);
            self.num_idle.store(idle.len(), SeqCst);
            idle.len() == self.workers.len()
        };
        if self.stopping.load(SeqCst) {
            self.leave_idle(cursor);
            return None;
        }
        if let Some(task) = self.find_work(cursor, true) {
            self.leave_idle(cursor);
            return Some(task);
        }
        let timeout = (self.config.timed_park && !all_idle).then_some(cursor.backoff);
        self.workers[cursor.index].parker.park(timeout);
        let notified = !self.leave_idle(cursor);
        if timeout.is_some() && !notified {
            cursor.backoff = (cursor.backoff * 2).min(PARK_MAX);
            cursor.steal_next = true;
        }
        None
    }

    /// Leaves the idle list after a park or a successful re-check; the worker is searching
    /// afterwards. True when it was still listed (nobody woke it).
    fn leave_idle(&self, cursor: &mut Cursor) -> bool {
        let listed = {
            let mut idle = self.idle.lock();
            match idle.iter().position(|&i| i == cursor.index) {
                Some(pos) => {
                    idle.swap_remove(pos);
                    self.num_idle.store(idle.len(), SeqCst);
                    // Count ourselves as searching (a waker counts the workers it wakes).
                    self.num_searching.fetch_add(1, SeqCst);
                    true
                }
                None => false,
            }
        };
        cursor.searching = true;
        listed
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomic;
    use std::sync::Arc;

    #[test]
    fn lifo_streak_is_bounded() {
        let s: Scheduler<u32> = Scheduler::new(1, Config::default());
        let mut c = Cursor::new(0);
        s.push_yield(&c, 100);
        let mut order = Vec::new();
        for i in 0..5 {
            s.push_next(&c, i);
            order.push(s.next(&mut c).unwrap());
        }
        order.push(s.next(&mut c).unwrap());
        // Three `next` tasks, then the queued one gets its turn (3 is demoted behind it and
        // the following `next` task starts a new streak).
        assert_eq!(order, [0, 1, 2, 100, 4, 3]);
        s.stop();
        assert_eq!(s.next(&mut c), None);
    }

    #[test]
    fn injector_gets_a_turn_under_local_load() {
        let s: Scheduler<u32> = Scheduler::new(1, Config::default());
        let mut c = Cursor::new(0);
        s.push_external(7);
        let mut seen = false;
        for i in 0..(2 * INJECTOR_INTERVAL) {
            s.push_yield(&c, 1000 + i);
            if s.next(&mut c) == Some(7) {
                seen = true;
                break;
            }
        }
        assert!(seen);
    }

    #[test]
    fn workers_park_and_wake() {
        let s = Arc::new(Scheduler::<u32>::new(3, Config::default()));
        let done = Arc::new(StdAtomic::new(0));
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let s = s.clone();
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut c = Cursor::new(i);
                    while let Some(t) = s.next(&mut c) {
                        if t % 2 == 0 {
                            s.push_next(&c, t + 1);
                        }
                        done.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        for round in 0..200u32 {
            s.push_external(round * 2);
            if round % 50 == 0 {
                // Let the workers go idle and park between bursts.
                let target = (round as usize + 1) * 2;
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while done.load(SeqCst) < target {
                    assert!(std::time::Instant::now() < deadline, "lost wakeup");
                    std::thread::yield_now();
                }
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while done.load(SeqCst) < 400 {
            assert!(std::time::Instant::now() < deadline, "lost wakeup");
            std::thread::yield_now();
        }
        s.stop();
        for t in threads {
            t.join().unwrap();
        }
        assert!(s.drain().is_empty());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    fn config() -> Config {
        Config {
            spin_rounds: 0,
            timed_park: false,
        }
    }

    /// Runs `workers` worker threads until `expected` tasks ran, feeding them through `feed`
    /// from the main thread; a lost wakeup deadlocks (loom reports it).
    fn run(workers: usize, expected: usize, feed: impl FnOnce(&Scheduler<usize>)) {
        run_with(workers, expected, false, feed)
    }

    /// As [`run`]; with `promote`, the task made ready by task 0 is promoted out of `next`
    /// (the pipeline case), so another worker must be able to run it.
    fn run_with(
        workers: usize,
        expected: usize,
        promote: bool,
        feed: impl FnOnce(&Scheduler<usize>),
    ) {
        let s = Arc::new(Scheduler::<usize>::new(workers, config()));
        let ran = Arc::new((Mutex::new(0usize), Condvar::new()));
        let threads: Vec<_> = (0..workers)
            .map(|i| {
                let s = s.clone();
                let ran = ran.clone();
                loom::thread::spawn(move || {
                    let mut c = Cursor::new(i);
                    while let Some(task) = s.next(&mut c) {
                        // Task 0 makes another task ready, as an actor sending to an idle one.
                        if task == 0 {
                            s.push_next(&c, 100);
                            if promote {
                                s.promote_next(&c);
                            }
                        }
                        let mut n = ran.0.lock();
                        *n += 1;
                        ran.1.notify_all();
                    }
                })
            })
            .collect();
        feed(&s);
        {
            let mut n = ran.0.lock();
            while *n < expected {
                n = ran.1.wait(n);
            }
        }
        s.stop();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn external_push_wakes_a_parked_worker() {
        loom::model(|| run(1, 1, |s| s.push_external(1)));
    }

    #[test]
    fn two_workers_two_pushes() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            run(2, 2, |s| {
                s.push_external(1);
                s.push_external(2);
            })
        });
    }

    #[test]
    fn promoted_task_runs() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| run_with(2, 2, true, |s| s.push_external(0)));
    }

    #[test]
    fn task_made_ready_by_a_worker_runs() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| run(2, 2, |s| s.push_external(0)));
    }
}
