//! The coarse clock an actor's last activity is kept on, on the in-process bases.
//!
//! This module exists so that `ActorStatus::idle_for` costs an idle actor nothing: the actor's
//! cell keeps one `u32` (in space its other fields leave free), a millisecond count since its
//! system started, instead of an `Instant` (16 bytes). A driver reads the real clock now and
//! then (once per message loop round on the Simple base, when a worker wakes or every few
//! batches on the Queue base) and hands the cell the last reading, so the hot path does no
//! clock read of its own. Sans-IO: every function takes `now`.
//!
//! Ticks count milliseconds from the start, plus one (0 means "never active"), modulo
//! `u32::MAX`: they wrap about every 49.7 days, and [`ActivityClock::since`] is right for any
//! activity less than that long ago.

use std::time::{Duration, Instant};

/// The number of distinct ticks: 1 ..= `u32::MAX`.
const PERIOD: u64 = u32::MAX as u64;

/// A system's activity clock: ticks counted from its start.
#[derive(Clone, Copy, Debug)]
pub struct ActivityClock {
    start: Instant,
}

impl ActivityClock {
    /// A clock whose tick 1 is `start`.
    pub fn new(start: Instant) -> ActivityClock {
        ActivityClock { start }
    }

    /// The tick at `now` (never 0; an instant before the start is tick 1).
    pub fn tick_at(&self, now: Instant) -> u32 {
        let since = now.saturating_duration_since(self.start);
        // u64 arithmetic only (this runs once per message loop round on the Simple base).
        let millis = since
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(since.subsec_millis()));
        let wrapped = if millis < PERIOD {
            millis
        } else {
            millis % PERIOD
        };
        // `wrapped` < u32::MAX, so the result is in 1 ..= u32::MAX.
        u32::try_from(wrapped + 1).unwrap_or(u32::MAX)
    }

    /// How long before `now` `tick` was (to the millisecond; at most one wrap period).
    pub fn since(&self, tick: u32, now: Instant) -> Duration {
        let now_tick = u64::from(self.tick_at(now));
        let tick = u64::from(tick.max(1));
        Duration::from_millis((now_tick + PERIOD - tick) % PERIOD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_start_is_tick_one_and_never_zero() {
        let start = Instant::now();
        let clock = ActivityClock::new(start);
        assert_eq!(clock.tick_at(start), 1);
        assert_eq!(clock.since(1, start), Duration::ZERO);
        let later = start + Duration::from_millis(PERIOD);
        assert_eq!(
            clock.tick_at(later),
            1,
            "one full period wraps to the start"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0xAC71_0001),
            cases: 512,
            ..ProptestConfig::default()
        })]

        /// Activity at any time is reported as the whole milliseconds between it and any later
        /// reading less than a period apart, across wraps too.
        #[test]
        fn since_measures_the_gap(at in 0u64..4 * PERIOD, gap in 0u64..PERIOD) {
            let start = Instant::now();
            let clock = ActivityClock::new(start);
            let active = start + Duration::from_millis(at);
            let tick = clock.tick_at(active);
            prop_assert!(tick >= 1);
            let now = active + Duration::from_millis(gap);
            prop_assert_eq!(clock.since(tick, now), Duration::from_millis(gap));
        }
    }
}
