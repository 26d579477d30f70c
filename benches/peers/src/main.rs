//! Bench binary of the other Rust actor libraries, one workload per process:
//!
//! ```text
//! peers-bench <actix|ractor|kameo> <workload> <size>
//! peers-bench ractor-factory <workers> <items>     # the troupe benchmark's peer
//! ```
//!
//! Each library is used through its idiomatic API: tell (`do_send` / `cast` / `tell`) between
//! actors, ask (`send` / `call` / `ask`) from a thread outside the runtime. ractor and kameo
//! run on a multi-threaded tokio runtime (one worker per core); actix runs its actors on
//! single-threaded arbiters, as actix does (one arbiter per pair in `ping-pong-cores`).
//! The protocols and the result line are those of `benches/thespian-bench`.

#[path = "../../thespian-bench/src/common.rs"]
mod common;

mod actix_bench;
mod factory_bench;
mod kameo_bench;
mod ractor_bench;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("ractor-factory") {
        common::finish(factory_bench::main(&argv[1..]));
    }
    let args = common::args(&["actix", "ractor", "kameo"]);
    let outcome = match args.contestant.as_str() {
        "actix" => actix_bench::run(args.workload, args.size),
        "ractor" => ractor_bench::run(args.workload, args.size),
        _ => kameo_bench::run(args.workload, args.size),
    };
    common::finish(outcome)
}
