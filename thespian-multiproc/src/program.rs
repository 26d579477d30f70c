//! The multi-process base as a program sees it: the [`BaseDriver`] behind `ActorSystem` for
//! the Tcp and Udp bases. It attaches to the admin on the Admin Port, or starts the daemon.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use thespian_admin::protocol::{
    Hello, LogLevelSet, SetLogLevel, ShutdownComplete, ShutdownSystem, Welcome,
};
use thespian_core::system_messages::passes_to_external;
use thespian_core::transport::FailureKind;
use thespian_core::{
    base, ActorAddress, BaseDriver, Capabilities, CapabilityValue, CreateRequest, Envelope,
    Payload, Result, StatusRequest, SystemStatus, ThespianError,
};

use crate::admin_main::admin_capabilities;
use crate::admin_watch::AdminWatch;
use crate::factory::{BoundSocket, TransportFactory};
use crate::node::{
    any_admin, env_base_ip, routable_ipv4, AdminLost, AdminUnreachable, Driving, Node,
};
use crate::roles::{self, AdminLaunch};
use crate::{host, launch, secret, signals};

/// How long a new admin may take to answer its first `Hello`.
const ADMIN_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an existing listener on the Admin Port may take to answer.
const ADMIN_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `shutdown` waits for the admin's process to end after it answered.
const ADMIN_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `shutdown` waits for the admin to finish.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// What `ActorSystemBuilder::start` hands over for a multi-process base.
pub struct StartSettings {
    /// The transport of the system, among those the program was built with.
    pub transport: Arc<dyn TransportFactory>,
    /// The user's capabilities (the common keys are added here).
    pub capabilities: Capabilities,
    /// The IPv4 address to listen on and give out, when the program chose one.
    pub advertise_ip: Option<IpAddr>,
    /// The arguments that lead a re-executed copy of the program into `thespian::init()`.
    pub entry_args: Vec<String>,
    /// The log filter of the admin's sink; `None`: the program leaves logging alone.
    pub log_filter: Option<String>,
    /// Only attach to a running admin: when nobody listens on the Admin Port, fail with
    /// a `StartupFailure` saying so instead of starting the daemon (tools such as a shell).
    pub attach_only: bool,
}

impl std::fmt::Debug for StartSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartSettings")
            .field("transport", &self.transport.name())
            .field("capabilities", &self.capabilities)
            .field("advertise_ip", &self.advertise_ip)
            .field("entry_args", &self.entry_args)
            .field("log_filter", &self.log_filter)
            .field("attach_only", &self.attach_only)
            .finish()
    }
}

/// A program's handle on a multi-process system: the [`BaseDriver`] of the multi-process
/// bases.
pub struct ProgramBase {
    node: Arc<Node>,
    transport: Arc<dyn TransportFactory>,
    /// This program started the admin, so the admin runs this very executable: types it did
    /// not register are refused here before asking.
    started_admin: bool,
    endpoints: Mutex<HashMap<ActorAddress, Receiver<Envelope>>>,
    capabilities: Mutex<Capabilities>,
    shut_down: Arc<AtomicBool>,
    /// `shutdown()` was called: the admin's exit that follows is no failure.
    shutdown_asked: Arc<AtomicBool>,
    admin_pid: u32,
    /// Fails every wait at once when the admin's process ends.
    admin_watch: Mutex<Option<AdminWatch>>,
    /// The daemon, when this program started it: reaped by a thread once it exits.
    admin_exit: Option<Receiver<()>>,
}

impl std::fmt::Debug for ProgramBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramBase")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The Admin Port the capabilities name, else `default`.
fn admin_port(default: u16, caps: &Capabilities) -> Result<u16> {
    match caps.get(thespian_core::keys::ADMIN_PORT) {
        None => Ok(default),
        Some(CapabilityValue::Int(p)) if (0..=65535).contains(p) => Ok(*p as u16),
        Some(other) => Err(ThespianError::StartupFailure(format!(
            "'Admin Port' must be a port number (0-65535, 0 for a free one), not {other:?}"
        ))),
    }
}

