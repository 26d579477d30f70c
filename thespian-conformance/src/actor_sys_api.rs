//! Thespian's `test_actorSysAPI.py`: `tell`, `ask` (a reply or `None`), `listen` receiving a
//! second reply, `ask` as `tell` + `listen`, and replies arriving from any actor.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

use crate::bases::TestBase;
use crate::helpers::{ask, ask_env, ask_none, listen, listen_env, listen_none, start};

/// Counts told messages; `count?` replies the count; `Pow` replies twice; `ignore` gets nothing.
#[derive(Default)]
struct Counter {
    count: u32,
}

impl Actor for Counter {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        let Ok(text) = env.get::<String>() else {
            return Ok(());
        };
        match text.as_str() {
            "count?" => ctx.send(env.sender(), self.count)?,
            "Pow" => {
                ctx.send(env.sender(), "Pow!")?;
                ctx.send(env.sender(), "Pow!!")?;
            }
            "ignore" => {}
            "hello" => ctx.send(env.sender(), "hello yourself")?,
            _ => self.count += 1,
        }
        Ok(())
    }
}

/// Asks each responder to answer the original asker directly.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FanOut {
    responders: Vec<ActorAddress>,
}

/// Sent by the fan-out actor to a responder: answer `reply_to`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AnswerTo {
    reply_to: ActorAddress,
}

/// A responder's answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Answer {
    from: ActorAddress,
}

message!(
    FanOut = "conformance.sysapi.FanOut",
    AnswerTo = "conformance.sysapi.AnswerTo",
    Answer = "conformance.sysapi.Answer",
);

#[derive(Default)]
struct Fan;

impl Actor for Fan {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(fan) = env.get::<FanOut>() {
            for responder in &fan.responders {
                ctx.send(
                    responder,
                    AnswerTo {
                        reply_to: env.sender().clone(),
                    },
                )?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Responder;

impl Actor for Responder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(answer_to) = env.get::<AnswerTo>() {
            let from = ctx.my_address().clone();
            ctx.send(&answer_to.reply_to, Answer { from })?;
        }
        Ok(())
    }
}

pub(crate) fn tell_is_delivered_before_a_later_ask(base: TestBase) {
    let sys = start(base);
    let counter = sys.create_actor::<Counter>().expect("create");
    for n in 0..3 {
        sys.tell(&counter, format!("tick {n}")).expect("tell");
    }
    assert_eq!(ask::<u32>(&sys, &counter, "count?"), 3);
}

pub(crate) fn ask_returns_reply_or_none(base: TestBase) {
    let sys = start(base);
    let counter = sys.create_actor::<Counter>().expect("create");
    let reply = ask_env(&sys, &counter, "hello");
    assert_eq!(reply.sender(), &counter);
    assert_eq!(reply.reply_as::<String>().unwrap(), "hello yourself");
    ask_none(&sys, &counter, "ignore");
}

pub(crate) fn listen_receives_a_second_reply(base: TestBase) {
    let sys = start(base);
    let counter = sys.create_actor::<Counter>().expect("create");
    assert_eq!(ask::<String>(&sys, &counter, "Pow"), "Pow!");
    assert_eq!(listen::<String>(&sys), "Pow!!");
    listen_none(&sys);
}

pub(crate) fn ask_is_tell_plus_listen(base: TestBase) {
    let sys = start(base);
    let counter = sys.create_actor::<Counter>().expect("create");
    sys.tell(&counter, "hello").expect("tell");
    let reply = listen_env(&sys);
    assert_eq!(reply.sender(), &counter);
    assert_eq!(reply.reply_as::<String>().unwrap(), "hello yourself");
    listen_none(&sys);
}

pub(crate) fn replies_from_any_actor(base: TestBase) {
    let sys = start(base);
    let fan = sys.create_actor::<Fan>().expect("create");
    let responders: Vec<ActorAddress> = (0..3)
        .map(|_| sys.create_actor::<Responder>().expect("create"))
        .collect();
    let first = ask_env(
        &sys,
        &fan,
        FanOut {
            responders: responders.clone(),
        },
    );
    let mut envelopes = vec![first, listen_env(&sys), listen_env(&sys)];
    let senders: HashSet<ActorAddress> = envelopes.iter().map(|e| e.sender().clone()).collect();
    let expected: HashSet<ActorAddress> = responders.iter().cloned().collect();
    assert_eq!(
        senders, expected,
        "each responder answered the outside once"
    );
    let answers: HashSet<Answer> = envelopes
        .drain(..)
        .map(|env| {
            let sender = env.sender().clone();
            let answer: Answer = env.reply_as().unwrap();
            assert_eq!(answer.from, sender);
            answer
        })
        .collect();
    assert_eq!(answers.len(), 3);
    listen_none(&sys);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Counter, Fan, Responder);
