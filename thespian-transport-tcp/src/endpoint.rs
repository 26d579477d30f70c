//! The mio driver: sockets, readiness and the clock around the sans-IO machines.
//!
//! This module exists to do the I/O the [`connection`](crate::connection) machines ask for, and
//! nothing else: it owns one listening socket, one session ([`Connection`]) per peer keyed by the
//! peer's listening address, the TCP socket of each session's current link, and the accepted
//! sockets still in their handshake ([`Incoming`]). Protocol decisions stay in the machines.
//!
//! What the driver adds:
//! - **Reuse.** One connection per peer, used in both directions: a peer that connected to us
//!   announced its listening address, and our sends to that address use its connection.
//! - **Self-sends** never touch the network (Thespian's rule): they are delivered and
//!   acknowledged at once.
//! - **Dead targets.** `ECONNREFUSED` on connect fails the queued messages with
//!   [`FailReason::Refused`], so the base can dead-letter them.
//! - **Authentication** is the machines' (every session proves the system's secret, every
//!   record of frames is sealed); the driver only supplies fresh nonces ([`Nonce::random`]) and the secret
//!   ([`EndpointConfig::new`]: there is no endpoint without one).
//! - **`EMFILE`/`ENFILE`** on accept or connect: accepted sockets still in their handshake are
//!   closed first, oldest first (told the endpoint is overloaded), then the longest-idle
//!   authenticated connections (with a goodbye), three at a time, and the operation is retried;
//!   if that is not enough, accepting pauses for 100 ms and a connect is retried after the
//!   back-off.
//! - **Load.** At most [`EndpointConfig::max_handshaking`] accepted sockets may be in their
//!   handshake at once; when a socket is accepted beyond that, the *oldest* one still in its
//!   handshake is sent a `Reject` saying the endpoint is overloaded
//!   ([`OVERLOADED`](crate::connection::OVERLOADED)) and closed to make room, so sockets
//!   holding slots without the secret cannot keep newcomers out (a thespian peer told it is
//!   overloaded retries after its back-off). A socket must send its whole `Hello` within
//!   [`Config::first_frame_timeout`] (1 s), so silent sockets go quickly.
//! - **Input memory.** The bytes buffered for frames in progress (after the handshake, a frame
//!   is a sealed record of frames), over every authenticated socket, stay under [`EndpointConfig::max_buffered`] (an
//!   [`InputBudget`]): a frame whose prefix arrives is reserved whole
//!   when it fits, so it can always complete; a read never takes more than the socket's
//!   reserved headroom plus what nobody has committed, and a socket with neither is not read
//!   (back-pressure: TCP flow control holds its peer) until a frame completes or a socket closes
//!   and frees room. Frame buffers grow as bytes arrive, never to the announced length up front;
//!   the frame deadline ([`Config::frame_timeout`]) closes a peer that holds room without
//!   completing its frame. Handshake bytes are not in the budget: they are read one handshake
//!   frame (at most 4 KiB) at a time from at most `max_handshaking` sockets, so a full budget
//!   never stops a new peer's handshake.
//! - **Other threads** send through an [`EndpointSender`] (cloneable, `Send`): it checks the frame
//!   size and the per-peer queue bound at once (so a full queue is an error at the caller, not
//!   memory growth), then hands the message over a channel and wakes the poll loop.
//! - **Forgetting.** A session with no link and nothing queued is forgotten once no retransmit
//!   from the peer can still arrive (after the transmit timeout plus the handshake timeout).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use thespian_core::SystemId;
use thespian_io::handoff::{Handoff, HandoffError, HandoffSender};

use thespian_auth::{Nonce, Secret};

use crate::connection::{
    Answer, Attach, Config, ConnectFailure, Connection, Event, FailReason, Incoming,
    IncomingOutcome, LinkId, LocalIdentity, MessageId, SendError,
};
use crate::frame::{InputBudget, Share, HEADER_LEN};
use crate::transmit::{Transmit, MAX_SLICES};
use crate::wire::{self, WireMessage};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_SOCKET: usize = 2;

