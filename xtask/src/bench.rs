//! `cargo xtask bench`: builds the bench binaries, runs every workload of every contestant in
//! its own process, several times, and writes the report under `target/bench/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{cargo, proc, report, root};

pub(crate) mod baseline;
mod instructions;
mod troupes;

/// Command-line options of `bench`.
#[derive(Debug, Default)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) only: Option<Vec<String>>,
    pub(crate) contestants: Option<Vec<String>>,
    pub(crate) runs: Option<usize>,
    /// Also count instructions per message under callgrind (`--instructions`).
    pub(crate) instructions: bool,
    /// An earlier run's `figures.tsv` (or its directory) to compare with (`--baseline`).
    pub(crate) baseline: Option<PathBuf>,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--instructions" => options.instructions = true,
                "--only" => {
                    let list = split_list(&value("--only")?);
                    for w in &list {
                        if w != CONVENTIONS
                            && w != troupes::TROUPES
                            && !WORKLOADS.iter().any(|k| k.id == w)
                        {
                            return Err(format!("unknown workload {w:?}"));
                        }
                    }
                    options.only = Some(list);
                }
                "--contestants" => {
                    let list = split_list(&value("--contestants")?);
                    for c in &list {
                        if !CONTESTANTS.iter().any(|k| k.id == c) {
                            return Err(format!("unknown contestant {c:?}"));
                        }
                    }
                    options.contestants = Some(list);
                }
                "--baseline" => options.baseline = Some(PathBuf::from(value("--baseline")?)),
                "--runs" => {
                    let n = value("--runs")?;
                    let n: usize = n.parse().map_err(|_| format!("bad --runs {n:?}"))?;
                    if n == 0 {
                        return Err("--runs must be at least 1".into());
                    }
                    options.runs = Some(n);
                }
                other => return Err(format!("unknown bench option {other:?}")),
            }
        }
        Ok(options)
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Which bench program a contestant runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Program {
    /// `benches/thespian-bench` (thespian-rs and raw crossbeam).
    ThespianBench,
    /// `benches/peers` (actix, ractor, kameo).
    Peers,
    /// `benches/python/thespian_bench.py` in the venv.
    Python,
}

/// Size class of a contestant (the sizes a workload uses for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Rust,
    PySimple,
    PyQueue,
    /// Python Thespian's multiprocTCPBase and multiprocUDPBase.
    PyNet,
}

/// Where a workload's messages travel: within one process, or between processes over TCP or
/// UDP on the loopback interface. A contestant runs the workloads of its scopes only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    InProcess,
    Tcp,
    Udp,
}

impl Scope {
    /// The in-process scope, or the cross-process ones.
    pub(crate) fn cross_process(self) -> bool {
        self != Scope::InProcess
    }
}

const IN_PROCESS: &[Scope] = &[Scope::InProcess];

/// One contestant.
#[derive(Debug)]
pub(crate) struct Contestant {
    /// Command-line and JSON id.
    pub(crate) id: &'static str,
    /// Name in the report.
    pub(crate) name: &'static str,
    /// What it is, for the report.
    pub(crate) what: &'static str,
    pub(crate) program: Program,
    /// First argument of the bench program.
    pub(crate) arg: &'static str,
    pub(crate) class: Class,
    /// A thespian-rs base (the subject of the ratios).
    pub(crate) subject: bool,
    /// The workloads it runs.
    pub(crate) scopes: &'static [Scope],
}

impl Contestant {
    /// Whether it runs `workload`.
    pub(crate) fn runs(&self, workload: &Workload) -> bool {
        self.scopes.contains(&workload.scope)
    }
}

