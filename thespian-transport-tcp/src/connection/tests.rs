//! Deterministic tests of the machines: two simulated nodes, a simulated clock, in-memory links
//! (quinn's `Pair` idea). No sockets, no threads, no sleeps.

use super::*;
use crate::wire::{decode_handshake, encode_handshake};
use proptest::prelude::*;
use thespian_core::ActorAddress;

const A: usize = 0;
const B: usize = 1;

fn addr_of(node: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, node as u8 + 1], 1000 + node as u16))
}

fn message(n: u64) -> WireMessage {
    WireMessage {
        sender: ActorAddress::new(SystemId::from_raw(1), 1),
        target: ActorAddress::new(SystemId::from_raw(2), n),
        type_name: Arc::from("test.N"),
        payload: Arc::from(n.to_be_bytes().to_vec()),
    }
}

/// The secret both nodes hold unless a test says otherwise.
fn secret() -> Secret {
    Secret::from_text(b"the secret of the simulated system").unwrap()
}

fn other_secret() -> Secret {
    Secret::from_text(b"the secret of another system!").unwrap()
}

fn number(m: &WireMessage) -> u64 {
    u64::from_be_bytes(m.payload[..8].try_into().unwrap())
}

/// One end of a simulated TCP connection.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a test harness; boxing would only add noise
enum End {
    /// Accepted, handshake not read.
    Incoming(Incoming),
    /// A session's link.
    Attached(LinkId),
}

#[derive(Debug)]
struct SimLink {
    ends: [End; 2],
    /// Names the link while others come and go.
    serial: u64,
}

struct Node {
    config: Arc<Config>,
    identity: LocalIdentity,
    conn: Option<Connection>,
    /// The link the "driver" believes is the session's socket.
    current: Option<LinkId>,
    next_session: u64,
    events: Vec<Event>,
    rejections: Vec<String>,
    /// Our listener is down: connects to us are refused.
    refuse: bool,
    /// Bytes we write vanish (the network loses them).
    lose_out: bool,
    connects: usize,
}

impl Node {
    fn new(index: usize, incarnation: u64, config: Config) -> Node {
        Node {
            config: Arc::new(config),
            identity: LocalIdentity {
                incarnation: SystemId::from_raw(incarnation),
                listen: Some(addr_of(index)),
                secret: secret(),
            },
            conn: None,
            current: None,
            next_session: 1,
            events: Vec::new(),
            rejections: Vec::new(),
            refuse: false,
            lose_out: false,
            connects: 0,
        }
    }

    fn conn(&mut self, now: Instant, other: usize) -> &mut Connection {
        let (config, identity, next) = (&self.config, &self.identity, &mut self.next_session);
        self.conn.get_or_insert_with(|| {
            *next += 1;
            Connection::new(
                config.clone(),
                identity.clone(),
                *next - 1,
                Some(addr_of(other)),
                now,
            )
        })
    }