/// Bytes read from one socket per readiness event before other sockets get a turn.
const READ_BUDGET: usize = 4 * 1024 * 1024;
/// Size of one `read` call.
const READ_CHUNK: usize = 256 * 1024;
/// Whether a read that filled less than its buffer proves the socket empty, so that more
/// data raises a new edge-triggered event without a read to `WouldBlock` first. mio promises
/// a new event only after `WouldBlock`; epoll (mio's selector on Linux and Android) signals
/// every arrival to an edge-triggered watch, so there a short read saves the system call that
/// would only say `EAGAIN` (tokio relies on the same, tokio-rs/tokio#5866). Elsewhere the
/// loop reads on to `WouldBlock`.
const SHORT_READ_EMPTIES: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Idle connections closed on `EMFILE` (Thespian closes its 3 oldest idle sockets).
const EMFILE_CLOSE: usize = 3;
/// Pause before accepting again when `EMFILE` persists.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How often forgotten sessions are swept.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Warnings about rejected unauthenticated connections: at most this many per
/// [`REJECT_LOG_INTERVAL`], then one line counting the rest.
const REJECT_LOG_BURST: u32 = 10;
/// See [`REJECT_LOG_BURST`].
const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A small rate limiter for log lines that strangers can cause: at most `burst` lines per
/// `interval`; the lines beyond are counted, and the count is reported once the interval is
/// over. Time comes in as `now` (the driver's clock).
#[derive(Debug)]
struct LogLimiter {
    interval: Duration,
    burst: u32,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl LogLimiter {
    fn new(burst: u32, interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            burst,
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Starts a new window if the current one is over; returns how many lines the previous
    /// window suppressed (to report now).
    fn roll(&mut self, now: Instant) -> u64 {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < self.interval => 0,
            _ => {
                self.window_start = Some(now);
                self.in_window = 0;
                std::mem::take(&mut self.suppressed)
            }
        }
    }

    /// Whether one more line may be logged now (false: it is counted instead).
    fn admit(&mut self, now: Instant) -> bool {
        let earlier = self.roll(now);
        if earlier > 0 {
            log::warn!(
                "{earlier} more connections were rejected before their handshake (not logged)"
            );
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Reports the count of suppressed lines once their interval is over.
    fn flush(&mut self, now: Instant) {
        if self.suppressed > 0 {
            let earlier = self.roll(now);
            if earlier > 0 {
                log::warn!(
                    "{earlier} more connections were rejected before their handshake (not logged)"
                );
            }
        }
    }
}

/// How to set up a [`TcpEndpoint`].
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The machines' tunables.
    pub transport: Config,
    /// This system's incarnation id (pick a new random one at every start).
    pub incarnation: SystemId,
    /// The system's shared secret: every peer must prove it holds it before anything it sends
    /// is read beyond the handshake.
    pub secret: Secret,
    /// Most bytes buffered for frames (records) in progress, over all sockets (default 256 MiB:
    /// three records holding a frame of the default 64 MiB maximum at once, while 8 peers each
    /// announcing 64 MiB cannot make the endpoint hold 512 MB). When it is reached, sockets are
    /// not read until room frees (back-pressure). Keep it at least
    /// [`record_limit`](crate::wire::record_limit)`(transport.max_frame)`, or the largest frames
    /// can never complete.
    pub max_buffered: usize,
    /// Most accepted sockets in their handshake at once (default 256); a socket accepted
    /// beyond it closes the oldest one (told the endpoint is overloaded).
    pub max_handshaking: usize,
    /// Where to listen (default `127.0.0.1:0`: loopback, an ephemeral port).
    pub bind: SocketAddr,
    /// The listening address announced to peers (default: the bound address). A peer that
    /// receives an unspecified IP (`0.0.0.0`) uses the IP it sees the connection coming from.
    pub advertise: Option<SocketAddr>,
}

impl EndpointConfig {
    /// Defaults for the given incarnation and secret: loopback, ephemeral port, default
    /// transport config and bounds.
    pub fn new(incarnation: SystemId, secret: Secret) -> EndpointConfig {
        EndpointConfig {
            transport: Config::default(),
            incarnation,
            secret,
            max_buffered: 256 * 1024 * 1024,
            max_handshaking: 256,
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            advertise: None,
        }
    }
}

/// What the endpoint reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// An event of the session with `peer` (keyed by the peer's listening address, or by its
    /// socket address for a peer that does not listen).
    Peer {
        /// The peer.
        peer: SocketAddr,
        /// What happened.
        event: Event,
    },
    /// An accepted connection was closed before its handshake completed (garbage, a bad
    /// handshake, an oversized first frame, a version mismatch, or silence). Also logged.
    Rejected {
        /// Where it came from.
        from: SocketAddr,
        /// Why.
        reason: String,
    },
}

enum Command {
    Send {
        peer: SocketAddr,
        id: MessageId,
        message: WireMessage,
    },
}

/// Sends messages through a [`TcpEndpoint`] from any thread. Cheap to clone.
#[derive(Clone)]
pub struct EndpointSender {
    handoff: HandoffSender<Command>,
    /// The largest frame body a send may take.
    max_frame: usize,
}

impl std::fmt::Debug for EndpointSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointSender").finish_non_exhaustive()
    }
}

impl EndpointSender {
    /// Queues `message` for the endpoint listening at `peer`.
    ///
    /// Returns the id later reported in [`Event::Acked`] or [`Event::Failed`]. Fails at once
    /// when the message exceeds the maximum frame, when the queue to `peer` is full (messages
    /// handed over and not yet acknowledged), or when the endpoint is closed.
    pub fn send(&self, peer: SocketAddr, message: WireMessage) -> Result<MessageId, SendError> {
        if self.handoff.is_closed() {
            return Err(SendError::Closed);
        }
        let size = wire::frame_body_bound(&message);
        if size > self.max_frame {
            return Err(SendError::TooLarge {
                size,
                limit: self.max_frame,
            });
        }
        self.handoff
            .send(peer, size + HEADER_LEN, |id| Command::Send {
                peer,
                id,
                message,
            })
            .map_err(|e| match e {
                HandoffError::Closed => SendError::Closed,
                HandoffError::Full(u) => SendError::QueueFull {
                    messages: u.messages,
                    bytes: u.bytes,
                },
            })
    }

    /// Makes the endpoint's current or next [`TcpEndpoint::poll_events`] return, with or
    /// without events, so its driver can look at its own state (e.g. to stop).
    pub fn interrupt(&self) {
        self.handoff.interrupt();
    }
}

/// An accepted socket in its handshake.
struct Pending {
    incoming: Incoming,
    /// The session its `Hello` names, once read.
    key: Option<SocketAddr>,
    /// The session that answered its `Hello` when none existed: it joins the sessions only
    /// once the peer has proved it holds the secret.
    fresh: Option<Connection>,
}

enum Role {
    /// Accepted, handshake not complete yet.
    Incoming(Box<Pending>),
    /// The current link of the session `key`.
    Link { key: SocketAddr, link: LinkId },
}

struct Socket {
    stream: TcpStream,
    role: Role,
    /// An outgoing connect not confirmed yet.
    connecting: bool,
    remote: SocketAddr,
    /// Bytes queued for the socket and not written yet, in order.
    pending: VecDeque<Transmit>,
    /// When it was accepted or opened.
    opened: Instant,
    /// Its part of the input budget (bytes buffered and reserved for a frame in progress).
    share: Share,
    /// The poll reported the peer's hang-up or an error: no new event will follow, so reads
    /// go on to the end of the stream, never stopping at a short read.
    hung_up: bool,
}

/// What an endpoint holds and refused: see [`TcpEndpoint::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Bytes buffered now for frames in progress, over all sockets.
    pub buffered: usize,
    /// The most ever buffered at once.
    pub peak_buffered: usize,
    /// The bound ([`EndpointConfig::max_buffered`]).
    pub max_buffered: usize,
    /// Sockets not read for want of room in the bound, now.
    pub parked: usize,
    /// Records dropped because their tag was wrong (forged, replayed, reordered or altered).
    pub bad_frames: u64,
    /// Connections closed because a frame was not completed within its deadline.
    pub frame_timeouts: u64,
    /// Accepted sockets closed before their handshake completed (any reason).
    pub rejected: u64,
    /// Accepted sockets refused as overloaded.
    pub overloaded: u64,
    /// Rejections of unauthenticated sockets not logged one by one (beyond the rate limit of
    /// their warnings; counted in a summary line instead).
    pub unlogged_rejections: u64,
}

