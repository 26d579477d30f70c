//! `cargo xtask tidy`: the repository rules a tool can check, so a change that breaks an
//! architecture invariant fails CI with the rule and the fix instead of waiting for a reviewer
//! to notice (after rust-analyzer's tidy tests).
//!
//! The checks (each takes the repository root, so the tests can point them at a temporary tree):
//! 1. crate dependencies follow [`CRATE_RULES`], and every workspace member has a line there;
//! 2. no crate below the facade names a concrete transport in its source (its inline test
//!    modules aside: dev-dependencies are free);
//! 3. the docs build without warnings (`cargo doc`; the slow one, skipped by `--no-doc`);
//! 4. every `unsafe` block and `unsafe impl` has a `// SAFETY:` comment, every `unsafe fn` a
//!    `# Safety` doc section;
//! 5. no source file contains `transmute` or `from_image_spec`: no wire data becomes code;
//! 6. the facade built with the Queue base only (`cargo tree -p thespian --no-default-features
//!    --features queue -e normal`) pulls none of [`QUEUE_ONLY_FORBIDDEN`].

mod manifest;
mod rust_source;
#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use manifest::{Dependency, Manifest};

/// Which crates a crate may depend on (normal and build dependencies; dev-dependencies are free).
enum Deps {
    /// These crates and no other.
    Only(&'static [&'static str]),
    /// Anything but these; a pattern ending in `*` matches every crate starting with the rest.
    AnythingBut(&'static [&'static str]),
}

/// The rules for one workspace member.
struct CrateRule {
    /// The package name.
    name: &'static str,
    deps: Deps,
    /// May depend on the facade `thespian` (only tools and benchmarks: the facade is the top).
    may_depend_on_facade: bool,
    /// Its `.rs` files may name a concrete transport crate (`thespian_transport_*`): the
    /// facade, the transports themselves and tools; never a crate below the facade (outside
    /// its inline test modules).
    may_name_transports: bool,
}

/// Every transport crate.
const TRANSPORTS: &str = "thespian-transport-*";
/// The facade's package name.
const FACADE: &str = "thespian";
/// The only cryptography, reached only through `thespian-auth`.
const CRYPTOGRAPHY: &str = "blake3";

