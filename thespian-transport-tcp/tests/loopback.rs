//! The mio driver over real loopback sockets (127.0.0.1, ephemeral ports).
//!
//! Every wait is a poll loop with a deadline; nothing sleeps to synchronise.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thespian_core::{ActorAddress, SystemId};
use thespian_transport_tcp::wire::{self, Handshake, HandshakeKind};
use thespian_transport_tcp::{
    CloseReason, EndpointConfig, EndpointEvent, Event, FailReason, MessageId, SendError,
    TcpEndpoint, WireMessage,
};

const DEADLINE: Duration = Duration::from_secs(20);

fn incarnation() -> SystemId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    SystemId::from_raw(0x7e57_0000 + NEXT.fetch_add(1, Ordering::Relaxed))
}

fn endpoint(tweak: impl FnOnce(&mut EndpointConfig)) -> (TcpEndpoint, SocketAddr) {
    let mut config = EndpointConfig::new(incarnation());
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
        HandshakeKind::Reject { reason } => reason,
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
