//! Machine tests with a simulated clock: hand-carried datagrams for the protocol's corners, and
//! a seeded in-memory lossy network (drop, duplicate, reorder) for the loss promise.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use thespian_core::ActorAddress;

use super::*;
use thespian_auth::{Initiator, Responder};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 9000))
}

fn inc(n: u64) -> SystemId {
    SystemId::from_raw(0x1000 + n)
}

/// The secret every test machine shares (unless a test says otherwise).
fn secret() -> Secret {
    Secret::from_text(b"the machine tests' shared secret").expect("long enough")
}

/// A deterministic nonce sequence, distinct per seed.
fn nonces(seed: u64) -> Nonces {
    let mut n = 0u64;
    Nonces::from_fn(move || {
        n += 1;
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..16].copy_from_slice(&n.to_le_bytes());
        Ok(Nonce(bytes))
    })
}

fn machine(config: Config, incarnation: SystemId) -> Machine {
    machine_with(config, incarnation, secret())
}

/// Every test machine is bound to port 9000, like the addresses of [`addr`].
fn machine_with(config: Config, incarnation: SystemId, secret: Secret) -> Machine {
    Machine::new(
        config,
        incarnation,
        addr(0),
        secret,
        nonces(incarnation.raw()),
    )
}

/// A message numbered `n` of flow `flow`.
fn msg(flow: u32, n: u64) -> WireMessage {
    let mut payload = flow.to_be_bytes().to_vec();
    payload.extend_from_slice(&n.to_be_bytes());
    WireMessage {
        sender: ActorAddress::new(SystemId::from_raw(1), u64::from(flow)),
        target: ActorAddress::new(SystemId::from_raw(2), 1),
        type_name: Arc::from("test.Numbered"),
        payload: Arc::from(payload),
    }
}

fn flow_and_number(m: &WireMessage) -> (u32, u64) {
    (
        u32::from_be_bytes(m.payload[..4].try_into().unwrap()),
        u64::from_be_bytes(m.payload[4..12].try_into().unwrap()),
    )
}

fn number(m: &WireMessage) -> u64 {
    flow_and_number(m).1
}

fn transmits(m: &mut Machine) -> Vec<(SocketAddr, Vec<u8>)> {
    std::iter::from_fn(|| m.poll_transmit()).collect()
}

fn events(m: &mut Machine) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

fn delivered(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delivered { message, .. } => Some(number(message)),
            _ => None,
        })
        .collect()
}

fn acked(events: &[Event]) -> Vec<MessageId> {
    events
        .iter()
        .flat_map(|e| match e {
            Event::Acked { ids, .. } => ids.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn undeliverable(events: &[Event]) -> Vec<(MessageId, u64, UndeliverableReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Undeliverable {
                id,
                message,
                reason,
                ..
            } => Some((*id, number(message), reason.clone())),
            _ => None,
        })
        .collect()
}

/// Keys of a session no test machine has.
fn stranger_keys() -> (SessionKeys, SessionKeys) {
    let secret = Secret::from_text(b"a stranger's secret, not ours").unwrap();
    let initiator = Initiator::new(&secret, "x", 1, Nonce([1; 32]), Vec::new());
    let (responder, welcome) =
        Responder::new(&secret, "x", 2, Nonce([2; 32]), b"", initiator.hello(), b"").unwrap();
    let (confirm, i) = initiator.finish(&welcome, b"").unwrap();
    (i, responder.finish(&confirm).unwrap())
}

/// A datagram `m` would send to `to` in its session (made with its key and next counter): what
/// an honest but buggy peer could send.
fn authentic_from(
    m: &mut Machine,
    to: SocketAddr,
    encode: impl FnOnce(Route, wire::Seal<'_>) -> Vec<u8>,
) -> Vec<u8> {
    let me = m.incarnation;
    let version = m.config.protocol_version;
    let peer = m.peers.get_mut(&to).expect("a peer");
    let route = Route {
        version,
        from: me,
        to: peer.incarnation,
    };
    encode(route, peer.session.as_mut().expect("a session").seal())
}

/// Carries only handshake datagrams between the pair until neither has one to send; data
/// datagrams are carried too (they follow at once), so this is `exchange` by another name
/// when nothing is lost.
fn handshake(p: &mut Pair) {
    p.exchange();
    assert!(p.a.has_session(addr(B)) && p.b.has_session(addr(A)));
}

/// Two machines and hand-carried datagrams.
struct Pair {
    now: Instant,
    a: Machine,
    b: Machine,
}

const A: u8 = 1;
const B: u8 = 2;

impl Pair {
    fn new(config: Config) -> Pair {
        Pair {
            now: Instant::now(),
            a: machine(config.clone(), inc(1)),
            b: machine(config, inc(2)),
        }
    }

    /// Two machines with a session established (by a handshake A opened), nothing else
    /// pending.
    fn connected(config: Config) -> Pair {
        let mut p = Pair::new(config);
        p.a.initiate(p.now, addr(B), 0, false);
        handshake(&mut p);
        assert!(events(&mut p.a).is_empty() && events(&mut p.b).is_empty());
        p
    }

    /// Carries every datagram both ways until both are quiet; returns how many were carried.
    fn exchange(&mut self) -> usize {
        let mut carried = 0;
        loop {
            let from_a = transmits(&mut self.a);
            let from_b = transmits(&mut self.b);
            if from_a.is_empty() && from_b.is_empty() {
                return carried;
            }
            carried += from_a.len() + from_b.len();
            for (to, bytes) in from_a {
                assert_eq!(to, addr(B));
                self.b.handle_datagram(self.now, addr(A), &bytes);
            }
            for (to, bytes) in from_b {
                assert_eq!(to, addr(A));
                self.a.handle_datagram(self.now, addr(B), &bytes);
            }
        }
    }

    /// Advances the clock to the earliest timer of either machine and handles it.
    fn advance(&mut self) {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a timer is set");
        self.now = self.now.max(next);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    /// Exchanges and advances until neither machine has a timer other than peer forgetting.
    fn settle(&mut self) {
        for _ in 0..1000 {
            self.exchange();
            let busy = |m: &Machine| {
                !m.handshakes.is_empty() || m.peers.values().any(|p| p.next_timer().is_some())
            };
            if !busy(&self.a) && !busy(&self.b) {
                return;
            }
            self.advance();
        }
        panic!("the pair did not settle");
    }
}

#[test]
fn clean_exchange_delivers_in_order_and_acknowledges() {
    let mut p = Pair::new(Config::default());
    let ids: Vec<MessageId> = (1..=100)
        .map(|n| p.a.send(p.now, addr(B), msg(0, n)).unwrap())
        .collect();
    p.settle();
    let at_b = events(&mut p.b);
    assert_eq!(delivered(&at_b), (1..=100).collect::<Vec<_>>());
    let at_a = events(&mut p.a);
    assert_eq!(acked(&at_a), ids);
    assert_eq!(p.a.unacked(addr(B)), 0);
    assert!(undeliverable(&at_a).is_empty());
}

#[test]
fn acknowledgements_ride_on_replies() {
    let mut p = Pair::connected(Config::default());
    // Ping-pong: each side answers at once, so no pure acknowledgement is needed.
    let mut carried = 0;
    for n in 1..=50 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
        carried += p.exchange();
        assert_eq!(delivered(&events(&mut p.b)), vec![n]);
        p.b.send(p.now, addr(A), msg(1, n)).unwrap();
        carried += p.exchange();
        let at_a = events(&mut p.a);
        assert_eq!(delivered(&at_a), vec![n]);
        assert_eq!(acked(&at_a).len(), 1, "the reply acknowledged ping {n}");
    }
    assert_eq!(
        carried, 100,
        "one datagram per message, acknowledgements piggy-backed"
    );
    // The last reply is acknowledged on its own after the delay.
    assert_eq!(p.a.poll_timeout(), Some(p.now + p.a.config().ack_delay));
    p.advance();
    assert_eq!(p.exchange(), 1);
    assert_eq!(acked(&events(&mut p.b)).len(), 1, "the last reply");
}

#[test]
fn a_batch_is_acknowledged_once() {
    let mut p = Pair::connected(Config::default());
    for n in 1..=10 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    for (_, bytes) in transmits(&mut p.a) {
        p.b.handle_datagram(p.now, addr(A), &bytes);
    }
    // Fewer than `ack_every`: the acknowledgement waits for the delay, then covers all ten.
    assert!(transmits(&mut p.b).is_empty());
    p.advance();
    let acks = transmits(&mut p.b);
    assert_eq!(acks.len(), 1);
    p.a.handle_datagram(p.now, addr(B), &acks[0].1);
    assert_eq!(acked(&events(&mut p.a)).len(), 10);
}

#[test]
fn out_of_order_datagrams_are_held_and_delivered_in_order() {
    // One message per datagram, so each can be lost or late on its own.
    let mut p = Pair::connected(Config {
        coalesce_limit: 0,
        ..Config::default()
    });
    for n in 1..=6 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    let mut datagrams = transmits(&mut p.a);
    let first = datagrams.remove(0);
    datagrams.reverse();
    for (_, bytes) in &datagrams {
        p.b.handle_datagram(p.now, addr(A), bytes);
    }
    assert!(delivered(&events(&mut p.b)).is_empty());
    // The selective acknowledgement spares 2..=6 from retransmission.
    for (_, bytes) in transmits(&mut p.b) {
        p.a.handle_datagram(p.now, addr(B), &bytes);
    }
    p.now += p.a.config().initial_rto;
    p.a.handle_timeout(p.now);
    let resent = transmits(&mut p.a);
    assert_eq!(resent.len(), 1, "only the missing message is retransmitted");
    let seq = |bytes: &[u8]| match wire::decode(bytes, PROTOCOL_VERSION) {
        Ok(Datagram::Data { header, .. }) => header.seq,
        other => panic!("{other:?}"),
    };
    assert_eq!(seq(&resent[0].1), 1);
    assert_eq!(seq(&first.1), 1);
    p.b.handle_datagram(p.now, addr(A), &first.1);
    assert_eq!(delivered(&events(&mut p.b)), vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn duplicates_are_delivered_once() {
    let mut p = Pair::new(Config::default());
    let mut all = Vec::new();
    for n in 1..=20 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    for (_, bytes) in transmits(&mut p.a) {
        p.b.handle_datagram(p.now, addr(A), &bytes);
        p.b.handle_datagram(p.now, addr(A), &bytes);
        all.push(bytes);
    }
    p.settle();
    // Replays long after, of everything.
    for bytes in all.iter().rev() {
        p.b.handle_datagram(p.now, addr(A), bytes);
    }
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), (1..=20).collect::<Vec<_>>());
    assert_eq!(acked(&events(&mut p.a)).len(), 20);
}

#[test]
fn datagrams_beyond_the_receive_window_are_dropped_and_retransmitted() {
    let config = Config {
        recv_window: 4,
        max_unacked: 10,
        coalesce_limit: 0,
        ..Config::default()
    };
    let mut p = Pair::connected(config);
    for n in 1..=10 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    let datagrams = transmits(&mut p.a);
    // The first is lost; 2..=4 are held; 5..=10 are too far ahead.
    for (_, bytes) in &datagrams[1..] {
        p.b.handle_datagram(p.now, addr(A), bytes);
    }
    assert_eq!(p.b.peers[&addr(A)].inb.as_ref().unwrap().held.len(), 3);
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), (1..=10).collect::<Vec<_>>());
    assert_eq!(acked(&events(&mut p.a)).len(), 10);
}

