//! Thespian's `test_actorFailures.py`: actors that fail to start (top-level and as children),
//! parents restarting failed children, deep trees losing a level, poison returned while the
//! actor keeps its identity and state, and exit handlers that fail ("confused exit").
//! (`sys.exit()` inside an actor has no Rust equivalent: a panic is caught like an error.)

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{NewActor, Requirements, StatusRequest, SystemStatus, ThespianError};

use crate::bases::TestBase;
use crate::helpers::{
    ask, ask_env, ask_until, assert_alive, assert_gone, expect_child_gone, listen, listen_env,
    listen_none, spawn, start, ChildGone, Echo, Parent, Spawn,
};

/// An actor whose constructor always fails.
struct FailingCtor;

impl Actor for FailingCtor {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
}

impl NewActor for FailingCtor {
    fn new_actor(_: &Capabilities, _: &Requirements) -> Result<Self, thespian::ActorError> {
        Err("I refuse to start".into())
    }
}

/// An actor whose constructor panics.
struct PanickingCtor;

impl Actor for PanickingCtor {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
}

impl NewActor for PanickingCtor {
    fn new_actor(_: &Capabilities, _: &Requirements) -> Result<Self, thespian::ActorError> {
        panic!("constructor exploded")
    }
}

pub(crate) fn constructor_failure_fails_top_level_create(base: TestBase) {
    let sys = start(base);
    match sys.create_actor::<FailingCtor>() {
        Err(ThespianError::ActorCreationFailed { actor_type, reason }) => {
            assert_eq!(actor_type, <FailingCtor as Actor>::type_name());
            assert!(reason.contains("I refuse to start"), "{reason}");
        }
        other => panic!("expected ActorCreationFailed, got {other:?}"),
    }
    // The system is unharmed.
    let echo = sys.create_actor::<Echo>().expect("create");
    assert_eq!(ask::<String>(&sys, &echo, "still here"), "still here");
}

pub(crate) fn constructor_panic_fails_top_level_create(base: TestBase) {
    let sys = start(base);
    match sys.create_actor::<PanickingCtor>() {
        Err(ThespianError::ActorCreationFailed { actor_type, reason }) => {
            assert_eq!(actor_type, <PanickingCtor as Actor>::type_name());
            assert!(reason.contains("constructor exploded"), "{reason}");
        }
        other => panic!("expected ActorCreationFailed, got {other:?}"),
    }
    let echo = sys.create_actor::<Echo>().expect("create");
    assert_eq!(ask::<String>(&sys, &echo, "still here"), "still here");
}

/// What a [`Nursery`] saw come back from its failed child.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Aborted {
    from: ActorAddress,
    message: String,
    details: String,
}

/// The restarts a [`Restarter`] made before giving up, and every child it created.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct GaveUp {
    restarts: u32,
    children: Vec<ActorAddress>,
}

message!(
    Aborted = "conformance.failures.Aborted",
    GaveUp = "conformance.failures.GaveUp",
);

/// On `start`: creates a child that fails to start, sends it `hello`, and replies with its
/// address; reports the child's exit (`ChildGone`) and the returned poison (`Aborted`).
#[derive(Default)]
struct Nursery {
    reporter: Option<ActorAddress>,
}

impl Actor for Nursery {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "start") {
            self.reporter = Some(env.sender().clone());
            let child = ctx.create_actor::<FailingCtor>()?;
            ctx.send(&child, "hello")?;
            ctx.send(env.sender(), child)?;
        } else if let Ok(exited) = env.get::<ChildActorExited>() {
            let gone = ChildGone {
                parent: ctx.my_address().clone(),
                child: exited.child_address.clone(),
            };
            ctx.send(self.reporter.as_ref().ok_or("no reporter")?, gone)?;
        } else if let Ok(poison) = env.get::<PoisonMessage>() {
            let aborted = Aborted {
                from: env.sender().clone(),
                message: poison.poison_message.get::<String>()?.clone(),
                details: poison.details.clone(),
            };
            ctx.send(self.reporter.as_ref().ok_or("no reporter")?, aborted)?;
        }
        Ok(())
    }
}

