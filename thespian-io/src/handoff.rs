//! The hand-off between the threads that send through an endpoint and the one thread that
//! drives it.
//!
//! This module exists because every transport endpoint has the same shape: a poll loop owned by
//! one thread, and cheap cloneable senders on any thread. A send must fail at once when it
//! cannot be taken (the endpoint is closed, or the peer's [`SendBudget`] is spent), get the id
//! its outcome will be reported under, reach the loop over a channel and wake it without a
//! system call per message; the loop clears the wake flag before draining, so a send queued
//! after a drain wakes it again. [`HandoffSender::interrupt`] makes the loop return to its
//! caller, and closing refuses later sends. Each transport keeps its own command type and its
//! own errors; this is the part they had both written.
//!
//! A send made on the thread that drives the loop writes no waker: that thread's next wait is
//! a turn of the loop, and every driver drains its commands before it blocks (the contract of
//! [`Handoff::begin_drain`]). In an actor process, where the actor runs on the loop's thread,
//! that saves a system call and a spurious return from the poll per message.

use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use mio::Waker;
use thespian_core::wire::Usage;
use thespian_core::{MessageId, SendBudget};

/// Why a sender could not hand a message over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffError {
    /// The endpoint is closed.
    Closed,
    /// The peer's budget is spent: this many messages and bytes are unsettled there.
    Full(Usage),
}

/// The state the loop and its senders share.
struct Shared {
    /// Who this is, for the warnings of a failed wake (`"TCP endpoint"`).
    name: &'static str,
    waker: Waker,
    /// Set by a sender that woke the loop; cleared by the loop before draining commands.
    woken: AtomicBool,
    /// Set by [`HandoffSender::interrupt`]: the next poll returns even without events.
    interrupted: AtomicBool,
    closed: AtomicBool,
    /// The [`thread_number`] of the thread that began the last drain (0: none yet).
    loop_thread: AtomicU64,
    next_id: AtomicU64,
    /// Messages handed over and not yet settled (acknowledged or failed), per peer.
    budget: SendBudget<SocketAddr>,
}

/// A number for the calling thread, unique in the process and never 0 (`ThreadId` has no
/// stable integer form to keep in an atomic).
fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

impl Shared {
    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake the {}: {e}", self.name);
        }
    }
}

/// The loop's side: where commands arrive, and the budget it settles.
pub struct Handoff<C> {
    shared: Arc<Shared>,
    tx: mpsc::Sender<C>,
    rx: mpsc::Receiver<C>,
}

impl<C> std::fmt::Debug for Handoff<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// A sender's side: cheap to clone, usable from any thread.
pub struct HandoffSender<C> {
    shared: Arc<Shared>,
    tx: mpsc::Sender<C>,
}

impl<C> Clone for HandoffSender<C> {
    fn clone(&self) -> Self {
        HandoffSender {
            shared: self.shared.clone(),
            tx: self.tx.clone(),
        }
    }
}

impl<C> std::fmt::Debug for HandoffSender<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffSender")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl<C> Handoff<C> {
    /// A hand-off that wakes its loop through `waker` (registered with the loop's poll), with a
    /// budget of at most `max_messages` messages and `max_bytes` bytes unsettled per peer.
    /// `name` names the endpoint in warnings. Message ids start at 1.
    pub fn new(
        name: &'static str,
        waker: Waker,
        max_messages: usize,
        max_bytes: usize,
    ) -> Handoff<C> {
        let (tx, rx) = mpsc::channel();
        Handoff {
            shared: Arc::new(Shared {
                name,
                waker,
                woken: AtomicBool::new(false),
                interrupted: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                loop_thread: AtomicU64::new(0),
                next_id: AtomicU64::new(1),
                budget: SendBudget::new(max_messages, max_bytes),
            }),
            tx,
            rx,
        }
    }

    /// A handle for sending from any thread.
    pub fn sender(&self) -> HandoffSender<C> {
        HandoffSender {
            shared: self.shared.clone(),
            tx: self.tx.clone(),
        }
    }

    /// Starts a drain: clears the wake flag, so a command queued from now on wakes the loop
    /// again, and makes the calling thread the loop's. Then take the commands with
    /// [`next_command`](Self::next_command).
    ///
    /// The driver's contract: the thread that drains also drains again (after any handler it
    /// ran) before it next blocks in the poll, since its own sends do not wake the poll.
    pub fn begin_drain(&self) {
        self.shared.woken.store(false, Ordering::Release);
        self.shared
            .loop_thread
            .store(thread_number(), Ordering::Relaxed);
        // Pairs with the fence in `HandoffSender::wake`: a sender that still saw itself as
        // the loop's thread queued its command before this drain reads the channel.
        fence(Ordering::SeqCst);
    }

    /// The oldest queued command, if any.
    pub fn next_command(&self) -> Option<C> {
        self.rx.try_recv().ok()
    }

    /// True once after [`HandoffSender::interrupt`]: the loop should return to its caller.
    pub fn take_interrupt(&self) -> bool {
        self.shared.interrupted.swap(false, Ordering::AcqRel)
    }

    /// Refuses every later send with [`HandoffError::Closed`] (what was queued before can
    /// still be drained).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }

    /// Gives back the budget of one settled message of `bytes` to `peer`.
    pub fn release(&self, peer: SocketAddr, bytes: usize) {
        self.shared.budget.release(&peer, bytes);
    }
}

