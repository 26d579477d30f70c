//! Thespian's `test_actorAdder.py`: a message routed through chains of actors by the
//! addresses it carries, each adding one; the sum reaches the chain's length.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

use crate::bases::TestBase;
use crate::helpers::{ask, start};

/// Adds one, then goes to the next address of `route`, or to `reply_to` as a [`Sum`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Add {
    value: u64,
    route: Vec<ActorAddress>,
    trail: Vec<ActorAddress>,
    reply_to: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sum {
    value: u64,
    trail: Vec<ActorAddress>,
}

/// Asks a [`ChainBuilder`] to build a chain of `length` child adders and run an `Add` through.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BuildChain {
    length: usize,
}

message!(
    Add = "conformance.adder.Add",
    Sum = "conformance.adder.Sum",
    BuildChain = "conformance.adder.BuildChain",
);

#[derive(Default)]
struct Adder {
    seen: u64,
}

impl Actor for Adder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(add) = env.get::<Add>() {
            self.seen += 1;
            let mut next = add.clone();
            next.value += 1;
            next.trail.push(ctx.my_address().clone());
            if next.route.is_empty() {
                let sum = Sum {
                    value: next.value,
                    trail: next.trail,
                };
                ctx.send(&add.reply_to, sum)?;
            } else {
                let to = next.route.remove(0);
                ctx.send(&to, next)?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct ChainBuilder;

impl Actor for ChainBuilder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(build) = env.get::<BuildChain>() {
            let mut route = Vec::with_capacity(build.length);
            for _ in 0..build.length {
                route.push(ctx.create_actor::<Adder>()?);
            }
            let first = route.remove(0);
            let add = Add {
                value: 0,
                route,
                trail: Vec::new(),
                reply_to: env.sender().clone(),
            };
            ctx.send(&first, add)?;
        }
        Ok(())
    }
}

fn chain_of(base: TestBase, length: usize) {
    let sys = start(base);
    let adders: Vec<ActorAddress> = (0..length)
        .map(|_| sys.create_actor::<Adder>().expect("create"))
        .collect();
    let mut everyone: HashSet<&ActorAddress> = adders.iter().collect();
    everyone.insert(sys.my_address());
    assert_eq!(everyone.len(), length + 1, "unique addresses");
    // Twice: the chain is reusable.
    for _ in 0..2 {
        let add = Add {
            value: 0,
            route: adders[1..].to_vec(),
            trail: Vec::new(),
            reply_to: sys.my_address().clone(),
        };
        let sum: Sum = ask(&sys, &adders[0], add);
        assert_eq!(sum.value, length as u64);
        assert_eq!(
            sum.trail, adders,
            "the message went through the chain in order"
        );
    }
}

pub(crate) fn chain_of_10(base: TestBase) {
    chain_of(base, 10);
}

pub(crate) fn chain_of_50(base: TestBase) {
    chain_of(base, 50);
}

pub(crate) fn chain_built_by_an_actor(base: TestBase) {
    let sys = start(base);
    let builder = sys.create_actor::<ChainBuilder>().expect("create");
    for length in [1usize, 10, 50] {
        let sum: Sum = ask(&sys, &builder, BuildChain { length });
        assert_eq!(sum.value, length as u64);
        let unique: HashSet<&ActorAddress> = sum.trail.iter().collect();
        assert_eq!(unique.len(), length);
        assert!(!unique.contains(&builder));
    }
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Adder, ChainBuilder);
