//! Thespian actor systems in Rust.
//!
//! Actors only exchange messages, and the same actor code runs unchanged on different system
//! bases, chosen at start-up:
//!
//! ```
//! use std::time::Duration;
//! use thespian::prelude::*;
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Actor for Hello {
//!     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
//!         if let Some(name) = env.try_get::<String>() {
//!             ctx.reply_to(env, format!("Hello, {name}!"))?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! #[thespian::main]
//! fn main() -> thespian::Result<()> {
//!     let sys = ActorSystem::builder().base(SystemBase::Simple).transient_unique(true).start()?;
//!     let hello = sys.create_actor::<Hello>()?;
//!     let reply = sys.ask_as::<String>(&hello, "world", Duration::from_secs(1))?;
//!     assert_eq!(reply, "Hello, world!");
//!     sys.shutdown()
//! }
//! ```
//!
//! **Typed layer.** Messages of your own derive [`Message`] (`#[derive(Message)]`, with serde's
//! derives; wire name the type's full path unless `#[message(name = "...")]` gives one), may
//! declare their reply (`#[message(reply = T)]`, the [`Request`] trait) and are then asked
//! with [`ActorSystem::request`], which returns the reply or a [`RequestError`] saying what
//! happened instead; [`ActorSystem::ask_as`] and [`ActorSystem::listen_as`] read any reply as
//! a type. Inside actors, [`Context::reply_to`] answers an envelope, and handlers per message
//! type are closures (`dispatch(self, env, ctx).on(|me, m: &M, env, ctx| ...)`), [`Handler`]
//! impls (`.handle::<M>()`, or the whole `receive` written by [`macro@handles`]) or request
//! handlers that return the reply (`.on_request`).
//! [`macro@main`] marks `main` and calls [`init`] first.
//!
//! The vocabulary (addresses, messages, capabilities, system messages, the [`Actor`] trait and
//! its [`Context`]) comes from `thespian-core` and is re-exported here. This crate adds the
//! [`ActorSystem`] handle, the choice of [`SystemBase`], [`init`], and the `Simple` base.
//!
//! **Features.** Each base besides `Simple` is a cargo feature, all on by default: `queue`
//! (the Queue base, `thespian-transport-queue`), `tcp` and `udp` (the multi-process bases:
//! `thespian-multiproc` and the transport crate). A program that needs fewer depends on
//! `thespian` with `default-features = false` and the features it uses; selecting a base that
//! is not built in is a `StartupFailure` naming its feature. The default feature `watch` gives
//! the Queue base descriptor watches (`ctx.watch`, on a mio poller); without it the Queue base
//! answers them with `NotSupported` (and `Thespian Watch Supported` is false), and the Queue
//! base alone links neither mio nor libc.

#![warn(missing_docs)]

mod bases;
mod simple;
mod singleton;
mod system;
mod typed;

pub use system::{
    ActorSystem, ActorSystemBuilder, BaseSettings, CustomBase, LogConfig, SystemBase,
};
// `Message` is taken from its module so that only the trait comes (thespian-core's root also
// holds its own derive of that name); the facade's derive is below.
pub use thespian_core::message::Message;
pub use thespian_core::{
    self as core, dispatch, keys, message, Actor, ActorAddress, ActorError, ActorExitRequest,
    ActorResult, ActorStatus, ActorSystemConventionUpdate, BaseDriver, Capabilities,
    CapabilityError, CapabilityValue, ChildActorExited, Context, CreateOptions, CreateRequest,
    DeadEnvelope, Envelope, Flow, Handler, IntoMessage, IntoReply, LoadedSource, MessageError,
    NewActor, Payload, PoisonMessage, RemoteSystem, Request, RequestError, RequireCapability,
    Requirements, StatusRequest, SystemStatus, ThespianError, UnloadedSource, ValidateSource,
    ValidatedSource, WakeupMessage, WatchMessage,
};
#[cfg(feature = "derive")]
pub use thespian_macros::{handles, main, Message};

/// `thespian`'s error type: one enum mapping Thespian's exceptions.
pub type Error = ThespianError;

/// Result of the public API.
pub type Result<T, E = ThespianError> = std::result::Result<T, E>;

/// The items most programs need: `use thespian::prelude::*;`.
pub mod prelude {
    pub use crate::{
        dispatch, message, Actor, ActorAddress, ActorExitRequest, ActorResult, ActorSystem,
        Capabilities, CapabilityValue, ChildActorExited, Context, CreateOptions, DeadEnvelope,
        Envelope, Flow, Handler, Message, PoisonMessage, Request, RequestError, Requirements,
        SystemBase, WakeupMessage,
    };
}

/// Call first in `main()`. The multi-process bases (`Tcp`, `Udp`) re-execute the program as
/// the admin daemon or as an actor's process, and `init()` is where such a process takes its
/// role and never returns (the process exits when the role ends); in an ordinary run it
/// returns at once. Code before `init()` runs in every process of the system.
///
/// `#[thespian::main]` on `main` calls it for you. A program that starts a `Tcp` or `Udp`
/// system without having called it gets a `StartupFailure` from `start()` saying so (test
/// binaries, whose processes enter through [`test_entry_point!`], are exempt).
pub fn init() {
    #[cfg(any(feature = "tcp", feature = "udp"))]
    thespian_multiproc::enter_role_if_any(&bases::transports());
}

/// The test a test binary's re-executed processes enter through (see [`test_entry_point!`]).
const TEST_ENTRY: &str = "thespian_process_entry";

/// Registers actor types by name, so the processes of a multi-process system (`Tcp`, `Udp`)
/// can create them: the admin and each actor's process look a create request's type name up
/// among the types their own executable registered, and create nothing else.
///
/// Invoke it at module level, anywhere in the program (a test binary too), with any number of
/// types; registering a type twice is harmless. Every actor type a `Tcp` or `Udp` system
/// creates must be registered; the in-process bases (`Simple`, `Queue`) need no registration.
///
/// ```
/// use thespian::prelude::*;
///
/// #[derive(Default)]
/// struct Greeter;
///
/// impl Actor for Greeter {
///     fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
///         Ok(())
///     }
///     fn type_name() -> &'static str {
///         "example.Greeter"
///     }
/// }
///
/// thespian::register_actors!(Greeter);
/// # fn main() {}
/// ```
///
/// Without the `tcp` and `udp` features nothing is registered (no base needs it), but the
/// types are still checked to be actors.
#[cfg(any(feature = "tcp", feature = "udp"))]
#[macro_export]
macro_rules! register_actors {
    ($($actor:ty),* $(,)?) => {
        $(
            $crate::__private::inventory::submit! {
                $crate::__private::ActorRegistration::of::<$actor>()
            }
        )*
    };
}

/// Registers actor types by name for the multi-process bases, which are not built in (the
/// `tcp` and `udp` features are off): only checks that the types are actors.
#[cfg(not(any(feature = "tcp", feature = "udp")))]
#[macro_export]
macro_rules! register_actors {
    ($($actor:ty),* $(,)?) => {
        const _: () = {
            $( $crate::__private::registrable::<$actor>(); )*
        };
    };
}

/// What [`register_actors!`] expands to needs; not a public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(any(feature = "tcp", feature = "udp"))]
    pub use thespian_multiproc::{__private::inventory, ActorRegistration};

    /// Compiles only for actor types a multi-process base could create.
    #[cfg(not(any(feature = "tcp", feature = "udp")))]
    pub const fn registrable<A: crate::Actor + crate::NewActor>() {}
}

/// Defines the test through which a test binary's processes enter their role, for tests that
/// start `Tcp` or `Udp` systems: invoke it once at the root of the test crate (`main.rs` or
/// the test file) and start systems with [`ActorSystemBuilder::test_entry_point`].
///
/// A test binary's `main` belongs to the test harness, so a re-executed copy is told to run
/// only this test (`thespian_process_entry --exact`), which calls [`init`]. Run normally, the
/// test returns at once and passes.
#[macro_export]
macro_rules! test_entry_point {
    () => {
        /// Where processes this test binary re-executes for a multi-process actor system
        /// take their role (see `thespian::test_entry_point!`).
        #[test]
        fn thespian_process_entry() {
            $crate::init();
        }
    };
}
