//! Thespian's `test_badmessage.py`: a message that always makes its actor fail comes back as
//! a `PoisonMessage` carrying the original message; one that fails only on the first attempt
//! is retried and answered. Also SPEC §8.1: exactly one retry, at once (before any other
//! message), and poison never wraps poison.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::Payload;

use crate::bases::TestBase;
use crate::helpers::{ask, ask_caught_up, ask_env, ask_none, listen_none, start};

/// Always makes [`Picky`] fail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Bad(u32);

/// Makes [`Picky`] fail on odd attempts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Flaky(u32);

/// Asks a [`Driver`] to send `Bad` then a string to `target`, then reply `sent`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DriveBadThenGood {
    target: ActorAddress,
}

message!(
    Bad = "conformance.badmsg.Bad",
    Flaky = "conformance.badmsg.Flaky",
    DriveBadThenGood = "conformance.badmsg.DriveBadThenGood",
);

#[derive(Default)]
struct Picky {
    attempts: u32,
    log: Vec<String>,
}

impl Actor for Picky {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(Bad(n)) = env.get::<Bad>() {
            self.attempts += 1;
            self.log.push(format!("bad {n}"));
            return Err(format!("I do not like {n}").into());
        }
        if let Ok(Flaky(n)) = env.get::<Flaky>() {
            self.attempts += 1;
            self.log.push(format!("flaky {n}"));
            if self.attempts % 2 == 1 {
                return Err("flaky today".into());
            }
            ctx.send(env.sender(), format!("ok {n}"))?;
            return Ok(());
        }
        if env.is::<PoisonMessage>() {
            self.attempts += 1;
            self.log.push("poison".to_owned());
            return Err("poison makes me sick".into());
        }
        if let Ok(text) = env.get::<String>() {
            match text.as_str() {
                "attempts?" => ctx.send(env.sender(), self.attempts)?,
                "log?" => ctx.send(env.sender(), self.log.clone())?,
                other => self.log.push(other.to_owned()),
            }
        }
        Ok(())
    }
}

pub(crate) fn always_failing_message_is_returned_as_poison(base: TestBase) {
    let sys = start(base);
    let picky = sys.create_actor::<Picky>().expect("create");
    let reply = ask_env(&sys, &picky, Bad(135));
    assert_eq!(reply.sender(), &picky);
    let poison: PoisonMessage = reply.reply_as().unwrap();
    assert_eq!(poison.poison_message.get::<Bad>(), Ok(&Bad(135)));
    assert!(
        poison.details.contains("I do not like 135"),
        "{}",
        poison.details
    );
    assert_eq!(
        ask::<u32>(&sys, &picky, "attempts?"),
        2,
        "one retry, no more"
    );
    listen_none(&sys);
}

pub(crate) fn failing_once_is_retried_and_answered(base: TestBase) {
    let sys = start(base);
    let picky = sys.create_actor::<Picky>().expect("create");
    assert_eq!(ask::<String>(&sys, &picky, Flaky(135)), "ok 135");
    assert_eq!(ask::<u32>(&sys, &picky, "attempts?"), 2);
    listen_none(&sys);
}

#[derive(Default)]
struct Driver;

impl Actor for Driver {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(drive) = env.get::<DriveBadThenGood>() {
            ctx.send(&drive.target, Bad(7))?;
            ctx.send(&drive.target, "after")?;
            ctx.send(env.sender(), "sent")?;
        }
        // The poison for `Bad(7)` comes back here and is dropped.
        Ok(())
    }
}

pub(crate) fn retry_happens_at_once_before_other_messages(base: TestBase) {
    let sys = start(base);
    let picky = sys.create_actor::<Picky>().expect("create");
    let driver = sys.create_actor::<Driver>().expect("create");
    let drive = DriveBadThenGood {
        target: picky.clone(),
    };
    assert_eq!(ask::<String>(&sys, &driver, drive), "sent");
    // The driver's messages were sent before its reply, but (on a multi-process base) on
    // another connection than this ask: ask until the three deliveries are in.
    let log = ask_caught_up::<Vec<String>>(base, &sys, &picky, "log?", |log| log.len() >= 3);
    assert_eq!(
        log,
        vec!["bad 7", "bad 7", "after"],
        "the retry comes straight after the failure"
    );
}

pub(crate) fn poison_never_wraps_poison(base: TestBase) {
    let sys = start(base);
    let picky = sys.create_actor::<Picky>().expect("create");
    let poison = PoisonMessage::new(Payload::new("some message"), "some failure");
    ask_none(&sys, &picky, poison);
    assert_eq!(
        ask::<u32>(&sys, &picky, "attempts?"),
        2,
        "a failing poison is retried once"
    );
    assert_eq!(
        ask::<String>(&sys, &picky, Flaky(1)),
        "ok 1",
        "still working"
    );
    listen_none(&sys);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Picky, Driver);
