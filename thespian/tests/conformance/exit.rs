//! SPEC §8.2 (reference §3.3): `ActorExitRequest` runs the actor's handler, then its children
//! exit first, bottom-up, each ancestor getting `ChildActorExited` before it exits itself;
//! `not_recursive()` (called by the handler) or an `ActorExitRequest::non_recursive()` leaves
//! the children running.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

use crate::bases::TestBase;
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

pub(crate) fn recursive_exit_is_bottom_up(base: TestBase) {
    let sys = start(base);
    let n = build(&sys, 4, None);
    sys.tell(&n[0], ActorExitRequest::new()).expect("tell");
    assert_eq!(
        events(&sys, 7),
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
        ]
    );
    for node in &n {
        assert_gone(&sys, node);
    }
}

fn flat_exit_leaves_children(sys: &ActorSystem, n: &[ActorAddress]) {
    assert_eq!(events(sys, 1), vec![requested(&n[0])]);
    assert_gone(sys, &n[0]);
    assert_alive(sys, &n[1]);
    assert_alive(sys, &n[2]);
    // The orphan exits normally later, taking its own children along; its dead parent is not
    // told.
    sys.tell(&n[1], ActorExitRequest::new()).expect("tell");
    assert_eq!(
        events(sys, 3),
        vec![requested(&n[1]), requested(&n[2]), exited(&n[1], &n[2])]
    );
    assert_gone(sys, &n[1]);
    assert_gone(sys, &n[2]);
}

pub(crate) fn not_recursive_from_handler_leaves_children_running(base: TestBase) {
    let sys = start(base);
    let n = build(&sys, 3, Some(0));
    sys.tell(&n[0], ActorExitRequest::new()).expect("tell");
    flat_exit_leaves_children(&sys, &n);
}

pub(crate) fn non_recursive_request_leaves_children_running(base: TestBase) {
    let sys = start(base);
    let n = build(&sys, 3, None);
    sys.tell(&n[0], ActorExitRequest::non_recursive())
        .expect("tell");
    flat_exit_leaves_children(&sys, &n);
}
