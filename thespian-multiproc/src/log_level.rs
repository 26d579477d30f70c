//! The admin's log sink with a level that can change at run time (`thespian log-level`).
//!
//! env_logger fixes its filter when it is built, and `log::set_max_level` alone cannot let
//! through what that filter refuses. This logger keeps two env_loggers with the same format:
//! the one built from the system's filter (its per-module directives), used until an operator
//! sets a level, and one that lets everything through, used below the operator's level from
//! then on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// No level set by an operator: the start filter decides.
const UNSET: usize = usize::MAX;

/// The admin's logger: the start filter, or the level an operator set.
pub(crate) struct AdminLogger {
    configured: env_logger::Logger,
    everything: env_logger::Logger,
    /// `LevelFilter as usize` set by an operator, or [`UNSET`].
    level: Arc<AtomicUsize>,
}

/// Changes the installed [`AdminLogger`]'s level.
#[derive(Clone)]
pub(crate) struct LevelHandle {
    level: Arc<AtomicUsize>,
    start: log::LevelFilter,
}

impl LevelHandle {
    /// Sets the level for every target; returns the level before (the start filter's most
    /// verbose level until the first change).
    pub(crate) fn set(&self, level: log::LevelFilter) -> log::LevelFilter {
        let before = self.level.swap(level as usize, Ordering::AcqRel);
        log::set_max_level(level);
        level_from(before).unwrap_or(self.start)
    }
}

fn level_from(raw: usize) -> Option<log::LevelFilter> {
    [
        log::LevelFilter::Off,
        log::LevelFilter::Error,
        log::LevelFilter::Warn,
        log::LevelFilter::Info,
        log::LevelFilter::Debug,
        log::LevelFilter::Trace,
    ]
    .into_iter()
    .find(|l| *l as usize == raw)
}

impl AdminLogger {
    /// Installs the logger for `filter` (env_logger syntax) as the process's logger; `None`
    /// when another logger is already installed.
    pub(crate) fn install(filter: &str) -> Option<LevelHandle> {
        let configured = env_logger::Builder::new()
            .parse_filters(filter)
            .format_timestamp_millis()
            .build();
        let everything = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Trace)
            .format_timestamp_millis()
            .build();
        let start = configured.filter();
        let level = Arc::new(AtomicUsize::new(UNSET));
        let logger = AdminLogger {
            configured,
            everything,
            level: level.clone(),
        };
        log::set_boxed_logger(Box::new(logger)).ok()?;
        log::set_max_level(start);
        Some(LevelHandle { level, start })
    }
}

impl log::Log for AdminLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        match level_from(self.level.load(Ordering::Acquire)) {
            Some(level) => metadata.level() <= level,
            None => self.configured.enabled(metadata),
        }
    }

    fn log(&self, record: &log::Record<'_>) {
        match level_from(self.level.load(Ordering::Acquire)) {
            Some(level) if record.level() <= level => self.everything.log(record),
            Some(_) => {}
            None => self.configured.log(record),
        }
    }

    fn flush(&self) {
        self.configured.flush();
        self.everything.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::level_from;

    #[test]
    fn every_level_round_trips_and_unset_is_none() {
        for level in log::LevelFilter::iter() {
            assert_eq!(level_from(level as usize), Some(level));
        }
        assert_eq!(level_from(super::UNSET), None);
    }
}
