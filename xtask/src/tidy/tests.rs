//! Tidy against the real repository (it must pass) and against temporary copies of its
//! manifests with one rule broken on purpose (each break must be reported where it is).

use super::*;

use std::sync::atomic::{AtomicUsize, Ordering};

/// A temporary copy of the workspace's manifests, removed when dropped.
struct ScratchRepo {
    root: PathBuf,
}

impl ScratchRepo {
    /// The root `Cargo.toml` and every member's, copied from the real repository; no sources.
    fn copy_of_manifests() -> ScratchRepo {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "xtask-tidy-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        let scratch = ScratchRepo { root };
        let real = crate::root();
        scratch.write("Cargo.toml", &read(&real.join("Cargo.toml")));
        let text = read(&real.join("Cargo.toml"));
        for member in manifest::parse_workspace_members(&text) {
            let manifest = format!("{}/Cargo.toml", member.path);
            scratch.write(&manifest, &read(&real.join(&manifest)));
        }
        scratch
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.root.join(relative);
        fs::create_dir_all(path.parent().expect("a file has a parent")).expect("create dir");
        fs::write(&path, text).expect("write scratch file");
    }

    /// Inserts `new_line` right after the first line equal to `after` in `relative`, and
    /// returns the new line's 1-based number.
    fn insert_line(&self, relative: &str, after: &str, new_line: &str) -> usize {
        let text = read(&self.root.join(relative));
        let mut lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|line| *line == after)
            .unwrap_or_else(|| panic!("{relative} has no line {after:?}"))
            + 1;
        lines.insert(at, new_line);
        self.write(relative, &(lines.join("\n") + "\n"));
        at + 1
    }

    fn violations(&self) -> Vec<Violation> {
        check_repository(&self.root).expect("the scratch repository is readable")
    }
}

