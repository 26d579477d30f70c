//! The frame bodies: what the TCP transport says to its peer, in postcard.
//!
//! This module exists because the wire is the only serialisation boundary of the transport
//! (SPEC §4): every byte a peer sends is decoded here, into types that cannot be misread, and
//! every decoding failure is a [`WireError`] value, never a panic.
//!
//! A connection carries:
//! 1. the handshake, in [`Handshake`] frames: the initiator's `Hello`, the acceptor's `Welcome`
//!    (or `Reject`, or `Duplicate`), the initiator's `Confirm`. `Hello` and `Welcome` carry the
//!    `thespian_auth` challenge–response beside each side's [`PeerInfo`]; each side's `PeerInfo`
//!    (its postcard bytes, [`peer_context`]) is bound into the handshake transcript, so none of
//!    it can be changed in flight. A `Reject` may also come after a `Welcome` or instead of a
//!    `Confirm` (a wrong secret).
//! 2. then, once authenticated, *records*: a record is itself a length-prefixed frame whose
//!    body is a run of whole [`Control`] frames (`Data`: a postcard [`DataHeader`] followed by
//!    the raw payload bytes, so a large payload is never walked by the decoder; `Ack`,
//!    `Goodbye`, `Error`), each with its own length prefix, then a [`TAG_LEN`]-byte tag: the
//!    session key's MAC of the record's length prefix and content under an implicit counter,
//!    the record's index in its direction on this connection, starting at 0. A sender gathers
//!    what it has to send at once (up to [`MAX_RECORD_BATCH`] bytes, plus one frame) into one
//!    record, so one tag covers many small messages. A record is verified whole before any frame
//!    in it is decoded ([`open`]), so a replayed, dropped, reordered or altered record (a
//!    changed byte anywhere in it) fails and none of its frames is read.
//!
//! The handshake starts with the magic `THSP` and the protocol version, and postcard encodes a
//! struct as its fields in order, so *any* version can read those two fields of *any* other
//! version's handshake: a version mismatch is always detected and reported, never a hang or a
//! confusing decode error.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use thespian_auth::{FrameKey, TAG_LEN};
use thespian_core::{ActorAddress, SystemId};
use thespian_io::preamble::{self, PreambleError};

// The message a data frame carries is the same on every transport; it lives in thespian-core and
// keeps its path here.
pub use thespian_core::wire::WireMessage;

use crate::frame::{self, FrameError, HEADER_LEN};
use crate::transmit::{RecordStart, Transmit};

/// The four bytes every handshake starts with.
pub const MAGIC: [u8; 4] = *b"THSP";

/// The protocol version this crate speaks. Version 2 added the authenticated handshake and
/// sealed frames; version 1 had neither.
pub const PROTOCOL_VERSION: u16 = 2;

/// The protocol name bound into the authentication transcript, so a proof made for another
/// transport (or another version of this one) is refused.
pub const AUTH_PROTOCOL: &str = "thespian tcp 2";

/// The largest handshake frame accepted: a first frame announcing more is rejected at once,
/// whatever the configured maximum frame size.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

/// Upper bound of the postcard encoding of a `u64` (a varint).
const MAX_VARINT_U64: usize = 10;

/// The most frame bytes a sender gathers in a record before its last frame: a record holds
/// frames while they total less than this (or the sender's smaller batch size), then one more.
pub const MAX_RECORD_BATCH: usize = 256 * 1024;

/// What a record may hold beyond one frame of the maximum size: the batch before it, the
/// frame's prefix, the tag.
pub const RECORD_SLACK: usize = MAX_RECORD_BATCH + HEADER_LEN + TAG_LEN;

/// The largest frame body that can travel (a record of it must fit a `u32` prefix).
pub const MAX_FRAME_IN_RECORD: usize = frame::ABSOLUTE_MAX_FRAME - RECORD_SLACK;

/// The largest record body accepted from a peer whose frames are at most `max_frame` bytes: a
/// record announcing more is refused before anything of it is buffered.
pub fn record_limit(max_frame: usize) -> usize {
    max_frame.min(MAX_FRAME_IN_RECORD) + RECORD_SLACK
}

/// The first frame of each direction of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// Always [`MAGIC`]; anything else is not a thespian peer.
    pub magic: [u8; 4],
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// What this handshake says.
    pub kind: HandshakeKind,
}