impl Socket {
    fn has_pending_write(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Appends bytes to write.
    fn queue(&mut self, bytes: impl Into<Transmit>) {
        let bytes = bytes.into();
        if !bytes.is_empty() {
            self.pending.push_back(bytes);
        }
    }

    /// Writes as much as the socket takes, large payloads from where they lie (vectored
    /// writes of up to `MAX_SLICES` slices). `Ok(true)` when everything was written.
    fn flush(&mut self) -> io::Result<bool> {
        while !self.pending.is_empty() {
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut filled = 0;
                for transmit in &self.pending {
                    filled += transmit.slices(&mut slices[filled..]);
                    if filled == MAX_SLICES {
                        break;
                    }
                }
                if filled == 1 {
                    // One buffer (small messages only): `send` costs the kernel less than
                    // `writev`, which goes through the file layer.
                    self.stream.write(&slices[0])
                } else {
                    self.stream.write_vectored(&slices[..filled])
                }
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    while n > 0 {
                        let front = self.pending.front_mut().expect("written bytes were queued");
                        let took = n.min(front.remaining());
                        front.advance(took);
                        n -= took;
                        if front.is_empty() {
                            self.pending.pop_front();
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

struct Session {
    conn: Connection,
    socket: Option<Token>,
}

/// A TCP transport endpoint: a listening socket, sessions with peers, and a mio poll loop.
///
/// Drive it from one thread with [`poll_events`](Self::poll_events); send from any thread with
/// an [`EndpointSender`] from [`sender`](Self::sender).
pub struct TcpEndpoint {
    poll: Poll,
    mio_events: Events,
    /// `None` after [`close`](Self::close), so the port is free again.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    identity: LocalIdentity,
    config: Arc<Config>,
    /// Where senders' messages arrive; the budget they took.
    handoff: Handoff<Command>,
    /// The largest frame body a send may take.
    max_frame: usize,
    sessions: HashMap<SocketAddr, Session>,
    sockets: HashMap<Token, Socket>,
    next_token: usize,
    next_session: u64,
    /// Bytes per message handed over by senders, released on `Acked` / `Failed`.
    in_flight: HashMap<MessageId, (SocketAddr, usize)>,
    dirty: HashSet<SocketAddr>,
    read_again: Vec<Token>,
    read_buf: Vec<u8>,
    accept_paused_until: Option<Instant>,
    last_sweep: Instant,
    out: Vec<EndpointEvent>,
    closed: bool,
    max_handshaking: usize,
    /// The bound on the bytes buffered for frames in progress (the sockets' shares).
    budget: InputBudget,
    /// Sockets waiting for room in `max_buffered` before they are read again.
    parked: Vec<Token>,
    /// Counters kept here (the buffered bytes and the sessions' counters are added in `stats`).
    counters: EndpointStats,
    /// Limits the warnings strangers can cause.
    reject_log: LogLimiter,
}

impl std::fmt::Debug for TcpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpEndpoint")
            .field("local_addr", &self.local_addr)
            .field("incarnation", &self.identity.incarnation)
            .field("sessions", &self.sessions.len())
            .field("sockets", &self.sockets.len())
            .finish_non_exhaustive()
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE and ENFILE have these numbers on Linux, the BSDs and macOS.
    cfg!(unix) && matches!(e.raw_os_error(), Some(23 | 24))
}

impl TcpEndpoint {
    /// Binds the listening socket and returns the endpoint with its bound address.
    pub fn bind(config: EndpointConfig) -> io::Result<(TcpEndpoint, SocketAddr)> {
        let listener = std::net::TcpListener::bind(config.bind)?;
        TcpEndpoint::from_listener(listener, config)
    }

    /// Builds the endpoint around a listening socket bound elsewhere (`config.bind` is then
    /// ignored): a multi-process base binds an actor's socket before it starts the actor's
    /// process, so the address is known at once, and hands the socket over.
    pub fn from_listener(
        listener: std::net::TcpListener,
        config: EndpointConfig,
    ) -> io::Result<(TcpEndpoint, SocketAddr)> {
        listener.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let transport = Arc::new(config.transport);
        let handoff = Handoff::new(
            "TCP endpoint",
            waker,
            transport.max_queued_messages,
            transport.max_queued_bytes,
        );
        let max_frame = transport.max_frame.min(wire::MAX_FRAME_IN_RECORD);
        let identity = LocalIdentity {
            incarnation: config.incarnation,
            listen: Some(config.advertise.unwrap_or(local_addr)),
            secret: config.secret,
        };
        let now = Instant::now();
        let endpoint = TcpEndpoint {
            poll,
            mio_events: Events::with_capacity(256),
            listener: Some(listener),
            local_addr,
            identity,
            config: transport,
            handoff,
            max_frame,
            sessions: HashMap::new(),
            sockets: HashMap::new(),
            next_token: FIRST_SOCKET,
            next_session: 1,
            in_flight: HashMap::new(),
            dirty: HashSet::new(),
            read_again: Vec::new(),
            read_buf: vec![0; READ_CHUNK],
            accept_paused_until: None,
            last_sweep: now,
            out: Vec::new(),
            closed: false,
            max_handshaking: config.max_handshaking,
            budget: InputBudget::new(config.max_buffered),
            parked: Vec::new(),
            counters: EndpointStats::default(),
            reject_log: LogLimiter::new(REJECT_LOG_BURST, REJECT_LOG_INTERVAL),
        };
        log::debug!(
            "TCP endpoint {:?} listening on {local_addr}",
            endpoint.identity.incarnation
        );
        Ok((endpoint, local_addr))
    }

    /// The bound listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This endpoint's incarnation id.
    pub fn incarnation(&self) -> SystemId {
        self.identity.incarnation
    }

    /// A handle for sending from any thread.
    pub fn sender(&self) -> EndpointSender {
        EndpointSender {
            handoff: self.handoff.sender(),
            max_frame: self.max_frame,
        }
    }

    /// Open TCP sockets (links and accepted sockets in their handshake), not counting the
    /// listener.
    pub fn open_sockets(&self) -> usize {
        self.sockets.len()
    }

    /// Sessions currently remembered.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// What the endpoint holds (bytes buffered for frames in progress, against their bound) and
    /// what it refused (forged frames, late frames, rejected and overloaded connections).
    pub fn stats(&self) -> EndpointStats {
        let mut stats = self.counters;
        stats.buffered = self.budget.buffered();
        stats.peak_buffered = self.budget.peak();
        stats.max_buffered = self.budget.max();
        stats.parked = self.parked.len();
        for s in self.sessions.values() {
            stats.bad_frames += s.conn.stats().bad_frames;
            stats.frame_timeouts += s.conn.stats().frame_timeouts;
        }
        stats
    }

    /// Records what `token`'s machine buffers now (reserving its frame in progress when the
    /// budget has room); wakes parked sockets when room freed.
    fn account(&mut self, token: Token) {
        let Some(socket) = self.sockets.get_mut(&token) else {
            return;
        };
        let (buffered, announced) = match &socket.role {
            // Handshake bytes are bounded on their own (see `read_socket`).
            Role::Incoming(_) => (0, None),
            Role::Link { key, link } => self
                .sessions
                .get(key)
                .filter(|s| s.conn.link() == Some(*link))
                .map_or((0, None), |s| s.conn.input_progress()),
        };
        if self.budget.update(&mut socket.share, buffered, announced) {
            self.wake_parked();
        }
    }

    /// Room freed in the budget: parked sockets try again.
    fn wake_parked(&mut self) {
        self.read_again.append(&mut self.parked);
    }

    /// Runs the poll loop until at least one event is ready or `timeout` has passed (`None`:
    /// until an event), and returns the events.
    pub fn poll_events(&mut self, timeout: Option<Duration>) -> io::Result<Vec<EndpointEvent>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            self.turn(wait)?;
            if !self.out.is_empty() || self.handoff.take_interrupt() {
                return Ok(std::mem::take(&mut self.out));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Vec::new());
            }
        }
    }

    /// Closes every session (goodbye to each peer; queued messages fail with
    /// [`FailReason::Shutdown`]), closes the listening socket, refuses further sends, and
    /// returns the last events.
    pub fn close(&mut self) -> Vec<EndpointEvent> {
        if !self.closed {
            self.closed = true;
            self.handoff.close();
            let now = Instant::now();
            self.drain_commands(now);
            let keys: Vec<SocketAddr> = self.sessions.keys().copied().collect();
            for key in keys {
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.conn.close(now);
                    self.dirty.insert(key);
                }
            }
            self.service_dirty(now);
            let tokens: Vec<Token> = self.sockets.keys().copied().collect();
            for token in tokens {
                self.close_socket(token);
            }
            if let Some(mut listener) = self.listener.take() {
                let _ = self.poll.registry().deregister(&mut listener);
            }
        }
        std::mem::take(&mut self.out)
    }

    /// One iteration: send what was queued since the last one, wait for readiness or a timer,
    /// then do all the work that became due.
    fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        // Sends made on this thread since the last turn wrote no waker (the hand-off's
        // contract): they go out before the wait, not after it.
        self.drain_commands(now);
        self.service_dirty(now);
        let mut wait = timeout;
        if !self.read_again.is_empty() || !self.dirty.is_empty() || !self.out.is_empty() {
            wait = Some(Duration::ZERO);
        }
        if let Some(at) = self.next_timer() {
            let until = at.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        if let Err(e) = self.poll.poll(&mut self.mio_events, wait) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = Instant::now();
        let ready: Vec<(Token, bool, bool, bool)> = self
            .mio_events
            .iter()
            .map(|e| {
                (
                    e.token(),
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable() || e.is_write_closed() || e.is_error(),
                    e.is_read_closed() || e.is_error(),
                )
            })
            .collect();
        for (token, readable, writable, hung_up) in ready {
            if hung_up {
                if let Some(socket) = self.sockets.get_mut(&token) {
                    socket.hung_up = true;
                }
            }
            match token {
                LISTENER => self.accept_all(now),
                WAKER => {}
                token => self.socket_ready(now, token, readable, writable),
            }
        }
        self.drain_commands(now);
        for token in std::mem::take(&mut self.read_again) {
            self.socket_ready(now, token, true, false);
        }
        self.run_timers(now);
        self.service_dirty(now);
        self.reject_log.flush(now);
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_PERIOD {
            self.sweep(now);
        }
        Ok(())
    }

    /// The earliest machine timer.
    fn next_timer(&self) -> Option<Instant> {
        let sessions = self.sessions.values().filter_map(|s| s.conn.poll_timeout());
        let incoming = self.sockets.values().filter_map(|s| match &s.role {
            Role::Incoming(p) => p.incoming.poll_timeout(),
            Role::Link { .. } => None,
        });
        let sweep = (!self.sessions.is_empty()).then_some(self.last_sweep + SWEEP_PERIOD);
        sessions
            .chain(incoming)
            .chain(self.accept_paused_until)
            .chain(sweep)
            .min()
    }

    fn run_timers(&mut self, now: Instant) {
        for (key, session) in self.sessions.iter_mut() {
            if session.conn.poll_timeout().is_some_and(|t| t <= now) {
                session.conn.handle_timeout(now);
                self.dirty.insert(*key);
            }
        }
        let due: Vec<Token> = self
            .sockets
            .iter()
            .filter_map(|(token, s)| match &s.role {
                Role::Incoming(p) if p.incoming.poll_timeout().is_some_and(|t| t <= now) => {
                    Some(*token)
                }
                _ => None,
            })
            .collect();
        for token in due {
            if let Some(Socket {
                role: Role::Incoming(p),
                ..
            }) = self.sockets.get_mut(&token)
            {
                p.incoming.handle_timeout(now);
            }
            self.service_incoming(now, token);
        }
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            self.accept_all(now);
        }
    }

