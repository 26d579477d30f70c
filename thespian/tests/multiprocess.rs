//! Multi-process scenarios of the Tcp and Udp bases that the conformance suite cannot express:
//! several programs sharing one admin daemon, Unix signals and `kill -9` on actor processes and
//! on the admin, hostile bytes on the Admin Port, process and descriptor leaks, and a port held
//! by something else.
//!
//! Rules: every system runs on 127.0.0.1 with an Admin Port of its own, picked at random in
//! 20000..32000 (below the ephemeral range, which actor sockets use); every wait has a deadline;
//! every process a scenario starts or learns of is killed when it ends (see [`Procs`]). Sleeps
//! appear only in waits for the kernel (a process exiting, a signal being delivered), never to
//! synchronise with the system's own threads.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::ops::Deref;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{keys, ActorSystemBuilder, LogConfig, StatusRequest, ThespianError};

thespian::test_entry_point!();

mod support;
use support::{admin_port, random_u64};

/// How long to wait for a reply that must come.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long processes may take to exit and be reaped.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Messages and actors

/// Asks a [`Probe`] who it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WhoAreYou;

/// A [`Probe`]'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    /// The process the probe runs in.
    pid: u32,
    /// That process's parent (the admin, for an actor process).
    parent_pid: u32,
    /// How many `WhoAreYou` this probe instance has answered, this one included.
    asked: u64,
}

/// Asks a [`Parent`] to create a [`Probe`] child; the asker becomes its reporter.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NewChild;

/// A [`Parent`]'s new child.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ChildIs(ActorAddress);

/// A [`Parent`] got `ChildActorExited` for this child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ChildExited(ActorAddress);

message!(
    WhoAreYou = "multiprocess.WhoAreYou",
    Identity = "multiprocess.Identity",
    NewChild = "multiprocess.NewChild",
    ChildIs = "multiprocess.ChildIs",
    ChildExited = "multiprocess.ChildExited",
);

/// Answers `WhoAreYou` with its process, its parent process, and a count of questions.
#[derive(Default)]
struct Probe {
    asked: u64,
}

impl Actor for Probe {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<WhoAreYou>() {
            self.asked += 1;
            let identity = Identity {
                pid: std::process::id(),
                parent_pid: std::os::unix::process::parent_id(),
                asked: self.asked,
            };
            ctx.send(env.sender(), identity)?;
        }
        Ok(())
    }
}

/// Creates [`Probe`] children on `NewChild` and reports each `ChildActorExited` to the last
/// asker as `ChildExited`.
#[derive(Default)]
struct Parent {
    reporter: Option<ActorAddress>,
}

impl Actor for Parent {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<NewChild>() {
            self.reporter = Some(env.sender().clone());
            let child = ctx.create_actor::<Probe>()?;
            ctx.send(env.sender(), ChildIs(child))?;
        } else if let Ok(exited) = env.get::<ChildActorExited>() {
            if let Some(reporter) = &self.reporter {
                ctx.send(reporter, ChildExited(exited.child_address.clone()))?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Systems, ports and processes

/// The settings of every system here: a multi-process base on the loopback address, with the
/// test binary as the entry point of its processes.
fn builder(base: SystemBase, port: u16, startup: &str) -> ActorSystemBuilder {
    ActorSystem::builder()
        .base(base)
        .transient_unique(true)
        .log(LogConfig::Untouched)
        .capability(keys::ADMIN_PORT, i64::from(port))
        .capability(keys::PROCESS_STARTUP_METHOD, startup)
        .advertise_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .test_entry_point()
}

/// A process known by pid and start time, so a recycled pid is never taken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Proc {
    pid: u32,
    start: u64,
}

/// The fields of `/proc/<pid>/stat` after the command name: `[0]` is the state (field 3),
/// `[1]` the parent pid (field 4), `[19]` the start time (field 22).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

impl Proc {
    fn of(pid: u32) -> Option<Proc> {
        let start = stat_fields(pid)?.get(19)?.parse().ok()?;
        Some(Proc { pid, start })
    }

    /// Still this process, and not yet a zombie.
    fn running(&self) -> bool {
        stat_fields(self.pid).is_some_and(|f| {
            f.get(19).and_then(|s| s.parse().ok()) == Some(self.start)
                && f.first().map(String::as_str) != Some("Z")
        })
    }
}

/// `/proc/<pid>` exists (a zombie not yet reaped counts).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The processes whose parent is `pid` (zombies included: they are not reaped yet).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| stat_fields(p).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(pid))
        .collect()
}

/// Entries of `/proc/<pid>/<dir>` (`fd`: open descriptors, `task`: threads).
fn count_entries(pid: u32, dir: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{dir}"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Sends `signal` (`kill`'s spelling: "-KILL", "-TERM", ...) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid} failed: {status}");
}