fn thread_mode(caps: &Capabilities) -> Result<bool> {
    match caps.get(thespian_core::keys::PROCESS_STARTUP_METHOD) {
        None => Ok(false),
        Some(CapabilityValue::Str(s)) => match s.as_str() {
            "thread" => Ok(true),
            // Thespian's fork and forkserver start a fresh copy of the program here too.
            "spawn" | "fork" | "forkserver" => Ok(false),
            other => Err(ThespianError::StartupFailure(format!(
                "'Process Startup Method' {other:?} is not one of spawn, thread (fork, forkserver)"
            ))),
        },
        Some(other) => Err(ThespianError::StartupFailure(format!(
            "'Process Startup Method' must be a string, not {other:?}"
        ))),
    }
}

/// The IPv4 address of the (first) convention leader, when `Convention Address.IPv4` names
/// one as `"host[:port]"` (or a list of them); host names are resolved.
fn convention_leader(caps: &Capabilities) -> Option<std::net::Ipv4Addr> {
    let leaders = crate::convention::convention_leaders(caps, 1).ok()?;
    leaders.first().map(|leader| *leader.ip())
}

/// The IPv4 address the admin and every actor process bind and advertise: `THESPIAN_BASE_IPADDR`
/// (`from_env`), else the builder's `advertise_ip`, else, when a `Convention Address.IPv4` is
/// configured, the address that routes toward it (`routable`), else loopback. A system nobody
/// asked to be reachable from other hosts listens on 127.0.0.1 only.
fn listening_ip(
    from_env: Option<Ipv4Addr>,
    advertise: Option<IpAddr>,
    caps: &Capabilities,
    routable: impl FnOnce(Option<Ipv4Addr>) -> Ipv4Addr,
) -> Result<Ipv4Addr> {
    match (from_env, advertise) {
        (Some(ip), _) => Ok(ip),
        (None, Some(IpAddr::V4(ip))) => Ok(ip),
        (None, Some(other)) => Err(ThespianError::StartupFailure(format!(
            "multi-process bases need an IPv4 address, not {other}"
        ))),
        (None, None) if caps.contains(thespian_core::keys::CONVENTION_ADDRESS_IPV4) => {
            Ok(routable(convention_leader(caps)))
        }
        (None, None) => Ok(Ipv4Addr::LOCALHOST),
    }
}

