//! `cargo xtask`: the project's integration runs.
//!
//! - `cargo xtask demo`: runs the hello/goodbye example.
//! - `cargo xtask test`: runs every test of the workspace.
//! - `cargo xtask bench [--quick] [--only <workload>[,...]] [--contestants <id>[,...]] [--runs N]
//!   [--instructions] [--baseline <figures.tsv>]`: the benchmark harness (SPEC §6: in-process, and across processes over
//!   TCP and UDP on loopback), and with `--instructions` the instruction counts under callgrind;
//!   see `docs/PERFORMANCE.md`.
//! - `cargo xtask convention [--systems N] [--netns] [--base tcp|udp]`: a convention of N
//!   systems (the `convention` example's roles), a remote-create workload, a leader killed and
//!   the failover measured; see `convention.rs`.
//! - `cargo xtask fuzz <target> [libFuzzer args]`: runs a cargo-fuzz target of `fuzz/`
//!   (`tcp-frame`, `udp-datagram`, `auth-handshake`, `admin-protocol`, `convention`); not part of CI.
//! - `cargo xtask tidy [--no-doc]`: checks the repository rules a tool can check (crate
//!   dependencies, transports below the facade, unsafe justifications, no wire data becoming
//!   code, the docs build); see `tidy.rs`.
//!
//! Standard library only.

mod bench;
mod convention;
mod proc;
mod report;
mod tidy;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  demo                      run the hello/goodbye example (cargo run --example hello -p thespian)
  test                      run the workspace's tests (cargo test --workspace; the peers bench crate is a workspace of its own)
  bench [options]           benchmark thespian-rs against raw crossbeam, actix, ractor, kameo and
                            Python Thespian 4.0.1 in one process, and its Tcp and Udp bases against
                            raw loopback sockets, fork+exec and Python Thespian's TCP/UDP bases
                            across processes; writes target/bench/results.{md,json} and chart.svg
    --quick                 thespian-rs contestants only, small sizes, 3 runs, and of the
                            cross-process workloads only tcp-ping-pong (CI); writes to
                            target/bench/quick/
    --only <w>[,<w>...]     only these workloads: ping-pong ping-pong-cores tell-16b tell-64k
                            skynet idle ask (in one process); tcp-ping-pong tcp-tell-16b
                            tcp-tell-64k tcp-create tcp-ask udp-ping-pong udp-tell-16b (across
                            processes) conventions (remote against local create on Tcp, and
                            convergence in the simulation for 10, 100, 1,000 systems; run after
                            the others, written to conventions.md; --quick keeps only the
                            simulation) troupes (speed-up of a troupe of one worker per core
                            over one worker, Queue and Tcp, written to troupes.md; --quick:
                            20 items) (writes to target/bench/partial/)
    --contestants <c>[,...] only these contestants: thespian-simple thespian-queue raw actix
                            ractor kameo py-simple py-queue (in one process); thespian-tcp
                            thespian-udp raw-net py-tcp py-udp (across processes) (writes to
                            target/bench/partial/)
    --runs <N>              runs per figure (default 5; 3 with --quick)
    --instructions          also count instructions per message (per actor created) of the
                            in-process workloads and the codec under valgrind --tool=callgrind
                            (needs valgrind); writes instructions.{md,json} beside the results
    --baseline <path>       compare with an earlier run: its figures.tsv (every run writes one
                            beside results.md) or the directory holding it; the report lists
                            each figure's change and any slowdown beyond this run's spread
  convention [options]      start a convention of actor systems (the `convention` example's roles
                            as child processes): converge, remote creates by capability from the
                            leader, SIGKILL the leader, measure the failover; prints a summary
    --systems <N>           systems in all, 3 to 250 (default 10): two leader candidates, members
    --netns                 each system in a network namespace of its own on a veth bridge (needs
                            root and `ip`; else loopback with distinct ports, as without it)
    --base tcp|udp          the system base (default tcp)
    --period <s>            registration period in seconds (default 1)
    --creates <N>           creates of the workload (default 30)
  fuzz <target> [args]      run a cargo-fuzz target of fuzz/ (tcp-frame, udp-datagram,
                            auth-handshake, admin-protocol, convention) with
                            cargo-fuzz (`cargo install cargo-fuzz`); extra args go to libFuzzer,
                            e.g. -max_total_time=60
  tidy [--no-doc]           check the repository's rules: crate dependencies, no concrete
                            transport below the facade, a SAFETY comment on every unsafe block,
                            no transmute or from_image_spec, and that the docs build without
                            warnings (the slow part; --no-doc skips it for quick local runs)
";

/// The cargo-fuzz targets of `fuzz/Cargo.toml`.
const FUZZ_TARGETS: &[&str] = &[
    "tcp-frame",
    "udp-datagram",
    "auth-handshake",
    "admin-protocol",
    "convention",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "demo" => cargo(&["run", "--example", "hello", "-p", "thespian"]),
        "test" => cargo(&["test", "--workspace"]),
        "bench" => match bench::Options::parse(&args[1..]) {
            Ok(options) => bench::run(&options, &args),
            Err(e) => Err(format!("{e}\n\n{USAGE}")),
        },
        "convention" => match convention::Options::parse(&args[1..]) {
            Ok(options) => convention::run(&options),
            Err(e) => Err(format!("{e}\n\n{USAGE}")),
        },
        "fuzz" => fuzz(&args[1..]),
        "tidy" => match tidy::Options::parse(&args[1..]) {
            Ok(options) => tidy::run(&root(), &options),
            Err(e) => Err(format!("{e}\n\n{USAGE}")),
        },
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of `xtask/`).
///
/// `cargo run` (which `cargo xtask` is) sets `CARGO_MANIFEST_DIR` for the program it runs, and
/// that is read first: a target directory copied from another checkout of the repository
/// holds an `xtask` built there, whose compile-time path names the other checkout.
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// The cargo that runs us (`$CARGO`), or `cargo` from `PATH`.
fn cargo_command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root());
    command
}

/// Runs cargo with `args` in the workspace root, inheriting stdio.
fn cargo(args: &[&str]) -> Result<(), String> {
    let status = cargo_command()
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed: {status}", args.join(" ")))
    }
}

/// Runs a fuzz target with cargo-fuzz. libFuzzer needs nightly-only compiler flags; with the
/// stable toolchain `RUSTC_BOOTSTRAP=1` enables them for this build only.
fn fuzz(args: &[String]) -> Result<(), String> {
    let Some(target) = args.first() else {
        return Err(format!("fuzz needs a target: {}", FUZZ_TARGETS.join(", ")));
    };
    if !FUZZ_TARGETS.contains(&target.as_str()) {
        return Err(format!(
            "unknown fuzz target {target:?}: expected one of {}",
            FUZZ_TARGETS.join(", ")
        ));
    }
    let mut command = cargo_command();
    command
        .current_dir(root().join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", target.as_str(), "--"])
        .args(&args[1..]);
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo fuzz run {target}` failed ({status}); is cargo-fuzz installed (`cargo install cargo-fuzz`)?"
        ))
    }
}