/// The kernel's exit event of one process (a pidfd), opened before the process is told to end
/// so a recycled pid can never be waited for instead.
struct ExitWatch {
    pid: u32,
    fd: Option<OwnedFd>,
}

impl ExitWatch {
    fn of(pid: u32) -> ExitWatch {
        // SAFETY: pidfd_open takes a pid and flags, returns a new descriptor or -1, and
        // touches no memory of ours.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        assert!(
            raw >= 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH),
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a descriptor pidfd_open just returned, owned by nobody else.
        let fd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) });
        ExitWatch { pid, fd }
    }

    /// Waits for the process to end, at most `within`; true when it has (or already had).
    fn wait(&self, within: Duration) -> bool {
        let Some(fd) = &self.fd else { return true };
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = left.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd, for the duration of the call.
            match unsafe { libc::poll(&mut poll, 1, millis) } {
                n if n > 0 => return true,
                0 => return false,
                _ if left.is_zero() => return false,
                _ => {} // EINTR: wait for the rest.
            }
        }
    }
}

impl std::fmt::Debug for ExitWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExitWatch({})", self.pid)
    }
}

/// Checks `done` after each `round_trip` (a message exchange with the system, which paces the
/// loop and lets the other side make progress) until it holds; false when `within` passed
/// first. For kernel state no event announces (a child reaped by the admin, its sockets
/// closed, a signal taken).
fn until(within: Duration, mut round_trip: impl FnMut(), mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        round_trip();
    }
}

/// One round trip to the admin: a status request and its answer.
fn admin_round_trip(sys: &ActorSystem) {
    let _ = sys.ask(&sys.admin_address(), StatusRequest, REPLY_TIMEOUT);
}

/// Processes to kill (SIGKILL) when the scenario ends, however it ends.
#[derive(Default)]
struct Procs(Vec<Proc>);

impl Procs {
    fn add(&mut self, pid: u32) {
        if let Some(p) = Proc::of(pid) {
            if !self.0.contains(&p) {
                self.0.push(p);
            }
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for p in self.0.iter().filter(|p| p.running()) {
            let _ = Command::new("kill")
                .args(["-KILL", &p.pid.to_string()])
                .status();
        }
    }
}

/// A started system that is shut down when the scenario ends, and whose known processes (the
/// admin, actor processes) are then killed if still there.
struct System {
    sys: ActorSystem,
    procs: Procs,
}

impl System {
    fn start(base: SystemBase, port: u16, startup: &str) -> System {
        System {
            sys: builder(base, port, startup)
                .start()
                .expect("the actor system starts"),
            procs: Procs::default(),
        }
    }
}

impl Deref for System {
    type Target = ActorSystem;
    fn deref(&self) -> &ActorSystem {
        &self.sys
    }
}

impl Drop for System {
    fn drop(&mut self) {
        let _ = self.sys.shutdown();
        // `procs` is dropped next: whatever shutdown left running is killed.
    }
}

/// A child process (the starter program) killed and reaped when the scenario ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks `probe` who it is; panics when no `Identity` comes within [`REPLY_TIMEOUT`].
fn identify(sys: &ActorSystem, probe: &ActorAddress) -> Identity {
    let env = sys
        .ask(probe, WhoAreYou, REPLY_TIMEOUT)
        .expect("ask is accepted")
        .unwrap_or_else(|| panic!("no answer from {probe} within {REPLY_TIMEOUT:?}"));
    take::<Identity>(env)
}

/// The envelope's message as a `T`, with a clear panic on another type.
fn take<T: Message>(env: Envelope) -> T {
    let what = format!("{} from {}", env.type_name(), env.sender());
    env.take::<T>()
        .unwrap_or_else(|_| panic!("expected a {}, got {what}", T::wire_name()))
}

/// Runs `f` on a thread and returns its result, or panics when it takes longer than `within`
/// (the call hangs: the thread is left behind, the scenario fails).
fn bounded<T: Send + 'static>(
    within: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("{what} did not return within {within:?}"))
}