/// The dependency rules of docs/ARCHITECTURE.md, one line per workspace member.
#[rustfmt::skip]
const CRATE_RULES: &[CrateRule] = &[
    CrateRule { name: "thespian-core", deps: Deps::Only(&["serde", "postcard", "log", "thespian-macros"]), may_depend_on_facade: false, may_name_transports: false },
    // A proc-macro crate: the parser and quoter only (its doc examples use the facade, a dev-dependency).
    CrateRule { name: "thespian-macros", deps: Deps::Only(&["proc-macro2", "quote", "syn"]), may_depend_on_facade: false, may_name_transports: false },
    CrateRule { name: "thespian-auth", deps: Deps::Only(&["serde", "log", "blake3", "getrandom", "zeroize", "libc"]), may_depend_on_facade: false, may_name_transports: false },
    CrateRule { name: "thespian-conventions", deps: Deps::Only(&["thespian-core", "serde", "log"]), may_depend_on_facade: false, may_name_transports: false },
    CrateRule { name: "thespian-troupe", deps: Deps::Only(&["thespian-core", "serde", "log"]), may_depend_on_facade: false, may_name_transports: false },
    CrateRule { name: "thespian-admin", deps: Deps::AnythingBut(&[TRANSPORTS, CRYPTOGRAPHY]), may_depend_on_facade: false, may_name_transports: false },
    CrateRule { name: "thespian-io", deps: Deps::Only(&["thespian-core", "mio", "log", "postcard"]), may_depend_on_facade: false, may_name_transports: false },
    CrateRule { name: "thespian-transport-queue", deps: Deps::AnythingBut(&[TRANSPORTS, "thespian-admin", "thespian-multiproc", CRYPTOGRAPHY]), may_depend_on_facade: false, may_name_transports: true },
    CrateRule { name: "thespian-transport-tcp", deps: Deps::AnythingBut(&[TRANSPORTS, "thespian-admin", "thespian-multiproc", CRYPTOGRAPHY]), may_depend_on_facade: false, may_name_transports: true },
    CrateRule { name: "thespian-transport-udp", deps: Deps::AnythingBut(&[TRANSPORTS, "thespian-admin", "thespian-multiproc", CRYPTOGRAPHY]), may_depend_on_facade: false, may_name_transports: true },
    // Reaches transports only through thespian-core's seam and the facade's factories; node.rs's
    // unit tests run over the UDP transport, a dev-dependency.
    CrateRule { name: "thespian-multiproc", deps: Deps::AnythingBut(&[TRANSPORTS, FACADE, CRYPTOGRAPHY]), may_depend_on_facade: false, may_name_transports: false },
    CrateRule { name: FACADE, deps: Deps::AnythingBut(&[CRYPTOGRAPHY]), may_depend_on_facade: false, may_name_transports: true },
    CrateRule { name: "xtask", deps: Deps::Only(&[]), may_depend_on_facade: true, may_name_transports: true },
    CrateRule { name: "thespian-bench", deps: Deps::AnythingBut(&[CRYPTOGRAPHY]), may_depend_on_facade: true, may_name_transports: true },
    CrateRule { name: "thespian-conformance", deps: Deps::AnythingBut(&[CRYPTOGRAPHY]), may_depend_on_facade: true, may_name_transports: false },
    // The operator's command: the facade and the terminal stack, nothing below the facade.
    CrateRule { name: "thespian-cli", deps: Deps::Only(&[FACADE, "log", "serde", "serde_json", "clap", "rustyline", "ratatui"]), may_depend_on_facade: true, may_name_transports: false },
];

/// Crates the facade built with the Queue base only must not pull (check 6): the I/O stack
/// (mio, libc), the multi-process machinery and the other transports.
const QUEUE_ONLY_FORBIDDEN: &[&str] = &[
    "mio",
    "libc",
    "thespian-io",
    "thespian-transport-tcp",
    "thespian-transport-udp",
    "thespian-admin",
    "thespian-auth",
    "thespian-multiproc",
];

/// How source files refer to the transport crates.
const TRANSPORT_PATH_PREFIX: &str = "thespian_transport_";

/// Words no source file may contain: the ways bytes could become a function or a type.
const WIRE_TO_CODE_WORDS: &[&str] = &["transmute", "from_image_spec"];

/// Lines above an `unsafe` block or impl where its `// SAFETY:` comment may start.
const SAFETY_COMMENT_REACH: usize = 3;

/// Directories no check reads: build output and VCS data.
const NEVER_READ: &[&str] = &["target", ".git"];
/// Directories outside the unsafe check: workspaces of their own with other rules (fuzz
/// harnesses, other actor libraries' benchmark peers).
const UNSAFE_CHECK_SKIPS: &[&str] = &["fuzz", "benches/peers"];
/// Outside the wire-to-code check: tidy itself names the words it looks for.
const WIRE_TO_CODE_SKIPS: &[&str] = &["xtask"];

/// One broken rule: where, what, which rule and how to fix it.
#[derive(Debug)]
pub(crate) struct Violation {
    /// Relative to the repository root.
    pub(crate) file: PathBuf,
    /// 1-based, where the rule applies to a line.
    pub(crate) line: Option<usize>,
    /// What was found.
    pub(crate) problem: String,
    pub(crate) rule: String,
    pub(crate) fix: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(
            f,
            ": {}\n    rule: {}\n    fix:  {}",
            self.problem, self.rule, self.fix
        )
    }
}

/// What `cargo xtask tidy` was asked to do.
pub(crate) struct Options {
    /// Skip the docs build (`--no-doc`), for quick local runs.
    pub(crate) no_doc: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options { no_doc: false };
        for arg in args {
            match arg.as_str() {
                "--no-doc" => options.no_doc = true,
                other => return Err(format!("unknown tidy option {other:?}")),
            }
        }
        Ok(options)
    }
}

