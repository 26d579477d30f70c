//! What both `tcp_daemon_start` and `tcp_daemon_attach` know: the greeter and its messages
//! (the same types under the same wire names in both programs).

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

/// A greeting for the greeter (the same type, under the same wire name, in both programs),
/// answered with a [`Greeting`].
#[derive(Clone, Debug, Serialize, Deserialize, Message)]
#[message(name = "tcp_daemon.Greet", reply = Greeting)]
pub(crate) struct Greet {
    /// Who greets.
    pub(crate) from: String,
}

/// The greeter's answer.
#[derive(Clone, Debug, Serialize, Deserialize, Message)]
#[message(name = "tcp_daemon.Greeting")]
pub(crate) struct Greeting {
    /// The greeting text.
    pub(crate) text: String,
    /// The process the greeter runs in.
    pub(crate) pid: u32,
    /// How many greetings this greeter has answered, this one included.
    pub(crate) count: u64,
}

/// Answers every `Greet` with a `Greeting` naming its own process.
#[derive(Default)]
pub(crate) struct Greeter {
    count: u64,
}

impl Actor for Greeter {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        dispatch(self, env, ctx)
            .on_request(|me, greet: &Greet, _, _| {
                me.count += 1;
                let pid = std::process::id();
                Greeting {
                    text: format!("Hello, {}! (greeter in process {pid})", greet.from),
                    pid,
                    count: me.count,
                }
            })
            .finish()
    }

    /// The same name in both programs: the daemon finds the type by it.
    fn type_name() -> &'static str {
        "tcp_daemon.Greeter"
    }
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Greeter);
