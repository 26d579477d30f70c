//! Messages, payloads and envelopes.
//!
//! This module exists because a message must travel two ways with one API: in-process as the
//! value itself (no serialisation, no copy) and across processes as postcard bytes plus a stable
//! wire name, decoded lazily when the receiver asks for a type. [`Payload`] hides which of the two
//! a value is; [`Envelope`] adds the sender. A small in-process value (at most [`INLINE_SIZE`]
//! bytes, aligned to at most [`INLINE_ALIGN`]) is stored in the payload itself, with no heap
//! allocation (see `inline.rs`).

mod encode;
mod inline;

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::address::ActorAddress;

pub use inline::{INLINE_ALIGN, INLINE_SIZE};

/// Prefix of the wire names reserved for thespian's own system messages.
pub const SYSTEM_MESSAGE_PREFIX: &str = "thespian.";

/// A value that actors can exchange.
///
/// A message has a stable wire name (the same in every process of a convention) and serde
/// support, so it can cross processes as postcard bytes. Implement it with
/// [`message!`](crate::message!) for your own types:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// struct Greet(String);
/// thespian_core::message!(Greet = "example.Greet");
/// ```
///
/// `Send + Sync` let envelopes move between threads and errors carrying them convert into
/// [`ActorError`](crate::ActorError). `Clone` is required because a message may be forwarded, wrapped in a `PoisonMessage` or
/// `DeadEnvelope`, or sent to several actors; `Debug` because undeliverable messages are logged.
pub trait Message: Any + Send + Sync + Clone + fmt::Debug + Serialize + DeserializeOwned {
    /// The stable name this type travels under.
    fn wire_name() -> Cow<'static, str>;
}

/// Implements [`Message`] for a type, with an explicit wire name or the type's own name.
///
/// `message!(Greet)` uses `"Greet"`; `message!(Greet = "app.Greet")` uses `"app.Greet"`.
/// Several types may be listed: `message!(A, B = "x.B")`.
#[macro_export]
macro_rules! message {
    ($($ty:ident $(= $name:literal)?),+ $(,)?) => {
        $( $crate::message!(@one $ty $(= $name)?); )+
    };
    (@one $ty:ident = $name:literal) => {
        impl $crate::Message for $ty {
            fn wire_name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed($name)
            }
        }
    };
    (@one $ty:ident) => {
        impl $crate::Message for $ty {
            fn wire_name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(::std::stringify!($ty))
            }
        }
    };
}

macro_rules! std_messages {
    ($($ty:ty => $name:literal),+ $(,)?) => {
        $( impl Message for $ty {
            fn wire_name() -> Cow<'static, str> { Cow::Borrowed($name) }
        } )+
    };
}

std_messages!(
    () => "()", bool => "bool", char => "char", String => "String",
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64", u128 => "u128", usize => "usize",
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", i128 => "i128", isize => "isize",
    f32 => "f32", f64 => "f64",
);

impl<T: Message> Message for Vec<T> {
    fn wire_name() -> Cow<'static, str> {
        Cow::Owned(format!("Vec<{}>", T::wire_name()))
    }
}

impl<T: Message> Message for Option<T> {
    fn wire_name() -> Cow<'static, str> {
        Cow::Owned(format!("Option<{}>", T::wire_name()))
    }
}

macro_rules! tuple_messages {
    ($(($($t:ident),+)),+) => {
        $( impl<$($t: Message),+> Message for ($($t,)+) {
            fn wire_name() -> Cow<'static, str> {
                let parts: Vec<Cow<'static, str>> = vec![$($t::wire_name()),+];
                Cow::Owned(format!("({})", parts.join(",")))
            }
        } )+
    };
}
tuple_messages!((A), (A, B), (A, B, C), (A, B, C, D));

/// Conversion into a message: every [`Message`] converts to itself, and `&'static str` converts
/// to `String` so `ctx.send(&to, "hello")` works.
pub trait IntoMessage {
    /// The message type this becomes.
    type Message: Message;
    /// Performs the conversion.
    fn into_message(self) -> Self::Message;
}

