//! The datagrams: what the UDP transport says to its peers, in postcard.
//!
//! This module exists because the wire is the only serialisation boundary of the transport
//! (SPEC §4): every byte a peer sends is decoded here, into types that cannot be misread, and
//! every decoding failure is a [`WireError`] value, never a panic.
//!
//! One datagram carries one [`Header`] and, for a data datagram, the message's payload bytes
//! after it (so a large payload is never walked by the decoder; a batch's payloads follow its
//! header one after the other):
//! - the session handshake (`thespian_auth`): `Hello` (with the initiator's opening number:
//!   [`HelloBody`]), `Welcome` (naming the opening it answers: [`WelcomeBody`]), `Confirm` (which carries its `Hello` back, so the responder
//!   needs no state: [`ConfirmBody`]), and `Reject` (a handshake that failed, with the
//!   reason);
//! - `Data`: a message with its stream, sequence number, window base, envelope header (sender,
//!   target, wire name) and optionally a piggy-backed acknowledgement of the reverse direction;
//! - `Batch`: several consecutive messages of one stream (sequence numbers `first_seq`,
//!   `first_seq + 1`, ...), each with its envelope header and payload length, under one
//!   counter and one tag, optionally with a piggy-backed acknowledgement; at most
//!   [`MAX_BATCH`] messages. The sender coalesces small messages to one peer this way, so
//!   a burst costs one datagram instead of one per message;
//! - `Ack`: a cumulative acknowledgement plus up to [`MAX_ACK_RANGES`] selective ranges;
//! - a *version notice*: only the magic and a protocol version, sent in answer to a datagram of
//!   another protocol version so its sender learns of the mismatch at once.
//!
//! `Data`, `Batch` and `Ack` belong to an authenticated session: their header carries a
//! per-session datagram `counter`, and the datagram ends with a [`TAG_LEN`]-byte tag,
//! `FrameKey::tag(counter, &[header bytes, payload bytes])` under the sender's session key
//! (a batch's payload bytes are all its payloads).
//! The decoder only splits the bytes ([`Mac`]); the machine verifies the tag before it acts on
//! anything in the datagram.
//!
//! Every datagram starts with the magic `THSU` and the protocol version, and postcard encodes a
//! struct as its fields in order, so *any* version can read those two fields of *any* other
//! version's datagram: a version mismatch is always detected and reported, never a hang.
//!
//! A datagram is at most [`MAX_DATAGRAM`] bytes; a message that does not fit fails at the
//! sender ([`crate::SendError::TooLarge`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use thespian_auth::{Confirm, FrameKey, Hello, Welcome, TAG_LEN};
use thespian_core::{ActorAddress, SystemId};
use thespian_io::preamble::{self, PreambleError};

// The message a data datagram carries is the same on every transport; it lives in thespian-core
// and keeps its path here.
pub use thespian_core::wire::WireMessage;

/// The four bytes every datagram starts with ("thespian UDP"; the TCP transport uses `THSP`).
pub const MAGIC: [u8; 4] = *b"THSU";

/// The protocol version this crate speaks: 4, handshakes that name their session with the
/// initiator's opening number (version 3 did not, so a late `Confirm` could replace a newer
/// session; version 2 sent one message per datagram; version 1 had no authenticated
/// sessions).
pub const PROTOCOL_VERSION: u16 = 4;

/// The largest datagram the transport sends, in bytes, header and tag included: 65,000.
///
/// One message travels in one datagram, so this bounds the size of a message: its payload plus
/// the envelope header (two actor addresses, the wire name, a few sequence numbers and the
/// session's tag, at most about 110 bytes plus the wire name). A larger message fails *at the
/// sender*, at once, with [`SendError::TooLarge`](crate::SendError::TooLarge) naming this limit.
///
/// Why 65,000: an IPv4 UDP datagram carries at most 65,507 bytes (65,535 less the IP and UDP
/// headers) and Thespian's UDP transport reads 65,535 bytes at most; the round figure leaves
/// room for IP options and IPv6. Large messages belong on the TCP base.
pub const MAX_DATAGRAM: usize = 65_000;

/// Most selective-acknowledgement ranges in one acknowledgement; a datagram with more is
/// malformed.
pub const MAX_ACK_RANGES: usize = 32;

/// Most messages in one batch datagram; a batch with more (or none) is malformed.
pub const MAX_BATCH: usize = 256;

/// The start of every datagram (all but version notices, which stop after `version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`MAGIC`]; anything else is not a thespian peer.
    pub magic: [u8; 4],
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The sending endpoint's incarnation id: a restarted endpoint has a new one and is a new
    /// peer.
    pub from: SystemId,
    /// The incarnation of the receiving endpoint as the sender knows it (`None` until the
    /// sender has heard from it).
    pub to: Option<SystemId>,
    /// What the datagram says.
    pub kind: Kind,
}

/// The kinds of datagram (after the common header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A message; its payload bytes and the session tag follow the header.
    Data(DataHeader),
    /// An acknowledgement; the session tag follows the header.
    Ack(AckHeader),
    /// The initiator opens a session.
    Hello(HelloBody),
    /// The responder answers, with its proof.
    Welcome(WelcomeBody),
    /// The initiator's proof, with the `Hello` it answers: the session is established.
    Confirm(ConfirmBody),
    /// The handshake failed at the sender of this datagram.
    Reject(RejectReason),
    /// Consecutive messages of one stream; their payloads, one after the other, and the
    /// session tag follow the header.
    Batch(BatchHeader),
}

/// A `Hello` datagram's body: the initiator's opening and its number, which names the session
/// (bound into both proofs of the handshake).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloBody {
    /// The initiator's `Hello`.
    pub hello: Hello,
    /// The initiator's opening number: every handshake an incarnation starts has a larger one
    /// than the one before, so a responder can tell a newer session from an older one.
    pub opening: u64,
}

