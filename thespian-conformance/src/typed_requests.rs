//! The typed layer (no Thespian counterpart: Thespian's `ask` answers whatever arrives first):
//! derived messages travel under their wire names on every base, `request` returns the reply
//! its message declares, and `RequestError` tells a timeout, a returned `PoisonMessage`, a
//! reply of another type and a gone system apart. Inside actors, `Handler<M>` impls and
//! `on_request` handlers answer, and an address is a message by itself.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::ThespianError;

use crate::bases::TestBase;
use crate::helpers::{start, NO_REPLY_TIMEOUT, REPLY_TIMEOUT};

/// Answered with a [`Total`]; its wire name is the derive's default, the type's full path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Message)]
#[message(reply = Total)]
struct Add(u64, u64);

/// The reply to [`Add`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Message)]
struct Total(u64);

/// Always makes [`Calculator`] fail: comes back as a `PoisonMessage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Message)]
#[message(name = "conformance.typed.Explode", reply = Total)]
struct Explode;

/// Never answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Message)]
#[message(name = "conformance.typed.Ignored", reply = Total)]
struct Ignored;

/// Answered with the calculator's own address (an address is a message).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Message)]
#[message(reply = ActorAddress)]
struct WhoAreYou;

/// Answers [`Add`] through its `Handler<Add>` impl, [`WhoAreYou`] through `on_request`, a
/// string with its length (a reply of another type than a `String` asker expects), and fails
/// on [`Explode`].
#[derive(Default)]
struct Calculator;

impl Handler<Add> for Calculator {
    type Output = thespian::Result<()>;
    fn handle(&mut self, Add(a, b): &Add, env: &Envelope, ctx: &mut Context<'_>) -> Self::Output {
        ctx.reply_to(env, Total(a + b))
    }
}

impl Actor for Calculator {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        dispatch(self, env, ctx)
            .handle::<Add>()
            .on_request(|_, _: &WhoAreYou, _, ctx| ctx.my_address().clone())
            .on_request(|_, _: &Explode, _, _| Err("explode always fails".into()))
            .on(|_, text: &String, env, ctx| ctx.reply_to(env, text.len() as u64))
            .finish()
    }
}

pub(crate) fn request_returns_the_declared_reply(base: TestBase) {
    let sys = start(base);
    let calculator = sys.create_actor::<Calculator>().expect("create");
    let total = sys
        .request(&calculator, Add(2, 3), REPLY_TIMEOUT)
        .expect("a Total");
    assert_eq!(total, Total(5));
    let me = sys
        .request(&calculator, WhoAreYou, REPLY_TIMEOUT)
        .expect("an address");
    assert_eq!(me, calculator);
    assert_eq!(
        sys.ask_as::<u64>(&calculator, "four", REPLY_TIMEOUT)
            .expect("a length"),
        4
    );
}

pub(crate) fn a_poisoned_request_is_told_apart(base: TestBase) {
    let sys = start(base);
    let calculator = sys.create_actor::<Calculator>().expect("create");
    match sys.request(&calculator, Explode, REPLY_TIMEOUT) {
        Err(RequestError::Poisoned { from, poison }) => {
            assert_eq!(from, calculator);
            assert!(
                poison.details.contains("explode always fails"),
                "{}",
                poison.details
            );
            assert!(poison.poison_message.is::<Explode>());
        }
        other => panic!("expected the request back as poison, got {other:?}"),
    }
    // The actor goes on.
    assert_eq!(
        sys.request(&calculator, Add(1, 1), REPLY_TIMEOUT)
            .expect("a Total"),
        Total(2)
    );
}

pub(crate) fn a_reply_of_another_type_is_handed_back(base: TestBase) {
    let sys = start(base);
    let calculator = sys.create_actor::<Calculator>().expect("create");
    match sys.ask_as::<String>(&calculator, "four", REPLY_TIMEOUT) {
        Err(RequestError::WrongType { expected, envelope }) => {
            assert_eq!(expected, "String");
            assert_eq!(envelope.sender(), &calculator);
            assert_eq!(envelope.get::<u64>().expect("the length"), &4);
        }
        other => panic!("expected a reply of another type, got {other:?}"),
    }
}

pub(crate) fn timeout_and_a_gone_system_are_told_apart(base: TestBase) {
    let sys = start(base);
    let calculator = sys.create_actor::<Calculator>().expect("create");
    let waited = sys.request(&calculator, Ignored, NO_REPLY_TIMEOUT);
    assert!(
        matches!(waited, Err(RequestError::Timeout { waited }) if waited == NO_REPLY_TIMEOUT),
        "{waited:?}"
    );
    let listened = sys.listen_as::<Total>(NO_REPLY_TIMEOUT);
    assert!(
        listened.as_ref().is_err_and(RequestError::is_timeout),
        "{listened:?}"
    );
    sys.shutdown().expect("shutdown");
    match sys.request(&calculator, Add(1, 2), REPLY_TIMEOUT) {
        Err(RequestError::System(ThespianError::SystemShutDown)) => {}
        other => panic!("expected the system's error, got {other:?}"),
    }
}

/// Its `receive` is written by `#[thespian::handles]`: strings are answered unless they are
/// `"pass"`, which the string handler passes on (`Flow::Super`) to the fallback, as it does
/// with every type it has no handler for.
#[derive(Default)]
struct Layered;

impl Handler<String> for Layered {
    type Output = thespian::Result<Flow>;
    fn handle(&mut self, text: &String, env: &Envelope, ctx: &mut Context<'_>) -> Self::Output {
        if text == "pass" {
            return Ok(Flow::Super);
        }
        ctx.reply_to(env, format!("string {text}"))?;
        Ok(Flow::Done)
    }
}

impl Handler<u32> for Layered {
    type Output = thespian::Result<()>;
    fn handle(&mut self, n: &u32, env: &Envelope, ctx: &mut Context<'_>) -> Self::Output {
        ctx.reply_to(env, n + 1)
    }
}

impl Layered {
    fn unrecognised(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> thespian::Result<()> {
        ctx.reply_to(env, format!("unrecognised {}", env.type_name()))
    }
}

#[thespian::handles(String, u32, otherwise = Layered::unrecognised)]
impl Actor for Layered {}

pub(crate) fn handles_attribute_builds_the_dispatch_chain(base: TestBase) {
    let sys = start(base);
    let layered = sys.create_actor::<Layered>().expect("create");
    assert_eq!(
        sys.ask_as::<String>(&layered, "hi", REPLY_TIMEOUT)
            .expect("answered"),
        "string hi"
    );
    assert_eq!(
        sys.ask_as::<String>(&layered, "pass", REPLY_TIMEOUT)
            .expect("passed on"),
        "unrecognised String"
    );
    assert_eq!(
        sys.ask_as::<u32>(&layered, 41u32, REPLY_TIMEOUT)
            .expect("answered"),
        42
    );
    assert_eq!(
        sys.ask_as::<String>(&layered, 1.5f64, REPLY_TIMEOUT)
            .expect("the fallback"),
        "unrecognised f64"
    );
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Calculator, Layered);
