//! The bench report: `results.md` (tables, ratios, targets, the comparison with a baseline),
//! `results.json`, `figures.tsv` and `chart.svg`, all written by hand (no dependencies).

use std::fmt::Write as _;
use std::path::Path;

use crate::bench::baseline::{self, Verdict};
use crate::bench::{
    Better, Cell, Class, Figure, Results, Scope, Stats, Workload, CONTESTANTS, WORKLOADS,
};

/// How every contestant's memory is allocated (the same for all).
pub(crate) const ALLOCATOR: &str = "system allocator for every contestant: the Rust binaries use \
Rust's default `System` allocator (glibc malloc; no jemalloc/mimalloc), CPython uses its default \
pymalloc over glibc malloc; the harness removes `LD_PRELOAD`, `MALLOC_*`, `GLIBC_TUNABLES` and \
`PYTHONMALLOC` from every bench process's environment, so all run with glibc's default settings";

/// The one-line progress text of a finished cell.
pub(crate) fn progress(workload: &Workload, cell: &Cell) -> String {
    match cell {
        Cell::Measured { size, hung, .. } => {
            let parts: Vec<String> = workload
                .figures
                .iter()
                .filter_map(|f| {
                    cell.stats(f.key).map(|s| {
                        format!(
                            "{} [{}–{}]",
                            value(s.median, f.unit),
                            number(s.min, f.unit),
                            number(s.max, f.unit)
                        )
                    })
                })
                .collect();
            let hung = if *hung > 0 {
                format!("; {hung} attempt(s) hung and were killed")
            } else {
                String::new()
            };
            format!("{}  (n={}{hung})", parts.join(", "), count(*size as f64))
        }
        Cell::NotApplicable(why) => format!("n/a: {why}"),
        Cell::Absent(why) => format!("absent: {why}"),
        Cell::Failed(why) => format!("FAILED: {why}"),
        Cell::Skipped => "skipped".into(),
    }
}

