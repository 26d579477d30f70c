use super::*;
use proptest::prelude::*;
use thespian_core::{
    Actor, ActorResult, CapabilityValue, Context, DeadEnvelope, IntoMessage, PoisonMessage,
    SystemId, ThespianError,
};

#[derive(Default)]
struct Plain;

impl Actor for Plain {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
    fn type_name() -> &'static str {
        "test.Plain"
    }
}

/// Fits only a system whose `picky` capability is truthy.
#[derive(Default)]
struct Picky;

impl Actor for Picky {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
    fn capability_check(caps: &Capabilities, _: &Requirements) -> bool {
        caps.is_truthy("picky")
    }
    fn type_name() -> &'static str {
        "test.Picky"
    }
}

const SYS: SystemId = SystemId::from_raw(7);
const GRACE: Duration = Duration::from_secs(10);

fn addr(id: u64) -> ActorAddress {
    ActorAddress::new(SYS, id)
}

fn admin_addr() -> ActorAddress {
    ActorAddress::admin(SYS)
}

/// An outside requester (an external endpoint's address).
fn outside() -> ActorAddress {
    addr(9_000)
}

/// The types "the admin's executable" registered in these tests.
fn resolver() -> Resolver {
    Box::new(|name| {
        [ActorSpec::of::<Plain>(), ActorSpec::of::<Picky>()]
            .into_iter()
            .find(|spec| spec.type_name() == name)
            .ok_or_else(|| format!("the admin knows no type {name:?}"))
    })
}

fn config(thread_mode: bool, picky: bool) -> AdminConfig {
    AdminConfig {
        max_reply: 60_000,
        admin: admin_addr(),
        admin_pid: 42,
        base_name: "multiprocTCPBase",
        capabilities: Capabilities::new().with("picky", picky),
        thread_mode,
        shutdown_grace: GRACE,
        remote_placement: false,
    }
}

fn create_msg<A: Actor + thespian_core::NewActor>(
    parent: &ActorAddress,
    name: Option<&str>,
    wait: bool,
) -> CreateActor {
    CreateActor {
        parent: parent.clone(),
        type_name: A::type_name().to_owned(),
        requirements: Requirements::new(),
        global_name: name.map(str::to_owned),
        wait_until_started: wait,
        remote: None,
    }
}

struct Harness {
    admin: Admin,
    now: Instant,
    next_id: u64,
    next_host: HostId,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(config(false, true), resolver())
    }

    fn with(config: AdminConfig, resolver: Resolver) -> Harness {
        Harness {
            admin: Admin::new(config, resolver),
            now: Instant::now(),
            next_id: 1,
            next_host: 100,
        }
    }

    fn handle(&mut self, from: &ActorAddress, message: impl IntoMessage) -> Vec<Action> {
        self.admin
            .handle(self.now, Envelope::new(from.clone(), Payload::new(message)));
        self.actions()
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.admin.poll_action()).collect()
    }

    /// Sends a create and returns the launch it asks for.
    fn create(&mut self, from: &ActorAddress, create: CreateActor) -> (LaunchTicket, Launch) {
        let actions = self.handle(from, create);
        match <[Action; 1]>::try_from(actions) {
            Ok([Action::Launch { ticket, launch, .. }]) => (ticket, launch),
            other => panic!("expected one launch, got {other:?}"),
        }
    }

    /// Reports a launch on a new host (or on `host`).
    fn launch(&mut self, ticket: LaunchTicket, host: Option<HostId>) -> (ActorAddress, HostId) {
        let address = addr(self.next_id);
        self.next_id += 1;
        let host = host.unwrap_or_else(|| {
            self.next_host += 1;
            self.next_host
        });
        self.admin
            .launched(self.now, ticket, Ok((address.clone(), host)));
        (address, host)
    }

    /// A running actor of type `A` under `parent`, on a new host (actions drained).
    fn spawn<A: Actor + thespian_core::NewActor>(
        &mut self,
        parent: &ActorAddress,
        name: Option<&str>,
    ) -> (ActorAddress, HostId) {
        let (ticket, _) = self.create(parent, create_msg::<A>(parent, name, false));
        let (address, host) = self.launch(ticket, None);
        self.handle(
            &address,
            ActorStarted {
                address: address.clone(),
            },
        );
        self.actions();
        (address, host)
    }
}

/// The sends of messages of type `M`: (from, to, message).
fn sent<M: Message>(actions: &[Action]) -> Vec<(ActorAddress, ActorAddress, M)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { from, to, payload } => payload
                .try_get::<M>()
                .map(|m| (from.clone(), to.clone(), m.clone())),
            _ => None,
        })
        .collect()
}

/// The one `CreateReply` among `actions`, with its receiver.
fn create_reply(actions: &[Action]) -> (ActorAddress, Result<CreatedActor, CreateFailure>) {
    let replies = sent::<CreateReply>(actions);
    assert_eq!(replies.len(), 1, "{actions:?}");
    let (from, to, reply) = replies.into_iter().next().expect("one reply");
    assert_eq!(from, admin_addr());
    (to, reply.result)
}

fn ok_child(address: &ActorAddress) -> Result<CreatedActor, CreateFailure> {
    Ok(CreatedActor {
        address: address.clone(),
        is_child: true,
    })
}

#[test]
fn hello_is_welcomed() {
    let mut h = Harness::new();
    let actions = h.handle(&outside(), Hello { pid: 5 });
    let welcomes = sent::<Welcome>(&actions);
    assert_eq!(welcomes.len(), 1);
    let (from, to, welcome) = &welcomes[0];
    assert_eq!((from, to), (&admin_addr(), &outside()));
    assert_eq!(welcome.admin, admin_addr());
    assert_eq!(welcome.admin_pid, 42);
    assert!(welcome.capabilities.is_truthy("picky"));
    assert!(!welcome.in_shutdown);
}

#[test]
fn a_create_without_wait_is_answered_when_launched() {
    let mut h = Harness::new();
    let actions = h.handle(&outside(), create_msg::<Plain>(&admin_addr(), None, false));
    let [Action::Launch {
        ticket,
        placement,
        launch,
    }] = &actions[..]
    else {
        panic!("expected a launch: {actions:?}");
    };
    assert_eq!(*placement, Placement::Process);
    assert_eq!(launch.parent, admin_addr());
    assert_eq!(launch.spec.type_name(), "test.Plain");
    assert!(launch.capabilities.is_truthy("picky"));
    let (address, _) = h.launch(*ticket, None);
    let actions = h.actions();
    assert_eq!(create_reply(&actions), (outside(), ok_child(&address)));
    assert_eq!(h.admin.live_actors(), 1);
    let actions = h.handle(
        &address,
        ActorStarted {
            address: address.clone(),
        },
    );
    assert!(actions.is_empty(), "{actions:?}");
}

