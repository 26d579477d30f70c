//! The first of two programs sharing one actor system: this one starts the TCP base's admin
//! daemon, creates a "greeter" actor under a global name, and exits *without* shutting the
//! system down. The daemon and the greeter's process live on; `tcp_daemon_attach` (another
//! program) then finds the greeter by its global name, asks it, and can shut everything down.
//!
//! Run, from the workspace:
//!
//! ```text
//! cargo run --example tcp_daemon_start                      # Admin Port 1900
//! cargo run --example tcp_daemon_attach                     # asks the greeter (again and again)
//! cargo run --example tcp_daemon_attach -- --shutdown       # asks it, then stops the system
//! ```
//!
//! Another Admin Port: give it to both, e.g. `cargo run --example tcp_daemon_start -- 1901`
//! and `cargo run --example tcp_daemon_attach -- 1901 --shutdown`.
//!
//! How it works: `thespian::init()`, which `#[thespian::main]` calls first, is where this
//! program, executed again by the system, becomes the admin daemon or the greeter's process;
//! there it never returns. The daemon listens on the Admin Port, so any later program that
//! starts a Tcp system with that port attaches to it instead of starting its own.

use std::time::Duration;

use thespian::keys;
use thespian::prelude::*;

#[path = "tcp_daemon/greeter.rs"]
mod greeter;

use greeter::{Greet, Greeter};

#[thespian::main]
fn main() -> thespian::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| thespian::Error::StartupFailure(format!("not a port number: {arg}")))?,
        None => 1900,
    };
    // Starts the admin daemon on the port (or attaches, if one already listens there).
    let sys = ActorSystem::builder()
        .base(SystemBase::Tcp)
        .capability(keys::ADMIN_PORT, i64::from(port))
        .start()?;
    // A global name makes the actor findable from any program attached to this system.
    let greeter = sys.create_actor_with::<Greeter>(CreateOptions::new().global_name("greeter"))?;
    println!("greeter: {greeter}");
    let greeting = Greet {
        from: "tcp_daemon_start".into(),
    };
    match sys.request(&greeter, greeting, Duration::from_secs(5)) {
        Ok(reply) => println!("it says: {}", reply.text),
        Err(RequestError::Timeout { .. }) => println!("it did not answer within 5 s"),
        Err(other) => return Err(other.into()),
    }
    println!(
        "The admin daemon stays on port {port}: run `cargo run --example tcp_daemon_attach{}`",
        if port == 1900 {
            String::new()
        } else {
            format!(" -- {port}")
        }
    );
    // No `sys.shutdown()`: the system outlives this program.
    Ok(())
}
