//! The lifecycle machine driven directly, with a recording `Services`: no base, no threads, no
//! clock. Each test states one rule of the machine.

use std::time::Duration;

use thespian_core::{
    Actor, ActorAddress, ActorCell, ActorExitRequest, ActorResult, ActorSpec, ActorStatus,
    Capabilities, CapabilityValue, CellState, ChildActorExited, Context, CreateOptions,
    CreateRequest, Created, Envelope, Payload, PoisonMessage, Requirements, Result, Services,
    StatusRequest, SystemId, ThespianError, WakeupMessage,
};

const SYSTEM: SystemId = SystemId::from_raw(7);

fn addr(id: u64) -> ActorAddress {
    ActorAddress::new(SYSTEM, id)
}

/// Records every effect the machine asks for.
#[derive(Default)]
struct Recorder {
    caps: Capabilities,
    sent: Vec<(ActorAddress, ActorAddress, Payload)>,
    dead: Vec<(ActorAddress, Envelope)>,
    exited: Vec<ActorAddress>,
    wakeups: Vec<(ActorAddress, Duration)>,
    created: Vec<CreateRequest>,
    updated: Vec<String>,
    next_id: u64,
}

impl Recorder {
    fn sent_to(&self, to: &ActorAddress) -> Vec<&Payload> {
        self.sent
            .iter()
            .filter(|(_, t, _)| t == to)
            .map(|(_, _, p)| p)
            .collect()
    }
}

