//! The Queue base of thespian-rs: Thespian's `multiprocQueueBase`, rebuilt as threads.
//!
//! Thespian needed processes for parallelism; Rust does not. This base runs many actors in one
//! process, multiplexed M:N on a pool of worker threads (one per core by default; capability
//! `Worker Threads` sets the count). It is the multi-threaded driver of the same sans-IO
//! machines the `Simple` base drives synchronously (`thespian_core::ActorCell` for what one
//! message does to one actor, `thespian_core::Registry` for creates, names, dead letters and
//! capabilities), so every lifecycle rule is shared and only scheduling lives here:
//!
//! * `mailbox`: per-actor mailboxes whose state byte makes an actor run on
//!   one worker at a time and keeps each sender's order;
//! * `scheduler`: local queues with a `next` slot, a global injector, work
//!   stealing, bounded batches for fairness, spinning then parking idle workers;
//! * `directory`: the sharded address → mailbox map of the send path;
//! * `timer`: one heap and one thread for every `wakeup_after`;
//! * `watches`: with the `watch` feature, `thespian-io`'s one mio poller for `ctx.watch(&fds)`
//!   (without it, `ctx.watch` is `NotSupported` and the crate needs neither mio nor libc);
//! * `runtime`: delivery, the worker loop, the `Services` of the machines,
//!   external endpoints and shutdown.
//!
//! Back-pressure (SPEC §8.13): what one sender may have queued to one actor (sent, and not yet
//! handled by it) is bounded by [`QueueConfig::queue_limit`]; over it, `tell` and `ctx.send`
//! fail with `QueueFull` at once. The count lives in the target's mailbox, under the lock every
//! push takes anyway (see `mailbox`).
//!
//! The facade selects it with `SystemBase::Queue`; [`QueueBase::start_with`] is all it calls.

#![warn(missing_docs)]

mod directory;
mod locks;
mod mailbox;
mod runtime;
mod scheduler;
mod sync;
mod timer;
mod watches;

use std::sync::Arc;
use std::time::{Duration, Instant};

use thespian_core::base;
use thespian_core::registry::with_common_capabilities;
use thespian_core::{
    keys, ActorAddress, BaseDriver, Capabilities, CapabilityValue, CreateRequest, Envelope,
    Payload, Result, SystemId, ThespianError,
};

use crate::runtime::Inner;

/// Thespian's name of this base (`Thespian ActorSystem Name`).
pub const BASE_NAME: &str = "multiprocQueueBase";
/// `Thespian ActorSystem Version` of this base.
pub const BASE_VERSION: i64 = 1;
/// Cosmetic `Admin Address` capability, as in Thespian.
const ADMIN_ADDRESS: &str = "ThespianQ";

/// Settings of a Queue system that are not capabilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// What one sender may have queued to one actor: messages sent and not yet handled by the
    /// target (counted down as the target's worker handles them, at most 64 messages late).
    /// Over it, the send fails with `ThespianError::QueueFull` at once and nothing is queued.
    /// Each sender counts on its own: an actor, or an external endpoint (one per `ActorSystem`
    /// handle and per `private()` handle). The framework's own messages (system messages such
    /// as `ChildActorExited`, `PoisonMessage` or an exit request) are never refused.
    /// Messages to external endpoints are not bounded. Default:
    /// [`DEFAULT_QUEUE_LIMIT`](thespian_core::base::DEFAULT_QUEUE_LIMIT).
    pub queue_limit: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            queue_limit: thespian_core::base::DEFAULT_QUEUE_LIMIT,
        }
    }
}

/// A running Queue system: what the facade drives (see [`BaseDriver`]).
///
/// Dropping it shuts the system down (and joins its threads) if that has not happened yet.
pub struct QueueBase {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QueueBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueBase")
            .field("admin", self.inner.admin())
            .finish_non_exhaustive()
    }
}

impl QueueBase {
    /// Starts a Queue system with identity `system`, the user's `capabilities` and the default
    /// [`QueueConfig`] (see [`QueueBase::start_with`]).
    pub fn start(system: SystemId, capabilities: Capabilities) -> Result<QueueBase> {
        QueueBase::start_with(system, capabilities, QueueConfig::default())
    }

    /// Starts a Queue system with identity `system` and the user's `capabilities`: adds the
    /// keys every base sets, `Thespian Watch Supported` (true with the `watch` feature) and the effective
    /// `Worker Threads`, then starts the worker threads and the timer thread.
    pub fn start_with(
        system: SystemId,
        capabilities: Capabilities,
        config: QueueConfig,
    ) -> Result<QueueBase> {
        let workers = match capabilities.get(keys::WORKER_THREADS) {
            Some(value) => {
                thespian_core::capabilities::validate(keys::WORKER_THREADS, value)?;
                value.as_int().unwrap_or(1) as usize
            }
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let mut caps = with_common_capabilities(capabilities, BASE_NAME, BASE_VERSION)
            .with(keys::WATCH_SUPPORTED, cfg!(feature = "watch"))
            .with(keys::WORKER_THREADS, workers as i64)
            .with(keys::ALLOW_REMOTE_ACTOR_SOURCES, "No");
        if caps.get(keys::ADMIN_ADDRESS).is_none() {
            caps.set(keys::ADMIN_ADDRESS, ADMIN_ADDRESS);
        }
        let inner = Inner::new(system, caps, workers, config.queue_limit);
        if let Err(e) = inner.spawn_threads() {
            inner.shutdown();
            return Err(ThespianError::StartupFailure(format!(
                "cannot start the queue base's threads: {e}"
            )));
        }
        Ok(QueueBase { inner })
    }

    /// Live actors, actors in the address directory, and pending wakeups (diagnostics).
    #[doc(hidden)]
    pub fn debug_counts(&self) -> (usize, usize, usize) {
        self.inner.counts()
    }
}

impl BaseDriver for QueueBase {
    fn base_name(&self) -> &'static str {
        BASE_NAME
    }

    fn capabilities(&self) -> Capabilities {
        (*self.inner.capabilities()).clone()
    }

    fn admin_address(&self) -> ActorAddress {
        self.inner.admin().clone()
    }

    fn open_endpoint(&self) -> Result<ActorAddress> {
        self.inner.open_endpoint()
    }

    fn close_endpoint(&self, endpoint: &ActorAddress) {
        self.inner.close_endpoint(endpoint);
    }

    fn create_actor(
        &self,
        _endpoint: &ActorAddress,
        request: CreateRequest,
    ) -> Result<ActorAddress> {
        self.inner.create_external(request)
    }

    fn tell(&self, endpoint: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()> {
        self.inner.tell(endpoint, to, payload)
    }

    fn listen(&self, endpoint: &ActorAddress, timeout: Duration) -> Result<Option<Envelope>> {
        let deadline = base::deadline(Instant::now(), timeout);
        self.inner.check_running()?;
        self.inner.receive(endpoint, deadline)
    }

    fn update_capability(&self, name: &str, value: Option<CapabilityValue>) -> Result<()> {
        self.inner.update_capability_external(name, value)
    }

    fn shutdown(&self) -> Result<()> {
        self.inner.shutdown();
        Ok(())
    }

    fn is_shut_down(&self) -> bool {
        self.inner.is_stopped()
    }
}

impl Drop for QueueBase {
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}
