//! The system bases the conformance suite runs on, and what the suite expects of each.
//!
//! To run the suite on a new base (or a new variant of one), add one line to
//! `conformance_suite!` below (and check its row in [`traits`]).

use std::fmt;

use thespian::SystemBase;

conformance_suite! {
    simple => TestBase::SIMPLE,
    queue => TestBase::QUEUE,
    tcp_spawn => TestBase::TCP_SPAWN,
    tcp_thread => TestBase::TCP_THREAD,
    udp_spawn => TestBase::UDP_SPAWN,
    udp_thread => TestBase::UDP_THREAD,
}

/// How a base starts its actors: Thespian's `Process Startup Method` capability of the
/// multi-process bases.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Startup {
    /// The base runs every actor in the test's process (simple, queue): no startup method.
    InProcess,
    /// `Process Startup Method` = `spawn`: the admin and each actor in a process of its own.
    Spawn,
    /// `Process Startup Method` = `thread`: the admin daemon in its own process, its actors on
    /// threads of that process (not of the test's).
    Thread,
}

impl Startup {
    /// The `Process Startup Method` capability value, if the base takes one.
    pub(crate) fn method(self) -> Option<&'static str> {
        match self {
            Startup::InProcess => None,
            Startup::Spawn => Some("spawn"),
            Startup::Thread => Some("thread"),
        }
    }
}

/// A base the suite runs on: the system base and, for the multi-process bases, how processes
/// are started.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TestBase {
    /// The system base.
    pub(crate) base: SystemBase,
    /// How it starts its actors.
    pub(crate) startup: Startup,
}

// The multi-process variants are unused until their lines in `conformance_suite!` are enabled.
#[allow(dead_code)]
impl TestBase {
    /// `simpleSystemBase`.
    pub(crate) const SIMPLE: TestBase = TestBase::new(SystemBase::Simple, Startup::InProcess);
    /// `multiprocQueueBase`.
    pub(crate) const QUEUE: TestBase = TestBase::new(SystemBase::Queue, Startup::InProcess);
    /// `multiprocTCPBase`, a process per actor.
    pub(crate) const TCP_SPAWN: TestBase = TestBase::new(SystemBase::Tcp, Startup::Spawn);
    /// `multiprocTCPBase`, actors on threads of the admin daemon's process.
    pub(crate) const TCP_THREAD: TestBase = TestBase::new(SystemBase::Tcp, Startup::Thread);
    /// `multiprocUDPBase`, a process per actor.
    pub(crate) const UDP_SPAWN: TestBase = TestBase::new(SystemBase::Udp, Startup::Spawn);
    /// `multiprocUDPBase`, actors on threads of the admin daemon's process.
    pub(crate) const UDP_THREAD: TestBase = TestBase::new(SystemBase::Udp, Startup::Thread);

    const fn new(base: SystemBase, startup: Startup) -> TestBase {
        TestBase { base, startup }
    }

    /// Thespian's name for the base (`multiprocTCPBase`, …), without the startup method.
    pub(crate) fn thespian_name(self) -> &'static str {
        self.base.thespian_name()
    }

    /// The base runs its actors in other processes and talks to them over a transport.
    pub(crate) fn is_multi_process(self) -> bool {
        matches!(self.base, SystemBase::Tcp | SystemBase::Udp)
    }
}

impl fmt::Display for TestBase {
    /// The Thespian name, with the startup method when there is one:
    /// `multiprocTCPBase (thread)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.startup.method() {
            None => f.write_str(self.thespian_name()),
            Some(method) => write!(f, "{} ({method})", self.thespian_name()),
        }
    }
}

/// What a base offers, where the suite's expectations depend on it (SPEC §3).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Traits {
    /// Actors run in the test's own process (a static in the test binary is shared with them).
    pub(crate) in_process: bool,
    /// The base takes part in conventions (`notify_on_system_registration_changes`,
    /// `pre_register_remote_system`, `de_register_remote_system`).
    pub(crate) conventions: bool,
    /// The base loads actor sources (`load_actor_source` and the Source Authority calls).
    pub(crate) source_loading: bool,
    /// The largest encoded message the base's transport carries, if it has a limit: a larger
    /// one fails at the sender (`tell`/`ask`, or the actor's `ctx.send`) with an error naming
    /// the limit.
    pub(crate) max_message: Option<usize>,
}

/// The expectations for `base`. Whether file-descriptor watches work is read from the system's
/// `Thespian Watch Supported` capability instead.
pub(crate) fn traits(base: TestBase) -> Traits {
    match base.base {
        SystemBase::Simple => Traits {
            in_process: true,
            conventions: false,
            source_loading: false,
            max_message: None,
        },
        SystemBase::Queue => Traits {
            in_process: true,
            conventions: false,
            // Update when loadable sources land on this base.
            source_loading: false,
            max_message: None,
        },
        SystemBase::Tcp | SystemBase::Udp => Traits {
            // Never the test's process: with `spawn` each actor has its own, with `thread` the
            // actors run in the admin daemon's process.
            in_process: false,
            // Update when the conventions crate lands.
            conventions: false,
            // Update when loadable sources land on this base.
            source_loading: false,
            // The UDP transport's datagram limit.
            max_message: (base.base == SystemBase::Udp).then_some(UDP_MAX_MESSAGE),
        },
        SystemBase::Custom(name) => panic!("the conformance suite has no custom base {name}"),
    }
}

/// The UDP transport's limit on an encoded message (one datagram).
pub(crate) const UDP_MAX_MESSAGE: usize = 65_000;
