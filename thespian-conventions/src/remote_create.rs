//! Remote create by capability: asking the members of a convention, one after the other, to
//! create an actor this system cannot host.
//!
//! The admin whose system fails an actor type's capability check hands the create to this
//! coordinator. It asks [`Convention::place`] for a member, sends the create there, and waits:
//! a member that refuses (the type is unknown to its program, its capabilities changed, it is
//! shutting down), that the transport cannot reach, that is lost from the convention or that
//! does not answer in time is added to the create's `already_tried`, and the next candidate is
//! asked. When none is left the create fails with what each member tried lacked. The member
//! that accepts creates the actor as the requester's child and answers; the coordinator hands
//! that answer back to the admin. The coordinator is the one place these retries happen, so a
//! create forwarded to the leader is retried there the same way.
//!
//! Sans-IO like the rest of the crate: `now` comes in, [`Step`]s go out, the deadlines are
//! reported by [`RemoteCreates::poll_timeout`].

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use thespian_core::Capabilities;

use crate::{AdminRef, Convention, PlacementDecision, PlacementRequest};

/// How long a member may take to answer a create before the next one is asked, by default.
pub const DEFAULT_ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// What the driver must do next for one create.
#[derive(Debug, PartialEq)]
pub enum Step<R> {
    /// Send the create to `to`'s admin with this `ticket` and `already_tried` list; report its
    /// answer with [`RemoteCreates::answered`], a failed send with [`RemoteCreates::failed`].
    Ask {
        /// Names this attempt in the answer.
        ticket: u64,
        /// The admin asked.
        to: AdminRef,
        /// Every admin asked so far (this system and `to` included), for the create's
        /// `already_tried`: a create forwarded on never comes back to them.
        already_tried: Vec<SocketAddrV4>,
    },
    /// No member can host it: answer the requester with `NoCompatibleSystem` listing `unmet`
    /// (this system's own reasons first, then each member's).
    NoSystem {
        /// The request as it was started.
        request: R,
        /// What each system lacked, as text (`"<socket>: <reason>"`, or this system's reasons
        /// as they were).
        unmet: Vec<String>,
    },
}

/// The answer of a member asked with [`Step::Ask`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The actor was created there (or a global name found there): pass the answer on.
    Created,
    /// The member refused (why, for the final `NoCompatibleSystem`); try the next one.
    Refused(String),
    /// The actor was placed but failed to start: a real answer, not a reason to try elsewhere.
    Failed,
}

#[derive(Debug)]
struct Pending<R> {
    request: R,
    asked: AdminRef,
    deadline: Instant,
    already_tried: Vec<SocketAddrV4>,
    unmet: Vec<String>,
}

/// The creates this admin is placing on other systems, each waiting for one member's answer.
#[derive(Debug)]
pub struct RemoteCreates<R> {
    me: SocketAddrV4,
    answer_within: Duration,
    next_ticket: u64,
    pending: BTreeMap<u64, Pending<R>>,
}

impl<R> RemoteCreates<R> {
    /// A coordinator for the admin listening at `me`; a member gets `answer_within` to answer.
    pub fn new(me: SocketAddrV4, answer_within: Duration) -> RemoteCreates<R> {
        RemoteCreates {
            me,
            answer_within,
            next_ticket: 1,
            pending: BTreeMap::new(),
        }
    }

    /// Creates waiting for an answer.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The request waiting under `ticket`.
    pub fn request(&self, ticket: u64) -> Option<&R> {
        self.pending.get(&ticket).map(|p| &p.request)
    }

