//! The sans-IO datagram machine: everything the UDP transport decides, with no I/O.
//!
//! This module exists so that acknowledgement, retransmission, back-off, duplicate
//! suppression, ordering, window bounds, peer restarts and dead-address memory are written
//! once, deterministically, and tested without sockets (in the style of `quinn-proto`,
//! reference anchors §4.1). A driver (the [`driver`](crate::driver) module, or a test harness
//! with a simulated network) feeds it datagrams and time and sends what it asks for.
//!
//! Time always comes in as `now: Instant`; the machine never reads the clock, opens sockets or
//! spawns threads.
//!
//! # The protocol, step by step
//! - **Sessions.** Nothing is obeyed before the peer proved it holds the system's secret.
//!   Before the first message to or from a peer incarnation, the machines run the
//!   `thespian-auth` handshake in datagrams: `Hello` → `Welcome` (the responder's proof) →
//!   `Confirm` (the initiator's proof), the transcript binding [`HANDSHAKE_PROTOCOL`], the
//!   protocol version, both incarnations, the initiator's *opening number* (which names the
//!   session, see below) and the responder's port (the port the `Hello` was
//!   sent to, which the responder is bound to; not its IP address, which an endpoint bound to
//!   `0.0.0.0` cannot know as its peer does), so a relay on another port cannot splice two
//!   handshakes: there, as across a NAT that rewrites ports, the proofs fail and the messages
//!   are reported [`UndeliverableReason::AuthenticationFailed`]. Messages sent meanwhile wait
//!   in the window and go out when the session is up; an unanswered `Hello` is retransmitted
//!   like a message and, after [`Config::max_retransmits`], fails them
//!   ([`UndeliverableReason::RetriesExhausted`]).
//!   A `Welcome` names the opening number of the `Hello` it answers, so a late answer to an
//!   earlier `Hello` of ours is ignored rather than taken for a wrong proof.
//!   A wrong proof in the `Welcome` draws a `Reject` and fails them at once
//!   ([`UndeliverableReason::AuthenticationFailed`]), with a warning naming the peer on both
//!   sides. When both sides open at once, the higher incarnation answers the lower's `Hello`
//!   and drops its own, and the lower incarnation's session wins (see *One session per
//!   pair*). The initiator sends its `Confirm` again until an authenticated
//!   datagram from the responder (which sends an acknowledgement of no stream on completion)
//!   shows it arrived. Data from an address we have no session with (we restarted, or forgot
//!   the peer) makes us open one. At most one handshake of ours per address is in progress,
//!   and at most [`Config::max_handshakes`] opened because of the network's data.
//! - **The responder keeps no state.** A `Hello` is answered at once and forgotten: the
//!   `Welcome`'s nonce is a keyed hash, under a random cookie key that never leaves the
//!   machine, of the current cookie epoch ([`Config::handshake_timeout`] long), the sender's
//!   address and the `Hello` (with the incarnations of its header), so nobody else can
//!   predict it and a repeated `Hello` draws the same `Welcome`. The `Confirm` carries the
//!   `Hello` back (and the incarnation its header named); the responder recomputes its nonce
//!   for this epoch and the one before, rebuilds the transcript, checks the proof, and only
//!   then creates the session. A flood of `Hello`s, from as many addresses as it likes, costs
//!   a few keyed hashes each and no memory, and never keeps a real peer from its session. A
//!   `Confirm` is good for one to two handshake timeouts after its `Welcome` and only from
//!   the address the `Hello` came from. A repeat (or replay) of the `Confirm` that made the
//!   current session draws the responder's proof that it has it and changes nothing else;
//!   a `Confirm` whose opening number is not above the largest this responder verified from
//!   that incarnation (a late copy or replay of an older handshake's) is ignored, so it
//!   cannot swap a newer session for an older one. One that
//!   fails is counted and dropped, unanswered (it is unauthenticated). A new incarnation
//!   needs a new `Hello`. What a recorded `Confirm` can still do, replayed within its two
//!   epochs after the responder forgot the peer: re-open the session it made, whose keys the
//!   initiator holds, so the attacker can neither read nor write in it. (The `Welcome` is
//!   about 30 bytes longer than the `Hello`: a spoofed `Hello` gains an attacker that factor
//!   of amplification, no more.)
//! - **One session per pair.** Every `Hello` carries the initiator's opening number, larger
//!   for every handshake the incarnation starts and bound into both proofs, so it names the
//!   session and orders one initiator's sessions. Two rules keep both sides on the same
//!   session whatever the network loses, repeats or reorders:
//!   1. a responder takes a verified `Confirm` only if its opening number is above every
//!      one it verified from that incarnation (the peer's newest session only);
//!   2. an endpoint whose current session it opened itself, and which is the *lower*
//!      incarnation, refuses a verified `Confirm` from the higher one (the lower
//!      incarnation's session wins, as it wins the simultaneous `Hello`s) and, unless a
//!      handshake of its own is in progress, opens a new session, which the peer takes
//!      by rule 1 whatever it holds. That `Confirm` may be a late copy of a handshake the
//!      peer gave up for ours (then the new session costs one handshake) or the peer may
//!      have forgotten ours (then the new session is the way back). The refused number is
//!      remembered, so its repeats do nothing.
//!
//!   Without them, a simultaneous open under loss could end with each side on the session
//!   the *other* opened: A's session made, its `Confirm` lost; B opens again, A answers; A's
//!   retransmitted `Confirm` makes B switch to A's session while B's late `Confirm` makes A
//!   switch to B's, and neither could read the other again. Now B takes A's (the lower's)
//!   and A refuses B's and opens anew. An endpoint abandons a session it opened only for
//!   one of its own with a larger number (late `Confirm`s of the older one are then ignored
//!   by rule 1), or, when it is the higher incarnation, for the lower peer's, which that
//!   peer made first and holds (or a newer one of its own) ever since: it refuses the
//!   abandoned one by rule 2. So no late `Confirm` can pull either side back. What this
//!   grants an attacker without the secret: nothing new. The opening number cannot be
//!   changed (it is in both proofs); a recorded `Confirm` replayed within its cookie epochs
//!   is either ignored (rule 1) or, once, makes the lower incarnation open a new session:
//!   the established session stands until that handshake completes with the real peer,
//!   and messages in flight are retransmitted under the new keys, never lost or repeated.
//! - **MACs.** Every data and acknowledgement datagram carries the session's datagram counter
//!   and a tag over its header and payload under the sender's key; it is verified before
//!   anything in it is read, and one that fails is dropped and counted ([`Stats`]) with a
//!   rate-limited warning. A replay is a duplicate, absorbed by duplicate suppression.
//! - **Streams.** Per peer address, we keep one outgoing *stream*: consecutive sequence numbers
//!   from 1, under a stream id that this incarnation never reuses. Every message is sent at
//!   the next [`Machine::poll_transmit`], never later: the messages accepted since the last
//!   one go out together, consecutive messages to one peer coalesced into one batch datagram
//!   up to [`Config::coalesce_limit`] bytes (a lone message, or one larger than that, goes in
//!   a datagram of its own). Retransmissions of consecutive messages are coalesced the same
//!   way. Each message keeps its sequence number; one counter and one tag cover the batch.
//! - **Acknowledgements.** The receiver answers with a cumulative acknowledgement (everything
//!   up to *n* delivered) plus selective ranges of what it holds beyond a gap. It waits up to
//!   [`Config::ack_delay`] so the acknowledgement can ride on a reply (piggy-backing), but
//!   acknowledges at once after [`Config::ack_every`] datagrams, on a gap, on a duplicate, or
//!   when a gap is filled.
//! - **Retransmission.** An unacknowledged message is sent again after the retransmission
//!   timeout (RFC 6298 from measured round trips, at least [`Config::min_rto`]), the wait
//!   growing by [`Config::backoff_factor`] per transmission up to [`Config::max_rto`]. A
//!   message still missing when three later ones were selectively acknowledged is sent again
//!   at once (fast retransmit, once per message). After
//!   [`Config::max_retransmits`] retransmissions the peer is declared dead: the message and
//!   every later unacknowledged one (which could only be delivered after it) are reported
//!   [`Event::Undeliverable`], and the address is remembered as dead.
//! - **Duplicates and order.** The receiver delivers each sequence number once, in order: an
//!   early datagram is held (up to [`Config::recv_window`] sequence numbers ahead), a late or
//!   repeated one is dropped and re-acknowledged.
//! - **Windows.** At most [`Config::max_unacked`] messages (and [`Config::max_unacked_bytes`])
//!   are unacknowledged per peer; a send beyond fails at once with [`SendError::WindowFull`].
//! - **Dead addresses.** For [`Config::dead_address_memory`] (Thespian: 15 s) after a peer is
//!   declared dead, sends to it fail at once with [`UndeliverableReason::DeadAddress`], so a
//!   flood to a dead actor ends quickly. An authenticated datagram from the address, or a
//!   completed handshake, revives it.
//! - **Incarnations.** Every datagram names its sender's incarnation and the receiver's as the
//!   sender knows it. Only a completed handshake makes an incarnation known at an address; a
//!   new one retires the old: held messages are dropped, unacknowledged messages are reported
//!   undeliverable ([`UndeliverableReason::PeerRestarted`]), and [`Event::PeerRestarted`] is
//!   emitted. A datagram claiming another incarnation is dropped until then, so a spoofed
//!   "restart" changes nothing. A restarted machine that receives data meant for its
//!   predecessor opens a session with the sender, which learns of the restart that way.
//! - **Versions.** A datagram of another protocol version is answered with a version notice;
//!   a version notice that counts (see below) fails every message waiting for the session
//!   ([`UndeliverableReason::VersionMismatch`]) and remembers the address as dead. Both are
//!   logged.
//! - **What unauthenticated datagrams can do.** Nothing to an established session. A `Reject`
//!   or version notice counts only against a handshake *this endpoint started* with its
//!   sender for messages of its own that wait for it, and only for that attempt (one rule,
//!   `Machine::unauthenticated_refusal`, for both): the price is that an attacker who spoofs
//!   the peer's address at that moment can fail that attempt's messages (reported, never
//!   silent), which we prefer to reporting a wrong secret only after the retries. Otherwise
//!   it changes nothing and is remembered nowhere: a flood of them from many addresses costs
//!   no memory. An ICMP port unreachable reported by the
//!   driver ([`Machine::refused`]) is still believed, authenticated session or not (forging
//!   one takes a raw socket).
//!
//! # The promise
//! Per (sender endpoint, receiver endpoint), every message sent is either delivered exactly
//! once and in order ([`Event::Delivered`] at the receiver, [`Event::Acked`] at the sender),
//! or reported to its sender ([`Event::Undeliverable`], with the message). Nothing is lost
//! silently. As for any protocol over a lossy network, "undeliverable" means *not confirmed*:
//! when every acknowledgement was lost, a message reported undeliverable may have been
//! delivered — but never twice, and never out of order.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use thespian_auth::{AuthError, Initiator, Nonce, Responder, Secret, SessionKeys, Suite};
use thespian_core::SystemId;