#[test]
fn oversized_messages_fail_at_the_sender_naming_the_limit() {
    let mut p = Pair::new(Config::default());
    let mut big = msg(0, 1);
    big.payload = Arc::from(vec![0u8; MAX_DATAGRAM]);
    let err = p.a.send(p.now, addr(B), big.clone()).unwrap_err();
    let SendError::TooLarge { size, limit } = err.clone() else {
        panic!("{err:?}")
    };
    assert_eq!(limit, MAX_DATAGRAM);
    assert_eq!(size, wire::datagram_bound(&big));
    let text = err.to_string();
    assert!(text.contains("65000"), "{text}");
    assert!(transmits(&mut p.a).is_empty());
    // The largest message that fits is sent whole, and still fits with an acknowledgement
    // owed (which then travels on its own).
    let header = wire::datagram_bound(&big) - big.payload.len();
    big.payload = Arc::from(vec![7u8; MAX_DATAGRAM - header]);
    assert_eq!(wire::datagram_bound(&big), MAX_DATAGRAM);
    p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
    p.exchange();
    p.a.send(p.now, addr(B), big).unwrap();
    let out = transmits(&mut p.a);
    assert_eq!(out.len(), 1);
    assert!(out[0].1.len() <= MAX_DATAGRAM);
    let Ok(Datagram::Data { header, .. }) = wire::decode(&out[0].1, PROTOCOL_VERSION) else {
        panic!("not a data datagram")
    };
    assert_eq!(header.ack, None, "no room to piggy-back");
    assert_eq!(p.a.poll_timeout(), Some(p.now + p.a.config().ack_delay));
    p.advance();
    assert_eq!(
        transmits(&mut p.a).len(),
        1,
        "the acknowledgement, on its own"
    );
    // A lower configured limit is named instead.
    let mut small = Pair::new(Config {
        max_datagram: 100,
        ..Config::default()
    });
    let mut m = msg(0, 1);
    m.payload = Arc::from(vec![0u8; 100]);
    assert!(matches!(
        small.a.send(small.now, addr(B), m),
        Err(SendError::TooLarge { limit: 100, .. })
    ));
}

#[test]
fn a_full_window_fails_the_send_at_once() {
    let config = Config {
        max_unacked: 3,
        ..Config::default()
    };
    let mut p = Pair::connected(config);
    for n in 1..=3 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    let err = p.a.send(p.now, addr(B), msg(0, 4)).unwrap_err();
    assert!(matches!(err, SendError::WindowFull { messages: 3, .. }));
    // Another peer has its own window.
    p.a.send(p.now, addr(3), msg(0, 1)).unwrap();
    let to_b: Vec<_> = transmits(&mut p.a)
        .into_iter()
        .filter(|(to, _)| *to == addr(B))
        .collect();
    for (_, bytes) in to_b {
        p.b.handle_datagram(p.now, addr(A), &bytes);
    }
    p.advance();
    p.exchange();
    p.a.send(p.now, addr(B), msg(0, 4)).unwrap();
    // A byte bound too; one message is always accepted into an empty window.
    let mut q = Pair::new(Config {
        max_unacked_bytes: 10,
        ..Config::default()
    });
    q.a.send(q.now, addr(B), msg(0, 1)).unwrap();
    assert!(matches!(
        q.a.send(q.now, addr(B), msg(0, 2)),
        Err(SendError::WindowFull { messages: 1, .. })
    ));
}

fn fast_config() -> Config {
    Config {
        initial_rto: Duration::from_millis(10),
        min_rto: Duration::from_millis(10),
        max_rto: Duration::from_millis(100),
        backoff_factor: 2.0,
        max_retransmits: 4,
        dead_address_memory: Duration::from_secs(15),
        ..Config::default()
    }
}

#[test]
fn a_silent_peer_is_given_up_with_back_off_then_remembered_as_dead() {
    let config = fast_config();
    let mut p = Pair::connected(config.clone());
    let start = p.now;
    let ids: Vec<MessageId> = (1..=5)
        .map(|n| p.a.send(p.now, addr(B), msg(0, n)).unwrap())
        .collect();
    let mut sent_at = vec![p.now; transmits(&mut p.a).len()];
    let mut steps = 0;
    let failed = loop {
        steps += 1;
        assert!(steps < 100, "never gave up");
        p.now = p.a.poll_timeout().unwrap();
        p.a.handle_timeout(p.now);
        sent_at.extend(transmits(&mut p.a).iter().map(|_| p.now));
        let failed = undeliverable(&events(&mut p.a));
        if !failed.is_empty() {
            break failed;
        }
    };
    // 1 transmission + 4 retransmissions, 10, 20, 40, 80, 100 ms apart, the five messages
    // in one batch each time.
    assert_eq!(sent_at.len(), 5);
    assert_eq!(
        p.now - start,
        Duration::from_millis(10 + 20 + 40 + 80 + 100)
    );
    assert_eq!(
        failed.iter().map(|f| f.0).collect::<Vec<_>>(),
        ids,
        "every unacknowledged message is reported, in order"
    );
    assert!(failed
        .iter()
        .all(|f| f.2 == UndeliverableReason::RetriesExhausted { transmissions: 5 }));
    assert!(!failed[0].2.is_dead_target());
    // Now a flood to it fails at once, without a datagram.
    assert!(p.a.is_dead(p.now, addr(B)));
    for n in 6..=1000 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    assert!(transmits(&mut p.a).is_empty());
    let flood = undeliverable(&events(&mut p.a));
    assert_eq!(flood.len(), 995);
    assert!(flood
        .iter()
        .all(|f| f.2 == UndeliverableReason::DeadAddress && f.2.is_dead_target()));
    // After the memory, sends go out again, and the receiver (never having seen 1..=5)
    // starts at the sender's base.
    p.now += config.dead_address_memory;
    assert!(!p.a.is_dead(p.now, addr(B)));
    p.a.send(p.now, addr(B), msg(0, 1001)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1001]);
}

#[test]
fn given_up_messages_held_by_the_receiver_are_skipped() {
    let mut p = Pair::connected(Config {
        coalesce_limit: 0,
        ..fast_config()
    });
    for n in 1..=4 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    let datagrams = transmits(&mut p.a);
    // B holds 3 and 4 but never sees 1 and 2; its acknowledgements are lost too.
    for (_, bytes) in &datagrams[2..] {
        p.b.handle_datagram(p.now, addr(A), bytes);
    }
    let _ = transmits(&mut p.b);
    loop {
        p.now = p.a.poll_timeout().unwrap();
        p.a.handle_timeout(p.now);
        let _ = transmits(&mut p.a);
        if !undeliverable(&events(&mut p.a)).is_empty() {
            break;
        }
    }
    // The peer was given up; after the dead memory, the next message skips the gap, and B
    // drops what it held of the given-up messages.
    p.now += p.a.config().dead_address_memory;
    p.a.send(p.now, addr(B), msg(0, 5)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![5]);
    assert!(p.b.peers[&addr(A)].inb.as_ref().unwrap().held.is_empty());
}

#[test]
fn a_datagram_from_a_dead_address_revives_it() {
    let mut p = Pair::new(fast_config());
    p.a.mark_dead(p.now, addr(B));
    assert!(p.a.is_dead(p.now, addr(B)));
    p.b.send(p.now, addr(A), msg(0, 1)).unwrap();
    p.exchange();
    assert!(!p.a.is_dead(p.now, addr(B)));
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
}

#[test]
fn mark_dead_reports_unacknowledged_messages() {
    let mut p = Pair::new(Config::default());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.a.send(p.now, addr(B), msg(0, 2)).unwrap();
    let _ = transmits(&mut p.a);
    p.a.mark_dead(p.now, addr(B));
    let failed = undeliverable(&events(&mut p.a));
    assert_eq!(failed.len(), 2);
    assert!(failed
        .iter()
        .all(|f| f.2 == UndeliverableReason::MarkedDead));
    assert_eq!(p.a.unacked(addr(B)), 0);
    p.a.send(p.now, addr(B), msg(0, 3)).unwrap();
    assert_eq!(
        undeliverable(&events(&mut p.a))[0].2,
        UndeliverableReason::DeadAddress
    );
}

#[test]
fn a_restarted_receiver_is_a_new_peer() {
    let mut p = Pair::new(Config::default());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
    let _ = events(&mut p.a);
    // 2 and 3 are lost, then B restarts at the same address.
    p.a.send(p.now, addr(B), msg(0, 2)).unwrap();
    p.a.send(p.now, addr(B), msg(0, 3)).unwrap();
    let _ = transmits(&mut p.a);
    p.b = machine(Config::default(), inc(22));
    // The retransmissions reach the new incarnation, which refuses them naming itself.
    p.advance();
    p.exchange();
    assert!(delivered(&events(&mut p.b)).is_empty());
    let at_a = events(&mut p.a);
    assert!(at_a.contains(&Event::PeerRestarted {
        peer: addr(B),
        old: inc(2),
        new: inc(22)
    }));
    let failed = undeliverable(&at_a);
    assert_eq!(failed.iter().map(|f| f.1).collect::<Vec<_>>(), vec![2, 3]);
    assert!(failed.iter().all(|f| f.2
        == UndeliverableReason::PeerRestarted {
            old: inc(2),
            new: inc(22)
        }
        && f.2.is_dead_target()));
    // New messages go to the new incarnation.
    p.a.send(p.now, addr(B), msg(0, 4)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![4]);
}

