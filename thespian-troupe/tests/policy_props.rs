//! Property tests of the troupe leader's policy: random sequences of work, readiness, failures,
//! worker exits, dismissals and settings changes, checked against a model of what each worker
//! holds. Properties: a piece of work is with at most one worker at a time and finishes
//! exactly once (or is rejected once); nothing is lost when workers exit; a worker is created
//! only below `max_count`; new work is queued only below the pending bound; idle workers never
//! coexist with work they could take; work with a key goes to the key's worker while work of
//! the key waits or is with it (and it lives), one at a time, in order; the affinity bindings
//! never outnumber the keyed work held, over however many distinct keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use thespian_troupe::{Action, TroupePolicy, TroupeSettings};

#[derive(Clone, Debug)]
enum Op {
    NewWork(Option<u16>),
    Ready(usize),
    Fail(usize),
    Exit(usize),
    Dismiss,
    SetMax(u32),
    SetIdle(u32),
    SpawnFails(bool),
}

/// Events; work keys drawn from `0..keys` (none when `keys` is 0).
fn op(keys: u16) -> impl Strategy<Value = Op> {
    let key = if keys > 0 {
        proptest::option::of(0u16..keys).boxed()
    } else {
        Just(None).boxed()
    };
    prop_oneof![
        6 => key.prop_map(Op::NewWork),
        5 => any::<usize>().prop_map(Op::Ready),
        1 => any::<usize>().prop_map(Op::Fail),
        2 => any::<usize>().prop_map(Op::Exit),
        1 => Just(Op::Dismiss),
        1 => (1u32..6).prop_map(Op::SetMax),
        1 => (0u32..4).prop_map(Op::SetIdle),
        1 => any::<bool>().prop_map(Op::SpawnFails),
    ]
}

/// What the test knows from the actions it was given.
#[derive(Default)]
struct Model {
    next_worker: u32,
    live: BTreeSet<u32>,
    /// worker → (work id, token) it holds.
    holding: BTreeMap<u32, (u32, u32)>,
    key_of: HashMap<u32, Option<u16>>,
    completed: BTreeSet<u32>,
    rejected: BTreeSet<u32>,
    /// Tokens assigned at least once.
    started: BTreeSet<u32>,
    /// key → its worker, from an assignment until that worker exits or no work of the key
    /// is left (finished or rejected).
    bound: HashMap<u16, u32>,
    /// key → the newest token of that key started.
    newest: HashMap<u16, u32>,
    /// Workers asked to exit (they will).
    dismissed: BTreeSet<u32>,
}

impl Model {
    fn apply(&mut self, actions: Vec<Action<u32, u32>>) -> Result<(), TestCaseError> {
        for action in actions {
            match action {
                Action::Assign { worker, id, item } => {
                    prop_assert!(self.live.contains(&worker), "work to a dead worker");
                    prop_assert!(
                        !self.holding.contains_key(&worker),
                        "worker {worker} given work while holding some"
                    );
                    prop_assert!(!self.completed.contains(&item), "finished work given again");
                    prop_assert!(!self.rejected.contains(&item), "rejected work given");
                    prop_assert!(
                        self.holding.values().all(|(_, t)| *t != item),
                        "work {item} with two workers"
                    );
                    if let Some(key) = self.key_of[&item] {
                        if let Some(&w) = self.bound.get(&key) {
                            prop_assert_eq!(w, worker, "key {} left its worker", key);
                        }
                        self.bound.insert(key, worker);
                        prop_assert!(
                            self.holding
                                .values()
                                .all(|(_, t)| self.key_of[t] != Some(key)),
                            "two pieces of work of key {} at once",
                            key
                        );
                        if !self.started.contains(&item) {
                            let newest = self.newest.entry(key).or_insert(item);
                            prop_assert!(item >= *newest, "key {} out of order", key);
                            *newest = item;
                        }
                    }
                    self.started.insert(item);
                    self.holding.insert(worker, (id, item));
                }
                Action::Reject { item, .. } => {
                    prop_assert!(!self.completed.contains(&item));
                    prop_assert!(self.rejected.insert(item), "rejected twice");
                    prop_assert!(self.holding.values().all(|(_, t)| *t != item));
                }
                Action::Dismiss(worker) => {
                    prop_assert!(self.live.contains(&worker));
                    prop_assert!(!self.holding.contains_key(&worker), "busy worker dismissed");
                    self.dismissed.insert(worker);
                }
                Action::ScheduleDismissal(_) => {}
            }
        }
        Ok(())
    }

