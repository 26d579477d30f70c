//! Capabilities of an actor system and requirements of a create request.
//!
//! Thespian's capabilities were a free-form Python dict. Here the values are typed (bool, int,
//! float, string, list) so a bad value is caught at `start()` with a clear error instead of
//! surfacing as a confusing failure later, and the truthiness rule of `requireCapability` is
//! written down once ([`CapabilityValue::is_truthy`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Thespian's well-known capability keys, verbatim.
pub mod keys {
    /// TCP/UDP admin listening port (TCP default 1900, UDP 1029).
    pub const ADMIN_PORT: &str = "Admin Port";
    /// Queue base admin name (cosmetic).
    pub const ADMIN_ADDRESS: &str = "Admin Address";
    /// The convention leader's admin address, or a list of candidate leaders.
    pub const CONVENTION_ADDRESS_IPV4: &str = "Convention Address.IPv4";
    /// All actor addresses of this system route through its admin.
    pub const ADMIN_ROUTING: &str = "Admin Routing";
    /// This system accepts no inbound connections.
    pub const OUTBOUND_ONLY: &str = "Outbound Only";
    /// `spawn` (an OS process per actor) or `thread` (inside the admin process).
    pub const PROCESS_STARTUP_METHOD: &str = "Process Startup Method";
    /// The Thespian base name, e.g. `simpleSystemBase`.
    pub const ACTOR_SYSTEM_NAME: &str = "Thespian ActorSystem Name";
    /// The protocol version of the base.
    pub const ACTOR_SYSTEM_VERSION: &str = "Thespian ActorSystem Version";
    /// The thespian-rs crate version.
    pub const THESPIAN_VERSION: &str = "Thespian Version";
    /// `[major, minor]` of the Thespian feature generation this crate implements.
    pub const THESPIAN_GENERATION: &str = "Thespian Generation";
    /// Whether file-descriptor watches are supported by this base.
    pub const WATCH_SUPPORTED: &str = "Thespian Watch Supported";
    /// Whether remote members may send actor sources (`yes`, `LeaderOnly`, anything else: no).
    pub const ALLOW_REMOTE_ACTOR_SOURCES: &str = "AllowRemoteActorSources";
    /// Worker threads of the queue base.
    pub const WORKER_THREADS: &str = "Worker Threads";
    /// Multi-process bases: the path of the system's secret file (thespian-rs; see
    /// `thespian_auth::secret`). Fixed when the system starts: updates are refused.
    pub const SECRET_FILE: &str = "Thespian Secret File";
    /// Multi-process bases: seconds between a member's convention registrations (thespian-rs;
    /// Thespian's `CONVENTION_REREGISTRATION_PERIOD`, 7 m 22 s). Fixed when the system starts.
    pub const CONVENTION_REREGISTRATION_PERIOD: &str = "Convention Reregistration Period";
    /// Multi-process bases: seconds between invitations to a pre-registered system that is
    /// absent (thespian-rs; Thespian's `CONVENTION_RESTART_PERIOD`, 3 m 22 s). Fixed at start.
    pub const CONVENTION_RESTART_PERIOD: &str = "Convention Restart Period";
    /// Multi-process bases: registrations a member may miss before it is dropped (thespian-rs;
    /// Thespian's `CONVENTION_REGISTRATION_MISS_MAX`, 3). Fixed when the system starts.
    pub const CONVENTION_REGISTRATION_MISS_MAX: &str = "Convention Registration Miss Max";
}

/// Keys read once when a system starts: an update while it runs is refused (restart instead).
const FIXED_AT_START: [&str; 5] = [
    keys::SECRET_FILE,
    keys::CONVENTION_ADDRESS_IPV4,
    keys::CONVENTION_REREGISTRATION_PERIOD,
    keys::CONVENTION_RESTART_PERIOD,
    keys::CONVENTION_REGISTRATION_MISS_MAX,
];

/// Whether the capability `key` may be changed while the system runs: the secret file may not
/// (every process of the system read it at its start, and a peer that could point it elsewhere
/// could stop actors from starting or probe the owner's files), nor the convention's settings
/// (the admin joined its convention with them).
pub fn check_update(key: &str) -> Result<(), CapabilityError> {
    if FIXED_AT_START.contains(&key) {
        return Err(CapabilityError {
            key: key.to_owned(),
            reason: "fixed when the system starts; restart the system to change it".into(),
        });
    }
    Ok(())
}

