//! A base from another crate (`ActorSystemBuilder::driver`): a wrapper around the Simple base
//! that counts the messages sent through it, standing for any third-party base.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thespian::prelude::*;
use thespian::{
    ActorError, BaseDriver, BaseSettings, CapabilityValue, CreateRequest, CustomBase, Payload,
    ThespianError,
};

#[derive(Default)]
struct Echo;

impl Actor for Echo {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if let Ok(text) = env.get::<String>() {
            ctx.send(env.sender(), text.clone())?;
        }
        Ok(())
    }
}

/// The Simple base, counting what its handles send.
struct Counting {
    inner: Arc<dyn BaseDriver>,
    sent: Arc<AtomicUsize>,
}

impl BaseDriver for Counting {
    fn base_name(&self) -> &'static str {
        "countingSimpleBase"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn admin_address(&self) -> ActorAddress {
        self.inner.admin_address()
    }
    fn open_endpoint(&self) -> thespian::Result<ActorAddress> {
        self.inner.open_endpoint()
    }
    fn close_endpoint(&self, endpoint: &ActorAddress) {
        self.inner.close_endpoint(endpoint)
    }
    fn create_actor(
        &self,
        endpoint: &ActorAddress,
        request: CreateRequest,
    ) -> thespian::Result<ActorAddress> {
        self.inner.create_actor(endpoint, request)
    }
    fn tell(
        &self,
        endpoint: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
    ) -> thespian::Result<()> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.tell(endpoint, to, payload)
    }
    fn ask(
        &self,
        endpoint: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
        timeout: Duration,
    ) -> thespian::Result<Option<Envelope>> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.ask(endpoint, to, payload, timeout)
    }
    fn listen(
        &self,
        endpoint: &ActorAddress,
        timeout: Duration,
    ) -> thespian::Result<Option<Envelope>> {
        self.inner.listen(endpoint, timeout)
    }
    fn update_capability(
        &self,
        name: &str,
        value: Option<CapabilityValue>,
    ) -> thespian::Result<()> {
        self.inner.update_capability(name, value)
    }
    fn shutdown(&self) -> thespian::Result<()> {
        self.inner.shutdown()
    }
    fn is_shut_down(&self) -> bool {
        self.inner.is_shut_down()
    }
}

struct CountingBase {
    sent: Arc<AtomicUsize>,
}

impl CustomBase for CountingBase {
    fn name(&self) -> &'static str {
        "countingSimpleBase"
    }
    fn start(&self, settings: BaseSettings) -> thespian::Result<Arc<dyn BaseDriver>> {
        Ok(Arc::new(Counting {
            inner: settings.start_simple(),
            sent: self.sent.clone(),
        }))
    }
}

#[test]
fn a_base_from_another_crate_runs_actors() -> Result<(), ActorError> {
    let sent = Arc::new(AtomicUsize::new(0));
    let sys = ActorSystem::builder()
        .driver(CountingBase { sent: sent.clone() })
        .transient_unique(true)
        .start()?;
    assert_eq!(sys.base(), SystemBase::Custom("countingSimpleBase"));
    let echo = sys.create_actor::<Echo>()?;
    sys.tell(&echo, "one".to_owned())?;
    let reply = sys.listen(Duration::from_secs(1))?.expect("an echo");
    assert_eq!(reply.get::<String>()?, "one");
    let reply = sys
        .ask(&echo, "two".to_owned(), Duration::from_secs(1))?
        .expect("an echo");
    assert_eq!(reply.get::<String>()?, "two");
    assert_eq!(sent.load(Ordering::Relaxed), 2);
    sys.shutdown()?;
    Ok(())
}

#[test]
fn a_custom_base_without_its_driver_is_a_startup_error() {
    match ActorSystem::builder()
        .base(SystemBase::Custom("nowhere"))
        .transient_unique(true)
        .start()
    {
        Err(ThespianError::StartupFailure(reason)) => {
            assert!(reason.contains("ActorSystemBuilder::driver"), "{reason}")
        }
        other => panic!("expected a StartupFailure, got {other:?}"),
    }
}