#[test]
fn a_restarted_sender_is_a_new_peer_and_its_old_datagrams_are_ignored() {
    let mut p = Pair::connected(Config::default());
    for n in 1..=3 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    let old = transmits(&mut p.a);
    for (_, bytes) in &old {
        p.b.handle_datagram(p.now, addr(A), bytes);
    }
    // B has something for A too, unacknowledged when A restarts.
    p.b.send(p.now, addr(A), msg(9, 1)).unwrap();
    let _ = transmits(&mut p.b);
    assert_eq!(delivered(&events(&mut p.b)), vec![1, 2, 3]);
    p.a = machine(Config::default(), inc(11));
    p.a.send(p.now, addr(B), msg(0, 100)).unwrap();
    p.exchange();
    let at_b = events(&mut p.b);
    assert!(at_b.contains(&Event::PeerRestarted {
        peer: addr(A),
        old: inc(1),
        new: inc(11)
    }));
    assert_eq!(delivered(&at_b), vec![100]);
    assert_eq!(undeliverable(&at_b).len(), 1, "B's message to the old A");
    // Late datagrams of the old incarnation change nothing.
    for (_, bytes) in &old {
        p.b.handle_datagram(p.now, addr(A), bytes);
    }
    p.settle();
    assert!(delivered(&events(&mut p.b)).is_empty());
    assert_eq!(p.b.peers[&addr(A)].incarnation, Some(inc(11)));
}

#[test]
fn a_version_mismatch_is_reported_to_the_sender_at_once() {
    let mut p = Pair::new(Config::default());
    p.b = machine(
        Config {
            protocol_version: PROTOCOL_VERSION + 1,
            ..Config::default()
        },
        inc(2),
    );
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.exchange();
    assert!(delivered(&events(&mut p.b)).is_empty());
    let failed = undeliverable(&events(&mut p.a));
    assert_eq!(
        failed[0].2,
        UndeliverableReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: PROTOCOL_VERSION + 1
        }
    );
    assert!(p.a.is_dead(p.now, addr(B)));
}

#[test]
fn garbage_is_dropped_without_a_reply() {
    let mut p = Pair::new(Config::default());
    for bytes in [
        &b""[..],
        b"x",
        b"GET / HTTP/1.1\r\n",
        &wire::MAGIC[..],
        &[0xff; 100][..],
    ] {
        p.b.handle_datagram(p.now, addr(A), bytes);
    }
    assert!(transmits(&mut p.b).is_empty());
    assert!(events(&mut p.b).is_empty());
    assert_eq!(p.b.peers(), 0);
    // An acknowledgement from a stranger (no session) is ignored, without an answer.
    let ack = Ack {
        stream: 1,
        cumulative: 5,
        ranges: Vec::new(),
    };
    let route = Route {
        version: PROTOCOL_VERSION,
        from: inc(1),
        to: Some(inc(2)),
    };
    let (stranger, _) = stranger_keys();
    let seal = wire::Seal {
        key: &stranger.send,
        counter: 1,
    };
    p.b.handle_datagram(p.now, addr(A), &wire::encode_ack(route, seal, &ack));
    assert_eq!(p.b.peers(), 0);
    assert!(transmits(&mut p.b).is_empty());
    assert_eq!(p.b.stats().unauthenticated, 1);
    // An acknowledgement of messages never sent, in the session, is ignored whole.
    p.b.send(p.now, addr(A), msg(0, 1)).unwrap();
    handshake(&mut p);
    let forged = authentic_from(&mut p.a, addr(B), |route, seal| {
        wire::encode_ack(route, seal, &ack)
    });
    p.b.handle_datagram(p.now, addr(A), &forged);
    assert!(events(&mut p.b).is_empty());
    assert_eq!(p.b.unacked(addr(A)), 1);
}

#[test]
fn an_acknowledgement_claiming_the_missing_message_is_ignored() {
    let mut p = Pair::connected(Config::default());
    for n in 1..=3 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    let _ = transmits(&mut p.a);
    // "Nothing delivered, but I hold 1..=3": would leave nothing to retransmit.
    let ack = Ack {
        stream: p.a.peers[&addr(B)].out.as_ref().unwrap().stream,
        cumulative: 0,
        ranges: vec![wire::SeqRange { first: 1, last: 3 }],
    };
    let bogus = authentic_from(&mut p.b, addr(A), |route, seal| {
        wire::encode_ack(route, seal, &ack)
    });
    p.a.handle_datagram(p.now, addr(B), &bogus);
    assert!(p
        .a
        .poll_timeout()
        .is_some_and(|t| t <= p.now + p.a.config().initial_rto));
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1, 2, 3]);
}

#[test]
fn the_peer_table_is_bounded() {
    let config = Config {
        max_peers: 1,
        ..Config::default()
    };
    let mut p = Pair::connected(config.clone());
    // A third endpoint completes a handshake with B, which has no room for it.
    let mut c = machine(config, inc(3));
    c.send(p.now, addr(B), msg(3, 1)).unwrap();
    for _ in 0..3 {
        for (_, bytes) in transmits(&mut c) {
            p.b.handle_datagram(p.now, addr(3), &bytes);
        }
        for (_, bytes) in transmits(&mut p.b) {
            c.handle_datagram(p.now, addr(B), &bytes);
        }
    }
    assert_eq!(p.b.peers(), 1);
    assert!(!p.b.has_session(addr(3)));
    assert!(delivered(&events(&mut p.b)).is_empty());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
}

#[test]
fn idle_peers_are_forgotten_and_streams_resume_safely() {
    let config = Config {
        peer_idle_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let mut p = Pair::new(config.clone());
    for n in 1..=3 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    p.settle();
    p.now += Duration::from_secs(2);
    p.a.handle_timeout(p.now);
    p.b.handle_timeout(p.now);
    assert_eq!((p.a.peers(), p.b.peers()), (0, 0));
    assert_eq!(p.a.poll_timeout(), None, "nothing left to time");
    p.a.send(p.now, addr(B), msg(0, 4)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1, 2, 3, 4]);

    // Only the receiver forgets: the sender's next message carries its base.
    p.b = machine(config.clone(), inc(2));
    p.a = machine(
        Config {
            peer_idle_timeout: Duration::from_secs(3600),
            ..config.clone()
        },
        inc(1),
    );
    for n in 1..=3 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    p.settle();
    p.now += Duration::from_secs(2);
    p.b.handle_timeout(p.now);
    assert_eq!((p.a.peers(), p.b.peers()), (1, 0));
    p.a.send(p.now, addr(B), msg(0, 4)).unwrap();
    p.settle();

    // Only the sender forgets: its new stream restarts the receiver's window.
    p.a.peers.clear();
    p.a.send(p.now, addr(B), msg(0, 5)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1, 2, 3, 4, 5]);
}

#[test]
fn close_reports_unacknowledged_messages_and_refuses_sends() {
    let mut p = Pair::new(Config::default());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.a.send(p.now, addr(3), msg(0, 2)).unwrap();
    p.a.close(p.now);
    let failed = undeliverable(&events(&mut p.a));
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|f| f.2 == UndeliverableReason::Shutdown));
    assert_eq!(p.a.send(p.now, addr(B), msg(0, 3)), Err(SendError::Closed));
    assert_eq!(p.a.poll_timeout(), None);
}

#[test]
fn close_sends_the_acknowledgements_still_owed() {
    let mut p = Pair::connected(Config::default());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    for (_, bytes) in transmits(&mut p.a) {
        p.b.handle_datagram(p.now, addr(A), &bytes);
    }
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
    // The acknowledgement is delayed (it could ride on a reply), and `b` closes first.
    p.b.close(p.now);
    let owed = transmits(&mut p.b);
    assert_eq!(owed.len(), 1, "one acknowledgement goes out on close");
    for (to, bytes) in owed {
        assert_eq!(to, addr(A));
        p.a.handle_datagram(p.now, addr(B), &bytes);
    }
    assert_eq!(acked(&events(&mut p.a)).len(), 1);
    assert_eq!(p.a.unacked(addr(B)), 0);
}

#[test]
fn a_refused_address_fails_its_messages_at_once_and_is_remembered() {
    let mut p = Pair::new(Config::default());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.a.send(p.now, addr(B), msg(0, 2)).unwrap();
    let _ = transmits(&mut p.a);
    p.a.refused(p.now, addr(B));
    let failed = undeliverable(&events(&mut p.a));
    assert_eq!(
        failed
            .iter()
            .map(|f| (f.1, f.2.clone()))
            .collect::<Vec<_>>(),
        vec![
            (1, UndeliverableReason::PortUnreachable),
            (2, UndeliverableReason::PortUnreachable)
        ]
    );
    assert!(UndeliverableReason::PortUnreachable.is_dead_target());
    assert!(p.a.is_dead(p.now, addr(B)));
    p.a.send(p.now, addr(B), msg(0, 3)).unwrap();
    assert_eq!(
        undeliverable(&events(&mut p.a))[0].2,
        UndeliverableReason::DeadAddress
    );
}

#[test]
fn a_revived_address_reaches_the_new_endpoint_with_the_first_message() {
    let mut p = Pair::new(fast_config());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
    let _ = events(&mut p.a);
    // B's endpoint goes away; a datagram to it is refused; a new endpoint takes its address.
    p.a.refused(p.now, addr(B));
    p.b = machine(fast_config(), inc(3));
    p.a.revive(addr(B));
    assert!(!p.a.is_dead(p.now, addr(B)));
    p.a.send(p.now, addr(B), msg(0, 2)).unwrap();
    p.settle();
    assert_eq!(
        delivered(&events(&mut p.b)),
        vec![2],
        "not refused as meant for B's predecessor"
    );
    let a_events = events(&mut p.a);
    assert!(undeliverable(&a_events).is_empty(), "{a_events:?}");
    assert_eq!(acked(&a_events).len(), 1);
}

