//! One process's place in a multi-process system: its transport endpoint, the addresses it
//! hosts, and how a message reaches any address.
//!
//! Addresses locate what they name, as Erlang's pids do: an actor's `id` is its host's IPv4
//! address, port and a slot number on that host (`ip << 32 | port << 16 | slot`), and its
//! `system` is the host's incarnation, so a stale address whose port a new process took is
//! recognised as dead instead of reaching a stranger. The admin keeps id 0 (every process knows
//! its admin's socket). Sending therefore needs no lookup and no registry round trip, and the
//! order of messages between two addresses is the transport's per-peer order.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};
use thespian_auth::Secret;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use serde::{Deserialize, Serialize};
use thespian_admin::protocol::{
    DeadLetter, MailboxDepth, MailboxDepthQuery, PoisonReturned, ShutdownComplete, WIRE_PREFIX,
};
use thespian_core::{
    message, ActorAddress, Envelope, MessageId, Payload, PoisonMessage, Result, SystemId,
    ThespianError, WireMessage,
};

use thespian_core::transport::{FailureKind, TransportEvent, TransportPoll, TransportSend};
use thespian_core::wire::peer_text;

use crate::factory::{BoundSocket, TransportEndpoint};

/// Told to every address of a process when its admin is found gone: waits end with an error.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AdminLost {
    /// What was seen.
    pub(crate) reason: String,
}

/// A request to the admin could not be delivered (the transport refused it: another secret, an
/// overloaded admin): told to the requester at once, so it fails with the reason instead of
/// waiting for its timeout.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AdminUnreachable {
    /// The kind of the transport's failure.
    pub(crate) kind: FailureKind,
    /// The transport's reason.
    pub(crate) reason: String,
}

message!(
    AdminLost = "thespian.admin.local.AdminLost",
    AdminUnreachable = "thespian.admin.local.AdminUnreachable",
);

/// The id of an address at `addr`, slot `slot`.
pub(crate) fn encode_id(addr: SocketAddrV4, slot: u16) -> u64 {
    (u64::from(u32::from(*addr.ip())) << 32) | (u64::from(addr.port()) << 16) | u64::from(slot)
}

/// Where an address lives: its host's socket and its slot there. `None` for the admin's id.
pub(crate) fn decode_id(id: u64) -> Option<(SocketAddrV4, u16)> {
    if id == ActorAddress::ADMIN_ID {
        return None;
    }
    let ip = Ipv4Addr::from((id >> 32) as u32);
    let port = (id >> 16) as u16;
    Some((SocketAddrV4::new(ip, port), id as u16))
}

/// The admin address used before the admin's incarnation is known (the first `Hello`).
pub(crate) fn any_admin() -> ActorAddress {
    ActorAddress::admin(SystemId::from_raw(0))
}

/// The address of the admin listening at `socket`, as other systems of a convention name it:
/// slot 0 of the admin's socket. Inside its own system the admin is also `ADMIN_ID`; this form
/// says where it lives, so it travels in convention notices and reaches that admin from
/// anywhere. `incarnation` 0 means any incarnation (a configured leader before first contact).
pub(crate) fn routable_admin(socket: SocketAddrV4, incarnation: SystemId) -> ActorAddress {
    ActorAddress::new(incarnation, encode_id(socket, 0))
}

/// The admin socket named by a routable admin address ([`routable_admin`]).
pub(crate) fn admin_socket_of(address: &ActorAddress) -> Option<SocketAddrV4> {
    match decode_id(address.id()) {
        Some((socket, 0)) => Some(socket),
        _ => None,
    }
}

enum Route {
    Slot(u16),
    LocalAdmin,
    Remote(SocketAddr),
    /// An address of this host's socket from an earlier incarnation.
    Dead,
    /// An address no system issued: its host part cannot be a system's socket.
    NotIssued,
}

/// Whether a system's process could listen at `host`: never on port 0, nor on an unspecified,
/// broadcast or multicast address.
fn could_be_a_system(host: SocketAddrV4) -> bool {
    let ip = host.ip();
    host.port() != 0 && !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
}

/// Who drives a node's transport poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Driving {
    /// A poll thread of the node's own: the admin's process and programs, whose actors and
    /// callers run on other threads.
    Thread,
    /// The thread that starts the node, between its waits ([`Node::recv`], [`Node::flush`]):
    /// an actor process, whose one actor then needs no hand-off to another thread.
    Inline,
}

/// The node's side of its transport poll.
enum Driver {
    /// [`Driving::Thread`]: the poll thread, joined on stop.
    Thread(Mutex<Option<JoinHandle<()>>>),
    /// [`Driving::Inline`]: the poll, turned by `thread` while it waits; `None` once closed.
    Inline {
        thread: ThreadId,
        poll: Mutex<Option<Box<dyn TransportPoll>>>,
    },
}