/// The handshake frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandshakeKind {
    /// The initiator introduces itself and challenges the acceptor.
    Hello {
        /// The initiator's challenge.
        auth: thespian_auth::Hello,
        /// Who the initiator is (bound into the transcript).
        info: PeerInfo,
    },
    /// The acceptor's answer: it introduces itself, proves it holds the secret and challenges
    /// the initiator.
    Welcome {
        /// The acceptor's proof and challenge.
        auth: thespian_auth::Welcome,
        /// Who the acceptor is (bound into the transcript).
        info: PeerInfo,
    },
    /// Either side refuses the connection (bad version, bad magic, wrong secret, overload,
    /// protocol error) and closes.
    Reject {
        /// What kind of refusal this is: the receiver acts on this, never on the text.
        kind: RejectKind,
        /// Human-readable explanation, for the receiver's logs only (chosen by an
        /// unauthenticated peer: never trusted, escaped and truncated when logged).
        reason: String,
    },
    /// The acceptor already has a connection with this peer (both connected at once) and keeps
    /// that one; the initiator closes this one without failing anything.
    Duplicate,
    /// The initiator's proof that it holds the secret; the last handshake frame.
    Confirm(thespian_auth::Confirm),
}

/// Why a `Reject` was sent. The receiver decides what to do from this code alone (a text the
/// peer chose is only logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectKind {
    /// The sender cannot take the connection now (too many handshakes, no randomness): a
    /// temporary refusal, try again later.
    Overloaded,
    /// The sender is shutting down. Final: the peer is going away (retrying would only meet a
    /// refused connect, and the base decides what a closing peer means).
    ShuttingDown,
    /// A proof was wrong: the two sides hold different secrets. Final.
    Authentication,
    /// The two sides speak different protocol versions. Final.
    Version,
    /// A broken or unexpected handshake. Final.
    Protocol,
}

impl RejectKind {
    /// True when the refusal is temporary (only [`Overloaded`](RejectKind::Overloaded)): the
    /// initiator keeps its queue and reconnects after its back-off.
    pub fn is_transient(self) -> bool {
        matches!(self, RejectKind::Overloaded)
    }
}

impl fmt::Display for RejectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectKind::Overloaded => "overloaded",
            RejectKind::ShuttingDown => "shutting down",
            RejectKind::Authentication => "authentication failed",
            RejectKind::Version => "version mismatch",
            RejectKind::Protocol => "protocol error",
        })
    }
}

/// The most characters of a peer-chosen text kept for logs and reports.
pub const MAX_PEER_TEXT: usize = 200;

/// A text an unauthenticated peer chose, made safe to log and report: at most
/// [`MAX_PEER_TEXT`] characters, control characters and quotes escaped (`{:?}` of the text,
/// without the surrounding quotes), so it can neither forge log lines nor flood them.
pub fn peer_text(text: &str) -> String {
    thespian_core::wire::peer_text(text, MAX_PEER_TEXT)
}

/// What a side's transport binds to the authenticated session: the postcard bytes of its
/// [`PeerInfo`], as sent beside `Hello` or `Welcome`.
pub fn peer_context(info: &PeerInfo) -> Vec<u8> {
    postcard::to_allocvec(info).expect("a Vec never runs out of room")
}

/// Who a peer is: sent in `Hello` and `Welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer system's incarnation: a restarted peer has a new one and is a new peer.
    pub incarnation: SystemId,
    /// The sending session's id, unique within the incarnation. A new session means a new
    /// sequence-number stream, so the receiver forgets what it delivered from the old one.
    pub session: u64,
    /// The peer's listening address (its endpoint id), if it accepts connections; connections
    /// are reused per peer by this key.
    pub listen: Option<SocketAddr>,
    /// The largest frame body the peer accepts; larger messages fail at the sender.
    pub max_frame: u32,
}

impl Handshake {
    /// A handshake of this crate's magic and version.
    pub fn new(kind: HandshakeKind) -> Handshake {
        Handshake {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            kind,
        }
    }
}

/// Frames after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// A message; the payload bytes follow the header in the frame body.
    Data(DataHeader),
    /// Cumulative acknowledgement: every data frame up to and including `seq` was received.
    Ack {
        /// The highest sequence number received.
        seq: u64,
    },
    /// The sender closes the connection on purpose.
    Goodbye {
        /// Why.
        reason: GoodbyeReason,
    },
    /// The sender found a protocol error and closes the connection.
    Error {
        /// Human-readable explanation, logged by the receiver.
        reason: String,
    },
}

/// The header of a data frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHeader {
    /// Sequence number within the sender's session (never reused, never reordered).
    pub seq: u64,
    /// The sending actor.
    pub sender: ActorAddress,
    /// The receiving actor.
    pub target: ActorAddress,
    /// The message's wire name.
    pub type_name: String,
}

/// Why a peer closes a connection on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GoodbyeReason {
    /// Nothing was exchanged for the idle timeout.
    Idle,
    /// The peer's endpoint is shutting down.
    Shutdown,
    /// The peer already has a connection with us and keeps that one.
    Duplicate,
}