#[test]
fn revive_leaves_a_live_peer_alone() {
    let mut p = Pair::connected(fast_config());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    let _ = transmits(&mut p.a);
    // Not remembered as dead: the unacknowledged message stays in flight and arrives.
    p.a.revive(addr(B));
    assert_eq!(p.a.unacked(addr(B)), 1);
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
    assert_eq!(acked(&events(&mut p.a)).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// A seeded, lossy, in-memory network.

/// splitmix64: small, seeded, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Faults {
    drop: f64,
    duplicate: f64,
    reorder: f64,
}

struct Node {
    addr: SocketAddr,
    machine: Machine,
    /// What this node sent: message id to (flow, number).
    sent: HashMap<MessageId, (u32, u64)>,
    acked: HashSet<MessageId>,
    failed: HashMap<MessageId, UndeliverableReason>,
    /// Delivered (flow, number) from each sender address, in delivery order.
    delivered: Vec<(SocketAddr, u32, u64)>,
}

/// One flow of numbered messages from node `from` to node `to`.
#[derive(Debug, Clone, Copy)]
struct Flow {
    from: usize,
    to: usize,
    count: u64,
}

struct Sim {
    now: Instant,
    rng: Rng,
    faults: Faults,
    latency: Duration,
    nodes: Vec<Node>,
    /// In flight: (arrival, order) -> (from, to, bytes).
    net: BinaryHeap<Reverse<(Instant, u64)>>,
    payloads: HashMap<u64, (SocketAddr, SocketAddr, Vec<u8>)>,
    order: u64,
    flows: Vec<Flow>,
    next_number: Vec<u64>,
    datagrams: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
}

impl Sim {
    fn new(seed: u64, faults: Faults, config: &Config, nodes: usize, flows: Vec<Flow>) -> Sim {
        let now = Instant::now();
        let nodes = (0..nodes)
            .map(|i| Node {
                addr: addr(i as u8 + 1),
                machine: machine(config.clone(), inc(i as u64 + 1)),
                sent: HashMap::new(),
                acked: HashSet::new(),
                failed: HashMap::new(),
                delivered: Vec::new(),
            })
            .collect();
        let next_number = vec![1; flows.len()];
        Sim {
            now,
            rng: Rng(seed),
            faults,
            latency: Duration::from_micros(500),
            nodes,
            net: BinaryHeap::new(),
            payloads: HashMap::new(),
            order: 0,
            flows,
            next_number,
            datagrams: 0,
            dropped: 0,
            duplicated: 0,
            reordered: 0,
        }
    }

    /// Puts a datagram on the wire, with the network's faults.
    fn transmit(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.datagrams += 1;
        if self.rng.chance(self.faults.drop) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.latency;
            if self.rng.chance(self.faults.reorder) {
                self.reordered += 1;
                // Late by up to 8 one-way latencies: overtaken by later datagrams.
                delay += Duration::from_micros(self.rng.below(4000));
            }
            self.order += 1;
            self.net.push(Reverse((self.now + delay, self.order)));
            self.payloads.insert(self.order, (from, to, bytes.clone()));
        }
    }

    fn offer_traffic(&mut self) {
        for (f, flow) in self.flows.clone().into_iter().enumerate() {
            while self.next_number[f] <= flow.count {
                let n = self.next_number[f];
                let to = self.nodes[flow.to].addr;
                let node = &mut self.nodes[flow.from];
                match node.machine.send(self.now, to, msg(f as u32, n)) {
                    Ok(id) => {
                        node.sent.insert(id, (f as u32, n));
                        self.next_number[f] += 1;
                    }
                    Err(SendError::WindowFull { .. }) => break,
                    Err(e) => panic!("unexpected send error {e}"),
                }
            }
        }
    }

    /// Moves transmits to the wire and events to the nodes' records.
    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            let from = self.nodes[i].addr;
            while let Some((to, bytes)) = self.nodes[i].machine.poll_transmit() {
                self.transmit(from, to, bytes);
            }
            let node = &mut self.nodes[i];
            while let Some(event) = node.machine.poll_event() {
                match event {
                    Event::Delivered { from, message } => {
                        let (flow, n) = flow_and_number(&message);
                        node.delivered.push((from, flow, n));
                    }
                    Event::Acked { ids, .. } => {
                        for id in ids {
                            assert!(node.sent.contains_key(&id), "acked an unknown id");
                            assert!(node.acked.insert(id), "acked twice");
                            assert!(!node.failed.contains_key(&id), "acked after failed");
                        }
                    }
                    Event::Undeliverable { id, reason, .. } => {
                        assert!(!node.acked.contains(&id), "failed after acked");
                        assert!(node.failed.insert(id, reason).is_none(), "failed twice");
                    }
                    Event::PeerRestarted { .. } => panic!("no restarts in this network"),
                }
            }
        }
    }

    fn settled(&self) -> bool {
        self.flows
            .iter()
            .enumerate()
            .all(|(f, flow)| self.next_number[f] > flow.count)
            && self
                .nodes
                .iter()
                .all(|n| n.acked.len() + n.failed.len() == n.sent.len())
    }

    /// Runs until every message is acknowledged or reported; panics after `max_steps`.
    fn run(&mut self, max_steps: usize) {
        for _ in 0..max_steps {
            self.offer_traffic();
            self.collect();
            if self.settled() {
                return;
            }
            let wire = self.net.peek().map(|Reverse((at, _))| *at);
            let timers = self.nodes.iter().filter_map(|n| n.machine.poll_timeout());
            let next = wire
                .into_iter()
                .chain(timers)
                .min()
                .expect("something is pending");
            self.now = self.now.max(next);
            while let Some(Reverse((at, order))) = self.net.peek().copied() {
                if at > self.now {
                    break;
                }
                self.net.pop();
                let (from, to, bytes) = self.payloads.remove(&order).expect("payload");
                if let Some(node) = self.nodes.iter_mut().find(|n| n.addr == to) {
                    node.machine.handle_datagram(self.now, from, &bytes);
                }
            }
            for node in &mut self.nodes {
                if node.machine.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.machine.handle_timeout(self.now);
                }
            }
        }
        panic!("the network did not settle within {max_steps} steps");
    }

    /// The promise: per flow, deliveries are in order without duplicates; every message is
    /// either acknowledged (and then delivered) or reported undeliverable, not both.
    /// Returns how many were reported undeliverable.
    fn check(&self) -> usize {
        let mut failed_total = 0;
        for (f, flow) in self.flows.iter().enumerate() {
            let sender = &self.nodes[flow.from];
            let receiver = &self.nodes[flow.to];
            let got: Vec<u64> = receiver
                .delivered
                .iter()
                .filter(|(from, fl, _)| *from == sender.addr && *fl == f as u32)
                .map(|(_, _, n)| *n)
                .collect();
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "flow {f}: delivered out of order or twice: {got:?}"
            );
            let got: HashSet<u64> = got.into_iter().collect();
            let mut outcome: BTreeMap<u64, bool> = BTreeMap::new();
            for (id, &(fl, n)) in &sender.sent {
                if fl != f as u32 {
                    continue;
                }
                let acked = sender.acked.contains(id);
                let failed = sender.failed.contains_key(id);
                assert!(
                    acked != failed,
                    "flow {f} #{n}: acked {acked}, failed {failed}"
                );
                if acked {
                    assert!(
                        got.contains(&n),
                        "flow {f} #{n} acknowledged, never delivered"
                    );
                } else {
                    failed_total += 1;
                }
                outcome.insert(n, acked);
            }
            assert_eq!(outcome.len() as u64, flow.count, "flow {f}: all sent");
        }
        failed_total
    }
}

const TEN_PERCENT: Faults = Faults {
    drop: 0.10,
    duplicate: 0.10,
    reorder: 0.10,
};

#[test]
fn ten_percent_loss_duplication_and_reordering_lose_nothing() {
    let flows = vec![
        Flow {
            from: 0,
            to: 1,
            count: 3000,
        },
        Flow {
            from: 1,
            to: 0,
            count: 1000,
        },
        Flow {
            from: 2,
            to: 1,
            count: 2000,
        },
    ];
    for seed in [1, 2, 3, 0xdead_beef] {
        let mut sim = Sim::new(seed, TEN_PERCENT, &Config::default(), 3, flows.clone());
        sim.run(1_000_000);
        assert_eq!(
            sim.check(),
            0,
            "seed {seed}: nothing given up at 10 % faults"
        );
        // The faults were real: about 10 % of the datagrams each.
        let tenth = sim.datagrams / 10;
        for (what, n) in [
            ("dropped", sim.dropped),
            ("duplicated", sim.duplicated),
            ("reordered", sim.reordered),
        ] {
            assert!(
                n > tenth * 8 / 10 && n < tenth * 12 / 10,
                "seed {seed}: {n} of {} datagrams {what}",
                sim.datagrams
            );
        }
        for node in &sim.nodes {
            // In order and complete: exactly 1..=count per flow.
            for (f, flow) in flows.iter().enumerate() {
                if sim.nodes[flow.to].addr != node.addr {
                    continue;
                }
                let got: Vec<u64> = node
                    .delivered
                    .iter()
                    .filter(|d| d.1 == f as u32)
                    .map(|d| d.2)
                    .collect();
                assert_eq!(got, (1..=flow.count).collect::<Vec<_>>());
            }
        }
    }
}

#[test]
fn a_partitioned_peer_gets_every_message_reported() {
    let config = fast_config();
    let flows = vec![Flow {
        from: 0,
        to: 1,
        count: 500,
    }];
    // Everything is dropped: nothing delivered, everything reported, in bounded time.
    let mut sim = Sim::new(
        7,
        Faults {
            drop: 1.0,
            duplicate: 0.0,
            reorder: 0.0,
        },
        &config,
        2,
        flows,
    );
    sim.run(100_000);
    assert_eq!(sim.check(), 500);
    assert!(sim.nodes[1].delivered.is_empty());
}

