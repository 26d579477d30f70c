//! The admin of a multi-process system as a sans-IO machine.
//!
//! The rules of the system (global names checked first, the capability check, `Child Aborted`
//! poison for actors that never started, dead-letter routing, misfits after a capability
//! update, roots at shutdown, the listings of a status) are `thespian-core`'s, the same pieces
//! the in-process [`Registry`](thespian_core::Registry) is made of: [`GlobalNames`],
//! [`DeadLetters`] and the tree rules over an [`ActorTree`]. This machine adds what is about
//! processes and hosts: launches and the creates waiting for them, actors starting in their
//! hosts, host exits, the shutdown sequence with its kills, attached programs and log records.
//!
//! The driver owns the admin process: it feeds every message addressed to the admin into
//! [`Admin::handle`], reports the hosts (actor processes, or threads of the admin process in
//! thread mode) that exit with [`Admin::host_exited`], calls [`Admin::handle_timeout`] at
//! [`Admin::poll_timeout`], and carries out the [`Action`]s of [`Admin::poll_action`].
//!
//! Actor addresses say where an actor lives, so the driver allocates them: a create is two
//! phases. The machine emits [`Action::Launch`]; the driver starts the host and at once
//! reports the address and host (or why it failed) with [`Admin::launched`]. The host then
//! reports the actor's construction ([`ActorStarted`] or [`ActorFailedToStart`]) and, later,
//! its exit ([`ActorExited`]).
//!
//! Time comes in as `now: Instant`; the machine never reads the clock, opens sockets or
//! spawns threads.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use thespian_core::registry::{
    self, ActorTree, CreateRefusal, DeadLetterRoute, DeadLetters, GlobalNames, LiveActor,
    NameHolder, NamePlan,
};
use thespian_core::wire::peer_text;
use thespian_core::{
    ActorAddress, ActorExitRequest, ActorSpec, ActorSummary, Capabilities, ChildActorExited,
    ConventionStatus, Envelope, Message, Payload, Requirements, StatusRequest, SystemStatus,
};

use crate::protocol::{
    ActorExited, ActorFailedToStart, ActorStarted, CapabilitiesNow, CreateActor, CreateFailure,
    CreateReply, CreatedActor, DeadLetter, ExitNoted, HandleDeadLetters, Hello, LogLevelSet,
    LogRecord, MailboxDepth, MailboxDepthQuery, PoisonReturned, RemoteCreate, SetLogLevel,
    ShutdownComplete, ShutdownSystem, UpdateCapability, Welcome, WIRE_PREFIX,
};
use crate::status_round::{RoundStep, StatusRounds};

/// The most distinct unexpected message types the admin warns about once each; beyond it they
/// are logged at debug level only.
const MAX_WARNED_TYPES: usize = 256;

/// The most characters of a name a peer chose (a type name, a global name) that a log line
/// shows.
const SHOWN_NAME: usize = 80;

/// The most characters of a peer's longer text (a reason, a refusal) that a log line shows.
const SHOWN_TEXT: usize = 200;

/// The most characters of a refused log level that the refusal echoes back.
const SHOWN_LEVEL: usize = 40;

/// A new status round's id: random, so that only the nodes asked (and whoever sees the
/// questions) know it.
fn round_id() -> u64 {
    getrandom::u64().unwrap_or_else(|e| {
        // The OS's source failed: std's randomly keyed hasher still gives an unguessable id.
        log::warn!("no random round id from the OS ({e}); using a keyed hash");
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0u8)
    })
}

/// The driver's number for a process or thread that hosts actors.
pub type HostId = u64;

/// Names one launch until the driver reports it with [`Admin::launched`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaunchTicket(pub u64);

/// Where the driver must start a new actor.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Its own process (spawned).
    Process,
    /// A thread of the admin's process (Process Startup Method = `thread`).
    Thread,
}

/// What the driver needs to start an actor.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The new actor's parent (the admin for creates from outside the actors).
    pub parent: ActorAddress,
    /// The actor type, as the [`Resolver`] found it by name.
    pub spec: ActorSpec,
    /// The create request's requirements (given to the constructor).
    pub requirements: Requirements,
    /// The create request's global name.
    pub global_name: Option<String>,
    /// The system's capabilities now (given to the constructor).
    pub capabilities: Capabilities,
}

/// How long a shutdown waits, by default, for the actors to exit before it kills their hosts.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a shutdown waits for killed hosts to be reaped before it completes anyway.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// What the admin is told when it starts.
#[derive(Clone, Debug)]

