//! Thespian's `test_bigmessages.py`: echoes of `"hello"` repeated up to 50 MB come back whole.
//! Lengths are compared (and the contents, without printing them).
//!
//! On a base whose transport limits the size of a message ([`Traits::max_message`]: UDP's
//! datagram), the messages beyond the limit must instead fail at the sender, `tell` and `ask`
//! alike, with an error naming the limit, and leave the actor unharmed. The sizes stay well away
//! from the limit, so the envelope's own bytes never decide which side a message falls on.
//!
//! [`Traits::max_message`]: crate::bases::Traits::max_message

use thespian::prelude::*;
use thespian::ThespianError;

use crate::bases::{traits, TestBase};
use crate::helpers::{ask, describe, start, Echo, REPLY_TIMEOUT};

pub(crate) fn echo_of_growing_messages(base: TestBase) {
    let sys = start(base);
    let max_message = traits(base).max_message;
    let echo = sys.create_actor::<Echo>().expect("create");
    // 5 B, 25 B, 50 KB, 500 KB, 5 MB, 50 MB.
    for repeats in [1usize, 5, 10_000, 100_000, 1_000_000, 10_000_000] {
        let message = "hello".repeat(repeats);
        if let Some(limit) = max_message.filter(|&limit| message.len() > limit) {
            too_big_is_refused(&sys, &echo, message, limit, base);
            continue;
        }
        let timeout = if repeats >= 1_000_000 {
            REPLY_TIMEOUT * 4
        } else {
            REPLY_TIMEOUT
        };
        let reply = sys
            .ask(&echo, message.clone(), timeout)
            .expect("ask is accepted")
            .unwrap_or_else(|| panic!("no echo of {} bytes", message.len()));
        assert_eq!(reply.sender(), &echo);
        let description = describe(&reply);
        let echoed = reply
            .get::<String>()
            .unwrap_or_else(|e| panic!("expected a String, got {description}: {e}"));
        assert_eq!(echoed.len(), message.len());
        assert!(
            *echoed == message,
            "the echo of {} bytes differs",
            message.len()
        );
    }
}

/// `message` exceeds `base`'s `limit`: `tell` and `ask` fail with an error naming the limit, and
/// `echo` still answers a small message.
fn too_big_is_refused(
    sys: &ActorSystem,
    echo: &ActorAddress,
    message: String,
    limit: usize,
    base: TestBase,
) {
    let size = message.len();
    let names_the_limit = |call: &str, error: ThespianError| {
        let text = error.to_string();
        assert!(
            text.contains(&limit.to_string()),
            "{call} of {size} bytes on {base}: the error names the limit {limit}: {text}"
        );
    };
    match sys.tell(echo, message.clone()) {
        Ok(()) => panic!("tell of {size} bytes on {base} (limit {limit}) was accepted"),
        Err(e) => names_the_limit("tell", e),
    }
    match sys.ask(echo, message, REPLY_TIMEOUT) {
        Ok(reply) => panic!(
            "ask of {size} bytes on {base} (limit {limit}) was accepted, reply: {:?}",
            reply.as_ref().map(describe)
        ),
        Err(e) => names_the_limit("ask", e),
    }
    assert_eq!(
        ask::<String>(sys, echo, "still there?"),
        "still there?",
        "the echo actor is unharmed"
    );
}
