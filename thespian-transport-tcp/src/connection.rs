//! The sans-IO connection machine: everything the TCP transport decides, with no I/O.
//!
//! This module exists so that handshakes, acknowledgements, retransmission, back-off, ordering,
//! queue bounds and time-outs are written once, deterministically, and tested without sockets
//! (in the style of `quinn-proto`, reference anchors §4.1). A driver (the [`endpoint`] module,
//! or a test harness) feeds it bytes and time and carries out what it asks for.
//!
//! Two machines:
//! - [`Connection`] is the *session* with one peer. It outlives TCP connections ("links"): its
//!   outbound queue, sequence numbers and what it has delivered survive a reconnect, so
//!   unacknowledged messages are retransmitted in order on the next link and duplicates are
//!   dropped by the receiver. At most one link is current at a time.
//! - [`Incoming`] is an accepted socket before its handshake: it reads the peer's `Hello`, has
//!   the peer's session answer it ([`Connection::answer`]), reads the peer's `Confirm` (and
//!   nothing else), so the driver can [`Connection::attach`] the authenticated link to the
//!   session; or it rejects the socket with an explanation.
//!
//! Time always comes in as `now: Instant`; the machines never read the clock, open sockets or
//! spawn threads.
//!
//! # The session, step by step
//! - **Connect.** A session with messages to send and no link asks for one
//!   ([`Connection::poll_connect`]); the driver opens a TCP connection and reports
//!   [`Connection::connected`] or [`Connection::connect_failed`]. A refused connection fails
//!   every queued message as a dead target.
//! - **Handshake.** The initiator sends `Hello` (magic, version, incarnation, session, listening
//!   address, maximum frame, and a `thespian_auth` challenge); the acceptor answers `Welcome`
//!   (its own information, its proof that it holds the system's secret and its challenge) or
//!   `Reject`; the initiator checks the proof and answers `Confirm` (its proof). Everything must
//!   arrive within [`Config::handshake_timeout`], in frames of at most [`MAX_HANDSHAKE_FRAME`]
//!   bytes; nothing else is accepted before the handshake completes (for the acceptor: before a
//!   valid `Confirm`). A version or magic mismatch, and a wrong secret, are reported on both
//!   sides, and fail every message queued for the peer. A `Reject` carries a typed
//!   [`RejectKind`]: only the kind is acted on (the text is the peer's, logged escaped and
//!   truncated). An overloaded refusal is temporary: the queue is kept and
//!   the session reconnects after the back-off, so messages fail only by their transmit timeout
//!   (with the refusal as their reason).
//! - **Authentication.** After the handshake, frames travel in sealed *records*: what a transmit
//!   gathers (an `Ack`, then data frames up to [`Config::max_batch`] bytes plus one) goes out as
//!   one record ending with a MAC under the session key of its direction, over its bytes and
//!   its index on the connection. A record that fails the check is dropped whole and counted
//!   ([`Connection::stats`]), none of its frames decoded, and only that TCP connection is
//!   closed (a byte stream cannot resynchronise): the session survives, reconnects and
//!   retransmits.
//! - **Bounds.** A record may hold one maximum-size frame plus a batch
//!   ([`wire::record_limit`]); a longer announcement is refused before anything is buffered. A
//!   record in progress must complete within [`Config::frame_timeout`] plus
//!   [`Config::frame_time_per_mib`] per MiB it announces, counted from its first byte, so a peer
//!   trickling one record is closed; its buffer grows as bytes arrive.
//! - **Data.** Every message gets a sequence number when queued; frames go out in order, in
//!   records of at most [`Config::max_batch`] bytes (and one frame more). The receiver delivers
//!   each sequence number once, in order, and owes a cumulative `Ack` after each batch of
//!   input. The `Ack` rides in the next record with data; with no data going back it waits at
//!   most [`Config::ack_delay`], and goes at once when [`Config::ack_frames`] frames or
//!   [`Config::ack_bytes`] bytes arrived since the last one (so a sender's window never waits on
//!   the timer when it is larger than the thresholds, and never longer than the delay when not).
//!   A returning peer's first record after a handshake carries the `Ack` at once.
//! - **Loss.** When a link ends with messages unacknowledged, the session reconnects after a
//!   back-off (20 ms × 1.7 per attempt, up to 7.329 s, Thespian's values) and retransmits them
//!   first. A message not acknowledged within [`Config::transmit_timeout`] fails.
//! - **Restart.** A handshake from a new incarnation of the peer is a new peer: messages that
//!   were transmitted to the old incarnation and not acknowledged fail as dead; messages never
//!   transmitted go to the new incarnation.
//! - **Idle.** A link with nothing to send or acknowledge for [`Config::idle_timeout`] says
//!   `Goodbye` and closes; the session reconnects when there is something to send again.
//!
//! [`endpoint`]: crate::endpoint

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thespian_auth::{AuthError, Initiator, Nonce, Responder, Secret, SessionKeys};
use thespian_core::SystemId;

// Names a message for `Event::Acked` and `Event::Failed`; chosen by the caller of
// `Connection::send`. The same type on every transport: it lives in thespian-core and keeps its
// path here.
pub use thespian_core::wire::MessageId;

use crate::frame::{self, FrameDecoder, FrameError, FrameReader, HEADER_LEN};
use crate::transmit::{RecordStart, Transmit};
use crate::wire::{
    self, Control, Frame, GoodbyeReason, Handshake, HandshakeKind, PeerInfo, RejectKind, WireError,
    WireMessage, AUTH_PROTOCOL, MAX_HANDSHAKE_FRAME, PROTOCOL_VERSION,
};

/// How much [`Connection::handle_input`] offers to copy at once between records.
const INPUT_CHUNK: usize = 64 * 1024;

/// The reason sent and reported when the peer's proof is wrong.
pub const AUTH_FAILED: &str = "authentication failed: this system uses another secret";

/// The reason of a `Reject` sent when an endpoint refuses a connection for load.
pub const OVERLOADED: &str =
    "overloaded: the endpoint cannot take more connections now; try again later";

/// What is reported when the system that answered at `dialed` says it listens at `listens`.
fn wrong_peer_text(dialed: SocketAddr, listens: Option<SocketAddr>) -> String {
    match listens {
        Some(listens) => format!(
            "authentication failed: the peer at {dialed} says it listens on {listens}: not the system dialed"
        ),
        None => format!(
            "authentication failed: the peer at {dialed} says it listens nowhere: not the system dialed"
        ),
    }
}

/// Whether a system announcing `listen` is the one listening at `dialed`: the same port, and
/// the same IP unless either is unspecified (a system bound to every interface announces
/// `0.0.0.0` and cannot know which of its addresses was dialed; an unspecified address dialed
/// names no specific IP).
fn listens_at(listen: Option<SocketAddr>, dialed: SocketAddr) -> bool {
    let Some(listen) = listen else {
        return false;
    };
    listen.port() == dialed.port()
        && (listen.ip() == dialed.ip()
            || listen.ip().is_unspecified()
            || dialed.ip().is_unspecified())
}

/// Tunables of the transport; the defaults are Thespian's where Thespian has one.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest frame body sent or accepted (default 64 MiB). A larger message fails at the
    /// sender; a peer announcing a larger frame is disconnected.
    pub max_frame: usize,
    /// Most messages queued or unacknowledged per peer (default 1024; Thespian: 950).
    pub max_queued_messages: usize,
    /// Most bytes queued or unacknowledged per peer (default 256 MiB). One message is always
    /// accepted into an empty queue, so a message up to `max_frame` can always be sent.
    pub max_queued_bytes: usize,
    /// A link with no traffic for this long is closed (default 20 min, Thespian's
    /// `MAX_IDLE_SOCKET_PERIOD`).
    pub idle_timeout: Duration,
    /// Time allowed for a TCP connect plus the handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// Time an accepted socket has for its whole first handshake frame, the `Hello` (default
    /// 1 s, capped by [`handshake_timeout`](Self::handshake_timeout)): a silent socket holds a
    /// handshake slot no longer than this.
    pub first_frame_timeout: Duration,
    /// Time allowed for a frame, from its first byte to its last, after the handshake (default
    /// 30 s), plus [`frame_time_per_mib`](Self::frame_time_per_mib) per MiB its prefix
    /// announces. A link whose frame in progress misses it is closed (a peer trickling one
    /// frame cannot hold the connection and its buffer).
    pub frame_timeout: Duration,
    /// Extra time per announced MiB of a frame in progress (default 1 s: a 64 MiB frame has
    /// 94 s, that is at least 0.7 MB/s).
    pub frame_time_per_mib: Duration,
    /// A message not acknowledged within this time fails (default 5 min, Thespian's
    /// `DEFAULT_MAX_TRANSMIT_PERIOD`).
    pub transmit_timeout: Duration,
    /// First reconnect delay (default 20 ms).
    pub backoff_min: Duration,
    /// Longest reconnect delay (default 7.329 s).
    pub backoff_max: Duration,
    /// Growth of the reconnect delay per attempt (default 1.7).
    pub backoff_factor: f64,
    /// Data bytes gathered into one transmit, one sealed record (default 256 KiB, at most
    /// [`wire::MAX_RECORD_BATCH`]; one frame is always allowed beyond it).
    pub max_batch: usize,
    /// How long an acknowledgement may wait for a record with data to ride in (default 2 ms).
    /// Zero acknowledges every batch of input at once.
    pub ack_delay: Duration,
    /// Data frames received since the last acknowledgement that make it due at once (default
    /// 128, an eighth of the default [`max_queued_messages`](Self::max_queued_messages), so a
    /// peer with the default window never waits for [`ack_delay`](Self::ack_delay)).
    pub ack_frames: usize,
    /// Data bytes received since the last acknowledgement that make it due at once (default
    /// 1 MiB).
    pub ack_bytes: usize,
    /// The protocol version announced in handshakes. Leave it at [`PROTOCOL_VERSION`]; it is
    /// configurable so tests can play an older or newer peer.
    pub protocol_version: u16,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_frame: frame::DEFAULT_MAX_FRAME,
            max_queued_messages: 1024,
            max_queued_bytes: 256 * 1024 * 1024,
            idle_timeout: Duration::from_secs(20 * 60),
            handshake_timeout: Duration::from_secs(10),
            first_frame_timeout: Duration::from_secs(1),
            frame_timeout: Duration::from_secs(30),
            frame_time_per_mib: Duration::from_secs(1),
            transmit_timeout: Duration::from_secs(5 * 60),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(7329),
            backoff_factor: 1.7,
            max_batch: 256 * 1024,
            ack_delay: Duration::from_millis(2),
            ack_frames: 128,
            ack_bytes: 1024 * 1024,
            protocol_version: PROTOCOL_VERSION,
        }
    }
}

