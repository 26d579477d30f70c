//! A run compared with an earlier one (`--baseline`).
//!
//! Issue 15 asks that no workload get slower than before by more than the run's own min–max
//! spread. Every report therefore also writes `figures.tsv` (one line per contestant, workload
//! and figure: size, median, min, max), and `cargo xtask bench --baseline <file or directory>`
//! reads such a file from an earlier run and reports, figure by figure, the change and whether
//! it is a slowdown beyond the spread. The file is tab-separated text, so a baseline can be kept
//! or read without any JSON reader. `benches/baselines/` keeps transcribed ones (a `# label`
//! line instead of `# commit`), such as the figures an issue was filed with.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{Better, Cell, Results, Stats, CONTESTANTS, WORKLOADS};

/// The file name of the figures table beside `results.md`.
pub(crate) const FILE: &str = "figures.tsv";

const HEADER: &str = "contestant\tworkload\tfigure\tsize\tmedian\tmin\tmax";

/// One figure of an earlier run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Earlier {
    pub(crate) size: u64,
    pub(crate) stats: Stats,
}

/// The figures of an earlier run, keyed by (contestant id, workload id, figure key).
#[derive(Debug, Default)]
pub(crate) struct Baseline {
    /// Where it was read from and the commit it measured, for the report.
    pub(crate) label: String,
    pub(crate) figures: BTreeMap<(String, String, String), Earlier>,
}

/// The figures table of `results`.
pub(crate) fn tsv(results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# commit\t{}\tstarted\t{}\truns\t{}",
        results.commit, results.started, results.runs
    );
    out.push_str(HEADER);
    out.push('\n');
    for (&(c, w), cell) in &results.cells {
        let Cell::Measured { size, .. } = cell else {
            continue;
        };
        for figure in WORKLOADS[w].figures {
            if let Some(s) = cell.stats(figure.key) {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{size}\t{}\t{}\t{}",
                    CONTESTANTS[c].id, WORKLOADS[w].id, figure.key, s.median, s.min, s.max
                );
            }
        }
    }
    out
}

/// Reads a baseline: `path` is a `figures.tsv` or a directory holding one.
pub(crate) fn read(path: &Path) -> Result<Baseline, String> {
    let file: PathBuf = if path.is_dir() {
        path.join(FILE)
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read the baseline {}: {e}", file.display()))?;
    parse(&text).map_err(|e| format!("baseline {}: {e}", file.display()))
}

/// Parses the text of a `figures.tsv`.
pub(crate) fn parse(text: &str) -> Result<Baseline, String> {
    let mut baseline = Baseline::default();
    let mut header_seen = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if let Some(meta) = line.strip_prefix("# ") {
            // `# commit <hash> ...` (a run's own file) or `# label <text>` (a transcribed one).
            let fields: Vec<&str> = meta.split('\t').collect();
            match fields[..] {
                ["commit", commit, ..] => baseline.label = format!("commit `{commit}`"),
                ["label", label, ..] => baseline.label = label.to_owned(),
                _ => {}
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if line == HEADER {
            header_seen = true;
            continue;
        }
        if !header_seen {
            return Err(format!("line {}: no header line before the figures", n + 1));
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [contestant, workload, figure, size, median, min, max] = fields[..] else {
            return Err(format!("line {}: expected 7 fields", n + 1));
        };
        let number = |s: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("line {}: bad number {s:?}", n + 1))
        };
        let size = size
            .parse::<u64>()
            .map_err(|_| format!("line {}: bad size {size:?}", n + 1))?;
        baseline.figures.insert(
            (
                contestant.to_owned(),
                workload.to_owned(),
                figure.to_owned(),
            ),
            Earlier {
                size,
                stats: Stats {
                    median: number(median)?,
                    min: number(min)?,
                    max: number(max)?,
                },
            },
        );
    }
    if !header_seen {
        return Err("no header line".into());
    }
    Ok(baseline)
}

/// How one figure moved against the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// Worse by more than this run's min–max spread.
    SlowerBeyondSpread,
    /// Worse, within this run's spread.
    SlowerWithinSpread,
    /// The same or better.
    NotSlower,
}

/// `now` against `before` for a figure where `better` says which way is good: the change
/// oriented so that > 1 is better, and the verdict. A slowdown counts only when it exceeds the
/// spread of this run's own runs (`now.max − now.min`), which is the noise the run shows.
pub(crate) fn judge(better: Better, before: Stats, now: Stats) -> (f64, Verdict) {
    let (change, worse_by) = match better {
        Better::Higher => (now.median / before.median, before.median - now.median),
        Better::Lower => (before.median / now.median, now.median - before.median),
    };
    let verdict = if worse_by <= 0.0 {
        Verdict::NotSlower
    } else if worse_by > now.max - now.min {
        Verdict::SlowerBeyondSpread
    } else {
        Verdict::SlowerWithinSpread
    };
    (change, verdict)
}

