//! Actor addresses.
//!
//! An address names one actor (or one external endpoint, or a system's admin) for the actor's
//! whole life. Thespian's addresses mutated when a placeholder was realised, which made them
//! unhashable; ours are immutable values, allocated before the actor exists, so they can be
//! map keys and can travel inside messages to any process of a convention.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The identity of one running actor system (one incarnation: a restarted system gets a new one).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SystemId(u64);

impl SystemId {
    /// Wraps a raw identifier; drivers pick a random one at start-up.
    pub const fn from_raw(raw: u64) -> SystemId {
        SystemId(raw)
    }

    /// The raw identifier.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// An opaque, immutable actor address: `Clone + Eq + Hash + Display + Serialize`.
///
/// Users get them from `create_actor`, from envelopes and from messages. [`ActorAddress::new`]
/// builds one from parts, which is what bases do; built with a [`SystemId`] no running system
/// has, it names nobody, and sending to it is an `InvalidActorAddress` error (or a
/// `PoisonMessage` for an actor sender), which is how tests check that rule.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorAddress {
    system: SystemId,
    id: u64,
}

impl ActorAddress {
    /// The id reserved for a system's admin.
    pub const ADMIN_ID: u64 = 0;

    /// Builds an address from a system id and a number. Bases allocate addresses this way;
    /// anyone else gets an address that no system issued (unless the parts were taken from a
    /// real address).
    pub const fn new(system: SystemId, id: u64) -> ActorAddress {
        ActorAddress { system, id }
    }

    /// The admin address of a system.
    pub const fn admin(system: SystemId) -> ActorAddress {
        ActorAddress {
            system,
            id: Self::ADMIN_ID,
        }
    }

    /// The system this address belongs to.
    pub const fn system(&self) -> SystemId {
        self.system
    }

    /// The address's number within its system.
    pub const fn id(&self) -> u64 {
        self.id
    }

    /// True for a system's admin address.
    pub const fn is_admin(&self) -> bool {
        self.id == Self::ADMIN_ID
    }
}

impl fmt::Display for ActorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorAddr-({:x}|{})", self.system.0, self.id)
    }
}

impl fmt::Debug for ActorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Hands out fresh addresses of one system. Sans-IO: the driver owns it.
#[derive(Debug)]
pub struct AddressAllocator {
    system: SystemId,
    next: std::sync::atomic::AtomicU64,
}

impl AddressAllocator {
    /// An allocator for `system`; ids start after the admin's.
    pub fn new(system: SystemId) -> AddressAllocator {
        AddressAllocator {
            system,
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The system this allocator serves.
    pub fn system(&self) -> SystemId {
        self.system
    }

    /// A new, never used address.
    pub fn allocate(&self) -> ActorAddress {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ActorAddress::new(self.system, id)
    }
}