impl Config {
    /// The maximum frame as announced on the wire.
    fn announced_max_frame(&self) -> u32 {
        self.max_frame.min(wire::MAX_FRAME_IN_RECORD) as u32
    }

    /// Frame bytes gathered into one record before its last frame.
    fn record_batch(&self) -> usize {
        self.max_batch.min(wire::MAX_RECORD_BATCH)
    }

    /// The deadline of a frame that started at `started` and announces `announced` bytes.
    fn frame_deadline(&self, started: Instant, announced: Option<usize>) -> Instant {
        let mib = announced.unwrap_or(0).div_ceil(1024 * 1024) as u32;
        started + self.frame_timeout + self.frame_time_per_mib.saturating_mul(mib)
    }
}

/// Who we are: the same for every session of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIdentity {
    /// This system's incarnation id (new at every start).
    pub incarnation: SystemId,
    /// Our listening address, announced so peers can reuse connections and reconnect to us;
    /// `None` for an endpoint that accepts no connections.
    pub listen: Option<SocketAddr>,
    /// The system's shared secret, which every peer must prove it holds (its `Debug` output
    /// never shows it).
    pub secret: Secret,
}

/// Names one link (one TCP connection, or one attempt to open one) of a session, so the driver
/// can tell which socket an [`Event::Closed`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// Why [`Connection::send`] refused a message at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The message's frame would exceed the maximum frame size (ours or the peer's).
    TooLarge {
        /// The frame body size (an upper bound).
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The outbound queue to this peer is full; retry after some messages are acknowledged.
    QueueFull {
        /// Messages queued or unacknowledged.
        messages: usize,
        /// Bytes queued or unacknowledged.
        bytes: usize,
    },
    /// The peer cannot be reached: it accepts no connections and its connection is gone.
    Unreachable,
    /// The session (or endpoint) was closed.
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::TooLarge { size, limit } => write!(
                f,
                "message of {size} bytes exceeds the maximum frame size of {limit} bytes"
            ),
            SendError::QueueFull { messages, bytes } => write!(
                f,
                "outbound queue full ({messages} messages, {bytes} bytes waiting for acknowledgement)"
            ),
            SendError::Unreachable => {
                f.write_str("peer unreachable: it accepts no connections and is disconnected")
            }
            SendError::Closed => f.write_str("transport closed"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why messages failed (see [`Event::Failed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// The peer refused the connection: nobody listens there (a dead target).
    Refused,
    /// The peer restarted (new incarnation) before acknowledging them; they may or may not have
    /// reached the old incarnation, which is gone.
    PeerRestarted,
    /// Not acknowledged within [`Config::transmit_timeout`].
    TimedOut,
    /// Larger than the peer's maximum frame (learnt in the handshake).
    TooLarge {
        /// Frame body size.
        size: usize,
        /// The peer's limit.
        limit: usize,
    },
    /// The peer speaks another protocol version.
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// The peer rejected the handshake for good (a protocol refusal, a peer shutting down), or
    /// kept refusing it for now (overloaded) until the message's transmit timeout.
    Rejected {
        /// The refusal's kind, the only part acted on.
        kind: RejectKind,
        /// The text for people (ours for a shutdown or an overload, else the peer's, escaped).
        reason: String,
    },
    /// The peer holds another secret (either side found out; see [`AUTH_FAILED`]).
    AuthenticationFailed,
    /// The system that answered at the address dialed says it listens elsewhere: not the
    /// system dialed (a port squatter relaying to another system of the same secret, or a
    /// misconfigured advertised address). Final, like a wrong secret.
    WrongPeer {
        /// The address dialed.
        dialed: SocketAddr,
        /// Where the answering system says it listens.
        listens: Option<SocketAddr>,
    },
    /// Whatever answered at the address is not a thespian peer: its first answer is no
    /// handshake of ours (the text says what came instead).
    NotAPeer(String),
    /// The peer broke the protocol during the handshake.
    Protocol(String),
    /// The peer accepts no connections and its connection is gone.
    Unreachable,
    /// Our session was closed.
    Shutdown,
    /// The outbound queue was full when the driver handed the message over (a driver that
    /// checks the bound before handing over never sees this).
    QueueFull,
}

impl FailReason {
    /// True when the target is gone (refused, restarted, unreachable): the base turns these
    /// messages into dead letters.
    pub fn is_dead_target(&self) -> bool {
        matches!(
            self,
            FailReason::Refused | FailReason::PeerRestarted | FailReason::Unreachable
        )
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Refused => f.write_str("connection refused: dead target"),
            FailReason::PeerRestarted => {
                f.write_str("peer restarted before acknowledging: dead target")
            }
            FailReason::TimedOut => f.write_str("not acknowledged in time"),
            FailReason::TooLarge { size, limit } => write!(
                f,
                "message of {size} bytes exceeds the peer's maximum frame of {limit} bytes"
            ),
            FailReason::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: we speak {ours}, the peer speaks {theirs}"
            ),
            FailReason::Rejected { reason, .. } => {
                write!(f, "peer rejected the connection: {reason}")
            }
            FailReason::AuthenticationFailed => f.write_str(AUTH_FAILED),
            FailReason::WrongPeer { dialed, listens } => {
                f.write_str(&wrong_peer_text(*dialed, *listens))
            }
            FailReason::NotAPeer(reason) | FailReason::Protocol(reason) => {
                write!(f, "protocol error: {reason}")
            }
            FailReason::Unreachable => f.write_str("peer unreachable"),
            FailReason::Shutdown => f.write_str("transport shut down"),
            FailReason::QueueFull => f.write_str("outbound queue full"),
        }
    }
}

/// Why a link ended (see [`Event::Closed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// No traffic for the idle timeout; we said goodbye.
    Idle,
    /// The connect or the handshake took longer than [`Config::handshake_timeout`].
    HandshakeTimeout,
    /// The TCP connect was refused.
    ConnectRefused,
    /// The TCP connect failed otherwise.
    ConnectFailed(String),
    /// The driver reported the socket closed or broken.
    Lost(String),
    /// The peer said goodbye.
    PeerGoodbye(GoodbyeReason),
    /// The peer reported a protocol error.
    PeerError(String),
    /// We found a protocol error (and told the peer).
    Protocol(String),
    /// The peer speaks another protocol version.
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// The peer rejected our handshake.
    Rejected(String),
    /// The peer's proof was wrong: it holds another secret.
    AuthenticationFailed,
    /// The peer says it listens elsewhere than the address dialed (see
    /// [`FailReason::WrongPeer`]).
    WrongPeer {
        /// The address dialed.
        dialed: SocketAddr,
        /// Where the answering system says it listens.
        listens: Option<SocketAddr>,
    },
    /// A frame failed authentication (forged, replayed, reordered or altered): it was dropped
    /// and this link closed; the session reconnects.
    BadFrame,
    /// A frame in progress was not completed within its deadline.
    FrameTimeout,
    /// A newer link from the same peer replaced this one.
    Replaced,
    /// We closed the session.
    Shutdown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Idle => f.write_str("idle"),
            CloseReason::HandshakeTimeout => f.write_str("handshake timed out"),
            CloseReason::ConnectRefused => f.write_str("connection refused"),
            CloseReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            CloseReason::Lost(e) => write!(f, "connection lost: {e}"),
            CloseReason::PeerGoodbye(r) => write!(f, "peer said goodbye ({r})"),
            CloseReason::PeerError(e) => write!(f, "peer reported an error: {e}"),
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: we speak {ours}, the peer speaks {theirs}"
            ),
            CloseReason::Rejected(r) => write!(f, "rejected by peer: {r}"),
            CloseReason::AuthenticationFailed => f.write_str(AUTH_FAILED),
            CloseReason::WrongPeer { dialed, listens } => {
                f.write_str(&wrong_peer_text(*dialed, *listens))
            }
            CloseReason::BadFrame => f.write_str("a frame failed authentication"),
            CloseReason::FrameTimeout => f.write_str("a frame was not completed in time"),
            CloseReason::Replaced => f.write_str("replaced by a newer connection"),
            CloseReason::Shutdown => f.write_str("shut down"),
        }
    }
}

/// What a session reports to its driver and, through it, to the system base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A link completed its handshake with this peer.
    HandshakeDone {
        /// What the peer said about itself.
        peer: PeerInfo,
    },
    /// A message arrived (each sequence number once, in order).
    Delivered(WireMessage),
    /// The peer acknowledged these messages.
    Acked(Vec<MessageId>),
    /// These messages will not be delivered (or their delivery is unknown and the target gone).
    Failed {
        /// The messages.
        ids: Vec<MessageId>,
        /// Why.
        reason: FailReason,
    },
    /// The peer answered with a new incarnation: it is a new peer.
    PeerRestarted {
        /// The incarnation we knew.
        old: SystemId,
        /// The one that answered.
        new: SystemId,
    },
    /// A link ended. The driver closes that link's socket, after writing what
    /// [`Connection::poll_transmit`] returned.
    Closed {
        /// Which link.
        link: LinkId,
        /// Why.
        reason: CloseReason,
    },
}

