//! Conventions on loopback: several Tcp (or Udp) systems, each with an Admin Port of its own,
//! join a convention, tell their watchers who comes and goes, and create actors on whichever
//! member has the capabilities (Thespian's `test_localConvention.py`,
//! `test_multipleActorSystems.py`, `test_manyActorSystems.py`, `test_preRegistration.py`,
//! `test_HAConvention.py` and the three-system part of `test_updateSystemCapabilities.py`).
//!
//! Registration periods are shortened to fractions of a second through the capabilities;
//! every wait has a deadline, and every system is shut down when its [`Member`] is dropped.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{
    keys, ActorSystemBuilder, ActorSystemConventionUpdate, CapabilityValue, IntoMessage, LogConfig,
    RemoteSystem, StatusRequest, SystemStatus, ThespianError,
};

thespian::test_entry_point!();

mod support;
use support::admin_port;

/// How long anything that must happen may take.
const WAIT: Duration = Duration::from_secs(20);

/// The registration period the systems here use: short, so joins, losses and failover are
/// quick; long enough that a loaded machine does not miss registrations.
const PERIOD: f64 = 0.5;

// ---------------------------------------------------------------------------------------------
// Messages and actors

/// Asks a [`Watcher`] to subscribe to convention changes and report them to the asker.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StartWatching;

/// A convention change, as a [`Watcher`] reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Change {
    admin: ActorAddress,
    capabilities: Capabilities,
    added: bool,
}

/// Asks a [`Watcher`] to pre-register a remote system.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PreRegister(String, Capabilities);

/// Asks a [`Watcher`] to de-register a remote system by address string.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DeRegisterByText(String);

/// Asks a [`Watcher`] to de-register a remote system by its admin's address.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DeRegisterByAdmin(ActorAddress);

/// A [`Watcher`]'s answer to a request: `Err` carries the error's text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Done(Result<(), String>);

/// Asks a [`Morse`] (or [`Painter`]) where it lives.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WhereAreYou;

/// The Admin Port of the system an actor lives in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LivesAt(i64);

/// Asks a [`Creator`] to create a [`Morse`] child; it answers [`CreatedChild`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CreateMorse;

/// A [`Creator`]'s new child, or why it has none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CreatedChild(Result<ActorAddress, String>);

/// A [`Creator`]'s child exited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ChildGone(ActorAddress);

message!(
    StartWatching = "conventions.StartWatching",
    Change = "conventions.Change",
    PreRegister = "conventions.PreRegister",
    DeRegisterByText = "conventions.DeRegisterByText",
    DeRegisterByAdmin = "conventions.DeRegisterByAdmin",
    Done = "conventions.Done",
    WhereAreYou = "conventions.WhereAreYou",
    LivesAt = "conventions.LivesAt",
    CreateMorse = "conventions.CreateMorse",
    CreatedChild = "conventions.CreatedChild",
    ChildGone = "conventions.ChildGone",
);

/// Subscribes to convention changes on request and reports each to whoever asked; runs
/// pre- and de-registrations for the tests.
#[derive(Default)]
struct Watcher {
    reporter: Option<ActorAddress>,
}

impl Actor for Watcher {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<StartWatching>() {
            self.reporter = Some(env.sender().clone());
            let done = ctx.notify_on_system_registration_changes(true);
            ctx.send(env.sender(), Done(done.map_err(|e| e.to_string())))?;
        } else if let Ok(update) = env.get::<ActorSystemConventionUpdate>() {
            if let Some(reporter) = &self.reporter {
                let change = Change {
                    admin: update.remote_admin_address.clone(),
                    capabilities: update.remote_capabilities.clone(),
                    added: update.remote_added,
                };
                ctx.send(reporter, change)?;
            }
        } else if let Ok(PreRegister(remote, caps)) = env.get::<PreRegister>() {
            let done = ctx.pre_register_remote_system(remote, caps.clone());
            ctx.send(env.sender(), Done(done.map_err(|e| e.to_string())))?;
        } else if let Ok(DeRegisterByText(remote)) = env.get::<DeRegisterByText>() {
            let done = ctx.de_register_remote_system(RemoteSystem::Address(remote.clone()));
            ctx.send(env.sender(), Done(done.map_err(|e| e.to_string())))?;
        } else if let Ok(DeRegisterByAdmin(admin)) = env.get::<DeRegisterByAdmin>() {
            let done = ctx.de_register_remote_system(RemoteSystem::Admin(admin.clone()));
            ctx.send(env.sender(), Done(done.map_err(|e| e.to_string())))?;
        }
        Ok(())
    }
}

