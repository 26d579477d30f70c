//! The registry machine driven directly: creates, names, dead letters, capability updates.

use thespian_core::registry::{ActorRecord, CreatePlan, DeadLetterRoute};
use thespian_core::{
    Actor, ActorAddress, ActorResult, ActorSpec, Capabilities, ChildActorExited, Context,
    CreateRequest, DeadEnvelope, Envelope, Payload, PoisonMessage, Registry, RequireCapability,
    Requirements, SystemId, ThespianError,
};

#[derive(Default)]
struct Plain;
impl Actor for Plain {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
}

#[derive(Default)]
struct NeedsBlue;
impl Actor for NeedsBlue {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
    fn required_capabilities() -> Vec<RequireCapability> {
        vec![RequireCapability::truthy("Blue")]
    }
}

fn registry(caps: Capabilities) -> Registry {
    Registry::new(SystemId::from_raw(3), "test", caps)
}

fn create<A: Actor + Default>(
    reg: &mut Registry,
    parent: &ActorAddress,
    name: Option<&str>,
) -> ActorAddress {
    let mut request = CreateRequest::of::<A>();
    request.global_name = name.map(str::to_owned);
    match reg.plan_create(&request).expect("create allowed") {
        CreatePlan::New(address) => {
            let record = ActorRecord {
                parent: parent.clone(),
                spec: ActorSpec::of::<A>(),
                requirements: Requirements::new(),
                global_name: request.global_name.clone(),
            };
            reg.register(address.clone(), record);
            address
        }
        CreatePlan::Existing(address) => address,
    }
}

fn envelope(from: &ActorAddress, payload: Payload) -> Envelope {
    Envelope::new(from.clone(), payload)
}

#[test]
fn global_names_are_unique_checked_first_and_freed_on_exit() {
    let mut reg = registry(Capabilities::new());
    let admin = reg.admin_address();
    let first = create::<Plain>(&mut reg, &admin, Some("registrar"));
    // The name wins over the type: even an actor type this system cannot host gets the address.
    let mut request = CreateRequest::of::<NeedsBlue>();
    request.global_name = Some("registrar".into());
    assert_eq!(
        reg.plan_create(&request).unwrap(),
        CreatePlan::Existing(first.clone())
    );
    reg.exited(&first);
    let second = create::<Plain>(&mut reg, &admin, Some("registrar"));
    assert_ne!(first, second);
}

#[test]
fn capability_misfits_are_a_clear_error() {
    let mut reg = registry(Capabilities::new());
    match reg.plan_create(&CreateRequest::of::<NeedsBlue>()) {
        Err(ThespianError::NoCompatibleSystem { actor_type, unmet }) => {
            assert!(actor_type.ends_with("NeedsBlue"), "{actor_type}");
            assert!(unmet.iter().any(|u| u.contains("Blue")), "{unmet:?}");
        }
        other => panic!("expected NoCompatibleSystem, got {other:?}"),
    }
}

#[test]
fn dead_letters_go_to_the_latest_handler_and_never_recurse() {
    let mut reg = registry(Capabilities::new());
    let admin = reg.admin_address();
    let (old, new, dead, sender) = (
        create::<Plain>(&mut reg, &admin, None),
        create::<Plain>(&mut reg, &admin, None),
        create::<Plain>(&mut reg, &admin, None),
        create::<Plain>(&mut reg, &admin, None),
    );
    reg.exited(&dead);
    assert!(matches!(
        reg.route_dead_letter(&dead, envelope(&sender, Payload::new(1u8))),
        DeadLetterRoute::Drop
    ));
    reg.handle_dead_letters(&old, true);
    reg.handle_dead_letters(&new, true);
    reg.handle_dead_letters(&old, false); // not the current handler: no effect
    match reg.route_dead_letter(&dead, envelope(&sender, Payload::new(7u8))) {
        DeadLetterRoute::Handler { handler, payload } => {
            assert_eq!(handler, new);
            let letter = payload.get::<DeadEnvelope>().unwrap();
            assert_eq!(letter.dead_address, dead);
            assert_eq!(letter.dead_message.get::<u8>().unwrap(), &7);
        }
        other => panic!("expected the handler, got {other:?}"),
    }
    let nested = Payload::new(DeadEnvelope::new(dead.clone(), Payload::new(1u8)));
    assert!(matches!(
        reg.route_dead_letter(&dead, envelope(&sender, nested)),
        DeadLetterRoute::Drop
    ));
    let notice = Payload::new(ChildActorExited::new(dead.clone()));
    assert!(matches!(
        reg.route_dead_letter(&dead, envelope(&sender, notice)),
        DeadLetterRoute::Drop
    ));
    reg.exited(&new);
    assert!(
        reg.dead_letter_handler().is_none(),
        "no fallback to an older handler"
    );
}

#[test]
fn messages_to_a_child_that_never_started_come_back_as_child_aborted() {
    let mut reg = registry(Capabilities::new());
    let CreatePlan::New(child) = reg.plan_create(&CreateRequest::of::<Plain>()).unwrap() else {
        panic!("a new actor")
    };
    reg.abort(&child);
    let parent = ActorAddress::new(SystemId::from_raw(3), 99);
    match reg.route_dead_letter(&child, envelope(&parent, Payload::new("hi".to_owned()))) {
        DeadLetterRoute::ChildAborted { sender, payload } => {
            assert_eq!(sender, parent);
            let poison = payload.get::<PoisonMessage>().unwrap();
            assert_eq!(poison.details, "Child Aborted");
        }
        other => panic!("expected Child Aborted, got {other:?}"),
    }
}

#[test]
fn capability_updates_exit_only_the_topmost_misfits_and_only_on_change() {
    let mut reg = registry(Capabilities::new().with("Blue", true));
    let admin = reg.admin_address();
    let plain = create::<Plain>(&mut reg, &admin, None);
    let blue = create::<NeedsBlue>(&mut reg, &admin, None);
    let blue_child = create::<NeedsBlue>(&mut reg, &blue, None);
    let blue_under_plain = create::<NeedsBlue>(&mut reg, &plain, None);
    assert!(
        reg.update_capability("Blue", Some(true.into())).is_empty(),
        "unchanged: nothing happens"
    );
    assert!(
        reg.update_capability("Red", None).is_empty(),
        "removing an absent key changes nothing"
    );
    let mut expected = vec![blue.clone(), blue_under_plain.clone()];
    expected.sort();
    assert_eq!(
        reg.update_capability("Blue", None),
        expected,
        "{blue_child} goes with its parent"
    );
}

#[test]
fn shutdown_refuses_creates_and_lists_roots_including_orphans() {
    let mut reg = registry(Capabilities::new());
    let admin = reg.admin_address();
    let top = create::<Plain>(&mut reg, &admin, None);
    let child = create::<Plain>(&mut reg, &top, None);
    let orphan_parent = create::<Plain>(&mut reg, &admin, None);
    let orphan = create::<Plain>(&mut reg, &orphan_parent, None);
    reg.exited(&orphan_parent);
    let roots = reg.roots();
    assert!(roots.contains(&top) && roots.contains(&orphan) && !roots.contains(&child));
    reg.begin_shutdown();
    assert!(matches!(
        reg.plan_create(&CreateRequest::of::<Plain>()),
        Err(ThespianError::SystemFailure(_))
    ));
}
