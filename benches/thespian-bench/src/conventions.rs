//! The convention benchmarks (`cargo xtask bench` runs them after the other workloads):
//!
//! ```text
//! thespian-bench conventions remote-create <creates>   # Tcp: remote against local create
//! thespian-bench conventions sim <systems>              # convergence in the simulation
//! ```
//!
//! - `remote-create`: two Tcp systems on 127.0.0.1, a leader and a member with the `Remote`
//!   capability. In the same run, `creates` top-level creates on the leader of an actor it can
//!   host (local) and of one that requires `Remote` (created on the member), each followed by
//!   one ask of the new actor (so its process is up and serving). Figures: `rate` and `p50_us`
//!   of the remote creates, `local_rate` and `local_p50_us`, and `ratio` = remote rate / local
//!   rate.
//! - `sim`: `thespian_conventions::sim` with `systems` systems (two leader candidates) starting
//!   within one restart period on a calm network; figures: `periods` (virtual registration
//!   periods from the last start to convergence), `wall_ms` (the run's wall time) and
//!   `messages` (what the machines sent).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use thespian::prelude::*;
use thespian::{keys, NewActor, Requirements, StatusRequest, SystemStatus, ThespianError};
use thespian_conventions::sim;

use crate::common::{self, Outcome, PATIENCE};
use crate::net::{free_admin_port, kill_leftovers, Running, OWNER_ENV};
use crate::thespian_rs::{expect_reply, Echo};

/// Runs `conventions <remote-create|sim> <size>` (the arguments after `conventions`).
pub(crate) fn main(argv: &[String]) -> Outcome {
    let usage = || -> ! {
        eprintln!("usage: conventions <remote-create|sim> <size>");
        std::process::exit(2)
    };
    let size = match argv.get(1).map(|s| s.parse::<u64>()) {
        Some(Ok(size)) if size > 0 && argv.len() == 2 => size,
        _ => usage(),
    };
    match argv[0].as_str() {
        "remote-create" => remote_create(size),
        "sim" => simulate(size as usize),
        _ => usage(),
    }
}

/// An echo that lives only where the `Remote` capability is truthy.
#[derive(Default)]
struct RemoteEcho;

impl Actor for RemoteEcho {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        ctx.forward(env.sender(), env)?;
        Ok(())
    }

    fn capability_check(caps: &Capabilities, _: &Requirements) -> bool {
        caps.is_truthy("Remote")
    }
}

thespian::register_actors!(RemoteEcho);

/// Starts a Tcp system on `port`, following the leader at `leader` if any.
fn start(port: u16, leader: Option<u16>, remote: bool) -> Result<Running, ThespianError> {
    let mut builder = ActorSystem::builder()
        .base(SystemBase::Tcp)
        .transient_unique(true)
        .capability(keys::ADMIN_PORT, i64::from(port))
        .capability(keys::CONVENTION_REREGISTRATION_PERIOD, 0.5)
        .capability(keys::CONVENTION_RESTART_PERIOD, 0.5)
        .advertise_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if let Some(leader) = leader {
        builder = builder.capability(keys::CONVENTION_ADDRESS_IPV4, format!("127.0.0.1:{leader}"));
    }
    if remote {
        builder = builder.capability("Remote", true);
    }
    Ok(Running(Some(builder.start()?)))
}

/// Waits until `sys` knows one member (at most 30 s).
fn wait_for_member(sys: &ActorSystem) -> Result<(), ThespianError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let reply = expect_reply(sys.ask(&sys.admin_address(), StatusRequest, PATIENCE)?)?;
        let status = reply.get::<SystemStatus>()?;
        if status
            .convention
            .as_ref()
            .is_some_and(|c| !c.members.is_empty())
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ThespianError::SystemFailure(
        "the member did not join the leader within 30 s".into(),
    ))
}

/// `n` creates of `A` on `sys`, each followed by one ask: the latency of each.
fn creates<A: Actor + NewActor>(sys: &ActorSystem, n: u64) -> Result<Vec<Duration>, ThespianError> {
    let mut latencies = Vec::with_capacity(n as usize);
    for i in 0..n {
        let begun = Instant::now();
        let actor = sys.create_actor::<A>()?;
        let reply = expect_reply(sys.ask(&actor, i, PATIENCE)?)?;
        if *reply.get::<u64>()? != i {
            return Err(ThespianError::SystemFailure("echo mismatch".into()));
        }
        latencies.push(begun.elapsed());
    }
    Ok(latencies)
}

/// Rate and p50 (µs) of a series of create latencies.
fn figures(mut latencies: Vec<Duration>) -> (f64, f64) {
    let total: Duration = latencies.iter().sum();
    latencies.sort_unstable();
    let p50 = common::percentile(&latencies, 0.5);
    (
        latencies.len() as f64 / total.as_secs_f64(),
        p50.as_secs_f64() * 1e6,
    )
}

fn remote_create(n: u64) -> Outcome {
    // Every process of both systems inherits the mark (set while this is the only thread).
    let mark = format!("{}-conventions", std::process::id());
    std::env::set_var(OWNER_ENV, &mark);
    let (Some(leader_port), Some(member_port)) = (free_admin_port(), free_admin_port()) else {
        common::fail("no free ports for the admins");
    };
    if leader_port == member_port {
        common::fail("the same port twice; try again");
    }
    let measured = (|| {
        let leader = start(leader_port, None, false)?;
        let member = start(member_port, Some(leader_port), true)?;
        wait_for_member(leader.sys())?;
        let sys = leader.sys();
        // Warm-up, then local and remote interleaved in halves so a drift in the machine's
        // load touches both alike.
        creates::<Echo>(sys, common::warmup(n))?;
        creates::<RemoteEcho>(sys, common::warmup(n))?;
        let half = (n / 2).max(1);
        let mut local = creates::<Echo>(sys, half)?;
        let mut remote = creates::<RemoteEcho>(sys, half)?;
        local.extend(creates::<Echo>(sys, n - half)?);
        remote.extend(creates::<RemoteEcho>(sys, n - half)?);
        leader.shutdown()?;
        member.shutdown()?;
        Ok::<_, ThespianError>((local, remote))
    })();
    let left = kill_leftovers(&mark);
    let (local, remote) = match measured {
        Ok(pair) => pair,
        Err(e) => common::fail(e),
    };
    if left > 0 {
        common::fail(format!(
            "{left} process(es) of the systems were still alive after shutdown and were killed"
        ));
    }
    let (local_rate, local_p50) = figures(local);
    let (rate, p50) = figures(remote);
    Outcome::Figures(vec![
        ("rate", rate),
        ("p50_us", p50),
        ("local_rate", local_rate),
        ("local_p50_us", local_p50),
        ("ratio", rate / local_rate),
    ])
}

fn simulate(systems: usize) -> Outcome {
    let scenario = sim::Scenario::new(systems, 2);
    let begun = Instant::now();
    let report = sim::run(systems as u64, &scenario);
    let wall = begun.elapsed();
    if !report.ok() {
        common::fail(report.describe());
    }
    let Some(periods) = report.periods_to_convergence else {
        common::fail(report.describe());
    };
    Outcome::Figures(vec![
        ("periods", periods),
        ("wall_ms", wall.as_secs_f64() * 1e3),
        ("messages", report.counts.sent as f64),
    ])
}
