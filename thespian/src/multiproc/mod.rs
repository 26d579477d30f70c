//! The multi-process bases (`Tcp`, `Udp`): an admin daemon, actors in their own processes (or
//! on the admin's threads), and a transport between them.
//!
//! Written once for both transports: [`transport`] is the only place that names one. The
//! admin's logic is the sans-IO machine of `thespian-admin` and each actor's the lifecycle
//! machine of `thespian-core`; the modules here are their drivers:
//! - [`node`]: one process's endpoint, the addresses it hosts, and routing (addresses say
//!   where they live);
//! - [`launch`]: the roles a re-executed program takes (`thespian::init()`), and starting them;
//! - [`admin_main`]: the admin daemon;
//! - [`admin_watch`]: a program notices at once that the admin's process ended;
//! - [`host`]: an actor's loop and its effects, in a process or a thread;
//! - [`program`]: the `BaseDriver` a program's `ActorSystem` uses;
//! - [`types`]: the actor types this executable registered by name, the only ones its admin
//!   and actor processes create;
//! - [`signals`], [`logging`]: Unix signals and log forwarding for those processes.

pub(crate) mod admin_main;
pub(crate) mod admin_watch;
pub(crate) mod host;
pub(crate) mod launch;
pub(crate) mod logging;
pub(crate) mod node;
pub(crate) mod program;
pub(crate) mod secret;
pub(crate) mod signals;
pub(crate) mod transport;
pub(crate) mod types;