impl fmt::Display for GoodbyeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GoodbyeReason::Idle => "idle",
            GoodbyeReason::Shutdown => "shutting down",
            GoodbyeReason::Duplicate => "duplicate connection",
        })
    }
}

/// A decoded post-handshake frame; a data payload borrows from the frame body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A message.
    Data {
        /// Its header.
        header: DataHeader,
        /// Its postcard payload bytes.
        payload: &'a [u8],
    },
    /// A cumulative acknowledgement.
    Ack {
        /// The highest sequence number received.
        seq: u64,
    },
    /// The peer closes on purpose.
    Goodbye {
        /// Why.
        reason: GoodbyeReason,
    },
    /// The peer found a protocol error.
    Error {
        /// Its explanation.
        reason: String,
    },
}

/// Why bytes from the wire could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The handshake does not start with [`MAGIC`]: not a thespian peer.
    BadMagic {
        /// The four bytes found instead.
        found: [u8; 4],
    },
    /// The peer speaks another protocol version.
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// The body is not valid postcard for the expected frame.
    Malformed(String),
    /// Bytes left over after a frame that has no trailing payload.
    TrailingBytes(usize),
    /// A sealed frame's tag is wrong: forged, replayed, reordered or altered.
    BadTag,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadMagic { found } => write!(
                f,
                "not a thespian peer: handshake magic {:?} instead of {:?}",
                String::from_utf8_lossy(found),
                String::from_utf8_lossy(&MAGIC)
            ),
            WireError::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: we speak version {ours}, the peer speaks version {theirs}"
            ),
            WireError::Malformed(reason) => write!(f, "malformed frame: {reason}"),
            WireError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after a frame"),
            WireError::BadTag => f.write_str(
                "a frame failed authentication (forged, replayed, reordered or altered)",
            ),
        }
    }
}

impl std::error::Error for WireError {}

/// Decodes a handshake frame body, checking magic and version (`ours`, normally
/// [`PROTOCOL_VERSION`]) before anything else.
pub fn decode_handshake(body: &[u8], ours: u16) -> Result<Handshake, WireError> {
    preamble::check(body, MAGIC, ours).map_err(|e| match e {
        PreambleError::BadMagic { found } => WireError::BadMagic { found },
        PreambleError::VersionMismatch { ours, theirs } => {
            WireError::VersionMismatch { ours, theirs }
        }
        other => WireError::Malformed(format!("handshake: {other}")),
    })?;
    let (handshake, rest): (Handshake, _) = postcard::take_from_bytes(body)
        .map_err(|e| WireError::Malformed(format!("handshake: {e}")))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(handshake)
}

/// Encodes a handshake as a whole frame (prefix included).
pub fn encode_handshake(handshake: &Handshake) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN];
    out = postcard::to_extend(handshake, out).expect("a Vec never runs out of room");
    // A handshake is a few dozen bytes plus a reason we write ourselves; cap the reason so the
    // frame always fits the handshake limit.
    if out.len() - HEADER_LEN > MAX_HANDSHAKE_FRAME {
        let short = Handshake {
            kind: HandshakeKind::Reject {
                kind: match handshake.kind {
                    HandshakeKind::Reject { kind, .. } => kind,
                    _ => RejectKind::Protocol,
                },
                reason: "rejected (reason too long to send)".into(),
            },
            ..handshake.clone()
        };
        return encode_handshake(&short);
    }
    frame::finish_frame(&mut out, MAX_HANDSHAKE_FRAME).expect("length checked above");
    out
}

/// Decodes a post-handshake frame body.
pub fn decode_frame(body: &[u8]) -> Result<Frame<'_>, WireError> {
    let (control, rest): (Control, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    let frame = match control {
        Control::Data(header) => {
            return Ok(Frame::Data {
                header,
                payload: rest,
            })
        }
        Control::Ack { seq } => Frame::Ack { seq },
        Control::Goodbye { reason } => Frame::Goodbye { reason },
        Control::Error { reason } => Frame::Error { reason },
    };
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(frame)
}

/// Encodes a control frame without payload (`Ack`, `Goodbye`, `Error`) as a whole frame (prefix
/// included), to be gathered into a record ([`push_frame`]).
///
/// Panics only for `Control::Data`, which needs [`encode_data`].
pub fn encode_control(control: &Control) -> Vec<u8> {
    assert!(
        !matches!(control, Control::Data(_)),
        "data frames are encoded by encode_data"
    );
    let mut out = vec![0; HEADER_LEN];
    out = postcard::to_extend(control, out).expect("a Vec never runs out of room");
    if let Control::Error { reason } = control {
        if out.len() - HEADER_LEN > MAX_HANDSHAKE_FRAME {
            let short: String = reason.chars().take(MAX_HANDSHAKE_FRAME / 8).collect();
            return encode_control(&Control::Error { reason: short });
        }
    }
    frame::finish_frame(&mut out, frame::ABSOLUTE_MAX_FRAME).expect("control frames are small");
    out
}

