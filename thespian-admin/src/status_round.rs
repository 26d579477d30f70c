//! The pending-message count of a multi-process system's status, gathered from its hosts.
//!
//! The admin of a multi-process system does not see its actors' mailboxes: each lives in the
//! process (or thread) hosting the actor. So a status request starts a *round*: the admin asks
//! the node of every live actor for that actor's mailbox depth ([`MailboxDepthQuery`]), sums
//! the answers ([`MailboxDepth`]) and answers every requester of the round once all have
//! answered, or at the round's deadline with what arrived and how many actors did not answer
//! (the sum is then a lower bound). One round runs at a time; a request that arrives meanwhile
//! joins it, up to [`MAX_WAITERS`]; beyond that it is answered at once without a pending
//! count. A request within [`ROUND_WAIT`] of the end of the last round is answered from that
//! round's count, so however often peers ask, the admin sends at most one question per actor
//! per [`ROUND_WAIT`].
//!
//! Only the actors asked can answer, each once, and only in the round that asked them, under
//! the round's id, which the caller draws at random: a peer cannot inflate the count without
//! that id.
//!
//! [`MailboxDepthQuery`]: crate::protocol::MailboxDepthQuery
//! [`MailboxDepth`]: crate::protocol::MailboxDepth

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use thespian_core::ActorAddress;

/// How long a round waits for the hosts' answers, and how long its count then answers
/// further requests.
pub const ROUND_WAIT: Duration = Duration::from_secs(1);

/// Requesters one round answers at most; more are answered at once without the count.
pub const MAX_WAITERS: usize = 64;

/// One round in progress.
#[derive(Debug)]
struct Round {
    id: u64,
    requesters: Vec<ActorAddress>,
    unanswered: BTreeSet<ActorAddress>,
    sum: u64,
    deadline: Instant,
}

/// The count a round took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingCount {
    /// Messages waiting in the mailboxes of the actors that answered.
    pub sum: u64,
    /// Actors asked that did not answer by the deadline (busy or gone): `sum` leaves their
    /// mailboxes out, so it is a lower bound unless this is 0.
    pub unanswered: usize,
}

/// What a status request, an answer or the passing of time asks the admin to do.
#[derive(Debug, PartialEq, Eq)]
pub enum RoundStep {
    /// Nothing yet.
    Wait,
    /// Ask each of these actors' nodes, in round `round`.
    Ask {
        /// The round's id (carried by the questions).
        round: u64,
        /// Whose mailboxes to ask about.
        actors: Vec<ActorAddress>,
    },
    /// Answer these requesters with a status carrying `pending`.
    Answer {
        /// Who asked.
        requesters: Vec<ActorAddress>,
        /// The count, `None` when none could be taken for them.
        pending: Option<PendingCount>,
    },
}

/// The admin's status rounds: at most one in progress, and the count of the last one.
#[derive(Debug, Default)]
pub struct StatusRounds {
    current: Option<Round>,
    /// When the last round ended, and its count.
    last: Option<(Instant, PendingCount)>,
}

impl StatusRounds {
    /// A status request from `requester`, with `actors` live now. `new_id` gives the id of a
    /// round this request starts (a random number, so that no one can guess it).
    pub fn request(
        &mut self,
        now: Instant,
        requester: ActorAddress,
        actors: impl IntoIterator<Item = ActorAddress>,
        new_id: impl FnOnce() -> u64,
    ) -> RoundStep {
        if let Some(round) = &mut self.current {
            if round.requesters.len() < MAX_WAITERS {
                round.requesters.push(requester);
                return RoundStep::Wait;
            }
            return RoundStep::Answer {
                requesters: vec![requester],
                pending: None,
            };
        }
        let unanswered: BTreeSet<ActorAddress> = actors.into_iter().collect();
        if unanswered.is_empty() {
            return RoundStep::Answer {
                requesters: vec![requester],
                pending: Some(PendingCount::default()),
            };
        }
        if let Some((ended, count)) = self.last {
            if now < ended + ROUND_WAIT {
                return RoundStep::Answer {
                    requesters: vec![requester],
                    pending: Some(count),
                };
            }
        }
        let id = new_id();
        let actors = unanswered.iter().cloned().collect();
        self.current = Some(Round {
            id,
            requesters: vec![requester],
            unanswered,
            sum: 0,
            deadline: now + ROUND_WAIT,
        });
        RoundStep::Ask { round: id, actors }
    }

