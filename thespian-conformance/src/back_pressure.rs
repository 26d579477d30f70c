//! Back-pressure and addresses no system issued (SPEC §8.9, §8.10, §8.12, §8.13): what one
//! sender may have queued to one target is bounded, and over the bound the send fails with
//! `QueueFull` at once (nothing is dropped); once the target has taken its messages, sends
//! succeed again. A message to an address of another system (made up, or taken from another
//! system) is an `InvalidActorAddress` error for `tell` and `ask`, and comes back to an actor
//! that sent it as a `PoisonMessage`; an address of this system whose actor exited stays a dead
//! letter.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{StatusRequest, SystemStatus, ThespianError};

use crate::bases::TestBase;
use crate::helpers::{
    ask, ask_none, ask_until, assert_gone, builder, start, start_with, Echo, REPLY_TIMEOUT,
};

/// The bound the back-pressure scenario configures: small, so the scenario is cheap.
const LIMIT: usize = 8;

/// Asks a [`SelfFlooder`] to send itself `Flood(0)` messages until one is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FloodSelf {
    /// Stop after this many attempts, even if none was refused.
    attempts: u32,
}

/// One message of a flood.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Flood(u32);

/// What a flood did: how many sends were accepted, and the target the first refusal named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Flooded {
    accepted: u32,
    refused_for: Option<ActorAddress>,
    other_error: Option<String>,
}

/// Asks a [`SelfFlooder`] how many flood messages it has received so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CountQuery;

/// The answer to [`CountQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Received(u32);

/// What a [`Prober`] learnt from its send to an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum ProbeReport {
    /// `ctx.send` failed at once with this error text.
    SendFailed(String),
    /// A `PoisonMessage` came back, carrying this text and these details.
    Poisoned { text: String, details: String },
}

message!(
    FloodSelf = "conformance.back_pressure.FloodSelf",
    Flood = "conformance.back_pressure.Flood",
    Flooded = "conformance.back_pressure.Flooded",
    CountQuery = "conformance.back_pressure.CountQuery",
    Received = "conformance.back_pressure.Received",
    ProbeReport = "conformance.back_pressure.ProbeReport",
);

/// Sends itself flood messages within one `receive`: it cannot take any of them before that
/// `receive` returns, on any base, so exactly the bound is accepted.
#[derive(Default)]
struct SelfFlooder {
    received: u32,
}

impl Actor for SelfFlooder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(flood) = env.get::<FloodSelf>() {
            let me = ctx.my_address().clone();
            let mut report = Flooded {
                accepted: 0,
                refused_for: None,
                other_error: None,
            };
            for n in 0..flood.attempts {
                match ctx.send(&me, Flood(n)) {
                    Ok(()) => report.accepted += 1,
                    Err(ThespianError::QueueFull { target }) => {
                        report.refused_for = Some(target);
                        break;
                    }
                    Err(other) => {
                        report.other_error = Some(other.to_string());
                        break;
                    }
                }
            }
            ctx.send(env.sender(), report)?;
        } else if env.is::<Flood>() {
            self.received += 1;
        } else if env.is::<CountQuery>() {
            ctx.send(env.sender(), Received(self.received))?;
        }
        Ok(())
    }
}

/// An address `to`: sends `"probe"` to `to` and reports to the asker what became of it.
#[derive(Default)]
struct Prober {
    requester: Option<ActorAddress>,
}

impl Actor for Prober {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(to) = env.get::<ActorAddress>() {
            self.requester = Some(env.sender().clone());
            if let Err(e) = ctx.send(to, "probe") {
                ctx.send(env.sender(), ProbeReport::SendFailed(e.to_string()))?;
            }
        } else if let Ok(poison) = env.get::<PoisonMessage>() {
            let text = poison
                .poison_message
                .get::<String>()
                .cloned()
                .unwrap_or_default();
            let report = ProbeReport::Poisoned {
                text,
                details: poison.details.clone(),
            };
            if let Some(requester) = &self.requester {
                ctx.send(requester, report)?;
            }
        }
        Ok(())
    }
}

/// The bases the queue-bound scenario runs on. The multi-process bases bound unsettled sends
/// per peer process in their transports (not per sender and target) and do not take the
/// builder's `queue_limit`.
fn applies_to(base: TestBase) -> bool {
    !base.is_multi_process()
}

