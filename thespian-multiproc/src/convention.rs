//! The admin's part in a convention: the driver of `thespian-conventions`' machines.
//!
//! The admin daemon owns one [`Convention`] (membership, leaders, notifications) and one
//! [`RemoteCreates`] (placing creates on other systems). This module routes what reaches the
//! admin to them (convention traffic from other admins, actors' requests, the answers to
//! remote creates, the bounces of what they sent), carries out what they ask (sends, notices),
//! and wires them to the [`Admin`] machine: a create the admin cannot place becomes a remote
//! create, whose answer the admin passes on; a capability change is told to the convention;
//! the status reply lists it; warnings go on to the leader's log (central logging).
//!
//! Other admins are named by their routable address (slot 0 of their socket,
//! [`node::routable_admin`]); a convention message goes to whichever incarnation listens there,
//! and says who sent it.

use std::net::{SocketAddrV4, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use thespian_admin::protocol::{
    ActorExited, CreateActor, CreateFailure, CreateReply, DeRegisterRemote, DeadLetter, LogRecord,
    PreRegisterRemote, RemoteCreate, RemoteOrigin, WatchConvention,
};
use thespian_admin::{Admin, Requester};
use thespian_conventions::remote_create::{self, Answer, Finished, RemoteCreates, Step};
use thespian_conventions::{
    Action, AdminRef, Convention, ConventionConfig, ConventionMessage, ConventionUpdate, Timing,
};
use thespian_core::{
    keys, ActorAddress, ActorSystemConventionUpdate, Capabilities, CapabilityValue,
    ConventionMemberStatus, ConventionStatus, Envelope, Payload, PoisonMessage, RemoteSystem,
    Result, StatusRequest, SystemId, ThespianError,
};

use crate::node::{self, Node};
use crate::types;

/// Whether `host_port` could name a host: letters, digits, dots and dashes before an optional
/// `:port`. Anything else is refused before a resolver (and perhaps the network) sees it.
fn plausible_host(host_port: &str) -> bool {
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port, |(host, _)| host);
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// A remote system's admin socket from `"host[:port]"` (a missing port is this system's Admin
/// Port): what `pre_register_remote_system` and `de_register_remote_system` accept.
pub(crate) fn remote_admin_socket(text: &str, capabilities: &Capabilities) -> Result<SocketAddrV4> {
    let invalid = |reason: String| ThespianError::InvalidActorAddress {
        address: text.to_owned(),
        reason,
    };
    let text = text.trim();
    let with_port = if text.contains(':') {
        text.to_owned()
    } else {
        let port = capabilities
            .get_int(keys::ADMIN_PORT)
            .ok()
            .flatten()
            .ok_or_else(|| invalid("no port given and no Admin Port to default to".into()))?;
        format!("{text}:{port}")
    };
    if !plausible_host(&with_port) {
        return Err(invalid("not a host:port".into()));
    }
    let resolved = with_port
        .to_socket_addrs()
        .map_err(|e| invalid(format!("not a host:port ({e})")))?;
    resolved
        .filter_map(|a| match a {
            std::net::SocketAddr::V4(v4) => Some(v4),
            std::net::SocketAddr::V6(_) => None,
        })
        .find(|a| a.port() != 0 && !a.ip().is_unspecified())
        .ok_or_else(|| invalid("names no IPv4 system address".into()))
}

/// The leader candidates of `Convention Address.IPv4`: `"host[:port]"` or a list of them, a
/// missing port meaning `admin_port`; host names are resolved here (to their first IPv4
/// address), since the convention machine takes addresses only.
pub(crate) fn convention_leaders(
    capabilities: &Capabilities,
    admin_port: u16,
) -> std::result::Result<Vec<SocketAddrV4>, String> {
    let value = capabilities.get(keys::CONVENTION_ADDRESS_IPV4);
    let resolve = |text: &str| -> CapabilityValue {
        let text = text.trim();
        let with_port = if text.contains(':') {
            text.to_owned()
        } else {
            format!("{text}:{admin_port}")
        };
        let resolved = plausible_host(&with_port).then(|| with_port.to_socket_addrs().ok());
        let resolved = resolved.flatten().and_then(|mut all| {
            all.find_map(|a| match a {
                std::net::SocketAddr::V4(v4) => Some(v4),
                std::net::SocketAddr::V6(_) => None,
            })
        });
        // Unresolvable text goes on as it was: the machine's parser names it in its error.
        CapabilityValue::Str(resolved.map_or_else(|| text.to_owned(), |a| a.to_string()))
    };
    let resolved = match value {
        Some(CapabilityValue::Str(text)) => Some(resolve(text)),
        Some(CapabilityValue::List(items)) => Some(CapabilityValue::List(
            items
                .iter()
                .map(|item| match item {
                    CapabilityValue::Str(text) => resolve(text),
                    other => other.clone(),
                })
                .collect(),
        )),
        other => other.cloned(),
    };
    thespian_conventions::leaders_from_capability(resolved.as_ref(), admin_port)
}

/// The convention's timing: the capabilities, then Thespian's environment variables, then
/// Thespian's defaults. Periods given as capabilities re-derive what follows from them (the
/// leader probing, the hysteresis).
fn timing(capabilities: &Capabilities) -> std::result::Result<Timing, String> {
    let mut timing = Timing::from_env(|name| std::env::var(name).ok())?;
    let seconds = |key: &str| {
        capabilities
            .get(key)
            .and_then(|v| v.as_float())
            .map(std::time::Duration::from_secs_f64)
    };
    let period = seconds(keys::CONVENTION_REREGISTRATION_PERIOD);
    let restart = seconds(keys::CONVENTION_RESTART_PERIOD);
    if period.is_some() || restart.is_some() {
        let derived = Timing::with_periods(
            period.unwrap_or(timing.reregistration_period),
            restart.unwrap_or(timing.restart_period),
        );
        timing = Timing {
            miss_max: timing.miss_max,
            reinvite_adjustment: timing.reinvite_adjustment,
            ..derived
        };
    }
    if let Some(misses) = capabilities
        .get_int(keys::CONVENTION_REGISTRATION_MISS_MAX)
        .ok()
        .flatten()
    {
        timing.miss_max = u32::try_from(misses).unwrap_or(u32::MAX);
    }
    Ok(timing)
}

/// A create handed to another system, as the coordinator keeps it.
#[derive(Debug)]
struct Placing {
    requester: Requester,
    create: CreateActor,
}

/// The admin's convention: the membership machine, the remote creates, and their wiring.
pub(crate) struct ConventionDriver {
    node: Arc<Node>,
    me: AdminRef,
    machine: Convention,
    creates: RemoteCreates<Placing>,
    /// The active leader's socket, for central logging.
    log_to: Option<SocketAddrV4>,
    /// The capabilities last told to the convention.
    capabilities: Capabilities,
    shut_down: bool,
}

impl ConventionDriver {
    /// The convention of the admin at `node` (its socket and incarnation), with the system's
    /// starting capabilities. A bad `Convention Address.IPv4` or timing value is an error.
    pub(crate) fn new(
        node: Arc<Node>,
        capabilities: &Capabilities,
        now: Instant,
    ) -> std::result::Result<ConventionDriver, String> {
        let socket = node.local();
        let me = AdminRef {
            socket,
            incarnation: node.incarnation(),
        };
        let leaders = convention_leaders(capabilities, socket.port())?;
        let config = ConventionConfig {
            me,
            capabilities: capabilities.clone(),
            leaders,
            timing: timing(capabilities)?,
        };
        Ok(ConventionDriver {
            node,
            me,
            machine: Convention::new(config, now),
            creates: RemoteCreates::new(socket, remote_create::DEFAULT_ANSWER_WITHIN),
            log_to: None,
            capabilities: capabilities.clone(),
            shut_down: false,
        })
    }

    /// When [`ConventionDriver::handle_timeout`] must next be called.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (self.machine.poll_timeout(), self.creates.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the timers due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant, admin: &mut Admin) {
        self.machine.handle_timeout(now);
        let steps = self
            .creates
            .handle_timeout(now, &mut self.machine, check_placing);
        for step in steps {
            self.carry_out(step, admin);
        }
        self.drain(now, admin);
    }

    /// Takes what concerns the convention out of the admin's inbox; everything else (and what
    /// the admin must also see) is handed back for the admin machine.
    pub(crate) fn intercept(
        &mut self,
        now: Instant,
        envelope: Envelope,
        admin: &mut Admin,
    ) -> Option<Envelope> {
        let envelope = self.take(now, envelope, admin);
        self.drain(now, admin);
        envelope
    }

    fn take(&mut self, now: Instant, envelope: Envelope, admin: &mut Admin) -> Option<Envelope> {
        let payload = envelope.payload();
        if let Some(message) = payload.try_get::<ConventionMessage>() {
            if !self.shut_down {
                self.machine.handle(now, message.clone());
            }
            return None;
        }
        if let Some(reply) = payload.try_get::<CreateReply>() {
            if let Some(ticket) = reply.ticket {
                self.on_create_reply(now, ticket, reply.clone(), admin);
                return None;
            }
            return Some(envelope);
        }
        if let Some(watch) = payload.try_get::<WatchConvention>() {
            self.machine
                .notify_on_changes(envelope.sender().clone(), watch.enable);
            return None;
        }
        if let Some(request) = payload.try_get::<PreRegisterRemote>() {
            if request.remote == self.me.socket {
                log::warn!("pre_register_remote_system names this system itself: ignored");
            } else {
                self.machine
                    .pre_register(now, request.remote, request.capabilities.clone());
            }
            return None;
        }
        if let Some(request) = payload.try_get::<DeRegisterRemote>() {
            match self.remote_of(&request.remote) {
                Some(remote) => self.machine.de_register(now, remote),
                None => log::info!(
                    "de_register_remote_system({:?}) names no system: nothing to do",
                    request.remote
                ),
            }
            return None;
        }
        if let Some(exited) = payload.try_get::<ActorExited>() {
            self.machine.watcher_gone(&exited.address);
            return Some(envelope);
        }
        if payload.has_type::<StatusRequest>() {
            admin.set_convention_status(Some(self.status(now)));
            return Some(envelope);
        }
        if let Some(poison) = payload.try_get::<PoisonMessage>() {
            // The poison's sender is the one that could not be reached.
            if self.bounced(now, envelope.sender(), &poison.poison_message, admin) {
                return None;
            }
            return Some(envelope);
        }
        if let Some(letter) = payload.try_get::<DeadLetter>() {
            if self.bounced(now, &letter.target, &letter.payload, admin) {
                return None;
            }
            return Some(envelope);
        }
        Some(envelope)
    }

    /// Something the convention sent to `target` came back undelivered: true when it was
    /// convention traffic (handled here).
    fn bounced(
        &mut self,
        now: Instant,
        target: &ActorAddress,
        payload: &Payload,
        admin: &mut Admin,
    ) -> bool {
        if payload.has_type::<ActorSystemConventionUpdate>() {
            self.machine.watcher_gone(target);
            return true;
        }
        if payload.has_type::<ConventionMessage>() {
            if let Some(socket) = node::admin_socket_of(target) {
                self.machine.send_failed(now, socket);
            }
            return true;
        }
        if let Some(RemoteCreate { create }) = payload.try_get::<RemoteCreate>() {
            if let Some(origin) = &create.remote {
                let reason = "the transport could not deliver it";
                if let Some(step) = self.creates.failed(
                    now,
                    &mut self.machine,
                    origin.ticket,
                    reason,
                    check_placing,
                ) {
                    self.carry_out(step, admin);
                }
                return true;
            }
        }
        false
    }

    fn remote_of(&self, remote: &RemoteSystem) -> Option<SocketAddrV4> {
        match remote {
            RemoteSystem::Address(text) => remote_admin_socket(text, &self.capabilities).ok(),
            RemoteSystem::Admin(address) => node::admin_socket_of(address),
        }
    }

    fn on_create_reply(
        &mut self,
        now: Instant,
        ticket: u64,
        reply: CreateReply,
        admin: &mut Admin,
    ) {
        let answer = match &reply.result {
            Ok(_) => Answer::Created,
            Err(CreateFailure::CreationFailed { .. }) => Answer::Failed,
            Err(CreateFailure::NoCompatibleSystem { unmet, .. }) => {
                Answer::Refused(format!("unfit: {}", unmet.join("; ")))
            }
            Err(CreateFailure::InvalidActorSpecification { reason, .. }) => {
                Answer::Refused(format!("cannot create the type: {reason}"))
            }
            Err(CreateFailure::ShuttingDown) => Answer::Refused("shutting down".into()),
        };
        match self
            .creates
            .answered(now, &mut self.machine, ticket, answer, check_placing)
        {
            Some(Finished::Answered(placing)) => {
                admin.placed_elsewhere(placing.requester, reply.result);
            }
            Some(Finished::Step(step)) => self.carry_out(step, admin),
            None => log::debug!("a late answer to remote create {ticket} dropped"),
        }
    }

    /// The admin cannot place `create` here (`unmet`): place it on another system.
    pub(crate) fn place_elsewhere(
        &mut self,
        now: Instant,
        requester: Requester,
        mut create: CreateActor,
        unmet: Vec<String>,
        admin: &mut Admin,
    ) {
        if self.shut_down || admin.in_shutdown() {
            admin.placed_elsewhere(requester, Err(CreateFailure::ShuttingDown));
            return;
        }
        let (requester_admin, already_tried) = match &create.remote {
            Some(origin) => (
                node::admin_socket_of(&requester.address),
                origin.already_tried.clone(),
            ),
            None => (None, Vec::new()),
        };
        // The parent must be reachable from the other system: this admin by its routable name.
        if create.parent.is_admin() {
            create.parent = self.node.routable_self();
        }
        let spec = types::lookup(&create.type_name);
        let Some(spec) = spec else {
            // The admin resolved it a moment ago; a program's types do not change.
            admin.placed_elsewhere(
                requester,
                Err(CreateFailure::NoCompatibleSystem {
                    actor_type: create.type_name,
                    unmet,
                }),
            );
            return;
        };
        let requirements = create.requirements.clone();
        let placing = Placing { requester, create };
        let step = self.creates.start(
            now,
            &mut self.machine,
            placing,
            requester_admin,
            already_tried,
            unmet,
            |caps| spec.check(caps, &requirements),
        );
        self.carry_out(step, admin);
    }

    fn carry_out(&mut self, step: Step<Placing>, admin: &mut Admin) {
        match step {
            Step::Ask {
                ticket,
                to,
                already_tried,
            } => {
                // The coordinator keeps the request; the driver sends a copy with the ticket.
                let Some(create) = self.creates_request(ticket) else {
                    return;
                };
                let mut create = create;
                create.remote = Some(RemoteOrigin {
                    ticket,
                    already_tried,
                });
                let target = node::routable_admin(to.socket, SystemId::from_raw(0));
                let from = self.node.routable_self();
                if let Err(e) =
                    self.node
                        .send(&from, &target, Payload::new(RemoteCreate { create }))
                {
                    log::warn!("remote create to {}: {e}", to.socket);
                    let now = Instant::now();
                    if let Some(step) = self.creates.failed(
                        now,
                        &mut self.machine,
                        ticket,
                        &e.to_string(),
                        check_placing,
                    ) {
                        self.carry_out(step, admin);
                    }
                }
            }
            Step::NoSystem { request, unmet } => {
                let failure = CreateFailure::NoCompatibleSystem {
                    actor_type: request.create.type_name.clone(),
                    unmet,
                };
                admin.placed_elsewhere(request.requester, Err(failure));
            }
        }
    }

    fn creates_request(&self, ticket: u64) -> Option<CreateActor> {
        let placing = self.creates.request(ticket)?;
        Some(placing.create.clone())
    }

    /// The system's capabilities may have changed: the convention hears of it.
    pub(crate) fn capabilities_now(&mut self, now: Instant, admin: &mut Admin) {
        if *admin.capabilities() != self.capabilities && !self.shut_down {
            self.capabilities = admin.capabilities().clone();
            self.machine
                .update_capabilities(now, self.capabilities.clone());
            self.drain(now, admin);
        }
    }

    /// The system shuts down: leave the convention, give up the remote creates.
    pub(crate) fn shutdown(&mut self, now: Instant, admin: &mut Admin) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        self.machine.shutdown(now);
        for placing in self.creates.abandon_all() {
            admin.placed_elsewhere(placing.requester, Err(CreateFailure::ShuttingDown));
        }
        self.drain(now, admin);
    }

    /// A warning (or worse) logged here goes on to the leader's log too.
    pub(crate) fn forward_log(&self, level: log::Level, target: &str, text: &str) {
        let Some(leader) = self.log_to else { return };
        if level > log::Level::Warn {
            return;
        }
        let record = LogRecord {
            level: level as u8,
            target: target.to_owned(),
            text: text.to_owned(),
            actor: None,
            system: Some(self.me.socket.to_string()),
        };
        let to = node::routable_admin(leader, SystemId::from_raw(0));
        let _ = self
            .node
            .send(&self.node.routable_self(), &to, Payload::new(record));
    }

    fn status(&self, now: Instant) -> ConventionStatus {
        let leader = self
            .machine
            .leader()
            .map(|l| node::routable_admin(l.socket, l.incarnation));
        let members = self
            .machine
            .members()
            .into_iter()
            .map(|m| ConventionMemberStatus {
                admin_address: node::routable_admin(m.admin.socket, m.admin.incarnation),
                capabilities: m.capabilities,
                last_heard: m.last_heard.map(|at| now.saturating_duration_since(at)),
                pre_registered: m.pre_registered,
                is_leader: m.is_leader,
                actors_placed: m.placed,
            })
            .collect();
        ConventionStatus { leader, members }
    }

    fn drain(&mut self, now: Instant, admin: &mut Admin) {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Send { to, message } => self.send(to, message),
                Action::Notify { watcher, update } => self.notify(watcher, update),
                Action::MemberLost(member) => {
                    log::info!("convention: {} is gone", member.socket);
                    let steps = self.creates.member_lost(
                        now,
                        &mut self.machine,
                        member.socket,
                        check_placing,
                    );
                    for step in steps {
                        self.carry_out(step, admin);
                    }
                }
                Action::LeaderChanged(leader) => {
                    match leader {
                        Some(l) => log::info!("convention leader is now {}", l.socket),
                        None => log::info!("this system leads its convention"),
                    }
                    self.log_to = leader.map(|l| l.socket);
                }
            }
        }
    }

    fn send(&self, to: SocketAddrV4, message: ConventionMessage) {
        let target = node::routable_admin(to, SystemId::from_raw(0));
        let from = self.node.routable_self();
        if let Err(e) = self.node.send(&from, &target, Payload::new(message)) {
            log::debug!("convention message to {to} not sent: {e}");
        }
    }

    fn notify(&self, watcher: ActorAddress, update: ConventionUpdate) {
        let notice = ActorSystemConventionUpdate {
            remote_admin_address: node::routable_admin(
                update.remote.socket,
                update.remote.incarnation,
            ),
            remote_capabilities: update.capabilities,
            remote_added: update.added,
        };
        let from = self.node.admin();
        if let Err(e) = self.node.send(&from, &watcher, Payload::new(notice)) {
            log::debug!("convention notice to {watcher} not sent: {e}");
        }
    }
}

