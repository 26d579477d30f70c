//! Thespian's hello/goodbye example: a Hello actor asks a Goodbye actor for its half of the
//! greeting, then replies to the outside with both parts.
//!
//! Run it with `cargo run --example hello` (add `-- queue` for another base once built in).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;

/// Asks a `Hello` actor to greet; answered with the greeting.
#[derive(Clone, Debug, Serialize, Deserialize, Message)]
#[message(name = "hello.Greet", reply = String)]
struct Greet {
    /// Whom to greet.
    name: String,
}

/// The Hello actor's request to the Goodbye actor, remembering who asked.
#[derive(Clone, Debug, Serialize, Deserialize, Message)]
#[message(name = "hello.Farewell")]
struct Farewell {
    greeting: String,
    reply_to: ActorAddress,
}

#[derive(Default)]
struct Hello {
    goodbye: Option<ActorAddress>,
}

impl Actor for Hello {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        dispatch(self, env, ctx)
            .on(|me, greet: &Greet, env, ctx| {
                let goodbye = match &me.goodbye {
                    Some(address) => address.clone(),
                    None => me.goodbye.insert(ctx.create_actor::<Goodbye>()?).clone(),
                };
                let farewell = Farewell {
                    greeting: format!("Hello, {}", greet.name),
                    reply_to: env.sender().clone(),
                };
                ctx.send(&goodbye, farewell)
            })
            .finish()
    }
}

#[derive(Default)]
struct Goodbye;

impl Actor for Goodbye {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Some(farewell) = env.try_get::<Farewell>() {
            let both = format!("{} ... and goodbye!", farewell.greeting);
            ctx.send(&farewell.reply_to, both)?;
        }
        Ok(())
    }
}

#[thespian::main]
fn main() -> thespian::Result<()> {
    let base: SystemBase = match std::env::args().nth(1) {
        Some(name) => name.parse()?,
        None => SystemBase::Simple,
    };
    let system = ActorSystem::builder().base(base).start()?;
    let hello = system.create_actor::<Hello>()?;
    for name in ["world", "thespian-rs"] {
        let greet = Greet {
            name: name.to_owned(),
        };
        println!("> asking {hello} to greet {name}");
        match system.request(&hello, greet, Duration::from_secs(5)) {
            Ok(reply) => println!("< {reply}"),
            Err(RequestError::Timeout { .. }) => println!("< no reply within 5 s"),
            Err(other) => return Err(other.into()),
        }
    }
    system.shutdown()
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Hello, Goodbye);