    /// True when no create is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Starts placing `request`, which this system could not host because of `local_unmet`.
    /// `already_tried` are the admins an earlier hop asked (empty for a create made here);
    /// `requester_admin` is the admin that asked this one, if any (never asked back). `check`
    /// runs the actor type's capability check against a member's capabilities.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        now: Instant,
        convention: &mut Convention,
        request: R,
        requester_admin: Option<SocketAddrV4>,
        mut already_tried: Vec<SocketAddrV4>,
        local_unmet: Vec<String>,
        check: impl Fn(&Capabilities) -> Result<(), Vec<String>>,
    ) -> Step<R> {
        for admin in std::iter::once(self.me).chain(requester_admin) {
            if !already_tried.contains(&admin) {
                already_tried.push(admin);
            }
        }
        self.next(now, convention, request, already_tried, local_unmet, check)
    }

    /// The member asked under `ticket` answered. `None` for a ticket not waiting (a late
    /// answer after a timeout, or a duplicate): the driver drops it.
    pub fn answered(
        &mut self,
        now: Instant,
        convention: &mut Convention,
        ticket: u64,
        answer: Answer,
        check: impl Fn(&R, &Capabilities) -> Result<(), Vec<String>>,
    ) -> Option<Finished<R>> {
        let pending = self.pending.remove(&ticket)?;
        match answer {
            Answer::Created | Answer::Failed => Some(Finished::Answered(pending.request)),
            Answer::Refused(reason) => {
                convention.placed_gone(pending.asked.socket);
                Some(Finished::Step(
                    self.retry(now, convention, pending, reason, check),
                ))
            }
        }
    }

    /// The create sent under `ticket` could not be delivered: the next member is asked.
    pub fn failed(
        &mut self,
        now: Instant,
        convention: &mut Convention,
        ticket: u64,
        reason: &str,
        check: impl Fn(&R, &Capabilities) -> Result<(), Vec<String>>,
    ) -> Option<Step<R>> {
        let pending = self.pending.remove(&ticket)?;
        convention.placed_gone(pending.asked.socket);
        let reason = format!("unreachable ({reason})");
        Some(self.retry(now, convention, pending, reason, check))
    }

    /// `member` left the convention: every create waiting for its answer moves on.
    pub fn member_lost(
        &mut self,
        now: Instant,
        convention: &mut Convention,
        member: SocketAddrV4,
        check: impl Fn(&R, &Capabilities) -> Result<(), Vec<String>>,
    ) -> Vec<Step<R>> {
        let tickets: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.asked.socket == member)
            .map(|(t, _)| *t)
            .collect();
        let mut steps = Vec::new();
        for ticket in tickets {
            if let Some(pending) = self.pending.remove(&ticket) {
                let reason = "left the convention before it answered".to_owned();
                steps.push(self.retry(now, convention, pending, reason, &check));
            }
        }
        steps
    }

    /// When [`RemoteCreates::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Members that did not answer in time are passed over: the next ones are asked.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        convention: &mut Convention,
        check: impl Fn(&R, &Capabilities) -> Result<(), Vec<String>>,
    ) -> Vec<Step<R>> {
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        let mut steps = Vec::new();
        for ticket in late {
            if let Some(pending) = self.pending.remove(&ticket) {
                convention.placed_gone(pending.asked.socket);
                let reason = format!("no answer within {:?}", self.answer_within);
                steps.push(self.retry(now, convention, pending, reason, &check));
            }
        }
        steps
    }

    /// Gives up every waiting create (the system shuts down): their requests, to be answered.
    pub fn abandon_all(&mut self) -> Vec<R> {
        std::mem::take(&mut self.pending)
            .into_values()
            .map(|p| p.request)
            .collect()
    }

    fn retry(
        &mut self,
        now: Instant,
        convention: &mut Convention,
        pending: Pending<R>,
        reason: String,
        check: impl Fn(&R, &Capabilities) -> Result<(), Vec<String>>,
    ) -> Step<R> {
        let Pending {
            request,
            asked,
            mut unmet,
            already_tried,
            ..
        } = pending;
        unmet.push(format!("{}: {reason}", asked.socket));
        let check = |caps: &Capabilities| check(&request, caps);
        let decision = place(convention, &already_tried, check);
        self.decide(now, request, already_tried, unmet, decision)
    }

    fn next(
        &mut self,
        now: Instant,
        convention: &mut Convention,
        request: R,
        already_tried: Vec<SocketAddrV4>,
        unmet: Vec<String>,
        check: impl Fn(&Capabilities) -> Result<(), Vec<String>>,
    ) -> Step<R> {
        let decision = place(convention, &already_tried, &check);
        self.decide(now, request, already_tried, unmet, decision)
    }

    fn decide(
        &mut self,
        now: Instant,
        request: R,
        mut already_tried: Vec<SocketAddrV4>,
        mut unmet: Vec<String>,
        decision: PlacementDecision,
    ) -> Step<R> {
        let to = match decision {
            PlacementDecision::Member(to) | PlacementDecision::ForwardToLeader(to) => to,
            PlacementDecision::NoCompatibleSystem { unmet: members } => {
                for (socket, reasons) in members {
                    let line = format!("{socket}: {}", reasons.join(", "));
                    if !unmet.contains(&line) {
                        unmet.push(line);
                    }
                }
                return Step::NoSystem { request, unmet };
            }
        };
        if !already_tried.contains(&to.socket) {
            already_tried.push(to.socket);
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.pending.insert(
            ticket,
            Pending {
                request,
                asked: to,
                deadline: now + self.answer_within,
                already_tried: already_tried.clone(),
                unmet,
            },
        );
        Step::Ask {
            ticket,
            to,
            already_tried,
        }
    }
}

