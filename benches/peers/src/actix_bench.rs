//! actix 0.13: actors on arbiters (single-threaded event loops), `do_send` for tell, `send`
//! for ask.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::common::{self, Outcome, Workload, BATCH, PATIENCE, WINDOW};

/// Runs `workload` on actix.
pub(crate) fn run(workload: Workload, size: u64) -> Outcome {
    match workload {
        Workload::PingPong => ping_pong(size, 1),
        Workload::PingPongCores => ping_pong(size, common::cores()),
        Workload::Tell16 | Workload::Tell64k => tell(size, workload.tell_size()),
        Workload::Skynet => skynet(size),
        Workload::Idle => idle(size),
        Workload::Ask => ask(size),
    }
}

fn wait<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|e| common::fail(format!("actix: no completion: {e}")))
}

/// Runs an actix `System` on its own thread; `setup` runs inside it and its result comes back.
/// Returns the result and a handle that stops the system and joins its thread.
fn with_system<T: Send + 'static>(
    setup: impl FnOnce() -> T + Send + 'static,
) -> (T, impl FnOnce()) {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let runner = System::new();
        runner.block_on(async move {
            let value = setup();
            let _ = tx.send((value, System::current()));
        });
        let _ = runner.run();
    });
    let (value, system) = wait(&rx);
    let stop = move || {
        system.stop();
        let _ = thread.join();
    };
    (value, stop)
}

struct Start {
    n: u64,
    ponger: Addr<Ponger>,
    done: mpsc::Sender<u64>,
}
impl Message for Start {
    type Result = ();
}

struct Ping(Addr<Pinger>);
impl Message for Ping {
    type Result = ();
}

struct Pong;
impl Message for Pong {
    type Result = ();
}

#[derive(Default)]
struct Pinger {
    left: u64,
    n: u64,
    ponger: Option<Addr<Ponger>>,
    done: Option<mpsc::Sender<u64>>,
}

impl Actor for Pinger {
    type Context = Context<Self>;
}

impl Handler<Start> for Pinger {
    type Result = ();
    fn handle(&mut self, msg: Start, ctx: &mut Context<Self>) {
        self.n = msg.n;
        self.left = msg.n;
        msg.ponger.do_send(Ping(ctx.address()));
        self.ponger = Some(msg.ponger);
        self.done = Some(msg.done);
    }
}

impl Handler<Pong> for Pinger {
    type Result = ();
    fn handle(&mut self, _: Pong, ctx: &mut Context<Self>) {
        self.left -= 1;
        if self.left == 0 {
            if let Some(done) = &self.done {
                let _ = done.send(self.n);
            }
        } else if let Some(ponger) = &self.ponger {
            ponger.do_send(Ping(ctx.address()));
        }
    }
}

struct Ponger;

impl Actor for Ponger {
    type Context = Context<Self>;
}

impl Handler<Ping> for Ponger {
    type Result = ();
    fn handle(&mut self, Ping(from): Ping, _: &mut Context<Self>) {
        from.do_send(Pong);
    }
}

fn ping_pong(size: u64, pairs: u64) -> Outcome {
    let per_pair = (size / pairs).max(1);
    // One pair: both actors on the system arbiter (`Actor::start`). Several pairs: one new
    // arbiter (thread) per pair, the way actix spreads actors over cores.
    let (actors, stop) = with_system(move || {
        let mut arbiters = Vec::new();
        let mut actors = Vec::new();
        for _ in 0..pairs {
            if pairs == 1 {
                actors.push((Pinger::default().start(), Ponger.start()));
            } else {
                let arbiter = Arbiter::new();
                let pinger = Pinger::start_in_arbiter(&arbiter.handle(), |_| Pinger::default());
                let ponger = Ponger::start_in_arbiter(&arbiter.handle(), |_| Ponger);
                actors.push((pinger, ponger));
                arbiters.push(arbiter);
            }
        }
        (actors, arbiters)
    });
    let (actors, arbiters) = actors;
    let round = |n: u64| {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        for (pinger, ponger) in &actors {
            pinger.do_send(Start {
                n,
                ponger: ponger.clone(),
                done: tx.clone(),
            });
        }
        for _ in 0..pairs {
            wait(&rx);
        }
        start.elapsed()
    };
    round(common::warmup(per_pair));
    let elapsed = round(per_pair);
    for arbiter in arbiters {
        arbiter.stop();
        let _ = arbiter.join();
    }
    stop();
    common::rate(per_pair * pairs, elapsed)
}

