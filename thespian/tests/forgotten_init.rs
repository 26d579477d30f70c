//! A program that forgets `thespian::init()` gets a clear error instead of a hang.
//!
//! This test binary has its own `main` (no test harness) and, on purpose, never calls
//! `thespian::init()`:
//! 1. starting a `Tcp` system fails at once with the error that says to call it;
//! 2. a copy of this program re-executed in the admin role (as a multi-process base starts its
//!    daemon) that reaches `start()` without taking its role prints that error and exits with
//!    code 2, so the program that started it is not left waiting.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use thespian::{keys, ActorSystem, LogConfig, SystemBase};

/// Set in the re-executed copy: run [`reexecuted`] instead of the checks.
const CHILD_ENV: &str = "THESPIAN_FORGOTTEN_INIT_CHILD";
/// What a multi-process base sets in the processes it starts (the role they should take).
const ROLE_ENV: &str = "THESPIAN_ROLE";
/// The bound on the re-executed copy's run: a failing run waits this long, a passing one not.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// A builder for a `Tcp` system on a free loopback port (nothing is started on it when the
/// check works).
fn tcp_builder() -> thespian::ActorSystemBuilder {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    ActorSystem::builder()
        .base(SystemBase::Tcp)
        .transient_unique(true)
        .log(LogConfig::Untouched)
        .capability(keys::ADMIN_PORT, i64::from(port))
        .advertise_ip(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The re-executed copy: reaches `start()` in a role it never took.
fn reexecuted() {
    let outcome = tcp_builder().start();
    // Not reached when the check works: the process exits inside start().
    if let Ok(sys) = outcome {
        let _ = sys.shutdown();
    }
    println!("start() returned in a re-executed process");
}

fn start_fails_at_once() {
    match tcp_builder().start() {
        Ok(sys) => {
            let _ = sys.shutdown();
            panic!("a Tcp system started in a program that never called thespian::init()");
        }
        Err(error) => {
            let text = error.to_string();
            assert!(text.contains("thespian::init() was never called"), "{text}");
            assert!(text.contains("#[thespian::main]"), "{text}");
        }
    }
}

fn a_reexecuted_process_exits_with_the_message() {
    let mut child = Command::new(std::env::current_exe().expect("this test's executable"))
        .env(CHILD_ENV, "1")
        .env(ROLE_ENV, "admin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the copy starts");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut err = String::new();
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut err);
        let _ = stdout.read_to_string(&mut out);
        let status = child.wait();
        let _ = tx.send((status, out, err));
    });
    let Ok((status, out, err)) = rx.recv_timeout(CHILD_TIMEOUT) else {
        // SAFETY: kill(2) on the pid of the child this test started and has not reaped (its
        // waiting thread is still blocked); no memory is involved.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("the re-executed copy did not exit within {CHILD_TIMEOUT:?}");
    };
    let status = status.expect("the copy's exit status");
    assert_eq!(status.code(), Some(2), "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains("thespian::init() was never called"),
        "stderr: {err}"
    );
    assert!(!out.contains("start() returned"), "stdout: {out}");
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        reexecuted();
        return;
    }
    start_fails_at_once();
    println!("test start_fails_at_once ... ok");
    a_reexecuted_process_exits_with_the_message();
    println!("test a_reexecuted_process_exits_with_the_message ... ok");
}
