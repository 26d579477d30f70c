//! The system secret: what every process of a system, and every system of a convention, shares.
//!
//! Where it comes from, first match wins:
//! 1. the capability [`SECRET_FILE_CAPABILITY`] (`Thespian Secret File`): a path, given by the
//!    program that starts the system (its explicit choice beats the environment);
//! 2. the environment variable [`SECRET_FILE_ENV`] (`THESPIAN_SECRET_FILE`): a path;
//! 3. the default file `$XDG_CONFIG_HOME/thespian/secret`, else `$HOME/.config/thespian/secret`,
//!    created on first use with 32 random bytes (hex), mode 0600, atomically, so two programs of
//!    one user on one host share a secret with no configuration.
//!
//! Only paths are configured, never the secret's bytes: capabilities travel in status replies
//! and to other systems, and environments are inherited by every child an actor starts. A file
//! that its owner's group or others may read or write, or that another user owns, is refused,
//! as ssh refuses such a key, and so is one in a folder that others may write to or that another
//! user owns (they could replace it). The file may hold any text of at least 32 bytes (so a
//! secret can be copied to another host for a convention); its trailing white space is ignored.
//! It must be random: anyone who reaches a port can test guesses of it offline, so a phrase is
//! as weak as its guessability.
//!
//! A [`Secret`] never shows its bytes: `Debug` is redacted, there is no `Display`, and the
//! bytes are wiped when it is dropped.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroize;

/// The capability naming the secret file (a string: a path).
pub const SECRET_FILE_CAPABILITY: &str = "Thespian Secret File";

/// The environment variable naming the secret file.
pub const SECRET_FILE_ENV: &str = "THESPIAN_SECRET_FILE";

/// The fewest bytes of text a [`Secret`] is made from.
const MIN_SECRET_TEXT: usize = 16;

/// The fewest bytes a secret *file* may hold: as many as a random 128-bit secret in hex. Anyone
/// who completes half a handshake can test guesses of the text offline, so it must be random
/// (the default file holds 64 random hex digits), never a word or a phrase.
const MIN_SECRET_FILE_TEXT: usize = 32;

/// The most bytes read from a secret file.
const MAX_SECRET_TEXT: u64 = 4096;

/// The shared secret of an actor system.
#[derive(Clone)]
pub struct Secret {
    key: [u8; 32],
}

/// Why no secret could be had.
#[derive(Debug)]
pub enum SecretError {
    /// The file could not be read or created.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// The file's permissions let others read or write it, or another user owns it.
    Permissions {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The file holds too little (or too much) to be a secret.
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set, and no secret file was named.
    NoDefaultLocation,
    /// No random bytes for a new secret.
    Random(String),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Io { path, error } => {
                write!(f, "the secret file {}: {error}", path.display())
            }
            SecretError::Permissions { path, problem } => write!(
                f,
                "the secret file {} is refused: {problem} (it must be a file only its owner can \
                 read and write: chmod 600)",
                path.display()
            ),
            SecretError::Malformed { path, problem } => {
                write!(
                    f,
                    "the secret file {} is refused: {problem}",
                    path.display()
                )
            }
            SecretError::NoDefaultLocation => write!(
                f,
                "no secret file: set {SECRET_FILE_ENV}, the capability \
                 {SECRET_FILE_CAPABILITY:?}, XDG_CONFIG_HOME or HOME"
            ),
            SecretError::Random(e) => write!(f, "no random bytes for a new secret: {e}"),
        }
    }
}

impl std::error::Error for SecretError {}

/// Where a system's secret is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A file named by the capability or the environment: it must exist.
    Named(PathBuf),
    /// The per-user default file, created if missing.
    Default(PathBuf),
}

impl SecretSource {
    /// Picks the source: the capability's path if given, else the environment's, else the
    /// default location.
    pub fn resolve(capability_path: Option<&str>) -> Result<SecretSource, SecretError> {
        if let Some(path) = capability_path.filter(|p| !p.is_empty()) {
            return Ok(SecretSource::Named(PathBuf::from(path)));
        }
        if let Some(path) = std::env::var_os(SECRET_FILE_ENV).filter(|p| !p.is_empty()) {
            return Ok(SecretSource::Named(PathBuf::from(path)));
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|p| !p.is_empty())
                    .map(|home| PathBuf::from(home).join(".config"))
            })
            .ok_or(SecretError::NoDefaultLocation)?;
        Ok(SecretSource::Default(
            config.join("thespian").join("secret"),
        ))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            SecretSource::Named(path) | SecretSource::Default(path) => path,
        }
    }

    /// Reads the secret (creating the default file first if it is missing).
    pub fn load(&self) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Named(path) => Secret::load(path),
            SecretSource::Default(path) => Secret::load_or_create(path),
        }
    }
}

impl Secret {
    /// A secret from its text (at least 16 bytes), as a secret file holds it.
    pub fn from_text(text: &[u8]) -> Option<Secret> {
        (text.len() >= MIN_SECRET_TEXT).then(|| Secret {
            key: blake3::derive_key("thespian-rs 2026-12 secret v1", text),
        })
    }