    /// `from` answered round `round` with `depth` messages waiting.
    pub fn answer(
        &mut self,
        now: Instant,
        from: &ActorAddress,
        round: u64,
        depth: u64,
    ) -> RoundStep {
        let Some(current) = &mut self.current else {
            return RoundStep::Wait;
        };
        if current.id != round || !current.unanswered.remove(from) {
            return RoundStep::Wait;
        }
        current.sum = current.sum.saturating_add(depth);
        self.finish_if_complete(now)
    }

    /// `actor` exited: it will not answer, and its mailbox is nobody's pending work.
    pub fn gone(&mut self, now: Instant, actor: &ActorAddress) -> RoundStep {
        let removed = self
            .current
            .as_mut()
            .is_some_and(|current| current.unanswered.remove(actor));
        if removed {
            self.finish_if_complete(now)
        } else {
            RoundStep::Wait
        }
    }

    /// The passing of time: a round past its deadline answers with what arrived.
    pub fn timeout(&mut self, now: Instant) -> RoundStep {
        match &self.current {
            Some(current) if now >= current.deadline => {
                log::debug!(
                    "status round: {} actors did not tell their mailbox depth in time",
                    current.unanswered.len()
                );
                self.finish(now)
            }
            _ => RoundStep::Wait,
        }
    }