/// Why the driver reports a failed connect (see [`Connection::connect_failed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// `ECONNREFUSED` (or a reset before the handshake): nobody listens; a dead target.
    Refused,
    /// Any other error; retried with back-off.
    Other(String),
}

/// A message waiting to be sent or acknowledged.
#[derive(Debug)]
struct Outgoing {
    id: MessageId,
    seq: u64,
    /// The frame's prefix and header; the frame is these followed by `payload`.
    head: Vec<u8>,
    /// The message's payload, shared with the caller's message (never copied until it is
    /// gathered into a record).
    payload: Arc<[u8]>,
    deadline: Instant,
    /// The incarnation it was (last) transmitted to.
    sent_to: Option<SystemId>,
}

impl Outgoing {
    /// Bytes of its whole frame, prefix included.
    fn frame_len(&self) -> usize {
        self.head.len() + self.payload.len()
    }
}

#[derive(Debug)]
enum LinkState {
    /// The driver is opening the TCP connection.
    Connecting { deadline: Instant },
    /// We sent `Hello` and wait for `Welcome`.
    AwaitWelcome {
        deadline: Instant,
        initiator: Box<Initiator>,
    },
    /// Handshake done; data flows in records sealed under `keys`.
    Established { keys: Box<SessionKeys> },
}

#[derive(Debug)]
struct Link {
    id: LinkId,
    /// True when we opened it.
    initiator: bool,
    state: LinkState,
    /// Handshake frames, then records; a record is a frame too, so its prefix bounds it.
    decoder: FrameReader,
    /// Handshake frames waiting for `poll_transmit`.
    out: Vec<u8>,
    /// The cumulative `Ack` for the next record, if one is owed.
    ack: Option<u64>,
    /// When the owed `Ack` must go out even without data (`None` with an `Ack` owed: at once).
    ack_deadline: Option<Instant>,
    /// Data frames and bytes received since the last `Ack` went out.
    unacked_frames: usize,
    unacked_bytes: usize,
    /// Records sealed on this link so far: the counter of the next one we send.
    sent_records: u64,
    /// Records opened on this link so far: the counter of the next one we receive.
    received_records: u64,
    /// When the first byte of the record (or handshake frame) in progress arrived, if one is.
    frame_started: Option<Instant>,
}

impl Link {
    fn new(id: LinkId, initiator: bool, state: LinkState, max_frame: usize) -> Link {
        Link {
            id,
            initiator,
            state,
            decoder: FrameReader::new(max_frame),
            out: Vec::new(),
            ack: None,
            ack_deadline: None,
            unacked_frames: 0,
            unacked_bytes: 0,
            sent_records: 0,
            received_records: 0,
            frame_started: None,
        }
    }

    fn is_established(&self) -> bool {
        matches!(self.state, LinkState::Established { .. })
    }

    /// Starts this link's next record at the end of `out`, with the `Ack` due, if any. Only an
    /// established link writes records (before, nothing but handshake frames crosses it).
    fn begin_record(&mut self, out: &mut Transmit) -> RecordStart {
        debug_assert!(
            self.is_established(),
            "only an established link sends records"
        );
        let start = wire::begin_record_in(out);
        if let Some(seq) = self.ack.take() {
            out.extend_from_slice(&wire::encode_control(&Control::Ack { seq }));
            self.ack_deadline = None;
            self.unacked_frames = 0;
            self.unacked_bytes = 0;
        }
        start
    }

    /// True when the owed `Ack` must go out now, with or without data.
    fn ack_due_now(&self, now: Option<Instant>) -> bool {
        self.ack.is_some()
            && self
                .ack_deadline
                .is_none_or(|deadline| now.is_some_and(|now| deadline <= now))
    }

    /// Owes an `Ack` for `seq`: at once when the frames or bytes since the last one reach the
    /// thresholds (or there is no delay), else by the delay's deadline, unless data goes first.
    fn owe_ack(&mut self, now: Instant, seq: u64, config: &Config) {
        let owed_before = self.ack.replace(seq).is_some();
        if config.ack_delay.is_zero()
            || self.unacked_frames >= config.ack_frames
            || self.unacked_bytes >= config.ack_bytes
        {
            self.ack_deadline = None;
        } else if !owed_before {
            self.ack_deadline = Some(now + config.ack_delay);
        }
        // Else the earlier deadline (or "at once") stands: a steady trickle is still
        // acknowledged every `ack_delay`.
    }

    /// Seals the record started at `start` of `out` as this link's next record.
    fn seal_record(&mut self, out: &mut Transmit, start: RecordStart) {
        if let LinkState::Established { keys } = &self.state {
            wire::seal_record_in(out, start, &keys.send, self.sent_records);
            self.sent_records += 1;
        } else {
            out.truncate(start);
        }
    }
}

/// Counters of what a session refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Records dropped because their tag was wrong (forged, replayed, reordered or altered;
    /// the name predates records, which took the place of individually sealed frames).
    pub bad_frames: u64,
    /// Links closed because a record was not completed within its deadline.
    pub frame_timeouts: u64,
}

/// Reconnect delays: Thespian's back-off.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new(config: &Config) -> Backoff {
        Backoff {
            next: config.backoff_min,
        }
    }

    fn reset(&mut self, config: &Config) {
        self.next = config.backoff_min;
    }

    fn step(&mut self, config: &Config) -> Duration {
        let delay = self.next;
        self.next = delay
            .mul_f64(config.backoff_factor.max(1.0))
            .min(config.backoff_max)
            .max(config.backoff_min);
        delay
    }
}

/// The session with one peer: a sans-IO machine driven by [`Connection::handle_input`],
/// [`Connection::handle_timeout`] and [`Connection::send`], and polled for transmits, events,
/// connect requests and timers.
///
/// # Driver contract
/// After *any* call that takes `now` (input, timeout, send, connect results, attach), the driver:
/// 1. writes everything [`poll_transmit`](Self::poll_transmit) returns to the current link's
///    socket;
/// 2. handles every [`poll_event`](Self::poll_event) (closing the socket of a
///    [`Event::Closed`] link);
/// 3. opens a connection if [`poll_connect`](Self::poll_connect) asks for one;
/// 4. arms a timer for [`poll_timeout`](Self::poll_timeout) and calls
///    [`handle_timeout`](Self::handle_timeout) when it fires.
#[derive(Debug)]
pub struct Connection {
    config: Arc<Config>,
    local: LocalIdentity,
    session: u64,
    /// Where the peer listens: where we (re)connect.
    peer_addr: Option<SocketAddr>,
    /// The peer as of the last handshake.
    peer: Option<PeerInfo>,
    link: Option<Link>,
    next_link: u64,
    /// True once `poll_connect` must hand out the current `Connecting` link.
    connect_requested: bool,
    /// Bytes to write before the previous link's socket is closed (goodbye, reject, error).
    farewell: Vec<u8>,
    outbox: VecDeque<Outgoing>,
    outbox_bytes: usize,
    /// `outbox[..sent]` were transmitted on the current link.
    sent: usize,
    next_seq: u64,
    /// Highest sequence number delivered from the peer's current session.
    delivered: Option<u64>,
    backoff: Backoff,
    reconnect_at: Option<Instant>,
    /// Why the peer last refused a handshake for now (overloaded), until a
    /// handshake completes: the reason messages that time out meanwhile fail with.
    last_refusal: Option<String>,
    last_activity: Instant,
    events: VecDeque<Event>,
    closed: bool,
    stats: ConnectionStats,
}

impl Connection {
    /// A session with the peer listening at `peer_addr` (`None`: a peer that accepts no
    /// connections, known only through a link it opened). `session` must be unique among the
    /// sessions of this incarnation (a counter will do). No link exists yet: one is requested
    /// when there is something to send, or attached by [`attach`](Self::attach).
    pub fn new(
        config: Arc<Config>,
        local: LocalIdentity,
        session: u64,
        peer_addr: Option<SocketAddr>,
        now: Instant,
    ) -> Connection {
        let backoff = Backoff::new(&config);
        Connection {
            config,
            local,
            session,
            peer_addr,
            peer: None,
            link: None,
            next_link: 1,
            connect_requested: false,
            farewell: Vec::new(),
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            sent: 0,
            next_seq: 1,
            delivered: None,
            backoff,
            reconnect_at: None,
            last_refusal: None,
            last_activity: now,
            events: VecDeque::new(),
            closed: false,
            stats: ConnectionStats::default(),
        }
    }

    /// What this session refused so far.
    pub fn stats(&self) -> ConnectionStats {
        self.stats
    }

    /// Bytes of the current link's frame in progress (its input buffer).
    pub fn buffered_input(&self) -> usize {
        self.link.as_ref().map_or(0, |l| l.decoder.buffered())
    }

    /// The current link's frame in progress: bytes buffered, and the body length its prefix
    /// announced (once read), for the driver's [`InputBudget`](crate::frame::InputBudget).
    pub fn input_progress(&self) -> (usize, Option<usize>) {
        self.link
            .as_ref()
            .map_or((0, None), |l| (l.decoder.buffered(), l.decoder.announced()))
    }

    /// Where the peer listens, if known.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// The peer as of the last completed handshake.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// The current link, if any (connecting, handshaking or established).
    pub fn link(&self) -> Option<LinkId> {
        self.link.as_ref().map(|l| l.id)
    }