/// The sequence numbers a data or batch datagram carries, and whether it was a batch.
fn carried(bytes: &[u8]) -> (Vec<u64>, bool) {
    match wire::decode(bytes, PROTOCOL_VERSION) {
        Ok(Datagram::Data { header, .. }) => (vec![header.seq], false),
        Ok(Datagram::Batch { header, .. }) => (
            (header.first_seq..).take(header.messages.len()).collect(),
            true,
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lone_message_goes_at_once_and_a_burst_in_one_batch() {
    let mut p = Pair::connected(Config::default());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    let lone = transmits(&mut p.a);
    assert_eq!(lone.len(), 1);
    assert_eq!(carried(&lone[0].1), (vec![1], false));
    for n in 2..=17 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    let burst = transmits(&mut p.a);
    assert_eq!(burst.len(), 1);
    assert_eq!(carried(&burst[0].1), ((2..=17).collect(), true));
    assert!(burst[0].1.len() <= p.a.config().coalesce_limit);
    for (_, bytes) in lone.iter().chain(&burst) {
        p.b.handle_datagram(p.now, addr(A), bytes);
    }
    assert_eq!(delivered(&events(&mut p.b)), (1..=17).collect::<Vec<_>>());
    // `ack_every` (16) messages in order: the acknowledgement goes at once, one for all.
    let acks = transmits(&mut p.b);
    assert_eq!(acks.len(), 1);
    p.a.handle_datagram(p.now, addr(B), &acks[0].1);
    assert_eq!(acked(&events(&mut p.a)).len(), 17);
}

#[test]
fn an_acknowledgement_owed_rides_on_the_next_batch() {
    let mut p = Pair::connected(Config::default());
    p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
    for (_, bytes) in transmits(&mut p.b) {
        p.a.handle_datagram(p.now, addr(B), &bytes);
    }
    assert_eq!(delivered(&events(&mut p.a)), vec![1]);
    // A owes B an acknowledgement (delayed); its burst to B carries it.
    for n in 1..=3 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    let out = transmits(&mut p.a);
    assert_eq!(out.len(), 1, "no acknowledgement of its own");
    assert!(matches!(
        wire::decode(&out[0].1, PROTOCOL_VERSION),
        Ok(Datagram::Batch { header, .. }) if header.ack.as_ref().is_some_and(|a| a.cumulative == 1)
    ));
    p.b.handle_datagram(p.now, addr(A), &out[0].1);
    let at_b = events(&mut p.b);
    assert_eq!(acked(&at_b).len(), 1);
    assert_eq!(delivered(&at_b), vec![1, 2, 3]);
}

#[test]
fn nothing_in_a_batch_is_acted_on_before_its_tag_verifies() {
    let mut p = Pair::connected(Config::default());
    for n in 1..=5 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
    }
    let out = transmits(&mut p.a);
    assert_eq!(out.len(), 1);
    // Any byte changed: header, a payload or the tag.
    for at in [10, out[0].1.len() - 20, out[0].1.len() - 1] {
        let mut bytes = out[0].1.clone();
        bytes[at] ^= 0x40;
        p.b.handle_datagram(p.now, addr(A), &bytes);
    }
    assert!(events(&mut p.b).is_empty());
    assert!(transmits(&mut p.b).is_empty());
    assert!(p.b.stats().unauthenticated >= 1);
    p.b.handle_datagram(p.now, addr(A), &out[0].1);
    assert_eq!(delivered(&events(&mut p.b)), vec![1, 2, 3, 4, 5]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the burst and the limit: every message goes out at the next `poll_transmit`,
    /// once, in sequence order; a batch holds two or more messages and fits the limit; and
    /// the receiver delivers them all, in order.
    #[test]
    fn bursts_are_coalesced_within_the_limit(
        sizes in proptest::collection::vec(0usize..600, 1..100),
        coalesce_limit in 0usize..3000,
    ) {
        let config = Config { coalesce_limit, max_unacked: 128, ..Config::default() };
        let mut p = Pair::connected(config);
        for (n, size) in sizes.iter().enumerate() {
            let mut m = msg(0, n as u64 + 1);
            let mut payload = m.payload.to_vec();
            payload.resize(12 + size, 7);
            m.payload = payload.into();
            p.a.send(p.now, addr(B), m).unwrap();
        }
        let out = transmits(&mut p.a);
        let mut seqs = Vec::new();
        for (_, bytes) in &out {
            let (carried, batch) = carried(bytes);
            if batch {
                prop_assert!(carried.len() >= 2);
                prop_assert!(bytes.len() <= coalesce_limit);
            } else {
                prop_assert_eq!(carried.len(), 1);
            }
            seqs.extend(carried);
            p.b.handle_datagram(p.now, addr(A), bytes);
        }
        prop_assert_eq!(seqs, (1..=sizes.len() as u64).collect::<Vec<_>>());
        prop_assert_eq!(
            delivered(&events(&mut p.b)),
            (1..=sizes.len() as u64).collect::<Vec<_>>()
        );
    }

    /// Whatever the seed and fault rates: exactly once and in order, or reported; never a hang.
    #[test]
    fn any_lossy_network_keeps_the_promise(
        seed in any::<u64>(),
        drop in 0.0f64..0.5,
        duplicate in 0.0f64..0.3,
        reorder in 0.0f64..0.5,
        count in 1u64..150,
        window in 1usize..64,
        coalesce_limit in 0usize..4000,
    ) {
        let config = Config {
            max_unacked: window,
            max_retransmits: 8,
            coalesce_limit,
            ..fast_config()
        };
        let flows = vec![
            Flow { from: 0, to: 1, count },
            Flow { from: 1, to: 0, count: count / 2 + 1 },
        ];
        let mut sim = Sim::new(seed, Faults { drop, duplicate, reorder }, &config, 2, flows);
        sim.run(500_000);
        sim.check();
    }

    /// Any bytes handed to a machine, fresh or mid-conversation, are handled without a panic.
    #[test]
    fn any_datagram_is_handled_without_panic(
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..8),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
    ) {
        let mut p = Pair::new(Config::default());
        p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
        p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
        let mut valid: Vec<Vec<u8>> = transmits(&mut p.a).into_iter().map(|t| t.1).collect();
        p.exchange();
        for bytes in &mut valid {
            for (at, value) in &flips {
                let len = bytes.len();
                bytes[at % len] = *value;
            }
        }
        for bytes in garbage.iter().chain(&valid) {
            p.b.handle_datagram(p.now, addr(A), bytes);
            p.a.handle_datagram(p.now, addr(B), bytes);
        }
        p.now += Duration::from_secs(1);
        p.a.handle_timeout(p.now);
        p.b.handle_timeout(p.now);
        let _ = (transmits(&mut p.a), transmits(&mut p.b), events(&mut p.a), events(&mut p.b));
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions: the handshake, wrong secrets, forgeries, floods.

fn handshake_kind(bytes: &[u8]) -> Option<&'static str> {
    match wire::decode(bytes, PROTOCOL_VERSION) {
        Ok(Datagram::Handshake { kind, .. }) => Some(match kind {
            Kind::Hello(_) => "hello",
            Kind::Welcome(_) => "welcome",
            Kind::Confirm(_) => "confirm",
            Kind::Reject(_) => "reject",
            Kind::Data(_) | Kind::Ack(_) | Kind::Batch(_) => "other",
        }),
        _ => None,
    }
}

#[test]
fn messages_wait_for_the_handshake_then_go_out_in_order() {
    let config = Config {
        max_unacked: 3,
        ..Config::default()
    };
    let mut p = Pair::new(config);
    let ids: Vec<MessageId> = (1..=3)
        .map(|n| p.a.send(p.now, addr(B), msg(0, n)).unwrap())
        .collect();
    // Only a Hello leaves; the messages wait, and count against the window.
    let out = transmits(&mut p.a);
    assert_eq!(out.len(), 1);
    assert_eq!(handshake_kind(&out[0].1), Some("hello"));
    assert!(matches!(
        p.a.send(p.now, addr(B), msg(0, 4)),
        Err(SendError::WindowFull { messages: 3, .. })
    ));
    assert_eq!(p.a.unacked(addr(B)), 3);
    // Hello, Welcome, Confirm (with the three messages), B's proof and acknowledgement.
    p.b.handle_datagram(p.now, addr(A), &out[0].1);
    let welcome = transmits(&mut p.b);
    assert_eq!(handshake_kind(&welcome[0].1), Some("welcome"));
    assert!(!p.b.has_session(addr(A)), "not before the Confirm");
    p.a.handle_datagram(p.now, addr(B), &welcome[0].1);
    assert!(p.a.has_session(addr(B)));
    let confirm_and_data = transmits(&mut p.a);
    assert_eq!(confirm_and_data.len(), 2);
    assert_eq!(handshake_kind(&confirm_and_data[0].1), Some("confirm"));
    assert!(matches!(
        wire::decode(&confirm_and_data[1].1, PROTOCOL_VERSION),
        Ok(Datagram::Batch { header, .. }) if header.first_seq == 1 && header.messages.len() == 3
    ));
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1, 2, 3]);
    assert_eq!(acked(&events(&mut p.a)), ids);
    assert_eq!(p.a.handshakes() + p.b.handshakes(), 0);
    assert_eq!(p.a.stats(), Stats::default());
    assert_eq!(p.b.stats(), Stats::default());
}

#[test]
fn a_wrong_secret_fails_the_waiting_messages_at_once_with_a_clear_reason() {
    for initiator_is_a in [true, false] {
        let mut p = Pair::new(Config::default());
        p.b = machine_with(
            Config::default(),
            inc(2),
            Secret::from_text(b"another system's secret").unwrap(),
        );
        let (sender, receiver) = if initiator_is_a {
            (&mut p.a, addr(B))
        } else {
            (&mut p.b, addr(A))
        };
        let ids: Vec<MessageId> = (1..=3)
            .map(|n| sender.send(p.now, receiver, msg(0, n)).unwrap())
            .collect();
        let start = p.now;
        p.exchange();
        assert_eq!(p.now, start, "no timer was needed");
        let (sender, other) = if initiator_is_a {
            (&mut p.a, &mut p.b)
        } else {
            (&mut p.b, &mut p.a)
        };
        let failed = undeliverable(&events(sender));
        assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), ids);
        for (_, _, reason) in &failed {
            assert_eq!(
                *reason,
                UndeliverableReason::AuthenticationFailed(AuthError::WrongSecret)
            );
            assert_eq!(
                reason.to_string(),
                "authentication failed: this system uses another secret"
            );
            assert!(
                !reason.is_dead_target(),
                "a PoisonMessage, not a dead letter"
            );
        }
        // Both sides noticed (the other one by the reject), neither keeps a handshake, and
        // nothing was delivered.
        assert_eq!(sender.stats().handshakes_failed, 1);
        assert_eq!(other.stats().handshakes_failed, 1);
        assert!(delivered(&events(other)).is_empty());
        assert_eq!(sender.handshakes() + other.handshakes(), 0);
        assert!(
            !sender.is_dead(p.now, receiver),
            "the next send tries again"
        );
        assert_eq!(sender.unacked(receiver), 0);
    }
}

