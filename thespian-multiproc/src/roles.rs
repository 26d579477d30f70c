//! The roles a re-executed program takes, and the settings each is told.
//!
//! A program becomes the admin daemon or an actor's process by being executed again with
//! `THESPIAN_ROLE` set; `thespian::init()` (the first line of `main`, or the entry-point test of
//! a test binary) sees the role and never returns to the program's own code. The role's
//! settings travel in `THESPIAN_ROLE_CONFIG` (postcard, hex) and, for a socket bound before the
//! process started, as its stdin. The transport is named in the settings and found among the
//! [`TransportFactory`]s the program was built with.
//!
//! This module exists apart from [`crate::launch`] (which starts processes) and the roles' own
//! modules (which run them) so that each of those depends on it and none on another.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thespian_core::{ActorAddress, Capabilities, Requirements, Result, SystemId, ThespianError};

use crate::factory::{BoundSocket, TransportFactory};

/// The environment variable naming a re-executed process's role.
pub(crate) const ROLE_ENV: &str = "THESPIAN_ROLE";
/// The environment variable carrying the role's settings.
pub(crate) const CONFIG_ENV: &str = "THESPIAN_ROLE_CONFIG";

/// What the admin daemon is told.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AdminLaunch {
    /// The transport's [`TransportFactory::name`].
    pub(crate) transport: String,
    /// Complete capabilities (the common keys added).
    pub(crate) capabilities: Capabilities,
    /// The log filter of the admin's sink; `None`: the program left logging alone.
    pub(crate) log_filter: Option<String>,
    /// Actors run on threads of the admin's process.
    pub(crate) thread_mode: bool,
    /// The system's secret file, as the starter resolved it (absolute).
    pub(crate) secret_file: std::path::PathBuf,
}

/// What an actor's process is told.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ActorLaunch {
    /// The transport's [`TransportFactory::name`].
    pub(crate) transport: String,
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
    /// The system's secret file, as the admin was told it at its start.
    pub(crate) secret_file: std::path::PathBuf,
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

/// The slot of the actor in its own process.
pub(crate) const ACTOR_SLOT: u16 = 1;

/// Takes the socket this process was given as its stdin: a socket of `transport`.
pub(crate) fn socket_from_stdin(
    transport: &Arc<dyn TransportFactory>,
) -> std::io::Result<BoundSocket> {
    // SAFETY: the process that started this one set fd 0 to a bound socket for it (the
    // admin's or this actor's) and nothing else in this process reads stdin: from here on the
    // descriptor belongs to the endpoint alone.
    let fd = unsafe { OwnedFd::from_raw_fd(0) };
    BoundSocket::adopt(transport, fd)
}

/// True when this process was started in a role that nobody has taken yet (`init()` removes
/// the variable when it reads it).
pub(crate) fn role_pending() -> bool {
    std::env::var_os(ROLE_ENV).is_some()
}

/// The role this process was started in, if any.
///
/// Both variables are removed from the environment once read, so a program an actor starts
/// (which inherits the environment) is not mistaken for a process of this system. `init()` is
/// the first line of `main`, before the program starts threads that could read the environment.
pub(crate) fn role() -> Option<(String, String)> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let config = std::env::var(CONFIG_ENV).unwrap_or_default();
    std::env::remove_var(ROLE_ENV);
    std::env::remove_var(CONFIG_ENV);
    Some((role, config))
}