#[test]
fn a_create_with_wait_is_answered_when_started() {
    let mut h = Harness::new();
    let (ticket, _) = h.create(&outside(), create_msg::<Plain>(&admin_addr(), None, true));
    let (address, _) = h.launch(ticket, None);
    assert!(h.actions().is_empty());
    let actions = h.handle(
        &address,
        ActorStarted {
            address: address.clone(),
        },
    );
    assert_eq!(create_reply(&actions), (outside(), ok_child(&address)));
    // A duplicate report changes nothing.
    let actions = h.handle(
        &address,
        ActorStarted {
            address: address.clone(),
        },
    );
    assert!(actions.is_empty());
}

#[test]
fn thread_mode_places_every_actor_in_a_thread() {
    let mut h = Harness::with(config(true, true), resolver());
    let actions = h.handle(&outside(), create_msg::<Plain>(&admin_addr(), None, false));
    assert!(matches!(
        actions[..],
        [Action::Launch {
            placement: Placement::Thread,
            ..
        }]
    ));
}

/// A peer sending ever new unknown message types cannot grow the admin's memory of what it
/// warned about.
#[test]
fn warnings_about_unknown_messages_are_bounded() {
    let mut h = Harness::new();
    for n in 0..(2 * MAX_WARNED_TYPES) {
        let payload = Payload::from_wire(format!("app.Unknown{n}"), vec![0u8]);
        h.admin.handle(h.now, Envelope::new(outside(), payload));
    }
    assert_eq!(h.admin.warned.len(), MAX_WARNED_TYPES);
}

/// Keeps the log lines of the thread that logs them, so a test reads what the admin logged.
struct Capture;

thread_local! {
    static LINES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.with(|lines| lines.borrow_mut().push(record.args().to_string()));
    }
    fn flush(&self) {}
}

/// Runs `f` and returns what it logged on this thread.
fn logged(f: impl FnOnce()) -> Vec<String> {
    static CAPTURE: Capture = Capture;
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURE).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
    LINES.with(|lines| lines.borrow_mut().clear());
    f();
    LINES.with(|lines| lines.take())
}

/// A peer names its message types: what the admin logs of one is clipped and escaped.
#[test]
fn an_unknown_type_name_is_logged_clipped_and_escaped() {
    let mut h = Harness::new();
    let name = format!("app.\u{1b}]0;owned\u{7}\n{}", "x".repeat(100_000));
    let lines = logged(|| {
        let payload = Payload::from_wire(name.clone(), vec![0u8]);
        h.admin.handle(h.now, Envelope::new(outside(), payload));
    });
    let line = lines
        .iter()
        .find(|line| line.starts_with("admin discards"))
        .expect("the discard is logged");
    assert!(line.len() < 300, "{} bytes", line.len());
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(line.contains("app.\\u{1b}]0;owned\\u{7}\\nxxx"), "{line}");
    assert!(line.contains('…'), "{line}");
    assert!(h.admin.warned.iter().all(|name| name.len() < 300));
}

/// A peer names the type to create: a refusal logs it clipped and escaped.
#[test]
fn a_refused_type_name_is_logged_clipped() {
    let mut h = Harness::new();
    let mut create = create_msg::<Plain>(&outside(), None, true);
    create.type_name = format!("\u{1b}{}", "t".repeat(100_000));
    let lines = logged(|| {
        h.handle(&outside(), create);
    });
    let line = lines
        .iter()
        .find(|line| line.starts_with("admin: cannot create"))
        .expect("the refusal is logged");
    assert!(line.len() < 500, "{} bytes", line.len());
    assert!(!line.chars().any(char::is_control), "{line:?}");
}

/// A peer that points the secret file elsewhere could stop every new actor process from
/// starting or probe the owner's files: the update is refused and nothing changes.
#[test]
fn the_secret_file_capability_cannot_be_updated() {
    let mut h = Harness::new();
    let (actor, _) = h.spawn::<Plain>(&admin_addr(), None);
    let before = h.admin.capabilities().clone();
    let actions = h.handle(
        &outside(),
        UpdateCapability {
            name: thespian_core::keys::SECRET_FILE.into(),
            value: Some(CapabilityValue::Str("/etc/passwd".into())),
        },
    );
    assert_eq!(h.admin.capabilities(), &before);
    let answers = sent::<CapabilitiesNow>(&actions);
    assert_eq!(
        answers.len(),
        1,
        "only the requester hears back: {actions:?}"
    );
    assert_eq!(answers[0].1, outside());
    assert!(!answers.iter().any(|(_, to, _)| *to == actor));
    assert_eq!(answers[0].2.capabilities, before);
}

/// A value that does not suit its key is refused by the admin itself, whoever sent it.
#[test]
fn a_bad_capability_value_is_refused_by_the_admin() {
    let mut h = Harness::new();
    let before = h.admin.capabilities().clone();
    h.handle(
        &outside(),
        UpdateCapability {
            name: thespian_core::keys::ADMIN_PORT.into(),
            value: Some(CapabilityValue::Str("not a port".into())),
        },
    );
    assert_eq!(h.admin.capabilities(), &before);
}

#[test]
fn a_global_name_is_answered_before_the_capability_check() {
    let mut h = Harness::new();
    let (named, _) = h.spawn::<Plain>(&admin_addr(), Some("svc"));
    h.handle(
        &outside(),
        UpdateCapability {
            name: "picky".into(),
            value: None,
        },
    );
    // Picky does not fit any more, but the name answers first.
    let actions = h.handle(
        &outside(),
        create_msg::<Picky>(&admin_addr(), Some("svc"), true),
    );
    assert_eq!(
        create_reply(&actions),
        (
            outside(),
            Ok(CreatedActor {
                address: named,
                is_child: false
            })
        )
    );
}

#[test]
fn a_name_being_launched_is_answered_once_launched() {
    let mut h = Harness::new();
    let (ticket, _) = h.create(
        &outside(),
        create_msg::<Plain>(&admin_addr(), Some("svc"), true),
    );
    let other = addr(8_000);
    let actions = h.handle(
        &other,
        create_msg::<Plain>(&admin_addr(), Some("svc"), false),
    );
    assert!(actions.is_empty(), "{actions:?}");
    let (address, _) = h.launch(ticket, None);
    let actions = h.actions();
    assert_eq!(
        create_reply(&actions),
        (
            other,
            Ok(CreatedActor {
                address: address.clone(),
                is_child: false
            })
        )
    );
    assert_eq!(
        h.admin.status().global_actors,
        vec![("svc".to_owned(), address)]
    );
}