pub(crate) fn sender_over_the_bound_gets_queue_full_and_later_succeeds(base: TestBase) {
    if !applies_to(base) {
        return;
    }
    let sys = start_with(builder(base).queue_limit(LIMIT));
    let flooder = sys.create_actor::<SelfFlooder>().unwrap();
    let attempts = 3 * LIMIT as u32;
    let first: Flooded = ask(&sys, &flooder, FloodSelf { attempts });
    assert_eq!(
        first,
        Flooded {
            accepted: LIMIT as u32,
            refused_for: Some(flooder.clone()),
            other_error: None,
        },
        "{base}: exactly the bound is accepted, then QueueFull names the target"
    );
    // The flood was taken in order before this query: nothing refused was delivered, nothing
    // accepted was lost.
    let received: Received = ask(&sys, &flooder, CountQuery);
    assert_eq!(received, Received(LIMIT as u32), "{base}");
    let second: Flooded = ask(&sys, &flooder, FloodSelf { attempts });
    assert_eq!(
        second.accepted, LIMIT as u32,
        "{base}: once the target drained, sends succeed again: {second:?}"
    );
    let received: Received = ask(&sys, &flooder, CountQuery);
    assert_eq!(received, Received(2 * LIMIT as u32), "{base}");
}

pub(crate) fn message_to_an_address_no_system_issued_is_an_error_or_poison(base: TestBase) {
    let sys = start(base);
    let own = sys.my_address().system();
    let made_up = ActorAddress::new(thespian::core::SystemId::from_raw(!own.raw()), 7);
    // On the multi-process bases another system's address is a real destination (systems of a
    // convention address each other's actors), so only the made-up address applies there.
    let other = (!base.is_multi_process()).then(|| start(base));
    let elsewhere = other.as_ref().map(|o| o.create_actor::<Echo>().unwrap());
    for (returned, foreign) in (1u64..).zip(elsewhere.iter().chain([&made_up])) {
        match sys.tell(foreign, "hello") {
            Err(ThespianError::InvalidActorAddress { address, .. }) => {
                assert_eq!(address, foreign.to_string(), "{base}")
            }
            other => panic!("{base}: tell to {foreign} gave {other:?}"),
        }
        match sys.ask(foreign, "hello", REPLY_TIMEOUT) {
            Err(ThespianError::InvalidActorAddress { .. }) => {}
            other => panic!("{base}: ask of {foreign} gave {other:?}"),
        }
        let prober = sys.create_actor::<Prober>().unwrap();
        let report: ProbeReport = ask(&sys, &prober, foreign.clone());
        match report {
            ProbeReport::Poisoned { text, details } => {
                assert_eq!(text, "probe", "{base}");
                assert!(
                    details.contains(&foreign.to_string()),
                    "{base}: details name the address: {details}"
                );
            }
            other => panic!("{base}: an actor's send to {foreign} gave {other:?}"),
        }
        if !base.is_custom() {
            let status =
                ask_until::<SystemStatus>(&sys, &sys.admin_address(), StatusRequest, |s| {
                    s.poison_messages >= returned
                });
            assert_eq!(
                status.poison_messages, returned,
                "{base}: the poison for an address no system issued counts once"
            );
        }
    }
    // The other system's actor never heard of any of it.
    if let (Some(other), Some(elsewhere)) = (&other, &elsewhere) {
        let echoed = other.ask(elsewhere, "still here", REPLY_TIMEOUT).unwrap();
        assert_eq!(
            echoed
                .expect("the echo answers")
                .reply_as::<String>()
                .unwrap(),
            "still here"
        );
    }
    // An address this system issued whose actor exited stays a dead letter: no error, and no
    // poison for an actor that sends to it.
    let gone = sys.create_actor::<Echo>().unwrap();
    sys.tell(&gone, ActorExitRequest::new()).unwrap();
    assert_gone(&sys, &gone);
    sys.tell(&gone, "late").unwrap();
    let prober = sys.create_actor::<Prober>().unwrap();
    ask_none(&sys, &prober, gone);
}

thespian::register_actors!(SelfFlooder, Prober);
