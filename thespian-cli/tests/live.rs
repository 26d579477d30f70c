//! The `thespian` command against live systems: a Tcp and a Udp system started by this test
//! binary on free Admin Ports (port 0: the OS chooses), each with its own secret file in a
//! temporary folder, then every subcommand run as the built binary and its output checked; the
//! interactive shell and `top` driven through a pseudo-terminal; `top` rendered once into a
//! ratatui test buffer.
//!
//! Every wait has a deadline, every command run is killed if it outlives its deadline, and every
//! system is shut down when its test ends (also when it fails).

#[path = "../../thespian/tests/support/held_port.rs"]
mod held_port;
use held_port::held_tcp_port;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use thespian::prelude::*;
use thespian::{keys, ActorStatus, SystemStatus};
use thespian_cli::args::Attach;
use thespian_cli::top::{self, TopView};
use thespian_cli::Session;

thespian::test_entry_point!();

/// How long one run of the command may take.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// How long a pseudo-terminal session waits for each expected text.
const PTY_TIMEOUT_MS: u64 = 30_000;

/// Answers any text with `echo: <text>`, but fails on `fail` (its sender gets the poison).
#[derive(Default)]
struct Echo;

impl Actor for Echo {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(text) = env.get::<String>() {
            if text == "fail" {
                return Err("asked to fail".into());
            }
            ctx.send(env.sender(), format!("echo: {text}"))?;
        }
        Ok(())
    }

    fn type_name() -> &'static str {
        "cli_test.Echo"
    }
}

thespian::register_actors!(Echo);

/// A live system of this test, shut down when dropped.
struct Daemon {
    sys: ActorSystem,
    port: u16,
    udp: bool,
    secret: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.sys.shutdown();
    }
}

/// Writes a new random secret file (owner-only) into `dir`.
fn secret_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    // 64 hex digits, as the default secret file holds (the file's text is trimmed).
    let mut text = String::with_capacity(64);
    for i in 0..4u64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(i);
        hasher.write_u32(std::process::id());
        text.push_str(&format!("{:016x}", hasher.finish()));
    }
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .expect("a secret file");
    file.write_all(text.as_bytes()).expect("the secret written");
    path
}

/// Starts a system of `base` on a free Admin Port with its own secret, and two echo actors:
/// one under the global name `echo`, one without a name.
fn daemon(base: SystemBase, thread_mode: bool) -> (Daemon, ActorAddress) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let secret = secret_file(dir.path(), "secret");
    let sys = ActorSystem::builder()
        .base(base)
        .capability(keys::ADMIN_PORT, 0i64)
        .capability(keys::SECRET_FILE, secret.display().to_string())
        .capability(
            keys::PROCESS_STARTUP_METHOD,
            if thread_mode { "thread" } else { "spawn" },
        )
        .transient_unique(true)
        .test_entry_point()
        .register::<Echo>()
        .start()
        .expect("the system starts");
    let port = sys
        .admin_port()
        .expect("a multi-process system has an Admin Port");
    assert_ne!(port, 0, "the OS chose a port");
    let daemon = Daemon {
        sys,
        port,
        udp: base == SystemBase::Udp,
        secret,
        _dir: dir,
    };
    daemon
        .sys
        .create_actor_with::<Echo>(CreateOptions::new().global_name("echo"))
        .expect("the named echo");
    let other = daemon.sys.create_actor::<Echo>().expect("the other echo");
    (daemon, other)
}

/// What one run of the command gave.
#[derive(Debug)]
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// The command line for `daemon`, before the subcommand.
fn thespian(daemon: &Daemon) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_thespian"));
    command
        .arg("--port")
        .arg(daemon.port.to_string())
        .arg("--secret-file")
        .arg(&daemon.secret)
        .env_remove("THESPIAN_SECRET_FILE");
    if daemon.udp {
        command.arg("--udp");
    }
    command
}