impl Services for Recorder {
    fn base_name(&self) -> &'static str {
        "recorder"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    fn admin_address(&self) -> ActorAddress {
        ActorAddress::admin(SYSTEM)
    }
    fn send(&mut self, from: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()> {
        self.sent.push((from.clone(), to.clone(), payload));
        Ok(())
    }
    fn create_actor(&mut self, _parent: &ActorAddress, request: CreateRequest) -> Result<Created> {
        self.created.push(request);
        self.next_id += 1;
        Ok(Created {
            address: addr(100 + self.next_id),
            is_child: true,
        })
    }
    fn wakeup_after(&mut self, actor: &ActorAddress, delay: Duration, _payload: Option<Payload>) {
        self.wakeups.push((actor.clone(), delay));
    }
    fn handle_dead_letters(&mut self, _actor: &ActorAddress, _enable: bool) {}
    fn update_capability(
        &mut self,
        _: &ActorAddress,
        name: &str,
        _: Option<CapabilityValue>,
    ) -> Result<()> {
        self.updated.push(name.to_owned());
        Ok(())
    }
    fn actor_system_shutdown(&mut self, _actor: &ActorAddress) {}
    fn dead_letter(&mut self, target: &ActorAddress, envelope: Envelope) {
        self.dead.push((target.clone(), envelope));
    }
    fn actor_exited(&mut self, actor: &ActorAddress) {
        self.exited.push(actor.clone());
    }
}

/// Fails on "fail" (always), on "once" (first attempt only), panics on "panic"; creates two
/// children on "spawn"; asks for a wakeup on "wake"; records everything it sees.
#[derive(Default)]
struct Probe {
    seen: Vec<String>,
    once_failed: bool,
    not_recursive: bool,
}

impl Actor for Probe {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        self.seen.push(env.type_name().into_owned());
        if let Ok(exit) = env.get::<ActorExitRequest>() {
            if self.not_recursive {
                exit.not_recursive();
            }
            return Err("exit handlers may fail".into());
        }
        match env.get::<String>().map(String::as_str) {
            Ok("fail") => Err("always fails".into()),
            Ok("once") if !self.once_failed => {
                self.once_failed = true;
                Err("fails once".into())
            }
            Ok("panic") => panic!("probe panicked"),
            Ok("spawn") => {
                ctx.create_actor::<Probe>()?;
                ctx.create_actor::<Probe>()?;
                Ok(())
            }
            Ok("wake") => {
                ctx.wakeup_after(Duration::from_millis(5));
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn cell(id: u64, parent: ActorAddress) -> ActorCell {
    ActorCell::new(
        addr(id),
        parent,
        ActorSpec::of::<Probe>(),
        Requirements::new(),
        None,
    )
}

fn msg(from: u64, text: &str) -> Envelope {
    Envelope::new(addr(from), Payload::new(text.to_owned()))
}

#[test]
fn success_is_delivered_once_and_nothing_else_happens() {
    let (mut cell, mut actor, mut rec) = (cell(1, addr(0)), Probe::default(), Recorder::default());
    assert_eq!(
        cell.handle(&mut actor, msg(9, "hello"), &mut rec),
        CellState::Running
    );
    assert_eq!(actor.seen, ["String"]);
    assert!(rec.sent.is_empty());
}

#[test]
fn failure_is_retried_once_then_poison_goes_to_the_sender() {
    let (mut cell, mut actor, mut rec) = (cell(1, addr(0)), Probe::default(), Recorder::default());
    cell.handle(&mut actor, msg(9, "fail"), &mut rec);
    assert_eq!(actor.seen.len(), 2, "one retry, at once");
    let poison = rec.sent_to(&addr(9));
    assert_eq!(poison.len(), 1);
    let poison = poison[0].get::<PoisonMessage>().expect("a PoisonMessage");
    assert_eq!(poison.poison_message.get::<String>().unwrap(), "fail");
    assert!(
        poison.details.contains("always fails"),
        "{}",
        poison.details
    );
    assert_eq!(cell.state(), CellState::Running, "the actor keeps going");
}

#[test]
fn a_retry_that_succeeds_sends_no_poison() {
    let (mut cell, mut actor, mut rec) = (cell(1, addr(0)), Probe::default(), Recorder::default());
    cell.handle(&mut actor, msg(9, "once"), &mut rec);
    assert_eq!(actor.seen.len(), 2);
    assert!(rec.sent.is_empty());
}

#[test]
fn panics_count_as_failures() {
    let (mut cell, mut actor, mut rec) = (cell(1, addr(0)), Probe::default(), Recorder::default());
    cell.handle(&mut actor, msg(9, "panic"), &mut rec);
    let poison = rec.sent_to(&addr(9))[0]
        .get::<PoisonMessage>()
        .unwrap()
        .clone();
    assert!(
        poison.details.contains("probe panicked"),
        "{}",
        poison.details
    );
}

#[test]
fn poison_never_wraps_poison() {
    #[derive(Default)]
    struct AlwaysFails;
    impl Actor for AlwaysFails {
        fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
            Err("no".into())
        }
    }
    let mut cell = ActorCell::new(
        addr(1),
        addr(0),
        ActorSpec::of::<AlwaysFails>(),
        Requirements::new(),
        None,
    );
    let mut rec = Recorder::default();
    let poison = PoisonMessage::new(Payload::new("x".to_owned()), "earlier");
    cell.handle(
        &mut AlwaysFails,
        Envelope::new(addr(9), Payload::new(poison)),
        &mut rec,
    );
    assert!(rec.sent.is_empty());
}

#[test]
fn exit_without_children_notifies_the_parent_even_if_the_handler_fails() {
    let (mut cell, mut actor, mut rec) = (cell(1, addr(5)), Probe::default(), Recorder::default());
    let state = cell.handle(
        &mut actor,
        Envelope::new(addr(5), Payload::new(ActorExitRequest::new())),
        &mut rec,
    );
    assert_eq!(state, CellState::Exited);
    assert_eq!(
        actor.seen,
        ["thespian.ActorExitRequest"],
        "handler runs once, no retry"
    );
    assert_eq!(rec.exited, [addr(1)]);
    let notice = rec.sent_to(&addr(5));
    assert_eq!(
        notice[0].get::<ChildActorExited>().unwrap().child_address,
        addr(1)
    );
}

#[test]
fn top_level_exits_are_unremarked() {
    let (mut cell, mut actor, mut rec) = (
        cell(1, ActorAddress::admin(SYSTEM)),
        Probe::default(),
        Recorder::default(),
    );
    cell.handle(
        &mut actor,
        Envelope::new(addr(9), Payload::new(ActorExitRequest::new())),
        &mut rec,
    );
    assert!(rec.sent.is_empty());
    assert_eq!(rec.exited, [addr(1)]);
}

#[test]
fn recursive_exit_waits_for_every_child_then_exits() {
    let (mut cell, mut actor, mut rec) = (cell(1, addr(5)), Probe::default(), Recorder::default());
    cell.handle(&mut actor, msg(9, "spawn"), &mut rec);
    let children = cell.children().to_vec();
    assert_eq!(children.len(), 2);
    let state = cell.handle(
        &mut actor,
        Envelope::new(addr(5), Payload::new(ActorExitRequest::new())),
        &mut rec,
    );
    assert_eq!(state, CellState::Exiting);
    for child in &children {
        assert!(
            rec.sent_to(child)[0].has_type::<ActorExitRequest>(),
            "each child is asked to exit"
        );
    }
    assert!(rec.exited.is_empty(), "not before the children");
    // A user message while exiting becomes a dead letter; a repeated exit request is ignored.
    cell.handle(&mut actor, msg(9, "late"), &mut rec);
    assert_eq!(rec.dead.len(), 1);
    cell.handle(
        &mut actor,
        Envelope::new(addr(9), Payload::new(ActorExitRequest::new())),
        &mut rec,
    );
    let first = Envelope::new(
        children[0].clone(),
        Payload::new(ChildActorExited::new(children[0].clone())),
    );
    assert_eq!(cell.handle(&mut actor, first, &mut rec), CellState::Exiting);
    let second = Envelope::new(
        children[1].clone(),
        Payload::new(ChildActorExited::new(children[1].clone())),
    );
    assert_eq!(cell.handle(&mut actor, second, &mut rec), CellState::Exited);
    assert_eq!(
        actor
            .seen
            .iter()
            .filter(|s| s.ends_with("ChildActorExited"))
            .count(),
        2,
        "the handler sees each child's exit"
    );
    assert_eq!(
        rec.sent_to(&addr(5))
            .last()
            .unwrap()
            .get::<ChildActorExited>()
            .unwrap()
            .child_address,
        addr(1)
    );
}

#[test]
fn not_recursive_exit_orphans_the_children() {
    let (mut cell, mut rec) = (cell(1, addr(5)), Recorder::default());
    let mut actor = Probe {
        not_recursive: true,
        ..Probe::default()
    };
    cell.handle(&mut actor, msg(9, "spawn"), &mut rec);
    let before = rec.sent.len();
    let state = cell.handle(
        &mut actor,
        Envelope::new(addr(5), Payload::new(ActorExitRequest::new())),
        &mut rec,
    );
    assert_eq!(state, CellState::Exited);
    let exit_requests = rec.sent[before..]
        .iter()
        .filter(|(_, _, p)| p.has_type::<ActorExitRequest>())
        .count();
    assert_eq!(exit_requests, 0, "children keep running");
}

#[test]
fn wakeups_are_tracked_until_delivered_and_status_is_answered_by_the_framework() {
    let (mut cell, mut actor, mut rec) = (cell(1, addr(5)), Probe::default(), Recorder::default());
    cell.handle(&mut actor, msg(9, "wake"), &mut rec);
    assert_eq!(rec.wakeups, [(addr(1), Duration::from_millis(5))]);
    cell.handle(
        &mut actor,
        Envelope::new(addr(9), Payload::new(StatusRequest)),
        &mut rec,
    );
    let status = rec.sent_to(&addr(9))[0]
        .get::<ActorStatus>()
        .unwrap()
        .clone();
    assert_eq!(status.pending_wakeups, [Duration::from_millis(5)]);
    assert_eq!(status.parent_address, addr(5));
    assert!(
        !actor.seen.iter().any(|s| s.contains("StatusRequest")),
        "never given to receive"
    );
    let wakeup = WakeupMessage::new(Duration::from_millis(5), None);
    cell.handle(
        &mut actor,
        Envelope::new(addr(1), Payload::new(wakeup)),
        &mut rec,
    );
    cell.handle(
        &mut actor,
        Envelope::new(addr(9), Payload::new(StatusRequest)),
        &mut rec,
    );
    let status = rec.sent_to(&addr(9))[1]
        .get::<ActorStatus>()
        .unwrap()
        .clone();
    assert!(status.pending_wakeups.is_empty());
}

#[test]
fn context_calls_a_base_cannot_serve_are_errors() {
    #[derive(Default)]
    struct Asker(Vec<ThespianError>);
    impl Actor for Asker {
        fn receive(&mut self, _: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
            self.0
                .extend(ctx.notify_on_system_registration_changes(true).err());
            self.0.extend(ctx.watch(&[0]).err());
            self.0.extend(ctx.load_actor_source(vec![1], None).err());
            Ok(())
        }
    }
    let mut cell = ActorCell::new(
        addr(1),
        addr(0),
        ActorSpec::of::<Asker>(),
        Requirements::new(),
        None,
    );
    let mut actor = Asker::default();
    cell.handle(&mut actor, msg(9, "go"), &mut Recorder::default());
    assert_eq!(actor.0.len(), 3);
    assert!(actor.0.iter().all(|e| matches!(
        e,
        ThespianError::NotSupported {
            base: "recorder",
            ..
        }
    )));
}

#[test]
fn create_options_reach_the_base_with_the_actor_type() {
    #[derive(Default)]
    struct Creator;
    impl Actor for Creator {
        fn receive(&mut self, _: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
            let options = CreateOptions::new()
                .requirement("Size", 3i64)
                .global_name("keeper")
                .source_hash("abc");
            ctx.create_actor_with::<Probe>(options)?;
            Ok(())
        }
    }
    let mut cell = ActorCell::new(
        addr(1),
        addr(0),
        ActorSpec::of::<Creator>(),
        Requirements::new(),
        None,
    );
    let mut rec = Recorder::default();
    cell.handle(&mut Creator, msg(9, "go"), &mut rec);
    let [request] = rec.created.as_slice() else {
        panic!("expected one create, got {}", rec.created.len());
    };
    assert_eq!(
        request.spec.type_name(),
        ActorSpec::of::<Probe>().type_name()
    );
    assert_eq!(
        request.requirements.get("Size"),
        Some(&CapabilityValue::Int(3))
    );
    assert_eq!(request.global_name.as_deref(), Some("keeper"));
    assert_eq!(request.source_hash.as_deref(), Some("abc"));
}

#[test]
fn context_checks_a_capability_update_before_the_base_sees_it() {
    #[derive(Default)]
    struct Updater(Vec<ThespianError>);
    impl Actor for Updater {
        fn receive(&mut self, _: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
            let secret = thespian_core::keys::SECRET_FILE;
            let port = thespian_core::keys::ADMIN_PORT;
            self.0.extend(ctx.update_capability(secret, None).err());
            self.0
                .extend(ctx.update_capability(port, Some("1900".into())).err());
            self.0
                .extend(ctx.update_capability(port, Some(1900i64.into())).err());
            Ok(())
        }
    }
    let mut cell = ActorCell::new(
        addr(1),
        addr(0),
        ActorSpec::of::<Updater>(),
        Requirements::new(),
        None,
    );
    let (mut actor, mut rec) = (Updater::default(), Recorder::default());
    cell.handle(&mut actor, msg(9, "go"), &mut rec);
    assert_eq!(actor.0.len(), 2, "{:?}", actor.0);
    assert!(actor
        .0
        .iter()
        .all(|e| matches!(e, ThespianError::Capability(_))));
    assert_eq!(rec.updated, [thespian_core::keys::ADMIN_PORT]);
}
