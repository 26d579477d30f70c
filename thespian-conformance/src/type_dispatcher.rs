//! Thespian's `test_typeDispatcher.py`, for the Rust dispatcher: exact-type handlers (in the
//! order written, `Flow::Super` passing on so that both handlers reply), `on_system_message`
//! and `on_any` running after every exact handler whatever order they were written in, the
//! `otherwise` fallback (`receiveUnrecognizedMessage`), silent discard with `finish`, and a
//! handler error counting as a failure.

use thespian::prelude::*;
use thespian::ThespianError;

use crate::bases::TestBase;
use crate::helpers::{ask, ask_env, ask_none, listen, listen_none, start};

#[derive(Default)]
struct Dispatcher {
    strings: u32,
}

impl Actor for Dispatcher {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        dispatch(self, env, ctx)
            // Written first, runs only after the exact handlers.
            .on_system_message(|_me, env, ctx| {
                ctx.send(env.sender(), format!("system:{}", env.type_name()))
            })
            .on(
                |me: &mut Dispatcher, text: &String, env, ctx| -> Result<Flow, ThespianError> {
                    if text == "super" {
                        ctx.send(env.sender(), "first")?;
                        return Ok(Flow::Super);
                    }
                    me.strings += 1;
                    ctx.send(env.sender(), format!("string:{text}"))?;
                    Ok(Flow::Done)
                },
            )
            .on(|_me: &mut Dispatcher, text: &String, env, ctx| {
                ctx.send(env.sender(), format!("second:{text}"))
            })
            .on(|_me: &mut Dispatcher, n: &u32, env, ctx| ctx.send(env.sender(), n + 1))
            .on(|_me: &mut Dispatcher, _: &DeadEnvelope, env, ctx| {
                ctx.send(env.sender(), "dead envelope")
            })
            .otherwise(|_me, env, ctx| {
                ctx.send(env.sender(), format!("unrecognised:{}", env.type_name()))
            })
    }
}

fn some_address(sys: &ActorSystem) -> ActorAddress {
    sys.my_address().clone()
}

pub(crate) fn exact_handlers(base: TestBase) {
    let sys = start(base);
    let d = sys.create_actor::<Dispatcher>().expect("create");
    assert_eq!(ask::<String>(&sys, &d, "hello"), "string:hello");
    listen_none(&sys); // the second String handler did not run
    assert_eq!(ask::<u32>(&sys, &d, 41u32), 42);
    let dead = DeadEnvelope::new(some_address(&sys), thespian::Payload::new("x"));
    assert_eq!(
        ask::<String>(&sys, &d, dead),
        "dead envelope",
        "an exact handler of a system message beats on_system_message"
    );
}

pub(crate) fn super_continues_to_the_next_handler(base: TestBase) {
    let sys = start(base);
    let d = sys.create_actor::<Dispatcher>().expect("create");
    assert_eq!(ask::<String>(&sys, &d, "super"), "first");
    assert_eq!(listen::<String>(&sys), "second:super");
    listen_none(&sys);
}

pub(crate) fn system_messages_reach_on_system_message(base: TestBase) {
    let sys = start(base);
    let d = sys.create_actor::<Dispatcher>().expect("create");
    let exited = ChildActorExited::new(some_address(&sys));
    assert_eq!(
        ask::<String>(&sys, &d, exited),
        "system:thespian.ChildActorExited"
    );
}

pub(crate) fn unrecognised_messages_reach_otherwise(base: TestBase) {
    let sys = start(base);
    let d = sys.create_actor::<Dispatcher>().expect("create");
    assert_eq!(ask::<String>(&sys, &d, -5i64), "unrecognised:i64");
    assert_eq!(
        ask::<String>(&sys, &d, vec![1u8, 2]),
        "unrecognised:Vec<u8>"
    );
    assert_eq!(ask::<String>(&sys, &d, "after"), "string:after");
}

/// `on_any` written before the exact handler, `on_system_message` after it.
#[derive(Default)]
struct CatchAll;

impl Actor for CatchAll {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        dispatch(self, env, ctx)
            .on_any(|_me, env, ctx| ctx.send(env.sender(), format!("any:{}", env.type_name())))
            .on_system_message(|_me, env, ctx| {
                ctx.send(env.sender(), format!("system:{}", env.type_name()))
            })
            .on(|_me: &mut CatchAll, n: &u32, env, ctx| ctx.send(env.sender(), n + 1))
            .finish()
    }
}

pub(crate) fn on_any_catches_the_rest_after_exact_handlers(base: TestBase) {
    let sys = start(base);
    let c = sys.create_actor::<CatchAll>().expect("create");
    assert_eq!(ask::<u32>(&sys, &c, 1u32), 2);
    assert_eq!(ask::<String>(&sys, &c, "x"), "any:String");
    let exited = ChildActorExited::new(some_address(&sys));
    assert_eq!(
        ask::<String>(&sys, &c, exited),
        "system:thespian.ChildActorExited",
        "on_system_message comes before on_any"
    );
    listen_none(&sys);
}

/// Handles `u32`; fails on the string `fail`; everything else is discarded by `finish`.
#[derive(Default)]
struct Finisher;

impl Actor for Finisher {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        dispatch(self, env, ctx)
            .on(|_me: &mut Finisher, n: &u32, env, ctx| ctx.send(env.sender(), n + 1))
            .on(
                |_me: &mut Finisher, text: &String, _env, _ctx| -> Result<Flow, &'static str> {
                    if text == "fail" {
                        Err("handler failed")
                    } else {
                        Ok(Flow::Super)
                    }
                },
            )
            .finish()
    }
}

pub(crate) fn finish_discards_silently(base: TestBase) {
    let sys = start(base);
    let f = sys.create_actor::<Finisher>().expect("create");
    ask_none(&sys, &f, 7i64);
    ask_none(&sys, &f, vec![1u8]);
    ask_none(&sys, &f, "passed on, then discarded");
    assert_eq!(ask::<u32>(&sys, &f, 1u32), 2, "still working, no poison");
}

pub(crate) fn handler_errors_are_failures(base: TestBase) {
    let sys = start(base);
    let f = sys.create_actor::<Finisher>().expect("create");
    let reply = ask_env(&sys, &f, "fail");
    let poison: PoisonMessage = reply.reply_as().unwrap();
    assert_eq!(
        poison.poison_message.get::<String>().expect("a String"),
        "fail"
    );
    assert!(
        poison.details.contains("handler failed"),
        "{}",
        poison.details
    );
    assert_eq!(ask::<u32>(&sys, &f, 2u32), 3);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Dispatcher, CatchAll, Finisher);