/// Starts a record at the end of `out` (a placeholder for its prefix) and returns where it
/// starts, for [`push_frame`] and [`seal_record`].
pub fn begin_record(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    start
}

/// Bytes of frames in the record that starts at `start` of `out`.
pub fn record_content_len(out: &[u8], start: usize) -> usize {
    out.len() - start - HEADER_LEN
}

/// Appends a whole frame (from [`encode_control`], or [`encode_data_head`] and its payload) to
/// the record in progress, as the concatenation of `parts`: the payload is copied once, here.
pub fn push_frame(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.reserve(parts.iter().map(|p| p.len()).sum::<usize>() + TAG_LEN);
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// Seals the record that starts at `start` of `out` as the `counter`-th record of its
/// direction: writes its length prefix (content and tag) and appends the tag over the prefix
/// and the content, hashed where they lie (nothing is copied to compute it).
///
/// Panics if the record is longer than a `u32` prefix can say (the sender bounds its frames by
/// [`MAX_FRAME_IN_RECORD`] and its batches by [`MAX_RECORD_BATCH`], so it never is).
pub fn seal_record(out: &mut Vec<u8>, start: usize, key: &FrameKey, counter: u64) {
    let prefix = record_prefix(record_content_len(out, start));
    out[start..start + HEADER_LEN].copy_from_slice(&prefix);
    let content = &out[start + HEADER_LEN..];
    let tag = key.tag_pieces(counter, &[&[&prefix], &[content]]);
    out.extend_from_slice(&tag);
}

/// Starts a record at the end of `out`, as [`begin_record`] does for a buffer.
pub fn begin_record_in(out: &mut Transmit) -> RecordStart {
    out.begin_record(HEADER_LEN)
}

/// Bytes of frames in the record that starts at `start` of `out`.
pub fn record_content_len_in(out: &Transmit, start: RecordStart) -> usize {
    out.record_content_len(start, HEADER_LEN)
}

/// Seals the record that starts at `start` of `out`, as [`seal_record`] does for a buffer: the
/// same prefix and the same tag, hashed over the pieces where they lie (the payloads written
/// from their own buffers are not copied to compute it).
pub fn seal_record_in(out: &mut Transmit, start: RecordStart, key: &FrameKey, counter: u64) {
    let prefix = record_prefix(out.record_content_len(start, HEADER_LEN));
    let tag = out.with_record_parts(start, &prefix, |content| {
        key.tag_pieces(counter, &[&[&prefix], content])
    });
    out.extend_from_slice(&tag);
}

/// The length prefix of a record whose frames total `content` bytes: it counts the tag too.
fn record_prefix(content: usize) -> [u8; HEADER_LEN] {
    u32::try_from(content + TAG_LEN)
        .expect("a record fits a u32 prefix")
        .to_be_bytes()
}

/// Appends one record holding the whole frames `frames`, sealed as the `counter`-th record.
pub fn seal(out: &mut Vec<u8>, frames: &[&[u8]], key: &FrameKey, counter: u64) {
    let start = begin_record(out);
    push_frame(out, frames);
    seal_record(out, start, key, counter);
}

/// Checks a record body (content followed by its tag) as the `counter`-th record of its
/// direction and returns the content, whose frames [`frames`] splits. Nothing in the body is
/// interpreted before the tag is verified.
pub fn open<'a>(body: &'a [u8], key: &FrameKey, counter: u64) -> Result<&'a [u8], WireError> {
    if body.len() < TAG_LEN || body.len() > frame::ABSOLUTE_MAX_FRAME {
        return Err(WireError::BadTag);
    }
    let (content, tag) = body.split_at(body.len() - TAG_LEN);
    let prefix = (body.len() as u32).to_be_bytes();
    if key.verify(counter, &[&prefix, content], tag) {
        Ok(content)
    } else {
        Err(WireError::BadTag)
    }
}

