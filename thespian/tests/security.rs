//! The trust boundary of the multi-process bases, tried as an attacker on the same host would:
//! one test per attack, each of which succeeded before the boundary existed.
//!
//! - a program with another secret, or a peer with none, gets nothing in;
//! - an authenticated peer cannot make the admin run a program or call a forged function;
//! - a lost admin fails a waiting `ask` at once (in `multiprocess.rs`:
//!   `kill_9_of_the_admin_fails_a_waiting_ask_at_once_*`).
//!
//! The other attacks are tested where they land (all run by `cargo test`):
//! - TCP (`thespian-transport-tcp/tests/loopback.rs`): `a_wrong_secret_fails_fast_with_the_error_on_both_endpoints`,
//!   `a_raw_client_without_the_secret_gets_nothing_delivered`,
//!   `a_frame_trickled_after_the_handshake_is_closed_by_its_deadline` (slowloris),
//!   `eight_peers_announcing_64_mib_frames_stay_within_the_buffer_bound`,
//!   `an_overloaded_endpoint_says_so_and_is_told_apart_from_other_refusals`; and in `emfile.rs`,
//!   a half-open flood under descriptor exhaustion closes unauthenticated sockets first;
//! - UDP (`thespian-transport-udp/tests/loopback.rs`):
//!   `endpoints_with_different_secrets_fail_fast_with_the_authentication_error`,
//!   `spoofed_datagrams_change_nothing_in_a_live_session`;
//! - the Queue base's flood bound: `queue_concurrency.rs`;
//! - forged, replayed and reordered frames and datagrams: the machines' own tests.
//!
//! Rules as in `multiprocess.rs`: loopback only, an Admin Port per system, every wait bounded,
//! every process killed when the test ends.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{keys, ActorSystemBuilder, LogConfig, Requirements, ThespianError};
use thespian_admin::protocol::{CreateActor, CreateFailure, CreateReply, UpdateCapability};

thespian::test_entry_point!();

mod support;
use support::{admin_port, random_u64};

/// How long to wait for a reply that must come.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers every `String` with the same text.
#[derive(Default)]
struct Echo;

impl Actor for Echo {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(text) = env.get::<String>() {
            ctx.send(env.sender(), text.clone())?;
        }
        Ok(())
    }
}

/// Asks the relay to send the admin a raw `CreateActor` for this type name.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Forge(String);

/// What the admin answered the relay.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Answered(CreateReply);

/// Asks the relay to send the admin a raw `UpdateCapability` of the secret file.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RawUpdate(CapabilityValue);

thespian::message!(
    Forge = "security.Forge",
    Answered = "security.Answered",
    RawUpdate = "security.RawUpdate"
);

/// An actor inside the system, holding the secret like any process of it, that speaks the
/// admin protocol directly: the strongest position an attacker with the secret can take.
#[derive(Default)]
struct Relay {
    asker: Option<ActorAddress>,
}

impl Actor for Relay {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(Forge(type_name)) = env.get::<Forge>() {
            self.asker = Some(env.sender().clone());
            let request = CreateActor {
                parent: ctx.my_address().clone(),
                type_name: type_name.clone(),
                requirements: Requirements::new(),
                global_name: None,
                wait_until_started: true,
                remote: None,
            };
            ctx.send(&ctx.admin_address(), request)?;
        } else if let Ok(RawUpdate(value)) = env.get::<RawUpdate>() {
            let update = UpdateCapability {
                name: "Thespian Secret File".into(),
                value: Some(value.clone()),
            };
            ctx.send(&ctx.admin_address(), update)?;
        } else if let Ok(reply) = env.get::<CreateReply>() {
            if let Some(asker) = self.asker.take() {
                ctx.send(&asker, Answered(reply.clone()))?;
            }
        }
        Ok(())
    }
}

/// Answers any message with whether its process still has the role variables in its
/// environment.
#[derive(Default)]
struct EnvProbe;

impl Actor for EnvProbe {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        let leaked = ["THESPIAN_ROLE", "THESPIAN_ROLE_CONFIG"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        ctx.send(env.sender(), leaked)?;
        Ok(())
    }
}

thespian::register_actors!(Echo, Relay, EnvProbe);

