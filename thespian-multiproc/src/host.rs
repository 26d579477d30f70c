//! An actor's host: the loop that feeds one actor its messages through the lifecycle machine,
//! in its own process (`spawn`) or on a thread of the admin's process (`thread`), the same
//! code either way.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::{Deserialize, Serialize};
use thespian_admin::protocol::{
    ActorExited, ActorFailedToStart, ActorStarted, CapabilitiesNow, CreateActor, CreateReply,
    DeRegisterRemote, ExitNoted, HandleDeadLetters, PreRegisterRemote, ShutdownSystem,
    UpdateCapability, WatchConvention,
};
use thespian_core::{
    message, system_messages::Fd, ActorAddress, ActorCell, ActorExitRequest, ActorSpec,
    Capabilities, CapabilityValue, CellState, CreateRequest, Created, Envelope, Payload,
    RemoteSystem, Requirements, Result, Services, StatusRequest, ThespianError, WakeupMessage,
    WatchMessage,
};
use thespian_io::watch::Watcher;

use crate::factory::TransportFactory;
use crate::node::{AdminLost, AdminUnreachable, Driving, Node};
use crate::roles::{self, ActorLaunch, ACTOR_SLOT};
use crate::{logging, secret, signals, types};

/// How long an exiting actor waits for what it sent to be acknowledged.
const EXIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an actor waits for the admin to answer a create or a capability update.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A signal, as the host's own message to its actor's mailbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum HostSignal {
    /// SIGTERM, SIGQUIT, SIGABRT: exit gracefully.
    Exit(i32),
    /// SIGUSR1: log the actor's status.
    Status,
}

message!(HostSignal = "thespian.admin.local.HostSignal");

/// Everything a host needs.
pub(crate) struct HostSetup {
    pub(crate) node: Arc<Node>,
    /// Thespian's name of the base (the transport's).
    pub(crate) base_name: &'static str,
    pub(crate) address: ActorAddress,
    pub(crate) mailbox: Receiver<Envelope>,
    pub(crate) parent: ActorAddress,
    pub(crate) spec: ActorSpec,
    pub(crate) requirements: Requirements,
    pub(crate) global_name: Option<String>,
    pub(crate) capabilities: Capabilities,
}

