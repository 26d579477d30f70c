//! The back-off every admin-to-admin convention message goes through (Thespian's
//! `HysteresisDelaySender`, reference §5.5 and §6.8).
//!
//! Convention traffic is periodic and repetitive: the same registration, probe or invitation is
//! sent again and again. When a remote is slow or a burst of sends to it comes in quick
//! succession, sending each copy would only add load, so sends to one remote are shaped: the
//! first message of a quiet period goes out at once; further ones within a *blackout* are
//! queued, an equal queued message is replaced by the new one (so a burst of registrations
//! collapses to the latest), and the blackout grows by `rate` with each such send up to `max`.
//! When the blackout ends, everything queued goes out and the blackout shrinks by `rate`; each
//! blackout that ends while the remote is idle shrinks it again, until it falls below `min` and
//! the remote is quiet.
//!
//! Thespian keeps one blackout for all remotes, so one chatty remote delays every other; here
//! each remote has its own (a *lane*), so a burst to one member never delays another's
//! registration. [`Hysteresis::cancel`] drops what is queued for a remote that was lost or
//! pre-registered anew (Thespian's `HysteresisCancel`).
//!
//! Sans-IO like the rest of the crate: [`Hysteresis::send`] and
//! [`Hysteresis::handle_timeout`] take `now`, [`Hysteresis::poll_transmit`] yields what is due.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// The back-off's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HysteresisConfig {
    /// The shortest blackout (Thespian: 250 ms); a blackout that shrinks below it ends.
    pub min: Duration,
    /// The longest blackout (Thespian: 45 s).
    pub max: Duration,
    /// How much a blackout grows with each send within it, and shrinks with each one that ends
    /// (Thespian: 1.2; must be > 1).
    pub rate: f64,
}

impl Default for HysteresisConfig {
    /// Thespian's: 250 ms, 45 s, 1.2.
    fn default() -> HysteresisConfig {
        HysteresisConfig {
            min: Duration::from_millis(250),
            max: Duration::from_secs(45),
            rate: 1.2,
        }
    }
}

/// One remote's state.
#[derive(Debug)]
struct Lane<M> {
    /// The current blackout length; `None` when the remote is quiet.
    current: Option<Duration>,
    /// When the blackout ends.
    until: Instant,
    /// Messages waiting for the blackout to end, oldest first.
    queue: VecDeque<M>,
}

/// The per-remote back-off sender. `K` names a remote, `M` is a message (equal messages to the
/// same remote are collapsed while queued).
#[derive(Debug)]
pub struct Hysteresis<K, M> {
    config: HysteresisConfig,
    lanes: BTreeMap<K, Lane<M>>,
    /// `(until, remote)` for every lane with queued messages: the lanes' timers.
    due: BTreeSet<(Instant, K)>,
    /// Messages whose time has come, in order.
    ready: VecDeque<(K, M)>,
}

impl<K: Ord + Copy, M: PartialEq> Hysteresis<K, M> {
    /// A sender with no traffic yet.
    pub fn new(config: HysteresisConfig) -> Hysteresis<K, M> {
        let rate = if config.rate.is_finite() && config.rate > 1.0 {
            config.rate
        } else {
            HysteresisConfig::default().rate
        };
        Hysteresis {
            config: HysteresisConfig { rate, ..config },
            lanes: BTreeMap::new(),
            due: BTreeSet::new(),
            ready: VecDeque::new(),
        }
    }

