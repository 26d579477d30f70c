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
//! The mailbox also bounds each sender (SPEC §8.13): it counts, per sender, the messages that
//! sender pushed and the actor has not handled yet, and a bounded push over the limit is
//! refused (`Push::Full`) instead of queued. The count is kept under the lock the push takes
//! anyway, so the bound costs a comparison and an increment on the send path. The worker does
//! not lock once per handled message to count it down: it tallies what it handled
//! ([`Handled`]) and settles the tally under the locks it takes anyway (refill, end of batch)
//! or every [`SETTLE_EVERY`] messages. So a message counts from its push until the actor has
//! handled it, plus at most that many messages more.
//!
//! A worker takes the whole queue out at once (a buffer swap, O(1) however long the queue), runs
//! at most a batch of it, and puts any rest back in front of what arrived meanwhile: senders
//! never wait behind a long copy, and a flooded mailbox never drains through a bottleneck. An
//! idle mailbox holds no buffer: it hands its empty buffer back when it goes idle; workers keep
//! a few such buffers and give them to the next push that finds a mailbox without one. So a
//! million actors that each got a message cost no queue memory once idle, and request/reply
//! traffic allocates no buffers at all.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

use thespian_core::registry::AddressHasher;

use crate::sync::Mutex;

/// A worker settles its [`Handled`] tally with the mailbox at least every this many messages.
pub(crate) const SETTLE_EVERY: usize = 64;

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
    /// The sender already has its limit of unhandled messages here: the message is handed
    /// back, and nothing was queued.
    Full(T),
}

/// A sender's key: its address's number (every sender of a mailbox is of the same system).
pub(crate) type SenderKey = u64;

/// Messages each sender has here (queued, or taken and not yet settled).
///
/// Most mailboxes hear from one sender at a time (a request, a pipeline stage), so the first
/// sender's count is kept inline and a map is allocated only while several senders have
/// messages here at once.
#[derive(Default)]
struct SenderCounts {
    /// A sender and its count; free when the count is 0.
    first: (SenderKey, u32),
    /// Every other sender with messages here.
    others: Option<Box<HashMap<SenderKey, u32, BuildHasherDefault<AddressHasher>>>>,
}

impl SenderCounts {
    /// Counts one more message from `sender`, unless it has `limit` already.
    fn add(&mut self, sender: SenderKey, limit: u32) -> bool {
        if self.first.1 > 0 && self.first.0 == sender {
            if self.first.1 >= limit {
                return false;
            }
            self.first.1 += 1;
            return true;
        }
        if let Some(count) = self.others.as_mut().and_then(|m| m.get_mut(&sender)) {
            if *count >= limit {
                return false;
            }
            *count += 1;
            return true;
        }
        if limit == 0 {
            return false;
        }
        if self.first.1 == 0 {
            self.first = (sender, 1);
        } else {
            self.others.get_or_insert_with(Box::default).insert(sender, 1);
        }
        true
    }

    /// Counts down `n` handled messages from `sender`.
    fn remove(&mut self, sender: SenderKey, n: u32) {
        if self.first.1 > 0 && self.first.0 == sender {
            debug_assert!(self.first.1 >= n);
            self.first.1 = self.first.1.saturating_sub(n);
            return;
        }
        if let Some(others) = self.others.as_mut() {
            if let Some(count) = others.get_mut(&sender) {
                debug_assert!(*count >= n);
                *count = count.saturating_sub(n);
                if *count == 0 {
                    others.remove(&sender);
                    if others.is_empty() {
                        self.others = None;
                    }
                }
            }
        }
    }

    /// The count of `sender`.
    #[cfg(test)]
    fn of(&self, sender: SenderKey) -> u32 {
        if self.first.1 > 0 && self.first.0 == sender {
            return self.first.1;
        }
        self.others
            .as_ref()
            .and_then(|m| m.get(&sender).copied())
            .unwrap_or(0)
    }
}

/// What a worker handled since it last settled with the mailbox: senders and counts, in runs
/// (a batch from one sender is one entry). Settled by [`Mailbox::refill`],
/// [`Mailbox::finish_batch`] and [`Mailbox::settle`].
#[derive(Debug, Default)]
pub(crate) struct Handled {
    runs: Vec<(SenderKey, u32)>,
    messages: usize,
}

impl Handled {
    /// A message from `sender` was handled (or will never be).
    pub(crate) fn note(&mut self, sender: SenderKey) {
        self.messages += 1;
        match self.runs.last_mut() {
            Some((last, n)) if *last == sender => *n += 1,
            _ => self.runs.push((sender, 1)),
        }
    }

    /// Messages noted since the last settlement.
    pub(crate) fn len(&self) -> usize {
        self.messages
    }

    /// Forgets the tally (the mailbox it was for is closed).
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.messages = 0;
    }

    fn settle_into(&mut self, counts: &mut SenderCounts) {
        for (sender, n) in self.runs.drain(..) {
            counts.remove(sender, n);
        }
        self.messages = 0;
    }
}

