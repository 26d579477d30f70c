//! The physical limit: the same workloads with plain OS threads and crossbeam channels, no actor
//! system. Each "actor" of a pair is a thread; messages are the same values the actors send.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};

use crate::common::{self, Outcome, Workload, BATCH, PATIENCE, WINDOW};

/// Runs `workload` with threads and channels.
pub(crate) fn run(workload: Workload, size: u64) -> Outcome {
    match workload {
        Workload::PingPong => ping_pong(size, 1),
        Workload::PingPongCores => ping_pong(size, common::cores()),
        Workload::Tell16 | Workload::Tell64k => tell(size, workload.tell_size()),
        Workload::Skynet => Outcome::NotApplicable(
            "a SkyNet tree of 1,111,111 OS threads is not meaningful; threads are not actors"
                .into(),
        ),
        Workload::Idle => idle(size),
        Workload::Ask => ask(size),
    }
}

fn recv<T>(rx: &Receiver<T>) -> T {
    match rx.recv_timeout(PATIENCE) {
        Ok(value) => value,
        Err(e) => common::fail(format!("channel: {e}")),
    }
}

fn send<T>(tx: &Sender<T>, value: T) {
    if tx.send(value).is_err() {
        common::fail("channel closed");
    }
}

struct Ping;
struct Pong;

/// One ping-pong round: `pairs` pairs of threads, `n` round trips each.
fn ping_pong_round(pairs: u64, n: u64) -> Duration {
    let ready = Arc::new(Barrier::new(pairs as usize + 1));
    let handles: Vec<_> = (0..pairs)
        .map(|_| {
            let ready = ready.clone();
            let (ping_tx, ping_rx) = unbounded::<Ping>();
            let (pong_tx, pong_rx) = unbounded::<Pong>();
            let ponger = thread::spawn(move || {
                while ping_rx.recv().is_ok() {
                    if pong_tx.send(Pong).is_err() {
                        break;
                    }
                }
            });
            let pinger = thread::spawn(move || {
                ready.wait();
                for _ in 0..n {
                    send(&ping_tx, Ping);
                    recv(&pong_rx);
                }
            });
            (pinger, ponger)
        })
        .collect();
    ready.wait();
    let start = Instant::now();
    for (pinger, ponger) in handles {
        let _ = pinger.join();
        let _ = ponger.join();
    }
    start.elapsed()
}

fn ping_pong(size: u64, pairs: u64) -> Outcome {
    let per_pair = (size / pairs).max(1);
    ping_pong_round(pairs, common::warmup(per_pair));
    let elapsed = ping_pong_round(pairs, per_pair);
    common::rate(per_pair * pairs, elapsed)
}

enum Data {
    Small([u8; 16]),
    Big(Vec<u8>),
}

/// Same protocol as the actors: at most `WINDOW` messages in flight, an ack every `BATCH`.
fn tell_round(n: u64, bytes: usize) -> Duration {
    let (data_tx, data_rx) = unbounded::<Data>();
    let (ack_tx, ack_rx) = unbounded::<u64>();
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        let mut checksum = 0u64;
        let mut since_ack = 0;
        for got in 1..=n {
            let byte = match recv(&data_rx) {
                Data::Small(b) => b[0],
                Data::Big(v) => v[v.len() - 1],
            };
            checksum += u64::from(byte);
            since_ack += 1;
            if got == n {
                send(&ack_tx, u64::MAX);
            } else if since_ack == BATCH {
                since_ack = 0;
                send(&ack_tx, BATCH);
            }
        }
        checksum
    });
    let mut remaining = n;
    let mut credit = WINDOW;
    loop {
        let now = credit.min(remaining);
        remaining -= now;
        for _ in 0..now {
            let data = if bytes <= common::SMALL {
                Data::Small([1; 16])
            } else {
                Data::Big(vec![1; bytes])
            };
            send(&data_tx, data);
        }
        match recv(&ack_rx) {
            u64::MAX => break,
            more => credit = more,
        }
    }
    let checksum = consumer.join().unwrap_or_default();
    let elapsed = start.elapsed();
    if checksum != n {
        common::fail(format!("consumer counted {checksum} of {n}"));
    }
    elapsed
}

fn tell(size: u64, bytes: usize) -> Outcome {
    tell_round(common::warmup(size), bytes);
    let elapsed = tell_round(size, bytes);
    common::rate(size, elapsed)
}

/// An idle "actor" without a thread: one unbounded channel (its mailbox), both ends kept.
fn idle(size: u64) -> Outcome {
    let mut mailboxes: Vec<(Sender<u64>, Receiver<u64>)> = Vec::with_capacity(1);
    mailboxes.push(unbounded());
    common::settle();
    let before = common::rss_bytes();
    for _ in 0..size {
        mailboxes.push(unbounded());
    }
    common::settle();
    let after = common::rss_bytes();
    let outcome = common::bytes_per_actor(before, after, size);
    std::hint::black_box(&mailboxes);
    outcome
}

fn ask(size: u64) -> Outcome {
    let (req_tx, req_rx) = unbounded::<u64>();
    let (rep_tx, rep_rx) = unbounded::<u64>();
    let server = thread::spawn(move || {
        while let Ok(x) = req_rx.recv() {
            if rep_tx.send(x).is_err() {
                break;
            }
        }
    });
    let round = |n: u64| {
        let mut latencies = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            send(&req_tx, i);
            if recv(&rep_rx) != i {
                common::fail("echo mismatch");
            }
            latencies.push(t.elapsed());
        }
        (latencies, start.elapsed())
    };
    round(common::warmup(size));
    let (latencies, elapsed) = round(size);
    drop(req_tx);
    let _ = server.join();
    common::ask(latencies, elapsed)
}
