//! The mio driver: one UDP socket, the clock and a waker around the sans-IO [`Machine`].
//!
//! This module exists to do the I/O the [`machine`](crate::machine) asks for, and nothing
//! else: it owns the socket, reads datagrams in batches (so one acknowledgement covers a
//! batch), sends what the machine returns, sleeps until the machine's next timer, and lets
//! other threads send through a cloneable [`UdpSender`]. Protocol decisions stay in the
//! machine. On Linux a batch is one system call each way (`recvmmsg`, `sendmmsg`: the private
//! `batch` module): everything the machine has to transmit after a turn goes in one call.
//!
//! The machine's handshake nonces come from the operating system's random source
//! ([`Nonces::random`]); the secret comes in with the [`EndpointConfig`].
//!
//! Two details of real sockets are handled here:
//! - **ICMP port unreachable.** A datagram sent to a port where nothing listens draws an ICMP
//!   error. On Linux the driver asks for these errors with their destination
//!   (the private `icmp` module) and hands each refused address to [`Machine::refused`], so the
//!   messages of a peer that went away are reported at once. The error can also surface as an
//!   `ECONNREFUSED` of a later receive or send, or end a send batch early: the error queue is
//!   read then, the datagrams still queued for a refused destination are dropped (as the
//!   machine drops its own), and the rest of the batch goes on (a datagram that met such an
//!   error is tried once more). Without ICMP, the machine's retransmission limit gives the
//!   peer up.
//! - **Send errors** (`EAGAIN` aside) drop the datagram: it counts as lost and is
//!   retransmitted. `EAGAIN` keeps it, and the datagrams after it, until the socket is
//!   writable again.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use thespian_auth::Secret;
use thespian_core::SystemId;
use thespian_io::handoff::{Handoff, HandoffError, HandoffSender};

use crate::batch::{self, RecvBuffers};
use crate::machine::{Config, Event, Machine, MessageId, Nonces, SendError, UndeliverableReason};
use crate::wire::WireMessage;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// Datagrams read per turn before the machine's transmits and timers get a turn.
const READ_BUDGET: usize = 512;

/// How to set up a [`UdpEndpoint`].
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The machine's tunables.
    pub transport: Config,
    /// This endpoint's incarnation id (pick a new random one at every start).
    pub incarnation: SystemId,
    /// The system's secret: every peer must prove it holds the same one before a single
    /// message is exchanged (see [`Machine`]).
    pub secret: Secret,
    /// Where to bind (default `127.0.0.1:0`: loopback, an ephemeral port).
    pub bind: SocketAddr,
}

impl EndpointConfig {
    /// Defaults for the given incarnation and secret: loopback, ephemeral port, default
    /// transport config. There is no endpoint without a secret.
    pub fn new(incarnation: SystemId, secret: Secret) -> EndpointConfig {
        EndpointConfig {
            transport: Config::default(),
            incarnation,
            secret,
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        }
    }
}

enum Command {
    Send {
        to: SocketAddr,
        id: MessageId,
        size: usize,
        message: WireMessage,
    },
    MarkDead(SocketAddr),
    Revive(SocketAddr),
}

/// Sends messages through a [`UdpEndpoint`] from any thread. Cheap to clone.
#[derive(Clone)]
pub struct UdpSender {
    handoff: HandoffSender<Command>,
    /// The machine's tunables, for the size check at the sender.
    config: Arc<Config>,
}

impl std::fmt::Debug for UdpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSender").finish_non_exhaustive()
    }
}

impl UdpSender {
    /// Queues `message` for the endpoint at `to`; returns the id later reported in
    /// [`Event::Acked`] or [`Event::Undeliverable`] by [`UdpEndpoint::poll_events`].
    ///
    /// Fails at once when the message does not fit in a datagram
    /// ([`SendError::TooLarge`], naming the limit), when the window to `to` is full
    /// ([`SendError::WindowFull`]: messages handed over and not yet acknowledged or reported),
    /// or when the endpoint is closed. Messages sent from one thread to one peer keep their
    /// order.
    pub fn send(&self, to: SocketAddr, message: WireMessage) -> Result<MessageId, SendError> {
        if self.handoff.is_closed() {
            return Err(SendError::Closed);
        }
        let size = self.config.check_size(&message)?;
        self.handoff
            .send(to, size, |id| Command::Send {
                to,
                id,
                size,
                message,
            })
            .map_err(|e| match e {
                HandoffError::Closed => SendError::Closed,
                HandoffError::Full(u) => SendError::WindowFull {
                    messages: u.messages,
                    bytes: u.bytes,
                },
            })
    }