pub(crate) const CONTESTANTS: &[Contestant] = &[
    Contestant {
        id: "thespian-simple",
        name: "thespian-rs Simple",
        what: "thespian-rs `SystemBase::Simple`: every actor in the calling thread",
        program: Program::ThespianBench,
        arg: "simple",
        class: Class::Rust,
        subject: true,
        scopes: IN_PROCESS,
    },
    Contestant {
        id: "thespian-queue",
        name: "thespian-rs Queue",
        what: "thespian-rs `SystemBase::Queue`: M:N worker threads, one per core by default",
        program: Program::ThespianBench,
        arg: "queue",
        class: Class::Rust,
        subject: true,
        scopes: IN_PROCESS,
    },
    Contestant {
        id: "raw",
        name: "raw crossbeam",
        what: "plain OS threads and crossbeam-channel unbounded channels (the physical limit)",
        program: Program::ThespianBench,
        arg: "raw",
        class: Class::Rust,
        subject: false,
        scopes: IN_PROCESS,
    },
    Contestant {
        id: "actix",
        name: "actix 0.13.5",
        what: "actix on arbiters (`do_send` / `send`); one arbiter per pair in ping-pong-cores",
        program: Program::Peers,
        arg: "actix",
        class: Class::Rust,
        subject: false,
        scopes: IN_PROCESS,
    },
    Contestant {
        id: "ractor",
        name: "ractor 0.16.5",
        what: "ractor on a multi-threaded tokio runtime (`cast` / `call`)",
        program: Program::Peers,
        arg: "ractor",
        class: Class::Rust,
        subject: false,
        scopes: IN_PROCESS,
    },
    Contestant {
        id: "kameo",
        name: "kameo 0.22.2",
        what: "kameo on a multi-threaded tokio runtime (`tell` / `ask`, default mailboxes)",
        program: Program::Peers,
        arg: "kameo",
        class: Class::Rust,
        subject: false,
        scopes: IN_PROCESS,
    },
    Contestant {
        id: "py-simple",
        name: "Thespian 4.0.1 simple",
        what: "Python Thespian 4.0.1 `simpleSystemBase` (CPython, one thread)",
        program: Program::Python,
        arg: "simple",
        class: Class::PySimple,
        subject: false,
        scopes: IN_PROCESS,
    },
    Contestant {
        id: "py-queue",
        name: "Thespian 4.0.1 queue",
        what: "Python Thespian 4.0.1 `multiprocQueueBase` (one OS process per actor)",
        program: Program::Python,
        arg: "queue",
        class: Class::PyQueue,
        subject: false,
        scopes: IN_PROCESS,
    },
    Contestant {
        id: "thespian-tcp",
        name: "thespian-rs Tcp",
        what: "thespian-rs `SystemBase::Tcp` (multiprocTCPBase): an admin daemon, each actor in its own process, TCP on 127.0.0.1",
        program: Program::ThespianBench,
        arg: "tcp",
        class: Class::Rust,
        subject: true,
        scopes: &[Scope::Tcp],
    },
    Contestant {
        id: "thespian-udp",
        name: "thespian-rs Udp",
        what: "thespian-rs `SystemBase::Udp` (multiprocUDPBase): an admin daemon, each actor in its own process, UDP on 127.0.0.1",
        program: Program::ThespianBench,
        arg: "udp",
        class: Class::Rust,
        subject: true,
        scopes: &[Scope::Udp],
    },
    Contestant {
        id: "raw-net",
        name: "raw sockets, fork+exec",
        what: "the physical limit across processes: blocking std sockets on 127.0.0.1 between the bench process and a helper process (the bench binary re-executed), length-prefixed frames over TCP (`TCP_NODELAY`, buffered writes), one datagram per message over UDP; for process creation, fork+exec of the bench binary in a no-op role, waited for",
        program: Program::ThespianBench,
        arg: "raw-net",
        class: Class::Rust,
        subject: false,
        scopes: &[Scope::Tcp, Scope::Udp],
    },
    Contestant {
        id: "py-tcp",
        name: "Thespian 4.0.1 TCP",
        what: "Python Thespian 4.0.1 `multiprocTCPBase` (admin daemon, one OS process per actor, 127.0.0.1)",
        program: Program::Python,
        arg: "tcp",
        class: Class::PyNet,
        subject: false,
        scopes: &[Scope::Tcp],
    },
    Contestant {
        id: "py-udp",
        name: "Thespian 4.0.1 UDP",
        what: "Python Thespian 4.0.1 `multiprocUDPBase` (admin daemon, one OS process per actor, 127.0.0.1)",
        program: Program::Python,
        arg: "udp",
        class: Class::PyNet,
        subject: false,
        scopes: &[Scope::Udp],
    },
];

/// Whether a larger or a smaller value is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Better {
    Higher,
    Lower,
}

/// One figure a workload reports (a key of its result line).
#[derive(Debug)]
pub(crate) struct Figure {
    /// Key in the result line.
    pub(crate) key: &'static str,
    /// Label in the report.
    pub(crate) label: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    /// Only comparable between runs of the same size (e.g. a total time).
    pub(crate) size_bound: bool,
}

/// Sizes of a workload per size class.
#[derive(Debug)]
pub(crate) struct Sizes {
    pub(crate) rust: u64,
    /// Size in `--quick` mode; 0: the workload is left out of quick mode.
    pub(crate) quick: u64,
    pub(crate) py_simple: u64,
    pub(crate) py_queue: u64,
    /// Python's multiprocTCPBase and multiprocUDPBase.
    pub(crate) py_net: u64,
}

/// One workload.
#[derive(Debug)]
pub(crate) struct Workload {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    /// What `size` counts.
    pub(crate) size_unit: &'static str,
    pub(crate) sizes: Sizes,
    pub(crate) figures: &'static [Figure],
    pub(crate) scope: Scope,
}

const fn rate(label: &'static str, unit: &'static str) -> Figure {
    Figure {
        key: "rate",
        label,
        unit,
        better: Better::Higher,
        size_bound: false,
    }
}

