//! `thespian top`: a live view of a system, refreshed every second.
//!
//! Split in three so the view can be tested without a terminal or a clock: a [`Sample`] is
//! what one refresh learned (the system's status, each actor's status, each local process's
//! CPU time and memory); [`TopView::from_samples`] turns two samples into rows and rates (pure);
//! [`render`] draws a view into any ratatui frame (a real terminal, or a `TestBackend` in
//! tests). [`run_terminal`] is the thin loop around them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use ratatui::Frame;
use thespian::{ActorAddress, ActorStatus, SystemStatus};

use crate::args::TopArgs;
use crate::session::Session;
use crate::CliResult;

/// CPU time and memory of one process, read from `/proc`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time so far, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in KiB.
    pub rss_kib: u64,
}

/// What one refresh learned.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// The system's status.
    pub system: SystemStatus,
    /// The actors' own statuses (those that answered).
    pub actors: HashMap<ActorAddress, ActorStatus>,
    /// The system's processes on this host (the admin's included), by process id.
    pub processes: BTreeMap<u32, ProcessStats>,
}

/// One row per actor type.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeRow {
    /// The type name.
    pub actor_type: String,
    /// Live actors of the type.
    pub actors: usize,
    /// Messages they handled per second since the previous sample.
    pub messages_per_second: f64,
    /// Messages waiting in their mailboxes.
    pub mailbox: usize,
    /// Their failed attempts so far.
    pub failures: u64,
}

/// One row per process.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessRow {
    /// The process id.
    pub pid: u32,
    /// Actors it hosts.
    pub actors: usize,
    /// CPU use since the previous sample, in percent of one core (`None`: not readable here).
    pub cpu_percent: Option<f64>,
    /// Resident memory in KiB (`None`: not readable here).
    pub rss_kib: Option<u64>,
}

/// Everything one screen shows.
#[derive(Clone, Debug, PartialEq)]
pub struct TopView {
    /// The header line.
    pub title: String,
    /// Live actors.
    pub actors: usize,
    /// Messages per second, all actors.
    pub messages_per_second: f64,
    /// Messages waiting, all mailboxes: the system's own count where it keeps one, else the
    /// sum of the actors' mailbox depths.
    pub mailbox: usize,
    /// Dead letters so far.
    pub dead_letters: u64,
    /// `PoisonMessage`s returned to senders so far.
    pub poison: u64,
    /// Per actor type.
    pub types: Vec<TypeRow>,
    /// Per process.
    pub processes: Vec<ProcessRow>,
    /// Convention members (their admins), the leader marked.
    pub convention: Vec<String>,
}

impl TopView {
    /// The view of `current`, with rates against `previous` (none on the first sample).
    pub fn from_samples(title: &str, previous: Option<&Sample>, current: &Sample) -> TopView {
        let elapsed = previous
            .map(|p| current.at.saturating_duration_since(p.at).as_secs_f64())
            .filter(|s| *s > 0.0);
        let rate = |address: &ActorAddress, now: u64| -> f64 {
            match (previous.and_then(|p| p.actors.get(address)), elapsed) {
                (Some(before), Some(seconds)) => {
                    now.saturating_sub(before.received_messages) as f64 / seconds
                }
                _ => 0.0,
            }
        };
        let mut types: BTreeMap<&str, TypeRow> = BTreeMap::new();
        let mut per_process: BTreeMap<u32, usize> = BTreeMap::new();
        for actor in &current.system.actors {
            let row = types
                .entry(actor.actor_type.as_str())
                .or_insert_with(|| TypeRow {
                    actor_type: actor.actor_type.clone(),
                    actors: 0,
                    messages_per_second: 0.0,
                    mailbox: 0,
                    failures: 0,
                });
            row.actors += 1;
            if let Some(status) = current.actors.get(&actor.address) {
                row.messages_per_second += rate(&actor.address, status.received_messages);
                row.mailbox += status.pending_messages;
                row.failures += status.failures;
            }
            if let Some(pid) = actor.pid {
                *per_process.entry(pid).or_default() += 1;
            }
        }
        for pid in current.processes.keys() {
            per_process.entry(*pid).or_default();
        }
        let processes = per_process
            .into_iter()
            .map(|(pid, actors)| {
                let now = current.processes.get(&pid);
                let before = previous.and_then(|p| p.processes.get(&pid));
                let cpu_percent = match (now, before, elapsed) {
                    (Some(now), Some(before), Some(seconds)) => {
                        Some((now.cpu_seconds - before.cpu_seconds).max(0.0) / seconds * 100.0)
                    }
                    _ => None,
                };
                ProcessRow {
                    pid,
                    actors,
                    cpu_percent,
                    rss_kib: now.map(|s| s.rss_kib),
                }
            })
            .collect();
        let types: Vec<TypeRow> = types.into_values().collect();
        let convention = current
            .system
            .convention
            .iter()
            .flat_map(|c| c.members.iter())
            .map(|m| {
                format!(
                    "{}{}",
                    m.admin_address,
                    if m.is_leader { " (leader)" } else { "" }
                )
            })
            .collect();
        TopView {
            title: title.to_owned(),
            actors: current.system.actors.len(),
            messages_per_second: types.iter().map(|t| t.messages_per_second).sum(),
            mailbox: current.system.pending_messages.map_or_else(
                || types.iter().map(|t| t.mailbox).sum(),
                |n| usize::try_from(n).unwrap_or(usize::MAX),
            ),
            dead_letters: current.system.dead_letters,
            poison: current.system.poison_messages,
            types,
            processes,
            convention,
        }
    }
}

