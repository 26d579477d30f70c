//! What the machine remembers about one peer (one remote endpoint address).
//!
//! This module exists to keep the per-peer bookkeeping (the sending window with its timers and
//! round-trip estimate, the receive window with its held datagrams and pending acknowledgement)
//! apart from the orchestration in [`machine`](crate::machine), so each half can be read and
//! tested on its own. Everything here is plain data and arithmetic on `now`; nothing here emits
//! datagrams or events.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use thespian_auth::{Nonce, SessionKeys};
use thespian_core::SystemId;

use crate::machine::{Config, MessageId};
use crate::wire::{Ack, Seal, SeqRange, WireMessage, MAX_ACK_RANGES};

/// A message still missing when this many later ones were received is taken as lost and
/// retransmitted at once (once; later losses wait for the timeout).
pub(crate) const FAST_RETRANSMIT_THRESHOLD: u64 = 3;

/// Incarnations of a peer remembered as retired, so their late datagrams are recognised.
const RETIRED_KEPT: usize = 8;

/// One peer: the address's incarnation, our session and streams with it.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The peer's incarnation, once a handshake with it completed (an authenticated
    /// incarnation: nothing else sets it).
    pub(crate) incarnation: Option<SystemId>,
    /// The authenticated session with `incarnation`, once established.
    pub(crate) session: Option<Session>,
    /// Incarnations seen before the current one (newest last).
    pub(crate) retired: VecDeque<SystemId>,
    /// Our stream to the peer.
    pub(crate) out: Option<Outbound>,
    /// The peer's stream to us.
    pub(crate) inb: Option<Inbound>,
    /// The last time we sent to or heard from the peer.
    pub(crate) last_activity: Instant,
    /// The largest opening number of the current incarnation's `Confirm`s verified here
    /// (taken or refused): a `Confirm` with a number not above it is a repeat or a late copy
    /// of an older handshake, and never replaces the session.
    pub(crate) last_opening: Option<u64>,
}

/// What a datagram's incarnation says about the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The incarnation we know (or the first one heard).
    Current,
    /// A retired incarnation: a late datagram of a previous life of the peer.
    Stale,
    /// A new incarnation: the peer restarted.
    Restarted {
        /// The incarnation we knew.
        old: SystemId,
    },
}

impl Peer {
    pub(crate) fn new(now: Instant) -> Peer {
        Peer {
            incarnation: None,
            session: None,
            retired: VecDeque::new(),
            out: None,
            inb: None,
            last_activity: now,
            last_opening: None,
        }
    }

    /// Records that a verified `Confirm` with opening number `opening` made the current
    /// session (`taken`) or was refused.
    pub(crate) fn opened(&mut self, opening: u64, taken: bool) {
        self.last_opening = Some(self.last_opening.map_or(opening, |l| l.max(opening)));
        if taken {
            if let Some(session) = &mut self.session {
                session.theirs = Some(opening);
            }
        }
    }

    /// Records the incarnation a handshake authenticated. On [`Seen::Restarted`] the caller
    /// resets the streams (they belonged to the old incarnation).
    pub(crate) fn observe(&mut self, incarnation: SystemId) -> Seen {
        match self.incarnation {
            None => {
                self.incarnation = Some(incarnation);
                Seen::Current
            }
            Some(known) if known == incarnation => Seen::Current,
            Some(_) if self.retired.contains(&incarnation) => Seen::Stale,
            Some(old) => {
                if self.retired.len() == RETIRED_KEPT {
                    self.retired.pop_front();
                }
                self.retired.push_back(old);
                self.incarnation = Some(incarnation);
                // Opening numbers are the old incarnation's.
                self.last_opening = None;
                Seen::Restarted { old }
            }
        }
    }

