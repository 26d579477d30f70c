//! Thespian's `test_requireCapability.py` (and SPEC §8.5): `requireCapability` without a value
//! needs a truthy capability, with a value an equal one (keys are case-sensitive, values are
//! typed); conditions stack in any order and combine with the capability check; a
//! requirements-based check; an actor no system can host fails with `NoCompatibleSystem`
//! naming the type and the unmet conditions, from outside and from inside an actor.

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{CreateRequest, RequireCapability, Requirements, ThespianError};

use crate::bases::TestBase;
use crate::helpers::{ask, builder, start_with, TestSystem};

fn system(base: TestBase) -> TestSystem {
    start_with(
        builder(base)
            .capability("S", "truthy string")
            .capability("One", 1i64)
            .capability("Empty", "")
            .capability("Zero", 0i64)
            .capability("False", false)
            .capability("dog", "food")
            .capability("Cows Allowed", true),
    )
}

/// Declares actor types that do nothing and require the listed conditions.
macro_rules! requiring {
    ($($name:ident => [$($condition:expr),* $(,)?]),* $(,)?) => {
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
                    vec![$($condition),*]
                }
            }
        )*
    };
}

requiring! {
    TruthyString => [RequireCapability::truthy("S")],
    TruthyOne => [RequireCapability::truthy("One")],
    TruthyEmpty => [RequireCapability::truthy("Empty")],
    TruthyZero => [RequireCapability::truthy("Zero")],
    TruthyFalse => [RequireCapability::truthy("False")],
    TruthyAbsent => [RequireCapability::truthy("Nope")],
    TruthyWrongCase => [RequireCapability::truthy("s")],
    EqualsFood => [RequireCapability::equals("dog", "food")],
    EqualsWrongKeyCase => [RequireCapability::equals("Dog", "food")],
    EqualsWrongValue => [RequireCapability::equals("dog", "bone")],
    EqualsOne => [RequireCapability::equals("One", 1i64)],
    EqualsOneAsTrue => [RequireCapability::equals("One", true)],
    EqualsEmpty => [RequireCapability::equals("Empty", "")],
    StackedPass => [RequireCapability::truthy("S"), RequireCapability::equals("dog", "food")],
    StackedPassReversed => [RequireCapability::equals("dog", "food"), RequireCapability::truthy("S")],
    StackedFail => [RequireCapability::truthy("S"), RequireCapability::truthy("Zero")],
    StackedFailReversed => [RequireCapability::truthy("Zero"), RequireCapability::truthy("S")],
    StackedTwoUnmet => [RequireCapability::truthy("Zero"), RequireCapability::truthy("Empty"), RequireCapability::truthy("S")],
}

/// Passes `requireCapability` but its own capability check refuses: conditions are ANDed.
#[derive(Default)]
struct RequiredButChecked;

impl Actor for RequiredButChecked {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
    fn required_capabilities() -> Vec<RequireCapability> {
        vec![RequireCapability::truthy("S")]
    }
    fn capability_check(caps: &Capabilities, _: &Requirements) -> bool {
        caps.is_truthy("Pigs Allowed")
    }
}

/// Needs `<animal> Allowed` when the create request names an `animal`.
#[derive(Default)]
struct NeedsAnimal;

impl Actor for NeedsAnimal {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if !env.payload().is_system() {
            ctx.forward(env.sender(), env)?;
        }
        Ok(())
    }
    fn capability_check(caps: &Capabilities, requirements: &Requirements) -> bool {
        match requirements.get_str("animal") {
            Ok(Some(animal)) => caps.is_truthy(&format!("{animal} Allowed")),
            Ok(None) => true,
            Err(_) => false,
        }
    }
}

fn outcome(result: thespian::Result<ActorAddress>) -> Result<ActorAddress, Vec<String>> {
    match result {
        Ok(address) => Ok(address),
        Err(ThespianError::NoCompatibleSystem { unmet, .. }) => Err(unmet),
        Err(other) => panic!("expected Ok or NoCompatibleSystem, got {other:?}"),
    }
}

fn creates<A: Actor + Default>(sys: &ActorSystem) -> bool {
    outcome(sys.create_actor::<A>()).is_ok()
}

pub(crate) fn truthy_and_equality_table(base: TestBase) {
    let sys = system(base);
    let table: [(&str, bool, bool); 13] = [
        ("truthy string", creates::<TruthyString>(&sys), true),
        ("truthy 1", creates::<TruthyOne>(&sys), true),
        ("truthy \"\"", creates::<TruthyEmpty>(&sys), false),
        ("truthy 0", creates::<TruthyZero>(&sys), false),
        ("truthy false", creates::<TruthyFalse>(&sys), false),
        ("truthy absent", creates::<TruthyAbsent>(&sys), false),
        (
            "truthy, key case differs",
            creates::<TruthyWrongCase>(&sys),
            false,
        ),
        ("dog == food", creates::<EqualsFood>(&sys), true),
        (
            "Dog == food (key case)",
            creates::<EqualsWrongKeyCase>(&sys),
            false,
        ),
        ("dog == bone", creates::<EqualsWrongValue>(&sys), false),
        ("One == 1", creates::<EqualsOne>(&sys), true),
        (
            "One == true (typed values)",
            creates::<EqualsOneAsTrue>(&sys),
            false,
        ),
        ("Empty == \"\"", creates::<EqualsEmpty>(&sys), true),
    ];
    let wrong: Vec<&str> = table
        .iter()
        .filter(|(_, got, expected)| got != expected)
        .map(|(what, ..)| *what)
        .collect();
    assert!(wrong.is_empty(), "wrong outcomes for: {wrong:?}");
    let echo = sys.create_actor::<TruthyString>().expect("create");
    assert_eq!(ask::<String>(&sys, &echo, "created"), "created");
}

