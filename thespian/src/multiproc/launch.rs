//! How the processes of a multi-process system start: the roles a re-executed program takes,
//! and what each is told.
//!
//! A program becomes the admin daemon or an actor's process by being executed again with
//! `THESPIAN_ROLE` set; `thespian::init()` (the first line of `main`, or the entry-point test of
//! a test binary) sees the role and never returns to the program's own code. The role's
//! settings travel in `THESPIAN_ROLE_CONFIG` (postcard, hex) and, for a socket bound before the
//! process started, as its stdin.
//!
//! Each process executes only its own executable (`/proc/self/exe`: the very build that runs,
//! even if the file was rebuilt since) with arguments it chose itself: the starter starts the
//! admin with its own entry-point arguments, and the admin starts every actor process with the
//! arguments it was started with. Nothing a peer sends names a program, a path or an argument;
//! actor types travel by name and are looked up in the executable's own table.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thespian_core::{ActorAddress, Capabilities, Requirements, Result, SystemId, ThespianError};

use super::node::encode_id;
use super::transport::{BoundSocket, TransportKind};

/// The environment variable naming a re-executed process's role.
pub(crate) const ROLE_ENV: &str = "THESPIAN_ROLE";
/// The environment variable carrying the role's settings.
pub(crate) const CONFIG_ENV: &str = "THESPIAN_ROLE_CONFIG";

/// The test a test binary's re-executed processes enter through (see `test_entry_point!`).
pub(crate) const TEST_ENTRY: &str = "thespian_process_entry";

/// What the admin daemon is told.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AdminLaunch {
    pub(crate) kind: TransportKind,
    /// Complete capabilities (the common keys added).
    pub(crate) capabilities: Capabilities,
    /// The log filter of the admin's sink; `None`: the program left logging alone.
    pub(crate) log_filter: Option<String>,
    /// Actors run on threads of the admin's process.
    pub(crate) thread_mode: bool,
}

/// What an actor's process is told.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ActorLaunch {
    pub(crate) kind: TransportKind,
    pub(crate) incarnation: u64,
    pub(crate) address: ActorAddress,
    pub(crate) admin: ActorAddress,
    pub(crate) admin_socket: SocketAddr,
    pub(crate) admin_pid: u32,
    pub(crate) parent: ActorAddress,
    /// The actor type's registered name, looked up in the process's own table.
    pub(crate) type_name: String,
    pub(crate) requirements: Requirements,
    pub(crate) global_name: Option<String>,
    pub(crate) capabilities: Capabilities,
    /// The most verbose log level to forward to the admin (0: none).
    pub(crate) log_level: u8,
}

