//! Thespian's troupes (`@troupe(max_count, idle_count)`, reference §7): a pool of worker actors
//! behind one address, on any system base.
//!
//! This crate exists so a CPU-bound or slow actor scales out without its senders knowing: on
//! the multi-process bases each worker is its own process. It depends only on
//! `thespian-core`: the troupe is an ordinary actor that creates its workers through the public
//! `Context` API, so it runs unchanged on every base.
//!
//! - [`TroupeMember`]: the trait an actor type implements (all provided methods) to serve in a
//!   troupe: settings, Thespian's `troupe_work_in_progress`, an optional affinity key.
//! - [`Troupe`]: the actor, leader or worker; `create_actor::<Troupe<W>>()` creates a troupe.
//! - [`TroupePolicy`]: the leader's decisions as a sans-IO machine, which `Troupe` drives.
//! - the messages: [`TroupeStatusRequest`]/[`TroupeStatus`], [`UpdateTroupeSettings`], and the
//!   leader↔worker protocol ([`TroupeWork`], [`TroupeReady`]).
//!
//! ```
//! use thespian_core::{Actor, ActorResult, Context, Envelope};
//! use thespian_troupe::{Troupe, TroupeMember};
//!
//! #[derive(Default)]
//! struct Fib;
//!
//! impl Actor for Fib {
//!     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
//!         if let Ok(n) = env.get::<u64>() {
//!             let (mut a, mut b) = (0u64, 1u64);
//!             for _ in 0..*n {
//!                 (a, b) = (b, a.wrapping_add(b));
//!             }
//!             ctx.send(env.sender(), a)?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! impl TroupeMember for Fib {}
//!
//! // The troupe is the actor type `Troupe<Fib>`: `sys.create_actor::<Troupe<Fib>>()`, and on
//! // the multi-process bases `thespian::register_actors!(Troupe<Fib>);`.
//! ```

mod messages;
pub mod policy;
mod troupe;

pub use messages::{
    TroupeReady, TroupeStatus, TroupeStatusRequest, TroupeWork, UpdateTroupeSettings,
};
pub use policy::{Action, Counts, TroupePolicy, TroupeSettings, WorkId};
pub use troupe::{Troupe, TroupeMember};

/// Thespian's status line for a policy (`"troupe:status?"`'s reply), with workers shown by
/// their `Display`.
pub fn status_line<A, T>(policy: &TroupePolicy<A, T>) -> String
where
    A: std::fmt::Display + Clone + Eq + std::hash::Hash + std::fmt::Debug,
    T: Clone,
{
    troupe::status_line(policy)
}
