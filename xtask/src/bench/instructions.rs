//! `cargo xtask bench --instructions`: instructions per message (and per actor created) of the
//! in-process workloads and of the codec path, counted by valgrind's callgrind.
//!
//! Timed figures move with the machine's load; instruction counts do not (or barely: the Queue
//! base's worker threads may take a few more or fewer turns around an empty queue), so a
//! regression of a few percent shows in one run. Each workload runs twice under callgrind, at a
//! small and at a larger size; the difference of the two totals over the difference of the
//! units counted removes start-up and shutdown, which would otherwise dominate small runs.
//! Written as `instructions.md` and `instructions.json` beside the timed results, and appended
//! to `results.md` when that was written in the same invocation.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{tail, Env, SCRUBBED_ENV};
use crate::proc;

/// One counted workload.
struct Counted {
    /// Arguments of `thespian-bench` before the size.
    args: &'static [&'static str],
    /// Row label.
    label: &'static str,
    /// What one unit is.
    unit: &'static str,
    /// The small and the large size.
    sizes: (u64, u64),
    /// Units counted by a run of `size` (the warm-up round included).
    units: fn(u64) -> u64,
}

/// A timed workload's size plus its warm-up round (`size / 10`, at least 1).
fn with_warmup(size: u64) -> u64 {
    size + (size / 10).max(1)
}

/// `idle`: one actor created before the measured `size` (the spawner's first `Spawn(1)`).
fn idle_actors(size: u64) -> u64 {
    size + 1
}

const COUNTED: &[Counted] = &[
    Counted {
        args: &["queue", "tell-16b"],
        label: "Queue one-way tell, 16 B",
        unit: "message",
        sizes: (2_000, 12_000),
        units: with_warmup,
    },
    Counted {
        args: &["queue", "ping-pong"],
        label: "Queue ping-pong, 1 pair",
        unit: "round trip",
        sizes: (1_000, 6_000),
        units: with_warmup,
    },
    Counted {
        args: &["queue", "ask"],
        label: "Queue ask from outside",
        unit: "ask",
        sizes: (1_000, 6_000),
        units: with_warmup,
    },
    Counted {
        args: &["queue", "idle"],
        label: "Queue actor creation",
        unit: "actor created",
        sizes: (1_000, 6_000),
        units: idle_actors,
    },
    Counted {
        args: &["simple", "tell-16b"],
        label: "Simple one-way tell, 16 B",
        unit: "message",
        sizes: (2_000, 12_000),
        units: with_warmup,
    },
    Counted {
        args: &["simple", "ping-pong"],
        label: "Simple ping-pong, 1 pair",
        unit: "round trip",
        sizes: (1_000, 6_000),
        units: with_warmup,
    },
    Counted {
        args: &["codec"],
        label: "postcard codec, 16 B message (encode + decode)",
        unit: "message",
        sizes: (2_000, 12_000),
        units: with_warmup,
    },
];

/// How long one run under callgrind may take (it runs some 50 times slower than native).
const LIMIT: Duration = Duration::from_secs(300);

/// Fails with a clear message when valgrind cannot run (checked before anything is built).
pub(super) fn check_valgrind() -> Result<(), String> {
    let out = Command::new("valgrind").arg("--version").output();
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "--instructions needs valgrind, and `valgrind --version` failed ({})",
            out.status
        )),
        Err(e) => Err(format!(
            "--instructions needs valgrind (its callgrind tool counts the instructions), and it cannot be run: {e}; install valgrind or leave out --instructions"
        )),
    }
}

/// The total instructions (`Ir`) of one run of `args size` under callgrind.
fn count(env: &Env, args: &[&str], size: u64) -> Result<u64, String> {
    let file = env.out.join(format!(
        "callgrind.{}.{size}.out",
        args.join("-").replace('/', "_")
    ));
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg(&env.thespian_bench)
        .args(args)
        .arg(size.to_string())
        .current_dir(&env.target);
    for var in SCRUBBED_ENV {
        command.env_remove(var);
    }
    let shown = format!("{} {size}", args.join(" "));
    let finished = proc::run(command, LIMIT)?;
    let ok = finished.success
        && !finished.timed_out
        && finished.stdout.lines().any(|l| l.starts_with("RESULT "));
    if !ok {
        return Err(format!(
            "`{shown}` under callgrind failed ({}){}",
            finished.status,
            tail(&finished.stderr)
        ));
    }
    let total = read_total(&file);
    let _ = std::fs::remove_file(&file);
    total.map_err(|e| format!("`{shown}`: {e}"))
}