    fn delivered(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Delivered(m) => Some(number(m)),
                _ => None,
            })
            .collect()
    }

    fn acked(&self) -> Vec<MessageId> {
        self.events
            .iter()
            .flat_map(|e| match e {
                Event::Acked(ids) => ids.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn failed(&self) -> Vec<(MessageId, FailReason)> {
        self.events
            .iter()
            .flat_map(|e| match e {
                Event::Failed { ids, reason } => {
                    ids.iter().map(|id| (*id, reason.clone())).collect()
                }
                _ => Vec::new(),
            })
            .collect()
    }

    fn closes(&self) -> Vec<CloseReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Closed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

struct Pair {
    now: Instant,
    nodes: [Node; 2],
    links: Vec<SimLink>,
    /// Deliver writes in pieces of this size (exercises the decoder's splitting).
    chunk: usize,
    /// Makes every handshake nonce different (and the run deterministic).
    nonces: u64,
}

impl Pair {
    /// A pair that acknowledges at once, so the other rules' tests see acks without waiting;
    /// the delayed-ack tests use [`Pair::delayed`].
    fn new() -> Pair {
        Pair::with_configs(immediate_acks(), immediate_acks())
    }

    /// A pair with the default configuration (delayed acknowledgements).
    fn delayed() -> Pair {
        Pair::with_configs(Config::default(), Config::default())
    }

    fn with_configs(a: Config, b: Config) -> Pair {
        Pair {
            now: Instant::now(),
            nodes: [Node::new(A, 100, a), Node::new(B, 200, b)],
            links: Vec::new(),
            chunk: 7,
            nonces: 0,
        }
    }

    fn nonce(&mut self) -> Nonce {
        self.nonces += 1;
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&self.nonces.to_le_bytes());
        Nonce(bytes)
    }

    fn send(&mut self, from: usize, n: u64) -> Result<MessageId, SendError> {
        let now = self.now;
        let id = MessageId(n);
        self.nodes[from]
            .conn(now, 1 - from)
            .send(now, id, &message(n))
            .map(|()| id)
    }

    fn link_of(&self, node: usize, id: LinkId) -> Option<usize> {
        self.links
            .iter()
            .position(|l| matches!(l.ends[node], End::Attached(x) if x == id))
    }

    /// Delivers bytes written by `from` on link `li` to the other end.
    fn deliver(&mut self, li: usize, from: usize, bytes: &[u8]) {
        let to = 1 - from;
        let now = self.now;
        let chunk = self.chunk.max(1);
        let mut pieces = bytes.chunks(chunk);
        let serial = self.links[li].serial;
        let mut li = li;
        // While the receiving end is in its handshake, feed it piece by piece (a driver reads
        // the socket for the session's link once the handshake concludes).
        while let End::Incoming(incoming) = &mut self.links[li].ends[to] {
            let Some(piece) = pieces.next() else {
                return;
            };
            incoming.handle_input(now, piece);
            let done = incoming.is_done();
            self.service_incoming(li, to);
            match self.links.iter().position(|l| l.serial == serial) {
                Some(at) => li = at,
                None => return, // closed
            }
            if done && matches!(self.links[li].ends[to], End::Incoming(_)) {
                return;
            }
        }
        let conn = self.nodes[to]
            .conn
            .as_mut()
            .expect("attached end has a session");
        for piece in pieces {
            conn.handle_input(now, piece);
        }
    }

    /// Acts on the `Incoming` machine at `node`'s end of link `li`.
    fn service_incoming(&mut self, li: usize, node: usize) {
        let now = self.now;
        let End::Incoming(incoming) = &mut self.links[li].ends[node] else {
            return;
        };
        let reply = incoming.poll_transmit();
        let outcome = incoming.poll_outcome();
        if let Some(bytes) = reply {
            if !self.nodes[node].lose_out {
                self.deliver(li, node, &bytes);
            }
        }
        match outcome {
            None => {}
            Some(IncomingOutcome::Rejected(reason)) => {
                self.nodes[node].rejections.push(reason);
                self.close_link(li, "rejected");
            }
            Some(IncomingOutcome::Hello(hello)) => {
                let other = 1 - node;
                let nonce = self.nonce();
                let conn = self.nodes[node].conn(now, other);
                match conn.answer(&hello, nonce) {
                    Answer::Welcome(welcoming) => {
                        if let End::Incoming(incoming) = &mut self.links[li].ends[node] {
                            incoming.welcome(welcoming);
                        }
                        self.service_incoming(li, node);
                    }
                    Answer::Rejected { reply } => {
                        if !self.nodes[node].lose_out {
                            self.deliver(li, node, &reply);
                        }
                        self.close_link(li, "rejected");
                    }
                }
            }
            Some(IncomingOutcome::Authenticated(accepted)) => {
                let other = 1 - node;
                let conn = self.nodes[node].conn(now, other);
                match conn.attach(now, accepted) {
                    Attach::Attached { link, replaced } => {
                        self.links[li].ends[node] = End::Attached(link);
                        let old = self.nodes[node].current.replace(link);
                        if let (Some(old), Some(_)) = (old, replaced) {
                            if let Some(oi) = self.link_of(node, old) {
                                self.close_link(oi, "replaced");
                            }
                        }
                    }
                    Attach::Rejected { reply } => {
                        if !self.nodes[node].lose_out {
                            self.deliver(li, node, &reply);
                        }
                        self.close_link(li, "rejected duplicate");
                    }
                }
            }
        }
    }

    /// Removes a link; each attached end's session hears the socket closed.
    fn close_link(&mut self, li: usize, why: &str) {
        let link = self.links.remove(li);
        let now = self.now;
        for (node, end) in link.ends.iter().enumerate() {
            if let End::Attached(id) = end {
                if self.nodes[node].current == Some(*id) {
                    self.nodes[node].current = None;
                }
                if let Some(conn) = self.nodes[node].conn.as_mut() {
                    conn.link_lost(now, *id, why);
                }
            }
        }
    }

    /// Runs both drivers until nothing moves.
    fn drive(&mut self) {
        for _ in 0..100_000 {
            let mut progress = false;
            for node in [A, B] {
                progress |= self.step(node);
            }
            if !progress {
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    fn step(&mut self, node: usize) -> bool {
        let now = self.now;
        let other = 1 - node;
        let mut progress = false;
        let Some(conn) = self.nodes[node].conn.as_mut() else {
            return false;
        };
        // 1. Transmit.
        let mut writes = Vec::new();
        while let Some(bytes) = conn.poll_transmit() {
            writes.push(bytes);
        }
        // 2. Events.
        let mut events = Vec::new();
        while let Some(e) = conn.poll_event() {
            events.push(e);
        }
        // 3. Connect.
        let connect = conn.poll_connect();
        for bytes in writes {
            progress = true;
            let current = self.nodes[node].current;
            let li = current.and_then(|c| self.link_of(node, c));
            if let (Some(li), false) = (li, self.nodes[node].lose_out) {
                self.deliver(li, node, &bytes);
            }
        }
        for e in events {
            progress = true;
            if let Event::Closed { link, .. } = &e {
                if self.nodes[node].current == Some(*link) {
                    self.nodes[node].current = None;
                }
                if let Some(li) = self.link_of(node, *link) {
                    // Our socket closes: the peer sees end of file.
                    let removed = self.links.remove(li);
                    if let End::Attached(id) = removed.ends[other] {
                        if self.nodes[other].current == Some(id) {
                            self.nodes[other].current = None;
                        }
                        if let Some(c) = self.nodes[other].conn.as_mut() {
                            c.link_lost(now, id, "closed by peer");
                        }
                    }
                }
            }
            self.nodes[node].events.push(e);
        }
        if let Some(link) = connect {
            progress = true;
            self.nodes[node].connects += 1;
            let conn = self.nodes[node].conn.as_mut().expect("session exists");
            if self.nodes[other].refuse {
                conn.connect_failed(now, link, ConnectFailure::Refused);
            } else {
                let incoming = Incoming::new(&self.nodes[other].config, now);
                let mut ends = [End::Attached(link), End::Incoming(incoming)];
                if node == B {
                    ends.swap(0, 1);
                }
                let serial = self.nonces;
                self.links.push(SimLink { ends, serial });
                self.nodes[node].current = Some(link);
                let nonce = self.nonce();
                let conn = self.nodes[node].conn.as_mut().expect("session exists");
                conn.connected(now, link, nonce);
            }
        }
        progress
    }

    /// Moves the clock and fires every due timer, then drives.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        let now = self.now;
        for node in [A, B] {
            if let Some(conn) = self.nodes[node].conn.as_mut() {
                conn.handle_timeout(now);
            }
        }
        for li in (0..self.links.len()).rev() {
            for node in [A, B] {
                if li >= self.links.len() {
                    continue;
                }
                if let End::Incoming(incoming) = &mut self.links[li].ends[node] {
                    incoming.handle_timeout(now);
                    self.service_incoming(li, node);
                }
            }
        }
        self.drive();
    }

    /// The network breaks every link; bytes in flight are lost.
    fn break_links(&mut self) {
        while !self.links.is_empty() {
            self.close_link(0, "connection reset");
        }
        self.drive();
    }

    /// `node`'s process restarts with a new incarnation: its links die, its state is gone.
    fn restart(&mut self, node: usize, incarnation: u64) {
        let now = self.now;
        let other = 1 - node;
        while let Some(li) = self.links.iter().position(|_| true) {
            let link = self.links.remove(li);
            if let End::Attached(id) = link.ends[other] {
                if self.nodes[other].current == Some(id) {
                    self.nodes[other].current = None;
                }
                if let Some(c) = self.nodes[other].conn.as_mut() {
                    c.link_lost(now, id, "connection reset");
                }
            }
        }
        let n = &mut self.nodes[node];
        n.conn = None;
        n.current = None;
        n.identity.incarnation = SystemId::from_raw(incarnation);
        n.events.clear();
        self.drive();
    }
}

fn immediate_acks() -> Config {
    Config {
        ack_delay: Duration::ZERO,
        ..Config::default()
    }
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<MessageId> {
    range.map(MessageId).collect()
}

#[test]
fn handshake_then_data_and_ack() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    let a = &p.nodes[A];
    let b = &p.nodes[B];
    assert!(
        matches!(&a.events[0], Event::HandshakeDone { peer } if peer.incarnation == SystemId::from_raw(200))
    );
    assert!(matches!(&b.events[0], Event::HandshakeDone { peer }
        if peer.incarnation == SystemId::from_raw(100) && peer.listen == Some(addr_of(A))));
    assert_eq!(b.delivered(), vec![1]);
    assert_eq!(a.acked(), vec![MessageId(1)]);
    let m = b
        .events
        .iter()
        .find_map(|e| match e {
            Event::Delivered(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(m, message(1));
    assert_eq!(p.nodes[A].conn.as_ref().unwrap().queued(), 0);
    assert_eq!(p.nodes[A].connects, 1);
}

#[test]
fn many_messages_in_order_all_acknowledged() {
    let mut p = Pair::new();
    p.chunk = 1000;
    for n in 1..=500 {
        p.send(A, n).unwrap();
        if n % 37 == 0 {
            p.drive();
        }
    }
    p.drive();
    assert_eq!(p.nodes[B].delivered(), (1..=500).collect::<Vec<_>>());
    let mut acked = p.nodes[A].acked();
    acked.sort();
    assert_eq!(acked, ids(1..=500));
}

#[test]
fn the_connection_is_reused_in_both_directions() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    for n in 10..=12 {
        p.send(B, n).unwrap();
    }
    p.drive();
    assert_eq!(p.nodes[A].delivered(), vec![10, 11, 12]);
    assert_eq!(p.nodes[B].acked(), ids(10..=12));
    assert_eq!(p.nodes[B].connects, 0, "B answered over A's connection");
    assert_eq!(p.links.len(), 1);
}

#[test]
fn lost_data_is_retransmitted_in_order_after_reconnect() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    // 2..=4 are written but the network loses them, then the connection breaks.
    p.nodes[A].lose_out = true;
    for n in 2..=4 {
        p.send(A, n).unwrap();
    }
    p.drive();
    p.nodes[A].lose_out = false;
    p.break_links();
    // More messages while disconnected: they queue behind the unacknowledged ones.
    for n in 5..=6 {
        p.send(A, n).unwrap();
    }
    p.drive();
    assert_eq!(p.nodes[B].delivered(), vec![1]);
    // The back-off (20 ms) passes: reconnect, retransmit.
    p.advance(Duration::from_millis(20));
    assert_eq!(p.nodes[B].delivered(), vec![1, 2, 3, 4, 5, 6]);
    let mut acked = p.nodes[A].acked();
    acked.sort();
    assert_eq!(acked, ids(1..=6));
    assert_eq!(p.nodes[A].connects, 2);
    assert!(p.nodes[A]
        .closes()
        .iter()
        .any(|c| matches!(c, CloseReason::Lost(_))));
}

#[test]
fn lost_acks_cause_no_duplicate_delivery() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    // B delivers 2..=4 but its acks are lost.
    p.nodes[B].lose_out = true;
    for n in 2..=4 {
        p.send(A, n).unwrap();
    }
    p.drive();
    assert_eq!(p.nodes[B].delivered(), vec![1, 2, 3, 4]);
    assert_eq!(p.nodes[A].acked(), ids(1..=1));
    p.nodes[B].lose_out = false;
    p.break_links();
    p.send(A, 5).unwrap();
    p.advance(Duration::from_millis(20));
    assert_eq!(
        p.nodes[B].delivered(),
        vec![1, 2, 3, 4, 5],
        "each once, in order"
    );
    let mut acked = p.nodes[A].acked();
    acked.sort();
    assert_eq!(acked, ids(1..=5));
}

#[test]
fn backoff_grows_by_thespians_factor_and_resets() {
    let config = Config::default();
    let mut b = Backoff::new(&config);
    let delays: Vec<Duration> = (0..14).map(|_| b.step(&config)).collect();
    assert_eq!(delays[0], Duration::from_millis(20));
    assert_eq!(delays[1], Duration::from_millis(34));
    assert!(delays.windows(2).all(|w| w[1] >= w[0]));
    assert_eq!(*delays.last().unwrap(), Duration::from_millis(7329));
    b.reset(&config);
    assert_eq!(b.step(&config), Duration::from_millis(20));
}

#[test]
fn reconnect_attempts_back_off_until_the_peer_answers() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    // B's machine stops answering: every handshake times out.
    p.nodes[B].lose_out = true;
    // Nothing was queued when the link broke: the next send connects at once.
    p.break_links();
    p.send(A, 2).unwrap();
    p.drive();
    assert_eq!(p.nodes[A].connects, 2);
    let timeout = p.nodes[A].config.handshake_timeout;
    p.advance(timeout);
    assert!(p.nodes[A].closes().contains(&CloseReason::HandshakeTimeout));
    // First retry after 20 ms.
    p.advance(Duration::from_millis(19));
    assert_eq!(p.nodes[A].connects, 2);
    p.advance(Duration::from_millis(1));
    assert_eq!(p.nodes[A].connects, 3);
    // It times out too; the next retry waits the grown back-off (34 ms), not less.
    p.advance(timeout);
    p.advance(Duration::from_millis(33));
    assert_eq!(p.nodes[A].connects, 3);
    p.nodes[B].lose_out = false;
    p.advance(Duration::from_millis(1));
    assert_eq!(p.nodes[A].connects, 4);
    assert_eq!(p.nodes[B].delivered(), vec![1, 2]);
}

#[test]
fn full_queue_fails_the_send_at_once() {
    let config = Config {
        max_queued_messages: 3,
        ..immediate_acks()
    };
    let mut p = Pair::with_configs(config, immediate_acks());
    for n in 1..=3 {
        p.send(A, n).unwrap();
    }
    let err = p.send(A, 4).unwrap_err();
    assert!(
        matches!(err, SendError::QueueFull { messages: 3, .. }),
        "{err}"
    );
    // Once acknowledged, there is room again.
    p.drive();
    p.send(A, 4).unwrap();
    p.drive();
    assert_eq!(p.nodes[B].delivered(), vec![1, 2, 3, 4]);

    // The byte bound: room for one 100-byte message only.
    let config = Config {
        max_queued_bytes: 150,
        ..immediate_acks()
    };
    let mut conn = Connection::new(
        Arc::new(config),
        p.nodes[A].identity.clone(),
        9,
        Some(addr_of(B)),
        p.now,
    );
    let big = WireMessage {
        payload: Arc::from(vec![0u8; 100]),
        ..message(1)
    };
    conn.send(p.now, MessageId(1), &big).unwrap();
    assert!(matches!(
        conn.send(p.now, MessageId(2), &big),
        Err(SendError::QueueFull { messages: 1, .. })
    ));
}

#[test]
fn oversized_message_fails_at_the_sender() {
    let config = Config {
        max_frame: 100,
        ..immediate_acks()
    };
    let mut conn = Connection::new(
        Arc::new(config),
        LocalIdentity {
            incarnation: SystemId::from_raw(1),
            listen: None,
            secret: secret(),
        },
        1,
        Some(addr_of(B)),
        Instant::now(),
    );
    let big = WireMessage {
        payload: Arc::from(vec![0u8; 200]),
        ..message(1)
    };
    let err = conn.send(Instant::now(), MessageId(1), &big).unwrap_err();
    assert!(
        matches!(err, SendError::TooLarge { size, limit: 100 } if size > 200),
        "{err}"
    );
    assert_eq!(conn.queued(), 0);
    assert!(conn.poll_connect().is_none(), "nothing to send, no connect");
}

#[test]
fn the_peers_smaller_maximum_frame_applies() {
    let small = Config {
        max_frame: 100,
        ..immediate_acks()
    };
    let mut p = Pair::with_configs(immediate_acks(), small);
    let big = WireMessage {
        payload: Arc::from(vec![0u8; 500]),
        ..message(1)
    };
    // Queued before the handshake: fails when B's limit becomes known.
    let now = p.now;
    p.nodes[A]
        .conn(now, B)
        .send(now, MessageId(1), &big)
        .unwrap();
    p.send(A, 2).unwrap();
    p.drive();
    assert!(matches!(
        p.nodes[A].failed().as_slice(),
        [(MessageId(1), FailReason::TooLarge { limit: 100, .. })]
    ));
    assert_eq!(p.nodes[B].delivered(), vec![2]);
    // After the handshake the limit applies at once.
    let err = p.nodes[A]
        .conn(now, B)
        .send(now, MessageId(3), &big)
        .unwrap_err();
    assert!(matches!(err, SendError::TooLarge { limit: 100, .. }));
}

#[test]
fn the_peers_limit_applies_to_queued_messages_when_it_is_learnt() {
    let m = WireMessage {
        payload: Arc::from(vec![0u8; 300]),
        ..message(1)
    };
    // Sequence number 1 takes one byte of the ten the bound allows for: the frame body is the
    // bound less nine (the record's tag is not the frame's). The peer accepts one byte less.
    let body = wire::frame_body_bound(&m) - 9;
    let small = Config {
        max_frame: body - 1,
        ..immediate_acks()
    };
    let mut p = Pair::with_configs(immediate_acks(), small);
    let now = p.now;
    p.nodes[A].conn(now, B).send(now, MessageId(1), &m).unwrap();
    p.send(A, 2).unwrap();
    p.drive();
    assert!(matches!(
        p.nodes[A].failed().as_slice(),
        [(MessageId(1), FailReason::TooLarge { size, .. })] if *size == body
    ));
    assert_eq!(p.nodes[B].delivered(), vec![2]);
    assert!(
        p.nodes[B].closes().is_empty(),
        "no oversized frame reached B"
    );
}

#[test]
fn version_mismatch_is_a_clear_error_on_both_sides() {
    let newer = Config {
        protocol_version: PROTOCOL_VERSION + 1,
        ..immediate_acks()
    };
    let mut p = Pair::with_configs(immediate_acks(), newer);
    p.send(A, 1).unwrap();
    p.drive();
    // The acceptor (B) explains and closes.
    assert_eq!(p.nodes[B].rejections.len(), 1);
    let reason = &p.nodes[B].rejections[0];
    assert!(reason.contains("version"), "{reason}");
    // The initiator (A) reports the mismatch and fails the message: no hang, no retry.
    let expected = FailReason::VersionMismatch {
        ours: PROTOCOL_VERSION,
        theirs: PROTOCOL_VERSION + 1,
    };
    assert_eq!(p.nodes[A].failed(), vec![(MessageId(1), expected)]);
    assert!(p.nodes[A].closes().contains(&CloseReason::VersionMismatch {
        ours: PROTOCOL_VERSION,
        theirs: PROTOCOL_VERSION + 1
    }));
    assert!(p.links.is_empty());
    let conn = p.nodes[A].conn.as_ref().unwrap();
    assert_eq!(conn.poll_timeout(), None, "nothing left to wait for");

    // And the other way round: an older acceptor answers a newer initiator.
    let mut p = Pair::with_configs(
        Config {
            protocol_version: 7,
            ..immediate_acks()
        },
        Config::default(),
    );
    p.send(A, 1).unwrap();
    p.drive();
    assert!(p.nodes[B].rejections[0].contains("version 7"));
    assert!(matches!(
        p.nodes[A].failed().as_slice(),
        [(
            _,
            FailReason::VersionMismatch {
                ours: 7,
                theirs: PROTOCOL_VERSION
            }
        )]
    ));
}

#[test]
fn bad_magic_is_rejected_with_an_explanation() {
    let config = Config::default();
    let now = Instant::now();
    let mut incoming = Incoming::new(&config, now);
    let mut hs = encode_handshake(&Handshake::new(HandshakeKind::Hello {
        auth: thespian_auth::Hello {
            incarnation: 5,
            nonce: Nonce([0; 32]),
            suite: thespian_auth::Suite::Authenticated,
        },
        info: PeerInfo {
            incarnation: SystemId::from_raw(5),
            session: 1,
            listen: None,
            max_frame: 1000,
        },
    }));
    hs[4..8].copy_from_slice(b"NOPE");
    incoming.handle_input(now, &hs);
    let Some(IncomingOutcome::Rejected(reason)) = incoming.poll_outcome() else {
        panic!("not rejected");
    };
    assert!(reason.contains("magic"), "{reason}");
    let reply = incoming.poll_transmit().unwrap();
    let mut decoder = FrameDecoder::new(MAX_HANDSHAKE_FRAME);
    let body = decoder.decode(&mut &reply[..]).unwrap().unwrap();
    let answer = decode_handshake(&body, PROTOCOL_VERSION).unwrap();
    assert!(
        matches!(answer.kind, HandshakeKind::Reject { kind: RejectKind::Protocol, reason: r } if r.contains("magic"))
    );
}

#[test]
fn silent_or_oversized_first_frames_are_rejected() {
    let config = Config::default();
    let now = Instant::now();
    let mut silent = Incoming::new(&config, now);
    silent.handle_input(now, &[0, 0]);
    assert_eq!(
        silent.poll_timeout(),
        Some(now + config.first_frame_timeout)
    );
    silent.handle_timeout(now + config.first_frame_timeout);
    assert!(matches!(
        silent.poll_outcome(),
        Some(IncomingOutcome::Rejected(r)) if r.contains("no handshake")
    ));
    assert_eq!(silent.poll_timeout(), None);

    // A 4-byte prefix announcing 4 GiB: rejected at once, nothing buffered.
    let mut huge = Incoming::new(&config, now);
    huge.handle_input(now, &u32::MAX.to_be_bytes());
    assert!(matches!(
        huge.poll_outcome(),
        Some(IncomingOutcome::Rejected(r)) if r.contains("exceeds")
    ));

    // 2^40 as an 8-byte length: the first four bytes announce 256 bytes that never come.
    let mut wide = Incoming::new(&config, now);
    wide.handle_input(now, &(1u64 << 40).to_be_bytes());
    assert!(wide.poll_outcome().is_none());
    wide.handle_timeout(now + config.first_frame_timeout);
    assert!(matches!(
        wide.poll_outcome(),
        Some(IncomingOutcome::Rejected(_))
    ));
}

#[test]
fn a_restarted_peer_is_a_new_peer() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    // 2 reaches the old incarnation of B, but its ack is lost; then B restarts.
    p.nodes[B].lose_out = true;
    p.send(A, 2).unwrap();
    p.drive();
    assert_eq!(p.nodes[B].delivered(), vec![1, 2]);
    p.nodes[B].lose_out = false;
    p.restart(B, 201);
    // 3 was never transmitted: it goes to the new incarnation.
    p.send(A, 3).unwrap();
    p.advance(Duration::from_millis(20));
    let a = &p.nodes[A];
    assert!(a.events.contains(&Event::PeerRestarted {
        old: SystemId::from_raw(200),
        new: SystemId::from_raw(201)
    }));
    assert_eq!(a.failed(), vec![(MessageId(2), FailReason::PeerRestarted)]);
    assert!(FailReason::PeerRestarted.is_dead_target());
    assert_eq!(p.nodes[B].delivered(), vec![3]);
    assert_eq!(
        a.acked(),
        ids(1..=1)
            .into_iter()
            .chain([MessageId(3)])
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_restarted_initiator_starts_a_new_stream() {
    let mut p = Pair::new();
    for n in 1..=3 {
        p.send(A, n).unwrap();
    }
    p.drive();
    // A restarts: its new session numbers from 1 again; B must not take them for duplicates.
    p.restart(A, 101);
    for n in 4..=5 {
        p.send(A, n).unwrap();
    }
    p.drive();
    assert_eq!(p.nodes[B].delivered(), vec![1, 2, 3, 4, 5]);
    assert!(p.nodes[B].events.contains(&Event::PeerRestarted {
        old: SystemId::from_raw(100),
        new: SystemId::from_raw(101)
    }));
}

#[test]
fn idle_links_are_closed_and_reopened_on_demand() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    let idle = p.nodes[A].config.idle_timeout;
    let conn = p.nodes[A].conn.as_ref().unwrap();
    assert_eq!(conn.poll_timeout(), Some(conn.last_activity() + idle));
    p.advance(idle);
    assert!(p.nodes[A].closes().contains(&CloseReason::Idle));
    assert!(p.nodes[B].closes().iter().any(|c| matches!(
        c,
        CloseReason::PeerGoodbye(GoodbyeReason::Idle) | CloseReason::Idle
    )));
    assert!(p.links.is_empty());
    for node in [A, B] {
        let conn = p.nodes[node].conn.as_ref().unwrap();
        assert!(conn.is_quiescent());
        assert_eq!(conn.poll_timeout(), None);
    }
    // Sending again opens a new connection at once.
    p.send(A, 2).unwrap();
    p.drive();
    assert_eq!(p.nodes[B].delivered(), vec![1, 2]);
    assert_eq!(p.nodes[A].connects, 2);
}

#[test]
fn connection_refused_fails_every_queued_message_as_dead() {
    let mut p = Pair::new();
    p.nodes[B].refuse = true;
    for n in 1..=3 {
        p.send(A, n).unwrap();
    }
    p.drive();
    let failed = p.nodes[A].failed();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|(_, r)| *r == FailReason::Refused));
    assert!(failed[0].1.is_dead_target());
    assert!(p.nodes[A].closes().contains(&CloseReason::ConnectRefused));
    assert_eq!(p.nodes[A].conn.as_ref().unwrap().poll_timeout(), None);
    // The peer comes up: the next send connects at once.
    p.nodes[B].refuse = false;
    p.send(A, 4).unwrap();
    p.drive();
    assert_eq!(p.nodes[B].delivered(), vec![4]);
}

#[test]
fn unacknowledged_messages_time_out() {
    let config = Config {
        transmit_timeout: Duration::from_secs(2),
        ..immediate_acks()
    };
    let mut p = Pair::with_configs(config, immediate_acks());
    p.nodes[B].lose_out = true;
    p.send(A, 1).unwrap();
    p.drive();
    for _ in 0..30 {
        p.advance(Duration::from_millis(100));
    }
    assert_eq!(
        p.nodes[A].failed(),
        vec![(MessageId(1), FailReason::TimedOut)]
    );
    assert_eq!(p.nodes[A].conn.as_ref().unwrap().queued(), 0);
}

#[test]
fn simultaneous_connects_settle_on_one_link() {
    let mut p = Pair::new();
    // Both sides send before either has a connection.
    p.send(A, 1).unwrap();
    p.send(B, 2).unwrap();
    p.drive();
    p.advance(Duration::from_secs(1));
    assert_eq!(p.nodes[B].delivered(), vec![1]);
    assert_eq!(p.nodes[A].delivered(), vec![2]);
    assert_eq!(p.nodes[A].acked(), vec![MessageId(1)]);
    assert_eq!(p.nodes[B].acked(), vec![MessageId(2)]);
    assert_eq!(p.links.len(), 1, "one connection per peer");
    // The link kept is the one opened by the smaller incarnation (A).
    assert!(matches!(p.links[0].ends[A], End::Attached(_)));
    assert!(p.nodes[A].failed().is_empty() && p.nodes[B].failed().is_empty());
}

#[test]
fn the_acceptor_reconnects_to_the_initiators_listening_address() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    p.nodes[B].lose_out = true;
    p.send(B, 10).unwrap();
    p.drive();
    p.nodes[B].lose_out = false;
    p.break_links();
    p.advance(Duration::from_millis(20));
    assert_eq!(p.nodes[A].delivered(), vec![10]);
    assert_eq!(p.nodes[B].acked(), vec![MessageId(10)]);
    assert_eq!(p.nodes[B].connects, 1);
}

