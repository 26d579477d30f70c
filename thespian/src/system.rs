//! `ActorSystem`: the handle external code uses to create actors and exchange messages with
//! them, and its builder.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thespian_core::capabilities::validate_all;
use thespian_core::registry::with_common_capabilities;
use thespian_core::{
    keys, Actor, ActorAddress, ActorSpec, BaseDriver, Capabilities, CapabilityValue, CreateOptions,
    Envelope, IntoMessage, NewActor, Payload, Requirements, Result, SystemId, ThespianError,
};

use crate::bases::{self, MultiprocSettings};
use crate::simple::{self, SimpleBase};

/// Which system base runs the actors. Thespian's base names are accepted by [`FromStr`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum SystemBase {
    /// `simpleSystemBase`: every actor in the caller's thread, deterministically (tests).
    #[default]
    Simple,
    /// `multiprocQueueBase`: many actors on a pool of threads in one process.
    Queue,
    /// `multiprocTCPBase`: an admin daemon (default `Admin Port` 1900) and actors each in their
    /// own process (`Process Startup Method` `spawn`, the default) or on threads of the admin's
    /// process (`thread`), over TCP. The daemon outlives the program that started it until
    /// `shutdown()`; later programs attach to it. The program must call [`crate::init`] first
    /// in `main` (it is re-executed as the daemon and as each actor's process). Every actor type
    /// it creates must be registered with [`register_actors!`](crate::register_actors): the
    /// admin finds types by name among those its own executable registered, and an unknown
    /// name is `InvalidActorSpecification`. Messages up to 64 MiB; larger ones fail at the
    /// sender.
    ///
    /// **Listening address:** loopback (127.0.0.1) only, unless a `Convention Address.IPv4`
    /// capability, [`ActorSystemBuilder::advertise_ip`] or `THESPIAN_BASE_IPADDR` names a
    /// routable address: a system is not reachable from other hosts unless asked to be.
    Tcp,
    /// `multiprocUDPBase`: as `Tcp` (default `Admin Port` 1029), over UDP datagrams, and like
    /// it on loopback (127.0.0.1) only unless a `Convention Address.IPv4` capability,
    /// [`ActorSystemBuilder::advertise_ip`] or `THESPIAN_BASE_IPADDR` names another address.
    ///
    /// **Size limit:** one message per datagram of at most 65,000 bytes, header included; a
    /// larger message fails at `tell`/`send` at once with an error naming the limit.
    ///
    /// **Loss is never silent:** a message is delivered exactly once and in order per pair of
    /// endpoints, or its sender learns that it was not: acknowledgements, bounded
    /// retransmission and duplicate suppression; after the retries the message comes back as a
    /// `PoisonMessage` to its sender (or, when nobody is there any more, goes to the
    /// dead-letter handler as a `DeadEnvelope`). A process that went away is noticed at once
    /// on Linux, where the port-unreachable error names it; otherwise after the retries
    /// (about 3 s). "Not delivered" means not confirmed: if every acknowledgement was lost the
    /// message may have arrived, but never twice.
    Udp,
    /// A base from another crate, named by its [`CustomBase::name`]: set by
    /// [`ActorSystemBuilder::driver`], which gives the base itself.
    Custom(&'static str),
}

impl SystemBase {
    /// Thespian's name for the base.
    pub fn thespian_name(self) -> &'static str {
        match self {
            SystemBase::Simple => "simpleSystemBase",
            SystemBase::Queue => "multiprocQueueBase",
            SystemBase::Tcp => "multiprocTCPBase",
            SystemBase::Udp => "multiprocUDPBase",
            SystemBase::Custom(name) => name,
        }
    }
}

impl fmt::Display for SystemBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.thespian_name())
    }
}

impl FromStr for SystemBase {
    type Err = ThespianError;

