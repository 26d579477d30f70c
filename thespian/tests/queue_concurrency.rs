//! Concurrency scenarios of the Queue base (issue 3): many external threads, many actors, long
//! chains, blocking actors, exit propagation through a big tree, shutdown under load, fd watches.
//!
//! Rules: every wait has a timeout; nothing sleeps to synchronise (the only loops that look at
//! the clock poll a condition with a deadline); sizes do not depend on `--release`.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{keys, LogConfig, StatusRequest, SystemStatus, ThespianError, WatchMessage};

/// How long to wait for a reply that must come.
const REPLY: Duration = Duration::from_secs(20);

/// Tests take this shared; the thread-count test takes it exclusively, so no other system of
/// this binary starts or stops threads while it counts them.
static THREADS_CHECK: RwLock<()> = RwLock::new(());

fn start(workers: Option<i64>) -> ActorSystem {
    let mut builder = ActorSystem::builder()
        .base(SystemBase::Queue)
        .transient_unique(true)
        .log(LogConfig::Untouched);
    if let Some(n) = workers {
        builder = builder.capability(keys::WORKER_THREADS, n);
    }
    builder.start().expect("the queue system starts")
}

/// Handles and endpoints are shared by threads: `Send + Sync` is part of the API.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ActorSystem>();
    assert_send_sync::<ActorAddress>();
};

#[derive(Default)]
struct Echo;

impl Actor for Echo {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if !env.payload().is_system() {
            ctx.forward(env.sender(), env)?;
        }
        Ok(())
    }
}

#[test]
fn base_reports_its_name_and_capabilities() {
    let _shared = THREADS_CHECK.read().unwrap_or_else(|p| p.into_inner());
    let sys = start(Some(3));
    let caps = sys.capabilities();
    assert_eq!(
        caps.get(keys::ACTOR_SYSTEM_NAME),
        Some(&CapabilityValue::from("multiprocQueueBase"))
    );
    assert_eq!(
        caps.get(keys::WATCH_SUPPORTED),
        Some(&CapabilityValue::Bool(true))
    );
    assert_eq!(
        caps.get(keys::WORKER_THREADS),
        Some(&CapabilityValue::Int(3))
    );
    sys.shutdown().unwrap();
    assert!(sys.is_shut_down());
    assert!(matches!(
        sys.tell(sys.my_address(), 1u64),
        Err(thespian::Error::SystemShutDown)
    ));
}

#[test]
fn eight_external_threads_ask_at_once() {
    let _shared = THREADS_CHECK.read().unwrap_or_else(|p| p.into_inner());
    let sys = start(None);
    let echoes: Vec<ActorAddress> = (0..4)
        .map(|_| sys.create_actor::<Echo>().unwrap())
        .collect();
    std::thread::scope(|scope| {
        for t in 0..8u64 {
            let private = sys.private().expect("a private endpoint");
            let echoes = &echoes;
            scope.spawn(move || {
                for i in 0..300u64 {
                    let to = &echoes[((t + i) % 4) as usize];
                    let reply = private
                        .ask(to, (t, i), REPLY)
                        .expect("ask is accepted")
                        .expect("a reply within the timeout");
                    assert_eq!(*reply.get::<(u64, u64)>().unwrap(), (t, i));
                }
            });
        }
        // The shared handle works from several threads at once too.
        for _ in 0..2 {
            let sys = &sys;
            let to = &echoes[0];
            scope.spawn(move || {
                for i in 0..100u64 {
                    sys.tell(to, i).unwrap();
                }
            });
        }
    });
    sys.shutdown().unwrap();
}

