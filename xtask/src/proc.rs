//! Running one bench process: its own process group, a time limit, captured output, and no
//! process left behind. Python's multiprocQueueBase forks one process per actor and runs its
//! admin as a daemon in a session of its own, out of the process group; so every bench process
//! also carries a unique token in its environment, which its descendants inherit, and whatever
//! still carries the token when the run is over is killed.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Name of the environment variable carrying a run's token.
pub(crate) const TOKEN_VAR: &str = "XTASK_BENCH_RUN";

/// What a finished (or killed) bench process left.
pub(crate) struct Finished {
    /// Exit status text, e.g. `exit status: 0`.
    pub(crate) status: String,
    /// True when the exit status was 0.
    pub(crate) success: bool,
    /// True when the time limit killed it.
    pub(crate) timed_out: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

extern "C" {
    /// POSIX `kill(2)`.
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// Sends SIGKILL to every process of group `pgid` (a group this harness created).
fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names the process
    // group, which is the one created for our own child (its pid), never our own group.
    unsafe {
        kill(-pgid, SIGKILL);
    }
}

/// A token no other run of this harness (or any other process) carries.
pub(crate) fn new_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The processes whose environment holds `TOKEN_VAR=token`: descendants of one bench run.
pub(crate) fn carriers(token: &str) -> Vec<i32> {
    let needle = format!("{TOKEN_VAR}={token}");
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
        })
        .collect()
}

/// Kills every process still carrying `token` (and waits a little until none is left).
pub(crate) fn kill_carriers(token: &str) {
    for _ in 0..50 {
        let left = carriers(token);
        if left.is_empty() {
            return;
        }
        for pid in left {
            // SAFETY: as in `kill_group`; `pid` is a process started by this run.
            unsafe {
                kill(pid, SIGKILL);
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Joins a pipe reader, giving up after `patience` (a straggler may hold the pipe open).
fn collect(reader: Option<mpsc::Receiver<String>>, patience: Duration) -> String {
    reader
        .and_then(|rx| rx.recv_timeout(patience).ok())
        .unwrap_or_default()
}

/// Runs `command` in a new process group with `limit`, capturing stdout and stderr. Whatever
/// happens, every process left in the group is killed and the child is reaped.
pub(crate) fn run(mut command: Command, limit: Duration) -> Result<Finished, String> {
    let token = new_token();
    command
        .env(TOKEN_VAR, &token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
    let pgid = child.id();
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        pipe.map(|mut pipe| {
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
            });
            rx
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let waited = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                kill_group(pgid);
                let _ = child.kill();
                break child.wait();
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                kill_group(pgid);
                let _ = child.kill();
                let _ = child.wait();
                break Err(e);
            }
        }
    };
    // Stragglers (processes forked by the child, daemons in sessions of their own) would
    // outlive the run and hold the pipes open: end them all.
    kill_group(pgid);
    kill_carriers(&token);
    let status = waited.map_err(|e| format!("cannot wait for bench process: {e}"))?;
    let stdout = collect(out, Duration::from_secs(5));
    let stderr = collect(err, Duration::from_secs(5));
    Ok(Finished {
        status: status.to_string(),
        success: status.success(),
        timed_out,
        stdout,
        stderr,
    })
}