impl ProgramBase {
    /// Attaches to the admin on the Admin Port, starting the daemon if nobody listens there.
    ///
    /// First of all it checks that the program called `thespian::init()` ([`init_called`](
    /// crate::init_called)), or named an entry point for its processes (`entry_args`, as a test
    /// binary does): otherwise it fails at once with [`forgotten_init`](crate::forgotten_init),
    /// and in a process re-executed in a role it never took it prints that error and exits.
    /// An attach-only start never starts a process, so it needs no `init()`.
    pub fn start(settings: StartSettings) -> Result<ProgramBase> {
        use crate::init_check::{decide, forgotten_init, init_called, InitCheck};
        match decide(
            init_called() || settings.attach_only,
            !settings.entry_args.is_empty(),
            roles::role_pending(),
        ) {
            InitCheck::Proceed => {}
            InitCheck::Refuse => return Err(forgotten_init()),
            InitCheck::ExitProcess => {
                eprintln!("thespian: {}", forgotten_init());
                std::process::exit(2);
            }
        }
        let transport = settings.transport;
        // Before anything is started: a missing or unsafe secret file is a startup error.
        let (secret, secret_file) = secret::program_secret(&settings.capabilities)?;
        let mut port = admin_port(transport.default_admin_port(), &settings.capabilities)?;
        let thread_mode = thread_mode(&settings.capabilities)?;
        if port == 0 && settings.attach_only {
            return Err(ThespianError::StartupFailure(
                "'Admin Port' 0 names no running system to attach to".into(),
            ));
        }
        let ip = listening_ip(
            env_base_ip()?,
            settings.advertise_ip,
            &settings.capabilities,
            routable_ipv4,
        )?;
        let mut admin_socket = SocketAddr::new(IpAddr::V4(ip), port);
        let mut admin_exit = None;
        let mut started_here = false;
        match BoundSocket::bind(&transport, admin_socket) {
            Ok(socket) if settings.attach_only => {
                drop(socket);
                return Err(ThespianError::StartupFailure(format!(
                    "nothing listens on {} {admin_socket}: no actor system runs there",
                    transport.name().to_ascii_uppercase()
                )));
            }
            Ok(socket) => {
                // Admin Port 0: the OS chose a free port, which the system now has.
                port = socket.local_addr().port();
                admin_socket.set_port(port);
                // A convention address the admin could not use is this call's error, not a
                // daemon that silently fails to start.
                crate::convention::convention_leaders(&settings.capabilities, port).map_err(
                    |e| ThespianError::StartupFailure(format!("Convention Address.IPv4: {e}")),
                )?;
                // Nobody holds the Admin Port: this program starts the daemon on it.
                let launch = AdminLaunch {
                    transport: transport.name().to_owned(),
                    capabilities: admin_capabilities(
                        transport.base_name(),
                        settings.capabilities,
                        port,
                        thread_mode,
                    ),
                    log_filter: settings.log_filter,
                    thread_mode,
                    secret_file,
                };
                let mut child = launch::spawn_admin(&settings.entry_args, &launch, socket)?;
                let (tx, rx) = crossbeam_channel::bounded(1);
                std::thread::Builder::new()
                    .name("thespian-admin-reaper".into())
                    .spawn(move || {
                        let _ = child.wait();
                        let _ = tx.send(());
                    })
                    .map_err(|e| ThespianError::StartupFailure(e.to_string()))?;
                admin_exit = Some(rx);
                started_here = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                crate::convention::convention_leaders(&settings.capabilities, port).map_err(
                    |e| ThespianError::StartupFailure(format!("Convention Address.IPv4: {e}")),
                )?;
            }
            Err(e) => {
                return Err(ThespianError::StartupFailure(format!(
                    "cannot use the Admin Port {admin_socket}: {e}"
                )))
            }
        }
        let own = BoundSocket::bind(&transport, SocketAddr::new(IpAddr::V4(ip), 0))
            .map_err(|e| ThespianError::StartupFailure(format!("cannot bind a socket: {e}")))?;
        let node = Node::start(
            own,
            roles::new_incarnation(),
            admin_socket,
            any_admin(),
            None,
            Vec::new(),
            secret,
            Driving::Thread,
        )?;
        let timeout = if started_here {
            ADMIN_START_TIMEOUT
        } else {
            ADMIN_PROBE_TIMEOUT
        };
        let welcome = match hello(&node, timeout, admin_exit.as_ref()) {
            Ok(welcome) => welcome,
            Err(e) => {
                node.stop();
                return Err(not_an_admin(&*transport, admin_socket, started_here, e));
            }
        };
        if welcome.in_shutdown {
            node.stop();
            return Err(ThespianError::StartupFailure(format!(
                "the admin at {admin_socket} is shutting down"
            )));
        }
        node.set_admin(welcome.admin.clone());
        let base = ProgramBase {
            node,
            transport,
            started_admin: started_here,
            endpoints: Mutex::new(HashMap::new()),
            capabilities: Mutex::new(welcome.capabilities),
            shut_down: Arc::new(AtomicBool::new(false)),
            shutdown_asked: Arc::new(AtomicBool::new(false)),
            admin_pid: welcome.admin_pid,
            admin_watch: Mutex::new(None),
            admin_exit,
        };
        base.watch_for_shutdown();
        base.watch_admin_process();
        Ok(base)
    }

    /// Listens for the admin's `ShutdownComplete` (a shutdown asked by anyone), so this
    /// program's calls fail with `SystemShutDown` afterwards.
    fn watch_for_shutdown(&self) {
        let (address, rx) = self.node.open();
        let admin = self.node.admin();
        let hello = Hello {
            pid: std::process::id(),
        };
        if self
            .node
            .send(&address, &admin, Payload::new(hello))
            .is_err()
        {
            return;
        }
        let node = Arc::downgrade(&self.node);
        let flag = self.shut_down.clone();
        let _ = std::thread::Builder::new()
            .name("thespian-program-watch".into())
            .spawn(move || {
                for envelope in rx {
                    if envelope.is::<ShutdownComplete>() {
                        flag.store(true, Ordering::Release);
                        if let Some(node) = node.upgrade() {
                            node.system_gone("the actor system was shut down");
                        }
                        return;
                    }
                    if envelope.is::<AdminLost>() {
                        return; // A failure, not a shutdown: calls keep saying so.
                    }
                }
            });
    }

