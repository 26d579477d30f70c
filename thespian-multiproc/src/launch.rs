//! How the processes of a multi-process system are started: the admin daemon by the program,
//! each actor's process by the admin.
//!
//! Each process executes only its own executable (`/proc/self/exe`: the very build that runs,
//! even if the file was rebuilt since) with arguments it chose itself: the starter starts the
//! admin with its own entry-point arguments, and the admin starts every actor process with the
//! arguments it was started with. Nothing a peer sends names a program, a path or an argument;
//! actor types travel by name and are looked up in the executable's own table. What each
//! process is told is in [`crate::roles`].

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use thespian_core::{ActorAddress, Result, ThespianError};

use crate::factory::{BoundSocket, TransportFactory};
use crate::node::encode_id;
use crate::roles::{
    encode, new_incarnation, ActorLaunch, AdminLaunch, ACTOR_SLOT, CONFIG_ENV, ROLE_ENV,
};

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
        // Owner-only: the log holds actors' records and reasons peers gave.
        Some(path) if !path.is_empty() => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
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
    transport: &Arc<dyn TransportFactory>,
    ip: IpAddr,
    entry_args: &[OsString],
    mut launch: ActorLaunch,
) -> std::result::Result<(ActorAddress, Child), String> {
    let executable = own_executable().map_err(|e| e.to_string())?;
    let socket = BoundSocket::bind(transport, SocketAddr::new(ip, 0))
        .map_err(|e| format!("cannot bind the actor's socket: {e}"))?;
    let local = match socket.local_addr() {
        SocketAddr::V4(v4) => v4,
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