    fn drain_commands(&mut self, now: Instant) {
        self.handoff.begin_drain();
        while let Some(command) = self.handoff.next_command() {
            match command {
                Command::Send { peer, id, message } => self.send_now(now, peer, id, message),
            }
        }
    }

    fn send_now(&mut self, now: Instant, peer: SocketAddr, id: MessageId, message: WireMessage) {
        let bytes = wire::frame_body_bound(&message) + HEADER_LEN;
        if self.identity.listen == Some(peer) || self.local_addr == peer {
            // Sends to self never touch the network.
            self.handoff.release(peer, bytes);
            self.out.push(EndpointEvent::Peer {
                peer,
                event: Event::Delivered(message),
            });
            self.out.push(EndpointEvent::Peer {
                peer,
                event: Event::Acked(vec![id]),
            });
            return;
        }
        if self.closed {
            self.handoff.release(peer, bytes);
            self.fail_now(peer, id, FailReason::Shutdown);
            return;
        }
        let session = self.session_for(now, peer);
        match session.conn.send(now, id, &message) {
            Ok(()) => {
                self.in_flight.insert(id, (peer, bytes));
            }
            Err(e) => {
                self.handoff.release(peer, bytes);
                let reason = match e {
                    SendError::TooLarge { size, limit } => FailReason::TooLarge { size, limit },
                    SendError::QueueFull { .. } => FailReason::QueueFull,
                    SendError::Unreachable => FailReason::Unreachable,
                    SendError::Closed => FailReason::Shutdown,
                };
                self.fail_now(peer, id, reason);
            }
        }
        self.dirty.insert(peer);
    }