/// Runs every check on the repository at `root`, printing each violation.
pub(crate) fn run(root: &Path, options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let violations = check_repository(root)?;
    for violation in &violations {
        println!("{violation}\n");
    }
    println!(
        "tidy: dependency, transport, unsafe and wire-to-code rules: {} in {:.1}s",
        if violations.is_empty() {
            "ok".to_string()
        } else {
            count_of_violations(violations.len())
        },
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let tree = check_queue_only_tree(root);
    println!(
        "tidy: queue-only dependency tree: {} in {:.1}s",
        if tree.is_ok() { "ok" } else { "failed" },
        started.elapsed().as_secs_f64()
    );
    let docs = if options.no_doc {
        println!("tidy: docs build skipped (--no-doc)");
        Ok(())
    } else {
        let started = Instant::now();
        let docs = check_docs_build(root);
        let outcome = if docs.is_ok() { "ok" } else { "failed" };
        println!(
            "tidy: docs build: {outcome} in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        docs
    };
    let docs = match (tree, docs) {
        (Ok(()), docs) => docs,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(d)) => Err(format!("{e}; and {d}")),
    };
    match (violations.len(), docs) {
        (0, Ok(())) => Ok(()),
        (0, Err(e)) => Err(e),
        (n, Ok(())) => Err(format!("tidy: {} (above)", count_of_violations(n))),
        (n, Err(e)) => Err(format!("tidy: {} (above); and {e}", count_of_violations(n))),
    }
}

/// `1 violation`, `2 violations`.
fn count_of_violations(n: usize) -> String {
    format!("{n} violation{}", if n == 1 { "" } else { "s" })
}

/// Checks 1, 2, 4 and 5 (all but the docs build) on the repository at `root`. `Err` only when
/// the repository cannot be read at all (no root manifest).
pub(crate) fn check_repository(root: &Path) -> Result<Vec<Violation>, String> {
    let members = read_members(root)?;
    let sources = rust_sources(root)?;
    let mut violations = Vec::new();
    violations.extend(check_crate_dependencies(&members));
    violations.extend(check_no_transport_below_facade(&members, &sources));
    violations.extend(check_unsafe_is_justified(&sources));
    violations.extend(check_no_wire_to_code(&sources));
    Ok(violations)
}

/// A workspace member and what tidy read of it.
struct Member {
    /// Its directory, relative to the root.
    dir: PathBuf,
    /// Where the root manifest lists it.
    listed_at: usize,
    /// Its manifest, or why it could not be read.
    manifest: Result<Manifest, String>,
}

impl Member {
    fn manifest_path(&self) -> PathBuf {
        self.dir.join("Cargo.toml")
    }
}

/// The workspace members the root manifest lists, each with its manifest read.
fn read_members(root: &Path) -> Result<Vec<Member>, String> {
    let root_manifest = root.join("Cargo.toml");
    let text = fs::read_to_string(&root_manifest)
        .map_err(|e| format!("cannot read {}: {e}", root_manifest.display()))?;
    Ok(manifest::parse_workspace_members(&text)
        .into_iter()
        .map(|member| {
            let dir = PathBuf::from(&member.path);
            let path = dir.join("Cargo.toml");
            let manifest = fs::read_to_string(root.join(&path))
                .map(|text| manifest::parse_package(&text))
                .map_err(|e| format!("cannot read {}: {e}", path.display()));
            Member {
                dir,
                listed_at: member.line,
                manifest,
            }
        })
        .collect())
}

/// The rule line of crate `name`.
fn rule_for(name: &str) -> Option<&'static CrateRule> {
    CRATE_RULES.iter().find(|rule| rule.name == name)
}

