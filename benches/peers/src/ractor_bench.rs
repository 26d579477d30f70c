//! ractor 0.16 on a multi-threaded tokio runtime: `cast` for tell, `call` for ask.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::runtime::Runtime;

use crate::common::{self, Outcome, Workload, BATCH, PATIENCE, WINDOW};

/// Runs `workload` on ractor.
pub(crate) fn run(workload: Workload, size: u64) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| common::fail(e));
    match workload {
        Workload::PingPong => ping_pong(&rt, size, 1),
        Workload::PingPongCores => ping_pong(&rt, size, common::cores()),
        Workload::Tell16 | Workload::Tell64k => tell(&rt, size, workload.tell_size()),
        Workload::Skynet => skynet(&rt, size),
        Workload::Idle => idle(&rt, size),
        Workload::Ask => ask(&rt, size),
    }
}

fn wait<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|e| common::fail(format!("ractor: no completion: {e}")))
}

fn spawn<A: Actor<Arguments = ()>>(rt: &Runtime, actor: A) -> ActorRef<A::Msg> {
    rt.block_on(Actor::spawn(None, actor, ()))
        .unwrap_or_else(|e| common::fail(e))
        .0
}

fn cast<M: ractor::Message>(to: &ActorRef<M>, msg: M) {
    if to.cast(msg).is_err() {
        common::fail("ractor: cast to a stopped actor");
    }
}

enum PingerMsg {
    Start {
        n: u64,
        ponger: ActorRef<PongerMsg>,
        done: mpsc::Sender<u64>,
    },
    Pong,
}

struct PongerMsg(ActorRef<PingerMsg>);

struct Pinger;

struct PingerState {
    left: u64,
    n: u64,
    ponger: Option<ActorRef<PongerMsg>>,
    done: Option<mpsc::Sender<u64>>,
}

impl Actor for Pinger {
    type Msg = PingerMsg;
    type State = PingerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<PingerMsg>,
        _: (),
    ) -> Result<PingerState, ActorProcessingErr> {
        Ok(PingerState {
            left: 0,
            n: 0,
            ponger: None,
            done: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<PingerMsg>,
        msg: PingerMsg,
        state: &mut PingerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PingerMsg::Start { n, ponger, done } => {
                state.n = n;
                state.left = n;
                ponger.cast(PongerMsg(myself))?;
                state.ponger = Some(ponger);
                state.done = Some(done);
            }
            PingerMsg::Pong => {
                state.left -= 1;
                if state.left == 0 {
                    if let Some(done) = &state.done {
                        let _ = done.send(state.n);
                    }
                } else if let Some(ponger) = &state.ponger {
                    ponger.cast(PongerMsg(myself))?;
                }
            }
        }
        Ok(())
    }
}

struct Ponger;

impl Actor for Ponger {
    type Msg = PongerMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<PongerMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<PongerMsg>,
        PongerMsg(from): PongerMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        from.cast(PingerMsg::Pong)?;
        Ok(())
    }
}