/// Writes the four report files into `out`.
pub(crate) fn write(out: &Path, results: &Results) -> Result<(), String> {
    let files = [
        ("results.md", markdown(results)),
        ("results.json", json(results)),
        (baseline::FILE, baseline::tsv(results)),
        ("chart.svg", svg(results)),
    ];
    for (name, text) in files {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Number formatting.

/// `v` with three significant digits.
fn sig3(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = v.abs().log10().floor() as i32;
    let decimals = (2 - digits).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// A count with a k/M suffix.
fn count(v: f64) -> String {
    if v >= 1e6 {
        format!("{} M", sig3(v / 1e6))
    } else if v >= 1e3 {
        format!("{} k", sig3(v / 1e3))
    } else {
        sig3(v)
    }
}

/// A number as shown for `unit` (rates of things with k/M suffixes), without the unit.
fn number(v: f64, unit: &str) -> String {
    if unit.ends_with("/s") && unit != "MB/s" {
        count(v)
    } else {
        sig3(v)
    }
}

/// A number with its unit.
fn value(v: f64, unit: &str) -> String {
    format!("{} {unit}", number(v, unit))
}

// ---------------------------------------------------------------------------------------------
// Ratios and targets.

/// Every (workload, figure) pair, in report order.
fn figures() -> Vec<(usize, &'static Workload, &'static Figure)> {
    WORKLOADS
        .iter()
        .enumerate()
        .flat_map(|(w, workload)| workload.figures.iter().map(move |f| (w, workload, f)))
        .collect()
}

fn index_of(id: &str) -> usize {
    CONTESTANTS
        .iter()
        .position(|c| c.id == id)
        .expect("known contestant id")
}

fn workload_index(id: &str) -> usize {
    WORKLOADS
        .iter()
        .position(|w| w.id == id)
        .expect("known workload id")
}

/// The ratio of `subject` to `reference` on one figure, oriented so that > 1 means the
/// subject is better. `Err` says why there is none.
fn ratio(
    results: &Results,
    subject: usize,
    reference: usize,
    w: usize,
    figure: &Figure,
) -> Result<f64, String> {
    let a = results.cell(subject, w);
    let b = results.cell(reference, w);
    let (Some(sa), Some(sb)) = (a.stats(figure.key), b.stats(figure.key)) else {
        return Err(missing(results, subject, w)
            .or_else(|| missing(results, reference, w))
            .unwrap_or_else(|| "not measured".into()));
    };
    if figure.size_bound && a.size() != b.size() {
        return Err("sizes differ".into());
    }
    if sa.median <= 0.0 || sb.median <= 0.0 {
        return Err("zero".into());
    }
    Ok(match figure.better {
        Better::Higher => sa.median / sb.median,
        Better::Lower => sb.median / sa.median,
    })
}

/// Why a contestant has no figure for workload `w`, if it has none.
fn missing(results: &Results, contestant: usize, w: usize) -> Option<String> {
    let name = CONTESTANTS[contestant].name;
    match results.cell(contestant, w) {
        Cell::Measured { .. } => None,
        Cell::NotApplicable(_) => Some(format!("{name}: n/a")),
        Cell::Absent(_) => Some(format!("{name} absent")),
        Cell::Failed(_) => Some(format!("{name} failed")),
        Cell::Skipped => Some(format!("{name} not run")),
    }
}

/// One evaluated target.
struct Target {
    target: String,
    measured: String,
    verdict: String,
}

fn verdict(met: bool) -> String {
    if met {
        "met".into()
    } else {
        "**not met**".into()
    }
}

fn ratio_target(
    results: &Results,
    subject: usize,
    reference: &str,
    workload: &str,
    at_least: f64,
    label: &str,
) -> Target {
    figure_target(
        results, subject, reference, workload, "rate", at_least, label,
    )
}

/// `figure_key` of `workload`: subject ÷ reference (oriented) at least `at_least`.
fn figure_target(
    results: &Results,
    subject: usize,
    reference: &str,
    workload: &str,
    figure_key: &str,
    at_least: f64,
    label: &str,
) -> Target {
    let w = workload_index(workload);
    let figure = WORKLOADS[w]
        .figures
        .iter()
        .find(|f| f.key == figure_key)
        .unwrap_or(&WORKLOADS[w].figures[0]);
    let target = format!(
        "{label} ≥ {at_least:.1}× {}",
        CONTESTANTS[index_of(reference)].name
    );
    match ratio(results, subject, index_of(reference), w, figure) {
        Ok(r) => Target {
            target,
            measured: format!("{r:.2}×"),
            verdict: verdict(r >= at_least),
        },
        Err(why) => Target {
            target,
            measured: "–".into(),
            verdict: format!("not measured ({why})"),
        },
    }
}

fn best_peer_target(results: &Results, subject: usize, workload: &str, label: &str) -> Target {
    let w = workload_index(workload);
    let figure = &WORKLOADS[w].figures[0];
    let target = format!("{label} ≥ 1.0× the best of actix, ractor, kameo");
    let best = ["actix", "ractor", "kameo"]
        .iter()
        .filter_map(|id| {
            let i = index_of(id);
            results.cell(i, w).stats(figure.key).map(|s| (i, s.median))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let Some((best, _)) = best else {
        return Target {
            target,
            measured: "–".into(),
            verdict: "not measured (no peer measured)".into(),
        };
    };
    match ratio(results, subject, best, w, figure) {
        Ok(r) => Target {
            target,
            measured: format!("{r:.2}× (best: {})", CONTESTANTS[best].name),
            verdict: verdict(r >= 1.0),
        },
        Err(why) => Target {
            target,
            measured: "–".into(),
            verdict: format!("not measured ({why})"),
        },
    }
}

/// An absolute floor on the median of `figure_key` of `workload`.
fn floor_target(
    results: &Results,
    subject: usize,
    workload: &str,
    figure_key: &str,
    at_least: f64,
    label: &str,
) -> Target {
    let w = workload_index(workload);
    let unit = WORKLOADS[w]
        .figures
        .iter()
        .find(|f| f.key == figure_key)
        .map_or("", |f| f.unit);
    let target = format!("{label} ≥ {}", value(at_least, unit));
    match results.cell(subject, w).stats(figure_key) {
        Some(s) => Target {
            target,
            measured: value(s.median, unit),
            verdict: verdict(s.median >= at_least),
        },
        None => Target {
            target,
            measured: "–".into(),
            verdict: format!(
                "not measured ({})",
                missing(results, subject, w).unwrap_or_default()
            ),
        },
    }
}

/// The targets of the multi-process bases (issue 3): against raw sockets and fork+exec, and
/// every figure at least 10× Python Thespian's base of the same transport.
fn cross_process_targets(results: &Results, subject: usize, scope: Scope) -> Vec<Target> {
    let (python, mut list) = match scope {
        Scope::Tcp => (
            "py-tcp",
            vec![
                ratio_target(
                    results,
                    subject,
                    "raw-net",
                    "tcp-ping-pong",
                    0.9,
                    "TCP ping-pong across processes",
                ),
                floor_target(
                    results,
                    subject,
                    "tcp-tell-16b",
                    "rate",
                    10e6,
                    "TCP one-way tell 16 B",
                ),
                figure_target(
                    results,
                    subject,
                    "raw-net",
                    "tcp-tell-64k",
                    "mb_s",
                    0.9,
                    "TCP one-way tell 64 KiB (bandwidth)",
                ),
                ratio_target(
                    results,
                    subject,
                    "raw-net",
                    "tcp-ask",
                    0.5,
                    "ask from another process (rate)",
                ),
                ratio_target(
                    results,
                    subject,
                    "raw-net",
                    "tcp-create",
                    0.5,
                    "actor process creation",
                ),
            ],
        ),
        _ => (
            "py-udp",
            vec![
                ratio_target(
                    results,
                    subject,
                    "raw-net",
                    "udp-ping-pong",
                    0.9,
                    "UDP ping-pong across processes",
                ),
                ratio_target(
                    results,
                    subject,
                    "raw-net",
                    "udp-tell-16b",
                    0.5,
                    "UDP one-way tell 16 B",
                ),
            ],
        ),
    };
    for (_, workload, figure) in figures() {
        if workload.scope == scope && figure.key != "mb_s" {
            list.push(figure_target(
                results,
                subject,
                python,
                workload.id,
                figure.key,
                10.0,
                figure.label,
            ));
        }
    }
    list
}

fn targets(results: &Results, subject: usize) -> Vec<Target> {
    match CONTESTANTS[subject].scopes.first() {
        Some(&scope) if scope.cross_process() => {
            return cross_process_targets(results, subject, scope)
        }
        _ => {}
    }
    let mut list = vec![
        ratio_target(
            results,
            subject,
            "actix",
            "tell-16b",
            1.0,
            "one-way tell 16 B",
        ),
        ratio_target(
            results,
            subject,
            "raw",
            "tell-16b",
            0.8,
            "one-way tell 16 B",
        ),
        ratio_target(
            results,
            subject,
            "actix",
            "tell-64k",
            1.0,
            "one-way tell 64 KiB",
        ),
        ratio_target(
            results,
            subject,
            "raw",
            "tell-64k",
            0.8,
            "one-way tell 64 KiB",
        ),
        best_peer_target(results, subject, "ping-pong", "ping-pong, 1 pair"),
        best_peer_target(
            results,
            subject,
            "ping-pong-cores",
            "ping-pong, one pair per core",
        ),
    ];
    let sky = workload_index("skynet");
    let cell = results.cell(subject, sky);
    let target = "SkyNet 1 M in under 0.5 s".to_owned();
    list.push(match (cell.stats("seconds"), cell.size()) {
        (Some(s), Some(1_000_000)) => Target {
            target,
            measured: value(s.median, "s"),
            verdict: verdict(s.median < 0.5),
        },
        (Some(s), Some(size)) => Target {
            target,
            measured: format!("{} at {} leaves", value(s.median, "s"), count(size as f64)),
            verdict: "not measured at 1 M".into(),
        },
        _ => Target {
            target,
            measured: "–".into(),
            verdict: format!(
                "not measured ({})",
                missing(results, subject, sky).unwrap_or_default()
            ),
        },
    });
    let rate = &WORKLOADS[sky].figures[1];
    let kameo = index_of("kameo");
    let target = "SkyNet spawn rate ≥ 4× kameo's".to_owned();
    list.push(match ratio(results, subject, kameo, sky, rate) {
        Ok(r) => Target {
            target,
            measured: format!("{r:.2}×"),
            verdict: verdict(r >= 4.0),
        },
        Err(why) => Target {
            target,
            measured: "–".into(),
            verdict: format!("not measured ({why})"),
        },
    });
    let idle = workload_index("idle");
    let target = "≤ 256 bytes per idle actor".to_owned();
    list.push(match results.cell(subject, idle).stats("bytes") {
        Some(s) => Target {
            target,
            measured: value(s.median, "B"),
            verdict: verdict(s.median <= 256.0),
        },
        None => Target {
            target,
            measured: "–".into(),
            verdict: format!(
                "not measured ({})",
                missing(results, subject, idle).unwrap_or_default()
            ),
        },
    });
    list.push(ratio_target(
        results,
        subject,
        "raw",
        "ask",
        0.5,
        "ask from outside (rate)",
    ));
    list
}

// ---------------------------------------------------------------------------------------------
// Markdown.

fn present(results: &Results) -> Vec<usize> {
    (0..CONTESTANTS.len())
        .filter(|&c| (0..WORKLOADS.len()).any(|w| !matches!(results.cell(c, w), Cell::Skipped)))
        .collect()
}

fn cell_text(results: &Results, c: usize, w: usize, figure: &Figure) -> String {
    let cell = results.cell(c, w);
    match cell {
        Cell::Measured { size, .. } => match cell.stats(figure.key) {
            Some(Stats { median, min, max }) => {
                let odd_size = *size != WORKLOADS[w].size(CONTESTANTS[c].class, results.quick)
                    || (CONTESTANTS[c].class != crate::bench::Class::Rust
                        && *size != WORKLOADS[w].size(crate::bench::Class::Rust, results.quick));
                format!(
                    "**{}**{} [{}–{}]",
                    number(median, figure.unit),
                    if odd_size { "†" } else { "" },
                    number(min, figure.unit),
                    number(max, figure.unit)
                )
            }
            None => "–".into(),
        },
        Cell::NotApplicable(_) => "n/a".into(),
        Cell::Absent(_) => "absent".into(),
        Cell::Failed(_) => "failed".into(),
        Cell::Skipped => "".into(),
    }
}

fn markdown(results: &Results) -> String {
    let mut md = String::new();
    let shown = present(results);
    let _ = writeln!(md, "# thespian-rs benchmark results\n");
    let _ = writeln!(
        md,
        "- command: `{}`{}\n- commit: `{}`{}\n- started: {} (took {:.0} s)\n- machine: {}\n- method: each workload of each contestant in its own process; {} run(s) per figure, shown as **median** [min–max]\n- allocator: {}\n",
        results.command,
        if results.quick {
            " (quick mode: small sizes, thespian-rs only; not a measurement to quote)"
        } else {
            ""
        },
        results.commit,
        if results.changed.is_empty() {
            String::new()
        } else {
            format!(
                " (built from the working tree; tracked files changed since the commit: {})",
                results
                    .changed
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        results.started,
        results.duration.as_secs_f64(),
        results.machine,
        results.runs,
        ALLOCATOR
    );

    let _ = writeln!(md, "## Contestants\n");
    let _ = writeln!(md, "| contestant | what | status |\n|---|---|---|");
    for &c in &shown {
        let status = match results.absent.get(&c) {
            Some(why) => format!("**absent**: {}", escape_md(why)),
            None => "present".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            CONTESTANTS[c].name, CONTESTANTS[c].what, status
        );
    }

    let _ = writeln!(md, "\n## Results\n");
    let sections = [
        (false, "In one process", ""),
        (
            true,
            "Across processes (TCP and UDP on 127.0.0.1)",
            "Each actor in its own OS process; the program (the outside) is another process. thespian-rs and Python Thespian run with an admin daemon; raw sockets is the bench process and one helper process. One-way tell: at most 1,024 messages unacknowledged over TCP (the TCP transport's per-peer send budget), 128 over UDP (the UDP transport's send window), an acknowledgement every quarter window; MB/s counts payload bytes.\n",
        ),
    ];
    for (cross, title, intro) in sections {
        let in_section = |w: &Workload| w.scope.cross_process() == cross;
        let columns: Vec<usize> = shown
            .iter()
            .copied()
            .filter(|&c| {
                WORKLOADS
                    .iter()
                    .enumerate()
                    .any(|(w, k)| in_section(k) && !matches!(results.cell(c, w), Cell::Skipped))
            })
            .collect();
        if columns.is_empty() {
            continue;
        }
        let _ = writeln!(md, "### {title}\n");
        if !intro.is_empty() {
            let _ = writeln!(md, "{intro}");
        }
        let _ = write!(md, "| figure | unit |");
        for &c in &columns {
            let _ = write!(md, " {} |", CONTESTANTS[c].name);
        }
        let _ = write!(md, "\n|---|---|");
        for _ in &columns {
            let _ = write!(md, "---|");
        }
        md.push('\n');
        for (w, workload, figure) in figures() {
            if !in_section(workload)
                || columns
                    .iter()
                    .all(|&c| matches!(results.cell(c, w), Cell::Skipped))
            {
                continue;
            }
            let better = match figure.better {
                Better::Higher => "↑",
                Better::Lower => "↓",
            };
            let _ = write!(md, "| {} {better} | {} |", figure.label, figure.unit);
            for &c in &columns {
                let text = if CONTESTANTS[c].runs(workload) {
                    cell_text(results, c, w, figure)
                } else {
                    "".into()
                };
                let _ = write!(md, " {text} |");
            }
            md.push('\n');
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "↑ higher is better, ↓ lower is better. † measured at another size than the Rust contestants (see Sizes): rates and bytes per actor compare, total times do not.\n"
    );

    // Why cells are n/a, absent or failed.
    let mut notes = Vec::new();
    for &c in &shown {
        for (w, workload) in WORKLOADS.iter().enumerate() {
            let note = match results.cell(c, w) {
                Cell::Measured { runs, hung, .. } if *hung > 0 => {
                    let done = runs.values().map(Vec::len).max().unwrap_or(0);
                    let why = if CONTESTANTS[c].class == Class::PyQueue {
                        " (multiprocQueueBase freeze, cf. kquick/Thespian#91)"
                    } else {
                        ""
                    };
                    format!(
                        "{hung} attempt(s) hung and were killed{why}; figures from the {done} run(s) that finished"
                    )
                }
                Cell::NotApplicable(why) => format!("n/a: {why}"),
                Cell::Failed(why) => format!("failed: {why}"),
                Cell::Absent(why) if !results.absent.contains_key(&c) => format!("absent: {why}"),
                _ => continue,
            };
            notes.push(format!(
                "- {} · {}: {}",
                CONTESTANTS[c].name,
                workload.id,
                escape_md(&note)
            ));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "Notes:\n\n{}\n", notes.join("\n"));
    }

    let _ = writeln!(md, "## Sizes\n");
    let _ = writeln!(
        md,
        "| workload | counts | Rust contestants | Python simpleSystemBase | Python multiprocQueueBase | Python multiprocTCPBase / multiprocUDPBase |\n|---|---|---|---|---|---|"
    );
    for workload in WORKLOADS {
        let rust = if results.quick {
            workload.sizes.quick
        } else {
            workload.sizes.rust
        };
        if rust == 0 {
            continue; // Not part of a quick run.
        }
        let py = |n: u64| {
            if n == 0 {
                "n/a".to_owned()
            } else {
                count(n as f64)
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            workload.id,
            workload.size_unit,
            count(rust as f64),
            py(workload.sizes.py_simple),
            py(workload.sizes.py_queue),
            py(workload.sizes.py_net)
        );
    }
    let _ = writeln!(
        md,
        "\nPython Thespian is measured at smaller sizes so that a full run stays within minutes; SkyNet at 1 M leaves would take minutes per run on `simpleSystemBase` and fork 1,111,111 processes on `multiprocQueueBase`.\n"
    );

    let subjects: Vec<usize> = shown
        .iter()
        .copied()
        .filter(|&c| CONTESTANTS[c].subject)
        .collect();
    let references: Vec<usize> = shown
        .iter()
        .copied()
        .filter(|&c| !CONTESTANTS[c].subject)
        .collect();
    for &s in &subjects {
        let name = CONTESTANTS[s].name;
        let _ = writeln!(md, "## {name}: ratios\n");
        if let Some(why) = results.absent.get(&s) {
            let _ = writeln!(md, "{name} is absent: {}\n", escape_md(why));
            continue;
        }
        let subject = &CONTESTANTS[s];
        let references: Vec<usize> = references
            .iter()
            .copied()
            .filter(|&r| {
                CONTESTANTS[r]
                    .scopes
                    .iter()
                    .any(|x| subject.scopes.contains(x))
            })
            .collect();
        if !references.is_empty() {
            let _ = writeln!(
                md,
                "{name} ÷ reference, oriented so that > 1.00× means {name} is better (for ↓ figures the inverse ratio).\n"
            );
            let _ = write!(md, "| figure |");
            for &r in &references {
                let _ = write!(md, " vs {} |", CONTESTANTS[r].name);
            }
            let _ = write!(md, "\n|---|");
            for _ in &references {
                let _ = write!(md, "---|");
            }
            md.push('\n');
            for (w, workload, figure) in figures() {
                if !subject.runs(workload) || matches!(results.cell(s, w), Cell::Skipped) {
                    continue;
                }
                let _ = write!(md, "| {} |", figure.label);
                for &r in &references {
                    if !CONTESTANTS[r].runs(workload) {
                        let _ = write!(md, " – |");
                        continue;
                    }
                    let text = match ratio(results, s, r, w, figure) {
                        Ok(x) => format!("{x:.2}×"),
                        Err(_) => "–".into(),
                    };
                    let _ = write!(md, " {text} |");
                }
                md.push('\n');
            }
            md.push('\n');
        }
        let _ = writeln!(md, "Targets (issues 3, 4, 5 and 15) for {name}:\n");
        let _ = writeln!(md, "| target | measured | verdict |\n|---|---|---|");
        for t in targets(results, s) {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                t.target,
                t.measured,
                escape_md(&t.verdict)
            );
        }
        md.push('\n');
    }
    if let Some(earlier) = &results.baseline {
        comparison(&mut md, results, earlier);
    }
    md
}

/// The section that compares this run with `--baseline`'s.
fn comparison(md: &mut String, results: &Results, earlier: &baseline::Baseline) {
    let compared = baseline::compare(results, earlier);
    let _ = writeln!(md, "## Against the baseline ({})\n", earlier.label);
    let slower: Vec<&baseline::Compared> = compared
        .iter()
        .filter(|x| x.verdict == Verdict::SlowerBeyondSpread)
        .collect();
    let subjects_slower = slower
        .iter()
        .filter(|x| CONTESTANTS[x.contestant].subject)
        .count();
    let _ = writeln!(
        md,
        "{} figure(s) compared; slower than the baseline by more than this run's min–max spread: {} of thespian-rs, {} of the references (a reference that moved shows the machine, not the code).\n",
        compared.len(),
        subjects_slower,
        slower.len() - subjects_slower
    );
    let _ = writeln!(
        md,
        "| figure | contestant | baseline | this run | change | verdict |\n|---|---|---|---|---|---|"
    );
    for x in &compared {
        let figure = &WORKLOADS[x.workload].figures[x.figure];
        let verdict = match x.verdict {
            Verdict::SlowerBeyondSpread => "**slower beyond the spread**",
            Verdict::SlowerWithinSpread => "slower within the spread",
            Verdict::NotSlower => "not slower",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2}× | {verdict} |",
            figure.label,
            CONTESTANTS[x.contestant].name,
            stats_text(x.before, figure.unit),
            stats_text(x.now, figure.unit),
            x.change
        );
    }
    md.push('\n');
}

fn stats_text(s: Stats, unit: &str) -> String {
    format!(
        "{} [{}–{}]",
        value(s.median, unit),
        number(s.min, unit),
        number(s.max, unit)
    )
}

fn escape_md(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

// ---------------------------------------------------------------------------------------------
// JSON.

fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn json(results: &Results) -> String {
    let shown = present(results);
    let mut j = String::new();
    j.push_str("{\n");
    let _ = writeln!(j, "  \"command\": {},", json_str(&results.command));
    let _ = writeln!(j, "  \"commit\": {},", json_str(&results.commit));
    let changed: Vec<String> = results.changed.iter().map(|f| json_str(f)).collect();
    let _ = writeln!(j, "  \"changed_files\": [{}],", changed.join(", "));
    let _ = writeln!(j, "  \"started\": {},", json_str(&results.started));
    let _ = writeln!(
        j,
        "  \"duration_s\": {},",
        json_num(results.duration.as_secs_f64())
    );
    let _ = writeln!(j, "  \"quick\": {},", results.quick);
    let _ = writeln!(j, "  \"runs\": {},", results.runs);
    let _ = writeln!(j, "  \"machine\": {},", json_str(&results.machine));
    let _ = writeln!(j, "  \"allocator\": {},", json_str(ALLOCATOR));
    j.push_str("  \"contestants\": [\n");
    let items: Vec<String> = shown
        .iter()
        .map(|&c| {
            let k = &CONTESTANTS[c];
            format!(
                "    {{\"id\": {}, \"name\": {}, \"what\": {}, \"subject\": {}, \"absent\": {}}}",
                json_str(k.id),
                json_str(k.name),
                json_str(k.what),
                k.subject,
                results
                    .absent
                    .get(&c)
                    .map_or("null".into(), |why| json_str(why))
            )
        })
        .collect();
    let _ = writeln!(j, "{}\n  ],", items.join(",\n"));
    j.push_str("  \"workloads\": [\n");
    let mut workloads = Vec::new();
    for (w, workload) in WORKLOADS.iter().enumerate() {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "    {{\n      \"id\": {},\n      \"title\": {},\n      \"size_unit\": {},",
            json_str(workload.id),
            json_str(workload.title),
            json_str(workload.size_unit)
        );
        let figs: Vec<String> = workload
            .figures
            .iter()
            .map(|f| {
                format!(
                    "{{\"key\": {}, \"label\": {}, \"unit\": {}, \"better\": {}}}",
                    json_str(f.key),
                    json_str(f.label),
                    json_str(f.unit),
                    json_str(match f.better {
                        Better::Higher => "higher",
                        Better::Lower => "lower",
                    })
                )
            })
            .collect();
        let _ = writeln!(s, "      \"figures\": [{}],", figs.join(", "));
        s.push_str("      \"results\": {");
        let mut cells = Vec::new();
        for &c in &shown {
            let cell = results.cell(c, w);
            let body = match cell {
                Cell::Measured { size, runs, hung } => {
                    let figs: Vec<String> = runs
                        .iter()
                        .map(|(k, values)| {
                            let stats = Stats::of(values);
                            let list: Vec<String> = values.iter().map(|v| json_num(*v)).collect();
                            format!(
                                "{}: {{\"median\": {}, \"min\": {}, \"max\": {}, \"runs\": [{}]}}",
                                json_str(k),
                                stats.map_or("null".into(), |s| json_num(s.median)),
                                stats.map_or("null".into(), |s| json_num(s.min)),
                                stats.map_or("null".into(), |s| json_num(s.max)),
                                list.join(", ")
                            )
                        })
                        .collect();
                    format!(
                        "{{\"status\": \"measured\", \"size\": {size}, \"hung_attempts\": {hung}, \"figures\": {{{}}}}}",
                        figs.join(", ")
                    )
                }
                Cell::NotApplicable(why) => {
                    format!("{{\"status\": \"n/a\", \"reason\": {}}}", json_str(why))
                }
                Cell::Absent(why) => {
                    format!("{{\"status\": \"absent\", \"reason\": {}}}", json_str(why))
                }
                Cell::Failed(why) => {
                    format!("{{\"status\": \"failed\", \"reason\": {}}}", json_str(why))
                }
                Cell::Skipped => continue,
            };
            cells.push(format!(
                "\n        {}: {}",
                json_str(CONTESTANTS[c].id),
                body
            ));
        }
        s.push_str(&cells.join(","));
        s.push_str("\n      }\n    }");
        workloads.push(s);
    }
    let _ = writeln!(j, "{}\n  ],", workloads.join(",\n"));
    j.push_str("  \"targets\": {");
    let mut subjects = Vec::new();
    for &s in shown.iter().filter(|&&c| CONTESTANTS[c].subject) {
        if results.absent.contains_key(&s) {
            continue;
        }
        let list: Vec<String> = targets(results, s)
            .iter()
            .map(|t| {
                format!(
                    "\n      {{\"target\": {}, \"measured\": {}, \"verdict\": {}}}",
                    json_str(&t.target),
                    json_str(&t.measured),
                    json_str(&t.verdict.replace("**", ""))
                )
            })
            .collect();
        subjects.push(format!(
            "\n    {}: [{}\n    ]",
            json_str(CONTESTANTS[s].id),
            list.join(",")
        ));
    }
    j.push_str(&subjects.join(","));
    j.push_str("\n  }\n}\n");
    j
}

// ---------------------------------------------------------------------------------------------
// SVG chart: one panel per figure, one bar per contestant, log scale.

const COLOURS: &[&str] = &[
    "#d62728", "#ff7f0e", "#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
    "#b2182b", "#ef8a62", "#404040", "#17becf", "#bcbd22",
];

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn svg(results: &Results) -> String {
    let shown = present(results);
    let width = 960.0;
    let label_w = 190.0;
    let value_w = 170.0;
    let bar_max = width - label_w - value_w - 20.0;
    let row = 18.0;
    let mut body = String::new();
    let mut y = 50.0;
    for (w, _, figure) in figures() {
        if shown
            .iter()
            .all(|&c| matches!(results.cell(c, w), Cell::Skipped))
        {
            continue;
        }
        let bars: Vec<(usize, Stats, bool)> = shown
            .iter()
            .filter_map(|&c| {
                let cell = results.cell(c, w);
                cell.stats(figure.key).map(|s| {
                    let odd = cell.size()
                        != Some(WORKLOADS[w].size(crate::bench::Class::Rust, results.quick));
                    (c, s, odd)
                })
            })
            .collect();
        let direction = match figure.better {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
        };
        let _ = writeln!(
            body,
            "<text x=\"10\" y=\"{y}\" class=\"h\">{} ({}; {direction}; log scale)</text>",
            xml(figure.label),
            xml(figure.unit)
        );
        y += 8.0;
        if bars.is_empty() {
            y += row;
            let _ = writeln!(
                body,
                "<text x=\"{label_w}\" y=\"{y}\" class=\"n\">no measurement</text>"
            );
            y += 14.0;
            continue;
        }
        let max = bars.iter().map(|b| b.1.median).fold(f64::MIN, f64::max);
        let min = bars.iter().map(|b| b.1.median).fold(f64::MAX, f64::min);
        // Log scale from a decade below the smallest value to the largest.
        let lo = (min.max(1e-9) / 10.0).log10();
        let hi = max.max(1e-9).log10().max(lo + 1.0);
        for (c, stats, odd) in bars {
            let len = ((stats.median.max(1e-9).log10() - lo) / (hi - lo) * bar_max).max(1.0);
            let colour = COLOURS[c % COLOURS.len()];
            let _ = writeln!(
                body,
                "<text x=\"{}\" y=\"{}\" class=\"l\">{}</text><rect x=\"{label_w}\" y=\"{}\" width=\"{len:.1}\" height=\"{}\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\" class=\"v\">{}{}</text>",
                label_w - 6.0,
                y + row - 5.0,
                xml(CONTESTANTS[c].name),
                y + 3.0,
                row - 4.0,
                label_w + len + 6.0,
                y + row - 5.0,
                xml(&value(stats.median, figure.unit)),
                if odd { " †" } else { "" }
            );
            y += row;
        }
        y += 22.0;
    }
    let height = y + 10.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        svg,
        "<style>.t{{font-size:16px;font-weight:bold}}.h{{font-weight:bold}}.l{{text-anchor:end}}.v{{fill:#333}}.n{{fill:#999}}</style>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    );
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"24\" class=\"t\">thespian-rs benchmark · {} · {} · medians of {} run(s){}</text>",
        xml(&results.commit),
        xml(&results.started),
        results.runs,
        if results.quick { " · quick" } else { "" }
    );
    svg.push_str(&body);
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"{}\" class=\"n\">† measured at a smaller size (Python)</text>",
        height - 6.0
    );
    svg.push_str("</svg>\n");
    svg
}

// ---------------------------------------------------------------------------------------------
// Machine and time.

/// A one-line description of the machine.
pub(crate) fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or_else(String::new, |kb| format!(", {:.0} GiB RAM", kb / 1048576.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!(", Linux {}", s.trim()))
        .unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!(", {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}){memory}{kernel}{rustc}")
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