pub(crate) fn child_constructor_failure_notifies_parent_and_aborts_messages(base: TestBase) {
    let sys = start(base);
    let nursery = sys.create_actor::<Nursery>().expect("create");
    let child = ask::<ActorAddress>(&sys, &nursery, "start");
    // The parent hears of the failed child, and gets its message back as "Child Aborted".
    let mut gone = None;
    let mut aborted = None;
    for _ in 0..2 {
        let env = listen_env(&sys);
        if env.is::<ChildGone>() {
            gone = Some(env.reply_as::<ChildGone>().unwrap());
        } else {
            aborted = Some(env.reply_as::<Aborted>().unwrap());
        }
    }
    let gone = gone.expect("ChildActorExited reached the parent");
    assert_eq!(gone.parent, nursery);
    assert_eq!(gone.child, child);
    let aborted = aborted.expect("the message to the child came back");
    assert_eq!(
        aborted.from, child,
        "the poison comes from the failed child"
    );
    assert_eq!(aborted.message, "hello");
    assert_eq!(aborted.details, "Child Aborted");
    listen_none(&sys);
    // The outside's messages to the failed child come back the same way.
    let reply = ask_env(&sys, &child, "are you there?");
    assert_eq!(reply.sender(), &child);
    let poison: PoisonMessage = reply.reply_as().unwrap();
    assert_eq!(
        poison.poison_message.get::<String>().expect("a String"),
        "are you there?"
    );
    assert_eq!(poison.details, "Child Aborted");
    assert_alive(&sys, &nursery);
    if !base.is_custom() {
        let status = ask_until::<SystemStatus>(&sys, &sys.admin_address(), StatusRequest, |s| {
            s.poison_messages >= 2
        });
        assert_eq!(
            status.poison_messages, 2,
            "{base}: each Child Aborted poison counts once"
        );
    }
}

/// Re-creates its failing child on every `ChildActorExited`, at most five times.
#[derive(Default)]
struct Restarter {
    reporter: Option<ActorAddress>,
    restarts: u32,
    children: Vec<ActorAddress>,
}

impl Actor for Restarter {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "start") {
            self.reporter = Some(env.sender().clone());
            self.children.push(ctx.create_actor::<FailingCtor>()?);
        } else if env.is::<ChildActorExited>() {
            if self.restarts < 5 {
                self.restarts += 1;
                self.children.push(ctx.create_actor::<FailingCtor>()?);
            } else {
                let gave_up = GaveUp {
                    restarts: self.restarts,
                    children: self.children.clone(),
                };
                ctx.send(self.reporter.as_ref().ok_or("no reporter")?, gave_up)?;
            }
        }
        Ok(())
    }
}

pub(crate) fn parent_restarts_failed_child_five_times(base: TestBase) {
    let sys = start(base);
    let restarter = sys.create_actor::<Restarter>().expect("create");
    sys.tell(&restarter, "start").expect("tell");
    let gave_up: GaveUp = listen(&sys);
    assert_eq!(gave_up.restarts, 5);
    assert_eq!(gave_up.children.len(), 6);
    let unique: HashSet<&ActorAddress> = gave_up.children.iter().collect();
    assert_eq!(unique.len(), 6, "every restart is a new actor");
    listen_none(&sys);
    assert_alive(&sys, &restarter);
}

/// Builds a chain of `depth` nodes below the receiver; the last one replies the whole chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Build {
    depth: u32,
    chain: Vec<ActorAddress>,
    reply_to: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Chain(Vec<ActorAddress>);

message!(
    Build = "conformance.failures.Build",
    Chain = "conformance.failures.Chain"
);

/// A tree node: builds its part of a chain and reports its children's exits.
#[derive(Default)]
pub(crate) struct Node {
    reporter: Option<ActorAddress>,
}

impl Actor for Node {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(build) = env.get::<Build>() {
            self.reporter = Some(build.reply_to.clone());
            let mut chain = build.chain.clone();
            chain.push(ctx.my_address().clone());
            if build.depth > 1 {
                let child = ctx.create_actor::<Node>()?;
                let next = Build {
                    depth: build.depth - 1,
                    chain,
                    reply_to: build.reply_to.clone(),
                };
                ctx.send(&child, next)?;
            } else {
                ctx.send(&build.reply_to, Chain(chain))?;
            }
        } else if let Ok(exited) = env.get::<ChildActorExited>() {
            if let Some(reporter) = &self.reporter {
                let gone = ChildGone {
                    parent: ctx.my_address().clone(),
                    child: exited.child_address.clone(),
                };
                ctx.send(reporter, gone)?;
            }
        }
        Ok(())
    }
}

/// Builds a chain of `depth` [`Node`]s, the first top-level; returns their addresses.
pub(crate) fn build_chain(sys: &ActorSystem, depth: u32) -> Vec<ActorAddress> {
    let root = sys.create_actor::<Node>().expect("create");
    let build = Build {
        depth,
        chain: Vec::new(),
        reply_to: sys.my_address().clone(),
    };
    let chain = ask::<Chain>(sys, &root, build).0;
    assert_eq!(chain.len(), depth as usize);
    assert_eq!(chain[0], root);
    chain
}