    /// True when the current link has completed its handshake.
    pub fn is_established(&self) -> bool {
        self.link.as_ref().is_some_and(Link::is_established)
    }

    /// Messages queued or unacknowledged.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// Frame bytes queued or unacknowledged.
    pub fn queued_bytes(&self) -> usize {
        self.outbox_bytes
    }

    /// True when the session holds nothing: no link, no message, no pending event or transmit.
    /// A driver may then forget it (a later session with the peer starts a new stream).
    pub fn is_quiescent(&self) -> bool {
        self.link.is_none()
            && self.outbox.is_empty()
            && self.events.is_empty()
            && self.farewell.is_empty()
    }

    /// When the session last sent, received or queued anything.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// True after [`close`](Self::close).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Queues `message` for the peer under the caller's `id`.
    ///
    /// Fails at once when the frame would be too large (for us or, once known, for the peer),
    /// when the queue is full, or when the peer cannot be reached. Call it whenever the base has
    /// a message for this peer; then follow the driver contract (a connect may be requested).
    pub fn send(
        &mut self,
        now: Instant,
        id: MessageId,
        message: &WireMessage,
    ) -> Result<(), SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let limit = self.frame_limit();
        let size = wire::frame_body_bound(message);
        if size > limit {
            return Err(SendError::TooLarge { size, limit });
        }
        if self.link.is_none() && self.peer_addr.is_none() {
            return Err(SendError::Unreachable);
        }
        let frame_len = size + HEADER_LEN;
        if !self.outbox.is_empty()
            && (self.outbox.len() >= self.config.max_queued_messages
                || self.outbox_bytes + frame_len > self.config.max_queued_bytes)
        {
            return Err(SendError::QueueFull {
                messages: self.outbox.len(),
                bytes: self.outbox_bytes,
            });
        }
        let seq = self.next_seq;
        let head = wire::encode_data_head(seq, message, limit).map_err(|e| match e {
            FrameError::TooLarge { len, max } => SendError::TooLarge {
                size: len as usize,
                limit: max,
            },
        })?;
        self.next_seq += 1;
        let outgoing = Outgoing {
            id,
            seq,
            head,
            payload: message.payload.clone(),
            deadline: now + self.config.transmit_timeout,
            sent_to: None,
        };
        self.outbox_bytes += outgoing.frame_len();
        self.outbox.push_back(outgoing);
        self.last_activity = now;
        self.maybe_connect(now);
        Ok(())
    }

    /// The largest frame body we may send now.
    fn frame_limit(&self) -> usize {
        let ours = self.config.max_frame.min(wire::MAX_FRAME_IN_RECORD);
        match &self.peer {
            Some(peer) => ours.min(peer.max_frame as usize),
            None => ours,
        }
    }

    /// Requests a link when there is something to send, none exists and no back-off is running.
    fn maybe_connect(&mut self, now: Instant) {
        if self.closed || self.link.is_some() || self.outbox.is_empty() {
            return;
        }
        if self.peer_addr.is_none() {
            let ids = self.drain_outbox(|_| true);
            self.fail(ids, FailReason::Unreachable);
            return;
        }
        if self.reconnect_at.is_some_and(|at| at > now) {
            return;
        }
        self.reconnect_at = None;
        self.start_link();
        let id = self.new_link_id();
        self.link = Some(Link::new(
            id,
            true,
            LinkState::Connecting {
                deadline: now + self.config.handshake_timeout,
            },
            MAX_HANDSHAKE_FRAME,
        ));
        self.connect_requested = true;
    }

    /// Before a new link starts: a farewell for an earlier link that the driver never polled
    /// is dropped, so it can never be written on the new link's socket.
    fn start_link(&mut self) {
        if !self.farewell.is_empty() {
            log::debug!("dropping an unsent farewell for a previous link");
            self.farewell.clear();
        }
    }

    fn new_link_id(&mut self) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        id
    }

    /// Asks the driver to open a TCP connection to [`peer_addr`](Self::peer_addr) for the
    /// returned link; then call [`connected`](Self::connected) or
    /// [`connect_failed`](Self::connect_failed) with that id.
    ///
    /// Call it after every call that takes `now` (step 3 of the driver contract).
    #[must_use]
    pub fn poll_connect(&mut self) -> Option<LinkId> {
        if !std::mem::take(&mut self.connect_requested) {
            return None;
        }
        match &self.link {
            Some(Link {
                id,
                state: LinkState::Connecting { .. },
                ..
            }) => Some(*id),
            _ => None,
        }
    }

    /// The driver's TCP connect for `link` completed: the `Hello` is queued. `nonce` is this
    /// side's fresh challenge ([`Nonce::random`]).
    pub fn connected(&mut self, now: Instant, link: LinkId, nonce: Nonce) {
        let info = self.info();
        let initiator = Initiator::new(
            &self.local.secret,
            AUTH_PROTOCOL,
            self.local.incarnation.raw(),
            nonce,
            wire::peer_context(&info),
        );
        let hello = Handshake {
            magic: wire::MAGIC,
            version: self.config.protocol_version,
            kind: HandshakeKind::Hello {
                auth: initiator.hello().clone(),
                info,
            },
        };
        let Some(l) = self.link.as_mut().filter(|l| l.id == link) else {
            return;
        };
        if !matches!(l.state, LinkState::Connecting { .. }) {
            return;
        }
        l.out.extend_from_slice(&wire::encode_handshake(&hello));
        l.state = LinkState::AwaitWelcome {
            deadline: now + self.config.handshake_timeout,
            initiator: Box::new(initiator),
        };
        self.last_activity = now;
    }

    /// The driver's TCP connect for `link` failed. A refusal fails every queued message as a
    /// dead target; other errors retry after the back-off.
    pub fn connect_failed(&mut self, now: Instant, link: LinkId, failure: ConnectFailure) {
        if self.link.as_ref().is_none_or(|l| l.id != link) {
            return;
        }
        match failure {
            ConnectFailure::Refused => {
                self.end_link(now, CloseReason::ConnectRefused, false);
                let ids = self.drain_outbox(|_| true);
                self.fail(ids, FailReason::Refused);
                self.reconnect_at = None;
                self.backoff.reset(&self.config);
            }
            ConnectFailure::Other(error) => {
                self.end_link(now, CloseReason::ConnectFailed(error), true);
            }
        }
    }

    /// The driver found `link`'s socket closed or broken (end of file, reset, write error).
    /// Unacknowledged messages are retransmitted on the next link, after the back-off.
    pub fn link_lost(&mut self, now: Instant, link: LinkId, error: &str) {
        if self.link.as_ref().is_none_or(|l| l.id != link) {
            return;
        }
        let reason = CloseReason::Lost(error.to_owned());
        // A connection reset before the handshake completed means nobody (thespian) is there.
        self.end_link(now, reason, true);
    }

    /// Answers the `Hello` an [`Incoming`] machine read from a socket that wants to become a
    /// link of this session: a [`Welcome`](HandshakeKind::Welcome) with our proof (the driver
    /// hands it to [`Incoming::welcome`], which waits for the peer's `Confirm`), or a rejection
    /// to write before closing the socket. `nonce` is this side's fresh challenge.
    ///
    /// Nothing in the session changes: the peer is not authenticated yet.
    pub fn answer(&self, hello: &IncomingHello, nonce: Nonce) -> Answer {
        let reject = |kind| Answer::Rejected {
            reply: wire::encode_handshake(&Handshake {
                magic: wire::MAGIC,
                version: self.config.protocol_version,
                kind,
            }),
        };
        if let Some(kind) = self.refusal(&hello.info) {
            return reject(kind);
        }
        if hello.auth.incarnation != hello.info.incarnation.raw() {
            return reject(HandshakeKind::Reject {
                kind: RejectKind::Protocol,
                reason: "inconsistent handshake: two incarnations".into(),
            });
        }
        let info = self.info();
        let context = wire::peer_context(&info);
        match Responder::new(
            &self.local.secret,
            AUTH_PROTOCOL,
            self.local.incarnation.raw(),
            nonce,
            &context,
            &hello.auth,
            &wire::peer_context(&hello.info),
        ) {
            Ok((responder, auth)) => Answer::Welcome(Welcoming {
                responder: Box::new(responder),
                peer: hello.info.clone(),
                reply: wire::encode_handshake(&Handshake {
                    magic: wire::MAGIC,
                    version: self.config.protocol_version,
                    kind: HandshakeKind::Welcome { auth, info },
                }),
            }),
            Err(e) => reject(HandshakeKind::Reject {
                kind: RejectKind::Protocol,
                reason: e.to_string(),
            }),
        }
    }

    /// Why a new link from `peer` is refused, if it is: we are closed, it is ourselves, or we
    /// keep our own link with it (both sides connected at once: the link opened by the side
    /// with the smaller incarnation id wins, the same way on both sides).
    fn refusal(&self, peer: &PeerInfo) -> Option<HandshakeKind> {
        if self.closed {
            return Some(HandshakeKind::Reject {
                kind: RejectKind::ShuttingDown,
                reason: "shutting down".into(),
            });
        }
        if peer.incarnation == self.local.incarnation {
            return Some(HandshakeKind::Reject {
                kind: RejectKind::Protocol,
                reason: "connected to ourselves".into(),
            });
        }
        if let Some(link) = &self.link {
            let same_peer = self
                .peer
                .as_ref()
                .is_none_or(|p| p.incarnation == peer.incarnation);
            if same_peer && link.initiator && self.local.incarnation < peer.incarnation {
                log::debug!(
                    "keeping our connection to {:?}, rejecting its duplicate",
                    self.peer_addr
                );
                return Some(HandshakeKind::Duplicate);
            }
        }
        None
    }

    /// Attaches an accepted link whose handshake the [`Incoming`] machine completed (the peer
    /// proved it holds the secret).
    ///
    /// Returns the new link's id, and the id of a link it replaced (the driver closes that
    /// socket at once), or the bytes to write to the new socket before closing it (when, since
    /// the `Welcome`, the session closed or opened its own link that wins). Only an
    /// authenticated link can replace the current one.
    pub fn attach(&mut self, now: Instant, accepted: Accepted) -> Attach {
        let Accepted { hello, keys, rest } = accepted;
        if let Some(kind) = self.refusal(&hello) {
            // The peer already takes the link for established: say goodbye, sealed.
            let reason = match kind {
                HandshakeKind::Duplicate => GoodbyeReason::Duplicate,
                _ => GoodbyeReason::Shutdown,
            };
            let mut reply = Vec::new();
            let goodbye = wire::encode_control(&Control::Goodbye { reason });
            wire::seal(&mut reply, &[&goodbye], &keys.send, 0);
            return Attach::Rejected { reply };
        }
        self.start_link();
        let replaced = self.link.take().map(|old| {
            self.sent = 0;
            self.events.push_back(Event::Closed {
                link: old.id,
                reason: CloseReason::Replaced,
            });
            old.id
        });
        let id = self.new_link_id();
        self.link = Some(Link::new(
            id,
            false,
            LinkState::Established {
                keys: Box::new(keys),
            },
            wire::record_limit(self.config.max_frame),
        ));
        self.connect_requested = false;
        self.established(now, hello);
        if !rest.is_empty() {
            self.handle_input(now, &rest);
        }
        Attach::Attached { link: id, replaced }
    }

    /// What we announce in `Hello` / `Welcome`.
    fn info(&self) -> PeerInfo {
        PeerInfo {
            incarnation: self.local.incarnation,
            session: self.session,
            listen: self.local.listen,
            max_frame: self.config.announced_max_frame(),
        }
    }

    /// Bookkeeping when a link's handshake completes (either role).
    fn established(&mut self, now: Instant, peer: PeerInfo) {
        if let Some(old) = self.peer.take() {
            if old.incarnation != peer.incarnation {
                self.events.push_back(Event::PeerRestarted {
                    old: old.incarnation,
                    new: peer.incarnation,
                });
                let gone = old.incarnation;
                let ids = self.drain_outbox(|o| o.sent_to == Some(gone));
                self.fail(ids, FailReason::PeerRestarted);
            }
            if old.incarnation != peer.incarnation || old.session != peer.session {
                self.delivered = None;
            }
        }
        if self.peer_addr.is_none() {
            self.peer_addr = peer.listen;
        }
        let limit = self
            .config
            .max_frame
            .min(wire::MAX_FRAME_IN_RECORD)
            .min(peer.max_frame as usize);
        let mut too_large = Vec::new();
        self.outbox.retain(|o| {
            let size = o.frame_len() - HEADER_LEN;
            if size > limit {
                too_large.push((o.id, size, o.frame_len()));
                false
            } else {
                true
            }
        });
        for (id, size, frame_len) in too_large {
            self.outbox_bytes -= frame_len;
            self.events.push_back(Event::Failed {
                ids: vec![id],
                reason: FailReason::TooLarge { size, limit },
            });
        }
        self.sent = 0;
        self.reconnect_at = None;
        self.last_refusal = None;
        self.backoff.reset(&self.config);
        self.last_activity = now;
        if let Some(link) = &mut self.link {
            link.decoder
                .set_max_frame(wire::record_limit(self.config.max_frame));
            // Tell a returning peer at once what we already have, so it can skip retransmits.
            if let Some(seq) = self.delivered {
                link.ack = Some(seq);
            }
        }
        self.events
            .push_back(Event::HandshakeDone { peer: peer.clone() });
        self.peer = Some(peer);
    }

    /// Feeds bytes read from the current link's socket (copying them into the link's read
    /// buffer; a driver reads into [`input_buffer`](Self::input_buffer) instead).
    ///
    /// Call it with every chunk read, in order; then follow the driver contract.
    pub fn handle_input(&mut self, now: Instant, mut input: &[u8]) {
        while !input.is_empty() {
            let Some(space) = self.input_buffer(INPUT_CHUNK) else {
                log::debug!("input before the connect completed ignored");
                return;
            };
            let n = space.len().min(input.len());
            space[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            self.input_filled(now, n);
        }
    }

    /// Where the next bytes from the current link's socket go: the link's own read buffer,
    /// offering the rest of the record in progress or, between records, at least `chunk`
    /// bytes. `None` when there is no link or its connect has not completed (nothing is read
    /// then). After a read, call [`input_filled`](Self::input_filled) with the byte count.
    pub fn input_buffer(&mut self, chunk: usize) -> Option<&mut [u8]> {
        let link = self.link.as_mut()?;
        if matches!(link.state, LinkState::Connecting { .. }) {
            return None;
        }
        Some(link.decoder.space(chunk))
    }

    /// Takes in `n` bytes read into [`input_buffer`](Self::input_buffer): every whole frame
    /// among them is handled where it lies; a partial one stays buffered.
    ///
    /// Then follow the driver contract.
    pub fn input_filled(&mut self, now: Instant, n: usize) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.decoder.filled(n);
        let id = link.id;
        // Frames are handled where they lie, in the reader, while the session changes: the
        // reader leaves the link meanwhile (the placeholder takes any change of the maximum).
        let placeholder = FrameReader::new(link.decoder.max_frame());
        let mut reader = std::mem::replace(&mut link.decoder, placeholder);
        let mut ack_due = false;
        loop {
            let Some(link) = self.link.as_mut().filter(|l| l.id == id) else {
                return;
            };
            reader.set_max_frame(link.decoder.max_frame());
            let range = match reader.next_frame() {
                Ok(Some(range)) => range,
                Ok(None) => break,
                Err(e) if !link.is_established() => {
                    // Its first answer is no handshake: whatever listens there is not ours.
                    self.protocol_error(
                        now,
                        format!("not a thespian peer: {e}"),
                        FailReason::NotAPeer,
                    );
                    return;
                }
                Err(e) => {
                    self.protocol_error(now, e.to_string(), FailReason::Protocol);
                    return;
                }
            };
            link.frame_started = None;
            self.last_activity = now;
            let body = reader.frame(range);
            if link.is_established() {
                if !self.handle_record(now, body, &mut ack_due) {
                    return;
                }
            } else if !self.handle_welcome(now, body) {
                return;
            }
        }
        let Some(link) = self.link.as_mut().filter(|l| l.id == id) else {
            return;
        };
        reader.set_max_frame(link.decoder.max_frame());
        link.decoder = reader;
        if let Some(link) = self.link.as_mut() {
            // A frame in progress is timed from its first byte.
            if link.decoder.is_empty() {
                link.frame_started = None;
            } else if link.frame_started.is_none() {
                link.frame_started = Some(now);
            }
            if ack_due && link.is_established() {
                if let Some(seq) = self.delivered {
                    link.owe_ack(now, seq, &self.config);
                }
            }
        }
    }

    /// Opens a record (verifying its tag before anything in it is read) and handles its frames
    /// in order; false when the link ended.
    fn handle_record(&mut self, now: Instant, body: &[u8], ack_due: &mut bool) -> bool {
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        let LinkState::Established { keys } = &link.state else {
            return false;
        };
        match wire::open(body, &keys.receive, link.received_records) {
            Ok(content) => {
                link.received_records += 1;
                let frames = match wire::frames(content, self.config.max_frame) {
                    Ok(frames) => frames,
                    Err(e) => {
                        self.protocol_error(now, e.to_string(), FailReason::Protocol);
                        return false;
                    }
                };
                frames
                    .into_iter()
                    .all(|frame| self.handle_frame(now, frame, ack_due))
            }
            Err(e) => {
                self.stats.bad_frames += 1;
                log::warn!(
                    "dropped a record from {:?}: {e}; closing this connection (the session reconnects)",
                    self.peer_addr
                );
                // No answer: the peer (or whoever forged the frame) learns nothing, and the
                // session and its queue stay as they are.
                self.end_link(now, CloseReason::BadFrame, true);
                false
            }
        }
    }

    /// Handles the acceptor's answer to our `Hello`; false when the link ended.
    fn handle_welcome(&mut self, now: Instant, body: &[u8]) -> bool {
        match wire::decode_handshake(body, self.config.protocol_version) {
            Ok(Handshake {
                kind: HandshakeKind::Welcome { auth, info },
                ..
            }) => {
                if info.incarnation == self.local.incarnation {
                    self.handshake_failed(
                        now,
                        "connected to ourselves".into(),
                        FailReason::Protocol("connected to ourselves".into()),
                        true,
                    );
                    return false;
                }
                if auth.incarnation != info.incarnation.raw() {
                    let reason = "inconsistent handshake: two incarnations".to_owned();
                    self.handshake_failed(now, reason.clone(), FailReason::Protocol(reason), true);
                    return false;
                }
                // We dialed where the peer listens: an answer from a system listening
                // elsewhere (relayed by whatever holds the port) is not the system dialed.
                let wrong_listen = self
                    .peer_addr
                    .filter(|dialed| !listens_at(info.listen, *dialed));
                let Some(link) = self.link.as_mut() else {
                    return false;
                };
                let state = std::mem::replace(
                    &mut link.state,
                    LinkState::Connecting {
                        deadline: now + self.config.handshake_timeout,
                    },
                );
                let LinkState::AwaitWelcome { initiator, .. } = state else {
                    link.state = state;
                    return false;
                };
                match initiator.finish(&auth, &wire::peer_context(&info)) {
                    Ok(_) if wrong_listen.is_some() => {
                        let dialed = wrong_listen.expect("checked");
                        self.wrong_peer(now, dialed, info.listen);
                        false
                    }
                    Ok((confirm, keys)) => {
                        let confirm = Handshake {
                            magic: wire::MAGIC,
                            version: self.config.protocol_version,
                            kind: HandshakeKind::Confirm(confirm),
                        };
                        link.out
                            .extend_from_slice(&wire::encode_handshake(&confirm));
                        link.state = LinkState::Established {
                            keys: Box::new(keys),
                        };
                        self.established(now, info);
                        true
                    }
                    Err(AuthError::WrongSecret) => {
                        self.authentication_failed(now);
                        false
                    }
                    Err(e) => {
                        let reason = e.to_string();
                        self.handshake_failed(
                            now,
                            reason.clone(),
                            FailReason::Protocol(reason),
                            true,
                        );
                        false
                    }
                }
            }
            Ok(Handshake {
                kind: HandshakeKind::Reject { kind, reason },
                ..
            }) => {
                // The text is the peer's (unauthenticated): only the kind is acted on.
                let text = wire::peer_text(&reason);
                if kind.is_transient() {
                    // Temporary (an overloaded peer): keep the queue and reconnect after the
                    // back-off; the messages fail only by their transmit timeout, with this
                    // reason.
                    let reason = OVERLOADED.to_owned();
                    log::debug!(
                        "peer {:?} refused our handshake for now ({reason}); retrying",
                        self.peer_addr
                    );
                    self.end_link(now, CloseReason::Rejected(reason.clone()), true);
                    self.last_refusal = Some(reason);
                    return false;
                }
                log::warn!(
                    "peer {:?} rejected our handshake ({kind}): {text}",
                    self.peer_addr
                );
                let (close, fail) = if kind == RejectKind::Authentication {
                    (
                        CloseReason::AuthenticationFailed,
                        FailReason::AuthenticationFailed,
                    )
                } else {
                    let reason = match kind {
                        RejectKind::ShuttingDown => "the peer is shutting down".to_owned(),
                        _ => format!("{kind}: {text}"),
                    };
                    (
                        CloseReason::Rejected(reason.clone()),
                        FailReason::Rejected { kind, reason },
                    )
                };
                self.end_link(now, close, false);
                let ids = self.drain_outbox(|_| true);
                self.fail(ids, fail);
                false
            }
            Ok(Handshake {
                kind: HandshakeKind::Duplicate,
                ..
            }) => {
                log::debug!("peer {:?} keeps its own connection with us", self.peer_addr);
                self.end_link(
                    now,
                    CloseReason::PeerGoodbye(GoodbyeReason::Duplicate),
                    true,
                );
                false
            }
            Ok(Handshake {
                kind: kind @ (HandshakeKind::Hello { .. } | HandshakeKind::Confirm(_)),
                ..
            }) => {
                let got = match kind {
                    HandshakeKind::Hello { .. } => "Hello",
                    _ => "Confirm",
                };
                let reason = format!("expected Welcome, got {got}");
                self.handshake_failed(now, reason.clone(), FailReason::Protocol(reason), true);
                false
            }
            Err(WireError::VersionMismatch { ours, theirs }) => {
                log::warn!(
                    "peer {:?} speaks protocol version {theirs}, we speak {ours}",
                    self.peer_addr
                );
                self.end_link(now, CloseReason::VersionMismatch { ours, theirs }, false);
                let ids = self.drain_outbox(|_| true);
                self.fail(ids, FailReason::VersionMismatch { ours, theirs });
                false
            }
            Err(e) => {
                let reason = e.to_string();
                let fail = match e {
                    WireError::BadMagic { .. } => FailReason::NotAPeer(reason.clone()),
                    _ => FailReason::Protocol(reason.clone()),
                };
                self.handshake_failed(now, reason, fail, true);
                false
            }
        }
    }

    /// The peer's proof is wrong: tells it, closes, and fails every queued message with the
    /// reason. No retry: another attempt would fail the same way.
    fn authentication_failed(&mut self, now: Instant) {
        log::warn!("handshake with {:?} failed: {AUTH_FAILED}", self.peer_addr);
        self.farewell_handshake(HandshakeKind::Reject {
            kind: RejectKind::Authentication,
            reason: AUTH_FAILED.into(),
        });
        self.end_link(now, CloseReason::AuthenticationFailed, false);
        let ids = self.drain_outbox(|_| true);
        self.fail(ids, FailReason::AuthenticationFailed);
    }

    /// The system that answered (with a valid proof) is not the one dialed: tells it why,
    /// closes, and fails every queued message. No retry: the same system answers there.
    fn wrong_peer(&mut self, now: Instant, dialed: SocketAddr, listens: Option<SocketAddr>) {
        let text = wrong_peer_text(dialed, listens);
        log::warn!("handshake with {dialed} failed: {text}");
        self.farewell_handshake(HandshakeKind::Reject {
            kind: RejectKind::Protocol,
            reason: format!("you were dialed at {dialed} but say you listen on {listens:?}"),
        });
        self.end_link(now, CloseReason::WrongPeer { dialed, listens }, false);
        let ids = self.drain_outbox(|_| true);
        self.fail(ids, FailReason::WrongPeer { dialed, listens });
    }

    /// Rejects the peer's handshake answer: tells it why, closes, fails the queue.
    fn handshake_failed(&mut self, now: Instant, reason: String, fail: FailReason, tell: bool) {
        log::warn!("handshake with {:?} failed: {reason}", self.peer_addr);
        if tell {
            self.farewell_handshake(HandshakeKind::Reject {
                kind: RejectKind::Protocol,
                reason: reason.clone(),
            });
        }
        self.end_link(now, CloseReason::Protocol(reason), false);
        let ids = self.drain_outbox(|_| true);
        self.fail(ids, fail);
    }

    fn farewell_handshake(&mut self, kind: HandshakeKind) {
        let hs = Handshake {
            magic: wire::MAGIC,
            version: self.config.protocol_version,
            kind,
        };
        self.farewell_bytes(&wire::encode_handshake(&hs));
    }

    /// Queues `bytes` (a handshake frame) after whatever the current link still has to send,
    /// to be written before its socket closes.
    fn farewell_bytes(&mut self, bytes: &[u8]) {
        if let Some(link) = &mut self.link {
            self.farewell.append(&mut link.out);
        }
        self.farewell.extend_from_slice(bytes);
    }

    /// Queues a control frame, in a sealed record (after the `Ack` due, if any), as the
    /// established link's last words. A link still in its handshake gets none (it has no keys;
    /// nothing but handshake frames may cross it).
    fn farewell_control(&mut self, control: &Control) {
        if let Some(link) = &mut self.link {
            self.farewell.append(&mut link.out);
            if link.is_established() {
                let mut farewell = Transmit::from(std::mem::take(&mut self.farewell));
                let start = link.begin_record(&mut farewell);
                farewell.extend_from_slice(&wire::encode_control(control));
                link.seal_record(&mut farewell, start);
                self.farewell = farewell.to_vec();
            }
        }
    }

    /// Handles one post-handshake frame; false when the link ended.
    fn handle_frame(&mut self, now: Instant, body: &[u8], ack_due: &mut bool) -> bool {
        match wire::decode_frame(body) {
            Ok(Frame::Data { header, payload }) => {
                let fresh = self.delivered.is_none_or(|d| header.seq > d);
                if fresh {
                    if let Some(d) = self.delivered {
                        if header.seq != d + 1 {
                            log::debug!(
                                "sequence gap from {:?}: {} after {d} (messages failed at the sender)",
                                self.peer_addr,
                                header.seq
                            );
                        }
                    }
                    self.delivered = Some(header.seq);
                    self.events.push_back(Event::Delivered(WireMessage {
                        sender: header.sender,
                        target: header.target,
                        type_name: Arc::from(header.type_name),
                        payload: Arc::from(payload),
                    }));
                }
                if let Some(link) = self.link.as_mut() {
                    link.unacked_frames += 1;
                    link.unacked_bytes += body.len();
                }
                *ack_due = true;
                true
            }
            Ok(Frame::Ack { seq }) => self.handle_ack(now, seq),
            Ok(Frame::Goodbye { reason }) => {
                log::debug!("peer {:?} said goodbye: {reason}", self.peer_addr);
                self.end_link(now, CloseReason::PeerGoodbye(reason), true);
                false
            }
            Ok(Frame::Error { reason }) => {
                log::warn!("peer {:?} reported an error: {reason}", self.peer_addr);
                self.end_link(now, CloseReason::PeerError(reason), true);
                false
            }
            Err(e) => {
                self.protocol_error(now, e.to_string(), FailReason::Protocol);
                false
            }
        }
    }

    /// Removes the acknowledged messages; false (and the link closed) for a bogus ack.
    fn handle_ack(&mut self, now: Instant, seq: u64) -> bool {
        let mut ids = Vec::new();
        while let Some(front) = self.outbox.front() {
            if front.seq > seq {
                break;
            }
            if front.sent_to.is_none() {
                self.protocol_error(
                    now,
                    format!("ack {seq} for a message never sent"),
                    FailReason::Protocol,
                );
                if !ids.is_empty() {
                    self.events.push_back(Event::Acked(ids));
                }
                return false;
            }
            let done = self.outbox.pop_front().expect("front exists");
            self.outbox_bytes -= done.frame_len();
            self.sent = self.sent.saturating_sub(1);
            ids.push(done.id);
        }
        if !ids.is_empty() {
            self.events.push_back(Event::Acked(ids));
        }
        true
    }

    /// We broke with the peer: tell it why, close, and retry later if needed.
    /// `fail` makes the reason the queued messages fail with, when the handshake was waiting
    /// for the peer's `Welcome`.
    fn protocol_error(&mut self, now: Instant, reason: String, fail: fn(String) -> FailReason) {
        log::warn!("protocol error from {:?}: {reason}", self.peer_addr);
        let awaiting = matches!(
            self.link.as_ref().map(|l| &l.state),
            Some(LinkState::AwaitWelcome { .. })
        );
        if awaiting {
            self.handshake_failed(now, reason.clone(), fail(reason), true);
            return;
        }
        self.farewell_control(&Control::Error {
            reason: reason.clone(),
        });
        self.end_link(now, CloseReason::Protocol(reason), true);
    }

    /// Ends the current link: reports it, and schedules a reconnect if wanted and needed.
    fn end_link(&mut self, now: Instant, reason: CloseReason, retry: bool) {
        let Some(link) = self.link.take() else {
            return;
        };
        self.connect_requested = false;
        self.sent = 0;
        self.events.push_back(Event::Closed {
            link: link.id,
            reason,
        });
        if retry && !self.outbox.is_empty() && !self.closed {
            if self.peer_addr.is_some() {
                self.reconnect_at = Some(now + self.backoff.step(&self.config));
            } else {
                let ids = self.drain_outbox(|_| true);
                self.fail(ids, FailReason::Unreachable);
            }
        }
    }

    /// Removes matching messages from the queue and returns their ids.
    fn drain_outbox(&mut self, mut which: impl FnMut(&Outgoing) -> bool) -> Vec<MessageId> {
        let mut ids = Vec::new();
        let mut bytes = 0;
        let mut removed_sent = 0;
        let mut index = 0;
        let sent = self.sent;
        self.outbox.retain(|o| {
            let remove = which(o);
            if remove {
                ids.push(o.id);
                bytes += o.frame_len();
                if index < sent {
                    removed_sent += 1;
                }
            }
            index += 1;
            !remove
        });
        self.outbox_bytes -= bytes;
        self.sent -= removed_sent;
        ids
    }

    fn fail(&mut self, ids: Vec<MessageId>, reason: FailReason) {
        if !ids.is_empty() {
            self.events.push_back(Event::Failed { ids, reason });
        }
    }

    /// The next bytes to write to the current link's socket (or, after an
    /// [`Event::Closed`], the last bytes for the closed link's socket), in one buffer: see
    /// [`poll_transmit_vectored`](Self::poll_transmit_vectored), which this flattens.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.poll_transmit_vectored().map(|t| t.to_vec())
    }

    /// The next bytes to write to the current link's socket (or, after an
    /// [`Event::Closed`], the last bytes for the closed link's socket), with large payloads
    /// left in their own buffers for a vectored write.
    ///
    /// Call it until it returns `None` after every call that takes `now` (step 1 of the driver
    /// contract). A driver that cannot write everything keeps the rest and calls this again only
    /// when its socket buffer has drained: unsent messages stay queued here, where the queue
    /// bound applies.
    #[must_use]
    pub fn poll_transmit_vectored(&mut self) -> Option<Transmit> {
        let mut buf = std::mem::take(&mut self.farewell);
        if let Some(link) = &mut self.link {
            if buf.is_empty() {
                buf = std::mem::take(&mut link.out);
            } else {
                buf.append(&mut link.out);
            }
        }
        let mut out = Transmit::from(buf);
        if let Some(link) = &mut self.link {
            if link.is_established() && (link.ack_due_now(None) || self.sent < self.outbox.len()) {
                // One record: the ack owed (delayed or not: it rides with data), then data
                // frames while they total less than the batch.
                let incarnation = self.peer.as_ref().map(|p| p.incarnation);
                let batch = self.config.record_batch();
                let start = link.begin_record(&mut out);
                // Nothing is written yet: the record's content is what was added since.
                let before = out.remaining() - wire::record_content_len_in(&out, start);
                while self.sent < self.outbox.len() {
                    let content = out.remaining() - before;
                    if content > 0 && content >= batch {
                        break;
                    }
                    let o = &mut self.outbox[self.sent];
                    out.extend_from_slice(&o.head);
                    out.push_payload(&o.payload);
                    o.sent_to = incarnation;
                    self.sent += 1;
                }
                link.seal_record(&mut out, start);
            }
        }
        if out.is_empty() {
            None
        } else {
            Some(out)
        }
    }

    /// The next event for the driver or the base.
    ///
    /// Call it until it returns `None` after every call that takes `now` (step 2 of the driver
    /// contract).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if ever.
    ///
    /// Call it after every call that takes `now` (step 4 of the driver contract) and re-arm the
    /// timer; the answer changes as the session changes.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(front) = self.outbox.front() {
            consider(front.deadline);
        }
        match &self.link {
            Some(Link {
                state: LinkState::Connecting { deadline } | LinkState::AwaitWelcome { deadline, .. },
                ..
            }) => consider(*deadline),
            Some(link) => {
                if self.outbox.is_empty() {
                    consider(self.last_activity + self.config.idle_timeout);
                }
                if link.ack.is_some() {
                    if let Some(deadline) = link.ack_deadline {
                        consider(deadline);
                    }
                }
                if let Some(started) = link.frame_started {
                    consider(
                        self.config
                            .frame_deadline(started, link.decoder.announced()),
                    );
                }
            }
            None => {
                if let Some(at) = self.reconnect_at {
                    if !self.outbox.is_empty() {
                        consider(at);
                    }
                }
            }
        }
        next
    }

    /// Lets time pass: handshake deadlines, message deadlines, reconnects, idle close.
    ///
    /// Call it when the time from [`poll_timeout`](Self::poll_timeout) has come (calling it
    /// early or often is harmless); then follow the driver contract.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Messages past their deadline fail, oldest first.
        let mut expired = Vec::new();
        while let Some(front) = self.outbox.front() {
            if front.deadline > now {
                break;
            }
            let o = self.outbox.pop_front().expect("front exists");
            self.outbox_bytes -= o.frame_len();
            self.sent = self.sent.saturating_sub(1);
            expired.push(o.id);
        }
        let reason = match &self.last_refusal {
            // The peer kept refusing us for now: say so rather than a bare timeout.
            Some(refusal) => FailReason::Rejected {
                kind: RejectKind::Overloaded,
                reason: refusal.clone(),
            },
            None => FailReason::TimedOut,
        };
        self.fail(expired, reason);

        let frame_late = self.link.as_ref().is_some_and(|l| {
            l.frame_started.is_some_and(|started| {
                self.config.frame_deadline(started, l.decoder.announced()) <= now
            })
        });
        if let Some(link) = self.link.as_mut() {
            if link.ack_due_now(Some(now)) {
                // The delay is over: the next transmit carries the ack, data or not.
                link.ack_deadline = None;
            }
        }
        match self.link.as_ref().map(|l| &l.state) {
            Some(LinkState::Connecting { deadline } | LinkState::AwaitWelcome { deadline, .. })
                if *deadline <= now =>
            {
                log::debug!("handshake with {:?} timed out", self.peer_addr);
                self.end_link(now, CloseReason::HandshakeTimeout, true);
            }
            Some(LinkState::Established { .. }) if frame_late => {
                self.stats.frame_timeouts += 1;
                log::warn!(
                    "a frame from {:?} was not completed in time; closing this connection",
                    self.peer_addr
                );
                self.farewell_control(&Control::Error {
                    reason: "a frame was not completed in time".into(),
                });
                self.end_link(now, CloseReason::FrameTimeout, true);
            }
            Some(LinkState::Established { .. })
                if self.outbox.is_empty()
                    && self.last_activity + self.config.idle_timeout <= now =>
            {
                log::debug!("closing idle connection to {:?}", self.peer_addr);
                self.farewell_control(&Control::Goodbye {
                    reason: GoodbyeReason::Idle,
                });
                self.end_link(now, CloseReason::Idle, false);
            }
            _ => {}
        }
        self.maybe_connect(now);
    }

    /// Closes the current link if it is established and has nothing queued (saying goodbye, as
    /// on the idle timeout); returns whether it did. The driver uses it to free file
    /// descriptors when the process runs out of them. Follow the driver contract after it.
    pub fn close_idle(&mut self, now: Instant) -> bool {
        if !self.is_established() || !self.outbox.is_empty() {
            return false;
        }
        self.farewell_control(&Control::Goodbye {
            reason: GoodbyeReason::Idle,
        });
        self.end_link(now, CloseReason::Idle, false);
        true
    }

    /// Closes the session: says goodbye on the link, fails every queued message with
    /// [`FailReason::Shutdown`], and refuses later sends. Follow the driver contract after it.
    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.is_established() {
            self.farewell_control(&Control::Goodbye {
                reason: GoodbyeReason::Shutdown,
            });
        }
        self.end_link(now, CloseReason::Shutdown, false);
        let ids = self.drain_outbox(|_| true);
        self.fail(ids, FailReason::Shutdown);
    }
}

