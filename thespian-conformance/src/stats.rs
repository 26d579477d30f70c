//! Thespian's `test_stats.py`: a `StatusRequest` to an actor is answered by the framework with
//! an `ActorStatus` (0, 1, 2 children; an exited child disappears; pending wakeups; no pending
//! messages); to the system's admin with a `SystemStatus`, whose counts of pending and poison
//! messages follow what happens in the system.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use thespian::prelude::*;
use thespian::{PoisonMessage, StatusRequest, SystemBase, SystemStatus};

use crate::bases::TestBase;
use crate::helpers::{
    ask, ask_until, expect_child_gone, spawn, start, status, Echo, Parent, Spawn,
};

/// `nap` schedules a 10 s wakeup; `handle dead letters` registers it as the handler.
#[derive(Default)]
struct Napper;

impl Actor for Napper {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        match env.get::<String>().map(String::as_str) {
            Ok("nap") => {
                ctx.wakeup_after(Duration::from_secs(10));
                ctx.send(env.sender(), "napping")?;
            }
            Ok("handle dead letters") => {
                ctx.handle_dead_letters(true);
                ctx.send(env.sender(), "handling")?;
            }
            _ => {}
        }
        Ok(())
    }
}

pub(crate) fn actor_status_children_and_wakeups(base: TestBase) {
    let sys = start(base);
    let parent = sys.create_actor::<Parent<Echo>>().expect("create");
    let s = status(&sys, &parent);
    assert_eq!(s.actor_address, parent);
    assert_eq!(s.actor_type, <Parent<Echo> as Actor>::type_name());
    assert_eq!(s.admin_address, sys.admin_address());
    assert_eq!(
        s.parent_address,
        sys.admin_address(),
        "top-level: the admin"
    );
    assert_eq!(s.global_name, None);
    assert!(!s.exiting);
    assert!(s.child_actors.is_empty());
    assert_eq!(s.pending_messages, 0);
    assert!(s.pending_wakeups.is_empty());

    let first = spawn(&sys, &parent, Spawn::child());
    assert_eq!(status(&sys, &parent).child_actors, vec![first.clone()]);
    let second = spawn(&sys, &parent, Spawn::child());
    let mut children = status(&sys, &parent).child_actors;
    children.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(children, expected);
    assert_eq!(status(&sys, &first).parent_address, parent);

    sys.tell(&first, ActorExitRequest::new()).expect("tell");
    expect_child_gone(&sys, &parent, &first);
    let s = status(&sys, &parent);
    assert_eq!(s.child_actors, vec![second], "the exited child disappears");
    assert_eq!(
        s.received_messages, 3,
        "two spawns and one ChildActorExited"
    );
    assert_eq!(s.pending_messages, 0);

    let napper = sys.create_actor::<Napper>().expect("create");
    assert_eq!(ask::<String>(&sys, &napper, "nap"), "napping");
    assert_eq!(
        status(&sys, &napper).pending_wakeups,
        vec![Duration::from_secs(10)]
    );
    assert_eq!(ask::<String>(&sys, &napper, "nap"), "napping");
    assert_eq!(status(&sys, &napper).pending_wakeups.len(), 2);
}

