//! Thespian's `test_updateSystemCapabilities.py`, on one system: adding a capability enables
//! creating an actor that needs it (from outside and from actors); removing one makes the
//! actors that need it exit (their parents get `ChildActorExited`) while the others keep
//! running, a nested child exiting while its parent stays; unchanged values and removing an
//! absent key change nothing; an actor can update capabilities itself (and be removed by its
//! own update); constructors see the updated capabilities and the requirements. (The
//! multi-system parts of the Thespian test belong to the convention bases.)

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{NewActor, RequireCapability, Requirements, ThespianError};

use crate::bases::{traits, TestBase};
use crate::helpers::{
    ask, ask_env, assert_alive, assert_gone, builder, listen, listen_env, listen_none, spawn,
    start_with, ChildGone, Echo, Parent, Spawn, TestSystem,
};

fn system(base: TestBase) -> TestSystem {
    start_with(
        builder(base)
            .capability("Blue", true)
            .capability("Green", true),
    )
}

/// Declares echoing actor types that require the listed truthy capabilities.
macro_rules! needing {
    ($($name:ident => $cap:literal),* $(,)?) => {
        $(
            #[derive(Default)]
            struct $name;

            thespian::register_actors!($name);

            impl Actor for $name {
                fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
                    if !env.payload().is_system() {
                        ctx.forward(env.sender(), env)?;
                    }
                    Ok(())
                }

                fn required_capabilities() -> Vec<RequireCapability> {
                    vec![RequireCapability::truthy($cap)]
                }
            }
        )*
    };
}

needing! {
    Red => "Red",
    Blue => "Blue",
    Green => "Green",
}

/// Sets (`Some`) or removes (`None`) a capability from inside an actor.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SetCapability {
    name: String,
    value: Option<CapabilityValue>,
}

message!(SetCapability = "conformance.updcaps.SetCapability");

fn update_from_actor(ctx: &mut Context<'_>, env: &Envelope) -> ActorResult {
    if let Ok(set) = env.get::<SetCapability>() {
        let reply = match ctx.update_capability(&set.name, set.value.clone()) {
            Ok(()) => "updated".to_owned(),
            Err(e) => format!("failed: {e}"),
        };
        ctx.send(env.sender(), reply)?;
    }
    Ok(())
}

/// Updates capabilities on request.
#[derive(Default)]
struct Updater;

impl Actor for Updater {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        update_from_actor(ctx, env)
    }
}

/// Updates capabilities on request, and needs `Blue` itself.
#[derive(Default)]
struct BlueUpdater;

impl Actor for BlueUpdater {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        update_from_actor(ctx, env)
    }

    fn required_capabilities() -> Vec<RequireCapability> {
        vec![RequireCapability::truthy("Blue")]
    }
}

fn no_compatible_system(result: thespian::Result<ActorAddress>) -> bool {
    matches!(result, Err(ThespianError::NoCompatibleSystem { .. }))
}

/// Collects `count` `ChildGone` reports, in any order.
fn children_gone(sys: &ActorSystem, count: usize) -> HashSet<(ActorAddress, ActorAddress)> {
    (0..count)
        .map(|_| {
            let gone: ChildGone = listen(sys);
            (gone.parent, gone.child)
        })
        .collect()
}

pub(crate) fn adding_a_capability_enables_creation(base: TestBase) {
    let sys = system(base);
    assert!(no_compatible_system(sys.create_actor::<Red>()));
    let parent = sys.create_actor::<Parent<Red>>().expect("create");
    // Inside the parent the create fails, so its `Spawn` comes back as poison.
    let refused = ask_env(&sys, &parent, Spawn::child());
    let poison: PoisonMessage = refused.reply_as().unwrap();
    assert!(
        poison.details.contains("No compatible"),
        "{}",
        poison.details
    );

    sys.update_capability("Red", Some(true.into()))
        .expect("update");
    assert!(sys.capabilities().is_truthy("Red"));
    let red = sys.create_actor::<Red>().expect("Red can be created now");
    assert_eq!(ask::<String>(&sys, &red, "red"), "red");
    let red_child = spawn(&sys, &parent, Spawn::child());
    assert_eq!(ask::<String>(&sys, &red_child, "red child"), "red child");
}