    /// Declares the endpoint at `peer` dead (see [`Machine::mark_dead`]): its unacknowledged
    /// messages are reported undeliverable and sends to it fail fast for a while.
    pub fn mark_dead(&self, peer: SocketAddr) -> Result<(), SendError> {
        self.handoff
            .command(Command::MarkDead(peer))
            .map_err(|_| SendError::Closed)
    }

    /// A new endpoint listens at `peer` (see [`Machine::revive`]): sends to it are no longer
    /// failed as to a dead address.
    pub fn revive(&self, peer: SocketAddr) -> Result<(), SendError> {
        self.handoff
            .command(Command::Revive(peer))
            .map_err(|_| SendError::Closed)
    }

    /// Makes the endpoint's current or next [`UdpEndpoint::poll_events`] return, with or
    /// without events, so its driver can look at its own state (e.g. to stop).
    pub fn interrupt(&self) {
        self.handoff.interrupt();
    }
}

/// A UDP transport endpoint: one socket, the [`Machine`], and a mio poll loop.
///
/// Drive it from one thread with [`poll_events`](Self::poll_events); send from any thread
/// with a [`UdpSender`] from [`sender`](Self::sender).
pub struct UdpEndpoint {
    poll: Poll,
    mio_events: Events,
    socket: UdpSocket,
    local_addr: SocketAddr,
    machine: Machine,
    /// Where senders' messages and commands arrive; the window they took.
    handoff: Handoff<Command>,
    /// The machine's tunables as the senders see them.
    sender_config: Arc<Config>,
    /// Messages handed over by senders: peer and datagram size, released on their outcome.
    in_flight: HashMap<MessageId, (SocketAddr, usize)>,
    /// Datagrams taken from the machine and not sent yet: the next batch, or what the socket
    /// refused with `EAGAIN`, sent first when it is writable again (at most
    /// [`batch::SEND_BATCH`]; the rest waits in the machine).
    outgoing: VecDeque<(SocketAddr, Vec<u8>)>,
    read_again: bool,
    /// A `MarkDead` or `Revive` met by the drain before the wait, carried out after it.
    held: Option<Command>,
    /// The socket is watched for room (datagrams wait in `outgoing` after `EAGAIN`).
    watch_writable: bool,
    recv: RecvBuffers,
    out: Vec<Event>,
    closed: bool,
}

impl std::fmt::Debug for UdpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpEndpoint")
            .field("local_addr", &self.local_addr)
            .field("incarnation", &self.machine.incarnation())
            .field("peers", &self.machine.peers())
            .finish_non_exhaustive()
    }
}

/// An error an ICMP message left on the socket (reported by a later `recv_from`/`send_to`).
fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

impl UdpEndpoint {
    /// Binds the socket and returns the endpoint with its bound address.
    pub fn bind(config: EndpointConfig) -> io::Result<(UdpEndpoint, SocketAddr)> {
        let socket = std::net::UdpSocket::bind(config.bind)?;
        UdpEndpoint::from_socket(socket, config)
    }

    /// Builds the endpoint around a socket bound elsewhere (`config.bind` is then ignored): a
    /// multi-process base binds an actor's socket before it starts the actor's process, so the
    /// address is known at once, and hands the socket over.
    pub fn from_socket(
        socket: std::net::UdpSocket,
        config: EndpointConfig,
    ) -> io::Result<(UdpEndpoint, SocketAddr)> {
        socket.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let mut socket = UdpSocket::from_std(socket);
        let local_addr = socket.local_addr()?;
        if let Err(e) = crate::icmp::enable(&socket) {
            log::debug!("UDP endpoint {local_addr}: no ICMP error reports ({e})");
        }
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let handoff = Handoff::new(
            "UDP endpoint",
            waker,
            config.transport.max_unacked,
            config.transport.max_unacked_bytes,
        );
        let sender_config = Arc::new(config.transport.clone());
        let machine = Machine::new(
            config.transport,
            config.incarnation,
            local_addr,
            config.secret,
            Nonces::random(),
        );
        log::debug!(
            "UDP endpoint {:?} bound to {local_addr}",
            config.incarnation
        );
        let endpoint = UdpEndpoint {
            poll,
            mio_events: Events::with_capacity(64),
            socket,
            local_addr,
            machine,
            handoff,
            sender_config,
            in_flight: HashMap::new(),
            outgoing: VecDeque::with_capacity(batch::SEND_BATCH),
            read_again: true,
            held: None,
            watch_writable: false,
            recv: RecvBuffers::new(),
            out: Vec::new(),
            closed: false,
        };
        Ok((endpoint, local_addr))
    }

