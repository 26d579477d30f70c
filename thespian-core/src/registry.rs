//! The sans-IO system registry: what an admin knows about its actors.
//!
//! One per actor system. It decides creates (global names first, then the capability check),
//! keeps the parent of every live actor, the global names, the dead-letter handler and the
//! system capabilities, and says which actors must exit after a capability update. Drivers own
//! it (behind a lock when several threads share it) and carry out its decisions.
//!
//! The rules themselves live in three small sans-IO pieces that the multi-process admin
//! (`thespian-admin`) uses too, so each is written once: [`GlobalNames`] (names, and the order
//! in which a create is decided), [`DeadLetters`] (the handler and dead-letter routing) and the
//! tree rules over an [`ActorTree`] ([`update_capability`], [`roots`], [`top_level`]). The
//! registry adds what is particular to one process: addresses from one allocator and the live
//! actors in an [`IdTable`].

mod dead_letters;
mod names;
mod tree;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

pub use dead_letters::{DeadLetterRoute, DeadLetters};
pub use names::{CreateRefusal, GlobalNames, NameHolder, NamePlan};
pub use tree::{roots, top_level, topmost_misfits, update_capability, ActorTree, LiveActor};

use crate::actor::{ActorSpec, CreateRequest};
use crate::address::{ActorAddress, AddressAllocator, SystemId};
use crate::capabilities::{keys, Capabilities, CapabilityValue, Requirements};
use crate::error::{Result, ThespianError};
use crate::id_table::IdTable;
use crate::message::Envelope;
use crate::system_messages::{ActorSummary, SystemStatus};

/// What the registry remembers about a live actor.
#[derive(Clone, Debug)]
pub struct ActorRecord {
    /// Its parent (the admin for top-level actors).
    pub parent: ActorAddress,
    /// Its type.
    pub spec: ActorSpec,
    /// The requirements it was created with (re-checked on capability updates).
    pub requirements: Requirements,
    /// Its global name, if any.
    pub global_name: Option<String>,
}

/// What the registry keeps per live actor: what capability re-checks and shutdown need, stored
/// inline in the id table (no allocation unless the actor has requirements). Global names are
/// kept apart, in a reverse map of the named actors only.
#[derive(Debug)]
struct Record {
    parent: ActorAddress,
    spec: ActorSpec,
    requirements: Option<Box<Requirements>>,
}

/// The registry's decision on a create request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreatePlan {
    /// The global name already names this live (or being created) actor.
    Existing(ActorAddress),
    /// Construct a new actor at this address, then call [`Registry::register`] or
    /// [`Registry::abort`].
    New(ActorAddress),
}

/// Hashes addresses (two integers handed out by this crate, never chosen by a peer) with a
/// multiply-rotate step instead of SipHash: the registry is looked up on every create and exit,
/// usually under a lock shared by all of a base's threads. Bases use it for their own maps
/// keyed by actor numbers (e.g. per-sender queue counts) for the same reason.
#[derive(Default)]
pub struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// The registry of one actor system.
#[derive(Debug)]
pub struct Registry {
    base_name: &'static str,
    addresses: AddressAllocator,
    capabilities: Capabilities,
    /// Live actors by id (all of this system): pages of consecutive ids, records inline.
    actors: IdTable<Record>,
    global_names: GlobalNames<ActorAddress>,
    /// The global name of each named live actor, by id.
    names_of: HashMap<u64, String, BuildHasherDefault<AddressHasher>>,
    dead_letters: DeadLetters,
    /// `PoisonMessage`s returned to senders (a relaxed counter on a rare path, never a scan).
    poisoned: AtomicU64,
    in_shutdown: bool,
}

/// The live actors of one registry, as the tree rules see them.
struct Live<'r> {
    system: SystemId,
    actors: &'r IdTable<Record>,
}

/// The requirements of an actor created without any (its record stores none).
static NO_REQUIREMENTS: Requirements = Requirements::new();

impl ActorTree for Live<'_> {
    fn live_actors(&self) -> impl Iterator<Item = LiveActor<'_>> {
        self.actors.iter().map(|(id, r)| LiveActor {
            address: ActorAddress::new(self.system, id),
            parent: &r.parent,
            spec: &r.spec,
            requirements: r.requirements.as_deref().unwrap_or(&NO_REQUIREMENTS),
        })
    }

    fn parent_of(&self, address: &ActorAddress) -> Option<&ActorAddress> {
        if address.system() != self.system {
            return None;
        }
        self.actors.get(address.id()).map(|r| &r.parent)
    }

    fn live_count(&self) -> usize {
        self.actors.len()
    }
}