pub struct AdminConfig {
    /// The admin's own address (id 0).
    pub admin: ActorAddress,
    /// The admin's process id (told to processes in [`Welcome`]).
    pub admin_pid: u32,
    /// The base's Thespian name, e.g. `multiprocTCPBase`.
    pub base_name: &'static str,
    /// The system's capabilities, complete (the driver added the common keys).
    pub capabilities: Capabilities,
    /// Process Startup Method is `thread`: actors run in threads of the admin's process.
    pub thread_mode: bool,
    /// How long a shutdown waits for the actors to exit before it kills their hosts
    /// ([`DEFAULT_SHUTDOWN_GRACE`] by default).
    pub shutdown_grace: Duration,
    /// The system may place actors on other systems of a convention: a create whose
    /// capability check fails here becomes [`Action::PlaceElsewhere`] instead of a
    /// `NoCompatibleSystem` answer.
    pub remote_placement: bool,
    /// The largest reply payload the transport carries, in bytes of its wire form: a status
    /// reply lists fewer actors rather than exceed it ([`fit_status`]).
    pub max_reply: usize,
}

/// Who gets the answer to a create: an address of this system, or another system's admin
/// (which numbered its request with a ticket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    /// Where the [`CreateReply`] goes.
    pub address: ActorAddress,
    /// The asking admin's ticket, for a create another system asked for.
    pub ticket: Option<u64>,
}

/// Finds an actor type by its registered name among the types the admin's own executable
/// knows; `Err` says why there is none (and how to fix it), for an `InvalidActorSpecification`.
pub type Resolver = Box<dyn Fn(&str) -> Result<ActorSpec, String> + Send>;

/// What the machine asks its driver to do.
#[derive(Debug)]
pub enum Action {
    /// Send `payload` from `from` to `to` (the driver routes: local or remote).
    Send {
        /// The sender the receiver sees.
        from: ActorAddress,
        /// The receiver.
        to: ActorAddress,
        /// The message.
        payload: Payload,
    },
    /// Start a host for a new actor, then call [`Admin::launched`] with `ticket` at once.
    Launch {
        /// Names this launch in [`Admin::launched`].
        ticket: LaunchTicket,
        /// A process or a thread.
        placement: Placement,
        /// What to start.
        launch: Launch,
    },
    /// The create cannot be placed here (its capability check failed): find a system of the
    /// convention that can, then answer with [`Admin::placed_elsewhere`].
    PlaceElsewhere {
        /// Who gets the answer.
        requester: Requester,
        /// The request as it came (its `remote` says which systems were already tried).
        create: CreateActor,
        /// What this system's capabilities did not meet.
        unmet: Vec<String>,
    },
    /// Kill this host (the shutdown grace expired).
    Kill {
        /// The host.
        host: HostId,
    },
    /// A log record forwarded by an actor process, for the admin's log sink.
    Log {
        /// Its level.
        level: log::Level,
        /// Its target.
        target: String,
        /// Its text (prefixed with the other system's name and the logging actor's address,
        /// if any).
        text: String,
        /// Another system of the convention sent it (it is not forwarded again).
        from_other_system: bool,
    },
    /// Change the admin process's log filter to `level`, then answer `requester` with a
    /// [`LogLevelSet`] (the driver owns the logger).
    SetLogLevel {
        /// Who asked (gets the answer).
        requester: ActorAddress,
        /// The new level, already parsed.
        level: log::LevelFilter,
    },
    /// Shutdown is complete (the `ShutdownComplete` replies are queued as sends before this):
    /// the driver delivers what it has and exits. Emitted once; nothing follows it.
    Exit,
}

/// A create whose launch the driver has not reported yet.
#[derive(Debug)]
struct PendingCreate {
    /// Who asked (gets the `CreateReply`).
    requester: Requester,
    wait_until_started: bool,
    parent: ActorAddress,
    /// The type (for capability re-checks).
    spec: ActorSpec,
    requirements: Requirements,
    global_name: Option<String>,
    /// Other requesters of the same global name: they get the address (not as a child).
    name_waiters: Vec<Requester>,
    /// Everyone was already answered (`ShuttingDown`): the actor must exit once launched.
    answered: bool,
}

/// Whether a recorded actor has been constructed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ActorState {
    Starting,
    Running,
}

/// What the admin remembers about a live (or starting) actor.
#[derive(Debug)]
struct ActorEntry {
    state: ActorState,
    parent: ActorAddress,
    /// The type (for capability re-checks).
    spec: ActorSpec,
    requirements: Requirements,
    global_name: Option<String>,
    host: HostId,
    /// The create asked for an answer once started (so failures are told as errors, not as
    /// `ChildActorExited`).
    wait_until_started: bool,
    /// The requester still waiting for the answer.
    waiter: Option<Requester>,
}

/// Who holds a global name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NameOwner {
    /// A create whose launch is not reported yet.
    Pending(LaunchTicket),
    /// A recorded actor.
    Actor(ActorAddress),
}

impl NameHolder for NameOwner {
    fn address(&self) -> Option<&ActorAddress> {
        match self {
            NameOwner::Pending(_) => None,
            NameOwner::Actor(address) => Some(address),
        }
    }
}

/// The recorded actors, as `thespian-core`'s tree rules see them.
struct Tree<'a>(&'a BTreeMap<ActorAddress, ActorEntry>);

