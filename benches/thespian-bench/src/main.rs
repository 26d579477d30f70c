//! Bench binary of the thespian-rs contestants (`simple`, `queue`) and the raw
//! crossbeam-channel limit (`raw`), one workload per process:
//!
//! ```text
//! thespian-bench <simple|queue|raw> <workload> <size>
//! ```
//!
//! `cargo xtask bench` builds it with `--release` and runs it once per run of every figure.
//! The result line is described in `common.rs`.

mod common;
mod raw;
mod thespian_rs;

use common::Outcome;
use thespian::SystemBase;

fn main() {
    thespian::init();
    let args = common::args(&["simple", "queue", "raw"]);
    let outcome: Outcome = match args.contestant.as_str() {
        "raw" => raw::run(args.workload, args.size),
        name => {
            let base = if name == "queue" {
                SystemBase::Queue
            } else {
                SystemBase::Simple
            };
            match thespian_rs::run(base, args.workload, args.size) {
                Ok(outcome) => outcome,
                Err(e) => common::fail(e),
            }
        }
    };
    common::finish(outcome)
}