    /// Accepts Thespian's names (`simpleSystemBase`, …) and the short ones (`simple`, `queue`,
    /// `tcp`, `udp`), case-insensitively.
    fn from_str(s: &str) -> Result<SystemBase> {
        match s.to_ascii_lowercase().as_str() {
            "simple" | "simplesystembase" => Ok(SystemBase::Simple),
            "queue" | "multiprocqueuebase" => Ok(SystemBase::Queue),
            "tcp" | "multiproctcpbase" => Ok(SystemBase::Tcp),
            "udp" | "multiprocudpbase" => Ok(SystemBase::Udp),
            _ => Err(ThespianError::StartupFailure(format!(
                "unknown system base {s:?}: expected simpleSystemBase, multiprocQueueBase, multiprocTCPBase or multiprocUDPBase"
            ))),
        }
    }
}

/// How the system sets up logging (Thespian's `logDefs`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum LogConfig {
    /// Install an `env_logger` on stderr honouring `RUST_LOG` (default filter `warn`), unless a
    /// logger is already installed.
    #[default]
    Default,
    /// Install an `env_logger` with this filter (env_logger syntax, e.g. `"info,my_crate=debug"`).
    Filter(String),
    /// Leave logging alone (Thespian's `logDefs=False`): the program installs its own logger.
    Untouched,
}

impl LogConfig {
    /// The env_logger filter this configuration installs, if any.
    fn filter(&self) -> Option<String> {
        match self {
            LogConfig::Untouched => None,
            LogConfig::Default => {
                Some(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
            }
            LogConfig::Filter(f) => Some(f.clone()),
        }
    }

    fn apply(&self) {
        let Some(filter) = self.filter() else { return };
        // A logger installed earlier (by the program or an earlier system) stays.
        let _ = env_logger::Builder::new()
            .parse_filters(&filter)
            .format_timestamp_millis()
            .try_init();
    }
}

/// Builds and starts an [`ActorSystem`].
#[derive(Debug)]
pub struct ActorSystemBuilder {
    base: SystemBase,
    capabilities: Capabilities,
    log: LogConfig,
    transient_unique: bool,
    processing_limit: usize,
    queue_limit: usize,
    types: HashMap<&'static str, ActorSpec>,
    advertise_ip: Option<IpAddr>,
    entry_args: Vec<String>,
    custom: Option<Arc<dyn CustomBase>>,
}

impl Default for ActorSystemBuilder {
    fn default() -> Self {
        ActorSystemBuilder {
            base: SystemBase::Simple,
            capabilities: Capabilities::new(),
            log: LogConfig::Default,
            transient_unique: false,
            processing_limit: simple::DEFAULT_PROCESSING_LIMIT,
            queue_limit: thespian_core::base::DEFAULT_QUEUE_LIMIT,
            types: HashMap::new(),
            advertise_ip: None,
            entry_args: Vec::new(),
            custom: None,
        }
    }
}

/// A system base from another crate, given to [`ActorSystemBuilder::driver`]: it starts the
/// [`BaseDriver`] that the system's handles drive. The base may wrap a built-in one
/// ([`BaseSettings::start_simple`]) or be written anew around `thespian-core`'s machines.
///
/// ```
/// use std::sync::Arc;
/// use thespian::prelude::*;
/// use thespian::{BaseDriver, BaseSettings, CustomBase};
///
/// /// The Simple base under another name.
/// struct Renamed;
///
/// impl CustomBase for Renamed {
///     fn name(&self) -> &'static str {
///         "renamedSimpleBase"
///     }
///     fn start(&self, settings: BaseSettings) -> thespian::Result<Arc<dyn BaseDriver>> {
///         Ok(settings.start_simple())
///     }
/// }
///
/// # fn main() -> thespian::Result<()> {
/// let sys = ActorSystem::builder().driver(Renamed).transient_unique(true).start()?;
/// assert_eq!(sys.base(), SystemBase::Custom("renamedSimpleBase"));
/// assert_eq!(sys.base().to_string(), "renamedSimpleBase");
/// sys.shutdown()
/// # }
/// ```
pub trait CustomBase: Send + Sync {
    /// The base's name: what [`SystemBase::Custom`] carries, so what
    /// [`ActorSystem::base`] says and how a later `start()` finds this system again.
    fn name(&self) -> &'static str;
    /// Starts the base with the builder's settings.
    fn start(&self, settings: BaseSettings) -> Result<Arc<dyn BaseDriver>>;
}

impl fmt::Debug for dyn CustomBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CustomBase").field(&self.name()).finish()
    }
}

