//! Thespian's `test_msg_*.py`: attributes and equality rules of the system messages, which do
//! not depend on a base (plain tests, not instantiated per base). Also: every one of them is
//! recognised as a system message, in-process and after crossing the wire.

use std::time::Duration;

use thespian::core::{ActorAddress, SystemId};
use thespian::{
    ActorExitRequest, ActorStatus, ActorSystemConventionUpdate, Capabilities, ChildActorExited,
    DeadEnvelope, LoadedSource, Message, Payload, PoisonMessage, StatusRequest, SystemStatus,
    UnloadedSource, ValidateSource, ValidatedSource, WakeupMessage, WatchMessage,
};

fn addr(id: u64) -> ActorAddress {
    ActorAddress::new(SystemId::from_raw(0xfeed), id)
}

fn through_wire<M: Message>(message: M) -> M {
    let (name, bytes) = Payload::new(message).to_wire().expect("encodes");
    Payload::from_wire(name, bytes)
        .take::<M>()
        .expect("decodes as the same type")
}

#[test]
fn exit_requests_are_all_equal() {
    let recursive = ActorExitRequest::new();
    let flat = ActorExitRequest::non_recursive();
    assert!(recursive.is_recursive());
    assert!(!flat.is_recursive());
    assert_eq!(recursive, flat, "equal regardless of the recursive flag");
    assert!(ActorExitRequest::default().is_recursive());

    let request = ActorExitRequest::new();
    request.not_recursive();
    assert!(!request.is_recursive(), "not_recursive() clears the flag");
    assert_eq!(request, ActorExitRequest::new());
    assert!(!request.clone().is_recursive(), "clones keep the flag");
    assert!(
        !through_wire(request).is_recursive(),
        "the flag survives the wire"
    );
    assert!(through_wire(ActorExitRequest::new()).is_recursive());
}

#[test]
fn child_exited_is_equal_by_address() {
    assert_eq!(
        ChildActorExited::new(addr(1)),
        ChildActorExited::new(addr(1))
    );
    assert_ne!(
        ChildActorExited::new(addr(1)),
        ChildActorExited::new(addr(2))
    );
    assert_eq!(ChildActorExited::new(addr(3)).child_address, addr(3));
    assert_eq!(
        through_wire(ChildActorExited::new(addr(4))),
        ChildActorExited::new(addr(4))
    );
}

#[test]
fn poison_is_equal_by_message_ignoring_details() {
    let a = PoisonMessage::new(Payload::new("bad"), "one traceback");
    let b = PoisonMessage::new(Payload::new("bad"), "another traceback");
    let c = PoisonMessage::new(Payload::new("worse"), "one traceback");
    let d = PoisonMessage::new(Payload::new(7u32), "one traceback");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
    assert_eq!(a.details, "one traceback");
    assert_eq!(a.poison_message.get::<String>().expect("a String"), "bad");
    let crossed = through_wire(a.clone());
    assert_eq!(crossed, a);
    assert_eq!(crossed.details, "one traceback");
    assert_eq!(
        crossed.poison_message.get::<String>().expect("a String"),
        "bad"
    );
}

#[test]
fn dead_envelope_is_equal_by_both_fields() {
    let a = DeadEnvelope::new(addr(1), Payload::new("lost"));
    assert_eq!(a, DeadEnvelope::new(addr(1), Payload::new("lost")));
    assert_ne!(a, DeadEnvelope::new(addr(2), Payload::new("lost")));
    assert_ne!(a, DeadEnvelope::new(addr(1), Payload::new("found")));
    assert_eq!(a.dead_address, addr(1));
    assert_eq!(a.dead_message.get::<String>().expect("a String"), "lost");
    assert_eq!(through_wire(a.clone()), a);
}

#[test]
fn wakeup_is_equal_by_delay_and_payload() {
    let second = Duration::from_secs(1);
    let plain = WakeupMessage::new(second, None);
    assert_eq!(plain, WakeupMessage::new(second, None));
    assert_ne!(plain, WakeupMessage::new(Duration::from_secs(2), None));
    let tagged = WakeupMessage::new(second, Some(Payload::new("tag")));
    assert_ne!(plain, tagged);
    assert_eq!(
        tagged,
        WakeupMessage::new(second, Some(Payload::new("tag")))
    );
    assert_ne!(
        tagged,
        WakeupMessage::new(second, Some(Payload::new("other")))
    );
    assert_eq!(tagged.delay_period, second);
    assert!(tagged.payload_is("tag"));
    assert!(!tagged.payload_is("other"));
    assert_eq!(plain.payload_as::<String>(), Ok(None));
    assert!(tagged.payload_as::<u32>().is_err(), "a tag of another type");
    assert_eq!(through_wire(tagged.clone()), tagged);
}