#[test]
fn hundred_thousand_live_actors() {
    let _shared = THREADS_CHECK.read().unwrap_or_else(|p| p.into_inner());
    const N: usize = 100_000;
    let sys = start(None);
    let actors: Vec<ActorAddress> = (0..N)
        .map(|_| sys.create_actor::<Echo>().expect("create"))
        .collect();
    let unique: HashSet<&ActorAddress> = actors.iter().collect();
    assert_eq!(unique.len(), N);
    for (i, a) in actors.iter().enumerate().step_by(N / 100) {
        let reply = sys.ask(a, i as u64, REPLY).unwrap().expect("ping answered");
        assert_eq!(*reply.get::<u64>().unwrap(), i as u64);
        assert_eq!(reply.sender(), a);
    }
    let status = sys
        .ask(&sys.admin_address(), StatusRequest, REPLY)
        .unwrap()
        .expect("status");
    assert_eq!(status.get::<SystemStatus>().unwrap().live_actors, N);
    sys.shutdown().unwrap();
    assert!(sys.is_shut_down());
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Extend {
    remaining: u64,
    report_to: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Built {
    head: ActorAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pass {
    hops: u64,
    report_to: ActorAddress,
}

thespian::message!(
    Extend = "test.Extend",
    Built = "test.Built",
    Pass = "test.Pass"
);

/// One link of a chain: builds the rest of the chain, then passes `Pass` along it.
#[derive(Default)]
struct Link {
    next: Option<ActorAddress>,
}

impl Actor for Link {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(extend) = env.get::<Extend>() {
            if extend.remaining == 0 {
                ctx.send(
                    &extend.report_to,
                    Built {
                        head: ctx.my_address().clone(),
                    },
                )?;
            } else {
                let next = ctx.create_actor::<Link>()?;
                ctx.send(
                    &next,
                    Extend {
                        remaining: extend.remaining - 1,
                        report_to: extend.report_to.clone(),
                    },
                )?;
                self.next = Some(next);
            }
        } else if let Ok(pass) = env.get::<Pass>() {
            let pass = Pass {
                hops: pass.hops + 1,
                report_to: pass.report_to.clone(),
            };
            match &self.next {
                Some(next) => ctx.send(next, pass)?,
                None => ctx.send(&pass.report_to.clone(), pass)?,
            }
        }
        Ok(())
    }
}

#[test]
fn chain_of_ten_thousand_actors_passes_one_message() {
    let _shared = THREADS_CHECK.read().unwrap_or_else(|p| p.into_inner());
    const N: u64 = 10_000;
    let sys = start(None);
    let head = sys.create_actor::<Link>().unwrap();
    let built = sys
        .ask(
            &head,
            Extend {
                remaining: N - 1,
                report_to: sys.my_address().clone(),
            },
            REPLY,
        )
        .unwrap()
        .expect("the chain is built");
    assert!(built.get::<Built>().is_ok());
    let done = sys
        .ask(
            &head,
            Pass {
                hops: 0,
                report_to: sys.my_address().clone(),
            },
            REPLY,
        )
        .unwrap()
        .expect("the message went through the chain");
    assert_eq!(done.get::<Pass>().unwrap().hops, N);
    let status = sys
        .ask(&sys.admin_address(), StatusRequest, REPLY)
        .unwrap()
        .expect("status");
    assert_eq!(
        status.get::<SystemStatus>().unwrap().live_actors,
        N as usize
    );
    sys.shutdown().unwrap();
}

/// Lets the blocking test talk to its actor outside messages.
struct Gate {
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

static GATE: OnceLock<Gate> = OnceLock::new();

#[derive(Default)]
struct Blocker;

impl Actor for Blocker {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|s| s == "block") {
            let gate = GATE.get().expect("the test set the gate");
            gate.entered.lock().unwrap().send(()).unwrap();
            // Blocks this worker until the test releases it (bounded, never forever).
            let released = gate.release.lock().unwrap().recv_timeout(REPLY).is_ok();
            ctx.send(
                env.sender(),
                if released { "released" } else { "timed out" },
            )?;
        }
        Ok(())
    }
}

#[test]
fn an_actor_blocking_in_receive_does_not_stop_the_other_worker() {
    let _shared = THREADS_CHECK.read().unwrap_or_else(|p| p.into_inner());
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    assert!(GATE
        .set(Gate {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        })
        .is_ok());
    let sys = start(Some(2));
    let blocker = sys.create_actor::<Blocker>().unwrap();
    let echo = sys.create_actor::<Echo>().unwrap();
    let blocker_client = sys.private().unwrap();
    blocker_client.tell(&blocker, "block").unwrap();
    entered_rx
        .recv_timeout(REPLY)
        .expect("the blocker entered its receive");
    // One worker is now held inside Blocker::receive; the other must still serve Echo.
    for i in 0..10u64 {
        let reply = sys
            .ask(&echo, i, REPLY)
            .unwrap()
            .expect("echo answers while the blocker blocks");
        assert_eq!(*reply.get::<u64>().unwrap(), i);
    }
    // Only now is the blocker released; its answer proves it was blocked all along.
    assert!(blocker_client
        .listen(Duration::from_millis(1))
        .unwrap()
        .is_none());
    release_tx.send(()).unwrap();
    let answer = blocker_client
        .listen(REPLY)
        .unwrap()
        .expect("the blocker answers");
    assert_eq!(answer.get::<String>().unwrap(), "released");
    sys.shutdown().unwrap();
}

/// Exit notices seen by the tree test: parent → children it heard of (with repeats).
struct ExitLog {
    created: Mutex<HashMap<ActorAddress, Vec<ActorAddress>>>,
    exited: Mutex<(usize, HashMap<ActorAddress, Vec<ActorAddress>>)>,
    changed: Condvar,
}

static EXIT_LOG: OnceLock<ExitLog> = OnceLock::new();

fn exit_log() -> &'static ExitLog {
    EXIT_LOG.get_or_init(|| ExitLog {
        created: Mutex::new(HashMap::new()),
        exited: Mutex::new((0, HashMap::new())),
        changed: Condvar::new(),
    })
}