pub(crate) fn removing_a_capability_exits_actors_that_need_it(base: TestBase) {
    let sys = system(base);
    let blue_parent = sys.create_actor::<Parent<Blue>>().expect("create");
    let green_parent = sys.create_actor::<Parent<Green>>().expect("create");
    let blue_1 = spawn(&sys, &blue_parent, Spawn::child());
    let blue_2 = spawn(&sys, &blue_parent, Spawn::child());
    let green = spawn(&sys, &green_parent, Spawn::child());
    let blue_top = sys.create_actor::<Blue>().expect("create");
    let bystander = sys.create_actor::<Echo>().expect("create");

    sys.update_capability("Blue", None).expect("update");
    assert!(!sys.capabilities().contains("Blue"));
    let expected: HashSet<(ActorAddress, ActorAddress)> = [
        (blue_parent.clone(), blue_1.clone()),
        (blue_parent.clone(), blue_2.clone()),
    ]
    .into_iter()
    .collect();
    assert_eq!(children_gone(&sys, 2), expected);
    listen_none(&sys);
    for gone in [&blue_1, &blue_2, &blue_top] {
        assert_gone(&sys, gone);
    }
    for alive in [&blue_parent, &green_parent, &green, &bystander] {
        assert_alive(&sys, alive);
    }
    assert!(no_compatible_system(sys.create_actor::<Blue>()));
}

pub(crate) fn nested_child_exits_parent_stays(base: TestBase) {
    let sys = system(base);
    let top = sys.create_actor::<Parent<Parent<Blue>>>().expect("create");
    let middle = spawn(&sys, &top, Spawn::child());
    let leaf = spawn(&sys, &middle, Spawn::child());
    assert_eq!(ask::<String>(&sys, &leaf, "blue"), "blue");
    sys.update_capability("Blue", None).expect("update");
    let gone: ChildGone = listen(&sys);
    assert_eq!(
        gone,
        ChildGone {
            parent: middle.clone(),
            child: leaf.clone()
        }
    );
    listen_none(&sys); // the middle actor did not exit
    assert_gone(&sys, &leaf);
    assert_alive(&sys, &middle);
    assert_alive(&sys, &top);
}

pub(crate) fn unchanged_or_nonexistent_removal_has_no_effect(base: TestBase) {
    let sys = system(base);
    let parent = sys.create_actor::<Parent<Blue>>().expect("create");
    let blue = spawn(&sys, &parent, Spawn::child());
    let before = sys.capabilities();
    sys.update_capability("Purple", None).expect("update");
    sys.update_capability("Blue", Some(true.into()))
        .expect("update");
    assert_eq!(sys.capabilities(), before, "nothing changed");
    // A change that does not concern Blue actors leaves them alone too.
    sys.update_capability("Green", None).expect("update");
    listen_none(&sys);
    assert_alive(&sys, &blue);
    assert_eq!(ask::<String>(&sys, &blue, "still blue"), "still blue");
}

