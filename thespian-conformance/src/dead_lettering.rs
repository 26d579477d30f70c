//! Thespian's `test_deadLettering.py` (and SPEC §8.4): messages to an exited actor reach the
//! registered handler as `DeadEnvelope(dead_address, dead_message)`; registering twice is
//! harmless; the newest handler wins; only the current handler can unregister; when it exits,
//! dead letters are dropped (no fallback to an older handler). Run with top-level handlers and
//! with handlers that are children of another actor.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

use crate::bases::TestBase;
use crate::helpers::{
    ask, ask_none, assert_alive, assert_gone, expect_child_gone, listen, listen_env, listen_none,
    spawn, start, ChildGone, Echo, Parent, Spawn,
};

/// What a handler got: which handler, for which address, which message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DeadReport {
    handler: ActorAddress,
    dead_address: ActorAddress,
    message: String,
}

/// Asks a [`Relay`] to send `text` to `to` and answer "relayed".
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Relayed {
    to: ActorAddress,
    text: String,
}

/// Asks a [`Relay`] to send `to` an `ActorExitRequest` and answer "relayed": after the texts
/// it relayed there before, since messages from one actor to another keep their order.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RelayedExit {
    to: ActorAddress,
}

message!(
    DeadReport = "conformance.dead.DeadReport",
    Relayed = "conformance.dead.Relayed",
    RelayedExit = "conformance.dead.RelayedExit",
);

/// Sends for its asker: messages from an actor to an actor, not from outside.
#[derive(Default)]
struct Relay;

impl Actor for Relay {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(relayed) = env.get::<Relayed>() {
            ctx.send(&relayed.to, relayed.text.clone())?;
            ctx.send(env.sender(), "relayed")?;
        } else if let Ok(exit) = env.get::<RelayedExit>() {
            ctx.send(&exit.to, ActorExitRequest::new())?;
            ctx.send(env.sender(), "relayed")?;
        }
        Ok(())
    }
}

/// `register` / `unregister` as the dead-letter handler (replying when done); reports every
/// `DeadEnvelope` to whoever registered it.
#[derive(Default)]
struct Handler {
    reporter: Option<ActorAddress>,
}

