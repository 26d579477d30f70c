//! Thespian's `test_globalName.py` (and SPEC §8.3): one actor per global name, from outside and
//! from actors; different or no names make different actors; messages sent right after the
//! create arrive in order; `ctx.global_name()`; an existing name wins over an unknown type;
//! the name is freed when its actor exits; the requester that created it is its parent.

use thespian::prelude::*;
use thespian::ThespianError;

use crate::bases::TestBase;
use crate::helpers::{
    ask, ask_caught_up, assert_alive, assert_gone, expect_child_gone, listen_none, spawn, start,
    status, Addrs, ChildrenQuery, Parent, Spawn,
};

/// `name?` replies its global name; `log?` replies the other strings it got, in order.
#[derive(Default)]
struct Named {
    log: Vec<String>,
}

impl Actor for Named {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        match env.get::<String>().map(String::as_str) {
            Ok("name?") => {
                let name: Option<String> = ctx.global_name().map(str::to_owned);
                ctx.send(env.sender(), name)?;
            }
            Ok("log?") => ctx.send(env.sender(), self.log.clone())?,
            Ok(other) => self.log.push(other.to_owned()),
            Err(_) => {}
        }
        Ok(())
    }
}

fn named(sys: &ActorSystem, name: &str) -> ActorAddress {
    sys.create_actor_with::<Named>(CreateOptions::new().global_name(name))
        .expect("create")
}

fn name_of(sys: &ActorSystem, actor: &ActorAddress) -> Option<String> {
    ask::<Option<String>>(sys, actor, "name?")
}

pub(crate) fn same_name_same_actor_top_level(base: TestBase) {
    let sys = start(base);
    let a = named(&sys, "g");
    let b = named(&sys, "g");
    assert_eq!(a, b);
    assert_eq!(name_of(&sys, &a).as_deref(), Some("g"));
}

pub(crate) fn same_name_same_actor_from_actors(base: TestBase) {
    let sys = start(base);
    let p1 = sys.create_actor::<Parent<Named>>().expect("create");
    let p2 = sys.create_actor::<Parent<Named>>().expect("create");
    let a = spawn(&sys, &p1, Spawn::named("g"));
    let b = spawn(&sys, &p1, Spawn::named("g"));
    let c = spawn(&sys, &p2, Spawn::named("g"));
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(name_of(&sys, &a).as_deref(), Some("g"));
}

pub(crate) fn same_name_across_top_level_and_actors(base: TestBase) {
    let sys = start(base);
    let parent = sys.create_actor::<Parent<Named>>().expect("create");
    // Outside first, then an actor.
    let outside = named(&sys, "first outside");
    assert_eq!(spawn(&sys, &parent, Spawn::named("first outside")), outside);
    // An actor first, then outside.
    let inside = spawn(&sys, &parent, Spawn::named("first inside"));
    assert_eq!(named(&sys, "first inside"), inside);
    assert_ne!(inside, outside);
}

pub(crate) fn different_or_no_names_are_different_actors(base: TestBase) {
    let sys = start(base);
    let x = named(&sys, "x");
    let y = named(&sys, "y");
    let anonymous_1 = sys.create_actor::<Named>().expect("create");
    let anonymous_2 = sys.create_actor::<Named>().expect("create");
    let all = [&x, &y, &anonymous_1, &anonymous_2];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
    let parent = sys.create_actor::<Parent<Named>>().expect("create");
    let child_1 = spawn(&sys, &parent, Spawn::child());
    let child_2 = spawn(&sys, &parent, Spawn::child());
    assert_ne!(child_1, child_2);
    assert_ne!(child_1, x);
}

/// On `start`: creates a named actor and sends it `hi` then `ho` straight away.
#[derive(Default)]
struct HiHo;

impl Actor for HiHo {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "start") {
            let request = thespian::CreateRequest::of::<Named>().global_name("hiho");
            let named = ctx.create(request)?;
            ctx.send(&named, "hi")?;
            ctx.send(&named, "ho")?;
            ctx.send(env.sender(), named)?;
        }
        Ok(())
    }
}