// Names a message for `Event::Acked` and `Event::Undeliverable`; chosen by `Machine::send` (or by
// the caller of `Machine::send_with_id`). The same type on every transport: it lives in
// thespian-core and keeps its path here.
pub use thespian_core::wire::MessageId;

use crate::peer::{
    backoff, Inbound, Outbound, Outgoing, Peer, PendingConfirm, Receipt, Seen, Session,
};
use crate::wire::{
    self, Ack, ConfirmBody, Datagram, HandshakeRef, HelloBody, Kind, Mac, Position, RejectReason,
    Route, WelcomeBody, WireError, WireMessage, MAX_DATAGRAM, PROTOCOL_VERSION,
};

/// The protocol name bound into every handshake transcript, so a proof made for another
/// transport (or another version of this one) is worthless here.
pub const HANDSHAKE_PROTOCOL: &str = "thespian udp 4";

/// Tunables of the transport; the defaults are Thespian's where Thespian has one.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest datagram sent (default and maximum [`MAX_DATAGRAM`], 65,000 bytes; a larger
    /// value is treated as [`MAX_DATAGRAM`]). A message whose datagram would be larger fails at
    /// the sender with [`SendError::TooLarge`].
    pub max_datagram: usize,
    /// Most unacknowledged messages per peer (default 128). One message is always accepted
    /// into an empty window.
    pub max_unacked: usize,
    /// Most unacknowledged datagram bytes per peer (default 8 MiB). One message is always
    /// accepted into an empty window.
    pub max_unacked_bytes: usize,
    /// How far ahead of the next expected sequence number a datagram is held (default 256);
    /// further ones are dropped and retransmitted later by their sender. Bounds the memory
    /// held for a peer to `recv_window × max_datagram`.
    pub recv_window: u64,
    /// Retransmission timeout before any round trip was measured (default 100 ms).
    pub initial_rto: Duration,
    /// Shortest retransmission timeout (default 20 ms, Thespian's `MIN_BACKOFF_DELAY`).
    pub min_rto: Duration,
    /// Longest wait between transmissions (default 7.329 s, Thespian's `MAX_BACKOFF_DELAY`).
    pub max_rto: Duration,
    /// Growth of the wait per transmission (default 1.7, Thespian's `BACKOFF_FACTOR`).
    pub backoff_factor: f64,
    /// Retransmissions before a message (and its peer) is given up (default 20, Thespian's
    /// `MAX_TRANSMIT_RETRIES`). With the defaults, a silent peer is given up after about 105 s
    /// (about 83 s once a round trip of a few milliseconds was measured).
    pub max_retransmits: u32,
    /// How long an acknowledgement waits for a reply to ride on (default 1 ms; zero
    /// acknowledges at the next [`Machine::poll_transmit`]).
    pub ack_delay: Duration,
    /// In-order messages after which an acknowledgement goes at once (default 16).
    pub ack_every: u32,
    /// Largest batch datagram that coalesces several messages to one peer (default 1,400
    /// bytes, so a batch fits an Ethernet frame and is never fragmented; at most
    /// [`Config::max_datagram`]). A lone message, or one larger than this, travels in a
    /// datagram of its own.
    pub coalesce_limit: usize,
    /// How long a peer given up is remembered as dead (default 15 s, Thespian's). At most
    /// [`Config::max_peers`] addresses are remembered as dead; the oldest memory makes room.
    pub dead_address_memory: Duration,
    /// A peer with nothing in flight and no traffic for this long is forgotten (default
    /// 10 min, longer than a datagram can linger in a network).
    pub peer_idle_timeout: Duration,
    /// Most peers remembered (default 65,536). Data from a new address beyond it is dropped
    /// (its sender retransmits and, in the end, learns it was undeliverable).
    pub max_peers: usize,
    /// Most handshakes in progress at once when another opens because of the network (data
    /// from an address without a session makes us open one; default 1,024; at most one per
    /// address): beyond it, that datagram is dropped and counted
    /// ([`Stats::handshakes_refused`]). Handshakes for our own messages are bounded by
    /// [`Config::max_peers`] instead, and answering a `Hello` takes no room at all (the
    /// responder keeps no state).
    pub max_handshakes: usize,
    /// The responder's cookie epoch (default 10 s): a `Confirm` is accepted for one to two of
    /// them after the `Welcome` it answers, then refused.
    pub handshake_timeout: Duration,
    /// The protocol version announced. Leave it at [`PROTOCOL_VERSION`]; it is configurable
    /// so tests can play an older or newer peer.
    pub protocol_version: u16,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_datagram: MAX_DATAGRAM,
            max_unacked: 128,
            max_unacked_bytes: 8 * 1024 * 1024,
            recv_window: 256,
            initial_rto: Duration::from_millis(100),
            min_rto: Duration::from_millis(20),
            max_rto: Duration::from_millis(7329),
            backoff_factor: 1.7,
            max_retransmits: 20,
            ack_delay: Duration::from_millis(1),
            ack_every: 16,
            coalesce_limit: 1400,
            dead_address_memory: Duration::from_secs(15),
            peer_idle_timeout: Duration::from_secs(10 * 60),
            max_peers: 65_536,
            max_handshakes: 1024,
            handshake_timeout: Duration::from_secs(10),
            protocol_version: PROTOCOL_VERSION,
        }
    }
}

impl Config {
    /// The datagram limit in force: [`Config::max_datagram`], at most [`MAX_DATAGRAM`].
    pub fn datagram_limit(&self) -> usize {
        self.max_datagram.min(MAX_DATAGRAM)
    }

    /// Checks that `message` fits in one datagram; the same check [`Machine::send`] makes.
    pub fn check_size(&self, message: &WireMessage) -> Result<usize, SendError> {
        let size = wire::datagram_bound(message);
        let limit = self.datagram_limit();
        if size > limit {
            return Err(SendError::TooLarge { size, limit });
        }
        Ok(size)
    }

    /// The retransmission timeout of a handshake message (no round trip measured yet).
    fn handshake_rto(&self) -> Duration {
        self.initial_rto
            .max(self.min_rto)
            .min(self.max_rto.max(self.min_rto))
            .max(Duration::from_millis(1))
    }