/// What [`Connection::attach`] did with an authenticated link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// The link is the session's current one now.
    Attached {
        /// Its id, used in later calls and events.
        link: LinkId,
        /// The link it replaced: close that socket now.
        replaced: Option<LinkId>,
    },
    /// The session keeps its existing link (or is closed): write `reply` (a sealed goodbye) to
    /// the new socket and close it.
    Rejected {
        /// The bytes to write.
        reply: Vec<u8>,
    },
}

/// What [`Connection::answer`] says to a `Hello`.
#[derive(Debug)]
pub enum Answer {
    /// Hand this to [`Incoming::welcome`].
    Welcome(Welcoming),
    /// Write `reply` (a `Reject` or `Duplicate` handshake) to the socket and close it.
    Rejected {
        /// The bytes to write.
        reply: Vec<u8>,
    },
}

/// A session's `Welcome` to an accepted socket, and what it needs to check the `Confirm`.
#[derive(Debug)]
pub struct Welcoming {
    responder: Box<Responder>,
    peer: PeerInfo,
    reply: Vec<u8>,
}

/// A `Hello` read by [`Incoming`] (not authenticated yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingHello {
    /// Who the peer says it is.
    pub info: PeerInfo,
    /// Its challenge.
    pub auth: thespian_auth::Hello,
}