/// Lives only where the `Morse` capability is truthy; says which system that is.
#[derive(Default)]
struct Morse;

impl Actor for Morse {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<WhereAreYou>() {
            let port = ctx
                .capabilities()
                .get_int(keys::ADMIN_PORT)
                .ok()
                .flatten()
                .unwrap_or(0);
            ctx.send(env.sender(), LivesAt(port))?;
        }
        Ok(())
    }

    fn capability_check(caps: &Capabilities, _: &Requirements) -> bool {
        caps.is_truthy("Morse")
    }
}

/// Lives only where the `Paint` capability is truthy; says which system that is.
#[derive(Default)]
struct Painter;

impl Actor for Painter {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<WhereAreYou>() {
            let port = ctx
                .capabilities()
                .get_int(keys::ADMIN_PORT)
                .ok()
                .flatten()
                .unwrap_or(0);
            ctx.send(env.sender(), LivesAt(port))?;
        }
        Ok(())
    }

    fn capability_check(caps: &Capabilities, _: &Requirements) -> bool {
        caps.is_truthy("Paint")
    }
}

/// Creates [`Morse`] children on request and reports their exits to the last asker.
#[derive(Default)]
struct Creator {
    reporter: Option<ActorAddress>,
}

impl Actor for Creator {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<CreateMorse>() {
            self.reporter = Some(env.sender().clone());
            let child = ctx.create_actor::<Morse>().map_err(|e| e.to_string());
            ctx.send(env.sender(), CreatedChild(child))?;
        } else if let Ok(exited) = env.get::<ChildActorExited>() {
            if let Some(reporter) = &self.reporter {
                ctx.send(reporter, ChildGone(exited.child_address.clone()))?;
            }
        }
        Ok(())
    }
}

/// Logs a warning with the text it is sent, then answers.
#[derive(Default)]
struct Grumbler;

impl Actor for Grumbler {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(text) = env.get::<String>() {
            log::warn!("grumbles {text}");
            ctx.send(env.sender(), Done(Ok(())))?;
        }
        Ok(())
    }
}

thespian::register_actors!(Watcher, Morse, Painter, Creator, Grumbler);

// ---------------------------------------------------------------------------------------------
// Systems

/// One system of a test convention.
struct Member {
    sys: ActorSystem,
    port: u16,
}

impl Drop for Member {
    /// A multi-process system outlives the program that started it: each test's systems are
    /// shut down when the test ends, however it ends.
    fn drop(&mut self) {
        if !self.sys.is_shut_down() {
            let _ = self.sys.shutdown();
        }
    }
}