    /// The earliest time this peer needs [`Machine::handle_timeout`](crate::Machine::handle_timeout).
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let out = self.out.as_ref().and_then(|o| o.next_due);
        let ack = self.inb.as_ref().and_then(|i| i.ack_due);
        let confirm = self
            .session
            .as_ref()
            .and_then(|s| s.confirm.as_ref())
            .map(|c| c.due);
        out.into_iter().chain(ack).chain(confirm).min()
    }

    /// True when messages wait for a session (queued, never sent).
    pub(crate) fn waiting(&self) -> bool {
        self.out
            .as_ref()
            .is_some_and(|o| o.unacked.iter().any(|m| m.transmissions == 0))
    }

    /// True when forgetting the peer loses nothing in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.out.as_ref().is_none_or(|o| o.unacked.is_empty())
            && self
                .inb
                .as_ref()
                .is_none_or(|i| i.held.is_empty() && !i.ack_pending())
    }
}

/// An authenticated session with one incarnation of a peer.
#[derive(Debug)]
pub(crate) struct Session {
    /// This direction's key and the peer's.
    pub(crate) keys: SessionKeys,
    /// Authenticated datagrams sent in this session (the last counter used).
    pub(crate) sent: u64,
    /// On the initiator, until the responder shows it has the session too: the `Confirm` to
    /// send again.
    pub(crate) confirm: Option<PendingConfirm>,
    /// True when this endpoint opened the session (its `Hello`, the peer's `Welcome`).
    pub(crate) initiated: bool,
    /// On the responder: the opening number of the `Confirm` that made the session, so a
    /// repeat (or replay) of that `Confirm` is recognised and changes nothing.
    pub(crate) theirs: Option<u64>,
}

impl Session {
    pub(crate) fn new(keys: SessionKeys, confirm: Option<PendingConfirm>) -> Session {
        Session {
            keys,
            sent: 0,
            initiated: confirm.is_some(),
            confirm,
            theirs: None,
        }
    }

    /// The key and a fresh counter for the next authenticated datagram.
    pub(crate) fn seal(&mut self) -> Seal<'_> {
        self.sent += 1;
        Seal {
            key: &self.keys.send,
            counter: self.sent,
        }
    }
}

/// A `Confirm` sent and not yet known to have arrived.
#[derive(Debug)]
pub(crate) struct PendingConfirm {
    /// The datagram.
    pub(crate) bytes: Vec<u8>,
    /// The nonce of the `Welcome` it answers (a repeated `Welcome` draws it again).
    pub(crate) welcome_nonce: Nonce,
    pub(crate) due: Instant,
    pub(crate) transmissions: u32,
}

/// A message sent and not yet acknowledged.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) seq: u64,
    pub(crate) id: MessageId,
    pub(crate) message: WireMessage,
    /// Its datagram bound ([`crate::wire::datagram_bound`]).
    pub(crate) size: usize,
    pub(crate) first_sent: Instant,
    /// When it is retransmitted next (or given up, after the last transmission).
    pub(crate) due: Instant,
    /// 0 while it waits for the session (queued, never sent).
    pub(crate) transmissions: u32,
    /// The receiver holds it (selectively acknowledged): not retransmitted.
    pub(crate) sacked: bool,
}

/// Our stream to a peer: the sending window.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) stream: u64,
    pub(crate) next_seq: u64,
    /// Unacknowledged messages, in sequence order (consecutive sequence numbers).
    pub(crate) unacked: VecDeque<Outgoing>,
    /// Sum of the unacknowledged messages' sizes.
    pub(crate) bytes: usize,
    srtt: Option<Duration>,
    rttvar: Duration,
    /// The earliest `due` of an unacknowledged, not selectively acknowledged message.
    pub(crate) next_due: Option<Instant>,
    /// The sequence number of the first message accepted in an established session and not
    /// sent yet: it and every later one go out, coalesced, at the machine's next
    /// `poll_transmit`.
    pub(crate) fresh: Option<u64>,
}

impl Outbound {
    pub(crate) fn new(stream: u64) -> Outbound {
        Outbound {
            stream,
            next_seq: 1,
            unacked: VecDeque::new(),
            bytes: 0,
            srtt: None,
            rttvar: Duration::ZERO,
            next_due: None,
            fresh: None,
        }
    }

    /// The window base: the lowest sequence number not yet settled.
    pub(crate) fn base(&self) -> u64 {
        self.unacked.front().map_or(self.next_seq, |o| o.seq)
    }

