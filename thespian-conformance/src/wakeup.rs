//! Thespian's `test_wakeup.py` and the wakeup half of `test_stats.py`: a wakeup is not
//! delivered before it is due (counted from the `wakeup_after` call), then exactly once; the
//! payload tells wakeups apart; several may be pending (2, then 5); the sender is the actor
//! itself; exiting with pending wakeups is clean; status reports pending wakeups.
//!
//! Wakeup notices go to a separate `private()` endpoint, so the queries on the main endpoint
//! never race with them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

use crate::bases::TestBase;
use crate::helpers::{
    ask, assert_alive, expect_child_gone, listen, listen_none, simulate_work, spawn, start, status,
    Parent, Spawn,
};

/// Asks a [`Sleeper`] to (optionally) work for `work_before`, then schedule `wakeups`
/// (`(delay, payload)`), reporting each to `notify` as a [`Woke`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StartWakeups {
    wakeups: Vec<(Duration, Option<String>)>,
    notify: ActorAddress,
    work_before: Duration,
}

/// One delivered wakeup: its payload and delay, the time since its `wakeup_after` call, and
/// whether the actor itself was the sender.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Woke {
    payload: Option<String>,
    delay: Duration,
    elapsed: Duration,
    sender_is_self: bool,
}

message!(
    StartWakeups = "conformance.wakeup.StartWakeups",
    Woke = "conformance.wakeup.Woke",
);

#[derive(Default)]
struct Sleeper {
    notify: Option<ActorAddress>,
    calls: Vec<(Duration, Option<String>, Instant)>,
    woken: u32,
}

