//! A deterministic simulation of a whole convention: many [`Convention`] machines over a
//! simulated network with a virtual clock.
//!
//! Why: the convention's promises (every member is known to the leader soon after it joins,
//! every system agrees on the next leader soon after one dies, notifications come exactly once,
//! nothing is placed on a member known to be gone) are about many systems, lossy networks and
//! crashes over long stretches of time. Real sockets and clocks make such runs slow and
//! unrepeatable; the machines are sans-IO, so here they run against a seeded network in
//! virtual time, thousands of registration periods per second, and a failing seed replays the
//! same run exactly.
//!
//! The network loses, duplicates and delays messages (seeded, with jitter, so they are
//! reordered), partitions the systems in two, crashes systems silently (their messages
//! vanish; nobody gets a transport error) and restarts them (the same socket, a new
//! incarnation). Each system has two watchers (one from the start, one enabled later). While
//! it runs, the simulation checks the notifications of every watcher (no "added" twice without
//! a "removed" between, no "removed" of what was not added, and the watcher's picture equals
//! the machine's members at every sample) and the placements (never on a member the placer was
//! told it lost), and it measures when the convention converged: every live system agrees on
//! the first live candidate as its leader, and that leader knows every live system's current
//! incarnation. Randomness comes from a [`SplitMix64`] seeded by the run's seed; time from a
//! base `Instant` plus virtual offsets.
//!
//! [`run`] takes a seed and a [`Scenario`] and returns a [`Report`]; the scenario builders
//! ([`Scenario::new`], [`Scenario::chaos`], [`Scenario::leader_failover`]) are the runs the
//! crate's properties use. [`Report::describe`] includes the seed and the last events of the
//! run, to reproduce a failure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use thespian_core::{ActorAddress, Capabilities, SystemId};

use crate::hysteresis::HysteresisConfig;
use crate::machine::{Action, Convention, ConventionConfig, PlacementDecision, PlacementRequest};
use crate::protocol::{AdminRef, ConventionMessage};
use crate::timing::Timing;

/// A tiny seeded pseudo-random generator (SplitMix64): fast, reproducible, not cryptographic.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// A duration in `[low, high]`.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        low + (high - low).mul_f64(self.next_f64())
    }
}

/// How the simulated network treats each message.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// The shortest delivery delay.
    pub min_delay: Duration,
    /// The longest delivery delay (delays are uniform in between, so messages are reordered).
    pub max_delay: Duration,
}

impl Default for NetworkConfig {
    /// No loss, 1% duplicates, 1 to 20 ms.
    fn default() -> NetworkConfig {
        NetworkConfig {
            loss: 0.0,
            duplicate: 0.01,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
        }
    }
}

/// Something that happens to the systems at a virtual time (from the start of the run).
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The system dies silently: messages to it vanish, nobody gets a transport error.
    Crash {
        /// When.
        at: Duration,
        /// Which system (its index).
        system: usize,
    },
    /// The system starts again: the same socket, a new incarnation (started if it was down).
    Restart {
        /// When.
        at: Duration,
        /// Which system.
        system: usize,
    },
    /// The system shuts down gracefully (de-registers) and stays down.
    Leave {
        /// When.
        at: Duration,
        /// Which system.
        system: usize,
    },
    /// Messages between `side` and the other systems are dropped until a [`Fault::Heal`].
    Partition {
        /// When.
        at: Duration,
        /// The systems on one side.
        side: Vec<usize>,
    },
    /// The partition ends.
    Heal {
        /// When.
        at: Duration,
    },
}