// ---------------------------------------------------------------------------------------------
// a. The daemon outlives its starter, and a second program attaches

const STARTER_PORT_ENV: &str = "THESPIAN_MULTIPROCESS_TEST_STARTER_PORT";
const STARTER_BASE_ENV: &str = "THESPIAN_MULTIPROCESS_TEST_STARTER_BASE";

/// Not a scenario: the "first program" of [`daemon_outlives_its_starter`], run in a process of
/// its own when the environment names a port; otherwise it returns at once. It starts the
/// system, creates the "greeter", asks it once, prints who answered, and exits without
/// shutting the system down.
#[test]
fn starter_program() {
    let Ok(port) = std::env::var(STARTER_PORT_ENV) else {
        return;
    };
    let port: u16 = port.parse().expect("a port number");
    let base = match std::env::var(STARTER_BASE_ENV).as_deref() {
        Ok("udp") => SystemBase::Udp,
        _ => SystemBase::Tcp,
    };
    let sys = builder(base, port, "spawn")
        .start()
        .expect("the starter starts the system");
    let greeter = sys
        .create_actor_with::<Probe>(CreateOptions::new().global_name("greeter"))
        .expect("the greeter is created");
    let id = identify(&sys, &greeter);
    println!(
        "GREETER pid={} admin={} asked={}",
        id.pid, id.parent_pid, id.asked
    );
}

/// The greeter's identity as the starter program printed it.
fn parse_greeter(stdout: &str) -> Option<Identity> {
    let line = stdout.lines().find(|l| l.starts_with("GREETER "))?;
    let mut fields = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.split_once('=')?.1.parse().ok());
    Some(Identity {
        pid: fields.next()??,
        parent_pid: fields.next()??,
        asked: u64::from(fields.next()??),
    })
}

fn daemon_outlives_its_starter(base: SystemBase, base_arg: &str) {
    let port = admin_port();
    let mut procs = Procs::default();
    let child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "starter_program",
            "--exact",
            "--nocapture",
            "--quiet",
            "--test-threads=1",
        ])
        .env(STARTER_PORT_ENV, port.to_string())
        .env(STARTER_BASE_ENV, base_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the starter program runs");
    let mut starter = ChildGuard(child);
    let starter_pid = starter.0.id();
    let starter_end = ExitWatch::of(starter_pid);
    // Read its output as it comes (a full pipe would stall it).
    let mut out = starter.0.stdout.take().expect("stdout is piped");
    let mut err = starter.0.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let exited = starter_end.wait(Duration::from_secs(60));
    if !exited {
        let _ = starter.0.kill();
    }
    let status = starter.0.wait().expect("the starter is reaped");
    // The daemon and its actors do not hold the starter's stdout or stderr (theirs are null
    // or their own), so both pipes end with the starter.
    let out = out.join().expect("stdout reader");
    let err = err.join().expect("stderr reader");
    assert!(exited, "the starter program did not exit within 60 s");
    assert!(
        status.success(),
        "the starter program failed: {status}\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    let first = parse_greeter(&out)
        .unwrap_or_else(|| panic!("the starter printed no GREETER line:\n{out}\n{err}"));
    procs.add(first.parent_pid);
    procs.add(first.pid);
    assert_eq!(first.asked, 1);
    assert_ne!(
        first.pid, starter_pid,
        "the greeter runs in a process of its own"
    );
    assert_ne!(
        first.parent_pid, starter_pid,
        "the admin is a process of its own"
    );
    assert!(
        Proc::of(first.parent_pid).is_some_and(|p| p.running()),
        "the admin (pid {}) did not outlive its starter",
        first.parent_pid
    );

    // The second program: this test, on the same Admin Port.
    let mut sys = System::start(base, port, "spawn");
    sys.procs = procs;
    let greeter = sys
        .create_actor_with::<Probe>(CreateOptions::new().global_name("greeter"))
        .expect("create by global name");
    let now = identify(&sys, &greeter);
    assert_eq!(
        now,
        Identity {
            pid: first.pid,
            parent_pid: first.parent_pid,
            asked: 2
        },
        "the global name must return the starter's greeter (same process, same instance)"
    );
    // `shutdown()` returns once the admin has ended, and the admin answers only after it
    // reaped every actor process: nothing to wait for.
    sys.shutdown().expect("shutdown from the attached program");
    assert!(
        !exists(first.pid) && !Proc::of(first.parent_pid).is_some_and(|p| p.running()),
        "the admin or the greeter is still there after shutdown"
    );
}

#[test]
fn daemon_outlives_its_starter_and_a_second_program_attaches_tcp() {
    daemon_outlives_its_starter(SystemBase::Tcp, "tcp");
}

#[test]
fn daemon_outlives_its_starter_and_a_second_program_attaches_udp() {
    daemon_outlives_its_starter(SystemBase::Udp, "udp");
}

// ---------------------------------------------------------------------------------------------
// b. Signals to an actor process

/// Has `parent` create a probe child; returns its address and identity (the actor process's
/// pid is added to `sys`'s processes).
fn new_child(sys: &mut System, parent: &ActorAddress) -> (ActorAddress, Identity) {
    let env = sys
        .ask(parent, NewChild, REPLY_TIMEOUT)
        .expect("ask is accepted")
        .expect("the parent answers NewChild");
    let child = take::<ChildIs>(env).0;
    let id = identify(sys, &child);
    sys.procs.add(id.pid);
    assert_ne!(
        id.pid,
        std::process::id(),
        "the child is in another process"
    );
    (child, id)
}

/// Waits until no signal is pending for the process `pid` of `actor` (delivered: handled, or
/// acted upon), with status requests to the actor as the round trips.
fn wait_delivered(sys: &ActorSystem, actor: &ActorAddress, pid: u32) -> bool {
    let round_trip = || {
        let _ = sys.ask(actor, StatusRequest, REPLY_TIMEOUT);
    };
    until(REPLY_TIMEOUT, round_trip, || {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return true; // gone
        };
        status
            .lines()
            .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
            .all(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|m| m.trim_start_matches('0').is_empty())
            })
    })
}

