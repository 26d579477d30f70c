//! The interface a system base offers the facade.
//!
//! The facade `thespian` holds an `Arc<dyn BaseDriver>` and knows nothing else about the base,
//! so transports live in their own crates and users swap them without API changes. Every call
//! names the external endpoint it acts for (the system's own, or a `private()` one), so threads
//! never receive each other's replies.

use std::time::{Duration, Instant};

use crate::actor::CreateRequest;
use crate::address::ActorAddress;
use crate::capabilities::{Capabilities, CapabilityValue};
use crate::error::{Result, ThespianError};
use crate::message::{Envelope, Payload};
use crate::system_messages::PoisonMessage;

/// The default bound on what one sender may have queued to one actor in the in-process bases
/// (`Simple`, `Queue`): messages sent and not yet taken by the target. Over it, the send fails
/// with [`ThespianError::QueueFull`] at once (SPEC §8.13).
///
/// Why 50,000: far above any window a request/reply or flow-controlled workload keeps in flight
/// (the benchmarks keep 1,024; Thespian itself blocked senders at 950), so only a sender that
/// outruns its target for good meets it; and low enough that one such pair holds a few
/// megabytes of envelopes (plus the payloads) instead of growing until the process dies.
/// `ActorSystemBuilder::queue_limit` changes it.
pub const DEFAULT_QUEUE_LIMIT: usize = 50_000;

/// A running system base, as the facade drives it from outside the actors.
pub trait BaseDriver: Send + Sync {
    /// The base's Thespian name.
    fn base_name(&self) -> &'static str;
    /// The system's current capabilities.
    fn capabilities(&self) -> Capabilities;
    /// The system's admin address.
    fn admin_address(&self) -> ActorAddress;
    /// Opens a new external endpoint (an address that can receive replies).
    fn open_endpoint(&self) -> Result<ActorAddress>;
    /// Closes an endpoint; messages to it become dead letters.
    fn close_endpoint(&self, endpoint: &ActorAddress);
    /// Creates a top-level actor; blocks until it exists or fails.
    fn create_actor(&self, endpoint: &ActorAddress, request: CreateRequest)
        -> Result<ActorAddress>;
    /// Sends a message from `endpoint`.
    fn tell(&self, endpoint: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()>;
    /// Sends, then waits up to `timeout` for the first reply to `endpoint` from anyone.
    ///
    /// Provided as [`tell`](BaseDriver::tell) then [`listen`](BaseDriver::listen), so a base
    /// writes it only when it must differ: the Simple base overrides it because its `tell` runs
    /// the actors until they are idle, while an `ask` stops running them at the first reply.
    fn ask(
        &self,
        endpoint: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
        timeout: Duration,
    ) -> Result<Option<Envelope>> {
        self.tell(endpoint, to, payload)?;
        self.listen(endpoint, timeout)
    }
    /// Waits up to `timeout` for the next message to `endpoint`.
    fn listen(&self, endpoint: &ActorAddress, timeout: Duration) -> Result<Option<Envelope>>;
    /// Sets or removes a system capability; actors that no longer fit exit. The facade has
    /// already checked the update ([`check_change`](crate::capabilities::check_change)).
    fn update_capability(&self, name: &str, value: Option<CapabilityValue>) -> Result<()>;
    /// Shuts the system down (idempotent).
    fn shutdown(&self) -> Result<()>;
    /// True once the system is shut down.
    fn is_shut_down(&self) -> bool;
    /// Sets the log level of the system's admin process at run time (`off` … `trace`);
    /// returns the level names before and after. Bases whose admin is the program's own
    /// process leave logging to the program and refuse with `NotSupported`.
    fn set_admin_log_level(&self, level: &str) -> Result<(String, String)> {
        let _ = level;
        Err(ThespianError::NotSupported {
            operation: "set_admin_log_level",
            base: self.base_name(),
        })
    }
}

/// The error for a `tell` or `ask` to `address`, which no system of this base issued: its system
/// id is not the local system's (SPEC §8.12, Thespian's `InvalidActorAddress`).
pub fn not_issued_error(address: &ActorAddress) -> ThespianError {
    ThespianError::InvalidActorAddress {
        address: address.to_string(),
        reason: "not an address this actor system issued".into(),
    }
}

/// What comes back to an actor whose send went to `address`, which this system did not issue:
/// a `PoisonMessage` holding `payload`, to be delivered to the sender from `address` (SPEC
/// §8.12). When `payload` is itself a `PoisonMessage` it is handed back instead (poison never
/// wraps poison; the caller dead-letters it).
pub fn not_issued_poison(
    address: &ActorAddress,
    payload: Payload,
) -> std::result::Result<Payload, Payload> {
    if payload.has_type::<PoisonMessage>() {
        return Err(payload);
    }
    let details = not_issued_error(address).to_string();
    Ok(Payload::new(PoisonMessage::new(payload, details)))
}

/// How far ahead [`deadline`] puts a deadline it cannot represent: a year, as good as never.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

/// The instant `timeout` after `now`: when a driver's `ask` or `listen` stops waiting.
///
/// A timeout too long to represent (`Duration::MAX`, say) saturates to a year after `now`
/// instead of overflowing. Pure: the driver reads the clock and passes `now`, since
/// thespian-core never reads it.
pub fn deadline(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_adds_the_timeout_and_saturates_instead_of_overflowing() {
        // Only the test reads the clock, to get some instant to start from.
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::ZERO), now);
        assert_eq!(
            deadline(now, Duration::from_millis(1500)),
            now + Duration::from_millis(1500)
        );
        assert_eq!(deadline(now, Duration::MAX), now + FAR_FUTURE);
    }
}
