//! Which secret a process of a multi-process system uses: every process resolves it the same
//! way from the system's capabilities and its environment (see `thespian_auth::secret`), so the
//! program, the admin and each actor process share it without it ever crossing a process
//! boundary.

use thespian_auth::{Secret, SecretSource, SECRET_FILE_CAPABILITY};
use thespian_core::{Capabilities, Result, ThespianError};

/// The secret of the system whose capabilities are `caps`.
pub(crate) fn system_secret(caps: &Capabilities) -> Result<Secret> {
    let named = caps
        .get_str(SECRET_FILE_CAPABILITY)
        .map_err(ThespianError::Capability)?;
    SecretSource::resolve(named)
        .and_then(|source| source.load())
        .map_err(|e| ThespianError::StartupFailure(e.to_string()))
}