#[test]
fn kill_9_of_an_actor_process_reaches_its_parent_within_1s() {
    let mut sys = System::start(SystemBase::Tcp, admin_port(), "spawn");
    let parent = sys.create_actor::<Parent>().expect("create the parent");
    let (child, id) = new_child(&mut sys, &parent);
    signal(id.pid, "-KILL");
    let env = sys
        .listen(Duration::from_secs(1))
        .expect("listen is accepted")
        .expect("the parent reports ChildActorExited within 1 s of kill -9");
    assert_eq!(take::<ChildExited>(env), ChildExited(child));
}

#[test]
fn sigterm_to_an_actor_process_exits_it_gracefully() {
    let mut sys = System::start(SystemBase::Tcp, admin_port(), "spawn");
    let parent = sys.create_actor::<Parent>().expect("create the parent");
    let (child, id) = new_child(&mut sys, &parent);
    let end = ExitWatch::of(id.pid);
    signal(id.pid, "-TERM");
    let env = sys
        .listen(REPLY_TIMEOUT)
        .expect("listen is accepted")
        .expect("the parent reports ChildActorExited after SIGTERM");
    assert_eq!(take::<ChildExited>(env), ChildExited(child));
    assert!(
        end.wait(EXIT_DEADLINE),
        "the actor process {} is still running after SIGTERM",
        id.pid
    );
}

