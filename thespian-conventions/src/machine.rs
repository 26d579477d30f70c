//! [`Convention`]: one system's view of its convention, as a sans-IO machine.
//!
//! # Roles
//!
//! A system is configured with an ordered list of leader *candidates* (the `Convention
//! Address.IPv4` capability, see [`leaders_from_capability`](crate::leaders_from_capability)).
//! Every system registers with every candidate other than itself, so candidates register with
//! each other and every member with every candidate; the *active leader* is the first candidate
//! that is this system itself or a live member. A system with no candidates is standalone until
//! another system invites it ([`ConventionMessage::Invite`], sent by
//! [`Convention::pre_register`]); an invited system takes the inviter as its only candidate.
//! Any system accepts registrations, so a standalone system that pre-registers others leads
//! them.
//!
//! # Registration and membership
//!
//! A registration ([`ConventionMessage::Register`]) is `first_time` while the sender has no
//! valid registration with the receiver; it is retried every restart period until answered,
//! then repeated every registration period. The receiver records the sender (an "added"
//! notification for each watcher when it joins) and answers with its own registration: always
//! to a first-time one, and to a periodic one unless the receiver registers with the sender
//! itself (two candidates each send their own periodic registrations, so answering would only
//! double the traffic). Replies are never first-time, so registrations cannot ping-pong.
//!
//! Every message from a member refreshes it; a member not heard from for `miss_max`
//! registration periods, or after `miss_max` failed sends to it, is lost: a "removed"
//! notification, [`Action::MemberLost`] and its queued traffic dropped. A message from a new
//! incarnation at a known socket is a restart: the old incarnation is lost, then the new one
//! joins (when its message is a registration); the old incarnation is remembered, so its late
//! (delayed or duplicated) messages are ignored for [`Timing::late_window`]. Incarnations are
//! not ordered, so a late message of an earlier incarnation this system never knew (one that
//! ran, say, behind a partition) looks the same as a restart and replaces the running one; the
//! running one keeps talking, though, and a message from a replaced incarnation after the late
//! window shows that it runs: it replaces the other in turn. A first-time registration from a
//! member with the same incarnation resets it (lost, then joined again: the member forgot this
//! system), unless the member was heard from within the last registration period: then it is a
//! duplicate or a retry whose answer was lost, and resetting would only tell the watchers a
//! departure that never happened.
//!
//! # Leader liveness and failover
//!
//! Membership validity (three registration periods, 22 minutes with Thespian's defaults) is far
//! too slow to notice a dead leader, which is how Thespian fails over. So leader *liveness* is
//! tracked apart from membership: every system sends a [`ConventionMessage::Probe`] to each
//! candidate it is registered with every `leader_probe_period` (an eighth of the registration
//! period), and again half a probe period later to a candidate it has not heard from within the
//! last probe period (so a few lost messages do not fail a live leader over), which any system
//! answers with [`ConventionMessage::Alive`]; a candidate is live while it was heard from (any
//! message) within `leader_timeout` (three quarters of the period), and a failed send to it
//! makes it not live at once. The active leader is recomputed whenever a candidate's liveness
//! or membership changes, and [`Action::LeaderChanged`] tells the driver. A silent leader death
//! is thus noticed by every system within `leader_timeout` of the last word it had from the
//! leader, and since every system probes every candidate, all of them see the same next
//! candidate live and agree on it, well within two registration periods. A returning (higher)
//! candidate leads again as soon as it answered a registration. For its first probe period a
//! starting system waits for the earlier candidates' answers before it takes a later one, so it
//! does not announce a leader only because that one happened to answer first.
//! Liveness only picks the leader: losing a member still takes `miss_max` periods, so a short
//! partition costs no notifications.
//!
//! # Traffic
//!
//! Every message to another admin goes through the per-remote [`Hysteresis`] sender, so
//! [`Action::Send`]s come out already shaped; a lost or newly pre-registered remote has its
//! queue cancelled. At shutdown the de-registrations are sent at once.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddrV4;
use std::time::Instant;

use thespian_core::{ActorAddress, Capabilities, SystemId};

use crate::hysteresis::Hysteresis;
use crate::protocol::{AdminRef, ConventionMessage, ConventionUpdate};
use crate::timing::Timing;

