//! Wakeups: one heap of pending `wakeup_after` requests, served by one service thread.
//!
//! This module exists so a system with a million sleeping actors still has one timer thread,
//! not one per timer: `wakeup_after` pushes an entry on a binary heap (and pokes the thread
//! only when the new entry is the earliest), and the service thread sleeps on a condition
//! variable until the earliest deadline. The same thread is the one place, outside the
//! workers, that can finish a shutdown an actor asked for (a worker cannot wait for itself to
//! stop), so the heap's state also carries that request and the stop flag.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use thespian_core::{ActorAddress, WakeupMessage};

use crate::locks::{Condvar, Mutex};

/// One pending wakeup.
pub(crate) struct Entry {
    due: Instant,
    seq: u64,
    /// The actor to wake.
    pub(crate) target: ActorAddress,
    /// What it receives.
    pub(crate) message: WakeupMessage,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    coordinate_shutdown: bool,
    stop: bool,
}

/// What the service thread must do next.
pub(crate) enum Action {
    /// Deliver these due wakeups (in due order).
    Fire(Vec<Entry>),
    /// An actor asked for the system to shut down: finish it.
    CoordinateShutdown,
    /// Exit the thread.
    Stop,
}

/// The wakeup heap and the service thread's mailbox.
pub(crate) struct Timers {
    state: Mutex<State>,
    cv: Condvar,
}

impl Timers {
    /// No pending wakeups.
    pub(crate) fn new() -> Timers {
        Timers {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                seq: 0,
                coordinate_shutdown: false,
                stop: false,
            }),
            cv: Condvar::new(),
        }
    }

    /// Schedules `message` for `target` at `due`.
    pub(crate) fn schedule(&self, due: Instant, target: ActorAddress, message: WakeupMessage) {
        let mut state = self.state.lock();
        if state.stop {
            return;
        }
        state.seq += 1;
        let seq = state.seq;
        let earliest = state.heap.peek().is_none_or(|Reverse(e)| due < e.due);
        state.heap.push(Reverse(Entry {
            due,
            seq,
            target,
            message,
        }));
        if earliest {
            self.cv.notify_one();
        }
    }

    /// Drops every pending wakeup (shutdown).
    pub(crate) fn clear(&self) {
        self.state.lock().heap.clear();
    }

    /// Pending wakeups.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().heap.len()
    }

    /// Asks the service thread to finish a shutdown.
    pub(crate) fn request_shutdown_coordination(&self) {
        self.state.lock().coordinate_shutdown = true;
        self.cv.notify_one();
    }

    /// Asks the service thread to exit.
    pub(crate) fn stop(&self) {
        let mut state = self.state.lock();
        state.stop = true;
        state.heap.clear();
        self.cv.notify_one();
    }

    /// Blocks the service thread until there is something to do.
    pub(crate) fn next_action(&self) -> Action {
        let mut state = self.state.lock();
        loop {
            if state.stop {
                return Action::Stop;
            }
            if state.coordinate_shutdown {
                state.coordinate_shutdown = false;
                return Action::CoordinateShutdown;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            while state.heap.peek().is_some_and(|Reverse(e)| e.due <= now) {
                let Reverse(entry) = state.heap.pop().expect("peeked");
                due.push(entry);
            }
            if !due.is_empty() {
                return Action::Fire(due);
            }
            match state.heap.peek().map(|Reverse(e)| e.due) {
                Some(deadline) => state = self.cv.wait_until(state, deadline).0,
                None => state = self.cv.wait(state),
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;
    use thespian_core::SystemId;

    #[test]
    fn fires_in_due_order_and_stops() {
        let t = Timers::new();
        let a = ActorAddress::new(SystemId::from_raw(1), 5);
        let now = Instant::now();
        t.schedule(
            now + Duration::from_millis(20),
            a.clone(),
            WakeupMessage::new(Duration::from_millis(20), None),
        );
        t.schedule(
            now,
            a.clone(),
            WakeupMessage::new(Duration::from_millis(0), None),
        );
        let mut delays = Vec::new();
        while delays.len() < 2 {
            match t.next_action() {
                Action::Fire(v) => delays.extend(v.into_iter().map(|e| e.message.delay_period)),
                _ => panic!("unexpected action"),
            }
        }
        assert_eq!(
            delays,
            [Duration::from_millis(0), Duration::from_millis(20)]
        );
        t.request_shutdown_coordination();
        assert!(matches!(t.next_action(), Action::CoordinateShutdown));
        t.stop();
        assert!(matches!(t.next_action(), Action::Stop));
        assert_eq!(t.len(), 0);
    }
}