    fn gc_period(&self) -> Duration {
        (self.peer_idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
    }
}

/// Why a send was refused at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The message does not fit in one datagram.
    TooLarge {
        /// The message's datagram size in bytes (an upper bound).
        size: usize,
        /// The limit in force ([`Config::datagram_limit`], at most [`MAX_DATAGRAM`]).
        limit: usize,
    },
    /// Too many messages (or bytes) to this peer wait for acknowledgement; retry once some
    /// are acknowledged.
    WindowFull {
        /// Messages unacknowledged.
        messages: usize,
        /// Datagram bytes unacknowledged.
        bytes: usize,
    },
    /// The machine (or endpoint) was closed.
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::TooLarge { size, limit } => write!(
                f,
                "message too large for the UDP transport: it needs a datagram of {size} bytes, \
                 over the limit of {limit} bytes per datagram (a message never spans datagrams, \
                 MAX_DATAGRAM = {MAX_DATAGRAM}); send large messages over TCP"
            ),
            SendError::WindowFull { messages, bytes } => write!(
                f,
                "send window full: {messages} messages ({bytes} bytes) to this peer wait for \
                 acknowledgement"
            ),
            SendError::Closed => f.write_str("UDP transport closed"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why a message was given up (see [`Event::Undeliverable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndeliverableReason {
    /// The peer acknowledged nothing for the oldest unacknowledged message after this many
    /// transmissions; it and every later unacknowledged message to the peer are given up
    /// together (they could only be delivered after it), and the address is remembered as
    /// dead.
    RetriesExhausted {
        /// Transmissions of the oldest message.
        transmissions: u32,
    },
    /// The address was given up recently ([`Config::dead_address_memory`]): the message was
    /// not sent.
    DeadAddress,
    /// The peer restarted (new incarnation) before acknowledging; the old incarnation is gone.
    PeerRestarted {
        /// The incarnation the message was sent to.
        old: SystemId,
        /// The one that answered.
        new: SystemId,
    },
    /// The driver or the base declared the address dead ([`Machine::mark_dead`]).
    MarkedDead,
    /// The network said nothing listens at the address (an ICMP port unreachable, reported
    /// by the driver through [`Machine::refused`]).
    PortUnreachable,
    /// The peer speaks another protocol version.
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// The session handshake failed: the peer holds another secret (or a handshake datagram
    /// was forged or changed in flight). Its message names the cause, e.g. "authentication
    /// failed: this system uses another secret".
    AuthenticationFailed(AuthError),
    /// The machine was closed before an acknowledgement came.
    Shutdown,
    /// A driver could not hand the message to the machine (its send was refused).
    Refused(SendError),
}

impl UndeliverableReason {
    /// True when the target endpoint is gone (dead address, restarted, marked dead): the base
    /// turns these messages into dead letters (`DeadEnvelope`); the others into
    /// `PoisonMessage`s back to the sender.
    pub fn is_dead_target(&self) -> bool {
        matches!(
            self,
            UndeliverableReason::DeadAddress
                | UndeliverableReason::PeerRestarted { .. }
                | UndeliverableReason::MarkedDead
                | UndeliverableReason::PortUnreachable
        )
    }
}

impl fmt::Display for UndeliverableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UndeliverableReason::RetriesExhausted { transmissions } => write!(
                f,
                "no acknowledgement after {transmissions} transmissions: peer given up"
            ),
            UndeliverableReason::DeadAddress => {
                f.write_str("address given up recently (dead target); not sent")
            }
            UndeliverableReason::PeerRestarted { old, new } => write!(
                f,
                "peer restarted (incarnation {old:?} is now {new:?}) before acknowledging"
            ),
            UndeliverableReason::MarkedDead => f.write_str("address declared dead"),
            UndeliverableReason::PortUnreachable => {
                f.write_str("nothing listens at the address (port unreachable)")
            }
            UndeliverableReason::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: we speak {ours}, the peer speaks {theirs}"
            ),
            UndeliverableReason::AuthenticationFailed(e) => write!(f, "{e}"),
            UndeliverableReason::Shutdown => f.write_str("transport shut down"),
            UndeliverableReason::Refused(e) => write!(f, "send refused: {e}"),
        }
    }
}

/// What the machine reports to its driver and, through it, to the system base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message arrived: each message once, in order per sending endpoint.
    Delivered {
        /// The sending endpoint's address.
        from: SocketAddr,
        /// The message.
        message: WireMessage,
    },
    /// The peer delivered these messages (oldest first).
    Acked {
        /// The peer.
        peer: SocketAddr,
        /// The messages.
        ids: Vec<MessageId>,
    },
    /// This message was given up: its sender must learn of it (the base sends a
    /// `PoisonMessage` or a `DeadEnvelope`).
    Undeliverable {
        /// The peer it was for.
        peer: SocketAddr,
        /// The message's id.
        id: MessageId,
        /// The message, handed back.
        message: WireMessage,
        /// Why.
        reason: UndeliverableReason,
    },
    /// A new incarnation answered at `peer`: it is a new peer.
    PeerRestarted {
        /// The address.
        peer: SocketAddr,
        /// The incarnation we knew.
        old: SystemId,
        /// The one that answered.
        new: SystemId,
    },
}

/// What the machine dropped, for monitoring (see [`Machine::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Data and acknowledgement datagrams dropped unauthenticated: a wrong tag, an
    /// incarnation without a session, or no session at all.
    pub unauthenticated: u64,
    /// Handshakes not opened for the network's data because [`Config::max_handshakes`] were
    /// in progress.
    pub handshakes_refused: u64,
    /// Handshakes that failed their proof (here, including `Confirm`s that fail or come too
    /// late, or, by a reject, at the peer).
    pub handshakes_failed: u64,
}

/// Where the machine's handshake nonces come from: [`Nonces::random`] in a driver, a
/// deterministic sequence in tests.
pub struct Nonces(Box<dyn FnMut() -> Result<Nonce, AuthError> + Send>);

impl Nonces {
    /// Nonces from the operating system's random source.
    pub fn random() -> Nonces {
        Nonces(Box::new(Nonce::random))
    }

    /// Nonces from `source` (tests: a seeded, deterministic sequence).
    pub fn from_fn(source: impl FnMut() -> Result<Nonce, AuthError> + Send + 'static) -> Nonces {
        Nonces(Box::new(source))
    }

    fn next(&mut self) -> Result<Nonce, AuthError> {
        (self.0)()
    }
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nonces")
    }
}

/// A handshake in progress with the endpoint at one address. A responder keeps none: only
/// this endpoint's own attempts are here.
#[derive(Debug)]
enum Handshake {
    /// We sent a `Hello` and wait for the `Welcome`.
    Initiating {
        initiator: Initiator,
        /// The `Hello` datagram, sent again until answered.
        hello: Vec<u8>,
        /// The receiver's incarnation as the `Hello` named it (the `Confirm` repeats it).
        hello_to: Option<SystemId>,
        /// The opening number the `Hello` carries.
        opening: u64,
        /// Sent again even when no message of ours waits: a re-opening after a refused
        /// `Confirm` (see `Machine::on_confirm`).
        reopen: bool,
        /// Handshake datagrams sent for the messages waiting (`Hello`s of this and earlier
        /// attempts).
        transmissions: u32,
        due: Instant,
    },
    /// Our messages wait, and we answered the peer's `Hello` instead of sending ours (a
    /// simultaneous open, where the higher incarnation answers): unless its `Confirm` makes a
    /// session by `expires`, we open the session ourselves.
    Yielded {
        /// The incarnation whose `Hello` we answered.
        from: SystemId,
        /// Carried over from our own attempt.
        transmissions: u32,
        expires: Instant,
    },
}

impl Handshake {
    fn deadline(&self) -> Instant {
        match self {
            Handshake::Initiating { due, .. } => *due,
            Handshake::Yielded { expires, .. } => *expires,
        }
    }
}

/// The responder's cookie key: random, made at the first `Hello`, never sent. The responder's
/// nonce is derived from it and the `Hello`, so the `Confirm` can be checked without state.
struct CookieKey(Nonce);

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieKey(<redacted>)")
    }
}

/// What a transcript binds of each side: the protocol version and the incarnations in the
/// header of its handshake datagram (sender, and the receiver as the sender knows it), and
/// the responder's port: the port the initiator sent its `Hello` to, which is the port the
/// responder is bound to. A relay on another port therefore cannot splice two handshakes: the
/// proofs fail. The responder's IP address is not bound: an endpoint bound to an unspecified
/// address (`0.0.0.0`, `::`) does not know which of its addresses a peer used, so both sides
/// could not agree on it (nor across a NAT that rewrites ports: such a path breaks sessions).
///
/// Both sides also bind the initiator's opening number, which names the session.
fn context(route: Route, responder_port: u16, opening: u64) -> Vec<u8> {
    postcard::to_allocvec(&(route.version, route.from, route.to, responder_port, opening))
        .expect("a Vec has room")
}

/// Limits warnings about bad datagrams to a few per second, so a flood cannot flood the log.
#[derive(Debug, Default)]
struct LogLimiter {
    window: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    const PER_SECOND: u32 = 10;