impl Fault {
    /// When it happens.
    pub fn at(&self) -> Duration {
        match self {
            Fault::Crash { at, .. }
            | Fault::Restart { at, .. }
            | Fault::Leave { at, .. }
            | Fault::Partition { at, .. }
            | Fault::Heal { at } => *at,
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// How many systems (indices `0..systems`).
    pub systems: usize,
    /// How many of them, the first ones, are leader candidates (in index order).
    pub leaders: usize,
    /// Every system's periods.
    pub timing: Timing,
    /// The network.
    pub network: NetworkConfig,
    /// Systems start at seeded times within this span from the start.
    pub start_spread: Duration,
    /// What happens to them.
    pub faults: Vec<Fault>,
    /// How long the run lasts at most (virtual time).
    pub duration: Duration,
    /// How often convergence, notifications and placements are checked.
    pub sample_every: Duration,
    /// How many of the last events the report keeps for a failure's trace.
    pub trace_capacity: usize,
    /// End the run at the first converged sample after the last fault (and the last start).
    pub stop_when_converged: bool,
}

impl Scenario {
    /// The simulation's periods: a registration period of one virtual second, the other
    /// periods in Thespian's proportions, a hysteresis scaled down to match.
    pub fn sim_timing() -> Timing {
        let mut timing = Timing::with_periods(Duration::from_secs(1), Duration::from_millis(457));
        timing.hysteresis = HysteresisConfig {
            min: Duration::from_millis(5),
            max: Duration::from_millis(100),
            rate: 1.2,
        };
        timing
    }

    /// `systems` systems, the first `leaders` of them candidates, starting within one restart
    /// period over a calm network, no faults; the run ends when they converged (or after ten
    /// registration periods).
    pub fn new(systems: usize, leaders: usize) -> Scenario {
        let timing = Scenario::sim_timing();
        Scenario {
            systems,
            leaders: leaders.min(systems),
            start_spread: timing.restart_period,
            sample_every: timing.reregistration_period / 20,
            duration: timing.reregistration_period * 10,
            timing,
            network: NetworkConfig::default(),
            faults: Vec::new(),
            trace_capacity: 400,
            stop_when_converged: true,
        }
    }

    /// The registration period, the unit convergence is measured in.
    pub fn period(&self) -> Duration {
        self.timing.reregistration_period
    }

    /// [`Scenario::new`] plus seeded chaos during the first three periods: lossy network
    /// (`loss`), crashes and restarts of random systems (candidates included), graceful
    /// leaves, and a partition; by three periods every crashed system has restarted and the
    /// partition has healed, and the run lasts six more periods.
    pub fn chaos(systems: usize, leaders: usize, loss: f64, seed: u64) -> Scenario {
        let mut scenario = Scenario::new(systems, leaders);
        let mut rng = SplitMix64::new(seed ^ 0xC4A0_5EED);
        let p = scenario.period();
        let calm = p * 3;
        scenario.network.loss = loss;
        scenario.network.duplicate = 0.02;
        scenario.network.max_delay = Duration::from_millis(30);
        let mut faults = Vec::new();
        // Crashes, each followed by a restart before the calm.
        for _ in 0..rng.below(3) {
            let system = rng.below(systems as u64) as usize;
            let at = rng.between(p / 2, calm - p / 2);
            let back = rng.between(at + p / 10, calm);
            faults.push(Fault::Crash { at, system });
            faults.push(Fault::Restart { at: back, system });
        }
        // Sometimes a member leaves for good (never a candidate: the others must converge).
        if systems > leaders + 1 && rng.chance(0.3) {
            let system = leaders + rng.below((systems - leaders) as u64) as usize;
            let at = rng.between(p / 2, calm);
            faults.push(Fault::Leave { at, system });
            // A leaving system is not restarted by an earlier crash's restart.
            faults.retain(
                |f| !matches!(f, Fault::Restart { system: s, at: t } if *s == system && *t > at),
            );
        }
        // A partition.
        if rng.chance(0.7) {
            let side: Vec<usize> = (0..systems).filter(|_| rng.chance(0.4)).collect();
            let at = rng.between(p / 2, calm - p / 2);
            let heal = rng.between(at + p / 4, calm);
            faults.push(Fault::Partition { at, side });
            faults.push(Fault::Heal { at: heal });
        }
        faults.sort_by_key(Fault::at);
        scenario.faults = faults;
        scenario.duration = calm + p * 6;
        // Run on after converging: it must stay converged and the checks go on.
        scenario.stop_when_converged = false;
        scenario
    }

    /// [`Scenario::new`] with a lossy network (`loss`); after three periods the first
    /// candidate (the active leader) dies silently, and the run lasts until the others agreed
    /// on the next one (or four more periods).
    pub fn leader_failover(systems: usize, leaders: usize, loss: f64) -> Scenario {
        let mut scenario = Scenario::new(systems, leaders.max(2));
        let p = scenario.period();
        scenario.network.loss = loss;
        scenario.faults = vec![Fault::Crash {
            at: p * 3,
            system: 0,
        }];
        scenario.duration = p * 7;
        scenario
    }
}

/// What happened during a run, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages the machines sent.
    pub sent: u64,
    /// Messages delivered to a live system.
    pub delivered: u64,
    /// Messages the network lost.
    pub lost: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Messages dropped by a partition.
    pub partitioned: u64,
    /// Messages that arrived where no system was running.
    pub to_dead: u64,
    /// Timer expiries handled.
    pub timeouts: u64,
    /// Notifications to watchers.
    pub notifications: u64,
    /// Leader changes announced.
    pub leader_changes: u64,
    /// Members lost (announced with `MemberLost`).
    pub members_lost: u64,
    /// Placements decided on a member.
    pub placements: u64,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed of the run.
    pub seed: u64,
    /// The registration period.
    pub period: Duration,
    /// The last fault or start: convergence is measured from here.
    pub settled_at: Duration,
    /// The first converged sample at any time, if any.
    pub first_converged_at: Option<Duration>,
    /// The first converged sample at or after `settled_at`, if any.
    pub converged_at: Option<Duration>,
    /// `converged_at - settled_at` in registration periods.
    pub periods_to_convergence: Option<f64>,
    /// When the run ended.
    pub ended_at: Duration,
    /// The last sample of the run found the convention converged.
    pub converged_at_end: bool,
    /// Event counts.
    pub counts: Counts,
    /// Every broken rule seen (notifications, placements), with when.
    pub violations: Vec<String>,
    /// The last events of the run, formatted.
    pub trace: Vec<String>,
}

impl Report {
    /// Converged after the last fault, no violation.
    pub fn ok(&self) -> bool {
        self.converged_at.is_some() && self.violations.is_empty()
    }