enum Data {
    Small([u8; 16]),
    Big(Vec<u8>),
}
impl Message for Data {
    type Result = ();
}

struct TellStart {
    n: u64,
    size: usize,
    consumer: Addr<Consumer>,
    done: mpsc::Sender<u64>,
}
impl Message for TellStart {
    type Result = ();
}

struct TellSetup {
    n: u64,
    producer: Addr<Producer>,
}
impl Message for TellSetup {
    type Result = ();
}

struct Ack(u64);
impl Message for Ack {
    type Result = ();
}

#[derive(Default)]
struct Producer {
    remaining: u64,
    size: usize,
    consumer: Option<Addr<Consumer>>,
    done: Option<mpsc::Sender<u64>>,
}

impl Producer {
    fn send_some(&mut self, count: u64) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let count = count.min(self.remaining);
        self.remaining -= count;
        for _ in 0..count {
            if self.size <= common::SMALL {
                consumer.do_send(Data::Small([1; 16]));
            } else {
                consumer.do_send(Data::Big(vec![1; self.size]));
            }
        }
    }
}

impl Actor for Producer {
    type Context = Context<Self>;
}

impl Handler<TellStart> for Producer {
    type Result = ();
    fn handle(&mut self, msg: TellStart, ctx: &mut Context<Self>) {
        self.remaining = msg.n;
        self.size = msg.size;
        msg.consumer.do_send(TellSetup {
            n: msg.n,
            producer: ctx.address(),
        });
        self.consumer = Some(msg.consumer);
        self.done = Some(msg.done);
        self.send_some(WINDOW);
    }
}

impl Handler<Ack> for Producer {
    type Result = ();
    fn handle(&mut self, Ack(count): Ack, _: &mut Context<Self>) {
        if count == u64::MAX {
            if let Some(done) = &self.done {
                let _ = done.send(0);
            }
        } else {
            self.send_some(count);
        }
    }
}

#[derive(Default)]
struct Consumer {
    expected: u64,
    got: u64,
    since_ack: u64,
    checksum: u64,
    producer: Option<Addr<Producer>>,
}

impl Actor for Consumer {
    type Context = Context<Self>;
}

impl Handler<TellSetup> for Consumer {
    type Result = ();
    fn handle(&mut self, msg: TellSetup, _: &mut Context<Self>) {
        *self = Consumer {
            expected: msg.n,
            producer: Some(msg.producer),
            ..Consumer::default()
        };
    }
}

impl Handler<Data> for Consumer {
    type Result = ();
    fn handle(&mut self, data: Data, _: &mut Context<Self>) {
        let byte = match data {
            Data::Small(b) => b[0],
            Data::Big(v) => v[v.len() - 1],
        };
        self.got += 1;
        self.since_ack += 1;
        self.checksum += u64::from(byte);
        let Some(producer) = &self.producer else {
            return;
        };
        if self.got == self.expected {
            if self.checksum != self.expected {
                common::fail("actix: checksum mismatch");
            }
            producer.do_send(Ack(u64::MAX));
        } else if self.since_ack == BATCH {
            self.since_ack = 0;
            producer.do_send(Ack(BATCH));
        }
    }
}