/// Runs `command` to its end (killed past [`RUN_DEADLINE`]): a waiter thread collects its
/// output and exit, and the test waits for that, at most the deadline.
fn run(mut command: Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let pid = child.id();
    let (done_tx, done) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let output = match done.recv_timeout(RUN_DEADLINE) {
        Ok(output) => output.expect("the command is waited for"),
        Err(_) => {
            let pid = libc::pid_t::try_from(pid).expect("a pid");
            // SAFETY: `kill` takes no pointers; `pid` is our child, which the waiter thread
            // has not reaped (it has not answered), so the pid still names that process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // The waiter then reaps it and reports; waited for with a deadline too, since a
            // joined thread could block without end if something still held the pipes.
            let _ = done.recv_timeout(Duration::from_secs(10));
            panic!("the command ran past {RUN_DEADLINE:?}: {command:?}");
        }
    };
    let _ = waiter.join();
    Output {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs a subcommand on `daemon` and expects it to succeed.
fn ok(daemon: &Daemon, args: &[&str]) -> String {
    let mut command = thespian(daemon);
    command.args(args);
    let output = run(command);
    assert!(
        output.ok,
        "`thespian {}` failed: {output:?}",
        args.join(" ")
    );
    output.stdout
}

/// Runs a subcommand on `daemon` and expects it to fail; returns its error text.
fn fails(daemon: &Daemon, args: &[&str]) -> String {
    let mut command = thespian(daemon);
    command.args(args);
    let output = run(command);
    assert!(
        !output.ok,
        "`thespian {}` succeeded: {output:?}",
        args.join(" ")
    );
    output.stderr
}

/// Waits (bounded) until the system has `n` actors. Each attempt is a full status round trip
/// to the admin (which itself waits for the actors' nodes), never a sleep.
fn wait_for_actors(daemon: &Daemon, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = daemon.sys.status(Duration::from_secs(5)).expect("a status");
        if status.actors.len() == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {} actors, not {n}",
            status.actors.len()
        );
    }
}

