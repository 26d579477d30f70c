//! Thespian's `test_bigmessages.py`: echoes of `"hello"` repeated up to 50 MB come back whole.
//! Lengths are compared (and the contents, without printing them).

use thespian::prelude::*;

use crate::helpers::{describe, start, Echo, REPLY_TIMEOUT};

pub(crate) fn echo_of_growing_messages(base: SystemBase) {
    let sys = start(base);
    let echo = sys.create_actor::<Echo>().expect("create");
    // 5 B, 25 B, 50 KB, 500 KB, 5 MB, 50 MB.
    for repeats in [1usize, 5, 10_000, 100_000, 1_000_000, 10_000_000] {
        let message = "hello".repeat(repeats);
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
