//! Type dispatch: Thespian's `ActorTypeDispatcher`.
//!
//! `receiveMsg_<Type>` methods become a chain of typed handlers. Rust types have no class
//! hierarchy, so "most specific first" means: handlers for the exact message type (in the order
//! written, a handler returning [`Flow::Super`] passes the message on), then the
//! any-system-message handler, then the any-message handler, then the "unrecognised" fallback.
//! The category handlers run after every exact handler whatever order they were written in.
//!
//! A closure handler names only its message's type (`|me, name: &String, env, ctx|`): the
//! actor, envelope and context types and the return type are inferred. An actor may instead
//! implement [`Handler<M>`](crate::Handler) once per message type and chain
//! [`Dispatch::handle`]; both kinds mix in one chain.
//!
//! ```
//! use thespian_core::{dispatch, Actor, ActorResult, Context, Envelope};
//! #[derive(Default)]
//! struct Greeter { greeted: u32 }
//! impl Actor for Greeter {
//!     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
//!         dispatch(self, env, ctx)
//!             .on(|me, name: &String, env, ctx| {
//!                 me.greeted += 1;
//!                 ctx.send(env.sender(), format!("Hello, {name}!"))
//!             })
//!             .on(|_, n: &u32, env, ctx| ctx.reply_to(env, n + 1))
//!             .otherwise(|_me, env, _ctx| {
//!                 log::info!("ignoring {}", env.type_name());
//!             })
//!     }
//! }
//! ```

use crate::actor::{ActorError, ActorResult};
use crate::context::Context;
use crate::message::{Envelope, Message};
use crate::typed::{Handler, IntoReply, Request};

/// Whether a handler consumed the message or passes it on (Thespian's `SUPER`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    /// The message is handled.
    Done,
    /// Continue with the next, less specific handler.
    Super,
}

/// What a handler may return: `()`, a [`Flow`], or a `Result` of either.
pub trait HandlerOutput {
    /// Normalises to a flow or an error.
    fn into_flow(self) -> Result<Flow, ActorError>;
}

impl HandlerOutput for () {
    fn into_flow(self) -> Result<Flow, ActorError> {
        Ok(Flow::Done)
    }
}

impl HandlerOutput for Flow {
    fn into_flow(self) -> Result<Flow, ActorError> {
        Ok(self)
    }
}

impl<E: Into<ActorError>> HandlerOutput for Result<(), E> {
    fn into_flow(self) -> Result<Flow, ActorError> {
        self.map(|()| Flow::Done).map_err(Into::into)
    }
}

impl<E: Into<ActorError>> HandlerOutput for Result<Flow, E> {
    fn into_flow(self) -> Result<Flow, ActorError> {
        self.map_err(Into::into)
    }
}

type Deferred<'x, A> = Box<
    dyn for<'r, 's> FnOnce(&'r mut A, &'r Envelope, &'r mut Context<'s>) -> Result<Flow, ActorError>
        + 'x,
>;

/// A dispatch in progress; see the [module docs](self).
#[must_use = "finish the dispatch with `otherwise` or `finish`"]
pub struct Dispatch<'e, 'c, 'x, A> {
    actor: &'e mut A,
    envelope: &'e Envelope,
    ctx: &'e mut Context<'c>,
    outcome: Option<ActorResult>,
    on_system: Vec<Deferred<'x, A>>,
    on_any: Vec<Deferred<'x, A>>,
}

/// Starts dispatching `envelope` to typed handlers of `actor`.
pub fn dispatch<'e, 'c, 'x, A>(
    actor: &'e mut A,
    envelope: &'e Envelope,
    ctx: &'e mut Context<'c>,
) -> Dispatch<'e, 'c, 'x, A> {
    Dispatch {
        actor,
        envelope,
        ctx,
        outcome: None,
        on_system: Vec::new(),
        on_any: Vec::new(),
    }
}

impl<'e, 'c, 'x, A> Dispatch<'e, 'c, 'x, A> {
    fn record(&mut self, flow: Result<Flow, ActorError>) {
        match flow {
            Ok(Flow::Done) => self.outcome = Some(Ok(())),
            Ok(Flow::Super) => {}
            Err(e) => self.outcome = Some(Err(e)),
        }
    }