#[test]
fn an_unfit_type_is_placed_elsewhere_when_the_system_may_place_remotely() {
    let mut config = config(false, false);
    config.remote_placement = true;
    let mut h = Harness::with(config, resolver());
    let actions = h.handle(&outside(), create_msg::<Picky>(&admin_addr(), None, true));
    let (requester, create, unmet) = match <[Action; 1]>::try_from(actions) {
        Ok(
            [Action::PlaceElsewhere {
                requester,
                create,
                unmet,
            }],
        ) => (requester, create, unmet),
        other => panic!("expected PlaceElsewhere, got {other:?}"),
    };
    assert_eq!(requester.address, outside());
    assert_eq!(requester.ticket, None);
    assert_eq!(create.type_name, "test.Picky");
    assert!(!unmet.is_empty());
    // Nothing was reserved; the answer comes from the driver.
    assert!(h.admin.pending.is_empty());
    let remote = ActorAddress::new(SystemId::from_raw(99), 5);
    h.admin.placed_elsewhere(
        requester,
        Ok(CreatedActor {
            address: remote.clone(),
            is_child: true,
        }),
    );
    let (to, result) = create_reply(&h.actions());
    assert_eq!(to, outside());
    assert_eq!(
        result,
        Ok(CreatedActor {
            address: remote,
            is_child: true
        })
    );
}

#[test]
fn a_create_from_another_admin_is_answered_with_its_ticket() {
    let mut h = Harness::new();
    let other_admin = ActorAddress::new(SystemId::from_raw(99), 1 << 20);
    let mut create = create_msg::<Plain>(&other_admin, None, false);
    create.remote = Some(crate::protocol::RemoteOrigin {
        ticket: 17,
        already_tried: Vec::new(),
    });
    let (ticket, launch) = h.create(&other_admin, create);
    // The actor's parent is the requester on the other system.
    assert_eq!(launch.parent, other_admin);
    let (address, _) = h.launch(ticket, None);
    let replies = sent::<CreateReply>(&h.actions());
    assert_eq!(replies.len(), 1);
    let (_, to, reply) = &replies[0];
    assert_eq!(to, &other_admin);
    assert_eq!(reply.ticket, Some(17));
    assert_eq!(
        reply.result,
        Ok(CreatedActor {
            address,
            is_child: true
        })
    );
}

#[test]
fn an_unfit_type_gets_no_compatible_system() {
    let mut h = Harness::with(config(false, false), resolver());
    let actions = h.handle(
        &outside(),
        create_msg::<Picky>(&admin_addr(), Some("p"), true),
    );
    let (to, result) = create_reply(&actions);
    assert_eq!(to, outside());
    match result {
        Err(CreateFailure::NoCompatibleSystem { actor_type, unmet }) => {
            assert_eq!(actor_type, "test.Picky");
            assert!(!unmet.is_empty());
        }
        other => panic!("expected NoCompatibleSystem, got {other:?}"),
    }
    // The name was not reserved.
    assert!(h.admin.status().global_actors.is_empty());
    assert!(h.admin.names.is_empty());
}

#[test]
fn an_unknown_type_name_is_an_invalid_specification_and_launches_nothing() {
    let mut h = Harness::new();
    for (parent, wait) in [(admin_addr(), true), (addr(500), false)] {
        let mut create = create_msg::<Plain>(&parent, Some("svc"), wait);
        create.type_name = "/bin/sh".into();
        let actions = h.handle(&outside(), create);
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Launch { .. })),
            "{actions:?}"
        );
        let (to, result) = create_reply(&actions);
        assert_eq!(to, outside());
        match result {
            Err(CreateFailure::InvalidActorSpecification { spec, reason }) => {
                assert_eq!(spec, "/bin/sh");
                assert!(reason.contains("knows no type"), "{reason}");
            }
            other => panic!("expected InvalidActorSpecification, got {other:?}"),
        }
    }
    // The name was not reserved, and nothing runs.
    assert!(h.admin.names.is_empty());
    assert_eq!(h.admin.live_actors(), 0);
    let failure = CreateFailure::InvalidActorSpecification {
        spec: "x".into(),
        reason: "y".into(),
    };
    assert_eq!(
        ThespianError::from(failure),
        ThespianError::InvalidActorSpecification {
            spec: "x".into(),
            reason: "y".into()
        }
    );
}

#[test]
fn a_failed_launch_frees_the_name_and_reports_the_failure() {
    let mut h = Harness::new();
    let (ticket, _) = h.create(
        &outside(),
        create_msg::<Plain>(&admin_addr(), Some("svc"), false),
    );
    h.admin
        .launched(h.now, ticket, Err("no such executable".into()));
    let actions = h.actions();
    assert_eq!(
        create_reply(&actions),
        (
            outside(),
            Err(CreateFailure::CreationFailed {
                actor_type: "test.Plain".into(),
                reason: "no such executable".into()
            })
        )
    );
    assert!(h.admin.names.is_empty());
    // The name can be taken again; an unknown ticket is ignored.
    h.create(
        &outside(),
        create_msg::<Plain>(&admin_addr(), Some("svc"), false),
    );
    h.admin.launched(h.now, LaunchTicket(999), Err("x".into()));
    assert!(h.actions().is_empty());
}

#[test]
fn a_failed_start_tells_the_parent_and_poisons_later_letters() {
    let mut h = Harness::new();
    let (parent, _) = h.spawn::<Plain>(&admin_addr(), None);
    let (ticket, _) = h.create(&parent, create_msg::<Plain>(&parent, Some("kid"), false));
    let (child, _) = h.launch(ticket, None);
    assert_eq!(create_reply(&h.actions()).1, ok_child(&child));
    let actions = h.handle(
        &child,
        ActorFailedToStart {
            address: child.clone(),
            reason: "constructor failed".into(),
        },
    );
    assert_eq!(
        sent::<ChildActorExited>(&actions),
        vec![(
            child.clone(),
            parent.clone(),
            ChildActorExited::new(child.clone())
        )]
    );
    assert_eq!(h.admin.live_actors(), 1);
    assert!(h.admin.status().global_actors.is_empty());

    let actions = h.handle(
        &parent,
        DeadLetter {
            target: child.clone(),
            sender: parent.clone(),
            payload: Payload::new("hello"),
        },
    );
    let poison = sent::<PoisonMessage>(&actions);
    assert_eq!(poison.len(), 1);
    let (from, to, message) = &poison[0];
    assert_eq!((from, to), (&child, &parent));
    assert_eq!(message.details, "Child Aborted");
    assert_eq!(message.poison_message, Payload::new("hello"));

    // Poison itself is not returned again.
    let actions = h.handle(
        &parent,
        DeadLetter {
            target: child.clone(),
            sender: parent.clone(),
            payload: Payload::new(PoisonMessage::new(Payload::new(1u8), "x")),
        },
    );
    assert!(actions.is_empty(), "{actions:?}");
}