#[test]
fn sigusr1_and_sighup_leave_an_actor_process_running() {
    let mut sys = System::start(SystemBase::Tcp, admin_port(), "spawn");
    let parent = sys.create_actor::<Parent>().expect("create the parent");
    let (child, id) = new_child(&mut sys, &parent);
    for (sig, asked) in [("-USR1", 2), ("-HUP", 3)] {
        signal(id.pid, sig);
        assert!(
            wait_delivered(&sys, &child, id.pid),
            "{sig} to {} still pending",
            id.pid
        );
        // An exit would answer this ask with ChildExited, or not at all.
        let now = identify(&sys, &child);
        assert_eq!(
            now,
            Identity {
                asked,
                ..id.clone()
            },
            "the same actor answers after {sig}"
        );
    }
    if let Some(env) = sys
        .listen(Duration::from_millis(300))
        .expect("listen is accepted")
    {
        panic!(
            "nothing expected after SIGUSR1 and SIGHUP, got {}",
            env.type_name()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// c. kill -9 of the admin

#[test]
fn kill_9_of_the_admin_gives_the_program_errors_not_hangs() {
    let mut sys = System::start(SystemBase::Tcp, admin_port(), "thread");
    let probe = sys.create_actor::<Probe>().expect("create a probe");
    // On a thread of the admin's process: its pid is the admin's.
    let admin_pid = identify(&sys, &probe).pid;
    assert_ne!(admin_pid, std::process::id());
    sys.procs.add(admin_pid);
    let admin_end = ExitWatch::of(admin_pid);
    signal(admin_pid, "-KILL");
    assert!(admin_end.wait(EXIT_DEADLINE), "the admin survived kill -9");

    let handle = sys.sys.clone();
    let created = bounded(Duration::from_secs(90), "create_actor", move || {
        handle.create_actor::<Probe>()
    });
    assert!(
        created.is_err(),
        "create_actor with the admin dead returned {created:?}"
    );
    let handle = sys.sys.clone();
    let target = probe.clone();
    let asked = bounded(Duration::from_secs(30), "ask", move || {
        handle
            .ask(&target, WhoAreYou, Duration::from_secs(2))
            .map(|reply| reply.map(|env| env.type_name().to_string()))
    });
    assert!(
        matches!(asked, Err(_) | Ok(None)),
        "ask with the admin dead returned {asked:?}"
    );
}

/// An `ask` in flight when the admin is killed fails at once (the program watches the admin's
/// process), not after its 30 s timeout; later calls keep failing with the same clear error.
fn kill_9_of_the_admin_fails_a_waiting_ask_at_once(base: SystemBase) {
    let mut sys = System::start(base, admin_port(), "spawn");
    let probe = sys.create_actor::<Probe>().expect("create a probe");
    // An actor process: its parent is the admin.
    let admin_pid = identify(&sys, &probe).parent_pid;
    assert_ne!(admin_pid, std::process::id());
    sys.procs.add(admin_pid);
    let admin_end = ExitWatch::of(admin_pid);
    // The probe never answers a String: this ask could only end by its timeout.
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = sys.sys.clone();
    let target = probe.clone();
    std::thread::spawn(move || {
        let asked = handle.ask(&target, "no answer comes", Duration::from_secs(30));
        let _ = tx.send(asked.map(|reply| reply.map(|env| env.type_name().to_string())));
    });
    signal(admin_pid, "-KILL");
    assert!(admin_end.wait(EXIT_DEADLINE), "the admin survived kill -9");
    // Bounds a failing run only; a passing one returns as soon as the admin is gone.
    let asked = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the ask did not return within 10 s of the admin's end (its timeout is 30 s)");
    // Whichever notices first, the admin's process watch ("the actor system's admin (pid N) is
    // gone") or the transport ("the admin at ADDR is gone (...)"), the error says so.
    let says_gone = |text: &str| text.contains("admin") && text.contains("is gone");
    match asked {
        Err(ThespianError::SystemFailure(text)) if says_gone(&text) => {}
        other => panic!("the waiting ask returned {other:?}, not SystemFailure"),
    }
    match sys.ask(&probe, WhoAreYou, Duration::from_secs(30)) {
        Err(ThespianError::SystemFailure(text)) if says_gone(&text) => {}
        other => panic!("a later ask returned {other:?}, not SystemFailure"),
    }
    assert!(sys.tell(&probe, WhoAreYou).is_err());
}

#[test]
fn kill_9_of_the_admin_fails_a_waiting_ask_at_once_tcp() {
    kill_9_of_the_admin_fails_a_waiting_ask_at_once(SystemBase::Tcp);
}

#[test]
fn kill_9_of_the_admin_fails_a_waiting_ask_at_once_udp() {
    kill_9_of_the_admin_fails_a_waiting_ask_at_once(SystemBase::Udp);
}

// ---------------------------------------------------------------------------------------------
// d. Garbage on the admin port

/// Connects to the admin port, writes `bytes`, and asserts the admin closes the connection
/// (end of stream or a reset) within 5 s; anything it writes first (a rejection) is skipped.
fn expect_closed(port: u16, bytes: &[u8], what: &str) {
    let mut stream =
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to the admin port");
    // A write may already fail if the admin closed after the first bytes: closed all the same.
    if stream.write_all(bytes).is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{what}: the admin kept the connection open for 5 s"
        );
        stream
            .set_read_timeout(Some(left))
            .expect("set a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: the admin kept the connection open for 5 s")
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return, // reset
        }
    }
}