const fn bandwidth(label: &'static str) -> Figure {
    Figure {
        key: "mb_s",
        label,
        unit: "MB/s",
        better: Better::Higher,
        size_bound: false,
    }
}

pub(crate) const WORKLOADS: &[Workload] = &[
    Workload {
        id: "ping-pong",
        title: "ping-pong, 1 pair",
        size_unit: "round trips",
        sizes: Sizes {
            rust: 200_000,
            quick: 20_000,
            py_simple: 100_000,
            py_queue: 3_000,
            py_net: 0,
        },
        figures: &[rate("ping-pong, 1 pair", "round trips/s")],
        scope: Scope::InProcess,
    },
    Workload {
        id: "ping-pong-cores",
        title: "ping-pong, one pair per core",
        size_unit: "round trips in all",
        sizes: Sizes {
            rust: 400_000,
            quick: 20_000,
            py_simple: 100_000,
            py_queue: 3_000,
            py_net: 0,
        },
        figures: &[rate("ping-pong, one pair per core", "round trips/s")],
        scope: Scope::InProcess,
    },
    Workload {
        id: "tell-16b",
        title: "one-way tell, 16 B messages",
        size_unit: "messages",
        sizes: Sizes {
            rust: 2_000_000,
            quick: 100_000,
            py_simple: 200_000,
            py_queue: 2_000,
            py_net: 0,
        },
        figures: &[rate("one-way tell, 16 B", "msgs/s")],
        scope: Scope::InProcess,
    },
    Workload {
        id: "tell-64k",
        title: "one-way tell, 64 KiB messages",
        size_unit: "messages",
        sizes: Sizes {
            rust: 100_000,
            quick: 5_000,
            py_simple: 50_000,
            py_queue: 1_000,
            py_net: 0,
        },
        figures: &[rate("one-way tell, 64 KiB", "msgs/s")],
        scope: Scope::InProcess,
    },
    Workload {
        id: "skynet",
        title: "SkyNet (10-ary tree of actors)",
        size_unit: "leaves",
        sizes: Sizes {
            rust: 1_000_000,
            quick: 10_000,
            py_simple: 100_000,
            py_queue: 100,
            py_net: 0,
        },
        figures: &[
            Figure {
                key: "seconds",
                label: "SkyNet time",
                unit: "s",
                better: Better::Lower,
                size_bound: true,
            },
            rate("SkyNet spawn rate", "actors/s"),
        ],
        scope: Scope::InProcess,
    },
    Workload {
        id: "idle",
        title: "bytes per idle actor",
        size_unit: "idle actors",
        sizes: Sizes {
            rust: 1_000_000,
            quick: 10_000,
            py_simple: 100_000,
            py_queue: 0,
            py_net: 0,
        },
        figures: &[Figure {
            key: "bytes",
            label: "bytes per idle actor",
            unit: "B",
            better: Better::Lower,
            size_bound: false,
        }],
        scope: Scope::InProcess,
    },
    Workload {
        id: "ask",
        title: "ask from an outside thread",
        size_unit: "asks in sequence",
        sizes: Sizes {
            rust: 100_000,
            quick: 5_000,
            py_simple: 50_000,
            py_queue: 2_000,
            py_net: 0,
        },
        figures: &[
            rate("ask from outside, rate", "asks/s"),
            Figure {
                key: "p50_us",
                label: "ask from outside, p50",
                unit: "µs",
                better: Better::Lower,
                size_bound: false,
            },
            Figure {
                key: "p99_us",
                label: "ask from outside, p99",
                unit: "µs",
                better: Better::Lower,
                size_bound: false,
            },
        ],
        scope: Scope::InProcess,
    },
    Workload {
        id: "tcp-ping-pong",
        title: "TCP ping-pong between two actors' processes",
        size_unit: "round trips",
        sizes: Sizes {
            rust: 50_000,
            quick: 2_000,
            py_simple: 0,
            py_queue: 0,
            py_net: 2_000,
        },
        figures: &[rate("TCP ping-pong across processes", "round trips/s")],
        scope: Scope::Tcp,
    },
    Workload {
        id: "tcp-tell-16b",
        title: "TCP one-way tell across processes, 16 B messages",
        size_unit: "messages",
        sizes: Sizes {
            rust: 1_000_000,
            quick: 0,
            py_simple: 0,
            py_queue: 0,
            py_net: 2_000,
        },
        figures: &[
            rate("TCP one-way tell 16 B", "msgs/s"),
            bandwidth("TCP one-way tell 16 B, payload"),
        ],
        scope: Scope::Tcp,
    },
    Workload {
        id: "tcp-tell-64k",
        title: "TCP one-way tell across processes, 64 KiB messages",
        size_unit: "messages",
        sizes: Sizes {
            rust: 20_000,
            quick: 0,
            py_simple: 0,
            py_queue: 0,
            py_net: 500,
        },
        figures: &[
            rate("TCP one-way tell 64 KiB", "msgs/s"),
            bandwidth("TCP one-way tell 64 KiB, payload"),
        ],
        scope: Scope::Tcp,
    },
    Workload {
        id: "tcp-create",
        title: "actor process creation (top-level create + one ask each)",
        size_unit: "actors (processes)",
        sizes: Sizes {
            rust: 200,
            quick: 0,
            py_simple: 0,
            py_queue: 0,
            py_net: 30,
        },
        figures: &[rate("actor process creation", "creates/s")],
        scope: Scope::Tcp,
    },
    Workload {
        id: "tcp-ask",
        title: "TCP ask from the program to an actor's process",
        size_unit: "asks in sequence",
        sizes: Sizes {
            rust: 20_000,
            quick: 0,
            py_simple: 0,
            py_queue: 0,
            py_net: 2_000,
        },
        figures: &[
            rate("TCP ask from outside, rate", "asks/s"),
            Figure {
                key: "p50_us",
                label: "TCP ask from outside, p50",
                unit: "µs",
                better: Better::Lower,
                size_bound: false,
            },
            Figure {
                key: "p99_us",
                label: "TCP ask from outside, p99",
                unit: "µs",
                better: Better::Lower,
                size_bound: false,
            },
        ],
        scope: Scope::Tcp,
    },
    Workload {
        id: "udp-ping-pong",
        title: "UDP ping-pong between two actors' processes",
        size_unit: "round trips",
        sizes: Sizes {
            rust: 20_000,
            quick: 0,
            py_simple: 0,
            py_queue: 0,
            py_net: 2_000,
        },
        figures: &[rate("UDP ping-pong across processes", "round trips/s")],
        scope: Scope::Udp,
    },
    Workload {
        id: "udp-tell-16b",
        title: "UDP one-way tell across processes, 16 B messages",
        size_unit: "messages",
        sizes: Sizes {
            rust: 300_000,
            quick: 0,
            py_simple: 0,
            py_queue: 0,
            py_net: 5_000,
        },
        figures: &[
            rate("UDP one-way tell 16 B", "msgs/s"),
            bandwidth("UDP one-way tell 16 B, payload"),
        ],
        scope: Scope::Udp,
    },
];

