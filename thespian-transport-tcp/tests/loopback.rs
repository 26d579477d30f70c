//! The mio driver over real loopback sockets (127.0.0.1, ephemeral ports).
//!
//! Every wait is a poll loop with a deadline; nothing sleeps to synchronise.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thespian_auth::{Initiator, Nonce, SessionKeys};
use thespian_core::{ActorAddress, SystemId};
use thespian_transport_tcp::wire::{self, Handshake, HandshakeKind, PeerInfo};
use thespian_transport_tcp::{
    CloseReason, EndpointConfig, EndpointEvent, Event, FailReason, FrameDecoder, MessageId, Secret,
    SendError, TcpEndpoint, WireMessage, AUTH_FAILED,
};

const DEADLINE: Duration = Duration::from_secs(20);

fn incarnation() -> SystemId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    SystemId::from_raw(0x7e57_0000 + NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The secret of the system the test endpoints belong to.
fn secret() -> Secret {
    Secret::from_text(b"the secret of the loopback tests").unwrap()
}

fn other_secret() -> Secret {
    Secret::from_text(b"the secret of some other system").unwrap()
}

fn endpoint(tweak: impl FnOnce(&mut EndpointConfig)) -> (TcpEndpoint, SocketAddr) {
    let mut config = EndpointConfig::new(incarnation(), secret());
    tweak(&mut config);
    TcpEndpoint::bind(config).expect("bind 127.0.0.1:0")
}

fn message(n: u64, payload: Vec<u8>) -> WireMessage {
    WireMessage {
        sender: ActorAddress::new(SystemId::from_raw(1), n),
        target: ActorAddress::new(SystemId::from_raw(2), n),
        type_name: Arc::from("test.Bytes"),
        payload: Arc::from(payload),
    }
}

fn numbered(n: u64) -> WireMessage {
    message(n, n.to_be_bytes().to_vec())
}

fn number(m: &WireMessage) -> u64 {
    u64::from_be_bytes(m.payload[..8].try_into().unwrap())
}

/// Collected events of several endpoints driven from this thread.
struct Net {
    endpoints: Vec<TcpEndpoint>,
    events: Vec<Vec<EndpointEvent>>,
}

impl Net {
    fn new(endpoints: Vec<TcpEndpoint>) -> Net {
        let events = endpoints.iter().map(|_| Vec::new()).collect();
        Net { endpoints, events }
    }

    /// One short turn of every endpoint.
    fn pump(&mut self) {
        for (ep, events) in self.endpoints.iter_mut().zip(&mut self.events) {
            events.extend(ep.poll_events(Some(Duration::from_millis(1))).unwrap());
        }
    }

    /// Pumps until `done` holds; panics after the deadline.
    fn until(&mut self, what: &str, mut done: impl FnMut(&Net) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.pump();
        }
    }

    fn delivered(&self, ep: usize) -> impl Iterator<Item = &WireMessage> {
        self.events[ep].iter().filter_map(|e| match e {
            EndpointEvent::Peer {
                event: Event::Delivered(m),
                ..
            } => Some(m),
            _ => None,
        })
    }

    fn acked(&self, ep: usize) -> usize {
        self.events[ep]
            .iter()
            .map(|e| match e {
                EndpointEvent::Peer {
                    event: Event::Acked(ids),
                    ..
                } => ids.len(),
                _ => 0,
            })
            .sum()
    }

    fn failed(&self, ep: usize) -> Vec<(MessageId, FailReason)> {
        self.events[ep]
            .iter()
            .flat_map(|e| match e {
                EndpointEvent::Peer {
                    event: Event::Failed { ids, reason },
                    ..
                } => ids.iter().map(|id| (*id, reason.clone())).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn rejected(&self, ep: usize) -> Vec<String> {
        self.events[ep]
            .iter()
            .filter_map(|e| match e {
                EndpointEvent::Rejected { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    fn has(&self, ep: usize, pred: impl Fn(&Event) -> bool) -> bool {
        self.events[ep]
            .iter()
            .any(|e| matches!(e, EndpointEvent::Peer { event, .. } if pred(event)))
    }
}

#[test]
fn ten_thousand_messages_arrive_in_order() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    let total = 10_000u64;
    let mut next = 1;
    let mut full = 0;
    let deadline = Instant::now() + DEADLINE;
    while net.delivered(1).count() < total as usize || net.acked(0) < total as usize {
        assert!(Instant::now() < deadline, "timed out");
        // Send until the bounded queue pushes back, then let the endpoints work.
        while next <= total {
            match sender.send(b_addr, numbered(next)) {
                Ok(_) => next += 1,
                Err(SendError::QueueFull { .. }) => {
                    full += 1;
                    break;
                }
                Err(e) => panic!("send failed: {e}"),
            }
        }
        net.pump();
    }
    let got: Vec<u64> = net.delivered(1).map(number).collect();
    assert_eq!(got, (1..=total).collect::<Vec<_>>());
    assert!(net.failed(0).is_empty());
    assert!(full > 0, "the 1024-message bound pushed back at least once");
    assert_eq!(net.endpoints[0].open_sockets(), 1);
}

#[test]
fn fifty_megabyte_message_round_trip() {
    let (a, a_addr) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let payload: Vec<u8> = (0..50 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let a_sender = a.sender();
    let b_sender = b.sender();
    let mut net = Net::new(vec![a, b]);
    a_sender
        .send(b_addr, message(1, payload.clone()))
        .expect("50 MB is under the 64 MiB default");
    net.until("the message at b", |n| n.delivered(1).count() == 1);
    let echo = net.delivered(1).next().unwrap().clone();
    assert!(*echo.payload == *payload);
    // b answers over the same connection (keyed by a's announced listening address).
    b_sender.send(a_addr, echo).unwrap();
    net.until("the echo at a", |n| n.delivered(0).count() == 1);
    assert!(*net.delivered(0).next().unwrap().payload == *payload);
    net.until("both acknowledged", |n| n.acked(0) == 1 && n.acked(1) == 1);
    assert_eq!(net.endpoints[1].open_sockets(), 1, "one connection, reused");
}

/// Payloads of every size around the one from which a record writes a payload from its own
/// buffer, queued faster than the socket takes them: each arrives whole and in order, however
/// the vectored writes were cut.
#[test]
fn mixed_payload_sizes_arrive_whole_and_in_order() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    let sizes = [8, 4095, 4096, 4097, 70_000, 16, 300_000, 9, 65_536];
    let mut sent = Vec::new();
    for round in 0..24u64 {
        for (i, &size) in sizes.iter().enumerate() {
            let n = round * sizes.len() as u64 + i as u64;
            let mut payload = n.to_be_bytes().to_vec();
            payload.extend((8..size.max(8)).map(|b| (b as u64 ^ n) as u8));
            sender.send(b_addr, message(n, payload.clone())).unwrap();
            sent.push(payload);
        }
    }
    let total = sent.len();
    net.until("every message at b", |n| n.delivered(1).count() == total);
    let got: Vec<&[u8]> = net.delivered(1).map(|m| &m.payload[..]).collect();
    assert!(
        got.iter().zip(&sent).all(|(g, s)| g == s),
        "the payloads arrived as sent"
    );
    net.until("all acknowledged", |n| n.acked(0) == total);
    assert!(net.failed(0).is_empty());
}

fn read_all_with_timeout(mut client: TcpStream) -> Vec<u8> {
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut out = Vec::new();
    let _ = client.read_to_end(&mut out);
    out
}

fn reject_reason(reply: &[u8]) -> String {
    let mut decoder = thespian_transport_tcp::FrameDecoder::new(wire::MAX_HANDSHAKE_FRAME);
    let body = decoder
        .decode(&mut &reply[..])
        .unwrap()
        .expect("a whole reject frame");
    match wire::decode_handshake(&body, wire::PROTOCOL_VERSION)
        .unwrap()
        .kind
    {
        HandshakeKind::Reject { reason, .. } => reason,
        other => panic!("expected a reject, got {other:?}"),
    }
}

#[test]
fn bad_clients_are_closed_and_the_endpoint_keeps_serving() {
    let (server, server_addr) = endpoint(|c| {
        c.transport.handshake_timeout = Duration::from_millis(300);
    });
    let (good, _) = endpoint(|_| {});
    let good_sender = good.sender();
    let mut net = Net::new(vec![server, good]);

    // A client announcing 2^40 bytes (as 8 bytes; the 4-byte prefix reads 256) and then
    // silent: closed by the handshake timeout. It stays connected meanwhile.
    let mut wide = TcpStream::connect(server_addr).unwrap();
    wide.write_all(&(1u64 << 40).to_be_bytes()).unwrap();

    // Garbage (its first four bytes read as a 1.2 GB length).
    let mut garbage = TcpStream::connect(server_addr).unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // A well-framed handshake with the wrong magic.
    let mut bad_magic = TcpStream::connect(server_addr).unwrap();
    let mut hs = wire::encode_handshake(&Handshake::new(HandshakeKind::Reject {
        kind: wire::RejectKind::Protocol,
        reason: String::new(),
    }));
    hs[4..8].copy_from_slice(b"NOPE");
    bad_magic.write_all(&hs).unwrap();
    // A valid magic and version with a body that is not a handshake.
    let mut bad_body = TcpStream::connect(server_addr).unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&wire::MAGIC);
    body.push(wire::PROTOCOL_VERSION as u8);
    body.extend_from_slice(&[0xff; 12]);
    let mut frame = Vec::new();
    thespian_transport_tcp::frame::encode_frame(&mut frame, &body, 1024).unwrap();
    bad_body.write_all(&frame).unwrap();
    // A 4-byte length of 4 GiB.
    let mut huge = TcpStream::connect(server_addr).unwrap();
    huge.write_all(&u32::MAX.to_be_bytes()).unwrap();

    net.until("four immediate rejections", |n| n.rejected(0).len() >= 4);
    let reasons = net.rejected(0);
    assert!(reasons.iter().any(|r| r.contains("magic")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("exceeds")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("malformed")),
        "{reasons:?}"
    );

    // Each bad client got an explanation and then end of file.
    assert!(reject_reason(&read_all_with_timeout(garbage)).contains("exceeds"));
    assert!(reject_reason(&read_all_with_timeout(bad_magic)).contains("magic"));
    assert!(reject_reason(&read_all_with_timeout(huge)).contains("exceeds"));
    assert!(!reject_reason(&read_all_with_timeout(bad_body)).is_empty());

    // Meanwhile (the silent client still connected) a real peer is served.
    good_sender.send(server_addr, numbered(42)).unwrap();
    net.until("delivery from the good peer", |n| {
        n.delivered(0).count() == 1
    });
    assert_eq!(number(net.delivered(0).next().unwrap()), 42);
    net.until("the ack", |n| n.acked(1) == 1);

    // The silent client is closed by the handshake timeout.
    net.until("the silent client's rejection", |n| {
        n.rejected(0).len() >= 5
    });
    assert!(
        net.rejected(0)[4].contains("no handshake"),
        "{:?}",
        net.rejected(0)
    );
    wide.write_all(&[0; 4]).ok();
    let rest = read_all_with_timeout(wide);
    assert!(reject_reason(&rest).contains("no handshake"));
    assert_eq!(
        net.endpoints[0].open_sockets(),
        1,
        "only the good peer's socket"
    );
}

#[test]
fn connection_refused_is_reported_as_a_dead_target() {
    let vacant = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (a, _) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![a]);
    let id1 = sender.send(vacant, numbered(1)).unwrap();
    let id2 = sender.send(vacant, numbered(2)).unwrap();
    net.until("failures", |n| n.failed(0).len() == 2);
    let failed = net.failed(0);
    assert_eq!(
        failed,
        vec![(id1, FailReason::Refused), (id2, FailReason::Refused)]
    );
    assert!(failed[0].1.is_dead_target());
    assert_eq!(net.endpoints[0].open_sockets(), 0);
}

#[test]
fn a_restarted_peer_is_reconnected_and_reported() {
    let (a, _) = endpoint(|_| {});
    let (b1, b_addr) = endpoint(|_| {});
    let b1_incarnation = b1.incarnation();
    let sender = a.sender();
    let mut net = Net::new(vec![a, b1]);
    sender.send(b_addr, numbered(1)).unwrap();
    net.until("first delivery", |n| {
        n.delivered(1).count() == 1 && n.acked(0) == 1
    });

    // b restarts on the same port with a new incarnation.
    net.endpoints[1].close();
    let (b2, b2_addr) = endpoint(|c| c.bind = b_addr);
    assert_eq!(b2_addr, b_addr);
    let b2_incarnation = b2.incarnation();
    drop(std::mem::replace(&mut net.endpoints[1], b2));
    net.events[1].clear();
    net.until("a sees the old connection end", |n| {
        n.has(0, |e| matches!(e, Event::Closed { .. }))
    });

    sender.send(b_addr, numbered(2)).unwrap();
    net.until("delivery to the new incarnation", |n| {
        n.delivered(1).count() == 1 && n.acked(0) == 2
    });
    assert_eq!(number(net.delivered(1).next().unwrap()), 2);
    assert!(net.has(0, |e| *e
        == Event::PeerRestarted {
            old: b1_incarnation,
            new: b2_incarnation
        }));
}

#[test]
fn idle_connections_are_closed_and_reopened() {
    let (a, _) = endpoint(|c| c.transport.idle_timeout = Duration::from_millis(200));
    let (b, b_addr) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    sender.send(b_addr, numbered(1)).unwrap();
    net.until("delivery", |n| n.acked(0) == 1);
    net.until("idle close on both sides", |n| {
        n.endpoints[0].open_sockets() == 0 && n.endpoints[1].open_sockets() == 0
    });
    assert!(net.has(0, |e| matches!(
        e,
        Event::Closed {
            reason: CloseReason::Idle,
            ..
        }
    )));
    sender.send(b_addr, numbered(2)).unwrap();
    net.until("delivery after reopening", |n| n.delivered(1).count() == 2);
}

#[test]
fn senders_on_other_threads_keep_their_order() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let mut net = Net::new(vec![a, b]);
    let threads = 4u64;
    let per_thread = 500u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let sender = net.endpoints[0].sender();
            std::thread::spawn(move || {
                let deadline = Instant::now() + DEADLINE;
                let mut i = 0;
                while i < per_thread {
                    match sender.send(b_addr, numbered(t << 32 | i)) {
                        Ok(_) => i += 1,
                        Err(SendError::QueueFull { .. }) => {
                            assert!(Instant::now() < deadline, "queue never drained");
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    net.until("every message", |n| {
        n.delivered(1).count() == (threads * per_thread) as usize
    });
    for h in handles {
        h.join().unwrap();
    }
    let mut per: HashMap<u64, Vec<u64>> = HashMap::new();
    for m in net.delivered(1) {
        let n = number(m);
        per.entry(n >> 32).or_default().push(n & 0xffff_ffff);
    }
    for (_, seq) in per {
        assert_eq!(seq, (0..per_thread).collect::<Vec<_>>());
    }
}

#[test]
fn oversized_and_self_sends_are_handled_at_once() {
    let (a, a_addr) = endpoint(|c| c.transport.max_frame = 1024 * 1024);
    let sender = a.sender();
    let mut net = Net::new(vec![a]);
    let err = sender
        .send(a_addr, message(1, vec![0; 2 * 1024 * 1024]))
        .unwrap_err();
    assert!(
        matches!(err, SendError::TooLarge { limit, .. } if limit == 1024 * 1024),
        "{err}"
    );
    // A send to ourselves is delivered without a socket.
    sender.send(a_addr, numbered(5)).unwrap();
    net.until("self delivery", |n| {
        n.delivered(0).count() == 1 && n.acked(0) == 1
    });
    assert_eq!(net.endpoints[0].open_sockets(), 0);
    // After close, sends fail at once.
    net.endpoints[0].close();
    assert_eq!(sender.send(a_addr, numbered(6)), Err(SendError::Closed));
}

#[test]
fn simultaneous_connects_settle_on_one_connection() {
    let (a, a_addr) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let (a_sender, b_sender) = (a.sender(), b.sender());
    let mut net = Net::new(vec![a, b]);
    // Both send before either endpoint runs: both connect.
    for n in 1..=50 {
        a_sender.send(b_addr, numbered(n)).unwrap();
        b_sender.send(a_addr, numbered(1000 + n)).unwrap();
    }
    net.until("both streams delivered and acknowledged", |n| {
        n.delivered(0).count() == 50
            && n.delivered(1).count() == 50
            && n.acked(0) == 50
            && n.acked(1) == 50
    });
    let at_b: Vec<u64> = net.delivered(1).map(number).collect();
    let at_a: Vec<u64> = net.delivered(0).map(number).collect();
    assert_eq!(at_b, (1..=50).collect::<Vec<_>>());
    assert_eq!(at_a, (1001..=1050).collect::<Vec<_>>());
    assert!(net.failed(0).is_empty() && net.failed(1).is_empty());
    net.until("one connection left", |n| {
        n.endpoints[0].open_sockets() == 1 && n.endpoints[1].open_sockets() == 1
    });
}

#[test]
fn version_mismatch_between_endpoints_is_reported_on_both_sides() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|c| c.transport.protocol_version = wire::PROTOCOL_VERSION + 1);
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    let id = sender.send(b_addr, numbered(1)).unwrap();
    net.until("both sides report", |n| {
        !n.failed(0).is_empty() && !n.rejected(1).is_empty()
    });
    assert_eq!(
        net.failed(0),
        vec![(
            id,
            FailReason::VersionMismatch {
                ours: wire::PROTOCOL_VERSION,
                theirs: wire::PROTOCOL_VERSION + 1
            }
        )]
    );
    assert!(
        net.rejected(1)[0].contains("version"),
        "{:?}",
        net.rejected(1)
    );
    net.until("sockets closed", |n| {
        n.endpoints[0].open_sockets() == 0 && n.endpoints[1].open_sockets() == 0
    });
}

/// A raw client: reads one whole frame body from a non-blocking socket while pumping `net`.
fn read_frame(net: &mut Net, stream: &mut TcpStream, decoder: &mut FrameDecoder) -> Vec<u8> {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for a frame");
        net.pump();
        match stream.read(&mut buf) {
            Ok(0) => panic!("closed before a whole frame"),
            Ok(n) => {
                let mut input = &buf[..n];
                if let Some(body) = decoder.decode(&mut input).unwrap() {
                    assert!(input.is_empty(), "one frame at a time");
                    return body;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// A raw client's handshake with the endpoint `net.endpoints[0]` at `server`, holding `secret`:
/// the client's Hello, the server's Welcome; returns the initiator's verdict on the Welcome.
fn raw_handshake(
    net: &mut Net,
    server: SocketAddr,
    secret: &Secret,
) -> (
    TcpStream,
    Result<(thespian_auth::Confirm, SessionKeys), thespian_auth::AuthError>,
) {
    let mut stream = TcpStream::connect(server).unwrap();
    stream.set_nonblocking(true).unwrap();
    let info = PeerInfo {
        incarnation: incarnation(),
        session: 1,
        listen: None,
        max_frame: 1 << 20,
    };
    let initiator = Initiator::new(
        secret,
        wire::AUTH_PROTOCOL,
        info.incarnation.raw(),
        Nonce::random().unwrap(),
        wire::peer_context(&info),
    );
    let hello = wire::encode_handshake(&Handshake::new(HandshakeKind::Hello {
        auth: initiator.hello().clone(),
        info,
    }));
    write_all(net, &mut stream, &hello);
    let mut decoder = FrameDecoder::new(wire::MAX_HANDSHAKE_FRAME);
    let body = read_frame(net, &mut stream, &mut decoder);
    let kind = wire::decode_handshake(&body, wire::PROTOCOL_VERSION)
        .unwrap()
        .kind;
    let HandshakeKind::Welcome { auth, info } = kind else {
        panic!("not a welcome: {kind:?}");
    };
    let verdict = initiator.finish(&auth, &wire::peer_context(&info));
    (stream, verdict)
}

/// Writes everything to a non-blocking socket while pumping `net`.
fn write_all(net: &mut Net, stream: &mut TcpStream, mut bytes: &[u8]) {
    let deadline = Instant::now() + DEADLINE;
    while !bytes.is_empty() {
        assert!(Instant::now() < deadline, "timed out writing");
        match stream.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => net.pump(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Reads until end of file (or a reset) while pumping `net`; returns what was read.
fn read_to_close(net: &mut Net, stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "the endpoint never closed the connection"
        );
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => net.pump(),
            Err(_) => return out,
        }
    }
}

#[test]
fn a_wrong_secret_fails_fast_with_the_error_on_both_endpoints() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|c| c.secret = other_secret());
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    let started = Instant::now();
    let id = sender.send(b_addr, numbered(1)).unwrap();
    net.until("both sides report", |n| {
        !n.failed(0).is_empty() && !n.rejected(1).is_empty()
    });
    assert!(started.elapsed() < Duration::from_secs(5), "not a hang");
    assert_eq!(net.failed(0), vec![(id, FailReason::AuthenticationFailed)]);
    assert_eq!(net.rejected(1), vec![AUTH_FAILED.to_owned()]);
    assert!(net.delivered(1).next().is_none());
    // Neither the errors nor any debug output show the secret.
    let shown = format!("{:?} {:?}", net.events, net.endpoints);
    assert!(!shown.contains("loopback tests") && !shown.contains("other system"));
    let config = format!("{:?}", EndpointConfig::new(incarnation(), secret()));
    assert!(config.contains("Secret(<redacted>)"), "{config}");
    net.until("sockets closed", |n| {
        n.endpoints[0].open_sockets() == 0 && n.endpoints[1].open_sockets() == 0
    });
}

#[test]
fn a_raw_client_without_the_secret_gets_nothing_delivered() {
    let (server, server_addr) = endpoint(|_| {});
    let mut net = Net::new(vec![server]);
    let (mut stream, verdict) = raw_handshake(&mut net, server_addr, &other_secret());
    assert_eq!(verdict.unwrap_err(), thespian_auth::AuthError::WrongSecret);
    // It goes on regardless: a made-up Confirm and then messages, sealed or not.
    let mut bytes = wire::encode_handshake(&Handshake::new(HandshakeKind::Confirm(
        thespian_auth::Confirm { proof: [7; 32] },
    )));
    for n in 1..=3 {
        let target_is_anyone = message(n, b"obey me".to_vec());
        bytes.extend_from_slice(&wire::encode_data(n, &target_is_anyone, 1 << 20).unwrap());
        bytes.extend_from_slice(&[0; 16]);
    }
    write_all(&mut net, &mut stream, &bytes);
    let reply = read_to_close(&mut net, &mut stream);
    assert!(reject_reason(&reply).contains("authentication failed"));
    net.until("the rejection", |n| !n.rejected(0).is_empty());
    assert_eq!(net.rejected(0), vec![AUTH_FAILED.to_owned()]);
    assert!(net.delivered(0).next().is_none());
    assert_eq!(
        net.endpoints[0].sessions(),
        0,
        "no session for an unauthenticated peer"
    );
}

#[test]
fn a_frame_trickled_after_the_handshake_is_closed_by_its_deadline() {
    let (server, server_addr) = endpoint(|c| {
        c.transport.frame_timeout = Duration::from_millis(300);
        c.transport.frame_time_per_mib = Duration::ZERO;
    });
    let mut net = Net::new(vec![server]);
    let (mut stream, verdict) = raw_handshake(&mut net, server_addr, &secret());
    let (confirm, _keys) = verdict.unwrap();
    let mut bytes = wire::encode_handshake(&Handshake::new(HandshakeKind::Confirm(confirm)));
    // A frame announcing 1 MiB, of which a few bytes arrive.
    bytes.extend_from_slice(&(1u32 << 20).to_be_bytes());
    bytes.extend_from_slice(&[0; 3]);
    write_all(&mut net, &mut stream, &bytes);
    net.until("the link", |n| {
        n.has(0, |e| matches!(e, Event::HandshakeDone { .. }))
    });
    // Then a byte at a time, until the server closes the connection: the deadline counts
    // from the frame's first byte, however busy the trickle.
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 256];
    loop {
        assert!(
            Instant::now() < deadline,
            "the trickling frame was never closed"
        );
        net.pump();
        let timed_out = net.has(0, |e| {
            matches!(
                e,
                Event::Closed {
                    reason: CloseReason::FrameTimeout,
                    ..
                }
            )
        });
        let peer_closed = match stream.write(&[0]) {
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            Ok(_) => matches!(stream.read(&mut buf), Ok(0)),
        };
        if timed_out || peer_closed {
            break;
        }
    }
    net.until("the frame timeout", |n| {
        n.endpoints[0].stats().frame_timeouts == 1
    });
    assert!(net.delivered(0).next().is_none());
    net.until("the socket closed", |n| n.endpoints[0].open_sockets() == 0);
    assert_eq!(net.endpoints[0].stats().buffered, 0);
}

#[test]
fn eight_peers_announcing_64_mib_frames_stay_within_the_buffer_bound() {
    const BOUND: usize = 24 * 1024 * 1024;
    let (server, server_addr) = endpoint(|c| {
        c.max_buffered = BOUND;
        // Peers that stop halfway hold their room until their frame's deadline.
        c.transport.frame_timeout = Duration::from_secs(3);
        c.transport.frame_time_per_mib = Duration::ZERO;
    });
    let mut net = Net::new(vec![server]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..8 {
        let (mut stream, verdict) = raw_handshake(&mut net, server_addr, &secret());
        let (confirm, _keys) = verdict.unwrap();
        let mut bytes = wire::encode_handshake(&Handshake::new(HandshakeKind::Confirm(confirm)));
        bytes.extend_from_slice(&(64 * 1024 * 1024 - 1u32).to_be_bytes());
        write_all(&mut net, &mut stream, &bytes);
        // Each sends 16 MiB of its frame (128 MiB in all) from its own thread, for as long as
        // the server takes them.
        let stop = stop.clone();
        stream.set_nonblocking(false).unwrap();
        stream
            .set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        writers.push(std::thread::spawn(move || {
            let chunk = vec![0u8; 256 * 1024];
            let mut sent = 0usize;
            while sent < 16 * 1024 * 1024 && !stop.load(Ordering::Acquire) {
                match stream.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            stream
        }));
    }
    net.until("the bound reached and sockets held back", |n| {
        let stats = n.endpoints[0].stats();
        stats.parked > 0 && stats.buffered + 256 * 1024 > BOUND
    });
    for _ in 0..50 {
        net.pump();
    }
    let stats = net.endpoints[0].stats();
    assert_eq!(stats.max_buffered, BOUND);
    assert!(stats.buffered <= BOUND, "{stats:?}");
    assert!(stats.peak_buffered <= BOUND, "{stats:?}");
    // The peers stop (unread bytes still in the server's kernel buffers): their frames'
    // deadlines close them and free their room.
    stop.store(true, Ordering::Release);
    let streams: Vec<TcpStream> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    net.until("everything freed", |n| {
        let stats = n.endpoints[0].stats();
        stats.buffered == 0 && n.endpoints[0].open_sockets() == 0
    });
    let stats = net.endpoints[0].stats();
    assert!(stats.frame_timeouts >= 1, "{stats:?}");
    assert!(stats.peak_buffered <= BOUND, "{stats:?}");
    drop(streams);
}

#[test]
fn an_overloaded_endpoint_says_so_and_is_told_apart_from_other_refusals() {
    let (busy, busy_addr) = endpoint(|c| c.max_handshaking = 0);
    // An overloaded refusal is temporary: the sender retries until the transmit timeout.
    let (a, _) = endpoint(|c| c.transport.transmit_timeout = Duration::from_millis(500));
    let sender = a.sender();
    let mut net = Net::new(vec![a, busy]);
    let id = sender.send(busy_addr, numbered(1)).unwrap();
    net.until("the refusal", |n| !n.failed(0).is_empty());
    let failed = net.failed(0);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, id);
    let text = failed[0].1.to_string();
    assert!(text.contains("overloaded"), "{text}");
    assert!(!text.contains("not a thespian"), "{text}");
    assert!(!text.contains("authentication"), "{text}");
    assert!(net.endpoints[1].stats().overloaded > 1, "retried");

    // Something that is not a thespian peer at all is reported as such.
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let squatter_addr = squatter.local_addr().unwrap();
    let id = sender.send(squatter_addr, numbered(2)).unwrap();
    squatter.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut conn = loop {
        assert!(Instant::now() < deadline, "never connected");
        net.pump();
        if let Ok((conn, _)) = squatter.accept() {
            break conn;
        }
    };
    conn.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap();
    net.until("the protocol error", |n| n.failed(0).len() == 2);
    let (failed_id, reason) = net.failed(0)[1].clone();
    assert_eq!(failed_id, id);
    let text = reason.to_string();
    assert!(text.contains("not a thespian peer"), "{text}");
    assert!(!text.contains("overloaded"), "{text}");
}

#[test]
fn sockets_holding_every_handshake_slot_cannot_keep_a_peer_out() {
    // Slots held for long (the first-frame deadline is not what frees them here).
    let (server, server_addr) = endpoint(|c| {
        c.max_handshaking = 2;
        c.transport.handshake_timeout = Duration::from_secs(60);
        c.transport.first_frame_timeout = Duration::from_secs(60);
    });
    let (a, _) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![server, a]);
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(server_addr).unwrap())
        .collect();
    net.until("the silent sockets accepted", |n| {
        n.endpoints[0].open_sockets() == 2
    });
    sender.send(server_addr, numbered(7)).unwrap();
    net.until("the delivery", |n| n.delivered(0).count() == 1);
    assert!(net.failed(1).is_empty());
    // The oldest silent socket made room, told why.
    let reply = read_all_with_timeout(silent.into_iter().next().unwrap());
    let text = reject_reason(&reply);
    assert!(text.contains("overloaded"), "{text}");
    assert!(net.endpoints[0].stats().overloaded >= 1);
}

#[test]
fn warnings_about_rejected_strangers_are_rate_limited() {
    let (server, server_addr) = endpoint(|_| {});
    let mut net = Net::new(vec![server]);
    // Strangers each sending garbage (a 4 KiB reject text with newlines would be logged just
    // as often): each is rejected, and only the first few are logged one by one.
    let mut streams = Vec::new();
    for _ in 0..25 {
        let mut s = TcpStream::connect(server_addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        streams.push(s);
    }
    net.until("every rejection", |n| n.endpoints[0].stats().rejected == 25);
    assert_eq!(net.endpoints[0].stats().unlogged_rejections, 15);
    drop(streams);
}

/// A send on the thread that drives the endpoint writes no waker: the endpoint must send it
/// before its next wait. A fresh endpoint has no timer, so a wait that started with the send
/// still queued would last the whole timeout: the acknowledgement proves it went first.
#[test]
fn a_send_on_the_driving_thread_goes_out_before_the_next_wait() {
    let (mut a, _) = endpoint(|_| {});
    let (mut b, b_addr) = endpoint(|_| {});
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let receiver = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + DEADLINE;
            let mut delivered = Vec::new();
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                for event in b.poll_events(Some(Duration::from_millis(50))).unwrap() {
                    if let EndpointEvent::Peer {
                        event: Event::Delivered(m),
                        ..
                    } = event
                    {
                        delivered.push(number(&m));
                    }
                }
            }
            delivered
        })
    };
    // This thread drives `a` from now on.
    assert!(a.poll_events(Some(Duration::ZERO)).unwrap().is_empty());
    let id = a.sender().send(b_addr, numbered(7)).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut acked = false;
    while !acked {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the message never left");
        acked = a.poll_events(Some(left)).unwrap().iter().any(|e| {
            matches!(e, EndpointEvent::Peer { event: Event::Acked(ids), .. } if ids.contains(&id))
        });
    }
    stop.store(true, Ordering::Release);
    assert_eq!(receiver.join().unwrap(), vec![7]);
}

/// A peer's last record and its hang-up (no goodbye: the process died) that arrive before
/// one poll: reading stops at a short read only when no hang-up was reported, so the record is
/// delivered and the hang-up is seen, with no later event to prompt it.
#[test]
fn a_last_record_and_the_hang_up_behind_it_are_both_seen() {
    // No acknowledgement goes back within the test (writing one would draw a reset, a new
    // event): only the read can see the hang-up.
    let (a, _) = endpoint(|c| c.transport.ack_delay = 2 * DEADLINE);
    let (b, _) = endpoint(|_| {});
    let a_addr = a.local_addr();
    let b_sender = b.sender();
    let mut net = Net::new(vec![a, b]);
    b_sender.send(a_addr, numbered(1)).unwrap();
    net.until("the first message", |n| n.delivered(0).count() == 1);
    b_sender.send(a_addr, numbered(2)).unwrap();
    let mut b = net.endpoints.pop().unwrap();
    net.events.pop();
    // One turn writes the record (sends go out before the wait); dropping closes the socket.
    b.poll_events(Some(Duration::ZERO)).unwrap();
    drop(b);
    net.until("the record and the hang-up", |n| {
        n.delivered(0).count() == 2 && n.has(0, |e| matches!(e, Event::Closed { .. }))
    });
    assert_eq!(net.delivered(0).map(number).collect::<Vec<_>>(), [1, 2]);
}