#[test]
fn close_says_goodbye_and_fails_the_queue() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    p.nodes[B].lose_out = true;
    p.send(A, 2).unwrap();
    p.drive();
    p.nodes[B].lose_out = false;
    let now = p.now;
    p.nodes[A].conn.as_mut().unwrap().close(now);
    p.drive();
    assert_eq!(
        p.nodes[A].failed(),
        vec![(MessageId(2), FailReason::Shutdown)]
    );
    assert!(p.nodes[B]
        .closes()
        .contains(&CloseReason::PeerGoodbye(GoodbyeReason::Shutdown)));
    assert_eq!(p.send(A, 3), Err(SendError::Closed));
}

/// The records `node` has to write now, each whole (prefix included), not delivered.
fn take_frames(p: &mut Pair, node: usize) -> Vec<Vec<u8>> {
    let conn = p.nodes[node].conn.as_mut().unwrap();
    let mut bytes = Vec::new();
    while let Some(b) = conn.poll_transmit() {
        bytes.extend_from_slice(&b);
    }
    let mut decoder = FrameDecoder::new(usize::MAX);
    let mut input = &bytes[..];
    let mut frames = Vec::new();
    while let Some(body) = decoder.decode(&mut input).unwrap() {
        let mut frame = Vec::new();
        frame::encode_frame(&mut frame, &body, usize::MAX).unwrap();
        frames.push(frame);
    }
    frames
}

