//! The troupe benchmark: speed-up of a troupe of one worker per core over a troupe of one
//! worker on a CPU-bound workload, on the Queue and Tcp bases (`thespian-bench troupe`). Runs
//! after the workloads, like the convention benchmarks, and writes `troupes.md`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use super::{tail, Env, Stats, SCRUBBED_ENV};
use crate::proc;

/// The `--only` name of the troupe benchmark.
pub(super) const TROUPES: &str = "troupes";

/// Items per run (each about 10 ms of one core); fewer in `--quick`.
const ITEMS: u32 = 200;
const QUICK_ITEMS: u32 = 20;

/// The goal: a speed-up of at least this share of the number of cores.
const GOAL_SHARE: f64 = 0.85;

/// Runs `thespian-bench troupe <base> <workers> <items>` `runs` times; the figures by key.
fn measure(
    env: &Env,
    base: &str,
    workers: usize,
    items: u32,
    runs: usize,
) -> Result<BTreeMap<String, Vec<f64>>, String> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..runs {
        let mut command = Command::new(&env.thespian_bench);
        command
            .args(["troupe", base, &workers.to_string(), &items.to_string()])
            .current_dir(&env.target);
        for var in SCRUBBED_ENV {
            command.env_remove(var);
        }
        let finished = proc::run(command, Duration::from_secs(300))?;
        let line = finished
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("RESULT "));
        match line {
            Some(line) if finished.success && !finished.timed_out => {
                for (k, v) in line["RESULT ".len()..]
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                {
                    if let Ok(v) = v.parse::<f64>() {
                        values.entry(k.to_owned()).or_default().push(v);
                    }
                }
            }
            _ => {
                return Err(format!(
                    "`thespian-bench troupe {base} {workers} {items}` failed ({}){}",
                    finished.status,
                    tail(&finished.stderr)
                ))
            }
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
        "# Troupes\n\nSpeed-up of a troupe of {cores} workers (one per core) over a troupe of 1 worker: {items} items of a fixed CPU-bound computation (about 10 ms of one core each) sent at once from outside, every worker up before the clock starts; median of {runs} runs. Goal: at least {GOAL_SHARE} × {cores} cores = {goal:.2}.\n\n| base | 1 worker | {cores} workers | speed-up | goal |\n|---|---:|---:|---:|---|\n"
    );
    for (base, label) in [("queue", "Queue"), ("tcp", "Tcp (a process per worker)")] {
        eprintln!("xtask bench: troupes: {label}, 1 and {cores} workers ({runs} runs)");
        let one = measure(env, base, 1, items, runs)?;
        let many = measure(env, base, cores, items, runs)?;
        let (t1, tn) = (median(&one, "secs"), median(&many, "secs"));
        let speed_up = t1 / tn;
        let verdict = if speed_up >= goal { "meets" } else { "misses" };
        let line = format!("| {label} | {t1:.3} s | {tn:.3} s | {speed_up:.2} | {verdict} |");
        eprintln!("xtask bench:   {line}");
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(
        "\nractor's factory on the same workload is not measured yet (the peers crate has no troupe workload).\n",
    );
    let path = env.out.join("troupes.md");
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask bench: wrote {}", path.display());
    Ok(())
}
