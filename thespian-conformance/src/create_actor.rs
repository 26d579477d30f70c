//! Thespian's `test_createActor.py`: creating by (registered) name, an unknown name being an
//! invalid specification, children created by actors, and 100 child creations answered.
//! (Rust has no import step, so Thespian's `ImportError` case has no equivalent.)

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::ThespianError;

use crate::bases::TestBase;
use crate::helpers::{
    ask, ask_env, builder, listen_env, listen_none, spawn, start, start_with, Addrs, ChildrenQuery,
    Echo, Parent, Spawn,
};

pub(crate) fn unknown_registered_name_is_invalid_specification(base: TestBase) {
    let sys = start_with(builder(base).register::<Echo>());
    // Unknown names, and a real actor type that was not registered.
    for name in [
        "no.such.Actor",
        "BarActor",
        <Parent<Echo> as Actor>::type_name(),
    ] {
        match sys.create_actor_named(name, CreateOptions::new()) {
            Err(ThespianError::InvalidActorSpecification { spec, .. }) => assert_eq!(spec, name),
            other => panic!(
                "creating unregistered {name:?}: expected InvalidActorSpecification, got {other:?}"
            ),
        }
    }
}

pub(crate) fn registered_name_creates_the_actor(base: TestBase) {
    let sys = start_with(builder(base).register::<Echo>());
    let name = <Echo as Actor>::type_name();
    assert!(sys.registered_types().contains(&name));
    let echo = sys
        .create_actor_named(name, CreateOptions::new())
        .expect("a registered type is created by name");
    assert_eq!(ask::<String>(&sys, &echo, "by name"), "by name");
    let other = sys
        .create_actor_named(name, CreateOptions::new())
        .expect("create again");
    assert_ne!(echo, other, "each create by name makes a new actor");
}

pub(crate) fn children_created_by_actors(base: TestBase) {
    let sys = start(base);
    let parent = sys.create_actor::<Parent<Echo>>().expect("create");
    let children: Vec<ActorAddress> = (0..3)
        .map(|_| spawn(&sys, &parent, Spawn::child()))
        .collect();
    let unique: HashSet<&ActorAddress> = children.iter().collect();
    assert_eq!(unique.len(), 3);
    assert!(!unique.contains(&parent));
    for (i, child) in children.iter().enumerate() {
        let reply = ask_env(&sys, child, format!("child {i}"));
        assert_eq!(reply.sender(), child);
        assert_eq!(reply.reply_as::<String>().unwrap(), format!("child {i}"));
    }
    let mut listed = ask::<Addrs>(&sys, &parent, ChildrenQuery).0;
    listed.sort();
    let mut expected = children.clone();
    expected.sort();
    assert_eq!(listed, expected);
}

/// Asks a [`Spawner`] to create `count` children, each answering `reply_to` with its index.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SpawnAndGreet {
    count: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Greet {
    index: u32,
    reply_to: ActorAddress,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Greeted(u32);

message!(
    SpawnAndGreet = "conformance.create.SpawnAndGreet",
    Greet = "conformance.create.Greet",
    Greeted = "conformance.create.Greeted",
);

#[derive(Default)]
struct Spawner;

impl Actor for Spawner {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(spawn) = env.get::<SpawnAndGreet>() {
            for index in 0..spawn.count {
                let child = ctx.create_actor::<GreetedChild>()?;
                let greet = Greet {
                    index,
                    reply_to: env.sender().clone(),
                };
                ctx.send(&child, greet)?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct GreetedChild;

impl Actor for GreetedChild {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(greet) = env.get::<Greet>() {
            ctx.send(&greet.reply_to, Greeted(greet.index))?;
        }
        Ok(())
    }
}

pub(crate) fn hundred_child_creations_are_answered(base: TestBase) {
    let sys = start(base);
    let spawner = sys.create_actor::<Spawner>().expect("create");
    let mut envelopes = vec![ask_env(&sys, &spawner, SpawnAndGreet { count: 100 })];
    for _ in 1..100 {
        envelopes.push(listen_env(&sys));
    }
    let senders: HashSet<ActorAddress> = envelopes.iter().map(|e| e.sender().clone()).collect();
    assert_eq!(senders.len(), 100, "100 distinct children answered");
    assert!(!senders.contains(&spawner));
    let indices: HashSet<u32> = envelopes
        .into_iter()
        .map(|e| e.reply_as::<Greeted>().unwrap().0)
        .collect();
    assert_eq!(indices, (0..100).collect());
    listen_none(&sys);
}

/// Never registered with `register_actors!`: the multi-process bases cannot create it.
#[derive(Default)]
struct Unlisted;

impl Actor for Unlisted {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
}

/// On any message, tries to create an [`Unlisted`] child and answers `"created"` or the
/// error's text.
#[derive(Default)]
struct UnlistedParent;

impl Actor for UnlistedParent {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.payload().is_system() {
            return Ok(());
        }
        let outcome = match ctx.create_actor::<Unlisted>() {
            Ok(_) => "created".to_owned(),
            Err(e) => e.to_string(),
        };
        ctx.send(env.sender(), outcome)?;
        Ok(())
    }
}

pub(crate) fn unregistered_type_is_refused_by_multi_process_bases(base: TestBase) {
    let sys = start(base);
    let parent = sys.create_actor::<UnlistedParent>().expect("create");
    let from_actor = ask::<String>(&sys, &parent, "make one");
    let from_outside = sys.create_actor::<Unlisted>();
    if !base.is_multi_process() {
        // In-process bases never cross a process: no registration is needed.
        assert_eq!(from_actor, "created");
        assert!(from_outside.is_ok(), "{from_outside:?}");
        return;
    }
    let name = <Unlisted as Actor>::type_name();
    match from_outside {
        Err(ThespianError::InvalidActorSpecification { spec, reason }) => {
            assert_eq!(spec, name);
            let program = std::env::current_exe().expect("the test binary");
            let program = program.file_name().expect("a file name").to_string_lossy();
            assert!(reason.contains(program.as_ref()), "{reason}");
            assert!(
                reason.contains("register it with thespian::register_actors!"),
                "{reason}"
            );
        }
        other => panic!("expected InvalidActorSpecification, got {other:?}"),
    }
    assert!(
        from_actor.contains("Invalid Actor Specification") && from_actor.contains(name),
        "ctx.create_actor of an unregistered type answered {from_actor:?}"
    );
    assert!(from_actor.contains("register_actors!"), "{from_actor}");
    listen_none(&sys);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Spawner, GreetedChild, Parent<Echo>, UnlistedParent);
