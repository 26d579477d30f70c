//! The pending-message count of a multi-process system's status, gathered from its hosts.
//!
//! The admin of a multi-process system does not see its actors' mailboxes: each lives in the
//! process (or thread) hosting the actor. So a status request starts a *round*: the admin asks
//! the node of every live actor for that actor's mailbox depth ([`MailboxDepthQuery`]), sums
//! the answers ([`MailboxDepth`]) and answers every requester of the round once all have
//! answered, or at the round's deadline with what arrived (an actor whose process is busy or
//! gone is then not counted). One round runs at a time; a request that arrives meanwhile joins
//! it, up to [`MAX_WAITERS`]; beyond that it is answered at once without a pending count.
//! Only the actors asked can answer, each once, and only in the round that asked them, so a
//! peer cannot inflate the count.
//!
//! [`MailboxDepthQuery`]: crate::protocol::MailboxDepthQuery
//! [`MailboxDepth`]: crate::protocol::MailboxDepth

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use thespian_core::ActorAddress;

/// How long a round waits for the hosts' answers.
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
    /// Answer these requesters with a status whose pending count is `pending`.
    Answer {
        /// Who asked.
        requesters: Vec<ActorAddress>,
        /// The sum, `None` when no count could be taken for them.
        pending: Option<u64>,
    },
}

/// The admin's status rounds: at most one in progress.
#[derive(Debug, Default)]
pub struct StatusRounds {
    next_id: u64,
    current: Option<Round>,
}

