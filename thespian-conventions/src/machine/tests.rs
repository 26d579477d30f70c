//! The scenarios of Thespian's `test_localConvention.py`, and the additions (failover,
//! placement), on machines wired together by a lossless in-test network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use thespian_core::{ActorAddress, Capabilities, SystemId};

use super::*;
use crate::hysteresis::HysteresisConfig;

const PERIOD: Duration = Duration::from_millis(1000);
const RESTART: Duration = Duration::from_millis(450);
/// Long enough for every hysteresis blackout of a short exchange to end.
const SETTLE: Duration = Duration::from_millis(20);

fn timing() -> Timing {
    let mut timing = Timing::with_periods(PERIOD, RESTART);
    timing.hysteresis = HysteresisConfig {
        min: Duration::from_millis(1),
        max: Duration::from_millis(50),
        rate: 1.2,
    };
    timing
}

fn sock(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 1900)
}

fn watcher(n: u8) -> ActorAddress {
    ActorAddress::new(SystemId::from_raw(1000 + u64::from(n)), 7)
}

/// Machines delivering to each other at once and in order; a system can be taken off the
/// network (its messages vanish silently).
struct Net {
    now: Instant,
    systems: BTreeMap<SocketAddrV4, Convention>,
    down: BTreeSet<SocketAddrV4>,
    /// Every action but sends, per system.
    seen: BTreeMap<SocketAddrV4, Vec<Action>>,
    /// Every message sent: (from, to, message).
    sent: Vec<(SocketAddrV4, SocketAddrV4, ConventionMessage)>,
    next_incarnation: u64,
}

impl Net {
    fn new() -> Net {
        Net {
            now: Instant::now(),
            systems: BTreeMap::new(),
            down: BTreeSet::new(),
            seen: BTreeMap::new(),
            sent: Vec::new(),
            next_incarnation: 1,
        }
    }

    fn start(&mut self, n: u8, leaders: &[u8], capabilities: Capabilities) -> AdminRef {
        let me = AdminRef {
            socket: sock(n),
            incarnation: SystemId::from_raw(self.next_incarnation),
        };
        self.next_incarnation += 1;
        let config = ConventionConfig {
            me,
            capabilities,
            leaders: leaders.iter().map(|l| sock(*l)).collect(),
            timing: timing(),
        };
        let mut convention = Convention::new(config, self.now);
        convention.notify_on_changes(watcher(n), true);
        self.systems.insert(sock(n), convention);
        self.down.remove(&sock(n));
        self.seen.insert(sock(n), Vec::new());
        self.settle();
        me
    }

    fn sys(&mut self, n: u8) -> &mut Convention {
        self.systems.get_mut(&sock(n)).unwrap()
    }

    /// Delivers everything sent until the network is quiet.
    fn pump(&mut self) {
        loop {
            let mut sends = Vec::new();
            for (socket, convention) in &mut self.systems {
                if self.down.contains(socket) {
                    continue;
                }
                while let Some(action) = convention.poll_action() {
                    match action {
                        Action::Send { to, message } => sends.push((*socket, to, message)),
                        other => self.seen.get_mut(socket).unwrap().push(other),
                    }
                }
            }
            if sends.is_empty() {
                return;
            }
            for (from, to, message) in sends {
                self.sent.push((from, to, message.clone()));
                if self.down.contains(&to) {
                    continue;
                }
                if let Some(target) = self.systems.get_mut(&to) {
                    target.handle(self.now, message);
                }
            }
        }
    }

    /// Lets the replies and the messages held back by the hysteresis senders arrive.
    fn settle(&mut self) {
        self.advance(SETTLE);
    }