/// Draws `view` into `frame`.
pub fn render(frame: &mut Frame<'_>, view: &TopView) {
    let [header, types, processes, convention] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(4),
        Constraint::Min(4),
        Constraint::Length(3),
    ])
    .areas(frame.area());
    let summary = format!(
        "actors {}   messages/s {:.1}   pending {}   dead letters {}   poison {}   (q quits)",
        view.actors, view.messages_per_second, view.mailbox, view.dead_letters, view.poison
    );
    frame.render_widget(
        Paragraph::new(Line::from(summary)).block(
            Block::default()
                .borders(Borders::ALL)
                .title(view.title.as_str()),
        ),
        header,
    );
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let type_rows = view.types.iter().map(|t| {
        Row::new(vec![
            t.actor_type.clone(),
            t.actors.to_string(),
            format!("{:.1}", t.messages_per_second),
            t.mailbox.to_string(),
            t.failures.to_string(),
        ])
    });
    frame.render_widget(
        Table::new(
            type_rows,
            [
                Constraint::Fill(3),
                Constraint::Length(8),
                Constraint::Length(12),
                Constraint::Length(9),
                Constraint::Length(9),
            ],
        )
        .header(Row::new(["type", "actors", "messages/s", "mailbox", "failures"]).style(bold))
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title("Actors by type"),
        ),
        types,
    );
    let process_rows = view.processes.iter().map(|p| {
        Row::new(vec![
            p.pid.to_string(),
            p.actors.to_string(),
            p.cpu_percent.map_or("-".into(), |c| format!("{c:.1}")),
            p.rss_kib
                .map_or("-".into(), |kib| format!("{:.1}", kib as f64 / 1024.0)),
        ])
    });
    frame.render_widget(
        Table::new(
            process_rows,
            [
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Fill(1),
            ],
        )
        .header(Row::new(["pid", "actors", "cpu %", "memory MiB"]).style(bold))
        .block(Block::default().borders(Borders::ALL).title("Processes")),
        processes,
    );
    let members = if view.convention.is_empty() {
        "none".to_owned()
    } else {
        view.convention.join(", ")
    };
    frame.render_widget(
        Paragraph::new(members).block(
            Block::default()
                .borders(Borders::ALL)
                .title("Convention members"),
        ),
        convention,
    );
}

/// The CPU time and memory of process `pid` on this host, when `/proc` has it.
pub fn process_stats(pid: u32) -> Option<ProcessStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from the 3rd: utime is the 14th
    // field and stime the 15th, in clock ticks.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Some(ProcessStats {
        // /proc reports in USER_HZ, which Linux fixes at 100 for user space.
        cpu_seconds: (utime + stime) / 100.0,
        rss_kib,
    })
}

/// Takes one sample of the attached system.
pub fn sample(session: &Session) -> CliResult<Sample> {
    let system = session.status()?;
    let addresses: Vec<ActorAddress> = system.actors.iter().map(|a| a.address.clone()).collect();
    let actors = session.actor_statuses(&addresses)?;
    let mut pids: Vec<u32> = system.actors.iter().filter_map(|a| a.pid).collect();
    pids.extend(actors.values().filter_map(|s| s.pid));
    pids.sort_unstable();
    pids.dedup();
    let processes = pids
        .into_iter()
        .filter_map(|pid| process_stats(pid).map(|s| (pid, s)))
        .collect();
    Ok(Sample {
        at: Instant::now(),
        system,
        actors,
        processes,
    })
}

