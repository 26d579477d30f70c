//! The admin daemon: the driver of the [`thespian_admin::Admin`] machine.
//!
//! It owns the Admin Port's socket (bound by the program that started it and handed over as
//! stdin), starts actor processes (or threads), reaps them (SIGCHLD), and carries out the
//! machine's actions until a shutdown completes. Actor types are found by name among the types
//! its own executable registered ([`crate::types`]); actor processes run that executable.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};
use thespian_admin::protocol::LogLevelSet;
use thespian_admin::{Action, Admin, AdminConfig, HostId, Launch, LaunchTicket, Placement};
use thespian_core::{keys, ActorAddress, Envelope, Payload};

use crate::convention::ConventionDriver;
use crate::factory::TransportFactory;
use crate::host::{self, HostSetup};
use crate::launch;
use crate::node::{Driving, Node};
use crate::roles::{self, ActorLaunch, AdminLaunch};
use crate::{log_level, logging, secret, signals, types};

/// Host ids of thread-mode hosts start here, far above any process id.
const FIRST_THREAD_HOST: HostId = 1 << 40;

struct Daemon {
    transport: Arc<dyn TransportFactory>,
    node: Arc<Node>,
    ip: IpAddr,
    admin: ActorAddress,
    log_level: u8,
    /// Changes the admin's log level at run time; `None` when the admin has no logger of its
    /// own (the program that started it leaves logging alone).
    log_handle: Option<log_level::LevelHandle>,
    /// The arguments the admin was started with: every actor process gets them too.
    entry_args: Vec<OsString>,
    children: HashMap<HostId, (Child, ActorAddress)>,
    /// The secret file the admin was started with: every actor process reads it.
    secret_file: std::path::PathBuf,
    next_thread_host: HostId,
    thread_exits: crossbeam_channel::Sender<HostId>,
}

/// Runs the admin role; returns the process's exit code.
pub(crate) fn run(transport: Arc<dyn TransportFactory>, config: AdminLaunch) -> i32 {
    signals::detach_session();
    let log_handle = config
        .log_filter
        .as_deref()
        .and_then(log_level::AdminLogger::install);
    let log_level = config
        .log_filter
        .as_deref()
        .map_or(0, |f| logging::max_level(f) as u8);
    let socket = match roles::socket_from_stdin(&transport) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("thespian admin: no socket: {e}");
            return 2;
        }
    };
    let local = socket.local_addr();
    let secret = match secret::secret_at(&config.secret_file) {
        Ok(secret) => secret,
        Err(e) => {
            eprintln!("thespian admin: {e}");
            return 2;
        }
    };
    let incarnation = roles::new_incarnation();
    let admin = ActorAddress::admin(incarnation);
    let (inbox_tx, inbox) = crossbeam_channel::unbounded();
    let node = match Node::start(
        socket,
        incarnation,
        local,
        admin.clone(),
        Some(inbox_tx),
        Vec::new(),
        secret,
        Driving::Thread,
    ) {
        Ok(node) => node,
        Err(e) => {
            eprintln!("thespian admin: {e}");
            return 2;
        }
    };
    let sigchld = match signals::route(&[libc::SIGCHLD, libc::SIGUSR1]) {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("thespian admin: signals: {e}");
            return 2;
        }
    };
    let convention = match ConventionDriver::new(node.clone(), &config.capabilities, Instant::now())
    {
        Ok(convention) => convention,
        Err(e) => {
            eprintln!("thespian admin: convention: {e}");
            node.stop();
            return 2;
        }
    };
    let machine = Admin::new(
        AdminConfig {
            admin: admin.clone(),
            admin_pid: std::process::id(),
            base_name: transport.base_name(),
            capabilities: config.capabilities,
            thread_mode: config.thread_mode,
            shutdown_grace: Duration::from_secs(10),
            remote_placement: true,
            max_reply: transport.max_payload(),
        },
        Box::new(|name| types::lookup(name).ok_or_else(|| types::unknown_reason(name))),
    );
    let (thread_exits, thread_exited) = crossbeam_channel::unbounded();
    let mut daemon = Daemon {
        transport,
        node: node.clone(),
        ip: local.ip(),
        admin,
        log_level,
        log_handle,
        entry_args: launch::own_arguments(),
        children: HashMap::new(),
        secret_file: config.secret_file.clone(),
        next_thread_host: FIRST_THREAD_HOST,
        thread_exits,
    };
    log::info!("admin {} serving on {local}", daemon.admin);
    let code = daemon.serve(machine, convention, &inbox, &sigchld, &thread_exited);
    // The last answers (ShutdownComplete) go to live requesters and settle in moments; a
    // program that already ended must not hold the exit up.
    node.flush(Duration::from_secs(1));
    node.stop();
    code
}

