//! Log records of actor processes, forwarded to the admin's log sink (SPEC §3).
//!
//! An actor process installs [`Forwarder`] as its `log` logger: every record at or above the
//! system's level becomes a `LogRecord` message to the admin, which logs it through its own
//! logger. A record logged while forwarding (the transport logs too) is dropped, so logging
//! never recurses.

use std::cell::Cell;
use std::sync::Arc;

use thespian_admin::protocol::LogRecord;
use thespian_core::{ActorAddress, Payload};

use crate::node::Node;

thread_local! {
    static FORWARDING: Cell<bool> = const { Cell::new(false) };
}

/// Sends log records to the admin.
pub(crate) struct Forwarder {
    node: Arc<Node>,
    actor: ActorAddress,
    level: log::LevelFilter,
}

impl Forwarder {
    /// Installs a forwarder for `actor`'s process (once per process; later calls are ignored).
    pub(crate) fn install(node: Arc<Node>, actor: ActorAddress, level: log::LevelFilter) {
        if level == log::LevelFilter::Off {
            return;
        }
        let forwarder = Forwarder { node, actor, level };
        if log::set_boxed_logger(Box::new(forwarder)).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for Forwarder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) || FORWARDING.with(Cell::get) {
            return;
        }
        FORWARDING.with(|f| f.set(true));
        let message = LogRecord {
            level: record.level() as u8,
            target: record.target().to_owned(),
            text: record.args().to_string(),
            actor: Some(self.actor.clone()),
            system: None,
        };
        let admin = self.node.admin();
        let _ = self.node.send(&self.actor, &admin, Payload::new(message));
        FORWARDING.with(|f| f.set(false));
    }

    fn flush(&self) {}
}

/// The most verbose level an env_logger-style filter lets through (what actor processes must
/// forward).
pub(crate) fn max_level(filter: &str) -> log::LevelFilter {
    env_logger::Builder::new()
        .parse_filters(filter)
        .build()
        .filter()
}