    /// The retransmission timeout: RFC 6298 from the round-trip estimate, clamped to the
    /// configured range (and never below 1 ms); the configured initial value before any
    /// sample.
    pub(crate) fn rto(&self, config: &Config) -> Duration {
        let rto = match self.srtt {
            None => config.initial_rto,
            Some(srtt) => srtt + (self.rttvar * 4).max(Duration::from_millis(1)),
        };
        rto.max(config.min_rto)
            .min(config.max_rto.max(config.min_rto))
            .max(Duration::from_millis(1))
    }

    /// Folds one round-trip sample into the estimate (RFC 6298, section 2).
    fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// Recomputes [`Outbound::next_due`].
    pub(crate) fn refresh_due(&mut self) {
        self.next_due = self
            .unacked
            .iter()
            .filter(|o| !o.sacked && o.transmissions > 0)
            .map(|o| o.due)
            .min();
    }

    /// Applies an acknowledgement of this stream; returns the messages it settles (delivered),
    /// oldest first. An acknowledgement of sequence numbers never sent, or holding the next
    /// expected one, is ignored whole.
    ///
    /// Also takes a round-trip sample and schedules fast retransmissions: a message sent once
    /// and still missing while [`FAST_RETRANSMIT_THRESHOLD`] later ones were received is due
    /// at once instead of after the timeout.
    pub(crate) fn on_ack(&mut self, now: Instant, ack: &Ack) -> Vec<Outgoing> {
        // Never sent, or claiming to hold the very message it still waits for (which would
        // leave nothing to retransmit): not from an honest receiver.
        if ack.stream != self.stream
            || ack.cumulative >= self.next_seq
            || ack.ranges.iter().any(|r| r.first <= ack.cumulative + 1)
        {
            return Vec::new();
        }
        // The newest message this acknowledgement covers for the first time: (seq, sent once,
        // first sent). Karn's rule: only a message transmitted once gives a clean sample, and
        // the newest is most likely the one whose arrival triggered the acknowledgement (an
        // older one may have waited, held behind a gap).
        let mut newest: Option<(u64, bool, Instant)> = None;
        let mut note = |o: &Outgoing| {
            if !o.sacked && newest.is_none_or(|n| n.0 < o.seq) {
                newest = Some((o.seq, o.transmissions == 1, o.first_sent));
            }
        };
        let mut acked = Vec::new();
        while self
            .unacked
            .front()
            .is_some_and(|o| o.seq <= ack.cumulative)
        {
            let o = self.unacked.pop_front().expect("front checked");
            self.bytes -= o.size;
            note(&o);
            acked.push(o);
        }
        let mut highest_sacked = None;
        if let Some(first) = self.unacked.front().map(|o| o.seq) {
            for range in &ack.ranges {
                let lo = range.first.max(first);
                let hi = range.last.min(self.next_seq - 1);
                if lo > hi {
                    continue;
                }
                highest_sacked = highest_sacked.max(Some(hi));
                let (lo, hi) = ((lo - first) as usize, (hi - first) as usize);
                for o in self.unacked.range_mut(lo..=hi) {
                    note(o);
                    o.sacked = true;
                }
            }
        }
        if let Some((_, true, sent)) = newest {
            self.sample(now.saturating_duration_since(sent));
        }
        if let Some(highest) = highest_sacked {
            for o in self.unacked.iter_mut() {
                if o.seq.saturating_add(FAST_RETRANSMIT_THRESHOLD) > highest {
                    break;
                }
                if !o.sacked && o.transmissions == 1 {
                    o.due = o.due.min(now);
                }
            }
        }
        self.refresh_due();
        acked
    }
}

/// Wait after the `transmissions`-th transmission: `rto × factor^(transmissions − 1)`, at most
/// `max_rto`.
pub(crate) fn backoff(config: &Config, rto: Duration, transmissions: u32) -> Duration {
    let factor = if config.backoff_factor.is_finite() && config.backoff_factor >= 1.0 {
        config.backoff_factor
    } else {
        1.0
    };
    let exponent = i32::try_from(transmissions.saturating_sub(1)).unwrap_or(i32::MAX);
    let max = config.max_rto.max(rto).as_secs_f64();
    Duration::from_secs_f64((rto.as_secs_f64() * factor.powi(exponent)).min(max))
}

