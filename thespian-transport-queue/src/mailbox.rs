//! Per-actor mailboxes and the "scheduled" state that makes an actor run on one worker at a time.
//!
//! This module exists because the mailbox is where senders on many threads meet the one worker
//! running an actor. A mailbox is a `VecDeque` and a state byte behind one small mutex (no
//! channel allocation per actor: an idle actor's mailbox is 40 bytes with no heap buffer). The
//! state byte is the scheduling protocol, entirely under the lock:
//!
//! * `IDLE`: no worker runs the actor and it is in no run queue. The push that finds it idle
//!   turns it `SCHEDULED` and tells the sender to put the actor on a run queue; every other
//!   push just appends. So an actor is queued at most once, and runs on one worker at a time.
//! * `SCHEDULED`: queued or running. The worker takes a batch, runs it, and then either sees
//!   the mailbox empty (back to `IDLE`, atomically with the check) or requeues the actor.
//! * `CLOSED`: the actor exited; pushes fail and the sender dead-letters the message.
//!
//! Two flag bits ride along: `WATCHING` (the actor has an active fd watch to clear before its
//! next message) and `EXITING` (timers and watches stop delivering). Because all of it is under
//! the mutex there is no lock-free state here; the loom test below still checks that no message
//! is ever stranded in an `IDLE` mailbox.
//!
//! A worker takes the whole queue out at once (a buffer swap, O(1) however long the queue), runs
//! at most a batch of it, and puts any rest back in front of what arrived meanwhile: senders
//! never wait behind a long copy, and a flooded mailbox never drains through a bottleneck. An
//! idle mailbox holds no buffer: it hands its empty buffer back when it goes idle; workers keep
//! a few such buffers and give them to the next push that finds a mailbox without one. So a
//! million actors that each got a message cost no queue memory once idle, and request/reply
//! traffic allocates no buffers at all.

use std::collections::VecDeque;

use crate::sync::Mutex;

const STATE_MASK: u8 = 0b11;
const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const CLOSED: u8 = 2;
const WATCHING: u8 = 0b100;
const EXITING: u8 = 0b1000;

/// How a batch ended.
#[derive(Debug)]
pub(crate) struct Finish<T> {
    /// Messages are waiting: the caller must queue the actor again.
    pub(crate) requeue: bool,
    /// The now idle mailbox's empty buffer, for reuse.
    pub(crate) spare: Option<VecDeque<T>>,
}

/// What a push did.
#[derive(Debug)]
pub(crate) enum Push<T> {
    /// Appended; the actor is already scheduled (or running).
    Queued,
    /// Appended to an idle mailbox: the caller must put the actor on a run queue.
    Schedule,
    /// The mailbox is closed (or, for [`Mailbox::push_if_running`], the actor is exiting): the
    /// message is handed back.
    Refused(T),
}

struct Inner<T> {
    queue: VecDeque<T>,
    flags: u8,
}

/// One actor's mailbox.
pub(crate) struct Mailbox<T> {
    inner: Mutex<Inner<T>>,
}