/// The actor type's capability check, for a create being placed.
fn check_placing(placing: &Placing, caps: &Capabilities) -> std::result::Result<(), Vec<String>> {
    match types::lookup(&placing.create.type_name) {
        Some(spec) => spec.check(caps, &placing.create.requirements),
        None => Err(vec![format!(
            "{} is not a registered actor type",
            placing.create.type_name
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(value: CapabilityValue) -> Capabilities {
        Capabilities::new()
            .with(keys::ADMIN_PORT, 1900i64)
            .with(keys::CONVENTION_ADDRESS_IPV4, value)
    }

    #[test]
    fn leaders_are_resolved_and_default_to_the_admin_port() {
        let one = caps("localhost".into());
        assert_eq!(
            convention_leaders(&one, 1900),
            Ok(vec!["127.0.0.1:1900".parse().expect("an address")])
        );
        let list = caps(CapabilityValue::List(vec![
            "127.0.0.2:1901".into(),
            "localhost:1902".into(),
        ]));
        assert_eq!(
            convention_leaders(&list, 1900),
            Ok(vec![
                "127.0.0.2:1901".parse().expect("an address"),
                "127.0.0.1:1902".parse().expect("an address"),
            ])
        );
        assert_eq!(convention_leaders(&Capabilities::new(), 1900), Ok(vec![]));
        assert!(convention_leaders(&caps("no such host.invalid:x".into()), 1900).is_err());
    }

    #[test]
    fn remote_systems_are_named_by_host_and_port() {
        let ours = Capabilities::new().with(keys::ADMIN_PORT, 1900i64);
        assert_eq!(
            remote_admin_socket("localhost:1901", &ours).ok(),
            Some("127.0.0.1:1901".parse().expect("an address"))
        );
        assert_eq!(
            remote_admin_socket(" 127.0.0.3 ", &ours).ok(),
            Some("127.0.0.3:1900".parse().expect("an address"))
        );
        for bad in [
            "RegisterNOT 10.101.10:9999",
            "127.0.0.1:0",
            "0.0.0.0:1900",
            "",
        ] {
            assert!(
                matches!(
                    remote_admin_socket(bad, &ours),
                    Err(ThespianError::InvalidActorAddress { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