    /// Unbinds the keys with no work left that is neither finished nor rejected.
    fn release_keys(&mut self) {
        let mut outstanding = BTreeSet::new();
        for (token, key) in &self.key_of {
            if let Some(key) = key {
                if !self.completed.contains(token) && !self.rejected.contains(token) {
                    outstanding.insert(*key);
                }
            }
        }
        self.bound.retain(|key, _| outstanding.contains(key));
    }

    fn pick_busy(&self, i: usize) -> Option<u32> {
        let busy: Vec<u32> = self.holding.keys().copied().collect();
        (!busy.is_empty()).then(|| busy[i % busy.len()])
    }
}

fn run(ops: Vec<Op>, settings: TroupeSettings, keyless: bool) -> Result<(), TestCaseError> {
    let mut policy: TroupePolicy<u32, u32> = TroupePolicy::new(settings);
    let mut model = Model::default();
    let mut spawn_fails = false;
    let mut max = settings.max_count;
    let mut token = 0u32;
    // Creates a worker, checking the bound.
    macro_rules! spawner {
        () => {
            &mut || -> Result<u32, String> {
                if spawn_fails {
                    return Err("no room".into());
                }
                assert!(
                    (model.live.len() as u32) < max,
                    "a worker created with {} live and max_count {max}",
                    model.live.len()
                );
                model.next_worker += 1;
                model.live.insert(model.next_worker);
                Ok(model.next_worker)
            }
        };
    }
    for op in ops {
        let actions = match op {
            Op::NewWork(key) => {
                token += 1;
                model.key_of.insert(token, key);
                let actions = policy.new_work(token, key.map(u64::from), spawner!());
                let queued = !actions.iter().any(|a| match a {
                    Action::Assign { item, .. } | Action::Reject { item, .. } => *item == token,
                    _ => false,
                });
                if queued {
                    prop_assert!(
                        policy.counts().pending <= settings.pending_limit,
                        "queued over the bound"
                    );
                }
                actions
            }
            Op::Ready(i) => match model.pick_busy(i) {
                Some(w) => {
                    let (id, item) = model.holding.remove(&w).expect("busy");
                    prop_assert!(model.completed.insert(item), "work finished twice");
                    policy.ready(&w, Some(id), spawner!())
                }
                None => Vec::new(),
            },
            Op::Fail(i) => match model.pick_busy(i) {
                Some(w) => {
                    let (id, _) = model.holding.remove(&w).expect("busy");
                    policy.failed(&w, id, "failed twice", spawner!())
                }
                None => Vec::new(),
            },
            Op::Exit(i) => {
                let live: Vec<u32> = model.live.iter().copied().collect();
                if live.is_empty() {
                    Vec::new()
                } else {
                    let w = live[i % live.len()];
                    model.live.remove(&w);
                    model.dismissed.remove(&w);
                    model.holding.remove(&w);
                    model.bound.retain(|_, v| *v != w);
                    policy.worker_exited(&w, spawner!())
                }
            }
            Op::Dismiss => policy.dismiss_extras(),
            Op::SetMax(n) => {
                max = n;
                policy.update(Some(n), None, spawner!())
            }
            Op::SetIdle(n) => policy.update(None, Some(n), spawner!()),
            Op::SpawnFails(f) => {
                spawn_fails = f;
                Vec::new()
            }
        };
        model.apply(actions)?;
        model.release_keys();
        let counts = policy.counts();
        prop_assert_eq!(counts.workers, model.live.len());
        prop_assert!(
            policy.affinity_bindings() <= counts.pending + model.holding.len(),
            "{} keys bound with {} items pending and {} in flight",
            policy.affinity_bindings(),
            counts.pending,
            model.holding.len()
        );
        if keyless && counts.idle + counts.extra > 0 {
            prop_assert_eq!(counts.pending, 0, "idle workers beside waiting work");
        }
    }
    // Drain: workers finish, and dismissed ones exit, until nothing is held or waiting.
    spawn_fails = false;
    for _ in 0..10_000 {
        let actions = if let Some(w) = model.pick_busy(0) {
            let (id, item) = model.holding.remove(&w).expect("busy");
            prop_assert!(model.completed.insert(item));
            policy.ready(&w, Some(id), spawner!())
        } else if let Some(w) = model.dismissed.pop_first() {
            if !model.live.remove(&w) {
                continue;
            }
            model.bound.retain(|_, v| *v != w);
            policy.worker_exited(&w, spawner!())
        } else {
            break;
        };
        model.apply(actions)?;
        model.release_keys();
    }
    prop_assert_eq!(
        policy.affinity_bindings(),
        0,
        "keys bound with no work held"
    );
    prop_assert_eq!(
        policy.counts().pending,
        0,
        "work left waiting with no busy worker"
    );
    for t in 1..=token {
        prop_assert!(
            model.completed.contains(&t) ^ model.rejected.contains(&t),
            "work {} lost or both finished and rejected",
            t
        );
    }
    Ok(())
}