/// The frame bodies of an opened record's `content`, in order, each at most `max_frame` bytes;
/// checked whole first, so a malformed record yields no frame at all. (An authenticated record
/// is malformed only if the peer is broken: a protocol error.)
pub fn frames(content: &[u8], max_frame: usize) -> Result<Frames<'_>, WireError> {
    let mut rest = content;
    while !rest.is_empty() {
        if rest.len() < HEADER_LEN {
            return Err(WireError::Malformed(format!(
                "a record ends with {} bytes of a frame prefix",
                rest.len()
            )));
        }
        let (prefix, after) = rest.split_at(HEADER_LEN);
        let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
        if len > max_frame {
            return Err(WireError::Malformed(
                FrameError::TooLarge {
                    len: len as u64,
                    max: max_frame,
                }
                .to_string(),
            ));
        }
        if len > after.len() {
            return Err(WireError::Malformed(format!(
                "a frame of {len} bytes overruns its record by {} bytes",
                len - after.len()
            )));
        }
        rest = &after[len..];
    }
    Ok(Frames { rest: content })
}

/// The frame bodies of a record, from [`frames`].
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.len() < HEADER_LEN {
            return None;
        }
        let (prefix, after) = self.rest.split_at(HEADER_LEN);
        let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
        let (body, rest) = after.split_at(len.min(after.len()));
        self.rest = rest;
        Some(body)
    }
}

/// An upper bound of `message`'s data-frame body size (exact up to the width of the sequence
/// number). The transport compares this with the maximum frame size, so a message is
/// accepted or refused the same way whichever sequence number it gets.
pub fn frame_body_bound(message: &WireMessage) -> usize {
    let header = DataHeaderRef {
        seq: 0,
        sender: &message.sender,
        target: &message.target,
        type_name: &message.type_name,
    };
    // Data variant tag (1 byte) is included by serialising the enum form.
    let size = postcard::experimental::serialized_size(&ControlRef::Data(header))
        .expect("sizing never fails for these types");
    // seq 0 is one varint byte; reserve the widest.
    size - 1 + MAX_VARINT_U64 + message.payload.len()
}

/// Borrowed mirror of [`DataHeader`] (same encoding) to avoid copying the name when sending.
#[derive(Serialize)]
struct DataHeaderRef<'a> {
    seq: u64,
    sender: &'a ActorAddress,
    target: &'a ActorAddress,
    type_name: &'a str,
}

/// Borrowed mirror of [`Control`]'s `Data` variant: same variant index, same encoding.
#[derive(Serialize)]
enum ControlRef<'a> {
    Data(DataHeaderRef<'a>),
}

/// Encodes the head of a data frame for `message` with sequence number `seq`: the length prefix
/// (which counts the payload) and the postcard header. The frame is the head followed by
/// `message.payload`, which is not copied here ([`push_frame`] copies it into the record).
///
/// Fails with [`FrameError::TooLarge`] when [`frame_body_bound`] exceeds `max`.
pub fn encode_data_head(
    seq: u64,
    message: &WireMessage,
    max: usize,
) -> Result<Vec<u8>, FrameError> {
    let max = max.min(MAX_FRAME_IN_RECORD);
    let bound = frame_body_bound(message);
    if bound > max {
        return Err(FrameError::TooLarge {
            len: bound as u64,
            max,
        });
    }
    let mut out = Vec::with_capacity(HEADER_LEN + bound - message.payload.len());
    out.resize(HEADER_LEN, 0);
    let header = ControlRef::Data(DataHeaderRef {
        seq,
        sender: &message.sender,
        target: &message.target,
        type_name: &message.type_name,
    });
    out = postcard::to_extend(&header, out).expect("a Vec never runs out of room");
    let body = out.len() - HEADER_LEN + message.payload.len();
    out[..HEADER_LEN].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(out)
}

