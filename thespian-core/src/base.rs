//! The interface a system base offers the facade.
//!
//! The facade `thespian` holds an `Arc<dyn BaseDriver>` and knows nothing else about the base,
//! so transports live in their own crates and users swap them without API changes. Every call
//! names the external endpoint it acts for (the system's own, or a `private()` one), so threads
//! never receive each other's replies.

use std::time::Duration;

use crate::actor::CreateRequest;
use crate::address::ActorAddress;
use crate::capabilities::{Capabilities, CapabilityValue};
use crate::error::Result;
use crate::message::{Envelope, Payload};

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
    fn ask(
        &self,
        endpoint: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
        timeout: Duration,
    ) -> Result<Option<Envelope>>;
    /// Waits up to `timeout` for the next message to `endpoint`.
    fn listen(&self, endpoint: &ActorAddress, timeout: Duration) -> Result<Option<Envelope>>;
    /// Sets or removes a system capability; actors that no longer fit exit.
    fn update_capability(&self, name: &str, value: Option<CapabilityValue>) -> Result<()>;
    /// Shuts the system down (idempotent).
    fn shutdown(&self) -> Result<()>;
    /// True once the system is shut down.
    fn is_shut_down(&self) -> bool;
}