impl Actor for Handler {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(dead) = env.get::<DeadEnvelope>() {
            let report = DeadReport {
                handler: ctx.my_address().clone(),
                dead_address: dead.dead_address.clone(),
                message: dead.dead_message.get::<String>()?.clone(),
            };
            ctx.send(self.reporter.as_ref().ok_or("no reporter")?, report)?;
            return Ok(());
        }
        match env.get::<String>().map(String::as_str) {
            Ok("register") => {
                self.reporter = Some(env.sender().clone());
                ctx.handle_dead_letters(true);
                ctx.send(env.sender(), "registered")?;
            }
            Ok("unregister") => {
                ctx.handle_dead_letters(false);
                ctx.send(env.sender(), "unregistered")?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Sends `text` to the dead `target` and checks that exactly `handler` reports it.
fn expect_dead_letter(
    sys: &ActorSystem,
    target: &ActorAddress,
    text: &str,
    handler: &ActorAddress,
) {
    sys.tell(target, text.to_owned())
        .expect("tell to a dead actor is accepted");
    let report: DeadReport = listen(sys);
    assert_eq!(
        report,
        DeadReport {
            handler: handler.clone(),
            dead_address: target.clone(),
            message: text.to_owned(),
        }
    );
    listen_none(sys);
}

fn dead_letters(base: TestBase, handlers_are_children: bool) {
    let sys = start(base);
    let handler_parent = sys.create_actor::<Parent<Handler>>().expect("create");
    let make_handler = || {
        if handlers_are_children {
            spawn(&sys, &handler_parent, Spawn::child())
        } else {
            sys.create_actor::<Handler>().expect("create")
        }
    };
    let watcher = sys.create_actor::<Parent<Echo>>().expect("create");

    let first = make_handler();
    assert_eq!(ask::<String>(&sys, &first, "register"), "registered");

    let target = spawn(&sys, &watcher, Spawn::child());
    assert_eq!(ask::<String>(&sys, &target, "alive"), "alive");
    sys.tell(&target, ActorExitRequest::new()).expect("tell");
    expect_child_gone(&sys, &watcher, &target);

    expect_dead_letter(&sys, &target, "lost 1", &first);

    // A second registration by the same actor is harmless: still one report per letter.
    assert_eq!(ask::<String>(&sys, &first, "register"), "registered");
    expect_dead_letter(&sys, &target, "lost 2", &first);

    // A newer handler supersedes the older one.
    let second = make_handler();
    assert_eq!(ask::<String>(&sys, &second, "register"), "registered");
    expect_dead_letter(&sys, &target, "lost 3", &second);

    // Unregistering from a handler that is not the current one has no effect.
    assert_eq!(ask::<String>(&sys, &first, "unregister"), "unregistered");
    expect_dead_letter(&sys, &target, "lost 4", &second);

    // When the current handler exits, dead letters are dropped: no fallback to the first.
    sys.tell(&second, ActorExitRequest::new()).expect("tell");
    if handlers_are_children {
        expect_child_gone(&sys, &handler_parent, &second);
    }
    assert_gone(&sys, &second);
    sys.tell(&target, "lost 5").expect("tell");
    listen_none(&sys);
    assert_alive(&sys, &first);

    // The first handler can take over again.
    assert_eq!(ask::<String>(&sys, &first, "register"), "registered");
    expect_dead_letter(&sys, &target, "lost 6", &first);
}

pub(crate) fn dead_letters_with_top_level_handlers(base: TestBase) {
    dead_letters(base, false);
}

pub(crate) fn dead_letters_with_child_handlers(base: TestBase) {
    dead_letters(base, true);
}

pub(crate) fn no_handler_drops_dead_letters(base: TestBase) {
    let sys = start(base);
    let watcher = sys.create_actor::<Parent<Echo>>().expect("create");
    let target = spawn(&sys, &watcher, Spawn::child());
    sys.tell(&target, ActorExitRequest::new()).expect("tell");
    expect_child_gone(&sys, &watcher, &target);
    sys.tell(&target, "nobody hears this").expect("tell");
    ask_none(&sys, &target, "nor this");
    listen_none(&sys);
    assert_eq!(ask::<String>(&sys, &watcher, "still fine"), "still fine");
}

/// An actor that sent to another before that one exited: its later sends are dead letters too
/// (a base that remembers where it last delivered must not deliver there after the exit).
pub(crate) fn dead_letters_from_an_actor_that_sent_before(base: TestBase) {
    let sys = start(base);
    let handler = sys.create_actor::<Handler>().expect("create");
    assert_eq!(ask::<String>(&sys, &handler, "register"), "registered");
    let watcher = sys.create_actor::<Parent<Echo>>().expect("create");
    let target = spawn(&sys, &watcher, Spawn::child());
    let relay = sys.create_actor::<Relay>().expect("create");
    let relay_to = |text: &str| {
        let relayed = Relayed {
            to: target.clone(),
            text: text.to_owned(),
        };
        assert_eq!(ask::<String>(&sys, &relay, relayed), "relayed");
    };
    for i in 0..3 {
        relay_to(&format!("live {i}"));
    }
    // The exit request goes the live texts' way: from the outside it could overtake the last
    // of them (messages from different senders have no order), which would then be a dead
    // letter too.
    // The relay's answer and the watcher's notice come from different actors: either may
    // arrive first.
    sys.tell(&relay, RelayedExit { to: target.clone() })
        .expect("tell");
    let (mut answered, mut gone) = (false, None);
    for _ in 0..2 {
        let env = listen_env(&sys);
        if let Ok(notice) = env.get::<ChildGone>() {
            assert!(gone.replace(notice.clone()).is_none(), "two notices");
        } else {
            assert_eq!(env.get::<String>().map(String::as_str), Ok("relayed"));
            answered = true;
        }
    }
    assert!(answered, "the relay did not answer");
    assert_eq!(
        gone,
        Some(ChildGone {
            parent: watcher.clone(),
            child: target.clone(),
        })
    );
    for i in 0..3 {
        let text = format!("lost {i}");
        let relayed = Relayed {
            to: target.clone(),
            text: text.clone(),
        };
        sys.tell(&relay, relayed).expect("tell");
        // The relay's answer and the handler's report come from different actors (different
        // processes on some bases): either may arrive first.
        let (mut answered, mut report) = (false, None);
        for _ in 0..2 {
            let env = listen_env(&sys);
            if let Ok(dead) = env.get::<DeadReport>() {
                assert!(report.replace(dead.clone()).is_none(), "two reports");
            } else {
                assert_eq!(env.get::<String>().map(String::as_str), Ok("relayed"));
                answered = true;
            }
        }
        assert!(answered, "the relay did not answer");
        assert_eq!(
            report,
            Some(DeadReport {
                handler: handler.clone(),
                dead_address: target.clone(),
                message: text,
            })
        );
    }
    listen_none(&sys);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Handler, Parent<Echo>, Parent<Handler>, Relay);
