//! The mio driver over real loopback sockets (127.0.0.1, ephemeral ports), including a lossy
//! relay thread that drops, duplicates and reorders datagrams.
//!
//! Every wait is a poll loop with a deadline; nothing sleeps to synchronise (the relay delays
//! datagrams on purpose, to reorder them).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use thespian_core::{ActorAddress, SystemId};
use thespian_transport_udp::wire::datagram_bound;
use thespian_transport_udp::{
    Config, EndpointConfig, Event, MessageId, Secret, SendError, UdpEndpoint, UdpSender,
    UndeliverableReason, WireMessage, MAX_DATAGRAM, PROTOCOL_VERSION,
};

const DEADLINE: Duration = Duration::from_secs(20);

fn incarnation() -> SystemId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    SystemId::from_raw(0x7e57_0000 + NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The secret the tests' endpoints share (unless a test says otherwise).
fn secret() -> Secret {
    Secret::from_text(b"the loopback tests' shared secret").expect("long enough")
}

fn endpoint(tweak: impl FnOnce(&mut EndpointConfig)) -> (UdpEndpoint, SocketAddr) {
    let mut config = EndpointConfig::new(incarnation(), secret());
    tweak(&mut config);
    UdpEndpoint::bind(config).expect("bind 127.0.0.1:0")
}

/// Retry settings short enough for tests: a silent peer is given up after 10+20+40+50+50 ms.
fn fast(config: &mut EndpointConfig) {
    config.transport = Config {
        initial_rto: Duration::from_millis(10),
        min_rto: Duration::from_millis(10),
        max_rto: Duration::from_millis(50),
        backoff_factor: 2.0,
        max_retransmits: 4,
        ..Config::default()
    };
}

fn message(flow: u32, n: u64, payload_len: usize) -> WireMessage {
    let mut payload = flow.to_be_bytes().to_vec();
    payload.extend_from_slice(&n.to_be_bytes());
    payload.resize(payload_len.max(12), 0xa5);
    WireMessage {
        sender: ActorAddress::new(SystemId::from_raw(1), u64::from(flow)),
        target: ActorAddress::new(SystemId::from_raw(2), 1),
        type_name: Arc::from("test.Numbered"),
        payload: Arc::from(payload),
    }
}

fn numbered(flow: u32, n: u64) -> WireMessage {
    message(flow, n, 12)
}

fn flow_and_number(m: &WireMessage) -> (u32, u64) {
    (
        u32::from_be_bytes(m.payload[..4].try_into().unwrap()),
        u64::from_be_bytes(m.payload[4..12].try_into().unwrap()),
    )
}

/// Several endpoints driven from this thread, with their events collected.
struct Net {
    endpoints: Vec<UdpEndpoint>,
    events: Vec<Vec<Event>>,
}

impl Net {
    fn new(endpoints: Vec<UdpEndpoint>) -> Net {
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
    fn until(&mut self, what: &str, deadline: Duration, mut done: impl FnMut(&Net) -> bool) {
        let deadline = Instant::now() + deadline;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.pump();
        }
    }

    fn delivered(&self, ep: usize) -> Vec<(SocketAddr, u32, u64)> {
        self.events[ep]
            .iter()
            .filter_map(|e| match e {
                Event::Delivered { from, message } => {
                    let (flow, n) = flow_and_number(message);
                    Some((*from, flow, n))
                }
                _ => None,
            })
            .collect()
    }

    fn acked(&self, ep: usize) -> HashSet<MessageId> {
        self.events[ep]
            .iter()
            .flat_map(|e| match e {
                Event::Acked { ids, .. } => ids.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn failed(&self, ep: usize) -> HashMap<MessageId, UndeliverableReason> {
        self.events[ep]
            .iter()
            .filter_map(|e| match e {
                Event::Undeliverable { id, reason, .. } => Some((*id, reason.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Sends `count` numbered messages of `flow` through `sender`, pumping `net` while the window
/// is full; returns the ids in order.
fn send_all(
    net: &mut Net,
    sender: &UdpSender,
    to: SocketAddr,
    flow: u32,
    count: u64,
) -> Vec<MessageId> {
    let deadline = Instant::now() + DEADLINE;
    let mut ids = Vec::new();
    let mut n = 1;
    while n <= count {
        match sender.send(to, numbered(flow, n)) {
            Ok(id) => {
                ids.push(id);
                n += 1;
            }
            Err(SendError::WindowFull { .. }) => {
                assert!(Instant::now() < deadline, "window never opened");
                net.pump();
            }
            Err(e) => panic!("send failed: {e}"),
        }
    }
    ids
}

#[test]
fn the_sender_handle_is_cloneable_and_thread_safe() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<UdpSender>();
    fn send<T: Send>() {}
    send::<UdpEndpoint>();
}

#[test]
fn ten_thousand_messages_arrive_in_order() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    let total = 10_000;
    let ids = send_all(&mut net, &sender, b_addr, 0, total);
    net.until("10,000 acknowledgements", DEADLINE, |net| {
        net.acked(0).len() + net.failed(0).len() == total as usize
    });
    assert!(net.failed(0).is_empty(), "{:?}", net.failed(0));
    assert_eq!(net.acked(0), ids.into_iter().collect());
    let got: Vec<u64> = net.delivered(1).iter().map(|d| d.2).collect();
    assert_eq!(got, (1..=total).collect::<Vec<_>>());
}

#[test]
fn an_oversized_message_fails_at_the_sender_naming_the_limit() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    let err = sender
        .send(b_addr, message(0, 1, MAX_DATAGRAM))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::TooLarge {
                limit: MAX_DATAGRAM,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("65000"), "{err}");
    // The largest message that fits crosses real loopback whole.
    let probe = message(0, 1, 1000);
    let header = datagram_bound(&probe) - probe.payload.len();
    let largest = message(0, 1, MAX_DATAGRAM - header);
    assert_eq!(datagram_bound(&largest), MAX_DATAGRAM);
    sender.send(b_addr, largest.clone()).unwrap();
    net.until("the largest message", DEADLINE, |net| {
        net.acked(0).len() == 1
    });
    let got: Vec<&WireMessage> = net.events[1]
        .iter()
        .filter_map(|e| match e {
            Event::Delivered { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![&largest]);
}

#[test]
fn a_port_where_nothing_listens_ends_as_undeliverable() {
    let (a, a_addr) = endpoint(fast);
    let (b, b_addr) = endpoint(|_| {});
    // A port that was bound a moment ago and is now closed: ICMP port unreachable.
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap();
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    let ids: Vec<MessageId> = (1..=3)
        .map(|n| sender.send(nobody, numbered(0, n)).unwrap())
        .collect();
    net.until(
        "the messages to be given up",
        Duration::from_secs(5),
        |net| net.failed(0).len() == 3,
    );
    let failed = net.failed(0);
    for id in &ids {
        let reason = &failed[id];
        if cfg!(target_os = "linux") {
            // The ICMP error names the destination: given up at once, not after retries.
            assert!(
                matches!(
                    reason,
                    UndeliverableReason::PortUnreachable | UndeliverableReason::DeadAddress
                ),
                "{reason:?}"
            );
        } else {
            assert!(
                matches!(
                    reason,
                    UndeliverableReason::RetriesExhausted { transmissions: 5 }
                        | UndeliverableReason::DeadAddress
                ),
                "{reason:?}"
            );
        }
    }
    // A flood to it now fails at once.
    for n in 4..=100 {
        sender.send(nobody, numbered(0, n)).unwrap();
    }
    net.until("the flood to be refused", Duration::from_secs(1), |net| {
        net.failed(0).len() == 100
    });
    assert!(
        net.failed(0)
            .values()
            .filter(|r| **r == UndeliverableReason::DeadAddress)
            .count()
            == 97
    );
    // The ICMP errors did not disturb the endpoint: it still talks to a live peer, both ways.
    sender.send(b_addr, numbered(1, 1)).unwrap();
    net.endpoints[1]
        .sender()
        .send(a_addr, numbered(2, 1))
        .unwrap();
    net.until("live traffic", DEADLINE, |net| {
        net.delivered(0).len() == 1 && net.delivered(1).len() == 1
    });
}

#[test]
fn a_refused_destination_inside_a_batch_loses_nothing_else() {
    let (a, _) = endpoint(fast);
    let (b, b_addr) = endpoint(|_| {});
    let (c, c_addr) = endpoint(|_| {});
    let (d, d_addr) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![a, b, c, d]);
    // Sessions with all three first.
    for (flow, to) in [(0, b_addr), (1, c_addr), (2, d_addr)] {
        sender.send(to, numbered(flow, 1)).unwrap();
    }
    net.until("the sessions", DEADLINE, |net| net.acked(0).len() == 3);
    // c goes away: its port now answers with ICMP port unreachable.
    drop(net.endpoints.remove(2));
    net.events.remove(2);
    // Queued before the next turn, so they go in one send batch: b's datagram, then c's
    // (refused), then d's.
    let mut live = Vec::new();
    let mut refused = Vec::new();
    for n in 2..=6 {
        live.push(sender.send(b_addr, numbered(0, n)).unwrap());
        refused.push(sender.send(c_addr, numbered(1, n)).unwrap());
        live.push(sender.send(d_addr, numbered(2, n)).unwrap());
    }
    net.until("every message settled", DEADLINE, |net| {
        net.acked(0).len() + net.failed(0).len() == 3 + 15
    });
    let failed = net.failed(0);
    assert_eq!(
        failed.keys().copied().collect::<HashSet<_>>(),
        refused.iter().copied().collect::<HashSet<_>>()
    );
    if cfg!(target_os = "linux") {
        // Named by the error queue, not found out by the retries.
        assert!(
            failed
                .values()
                .all(|r| *r == UndeliverableReason::PortUnreachable),
            "{failed:?}"
        );
    }
    assert!(live.iter().all(|id| net.acked(0).contains(id)));
    for (ep, flow) in [(1, 0), (2, 2)] {
        let got: Vec<u64> = net
            .delivered(ep)
            .iter()
            .filter(|d| d.1 == flow)
            .map(|d| d.2)
            .collect();
        assert_eq!(got, (1..=6).collect::<Vec<_>>());
    }
}

#[test]
fn senders_on_other_threads_keep_their_order() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let per_thread = 500;
    let threads = 4;
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<JoinHandle<()>> = (0..threads)
        .map(|flow| {
            let sender = a.sender();
            let done = done.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + DEADLINE;
                let mut n = 1;
                while n <= per_thread {
                    match sender.send(b_addr, numbered(flow, n)) {
                        Ok(_) => n += 1,
                        Err(SendError::WindowFull { .. }) => {
                            assert!(Instant::now() < deadline, "window never opened");
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                done.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    let mut net = Net::new(vec![a, b]);
    let total = (per_thread * u64::from(threads)) as usize;
    net.until("every thread's messages", DEADLINE, |net| {
        net.acked(0).len() == total
    });
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(done.load(Ordering::Acquire), u64::from(threads));
    let delivered = net.delivered(1);
    for flow in 0..threads {
        let got: Vec<u64> = delivered
            .iter()
            .filter(|d| d.1 == flow)
            .map(|d| d.2)
            .collect();
        assert_eq!(got, (1..=per_thread).collect::<Vec<_>>(), "thread {flow}");
    }
}

#[test]
fn a_version_mismatch_is_reported_at_once() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|c| c.transport.protocol_version = PROTOCOL_VERSION + 1);
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    let id = sender.send(b_addr, numbered(0, 1)).unwrap();
    net.until("the mismatch", Duration::from_secs(2), |net| {
        !net.failed(0).is_empty()
    });
    assert_eq!(
        net.failed(0)[&id],
        UndeliverableReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: PROTOCOL_VERSION + 1
        }
    );
    assert!(net.delivered(1).is_empty());
}

#[test]
fn a_restarted_peer_at_the_same_port_is_a_new_peer() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    sender.send(b_addr, numbered(0, 1)).unwrap();
    net.until("the first message", DEADLINE, |net| net.acked(0).len() == 1);
    // B restarts on its port before anything else is sent: a message meant for the incarnation
    // the sender knew reaches the new one, which refuses it, and the restart is seen.
    let mut old_b = net.endpoints.pop().unwrap();
    let old_incarnation = old_b.incarnation();
    let _ = old_b.close();
    drop(old_b);
    let (new_b, _) = endpoint(|c| c.bind = b_addr);
    let new_incarnation = new_b.incarnation();
    net.endpoints.push(new_b);
    net.events[1].clear();
    let lost = sender.send(b_addr, numbered(0, 2)).unwrap();
    net.until("the restart to be noticed", DEADLINE, |net| {
        net.failed(0).contains_key(&lost)
    });
    assert_eq!(
        net.failed(0)[&lost],
        UndeliverableReason::PeerRestarted {
            old: old_incarnation,
            new: new_incarnation
        }
    );
    assert!(net.events[0].contains(&Event::PeerRestarted {
        peer: b_addr,
        old: old_incarnation,
        new: new_incarnation
    }));
    sender.send(b_addr, numbered(0, 3)).unwrap();
    net.until("delivery to the new incarnation", DEADLINE, |net| {
        !net.delivered(1).is_empty()
    });
    assert_eq!(
        net.delivered(1).iter().map(|d| d.2).collect::<Vec<_>>(),
        vec![3]
    );
}

#[test]
fn a_revived_address_reaches_the_process_that_took_the_port() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    sender.send(b_addr, numbered(0, 1)).unwrap();
    net.until("the first message", DEADLINE, |net| net.acked(0).len() == 1);
    // B goes away; a message sent while nobody listens is refused (on Linux the ICMP error
    // says so at once; elsewhere the retries end it), and the address is remembered as dead.
    let mut old_b = net.endpoints.pop().unwrap();
    let _ = old_b.close();
    drop(old_b);
    let refused = sender.send(b_addr, numbered(0, 2)).unwrap();
    net.until("the refusal", Duration::from_secs(10), |net| {
        net.failed(0).contains_key(&refused)
    });
    if cfg!(target_os = "linux") {
        assert!(net.failed(0)[&refused].is_dead_target());
    }
    // A new endpoint takes the port, and whoever knows of it revives the address: the very
    // next message reaches it.
    let (new_b, _) = endpoint(|c| c.bind = b_addr);
    net.endpoints.push(new_b);
    net.events[1].clear();
    sender.revive(b_addr).unwrap();
    let first = sender.send(b_addr, numbered(0, 3)).unwrap();
    net.until("delivery to the new endpoint", DEADLINE, |net| {
        net.acked(0).contains(&first)
    });
    assert_eq!(
        net.delivered(1).iter().map(|d| d.2).collect::<Vec<_>>(),
        vec![3]
    );
    assert!(!net.failed(0).contains_key(&first));
}

// ---------------------------------------------------------------------------------------------
// The lossy relay.

/// splitmix64, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct RelayStats {
    forwarded: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
}

/// A UDP forwarder between endpoint `a` and endpoint `b`: `a` talks to `front`, `b` to `back`.
/// It drops, duplicates and delays (reorders) `percent` % of datagrams each, with a fixed seed.
/// Dropping it stops and joins its thread.
/// Where a relay stands in for the endpoint at `peer`: another loopback address (127.0.0.`n`,
/// Linux answers on all of 127/8) with `peer`'s port, since the port a peer is reached at is
/// bound into the handshake and must be the one it is bound to.
fn stand_in(n: u8, peer: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], peer.port()))
}

struct Relay {
    front: SocketAddr,
    back: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<RelayStats>>,
}

const FRONT: Token = Token(0);
const BACK: Token = Token(1);
const STOP: Token = Token(2);

impl Relay {
    fn start(seed: u64, percent: u64, a: SocketAddr, b: SocketAddr) -> Relay {
        let poll = Poll::new().unwrap();
        let mut front = UdpSocket::bind(stand_in(2, b)).unwrap();
        let mut back = UdpSocket::bind(stand_in(3, a)).unwrap();
        poll.registry()
            .register(&mut front, FRONT, Interest::READABLE)
            .unwrap();
        poll.registry()
            .register(&mut back, BACK, Interest::READABLE)
            .unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), STOP).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let (front_addr, back_addr) = (front.local_addr().unwrap(), back.local_addr().unwrap());
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                relay_loop(poll, front, back, a, b, Rng(seed), percent, &stop)
            })
        };
        Relay {
            front: front_addr,
            back: back_addr,
            stop,
            waker,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> RelayStats {
        self.stop_and_join().expect("relay thread")
    }

    fn stop_and_join(&mut self) -> Option<RelayStats> {
        self.stop.store(true, Ordering::Release);
        self.waker.wake().unwrap();
        self.thread
            .take()
            .map(|t| t.join().expect("relay thread panicked"))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop_and_join();
        } else {
            self.stop.store(true, Ordering::Release);
            let _ = self.waker.wake();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn relay_loop(
    mut poll: Poll,
    front: UdpSocket,
    back: UdpSocket,
    a: SocketAddr,
    b: SocketAddr,
    mut rng: Rng,
    percent: u64,
    stop: &AtomicBool,
) -> RelayStats {
    let mut stats = RelayStats::default();
    let mut events = Events::with_capacity(16);
    let mut buf = vec![0u8; 65_536];
    // Delayed datagrams: (release time, order) -> (to b?, bytes).
    let mut delayed: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut held: HashMap<u64, (bool, Vec<u8>)> = HashMap::new();
    let mut order = 0u64;
    let send = |to_b: bool, bytes: &[u8]| {
        // A full socket buffer loses the datagram, like a real network.
        let _ = if to_b {
            back.send_to(bytes, b)
        } else {
            front.send_to(bytes, a)
        };
    };
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        let wait = delayed
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(100));
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("relay poll: {e}"),
        }
        for (socket, to_b, expected_from) in [(&front, true, a), (&back, false, b)] {
            loop {
                let (len, from) = match socket.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => continue,
                };
                if from != expected_from {
                    continue;
                }
                stats.forwarded += 1;
                if rng.percent(percent) {
                    stats.dropped += 1;
                    continue;
                }
                let copies = if rng.percent(percent) {
                    stats.duplicated += 1;
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    if rng.percent(percent) {
                        stats.reordered += 1;
                        order += 1;
                        let delay = Duration::from_micros(500 + rng.next() % 2500);
                        delayed.push(Reverse((Instant::now() + delay, order)));
                        held.insert(order, (to_b, buf[..len].to_vec()));
                    } else {
                        send(to_b, &buf[..len]);
                    }
                }
            }
        }
        let now = Instant::now();
        while let Some(Reverse((at, key))) = delayed.peek().copied() {
            if at > now {
                break;
            }
            delayed.pop();
            let (to_b, bytes) = held.remove(&key).expect("held datagram");
            send(to_b, &bytes);
        }
    }
    stats
}

