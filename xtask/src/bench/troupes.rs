//! The troupe benchmark: speed-up of a troupe of one worker per core over a troupe of one
//! worker on a CPU-bound workload, on the Queue and Tcp bases (`thespian-bench troupe`), and
//! the same workload on ractor's factory (`peers-bench ractor-factory`, not in `--quick`, which
//! builds no peer). Runs after the workloads, like the convention benchmarks, and writes
//! `troupes.md`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use super::{add_result, tail, Env, Stats, SCRUBBED_ENV};
use crate::{cargo, proc, root};

/// The `--only` name of the troupe benchmark.
pub(super) const TROUPES: &str = "troupes";

/// Items per run (each about 10 ms of one core); fewer in `--quick`.
const ITEMS: u32 = 200;
const QUICK_ITEMS: u32 = 20;

/// The goal: a speed-up of at least this share of the number of cores.
const GOAL_SHARE: f64 = 0.85;

/// Who runs the workload.
#[derive(Clone, Copy)]
enum Contestant {
    /// `thespian-bench troupe <base>`.
    Thespian(&'static str),
    /// `peers-bench ractor-factory`.
    RactorFactory,
}

/// Runs the contestant's troupe workload `runs` times; the figures by key.
fn measure(
    env: &Env,
    contestant: Contestant,
    workers: usize,
    items: u32,
    runs: usize,
) -> Result<BTreeMap<String, Vec<f64>>, String> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (program, args) = match contestant {
        Contestant::Thespian(base) => (&env.thespian_bench, vec!["troupe", base]),
        Contestant::RactorFactory => (&env.peers_bench, vec!["ractor-factory"]),
    };
    let shown = args.join(" ");
    for _ in 0..runs {
        let mut command = Command::new(program);
        command
            .args(&args)
            .args([workers.to_string(), items.to_string()])
            .current_dir(&env.target);
        for var in SCRUBBED_ENV {
            command.env_remove(var);
        }
        let finished = proc::run(command, Duration::from_secs(300))?;
        if !add_result(&finished, &mut values) {
            return Err(format!(
                "`{shown} {workers} {items}` failed ({}){}",
                finished.status,
                tail(&finished.stderr)
            ));
        }
    }
    Ok(values)
}

/// Measures and reports the speed-up on Queue and Tcp.
pub(super) fn troupes(env: &Env, runs: usize) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let items = if env.quick { QUICK_ITEMS } else { ITEMS };
    let median = |v: &BTreeMap<String, Vec<f64>>, k: &str| {
        Stats::of(v.get(k).map_or(&[][..], Vec::as_slice)).map_or(f64::NAN, |s| s.median)
    };
    let goal = GOAL_SHARE * cores as f64;
    let mut text = format!(
        "# Troupes\n\nSpeed-up of a troupe of {cores} workers (one per core) over a troupe of 1 worker: {items} items of a fixed CPU-bound computation (about 10 ms of one core each) sent at once from outside, every worker up before the clock starts; median of {runs} runs. Goal: at least {GOAL_SHARE} × {cores} cores = {goal:.2}.\n\n| contestant | 1 worker | {cores} workers | speed-up | goal |\n|---|---:|---:|---:|---|\n"
    );
    let mut contestants = vec![
        (Contestant::Thespian("queue"), "thespian-rs Queue"),
        (
            Contestant::Thespian("tcp"),
            "thespian-rs Tcp (a process per worker)",
        ),
    ];
    let mut ractor_note = "ractor's factory is left out of `--quick` (it builds no peer).";
    if !env.quick {
        match build_peers(env) {
            Ok(()) => {
                contestants.push((Contestant::RactorFactory, "ractor factory (queuer routing)"));
                ractor_note = "";
            }
            Err(e) => {
                eprintln!("xtask bench: troupes: {e}; ractor's factory is absent");
                ractor_note = "ractor's factory is absent: the peers crate did not build.";
            }
        }
    }
    for (contestant, label) in contestants {
        eprintln!("xtask bench: troupes: {label}, 1 and {cores} workers ({runs} runs)");
        let one = measure(env, contestant, 1, items, runs)?;
        let many = measure(env, contestant, cores, items, runs)?;
        let (t1, tn) = (median(&one, "secs"), median(&many, "secs"));
        let speed_up = t1 / tn;
        let verdict = if speed_up >= goal { "meets" } else { "misses" };
        let line = format!("| {label} | {t1:.3} s | {tn:.3} s | {speed_up:.2} | {verdict} |");
        eprintln!("xtask bench:   {line}");
        text.push_str(&line);
        text.push('\n');
    }
    if !ractor_note.is_empty() {
        text.push_str(&format!("\n{ractor_note}\n"));
    }
    let path = env.out.join("troupes.md");
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask bench: wrote {}", path.display());
    Ok(())
}

/// Builds the peers crate (its own workspace) into the bench's target directory; a no-op when
/// the workloads' run built it already.
fn build_peers(env: &Env) -> Result<(), String> {
    let manifest = root().join("benches").join("peers").join("Cargo.toml");
    let manifest = manifest.to_string_lossy().into_owned();
    let target_dir = env.target.to_string_lossy().into_owned();
    cargo(&[
        "build",
        "--release",
        "--manifest-path",
        manifest.as_str(),
        "--target-dir",
        target_dir.as_str(),
    ])
}