impl Registry {
    /// A registry for system `system` of base `base_name`, with its capabilities (the caller
    /// has added the base's own keys).
    pub fn new(system: SystemId, base_name: &'static str, capabilities: Capabilities) -> Registry {
        Registry {
            base_name,
            addresses: AddressAllocator::new(system),
            capabilities,
            actors: IdTable::new(),
            global_names: GlobalNames::new(),
            names_of: HashMap::default(),
            dead_letters: DeadLetters::new(),
            poisoned: AtomicU64::new(0),
            in_shutdown: false,
        }
    }

    /// The base's Thespian name.
    pub fn base_name(&self) -> &'static str {
        self.base_name
    }

    /// The system's admin address.
    pub fn admin_address(&self) -> ActorAddress {
        ActorAddress::admin(self.addresses.system())
    }

    /// A fresh address (for actors and external endpoints).
    pub fn allocate(&self) -> ActorAddress {
        self.addresses.allocate()
    }

    /// The system's capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// True once shutdown has begun.
    pub fn in_shutdown(&self) -> bool {
        self.in_shutdown
    }

    /// Marks the system as shutting down: later creates fail.
    pub fn begin_shutdown(&mut self) {
        self.in_shutdown = true;
    }

    fn live(&self) -> Live<'_> {
        Live {
            system: self.addresses.system(),
            actors: &self.actors,
        }
    }

    /// The record of `address` if it is a live actor of this system.
    fn get(&self, address: &ActorAddress) -> Option<&Record> {
        if address.system() != self.addresses.system() {
            return None;
        }
        self.actors.get(address.id())
    }

    /// True when `address` is a live (registered) actor.
    pub fn is_alive(&self, address: &ActorAddress) -> bool {
        self.get(address).is_some()
    }

    /// The record of a live actor (a copy).
    pub fn record(&self, address: &ActorAddress) -> Option<ActorRecord> {
        let r = self.get(address)?;
        Some(ActorRecord {
            parent: r.parent.clone(),
            spec: r.spec,
            requirements: r.requirements.as_deref().cloned().unwrap_or_default(),
            global_name: self.names_of.get(&address.id()).cloned(),
        })
    }

    /// Number of live actors.
    pub fn live_count(&self) -> usize {
        self.actors.len()
    }

    /// Decides a create (the rules of [`GlobalNames::plan_create`]): an existing actor for a
    /// known global name (checked before the type), an error when the system is shutting down,
    /// the request names a source or the capabilities do not fit, else a new address (with the
    /// global name reserved for it).
    pub fn plan_create(&mut self, request: &CreateRequest) -> Result<CreatePlan> {
        let plan = self.global_names.plan_create(
            self.in_shutdown,
            request.global_name.as_deref(),
            (&self.capabilities, &request.requirements),
            || match &request.source_hash {
                Some(hash) => Err(ThespianError::InvalidSourceHash(hash.clone())),
                None => Ok(request.spec),
            },
            || self.addresses.allocate(),
        );
        match plan {
            Ok(NamePlan::Existing(address)) => Ok(CreatePlan::Existing(address)),
            Ok(NamePlan::New { holder, .. }) => Ok(CreatePlan::New(holder)),
            Err(CreateRefusal::ShuttingDown) => Err(ThespianError::SystemFailure(
                "the actor system is shutting down".into(),
            )),
            Err(CreateRefusal::Type(error)) => Err(error),
            Err(CreateRefusal::Unfit(unmet)) => Err(ThespianError::NoCompatibleSystem {
                actor_type: request.spec.type_name().to_owned(),
                unmet,
            }),
        }
    }

    /// Records a constructed actor (an address this registry planned).
    pub fn register(&mut self, address: ActorAddress, record: ActorRecord) {
        debug_assert_eq!(address.system(), self.addresses.system());
        let ActorRecord {
            parent,
            spec,
            requirements,
            global_name,
        } = record;
        if let Some(name) = global_name {
            self.names_of.insert(address.id(), name);
        }
        let requirements = (!requirements.is_empty()).then(|| Box::new(requirements));
        self.actors.insert(
            address.id(),
            Record {
                parent,
                spec,
                requirements,
            },
        );
    }

    /// Records that the actor planned at `address` could not be constructed: its name is freed
    /// and messages sent to it return to their senders as `Child Aborted` poison.
    pub fn abort(&mut self, address: &ActorAddress) {
        self.global_names.release_all_of(address);
        self.dead_letters.never_started(address.clone());
    }

    /// Forgets an exited actor: frees its name; a dead-letter handler that exits is unregistered.
    pub fn exited(&mut self, address: &ActorAddress) -> Option<ActorRecord> {
        if address.system() != self.addresses.system() {
            return None;
        }
        let record = self.actors.remove(address.id())?;
        let global_name = self.names_of.remove(&address.id());
        if let Some(name) = &global_name {
            self.global_names.release(name, address);
        }
        self.dead_letters.exited(address);
        Some(ActorRecord {
            parent: record.parent,
            spec: record.spec,
            requirements: record.requirements.map(|r| *r).unwrap_or_default(),
            global_name,
        })
    }

    /// Registers (`enable`) `actor` as the dead-letter handler (latest wins), or unregisters it
    /// if it is the current one.
    pub fn handle_dead_letters(&mut self, actor: &ActorAddress, enable: bool) {
        self.dead_letters.handle(actor, enable);
    }

    /// The current dead-letter handler.
    pub fn dead_letter_handler(&self) -> Option<&ActorAddress> {
        self.dead_letters.handler()
    }

    /// Decides where a message for the dead `target` goes. A `Child Aborted` poison is
    /// counted as returned.
    pub fn route_dead_letter(&self, target: &ActorAddress, envelope: Envelope) -> DeadLetterRoute {
        let (sender, payload) = envelope.into_parts();
        let route = self.dead_letters.route(target, sender, payload);
        if matches!(route, DeadLetterRoute::ChildAborted { .. }) {
            self.poison_returned();
        }
        route
    }

    /// Sets or removes a capability. When the capabilities changed, returns the live actors
    /// that no longer fit and whose ancestors still do (their exit takes their subtrees along).
    pub fn update_capability(
        &mut self,
        name: &str,
        value: Option<CapabilityValue>,
    ) -> Vec<ActorAddress> {
        let live = Live {
            system: self.addresses.system(),
            actors: &self.actors,
        };
        update_capability(&mut self.capabilities, name, value, &live).unwrap_or_default()
    }

    /// Live actors whose parent is the admin or no longer alive (orphans): the roots that a
    /// system shutdown asks to exit.
    pub fn roots(&self) -> Vec<ActorAddress> {
        roots(&self.live())
    }

    /// Counts one `PoisonMessage` returned to a sender, for [`status`](Self::status).
    pub fn poison_returned(&self) {
        self.poisoned.fetch_add(1, Ordering::Relaxed);
    }

    /// The system's status report. `pending_messages` is `None` here: the registry sees no
    /// mailbox, so the base fills it in.
    pub fn status(&self) -> SystemStatus {
        SystemStatus {
            admin_address: self.admin_address(),
            capabilities: self.capabilities.clone(),
            in_shutdown: self.in_shutdown,
            dead_letter_handler: self.dead_letters.handler().cloned(),
            global_actors: self.global_names.listing(),
            child_actors: top_level(&self.live()),
            live_actors: self.actors.len(),
            convention: None,
            base: self.base_name.to_owned(),
            actors: self
                .actors
                .iter()
                .map(|(id, record)| ActorSummary {
                    address: ActorAddress::new(self.addresses.system(), id),
                    actor_type: record.spec.type_name().to_owned(),
                    parent: record.parent.clone(),
                    global_name: self.names_of.get(&id).cloned(),
                    pid: None,
                })
                .collect(),
            processes: 1,
            dead_letters: self.dead_letters.count(),
            pending_messages: None,
            pending_unanswered: 0,
            poison_messages: self.poisoned.load(Ordering::Relaxed),
        }
    }
}

/// Adds the keys every base sets (reference §4.2) to user capabilities.
pub fn with_common_capabilities(
    mut capabilities: Capabilities,
    base_name: &'static str,
    base_version: i64,
) -> Capabilities {
    capabilities.set(keys::ACTOR_SYSTEM_NAME, base_name);
    capabilities.set(keys::ACTOR_SYSTEM_VERSION, base_version);
    capabilities.set(keys::THESPIAN_VERSION, env!("CARGO_PKG_VERSION"));
    let (major, minor) = crate::capabilities::THESPIAN_GENERATION;
    capabilities.set(
        keys::THESPIAN_GENERATION,
        CapabilityValue::List(vec![
            CapabilityValue::Int(major),
            CapabilityValue::Int(minor),
        ]),
    );
    capabilities
}