/// What the builder was told, for a [`CustomBase`] to start with.
#[derive(Debug)]
#[non_exhaustive]
pub struct BaseSettings {
    /// The new system's identity.
    pub system: SystemId,
    /// The capabilities the program set (the base adds its own keys).
    pub capabilities: Capabilities,
    /// [`ActorSystemBuilder::processing_limit`].
    pub processing_limit: usize,
    /// [`ActorSystemBuilder::queue_limit`].
    pub queue_limit: usize,
}

impl BaseSettings {
    /// Starts the Simple base on these settings, as [`SystemBase::Simple`] would, for a
    /// custom base that wraps it.
    pub fn start_simple(self) -> Arc<dyn BaseDriver> {
        start_simple(
            self.system,
            self.capabilities,
            self.processing_limit,
            self.queue_limit,
        )
    }
}

/// Starts the Simple base.
fn start_simple(
    system: SystemId,
    capabilities: Capabilities,
    processing_limit: usize,
    queue_limit: usize,
) -> Arc<dyn BaseDriver> {
    let caps = with_common_capabilities(capabilities, simple::BASE_NAME, simple::BASE_VERSION);
    let caps = caps
        .with(keys::WATCH_SUPPORTED, false)
        .with(keys::ALLOW_REMOTE_ACTOR_SOURCES, "No");
    Arc::new(SimpleBase::new(system, caps, processing_limit, queue_limit))
}

impl ActorSystemBuilder {
    /// Selects the system base (default `Simple`). A [`SystemBase::Custom`] base needs its
    /// [`driver`](ActorSystemBuilder::driver).
    pub fn base(mut self, base: SystemBase) -> Self {
        self.base = base;
        self
    }

    /// Runs the system on a base from another crate: selects [`SystemBase::Custom`] with the
    /// base's name, and `start()` has `base` start the driver.
    pub fn driver(mut self, base: impl CustomBase + 'static) -> Self {
        self.base = SystemBase::Custom(base.name());
        self.custom = Some(Arc::new(base));
        self
    }

    /// Sets one capability (Thespian's names, verbatim).
    pub fn capability(mut self, key: impl Into<String>, value: impl Into<CapabilityValue>) -> Self {
        self.capabilities.set(key, value);
        self
    }

