//! Typed requests from outside the actors: [`ActorSystem::request`], [`ActorSystem::ask_as`]
//! and [`ActorSystem::listen_as`].
//!
//! This module exists so that code outside the actors gets a value of the type it expects, or
//! a [`RequestError`] saying what happened instead, without an `expect`/`get` chain. Each call
//! is the untyped one ([`ActorSystem::ask`], [`ActorSystem::listen`]) followed by
//! [`Envelope::reply_as`](thespian_core::Envelope::reply_as): Thespian's semantics are
//! unchanged (the first message to the endpoint is the reply, whoever sent it).

use std::time::Duration;

use thespian_core::{ActorAddress, IntoMessage, Message, Request, RequestError};

use crate::ActorSystem;

impl ActorSystem {
    /// Sends `request` to `to` and waits up to `timeout` for its reply, of the type the request
    /// declares ([`Request::Reply`], `#[message(reply = T)]`).
    ///
    /// Errors: [`RequestError::Timeout`] when nothing arrives in time,
    /// [`RequestError::Poisoned`] when the request made its target fail twice,
    /// [`RequestError::WrongType`] (with the envelope) when another message arrives first,
    /// [`RequestError::System`] when the system refused the send or is gone.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serde::{Deserialize, Serialize};
    /// use thespian::prelude::*;
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize, Message)]
    /// #[message(reply = Greeting)]
    /// struct Greet(String);
    ///
    /// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Message)]
    /// struct Greeting(String);
    ///
    /// #[derive(Default)]
    /// struct Hello;
    ///
    /// impl Actor for Hello {
    ///     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
    ///         dispatch(self, env, ctx)
    ///             .on_request(|_, Greet(name): &Greet, _, _| Greeting(format!("Hello, {name}!")))
    ///             .finish()
    ///     }
    /// }
    ///
    /// # fn main() -> thespian::Result<()> {
    /// let sys = ActorSystem::builder().transient_unique(true).start()?;
    /// let hello = sys.create_actor::<Hello>()?;
    /// let reply = sys.request(&hello, Greet("world".into()), Duration::from_secs(1))?;
    /// assert_eq!(reply, Greeting("Hello, world!".into()));
    /// sys.shutdown()
    /// # }
    /// ```
    pub fn request<M: Request>(
        &self,
        to: &ActorAddress,
        request: M,
        timeout: Duration,
    ) -> Result<M::Reply, RequestError> {
        self.ask_as::<M::Reply>(to, request, timeout)
    }

    /// Sends `message` to `to` and waits up to `timeout` for a reply read as a `T`, for a
    /// message of any type (with or without a declared reply). Errors as
    /// [`request`](ActorSystem::request).
    ///
    /// ```
    /// use std::time::Duration;
    /// use thespian::prelude::*;
    ///
    /// #[derive(Default)]
    /// struct Length;
    ///
    /// impl Actor for Length {
    ///     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
    ///         if let Some(text) = env.try_get::<String>() {
    ///             ctx.reply_to(env, text.len() as u64)?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # fn main() -> thespian::Result<()> {
    /// let sys = ActorSystem::builder().transient_unique(true).start()?;
    /// let length = sys.create_actor::<Length>()?;
    /// assert_eq!(sys.ask_as::<u64>(&length, "four", Duration::from_secs(1))?, 4);
    /// let wrong = sys.ask_as::<String>(&length, "four", Duration::from_secs(1));
    /// assert!(matches!(wrong, Err(RequestError::WrongType { .. })));
    /// sys.shutdown()
    /// # }
    /// ```
    pub fn ask_as<T: Message>(
        &self,
        to: &ActorAddress,
        message: impl IntoMessage,
        timeout: Duration,
    ) -> Result<T, RequestError> {
        match self.ask(to, message, timeout)? {
            Some(envelope) => envelope.reply_as::<T>(),
            None => Err(RequestError::Timeout { waited: timeout }),
        }
    }

    /// Waits up to `timeout` for the next message to this endpoint, read as a `T`. Errors as
    /// [`request`](ActorSystem::request).
    ///
    /// ```
    /// use std::time::Duration;
    /// use thespian::prelude::*;
    ///
    /// # fn main() -> thespian::Result<()> {
    /// let sys = ActorSystem::builder().transient_unique(true).start()?;
    /// let waited = sys.listen_as::<String>(Duration::from_millis(10));
    /// assert!(matches!(waited, Err(RequestError::Timeout { .. })));
    /// sys.shutdown()
    /// # }
    /// ```
    pub fn listen_as<T: Message>(&self, timeout: Duration) -> Result<T, RequestError> {
        match self.listen(timeout)? {
            Some(envelope) => envelope.reply_as::<T>(),
            None => Err(RequestError::Timeout { waited: timeout }),
        }
    }
}
