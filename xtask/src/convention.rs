//! `cargo xtask convention [--systems N] [--netns] [--base tcp|udp]`: a convention of N actor
//! systems, driven through the `convention` example's roles as child processes.
//!
//! 1. Builds the example (debug, as `cargo run --example convention` does).
//! 2. Starts N systems with `convention member`: systems 0 and 1 are the leader candidates
//!    (every system's `Convention Address.IPv4` is the list of the two), the others have one
//!    of [`SKILLS`] each, in turn. With `--netns`, run as root with `ip` available, each system
//!    runs in a network namespace of its own, on a veth pair into one bridge, at 10.251.0.(i+1);
//!    otherwise all run on 127.0.0.1 on consecutive free ports. What was chosen is printed.
//! 3. Waits until it has converged: system 0 knows the N-1 others and every other system
//!    follows it (each member prints its view whenever it changes).
//! 4. Runs `convention workload` attached to system 0: creates by capability, each asked where
//!    it landed; counts creates per member and the latency of each create plus its first ask.
//! 5. Kills system 0 (SIGKILL to its program, its admin daemon and its actors' processes) and
//!    measures the failover: the time until every live system follows system 1 (system 1
//!    leads itself), and until a create attached to system 1 works again.
//! 6. Prints a summary.
//!
//! **Cleanup.** Every process started carries a token in its environment (inherited by the
//! admin daemons and the actors' processes) and is in a process group of its own, so Ctrl-C in
//! the terminal reaches only xtask. xtask turns SIGINT and SIGTERM into a flag that every wait
//! checks; then, as on success and on failure, Drop guards close the members' standard input
//! (each member then shuts its system down), wait a bounded time, kill whatever still carries
//! the token, and delete the namespaces, veths and bridge made here. If xtask itself is killed
//! (SIGKILL), the members still see their standard input close and shut down, and the next run
//! deletes namespaces and bridges whose owning xtask process is gone (their names carry its pid).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{cargo, proc, root};

/// The capabilities members have, one each, in turn; the workload asks for them in turn.
pub(crate) const SKILLS: &[&str] = &["Morse", "Paint", "Sing"];

/// The subnet of the namespaces (the bridge itself has no address, so nothing is routed
/// outside them).
const SUBNET: [u8; 3] = [10, 251, 0];

/// The Admin Port of system 0 in namespaces (system i: this + i).
const NETNS_FIRST_PORT: u16 = 1900;

/// Command-line options of `convention`.
#[derive(Debug, PartialEq)]
pub(crate) struct Options {
    pub(crate) systems: usize,
    pub(crate) netns: bool,
    /// `tcp` or `udp`.
    pub(crate) base: String,
    /// Registration period, seconds.
    pub(crate) period: f64,
    /// Creates of the workload.
    pub(crate) creates: usize,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            systems: 10,
            netns: false,
            base: "tcp".into(),
            period: 1.0,
            creates: 30,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--netns" => options.netns = true,
                "--systems" => {
                    let n = value("--systems")?;
                    options.systems = n.parse().map_err(|_| format!("bad --systems {n:?}"))?;
                    if !(3..=250).contains(&options.systems) {
                        return Err(
                            "--systems must be 3 to 250 (two candidates and members)".into()
                        );
                    }
                }
                "--base" => {
                    let base = value("--base")?;
                    if base != "tcp" && base != "udp" {
                        return Err(format!("--base must be tcp or udp, not {base:?}"));
                    }
                    options.base = base;
                }
                "--period" => {
                    let p = value("--period")?;
                    options.period = p
                        .parse()
                        .ok()
                        .filter(|p: &f64| *p >= 0.1 && *p <= 60.0)
                        .ok_or_else(|| format!("bad --period {p:?} (seconds, 0.1 to 60)"))?;
                }
                "--creates" => {
                    let n = value("--creates")?;
                    options.creates = n
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("bad --creates {n:?}"))?;
                }
                other => return Err(format!("unknown convention option {other:?}")),
            }
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------------------------------------
// The plan: who runs where.