/// Builds a subtree of `n` actors (itself included), up to ten children each.
#[derive(Default)]
struct TreeNode;

impl Actor for TreeNode {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(&size) = env.get::<u64>() {
            let below = size - 1;
            let fanout = below.min(10);
            let mut children = Vec::new();
            for i in 0..fanout {
                let share = below / fanout + u64::from(i < below % fanout);
                let child = ctx.create_actor::<TreeNode>()?;
                ctx.send(&child, share)?;
                children.push(child);
            }
            exit_log()
                .created
                .lock()
                .unwrap()
                .insert(ctx.my_address().clone(), children);
        } else if let Ok(exited) = env.get::<ChildActorExited>() {
            let log = exit_log();
            let mut exited_log = log.exited.lock().unwrap();
            exited_log.0 += 1;
            exited_log
                .1
                .entry(ctx.my_address().clone())
                .or_default()
                .push(exited.child_address.clone());
            log.changed.notify_all();
        }
        Ok(())
    }
}

#[test]
fn exit_propagates_through_a_tree_of_1000_actors_once_per_child() {
    let _shared = THREADS_CHECK.read().unwrap_or_else(|p| p.into_inner());
    const N: usize = 1000;
    let sys = start(None);
    let root = sys.create_actor::<TreeNode>().unwrap();
    sys.tell(&root, N as u64).unwrap();
    // Wait until the whole tree exists.
    let deadline = Instant::now() + REPLY;
    loop {
        let status = sys
            .ask(&sys.admin_address(), StatusRequest, REPLY)
            .unwrap()
            .expect("status");
        let live = status.get::<SystemStatus>().unwrap().live_actors;
        assert!(live <= N);
        if live == N && exit_log().created.lock().unwrap().len() == N {
            break;
        }
        assert!(Instant::now() < deadline, "tree not built: {live} of {N}");
        std::thread::yield_now();
    }
    sys.tell(&root, ActorExitRequest::new()).unwrap();
    let log = exit_log();
    {
        let deadline = Instant::now() + REPLY;
        let mut exited = log.exited.lock().unwrap();
        while exited.0 < N - 1 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "only {} of {} exits seen", exited.0, N - 1);
            exited = log.changed.wait_timeout(exited, left).unwrap().0;
        }
    }
    // Every actor is gone; after the shutdown joined the workers nothing more can arrive.
    sys.shutdown().unwrap();
    let exited = log.exited.lock().unwrap();
    let created = log.created.lock().unwrap();
    assert_eq!(exited.0, N - 1, "each non-root actor is reported once");
    for (parent, children) in created.iter() {
        let mut heard = exited.1.get(parent).cloned().unwrap_or_default();
        heard.sort();
        let mut expected = children.clone();
        expected.sort();
        assert_eq!(heard, expected, "ChildActorExited notices of {parent}");
    }
    let parents_with_children = created.values().filter(|c| !c.is_empty()).count();
    eprintln!(
        "tree of {N}: {} ChildActorExited delivered to {parents_with_children} parents, each child exactly once",
        exited.0
    );
}

