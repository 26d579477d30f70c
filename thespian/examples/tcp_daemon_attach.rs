//! The second of two programs sharing one actor system: this one attaches to the admin daemon
//! that `tcp_daemon_start` left running, finds the "greeter" by its global name, asks it, and
//! prints the answer; with `--shutdown` it then shuts the whole system down (the daemon and the
//! greeter's process exit).
//!
//! Run, from the workspace:
//!
//! ```text
//! cargo run --example tcp_daemon_start                      # Admin Port 1900
//! cargo run --example tcp_daemon_attach                     # asks the greeter (again and again)
//! cargo run --example tcp_daemon_attach -- --shutdown       # asks it, then stops the system
//! ```
//!
//! Another Admin Port: `cargo run --example tcp_daemon_attach -- 1901 [--shutdown]`.
//!
//! The greeter answers with the id of *its* process: the one the daemon started for it, not
//! this program's; and its count goes up with every run, since it is the same actor each time.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use thespian::keys;
use thespian::prelude::*;

#[path = "tcp_daemon/greeter.rs"]
mod greeter;

use greeter::{Greet, Greeter};

#[thespian::main]
fn main() -> thespian::Result<()> {
    let mut port = 1900;
    let mut shutdown = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--shutdown" => shutdown = true,
            other => {
                port = other.parse().map_err(|_| {
                    thespian::Error::StartupFailure(format!(
                        "usage: tcp_daemon_attach [PORT] [--shutdown]; not a port: {other}"
                    ))
                })?
            }
        }
    }
    // `start()` would start a new daemon if nobody held the port; this example only attaches.
    if TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
        let arg = if port == 1900 {
            String::new()
        } else {
            format!(" -- {port}")
        };
        eprintln!("No admin daemon on port {port}: run `cargo run --example tcp_daemon_start{arg}` first.");
        std::process::exit(1);
    }
    let sys = ActorSystem::builder()
        .base(SystemBase::Tcp)
        .capability(keys::ADMIN_PORT, i64::from(port))
        .start()?;
    // A create under a global name that a live actor has returns that actor (Thespian has no
    // other lookup); the type is only constructed when none exists, which was ruled out above.
    let greeter = sys.create_actor_with::<Greeter>(CreateOptions::new().global_name("greeter"))?;
    println!("found greeter: {greeter}");
    let greeting = Greet {
        from: format!("tcp_daemon_attach (process {})", std::process::id()),
    };
    match sys.request(&greeter, greeting, Duration::from_secs(5)) {
        Ok(greeting) => println!(
            "it says: {} [greeting number {}]",
            greeting.text, greeting.count
        ),
        Err(RequestError::Timeout { .. }) => println!("it did not answer within 5 s"),
        Err(other) => return Err(other.into()),
    }
    if shutdown {
        sys.shutdown()?;
        println!("the actor system on port {port} is shut down");
    }
    Ok(())
}