impl Member {
    /// The address string other systems use for this one.
    fn at(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its status (with the convention listing).
    fn status(&self) -> SystemStatus {
        let reply = self
            .sys
            .ask(&self.sys.admin_address(), StatusRequest, WAIT)
            .expect("status request")
            .expect("a status within the wait");
        reply.get::<SystemStatus>().expect("a SystemStatus").clone()
    }

    /// The Admin Ports of the remote systems it knows.
    fn known_ports(&self) -> Vec<u16> {
        let convention = self.status().convention.expect("a convention listing");
        convention
            .members
            .iter()
            .filter_map(|m| m.capabilities.get_int(keys::ADMIN_PORT).ok().flatten())
            .map(|p| p as u16)
            .collect()
    }

    /// The Admin Port of its active leader (`None`: it leads).
    fn leader_port(&self) -> Option<u16> {
        let convention = self.status().convention.expect("a convention listing");
        let leader = convention.leader?;
        convention
            .members
            .iter()
            .find(|m| m.admin_address == leader)
            .and_then(|m| m.capabilities.get_int(keys::ADMIN_PORT).ok().flatten())
            .map(|p| p as u16)
    }

    /// Starts a [`Watcher`] on it, subscribed and reporting to a private endpoint of `sys`.
    fn watch(&self) -> (ActorSystem, ActorAddress) {
        let endpoint = self.sys.private().expect("a private endpoint");
        let watcher = endpoint.create_actor::<Watcher>().expect("a watcher");
        let done = ask::<Done>(&endpoint, &watcher, StartWatching);
        assert_eq!(done, Done(Ok(())));
        (endpoint, watcher)
    }
}

/// Starts a system of `base` on a fresh port, leader(s) `leaders` (empty: none), capabilities
/// `caps`.
fn start(base: SystemBase, leaders: &[u16], caps: &[(&str, CapabilityValue)]) -> Member {
    start_on(base, admin_port(), leaders, caps)
}

fn start_on(
    base: SystemBase,
    port: u16,
    leaders: &[u16],
    caps: &[(&str, CapabilityValue)],
) -> Member {
    let mut builder: ActorSystemBuilder = ActorSystem::builder()
        .base(base)
        .transient_unique(true)
        .log(LogConfig::Untouched)
        .capability(keys::ADMIN_PORT, i64::from(port))
        .capability(keys::CONVENTION_REREGISTRATION_PERIOD, PERIOD)
        .capability(keys::CONVENTION_RESTART_PERIOD, PERIOD)
        .advertise_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .test_entry_point();
    match leaders {
        [] => {}
        [one] => {
            builder = builder.capability(keys::CONVENTION_ADDRESS_IPV4, format!("127.0.0.1:{one}"))
        }
        many => {
            let list: Vec<CapabilityValue> = many
                .iter()
                .map(|p| CapabilityValue::from(format!("127.0.0.1:{p}")))
                .collect();
            builder =
                builder.capability(keys::CONVENTION_ADDRESS_IPV4, CapabilityValue::List(list));
        }
    }
    for (key, value) in caps {
        builder = builder.capability(*key, value.clone());
    }
    let sys = builder.start().expect("the system starts");
    Member { sys, port }
}

/// Sends `message` to `to` and waits for the answer of type `T` (other messages are skipped).
fn ask<T: Message + Clone>(sys: &ActorSystem, to: &ActorAddress, message: impl IntoMessage) -> T {
    sys.tell(to, message).expect("sent");
    next::<T>(sys)
}

/// The next message of type `T` to `sys`'s endpoint (others are skipped), within [`WAIT`].
fn next<T: Message + Clone>(sys: &ActorSystem) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {} within {WAIT:?}",
            std::any::type_name::<T>()
        );
        if let Some(envelope) = sys.listen(left).expect("listen") {
            if let Ok(message) = envelope.get::<T>() {
                return message.clone();
            }
        }
    }
}

/// The Admin Port in a change's capabilities.
fn port_of(change: &Change) -> u16 {
    change
        .capabilities
        .get_int(keys::ADMIN_PORT)
        .ok()
        .flatten()
        .expect("an Admin Port") as u16
}

/// Checks `done` after each status round trip with `member` until it holds, within [`WAIT`].
fn eventually(member: &Member, what: &str, mut done: impl FnMut(&Member) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(member) {
        assert!(
            Instant::now() < deadline,
            "not within {WAIT:?}: {what}; convention: {:#?}",
            member.status().convention
        );
        // A status request is the round trip that paces the loop.
        let _ = member.status();
    }
}

/// Where a [`Morse`] or [`Painter`] at `actor` lives.
fn lives_at(sys: &ActorSystem, actor: &ActorAddress) -> u16 {
    ask::<LivesAt>(sys, actor, WhereAreYou).0 as u16
}

// ---------------------------------------------------------------------------------------------
// Scenarios, run on both bases