/// One compared figure.
pub(crate) struct Compared {
    pub(crate) contestant: usize,
    pub(crate) workload: usize,
    pub(crate) figure: usize,
    pub(crate) before: Stats,
    pub(crate) now: Stats,
    pub(crate) change: f64,
    pub(crate) verdict: Verdict,
}

/// Every figure measured both in `results` and in `baseline` (at the same size where the
/// figure depends on it), in report order.
pub(crate) fn compare(results: &Results, baseline: &Baseline) -> Vec<Compared> {
    let mut list = Vec::new();
    for (&(c, w), cell) in &results.cells {
        let Cell::Measured { size, .. } = cell else {
            continue;
        };
        for (f, figure) in WORKLOADS[w].figures.iter().enumerate() {
            let key = (
                CONTESTANTS[c].id.to_owned(),
                WORKLOADS[w].id.to_owned(),
                figure.key.to_owned(),
            );
            let (Some(now), Some(earlier)) = (cell.stats(figure.key), baseline.figures.get(&key))
            else {
                continue;
            };
            if figure.size_bound && earlier.size != *size {
                continue;
            }
            let (change, verdict) = judge(figure.better, earlier.stats, now);
            list.push(Compared {
                contestant: c,
                workload: w,
                figure: f,
                before: earlier.stats,
                now,
                change,
                verdict,
            });
        }
    }
    list.sort_by_key(|x| (x.workload, x.figure, x.contestant));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(median: f64, min: f64, max: f64) -> Stats {
        Stats { median, min, max }
    }

    #[test]
    fn a_drop_beyond_the_spread_is_a_slowdown() {
        let before = stats(100.0, 95.0, 105.0);
        let (change, verdict) = judge(Better::Higher, before, stats(80.0, 78.0, 85.0));
        assert_eq!(verdict, Verdict::SlowerBeyondSpread);
        assert!((change - 0.8).abs() < 1e-9);
        let (_, verdict) = judge(Better::Higher, before, stats(90.0, 80.0, 95.0));
        assert_eq!(verdict, Verdict::SlowerWithinSpread);
        let (_, verdict) = judge(Better::Higher, before, stats(120.0, 119.0, 121.0));
        assert_eq!(verdict, Verdict::NotSlower);
    }

    #[test]
    fn for_a_time_more_is_slower() {
        let before = stats(1.0, 0.9, 1.1);
        let (change, verdict) = judge(Better::Lower, before, stats(2.0, 1.9, 2.1));
        assert_eq!(verdict, Verdict::SlowerBeyondSpread);
        assert!((change - 0.5).abs() < 1e-9);
        let (_, verdict) = judge(Better::Lower, before, stats(0.5, 0.4, 0.6));
        assert_eq!(verdict, Verdict::NotSlower);
    }

    #[test]
    fn the_table_reads_back() {
        let text = "# commit\tabc1234\tstarted\tthen\truns\t5\n\
                    contestant\tworkload\tfigure\tsize\tmedian\tmin\tmax\n\
                    thespian-queue\tping-pong\trate\t200000\t3300000\t3200000\t3400000\n";
        let baseline = parse(text).expect("parses");
        assert_eq!(baseline.label, "commit `abc1234`");
        let labelled = format!("# label\tthe start\n{HEADER}\n");
        assert_eq!(parse(&labelled).expect("parses").label, "the start");
        let key = ("thespian-queue".into(), "ping-pong".into(), "rate".into());
        assert_eq!(
            baseline.figures.get(&key),
            Some(&Earlier {
                size: 200_000,
                stats: stats(3.3e6, 3.2e6, 3.4e6)
            })
        );
    }

    #[test]
    fn the_kept_baselines_parse() {
        let dir = crate::root().join("benches").join("baselines");
        for entry in std::fs::read_dir(&dir).expect("benches/baselines exists") {
            let path = entry.expect("entry").path();
            let baseline = read(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !baseline.label.is_empty(),
                "{} has no label",
                path.display()
            );
            for (contestant, workload, figure) in baseline.figures.keys() {
                assert!(
                    CONTESTANTS.iter().any(|c| c.id == contestant),
                    "{contestant}"
                );
                let w = WORKLOADS
                    .iter()
                    .find(|w| w.id == workload)
                    .expect("workload");
                assert!(
                    w.figures.iter().any(|f| f.key == figure),
                    "{workload} {figure}"
                );
            }
        }
    }

    #[test]
    fn a_damaged_table_is_refused_with_its_line() {
        assert!(parse("thespian-queue\tping-pong\trate\t1\t1\t1\t1\n")
            .unwrap_err()
            .contains("no header"));
        let text = format!("{HEADER}\nthespian-queue\tping-pong\trate\t1\tNaN\t1\t1\n");
        assert!(parse(&text).unwrap_err().contains("line 2"));
        let text = format!("{HEADER}\nthespian-queue\tping-pong\n");
        assert!(parse(&text).unwrap_err().contains("7 fields"));
    }
}