#[test]
fn a_lossy_relay_loses_nothing_silently() {
    let (a, a_addr) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let relay = Relay::start(0x5eed, 10, a_addr, b_addr);
    // `a` reaches `b` at the relay's front, `b` reaches `a` at its back.
    let (to_b, to_a) = (relay.front, relay.back);
    let (a_sender, b_sender) = (a.sender(), b.sender());
    let mut net = Net::new(vec![a, b]);
    let (a_count, b_count) = (2_000u64, 1_000u64);
    // Both directions at once: a's flow 0 and b's flow 1, interleaved.
    let deadline = Instant::now() + DEADLINE;
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    let (mut next_a, mut next_b) = (1, 1);
    while next_a <= a_count || next_b <= b_count {
        assert!(Instant::now() < deadline, "sending took too long");
        let mut progressed = false;
        if next_a <= a_count {
            if let Ok(id) = a_sender.send(to_b, numbered(0, next_a)) {
                a_ids.push(id);
                next_a += 1;
                progressed = true;
            }
        }
        if next_b <= b_count {
            if let Ok(id) = b_sender.send(to_a, numbered(1, next_b)) {
                b_ids.push(id);
                next_b += 1;
                progressed = true;
            }
        }
        if !progressed {
            net.pump();
        }
    }
    net.until("every message settled", DEADLINE, |net| {
        net.acked(0).len() + net.failed(0).len() == a_ids.len()
            && net.acked(1).len() + net.failed(1).len() == b_ids.len()
    });
    let stats = relay.finish();

    for (sender, receiver, flow, ids, from) in
        [(0, 1, 0u32, &a_ids, to_a), (1, 0, 1u32, &b_ids, to_b)]
    {
        let acked = net.acked(sender);
        let failed = net.failed(sender);
        // Exactly once and in order...
        let got: Vec<u64> = net
            .delivered(receiver)
            .iter()
            .filter(|d| d.1 == flow)
            .map(|d| {
                assert_eq!(d.0, from, "delivered from the relay's address");
                d.2
            })
            .collect();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "flow {flow} out of order"
        );
        // ...or reported, never both and never neither.
        for (n, id) in (1..).zip(ids.iter()) {
            assert!(
                acked.contains(id) != failed.contains_key(id),
                "flow {flow} #{n}"
            );
            if acked.contains(id) {
                assert!(
                    got.binary_search(&n).is_ok(),
                    "flow {flow} #{n} acked, not delivered"
                );
            }
        }
        // At 10 % faults, with Thespian's 20 retries, nothing needs to be given up.
        assert!(failed.is_empty(), "flow {flow}: {failed:?}");
        assert_eq!(got.len(), ids.len());
    }
    // The relay really was lossy.
    assert!(
        stats.dropped > 0 && stats.duplicated > 0 && stats.reordered > 0,
        "{stats:?}"
    );
    let tenth = stats.forwarded / 10;
    assert!(
        stats.dropped > tenth / 2 && stats.dropped < tenth * 2,
        "{stats:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Authentication.

#[test]
fn endpoints_with_different_secrets_fail_fast_with_the_authentication_error() {
    let (a, _) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|c| {
        c.secret = Secret::from_text(b"another system's secret file").unwrap();
    });
    let sender = a.sender();
    let mut net = Net::new(vec![a, b]);
    let ids: Vec<MessageId> = (1..=3)
        .map(|n| sender.send(b_addr, numbered(0, n)).unwrap())
        .collect();
    // Fast: one round trip, not the retries (which take seconds with the defaults).
    net.until(
        "the authentication failure",
        Duration::from_secs(2),
        |net| net.failed(0).len() == 3,
    );
    let failed = net.failed(0);
    for id in &ids {
        let reason = &failed[id];
        assert_eq!(
            reason.to_string(),
            "authentication failed: this system uses another secret"
        );
        assert!(!reason.is_dead_target());
    }
    assert!(net.delivered(1).is_empty());
    // Both sides noticed (and logged, with the other's address).
    net.until("the reject to arrive", Duration::from_secs(2), |net| {
        net.endpoints[1].machine().stats().handshakes_failed == 1
    });
    assert_eq!(net.endpoints[0].machine().stats().handshakes_failed, 1);
    assert!(!net.endpoints[0].machine().has_session(b_addr));
}