/// Encodes a role's settings for the environment.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<String> {
    let bytes = postcard::to_allocvec(value)
        .map_err(|e| ThespianError::StartupFailure(format!("encoding role settings: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Decodes a role's settings from the environment.
pub(crate) fn decode<T: DeserializeOwned>(text: &str) -> Result<T> {
    let bad = || ThespianError::StartupFailure("malformed THESPIAN_ROLE_CONFIG".into());
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    postcard::from_bytes(&bytes).map_err(|_| bad())
}

/// The executable this process runs: `/proc/self/exe` names the running build even after its
/// file was rebuilt over or removed; elsewhere, the path the program was started from.
fn own_executable() -> Result<PathBuf> {
    let proc_self = PathBuf::from("/proc/self/exe");
    if proc_self.exists() {
        return Ok(proc_self);
    }
    std::env::current_exe()
        .map_err(|e| ThespianError::StartupFailure(format!("cannot find this program: {e}")))
}

/// The arguments this process was started with (after the program name): for the admin, the
/// entry-point arguments its starter chose, which lead a re-executed copy into `init()`.
pub(crate) fn own_arguments() -> Vec<OsString> {
    std::env::args_os().skip(1).collect()
}

/// A fresh random incarnation.
pub(crate) fn new_incarnation() -> SystemId {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    SystemId::from_raw(hasher.finish().max(1))
}

/// Takes the socket this process was given as its stdin.
pub(crate) fn socket_from_stdin(kind: TransportKind) -> BoundSocket {
    // SAFETY: the process that started this one set fd 0 to a bound socket for it (the
    // admin's or this actor's) and nothing else in this process reads stdin: from here on the
    // descriptor belongs to the endpoint alone.
    let fd = unsafe { OwnedFd::from_raw_fd(0) };
    BoundSocket::from_fd(kind, fd)
}

/// The environment variable naming the file the admin daemon logs to when the starter's
/// stderr is not a terminal.
pub(crate) const LOG_FILE_ENV: &str = "THESPLOG_FILE";

/// Where the daemon's log sink writes: the starter's terminal (a newcomer sees the actors'
/// warnings), else the file `THESPLOG_FILE` names, else nowhere. Never a pipe the starter was
/// given: a daemon outliving its starter would hold it open, and whoever reads the pipe (a
/// `| tail`, a CI log) would wait for the daemon.
fn admin_log_destination(launch: &AdminLaunch) -> Result<Stdio> {
    use std::io::IsTerminal;
    if launch.log_filter.is_none() {
        return Ok(Stdio::null());
    }
    if std::io::stderr().is_terminal() {
        return Ok(Stdio::inherit());
    }
    match std::env::var_os(LOG_FILE_ENV) {
        Some(path) if !path.is_empty() => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map(Stdio::from)
            .map_err(|e| {
                ThespianError::StartupFailure(format!(
                    "cannot open the admin's log file {}: {e}",
                    path.to_string_lossy()
                ))
            }),
        _ => Ok(Stdio::null()),
    }
}

/// Starts the admin daemon on `socket` (already bound to the Admin Port): this program's own
/// executable, with the arguments that lead it into `init()` (`entry_args`, chosen here).
pub(crate) fn spawn_admin(
    entry_args: &[String],
    launch: &AdminLaunch,
    socket: BoundSocket,
) -> Result<Child> {
    let mut command = Command::new(own_executable()?);
    command
        .args(entry_args)
        .env(ROLE_ENV, "admin")
        .env(CONFIG_ENV, encode(launch)?)
        .stdin(Stdio::from(socket.into_fd()))
        .stdout(Stdio::null())
        .stderr(admin_log_destination(launch)?);
    command
        .spawn()
        .map_err(|e| ThespianError::StartupFailure(format!("cannot start the admin: {e}")))
}

/// Starts an actor's process: binds its socket first (so its address is known now), then runs
/// the admin's own executable with the admin's own arguments (`entry_args`) in the actor role.
/// Returns the actor's address and the process.
pub(crate) fn spawn_actor(
    kind: TransportKind,
    ip: IpAddr,
    entry_args: &[OsString],
    mut launch: ActorLaunch,
) -> std::result::Result<(ActorAddress, Child), String> {
    let executable = own_executable().map_err(|e| e.to_string())?;
    let socket = BoundSocket::bind(kind, SocketAddr::new(ip, 0))
        .map_err(|e| format!("cannot bind the actor's socket: {e}"))?;
    let local = match socket.local_addr() {
        Ok(SocketAddr::V4(v4)) => v4,
        other => return Err(format!("the actor's socket has no IPv4 address: {other:?}")),
    };
    let incarnation = new_incarnation();
    launch.incarnation = incarnation.raw();
    launch.address = ActorAddress::new(incarnation, encode_id(local, ACTOR_SLOT));
    let config = encode(&launch).map_err(|e| e.to_string())?;
    let child = Command::new(executable)
        .args(entry_args)
        .env(ROLE_ENV, "actor")
        .env(CONFIG_ENV, config)
        .stdin(Stdio::from(socket.into_fd()))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the actor's process: {e}"))?;
    Ok((launch.address, child))
}

/// The slot of the actor in its own process.
pub(crate) const ACTOR_SLOT: u16 = 1;

/// The role this process was started in, if any.
pub(crate) fn role() -> Option<(String, String)> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let config = std::env::var(CONFIG_ENV).unwrap_or_default();
    Some((role, config))
}

/// Runs the role this process was started in, if any; then exits the process.
pub(crate) fn enter_role_if_any() {
    let Some((role, config)) = role() else { return };
    let code = match role.as_str() {
        "admin" => match decode::<AdminLaunch>(&config) {
            Ok(launch) => super::admin_main::run(launch),
            Err(e) => {
                eprintln!("thespian admin: {e}");
                2
            }
        },
        "actor" => match decode::<ActorLaunch>(&config) {
            Ok(launch) => super::host::run_process(launch),
            Err(e) => {
                eprintln!("thespian actor process: {e}");
                2
            }
        },
        other => {
            eprintln!("thespian: unknown THESPIAN_ROLE {other:?}");
            2
        }
    };
    std::process::exit(code);
}
