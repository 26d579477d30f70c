//! kameo 0.22 on a multi-threaded tokio runtime: `tell(..).await` between actors (default
//! bounded mailboxes of 64), `ask(..).blocking_send()` from the outside thread.

use std::sync::mpsc;
use std::time::Instant;

use kameo::actor::{ActorRef, Spawn};
use kameo::message::{Context, Message};
use kameo::Actor;
use tokio::runtime::Runtime;

use crate::common::{self, Outcome, Workload, BATCH, PATIENCE, WINDOW};

/// Runs `workload` on kameo.
pub(crate) fn run(workload: Workload, size: u64) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| common::fail(e));
    // `spawn` needs a runtime context; the main thread stays outside the workers.
    let _guard = rt.enter();
    match workload {
        Workload::PingPong => ping_pong(size, 1),
        Workload::PingPongCores => ping_pong(size, common::cores()),
        Workload::Tell16 | Workload::Tell64k => tell(size, workload.tell_size()),
        Workload::Skynet => skynet(size),
        Workload::Idle => idle(&rt, size),
        Workload::Ask => ask(size),
    }
}

fn wait<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|e| common::fail(format!("kameo: no completion: {e}")))
}

fn tell_outside<A, M>(to: &ActorRef<A>, msg: M)
where
    A: Message<M>,
    M: Send + 'static,
{
    if to.tell(msg).blocking_send().is_err() {
        common::fail("kameo: tell to a stopped actor");
    }
}

struct Start {
    n: u64,
    ponger: ActorRef<Ponger>,
    done: mpsc::Sender<u64>,
}

struct Ping(ActorRef<Pinger>);

struct Pong;

#[derive(Actor, Default)]
struct Pinger {
    left: u64,
    n: u64,
    ponger: Option<ActorRef<Ponger>>,
    done: Option<mpsc::Sender<u64>>,
}

impl Message<Start> for Pinger {
    type Reply = ();
    async fn handle(&mut self, msg: Start, ctx: &mut Context<Self, ()>) {
        self.n = msg.n;
        self.left = msg.n;
        let _ = msg.ponger.tell(Ping(ctx.actor_ref().clone())).await;
        self.ponger = Some(msg.ponger);
        self.done = Some(msg.done);
    }
}

impl Message<Pong> for Pinger {
    type Reply = ();
    async fn handle(&mut self, _: Pong, ctx: &mut Context<Self, ()>) {
        self.left -= 1;
        if self.left == 0 {
            if let Some(done) = &self.done {
                let _ = done.send(self.n);
            }
        } else if let Some(ponger) = &self.ponger {
            let _ = ponger.tell(Ping(ctx.actor_ref().clone())).await;
        }
    }
}

#[derive(Actor)]
struct Ponger;

impl Message<Ping> for Ponger {
    type Reply = ();
    async fn handle(&mut self, Ping(from): Ping, _: &mut Context<Self, ()>) {
        let _ = from.tell(Pong).await;
    }
}

fn ping_pong(size: u64, pairs: u64) -> Outcome {
    let per_pair = (size / pairs).max(1);
    let actors: Vec<_> = (0..pairs)
        .map(|_| (Pinger::spawn(Pinger::default()), Ponger::spawn(Ponger)))
        .collect();
    let round = |n: u64| {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        for (pinger, ponger) in &actors {
            tell_outside(
                pinger,
                Start {
                    n,
                    ponger: ponger.clone(),
                    done: tx.clone(),
                },
            );
        }
        for _ in 0..pairs {
            wait(&rx);
        }
        start.elapsed()
    };
    round(common::warmup(per_pair));
    let elapsed = round(per_pair);
    common::rate(per_pair * pairs, elapsed)
}

struct TellStart {
    n: u64,
    size: usize,
    consumer: ActorRef<Consumer>,
    done: mpsc::Sender<u64>,
}

struct TellSetup {
    n: u64,
    producer: ActorRef<Producer>,
}

struct Small([u8; 16]);

struct Big(Vec<u8>);

struct Ack(u64);

#[derive(Actor, Default)]
struct Producer {
    remaining: u64,
    size: usize,
    consumer: Option<ActorRef<Consumer>>,
    done: Option<mpsc::Sender<u64>>,
}

impl Producer {
    async fn send_some(&mut self, count: u64) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let count = count.min(self.remaining);
        self.remaining -= count;
        for _ in 0..count {
            let sent = if self.size <= common::SMALL {
                consumer.tell(Small([1; 16])).await.is_ok()
            } else {
                consumer.tell(Big(vec![1; self.size])).await.is_ok()
            };
            if !sent {
                common::fail("kameo: consumer stopped");
            }
        }
    }
}

impl Message<TellStart> for Producer {
    type Reply = ();
    async fn handle(&mut self, msg: TellStart, ctx: &mut Context<Self, ()>) {
        let setup = TellSetup {
            n: msg.n,
            producer: ctx.actor_ref().clone(),
        };
        let _ = msg.consumer.tell(setup).await;
        *self = Producer {
            remaining: msg.n,
            size: msg.size,
            consumer: Some(msg.consumer),
            done: Some(msg.done),
        };
        self.send_some(WINDOW).await;
    }
}

impl Message<Ack> for Producer {
    type Reply = ();
    async fn handle(&mut self, Ack(count): Ack, _: &mut Context<Self, ()>) {
        if count == u64::MAX {
            if let Some(done) = &self.done {
                let _ = done.send(0);
            }
        } else {
            self.send_some(count).await;
        }
    }
}

