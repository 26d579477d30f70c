//! The convention's periods, and the leader list a system is configured with.
//!
//! Thespian's timing constants are kept as defaults (SPEC §8.11) and may be overridden from the
//! environment with Thespian's variable names, so a test can run a convention with periods of
//! milliseconds. The environment is read by the driver: [`Timing::from_env`] takes a lookup
//! function, which keeps this crate free of process state.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use thespian_core::{keys, CapabilityValue};

use crate::hysteresis::HysteresisConfig;

/// How often the convention talks, and how long silence is tolerated.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// How often a member re-registers with its leader candidates (Thespian: 7 m 22 s).
    /// A registration is valid for `miss_max` of these.
    pub reregistration_period: Duration,
    /// How often a registration nobody answered yet is retried (Thespian: 3 m 22 s).
    pub restart_period: Duration,
    /// Registration periods (or failed sends) without a word before a remote is dropped
    /// (Thespian: 3).
    pub miss_max: u32,
    /// Re-invitations of a pre-registered remote are sent `reinvite_adjustment` times the
    /// registration period apart (times the restart period while it is absent; Thespian: 1.1).
    pub reinvite_adjustment: f64,
    /// How often each system probes the leader candidates it is registered with (default: an
    /// eighth of the registration period); one not heard from within the last of these is
    /// probed again half of it later. Not in Thespian.
    pub leader_probe_period: Duration,
    /// A leader candidate not heard from for this long is taken as down for leader selection,
    /// long before its registration expires (default: three quarters of the registration
    /// period). Not in Thespian.
    pub leader_timeout: Duration,
    /// The back-off of admin-to-admin traffic (Thespian's: 250 ms, 45 s, 1.2).
    pub hysteresis: HysteresisConfig,
}

impl Default for Timing {
    /// Thespian's: 7 m 22 s, 3 m 22 s, 3 misses, 1.1.
    fn default() -> Timing {
        Timing::with_periods(
            Duration::from_secs(7 * 60 + 22),
            Duration::from_secs(3 * 60 + 22),
        )
    }
}

impl Timing {
    /// Thespian's defaults with other periods; the leader probe period and timeout follow the
    /// registration period (an eighth and three quarters of it), and so does the hysteresis
    /// (Thespian's 250 ms / 45 s, scaled down with a shorter period so the back-off never
    /// holds a probe longer than the period it belongs to).
    pub fn with_periods(reregistration_period: Duration, restart_period: Duration) -> Timing {
        Timing {
            reregistration_period,
            restart_period,
            miss_max: 3,
            reinvite_adjustment: 1.1,
            leader_probe_period: reregistration_period / 8,
            leader_timeout: reregistration_period * 3 / 4,
            hysteresis: scaled_hysteresis(reregistration_period),
        }
    }

    /// How long a registration stays valid without a word: `miss_max` registration periods.
    pub fn registration_validity(&self) -> Duration {
        self.reregistration_period * self.miss_max
    }

    /// How long after an incarnation was replaced at its socket (a restart) its messages are
    /// still taken as late ones, delayed or duplicated on the way, and ignored: one leader
    /// probe period, far longer than a message is in flight. A message from it after that
    /// shows that it still runs.
    pub fn late_window(&self) -> Duration {
        self.leader_probe_period
    }

    /// Thespian's defaults, overridden by the variables `lookup` finds:
    /// `CONVENTION_REREGISTRATION_PERIOD` and `CONVENTION_RESTART_PERIOD` (`"M:S"`, the seconds
    /// may be fractional: `"0:0.05"`), `CONVENTION_REGISTRATION_MISS_MAX` (an integer ≥ 1),
    /// `CONVENTION_REINVITE_ADJUSTMENT` (a number > 0), and this crate's own
    /// `CONVENTION_LEADER_PROBE_PERIOD` and `CONVENTION_LEADER_TIMEOUT` (`"M:S"`; by default
    /// derived from the registration period). A bad value is an `Err` naming the variable.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Timing, String> {
        let defaults = Timing::default();
        let period = |name: &str, default: Duration| -> Result<Duration, String> {
            match lookup(name) {
                None => Ok(default),
                Some(text) => {
                    parse_minutes_seconds(&text).map_err(|why| format!("{name}={text:?}: {why}"))
                }
            }
        };
        let reregistration_period = period(
            "CONVENTION_REREGISTRATION_PERIOD",
            defaults.reregistration_period,
        )?;
        let restart_period = period("CONVENTION_RESTART_PERIOD", defaults.restart_period)?;
        let mut timing = Timing::with_periods(reregistration_period, restart_period);
        timing.leader_probe_period =
            period("CONVENTION_LEADER_PROBE_PERIOD", timing.leader_probe_period)?;
        timing.leader_timeout = period("CONVENTION_LEADER_TIMEOUT", timing.leader_timeout)?;
        if let Some(text) = lookup("CONVENTION_REGISTRATION_MISS_MAX") {
            timing.miss_max = match text.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(format!(
                    "CONVENTION_REGISTRATION_MISS_MAX={text:?}: expected an integer of at least 1"
                ))
                }
            };
        }
        if let Some(text) = lookup("CONVENTION_REINVITE_ADJUSTMENT") {
            timing.reinvite_adjustment = match text.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => x,
                _ => {
                    return Err(format!(
                        "CONVENTION_REINVITE_ADJUSTMENT={text:?}: expected a number greater than 0"
                    ))
                }
            };
        }
        Ok(timing)
    }
}

