//! Thespian's multi-system example, re-imagined: actor systems join a *convention* around a
//! leader, and an actor that the leader's system cannot host is created on the member that can.
//!
//! One program, several roles (all on the Tcp base unless `--base udp`):
//!
//! ```text
//! convention                                    # the whole demo from one shell (below)
//! convention leader --port P                    # a leader; creates a MorseEncoder, then leaves
//! convention member --port P --leader HOST:PORT [--leader HOST:PORT]... [--capability NAME]...
//! convention workload --admin HOST:PORT --creates K --skill NAME [--skill NAME]...
//! ```
//!
//! Run it in three terminals, from the workspace (members first or last, in any order):
//!
//! ```text
//! cargo run --example convention -- member --port 1951 --leader 127.0.0.1:1950 --capability Morse
//! cargo run --example convention -- member --port 1952 --leader 127.0.0.1:1950 --capability Paint
//! cargo run --example convention -- leader --port 1950 --members 2
//! ```
//!
//! or all three from one shell with `cargo run --example convention`, which starts the two
//! members as child processes of its own and plays the leader.
//!
//! - The **leader** starts a system on its Admin Port, waits (at most `--wait` seconds, 60 by
//!   default) until `--members` members (default 1) have joined, one of them with the `Morse`
//!   capability (a watcher actor subscribed to convention updates tells it), creates a `MorseEncoder` (which requires `Morse`, so the
//!   leader's admin creates it on that member), asks it to encode a text, prints the reply and
//!   the Admin Port of the system it ran on, and shuts its system down, which tells the members.
//! - A **member** starts a system whose `Convention Address.IPv4` names the leader (repeat
//!   `--leader` for an ordered list of candidates: failover), with each `--capability NAME` set
//!   to `true`. It prints `member P: ready`, `member P: system Q joined` (or `left`) for each
//!   convention update, and `member P: leader=L known=N` whenever its status view changes (`L` the leader's Admin Port, `self` when it leads, `none` when there is none). It
//!   shuts its system down and exits when its leader has been gone for three registration
//!   periods (unless it is a candidate itself), when no leader has appeared within `--wait`
//!   seconds, on SIGINT (Ctrl-C) or SIGTERM, and, with `--until-stdin-closes`, when its
//!   standard input closes (how a parent process makes its members die with it).
//! - A **workload** attaches to a running system's Admin Port as a plain program (it starts no
//!   system), creates `--creates` actors each requiring one of the `--skill` capabilities in
//!   turn, asks each where it lives, and prints one line per create,
//!   `created skill=S at=PORT micros=T` (or `failed skill=S error=...`), then
//!   `done created=C failed=F`. `cargo xtask convention` drives these roles.
//!
//! Timing: `--period S` (seconds, default 1) sets the registration period, so joins and
//! departures are noticed within a second or two instead of Thespian's minutes.
//! `--ip A` (default 127.0.0.1) is the address the system listens on and advertises.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thespian::prelude::*;
use thespian::{
    keys, ActorSystemConventionUpdate, Requirements, StatusRequest, SystemStatus, ThespianError,
};

// ---------------------------------------------------------------------------------------------
// Messages and actors

/// Asks the [`Watcher`] to subscribe to convention updates and report them to the asker.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StartWatching;

/// A convention update, as the [`Watcher`] reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Joined {
    /// The remote system's Admin Port.
    port: i64,
    /// Its truthy capabilities that are not Thespian's own.
    capabilities: Vec<String>,
    /// True when it joined, false when it left.
    added: bool,
}

/// Text for the [`MorseEncoder`], answered with an [`Encoded`].
#[derive(Clone, Debug, Serialize, Deserialize, Message)]
#[message(name = "convention_example.Encode", reply = Encoded)]
struct Encode(String);

/// The [`MorseEncoder`]'s answer.
#[derive(Clone, Debug, Serialize, Deserialize, Message)]
#[message(name = "convention_example.Encoded")]
struct Encoded {
    morse: String,
    /// The Admin Port of the system it ran on.
    port: i64,
}

/// Asks a [`Skilled`] actor where it lives.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WhereAreYou;

/// The Admin Port of the system an actor lives in.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LivesAt(i64);