fn settings() -> impl Strategy<Value = TroupeSettings> {
    (1u32..5, 0u32..4, 1usize..8).prop_map(|(max, idle, limit)| {
        TroupeSettings::default()
            .max_count(max)
            .idle_count(idle)
            .pending_limit(limit)
            .dismiss_after(Duration::from_millis(5))
    })
}

/// A runner from a fixed seed, so a run is repeatable.
fn runner() -> TestRunner {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]))
}

#[test]
fn unkeyed_work_is_done_exactly_once_within_the_bounds() {
    runner()
        .run(
            &(proptest::collection::vec(op(0), 0..120), settings()),
            |(ops, settings)| run(ops, settings, true),
        )
        .unwrap();
}

#[test]
fn keyed_work_keeps_its_worker_and_order() {
    runner()
        .run(
            &(proptest::collection::vec(op(4), 0..120), settings()),
            |(ops, settings)| run(ops, settings, false),
        )
        .unwrap();
}

#[test]
fn bindings_stay_bounded_over_a_long_stream_of_distinct_keys() {
    // Thousands of events over 60,000 keys: nearly every key is new, so sticky bindings would
    // grow with the stream; `run` checks they never outnumber the work held, and the order.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 24,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]),
    );
    runner
        .run(
            &(
                proptest::collection::vec(op(60_000), 1000..3000),
                settings(),
            ),
            |(ops, settings)| run(ops, settings, false),
        )
        .unwrap();
}

#[test]
fn idle_workers_are_reused_first_in_first_out() {
    let mut policy: TroupePolicy<u32, u32> =
        TroupePolicy::new(TroupeSettings::default().max_count(3).idle_count(3));
    let mut next = 0;
    let mut spawn = || -> Result<u32, String> {
        next += 1;
        Ok(next)
    };
    for t in 0..3 {
        policy.new_work(t, None, &mut spawn);
    }
    // Workers 1, 2, 3 hold work 0, 1, 2; they finish in the order 2, 3, 1.
    for (w, id) in [(2, 1), (3, 2), (1, 0)] {
        assert!(policy.ready(&w, Some(id), &mut spawn).is_empty());
    }
    let order: Vec<u32> = (10..13)
        .map(|t| match &policy.new_work(t, None, &mut spawn)[..] {
            [Action::Assign { worker, .. }] => *worker,
            other => panic!("expected one assignment, got {other:?}"),
        })
        .collect();
    assert_eq!(order, vec![2, 3, 1]);
}