fn tell(size: u64, bytes: usize) -> Outcome {
    let ((producer, consumer), stop) =
        with_system(|| (Producer::default().start(), Consumer::default().start()));
    let round = |n: u64| {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        producer.do_send(TellStart {
            n,
            size: bytes,
            consumer: consumer.clone(),
            done: tx,
        });
        wait(&rx);
        start.elapsed()
    };
    round(common::warmup(size));
    let elapsed = round(size);
    stop();
    common::rate(size, elapsed)
}

enum Parent {
    Actor(Addr<SkyNode>),
    Outside(mpsc::Sender<u64>),
}

impl Parent {
    fn send(&self, sum: u64) {
        match self {
            Parent::Actor(addr) => addr.do_send(Sum(sum)),
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
impl Message for Sky {
    type Result = ();
}

struct Sum(u64);
impl Message for Sum {
    type Result = ();
}

#[derive(Default)]
struct SkyNode {
    parent: Option<Parent>,
    pending: u32,
    total: u64,
}

impl Actor for SkyNode {
    type Context = Context<Self>;
}

impl Handler<Sky> for SkyNode {
    type Result = ();
    fn handle(&mut self, sky: Sky, ctx: &mut Context<Self>) {
        if sky.size == 1 {
            sky.parent.send(sky.num);
            ctx.stop();
        } else {
            self.parent = Some(sky.parent);
            self.pending = 10;
            let step = sky.size / 10;
            for i in 0..10 {
                SkyNode::default().start().do_send(Sky {
                    num: sky.num + i * step,
                    size: step,
                    parent: Parent::Actor(ctx.address()),
                });
            }
        }
    }
}

impl Handler<Sum> for SkyNode {
    type Result = ();
    fn handle(&mut self, Sum(part): Sum, ctx: &mut Context<Self>) {
        self.total += part;
        self.pending -= 1;
        if self.pending == 0 {
            if let Some(parent) = &self.parent {
                parent.send(self.total);
            }
            ctx.stop();
        }
    }
}

fn skynet(size: u64) -> Outcome {
    common::check_skynet_size(size);
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    // The system is not stopped: the process ends right after the result line.
    let ((), _stop) = with_system(move || {
        SkyNode::default().start().do_send(Sky {
            num: 0,
            size,
            parent: Parent::Outside(tx),
        });
    });
    let sum = wait(&rx);
    common::skynet(size, start.elapsed(), sum)
}

struct Idle;

impl Actor for Idle {
    type Context = Context<Self>;
}

fn idle(size: u64) -> Outcome {
    let runner = System::new();
    runner.block_on(async move {
        let mut actors: Vec<Addr<Idle>> = Vec::with_capacity(1);
        actors.push(Idle.start());
        actix::clock::sleep(Duration::from_millis(300)).await;
        let before = common::rss_bytes();
        for _ in 0..size {
            actors.push(Idle.start());
        }
        // Let the arbiter poll (start) every actor.
        actix::clock::sleep(Duration::from_millis(300)).await;
        let after = common::rss_bytes();
        std::hint::black_box(&actors);
        common::finish(common::bytes_per_actor(before, after, size))
    })
}

struct EchoMsg(u64);
impl Message for EchoMsg {
    type Result = u64;
}

struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<EchoMsg> for Echo {
    type Result = u64;
    fn handle(&mut self, EchoMsg(x): EchoMsg, _: &mut Context<Self>) -> u64 {
        x
    }
}

fn ask(size: u64) -> Outcome {
    let (echo, stop) = with_system(|| Echo.start());
    // The outside thread awaits the reply futures on a small current-thread runtime.
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| common::fail(e));
    let round = |n: u64| {
        let mut latencies = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            let reply = local
                .block_on(echo.send(EchoMsg(i)))
                .unwrap_or_else(|e| common::fail(e));
            latencies.push(t.elapsed());
            if reply != i {
                common::fail("actix: echo mismatch");
            }
        }
        (latencies, start.elapsed())
    };
    round(common::warmup(size));
    let (latencies, elapsed) = round(size);
    stop();
    common::ask(latencies, elapsed)
}