/// Everything a capability update must pass before a base applies it: `key` may change while
/// the system runs ([`check_update`]) and a new `value` suits `key` ([`validate`]). The two
/// ways in, `ActorSystem::update_capability` and `Context::update_capability`, call it, so a
/// base's own `update_capability` only makes the change.
pub fn check_change(key: &str, value: Option<&CapabilityValue>) -> Result<(), CapabilityError> {
    check_update(key)?;
    match value {
        Some(value) => validate(key, value),
        None => Ok(()),
    }
}

/// The Thespian feature generation this crate implements (`ThespianGeneration`).
pub const THESPIAN_GENERATION: (i64, i64) = (3, 10);

/// A typed capability (or requirement) value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CapabilityValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A list of values (e.g. several convention leaders).
    List(Vec<CapabilityValue>),
}

impl CapabilityValue {
    /// Thespian's truthiness: `false`, `0`, `0.0`, `""` and `[]` are false, everything else true.
    pub fn is_truthy(&self) -> bool {
        match self {
            CapabilityValue::Bool(b) => *b,
            CapabilityValue::Int(i) => *i != 0,
            CapabilityValue::Float(x) => *x != 0.0,
            CapabilityValue::Str(s) => !s.is_empty(),
            CapabilityValue::List(l) => !l.is_empty(),
        }
    }

    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            CapabilityValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as an integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            CapabilityValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a float (integers widen), if it is a number.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            CapabilityValue::Float(x) => Some(*x),
            CapabilityValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            CapabilityValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a list, if it is one.
    pub fn as_list(&self) -> Option<&[CapabilityValue]> {
        match self {
            CapabilityValue::List(l) => Some(l),
            _ => None,
        }
    }

    /// The kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            CapabilityValue::Bool(_) => "bool",
            CapabilityValue::Int(_) => "int",
            CapabilityValue::Float(_) => "float",
            CapabilityValue::Str(_) => "string",
            CapabilityValue::List(_) => "list",
        }
    }
}

impl fmt::Display for CapabilityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapabilityValue::Bool(b) => write!(f, "{b}"),
            CapabilityValue::Int(i) => write!(f, "{i}"),
            CapabilityValue::Float(x) => write!(f, "{x}"),
            CapabilityValue::Str(s) => write!(f, "{s:?}"),
            CapabilityValue::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

macro_rules! value_from {
    ($($ty:ty => |$v:ident| $e:expr),+ $(,)?) => {
        $( impl From<$ty> for CapabilityValue { fn from($v: $ty) -> Self { $e } } )+
    };
}

value_from!(
    bool => |v| CapabilityValue::Bool(v),
    i64 => |v| CapabilityValue::Int(v),
    i32 => |v| CapabilityValue::Int(v.into()),
    u16 => |v| CapabilityValue::Int(v.into()),
    u32 => |v| CapabilityValue::Int(v.into()),
    f64 => |v| CapabilityValue::Float(v),
    String => |v| CapabilityValue::Str(v),
    &str => |v| CapabilityValue::Str(v.to_owned()),
);

impl<T: Into<CapabilityValue>> From<Vec<T>> for CapabilityValue {
    fn from(v: Vec<T>) -> Self {
        CapabilityValue::List(v.into_iter().map(Into::into).collect())
    }
}

/// A map from capability names to typed values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities(BTreeMap<String, CapabilityValue>);

impl Capabilities {
    /// An empty map.
    pub const fn new() -> Capabilities {
        Capabilities(BTreeMap::new())
    }

