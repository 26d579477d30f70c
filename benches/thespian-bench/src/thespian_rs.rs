//! The thespian-rs contestants: the workloads as ordinary thespian actors, on the base named on
//! the command line (`simple` or `queue`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::ThespianError;

use crate::common::{self, Outcome, Workload, BATCH, PATIENCE, WINDOW};

/// Starts pinging `ponger` `n` times; the pinger replies `Done(n)` to the sender.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PingStart {
    n: u64,
    ponger: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ping;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pong;

/// A workload finished; the number is a count or a checksum.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Done(u64);

/// Starts sending `n` messages of `size` bytes to `consumer`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TellStart {
    n: u64,
    size: usize,
    consumer: ActorAddress,
}

/// Tells the consumer how many messages to expect.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TellSetup(u64);

/// The consumer received this many more messages.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ack(u64);

/// A 16-byte message.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Small([u8; 16]);

/// A large message (64 KiB in the workload), allocated per message.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Big(Vec<u8>);

/// SkyNet: sum the numbers `num .. num + size`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sky {
    num: u64,
    size: u64,
}

/// A subtree's sum.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sum(u64);

/// Create this many idle children (in chunks), then reply `Done`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Spawn(u64);

/// The spawner's continuation: this many children still to create for `client`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SpawnMore {
    left: u64,
    client: ActorAddress,
}

thespian::message!(
    PingStart = "bench.PingStart",
    Ping = "bench.Ping",
    Pong = "bench.Pong",
    Done = "bench.Done",
    TellStart = "bench.TellStart",
    TellSetup = "bench.TellSetup",
    Ack = "bench.Ack",
    Small = "bench.Small",
    Big = "bench.Big",
    Sky = "bench.Sky",
    Sum = "bench.Sum",
    Spawn = "bench.Spawn",
    SpawnMore = "bench.SpawnMore",
);

#[derive(Default)]
struct Pinger {
    left: u64,
    n: u64,
    ponger: Option<ActorAddress>,
    client: Option<ActorAddress>,
}

