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
}

impl Pair {
    fn new() -> Pair {
        Pair::with_configs(Config::default(), Config::default())
    }

    fn with_configs(a: Config, b: Config) -> Pair {
        Pair {
            now: Instant::now(),
            nodes: [Node::new(A, 100, a), Node::new(B, 200, b)],
            links: Vec::new(),
            chunk: 7,
        }
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
        match &mut self.links[li].ends[to] {
            End::Attached(_) => {
                let conn = self.nodes[to]
                    .conn
                    .as_mut()
                    .expect("attached end has a session");
                for piece in bytes.chunks(chunk) {
                    conn.handle_input(now, piece);
                }
            }
            End::Incoming(incoming) => {
                for piece in bytes.chunks(chunk) {
                    incoming.handle_input(now, piece);
                }
                self.service_incoming(li, to);
            }
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
            Some(IncomingOutcome::Hello(accepted)) => {
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
                self.links.push(SimLink { ends });
                self.nodes[node].current = Some(link);
                conn.connected(now, link);
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
        ..Config::default()
    };
    let mut p = Pair::with_configs(config, Config::default());
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
        ..Config::default()
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
        ..Config::default()
    };
    let mut conn = Connection::new(
        Arc::new(config),
        LocalIdentity {
            incarnation: SystemId::from_raw(1),
            listen: None,
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
        ..Config::default()
    };
    let mut p = Pair::with_configs(Config::default(), small);
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
fn version_mismatch_is_a_clear_error_on_both_sides() {
    let newer = Config {
        protocol_version: PROTOCOL_VERSION + 1,
        ..Config::default()
    };
    let mut p = Pair::with_configs(Config::default(), newer);
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
            ..Config::default()
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
    let mut hs = encode_handshake(&Handshake::new(HandshakeKind::Hello(PeerInfo {
        incarnation: SystemId::from_raw(5),
        session: 1,
        listen: None,
        max_frame: 1000,
    })));
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
    assert!(matches!(answer.kind, HandshakeKind::Reject { reason: r } if r.contains("magic")));
}

#[test]
fn silent_or_oversized_first_frames_are_rejected() {
    let config = Config::default();
    let now = Instant::now();
    let mut silent = Incoming::new(&config, now);
    silent.handle_input(now, &[0, 0]);
    assert_eq!(silent.poll_timeout(), Some(now + config.handshake_timeout));
    silent.handle_timeout(now + config.handshake_timeout);
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
    assert_eq!(wide.poll_outcome(), None);
    wide.handle_timeout(now + config.handshake_timeout);
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
        ..Config::default()
    };
    let mut p = Pair::with_configs(config, Config::default());
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

#[test]
fn garbage_after_the_handshake_closes_the_link_with_an_error_frame() {
    let mut p = Pair::new();
    p.send(A, 1).unwrap();
    p.drive();
    let now = p.now;
    let b = p.nodes[B].conn.as_mut().unwrap();
    b.handle_input(now, &[0, 0, 0, 3, 0xff, 0xff, 0xff]);
    let out = b.poll_transmit().expect("an error frame");
    let mut decoder = FrameDecoder::new(1 << 20);
    let body = decoder.decode(&mut &out[..]).unwrap().unwrap();
    assert!(matches!(wire::decode_frame(&body), Ok(Frame::Error { .. })));
    assert!(matches!(
        b.poll_event(),
        Some(Event::Closed {
            reason: CloseReason::Protocol(_),
            ..
        })
    ));
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
            fresh.connected(now, link);
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