/// Feeds `bytes` to `node`'s session and collects what it says (its output is dropped).
fn feed(p: &mut Pair, node: usize, bytes: &[u8]) -> Vec<Event> {
    let now = p.now;
    let conn = p.nodes[node].conn.as_mut().unwrap();
    conn.handle_input(now, bytes);
    let mut events = Vec::new();
    while let Some(e) = conn.poll_event() {
        events.push(e);
    }
    events
}

fn bad_frames(p: &Pair, node: usize) -> u64 {
    p.nodes[node].conn.as_ref().unwrap().stats().bad_frames
}

/// After a link was closed by a bad frame outside the harness: let the harness see it, and let
/// the session reconnect and retransmit.
fn settle(p: &mut Pair) {
    // The receiver's link is gone; the socket closes and the sender hears it.
    while let Some(li) = p.links.iter().position(|_| true) {
        p.close_link(li, "closed by peer");
    }
    p.drive();
    p.advance(Duration::from_millis(50));
}

#[test]
fn garbage_after_the_handshake_is_dropped_counted_and_closes_only_the_link() {
    let mut p = established_pair();
    let events = feed(&mut p, B, &[0, 0, 0, 3, 0xff, 0xff, 0xff]);
    // Not decoded, not answered (whoever sent it learns nothing), counted.
    assert!(p.nodes[B].conn.as_mut().unwrap().poll_transmit().is_none());
    assert!(matches!(
        events.as_slice(),
        [Event::Closed {
            reason: CloseReason::BadFrame,
            ..
        }]
    ));
    assert_eq!(bad_frames(&p, B), 1);
    // The session lives on: the next message is delivered on a new link.
    settle(&mut p);
    p.send(A, 2).unwrap();
    p.drive();
    assert_eq!(p.nodes[B].delivered(), vec![1, 2]);
    assert!(p.nodes[A].failed().is_empty());
}

