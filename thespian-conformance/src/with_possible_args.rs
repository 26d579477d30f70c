//! Thespian's `test_withpossibleargs.py` (constructor injection): actors are built from
//! `Default`, or by `NewActor::new_actor(capabilities, requirements)` receiving the hosting
//! system's capabilities and the create request's requirements (empty when none were given),
//! for top-level actors and for children.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{NewActor, Requirements};

use crate::bases::TestBase;
use crate::helpers::{ask, builder, spawn, start_with, Parent, Spawn, TestSystem};

fn system(base: TestBase) -> TestSystem {
    start_with(builder(base).capability("dog", "food"))
}

/// What a constructor was given, as far as the actor kept it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Given {
    dog: Option<String>,
    want: Option<String>,
    requirement_count: usize,
}

message!(Given = "conformance.initargs.Given");

/// Built from `Default`: knows nothing of capabilities or requirements.
#[derive(Default)]
struct Plain;

impl Actor for Plain {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "given?") {
            let given = Given {
                dog: None,
                want: None,
                requirement_count: 0,
            };
            ctx.send(env.sender(), given)?;
        }
        Ok(())
    }
}

/// Uses only the capabilities.
struct CapsOnly {
    dog: Option<String>,
}

impl NewActor for CapsOnly {
    fn new_actor(caps: &Capabilities, _: &Requirements) -> Result<Self, thespian::ActorError> {
        Ok(CapsOnly {
            dog: caps.get_str("dog")?.map(str::to_owned),
        })
    }
}

impl Actor for CapsOnly {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "given?") {
            let given = Given {
                dog: self.dog.clone(),
                want: None,
                requirement_count: 0,
            };
            ctx.send(env.sender(), given)?;
        }
        Ok(())
    }
}

/// Uses only the requirements.
struct ReqsOnly {
    want: Option<String>,
    count: usize,
}

impl NewActor for ReqsOnly {
    fn new_actor(_: &Capabilities, reqs: &Requirements) -> Result<Self, thespian::ActorError> {
        Ok(ReqsOnly {
            want: reqs.get_str("want")?.map(str::to_owned),
            count: reqs.len(),
        })
    }
}

impl Actor for ReqsOnly {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "given?") {
            let given = Given {
                dog: None,
                want: self.want.clone(),
                requirement_count: self.count,
            };
            ctx.send(env.sender(), given)?;
        }
        Ok(())
    }
}

/// Uses both.
struct Both {
    given: Given,
}

impl NewActor for Both {
    fn new_actor(caps: &Capabilities, reqs: &Requirements) -> Result<Self, thespian::ActorError> {
        Ok(Both {
            given: Given {
                dog: caps.get_str("dog")?.map(str::to_owned),
                want: reqs.get_str("want")?.map(str::to_owned),
                requirement_count: reqs.len(),
            },
        })
    }
}

impl Actor for Both {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "given?") {
            ctx.send(env.sender(), self.given.clone())?;
        }
        Ok(())
    }
}

fn given(dog: Option<&str>, want: Option<&str>, requirement_count: usize) -> Given {
    Given {
        dog: dog.map(str::to_owned),
        want: want.map(str::to_owned),
        requirement_count,
    }
}

pub(crate) fn default_constructor(base: TestBase) {
    let sys = system(base);
    let plain = sys.create_actor::<Plain>().expect("create");
    assert_eq!(ask::<Given>(&sys, &plain, "given?"), given(None, None, 0));
    let with_reqs = sys
        .create_actor_with::<Plain>(CreateOptions::new().requirement("want", "ignored"))
        .expect("requirements do not bother a Default actor");
    assert_eq!(
        ask::<Given>(&sys, &with_reqs, "given?"),
        given(None, None, 0)
    );
}

pub(crate) fn constructor_receives_capabilities_and_requirements(base: TestBase) {
    let sys = system(base);
    let want = || CreateOptions::new().requirement("want", "bone");

    let caps_only = sys.create_actor_with::<CapsOnly>(want()).expect("create");
    assert_eq!(
        ask::<Given>(&sys, &caps_only, "given?"),
        given(Some("food"), None, 0)
    );
    let reqs_only = sys.create_actor_with::<ReqsOnly>(want()).expect("create");
    assert_eq!(
        ask::<Given>(&sys, &reqs_only, "given?"),
        given(None, Some("bone"), 1)
    );
    let both = sys.create_actor_with::<Both>(want()).expect("create");
    assert_eq!(
        ask::<Given>(&sys, &both, "given?"),
        given(Some("food"), Some("bone"), 1)
    );
    let no_reqs = sys.create_actor::<Both>().expect("create");
    assert_eq!(
        ask::<Given>(&sys, &no_reqs, "given?"),
        given(Some("food"), None, 0),
        "no requirements: an empty set"
    );
}

pub(crate) fn child_constructor_receives_requirements(base: TestBase) {
    let sys = system(base);
    let parent = sys.create_actor::<Parent<Both>>().expect("create");
    let child = spawn(&sys, &parent, Spawn::requiring("want", "stick"));
    assert_eq!(
        ask::<Given>(&sys, &child, "given?"),
        given(Some("food"), Some("stick"), 1)
    );
    let bare = spawn(&sys, &parent, Spawn::child());
    assert_eq!(
        ask::<Given>(&sys, &bare, "given?"),
        given(Some("food"), None, 0)
    );
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Plain, CapsOnly, ReqsOnly, Both, Parent<Both>);