    /// Builder-style insert.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<CapabilityValue>) -> Self {
        self.set(key, value);
        self
    }

    /// Sets `key`; returns the previous value.
    pub fn set(
        &mut self,
        key: impl Into<String>,
        value: impl Into<CapabilityValue>,
    ) -> Option<CapabilityValue> {
        self.0.insert(key.into(), value.into())
    }

    /// Removes `key`; returns the previous value.
    pub fn remove(&mut self, key: &str) -> Option<CapabilityValue> {
        self.0.remove(key)
    }

    /// Sets (`Some`) or removes (`None`) `key`; returns true when the map changed.
    pub fn update(&mut self, key: &str, value: Option<CapabilityValue>) -> bool {
        match value {
            Some(v) => self.0.insert(key.to_owned(), v.clone()).as_ref() != Some(&v),
            None => self.0.remove(key).is_some(),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&CapabilityValue> {
        self.0.get(key)
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// True when `key` is present and truthy (see [`CapabilityValue::is_truthy`]).
    pub fn is_truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(CapabilityValue::is_truthy)
    }

    /// The bool at `key`: `Ok(None)` when absent, an error when it has another type.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, CapabilityError> {
        self.typed(key, "bool", CapabilityValue::as_bool)
    }

    /// The integer at `key`: `Ok(None)` when absent, an error when it has another type.
    pub fn get_int(&self, key: &str) -> Result<Option<i64>, CapabilityError> {
        self.typed(key, "int", CapabilityValue::as_int)
    }

    /// The number at `key`: `Ok(None)` when absent, an error when it is not a number.
    pub fn get_float(&self, key: &str) -> Result<Option<f64>, CapabilityError> {
        self.typed(key, "float", CapabilityValue::as_float)
    }

    /// The string at `key`: `Ok(None)` when absent, an error when it has another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, CapabilityError> {
        self.typed(key, "string", CapabilityValue::as_str)
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        f: impl FnOnce(&'a CapabilityValue) -> Option<T>,
    ) -> Result<Option<T>, CapabilityError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| CapabilityError {
                key: key.to_owned(),
                reason: format!("expected {expected}, found {} {v}", v.kind()),
            }),
        }
    }

    /// Iterates over the entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &CapabilityValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<CapabilityValue>> FromIterator<(K, V)> for Capabilities {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Capabilities(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// The requirements a create request places on the system that hosts the new actor.
///
/// Same shape as [`Capabilities`]; given to the actor's capability check and constructor.
pub type Requirements = Capabilities;

/// A capability with a value of the wrong type, or an otherwise unusable value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityError {
    /// The capability's name.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad capability {:?}: {}", self.key, self.reason)
    }
}

impl std::error::Error for CapabilityError {}