#[test]
fn a_simultaneous_open_ends_in_one_session_opened_by_the_lower_incarnation() {
    let mut p = Pair::new(Config::default());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
    // Both Hellos cross; B (the higher incarnation) answers A's, A ignores B's.
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
    assert_eq!(delivered(&events(&mut p.a)), vec![1]);
    assert_eq!(
        acked(&events(&mut p.a)).len() + acked(&events(&mut p.b)).len(),
        0
    );
    assert_eq!(p.a.stats(), Stats::default());
    assert_eq!(p.b.stats(), Stats::default());
    // A wrong secret in a simultaneous open fails both sides' messages.
    let mut q = Pair::new(Config::default());
    q.b = machine_with(
        Config::default(),
        inc(2),
        Secret::from_text(b"another system's secret").unwrap(),
    );
    q.a.send(q.now, addr(B), msg(0, 1)).unwrap();
    q.b.send(q.now, addr(A), msg(1, 1)).unwrap();
    q.exchange();
    for m in [&mut q.a, &mut q.b] {
        let failed = undeliverable(&events(m));
        assert_eq!(failed.len(), 1);
        assert_eq!(
            failed[0].2,
            UndeliverableReason::AuthenticationFailed(AuthError::WrongSecret)
        );
    }
}

#[test]
fn a_silent_peer_fails_the_waiting_messages_after_the_handshake_retries() {
    let mut p = Pair::new(fast_config());
    let ids: Vec<MessageId> = (1..=2)
        .map(|n| p.a.send(p.now, addr(B), msg(0, n)).unwrap())
        .collect();
    let start = p.now;
    let mut hellos = transmits(&mut p.a).len();
    let failed = loop {
        p.now = p.a.poll_timeout().expect("a handshake timer");
        p.a.handle_timeout(p.now);
        hellos += transmits(&mut p.a).len();
        let failed = undeliverable(&events(&mut p.a));
        if !failed.is_empty() {
            break failed;
        }
        assert!(p.now - start < Duration::from_secs(5), "never gave up");
    };
    assert_eq!(hellos, 5, "1 Hello + 4 retransmissions");
    assert_eq!(
        p.now - start,
        Duration::from_millis(10 + 20 + 40 + 80 + 100)
    );
    assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), ids);
    assert!(failed
        .iter()
        .all(|f| f.2 == UndeliverableReason::RetriesExhausted { transmissions: 5 }));
    assert!(p.a.is_dead(p.now, addr(B)));
    assert_eq!(p.a.handshakes(), 0);
}

#[test]
fn lost_handshake_datagrams_are_sent_again() {
    // Drop the n-th datagram of the conversation, for each n in the handshake.
    for lose in 0..6 {
        let mut p = Pair::new(fast_config());
        p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
        let mut carried = 0;
        for _ in 0..200 {
            let from_a = transmits(&mut p.a);
            let from_b = transmits(&mut p.b);
            for (_, bytes) in from_a {
                carried += 1;
                if carried - 1 != lose {
                    p.b.handle_datagram(p.now, addr(A), &bytes);
                }
            }
            for (_, bytes) in from_b {
                carried += 1;
                if carried - 1 != lose {
                    p.a.handle_datagram(p.now, addr(B), &bytes);
                }
            }
            if p.a.unacked(addr(B)) == 0
                && p.a
                    .poll_timeout()
                    .is_none_or(|t| t > p.now + Duration::from_secs(1))
            {
                break;
            }
            p.advance();
        }
        assert_eq!(
            delivered(&events(&mut p.b)),
            vec![1],
            "losing datagram {lose}"
        );
        assert_eq!(acked(&events(&mut p.a)).len(), 1, "losing datagram {lose}");
    }
}

#[test]
fn the_confirm_is_sent_again_until_the_responder_shows_it_has_the_session() {
    let mut p = Pair::new(fast_config());
    p.a.initiate(p.now, addr(B), 0, false);
    let hello = transmits(&mut p.a);
    p.b.handle_datagram(p.now, addr(A), &hello[0].1);
    let welcome = transmits(&mut p.b);
    p.a.handle_datagram(p.now, addr(B), &welcome[0].1);
    // The Confirm is lost.
    assert_eq!(handshake_kind(&transmits(&mut p.a)[0].1), Some("confirm"));
    assert!(!p.b.has_session(addr(A)));
    p.advance();
    let again = transmits(&mut p.a);
    assert_eq!(handshake_kind(&again[0].1), Some("confirm"));
    p.b.handle_datagram(p.now, addr(A), &again[0].1);
    assert!(p.b.has_session(addr(A)));
    // B's proof stops A's retransmissions.
    p.exchange();
    assert!(p.a.peers[&addr(B)]
        .session
        .as_ref()
        .unwrap()
        .confirm
        .is_none());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
}

#[test]
fn forged_datagrams_change_nothing_in_an_established_session() {
    let mut p = Pair::connected(fast_config());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    let genuine = transmits(&mut p.a);
    p.b.handle_datagram(p.now, addr(A), &genuine[0].1);
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
    let _ = events(&mut p.a);
    let (stranger, _) = stranger_keys();
    let impostor = inc(99);
    let to_b = Route {
        version: PROTOCOL_VERSION,
        from: impostor,
        to: Some(inc(2)),
    };
    let seal = || wire::Seal {
        key: &stranger.send,
        counter: 1,
    };
    let mut tampered = genuine[0].1.clone();
    let last = tampered.len() - 20;
    tampered[last] ^= 1;
    let hello = Initiator::new(&secret(), "x", impostor.raw(), Nonce([7; 32]), Vec::new())
        .hello()
        .clone();
    let forgeries: Vec<Vec<u8>> = vec![
        // The payload changed in flight: the tag fails.
        tampered,
        // "A new incarnation at A's address", with data and with an acknowledgement.
        wire::encode_data(
            to_b,
            seal(),
            Position {
                stream: 1,
                seq: 2,
                base: 1,
            },
            &msg(0, 666),
            None,
        ),
        wire::encode_ack(
            to_b,
            seal(),
            &Ack {
                stream: 1,
                cumulative: 0,
                ranges: Vec::new(),
            },
        ),
        // A new incarnation's Hello (answered, but it cannot finish without the secret).
        wire::encode_handshake(
            to_b,
            HandshakeRef::Hello(&HelloBody {
                hello: hello.clone(),
                opening: 1,
            }),
        ),
        wire::encode_handshake(
            to_b,
            HandshakeRef::Confirm(&ConfirmBody {
                hello: hello.clone(),
                hello_to: Some(inc(2)),
                opening: 1,
                confirm: thespian_auth::Confirm { proof: [0; 32] },
            }),
        ),
        // Rejects and a version notice, from the impostor and in the peer's name.
        wire::encode_handshake(to_b, HandshakeRef::Reject(RejectReason::WrongSecret)),
        wire::encode_handshake(
            Route {
                from: inc(1),
                ..to_b
            },
            HandshakeRef::Reject(RejectReason::WrongSecret),
        ),
        wire::encode_version_notice(PROTOCOL_VERSION + 1),
        // A replay.
        genuine[0].1.clone(),
    ];
    for bytes in &forgeries {
        p.b.handle_datagram(p.now, addr(A), bytes);
        p.a.handle_datagram(p.now, addr(B), bytes);
    }
    // Whatever B answered reaches A, which ignores it.
    p.settle();
    for m in [&mut p.a, &mut p.b] {
        let seen = events(m);
        assert!(seen.is_empty(), "{seen:?}");
    }
    assert!(p.b.stats().unauthenticated >= 3, "{:?}", p.b.stats());
    assert_eq!(p.b.peers[&addr(A)].incarnation, Some(inc(1)));
    assert!(!p.a.is_dead(p.now, addr(B)) && !p.b.is_dead(p.now, addr(A)));
    // Every later message is still delivered and acknowledged, both ways.
    for n in 2..=20 {
        p.a.send(p.now, addr(B), msg(0, n)).unwrap();
        p.b.send(p.now, addr(A), msg(1, n)).unwrap();
    }
    p.settle();
    for m in [&mut p.a, &mut p.b] {
        let seen = events(m);
        assert_eq!(delivered(&seen), (2..=20).collect::<Vec<_>>());
        assert_eq!(acked(&seen).len(), 19);
        assert!(undeliverable(&seen).is_empty());
    }
}

#[test]
fn a_forged_reject_fails_only_the_handshake_in_progress() {
    let mut p = Pair::new(fast_config());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    let hello = transmits(&mut p.a);
    // An off-path attacker guessing the moment (and B's incarnation) fails this attempt.
    let forged = wire::encode_handshake(
        Route {
            version: PROTOCOL_VERSION,
            from: inc(2),
            to: Some(inc(1)),
        },
        HandshakeRef::Reject(RejectReason::WrongSecret),
    );
    p.a.handle_datagram(p.now, addr(B), &forged);
    let failed = undeliverable(&events(&mut p.a));
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].2,
        UndeliverableReason::AuthenticationFailed(AuthError::WrongSecret)
    );
    // The real B's Welcome then finds no handshake and is ignored; the next message opens
    // a session, which the same forgery no longer touches.
    p.b.handle_datagram(p.now, addr(A), &hello[0].1);
    p.exchange();
    p.a.send(p.now, addr(B), msg(0, 2)).unwrap();
    p.settle();
    p.a.handle_datagram(p.now, addr(B), &forged);
    p.b.handle_datagram(p.now, addr(A), &forged);
    p.a.send(p.now, addr(B), msg(0, 3)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![2, 3]);
    let at_a = events(&mut p.a);
    assert_eq!(acked(&at_a).len(), 2);
    assert!(undeliverable(&at_a).is_empty());
}

