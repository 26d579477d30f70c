//! Convention membership of thespian-rs, as a sans-IO machine.
//!
//! Several actor systems (on several hosts) form a *convention*: the members register with a
//! leader, which learns their capabilities, tells interested actors who joined and who left,
//! and lets an actor that cannot be placed locally be created on a member whose capabilities
//! fit. Thespian spreads this over its admin, a timer-driven "convention state" and a delaying
//! sender; here it is one machine, [`Convention`], which the multi-process admin drives: it
//! feeds in the convention messages other admins sent ([`Convention::handle`]), the failures of
//! its transport ([`Convention::send_failed`]), the calls of its actors (pre-registration,
//! notification requests, placement) and time ([`Convention::handle_timeout`] at
//! [`Convention::poll_timeout`]); it carries out the [`Action`]s of
//! [`Convention::poll_action`].
//!
//! The machine never opens a socket, spawns a thread, reads the clock or the environment, or
//! draws a random number: time comes in as `now: Instant`, configuration as a
//! [`ConventionConfig`] ([`Timing::from_env`] takes the environment as a lookup function). So
//! the whole convention can be run in a deterministic simulation, the `sim` module (cargo
//! feature `sim`), with a virtual clock and a seeded network that loses, delays, duplicates and
//! reorders messages, partitions and crashes systems.
//!
//! - [`protocol`]: who a system is ([`AdminRef`]) and what admins say to each other
//!   ([`ConventionMessage`]).
//! - [`timing`]: the convention's periods ([`Timing`]) and the leader list capability.
//! - [`hysteresis`]: the per-remote back-off every admin-to-admin message goes through.
//! - [`machine`]: [`Convention`] itself: leaders and failover, registration, invitations,
//!   notifications, placement.
//! - [`remote_create`]: asking members one after the other to create what this system cannot
//!   host, until one does or none is left.

#![warn(missing_docs)]

pub mod hysteresis;
pub mod machine;
pub mod protocol;
pub mod remote_create;
#[cfg(feature = "sim")]
pub mod sim;
pub mod timing;

pub use machine::{
    Action, Convention, ConventionConfig, MemberView, PlacementDecision, PlacementRequest,
};
pub use protocol::{AdminRef, ConventionMessage, ConventionUpdate};
pub use timing::{leaders_from_capability, Timing};