fn members_join_and_leave_with_one_notice_each(base: SystemBase) {
    let leader = start(base, &[], &[]);
    let (watching, _watcher) = leader.watch();
    let member = start(base, &[leader.port], &[("Morse", true.into())]);
    let joined = next::<Change>(&watching);
    assert!(joined.added, "{joined:?}");
    assert_eq!(port_of(&joined), member.port);
    assert!(joined.capabilities.is_truthy("Morse"));
    // The member sees the leader too.
    eventually(&member, "the member knows its leader", |m| {
        m.leader_port() == Some(leader.port)
    });
    member.sys.shutdown().expect("member shutdown");
    let left = next::<Change>(&watching);
    assert!(!left.added, "{left:?}");
    assert_eq!(port_of(&left), member.port);
    assert_eq!(left.admin, joined.admin);
    eventually(&leader, "the leader forgot the member", |l| {
        l.known_ports().is_empty()
    });
}

fn a_restarted_member_registers_again(base: SystemBase) {
    let leader = start(base, &[], &[]);
    let (watching, _watcher) = leader.watch();
    let port = admin_port();
    let first = start_on(base, port, &[leader.port], &[]);
    let joined = next::<Change>(&watching);
    assert!(joined.added);
    first.sys.shutdown().expect("shutdown");
    drop(first);
    assert!(!next::<Change>(&watching).added);
    let _second = start_on(base, port, &[leader.port], &[]);
    let rejoined = next::<Change>(&watching);
    assert!(rejoined.added);
    assert_eq!(port_of(&rejoined), port);
    // Another incarnation: another admin address.
    assert_ne!(rejoined.admin, joined.admin);
}

fn members_see_the_leader_leave_and_come_back(base: SystemBase) {
    let port = admin_port();
    let leader = start_on(base, port, &[], &[]);
    let member = start(base, &[port], &[]);
    let (watching, _watcher) = member.watch();
    let found = next::<Change>(&watching);
    assert!(found.added);
    assert_eq!(port_of(&found), port);
    leader.sys.shutdown().expect("leader shutdown");
    drop(leader);
    let lost = next::<Change>(&watching);
    assert!(!lost.added);
    let _again = start_on(base, port, &[], &[]);
    let back = next::<Change>(&watching);
    assert!(back.added, "the member registers with the restarted leader");
    assert_eq!(port_of(&back), port);
}

fn pre_registration_invites_and_de_registration_drops(base: SystemBase) {
    let leader = start(base, &[], &[]);
    let remote = start(base, &[], &[("Morse", true.into())]);
    let (watching, watcher) = leader.watch();
    let moo = Capabilities::new().with("moo", true);
    let done = ask::<Done>(&watching, &watcher, PreRegister(remote.at(), moo));
    assert_eq!(done, Done(Ok(())));
    let joined = next::<Change>(&watching);
    assert!(joined.added);
    assert_eq!(port_of(&joined), remote.port);
    // The remote's real capabilities replace the pre-registered ones.
    assert!(joined.capabilities.is_truthy("Morse"));
    assert!(!joined.capabilities.contains("moo"));
    // The invited system treats the inviter as its leader.
    eventually(&remote, "the invited system follows the inviter", |r| {
        r.leader_port() == Some(leader.port)
    });
    // A name that is no system changes nothing.
    let done = ask::<Done>(
        &watching,
        &watcher,
        DeRegisterByText("RegisterNOT 10.101.10:9999".into()),
    );
    assert_eq!(done, Done(Ok(())));
    let done = ask::<Done>(&watching, &watcher, DeRegisterByAdmin(joined.admin.clone()));
    assert_eq!(done, Done(Ok(())));
    let left = next::<Change>(&watching);
    assert!(!left.added);
    assert_eq!(left.admin, joined.admin);
}