pub(crate) fn system_status_from_admin(base: TestBase) {
    let sys = start(base);
    let admin = sys.admin_address();
    let initial: SystemStatus = ask(&sys, &admin, StatusRequest);
    assert_eq!(initial.admin_address, admin);
    assert_eq!(initial.capabilities, sys.capabilities());
    assert!(!initial.in_shutdown);
    assert_eq!(initial.dead_letter_handler, None);
    assert!(initial.child_actors.is_empty());
    assert_eq!(initial.live_actors, 0);

    let parent = sys.create_actor::<Parent<Echo>>().expect("create");
    let child = spawn(&sys, &parent, Spawn::child());
    let named = sys
        .create_actor_with::<Echo>(CreateOptions::new().global_name("the named one"))
        .expect("create");
    let napper = sys.create_actor::<Napper>().expect("create");
    assert_eq!(
        ask::<String>(&sys, &napper, "handle dead letters"),
        "handling"
    );

    let now: SystemStatus = ask(&sys, &admin, StatusRequest);
    let mut top_level = vec![parent.clone(), named.clone(), napper.clone()];
    top_level.sort();
    let mut reported = now.child_actors.clone();
    reported.sort();
    assert_eq!(reported, top_level, "top-level actors only");
    assert!(!now.child_actors.contains(&child));
    assert_eq!(now.live_actors, 4);
    assert_eq!(
        now.global_actors,
        vec![("the named one".to_owned(), named.clone())]
    );
    assert_eq!(now.dead_letter_handler, Some(napper));

    // The actor list, the base, the processes: what an operator's tool shows.
    let base_name = sys
        .capabilities()
        .get(thespian::keys::ACTOR_SYSTEM_NAME)
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("the base's name");
    assert_eq!(now.base, base_name);
    assert_eq!(now.actors.len(), 4);
    let entry = |a: &ActorAddress| {
        now.actors
            .iter()
            .find(|s| &s.address == a)
            .unwrap_or_else(|| panic!("{a} is not in the actor list"))
    };
    assert_eq!(entry(&child).parent, parent);
    assert_eq!(entry(&child).actor_type, <Echo as Actor>::type_name());
    assert_eq!(entry(&named).global_name.as_deref(), Some("the named one"));
    assert_eq!(entry(&parent).parent, admin);
    let multi_process = base_name.starts_with("multiproc") && base_name != "multiprocQueueBase";
    assert!(now.actors.iter().all(|a| a.pid.is_some() == multi_process));
    assert!(now.processes >= 1);
    if !multi_process {
        assert_eq!(now.processes, 1);
    }

    // Dead letters are counted: a message to an actor that has exited.
    let before = now.dead_letters;
    let gone = sys.create_actor::<Echo>().expect("create");
    sys.tell(&gone, ActorExitRequest::new()).expect("tell");
    ask_until::<SystemStatus>(&sys, &admin, StatusRequest, |s| {
        s.actors.iter().all(|a| a.address != gone)
    });
    sys.tell(&gone, "anyone there?").expect("tell");
    let after = ask_until::<SystemStatus>(&sys, &admin, StatusRequest, |s| s.dead_letters > before);
    assert_eq!(after.actors.len(), 4);
}

/// Answers `"ok"`; fails on anything else (twice, so the sender gets a `PoisonMessage`).
#[derive(Default)]
struct Grump;

impl Actor for Grump {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        match env.get::<String>().map(String::as_str) {
            Ok("ok") => {
                ctx.send(env.sender(), "ok")?;
                Ok(())
            }
            _ => Err("grumpy".into()),
        }
    }
}

/// How long a [`Gatekeeper`] (and the test waiting for it) waits at most.
const GATE_LIMIT: Duration = Duration::from_secs(10);

/// The gate a [`Gatekeeper`] waits at: (entered, open). One scenario uses it, on the Queue base
/// only, so one gate per test process is enough.
static GATE: (Mutex<(bool, bool)>, Condvar) = (Mutex::new((false, false)), Condvar::new());

/// On `"hold"`, says it has entered and blocks its worker until the test opens the gate (at
/// most [`GATE_LIMIT`]): the messages sent to it meanwhile wait in its mailbox.
#[derive(Default)]
struct Gatekeeper;

