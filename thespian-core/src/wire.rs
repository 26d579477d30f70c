//! The one form a message takes on any transport.
//!
//! This module exists because every transport crosses the same serialisation boundary
//! (SPEC §4): a message leaves its process as addresses, a wire name and postcard bytes, and
//! arrives as an [`Envelope`] whose payload is decoded only when an actor asks for it. Each
//! transport frames a [`WireMessage`] its own way (a TCP data frame, a UDP datagram) and bounds
//! its size by its own rules, but the message itself, how it is built from a [`Payload`] and how
//! it becomes an envelope again are the same everywhere, so they live here once.
//!
//! The [`SendBudget`] is here for the same reason: every transport bounds what senders may hand
//! over to one peer before it is settled, the same way.
//!
//! Nothing here touches a socket or the clock; the framing and its size limits stay in the
//! transport crates.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::address::ActorAddress;
use crate::message::{Envelope, MessageError, Payload};

/// A message as a transport carries it: addresses, wire name and postcard payload bytes.
///
/// Cheap to clone (the name and payload are shared).
#[derive(Clone, PartialEq, Eq)]
pub struct WireMessage {
    /// The sending actor.
    pub sender: ActorAddress,
    /// The receiving actor.
    pub target: ActorAddress,
    /// The message's wire name ([`Message::wire_name`](crate::Message::wire_name)).
    pub type_name: Arc<str>,
    /// The message's postcard bytes.
    pub payload: Arc<[u8]>,
}

impl WireMessage {
    /// Builds a wire message from a payload (encoding it if it is a local value).
    pub fn from_payload(
        sender: ActorAddress,
        target: ActorAddress,
        payload: &Payload,
    ) -> Result<WireMessage, MessageError> {
        let (type_name, payload) = payload.to_wire()?;
        Ok(WireMessage {
            sender,
            target,
            type_name,
            payload,
        })
    }

    /// Splits into the target and an envelope whose payload is decoded lazily.
    pub fn into_envelope(self) -> (ActorAddress, Envelope) {
        let payload = Payload::from_wire(self.type_name, self.payload);
        (self.target, Envelope::new(self.sender, payload))
    }
}

impl fmt::Debug for WireMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireMessage")
            .field("sender", &self.sender)
            .field("target", &self.target)
            .field("type_name", &self.type_name)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Names a message handed to a transport, so the transport can later report what became of it
/// (acknowledged, failed, undeliverable). Who picks the number is up to the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// Messages and bytes handed to a transport for one peer and not yet settled.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Messages in flight.
    pub messages: usize,
    /// Their bytes, as the transport counts them.
    pub bytes: usize,
}

/// The per-peer bound on unsettled sends that makes a full queue fail the send at once instead
/// of growing memory (SPEC §5). Shared by a transport's sender handles (any thread) and its
/// driver, which releases each message when it is acknowledged or has failed.
///
/// One message is always accepted for a peer with nothing in flight, whatever its size (the
/// transport's own size limit applies separately).
#[derive(Debug)]
pub struct SendBudget<K> {
    usage: Mutex<HashMap<K, Usage>>,
    max_messages: usize,
    max_bytes: usize,
}

impl<K: Hash + Eq> SendBudget<K> {
    /// A budget of at most `max_messages` messages and `max_bytes` bytes per peer.
    pub fn new(max_messages: usize, max_bytes: usize) -> SendBudget<K> {
        SendBudget {
            usage: Mutex::new(HashMap::new()),
            max_messages,
            max_bytes,
        }
    }

    /// Takes room for one message of `bytes` to `peer`; `Err` with the peer's current usage
    /// when its budget is spent.
    pub fn reserve(&self, peer: K, bytes: usize) -> Result<(), Usage> {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let u = usage.entry(peer).or_default();
        if u.messages > 0 && (u.messages >= self.max_messages || u.bytes + bytes > self.max_bytes) {
            return Err(*u);
        }
        u.messages += 1;
        u.bytes += bytes;
        Ok(())
    }

    /// Gives back the room of one settled message of `bytes` to `peer`.
    pub fn release(&self, peer: &K, bytes: usize) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = usage.get_mut(peer) {
            u.messages = u.messages.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(bytes);
            if u.messages == 0 {
                usage.remove(peer);
            }
        }
    }
}

/// A text a peer chose (a reason, a type name, a log level) made fit for a log line or a
/// reply: at most `max` of its characters, with control characters, quotes and backslashes
/// escaped (so it can neither forge lines nor drive the reader's terminal), and `…` after it
/// when it was longer. Every crate that shows peer text uses this one rule.
pub fn peer_text(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let mut shown: String = chars
        .by_ref()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    #[test]
    fn peer_text_is_clipped_and_escaped() {
        assert_eq!(peer_text("app.Thing", 80), "app.Thing");
        assert_eq!(peer_text("abcdef", 3), "abc…");
        assert_eq!(peer_text("a\u{1b}[2J\n\"b", 80), "a\\u{1b}[2J\\n\\\"b");
        assert_eq!(peer_text("ééé", 2), "éé…");
    }

    use super::*;
    use crate::address::SystemId;

    fn addr(sys: u64, id: u64) -> ActorAddress {
        ActorAddress::new(SystemId::from_raw(sys), id)
    }

    #[test]
    fn envelope_conversion() {
        let payload = Payload::new(String::from("hi"));
        let m = WireMessage::from_payload(addr(1, 1), addr(2, 2), &payload).unwrap();
        assert_eq!(&*m.type_name, "String");
        let (target, env) = m.into_envelope();
        assert_eq!(target, addr(2, 2));
        assert_eq!(env.get::<String>().unwrap(), "hi");
        assert_eq!(env.sender(), &addr(1, 1));
    }

    #[test]
    fn debug_shows_the_payload_length_not_the_bytes() {
        let m = WireMessage {
            sender: addr(1, 2),
            target: addr(3, 4),
            type_name: Arc::from("test.Msg"),
            payload: Arc::from(&[0xab; 300][..]),
        };
        let shown = format!("{m:?}");
        assert!(shown.contains("payload_len: 300"), "{shown}");
        assert!(shown.contains("test.Msg"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn send_budget_bounds_messages_and_bytes_per_peer() {
        let budget: SendBudget<u8> = SendBudget::new(2, 100);
        assert_eq!(budget.reserve(1, 500), Ok(()), "one message always fits");
        assert_eq!(
            budget.reserve(1, 1),
            Err(Usage {
                messages: 1,
                bytes: 500
            })
        );
        assert_eq!(budget.reserve(2, 60), Ok(()), "peers are independent");
        assert_eq!(budget.reserve(2, 40), Ok(()));
        assert_eq!(
            budget.reserve(2, 1),
            Err(Usage {
                messages: 2,
                bytes: 100
            })
        );
        budget.release(&2, 40);
        assert_eq!(budget.reserve(2, 40), Ok(()));
        budget.release(&1, 500);
        assert_eq!(budget.reserve(1, 90), Ok(()), "released room is reusable");
        budget.release(&9, 10); // unknown peer: nothing to release
    }
}