#[test]
fn an_altered_frame_is_dropped_without_delivery_and_the_message_is_retransmitted() {
    let mut p = established_pair();
    p.send(A, 2).unwrap();
    let frames = take_frames(&mut p, A);
    assert_eq!(frames.len(), 1);
    let mut altered = frames[0].clone();
    let last_payload_byte = altered.len() - thespian_auth::TAG_LEN - 1;
    altered[last_payload_byte] ^= 0x01;
    let events = feed(&mut p, B, &altered);
    assert!(events.iter().all(|e| !matches!(
        e,
        Event::Delivered(_) | Event::PeerRestarted { .. } | Event::Failed { .. }
    )));
    assert_eq!(bad_frames(&p, B), 1);
    // Neither side retired the other or failed anything; the genuine frame goes again.
    settle(&mut p);
    assert_eq!(p.nodes[B].delivered(), vec![1, 2]);
    assert_eq!(p.nodes[A].acked(), ids(1..=2));
    assert!(p.nodes[A].failed().is_empty());
    for node in [A, B] {
        assert!(!p.nodes[node]
            .events
            .iter()
            .any(|e| matches!(e, Event::PeerRestarted { .. })));
    }
}

#[test]
fn a_changed_byte_anywhere_in_a_record_fails_the_whole_record() {
    // Two messages sent at once travel in one record; change each byte of it in turn.
    let mut p = established_pair();
    p.send(A, 2).unwrap();
    p.send(A, 3).unwrap();
    let records = take_frames(&mut p, A);
    assert_eq!(records.len(), 1, "one record for both messages");
    let record = &records[0];
    for at in 0..record.len() {
        let mut p = established_pair();
        let mut altered = record.clone();
        altered[at] ^= 0x20;
        let events = feed(&mut p, B, &altered);
        assert!(
            events.iter().all(|e| !matches!(e, Event::Delivered(_))),
            "byte {at}: nothing of the record is delivered"
        );
        if at >= HEADER_LEN {
            // The content or the tag: the record fails its check.
            assert_eq!(bad_frames(&p, B), 1, "byte {at}");
            assert!(events.iter().any(|e| matches!(
                e,
                Event::Closed {
                    reason: CloseReason::BadFrame,
                    ..
                }
            )));
        } else {
            // The prefix: a shorter record fails its check; a longer one waits for bytes that
            // never come (and the record deadline closes the link) or is refused as too long.
            assert!(bad_frames(&p, B) <= 1, "byte {at}");
        }
    }
}

#[test]
fn replayed_reordered_dropped_and_forged_frames_fail_authentication() {
    // Replayed: a genuine frame again.
    let mut p = established_pair();
    p.send(A, 2).unwrap();
    let frames = take_frames(&mut p, A);
    let events = feed(&mut p, B, &frames[0]);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Delivered(m) if number(m) == 2)));
    let events = feed(&mut p, B, &frames[0]);
    assert!(events.iter().all(|e| !matches!(e, Event::Delivered(_))));
    assert_eq!(bad_frames(&p, B), 1, "replay");

    // Reordered and dropped: the second record first, or the first one missing.
    for skip_first in [false, true] {
        let mut p = established_pair();
        p.send(A, 2).unwrap();
        let mut frames = take_frames(&mut p, A);
        p.send(A, 3).unwrap();
        frames.extend(take_frames(&mut p, A));
        assert_eq!(frames.len(), 2);
        let events = feed(&mut p, B, &frames[1]);
        assert!(events.iter().all(|e| !matches!(e, Event::Delivered(_))));
        assert_eq!(bad_frames(&p, B), 1, "skip_first={skip_first}");
        if !skip_first {
            // The first frame after the link closed goes nowhere either.
            let events = feed(&mut p, B, &frames[0]);
            assert!(events.is_empty());
        }
        settle(&mut p);
        assert_eq!(p.nodes[B].delivered(), vec![1, 2, 3]);
    }

    // Forged: a well-formed record of a control frame with a made-up tag.
    let mut p = established_pair();
    let goodbye = wire::encode_control(&Control::Goodbye {
        reason: GoodbyeReason::Shutdown,
    });
    let mut forged = ((goodbye.len() + thespian_auth::TAG_LEN) as u32)
        .to_be_bytes()
        .to_vec();
    forged.extend_from_slice(&goodbye);
    forged.extend_from_slice(&[0x5a; thespian_auth::TAG_LEN]);
    let events = feed(&mut p, B, &forged);
    assert!(matches!(
        events.as_slice(),
        [Event::Closed {
            reason: CloseReason::BadFrame,
            ..
        }]
    ));
    assert_eq!(bad_frames(&p, B), 1, "forged");
}

#[test]
fn a_wrong_secret_fails_fast_with_a_clear_error_on_both_sides() {
    for wrong in [A, B] {
        let mut p = Pair::new();
        p.nodes[wrong].identity.secret = other_secret();
        p.send(A, 1).unwrap();
        p.send(A, 2).unwrap();
        p.drive();
        // The initiator (A) finds the acceptor's proof wrong: it says so, closes, and fails its
        // queue with the reason; no retry.
        assert_eq!(
            p.nodes[A].failed(),
            vec![
                (MessageId(1), FailReason::AuthenticationFailed),
                (MessageId(2), FailReason::AuthenticationFailed)
            ]
        );
        assert_eq!(FailReason::AuthenticationFailed.to_string(), AUTH_FAILED);
        assert!(p.nodes[A]
            .closes()
            .contains(&CloseReason::AuthenticationFailed));
        // The acceptor (B) hears why.
        assert_eq!(p.nodes[B].rejections, vec![AUTH_FAILED.to_owned()]);
        assert!(p.nodes[B].delivered().is_empty());
        assert!(p.links.is_empty());
        assert_eq!(p.nodes[A].conn.as_ref().unwrap().poll_timeout(), None);
        // And the other way round: B sends to A.
        p.send(B, 3).unwrap();
        p.drive();
        assert_eq!(
            p.nodes[B].failed(),
            vec![(MessageId(3), FailReason::AuthenticationFailed)]
        );
        assert_eq!(p.nodes[A].rejections, vec![AUTH_FAILED.to_owned()]);
    }
}

