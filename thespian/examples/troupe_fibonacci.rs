//! Thespian's troupe example: a troupe of workers computing Fibonacci numbers (the slow,
//! recursive way, so the work is CPU-bound), behind one address. The program sends every
//! request to the troupe, prints each result with the worker that computed it, and the time.
//!
//! Run it with `cargo run --release --example troupe_fibonacci -- [BASE] [MAX_COUNT]`, where
//! BASE is `simple` (the default), `queue`, `tcp` or `udp`, and MAX_COUNT the most workers
//! (default: one per core). On `tcp` and `udp` each worker is its own process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian_troupe::{Troupe, TroupeMember, TroupeSettings, UpdateTroupeSettings};

/// Asks for the `n`th Fibonacci number.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Fib(u32);

/// The answer, and which worker computed it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FibResult {
    n: u32,
    value: u64,
    worker: ActorAddress,
}

message!(
    Fib = "troupe_fibonacci.Fib",
    FibResult = "troupe_fibonacci.FibResult"
);

/// A troupe member: answers each [`Fib`] with a [`FibResult`].
#[derive(Default)]
struct Fibonacci;

impl Actor for Fibonacci {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(Fib(n)) = env.get::<Fib>() {
            let result = FibResult {
                n: *n,
                value: fib(*n),
                worker: ctx.my_address().clone(),
            };
            ctx.send(env.sender(), result)?;
        }
        Ok(())
    }
}

impl TroupeMember for Fibonacci {
    fn troupe_settings() -> TroupeSettings {
        TroupeSettings::default().max_count(10).idle_count(2)
    }
}

fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    thespian::init();
    let mut args = std::env::args().skip(1);
    let base: SystemBase = match args.next() {
        Some(name) => name.parse()?,
        None => SystemBase::Simple,
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let max_count = match args.next() {
        Some(n) => n
            .parse::<u32>()
            .map_err(|e| format!("MAX_COUNT {n:?}: {e}"))?,
        None => cores,
    };
    let system = ActorSystem::builder().base(base).start()?;
    let troupe = system.create_actor::<Troupe<Fibonacci>>()?;
    let settings = UpdateTroupeSettings::new(Some(max_count), None)?;
    system.ask(&troupe, settings, Duration::from_secs(10))?;

    let requests: Vec<u32> = (0..24).map(|i| 30 + i % 8).collect();
    println!(
        "computing {} Fibonacci numbers on {base} with at most {max_count} workers",
        requests.len()
    );
    let started = Instant::now();
    for n in &requests {
        system.tell(&troupe, Fib(*n))?;
    }
    let mut workers = BTreeMap::new();
    for _ in &requests {
        let Some(reply) = system.listen(Duration::from_secs(60))? else {
            println!("no answer within 60 s");
            break;
        };
        let result = reply.get::<FibResult>()?;
        println!(
            "fib({}) = {}  (by {})",
            result.n, result.value, result.worker
        );
        *workers.entry(result.worker.clone()).or_insert(0) += 1;
    }
    println!(
        "{} results from {} workers in {:.3} s",
        workers.values().sum::<u32>(),
        workers.len(),
        started.elapsed().as_secs_f64()
    );
    system.shutdown()?;
    Ok(())
}

// The types a multi-process system creates here, by name: the troupe (leader and workers).
thespian::register_actors!(Troupe<Fibonacci>);