/// True when crate `name` matches `pattern` (a name, or a prefix followed by `*`).
fn matches_pattern(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

const TABLE_FIX: &str = "remove the dependency; if the architecture really changes, change \
    docs/ARCHITECTURE.md and the table in xtask/src/tidy.rs together";

/// Check 1: every member's dependencies against [`CRATE_RULES`].
fn check_crate_dependencies(members: &[Member]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for member in members {
        let manifest = match &member.manifest {
            Ok(manifest) => manifest,
            Err(e) => {
                violations.push(Violation {
                    file: PathBuf::from("Cargo.toml"),
                    line: Some(member.listed_at),
                    problem: e.clone(),
                    rule: "every workspace member has a Cargo.toml".into(),
                    fix: "fix the path in `members`".into(),
                });
                continue;
            }
        };
        let name = manifest.package_name.clone().unwrap_or_default();
        let Some(rule) = rule_for(&name) else {
            violations.push(Violation {
                file: member.manifest_path(),
                line: None,
                problem: format!("workspace member `{name}` has no dependency rules"),
                rule: "every workspace member has a line in tidy's crate table".into(),
                fix: "add it to the table in xtask/src/tidy.rs (CRATE_RULES), with the \
                    dependencies docs/ARCHITECTURE.md allows it"
                    .into(),
            });
            continue;
        };
        for dependency in &manifest.dependencies {
            if let Some(violation) = dependency_violation(member, rule, dependency) {
                violations.push(violation);
            }
        }
    }
    violations
}

fn dependency_violation(
    member: &Member,
    rule: &CrateRule,
    dependency: &Dependency,
) -> Option<Violation> {
    let crate_name = rule.name;
    let dep = dependency.name.as_str();
    let rule_text = if dep == FACADE && crate_name != FACADE && !rule.may_depend_on_facade {
        format!("no crate below the facade depends on `{FACADE}` (only tools and benchmarks do)")
    } else {
        match rule.deps {
            Deps::Only(allowed) if !allowed.contains(&dep) => {
                if allowed.is_empty() {
                    format!("`{crate_name}` uses the standard library only")
                } else {
                    format!("`{crate_name}` depends only on {}", allowed.join(", "))
                }
            }
            Deps::AnythingBut(forbidden) if forbidden.iter().any(|p| matches_pattern(p, dep)) => {
                format!("`{crate_name}` never depends on {}", forbidden.join(" or "))
            }
            _ => return None,
        }
    };
    Some(Violation {
        file: member.manifest_path(),
        line: Some(dependency.line),
        problem: format!("`{crate_name}` depends on `{dep}`"),
        rule: format!("{rule_text} (docs/ARCHITECTURE.md)"),
        fix: TABLE_FIX.into(),
    })
}

/// A Rust source file of the repository.
struct Source {
    /// Relative to the root.
    path: PathBuf,
    text: String,
}

impl Source {
    fn is_under(&self, dir: &str) -> bool {
        self.path.starts_with(dir)
    }
}

/// Every `.rs` file under `root`, but build output and VCS data, sorted by path.
fn rust_sources(root: &Path) -> Result<Vec<Source>, String> {
    let mut sources = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        let absolute = root.join(&dir);
        let entries = fs::read_dir(&absolute)
            .map_err(|e| format!("cannot list {}: {e}", absolute.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", absolute.display()))?;
            let name = entry.file_name();
            let relative = dir.join(&name);
            let file_type = entry
                .file_type()
                .map_err(|e| format!("cannot stat {}: {e}", relative.display()))?;
            if file_type.is_dir() {
                if !NEVER_READ.iter().any(|skip| name == *skip) {
                    dirs.push(relative);
                }
            } else if file_type.is_file() && relative.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(entry.path())
                    .map_err(|e| format!("cannot read {}: {e}", relative.display()))?;
                sources.push(Source {
                    path: relative,
                    text,
                });
            }
        }
    }
    sources.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(sources)
}