impl ActorTree for Tree<'_> {
    fn live_actors(&self) -> impl Iterator<Item = LiveActor<'_>> {
        self.0.iter().map(|(address, entry)| LiveActor {
            address: address.clone(),
            parent: &entry.parent,
            spec: &entry.spec,
            requirements: &entry.requirements,
        })
    }

    fn parent_of(&self, address: &ActorAddress) -> Option<&ActorAddress> {
        self.0.get(address).map(|entry| &entry.parent)
    }

    fn live_count(&self) -> usize {
        self.0.len()
    }
}

/// Where the system is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepting creates.
    Running,
    /// Shutting down: roots were asked to exit; hosts are killed at `deadline`.
    Draining { deadline: Instant },
    /// Hosts were killed; shutdown completes anyway at `deadline`.
    Killing { deadline: Instant },
    /// Shutdown is complete and [`Action::Exit`] was emitted: nothing more happens.
    Done,
}

/// The admin of one multi-process actor system.
pub struct Admin {
    config: AdminConfig,
    resolver: Resolver,
    capabilities: Capabilities,
    phase: Phase,
    next_ticket: u64,
    pending: BTreeMap<LaunchTicket, PendingCreate>,
    actors: BTreeMap<ActorAddress, ActorEntry>,
    /// Every host reported by `launched` and not yet exited, with its actors.
    hosts: BTreeMap<HostId, BTreeSet<ActorAddress>>,
    names: GlobalNames<NameOwner>,
    /// The handler, and the actors that never started (dead letters to them return as
    /// `Child Aborted` poison).
    dead_letters: DeadLetters,
    /// `PoisonMessage`s the actor processes reported returning ([`PoisonReturned`]).
    poisoned: u64,
    /// The status round gathering the hosts' mailbox depths, if one runs.
    status_rounds: StatusRounds,
    shutdown_waiters: Vec<ActorAddress>,
    /// Every address that said `Hello`: told `ShutdownComplete` too, so attached programs
    /// learn of a shutdown someone else asked for.
    attached: Vec<ActorAddress>,
    /// Type names of unexpected messages already warned about, clipped as logged (at most
    /// [`MAX_WARNED_TYPES`] of them: a peer sending ever new names cannot grow it).
    warned: HashSet<String>,
    /// The convention's listing for status replies, kept current by the driver.
    convention: Option<ConventionStatus>,
    actions: VecDeque<Action>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("admin", &self.config.admin)
            .field("base_name", &self.config.base_name)
            .field("phase", &self.phase)
            .field("pending", &self.pending.len())
            .field("actors", &self.actors.len())
            .field("hosts", &self.hosts.len())
            .field("dead_letter_handler", &self.dead_letters.handler())
            .field("queued_actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

/// Takes `payload` out as an `M` if it is one; hands it back otherwise.
fn take<M: Message>(payload: Payload) -> Result<M, Payload> {
    if !payload.has_type::<M>() {
        return Err(payload);
    }
    payload.take::<M>().map_err(|e| {
        log::warn!("admin cannot decode {}: {}", M::wire_name(), e.error());
        e.into_inner()
    })
}

/// Keeps `status` within `limit` bytes of wire form by dropping entries from the end of its
/// longest listings: first the actor list, then the top-level actors, then the global names
/// (the counts, `live_actors` among them, stay whole, so a reader sees what was left out).
/// True when anything was dropped.
pub fn fit_status(status: &mut SystemStatus, limit: usize) -> bool {
    fn size(status: &SystemStatus) -> usize {
        postcard::to_allocvec(status).map_or(usize::MAX, |bytes| bytes.len())
    }
    fn shrink<T>(list: &mut Vec<T>, total: usize, limit: usize) {
        // Entries cost about total / len bytes each (an over-estimate: the fixed part is
        // counted in), so this cuts at least what is needed, and at least one.
        let len = list.len();
        let each = (total / len.max(1)).max(1);
        let cut = ((total - limit) / each + 1).min(len);
        list.truncate(len - cut);
    }
    let mut total = size(status);
    let trimmed = total > limit;
    while total > limit {
        if !status.actors.is_empty() {
            shrink(&mut status.actors, total, limit);
        } else if !status.child_actors.is_empty() {
            shrink(&mut status.child_actors, total, limit);
        } else if !status.global_actors.is_empty() {
            shrink(&mut status.global_actors, total, limit);
        } else {
            break;
        }
        total = size(status);
    }
    trimmed
}

/// `log::Level` from its number in a [`LogRecord`]; Info when out of range.
fn level_of(number: u8) -> log::Level {
    match number {
        1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        5 => log::Level::Trace,
        _ => log::Level::Info,
    }
}

impl Admin {
    /// An admin with no actors yet.
    pub fn new(config: AdminConfig, resolver: Resolver) -> Admin {
        Admin {
            capabilities: config.capabilities.clone(),
            config,
            resolver,
            phase: Phase::Running,
            next_ticket: 1,
            pending: BTreeMap::new(),
            actors: BTreeMap::new(),
            hosts: BTreeMap::new(),
            names: GlobalNames::new(),
            dead_letters: DeadLetters::new(),
            poisoned: 0,
            status_rounds: StatusRounds::default(),
            shutdown_waiters: Vec::new(),
            attached: Vec::new(),
            warned: HashSet::new(),
            convention: None,
            actions: VecDeque::new(),
        }
    }

    /// The admin's own address.
    pub fn admin_address(&self) -> &ActorAddress {
        &self.config.admin
    }

    /// The system's capabilities now.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// True once shutdown has begun (and after it completed).
    pub fn in_shutdown(&self) -> bool {
        self.phase != Phase::Running
    }

    /// Number of recorded actors (starting or running).
    pub fn live_actors(&self) -> usize {
        self.actors.len()
    }

    /// The system's status report.
    pub fn status(&self) -> SystemStatus {
        SystemStatus {
            admin_address: self.config.admin.clone(),
            capabilities: self.capabilities.clone(),
            in_shutdown: self.in_shutdown(),
            dead_letter_handler: self.dead_letters.handler().cloned(),
            global_actors: self.names.listing(),
            child_actors: registry::top_level(&Tree(&self.actors)),
            live_actors: self.actors.len(),
            convention: self.convention.clone(),
            base: self.config.base_name.to_owned(),
            actors: self
                .actors
                .iter()
                .map(|(address, entry)| ActorSummary {
                    address: address.clone(),
                    actor_type: entry.spec.type_name().to_owned(),
                    parent: entry.parent.clone(),
                    global_name: entry.global_name.clone(),
                    pid: Some(self.host_pid(entry.host)),
                })
                .collect(),
            processes: 1 + self
                .hosts
                .keys()
                .filter(|host| self.host_pid(**host) != self.config.admin_pid)
                .count(),
            dead_letters: self.dead_letters.count(),
            pending_messages: None,
            pending_unanswered: 0,
            poison_messages: self.poisoned,
        }
    }

    /// The process of `host`: a process host's id is its process id; thread hosts (ids past
    /// any process id) run in the admin's process.
    fn host_pid(&self, host: HostId) -> u32 {
        u32::try_from(host).unwrap_or(self.config.admin_pid)
    }

    /// Sets the convention listing that status replies carry (the driver runs the convention).
    pub fn set_convention_status(&mut self, convention: Option<ConventionStatus>) {
        self.convention = convention;
    }

    /// Handles one message addressed to the admin (its sender is the envelope's).
    pub fn handle(&mut self, now: Instant, envelope: Envelope) {
        if self.phase == Phase::Done {
            log::debug!(
                "admin has exited; dropping \"{}\"",
                peer_text(&envelope.type_name(), SHOWN_NAME)
            );
            return;
        }
        let (sender, payload) = envelope.into_parts();
        self.dispatch(now, sender, payload);
        self.check_shutdown_complete();
    }

    /// Reports the launch named by `ticket`: the new actor's address and host, or why no host
    /// could be started.
    pub fn launched(
        &mut self,
        _now: Instant,
        ticket: LaunchTicket,
        result: Result<(ActorAddress, HostId), String>,
    ) {
        if self.phase == Phase::Done {
            log::debug!("admin has exited; ignoring launch {ticket:?}");
            return;
        }
        let Some(pending) = self.pending.remove(&ticket) else {
            log::warn!("admin: launch report for unknown {ticket:?} ignored");
            return;
        };
        let result = match result {
            Ok((address, host)) => {
                if address.is_admin()
                    || self.actors.contains_key(&address)
                    || self.dead_letters.is_aborted(&address)
                {
                    log::error!("admin: launch {ticket:?} reported a used address {address}");
                    // The host exists all the same: shutdown waits for it.
                    self.hosts.entry(host).or_default();
                    Err(format!("the driver reported the used address {address}"))
                } else {
                    Ok((address, host))
                }
            }
            Err(reason) => Err(reason),
        };
        match result {
            Ok((address, host)) => self.record_launch(ticket, pending, address, host),
            Err(reason) => {
                if let Some(name) = &pending.global_name {
                    self.names.release(name, &NameOwner::Pending(ticket));
                }
                if !pending.answered {
                    let failure = CreateFailure::CreationFailed {
                        actor_type: pending.spec.type_name().to_owned(),
                        reason,
                    };
                    for to in std::iter::once(pending.requester).chain(pending.name_waiters) {
                        self.reply_create(to, Err(failure.clone()));
                    }
                }
            }
        }
        self.check_shutdown_complete();
    }

    /// Reports that `host` is gone (exited, crashed or killed); its actors are gone with it.
    pub fn host_exited(&mut self, now: Instant, host: HostId, description: &str) {
        if self.phase == Phase::Done {
            log::debug!("admin has exited; ignoring the exit of host {host}");
            return;
        }
        let Some(addresses) = self.hosts.remove(&host) else {
            log::debug!("admin: unknown host {host} exited ({description})");
            return;
        };
        for address in addresses {
            let Some(state) = self.actors.get(&address).map(|e| e.state) else {
                continue;
            };
            match state {
                ActorState::Starting => self.fail_start(
                    now,
                    &address,
                    format!("its process exited before it started: {description}"),
                ),
                ActorState::Running => {
                    log::warn!("actor {address} died with its host: {description}");
                    if let Some(entry) = self.forget(now, &address) {
                        if !entry.parent.is_admin() {
                            self.send(
                                address.clone(),
                                entry.parent,
                                Payload::new(ChildActorExited::new(address)),
                            );
                        }
                    }
                }
            }
        }
        self.check_shutdown_complete();
    }

    /// Runs the shutdown deadlines and the status round's deadline due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let step = self.status_rounds.timeout(now);
        self.carry_out_round(step);
        match self.phase {
            Phase::Draining { deadline } if now >= deadline => {
                let hosts: Vec<HostId> = self.hosts.keys().copied().collect();
                log::warn!(
                    "shutdown grace expired with {} actors left: killing {} hosts",
                    self.actors.len(),
                    hosts.len()
                );
                for host in hosts {
                    self.actions.push_back(Action::Kill { host });
                }
                self.phase = Phase::Killing {
                    deadline: now + KILL_WAIT,
                };
            }
            Phase::Killing { deadline } if now >= deadline => {
                log::warn!(
                    "shutdown completes without {} actors, {} hosts and {} launches",
                    self.actors.len(),
                    self.hosts.len(),
                    self.pending.len()
                );
                self.actors.clear();
                self.hosts.clear();
                self.pending.clear();
                self.names.clear();
                self.dead_letters.unregister();
            }
            _ => {}
        }
        self.check_shutdown_complete();
    }

    /// When [`Admin::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Draining { deadline } | Phase::Killing { deadline } => Some(deadline),
            Phase::Running | Phase::Done => None,
        };
        match (phase, self.status_rounds.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    // ---- messages ----

    fn dispatch(&mut self, now: Instant, sender: ActorAddress, payload: Payload) {
        macro_rules! on {
            ($payload:ident, $ty:ty, |$m:ident| $body:expr) => {
                let $payload = match take::<$ty>($payload) {
                    Ok($m) => {
                        $body;
                        return;
                    }
                    Err(payload) => payload,
                };
            };
        }
        on!(payload, Hello, |_m| self.on_hello(sender));
        on!(payload, StatusRequest, |_m| {
            let step =
                self.status_rounds
                    .request(now, sender, self.actors.keys().cloned(), round_id);
            self.carry_out_round(step)
        });
        on!(payload, MailboxDepth, |m| {
            let step = self.status_rounds.answer(now, &sender, m.round, m.depth);
            self.carry_out_round(step)
        });
        on!(payload, CreateActor, |m| self.on_create(sender, m));
        on!(payload, RemoteCreate, |m| self.on_create(sender, m.create));
        on!(payload, ActorStarted, |m| self.on_started(m.address));
        on!(payload, ActorFailedToStart, |m| self.on_failed(now, m));
        on!(payload, ActorExited, |m| {
            self.on_exited(now, m.address);
            self.reply(sender.clone(), Payload::new(ExitNoted));
        });
        on!(payload, DeadLetter, |m| self.on_dead_letter(m));
        on!(payload, PoisonReturned, |_m| self.poisoned =
            self.poisoned.saturating_add(1));
        on!(payload, HandleDeadLetters, |m| self
            .on_handle_dead_letters(m.actor, m.enable));
        on!(payload, UpdateCapability, |m| self
            .on_update_capability(sender, m));
        on!(payload, ShutdownSystem, |_m| self.on_shutdown(now, sender));
        on!(payload, LogRecord, |m| self.on_log(m));
        on!(payload, SetLogLevel, |m| self
            .on_set_log_level(sender, &m.level));
        on!(payload, ActorExitRequest, |_m| log::debug!(
            "admin ignores ActorExitRequest from {sender}"
        ));
        on!(payload, ChildActorExited, |m| log::debug!(
            "admin ignores ChildActorExited({}) from {sender}",
            m.child_address
        ));
        // Kept clipped too: a peer's names would otherwise fill the set with whole messages.
        let shown = peer_text(&payload.type_name(), SHOWN_NAME);
        if self.warned.len() < MAX_WARNED_TYPES && self.warned.insert(shown.clone()) {
            log::warn!("admin discards \"{shown}\" from {sender}");
        } else {
            log::debug!("admin discards \"{shown}\" from {sender}");
        }
    }

    fn on_set_log_level(&mut self, sender: ActorAddress, level: &str) {
        match level.trim().parse::<log::LevelFilter>() {
            Ok(level) => self.actions.push_back(Action::SetLogLevel {
                requester: sender,
                level,
            }),
            Err(_) => {
                let refusal = LogLevelSet {
                    result: Err(format!(
                        "\"{}\" is not a log level (off, error, warn, info, debug, trace)",
                        peer_text(level, SHOWN_LEVEL)
                    )),
                };
                self.reply(sender, Payload::new(refusal));
            }
        }
    }

    fn on_hello(&mut self, sender: ActorAddress) {
        let welcome = Welcome {
            admin: self.config.admin.clone(),
            admin_pid: self.config.admin_pid,
            capabilities: self.capabilities.clone(),
            in_shutdown: self.in_shutdown(),
        };
        if !self.attached.contains(&sender) {
            self.attached.push(sender.clone());
        }
        self.reply(sender, Payload::new(welcome));
    }

    fn on_create(&mut self, sender: ActorAddress, create: CreateActor) {
        let requester = Requester {
            address: sender,
            ticket: create.remote.as_ref().map(|origin| origin.ticket),
        };
        self.create_for(requester, create);
    }

    fn create_for(&mut self, sender: Requester, create: CreateActor) {
        let in_shutdown = self.in_shutdown();
        let ticket = LaunchTicket(self.next_ticket);
        let plan = self.names.plan_create(
            in_shutdown,
            create.global_name.as_deref(),
            (&self.capabilities, &create.requirements),
            || (self.resolver)(&create.type_name),
            || {
                self.next_ticket += 1;
                NameOwner::Pending(ticket)
            },
        );
        let spec = match plan {
            Ok(NamePlan::New { spec, .. }) => spec,
            Ok(NamePlan::Existing(NameOwner::Actor(address))) => {
                self.reply_create(
                    sender,
                    Ok(CreatedActor {
                        address,
                        is_child: false,
                    }),
                );
                return;
            }
            Ok(NamePlan::Existing(owner @ NameOwner::Pending(pending))) => {
                if let Some(pending) = self.pending.get_mut(&pending) {
                    pending.name_waiters.push(sender);
                    return;
                }
                let name = create.global_name.as_deref().unwrap_or_default();
                log::error!(
                    "admin: global name \"{}\" held by a lost launch; freed",
                    peer_text(name, SHOWN_NAME)
                );
                self.names.release(name, &owner);
                return self.create_for(sender, create);
            }
            Err(CreateRefusal::ShuttingDown) => {
                self.reply_create(sender, Err(CreateFailure::ShuttingDown));
                return;
            }
            Err(CreateRefusal::Type(reason)) => {
                log::info!(
                    "admin: cannot create \"{}\": {}",
                    peer_text(&create.type_name, SHOWN_NAME),
                    peer_text(&reason, SHOWN_TEXT)
                );
                self.reply_create(
                    sender,
                    Err(CreateFailure::InvalidActorSpecification {
                        spec: create.type_name,
                        reason,
                    }),
                );
                return;
            }
            Err(CreateRefusal::Unfit(unmet)) if self.config.remote_placement => {
                self.actions.push_back(Action::PlaceElsewhere {
                    requester: sender,
                    create,
                    unmet,
                });
                return;
            }
            Err(CreateRefusal::Unfit(unmet)) => {
                self.reply_create(
                    sender,
                    Err(CreateFailure::NoCompatibleSystem {
                        actor_type: create.type_name,
                        unmet,
                    }),
                );
                return;
            }
        };
        let placement = if self.config.thread_mode {
            Placement::Thread
        } else {
            Placement::Process
        };
        let launch = Launch {
            parent: create.parent.clone(),
            spec,
            requirements: create.requirements.clone(),
            global_name: create.global_name.clone(),
            capabilities: self.capabilities.clone(),
        };
        self.pending.insert(
            ticket,
            PendingCreate {
                requester: sender,
                wait_until_started: create.wait_until_started,
                parent: create.parent,
                spec,
                requirements: create.requirements,
                global_name: create.global_name,
                name_waiters: Vec::new(),
                answered: false,
            },
        );
        self.actions.push_back(Action::Launch {
            ticket,
            placement,
            launch,
        });
    }

    fn record_launch(
        &mut self,
        ticket: LaunchTicket,
        pending: PendingCreate,
        address: ActorAddress,
        host: HostId,
    ) {
        self.hosts.entry(host).or_default().insert(address.clone());
        if let Some(name) = &pending.global_name {
            let owner = NameOwner::Actor(address.clone());
            self.names.rebind(name, &NameOwner::Pending(ticket), owner);
        }
        let mut waiter = None;
        if pending.answered {
            // Its requester heard `ShuttingDown` and nobody knows it: it must go.
            self.send(
                self.config.admin.clone(),
                address.clone(),
                Payload::new(ActorExitRequest::new()),
            );
        } else {
            if pending.wait_until_started {
                waiter = Some(pending.requester);
            } else {
                self.reply_create(
                    pending.requester,
                    Ok(CreatedActor {
                        address: address.clone(),
                        is_child: true,
                    }),
                );
            }
            for to in pending.name_waiters {
                self.reply_create(
                    to,
                    Ok(CreatedActor {
                        address: address.clone(),
                        is_child: false,
                    }),
                );
            }
        }
        self.actors.insert(
            address,
            ActorEntry {
                state: ActorState::Starting,
                parent: pending.parent,
                spec: pending.spec,
                requirements: pending.requirements,
                global_name: pending.global_name,
                host,
                wait_until_started: pending.wait_until_started,
                waiter,
            },
        );
    }

    fn on_started(&mut self, address: ActorAddress) {
        let Some(entry) = self.actors.get_mut(&address) else {
            log::debug!("admin: ActorStarted for unknown {address} ignored");
            return;
        };
        if entry.state == ActorState::Running {
            log::debug!("admin: duplicate ActorStarted for {address} ignored");
            return;
        }
        entry.state = ActorState::Running;
        if let Some(waiter) = entry.waiter.take() {
            self.reply_create(
                waiter,
                Ok(CreatedActor {
                    address,
                    is_child: true,
                }),
            );
        }
    }

    fn on_failed(&mut self, now: Instant, failed: ActorFailedToStart) {
        match self.actors.get(&failed.address).map(|e| e.state) {
            Some(ActorState::Starting) => self.fail_start(now, &failed.address, failed.reason),
            Some(ActorState::Running) => log::warn!(
                "admin: ActorFailedToStart for running {} ignored: {}",
                failed.address,
                peer_text(&failed.reason, SHOWN_TEXT)
            ),
            None => log::debug!(
                "admin: ActorFailedToStart for unknown {} ignored",
                failed.address
            ),
        }
    }

    /// The starting actor at `address` will never run: forget it, route later messages to it
    /// back as `Child Aborted` poison, and tell whoever is waiting (or its parent).
    fn fail_start(&mut self, now: Instant, address: &ActorAddress, reason: String) {
        let Some(entry) = self.forget(now, address) else {
            return;
        };
        log::info!(
            "actor {address} ({}) failed to start: {}",
            entry.spec.type_name(),
            peer_text(&reason, SHOWN_TEXT)
        );
        self.dead_letters.never_started(address.clone());
        if let Some(waiter) = entry.waiter {
            self.reply_create(
                waiter,
                Err(CreateFailure::CreationFailed {
                    actor_type: entry.spec.type_name().to_owned(),
                    reason,
                }),
            );
        } else if !entry.wait_until_started && !entry.parent.is_admin() {
            self.send(
                address.clone(),
                entry.parent,
                Payload::new(ChildActorExited::new(address.clone())),
            );
        }
    }

    fn on_exited(&mut self, now: Instant, address: ActorAddress) {
        let Some(entry) = self.forget(now, &address) else {
            log::debug!("admin: ActorExited for unknown {address} ignored");
            return;
        };
        // It was constructed (it ran its exit): a requester still waiting learns its address.
        if let Some(waiter) = entry.waiter {
            self.reply_create(
                waiter,
                Ok(CreatedActor {
                    address,
                    is_child: true,
                }),
            );
        }
    }

    /// Removes a recorded actor: frees its global name, unregisters it as dead-letter handler
    /// and takes it off its host (the host itself stays until it exits).
    fn forget(&mut self, now: Instant, address: &ActorAddress) -> Option<ActorEntry> {
        let entry = self.actors.remove(address)?;
        let step = self.status_rounds.gone(now, address);
        self.carry_out_round(step);
        if let Some(on_host) = self.hosts.get_mut(&entry.host) {
            on_host.remove(address);
        }
        if let Some(name) = &entry.global_name {
            self.names.release(name, &NameOwner::Actor(address.clone()));
        }
        self.dead_letters.exited(address);
        Some(entry)
    }

    fn on_dead_letter(&mut self, dead: DeadLetter) {
        let DeadLetter {
            target,
            sender,
            payload,
        } = dead;
        // The admin protocol's own messages are about processes, never anyone's dead letters.
        if payload.type_name().starts_with(WIRE_PREFIX) {
            log::debug!(
                "discarding {} to dead {target}",
                peer_text(&payload.type_name(), SHOWN_NAME)
            );
            return;
        }
        match self.dead_letters.route(&target, sender, payload) {
            DeadLetterRoute::Handler { handler, payload } => self.send(target, handler, payload),
            DeadLetterRoute::ChildAborted { sender, .. } if sender == self.config.admin => {
                log::debug!("admin's own message to aborted {target} dropped");
            }
            DeadLetterRoute::ChildAborted { sender, payload } => {
                self.poisoned = self.poisoned.saturating_add(1);
                self.send(target, sender, payload)
            }
            DeadLetterRoute::Drop => {}
        }
    }

    fn on_handle_dead_letters(&mut self, actor: ActorAddress, enable: bool) {
        self.dead_letters.handle(&actor, enable);
    }

    fn on_update_capability(&mut self, sender: ActorAddress, update: UpdateCapability) {
        // Checked here too: a peer may send the update without going through a checked API.
        let refusal =
            thespian_core::capabilities::check_change(&update.name, update.value.as_ref());
        if let Err(refused) = refusal {
            log::warn!(
                "admin: capability update from {sender} refused: {}",
                peer_text(&refused.to_string(), SHOWN_TEXT)
            );
            let now = CapabilitiesNow {
                capabilities: self.capabilities.clone(),
            };
            self.reply(sender, Payload::new(now));
            return;
        }
        let tree = Tree(&self.actors);
        let changed =
            registry::update_capability(&mut self.capabilities, &update.name, update.value, &tree);
        if let Some(topmost) = changed {
            for address in topmost {
                log::info!("actor {address} no longer fits the capabilities: asked to exit");
                self.send(
                    self.config.admin.clone(),
                    address,
                    Payload::new(ActorExitRequest::new()),
                );
            }
            let live: Vec<ActorAddress> = self.actors.keys().cloned().collect();
            for address in live {
                let now = CapabilitiesNow {
                    capabilities: self.capabilities.clone(),
                };
                self.send(self.config.admin.clone(), address, Payload::new(now));
            }
        }
        let now = CapabilitiesNow {
            capabilities: self.capabilities.clone(),
        };
        self.reply(sender, Payload::new(now));
    }

    fn on_shutdown(&mut self, now: Instant, sender: ActorAddress) {
        if !self.shutdown_waiters.contains(&sender) {
            self.shutdown_waiters.push(sender);
        }
        if self.in_shutdown() {
            return;
        }
        log::info!("system shutdown begins with {} actors", self.actors.len());
        self.phase = Phase::Draining {
            deadline: now + self.config.shutdown_grace,
        };
        // Creates still waiting for an answer are refused.
        let mut refused = Vec::new();
        for pending in self.pending.values_mut() {
            if !pending.answered {
                pending.answered = true;
                refused.push(pending.requester.clone());
                refused.append(&mut pending.name_waiters);
            }
        }
        for entry in self.actors.values_mut() {
            if let Some(waiter) = entry.waiter.take() {
                refused.push(waiter);
            }
        }
        for to in refused {
            self.reply_create(to, Err(CreateFailure::ShuttingDown));
        }
        for root in registry::roots(&Tree(&self.actors)) {
            self.send(
                self.config.admin.clone(),
                root,
                Payload::new(ActorExitRequest::new()),
            );
        }
    }

    fn on_log(&mut self, record: LogRecord) {
        let text = match &record.actor {
            Some(actor) => format!("{actor}: {}", record.text),
            None => record.text,
        };
        let text = match &record.system {
            Some(system) => format!("[{system}] {text}"),
            None => text,
        };
        self.actions.push_back(Action::Log {
            level: level_of(record.level),
            target: record.target,
            text,
            from_other_system: record.system.is_some(),
        });
    }

    // ---- output ----

    /// Completes the shutdown once no actor, host or launch remains.
    fn check_shutdown_complete(&mut self) {
        if !matches!(self.phase, Phase::Draining { .. } | Phase::Killing { .. }) {
            return;
        }
        if !(self.actors.is_empty() && self.hosts.is_empty() && self.pending.is_empty()) {
            return;
        }
        log::info!("system shutdown complete");
        let mut told = std::mem::take(&mut self.shutdown_waiters);
        for attached in std::mem::take(&mut self.attached) {
            if !told.contains(&attached) {
                told.push(attached);
            }
        }
        for waiter in told {
            self.send(
                self.config.admin.clone(),
                waiter,
                Payload::new(ShutdownComplete),
            );
        }
        self.actions.push_back(Action::Exit);
        self.phase = Phase::Done;
    }

    fn send(&mut self, from: ActorAddress, to: ActorAddress, payload: Payload) {
        self.actions.push_back(Action::Send { from, to, payload });
    }

    /// Asks the actors' nodes of a status round, or answers its requesters.
    fn carry_out_round(&mut self, step: RoundStep) {
        match step {
            RoundStep::Wait => {}
            RoundStep::Ask { round, actors } => {
                for actor in actors {
                    self.reply(actor, Payload::new(MailboxDepthQuery { round }));
                }
            }
            RoundStep::Answer {
                requesters,
                pending,
            } => {
                let mut status = self.status();
                status.pending_messages = pending.map(|count| count.sum);
                status.pending_unanswered = pending.map_or(0, |count| count.unanswered);
                if fit_status(&mut status, self.config.max_reply) {
                    log::debug!(
                        "status reply lists {} of {} actors: the transport carries {} bytes",
                        status.actors.len(),
                        status.live_actors,
                        self.config.max_reply
                    );
                }
                for requester in requesters {
                    self.reply(requester, Payload::new(status.clone()));
                }
            }
        }
    }

    /// Answers a create that [`Action::PlaceElsewhere`] handed to the driver: the actor another
    /// system created, or why no system could.
    pub fn placed_elsewhere(
        &mut self,
        requester: Requester,
        result: Result<CreatedActor, CreateFailure>,
    ) {
        if self.phase == Phase::Done {
            log::debug!("admin has exited; a remote create's answer is dropped");
            return;
        }
        self.reply_create(requester, result);
    }

    fn reply(&mut self, to: ActorAddress, payload: Payload) {
        self.send(self.config.admin.clone(), to, payload);
    }

    fn reply_create(&mut self, to: Requester, result: Result<CreatedActor, CreateFailure>) {
        let reply = CreateReply {
            result,
            ticket: to.ticket,
        };
        self.reply(to.address, Payload::new(reply));
    }
}

#[cfg(test)]
mod tests;