message!(
    StartWatching = "convention_example.StartWatching",
    Joined = "convention_example.Joined",
    WhereAreYou = "convention_example.WhereAreYou",
    LivesAt = "convention_example.LivesAt",
);

/// The Admin Port in a system's capabilities (0 when absent).
fn admin_port_of(caps: &Capabilities) -> i64 {
    caps.get_int(keys::ADMIN_PORT).ok().flatten().unwrap_or(0)
}

/// Subscribes to convention updates when asked, and reports each to whoever asked.
#[derive(Default)]
struct Watcher {
    reporter: Option<ActorAddress>,
}

impl Actor for Watcher {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<StartWatching>() {
            self.reporter = Some(env.sender().clone());
            ctx.notify_on_system_registration_changes(true)?;
        } else if let Ok(update) = env.get::<ActorSystemConventionUpdate>() {
            if let Some(reporter) = &self.reporter {
                let caps = &update.remote_capabilities;
                let capabilities = caps
                    .iter()
                    .filter(|(key, value)| {
                        // Thespian's own keys are not what this example is about.
                        !key.contains(' ')
                            && *key != keys::ALLOW_REMOTE_ACTOR_SOURCES
                            && value.is_truthy()
                    })
                    .map(|(key, _)| key.to_owned())
                    .collect();
                let joined = Joined {
                    port: admin_port_of(caps),
                    capabilities,
                    added: update.remote_added,
                };
                ctx.send(reporter, joined)?;
            }
        }
        Ok(())
    }
}

/// Encodes text in Morse code; lives only on a system with the `Morse` capability.
#[derive(Default)]
struct MorseEncoder;

