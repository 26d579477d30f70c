//! The typed layer over Thespian's untyped messages: requests that declare their reply type,
//! replies read as a type with an error that says what came instead, and per-type handlers.
//!
//! This module exists because Thespian's `ask` answers "the first message to arrive", of any
//! type, and every caller then checks what it got. Here a message type may declare the type it
//! is answered with ([`Request`], usually through `#[derive(Message)]`'s
//! `#[message(reply = T)]`), and a reply envelope is read as a type with
//! [`Envelope::reply_as`], which tells a timeout, a returned [`PoisonMessage`] and a reply of
//! another type apart ([`RequestError`]). Everything compiles down to the untyped calls: the
//! `ActorSystem`'s `request` is its `ask` followed by `reply_as`.
//!
//! Inside actors replies arrive as ordinary messages, so the typed pieces there are
//! [`Context::reply_to`], [`Handler`] (one impl per message type, chained by
//! [`Dispatch::handle`](crate::Dispatch::handle)) and
//! [`Dispatch::on_request`](crate::Dispatch::on_request), whose handler returns the reply.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::actor::ActorError;
use crate::address::ActorAddress;
use crate::context::Context;
use crate::dispatch::HandlerOutput;
use crate::error::{Result, ThespianError};
use crate::message::{Envelope, IntoMessage, Message, MessageError};
use crate::system_messages::PoisonMessage;

/// A message that is answered with a message of type [`Request::Reply`].
///
/// Usually declared with the derive: `#[derive(Message)] #[message(reply = Greeting)]`; for a
/// type declared with [`message!`](crate::message!), implement it by hand:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use thespian_core::Request;
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Add(u32, u32);
/// thespian_core::message!(Add = "example.Add");
///
/// impl Request for Add {
///     type Reply = u32;
/// }
/// ```
pub trait Request: Message {
    /// What the actor answers with.
    type Reply: Message;
}

/// Why a typed request or listen gave no value of the asked type.
///
/// Each case is its own variant so a caller can react to it: wait again after a
/// [`Timeout`](RequestError::Timeout), read the failure from a
/// [`Poisoned`](RequestError::Poisoned), look at what came instead in a
/// [`WrongType`](RequestError::WrongType). Converts into [`ThespianError`] (for `?` in a
/// function returning `thespian::Result`) and into `ActorError`.
///
/// ```
/// use std::time::Duration;
/// use thespian_core::{ActorAddress, Envelope, Payload, PoisonMessage, RequestError, SystemId};
///
/// let from = ActorAddress::new(SystemId::from_raw(1), 7);
/// let poison = PoisonMessage::new(Payload::new("boom"), "it failed twice");
/// let reply = Envelope::new(from.clone(), Payload::new(poison));
/// match reply.reply_as::<u32>() {
///     Err(RequestError::Poisoned { from: who, poison }) => {
///         assert_eq!(who, from);
///         assert_eq!(poison.details, "it failed twice");
///     }
///     other => panic!("expected poison, got {other:?}"),
/// }
/// let timeout = RequestError::Timeout { waited: Duration::from_secs(1) };
/// assert!(timeout.to_string().contains("no reply"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum RequestError {
    /// Nothing arrived within the time asked for.
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// The request made its target fail twice: it came back as a `PoisonMessage`.
    Poisoned {
        /// Who returned the poison (the actor that failed).
        from: ActorAddress,
        /// The returned request and the failure's details.
        poison: Box<PoisonMessage>,
    },
    /// A message of another type arrived first; it is handed back untouched.
    WrongType {
        /// The wire name of the type asked for.
        expected: Cow<'static, str>,
        /// What arrived instead.
        envelope: Box<Envelope>,
    },
    /// The system refused the call or is gone (shut down, a full queue, an unknown address,
    /// a message that cannot be encoded, ...).
    System(ThespianError),
}

impl RequestError {
    /// True for [`RequestError::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use thespian_core::{RequestError, ThespianError};
    ///
    /// assert!(RequestError::Timeout { waited: Duration::ZERO }.is_timeout());
    /// assert!(!RequestError::System(ThespianError::SystemShutDown).is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, RequestError::Timeout { .. })
    }
}

/// Describes an envelope briefly: its type, sender and at most 200 bytes of its value (a
/// payload may be megabytes).
fn describe(envelope: &Envelope) -> String {
    let mut text = format!("{:?}", envelope.payload());
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    format!(
        "{} from {}: {text}",
        envelope.type_name(),
        envelope.sender()
    )
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Timeout { waited } => write!(f, "no reply within {waited:?}"),
            RequestError::Poisoned { from, poison } => write!(
                f,
                "{from} failed on the {} and returned it as a PoisonMessage: {}",
                poison.poison_message.type_name(),
                poison.details
            ),
            RequestError::WrongType { expected, envelope } => {
                write!(f, "expected a {expected}, got a {}", describe(envelope))
            }
            RequestError::System(e) => e.fmt(f),
        }
    }
}

