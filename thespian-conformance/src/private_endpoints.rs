//! Thespian's `test_threadedExternal.py`: `private()` handles, one per thread, each get only
//! their own replies, in order, while other threads (and the main handle) ask concurrently;
//! a private endpoint is a sender of its own, and closing it turns later messages to it into
//! dead letters without harm.

use std::thread;

use thespian::prelude::*;

use crate::bases::TestBase;
use crate::helpers::{ask, ask_env, listen, listen_none, start, Echo};

const THREADS: u32 = 4;
const ASKS: u32 = 20;

fn ordered_asks(sys: &ActorSystem, echo: &ActorAddress, thread: u32) {
    for i in 0..ASKS {
        let reply = ask_env(sys, echo, (thread, i));
        assert_eq!(reply.sender(), echo);
        assert_eq!(
            reply.reply_as::<(u32, u32)>().unwrap(),
            (thread, i),
            "thread {thread} got someone else's reply"
        );
    }
    listen_none(sys);
}

pub(crate) fn threads_get_only_their_own_replies(base: TestBase) {
    let sys = start(base);
    let shared = sys.create_actor::<Echo>().expect("create");
    thread::scope(|scope| {
        for t in 0..THREADS {
            let (sys, shared) = (&sys, &shared);
            scope.spawn(move || {
                let private = sys.private().expect("private");
                assert_ne!(private.my_address(), sys.my_address());
                // Half the threads share one actor, the others have their own.
                let own;
                let echo = if t % 2 == 0 {
                    shared
                } else {
                    own = private.create_actor::<Echo>().expect("create");
                    &own
                };
                ordered_asks(&private, echo, t);
            });
        }
        ordered_asks(&sys, &shared, THREADS);
    });
}

/// `(to, text)`, an address and a text: sends `text` to `to`, then replies `sent`.
#[derive(Default)]
struct Forwarder;

impl Actor for Forwarder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok((to, text)) = env.get::<(ActorAddress, String)>() {
            ctx.send(to, text.clone())?;
            ctx.send(env.sender(), "sent")?;
        }
        Ok(())
    }
}

pub(crate) fn private_endpoint_is_a_distinct_sender(base: TestBase) {
    let sys = start(base);
    let echo = sys.create_actor::<Echo>().expect("create");
    let private = sys.private().expect("private");
    assert_ne!(private.my_address(), sys.my_address());
    assert_eq!(ask::<String>(&private, &echo, "mine"), "mine");
    listen_none(&sys);
    sys.tell(&echo, "main's").expect("tell");
    assert_eq!(listen::<String>(&sys), "main's");
    listen_none(&private);

    // Messages to a closed endpoint are dead letters, harmless to the sender and the system.
    let closed = private.my_address().clone();
    drop(private);
    let forwarder = sys.create_actor::<Forwarder>().expect("create");
    assert_eq!(
        ask::<String>(&sys, &forwarder, (closed, "into the void".to_owned())),
        "sent"
    );
    listen_none(&sys);
    assert_eq!(ask::<String>(&sys, &echo, "still fine"), "still fine");
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Forwarder);