/// Runs the live view in the terminal until `q` (or Esc, or Ctrl-C).
pub fn run_terminal(session: &mut Session, args: &TopArgs) -> CliResult {
    let attach = session.attached_to();
    let title = format!(
        " thespian top: {} port {} ",
        attach.protocol(),
        attach.port()
    );
    // Sampled before the screen is taken, so a system that is gone fails in plain text.
    let mut previous: Option<Sample> = None;
    let mut current = sample(session)?;
    let mut terminal = ratatui::init();
    let result = (|| -> CliResult {
        loop {
            let view = TopView::from_samples(&title, previous.as_ref(), &current);
            terminal.draw(|frame| render(frame, &view))?;
            let next_at = current.at + args.interval;
            // Keys until the next refresh; each wait is bounded by the refresh period.
            loop {
                let left = next_at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                if event::poll(left.min(Duration::from_millis(250)))? {
                    if let Event::Key(key) = event::read()? {
                        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
                            && key.code == KeyCode::Char('c');
                        if key.kind == KeyEventKind::Press
                            && (matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c)
                        {
                            return Ok(());
                        }
                    }
                }
            }
            previous = Some(current);
            current = sample(session)?;
        }
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use thespian::core::SystemId;
    use thespian::ActorSummary;

    use crate::test_support::system_status;

    fn a(id: u64) -> ActorAddress {
        ActorAddress::new(SystemId::from_raw(3), id)
    }

    fn actor_status(id: u64, received: u64, mailbox: usize) -> ActorStatus {
        ActorStatus {
            actor_address: a(id),
            actor_type: String::new(),
            admin_address: a(0),
            parent_address: a(0),
            global_name: None,
            exiting: false,
            child_actors: vec![],
            pending_messages: mailbox,
            received_messages: received,
            pending_wakeups: vec![],
            failures: 0,
            pid: None,
            idle_for: None,
        }
    }

    /// A sample at `at` of actors `(type, pid, received, mailbox)`, numbered from 1.
    fn sample(at: Instant, actors: &[(u8, u32, u64, usize)]) -> Sample {
        let summaries = actors
            .iter()
            .enumerate()
            .map(|(i, (kind, pid, _, _))| ActorSummary {
                address: a(i as u64 + 1),
                actor_type: format!("T{kind}"),
                parent: a(0),
                global_name: None,
                pid: Some(*pid),
            })
            .collect();
        let system = system_status(a(0), "multiprocTCPBase", summaries);
        let statuses = actors
            .iter()
            .enumerate()
            .map(|(i, (_, _, received, mailbox))| {
                (
                    a(i as u64 + 1),
                    actor_status(i as u64 + 1, *received, *mailbox),
                )
            })
            .collect();
        Sample {
            at,
            system,
            actors: statuses,
            processes: BTreeMap::new(),
        }
    }

    /// The same cases on every run.
    fn config() -> proptest::test_runner::Config {
        proptest::test_runner::Config {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0C11_0003),
            cases: 256,
            ..proptest::test_runner::Config::default()
        }
    }

    proptest::proptest! {
        #![proptest_config(config())]

        #[test]
        fn rows_add_up_to_the_totals(
            actors in proptest::collection::vec((0u8..4, 1u32..4, 0u64..1000, 0usize..50, 0u64..1000), 0..20),
            millis in 1u64..5000,
        ) {
            let start = Instant::now();
            let before: Vec<_> = actors.iter().map(|(k, p, r, m, _)| (*k, *p, *r, *m)).collect();
            let after: Vec<_> = actors.iter().map(|(k, p, r, m, more)| (*k, *p, r + more, *m)).collect();
            let first = sample(start, &before);
            let second = sample(start + Duration::from_millis(millis), &after);
            let view = TopView::from_samples("t", Some(&first), &second);
            proptest::prop_assert_eq!(view.actors, actors.len());
            proptest::prop_assert_eq!(view.types.iter().map(|t| t.actors).sum::<usize>(), actors.len());
            proptest::prop_assert_eq!(view.processes.iter().map(|p| p.actors).sum::<usize>(), actors.len());
            proptest::prop_assert_eq!(view.mailbox, actors.iter().map(|x| x.3).sum::<usize>());
            let handled: u64 = actors.iter().map(|x| x.4).sum();
            let expected = handled as f64 / (millis as f64 / 1000.0);
            proptest::prop_assert!((view.messages_per_second - expected).abs() <= 1e-6 * expected.max(1.0));
            // The first sample has no rates.
            let alone = TopView::from_samples("t", None, &second);
            proptest::prop_assert_eq!(alone.messages_per_second, 0.0);
        }
    }

    #[test]
    fn this_process_has_stats() {
        let stats = process_stats(std::process::id()).expect("/proc has this process");
        assert!(stats.rss_kib > 0);
    }
}
