//! SPEC §8.2 (reference §3.3): `ActorExitRequest` runs the actor's handler, then its children
//! exit first, bottom-up, each ancestor getting `ChildActorExited` before it exits itself;
//! `not_recursive()` (called by the handler) or an `ActorExitRequest::non_recursive()` leaves
//! the children running.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

use crate::bases::{traits, TestBase};
use crate::helpers::{ask, assert_alive, assert_gone, listen, listen_none, start};

/// Builds a chain of `depth` [`ExitNode`]s below the receiver; the node at position `flat_at`
/// makes its exits non-recursive; the last node replies the chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ExitBuild {
    depth: u32,
    chain: Vec<ActorAddress>,
    reply_to: ActorAddress,
    flat_at: Option<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ExitChain(Vec<ActorAddress>);

/// What the nodes report, in the order they report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Event {
    /// The node's exit handler ran.
    ExitRequested(ActorAddress),
    /// The node got `ChildActorExited` for `child`.
    ChildExited {
        parent: ActorAddress,
        child: ActorAddress,
    },
}

message!(
    ExitBuild = "conformance.exit.ExitBuild",
    ExitChain = "conformance.exit.ExitChain",
    Event = "conformance.exit.Event",
);

#[derive(Default)]
struct ExitNode {
    reporter: Option<ActorAddress>,
    flat: bool,
}

impl Actor for ExitNode {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        let me = ctx.my_address().clone();
        if let Ok(build) = env.get::<ExitBuild>() {
            self.reporter = Some(build.reply_to.clone());
            self.flat = build.flat_at == Some(build.chain.len());
            let mut next = build.clone();
            next.chain.push(me);
            if build.depth > 1 {
                next.depth -= 1;
                let child = ctx.create_actor::<ExitNode>()?;
                ctx.send(&child, next)?;
            } else {
                ctx.send(&build.reply_to, ExitChain(next.chain))?;
            }
        } else if let Ok(exit) = env.get::<ActorExitRequest>() {
            if self.flat {
                exit.not_recursive();
            }
            let reporter = self.reporter.as_ref().ok_or("no reporter")?;
            ctx.send(reporter, Event::ExitRequested(me))?;
        } else if let Ok(exited) = env.get::<ChildActorExited>() {
            let reporter = self.reporter.as_ref().ok_or("no reporter")?;
            let event = Event::ChildExited {
                parent: me,
                child: exited.child_address.clone(),
            };
            ctx.send(reporter, event)?;
        }
        Ok(())
    }
}

fn build(sys: &ActorSystem, depth: u32, flat_at: Option<usize>) -> Vec<ActorAddress> {
    let root = sys.create_actor::<ExitNode>().expect("create");
    let build = ExitBuild {
        depth,
        chain: Vec::new(),
        reply_to: sys.my_address().clone(),
        flat_at,
    };
    let chain = ask::<ExitChain>(sys, &root, build).0;
    assert_eq!(chain.len(), depth as usize);
    chain
}

fn requested(node: &ActorAddress) -> Event {
    Event::ExitRequested(node.clone())
}

fn exited(parent: &ActorAddress, child: &ActorAddress) -> Event {
    Event::ChildExited {
        parent: parent.clone(),
        child: child.clone(),
    }
}

fn events(sys: &ActorSystem, count: usize) -> Vec<Event> {
    let events = (0..count).map(|_| listen::<Event>(sys)).collect();
    listen_none(sys);
    events
}

/// The node that reports `event`.
fn reporter(event: &Event) -> &ActorAddress {
    match event {
        Event::ExitRequested(node) => node,
        Event::ChildExited { parent, .. } => parent,
    }
}

/// Checks the `count` events that arrive against `expected`, the order they were caused in.
///
/// On an in-process base they arrive in exactly that order. On a multi-process base each node
/// reports on its own connection, so reports of different nodes may interleave (a child's
/// `ExitRequested` can overtake its parent's); what still holds is the same events, each node's
/// in the order it sent them, and a parent's `ChildExited` about a child after everything that
/// child reported (a node reports before it exits, and the base delivers an exiting actor's
/// messages before the parent's `ChildActorExited`).
fn expect_events(base: TestBase, sys: &ActorSystem, expected: Vec<Event>) {
    let got = events(sys, expected.len());
    if traits(base).in_process {
        assert_eq!(got, expected);
        return;
    }
    let position = |event: &Event| {
        got.iter()
            .position(|e| e == event)
            .unwrap_or_else(|| panic!("{event:?} is missing from {got:?}"))
    };
    for event in &got {
        assert!(expected.contains(event), "unexpected {event:?} in {got:?}");
    }
    for (i, earlier) in expected.iter().enumerate() {
        for later in &expected[i + 1..] {
            if reporter(earlier) == reporter(later) {
                assert!(
                    position(earlier) < position(later),
                    "{earlier:?} was sent before {later:?}, by the same node: {got:?}"
                );
            }
        }
    }
    for event in &expected {
        if let Event::ChildExited { child, .. } = event {
            for by_child in expected.iter().filter(|e| reporter(e) == child) {
                assert!(
                    position(by_child) < position(event),
                    "{by_child:?} was sent before the child exited, so before {event:?}: \
                     {got:?}"
                );
            }
        }
    }
}

pub(crate) fn recursive_exit_is_bottom_up(base: TestBase) {
    let sys = start(base);
    let n = build(&sys, 4, None);
    sys.tell(&n[0], ActorExitRequest::new()).expect("tell");
    expect_events(
        base,
        &sys,
        vec![
            // Requests go down...
            requested(&n[0]),
            requested(&n[1]),
            requested(&n[2]),
            requested(&n[3]),
            // ...exits come up, each ancestor told before it exits itself.
            exited(&n[2], &n[3]),
            exited(&n[1], &n[2]),
            exited(&n[0], &n[1]),
        ],
    );
    for node in &n {
        assert_gone(&sys, node);
    }
}

fn flat_exit_leaves_children(base: TestBase, sys: &ActorSystem, n: &[ActorAddress]) {
    assert_eq!(events(sys, 1), vec![requested(&n[0])]);
    assert_gone(sys, &n[0]);
    assert_alive(sys, &n[1]);
    assert_alive(sys, &n[2]);
    // The orphan exits normally later, taking its own children along; its dead parent is not
    // told.
    sys.tell(&n[1], ActorExitRequest::new()).expect("tell");
    expect_events(
        base,
        sys,
        vec![requested(&n[1]), requested(&n[2]), exited(&n[1], &n[2])],
    );
    assert_gone(sys, &n[1]);
    assert_gone(sys, &n[2]);
}

pub(crate) fn not_recursive_from_handler_leaves_children_running(base: TestBase) {
    let sys = start(base);
    let n = build(&sys, 3, Some(0));
    sys.tell(&n[0], ActorExitRequest::new()).expect("tell");
    flat_exit_leaves_children(base, &sys, &n);
}

pub(crate) fn non_recursive_request_leaves_children_running(base: TestBase) {
    let sys = start(base);
    let n = build(&sys, 3, None);
    sys.tell(&n[0], ActorExitRequest::non_recursive())
        .expect("tell");
    flat_exit_leaves_children(base, &sys, &n);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(ExitNode);