/// A forwarder that stands between endpoints `a` and `b` (a talks to `front`, b sees a at
/// `back`), so a test can send datagrams that `b` takes for `a`'s (and `a` for `b`'s): the
/// spoofing a host can do.
struct Tap {
    front: std::net::UdpSocket,
    back: std::net::UdpSocket,
    a: SocketAddr,
    b: SocketAddr,
    /// Every datagram a sent to b.
    captured: Vec<Vec<u8>>,
}

impl Tap {
    fn new(a: SocketAddr, b: SocketAddr) -> Tap {
        let socket = |at: SocketAddr| {
            let s = std::net::UdpSocket::bind(at).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        Tap {
            front: socket(stand_in(2, b)),
            back: socket(stand_in(3, a)),
            a,
            b,
            captured: Vec::new(),
        }
    }

    fn front(&self) -> SocketAddr {
        self.front.local_addr().unwrap()
    }

    fn back(&self) -> SocketAddr {
        self.back.local_addr().unwrap()
    }

    /// Forwards whatever waits, both ways.
    fn forward(&mut self) {
        let mut buf = vec![0u8; 65_536];
        while let Ok((len, from)) = self.front.recv_from(&mut buf) {
            if from == self.a {
                self.captured.push(buf[..len].to_vec());
                let _ = self.back.send_to(&buf[..len], self.b);
            }
        }
        while let Ok((len, from)) = self.back.recv_from(&mut buf) {
            if from == self.b {
                let _ = self.front.send_to(&buf[..len], self.a);
            }
        }
    }

    /// Sends `bytes` to b as if from a, and to a as if from b.
    fn spoof(&self, bytes: &[u8]) {
        self.back.send_to(bytes, self.b).unwrap();
        self.front.send_to(bytes, self.a).unwrap();
    }
}

fn until_tapped(net: &mut Net, tap: &mut Tap, what: &str, mut done: impl FnMut(&Net) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done(net) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        net.pump();
        tap.forward();
    }
}

