//! Per-actor mailboxes and the "scheduled" state that makes an actor run on one worker at a time.
//!
//! This module exists because the mailbox is where senders on many threads meet the one worker
//! running an actor. A mailbox is a `VecDeque` and a state byte behind one small mutex (no
//! channel allocation per actor: an idle actor's mailbox is 56 bytes with no heap buffer). The
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
//! anyway, so the bound costs a comparison and an increment on the send path; one sender's
//! count shares a word with the state byte, so it costs an idle mailbox 8 bytes (a map for
//! further senders exists only while several have messages queued). The worker does
//! not lock once per handled message to count it down: it tallies what it handled
//! ([`Handled`]) and settles the tally under the locks it takes anyway (refill, end of batch)
//! or every [`SETTLE_EVERY`] messages. So a message counts from its push until the actor has
//! handled it, plus at most that many messages more.
//!
//! A worker takes the whole queue out at once (a buffer swap, O(1) however long the queue), runs
//! at most a batch of it, and puts any rest back in front of what arrived meanwhile: senders
//! never wait behind a long copy, and a flooded mailbox never drains through a bottleneck. An
//! idle mailbox holds no buffer: it hands its empty buffer back when it goes idle; workers keep
//! a few such buffers and give them to the next push that finds a mailbox without one (when
//! they have none, the mailbox's first buffer has room for one message). So a
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

/// Counts of senders beyond the inline one: sender number to messages.
type OtherCounts = HashMap<SenderKey, u32, BuildHasherDefault<AddressHasher>>;

/// Bits of [`State::flags_and_count`] that hold the flags; the rest is the inline count.
const FLAG_BITS: u32 = 4;
/// The largest inline count; more spills into the map.
const MAX_INLINE_COUNT: u32 = u32::MAX >> FLAG_BITS;

/// The mailbox's flags and the messages each sender has here (queued, or taken and not yet
/// settled), packed into 16 bytes so the bound costs an idle actor 8 bytes, not 24.
///
/// Most mailboxes hear from one sender at a time (a request, a pipeline stage), so one sender's
/// count is kept inline (next to the flags) and a map is allocated only while several senders
/// have messages here at once. A sender's count is its inline count, if it holds the inline
/// slot, plus its map entry: the inline slot takes senders whose number fits in 32 bits, and a
/// count past [`MAX_INLINE_COUNT`] goes on in the map.
struct State {
    /// The inline sender's number (meaningful while its count is not 0).
    first_sender: u32,
    /// The flags (low [`FLAG_BITS`] bits) and the inline sender's count (the rest).
    flags_and_count: u32,
    /// Every other sender with messages here. Boxed: a `HashMap` is 48 bytes, and an idle
    /// mailbox should carry one pointer of it.
    #[allow(clippy::box_collection)]
    others: Option<Box<OtherCounts>>,
}

impl State {
    fn new(flags: u8) -> State {
        State {
            first_sender: 0,
            flags_and_count: u32::from(flags),
            others: None,
        }
    }

    fn flags(&self) -> u8 {
        (self.flags_and_count & ((1 << FLAG_BITS) - 1)) as u8
    }

    fn set_flags(&mut self, flags: u8) {
        debug_assert!(u32::from(flags) < 1 << FLAG_BITS);
        self.flags_and_count = (self.flags_and_count & !((1 << FLAG_BITS) - 1)) | u32::from(flags);
    }

    fn first_count(&self) -> u32 {
        self.flags_and_count >> FLAG_BITS
    }

    fn set_first_count(&mut self, count: u32) {
        debug_assert!(count <= MAX_INLINE_COUNT);
        self.flags_and_count =
            (count << FLAG_BITS) | (self.flags_and_count & ((1 << FLAG_BITS) - 1));
    }

    /// True when `sender` holds the inline slot.
    fn is_first(&self, sender: SenderKey) -> bool {
        self.first_count() > 0 && u64::from(self.first_sender) == sender
    }

    /// The count of `sender`.
    fn count_of(&self, sender: SenderKey) -> u64 {
        let inline = if self.is_first(sender) {
            u64::from(self.first_count())
        } else {
            0
        };
        let other = self
            .others
            .as_ref()
            .and_then(|m| m.get(&sender).copied())
            .unwrap_or(0);
        inline + u64::from(other)
    }