impl<C> HandoffSender<C> {
    /// True when the endpoint is closed: sends fail.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Hands over one message of `bytes` to `peer`: takes room in the peer's budget, gives the
    /// message its id, queues `command(id)` and wakes the loop. The budget is given back if
    /// the loop is gone; otherwise the loop releases it ([`Handoff::release`]) once the message
    /// is settled.
    pub fn send(
        &self,
        peer: SocketAddr,
        bytes: usize,
        command: impl FnOnce(MessageId) -> C,
    ) -> Result<MessageId, HandoffError> {
        let shared = &*self.shared;
        if self.is_closed() {
            return Err(HandoffError::Closed);
        }
        shared
            .budget
            .reserve(peer, bytes)
            .map_err(HandoffError::Full)?;
        let id = MessageId(shared.next_id.fetch_add(1, Ordering::Relaxed));
        if self.tx.send(command(id)).is_err() {
            shared.budget.release(&peer, bytes);
            return Err(HandoffError::Closed);
        }
        self.wake();
        Ok(id)
    }

    /// Queues a command that carries no message (no budget, no id) and wakes the loop.
    pub fn command(&self, command: C) -> Result<(), HandoffError> {
        if self.is_closed() {
            return Err(HandoffError::Closed);
        }
        self.tx.send(command).map_err(|_| HandoffError::Closed)?;
        self.wake();
        Ok(())
    }

    /// Makes the loop's current or next poll return, with or without events, so its thread
    /// can look at its own state (e.g. to stop).
    pub fn interrupt(&self) {
        self.shared.interrupted.store(true, Ordering::Release);
        self.shared.wake();
    }

    /// Wakes the loop unless a wake since its last drain is still pending, or the caller is
    /// the loop's own thread (its next wait drains first). Called after the command is queued.
    fn wake(&self) {
        // Pairs with the fence in `Handoff::begin_drain`: if another thread took the loop
        // over, either it sees the command or this sees it took over and wakes it.
        fence(Ordering::SeqCst);
        if self.shared.loop_thread.load(Ordering::Relaxed) == thread_number() {
            return;
        }
        if !self.shared.woken.swap(true, Ordering::AcqRel) {
            self.shared.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    fn handoff(max_messages: usize) -> (Poll, Handoff<(SocketAddr, MessageId)>) {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), Token(0)).unwrap();
        (
            poll,
            Handoff::new("test endpoint", waker, max_messages, 1 << 20),
        )
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn sends_get_ids_in_order_and_wake_the_loop_once_per_drain() {
        let (mut poll, handoff) = handoff(8);
        let sender = handoff.sender();
        let a = sender.send(peer(), 10, |id| (peer(), id)).unwrap();
        let b = sender.send(peer(), 10, |id| (peer(), id)).unwrap();
        assert_eq!((a, b), (MessageId(1), MessageId(2)));
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1, "one wake for both sends");
        handoff.begin_drain();
        let drained: Vec<_> = std::iter::from_fn(|| handoff.next_command()).collect();
        assert_eq!(drained, vec![(peer(), a), (peer(), b)]);
        // After a drain the next send from another thread wakes the loop again.
        assert_another_threads_send_wakes(&mut poll, &sender);
    }

    /// A send from a thread of its own wakes `poll` (once).
    fn assert_another_threads_send_wakes(
        poll: &mut Poll,
        sender: &HandoffSender<(SocketAddr, MessageId)>,
    ) {
        let other = sender.clone();
        std::thread::spawn(move || other.send(peer(), 10, |id| (peer(), id)).unwrap())
            .join()
            .unwrap();
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1);
    }

    #[test]
    fn a_send_on_the_loops_own_thread_writes_no_waker() {
        let (mut poll, handoff) = handoff(8);
        let sender = handoff.sender();
        handoff.begin_drain();
        let id = sender.send(peer(), 10, |id| (peer(), id)).unwrap();
        sender.command((peer(), MessageId(0))).expect("queued");
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events.iter().count(), 0, "no wake from the loop's thread");
        // Nothing is lost: the next drain (which the loop makes before it blocks) has both.
        handoff.begin_drain();
        let drained: Vec<_> = std::iter::from_fn(|| handoff.next_command()).collect();
        assert_eq!(drained, vec![(peer(), id), (peer(), MessageId(0))]);
        // Nor does it leave the wake flag set: another thread's send still wakes the loop.
        assert_another_threads_send_wakes(&mut poll, &sender);
    }

    #[test]
    fn a_thread_that_took_the_loop_over_is_woken_by_the_former_one() {
        let (mut poll, handoff) = handoff(8);
        let sender = handoff.sender();
        handoff.begin_drain();
        // Another thread drives the loop from now on (its first drain claims it).
        let handoff = std::thread::spawn(move || {
            handoff.begin_drain();
            handoff
        })
        .join()
        .unwrap();
        sender.send(peer(), 10, |id| (peer(), id)).unwrap();
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1, "the new loop thread is woken");
        assert!(handoff.next_command().is_some());
    }

    #[test]
    fn a_spent_budget_refuses_until_released() {
        let (_poll, handoff) = handoff(1);
        let sender = handoff.sender();
        sender.send(peer(), 10, |id| (peer(), id)).unwrap();
        assert_eq!(
            sender.send(peer(), 10, |id| (peer(), id)),
            Err(HandoffError::Full(Usage {
                messages: 1,
                bytes: 10
            }))
        );
        handoff.release(peer(), 10);
        assert!(sender.send(peer(), 10, |id| (peer(), id)).is_ok());
    }

    #[test]
    fn close_refuses_sends_and_interrupt_is_taken_once() {
        let (_poll, handoff) = handoff(8);
        let sender = handoff.sender();
        sender.interrupt();
        assert!(handoff.take_interrupt());
        assert!(!handoff.take_interrupt());
        handoff.close();
        assert!(sender.is_closed());
        assert_eq!(
            sender.send(peer(), 10, |id| (peer(), id)),
            Err(HandoffError::Closed)
        );
        assert_eq!(
            sender.command((peer(), MessageId(0))),
            Err(HandoffError::Closed)
        );
    }
}
