//! Which secret a process of a multi-process system uses: every process resolves it the same
//! way from the system's capabilities and its environment (see `thespian_auth::secret`), so the
//! program, the admin and each actor process share it without it ever crossing a process
//! boundary.

use std::path::PathBuf;

use thespian_auth::{Secret, SecretSource, SECRET_FILE_CAPABILITY};
use thespian_core::{Capabilities, Result, ThespianError};

/// The secret of the system a program starts or attaches to (capabilities `caps`), and the
/// absolute path of its file. The program's processes are told that path when they start
/// (never a capability that could change later), so all of them read the same file.
pub(crate) fn program_secret(caps: &Capabilities) -> Result<(Secret, PathBuf)> {
    let named = caps
        .get_str(SECRET_FILE_CAPABILITY)
        .map_err(ThespianError::Capability)?;
    let source = SecretSource::resolve(named).map_err(startup)?;
    let secret = source.load().map_err(startup)?;
    let path = std::path::absolute(source.path()).map_err(|e| {
        ThespianError::StartupFailure(format!("the secret file {}: {e}", source.path().display()))
    })?;
    Ok((secret, path))
}

/// The secret in the file a process of the system was told about at its start.
pub(crate) fn secret_at(path: &std::path::Path) -> Result<Secret> {
    Secret::load(path).map_err(startup)
}

fn startup(e: thespian_auth::SecretError) -> ThespianError {
    ThespianError::StartupFailure(e.to_string())
}

#[cfg(test)]
mod tests {
    /// The capability key the admin refuses to update is the one the secret is resolved from.
    #[test]
    fn the_secret_file_key_is_one_key() {
        assert_eq!(
            thespian_auth::SECRET_FILE_CAPABILITY,
            thespian_core::keys::SECRET_FILE
        );
    }
}