    fn allow(&mut self, now: Instant) -> bool {
        if self
            .window
            .is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(1))
        {
            if self.suppressed > 0 {
                log::warn!(
                    "UDP transport: {} more bad datagrams not logged",
                    self.suppressed
                );
            }
            self.window = Some(now);
            self.logged = 0;
            self.suppressed = 0;
        }
        if self.logged < Self::PER_SECOND {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// The UDP transport's state machine for one endpoint (one socket): every peer's streams.
///
/// # Driver contract
/// - Call [`send`](Self::send) to send, [`handle_datagram`](Self::handle_datagram) for every
///   datagram the socket receives, and [`handle_timeout`](Self::handle_timeout) once the time
///   from [`poll_timeout`](Self::poll_timeout) has come.
/// - After any of those calls, send every datagram [`poll_transmit`](Self::poll_transmit)
///   returns, handle every [`poll_event`](Self::poll_event), and re-read
///   [`poll_timeout`](Self::poll_timeout). Calling `poll_transmit` after a *batch* of received
///   datagrams (rather than after each) lets one acknowledgement cover the whole batch.
/// - A datagram the socket failed to send may simply be dropped: it counts as lost, and is
///   retransmitted.
#[derive(Debug)]
pub struct Machine {
    config: Config,
    incarnation: SystemId,
    /// The port this endpoint is bound to, bound into the handshakes it answers.
    local_port: u16,
    secret: Secret,
    nonces: Nonces,
    peers: HashMap<SocketAddr, Peer>,
    /// Our handshakes in progress, at most one per address.
    handshakes: HashMap<SocketAddr, Handshake>,
    /// The stateless responder's key, once a `Hello` needed it.
    cookie_key: Option<CookieKey>,
    /// The start of the responder's first cookie epoch (see `Machine::cookie_epoch`).
    cookie_origin: Option<Instant>,
    stats: Stats,
    /// Addresses given up, and until when.
    dead: HashMap<SocketAddr, Instant>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Peers owed an acknowledgement at the next `poll_transmit`.
    ack_queue: Vec<SocketAddr>,
    /// Peers with messages not sent yet (`Outbound::fresh`), sent at the next
    /// `poll_transmit`.
    fresh_peers: VecDeque<SocketAddr>,
    events: VecDeque<Event>,
    next_id: u64,
    next_stream: u64,
    /// The opening number of our next `Hello` (never reused by this incarnation).
    next_opening: u64,
    next_gc: Option<Instant>,
    log: LogLimiter,
    closed: bool,
}

impl Machine {
    /// A machine for the endpoint of this incarnation (pick a new random one at every start)
    /// bound at `local` (its port is bound into every handshake, see the module docs),
    /// holding the system's `secret`, with handshake nonces from `nonces`
    /// ([`Nonces::random`] outside tests).
    pub fn new(
        config: Config,
        incarnation: SystemId,
        local: SocketAddr,
        secret: Secret,
        nonces: Nonces,
    ) -> Machine {
        Machine {
            config,
            incarnation,
            local_port: local.port(),
            secret,
            nonces,
            peers: HashMap::new(),
            handshakes: HashMap::new(),
            cookie_key: None,
            cookie_origin: None,
            stats: Stats::default(),
            dead: HashMap::new(),
            transmits: VecDeque::new(),
            ack_queue: Vec::new(),
            fresh_peers: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 1,
            next_stream: 1,
            next_opening: 1,
            next_gc: None,
            log: LogLimiter::default(),
            closed: false,
        }
    }

    /// This endpoint's incarnation.
    pub fn incarnation(&self) -> SystemId {
        self.incarnation
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Peers currently remembered.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Messages to `peer` not yet acknowledged.
    pub fn unacked(&self, peer: SocketAddr) -> usize {
        self.peers
            .get(&peer)
            .and_then(|p| p.out.as_ref())
            .map_or(0, |o| o.unacked.len())
    }

    /// What was dropped so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// True when an authenticated session with the endpoint at `peer` is established.
    pub fn has_session(&self, peer: SocketAddr) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.session.is_some())
    }

    /// Handshakes in progress.
    pub fn handshakes(&self) -> usize {
        self.handshakes.len()
    }

    /// True when `peer` was given up and is still remembered as dead at `now`.
    pub fn is_dead(&self, now: Instant, peer: SocketAddr) -> bool {
        self.dead.get(&peer).is_some_and(|&until| now < until)
    }

    /// Sends `message` to the endpoint at `to`; returns the id later reported in
    /// [`Event::Acked`] or [`Event::Undeliverable`].
    ///
    /// Call it whenever the base has a message for another endpoint, then drain
    /// [`poll_transmit`](Self::poll_transmit). Fails at once when the message does not fit in
    /// a datagram ([`SendError::TooLarge`], naming the limit), when the window to `to` is full
    /// ([`SendError::WindowFull`]) or after [`close`](Self::close). A send to an address
    /// remembered as dead succeeds here and is reported [`Event::Undeliverable`] at once.
    pub fn send(
        &mut self,
        now: Instant,
        to: SocketAddr,
        message: WireMessage,
    ) -> Result<MessageId, SendError> {
        let id = MessageId(self.next_id);
        self.send_with_id(now, to, id, message)?;
        self.next_id += 1;
        Ok(id)
    }

    /// [`send`](Self::send) with an id chosen by the caller, for drivers that hand out ids on
    /// other threads. The machine never relies on ids being unique; a caller mixing this with
    /// [`send`](Self::send) should keep its own ids apart from the machine's (which count from
    /// 1).
    pub fn send_with_id(
        &mut self,
        now: Instant,
        to: SocketAddr,
        id: MessageId,
        message: WireMessage,
    ) -> Result<(), SendError> {
        self.send_or_return(now, to, id, message)
            .map_err(|(e, _)| e)
    }

    /// [`send_with_id`](Self::send_with_id) that hands the message back when it fails, so a
    /// driver can report it without keeping a copy of every message.
    pub(crate) fn send_or_return(
        &mut self,
        now: Instant,
        to: SocketAddr,
        id: MessageId,
        message: WireMessage,
    ) -> Result<(), (SendError, WireMessage)> {
        if self.closed {
            return Err((SendError::Closed, message));
        }
        let size = match self.config.check_size(&message) {
            Ok(size) => size,
            Err(e) => return Err((e, message)),
        };
        if let Some(&until) = self.dead.get(&to) {
            if now < until {
                self.events.push_back(Event::Undeliverable {
                    peer: to,
                    id,
                    message,
                    reason: UndeliverableReason::DeadAddress,
                });
                return Ok(());
            }
            self.dead.remove(&to);
        }
        self.schedule_gc(now);
        let peer = self.peers.entry(to).or_insert_with(|| Peer::new(now));
        let next_stream = &mut self.next_stream;
        let out = peer.out.get_or_insert_with(|| {
            *next_stream += 1;
            Outbound::new(*next_stream - 1)
        });
        if !out.unacked.is_empty()
            && (out.unacked.len() >= self.config.max_unacked
                || out.bytes + size > self.config.max_unacked_bytes)
        {
            return Err((
                SendError::WindowFull {
                    messages: out.unacked.len(),
                    bytes: out.bytes,
                },
                message,
            ));
        }
        let rto = out.rto(&self.config);
        let seq = out.next_seq;
        out.next_seq += 1;
        out.bytes += size;
        let due = now + backoff(&self.config, rto, 1);
        // Without a session the message waits (counted in the window) until one is up.
        let established = peer.session.is_some();
        out.unacked.push_back(Outgoing {
            seq,
            id,
            message,
            size,
            first_sent: now,
            due,
            transmissions: u32::from(established),
            sacked: false,
        });
        peer.last_activity = now;
        if !established {
            if !self.handshakes.contains_key(&to) {
                self.initiate(now, to, 0, false);
            }
            return Ok(());
        }
        out.next_due = Some(out.next_due.map_or(due, |d| d.min(due)));
        // Encoded at the next `poll_transmit`, with whatever else is sent to `to` meanwhile.
        if out.fresh.is_none() {
            out.fresh = Some(seq);
            self.fresh_peers.push_back(to);
        }
        Ok(())
    }

    /// Handles one datagram received from `from` at `now`.
    ///
    /// Call it for every datagram the socket receives (any bytes: garbage is logged and
    /// dropped, never a panic), then drain [`poll_transmit`](Self::poll_transmit) and
    /// [`poll_event`](Self::poll_event) — after a batch of datagrams if the socket has several
    /// ready.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.closed {
            return;
        }
        let datagram = match wire::decode(bytes, self.config.protocol_version) {
            Ok(d) => d,
            Err(e) => {
                if self.log.allow(now) {
                    log::warn!("UDP transport: dropping a datagram from {from}: {e}");
                }
                if let WireError::VersionMismatch { .. } = e {
                    // Tell the sender, in a form every version reads.
                    self.transmits.push_back((
                        from,
                        wire::encode_version_notice(self.config.protocol_version),
                    ));
                }
                return;
            }
        };
        match datagram {
            Datagram::VersionNotice { version } => {
                let reason = UndeliverableReason::VersionMismatch {
                    ours: self.config.protocol_version,
                    theirs: version,
                };
                if self.unauthenticated_refusal(now, from, None, reason) {
                    if self.log.allow(now) {
                        log::warn!(
                            "UDP transport: the endpoint at {from} speaks protocol version \
                             {version}, we speak {}; giving it up",
                            self.config.protocol_version
                        );
                    }
                } else if self.log.allow(now) {
                    log::warn!(
                        "UDP transport: ignoring a version notice from {from}: no handshake of \
                         ours is in progress with it"
                    );
                }
            }
            Datagram::Handshake {
                from: inc,
                to,
                kind,
            } => match kind {
                Kind::Hello(hello) => self.on_hello(now, from, inc, to, &hello),
                Kind::Welcome(body) => self.on_welcome(now, from, inc, to, &body),
                Kind::Confirm(body) => self.on_confirm(now, from, inc, to, &body),
                Kind::Reject(reason) => self.on_reject(now, from, inc, to, reason),
                Kind::Data(_) | Kind::Ack(_) | Kind::Batch(_) => {}
            },
            Datagram::Ack {
                from: inc,
                to,
                counter,
                ack,
                mac,
            } => {
                if self.authenticate(now, from, inc, to, counter, mac, &[], false) {
                    self.apply_ack(now, from, &ack);
                }
            }
            Datagram::Batch {
                from: inc,
                to,
                header,
                payloads,
                mac,
            } => {
                if !self.authenticate(now, from, inc, to, header.counter, mac, payloads, true) {
                    return;
                }
                if let Some(ack) = &header.ack {
                    self.apply_ack(now, from, ack);
                }
                let mut rest = payloads;
                for (seq, entry) in (header.first_seq..).zip(header.messages) {
                    // The decoder checked that the lengths add up; never trust it to panic.
                    let Some(payload) = usize::try_from(entry.len)
                        .ok()
                        .and_then(|len| rest.get(..len))
                    else {
                        return;
                    };
                    rest = &rest[payload.len()..];
                    let message = WireMessage {
                        sender: entry.sender,
                        target: entry.target,
                        type_name: entry.type_name.into(),
                        payload: payload.into(),
                    };
                    self.receive_data(now, from, header.stream, seq, header.base, message);
                }
            }
            Datagram::Data {
                from: inc,
                to,
                header,
                payload,
                mac,
            } => {
                if !self.authenticate(now, from, inc, to, header.counter, mac, payload, true) {
                    return;
                }
                if let Some(ack) = &header.ack {
                    self.apply_ack(now, from, ack);
                }
                let message = WireMessage {
                    sender: header.sender,
                    target: header.target,
                    type_name: header.type_name.into(),
                    payload: payload.into(),
                };
                self.receive_data(now, from, header.stream, header.seq, header.base, message);
            }
        }
    }

    /// Checks that a data or acknowledgement datagram from `addr` belongs to the established
    /// session there, tag included, before anything in it is acted on. Returns false when it
    /// is dropped (counted in [`Stats::unauthenticated`]).
    ///
    /// Data from an address we have no session with (we forgot it, or restarted) makes us
    /// open one, so the sender learns who we are once authenticated.
    #[allow(clippy::too_many_arguments)]
    fn authenticate(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        inc: SystemId,
        to: Option<SystemId>,
        counter: u64,
        mac: Mac<'_>,
        payload: &[u8],
        data: bool,
    ) -> bool {
        let me = self.incarnation;
        let verdict = match self.peers.get_mut(&addr) {
            Some(peer) => match &mut peer.session {
                None => None,
                Some(session) => Some(
                    peer.incarnation == Some(inc)
                        && to == Some(me)
                        && mac.verify(&session.keys.receive, counter, payload),
                ),
            },
            None => None,
        };
        match verdict {
            Some(true) => {
                let peer = self.peers.get_mut(&addr).expect("just found");
                if let Some(session) = &mut peer.session {
                    // The peer has the session: our `Confirm` arrived.
                    session.confirm = None;
                }
                peer.last_activity = now;
                if self.dead.remove(&addr).is_some() {
                    log::debug!("UDP transport: {addr} is alive again");
                }
                true
            }
            Some(false) => {
                self.stats.unauthenticated += 1;
                if self.log.allow(now) {
                    log::warn!(
                        "UDP transport: dropping a datagram from {addr} that fails \
                         authentication (incarnation {inc:?}; {} dropped so far)",
                        self.stats.unauthenticated
                    );
                }
                false
            }
            None => {
                self.stats.unauthenticated += 1;
                if data {
                    match self.handshakes.get(&addr) {
                        Some(Handshake::Initiating { hello, .. }) => {
                            self.transmits.push_back((addr, hello.clone()));
                        }
                        Some(Handshake::Yielded { .. }) => {}
                        None => {
                            if self.handshake_room(now, addr) {
                                log::debug!(
                                    "UDP transport: data from {addr} without a session; \
                                     opening one"
                                );
                                self.initiate(now, addr, 0, false);
                            }
                        }
                    }
                }
                false
            }
        }
    }

    /// True when the network may start one more handshake; counts and logs a refusal.
    fn handshake_room(&mut self, now: Instant, addr: SocketAddr) -> bool {
        if self.handshakes.len() < self.config.max_handshakes {
            return true;
        }
        self.stats.handshakes_refused += 1;
        if self.log.allow(now) {
            log::warn!(
                "UDP transport: {} handshakes in progress; refusing one with {addr}",
                self.handshakes.len()
            );
        }
        false
    }

    /// Opens a session with `addr`: sends a `Hello`. `transmissions` were spent on earlier
    /// attempts; `reopen` keeps the `Hello` going when no message of ours waits.
    fn initiate(&mut self, now: Instant, addr: SocketAddr, transmissions: u32, reopen: bool) {
        let nonce = match self.nonces.next() {
            Ok(nonce) => nonce,
            Err(e) => {
                log::warn!("UDP transport: cannot open a session with {addr}: {e}");
                self.fail_waiting(addr, &UndeliverableReason::AuthenticationFailed(e));
                return;
            }
        };
        let route = self.route(self.peers.get(&addr).and_then(|p| p.incarnation));
        let opening = self.next_opening;
        self.next_opening += 1;
        let initiator = Initiator::new(
            &self.secret,
            HANDSHAKE_PROTOCOL,
            self.incarnation.raw(),
            nonce,
            context(route, addr.port(), opening),
        );
        let body = HelloBody {
            hello: initiator.hello().clone(),
            opening,
        };
        let hello = wire::encode_handshake(route, HandshakeRef::Hello(&body));
        self.transmits.push_back((addr, hello.clone()));
        let transmissions = transmissions + 1;
        let due = now + backoff(&self.config, self.config.handshake_rto(), transmissions);
        self.handshakes.insert(
            addr,
            Handshake::Initiating {
                initiator,
                hello,
                hello_to: route.to,
                opening,
                reopen,
                transmissions,
                due,
            },
        );
    }

    /// Answers a `Hello` without keeping anything: the `Welcome`'s nonce is derived from the
    /// cookie key, the current cookie epoch, the sender's address and the `Hello`, so a repeat
    /// draws the same `Welcome` and the `Confirm` (which brings the `Hello` back) can be
    /// checked by recomputing it. A flood of `Hello`s costs a few keyed hashes each and no
    /// memory, and cannot keep a real peer from its session.
    fn on_hello(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        inc: SystemId,
        to: Option<SystemId>,
        body: &HelloBody,
    ) {
        let hello = &body.hello;
        if self
            .peers
            .get(&addr)
            .is_some_and(|p| p.retired.contains(&inc))
        {
            return;
        }
        match self.handshakes.get(&addr) {
            // Simultaneous open: the lower incarnation stays initiator; the higher answers.
            Some(Handshake::Initiating { .. }) if inc.raw() >= self.incarnation.raw() => return,
            Some(Handshake::Initiating { transmissions, .. }) => {
                let transmissions = *transmissions;
                self.handshakes.remove(&addr);
                if self.peers.get(&addr).is_some_and(Peer::waiting) {
                    // Wait for the Confirm only as long as for a Welcome, then open the
                    // session ourselves: a forged Hello delays our messages by one
                    // retransmission, no more.
                    let wait = backoff(
                        &self.config,
                        self.config.handshake_rto(),
                        transmissions.max(1),
                    )
                    .min(self.config.handshake_timeout);
                    self.handshakes.insert(
                        addr,
                        Handshake::Yielded {
                            from: inc,
                            transmissions,
                            expires: now + wait,
                        },
                    );
                }
            }
            Some(Handshake::Yielded { .. }) | None => {}
        }
        let theirs = Route {
            version: self.config.protocol_version,
            from: inc,
            to,
        };
        let epoch = self.cookie_epoch(now);
        let nonce = match self.responder_nonce(addr, theirs, body, epoch) {
            Ok(nonce) => nonce,
            Err(e) => {
                log::warn!("UDP transport: cannot answer {addr}: {e}");
                return;
            }
        };
        let ours = self.route(Some(inc));
        match Responder::new(
            &self.secret,
            HANDSHAKE_PROTOCOL,
            self.incarnation.raw(),
            nonce,
            &context(ours, self.local_port, body.opening),
            hello,
            &context(theirs, self.local_port, body.opening),
        ) {
            Ok((_, welcome)) => {
                let welcome = wire::encode_handshake(
                    ours,
                    HandshakeRef::Welcome(&WelcomeBody {
                        welcome,
                        opening: body.opening,
                    }),
                );
                self.transmits.push_back((addr, welcome));
            }
            Err(e) => {
                if self.log.allow(now) {
                    log::warn!("UDP transport: refusing a session with {addr}: {e}");
                }
                let reject = wire::encode_handshake(
                    ours,
                    HandshakeRef::Reject(RejectReason::UnsupportedSuite),
                );
                self.transmits.push_back((addr, reject));
            }
        }
    }

    /// The cookie epoch of `now`: the number of whole [`Config::handshake_timeout`]s since
    /// the first `Hello` this machine answered. A `Confirm` is checked against the nonces of
    /// its epoch and the one before, so it is good for between one and two handshake
    /// timeouts after the `Welcome`, and a recorded one is worthless after that.
    fn cookie_epoch(&mut self, now: Instant) -> u64 {
        let origin = *self.cookie_origin.get_or_insert(now);
        let length = self.config.handshake_timeout.as_millis().max(1);
        u64::try_from(now.saturating_duration_since(origin).as_millis() / length)
            .unwrap_or(u64::MAX)
    }

    /// The responder's nonce for `hello` from `addr` (whose header said `theirs`) in cookie
    /// `epoch`: derived from the cookie key (made at the first call), so nobody else can
    /// predict it and we can recompute it from the `Confirm`.
    fn responder_nonce(
        &mut self,
        addr: SocketAddr,
        theirs: Route,
        body: &HelloBody,
        epoch: u64,
    ) -> Result<Nonce, AuthError> {
        if self.cookie_key.is_none() {
            self.cookie_key = Some(CookieKey(self.nonces.next()?));
        }
        let key = &self.cookie_key.as_ref().expect("just made").0;
        let addr = postcard::to_allocvec(&addr).expect("a Vec has room");
        let hello = postcard::to_allocvec(&body.hello).expect("a Vec has room");
        Ok(Nonce::derive(
            key,
            &[
                b"thespian udp responder nonce",
                &epoch.to_le_bytes(),
                &addr,
                &context(theirs, self.local_port, body.opening),
                &hello,
            ],
        ))
    }

    fn on_welcome(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        inc: SystemId,
        to: Option<SystemId>,
        body: &WelcomeBody,
    ) {
        let welcome = &body.welcome;
        if to != Some(self.incarnation) {
            return;
        }
        if !matches!(
            self.handshakes.get(&addr),
            Some(Handshake::Initiating { opening, .. }) if *opening == body.opening
        ) {
            // A repeated Welcome of a session we opened (our Confirm was lost), or a late
            // answer to an earlier Hello of ours: not a failed proof.
            if let Some(peer) = self.peers.get(&addr).filter(|p| p.incarnation == Some(inc)) {
                if let Some(confirm) = peer
                    .session
                    .as_ref()
                    .and_then(|s| s.confirm.as_ref())
                    .filter(|c| c.welcome_nonce == welcome.nonce)
                {
                    self.transmits.push_back((addr, confirm.bytes.clone()));
                }
            }
            return;
        }
        if self
            .peers
            .get(&addr)
            .is_some_and(|p| p.retired.contains(&inc))
        {
            return;
        }
        let Some(Handshake::Initiating {
            initiator,
            hello_to,
            opening,
            ..
        }) = self.handshakes.remove(&addr)
        else {
            return;
        };
        let hello = initiator.hello().clone();
        let theirs = Route {
            version: self.config.protocol_version,
            from: inc,
            to,
        };
        match initiator.finish(welcome, &context(theirs, addr.port(), opening)) {
            Ok((confirm, keys)) => {
                let body = ConfirmBody {
                    hello,
                    hello_to,
                    opening,
                    confirm,
                };
                let bytes =
                    wire::encode_handshake(self.route(Some(inc)), HandshakeRef::Confirm(&body));
                self.transmits.push_back((addr, bytes.clone()));
                let pending = PendingConfirm {
                    bytes,
                    welcome_nonce: welcome.nonce,
                    due: now + backoff(&self.config, self.config.handshake_rto(), 1),
                    transmissions: 1,
                };
                self.establish(now, addr, inc, keys, Some(pending));
            }
            Err(e) => self.handshake_failed(now, addr, inc, e),
        }
    }

    /// Checks a `Confirm` by recomputing the `Welcome` it answers (the responder kept nothing):
    /// only a valid proof creates the session. A repeat of the `Confirm` that made the
    /// current session draws our proof that we have it and changes nothing else; one that
    /// fails, or comes after its cookie epochs, is counted and dropped (it is unauthenticated:
    /// no `Reject`, and nothing of ours is failed).
    fn on_confirm(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        inc: SystemId,
        to: Option<SystemId>,
        body: &ConfirmBody,
    ) {
        if to != Some(self.incarnation) || self.cookie_origin.is_none() {
            return;
        }
        if let Some(peer) = self.peers.get(&addr) {
            if peer.retired.contains(&inc) {
                return;
            }
            if peer.incarnation == Some(inc) && peer.last_opening.is_some_and(|l| body.opening <= l)
            {
                let current = peer
                    .session
                    .as_ref()
                    .is_some_and(|s| s.theirs == Some(body.opening));
                if current {
                    // A repeat (or a replay) of the Confirm that made this session: our
                    // proof that we have it was lost.
                    self.send_session_proof(addr);
                }
                // Otherwise a late copy (or a replay) of an older handshake's, or of one we
                // refused: it must not replace this session.
                return;
            }
        }
        let theirs = Route {
            version: self.config.protocol_version,
            from: inc,
            to: body.hello_to,
        };
        let ours = self.route(Some(inc));
        let epoch = self.cookie_epoch(now);
        let hello = HelloBody {
            hello: body.hello.clone(),
            opening: body.opening,
        };
        for epoch in [Some(epoch), epoch.checked_sub(1)].into_iter().flatten() {
            let Ok(nonce) = self.responder_nonce(addr, theirs, &hello, epoch) else {
                return;
            };
            let Ok((responder, _)) = Responder::new(
                &self.secret,
                HANDSHAKE_PROTOCOL,
                self.incarnation.raw(),
                nonce,
                &context(ours, self.local_port, body.opening),
                &body.hello,
                &context(theirs, self.local_port, body.opening),
            ) else {
                return;
            };
            if let Ok(keys) = responder.finish(&body.confirm) {
                if self.keeps_ours(addr, inc) {
                    // Both sides opened a session and the lower incarnation's wins: this
                    // one is refused. It may be a late copy of a handshake the peer gave up
                    // for ours, or the peer may have forgotten ours; a new handshake of ours
                    // settles both (the peer takes any newer session of ours).
                    if let Some(peer) = self.peers.get_mut(&addr) {
                        peer.opened(body.opening, false);
                    }
                    if !self.handshakes.contains_key(&addr) {
                        log::debug!(
                            "UDP transport: {addr} confirmed a session while ours stands; \
                             opening a new one"
                        );
                        self.initiate(now, addr, 0, true);
                    }
                    return;
                }
                if self.establish(now, addr, inc, keys, None) {
                    if let Some(peer) = self.peers.get_mut(&addr) {
                        peer.opened(body.opening, true);
                    }
                    self.send_session_proof(addr);
                }
                return;
            }
        }
        self.stats.handshakes_failed += 1;
        if self.log.allow(now) {
            log::warn!(
                "UDP transport: dropping a session confirmation from {addr} that fails its \
                 proof (forged, changed in flight, or too late)"
            );
        }
    }

    /// True when a verified `Confirm` from incarnation `inc` at `addr` must not replace our
    /// session there: one we opened ourselves, with the same incarnation, while we are the
    /// lower incarnation (the rule of simultaneous opens: the lower incarnation's session
    /// wins, so both sides end on the same one).
    fn keeps_ours(&self, addr: SocketAddr, inc: SystemId) -> bool {
        self.incarnation.raw() < inc.raw()
            && self.peers.get(&addr).is_some_and(|p| {
                p.incarnation == Some(inc) && p.session.as_ref().is_some_and(|s| s.initiated)
            })
    }

    fn on_reject(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        inc: SystemId,
        to: Option<SystemId>,
        reason: RejectReason,
    ) {
        if to != Some(self.incarnation) {
            return;
        }
        let error = match reason {
            RejectReason::WrongSecret => AuthError::WrongSecret,
            RejectReason::UnsupportedSuite => AuthError::UnsupportedSuite(Suite::Authenticated),
        };
        let counted = self.unauthenticated_refusal(
            now,
            addr,
            Some(inc),
            UndeliverableReason::AuthenticationFailed(error),
        );
        // Counted and logged either way (a responder keeps no handshake, yet its operator
        // should learn that a peer refused its proof), but it acted only if it counted.
        self.stats.handshakes_failed += 1;
        if self.log.allow(now) {
            let acted = if counted {
                ""
            } else {
                " (no handshake of ours in progress there: nothing failed)"
            };
            log::warn!("UDP transport: the endpoint at {addr} refused a session: {reason}{acted}");
        }
    }

    /// The one rule for what an unauthenticated refusal from `addr` (a `Reject` from
    /// incarnation `sender`, or a version notice, which names none) may do: it counts only
    /// against a handshake this endpoint started there for messages of its own that wait for
    /// the session (never against an established session, a handshake we merely answer, or
    /// one opened because of the peer's data). Then it ends that handshake and fails those
    /// messages with `reason`; a version mismatch also remembers the address as dead. Returns
    /// whether it counted; when it did not, nothing changed (nothing is remembered about the
    /// sender, so a flood of refusals from many addresses costs no memory).
    fn unauthenticated_refusal(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        sender: Option<SystemId>,
        reason: UndeliverableReason,
    ) -> bool {
        let counts = !self.has_session(addr)
            && self.peers.get(&addr).is_some_and(Peer::waiting)
            && match self.handshakes.get(&addr) {
                Some(Handshake::Initiating { .. }) => true,
                Some(Handshake::Yielded { from, .. }) => sender.is_none_or(|s| s == *from),
                None => false,
            };
        if !counts {
            return false;
        }
        if let UndeliverableReason::VersionMismatch { .. } = reason {
            self.give_up(now, addr, reason);
        } else {
            self.handshakes.remove(&addr);
            self.fail_waiting(addr, &reason);
        }
        true
    }

    /// A proof failed: tell the peer, warn, and fail the messages that waited for this
    /// session (an established session, if any, is left as it is).
    fn handshake_failed(&mut self, now: Instant, addr: SocketAddr, inc: SystemId, e: AuthError) {
        self.stats.handshakes_failed += 1;
        if self.log.allow(now) {
            log::warn!("UDP transport: session handshake with the endpoint at {addr} failed: {e}");
        }
        let reason = match e {
            AuthError::UnsupportedSuite(_) => RejectReason::UnsupportedSuite,
            AuthError::WrongSecret | AuthError::Random(_) => RejectReason::WrongSecret,
        };
        let reject = wire::encode_handshake(self.route(Some(inc)), HandshakeRef::Reject(reason));
        self.transmits.push_back((addr, reject));
        self.fail_waiting(addr, &UndeliverableReason::AuthenticationFailed(e));
    }

    /// Fails the messages to `addr` that wait for a session (none once one is established).
    fn fail_waiting(&mut self, addr: SocketAddr, reason: &UndeliverableReason) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if peer.session.is_some() {
            return;
        }
        if let Some(out) = peer.out.as_mut() {
            fail_all(out, addr, reason, &mut self.events);
        }
    }

    /// A handshake with incarnation `inc` at `addr` completed: the session replaces any
    /// before it; a new incarnation retires the old one (only now, authenticated). Messages
    /// waiting for the session go out. False when the session was not taken.
    fn establish(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        inc: SystemId,
        keys: SessionKeys,
        confirm: Option<PendingConfirm>,
    ) -> bool {
        if !self.peers.contains_key(&addr) {
            if self.peers.len() >= self.config.max_peers {
                if self.log.allow(now) {
                    log::warn!(
                        "UDP transport: {} peers remembered; no session with {addr}",
                        self.peers.len()
                    );
                }
                return false;
            }
            self.peers.insert(addr, Peer::new(now));
            self.schedule_gc(now);
        }
        let peer = self.peers.get_mut(&addr).expect("inserted");
        match peer.observe(inc) {
            Seen::Stale => return false,
            Seen::Current => {}
            Seen::Restarted { old } => {
                log::debug!("UDP transport: {addr} restarted (incarnation {old:?} is now {inc:?})");
                self.events.push_back(Event::PeerRestarted {
                    peer: addr,
                    old,
                    new: inc,
                });
                if let Some(mut out) = peer.out.take() {
                    let reason = UndeliverableReason::PeerRestarted { old, new: inc };
                    fail_all(&mut out, addr, &reason, &mut self.events);
                }
                peer.inb = None;
            }
        }
        log::debug!("UDP transport: session with {addr} (incarnation {inc:?}) established");
        // Our own attempt, if any, is moot: the messages it waited for go out now.
        self.handshakes.remove(&addr);
        peer.session = Some(Session::new(keys, confirm));
        peer.last_activity = now;
        self.dead.remove(&addr);
        // The messages that waited for the session go out now.
        let Some(out) = peer.out.as_mut() else {
            return true;
        };
        let rto = out.rto(&self.config);
        let mut waiting = Vec::new();
        for (index, o) in out.unacked.iter_mut().enumerate() {
            if o.transmissions == 0 {
                o.transmissions = 1;
                o.first_sent = now;
                o.due = now + backoff(&self.config, rto, 1);
                waiting.push(index);
            }
        }
        out.refresh_due();
        for run in runs(&waiting) {
            send_run(
                &self.config,
                self.incarnation,
                peer,
                addr,
                run,
                &mut self.transmits,
            );
        }
        true
    }

    /// Sends an authenticated acknowledgement of no stream: proof that we have the session.
    fn send_session_proof(&mut self, addr: SocketAddr) {
        let route = self.route(self.peers.get(&addr).and_then(|p| p.incarnation));
        let Some(session) = self.peers.get_mut(&addr).and_then(|p| p.session.as_mut()) else {
            return;
        };
        let ack = Ack {
            stream: 0,
            cumulative: 0,
            ranges: Vec::new(),
        };
        let datagram = wire::encode_ack(route, session.seal(), &ack);
        self.transmits.push_back((addr, datagram));
    }

    /// Handles the passing of time: retransmissions, give-ups, delayed acknowledgements and
    /// forgetting idle peers.
    ///
    /// Call it once `now` reaches [`poll_timeout`](Self::poll_timeout) (calling it earlier or
    /// more often is harmless), then drain [`poll_transmit`](Self::poll_transmit) and
    /// [`poll_event`](Self::poll_event).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.handshake_timers(now);
        let mut given_up = Vec::new();
        for (&addr, peer) in &mut self.peers {
            if let Some(confirm) = peer
                .session
                .as_mut()
                .and_then(|s| s.confirm.as_mut())
                .filter(|c| c.due <= now)
            {
                if confirm.transmissions > self.config.max_retransmits {
                    // Data the peer cannot read will make it open a session anew.
                    peer.session.as_mut().expect("checked").confirm = None;
                } else {
                    confirm.transmissions += 1;
                    confirm.due = now
                        + backoff(
                            &self.config,
                            self.config.handshake_rto(),
                            confirm.transmissions,
                        );
                    self.transmits.push_back((addr, confirm.bytes.clone()));
                }
            }
            if let Some(inb) = &mut peer.inb {
                if inb.ack_due.is_some_and(|t| t <= now) {
                    inb.ack_due = None;
                    if !inb.ack_now {
                        inb.ack_now = true;
                        self.ack_queue.push(addr);
                    }
                }
            }
            let Some(out) = &mut peer.out else { continue };
            if out.next_due.is_none_or(|t| t > now) {
                continue;
            }
            // The oldest message past its last transmission gives the peer up (the later
            // ones could only be delivered after it); nothing more is sent to it then.
            if let Some(o) = out.unacked.iter().find(|o| {
                !o.sacked && o.due <= now && o.transmissions > self.config.max_retransmits
            }) {
                given_up.push((addr, o.transmissions));
                continue;
            }
            let rto = out.rto(&self.config);
            let mut resend = Vec::new();
            for (index, o) in out.unacked.iter_mut().enumerate() {
                if o.sacked || o.due > now || o.transmissions == 0 {
                    continue;
                }
                o.transmissions += 1;
                o.due = now + backoff(&self.config, rto, o.transmissions);
                resend.push(index);
            }
            out.refresh_due();
            for run in runs(&resend) {
                send_run(
                    &self.config,
                    self.incarnation,
                    peer,
                    addr,
                    run,
                    &mut self.transmits,
                );
            }
        }
        for (addr, transmissions) in given_up {
            log::debug!(
                "UDP transport: no acknowledgement from {addr} after {transmissions} \
                 transmissions; giving it up"
            );
            self.give_up(
                now,
                addr,
                UndeliverableReason::RetriesExhausted { transmissions },
            );
        }
        if self.next_gc.is_some_and(|t| t <= now) {
            self.collect_garbage(now);
        }
    }

    /// Handshakes whose time came: `Hello`s are sent again (or, after the retries, their
    /// waiting messages given up); responders stop waiting for a `Confirm`.
    fn handshake_timers(&mut self, now: Instant) {
        let mut due: Vec<SocketAddr> = self
            .handshakes
            .iter()
            .filter(|(_, h)| h.deadline() <= now)
            .map(|(&addr, _)| addr)
            .collect();
        due.sort();
        for addr in due {
            let waiting = self.peers.get(&addr).is_some_and(Peer::waiting);
            match self.handshakes.remove(&addr) {
                Some(Handshake::Initiating {
                    initiator,
                    hello,
                    hello_to,
                    opening,
                    reopen,
                    transmissions,
                    ..
                }) => {
                    if !reopen && !waiting {
                        // Opened for a peer's data, not for ours: its retransmissions open
                        // it again if they need to.
                        continue;
                    }
                    if transmissions > self.config.max_retransmits {
                        if waiting {
                            log::debug!(
                                "UDP transport: no answer from {addr} to {transmissions} \
                                 session handshakes; giving it up"
                            );
                            self.give_up(
                                now,
                                addr,
                                UndeliverableReason::RetriesExhausted { transmissions },
                            );
                        }
                        // A re-opening with nothing waiting: the session we have stands.
                        continue;
                    }
                    let transmissions = transmissions + 1;
                    let due =
                        now + backoff(&self.config, self.config.handshake_rto(), transmissions);
                    self.transmits.push_back((addr, hello.clone()));
                    self.handshakes.insert(
                        addr,
                        Handshake::Initiating {
                            initiator,
                            hello,
                            hello_to,
                            opening,
                            reopen,
                            transmissions,
                            due,
                        },
                    );
                }
                Some(Handshake::Yielded { transmissions, .. }) => {
                    if !waiting {
                        continue;
                    }
                    // We had yielded to the peer's Hello, which came to nothing: open the
                    // session ourselves.
                    if transmissions > self.config.max_retransmits {
                        self.give_up(
                            now,
                            addr,
                            UndeliverableReason::RetriesExhausted { transmissions },
                        );
                    } else {
                        self.initiate(now, addr, transmissions, false);
                    }
                }
                None => {}
            }
        }
    }

    /// The next datagram to send: `(destination, bytes)`.
    ///
    /// Call it until it returns `None` after every [`send`](Self::send),
    /// [`handle_datagram`](Self::handle_datagram) (or batch of them),
    /// [`handle_timeout`](Self::handle_timeout), [`mark_dead`](Self::mark_dead) and
    /// [`close`](Self::close). Owed acknowledgements are built here, so one covers every
    /// datagram received before the call.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        // New messages before owed acknowledgements, so those ride on them.
        while let Some(addr) = self.fresh_peers.pop_front() {
            let Some(peer) = self.peers.get_mut(&addr) else {
                continue;
            };
            let Some(out) = peer.out.as_mut() else {
                continue;
            };
            let Some(first) = out.fresh.take() else {
                continue;
            };
            let base = out.base();
            let start = usize::try_from(first.saturating_sub(base)).unwrap_or(usize::MAX);
            let end = out.unacked.len();
            if start < end {
                send_run(
                    &self.config,
                    self.incarnation,
                    peer,
                    addr,
                    start..end,
                    &mut self.transmits,
                );
            }
            if let Some(t) = self.transmits.pop_front() {
                return Some(t);
            }
        }
        while let Some(addr) = self.ack_queue.pop() {
            let Some(peer) = self.peers.get_mut(&addr) else {
                continue;
            };
            let Some(inb) = peer.inb.as_mut().filter(|i| i.ack_now) else {
                continue;
            };
            let ack = inb.take_ack();
            let route = Route {
                version: self.config.protocol_version,
                from: self.incarnation,
                to: peer.incarnation,
            };
            let Some(session) = peer.session.as_mut() else {
                continue;
            };
            return Some((addr, wire::encode_ack(route, session.seal(), &ack)));
        }
        None
    }

    /// The next event for the base.
    ///
    /// Call it until it returns `None` after the same calls as
    /// [`poll_transmit`](Self::poll_transmit).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next needed (`None`: nothing is
    /// timed).
    ///
    /// Read it again after every other call; the driver sleeps until this time at most.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.peers
            .values()
            .filter_map(Peer::next_timer)
            .chain(self.handshakes.values().map(Handshake::deadline))
            .chain(self.next_gc)
            .min()
    }

    /// Declares the endpoint at `peer` dead (the base knows it exited): its unacknowledged
    /// messages are reported [`UndeliverableReason::MarkedDead`], and sends to it fail at once
    /// for [`Config::dead_address_memory`].
    pub fn mark_dead(&mut self, now: Instant, peer: SocketAddr) {
        self.give_up(now, peer, UndeliverableReason::MarkedDead);
    }

    /// The network refused a datagram sent to `peer` (an ICMP port unreachable): nothing
    /// listens there, so its unacknowledged messages are reported
    /// [`UndeliverableReason::PortUnreachable`] now instead of after the retransmissions, and
    /// the address is remembered as dead.
    pub fn refused(&mut self, now: Instant, peer: SocketAddr) {
        if self.closed {
            return;
        }
        self.give_up(now, peer, UndeliverableReason::PortUnreachable);
    }

    /// A new endpoint listens at `peer` (the base knows, e.g. it bound the socket itself or
    /// holds an address of a newer incarnation there): when the address is remembered as dead,
    /// forget it and the peer given up there, so the next message starts afresh with whoever
    /// listens now (not addressed to the old incarnation, which the new one would refuse).
    /// Nothing changes for an address not remembered as dead: a peer heard from since is live.
    pub fn revive(&mut self, peer: SocketAddr) {
        if self.dead.remove(&peer).is_some() {
            self.peers.remove(&peer);
            self.handshakes.remove(&peer);
        }
    }

    /// Closes the machine: every unacknowledged message is reported
    /// [`UndeliverableReason::Shutdown`], further sends fail with [`SendError::Closed`], and
    /// received datagrams are ignored. Acknowledgements still owed (delayed ones included) are
    /// sent, so no peer retransmits what was delivered here and reports it undeliverable.
    /// Drain [`poll_transmit`](Self::poll_transmit) and [`poll_event`](Self::poll_event)
    /// afterwards.
    pub fn close(&mut self, _now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut addrs: Vec<SocketAddr> = self.peers.keys().copied().collect();
        addrs.sort();
        self.ack_queue.clear();
        self.handshakes.clear();
        for addr in addrs {
            let Some(peer) = self.peers.get_mut(&addr) else {
                continue;
            };
            if let Some(out) = peer.out.as_mut() {
                fail_all(out, addr, &UndeliverableReason::Shutdown, &mut self.events);
            }
            let route = Route {
                version: self.config.protocol_version,
                from: self.incarnation,
                to: peer.incarnation,
            };
            if let (Some(inb), Some(session)) = (
                peer.inb.as_mut().filter(|i| i.ack_pending()),
                peer.session.as_mut(),
            ) {
                let ack = inb.take_ack();
                self.transmits
                    .push_back((addr, wire::encode_ack(route, session.seal(), &ack)));
            }
        }
    }

    /// The route of a datagram to an endpoint of incarnation `to`.
    fn route(&self, to: Option<SystemId>) -> Route {
        Route {
            version: self.config.protocol_version,
            from: self.incarnation,
            to,
        }
    }

    fn schedule_gc(&mut self, now: Instant) {
        if self.next_gc.is_none() {
            self.next_gc = Some(now + self.config.gc_period());
        }
    }

    fn apply_ack(&mut self, now: Instant, addr: SocketAddr, ack: &Ack) {
        let Some(out) = self.peers.get_mut(&addr).and_then(|p| p.out.as_mut()) else {
            return;
        };
        let acked = out.on_ack(now, ack);
        if !acked.is_empty() {
            self.events.push_back(Event::Acked {
                peer: addr,
                ids: acked.into_iter().map(|o| o.id).collect(),
            });
        }
    }

    fn receive_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        stream: u64,
        seq: u64,
        base: u64,
        message: WireMessage,
    ) {
        let peer = self.peers.get_mut(&from).expect("caller inserted");
        let inb = peer.inb.get_or_insert_with(|| Inbound::new(stream, base));
        if stream < inb.stream {
            // A late datagram of a stream the sender abandoned.
            return;
        }
        if stream > inb.stream {
            *inb = Inbound::new(stream, base);
        }
        let mut delivered = Vec::new();
        let receipt = inb.receive(seq, base, message, self.config.recv_window, &mut delivered);
        let urgent = match receipt {
            Receipt::InOrder { unblocked } => {
                inb.unacked += 1;
                unblocked > 0
                    || inb.unacked >= self.config.ack_every.max(1)
                    || self.config.ack_delay.is_zero()
            }
            Receipt::Held | Receipt::Duplicate | Receipt::BeyondWindow => true,
        };
        if urgent {
            if !inb.ack_now {
                inb.ack_now = true;
                self.ack_queue.push(from);
            }
        } else if inb.ack_due.is_none() {
            inb.ack_due = Some(now + self.config.ack_delay);
        }
        self.events.extend(
            delivered
                .into_iter()
                .map(|message| Event::Delivered { from, message }),
        );
    }

    /// Gives up the peer at `addr`: fails its unacknowledged messages with `reason` and
    /// remembers the address as dead.
    fn give_up(&mut self, now: Instant, addr: SocketAddr, reason: UndeliverableReason) {
        if let Some(out) = self.peers.get_mut(&addr).and_then(|p| p.out.as_mut()) {
            fail_all(out, addr, &reason, &mut self.events);
        }
        self.handshakes.remove(&addr);
        // Datagrams still queued for it would only draw more ICMP errors.
        self.transmits.retain(|(to, _)| *to != addr);
        // Bounded like the peers: the oldest memory makes room (every entry lives equally
        // long, so the earliest expiry is the oldest).
        if !self.dead.contains_key(&addr) && self.dead.len() >= self.config.max_peers.max(1) {
            if let Some(oldest) = self
                .dead
                .iter()
                .min_by_key(|(a, until)| (**until, **a))
                .map(|(a, _)| *a)
            {
                self.dead.remove(&oldest);
            }
        }
        self.dead
            .insert(addr, now + self.config.dead_address_memory);
        self.schedule_gc(now);
    }

    fn collect_garbage(&mut self, now: Instant) {
        let idle = self.config.peer_idle_timeout;
        self.peers.retain(|_, p| {
            !(p.is_idle() && now.saturating_duration_since(p.last_activity) >= idle)
        });
        self.dead.retain(|_, until| now < *until);
        self.next_gc = (!self.peers.is_empty() || !self.dead.is_empty())
            .then(|| now + self.config.gc_period());
    }
}