/// Check 2: the source of crates below the facade names no transport crate.
fn check_no_transport_below_facade(members: &[Member], sources: &[Source]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for member in members {
        let Ok(manifest) = &member.manifest else {
            continue;
        };
        let name = manifest.package_name.as_deref().unwrap_or_default();
        if rule_for(name).is_none_or(|rule| rule.may_name_transports) {
            continue;
        }
        for source in sources.iter().filter(|s| s.path.starts_with(&member.dir)) {
            let tests = rust_source::test_module_lines(&rust_source::code_only(&source.text));
            for (index, line) in source.text.lines().enumerate() {
                let in_tests = tests
                    .iter()
                    .any(|&(from, to)| (from..=to).contains(&(index + 1)));
                if in_tests {
                    continue;
                }
                if let Some(at) = line.find(TRANSPORT_PATH_PREFIX) {
                    let named: String = line[at..]
                        .chars()
                        .take_while(|&c| rust_source::is_ident_char(c))
                        .collect();
                    violations.push(Violation {
                        file: source.path.clone(),
                        line: Some(index + 1),
                        problem: format!("`{name}` names the transport crate `{named}`"),
                        rule: "no crate below the facade names a concrete transport; only \
                            `thespian` chooses them (docs/ARCHITECTURE.md)"
                            .into(),
                        fix: "reach the transport through a trait or type of thespian-core \
                            (e.g. `BaseDriver`, `WireMessage`) that the facade implements, \
                            or move this code to the facade"
                            .into(),
                    });
                }
            }
        }
    }
    violations
}

/// Check 4: `unsafe` blocks and impls carry a `// SAFETY:` comment, `unsafe fn`s a `# Safety`
/// doc section.
fn check_unsafe_is_justified(sources: &[Source]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for source in sources {
        if UNSAFE_CHECK_SKIPS.iter().any(|dir| source.is_under(dir)) {
            continue;
        }
        let code = rust_source::code_only(&source.text);
        let lines: Vec<&str> = source.text.lines().collect();
        for at in rust_source::word_offsets(&code, "unsafe") {
            let line = rust_source::line_of(&code, at);
            let after = code[at + "unsafe".len()..].trim_start();
            let (what, justified, rule, fix) = if after.starts_with('{') {
                (
                    "an `unsafe` block",
                    has_safety_comment(&lines, line),
                    "every `unsafe` block has a `// SAFETY:` comment on its line or just above",
                    "write `// SAFETY: <why every requirement of the unsafe operations holds>` \
                    above the block",
                )
            } else if starts_with_word(after, "impl") {
                (
                    "an `unsafe impl`",
                    has_safety_comment(&lines, line),
                    "every `unsafe impl` has a `// SAFETY:` comment on its line or just above",
                    "write `// SAFETY: <why the type upholds the trait's contract>` above it",
                )
            } else if starts_with_word(after, "fn") {
                (
                    "an `unsafe fn`",
                    has_safety_doc_section(&lines, line),
                    "every `unsafe fn` documents its contract in a `# Safety` section",
                    "add `/// # Safety` to its doc comment, saying what a caller must ensure",
                )
            } else {
                continue;
            };
            if !justified {
                violations.push(Violation {
                    file: source.path.clone(),
                    line: Some(line),
                    problem: format!("{what} without its justification"),
                    rule: rule.into(),
                    fix: fix.into(),
                });
            }
        }
    }
    violations
}

fn starts_with_word(text: &str, word: &str) -> bool {
    text.strip_prefix(word)
        .is_some_and(|rest| !rest.starts_with(rust_source::is_ident_char))
}

/// True when line `line` (1-based), one of the [`SAFETY_COMMENT_REACH`] lines above it, or the
/// comment block right above it has a `// SAFETY:` comment.
fn has_safety_comment(lines: &[&str], line: usize) -> bool {
    let is_safety = |text: &str| text.contains("// SAFETY:") || text.contains("/* SAFETY:");
    let index = line - 1;
    let nearby = index.saturating_sub(SAFETY_COMMENT_REACH)..=index;
    if lines[nearby].iter().any(|text| is_safety(text)) {
        return true;
    }
    lines[..index]
        .iter()
        .rev()
        .take_while(|text| text.trim_start().starts_with("//"))
        .any(|text| is_safety(text))
}