/// One process's endpoint and the addresses it hosts.
pub(crate) struct Node {
    incarnation: SystemId,
    local: SocketAddrV4,
    admin_socket: SocketAddr,
    admin: RwLock<ActorAddress>,
    sender: Box<dyn TransportSend>,
    slots: RwLock<HashMap<u16, Sender<Envelope>>>,
    next_slot: AtomicU32,
    /// Sent and not yet settled: kept to turn a failure into a dead letter or poison.
    in_flight: Mutex<HashMap<MessageId, WireMessage>>,
    settled: Condvar,
    /// Flushes blocked on `settled`, changed and read under `in_flight`'s lock: a settle
    /// notifies only when one waits (a notify is a system call even with no waiter).
    flushing: AtomicUsize,
    /// Hosts found gone, with the incarnation that was there and when: the transport may
    /// refuse sends to such an address for a while, which must not hit a newer process that
    /// took the port (its addresses name another incarnation).
    gone_hosts: Mutex<HashMap<SocketAddr, (SystemId, Instant)>>,
    /// In the admin's process: where messages for the admin go.
    admin_inbox: Option<Sender<Envelope>>,
    admin_lost: AtomicBool,
    /// The admin said the system shut down (`ShutdownComplete`), noted on the poll thread in
    /// the order the admin's messages arrived, so a loss found afterwards reads as a shutdown.
    shut_down: Mutex<bool>,
    shut_down_seen: Condvar,
    stopping: AtomicBool,
    driver: Driver,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("incarnation", &self.incarnation)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node on `socket` with `slots` already open (so nothing that arrives first is
    /// lost), its poll driven as `driving` says until [`Node::stop`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        socket: BoundSocket,
        incarnation: SystemId,
        admin_socket: SocketAddr,
        admin: ActorAddress,
        admin_inbox: Option<Sender<Envelope>>,
        slots: Vec<(u16, Sender<Envelope>)>,
        secret: Secret,
        driving: Driving,
    ) -> Result<Arc<Node>> {
        let local = match socket.local_addr() {
            SocketAddr::V4(v4) => v4,
            other => {
                return Err(ThespianError::StartupFailure(format!(
                    "multi-process bases need an IPv4 address; got {other}"
                )))
            }
        };
        let TransportEndpoint { poll, sender } = socket
            .into_endpoint(incarnation, secret)
            .map_err(|e| ThespianError::StartupFailure(format!("transport endpoint: {e}")))?;
        let (driver, threaded) = match driving {
            Driving::Thread => (Driver::Thread(Mutex::new(None)), Some(poll)),
            Driving::Inline => (
                Driver::Inline {
                    thread: std::thread::current().id(),
                    poll: Mutex::new(Some(poll)),
                },
                None,
            ),
        };
        let node = Arc::new(Node {
            incarnation,
            local,
            admin_socket,
            admin: RwLock::new(admin),
            sender,
            slots: RwLock::new(slots.into_iter().collect()),
            next_slot: AtomicU32::new(1),
            in_flight: Mutex::new(HashMap::new()),
            settled: Condvar::new(),
            flushing: AtomicUsize::new(0),
            gone_hosts: Mutex::new(HashMap::new()),
            admin_inbox,
            admin_lost: AtomicBool::new(false),
            shut_down: Mutex::new(false),
            shut_down_seen: Condvar::new(),
            stopping: AtomicBool::new(false),
            driver,
        });
        if let (Some(poll), Driver::Thread(poller)) = (threaded, &node.driver) {
            let weak = Arc::downgrade(&node);
            let handle = std::thread::Builder::new()
                .name("thespian-node".into())
                .spawn(move || run_poller(weak, poll))
                .map_err(|e| ThespianError::StartupFailure(format!("node thread: {e}")))?;
            *poller.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
        Ok(node)
    }

    /// True on the thread that drives an inline node's poll.
    fn drives_here(&self) -> bool {
        match &self.driver {
            Driver::Inline { thread, .. } => *thread == std::thread::current().id(),
            Driver::Thread(_) => false,
        }
    }

    /// One turn of an inline node's poll, on its driving thread: waits at most `timeout` for
    /// the transport and handles what it reports. False when there is no poll to turn (a
    /// threaded node, another thread, or the poll is closed): the caller blocks instead.
    fn turn(&self, timeout: Option<Duration>) -> bool {
        if !self.drives_here() {
            return false;
        }
        let Driver::Inline { poll, .. } = &self.driver else {
            return false;
        };
        let mut guard = poll.lock().unwrap_or_else(|e| e.into_inner());
        let Some(transport) = guard.as_mut() else {
            return false;
        };
        match transport.poll(timeout) {
            Ok(events) => {
                drop(guard);
                for event in events {
                    handle_event(self, event);
                }
                true
            }
            Err(e) => {
                log::error!("transport poll failed: {e}");
                if let Some(mut transport) = guard.take() {
                    let _ = transport.close();
                }
                false
            }
        }
    }

    /// On an inline node's driving thread, turns the poll until `done` (`Some(true)`) or
    /// `deadline` passes (`Some(false)`); `None` when this thread cannot turn it, and the
    /// caller must block on what it waits for. The one wait of both modes: whatever the
    /// driving thread waits for arrives through the poll it turns here.
    fn pump_until(
        &self,
        deadline: Option<Instant>,
        mut done: impl FnMut() -> bool,
    ) -> Option<bool> {
        loop {
            if done() {
                return Some(true);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Some(false);
            }
            if !self.turn(left) {
                return None;
            }
        }
    }

    /// The next envelope on `rx`, waiting until `deadline` (`None`: without end). On an inline
    /// node's driving thread the wait turns the poll; elsewhere it blocks on the channel.
    pub(crate) fn recv(
        &self,
        rx: &Receiver<Envelope>,
        deadline: Option<Instant>,
    ) -> std::result::Result<Envelope, RecvTimeoutError> {
        let mut got = None;
        let mut gone = false;
        let pumped = self.pump_until(deadline, || match rx.try_recv() {
            Ok(envelope) => {
                got = Some(envelope);
                true
            }
            Err(TryRecvError::Disconnected) => {
                gone = true;
                true
            }
            Err(TryRecvError::Empty) => false,
        });
        match (pumped, got) {
            (_, Some(envelope)) => Ok(envelope),
            (Some(true), None) if gone => Err(RecvTimeoutError::Disconnected),
            (Some(_), None) => Err(RecvTimeoutError::Timeout),
            (None, None) => match deadline {
                Some(at) => rx.recv_deadline(at),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            },
        }
    }

    /// Queues `envelope` on a local mailbox; an inline node's poll is interrupted when another
    /// thread (signals, descriptor watches, the admin watch) queued it, so it is seen at once.
    fn push(&self, tx: &Sender<Envelope>, envelope: Envelope) -> std::result::Result<(), Envelope> {
        tx.send(envelope).map_err(|e| e.into_inner())?;
        if matches!(self.driver, Driver::Inline { .. }) && !self.drives_here() {
            self.sender.interrupt();
        }
        Ok(())
    }

    /// This process's incarnation.
    pub(crate) fn incarnation(&self) -> SystemId {
        self.incarnation
    }

    /// This process's socket address.
    pub(crate) fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The admin's address.
    pub(crate) fn admin(&self) -> ActorAddress {
        self.admin.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `sender` is this system's admin: its id and its incarnation (an admin of
    /// another system, or a peer naming the admin's id, is not; before the admin's incarnation
    /// is known, nobody is).
    fn is_own_admin(&self, sender: &ActorAddress) -> bool {
        sender.is_admin() && *sender == *self.admin.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the admin's address once its incarnation is known.
    pub(crate) fn set_admin(&self, admin: ActorAddress) {
        *self.admin.write().unwrap_or_else(|e| e.into_inner()) = admin;
    }

    /// The admin's socket.
    pub(crate) fn admin_socket(&self) -> SocketAddr {
        self.admin_socket
    }

    /// True once the admin was found gone.
    pub(crate) fn admin_lost(&self) -> bool {
        self.admin_lost.load(Ordering::Acquire)
    }

    /// This process's admin as other systems name it (meaningful in the admin's process).
    pub(crate) fn routable_self(&self) -> ActorAddress {
        routable_admin(self.local, self.incarnation)
    }

    /// The address of `slot` on this process.
    pub(crate) fn address_of(&self, slot: u16) -> ActorAddress {
        ActorAddress::new(self.incarnation, encode_id(self.local, slot))
    }

    /// Opens a fresh address on this process and the queue of what arrives for it.
    pub(crate) fn open(&self) -> (ActorAddress, Receiver<Envelope>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        loop {
            let slot = self.next_slot.fetch_add(1, Ordering::Relaxed) as u16;
            if slot != 0 && !slots.contains_key(&slot) {
                slots.insert(slot, tx);
                return (self.address_of(slot), rx);
            }
        }
    }

    /// Closes an address: later messages to it are dead letters.
    pub(crate) fn close(&self, address: &ActorAddress) {
        if let Some((_, slot)) = decode_id(address.id()) {
            self.slots
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&slot);
        }
    }

    fn route(&self, to: &ActorAddress) -> Route {
        match decode_id(to.id()) {
            None => {
                if self.admin_inbox.is_some() {
                    Route::LocalAdmin
                } else {
                    Route::Remote(self.admin_socket)
                }
            }
            Some((host, 0)) if host == self.local && self.admin_inbox.is_some() => {
                // This admin, as other systems name it; incarnation 0 asks for whoever is here.
                if to.system() == self.incarnation || to.system().raw() == 0 {
                    Route::LocalAdmin
                } else {
                    Route::Dead
                }
            }
            Some((host, slot)) if host == self.local => {
                if to.system() == self.incarnation {
                    Route::Slot(slot)
                } else {
                    Route::Dead
                }
            }
            Some((host, _)) if !could_be_a_system(host) => Route::NotIssued,
            Some((host, _)) => Route::Remote(SocketAddr::V4(host)),
        }
    }

    /// Sends `payload` from `from` to `to`. Errors only for what is known at once (too large,
    /// queue full, closed); later failures become dead letters or `PoisonMessage`s.
    pub(crate) fn send(
        &self,
        from: &ActorAddress,
        to: &ActorAddress,
        payload: Payload,
    ) -> Result<()> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(ThespianError::SystemShutDown);
        }
        self.forward(from, to, payload)
    }

