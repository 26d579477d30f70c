//! The cross-process workloads (SPEC §6, multi-process part) and the thespian-rs contestants on
//! the multi-process bases: `tcp` (`SystemBase::Tcp`, multiprocTCPBase) and `udp`
//! (`SystemBase::Udp`, multiprocUDPBase). Each actor runs in its own process (the bases'
//! default); the admin daemon and the actors' processes are this binary, re-executed through
//! `thespian::init()` (the first line of `main`). Everything stays on 127.0.0.1, the Admin Port
//! is a free port outside the ephemeral range, and the system is always shut down; whatever
//! process of it is still alive after that (or after a failure) is killed by pid.
//!
//! ```text
//! thespian-bench <tcp|udp|raw-net> <workload> <size>
//! ```
//!
//! The raw references (`raw-net`) are in `raw_net.rs`.

use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::ThespianError;

use crate::common::{self, Outcome, LARGE, PATIENCE, SMALL};
use crate::thespian_rs::{self, expect_reply, Echo};

/// Environment variable that marks every process of one thespian-rs run (the bench process,
/// its admin daemon and the actors' processes inherit it), so leftovers can be found by pid.
pub(crate) const OWNER_ENV: &str = "THESPIAN_BENCH_OWNER";

/// Admin ports are picked from this range: below Linux's ephemeral range (32768–60999), so an
/// outgoing connection never holds one, and away from the well-known ports.
const ADMIN_PORTS: std::ops::Range<u16> = 20000..32000;

/// The transport a cross-process workload uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp,
    Udp,
}

/// The cross-process workloads, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NetWorkload {
    /// Round trips between two actors, each in its own process.
    TcpPingPong,
    /// One-way tell of 16-byte messages from an actor's process to another's.
    TcpTell16,
    /// One-way tell of 64 KiB messages.
    TcpTell64k,
    /// Top-level actor creation (a new process each) plus one ask of the new actor.
    TcpCreate,
    /// `ask` from the program to an actor in its own process.
    TcpAsk,
    /// As `TcpPingPong`, over UDP.
    UdpPingPong,
    /// As `TcpTell16`, over UDP.
    UdpTell16,
}

/// One-way tell over TCP: at most this many messages unacknowledged by the consumer (the TCP
/// transport's per-peer send budget is 1,024 messages), an acknowledgement every `TCP_BATCH`.
pub(crate) const TCP_WINDOW: u64 = 1024;
pub(crate) const TCP_BATCH: u64 = 256;
/// One-way tell over UDP: the UDP transport's send window is 128 messages per peer.
pub(crate) const UDP_WINDOW: u64 = 128;
pub(crate) const UDP_BATCH: u64 = 32;

impl NetWorkload {
    pub(crate) fn parse(name: &str) -> Option<NetWorkload> {
        Some(match name {
            "tcp-ping-pong" => NetWorkload::TcpPingPong,
            "tcp-tell-16b" => NetWorkload::TcpTell16,
            "tcp-tell-64k" => NetWorkload::TcpTell64k,
            "tcp-create" => NetWorkload::TcpCreate,
            "tcp-ask" => NetWorkload::TcpAsk,
            "udp-ping-pong" => NetWorkload::UdpPingPong,
            "udp-tell-16b" => NetWorkload::UdpTell16,
            _ => return None,
        })
    }

    pub(crate) fn transport(self) -> Transport {
        match self {
            NetWorkload::UdpPingPong | NetWorkload::UdpTell16 => Transport::Udp,
            _ => Transport::Tcp,
        }
    }

    /// Message size of a tell workload.
    pub(crate) fn tell_size(self) -> usize {
        if self == NetWorkload::TcpTell64k {
            LARGE
        } else {
            SMALL
        }
    }

    /// Flow-control window and acknowledgement batch of a tell workload.
    pub(crate) fn window(self) -> (u64, u64) {
        match self.transport() {
            Transport::Tcp => (TCP_WINDOW, TCP_BATCH),
            Transport::Udp => (UDP_WINDOW, UDP_BATCH),
        }
    }
}

const WORKLOADS: &str =
    "tcp-ping-pong tcp-tell-16b tcp-tell-64k tcp-create tcp-ask udp-ping-pong udp-tell-16b";