fn ping_pong(rt: &Runtime, size: u64, pairs: u64) -> Outcome {
    let per_pair = (size / pairs).max(1);
    let actors: Vec<_> = (0..pairs)
        .map(|_| (spawn(rt, Pinger), spawn(rt, Ponger)))
        .collect();
    let round = |n: u64| {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        for (pinger, ponger) in &actors {
            cast(
                pinger,
                PingerMsg::Start {
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

enum ProducerMsg {
    Start {
        n: u64,
        size: usize,
        consumer: ActorRef<ConsumerMsg>,
        done: mpsc::Sender<u64>,
    },
    Ack(u64),
}

enum ConsumerMsg {
    Setup {
        n: u64,
        producer: ActorRef<ProducerMsg>,
    },
    Small([u8; 16]),
    Big(Vec<u8>),
}

struct Producer;

#[derive(Default)]
struct ProducerState {
    remaining: u64,
    size: usize,
    consumer: Option<ActorRef<ConsumerMsg>>,
    done: Option<mpsc::Sender<u64>>,
}

impl ProducerState {
    fn send_some(&mut self, count: u64) -> Result<(), ActorProcessingErr> {
        let Some(consumer) = &self.consumer else {
            return Ok(());
        };
        let count = count.min(self.remaining);
        self.remaining -= count;
        for _ in 0..count {
            if self.size <= common::SMALL {
                consumer.cast(ConsumerMsg::Small([1; 16]))?;
            } else {
                consumer.cast(ConsumerMsg::Big(vec![1; self.size]))?;
            }
        }
        Ok(())
    }
}

impl Actor for Producer {
    type Msg = ProducerMsg;
    type State = ProducerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<ProducerMsg>,
        _: (),
    ) -> Result<ProducerState, ActorProcessingErr> {
        Ok(ProducerState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<ProducerMsg>,
        msg: ProducerMsg,
        state: &mut ProducerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProducerMsg::Ack(u64::MAX) => {
                if let Some(done) = &state.done {
                    let _ = done.send(0);
                }
            }
            ProducerMsg::Ack(count) => state.send_some(count)?,
            ProducerMsg::Start {
                n,
                size,
                consumer,
                done,
            } => {
                consumer.cast(ConsumerMsg::Setup {
                    n,
                    producer: myself,
                })?;
                *state = ProducerState {
                    remaining: n,
                    size,
                    consumer: Some(consumer),
                    done: Some(done),
                };
                state.send_some(WINDOW)?;
            }
        }
        Ok(())
    }
}

struct Consumer;

#[derive(Default)]
struct ConsumerState {
    expected: u64,
    got: u64,
    since_ack: u64,
    checksum: u64,
    producer: Option<ActorRef<ProducerMsg>>,
}

impl Actor for Consumer {
    type Msg = ConsumerMsg;
    type State = ConsumerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<ConsumerMsg>,
        _: (),
    ) -> Result<ConsumerState, ActorProcessingErr> {
        Ok(ConsumerState::default())
    }

    async fn handle(
        &self,
        _: ActorRef<ConsumerMsg>,
        msg: ConsumerMsg,
        state: &mut ConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        let byte = match msg {
            ConsumerMsg::Setup { n, producer } => {
                *state = ConsumerState {
                    expected: n,
                    producer: Some(producer),
                    ..ConsumerState::default()
                };
                return Ok(());
            }
            ConsumerMsg::Small(b) => b[0],
            ConsumerMsg::Big(v) => v[v.len() - 1],
        };
        state.got += 1;
        state.since_ack += 1;
        state.checksum += u64::from(byte);
        let Some(producer) = &state.producer else {
            return Ok(());
        };
        if state.got == state.expected {
            if state.checksum != state.expected {
                common::fail("ractor: checksum mismatch");
            }
            producer.cast(ProducerMsg::Ack(u64::MAX))?;
        } else if state.since_ack == BATCH {
            state.since_ack = 0;
            producer.cast(ProducerMsg::Ack(BATCH))?;
        }
        Ok(())
    }
}

fn tell(rt: &Runtime, size: u64, bytes: usize) -> Outcome {
    let producer = spawn(rt, Producer);
    let consumer = spawn(rt, Consumer);
    let round = |n: u64| {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        cast(
            &producer,
            ProducerMsg::Start {
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
    Actor(ActorRef<SkyMsg>),
    Outside(mpsc::Sender<u64>),
}

enum SkyMsg {
    Sky { num: u64, size: u64, parent: Parent },
    Sum(u64),
}

struct SkyNode;

#[derive(Default)]
struct SkyState {
    parent: Option<Parent>,
    pending: u32,
    total: u64,
}

fn tell_parent(parent: &Parent, sum: u64) -> Result<(), ActorProcessingErr> {
    match parent {
        Parent::Actor(actor) => actor.cast(SkyMsg::Sum(sum))?,
        Parent::Outside(tx) => {
            let _ = tx.send(sum);
        }
    }
    Ok(())
}

impl Actor for SkyNode {
    type Msg = SkyMsg;
    type State = SkyState;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<SkyMsg>, _: ()) -> Result<SkyState, ActorProcessingErr> {
        Ok(SkyState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<SkyMsg>,
        msg: SkyMsg,
        state: &mut SkyState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SkyMsg::Sky {
                num,
                size: 1,
                parent,
            } => {
                tell_parent(&parent, num)?;
                myself.stop(None);
            }
            SkyMsg::Sky { num, size, parent } => {
                state.parent = Some(parent);
                state.pending = 10;
                let step = size / 10;
                for i in 0..10 {
                    let (child, _) = Actor::spawn(None, SkyNode, ()).await?;
                    child.cast(SkyMsg::Sky {
                        num: num + i * step,
                        size: step,
                        parent: Parent::Actor(myself.clone()),
                    })?;
                }
            }
            SkyMsg::Sum(part) => {
                state.total += part;
                state.pending -= 1;
                if state.pending == 0 {
                    if let Some(parent) = &state.parent {
                        tell_parent(parent, state.total)?;
                    }
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }
}

fn skynet(rt: &Runtime, size: u64) -> Outcome {
    common::check_skynet_size(size);
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let root = spawn(rt, SkyNode);
    cast(
        &root,
        SkyMsg::Sky {
            num: 0,
            size,
            parent: Parent::Outside(tx),
        },
    );
    let sum = wait(&rx);
    common::skynet(size, start.elapsed(), sum)
}

struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn idle(rt: &Runtime, size: u64) -> Outcome {
    let mut actors = vec![spawn(rt, Idle)];
    common::settle();
    let before = common::rss_bytes();
    rt.block_on(async {
        for _ in 0..size {
            let (actor, _) = Actor::spawn(None, Idle, ())
                .await
                .unwrap_or_else(|e| common::fail(e));
            actors.push(actor);
        }
    });
    common::settle();
    let after = common::rss_bytes();
    std::hint::black_box(&actors);
    common::bytes_per_actor(before, after, size)
}

struct EchoMsg(u64, RpcReplyPort<u64>);

struct Echo;

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        EchoMsg(x, reply): EchoMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(x);
        Ok(())
    }
}

fn ask(rt: &Runtime, size: u64) -> Outcome {
    let echo = spawn(rt, Echo);
    // `call` from the main thread, which is not a runtime worker.
    let round = |n: u64| {
        let mut latencies = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            let reply = rt
                .block_on(echo.call(|port| EchoMsg(i, port), Some(Duration::from_secs(600))))
                .unwrap_or_else(|e| common::fail(e));
            latencies.push(t.elapsed());
            match reply {
                ractor::rpc::CallResult::Success(x) if x == i => {}
                _ => common::fail("ractor: echo failed"),
            }
        }
        (latencies, start.elapsed())
    };
    round(common::warmup(size));
    let (latencies, elapsed) = round(size);
    common::ask(latencies, elapsed)
}