/// Every subcommand (but the interactive ones) against one live system.
fn every_subcommand(base: SystemBase, thread_mode: bool, base_name: &str) {
    let (daemon, other) = daemon(base, thread_mode);

    let status = ok(&daemon, &["status"]);
    assert!(status.contains(base_name), "{status}");
    assert!(status.contains("actors:       2"), "{status}");
    assert!(status.contains("cli_test.Echo  name:echo"), "{status}");
    assert!(status.contains("poison:       0"), "{status}");
    assert!(
        status.contains("pending:      0"),
        "the admin asks each actor's node for its mailbox depth: {status}"
    );

    let json: SystemStatus =
        serde_json::from_str(&ok(&daemon, &["status", "--json"])).expect("status JSON");
    assert_eq!(json.base, base_name);
    assert_eq!(json.actors.len(), 2);
    assert_eq!(json.processes, if thread_mode { 1 } else { 3 });
    assert!(json.actors.iter().all(|a| a.pid.is_some()));
    assert!(json.global_actors.iter().any(|(name, _)| name == "echo"));
    assert_eq!(json.poison_messages, 0);
    assert_eq!(json.pending_messages, Some(0));
    assert_eq!(json.pending_unanswered, 0, "every actor answered");

    let actors = ok(&daemon, &["actors"]);
    assert!(actors.starts_with("2 actors\n"), "{actors}");
    assert!(actors.contains("#2"), "{actors}");
    assert!(actors.contains("handled"), "{actors}");
    let tree = ok(&daemon, &["actors", "--tree"]);
    assert!(tree.contains(&other.to_string()), "{tree}");
    let statuses: Vec<ActorStatus> =
        serde_json::from_str(&ok(&daemon, &["actors", "--json"])).expect("actors JSON");
    assert_eq!(statuses.len(), 2);
    assert!(statuses.iter().all(|s| s.actor_type == "cli_test.Echo"));

    let reply = ok(&daemon, &["ask", "name:echo", "hi", "there"]);
    assert!(reply.contains("(String): \"echo: hi there\""), "{reply}");
    let reply = ok(&daemon, &["ask", "#2", "second", "--timeout", "10s"]);
    assert!(reply.contains("echo: second"), "{reply}");
    // A message its actor fails on twice comes back as poison, and the system counts it (the
    // actor's notice to the admin travels another connection than the reply: asked again).
    let poisoned = ok(&daemon, &["ask", "name:echo", "fail"]);
    assert!(poisoned.contains("PoisonMessage"), "{poisoned}");
    let counted = (0..50).any(|_| {
        let json: SystemStatus =
            serde_json::from_str(&ok(&daemon, &["status", "--json"])).expect("status JSON");
        json.poison_messages == 1
    });
    assert!(counted, "the poison was never counted");
    let told = ok(&daemon, &["tell", &other.to_string(), "hello"]);
    assert!(told.starts_with("told "), "{told}");
    // Both actors have handled a message now: their last activity is known.
    let statuses: Vec<ActorStatus> =
        serde_json::from_str(&ok(&daemon, &["actors", "--json"])).expect("actors JSON");
    let named = json.global_actors[0].1.clone();
    let of_named = statuses
        .iter()
        .find(|s| s.actor_address == named)
        .expect("the named echo's status");
    assert!(of_named.received_messages >= 1, "{of_named:?}");
    assert!(of_named.idle_for.is_some(), "{of_named:?}");
    assert_eq!(of_named.failures, 2, "two attempts at `fail`");
    let listing = ok(&daemon, &["actors"]);
    assert!(listing.contains("  idle "), "{listing}");

    let error = fails(&daemon, &["ask", "name:nobody", "hi"]);
    assert!(error.contains("no actor has the global name"), "{error}");
    let error = fails(&daemon, &["tell", "greeter", "hi"]);
    assert!(error.contains("is not an actor"), "{error}");
    let made_up = ActorAddress::new(other.system(), other.id().wrapping_add(1_000_000));
    let error = fails(&daemon, &["kill", &made_up.to_string()]);
    assert!(error.contains("is not an actor of this system"), "{error}");

    let killed = ok(&daemon, &["kill", &other.to_string()]);
    assert!(killed.contains("asked"), "{killed}");
    wait_for_actors(&daemon, 1);

    let level = ok(&daemon, &["log-level", "info"]);
    assert!(level.starts_with("admin log level: info (was "), "{level}");
    let error = fails(&daemon, &["log-level", "loud"]);
    assert!(error.contains("is not a log level"), "{error}");

    // Another secret: refused by the admin's authentication, and said so.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let wrong = secret_file(dir.path(), "other");
    let mut command = Command::new(env!("CARGO_BIN_EXE_thespian"));
    command
        .args(["--port", &daemon.port.to_string(), "--secret-file"])
        .arg(&wrong)
        .args(if daemon.udp {
            &["--udp", "status"][..]
        } else {
            &["status"][..]
        });
    let output = run(command);
    assert!(!output.ok, "{output:?}");
    assert!(output.stderr.contains("another secret"), "{output:?}");

    let bye = ok(&daemon, &["shutdown"]);
    assert!(bye.contains("shut down"), "{bye}");
    let error = fails(&daemon, &["status"]);
    assert!(error.contains("nothing listens"), "{error}");
}

#[test]
fn every_subcommand_on_tcp() {
    every_subcommand(SystemBase::Tcp, false, "multiprocTCPBase");
}

#[test]
fn every_subcommand_on_udp() {
    every_subcommand(SystemBase::Udp, true, "multiprocUDPBase");
}

#[test]
fn nothing_listening_is_a_clear_error() {
    let (held, port) = held_tcp_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_thespian"));
    command.args(["--port", &port.to_string(), "status"]);
    let output = run(command);
    assert!(!output.ok, "{output:?}");
    assert!(
        output.stderr.contains(&format!(
            "cannot attach to the actor system on TCP port {port}"
        )) && output.stderr.contains("nothing listens"),
        "{output:?}"
    );
    drop(held);
}