    /// Watches the admin's process (same host: its pid came in `Welcome`): when it ends
    /// without a shutdown, every `ask` and `listen` waiting here fails at once.
    fn watch_admin_process(&self) {
        let node = Arc::downgrade(&self.node);
        let asked = self.shutdown_asked.clone();
        let done = self.shut_down.clone();
        let pid = self.admin_pid;
        let watch = AdminWatch::start(pid, move || {
            let Some(node) = node.upgrade() else { return };
            // The admin's last words (`ShutdownComplete`) may still be crossing this
            // process's poll thread when its exit is seen here: a bounded grace for them.
            if asked.load(Ordering::Acquire)
                || done.load(Ordering::Acquire)
                || node.wait_shut_down(SHUTDOWN_NOTICE_GRACE)
            {
                done.store(true, Ordering::Release);
                node.system_gone("the actor system was shut down");
            } else {
                node.lose_admin(admin_gone(pid));
            }
        });
        match watch {
            Ok(watch) => {
                *self.admin_watch.lock().unwrap_or_else(|e| e.into_inner()) = Some(watch);
            }
            Err(e) => log::debug!("the admin's process (pid {pid}) cannot be watched: {e}"),
        }
    }

    /// True once this program knows the system shut down.
    fn is_shut_down_here(&self) -> bool {
        self.shut_down.load(Ordering::Acquire) || self.node.was_shut_down()
    }

    fn check_running(&self) -> Result<()> {
        if self.is_shut_down_here() {
            Err(ThespianError::SystemShutDown)
        } else if self.node.admin_lost() {
            Err(ThespianError::SystemFailure(format!(
                "{} (it served {})",
                admin_gone(self.admin_pid),
                self.node.admin_socket()
            )))
        } else {
            Ok(())
        }
    }

    fn status(&self) -> Result<SystemStatus> {
        host::request::<SystemStatus>(
            &self.node,
            Payload::new(StatusRequest),
            Duration::from_secs(10),
        )
    }

    fn wait_for_admin_exit(&self) {
        match &self.admin_exit {
            // Started here: the reaper thread says when the daemon is reaped.
            Some(rx) => {
                let _ = rx.recv_timeout(ADMIN_EXIT_TIMEOUT);
            }
            None => {
                signals::wait_exit(self.admin_pid, ADMIN_EXIT_TIMEOUT);
            }
        }
    }
}

/// How long a program whose admin's process ended waits for the admin's shutdown
/// announcement before it reports the admin lost (only a crashed admin pays it).
const SHUTDOWN_NOTICE_GRACE: Duration = Duration::from_millis(500);

/// The error text of a lost admin.
fn admin_gone(pid: u32) -> String {
    format!("the actor system's admin (pid {pid}) is gone")
}

/// Why greeting the admin failed: the transport's refusal, or any other error.
enum HelloFailure {
    /// The transport could not deliver the greeting (with the kind of its failure).
    Refused(AdminUnreachable),
    /// No answer, or an error other than a refusal.
    Error(ThespianError),
}

fn hello(
    node: &Node,
    timeout: Duration,
    admin_exit: Option<&Receiver<()>>,
) -> std::result::Result<Welcome, HelloFailure> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let slice = left.min(Duration::from_millis(250));
        let hello = Hello {
            pid: std::process::id(),
        };
        let error = match host::request_or_refusal::<Welcome>(node, Payload::new(hello), slice) {
            Ok(Ok(welcome)) => return Ok(welcome),
            Ok(Err(refused)) => return Err(HelloFailure::Refused(refused)),
            Err(e) => e,
        };
        match error {
            ThespianError::RequestTimeout(_) if left <= slice => {
                return Err(HelloFailure::Error(ThespianError::RequestTimeout(format!(
                    "no answer from {} within {timeout:?}",
                    node.admin_socket()
                ))))
            }
            e if left <= slice => return Err(HelloFailure::Error(e)),
            e @ ThespianError::SystemFailure(_) => return Err(HelloFailure::Error(e)),
            _ => {
                if admin_exit.is_some_and(|rx| rx.try_recv().is_ok()) {
                    return Err(HelloFailure::Error(ThespianError::StartupFailure(
                        "the admin process exited during its start (run with RUST_LOG=debug and check its log)".into(),
                    )));
                }
            }
        }
    }
}