    /// The bound address: where peers send to reach this endpoint.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This endpoint's incarnation id.
    pub fn incarnation(&self) -> SystemId {
        self.machine.incarnation()
    }

    /// A handle for sending from any thread.
    pub fn sender(&self) -> UdpSender {
        UdpSender {
            handoff: self.handoff.sender(),
            config: self.sender_config.clone(),
        }
    }

    /// The machine, for inspection (window occupancy, peers, dead addresses).
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Runs the poll loop until at least one event is ready or `timeout` has passed (`None`:
    /// until an event), and returns the events. After [`close`](Self::close) it returns at
    /// once.
    pub fn poll_events(&mut self, timeout: Option<Duration>) -> io::Result<Vec<Event>> {
        if self.closed {
            return Ok(std::mem::take(&mut self.out));
        }
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

    /// Closes the endpoint: unacknowledged messages (and those still queued by senders) are
    /// reported [`UndeliverableReason::Shutdown`], further sends fail with
    /// [`SendError::Closed`], and the last events are returned. The socket is closed when the
    /// endpoint is dropped.
    pub fn close(&mut self) -> Vec<Event> {
        if !self.closed {
            self.handoff.close();
            let now = Instant::now();
            self.drain_commands(now);
            self.machine.close(now);
            self.flush();
            self.collect_events();
            if let Err(e) = self.poll.registry().deregister(&mut self.socket) {
                log::debug!("UDP endpoint {}: deregister: {e}", self.local_addr);
            }
            self.closed = true;
        }
        std::mem::take(&mut self.out)
    }

    /// One iteration: send what was queued since the last one, wait for readiness or a timer,
    /// then do all the work that became due.
    fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        // Sends made on this thread since the last turn wrote no waker (the hand-off's
        // contract): they go out before the wait, not after it.
        if self.drain_sends(now) {
            self.flush();
            self.collect_events();
        }
        let mut wait = timeout;
        if self.read_again || self.held.is_some() || !self.out.is_empty() {
            wait = Some(Duration::ZERO);
        }
        if let Some(at) = self.machine.poll_timeout() {
            let until = at.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        if let Err(e) = self.poll.poll(&mut self.mio_events, wait) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let mut readable = self.read_again;
        let mut errors = false;
        for event in self.mio_events.iter() {
            if event.token() == SOCKET {
                readable |= event.is_readable() || event.is_error();
                errors |= event.is_error();
            }
        }
        let now = Instant::now();
        // Refusals first: they are older than any command queued meanwhile (a revive, then a
        // send to the new process, must not be undone by the old process's refusal).
        if errors {
            self.take_refusals(now);
        }
        self.drain_commands(now);
        if readable {
            self.read(now);
        }
        if self.machine.poll_timeout().is_some_and(|t| t <= now) {
            self.machine.handle_timeout(now);
        }
        self.flush();
        self.collect_events();
        Ok(())
    }

    /// Before the wait: hands queued sends to the machine, up to the first other command,
    /// which is held for [`drain_commands`](Self::drain_commands) after the wait so that
    /// refusals read there stay older than a `MarkDead` or `Revive` queued since. True when
    /// it handed over a send.
    fn drain_sends(&mut self, now: Instant) -> bool {
        if self.held.is_some() {
            return false;
        }
        self.handoff.begin_drain();
        let mut sent = false;
        while let Some(command) = self.handoff.next_command() {
            if !matches!(command, Command::Send { .. }) {
                self.held = Some(command);
                break;
            }
            self.command(now, command);
            sent = true;
        }
        sent
    }

    /// Hands queued sends and commands to the machine.
    fn drain_commands(&mut self, now: Instant) {
        // Cleared first: a sender that queues after the drain wakes the loop again.
        self.handoff.begin_drain();
        if let Some(command) = self.held.take() {
            self.command(now, command);
        }
        while let Some(command) = self.handoff.next_command() {
            self.command(now, command);
        }
    }

    /// Carries out one command from a sender.
    fn command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Send {
                to,
                id,
                size,
                message,
            } => {
                self.in_flight.insert(id, (to, size));
                if let Err((e, message)) = self.machine.send_or_return(now, to, id, message) {
                    // Senders check size and window first; this is a closed machine.
                    self.out.push(Event::Undeliverable {
                        peer: to,
                        id,
                        message,
                        reason: UndeliverableReason::Refused(e),
                    });
                    self.release(id);
                }
            }
            Command::MarkDead(peer) => self.machine.mark_dead(now, peer),
            Command::Revive(peer) => self.machine.revive(peer),
        }
    }