pub(crate) fn stacked_conditions(base: TestBase) {
    let sys = system(base);
    assert!(creates::<StackedPass>(&sys));
    assert!(creates::<StackedPassReversed>(&sys));
    assert!(!creates::<StackedFail>(&sys));
    assert!(!creates::<StackedFailReversed>(&sys));
    assert!(!creates::<RequiredButChecked>(&sys), "ANDed with the check");
}

pub(crate) fn requirements_based_check(base: TestBase) {
    let sys = system(base);
    let cows = CreateOptions::new().requirement("animal", "Cows");
    let cow_actor = sys
        .create_actor_with::<NeedsAnimal>(cows)
        .expect("cows are allowed");
    assert_eq!(ask::<String>(&sys, &cow_actor, "moo"), "moo");
    let pigs = CreateOptions::new().requirement("animal", "Pigs");
    assert!(outcome(sys.create_actor_with::<NeedsAnimal>(pigs)).is_err());
    assert!(
        outcome(sys.create_actor::<NeedsAnimal>()).is_ok(),
        "no requirement"
    );
    let typed_wrong = CreateOptions::new().requirement("animal", 7i64);
    assert!(outcome(sys.create_actor_with::<NeedsAnimal>(typed_wrong)).is_err());
}

pub(crate) fn failure_names_type_and_unmet_conditions(base: TestBase) {
    let sys = system(base);
    match sys.create_actor::<TruthyAbsent>() {
        Err(error @ ThespianError::NoCompatibleSystem { .. }) => {
            let text = error.to_string();
            let ThespianError::NoCompatibleSystem { actor_type, unmet } = error else {
                unreachable!()
            };
            assert_eq!(actor_type, <TruthyAbsent as Actor>::type_name());
            assert_eq!(unmet.len(), 1, "{unmet:?}");
            assert!(unmet[0].contains("Nope"), "{unmet:?}");
            assert!(text.contains(&actor_type), "{text}");
            assert!(text.contains("Nope"), "{text}");
        }
        other => panic!("expected NoCompatibleSystem, got {other:?}"),
    }
    let unmet = outcome(sys.create_actor::<StackedTwoUnmet>()).expect_err("fails");
    assert_eq!(unmet.len(), 2, "only the unmet conditions: {unmet:?}");
    assert!(unmet.iter().any(|u| u.contains("Zero")), "{unmet:?}");
    assert!(unmet.iter().any(|u| u.contains("Empty")), "{unmet:?}");
    let unmet = outcome(sys.create_actor::<RequiredButChecked>()).expect_err("fails");
    assert_eq!(unmet.len(), 1, "{unmet:?}");
    assert!(unmet[0].contains("capability_check"), "{unmet:?}");
}

/// What an actor got from a create: whether it worked, whether the error was
/// `NoCompatibleSystem`, and the error text.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CreateOutcome {
    created: bool,
    no_compatible_system: bool,
    text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum TryCreate {
    Absent,
    Pigs,
    Cows,
}

message!(
    CreateOutcome = "conformance.require.CreateOutcome",
    TryCreate = "conformance.require.TryCreate",
);

#[derive(Default)]
struct Creator;

impl Actor for Creator {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(what) = env.get::<TryCreate>() {
            let result = match what {
                TryCreate::Absent => ctx.create_actor::<TruthyAbsent>(),
                TryCreate::Pigs => ctx.create(
                    CreateRequest::of::<NeedsAnimal>()
                        .requirements(Requirements::new().with("animal", "Pigs")),
                ),
                TryCreate::Cows => ctx.create(
                    CreateRequest::of::<NeedsAnimal>()
                        .requirements(Requirements::new().with("animal", "Cows")),
                ),
            };
            let outcome = match result {
                Ok(address) => CreateOutcome {
                    created: true,
                    no_compatible_system: false,
                    text: address.to_string(),
                },
                Err(e) => CreateOutcome {
                    created: false,
                    no_compatible_system: matches!(e, ThespianError::NoCompatibleSystem { .. }),
                    text: e.to_string(),
                },
            };
            ctx.send(env.sender(), outcome)?;
        }
        Ok(())
    }
}

pub(crate) fn failure_inside_an_actor(base: TestBase) {
    let sys = system(base);
    let creator = sys.create_actor::<Creator>().expect("create");
    let absent: CreateOutcome = ask(&sys, &creator, TryCreate::Absent);
    assert!(!absent.created);
    assert!(absent.no_compatible_system, "{}", absent.text);
    assert!(
        absent.text.contains(<TruthyAbsent as Actor>::type_name()),
        "{}",
        absent.text
    );
    assert!(absent.text.contains("Nope"), "{}", absent.text);
    let pigs: CreateOutcome = ask(&sys, &creator, TryCreate::Pigs);
    assert!(!pigs.created);
    assert!(pigs.no_compatible_system, "{}", pigs.text);
    assert!(
        pigs.text.contains(<NeedsAnimal as Actor>::type_name()),
        "{}",
        pigs.text
    );
    let cows: CreateOutcome = ask(&sys, &creator, TryCreate::Cows);
    assert!(cows.created, "{}", cows.text);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(RequiredButChecked, NeedsAnimal, Creator);