    /// [`Node::send`] without the stopping check: what the node itself must still send while
    /// it stops (dead letters of late arrivals, poison).
    fn forward(&self, from: &ActorAddress, to: &ActorAddress, payload: Payload) -> Result<()> {
        match self.route(to) {
            Route::Slot(slot) => {
                self.deliver_local(slot, to, Envelope::new(from.clone(), payload));
                Ok(())
            }
            Route::LocalAdmin => {
                if let Some(inbox) = &self.admin_inbox {
                    let _ = inbox.send(Envelope::new(from.clone(), payload));
                }
                Ok(())
            }
            Route::Remote(peer) => {
                let _ = self.revive_if_newer(peer, to);
                let wire = WireMessage::from_payload(from.clone(), to.clone(), &payload)
                    .map_err(ThespianError::Message)?;
                self.transmit(peer, wire)
            }
            Route::Dead => {
                self.dead_letter(to, Envelope::new(from.clone(), payload));
                Ok(())
            }
            Route::NotIssued => Err(thespian_core::base::not_issued_error(to)),
        }
    }

    /// Hands `wire` to the transport and keeps it until it is settled. A peer's full queue
    /// is refused at once, except on an inline node's driving thread: nothing else turns its
    /// poll while the actor runs, so it turns the poll until acknowledgements make room (at
    /// most [`FULL_WAIT`]), as the poll thread would have meanwhile.
    fn transmit(&self, peer: SocketAddr, wire: WireMessage) -> Result<()> {
        let mut deadline = None;
        loop {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match self.sender.send(peer, wire.clone()) {
                Ok(id) => {
                    in_flight.insert(id, wire);
                    return Ok(());
                }
                Err(ThespianError::QueueFull { target }) => {
                    drop(in_flight);
                    let by = *deadline.get_or_insert_with(|| Instant::now() + FULL_WAIT);
                    let left = by.saturating_duration_since(Instant::now());
                    if left.is_zero() || !self.turn(Some(left.min(FULL_TURN))) {
                        return Err(ThespianError::QueueFull { target });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// False for an address that no system issued (SPEC §8.12): a send to it is an error, and
    /// an actor's send to it comes back as `PoisonMessage`.
    pub(crate) fn could_have_issued(&self, to: &ActorAddress) -> bool {
        !matches!(self.route(to), Route::NotIssued)
    }

    /// Records that the process of `address` (at `peer`) is gone.
    fn note_gone(&self, peer: SocketAddr, address: &ActorAddress) {
        if address.is_admin() {
            return;
        }
        let now = Instant::now();
        let mut gone = self.gone_hosts.lock().unwrap_or_else(|e| e.into_inner());
        if gone.len() >= GONE_HOSTS_KEPT {
            gone.retain(|_, (_, at)| now.saturating_duration_since(*at) < GONE_HOST_MEMORY);
        }
        gone.insert(peer, (address.system(), now));
    }

    /// Before a send to `to` at `peer`: when the host found gone there was another
    /// incarnation, a new process took the port, and the transport must send to it again.
    /// True when it was revived.
    fn revive_if_newer(&self, peer: SocketAddr, to: &ActorAddress) -> bool {
        if to.is_admin() {
            return false;
        }
        let mut gone = self.gone_hosts.lock().unwrap_or_else(|e| e.into_inner());
        match gone.get(&peer) {
            Some((incarnation, _)) if *incarnation != to.system() => {
                gone.remove(&peer);
                self.sender.revive(peer);
                true
            }
            _ => false,
        }
    }

    fn deliver_local(&self, slot: u16, to: &ActorAddress, envelope: Envelope) {
        let tx = self
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&slot)
            .cloned();
        match tx {
            Some(tx)
                if self.is_own_admin(envelope.sender())
                    && answer_depth_query(self, to, &tx, &envelope) => {}
            Some(tx) => {
                if let Err(envelope) = self.push(&tx, envelope) {
                    self.dead_letter(to, envelope);
                }
            }
            None => self.dead_letter(to, envelope),
        }
    }

    /// A message `target` will never get: to the admin, which returns it as `Child Aborted`
    /// poison or gives it to the dead-letter handler. Admin-protocol messages are dropped.
    pub(crate) fn dead_letter(&self, target: &ActorAddress, envelope: Envelope) {
        if envelope.type_name().starts_with(WIRE_PREFIX) {
            log::debug!(
                "{} to {target} dropped: the address is gone",
                envelope.type_name()
            );
            return;
        }
        let (sender, payload) = envelope.into_parts();
        let letter = DeadLetter {
            target: target.clone(),
            sender,
            payload,
        };
        let admin = self.admin();
        if let Err(e) = self.forward(target, &admin, Payload::new(letter)) {
            log::debug!("dead letter to {target} lost: {e}");
        }
    }

    fn incoming(&self, wire: WireMessage) {
        let (target, envelope) = wire.into_envelope();
        if self.is_own_admin(envelope.sender()) && envelope.payload().has_type::<ShutdownComplete>()
        {
            self.note_shut_down();
        }
        match self.route(&target) {
            Route::Slot(slot) => self.deliver_local(slot, &target, envelope),
            Route::LocalAdmin => {
                if let Some(inbox) = &self.admin_inbox {
                    let _ = inbox.send(envelope);
                }
            }
            Route::Remote(_) | Route::Dead | Route::NotIssued => {
                log::debug!("a message for {target} reached {}: not here", self.local);
                self.dead_letter(&target, envelope);
            }
        }
    }

    fn settle(&self, ids: &[MessageId]) -> Vec<WireMessage> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let settled = ids.iter().filter_map(|id| in_flight.remove(id)).collect();
        if in_flight.is_empty() && self.flushing.load(Ordering::Relaxed) > 0 {
            self.settled.notify_all();
        }
        settled
    }

    fn failed(
        &self,
        wire: WireMessage,
        dead_target: bool,
        remembered_dead: bool,
        kind: FailureKind,
        reason: &str,
    ) {
        let (target, envelope) = wire.into_envelope();
        if target.is_admin() {
            if dead_target {
                self.lose_admin(format!(
                    "the admin at {} is gone ({reason})",
                    self.admin_socket
                ));
            } else {
                log::warn!(
                    "a {} to the admin failed: {reason}",
                    peer_text(&envelope.type_name(), SHOWN_TYPE_NAME)
                );
                self.tell_requester(envelope.sender(), kind, reason);
            }
            return;
        }
        if dead_target {
            if let Some((host, _)) = decode_id(target.id()) {
                let peer = SocketAddr::V4(host);
                if !remembered_dead {
                    self.note_gone(peer, &target);
                } else if self.revive_if_newer(peer, &target) {
                    // Sent before the node knew that another process had died at that port:
                    // the target is a newer one, so it goes out once more.
                    let (sender, payload) = envelope.into_parts();
                    if let Err(e) = self.forward(&sender, &target, payload) {
                        log::debug!("a message to {target} lost: {e}");
                    }
                    return;
                }
            }
            self.dead_letter(&target, envelope);
            return;
        }
        log::warn!(
            "{} to {target} failed: {reason}",
            peer_text(&envelope.type_name(), SHOWN_TYPE_NAME)
        );
        let (sender, payload) = envelope.into_parts();
        if payload.type_name().starts_with(WIRE_PREFIX) || payload.has_type::<PoisonMessage>() {
            return;
        }
        let poison = Payload::new(PoisonMessage::new(payload, reason.to_owned()));
        if let Err(e) = self.forward(&target, &sender, poison) {
            log::debug!("poison for {sender} lost: {e}");
            return;
        }
        self.poison_returned(&target);
    }

    /// Tells the admin that a `PoisonMessage` was returned from `from`, for the system's
    /// poison count (a rare path: one small message each).
    pub(crate) fn poison_returned(&self, from: &ActorAddress) {
        let admin = self.admin();
        if let Err(e) = self.forward(from, &admin, Payload::new(PoisonReturned)) {
            log::debug!("poison count of {from} not told: {e}");
        }
    }

    /// The system was shut down (by anyone): every wait here ends.
    pub(crate) fn system_gone(&self, reason: &str) {
        if !self.admin_lost.swap(true, Ordering::AcqRel) {
            self.notify_all(reason.to_owned());
        }
    }

    /// Notes that the admin announced the system's shutdown.
    fn note_shut_down(&self) {
        *self.shut_down.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shut_down_seen.notify_all();
    }

    /// True once the admin announced the system's shutdown to this process.
    pub(crate) fn was_shut_down(&self) -> bool {
        *self.shut_down.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits at most `grace` for the admin's shutdown announcement; true when it came. For a
    /// watcher that saw the admin's process end: what the admin sent before it exited may
    /// still be on its way through this node's poll thread.
    pub(crate) fn wait_shut_down(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let mut seen = self.shut_down.lock().unwrap_or_else(|e| e.into_inner());
        while !*seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            seen = self
                .shut_down_seen
                .wait_timeout(seen, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *seen
    }

    /// The admin is gone (its process ended, or the transport found it dead): every wait here
    /// ends with `reason`, and later sends to it fail.
    pub(crate) fn lose_admin(&self, reason: String) {
        if self.admin_lost.swap(true, Ordering::AcqRel) {
            return;
        }
        log::warn!("{reason}");
        self.notify_all(reason);
    }

    fn notify_all(&self, reason: String) {
        let slots: Vec<(u16, Sender<Envelope>)> = self
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(s, tx)| (*s, tx.clone()))
            .collect();
        let admin = self.admin();
        for (_, tx) in slots {
            let notice = AdminLost {
                reason: reason.clone(),
            };
            let _ = self.push(&tx, Envelope::new(admin.clone(), Payload::new(notice)));
        }
    }

    /// Tells `requester`, an address of this process, that its message to the admin failed.
    fn tell_requester(&self, requester: &ActorAddress, kind: FailureKind, reason: &str) {
        if let Some((host, slot)) = decode_id(requester.id()) {
            if host == self.local && requester.system() == self.incarnation {
                let notice = AdminUnreachable {
                    kind,
                    reason: reason.to_owned(),
                };
                let envelope = Envelope::new(self.admin(), Payload::new(notice));
                self.deliver_local(slot, requester, envelope);
            }
        }
    }

    /// The process hosting `address` is gone: fail what is still unacknowledged there.
    pub(crate) fn host_gone(&self, address: &ActorAddress) {
        if let Some((host, _)) = decode_id(address.id()) {
            self.note_gone(SocketAddr::V4(host), address);
            self.sender.peer_gone(SocketAddr::V4(host));
        }
    }

    /// Waits until every message sent so far is settled (or `timeout` passes).
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if let Some(settled) = self.pump_until(Some(deadline), || self.all_settled()) {
            return settled;
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        self.flushing.fetch_add(1, Ordering::Relaxed);
        let mut settled = true;
        while !in_flight.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                settled = false;
                break;
            }
            in_flight = self
                .settled
                .wait_timeout(in_flight, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        self.flushing.fetch_sub(1, Ordering::Relaxed);
        settled
    }

    /// True when nothing sent is waiting for its outcome.
    fn all_settled(&self) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Stops driving the poll and closes the endpoint (its port is free afterwards). Until
    /// everything sent is settled (at most [`STOP_LINGER`]) the node still takes what arrives
    /// and dead-letters it, so nothing acknowledged to a sender is lost.
    pub(crate) fn stop(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        self.sender.interrupt();
        match &self.driver {
            Driver::Thread(poller) => {
                let handle = poller.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(handle) = handle {
                    if handle.thread().id() != std::thread::current().id() {
                        let _ = handle.join();
                    }
                }
            }
            Driver::Inline { poll, .. } => {
                let transport = poll.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(mut transport) = transport {
                    linger(self, &mut *transport);
                    let _ = transport.close();
                }
            }
        }
    }
}

/// Answers the admin's question for the mailbox depth of the actor at `to` (its channel
/// `mailbox`) on arrival, instead of queueing it behind the messages it counts. Whoever sent
/// it, the answer goes to this node's admin. False when `envelope` is no such question.
fn answer_depth_query(
    node: &Node,
    to: &ActorAddress,
    mailbox: &Sender<Envelope>,
    envelope: &Envelope,
) -> bool {
    let Some(query) = envelope.payload().try_get::<MailboxDepthQuery>() else {
        return false;
    };
    let answer = MailboxDepth {
        round: query.round,
        depth: mailbox.len() as u64,
    };
    let admin = node.admin();
    if let Err(e) = node.forward(to, &admin, Payload::new(answer)) {
        log::debug!("mailbox depth of {to} not told: {e}");
    }
    true
}

/// How long a gone host is remembered: at least as long as the transport refuses sends to a
/// dead address (UDP: 15 s).
const GONE_HOST_MEMORY: Duration = Duration::from_secs(60);
/// Gone hosts kept before the older ones are forgotten.
const GONE_HOSTS_KEPT: usize = 4096;

/// How long an inline node's actor waits for room in a peer's full queue.
const FULL_WAIT: Duration = Duration::from_secs(1);
/// The longest poll turn of that wait: the transport's own timers end it sooner.
const FULL_TURN: Duration = Duration::from_millis(10);

/// How long a stopping node goes on settling what it sent and dead-lettering late arrivals.
/// The most characters of a message's type name a log line shows (a relayed message's name
/// is whatever its sender chose).
const SHOWN_TYPE_NAME: usize = 200;

const STOP_LINGER: Duration = Duration::from_secs(2);

/// A [`Driving::Thread`] node's poll thread.
fn run_poller(node: std::sync::Weak<Node>, mut poll: Box<dyn TransportPoll>) {
    loop {
        let events = match poll.poll(None) {
            Ok(events) => events,
            Err(e) => {
                log::error!("transport poll failed: {e}");
                break;
            }
        };
        let Some(node) = node.upgrade() else { break };
        for event in events {
            handle_event(&node, event);
        }
        if node.stopping.load(Ordering::Acquire) {
            linger(&node, &mut *poll);
            break;
        }
    }
    let _ = poll.close();
}

/// A stopping node's last turns: until everything it sent is settled, at most [`STOP_LINGER`].
fn linger(node: &Node, poll: &mut dyn TransportPoll) {
    let by = Instant::now() + STOP_LINGER;
    while !node.all_settled() && Instant::now() < by {
        match poll.poll(Some(Duration::from_millis(20))) {
            Ok(events) => {
                for event in events {
                    handle_event(node, event);
                }
            }
            Err(e) => {
                log::error!("transport poll failed: {e}");
                return;
            }
        }
    }
}

fn handle_event(node: &Node, event: TransportEvent) {
    match event {
        TransportEvent::Delivered(wire) => node.incoming(wire),
        TransportEvent::Acked(ids) => {
            node.settle(&ids);
        }
        TransportEvent::Failed {
            ids,
            dead_target,
            remembered_dead,
            kind,
            reason,
        } => {
            for wire in node.settle(&ids) {
                node.failed(wire, dead_target, remembered_dead, kind, &reason);
            }
        }
    }
}

/// The IPv4 address to advertise, when the program did not choose one: the one routing
/// toward `toward` (the convention leader, when one is set; else the public internet), or
/// loopback when offline.
pub(crate) fn routable_ipv4(toward: Option<Ipv4Addr>) -> Ipv4Addr {
    let target = toward.unwrap_or(Ipv4Addr::new(8, 8, 8, 8));
    if target.is_loopback() {
        return Ipv4Addr::LOCALHOST;
    }
    let probe = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|s| {
        // No packet is sent: connecting a UDP socket only picks the route.
        s.connect((target, 80))?;
        s.local_addr()
    });
    match probe {
        Ok(SocketAddr::V4(v4)) if !v4.ip().is_unspecified() => *v4.ip(),
        _ => Ipv4Addr::LOCALHOST,
    }
}

/// Parses `THESPIAN_BASE_IPADDR`, when set.
pub(crate) fn env_base_ip() -> Result<Option<Ipv4Addr>> {
    match std::env::var("THESPIAN_BASE_IPADDR") {
        Ok(text) if !text.trim().is_empty() => match text.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => Ok(Some(v4)),
            _ => Err(ThespianError::StartupFailure(format!(
                "THESPIAN_BASE_IPADDR={text:?} is not an IPv4 address"
            ))),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::TransportFactory;
    use proptest::prelude::*;
    use std::os::fd::{BorrowedFd, OwnedFd};

    /// The UDP transport with the timing the `thespian` facade gives it (a silent peer is
    /// given up after about 3 s), for nodes on loopback.
    struct Udp;

    impl TransportFactory for Udp {
        fn name(&self) -> &'static str {
            "udp"
        }
        fn base_name(&self) -> &'static str {
            "multiprocUDPBase"
        }
        fn default_admin_port(&self) -> u16 {
            1029
        }
        fn bind(&self, address: SocketAddr) -> std::io::Result<OwnedFd> {
            Ok(std::net::UdpSocket::bind(address)?.into())
        }
        fn max_payload(&self) -> usize {
            60_000
        }

        fn local_addr(&self, socket: BorrowedFd<'_>) -> std::io::Result<SocketAddr> {
            std::net::UdpSocket::from(socket.try_clone_to_owned()?).local_addr()
        }
        fn endpoint(
            &self,
            socket: OwnedFd,
            incarnation: SystemId,
            secret: Secret,
        ) -> std::io::Result<TransportEndpoint> {
            use thespian_transport_udp as udp;
            let mut config = udp::EndpointConfig::new(incarnation, secret);
            config.transport = udp::Config {
                initial_rto: Duration::from_millis(20),
                max_rto: Duration::from_millis(250),
                max_retransmits: 16,
                ..udp::Config::default()
            };
            let (endpoint, _) = udp::UdpEndpoint::from_socket(socket.into(), config)?;
            let sender = endpoint.sender();
            Ok(TransportEndpoint {
                poll: Box::new(endpoint),
                sender: Box::new(sender),
            })
        }
    }

    proptest! {
        #[test]
        fn an_address_says_where_it_lives(ip in any::<u32>(), port in 1u16.., slot in 1u16..) {
            let host = SocketAddrV4::new(Ipv4Addr::from(ip), port);
            let id = encode_id(host, slot);
            prop_assert_ne!(id, ActorAddress::ADMIN_ID);
            prop_assert_eq!(decode_id(id), Some((host, slot)));
        }
    }

    /// A UDP node on loopback `port` (0: any) whose admin is at `admin_socket`; when that is
    /// this node's own socket, the admin's messages land in `inbox`.
    fn udp_node(
        port: u16,
        incarnation: u64,
        admin_socket: SocketAddr,
        inbox: &Sender<Envelope>,
    ) -> (Arc<Node>, Receiver<Envelope>) {
        udp_node_driven(port, incarnation, admin_socket, inbox, Driving::Thread)
    }

    /// [`udp_node`], its poll driven as `driving` says.
    fn udp_node_driven(
        port: u16,
        incarnation: u64,
        admin_socket: SocketAddr,
        inbox: &Sender<Envelope>,
        driving: Driving,
    ) -> (Arc<Node>, Receiver<Envelope>) {
        let udp: Arc<dyn TransportFactory> = Arc::new(Udp);
        let socket = BoundSocket::bind(&udp, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .expect("bind on loopback");
        start_on(socket, incarnation, admin_socket, inbox, driving)
    }

    /// A node of incarnation 1 hosting the admin (its messages land in `inbox`) on a loopback
    /// port the OS chose, and that port's address, which the other nodes name as the admin's.
    fn admin_node(inbox: &Sender<Envelope>) -> (Arc<Node>, Receiver<Envelope>, SocketAddr) {
        let udp: Arc<dyn TransportFactory> = Arc::new(Udp);
        let socket = BoundSocket::bind(&udp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind on loopback");
        let at = socket.local_addr();
        let (node, mailbox) = start_on(socket, 1, at, inbox, Driving::Thread);
        (node, mailbox, at)
    }

    fn start_on(
        socket: BoundSocket,
        incarnation: u64,
        admin_socket: SocketAddr,
        inbox: &Sender<Envelope>,
        driving: Driving,
    ) -> (Arc<Node>, Receiver<Envelope>) {
        let hosts_admin = socket.local_addr() == admin_socket;
        let (tx, rx) = crossbeam_channel::unbounded();
        let node = Node::start(
            socket,
            SystemId::from_raw(incarnation),
            admin_socket,
            ActorAddress::admin(SystemId::from_raw(1)),
            hosts_admin.then(|| inbox.clone()),
            vec![(1, tx)],
            thespian_auth::Secret::from_text(b"node tests' shared secret").expect("long enough"),
            driving,
        )
        .expect("node starts");
        (node, rx)
    }

    #[test]
    fn only_the_own_admin_can_say_the_system_shut_down() {
        let wait = Duration::from_secs(10);
        let (inbox_tx, _inbox) = crossbeam_channel::unbounded();
        let (a, _, a_socket) = admin_node(&inbox_tx);
        let (b, b_mailbox) = udp_node(0, 2, a_socket, &inbox_tx);
        let actor = b.address_of(1);
        // Another incarnation's admin id: delivered as a message, but not believed.
        let stranger = ActorAddress::admin(SystemId::from_raw(99));
        a.send(&stranger, &actor, Payload::new(ShutdownComplete))
            .expect("accepted");
        b_mailbox
            .recv_timeout(wait)
            .expect("the forged notice arrives");
        assert!(!b.was_shut_down());
        a.send(&a.admin(), &actor, Payload::new(ShutdownComplete))
            .expect("accepted");
        b_mailbox
            .recv_timeout(wait)
            .expect("the admin's notice arrives");
        assert!(b.was_shut_down());
        a.stop();
        b.stop();
    }

    #[test]
    fn the_admins_depth_question_is_answered_on_arrival_without_touching_the_mailbox() {
        let wait = Duration::from_secs(10);
        let (inbox_tx, inbox) = crossbeam_channel::unbounded();
        let (a, _, a_socket) = admin_node(&inbox_tx);
        let (b, b_mailbox) = udp_node(0, 2, a_socket, &inbox_tx);
        let actor = b.address_of(1);
        for text in ["one", "two"] {
            b.send(&actor, &actor, Payload::new(text.to_owned()))
                .expect("accepted");
        }
        let admin = a.admin();
        a.send(&admin, &actor, Payload::new(MailboxDepthQuery { round: 7 }))
            .expect("accepted");
        let answer = inbox.recv_timeout(wait).expect("the depth");
        assert_eq!(answer.sender(), &actor);
        let depth = answer.get::<MailboxDepth>().expect("a MailboxDepth");
        assert_eq!((depth.round, depth.depth), (7, 2));
        assert_eq!(b_mailbox.len(), 2, "the question is not queued");
        // From anyone but the admin, it is an ordinary message for the actor.
        let stranger = a.address_of(1);
        a.send(
            &stranger,
            &actor,
            Payload::new(MailboxDepthQuery { round: 8 }),
        )
        .expect("accepted");
        let received: Vec<Envelope> = (0..3)
            .map(|_| b_mailbox.recv_timeout(wait).expect("a message"))
            .collect();
        assert!(received.iter().any(|e| e
            .payload()
            .try_get::<MailboxDepthQuery>()
            .map(|q| q.round)
            == Some(8)));
        a.stop();
        b.stop();
    }

    #[test]
    fn a_new_process_on_the_port_of_a_gone_one_is_reached() {
        let wait = Duration::from_secs(10);
        // Node `a` hosts the admin: dead letters land in its inbox.
        let (inbox_tx, inbox) = crossbeam_channel::unbounded();
        let (a, a_mailbox, a_socket) = admin_node(&inbox_tx);
        let (b, _) = udp_node(0, 2, a_socket, &inbox_tx);
        let b_port = b.local().port();
        let old = b.address_of(1);
        // `a` hears from `b` first, so its transport knows b's incarnation.
        b.send(&old, &a.address_of(1), Payload::new("hello".to_owned()))
            .expect("accepted");
        a_mailbox.recv_timeout(wait).expect("b's hello");
        b.stop();
        drop(b);
        let from = a.address_of(1);
        a.send(&from, &old, Payload::new("to the gone".to_owned()))
            .expect("accepted");
        let letter = inbox.recv_timeout(wait).expect("a dead letter");
        let letter = letter.get::<DeadLetter>().expect("a DeadLetter");
        assert_eq!(letter.target, old);
        // A new process takes the port: its address names another incarnation.
        let (c, c_mailbox) = udp_node(b_port, 3, a_socket, &inbox_tx);
        let new = c.address_of(1);
        assert_eq!(new.id(), old.id());
        a.send(&from, &new, Payload::new("to the new".to_owned()))
            .expect("accepted");
        let got = c_mailbox
            .recv_timeout(wait)
            .expect("delivered to the new process");
        assert_eq!(got.get::<String>().expect("a String"), "to the new");
        c.stop();
        a.stop();
    }

    #[test]
    fn an_inline_node_is_driven_by_the_thread_that_waits() {
        let wait = Duration::from_secs(10);
        let (inbox_tx, _inbox) = crossbeam_channel::unbounded();
        let (a, a_mailbox, a_socket) = admin_node(&inbox_tx);
        let (b, b_mailbox) = udp_node_driven(0, 2, a_socket, &inbox_tx, Driving::Inline);
        let (a_actor, b_actor) = (a.address_of(1), b.address_of(1));
        // Sent from the driving thread: it goes out when that thread next waits.
        b.send(&b_actor, &a_actor, Payload::new("ping".to_owned()))
            .expect("accepted");
        assert!(b.flush(wait), "settled while the driving thread waits");
        let ping = a_mailbox.recv_timeout(wait).expect("b's ping");
        assert_eq!(ping.get::<String>().expect("a String"), "ping");
        // Arrives through the poll that the waiting thread turns.
        a.send(&a_actor, &b_actor, Payload::new("pong".to_owned()))
            .expect("accepted");
        let pong = b
            .recv(&b_mailbox, Some(Instant::now() + wait))
            .expect("a's pong");
        assert_eq!(pong.get::<String>().expect("a String"), "pong");
        // Queued by another thread: it interrupts the poll, which has nothing else to report.
        let other = {
            let b = b.clone();
            let b_actor = b_actor.clone();
            std::thread::spawn(move || {
                b.send(&b_actor, &b_actor, Payload::new("signal".to_owned()))
                    .expect("accepted");
            })
        };
        let got = b
            .recv(&b_mailbox, Some(Instant::now() + wait))
            .expect("the other thread's message");
        assert_eq!(got.get::<String>().expect("a String"), "signal");
        other.join().expect("the sending thread");
        // Only the driving thread turns the poll; another one waits on the channel.
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || {
                b.recv(&b_mailbox, Some(Instant::now() + Duration::from_millis(10)))
                    .is_err()
            })
        };
        assert!(waiter.join().expect("the waiting thread"), "nothing came");
        b.stop();
        a.stop();
    }

    #[test]
    fn an_inline_sender_past_its_peers_window_turns_the_poll_for_room() {
        let wait = Duration::from_secs(10);
        let (inbox_tx, _inbox) = crossbeam_channel::unbounded();
        let (a, a_mailbox, a_socket) = admin_node(&inbox_tx);
        let (b, _) = udp_node_driven(0, 2, a_socket, &inbox_tx, Driving::Inline);
        let (a_actor, b_actor) = (a.address_of(1), b.address_of(1));
        // More than the UDP transport's window (128 unacknowledged) in one go, as one handler
        // of the actor would: nothing else turns the poll meanwhile.
        let count = 400u32;
        for n in 0..count {
            b.send(&b_actor, &a_actor, Payload::new(n))
                .expect("room was made");
        }
        assert!(b.flush(wait), "all acknowledged");
        let got: Vec<u32> = (0..count)
            .map(|_| {
                let envelope = a_mailbox.recv_timeout(wait).expect("a message");
                *envelope.get::<u32>().expect("a u32")
            })
            .collect();
        assert_eq!(got, (0..count).collect::<Vec<_>>(), "all, in order");
        b.stop();
        a.stop();
    }

    #[test]
    fn the_admin_id_lives_nowhere_in_particular() {
        assert_eq!(decode_id(ActorAddress::ADMIN_ID), None);
    }
}