fn a_create_lands_on_the_member_with_the_capability(base: SystemBase) {
    let leader = start(base, &[], &[]);
    let plain = start(base, &[leader.port], &[]);
    let morse = start(base, &[leader.port], &[("Morse", true.into())]);
    eventually(&leader, "both members registered", |l| {
        l.known_ports().len() == 2
    });
    let actor = leader
        .sys
        .create_actor::<Morse>()
        .expect("placed on a member");
    assert_eq!(lives_at(&leader.sys, &actor), morse.port);
    // The status lists the convention and how many actors were placed where.
    let status = leader.status().convention.expect("a convention listing");
    let placed: BTreeMap<u16, u64> = status
        .members
        .iter()
        .map(|m| {
            let port = m.capabilities.get_int(keys::ADMIN_PORT).ok().flatten();
            (port.unwrap_or(0) as u16, m.actors_placed)
        })
        .collect();
    assert_eq!(placed.get(&morse.port), Some(&1));
    assert_eq!(placed.get(&plain.port), Some(&0));
    // Nobody has Paint: the error names the type and what each system lacked.
    match leader.sys.create_actor::<Painter>() {
        Err(ThespianError::NoCompatibleSystem { actor_type, unmet }) => {
            assert!(actor_type.contains("Painter"), "{actor_type}");
            let text = unmet.join("\n");
            assert!(text.contains(&plain.port.to_string()), "{text}");
            assert!(text.contains(&morse.port.to_string()), "{text}");
        }
        other => panic!("expected NoCompatibleSystem, got {other:?}"),
    }
}

fn creates_spread_over_eligible_members(base: SystemBase) {
    let leader = start(base, &[], &[]);
    let first = start(base, &[leader.port], &[("Paint", true.into())]);
    let second = start(base, &[leader.port], &[("Paint", true.into())]);
    eventually(&leader, "both members registered", |l| {
        l.known_ports().len() == 2
    });
    let mut placed: BTreeMap<u16, usize> = BTreeMap::new();
    for _ in 0..20 {
        let actor = leader.sys.create_actor::<Painter>().expect("placed");
        *placed.entry(lives_at(&leader.sys, &actor)).or_default() += 1;
    }
    assert_eq!(placed.get(&first.port), Some(&10), "{placed:?}");
    assert_eq!(placed.get(&second.port), Some(&10), "{placed:?}");
}

fn a_member_creates_on_another_member_through_the_leader(base: SystemBase) {
    let leader = start(base, &[], &[]);
    let plain = start(base, &[leader.port], &[]);
    let morse = start(base, &[leader.port], &[("Morse", true.into())]);
    eventually(&leader, "both members registered", |l| {
        l.known_ports().len() == 2
    });
    eventually(&plain, "the plain member knows its leader", |p| {
        p.leader_port() == Some(leader.port)
    });
    let creator = plain.sys.create_actor::<Creator>().expect("a creator");
    let CreatedChild(child) = ask::<CreatedChild>(&plain.sys, &creator, CreateMorse);
    let child = child.expect("placed through the leader");
    assert_eq!(lives_at(&plain.sys, &child), morse.port);
}

fn the_requester_hears_of_a_remote_exit_and_of_the_remote_shutdown(base: SystemBase) {
    let leader = start(base, &[], &[]);
    let morse = start(base, &[leader.port], &[("Morse", true.into())]);
    eventually(&leader, "the member registered", |l| {
        l.known_ports().len() == 1
    });
    let creator = leader.sys.create_actor::<Creator>().expect("a creator");
    let CreatedChild(child) = ask::<CreatedChild>(&leader.sys, &creator, CreateMorse);
    let child = child.expect("placed on the member");
    leader
        .sys
        .tell(&child, ActorExitRequest::new())
        .expect("exit request sent");
    assert_eq!(next::<ChildGone>(&leader.sys), ChildGone(child));
    let CreatedChild(second) = ask::<CreatedChild>(&leader.sys, &creator, CreateMorse);
    let second = second.expect("placed on the member");
    morse.sys.shutdown().expect("member shutdown");
    assert_eq!(next::<ChildGone>(&leader.sys), ChildGone(second));
}

