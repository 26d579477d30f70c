//! The multi-process bases of thespian-rs: an admin daemon, actors in their own processes (or
//! on the admin's threads), and a transport between them.
//!
//! This crate exists so that the multi-process machinery is written once for every transport
//! and linked only into programs that use it. It names no transport: the program hands it
//! [`TransportFactory`]s (the `thespian` facade's `tcp` and `udp` features build them), and
//! every endpoint speaks `thespian-core`'s transport seam ([`thespian_core::transport`]). The
//! admin's logic is the sans-IO machine of `thespian-admin` and each actor's the lifecycle
//! machine of `thespian-core`; the modules here are their drivers:
//! - [`factory`]: binding sockets and building endpoints of a transport the program chose;
//! - `node`: one process's endpoint, the addresses it hosts, and routing (addresses say where
//!   they live);
//! - `roles`: the roles a re-executed program takes and what each is told; `launch`: starting
//!   those processes; [`enter_role_if_any`]: where a re-executed process takes its role;
//!   `init_check`: the flag it sets and the clear error of a program that forgot it;
//! - `admin_main`: the admin daemon; `admin_watch`: a program notices at once that the admin's
//!   process ended;
//! - `host`: an actor's loop and its effects, in a process or a thread;
//! - [`ProgramBase`]: the `BaseDriver` a program's `ActorSystem` uses;
//! - [`types`]: the actor types this executable registered by name, the only ones its admin and
//!   actor processes create;
//! - `signals`, `logging`: Unix signals and log forwarding for those processes.
//!
//! Modules depend on one another in one direction only: `admin_main` and `host` use `roles`,
//! `launch` and `node`, never the other way round; [`ProgramBase`] uses them all, and
//! [`enter_role_if_any`] sits above them all.

#![warn(missing_docs)]

mod admin_main;
mod admin_watch;
mod convention;
pub mod factory;
mod host;
mod init_check;
mod launch;
mod logging;
mod node;
mod program;
mod roles;
mod secret;
mod signals;
pub mod types;

use std::sync::Arc;

pub use factory::{TransportEndpoint, TransportFactory};
pub use init_check::{forgotten_init, init_called};
pub use program::{ProgramBase, StartSettings};
pub use thespian_auth::Secret;
pub use types::ActorRegistration;

/// What `register_actors!` expands to needs; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
}

/// Runs the role this process was started in (`THESPIAN_ROLE`), if any, and then exits the
/// process; in an ordinary run it returns at once. `transports` are the transports this program
/// was built with: the role's settings name one, and a name none of them has is a startup
/// error of that process (exit code 2).
///
/// It also records that it ran ([`init_called`]): a program that starts a multi-process
/// system without it gets [`forgotten_init`] from [`ProgramBase::start`].
pub fn enter_role_if_any(transports: &[Arc<dyn TransportFactory>]) {
    init_check::mark_init_called();
    let Some((role, config)) = roles::role() else {
        return;
    };
    let find = |name: &str| {
        transports
            .iter()
            .find(|t| t.name() == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = transports.iter().map(|t| t.name()).collect();
                format!(
                    "this program has no transport named {name:?} built in (it has {known:?}); \
                     enable the thespian feature \"{name}\""
                )
            })
    };
    let code = match role.as_str() {
        "admin" => match roles::decode::<roles::AdminLaunch>(&config) {
            Ok(launch) => match find(&launch.transport) {
                Ok(transport) => admin_main::run(transport, launch),
                Err(e) => {
                    eprintln!("thespian admin: {e}");
                    2
                }
            },
            Err(e) => {
                eprintln!("thespian admin: {e}");
                2
            }
        },
        "actor" => match roles::decode::<roles::ActorLaunch>(&config) {
            Ok(launch) => match find(&launch.transport) {
                Ok(transport) => host::run_process(transport, launch),
                Err(e) => {
                    eprintln!("thespian actor process: {e}");
                    2
                }
            },
            Err(e) => {
                eprintln!("thespian actor process: {e}");
                2
            }
        },
        other => {
            eprintln!("thespian: unknown THESPIAN_ROLE {other:?}");
            2
        }
    };
    std::process::exit(code);
}