/// Runs the actor until it exits. Reports its start (or failure) and exit to the admin.
pub(crate) fn run(setup: HostSetup) {
    let HostSetup {
        node,
        base_name,
        address,
        mailbox,
        parent,
        spec,
        requirements,
        global_name,
        capabilities,
    } = setup;
    let admin = node.admin();
    let mut actor = match spec.construct(&capabilities, &requirements) {
        Ok(actor) => actor,
        Err(reason) => {
            log::warn!("{address} ({}) failed to start: {reason}", spec.type_name());
            let failed = ActorFailedToStart {
                address: address.clone(),
                reason,
            };
            let _ = node.send(&address, &admin, Payload::new(failed));
            node.close(&address);
            // What already arrived comes back to its senders as `Child Aborted` poison.
            while let Ok(envelope) = mailbox.try_recv() {
                node.dead_letter(&address, envelope);
            }
            return;
        }
    };
    let started = ActorStarted {
        address: address.clone(),
    };
    let _ = node.send(&address, &admin, Payload::new(started));
    let mut cell = ActorCell::new(address.clone(), parent, spec, requirements, global_name);
    let mut services = HostServices {
        node: node.clone(),
        base_name,
        capabilities,
        mailbox: mailbox.clone(),
        timers: Vec::new(),
        watch: None,
        last_handled: None,
    };
    loop {
        let next = services.timers.iter().map(|t| t.0).min();
        let envelope = match node.recv(&mailbox, next) {
            Ok(envelope) => envelope,
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) =
                    services.timers.drain(..).partition(|t| t.0 <= now);
                services.timers = later;
                let mut state = cell.state();
                for (_, wakeup) in due {
                    services.last_handled = Some(now);
                    let envelope = Envelope::new(address.clone(), Payload::new(wakeup));
                    services.unwatch(&address);
                    state = cell.handle(&mut *actor, envelope, &mut services);
                    services.arm_watch(&address);
                }
                if state == CellState::Exited {
                    break;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let payload = envelope.payload();
        if let Some(now) = payload.try_get::<CapabilitiesNow>() {
            services.capabilities = now.capabilities.clone();
            continue;
        }
        if let Some(lost) = payload.try_get::<AdminLost>() {
            log::warn!("{address}: exiting, {}", lost.reason);
            break;
        }
        if payload.has_type::<AdminUnreachable>() {
            continue; // Logged by the node; only a request waiting for the admin needs it.
        }
        let envelope = match payload.try_get::<HostSignal>() {
            Some(HostSignal::Exit(signal)) => {
                log::warn!("{address}: signal {signal}, exiting");
                Envelope::new(address.clone(), Payload::new(ActorExitRequest::new()))
            }
            Some(HostSignal::Status) => {
                log::info!("{address}: status: {:?}", cell.status(&services));
                continue;
            }
            None => envelope,
        };
        services.unwatch(&address);
        if !envelope.payload().has_type::<StatusRequest>() {
            services.last_handled = Some(Instant::now());
        }
        let state = cell.handle(&mut *actor, envelope, &mut services);
        services.arm_watch(&address);
        if state == CellState::Exited {
            break;
        }
    }
    services.unwatch(&address);
    services.watch = None;
    node.close(&address);
    while let Ok(envelope) = mailbox.try_recv() {
        // The host's own notices and a watch that fired as the actor exited are nobody's loss.
        let own = envelope.type_name().starts_with("thespian.admin.")
            || envelope.payload().has_type::<WatchMessage>();
        if !own {
            node.dead_letter(&address, envelope);
        }
    }
}

/// The actor role: one actor in this process, on the socket the admin bound for it.
pub(crate) fn run_process(transport: Arc<dyn TransportFactory>, launch: ActorLaunch) -> i32 {
    if !signals::die_with_parent(launch.admin_pid) {
        return 3; // The admin is already gone.
    }
    // The admin found the name in this very executable (it runs its own build here); the
    // process ends at once should the table disagree, which the admin reports as a failed start.
    let spec = match types::resolve(&launch.type_name) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("thespian actor process: {e}");
            return 2;
        }
    };
    let secret = match secret::secret_at(&launch.secret_file) {
        Ok(secret) => secret,
        Err(e) => {
            eprintln!("thespian actor process: {e}");
            return 2;
        }
    };
    let socket = match roles::socket_from_stdin(&transport) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("thespian actor process: no socket: {e}");
            return 2;
        }
    };
    let (mailbox_tx, mailbox) = crossbeam_channel::unbounded();
    let node = match Node::start(
        socket,
        thespian_core::SystemId::from_raw(launch.incarnation),
        launch.admin_socket,
        launch.admin.clone(),
        None,
        vec![(ACTOR_SLOT, mailbox_tx)],
        secret,
        // The actor runs on the thread that turns its socket's poll: no hand-off per message.
        Driving::Inline,
    ) {
        Ok(node) => node,
        Err(e) => {
            eprintln!("thespian actor process: {e}");
            return 2;
        }
    };
    let level = match launch.log_level {
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        5 => log::LevelFilter::Trace,
        _ => log::LevelFilter::Off,
    };
    logging::Forwarder::install(node.clone(), launch.address.clone(), level);
    route_signals(&node, &launch.address);
    run(HostSetup {
        node: node.clone(),
        base_name: transport.base_name(),
        address: launch.address,
        mailbox,
        parent: launch.parent,
        spec,
        requirements: launch.requirements,
        global_name: launch.global_name,
        capabilities: launch.capabilities,
    });
    node.flush(Duration::from_secs(5));
    node.stop();
    0
}

