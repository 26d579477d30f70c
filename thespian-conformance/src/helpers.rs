//! Shared helpers: starting systems, asking and listening with timeouts, and the small actors
//! and messages many scenarios use.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{
    keys, ActorStatus, ActorSystemBuilder, CreateRequest, LogConfig, Message, NewActor,
    StatusRequest,
};

use crate::bases::{traits, TestBase};

/// How long to wait for a reply that must come: a bound for a failing run, not a measure (a
/// passing run never waits it out), generous because CI machines are small and busy.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait before concluding that no reply comes. The simple base returns as soon as
/// it is quiescent; threaded and multi-process bases need a moment.
pub(crate) const NO_REPLY_TIMEOUT: Duration = Duration::from_millis(300);

/// A started system that shuts down when dropped (also when the scenario panics).
pub(crate) struct TestSystem {
    sys: ActorSystem,
}

impl Deref for TestSystem {
    type Target = ActorSystem;
    fn deref(&self) -> &ActorSystem {
        &self.sys
    }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        let _ = self.sys.shutdown();
    }
}

/// The builder every scenario starts from: `base`, a transient unique system, logging untouched;
/// on a multi-process base also a free admin port, the loopback address, the test binary as the
/// processes' entry point and the base's `Process Startup Method`.
pub(crate) fn builder(base: TestBase) -> ActorSystemBuilder {
    let builder = base
        .custom_builder()
        .unwrap_or_else(|| ActorSystem::builder().base(base.base()))
        .transient_unique(true)
        .log(LogConfig::Untouched);
    // A custom base's builder brings the settings it needs itself.
    if base.is_multi_process() && !base.is_custom() {
        multi_process_settings(builder, base)
    } else {
        builder
    }
}

/// The settings a multi-process base needs to run inside a test: its own admin port (tests run
/// in parallel), addresses on the loopback interface, processes re-executed from the test binary
/// (through `thespian::test_entry_point!()` at the root of the test crate), and the startup method.
fn multi_process_settings(builder: ActorSystemBuilder, base: TestBase) -> ActorSystemBuilder {
    let mut builder = builder.capability(keys::ADMIN_PORT, free_port(base));
    if let Some(method) = base.startup().method() {
        builder = builder.capability(keys::PROCESS_STARTUP_METHOD, method);
    }
    builder
        .advertise_ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        .test_entry_point()
}

/// A port on 127.0.0.1 free for `base`'s transport right now, for an admin.
///
/// Taken below the kernel's ephemeral range (actor and endpoint sockets use ephemeral ports,
/// so they never take a test admin's port between this probe and the admin's bind), from a
/// counter per test process that starts at a place derived from the process id, so parallel
/// scenarios and parallel test binaries do not pick the same port.
fn free_port(base: TestBase) -> u16 {
    use std::sync::atomic::AtomicU32;
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::AcqRel) % SPAN) as u16;
        let free = match base.base() {
            SystemBase::Udp => UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok(),
            _ => TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok(),
        };
        if free {
            return port;
        }
    }
    panic!(
        "no free port on 127.0.0.1 between {FIRST} and {}",
        FIRST + SPAN
    )
}

/// Starts a system on `base` with default settings.
pub(crate) fn start(base: TestBase) -> TestSystem {
    start_with(builder(base))
}

/// Starts a system from a configured builder.
pub(crate) fn start_with(builder: ActorSystemBuilder) -> TestSystem {
    TestSystem {
        sys: builder.start().expect("the actor system starts"),
    }
}

/// A short description of an envelope for assertion messages (never the whole payload: some
/// are megabytes).
pub(crate) fn describe(env: &Envelope) -> String {
    let text = clip(format!("{:?}", env.payload()));
    format!("{} from {}: {text}", env.type_name(), env.sender())
}