fn the_next_leader_takes_over(base: SystemBase) {
    let first_port = admin_port();
    let second_port = admin_port();
    let leaders = [first_port, second_port];
    let first = start_on(base, first_port, &leaders, &[]);
    let second = start_on(base, second_port, &leaders, &[]);
    let member = start(base, &leaders, &[("Morse", true.into())]);
    eventually(&member, "the first candidate leads", |m| {
        m.leader_port() == Some(first_port)
    });
    eventually(&first, "the first knows the others", |f| {
        f.known_ports().len() == 2
    });
    first.sys.shutdown().expect("first leader shutdown");
    drop(first);
    eventually(&member, "the second candidate leads", |m| {
        m.leader_port() == Some(second_port)
    });
    eventually(&second, "the second leads itself", |s| {
        s.leader_port().is_none()
    });
    let actor = second
        .sys
        .create_actor::<Morse>()
        .expect("placed by the new leader");
    assert_eq!(lives_at(&second.sys, &actor), member.port);
}

fn ten_systems_converge(base: SystemBase) {
    let leader = start(base, &[], &[]);
    let (watching, _watcher) = leader.watch();
    let members: Vec<Member> = (0..9).map(|_| start(base, &[leader.port], &[])).collect();
    let mut joined: Vec<u16> = (0..9)
        .map(|_| next::<Change>(&watching))
        .map(|c| {
            assert!(c.added, "{c:?}");
            port_of(&c)
        })
        .collect();
    joined.sort_unstable();
    let mut ports: Vec<u16> = members.iter().map(|m| m.port).collect();
    ports.sort_unstable();
    assert_eq!(joined, ports, "one notice per member");
    for member in &members {
        eventually(member, "every member knows the leader", |m| {
            m.leader_port() == Some(leader.port)
        });
    }
}

fn capabilities_added_at_run_time_let_members_host_more(base: SystemBase) {
    let leader = start(base, &[], &[]);
    let first = start(base, &[leader.port], &[]);
    let second = start(base, &[leader.port], &[]);
    eventually(&leader, "both members registered", |l| {
        l.known_ports().len() == 2
    });
    match leader.sys.create_actor::<Morse>() {
        Err(ThespianError::NoCompatibleSystem { .. }) => {}
        other => panic!("nobody has Morse yet, got {other:?}"),
    }
    // The second member gains Morse: its leader hears of it, and creates follow.
    second
        .sys
        .update_capability("Morse", Some(true.into()))
        .expect("update");
    eventually(&leader, "the leader knows the new capability", |l| {
        l.status()
            .convention
            .is_some_and(|c| c.members.iter().any(|m| m.capabilities.is_truthy("Morse")))
    });
    let actor = leader.sys.create_actor::<Morse>().expect("placed");
    assert_eq!(lives_at(&leader.sys, &actor), second.port);
    // An actor of the first member creates on the second through the leader, too.
    let creator = first.sys.create_actor::<Creator>().expect("a creator");
    let CreatedChild(child) = ask::<CreatedChild>(&first.sys, &creator, CreateMorse);
    let child = child.expect("placed through the leader");
    assert_eq!(lives_at(&first.sys, &child), second.port);
    // Removing it again on the second member ends the actors that need it there.
    second.sys.update_capability("Morse", None).expect("update");
    assert_eq!(next::<ChildGone>(&first.sys), ChildGone(child));
}

// ---------------------------------------------------------------------------------------------
// Central logging: a program of its own, since the admins' log sink is a file named by the
// environment of the program that starts them.

/// Tells [`central_logging_program`] the leader's and the member's Admin Ports.
const LOGGING_PORTS_ENV: &str = "CONVENTIONS_TEST_LOGGING_PORTS";