#[test]
fn spoofed_datagrams_change_nothing_in_a_live_session() {
    use thespian_auth::{Initiator, Nonce, Responder};
    use thespian_transport_udp::wire::{self, HandshakeRef, Position, RejectReason, Route, Seal};

    let (a, a_addr) = endpoint(|_| {});
    let (b, b_addr) = endpoint(|_| {});
    let (a_inc, b_inc) = (a.incarnation(), b.incarnation());
    let mut tap = Tap::new(a_addr, b_addr);
    let (to_b, to_a) = (tap.front(), tap.back());
    let (a_sender, b_sender) = (a.sender(), b.sender());
    let mut net = Net::new(vec![a, b]);
    a_sender.send(to_b, numbered(0, 1)).unwrap();
    b_sender.send(to_a, numbered(1, 1)).unwrap();
    until_tapped(&mut net, &mut tap, "a live session", |net| {
        net.acked(0).len() == 1 && net.acked(1).len() == 1
    });

    // What an attacker on the host sends: garbage; a "new incarnation" at the peer's address
    // (data under keys of its own, a Hello, a Confirm); rejects and a version notice in the
    // peer's name; and a replay of everything it captured.
    let secret = Secret::from_text(b"the attacker's own secret").unwrap();
    let initiator = Initiator::new(&secret, "x", 0xbad, Nonce([1; 32]), Vec::new());
    let hello = initiator.hello().clone();
    let (_, welcome) = Responder::new(&secret, "x", 2, Nonce([2; 32]), b"", &hello, b"").unwrap();
    let (confirm, keys) = initiator.finish(&welcome, b"").unwrap();
    let impostor = Route {
        version: PROTOCOL_VERSION,
        from: SystemId::from_raw(0xbad),
        to: Some(b_inc),
    };
    let mut forgeries = vec![
        b"garbage".to_vec(),
        vec![0xff; 300],
        wire::encode_data(
            impostor,
            Seal {
                key: &keys.send,
                counter: 1,
            },
            Position {
                stream: 1,
                seq: 1,
                base: 1,
            },
            &numbered(9, 1),
            None,
        ),
        wire::encode_handshake(
            impostor,
            HandshakeRef::Hello(&wire::HelloBody {
                hello: hello.clone(),
                opening: 1,
            }),
        ),
        wire::encode_handshake(
            impostor,
            HandshakeRef::Confirm(&wire::ConfirmBody {
                hello: hello.clone(),
                hello_to: Some(b_inc),
                opening: 1,
                confirm,
            }),
        ),
        wire::encode_version_notice(PROTOCOL_VERSION + 1),
    ];
    for (from, to) in [(a_inc, b_inc), (b_inc, a_inc)] {
        forgeries.push(wire::encode_handshake(
            Route {
                version: PROTOCOL_VERSION,
                from,
                to: Some(to),
            },
            HandshakeRef::Reject(RejectReason::WrongSecret),
        ));
    }
    forgeries.extend(tap.captured.clone());
    for bytes in &forgeries {
        tap.spoof(bytes);
    }

    // Every later message is still delivered and acknowledged, both ways.
    let count = 100;
    let a_ids: Vec<MessageId> = (2..=count)
        .map(|n| a_sender.send(to_b, numbered(0, n)).unwrap())
        .collect();
    let b_ids: Vec<MessageId> = (2..=count)
        .map(|n| b_sender.send(to_a, numbered(1, n)).unwrap())
        .collect();
    until_tapped(&mut net, &mut tap, "every later message", |net| {
        let settled = |ep: usize, ids: &[MessageId]| {
            ids.iter()
                .all(|id| net.acked(ep).contains(id) || net.failed(ep).contains_key(id))
        };
        settled(0, &a_ids) && settled(1, &b_ids)
    });
    for ep in 0..2 {
        assert!(net.failed(ep).is_empty(), "{:?}", net.failed(ep));
        assert!(
            !net.events[ep]
                .iter()
                .any(|e| matches!(e, Event::PeerRestarted { .. })),
            "{:?}",
            net.events[ep]
        );
        let got: Vec<u64> = net.delivered(ep).iter().map(|d| d.2).collect();
        assert_eq!(got, (1..=count).collect::<Vec<_>>(), "endpoint {ep}");
    }
    assert!(net.endpoints[1].machine().stats().unauthenticated > 0);
}

/// A send on the thread that drives the endpoint writes no waker: the endpoint must send it
/// before its next wait. A fresh endpoint has no timer, so a wait that started with the send
/// still queued would last the whole timeout: the acknowledgement proves it went first.
#[test]
fn a_send_on_the_driving_thread_goes_out_before_the_next_wait() {
    let (mut a, _) = endpoint(|_| {});
    let (mut b, b_addr) = endpoint(|_| {});
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + DEADLINE;
            let mut delivered = Vec::new();
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                for event in b.poll_events(Some(Duration::from_millis(50))).unwrap() {
                    if let Event::Delivered { message, .. } = event {
                        delivered.push(flow_and_number(&message));
                    }
                }
            }
            delivered
        })
    };
    // This thread drives `a` from now on.
    assert!(a.poll_events(Some(Duration::ZERO)).unwrap().is_empty());
    let id = a.sender().send(b_addr, numbered(1, 7)).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut acked = false;
    while !acked {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the message never left");
        acked = a
            .poll_events(Some(left))
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Acked { ids, .. } if ids.contains(&id)));
    }
    stop.store(true, Ordering::Release);
    assert_eq!(receiver.join().unwrap(), vec![(1, 7)]);
}