#[test]
fn garbage_on_the_admin_port_is_dropped_and_the_system_goes_on() {
    use thespian_transport_tcp::wire::{
        encode_handshake, Handshake, HandshakeKind, PeerInfo, PROTOCOL_VERSION,
    };

    let port = admin_port();
    let sys = System::start(SystemBase::Tcp, port, "spawn");

    // 64 random bytes. The first byte is made non-zero so the 4-byte length prefix announces
    // more than a handshake may be (4096): rejected at once. (A prefix of 61..=4096 by chance
    // would leave the admin waiting for the rest until its 10 s handshake timeout.)
    let mut garbage: Vec<u8> = (0..8).flat_map(|_| random_u64().to_le_bytes()).collect();
    garbage[0] |= 0x80;
    expect_closed(port, &garbage, "64 random bytes");

    // A well-formed handshake frame with the wrong magic.
    let peer = PeerInfo {
        incarnation: thespian::core::SystemId::from_raw(random_u64() | 1),
        session: 1,
        listen: None,
        max_frame: 1 << 20,
    };
    // A Hello from someone without the system's secret (it cannot make a proof, but a Hello
    // needs none: its challenge is public).
    let hello = || HandshakeKind::Hello {
        auth: thespian_auth::Hello {
            incarnation: peer.incarnation.raw(),
            nonce: thespian_auth::Nonce([7; 32]),
            suite: thespian_auth::Suite::Authenticated,
        },
        info: peer.clone(),
    };
    let wrong_magic = encode_handshake(&Handshake {
        magic: *b"NOPE",
        version: PROTOCOL_VERSION,
        kind: hello(),
    });
    expect_closed(port, &wrong_magic, "a handshake with the wrong magic");

    // Huge length prefixes. The TCP wire's prefix is a u32 (frame.rs), so 2^40 cannot be
    // announced: the largest it can, u32::MAX, is sent instead, as the first frame and after a
    // valid Hello (both over the 4096-byte handshake limit: nothing larger is read before the
    // peer has proved it holds the secret).
    let huge = u32::MAX.to_be_bytes();
    let mut first = huge.to_vec();
    first.extend_from_slice(b"more");
    expect_closed(port, &first, "a first frame announcing 4 GiB");
    let mut after_hello = encode_handshake(&Handshake::new(hello()));
    after_hello.extend_from_slice(&huge);
    after_hello.extend_from_slice(b"more");
    expect_closed(
        port,
        &after_hello,
        "a frame announcing 4 GiB after a valid hello",
    );

    let probe = sys
        .create_actor::<Probe>()
        .expect("create after the garbage");
    assert_eq!(identify(&sys, &probe).asked, 1);
}

// ---------------------------------------------------------------------------------------------
// e. 200 actor processes: no leak