    /// Everything needed to reproduce and understand a failure: the seed, the outcome, the
    /// violations and the trace.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "seed {} (period {:?}): settled at {:?}, first converged at {:?}, converged at {:?} ({:?} periods), ended at {:?} (converged then: {})",
            self.seed,
            self.period,
            self.settled_at,
            self.first_converged_at,
            self.converged_at,
            self.periods_to_convergence,
            self.ended_at,
            self.converged_at_end
        );
        let _ = writeln!(text, "counts: {:?}", self.counts);
        for violation in &self.violations {
            let _ = writeln!(text, "violation: {violation}");
        }
        let _ = writeln!(text, "last {} events:", self.trace.len());
        for line in &self.trace {
            let _ = writeln!(text, "  {line}");
        }
        text
    }
}

/// One traced event (formatted only when a report is made).
#[derive(Clone, Debug)]
enum Trace {
    Send {
        from: usize,
        to: usize,
        kind: &'static str,
        fate: &'static str,
    },
    Deliver {
        to: usize,
        from: SocketAddrV4,
        kind: &'static str,
    },
    Notify {
        system: usize,
        watcher: usize,
        remote: AdminRef,
        added: bool,
    },
    Lost {
        system: usize,
        remote: AdminRef,
    },
    Leader {
        system: usize,
        leader: Option<AdminRef>,
    },
    Fault(Fault),
    Placed {
        system: usize,
        on: AdminRef,
    },
}