/// A `Welcome` datagram's body: the responder's answer and the opening number of the `Hello`
/// it answers, so an initiator can tell an answer to an earlier `Hello` of its own from a
/// failed proof (the number is not authenticated here; the proof covers it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeBody {
    /// The responder's `Welcome`.
    pub welcome: Welcome,
    /// The opening number of the `Hello` it answers.
    pub opening: u64,
}

/// A `Confirm` datagram's body: the initiator's proof and what a responder that kept no state
/// since its `Welcome` needs to check it (the `Hello` it answers, and the incarnation that
/// `Hello`'s header named as the receiver). The responder recomputes its `Welcome` from them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmBody {
    /// The `Hello` this handshake started with (its incarnation is the sender's).
    pub hello: Hello,
    /// The receiver's incarnation as the `Hello`'s header named it.
    pub hello_to: Option<SystemId>,
    /// The opening number the `Hello` carried.
    pub opening: u64,
    /// The initiator's proof.
    pub confirm: Confirm,
}

/// Why a handshake was refused (a [`Kind::Reject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// The peer's proof was wrong: the two endpoints hold different secrets.
    WrongSecret,
    /// The peer asked for a suite the sender does not have.
    UnsupportedSuite,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::WrongSecret => {
                f.write_str("authentication failed: this system uses another secret")
            }
            RejectReason::UnsupportedSuite => {
                f.write_str("authentication failed: the peer does not support our suite")
            }
        }
    }
}

/// The header of a data datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHeader {
    /// The sender's count of authenticated datagrams in this session (the tag's counter).
    pub counter: u64,
    /// The sender's stream to this peer. A stream id is never reused by one incarnation; a
    /// larger one tells the receiver that the sender started afresh.
    pub stream: u64,
    /// Sequence number within the stream (from 1, one per message, never reused).
    pub seq: u64,
    /// The sender's window base: every sequence number below it is settled (acknowledged or
    /// reported undeliverable) and will never be sent again, so the receiver may skip to it.
    pub base: u64,
    /// The sending actor.
    pub sender: ActorAddress,
    /// The receiving actor.
    pub target: ActorAddress,
    /// The message's wire name.
    pub type_name: String,
    /// A piggy-backed acknowledgement of the peer's stream to us.
    pub ack: Option<Ack>,
}

/// The header of a batch datagram: what [`DataHeader`] says, once for several consecutive
/// messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHeader {
    /// The sender's count of authenticated datagrams in this session (the tag's counter).
    pub counter: u64,
    /// The sender's stream to this peer (as in [`DataHeader::stream`]).
    pub stream: u64,
    /// The sequence number of the first message; the `i`-th has `first_seq + i`.
    pub first_seq: u64,
    /// The sender's window base (as in [`DataHeader::base`]).
    pub base: u64,
    /// A piggy-backed acknowledgement of the peer's stream to us.
    pub ack: Option<Ack>,
    /// The messages, in sequence order (1 to [`MAX_BATCH`]).
    pub messages: Vec<BatchEntry>,
}

/// One message of a batch: its envelope header and the length of its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
    /// The sending actor.
    pub sender: ActorAddress,
    /// The receiving actor.
    pub target: ActorAddress,
    /// The message's wire name.
    pub type_name: String,
    /// The length of its payload among the payloads after the header.
    pub len: u64,
}

/// The header of an acknowledgement datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckHeader {
    /// The sender's count of authenticated datagrams in this session (the tag's counter).
    pub counter: u64,
    /// What it acknowledges.
    pub ack: Ack,
}

/// An acknowledgement of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The stream acknowledged (0, which no stream uses, only proves the session is up).
    pub stream: u64,
    /// Every sequence number up to and including this one was delivered.
    pub cumulative: u64,
    /// Sequence numbers above `cumulative` received and held (not yet delivered, because an
    /// earlier one is missing): the sender need not retransmit them.
    pub ranges: Vec<SeqRange>,
}

/// An inclusive range of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    /// The first sequence number.
    pub first: u64,
    /// The last sequence number (`>= first`).
    pub last: u64,
}

/// The authenticated part of a `Data` or `Ack` datagram, as received: the header's bytes and
/// the tag, for `FrameKey::verify(counter, &[signed, payload], tag)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac<'a> {
    /// The encoded header (everything before the payload).
    pub signed: &'a [u8],
    /// The tag ([`TAG_LEN`] bytes).
    pub tag: &'a [u8],
}

impl Mac<'_> {
    /// True when the tag is `key`'s for this datagram as the `counter`-th of its session.
    pub fn verify(&self, key: &FrameKey, counter: u64, payload: &[u8]) -> bool {
        key.verify(counter, &[self.signed, payload], self.tag)
    }
}

/// A decoded datagram; a data payload borrows from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A message.
    Data {
        /// The sender's incarnation.
        from: SystemId,
        /// Our incarnation as the sender knows it.
        to: Option<SystemId>,
        /// The header.
        header: DataHeader,
        /// The postcard payload bytes.
        payload: &'a [u8],
        /// What the tag covers, and the tag: unverified.
        mac: Mac<'a>,
    },
    /// Consecutive messages of one stream.
    Batch {
        /// The sender's incarnation.
        from: SystemId,
        /// Our incarnation as the sender knows it.
        to: Option<SystemId>,
        /// The header (its entries' lengths add up to `payloads`' length).
        header: BatchHeader,
        /// The postcard payload bytes of every message, one after the other.
        payloads: &'a [u8],
        /// What the tag covers, and the tag: unverified.
        mac: Mac<'a>,
    },
    /// An acknowledgement.
    Ack {
        /// The acknowledger's incarnation.
        from: SystemId,
        /// The incarnation whose stream it acknowledges.
        to: Option<SystemId>,
        /// The tag's counter.
        counter: u64,
        /// What it acknowledges.
        ack: Ack,
        /// What the tag covers, and the tag: unverified.
        mac: Mac<'a>,
    },
    /// A handshake message (`Hello`, `Welcome`, `Confirm` or `Reject`).
    Handshake {
        /// The sender's incarnation.
        from: SystemId,
        /// Our incarnation as the sender knows it.
        to: Option<SystemId>,
        /// The message.
        kind: Kind,
    },
    /// A peer of another protocol version says it cannot read our datagrams.
    VersionNotice {
        /// The peer's protocol version.
        version: u16,
    },
}