/// Parses Thespian's `"M:S"` (minutes, then seconds that may be fractional); the result must
/// not be zero.
fn parse_minutes_seconds(text: &str) -> Result<Duration, String> {
    let (minutes, seconds) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| "expected \"M:S\", e.g. \"7:22\" or \"0:0.05\"".to_string())?;
    let minutes: u64 = minutes
        .trim()
        .parse()
        .map_err(|_| format!("bad minutes {minutes:?} in \"M:S\""))?;
    let seconds: f64 = seconds
        .trim()
        .parse()
        .map_err(|_| format!("bad seconds {seconds:?} in \"M:S\""))?;
    if !(0.0..=1e9).contains(&seconds) || minutes > 1_000_000 {
        return Err("out of range".into());
    }
    let total = Duration::from_secs(minutes * 60) + Duration::from_secs_f64(seconds);
    if total.is_zero() {
        return Err("a period must be longer than zero".into());
    }
    Ok(total)
}

/// The leader candidates named by the `Convention Address.IPv4` capability's value: one
/// `"a.b.c.d[:port]"` or a list of them, in order (the first live one leads). An address
/// without a port means `admin_port` (SPEC §8.7); duplicates after the first are dropped. No
/// value: no leaders (this system is standalone unless invited). A value that is not an IPv4
/// address (host names are not resolved here) is an `Err` naming the capability.
pub fn leaders_from_capability(
    value: Option<&CapabilityValue>,
    admin_port: u16,
) -> Result<Vec<SocketAddrV4>, String> {
    let key = keys::CONVENTION_ADDRESS_IPV4;
    let one = |v: &CapabilityValue| -> Result<SocketAddrV4, String> {
        let text = v.as_str().ok_or_else(|| {
            format!("{key}: expected \"a.b.c.d[:port]\" or a list of them, found {v}")
        })?;
        parse_leader(text.trim(), admin_port)
            .ok_or_else(|| format!("{key}: {text:?} is not an IPv4 address \"a.b.c.d[:port]\""))
    };
    let mut leaders: Vec<SocketAddrV4> = Vec::new();
    let mut push = |a: SocketAddrV4| {
        if !leaders.contains(&a) {
            leaders.push(a);
        }
    };
    match value {
        None => {}
        Some(CapabilityValue::List(list)) => {
            for v in list {
                push(one(v)?);
            }
        }
        Some(v) => push(one(v)?),
    }
    Ok(leaders)
}

/// `a.b.c.d` or `a.b.c.d:port` (port 1..=65535).
fn parse_leader(text: &str, admin_port: u16) -> Option<SocketAddrV4> {
    match text.split_once(':') {
        None => Some(SocketAddrV4::new(
            text.parse::<Ipv4Addr>().ok()?,
            admin_port,
        )),
        Some((ip, port)) => {
            let port: u16 = port.parse().ok()?;
            (port != 0).then_some(SocketAddrV4::new(ip.parse().ok()?, port))
        }
    }
}

/// Thespian's registration period, the scale of its hysteresis.
const THESPIAN_PERIOD: Duration = Duration::from_secs(7 * 60 + 22);