/// Sends itself a message for every message it gets: always busy, never idle.
#[derive(Default)]
struct Perpetual;

impl Actor for Perpetual {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(&n) = env.get::<u64>() {
            let me = ctx.my_address().clone();
            ctx.send(&me, n + 1)?;
        }
        Ok(())
    }
}

/// Does a little work per message.
#[derive(Default)]
struct Sink {
    sum: u64,
}

impl Actor for Sink {
    fn receive(&mut self, env: &Envelope, _ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(&n) = env.get::<u64>() {
            self.sum = self.sum.wrapping_mul(31).wrapping_add(n);
        }
        Ok(())
    }
}

/// Watches the fd it is told, and tells the requester when it became readable.
#[derive(Default)]
struct FdWatcher {
    requester: Option<ActorAddress>,
    fd: i32,
}

impl Actor for FdWatcher {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(&fd) = env.get::<i32>() {
            self.requester = Some(env.sender().clone());
            self.fd = fd;
            ctx.send(env.sender(), "watching")?;
            ctx.watch(&[fd])?;
        } else if let Ok(w) = env.get::<WatchMessage>() {
            if let Some(r) = &self.requester {
                ctx.send(&r.clone(), w.ready.clone())?;
            }
        } else if env.get::<String>().is_ok() {
            // Any other message: keep watching (a watch lasts until the next message).
            ctx.watch(&[self.fd])?;
        }
        Ok(())
    }
}

#[test]
fn watched_fd_delivers_a_watch_message() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let _shared = THREADS_CHECK.read().unwrap_or_else(|p| p.into_inner());
    let sys = start(Some(2));
    let (mut writer, reader) = std::os::unix::net::UnixStream::pair().unwrap();
    let watcher = sys.create_actor::<FdWatcher>().unwrap();
    let fd = reader.as_raw_fd();
    let ack = sys.ask(&watcher, fd, REPLY).unwrap().expect("ack");
    assert_eq!(ack.get::<String>().unwrap(), "watching");
    // Another message in between: the actor renews its watch there.
    sys.tell(&watcher, "renew").unwrap();
    writer.write_all(b"ping").unwrap();
    let ready = sys.listen(REPLY).unwrap().expect("a WatchMessage came");
    assert_eq!(ready.get::<Vec<i32>>().unwrap(), &vec![fd]);
    sys.shutdown().unwrap();
}

#[derive(Default)]
struct Stopper;

impl Actor for Stopper {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|s| s == "stop") {
            ctx.actor_system_shutdown();
        }
        Ok(())
    }
}

#[test]
fn an_actor_can_shut_the_system_down() {
    let _shared = THREADS_CHECK.read().unwrap_or_else(|p| p.into_inner());
    let sys = start(Some(2));
    let stopper = sys.create_actor::<Stopper>().unwrap();
    let echo = sys.create_actor::<Echo>().unwrap();
    sys.tell(&echo, 1u64).unwrap();
    sys.tell(&stopper, "stop").unwrap();
    let deadline = Instant::now() + REPLY;
    while !sys.is_shut_down() {
        assert!(Instant::now() < deadline, "the system did not shut down");
        std::thread::yield_now();
    }
    // Joins the service thread that finished the shutdown; idempotent.
    sys.shutdown().unwrap();
    sys.shutdown().unwrap();
}

/// Threads of queue systems in this process (they are named `thespian-q-…`; the test
/// harness's own threads come and go, so they are not counted).
#[cfg(target_os = "linux")]
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("thespian-q-"))
        .count()
}

