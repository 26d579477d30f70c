//! What every Rust bench binary shares: the workload names, the flow-control window of the
//! one-way tell workload, the result line `cargo xtask bench` parses, RSS and percentiles.
//!
//! The peers crate includes this file with `#[path]`, so both binaries speak the same protocol.
//!
//! Protocol: a bench binary is run as `<binary> <contestant> <workload> <size>` and prints
//! exactly one line on stdout:
//! - `RESULT key=value ...` (e.g. `RESULT rate=1234.5`), or
//! - `NA <reason>` when the workload does not apply to the contestant, or
//! - `UNAVAILABLE <reason>` when the contestant cannot run at all (e.g. a base not built yet).
//!
//! Anything else, or a non-zero exit status, is a failed run.

#![allow(dead_code)]

use std::io::Write;
use std::time::Duration;

/// One-way tell: at most this many data messages are in flight (sent, not yet acknowledged).
pub(crate) const WINDOW: u64 = 1024;
/// One-way tell: the receiver acknowledges every `BATCH` messages.
pub(crate) const BATCH: u64 = 256;
/// Small messages of the one-way tell workload carry this many bytes.
pub(crate) const SMALL: usize = 16;
/// Large messages of the one-way tell workload carry this many bytes.
pub(crate) const LARGE: usize = 64 * 1024;
/// Troupe benchmark: units of [`crunch`] per item (about 10 ms of an idle core).
pub(crate) const TROUPE_UNITS: u32 = 10;

/// The troupe benchmark's fixed CPU-bound computation, the same for every contestant: one unit
/// is a million xorshift steps (about a millisecond).
pub(crate) fn crunch(seed: u64, units: u32) -> u64 {
    let mut x = seed | 1;
    for _ in 0..u64::from(units) * 1_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

/// How long an external wait may take before the run counts as failed.
pub(crate) const PATIENCE: Duration = Duration::from_secs(600);

/// The workloads, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Round trips between one pinger and one ponger.
    PingPong,
    /// As `PingPong`, with one pair per core at once; `size` is the total over all pairs.
    PingPongCores,
    /// One-way tell from a producer actor to a consumer actor, 16-byte messages.
    Tell16,
    /// One-way tell from a producer actor to a consumer actor, 64 KiB messages.
    Tell64k,
    /// SkyNet: a 10-ary tree of actors down to `size` leaves, summing the leaves' numbers.
    Skynet,
    /// RSS delta per idle actor over `size` idle actors.
    Idle,
    /// `ask` from a thread outside the actor system, `size` times in sequence.
    Ask,
}

impl Workload {
    /// Parses a command-line workload name.
    pub(crate) fn parse(name: &str) -> Option<Workload> {
        Some(match name {
            "ping-pong" => Workload::PingPong,
            "ping-pong-cores" => Workload::PingPongCores,
            "tell-16b" => Workload::Tell16,
            "tell-64k" => Workload::Tell64k,
            "skynet" => Workload::Skynet,
            "idle" => Workload::Idle,
            "ask" => Workload::Ask,
            _ => return None,
        })
    }

    /// Message size of a tell workload.
    pub(crate) fn tell_size(self) -> usize {
        if self == Workload::Tell64k {
            LARGE
        } else {
            SMALL
        }
    }
}

/// The parsed command line of a bench binary.
pub(crate) struct Args {
    /// Contestant name (binary-specific).
    pub(crate) contestant: String,
    /// The workload.
    pub(crate) workload: Workload,
    /// The workload's size (messages, round trips, leaves or actors).
    pub(crate) size: u64,
}

/// Parses `<contestant> <workload> <size>`, or exits with a usage message.
pub(crate) fn args(contestants: &[&str]) -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!(
            "usage: <contestant> <workload> <size>\n  contestants: {}\n  workloads: ping-pong ping-pong-cores tell-16b tell-64k skynet idle ask",
            contestants.join(" ")
        );
        std::process::exit(2)
    };
    if argv.len() != 3 || !contestants.contains(&argv[0].as_str()) {
        usage();
    }
    let Some(workload) = Workload::parse(&argv[1]) else {
        usage()
    };
    let Ok(size) = argv[2].parse::<u64>() else {
        usage()
    };
    if size == 0 {
        usage();
    }
    Args {
        contestant: argv[0].clone(),
        workload,
        size,
    }
}