/// SIGTERM, SIGQUIT, SIGABRT: a graceful exit; SIGUSR1: status to the log; SIGINT, SIGHUP,
/// SIGUSR2: logged and ignored.
fn route_signals(node: &Arc<Node>, address: &ActorAddress) {
    let handled = [
        libc::SIGTERM,
        libc::SIGQUIT,
        libc::SIGABRT,
        libc::SIGUSR1,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR2,
    ];
    let rx = match signals::route(&handled) {
        Ok(rx) => rx,
        Err(e) => {
            log::warn!("{address}: signal handling unavailable: {e}");
            return;
        }
    };
    let node = node.clone();
    let address = address.clone();
    let _ = std::thread::Builder::new()
        .name("thespian-host-signals".into())
        .spawn(move || {
            for signal in rx {
                let notice = match signal {
                    libc::SIGTERM | libc::SIGQUIT | libc::SIGABRT => HostSignal::Exit(signal),
                    libc::SIGUSR1 => HostSignal::Status,
                    other => {
                        log::warn!("{address}: signal {other} ignored");
                        continue;
                    }
                };
                let _ = node.send(&address, &address, Payload::new(notice));
            }
        });
}

/// A due wakeup.
type Timer = (Instant, WakeupMessage);

/// What an actor's effects do in a multi-process system.
struct HostServices {
    node: Arc<Node>,
    base_name: &'static str,
    capabilities: Capabilities,
    mailbox: Receiver<Envelope>,
    timers: Vec<Timer>,
    /// The descriptors the actor asked to watch while handling its current message.
    watch: Option<Vec<Fd>>,
    /// When the actor last handled a message (status requests aside), for its status.
    last_handled: Option<Instant>,
}

/// This process's descriptor watcher, started by the first watch (every actor of a process
/// shares it, as they share the process's one node). Read without a lock on every message.
static WATCHER: OnceLock<Arc<Watcher>> = OnceLock::new();

/// The process's watcher; its thread delivers each `WatchMessage` through `node`.
fn process_watcher(node: &Arc<Node>) -> std::io::Result<Arc<Watcher>> {
    static STARTING: Mutex<()> = Mutex::new(());
    if let Some(watcher) = WATCHER.get() {
        return Ok(watcher.clone());
    }
    let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(watcher) = WATCHER.get() {
        return Ok(watcher.clone());
    }
    let (watcher, poll) = Watcher::new()?;
    let watcher = Arc::new(watcher);
    let node = Arc::downgrade(node);
    let running = watcher.clone();
    std::thread::Builder::new()
        .name("thespian-watch".into())
        .spawn(move || {
            running.run(poll, |actor, ready| {
                let Some(node) = node.upgrade() else { return };
                if let Err(e) = node.send(&actor, &actor, Payload::new(WatchMessage { ready })) {
                    log::debug!("{actor}: WatchMessage not delivered: {e}");
                }
            });
        })?;
    Ok(WATCHER.get_or_init(|| watcher).clone())
}

impl HostServices {
    /// Ends the actor's watch: a watch lasts until the actor's next message.
    fn unwatch(&self, actor: &ActorAddress) {
        if let Some(watcher) = WATCHER.get() {
            watcher.clear(actor.id());
        }
    }

    /// Starts the watch the actor asked for while handling its message, if any.
    fn arm_watch(&mut self, actor: &ActorAddress) {
        let Some(fds) = self.watch.take() else {
            return;
        };
        match process_watcher(&self.node) {
            Ok(watcher) => {
                if !watcher.set(actor, &fds) {
                    log::warn!("{actor}: none of the descriptors {fds:?} can be watched");
                }
            }
            Err(e) => log::warn!("{actor}: descriptor watches unavailable: {e}"),
        }
    }

    fn to_admin(&self, from: &ActorAddress, payload: Payload) {
        let admin = self.node.admin();
        if let Err(e) = self.node.send(from, &admin, payload) {
            log::warn!("{from}: a message to the admin failed: {e}");
        }
    }
}

