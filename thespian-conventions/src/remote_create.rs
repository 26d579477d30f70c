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
