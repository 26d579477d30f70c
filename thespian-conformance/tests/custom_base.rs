//! The whole suite on a base from another crate (`ActorSystemBuilder::driver`), through the one
//! macro call a third-party base needs: a wrapper around the Simple base that counts the
//! messages sent through it. It wraps Simple, so it states Simple's traits and must pass what
//! Simple passes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thespian::prelude::*;
use thespian::{
    ActorSystemBuilder, BaseDriver, BaseSettings, CapabilityValue, CreateRequest, CustomBase,
    Payload,
};
use thespian_conformance::{conformance_tests, TestBase, Traits};

/// What the custom base calls itself.
const NAME: &str = "countingSimpleBase";

/// Messages sent through every counting system of this test binary.
static SENT: AtomicUsize = AtomicUsize::new(0);

/// The Simple base, counting what its handles send.
struct Counting {
    inner: Arc<dyn BaseDriver>,
}

impl BaseDriver for Counting {
    fn base_name(&self) -> &'static str {
        NAME
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
        SENT.fetch_add(1, Ordering::Relaxed);
        self.inner.tell(endpoint, to, payload)
    }
    fn ask(
        &self,
        endpoint: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
        timeout: Duration,
    ) -> thespian::Result<Option<Envelope>> {
        SENT.fetch_add(1, Ordering::Relaxed);
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

/// Takes every message and does nothing.
#[derive(Default)]
struct Quiet;

impl Actor for Quiet {
    fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
        Ok(())
    }
}

struct CountingBase;

impl CustomBase for CountingBase {
    fn name(&self) -> &'static str {
        NAME
    }
    fn start(&self, settings: BaseSettings) -> thespian::Result<Arc<dyn BaseDriver>> {
        Ok(Arc::new(Counting {
            inner: settings.start_simple(),
        }))
    }
}

/// A builder running its system on the counting base.
fn counting() -> ActorSystemBuilder {
    ActorSystem::builder().driver(CountingBase)
}

// The wrapper keeps the Simple base's capabilities and actor contexts, so actors and errors
// see `simpleSystemBase` as the system's name: that is the name the suite checks.
conformance_tests!(
    counting_simple,
    TestBase::custom(SystemBase::Simple.thespian_name(), counting, Traits::SIMPLE)
);

/// The scenarios above really ran on the custom base: its systems name it, and what they send
/// goes through its driver.
#[test]
fn the_suite_runs_on_the_custom_base() {
    let sys = counting()
        .transient_unique(true)
        .start()
        .expect("the counting base starts");
    assert_eq!(sys.base(), SystemBase::Custom(NAME));
    let before = SENT.load(Ordering::Relaxed);
    let quiet = sys.create_actor::<Quiet>().expect("create");
    sys.tell(&quiet, "counted".to_owned()).expect("tell");
    assert!(SENT.load(Ordering::Relaxed) > before);
    sys.shutdown().expect("shutdown");
}

/// A custom base named without its driver is a clear startup error, not a panic.
#[test]
fn a_custom_base_without_its_driver_is_a_startup_error() {
    match ActorSystem::builder()
        .base(SystemBase::Custom("nowhere"))
        .transient_unique(true)
        .start()
    {
        Err(thespian::ThespianError::StartupFailure(reason)) => {
            assert!(reason.contains("ActorSystemBuilder::driver"), "{reason}")
        }
        other => panic!("expected a StartupFailure, got {other:?}"),
    }
}