impl<T> Mailbox<T> {
    /// A mailbox owned by its creator (state `SCHEDULED`, so no push schedules the actor) until
    /// [`Mailbox::release`] or [`Mailbox::close`].
    pub(crate) fn new_owned() -> Mailbox<T> {
        Mailbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                flags: SCHEDULED,
            }),
        }
    }

    /// Appends a message. `spare` may supply a buffer when the mailbox has none.
    pub(crate) fn push(&self, message: T, spare: impl FnOnce() -> Option<VecDeque<T>>) -> Push<T> {
        self.push_inner(message, false, spare)
    }

    /// Appends a message unless the actor is exiting or gone (for wakeups and watch events,
    /// which only a running actor receives).
    pub(crate) fn push_if_running(&self, message: T) -> Push<T> {
        self.push_inner(message, true, || None)
    }

    fn push_inner(
        &self,
        message: T,
        refuse_exiting: bool,
        spare: impl FnOnce() -> Option<VecDeque<T>>,
    ) -> Push<T> {
        let mut inner = self.inner.lock_brief();
        if refuse_exiting && inner.flags & EXITING != 0 {
            return Push::Refused(message);
        }
        if inner.flags & STATE_MASK == CLOSED {
            return Push::Refused(message);
        }
        if inner.queue.capacity() == 0 {
            if let Some(buffer) = spare() {
                debug_assert!(buffer.is_empty());
                inner.queue = buffer;
            }
        }
        match inner.flags & STATE_MASK {
            IDLE => {
                inner.queue.push_back(message);
                inner.flags = (inner.flags & !STATE_MASK) | SCHEDULED;
                Push::Schedule
            }
            _ => {
                inner.queue.push_back(message);
                Push::Queued
            }
        }
    }

    /// Takes every queued message into the empty `out` (swapping buffers: the mailbox keeps
    /// `out`'s); returns whether the actor has an active watch. Only the worker that owns the
    /// `SCHEDULED` state calls this; what it does not handle goes back with
    /// [`Mailbox::finish_batch`].
    pub(crate) fn take_batch(&self, out: &mut VecDeque<T>) -> bool {
        debug_assert!(out.is_empty());
        let mut inner = self.inner.lock_brief();
        std::mem::swap(&mut inner.queue, out);
        inner.flags & WATCHING != 0
    }

    /// During a batch, after `out` ran empty: takes what arrived meanwhile (swapping buffers).
    /// False when nothing did.
    pub(crate) fn refill(&self, out: &mut VecDeque<T>) -> bool {
        debug_assert!(out.is_empty());
        let mut inner = self.inner.lock_brief();
        if inner.queue.is_empty() {
            return false;
        }
        std::mem::swap(&mut inner.queue, out);
        true
    }

    /// Ends a batch: puts `rest` (taken but not handled) back in front of what arrived
    /// meanwhile (`rest` is left empty), records the watch and exiting flags, and either returns
    /// the mailbox to `IDLE` (`requeue` false; its empty buffer, if any, is handed back as
    /// `spare`) or reports that messages are waiting and the actor must be requeued. Only the
    /// worker that owns the `SCHEDULED` state calls this. A closed mailbox takes nothing back.
    pub(crate) fn finish_batch(
        &self,
        rest: &mut VecDeque<T>,
        watching: bool,
        exiting: bool,
    ) -> Finish<T> {
        let mut inner = self.inner.lock_brief();
        if inner.flags & STATE_MASK == CLOSED {
            return Finish {
                requeue: false,
                spare: None,
            };
        }
        if !rest.is_empty() {
            // `rest` is older than anything queued now: it goes first.
            rest.append(&mut inner.queue);
            std::mem::swap(&mut inner.queue, rest);
        }
        let mut flags = inner.flags & STATE_MASK;
        if watching {
            flags |= WATCHING;
        }
        if exiting {
            flags |= EXITING;
        }
        if inner.queue.is_empty() {
            inner.flags = (flags & !STATE_MASK) | IDLE;
            let spare = (inner.queue.capacity() > 0).then(|| std::mem::take(&mut inner.queue));
            Finish {
                requeue: false,
                spare,
            }
        } else {
            inner.flags = flags;
            Finish {
                requeue: true,
                spare: None,
            }
        }
    }

    /// Hands an owned mailbox (see [`Mailbox::new_owned`]) to the scheduler: true when
    /// messages arrived meanwhile and the caller must queue the actor.
    pub(crate) fn release(&self) -> bool {
        self.finish_batch(&mut VecDeque::new(), false, false)
            .requeue
    }

    /// Closes the mailbox for good; returns what was still queued (to dead-letter).
    pub(crate) fn close(&self) -> VecDeque<T> {
        let mut inner = self.inner.lock_brief();
        inner.flags = CLOSED;
        std::mem::take(&mut inner.queue)
    }

    /// Messages waiting.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock_brief().queue.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn first_push_schedules_and_finish_returns_to_idle() {
        let mb: Mailbox<u32> = Mailbox::new_owned();
        assert!(matches!(mb.push(1, || None), Push::Queued));
        assert!(mb.release(), "a message arrived while owned");
        let mut batch = VecDeque::new();
        assert!(!mb.take_batch(&mut batch));
        assert_eq!(batch, [1]);
        batch.clear();
        let finish = mb.finish_batch(&mut batch, false, false);
        assert!(!finish.requeue);
        assert!(finish.spare.is_none(), "the buffer went out with the batch");
        assert!(matches!(mb.push(2, || None), Push::Schedule));
        assert!(matches!(mb.push(3, || None), Push::Queued));
        mb.take_batch(&mut batch);
        assert_eq!(batch.pop_front(), Some(2));
        assert!(matches!(mb.push(4, || None), Push::Queued));
        assert!(
            mb.finish_batch(&mut batch, true, false).requeue,
            "3 and 4 wait"
        );
        assert!(batch.is_empty());
        assert!(mb.take_batch(&mut batch), "the watch flag is kept");
        assert_eq!(batch, [3, 4], "the rest stays in front of later arrivals");
        assert_eq!(mb.close(), Vec::<u32>::new());
        assert!(matches!(mb.push(5, || None), Push::Refused(5)));
    }

    #[test]
    fn exiting_refuses_timer_deliveries_only() {
        let mb: Mailbox<u32> = Mailbox::new_owned();
        assert!(!mb.finish_batch(&mut VecDeque::new(), false, true).requeue);
        assert!(matches!(mb.push_if_running(1), Push::Refused(1)));
        assert!(matches!(mb.push(2, || None), Push::Schedule));
        assert_eq!(mb.len(), 1);
        assert_eq!(mb.close(), [2]);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;

    /// Two senders and one runner: every message is consumed exactly once, and the actor is
    /// never scheduled twice at once (a second `Schedule` before the runner went idle would be
    /// a double schedule).
    #[test]
    fn no_message_is_stranded() {
        loom::model(|| {
            let mb = Arc::new(Mailbox::<u32>::new_owned());
            assert!(!mb.release());
            let scheduled = Arc::new(AtomicUsize::new(0));
            let senders: Vec<_> = (0..2)
                .map(|i| {
                    let mb = mb.clone();
                    let scheduled = scheduled.clone();
                    loom::thread::spawn(move || {
                        if let Push::Schedule = mb.push(i, || None) {
                            scheduled.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for s in senders {
                s.join().unwrap();
            }
            // Whoever got `Schedule` handed the actor to a runner; run until idle.
            let mut consumed = 0;
            let mut runs = scheduled.load(Ordering::SeqCst);
            assert!(runs <= 1);
            while runs > 0 {
                let mut batch = VecDeque::new();
                mb.take_batch(&mut batch);
                // Handle one message per batch; the rest goes back.
                consumed += usize::from(batch.pop_front().is_some());
                if !mb.finish_batch(&mut batch, false, false).requeue {
                    runs -= 1;
                }
            }
            assert_eq!(consumed, 2);
            assert_eq!(mb.len(), 0);
        });
    }

    /// A runner that handled part of its batch puts the rest back in front of a message
    /// pushed meanwhile, whatever the interleaving; the actor stays scheduled throughout.
    #[test]
    fn rest_goes_back_in_front_of_a_racing_push() {
        loom::model(|| {
            let mb = Arc::new(Mailbox::<u32>::new_owned());
            assert!(!mb.release());
            assert!(matches!(mb.push(0, || None), Push::Schedule));
            assert!(matches!(mb.push(1, || None), Push::Queued));
            let sender = {
                let mb = mb.clone();
                loom::thread::spawn(move || matches!(mb.push(2, || None), Push::Queued))
            };
            let mut batch = VecDeque::new();
            mb.take_batch(&mut batch);
            assert_eq!(batch.pop_front(), Some(0));
            assert!(mb.finish_batch(&mut batch, false, false).requeue);
            assert!(
                sender.join().unwrap(),
                "never idle, so never scheduled twice"
            );
            let mut rest = VecDeque::new();
            mb.take_batch(&mut rest);
            assert_eq!(rest, [1, 2]);
        });
    }

    /// A sender racing a runner that is finishing a batch: the message is either taken by
    /// the runner's requeue or schedules the actor anew, never left behind.
    #[test]
    fn push_racing_finish() {
        loom::model(|| {
            let mb = Arc::new(Mailbox::<u32>::new_owned());
            assert!(!mb.release());
            assert!(matches!(mb.push(0, || None), Push::Schedule));
            let sender = {
                let mb = mb.clone();
                loom::thread::spawn(move || matches!(mb.push(1, || None), Push::Schedule))
            };
            let mut batch = VecDeque::new();
            mb.take_batch(&mut batch);
            let mut total = batch.len();
            batch.clear();
            let requeue = mb.finish_batch(&mut batch, false, false).requeue;
            let rescheduled = sender.join().unwrap();
            assert!(
                !(requeue && rescheduled),
                "scheduled twice: requeued and rescheduled"
            );
            if requeue || rescheduled {
                mb.take_batch(&mut batch);
                total += batch.len();
                batch.clear();
                assert!(!mb.finish_batch(&mut batch, false, false).requeue);
            }
            assert_eq!(total, 2);
        });
    }
}