impl<M: Message> IntoMessage for M {
    type Message = M;
    fn into_message(self) -> M {
        self
    }
}

impl IntoMessage for &'static str {
    type Message = String;
    fn into_message(self) -> String {
        self.to_owned()
    }
}

/// Why a message could not be read, written or delivered as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// The payload holds another type than the one asked for. (The names are `Cow`s so that
    /// probing a payload for a type, `if let Ok(m) = env.get::<M>()`, allocates nothing on a
    /// mismatch when the wire names are static, as they usually are.)
    WrongType {
        /// Wire name of the type asked for.
        expected: Cow<'static, str>,
        /// Wire name of the type the payload holds.
        actual: Cow<'static, str>,
    },
    /// The bytes do not decode as the type asked for.
    Decode {
        /// Wire name of the type asked for.
        type_name: String,
        /// The decoder's explanation.
        reason: String,
    },
    /// The value could not be encoded.
    Encode {
        /// Wire name of the value's type.
        type_name: String,
        /// The encoder's explanation.
        reason: String,
    },
    /// The encoded message is larger than the transport allows.
    TooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::WrongType { expected, actual } => {
                write!(f, "message is a {actual}, not a {expected}")
            }
            MessageError::Decode { type_name, reason } => {
                write!(f, "cannot decode message as {type_name}: {reason}")
            }
            MessageError::Encode { type_name, reason } => {
                write!(f, "cannot encode message {type_name}: {reason}")
            }
            MessageError::TooLarge { size, limit } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the limit of {limit} bytes"
                )
            }
        }
    }
}

impl std::error::Error for MessageError {}

/// A failed `take`: the reason, and the value handed back untouched.
pub struct TakeError<T> {
    value: Box<T>,
    error: MessageError,
}

impl<T> TakeError<T> {
    /// Why the take failed.
    pub fn error(&self) -> &MessageError {
        &self.error
    }

    /// The payload or envelope, untouched.
    pub fn into_inner(self) -> T {
        *self.value
    }
}

impl<T> fmt::Debug for TakeError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TakeError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for TakeError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<T> std::error::Error for TakeError<T> {}

/// Object-safe view of a [`Message`] value, so payloads can hold any message type.
trait ErasedMessage: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn wire_name(&self) -> Cow<'static, str>;
    fn encode(&self) -> Result<Arc<[u8]>, MessageError>;
    fn clone_payload(&self) -> Payload;
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<M: Message> ErasedMessage for M {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn wire_name(&self) -> Cow<'static, str> {
        M::wire_name()
    }
    fn encode(&self) -> Result<Arc<[u8]>, MessageError> {
        encode::to_arc(self).map_err(|e| MessageError::Encode {
            type_name: M::wire_name().into_owned(),
            reason: e.to_string(),
        })
    }
    fn clone_payload(&self) -> Payload {
        Payload::from_message(self.clone())
    }
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A message received from another process: its wire name and postcard bytes, decoded on demand.
struct WireBytes {
    name: Arc<str>,
    bytes: Arc<[u8]>,
    decoded: OnceLock<Box<dyn ErasedMessage>>,
}

enum Repr {
    /// An in-process value: in place when small, else boxed.
    Local(inline::Local),
    Wire(WireBytes),
}

/// A message of any type: the value itself in-process, or a wire name and bytes from another
/// process. Typed access is through [`Payload::get`], [`Payload::is`] and [`Payload::take`].
///
/// A value of at most [`INLINE_SIZE`] bytes and an alignment of at most [`INLINE_ALIGN`] is
/// stored in the payload itself; a larger one is boxed. Which of the two is invisible through
/// the API.
pub struct Payload(Repr);

impl Payload {
    /// Wraps a message value.
    pub fn new<M: IntoMessage>(message: M) -> Payload {
        Payload::from_message(message.into_message())
    }

