//! Address → mailbox lookup without a global lock on the send path.
//!
//! This module exists because every send must find its target, from any thread, while creates
//! and exits change the set of actors. Actor ids are dense integers handed out by the registry's
//! allocator, so the directory is a fixed array of shards (`id % SHARDS`), each a hash map
//! behind a reader-writer lock with an integer hasher: senders to different actors rarely touch
//! the same shard, senders to the same actor share a read lock, and a create or exit write-locks
//! one shard only. Nothing is cached: an exited actor is removed (its closed mailbox refuses
//! messages meanwhile), and an id is never reused, so a lookup is never stale. Locks only: no
//! lock-free state here.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use parking_lot::RwLock;

/// Number of shards (a power of two).
const SHARDS: usize = 128;

/// Hashes the dense `u64` ids: a multiply spreads them over the table (Fibonacci hashing).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        // The shard already used the low bits; hash the rest.
        self.0 = (id / SHARDS as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One shard: ids to values.
type Shard<V> = RwLock<HashMap<u64, V, BuildHasherDefault<IdHasher>>>;

/// A map from actor id to `V`, sharded by id.
pub(crate) struct Directory<V> {
    shards: Box<[Shard<V>]>,
}

impl<V> Directory<V> {
    /// An empty directory.
    pub(crate) fn new() -> Directory<V> {
        Directory {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::default()))
                .collect(),
        }
    }

    fn shard(&self, id: u64) -> &Shard<V> {
        &self.shards[(id as usize) & (SHARDS - 1)]
    }

    /// Adds (or replaces) an entry.
    pub(crate) fn insert(&self, id: u64, value: V) {
        self.shard(id).write().insert(id, value);
    }

    /// Removes an entry.
    pub(crate) fn remove(&self, id: u64) -> Option<V> {
        self.shard(id).write().remove(&id)
    }

    /// Runs `f` on the entry under the shard's read lock (no clone of the value needed).
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(Option<&V>) -> R) -> R {
        let shard = self.shard(id).read();
        f(shard.get(&id))
    }

    /// Removes and returns every entry.
    pub(crate) fn drain(&self) -> Vec<V> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut *shard.write());
            out.extend(taken.into_values());
        }
        out
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn insert_lookup_remove() {
        let d: Directory<u32> = Directory::new();
        for id in 0..1000u64 {
            d.insert(id, id as u32 * 2);
        }
        assert_eq!(d.len(), 1000);
        assert_eq!(d.with(517, |v| v.copied()), Some(1034));
        assert_eq!(d.remove(517), Some(1034));
        assert_eq!(d.with(517, |v| v.copied()), None);
        assert_eq!(d.drain().len(), 999);
        assert_eq!(d.len(), 0);
    }
}
