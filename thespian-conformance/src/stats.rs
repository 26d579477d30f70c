//! Thespian's `test_stats.py`: a `StatusRequest` to an actor is answered by the framework with
//! an `ActorStatus` (0, 1, 2 children; an exited child disappears; pending wakeups; no pending
//! messages); to the system's admin with a `SystemStatus`.

use std::time::Duration;

use thespian::prelude::*;
use thespian::{StatusRequest, SystemStatus};

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

// The types a multi-process system creates here, by name.
thespian::register_actors!(Napper, Parent<Echo>);