#[test]
fn a_failed_start_with_a_waiter_is_an_error_reply_only() {
    let mut h = Harness::new();
    let (parent, _) = h.spawn::<Plain>(&admin_addr(), None);
    let (ticket, _) = h.create(&outside(), create_msg::<Plain>(&parent, None, true));
    let (child, _) = h.launch(ticket, None);
    let actions = h.handle(
        &child,
        ActorFailedToStart {
            address: child.clone(),
            reason: "boom".into(),
        },
    );
    assert_eq!(
        create_reply(&actions),
        (
            outside(),
            Err(CreateFailure::CreationFailed {
                actor_type: "test.Plain".into(),
                reason: "boom".into()
            })
        )
    );
    assert!(sent::<ChildActorExited>(&actions).is_empty());
}

#[test]
fn a_host_death_takes_its_actors() {
    let mut h = Harness::new();
    let (parent, _) = h.spawn::<Plain>(&admin_addr(), None);
    let (running, host) = h.spawn::<Plain>(&parent, Some("r"));
    let (ticket, _) = h.create(&outside(), create_msg::<Plain>(&admin_addr(), None, true));
    let (starting, _) = h.launch(ticket, Some(host));
    let actions = h.handle(
        &running,
        HandleDeadLetters {
            actor: running.clone(),
            enable: true,
        },
    );
    assert!(actions.is_empty());

    h.admin.host_exited(h.now, host, "signal 9");
    let actions = h.actions();
    assert_eq!(
        sent::<ChildActorExited>(&actions),
        vec![(
            running.clone(),
            parent.clone(),
            ChildActorExited::new(running.clone())
        )]
    );
    assert_eq!(
        create_reply(&actions),
        (
            outside(),
            Err(CreateFailure::CreationFailed {
                actor_type: "test.Plain".into(),
                reason: "its process exited before it started: signal 9".into()
            })
        )
    );
    let status = h.admin.status();
    assert_eq!(status.live_actors, 1);
    assert!(status.global_actors.is_empty());
    assert_eq!(status.dead_letter_handler, None);
    assert!(h.admin.dead_letters.is_aborted(&starting));
    assert!(!h.admin.dead_letters.is_aborted(&running));
    // An unknown (or already reaped) host is ignored.
    h.admin.host_exited(h.now, host, "again");
    assert!(h.actions().is_empty());
}

#[test]
fn poison_reports_are_counted_and_nothing_else_is() {
    let mut h = Harness::new();
    let (actor, _) = h.spawn::<Plain>(&admin_addr(), None);
    assert_eq!(h.admin.status().poison_messages, 0);
    assert_eq!(h.admin.status().pending_messages, None);
    assert!(h.handle(&actor, PoisonReturned).is_empty(), "no reply");
    assert!(h.handle(&actor, PoisonReturned).is_empty());
    assert_eq!(h.admin.status().poison_messages, 2);
}

#[test]
fn dead_letters_go_to_the_latest_handler() {
    let mut h = Harness::new();
    let (first, _) = h.spawn::<Plain>(&admin_addr(), None);
    let (second, _) = h.spawn::<Plain>(&admin_addr(), None);
    let gone = addr(5_000);
    let letter = |payload: Payload| DeadLetter {
        target: gone.clone(),
        sender: outside(),
        payload,
    };
    assert!(h.handle(&outside(), letter(Payload::new("x"))).is_empty());
    h.handle(
        &first,
        HandleDeadLetters {
            actor: first.clone(),
            enable: true,
        },
    );
    h.handle(
        &second,
        HandleDeadLetters {
            actor: second.clone(),
            enable: true,
        },
    );
    // Disabling a handler that is not the current one changes nothing.
    h.handle(
        &first,
        HandleDeadLetters {
            actor: first.clone(),
            enable: false,
        },
    );
    let actions = h.handle(&outside(), letter(Payload::new("x")));
    assert_eq!(
        sent::<DeadEnvelope>(&actions),
        vec![(
            gone.clone(),
            second.clone(),
            DeadEnvelope::new(gone.clone(), Payload::new("x"))
        )]
    );
    // Never-dead-lettered and admin-protocol messages are dropped.
    assert!(h
        .handle(
            &outside(),
            letter(Payload::new(ChildActorExited::new(first.clone())))
        )
        .is_empty());
    assert!(h
        .handle(
            &outside(),
            letter(Payload::new(DeadEnvelope::new(
                gone.clone(),
                Payload::new(1u8)
            )))
        )
        .is_empty());
    assert!(h
        .handle(
            &outside(),
            letter(Payload::new(ActorStarted {
                address: first.clone()
            }))
        )
        .is_empty());
    // A letter to the handler itself is not given to it.
    let actions = h.handle(
        &outside(),
        DeadLetter {
            target: second.clone(),
            sender: outside(),
            payload: Payload::new("x"),
        },
    );
    assert!(actions.is_empty());
    // The handler's exit unregisters it.
    h.handle(
        &second,
        ActorExited {
            address: second.clone(),
        },
    );
    assert_eq!(h.admin.status().dead_letter_handler, None);
    assert!(h.handle(&outside(), letter(Payload::new("x"))).is_empty());
}

#[test]
fn a_capability_update_asks_only_the_topmost_misfits_to_exit() {
    let mut h = Harness::new();
    let (a, _) = h.spawn::<Picky>(&admin_addr(), None);
    let (b, _) = h.spawn::<Picky>(&a, None);
    let (c, _) = h.spawn::<Plain>(&b, None);
    let (d, _) = h.spawn::<Picky>(&admin_addr(), None);
    let (e, _) = h.spawn::<Plain>(&admin_addr(), None);
    let actions = h.handle(
        &outside(),
        UpdateCapability {
            name: "picky".into(),
            value: Some(CapabilityValue::Bool(false)),
        },
    );
    let exits: Vec<(ActorAddress, ActorAddress)> = sent::<ActorExitRequest>(&actions)
        .into_iter()
        .map(|(from, to, _)| (from, to))
        .collect();
    assert_eq!(
        exits,
        vec![(admin_addr(), a.clone()), (admin_addr(), d.clone())]
    );
    let updates = sent::<CapabilitiesNow>(&actions);
    let mut told: Vec<ActorAddress> = updates.iter().map(|(_, to, _)| to.clone()).collect();
    told.sort();
    let mut expected = vec![a, b, c, d, e, outside()];
    expected.sort();
    assert_eq!(told, expected);
    assert!(updates
        .iter()
        .all(|(from, _, now)| *from == admin_addr() && !now.capabilities.is_truthy("picky")));
    assert!(!h.admin.capabilities().is_truthy("picky"));

    // No change: only the answer.
    let actions = h.handle(
        &outside(),
        UpdateCapability {
            name: "picky".into(),
            value: Some(CapabilityValue::Bool(false)),
        },
    );
    assert_eq!(sent::<CapabilitiesNow>(&actions).len(), 1);
    assert_eq!(actions.len(), 1);
}