impl fmt::Debug for RequestError {
    /// As `Display`: a wrong-type reply is described briefly, never printed whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestError({self})")
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequestError::System(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ThespianError> for RequestError {
    fn from(e: ThespianError) -> RequestError {
        RequestError::System(e)
    }
}

impl From<RequestError> for ThespianError {
    /// A timeout becomes `RequestTimeout`, a poisoned request `SystemFailure`, a reply of
    /// another type `Message(WrongType)`; a system error stays itself.
    fn from(e: RequestError) -> ThespianError {
        match e {
            RequestError::Timeout { .. } => ThespianError::RequestTimeout(e.to_string()),
            RequestError::Poisoned { .. } => ThespianError::SystemFailure(e.to_string()),
            RequestError::WrongType { expected, envelope } => {
                ThespianError::Message(MessageError::WrongType {
                    expected,
                    actual: Cow::Owned(envelope.type_name().into_owned()),
                })
            }
            RequestError::System(e) => e,
        }
    }
}

impl Envelope {
    /// Reads a reply as a `T`: the value when it is one; [`RequestError::Poisoned`] when a
    /// `PoisonMessage` came back instead (unless `T` is `PoisonMessage`);
    /// [`RequestError::WrongType`], carrying this envelope, for anything else.
    ///
    /// ```
    /// use thespian_core::{ActorAddress, Envelope, Payload, RequestError, SystemId};
    ///
    /// let from = ActorAddress::new(SystemId::from_raw(1), 7);
    /// let reply = Envelope::new(from.clone(), Payload::new("hello"));
    /// assert_eq!(reply.clone().reply_as::<String>().unwrap(), "hello");
    /// match reply.reply_as::<u32>() {
    ///     Err(RequestError::WrongType { expected, envelope }) => {
    ///         assert_eq!(expected, "u32");
    ///         assert_eq!(envelope.get::<String>().unwrap(), "hello");
    ///     }
    ///     other => panic!("expected a wrong type, got {other:?}"),
    /// }
    /// ```
    pub fn reply_as<T: Message>(self) -> std::result::Result<T, RequestError> {
        let envelope = match self.take::<T>() {
            Ok(value) => return Ok(value),
            Err(e) => e.into_inner(),
        };
        if envelope.is::<PoisonMessage>() {
            let (from, payload) = envelope.into_parts();
            match payload.take::<PoisonMessage>() {
                Ok(poison) => Err(RequestError::Poisoned {
                    from,
                    poison: Box::new(poison),
                }),
                Err(e) => Err(RequestError::WrongType {
                    expected: T::wire_name(),
                    envelope: Box::new(Envelope::new(from, e.into_inner())),
                }),
            }
        } else {
            Err(RequestError::WrongType {
                expected: T::wire_name(),
                envelope: Box::new(envelope),
            })
        }
    }
}

impl Context<'_> {
    /// Answers `envelope`: sends `reply` to its sender.
    ///
    /// ```
    /// use thespian_core::{Actor, ActorResult, Context, Envelope};
    ///
    /// struct Counter(u32);
    ///
    /// impl Actor for Counter {
    ///     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
    ///         self.0 += 1;
    ///         ctx.reply_to(env, self.0)?;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub fn reply_to(&mut self, envelope: &Envelope, reply: impl IntoMessage) -> Result<()> {
        let to = envelope.sender().clone();
        self.send(&to, reply)
    }
}

/// What a [`Dispatch::on_request`](crate::Dispatch::on_request) handler may return: the reply
/// itself, or a `Result` of it whose error fails the request (the actor's failure rule:
/// retried once, then returned to the sender as a `PoisonMessage`).
///
/// ```
/// use thespian_core::{ActorError, IntoReply};
///
/// assert_eq!(7u32.into_reply().unwrap(), 7);
/// let failed: Result<u32, ActorError> = Err("no".into());
/// assert_eq!(failed.into_reply().unwrap_err().to_string(), "no");
/// ```
pub trait IntoReply<R: Message> {
    /// The reply, or the failure.
    fn into_reply(self) -> std::result::Result<R, ActorError>;
}

impl<R: Message> IntoReply<R> for R {
    fn into_reply(self) -> std::result::Result<R, ActorError> {
        Ok(self)
    }
}

impl<R: Message> IntoReply<R> for std::result::Result<R, ActorError> {
    fn into_reply(self) -> std::result::Result<R, ActorError> {
        self
    }
}

/// Handles messages of type `M`: one impl per message type an actor understands, chained in
/// `receive` by [`Dispatch::handle`](crate::Dispatch::handle), most specific first. The output
/// is what a dispatch handler may return: `()`, a [`Flow`](crate::Flow) (`Flow::Super` passes
/// the message on), or a `Result` of either.
///
/// ```
/// use thespian_core::{dispatch, Actor, ActorResult, Context, Envelope, Handler, Result};
///
/// #[derive(Default)]
/// struct Greeter {
///     greeted: u32,
/// }
///
/// impl Handler<String> for Greeter {
///     type Output = Result<()>;
///     fn handle(&mut self, name: &String, env: &Envelope, ctx: &mut Context<'_>) -> Result<()> {
///         self.greeted += 1;
///         ctx.reply_to(env, format!("Hello, {name}!"))
///     }
/// }
///
/// impl Handler<u32> for Greeter {
///     type Output = ();
///     fn handle(&mut self, _: &u32, _: &Envelope, _: &mut Context<'_>) {}
/// }
///
/// impl Actor for Greeter {
///     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
///         dispatch(self, env, ctx)
///             .handle::<String>()
///             .handle::<u32>()
///             .otherwise(|_, env, _| log::info!("ignoring {}", env.type_name()))
///     }
/// }
/// ```
pub trait Handler<M: Message> {
    /// What the handler returns.
    type Output: HandlerOutput;
    /// Handles one `M`, sent in `envelope`.
    fn handle(&mut self, message: &M, envelope: &Envelope, ctx: &mut Context<'_>) -> Self::Output;
}

/// An address is a message by itself (wire name `ActorAddress`, as std types have their bare
/// names), so sending one needs no wrapper type.
impl Message for ActorAddress {
    fn wire_name() -> Cow<'static, str> {
        Cow::Borrowed("ActorAddress")
    }
}
