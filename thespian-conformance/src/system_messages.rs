//! Thespian's `test_systemMessages.py`: an external `ask` never returns internal system
//! messages (an echoed `ActorExitRequest`, `ChildActorExited`, `WakeupMessage`,
//! `DeadEnvelope`, poison wrapping an internal message), only user messages, poison of user
//! messages and status replies; an actor sending `ActorExitRequest` to the outside breaks
//! nothing.

use std::time::Duration;

use thespian::prelude::*;
use thespian::{ActorStatus, Payload, StatusRequest};

use crate::bases::TestBase;
use crate::helpers::{ask, ask_env, ask_none, listen_none, start, Echo};

/// Replies to the sender with the system message its request names.
#[derive(Default)]
struct Impostor;

impl Actor for Impostor {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        let me = ctx.my_address().clone();
        let Ok(text) = env.get::<String>() else {
            return Ok(());
        };
        let reply = match text.as_str() {
            "exit" => Payload::new(ActorExitRequest::new()),
            "child" => Payload::new(ChildActorExited::new(me)),
            "wakeup" => Payload::new(WakeupMessage::new(Duration::from_millis(1), None)),
            "dead" => Payload::new(DeadEnvelope::new(me, Payload::new("x"))),
            "poisoned exit" => Payload::new(PoisonMessage::new(
                Payload::new(ActorExitRequest::new()),
                "internal",
            )),
            "poisoned text" => Payload::new(PoisonMessage::new(Payload::new("text"), "user")),
            "status" => Payload::new(StatusRequest),
            "ping" => Payload::new("pong"),
            _ => return Ok(()),
        };
        ctx.send_payload(env.sender(), reply)?;
        Ok(())
    }
}

pub(crate) fn ask_never_returns_internal_system_messages(base: TestBase) {
    let sys = start(base);
    let impostor = sys.create_actor::<Impostor>().expect("create");
    for internal in ["exit", "child", "wakeup", "dead", "poisoned exit", "status"] {
        ask_none(&sys, &impostor, internal);
        assert_eq!(
            ask::<String>(&sys, &impostor, "ping"),
            "pong",
            "after {internal:?}"
        );
    }
    // What does pass: poison of a user message, and status replies.
    let poison: PoisonMessage = ask(&sys, &impostor, "poisoned text");
    assert_eq!(
        poison.poison_message.get::<String>().expect("a String"),
        "text"
    );
    let status: ActorStatus = ask(&sys, &impostor, StatusRequest);
    assert_eq!(status.actor_address, impostor);
    listen_none(&sys);
}

pub(crate) fn actor_replying_exit_request_to_outside_is_harmless(base: TestBase) {
    let sys = start(base);
    let impostor = sys.create_actor::<Impostor>().expect("create");
    for _ in 0..3 {
        ask_none(&sys, &impostor, "exit");
    }
    // The endpoint and the system work on.
    assert_eq!(ask::<String>(&sys, &impostor, "ping"), "pong");
    let echo = sys.create_actor::<Echo>().expect("create");
    let reply = ask_env(&sys, &echo, "after");
    assert_eq!(reply.sender(), &echo);
    assert_eq!(reply.reply_as::<String>().unwrap(), "after");
    sys.tell(&impostor, "exit").expect("tell");
    listen_none(&sys);
    assert!(!sys.is_shut_down());
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Impostor);