struct Inner<T> {
    queue: VecDeque<T>,
    flags: u8,
    counts: SenderCounts,
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
                counts: SenderCounts::default(),
            }),
        }
    }

    /// Appends a message from `sender`, unless `sender` already has `limit` messages here that
    /// the actor has not handled and `exempt` (asked only then) does not exempt this one.
    /// `spare` may supply a buffer when the mailbox has none.
    pub(crate) fn push(
        &self,
        message: T,
        sender: SenderKey,
        limit: u32,
        exempt: impl FnOnce(&T) -> bool,
        spare: impl FnOnce() -> Option<VecDeque<T>>,
    ) -> Push<T> {
        self.push_inner(message, sender, limit, exempt, false, spare)
    }

    /// Appends a message from `sender` without limit unless the actor is exiting or gone (for
    /// wakeups and watch events, which only a running actor receives).
    pub(crate) fn push_if_running(&self, message: T, sender: SenderKey) -> Push<T> {
        self.push_inner(message, sender, u32::MAX, |_| true, true, || None)
    }

    fn push_inner(
        &self,
        message: T,
        sender: SenderKey,
        limit: u32,
        exempt: impl FnOnce(&T) -> bool,
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
        if !inner.counts.add(sender, limit) {
            if !exempt(&message) {
                return Push::Full(message);
            }
            inner.counts.add(sender, u32::MAX);
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

    /// During a batch, after `out` ran empty: settles `handled` and takes what arrived
    /// meanwhile (swapping buffers). False when nothing did.
    pub(crate) fn refill(&self, out: &mut VecDeque<T>, handled: &mut Handled) -> bool {
        debug_assert!(out.is_empty());
        let mut inner = self.inner.lock_brief();
        handled.settle_into(&mut inner.counts);
        if inner.queue.is_empty() {
            return false;
        }
        std::mem::swap(&mut inner.queue, out);
        true
    }

    /// During a batch: settles `handled`, so its senders may queue more.
    pub(crate) fn settle(&self, handled: &mut Handled) {
        let mut inner = self.inner.lock_brief();
        handled.settle_into(&mut inner.counts);
    }

    /// Ends a batch: settles `handled`, puts `rest` (taken but not handled) back in front of
    /// what arrived meanwhile (`rest` is left empty), records the watch and exiting flags, and
    /// either returns
    /// the mailbox to `IDLE` (`requeue` false; its empty buffer, if any, is handed back as
    /// `spare`) or reports that messages are waiting and the actor must be requeued. Only the
    /// worker that owns the `SCHEDULED` state calls this. A closed mailbox takes nothing back.
    pub(crate) fn finish_batch(
        &self,
        rest: &mut VecDeque<T>,
        handled: &mut Handled,
        watching: bool,
        exiting: bool,
    ) -> Finish<T> {
        let mut inner = self.inner.lock_brief();
        if inner.flags & STATE_MASK == CLOSED {
            handled.clear();
            return Finish {
                requeue: false,
                spare: None,
            };
        }
        handled.settle_into(&mut inner.counts);
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
        self.finish_batch(&mut VecDeque::new(), &mut Handled::default(), false, false)
            .requeue
    }

    /// Closes the mailbox for good; returns what was still queued (to dead-letter).
    pub(crate) fn close(&self) -> VecDeque<T> {
        let mut inner = self.inner.lock_brief();
        inner.flags = CLOSED;
        inner.counts = SenderCounts::default();
        std::mem::take(&mut inner.queue)
    }

    /// Messages waiting.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock_brief().queue.len()
    }

    /// Messages from `sender` counted against its limit.
    #[cfg(test)]
    pub(crate) fn count_of(&self, sender: SenderKey) -> u32 {
        self.inner.lock_brief().counts.of(sender)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn first_push_schedules_and_finish_returns_to_idle() {
        let mb: Mailbox<u32> = Mailbox::new_owned();
        assert!(matches!(mb.push(1, 1, u32::MAX, |_| false, || None), Push::Queued));
        assert!(mb.release(), "a message arrived while owned");
        let mut batch = VecDeque::new();
        assert!(!mb.take_batch(&mut batch));
        assert_eq!(batch, [1]);
        batch.clear();
        let finish = mb.finish_batch(&mut batch, &mut Handled::default(), false, false);
        assert!(!finish.requeue);
        assert!(finish.spare.is_none(), "the buffer went out with the batch");
        assert!(matches!(mb.push(2, 1, u32::MAX, |_| false, || None), Push::Schedule));
        assert!(matches!(mb.push(3, 1, u32::MAX, |_| false, || None), Push::Queued));
        mb.take_batch(&mut batch);
        assert_eq!(batch.pop_front(), Some(2));
        assert!(matches!(mb.push(4, 1, u32::MAX, |_| false, || None), Push::Queued));
        assert!(
            mb.finish_batch(&mut batch, &mut Handled::default(), true, false).requeue,
            "3 and 4 wait"
        );
        assert!(batch.is_empty());
        assert!(mb.take_batch(&mut batch), "the watch flag is kept");
        assert_eq!(batch, [3, 4], "the rest stays in front of later arrivals");
        assert_eq!(mb.close(), Vec::<u32>::new());
        assert!(matches!(mb.push(5, 1, u32::MAX, |_| false, || None), Push::Refused(5)));
    }

    #[test]
    fn each_sender_is_bounded_until_its_messages_are_handled() {
        let mb: Mailbox<u32> = Mailbox::new_owned();
        assert!(!mb.release());
        let push = |m: u32, sender: SenderKey| mb.push(m, sender, 2, |m| *m >= 100, || None);
        assert!(matches!(push(1, 7), Push::Schedule));
        assert!(matches!(push(2, 7), Push::Queued));
        assert!(matches!(push(3, 7), Push::Full(3)), "sender 7 is at its limit");
        assert!(matches!(push(100, 7), Push::Queued), "an exempt message still goes in");
        assert!(matches!(push(4, 8), Push::Queued), "senders are bounded separately");
        assert!(matches!(push(5, 9), Push::Queued));
        assert_eq!((mb.count_of(7), mb.count_of(8), mb.count_of(9)), (3, 1, 1));
        let mut batch = VecDeque::new();
        mb.take_batch(&mut batch);
        assert_eq!(batch, [1, 2, 100, 4, 5]);
        // Taken is not handled: the limit still holds until the worker settles.
        assert!(matches!(push(6, 7), Push::Full(6)));
        let mut handled = Handled::default();
        handled.note(7);
        handled.note(7);
        assert_eq!(handled.len(), 2);
        mb.settle(&mut handled);
        assert_eq!(handled.len(), 0);
        assert_eq!(mb.count_of(7), 1);
        assert!(matches!(push(6, 7), Push::Queued));
        batch.drain(..2);
        for sender in [7, 8, 9] {
            handled.note(sender);
        }
        batch.clear();
        assert!(mb.refill(&mut batch, &mut handled));
        assert_eq!(batch, [6]);
        assert_eq!((mb.count_of(7), mb.count_of(8), mb.count_of(9)), (1, 0, 0));
        handled.note(7);
        batch.clear();
        assert!(!mb.finish_batch(&mut batch, &mut handled, false, false).requeue);
        assert_eq!(mb.count_of(7), 0);
        assert!(matches!(push(7, 7), Push::Schedule));
        assert!(matches!(mb.push(8, 7, 0, |_| false, || None), Push::Full(8)));
    }

    #[test]
    fn exiting_refuses_timer_deliveries_only() {
        let mb: Mailbox<u32> = Mailbox::new_owned();
        assert!(!mb.finish_batch(&mut VecDeque::new(), &mut Handled::default(), false, true).requeue);
        assert!(matches!(mb.push_if_running(1, 1), Push::Refused(1)));
        assert!(matches!(mb.push(2, 1, u32::MAX, |_| false, || None), Push::Schedule));
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
                        if let Push::Schedule = mb.push(i, 1, u32::MAX, |_| false, || None) {
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
                if !mb.finish_batch(&mut batch, &mut Handled::default(), false, false).requeue {
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
            assert!(matches!(mb.push(0, 1, u32::MAX, |_| false, || None), Push::Schedule));
            assert!(matches!(mb.push(1, 1, u32::MAX, |_| false, || None), Push::Queued));
            let sender = {
                let mb = mb.clone();
                loom::thread::spawn(move || matches!(mb.push(2, 1, u32::MAX, |_| false, || None), Push::Queued))
            };
            let mut batch = VecDeque::new();
            mb.take_batch(&mut batch);
            assert_eq!(batch.pop_front(), Some(0));
            assert!(mb.finish_batch(&mut batch, &mut Handled::default(), false, false).requeue);
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
            assert!(matches!(mb.push(0, 1, u32::MAX, |_| false, || None), Push::Schedule));
            let sender = {
                let mb = mb.clone();
                loom::thread::spawn(move || matches!(mb.push(1, 1, u32::MAX, |_| false, || None), Push::Schedule))
            };
            let mut batch = VecDeque::new();
            mb.take_batch(&mut batch);
            let mut total = batch.len();
            batch.clear();
            let requeue = mb.finish_batch(&mut batch, &mut Handled::default(), false, false).requeue;
            let rescheduled = sender.join().unwrap();
            assert!(
                !(requeue && rescheduled),
                "scheduled twice: requeued and rescheduled"
            );
            if requeue || rescheduled {
                mb.take_batch(&mut batch);
                total += batch.len();
                batch.clear();
                assert!(!mb.finish_batch(&mut batch, &mut Handled::default(), false, false).requeue);
            }
            assert_eq!(total, 2);
        });
    }
}
