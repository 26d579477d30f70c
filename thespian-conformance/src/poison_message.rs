//! Thespian's `test_poisonMessage.py`: a message that makes its target fail twice comes back
//! as `PoisonMessage` to the actor that sent it (in a chain of actors), never from the actor
//! to itself, with details carrying the error text ("Yucky number 3"); an `ask` of a poisonous
//! message returns the poison; the failing actor keeps working. (Thespian's "a string used as
//! an address" case cannot be written in Rust: addresses are typed.)

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

use crate::bases::TestBase;
use crate::helpers::{ask, ask_env, listen_none, start};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Num(u32);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Doubled(u32);

/// Relayed along `route`; the last relay sends `Num(value)` to `target` and answers `reply_to`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Via {
    route: Vec<ActorAddress>,
    target: ActorAddress,
    value: u32,
    reply_to: ActorAddress,
}

/// A relay's report of poison it got back.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PoisonReport {
    reporter: ActorAddress,
    from: ActorAddress,
    value: u32,
    details: String,
}

message!(
    Num = "conformance.poison.Num",
    Doubled = "conformance.poison.Doubled",
    Via = "conformance.poison.Via",
    PoisonReport = "conformance.poison.PoisonReport",
);

/// Doubles numbers, except 3.
#[derive(Default)]
struct Yucky;

impl Actor for Yucky {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(Num(n)) = env.get::<Num>() {
            if *n == 3 {
                return Err(format!("Yucky number {n}").into());
            }
            ctx.send(env.sender(), Doubled(n * 2))?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Relay {
    waiting: HashMap<u32, ActorAddress>,
}

impl Actor for Relay {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(via) = env.get::<Via>() {
            let mut next = via.clone();
            if next.route.is_empty() {
                self.waiting.insert(via.value, via.reply_to.clone());
                ctx.send(&via.target, Num(via.value))?;
            } else {
                let to = next.route.remove(0);
                ctx.send(&to, next)?;
            }
        } else if let Ok(Doubled(n)) = env.get::<Doubled>() {
            let reply_to = self.waiting.remove(&(n / 2)).ok_or("unexpected answer")?;
            ctx.send(&reply_to, Doubled(*n))?;
        } else if let Ok(poison) = env.get::<PoisonMessage>() {
            let Num(value) = poison.poison_message.get::<Num>()?.clone();
            let reply_to = self.waiting.remove(&value).ok_or("unexpected poison")?;
            let report = PoisonReport {
                reporter: ctx.my_address().clone(),
                from: env.sender().clone(),
                value,
                details: poison.details.clone(),
            };
            ctx.send(&reply_to, report)?;
        }
        Ok(())
    }
}

pub(crate) fn poison_returns_to_the_sending_actor(base: TestBase) {
    let sys = start(base);
    let yucky = sys.create_actor::<Yucky>().expect("create");
    let first = sys.create_actor::<Relay>().expect("create");
    let last = sys.create_actor::<Relay>().expect("create");
    for value in 1..=5u32 {
        let via = Via {
            route: vec![last.clone()],
            target: yucky.clone(),
            value,
            reply_to: sys.my_address().clone(),
        };
        let reply = ask_env(&sys, &first, via);
        if value == 3 {
            assert_eq!(reply.sender(), &last);
            let report: PoisonReport = reply.reply_as().unwrap();
            assert_eq!(
                report.reporter, last,
                "the poison went to the actor that sent it"
            );
            assert_eq!(
                report.from, yucky,
                "the poison comes from the failing actor"
            );
            assert_ne!(
                report.from, report.reporter,
                "never from the actor to itself"
            );
            assert_eq!(report.value, 3);
            assert!(
                report.details.contains("Yucky number 3"),
                "{}",
                report.details
            );
        } else {
            assert_eq!(reply.reply_as::<Doubled>().unwrap(), Doubled(value * 2));
        }
    }
    listen_none(&sys);
}

pub(crate) fn ask_of_poisonous_message_returns_poison(base: TestBase) {
    let sys = start(base);
    let yucky = sys.create_actor::<Yucky>().expect("create");
    assert_eq!(ask::<Doubled>(&sys, &yucky, Num(2)), Doubled(4));
    let reply = ask_env(&sys, &yucky, Num(3));
    assert_eq!(reply.sender(), &yucky);
    let poison: PoisonMessage = reply.reply_as().unwrap();
    assert_eq!(poison.poison_message.get::<Num>(), Ok(&Num(3)));
    assert!(
        poison.details.contains("Yucky number 3"),
        "{}",
        poison.details
    );
    assert_eq!(
        ask::<Doubled>(&sys, &yucky, Num(4)),
        Doubled(8),
        "still working"
    );
    listen_none(&sys);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Yucky, Relay);