/// A handshake completed by [`Incoming`]: who the peer is (it proved it holds the secret), the
/// session's keys, and any bytes that followed its `Confirm`.
#[derive(Debug)]
pub struct Accepted {
    /// The peer's `Hello` information.
    pub hello: PeerInfo,
    /// The keys of the new link.
    pub keys: SessionKeys,
    /// Bytes received after the `Confirm` (sealed frames of the new link).
    pub rest: Vec<u8>,
}

/// What [`Incoming`] concluded.
#[derive(Debug)]
pub enum IncomingOutcome {
    /// A well-formed `Hello`: find (or prepare) the peer's session, have it
    /// [`answer`](Connection::answer), and hand a welcome back to [`Incoming::welcome`].
    Hello(IncomingHello),
    /// The peer proved it holds the secret: [`Connection::attach`] this to its session.
    Authenticated(Accepted),
    /// The socket is rejected: write [`Incoming::poll_transmit`] (an explanation, if any),
    /// close it, and log the reason.
    Rejected(String),
}

#[derive(Debug)]
enum IncomingState {
    /// Waiting for the peer's `Hello`.
    AwaitHello,
    /// The `Hello` was handed out; waiting for the driver's [`Incoming::welcome`].
    AwaitAnswer,
    /// We sent `Welcome`; waiting for the peer's `Confirm`.
    AwaitConfirm {
        responder: Box<Responder>,
        peer: PeerInfo,
    },
    Done,
}