    /// Adds several capabilities.
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        for (k, v) in capabilities.iter() {
            self.capabilities.set(k, v.clone());
        }
        self
    }

    /// Sets up logging (default: [`LogConfig::Default`]).
    pub fn log(mut self, log: LogConfig) -> Self {
        self.log = log;
        self
    }

    /// Always start a new system, never reuse the process's current one (Thespian's
    /// `transientUnique`); the new system does not become the process's current one.
    pub fn transient_unique(mut self, transient: bool) -> Self {
        self.transient_unique = transient;
        self
    }

    /// Simple base only: at most this many messages are delivered per `tell`/`ask`/`listen`
    /// call (Thespian's `setProcessingLimit`); the rest wait for the next call.
    pub fn processing_limit(mut self, limit: usize) -> Self {
        self.processing_limit = limit.max(1);
        self
    }

    /// Simple and Queue bases: what one sender may have queued to one actor, i.e. messages
    /// sent and not yet taken by the target (default
    /// [`DEFAULT_QUEUE_LIMIT`](thespian_core::base::DEFAULT_QUEUE_LIMIT), 50,000). The bound
    /// applies per sender per target: each actor, and each `ActorSystem` handle's endpoint
    /// (clones share one; `private()` handles have their own), counts on its own for each
    /// target. Over it, `tell`, `ask` and `ctx.send` fail at once with
    /// [`ThespianError::QueueFull`] and the message is not queued; once the target has taken
    /// its messages, sends succeed again. System messages (exit requests, `ChildActorExited`,
    /// `PoisonMessage`, …) are never refused. On the Queue base a message counts until the
    /// target's worker has handled it (counted down at most 64 messages late); on the Simple
    /// base until it is delivered. At least 1. (The Tcp and Udp bases bound what is in flight
    /// per peer process in their transports instead.)
    pub fn queue_limit(mut self, limit: usize) -> Self {
        self.queue_limit = limit.max(1);
        self
    }

    /// Tcp and Udp bases: the IPv4 address the admin and the actor processes listen on and give
    /// out. By default they listen on 127.0.0.1 only, unless the `Convention Address.IPv4`
    /// capability is set (then the address that routes toward the convention leader); setting
    /// an address here opens the system to the network on it. The `THESPIAN_BASE_IPADDR`
    /// environment variable overrides all of these. This program also looks for the admin's
    /// Admin Port on this address.
    pub fn advertise_ip(mut self, ip: IpAddr) -> Self {
        self.advertise_ip = Some(ip);
        self
    }

    /// Tcp and Udp bases, in a test binary: re-executed processes enter through the test that
    /// [`test_entry_point!`](crate::test_entry_point) defines, since the harness owns `main`.
    pub fn test_entry_point(mut self) -> Self {
        self.entry_args = [
            crate::TEST_ENTRY,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        self
    }

    /// Registers actor type `A` so this program can create it by name
    /// ([`ActorSystem::create_actor_named`]) on the system this builder starts.
    ///
    /// On the `Tcp` and `Udp` bases the admin creates the actor, and it knows only the types its
    /// executable registered with [`register_actors!`](crate::register_actors): register `A`
    /// there as well (a type registered here only is refused as `InvalidActorSpecification`).
    pub fn register<A: Actor + NewActor>(mut self) -> Self {
        let spec = ActorSpec::of::<A>();
        self.types.insert(spec.type_name(), spec);
        self
    }

    /// Starts the system, or returns the process's current system of the same base unless
    /// `transient_unique` is set (Thespian's singleton rule).
    ///
    /// Returning the current system is refused when it would ignore what this builder was told:
    /// a builder that sets capabilities, limits, an address or actor types which differ from
    /// those the current system was started with fails with a `StartupFailure` that names the
    /// differences (shut the current system down first, or use `transient_unique(true)`). A
    /// builder that sets none of them, or the same ones, gets the current system.
    ///
    /// ```
    /// use thespian::prelude::*;
    ///
    /// # fn main() -> thespian::Result<()> {
    /// let sys = ActorSystem::builder().capability("Color", "red").start()?;
    /// // Nothing set, or the same settings: the running system.
    /// let again = ActorSystem::builder().start()?;
    /// assert_eq!(again.capabilities(), sys.capabilities());
    /// // Other settings would be ignored: an error says so.
    /// let other = ActorSystem::builder().capability("Color", "blue").start();
    /// assert!(other.unwrap_err().to_string().contains("Color"));
    /// sys.shutdown()
    /// # }
    /// ```
    pub fn start(self) -> Result<ActorSystem> {
        validate_all(&self.capabilities)?;
        let settings = self.settings();
        if !self.transient_unique {
            let current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(existing) = current.as_ref() {
                if existing.base == self.base && !existing.driver.is_shut_down() {
                    crate::singleton::check_reuse(self.base, &existing.settings, &settings)?;
                    return ActorSystem::attach(existing.clone());
                }
            }
        }
        self.log.apply();
        let driver: Arc<dyn BaseDriver> = match self.base {
            SystemBase::Simple => start_simple(
                new_system_id(),
                self.capabilities,
                self.processing_limit,
                self.queue_limit,
            ),
            SystemBase::Queue => {
                bases::queue(new_system_id(), self.capabilities, self.queue_limit)?
            }
            SystemBase::Tcp | SystemBase::Udp => bases::multiproc(
                self.base,
                MultiprocSettings {
                    capabilities: self.capabilities,
                    advertise_ip: self.advertise_ip,
                    entry_args: self.entry_args,
                    log_filter: self.log.filter(),
                },
            )?,
            SystemBase::Custom(name) => match &self.custom {
                Some(custom) if custom.name() == name => custom.start(BaseSettings {
                    system: new_system_id(),
                    capabilities: self.capabilities,
                    processing_limit: self.processing_limit,
                    queue_limit: self.queue_limit,
                })?,
                _ => {
                    return Err(ThespianError::StartupFailure(format!(
                        "the custom base {name:?} has no driver: give it with ActorSystemBuilder::driver"
                    )))
                }
            },
        };
        let shared = Arc::new(Shared {
            base: self.base,
            driver,
            types: self.types,
            settings,
        });
        if !self.transient_unique {
            *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(shared.clone());
        }
        ActorSystem::attach(shared)
    }
}