/// Runs `<tcp|udp|raw-net> <workload> <size>` (the arguments after the program name).
pub(crate) fn main(argv: &[String]) -> Outcome {
    let usage = || -> ! {
        eprintln!("usage: <tcp|udp|raw-net> <workload> <size>\n  workloads: {WORKLOADS}");
        std::process::exit(2)
    };
    if argv.len() != 3 {
        usage();
    }
    let Some(workload) = NetWorkload::parse(&argv[1]) else {
        usage()
    };
    let size = match argv[2].parse::<u64>() {
        Ok(size) if size > 0 => size,
        _ => usage(),
    };
    match argv[0].as_str() {
        "raw-net" => crate::raw_net::run(workload, size),
        "tcp" => run(Transport::Tcp, workload, size),
        "udp" => run(Transport::Udp, workload, size),
        _ => usage(),
    }
}

// ---------------------------------------------------------------------------------------------
// Messages and actors of the one-way tell (ping-pong, ask and create use the in-process ones).

/// Starts sending `n` messages of `size` bytes to `consumer`, at most `window` unacknowledged.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NetStart {
    n: u64,
    size: usize,
    window: u64,
    consumer: ActorAddress,
}

/// Tells the consumer how many messages to expect and how often to acknowledge; it answers
/// `Ready` and later sends `NetDone` to the same sender.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Expect {
    n: u64,
    batch: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ready;

/// The consumer received this many more messages.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NetAck(u64);

/// The last message arrived; the checksum of what arrived.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NetDone(u64);

/// A 16-byte message.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NetSmall([u8; 16]);

/// A large message, allocated per message; its bytes are encoded as one byte string (what
/// `serde_bytes` does), not element by element.
#[derive(Clone, Debug)]
struct NetBig(Vec<u8>);