#[derive(Actor, Default)]
struct Consumer {
    expected: u64,
    got: u64,
    since_ack: u64,
    checksum: u64,
    producer: Option<ActorRef<Producer>>,
}

impl Consumer {
    async fn got_one(&mut self, byte: u8) {
        self.got += 1;
        self.since_ack += 1;
        self.checksum += u64::from(byte);
        let Some(producer) = &self.producer else {
            return;
        };
        if self.got == self.expected {
            if self.checksum != self.expected {
                common::fail("kameo: checksum mismatch");
            }
            let _ = producer.tell(Ack(u64::MAX)).await;
        } else if self.since_ack == BATCH {
            self.since_ack = 0;
            let _ = producer.tell(Ack(BATCH)).await;
        }
    }
}

impl Message<TellSetup> for Consumer {
    type Reply = ();
    async fn handle(&mut self, msg: TellSetup, _: &mut Context<Self, ()>) {
        *self = Consumer {
            expected: msg.n,
            producer: Some(msg.producer),
            ..Consumer::default()
        };
    }
}

impl Message<Small> for Consumer {
    type Reply = ();
    async fn handle(&mut self, Small(data): Small, _: &mut Context<Self, ()>) {
        self.got_one(data[0]).await;
    }
}

impl Message<Big> for Consumer {
    type Reply = ();
    async fn handle(&mut self, Big(data): Big, _: &mut Context<Self, ()>) {
        self.got_one(data[data.len() - 1]).await;
    }
}

fn tell(size: u64, bytes: usize) -> Outcome {
    let producer = Producer::spawn(Producer::default());
    let consumer = Consumer::spawn(Consumer::default());
    let round = |n: u64| {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        tell_outside(
            &producer,
            TellStart {
                n,
                size: bytes,
                consumer: consumer.clone(),
                done: tx,
            },
        );
        wait(&rx);
        start.elapsed()
    };
    round(common::warmup(size));
    let elapsed = round(size);
    common::rate(size, elapsed)
}

enum Parent {
    Actor(ActorRef<SkyNode>),
    Outside(mpsc::Sender<u64>),
}

impl Parent {
    async fn send(&self, sum: u64) {
        match self {
            Parent::Actor(actor) => {
                let _ = actor.tell(Sum(sum)).await;
            }
            Parent::Outside(tx) => {
                let _ = tx.send(sum);
            }
        }
    }
}

struct Sky {
    num: u64,
    size: u64,
    parent: Parent,
}

struct Sum(u64);

#[derive(Actor, Default)]
struct SkyNode {
    parent: Option<Parent>,
    pending: u32,
    total: u64,
}

impl Message<Sky> for SkyNode {
    type Reply = ();
    async fn handle(&mut self, sky: Sky, ctx: &mut Context<Self, ()>) {
        if sky.size == 1 {
            sky.parent.send(sky.num).await;
            ctx.stop();
        } else {
            self.parent = Some(sky.parent);
            self.pending = 10;
            let step = sky.size / 10;
            for i in 0..10 {
                let child = SkyNode::spawn(SkyNode::default());
                let _ = child
                    .tell(Sky {
                        num: sky.num + i * step,
                        size: step,
                        parent: Parent::Actor(ctx.actor_ref().clone()),
                    })
                    .await;
            }
        }
    }
}

impl Message<Sum> for SkyNode {
    type Reply = ();
    async fn handle(&mut self, Sum(part): Sum, ctx: &mut Context<Self, ()>) {
        self.total += part;
        self.pending -= 1;
        if self.pending == 0 {
            if let Some(parent) = &self.parent {
                parent.send(self.total).await;
            }
            ctx.stop();
        }
    }
}

fn skynet(size: u64) -> Outcome {
    common::check_skynet_size(size);
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let root = SkyNode::spawn(SkyNode::default());
    tell_outside(
        &root,
        Sky {
            num: 0,
            size,
            parent: Parent::Outside(tx),
        },
    );
    let sum = wait(&rx);
    common::skynet(size, start.elapsed(), sum)
}

#[derive(Actor)]
struct Idle;

fn idle(rt: &Runtime, size: u64) -> Outcome {
    let mut actors = vec![Idle::spawn(Idle)];
    rt.block_on(actors[0].wait_for_startup());
    common::settle();
    let before = common::rss_bytes();
    for _ in 0..size {
        actors.push(Idle::spawn(Idle));
    }
    // Wait until every actor has run its start-up.
    rt.block_on(async {
        for actor in &actors {
            actor.wait_for_startup().await;
        }
    });
    common::settle();
    let after = common::rss_bytes();
    std::hint::black_box(&actors);
    common::bytes_per_actor(before, after, size)
}

struct EchoMsg(u64);

#[derive(Actor)]
struct Echo;

impl Message<EchoMsg> for Echo {
    type Reply = u64;
    async fn handle(&mut self, EchoMsg(x): EchoMsg, _: &mut Context<Self, u64>) -> u64 {
        x
    }
}

fn ask(size: u64) -> Outcome {
    let echo = Echo::spawn(Echo);
    let round = |n: u64| {
        let mut latencies = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            let reply = echo
                .ask(EchoMsg(i))
                .blocking_send()
                .unwrap_or_else(|e| common::fail(format!("kameo ask: {e:?}")));
            latencies.push(t.elapsed());
            if reply != i {
                common::fail("kameo: echo mismatch");
            }
        }
        (latencies, start.elapsed())
    };
    round(common::warmup(size));
    let (latencies, elapsed) = round(size);
    common::ask(latencies, elapsed)
}