    /// Counts one more message from `sender`, unless it has `limit` already.
    fn add(&mut self, sender: SenderKey, limit: u64) -> bool {
        if self.count_of(sender) >= limit {
            return false;
        }
        let first = self.first_count();
        if self.is_first(sender) && first < MAX_INLINE_COUNT {
            self.set_first_count(first + 1);
        } else if first == 0 && sender <= u64::from(u32::MAX) {
            self.first_sender = sender as u32;
            self.set_first_count(1);
        } else {
            *self
                .others
                .get_or_insert_with(Box::default)
                .entry(sender)
                .or_insert(0) += 1;
        }
        true
    }

    /// Counts down `n` handled messages from `sender` (its map entry first, then inline).
    fn remove(&mut self, sender: SenderKey, n: u32) {
        let mut rest = n;
        if let Some(others) = self.others.as_mut() {
            if let Some(count) = others.get_mut(&sender) {
                let taken = rest.min(*count);
                *count -= taken;
                rest -= taken;
                if *count == 0 {
                    others.remove(&sender);
                    if others.is_empty() {
                        self.others = None;
                    }
                }
            }
        }
        if rest > 0 && self.is_first(sender) {
            let first = self.first_count();
            debug_assert!(first >= rest, "more handled than counted");
            self.set_first_count(first.saturating_sub(rest));
        }
    }

    /// Forgets every count (the flags stay).
    fn clear_counts(&mut self) {
        self.set_first_count(0);
        self.others = None;
    }
}

/// What a worker handled since it last settled with the mailbox: senders and counts, in runs
/// (a batch from one sender is one entry). Settled by [`Mailbox::refill_or_finish`],
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

    fn settle_into(&mut self, state: &mut State) {
        for (sender, n) in self.runs.drain(..) {
            state.remove(sender, n);
        }
        self.messages = 0;
    }
}

