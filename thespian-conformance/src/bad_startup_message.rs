//! Thespian's `test_badStartupMessage.py`: a parent that sends its child a "startup" message
//! which makes the child fail, and re-creates the child (sending the message again) on every
//! `ChildActorExited`, must not hang the caller; the parent keeps answering. On the simple base
//! the processing limit (10 deliveries per call) is what keeps `tell`/`ask` from looping.

use std::marker::PhantomData;

use thespian::prelude::*;
use thespian::{NewActor, Requirements};

use crate::bases::{traits, TestBase};
use crate::helpers::{ask, ask_until, builder, start_with};

/// Restarts beyond which the parent stops (only reachable on bases that run actors in the
/// background, so the loop there is bounded too).
const RESTART_CAP: u32 = 10_000;

/// Raises on `Hello` (Thespian's `Child`): the message comes back as poison.
#[derive(Default)]
struct Grumpy;

impl Actor for Grumpy {
    fn receive(&mut self, env: &Envelope, _: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "Hello") {
            return Err("I am Grumpy!".into());
        }
        Ok(())
    }
}

/// Exits on `Hello`: the parent gets `ChildActorExited` and starts it again.
#[derive(Default)]
struct Fragile;

impl Actor for Fragile {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "Hello") {
            let me = ctx.my_address().clone();
            ctx.send(&me, ActorExitRequest::new())?;
        }
        Ok(())
    }
}

/// Never starts: every create ends in `ChildActorExited`.
struct Stillborn;

impl Actor for Stillborn {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
}

impl NewActor for Stillborn {
    fn new_actor(_: &Capabilities, _: &Requirements) -> Result<Self, thespian::ActorError> {
        Err("stillborn".into())
    }
}

/// `Make Child` creates a `C` and sends it `Hello`; every `ChildActorExited` does it again;
/// `Hello` is answered `Hi`; `restarts?` replies the number of re-creations.
struct LoopingParent<C> {
    restarts: u32,
    _child: PhantomData<fn() -> C>,
}

impl<C> Default for LoopingParent<C> {
    fn default() -> Self {
        LoopingParent {
            restarts: 0,
            _child: PhantomData,
        }
    }
}

impl<C: Actor + NewActor> LoopingParent<C> {
    fn make_child(ctx: &mut Context<'_>) -> ActorResult {
        let child = ctx.create_actor::<C>()?;
        ctx.send(&child, "Hello")?;
        Ok(())
    }
}

impl<C: Actor + NewActor> Actor for LoopingParent<C> {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<ChildActorExited>() {
            if self.restarts < RESTART_CAP {
                self.restarts += 1;
                Self::make_child(ctx)?;
            }
            return Ok(());
        }
        match env.get::<String>().map(String::as_str) {
            Ok("Make Child") => Self::make_child(ctx)?,
            Ok("Hello") => ctx.send(env.sender(), "Hi")?,
            Ok("restarts?") => ctx.send(env.sender(), self.restarts)?,
            _ => {}
        }
        Ok(())
    }
}

fn restart_loop<C: Actor + NewActor>(base: TestBase, expect_restarts: bool) {
    let sys = start_with(builder(base).processing_limit(10));
    let parent = sys.create_actor::<LoopingParent<C>>().expect("create");
    assert_eq!(ask::<String>(&sys, &parent, "Hello"), "Hi");
    sys.tell(&parent, "Make Child").expect("tell returns");
    assert_eq!(ask::<String>(&sys, &parent, "Hello"), "Hi");
    assert_eq!(ask::<String>(&sys, &parent, "Hello"), "Hi");
    let restarts = if expect_restarts && !traits(base).synchronous {
        // The simple base runs the loop inside the calls above; elsewhere the child runs in the
        // background (in a process of its own on a multi-process base, which takes a moment to
        // start and fail): ask until the parent has re-created it.
        ask_until::<u32>(&sys, &parent, "restarts?", |&r| r >= 1)
    } else {
        ask::<u32>(&sys, &parent, "restarts?")
    };
    if expect_restarts {
        assert!(restarts >= 1, "the child was re-created ({restarts})");
    } else {
        assert_eq!(restarts, 0, "a failing message does not kill the child");
    }
    if traits(base).synchronous {
        // Five calls of at most ten deliveries each: the loop did not run away.
        assert!(
            restarts < 50,
            "{restarts} restarts: the processing limit did not hold"
        );
    }
}

pub(crate) fn restart_loop_does_not_hang(base: TestBase) {
    restart_loop::<Grumpy>(base, false);
    restart_loop::<Fragile>(base, true);
    restart_loop::<Stillborn>(base, true);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(
    Grumpy,
    Fragile,
    Stillborn,
    LoopingParent<Grumpy>,
    LoopingParent<Fragile>,
    LoopingParent<Stillborn>
);