    /// Runs the clock forward by `span`, firing every timer on the way.
    fn advance(&mut self, span: Duration) {
        let end = self.now + span;
        loop {
            self.pump();
            let next = self
                .systems
                .iter()
                .filter(|(s, _)| !self.down.contains(s))
                .filter_map(|(_, c)| c.poll_timeout())
                .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    for (socket, convention) in &mut self.systems {
                        if !self.down.contains(socket)
                            && convention.poll_timeout().is_some_and(|t| t <= self.now)
                        {
                            convention.handle_timeout(self.now);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = end;
        self.pump();
    }

    /// The notifications system `n`'s watcher got, as (remote, added), and forgets them.
    fn notifications(&mut self, n: u8) -> Vec<(SocketAddrV4, bool)> {
        let seen = self.seen.get_mut(&sock(n)).unwrap();
        let mut out = Vec::new();
        seen.retain(|a| match a {
            Action::Notify { update, .. } => {
                out.push((update.remote.socket, update.added));
                false
            }
            _ => true,
        });
        out
    }

    /// The other actions (lost members, leader changes) of system `n`, and forgets them.
    fn events(&mut self, n: u8) -> Vec<Action> {
        std::mem::take(self.seen.get_mut(&sock(n)).unwrap())
            .into_iter()
            .filter(|a| !matches!(a, Action::Notify { .. }))
            .collect()
    }

    fn sent_since(&self, mark: usize, from: u8, to: u8) -> Vec<&ConventionMessage> {
        self.sent[mark..]
            .iter()
            .filter(|(f, t, _)| *f == sock(from) && *t == sock(to))
            .map(|(_, _, m)| m)
            .collect()
    }

    fn member_sockets(&mut self, n: u8) -> Vec<SocketAddrV4> {
        self.sys(n)
            .members()
            .into_iter()
            .filter(|m| m.last_heard.is_some())
            .map(|m| m.admin.socket)
            .collect()
    }
}

fn caps(pairs: &[(&str, bool)]) -> Capabilities {
    pairs.iter().map(|(k, v)| (*k, *v)).collect()
}

/// A leader (1) and a member (2), registered.
fn leader_and_member() -> (Net, AdminRef, AdminRef) {
    let mut net = Net::new();
    let leader = net.start(1, &[1], caps(&[("leader", true)]));
    let member = net.start(2, &[1], caps(&[("member", true)]));
    (net, leader, member)
}

#[test]
fn a_member_registers_and_both_sides_are_told() {
    let (mut net, leader, member) = leader_and_member();
    assert_eq!(net.notifications(1), vec![(sock(2), true)]);
    assert_eq!(net.notifications(2), vec![(sock(1), true)]);
    assert!(net.sys(1).is_leader());
    assert_eq!(net.sys(1).leader(), None);
    assert!(!net.sys(2).is_leader());
    assert_eq!(net.sys(2).leader(), Some(leader));
    assert_eq!(net.events(2), vec![Action::LeaderChanged(Some(leader))]);
    let view = net.sys(1).members();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].admin, member);
    assert_eq!(view[0].capabilities, caps(&[("member", true)]));
    assert!(!view[0].pre_registered);
    let view = net.sys(2).members();
    assert!(view[0].is_leader);
}

#[test]
fn the_first_registration_is_first_time_and_later_ones_are_periodic() {
    let mut net = Net::new();
    net.start(1, &[1], Capabilities::default());
    net.start(2, &[1], Capabilities::default());
    let registrations = |net: &Net, mark| {
        net.sent_since(mark, 2, 1)
            .into_iter()
            .filter_map(|m| match m {
                ConventionMessage::Register { first_time, .. } => Some(*first_time),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(registrations(&net, 0), vec![true]);
    let mark = net.sent.len();
    net.advance(PERIOD * 3 + PERIOD / 2);
    assert_eq!(registrations(&net, mark), vec![false, false, false]);
}

#[test]
fn re_registration_tells_nobody_again() {
    let (mut net, _, _) = leader_and_member();
    net.notifications(1);
    net.notifications(2);
    net.events(2);
    net.advance(PERIOD * 10);
    assert_eq!(net.notifications(1), vec![]);
    assert_eq!(net.notifications(2), vec![]);
    assert_eq!(net.events(1), vec![]);
    assert_eq!(net.events(2), vec![]);
    assert_eq!(net.member_sockets(1), vec![sock(2)]);
}

#[test]
fn a_silent_member_expires_after_miss_max_periods() {
    let (mut net, _, member) = leader_and_member();
    net.notifications(1);
    net.down.insert(sock(2));
    net.advance(PERIOD * 29 / 10);
    assert_eq!(net.notifications(1), vec![], "still valid before 3 periods");
    net.advance(PERIOD * 2 / 10);
    assert_eq!(net.notifications(1), vec![(sock(2), false)]);
    assert_eq!(net.events(1), vec![Action::MemberLost(member)]);
    assert_eq!(net.member_sockets(1), vec![]);
}

#[test]
fn a_leaving_member_is_removed_at_once() {
    let (mut net, _, member) = leader_and_member();
    net.notifications(1);
    let now = net.now;
    net.sys(2).shutdown(now);
    net.settle();
    assert_eq!(net.notifications(1), vec![(sock(2), false)]);
    assert_eq!(net.events(1), vec![Action::MemberLost(member)]);
    // Inert afterwards.
    assert_eq!(net.sys(2).poll_timeout(), None);
    net.sys(2).handle(
        now,
        ConventionMessage::Probe {
            from: AdminRef {
                socket: sock(1),
                incarnation: SystemId::from_raw(1),
            },
        },
    );
    assert_eq!(net.sys(2).poll_action(), None);
}

#[test]
fn a_leaving_leader_is_cleaned_up_and_registration_goes_on() {
    let (mut net, leader, _) = leader_and_member();
    net.notifications(2);
    net.events(2);
    let now = net.now;
    net.sys(1).shutdown(now);
    net.settle();
    net.systems.remove(&sock(1));
    assert_eq!(net.notifications(2), vec![(sock(1), false)]);
    assert_eq!(
        net.events(2),
        vec![Action::MemberLost(leader), Action::LeaderChanged(None)]
    );
    let mark = net.sent.len();
    net.advance(RESTART * 2 + RESTART / 2);
    let retries: Vec<_> = net
        .sent_since(mark, 2, 1)
        .into_iter()
        .filter(|m| {
            matches!(
                m,
                ConventionMessage::Register {
                    first_time: true,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(
        retries.len(),
        2,
        "first-time registrations every restart period"
    );
    // The leader comes back (a new incarnation) and the member joins it again.
    let leader = net.start(1, &[1], Capabilities::default());
    net.advance(RESTART);
    assert_eq!(net.sys(2).leader(), Some(leader));
    assert_eq!(net.notifications(2), vec![(sock(1), true)]);
}

#[test]
fn a_restarted_member_is_removed_then_added() {
    let (mut net, _, old) = leader_and_member();
    net.notifications(1);
    net.advance(PERIOD / 3);
    let new = net.start(2, &[1], caps(&[("restarted", true)]));
    assert_ne!(old, new);
    assert_eq!(
        net.notifications(1),
        vec![(sock(2), false), (sock(2), true)]
    );
    assert_eq!(net.events(1), vec![Action::MemberLost(old)]);
    let view = net.sys(1).members();
    assert_eq!(view[0].admin, new);
    assert_eq!(view[0].capabilities, caps(&[("restarted", true)]));
    // A late message of the old incarnation changes nothing.
    let now = net.now;
    net.sys(1).handle(
        now,
        ConventionMessage::Register {
            from: old,
            capabilities: Capabilities::default(),
            first_time: true,
        },
    );
    net.settle();
    assert_eq!(net.notifications(1), vec![]);
    assert_eq!(net.sys(1).members()[0].admin, new);
}

#[test]
fn an_incarnation_still_talking_after_it_was_replaced_is_taken_back() {
    let (mut net, _, _) = leader_and_member();
    net.advance(PERIOD / 3);
    let current = net.start(2, &[1], Capabilities::default());
    net.notifications(1);
    net.events(1);
    net.notifications(2);
    // A late answer of an incarnation the leader never knew (it ran between the two it knows)
    // arrives after the current one's registration: it cannot be told from a restart.
    let between = AdminRef {
        socket: sock(2),
        incarnation: SystemId::from_raw(777),
    };
    let now = net.now;
    net.sys(1)
        .handle(now, ConventionMessage::Alive { from: between });
    net.pump();
    assert_eq!(net.notifications(1), vec![(sock(2), false)]);
    assert_eq!(net.events(1), vec![Action::MemberLost(current)]);
    // Within the late window the current incarnation's messages are ignored as late ones ...
    net.advance(timing().late_window() / 2);
    assert_eq!(net.member_sockets(1), vec![]);
    // ... after it, they show that it runs: it is a member again, with no reset of its own.
    net.advance(PERIOD);
    assert_eq!(net.notifications(1), vec![(sock(2), true)]);
    assert_eq!(net.sys(1).members()[0].admin, current);
    assert_eq!(net.notifications(2), vec![]);
}

#[test]
fn a_first_time_registration_resets_a_member_unless_it_is_a_duplicate() {
    let (mut net, _, member) = leader_and_member();
    net.notifications(1);
    let first = ConventionMessage::Register {
        from: member,
        capabilities: Capabilities::default(),
        first_time: true,
    };
    // A duplicate (or a retry whose answer was lost), soon after: no reset.
    let now = net.now + PERIOD / 10;
    net.sys(1).handle(now, first.clone());
    net.settle();
    assert_eq!(net.notifications(1), vec![]);
    // After a period of silence the member starts over: reset.
    net.down.insert(sock(2));
    net.advance(PERIOD * 2);
    net.down.remove(&sock(2));
    let now = net.now;
    net.sys(1).handle(now, first);
    net.settle();
    assert_eq!(
        net.notifications(1),
        vec![(sock(2), false), (sock(2), true)]
    );
    assert_eq!(net.events(1), vec![Action::MemberLost(member)]);
}

#[test]
fn pre_registration_invites_and_the_real_capabilities_replace_the_given_ones() {
    let mut net = Net::new();
    net.start(1, &[], caps(&[("leader", true)]));
    let member = net.start(2, &[], caps(&[("real", true)]));
    // Standalone, nobody registered.
    assert_eq!(net.notifications(1), vec![]);
    net.down.insert(sock(2));
    let now = net.now;
    net.sys(1)
        .pre_register(now, sock(2), caps(&[("moo", true)]));
    net.settle();
    assert_eq!(
        net.notifications(1),
        vec![],
        "no notification on the call itself"
    );
    let view = net.sys(1).members();
    assert_eq!(view.len(), 1);
    assert!(view[0].pre_registered);
    assert_eq!(view[0].last_heard, None);
    assert_eq!(view[0].capabilities, caps(&[("moo", true)]));
    // Absent: invited again every 1.1 restart periods.
    let mark = net.sent.len();
    net.advance(RESTART.mul_f64(1.1) * 3 + RESTART / 10);
    let invites = net
        .sent_since(mark, 1, 2)
        .into_iter()
        .filter(|m| matches!(m, ConventionMessage::Invite { .. }))
        .count();
    assert_eq!(invites, 3);
    // It answers: registered, notified, real capabilities only.
    net.down.remove(&sock(2));
    let now = net.now;
    net.sys(1)
        .pre_register(now, sock(2), caps(&[("moo", true)]));
    net.settle();
    assert_eq!(net.notifications(1), vec![(sock(2), true)]);
    let view = net.sys(1).members();
    assert_eq!(view[0].admin, member);
    assert!(view[0].pre_registered);
    assert_eq!(view[0].capabilities, caps(&[("real", true)]));
    assert!(view[0].capabilities.get("moo").is_none());
    // The invited system takes the inviter as its leader.
    assert_eq!(net.sys(2).leader().map(|l| l.socket), Some(sock(1)));
    assert_eq!(net.sys(2).leaders(), &[sock(1)]);
    assert_eq!(net.notifications(2), vec![(sock(1), true)]);
    // It stays a member over time.
    net.advance(PERIOD * 5);
    assert_eq!(net.notifications(1), vec![]);
    assert_eq!(net.member_sockets(1), vec![sock(2)]);
}

#[test]
fn de_registering_a_pre_registered_member_lets_it_go() {
    let mut net = Net::new();
    net.start(1, &[], Capabilities::default());
    let member = net.start(2, &[], Capabilities::default());
    let now = net.now;
    net.sys(1)
        .pre_register(now, sock(2), Capabilities::default());
    net.settle();
    net.notifications(1);
    net.notifications(2);
    let now = net.now;
    net.sys(1).de_register(now, sock(2));
    net.settle();
    assert_eq!(net.notifications(1), vec![(sock(2), false)]);
    assert!(net.events(1).contains(&Action::MemberLost(member)));
    assert_eq!(net.notifications(2), vec![(sock(1), false)]);
    assert_eq!(net.sys(1).members(), vec![]);
    // The member went back to standalone: it does not register again.
    net.advance(PERIOD * 4);
    assert_eq!(net.sys(1).members(), vec![]);
    assert_eq!(net.sys(2).leaders(), &[] as &[SocketAddrV4]);
}

#[test]
fn de_registering_an_unknown_address_does_nothing() {
    let (mut net, _, _) = leader_and_member();
    net.notifications(1);
    net.events(1);
    let mark = net.sent.len();
    let now = net.now;
    net.sys(1)
        .de_register(now, SocketAddrV4::new(Ipv4Addr::new(10, 101, 10, 1), 9999));
    net.settle();
    assert_eq!(net.notifications(1), vec![]);
    assert_eq!(net.events(1), vec![]);
    assert_eq!(net.sent.len(), mark);
    assert_eq!(net.member_sockets(1), vec![sock(2)]);
}

#[test]
fn messages_claiming_to_be_from_this_admin_are_ignored() {
    let (mut net, leader, _) = leader_and_member();
    net.notifications(1);
    let mark = net.sent.len();
    let now = net.now;
    let spoof = AdminRef {
        socket: leader.socket,
        incarnation: SystemId::from_raw(999),
    };
    for message in [
        ConventionMessage::Register {
            from: spoof,
            capabilities: Capabilities::default(),
            first_time: true,
        },
        ConventionMessage::DeRegister { from: leader },
        ConventionMessage::Invite { from: spoof },
        ConventionMessage::Probe { from: leader },
    ] {
        net.sys(1).handle(now, message);
    }
    net.settle();
    assert_eq!(net.notifications(1), vec![]);
    assert_eq!(net.sent.len(), mark);
    assert_eq!(net.member_sockets(1), vec![sock(2)]);
}

#[test]
fn watchers_are_told_once_each_and_not_after_they_are_gone() {
    let (mut net, _, member) = leader_and_member();
    net.notifications(1);
    let extra = watcher(99);
    net.sys(1).notify_on_changes(extra.clone(), true);
    net.sys(1).notify_on_changes(extra.clone(), true);
    let got: Vec<Action> = std::iter::from_fn(|| net.sys(1).poll_action()).collect();
    assert_eq!(
        got,
        vec![Action::Notify {
            watcher: extra.clone(),
            update: ConventionUpdate {
                remote: member,
                capabilities: caps(&[("member", true)]),
                added: true,
            },
        }]
    );
    net.sys(1).watcher_gone(&watcher(1));
    let now = net.now;
    net.sys(2).shutdown(now);
    net.settle();
    let told: Vec<ActorAddress> = net.seen[&sock(1)]
        .iter()
        .filter_map(|a| match a {
            Action::Notify { watcher, .. } => Some(watcher.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(told, vec![extra]);
}

#[test]
fn capability_updates_reach_the_leader_before_the_next_period() {
    let (mut net, _, _) = leader_and_member();
    net.advance(PERIOD / 4);
    let now = net.now;
    net.sys(2).update_capabilities(now, caps(&[("gpu", true)]));
    net.advance(PERIOD / 10);
    assert_eq!(net.sys(1).members()[0].capabilities, caps(&[("gpu", true)]));
    // A change is not a join.
    assert_eq!(net.notifications(1), vec![(sock(2), true)]);
}

#[test]
fn a_silent_leader_death_moves_everyone_to_the_next_candidate() {
    let mut net = Net::new();
    let first = net.start(1, &[1, 2], Capabilities::default());
    let second = net.start(2, &[1, 2], Capabilities::default());
    net.start(3, &[1, 2], Capabilities::default());
    net.advance(PERIOD);
    assert_eq!(net.sys(2).leader(), Some(first));
    assert_eq!(net.sys(3).leader(), Some(first));
    assert!(!net.sys(2).is_leader());
    net.events(2);
    net.events(3);
    net.down.insert(sock(1));
    net.advance(timing().leader_timeout + timing().leader_probe_period);
    assert!(net.sys(2).is_leader());
    assert_eq!(net.sys(2).leader(), None);
    assert_eq!(net.sys(3).leader(), Some(second));
    assert_eq!(net.events(3), vec![Action::LeaderChanged(Some(second))]);
    // Liveness only picks the leader: the old one is still a member until it expires.
    assert!(net.member_sockets(3).contains(&sock(1)));
    // The first candidate returns (restarted) and leads again.
    let first = net.start(1, &[1, 2], Capabilities::default());
    net.advance(PERIOD);
    assert_eq!(net.sys(2).leader(), Some(first));
    assert_eq!(net.sys(3).leader(), Some(first));
}

#[test]
fn a_quiet_candidate_is_probed_again_half_a_probe_period_later() {
    let (mut net, _, _) = leader_and_member();
    let probes = |net: &Net, mark| {
        net.sent_since(mark, 2, 1)
            .into_iter()
            .filter(|m| matches!(m, ConventionMessage::Probe { .. }))
            .count()
    };
    let probe = timing().leader_probe_period;
    let mark = net.sent.len();
    net.advance(probe * 4);
    assert_eq!(probes(&net, mark), 4, "answered: once per probe period");
    // The leader's answers are lost from now on.
    net.down.insert(sock(1));
    net.advance(probe);
    let mark = net.sent.len();
    net.advance(probe * 4);
    assert_eq!(probes(&net, mark), 8, "quiet: twice per probe period");
}

#[test]
fn a_failed_send_to_the_leader_fails_over_at_once() {
    let mut net = Net::new();
    net.start(1, &[1, 2], Capabilities::default());
    let second = net.start(2, &[1, 2], Capabilities::default());
    net.start(3, &[1, 2], Capabilities::default());
    net.events(3);
    let now = net.now;
    net.sys(3).send_failed(now, sock(1));
    assert_eq!(net.sys(3).leader(), Some(second));
    net.pump();
    assert_eq!(net.events(3), vec![Action::LeaderChanged(Some(second))]);
    // Three failed sends lose it as a member.
    net.sys(3).send_failed(now, sock(1));
    net.sys(3).send_failed(now, sock(1));
    net.settle();
    assert!(net
        .events(3)
        .iter()
        .any(|a| matches!(a, Action::MemberLost(m) if m.socket == sock(1))));
}

#[test]
fn placement_spreads_over_fitting_members_and_never_uses_a_lost_one() {
    let mut net = Net::new();
    net.start(1, &[1], Capabilities::default());
    for n in 2..=5 {
        net.start(n, &[1], caps(&[("gpu", n != 5)]));
    }
    let gpu = |c: &Capabilities| {
        if c.is_truthy("gpu") {
            Ok(())
        } else {
            Err(vec!["gpu".to_string()])
        }
    };
    let any = PlacementRequest::default();
    let placed: Vec<SocketAddrV4> = (0..6)
        .map(|_| match net.sys(1).place(&any, gpu) {
            PlacementDecision::Member(m) => m.socket,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(placed, [2, 3, 4, 2, 3, 4].map(sock));
    net.sys(1).placed_gone(sock(3));
    net.sys(1).placed_gone(sock(3));
    assert_eq!(
        net.sys(1).place(&any, gpu),
        PlacementDecision::Member(net.sys(1).members()[1].admin),
        "the member with the fewest placed actors wins"
    );
    // The requester and the already tried are not candidates.
    let request = PlacementRequest {
        requester_admin: Some(sock(2)),
        already_tried: vec![sock(3)],
    };
    assert!(
        matches!(net.sys(1).place(&request, gpu), PlacementDecision::Member(m) if m.socket == sock(4))
    );
    // A lost member is never chosen.
    let now = net.now;
    net.sys(4).shutdown(now);
    net.settle();
    match net.sys(1).place(&request, gpu) {
        PlacementDecision::NoCompatibleSystem { unmet } => {
            assert_eq!(unmet, vec![(sock(5), vec!["gpu".to_string()])]);
        }
        other => panic!("{other:?}"),
    }
    // A member that finds nothing forwards to its leader, unless the leader was tried.
    let leader = net.sys(2).leader().unwrap();
    assert_eq!(
        net.sys(2).place(&any, |_| Err(vec!["x".into()])),
        PlacementDecision::ForwardToLeader(leader)
    );
    let tried = PlacementRequest {
        requester_admin: None,
        already_tried: vec![sock(1)],
    };
    assert_eq!(
        net.sys(2).place(&tried, |_| Err(vec!["x".into()])),
        PlacementDecision::NoCompatibleSystem { unmet: vec![] }
    );
    // A member with a failed send since it was last heard from is not chosen either.
    let now = net.now;
    net.sys(1).send_failed(now, sock(2));
    net.sys(1).send_failed(now, sock(3));
    assert_eq!(
        net.sys(1).place(&any, |_| Ok(())),
        PlacementDecision::Member(net.sys(1).members().last().unwrap().admin)
    );
}

#[test]
fn a_standalone_system_leads_and_places_nothing() {
    let mut net = Net::new();
    net.start(1, &[], Capabilities::default());
    assert!(net.sys(1).is_leader());
    assert_eq!(net.sys(1).poll_timeout(), None, "nothing to do alone");
    assert_eq!(
        net.sys(1).place(&PlacementRequest::default(), |_| Ok(())),
        PlacementDecision::NoCompatibleSystem { unmet: vec![] }
    );
}

#[test]
fn a_starting_system_waits_briefly_for_the_first_candidate() {
    let mut net = Net::new();
    let first = net.start(1, &[1, 2], Capabilities::default());
    let second = net.start(2, &[1, 2], Capabilities::default());
    // Both candidates answer: the first leads, announced once.
    net.start(3, &[1, 2], Capabilities::default());
    assert_eq!(net.events(3), vec![Action::LeaderChanged(Some(first))]);
    // The first candidate is silent while a system starts: no leader during the hold, then
    // the second.
    net.down.insert(sock(1));
    net.start(4, &[1, 2], Capabilities::default());
    assert_eq!(net.sys(4).leader(), None);
    net.advance(timing().leader_probe_period);
    assert_eq!(net.sys(4).leader(), Some(second));
    assert_eq!(net.events(4), vec![Action::LeaderChanged(Some(second))]);
}