#[test]
fn shutdown_asks_the_roots_and_completes_after_the_hosts_exit() {
    let mut h = Harness::new();
    let (a, host_a) = h.spawn::<Plain>(&admin_addr(), None);
    let (b, host_b) = h.spawn::<Plain>(&a, None);
    let (x, host_x) = h.spawn::<Plain>(&a, None);
    let (orphan, host_o) = h.spawn::<Plain>(&x, None);
    h.handle(&x, ActorExited { address: x.clone() });
    h.admin.host_exited(h.now, host_x, "exit 0");
    let (waiting, _) = h.create(&outside(), create_msg::<Plain>(&admin_addr(), None, true));
    h.actions();

    let actions = h.handle(&outside(), ShutdownSystem);
    let exits: Vec<ActorAddress> = sent::<ActorExitRequest>(&actions)
        .into_iter()
        .map(|(from, to, _)| {
            assert_eq!(from, admin_addr());
            to
        })
        .collect();
    assert_eq!(exits, vec![a.clone(), orphan.clone()]);
    assert_eq!(
        create_reply(&actions),
        (outside(), Err(CreateFailure::ShuttingDown))
    );
    assert!(h.admin.in_shutdown());
    assert_eq!(h.admin.poll_timeout(), Some(h.now + GRACE));

    // Creates are refused; the pending launch is told to exit once it exists.
    let actions = h.handle(&b, create_msg::<Plain>(&b, None, false));
    assert_eq!(
        create_reply(&actions),
        (b.clone(), Err(CreateFailure::ShuttingDown))
    );
    let (late, host_l) = h.launch(waiting, None);
    let actions = h.actions();
    assert_eq!(sent::<ActorExitRequest>(&actions).len(), 1);
    assert_eq!(sent::<ActorExitRequest>(&actions)[0].1, late);
    assert!(sent::<CreateReply>(&actions).is_empty());

    for actor in [&b, &a, &orphan, &late] {
        let actions = h.handle(
            actor,
            ActorExited {
                address: actor.clone(),
            },
        );
        assert_eq!(sent::<ExitNoted>(&actions).len(), 1, "{actions:?}");
        assert_eq!(actions.len(), 1, "{actions:?}");
    }
    assert_eq!(h.admin.live_actors(), 0);
    // A second waiter joins.
    assert!(h.handle(&addr(8_001), ShutdownSystem).is_empty());
    for host in [host_a, host_b, host_o] {
        h.admin.host_exited(h.now, host, "exit 0");
        assert!(h.actions().is_empty());
    }
    h.admin.host_exited(h.now, host_l, "exit 0");
    let actions = h.actions();
    assert_eq!(
        sent::<ShutdownComplete>(&actions)
            .into_iter()
            .map(|(_, to, _)| to)
            .collect::<Vec<_>>(),
        vec![outside(), addr(8_001)]
    );
    assert!(matches!(actions.last(), Some(Action::Exit)));
    assert_eq!(
        actions.iter().filter(|a| matches!(a, Action::Exit)).count(),
        1
    );
    // Nothing after Exit.
    assert!(h.handle(&outside(), ShutdownSystem).is_empty());
    assert!(h.handle(&outside(), Hello { pid: 1 }).is_empty());
    h.admin.handle_timeout(h.now + GRACE * 10);
    assert!(h.actions().is_empty());
    assert_eq!(h.admin.poll_timeout(), None);
}

#[test]
fn shutdown_kills_the_hosts_at_the_deadline_and_completes_later_anyway() {
    let mut h = Harness::new();
    let (a, host_a) = h.spawn::<Plain>(&admin_addr(), None);
    let (_b, host_b) = h.spawn::<Plain>(&a, None);
    h.handle(&outside(), ShutdownSystem);
    h.admin
        .handle_timeout(h.now + GRACE - Duration::from_millis(1));
    assert!(h.actions().is_empty());
    let at = h.now + GRACE;
    h.admin.handle_timeout(at);
    let mut killed: Vec<HostId> = h
        .actions()
        .into_iter()
        .map(|a| match a {
            Action::Kill { host } => host,
            other => panic!("expected kills, got {other:?}"),
        })
        .collect();
    killed.sort();
    assert_eq!(killed, vec![host_a, host_b]);
    assert_eq!(h.admin.poll_timeout(), Some(at + KILL_WAIT));
    // One host is reaped; the other never is.
    h.admin.host_exited(at, host_a, "killed");
    assert!(h.actions().is_empty());
    h.admin.handle_timeout(at + KILL_WAIT);
    let actions = h.actions();
    assert_eq!(sent::<ShutdownComplete>(&actions).len(), 1);
    assert!(matches!(actions.last(), Some(Action::Exit)));
    assert_eq!(h.admin.live_actors(), 0);
    h.admin.host_exited(at, host_b, "killed");
    h.admin.handle_timeout(at + KILL_WAIT * 5);
    assert!(h.actions().is_empty());
}

#[test]
fn shutdown_of_an_empty_system_completes_at_once() {
    let mut h = Harness::new();
    let actions = h.handle(&outside(), ShutdownSystem);
    assert_eq!(sent::<ShutdownComplete>(&actions).len(), 1);
    assert!(matches!(actions[..], [Action::Send { .. }, Action::Exit]));
    assert!(h.handle(&outside(), ShutdownSystem).is_empty());
}

#[test]
fn status_reports_names_top_level_actors_and_counts() {
    let mut h = Harness::new();
    let (a, _) = h.spawn::<Plain>(&admin_addr(), Some("zeta"));
    let (b, _) = h.spawn::<Plain>(&a, Some("alpha"));
    let (c, _) = h.spawn::<Plain>(&admin_addr(), None);
    h.handle(
        &c,
        HandleDeadLetters {
            actor: c.clone(),
            enable: true,
        },
    );
    // The status waits for every actor's node to tell its mailbox depth.
    let actions = h.handle(&outside(), StatusRequest);
    let questions = sent::<MailboxDepthQuery>(&actions);
    let mut asked: Vec<ActorAddress> = questions.iter().map(|(_, to, _)| to.clone()).collect();
    asked.sort();
    let mut all = vec![a.clone(), b.clone(), c.clone()];
    all.sort();
    assert_eq!(asked, all);
    assert!(sent::<SystemStatus>(&actions).is_empty());
    let round = questions[0].2.round;
    assert!(h.handle(&a, MailboxDepth { round, depth: 2 }).is_empty());
    assert!(h.handle(&b, MailboxDepth { round, depth: 0 }).is_empty());
    let actions = h.handle(&c, MailboxDepth { round, depth: 5 });
    let replies = sent::<SystemStatus>(&actions);
    assert_eq!(replies.len(), 1);
    let (from, to, status) = &replies[0];
    assert_eq!((from, to), (&admin_addr(), &outside()));
    assert_eq!(status.pending_messages, Some(7));
    let mut expected = h.admin.status();
    expected.pending_messages = Some(7);
    assert_eq!(*status, expected);
    assert_eq!(status.admin_address, admin_addr());
    assert!(!status.in_shutdown);
    assert_eq!(status.dead_letter_handler, Some(c.clone()));
    assert_eq!(
        status.global_actors,
        vec![("alpha".to_owned(), b), ("zeta".to_owned(), a.clone())]
    );
    assert_eq!(status.child_actors, vec![a, c]);
    assert_eq!(status.live_actors, 3);
    assert!(status.capabilities.is_truthy("picky"));
}

