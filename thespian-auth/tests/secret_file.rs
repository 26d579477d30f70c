//! The secret file: created once, atomically, readable only by its owner; refused otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use thespian_auth::{Secret, SecretError};

/// A fresh folder for one test, removed when it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "thespian-auth-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_default_file_is_created_once_with_mode_600_and_read_back() {
    let dir = TempDir::new("create");
    let path = dir.0.join("config").join("thespian").join("secret");
    let first = Secret::load_or_create(&path).expect("created");
    let mode = std::fs::metadata(&path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let folder = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(folder, 0o700);
    let again = Secret::load_or_create(&path).expect("read back");
    assert_eq!(first, again);
    assert_eq!(Secret::load(&path).expect("loaded"), first);
}

#[test]
fn processes_creating_the_file_at_once_agree_on_one_secret() {
    let dir = TempDir::new("race");
    let path = dir.0.join("secret");
    let secrets: Vec<Secret> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| Secret::load_or_create(&path).expect("secret")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(secrets.windows(2).all(|w| w[0] == w[1]));
    let leftovers = std::fs::read_dir(&dir.0).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary files are left behind");
}

#[test]
fn a_file_others_may_read_is_refused_with_a_clear_error() {
    let dir = TempDir::new("mode");
    let path = dir.0.join("secret");
    std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = Secret::load(&path).expect_err("refused");
    assert!(
        matches!(error, SecretError::Permissions { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("644") && text.contains("chmod 600"), "{text}");
    // The default location refuses it too, rather than replacing it.
    assert!(Secret::load_or_create(&path).is_err());
}

#[test]
fn a_short_file_is_refused_and_any_long_text_is_a_secret() {
    let dir = TempDir::new("text");
    let short = dir.0.join("short");
    std::fs::write(&short, "thirty-one bytes, one too few.\n").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        Secret::load(&short).expect_err("refused"),
        SecretError::Malformed { .. }
    ));
    let phrase = dir.0.join("phrase");
    std::fs::write(&phrase, "0123456789abcdef0123456789abcdef\n\n").unwrap();
    std::fs::set_permissions(&phrase, std::fs::Permissions::from_mode(0o600)).unwrap();
    let loaded = Secret::load(&phrase).expect("loaded");
    assert_eq!(
        loaded,
        Secret::from_text(b"0123456789abcdef0123456789abcdef").unwrap(),
        "trailing white space is ignored"
    );
}

#[test]
fn a_symbolic_link_is_not_followed() {
    let dir = TempDir::new("link");
    let real = dir.0.join("real");
    std::fs::write(&real, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.0.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(Secret::load(&link).is_err());
}

#[test]
fn the_fingerprint_tells_secrets_apart_without_showing_them() {
    let a = Secret::from_text(b"0123456789abcdef-a").unwrap();
    let b = Secret::from_text(b"0123456789abcdef-b").unwrap();
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.fingerprint().len(), 8);
    assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
}

#[test]
fn a_file_in_a_folder_others_may_write_is_refused() {
    let dir = TempDir::new("folder");
    let open_folder = dir.0.join("open");
    std::fs::create_dir(&open_folder).unwrap();
    std::fs::set_permissions(&open_folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = open_folder.join("secret");
    std::fs::write(&path, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let error = Secret::load(&path).expect_err("refused");
    assert!(error.to_string().contains("others may replace"), "{error}");
}

#[test]
fn a_fifo_at_the_path_is_refused_without_blocking() {
    let dir = TempDir::new("fifo");
    let path = dir.0.join("secret");
    let c_path = std::ffi::CString::new(path.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file system entry.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let error = Secret::load(&path).expect_err("refused");
    assert!(
        matches!(error, SecretError::Permissions { .. }),
        "{error:?}"
    );
}
