//! Bench binary of the thespian-rs contestants (`simple`, `queue`, and the multi-process
//! `tcp`, `udp`), the raw crossbeam-channel limit (`raw`) and the raw socket and fork+exec
//! limits of the cross-process workloads (`raw-net`), one workload per process:
//!
//! ```text
//! thespian-bench <simple|queue|raw> <workload> <size>
//! thespian-bench <tcp|udp|raw-net> <cross-process workload> <size>
//! thespian-bench conventions <remote-create|sim> <size>
//! thespian-bench troupe <queue|tcp> <workers> <items>
//! thespian-bench codec <size>
//! ```
//!
//! `cargo xtask bench` builds it with `--release` and runs it once per run of every figure.
//! The result line is described in `common.rs`. The multi-process bases re-execute this binary
//! as their admin daemon and actors' processes (`thespian::init()`), and `raw-net` as its
//! helper processes.

mod codec;
mod common;
mod conventions;
mod net;
mod raw;
mod raw_net;
mod thespian_rs;
mod troupe;

use common::Outcome;
use thespian::SystemBase;

fn main() {
    // First: a process the Tcp/Udp bases re-executed takes its role here and never returns.
    thespian::init();
    // Likewise the helper processes of the raw socket references.
    raw_net::helper_if_any();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("conventions") {
        common::finish(conventions::main(&argv[1..]));
    }
    if argv.first().map(String::as_str) == Some("codec") {
        common::finish(codec::main(&argv[1..]));
    }
    if argv.first().map(String::as_str) == Some("troupe") {
        common::finish(troupe::main(&argv[1..]));
    }
    if matches!(
        argv.first().map(String::as_str),
        Some("tcp" | "udp" | "raw-net")
    ) {
        common::finish(net::main(&argv));
    }
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