#[test]
fn status_lists_every_actor_with_its_parent_name_and_process() {
    let mut h = Harness::new();
    let (a, host_a) = h.spawn::<Plain>(&admin_addr(), Some("zeta"));
    let (b, host_b) = h.spawn::<Plain>(&a, None);
    let status = h.admin.status();
    assert_eq!(status.base, "multiprocTCPBase");
    let listed: Vec<(ActorAddress, ActorAddress, Option<String>)> = status
        .actors
        .iter()
        .map(|s| (s.address.clone(), s.parent.clone(), s.global_name.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (a.clone(), admin_addr(), Some("zeta".to_owned())),
            (b.clone(), a, None)
        ]
    );
    assert!(status.actors.iter().all(|s| s.actor_type == "test.Plain"));
    let pid = |host: HostId| u32::try_from(host).unwrap_or(42);
    assert_eq!(status.actors[0].pid, Some(pid(host_a)));
    assert_eq!(status.actors[1].pid, Some(pid(host_b)));
    let hosts: BTreeSet<HostId> = [host_a, host_b].into_iter().collect();
    let process_hosts = hosts.iter().filter(|h| pid(**h) != 42).count();
    assert_eq!(status.processes, 1 + process_hosts);
}

#[test]
fn a_log_level_change_goes_to_the_driver_and_a_bad_level_is_refused() {
    let mut h = Harness::new();
    let actions = h.handle(
        &outside(),
        SetLogLevel {
            level: " Debug ".into(),
        },
    );
    assert!(matches!(
        &actions[..],
        [Action::SetLogLevel { requester, level }]
            if *requester == outside() && *level == log::LevelFilter::Debug
    ));
    let actions = h.handle(
        &outside(),
        SetLogLevel {
            level: "loud".into(),
        },
    );
    let replies = sent::<LogLevelSet>(&actions);
    assert_eq!(replies.len(), 1);
    let (_, to, answer) = &replies[0];
    assert_eq!(to, &outside());
    assert!(matches!(&answer.result, Err(e) if e.contains("not a log level")));
    // A long text comes back clipped.
    let actions = h.handle(
        &outside(),
        SetLogLevel {
            level: "x".repeat(10_000),
        },
    );
    let replies = sent::<LogLevelSet>(&actions);
    assert!(matches!(&replies[0].2.result, Err(e) if e.len() < 200));
}

#[test]
fn log_records_are_forwarded() {
    let mut h = Harness::new();
    let actions = h.handle(
        &outside(),
        LogRecord {
            level: 2,
            target: "app".into(),
            text: "careful".into(),
            actor: Some(addr(3)),
            system: None,
        },
    );
    match &actions[..] {
        [Action::Log {
            level,
            target,
            text,
            from_other_system: false,
        }] => {
            assert_eq!(*level, log::Level::Warn);
            assert_eq!(target, "app");
            assert_eq!(text, &format!("{}: careful", addr(3)));
        }
        other => panic!("expected a log, got {other:?}"),
    }
    let actions = h.handle(
        &outside(),
        LogRecord {
            level: 77,
            target: "app".into(),
            text: "odd".into(),
            actor: None,
            system: None,
        },
    );
    assert!(matches!(
        &actions[..],
        [Action::Log { level: log::Level::Info, text, .. }] if text == "odd"
    ));
    // Central logging: a record another system forwarded names it and is not sent on.
    let actions = h.handle(
        &outside(),
        LogRecord {
            level: 2,
            target: "app".into(),
            text: "far away".into(),
            actor: None,
            system: Some("127.0.0.1:1901".into()),
        },
    );
    assert!(matches!(
        &actions[..],
        [Action::Log { level: log::Level::Warn, text, from_other_system: true, .. }]
            if text == "[127.0.0.1:1901] far away"
    ));
}

#[test]
fn other_messages_are_ignored() {
    let mut h = Harness::new();
    assert!(h.handle(&outside(), ActorExitRequest::new()).is_empty());
    assert!(h
        .handle(&outside(), ChildActorExited::new(addr(1)))
        .is_empty());
    assert!(h.handle(&outside(), "what").is_empty());
    assert!(h.handle(&outside(), "what").is_empty());
    assert!(h
        .handle(&outside(), ActorStarted { address: addr(77) })
        .is_empty());
    assert!(h
        .handle(
            &outside(),
            ActorFailedToStart {
                address: addr(77),
                reason: "x".into()
            }
        )
        .is_empty());
    // Only the acknowledgement the exiting host waits for.
    let actions = h.handle(&outside(), ActorExited { address: addr(77) });
    assert_eq!(sent::<ExitNoted>(&actions).len(), 1, "{actions:?}");
    assert_eq!(actions.len(), 1, "{actions:?}");
    // A wire payload that does not decode is discarded too.
    h.admin.handle(
        h.now,
        Envelope::new(
            outside(),
            Payload::from_wire("thespian.admin.CreateActor", vec![0xff]),
        ),
    );
    assert!(h.actions().is_empty());
    assert_eq!(h.admin.live_actors(), 0);
    assert!(format!("{:?}", h.admin).starts_with("Admin"));
}

// ---- property: arbitrary event sequences ----

#[derive(Clone, Debug)]
enum Event {
    Create {
        name: Option<u8>,
        wait: bool,
        parent: Option<u8>,
        picky: bool,
    },
    Launched {
        pick: u8,
        ok: bool,
        host: u8,
        reuse_address: Option<u8>,
    },
    Started(u8),
    Failed(u8),
    Exited(u8),
    HostExited(u8),
    DeadLetter {
        target: u8,
        poison: bool,
    },
    HandleDead {
        pick: u8,
        enable: bool,
    },
    Update(Option<bool>),
    Shutdown,
    Timeout(u8),
    Junk,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => (proptest::option::of(0u8..3), any::<bool>(), proptest::option::of(any::<u8>()), any::<bool>())
            .prop_map(|(name, wait, parent, picky)| Event::Create { name, wait, parent, picky }),
        3 => (any::<u8>(), prop::bool::weighted(0.85), any::<u8>(), proptest::option::weighted(0.05, any::<u8>()))
            .prop_map(|(pick, ok, host, reuse_address)| Event::Launched { pick, ok, host, reuse_address }),
        2 => any::<u8>().prop_map(Event::Started),
        1 => any::<u8>().prop_map(Event::Failed),
        1 => any::<u8>().prop_map(Event::Exited),
        1 => any::<u8>().prop_map(Event::HostExited),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(target, poison)| Event::DeadLetter { target, poison }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, enable)| Event::HandleDead { pick, enable }),
        1 => proptest::option::of(any::<bool>()).prop_map(Event::Update),
        1 => Just(Event::Shutdown),
        1 => (0u8..8).prop_map(Event::Timeout),
        1 => Just(Event::Junk),
    ]
}

