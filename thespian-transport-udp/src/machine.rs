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
//! - **Streams.** Per peer address, we keep one outgoing *stream*: consecutive sequence numbers
//!   from 1, under a stream id that this incarnation never reuses. Every message is sent at
//!   once, in its own datagram.
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
//!   flood to a dead actor ends quickly. Any valid datagram from the address revives it.
//! - **Incarnations.** Every datagram names its sender's incarnation and the receiver's as the
//!   sender knows it. A new incarnation at an address is a new peer: held messages are
//!   dropped, unacknowledged messages are reported undeliverable
//!   ([`UndeliverableReason::PeerRestarted`]), and [`Event::PeerRestarted`] is emitted. A
//!   datagram meant for a previous incarnation of *this* machine is refused with an
//!   acknowledgement that names our incarnation, so its sender learns of the restart at once.
//! - **Versions.** A datagram of another protocol version is answered with a version notice;
//!   a version notice fails every unacknowledged message to its sender
//!   ([`UndeliverableReason::VersionMismatch`]). Both are logged.
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
use std::time::{Duration, Instant};

use thespian_core::SystemId;

// Names a message for `Event::Acked` and `Event::Undeliverable`; chosen by `Machine::send` (or by
// the caller of `Machine::send_with_id`). The same type on every transport: it lives in
// thespian-core and keeps its path here.
pub use thespian_core::wire::MessageId;

use crate::peer::{backoff, Inbound, Outbound, Outgoing, Peer, Receipt, Seen};
use crate::wire::{
    self, Ack, Datagram, Position, Route, WireError, WireMessage, MAX_DATAGRAM, PROTOCOL_VERSION,
};

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
    /// In-order datagrams after which an acknowledgement goes at once (default 16).
    pub ack_every: u32,
    /// How long a peer given up is remembered as dead (default 15 s, Thespian's).
    pub dead_address_memory: Duration,
    /// A peer with nothing in flight and no traffic for this long is forgotten (default
    /// 10 min, longer than a datagram can linger in a network).
    pub peer_idle_timeout: Duration,
    /// Most peers remembered (default 65,536). Data from a new address beyond it is dropped
    /// (its sender retransmits and, in the end, learns it was undeliverable).
    pub max_peers: usize,
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
            dead_address_memory: Duration::from_secs(15),
            peer_idle_timeout: Duration::from_secs(10 * 60),
            max_peers: 65_536,
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
                 over the limit of {limit} bytes per datagram (one message per datagram, \
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
    peers: HashMap<SocketAddr, Peer>,
    /// Addresses given up, and until when.
    dead: HashMap<SocketAddr, Instant>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Peers owed an acknowledgement at the next `poll_transmit`.
    ack_queue: Vec<SocketAddr>,
    events: VecDeque<Event>,
    next_id: u64,
    next_stream: u64,
    next_gc: Option<Instant>,
    log: LogLimiter,
    closed: bool,
}