impl Daemon {
    fn serve(
        &mut self,
        mut machine: Admin,
        mut convention: ConventionDriver,
        inbox: &Receiver<thespian_core::Envelope>,
        signals_rx: &Receiver<libc::c_int>,
        thread_exited: &Receiver<HostId>,
    ) -> i32 {
        loop {
            let due = match (machine.poll_timeout(), convention.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timeout = due
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600));
            select! {
                recv(inbox) -> envelope => match envelope {
                    Ok(envelope) => deliver(&mut machine, &mut convention, envelope),
                    Err(_) => return 1,
                },
                recv(signals_rx) -> signal => match signal {
                    Ok(libc::SIGUSR1) => log::info!("admin status: {:?}", machine.status()),
                    Ok(_) => {
                        // What an exiting actor said before its process ended (its exit
                        // report) is handled first, so a normal exit is not taken for a death.
                        while let Ok(envelope) = inbox.try_recv() {
                            deliver(&mut machine, &mut convention, envelope);
                        }
                        self.reap(&mut machine)
                    }
                    Err(_) => return 1,
                },
                recv(thread_exited) -> host => {
                    if let Ok(host) = host {
                        // As for a process: what the actor's thread said before it ended (its
                        // failed start, its exit report) is already in the inbox, and is
                        // handled first, since `select!` picks among ready channels at random.
                        while let Ok(envelope) = inbox.try_recv() {
                            deliver(&mut machine, &mut convention, envelope);
                        }
                        machine.host_exited(Instant::now(), host, "its thread ended");
                    }
                }
                default(timeout) => {
                    let now = Instant::now();
                    machine.handle_timeout(now);
                    convention.handle_timeout(now, &mut machine);
                }
            }
            if machine.in_shutdown() {
                // Leaves the convention once, as the shutdown begins.
                convention.shutdown(Instant::now(), &mut machine);
            }
            while let Some(action) = machine.poll_action() {
                if self.execute(&mut machine, &mut convention, action) {
                    return 0;
                }
            }
        }
    }

    /// Carries out one action; true when the admin must exit.
    fn execute(
        &mut self,
        machine: &mut Admin,
        convention: &mut ConventionDriver,
        action: Action,
    ) -> bool {
        match action {
            Action::Send { from, to, payload } => {
                if let Err(e) = self.node.send(&from, &to, payload) {
                    log::warn!("admin: a message to {to} failed: {e}");
                }
            }
            Action::Launch {
                ticket,
                placement,
                launch,
            } => self.launch(machine, ticket, placement, launch),
            Action::Kill { host } => {
                if let Some((child, _)) = self.children.get_mut(&host) {
                    log::warn!("admin: killing actor process {host}");
                    let _ = child.kill();
                }
            }
            Action::PlaceElsewhere {
                requester,
                create,
                unmet,
            } => convention.place_elsewhere(Instant::now(), requester, create, unmet, machine),
            Action::Log {
                level,
                target,
                text,
                from_other_system,
            } => {
                log::log!(target: &target, level, "{text}");
                if !from_other_system {
                    convention.forward_log(level, &target, &text);
                }
            }
            Action::SetLogLevel { requester, level } => {
                let result = match &self.log_handle {
                    Some(handle) => {
                        let before = handle.set(level);
                        log::warn!("admin: log level set to {level} (was {before})");
                        Ok((
                            before.to_string().to_lowercase(),
                            level.to_string().to_lowercase(),
                        ))
                    }
                    None => Err("the admin has no log sink of its own (the program that \
                                 started it left logging alone)"
                        .to_owned()),
                };
                let answer = Payload::new(LogLevelSet { result });
                let admin = self.admin.clone();
                if let Err(e) = self.node.send(&admin, &requester, answer) {
                    log::debug!("admin: the log-level answer to {requester} failed: {e}");
                }
            }
            Action::Exit => return true,
        }
        false
    }

    fn launch(
        &mut self,
        machine: &mut Admin,
        ticket: LaunchTicket,
        placement: Placement,
        l: Launch,
    ) {
        let now = Instant::now();
        let request = ActorLaunch {
            transport: self.transport.name().to_owned(),
            incarnation: 0,
            address: self.admin.clone(),
            admin: self.admin.clone(),
            admin_socket: SocketAddr::new(self.ip, self.node.local().port()),
            admin_pid: std::process::id(),
            parent: l.parent,
            type_name: l.spec.type_name().to_owned(),
            requirements: l.requirements,
            global_name: l.global_name,
            capabilities: l.capabilities,
            log_level: self.log_level,
            secret_file: self.secret_file.clone(),
        };
        match placement {
            Placement::Process => {
                match launch::spawn_actor(&self.transport, self.ip, &self.entry_args, request) {
                    Ok((address, child)) => {
                        let host = HostId::from(child.id());
                        self.children.insert(host, (child, address.clone()));
                        machine.launched(now, ticket, Ok((address, host)));
                    }
                    Err(reason) => machine.launched(now, ticket, Err(reason)),
                }
            }
            Placement::Thread => {
                let spec = l.spec;
                let (address, mailbox) = self.node.open();
                let host = self.next_thread_host;
                self.next_thread_host += 1;
                let setup = HostSetup {
                    node: self.node.clone(),
                    base_name: self.transport.base_name(),
                    address: address.clone(),
                    mailbox,
                    parent: request.parent,
                    spec,
                    requirements: request.requirements,
                    global_name: request.global_name,
                    capabilities: request.capabilities,
                };
                let exits = self.thread_exits.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("thespian-actor-{}", spec.type_name()))
                    .spawn(move || {
                        host::run(setup);
                        let _ = exits.send(host);
                    });
                match spawned {
                    Ok(_) => machine.launched(now, ticket, Ok((address, host))),
                    Err(e) => {
                        self.node.close(&address);
                        machine.launched(now, ticket, Err(format!("cannot start a thread: {e}")))
                    }
                }
            }
        }
    }

    fn reap(&mut self, machine: &mut Admin) {
        let exited: Vec<(HostId, String)> = self
            .children
            .iter_mut()
            .filter_map(|(host, (child, _))| match child.try_wait() {
                Ok(Some(status)) => Some((*host, status.to_string())),
                Ok(None) => None,
                Err(e) => Some((*host, format!("cannot be waited for: {e}"))),
            })
            .collect();
        for (host, description) in exited {
            if let Some((_, address)) = self.children.remove(&host) {
                self.node.host_gone(&address);
            }
            machine.host_exited(Instant::now(), host, &description);
        }
    }
}

/// Hands one message for the admin to the convention first (its traffic stays there), then
/// to the admin machine; a capability change the message made is told to the convention.
fn deliver(machine: &mut Admin, convention: &mut ConventionDriver, envelope: Envelope) {
    let now = Instant::now();
    if let Some(envelope) = convention.intercept(now, envelope, machine) {
        machine.handle(now, envelope);
        convention.capabilities_now(now, machine);
    }
}

/// The capabilities a new admin starts with: the user's, the common keys, and the base's.
pub(crate) fn admin_capabilities(
    base_name: &'static str,
    user: thespian_core::Capabilities,
    port: u16,
    thread_mode: bool,
) -> thespian_core::Capabilities {
    let caps = thespian_core::registry::with_common_capabilities(user, base_name, 1);
    caps.with(keys::ADMIN_PORT, i64::from(port))
        .with(keys::WATCH_SUPPORTED, true)
        .with(keys::ALLOW_REMOTE_ACTOR_SOURCES, "No")
        .with(
            keys::PROCESS_STARTUP_METHOD,
            if thread_mode { "thread" } else { "spawn" },
        )
}