#[test]
fn two_hundred_actor_processes_leave_no_leak_in_the_admin() {
    let mut sys = System::start(SystemBase::Tcp, admin_port(), "spawn");
    let probe = sys.create_actor::<Probe>().expect("create a probe");
    let probe_id = identify(&sys, &probe);
    let admin_pid = probe_id.parent_pid;
    sys.procs.add(admin_pid);
    let probe_end = ExitWatch::of(probe_id.pid);
    sys.tell(&probe, ActorExitRequest::new())
        .expect("tell the probe to exit");
    assert!(probe_end.wait(EXIT_DEADLINE), "the probe's process ended");
    assert!(
        until(
            EXIT_DEADLINE,
            || admin_round_trip(&sys),
            || children_of(admin_pid).is_empty()
        ),
        "the probe's process is still a child of the admin: {:?}",
        children_of(admin_pid)
    );
    let fds = count_entries(admin_pid, "fd");
    let threads = count_entries(admin_pid, "task");
    assert!(fds > 0 && threads > 0, "cannot read /proc/{admin_pid}");

    let actors: Vec<ActorAddress> = (0..200)
        .map(|i| {
            sys.create_actor::<Probe>()
                .unwrap_or_else(|e| panic!("create actor {i}: {e}"))
        })
        .collect();
    let mut pids = HashSet::new();
    for actor in &actors {
        let id = identify(&sys, actor);
        assert_eq!(id.parent_pid, admin_pid, "{actor} is not the admin's child");
        sys.procs.add(id.pid);
        pids.insert(id.pid);
    }
    assert_eq!(pids.len(), 200, "200 actors in 200 processes");
    let ends: Vec<ExitWatch> = pids.iter().map(|&pid| ExitWatch::of(pid)).collect();
    for actor in &actors {
        sys.tell(actor, ActorExitRequest::new())
            .expect("tell an actor to exit");
    }
    for end in &ends {
        assert!(end.wait(Duration::from_secs(60)), "{end:?}: still running");
    }
    let mut now = (Vec::new(), 0, 0);
    let settled = until(
        Duration::from_secs(60),
        || admin_round_trip(&sys),
        || {
            now = (
                children_of(admin_pid),
                count_entries(admin_pid, "fd"),
                count_entries(admin_pid, "task"),
            );
            now.0.is_empty() && now.1 <= fds && now.2 <= threads
        },
    );
    assert!(
        settled,
        "after 200 actors exited: children of the admin {:?}, {} fds (before: {fds}), \
         {} threads (before: {threads})",
        now.0, now.1, now.2
    );
    // The admin still serves.
    let probe = sys.create_actor::<Probe>().expect("create after the 200");
    assert_eq!(identify(&sys, &probe).parent_pid, admin_pid);
}

// ---------------------------------------------------------------------------------------------
// f. shutdown leaves no process behind

#[test]
fn shutdown_leaves_no_process_behind() {
    let mut sys = System::start(SystemBase::Tcp, admin_port(), "spawn");
    let parent = sys.create_actor::<Parent>().expect("create a parent");
    let mut pids = Vec::new();
    for _ in 0..3 {
        let probe = sys.create_actor::<Probe>().expect("create a probe");
        pids.push(identify(&sys, &probe));
    }
    let (_, child) = new_child(&mut sys, &parent);
    pids.push(child);
    let admin_pid = pids[0].parent_pid;
    assert!(pids.iter().all(|id| id.parent_pid == admin_pid));
    sys.procs.add(admin_pid);
    let mut all: Vec<u32> = children_of(admin_pid);
    for id in &pids {
        sys.procs.add(id.pid);
        if !all.contains(&id.pid) {
            all.push(id.pid);
        }
    }
    assert!(
        all.len() >= 5,
        "the parent, its child and 3 probes: {all:?}"
    );
    all.push(admin_pid);

    // `shutdown()` returns once the admin (this program's child) is reaped, and the admin
    // answers only after it reaped every actor process: nothing to wait for.
    sys.shutdown().expect("shutdown");
    let left: Vec<u32> = all.iter().copied().filter(|&p| exists(p)).collect();
    let gone = left.is_empty();
    let states: Vec<(u32, Option<String>)> = left
        .iter()
        .map(|&p| (p, stat_fields(p).and_then(|f| f.first().cloned())))
        .collect();
    assert!(
        gone,
        "after shutdown these processes (admin {admin_pid}) still exist as (pid, state): {states:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// g. The Admin Port held by something else

/// A TCP listener on a fresh port that accepts connections on a thread and writes `reply` to
/// each (nothing, for a silent listener that never accepts); stopped when dropped.
struct Squatter {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _listener: Option<TcpListener>,
}

impl Squatter {
    fn silent() -> Squatter {
        let port = admin_port();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind the port");
        Squatter {
            port,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            _listener: Some(listener),
        }
    }

    fn writing(reply: &'static [u8]) -> Squatter {
        let port = admin_port();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind the port");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut open = Vec::new();
            for stream in listener.incoming() {
                if flag.load(Ordering::Acquire) {
                    return;
                }
                if let Ok(mut stream) = stream {
                    let _ = stream.write_all(reply);
                    open.push(stream);
                }
            }
        });
        Squatter {
            port,
            stop,
            thread: Some(thread),
            _listener: None,
        }
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            // Wake the accept loop, which then sees the flag.
            if let Ok(s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                let _ = s.shutdown(Shutdown::Both);
            }
            let _ = thread.join();
        }
    }
}