#[test]
fn validate_and_validated_source_are_equal_by_hash_only() {
    let v1 = ValidateSource {
        source_hash: "abc".into(),
        source_data: Some(vec![1, 2, 3]),
        source_info: Some("one.zip".into()),
    };
    let v2 = ValidateSource {
        source_hash: "abc".into(),
        source_data: None,
        source_info: None,
    };
    let v3 = ValidateSource {
        source_hash: "def".into(),
        ..v1.clone()
    };
    assert_eq!(v1, v2);
    assert_ne!(v1, v3);
    assert_eq!(through_wire(v1.clone()).source_data, Some(vec![1, 2, 3]));

    let w1 = ValidatedSource {
        source_hash: "abc".into(),
        source_zip: Some(vec![9]),
        source_info: Some("one.zip".into()),
    };
    let w2 = ValidatedSource {
        source_hash: "abc".into(),
        source_zip: None,
        source_info: None,
    };
    let w3 = ValidatedSource {
        source_hash: "xyz".into(),
        ..w1.clone()
    };
    assert_eq!(w1, w2, "a rejection equals an acceptance of the same hash");
    assert_ne!(w1, w3);
    assert_eq!(through_wire(w1.clone()), w1);
}

#[test]
fn convention_update_is_equal_by_all_fields() {
    let caps = Capabilities::new().with("Colour", "Blue");
    let update = ActorSystemConventionUpdate {
        remote_admin_address: addr(0),
        remote_capabilities: caps.clone(),
        remote_added: true,
    };
    assert_eq!(update, update.clone());
    assert_ne!(
        update,
        ActorSystemConventionUpdate {
            remote_added: false,
            ..update.clone()
        }
    );
    assert_ne!(
        update,
        ActorSystemConventionUpdate {
            remote_admin_address: ActorAddress::admin(SystemId::from_raw(1)),
            ..update.clone()
        }
    );
    assert_ne!(
        update,
        ActorSystemConventionUpdate {
            remote_capabilities: Capabilities::new(),
            ..update.clone()
        }
    );
    assert_eq!(through_wire(update.clone()), update);
}

#[test]
fn loaded_and_unloaded_sources_compare_by_content() {
    let loaded = LoadedSource {
        source_hash: "abc".into(),
        source_info: "one.zip".into(),
    };
    assert_eq!(loaded, loaded.clone());
    assert_ne!(
        loaded,
        LoadedSource {
            source_info: "two.zip".into(),
            ..loaded.clone()
        }
    );
    let unloaded = UnloadedSource {
        source_hash: "abc".into(),
        source_info: "one.zip".into(),
    };
    assert_eq!(through_wire(unloaded.clone()), unloaded);
}

fn system_messages() -> Vec<Payload> {
    let status = ActorStatus {
        actor_address: addr(1),
        actor_type: "T".into(),
        admin_address: addr(0),
        parent_address: addr(0),
        global_name: None,
        exiting: false,
        child_actors: vec![],
        pending_messages: 0,
        received_messages: 0,
        pending_wakeups: vec![],
        failures: 2,
        pid: Some(7),
        idle_for: Some(Duration::from_millis(1500)),
    };
    let system_status = SystemStatus {
        admin_address: addr(0),
        capabilities: Capabilities::new(),
        in_shutdown: false,
        dead_letter_handler: None,
        global_actors: vec![],
        child_actors: vec![],
        live_actors: 1,
        convention: None,
        base: "multiprocTCPBase".into(),
        actors: vec![thespian::core::ActorSummary {
            address: addr(1),
            actor_type: "T".into(),
            parent: addr(0),
            global_name: Some("g".into()),
            pid: Some(7),
        }],
        processes: 2,
        dead_letters: 3,
        pending_messages: Some(4),
        poison_messages: 5,
        pending_unanswered: 6,
    };
    vec![
        Payload::new(ActorExitRequest::new()),
        Payload::new(ChildActorExited::new(addr(1))),
        Payload::new(PoisonMessage::new(Payload::new("x"), "d")),
        Payload::new(DeadEnvelope::new(addr(1), Payload::new("x"))),
        Payload::new(WakeupMessage::new(Duration::ZERO, None)),
        Payload::new(WatchMessage { ready: vec![3] }),
        Payload::new(ActorSystemConventionUpdate {
            remote_admin_address: addr(0),
            remote_capabilities: Capabilities::new(),
            remote_added: true,
        }),
        Payload::new(ValidateSource {
            source_hash: "h".into(),
            source_data: None,
            source_info: None,
        }),
        Payload::new(ValidatedSource {
            source_hash: "h".into(),
            source_zip: None,
            source_info: None,
        }),
        Payload::new(LoadedSource {
            source_hash: "h".into(),
            source_info: "i".into(),
        }),
        Payload::new(UnloadedSource {
            source_hash: "h".into(),
            source_info: "i".into(),
        }),
        Payload::new(StatusRequest),
        Payload::new(status),
        Payload::new(system_status),
    ]
}

#[test]
fn all_system_messages_are_system_messages() {
    for payload in system_messages() {
        assert!(payload.is_system(), "{}", payload.type_name());
        let (name, bytes) = payload.to_wire().expect("encodes");
        let crossed = Payload::from_wire(name, bytes);
        assert!(
            crossed.is_system(),
            "{} after the wire",
            crossed.type_name()
        );
        assert!(
            crossed == payload,
            "{} survives the wire",
            payload.type_name()
        );
    }
    for user in [
        Payload::new("text"),
        Payload::new(1u32),
        Payload::new(vec![1u8]),
        Payload::new(("a".to_owned(), 2i64)),
    ] {
        assert!(!user.is_system(), "{}", user.type_name());
    }
}