/// What one run measured.
pub(crate) enum Outcome {
    /// `key=value` pairs for the result line.
    Figures(Vec<(&'static str, f64)>),
    /// The workload does not apply to this contestant.
    NotApplicable(String),
    /// The contestant cannot run.
    Unavailable(String),
}

/// Prints the one result line and flushes stdout.
pub(crate) fn report(outcome: &Outcome) {
    let line = match outcome {
        Outcome::Figures(pairs) => {
            let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:.6}")).collect();
            format!("RESULT {}", body.join(" "))
        }
        Outcome::NotApplicable(reason) => format!("NA {}", one_line(reason)),
        Outcome::Unavailable(reason) => format!("UNAVAILABLE {}", one_line(reason)),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reports the outcome and ends the process without running destructors (so a million
/// actors are not torn down after the measurement).
pub(crate) fn finish(outcome: Outcome) -> ! {
    report(&outcome);
    std::process::exit(0)
}

/// Reports an error and exits with status 1.
pub(crate) fn fail(error: impl std::fmt::Display) -> ! {
    eprintln!("bench run failed: {error}");
    std::process::exit(1)
}

/// The process's resident set size in bytes (`VmRSS` of `/proc/self/status`).
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Lets lazily started actors settle before an RSS reading.
pub(crate) fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// Bytes per actor from RSS readings before and after creating `n` actors.
pub(crate) fn bytes_per_actor(before: u64, after: u64, n: u64) -> Outcome {
    let per = after.saturating_sub(before) as f64 / n as f64;
    Outcome::Figures(vec![
        ("bytes", per),
        ("rss_before_mib", before as f64 / 1048576.0),
        ("rss_after_mib", after as f64 / 1048576.0),
    ])
}

/// Rate figure: `count` events over `elapsed`.
pub(crate) fn rate(count: u64, elapsed: Duration) -> Outcome {
    Outcome::Figures(vec![
        ("rate", count as f64 / elapsed.as_secs_f64()),
        ("seconds", elapsed.as_secs_f64()),
    ])
}

/// SkyNet figures: total seconds and actors spawned per second (`leaves` leaves, so
/// `(10 * leaves - 1) / 9` actors in a full 10-ary tree).
pub(crate) fn skynet(leaves: u64, elapsed: Duration, sum: u64) -> Outcome {
    let expected = leaves * (leaves - 1) / 2;
    if sum != expected {
        fail(format!("SkyNet sum {sum}, expected {expected}"));
    }
    let actors = skynet_actors(leaves);
    Outcome::Figures(vec![
        ("seconds", elapsed.as_secs_f64()),
        ("rate", actors as f64 / elapsed.as_secs_f64()),
        ("actors", actors as f64),
    ])
}

/// Actors in a SkyNet tree with `leaves` leaves (each level splits by 10 while size > 1).
pub(crate) fn skynet_actors(leaves: u64) -> u64 {
    if leaves <= 1 {
        1
    } else {
        1 + 10 * skynet_actors(leaves / 10)
    }
}

/// Checks a SkyNet size: a power of ten.
pub(crate) fn check_skynet_size(size: u64) {
    let mut s = size;
    while s.is_multiple_of(10) {
        s /= 10;
    }
    if s != 1 {
        fail(format!("SkyNet size must be a power of ten, not {size}"));
    }
}

/// Ask figures from per-request latencies.
pub(crate) fn ask(mut latencies: Vec<Duration>, elapsed: Duration) -> Outcome {
    latencies.sort_unstable();
    let n = latencies.len() as u64;
    Outcome::Figures(vec![
        ("rate", n as f64 / elapsed.as_secs_f64()),
        ("p50_us", percentile(&latencies, 50.0).as_secs_f64() * 1e6),
        ("p99_us", percentile(&latencies, 99.0).as_secs_f64() * 1e6),
    ])
}

/// Nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Number of cores (pairs in `ping-pong-cores`).
pub(crate) fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// Warm-up size for a timed workload of `size`.
pub(crate) fn warmup(size: u64) -> u64 {
    (size / 10).max(1)
}