impl ActorSystemBuilder {
    /// What this builder sets that a running system keeps (see [`crate::singleton`]).
    fn settings(&self) -> crate::singleton::Settings {
        let mut types: Vec<&'static str> = self.types.keys().copied().collect();
        types.sort_unstable();
        crate::singleton::Settings {
            capabilities: self.capabilities.clone(),
            processing_limit: self.processing_limit,
            queue_limit: self.queue_limit,
            advertise_ip: self.advertise_ip,
            types,
        }
    }
}

/// A random identity for a new system incarnation.
fn new_system_id() -> SystemId {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    SystemId::from_raw(hasher.finish() >> 16)
}

/// What all handles of one system share.
struct Shared {
    base: SystemBase,
    driver: Arc<dyn BaseDriver>,
    types: HashMap<&'static str, ActorSpec>,
    /// What the builder that started it set, for the singleton rule.
    settings: crate::singleton::Settings,
}

/// The process's current (non-transient) system: `ActorSystem::builder().start()` of the same
/// base returns it.
static CURRENT: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

/// One external endpoint: closed when its last handle goes.
struct Endpoint {
    address: ActorAddress,
    driver: Arc<dyn BaseDriver>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if !self.driver.is_shut_down() {
            self.driver.close_endpoint(&self.address);
        }
    }
}

/// A handle on a running actor system, for code outside the actors.
///
/// Clones share the same external endpoint (replies go to whichever clone listens first); use
/// [`ActorSystem::private`] for an endpoint of one's own, e.g. one per thread.
#[derive(Clone)]
pub struct ActorSystem {
    shared: Arc<Shared>,
    endpoint: Arc<Endpoint>,
}

impl fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorSystem")
            .field("base", &self.shared.base)
            .field("endpoint", &self.endpoint.address)
            .finish()
    }
}

impl ActorSystem {
    /// Starts configuring a system.
    pub fn builder() -> ActorSystemBuilder {
        ActorSystemBuilder::default()
    }

    /// The process's current system of any base, or a new `Simple` one (Thespian's
    /// `ActorSystem()`).
    pub fn current_or_simple() -> Result<ActorSystem> {
        let current = CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match current {
            Some(shared) if !shared.driver.is_shut_down() => ActorSystem::attach(shared),
            _ => ActorSystem::builder().start(),
        }
    }

    fn attach(shared: Arc<Shared>) -> Result<ActorSystem> {
        let address = shared.driver.open_endpoint()?;
        let endpoint = Arc::new(Endpoint {
            address,
            driver: shared.driver.clone(),
        });
        Ok(ActorSystem { shared, endpoint })
    }

    /// The base this system runs on.
    pub fn base(&self) -> SystemBase {
        self.shared.base
    }

    /// The system's capabilities, including the keys the base adds.
    pub fn capabilities(&self) -> Capabilities {
        self.shared.driver.capabilities()
    }

    /// The address of this handle's external endpoint (the `sender` actors see).
    pub fn my_address(&self) -> &ActorAddress {
        &self.endpoint.address
    }

    /// The system's admin address: send it a `StatusRequest` for a `SystemStatus`.
    pub fn admin_address(&self) -> ActorAddress {
        self.shared.driver.admin_address()
    }

    /// A handle with its own external endpoint, so its replies never reach other handles.
    /// The endpoint closes when the handle (and its clones) are dropped.
    pub fn private(&self) -> Result<ActorSystem> {
        ActorSystem::attach(self.shared.clone())
    }

    /// Creates a top-level actor of type `A`.
    pub fn create_actor<A: Actor + NewActor>(&self) -> Result<ActorAddress> {
        self.create_actor_with::<A>(CreateOptions::new())
    }