    /// Sends `message` to `to`: at once when `to` is quiet, otherwise when its blackout ends
    /// (replacing an equal message already waiting for `to`).
    pub fn send(&mut self, now: Instant, to: K, message: M) {
        let config = self.config;
        let lane = self.lanes.entry(to).or_insert_with(|| Lane {
            current: None,
            until: now,
            queue: VecDeque::new(),
        });
        if !lane.queue.is_empty() {
            self.due.remove(&(lane.until, to));
        }
        // While the remote was idle, each blackout that ended shrank the next one (as if the
        // sender had looked at every end): catch up before this send counts.
        while lane.queue.is_empty() && now >= lane.until && lane.current.is_some() {
            Self::shrink(&config, lane);
            lane.until += lane.current.unwrap_or(Duration::ZERO);
        }
        lane.queue.retain(|queued| *queued != message);
        lane.queue.push_back(message);
        // A send grows the blackout (or starts one at the minimum).
        lane.current = Some(match lane.current {
            Some(c) if c >= config.min => c.mul_f64(config.rate).min(config.max),
            _ => config.min,
        });
        if now >= lane.until {
            // The blackout (if any) is over: it shrinks, and everything queued goes now.
            Self::shrink(&config, lane);
            self.ready.extend(lane.queue.drain(..).map(|m| (to, m)));
        }
        lane.until = now + lane.current.unwrap_or(Duration::ZERO);
        if lane.queue.is_empty() {
            if lane.current.is_none() {
                self.lanes.remove(&to);
            }
        } else {
            self.due.insert((lane.until, to));
        }
    }

    /// Drops every message waiting for `to` and forgets its blackout; returns how many were
    /// dropped.
    pub fn cancel(&mut self, to: K) -> usize {
        match self.lanes.remove(&to) {
            Some(lane) => {
                if !lane.queue.is_empty() {
                    self.due.remove(&(lane.until, to));
                }
                lane.queue.len()
            }
            None => 0,
        }
    }