impl Workload {
    /// The size this workload uses for `class` (0: the contestant's program answers n/a).
    pub(crate) fn size(&self, class: Class, quick: bool) -> u64 {
        match class {
            Class::Rust if quick => self.sizes.quick,
            Class::Rust => self.sizes.rust,
            Class::PySimple => self.sizes.py_simple,
            Class::PyQueue => self.sizes.py_queue,
            Class::PyNet => self.sizes.py_net,
        }
    }
}

/// What happened to one (contestant, workload) cell.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    /// Measured: per figure key, the value of every run.
    Measured {
        size: u64,
        runs: BTreeMap<String, Vec<f64>>,
        /// Attempts that hung and were killed (then retried).
        hung: usize,
    },
    /// The workload does not apply to the contestant.
    NotApplicable(String),
    /// The contestant is absent (cannot be built, installed or started).
    Absent(String),
    /// A run failed.
    Failed(String),
    /// Not run in this invocation (`--only`, `--contestants`, `--quick`).
    Skipped,
}

/// Median, min and max of a figure's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stats {
    pub(crate) fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Stats {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

impl Cell {
    /// Stats of one figure, when measured.
    pub(crate) fn stats(&self, key: &str) -> Option<Stats> {
        match self {
            Cell::Measured { runs, .. } => runs.get(key).and_then(|v| Stats::of(v)),
            _ => None,
        }
    }

    pub(crate) fn size(&self) -> Option<u64> {
        match self {
            Cell::Measured { size, .. } => Some(*size),
            _ => None,
        }
    }
}

/// Everything a bench invocation measured, for the report.
pub(crate) struct Results {
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    pub(crate) command: String,
    pub(crate) commit: String,
    /// Tracked files that differ from the commit (a `-dirty` build).
    pub(crate) changed: Vec<String>,
    pub(crate) started: String,
    pub(crate) duration: Duration,
    pub(crate) machine: String,
    /// `(contestant index, workload index) -> cell`.
    pub(crate) cells: BTreeMap<(usize, usize), Cell>,
    /// Why a contestant is absent as a whole, if it is.
    pub(crate) absent: BTreeMap<usize, String>,
    /// The earlier run to compare with (`--baseline`).
    pub(crate) baseline: Option<baseline::Baseline>,
}

impl Results {
    pub(crate) fn cell(&self, contestant: usize, workload: usize) -> &Cell {
        self.cells
            .get(&(contestant, workload))
            .unwrap_or(&Cell::Skipped)
    }
}

/// Env variables removed from every bench process so all contestants run with the same
/// (default) allocator settings.
const SCRUBBED_ENV: &[&str] = &[
    "LD_PRELOAD",
    "MALLOC_ARENA_MAX",
    "MALLOC_TOP_PAD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_MMAP_MAX_",
    "MALLOC_CHECK_",
    "MALLOC_PERTURB_",
    "GLIBC_TUNABLES",
    "PYTHONMALLOC",
    "RUST_LOG",
];

struct Env {
    target: PathBuf,
    out: PathBuf,
    thespian_bench: PathBuf,
    peers_bench: PathBuf,
    python: Option<PathBuf>,
    script: PathBuf,
    quick: bool,
}

/// Python Thespian's multiprocQueueBase sometimes freezes under a burst of messages (as in
/// kquick/Thespian#91); its runs take seconds, so a short limit and a few retries.
const PY_QUEUE_LIMIT: Duration = Duration::from_secs(30);
/// Python Thespian's multiprocTCPBase and multiprocUDPBase: the same, with more room (each run
/// starts an admin daemon and a process per actor).
const PY_NET_LIMIT: Duration = Duration::from_secs(60);

impl Env {
    /// How long one run of `contestant` may take.
    fn limit(&self, contestant: &Contestant) -> Duration {
        match contestant.class {
            Class::PyQueue => PY_QUEUE_LIMIT,
            Class::PyNet => PY_NET_LIMIT,
            _ if self.quick => Duration::from_secs(60),
            _ => Duration::from_secs(300),
        }
    }
}

impl Env {
    fn command(&self, contestant: &Contestant, workload: &Workload, size: u64) -> Command {
        let mut command = match contestant.program {
            Program::ThespianBench => Command::new(&self.thespian_bench),
            Program::Peers => Command::new(&self.peers_bench),
            Program::Python => {
                let mut c = Command::new(self.python.as_deref().unwrap_or(Path::new("python3")));
                c.arg(&self.script);
                c
            }
        };
        command
            .arg(contestant.arg)
            .arg(workload.id)
            .arg(size.to_string())
            .current_dir(&self.target);
        for var in SCRUBBED_ENV {
            command.env_remove(var);
        }
        command
    }
}

/// Runs the benchmark.
pub(crate) fn run(options: &Options, argv: &[String]) -> Result<(), String> {
    let begun = Instant::now();
    if options.instructions {
        instructions::check_valgrind()?;
    }
    // Read before measuring, so a bad path fails at once, not after the run.
    let earlier = options
        .baseline
        .as_deref()
        .map(baseline::read)
        .transpose()?;
    let root = root();
    // What is measured is what is built now, at the start.
    let started = report::utc_now();
    let (commit, changed) = commit(&root);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"));
    let bench_dir = target.join("bench");
    // Quick and filtered runs must not overwrite the report of a full one.
    let out = if options.quick {
        bench_dir.join("quick")
    } else if options.only.is_some() || options.contestants.is_some() {
        bench_dir.join("partial")
    } else {
        bench_dir.clone()
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let runs = options.runs.unwrap_or(if options.quick { 3 } else { 5 });
    if !options.quick && runs < 5 {
        eprintln!("xtask bench: note: {runs} run(s) per figure; the protocol asks for at least 5");
    }

    let chosen: Vec<usize> = (0..CONTESTANTS.len())
        .filter(|&i| {
            let c = &CONTESTANTS[i];
            (!options.quick || c.subject)
                && options
                    .contestants
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|id| id == c.id))
        })
        .collect();
    let workloads: Vec<usize> = (0..WORKLOADS.len())
        .filter(|&i| {
            let w = &WORKLOADS[i];
            // Quick mode (CI) leaves out the workloads without a quick size.
            (!options.quick || w.sizes.quick > 0)
                && options
                    .only
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|id| id == w.id))
                && chosen.iter().any(|&c| CONTESTANTS[c].runs(w))
        })
        .collect();
    let needs = |p: Program| {
        chosen.iter().any(|&i| {
            CONTESTANTS[i].program == p
                && workloads
                    .iter()
                    .any(|&w| CONTESTANTS[i].runs(&WORKLOADS[w]))
        })
    };

    let mut absent: BTreeMap<usize, String> = BTreeMap::new();
    let mark_absent = |absent: &mut BTreeMap<usize, String>, program: Program, why: &str| {
        for &i in &chosen {
            if CONTESTANTS[i].program == program {
                absent.insert(i, why.to_owned());
            }
        }
    };

    // Build: thespian-rs and raw crossbeam always; the peers only when they run.
    eprintln!("xtask bench: building the bench binaries (release)");
    cargo(&["build", "--release", "-p", "thespian-bench"])?;
    if needs(Program::Peers) {
        // The peers crate is its own workspace (so `cargo clippy --workspace` and CI never
        // compile actix, ractor and kameo); it builds into the same target directory.
        let manifest = root.join("benches").join("peers").join("Cargo.toml");
        let manifest = manifest.to_string_lossy().into_owned();
        let target_dir = target.to_string_lossy().into_owned();
        let build = [
            "build",
            "--release",
            "--manifest-path",
            manifest.as_str(),
            "--target-dir",
            target_dir.as_str(),
        ];
        if let Err(e) = cargo(&build) {
            eprintln!("xtask bench: {e}; the peers are absent from this run");
            mark_absent(
                &mut absent,
                Program::Peers,
                &format!("the peers crate did not build: {e}"),
            );
        }
    }

    let python = if needs(Program::Python) {
        match setup_python(&bench_dir) {
            Ok(python) => Some(python),
            Err(why) => {
                eprintln!("xtask bench: Python Thespian is absent: {why}");
                mark_absent(&mut absent, Program::Python, &why);
                None
            }
        }
    } else {
        None
    };

    let exe = std::env::consts::EXE_SUFFIX;
    let env = Env {
        thespian_bench: target.join("release").join(format!("thespian-bench{exe}")),
        peers_bench: target.join("release").join(format!("peers-bench{exe}")),
        python,
        script: root
            .join("benches")
            .join("python")
            .join("thespian_bench.py"),
        quick: options.quick,
        out,
        target,
    };

    let mut cells: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    for (step, &w) in workloads.iter().enumerate() {
        let workload = &WORKLOADS[w];
        eprintln!(
            "xtask bench: [{}/{}] {} ({} rounds of one run per contestant)",
            step + 1,
            workloads.len(),
            workload.title,
            runs
        );
        // Round-robin: run 1 of every contestant, then run 2, ... so that a drift in the
        // machine's load (it may be shared) spreads over all contestants alike.
        let mut pending: Vec<(usize, Pending)> = chosen
            .iter()
            .filter(|&&c| CONTESTANTS[c].runs(workload))
            .map(|&c| {
                let size = workload.size(CONTESTANTS[c].class, options.quick);
                // A size of 0 marks a workload the contestant's program declares n/a.
                let outcome = absent.get(&c).map(|why| Cell::Absent(why.clone()));
                (c, Pending::new(size, outcome))
            })
            .collect();
        for _ in 0..runs {
            for (c, cell) in pending.iter_mut() {
                if cell.outcome.is_none() && !cell.stopped {
                    one_run(&env, &CONTESTANTS[*c], workload, runs, cell);
                }
            }
        }
        for (c, cell) in pending {
            let cell = cell.finish();
            if let Cell::Absent(why) = &cell {
                absent.entry(c).or_insert_with(|| why.clone());
            }
            eprintln!(
                "xtask bench:   {:<24} {}",
                CONTESTANTS[c].name,
                report::progress(workload, &cell)
            );
            cells.insert((c, w), cell);
        }
    }

    let results = Results {
        quick: options.quick,
        runs,
        command: format!("cargo xtask {}", argv.join(" ")),
        commit,
        changed,
        started,
        duration: begun.elapsed(),
        machine: report::machine(),
        cells,
        absent,
        baseline: earlier,
    };
    report::write(&env.out, &results)?;
    if options.instructions {
        instructions::instructions(&env)?;
    }
    let conventions_enabled = options.contestants.is_none()
        && options
            .only
            .as_ref()
            .is_none_or(|list| list.iter().any(|id| id == CONVENTIONS));
    if conventions_enabled {
        conventions(&env, runs)?;
    }
    let troupes_enabled = options.contestants.is_none()
        && options
            .only
            .as_ref()
            .is_none_or(|list| list.iter().any(|id| id == troupes::TROUPES));
    if troupes_enabled {
        troupes::troupes(&env, runs)?;
    }
    eprintln!(
        "xtask bench: done in {:.0} s; wrote {}",
        begun.elapsed().as_secs_f64(),
        ["results.md", "results.json", baseline::FILE, "chart.svg"]
            .iter()
            .map(|f| env.out.join(f).display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// A cell while its workload's rounds run.
struct Pending {
    size: u64,
    values: BTreeMap<String, Vec<f64>>,
    done: usize,
    hung: usize,
    /// No more attempts (too many hung); the runs that finished stand.
    stopped: bool,
    /// Set when the cell is settled early (absent, n/a, failed).
    outcome: Option<Cell>,
}

impl Pending {
    fn new(size: u64, outcome: Option<Cell>) -> Pending {
        Pending {
            size,
            values: BTreeMap::new(),
            done: 0,
            hung: 0,
            stopped: false,
            outcome,
        }
    }

    fn finish(self) -> Cell {
        if let Some(cell) = self.outcome {
            return cell;
        }
        if self.done == 0 {
            return Cell::Failed(format!("every attempt ({}) hung and was killed", self.hung));
        }
        Cell::Measured {
            size: self.size,
            runs: self.values,
            hung: self.hung,
        }
    }
}

/// One run (one process) of a contestant's workload, added to `cell`. A run of Python's
/// multiprocQueueBase, multiprocTCPBase or multiprocUDPBase that hangs is killed and retried,
/// at most `runs` times per cell; any other hang or failure settles the cell as failed.
fn one_run(
    env: &Env,
    contestant: &Contestant,
    workload: &Workload,
    runs: usize,
    cell: &mut Pending,
) {
    let limit = env.limit(contestant);
    let retries = if matches!(contestant.class, Class::PyQueue | Class::PyNet) {
        runs
    } else {
        0
    };
    loop {
        let finished = match proc::run(env.command(contestant, workload, cell.size), limit) {
            Ok(f) => f,
            Err(e) => {
                cell.outcome = Some(Cell::Failed(e));
                return;
            }
        };
        if finished.timed_out {
            cell.hung += 1;
            if cell.hung > retries {
                if cell.done == 0 {
                    cell.outcome = Some(Cell::Failed(format!(
                        "hung and was killed after {} s{}",
                        limit.as_secs(),
                        tail(&finished.stderr)
                    )));
                }
                cell.stopped = true;
                return;
            }
            continue;
        }
        let line = finished.stdout.lines().rev().find(|l| {
            l.starts_with("RESULT ") || l.starts_with("NA ") || l.starts_with("UNAVAILABLE ")
        });
        cell.outcome = match line {
            Some(l) if l.starts_with("UNAVAILABLE ") => {
                Some(Cell::Absent(l["UNAVAILABLE ".len()..].to_owned()))
            }
            Some(l) if l.starts_with("NA ") => Some(Cell::NotApplicable(l[3..].to_owned())),
            Some(l) if finished.success => {
                for pair in l["RESULT ".len()..].split_whitespace() {
                    if let Some((k, v)) = pair.split_once('=') {
                        if let Ok(v) = v.parse::<f64>() {
                            cell.values.entry(k.to_owned()).or_default().push(v);
                        }
                    }
                }
                cell.done += 1;
                None
            }
            _ => Some(Cell::Failed(format!(
                "{}{}",
                finished.status,
                tail(&finished.stderr)
            ))),
        };
        return;
    }
}

/// Adds the `key=value` figures of a finished run's last `RESULT` line to `values`; false when
/// the run failed, timed out or printed no such line.
fn add_result(finished: &proc::Finished, values: &mut BTreeMap<String, Vec<f64>>) -> bool {
    let line = finished
        .stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "));
    match line {
        Some(line) if finished.success && !finished.timed_out => {
            for (k, v) in line.split_whitespace().filter_map(|kv| kv.split_once('=')) {
                if let Ok(v) = v.parse::<f64>() {
                    values.entry(k.to_owned()).or_default().push(v);
                }
            }
            true
        }
        _ => false,
    }
}
/// The last lines of a process's stderr, for an error message.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(3);
    format!(": {}", lines[start..].join(" | "))
}

/// Makes `target/bench/venv` with Thespian 4.0.1; returns its python.
fn setup_python(out: &Path) -> Result<PathBuf, String> {
    let venv = out.join("venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        eprintln!("xtask bench: creating {} (python3 -m venv)", venv.display());
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        if !made.status.success() {
            return Err(format!(
                "`python3 -m venv` failed{}",
                tail(&String::from_utf8_lossy(&made.stderr))
            ));
        }
    }
    let installed = || {
        Command::new(&python)
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('thespian'))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if installed().as_deref() != Some("4.0.1") {
        eprintln!(
            "xtask bench: pip install thespian==4.0.1 into {}",
            venv.display()
        );
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "thespian==4.0.1"])
            .output()
            .map_err(|e| format!("cannot run pip: {e}"))?;
        if !pip.status.success() {
            return Err(format!(
                "pip could not install thespian==4.0.1{}",
                tail(&String::from_utf8_lossy(&pip.stderr))
            ));
        }
        if installed().as_deref() != Some("4.0.1") {
            return Err("thespian 4.0.1 is not importable after pip install".into());
        }
    }
    Ok(python)
}