/// Why bytes from the network are not a datagram we can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The datagram does not start with [`MAGIC`]: not a thespian peer.
    BadMagic {
        /// The four bytes found instead.
        found: [u8; 4],
    },
    /// The datagram is of another protocol version (and not a version notice).
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The sender's version.
        theirs: u16,
    },
    /// The bytes are not a valid datagram.
    Malformed(String),
    /// Bytes left over after an acknowledgement's tag or a handshake message.
    TrailingBytes(usize),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadMagic { found } => write!(
                f,
                "not a thespian datagram: magic {:?} instead of {:?}",
                String::from_utf8_lossy(found),
                String::from_utf8_lossy(&MAGIC)
            ),
            WireError::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: we speak version {ours}, the sender speaks version {theirs}"
            ),
            WireError::Malformed(reason) => write!(f, "malformed datagram: {reason}"),
            WireError::TrailingBytes(n) => {
                write!(f, "{n} unexpected bytes at the end of a datagram")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// Decodes a datagram, checking the magic and the protocol version (`ours`, normally
/// [`PROTOCOL_VERSION`]) before anything else. Never panics, whatever the bytes. Tags are not
/// verified here (that needs the session's key): see [`Mac::verify`].
pub fn decode(bytes: &[u8], ours: u16) -> Result<Datagram<'_>, WireError> {
    let (version, rest) = preamble::read(bytes, MAGIC).map_err(|e| match e {
        PreambleError::Short { len } => {
            WireError::Malformed(format!("{len} bytes is too short for a datagram"))
        }
        PreambleError::BadMagic { found } => WireError::BadMagic { found },
        other => WireError::Malformed(other.to_string()),
    })?;
    if version != ours {
        if rest.is_empty() {
            return Ok(Datagram::VersionNotice { version });
        }
        return Err(WireError::VersionMismatch {
            ours,
            theirs: version,
        });
    }
    if rest.is_empty() {
        return Err(WireError::Malformed(
            "a version notice of our own version".into(),
        ));
    }
    let (header, rest): (Header, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    let signed = &bytes[..bytes.len() - rest.len()];
    // Where the tag starts in what follows the header of an authenticated datagram.
    let tag_start = |rest: &[u8]| {
        rest.len().checked_sub(TAG_LEN).ok_or_else(|| {
            WireError::Malformed(format!(
                "{} bytes after the header, too few for the {TAG_LEN}-byte tag",
                rest.len()
            ))
        })
    };
    match header.kind {
        Kind::Data(data) => {
            if let Some(ack) = &data.ack {
                check_ack(ack)?;
            }
            let end = tag_start(rest)?;
            Ok(Datagram::Data {
                from: header.from,
                to: header.to,
                header: data,
                payload: &rest[..end],
                mac: Mac {
                    signed,
                    tag: &rest[end..],
                },
            })
        }
        Kind::Batch(batch) => {
            if let Some(ack) = &batch.ack {
                check_ack(ack)?;
            }
            let count = batch.messages.len();
            if count == 0 || count > MAX_BATCH {
                return Err(WireError::Malformed(format!(
                    "a batch of {count} messages (1 to {MAX_BATCH})"
                )));
            }
            if batch.first_seq.checked_add(count as u64).is_none() {
                return Err(WireError::Malformed(
                    "a batch's sequence numbers overflow".into(),
                ));
            }
            let end = tag_start(rest)?;
            let total = batch
                .messages
                .iter()
                .try_fold(0u64, |sum, m| sum.checked_add(m.len));
            if total != Some(end as u64) {
                return Err(WireError::Malformed(format!(
                    "a batch's payload lengths do not add up to its {end} payload bytes"
                )));
            }
            Ok(Datagram::Batch {
                from: header.from,
                to: header.to,
                header: batch,
                payloads: &rest[..end],
                mac: Mac {
                    signed,
                    tag: &rest[end..],
                },
            })
        }
        Kind::Ack(AckHeader { counter, ack }) => {
            let end = tag_start(rest)?;
            if end != 0 {
                return Err(WireError::TrailingBytes(end));
            }
            check_ack(&ack)?;
            Ok(Datagram::Ack {
                from: header.from,
                to: header.to,
                counter,
                ack,
                mac: Mac { signed, tag: rest },
            })
        }
        kind => {
            if !rest.is_empty() {
                return Err(WireError::TrailingBytes(rest.len()));
            }
            if let Kind::Hello(body) = &kind {
                if body.hello.incarnation != header.from.raw() {
                    return Err(WireError::Malformed(
                        "a hello naming another incarnation than its sender".into(),
                    ));
                }
            }
            if let Kind::Confirm(body) = &kind {
                if body.hello.incarnation != header.from.raw() {
                    return Err(WireError::Malformed(
                        "a confirm naming another incarnation than its sender".into(),
                    ));
                }
            }
            if let Kind::Welcome(body) = &kind {
                if body.welcome.incarnation != header.from.raw() {
                    return Err(WireError::Malformed(
                        "a welcome naming another incarnation than its sender".into(),
                    ));
                }
            }
            Ok(Datagram::Handshake {
                from: header.from,
                to: header.to,
                kind,
            })
        }
    }
}

fn check_ack(ack: &Ack) -> Result<(), WireError> {
    if ack.ranges.len() > MAX_ACK_RANGES {
        return Err(WireError::Malformed(format!(
            "{} acknowledgement ranges, more than {MAX_ACK_RANGES}",
            ack.ranges.len()
        )));
    }
    if let Some(r) = ack.ranges.iter().find(|r| r.first > r.last) {
        return Err(WireError::Malformed(format!(
            "acknowledgement range {}..={} is reversed",
            r.first, r.last
        )));
    }
    Ok(())
}

/// Who a datagram is from and for: the fields every datagram header starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The protocol version to announce (normally [`PROTOCOL_VERSION`]).
    pub version: u16,
    /// The sending endpoint's incarnation.
    pub from: SystemId,
    /// The receiving endpoint's incarnation, if known.
    pub to: Option<SystemId>,
}