impl Serialize for NetBig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for NetBig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<NetBig, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NetBig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<NetBig, E> {
                Ok(NetBig(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<NetBig, E> {
                Ok(NetBig(v))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

thespian::message!(
    NetStart = "bench.net.Start",
    Expect = "bench.net.Expect",
    Ready = "bench.net.Ready",
    NetAck = "bench.net.Ack",
    NetDone = "bench.net.Done",
    NetSmall = "bench.net.Small",
    NetBig = "bench.net.Big",
);

/// Delay before a send refused by a full transport queue is tried again.
const RETRY: Duration = Duration::from_micros(200);

#[derive(Default)]
struct NetProducer {
    remaining: u64,
    credit: u64,
    size: usize,
    consumer: Option<ActorAddress>,
    retry_pending: bool,
}

impl NetProducer {
    /// Sends while the window has room. The consumer's acknowledgement may overtake the
    /// transport's own, so the transport may still refuse a send (`QueueFull`): then the
    /// producer tries again a moment later.
    fn pump(&mut self, ctx: &mut Context<'_>) -> ActorResult {
        let Some(consumer) = self.consumer.clone() else {
            return Ok(());
        };
        while self.credit > 0 && self.remaining > 0 {
            let sent = if self.size <= SMALL {
                ctx.send(&consumer, NetSmall([1; 16]))
            } else {
                ctx.send(&consumer, NetBig(vec![1; self.size]))
            };
            match sent {
                Ok(()) => {
                    self.credit -= 1;
                    self.remaining -= 1;
                }
                Err(ThespianError::QueueFull { .. }) => {
                    if !self.retry_pending {
                        self.retry_pending = true;
                        ctx.wakeup_after(RETRY);
                    }
                    return Ok(());
                }
                Err(other) => return Err(other.into()),
            }
        }
        Ok(())
    }
}

impl Actor for NetProducer {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(NetAck(count)) = env.get::<NetAck>() {
            self.credit += count;
            self.pump(ctx)
        } else if env.payload().has_type::<WakeupMessage>() {
            self.retry_pending = false;
            self.pump(ctx)
        } else if let Ok(start) = env.get::<NetStart>() {
            self.remaining = start.n;
            self.credit = start.window;
            self.size = start.size;
            self.consumer = Some(start.consumer.clone());
            self.pump(ctx)
        } else {
            Ok(())
        }
    }
}

#[derive(Default)]
struct NetConsumer {
    expected: u64,
    batch: u64,
    got: u64,
    since_ack: u64,
    checksum: u64,
    client: Option<ActorAddress>,
}

impl NetConsumer {
    fn got_one(&mut self, byte: u8, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        self.got += 1;
        self.since_ack += 1;
        self.checksum += u64::from(byte);
        if self.got == self.expected {
            if let Some(client) = &self.client {
                ctx.send(client, NetDone(self.checksum))?;
            }
        } else if self.since_ack == self.batch {
            self.since_ack = 0;
            ctx.send(env.sender(), NetAck(self.batch))?;
        }
        Ok(())
    }
}

impl Actor for NetConsumer {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(NetSmall(data)) = env.get::<NetSmall>() {
            self.got_one(data[0], env, ctx)
        } else if let Ok(NetBig(data)) = env.get::<NetBig>() {
            self.got_one(data.last().copied().unwrap_or(0), env, ctx)
        } else if let Ok(expect) = env.get::<Expect>() {
            *self = NetConsumer {
                expected: expect.n,
                batch: expect.batch,
                client: Some(env.sender().clone()),
                ..NetConsumer::default()
            };
            ctx.send(env.sender(), Ready)?;
            Ok(())
        } else {
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The thespian-rs runs.

/// The system of one run: shut down when dropped (an early return or a panic), so no admin
/// daemon outlives the run.
pub(crate) struct Running(pub(crate) Option<ActorSystem>);

impl Running {
    pub(crate) fn sys(&self) -> &ActorSystem {
        self.0.as_ref().expect("the system runs until shut down")
    }

    pub(crate) fn shutdown(mut self) -> Result<(), ThespianError> {
        match self.0.take() {
            Some(sys) => sys.shutdown(),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(sys) = self.0.take() {
            let _ = sys.shutdown();
        }
    }
}

/// Runs `workload` on the thespian-rs base of `transport`.
fn run(transport: Transport, workload: NetWorkload, size: u64) -> Outcome {
    if workload.transport() != transport {
        return Outcome::NotApplicable(format!(
            "{workload:?} is a workload of the other transport"
        ));
    }
    // Every process of this system inherits the mark (set while this is the only thread).
    let mark = format!("{}-{}", std::process::id(), nanos());
    std::env::set_var(OWNER_ENV, &mark);
    let port = match free_admin_port() {
        Some(port) => port,
        None => common::fail(format!("no free port in {ADMIN_PORTS:?} for the admin")),
    };
    let base = match transport {
        Transport::Tcp => SystemBase::Tcp,
        Transport::Udp => SystemBase::Udp,
    };
    let started = ActorSystem::builder()
        .base(base)
        .transient_unique(true)
        .capability("Admin Port", i64::from(port))
        .advertise_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .start();
    let running = match started {
        Ok(sys) => Running(Some(sys)),
        Err(ThespianError::StartupFailure(reason)) => {
            kill_leftovers(&mark);
            return Outcome::Unavailable(reason);
        }
        Err(other) => {
            kill_leftovers(&mark);
            common::fail(other)
        }
    };
    let sys = running.sys();
    let measured = match workload {
        NetWorkload::TcpPingPong | NetWorkload::UdpPingPong => thespian_rs::ping_pong(sys, size, 1),
        NetWorkload::TcpTell16 | NetWorkload::TcpTell64k | NetWorkload::UdpTell16 => {
            tell(sys, size, workload)
        }
        NetWorkload::TcpCreate => create(sys, size),
        NetWorkload::TcpAsk => thespian_rs::ask(sys, size),
    };
    let shut = running.shutdown();
    // The admin has exited when `shutdown` returns; its actors' processes die with it. Any
    // process of this run still alive now is a leftover.
    let left = kill_leftovers(&mark);
    match (measured, shut) {
        (Ok(outcome), Ok(())) if left == 0 => outcome,
        (Ok(_), Ok(())) => common::fail(format!(
            "{left} process(es) of the system were still alive after shutdown and were killed"
        )),
        (Err(e), _) => common::fail(e),
        (_, Err(e)) => common::fail(format!("shutdown: {e}")),
    }
}

fn tell(sys: &ActorSystem, size: u64, workload: NetWorkload) -> Result<Outcome, ThespianError> {
    let bytes = workload.tell_size();
    let (window, batch) = workload.window();
    let producer = sys.create_actor::<NetProducer>()?;
    let consumer = sys.create_actor::<NetConsumer>()?;
    let round = |n: u64| -> Result<Duration, ThespianError> {
        let ready = expect_reply(sys.ask(&consumer, Expect { n, batch }, PATIENCE)?)?;
        ready.get::<Ready>()?;
        let start = Instant::now();
        let consumer = consumer.clone();
        sys.tell(
            &producer,
            NetStart {
                n,
                size: bytes,
                window,
                consumer,
            },
        )?;
        let done = expect_reply(sys.listen(PATIENCE)?)?;
        let elapsed = start.elapsed();
        let NetDone(checksum) = *done.get::<NetDone>()?;
        if checksum != n {
            return Err(ThespianError::SystemFailure(format!(
                "consumer counted {checksum} of {n}"
            )));
        }
        Ok(elapsed)
    };
    round(common::warmup(size))?;
    let elapsed = round(size)?;
    Ok(tell_outcome(size, bytes, elapsed))
}

/// Figures of a one-way tell: messages/s and payload MB/s.
pub(crate) fn tell_outcome(n: u64, bytes: usize, elapsed: Duration) -> Outcome {
    let secs = elapsed.as_secs_f64();
    Outcome::Figures(vec![
        ("rate", n as f64 / secs),
        ("mb_s", n as f64 * bytes as f64 / secs / 1e6),
        ("seconds", secs),
    ])
}

/// Top-level creates, each followed by one ask of the new actor (so its process is up and
/// serving); the actors stay alive until the shutdown.
fn create(sys: &ActorSystem, size: u64) -> Result<Outcome, ThespianError> {
    let round = |n: u64| -> Result<Duration, ThespianError> {
        let start = Instant::now();
        for i in 0..n {
            let actor = sys.create_actor::<Echo>()?;
            let reply = expect_reply(sys.ask(&actor, i, PATIENCE)?)?;
            if *reply.get::<u64>()? != i {
                return Err(ThespianError::SystemFailure("echo mismatch".into()));
            }
        }
        Ok(start.elapsed())
    };
    round(common::warmup(size))?;
    let elapsed = round(size)?;
    Ok(common::rate(size, elapsed))
}

// ---------------------------------------------------------------------------------------------
// Ports and leftovers.

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// A port of `ADMIN_PORTS` free for both TCP and UDP right now (probed by binding), starting
/// at a random one so parallel runs spread out.
pub(crate) fn free_admin_port() -> Option<u16> {
    let span = ADMIN_PORTS.end - ADMIN_PORTS.start;
    let seed = nanos() ^ std::process::id().wrapping_mul(2_654_435_761);
    let first = (seed % u32::from(span)) as u16;
    (0..span)
        .map(|i| ADMIN_PORTS.start + (first + i) % span)
        .find(|&port| {
            let any = (Ipv4Addr::UNSPECIFIED, port);
            TcpListener::bind(any).is_ok() && UdpSocket::bind(any).is_ok()
        })
}

extern "C" {
    /// POSIX `kill(2)`.
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// The processes other than this one whose environment carries `OWNER_ENV=mark`.
fn marked(mark: &str) -> Vec<i32> {
    let needle = format!("{OWNER_ENV}={mark}");
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
        })
        .collect()
}

/// Kills (SIGKILL, by pid) every process of this run still alive; returns how many there
/// were at first. A process that is exiting anyway gets a moment first.
pub(crate) fn kill_leftovers(mark: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut first = marked(mark);
    while !first.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        first = marked(mark);
    }
    let found = first.len();
    for _ in 0..100 {
        let left = marked(mark);
        if left.is_empty() {
            break;
        }
        for pid in left {
            eprintln!("thespian-bench: killing leftover process {pid}");
            // SAFETY: kill(2) has no memory-safety preconditions; `pid` carries this run's
            // mark, so it is a process this run started.
            unsafe {
                kill(pid, SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    found
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(NetProducer, NetConsumer);
