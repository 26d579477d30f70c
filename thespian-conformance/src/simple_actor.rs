//! Thespian's `test_simpleActor.py`: create, tell and ask; a message that gets no reply; an
//! actor sending a tuple to itself before replying.

use std::time::Instant;

use thespian::prelude::*;

use crate::bases::TestBase;
use crate::helpers::{ask, ask_none, listen, start, NO_REPLY_TIMEOUT, REPLY_TIMEOUT};

#[derive(Default)]
struct Greeter {
    greeted: u32,
    requester: Option<ActorAddress>,
}

impl Actor for Greeter {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(text) = env.get::<String>() {
            match text.as_str() {
                "Silence!" => {}
                "count?" => ctx.send(env.sender(), self.greeted)?,
                "talk to yourself" => {
                    self.requester = Some(env.sender().clone());
                    let me = ctx.my_address().clone();
                    ctx.send(&me, ("to myself".to_owned(), 42u32))?;
                }
                name => {
                    self.greeted += 1;
                    ctx.send(env.sender(), format!("Hello, {name}!"))?;
                }
            }
        } else if let Ok((text, n)) = env.get::<(String, u32)>() {
            if env.sender() == ctx.my_address() {
                if let Some(requester) = self.requester.take() {
                    ctx.send(&requester, format!("{text} {n}"))?;
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn create_tell_ask(base: TestBase) {
    let sys = start(base);
    let greeter = sys.create_actor::<Greeter>().expect("create");
    sys.tell(&greeter, "told").expect("tell");
    // The reply to the tell comes to this endpoint too; take it before asking.
    assert_eq!(listen::<String>(&sys), "Hello, told!");
    assert_eq!(ask::<String>(&sys, &greeter, "world"), "Hello, world!");
    let counted = ask::<u32>(&sys, &greeter, "count?");
    assert_eq!(counted, 2, "the tell and the ask were both delivered");
}

pub(crate) fn silence_returns_none(base: TestBase) {
    let sys = start(base);
    let greeter = sys.create_actor::<Greeter>().expect("create");
    let started = Instant::now();
    ask_none(&sys, &greeter, "Silence!");
    // Generous bound: only an ask that ignores its timeout fails it.
    assert!(
        started.elapsed() < NO_REPLY_TIMEOUT + REPLY_TIMEOUT,
        "ask without reply must return at its timeout, took {:?}",
        started.elapsed()
    );
    assert_eq!(ask::<String>(&sys, &greeter, "again"), "Hello, again!");
}

pub(crate) fn message_to_self_then_reply(base: TestBase) {
    let sys = start(base);
    let greeter = sys.create_actor::<Greeter>().expect("create");
    assert_eq!(
        ask::<String>(&sys, &greeter, "talk to yourself"),
        "to myself 42"
    );
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Greeter);