/// `text` cut to its first 200 bytes (at a character boundary), for assertion messages.
fn clip(mut text: String) -> String {
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Asks `to` and returns the reply envelope; panics when none comes within [`REPLY_TIMEOUT`].
pub(crate) fn ask_env(
    sys: &ActorSystem,
    to: &ActorAddress,
    msg: impl thespian::IntoMessage,
) -> Envelope {
    sys.ask(to, msg, REPLY_TIMEOUT)
        .expect("ask is accepted")
        .unwrap_or_else(|| panic!("no reply from {to} within {REPLY_TIMEOUT:?}"))
}

/// Asks `to` and returns the reply as a `T` ([`ActorSystem::ask_as`] with [`REPLY_TIMEOUT`]);
/// panics with the [`RequestError`](thespian::RequestError) when none comes or it is another
/// type.
pub(crate) fn ask<T: Message>(
    sys: &ActorSystem,
    to: &ActorAddress,
    msg: impl thespian::IntoMessage,
) -> T {
    sys.ask_as::<T>(to, msg, REPLY_TIMEOUT)
        .unwrap_or_else(|e| panic!("asking {to}: {e}"))
}

/// Asks `to` again and again until the reply, a `T`, satisfies `done`, and returns that reply:
/// for state that fills in a moment after the ask could first be made, e.g. on a multi-process
/// base, where messages from different senders travel different connections and may overtake
/// each other. Each attempt is a full ask round trip (never a sleep); panics with the last reply
/// when none satisfies `done` by [`REPLY_TIMEOUT`] after the first attempt.
pub(crate) fn ask_until<T: Message>(
    sys: &ActorSystem,
    to: &ActorAddress,
    msg: impl thespian::IntoMessage,
    mut done: impl FnMut(&T) -> bool,
) -> T {
    let msg = msg.into_message();
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut attempts = 0u32;
    let mut last: Option<T> = None;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        if attempts > 0 && wait.is_zero() {
            panic!(
                "{to} did not give the awaited reply within {REPLY_TIMEOUT:?} \
                 ({attempts} asks); the last reply was {}",
                clip(format!("{last:?}"))
            );
        }
        attempts += 1;
        let Some(env) = sys.ask(to, msg.clone(), wait).expect("ask is accepted") else {
            panic!(
                "no reply from {to} to ask {attempts} within {REPLY_TIMEOUT:?} in all; \
                 the last reply was {}",
                clip(format!("{last:?}"))
            );
        };
        let reply = env
            .reply_as::<T>()
            .unwrap_or_else(|e| panic!("asking {to}: {e}"));
        if done(&reply) {
            return reply;
        }
        last = Some(reply);
    }
}

/// Asks `to` for state that every message it depends on was *caused* before the ask (e.g. sent
/// before the sender replied to the test): on an in-process base, where messages arrive in the
/// order they were caused, the first reply must satisfy `done`; on a multi-process base, which
/// only keeps each sender's own order, messages from other senders may still be on their way,
/// so it asks [`ask_until`] they are in. Returns the reply that satisfied `done`.
pub(crate) fn ask_caught_up<T: Message>(
    base: TestBase,
    sys: &ActorSystem,
    to: &ActorAddress,
    msg: impl thespian::IntoMessage,
    mut done: impl FnMut(&T) -> bool,
) -> T {
    if traits(base).in_process {
        let reply = ask::<T>(sys, to, msg);
        assert!(
            done(&reply),
            "on {base} every message caused before the ask has arrived, but {to} replied {}",
            clip(format!("{reply:?}"))
        );
        reply
    } else {
        ask_until(sys, to, msg, done)
    }
}

/// Asks `to` and asserts that no reply comes within [`NO_REPLY_TIMEOUT`].
pub(crate) fn ask_none(sys: &ActorSystem, to: &ActorAddress, msg: impl thespian::IntoMessage) {
    if let Some(env) = sys.ask(to, msg, NO_REPLY_TIMEOUT).expect("ask is accepted") {
        panic!("expected no reply from {to}, got {}", describe(&env));
    }
}

/// Waits for the next message to `sys`'s endpoint; panics when none comes.
pub(crate) fn listen_env(sys: &ActorSystem) -> Envelope {
    sys.listen(REPLY_TIMEOUT)
        .expect("listen is accepted")
        .unwrap_or_else(|| panic!("nothing arrived within {REPLY_TIMEOUT:?}"))
}

/// Waits for the next message to `sys`'s endpoint as a `T` ([`ActorSystem::listen_as`] with
/// [`REPLY_TIMEOUT`]); panics with the [`RequestError`](thespian::RequestError) otherwise.
pub(crate) fn listen<T: Message>(sys: &ActorSystem) -> T {
    sys.listen_as::<T>(REPLY_TIMEOUT)
        .unwrap_or_else(|e| panic!("listening: {e}"))
}

/// Asserts that nothing arrives at `sys`'s endpoint within [`NO_REPLY_TIMEOUT`].
pub(crate) fn listen_none(sys: &ActorSystem) {
    if let Some(env) = sys.listen(NO_REPLY_TIMEOUT).expect("listen is accepted") {
        panic!("expected nothing, got {}", describe(&env));
    }
}

/// Asserts `to` is a live, running actor (every actor answers `StatusRequest`).
pub(crate) fn assert_alive(sys: &ActorSystem, to: &ActorAddress) {
    let status: ActorStatus = ask(sys, to, StatusRequest);
    assert_eq!(&status.actor_address, to);
    assert!(!status.exiting, "{to} is exiting");
}

/// Asserts `to` is gone: a status request to it is not answered.
pub(crate) fn assert_gone(sys: &ActorSystem, to: &ActorAddress) {
    ask_none(sys, to, StatusRequest);
}

/// The status of actor `to`.
pub(crate) fn status(sys: &ActorSystem, to: &ActorAddress) -> ActorStatus {
    ask(sys, to, StatusRequest)
}

/// Simulates a handler busy with work for `period` (not a synchronisation: nothing waits on it).
pub(crate) fn simulate_work(period: Duration) {
    let start = Instant::now();
    while start.elapsed() < period {
        std::hint::spin_loop();
    }
}