    /// Stores a message in place when it fits, boxed otherwise.
    fn from_message<M: Message>(message: M) -> Payload {
        Payload(Repr::Local(inline::Local::new(message)))
    }

    /// A payload that arrived from the wire: decoded lazily by [`Payload::get`].
    pub fn from_wire(name: impl Into<Arc<str>>, bytes: impl Into<Arc<[u8]>>) -> Payload {
        Payload(Repr::Wire(WireBytes {
            name: name.into(),
            bytes: bytes.into(),
            decoded: OnceLock::new(),
        }))
    }

    /// The wire name of the message's type.
    pub fn type_name(&self) -> Cow<'_, str> {
        match &self.0 {
            Repr::Local(m) => m.get().wire_name(),
            Repr::Wire(w) => Cow::Borrowed(&w.name),
        }
    }

    /// True for thespian's own system messages (their wire names start with `thespian.`).
    pub fn is_system(&self) -> bool {
        self.type_name().starts_with(SYSTEM_MESSAGE_PREFIX)
    }

    /// True when the payload holds an `M` (decoding a wire payload if needed).
    pub fn is<M: Message>(&self) -> bool {
        self.try_get::<M>().is_some()
    }

    /// True when the payload's wire name is `M`'s, without decoding anything.
    pub fn has_type<M: Message>(&self) -> bool {
        match &self.0 {
            Repr::Local(m) => m.is::<M>(),
            Repr::Wire(w) => *w.name == *M::wire_name(),
        }
    }

    /// Borrows the message as an `M` if it is one, `None` otherwise. A mismatch costs one type
    /// comparison and builds no error value, so this is the probe for hot paths.
    pub fn try_get<M: Message>(&self) -> Option<&M> {
        if self.has_type::<M>() {
            self.get::<M>().ok()
        } else {
            None
        }
    }

    /// Borrows the message as an `M`. A payload from the wire is decoded on the first call.
    pub fn get<M: Message>(&self) -> Result<&M, MessageError> {
        match &self.0 {
            Repr::Local(m) => m
                .downcast_ref::<M>()
                .ok_or_else(|| wrong_type::<M>(m.get())),
            Repr::Wire(w) => {
                if *w.name != *M::wire_name() {
                    return Err(MessageError::WrongType {
                        expected: M::wire_name(),
                        actual: Cow::Owned(w.name.to_string()),
                    });
                }
                if w.decoded.get().is_none() {
                    let value: M = decode::<M>(&w.bytes)?;
                    // `Payload` is `Sync`: another thread may have decoded and set it first;
                    // then this value is dropped and both read that one, which is equal.
                    let _ = w.decoded.set(Box::new(value));
                }
                let decoded = w.decoded.get().expect("decoded value was just stored");
                decoded
                    .as_any()
                    .downcast_ref::<M>()
                    .ok_or_else(|| wrong_type::<M>(&**decoded))
            }
        }
    }

    /// Takes the message out as an `M`; on a mismatch the payload is handed back with the reason.
    pub fn take<M: Message>(self) -> Result<M, TakeError<Payload>> {
        if let Err(error) = self.get::<M>() {
            return Err(TakeError {
                value: Box::new(self),
                error,
            });
        }
        let boxed = match self.0 {
            Repr::Local(m) => match m.take::<M>() {
                Ok(value) => return Ok(value),
                Err(_) => unreachable!("checked by get above"),
            },
            Repr::Wire(w) => w.decoded.into_inner().expect("checked by get above"),
        };
        Ok(*boxed
            .into_any()
            .downcast::<M>()
            .expect("checked by get above"))
    }

    /// The postcard encoding of the message (the bytes themselves for a wire payload).
    pub fn encode(&self) -> Result<Arc<[u8]>, MessageError> {
        match &self.0 {
            Repr::Local(m) => m.get().encode(),
            Repr::Wire(w) => Ok(w.bytes.clone()),
        }
    }

    /// Converts to the wire form (name and bytes), for crossing a process boundary.
    pub fn to_wire(&self) -> Result<(Arc<str>, Arc<[u8]>), MessageError> {
        match &self.0 {
            Repr::Local(m) => {
                let m = m.get();
                Ok((Arc::from(&*m.wire_name()), m.encode()?))
            }
            Repr::Wire(w) => Ok((w.name.clone(), w.bytes.clone())),
        }
    }
}

