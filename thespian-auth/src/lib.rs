//! The trust boundary of the multi-process bases: who may talk to an actor system.
//!
//! Thespian has no authentication: any peer that reaches a port is obeyed. thespian-rs follows
//! Erlang's distribution cookie instead, made stronger: every process of a system (and every
//! system of a convention) shares a [`Secret`]; a peer proves it holds the secret in a mutual
//! challenge–response before a single message is accepted, and every later frame or datagram
//! carries a MAC under keys derived from that handshake, so a forged, replayed or spoofed packet
//! is dropped rather than obeyed.
//!
//! This crate is written once for both transports:
//! - [`secret`]: where the secret comes from (a file readable only by its owner, created on first
//!   use; overrides by capability or environment), and how it is kept out of logs.
//! - [`handshake`]: the sans-IO handshake: [`Initiator`] and [`Responder`] take the peer's
//!   handshake messages and return theirs, then [`SessionKeys`]. They never touch a socket or
//!   read the clock; nonces are arguments, so tests are deterministic.
//! - [`mac`]: [`FrameKey`], the per-direction key that tags and verifies frames.
//!
//! The cryptography is BLAKE3 (the `blake3` crate): one well-kept primitive that is a hash, a
//! keyed MAC and a key-derivation function, and fast enough on 64 KiB payloads to keep
//! authentication within the benchmark budget. Nothing cryptographic is written here by hand.
//!
//! The handshake names a [`Suite`], so encryption can be added as a second suite without a
//! protocol break; today only [`Suite::Authenticated`] (MAC, no encryption) exists.

pub mod handshake;
pub mod mac;
pub mod secret;

pub use handshake::{
    AuthError, Confirm, Hello, Initiator, Nonce, Responder, SessionKeys, Suite, Welcome,
};
pub use mac::{FrameKey, Tag, TAG_LEN};
pub use secret::{Secret, SecretError, SecretSource, SECRET_FILE_CAPABILITY, SECRET_FILE_ENV};