#[test]
fn extras_wait_for_the_debounce_then_are_dismissed_together() {
    let period = Duration::from_millis(7);
    let mut policy: TroupePolicy<u32, u32> = TroupePolicy::new(
        TroupeSettings::default()
            .max_count(4)
            .idle_count(1)
            .dismiss_after(period),
    );
    let mut next = 0;
    let mut spawn = || -> Result<u32, String> {
        next += 1;
        Ok(next)
    };
    for t in 0..4 {
        policy.new_work(t, None, &mut spawn);
    }
    assert!(policy.ready(&1, Some(0), &mut spawn).is_empty());
    assert_eq!(
        policy.ready(&2, Some(1), &mut spawn),
        vec![Action::ScheduleDismissal(period)]
    );
    // One wakeup at a time.
    assert!(policy.ready(&3, Some(2), &mut spawn).is_empty());
    assert_eq!(policy.counts().extra, 2);
    assert_eq!(
        policy.dismiss_extras(),
        vec![Action::Dismiss(2), Action::Dismiss(3)]
    );
    assert_eq!(
        policy.counts().workers,
        4,
        "dismissed workers count until they exit"
    );
    assert_eq!(
        thespian_troupe::status_line(&policy),
        "Idle=1, Max=4, Troupers [4, 1 idle, 0 extra]: ['I:1', '2', '3', '4'], Pending=0"
    );
}

#[test]
fn work_of_an_exited_worker_goes_first_to_the_next_free_worker() {
    let mut policy: TroupePolicy<u32, u32> =
        TroupePolicy::new(TroupeSettings::default().max_count(1));
    let mut next = 0;
    let mut spawn = || -> Result<u32, String> {
        next += 1;
        Ok(next)
    };
    policy.new_work(100, None, &mut spawn);
    policy.new_work(101, None, &mut spawn);
    // Worker 1 dies holding 100: a new worker takes 100 before 101.
    match &policy.worker_exited(&1, &mut spawn)[..] {
        [Action::Assign {
            worker: 2,
            item: 100,
            ..
        }] => {}
        other => panic!("expected work 100 on worker 2, got {other:?}"),
    }
    assert_eq!(policy.counts().pending, 1);
}

#[test]
fn over_the_pending_bound_work_is_rejected() {
    let mut policy: TroupePolicy<u32, u32> =
        TroupePolicy::new(TroupeSettings::default().max_count(1).pending_limit(2));
    let mut spawn = || -> Result<u32, String> { Ok(1) };
    for t in 0..3 {
        policy.new_work(t, None, &mut spawn);
    }
    match &policy.new_work(3, None, &mut spawn)[..] {
        [Action::Reject { item: 3, reason }] => assert!(reason.contains("pending limit")),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(policy.counts().rejected, 1);
}

#[test]
fn a_closed_policy_dispatches_nothing() {
    let mut policy: TroupePolicy<u32, u32> =
        TroupePolicy::new(TroupeSettings::default().max_count(2));
    let mut next = 0;
    let mut spawn = || -> Result<u32, String> {
        next += 1;
        Ok(next)
    };
    policy.new_work(1, None, &mut spawn);
    policy.new_work(2, None, &mut spawn);
    policy.new_work(3, None, &mut spawn);
    policy.close();
    assert!(policy.is_closed());
    // The workers exit with the leader: their work is not sent anywhere again.
    assert!(policy.worker_exited(&1, &mut spawn).is_empty());
    assert!(policy.ready(&2, Some(1), &mut spawn).is_empty());
    assert!(policy.new_work(4, None, &mut spawn).is_empty());
    assert_eq!(next, 2, "no worker created after close");
}