fn wrong_type<M: Message>(actual: &dyn ErasedMessage) -> MessageError {
    MessageError::WrongType {
        expected: M::wire_name(),
        actual: actual.wire_name(),
    }
}

fn decode<M: Message>(bytes: &[u8]) -> Result<M, MessageError> {
    postcard::from_bytes(bytes).map_err(|e| MessageError::Decode {
        type_name: M::wire_name().into_owned(),
        reason: e.to_string(),
    })
}

impl Clone for Payload {
    fn clone(&self) -> Payload {
        match &self.0 {
            Repr::Local(m) => m.get().clone_payload(),
            Repr::Wire(w) => Payload::from_wire(w.name.clone(), w.bytes.clone()),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Local(m) => m.get().debug(f),
            Repr::Wire(w) => match w.decoded.get() {
                Some(m) => m.debug(f),
                None => write!(f, "<{} bytes of {}>", w.bytes.len(), w.name),
            },
        }
    }
}

/// Two payloads are equal when they hold the same type with the same encoding.
impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        if self.type_name() != other.type_name() {
            return false;
        }
        match (self.encode(), other.encode()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (name, bytes) = self.to_wire().map_err(serde::ser::Error::custom)?;
        (&*name, serde_bytes_ref(&bytes)).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        let (name, bytes): (String, ByteBuf) = Deserialize::deserialize(deserializer)?;
        Ok(Payload::from_wire(name, bytes.0))
    }
}

/// Serialises a byte slice as serde bytes (compact in postcard) without an extra dependency.
fn serde_bytes_ref(bytes: &[u8]) -> BytesRef<'_> {
    BytesRef(bytes)
}

struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ByteBuf, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ByteBuf, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ByteBuf(out))
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

/// A delivered message and who sent it.
#[derive(Clone, Debug)]
pub struct Envelope {
    sender: ActorAddress,
    payload: Payload,
}

impl Envelope {
    /// Builds an envelope.
    pub fn new(sender: ActorAddress, payload: Payload) -> Envelope {
        Envelope { sender, payload }
    }

    /// The address that sent the message (an actor, an external endpoint, or the system).
    pub fn sender(&self) -> &ActorAddress {
        &self.sender
    }

    /// The message, type-erased.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Takes the payload out.
    pub fn into_payload(self) -> Payload {
        self.payload
    }

    /// Splits into sender and payload.
    pub fn into_parts(self) -> (ActorAddress, Payload) {
        (self.sender, self.payload)
    }

    /// Wire name of the message's type.
    pub fn type_name(&self) -> Cow<'_, str> {
        self.payload.type_name()
    }

    /// True when the message is an `M`.
    pub fn is<M: Message>(&self) -> bool {
        self.payload.is::<M>()
    }

    /// Borrows the message as an `M` if it is one, `None` otherwise (see [`Payload::try_get`]).
    pub fn try_get<M: Message>(&self) -> Option<&M> {
        self.payload.try_get::<M>()
    }

    /// Borrows the message as an `M` (decoding it lazily if it came from another process).
    pub fn get<M: Message>(&self) -> Result<&M, MessageError> {
        self.payload.get::<M>()
    }

    /// Takes the message as an `M`; on a mismatch the envelope is handed back with the reason.
    pub fn take<M: Message>(self) -> Result<M, TakeError<Envelope>> {
        let sender = self.sender;
        self.payload.take::<M>().map_err(|e| TakeError {
            value: Box::new(Envelope {
                sender,
                payload: *e.value,
            }),
            error: e.error,
        })
    }
}