/// A client that speaks the handshake, with or without the secret.
fn client_hello(secret: &Secret) -> (Initiator, Vec<u8>, PeerInfo) {
    let info = PeerInfo {
        incarnation: SystemId::from_raw(5),
        session: 1,
        listen: None,
        max_frame: 1 << 20,
    };
    let initiator = Initiator::new(
        secret,
        AUTH_PROTOCOL,
        5,
        Nonce([7; 32]),
        wire::peer_context(&info),
    );
    let hello = encode_handshake(&Handshake::new(HandshakeKind::Hello {
        auth: initiator.hello().clone(),
        info: info.clone(),
    }));
    (initiator, hello, info)
}

/// An acceptor's `Incoming` answered by a session of node B's identity.
fn answered(incoming: &mut Incoming, session: &Connection) -> Vec<u8> {
    let Some(IncomingOutcome::Hello(hello)) = incoming.poll_outcome() else {
        panic!("no hello");
    };
    let Answer::Welcome(welcoming) = session.answer(&hello, Nonce([8; 32])) else {
        panic!("not welcomed");
    };
    incoming.welcome(welcoming);
    incoming.poll_transmit().expect("a welcome")
}

fn acceptor_session() -> Connection {
    Connection::new(
        Arc::new(Config::default()),
        LocalIdentity {
            incarnation: SystemId::from_raw(200),
            listen: Some(addr_of(B)),
            secret: secret(),
        },
        1,
        None,
        Instant::now(),
    )
}

fn rejection(incoming: &mut Incoming) -> String {
    match incoming.poll_outcome() {
        Some(IncomingOutcome::Rejected(reason)) => reason,
        other => panic!("not rejected: {other:?}"),
    }
}

#[test]
fn a_client_without_the_secret_is_refused_after_its_confirm() {
    let config = Config::default();
    let now = Instant::now();
    let session = acceptor_session();
    let mut incoming = Incoming::new(&config, now);
    let (_, hello, _) = client_hello(&other_secret());
    incoming.handle_input(now, &hello);
    answered(&mut incoming, &session);
    // It cannot check our proof, so it makes one up, and sends a message after it.
    let mut confirm = encode_handshake(&Handshake::new(HandshakeKind::Confirm(
        thespian_auth::Confirm { proof: [0; 32] },
    )));
    confirm.extend_from_slice(&wire::encode_data(1, &message(1), 1 << 20).unwrap());
    incoming.handle_input(now, &confirm);
    assert_eq!(rejection(&mut incoming), AUTH_FAILED);
    let reply = incoming.poll_transmit().expect("a reject");
    let body = FrameDecoder::new(MAX_HANDSHAKE_FRAME)
        .decode(&mut &reply[..])
        .unwrap()
        .unwrap();
    assert!(matches!(
        decode_handshake(&body, PROTOCOL_VERSION).unwrap().kind,
        HandshakeKind::Reject { kind: RejectKind::Authentication, reason } if reason == AUTH_FAILED
    ));
    // Nothing else came out: no session was touched, nothing delivered.
    assert!(incoming.poll_outcome().is_none());
    assert!(incoming.poll_timeout().is_none());
}

#[test]
fn nothing_but_the_handshake_is_read_before_authentication() {
    let config = Config::default();
    let now = Instant::now();
    let session = acceptor_session();
    let data = wire::encode_data(1, &message(1), 1 << 20).unwrap();

    // Data right after the Hello.
    let mut incoming = Incoming::new(&config, now);
    let (_, hello, _) = client_hello(&secret());
    let mut bytes = hello.clone();
    bytes.extend_from_slice(&data);
    incoming.handle_input(now, &bytes);
    assert!(rejection(&mut incoming).contains("before the handshake"));

    // Data instead of the Confirm.
    let mut incoming = Incoming::new(&config, now);
    incoming.handle_input(now, &hello);
    answered(&mut incoming, &session);
    let mut sealed_looking = data.clone();
    sealed_looking.extend_from_slice(&[0; thespian_auth::TAG_LEN]);
    incoming.handle_input(now, &sealed_looking);
    let reason = rejection(&mut incoming);
    assert!(reason.contains("bad handshake"), "{reason}");

    // A frame larger than a handshake may be, instead of the Confirm.
    let mut incoming = Incoming::new(&config, now);
    incoming.handle_input(now, &hello);
    answered(&mut incoming, &session);
    incoming.handle_input(now, &((MAX_HANDSHAKE_FRAME + 1) as u32).to_be_bytes());
    assert!(rejection(&mut incoming).contains("exceeds"));

    // A second Hello instead of the Confirm.
    let mut incoming = Incoming::new(&config, now);
    incoming.handle_input(now, &hello);
    answered(&mut incoming, &session);
    incoming.handle_input(now, &hello);
    assert!(rejection(&mut incoming).contains("expected Confirm"));

    // Silence after the Welcome: the handshake timeout still applies.
    let mut incoming = Incoming::new(&config, now);
    incoming.handle_input(now, &hello);
    answered(&mut incoming, &session);
    assert_eq!(
        incoming.poll_timeout(),
        Some(now + config.handshake_timeout)
    );
    incoming.handle_timeout(now + config.handshake_timeout);
    assert!(rejection(&mut incoming).contains("no handshake"));

    // The genuine client, for contrast: authenticated, its message handed on.
    let mut incoming = Incoming::new(&config, now);
    let (initiator, hello, _) = client_hello(&secret());
    incoming.handle_input(now, &hello);
    let welcome = answered(&mut incoming, &session);
    let body = FrameDecoder::new(MAX_HANDSHAKE_FRAME)
        .decode(&mut &welcome[..])
        .unwrap()
        .unwrap();
    let HandshakeKind::Welcome { auth, info } =
        decode_handshake(&body, PROTOCOL_VERSION).unwrap().kind
    else {
        panic!("not a welcome");
    };
    let (confirm, keys) = initiator.finish(&auth, &wire::peer_context(&info)).unwrap();
    let mut bytes = encode_handshake(&Handshake::new(HandshakeKind::Confirm(confirm)));
    wire::seal(&mut bytes, &[&data], &keys.send, 0);
    incoming.handle_input(now, &bytes);
    let Some(IncomingOutcome::Authenticated(accepted)) = incoming.poll_outcome() else {
        panic!("not authenticated");
    };
    assert_eq!(
        accepted.rest.len(),
        HEADER_LEN + data.len() + thespian_auth::TAG_LEN
    );
}

#[test]
fn a_frame_in_progress_has_a_deadline() {
    let config = Config {
        frame_timeout: Duration::from_secs(5),
        frame_time_per_mib: Duration::from_secs(1),
        ..immediate_acks()
    };
    let mut p = Pair::with_configs(immediate_acks(), config);
    p.send(A, 1).unwrap();
    p.drive();
    let start = p.now;
    // A frame announcing 1000 bytes, then a byte a second: activity does not extend it.
    let mut events = feed(&mut p, B, &[0, 0, 3, 232, 0]);
    assert_eq!(
        p.nodes[B].conn.as_ref().unwrap().poll_timeout(),
        Some(start + Duration::from_secs(6)),
        "5 s plus 1 s for its (part of a) MiB"
    );
    for _ in 0..6 {
        p.now += Duration::from_secs(1);
        events.extend(feed(&mut p, B, &[0]));
        let now = p.now;
        let conn = p.nodes[B].conn.as_mut().unwrap();
        conn.handle_timeout(now);
        while let Some(e) = conn.poll_event() {
            events.push(e);
        }
    }
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Closed {
                reason: CloseReason::FrameTimeout,
                ..
            }
        )),
        "{events:?}"
    );
    assert_eq!(p.nodes[B].conn.as_ref().unwrap().stats().frame_timeouts, 1);
    assert_eq!(p.nodes[B].conn.as_ref().unwrap().buffered_input(), 0);
    // Whole frames keep the link open however long it lives.
    let mut p = Pair::with_configs(immediate_acks(), Config::default());
    for n in 1..=5 {
        p.send(A, n).unwrap();
        p.advance(Duration::from_secs(20));
    }
    assert_eq!(p.nodes[B].delivered(), vec![1, 2, 3, 4, 5]);
    assert!(!p.nodes[B].closes().contains(&CloseReason::FrameTimeout));
}