/// Waits (bounded) until [`thread_count`] is `expected`: threads name themselves when they
/// start, and a joined thread can linger in `/proc` for a moment after `join` returns.
#[cfg(target_os = "linux")]
fn await_thread_count(expected: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while thread_count() != expected {
        assert!(
            Instant::now() < deadline,
            "{what}: {} queue-base threads, expected {expected}",
            thread_count()
        );
        std::thread::yield_now();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn shutdown_with_messages_queued_terminates_and_joins_every_thread() {
    let _exclusive = THREADS_CHECK.write().unwrap_or_else(|p| p.into_inner());
    // Every other test shuts its system down before releasing the lock; their last threads
    // may still be leaving `/proc`.
    await_thread_count(0, "before: no other queue system runs");
    let before = 0;
    let sys = start(Some(2));
    // Workers, the timer thread, and (after the first watch) the poller.
    let (_writer, reader) = std::os::unix::net::UnixStream::pair().unwrap();
    let watcher = sys.create_actor::<FdWatcher>().unwrap();
    {
        use std::os::fd::AsRawFd;
        let ack = sys.ask(&watcher, reader.as_raw_fd(), REPLY).unwrap();
        assert!(ack.is_some());
    }
    await_thread_count(before + 4, "2 workers, timer, poller");
    let perpetual: Vec<ActorAddress> = (0..4)
        .map(|_| sys.create_actor::<Perpetual>().unwrap())
        .collect();
    for p in &perpetual {
        sys.tell(p, 0u64).unwrap();
    }
    let sinks: Vec<ActorAddress> = (0..4)
        .map(|_| sys.create_actor::<Sink>().unwrap())
        .collect();
    for i in 0..50_000u64 {
        sys.tell(&sinks[(i % 4) as usize], i).unwrap();
    }
    let (done_tx, done_rx) = mpsc::channel();
    let stopper = std::thread::spawn(move || {
        sys.shutdown().unwrap();
        done_tx.send(sys.is_shut_down()).unwrap();
    });
    let shut_down = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("shutdown terminates");
    assert!(shut_down);
    stopper.join().unwrap();
    await_thread_count(before, "after the shutdown");
}

/// Lets the flood test hold its slow actor inside one `receive`.
struct FloodGate {
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

static FLOOD_GATE: OnceLock<FloodGate> = OnceLock::new();

/// Asks a [`Flooder`] to send `attempts` numbers to `target` as fast as it can.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FloodTo {
    target: ActorAddress,
    attempts: u64,
}

/// What a flood did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FloodOutcome {
    /// Sends that returned `Ok`.
    accepted: u64,
    /// Sends that returned `QueueFull`.
    refused: u64,
    /// Attempts after the first refusal that were accepted (the queue grew past the bound).
    accepted_after_refusal: u64,
    /// The target every `QueueFull` named, when all named the same.
    refused_target: Option<ActorAddress>,
    /// Any other error.
    other_error: Option<String>,
}

/// What a [`Hoarder`] received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Hoard {
    received: u64,
    in_order: bool,
}

thespian::message!(
    FloodTo = "test.FloodTo",
    FloodOutcome = "test.FloodOutcome",
    Hoard = "test.Hoard"
);

/// Sends numbers `0..attempts` to a target, going on after refusals to show they stay refused.
#[derive(Default)]
struct Flooder {
    next: u64,
}

impl Actor for Flooder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(flood) = env.get::<FloodTo>() {
            let mut outcome = FloodOutcome {
                accepted: 0,
                refused: 0,
                accepted_after_refusal: 0,
                refused_target: None,
                other_error: None,
            };
            for _ in 0..flood.attempts {
                match ctx.send(&flood.target, self.next) {
                    Ok(()) => {
                        self.next += 1;
                        outcome.accepted += 1;
                        if outcome.refused > 0 {
                            outcome.accepted_after_refusal += 1;
                        }
                    }
                    Err(ThespianError::QueueFull { target }) => {
                        outcome.refused += 1;
                        outcome.refused_target.get_or_insert(target);
                    }
                    Err(other) => {
                        outcome.other_error = Some(other.to_string());
                        break;
                    }
                }
            }
            ctx.send(env.sender(), outcome)?;
        }
        Ok(())
    }
}

/// Blocks in its `"block"` message until the test releases it; counts the numbers it gets and
/// checks each sender's are consecutive from 0; `"report"` answers a [`Hoard`].
#[derive(Default)]
struct Hoarder {
    next: HashMap<ActorAddress, u64>,
    received: u64,
    out_of_order: u64,
}