impl MorseEncoder {
    fn encode(text: &str) -> String {
        const TABLE: [(char, &str); 36] = [
            ('A', ".-"),
            ('B', "-..."),
            ('C', "-.-."),
            ('D', "-.."),
            ('E', "."),
            ('F', "..-."),
            ('G', "--."),
            ('H', "...."),
            ('I', ".."),
            ('J', ".---"),
            ('K', "-.-"),
            ('L', ".-.."),
            ('M', "--"),
            ('N', "-."),
            ('O', "---"),
            ('P', ".--."),
            ('Q', "--.-"),
            ('R', ".-."),
            ('S', "..."),
            ('T', "-"),
            ('U', "..-"),
            ('V', "...-"),
            ('W', ".--"),
            ('X', "-..-"),
            ('Y', "-.--"),
            ('Z', "--.."),
            ('0', "-----"),
            ('1', ".----"),
            ('2', "..---"),
            ('3', "...--"),
            ('4', "....-"),
            ('5', "....."),
            ('6', "-...."),
            ('7', "--..."),
            ('8', "---.."),
            ('9', "----."),
        ];
        text.split_whitespace()
            .map(|word| {
                word.chars()
                    .filter_map(|c| {
                        let c = c.to_ascii_uppercase();
                        TABLE.iter().find(|(k, _)| *k == c).map(|(_, code)| *code)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

impl Actor for MorseEncoder {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(Encode(text)) = env.get::<Encode>() {
            let encoded = Encoded {
                morse: MorseEncoder::encode(text),
                port: admin_port_of(ctx.capabilities()),
            };
            ctx.send(env.sender(), encoded)?;
        }
        Ok(())
    }

    fn capability_check(caps: &Capabilities, _: &Requirements) -> bool {
        caps.is_truthy("Morse")
    }
}

/// Lives only on a system where every capability its create request requires is truthy; says
/// where that is. The workload's actor.
#[derive(Default)]
struct Skilled;

impl Actor for Skilled {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.is::<WhereAreYou>() {
            ctx.send(env.sender(), LivesAt(admin_port_of(ctx.capabilities())))?;
        }
        Ok(())
    }

    fn capability_check(caps: &Capabilities, requirements: &Requirements) -> bool {
        requirements.iter().all(|(key, _)| caps.is_truthy(key))
    }
}

thespian::register_actors!(Watcher, MorseEncoder, Skilled);

// ---------------------------------------------------------------------------------------------
// Command line

/// What every role shares.
#[derive(Clone, Debug)]
struct Common {
    base: SystemBase,
    ip: Ipv4Addr,
    period: f64,
    wait: Duration,
    /// The leader waits for this many members (one of them with `Morse`).
    members: usize,
}

/// The parsed command line.
#[derive(Debug)]
enum Role {
    Demo(Common),
    Leader {
        common: Common,
        port: u16,
    },
    Member {
        common: Common,
        port: u16,
        leaders: Vec<SocketAddrV4>,
        capabilities: Vec<String>,
        until_stdin_closes: bool,
    },
    Workload {
        common: Common,
        admin: SocketAddrV4,
        creates: usize,
        skills: Vec<String>,
    },
}

const USAGE: &str = "usage:
  convention                          the demo: two members (child processes) and a leader
  convention leader --port P [--members N]
  convention member --port P --leader HOST:PORT [--leader HOST:PORT]... [--capability NAME]...
                    [--until-stdin-closes]
  convention workload --admin HOST:PORT --creates K --skill NAME [--skill NAME]...
options of every role: --base tcp|udp (default tcp), --ip A (default 127.0.0.1),
  --period SECONDS (registration period, default 1), --wait SECONDS (default 60)";

fn parse(args: &[String]) -> Result<Role, String> {
    let mut common = Common {
        base: SystemBase::Tcp,
        ip: Ipv4Addr::LOCALHOST,
        period: 1.0,
        wait: Duration::from_secs(60),
        members: 1,
    };
    let Some((role, rest)) = args.split_first() else {
        return Ok(Role::Demo(common));
    };
    let mut port = None;
    let mut leaders = Vec::new();
    let mut capabilities = Vec::new();
    let mut until_stdin_closes = false;
    let mut admin = None;
    let mut creates = 10;
    let mut skills = Vec::new();
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let socket = |text: String| {
            text.parse::<SocketAddrV4>()
                .map_err(|_| format!("{flag}: not an IPv4 HOST:PORT: {text}"))
        };
        match flag.as_str() {
            "--port" => {
                let text = value()?;
                port = Some(text.parse().map_err(|_| format!("not a port: {text}"))?);
            }
            "--leader" => leaders.push(socket(value()?)?),
            "--admin" => admin = Some(socket(value()?)?),
            "--capability" => capabilities.push(value()?),
            "--skill" => skills.push(value()?),
            "--creates" => {
                let text = value()?;
                creates = text.parse().map_err(|_| format!("not a count: {text}"))?;
            }
            "--until-stdin-closes" => until_stdin_closes = true,
            "--members" => {
                let text = value()?;
                common.members = text.parse().map_err(|_| format!("not a count: {text}"))?;
            }
            "--base" => {
                common.base = SystemBase::from_str(&value()?).map_err(|e| e.to_string())?;
                if !matches!(common.base, SystemBase::Tcp | SystemBase::Udp) {
                    return Err("conventions need a multi-process base: tcp or udp".into());
                }
            }
            "--ip" => {
                let text = value()?;
                common.ip = text
                    .parse()
                    .map_err(|_| format!("not an IPv4 address: {text}"))?;
            }
            "--period" => {
                let text = value()?;
                common.period = text
                    .parse()
                    .ok()
                    .filter(|p: &f64| *p > 0.0 && p.is_finite())
                    .ok_or_else(|| format!("not a period in seconds: {text}"))?;
            }
            "--wait" => {
                let text = value()?;
                let secs: f64 = text
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or_else(|| format!("not a time in seconds: {text}"))?;
                common.wait = Duration::from_secs_f64(secs);
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let port = || port.ok_or_else(|| format!("{role} needs --port"));
    match role.as_str() {
        "leader" => Ok(Role::Leader {
            port: port()?,
            common,
        }),
        "member" if leaders.is_empty() => Err("member needs --leader HOST:PORT".into()),
        "member" => Ok(Role::Member {
            port: port()?,
            common,
            leaders,
            capabilities,
            until_stdin_closes,
        }),
        "workload" if skills.is_empty() => Err("workload needs at least one --skill".into()),
        "workload" => Ok(Role::Workload {
            admin: admin.ok_or("workload needs --admin HOST:PORT")?,
            common,
            creates,
            skills,
        }),
        other => Err(format!("unknown role {other:?}")),
    }
}

fn main() {
    // First: the admin daemon and the actors' processes are this program, executed again.
    thespian::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = match parse(&args) {
        Ok(role) => role,
        Err(e) => {
            eprintln!("convention: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let stop = stop_on_signals();
    let result = match role {
        Role::Demo(common) => demo(&common, stop),
        Role::Leader { common, port } => leader(&common, port, stop),
        Role::Member {
            common,
            port,
            leaders,
            capabilities,
            until_stdin_closes,
        } => member(
            &common,
            port,
            &leaders,
            &capabilities,
            until_stdin_closes,
            stop,
        ),
        Role::Workload {
            common,
            admin,
            creates,
            skills,
        } => workload(&common, admin, creates, &skills),
    };
    if let Err(e) = result {
        eprintln!("convention: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Signals

/// Set by SIGINT or SIGTERM.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM raise [`SIGNALLED`] instead of killing the program at once, so
/// the roles can shut their systems down (a system's admin daemon outlives the program that
/// started it otherwise).
fn stop_on_signals() -> &'static AtomicBool {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                signal,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
    &SIGNALLED
}

// ---------------------------------------------------------------------------------------------
// Systems

/// A running system, shut down when dropped (an early return or an error included).
struct Running(ActorSystem);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

fn start_system(
    common: &Common,
    port: u16,
    leaders: &[SocketAddrV4],
    capabilities: &[String],
) -> thespian::Result<Running> {
    let mut builder = ActorSystem::builder()
        .base(common.base)
        .transient_unique(true)
        .capability(keys::ADMIN_PORT, i64::from(port))
        .capability(keys::CONVENTION_REREGISTRATION_PERIOD, common.period)
        .capability(keys::CONVENTION_RESTART_PERIOD, common.period)
        .advertise_ip(IpAddr::V4(common.ip));
    match leaders {
        [] => {}
        [one] => builder = builder.capability(keys::CONVENTION_ADDRESS_IPV4, one.to_string()),
        many => {
            let list = many
                .iter()
                .map(|l| CapabilityValue::from(l.to_string()))
                .collect();
            builder = builder.capability(keys::CONVENTION_ADDRESS_IPV4, CapabilityValue::List(list))
        }
    }
    for name in capabilities {
        builder = builder.capability(name.as_str(), true);
    }
    Ok(Running(builder.start()?))
}

/// The system's status, from a private endpoint.
fn status(endpoint: &ActorSystem) -> thespian::Result<SystemStatus> {
    let deadline = Instant::now() + Duration::from_secs(10);
    endpoint.tell(&endpoint.admin_address(), StatusRequest)?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ThespianError::SystemFailure("no status within 10 s".into()));
        }
        if let Some(env) = endpoint.listen(left)? {
            if let Ok(status) = env.get::<SystemStatus>() {
                return Ok(status.clone());
            }
        }
    }
}

/// The leader as a status shows it: its Admin Port, `self` or `none`; and how many remote
/// systems are known.
fn view(status: &SystemStatus, candidate: bool) -> (String, usize) {
    let Some(convention) = &status.convention else {
        return ("none".into(), 0);
    };
    let leader = match &convention.leader {
        Some(admin) => convention
            .members
            .iter()
            .find(|m| &m.admin_address == admin)
            .map_or_else(
                || "unknown".to_owned(),
                |m| admin_port_of(&m.capabilities).to_string(),
            ),
        None if candidate => "self".into(),
        None => "none".into(),
    };
    (leader, convention.members.len())
}

// ---------------------------------------------------------------------------------------------
// Roles

fn leader(common: &Common, port: u16, stop: &AtomicBool) -> Result<(), String> {
    let running = start_system(common, port, &[], &[]).map_err(|e| e.to_string())?;
    let sys = &running.0;
    let wanted = common.members.max(1);
    println!("leader {port}: ready; waiting for {wanted} member(s), one with Morse");
    let endpoint = sys.private().map_err(|e| e.to_string())?;
    let watcher = endpoint
        .create_actor::<Watcher>()
        .map_err(|e| e.to_string())?;
    endpoint
        .tell(&watcher, StartWatching)
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + common.wait;
    let mut joined_ports = std::collections::BTreeSet::new();
    let mut morse_member = None;
    let morse_member = loop {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "{wanted} member(s), one with the Morse capability, did not join within {:?}",
                common.wait
            ));
        }
        let heard = endpoint
            .listen(left.min(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let Some(env) = heard else { continue };
        let Ok(joined) = env.get::<Joined>() else {
            continue;
        };
        let what = if joined.added { "joined" } else { "left" };
        println!(
            "leader {port}: member {} {what} (capabilities: {})",
            joined.port,
            if joined.capabilities.is_empty() {
                "none".to_owned()
            } else {
                joined.capabilities.join(", ")
            }
        );
        if joined.added {
            joined_ports.insert(joined.port);
            if joined.capabilities.iter().any(|c| c == "Morse") {
                morse_member = Some(joined.port);
            }
        } else {
            joined_ports.remove(&joined.port);
        }
        if let Some(morse) = morse_member {
            if joined_ports.len() >= wanted {
                break morse;
            }
        }
    };
    // This system lacks Morse: its admin creates the actor on the member that has it.
    let encoder = sys
        .create_actor::<MorseEncoder>()
        .map_err(|e| format!("creating the MorseEncoder: {e}"))?;
    let text = "Hello from the convention";
    let encoded = sys
        .request(&encoder, Encode(text.into()), Duration::from_secs(10))
        .map_err(|e| format!("asking the MorseEncoder: {e}"))?;
    println!("leader {port}: {text:?} in Morse: {}", encoded.morse);
    println!(
        "leader {port}: the MorseEncoder ran on the system with Admin Port {} (the Morse member joined as {morse_member})",
        encoded.port
    );
    println!("leader {port}: shutting down (the members are told)");
    drop(running);
    Ok(())
}

fn member(
    common: &Common,
    port: u16,
    leaders: &[SocketAddrV4],
    capabilities: &[String],
    until_stdin_closes: bool,
    stop: &AtomicBool,
) -> Result<(), String> {
    let running = start_system(common, port, leaders, capabilities).map_err(|e| e.to_string())?;
    let endpoint = running.0.private().map_err(|e| e.to_string())?;
    // Convention updates come once per join and per departure, however brief the stay: a
    // leader that came and went between two status polls is still noticed.
    let watching = running.0.private().map_err(|e| e.to_string())?;
    let watcher = watching
        .create_actor::<Watcher>()
        .map_err(|e| e.to_string())?;
    watching
        .tell(&watcher, StartWatching)
        .map_err(|e| e.to_string())?;
    let candidate = leaders
        .iter()
        .any(|l| l.port() == port && (l.ip() == &common.ip || l.ip().is_loopback()));
    let stdin_closed = Arc::new(AtomicBool::new(false));
    if until_stdin_closes {
        let closed = stdin_closed.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            closed.store(true, Ordering::Relaxed);
        });
    }
    let list = if capabilities.is_empty() {
        "none".to_owned()
    } else {
        capabilities.join(", ")
    };
    println!("member {port}: ready (capabilities: {list})");
    let period = Duration::from_secs_f64(common.period);
    let started = Instant::now();
    let mut shown = None;
    let mut had_leader = false;
    let mut gone_since: Option<Instant> = None;
    let why = loop {
        if stop.load(Ordering::Relaxed) {
            break "interrupted".to_owned();
        }
        if stdin_closed.load(Ordering::Relaxed) {
            break "standard input closed".to_owned();
        }
        while let Some(env) = watching
            .listen(Duration::from_millis(100))
            .map_err(|e| e.to_string())?
        {
            if let Ok(update) = env.get::<Joined>() {
                let what = if update.added { "joined" } else { "left" };
                println!("member {port}: system {} {what}", update.port);
                let leads = leaders.iter().any(|l| i64::from(l.port()) == update.port);
                had_leader |= leads && update.added;
            }
        }
        let status = status(&endpoint).map_err(|e| format!("status: {e}"))?;
        let (leader, known) = view(&status, candidate);
        if shown.as_ref() != Some(&(leader.clone(), known)) {
            println!("member {port}: leader={leader} known={known}");
            shown = Some((leader.clone(), known));
        }
        let has_leader = leader != "self" && leader != "none";
        if has_leader {
            had_leader = true;
            gone_since = None;
        } else if !candidate {
            if had_leader {
                let since = *gone_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= period * 3 {
                    break "the leader has been gone for three registration periods".to_owned();
                }
            } else if started.elapsed() >= common.wait {
                break format!("no leader within {:?}", common.wait);
            }
        }
    };
    println!("member {port}: {why}; shutting down");
    drop(watching);
    drop(endpoint);
    drop(running);
    Ok(())
}

fn workload(
    common: &Common,
    admin: SocketAddrV4,
    creates: usize,
    skills: &[String],
) -> Result<(), String> {
    // Only attach: `start()` would start a new system if nobody held the Admin Port.
    let free = match common.base {
        SystemBase::Udp => UdpSocket::bind(admin).is_ok(),
        _ => TcpListener::bind(admin).is_ok(),
    };
    if free {
        return Err(format!("no system listens at {admin}"));
    }
    let sys = ActorSystem::builder()
        .base(common.base)
        .transient_unique(true)
        .capability(keys::ADMIN_PORT, i64::from(admin.port()))
        .advertise_ip(IpAddr::V4(*admin.ip()))
        .start()
        .map_err(|e| e.to_string())?;
    let (mut created, mut failed) = (0, 0);
    for i in 0..creates {
        let skill = &skills[i % skills.len()];
        let begun = Instant::now();
        let placed = sys
            .create_actor_with::<Skilled>(CreateOptions::new().requirement(skill.as_str(), true))
            .and_then(|actor| sys.ask(&actor, WhereAreYou, Duration::from_secs(10)));
        match placed {
            Ok(Some(reply)) => match reply.get::<LivesAt>() {
                Ok(LivesAt(at)) => {
                    created += 1;
                    println!(
                        "created skill={skill} at={at} micros={}",
                        begun.elapsed().as_micros()
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("failed skill={skill} error={e}");
                }
            },
            Ok(None) => {
                failed += 1;
                println!("failed skill={skill} error=no answer within 10 s");
            }
            Err(e) => {
                failed += 1;
                println!(
                    "failed skill={skill} error={}",
                    e.to_string().replace('\n', " ")
                );
            }
        }
    }
    println!("done created={created} failed={failed}");
    // The system is not this program's: it stays up.
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The demo from one shell

/// A member started by the demo; its standard input is a pipe, so it exits when this program
/// does, and it is killed if it has not exited on its own in time.
struct ChildMember(Option<Child>);

impl ChildMember {
    fn spawn(common: &Common, port: u16, leader: u16, capability: &str) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .args(["member", "--port", &port.to_string()])
            .args(["--leader", &format!("{}:{leader}", common.ip)])
            .args(["--capability", capability, "--until-stdin-closes"])
            .args(["--base", &common.base.to_string().to_ascii_lowercase()])
            .args(["--ip", &common.ip.to_string()])
            .args(["--period", &common.period.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a member: {e}"))?;
        Ok(ChildMember(Some(child)))
    }

    /// Waits up to `patience` for it to exit on its own, then closes its standard input and
    /// waits again, then kills it.
    fn finish(&mut self, patience: Duration) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let wait = |child: &mut Child, patience: Duration| {
            let deadline = Instant::now() + patience;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        };
        if wait(&mut child, patience) {
            return;
        }
        drop(child.stdin.take());
        if !wait(&mut child, Duration::from_secs(15)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        self.finish(Duration::ZERO);
    }
}

fn demo(common: &Common, stop: &AtomicBool) -> Result<(), String> {
    let (leader_port, morse_port, paint_port) = (1950, 1951, 1952);
    println!(
        "demo: members on ports {morse_port} (Morse) and {paint_port} (Paint), the leader on {leader_port}"
    );
    let mut members = [
        ChildMember::spawn(common, morse_port, leader_port, "Morse")?,
        ChildMember::spawn(common, paint_port, leader_port, "Paint")?,
    ];
    let common = Common {
        members: 2,
        ..common.clone()
    };
    let led = leader(&common, leader_port, stop);
    // The members notice their leader left and exit within a few periods.
    let patience = Duration::from_secs_f64(common.period * 6.0 + 5.0);
    for member in &mut members {
        member.finish(patience);
    }
    led
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn morse_words_are_letters_apart_and_slashes_between() {
        assert_eq!(MorseEncoder::encode("SOS sos"), "... --- ... / ... --- ...");
    }
}