/// Asks the admin and waits for its answer of type `T`.
pub(crate) fn request<T: thespian_core::Message>(
    node: &Node,
    payload: Payload,
    timeout: Duration,
) -> Result<T> {
    request_or_refusal(node, payload, timeout)?.map_err(|refused| {
        ThespianError::SystemFailure(format!("cannot reach the admin: {}", refused.reason))
    })
}

/// As [`request`], but a request the transport could not deliver to the admin is the
/// transport's notice, with the kind of its failure.
pub(crate) fn request_or_refusal<T: thespian_core::Message>(
    node: &Node,
    payload: Payload,
    timeout: Duration,
) -> Result<std::result::Result<T, AdminUnreachable>> {
    let (reply_to, rx) = node.open();
    let admin = node.admin();
    let result = (|| {
        node.send(&reply_to, &admin, payload)?;
        let deadline = Instant::now() + timeout;
        loop {
            let envelope = node.recv(&rx, Some(deadline)).map_err(|_| {
                ThespianError::RequestTimeout(format!(
                    "the admin at {} did not answer within {timeout:?}",
                    node.admin_socket()
                ))
            })?;
            let payload = envelope.payload();
            if let Some(lost) = payload.try_get::<AdminLost>() {
                return Err(ThespianError::SystemFailure(lost.reason.clone()));
            }
            if let Some(refused) = payload.try_get::<AdminUnreachable>() {
                return Ok(Err(refused.clone()));
            }
            if let Some(answer) = payload.try_get::<T>() {
                return Ok(Ok(answer.clone()));
            }
            log::debug!(
                "unexpected {} while waiting for the admin",
                envelope.type_name()
            );
        }
    })();
    node.close(&reply_to);
    result
}

/// Asks the admin to create an actor (for `parent`; the admin for creates from outside).
///
/// `same_executable_as_admin`: this process runs the admin's own executable (an actor's host,
/// or the program that started the admin), so a type this executable did not register is
/// refused here at once, with the error the admin would give. A program that attached to a
/// running admin leaves the decision to it (the admin's executable may know more types).
pub(crate) fn create_through_admin(
    node: &Node,
    same_executable_as_admin: bool,
    parent: &ActorAddress,
    request: CreateRequest,
    wait_until_started: bool,
) -> Result<Created> {
    if let Some(hash) = &request.source_hash {
        return Err(ThespianError::InvalidSourceHash(hash.clone()));
    }
    // With a global name the admin answers an existing actor first, whatever the type. The
    // capability check is the admin's: a type this system cannot host may fit another system
    // of the convention.
    if request.global_name.is_none() && same_executable_as_admin {
        types::resolve(request.spec.type_name())?;
    }
    let create = CreateActor {
        parent: parent.clone(),
        type_name: request.spec.type_name().to_owned(),
        requirements: request.requirements,
        global_name: request.global_name,
        wait_until_started,
        remote: None,
    };
    let reply: CreateReply = request_reply(node, Payload::new(create))?;
    let created = reply.result.map_err(ThespianError::from)?;
    Ok(Created {
        address: created.address,
        is_child: created.is_child,
    })
}

fn request_reply<T: thespian_core::Message>(node: &Node, payload: Payload) -> Result<T> {
    request(node, payload, REQUEST_TIMEOUT)
}

/// Asks the admin to change a capability; the capabilities afterwards.
pub(crate) fn update_through_admin(
    node: &Node,
    name: &str,
    value: Option<CapabilityValue>,
) -> Result<Capabilities> {
    let update = UpdateCapability {
        name: name.to_owned(),
        value,
    };
    let now: CapabilitiesNow = request_reply(node, Payload::new(update))?;
    Ok(now.capabilities)
}

impl Services for HostServices {
    fn base_name(&self) -> &'static str {
        self.base_name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn admin_address(&self) -> ActorAddress {
        self.node.admin()
    }