impl Actor for Gatekeeper {
    fn receive(&mut self, env: &Envelope, _ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().map(String::as_str) == Ok("hold") {
            let (lock, changed) = &GATE;
            let mut gate = lock.lock().unwrap_or_else(|e| e.into_inner());
            gate.0 = true;
            changed.notify_all();
            let deadline = Instant::now() + GATE_LIMIT;
            while !gate.1 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                gate = changed
                    .wait_timeout(gate, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        Ok(())
    }
}

/// Waits (at most [`GATE_LIMIT`]) until a [`Gatekeeper`] holds its worker; true if it does.
fn gate_entered() -> bool {
    let (lock, changed) = &GATE;
    let gate = lock.lock().unwrap_or_else(|e| e.into_inner());
    let (gate, _) = changed
        .wait_timeout_while(gate, GATE_LIMIT, |g| !g.0)
        .unwrap_or_else(|e| e.into_inner());
    gate.0
}

/// Opens the gate: the [`Gatekeeper`] returns.
fn open_gate() {
    let (lock, changed) = &GATE;
    lock.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
    changed.notify_all();
}

pub(crate) fn system_status_counts_pending_and_poison(base: TestBase) {
    let sys = start(base);
    let admin = sys.admin_address();
    // Every built-in base counts: the in-process ones sum their mailboxes, the multi-process
    // admins ask each actor's node (the actors exist here, so the round is not empty).
    let built_in = !base.is_custom();
    let idle: SystemStatus = ask(&sys, &admin, StatusRequest);
    assert_eq!(idle.poison_messages, 0, "nothing poisoned yet");
    if built_in {
        assert_eq!(
            idle.pending_messages,
            Some(0),
            "an idle system has nothing pending"
        );
    }

    // A message that fails twice comes back as poison: the count rises by exactly one.
    let grump = sys.create_actor::<Grump>().expect("create");
    let reply = sys
        .ask(&grump, "boom", crate::helpers::REPLY_TIMEOUT)
        .expect("ask")
        .expect("a reply");
    assert!(reply.payload().has_type::<PoisonMessage>(), "{reply:?}");
    let after = ask_until::<SystemStatus>(&sys, &admin, StatusRequest, |s| s.poison_messages > 0);
    assert_eq!(after.poison_messages, 1);
    // Handled messages do not count, and nothing is counted twice.
    assert_eq!(ask::<String>(&sys, &grump, "ok"), "ok");
    let later: SystemStatus = ask(&sys, &admin, StatusRequest);
    assert_eq!(later.poison_messages, 1);
    if built_in {
        assert_eq!(
            later.pending_messages,
            Some(0),
            "an idle actor has nothing pending"
        );
    }

    // Messages queued behind a blocked actor are pending, where a worker can block while the
    // admin still answers: the Queue base.
    if !base.is_custom() && base.base() == SystemBase::Queue {
        let keeper = sys.create_actor::<Gatekeeper>().expect("create");
        sys.tell(&keeper, "hold").expect("tell");
        assert!(gate_entered(), "the gatekeeper never started holding");
        for _ in 0..3 {
            sys.tell(&keeper, "wait").expect("tell");
        }
        let held: SystemStatus = ask(&sys, &admin, StatusRequest);
        open_gate();
        assert_eq!(
            held.pending_messages,
            Some(3),
            "three messages behind the blocked one"
        );
        ask_until::<SystemStatus>(&sys, &admin, StatusRequest, |s| {
            s.pending_messages == Some(0)
        });
    }
}

pub(crate) fn actor_status_keeps_last_activity(base: TestBase) {
    let sys = start(base);
    let grump = sys.create_actor::<Grump>().expect("create");
    let fresh = status(&sys, &grump);
    assert_eq!(fresh.idle_for, None, "no message handled yet: {fresh:?}");
    assert_eq!(ask::<String>(&sys, &grump, "ok"), "ok");
    let active = status(&sys, &grump);
    if !base.is_custom() {
        let idle = active
            .idle_for
            .expect("every built-in base keeps the last activity");
        assert!(idle < crate::helpers::REPLY_TIMEOUT * 2, "{idle:?}");
    }
    assert_eq!(
        active.received_messages, 1,
        "status requests are not activity"
    );
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Napper, Parent<Echo>, Grump, Gatekeeper);