fn not_an_admin(
    transport: &dyn TransportFactory,
    at: SocketAddr,
    started_here: bool,
    failure: HelloFailure,
) -> ThespianError {
    let (error, kind) = match failure {
        HelloFailure::Refused(refused) => (
            ThespianError::SystemFailure(format!("cannot reach the admin: {}", refused.reason)),
            Some(refused.kind),
        ),
        HelloFailure::Error(error) => (error, None),
    };
    if started_here {
        return ThespianError::StartupFailure(format!(
            "the admin started on {at} did not answer: {error}"
        ));
    }
    // The transport refused a thespian admin (another secret, an overloaded admin), or lost it:
    // the reason says what is wrong. Whatever else answers on the port is not a thespian peer.
    if let ThespianError::SystemFailure(reason) = &error {
        if kind != Some(FailureKind::NotAPeer) {
            return ThespianError::StartupFailure(reason.clone());
        }
    }
    let proto = transport.name().to_ascii_uppercase();
    ThespianError::StartupFailure(format!(
        "{proto} port {} is held by something that is not a thespian admin ({error}); \
         choose another port with the 'Admin Port' capability",
        at.port()
    ))
}

impl BaseDriver for ProgramBase {
    fn base_name(&self) -> &'static str {
        self.transport.base_name()
    }

    fn capabilities(&self) -> Capabilities {
        let mut cached = self.capabilities.lock().unwrap_or_else(|e| e.into_inner());
        if self.check_running().is_ok() {
            if let Ok(status) = self.status() {
                *cached = status.capabilities;
            }
        }
        cached.clone()
    }

    fn admin_address(&self) -> ActorAddress {
        self.node.admin()
    }

    fn open_endpoint(&self) -> Result<ActorAddress> {
        self.check_running()?;
        let (address, rx) = self.node.open();
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(address.clone(), rx);
        Ok(address)
    }

    fn close_endpoint(&self, endpoint: &ActorAddress) {
        self.node.close(endpoint);
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(endpoint);
    }

    fn create_actor(
        &self,
        _endpoint: &ActorAddress,
        request: CreateRequest,
    ) -> Result<ActorAddress> {
        self.check_running()?;
        let admin = self.node.admin();
        host::create_through_admin(&self.node, self.started_admin, &admin, request, true)
            .map(|created| created.address)
    }

    fn tell(&self, endpoint: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()> {
        self.check_running()?;
        self.node.send(endpoint, to, payload)
    }

    fn listen(&self, endpoint: &ActorAddress, timeout: Duration) -> Result<Option<Envelope>> {
        self.check_running()?;
        let rx = self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(endpoint)
            .cloned()
            .ok_or_else(|| ThespianError::InvalidActorAddress {
                address: endpoint.to_string(),
                reason: "not an open endpoint of this system".into(),
            })?;
        let deadline = base::deadline(Instant::now(), timeout);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let envelope = match rx.recv_timeout(left) {
                Ok(envelope) => envelope,
                Err(_) => return Ok(None),
            };
            if let Some(lost) = envelope.payload().try_get::<AdminLost>() {
                return Err(if self.is_shut_down_here() {
                    ThespianError::SystemShutDown
                } else {
                    ThespianError::SystemFailure(lost.reason.clone())
                });
            }
            if passes_to_external(envelope.payload()) {
                return Ok(Some(envelope));
            }
            log::debug!(
                "endpoint {endpoint} skips internal {}",
                envelope.type_name()
            );
        }
    }

    fn update_capability(&self, name: &str, value: Option<CapabilityValue>) -> Result<()> {
        self.check_running()?;
        let caps = host::update_through_admin(&self.node, name, value)?;
        *self.capabilities.lock().unwrap_or_else(|e| e.into_inner()) = caps;
        Ok(())
    }

    fn shutdown(&self) -> Result<()> {
        if self.is_shut_down_here() || self.node.admin_lost() {
            self.shut_down.store(true, Ordering::Release);
            self.node.stop();
            return Ok(());
        }
        self.shutdown_asked.store(true, Ordering::Release);
        let result = host::request::<ShutdownComplete>(
            &self.node,
            Payload::new(ShutdownSystem),
            SHUTDOWN_TIMEOUT,
        );
        self.shut_down.store(true, Ordering::Release);
        self.wait_for_admin_exit();
        self.node.stop();
        match result {
            Ok(_) => Ok(()),
            // The admin exited before its answer arrived: it is shut down all the same.
            Err(ThespianError::SystemFailure(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn is_shut_down(&self) -> bool {
        self.is_shut_down_here() || self.node.admin_lost()
    }

    fn set_admin_log_level(&self, level: &str) -> Result<(String, String)> {
        self.check_running()?;
        let ask = SetLogLevel {
            level: level.to_owned(),
        };
        let answer: LogLevelSet =
            host::request(&self.node, Payload::new(ask), Duration::from_secs(10))?;
        answer.result.map_err(ThespianError::SystemFailure)
    }
}

impl Drop for ProgramBase {
    fn drop(&mut self) {
        // Stops the watch's thread first: the node it would tell is going.
        self.admin_watch
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.node.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_convention_leader_is_read_from_one_address_or_a_list() {
        let mut caps = Capabilities::new();
        assert_eq!(convention_leader(&caps), None);
        caps.set(
            thespian_core::keys::CONVENTION_ADDRESS_IPV4,
            "10.1.2.3:1900",
        );
        assert_eq!(convention_leader(&caps), Some(Ipv4Addr::new(10, 1, 2, 3)));
        caps.set(
            thespian_core::keys::CONVENTION_ADDRESS_IPV4,
            CapabilityValue::List(vec!["192.168.0.9".into(), "10.0.0.1:1900".into()]),
        );
        assert_eq!(
            convention_leader(&caps),
            Some(Ipv4Addr::new(192, 168, 0, 9))
        );
        caps.set(
            thespian_core::keys::CONVENTION_ADDRESS_IPV4,
            "leader.example",
        );
        assert_eq!(convention_leader(&caps), None);
    }

    #[test]
    fn with_no_address_configured_the_system_listens_on_loopback_only() {
        let routable = Ipv4Addr::new(10, 9, 8, 7);
        let probe = |_: Option<Ipv4Addr>| routable;
        let none = Capabilities::new();
        let chosen = listening_ip(None, None, &none, probe).ok();
        assert_eq!(chosen, Some(Ipv4Addr::LOCALHOST));
        // A convention address opens the routable address, toward the leader.
        let mut convention = Capabilities::new();
        convention.set(
            thespian_core::keys::CONVENTION_ADDRESS_IPV4,
            "10.1.2.3:1900",
        );
        let toward = |leader: Option<Ipv4Addr>| {
            assert_eq!(leader, Some(Ipv4Addr::new(10, 1, 2, 3)));
            routable
        };
        assert_eq!(
            listening_ip(None, None, &convention, toward).ok(),
            Some(routable)
        );
        // An explicit address wins; the environment wins over it.
        let explicit = Ipv4Addr::new(192, 168, 1, 5);
        let chosen = listening_ip(None, Some(IpAddr::V4(explicit)), &none, probe).ok();
        assert_eq!(chosen, Some(explicit));
        let from_env = Ipv4Addr::new(172, 16, 0, 1);
        let chosen = listening_ip(Some(from_env), Some(IpAddr::V4(explicit)), &none, probe).ok();
        assert_eq!(chosen, Some(from_env));
        let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        assert!(listening_ip(None, Some(v6), &none, probe).is_err());
    }

    #[test]
    fn a_loopback_leader_keeps_the_system_on_loopback() {
        assert_eq!(
            routable_ipv4(Some(Ipv4Addr::LOCALHOST)),
            Ipv4Addr::LOCALHOST
        );
    }

    #[test]
    fn admin_port_and_startup_method_are_checked() {
        let mut caps = Capabilities::new();
        assert_eq!(admin_port(1900, &caps).ok(), Some(1900));
        caps.set(thespian_core::keys::ADMIN_PORT, 1234_i64);
        assert_eq!(admin_port(1900, &caps).ok(), Some(1234));
        // 0: a free port the OS chooses when the daemon starts.
        caps.set(thespian_core::keys::ADMIN_PORT, 0_i64);
        assert_eq!(admin_port(1900, &caps).ok(), Some(0));
        caps.set(thespian_core::keys::ADMIN_PORT, 70_000_i64);
        assert!(admin_port(1900, &caps).is_err());
        caps.set(thespian_core::keys::ADMIN_PORT, -1_i64);
        assert!(admin_port(1900, &caps).is_err());
        caps.set(thespian_core::keys::PROCESS_STARTUP_METHOD, "thread");
        assert_eq!(thread_mode(&caps).ok(), Some(true));
        caps.set(thespian_core::keys::PROCESS_STARTUP_METHOD, "fork");
        assert_eq!(thread_mode(&caps).ok(), Some(false));
        caps.set(thespian_core::keys::PROCESS_STARTUP_METHOD, "teleport");
        assert!(thread_mode(&caps).is_err());
    }
}