    fn send(&mut self, from: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()> {
        if !self.node.could_have_issued(to) {
            // No system issued `to`: the message comes back to its sender as poison.
            match thespian_core::base::not_issued_poison(to, payload) {
                Ok(poison) => {
                    self.node.poison_returned(to);
                    return self.node.send(to, from, poison);
                }
                Err(poison) => {
                    log::debug!("{from} sent poison to {to}, which no system issued: dropped");
                    drop(poison);
                    return Ok(());
                }
            }
        }
        self.node.send(from, to, payload)
    }

    fn create_actor(&mut self, parent: &ActorAddress, request: CreateRequest) -> Result<Created> {
        create_through_admin(&self.node, true, parent, request, false)
    }

    fn wakeup_after(&mut self, _actor: &ActorAddress, delay: Duration, payload: Option<Payload>) {
        let due = thespian_core::base::deadline(Instant::now(), delay);
        self.timers.push((due, WakeupMessage::new(delay, payload)));
    }

    fn handle_dead_letters(&mut self, actor: &ActorAddress, enable: bool) {
        let register = HandleDeadLetters {
            actor: actor.clone(),
            enable,
        };
        self.to_admin(actor, Payload::new(register));
        // Registered before the actor goes on: a dead letter caused by its next message (sent
        // from elsewhere, on another connection) must find the new handler.
        self.node.flush(EXIT_FLUSH_TIMEOUT);
    }

    fn update_capability(
        &mut self,
        _actor: &ActorAddress,
        name: &str,
        value: Option<CapabilityValue>,
    ) -> Result<()> {
        self.capabilities = update_through_admin(&self.node, name, value)?;
        Ok(())
    }

    fn actor_system_shutdown(&mut self, actor: &ActorAddress) {
        self.to_admin(actor, Payload::new(ShutdownSystem));
    }

    fn dead_letter(&mut self, target: &ActorAddress, envelope: Envelope) {
        self.node.dead_letter(target, envelope);
    }

    fn actor_exited(&mut self, actor: &ActorAddress) {
        self.timers.clear();
        // The parent hears of the exit after everything the actor sent has arrived, so its
        // last words are never overtaken by its death notice (they travel other connections).
        if !self.node.flush(EXIT_FLUSH_TIMEOUT) {
            log::warn!("{actor}: exiting with messages still unacknowledged");
        }
        let exited = ActorExited {
            address: actor.clone(),
        };
        if let Err(e) = request::<ExitNoted>(&self.node, Payload::new(exited), EXIT_FLUSH_TIMEOUT) {
            log::warn!("{actor}: the admin did not note its exit: {e}");
        }
    }

    fn mailbox_len(&self, _actor: &ActorAddress) -> usize {
        self.mailbox.len()
    }

    fn poison_returned(&mut self, actor: &ActorAddress) {
        self.node.poison_returned(actor);
    }

    fn process_id(&self) -> Option<u32> {
        Some(std::process::id())
    }

    fn idle_for(&self, _actor: &ActorAddress) -> Option<Duration> {
        self.last_handled.map(|at| at.elapsed())
    }

    fn notify_on_system_registration_changes(
        &mut self,
        actor: &ActorAddress,
        enable: bool,
    ) -> Result<()> {
        self.to_admin(actor, Payload::new(WatchConvention { enable }));
        Ok(())
    }

    fn pre_register_remote_system(
        &mut self,
        actor: &ActorAddress,
        remote: &str,
        capabilities: Capabilities,
    ) -> Result<()> {
        let remote = crate::convention::remote_admin_socket(remote, &self.capabilities)?;
        let request = PreRegisterRemote {
            remote,
            capabilities,
        };
        self.to_admin(actor, Payload::new(request));
        Ok(())
    }

    fn de_register_remote_system(
        &mut self,
        actor: &ActorAddress,
        remote: RemoteSystem,
    ) -> Result<()> {
        self.to_admin(actor, Payload::new(DeRegisterRemote { remote }));
        Ok(())
    }

    fn watch(&mut self, _actor: &ActorAddress, fds: &[Fd]) -> Result<()> {
        self.watch = Some(fds.to_vec());
        Ok(())
    }
}
