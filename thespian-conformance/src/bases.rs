//! The bases the suite runs on — the built-in ones with their startup method, or a custom base
//! from another crate — and what the suite expects of each.

use std::fmt;

use thespian::{ActorSystemBuilder, SystemBase};

/// How a base starts its actors: Thespian's `Process Startup Method` capability of the
/// multi-process bases.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Startup {
    /// The base runs every actor in the test's process (simple, queue), or starts them its own
    /// way (a custom base): no startup method is set.
    InProcess,
    /// `Process Startup Method` = `spawn`: the admin and each actor in a process of its own.
    Spawn,
    /// `Process Startup Method` = `thread`: the admin daemon in its own process, its actors on
    /// threads of that process (not of the test's).
    Thread,
}

impl Startup {
    /// The `Process Startup Method` capability value, if the base takes one.
    pub fn method(self) -> Option<&'static str> {
        match self {
            Startup::InProcess => None,
            Startup::Spawn => Some("spawn"),
            Startup::Thread => Some("thread"),
        }
    }
}

/// What a base offers, where the suite's expectations depend on it (SPEC §3).
///
/// This is how a base states what it does not do: a scenario whose subject a base lacks checks
/// the documented refusal instead (e.g. `not_supported` expects "not supported" errors for
/// conventions when `conventions` is false), so every scenario runs on every base and none is
/// skipped silently. Whether file-descriptor watches work is read from the system's
/// `Thespian Watch Supported` capability instead.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Traits {
    /// Actors run in the test's own process (a static in the test binary is shared with them),
    /// and messages arrive in the order they were caused.
    pub in_process: bool,
    /// Every message a call causes is delivered before the call returns (the Simple base runs
    /// its actors inside `tell`/`ask`/`listen`).
    pub synchronous: bool,
    /// Actors run in other processes reached over a transport: actor types must be registered
    /// (`register_actors!`), another system's address is a real destination, and the builder's
    /// `queue_limit` is not how sends are bounded (the queue-bound scenario checks nothing).
    pub multi_process: bool,
    /// The base takes part in conventions (`notify_on_system_registration_changes`,
    /// `pre_register_remote_system`, `de_register_remote_system`).
    pub conventions: bool,
    /// The base loads actor sources (`load_actor_source` and the Source Authority calls).
    pub source_loading: bool,
    /// The largest encoded message the base's transport carries, if it has a limit: a larger
    /// one fails at the sender (`tell`/`ask`, or the actor's `ctx.send`) with an error naming
    /// the limit.
    pub max_message: Option<usize>,
}

impl Traits {
    /// What the Simple base offers: a custom base wrapping it states these.
    pub const SIMPLE: Traits = Traits {
        in_process: true,
        synchronous: true,
        multi_process: false,
        conventions: false,
        source_loading: false,
        max_message: None,
    };

    /// The expectations for a built-in base.
    const fn of(base: SystemBase) -> Traits {
        match base {
            SystemBase::Simple => Traits::SIMPLE,
            SystemBase::Queue => Traits {
                synchronous: false,
                // Update when loadable sources land on this base.
                source_loading: false,
                ..Traits::SIMPLE
            },
            SystemBase::Tcp | SystemBase::Udp => Traits {
                // Never the test's process: with `spawn` each actor has its own, with `thread`
                // the actors run in the admin daemon's process.
                in_process: false,
                synchronous: false,
                multi_process: true,
                conventions: true,
                // Update when loadable sources land on this base.
                source_loading: false,
                // The UDP transport's datagram limit.
                max_message: if matches!(base, SystemBase::Udp) {
                    Some(UDP_MAX_MESSAGE)
                } else {
                    None
                },
            },
            // A custom base states its traits in `TestBase::custom`.
            SystemBase::Custom(_) => Traits::SIMPLE,
        }
    }
}

/// A base the suite runs on: a built-in system base with, for the multi-process bases, how
/// processes are started; or a custom base, given as the builder that runs a system on it.
#[derive(Copy, Clone, Debug)]
pub struct TestBase {
    /// The system base (`SystemBase::Custom(name)` for a custom base).
    base: SystemBase,
    /// How it starts its actors.
    startup: Startup,
    /// For a custom base: a builder configured to run a system on it.
    custom: Option<fn() -> ActorSystemBuilder>,
    /// What the suite expects of it.
    traits: Traits,
}

impl TestBase {
    /// `simpleSystemBase`.
    pub const SIMPLE: TestBase = TestBase::built_in(SystemBase::Simple, Startup::InProcess);
    /// `multiprocQueueBase`.
    pub const QUEUE: TestBase = TestBase::built_in(SystemBase::Queue, Startup::InProcess);
    /// `multiprocTCPBase`, a process per actor.
    pub const TCP_SPAWN: TestBase = TestBase::built_in(SystemBase::Tcp, Startup::Spawn);
    /// `multiprocTCPBase`, actors on threads of the admin daemon's process.
    pub const TCP_THREAD: TestBase = TestBase::built_in(SystemBase::Tcp, Startup::Thread);
    /// `multiprocUDPBase`, a process per actor.
    pub const UDP_SPAWN: TestBase = TestBase::built_in(SystemBase::Udp, Startup::Spawn);
    /// `multiprocUDPBase`, actors on threads of the admin daemon's process.
    pub const UDP_THREAD: TestBase = TestBase::built_in(SystemBase::Udp, Startup::Thread);

    const fn built_in(base: SystemBase, startup: Startup) -> TestBase {
        TestBase {
            base,
            startup,
            custom: None,
            traits: Traits::of(base),
        }
    }

    /// A base from another crate: `builder` returns an [`ActorSystemBuilder`] already given the
    /// base (`ActorSystemBuilder::driver`) and whatever settings it needs to run inside a test
    /// (the suite adds `transient_unique(true)`, `LogConfig::Untouched` and each scenario's own
    /// settings); `name` is the name the base reports to actors and in its errors (its
    /// `Thespian ActorSystem Name` capability, which the suite checks: a base wrapping a
    /// built-in one that keeps that base's capabilities reports that base's name); `traits` are
    /// what the suite may expect of it.
    pub const fn custom(
        name: &'static str,
        builder: fn() -> ActorSystemBuilder,
        traits: Traits,
    ) -> TestBase {
        TestBase {
            base: SystemBase::Custom(name),
            startup: Startup::InProcess,
            custom: Some(builder),
            traits,
        }
    }

    /// The system base.
    pub fn base(self) -> SystemBase {
        self.base
    }

    /// How the base starts its actors.
    pub fn startup(self) -> Startup {
        self.startup
    }

    /// What the suite expects of the base.
    pub fn traits(self) -> Traits {
        self.traits
    }

    /// Thespian's name for the base (`multiprocTCPBase`, …), without the startup method.
    pub fn thespian_name(self) -> &'static str {
        self.base.thespian_name()
    }

    /// The base runs its actors in other processes and talks to them over a transport.
    pub fn is_multi_process(self) -> bool {
        self.traits.multi_process
    }

    /// The base comes from another crate ([`TestBase::custom`]).
    pub fn is_custom(self) -> bool {
        self.custom.is_some()
    }

    /// The builder a custom base was given with, called afresh.
    pub(crate) fn custom_builder(self) -> Option<ActorSystemBuilder> {
        self.custom.map(|builder| builder())
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

/// The expectations for `base`.
pub(crate) fn traits(base: TestBase) -> Traits {
    base.traits
}

/// The UDP transport's limit on an encoded message (one datagram).
pub const UDP_MAX_MESSAGE: usize = 65_000;