/// What happened to a received data datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receipt {
    /// The next expected message: delivered (with any held messages it unblocked).
    InOrder {
        /// Held messages delivered after it.
        unblocked: usize,
    },
    /// Ahead of a missing message: held.
    Held,
    /// Already delivered or already held: dropped.
    Duplicate,
    /// Too far ahead to hold: dropped (the sender retransmits it).
    BeyondWindow,
}

/// The peer's stream to us: the receive window.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) stream: u64,
    /// Every sequence number below this one was delivered (or skipped by the sender's base).
    pub(crate) next_expected: u64,
    /// Messages received ahead of a missing one.
    pub(crate) held: BTreeMap<u64, WireMessage>,
    /// In-order datagrams received since the last acknowledgement.
    pub(crate) unacked: u32,
    /// A delayed acknowledgement is due at this time.
    pub(crate) ack_due: Option<Instant>,
    /// An acknowledgement should go out at the next `poll_transmit`.
    pub(crate) ack_now: bool,
}

impl Inbound {
    pub(crate) fn new(stream: u64, base: u64) -> Inbound {
        Inbound {
            stream,
            next_expected: base.max(1),
            held: BTreeMap::new(),
            unacked: 0,
            ack_due: None,
            ack_now: false,
        }
    }

    /// True when an acknowledgement is owed to the sender.
    pub(crate) fn ack_pending(&self) -> bool {
        self.ack_now || self.ack_due.is_some()
    }

    /// Takes the owed acknowledgement (the caller sends it).
    pub(crate) fn take_ack(&mut self) -> Ack {
        self.unacked = 0;
        self.ack_due = None;
        self.ack_now = false;
        self.ack()
    }

    /// The acknowledgement of everything received so far.
    pub(crate) fn ack(&self) -> Ack {
        let mut ranges: Vec<SeqRange> = Vec::new();
        for &seq in self.held.keys() {
            if let Some(r) = ranges.last_mut().filter(|r| r.last + 1 == seq) {
                r.last = seq;
            } else if ranges.len() == MAX_ACK_RANGES {
                break;
            } else {
                ranges.push(SeqRange {
                    first: seq,
                    last: seq,
                });
            }
        }
        Ack {
            stream: self.stream,
            cumulative: self.next_expected.saturating_sub(1),
            ranges,
        }
    }

    /// Receives message `seq` of this stream, the sender's base being `base`; appends what
    /// becomes deliverable to `delivered`, in order.
    pub(crate) fn receive(
        &mut self,
        seq: u64,
        base: u64,
        message: WireMessage,
        window: u64,
        delivered: &mut Vec<WireMessage>,
    ) -> Receipt {
        if base > self.next_expected {
            // Everything below `base` is settled at the sender: what we hold there was given up
            // (reported undeliverable), and nothing below it will come again.
            self.held = self.held.split_off(&base);
            self.next_expected = base;
            self.drain(delivered);
        }
        if seq < self.next_expected || self.held.contains_key(&seq) {
            return Receipt::Duplicate;
        }
        if seq >= self.next_expected.saturating_add(window.max(1)) {
            return Receipt::BeyondWindow;
        }
        if seq > self.next_expected {
            self.held.insert(seq, message);
            return Receipt::Held;
        }
        delivered.push(message);
        self.next_expected += 1;
        let before = delivered.len();
        self.drain(delivered);
        Receipt::InOrder {
            unblocked: delivered.len() - before,
        }
    }