fn pick<T: Clone>(items: &[T], index: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(index) % items.len()].clone())
}

/// A driver that launches at random times and reports random events.
struct Model {
    h: Harness,
    tickets: Vec<LaunchTicket>,
    addresses: Vec<ActorAddress>,
    hosts: Vec<HostId>,
    exited: bool,
}

impl Model {
    fn step(&mut self, event: Event) {
        let h = &mut self.h;
        match event {
            Event::Create {
                name,
                wait,
                parent,
                picky,
            } => {
                let parent = parent
                    .and_then(|p| pick(&self.addresses, p))
                    .unwrap_or_else(admin_addr);
                let name = name.map(|n| format!("name{n}"));
                let message = if picky {
                    create_msg::<Picky>(&parent, name.as_deref(), wait)
                } else {
                    create_msg::<Plain>(&parent, name.as_deref(), wait)
                };
                h.admin
                    .handle(h.now, Envelope::new(outside(), Payload::new(message)));
            }
            Event::Launched {
                pick: p,
                ok,
                host,
                reuse_address,
            } => {
                let Some(ticket) = pick(&self.tickets, p) else {
                    return self.check();
                };
                self.tickets.retain(|t| *t != ticket);
                let result = if ok {
                    let address = match reuse_address.and_then(|r| pick(&self.addresses, r)) {
                        Some(used) => used,
                        None => {
                            let fresh = addr(h.next_id);
                            h.next_id += 1;
                            self.addresses.push(fresh.clone());
                            fresh
                        }
                    };
                    let host = if host % 2 == 0 {
                        pick(&self.hosts, host / 2)
                    } else {
                        None
                    }
                    .unwrap_or_else(|| {
                        h.next_host += 1;
                        self.hosts.push(h.next_host);
                        h.next_host
                    });
                    Ok((address, host))
                } else {
                    Err("cannot start".to_owned())
                };
                h.admin.launched(h.now, ticket, result);
            }
            Event::Started(p) => {
                if let Some(address) = pick(&self.addresses, p) {
                    let message = ActorStarted {
                        address: address.clone(),
                    };
                    h.admin
                        .handle(h.now, Envelope::new(address, Payload::new(message)));
                }
            }
            Event::Failed(p) => {
                if let Some(address) = pick(&self.addresses, p) {
                    let message = ActorFailedToStart {
                        address: address.clone(),
                        reason: "boom".into(),
                    };
                    h.admin
                        .handle(h.now, Envelope::new(address, Payload::new(message)));
                }
            }
            Event::Exited(p) => {
                if let Some(address) = pick(&self.addresses, p) {
                    let message = ActorExited {
                        address: address.clone(),
                    };
                    h.admin
                        .handle(h.now, Envelope::new(address, Payload::new(message)));
                }
            }
            Event::HostExited(p) => {
                if let Some(host) = pick(&self.hosts, p) {
                    h.admin.host_exited(h.now, host, "exit 1");
                }
            }
            Event::DeadLetter { target, poison } => {
                let target = pick(&self.addresses, target).unwrap_or_else(|| addr(4_000));
                let payload = if poison {
                    Payload::new(PoisonMessage::new(Payload::new(1u8), "x"))
                } else {
                    Payload::new("letter")
                };
                let message = DeadLetter {
                    target,
                    sender: outside(),
                    payload,
                };
                h.admin
                    .handle(h.now, Envelope::new(outside(), Payload::new(message)));
            }
            Event::HandleDead { pick: p, enable } => {
                if let Some(actor) = pick(&self.addresses, p) {
                    let message = HandleDeadLetters {
                        actor: actor.clone(),
                        enable,
                    };
                    h.admin
                        .handle(h.now, Envelope::new(actor, Payload::new(message)));
                }
            }
            Event::Update(value) => {
                let message = UpdateCapability {
                    name: "picky".into(),
                    value: value.map(CapabilityValue::Bool),
                };
                h.admin
                    .handle(h.now, Envelope::new(outside(), Payload::new(message)));
            }
            Event::Shutdown => {
                h.admin.handle(
                    h.now,
                    Envelope::new(outside(), Payload::new(ShutdownSystem)),
                );
            }
            Event::Timeout(seconds) => {
                h.now += Duration::from_secs(u64::from(seconds));
                h.admin.handle_timeout(h.now);
            }
            Event::Junk => {
                h.admin
                    .handle(h.now, Envelope::new(outside(), Payload::new(17u32)));
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let actions = self.h.actions();
        for action in actions {
            assert!(!self.exited, "an action after Exit: {action:?}");
            match action {
                Action::Launch { ticket, .. } => self.tickets.push(ticket),
                Action::Exit => self.exited = true,
                _ => {}
            }
        }
        let admin = &self.h.admin;
        for (name, owner) in admin.names.iter() {
            match owner {
                NameOwner::Actor(address) => {
                    let entry = admin
                        .actors
                        .get(address)
                        .expect("a named actor is recorded");
                    assert_eq!(entry.global_name.as_deref(), Some(name));
                }
                NameOwner::Pending(ticket) => {
                    let pending = admin
                        .pending
                        .get(ticket)
                        .expect("a named launch is pending");
                    assert_eq!(pending.global_name.as_deref(), Some(name));
                }
            }
        }
        for (address, entry) in &admin.actors {
            assert!(admin
                .hosts
                .get(&entry.host)
                .is_some_and(|on| on.contains(address)));
            if let Some(name) = &entry.global_name {
                assert_eq!(
                    admin.names.holder(name),
                    Some(&NameOwner::Actor(address.clone()))
                );
            }
        }
        let on_hosts: usize = admin.hosts.values().map(BTreeSet::len).sum();
        assert_eq!(on_hosts, admin.actors.len());
        assert_eq!(admin.live_actors(), admin.actors.len());
        assert_eq!(admin.status().live_actors, admin.actors.len());
        assert_eq!(self.exited, admin.phase == Phase::Done);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any sequence of reports, requests and timeouts keeps the records consistent, never
    /// panics, and emits nothing after `Exit`.
    #[test]
    fn arbitrary_events_keep_the_admin_consistent(
        events in proptest::collection::vec(event(), 0..80),
    ) {
        let mut model = Model {
            h: Harness::new(),
            tickets: Vec::new(),
            addresses: Vec::new(),
            hosts: Vec::new(),
            exited: false,
        };
        for event in events {
            model.step(event);
        }
        // Shutdown always ends, given time.
        model.step(Event::Shutdown);
        for _ in 0..4 {
            model.step(Event::Timeout(7));
        }
        prop_assert!(model.exited);
        prop_assert_eq!(model.h.admin.live_actors(), 0);
    }
}

#[test]
fn a_status_round_answers_at_its_deadline_without_the_silent_hosts() {
    let mut h = Harness::new();
    let (a, _) = h.spawn::<Plain>(&admin_addr(), None);
    let (b, _) = h.spawn::<Plain>(&admin_addr(), None);
    let actions = h.handle(&outside(), StatusRequest);
    let round = sent::<MailboxDepthQuery>(&actions)[0].2.round;
    // A second requester joins the round; a stranger's answer is not counted.
    assert!(h.handle(&outside(), StatusRequest).is_empty());
    assert!(h
        .handle(&outside(), MailboxDepth { round, depth: 100 })
        .is_empty());
    assert!(h.handle(&a, MailboxDepth { round, depth: 3 }).is_empty());
    let deadline = h.admin.poll_timeout().expect("the round's deadline");
    h.admin.handle_timeout(deadline);
    let actions = h.actions();
    let replies = sent::<SystemStatus>(&actions);
    assert_eq!(replies.len(), 2);
    assert!(replies
        .iter()
        .all(|(_, _, s)| s.pending_messages == Some(3) && s.pending_unanswered == 1));
    assert_eq!(h.admin.poll_timeout(), None);
    // b's late answer belongs to no round.
    assert!(h.handle(&b, MailboxDepth { round, depth: 1 }).is_empty());
}

/// A peer asking for the status in a loop makes the admin ask each actor at most once per
/// round's wait: meanwhile it gets the last round's count.
#[test]
fn status_requests_in_a_loop_ask_each_actor_once_per_round_wait() {
    use crate::status_round::ROUND_WAIT;
    let mut h = Harness::new();
    let (a, _) = h.spawn::<Plain>(&admin_addr(), None);
    let (b, _) = h.spawn::<Plain>(&admin_addr(), None);
    let actions = h.handle(&outside(), StatusRequest);
    let questions = sent::<MailboxDepthQuery>(&actions);
    assert_eq!(questions.len(), 2);
    let round = questions[0].2.round;
    assert!(h.handle(&a, MailboxDepth { round, depth: 2 }).is_empty());
    let replies = sent::<SystemStatus>(&h.handle(&b, MailboxDepth { round, depth: 1 }));
    assert_eq!(replies.len(), 1);
    let ended = h.now;
    for n in 0..1000u32 {
        h.now = ended + ROUND_WAIT * n / 1000;
        let actions = h.handle(&outside(), StatusRequest);
        assert!(
            sent::<MailboxDepthQuery>(&actions).is_empty(),
            "request {n}"
        );
        let replies = sent::<SystemStatus>(&actions);
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].2.pending_messages, Some(3));
        assert_eq!(replies[0].2.pending_unanswered, 0);
    }
    h.now = ended + ROUND_WAIT;
    let actions = h.handle(&outside(), StatusRequest);
    let next = sent::<MailboxDepthQuery>(&actions);
    assert_eq!(next.len(), 2);
    // Random ids: the next round's is not the last one's plus one (odds 2^-64).
    assert_ne!(next[0].2.round, round.wrapping_add(1));
    assert_ne!(next[0].2.round, round);
}

#[test]
fn a_status_of_a_system_without_actors_counts_nothing_pending_at_once() {
    let mut h = Harness::new();
    let actions = h.handle(&outside(), StatusRequest);
    let replies = sent::<SystemStatus>(&actions);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].2.pending_messages, Some(0));
}

