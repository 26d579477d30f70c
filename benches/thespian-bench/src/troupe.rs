//! The troupe benchmark (`cargo xtask bench` runs it after the other workloads):
//!
//! ```text
//! thespian-bench troupe <queue|tcp> <workers> <items>
//! ```
//!
//! A troupe (`thespian_troupe::Troupe`) of `workers` workers, all created and idle before the
//! clock starts, is sent `items` pieces of a fixed CPU-bound computation (`TROUPE_UNITS` units of
//! `common::crunch`) at once from outside; the clock stops at the last answer. xtask runs it with 1
//! worker and with one per core, and reports the speed-up. On `tcp` each worker is its own
//! process. Figures: `secs` (the run's wall time), `rate` (items/s) and `workers` (the workers
//! that answered).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::ThespianError;
use thespian_troupe::{
    Troupe, TroupeMember, TroupeSettings, TroupeStatus, TroupeStatusRequest, UpdateTroupeSettings,
};

use crate::common::{self, crunch, Outcome, PATIENCE, TROUPE_UNITS as UNITS};
use crate::net::{free_admin_port, kill_leftovers, Running, OWNER_ENV};
use crate::thespian_rs::expect_reply;

/// One item of work: `units` units of [`crunch`] seeded with `seed`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Crunch {
    seed: u64,
    units: u32,
}

/// The answer: the item's seed, its result and the worker that computed it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Crunched {
    seed: u64,
    value: u64,
    worker: ActorAddress,
}

message!(
    Crunch = "bench.troupe.Crunch",
    Crunched = "bench.troupe.Crunched"
);

#[derive(Default)]
struct Cruncher;

impl Actor for Cruncher {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(item) = env.get::<Crunch>() {
            let answer = Crunched {
                seed: item.seed,
                value: crunch(item.seed, item.units),
                worker: ctx.my_address().clone(),
            };
            ctx.send(env.sender(), answer)?;
        }
        Ok(())
    }
}

impl TroupeMember for Cruncher {
    fn troupe_settings() -> TroupeSettings {
        // Sized at run time; idle workers are never dismissed during a run.
        TroupeSettings::default()
            .max_count(1)
            .idle_count(1)
            .dismiss_after(Duration::from_secs(3600))
    }
}

thespian::register_actors!(Troupe<Cruncher>);

/// Runs `troupe <queue|tcp> <workers> <items>` (the arguments after `troupe`).
pub(crate) fn main(argv: &[String]) -> Outcome {
    let usage = || -> ! {
        eprintln!("usage: troupe <queue|tcp> <workers> <items>");
        std::process::exit(2)
    };
    let number = |i: usize| match argv.get(i).map(|s| s.parse::<u32>()) {
        Some(Ok(n)) if n > 0 => n,
        _ => usage(),
    };
    if argv.len() != 3 {
        usage();
    }
    let (workers, items) = (number(1), number(2));
    match argv[0].as_str() {
        "queue" => {
            let result = ActorSystem::builder()
                .base(SystemBase::Queue)
                .transient_unique(true)
                .start()
                .and_then(|sys| {
                    let outcome = measure(&sys, workers, items);
                    sys.shutdown()?;
                    outcome
                });
            result.unwrap_or_else(|e| common::fail(e))
        }
        "tcp" => tcp(workers, items),
        _ => usage(),
    }
}

fn tcp(workers: u32, items: u32) -> Outcome {
    // Every process of this system inherits the mark (set while this is the only thread).
    let mark = format!("{}-troupe", std::process::id());
    std::env::set_var(OWNER_ENV, &mark);
    let Some(port) = free_admin_port() else {
        common::fail("no free port for the admin");
    };
    let measured = (|| {
        let running = Running(Some(
            ActorSystem::builder()
                .base(SystemBase::Tcp)
                .transient_unique(true)
                .capability("Admin Port", i64::from(port))
                .advertise_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
                .start()?,
        ));
        let outcome = measure(running.sys(), workers, items)?;
        running.shutdown()?;
        Ok::<_, ThespianError>(outcome)
    })();
    let left = kill_leftovers(&mark);
    let outcome = measured.unwrap_or_else(|e| common::fail(e));
    if left > 0 {
        common::fail(format!(
            "{left} process(es) of the system were still alive after shutdown and were killed"
        ));
    }
    outcome
}

/// Sizes a troupe to `workers`, brings every worker up, then times `items` items.
fn measure(sys: &ActorSystem, workers: u32, items: u32) -> Result<Outcome, ThespianError> {
    let troupe = sys.create_actor::<Troupe<Cruncher>>()?;
    let settings = UpdateTroupeSettings::new(Some(workers), Some(workers))
        .map_err(ThespianError::SystemFailure)?;
    expect_reply(sys.ask(&troupe, settings, PATIENCE)?)?;
    // Warm-up: rounds of `workers` items at once until every worker exists (a worker is
    // created only when none is idle, so a round of slow-enough items creates the rest).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut units = 1;
    loop {
        run_items(sys, &troupe, workers, units)?;
        let status = expect_reply(sys.ask(&troupe, TroupeStatusRequest, PATIENCE)?)?;
        let status = status.get::<TroupeStatus>()?;
        if status.workers as u32 >= workers && status.idle as u32 >= workers {
            break;
        }
        if Instant::now() > deadline {
            return Err(ThespianError::SystemFailure(format!(
                "the troupe did not grow to {workers} workers: {status:?}"
            )));
        }
        units = (units * 2).min(UNITS * 4);
    }
    let begun = Instant::now();
    let used = run_items(sys, &troupe, items, UNITS)?;
    let elapsed = begun.elapsed();
    Ok(Outcome::Figures(vec![
        ("secs", elapsed.as_secs_f64()),
        ("rate", f64::from(items) / elapsed.as_secs_f64()),
        ("workers", used as f64),
    ]))
}

/// Sends `items` items of `units` units at once and waits for every answer; returns how many
/// workers answered.
fn run_items(
    sys: &ActorSystem,
    troupe: &ActorAddress,
    items: u32,
    units: u32,
) -> Result<usize, ThespianError> {
    for seed in 0..u64::from(items) {
        sys.tell(troupe, Crunch { seed, units })?;
    }
    let mut seeds = BTreeSet::new();
    let mut workers = BTreeSet::new();
    while seeds.len() < items as usize {
        let reply = expect_reply(sys.listen(PATIENCE)?)?;
        let answer = reply.get::<Crunched>()?;
        if !seeds.insert(answer.seed) {
            return Err(ThespianError::SystemFailure(format!(
                "item {} answered twice",
                answer.seed
            )));
        }
        workers.insert(answer.worker.clone());
    }
    Ok(workers.len())
}