    /// Delivers held messages that are next in order.
    fn drain(&mut self, delivered: &mut Vec<WireMessage>) {
        while let Some(m) = self.held.remove(&self.next_expected) {
            delivered.push(m);
            self.next_expected += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use thespian_core::ActorAddress;

    fn msg(n: u64) -> WireMessage {
        WireMessage {
            sender: ActorAddress::new(SystemId::from_raw(1), 1),
            target: ActorAddress::new(SystemId::from_raw(2), 2),
            type_name: Arc::from("n"),
            payload: Arc::from(n.to_be_bytes().to_vec()),
        }
    }

    fn numbers(ms: &[WireMessage]) -> Vec<u64> {
        ms.iter()
            .map(|m| u64::from_be_bytes(m.payload[..].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn receive_window_orders_dedupes_and_bounds() {
        let mut inb = Inbound::new(1, 1);
        let mut out = Vec::new();
        assert_eq!(inb.receive(2, 1, msg(2), 4, &mut out), Receipt::Held);
        assert_eq!(inb.receive(3, 1, msg(3), 4, &mut out), Receipt::Held);
        assert_eq!(inb.receive(3, 1, msg(3), 4, &mut out), Receipt::Duplicate);
        assert_eq!(
            inb.receive(5, 1, msg(5), 4, &mut out),
            Receipt::BeyondWindow
        );
        assert!(out.is_empty());
        let ack = inb.ack();
        assert_eq!(ack.cumulative, 0);
        assert_eq!(ack.ranges, vec![SeqRange { first: 2, last: 3 }]);
        assert_eq!(
            inb.receive(1, 1, msg(1), 4, &mut out),
            Receipt::InOrder { unblocked: 2 }
        );
        assert_eq!(numbers(&out), vec![1, 2, 3]);
        assert_eq!(inb.receive(2, 1, msg(2), 4, &mut out), Receipt::Duplicate);
        assert_eq!(inb.ack().cumulative, 3);
    }

    #[test]
    fn the_senders_base_skips_given_up_messages() {
        let mut inb = Inbound::new(1, 1);
        let mut out = Vec::new();
        assert_eq!(inb.receive(3, 1, msg(3), 8, &mut out), Receipt::Held);
        assert_eq!(inb.receive(6, 1, msg(6), 8, &mut out), Receipt::Held);
        // 1..=4 were given up by the sender: 3 is dropped, 5 is next, 6 follows.
        assert_eq!(
            inb.receive(5, 5, msg(5), 8, &mut out),
            Receipt::InOrder { unblocked: 1 }
        );
        assert_eq!(numbers(&out), vec![5, 6]);
        // A fresh window starts at the base.
        let mut fresh = Inbound::new(9, 40);
        out.clear();
        assert_eq!(
            fresh.receive(40, 40, msg(40), 8, &mut out),
            Receipt::InOrder { unblocked: 0 }
        );
        assert_eq!(fresh.ack().cumulative, 40);
    }

    #[test]
    fn ack_ranges_are_capped() {
        let mut inb = Inbound::new(1, 1);
        let mut out = Vec::new();
        for seq in (3..200).step_by(2) {
            inb.receive(seq, 1, msg(seq), 1000, &mut out);
        }
        assert_eq!(inb.ack().ranges.len(), MAX_ACK_RANGES);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = Config {
            backoff_factor: 2.0,
            max_rto: Duration::from_millis(350),
            ..Config::default()
        };
        let rto = Duration::from_millis(100);
        assert_eq!(backoff(&config, rto, 1), rto);
        assert_eq!(backoff(&config, rto, 2), Duration::from_millis(200));
        assert_eq!(backoff(&config, rto, 3), Duration::from_millis(350));
        assert_eq!(backoff(&config, rto, u32::MAX), Duration::from_millis(350));
        let silly = Config {
            backoff_factor: f64::NAN,
            ..config
        };
        assert_eq!(backoff(&silly, rto, 5), rto);
    }

    #[test]
    fn rtt_estimate_follows_rfc_6298() {
        let config = Config {
            min_rto: Duration::from_millis(1),
            ..Config::default()
        };
        let mut out = Outbound::new(1);
        assert_eq!(out.rto(&config), config.initial_rto);
        out.sample(Duration::from_millis(10));
        // srtt 10, rttvar 5: 10 + 4 × 5.
        assert_eq!(out.rto(&config), Duration::from_millis(30));
        out.sample(Duration::from_millis(10));
        // rttvar 3.75: 10 + 15.
        assert_eq!(out.rto(&config), Duration::from_millis(25));
    }
}