/// How many earlier incarnations per socket are remembered (their late messages are ignored).
const RETIRED_PER_SOCKET: usize = 4;

/// What a system is told about itself and its convention when its admin starts.
#[derive(Clone, Debug)]
pub struct ConventionConfig {
    /// This system's admin.
    pub me: AdminRef,
    /// This system's capabilities (sent in registrations).
    pub capabilities: Capabilities,
    /// The leader candidates, in order (may include `me`; empty = standalone).
    pub leaders: Vec<SocketAddrV4>,
    /// The periods.
    pub timing: Timing,
}

/// What the machine asks its driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send `message` to the admin at `to` (already shaped by the hysteresis sender). If the
    /// transport gives up on it, tell [`Convention::send_failed`].
    Send {
        /// The remote admin's socket.
        to: SocketAddrV4,
        /// The message.
        message: ConventionMessage,
    },
    /// Tell `watcher` (an actor that asked with [`Convention::notify_on_changes`]) that a member
    /// joined or left. If the notification bounces, call [`Convention::watcher_gone`].
    Notify {
        /// The actor to tell.
        watcher: ActorAddress,
        /// What happened.
        update: ConventionUpdate,
    },
    /// This remote is gone: the driver forgets it (its placed actors are gone, its pending
    /// messages fail).
    MemberLost(AdminRef),
    /// The active leader changed (`None`: this system leads, or has no live leader): the driver
    /// re-points central logging.
    LeaderChanged(Option<AdminRef>),
}

/// One remote system, as the admin's status shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    /// Its admin.
    pub admin: AdminRef,
    /// Its last known capabilities.
    pub capabilities: Capabilities,
    /// When it was last heard from (`None`: a pre-registered remote that has not registered).
    pub last_heard: Option<Instant>,
    /// This system pre-registered it.
    pub pre_registered: bool,
    /// It is this system's active leader.
    pub is_leader: bool,
    /// Actors this system placed there and not yet gone.
    pub placed: u64,
}

/// An actor that cannot be created locally, looking for a system to host it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlacementRequest {
    /// The admin that asked this system (not a candidate), if it came from another system.
    pub requester_admin: Option<SocketAddrV4>,
    /// Admins that were tried already (not candidates).
    pub already_tried: Vec<SocketAddrV4>,
}

/// Where an actor goes.
#[derive(Clone, Debug, PartialEq)]
pub enum PlacementDecision {
    /// Create it on this member.
    Member(AdminRef),
    /// No member fits that this system knows of: ask the active leader, which knows them all.
    ForwardToLeader(AdminRef),
    /// Nowhere: for each member considered, the requirements it did not meet.
    NoCompatibleSystem {
        /// `(member, unmet requirements)` for each member whose capabilities failed the check.
        unmet: Vec<(SocketAddrV4, Vec<String>)>,
    },
}

/// The machine's timers; each is scheduled at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Probe the live-or-registered candidates.
    Probe,
    /// Register with this candidate.
    Register(SocketAddrV4),
    /// This member's registration expires.
    Expire(SocketAddrV4),
    /// This candidate's liveness ends.
    Alive(SocketAddrV4),
    /// Invite this pre-registered remote again.
    Reinvite(SocketAddrV4),
}

/// What this system knows of one remote system.
#[derive(Clone, Debug)]
struct Remote {
    admin: AdminRef,
    capabilities: Capabilities,
    /// It registered (really, not only pre-registered) and was not lost since.
    member: bool,
    /// This system pre-registered it.
    pre_registered: bool,
    last_heard: Option<Instant>,
    /// Failed sends since it was last heard from.
    misses: u32,
    /// Actors placed there.
    placed: u64,
}