    /// When [`StatusRounds::timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.as_ref().map(|round| round.deadline)
    }

    fn finish_if_complete(&mut self, now: Instant) -> RoundStep {
        match &self.current {
            Some(current) if current.unanswered.is_empty() => self.finish(now),
            _ => RoundStep::Wait,
        }
    }

    /// Ends the current round at `now`: its count answers its requesters, and the requests
    /// of the next [`ROUND_WAIT`].
    fn finish(&mut self, now: Instant) -> RoundStep {
        let Some(current) = self.current.take() else {
            return RoundStep::Wait;
        };
        let count = PendingCount {
            sum: current.sum,
            unanswered: current.unanswered.len(),
        };
        self.last = Some((now, count));
        RoundStep::Answer {
            requesters: current.requesters,
            pending: Some(count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use thespian_core::SystemId;

    fn a(n: u64) -> ActorAddress {
        ActorAddress::new(SystemId::from_raw(7), n)
    }

    fn count(sum: u64, unanswered: usize) -> Option<PendingCount> {
        Some(PendingCount { sum, unanswered })
    }

    const ID: u64 = 0x05ee_d1d5;

    #[test]
    fn no_actors_means_nothing_pending_at_once() {
        let mut rounds = StatusRounds::default();
        let step = rounds.request(Instant::now(), a(1), [], || ID);
        assert_eq!(
            step,
            RoundStep::Answer {
                requesters: vec![a(1)],
                pending: count(0, 0)
            }
        );
        assert_eq!(rounds.poll_timeout(), None);
    }

    #[test]
    fn the_sum_is_answered_to_every_requester_when_all_answered() {
        let now = Instant::now();
        let mut rounds = StatusRounds::default();
        let step = rounds.request(now, a(1), [a(10), a(11)], || ID);
        assert_eq!(
            step,
            RoundStep::Ask {
                round: ID,
                actors: vec![a(10), a(11)]
            }
        );
        assert_eq!(rounds.request(now, a(2), [a(10)], || 1), RoundStep::Wait);
        assert_eq!(rounds.answer(now, &a(10), ID, 3), RoundStep::Wait);
        // A repeated answer, a stranger, another round: not counted.
        assert_eq!(rounds.answer(now, &a(10), ID, 100), RoundStep::Wait);
        assert_eq!(rounds.answer(now, &a(99), ID, 100), RoundStep::Wait);
        assert_eq!(rounds.answer(now, &a(11), ID + 1, 100), RoundStep::Wait);
        assert_eq!(
            rounds.answer(now, &a(11), ID, 4),
            RoundStep::Answer {
                requesters: vec![a(1), a(2)],
                pending: count(7, 0)
            }
        );
        assert_eq!(rounds.poll_timeout(), None);
    }

    #[test]
    fn the_deadline_answers_with_what_arrived_and_who_did_not_answer() {
        let now = Instant::now();
        let mut rounds = StatusRounds::default();
        rounds.request(now, a(1), [a(10), a(11), a(12)], || ID);
        assert_eq!(rounds.answer(now, &a(10), ID, 5), RoundStep::Wait);
        assert_eq!(rounds.poll_timeout(), Some(now + ROUND_WAIT));
        assert_eq!(rounds.timeout(now + ROUND_WAIT / 2), RoundStep::Wait);
        assert_eq!(
            rounds.timeout(now + ROUND_WAIT),
            RoundStep::Answer {
                requesters: vec![a(1)],
                pending: count(5, 2)
            }
        );
        // A late answer belongs to no round.
        assert_eq!(rounds.answer(now, &a(11), ID, 1), RoundStep::Wait);
    }

    #[test]
    fn an_exited_actor_is_not_waited_for() {
        let now = Instant::now();
        let mut rounds = StatusRounds::default();
        rounds.request(now, a(1), [a(10), a(11)], || ID);
        assert_eq!(rounds.answer(now, &a(10), ID, 2), RoundStep::Wait);
        assert_eq!(
            rounds.gone(now, &a(11)),
            RoundStep::Answer {
                requesters: vec![a(1)],
                pending: count(2, 0)
            }
        );
    }

    #[test]
    fn requesters_beyond_the_bound_are_answered_at_once_without_a_count() {
        let now = Instant::now();
        let mut rounds = StatusRounds::default();
        rounds.request(now, a(0), [a(10)], || ID);
        for n in 1..MAX_WAITERS as u64 {
            assert_eq!(rounds.request(now, a(n), [a(10)], || ID), RoundStep::Wait);
        }
        assert_eq!(
            rounds.request(now, a(1000), [a(10)], || ID),
            RoundStep::Answer {
                requesters: vec![a(1000)],
                pending: None
            }
        );
    }

    /// A peer asking in a loop gets the last round's count and makes the admin ask nobody,
    /// until a round's wait has passed since that round ended.
    #[test]
    fn requests_soon_after_a_round_are_answered_from_it() {
        let start = Instant::now();
        let mut rounds = StatusRounds::default();
        rounds.request(start, a(1), [a(10)], || ID);
        let ended = start + ROUND_WAIT / 4;
        assert!(matches!(
            rounds.answer(ended, &a(10), ID, 9),
            RoundStep::Answer { .. }
        ));
        for step in 0..100u32 {
            let now = ended + ROUND_WAIT * step / 100;
            assert_eq!(
                rounds.request(now, a(2), [a(10), a(11)], || ID + 1),
                RoundStep::Answer {
                    requesters: vec![a(2)],
                    pending: count(9, 0)
                }
            );
        }
        assert_eq!(
            rounds.request(ended + ROUND_WAIT, a(2), [a(10), a(11)], || ID + 1),
            RoundStep::Ask {
                round: ID + 1,
                actors: vec![a(10), a(11)]
            }
        );
    }

    /// The model of a round in progress: its id, unanswered actors, sum and requesters.
    struct Open {
        id: u64,
        unanswered: BTreeSet<ActorAddress>,
        sum: u64,
        requesters: usize,
        deadline: Instant,
    }

    proptest! {
        /// Whatever arrives in whatever order: every requester is answered exactly once; a
        /// round's count is the sum of the first answer, under its id, of each asked actor
        /// that had not exited, with the number that did not answer; a request within a
        /// round's wait of the last round's end gets that round's count; and a round starts
        /// only a round's wait after the previous one ended.
        #[test]
        fn rounds_follow_the_model(
            events in proptest::collection::vec(
                (0u8..4, 0u64..6, 0u64..50, any::<bool>(), any::<u64>()),
                0..80,
            ),
        ) {
            let mut now = Instant::now();
            let mut rounds = StatusRounds::default();
            let mut open: Option<Open> = None;
            let mut last: Option<(Instant, PendingCount)> = None;
            let mut requested = 0usize;
            let mut answered = 0usize;
            // Ends the open round at `now`: the step the machine must have taken.
            let end = |open: &mut Option<Open>,
                       last: &mut Option<(Instant, PendingCount)>,
                       now: Instant| {
                let round = open.take().expect("an open round");
                let count = PendingCount { sum: round.sum, unanswered: round.unanswered.len() };
                *last = Some((now, count));
                (round.requesters, Some(count))
            };
            for (kind, who, value, right_id, id) in events {
                let (step, expected) = match kind {
                    0 => {
                        requested += 1;
                        let actors: Vec<ActorAddress> = (10..10 + who).map(a).collect();
                        let step = rounds.request(now, a(1000 + value), actors.clone(), || id);
                        let expected = if let Some(round) = open.as_mut() {
                            if round.requesters < MAX_WAITERS {
                                round.requesters += 1;
                                None
                            } else {
                                Some((1, None))
                            }
                        } else if actors.is_empty() {
                            Some((1, Some(PendingCount::default())))
                        } else if let Some((ended, count)) =
                            last.filter(|(ended, _)| now < *ended + ROUND_WAIT)
                        {
                            prop_assert!(now >= ended);
                            Some((1, Some(count)))
                        } else {
                            if let Some((ended, _)) = last {
                                prop_assert!(now >= ended + ROUND_WAIT);
                            }
                            prop_assert_eq!(
                                &step,
                                &RoundStep::Ask { round: id, actors: actors.clone() }
                            );
                            open = Some(Open {
                                id,
                                unanswered: actors.into_iter().collect(),
                                sum: 0,
                                requesters: 1,
                                deadline: now + ROUND_WAIT,
                            });
                            continue;
                        };
                        (step, expected)
                    }
                    1 => {
                        let round_id = match &open {
                            Some(round) if right_id => round.id,
                            Some(round) => round.id.wrapping_add(1 + value),
                            None => id,
                        };
                        let step = rounds.answer(now, &a(10 + who), round_id, value);
                        let mut expected = None;
                        if let Some(round) = open.as_mut() {
                            if round.id == round_id && round.unanswered.remove(&a(10 + who)) {
                                round.sum += value;
                                if round.unanswered.is_empty() {
                                    expected = Some(end(&mut open, &mut last, now));
                                }
                            }
                        }
                        (step, expected)
                    }
                    2 => {
                        let step = rounds.gone(now, &a(10 + who));
                        let mut expected = None;
                        if let Some(round) = open.as_mut() {
                            if round.unanswered.remove(&a(10 + who)) && round.unanswered.is_empty() {
                                expected = Some(end(&mut open, &mut last, now));
                            }
                        }
                        (step, expected)
                    }
                    _ => {
                        now += Duration::from_millis(value * 40);
                        let step = rounds.timeout(now);
                        let due = open.as_ref().is_some_and(|round| now >= round.deadline);
                        let expected = due.then(|| end(&mut open, &mut last, now));
                        (step, expected)
                    }
                };
                match (step, expected) {
                    (RoundStep::Wait, None) => {}
                    (RoundStep::Answer { requesters, pending }, Some((n, count))) => {
                        prop_assert_eq!(requesters.len(), n);
                        prop_assert_eq!(pending, count);
                        answered += n;
                    }
                    (step, expected) => prop_assert!(false, "{:?} where {:?}", step, expected),
                }
                prop_assert_eq!(rounds.poll_timeout(), open.as_ref().map(|r| r.deadline));
            }
            now += ROUND_WAIT;
            if let RoundStep::Answer { requesters, .. } = rounds.timeout(now) {
                answered += requesters.len();
                open = None;
            }
            prop_assert_eq!(requested, answered);
            prop_assert!(open.is_none());
            prop_assert_eq!(rounds.poll_timeout(), None);
        }
    }
}