/// What became of a create when its member answered.
#[derive(Debug, PartialEq)]
pub enum Finished<R> {
    /// The member's answer stands: pass it on to the request's requester.
    Answered(R),
    /// The member refused: do this next.
    Step(Step<R>),
}

fn place(
    convention: &mut Convention,
    already_tried: &[SocketAddrV4],
    check: impl Fn(&Capabilities) -> Result<(), Vec<String>>,
) -> PlacementDecision {
    let request = PlacementRequest {
        requester_admin: None,
        already_tried: already_tried.to_vec(),
    };
    convention.place(&request, check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConventionConfig, ConventionMessage, Timing};
    use thespian_core::SystemId;

    fn socket(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port)
    }

    fn admin(port: u16) -> AdminRef {
        AdminRef {
            socket: socket(port),
            incarnation: SystemId::from_raw(u64::from(port)),
        }
    }

    /// A standalone system at port 1 (so it leads) with members at `members`, each with the
    /// given capabilities.
    fn leader_with(now: Instant, members: &[(u16, Capabilities)]) -> Convention {
        let config = ConventionConfig {
            me: admin(1),
            capabilities: Capabilities::new(),
            leaders: Vec::new(),
            timing: Timing::with_periods(Duration::from_secs(1), Duration::from_secs(1)),
        };
        let mut convention = Convention::new(config, now);
        for (port, capabilities) in members {
            convention.handle(
                now,
                ConventionMessage::Register {
                    from: admin(*port),
                    capabilities: capabilities.clone(),
                    first_time: true,
                },
            );
        }
        while convention.poll_action().is_some() {}
        convention
    }

    fn morse() -> Capabilities {
        Capabilities::new().with("Morse", true)
    }

    /// The type of these tests fits a system with a truthy `Morse`.
    fn check(_: &&str, caps: &Capabilities) -> Result<(), Vec<String>> {
        if caps.is_truthy("Morse") {
            Ok(())
        } else {
            Err(vec!["Morse".to_owned()])
        }
    }

    fn start(
        creates: &mut RemoteCreates<&'static str>,
        now: Instant,
        convention: &mut Convention,
    ) -> Step<&'static str> {
        creates.start(
            now,
            convention,
            "request",
            None,
            Vec::new(),
            vec!["here: Morse".to_owned()],
            |caps| check(&"request", caps),
        )
    }

    fn asked(step: &Step<&'static str>) -> (u64, u16) {
        match step {
            Step::Ask { ticket, to, .. } => (*ticket, to.socket.port()),
            other => panic!("expected an ask, got {other:?}"),
        }
    }

    #[test]
    fn a_refusal_passes_the_create_on_to_the_next_fitting_member() {
        let now = Instant::now();
        let mut convention =
            leader_with(now, &[(2, morse()), (3, morse()), (4, Capabilities::new())]);
        let mut creates = RemoteCreates::new(socket(1), Duration::from_secs(5));
        let (ticket, first) = asked(&start(&mut creates, now, &mut convention));
        assert!(
            first == 2 || first == 3,
            "a Morse member first, not {first}"
        );
        let refused = Answer::Refused("cannot create the type".into());
        let next = creates.answered(now, &mut convention, ticket, refused, check);
        let Some(Finished::Step(step)) = next else {
            panic!("expected a next step, got {next:?}");
        };
        let (ticket, second) = asked(&step);
        assert_eq!(second, if first == 2 { 3 } else { 2 });
        if let Step::Ask { already_tried, .. } = &step {
            assert!(already_tried.contains(&socket(1)), "{already_tried:?}");
            assert!(already_tried.contains(&socket(first)), "{already_tried:?}");
        }
        // The second refuses too: nobody is left, and the answer says why for each.
        let refused = Answer::Refused("shutting down".into());
        match creates.answered(now, &mut convention, ticket, refused, check) {
            Some(Finished::Step(Step::NoSystem { request, unmet })) => {
                assert_eq!(request, "request");
                let text = unmet.join("\n");
                assert!(text.contains("here: Morse"), "{text}");
                assert!(text.contains("cannot create the type"), "{text}");
                assert!(text.contains("shutting down"), "{text}");
                assert!(text.contains(&socket(4).to_string()), "{text}");
            }
            other => panic!("expected NoSystem, got {other:?}"),
        }
        assert!(creates.is_empty());
    }

    #[test]
    fn an_accepted_create_ends_and_a_late_answer_is_dropped() {
        let now = Instant::now();
        let mut convention = leader_with(now, &[(2, morse())]);
        let mut creates = RemoteCreates::new(socket(1), Duration::from_secs(5));
        let (ticket, to) = asked(&start(&mut creates, now, &mut convention));
        assert_eq!(to, 2);
        assert_eq!(creates.request(ticket), Some(&"request"));
        let done = creates.answered(now, &mut convention, ticket, Answer::Created, check);
        assert_eq!(done, Some(Finished::Answered("request")));
        assert_eq!(
            creates.answered(now, &mut convention, ticket, Answer::Created, check),
            None
        );
    }

    #[test]
    fn silence_an_undeliverable_create_and_a_lost_member_each_move_on() {
        let now = Instant::now();
        let mut convention = leader_with(
            now,
            &[(2, morse()), (3, morse()), (4, morse()), (5, morse())],
        );
        let mut creates = RemoteCreates::new(socket(1), Duration::from_secs(5));
        let (ticket, first) = asked(&start(&mut creates, now, &mut convention));
        assert_eq!(creates.poll_timeout(), Some(now + Duration::from_secs(5)));
        // Silence: at the deadline the next member is asked.
        let later = now + Duration::from_secs(5);
        let steps = creates.handle_timeout(later, &mut convention, check);
        let [step] = &steps[..] else {
            panic!("one step, got {steps:?}")
        };
        let (ticket2, second) = asked(step);
        assert_ne!(ticket2, ticket);
        assert_ne!(second, first);
        // Undeliverable: the next one.
        let step = creates
            .failed(later, &mut convention, ticket2, "connection refused", check)
            .expect("a next step");
        let (_, third) = asked(&step);
        assert!(![first, second].contains(&third));
        // Lost from the convention: the last one.
        let steps = creates.member_lost(later, &mut convention, socket(third), check);
        let [step] = &steps[..] else {
            panic!("one step, got {steps:?}")
        };
        let (_, fourth) = asked(step);
        assert!(![first, second, third].contains(&fourth));
        assert_eq!(creates.len(), 1);
        assert_eq!(creates.abandon_all(), vec!["request"]);
        assert!(creates.is_empty());
    }

    #[test]
    fn a_create_from_another_admin_never_goes_back_to_it() {
        let now = Instant::now();
        let mut convention = leader_with(now, &[(2, morse()), (3, Capabilities::new())]);
        let mut creates = RemoteCreates::new(socket(1), Duration::from_secs(5));
        // Member 2 asked this leader: only 2 fits, so nothing is left.
        let step = creates.start(
            now,
            &mut convention,
            "request",
            Some(socket(2)),
            vec![socket(2)],
            vec!["here: Morse".to_owned()],
            |caps| check(&"request", caps),
        );
        match step {
            Step::NoSystem { unmet, .. } => {
                let text = unmet.join("\n");
                assert!(text.contains(&socket(3).to_string()), "{text}");
            }
            other => panic!("expected NoSystem, got {other:?}"),
        }
    }
}