/// Reports every unacknowledged message of `out` undeliverable. The stream goes on: the next
/// message carries a base past them, so the receiver skips the gap.
fn fail_all(
    out: &mut Outbound,
    addr: SocketAddr,
    reason: &UndeliverableReason,
    events: &mut VecDeque<Event>,
) {
    for o in out.unacked.drain(..) {
        events.push_back(Event::Undeliverable {
            peer: addr,
            id: o.id,
            message: o.message,
            reason: reason.clone(),
        });
    }
    out.bytes = 0;
    out.next_due = None;
    out.fresh = None;
}

/// The runs of consecutive indices in `indices` (ascending).
fn runs(indices: &[usize]) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for &i in indices {
        match runs.last_mut() {
            Some(run) if run.end == i => run.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

/// Encodes the consecutive unacknowledged messages `run` of `peer`'s stream into
/// `transmits`: as many as fit in [`Config::coalesce_limit`] (and [`wire::MAX_BATCH`]) in
/// each batch datagram, a message alone in a data datagram of its own. The first datagram
/// carries an owed acknowledgement when it fits.
fn send_run(
    config: &Config,
    me: SystemId,
    peer: &mut Peer,
    addr: SocketAddr,
    run: Range<usize>,
    transmits: &mut VecDeque<(SocketAddr, Vec<u8>)>,
) {
    let limit = config.coalesce_limit.min(config.datagram_limit());
    let mut i = run.start;
    while i < run.end {
        let Some(out) = peer.out.as_ref() else {
            return;
        };
        let ack_len = peer
            .inb
            .as_ref()
            .filter(|inb| inb.ack_pending())
            .map_or(0, |inb| wire::ack_size(&inb.ack()));
        let mut size = wire::batch_bound() + ack_len;
        let mut j = i;
        while j < run.end.min(out.unacked.len()) && j - i < wire::MAX_BATCH {
            let more = wire::batch_entry_bound(&out.unacked[j].message);
            if j > i && size + more > limit {
                break;
            }
            size += more;
            j += 1;
        }
        let datagram = if j - i > 1 && size <= limit {
            batch_datagram(config, me, peer, i..j)
        } else {
            j = i + 1;
            data_datagram(config, me, peer, i)
        };
        match datagram {
            Some(datagram) => transmits.push_back((addr, datagram)),
            None => return,
        }
        i = j;
    }
}

/// Encodes unacknowledged messages `run` (two or more, consecutive, within the coalescing
/// limit with an owed acknowledgement) of `peer`'s stream as one batch in its session,
/// piggy-backing the owed acknowledgement. `None` without a session.
fn batch_datagram(
    config: &Config,
    me: SystemId,
    peer: &mut Peer,
    run: Range<usize>,
) -> Option<Vec<u8>> {
    let session = peer.session.as_mut()?;
    let out = peer.out.as_ref()?;
    let messages: Vec<&WireMessage> = out.unacked.range(run.clone()).map(|o| &o.message).collect();
    let route = Route {
        version: config.protocol_version,
        from: me,
        to: peer.incarnation,
    };
    let position = Position {
        stream: out.stream,
        seq: out.unacked.get(run.start)?.seq,
        base: out.base(),
    };
    // `take_ack` clears the debt; a queued `ack_now` finds nothing owed and is skipped by
    // `poll_transmit`.
    let ack = peer
        .inb
        .as_mut()
        .filter(|inb| inb.ack_pending())
        .map(|inb| inb.take_ack());
    Some(wire::encode_batch(
        route,
        session.seal(),
        position,
        &messages,
        ack.as_ref(),
    ))
}

/// Encodes unacknowledged message `index` of `peer`'s stream in its session, piggy-backing an
/// owed acknowledgement when it fits. `None` without a session.
fn data_datagram(config: &Config, me: SystemId, peer: &mut Peer, index: usize) -> Option<Vec<u8>> {
    let session = peer.session.as_mut()?;
    let out = peer.out.as_ref()?;
    let o = &out.unacked[index];
    let route = Route {
        version: config.protocol_version,
        from: me,
        to: peer.incarnation,
    };
    let position = Position {
        stream: out.stream,
        seq: o.seq,
        base: out.base(),
    };
    let ack = match &mut peer.inb {
        Some(inb) if inb.ack_pending() => {
            let ack = inb.ack();
            if o.size + wire::ack_size(&ack) <= config.datagram_limit() {
                // `take_ack` clears the debt; a queued `ack_now` finds nothing owed and is
                // skipped by `poll_transmit`.
                Some(inb.take_ack())
            } else {
                None
            }
        }
        _ => None,
    };
    Some(wire::encode_data(
        route,
        session.seal(),
        position,
        &o.message,
        ack.as_ref(),
    ))
}

#[cfg(test)]
mod tests;