/// A folder for one test's files, removed when it ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "thespian-security-{name}-{}-{:x}",
            std::process::id(),
            random_u64()
        ));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }

    /// A new secret file (mode 0600) holding a random secret.
    fn secret_file(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("secret file");
        writeln!(file, "{:016x}{:016x}", random_u64(), random_u64()).expect("written");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn builder(base: SystemBase, port: u16, startup: &str, secret: &Path) -> ActorSystemBuilder {
    ActorSystem::builder()
        .base(base)
        .transient_unique(true)
        .log(LogConfig::Untouched)
        .capability(keys::ADMIN_PORT, i64::from(port))
        .capability(keys::PROCESS_STARTUP_METHOD, startup)
        .capability(
            "Thespian Secret File",
            secret.to_string_lossy().into_owned(),
        )
        .advertise_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .test_entry_point()
}

/// A started system, shut down when the test ends.
struct System(ActorSystem);

impl Drop for System {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// A system on a secret of its own, and the folder that holds the secret (removed after the
/// system is shut down: fields drop in order).
struct Started {
    sys: System,
    scratch: Scratch,
}

/// Starts a system of `base` with a new secret in a scratch folder named after the test.
fn start_system(name: &str, base: SystemBase, startup: &str) -> Started {
    let scratch = Scratch::new(name);
    let secret = scratch.secret_file("secret");
    let sys = System(
        builder(base, admin_port(), startup, &secret)
            .start()
            .expect("the system starts"),
    );
    Started { sys, scratch }
}

/// The system answers: a new actor is created and echoes.
fn assert_alive(sys: &ActorSystem) {
    let echo = sys
        .create_actor::<Echo>()
        .expect("a create after the attack");
    let reply = sys
        .ask(&echo, "still here".to_owned(), REPLY_TIMEOUT)
        .expect("ask")
        .expect("an answer after the attack");
    assert_eq!(reply.get::<String>().expect("a String"), "still here");
}

/// Has `relay` send the admin a raw `CreateActor` for `type_name`; the admin's answer.
fn raw_create(sys: &ActorSystem, relay: &ActorAddress, type_name: String) -> CreateReply {
    let reply = sys
        .ask(relay, Forge(type_name), REPLY_TIMEOUT)
        .expect("the request is sent")
        .expect("the admin answers");
    reply.take::<Answered>().expect("an Answered").0
}

/// The attack that made the admin run a shell: a create whose "type" is a command line. Now a
/// type is only ever a name looked up in the admin's own table.
fn an_authenticated_peer_cannot_make_the_admin_run_a_program(base: SystemBase, startup: &str) {
    let started = start_system("rce", base, startup);
    let (scratch, sys) = (&started.scratch, &started.sys);
    let relay = sys.0.create_actor::<Relay>().expect("the relay");
    let marker = scratch.0.join("owned");
    let command = format!("/bin/sh -c 'id > {}'", marker.display());
    for type_name in [
        command.clone(),
        "/bin/sh".to_owned(),
        std::env::current_exe()
            .expect("this test binary")
            .to_string_lossy()
            .into_owned(),
    ] {
        let reply = raw_create(&sys.0, &relay, type_name.clone());
        match reply.result {
            Err(CreateFailure::InvalidActorSpecification { spec, reason }) => {
                assert_eq!(spec, type_name);
                assert!(reason.contains("register_actors!"), "{reason}");
            }
            other => panic!("{type_name:?} was not refused: {other:?}"),
        }
    }
    assert!(!marker.exists(), "the admin ran the attacker's command");
    assert_alive(&sys.0);
}

#[test]
fn an_authenticated_peer_cannot_make_the_admin_run_a_program_tcp() {
    an_authenticated_peer_cannot_make_the_admin_run_a_program(SystemBase::Tcp, "spawn");
}

#[test]
fn an_authenticated_peer_cannot_make_the_admin_run_a_program_udp_thread() {
    an_authenticated_peer_cannot_make_the_admin_run_a_program(SystemBase::Udp, "thread");
}

/// The attack that crashed the admin with a forged function offset: now a forged type is a
/// name that matches nothing, whatever bytes it holds, and the admin goes on.
fn a_forged_type_is_refused_and_the_admin_lives(base: SystemBase, startup: &str) {
    let started = start_system("forged", base, startup);
    let sys = &started.sys;
    let relay = sys.0.create_actor::<Relay>().expect("the relay");
    let forged = [
        String::new(),
        "\0\u{1}\u{7f}".to_owned(),
        format!("{}::Echo", "x".repeat(4096)),
        // The registered name with one character changed.
        std::any::type_name::<Echo>().replace("Echo", "Ech0"),
    ];
    for type_name in forged {
        let reply = raw_create(&sys.0, &relay, type_name.clone());
        assert!(
            matches!(
                reply.result,
                Err(CreateFailure::InvalidActorSpecification { .. })
            ),
            "{type_name:?}: {:?}",
            reply.result
        );
    }
    assert_alive(&sys.0);
}

#[test]
fn a_forged_type_is_refused_and_the_admin_lives_tcp_thread() {
    a_forged_type_is_refused_and_the_admin_lives(SystemBase::Tcp, "thread");
}

#[test]
fn a_forged_type_is_refused_and_the_admin_lives_udp() {
    a_forged_type_is_refused_and_the_admin_lives(SystemBase::Udp, "spawn");
}

/// A program of the same user but with another secret: refused at once with the clear error;
/// the system it tried goes on.
fn a_program_with_another_secret_is_refused(base: SystemBase) {
    let scratch = Scratch::new("wrong-secret");
    let ours = scratch.secret_file("ours");
    let theirs = scratch.secret_file("theirs");
    let port = admin_port();
    let sys = System(
        builder(base, port, "spawn", &ours)
            .start()
            .expect("the system starts"),
    );
    let echo = sys.0.create_actor::<Echo>().expect("create");
    let intruder = builder(base, port, "spawn", &theirs).start();
    match intruder {
        Err(ThespianError::StartupFailure(text)) | Err(ThespianError::SystemFailure(text)) => {
            assert!(
                text.contains("authentication failed: this system uses another secret"),
                "{text}"
            );
        }
        Err(other) => panic!("refused, but not for the secret: {other}"),
        Ok(attached) => {
            let _ = attached.shutdown();
            panic!("a program with another secret attached");
        }
    }
    let reply = sys
        .0
        .ask(&echo, "after".to_owned(), REPLY_TIMEOUT)
        .expect("ask")
        .expect("the system still answers");
    assert_eq!(reply.get::<String>().expect("a String"), "after");
    assert_alive(&sys.0);
}

#[test]
fn a_program_with_another_secret_is_refused_tcp() {
    a_program_with_another_secret_is_refused(SystemBase::Tcp);
}

#[test]
fn a_program_with_another_secret_is_refused_udp() {
    a_program_with_another_secret_is_refused(SystemBase::Udp);
}

/// An unsafe secret file is a startup error naming the problem, before anything starts.
#[test]
fn a_secret_file_others_can_read_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("mode");
    let secret = scratch.secret_file("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = builder(SystemBase::Tcp, admin_port(), "spawn", &secret)
        .start()
        .expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("chmod 600"), "{text}");
}

/// The secret file cannot be pointed elsewhere while the system runs: not from outside, not by
/// an actor, not by a raw update to the admin; new actor processes still start.
#[test]
fn the_secret_file_cannot_be_changed_while_the_system_runs() {
    let started = start_system("fixed-secret", SystemBase::Tcp, "spawn");
    let sys = &started.sys;
    let elsewhere = CapabilityValue::Str("/nonexistent/secret".into());
    match sys
        .0
        .update_capability("Thespian Secret File", Some(elsewhere.clone()))
    {
        Err(ThespianError::Capability(refused)) => {
            assert!(refused.reason.contains("fixed"), "{refused}")
        }
        other => panic!("the update was not refused: {other:?}"),
    }
    let relay = sys.0.create_actor::<Relay>().expect("the relay");
    sys.0
        .tell(&relay, RawUpdate(elsewhere))
        .expect("the relay is told");
    assert_alive(&sys.0);
}

/// An actor process keeps no role variables: a program it starts is not taken for a process of
/// the system (it would take the actor's settings and stdin).
#[test]
fn an_actor_process_passes_no_role_to_its_children() {
    let started = start_system("role-env", SystemBase::Udp, "spawn");
    let sys = &started.sys;
    let probe = sys.0.create_actor::<EnvProbe>().expect("the probe");
    let leaked = sys
        .0
        .ask(&probe, "env?".to_owned(), REPLY_TIMEOUT)
        .expect("ask")
        .expect("the probe answers");
    assert!(
        !leaked.get::<bool>().expect("a bool"),
        "the role variables leaked"
    );
}