    /// Handles messages of type `M`.
    pub fn on<M, R, F>(mut self, handler: F) -> Self
    where
        M: Message,
        R: HandlerOutput,
        F: FnOnce(&mut A, &M, &Envelope, &mut Context<'c>) -> R,
    {
        if self.outcome.is_none() {
            if let Some(message) = self.envelope.try_get::<M>() {
                let flow = handler(self.actor, message, self.envelope, self.ctx).into_flow();
                self.record(flow);
            }
        }
        self
    }

    /// Handles messages of type `M` with the actor's [`Handler<M>`] impl:
    /// `.handle::<M>()` is `.on(|a, m: &M, env, ctx| a.handle(m, env, ctx))`.
    ///
    /// ```
    /// use thespian_core::{dispatch, Actor, ActorResult, Context, Envelope, Handler};
    ///
    /// #[derive(Default)]
    /// struct Doubler;
    ///
    /// impl Handler<u64> for Doubler {
    ///     type Output = thespian_core::Result<()>;
    ///     fn handle(&mut self, n: &u64, env: &Envelope, ctx: &mut Context<'_>) -> Self::Output {
    ///         ctx.reply_to(env, n * 2)
    ///     }
    /// }
    ///
    /// impl Actor for Doubler {
    ///     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
    ///         dispatch(self, env, ctx).handle::<u64>().finish()
    ///     }
    /// }
    /// ```
    pub fn handle<M>(self) -> Self
    where
        M: Message,
        A: Handler<M>,
    {
        self.on(|actor: &mut A, message: &M, envelope, ctx| actor.handle(message, envelope, ctx))
    }

    /// Handles requests of type `M` (a [`Request`]): the handler returns the reply (an
    /// `M::Reply`, or a `Result<M::Reply, ActorError>` when it can fail, so `?` works inside),
    /// which is sent to the request's sender; its type is checked against `M::Reply`.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use thespian_core::{dispatch, Actor, ActorResult, Context, Envelope, Request};
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize)]
    /// struct Add(u32, u32);
    /// thespian_core::message!(Add = "example.Add");
    /// impl Request for Add {
    ///     type Reply = u32;
    /// }
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize)]
    /// struct Div(u32, u32);
    /// thespian_core::message!(Div = "example.Div");
    /// impl Request for Div {
    ///     type Reply = u32;
    /// }
    ///
    /// #[derive(Default)]
    /// struct Calculator;
    ///
    /// impl Actor for Calculator {
    ///     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
    ///         dispatch(self, env, ctx)
    ///             .on_request(|_, Add(a, b): &Add, _, _| a + b)
    ///             .on_request(|_, Div(a, b): &Div, _, _| {
    ///                 a.checked_div(*b).ok_or_else(|| "division by zero".into())
    ///             })
    ///             .finish()
    ///     }
    /// }
    /// ```
    pub fn on_request<M, R, F>(self, handler: F) -> Self
    where
        M: Request,
        R: IntoReply<M::Reply>,
        F: FnOnce(&mut A, &M, &Envelope, &mut Context<'c>) -> R,
    {
        self.on(
            move |actor: &mut A,
                  message: &M,
                  envelope: &Envelope,
                  ctx: &mut Context<'c>|
                  -> ActorResult {
                let reply = handler(actor, message, envelope, ctx).into_reply()?;
                ctx.reply_to(envelope, reply)?;
                Ok(())
            },
        )
    }

    /// Handles any system message not handled by a typed handler (`receiveMsg_ActorSystemMessage`).
    pub fn on_system_message<R, F>(mut self, handler: F) -> Self
    where
        R: HandlerOutput,
        F: for<'r, 's> FnOnce(&'r mut A, &'r Envelope, &'r mut Context<'s>) -> R + 'x,
    {
        if self.outcome.is_none() && self.envelope.payload().is_system() {
            self.on_system
                .push(Box::new(move |a, e, c| handler(a, e, c).into_flow()));
        }
        self
    }

    /// Handles any message not handled by a more specific handler (`receiveMsg_object`).
    pub fn on_any<R, F>(mut self, handler: F) -> Self
    where
        R: HandlerOutput,
        F: for<'r, 's> FnOnce(&'r mut A, &'r Envelope, &'r mut Context<'s>) -> R + 'x,
    {
        if self.outcome.is_none() {
            self.on_any
                .push(Box::new(move |a, e, c| handler(a, e, c).into_flow()));
        }
        self
    }

    fn run_deferred(&mut self) {
        let deferred: Vec<Deferred<'x, A>> = self
            .on_system
            .drain(..)
            .chain(self.on_any.drain(..))
            .collect();
        for handler in deferred {
            if self.outcome.is_some() {
                break;
            }
            let flow = handler(self.actor, self.envelope, self.ctx);
            self.record(flow);
        }
    }

    /// Ends the dispatch: an unhandled message goes to `fallback` (`receiveUnrecognizedMessage`).
    pub fn otherwise<R, F>(mut self, fallback: F) -> ActorResult
    where
        R: HandlerOutput,
        F: FnOnce(&mut A, &Envelope, &mut Context<'c>) -> R,
    {
        self.run_deferred();
        match self.outcome {
            Some(result) => result,
            None => fallback(self.actor, self.envelope, self.ctx)
                .into_flow()
                .map(|_| ()),
        }
    }

    /// Ends the dispatch: an unhandled message is silently discarded.
    pub fn finish(mut self) -> ActorResult {
        self.run_deferred();
        self.outcome.unwrap_or(Ok(()))
    }

    /// True when a handler has consumed the message so far.
    pub fn is_handled(&self) -> bool {
        self.outcome.is_some()
    }
}