/// Encodes a whole data frame (prefix, header, payload) for `message` with sequence number
/// `seq`; see [`encode_data_head`].
pub fn encode_data(seq: u64, message: &WireMessage, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = encode_data_head(seq, message, max)?;
    out.extend_from_slice(&message.payload);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameDecoder;
    use proptest::prelude::*;
    use std::sync::Arc;

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

    /// Both sides' keys of a session between holders of one secret.
    pub(crate) fn session_keys() -> (thespian_auth::SessionKeys, thespian_auth::SessionKeys) {
        use thespian_auth::{Initiator, Nonce, Responder, Secret};
        let secret = Secret::from_text(b"a test secret of the wire").unwrap();
        let initiator = Initiator::new(&secret, AUTH_PROTOCOL, 1, Nonce([1; 32]), vec![1]);
        let (responder, welcome) = Responder::new(
            &secret,
            AUTH_PROTOCOL,
            2,
            Nonce([2; 32]),
            &[2],
            initiator.hello(),
            &[1],
        )
        .unwrap();
        let (confirm, i_keys) = initiator.finish(&welcome, &[2]).unwrap();
        (i_keys, responder.finish(&confirm).unwrap())
    }

    /// Seals `frame` alone in the `counter`-th record and opens it again, returning the frame's
    /// body.
    fn sealed_content(frame: &[u8], counter: u64) -> Vec<u8> {
        let (send, receive) = session_keys();
        let mut wire = Vec::new();
        seal(&mut wire, &[frame], &send.send, counter);
        let body = body_of(&wire);
        let content = open(&body, &receive.receive, counter).unwrap();
        let bodies: Vec<&[u8]> = frames(content, usize::MAX).unwrap().collect();
        assert_eq!(bodies.len(), 1);
        bodies[0].to_vec()
    }

    fn body_of(frame: &[u8]) -> Vec<u8> {
        let mut decoder = FrameDecoder::new(usize::MAX);
        let mut input = frame;
        let body = decoder.decode(&mut input).unwrap().unwrap();
        assert!(input.is_empty());
        body
    }

    #[test]
    fn data_round_trip_and_ref_encoding_matches() {
        let m = message(b"payload bytes");
        for seq in [0, 1, 300, u64::MAX] {
            let frame = encode_data(seq, &m, 1 << 20).unwrap();
            assert!(frame.len() - HEADER_LEN <= frame_body_bound(&m));
            let body = sealed_content(&frame, seq);
            match decode_frame(&body).unwrap() {
                Frame::Data { header, payload } => {
                    assert_eq!(header.seq, seq);
                    assert_eq!(header.sender, m.sender);
                    assert_eq!(header.target, m.target);
                    assert_eq!(header.type_name, "test.Msg");
                    assert_eq!(payload, b"payload bytes");
                }
                other => panic!("{other:?}"),
            }
            // The borrowed mirror encodes exactly like the owned type.
            let owned = Control::Data(DataHeader {
                seq,
                sender: m.sender.clone(),
                target: m.target.clone(),
                type_name: "test.Msg".into(),
            });
            let owned = postcard::to_allocvec(&owned).unwrap();
            assert_eq!(&body[..owned.len()], &owned[..]);
        }
        let widest = encode_data(u64::MAX, &m, 1 << 20).unwrap();
        assert_eq!(widest.len() - HEADER_LEN, frame_body_bound(&m));
    }

    #[test]
    fn oversized_data_is_refused() {
        let m = message(&[0; 100]);
        let bound = frame_body_bound(&m);
        assert!(encode_data(1, &m, bound).is_ok());
        assert_eq!(
            encode_data(1, &m, bound - 1).unwrap_err(),
            FrameError::TooLarge {
                len: bound as u64,
                max: bound - 1
            }
        );
    }

    #[test]
    fn control_round_trip() {
        for control in [
            Control::Ack { seq: 42 },
            Control::Goodbye {
                reason: GoodbyeReason::Idle,
            },
            Control::Error {
                reason: "bad".into(),
            },
        ] {
            let body = sealed_content(&encode_control(&control), 0);
            let decoded = decode_frame(&body).unwrap();
            let back = match decoded {
                Frame::Ack { seq } => Control::Ack { seq },
                Frame::Goodbye { reason } => Control::Goodbye { reason },
                Frame::Error { reason } => Control::Error { reason },
                Frame::Data { .. } => unreachable!(),
            };
            assert_eq!(back, control);
        }
        let long = Control::Error {
            reason: "x".repeat(100_000),
        };
        assert!(encode_control(&long).len() <= MAX_HANDSHAKE_FRAME + HEADER_LEN);
    }

    #[test]
    fn a_sealed_frame_opens_only_as_itself() {
        let (a, b) = session_keys();
        let frame = encode_control(&Control::Ack { seq: 9 });
        let mut wire = Vec::new();
        seal(&mut wire, &[&frame], &a.send, 4);
        let body = body_of(&wire);
        assert!(open(&body, &b.receive, 4).is_ok());
        assert_eq!(
            open(&body, &b.receive, 5),
            Err(WireError::BadTag),
            "replayed"
        );
        assert_eq!(
            open(&body, &a.receive, 4),
            Err(WireError::BadTag),
            "reflected"
        );
        let mut altered = body.clone();
        altered[0] ^= 1;
        assert_eq!(
            open(&altered, &b.receive, 4),
            Err(WireError::BadTag),
            "altered"
        );
        assert_eq!(
            open(&body[1..], &b.receive, 4),
            Err(WireError::BadTag),
            "cut"
        );
        assert_eq!(
            open(&[0; 3], &b.receive, 0),
            Err(WireError::BadTag),
            "short"
        );
    }

    #[test]
    fn handshake_round_trip() {
        let info = PeerInfo {
            incarnation: SystemId::from_raw(77),
            session: 3,
            listen: Some("127.0.0.1:1900".parse().unwrap()),
            max_frame: 1 << 20,
        };
        let nonce = thespian_auth::Nonce([3; 32]);
        for kind in [
            HandshakeKind::Hello {
                auth: thespian_auth::Hello {
                    incarnation: 77,
                    nonce,
                    suite: thespian_auth::Suite::Authenticated,
                },
                info: info.clone(),
            },
            HandshakeKind::Welcome {
                auth: thespian_auth::Welcome {
                    incarnation: 77,
                    nonce,
                    suite: thespian_auth::Suite::Authenticated,
                    proof: [4; 32],
                },
                info: info.clone(),
            },
            HandshakeKind::Confirm(thespian_auth::Confirm { proof: [5; 32] }),
            HandshakeKind::Reject {
                kind: RejectKind::Overloaded,
                reason: "no".into(),
            },
            HandshakeKind::Duplicate,
        ] {
            let hs = Handshake::new(kind);
            let body = body_of(&encode_handshake(&hs));
            assert_eq!(decode_handshake(&body, PROTOCOL_VERSION).unwrap(), hs);
        }
    }

    #[test]
    fn peer_text_is_escaped_and_truncated() {
        assert_eq!(peer_text("busy"), "busy");
        let forged = peer_text("x\nWARN forged line\u{1b}[31m");
        assert!(
            !forged.contains('\n') && !forged.contains('\u{1b}'),
            "{forged}"
        );
        let long = peer_text(&"y".repeat(4096));
        assert!(long.chars().count() <= MAX_PEER_TEXT + 1, "{}", long.len());
        assert!(long.ends_with('…'));
    }

    #[test]
    fn version_and_magic_are_checked_first() {
        // A future version whose body we cannot parse still reports the version.
        #[derive(Serialize)]
        struct Future {
            magic: [u8; 4],
            version: u16,
            whatever: Vec<u32>,
        }
        let body = postcard::to_allocvec(&Future {
            magic: MAGIC,
            version: 9,
            whatever: vec![1, 2, 3],
        })
        .unwrap();
        assert_eq!(
            decode_handshake(&body, PROTOCOL_VERSION).unwrap_err(),
            WireError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: 9
            }
        );
        assert_eq!(
            decode_handshake(b"GET / HTTP/1.1", PROTOCOL_VERSION).unwrap_err(),
            WireError::BadMagic { found: *b"GET " }
        );
        assert!(matches!(
            decode_handshake(b"TH", PROTOCOL_VERSION).unwrap_err(),
            WireError::Malformed(_)
        ));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut body = sealed_content(&encode_control(&Control::Ack { seq: 1 }), 0);
        body.push(0);
        assert_eq!(
            decode_frame(&body).unwrap_err(),
            WireError::TrailingBytes(1)
        );
    }

    /// Decodes records from `wire` (fed in pieces cut at `cuts`) as a link does: the record
    /// prefix bounded by [`record_limit`], the tag checked, then the frames split. Returns the
    /// frame bodies of each record, or the first error.
    fn read_records(
        wire: &[u8],
        cuts: &[usize],
        key: &FrameKey,
        max_frame: usize,
    ) -> Result<Vec<Vec<Vec<u8>>>, String> {
        let mut decoder = FrameDecoder::new(record_limit(max_frame));
        let mut records = Vec::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let mut start = 0;
        for end in points {
            let mut input = &wire[start..end];
            while let Some(body) = decoder
                .decode_borrowed(&mut input)
                .map_err(|e| e.to_string())?
            {
                let content = open(&body, key, records.len() as u64).map_err(|e| e.to_string())?;
                let bodies = frames(content, max_frame).map_err(|e| e.to_string())?;
                records.push(bodies.map(<[u8]>::to_vec).collect());
            }
            start = end;
        }
        Ok(records)
    }

    #[test]
    fn a_record_longer_than_a_frame_and_a_batch_is_refused_unread() {
        let max_frame = 1000;
        let mut decoder = FrameDecoder::new(record_limit(max_frame));
        let mut input = &((record_limit(max_frame) + 1) as u32).to_be_bytes()[..];
        assert!(decoder.decode(&mut input).is_err());
        assert_eq!(decoder.allocated(), 0);
        let mut decoder = FrameDecoder::new(record_limit(max_frame));
        let mut input = &(record_limit(max_frame) as u32).to_be_bytes()[..];
        assert_eq!(decoder.decode(&mut input).unwrap(), None);
        assert_eq!(record_limit(usize::MAX), frame::ABSOLUTE_MAX_FRAME);
    }

    #[test]
    fn a_malformed_record_yields_no_frame() {
        let ok = encode_control(&Control::Ack { seq: 1 });
        let mut content = ok.clone();
        content.extend_from_slice(&[0, 0]);
        assert!(frames(&content, 100).is_err(), "a cut prefix");
        let mut content = ok.clone();
        content.extend_from_slice(&[0, 0, 0, 9, 1]);
        assert!(frames(&content, 100).is_err(), "an overrun");
        assert!(frames(&ok, 1).is_err(), "a frame over the maximum");
        assert_eq!(frames(&[], 1).unwrap().count(), 0);
    }

    proptest! {
        /// Records of arbitrary frames, cut anywhere, come out as they went in, in order.
        #[test]
        fn a_valid_record_round_trips(
            records in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
                1..5,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let (send, receive) = session_keys();
            let mut wire = Vec::new();
            for (counter, bodies) in records.iter().enumerate() {
                let start = begin_record(&mut wire);
                for body in bodies {
                    let mut frame = Vec::new();
                    frame::encode_frame(&mut frame, body, 300).unwrap();
                    push_frame(&mut wire, &[&frame]);
                }
                seal_record(&mut wire, start, &send.send, counter as u64);
            }
            prop_assert_eq!(read_records(&wire, &cuts, &receive.receive, 300), Ok(records));
        }

        /// A record gathered with its large payloads left where they lie is, byte for byte and
        /// tag for tag, the record copied into one buffer, however the socket takes it.
        #[test]
        fn a_gathered_record_is_the_copied_record(
            records in proptest::collection::vec(
                (proptest::option::of(0u64..1000),
                 proptest::collection::vec(0usize..10_000, 0..5)),
                1..4,
            ),
            before in proptest::collection::vec(any::<u8>(), 0..20),
            take in 1usize..20_000,
        ) {
            let (send, _) = session_keys();
            let mut copied = before.clone();
            let mut gathered = Transmit::from(before);
            for (counter, (ack, sizes)) in records.iter().enumerate() {
                let start = begin_record(&mut copied);
                let start_in = begin_record_in(&mut gathered);
                if let Some(seq) = ack {
                    let ack = encode_control(&Control::Ack { seq: *seq });
                    push_frame(&mut copied, &[&ack]);
                    gathered.extend_from_slice(&ack);
                }
                for (i, size) in sizes.iter().enumerate() {
                    let payload: Arc<[u8]> = (0..*size).map(|b| (b + i) as u8).collect();
                    let message = WireMessage { payload, ..message(b"") };
                    let head = encode_data_head(counter as u64, &message, usize::MAX).unwrap();
                    push_frame(&mut copied, &[&head, &message.payload]);
                    gathered.extend_from_slice(&head);
                    gathered.push_payload(&message.payload);
                }
                prop_assert_eq!(
                    record_content_len_in(&gathered, start_in),
                    record_content_len(&copied, start)
                );
                seal_record(&mut copied, start, &send.send, counter as u64);
                seal_record_in(&mut gathered, start_in, &send.send, counter as u64);
            }
            prop_assert_eq!(gathered.to_vec(), copied.clone());
            let mut written = Vec::new();
            while !gathered.is_empty() {
                let mut slices = [std::io::IoSlice::new(&[]); 3];
                let filled = gathered.slices(&mut slices);
                let offered: Vec<u8> =
                    slices[..filled].iter().flat_map(|s| s.iter().copied()).collect();
                let n = take.min(offered.len());
                written.extend_from_slice(&offered[..n]);
                gathered.advance(n);
            }
            prop_assert_eq!(&written, &copied);
        }

        /// Arbitrary bytes never panic the record decoder, nor get past the tag; and a changed
        /// byte in a valid record fails it whole.
        #[test]
        fn arbitrary_bytes_are_never_a_record(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
            max_frame in 0usize..400,
            flip in any::<usize>(),
        ) {
            let (send, receive) = session_keys();
            if let Ok(records) = read_records(&bytes, &cuts, &receive.receive, max_frame) {
                prop_assert!(records.is_empty(), "no record without the key");
            }
            let mut wire = Vec::new();
            seal(&mut wire, &[&encode_control(&Control::Ack { seq: 7 })], &send.send, 0);
            let at = HEADER_LEN + flip % (wire.len() - HEADER_LEN);
            wire[at] ^= 1 << (flip % 8);
            prop_assert!(read_records(&wire, &cuts, &receive.receive, 300).is_err());
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frame(&bytes);
            let _ = decode_handshake(&bytes, PROTOCOL_VERSION);
            let (_, keys) = session_keys();
            prop_assert!(open(&bytes, &keys.receive, 0).is_err());
        }
    }
}