pub(crate) fn actor_updates_capability_itself(base: TestBase) {
    let sys = system(base);
    let updater_parent = sys.create_actor::<Parent<BlueUpdater>>().expect("create");
    let blue_parent = sys.create_actor::<Parent<Blue>>().expect("create");
    let updater = spawn(&sys, &updater_parent, Spawn::child());
    let blue = spawn(&sys, &blue_parent, Spawn::child());
    let remove_blue = SetCapability {
        name: "Blue".into(),
        value: None,
    };
    // Its own update removed it too.
    let expected: HashSet<(ActorAddress, ActorAddress)> = [
        (updater_parent.clone(), updater.clone()),
        (blue_parent.clone(), blue.clone()),
    ]
    .into_iter()
    .collect();
    if traits(base).in_process {
        assert_eq!(ask::<String>(&sys, &updater, remove_blue), "updated");
        assert_eq!(children_gone(&sys, 2), expected);
    } else {
        // The admin removes Blue before the updater replies, so the Blue parent's report
        // (another sender, another connection) may overtake the reply; the updater's own parent
        // reports only after the reply arrived (the base delivers an exiting actor's messages
        // before its parent's `ChildActorExited`).
        sys.tell(&updater, remove_blue).expect("tell");
        let mut updated = false;
        let mut gone = HashSet::new();
        for _ in 0..3 {
            let env = listen_env(&sys);
            if env.is::<ChildGone>() {
                let ChildGone { parent, child } = env.reply_as().unwrap();
                assert!(
                    updated || child != updater,
                    "the updater's exit was reported before its reply"
                );
                gone.insert((parent, child));
            } else {
                let sender = env.sender().clone();
                assert_eq!(env.reply_as::<String>().unwrap(), "updated");
                assert_eq!(sender, updater, "the reply comes from the updater");
                assert!(!updated, "a second reply");
                updated = true;
            }
        }
        assert!(updated, "the updater replied");
        assert_eq!(gone, expected);
    }
    listen_none(&sys);
    assert!(!sys.capabilities().contains("Blue"));

    let plain = sys.create_actor::<Updater>().expect("create");
    let add_blue = SetCapability {
        name: "Blue".into(),
        value: Some(true.into()),
    };
    assert_eq!(ask::<String>(&sys, &plain, add_blue), "updated");
    assert!(sys.capabilities().is_truthy("Blue"));
    sys.create_actor::<Blue>().expect("Blue is back");
    let port_before = sys.capabilities().get("Admin Port").cloned();
    let bad_port = SetCapability {
        name: "Admin Port".into(),
        value: Some("not a port".into()),
    };
    let reply = ask::<String>(&sys, &plain, bad_port);
    assert!(reply.starts_with("failed:"), "{reply}");
    assert!(reply.contains("Admin Port"), "{reply}");
    assert_eq!(
        sys.capabilities().get("Admin Port").cloned(),
        port_before,
        "a rejected value changes nothing"
    );
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Seen {
    capabilities: Capabilities,
    requirements: Requirements,
}

message!(Seen = "conformance.updcaps.Seen");

/// Keeps what its constructor was given.
struct Keeper {
    seen: Seen,
}

impl NewActor for Keeper {
    fn new_actor(caps: &Capabilities, reqs: &Requirements) -> Result<Self, thespian::ActorError> {
        Ok(Keeper {
            seen: Seen {
                capabilities: caps.clone(),
                requirements: reqs.clone(),
            },
        })
    }
}

impl Actor for Keeper {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "seen?") {
            ctx.send(env.sender(), self.seen.clone())?;
        }
        Ok(())
    }
}

pub(crate) fn constructor_receives_updated_capabilities(base: TestBase) {
    let sys = system(base);
    sys.update_capability("Colour", Some("Blue".into()))
        .expect("update");
    let top = sys
        .create_actor_with::<Keeper>(CreateOptions::new().requirement("Size", 3i64))
        .expect("create");
    let seen: Seen = ask(&sys, &top, "seen?");
    assert_eq!(
        seen.capabilities.get("Colour"),
        Some(&CapabilityValue::from("Blue"))
    );
    assert_eq!(seen.capabilities, sys.capabilities());
    assert_eq!(seen.requirements, Requirements::new().with("Size", 3i64));

    sys.update_capability("Colour", None).expect("update");
    let parent = sys.create_actor::<Parent<Keeper>>().expect("create");
    let child = spawn(&sys, &parent, Spawn::requiring("Size", 4i64));
    let seen: Seen = ask(&sys, &child, "seen?");
    assert!(!seen.capabilities.contains("Colour"));
    assert_eq!(seen.requirements, Requirements::new().with("Size", 4i64));
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(
    Updater,
    BlueUpdater,
    Keeper,
    Parent<Parent<Blue>>,
    Parent<Blue>,
    Parent<BlueUpdater>,
    Parent<Green>,
    Parent<Keeper>,
    Parent<Red>
);