impl StatusRounds {
    /// A status request from `requester`, with `actors` live now.
    pub fn request(
        &mut self,
        now: Instant,
        requester: ActorAddress,
        actors: impl IntoIterator<Item = ActorAddress>,
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
                pending: Some(0),
            };
        }
        self.next_id += 1;
        let actors = unanswered.iter().cloned().collect();
        self.current = Some(Round {
            id: self.next_id,
            requesters: vec![requester],
            unanswered,
            sum: 0,
            deadline: now + ROUND_WAIT,
        });
        RoundStep::Ask {
            round: self.next_id,
            actors,
        }
    }

    /// `from` answered round `round` with `depth` messages waiting.
    pub fn answer(&mut self, from: &ActorAddress, round: u64, depth: u64) -> RoundStep {
        let Some(current) = &mut self.current else {
            return RoundStep::Wait;
        };
        if current.id != round || !current.unanswered.remove(from) {
            return RoundStep::Wait;
        }
        current.sum = current.sum.saturating_add(depth);
        self.finish_if_complete()
    }

    /// `actor` exited: it will not answer, and its mailbox is nobody's pending work.
    pub fn gone(&mut self, actor: &ActorAddress) -> RoundStep {
        let removed = self
            .current
            .as_mut()
            .is_some_and(|current| current.unanswered.remove(actor));
        if removed {
            self.finish_if_complete()
        } else {
            RoundStep::Wait
        }
    }

    /// The passing of time: a round past its deadline answers with what arrived.
    pub fn timeout(&mut self, now: Instant) -> RoundStep {
        match &self.current {
            Some(current) if now >= current.deadline => {
                let current = self.current.take().expect("a round");
                log::debug!(
                    "status round {}: {} actors did not tell their mailbox depth in time",
                    current.id,
                    current.unanswered.len()
                );
                RoundStep::Answer {
                    requesters: current.requesters,
                    pending: Some(current.sum),
                }
            }
            _ => RoundStep::Wait,
        }
    }

    /// When [`StatusRounds::timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.as_ref().map(|round| round.deadline)
    }

    fn finish_if_complete(&mut self) -> RoundStep {
        match &self.current {
            Some(current) if current.unanswered.is_empty() => {
                let current = self.current.take().expect("a round");
                RoundStep::Answer {
                    requesters: current.requesters,
                    pending: Some(current.sum),
                }
            }
            _ => RoundStep::Wait,
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

    #[test]
    fn no_actors_means_nothing_pending_at_once() {
        let mut rounds = StatusRounds::default();
        let step = rounds.request(Instant::now(), a(1), []);
        assert_eq!(
            step,
            RoundStep::Answer {
                requesters: vec![a(1)],
                pending: Some(0)
            }
        );
        assert_eq!(rounds.poll_timeout(), None);
    }

    #[test]
    fn the_sum_is_answered_to_every_requester_when_all_answered() {
        let now = Instant::now();
        let mut rounds = StatusRounds::default();
        let RoundStep::Ask { round, actors } = rounds.request(now, a(1), [a(10), a(11)]) else {
            panic!("a round starts");
        };
        assert_eq!(actors, vec![a(10), a(11)]);
        assert_eq!(rounds.request(now, a(2), [a(10)]), RoundStep::Wait);
        assert_eq!(rounds.answer(&a(10), round, 3), RoundStep::Wait);
        // A repeated answer, a stranger, another round: not counted.
        assert_eq!(rounds.answer(&a(10), round, 100), RoundStep::Wait);
        assert_eq!(rounds.answer(&a(99), round, 100), RoundStep::Wait);
        assert_eq!(rounds.answer(&a(11), round + 1, 100), RoundStep::Wait);
        assert_eq!(
            rounds.answer(&a(11), round, 4),
            RoundStep::Answer {
                requesters: vec![a(1), a(2)],
                pending: Some(7)
            }
        );
        assert_eq!(rounds.poll_timeout(), None);
    }

    #[test]
    fn the_deadline_answers_with_what_arrived() {
        let now = Instant::now();
        let mut rounds = StatusRounds::default();
        let RoundStep::Ask { round, .. } = rounds.request(now, a(1), [a(10), a(11)]) else {
            panic!("a round starts");
        };
        assert_eq!(rounds.answer(&a(10), round, 5), RoundStep::Wait);
        assert_eq!(rounds.poll_timeout(), Some(now + ROUND_WAIT));
        assert_eq!(rounds.timeout(now + ROUND_WAIT / 2), RoundStep::Wait);
        assert_eq!(
            rounds.timeout(now + ROUND_WAIT),
            RoundStep::Answer {
                requesters: vec![a(1)],
                pending: Some(5)
            }
        );
        // A late answer belongs to no round.
        assert_eq!(rounds.answer(&a(11), round, 1), RoundStep::Wait);
    }

    #[test]
    fn an_exited_actor_is_not_waited_for() {
        let now = Instant::now();
        let mut rounds = StatusRounds::default();
        let RoundStep::Ask { round, .. } = rounds.request(now, a(1), [a(10), a(11)]) else {
            panic!("a round starts");
        };
        assert_eq!(rounds.answer(&a(10), round, 2), RoundStep::Wait);
        assert_eq!(
            rounds.gone(&a(11)),
            RoundStep::Answer {
                requesters: vec![a(1)],
                pending: Some(2)
            }
        );
    }

    #[test]
    fn requesters_beyond_the_bound_are_answered_at_once_without_a_count() {
        let now = Instant::now();
        let mut rounds = StatusRounds::default();
        rounds.request(now, a(0), [a(10)]);
        for n in 1..MAX_WAITERS as u64 {
            assert_eq!(rounds.request(now, a(n), [a(10)]), RoundStep::Wait);
        }
        assert_eq!(
            rounds.request(now, a(1000), [a(10)]),
            RoundStep::Answer {
                requesters: vec![a(1000)],
                pending: None
            }
        );
    }

    proptest! {
        /// Whatever arrives in whatever order, every requester is answered exactly once, and
        /// a round's count is the sum of the first answer of each asked actor that had not
        /// exited, given in that round.
        #[test]
        fn every_requester_is_answered_once_with_the_asked_actors_sum(
            events in proptest::collection::vec((0u8..4, 0u64..6, 0u64..50), 0..60),
        ) {
            let mut now = Instant::now();
            let mut rounds = StatusRounds::default();
            // The model: the open round, its unanswered actors and its sum so far.
            let mut open: Option<(u64, BTreeSet<ActorAddress>, u64)> = None;
            let mut requested = 0usize;
            let mut answered = 0usize;
            let check = |step: RoundStep,
                             open: &mut Option<(u64, BTreeSet<ActorAddress>, u64)>,
                             answered: &mut usize| {
                match step {
                    RoundStep::Wait => {}
                    RoundStep::Ask { round, actors } => {
                        prop_assert!(open.is_none());
                        *open = Some((round, actors.into_iter().collect(), 0));
                    }
                    RoundStep::Answer { requesters, pending } => {
                        *answered += requesters.len();
                        match pending {
                            None => prop_assert_eq!(requesters.len(), 1),
                            Some(sum) => match open.take() {
                                Some((_, _, expected)) => prop_assert_eq!(sum, expected),
                                None => prop_assert_eq!(sum, 0),
                            },
                        }
                    }
                }
                Ok(())
            };
            for (kind, who, value) in events {
                let step = match kind {
                    0 => {
                        requested += 1;
                        rounds.request(now, a(1000 + value), (10..10 + who).map(a))
                    }
                    1 => {
                        let round = open.as_ref().map_or(0, |r| r.0);
                        if let Some((_, unanswered, sum)) = open.as_mut() {
                            if unanswered.remove(&a(10 + who)) {
                                *sum += value;
                            }
                        }
                        rounds.answer(&a(10 + who), round, value)
                    }
                    2 => {
                        if let Some((_, unanswered, _)) = open.as_mut() {
                            unanswered.remove(&a(10 + who));
                        }
                        rounds.gone(&a(10 + who))
                    }
                    _ => {
                        now += Duration::from_millis(value * 40);
                        rounds.timeout(now)
                    }
                };
                check(step, &mut open, &mut answered)?;
            }
            now += ROUND_WAIT;
            check(rounds.timeout(now), &mut open, &mut answered)?;
            prop_assert_eq!(requested, answered);
            prop_assert!(open.is_none());
            prop_assert_eq!(rounds.poll_timeout(), None);
        }
    }
}