    /// Creates a top-level actor of type `A` with requirements and/or a global name.
    pub fn create_actor_with<A: Actor + NewActor>(
        &self,
        options: CreateOptions,
    ) -> Result<ActorAddress> {
        let request = options.request(ActorSpec::of::<A>());
        self.shared
            .driver
            .create_actor(&self.endpoint.address, request)
    }

    /// Creates a top-level actor of a type registered with [`ActorSystemBuilder::register`],
    /// by its type name. An unknown name is `InvalidActorSpecification`, unless a global name
    /// in `options` already names a live actor (the name is checked before the type).
    pub fn create_actor_named(
        &self,
        type_name: &str,
        options: CreateOptions,
    ) -> Result<ActorAddress> {
        let spec = match self.shared.types.get(type_name) {
            Some(spec) => *spec,
            None => {
                let unknown = ThespianError::InvalidActorSpecification {
                    spec: type_name.to_owned(),
                    reason: "no actor type is registered under this name".to_owned(),
                };
                if !options.has_global_name() {
                    return Err(unknown);
                }
                // A placeholder spec that cannot be constructed: only the name lookup can succeed.
                ActorSpec::of::<UnknownType>()
            }
        };
        let unknown_type = spec.type_name() == ActorSpec::of::<UnknownType>().type_name();
        match self
            .shared
            .driver
            .create_actor(&self.endpoint.address, options.request(spec))
        {
            Err(
                ThespianError::ActorCreationFailed { .. }
                | ThespianError::InvalidActorSpecification { .. },
            ) if unknown_type => Err(ThespianError::InvalidActorSpecification {
                spec: type_name.to_owned(),
                reason: "no actor type is registered under this name".to_owned(),
            }),
            other => other,
        }
    }

    /// The registered actor type names.
    pub fn registered_types(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.shared.types.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Sends a message. Errors only for what is known at once (shut-down system, oversized
    /// message, full queue); later failures become dead letters or `PoisonMessage`s.
    pub fn tell(&self, to: &ActorAddress, message: impl IntoMessage) -> Result<()> {
        self.shared
            .driver
            .tell(&self.endpoint.address, to, Payload::new(message))
    }

    /// Sends a message and waits up to `timeout` for the first message to this endpoint from
    /// anyone (internal system messages are skipped). `None` on timeout.
    pub fn ask(
        &self,
        to: &ActorAddress,
        message: impl IntoMessage,
        timeout: Duration,
    ) -> Result<Option<Envelope>> {
        self.shared
            .driver
            .ask(&self.endpoint.address, to, Payload::new(message), timeout)
    }

    /// Waits up to `timeout` for the next message to this endpoint. `None` on timeout.
    pub fn listen(&self, timeout: Duration) -> Result<Option<Envelope>> {
        self.shared.driver.listen(&self.endpoint.address, timeout)
    }

    /// Sets (`Some`) or removes (`None`) a system capability. Live actors that no longer fit
    /// are asked to exit; nothing happens when the value is unchanged.
    pub fn update_capability(&self, name: &str, value: Option<CapabilityValue>) -> Result<()> {
        thespian_core::capabilities::check_change(name, value.as_ref())?;
        self.shared.driver.update_capability(name, value)
    }

    /// Shuts the system down: every actor exits (children first). Idempotent.
    pub fn shutdown(&self) -> Result<()> {
        let result = self.shared.driver.shutdown();
        let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        if current
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &self.shared))
        {
            *current = None;
        }
        result
    }

    /// True once the system has been shut down.
    pub fn is_shut_down(&self) -> bool {
        self.shared.driver.is_shut_down()
    }
}

/// Stands for an unregistered type name when only a global-name lookup can succeed.
struct UnknownType;

impl Actor for UnknownType {
    fn receive(
        &mut self,
        _: &Envelope,
        _: &mut thespian_core::Context<'_>,
    ) -> thespian_core::ActorResult {
        Ok(())
    }
    fn type_name() -> &'static str {
        "thespian.UnregisteredActorType"
    }
}

impl NewActor for UnknownType {
    fn new_actor(
        _: &Capabilities,
        _: &Requirements,
    ) -> std::result::Result<Self, thespian_core::ActorError> {
        Err("no actor type is registered under this name".into())
    }
}