#[test]
fn an_old_peer_gets_the_version_error_it_always_got() {
    // Version 1's Hello: magic, version 1, then its own body. We can read the version.
    #[derive(serde::Serialize)]
    struct V1Hello {
        magic: [u8; 4],
        version: u16,
        kind: u32,
        info: PeerInfo,
    }
    let body = postcard::to_allocvec(&V1Hello {
        magic: wire::MAGIC,
        version: 1,
        kind: 0,
        info: PeerInfo {
            incarnation: SystemId::from_raw(5),
            session: 1,
            listen: None,
            max_frame: 1000,
        },
    })
    .unwrap();
    let mut frame = Vec::new();
    frame::encode_frame(&mut frame, &body, MAX_HANDSHAKE_FRAME).unwrap();
    let now = Instant::now();
    let mut incoming = Incoming::new(&Config::default(), now);
    incoming.handle_input(now, &frame);
    let reason = rejection(&mut incoming);
    assert!(
        reason.contains("this endpoint speaks version 2, you speak version 1"),
        "{reason}"
    );
    // And the Reject we send is readable by version 1: magic and version come first.
    let reply = incoming.poll_transmit().unwrap();
    let body = FrameDecoder::new(MAX_HANDSHAKE_FRAME)
        .decode(&mut &reply[..])
        .unwrap()
        .unwrap();
    assert_eq!(
        decode_handshake(&body, 1).unwrap_err(),
        WireError::VersionMismatch { ours: 1, theirs: 2 }
    );
}

fn established_pair() -> Pair {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Bytes from the network never panic the session machine, whatever state it is in.
    #[test]
    fn the_session_never_panics_on_arbitrary_bytes(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        handshaking in any::<bool>(),
    ) {
        let mut p = established_pair();
        let now = p.now;
        let conn = p.nodes[A].conn.as_mut().unwrap();
        if handshaking {
            let mut fresh = Connection::new(
                p.nodes[A].config.clone(), p.nodes[A].identity.clone(), 77, Some(addr_of(B)), now);
            fresh.send(now, MessageId(1), &message(1)).unwrap();
            let link = fresh.poll_connect().unwrap();
            fresh.connected(now, link, Nonce([9; 32]));
            *conn = fresh;
        }
        for chunk in &chunks {
            conn.handle_input(now, chunk);
            while conn.poll_transmit().is_some() {}
            while conn.poll_event().is_some() {}
        }
        conn.handle_timeout(now + Duration::from_secs(3600));
    }

    /// Same for the acceptor before its handshake.
    #[test]
    fn incoming_never_panics_on_arbitrary_bytes(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let config = Config::default();
        let now = Instant::now();
        let mut incoming = Incoming::new(&config, now);
        for chunk in &chunks {
            incoming.handle_input(now, chunk);
            let _ = incoming.poll_transmit();
            let _ = incoming.poll_outcome();
        }
    }

    /// Valid traffic split at random points still arrives whole and in order.
    #[test]
    fn any_chunking_delivers_everything_in_order(chunk in 1usize..200, count in 1u64..40) {
        let mut p = Pair::new();
        p.chunk = chunk;
        for n in 1..=count {
            p.send(A, n).unwrap();
        }
        p.drive();
        prop_assert_eq!(p.nodes[B].delivered(), (1..=count).collect::<Vec<_>>());
    }
}

/// An initiator session towards node B, with `config`, that has sent its `Hello` for one queued
/// message; returns the session and the link.
fn initiator_awaiting_welcome(config: Config, now: Instant) -> (Connection, LinkId) {
    let mut conn = Connection::new(
        Arc::new(config),
        LocalIdentity {
            incarnation: SystemId::from_raw(100),
            listen: Some(addr_of(A)),
            secret: secret(),
        },
        1,
        Some(addr_of(B)),
        now,
    );
    conn.send(now, MessageId(1), &message(1)).unwrap();
    let link = conn.poll_connect().expect("a connect");
    conn.connected(now, link, Nonce([3; 32]));
    assert!(conn.poll_transmit().is_some(), "a Hello");
    (conn, link)
}

fn reject_frame(kind: RejectKind, reason: &str) -> Vec<u8> {
    encode_handshake(&Handshake::new(HandshakeKind::Reject {
        kind,
        reason: reason.into(),
    }))
}

fn drain_events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

#[test]
fn an_overloaded_refusal_keeps_the_queue_and_reconnects_after_the_backoff() {
    let config = Config {
        transmit_timeout: Duration::from_secs(5),
        ..immediate_acks()
    };
    let backoff = config.backoff_min;
    let now = Instant::now();
    let (mut conn, _) = initiator_awaiting_welcome(config, now);
    conn.handle_input(
        now,
        &reject_frame(RejectKind::Overloaded, "busy\nFAKE LOG LINE"),
    );
    let events = drain_events(&mut conn);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Failed { .. })),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Closed { reason: CloseReason::Rejected(r), .. } if r.contains("overloaded"))));
    assert_eq!(conn.queued(), 1);
    // The existing back-off, then a new connect; refused again, and again, until the
    // message's transmit timeout: then it fails, saying why the peer never took it.
    assert_eq!(conn.poll_timeout(), Some(now + backoff));
    let mut attempts = 1;
    let failed = loop {
        let t = conn.poll_timeout().expect("a timer");
        assert!(t <= now + Duration::from_secs(5), "never failed");
        conn.handle_timeout(t);
        if let Some(link) = conn.poll_connect() {
            attempts += 1;
            conn.connected(t, link, Nonce([4; 32]));
            let _ = conn.poll_transmit();
            conn.handle_input(t, &reject_frame(RejectKind::Overloaded, "busy"));
        }
        let events = drain_events(&mut conn);
        if let Some(reason) = events.iter().find_map(|e| match e {
            Event::Failed { reason, .. } => Some(reason.clone()),
            _ => None,
        }) {
            assert_eq!(t, now + Duration::from_secs(5));
            break reason;
        }
    };
    assert!(attempts > 5, "{attempts}");
    let text = failed.to_string();
    assert!(text.contains("overloaded"), "{text}");
    assert!(!failed.is_dead_target());
}

#[test]
fn an_authentication_refusal_stays_final() {
    let now = Instant::now();
    let (mut conn, _) = initiator_awaiting_welcome(Config::default(), now);
    // Whatever text comes with it, the kind decides.
    conn.handle_input(now, &reject_frame(RejectKind::Authentication, "overloaded"));
    let events = drain_events(&mut conn);
    assert!(events.contains(&Event::Failed {
        ids: vec![MessageId(1)],
        reason: FailReason::AuthenticationFailed
    }));
    assert_eq!(conn.poll_timeout(), None);

    // A protocol refusal whose text says "overloaded" is not taken for one, and a peer
    // shutting down is not retried either.
    for kind in [RejectKind::Protocol, RejectKind::ShuttingDown] {
        let (mut conn, _) = initiator_awaiting_welcome(Config::default(), now);
        conn.handle_input(now, &reject_frame(kind, "overloaded"));
        let events = drain_events(&mut conn);
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Failed {
                reason: FailReason::Rejected { .. },
                ..
            }
        )));
        assert_eq!(conn.poll_timeout(), None);
    }
}

