//! How the command prints a system's status, its actors and a reply: plain text meant for
//! people (the `--json` forms are serde's). Kept apart so the shell and the subcommands print
//! the same way, and so tests can read the exact text.

use std::collections::HashMap;
use std::io::{self, Write};

use thespian::{ActorAddress, ActorStatus, ActorSummary, Envelope, SystemStatus};

use crate::args::Attach;

/// Prints `status`, numbering its actors `#1`, `#2`, … in its order.
pub fn status(out: &mut dyn Write, attach: &Attach, status: &SystemStatus) -> io::Result<()> {
    writeln!(
        out,
        "System on {} port {}: {}",
        attach.protocol(),
        attach.port(),
        display_or(&status.base, "unknown base")
    )?;
    writeln!(out, "  admin:        {}", status.admin_address)?;
    writeln!(out, "  actors:       {}", status.live_actors)?;
    writeln!(out, "  processes:    {}", status.processes)?;
    writeln!(out, "  pending:      {}", pending(status))?;
    writeln!(out, "  dead letters: {}", status.dead_letters)?;
    writeln!(out, "  poison:       {}", status.poison_messages)?;
    writeln!(
        out,
        "  dead-letter handler: {}",
        status
            .dead_letter_handler
            .as_ref()
            .map_or("none".to_owned(), ToString::to_string)
    )?;
    writeln!(
        out,
        "  in shutdown:  {}",
        if status.in_shutdown { "yes" } else { "no" }
    )?;
    match &status.convention {
        None => writeln!(out, "  convention:   none")?,
        Some(convention) if convention.leader.is_none() && convention.members.is_empty() => {
            writeln!(out, "  convention:   none")?
        }
        Some(convention) => {
            let leader = convention
                .leader
                .as_ref()
                .map_or("this system".to_owned(), ToString::to_string);
            writeln!(
                out,
                "  convention:   leader {leader}, {} other members",
                convention.members.len()
            )?;
            for member in &convention.members {
                writeln!(
                    out,
                    "    {}{}  {} actors placed",
                    member.admin_address,
                    if member.is_leader { " (leader)" } else { "" },
                    member.actors_placed
                )?;
            }
        }
    }
    writeln!(out, "Capabilities:")?;
    for (key, value) in status.capabilities.iter() {
        writeln!(out, "  {key}: {value}")?;
    }
    writeln!(out, "Actors:{}", unlisted(status))?;
    if status.actors.is_empty() {
        writeln!(out, "  none")?;
    }
    for (i, actor) in status.actors.iter().enumerate() {
        write!(
            out,
            "  #{:<3} {}  {}",
            i + 1,
            actor.address,
            printable(&actor.actor_type)
        )?;
        if let Some(name) = &actor.global_name {
            write!(out, "  name:{}", printable(name))?;
        }
        if let Some(pid) = actor.pid {
            write!(out, "  pid {pid}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The status's pending count as people read it: a lower bound when some actors did not
/// answer the admin in time.
fn pending(status: &SystemStatus) -> String {
    match (status.pending_messages, status.pending_unanswered) {
        (None, _) => "n/a (see each actor's mailbox)".to_owned(),
        (Some(n), 0) => n.to_string(),
        (Some(n), 1) => format!("≥ {n} (1 actor did not answer)"),
        (Some(n), k) => format!("≥ {n} ({k} actors did not answer)"),
    }
}

/// `text` (a name a peer chose) with its control characters escaped, so that printing it
/// cannot send escape sequences to the operator's terminal.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// What a status left out of its actor list (the admin lists fewer actors rather than exceed
/// the transport's message size), as a note for a heading; empty when it lists them all.
fn unlisted(status: &SystemStatus) -> String {
    if status.actors.len() < status.live_actors {
        format!(
            " ({} of {} listed: the whole list exceeds one message of the transport)",
            status.actors.len(),
            status.live_actors
        )
    } else {
        String::new()
    }
}

/// Prints the actors of `status` with their own counters (from `statuses`), as a flat list or
/// as the parent/child tree; returns the addresses in the order they were numbered.
pub fn actors(
    out: &mut dyn Write,
    status: &SystemStatus,
    statuses: &HashMap<ActorAddress, ActorStatus>,
    tree: bool,
) -> io::Result<Vec<ActorAddress>> {
    writeln!(out, "{} actors{}", status.actors.len(), unlisted(status))?;
    // One index, so each line and each parent test is a lookup, not a scan of the listing.
    let by_address: HashMap<&ActorAddress, &ActorSummary> = status
        .actors
        .iter()
        .map(|actor| (&actor.address, actor))
        .collect();
    let mut order = Vec::new();
    let mut line = |out: &mut dyn Write, address: &ActorAddress, depth: usize| {
        order.push(address.clone());
        let summary = by_address.get(address);
        let indent = "  ".repeat(depth);
        write!(out, "  #{:<3} {indent}{address}", order.len())?;
        if let Some(summary) = summary {
            write!(out, "  {}", printable(&summary.actor_type))?;
            if let Some(name) = &summary.global_name {
                write!(out, "  name:{}", printable(name))?;
            }
            if let Some(pid) = summary.pid {
                write!(out, "  pid {pid}")?;
            }
        }
        match statuses.get(address) {
            Some(s) => writeln!(
                out,
                "  handled {}  failures {}  mailbox {}{}{}",
                s.received_messages,
                s.failures,
                s.pending_messages,
                s.idle_for.map_or(String::new(), |idle| format!(
                    "  idle {:.1}s",
                    idle.as_secs_f64()
                )),
                if s.exiting { "  exiting" } else { "" }
            ),
            None => writeln!(out, "  (no status answer)"),
        }
    };
    if !tree {
        for actor in &status.actors {
            line(out, &actor.address, 0)?;
        }
        return Ok(order);
    }
    // Children by parent; roots are those whose parent is not a listed actor (the admin).
    let mut children: HashMap<&ActorAddress, Vec<&ActorAddress>> = HashMap::new();
    for actor in &status.actors {
        children
            .entry(&actor.parent)
            .or_default()
            .push(&actor.address);
    }
    let mut stack: Vec<(&ActorAddress, usize)> = status
        .actors
        .iter()
        .filter(|a| !by_address.contains_key(&a.parent))
        .rev()
        .map(|a| (&a.address, 0))
        .collect();
    // Bounded by the listing: every actor is pushed once, by its one parent.
    while let Some((address, depth)) = stack.pop() {
        line(out, address, depth)?;
        if let Some(kids) = children.get(address) {
            stack.extend(kids.iter().rev().map(|kid| (*kid, depth + 1)));
        }
    }
    Ok(order)
}

/// Prints a reply: who sent it, its wire name, and a decoded form when it is a std type this
/// command knows, else the size of its bytes.
pub fn reply(out: &mut dyn Write, reply: &Envelope) -> io::Result<()> {
    writeln!(
        out,
        "reply from {} ({}): {}",
        reply.sender(),
        reply.type_name(),
        decoded(reply)
    )
}

/// A reply's value, when it is one of the std types messages often are.
pub fn decoded(reply: &Envelope) -> String {
    macro_rules! try_types {
        ($($ty:ty),*) => {
            $(if let Some(value) = reply.try_get::<$ty>() {
                return format!("{value:?}");
            })*
        };
    }
    try_types!(
        String,
        bool,
        i64,
        u64,
        i32,
        u32,
        i16,
        u16,
        i8,
        u8,
        f64,
        f32,
        Vec<String>
    );
    if let Some(bytes) = reply.try_get::<Vec<u8>>() {
        return format!("{} bytes", bytes.len());
    }
    match reply.payload().to_wire() {
        Ok((_, bytes)) => format!("{} bytes (a type this command does not know)", bytes.len()),
        Err(e) => format!("(cannot be encoded: {e})"),
    }
}

fn display_or<'a>(text: &'a str, default: &'a str) -> &'a str {
    if text.is_empty() {
        default
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thespian::core::SystemId;
    use thespian::Payload;

    use crate::test_support::system_status;

    fn a(id: u64) -> ActorAddress {
        ActorAddress::new(SystemId::from_raw(0xab), id)
    }

    fn summary(id: u64, parent: u64) -> ActorSummary {
        ActorSummary {
            address: a(id),
            actor_type: format!("T{id}"),
            parent: a(parent),
            global_name: None,
            pid: None,
        }
    }

    fn system(actors: Vec<ActorSummary>) -> SystemStatus {
        SystemStatus {
            pending_messages: Some(0),
            ..system_status(a(0), "simpleSystemBase", actors)
        }
    }

    #[test]
    fn the_tree_lists_children_under_their_parents_and_numbers_in_that_order() {
        let status = system(vec![summary(1, 0), summary(2, 0), summary(3, 1)]);
        let mut out = Vec::new();
        let order = actors(&mut out, &status, &HashMap::new(), true).expect("prints");
        assert_eq!(order, vec![a(1), a(3), a(2)]);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("#2     ActorAddr-(ab|3)  T3"), "{text}");
    }

    #[test]
    fn a_small_tree_prints_exactly_as_before() {
        let status = system(vec![
            summary(1, 0),
            summary(2, 1),
            summary(3, 0),
            summary(4, 2),
            summary(5, 1),
        ]);
        let mut statuses = HashMap::new();
        statuses.insert(
            a(2),
            ActorStatus {
                actor_address: a(2),
                actor_type: "T2".into(),
                admin_address: a(0),
                parent_address: a(1),
                global_name: None,
                exiting: false,
                child_actors: vec![a(4)],
                pending_messages: 3,
                received_messages: 7,
                pending_wakeups: vec![],
                failures: 1,
                pid: None,
                idle_for: None,
            },
        );
        let mut out = Vec::new();
        actors(&mut out, &status, &statuses, true).expect("prints");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "5 actors\n\
             \x20 #1   ActorAddr-(ab|1)  T1  (no status answer)\n\
             \x20 #2     ActorAddr-(ab|2)  T2  handled 7  failures 1  mailbox 3\n\
             \x20 #3       ActorAddr-(ab|4)  T4  (no status answer)\n\
             \x20 #4     ActorAddr-(ab|5)  T5  (no status answer)\n\
             \x20 #5   ActorAddr-(ab|3)  T3  (no status answer)\n"
        );
    }

    /// A listing of many actors, each parent with two children (actor `n`'s parent is
    /// `n / 2`), prints every actor once, under its parent, at its depth.
    #[test]
    fn a_large_tree_lists_every_actor_once_at_its_depth() {
        const N: u64 = 50_000;
        let status = system((1..=N).map(|id| summary(id, id / 2)).collect());
        let mut out = Vec::new();
        let order = actors(&mut out, &status, &HashMap::new(), true).expect("prints");
        assert_eq!(order.len(), N as usize);
        let mut seen = std::collections::HashSet::new();
        assert!(order.iter().all(|address| seen.insert(address.clone())));
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(lines.len(), N as usize);
        // Depth-first: each actor's parent is the last line before it one level up.
        let ids: HashMap<ActorAddress, u64> = (1..=N).map(|id| (a(id), id)).collect();
        let mut path: Vec<u64> = Vec::new();
        for (address, line) in order.iter().zip(&lines) {
            let id = ids[address];
            let depth = u64::BITS - id.leading_zeros() - 1;
            // "  #{number:<3} {indent}{address}"
            let number = line[3..].chars().take_while(char::is_ascii_digit).count();
            let indent = line.find("ActorAddr").expect("an address") - 3 - number.max(3) - 1;
            assert_eq!(indent, 2 * depth as usize, "{line}");
            path.truncate(depth as usize);
            if depth > 0 {
                assert_eq!(path.last(), Some(&(id / 2)), "{line}");
            }
            path.push(id);
        }
    }

    #[test]
    fn a_partial_pending_count_says_so() {
        let attach = Attach {
            port: Some(1900),
            udp: false,
            secret_file: None,
        };
        let mut status = system(vec![summary(1, 0), summary(2, 0), summary(3, 0)]);
        let text = |status: &SystemStatus| {
            let mut out = Vec::new();
            super::status(&mut out, &attach, status).expect("prints");
            String::from_utf8(out).expect("utf-8")
        };
        status.pending_messages = Some(5);
        assert!(
            text(&status).contains("  pending:      5\n"),
            "{}",
            text(&status)
        );
        status.pending_unanswered = 2;
        assert!(
            text(&status).contains("  pending:      ≥ 5 (2 actors did not answer)\n"),
            "{}",
            text(&status)
        );
        status.pending_unanswered = 1;
        assert!(text(&status).contains("≥ 5 (1 actor did not answer)"));
        status.pending_messages = None;
        assert!(text(&status).contains("pending:      n/a"));
    }

    #[test]
    fn names_from_peers_cannot_send_escape_sequences() {
        let mut evil = summary(1, 0);
        evil.global_name = Some("x\u{1b}]0;owned\u{7}".into());
        let status = system(vec![evil]);
        let mut out = Vec::new();
        actors(&mut out, &status, &HashMap::new(), false).expect("prints");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("name:x\\u{1b}]0;owned\\u{7}"), "{text}");
    }

    #[test]
    fn a_shortened_actor_list_says_how_many_it_left_out() {
        let mut status = system(vec![summary(1, 0), summary(2, 0)]);
        let mut out = Vec::new();
        actors(&mut out, &status, &HashMap::new(), false).expect("prints");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("2 actors\n"), "{text}");
        status.live_actors = 5;
        let mut out = Vec::new();
        actors(&mut out, &status, &HashMap::new(), false).expect("prints");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("2 actors (2 of 5 listed: "), "{text}");
    }

    #[test]
    fn known_std_replies_are_decoded_and_others_measured() {
        let text = Envelope::new(a(1), Payload::new("hi"));
        assert_eq!(decoded(&text), "\"hi\"");
        let number = Envelope::new(a(1), Payload::new(42u64));
        assert_eq!(decoded(&number), "42");
        let unknown = Envelope::new(a(1), Payload::from_wire("app.Thing", vec![1u8, 2, 3]));
        assert_eq!(
            decoded(&unknown),
            "3 bytes (a type this command does not know)"
        );
    }
}