pub(crate) fn deep_tree_exit_at_every_level(base: TestBase) {
    let sys = start(base);
    for level in 0..4usize {
        let chain = build_chain(&sys, 4);
        sys.tell(&chain[level], ActorExitRequest::new())
            .expect("tell");
        // Bottom-up: each node below `level` reports its child's exit before its own parent
        // does; the top-level root's own exit is unremarked.
        for child in (level.max(1)..4).rev() {
            expect_child_gone(&sys, &chain[child - 1], &chain[child]);
        }
        listen_none(&sys);
        for (i, node) in chain.iter().enumerate() {
            if i < level {
                assert_alive(&sys, node);
            } else {
                assert_gone(&sys, node);
            }
        }
        if level > 0 {
            sys.tell(&chain[0], ActorExitRequest::new()).expect("tell");
            for child in (1..level).rev() {
                expect_child_gone(&sys, &chain[child - 1], &chain[child]);
            }
            listen_none(&sys);
        }
    }
}

/// Counts fish; fails on `BadFish`; `who?` replies its address and count.
#[derive(Default)]
struct FishCounter {
    fish: u32,
}

impl Actor for FishCounter {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        match env.get::<String>().map(String::as_str) {
            Ok("fish") => {
                self.fish += 1;
                ctx.send(env.sender(), self.fish)?;
            }
            Ok("BadFish") => return Err("bad fish".into()),
            Ok("who?") => {
                let me = ctx.my_address().clone();
                ctx.send(env.sender(), (me, self.fish))?;
            }
            _ => {}
        }
        Ok(())
    }
}

pub(crate) fn poison_keeps_actor_identity_and_state(base: TestBase) {
    let sys = start(base);
    let counter = sys.create_actor::<FishCounter>().expect("create");
    assert_eq!(ask::<u32>(&sys, &counter, "fish"), 1);
    let reply = ask_env(&sys, &counter, "BadFish");
    assert_eq!(reply.sender(), &counter);
    let poison: PoisonMessage = reply.reply_as().unwrap();
    assert_eq!(
        poison.poison_message.get::<String>().expect("a String"),
        "BadFish"
    );
    assert!(poison.details.contains("bad fish"), "{}", poison.details);
    let (me, fish) = ask::<(ActorAddress, u32)>(&sys, &counter, "who?");
    assert_eq!(me, counter, "same actor, same address");
    assert_eq!(fish, 1, "state kept");
    assert_eq!(ask::<u32>(&sys, &counter, "fish"), 2);
    // Its status counts both failed attempts.
    assert_eq!(crate::helpers::status(&sys, &counter).failures, 2);
}

/// Its exit handler returns an error.
#[derive(Default)]
struct ConfusedErr;

impl Actor for ConfusedErr {
    fn receive(&mut self, env: &Envelope, _: &mut Context<'_>) -> ActorResult {
        if env.is::<ActorExitRequest>() {
            return Err("I do not want to go".into());
        }
        Ok(())
    }
}

/// Its exit handler panics.
#[derive(Default)]
struct ConfusedPanic;

impl Actor for ConfusedPanic {
    fn receive(&mut self, env: &Envelope, _: &mut Context<'_>) -> ActorResult {
        if env.is::<ActorExitRequest>() {
            panic!("confused exit");
        }
        Ok(())
    }
}

fn confused_exit<C: Actor + NewActor>(base: TestBase) {
    let sys = start(base);
    let parent = sys.create_actor::<Parent<C>>().expect("create");
    let child = spawn(&sys, &parent, Spawn::child());
    assert_alive(&sys, &child);
    sys.tell(&child, ActorExitRequest::new()).expect("tell");
    expect_child_gone(&sys, &parent, &child);
    assert_gone(&sys, &child);
    assert_alive(&sys, &parent);
    listen_none(&sys);
}

pub(crate) fn confused_exit_error_still_exits(base: TestBase) {
    confused_exit::<ConfusedErr>(base);
}

pub(crate) fn confused_exit_panic_still_exits(base: TestBase) {
    confused_exit::<ConfusedPanic>(base);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(
    FailingCtor,
    PanickingCtor,
    Nursery,
    Restarter,
    Node,
    FishCounter,
    ConfusedErr,
    ConfusedPanic,
    Parent<ConfusedErr>,
    Parent<ConfusedPanic>
);