/// One system's convention: membership, leaders, notifications, placement. See the module
/// documentation for the protocol.
#[derive(Debug)]
pub struct Convention {
    me: AdminRef,
    capabilities: Capabilities,
    timing: Timing,
    /// The configured candidates (restored when an invitation ends).
    configured_leaders: Vec<SocketAddrV4>,
    /// The candidates now, in order (may include `me`).
    leaders: Vec<SocketAddrV4>,
    /// The system whose invitation made it this system's only candidate.
    invited_by: Option<SocketAddrV4>,
    /// The candidates other than `me`, with when their liveness ends.
    candidates: BTreeMap<SocketAddrV4, Option<Instant>>,
    remotes: BTreeMap<SocketAddrV4, Remote>,
    /// Earlier incarnations at a socket, with when they were replaced: their messages are
    /// late (ignored) for [`Timing::late_window`] after that.
    retired: BTreeMap<SocketAddrV4, VecDeque<(SystemId, Instant)>>,
    watchers: BTreeSet<ActorAddress>,
    /// The active leader as last announced.
    active: Option<AdminRef>,
    timers: BTreeSet<(Instant, Timer)>,
    scheduled: BTreeMap<Timer, Instant>,
    sender: Hysteresis<SocketAddrV4, ConventionMessage>,
    actions: VecDeque<Action>,
    /// The member chosen by the last placement (ties go round-robin from it).
    last_placed: Option<SocketAddrV4>,
    /// Until then (the first probe), a later candidate is not chosen while an earlier one has
    /// not answered yet: the first answers decide, not whichever comes first.
    startup_hold_until: Instant,
    /// The next probe tick probes only the candidates not heard from lately.
    probe_quiet_only: bool,
    shut_down: bool,
}

impl Convention {
    /// A system starting: a member sends its first-time registrations at once.
    pub fn new(config: ConventionConfig, now: Instant) -> Convention {
        let mut leaders: Vec<SocketAddrV4> = Vec::new();
        for leader in config.leaders {
            if !leaders.contains(&leader) {
                leaders.push(leader);
            }
        }
        let mut convention = Convention {
            me: config.me,
            capabilities: config.capabilities,
            sender: Hysteresis::new(config.timing.hysteresis),
            configured_leaders: leaders.clone(),
            leaders: Vec::new(),
            invited_by: None,
            candidates: BTreeMap::new(),
            remotes: BTreeMap::new(),
            retired: BTreeMap::new(),
            watchers: BTreeSet::new(),
            active: None,
            timers: BTreeSet::new(),
            scheduled: BTreeMap::new(),
            actions: VecDeque::new(),
            last_placed: None,
            startup_hold_until: now + config.timing.leader_probe_period,
            probe_quiet_only: false,
            timing: config.timing,
            shut_down: false,
        };
        convention.set_leaders(now, leaders);
        convention
    }

    /// A convention message from another admin. Messages claiming this admin's own socket
    /// (loopback or spoofing), without a known incarnation, or from an incarnation retired
    /// less than [`Timing::late_window`] ago are ignored.
    pub fn handle(&mut self, now: Instant, message: ConventionMessage) {
        let from = message.from();
        if self.shut_down || from.socket == self.me.socket || !from.is_known() {
            return;
        }
        let socket = from.socket;
        let retired_at = self.retired.get(&socket).and_then(|old| {
            old.iter()
                .find(|(incarnation, _)| *incarnation == from.incarnation)
                .map(|(_, at)| *at)
        });
        let revived = retired_at.is_some();
        if let Some(at) = retired_at {
            if now < at + self.timing.late_window() {
                log::debug!(
                    "convention: ignoring {} from a retired incarnation {from:?}",
                    message.kind()
                );
                return;
            }
            // Still talking well after it was replaced: it runs, and what replaced it was a
            // late message of an earlier incarnation this system never knew. It replaces that
            // one in turn (below).
            log::info!("convention: {from:?} runs after all: it was not replaced");
            if let Some(old) = self.retired.get_mut(&socket) {
                old.retain(|(incarnation, _)| *incarnation != from.incarnation);
            }
        }
        let restarted = match self.remotes.get(&socket) {
            Some(remote)
                if remote.admin.is_known() && remote.admin.incarnation != from.incarnation =>
            {
                let old = remote.admin.incarnation;
                log::info!(
                    "convention: {socket} restarted ({old:?} -> {:?})",
                    from.incarnation
                );
                self.lose(now, socket);
                let retired = self.retired.entry(socket).or_default();
                retired.push_back((old, now));
                if retired.len() > RETIRED_PER_SOCKET {
                    retired.pop_front();
                }
                true
            }
            _ => revived,
        };
        match message {
            ConventionMessage::Register {
                from,
                capabilities,
                first_time,
            } => self.on_register(now, from, capabilities, first_time),
            ConventionMessage::DeRegister { from } => self.on_deregister(now, from),
            ConventionMessage::Invite { from } => self.on_invite(now, from),
            ConventionMessage::Probe { from } => {
                self.heard(now, from);
                self.send(now, socket, ConventionMessage::Alive { from: self.me });
            }
            ConventionMessage::Alive { from } => self.heard(now, from),
        }
        if restarted && self.candidates.contains_key(&socket) && !self.is_member(socket) {
            // A restarted (or revived) candidate: tell that incarnation about this system at
            // once.
            self.register_with(now, socket);
        }
        self.recompute_leader(now);
    }

