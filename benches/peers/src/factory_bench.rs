//! ractor's factory as the troupe benchmark's peer:
//!
//! ```text
//! peers-bench ractor-factory <workers> <items>
//! ```
//!
//! The same workload as `thespian-bench troupe`: a factory of `workers` workers (queuer
//! routing: a job goes to a free worker, else waits in the factory's queue), every worker
//! started and warmed before the clock starts, is sent `items` jobs of the same computation
//! (`common::crunch`, `TROUPE_UNITS` units) at once from outside the runtime; the clock stops
//! when the last answer reaches the outside thread. Figures: `secs`, `rate`, `workers`.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Instant;

use ractor::factory::queues::DefaultQueue;
use ractor::factory::routing::QueuerRouting;
use ractor::factory::{
    DiscardSettings, Factory, FactoryArguments, FactoryMessage, Job, JobOptions, Worker,
    WorkerBuilder, WorkerId,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::common::{self, crunch, Outcome, PATIENCE, TROUPE_UNITS};

/// An answer: the job's key (its seed), the worker, the result.
type Answer = (u64, WorkerId, u64);

struct Cruncher {
    answers: mpsc::Sender<Answer>,
}

impl Worker for Cruncher {
    type Key = u64;
    type Message = u32;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<u64, u32>>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<u64, u32>>,
        Job { key, msg, .. }: Job<u64, u32>,
        _state: &mut (),
    ) -> Result<u64, ActorProcessingErr> {
        let value = crunch(key, msg);
        let _ = self.answers.send((key, wid, value));
        Ok(key)
    }
}

struct Builder {
    answers: mpsc::Sender<Answer>,
}

impl WorkerBuilder<Cruncher, ()> for Builder {
    fn build(&mut self, _wid: WorkerId) -> (Cruncher, ()) {
        (
            Cruncher {
                answers: self.answers.clone(),
            },
            (),
        )
    }
}

type CrunchFactory =
    Factory<u64, u32, (), Cruncher, QueuerRouting<u64, u32>, DefaultQueue<u64, u32>>;

/// Runs `ractor-factory <workers> <items>` (the arguments after the contestant).
pub(crate) fn main(argv: &[String]) -> Outcome {
    let number = |i: usize| match argv.get(i).map(|s| s.parse::<u64>()) {
        Some(Ok(n)) if n > 0 && argv.len() == 2 => n,
        _ => {
            eprintln!("usage: ractor-factory <workers> <items>");
            std::process::exit(2)
        }
    };
    let (workers, items) = (number(0), number(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| common::fail(e));
    let (tx, answers) = mpsc::channel();
    let arguments = FactoryArguments {
        num_initial_workers: workers as usize,
        queue: DefaultQueue::default(),
        router: QueuerRouting::default(),
        capacity_controller: None,
        dead_mans_switch: None,
        discard_handler: None,
        discard_settings: DiscardSettings::None,
        lifecycle_hooks: None,
        worker_builder: Box::new(Builder { answers: tx }),
        stats: None,
    };
    let (factory, handle) = rt
        .block_on(Actor::spawn(None, CrunchFactory::default(), arguments))
        .unwrap_or_else(|e| common::fail(e));
    // Warm-up: one round of small jobs, one per worker.
    run_jobs(&factory, &answers, 0, workers, 1);
    let begun = Instant::now();
    let used = run_jobs(&factory, &answers, workers, items, TROUPE_UNITS);
    let elapsed = begun.elapsed();
    factory.stop(None);
    rt.block_on(handle).unwrap_or_else(|e| common::fail(e));
    Outcome::Figures(vec![
        ("secs", elapsed.as_secs_f64()),
        ("rate", items as f64 / elapsed.as_secs_f64()),
        ("workers", used as f64),
    ])
}

/// Dispatches jobs `first..first + n` of `units` units and waits for every answer; returns how
/// many workers answered.
fn run_jobs(
    factory: &ActorRef<FactoryMessage<u64, u32>>,
    answers: &mpsc::Receiver<Answer>,
    first: u64,
    n: u64,
    units: u32,
) -> usize {
    for key in first..first + n {
        let job = Job {
            key,
            msg: units,
            options: JobOptions::default(),
            accepted: None,
        };
        if factory.cast(FactoryMessage::Dispatch(job)).is_err() {
            common::fail("ractor: the factory stopped");
        }
    }
    let mut keys = BTreeSet::new();
    let mut workers = BTreeSet::new();
    while keys.len() < n as usize {
        let (key, wid, _) = answers
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| common::fail(format!("ractor: no answer: {e}")));
        if !keys.insert(key) {
            common::fail(format!("ractor: job {key} answered twice"));
        }
        workers.insert(wid);
    }
    workers.len()
}