/// An accepted socket before its handshake: reads one `Hello`, then (after the session's
/// `Welcome`) one `Confirm`, or rejects the socket (bad magic, version mismatch, oversized or
/// malformed frame, wrong secret, anything but the expected handshake frame, or no handshake
/// within the handshake timeout) with a `Reject` explaining why.
///
/// Before it concludes, nothing but handshake frames of at most [`MAX_HANDSHAKE_FRAME`] bytes
/// is read, and only within the handshake timeout.
///
/// Driver contract: feed [`handle_input`](Self::handle_input) and
/// [`handle_timeout`](Self::handle_timeout); after each, write
/// [`poll_transmit`](Self::poll_transmit) and act on [`poll_outcome`](Self::poll_outcome).
#[derive(Debug)]
pub struct Incoming {
    protocol_version: u16,
    decoder: FrameDecoder,
    /// The end of the whole handshake.
    deadline: Instant,
    /// The end of the wait for the `Hello`, until it is read.
    first_deadline: Option<Instant>,
    out: Vec<u8>,
    outcome: Option<IncomingOutcome>,
    state: IncomingState,
}

impl Incoming {
    /// A freshly accepted socket.
    pub fn new(config: &Config, now: Instant) -> Incoming {
        Incoming {
            protocol_version: config.protocol_version,
            decoder: FrameDecoder::new(MAX_HANDSHAKE_FRAME),
            deadline: now + config.handshake_timeout,
            first_deadline: Some(now + config.first_frame_timeout.min(config.handshake_timeout)),
            out: Vec::new(),
            outcome: None,
            state: IncomingState::AwaitHello,
        }
    }