/// Borrowed mirror of [`Header`] (same encoding), so sending never copies the wire name.
#[derive(Serialize)]
struct HeaderRef<'a> {
    magic: [u8; 4],
    version: u16,
    from: SystemId,
    to: Option<SystemId>,
    kind: KindRef<'a>,
}

/// Borrowed mirror of [`Kind`]: same variants in the same order, same encoding.
#[derive(Serialize)]
enum KindRef<'a> {
    Data(DataHeaderRef<'a>),
    Ack(AckHeaderRef<'a>),
    Hello(&'a HelloBody),
    Welcome(&'a WelcomeBody),
    Confirm(&'a ConfirmBody),
    Reject(RejectReason),
    Batch(BatchHeaderRef<'a>),
}

/// Borrowed mirror of [`BatchHeader`] (same encoding).
#[derive(Serialize)]
struct BatchHeaderRef<'a> {
    counter: u64,
    stream: u64,
    first_seq: u64,
    base: u64,
    ack: Option<&'a Ack>,
    messages: Vec<BatchEntryRef<'a>>,
}

/// Borrowed mirror of [`BatchEntry`] (same encoding).
#[derive(Serialize)]
struct BatchEntryRef<'a> {
    sender: &'a ActorAddress,
    target: &'a ActorAddress,
    type_name: &'a str,
    len: u64,
}

impl<'a> BatchEntryRef<'a> {
    fn of(message: &'a WireMessage) -> BatchEntryRef<'a> {
        BatchEntryRef {
            sender: &message.sender,
            target: &message.target,
            type_name: &message.type_name,
            len: message.payload.len() as u64,
        }
    }
}

/// Borrowed mirror of [`DataHeader`] (same encoding).
#[derive(Serialize)]
struct DataHeaderRef<'a> {
    counter: u64,
    stream: u64,
    seq: u64,
    base: u64,
    sender: &'a ActorAddress,
    target: &'a ActorAddress,
    type_name: &'a str,
    ack: Option<&'a Ack>,
}

/// Borrowed mirror of [`AckHeader`] (same encoding).
#[derive(Serialize)]
struct AckHeaderRef<'a> {
    counter: u64,
    ack: &'a Ack,
}

/// Where a message sits in its stream: the numbers of a data datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The stream.
    pub stream: u64,
    /// The message's sequence number.
    pub seq: u64,
    /// The sender's window base.
    pub base: u64,
}

/// The session key and counter an authenticated datagram is tagged with.
#[derive(Debug, Clone, Copy)]
pub struct Seal<'a> {
    /// The sender's session key.
    pub key: &'a FrameKey,
    /// The datagram's number in its session (never reused with this key).
    pub counter: u64,
}

/// Encodes a data datagram: header (with `ack` piggy-backed, if any), payload and tag.
///
/// The caller checks the size first ([`datagram_bound`] plus [`ack_size`] for the
/// acknowledgement); this function does not refuse anything.
pub fn encode_data(
    route: Route,
    seal: Seal<'_>,
    position: Position,
    message: &WireMessage,
    ack: Option<&Ack>,
) -> Vec<u8> {
    let header = HeaderRef {
        magic: MAGIC,
        version: route.version,
        from: route.from,
        to: route.to,
        kind: KindRef::Data(DataHeaderRef {
            counter: seal.counter,
            stream: position.stream,
            seq: position.seq,
            base: position.base,
            sender: &message.sender,
            target: &message.target,
            type_name: &message.type_name,
            ack,
        }),
    };
    let out = Vec::with_capacity(datagram_bound(message) + ack.map_or(0, ack_size));
    let mut out = postcard::to_extend(&header, out).expect("a Vec never runs out of room");
    let tag = seal.key.tag(seal.counter, &[&out, &message.payload]);
    out.extend_from_slice(&message.payload);
    out.extend_from_slice(&tag);
    out
}

/// Encodes a batch datagram: header (with `ack` piggy-backed, if any), every message's
/// payload and the tag. `position.seq` is the first message's sequence number; the others
/// follow it.
///
/// The caller keeps to [`MAX_BATCH`] messages and checks the size first ([`batch_bound`] and
/// [`batch_entry_bound`], plus [`ack_size`]); this function does not refuse anything.
pub fn encode_batch(
    route: Route,
    seal: Seal<'_>,
    position: Position,
    messages: &[&WireMessage],
    ack: Option<&Ack>,
) -> Vec<u8> {
    let header = HeaderRef {
        magic: MAGIC,
        version: route.version,
        from: route.from,
        to: route.to,
        kind: KindRef::Batch(BatchHeaderRef {
            counter: seal.counter,
            stream: position.stream,
            first_seq: position.seq,
            base: position.base,
            ack,
            messages: messages.iter().map(|m| BatchEntryRef::of(m)).collect(),
        }),
    };
    let payloads: usize = messages.iter().map(|m| m.payload.len()).sum();
    let mut out = postcard::to_allocvec(&header).expect("a Vec never runs out of room");
    let signed = out.len();
    out.reserve(payloads + TAG_LEN);
    for m in messages {
        out.extend_from_slice(&m.payload);
    }
    let tag = seal
        .key
        .tag(seal.counter, &[&out[..signed], &out[signed..]]);
    out.extend_from_slice(&tag);
    out
}