impl Machine {
    /// A machine for the endpoint of this incarnation (pick a new random one at every start).
    pub fn new(config: Config, incarnation: SystemId) -> Machine {
        Machine {
            config,
            incarnation,
            peers: HashMap::new(),
            dead: HashMap::new(),
            transmits: VecDeque::new(),
            ack_queue: Vec::new(),
            events: VecDeque::new(),
            next_id: 1,
            next_stream: 1,
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
        if self.closed {
            return Err(SendError::Closed);
        }
        let size = self.config.check_size(&message)?;
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
            return Err(SendError::WindowFull {
                messages: out.unacked.len(),
                bytes: out.bytes,
            });
        }
        let rto = out.rto(&self.config);
        let seq = out.next_seq;
        out.next_seq += 1;
        out.bytes += size;
        let due = now + backoff(&self.config, rto, 1);
        out.unacked.push_back(Outgoing {
            seq,
            id,
            message,
            size,
            first_sent: now,
            due,
            transmissions: 1,
            sacked: false,
        });
        out.next_due = Some(out.next_due.map_or(due, |d| d.min(due)));
        peer.last_activity = now;
        let index = peer.out.as_ref().map_or(0, |o| o.unacked.len() - 1);
        let datagram = data_datagram(&self.config, self.incarnation, peer, index);
        self.transmits.push_back((to, datagram));
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
                if self.log.allow(now) {
                    log::warn!(
                        "UDP transport: the endpoint at {from} speaks protocol version {version}, \
                         we speak {}; giving it up",
                        self.config.protocol_version
                    );
                }
                let reason = UndeliverableReason::VersionMismatch {
                    ours: self.config.protocol_version,
                    theirs: version,
                };
                self.give_up(now, from, reason);
            }
            Datagram::Ack { from: inc, to, ack } => {
                if to != Some(self.incarnation) || !self.peers.contains_key(&from) {
                    // For a previous incarnation of ours, or from a stranger: nothing to do.
                    return;
                }
                if !self.observe(now, from, inc) {
                    return;
                }
                self.apply_ack(now, from, &ack);
            }
            Datagram::Data {
                from: inc,
                to,
                header,
                payload,
            } => {
                if to.is_some_and(|to| to != self.incarnation) {
                    // Meant for a previous incarnation of this endpoint: refuse it with our
                    // incarnation, so the sender learns that we restarted.
                    let route = self.route(Some(inc));
                    let ack = Ack {
                        stream: header.stream,
                        cumulative: 0,
                        ranges: Vec::new(),
                    };
                    self.transmits
                        .push_back((from, wire::encode_ack(route, &ack)));
                    return;
                }
                if !self.peers.contains_key(&from) {
                    if self.peers.len() >= self.config.max_peers {
                        if self.log.allow(now) {
                            log::warn!(
                                "UDP transport: {} peers remembered; dropping data from {from}",
                                self.peers.len()
                            );
                        }
                        return;
                    }
                    self.peers.insert(from, Peer::new(now));
                    self.schedule_gc(now);
                }
                if !self.observe(now, from, inc) {
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
        let mut given_up = Vec::new();
        for (&addr, peer) in &mut self.peers {
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
                if o.sacked || o.due > now {
                    continue;
                }
                o.transmissions += 1;
                o.due = now + backoff(&self.config, rto, o.transmissions);
                resend.push(index);
            }
            out.refresh_due();
            for index in resend {
                let datagram = data_datagram(&self.config, self.incarnation, peer, index);
                self.transmits.push_back((addr, datagram));
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
            return Some((addr, wire::encode_ack(route, &ack)));
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
        for addr in addrs {
            let Some(peer) = self.peers.get_mut(&addr) else {
                continue;
            };
            if let Some(out) = peer.out.as_mut() {
                fail_all(out, addr, &UndeliverableReason::Shutdown, &mut self.events);
            }
            if let Some(inb) = peer.inb.as_mut().filter(|i| i.ack_pending()) {
                let ack = inb.take_ack();
                let route = Route {
                    version: self.config.protocol_version,
                    from: self.incarnation,
                    to: peer.incarnation,
                };
                self.transmits
                    .push_back((addr, wire::encode_ack(route, &ack)));
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

    /// Records that a valid datagram came from incarnation `inc` at `addr` (a known peer).
    /// Returns false when the datagram is stale and must be dropped.
    fn observe(&mut self, now: Instant, addr: SocketAddr, inc: SystemId) -> bool {
        let peer = self.peers.get_mut(&addr).expect("caller checked");
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
        peer.last_activity = now;
        if self.dead.remove(&addr).is_some() {
            log::debug!("UDP transport: {addr} is alive again");
        }
        true
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
        // Datagrams still queued for it would only draw more ICMP errors.
        self.transmits.retain(|(to, _)| *to != addr);
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
}

/// Encodes unacknowledged message `index` of `peer`'s stream, piggy-backing an owed
/// acknowledgement when it fits.
fn data_datagram(config: &Config, me: SystemId, peer: &mut Peer, index: usize) -> Vec<u8> {
    let out = peer.out.as_ref().expect("caller has a stream");
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
    wire::encode_data(route, position, &o.message, ack.as_ref())
}

#[cfg(test)]
mod tests;
