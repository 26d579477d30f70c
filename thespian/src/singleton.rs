//! The singleton rule, made visible: when `start()` returns the process's running system of
//! the same base instead of a new one, it refuses to ignore settings silently.
//!
//! This module exists because Thespian's rule (a non-transient `ActorSystem(base, ...)` of the
//! base already running reuses that system and ignores every other argument) hides mistakes:
//! a program that asks for another Admin Port or other capabilities gets the old system and
//! learns nothing. [`check_reuse`] compares what the new builder set with what the running
//! system was started with; a builder that sets nothing (Thespian's common
//! `ActorSystem(base)` to reach the running system) or the same settings passes.

use std::net::IpAddr;

use thespian_core::{Capabilities, Result, ThespianError};

use crate::simple::DEFAULT_PROCESSING_LIMIT;
use crate::system::SystemBase;

/// What a builder sets that a started system keeps.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Settings {
    pub(crate) capabilities: Capabilities,
    pub(crate) processing_limit: usize,
    pub(crate) queue_limit: usize,
    pub(crate) advertise_ip: Option<IpAddr>,
    /// Registered actor type names, sorted.
    pub(crate) types: Vec<&'static str>,
}

impl Settings {
    /// True for a builder that set none of the kept settings.
    fn is_default(&self) -> bool {
        self.capabilities.is_empty()
            && self.processing_limit == DEFAULT_PROCESSING_LIMIT
            && self.queue_limit == thespian_core::base::DEFAULT_QUEUE_LIMIT
            && self.advertise_ip.is_none()
            && self.types.is_empty()
    }

    /// What differs between the running system's settings and `asked`, one phrase each.
    fn differences(&self, asked: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        let running = &self.capabilities;
        let wanted = &asked.capabilities;
        for (key, value) in wanted.iter() {
            match running.get(key) {
                Some(now) if now == value => {}
                Some(now) => out.push(format!("capability {key:?} is {now}, not {value}")),
                None => out.push(format!("capability {key:?} is not set, not {value}")),
            }
        }
        for (key, now) in running.iter() {
            if wanted.get(key).is_none() {
                out.push(format!("capability {key:?} is {now}, not unset"));
            }
        }
        if self.processing_limit != asked.processing_limit {
            out.push(format!(
                "the processing limit is {}, not {}",
                self.processing_limit, asked.processing_limit
            ));
        }
        if self.queue_limit != asked.queue_limit {
            out.push(format!(
                "the queue limit is {}, not {}",
                self.queue_limit, asked.queue_limit
            ));
        }
        if self.advertise_ip != asked.advertise_ip {
            out.push(format!(
                "the advertised address is {:?}, not {:?}",
                self.advertise_ip, asked.advertise_ip
            ));
        }
        if self.types != asked.types {
            out.push(format!(
                "the registered actor types are {:?}, not {:?}",
                self.types, asked.types
            ));
        }
        out
    }
}

/// May a builder with `asked` settings be given the running system of `base`, started with
/// `running`? Yes when it set nothing or the same; otherwise a `StartupFailure` naming the
/// differences.
pub(crate) fn check_reuse(base: SystemBase, running: &Settings, asked: &Settings) -> Result<()> {
    if asked.is_default() || running == asked {
        return Ok(());
    }
    Err(ThespianError::StartupFailure(format!(
        "a {base} system is already running in this process and start() would return it, \
         ignoring what this builder sets ({}): shut it down first, or start a separate system \
         with transient_unique(true)",
        running.differences(asked).join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn settings(caps: &[(&str, i64)], queue_limit: usize) -> Settings {
        let mut capabilities = Capabilities::new();
        for (k, v) in caps {
            capabilities.set(*k, *v);
        }
        Settings {
            capabilities,
            processing_limit: DEFAULT_PROCESSING_LIMIT,
            queue_limit,
            advertise_ip: None,
            types: Vec::new(),
        }
    }

    const Q: usize = thespian_core::base::DEFAULT_QUEUE_LIMIT;

    #[test]
    fn nothing_set_or_the_same_reuses() {
        let running = settings(&[("Admin Port", 1950)], Q);
        assert!(check_reuse(SystemBase::Tcp, &running, &settings(&[], Q)).is_ok());
        assert!(check_reuse(SystemBase::Tcp, &running, &running.clone()).is_ok());
    }

    #[test]
    fn another_setting_is_named_in_the_error() {
        let running = settings(&[("Admin Port", 1950)], Q);
        let error = check_reuse(
            SystemBase::Tcp,
            &running,
            &settings(&[("Admin Port", 1951)], Q),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("\"Admin Port\" is 1950, not 1951"),
            "{error}"
        );
        assert!(error.contains("transient_unique(true)"), "{error}");
        let error = check_reuse(SystemBase::Queue, &running, &settings(&[], 7))
            .unwrap_err()
            .to_string();
        assert!(error.contains("queue limit"), "{error}");
    }

    proptest! {
        /// Reuse is refused exactly when the builder set something and it differs.
        #[test]
        fn refused_iff_set_and_different(
            a in proptest::collection::btree_map("[a-c]", 0i64..3, 0..3),
            b in proptest::collection::btree_map("[a-c]", 0i64..3, 0..3),
            qa in prop_oneof![Just(Q), Just(5usize)],
            qb in prop_oneof![Just(Q), Just(5usize)],
        ) {
            let pairs = |m: &std::collections::BTreeMap<String, i64>| {
                m.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>()
            };
            let to_settings = |p: Vec<(String, i64)>, q| {
                let refs: Vec<(&str, i64)> = p.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                settings(&refs, q)
            };
            let running = to_settings(pairs(&a), qa);
            let asked = to_settings(pairs(&b), qb);
            let refused = check_reuse(SystemBase::Simple, &running, &asked).is_err();
            let expected = !(b.is_empty() && qb == Q) && (a != b || qa != qb);
            prop_assert_eq!(refused, expected);
            if refused {
                prop_assert!(!running.differences(&asked).is_empty());
            }
        }
    }
}
