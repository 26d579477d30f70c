//! Thespian's `test_generators.py`: an actor creates 8 actors with global names
//! `/rally/driver/worker/N` and requirements, sends to them, and matches each reply to its
//! worker by comparing the reply's sender with the address `create` returned.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{CreateRequest, NewActor, Requirements};

use crate::bases::TestBase;
use crate::helpers::{ask, start};

const WORKERS: usize = 8;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Generate;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Work(usize);

/// A worker's answer: the index it was given, its global name and its `worker` requirement.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Done {
    index: usize,
    global_name: Option<String>,
    requirement: Option<i64>,
}

/// The generator's verdict once every worker answered.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Matched {
    workers: Vec<ActorAddress>,
    matched: usize,
    problems: Vec<String>,
}

message!(
    Generate = "conformance.generators.Generate",
    Work = "conformance.generators.Work",
    Done = "conformance.generators.Done",
    Matched = "conformance.generators.Matched",
);

fn worker_name(index: usize) -> String {
    format!("/rally/driver/worker/{index}")
}

#[derive(Default)]
struct Generator {
    reply_to: Option<ActorAddress>,
    workers: Vec<ActorAddress>,
    answered: usize,
    matched: usize,
    problems: Vec<String>,
}

impl Actor for Generator {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<Generate>() {
            self.reply_to = Some(env.sender().clone());
            for index in 0..WORKERS {
                let request = CreateRequest::of::<Worker>()
                    .global_name(worker_name(index))
                    .requirements(Requirements::new().with("worker", index as i64));
                let worker = ctx.create(request)?;
                self.workers.push(worker.clone());
                ctx.send(&worker, Work(index))?;
            }
        } else if let Ok(done) = env.get::<Done>() {
            self.answered += 1;
            match self.workers.iter().position(|w| w == env.sender()) {
                Some(i) if i == done.index => {
                    if done.global_name.as_deref() != Some(worker_name(i).as_str()) {
                        self.problems
                            .push(format!("worker {i} is named {:?}", done.global_name));
                    } else if done.requirement != Some(i as i64) {
                        self.problems
                            .push(format!("worker {i} got requirement {:?}", done.requirement));
                    } else {
                        self.matched += 1;
                    }
                }
                other => self.problems.push(format!(
                    "reply for worker {} came from {} (position {other:?})",
                    done.index,
                    env.sender()
                )),
            }
            if self.answered == WORKERS {
                let matched = Matched {
                    workers: self.workers.clone(),
                    matched: self.matched,
                    problems: self.problems.clone(),
                };
                ctx.send(self.reply_to.as_ref().ok_or("no requester")?, matched)?;
            }
        }
        Ok(())
    }
}

struct Worker {
    requirement: Option<i64>,
}

impl NewActor for Worker {
    fn new_actor(_: &Capabilities, reqs: &Requirements) -> Result<Self, thespian::ActorError> {
        Ok(Worker {
            requirement: reqs.get("worker").and_then(CapabilityValue::as_int),
        })
    }
}

impl Actor for Worker {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(Work(index)) = env.get::<Work>() {
            let done = Done {
                index: *index,
                global_name: ctx.global_name().map(str::to_owned),
                requirement: self.requirement,
            };
            ctx.send(env.sender(), done)?;
        }
        Ok(())
    }

    fn capability_check(_: &Capabilities, requirements: &Requirements) -> bool {
        requirements.contains("worker")
    }
}

pub(crate) fn named_workers_matched_by_sender(base: TestBase) {
    let sys = start(base);
    let generator = sys.create_actor::<Generator>().expect("create");
    let matched: Matched = ask(&sys, &generator, Generate);
    assert!(matched.problems.is_empty(), "{:?}", matched.problems);
    assert_eq!(matched.matched, WORKERS);
    let unique: HashSet<&ActorAddress> = matched.workers.iter().collect();
    assert_eq!(unique.len(), WORKERS);
    // The names are system-wide: creating one from outside returns the generator's worker.
    let again = sys
        .create_actor_with::<Worker>(
            CreateOptions::new()
                .global_name(worker_name(3))
                .requirement("worker", 3i64),
        )
        .expect("create by existing name");
    assert_eq!(again, matched.workers[3]);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Generator, Worker);