impl Actor for Sleeper {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(start) = env.get::<StartWakeups>() {
            self.notify = Some(start.notify.clone());
            simulate_work(start.work_before);
            for (delay, payload) in &start.wakeups {
                self.calls.push((*delay, payload.clone(), Instant::now()));
                match payload {
                    Some(p) => ctx.wakeup_after_with(*delay, p.clone()),
                    None => ctx.wakeup_after(*delay),
                }
            }
            ctx.send(env.sender(), "started")?;
        } else if let Ok(wakeup) = env.get::<WakeupMessage>() {
            let payload = wakeup.payload_as::<String>()?.cloned();
            let i = self
                .calls
                .iter()
                .position(|(d, p, _)| *d == wakeup.delay_period && *p == payload)
                .ok_or("a wakeup nobody asked for")?;
            let (delay, payload, called) = self.calls.remove(i);
            self.woken += 1;
            let woke = Woke {
                payload,
                delay,
                elapsed: called.elapsed(),
                sender_is_self: env.sender() == ctx.my_address(),
            };
            ctx.send(self.notify.as_ref().ok_or("nobody to notify")?, woke)?;
        } else if env.get::<String>().is_ok_and(|t| t == "woken?") {
            ctx.send(env.sender(), self.woken)?;
        }
        Ok(())
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn start_wakeups(
    sys: &ActorSystem,
    sleeper: &ActorAddress,
    notify: &ActorSystem,
    wakeups: &[(u64, Option<&str>)],
    work_before: Duration,
) {
    let start = StartWakeups {
        wakeups: wakeups
            .iter()
            .map(|(d, p)| (ms(*d), p.map(str::to_owned)))
            .collect(),
        notify: notify.my_address().clone(),
        work_before,
    };
    assert_eq!(ask::<String>(sys, sleeper, start), "started");
}

/// Receives `count` wakeup notices, checking each came on time and from the actor itself.
fn receive_wakeups(notify: &ActorSystem, count: usize) -> Vec<Woke> {
    let woken: Vec<Woke> = (0..count).map(|_| listen::<Woke>(notify)).collect();
    for woke in &woken {
        assert!(
            woke.elapsed >= woke.delay,
            "a wakeup of {:?} came after {:?}",
            woke.delay,
            woke.elapsed
        );
        assert!(woke.sender_is_self, "a wakeup's sender is the actor itself");
    }
    listen_none(notify);
    woken
}

pub(crate) fn wakeup_not_delivered_before_due(base: TestBase) {
    let sys = start(base);
    let notify = sys.private().expect("private");
    let sleeper = sys.create_actor::<Sleeper>().expect("create");
    let before = Instant::now();
    start_wakeups(&sys, &sleeper, &notify, &[(65, None)], Duration::ZERO);
    let woken_early = ask::<u32>(&sys, &sleeper, "woken?");
    if before.elapsed() < ms(65) {
        // Only conclusive while the wakeup cannot be due yet.
        assert_eq!(woken_early, 0, "the wakeup came before it was due");
    }
    let woke = receive_wakeups(&notify, 1);
    assert_eq!(woke[0].delay, ms(65));
    assert_eq!(woke[0].payload, None);
    assert_eq!(ask::<u32>(&sys, &sleeper, "woken?"), 1, "delivered once");
}

pub(crate) fn wakeup_delay_counts_from_the_call(base: TestBase) {
    let sys = start(base);
    let notify = sys.private().expect("private");
    let sleeper = sys.create_actor::<Sleeper>().expect("create");
    // The handler is busy for 40 ms before it calls wakeup_after(65 ms): the wakeup is due
    // 65 ms after the call, not after the handler started.
    start_wakeups(&sys, &sleeper, &notify, &[(65, None)], ms(40));
    receive_wakeups(&notify, 1);
}

pub(crate) fn payload_distinguishes_wakeups(base: TestBase) {
    let sys = start(base);
    let notify = sys.private().expect("private");
    let sleeper = sys.create_actor::<Sleeper>().expect("create");
    start_wakeups(
        &sys,
        &sleeper,
        &notify,
        &[(20, Some("a")), (20, Some("b")), (20, None)],
        Duration::ZERO,
    );
    let payloads: HashSet<Option<String>> = receive_wakeups(&notify, 3)
        .into_iter()
        .map(|w| w.payload)
        .collect();
    let expected: HashSet<Option<String>> =
        [Some("a".to_owned()), Some("b".to_owned()), None].into();
    assert_eq!(payloads, expected);
}

pub(crate) fn two_then_five_pending(base: TestBase) {
    let sys = start(base);
    let notify = sys.private().expect("private");
    let sleeper = sys.create_actor::<Sleeper>().expect("create");
    start_wakeups(
        &sys,
        &sleeper,
        &notify,
        &[(20, Some("one")), (10, Some("two"))],
        Duration::ZERO,
    );
    let first: HashSet<String> = receive_wakeups(&notify, 2)
        .into_iter()
        .filter_map(|w| w.payload)
        .collect();
    assert_eq!(first, ["one".to_owned(), "two".to_owned()].into());
    let five = [
        (50, Some("1")),
        (10, Some("2")),
        (40, Some("3")),
        (20, Some("4")),
        (30, Some("5")),
    ];
    start_wakeups(&sys, &sleeper, &notify, &five, Duration::ZERO);
    let woken = receive_wakeups(&notify, 5);
    let payloads: HashSet<String> = woken.iter().filter_map(|w| w.payload.clone()).collect();
    assert_eq!(payloads.len(), 5);
    for w in &woken {
        let expected = five
            .iter()
            .find(|(_, p)| p.map(str::to_owned) == w.payload)
            .expect("a scheduled payload");
        assert_eq!(
            w.delay,
            ms(expected.0),
            "the delay travels with its payload"
        );
    }
    assert_eq!(ask::<u32>(&sys, &sleeper, "woken?"), 7);
}

pub(crate) fn sender_is_the_actor_itself(base: TestBase) {
    let sys = start(base);
    let notify = sys.private().expect("private");
    let parent = sys.create_actor::<Parent<Sleeper>>().expect("create");
    let sleeper = spawn(&sys, &parent, Spawn::child());
    start_wakeups(&sys, &sleeper, &notify, &[(5, Some("me"))], Duration::ZERO);
    let woke = receive_wakeups(&notify, 1);
    assert!(woke[0].sender_is_self);
}

pub(crate) fn exit_with_pending_wakeups_is_clean(base: TestBase) {
    let sys = start(base);
    let notify = sys.private().expect("private");
    let parent = sys.create_actor::<Parent<Sleeper>>().expect("create");
    let sleeper = spawn(&sys, &parent, Spawn::child());
    // Due well within the "nothing arrives" window below.
    start_wakeups(
        &sys,
        &sleeper,
        &notify,
        &[(50, Some("late")), (80, None)],
        Duration::ZERO,
    );
    sys.tell(&sleeper, ActorExitRequest::new()).expect("tell");
    expect_child_gone(&sys, &parent, &sleeper);
    listen_none(&notify);
    listen_none(&sys);
    assert_alive(&sys, &parent);
}

pub(crate) fn status_shows_pending_wakeups(base: TestBase) {
    let sys = start(base);
    let notify = sys.private().expect("private");
    let sleeper = sys.create_actor::<Sleeper>().expect("create");
    assert!(status(&sys, &sleeper).pending_wakeups.is_empty());
    start_wakeups(&sys, &sleeper, &notify, &[(10_000, None)], Duration::ZERO);
    assert_eq!(status(&sys, &sleeper).pending_wakeups, vec![ms(10_000)]);
    start_wakeups(
        &sys,
        &sleeper,
        &notify,
        &[(10_000, Some("x")), (30, None)],
        Duration::ZERO,
    );
    let mut pending = status(&sys, &sleeper).pending_wakeups;
    pending.sort();
    assert_eq!(pending, vec![ms(30), ms(10_000), ms(10_000)]);
    let woke = listen::<Woke>(&notify);
    assert_eq!(woke.delay, ms(30));
    assert_eq!(
        status(&sys, &sleeper).pending_wakeups,
        vec![ms(10_000), ms(10_000)],
        "a delivered wakeup is no longer pending"
    );
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Sleeper, Parent<Sleeper>);