pub(crate) fn messages_right_after_create_keep_order(base: TestBase) {
    let sys = start(base);
    let hiho = sys.create_actor::<HiHo>().expect("create");
    let named_actor = ask::<ActorAddress>(&sys, &hiho, "start");
    // `hi` and `ho` were sent before the reply, but (on a multi-process base) on another
    // connection than this ask: ask until both are in, then check their order.
    let log = ask_caught_up::<Vec<String>>(base, &sys, &named_actor, "log?", |log| log.len() >= 2);
    assert_eq!(log, vec!["hi", "ho"]);
}

pub(crate) fn actor_knows_its_global_name(base: TestBase) {
    let sys = start(base);
    let a = named(&sys, "known");
    assert_eq!(name_of(&sys, &a).as_deref(), Some("known"));
    let anonymous = sys.create_actor::<Named>().expect("create");
    assert_eq!(name_of(&sys, &anonymous), None);
    let parent = sys.create_actor::<Parent<Named>>().expect("create");
    let named_child = spawn(&sys, &parent, Spawn::named("known child"));
    assert_eq!(name_of(&sys, &named_child).as_deref(), Some("known child"));
    let child = spawn(&sys, &parent, Spawn::child());
    assert_eq!(name_of(&sys, &child), None);
    assert_eq!(
        status(&sys, &named_child).global_name.as_deref(),
        Some("known child")
    );
}

pub(crate) fn existing_name_wins_over_unknown_type(base: TestBase) {
    let sys = start(base);
    let existing = named(&sys, "existing");
    let found = sys
        .create_actor_named("no.such.Type", CreateOptions::new().global_name("existing"))
        .expect("the name is checked before the type");
    assert_eq!(found, existing);
}

pub(crate) fn unknown_type_with_new_name_is_invalid(base: TestBase) {
    let sys = start(base);
    match sys.create_actor_named("no.such.Type", CreateOptions::new().global_name("fresh")) {
        Err(ThespianError::InvalidActorSpecification { spec, .. }) => {
            assert_eq!(spec, "no.such.Type");
        }
        other => panic!("expected InvalidActorSpecification, got {other:?}"),
    }
    // The failed create did not keep the name.
    let fresh = named(&sys, "fresh");
    assert_eq!(name_of(&sys, &fresh).as_deref(), Some("fresh"));
}

pub(crate) fn name_is_freed_when_the_actor_exits(base: TestBase) {
    let sys = start(base);
    let parent = sys.create_actor::<Parent<Named>>().expect("create");
    let first = spawn(&sys, &parent, Spawn::named("phoenix"));
    sys.tell(&first, "remember me").expect("tell");
    sys.tell(&first, ActorExitRequest::new()).expect("tell");
    expect_child_gone(&sys, &parent, &first);
    assert_gone(&sys, &first);
    let second = spawn(&sys, &parent, Spawn::named("phoenix"));
    assert_ne!(second, first, "a new actor under the freed name");
    assert_eq!(name_of(&sys, &second).as_deref(), Some("phoenix"));
    assert!(ask::<Vec<String>>(&sys, &second, "log?").is_empty());
    assert_eq!(named(&sys, "phoenix"), second);
}

pub(crate) fn requester_is_parent_and_is_told_of_exit(base: TestBase) {
    let sys = start(base);
    let creator = sys.create_actor::<Parent<Named>>().expect("create");
    let later = sys.create_actor::<Parent<Named>>().expect("create");
    let heir = spawn(&sys, &creator, Spawn::named("heir"));
    assert_eq!(spawn(&sys, &later, Spawn::named("heir")), heir);
    assert_eq!(status(&sys, &heir).parent_address, creator);
    assert_eq!(
        ask::<Addrs>(&sys, &creator, ChildrenQuery).0,
        vec![heir.clone()]
    );
    assert!(ask::<Addrs>(&sys, &later, ChildrenQuery).0.is_empty());
    sys.tell(&heir, ActorExitRequest::new()).expect("tell");
    expect_child_gone(&sys, &creator, &heir);
    listen_none(&sys); // the later requester is not told
    assert_alive(&sys, &creator);
    assert_alive(&sys, &later);
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Named, HiHo, Parent<Named>);