/// The largest size of a batch datagram without its entries and payloads (and without a
/// piggy-backed acknowledgement), whatever its numbers and incarnations, tag included: add
/// [`batch_entry_bound`] of every message for the batch's bound.
pub fn batch_bound() -> usize {
    let widest = SystemId::from_raw(u64::MAX);
    let header = HeaderRef {
        magic: MAGIC,
        version: u16::MAX,
        from: widest,
        to: Some(widest),
        kind: KindRef::Batch(BatchHeaderRef {
            counter: u64::MAX,
            stream: u64::MAX,
            first_seq: u64::MAX,
            base: u64::MAX,
            ack: None,
            messages: Vec::new(),
        }),
    };
    // The entry count's varint grows from one byte to at most two for MAX_BATCH entries.
    postcard::experimental::serialized_size(&header).expect("sizing never fails") + 1 + TAG_LEN
}

/// The largest size `message` adds to a batch datagram: its entry and its payload.
pub fn batch_entry_bound(message: &WireMessage) -> usize {
    let entry = BatchEntryRef {
        len: u64::MAX,
        ..BatchEntryRef::of(message)
    };
    postcard::experimental::serialized_size(&entry).expect("sizing never fails")
        + message.payload.len()
}

/// Encodes an acknowledgement datagram, with its tag.
pub fn encode_ack(route: Route, seal: Seal<'_>, ack: &Ack) -> Vec<u8> {
    let header = HeaderRef {
        magic: MAGIC,
        version: route.version,
        from: route.from,
        to: route.to,
        kind: KindRef::Ack(AckHeaderRef {
            counter: seal.counter,
            ack,
        }),
    };
    let mut out = postcard::to_allocvec(&header).expect("a Vec never runs out of room");
    let tag = seal.key.tag(seal.counter, &[&out, &[]]);
    out.extend_from_slice(&tag);
    out
}

