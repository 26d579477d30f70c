//! The convention's promises, checked by the deterministic simulation over many seeds.
//!
//! A failing case prints its seed and the last events of the run ([`Report::describe`]);
//! `sim::run(seed, &scenario)` with the same scenario replays it exactly.

use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use thespian_conventions::sim::{self, Report, Scenario};

fn explain(report: &Report, what: &str) -> String {
    format!("{what}\n{}", report.describe())
}

/// The same 256 cases on every run, so a failure is never a matter of luck; failures found
/// earlier replay first (`sim.proptest-regressions`).
fn config() -> ProptestConfig {
    ProptestConfig {
        rng_seed: RngSeed::Fixed(0x5EED_C0DE_2024_0001),
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// 1 and 3 and 4: after crashes, restarts, leaves and a partition over a lossy, duplicating,
    /// reordering network, every live member is known to the active leader and every system
    /// agrees on it within 3 registration periods of the last fault (restart or heal);
    /// notifications are exactly once per join and leave per watcher throughout; nothing is
    /// placed on a member the placer knows to be gone.
    #[test]
    fn members_are_known_within_three_periods_of_the_last_fault(
        seed in any::<u64>(),
        systems in 3usize..=12,
        leaders in 1usize..=3,
        loss in 0.0f64..0.1,
    ) {
        let scenario = Scenario::chaos(systems, leaders, loss, seed);
        let report = sim::run(seed, &scenario);
        prop_assert!(report.violations.is_empty(), "{}", explain(&report, "violations"));
        let periods = report.periods_to_convergence;
        prop_assert!(
            periods.is_some_and(|p| p <= 3.0),
            "{}",
            explain(&report, "not converged within 3 periods of the last fault")
        );
        prop_assert!(report.converged_at_end, "{}", explain(&report, "not converged at the end"));
    }

    /// 2 and 3 and 4: with a leader list, after the active leader dies silently every live
    /// system agrees on the next candidate within 2 registration periods.
    #[test]
    fn everyone_agrees_on_the_next_leader_within_two_periods(
        seed in any::<u64>(),
        systems in 3usize..=12,
        leaders in 2usize..=3,
        loss in 0.0f64..0.05,
    ) {
        let scenario = Scenario::leader_failover(systems, leaders, loss);
        let report = sim::run(seed, &scenario);
        prop_assert!(report.violations.is_empty(), "{}", explain(&report, "violations"));
        let crash = scenario.faults[0].at();
        prop_assert!(
            report.first_converged_at.is_some_and(|at| at < crash),
            "{}",
            explain(&report, "not converged before the leader died")
        );
        prop_assert!(
            report.periods_to_convergence.is_some_and(|p| p <= 2.0),
            "{}",
            explain(&report, "no agreement on the next leader within 2 periods")
        );
    }
}

/// The case proptest found (`sim.proptest-regressions`): system 2 restarts twice, the first
/// time behind a partition that system 0 never sees through, the second time right after the
/// heal, while an answer of the middle incarnation is still on its way to system 0. That late
/// answer arrives after the newest incarnation's registration and replaces it at system 0; the
/// newest one keeps talking, and is taken back once its messages can no longer be late ones.
#[test]
fn a_late_answer_of_an_unseen_incarnation_does_not_shut_out_the_running_one() {
    let seed = 9_300_501_502_625_196_090;
    let report = sim::run(seed, &Scenario::chaos(3, 3, 0.0, seed));
    assert!(report.violations.is_empty(), "{}", report.describe());
    assert!(
        report.periods_to_convergence.is_some_and(|p| p <= 3.0),
        "{}",
        report.describe()
    );
    assert!(report.converged_at_end, "{}", report.describe());
}

/// The same seed gives the same run.
#[test]
fn a_seed_replays_exactly() {
    let scenario = Scenario::chaos(8, 2, 0.05, 42);
    let a = sim::run(42, &scenario);
    let b = sim::run(42, &scenario);
    assert_eq!(a.counts, b.counts);
    assert_eq!(a.converged_at, b.converged_at);
    assert_eq!(a.trace, b.trace);
    let c = sim::run(43, &scenario);
    assert_ne!(a.trace, c.trace, "another seed, another run");
}

/// 5: a thousand systems (three candidates), all starting within one restart period over a
/// slightly lossy network, converge within three registration periods, in seconds of wall
/// time.
#[test]
fn a_thousand_systems_converge() {
    let mut scenario = Scenario::new(1000, 3);
    scenario.network.loss = 0.01;
    scenario.trace_capacity = 200;
    let started = Instant::now();
    let report = sim::run(7, &scenario);
    let wall = started.elapsed();
    assert!(report.violations.is_empty(), "{}", report.describe());
    let periods = report.periods_to_convergence.expect("converged");
    assert!(periods <= 3.0, "{}", report.describe());
    println!(
        "1000 systems: converged {periods:.2} periods after the last start, {} messages, {} leader changes, wall {wall:?}",
        report.counts.sent, report.counts.leader_changes
    );
}

/// 2 at scale: 300 systems, the active leader dies silently; the rest agree on the next one
/// within 2 periods.
#[test]
fn three_hundred_systems_fail_over() {
    let mut scenario = Scenario::leader_failover(300, 3, 0.01);
    scenario.trace_capacity = 200;
    let report = sim::run(11, &scenario);
    assert!(report.violations.is_empty(), "{}", report.describe());
    assert!(
        report.periods_to_convergence.is_some_and(|p| p <= 2.0),
        "{}",
        report.describe()
    );
}
