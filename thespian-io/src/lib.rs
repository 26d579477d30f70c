//! The I/O parts that the transports and the multi-process bases share, written once.
//!
//! This crate exists so that no transport imports another and no base borrows from a transport
//! what they all need: it sits between `thespian-core` (which never touches a socket, a thread
//! or the clock) and the crates that do.
//!
//! * [`handoff`]: how other threads hand messages to the one thread that drives an endpoint
//!   (the per-peer send budget, message ids, the waker, interrupt and close);
//! * [`preamble`]: the magic and protocol version every handshake frame or datagram starts
//!   with, checked before anything else is decoded;
//! * [`watch`]: descriptor watches (`ctx.watch`, Thespian's `ThespianWatch`) on one mio poller,
//!   for the Queue base and the actor processes of the multi-process bases.
//!
//! It depends on `thespian-core`, mio, log and postcard only, and never on a transport crate.

#![warn(missing_docs)]

pub mod handoff;
pub mod preamble;
pub mod watch;