/// A handshake message to encode.
#[derive(Debug, Clone, Copy)]
pub enum HandshakeRef<'a> {
    /// The initiator's opening.
    Hello(&'a HelloBody),
    /// The responder's answer.
    Welcome(&'a WelcomeBody),
    /// The initiator's proof, with its `Hello`.
    Confirm(&'a ConfirmBody),
    /// A refusal.
    Reject(RejectReason),
}

/// Encodes a handshake datagram (`Hello`, `Welcome`, `Confirm` or `Reject`).
pub fn encode_handshake(route: Route, message: HandshakeRef<'_>) -> Vec<u8> {
    let kind = match message {
        HandshakeRef::Hello(h) => KindRef::Hello(h),
        HandshakeRef::Welcome(w) => KindRef::Welcome(w),
        HandshakeRef::Confirm(c) => KindRef::Confirm(c),
        HandshakeRef::Reject(r) => KindRef::Reject(r),
    };
    let header = HeaderRef {
        magic: MAGIC,
        version: route.version,
        from: route.from,
        to: route.to,
        kind,
    };
    postcard::to_allocvec(&header).expect("a Vec never runs out of room")
}

/// Encodes a version notice: the magic and `version`, nothing else.
pub fn encode_version_notice(version: u16) -> Vec<u8> {
    postcard::to_allocvec(&(MAGIC, version)).expect("a Vec never runs out of room")
}

/// The encoded size of `ack` (what piggy-backing it adds to a data datagram).
pub fn ack_size(ack: &Ack) -> usize {
    postcard::experimental::serialized_size(ack).expect("sizing never fails for an Ack")
}

/// The largest size of `message`'s data datagram (without a piggy-backed acknowledgement),
/// whatever its stream, sequence numbers, counter and incarnations, tag included: the figure
/// compared with [`MAX_DATAGRAM`], so a message is accepted or refused the same way whichever
/// numbers it gets.
pub fn datagram_bound(message: &WireMessage) -> usize {
    let widest = SystemId::from_raw(u64::MAX);
    let header = HeaderRef {
        magic: MAGIC,
        version: u16::MAX,
        from: widest,
        to: Some(widest),
        kind: KindRef::Data(DataHeaderRef {
            counter: u64::MAX,
            stream: u64::MAX,
            seq: u64::MAX,
            base: u64::MAX,
            sender: &message.sender,
            target: &message.target,
            type_name: &message.type_name,
            ack: None,
        }),
    };
    postcard::experimental::serialized_size(&header).expect("sizing never fails")
        + message.payload.len()
        + TAG_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Arc, OnceLock};
    use thespian_auth::{Initiator, Nonce, Responder, Secret, SessionKeys};

    /// A session's keys, from a real handshake (keys cannot be made any other way).
    fn keys() -> &'static (SessionKeys, SessionKeys) {
        static KEYS: OnceLock<(SessionKeys, SessionKeys)> = OnceLock::new();
        KEYS.get_or_init(|| {
            let secret = Secret::from_text(b"the wire tests' secret").unwrap();
            let initiator = Initiator::new(&secret, "test", 1, Nonce([1; 32]), Vec::new());
            let (responder, welcome) = Responder::new(
                &secret,
                "test",
                2,
                Nonce([2; 32]),
                b"",
                initiator.hello(),
                b"",
            )
            .unwrap();
            let (confirm, i) = initiator.finish(&welcome, b"").unwrap();
            (i, responder.finish(&confirm).unwrap())
        })
    }

    fn seal(counter: u64) -> Seal<'static> {
        Seal {
            key: &keys().0.send,
            counter,
        }
    }

    fn addr(sys: u64, id: u64) -> ActorAddress {
        ActorAddress::new(SystemId::from_raw(sys), id)
    }

    fn message(payload: &[u8]) -> WireMessage {
        WireMessage {
            sender: addr(1, 2),
            target: addr(3, 4),
            type_name: Arc::from("test.Msg"),
            payload: Arc::from(payload),
        }
    }

    fn route() -> Route {
        Route {
            version: PROTOCOL_VERSION,
            from: SystemId::from_raw(10),
            to: Some(SystemId::from_raw(20)),
        }
    }

    fn sample_ack() -> Ack {
        Ack {
            stream: 3,
            cumulative: 41,
            ranges: vec![
                SeqRange {
                    first: 43,
                    last: 45,
                },
                SeqRange {
                    first: 50,
                    last: 50,
                },
            ],
        }
    }

    #[test]
    fn data_round_trip_matches_the_owned_encoding() {
        let m = message(b"payload bytes");
        let ack = sample_ack();
        for (position, ack) in [
            (
                Position {
                    stream: 1,
                    seq: 1,
                    base: 1,
                },
                None,
            ),
            (
                Position {
                    stream: 7,
                    seq: 300,
                    base: 290,
                },
                Some(&ack),
            ),
            (
                Position {
                    stream: u64::MAX,
                    seq: u64::MAX,
                    base: u64::MAX,
                },
                None,
            ),
        ] {
            let bytes = encode_data(route(), seal(5), position, &m, ack);
            assert!(bytes.len() <= datagram_bound(&m) + ack.map_or(0, ack_size));
            let header = DataHeader {
                counter: 5,
                stream: position.stream,
                seq: position.seq,
                base: position.base,
                sender: m.sender.clone(),
                target: m.target.clone(),
                type_name: "test.Msg".into(),
                ack: ack.cloned(),
            };
            // The borrowed mirror encodes exactly like the owned type.
            let owned = postcard::to_allocvec(&Header {
                magic: MAGIC,
                version: PROTOCOL_VERSION,
                from: route().from,
                to: route().to,
                kind: Kind::Data(header.clone()),
            })
            .unwrap();
            assert_eq!(&bytes[..owned.len()], &owned[..]);
            let decoded = decode(&bytes, PROTOCOL_VERSION).unwrap();
            let Datagram::Data {
                from,
                to,
                header: got,
                payload,
                mac,
            } = decoded
            else {
                panic!("{decoded:?}")
            };
            assert_eq!(
                (from, to, &got, payload),
                (route().from, route().to, &header, &b"payload bytes"[..])
            );
            assert_eq!(mac.signed, &owned[..]);
            // The tag verifies with the receiver's key, for this counter only.
            assert!(mac.verify(&keys().1.receive, 5, payload));
            assert!(!mac.verify(&keys().1.receive, 6, payload));
            assert!(!mac.verify(&keys().1.receive, 5, b"payload byteS"));
            assert!(!mac.verify(&keys().0.receive, 5, payload), "reflected");
        }
    }

    /// A batch's messages with their payloads, as the receiver splits them.
    fn split(header: &BatchHeader, payloads: &[u8]) -> Vec<WireMessage> {
        let mut rest = payloads;
        header
            .messages
            .iter()
            .map(|e| {
                let (payload, tail) = rest.split_at(e.len as usize);
                rest = tail;
                WireMessage {
                    sender: e.sender.clone(),
                    target: e.target.clone(),
                    type_name: e.type_name.as_str().into(),
                    payload: payload.into(),
                }
            })
            .collect()
    }

    fn batch_of(payloads: &[&[u8]]) -> Vec<WireMessage> {
        payloads.iter().map(|p| message(p)).collect()
    }

    #[test]
    fn batch_round_trip_matches_the_owned_encoding() {
        let messages = batch_of(&[b"one", b"", b"three bytes and more"]);
        let refs: Vec<&WireMessage> = messages.iter().collect();
        let ack = sample_ack();
        let position = Position {
            stream: 7,
            seq: 300,
            base: 290,
        };
        let bytes = encode_batch(route(), seal(5), position, &refs, Some(&ack));
        let bound: usize =
            batch_bound() + ack_size(&ack) + messages.iter().map(batch_entry_bound).sum::<usize>();
        assert!(bytes.len() <= bound, "{} > {bound}", bytes.len());
        let header = BatchHeader {
            counter: 5,
            stream: 7,
            first_seq: 300,
            base: 290,
            ack: Some(ack.clone()),
            messages: messages
                .iter()
                .map(|m| BatchEntry {
                    sender: m.sender.clone(),
                    target: m.target.clone(),
                    type_name: m.type_name.to_string(),
                    len: m.payload.len() as u64,
                })
                .collect(),
        };
        let owned = postcard::to_allocvec(&Header {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            from: route().from,
            to: route().to,
            kind: Kind::Batch(header.clone()),
        })
        .unwrap();
        assert_eq!(&bytes[..owned.len()], &owned[..]);
        let Ok(Datagram::Batch {
            from,
            to,
            header: got,
            payloads,
            mac,
        }) = decode(&bytes, PROTOCOL_VERSION)
        else {
            panic!("not a batch")
        };
        assert_eq!((from, to, &got), (route().from, route().to, &header));
        assert_eq!(split(&got, payloads), messages);
        assert_eq!(mac.signed, &owned[..]);
        // One tag covers the header and every payload.
        assert!(mac.verify(&keys().1.receive, 5, payloads));
        assert!(!mac.verify(&keys().1.receive, 6, payloads));
        let mut changed = payloads.to_vec();
        changed[0] ^= 1;
        assert!(!mac.verify(&keys().1.receive, 5, &changed));
    }

    #[test]
    fn batches_are_validated() {
        let messages = batch_of(&[b"ab", b"cd"]);
        let refs: Vec<&WireMessage> = messages.iter().collect();
        let position = Position {
            stream: 1,
            seq: 1,
            base: 1,
        };
        let good = encode_batch(route(), seal(1), position, &refs, None);
        // A payload byte more or less than the entries announce.
        let mut longer = good.clone();
        longer.insert(good.len() - TAG_LEN, 0);
        let shorter = [
            &good[..good.len() - TAG_LEN - 1],
            &good[good.len() - TAG_LEN..],
        ]
        .concat();
        for bytes in [longer, shorter] {
            assert!(matches!(
                decode(&bytes, PROTOCOL_VERSION),
                Err(WireError::Malformed(_))
            ));
        }
        // No message, too many, or sequence numbers past the end.
        let empty = encode_batch(route(), seal(1), position, &[], None);
        let many: Vec<&WireMessage> = std::iter::repeat_n(&messages[0], MAX_BATCH + 1).collect();
        let too_many = encode_batch(route(), seal(1), position, &many, None);
        let overflow = encode_batch(
            route(),
            seal(1),
            Position {
                seq: u64::MAX - 1,
                ..position
            },
            &refs,
            None,
        );
        for bytes in [empty, too_many, overflow] {
            assert!(matches!(
                decode(&bytes, PROTOCOL_VERSION),
                Err(WireError::Malformed(_))
            ));
        }
        let most: Vec<&WireMessage> = std::iter::repeat_n(&messages[0], MAX_BATCH).collect();
        let bytes = encode_batch(route(), seal(1), position, &most, None);
        assert!(bytes.len() <= batch_bound() + MAX_BATCH * batch_entry_bound(&messages[0]));
        assert!(matches!(
            decode(&bytes, PROTOCOL_VERSION),
            Ok(Datagram::Batch { header, .. }) if header.messages.len() == MAX_BATCH
        ));
    }

    #[test]
    fn the_bound_is_exact_for_the_widest_numbers() {
        let m = message(&[7; 1000]);
        let widest = Route {
            version: u16::MAX,
            from: SystemId::from_raw(u64::MAX),
            to: Some(SystemId::from_raw(u64::MAX)),
        };
        let position = Position {
            stream: u64::MAX,
            seq: u64::MAX,
            base: u64::MAX,
        };
        assert_eq!(
            encode_data(widest, seal(u64::MAX), position, &m, None).len(),
            datagram_bound(&m)
        );
        let ack = sample_ack();
        assert_eq!(
            encode_data(widest, seal(u64::MAX), position, &m, Some(&ack)).len(),
            datagram_bound(&m) + ack_size(&ack)
        );
    }

    #[test]
    fn ack_round_trip() {
        let ack = sample_ack();
        let bytes = encode_ack(route(), seal(3), &ack);
        let Ok(Datagram::Ack {
            from,
            to,
            counter,
            ack: got,
            mac,
        }) = decode(&bytes, PROTOCOL_VERSION)
        else {
            panic!("not an ack")
        };
        assert_eq!(
            (from, to, counter, &got),
            (route().from, route().to, 3, &ack)
        );
        assert!(mac.verify(&keys().1.receive, 3, &[]));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer, PROTOCOL_VERSION).unwrap_err(),
            WireError::TrailingBytes(1)
        );
        // Without its tag it is malformed.
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1], PROTOCOL_VERSION).unwrap_err(),
            WireError::Malformed(_)
        ));
    }

    #[test]
    fn magic_and_version_are_checked_first() {
        assert_eq!(
            decode(b"GET / HTTP/1.1", PROTOCOL_VERSION).unwrap_err(),
            WireError::BadMagic { found: *b"GET " }
        );
        assert!(matches!(
            decode(b"TH", PROTOCOL_VERSION).unwrap_err(),
            WireError::Malformed(_)
        ));
        // A future version whose body we cannot parse still reports its version.
        #[derive(Serialize)]
        struct Future {
            magic: [u8; 4],
            version: u16,
            whatever: Vec<u32>,
        }
        let future = postcard::to_allocvec(&Future {
            magic: MAGIC,
            version: 9,
            whatever: vec![1, 2, 3],
        })
        .unwrap();
        assert_eq!(
            decode(&future, PROTOCOL_VERSION).unwrap_err(),
            WireError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: 9
            }
        );
        // Our own datagrams, read by a peer of version 9.
        let ours = encode_ack(route(), seal(3), &sample_ack());
        assert_eq!(
            decode(&ours, 9).unwrap_err(),
            WireError::VersionMismatch {
                ours: 9,
                theirs: PROTOCOL_VERSION
            }
        );
    }

    #[test]
    fn handshake_round_trips() {
        let secret = Secret::from_text(b"the wire tests' secret").unwrap();
        let initiator = Initiator::new(&secret, "test", 10, Nonce([1; 32]), Vec::new());
        let hello = initiator.hello().clone();
        let (_, welcome) =
            Responder::new(&secret, "test", 20, Nonce([2; 32]), b"", &hello, b"").unwrap();
        let route_back = Route {
            version: PROTOCOL_VERSION,
            from: SystemId::from_raw(20),
            to: Some(SystemId::from_raw(10)),
        };
        let cases = [
            (
                route(),
                Kind::Hello(HelloBody {
                    hello: hello.clone(),
                    opening: 7,
                }),
            ),
            (
                route_back,
                Kind::Welcome(WelcomeBody {
                    welcome: welcome.clone(),
                    opening: 7,
                }),
            ),
            (
                route(),
                Kind::Confirm(ConfirmBody {
                    hello: hello.clone(),
                    hello_to: None,
                    opening: 7,
                    confirm: thespian_auth::Confirm { proof: [9; 32] },
                }),
            ),
            (route(), Kind::Reject(RejectReason::WrongSecret)),
        ];
        for (route, kind) in cases {
            let message = match &kind {
                Kind::Hello(h) => HandshakeRef::Hello(h),
                Kind::Welcome(w) => HandshakeRef::Welcome(w),
                Kind::Confirm(c) => HandshakeRef::Confirm(c),
                Kind::Reject(r) => HandshakeRef::Reject(*r),
                _ => unreachable!(),
            };
            let bytes = encode_handshake(route, message);
            assert_eq!(
                decode(&bytes, PROTOCOL_VERSION).unwrap(),
                Datagram::Handshake {
                    from: route.from,
                    to: route.to,
                    kind
                }
            );
        }
        // A Hello whose incarnation is not its sender's is refused.
        let liar = Route {
            from: SystemId::from_raw(11),
            ..route()
        };
        assert!(matches!(
            decode(
                &encode_handshake(
                    liar,
                    HandshakeRef::Hello(&HelloBody {
                        hello: hello.clone(),
                        opening: 1
                    })
                ),
                PROTOCOL_VERSION
            ),
            Err(WireError::Malformed(_))
        ));
        assert_eq!(
            RejectReason::WrongSecret.to_string(),
            "authentication failed: this system uses another secret"
        );
    }

    #[test]
    fn version_notices() {
        let notice = encode_version_notice(9);
        assert_eq!(
            decode(&notice, PROTOCOL_VERSION).unwrap(),
            Datagram::VersionNotice { version: 9 }
        );
        // A notice of our own version makes no sense.
        let own = encode_version_notice(PROTOCOL_VERSION);
        assert!(matches!(
            decode(&own, PROTOCOL_VERSION).unwrap_err(),
            WireError::Malformed(_)
        ));
    }

    #[test]
    fn acknowledgements_are_validated() {
        let mut ack = sample_ack();
        ack.ranges = vec![SeqRange { first: 5, last: 4 }];
        assert!(matches!(
            decode(&encode_ack(route(), seal(3), &ack), PROTOCOL_VERSION).unwrap_err(),
            WireError::Malformed(_)
        ));
        ack.ranges = vec![SeqRange { first: 5, last: 5 }; MAX_ACK_RANGES + 1];
        assert!(matches!(
            decode(&encode_ack(route(), seal(3), &ack), PROTOCOL_VERSION).unwrap_err(),
            WireError::Malformed(_)
        ));
        // Also when piggy-backed.
        let bytes = encode_data(
            route(),
            seal(9),
            Position {
                stream: 1,
                seq: 1,
                base: 1,
            },
            &message(b""),
            Some(&ack),
        );
        assert!(matches!(
            decode(&bytes, PROTOCOL_VERSION).unwrap_err(),
            WireError::Malformed(_)
        ));
    }

    proptest! {
        /// Any batch within the bounds decodes to its messages, within its size bound.
        #[test]
        fn batches_round_trip(
            payloads in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..64), 1..40),
            first_seq in 1u64..u64::MAX / 2,
            with_ack in any::<bool>(),
        ) {
            let messages: Vec<WireMessage> = payloads.iter().map(|p| message(p)).collect();
            let refs: Vec<&WireMessage> = messages.iter().collect();
            let ack = sample_ack();
            let ack = with_ack.then_some(&ack);
            let position = Position { stream: 3, seq: first_seq, base: first_seq };
            let bytes = encode_batch(route(), seal(2), position, &refs, ack);
            let bound = batch_bound()
                + ack.map_or(0, ack_size)
                + messages.iter().map(batch_entry_bound).sum::<usize>();
            prop_assert!(bytes.len() <= bound);
            let Ok(Datagram::Batch { header, payloads, mac, .. }) = decode(&bytes, PROTOCOL_VERSION)
            else {
                panic!("not a batch");
            };
            prop_assert_eq!(header.first_seq, first_seq);
            prop_assert_eq!(header.ack.as_ref(), ack);
            prop_assert_eq!(split(&header, payloads), messages);
            prop_assert!(mac.verify(&keys().1.receive, 2, payloads));
        }

        /// Any bytes decode to a datagram or an error, never a panic.
        #[test]
        fn any_bytes_decode_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes, PROTOCOL_VERSION);
        }

        /// Bytes that start like a datagram (magic, version) reach the deeper decoders.
        #[test]
        fn any_body_after_a_valid_prelude_decodes_or_fails(
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.push(PROTOCOL_VERSION as u8);
            bytes.extend_from_slice(&body);
            let _ = decode(&bytes, PROTOCOL_VERSION);
        }

        /// Valid datagrams with random bytes changed decode or fail, never panic.
        #[test]
        fn mutated_datagrams_decode_or_fail(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let ack = sample_ack();
            for mut bytes in [
                encode_data(
                    route(),
                    seal(9),
                    Position { stream: 2, seq: 9, base: 3 },
                    &message(b"abc"),
                    Some(&ack),
                ),
                encode_ack(route(), seal(3), &ack),
                encode_batch(
                    route(),
                    seal(4),
                    Position { stream: 2, seq: 9, base: 3 },
                    &[&message(b"abc"), &message(b""), &message(b"defg")],
                    Some(&ack),
                ),
                encode_handshake(
                    route(),
                    HandshakeRef::Confirm(&ConfirmBody {
                        hello: Hello {
                            incarnation: route().from.raw(),
                            nonce: Nonce([5; 32]),
                            suite: thespian_auth::Suite::Authenticated,
                        },
                        hello_to: Some(SystemId::from_raw(20)),
                        opening: u64::MAX,
                        confirm: thespian_auth::Confirm { proof: [4; 32] },
                    }),
                ),
                encode_handshake(route(), HandshakeRef::Reject(RejectReason::WrongSecret)),
            ] {
                for (at, value) in &flips {
                    let len = bytes.len();
                    bytes[at % len] = *value;
                }
                let _ = decode(&bytes, PROTOCOL_VERSION);
                let keep = cut % (bytes.len() + 1);
                let _ = decode(&bytes[..keep], PROTOCOL_VERSION);
            }
        }
    }
}