    /// A new random secret, with its text (64 hex digits) for a file.
    pub fn generate() -> Result<(Secret, String), SecretError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        bytes.zeroize();
        match Secret::from_text(text.as_bytes()) {
            Some(secret) => Ok((secret, text)),
            None => Err(SecretError::Random("too few random bytes".into())),
        }
    }

    /// Reads the secret file at `path`, refusing one that others may read or write.
    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        let io_error = |error| SecretError::Io {
            path: path.to_owned(),
            error,
        };
        // No link is followed, and a FIFO or device at the path cannot block the open.
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(io_error)?;
        let metadata = file.metadata().map_err(io_error)?;
        check_permissions(path, &metadata)?;
        check_folder(path)?;
        let mut text = Vec::new();
        (&mut file)
            .take(MAX_SECRET_TEXT + 1)
            .read_to_end(&mut text)
            .map_err(io_error)?;
        let secret = secret_from_file_text(path, &text);
        text.zeroize();
        secret
    }

    /// Reads the secret file at `path`, creating it (and its folder, mode 0700) with a new
    /// random secret first if there is none. Two processes creating it at once end up with the
    /// same secret: the file appears whole or not at all.
    pub fn load_or_create(path: &Path) -> Result<Secret, SecretError> {
        match Secret::load(path) {
            Err(SecretError::Io { error, .. }) if error.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let io_error = |error| SecretError::Io {
            path: path.to_owned(),
            error,
        };
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error)?;
        }
        let (_, mut text) = Secret::generate()?;
        let temporary = temporary_name(path)?;
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        })();
        text.zeroize();
        if let Err(error) = written {
            let _ = fs::remove_file(&temporary);
            return Err(io_error(error));
        }
        // A hard link never replaces an existing file: whoever links first wins, and the
        // others read the winner's secret.
        let linked = fs::hard_link(&temporary, path);
        let _ = fs::remove_file(&temporary);
        match linked {
            Ok(()) => log::info!("created a new actor-system secret in {}", path.display()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(e)),
        }
        Secret::load(path)
    }

    /// The bytes keys are derived from. Crate-private: nothing outside derives from the
    /// secret directly.
    pub(crate) fn key_material(&self) -> &[u8; 32] {
        &self.key
    }

    /// A short, one-way fingerprint of the secret, safe to log, so two hosts can tell whether
    /// they share a secret without revealing it.
    pub fn fingerprint(&self) -> String {
        let hash = blake3::derive_key("thespian-rs 2026-12 secret fingerprint v1", &self.key);
        hash[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        crate::mac::constant_time_eq(&self.key, &other.key)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

fn secret_from_file_text(path: &Path, text: &[u8]) -> Result<Secret, SecretError> {
    let malformed = |problem: &str| SecretError::Malformed {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    if text.len() as u64 > MAX_SECRET_TEXT {
        return Err(malformed("it is larger than 4096 bytes"));
    }
    let end = text
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let text = &text[..end];
    if text.len() < MIN_SECRET_FILE_TEXT {
        return Err(malformed(
            "it holds fewer than 32 bytes (the default file holds 64 random hex digits)",
        ));
    }
    Secret::from_text(text).ok_or_else(|| malformed("it holds fewer than 16 bytes"))
}

/// The secret's folder must be its owner's (or root's) and closed to writes by others, who
/// could otherwise replace the file.
fn check_folder(path: &Path) -> Result<(), SecretError> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let metadata = fs::metadata(folder).map_err(|error| SecretError::Io {
        path: folder.to_owned(),
        error,
    })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let mode = metadata.permissions().mode() & 0o777;
    let problem = if metadata.uid() != euid && metadata.uid() != 0 {
        Some(format!("its folder belongs to user {}", metadata.uid()))
    } else if mode & 0o022 != 0 {
        Some(format!(
            "its folder's mode is {mode:03o}: others may replace the file"
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(SecretError::Permissions {
            path: path.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

fn check_permissions(path: &Path, metadata: &fs::Metadata) -> Result<(), SecretError> {
    let refuse = |problem: String| {
        Err(SecretError::Permissions {
            path: path.to_owned(),
            problem,
        })
    };
    if !metadata.is_file() {
        return refuse("it is not a regular file".to_owned());
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return refuse(format!(
            "its mode is {mode:03o}, open to its group or others"
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if metadata.uid() != euid {
        return refuse(format!(
            "it belongs to user {}, not to this process's user {euid}",
            metadata.uid()
        ));
    }
    Ok(())
}

fn temporary_name(path: &Path) -> Result<PathBuf, SecretError> {
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|e| SecretError::Random(e.to_string()))?;
    let name = format!(
        ".{}.{}.{}",
        path.file_name()
            .map_or("secret".into(), |n| n.to_string_lossy()),
        std::process::id(),
        u64::from_le_bytes(tag)
    );
    Ok(path.with_file_name(name))
}
