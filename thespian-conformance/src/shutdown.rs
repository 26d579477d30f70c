//! System shutdown: `shutdown()` twice is harmless (Thespian's `test_actors.py`); a shut-down
//! system refuses further use with `SystemShutDown`; an actor's `actor_system_shutdown()` shuts
//! the system down (`test_actorSystemRestart.py`); shutdown runs every actor's exit handler,
//! parents before children for the request and children first for the exit, orphans included.

use thespian::prelude::*;
use thespian::ThespianError;

use crate::bases::{traits, TestBase};
use crate::helpers::{
    ask, assert_alive, assert_gone, events, record, sink, start, status, Echo, UseSink,
    NO_REPLY_TIMEOUT,
};

pub(crate) fn double_shutdown_is_harmless(base: TestBase) {
    let sys = start(base);
    let echo = sys.create_actor::<Echo>().expect("create");
    assert_eq!(ask::<String>(&sys, &echo, "before"), "before");
    assert!(!sys.is_shut_down());
    sys.shutdown().expect("first shutdown");
    assert!(sys.is_shut_down());
    sys.shutdown().expect("second shutdown is harmless");
    assert!(sys.is_shut_down());
}

fn assert_shut_down<T: std::fmt::Debug>(what: &str, result: thespian::Result<T>) {
    match result {
        Err(ThespianError::SystemShutDown) => {}
        other => panic!("{what} after shutdown: expected SystemShutDown, got {other:?}"),
    }
}

pub(crate) fn tell_after_shutdown_fails(base: TestBase) {
    let sys = start(base);
    let echo = sys.create_actor::<Echo>().expect("create");
    sys.shutdown().expect("shutdown");
    assert_shut_down("tell", sys.tell(&echo, "too late"));
    assert_shut_down("ask", sys.ask(&echo, "too late", NO_REPLY_TIMEOUT));
    assert_shut_down("listen", sys.listen(NO_REPLY_TIMEOUT));
    assert_shut_down("create_actor", sys.create_actor::<Echo>());
    assert_shut_down("private", sys.private());
}

/// `stop` calls `actor_system_shutdown()`; records its exit in its sink, if given one.
#[derive(Default)]
struct Stopper {
    sink: Option<u64>,
}

impl Actor for Stopper {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(UseSink(id)) = env.get::<UseSink>() {
            self.sink = Some(*id);
            ctx.send(env.sender(), "ok")?;
        } else if env.get::<String>().is_ok_and(|t| t == "stop") {
            ctx.actor_system_shutdown();
        } else if env.is::<ActorExitRequest>() {
            if let Some(id) = self.sink {
                record(id, "stopper exits");
            }
        }
        Ok(())
    }
}

pub(crate) fn actor_system_shutdown_from_an_actor(base: TestBase) {
    let sys = start(base);
    let stopper = sys.create_actor::<Stopper>().expect("create");
    let id = sink();
    assert_eq!(ask::<String>(&sys, &stopper, UseSink(id)), "ok");
    sys.tell(&stopper, "stop").expect("tell");
    // The shutdown may complete in the background: wait (bounded) until it shows.
    let mut attempts = 0;
    loop {
        match sys.listen(NO_REPLY_TIMEOUT) {
            Err(ThespianError::SystemShutDown) => break,
            Ok(None) if attempts < 20 => attempts += 1,
            other => panic!("expected the system to shut down, got {other:?}"),
        }
    }
    assert!(sys.is_shut_down());
    assert_shut_down("tell", sys.tell(&stopper, "hello?"));
    if traits(base).in_process {
        assert_eq!(events(id), vec!["stopper exits"], "its exit handler ran");
    }
}

/// Builds a chain: takes the first name, creates a child for the rest; the last replies
/// `built`. Records its exit request and its children's exits in the sink.
#[derive(Default)]
struct SinkNode {
    sink: u64,
    name: String,
}

impl Actor for SinkNode {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok((UseSink(id), names, reply_to)) =
            env.get::<(UseSink, Vec<String>, ActorAddress)>()
        {
            self.sink = *id;
            self.name = names[0].clone();
            if names.len() > 1 {
                let child = ctx.create_actor::<SinkNode>()?;
                let rest = (UseSink(*id), names[1..].to_vec(), reply_to.clone());
                ctx.send(&child, rest)?;
            } else {
                ctx.send(reply_to, "built")?;
            }
        } else if env.is::<ActorExitRequest>() {
            record(self.sink, format!("exit {}", self.name));
        } else if env.is::<ChildActorExited>() {
            record(self.sink, format!("{} saw its child exit", self.name));
        } else if env.is::<String>() {
            ctx.forward(env.sender(), env)?;
        }
        Ok(())
    }
}

fn build(sys: &ActorSystem, id: u64, names: &[&str]) -> ActorAddress {
    let root = sys.create_actor::<SinkNode>().expect("create");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let me = sys.my_address().clone();
    assert_eq!(ask::<String>(sys, &root, (UseSink(id), names, me)), "built");
    root
}

pub(crate) fn shutdown_runs_exit_handlers_children_first(base: TestBase) {
    if !traits(base).in_process {
        eprintln!("skipped on {base}: actors record into a static of the test process");
        return;
    }
    let sys = start(base);
    let id = sink();
    build(&sys, id, &["root", "mid", "leaf"]);
    let orphans_parent = build(&sys, id, &["parent", "orphan"]);
    let orphan = status(&sys, &orphans_parent).child_actors[0].clone();
    sys.tell(&orphans_parent, ActorExitRequest::non_recursive())
        .expect("tell");
    assert_gone(&sys, &orphans_parent);
    assert_alive(&sys, &orphan);
    assert_eq!(events(id), vec!["exit parent"], "the orphan kept running");
    sys.shutdown().expect("shutdown");
    let all = events(id);
    let tree: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|e| ["root", "mid", "leaf"].iter().any(|n| e.contains(n)))
        .collect();
    assert_eq!(
        tree,
        vec![
            "exit root",
            "exit mid",
            "exit leaf",
            "mid saw its child exit",
            "root saw its child exit",
        ]
    );
    assert!(
        all.iter().any(|e| e == "exit orphan"),
        "orphans exit at shutdown: {all:?}"
    );
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Stopper, SinkNode);