/// The `summary:` (or `totals:`) line of a callgrind output file: the total of its one event.
fn read_total(file: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    parse_total(&text).ok_or_else(|| format!("no instruction total in {}", file.display()))
}

fn parse_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// One row of the result.
struct Row {
    label: &'static str,
    unit: &'static str,
    sizes: (u64, u64),
    totals: (u64, u64),
    per_unit: f64,
}

/// Counts every workload and writes `instructions.md` and `instructions.json` (appending the
/// table to `results.md` when it exists).
pub(super) fn instructions(env: &Env) -> Result<(), String> {
    let mut rows = Vec::new();
    for counted in COUNTED {
        eprintln!(
            "xtask bench: instructions: {} (sizes {} and {}, under callgrind)",
            counted.label, counted.sizes.0, counted.sizes.1
        );
        let (small, large) = counted.sizes;
        let a = count(env, counted.args, small)?;
        let b = count(env, counted.args, large)?;
        let units = (counted.units)(large) - (counted.units)(small);
        let per_unit = (b as f64 - a as f64) / units as f64;
        eprintln!(
            "xtask bench:   {:.0} instructions per {}",
            per_unit, counted.unit
        );
        rows.push(Row {
            label: counted.label,
            unit: counted.unit,
            sizes: (small, large),
            totals: (a, b),
            per_unit,
        });
    }
    let mut md = String::from(
        "## Instructions per unit (callgrind)\n\nTotal instructions (`Ir`) of each workload under `valgrind --tool=callgrind` at two sizes; the difference over the difference of units counted (warm-up rounds included) is the cost of one unit, start-up and shutdown left out. Valgrind runs one thread at a time, so these count work, not contention.\n\n| workload | instructions per unit | unit | sizes | totals |\n|---|---:|---|---|---|\n",
    );
    let mut json = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        md.push_str(&format!(
            "| {} | {:.0} | {} | {}, {} | {}, {} |\n",
            r.label, r.per_unit, r.unit, r.sizes.0, r.sizes.1, r.totals.0, r.totals.1
        ));
        json.push_str(&format!(
            "  {{\"workload\": {:?}, \"unit\": {:?}, \"per_unit\": {:.1}, \"sizes\": [{}, {}], \"totals\": [{}, {}]}}{}\n",
            r.label,
            r.unit,
            r.per_unit,
            r.sizes.0,
            r.sizes.1,
            r.totals.0,
            r.totals.1,
            if i + 1 < rows.len() { "," } else { "" }
        ));
    }
    json.push_str("]\n");
    let write = |name: &str, text: &str| {
        let path = env.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write("instructions.md", &md)?;
    write("instructions.json", &json)?;
    let results = env.out.join("results.md");
    if let Ok(mut text) = std::fs::read_to_string(&results) {
        text.push('\n');
        text.push_str(&md);
        write("results.md", &text)?;
    }
    eprintln!(
        "xtask bench: wrote {}",
        env.out.join("instructions.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_from_the_summary_line() {
        let text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 123456\n\nfn=main\n1 5\ntotals: 123456\n";
        assert_eq!(parse_total(text), Some(123_456));
        assert_eq!(parse_total("events: Ir\ntotals: 42\n"), Some(42));
        assert_eq!(parse_total("events: Ir\n"), None);
        assert_eq!(parse_total("summary: lots\n"), None);
    }

    #[test]
    fn units_count_the_warm_up_round() {
        assert_eq!(with_warmup(1_000), 1_100);
        assert_eq!(with_warmup(5), 6);
        assert_eq!(idle_actors(1_000), 1_001);
        for c in COUNTED {
            assert!(c.sizes.0 < c.sizes.1, "{}", c.label);
            assert!((c.units)(c.sizes.1) > (c.units)(c.sizes.0), "{}", c.label);
        }
    }
}