/// One system of the plan.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SystemPlan {
    pub(crate) ip: Ipv4Addr,
    pub(crate) port: u16,
    /// The capabilities set to `true` on it.
    pub(crate) capabilities: Vec<String>,
    /// Its network namespace and the two ends of its veth (host side, namespace side).
    pub(crate) netns: Option<NetnsPlan>,
}

impl SystemPlan {
    pub(crate) fn admin(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip, self.port)
    }
}

/// A system's namespace and veth pair.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NetnsPlan {
    pub(crate) namespace: String,
    pub(crate) host_veth: String,
    pub(crate) inner_veth: String,
}

/// Every system, the leader candidates, and the bridge in namespace mode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) systems: Vec<SystemPlan>,
    pub(crate) bridge: Option<String>,
}

impl Plan {
    /// The leader candidates: systems 0 and 1.
    pub(crate) fn leaders(&self) -> Vec<SocketAddrV4> {
        self.systems.iter().take(2).map(SystemPlan::admin).collect()
    }

    /// The skills some system has, in [`SKILLS`] order: what the workload asks for.
    pub(crate) fn skills(&self) -> Vec<&'static str> {
        SKILLS
            .iter()
            .copied()
            .filter(|skill| {
                self.systems
                    .iter()
                    .any(|s| s.capabilities.iter().any(|c| c == skill))
            })
            .collect()
    }

    /// The `convention member` arguments of system `i`.
    pub(crate) fn member_args(&self, i: usize, options: &Options) -> Vec<String> {
        let system = &self.systems[i];
        let mut args = vec![
            "member".to_owned(),
            "--port".into(),
            system.port.to_string(),
            "--ip".into(),
            system.ip.to_string(),
            "--base".into(),
            options.base.clone(),
            "--period".into(),
            options.period.to_string(),
            // Members outwait the whole run; xtask ends them by closing their stdin.
            "--wait".into(),
            "600".into(),
            "--until-stdin-closes".into(),
        ];
        for leader in self.leaders() {
            args.extend(["--leader".to_owned(), leader.to_string()]);
        }
        for capability in &system.capabilities {
            args.extend(["--capability".to_owned(), capability.clone()]);
        }
        args
    }
}

/// The capabilities of system `i`: none for the two candidates, one skill each for the rest.
fn capabilities_of(i: usize) -> Vec<String> {
    if i < 2 {
        Vec::new()
    } else {
        vec![SKILLS[(i - 2) % SKILLS.len()].to_owned()]
    }
}

/// N systems on 127.0.0.1, Admin Ports `first_port..first_port + n`.
pub(crate) fn loopback_plan(n: usize, first_port: u16) -> Plan {
    Plan {
        systems: (0..n)
            .map(|i| SystemPlan {
                ip: Ipv4Addr::LOCALHOST,
                port: first_port + i as u16,
                capabilities: capabilities_of(i),
                netns: None,
            })
            .collect(),
        bridge: None,
    }
}

/// N systems in namespaces named after `owner` (this process's pid), so that concurrent runs
/// do not collide and a later run can tell a leftover whose owner is gone. Interface names
/// stay within Linux's 15 characters.
pub(crate) fn netns_plan(n: usize, owner: u32) -> Plan {
    Plan {
        systems: (0..n)
            .map(|i| SystemPlan {
                ip: Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], (i + 1) as u8),
                port: NETNS_FIRST_PORT + i as u16,
                capabilities: capabilities_of(i),
                netns: Some(NetnsPlan {
                    namespace: format!("thc{owner}n{i}"),
                    host_veth: format!("thc{owner}h{i}"),
                    inner_veth: format!("thc{owner}p{i}"),
                }),
            })
            .collect(),
        bridge: Some(format!("thcbr{owner}")),
    }
}

/// The first of `n` consecutive ports in 20000..32000 free for TCP and UDP on 127.0.0.1 (below
/// Linux's ephemeral range, so no outgoing connection holds one).
fn free_ports(n: usize) -> Option<u16> {
    let span = 12_000u32 - n as u32;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    (0..200u32)
        .map(|k| 20_000 + ((seed.wrapping_add(k.wrapping_mul(7919))) % span) as u16)
        .find(|&first| {
            (0..n as u16).all(|i| {
                let at = (Ipv4Addr::LOCALHOST, first + i);
                TcpListener::bind(at).is_ok() && UdpSocket::bind(at).is_ok()
            })
        })
}

