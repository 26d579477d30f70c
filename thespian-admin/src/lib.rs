//! The admin of a multi-process actor system, as a sans-IO machine.
//!
//! A multi-process system (the Tcp and Udp bases) has one admin per Admin Port: a daemon that
//! places actors in processes, remembers who is whose parent, which global names are taken and
//! who handles dead letters, answers status requests and runs the shutdown. This crate is that
//! admin's logic and the [`protocol`] its processes speak to it; the facade's multi-process
//! driver owns the sockets, the processes and the clock, and carries out the machine's
//! [`Action`]s.

#![warn(missing_docs)]

pub mod machine;
pub mod protocol;
pub mod status_round;

pub use machine::{Action, Admin, AdminConfig, HostId, Launch, LaunchTicket, Placement, Requester};