fn expect_not_an_admin(port: u16) {
    let result = bounded(Duration::from_secs(60), "start", move || {
        builder(SystemBase::Tcp, port, "spawn").start().map(|sys| {
            let _ = sys.shutdown();
        })
    });
    let error = result.expect_err("start on a port held by a non-admin must fail");
    let text = error.to_string();
    assert!(
        text.contains("not a thespian admin") && text.contains("'Admin Port'"),
        "the error must say the port is not a thespian admin and name 'Admin Port': {text}"
    );
}

#[test]
fn admin_port_held_by_a_silent_listener_is_reported() {
    let squatter = Squatter::silent();
    expect_not_an_admin(squatter.port);
}

#[test]
fn admin_port_held_by_a_garbage_writer_is_reported() {
    let squatter = Squatter::writing(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    expect_not_an_admin(squatter.port);
}

// ---- logging: records from actor processes reach the admin's log sink ----

const LOGGER_PORT_ENV: &str = "THESPIAN_MULTIPROCESS_TEST_LOGGER_PORT";

/// Logs a warning carrying the text it is sent, then answers `logged`.
#[derive(Default)]
struct Chatty;

impl Actor for Chatty {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(text) = env.get::<String>() {
            log::warn!("chatty says {text}");
            ctx.send(env.sender(), "logged")?;
        }
        Ok(())
    }
}

/// Not a scenario: run in a process of its own when the environment names a port. Starts a
/// Tcp system whose log sink is this process's stderr (inherited by the daemon), has an actor
/// in its own process log a marker, and shuts the system down.
#[test]
fn logger_program() {
    let Ok(port) = std::env::var(LOGGER_PORT_ENV) else {
        return;
    };
    let port: u16 = port.parse().expect("a port number");
    let sys = builder(SystemBase::Tcp, port, "spawn")
        .log(LogConfig::Filter("warn".into()))
        .start()
        .expect("the system starts");
    let chatty = sys.create_actor::<Chatty>().expect("create");
    let reply = sys
        .ask(&chatty, format!("marker-{port}"), REPLY_TIMEOUT)
        .expect("ask")
        .expect("a reply");
    assert_eq!(reply.get::<String>().expect("a String"), "logged");
    sys.shutdown().expect("shutdown");
}

#[test]
fn log_records_of_actor_processes_reach_the_admins_sink() {
    let port = admin_port();
    // Not a terminal here, so the daemon logs to the file THESPLOG_FILE names.
    let log_file = std::env::temp_dir().join(format!(
        "thespian-multiprocess-log-{}-{port}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log_file);
    let child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "logger_program",
            "--exact",
            "--nocapture",
            "--quiet",
            "--test-threads=1",
        ])
        .env(LOGGER_PORT_ENV, port.to_string())
        .env("THESPLOG_FILE", &log_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the logger program runs");
    let mut program = ChildGuard(child);
    let program_end = ExitWatch::of(program.0.id());
    let mut err = program.0.stderr.take().expect("stderr is piped");
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let exited = program_end.wait(Duration::from_secs(60));
    if !exited {
        let _ = program.0.kill();
    }
    let status = program.0.wait().expect("the program is reaped");
    // The daemon outlived nothing here, but it must never hold its starter's pipe: the pipe
    // ends with the program.
    let err = bounded(
        Duration::from_secs(30),
        "the program's stderr closing with the program",
        move || err.join().expect("reader"),
    );
    assert!(
        exited && status.success(),
        "the logger program failed: {status}\n{err}"
    );
    // The program's shutdown returned after the daemon ended: its log is complete.
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log_file)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_default();
        assert_eq!(mode, 0o600, "the admin's log file is its owner's only");
    }
    let _ = std::fs::remove_file(&log_file);
    let marker = format!("chatty says marker-{port}");
    let line = log
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("the actor's warning is not in the admin's log:\n{log}"));
    assert!(line.contains("WARN"), "logged at its level: {line}");
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Probe, Parent, Chatty);