/// Checks the value of a capability the framework interprets (bases call this at `start()` and
/// on every update): a wrongly typed or out-of-range value is a clear error, never a later
/// confusing failure. Free-form keys accept any value.
pub fn validate(key: &str, value: &CapabilityValue) -> Result<(), CapabilityError> {
    let bad = |reason: String| {
        Err(CapabilityError {
            key: key.to_owned(),
            reason,
        })
    };
    match key {
        keys::ADMIN_PORT => match value.as_int() {
            // 0: the multi-process bases start their daemon on a free port the OS chooses.
            Some(p) if (0..=65535).contains(&p) => Ok(()),
            Some(p) => bad(format!("port {p} is outside 0..=65535")),
            None => bad(format!(
                "expected an int port, found {} {value}",
                value.kind()
            )),
        },
        keys::WORKER_THREADS => match value.as_int() {
            Some(n) if (1..=4096).contains(&n) => Ok(()),
            _ => bad(format!(
                "expected an int from 1 to 4096, found {} {value}",
                value.kind()
            )),
        },
        keys::ADMIN_ROUTING | keys::OUTBOUND_ONLY => match value {
            CapabilityValue::Bool(_) => Ok(()),
            _ => bad(format!("expected a bool, found {} {value}", value.kind())),
        },
        keys::CONVENTION_REREGISTRATION_PERIOD | keys::CONVENTION_RESTART_PERIOD => {
            match value.as_float() {
                Some(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(()),
                _ => bad(format!(
                    "expected seconds (an int or float above 0, at most a day), found {} {value}",
                    value.kind()
                )),
            }
        }
        keys::CONVENTION_REGISTRATION_MISS_MAX => match value.as_int() {
            Some(n) if (1..=1000).contains(&n) => Ok(()),
            _ => bad(format!(
                "expected an int from 1 to 1000, found {} {value}",
                value.kind()
            )),
        },
        keys::PROCESS_STARTUP_METHOD => match value.as_str() {
            Some("spawn" | "thread") => Ok(()),
            _ => bad(format!("expected \"spawn\" or \"thread\", found {value}")),
        },
        keys::CONVENTION_ADDRESS_IPV4 => {
            let ok = match value {
                CapabilityValue::Str(_) => true,
                CapabilityValue::List(l) => l.iter().all(|v| v.as_str().is_some()),
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                bad(format!(
                    "expected \"host:port\" or a list of them, found {value}"
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Validates every entry of `caps` (see [`validate`]).
pub fn validate_all(caps: &Capabilities) -> Result<(), CapabilityError> {
    caps.iter().try_for_each(|(k, v)| validate(k, v))
}

/// One condition of `requireCapability`: the capability must be truthy, or equal a value.
#[derive(Clone, Debug, PartialEq)]
pub struct RequireCapability {
    key: String,
    value: Option<CapabilityValue>,
}

impl RequireCapability {
    /// The capability must be present and truthy (Thespian 3.8+ rule).
    pub fn truthy(key: impl Into<String>) -> RequireCapability {
        RequireCapability {
            key: key.into(),
            value: None,
        }
    }

    /// The capability must equal `value`.
    pub fn equals(key: impl Into<String>, value: impl Into<CapabilityValue>) -> RequireCapability {
        RequireCapability {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// The capability's name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// True when `caps` satisfy this condition.
    pub fn is_met(&self, caps: &Capabilities) -> bool {
        match &self.value {
            None => caps.is_truthy(&self.key),
            Some(v) => caps.get(&self.key) == Some(v),
        }
    }
}

impl fmt::Display for RequireCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            None => write!(f, "{:?} truthy", self.key),
            Some(v) => write!(f, "{:?} == {v}", self.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness_follows_thespian() {
        let caps = Capabilities::new()
            .with("s", "truthy string")
            .with("one", 1i64)
            .with("empty", "")
            .with("zero", 0i64)
            .with("no", false);
        assert!(RequireCapability::truthy("s").is_met(&caps));
        assert!(RequireCapability::truthy("one").is_met(&caps));
        for k in ["empty", "zero", "no", "absent"] {
            assert!(!RequireCapability::truthy(k).is_met(&caps), "{k}");
        }
        assert!(RequireCapability::equals("one", 1i64).is_met(&caps));
        assert!(
            !RequireCapability::equals("One", 1i64).is_met(&caps),
            "keys are case-sensitive"
        );
    }

    #[test]
    fn typed_getters_report_wrong_types() {
        let caps = Capabilities::new().with("Admin Port", "1900");
        let err = caps.get_int("Admin Port").unwrap_err();
        assert!(err.to_string().contains("expected int"), "{err}");
        assert_eq!(caps.get_int("missing"), Ok(None));
    }

    #[test]
    fn validate_rejects_bad_framework_values() {
        assert!(validate(keys::ADMIN_PORT, &"1900".into()).is_err());
        assert!(validate(keys::ADMIN_PORT, &70000i64.into()).is_err());
        assert!(validate(keys::ADMIN_PORT, &1900i64.into()).is_ok());
        assert!(validate(keys::PROCESS_STARTUP_METHOD, &"fork".into()).is_err());
        assert!(validate("free form", &"anything".into()).is_ok());
    }

    #[test]
    fn convention_timing_values_are_checked_and_fixed_at_start() {
        let period = keys::CONVENTION_REREGISTRATION_PERIOD;
        assert!(validate(period, &0.05.into()).is_ok());
        assert!(validate(period, &2i64.into()).is_ok());
        assert!(validate(period, &0i64.into()).is_err());
        assert!(validate(period, &f64::NAN.into()).is_err());
        assert!(validate(period, &"7:22".into()).is_err());
        assert!(validate(keys::CONVENTION_RESTART_PERIOD, &(-1.0).into()).is_err());
        let misses = keys::CONVENTION_REGISTRATION_MISS_MAX;
        assert!(validate(misses, &3i64.into()).is_ok());
        assert!(validate(misses, &0i64.into()).is_err());
        for key in FIXED_AT_START {
            let refused = check_change(key, None).expect_err(key);
            assert!(refused.to_string().contains("fixed when the system starts"));
        }
        assert!(check_change("Morse", Some(&true.into())).is_ok());
    }

    #[test]
    fn update_reports_change() {
        let mut caps = Capabilities::new();
        assert!(caps.update("a", Some(true.into())));
        assert!(!caps.update("a", Some(true.into())));
        assert!(caps.update("a", None));
        assert!(!caps.update("a", None));
    }
}