/// One simulated system.
struct Node {
    socket: SocketAddrV4,
    /// Restarts so far (part of the incarnation).
    generation: u64,
    convention: Option<Convention>,
    /// The instant its timer event is queued for.
    armed: Option<Instant>,
    watchers: [ActorAddress; 2],
    /// What each watcher was told is present: socket → incarnation.
    told: [BTreeMap<SocketAddrV4, SystemId>; 2],
    /// Members this system announced lost and has not seen join again.
    known_gone: BTreeSet<AdminRef>,
    /// Left for good.
    left: bool,
    /// Started at least once.
    started: bool,
}

/// An event in the queue.
#[derive(Debug)]
enum Event {
    Start(usize),
    Deliver {
        to: usize,
        message: ConventionMessage,
    },
    Timer {
        system: usize,
        at: Instant,
    },
    Fault(usize),
    Sample,
    EnableSecondWatcher(usize),
}

/// The running simulation.
struct Sim<'a> {
    seed: u64,
    scenario: &'a Scenario,
    rng: SplitMix64,
    base: Instant,
    now: Duration,
    queue: BTreeMap<(Duration, u64), Event>,
    seq: u64,
    nodes: Vec<Node>,
    by_socket: BTreeMap<SocketAddrV4, usize>,
    partition: Option<BTreeSet<usize>>,
    leaders: Vec<SocketAddrV4>,
    trace: VecDeque<(Duration, Trace)>,
    counts: Counts,
    violations: Vec<String>,
}

/// Runs `scenario` with `seed` and reports what happened.
pub fn run(seed: u64, scenario: &Scenario) -> Report {
    let mut sim = Sim::new(seed, scenario);
    sim.run()
}

/// The socket of system `index`.
fn socket_of(index: usize) -> SocketAddrV4 {
    let i = index as u32;
    SocketAddrV4::new(
        Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8),
        1900,
    )
}