impl Actor for Pinger {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.payload().has_type::<Pong>() {
            self.left -= 1;
            if self.left == 0 {
                if let Some(client) = &self.client {
                    ctx.send(client, Done(self.n))?;
                }
            } else if let Some(ponger) = &self.ponger {
                ctx.send(ponger, Ping)?;
            }
        } else if let Ok(start) = env.get::<PingStart>() {
            self.n = start.n;
            self.left = start.n;
            self.client = Some(env.sender().clone());
            self.ponger = Some(start.ponger.clone());
            ctx.send(&start.ponger, Ping)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Ponger;

impl Actor for Ponger {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.payload().has_type::<Ping>() {
            ctx.send(env.sender(), Pong)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Producer {
    remaining: u64,
    size: usize,
    consumer: Option<ActorAddress>,
    client: Option<ActorAddress>,
}

impl Producer {
    fn send_some(&mut self, count: u64, ctx: &mut Context<'_>) -> ActorResult {
        let Some(consumer) = self.consumer.clone() else {
            return Ok(());
        };
        let count = count.min(self.remaining);
        self.remaining -= count;
        for _ in 0..count {
            if self.size <= common::SMALL {
                ctx.send(&consumer, Small([1; 16]))?;
            } else {
                ctx.send(&consumer, Big(vec![1; self.size]))?;
            }
        }
        Ok(())
    }
}

impl Actor for Producer {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(Ack(count)) = env.get::<Ack>() {
            self.send_some(*count, ctx)?;
        } else if let Ok(done) = env.get::<Done>() {
            if let Some(client) = &self.client {
                ctx.send(client, done.clone())?;
            }
        } else if let Ok(start) = env.get::<TellStart>() {
            self.remaining = start.n;
            self.size = start.size;
            self.consumer = Some(start.consumer.clone());
            self.client = Some(env.sender().clone());
            ctx.send(&start.consumer, TellSetup(start.n))?;
            self.send_some(WINDOW, ctx)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Consumer {
    expected: u64,
    got: u64,
    since_ack: u64,
    checksum: u64,
}

impl Consumer {
    fn got_one(&mut self, byte: u8, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        self.got += 1;
        self.since_ack += 1;
        self.checksum += u64::from(byte);
        if self.got == self.expected {
            ctx.send(env.sender(), Done(self.checksum))?;
        } else if self.since_ack == BATCH {
            self.since_ack = 0;
            ctx.send(env.sender(), Ack(BATCH))?;
        }
        Ok(())
    }
}

impl Actor for Consumer {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(Small(data)) = env.get::<Small>() {
            self.got_one(data[0], env, ctx)
        } else if let Ok(Big(data)) = env.get::<Big>() {
            self.got_one(data[data.len() - 1], env, ctx)
        } else if let Ok(TellSetup(n)) = env.get::<TellSetup>() {
            *self = Consumer {
                expected: *n,
                ..Consumer::default()
            };
            Ok(())
        } else {
            Ok(())
        }
    }
}

#[derive(Default)]
struct SkyNode {
    parent: Option<ActorAddress>,
    pending: u32,
    total: u64,
}

impl Actor for SkyNode {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(Sum(part)) = env.get::<Sum>() {
            self.total += part;
            self.pending -= 1;
            if self.pending == 0 {
                if let Some(parent) = &self.parent {
                    ctx.send(parent, Sum(self.total))?;
                }
            }
        } else if let Ok(sky) = env.get::<Sky>() {
            if sky.size == 1 {
                ctx.send(env.sender(), Sum(sky.num))?;
            } else {
                self.parent = Some(env.sender().clone());
                self.pending = 10;
                let step = sky.size / 10;
                for i in 0..10 {
                    let child = ctx.create_actor::<SkyNode>()?;
                    ctx.send(
                        &child,
                        Sky {
                            num: sky.num + i * step,
                            size: step,
                        },
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Idle;

impl Actor for Idle {
    fn receive(&mut self, _env: &Envelope, _ctx: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
}

/// Children created per message, so no per-message buffer grows with the total.
const SPAWN_CHUNK: u64 = 1000;

#[derive(Default)]
struct Spawner;

impl Spawner {
    fn spawn(&mut self, left: u64, client: &ActorAddress, ctx: &mut Context<'_>) -> ActorResult {
        let now = left.min(SPAWN_CHUNK);
        for _ in 0..now {
            ctx.create_actor::<Idle>()?;
        }
        if left > now {
            let me = ctx.my_address().clone();
            ctx.send(
                &me,
                SpawnMore {
                    left: left - now,
                    client: client.clone(),
                },
            )?;
        } else {
            ctx.send(client, Done(0))?;
        }
        Ok(())
    }
}

impl Actor for Spawner {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(more) = env.get::<SpawnMore>() {
            let client = more.client.clone();
            self.spawn(more.left, &client, ctx)
        } else if let Ok(Spawn(n)) = env.get::<Spawn>() {
            let client = env.sender().clone();
            self.spawn(*n, &client, ctx)
        } else {
            Ok(())
        }
    }
}

#[derive(Default)]
pub(crate) struct Echo;

impl Actor for Echo {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        ctx.forward(env.sender(), env)?;
        Ok(())
    }
}

/// Runs `workload` on `base`.
pub(crate) fn run(
    base: SystemBase,
    workload: Workload,
    size: u64,
) -> Result<Outcome, ThespianError> {
    let sys = match ActorSystem::builder()
        .base(base)
        .transient_unique(true)
        .processing_limit(usize::MAX)
        .start()
    {
        Ok(sys) => sys,
        Err(ThespianError::StartupFailure(reason)) => return Ok(Outcome::Unavailable(reason)),
        Err(other) => return Err(other),
    };
    let outcome = match workload {
        Workload::PingPong => ping_pong(&sys, size, 1)?,
        Workload::PingPongCores => ping_pong(&sys, size, common::cores())?,
        Workload::Tell16 | Workload::Tell64k => tell(&sys, size, workload.tell_size())?,
        Workload::Skynet => skynet(&sys, size)?,
        Workload::Idle => idle(&sys, size)?,
        Workload::Ask => ask(&sys, size)?,
    };
    if !matches!(workload, Workload::Skynet | Workload::Idle) {
        sys.shutdown()?;
    }
    Ok(outcome)
}

pub(crate) fn expect_reply(reply: Option<Envelope>) -> Result<Envelope, ThespianError> {
    reply.ok_or_else(|| ThespianError::SystemFailure("no reply within the bench's patience".into()))
}

pub(crate) fn ping_pong(
    sys: &ActorSystem,
    size: u64,
    pairs: u64,
) -> Result<Outcome, ThespianError> {
    let mut actors = Vec::new();
    for _ in 0..pairs {
        actors.push((sys.create_actor::<Pinger>()?, sys.create_actor::<Ponger>()?));
    }
    let per_pair = (size / pairs).max(1);
    let round = |n: u64| -> Result<Duration, ThespianError> {
        let start = Instant::now();
        for (pinger, ponger) in &actors {
            let ponger = ponger.clone();
            sys.tell(pinger, PingStart { n, ponger })?;
        }
        for _ in 0..pairs {
            let reply = expect_reply(sys.listen(PATIENCE)?)?;
            if !reply.payload().has_type::<Done>() {
                return Err(ThespianError::SystemFailure(format!(
                    "unexpected reply {}",
                    reply.type_name()
                )));
            }
        }
        Ok(start.elapsed())
    };
    round(common::warmup(per_pair))?;
    let elapsed = round(per_pair)?;
    Ok(common::rate(per_pair * pairs, elapsed))
}

fn tell(sys: &ActorSystem, size: u64, bytes: usize) -> Result<Outcome, ThespianError> {
    let producer = sys.create_actor::<Producer>()?;
    let consumer = sys.create_actor::<Consumer>()?;
    let round = |n: u64| -> Result<Duration, ThespianError> {
        let start = Instant::now();
        let consumer = consumer.clone();
        let reply = sys.ask(
            &producer,
            TellStart {
                n,
                size: bytes,
                consumer,
            },
            PATIENCE,
        )?;
        let Done(checksum) = *expect_reply(reply)?.get::<Done>()?;
        if checksum != n {
            return Err(ThespianError::SystemFailure(format!(
                "consumer counted {checksum} of {n}"
            )));
        }
        Ok(start.elapsed())
    };
    round(common::warmup(size))?;
    let elapsed = round(size)?;
    Ok(common::rate(size, elapsed))
}

fn skynet(sys: &ActorSystem, size: u64) -> Result<Outcome, ThespianError> {
    common::check_skynet_size(size);
    let start = Instant::now();
    let root = sys.create_actor::<SkyNode>()?;
    let reply = sys.ask(&root, Sky { num: 0, size }, PATIENCE)?;
    let Sum(sum) = *expect_reply(reply)?.get::<Sum>()?;
    Ok(common::skynet(size, start.elapsed(), sum))
}

fn idle(sys: &ActorSystem, size: u64) -> Result<Outcome, ThespianError> {
    let spawner = sys.create_actor::<Spawner>()?;
    expect_reply(sys.ask(&spawner, Spawn(1), PATIENCE)?)?;
    common::settle();
    let before = common::rss_bytes();
    expect_reply(sys.ask(&spawner, Spawn(size), PATIENCE)?)?;
    common::settle();
    let after = common::rss_bytes();
    Ok(common::bytes_per_actor(before, after, size))
}

pub(crate) fn ask(sys: &ActorSystem, size: u64) -> Result<Outcome, ThespianError> {
    let echo = sys.create_actor::<Echo>()?;
    let round = |n: u64| -> Result<(Vec<Duration>, Duration), ThespianError> {
        let mut latencies = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            let reply = expect_reply(sys.ask(&echo, i, PATIENCE)?)?;
            latencies.push(t.elapsed());
            if *reply.get::<u64>()? != i {
                return Err(ThespianError::SystemFailure("echo mismatch".into()));
            }
        }
        Ok((latencies, start.elapsed()))
    };
    round(common::warmup(size))?;
    let (latencies, elapsed) = round(size)?;
    Ok(common::ask(latencies, elapsed))
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Pinger, Ponger, Producer, Consumer, SkyNode, Idle, Spawner, Echo);