/// One session of the interactive shell in a pseudo-terminal: attach, status, ask, quit.
#[test]
fn the_shell_in_a_terminal() {
    let (daemon, _other) = daemon(SystemBase::Tcp, true);
    let mut session =
        rexpect::session::spawn_command(thespian(&daemon), Some(PTY_TIMEOUT_MS)).expect("a pty");
    session
        .exp_string("Attached to the actor system")
        .expect("attached");
    session.exp_string("thespian> ").expect("a prompt");
    session.send_line("status").expect("typed");
    session.exp_string("name:echo").expect("the status");
    session.exp_string("thespian> ").expect("a prompt");
    session.send_line("ask #1 from the shell").expect("typed");
    session
        .exp_string("echo: from the shell")
        .expect("the reply");
    session.exp_string("thespian> ").expect("a prompt");
    session.send_line("ask #9 hi").expect("typed");
    session
        .exp_string("error: there is no #9")
        .expect("an error");
    session.exp_string("thespian> ").expect("a prompt");
    session.send_line("quit").expect("typed");
    session.exp_eof().expect("the shell ends");
}

/// `top` in a pseudo-terminal: it draws its view, and `q` quits.
#[test]
fn top_in_a_terminal_quits_on_q() {
    let (daemon, _other) = daemon(SystemBase::Tcp, true);
    // A pseudo-terminal starts with no size: give it one before `top` draws.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("stty cols 100 rows 30 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_thespian"))
        .args(["--port", &daemon.port.to_string(), "--secret-file"])
        .arg(&daemon.secret)
        .args(["top", "--interval", "100ms"]);
    let mut session =
        rexpect::session::spawn_command(command, Some(PTY_TIMEOUT_MS)).expect("a pty");
    // Words are drawn apart (the cursor jumps over blanks): expect one word of the view.
    session.exp_string("messages/s").expect("the view");
    session.send("q").expect("typed");
    session.flush().expect("sent");
    session.exp_eof().expect("top ends");
}

/// `top`'s view of a live system, rendered once into a test buffer.
#[test]
fn top_renders_its_rows() {
    let (daemon, _other) = daemon(SystemBase::Udp, true);
    let session = Session::attach(&Attach {
        port: Some(daemon.port),
        udp: true,
        secret_file: Some(daemon.secret.clone()),
    })
    .expect("attached");
    let first = top::sample(&session).expect("a sample");
    let named = first
        .system
        .global_actors
        .first()
        .map(|(_, a)| a.clone())
        .expect("the named echo");
    daemon
        .sys
        .ask(&named, "one", Duration::from_secs(10))
        .expect("asked")
        .expect("a reply");
    let second = top::sample(&session).expect("a sample");
    let view = TopView::from_samples(" top ", Some(&first), &second);
    assert_eq!(view.actors, 2);
    assert_eq!(view.types.len(), 1);
    assert_eq!(view.types[0].actors, 2);
    assert_eq!(view.processes.len(), 1, "thread mode: the admin's process");
    let mut terminal = Terminal::new(TestBackend::new(100, 20)).expect("a terminal");
    terminal
        .draw(|frame| top::render(frame, &view))
        .expect("drawn");
    let buffer = terminal.backend().buffer();
    let rows: Vec<String> = (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect();
    let screen = rows.join("\n");
    assert!(screen.contains("actors 2"), "{screen}");
    assert!(screen.contains("pending 0"), "{screen}");
    assert!(screen.contains("poison 0"), "{screen}");
    assert!(screen.contains("Actors by type"), "{screen}");
    assert!(
        rows.iter()
            .any(|r| r.contains("cli_test.Echo") && r.contains(" 2 ")),
        "{screen}"
    );
    let pid = view.processes[0].pid.to_string();
    assert!(rows.iter().any(|r| r.contains(&pid)), "{screen}");
    assert!(screen.contains("Convention members"), "{screen}");
}
