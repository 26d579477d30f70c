//! What a program built without some of the facade's bases gets: a startup error naming the
//! feature, and an `init()` and `register_actors!` that still work. Meaningful when run with
//! features off, e.g. `cargo test -p thespian --no-default-features --features queue --test
//! features`; with the defaults only the always-true checks run. Without `watch`, the Queue
//! base refuses descriptor watches.

use std::time::Duration;

use thespian::prelude::*;
use thespian::ThespianError;

#[derive(Default)]
struct Greeter;

impl Actor for Greeter {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        ctx.send(env.sender(), "hello".to_owned())?;
        Ok(())
    }
}

thespian::register_actors!(Greeter);

#[allow(dead_code)] // Used only by the tests of the bases that are off.
fn assert_not_built_in(base: SystemBase, feature: &str) {
    match ActorSystem::builder()
        .base(base)
        .transient_unique(true)
        .start()
    {
        Err(ThespianError::StartupFailure(reason)) => assert_eq!(
            reason,
            format!("the {base:?} base is not built in: enable the thespian feature \"{feature}\"")
        ),
        other => panic!("expected a StartupFailure, got {other:?}"),
    }
}

#[test]
fn the_simple_base_is_always_built_in() -> thespian::Result<()> {
    thespian::init();
    let sys = ActorSystem::builder().transient_unique(true).start()?;
    let greeter = sys.create_actor::<Greeter>()?;
    let reply = sys
        .ask(&greeter, (), Duration::from_secs(1))?
        .expect("a reply");
    assert_eq!(reply.get::<String>()?, "hello");
    sys.shutdown()
}

#[cfg(not(feature = "queue"))]
#[test]
fn the_queue_base_needs_its_feature() {
    assert_not_built_in(SystemBase::Queue, "queue");
}

#[cfg(not(feature = "tcp"))]
#[test]
fn the_tcp_base_needs_its_feature() {
    assert_not_built_in(SystemBase::Tcp, "tcp");
}

#[cfg(not(feature = "udp"))]
#[test]
fn the_udp_base_needs_its_feature() {
    assert_not_built_in(SystemBase::Udp, "udp");
}

/// Asks for a watch of its own stdin and answers with the outcome's text.
#[cfg(all(feature = "queue", not(feature = "watch")))]
#[derive(Default)]
struct Watcher;

#[cfg(all(feature = "queue", not(feature = "watch")))]
impl Actor for Watcher {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        let outcome = match ctx.watch(&[0]) {
            Ok(()) => "watching".to_owned(),
            Err(e) => e.to_string(),
        };
        ctx.send(env.sender(), outcome)?;
        Ok(())
    }
}

#[cfg(all(feature = "queue", not(feature = "watch")))]
#[test]
fn the_queue_base_without_watch_refuses_watches() -> thespian::Result<()> {
    let sys = ActorSystem::builder()
        .base(SystemBase::Queue)
        .transient_unique(true)
        .start()?;
    assert!(!sys
        .capabilities()
        .is_truthy(thespian::keys::WATCH_SUPPORTED));
    let watcher = sys.create_actor::<Watcher>()?;
    let reply = sys
        .ask(&watcher, (), Duration::from_secs(5))?
        .expect("a reply");
    assert_eq!(
        reply.get::<String>()?,
        "watch (ThespianWatch) is not supported by this base (multiprocQueueBase)"
    );
    sys.shutdown()
}