    /// Reads up to [`READ_BUDGET`] datagrams into the machine, a batch per call.
    fn read(&mut self, now: Instant) {
        let mut read = 0;
        for _ in 0..READ_BUDGET {
            if read >= READ_BUDGET {
                break;
            }
            match batch::recv(&self.socket, &mut self.recv) {
                Ok(n) => {
                    for i in 0..n {
                        if let Some((from, bytes)) = self.recv.get(i) {
                            self.machine.handle_datagram(now, from, bytes);
                        }
                    }
                    read += n;
                    if n < batch::RECV_BATCH {
                        // The socket is empty: what arrives later raises a new event.
                        self.read_again = false;
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.read_again = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_icmp_error(&e) => self.take_refusals(now),
                Err(e) => {
                    // Not expected; the next readiness event or timer reads again.
                    log::warn!("UDP endpoint {}: receive failed: {e}", self.local_addr);
                    self.read_again = false;
                    return;
                }
            }
        }
        self.read_again = true;
    }

    /// Sends what the machine asks for, and watches for room in the socket only while some
    /// of it waits: a UDP socket reports room after every datagram it sent, which would end
    /// each wait early for nothing.
    fn flush(&mut self) {
        self.send_batches();
        let stalled = !self.outgoing.is_empty();
        if stalled != self.watch_writable {
            let interest = if stalled {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            // Changing the interest re-checks readiness: room freed since the stall is seen.
            match self
                .poll
                .registry()
                .reregister(&mut self.socket, SOCKET, interest)
            {
                Ok(()) => self.watch_writable = stalled,
                Err(e) => log::warn!("UDP endpoint {}: reregister: {e}", self.local_addr),
            }
        }
    }

    /// Sends what the machine asks for, a batch per call, until it has nothing more or the
    /// socket is full.
    fn send_batches(&mut self) {
        // The first datagram of the batch met an ICMP error of an earlier one and is tried once
        // more.
        let mut retried = false;
        loop {
            while self.outgoing.len() < batch::SEND_BATCH {
                match self.machine.poll_transmit() {
                    Some(t) => self.outgoing.push_back(t),
                    None => break,
                }
            }
            if self.outgoing.is_empty() {
                return;
            }
            let offered = self.outgoing.len().min(batch::SEND_BATCH);
            match batch::send(&self.socket, self.outgoing.make_contiguous()) {
                // Not from sendmmsg; a stall rather than a spin if a fallback ever says so.
                Ok(0) => return,
                Ok(n) => {
                    self.outgoing.drain(..n);
                    retried = false;
                    if n < offered {
                        // Something ended the batch early. If it was an ICMP error, its
                        // destination waits in the error queue: read it before going on.
                        self.take_refusals(Instant::now());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_icmp_error(&e) && !retried => {
                    // The socket reported an ICMP error of an earlier datagram instead of
                    // sending this one; the error is consumed now, so try once more.
                    self.take_refusals(Instant::now());
                    retried = true;
                }
                Err(e) => {
                    retried = false;
                    if let Some((to, _)) = self.outgoing.pop_front() {
                        log::debug!(
                            "UDP endpoint {}: send to {to} failed: {e}; counted as lost",
                            self.local_addr
                        );
                    }
                }
            }
        }
    }

    /// Reads the socket's ICMP errors: each refused destination is given up at once.
    fn take_refusals(&mut self, now: Instant) {
        match crate::icmp::refused_destinations(&self.socket) {
            Ok(refused) => {
                for &peer in &refused {
                    log::debug!(
                        "UDP endpoint {}: {peer} refused a datagram (port unreachable)",
                        self.local_addr
                    );
                    self.machine.refused(now, peer);
                }
                if !refused.is_empty() {
                    // As the machine drops its own: they would only draw more ICMP errors.
                    self.outgoing.retain(|(to, _)| !refused.contains(to));
                }
            }
            Err(e) => log::debug!(
                "UDP endpoint {}: reading ICMP errors failed: {e}",
                self.local_addr
            ),
        }
    }

    /// Moves the machine's events out, releasing the senders' window for settled messages.
    fn collect_events(&mut self) {
        while let Some(event) = self.machine.poll_event() {
            match &event {
                Event::Acked { ids, .. } => {
                    for &id in ids {
                        self.release(id);
                    }
                }
                Event::Undeliverable { id, .. } => self.release(*id),
                Event::Delivered { .. } | Event::PeerRestarted { .. } => {}
            }
            self.out.push(event);
        }
    }

    fn release(&mut self, id: MessageId) {
        if let Some((peer, size)) = self.in_flight.remove(&id) {
            self.handoff.release(peer, size);
        }
    }
}

impl Drop for UdpEndpoint {
    fn drop(&mut self) {
        self.handoff.close();
    }
}