struct Inner<T> {
    queue: VecDeque<T>,
    state: State,
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
                state: State::new(SCHEDULED),
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
        if refuse_exiting && inner.state.flags() & EXITING != 0 {
            return Push::Refused(message);
        }
        if inner.state.flags() & STATE_MASK == CLOSED {
            return Push::Refused(message);
        }
        if !inner.state.add(sender, u64::from(limit)) {
            if !exempt(&message) {
                return Push::Full(message);
            }
            inner.state.add(sender, u64::MAX);
        }
        if inner.queue.capacity() == 0 {
            if let Some(buffer) = spare() {
                debug_assert!(buffer.is_empty());
                // A buffer of no capacity owns no memory: skip its (not free) drop.
                std::mem::forget(std::mem::replace(&mut inner.queue, buffer));
            } else {
                // One slot, not `VecDeque`'s first four: most mailboxes that get a buffer
                // hold one message at a time (a request, a SkyNet leaf), and a flood doubles
                // from here as from four.
                inner.queue.reserve_exact(1);
            }
        }
        match inner.state.flags() & STATE_MASK {
            IDLE => {
                inner.queue.push_back(message);
                let flags = inner.state.flags();
                inner.state.set_flags((flags & !STATE_MASK) | SCHEDULED);
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
        inner.state.flags() & WATCHING != 0
    }

    /// During a batch, after `out` ran empty: settles `handled` and takes what arrived
    /// meanwhile (swapping buffers; `None`), or, when nothing did, ends the batch as
    /// [`Mailbox::finish_batch`] with nothing left over would, under the same lock (one lock
    /// per batch fewer: a request/reply actor's batch is one message).
    pub(crate) fn refill_or_finish(
        &self,
        out: &mut VecDeque<T>,
        handled: &mut Handled,
        watching: bool,
        exiting: bool,
    ) -> Option<Finish<T>> {
        debug_assert!(out.is_empty());
        let mut inner = self.inner.lock_brief();
        if inner.state.flags() & STATE_MASK == CLOSED {
            handled.clear();
            return Some(Finish {
                requeue: false,
                spare: None,
            });
        }
        handled.settle_into(&mut inner.state);
        if !inner.queue.is_empty() {
            std::mem::swap(&mut inner.queue, out);
            return None;
        }
        Some(Self::end_batch(&mut inner, watching, exiting))
    }

    /// During a batch: settles `handled`, so its senders may queue more.
    pub(crate) fn settle(&self, handled: &mut Handled) {
        let mut inner = self.inner.lock_brief();
        handled.settle_into(&mut inner.state);
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
        if inner.state.flags() & STATE_MASK == CLOSED {
            handled.clear();
            return Finish {
                requeue: false,
                spare: None,
            };
        }
        handled.settle_into(&mut inner.state);
        if !rest.is_empty() {
            // `rest` is older than anything queued now: it goes first.
            rest.append(&mut inner.queue);
            std::mem::swap(&mut inner.queue, rest);
        }
        Self::end_batch(&mut inner, watching, exiting)
    }

    /// Records the watch and exiting flags and returns the mailbox to `IDLE`, or reports
    /// that messages wait (the actor must be requeued).
    fn end_batch(inner: &mut Inner<T>, watching: bool, exiting: bool) -> Finish<T> {
        let mut flags = inner.state.flags() & STATE_MASK;
        if watching {
            flags |= WATCHING;
        }
        if exiting {
            flags |= EXITING;
        }
        if inner.queue.is_empty() {
            inner.state.set_flags((flags & !STATE_MASK) | IDLE);
            let spare = (inner.queue.capacity() > 0).then(|| std::mem::take(&mut inner.queue));
            Finish {
                requeue: false,
                spare,
            }
        } else {
            inner.state.set_flags(flags);
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
        inner.state.set_flags(CLOSED);
        inner.state.clear_counts();
        std::mem::take(&mut inner.queue)
    }

    /// Messages waiting.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock_brief().queue.len()
    }

    /// Messages from `sender` counted against its limit.
    #[cfg(test)]
    pub(crate) fn count_of(&self, sender: SenderKey) -> u64 {
        self.inner.lock_brief().state.count_of(sender)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn first_push_schedules_and_finish_returns_to_idle() {
        let mb: Mailbox<u32> = Mailbox::new_owned();
        assert!(matches!(
            mb.push(1, 1, u32::MAX, |_| false, || None),
            Push::Queued
        ));
        assert!(mb.release(), "a message arrived while owned");
        let mut batch = VecDeque::new();
        assert!(!mb.take_batch(&mut batch));
        assert_eq!(batch, [1]);
        batch.clear();
        let finish = mb.finish_batch(&mut batch, &mut Handled::default(), false, false);
        assert!(!finish.requeue);
        assert!(finish.spare.is_none(), "the buffer went out with the batch");
        assert!(matches!(
            mb.push(2, 1, u32::MAX, |_| false, || None),
            Push::Schedule
        ));
        assert!(matches!(
            mb.push(3, 1, u32::MAX, |_| false, || None),
            Push::Queued
        ));
        mb.take_batch(&mut batch);
        assert_eq!(batch.pop_front(), Some(2));
        assert!(matches!(
            mb.push(4, 1, u32::MAX, |_| false, || None),
            Push::Queued
        ));
        assert!(
            mb.finish_batch(&mut batch, &mut Handled::default(), true, false)
                .requeue,
            "3 and 4 wait"
        );
        assert!(batch.is_empty());
        assert!(mb.take_batch(&mut batch), "the watch flag is kept");
        assert_eq!(batch, [3, 4], "the rest stays in front of later arrivals");
        assert_eq!(mb.close(), Vec::<u32>::new());
        assert!(matches!(
            mb.push(5, 1, u32::MAX, |_| false, || None),
            Push::Refused(5)
        ));
    }

    #[test]
    fn each_sender_is_bounded_until_its_messages_are_handled() {
        let mb: Mailbox<u32> = Mailbox::new_owned();
        assert!(!mb.release());
        let push = |m: u32, sender: SenderKey| mb.push(m, sender, 2, |m| *m >= 100, || None);
        assert!(matches!(push(1, 7), Push::Schedule));
        assert!(matches!(push(2, 7), Push::Queued));
        assert!(
            matches!(push(3, 7), Push::Full(3)),
            "sender 7 is at its limit"
        );
        assert!(
            matches!(push(100, 7), Push::Queued),
            "an exempt message still goes in"
        );
        assert!(
            matches!(push(4, 8), Push::Queued),
            "senders are bounded separately"
        );
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
        assert!(mb
            .refill_or_finish(&mut batch, &mut handled, false, false)
            .is_none());
        assert_eq!(batch, [6]);
        assert_eq!((mb.count_of(7), mb.count_of(8), mb.count_of(9)), (1, 0, 0));
        handled.note(7);
        batch.clear();
        let finish = mb
            .refill_or_finish(&mut batch, &mut handled, false, false)
            .expect("nothing arrived: the batch ends");
        assert!(!finish.requeue);
        assert_eq!(mb.count_of(7), 0);
        assert!(matches!(push(7, 7), Push::Schedule));
        assert!(matches!(
            mb.push(8, 7, 0, |_| false, || None),
            Push::Full(8)
        ));
    }

    #[test]
    fn counts_share_a_word_with_the_flags_and_spill_into_the_map() {
        let mut state = State::new(SCHEDULED | WATCHING);
        let big = u64::from(u32::MAX) + 5;
        assert!(state.add(3, 2));
        assert!(state.add(big, 2), "a number past 32 bits goes to the map");
        assert!(state.add(4, 2), "the inline slot is taken: the map");
        assert!(state.add(3, 2));
        assert!(!state.add(3, 2));
        assert!(state.add(big, 2));
        assert!(!state.add(big, 2));
        assert_eq!(
            state.flags(),
            SCHEDULED | WATCHING,
            "counts leave the flags alone"
        );
        assert_eq!(
            (state.count_of(3), state.count_of(4), state.count_of(big)),
            (2, 1, 2)
        );
        state.remove(3, 2);
        state.remove(4, 1);
        state.remove(big, 2);
        assert_eq!(
            state.count_of(3) + state.count_of(4) + state.count_of(big),
            0
        );
        assert!(state.others.is_none(), "an empty map is freed");
        // An inline count at its maximum goes on in the map, and comes down map first.
        assert!(state.add(9, u64::MAX));
        state.set_first_count(MAX_INLINE_COUNT);
        assert!(state.add(9, u64::MAX));
        assert_eq!(state.count_of(9), u64::from(MAX_INLINE_COUNT) + 1);
        state.remove(9, 2);
        assert!(state.others.is_none());
        assert_eq!(state.count_of(9), u64::from(MAX_INLINE_COUNT) - 1);
        state.set_flags(CLOSED);
        assert_eq!(state.first_count(), MAX_INLINE_COUNT - 1);
        state.clear_counts();
        assert_eq!((state.count_of(9), state.flags()), (0, CLOSED));
    }

    /// One step of the property test's single-threaded run of the protocol.
    #[derive(Clone, Debug)]
    enum Op {
        /// A push from sender `0..3`.
        Push(u8),
        /// The runner handles up to this many messages of its batch, then refills or finishes.
        Run(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![(0u8..3).prop_map(Op::Push), (0u8..4).prop_map(Op::Run)]
    }

    proptest::proptest! {
        /// Pushes interleaved with batches that end in `refill_or_finish` or `finish_batch`:
        /// every message is handled once, in push order; the actor is scheduled only when it
        /// is idle, and is idle exactly when nothing waits; the counts come back to zero.
        #[test]
        fn batches_lose_nothing_and_keep_order(
            ops in proptest::collection::vec(op(), 0..200),
            spare_buffers in proptest::bool::ANY,
        ) {
            let mb: Mailbox<(u8, u32)> = Mailbox::new_owned();
            proptest::prop_assert!(!mb.release());
            let mut scheduled = false;
            let mut pushed = 0u32;
            let mut handled_in_order = Vec::new();
            let mut handled = Handled::default();
            let mut batch = VecDeque::new();
            // Handles up to `n` messages of one batch; true when the batch ended with the
            // mailbox idle.
            let mut run = |n: u8, handled_in_order: &mut Vec<u32>, batch: &mut VecDeque<(u8, u32)>| {
                mb.take_batch(batch);
                let mut left = n;
                loop {
                    if left == 0 {
                        let finish = mb.finish_batch(batch, &mut handled, false, false);
                        return !finish.requeue;
                    }
                    match batch.pop_front() {
                        Some((sender, m)) => {
                            handled.note(u64::from(sender));
                            handled_in_order.push(m);
                            left -= 1;
                        }
                        None => {
                            if let Some(finish) = mb.refill_or_finish(batch, &mut handled, false, false) {
                                return !finish.requeue;
                            }
                        }
                    }
                }
            };
            for op in ops {
                match op {
                    Op::Push(sender) => {
                        let spare = || spare_buffers.then(|| VecDeque::with_capacity(4));
                        match mb.push((sender, pushed), u64::from(sender), u32::MAX, |_| false, spare) {
                            Push::Schedule => {
                                proptest::prop_assert!(!scheduled, "scheduled twice");
                                scheduled = true;
                            }
                            Push::Queued => proptest::prop_assert!(scheduled, "a message stranded in an idle mailbox"),
                            other => proptest::prop_assert!(false, "unexpected {:?}", other),
                        }
                        pushed += 1;
                    }
                    Op::Run(n) => {
                        if scheduled && run(n, &mut handled_in_order, &mut batch) {
                            scheduled = false;
                            proptest::prop_assert_eq!(mb.len(), 0);
                        }
                    }
                }
            }
            while scheduled {
                if run(3, &mut handled_in_order, &mut batch) {
                    scheduled = false;
                }
            }
            proptest::prop_assert_eq!(handled_in_order, (0..pushed).collect::<Vec<_>>());
            for sender in 0..3 {
                proptest::prop_assert_eq!(mb.count_of(sender), 0);
            }
        }
    }

    #[test]
    fn exiting_refuses_timer_deliveries_only() {
        let mb: Mailbox<u32> = Mailbox::new_owned();
        assert!(
            !mb.finish_batch(&mut VecDeque::new(), &mut Handled::default(), false, true)
                .requeue
        );
        assert!(matches!(mb.push_if_running(1, 1), Push::Refused(1)));
        assert!(matches!(
            mb.push(2, 1, u32::MAX, |_| false, || None),
            Push::Schedule
        ));
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
                if !mb
                    .finish_batch(&mut batch, &mut Handled::default(), false, false)
                    .requeue
                {
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
            assert!(matches!(
                mb.push(0, 1, u32::MAX, |_| false, || None),
                Push::Schedule
            ));
            assert!(matches!(
                mb.push(1, 1, u32::MAX, |_| false, || None),
                Push::Queued
            ));
            let sender = {
                let mb = mb.clone();
                loom::thread::spawn(move || {
                    matches!(mb.push(2, 1, u32::MAX, |_| false, || None), Push::Queued)
                })
            };
            let mut batch = VecDeque::new();
            mb.take_batch(&mut batch);
            assert_eq!(batch.pop_front(), Some(0));
            assert!(
                mb.finish_batch(&mut batch, &mut Handled::default(), false, false)
                    .requeue
            );
            assert!(
                sender.join().unwrap(),
                "never idle, so never scheduled twice"
            );
            let mut rest = VecDeque::new();
            mb.take_batch(&mut rest);
            assert_eq!(rest, [1, 2]);
        });
    }

    /// A sender racing a runner whose batch ran empty: the runner's `refill_or_finish` either
    /// takes the message or leaves the mailbox idle for the push to schedule it, never both
    /// and never neither.
    #[test]
    fn push_racing_refill_or_finish() {
        loom::model(|| {
            let mb = Arc::new(Mailbox::<u32>::new_owned());
            assert!(!mb.release());
            assert!(matches!(
                mb.push(0, 1, u32::MAX, |_| false, || None),
                Push::Schedule
            ));
            let sender = {
                let mb = mb.clone();
                loom::thread::spawn(move || {
                    matches!(mb.push(1, 1, u32::MAX, |_| false, || None), Push::Schedule)
                })
            };
            let mut batch = VecDeque::new();
            mb.take_batch(&mut batch);
            let mut total = batch.len();
            batch.clear();
            let mut handled = Handled::default();
            let refilled = match mb.refill_or_finish(&mut batch, &mut handled, false, false) {
                None => true,
                Some(finish) => {
                    assert!(!finish.requeue, "nothing waited when it ended");
                    false
                }
            };
            total += batch.len();
            batch.clear();
            let rescheduled = sender.join().unwrap();
            assert!(!(refilled && rescheduled), "taken and scheduled again");
            if refilled {
                assert!(mb
                    .refill_or_finish(&mut batch, &mut handled, false, false)
                    .is_some());
            } else if rescheduled {
                mb.take_batch(&mut batch);
                total += batch.len();
                batch.clear();
                assert!(mb
                    .refill_or_finish(&mut batch, &mut handled, false, false)
                    .is_some());
            }
            assert_eq!(total, 2);
            assert_eq!(mb.len(), 0);
        });
    }

    /// A sender racing a runner that is finishing a batch: the message is either taken by
    /// the runner's requeue or schedules the actor anew, never left behind.
    #[test]
    fn push_racing_finish() {
        loom::model(|| {
            let mb = Arc::new(Mailbox::<u32>::new_owned());
            assert!(!mb.release());
            assert!(matches!(
                mb.push(0, 1, u32::MAX, |_| false, || None),
                Push::Schedule
            ));
            let sender = {
                let mb = mb.clone();
                loom::thread::spawn(move || {
                    matches!(mb.push(1, 1, u32::MAX, |_| false, || None), Push::Schedule)
                })
            };
            let mut batch = VecDeque::new();
            mb.take_batch(&mut batch);
            let mut total = batch.len();
            batch.clear();
            let requeue = mb
                .finish_batch(&mut batch, &mut Handled::default(), false, false)
                .requeue;
            let rescheduled = sender.join().unwrap();
            assert!(
                !(requeue && rescheduled),
                "scheduled twice: requeued and rescheduled"
            );
            if requeue || rescheduled {
                mb.take_batch(&mut batch);
                total += batch.len();
                batch.clear();
                assert!(
                    !mb.finish_batch(&mut batch, &mut Handled::default(), false, false)
                        .requeue
                );
            }
            assert_eq!(total, 2);
        });
    }
}