/// True when the doc comment above line `line` (1-based; attributes and comments between them
/// allowed) has a `# Safety` section.
fn has_safety_doc_section(lines: &[&str], line: usize) -> bool {
    lines[..line - 1]
        .iter()
        .rev()
        .map(|text| text.trim_start())
        .take_while(|text| text.starts_with("//") || text.starts_with("#["))
        .any(|text| text.starts_with("///") && text.trim_start_matches('/').trim() == "# Safety")
}

/// Check 5: no source file (tidy's own aside) contains [`WIRE_TO_CODE_WORDS`].
fn check_no_wire_to_code(sources: &[Source]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for source in sources {
        if WIRE_TO_CODE_SKIPS.iter().any(|dir| source.is_under(dir)) {
            continue;
        }
        for (index, line) in source.text.lines().enumerate() {
            for word in WIRE_TO_CODE_WORDS
                .iter()
                .filter(|word| line.contains(**word))
            {
                violations.push(Violation {
                    file: source.path.clone(),
                    line: Some(index + 1),
                    problem: format!("`{word}` in a source file"),
                    rule: "no bytes from the wire become code: actor types cross processes as \
                        names looked up in the receiving executable's own table \
                        (docs/ARCHITECTURE.md)"
                        .into(),
                    fix: format!(
                        "remove `{word}` (comments count too): decode bytes into data with \
                        serde/postcard, and find types by registered name"
                    ),
                });
            }
        }
    }
    violations
}

/// Check 3: `RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps` in `root`.
/// Check 6: runs `cargo tree` for the facade with the Queue base only and reports what it
/// must not pull.
fn check_queue_only_tree(root: &Path) -> Result<(), String> {
    let output = crate::cargo_command()
        .current_dir(root)
        .args(QUEUE_ONLY_TREE)
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let pulled = queue_only_tree_violations(&String::from_utf8_lossy(&output.stdout));
    if pulled.is_empty() {
        return Ok(());
    }
    Err(format!(
        "`cargo {}` lists {}: rule: the facade built with the Queue base only pulls no I/O \
        stack, multi-process machinery or other transport (docs/ARCHITECTURE.md); fix: make \
        the dependency optional behind the feature that needs it",
        QUEUE_ONLY_TREE.join(" "),
        pulled.join(", ")
    ))
}

/// The `cargo tree` arguments of check 6: one crate per line, no tree drawing.
const QUEUE_ONLY_TREE: &[&str] = &[
    "tree",
    "-p",
    "thespian",
    "--no-default-features",
    "--features",
    "queue",
    "-e",
    "normal",
    "--prefix",
    "none",
];

/// The crates of [`QUEUE_ONLY_FORBIDDEN`] in `tree`, the output of `cargo tree --prefix none`
/// (one `name vX.Y.Z [(path)] [(*)]` per line), each once, in the order of that list.
fn queue_only_tree_violations(tree: &str) -> Vec<String> {
    let listed: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    QUEUE_ONLY_FORBIDDEN
        .iter()
        .filter(|name| listed.contains(name))
        .map(|name| name.to_string())
        .collect()
}

fn check_docs_build(root: &Path) -> Result<(), String> {
    let mut rustdocflags = std::env::var("RUSTDOCFLAGS").unwrap_or_default();
    if !rustdocflags.is_empty() {
        rustdocflags.push(' ');
    }
    rustdocflags.push_str("-Dwarnings");
    let status = crate::cargo_command()
        .current_dir(root)
        .env("RUSTDOCFLAGS", rustdocflags)
        .args(["doc", "--workspace", "--no-deps", "--keep-going"])
        .status()
        .map_err(|e| format!("cannot run cargo doc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the docs build failed ({status}): rule: `RUSTDOCFLAGS=-Dwarnings cargo doc \
            --workspace --no-deps` passes; fix: the warnings cargo printed above (broken \
            intra-doc links, links to private items, bad code blocks)"
        ))
    }
}