impl Actor for Hoarder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(n) = env.get::<u64>() {
            let expected = self.next.entry(env.sender().clone()).or_insert(0);
            if *n != *expected {
                self.out_of_order += 1;
            }
            *expected = n + 1;
            self.received += 1;
        } else if let Ok(text) = env.get::<String>() {
            match text.as_str() {
                "block" => {
                    let gate = FLOOD_GATE.get().expect("the test set the gate");
                    gate.entered.lock().unwrap().send(()).unwrap();
                    let released = gate.release.lock().unwrap().recv_timeout(REPLY).is_ok();
                    ctx.send(
                        env.sender(),
                        if released { "released" } else { "timed out" },
                    )?;
                }
                "report" => ctx.send(
                    env.sender(),
                    Hoard {
                        received: self.received,
                        in_order: self.out_of_order == 0,
                    },
                )?,
                _ => {}
            }
        }
        Ok(())
    }
}

#[test]
fn a_flood_over_the_queue_bound_is_refused_and_nothing_accepted_is_lost() {
    let _shared = THREADS_CHECK.read().unwrap_or_else(|p| p.into_inner());
    const LIMIT: u64 = 1_000;
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    assert!(FLOOD_GATE
        .set(FloodGate {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        })
        .is_ok());
    let sys = ActorSystem::builder()
        .base(SystemBase::Queue)
        .transient_unique(true)
        .log(LogConfig::Untouched)
        .capability(keys::WORKER_THREADS, 2i64)
        .queue_limit(LIMIT as usize)
        .start()
        .expect("the queue system starts");
    let hoarder = sys.create_actor::<Hoarder>().unwrap();
    let flooder = sys.create_actor::<Flooder>().unwrap();
    let client = sys.private().unwrap();
    client.tell(&hoarder, "block").unwrap();
    entered_rx
        .recv_timeout(REPLY)
        .expect("the hoarder entered its receive");

    // An actor: exactly the bound is accepted, and every later attempt is refused while the
    // target takes nothing, so its queue stays at the bound.
    let outcome = sys
        .ask(
            &flooder,
            FloodTo {
                target: hoarder.clone(),
                attempts: 20 * LIMIT,
            },
            REPLY,
        )
        .unwrap()
        .expect("the flooder reports");
    assert_eq!(
        *outcome.get::<FloodOutcome>().unwrap(),
        FloodOutcome {
            accepted: LIMIT,
            refused: 19 * LIMIT,
            accepted_after_refusal: 0,
            refused_target: Some(hoarder.clone()),
            other_error: None,
        }
    );

    // Outside: a handle's endpoint is one sender of its own, bounded the same way, for `tell`
    // and for `ask`.
    let outsider = sys.private().unwrap();
    for n in 0..LIMIT {
        outsider.tell(&hoarder, n).expect("within the bound");
    }
    assert_eq!(
        outsider.tell(&hoarder, LIMIT),
        Err(ThespianError::QueueFull {
            target: hoarder.clone()
        })
    );
    assert_eq!(
        outsider.ask(&hoarder, LIMIT, REPLY).map(|_| ()),
        Err(ThespianError::QueueFull {
            target: hoarder.clone()
        })
    );
    // Other senders are not affected by these two being full.
    client
        .tell(&hoarder, 0u64)
        .expect("another sender's own bound");

    // Released, the hoarder gets everything accepted, in each sender's order, and nothing else.
    release_tx.send(()).unwrap();
    let released = client.listen(REPLY).unwrap().expect("the hoarder answers");
    assert_eq!(released.get::<String>().unwrap(), "released");
    let hoard = client
        .ask(&hoarder, "report", REPLY)
        .unwrap()
        .expect("the hoarder reports");
    assert_eq!(
        *hoard.get::<Hoard>().unwrap(),
        Hoard {
            received: 2 * LIMIT + 1,
            in_order: true,
        }
    );

    // Drained, the senders may send again (the count comes down at most 64 messages late, so
    // half the bound always fits).
    outsider.tell(&hoarder, LIMIT).expect("the target drained");
    let again = sys
        .ask(
            &flooder,
            FloodTo {
                target: hoarder.clone(),
                attempts: LIMIT / 2,
            },
            REPLY,
        )
        .unwrap()
        .expect("the flooder reports");
    assert_eq!(again.get::<FloodOutcome>().unwrap().accepted, LIMIT / 2);
    sys.shutdown().unwrap();
}