    fn fail_now(&mut self, peer: SocketAddr, id: MessageId, reason: FailReason) {
        self.out.push(EndpointEvent::Peer {
            peer,
            event: Event::Failed {
                ids: vec![id],
                reason,
            },
        });
    }

    /// The session for a peer listening at `key`, created if needed.
    fn session_for(&mut self, now: Instant, key: SocketAddr) -> &mut Session {
        let config = &self.config;
        let identity = &self.identity;
        let next_session = &mut self.next_session;
        self.sessions.entry(key).or_insert_with(|| {
            let id = *next_session;
            *next_session += 1;
            Session {
                conn: Connection::new(config.clone(), identity.clone(), id, Some(key), now),
                socket: None,
            }
        })
    }

    fn new_token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        token
    }

    fn accept_all(&mut self, now: Instant) {
        if self.closed || self.accept_paused_until.is_some() {
            return;
        }
        let mut retried = false;
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let token = self.new_token();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register a connection from {remote}: {e}");
                        continue;
                    }
                    log::trace!("accepted a connection from {remote}");
                    // Full: the oldest socket in its handshake makes room, so sockets that
                    // hold their slots (without the secret) cannot keep newcomers out.
                    let incoming = if self.handshaking() >= self.max_handshaking
                        && !self.evict_oldest_handshake(now)
                    {
                        self.counters.overloaded += 1;
                        Incoming::overloaded(&self.config, now)
                    } else {
                        Incoming::new(&self.config, now)
                    };
                    self.sockets.insert(
                        token,
                        Socket {
                            stream,
                            role: Role::Incoming(Box::new(Pending {
                                incoming,
                                key: None,
                                fresh: None,
                            })),
                            connecting: false,
                            remote,
                            pending: VecDeque::new(),
                            opened: now,
                            share: Share::default(),
                            hung_up: false,
                        },
                    );
                    if !self.service_incoming(now, token) {
                        continue;
                    }
                    // Bytes may already be waiting (edge-triggered readiness).
                    self.read_again.push(token);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_fd_exhaustion(&e) => {
                    if !retried && self.free_descriptors(now) > 0 {
                        log::warn!(
                            "out of file descriptors accepting; closed unauthenticated or idle connections"
                        );
                        retried = true;
                        continue;
                    }
                    log::warn!("out of file descriptors accepting; pausing accepts");
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    break;
                }
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        continue;
                    }
                    break;
                }
            }
        }
    }

    /// Accepted sockets still in their handshake.
    fn handshaking(&self) -> usize {
        self.sockets
            .values()
            .filter(|s| matches!(&s.role, Role::Incoming(p) if !p.incoming.is_done()))
            .count()
    }

    /// Makes room for a new handshake: the oldest accepted socket still in its handshake is
    /// told the endpoint is overloaded and closed (its peer, if a thespian one, retries after
    /// its back-off). False when there is none (`max_handshaking` is 0).
    fn evict_oldest_handshake(&mut self, now: Instant) -> bool {
        let oldest = self
            .sockets
            .iter()
            .filter(|(_, s)| matches!(&s.role, Role::Incoming(p) if !p.incoming.is_done()))
            .min_by_key(|(token, s)| (s.opened, token.0))
            .map(|(token, _)| *token);
        let Some(token) = oldest else {
            return false;
        };
        if let Some(Socket {
            role: Role::Incoming(p),
            ..
        }) = self.sockets.get_mut(&token)
        {
            p.incoming = Incoming::overloaded(&self.config, now);
        }
        self.counters.overloaded += 1;
        self.service_incoming(now, token);
        true
    }

    /// Frees descriptors under `EMFILE`: sockets that have not authenticated first, oldest
    /// first (told the endpoint is overloaded), then the longest-idle authenticated
    /// connections. Returns how many were closed.
    fn free_descriptors(&mut self, now: Instant) -> usize {
        let mut pending: Vec<(Instant, Token)> = self
            .sockets
            .iter()
            .filter(|(_, s)| matches!(s.role, Role::Incoming(_)))
            .map(|(t, s)| (s.opened, *t))
            .collect();
        pending.sort();
        let mut closed = 0;
        for (_, token) in pending.into_iter().take(EMFILE_CLOSE) {
            if let Some(Socket {
                role: Role::Incoming(p),
                ..
            }) = self.sockets.get_mut(&token)
            {
                if !p.incoming.is_done() {
                    p.incoming = Incoming::overloaded(&self.config, now);
                    self.counters.overloaded += 1;
                }
            }
            self.service_incoming(now, token);
            self.close_socket(token);
            closed += 1;
        }
        if closed > 0 {
            return closed;
        }
        self.close_idle(now, EMFILE_CLOSE)
    }

    /// Says goodbye on up to `count` established connections with nothing queued, longest idle
    /// first, and closes their sockets. Returns how many were closed.
    fn close_idle(&mut self, now: Instant, count: usize) -> usize {
        let mut idle: Vec<(Instant, SocketAddr)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.socket.is_some() && s.conn.is_established() && s.conn.queued() == 0)
            .map(|(k, s)| (s.conn.last_activity(), *k))
            .collect();
        idle.sort();
        let mut closed = 0;
        for (_, key) in idle.into_iter().take(count) {
            if let Some(s) = self.sessions.get_mut(&key) {
                if s.conn.close_idle(now) {
                    closed += 1;
                }
            }
            self.service(now, key);
        }
        closed
    }

    /// Readiness on a socket.
    fn socket_ready(&mut self, now: Instant, token: Token, readable: bool, writable: bool) {
        let Some(socket) = self.sockets.get_mut(&token) else {
            return;
        };
        if socket.connecting {
            match connect_result(&socket.stream) {
                ConnectState::Pending => return,
                ConnectState::Done => {
                    socket.connecting = false;
                    let _ = socket.stream.set_nodelay(true);
                    if let Role::Link { key, link } = socket.role {
                        match Nonce::random() {
                            Ok(nonce) => {
                                if let Some(s) = self.sessions.get_mut(&key) {
                                    s.conn.connected(now, link, nonce);
                                }
                                self.dirty.insert(key);
                            }
                            Err(e) => {
                                log::warn!("cannot connect to {key}: {e}");
                                self.socket_failed(now, token, &e.to_string());
                                return;
                            }
                        }
                    }
                }
                ConnectState::Failed(e) => {
                    if let Role::Link { key, link } = socket.role {
                        let failure = if e.kind() == io::ErrorKind::ConnectionRefused {
                            ConnectFailure::Refused
                        } else {
                            ConnectFailure::Other(e.to_string())
                        };
                        log::debug!("connect to {key} failed: {e}");
                        self.drop_socket(token);
                        if let Some(s) = self.sessions.get_mut(&key) {
                            s.conn.connect_failed(now, link, failure);
                            if s.socket == Some(token) {
                                s.socket = None;
                            }
                        }
                        self.dirty.insert(key);
                    }
                    return;
                }
            }
        }
        if writable {
            let Some(socket) = self.sockets.get_mut(&token) else {
                return;
            };
            match socket.flush() {
                Ok(true) => {
                    if let Role::Link { key, .. } = socket.role {
                        self.dirty.insert(key);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    self.socket_failed(now, token, &e.to_string());
                    return;
                }
            }
        }
        if readable {
            self.read_socket(now, token);
        }
    }

    /// Reads what the socket has (up to the per-event budget) into its machine.
    fn read_socket(&mut self, now: Instant, token: Token) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let mut budget = READ_BUDGET;
        while let Some(socket) = self.sockets.get_mut(&token) {
            if socket.connecting {
                break;
            }
            if budget == 0 {
                self.read_again.push(token);
                break;
            }
            let allowance = match &socket.role {
                // A handshake frame at a time: its bytes are bounded by `max_handshaking` and
                // the handshake frame limit, not by the budget, so a full budget cannot starve
                // new peers' handshakes.
                Role::Incoming(p) => p.incoming.wants().clamp(1, buf.len()),
                Role::Link { .. } => self.budget.allowance(&socket.share, buf.len()),
            };
            if allowance == 0 {
                // Room may have freed since the frame's prefix arrived: reserve it now if so.
                self.account(token);
                let Some(socket) = self.sockets.get_mut(&token) else {
                    break;
                };
                if self.budget.allowance(&socket.share, buf.len()) > 0 {
                    continue;
                }
                // No room for more frame bytes: leave them in the kernel (TCP flow control
                // holds the peer) until a frame completes or a socket closes. A peer that
                // hung up is still noticed.
                if matches!(socket.stream.peek(&mut buf[..1]), Ok(0)) {
                    self.socket_failed(now, token, "closed by peer");
                    break;
                }
                if !self.parked.contains(&token) {
                    self.parked.push(token);
                }
                break;
            }
            // A link's bytes go straight into its session's read buffer (a record longer than
            // one read is never copied on its way); a handshake's into the shared one.
            let link_input = match socket.role {
                Role::Link { key, link } => self
                    .sessions
                    .get_mut(&key)
                    .filter(|s| s.conn.link() == Some(link))
                    .and_then(|s| s.conn.input_buffer(READ_CHUNK)),
                Role::Incoming(_) => None,
            };
            let direct = link_input.is_some();
            // What this read asked for: fewer bytes back means the socket is empty.
            let requested = link_input
                .as_ref()
                .map_or(allowance, |s| allowance.min(s.len()));
            let read = match link_input {
                Some(space) => socket.stream.read(&mut space[..requested]),
                None => socket.stream.read(&mut buf[..requested]),
            };
            match read {
                Ok(0) => {
                    self.socket_failed(now, token, "closed by peer");
                    break;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    match socket.role {
                        Role::Incoming(ref mut pending) => {
                            pending.incoming.handle_input(now, &buf[..n]);
                            self.account(token);
                            if !self.service_incoming(now, token) {
                                // Now a session's link (or closed): read the rest, if any,
                                // on the next turn (readiness is edge-triggered).
                                if self.sockets.contains_key(&token) {
                                    self.read_again.push(token);
                                }
                                break;
                            }
                        }
                        Role::Link { key, .. } => {
                            if let Some(s) = self.sessions.get_mut(&key) {
                                if direct {
                                    s.conn.input_filled(now, n);
                                } else {
                                    s.conn.handle_input(now, &buf[..n]);
                                }
                            }
                            self.account(token);
                            self.dirty.insert(key);
                            // Keep reading only while this socket is still the session's link.
                            self.service(now, key);
                            let hung_up = self.sockets.get(&token).is_some_and(|s| s.hung_up);
                            if n < requested && SHORT_READ_EMPTIES && !hung_up {
                                // The socket is empty: what arrives later raises a new event.
                                break;
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.socket_failed(now, token, &e.to_string());
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    /// Acts on an accepted socket's handshake machine. Returns false when the socket is gone or
    /// is no longer an incoming socket's.
    fn service_incoming(&mut self, now: Instant, token: Token) -> bool {
        let Some(socket) = self.sockets.get_mut(&token) else {
            return false;
        };
        let Role::Incoming(pending) = &mut socket.role else {
            return false;
        };
        let reply = pending.incoming.poll_transmit();
        let outcome = pending.incoming.poll_outcome();
        let remote = socket.remote;
        if let Some(bytes) = reply {
            socket.queue(bytes);
            if outcome.is_none() {
                // A Welcome: the peer waits for it (a rejection is flushed when closing).
                if let Err(e) = socket.flush() {
                    self.socket_failed(now, token, &e.to_string());
                    return false;
                }
            }
        }
        let Some(socket) = self.sockets.get_mut(&token) else {
            return false;
        };
        let Role::Incoming(pending) = &mut socket.role else {
            return false;
        };
        match outcome {
            None => true,
            Some(IncomingOutcome::Rejected(reason)) => {
                // Anyone can cause these: rate-limited, and the reason (which may quote the
                // peer) escaped and truncated.
                if self.reject_log.admit(now) {
                    log::warn!(
                        "closing connection from {remote}: {}",
                        wire::peer_text(&reason)
                    );
                } else {
                    self.counters.unlogged_rejections += 1;
                }
                self.counters.rejected += 1;
                self.out.push(EndpointEvent::Rejected {
                    from: remote,
                    reason,
                });
                self.close_socket(token);
                false
            }
            Some(IncomingOutcome::Hello(hello)) => {
                let key = match hello.info.listen {
                    Some(a) if a.ip().is_unspecified() => SocketAddr::new(remote.ip(), a.port()),
                    Some(a) => a,
                    None => remote,
                };
                let nonce = match Nonce::random() {
                    Ok(nonce) => nonce,
                    Err(e) => {
                        pending.incoming = Incoming::overloaded(&self.config, now);
                        log::warn!("cannot answer {remote}: {e}");
                        return self.service_incoming(now, token);
                    }
                };
                pending.key = Some(key);
                // The session answers; one that does not exist yet is made aside, and joins the
                // sessions only once the peer has authenticated.
                let answer = match self.sessions.get(&key) {
                    Some(session) => session.conn.answer(&hello, nonce),
                    None => {
                        let id = self.next_session;
                        self.next_session += 1;
                        let conn = Connection::new(
                            self.config.clone(),
                            self.identity.clone(),
                            id,
                            hello.info.listen.is_some().then_some(key),
                            now,
                        );
                        let answer = conn.answer(&hello, nonce);
                        pending.fresh = Some(conn);
                        answer
                    }
                };
                match answer {
                    Answer::Welcome(welcoming) => {
                        pending.incoming.welcome(welcoming);
                        self.service_incoming(now, token)
                    }
                    Answer::Rejected { reply } => {
                        if let Some(socket) = self.sockets.get_mut(&token) {
                            socket.queue(reply);
                        }
                        log::debug!("refused a connection from {remote} ({key})");
                        self.counters.rejected += 1;
                        self.close_socket(token);
                        false
                    }
                }
            }
            Some(IncomingOutcome::Authenticated(accepted)) => {
                let key = pending.key.unwrap_or(remote);
                let fresh = pending.fresh.take();
                // Settle the session's pending output first, so a farewell for an ended link
                // goes to that link's socket.
                if self.sessions.contains_key(&key) {
                    self.service(now, key);
                }
                let (config, identity) = (&self.config, &self.identity);
                let next_session = &mut self.next_session;
                let listen = accepted.hello.listen.is_some().then_some(key);
                let session = self.sessions.entry(key).or_insert_with(|| Session {
                    // The session that answered was forgotten meanwhile: start another.
                    conn: fresh.unwrap_or_else(|| {
                        *next_session += 1;
                        Connection::new(
                            config.clone(),
                            identity.clone(),
                            *next_session - 1,
                            listen,
                            now,
                        )
                    }),
                    socket: None,
                });
                match session.conn.attach(now, accepted) {
                    Attach::Attached { link, .. } => {
                        let old = session.socket.replace(token);
                        if let Some(socket) = self.sockets.get_mut(&token) {
                            socket.role = Role::Link { key, link };
                        }
                        // The session has one link now: any other socket of it is obsolete.
                        if let Some(old) = old.filter(|old| *old != token) {
                            self.drop_socket(old);
                        }
                        self.account(token);
                        self.dirty.insert(key);
                        self.service(now, key);
                        false
                    }
                    Attach::Rejected { reply } => {
                        if let Some(socket) = self.sockets.get_mut(&token) {
                            socket.queue(reply);
                        }
                        self.close_socket(token);
                        false
                    }
                }
            }
        }
    }

    fn service_dirty(&mut self, now: Instant) {
        // Servicing can dirty other sessions (closing idle ones); loop until quiet.
        for _ in 0..4 {
            if self.dirty.is_empty() {
                break;
            }
            let keys: Vec<SocketAddr> = self.dirty.drain().collect();
            for key in keys {
                self.service(now, key);
            }
        }
    }

    /// Follows the driver contract for one session: transmit, events, connect.
    fn service(&mut self, now: Instant, key: SocketAddr) {
        self.dirty.remove(&key);
        for _ in 0..16 {
            let Some(session) = self.sessions.get_mut(&key) else {
                return;
            };
            let mut progress = false;
            // 1. Transmit while the socket keeps up.
            loop {
                let socket = session.socket.and_then(|t| self.sockets.get_mut(&t));
                match socket {
                    Some(socket) if socket.connecting => break,
                    Some(socket) => {
                        if socket.has_pending_write() {
                            break;
                        }
                        let Some(bytes) = session.conn.poll_transmit_vectored() else {
                            break;
                        };
                        socket.queue(bytes);
                        if let Err(e) = socket.flush() {
                            let token = session.socket.expect("socket exists");
                            self.socket_failed(now, token, &e.to_string());
                            progress = true;
                            break;
                        }
                    }
                    None => {
                        // No socket: only a farewell for a socket already gone can be here.
                        if session.conn.poll_transmit_vectored().is_none() {
                            break;
                        }
                    }
                }
            }
            let Some(session) = self.sessions.get_mut(&key) else {
                return;
            };
            // 2. Events.
            let mut to_close = Vec::new();
            while let Some(event) = session.conn.poll_event() {
                progress = true;
                match &event {
                    Event::Closed { link, .. } => {
                        let token = session.socket.filter(|t| {
                            matches!(
                                self.sockets.get(t).map(|s| &s.role),
                                Some(Role::Link { link: l, .. }) if l == link
                            )
                        });
                        if let Some(token) = token {
                            session.socket = None;
                            if let Some(socket) = self.sockets.get_mut(&token) {
                                // The farewell (goodbye, error) for this link.
                                while let Some(bytes) = session.conn.poll_transmit_vectored() {
                                    socket.queue(bytes);
                                }
                            }
                            to_close.push(token);
                        }
                    }
                    Event::Acked(ids) | Event::Failed { ids, .. } => {
                        for id in ids {
                            if let Some((peer, bytes)) = self.in_flight.remove(id) {
                                self.handoff.release(peer, bytes);
                            }
                        }
                    }
                    _ => {}
                }
                self.out.push(EndpointEvent::Peer { peer: key, event });
            }
            // 3. Connect.
            let connect = session.conn.poll_connect();
            for token in to_close {
                self.close_socket(token);
            }
            if let Some(link) = connect {
                progress = true;
                self.connect(now, key, link);
            }
            if !progress {
                return;
            }
        }
        // Still busy: finish on the next turn.
        self.dirty.insert(key);
    }

    /// Opens a TCP connection for a session's link.
    fn connect(&mut self, now: Instant, key: SocketAddr, link: LinkId) {
        let mut result = TcpStream::connect(key);
        if let Err(e) = &result {
            if is_fd_exhaustion(e) && self.free_descriptors(now) > 0 {
                log::warn!("out of file descriptors connecting to {key}; closed idle connections");
                result = TcpStream::connect(key);
            }
        }
        let registered = result.and_then(|mut stream| {
            let token = self.new_token();
            self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok((token, stream))
        });
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        match registered {
            Ok((token, stream)) => {
                if let Some(old) = session.socket.replace(token) {
                    self.drop_socket(old);
                }
                self.sockets.insert(
                    token,
                    Socket {
                        stream,
                        role: Role::Link { key, link },
                        connecting: true,
                        remote: key,
                        pending: VecDeque::new(),
                        opened: now,
                        share: Share::default(),
                        hung_up: false,
                    },
                );
            }
            Err(e) => {
                log::debug!("connect to {key} failed at once: {e}");
                let failure = if e.kind() == io::ErrorKind::ConnectionRefused {
                    ConnectFailure::Refused
                } else {
                    ConnectFailure::Other(e.to_string())
                };
                session.conn.connect_failed(now, link, failure);
            }
        }
        self.dirty.insert(key);
    }

    /// A socket broke (end of file, reset, write error): tell its machine and close it.
    fn socket_failed(&mut self, now: Instant, token: Token, error: &str) {
        let Some(socket) = self.sockets.get(&token) else {
            return;
        };
        match socket.role {
            Role::Incoming(_) => {
                let from = socket.remote;
                let reason = format!("connection closed before the handshake: {error}");
                log::debug!("connection from {from}: {reason}");
                self.counters.rejected += 1;
                self.out.push(EndpointEvent::Rejected { from, reason });
                self.drop_socket(token);
            }
            Role::Link { key, link } => {
                log::debug!("connection with {key} lost: {error}");
                self.drop_socket(token);
                if let Some(s) = self.sessions.get_mut(&key) {
                    if s.socket == Some(token) {
                        s.socket = None;
                    }
                    s.conn.link_lost(now, link, error);
                }
                self.dirty.insert(key);
            }
        }
    }

    /// Writes what is pending (best effort) and closes the socket.
    fn close_socket(&mut self, token: Token) {
        if let Some(socket) = self.sockets.get_mut(&token) {
            let _ = socket.flush();
            let _ = socket.stream.shutdown(std::net::Shutdown::Write);
        }
        self.drop_socket(token);
    }

    /// Closes the socket without writing anything more.
    fn drop_socket(&mut self, token: Token) {
        if let Some(mut socket) = self.sockets.remove(&token) {
            let _ = self.poll.registry().deregister(&mut socket.stream);
            self.parked.retain(|t| *t != token);
            if self.budget.release(&mut socket.share) {
                self.wake_parked();
            }
            if let Role::Link { key, .. } = socket.role {
                if let Some(s) = self.sessions.get_mut(&key) {
                    if s.socket == Some(token) {
                        s.socket = None;
                    }
                }
            }
        }
    }

    /// Forgets sessions that hold nothing and can no longer receive a retransmit.
    fn sweep(&mut self, now: Instant) {
        self.last_sweep = now;
        let linger = self.config.transmit_timeout + self.config.handshake_timeout;
        let counters = &mut self.counters;
        self.sessions.retain(|key, s| {
            let keep = s.socket.is_some()
                || !s.conn.is_quiescent()
                || now.saturating_duration_since(s.conn.last_activity()) < linger;
            if !keep {
                log::trace!("forgetting the session with {key}");
                counters.bad_frames += s.conn.stats().bad_frames;
                counters.frame_timeouts += s.conn.stats().frame_timeouts;
            }
            keep
        });
    }
}

enum ConnectState {
    Pending,
    Done,
    Failed(io::Error),
}

/// Whether a non-blocking connect has completed (mio's recommended check).
fn connect_result(stream: &TcpStream) -> ConnectState {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return ConnectState::Failed(e),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(_) => ConnectState::Done,
        Err(e) if e.kind() == io::ErrorKind::NotConnected => ConnectState::Pending,
        Err(e) if e.raw_os_error() == Some(115) /* EINPROGRESS (Linux) */ => {
            ConnectState::Pending
        }
        Err(e) => ConnectState::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_limiter_admits_a_burst_per_interval_and_counts_the_rest() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut limiter = LogLimiter::new(3, 10 * second);
        let admitted = (0..10).filter(|_| limiter.admit(start)).count();
        assert_eq!(admitted, 3);
        assert_eq!(limiter.suppressed, 7);
        // Still the same interval.
        assert!(!limiter.admit(start + 9 * second));
        limiter.flush(start + 9 * second);
        assert_eq!(limiter.suppressed, 8);
        // The next interval: the count is reported (and reset), and a new burst is admitted.
        limiter.flush(start + 10 * second);
        assert_eq!(limiter.suppressed, 0);
        let admitted = (0..4)
            .filter(|_| limiter.admit(start + 11 * second))
            .count();
        assert_eq!(admitted, 3);
        assert_eq!(limiter.roll(start + 30 * second), 1);
    }
}