// ---------------------------------------------------------------------------------------------
// Signals

/// Set by SIGINT or SIGTERM.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" {
    /// POSIX `signal(2)`; the handler is passed as a pointer-sized value.
    fn signal(signum: i32, handler: usize) -> usize;
    /// POSIX `kill(2)`.
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

extern "C" fn on_signal(_: i32) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Turns SIGINT and SIGTERM into [`INTERRUPTED`], so the cleanup runs.
fn catch_interrupts() {
    for sig in [SIGINT, SIGTERM] {
        // SAFETY: signal(2) installs a handler that only stores to an atomic, which is
        // async-signal-safe; the handler has the C signature signal(2) expects.
        unsafe {
            signal(sig, on_signal as extern "C" fn(i32) as usize);
        }
    }
}

fn check_interrupt() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Network namespaces

/// Runs `ip` with `args`; an error carries its stderr.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why namespaces cannot be used here, if they cannot.
fn netns_unavailable() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() != Some("0") {
        return Some("not running as root".into());
    }
    ip(&["netns", "list"]).err()
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The owner pid in a name `thc<pid>n<i>` or `thcbr<pid>`.
fn owner_of(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("thcbr")
        .or_else(|| name.strip_prefix("thc"))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Deletes namespaces and bridges of earlier runs whose xtask process is gone (killed before
/// it could clean up).
fn sweep_stale() {
    let stale = |name: &str| owner_of(name).is_some_and(|pid| !pid_alive(pid));
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if name.starts_with("thc") && stale(name) {
                eprintln!("xtask convention: deleting namespace {name} of an earlier run");
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show", "type", "bridge"]) {
        for line in list.lines() {
            let name = line.split(':').nth(1).map(str::trim).unwrap_or("");
            if name.starts_with("thcbr") && stale(name) {
                eprintln!("xtask convention: deleting bridge {name} of an earlier run");
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

/// The namespaces, veths and bridge made so far; deleted on drop.
struct Network {
    namespaces: Vec<String>,
    bridge: Option<String>,
}

impl Network {
    fn build(plan: &Plan) -> Result<Network, String> {
        let mut net = Network {
            namespaces: Vec::new(),
            bridge: None,
        };
        let Some(bridge) = &plan.bridge else {
            return Ok(net);
        };
        ip(&["link", "add", bridge, "type", "bridge"])?;
        net.bridge = Some(bridge.clone());
        ip(&["link", "set", bridge, "up"])?;
        for system in &plan.systems {
            check_interrupt()?;
            let Some(ns) = &system.netns else { continue };
            ip(&["netns", "add", &ns.namespace])?;
            net.namespaces.push(ns.namespace.clone());
            ip(&[
                "link",
                "add",
                &ns.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &ns.inner_veth,
            ])?;
            // Deleting the namespace deletes the inner end, and with it the pair.
            ip(&["link", "set", &ns.inner_veth, "netns", &ns.namespace])?;
            ip(&["link", "set", &ns.host_veth, "master", bridge, "up"])?;
            let address = format!("{}/24", system.ip);
            ip(&[
                "-n",
                &ns.namespace,
                "addr",
                "add",
                &address,
                "dev",
                &ns.inner_veth,
            ])?;
            ip(&["-n", &ns.namespace, "link", "set", &ns.inner_veth, "up"])?;
            ip(&["-n", &ns.namespace, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in self.namespaces.drain(..) {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("xtask convention: {e}");
            }
        }
        if let Some(bridge) = self.bridge.take() {
            if let Err(e) = ip(&["link", "del", &bridge]) {
                eprintln!("xtask convention: {e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A line a system printed, when it arrived.
struct Line {
    system: usize,
    at: Instant,
    text: String,
}

/// A started system's program.
struct Member {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Every process started, their output, and the token they carry; on drop the members are
/// asked to stop (their stdin closes), then whatever is left is killed.
struct Cluster {
    token: String,
    members: Vec<Option<Member>>,
    lines: mpsc::Receiver<Line>,
    sender: mpsc::Sender<Line>,
    logs: PathBuf,
}

impl Cluster {
    fn new(logs: PathBuf) -> Cluster {
        let (sender, lines) = mpsc::channel();
        Cluster {
            token: proc::new_token(),
            members: Vec::new(),
            lines,
            sender,
            logs,
        }
    }

    /// A command running the example `exe` with `args`, in the namespace if any, carrying the
    /// token, in a process group of its own (so a terminal's Ctrl-C reaches only xtask).
    fn command(&self, exe: &std::path::Path, system: &SystemPlan, args: &[String]) -> Command {
        let mut command = match &system.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.namespace]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        command
            .args(args)
            .env(proc::TOKEN_VAR, &self.token)
            .env_remove("RUST_LOG")
            .process_group(0);
        command
    }

    fn start(
        &mut self,
        exe: &std::path::Path,
        plan: &Plan,
        i: usize,
        options: &Options,
    ) -> Result<(), String> {
        let log_path = self.logs.join(format!("system-{i}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let mut child = self
            .command(exe, &plan.systems[i], &plan.member_args(i, options))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start system {i}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let sender = self.sender.clone();
        thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                let line = Line {
                    system: i,
                    at: Instant::now(),
                    text,
                };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        while self.members.len() <= i {
            self.members.push(None);
        }
        self.members[i] = Some(Member { child, stdin });
        Ok(())
    }

    /// Kills system `i` at once: its program, its admin daemon and its actors' processes.
    fn kill_system(&mut self, i: usize) {
        let Some(mut member) = self.members.get_mut(i).and_then(Option::take) else {
            return;
        };
        let mut pids = descendants(member.child.id());
        pids.push(member.child.id());
        for pid in pids {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is a process this
            // run started (the member's program or one of its descendants).
            unsafe {
                kill(pid as i32, SIGKILL);
            }
        }
        drop(member.stdin.take());
        let _ = member.child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing stdin asks each member to shut its system down.
        for member in self.members.iter_mut().flatten() {
            drop(member.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for member in self.members.iter_mut().flatten() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = member.child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = member.child.kill();
            let _ = member.child.wait();
        }
        let left = proc::carriers(&self.token).len();
        if left > 0 {
            eprintln!("xtask convention: killing {left} process(es) left after the members exited");
        }
        proc::kill_carriers(&self.token);
    }
}

/// Every descendant of `pid` (children, their children, ...), from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            // The field after the parenthesised command name: state, then the parent pid.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.entry(ppid).or_default().push(child);
            }
        }
    }
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for &c in parents.get(&p).into_iter().flatten() {
            found.push(c);
            todo.push(c);
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// What the members report

/// The latest view of every system: (leader, known), as its `member P: leader=L known=N` lines
/// say, and when it last changed.
#[derive(Default)]
struct Views {
    view: BTreeMap<usize, (String, usize, Instant)>,
}

impl Views {
    fn take(&mut self, line: &Line) {
        if let Some((leader, known)) = parse_view(&line.text) {
            self.view.insert(line.system, (leader, known, line.at));
        }
    }

    /// When every system in `followers` follows `leader_port`, and `leader` knows `known`
    /// others and leads itself: the time of the last of those changes.
    fn agreed(
        &self,
        leader: usize,
        leader_port: u16,
        known: usize,
        followers: &[usize],
    ) -> Option<Instant> {
        let (l, k, mut last) = self.view.get(&leader).cloned()?;
        if l != "self" || k != known {
            return None;
        }
        for f in followers {
            let (l, _, at) = self.view.get(f)?;
            if *l != leader_port.to_string() {
                return None;
            }
            last = last.max(*at);
        }
        Some(last)
    }
}

/// `member P: leader=L known=N` → (L, N).
fn parse_view(text: &str) -> Option<(String, usize)> {
    let (_, rest) = text.split_once(": leader=")?;
    let (leader, known) = rest.split_once(" known=")?;
    Some((leader.to_owned(), known.trim().parse().ok()?))
}

/// Reads lines until `done` holds, at most until `deadline`.
fn wait_for(
    cluster: &Cluster,
    views: &mut Views,
    deadline: Instant,
    what: &str,
    mut done: impl FnMut(&Views) -> Option<Instant>,
) -> Result<Instant, String> {
    loop {
        check_interrupt()?;
        if let Some(at) = done(views) {
            return Ok(at);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let seen: Vec<String> = views
                .view
                .iter()
                .map(|(i, (l, k, _))| format!("{i}: leader={l} known={k}"))
                .collect();
            return Err(format!(
                "timed out waiting for {what}; the systems' views: {}; logs in {}",
                seen.join(", "),
                cluster.logs.display()
            ));
        }
        if let Ok(line) = cluster
            .lines
            .recv_timeout(left.min(Duration::from_millis(100)))
        {
            views.take(&line);
        }
    }
}

/// What a workload run reported.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Workload {
    /// Creates per Admin Port.
    pub(crate) placed: BTreeMap<u16, usize>,
    pub(crate) failed: Vec<String>,
    /// Create plus first ask, per create, microseconds.
    pub(crate) micros: Vec<u64>,
}

/// Parses the workload's `created skill=S at=P micros=T` and `failed ...` lines.
pub(crate) fn parse_workload(stdout: &str) -> Workload {
    let mut w = Workload::default();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("created ") {
            let field = |key: &str| {
                rest.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if let (Some(at), Some(us)) = (field("at="), field("micros=")) {
                *w.placed.entry(at as u16).or_default() += 1;
                w.micros.push(us);
            }
        } else if line.starts_with("failed ") {
            w.failed.push(line.to_owned());
        }
    }
    w
}

/// Runs the workload attached to `system` (in its namespace if any).
fn run_workload(
    cluster: &Cluster,
    exe: &std::path::Path,
    system: &SystemPlan,
    options: &Options,
    creates: usize,
    skills: &[&str],
) -> Result<Workload, String> {
    let mut args = vec![
        "workload".to_owned(),
        "--admin".into(),
        system.admin().to_string(),
        "--base".into(),
        options.base.clone(),
        "--creates".into(),
        creates.to_string(),
    ];
    for skill in skills {
        args.extend(["--skill".to_owned(), (*skill).to_owned()]);
    }
    let command = cluster.command(exe, system, &args);
    let finished = proc::run(command, Duration::from_secs(60 + creates as u64))?;
    if finished.timed_out {
        return Err("the workload hung and was killed".into());
    }
    if !finished.success {
        return Err(format!(
            "the workload failed ({}): {}",
            finished.status,
            finished.stderr.trim()
        ));
    }
    Ok(parse_workload(&finished.stdout))
}

fn percentile(values: &[u64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i] as f64
}

// ---------------------------------------------------------------------------------------------
// The run

/// Runs `cargo xtask convention`.
pub(crate) fn run(options: &Options) -> Result<(), String> {
    catch_interrupts();
    let root = root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"));
    let logs = target.join("convention");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let exe = target
        .join("debug")
        .join("examples")
        .join(format!("convention{}", std::env::consts::EXE_SUFFIX));
    eprintln!("xtask convention: building the convention example");
    cargo(&["build", "-p", "thespian", "--example", "convention"])?;

    let netns = if options.netns {
        match netns_unavailable() {
            None => true,
            Some(why) => {
                eprintln!("xtask convention: no network namespaces ({why}); on loopback");
                false
            }
        }
    } else {
        false
    };
    let plan = if netns {
        sweep_stale();
        netns_plan(options.systems, std::process::id())
    } else {
        let first = free_ports(options.systems)
            .ok_or("no run of free consecutive ports in 20000..32000")?;
        loopback_plan(options.systems, first)
    };
    let n = options.systems;
    let where_ = match &plan.bridge {
        Some(bridge) => format!(
            "each in its own network namespace on a veth into bridge {bridge}, {}.1-{}.{n}",
            SUBNET.map(|b| b.to_string()).join("."),
            SUBNET.map(|b| b.to_string()).join(".")
        ),
        None => format!(
            "on loopback (127.0.0.1), Admin Ports {}-{}",
            plan.systems[0].port,
            plan.systems[n - 1].port
        ),
    };
    println!(
        "convention: {n} {} systems {where_}; registration period {} s",
        options.base, options.period
    );
    // Dropped in reverse order: the processes first, then the network they used.
    let _network = Network::build(&plan)?;
    let mut cluster = Cluster::new(logs);
    let mut views = Views::default();
    let period = Duration::from_secs_f64(options.period);

    // Start and converge.
    let begun = Instant::now();
    for i in 0..n {
        check_interrupt()?;
        cluster.start(&exe, &plan, i, options)?;
    }
    let all_but_0: Vec<usize> = (1..n).collect();
    let ports: Vec<u16> = plan.systems.iter().map(|s| s.port).collect();
    let converged = wait_for(
        &cluster,
        &mut views,
        Instant::now() + Duration::from_secs(30) + period * 10,
        "the convention to converge",
        |v| v.agreed(0, ports[0], n - 1, &all_but_0),
    )?;
    let converge_time = converged.saturating_duration_since(begun);
    println!(
        "  converged: system 0 ({}) knows the {} others and all follow it, {:.2} s after the first start",
        plan.systems[0].admin(),
        n - 1,
        converge_time.as_secs_f64()
    );

    // The workload, from the leader.
    let skills = plan.skills();
    let work = run_workload(
        &cluster,
        &exe,
        &plan.systems[0],
        options,
        options.creates,
        &skills,
    )?;
    let total: usize = work.placed.values().sum();
    println!(
        "  workload: {} creates by capability ({}) from the leader: {total} placed, {} failed; create + first ask p50 {:.1} ms, p99 {:.1} ms",
        options.creates,
        skills.join(", "),
        work.failed.len(),
        percentile(&work.micros, 0.5) / 1e3,
        percentile(&work.micros, 0.99) / 1e3,
    );
    for (i, system) in plan.systems.iter().enumerate().skip(2) {
        let count = work.placed.get(&system.port).copied().unwrap_or(0);
        println!(
            "    system {i:>3} {:<21} {:<6} {count} actor(s)",
            system.admin().to_string(),
            system.capabilities.join(",")
        );
    }
    for f in work.failed.iter().take(5) {
        println!("    {f}");
    }

    // Failover.
    cluster.kill_system(0);
    let killed = Instant::now();
    let survivors: Vec<usize> = (2..n).collect();
    let followed = wait_for(
        &cluster,
        &mut views,
        killed + Duration::from_secs(30) + period * 20,
        "the failover to system 1",
        |v| v.agreed(1, ports[1], n - 2, &survivors),
    )?;
    let failover = followed.saturating_duration_since(killed);
    let mut works_again = None;
    let deadline = killed + Duration::from_secs(60) + period * 20;
    while Instant::now() < deadline {
        check_interrupt()?;
        match run_workload(
            &cluster,
            &exe,
            &plan.systems[1],
            options,
            skills.len(),
            &skills,
        ) {
            Ok(w) if w.failed.is_empty() && !w.placed.is_empty() => {
                works_again = Some(killed.elapsed());
                break;
            }
            Ok(w) => eprintln!("xtask convention: not yet: {}", w.failed.join("; ")),
            Err(e) => eprintln!("xtask convention: not yet: {e}"),
        }
        thread::sleep(Duration::from_millis(100));
    }
    let works_again = works_again.ok_or("no create worked on the new leader within the wait")?;
    println!(
        "  failover: system 0 killed (SIGKILL); the {} members follow system 1 ({}) after {:.2} s ({:.1} periods); a create through it works {:.2} s after the kill",
        n - 2,
        plan.systems[1].admin(),
        failover.as_secs_f64(),
        failover.as_secs_f64() / options.period,
        works_again.as_secs_f64()
    );
    println!(
        "summary: converge {:.2} s; creates placed per member {}; failover {:.2} s (create again {:.2} s)",
        converge_time.as_secs_f64(),
        plan.systems
            .iter()
            .skip(2)
            .map(|s| work.placed.get(&s.port).copied().unwrap_or(0).to_string())
            .collect::<Vec<_>>()
            .join("/"),
        failover.as_secs_f64(),
        works_again.as_secs_f64()
    );
    drop(cluster);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_default_and_parse() {
        let o = Options::parse(&[]).unwrap();
        assert_eq!((o.systems, o.netns, o.base.as_str()), (10, false, "tcp"));
        let o = Options::parse(&args(&["--systems", "5", "--netns", "--base", "udp"])).unwrap();
        assert_eq!((o.systems, o.netns, o.base.as_str()), (5, true, "udp"));
        assert!(Options::parse(&args(&["--systems", "2"])).is_err());
        assert!(Options::parse(&args(&["--systems"])).is_err());
        assert!(Options::parse(&args(&["--base", "queue"])).is_err());
        assert!(Options::parse(&args(&["--period", "0"])).is_err());
        assert!(Options::parse(&args(&["--frobnicate"])).is_err());
    }

    #[test]
    fn the_loopback_plan_has_two_candidates_and_skilled_members() {
        let plan = loopback_plan(10, 25_000);
        assert_eq!(plan.systems.len(), 10);
        assert_eq!(plan.bridge, None);
        let ports: Vec<u16> = plan.systems.iter().map(|s| s.port).collect();
        assert_eq!(ports, (25_000..25_010).collect::<Vec<_>>());
        assert!(plan
            .systems
            .iter()
            .all(|s| s.ip.is_loopback() && s.netns.is_none()));
        assert_eq!(
            plan.leaders(),
            vec![
                "127.0.0.1:25000".parse::<SocketAddrV4>().unwrap(),
                "127.0.0.1:25001".parse().unwrap()
            ]
        );
        assert!(plan.systems[0].capabilities.is_empty());
        assert!(plan.systems[1].capabilities.is_empty());
        for skill in SKILLS {
            let having = plan
                .systems
                .iter()
                .filter(|s| s.capabilities.iter().any(|c| c == skill));
            assert!(having.count() >= 2, "{skill}");
        }
        assert_eq!(plan.skills(), SKILLS);
        assert_eq!(loopback_plan(3, 25_000).skills(), ["Morse"]);
        let member = plan.member_args(2, &Options::parse(&[]).unwrap());
        let joined = member.join(" ");
        assert!(
            joined.starts_with("member --port 25002 --ip 127.0.0.1"),
            "{joined}"
        );
        assert!(joined.contains("--leader 127.0.0.1:25000 --leader 127.0.0.1:25001"));
        assert!(joined.contains("--capability Morse"));
        assert!(joined.contains("--until-stdin-closes"));
    }

    #[test]
    fn the_netns_plan_names_fit_and_carry_the_owner() {
        let plan = netns_plan(250, 4_194_304);
        for s in &plan.systems {
            let ns = s.netns.as_ref().unwrap();
            assert!(
                ns.host_veth.len() <= 15 && ns.inner_veth.len() <= 15,
                "{ns:?}"
            );
            assert_eq!(owner_of(&ns.namespace), Some(4_194_304));
        }
        let bridge = plan.bridge.unwrap();
        assert!(bridge.len() <= 15);
        assert_eq!(owner_of(&bridge), Some(4_194_304));
        assert_eq!(plan.systems[249].ip, Ipv4Addr::new(10, 251, 0, 250));
    }

    #[test]
    fn views_and_workload_lines_are_read() {
        assert_eq!(
            parse_view("member 1951: leader=1950 known=2"),
            Some(("1950".into(), 2))
        );
        assert_eq!(parse_view("member 1951: ready (capabilities: Morse)"), None);
        let w = parse_workload(
            "created skill=Morse at=1952 micros=1500\ncreated skill=Paint at=1953 micros=2500\n\
             created skill=Morse at=1952 micros=500\nfailed skill=Sing error=x\ndone created=3 failed=1\n",
        );
        assert_eq!(w.placed, BTreeMap::from([(1952, 2), (1953, 1)]));
        assert_eq!(w.failed.len(), 1);
        assert_eq!(percentile(&w.micros, 0.5), 1500.0);
    }
}