impl<'a> Sim<'a> {
    fn new(seed: u64, scenario: &'a Scenario) -> Sim<'a> {
        let leaders: Vec<SocketAddrV4> = (0..scenario.leaders).map(socket_of).collect();
        let nodes = (0..scenario.systems)
            .map(|i| Node {
                socket: socket_of(i),
                generation: 0,
                convention: None,
                armed: None,
                watchers: [0u64, 1].map(|w| {
                    ActorAddress::new(SystemId::from_raw(((i as u64) << 8) | w | 1 << 62), 1)
                }),
                told: [BTreeMap::new(), BTreeMap::new()],
                known_gone: BTreeSet::new(),
                left: false,
                started: false,
            })
            .collect();
        let mut sim = Sim {
            seed,
            scenario,
            rng: SplitMix64::new(seed),
            base: Instant::now(),
            now: Duration::ZERO,
            queue: BTreeMap::new(),
            seq: 0,
            nodes,
            by_socket: (0..scenario.systems).map(|i| (socket_of(i), i)).collect(),
            partition: None,
            leaders,
            trace: VecDeque::new(),
            counts: Counts::default(),
            violations: Vec::new(),
        };
        for i in 0..scenario.systems {
            let at = sim.rng.between(Duration::ZERO, scenario.start_spread);
            sim.push(at, Event::Start(i));
            let later = sim
                .rng
                .between(scenario.start_spread, scenario.period() * 2);
            sim.push(later, Event::EnableSecondWatcher(i));
        }
        for (index, fault) in scenario.faults.iter().enumerate() {
            sim.push(fault.at(), Event::Fault(index));
        }
        sim.push(scenario.sample_every, Event::Sample);
        sim
    }

    fn push(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    fn record(&mut self, trace: Trace) {
        if self.scenario.trace_capacity == 0 {
            return;
        }
        if self.trace.len() == self.scenario.trace_capacity {
            self.trace.pop_front();
        }
        self.trace.push_back((self.now, trace));
    }

    fn violation(&mut self, text: String) {
        if self.violations.len() < 50 {
            self.violations.push(format!("at {:?}: {text}", self.now));
        }
    }

    fn run(&mut self) -> Report {
        let p = self.scenario.period();
        let last_start = self.scenario.start_spread;
        let settled_at = self
            .scenario
            .faults
            .iter()
            .map(Fault::at)
            .max()
            .unwrap_or(Duration::ZERO)
            .max(last_start);
        let mut first_converged_at = None;
        let mut converged_at = None;
        let mut last_sample_converged = false;
        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > self.scenario.duration {
                break;
            }
            self.now = at;
            match event {
                Event::Start(i) => self.start(i),
                Event::EnableSecondWatcher(i) => {
                    let watcher = self.nodes[i].watchers[1].clone();
                    if let Some(c) = self.nodes[i].convention.as_mut() {
                        c.notify_on_changes(watcher, true);
                    }
                    self.after(i);
                }
                Event::Deliver { to, message } => {
                    let now = self.instant();
                    let from = message.from().socket;
                    let kind = message.kind();
                    match self.nodes[to].convention.as_mut() {
                        Some(c) => {
                            self.counts.delivered += 1;
                            c.handle(now, message);
                            self.record(Trace::Deliver { to, from, kind });
                            self.after(to);
                        }
                        None => self.counts.to_dead += 1,
                    }
                }
                Event::Timer { system, at } => {
                    if self.nodes[system].armed != Some(at) {
                        continue;
                    }
                    self.nodes[system].armed = None;
                    let now = self.instant();
                    if let Some(c) = self.nodes[system].convention.as_mut() {
                        self.counts.timeouts += 1;
                        c.handle_timeout(now);
                    }
                    self.after(system);
                }
                Event::Fault(index) => {
                    let fault = self.scenario.faults[index].clone();
                    self.record(Trace::Fault(fault.clone()));
                    self.fault(fault);
                }
                Event::Sample => {
                    self.check_notifications();
                    self.check_placement();
                    let converged = self.converged();
                    last_sample_converged = converged;
                    if converged {
                        first_converged_at.get_or_insert(self.now);
                        if self.now >= settled_at && converged_at.is_none() {
                            converged_at = Some(self.now);
                            if self.scenario.stop_when_converged {
                                break;
                            }
                        }
                    }
                    let next = self.now + self.scenario.sample_every;
                    self.push(next, Event::Sample);
                }
            }
        }
        Report {
            seed: self.seed,
            period: p,
            settled_at,
            first_converged_at,
            converged_at,
            periods_to_convergence: converged_at
                .map(|c| (c - settled_at).as_secs_f64() / p.as_secs_f64()),
            ended_at: self.now,
            converged_at_end: last_sample_converged,
            counts: self.counts.clone(),
            violations: self.violations.clone(),
            trace: self
                .trace
                .iter()
                .map(|(at, t)| self.format(*at, t))
                .collect(),
        }
    }

    fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.left {
            return;
        }
        node.generation += 1;
        node.started = true;
        let me = AdminRef {
            socket: node.socket,
            incarnation: SystemId::from_raw(((i as u64 + 1) << 20) | node.generation),
        };
        let capabilities: Capabilities =
            [("system", i as i64), ("generation", node.generation as i64)]
                .into_iter()
                .collect();
        let config = ConventionConfig {
            me,
            capabilities,
            leaders: self.leaders.clone(),
            timing: self.scenario.timing.clone(),
        };
        let now = self.base + self.now;
        let mut convention = Convention::new(config, now);
        convention.notify_on_changes(node.watchers[0].clone(), true);
        node.convention = Some(convention);
        node.told = [BTreeMap::new(), BTreeMap::new()];
        node.known_gone.clear();
        node.armed = None;
        self.after(i);
    }

    fn fault(&mut self, fault: Fault) {
        match fault {
            Fault::Crash { system, .. } => {
                self.nodes[system].convention = None;
                self.nodes[system].armed = None;
            }
            Fault::Restart { system, .. } => self.start(system),
            Fault::Leave { system, .. } => {
                let now = self.instant();
                if let Some(c) = self.nodes[system].convention.as_mut() {
                    c.shutdown(now);
                }
                self.after(system);
                self.nodes[system].convention = None;
                self.nodes[system].armed = None;
                self.nodes[system].left = true;
            }
            Fault::Partition { side, .. } => self.partition = Some(side.into_iter().collect()),
            Fault::Heal { .. } => self.partition = None,
        }
    }