/// Thespian's hysteresis for Thespian's period; for a shorter one, both bounds shrink in
/// proportion (a 0.5 s period gets about 0.3 ms to 51 ms).
fn scaled_hysteresis(period: Duration) -> HysteresisConfig {
    let thespian = HysteresisConfig::default();
    if period >= THESPIAN_PERIOD {
        return thespian;
    }
    let ratio = period.as_secs_f64() / THESPIAN_PERIOD.as_secs_f64();
    HysteresisConfig {
        min: thespian.min.mul_f64(ratio),
        max: thespian.max.mul_f64(ratio),
        rate: thespian.rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_thespians() {
        let t = Timing::default();
        assert_eq!(t.reregistration_period, Duration::from_secs(442));
        assert_eq!(t.restart_period, Duration::from_secs(202));
        assert_eq!(t.miss_max, 3);
        assert_eq!(t.reinvite_adjustment, 1.1);
        assert_eq!(t.registration_validity(), Duration::from_secs(1326));
        assert_eq!(Timing::from_env(env(&[])).unwrap(), t);
        assert_eq!(t.hysteresis, HysteresisConfig::default());
    }

    #[test]
    fn a_shorter_period_shrinks_the_hysteresis_with_it() {
        let t = Timing::with_periods(Duration::from_millis(500), Duration::from_millis(500));
        // Never longer than a probe period: a probe is never held past the next one.
        assert!(t.hysteresis.max < t.leader_probe_period, "{t:?}");
        assert!(t.hysteresis.min > Duration::ZERO);
        assert!(t.hysteresis.min < t.hysteresis.max);
        assert_eq!(t.hysteresis.rate, HysteresisConfig::default().rate);
    }

    #[test]
    fn environment_overrides_each_value() {
        let t = Timing::from_env(env(&[
            ("CONVENTION_REREGISTRATION_PERIOD", "0:0.05"),
            ("CONVENTION_RESTART_PERIOD", "1:30"),
            ("CONVENTION_REGISTRATION_MISS_MAX", "5"),
            ("CONVENTION_REINVITE_ADJUSTMENT", "2.5"),
        ]))
        .unwrap();
        assert_eq!(t.reregistration_period, Duration::from_millis(50));
        assert_eq!(t.restart_period, Duration::from_secs(90));
        assert_eq!(t.miss_max, 5);
        assert_eq!(t.reinvite_adjustment, 2.5);
        // The leader probing follows the registration period unless given.
        assert_eq!(t.leader_probe_period, Duration::from_millis(50) / 8);
        let t = Timing::from_env(env(&[("CONVENTION_LEADER_TIMEOUT", "0:2")])).unwrap();
        assert_eq!(t.leader_timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("CONVENTION_REREGISTRATION_PERIOD", "7"),
            ("CONVENTION_REREGISTRATION_PERIOD", "0:0"),
            ("CONVENTION_RESTART_PERIOD", "a:3"),
            ("CONVENTION_RESTART_PERIOD", "1:-3"),
            ("CONVENTION_REGISTRATION_MISS_MAX", "0"),
            ("CONVENTION_REGISTRATION_MISS_MAX", "three"),
            ("CONVENTION_REINVITE_ADJUSTMENT", "-1"),
            ("CONVENTION_REINVITE_ADJUSTMENT", "NaN"),
            ("CONVENTION_LEADER_PROBE_PERIOD", "1:x"),
        ] {
            let err = Timing::from_env(env(&[(name, value)])).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn leader_list_from_the_capability() {
        let a = |s: &str| s.parse::<SocketAddrV4>().unwrap();
        assert_eq!(leaders_from_capability(None, 1900), Ok(vec![]));
        assert_eq!(
            leaders_from_capability(Some(&"10.0.0.1".into()), 1900),
            Ok(vec![a("10.0.0.1:1900")])
        );
        assert_eq!(
            leaders_from_capability(
                Some(&vec!["10.0.0.1:2000", "10.0.0.2", "10.0.0.1:2000"].into()),
                1900
            ),
            Ok(vec![a("10.0.0.1:2000"), a("10.0.0.2:1900")])
        );
        for bad in [
            CapabilityValue::from("leader.example:1900"),
            CapabilityValue::from("10.0.0.1:0"),
            CapabilityValue::from("10.0.0.1:70000"),
            CapabilityValue::from(5),
            CapabilityValue::from(vec![CapabilityValue::from(1)]),
        ] {
            let err = leaders_from_capability(Some(&bad), 1900).unwrap_err();
            assert!(err.contains(keys::CONVENTION_ADDRESS_IPV4), "{err}");
        }
    }
}