#[test]
fn a_silent_socket_goes_at_the_first_frame_deadline_a_talking_one_keeps_the_handshake_timeout() {
    let config = Config {
        first_frame_timeout: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(10),
        ..immediate_acks()
    };
    let now = Instant::now();
    let second = Duration::from_secs(1);

    // Silent (or trickling its first frame): rejected after one second, not ten.
    let mut silent = Incoming::new(&config, now);
    assert_eq!(silent.poll_timeout(), Some(now + second));
    silent.handle_timeout(now + second - Duration::from_millis(1));
    assert!(silent.poll_outcome().is_none());
    silent.handle_timeout(now + second);
    assert!(rejection(&mut silent).contains("first-frame timeout"));
    // Told as load shedding: a slow thespian peer retries.
    let told = decode_handshake(
        &silent.poll_transmit().expect("a reject")[HEADER_LEN..],
        PROTOCOL_VERSION,
    )
    .unwrap();
    assert!(matches!(
        told.kind,
        HandshakeKind::Reject {
            kind: RejectKind::Overloaded,
            ..
        }
    ));

    // A whole Hello in time: the rest of the handshake has the handshake timeout.
    let session = acceptor_session();
    let (_, hello, _) = client_hello(&secret());
    let mut talking = Incoming::new(&config, now);
    talking.handle_input(now + second / 2, &hello);
    let _welcome = answered(&mut talking, &session);
    assert_eq!(talking.poll_timeout(), Some(now + config.handshake_timeout));
    talking.handle_timeout(now + 5 * second);
    assert!(talking.poll_outcome().is_none());
    talking.handle_timeout(now + config.handshake_timeout);
    assert!(rejection(&mut talking).contains("handshake timeout"));
}

#[test]
fn a_welcome_from_a_system_listening_elsewhere_is_not_the_system_dialed() {
    // Whatever holds B's port relays the handshake to another system with the same secret,
    // which listens elsewhere (its Welcome says so, bound into the transcript).
    let elsewhere = SocketAddr::from(([10, 0, 0, 9], 4242));
    let mut p = Pair::new();
    p.nodes[B].identity.listen = Some(elsewhere);
    p.send(A, 1).unwrap();
    p.drive();
    let wrong = FailReason::WrongPeer {
        dialed: addr_of(B),
        listens: Some(elsewhere),
    };
    assert_eq!(p.nodes[A].failed(), vec![(MessageId(1), wrong.clone())]);
    let text = wrong.to_string();
    assert!(text.contains("not the system dialed"), "{text}");
    assert!(text.contains(&elsewhere.to_string()), "{text}");
    assert!(p.nodes[B].delivered().is_empty());
    assert_eq!(
        p.nodes[B].rejections.len(),
        1,
        "{:?}",
        p.nodes[B].rejections
    );
    // No retry.
    assert_eq!(p.nodes[A].conn.as_ref().unwrap().poll_timeout(), None);
}

#[test]
fn the_announced_listening_address_matches_the_one_dialed() {
    let dialed = SocketAddr::from(([127, 0, 0, 1], 5000));
    assert!(listens_at(Some(dialed), dialed));
    // Bound to every interface: only the port can be checked.
    assert!(listens_at(
        Some(SocketAddr::from(([0, 0, 0, 0], 5000))),
        dialed
    ));
    assert!(!listens_at(
        Some(SocketAddr::from(([127, 0, 0, 1], 5001))),
        dialed
    ));
    assert!(!listens_at(
        Some(SocketAddr::from(([127, 0, 0, 2], 5000))),
        dialed
    ));
    assert!(!listens_at(None, dialed));
}

/// Records `node` would write now (without delivering them).
fn records_pending(p: &mut Pair, node: usize) -> usize {
    take_frames(p, node).len()
}

#[test]
fn with_no_data_flowing_back_the_ack_waits_for_the_delay() {
    let mut p = Pair::delayed();
    p.send(A, 1).unwrap();
    p.drive();
    let delay = Config::default().ack_delay;
    p.send(A, 2).unwrap();
    p.drive();
    assert_eq!(p.nodes[B].delivered(), vec![1, 2]);
    let acked_before = p.nodes[A].acked();
    assert!(
        !acked_before.contains(&MessageId(2)),
        "no ack-only record before the delay"
    );
    let due = p.nodes[B].conn.as_ref().unwrap().poll_timeout().unwrap();
    assert!(due <= p.now + delay, "the delay is a timer of the machine");
    p.advance(delay);
    let mut acked = p.nodes[A].acked();
    acked.sort();
    assert_eq!(acked, ids(1..=2), "one cumulative ack after the delay");
}

/// A default pair where B has just received message 2 and owes its ack (no data flowed back).
fn pair_owing_an_ack() -> Pair {
    let mut p = Pair::delayed();
    p.send(A, 1).unwrap();
    p.drive();
    p.advance(Config::default().ack_delay);
    p.send(A, 2).unwrap();
    p.drive();
    assert!(!p.nodes[A].acked().contains(&MessageId(2)));
    p
}

#[test]
fn an_ack_rides_with_data_going_back_at_once() {
    // B answers: its one record carries the ack owed and the data, without waiting.
    let mut p = pair_owing_an_ack();
    p.send(B, 100).unwrap();
    assert_eq!(records_pending(&mut p, B), 1, "one record: ack and data");
    let mut p = pair_owing_an_ack();
    p.send(B, 100).unwrap();
    p.drive();
    assert!(p.nodes[A].acked().contains(&MessageId(2)));
    assert_eq!(p.nodes[A].delivered(), vec![100]);
}

#[test]
fn enough_frames_or_bytes_make_the_ack_due_at_once() {
    let config = Config {
        ack_frames: 4,
        ..Config::default()
    };
    let mut p = Pair::with_configs(Config::default(), config);
    p.send(A, 1).unwrap();
    p.drive();
    p.advance(Config::default().ack_delay);
    for n in 2..=4 {
        p.send(A, n).unwrap();
        p.drive();
    }
    assert!(
        !p.nodes[A].acked().contains(&MessageId(4)),
        "three frames wait"
    );
    p.send(A, 5).unwrap();
    p.drive();
    assert!(
        p.nodes[A].acked().contains(&MessageId(5)),
        "the fourth frame since the last ack is acknowledged at once"
    );

    let config = Config {
        ack_bytes: 1,
        ..Config::default()
    };
    let mut p = Pair::with_configs(Config::default(), config);
    p.send(A, 1).unwrap();
    p.drive();
    p.send(A, 2).unwrap();
    p.drive();
    assert_eq!(
        p.nodes[A].acked(),
        ids(1..=2),
        "past the byte threshold: at once"
    );
}

#[test]
fn queued_small_messages_go_out_as_one_record_and_a_lone_one_at_once() {
    // A lone message is written by the first transmit, with no timer to wait for.
    let mut p = pair_owing_an_ack();
    p.send(A, 3).unwrap();
    assert_eq!(records_pending(&mut p, A), 1);
    // Many queued messages: one record.
    let mut p = pair_owing_an_ack();
    for n in 3..=50 {
        p.send(A, n).unwrap();
    }
    assert_eq!(records_pending(&mut p, A), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the thresholds, the delay and the sender's window, a one-way stream never
    /// deadlocks: every message is delivered and acknowledged once the clock moves by the
    /// delay, and the sender never waits longer than the delay for room.
    #[test]
    fn delayed_acks_never_stall_the_senders_window(
        window in 1usize..8,
        ack_frames in 1usize..20,
        ack_bytes in 1usize..4096,
        delay_ms in 0u64..10,
        count in 1u64..60,
        chunk in 1usize..300,
    ) {
        let sender = Config { max_queued_messages: window, ..Config::default() };
        let receiver = Config {
            ack_frames,
            ack_bytes,
            ack_delay: Duration::from_millis(delay_ms),
            ..Config::default()
        };
        let mut p = Pair::with_configs(sender, receiver);
        p.chunk = chunk;
        let mut next = 1;
        let mut waited = Duration::ZERO;
        while next <= count {
            match p.send(A, next) {
                Ok(_) => {
                    next += 1;
                    waited = Duration::ZERO;
                }
                Err(SendError::QueueFull { .. }) => {
                    p.drive();
                    if p.send(A, next).is_ok() {
                        next += 1;
                        waited = Duration::ZERO;
                        continue;
                    }
                    prop_assert!(waited <= Duration::from_millis(delay_ms), "stalled past the delay");
                    p.advance(Duration::from_millis(1));
                    waited += Duration::from_millis(1);
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
        p.drive();
        p.advance(Duration::from_millis(delay_ms));
        prop_assert_eq!(p.nodes[B].delivered(), (1..=count).collect::<Vec<_>>());
        let mut acked = p.nodes[A].acked();
        acked.sort();
        prop_assert_eq!(acked, ids(1..=count));
        prop_assert_eq!(p.nodes[A].conn.as_ref().unwrap().queued(), 0);
    }
}
