//! The TCP transport of thespian-rs: a sans-IO framing/acknowledgement machine and a thin mio
//! driver around it.
//!
//! Thespian's `multiprocTCPBase` moves every message between processes over TCP (reference
//! §5.1). This crate is that transport, rebuilt the way `quinn` splits QUIC: the protocol is a
//! deterministic machine that never touches a socket or the clock, and the I/O is a small driver.
//!
//! - [`frame`]: length-prefixed frames and a streaming decoder with a hard size limit.
//! - [`wire`]: the postcard frame bodies: handshake (magic `THSP`, protocol version,
//!   incarnation id, listening address, and the `thespian_auth` challenge–response), data,
//!   acknowledgements, goodbye and error; after the handshake, frames travel in records, each
//!   sealed with one MAC.
//! - [`connection`]: the sans-IO session machine ([`Connection`]) and the pre-handshake
//!   acceptor ([`Incoming`]): mutual authentication with the system's secret before anything
//!   else is accepted, a MAC on every later record, acknowledgement of every message,
//!   retransmission with back-off, per-peer order, a bounded outbound queue, idle, handshake and
//!   frame time-outs, peer restarts.
//! - [`transmit`]: what one transmit writes: header bytes beside large payloads left where they
//!   lie, for one vectored write, and the position across partial writes.
//! - [`endpoint`]: the mio driver ([`TcpEndpoint`]): one listening socket, one connection per
//!   peer reused in both directions, reconnects, dead-target reports, `EMFILE` handling, and a
//!   cloneable [`EndpointSender`] for other threads.
//!
//! ```no_run
//! use std::time::Duration;
//! use thespian_auth::Secret;
//! use thespian_core::{ActorAddress, Payload, SystemId};
//! use thespian_transport_tcp::{EndpointConfig, TcpEndpoint, WireMessage};
//!
//! // Every endpoint of one system holds the same secret.
//! let secret = Secret::from_text(b"the secret of this example system").unwrap();
//! let (mut a, _) = TcpEndpoint::bind(EndpointConfig::new(SystemId::from_raw(1), secret.clone()))?;
//! let (mut b, b_addr) = TcpEndpoint::bind(EndpointConfig::new(SystemId::from_raw(2), secret))?;
//! let to = ActorAddress::new(SystemId::from_raw(2), 7);
//! let from = ActorAddress::new(SystemId::from_raw(1), 3);
//! let message = WireMessage::from_payload(from, to, &Payload::new("hello")).unwrap();
//! a.sender().send(b_addr, message).unwrap();
//! loop {
//!     a.poll_events(Some(Duration::from_millis(10)))?;
//!     for event in b.poll_events(Some(Duration::from_millis(10)))? {
//!         println!("{event:?}");
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Fuzzing
//! The frame decoder, the wire decoders and both machines are fuzzed by the `tcp-frame` target
//! in the repository's `fuzz/` directory (a cargo-fuzz layout outside the workspace):
//! `cargo xtask fuzz tcp-frame` runs it (it needs a nightly toolchain and `cargo-fuzz`); it is
//! not part of CI.

#![warn(missing_docs)]

pub mod connection;
pub mod endpoint;
pub mod frame;
mod seam;
pub mod transmit;
pub mod wire;

pub use connection::{
    Accepted, Answer, Attach, CloseReason, Config, ConnectFailure, Connection, ConnectionStats,
    Event, FailReason, Incoming, IncomingHello, IncomingOutcome, LinkId, LocalIdentity, SendError,
    Welcoming, AUTH_FAILED, OVERLOADED,
};
pub use endpoint::{EndpointConfig, EndpointEvent, EndpointSender, EndpointStats, TcpEndpoint};
pub use frame::{FrameDecoder, FrameError, DEFAULT_MAX_FRAME};
pub use thespian_auth::{Nonce, Secret};
pub use thespian_core::wire::{MessageId, WireMessage};
pub use wire::{PeerInfo, WireError, MAGIC, PROTOCOL_VERSION};
