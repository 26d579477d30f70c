//! The UDP transport of thespian-rs: a sans-IO datagram machine and a thin mio driver around
//! it.
//!
//! Thespian's `multiprocUDPBase` sends each message as one datagram and nothing more: no
//! acknowledgement, no retransmission, so messages can be lost, duplicated or reordered
//! silently (reference §5.2). This crate keeps the datagram model (a message never spans
//! datagrams, though small ones to one peer share a batch) and adds a promise, built the way
//! `quinn` splits QUIC: the protocol is a deterministic machine that never touches a socket or
//! the clock, and the I/O is a small driver.
//!
//! - [`wire`]: the postcard datagrams (magic `THSU`, protocol version, incarnation ids, the
//!   session handshake, data with its envelope header and tag, batches of consecutive
//!   messages, acknowledgements, version notices) and the size limit [`MAX_DATAGRAM`].
//! - [`machine`]: the sans-IO [`Machine`]: authenticated sessions (`thespian-auth`'s
//!   handshake, a MAC on every later datagram), acknowledgements, retransmission with
//!   back-off, duplicate suppression, per-peer order, bounded windows, dead-address memory,
//!   peer restarts.
//! - `peer` (private): the per-peer windows the machine keeps.
//! - [`driver`]: the mio driver ([`UdpEndpoint`]) with a cloneable [`UdpSender`] for other
//!   threads; `batch` (private): several datagrams per system call (`sendmmsg`, `recvmmsg`
//!   on Linux).
//!
//! # The size limit
//! One message travels in one datagram of at most [`MAX_DATAGRAM`] (65,000) bytes, header
//! included; the header is the sender and target addresses, the message's wire name and a few
//! sequence numbers (about 90 bytes plus the name). A larger message fails *at the sender*, at
//! once, with [`SendError::TooLarge`], whose message names the limit. Large messages belong on
//! the TCP base.
//!
//! # Authentication
//! Every endpoint holds the system's [`Secret`] ([`EndpointConfig::new`] takes it; there is no
//! way to run without one). A peer is sent nothing and obeyed in nothing until a handshake
//! proved it holds the same secret; every later datagram carries a MAC. A peer with another
//! secret makes the messages to it fail at once with "authentication failed: this system uses
//! another secret".
//!
//! # The loss promise
//! Per (sending endpoint, receiving endpoint), every message is delivered exactly once and in
//! order, or its sender is told: [`Event::Undeliverable`] hands the message back with the
//! reason (retries exhausted, dead address, peer restarted, version mismatch, authentication
//! failed, shut down), and
//! the base turns it into a `PoisonMessage` or `DeadEnvelope`. Nothing is lost silently. As
//! for any protocol over a lossy network, "undeliverable" means *not confirmed*: if every
//! acknowledgement was lost, a message reported undeliverable may have been delivered — but
//! never twice and never out of order.
//!
//! ```no_run
//! use std::time::Duration;
//! use thespian_core::{ActorAddress, Payload, SystemId};
//! use thespian_transport_udp::{EndpointConfig, Event, Secret, UdpEndpoint, WireMessage};
//!
//! // Every endpoint of a system holds the same secret (normally from the secret file).
//! let secret = Secret::from_text(b"an example secret, 16 bytes or more").unwrap();
//! let (mut a, _) = UdpEndpoint::bind(EndpointConfig::new(SystemId::from_raw(1), secret.clone()))?;
//! let (mut b, b_addr) = UdpEndpoint::bind(EndpointConfig::new(SystemId::from_raw(2), secret))?;
//! let from = ActorAddress::new(SystemId::from_raw(1), 3);
//! let to = ActorAddress::new(SystemId::from_raw(2), 7);
//! let message = WireMessage::from_payload(from, to, &Payload::new("hello")).unwrap();
//! a.sender().send(b_addr, message).unwrap();
//! loop {
//!     a.poll_events(Some(Duration::from_millis(10)))?;
//!     for event in b.poll_events(Some(Duration::from_millis(10)))? {
//!         if let Event::Delivered { message, .. } = event {
//!             println!("{message:?}");
//!         }
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Fuzzing
//! The datagram decoder and the machine's datagram handling are fuzzed by the `udp-datagram`
//! target in the repository's `fuzz/` directory (a cargo-fuzz layout outside the workspace):
//! `cargo +nightly fuzz run udp-datagram` from the repository root. It is not part of CI.

#![warn(missing_docs)]

mod batch;
pub mod driver;
mod icmp;
pub mod machine;
mod peer;
mod seam;
pub mod wire;

pub use driver::{EndpointConfig, UdpEndpoint, UdpSender};
pub use machine::{Config, Event, Machine, Nonces, SendError, Stats, UndeliverableReason};
pub use thespian_auth::Secret;
pub use thespian_core::wire::{MessageId, WireMessage};
pub use wire::{WireError, MAGIC, MAX_DATAGRAM, PROTOCOL_VERSION};
