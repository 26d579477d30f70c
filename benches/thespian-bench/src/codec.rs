//! The postcard codec path of one message, for `cargo xtask bench --instructions`: a 16-byte
//! message wrapped in a `Payload`, encoded to its wire form (name and bytes) as a send to
//! another process does, then received from the wire and decoded as the receiver's `get` does.
//!
//! ```text
//! thespian-bench codec <size>
//! ```
//!
//! It runs `warmup(size) + size` round trips through the codec and reports their rate; under
//! callgrind the instructions of two sizes give the instructions per message.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use thespian::Payload;

use crate::common::{self, Outcome};

/// The 16-byte message of the one-way tell workload, under its own wire name.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CodecSmall([u8; 16]);

thespian::message!(CodecSmall = "bench.CodecSmall");

/// One message through the codec: encode, then decode from the wire bytes.
fn round_trip(i: u64) -> Result<u8, String> {
    let mut data = [1u8; 16];
    data[0] = i as u8;
    let payload = Payload::new(CodecSmall(data));
    let (name, bytes) = payload.to_wire().map_err(|e| e.to_string())?;
    let received = Payload::from_wire(name, bytes);
    let CodecSmall(back) = received.get::<CodecSmall>().map_err(|e| e.to_string())?;
    Ok(back[0])
}

/// `codec <size>`.
pub(crate) fn main(args: &[String]) -> Outcome {
    let Some(size) = args
        .first()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&n| n > 0)
    else {
        common::fail("usage: codec <size>")
    };
    let run = |n: u64| -> Result<std::time::Duration, String> {
        let start = Instant::now();
        for i in 0..n {
            let byte = round_trip(i)?;
            if byte != i as u8 {
                return Err(format!("message {i} came back as {byte}"));
            }
        }
        Ok(start.elapsed())
    };
    if let Err(e) = run(common::warmup(size)) {
        common::fail(e)
    }
    match run(size) {
        Ok(elapsed) => common::rate(size, elapsed),
        Err(e) => common::fail(e),
    }
}
