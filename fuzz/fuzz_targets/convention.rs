//! Fuzzes the convention machine (`thespian-conventions`) as other admins drive it: convention
//! messages decoded from arbitrary bytes, from arbitrary sockets and incarnations, interleaved
//! with failed sends, pre- and de-registrations, watchers, capability updates, placements,
//! remote-create answers and the passing of time. Nothing may panic, and a placement never
//! names a system the machine does not list as a member.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use thespian_conventions::remote_create::{Answer, RemoteCreates, Step};
use thespian_conventions::{
    AdminRef, Convention, ConventionConfig, ConventionMessage, PlacementDecision, PlacementRequest,
    Timing,
};
use thespian_core::{ActorAddress, Capabilities, Payload, SystemId};

fn socket(byte: u8) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(127, 0, 0, 1 + byte % 4),
        1900 + u16::from(byte % 3),
    )
}

fn fits(caps: &Capabilities) -> Result<(), Vec<String>> {
    if caps.is_truthy("Morse") {
        Ok(())
    } else {
        Err(vec!["Morse".to_owned()])
    }
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let me = AdminRef {
        socket: socket(0),
        incarnation: SystemId::from_raw(1),
    };
    let leaders = match data.first().map(|b| b % 3) {
        Some(0) | None => Vec::new(),
        Some(1) => vec![socket(1)],
        _ => vec![socket(1), socket(0), socket(2)],
    };
    let config = ConventionConfig {
        me,
        capabilities: Capabilities::new(),
        leaders,
        timing: Timing::with_periods(Duration::from_secs(1), Duration::from_millis(500)),
    };
    let mut convention = Convention::new(config, now);
    let mut creates: RemoteCreates<u8> = RemoteCreates::new(me.socket, Duration::from_secs(2));
    let mut tickets: Vec<u64> = Vec::new();
    // Each step: a selector byte, an argument byte, a length byte, then that many bytes.
    let mut rest = data.get(1..).unwrap_or_default();
    while let [selector, argument, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        let remote = socket(*argument);
        let watcher = ActorAddress::new(SystemId::from_raw(9), u64::from(*argument % 4) + 1);
        match selector % 12 {
            0 | 1 => {
                let payload = Payload::from_wire("thespian.convention.Message", bytes.to_vec());
                if let Ok(message) = payload.take::<ConventionMessage>() {
                    convention.handle(now, message);
                }
            }
            2 => convention.send_failed(now, remote),
            3 => {
                let caps =
                    Capabilities::new().with("Morse", bytes.first().is_some_and(|b| b & 1 == 1));
                convention.pre_register(now, remote, caps);
            }
            4 => convention.de_register(now, remote),
            5 => convention.notify_on_changes(watcher, argument & 1 == 1),
            6 => convention.watcher_gone(&watcher),
            7 => {
                let caps = Capabilities::new().with("Morse", argument & 1 == 1);
                convention.update_capabilities(now, caps);
            }
            8 => {
                let request = PlacementRequest {
                    requester_admin: (argument & 1 == 1).then_some(remote),
                    already_tried: bytes.iter().map(|b| socket(*b)).collect(),
                };
                let decision = convention.place(&request, fits);
                if let PlacementDecision::Member(member) = decision {
                    assert!(
                        convention
                            .members()
                            .iter()
                            .any(|m| m.admin.socket == member.socket),
                        "placed on {member:?}, which is no member"
                    );
                }
            }
            9 => {
                let step = creates.start(
                    now,
                    &mut convention,
                    *argument,
                    None,
                    Vec::new(),
                    Vec::new(),
                    fits,
                );
                if let Step::Ask { ticket, .. } = step {
                    tickets.push(ticket);
                }
            }
            10 => {
                if let Some(ticket) = tickets.pop() {
                    let answer = match argument % 3 {
                        0 => Answer::Created,
                        1 => Answer::Failed,
                        _ => Answer::Refused("no".into()),
                    };
                    let _ = creates.answered(now, &mut convention, ticket, answer, |_, c| fits(c));
                }
            }
            _ => {
                now += Duration::from_millis(u64::from(*argument) * 20);
                convention.handle_timeout(now);
                let _ = creates.handle_timeout(now, &mut convention, |_, c| fits(c));
            }
        }
        while convention.poll_action().is_some() {}
        if convention.poll_timeout().is_some_and(|at| at < now) {
            convention.handle_timeout(now);
            while convention.poll_action().is_some() {}
        }
    }
});