#[test]
fn a_new_incarnation_retires_the_old_only_once_its_handshake_completes() {
    let mut p = Pair::connected(Config::default());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    let _ = transmits(&mut p.a);
    // A Hello "from a new incarnation of A" (forged or real) leaves the session alone ...
    let mut new_a = machine(Config::default(), inc(11));
    new_a.send(p.now, addr(B), msg(5, 1)).unwrap();
    let hello = transmits(&mut new_a);
    p.b.handle_datagram(p.now, addr(A), &hello[0].1);
    let welcome = transmits(&mut p.b);
    assert_eq!(p.b.peers[&addr(A)].incarnation, Some(inc(1)));
    assert!(events(&mut p.b).is_empty());
    // ... the old A's traffic still flows (well within the responder's wait) ...
    let mut at_a = Vec::new();
    for _ in 0..10 {
        p.exchange();
        at_a.extend(events(&mut p.a));
        if !acked(&at_a).is_empty() {
            break;
        }
        p.advance();
    }
    assert_eq!(acked(&at_a).len(), 1);
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
    assert_eq!(p.b.handshakes(), 0, "a responder keeps nothing");
    // ... until the new incarnation proves itself: only then is the old one gone.
    new_a.handle_datagram(p.now, addr(B), &welcome[0].1);
    for (_, bytes) in transmits(&mut new_a) {
        p.b.handle_datagram(p.now, addr(A), &bytes);
    }
    let at_b = events(&mut p.b);
    assert!(at_b.contains(&Event::PeerRestarted {
        peer: addr(A),
        old: inc(1),
        new: inc(11)
    }));
    assert_eq!(delivered(&at_b), vec![1]);
    // The old incarnation's datagrams are now refused.
    p.a.send(p.now, addr(B), msg(0, 2)).unwrap();
    for (_, bytes) in transmits(&mut p.a) {
        p.b.handle_datagram(p.now, addr(A), &bytes);
    }
    assert!(delivered(&events(&mut p.b)).is_empty());
}

/// `n` Hellos of strangers holding the secret's handshake format (no secret is needed to
/// send one), each from its own source address, each twice.
fn hello_flood(m: &mut Machine, now: Instant, n: u64) {
    let secret = secret();
    for i in 0..n {
        let from = SocketAddr::from(([127, 1, (i >> 8) as u8, i as u8], 4000 + (i % 7) as u16));
        let initiator = Initiator::new(
            &secret,
            "x",
            0x10_0000 + i,
            Nonce([i as u8; 32]),
            Vec::new(),
        );
        let route = Route {
            version: PROTOCOL_VERSION,
            from: SystemId::from_raw(0x10_0000 + i),
            to: None,
        };
        let bytes = wire::encode_handshake(
            route,
            HandshakeRef::Hello(&HelloBody {
                hello: initiator.hello().clone(),
                opening: 1,
            }),
        );
        m.handle_datagram(now, from, &bytes);
        m.handle_datagram(now, from, &bytes);
    }
}

#[test]
fn a_flood_of_hellos_holds_no_state_and_delays_no_real_peer() {
    let config = Config {
        max_handshakes: 64,
        ..fast_config()
    };
    let mut p = Pair::new(config);
    let start = p.now;
    hello_flood(&mut p.b, p.now, 10_000);
    // Every Hello is answered (the same Welcome for a repeat), and nothing is kept.
    let welcomes = transmits(&mut p.b);
    assert_eq!(welcomes.len(), 2 * 10_000);
    assert_eq!(
        welcomes[0].1, welcomes[1].1,
        "a repeat draws the same Welcome"
    );
    assert_eq!(p.b.handshakes(), 0);
    assert_eq!(p.b.peers(), 0, "no peer is remembered for a handshake");
    assert_eq!(p.b.stats().handshakes_refused, 0);
    // A real peer's Hello, at once, is answered and its message delivered without waiting for
    // anything to expire.
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.exchange();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
    assert_eq!(p.now, start);
}

/// Both directions open at once, under heavy loss, duplication and reordering: every seed
/// ends with every message acknowledged (simultaneous opens, late `Confirm`s of sessions
/// given up, re-openings). `coalesce_limit` 0 sends one message per datagram.
fn handshakes_survive_heavy_loss(coalesce_limit: usize, seeds: Range<u64>) {
    let config = Config {
        max_retransmits: 20,
        max_unacked: 16,
        coalesce_limit,
        ..fast_config()
    };
    for seed in seeds {
        let flows = vec![
            Flow {
                from: 0,
                to: 1,
                count: 20,
            },
            Flow {
                from: 1,
                to: 0,
                count: 20,
            },
        ];
        let faults = Faults {
            drop: 0.3,
            duplicate: 0.1,
            reorder: 0.2,
        };
        let mut sim = Sim::new(seed, faults, &config, 2, flows);
        sim.run(200_000);
        assert_eq!(
            sim.check(),
            0,
            "seed {seed} (coalesce_limit {coalesce_limit}): given up despite the retries"
        );
    }
}

#[test]
fn handshakes_survive_heavy_loss_one_message_per_datagram() {
    handshakes_survive_heavy_loss(0, 0..512);
}

#[test]
fn handshakes_survive_heavy_loss_coalesced() {
    handshakes_survive_heavy_loss(Config::default().coalesce_limit, 0..512);
}

/// The interleaving that left two peers on different sessions before handshakes named
/// their sessions (seed 70 of the heavy-loss simulation): both open at once, B (the higher
/// incarnation) yields, A's session is made but its `Confirm` lost, B opens again after
/// waiting, A answers, and then A's retransmitted `Confirm` and B's late one cross. B takes
/// A's (the lower incarnation's session wins); A refuses B's and opens a new session, which
/// B takes: both end on one session and every message arrives.
#[test]
fn crossing_confirms_of_a_simultaneous_open_leave_both_sides_on_one_session() {
    let mut p = Pair::new(fast_config());
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
    let hello_a = transmits(&mut p.a).remove(0).1;
    let hello_b = transmits(&mut p.b).remove(0).1;
    // B, the higher incarnation, answers A's Hello and yields; A ignores B's.
    p.b.handle_datagram(p.now, addr(A), &hello_a);
    let welcome_a = transmits(&mut p.b).remove(0).1;
    assert_eq!(handshake_kind(&welcome_a), Some("welcome"));
    p.a.handle_datagram(p.now, addr(B), &hello_b);
    assert!(transmits(&mut p.a).is_empty());
    // A makes its session; its Confirm and its message are lost.
    p.a.handle_datagram(p.now, addr(B), &welcome_a);
    let confirm_a = transmits(&mut p.a).remove(0).1;
    assert_eq!(handshake_kind(&confirm_a), Some("confirm"));
    // B waited long enough: it opens a session itself, which A answers.
    p.now = p.b.poll_timeout().expect("B waits for A's Confirm");
    p.b.handle_timeout(p.now);
    let hello_b = transmits(&mut p.b).remove(0).1;
    assert_eq!(handshake_kind(&hello_b), Some("hello"));
    p.a.handle_datagram(p.now, addr(B), &hello_b);
    let welcome_b = transmits(&mut p.a).remove(0).1;
    assert_eq!(handshake_kind(&welcome_b), Some("welcome"));
    p.b.handle_datagram(p.now, addr(A), &welcome_b);
    // B's Confirm is held up in the network; its message is lost.
    let confirm_b = transmits(&mut p.b).remove(0).1;
    assert_eq!(handshake_kind(&confirm_b), Some("confirm"));
    // A's Confirm (sent again) reaches B, which takes A's session; B's proof reaches A.
    p.b.handle_datagram(p.now, addr(A), &confirm_a);
    assert!(p.b.peers[&addr(A)]
        .session
        .as_ref()
        .is_some_and(|s| !s.initiated));
    for (_, bytes) in transmits(&mut p.b) {
        p.a.handle_datagram(p.now, addr(B), &bytes);
    }
    assert!(p.a.peers[&addr(B)]
        .session
        .as_ref()
        .is_some_and(|s| s.initiated && s.confirm.is_none()));
    // Now B's late Confirm arrives: A keeps its session and opens a new one.
    p.a.handle_datagram(p.now, addr(B), &confirm_b);
    assert!(p.a.peers[&addr(B)]
        .session
        .as_ref()
        .is_some_and(|s| s.initiated));
    let reopening = transmits(&mut p.a);
    assert_eq!(reopening.len(), 1);
    assert_eq!(handshake_kind(&reopening[0].1), Some("hello"));
    p.b.handle_datagram(p.now, addr(A), &reopening[0].1);
    // A repeat of B's Confirm changes nothing more.
    p.a.handle_datagram(p.now, addr(B), &confirm_b);
    assert!(transmits(&mut p.a).is_empty());
    p.settle();
    let at_a = events(&mut p.a);
    let at_b = events(&mut p.b);
    assert_eq!(delivered(&at_a), vec![1]);
    assert_eq!(delivered(&at_b), vec![1]);
    assert_eq!(acked(&at_a).len(), 1);
    assert_eq!(acked(&at_b).len(), 1);
    assert!(undeliverable(&at_a).is_empty() && undeliverable(&at_b).is_empty());
    assert_eq!(p.a.stats().unauthenticated + p.b.stats().unauthenticated, 0);
}

/// A `Welcome` names the opening it answers: one answering an earlier `Hello` of ours,
/// arriving late while a newer handshake of ours is in progress, is ignored (it is not a
/// failed proof, and fails nothing).
#[test]
fn a_late_welcome_of_an_earlier_hello_fails_nothing() {
    let mut p = Pair::new(fast_config());
    // B opens; A answers, and the Welcome is held up in the network.
    p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
    let hello_b = transmits(&mut p.b).remove(0).1;
    p.a.handle_datagram(p.now, addr(B), &hello_b);
    let late_welcome = transmits(&mut p.a).remove(0).1;
    assert_eq!(handshake_kind(&late_welcome), Some("welcome"));
    // A opens too; B (the higher incarnation) yields and answers. A's Confirm is lost.
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    let hello_a = transmits(&mut p.a).remove(0).1;
    p.b.handle_datagram(p.now, addr(A), &hello_a);
    let welcome_a = transmits(&mut p.b).remove(0).1;
    p.a.handle_datagram(p.now, addr(B), &welcome_a);
    let _lost = transmits(&mut p.a);
    // B waited long enough and opens again; then the first Welcome arrives.
    p.now = p.b.poll_timeout().expect("B waits for A's Confirm");
    p.b.handle_timeout(p.now);
    assert_eq!(
        handshake_kind(&transmits(&mut p.b).remove(0).1),
        Some("hello")
    );
    p.b.handle_datagram(p.now, addr(A), &late_welcome);
    assert!(transmits(&mut p.b).is_empty(), "no Reject, no Confirm");
    assert!(undeliverable(&events(&mut p.b)).is_empty());
    assert_eq!(p.b.stats().handshakes_failed, 0);
    p.settle();
    let at_a = events(&mut p.a);
    let at_b = events(&mut p.b);
    assert_eq!(delivered(&at_a), vec![1]);
    assert_eq!(delivered(&at_b), vec![1]);
    assert!(undeliverable(&at_a).is_empty() && undeliverable(&at_b).is_empty());
}