    /// The transport gave up on a message to `to`: a miss for that remote, and a candidate is
    /// taken as not live at once.
    pub fn send_failed(&mut self, now: Instant, to: SocketAddrV4) {
        if self.shut_down {
            return;
        }
        if let Some(alive) = self.candidates.get_mut(&to) {
            *alive = None;
            self.unschedule(Timer::Alive(to));
        }
        if let Some(remote) = self.remotes.get_mut(&to) {
            if remote.member {
                remote.misses += 1;
                if remote.misses >= self.timing.miss_max {
                    log::info!("convention: {to} lost after {} failed sends", remote.misses);
                    self.lose(now, to);
                }
            }
        }
        self.recompute_leader(now);
    }

    /// When [`Convention::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.first().map(|(at, _)| *at);
        match (timer, self.sender.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: registrations, probes, expiries, re-invitations, blackouts that ended.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer));
            self.scheduled.remove(&timer);
            self.fire(now, timer);
        }
        self.sender.handle_timeout(now);
        self.recompute_leader(now);
    }

    /// The next thing the driver must do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some(action) = self.actions.pop_front() {
            return Some(action);
        }
        self.sender
            .poll_transmit()
            .map(|(to, message)| Action::Send { to, message })
    }

    /// `watcher` wants (`enable`) or no longer wants a [`Action::Notify`] for every member
    /// joining or leaving. Enabling tells it at once about every member known now (once: a
    /// second enable changes nothing).
    pub fn notify_on_changes(&mut self, watcher: ActorAddress, enable: bool) {
        if !enable {
            self.watchers.remove(&watcher);
            return;
        }
        if self.shut_down || !self.watchers.insert(watcher.clone()) {
            return;
        }
        for remote in self.remotes.values().filter(|r| r.member) {
            self.actions.push_back(Action::Notify {
                watcher: watcher.clone(),
                update: ConventionUpdate {
                    remote: remote.admin,
                    capabilities: remote.capabilities.clone(),
                    added: true,
                },
            });
        }
    }

    /// A watcher exited, or a notification to it bounced: it is told nothing more.
    pub fn watcher_gone(&mut self, watcher: &ActorAddress) {
        self.watchers.remove(watcher);
    }

    /// An actor of this system pre-registers the admin at `remote` (Thespian's
    /// `preRegisterRemoteSystem`): it is recorded with `capabilities` (no notification), invited
    /// now and again at the re-invitation period, and joins (with its real capabilities) when
    /// it registers.
    pub fn pre_register(&mut self, now: Instant, remote: SocketAddrV4, capabilities: Capabilities) {
        if self.shut_down || remote == self.me.socket {
            return;
        }
        self.sender.cancel(remote);
        let entry = self.remotes.entry(remote).or_insert_with(|| Remote {
            admin: AdminRef::unknown(remote),
            capabilities: capabilities.clone(),
            member: false,
            pre_registered: false,
            last_heard: None,
            misses: 0,
            placed: 0,
        });
        entry.pre_registered = true;
        if !entry.member {
            entry.capabilities = capabilities;
        }
        self.invite(now, remote);
    }

    /// An actor of this system de-registers the admin at `remote` (Thespian's
    /// `deRegisterRemoteSystem`): its pre-registration ends, it is told with a
    /// [`ConventionMessage::DeRegister`], and it is lost here. An unknown remote: no effect.
    pub fn de_register(&mut self, now: Instant, remote: SocketAddrV4) {
        if self.shut_down {
            return;
        }
        let Some(entry) = self.remotes.get_mut(&remote) else {
            return;
        };
        entry.pre_registered = false;
        self.unschedule(Timer::Reinvite(remote));
        self.lose(now, remote);
        self.send(now, remote, ConventionMessage::DeRegister { from: self.me });
        self.recompute_leader(now);
    }

    /// This system's capabilities changed: its candidates are told now (through the
    /// hysteresis sender), not only at the next registration period.
    pub fn update_capabilities(&mut self, now: Instant, capabilities: Capabilities) {
        self.capabilities = capabilities;
        if self.shut_down {
            return;
        }
        let candidates: Vec<SocketAddrV4> = self.candidates.keys().copied().collect();
        for candidate in candidates {
            self.register_with(now, candidate);
        }
    }

    /// The system shuts down: every candidate and every member or pre-registered remote gets a
    /// [`ConventionMessage::DeRegister`] at once (queued traffic is dropped); afterwards the
    /// machine is inert.
    pub fn shutdown(&mut self, now: Instant) {
        if self.shut_down {
            return;
        }
        let _ = now;
        let mut told: BTreeSet<SocketAddrV4> = self.candidates.keys().copied().collect();
        told.extend(
            self.remotes
                .iter()
                .filter(|(_, r)| r.member || r.pre_registered)
                .map(|(s, _)| *s),
        );
        self.sender = Hysteresis::new(self.timing.hysteresis);
        for to in told {
            self.actions.push_back(Action::Send {
                to,
                message: ConventionMessage::DeRegister { from: self.me },
            });
        }
        self.timers.clear();
        self.scheduled.clear();
        self.shut_down = true;
    }

    /// The active leader; `None` when this system leads, is standalone, or has no live
    /// candidate.
    pub fn leader(&self) -> Option<AdminRef> {
        self.active
    }

    /// This system leads: no earlier candidate is live and it is a candidate itself (or it has
    /// no candidates at all: a standalone system leads whoever it invites).
    pub fn is_leader(&self) -> bool {
        self.active.is_none() && (self.leaders.is_empty() || self.leaders.contains(&self.me.socket))
    }

    /// Every remote system known here (members, candidates heard from, pre-registered
    /// remotes), in socket order.
    pub fn members(&self) -> Vec<MemberView> {
        let leader = self.active.map(|a| a.socket);
        self.remotes
            .iter()
            .map(|(socket, r)| MemberView {
                admin: r.admin,
                capabilities: r.capabilities.clone(),
                last_heard: r.last_heard,
                pre_registered: r.pre_registered,
                is_leader: Some(*socket) == leader,
                placed: r.placed,
            })
            .collect()
    }

    /// Chooses where an actor this system cannot host goes. The candidates are live members
    /// (registered, no failed send since last heard, a candidate leader also live) other than
    /// the requester, the already tried and this system, whose last known capabilities pass
    /// `check`; the one with the fewest actors placed there wins, ties round-robin. With none,
    /// a member forwards to its active leader (unless that was tried); otherwise nothing fits
    /// and the answer says what each member considered lacked.
    pub fn place(
        &mut self,
        request: &PlacementRequest,
        check: impl Fn(&Capabilities) -> Result<(), Vec<String>>,
    ) -> PlacementDecision {
        let excluded = |socket: &SocketAddrV4| {
            request.requester_admin == Some(*socket) || request.already_tried.contains(socket)
        };
        let mut fitting: Vec<(u64, SocketAddrV4)> = Vec::new();
        let mut unmet = Vec::new();
        for (socket, remote) in &self.remotes {
            let live = remote.member
                && remote.misses == 0
                && *socket != self.me.socket
                && self
                    .candidates
                    .get(socket)
                    .is_none_or(|alive| alive.is_some());
            if !live || excluded(socket) {
                continue;
            }
            match check(&remote.capabilities) {
                Ok(()) => fitting.push((remote.placed, *socket)),
                Err(lacks) => unmet.push((*socket, lacks)),
            }
        }
        if let Some(fewest) = fitting.iter().map(|(placed, _)| *placed).min() {
            let ties: Vec<SocketAddrV4> = fitting
                .iter()
                .filter(|(placed, _)| *placed == fewest)
                .map(|(_, s)| *s)
                .collect();
            let chosen = ties
                .iter()
                .copied()
                .find(|s| Some(*s) > self.last_placed)
                .unwrap_or(ties[0]);
            self.last_placed = Some(chosen);
            let remote = self
                .remotes
                .get_mut(&chosen)
                .expect("a fitting member is known");
            remote.placed += 1;
            return PlacementDecision::Member(remote.admin);
        }
        match self.active {
            Some(leader) if !excluded(&leader.socket) => PlacementDecision::ForwardToLeader(leader),
            _ => PlacementDecision::NoCompatibleSystem { unmet },
        }
    }

    /// An actor placed on `member` is gone (for spreading the next placements).
    pub fn placed_gone(&mut self, member: SocketAddrV4) {
        if let Some(remote) = self.remotes.get_mut(&member) {
            remote.placed = remote.placed.saturating_sub(1);
        }
    }

    /// This system's admin.
    pub fn me(&self) -> AdminRef {
        self.me
    }

    /// The leader candidates now, in order (the configured ones, or the inviter).
    pub fn leaders(&self) -> &[SocketAddrV4] {
        &self.leaders
    }

    /// The periods this machine runs with.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    // ---- internals ----

    fn is_member(&self, socket: SocketAddrV4) -> bool {
        self.remotes.get(&socket).is_some_and(|r| r.member)
    }

    /// Makes `leaders` the candidates: registers with the new ones at once, forgets the
    /// dropped ones (told with a de-registration if they were members).
    fn set_leaders(&mut self, now: Instant, leaders: Vec<SocketAddrV4>) {
        let new: BTreeSet<SocketAddrV4> = leaders
            .iter()
            .copied()
            .filter(|s| *s != self.me.socket)
            .collect();
        let dropped: Vec<SocketAddrV4> = self
            .candidates
            .keys()
            .copied()
            .filter(|s| !new.contains(s))
            .collect();
        for socket in dropped {
            self.candidates.remove(&socket);
            self.unschedule(Timer::Register(socket));
            self.unschedule(Timer::Alive(socket));
            if self.is_member(socket) {
                let pre_registered = self.remotes[&socket].pre_registered;
                self.lose(now, socket);
                if !pre_registered {
                    self.send(now, socket, ConventionMessage::DeRegister { from: self.me });
                }
            }
        }
        self.leaders = leaders;
        for socket in new {
            if self.candidates.contains_key(&socket) {
                continue;
            }
            self.candidates.insert(socket, None);
            self.register_with(now, socket);
        }
        if self.candidates.is_empty() {
            self.unschedule(Timer::Probe);
        } else if !self.scheduled.contains_key(&Timer::Probe) {
            self.schedule(Timer::Probe, now + self.timing.leader_probe_period);
        }
        self.recompute_leader(now);
    }

    fn schedule(&mut self, timer: Timer, at: Instant) {
        if let Some(old) = self.scheduled.insert(timer, at) {
            self.timers.remove(&(old, timer));
        }
        self.timers.insert((at, timer));
    }

    fn unschedule(&mut self, timer: Timer) {
        if let Some(old) = self.scheduled.remove(&timer) {
            self.timers.remove(&(old, timer));
        }
    }

    fn send(&mut self, now: Instant, to: SocketAddrV4, message: ConventionMessage) {
        self.sender.send(now, to, message);
    }

    fn notify(&mut self, remote: AdminRef, capabilities: &Capabilities, added: bool) {
        for watcher in &self.watchers {
            self.actions.push_back(Action::Notify {
                watcher: watcher.clone(),
                update: ConventionUpdate {
                    remote,
                    capabilities: capabilities.clone(),
                    added,
                },
            });
        }
    }

    /// Sends this system's registration to `candidate` and schedules the next one.
    fn register_with(&mut self, now: Instant, candidate: SocketAddrV4) {
        let first_time = !self.is_member(candidate);
        let message = ConventionMessage::Register {
            from: self.me,
            capabilities: self.capabilities.clone(),
            first_time,
        };
        self.send(now, candidate, message);
        let next = if first_time {
            self.timing.restart_period
        } else {
            self.timing.reregistration_period
        };
        self.schedule(Timer::Register(candidate), now + next);
    }

    fn invite(&mut self, now: Instant, remote: SocketAddrV4) {
        self.send(now, remote, ConventionMessage::Invite { from: self.me });
        let base = if self.is_member(remote) {
            self.timing.reregistration_period
        } else {
            self.timing.restart_period
        };
        self.schedule(
            Timer::Reinvite(remote),
            now + base.mul_f64(self.timing.reinvite_adjustment),
        );
    }

    /// A message from a member: it is alive and its registration is refreshed.
    fn heard(&mut self, now: Instant, from: AdminRef) {
        let Some(remote) = self.remotes.get_mut(&from.socket) else {
            return;
        };
        if !remote.member || remote.admin != from {
            return;
        }
        remote.last_heard = Some(now);
        remote.misses = 0;
        let validity = self.timing.registration_validity();
        self.schedule(Timer::Expire(from.socket), now + validity);
        if let Some(alive) = self.candidates.get_mut(&from.socket) {
            let until = now + self.timing.leader_timeout;
            *alive = Some(until);
            self.schedule(Timer::Alive(from.socket), until);
        }
    }

    fn on_register(
        &mut self,
        now: Instant,
        from: AdminRef,
        capabilities: Capabilities,
        first_time: bool,
    ) {
        let socket = from.socket;
        if first_time {
            let recently = self
                .remotes
                .get(&socket)
                .filter(|r| r.member)
                .and_then(|r| r.last_heard)
                .is_some_and(|heard| now < heard + self.timing.reregistration_period);
            if self.is_member(socket) && !recently {
                log::info!("convention: {socket} registers anew: reset");
                self.lose(now, socket);
            }
        }
        let entry = self.remotes.entry(socket).or_insert_with(|| Remote {
            admin: from,
            capabilities: Capabilities::default(),
            member: false,
            pre_registered: false,
            last_heard: None,
            misses: 0,
            placed: 0,
        });
        entry.admin = from;
        entry.capabilities = capabilities;
        let joined = !entry.member;
        entry.member = true;
        let pre_registered = entry.pre_registered;
        self.heard(now, from);
        if joined {
            log::info!("convention: {socket} joined");
            let capabilities = self.remotes[&socket].capabilities.clone();
            self.notify(from, &capabilities, true);
            if self.candidates.contains_key(&socket) {
                // The candidate answered: periodic registrations from now on.
                self.schedule(
                    Timer::Register(socket),
                    now + self.timing.reregistration_period,
                );
            }
        }
        if first_time || !self.candidates.contains_key(&socket) {
            let answer = ConventionMessage::Register {
                from: self.me,
                capabilities: self.capabilities.clone(),
                first_time: false,
            };
            self.send(now, socket, answer);
        }
        if pre_registered && joined {
            self.schedule(
                Timer::Reinvite(socket),
                now + self
                    .timing
                    .reregistration_period
                    .mul_f64(self.timing.reinvite_adjustment),
            );
        }
    }

    fn on_deregister(&mut self, now: Instant, from: AdminRef) {
        let socket = from.socket;
        if self.remotes.contains_key(&socket) {
            log::info!("convention: {socket} de-registered");
            self.lose(now, socket);
        }
        if self.invited_by == Some(socket) {
            // The inviter let this system go: back to the configured candidates (Thespian's
            // invited member stays idle until invited again).
            self.invited_by = None;
            let configured = self.configured_leaders.clone();
            self.set_leaders(now, configured);
        } else if self.candidates.contains_key(&socket) {
            // A leaving candidate: keep trying to register with it.
            self.schedule(Timer::Register(socket), now + self.timing.restart_period);
        }
    }

    fn on_invite(&mut self, now: Instant, from: AdminRef) {
        let socket = from.socket;
        if !self.leaders.contains(&socket) {
            log::info!("convention: invited by {socket}, which becomes the only leader candidate");
            self.set_leaders(now, vec![socket]);
            self.invited_by = Some(socket);
        } else {
            if self.leaders != self.configured_leaders {
                self.invited_by = Some(socket);
            }
            self.register_with(now, socket);
        }
    }

    fn fire(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::Register(socket) => {
                if self.candidates.contains_key(&socket) {
                    self.register_with(now, socket);
                }
            }
            Timer::Probe => {
                // Every other tick (half a probe period apart) only the candidates not heard
                // from within the last probe period are probed: their answers may have been
                // lost, and a few lost messages must not fail a live leader over.
                let period = self.timing.leader_probe_period;
                let quiet = |alive: &Option<Instant>| {
                    alive.is_none_or(|until| until + period <= now + self.timing.leader_timeout)
                };
                let all = !self.probe_quiet_only;
                let probed: Vec<SocketAddrV4> = self
                    .candidates
                    .iter()
                    .filter(|(s, alive)| self.is_member(**s) && (all || quiet(alive)))
                    .map(|(s, _)| *s)
                    .collect();
                for socket in probed {
                    self.send(now, socket, ConventionMessage::Probe { from: self.me });
                }
                self.probe_quiet_only = all;
                if !self.candidates.is_empty() {
                    self.schedule(Timer::Probe, now + period / 2);
                }
            }
            Timer::Expire(socket) => {
                if self.is_member(socket) {
                    log::info!("convention: {socket} expired (not heard from)");
                    self.lose(now, socket);
                }
            }
            Timer::Alive(socket) => {
                if let Some(alive) = self.candidates.get_mut(&socket) {
                    *alive = None;
                }
            }
            Timer::Reinvite(socket) => {
                if self.remotes.get(&socket).is_some_and(|r| r.pre_registered) {
                    self.invite(now, socket);
                }
            }
        }
    }

    /// Forgets a remote's membership: "removed" notifications and [`Action::MemberLost`] if it
    /// was a member, its queued traffic dropped; a pre-registered remote stays as a
    /// pre-registration (incarnation unknown again), any other is removed.
    fn lose(&mut self, now: Instant, socket: SocketAddrV4) {
        let Some(remote) = self.remotes.get_mut(&socket) else {
            return;
        };
        let was_member = remote.member;
        let admin = remote.admin;
        let capabilities = std::mem::take(&mut remote.capabilities);
        remote.member = false;
        remote.last_heard = None;
        remote.misses = 0;
        remote.placed = 0;
        if remote.pre_registered {
            remote.admin = AdminRef::unknown(socket);
            remote.capabilities = capabilities.clone();
            let at = now
                + self
                    .timing
                    .restart_period
                    .mul_f64(self.timing.reinvite_adjustment);
            if self
                .scheduled
                .get(&Timer::Reinvite(socket))
                .is_none_or(|t| *t > at)
            {
                self.schedule(Timer::Reinvite(socket), at);
            }
        } else {
            self.remotes.remove(&socket);
        }
        self.sender.cancel(socket);
        self.unschedule(Timer::Expire(socket));
        if let Some(alive) = self.candidates.get_mut(&socket) {
            *alive = None;
            self.unschedule(Timer::Alive(socket));
            // Registrations start over (first-time) at the restart period.
            let at = now + self.timing.restart_period;
            if self
                .scheduled
                .get(&Timer::Register(socket))
                .is_none_or(|t| *t > at)
            {
                self.schedule(Timer::Register(socket), at);
            }
        }
        if self.last_placed == Some(socket) {
            self.last_placed = None;
        }
        if was_member {
            self.notify(admin, &capabilities, false);
            self.actions.push_back(Action::MemberLost(admin));
        }
    }

    /// The first candidate that is this system or a live member.
    fn compute_active(&self, now: Instant) -> Option<AdminRef> {
        for socket in &self.leaders {
            if *socket == self.me.socket {
                return None;
            }
            let live = self
                .candidates
                .get(socket)
                .is_some_and(|alive| alive.is_some_and(|until| until > now));
            if live {
                if let Some(remote) = self.remotes.get(socket).filter(|r| r.member) {
                    return Some(remote.admin);
                }
            }
            if now < self.startup_hold_until && !self.is_member(*socket) {
                // Starting: this earlier candidate may still answer.
                return None;
            }
        }
        None
    }

    fn recompute_leader(&mut self, now: Instant) {
        if self.shut_down {
            return;
        }
        let active = self.compute_active(now);
        if active != self.active {
            log::info!("convention: active leader now {active:?}");
            self.active = active;
            self.actions.push_back(Action::LeaderChanged(active));
        }
    }
}
