//! Thespian's `test_commonCapabilities.py`: the capability check (and the constructor) see the
//! keys every base adds: `Thespian Generation` = `[3, 10]`, `Thespian Version`, `Thespian
//! ActorSystem Name` (the base's Thespian name, SPEC §8.6) and `Thespian ActorSystem Version`.
//! (Thespian's `Python Version` key has no equivalent.)

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{keys, NewActor, Requirements, ThespianError};

use crate::bases::TestBase;
use crate::helpers::{ask, start};

const EXPECTED_NAME: &str = "expected name";

fn common_keys_ok(caps: &Capabilities, expected_name: Option<&CapabilityValue>) -> bool {
    let generation = CapabilityValue::List(vec![CapabilityValue::Int(3), CapabilityValue::Int(10)]);
    caps.get(keys::THESPIAN_GENERATION) == Some(&generation)
        && caps.contains(keys::THESPIAN_VERSION)
        && caps.contains(keys::ACTOR_SYSTEM_VERSION)
        && expected_name.is_some()
        && caps.get(keys::ACTOR_SYSTEM_NAME) == expected_name
}

/// Only creatable where the common keys are right and the name is the requirement's.
#[derive(Default)]
struct CommonCheck;

impl Actor for CommonCheck {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        ctx.forward(env.sender(), env)?;
        Ok(())
    }

    fn capability_check(caps: &Capabilities, requirements: &Requirements) -> bool {
        common_keys_ok(caps, requirements.get(EXPECTED_NAME))
    }
}

pub(crate) fn capability_check_sees_common_capabilities(base: TestBase) {
    let sys = start(base);
    let expected = CreateOptions::new().requirement(EXPECTED_NAME, base.thespian_name());
    let actor = sys
        .create_actor_with::<CommonCheck>(expected)
        .expect("the capability check sees the common capabilities");
    assert_eq!(ask::<String>(&sys, &actor, "hi"), "hi");
    // The check really runs: another expected name fails it.
    let wrong = CreateOptions::new().requirement(EXPECTED_NAME, "simpleSystem");
    match sys.create_actor_with::<CommonCheck>(wrong) {
        Err(ThespianError::NoCompatibleSystem { .. }) => {}
        other => panic!("expected NoCompatibleSystem, got {other:?}"),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Caps(Capabilities);

message!(Caps = "conformance.common.Caps");

/// Keeps the capabilities it was constructed with.
struct CapsKeeper {
    caps: Capabilities,
}

impl NewActor for CapsKeeper {
    fn new_actor(caps: &Capabilities, _: &Requirements) -> Result<Self, thespian::ActorError> {
        Ok(CapsKeeper { caps: caps.clone() })
    }
}

impl Actor for CapsKeeper {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "caps?") {
            ctx.send(env.sender(), Caps(self.caps.clone()))?;
        }
        Ok(())
    }
}

pub(crate) fn constructor_sees_common_capabilities(base: TestBase) {
    let sys = start(base);
    let keeper = sys.create_actor::<CapsKeeper>().expect("create");
    let caps = ask::<Caps>(&sys, &keeper, "caps?").0;
    let name = CapabilityValue::from(base.thespian_name());
    assert!(common_keys_ok(&caps, Some(&name)), "{caps:?}");
    assert_eq!(
        caps.get(keys::THESPIAN_VERSION),
        Some(&CapabilityValue::from(env!("CARGO_PKG_VERSION"))),
        "Thespian Version is the crate version"
    );
    assert_eq!(caps, sys.capabilities(), "the system reports the same");
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(CommonCheck, CapsKeeper);