/// Either side may forget a session (an idle peer is forgotten) and open a new one while the
/// other still holds the old: the newer session always takes over. When the higher
/// incarnation re-opens, the lower refuses its `Confirm` (its own session stands) and opens
/// the new session itself.
#[test]
fn a_forgotten_session_is_replaced_whichever_side_forgot() {
    let mut p = Pair::connected(fast_config());
    // The lower incarnation (A, which opened the session) forgets it and sends.
    p.a.peers.remove(&addr(B));
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![1]);
    assert_eq!(acked(&events(&mut p.a)).len(), 1);
    // The higher incarnation forgets the session and sends: A refuses B's session, opens
    // its third, and B takes it.
    p.b.peers.remove(&addr(A));
    p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.a)), vec![1]);
    let at_b = events(&mut p.b);
    assert_eq!(acked(&at_b).len(), 1);
    assert!(undeliverable(&at_b).is_empty());
    assert_eq!(p.a.next_opening, 4);
    assert_eq!(
        p.b.peers[&addr(A)].session.as_ref().unwrap().theirs,
        Some(3)
    );
    // Both sides are on that session: traffic flows both ways.
    p.a.send(p.now, addr(B), msg(0, 2)).unwrap();
    p.b.send(p.now, addr(A), msg(1, 2)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![2]);
    assert_eq!(delivered(&events(&mut p.a)), vec![2]);
}

#[test]
fn a_forged_hello_delays_the_higher_incarnations_messages_by_one_retransmission() {
    let mut p = Pair::new(fast_config());
    // B (the higher incarnation) opens a session; a forged Hello "from A" makes it yield.
    p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
    let _ = transmits(&mut p.b);
    let forged = Initiator::new(&secret(), "x", inc(1).raw(), Nonce([3; 32]), Vec::new())
        .hello()
        .clone();
    let route = Route {
        version: PROTOCOL_VERSION,
        from: inc(1),
        to: None,
    };
    let start = p.now;
    p.b.handle_datagram(
        p.now,
        addr(A),
        &wire::encode_handshake(
            route,
            HandshakeRef::Hello(&HelloBody {
                hello: forged,
                opening: 1,
            }),
        ),
    );
    // The real A ignores the Welcome meant for the forger ...
    p.exchange();
    assert!(!p.a.has_session(addr(B)) && !p.b.has_session(addr(A)));
    // ... and B opens the session itself after one handshake timeout.
    p.settle();
    assert_eq!(delivered(&events(&mut p.a)), vec![1]);
    assert_eq!(acked(&events(&mut p.b)).len(), 1);
    assert!(
        p.now - start <= Duration::from_millis(30),
        "{:?}",
        p.now - start
    );
}

#[test]
fn a_version_notice_counts_only_against_a_handshake_we_started_for_our_messages() {
    let notice = wire::encode_version_notice(PROTOCOL_VERSION + 1);
    let mut p = Pair::new(fast_config());
    // No handshake with A at all: a spoofed notice in A's name changes nothing.
    p.b.handle_datagram(p.now, addr(A), &notice);
    assert!(!p.b.is_dead(p.now, addr(A)));
    assert!(p.b.dead.is_empty());
    // A handshake B opened only because of data from A (nothing of B's waits): still nothing.
    let (stranger, _) = stranger_keys();
    let data = wire::encode_data(
        Route {
            version: PROTOCOL_VERSION,
            from: inc(1),
            to: Some(inc(2)),
        },
        wire::Seal {
            key: &stranger.send,
            counter: 1,
        },
        Position {
            stream: 1,
            seq: 1,
            base: 1,
        },
        &msg(0, 1),
        None,
    );
    p.b.handle_datagram(p.now, addr(A), &data);
    assert_eq!(p.b.handshakes(), 1);
    p.b.handle_datagram(p.now, addr(A), &notice);
    assert!(!p.b.is_dead(p.now, addr(A)));
    // A send that follows still reaches A.
    let _ = transmits(&mut p.b);
    p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.a)), vec![1]);
    assert!(undeliverable(&events(&mut p.b)).is_empty());
}

#[test]
fn version_notices_from_many_sources_leave_no_trace() {
    let mut b = machine(Config::default(), inc(2));
    let now = Instant::now();
    let notice = wire::encode_version_notice(PROTOCOL_VERSION + 1);
    for i in 0..20_000u32 {
        let from = SocketAddr::from(([127, (i >> 16) as u8, (i >> 8) as u8, i as u8], 5000));
        b.handle_datagram(now, from, &notice);
    }
    assert!(b.dead.is_empty());
    assert_eq!(b.peers(), 0);
    assert!(events(&mut b).is_empty());
}

#[test]
fn the_dead_address_memory_is_bounded_and_keeps_the_newest() {
    let config = Config {
        max_peers: 4,
        ..Config::default()
    };
    let mut b = machine(config, inc(2));
    let start = Instant::now();
    for i in 0..10u8 {
        b.mark_dead(start + Duration::from_millis(u64::from(i)), addr(10 + i));
    }
    let now = start + Duration::from_millis(10);
    assert_eq!(b.dead.len(), 4);
    for i in 0..10u8 {
        assert_eq!(b.is_dead(now, addr(10 + i)), i >= 6, "address {i}");
    }
}

#[test]
fn a_replayed_confirm_creates_nothing_new() {
    let config = Config {
        handshake_timeout: Duration::from_secs(1),
        ..fast_config()
    };
    let mut p = Pair::new(config);
    p.a.initiate(p.now, addr(B), 0, false);
    let hello = transmits(&mut p.a);
    p.b.handle_datagram(p.now, addr(A), &hello[0].1);
    let welcome = transmits(&mut p.b);
    p.a.handle_datagram(p.now, addr(B), &welcome[0].1);
    let confirm = transmits(&mut p.a).remove(0).1;
    assert_eq!(handshake_kind(&confirm), Some("confirm"));
    // From another address, the Confirm proves nothing: the address is in the cookie.
    p.b.handle_datagram(p.now, addr(3), &confirm);
    assert!(!p.b.has_session(addr(3)));
    assert_eq!(p.b.stats().handshakes_failed, 1);
    p.b.handle_datagram(p.now, addr(A), &confirm);
    assert!(p.b.has_session(addr(A)));
    p.exchange();
    p.a.send(p.now, addr(B), msg(0, 1)).unwrap();
    p.b.send(p.now, addr(A), msg(1, 1)).unwrap();
    p.settle();
    let sent = p.b.peers[&addr(A)].session.as_ref().unwrap().sent;
    // A replay of the Confirm that made the session draws our proof that we have it, and
    // leaves the session as it is (its keys and counters go on).
    p.b.handle_datagram(p.now, addr(A), &confirm);
    assert_eq!(transmits(&mut p.b).len(), 1);
    assert_eq!(p.b.peers[&addr(A)].session.as_ref().unwrap().sent, sent + 1);
    assert!(events(&mut p.b)
        .iter()
        .all(|e| !matches!(e, Event::PeerRestarted { .. })));
    // After a newer session (a new Hello), the old Confirm cannot bring the old one back.
    p.a.initiate(p.now, addr(B), 0, false);
    p.exchange();
    let newer = p.b.peers[&addr(A)].session.as_ref().unwrap().theirs;
    assert_eq!(newer, Some(2));
    p.b.handle_datagram(p.now, addr(A), &confirm);
    assert!(transmits(&mut p.b).is_empty());
    assert_eq!(p.b.peers[&addr(A)].session.as_ref().unwrap().theirs, newer);
    p.a.send(p.now, addr(B), msg(0, 2)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![2]);
    // Once B forgot the session, a replay within its cookie epochs would open it again (the
    // initiator holds the same keys, so nothing is gained); after them it is refused.
    p.b.peers.remove(&addr(A));
    p.now += Duration::from_secs(2);
    p.b.handle_datagram(p.now, addr(A), &confirm);
    assert!(!p.b.has_session(addr(A)));
    assert_eq!(p.b.stats().handshakes_failed, 2);
    // A real new Hello still opens a session.
    p.a.peers.remove(&addr(B));
    p.a.send(p.now, addr(B), msg(0, 3)).unwrap();
    p.settle();
    assert_eq!(delivered(&events(&mut p.b)), vec![3]);
}

#[test]
fn a_confirm_at_the_end_of_its_cookie_epoch_is_still_good() {
    let config = Config {
        handshake_timeout: Duration::from_secs(1),
        ..fast_config()
    };
    let mut p = Pair::new(config);
    // B's epochs start at its first Hello; A's Hello comes just before the next epoch.
    hello_flood(&mut p.b, p.now, 1);
    let _ = transmits(&mut p.b);
    p.now += Duration::from_millis(999);
    p.a.initiate(p.now, addr(B), 0, false);
    let hello = transmits(&mut p.a);
    p.b.handle_datagram(p.now, addr(A), &hello[0].1);
    let welcome = transmits(&mut p.b);
    p.a.handle_datagram(p.now, addr(B), &welcome[0].1);
    let confirm = transmits(&mut p.a).remove(0).1;
    p.now += Duration::from_millis(2);
    p.b.handle_datagram(p.now, addr(A), &confirm);
    assert!(p.b.has_session(addr(A)));
}

#[test]
fn a_relay_on_another_port_cannot_splice_a_handshake() {
    // A believes B is at the relay (B's host, another port); the relay forwards everything
    // both ways, in its own name.
    let relay = SocketAddr::from(([10, 0, 0, B], 9001));
    let relay_seen_by_b = SocketAddr::from(([10, 0, 0, 9], 9000));
    let mut p = Pair::new(fast_config());
    p.a.send(p.now, relay, msg(0, 1)).unwrap();
    for _ in 0..20 {
        let from_a = transmits(&mut p.a);
        let from_b = transmits(&mut p.b);
        for (to, bytes) in from_a {
            assert_eq!(to, relay);
            p.b.handle_datagram(p.now, relay_seen_by_b, &bytes);
        }
        for (to, bytes) in from_b {
            assert_eq!(to, relay_seen_by_b);
            p.a.handle_datagram(p.now, relay, &bytes);
        }
    }
    // The port A addressed is in its transcript, B's own port in B's: the proofs fail.
    assert!(!p.a.has_session(relay));
    assert!(!p.b.has_session(relay_seen_by_b));
    assert!(delivered(&events(&mut p.b)).is_empty());
    let failed = undeliverable(&events(&mut p.a));
    assert_eq!(
        failed[0].2,
        UndeliverableReason::AuthenticationFailed(AuthError::WrongSecret)
    );
}
