//! Fuzzes the admin machine (`thespian-admin`) as peers drive it: a sequence of admin-protocol
//! and system messages with arbitrary bytes, from arbitrary senders, interleaved with launch
//! reports, host exits and the passing of time. Nothing may panic the machine, and no type
//! name it is given may resolve to anything but the one registered type.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use thespian_admin::protocol::CreateFailure;
use thespian_admin::{Action, Admin, AdminConfig, LaunchTicket};
use thespian_core::{
    Actor, ActorAddress, ActorResult, ActorSpec, Capabilities, Context, Envelope, Payload, SystemId,
};

/// The only actor type the fuzzed admin's "executable" registers.
#[derive(Default)]
struct Registered;

impl Actor for Registered {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
}

/// The wire names a peer may put on a message to the admin.
const NAMES: &[&str] = &[
    "thespian.admin.Hello",
    "thespian.admin.CreateActor",
    "thespian.admin.ActorStarted",
    "thespian.admin.ActorFailedToStart",
    "thespian.admin.ActorExited",
    "thespian.admin.DeadLetter",
    "thespian.admin.HandleDeadLetters",
    "thespian.admin.UpdateCapability",
    "thespian.admin.ShutdownSystem",
    "thespian.admin.LogRecord",
    "thespian.admin.SetLogLevel",
    "thespian.admin.WatchConvention",
    "thespian.admin.PreRegisterRemote",
    "thespian.admin.DeRegisterRemote",
    "thespian.convention.RemoteCreate",
    "thespian.StatusRequest",
    "thespian.ActorExitRequest",
    "thespian.ChildActorExited",
    "thespian.PoisonMessage",
    "app.Unknown",
];

fuzz_target!(|data: &[u8]| {
    let system = SystemId::from_raw(7);
    let admin_address = ActorAddress::admin(system);
    let mut admin = Admin::new(
        AdminConfig {
            admin: admin_address.clone(),
            admin_pid: 1,
            base_name: "multiprocTCPBase",
            capabilities: Capabilities::new(),
            thread_mode: data.first().is_some_and(|b| b & 1 == 1),
            shutdown_grace: Duration::from_secs(1),
            remote_placement: data.first().is_some_and(|b| b & 2 == 2),
        },
        Box::new(|name: &str| {
            let spec = ActorSpec::of::<Registered>();
            if name == spec.type_name() {
                Ok(spec)
            } else {
                Err(format!("{name:?} is not registered"))
            }
        }),
    );
    let mut now = Instant::now();
    let mut tickets: Vec<LaunchTicket> = Vec::new();
    let mut next_host = 100u64;
    // Each step: a selector byte, a sender byte, a length byte, then that many payload bytes.
    let mut rest = data;
    while let [selector, sender_byte, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        let sender = ActorAddress::new(system, u64::from(*sender_byte % 8) + 1);
        match *selector as usize % (NAMES.len() + 3) {
            i if i < NAMES.len() => {
                let payload = Payload::from_wire(NAMES[i], bytes.to_vec());
                admin.handle(now, Envelope::new(sender, payload));
            }
            i if i == NAMES.len() => {
                if let Some(ticket) = tickets.pop() {
                    next_host += 1;
                    let address = ActorAddress::new(system, next_host << 16 | 1);
                    let result = if bytes.is_empty() {
                        Err("the launch failed".to_owned())
                    } else {
                        Ok((address, next_host))
                    };
                    admin.launched(now, ticket, result);
                }
            }
            i if i == NAMES.len() + 1 => {
                admin.host_exited(now, 100 + u64::from(*sender_byte), "gone")
            }
            _ => {
                now += Duration::from_millis(u64::from(*sender_byte) * 50);
                admin.handle_timeout(now);
            }
        }
        let mut elsewhere = Vec::new();
        while let Some(action) = admin.poll_action() {
            match action {
                Action::Launch { ticket, launch, .. } => {
                    assert_eq!(
                        launch.spec.type_name(),
                        ActorSpec::of::<Registered>().type_name()
                    );
                    tickets.push(ticket);
                }
                Action::PlaceElsewhere {
                    requester,
                    create,
                    unmet,
                } => {
                    elsewhere.push((requester, create.type_name, unmet));
                }
                _ => {}
            }
        }
        // What another system was asked for is answered: no system fits.
        for (requester, actor_type, unmet) in elsewhere {
            let failure = CreateFailure::NoCompatibleSystem { actor_type, unmet };
            admin.placed_elsewhere(requester, Err(failure));
        }
    }
});