    /// Carries out system `i`'s actions and re-arms its timer.
    fn after(&mut self, i: usize) {
        while let Some(action) = self.nodes[i]
            .convention
            .as_mut()
            .and_then(|c| c.poll_action())
        {
            match action {
                Action::Send { to, message } => self.transmit(i, to, message),
                Action::Notify { watcher, update } => {
                    self.counts.notifications += 1;
                    let w = if watcher == self.nodes[i].watchers[0] {
                        0
                    } else {
                        1
                    };
                    self.record(Trace::Notify {
                        system: i,
                        watcher: w,
                        remote: update.remote,
                        added: update.added,
                    });
                    let told = &mut self.nodes[i].told[w];
                    let socket = update.remote.socket;
                    let before = told.get(&socket).copied();
                    let problem = match (update.added, before) {
                        (true, Some(old)) => Some(format!(
                            "system {i} watcher {w}: added {:?} while {old:?} was present",
                            update.remote
                        )),
                        (true, None) => {
                            told.insert(socket, update.remote.incarnation);
                            None
                        }
                        (false, Some(old)) if old == update.remote.incarnation => {
                            told.remove(&socket);
                            None
                        }
                        (false, old) => Some(format!(
                            "system {i} watcher {w}: removed {:?} while {old:?} was present",
                            update.remote
                        )),
                    };
                    if update.added {
                        self.nodes[i].known_gone.remove(&update.remote);
                    }
                    if let Some(problem) = problem {
                        self.violation(problem);
                    }
                }
                Action::MemberLost(remote) => {
                    self.counts.members_lost += 1;
                    self.nodes[i].known_gone.insert(remote);
                    self.record(Trace::Lost { system: i, remote });
                }
                Action::LeaderChanged(leader) => {
                    self.counts.leader_changes += 1;
                    self.record(Trace::Leader { system: i, leader });
                }
            }
        }
        let next = self.nodes[i]
            .convention
            .as_ref()
            .and_then(|c| c.poll_timeout());
        if next != self.nodes[i].armed {
            self.nodes[i].armed = next;
            if let Some(at) = next {
                let offset = at.saturating_duration_since(self.base).max(self.now);
                self.push(offset, Event::Timer { system: i, at });
            }
        }
    }

    fn transmit(&mut self, from: usize, to: SocketAddrV4, message: ConventionMessage) {
        self.counts.sent += 1;
        let kind = message.kind();
        let Some(&target) = self.by_socket.get(&to) else {
            self.counts.to_dead += 1;
            return;
        };
        let cut = self
            .partition
            .as_ref()
            .is_some_and(|side| side.contains(&from) != side.contains(&target));
        let network = &self.scenario.network;
        let fate = if cut {
            self.counts.partitioned += 1;
            "partitioned"
        } else if self.rng.chance(network.loss) {
            self.counts.lost += 1;
            "lost"
        } else {
            let delay = self.rng.between(network.min_delay, network.max_delay);
            let duplicate = self.rng.chance(network.duplicate);
            if duplicate {
                self.counts.duplicated += 1;
                let again = self.rng.between(network.min_delay, network.max_delay * 2);
                self.push(
                    self.now + again,
                    Event::Deliver {
                        to: target,
                        message: message.clone(),
                    },
                );
            }
            self.push(
                self.now + delay,
                Event::Deliver {
                    to: target,
                    message,
                },
            );
            if duplicate {
                "duplicated"
            } else {
                "sent"
            }
        };
        self.record(Trace::Send {
            from,
            to: target,
            kind,
            fate,
        });
    }