    /// A socket refused for load: it is told so ([`OVERLOADED`]) and concludes at once.
    pub fn overloaded(config: &Config, now: Instant) -> Incoming {
        let mut incoming = Incoming::new(config, now);
        incoming.reject(RejectKind::Overloaded, OVERLOADED.into());
        incoming
    }

    /// Bytes of the partial handshake frame buffered.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// How many bytes the driver may read for this socket now: no more than the rest of the
    /// current handshake frame (so nothing beyond the handshake is read before it completes);
    /// 0 once the outcome is known.
    pub fn wants(&self) -> usize {
        match self.state {
            IncomingState::AwaitHello | IncomingState::AwaitConfirm { .. } => self.decoder.wants(),
            IncomingState::AwaitAnswer | IncomingState::Done => 0,
        }
    }

    /// True once the outcome is known (or handed out).
    pub fn is_done(&self) -> bool {
        matches!(self.state, IncomingState::Done)
    }

    /// Feeds bytes read from the socket. Input after the outcome is known is ignored (the
    /// bytes after a `Confirm` in the same chunk travel in [`Accepted::rest`]).
    pub fn handle_input(&mut self, _now: Instant, mut input: &[u8]) {
        while !input.is_empty() {
            if matches!(self.state, IncomingState::Done) {
                return;
            }
            if matches!(self.state, IncomingState::AwaitAnswer) {
                self.reject(
                    RejectKind::Protocol,
                    "data before the handshake completed".into(),
                );
                return;
            }
            let body = match self.decoder.decode(&mut input) {
                Ok(Some(body)) => body,
                Ok(None) => return,
                Err(e) => {
                    self.reject(RejectKind::Protocol, format!("bad handshake frame: {e}"));
                    return;
                }
            };
            match wire::decode_handshake(&body, self.protocol_version) {
                Ok(Handshake { kind, .. }) => self.handle_handshake(kind, &mut input),
                Err(WireError::VersionMismatch { ours, theirs }) => self.reject(
                    RejectKind::Version,
                    format!(
                        "protocol version mismatch: this endpoint speaks version {ours}, you speak version {theirs}"
                    ),
                ),
                Err(e) => self.reject(RejectKind::Protocol, format!("bad handshake: {e}")),
            }
        }
    }

    fn handle_handshake(&mut self, kind: HandshakeKind, input: &mut &[u8]) {
        let state = std::mem::replace(&mut self.state, IncomingState::Done);
        match (state, kind) {
            (IncomingState::AwaitHello, HandshakeKind::Hello { auth, info }) => {
                self.first_deadline = None;
                self.state = IncomingState::AwaitAnswer;
                self.outcome = Some(IncomingOutcome::Hello(IncomingHello { info, auth }));
            }
            (IncomingState::AwaitConfirm { responder, peer }, HandshakeKind::Confirm(confirm)) => {
                match responder.finish(&confirm) {
                    Ok(keys) => {
                        self.outcome = Some(IncomingOutcome::Authenticated(Accepted {
                            hello: peer,
                            keys,
                            rest: input.to_vec(),
                        }));
                        *input = &[];
                    }
                    Err(AuthError::WrongSecret) => {
                        self.reject(RejectKind::Authentication, AUTH_FAILED.into())
                    }
                    Err(e) => self.reject(RejectKind::Protocol, e.to_string()),
                }
            }
            (_, HandshakeKind::Reject { kind, reason }) => {
                // The initiator refused us (a wrong secret, most likely): nothing to answer.
                // Its text is unauthenticated: escaped and truncated.
                let reason = if kind == RejectKind::Authentication {
                    AUTH_FAILED.to_owned()
                } else {
                    format!(
                        "the peer rejected the handshake ({kind}): {}",
                        wire::peer_text(&reason)
                    )
                };
                self.outcome = Some(IncomingOutcome::Rejected(reason));
            }
            (IncomingState::AwaitHello, _) => self.reject(
                RejectKind::Protocol,
                "expected Hello as the first frame".into(),
            ),
            (_, _) => self.reject(RejectKind::Protocol, "expected Confirm".into()),
        }
    }

    /// Sends the session's `Welcome` (from [`Connection::answer`]) and waits for the `Confirm`.
    pub fn welcome(&mut self, welcoming: Welcoming) {
        if !matches!(self.state, IncomingState::AwaitAnswer) {
            return;
        }
        self.out.extend_from_slice(&welcoming.reply);
        self.state = IncomingState::AwaitConfirm {
            responder: welcoming.responder,
            peer: welcoming.peer,
        };
    }

    fn reject(&mut self, kind: RejectKind, reason: String) {
        self.state = IncomingState::Done;
        let hs = Handshake {
            magic: wire::MAGIC,
            version: self.protocol_version,
            kind: HandshakeKind::Reject {
                kind,
                reason: reason.clone(),
            },
        };
        self.out.extend_from_slice(&wire::encode_handshake(&hs));
        self.outcome = Some(IncomingOutcome::Rejected(reason));
    }

    /// Rejects the socket if the handshake did not complete in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_done() {
            return;
        }
        if self.first_deadline.is_some_and(|t| now >= t) && now < self.deadline {
            // Load shedding (the slot goes to others), not a verdict on the peer: a thespian
            // peer that was merely slow retries after its back-off.
            self.reject(
                RejectKind::Overloaded,
                "no handshake frame within the first-frame timeout".into(),
            );
        } else if now >= self.deadline {
            self.reject(
                RejectKind::Protocol,
                "no handshake within the handshake timeout".into(),
            );
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_done()).then(|| {
            self.first_deadline
                .map_or(self.deadline, |first| first.min(self.deadline))
        })
    }

    /// True while the socket has not sent its whole first handshake frame.
    pub fn awaits_hello(&self) -> bool {
        matches!(self.state, IncomingState::AwaitHello)
    }

    /// Bytes to write to the socket (a `Welcome` or a `Reject`). Call after each input or
    /// timeout.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// The conclusion, once. Call after each input or timeout.
    #[must_use]
    pub fn poll_outcome(&mut self) -> Option<IncomingOutcome> {
        self.outcome.take()
    }
}
#[cfg(test)]
mod tests;