/// Run by [`a_members_warnings_reach_the_leaders_log`] as a program of its own (a no-op in a
/// normal test run): a leader and a member, both logging warnings; an actor on the member
/// grumbles, then the member leaves and the leader shuts down.
#[test]
fn central_logging_program() {
    let Ok(ports) = std::env::var(LOGGING_PORTS_ENV) else {
        return;
    };
    let (leader_port, member_port) = ports.split_once(',').expect("two ports");
    let leader_port: u16 = leader_port.parse().expect("a port");
    let member_port: u16 = member_port.parse().expect("a port");
    let start_logging = |port: u16, leaders: &[u16]| {
        let mut builder = ActorSystem::builder()
            .base(SystemBase::Tcp)
            .transient_unique(true)
            .log(LogConfig::Filter("warn".into()))
            .capability(keys::ADMIN_PORT, i64::from(port))
            .capability(keys::CONVENTION_REREGISTRATION_PERIOD, PERIOD)
            .advertise_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .test_entry_point();
        if let [leader] = leaders {
            builder =
                builder.capability(keys::CONVENTION_ADDRESS_IPV4, format!("127.0.0.1:{leader}"));
        }
        Member {
            sys: builder.start().expect("the system starts"),
            port,
        }
    };
    let leader = start_logging(leader_port, &[]);
    let (watching, _watcher) = leader.watch();
    let member = start_logging(member_port, &[leader_port]);
    assert!(next::<Change>(&watching).added);
    eventually(&member, "the member knows its leader", |m| {
        m.leader_port() == Some(leader_port)
    });
    let grumbler = member.sys.create_actor::<Grumbler>().expect("a grumbler");
    let marker = format!("marker-{member_port}");
    assert_eq!(ask::<Done>(&member.sys, &grumbler, marker), Done(Ok(())));
    // The member's last words travel before its de-registration, on the same connection:
    // once the leader saw it leave, the warning is in the leader's log.
    member.sys.shutdown().expect("member shutdown");
    assert!(!next::<Change>(&watching).added);
    leader.sys.shutdown().expect("leader shutdown");
}

#[test]
fn a_members_warnings_reach_the_leaders_log() {
    let leader_port = admin_port();
    let member_port = admin_port();
    let log_file = std::env::temp_dir().join(format!(
        "thespian-conventions-log-{}-{member_port}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log_file);
    let mut child = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "central_logging_program",
            "--exact",
            "--nocapture",
            "--quiet",
            "--test-threads=1",
        ])
        .env(LOGGING_PORTS_ENV, format!("{leader_port},{member_port}"))
        .env("THESPLOG_FILE", &log_file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the logging program runs");
    let mut stderr = child.stderr.take().expect("piped");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        let _ = done_tx.send(());
        text
    });
    // The program's stderr closes when it ends (its daemons never hold it).
    let ended = done_rx.recv_timeout(Duration::from_secs(90)).is_ok();
    if !ended {
        let _ = child.kill();
    }
    let status = child.wait().expect("reaped");
    let err = reader.join().expect("reader");
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    let _ = std::fs::remove_file(&log_file);
    assert!(
        ended && status.success(),
        "the logging program failed: {status}\n{err}"
    );
    let member = format!("[127.0.0.1:{member_port}]");
    let marker = format!("grumbles marker-{member_port}");
    let line = log
        .lines()
        .find(|l| l.contains(&member) && l.contains(&marker))
        .unwrap_or_else(|| panic!("the member's warning is not in the leader's log:\n{log}"));
    assert!(line.contains("WARN"), "logged at its level: {line}");
}

macro_rules! on_both_bases {
    ($($scenario:ident),* $(,)?) => {
        mod tcp {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(thespian::SystemBase::Tcp);
                }
            )*
        }
        mod udp {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(thespian::SystemBase::Udp);
                }
            )*
        }
    };
}

on_both_bases!(
    members_join_and_leave_with_one_notice_each,
    a_restarted_member_registers_again,
    members_see_the_leader_leave_and_come_back,
    pre_registration_invites_and_de_registration_drops,
    a_create_lands_on_the_member_with_the_capability,
    creates_spread_over_eligible_members,
    a_member_creates_on_another_member_through_the_leader,
    the_requester_hears_of_a_remote_exit_and_of_the_remote_shutdown,
    the_next_leader_takes_over,
    ten_systems_converge,
    capabilities_added_at_run_time_let_members_host_more,
);