/// Several actor addresses as a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Addrs(pub(crate) Vec<ActorAddress>);

/// A [`Parent`] reports that its child exited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChildGone {
    /// The parent that got `ChildActorExited`.
    pub(crate) parent: ActorAddress,
    /// The child it named.
    pub(crate) child: ActorAddress,
}

/// Asks a [`Parent`] to create a child (with optional global name and requirements) and reply
/// with its address; the asker becomes the parent's reporter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Spawn {
    /// The global name to create the child under.
    pub(crate) global_name: Option<String>,
    /// The create request's requirements.
    pub(crate) requirements: Requirements,
}

impl Spawn {
    /// A plain child.
    pub(crate) fn child() -> Spawn {
        Spawn::default()
    }

    /// A child under a global name.
    pub(crate) fn named(name: &str) -> Spawn {
        Spawn {
            global_name: Some(name.to_owned()),
            ..Spawn::default()
        }
    }

    /// A child with one requirement.
    pub(crate) fn requiring(key: &str, value: impl Into<CapabilityValue>) -> Spawn {
        Spawn {
            requirements: Requirements::new().with(key, value),
            ..Spawn::default()
        }
    }
}

/// Asks a [`Parent`] for its children (`Addrs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChildrenQuery;

/// Hands an actor the id of its test's [`sink`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UseSink(pub(crate) u64);

message!(
    Addrs = "conformance.Addrs",
    ChildGone = "conformance.ChildGone",
    Spawn = "conformance.Spawn",
    ChildrenQuery = "conformance.ChildrenQuery",
    UseSink = "conformance.UseSink",
);

/// Replies every user message back to its sender, unchanged.
#[derive(Default)]
pub(crate) struct Echo;

impl Actor for Echo {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if !env.payload().is_system() {
            ctx.forward(env.sender(), env)?;
        }
        Ok(())
    }
}

/// A parent of `C` children: `Spawn` creates one and replies `ActorAddress`; each `ChildActorExited`
/// is reported to the last `Spawn` sender as `ChildGone`; `ChildrenQuery` replies `Addrs`;
/// strings are echoed.
pub(crate) struct Parent<C> {
    reporter: Option<ActorAddress>,
    _child: PhantomData<fn() -> C>,
}

impl<C> Default for Parent<C> {
    fn default() -> Self {
        Parent {
            reporter: None,
            _child: PhantomData,
        }
    }
}

impl<C: Actor + NewActor> Actor for Parent<C> {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(spawn) = env.get::<Spawn>() {
            self.reporter = Some(env.sender().clone());
            let mut request = CreateRequest::of::<C>().requirements(spawn.requirements.clone());
            if let Some(name) = &spawn.global_name {
                request = request.global_name(name.clone());
            }
            let child = ctx.create(request)?;
            ctx.send(env.sender(), child)?;
        } else if let Ok(exited) = env.get::<ChildActorExited>() {
            if let Some(reporter) = &self.reporter {
                let gone = ChildGone {
                    parent: ctx.my_address().clone(),
                    child: exited.child_address.clone(),
                };
                ctx.send(reporter, gone)?;
            }
        } else if env.is::<ChildrenQuery>() {
            ctx.send(env.sender(), Addrs(ctx.children().to_vec()))?;
        } else if let Ok(text) = env.get::<String>() {
            ctx.send(env.sender(), text.clone())?;
        }
        Ok(())
    }
}

/// Asks `parent` (a [`Parent`]) to spawn and returns the child's address.
pub(crate) fn spawn(sys: &ActorSystem, parent: &ActorAddress, how: Spawn) -> ActorAddress {
    ask::<ActorAddress>(sys, parent, how)
}

/// Waits for a [`Parent`]'s `ChildGone` report and checks who it names.
pub(crate) fn expect_child_gone(sys: &ActorSystem, parent: &ActorAddress, child: &ActorAddress) {
    let gone: ChildGone = listen(sys);
    assert_eq!(
        gone,
        ChildGone {
            parent: parent.clone(),
            child: child.clone()
        }
    );
}

static SINKS: Mutex<BTreeMap<u64, Vec<String>>> = Mutex::new(BTreeMap::new());
static NEXT_SINK: AtomicU64 = AtomicU64::new(1);

/// A fresh event sink, for in-process bases only: events actors record where no message can
/// reach the test any more (e.g. during `shutdown()`).
pub(crate) fn sink() -> u64 {
    NEXT_SINK.fetch_add(1, Ordering::Relaxed)
}

/// Records `event` in sink `id`.
pub(crate) fn record(id: u64, event: impl Into<String>) {
    SINKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(id)
        .or_default()
        .push(event.into());
}

/// The events of sink `id`, in recording order.
pub(crate) fn events(id: u64) -> Vec<String> {
    SINKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .cloned()
        .unwrap_or_default()
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Echo);