impl Drop for ScratchRepo {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Asserts `violations` is exactly one, at `file:line`, whose problem mentions `mention`.
fn assert_one_violation(violations: &[Violation], file: &str, line: usize, mention: &str) {
    let listing: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert_eq!(
        violations.len(),
        1,
        "expected one violation, got {listing:#?}"
    );
    let violation = &violations[0];
    assert_eq!(violation.file, Path::new(file), "{listing:#?}");
    assert_eq!(violation.line, Some(line), "{listing:#?}");
    assert!(
        violation.problem.contains(mention),
        "{:?} does not mention {mention:?}",
        violation.problem
    );
    assert!(!violation.rule.is_empty() && !violation.fix.is_empty());
}

#[test]
fn the_real_repository_passes_every_fast_check() {
    let violations = check_repository(&crate::root()).expect("the repository is readable");
    let listing: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{}", listing.join("\n\n"));
}

#[test]
fn an_unchanged_copy_of_the_manifests_passes() {
    let scratch = ScratchRepo::copy_of_manifests();
    assert!(scratch.violations().is_empty());
}

#[test]
fn core_gaining_a_forbidden_dependency_is_reported() {
    let scratch = ScratchRepo::copy_of_manifests();
    let file = "thespian-core/Cargo.toml";
    let line = scratch.insert_line(file, "[dependencies]", "mio.workspace = true");
    assert_one_violation(&scratch.violations(), file, line, "`mio`");
}

#[test]
fn a_transport_depending_on_another_transport_is_reported() {
    let scratch = ScratchRepo::copy_of_manifests();
    let file = "thespian-transport-tcp/Cargo.toml";
    let line = scratch.insert_line(
        file,
        "[dependencies]",
        "udp = { package = \"thespian-transport-udp\", path = \"../thespian-transport-udp\" }",
    );
    assert_one_violation(
        &scratch.violations(),
        file,
        line,
        "`thespian-transport-udp`",
    );
}

#[test]
fn cryptography_outside_the_trust_boundary_is_reported() {
    let scratch = ScratchRepo::copy_of_manifests();
    let file = "thespian-transport-udp/Cargo.toml";
    let line = scratch.insert_line(file, "[dependencies]", "blake3.workspace = true");
    assert_one_violation(&scratch.violations(), file, line, "`blake3`");
}

#[test]
fn a_crate_below_the_facade_depending_on_it_is_reported() {
    let scratch = ScratchRepo::copy_of_manifests();
    let file = "thespian-admin/Cargo.toml";
    let line = scratch.insert_line(
        file,
        "[dependencies]",
        "thespian = { path = \"../thespian\" }",
    );
    let violations = scratch.violations();
    assert_one_violation(&violations, file, line, "`thespian`");
    assert!(violations[0].rule.contains("below the facade"));
}

#[test]
fn a_member_missing_from_the_table_is_reported() {
    let scratch = ScratchRepo::copy_of_manifests();
    scratch.insert_line("Cargo.toml", "members = [", "    \"thespian-extra\",");
    scratch.write(
        "thespian-extra/Cargo.toml",
        "[package]\nname = \"thespian-extra\"\n",
    );
    let violations = scratch.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert!(violations[0].fix.contains("xtask/src/tidy.rs"));
}

#[test]
fn an_unsafe_block_without_safety_comment_is_reported() {
    let scratch = ScratchRepo::copy_of_manifests();
    scratch.write(
        "thespian/src/lib.rs",
        "// An ordinary comment.\n\
         fn justified() {\n\
         \x20   // SAFETY: nothing is required.\n\
         \x20   unsafe { no_op() }\n\
         }\n\
         fn unjustified() -> u8 {\n\
         \x20   let text = \"unsafe { in a string }\"; // unsafe { in a comment\n\
         \x20   unsafe { no_op() }\n\
         }\n",
    );
    assert_one_violation(
        &scratch.violations(),
        "thespian/src/lib.rs",
        8,
        "`unsafe` block",
    );
}

#[test]
fn a_long_safety_comment_just_above_counts() {
    let scratch = ScratchRepo::copy_of_manifests();
    scratch.write(
        "thespian/src/lib.rs",
        "// SAFETY: one\n// two\n// three\n// four\n// five\nunsafe impl Send for X {}\n",
    );
    assert!(scratch.violations().is_empty());
}

#[test]
fn unsafe_impl_and_fn_need_their_justification() {
    let scratch = ScratchRepo::copy_of_manifests();
    scratch.write(
        "thespian-core/src/lib.rs",
        "/// Documented.\n\
         ///\n\
         /// # Safety\n\
         /// The caller holds the lock.\n\
         #[inline]\n\
         pub unsafe fn documented() {}\n\
         \n\
         /// No contract.\n\
         pub unsafe fn undocumented() {}\n\
         unsafe impl Sync for X {}\n",
    );
    let violations = scratch.violations();
    let found: Vec<(usize, &str)> = violations
        .iter()
        .map(|v| (v.line.unwrap_or(0), v.problem.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (9, "an `unsafe fn` without its justification"),
            (10, "an `unsafe impl` without its justification"),
        ]
    );
}

#[test]
fn the_fuzz_workspace_is_outside_the_unsafe_check() {
    let scratch = ScratchRepo::copy_of_manifests();
    scratch.write("fuzz/fuzz_targets/target.rs", "fn f() { unsafe { g() } }\n");
    assert!(scratch.violations().is_empty());
}

#[test]
fn a_crate_below_the_facade_naming_a_transport_is_reported() {
    let scratch = ScratchRepo::copy_of_manifests();
    scratch.write(
        "thespian-auth/src/lib.rs",
        "//! Auth.\n\nuse thespian_transport_tcp::Connection;\n",
    );
    // The facade and the transport itself may name it.
    scratch.write("thespian/src/lib.rs", "use thespian_transport_tcp::X;\n");
    scratch.write(
        "thespian-transport-tcp/tests/t.rs",
        "use thespian_transport_tcp::X;\n",
    );
    assert_one_violation(
        &scratch.violations(),
        "thespian-auth/src/lib.rs",
        3,
        "thespian_transport_tcp",
    );
}

#[test]
fn wire_to_code_words_are_reported() {
    let scratch = ScratchRepo::copy_of_manifests();
    scratch.write(
        "thespian/src/multiproc/launch.rs",
        "fn f(b: [u8; 8]) -> fn() {\n    unsafe_free(std::mem::transmute(b))\n}\n",
    );
    assert_one_violation(
        &scratch.violations(),
        "thespian/src/multiproc/launch.rs",
        2,
        "transmute",
    );
}

#[test]
fn violations_name_file_line_rule_and_fix() {
    let violation = Violation {
        file: PathBuf::from("thespian-core/Cargo.toml"),
        line: Some(14),
        problem: "`thespian-core` depends on `mio`".into(),
        rule: "`thespian-core` depends only on serde, postcard, log".into(),
        fix: "remove the dependency".into(),
    };
    assert_eq!(
        violation.to_string(),
        "thespian-core/Cargo.toml:14: `thespian-core` depends on `mio`\n    \
         rule: `thespian-core` depends only on serde, postcard, log\n    \
         fix:  remove the dependency"
    );
}

#[test]
fn options_accept_no_doc_only() {
    assert!(Options::parse(&["--no-doc".to_string()]).is_ok_and(|o| o.no_doc));
    assert!(Options::parse(&[]).is_ok_and(|o| !o.no_doc));
    assert!(Options::parse(&["--fast".to_string()]).is_err());
}

#[test]
fn multiproc_depending_on_any_transport_is_reported() {
    let scratch = ScratchRepo::copy_of_manifests();
    let file = "thespian-multiproc/Cargo.toml";
    let line = scratch.insert_line(
        file,
        "[dependencies]",
        "thespian-transport-queue.workspace = true",
    );
    assert_one_violation(
        &scratch.violations(),
        file,
        line,
        "`thespian-transport-queue`",
    );
}

#[test]
fn multiproc_names_a_transport_only_in_its_test_modules() {
    let scratch = ScratchRepo::copy_of_manifests();
    scratch.write(
        "thespian-multiproc/src/host.rs",
        "use thespian_io::watch::Watcher;\n\
         use thespian_transport_queue::Something;\n\
         \n\
         #[cfg(test)]\n\
         mod tests {\n\
             use thespian_transport_udp as udp;\n\
         }\n",
    );
    assert_one_violation(
        &scratch.violations(),
        "thespian-multiproc/src/host.rs",
        2,
        "thespian_transport_queue",
    );
}

#[test]
fn the_queue_only_tree_check_names_what_it_finds() {
    let clean = "thespian v0.1.0 (/repo/thespian)\n\
                 env_logger v0.11.12\n\
                 thespian-transport-queue v0.1.0 (/repo/thespian-transport-queue)\n\
                 crossbeam-channel v0.5.17\n\
                 log v0.4.35 (*)\n";
    assert!(queue_only_tree_violations(clean).is_empty());
    let pulled = format!(
        "{clean}mio v1.2.5\nlibc v0.2.191\nlibc v0.2.191 (*)\n\
         thespian-multiproc v0.1.0 (/repo/thespian-multiproc)\nmiow v0.6.0\n"
    );
    assert_eq!(
        queue_only_tree_violations(&pulled),
        vec!["mio", "libc", "thespian-multiproc"]
    );
}