#[test]
fn a_status_reply_lists_fewer_actors_rather_than_exceed_the_transport() {
    let mut config = config(false, true);
    config.max_reply = 2_000;
    let mut h = Harness::with(config, resolver());
    let actors: Vec<ActorAddress> = (0..100)
        .map(|n| {
            h.spawn::<Plain>(&admin_addr(), Some(&format!("actor-{n}")))
                .0
        })
        .collect();
    let actions = h.handle(&outside(), StatusRequest);
    let round = sent::<MailboxDepthQuery>(&actions)[0].2.round;
    let mut replies = Vec::new();
    for actor in &actors {
        replies.extend(sent::<SystemStatus>(
            &h.handle(actor, MailboxDepth { round, depth: 1 }),
        ));
    }
    assert_eq!(replies.len(), 1);
    let status = &replies[0].2;
    assert!(postcard::to_allocvec(status).unwrap().len() <= 2_000);
    assert_eq!(status.live_actors, 100, "the count stays whole");
    assert_eq!(status.pending_messages, Some(100));
    assert!(!status.actors.is_empty() && status.actors.len() < 100);
    assert_eq!(
        status.actors[..],
        h.admin.status().actors[..status.actors.len()]
    );
}

proptest! {
    /// Whatever the listings and the limit, the fitted status is within the limit when its
    /// fixed part is, keeps a prefix of each listing, and is untouched when it already fit.
    #[test]
    fn a_fitted_status_fits_and_keeps_prefixes(
        actors in 0usize..60,
        names in 0usize..30,
        limit in 0usize..6_000,
    ) {
        let address = |n: u64| ActorAddress::new(thespian_core::SystemId::from_raw(3), n);
        let mut status = Harness::new().admin.status();
        status.actors = (0..actors as u64)
            .map(|n| ActorSummary {
                address: address(n),
                actor_type: format!("some::Type{n}"),
                parent: address(0),
                global_name: None,
                pid: Some(7),
            })
            .collect();
        status.child_actors = (0..actors as u64).map(address).collect();
        status.global_actors = (0..names as u64).map(|n| (format!("name-{n}"), address(n))).collect();
        let original = status.clone();
        let trimmed = fit_status(&mut status, limit);
        let size = postcard::to_allocvec(&status).unwrap().len();
        let mut bare = original.clone();
        bare.actors.clear();
        bare.child_actors.clear();
        bare.global_actors.clear();
        if postcard::to_allocvec(&bare).unwrap().len() <= limit {
            prop_assert!(size <= limit);
        }
        prop_assert_eq!(trimmed, postcard::to_allocvec(&original).unwrap().len() > limit);
        prop_assert_eq!(&status.actors[..], &original.actors[..status.actors.len()]);
        prop_assert_eq!(&status.child_actors[..], &original.child_actors[..status.child_actors.len()]);
        prop_assert_eq!(&status.global_actors[..], &original.global_actors[..status.global_actors.len()]);
        prop_assert_eq!(status.live_actors, original.live_actors);
    }
}