/// `git rev-parse --short HEAD`, with `-dirty` when tracked files differ from it, and the
/// tracked files that differ.
fn commit(root: &Path) -> (String, Vec<String>) {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let Some(hash) = git(&["rev-parse", "--short", "HEAD"]) else {
        return ("unknown".into(), Vec::new());
    };
    let hash = hash.trim().to_owned();
    let changed: Vec<String> = git(&["status", "--porcelain", "--untracked-files=no"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.get(3..))
        .map(str::to_owned)
        .collect();
    if changed.is_empty() {
        (hash, changed)
    } else {
        (format!("{hash}-dirty"), changed)
    }
}

/// The `--only` name of the convention benchmarks, which run after the workloads.
const CONVENTIONS: &str = "conventions";

/// Simulated convention sizes of the convergence benchmark.
const SIM_SYSTEMS: &[u64] = &[10, 100, 1_000];

/// Remote creates (and as many local ones) per run of the remote-create benchmark.
const REMOTE_CREATES: u64 = 100;

/// The convention benchmarks: remote against local create on the Tcp base (not in `--quick`:
/// hundreds of actor processes), and convergence in the simulation for 10, 100 and 1,000
/// systems (milliseconds of wall time, so also in `--quick`). Prints the figures and writes
/// `conventions.md` next to the other results.
fn conventions(env: &Env, runs: usize) -> Result<(), String> {
    let mut text = String::from("# Conventions\n\n");
    let median = |values: &[f64]| Stats::of(values).map_or(f64::NAN, |s| s.median);
    let measure =
        |args: &[String], limit: Duration| -> Result<BTreeMap<String, Vec<f64>>, String> {
            let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for _ in 0..runs {
                let mut command = Command::new(&env.thespian_bench);
                command
                    .arg("conventions")
                    .args(args)
                    .current_dir(&env.target);
                for var in SCRUBBED_ENV {
                    command.env_remove(var);
                }
                let finished = proc::run(command, limit)?;
                if !add_result(&finished, &mut values) {
                    return Err(format!(
                        "`thespian-bench conventions {}` failed ({}){}",
                        args.join(" "),
                        finished.status,
                        tail(&finished.stderr)
                    ));
                }
            }
            Ok(values)
        };
    if !env.quick {
        eprintln!(
            "xtask bench: conventions: remote create against local create (Tcp, {runs} runs)"
        );
        let v = measure(
            &["remote-create".to_owned(), REMOTE_CREATES.to_string()],
            Duration::from_secs(300),
        )?;
        let get = |k: &str| median(v.get(k).map_or(&[][..], Vec::as_slice));
        let ratio = get("ratio");
        let verdict = if ratio >= 0.5 { "meets" } else { "misses" };
        let lines = [
            format!(
                "Remote create across two Tcp systems on 127.0.0.1 (a leader places an actor that requires a capability only the member has; create + one ask, {REMOTE_CREATES} of each, interleaved, median of {runs} runs):\n"
            ),
            "| create | creates/s | p50 |\n|---|---:|---:|".to_owned(),
            format!("| local (on the leader) | {:.0} | {:.2} ms |", get("local_rate"), get("local_p50_us") / 1e3),
            format!("| remote (on the member) | {:.0} | {:.2} ms |", get("rate"), get("p50_us") / 1e3),
            format!("\nRemote / local rate: {ratio:.2} ({verdict} the goal of at least 0.5).\n"),
        ];
        for line in &lines {
            eprintln!("xtask bench:   {}", line.trim());
            text.push_str(line);
            text.push('\n');
        }
    }
    eprintln!("xtask bench: conventions: convergence in the simulation");
    text.push_str(
        "Convergence in the deterministic simulation (`thespian_conventions::sim`, `Scenario::new(n, 2)`: n systems, two leader candidates, starting within one restart period; periods from the last start until the leader knows every member and every member follows it):\n\n| systems | periods to convergence | wall time | messages |\n|---:|---:|---:|---:|\n",
    );
    for &n in SIM_SYSTEMS {
        let v = measure(&["sim".to_owned(), n.to_string()], Duration::from_secs(120))?;
        let get = |k: &str| median(v.get(k).map_or(&[][..], Vec::as_slice));
        let line = format!(
            "| {n} | {:.3} | {:.1} ms | {:.0} |",
            get("periods"),
            get("wall_ms"),
            get("messages")
        );
        eprintln!("xtask bench:   {line}");
        text.push_str(&line);
        text.push('\n');
    }
    let path = env.out.join("conventions.md");
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask bench: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(stdout: &str, success: bool, timed_out: bool) -> proc::Finished {
        proc::Finished {
            status: "exit status: 0".into(),
            success,
            timed_out,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn the_last_result_line_of_a_good_run_is_added() {
        let mut values = BTreeMap::new();
        let out = "RESULT a=1\nnoise\nRESULT a=2 b=3.5 c=x d\n";
        assert!(add_result(&finished(out, true, false), &mut values));
        assert!(add_result(
            &finished("RESULT a=4\n", true, false),
            &mut values
        ));
        assert_eq!(values["a"], vec![2.0, 4.0]);
        assert_eq!(values["b"], vec![3.5]);
        assert!(!values.contains_key("c") && !values.contains_key("d"));
    }

    #[test]
    fn a_failed_run_or_one_without_a_result_adds_nothing() {
        let mut values = BTreeMap::new();
        assert!(!add_result(
            &finished("RESULT a=1\n", false, false),
            &mut values
        ));
        assert!(!add_result(
            &finished("RESULT a=1\n", true, true),
            &mut values
        ));
        assert!(!add_result(
            &finished("no result\n", true, false),
            &mut values
        ));
        assert!(values.is_empty());
    }
}