    /// When [`Hysteresis::handle_timeout`] should next be called (a blackout with messages
    /// waiting ends).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Ends the blackouts due by `now`: their messages become ready and the blackouts shrink.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, to)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.remove(&(at, to));
            let config = self.config;
            let Some(lane) = self.lanes.get_mut(&to) else {
                continue;
            };
            Self::shrink(&config, lane);
            self.ready.extend(lane.queue.drain(..).map(|m| (to, m)));
            lane.until = now + lane.current.unwrap_or(Duration::ZERO);
            if lane.current.is_none() {
                self.lanes.remove(&to);
            }
        }
    }

    /// The next message to transmit now, if any.
    pub fn poll_transmit(&mut self) -> Option<(K, M)> {
        self.ready.pop_front()
    }

    /// How many messages wait for `to`'s blackout to end.
    pub fn queued(&self, to: K) -> usize {
        self.lanes.get(&to).map_or(0, |lane| lane.queue.len())
    }

    /// Sends everything queued now, ignoring blackouts (at shutdown).
    pub fn flush_all(&mut self) {
        self.due.clear();
        for (to, lane) in std::mem::take(&mut self.lanes) {
            self.ready.extend(lane.queue.into_iter().map(|m| (to, m)));
        }
    }

    /// One blackout ended: it shrinks by `rate`, or ends the back-off below `min`.
    fn shrink(config: &HysteresisConfig, lane: &mut Lane<M>) {
        lane.current = match lane.current {
            Some(c) if c >= config.min => Some(c.div_f64(config.rate)),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn sender() -> Hysteresis<u8, &'static str> {
        Hysteresis::new(HysteresisConfig::default())
    }

    fn drain(h: &mut Hysteresis<u8, &'static str>) -> Vec<(u8, &'static str)> {
        std::iter::from_fn(|| h.poll_transmit()).collect()
    }

    #[test]
    fn the_first_message_of_a_quiet_period_goes_at_once() {
        let t0 = Instant::now();
        let mut h = sender();
        h.send(t0, 1, "a");
        assert_eq!(drain(&mut h), vec![(1, "a")]);
        assert_eq!(h.poll_timeout(), None);
        // Long after, again at once.
        h.send(t0 + Duration::from_secs(10), 1, "b");
        assert_eq!(drain(&mut h), vec![(1, "b")]);
    }

    #[test]
    fn a_quick_second_message_waits_for_the_blackout() {
        let t0 = Instant::now();
        let mut h = sender();
        h.send(t0, 1, "a");
        h.send(t0 + MS, 1, "b");
        assert_eq!(drain(&mut h), vec![(1, "a")]);
        let due = h.poll_timeout().expect("a blackout with a queued message");
        assert_eq!(due, t0 + MS + Duration::from_millis(250));
        h.handle_timeout(due - MS);
        assert_eq!(drain(&mut h), vec![]);
        h.handle_timeout(due);
        assert_eq!(drain(&mut h), vec![(1, "b")]);
        assert_eq!(h.poll_timeout(), None);
    }

    #[test]
    fn equal_queued_messages_collapse_to_the_latest() {
        let t0 = Instant::now();
        let mut h = sender();
        h.send(t0, 1, "x");
        h.send(t0 + MS, 1, "a");
        h.send(t0 + 2 * MS, 1, "b");
        h.send(t0 + 3 * MS, 1, "a");
        assert_eq!(drain(&mut h), vec![(1, "x")]);
        h.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(drain(&mut h), vec![(1, "b"), (1, "a")]);
    }

    #[test]
    fn sustained_traffic_grows_the_blackout_up_to_max() {
        let t0 = Instant::now();
        let mut h = sender();
        let mut now = t0;
        let mut last_gap = Duration::ZERO;
        for _ in 0..200 {
            h.send(now, 1, "m");
            let due = h.poll_timeout().unwrap_or(now);
            last_gap = due - now;
            now += MS;
        }
        assert_eq!(last_gap, Duration::from_secs(45));
    }

    #[test]
    fn remotes_have_their_own_blackouts() {
        let t0 = Instant::now();
        let mut h = sender();
        h.send(t0, 1, "a");
        h.send(t0 + MS, 1, "b");
        h.send(t0 + MS, 2, "c");
        assert_eq!(drain(&mut h), vec![(1, "a"), (2, "c")]);
        assert_eq!(h.queued(1), 1);
        assert_eq!(h.queued(2), 0);
    }

    #[test]
    fn cancel_drops_the_queue_of_one_remote() {
        let t0 = Instant::now();
        let mut h = sender();
        h.send(t0, 1, "a");
        h.send(t0 + MS, 1, "b");
        h.send(t0 + MS, 1, "c");
        h.send(t0, 2, "d");
        h.send(t0 + MS, 2, "e");
        drain(&mut h);
        assert_eq!(h.cancel(1), 2);
        assert_eq!(h.cancel(1), 0);
        h.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(drain(&mut h), vec![(2, "e")]);
        // A cancelled remote is quiet again.
        h.send(t0 + Duration::from_secs(61), 1, "f");
        assert_eq!(drain(&mut h), vec![(1, "f")]);
    }

    #[test]
    fn an_idle_remote_starts_again_at_the_minimum_blackout() {
        let t0 = Instant::now();
        let mut h = sender();
        let mut now = t0;
        for _ in 0..50 {
            h.send(now, 1, "m");
            now += MS;
        }
        let due = h.poll_timeout().unwrap();
        assert!(due - now > Duration::from_secs(1), "the blackout grew");
        h.handle_timeout(due);
        assert_eq!(drain(&mut h).len(), 2);
        // Long idle: the blackout shrank away; a quick pair waits only the minimum.
        let later = due + Duration::from_secs(3600);
        h.send(later, 1, "a");
        h.send(later + MS, 1, "b");
        assert_eq!(drain(&mut h), vec![(1, "a")]);
        assert_eq!(
            h.poll_timeout(),
            Some(later + MS + Duration::from_millis(250))
        );
    }

    #[test]
    fn flush_all_sends_everything_queued() {
        let t0 = Instant::now();
        let mut h = sender();
        h.send(t0, 1, "a");
        h.send(t0 + MS, 1, "b");
        h.send(t0, 2, "c");
        h.send(t0 + MS, 2, "d");
        drain(&mut h);
        h.flush_all();
        assert_eq!(drain(&mut h), vec![(1, "b"), (2, "d")]);
        assert_eq!(h.poll_timeout(), None);
    }
}