    /// Every watcher's picture equals its machine's members.
    fn check_notifications(&mut self) {
        let mut problems = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(c) = node.convention.as_ref() else {
                continue;
            };
            let members: BTreeMap<SocketAddrV4, SystemId> = c
                .members()
                .into_iter()
                .filter(|m| m.last_heard.is_some())
                .map(|m| (m.admin.socket, m.admin.incarnation))
                .collect();
            if node.told[0] != members {
                problems.push(format!(
                    "system {i}: watcher 0 was told {:?} but the members are {:?}",
                    node.told[0], members
                ));
            }
        }
        for problem in problems {
            self.violation(problem);
        }
    }

    /// A random live system places an actor anywhere: never on a member it lost.
    fn check_placement(&mut self) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].convention.is_some())
            .collect();
        if live.is_empty() {
            return;
        }
        let i = live[self.rng.below(live.len() as u64) as usize];
        let node = &mut self.nodes[i];
        let Some(c) = node.convention.as_mut() else {
            return;
        };
        let decision = c.place(&PlacementRequest::default(), |_| Ok(()));
        if let PlacementDecision::Member(on) = decision {
            self.counts.placements += 1;
            let known = c
                .members()
                .into_iter()
                .any(|m| m.admin == on && m.last_heard.is_some());
            let gone = node.known_gone.contains(&on);
            let own = on.socket == node.socket;
            // Half of the placed actors are gone again soon.
            if self.rng.chance(0.5) {
                c.placed_gone(on.socket);
            }
            self.record(Trace::Placed { system: i, on });
            if gone || own || !known {
                self.violation(format!(
                    "system {i} placed on {on:?} (known gone: {gone}, itself: {own}, a member: {known})"
                ));
            }
        }
    }

    /// Every live system agrees on the first live candidate, which knows every live system.
    fn converged(&self) -> bool {
        if self.nodes.iter().any(|n| !n.started) {
            return false;
        }
        let live = |i: usize| self.nodes[i].convention.is_some();
        let expected = (0..self.scenario.leaders).find(|i| live(*i));
        let admin_of = |i: usize| self.nodes[i].convention.as_ref().map(|c| c.me());
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(c) = node.convention.as_ref() else {
                continue;
            };
            let agrees = match expected {
                Some(e) if e == i => c.is_leader() && c.leader().is_none(),
                Some(e) => c.leader() == admin_of(e),
                None => c.leader().is_none(),
            };
            if !agrees {
                return false;
            }
        }
        let Some(e) = expected else {
            return true;
        };
        let Some(leader) = self.nodes[e].convention.as_ref() else {
            return false;
        };
        let known: BTreeSet<AdminRef> = leader
            .members()
            .into_iter()
            .filter(|m| m.last_heard.is_some())
            .map(|m| m.admin)
            .collect();
        (0..self.nodes.len())
            .filter(|i| *i != e)
            .filter_map(admin_of)
            .all(|a| known.contains(&a))
    }

    fn format(&self, at: Duration, trace: &Trace) -> String {
        let ms = at.as_secs_f64() * 1000.0;
        match trace {
            Trace::Send {
                from,
                to,
                kind,
                fate,
            } => format!("{ms:10.3}ms send {from} -> {to} {kind} ({fate})"),
            Trace::Deliver { to, from, kind } => {
                let from = self.by_socket.get(from).copied().unwrap_or(usize::MAX);
                format!("{ms:10.3}ms deliver {from} -> {to} {kind}")
            }
            Trace::Notify {
                system,
                watcher,
                remote,
                added,
            } => format!(
                "{ms:10.3}ms notify system {system} watcher {watcher}: {} {remote:?}",
                if *added { "added" } else { "removed" }
            ),
            Trace::Lost { system, remote } => {
                format!("{ms:10.3}ms system {system} lost {remote:?}")
            }
            Trace::Leader { system, leader } => {
                format!("{ms:10.3}ms system {system} leader now {leader:?}")
            }
            Trace::Fault(fault) => format!("{ms:10.3}ms fault {fault:?}"),
            Trace::Placed { system, on } => format!("{ms:10.3}ms system {system} placed on {on:?}"),
        }
    }
}
