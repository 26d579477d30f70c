//! Address → mailbox lookup without a global lock on the send path.
//!
//! This module exists because every send must find its target, from any thread, while creates
//! and exits change the set of actors. Actor ids are dense integers handed out by the registry's
//! allocator, so the directory is a fixed array of shards (`id % SHARDS`), each a paged id
//! table ([`IdTable`]) behind a reader-writer lock: senders to different actors rarely touch
//! the same shard, senders to the same actor share a read lock, and a create or exit write-locks
//! one shard only. An exited actor is removed (its closed mailbox refuses messages meanwhile),
//! and an id is never reused, so a lookup is never stale; the workers' caches of recent
//! targets (`runtime::Worker::targets`) rely on the same two facts. Locks only: no
//! lock-free state here.

use thespian_core::id_table::IdTable;

use crate::locks::RwLock;

/// Number of shards (a power of two).
const SHARDS: usize = 128;

/// One shard: ids (divided by [`SHARDS`], so each shard's keys are dense again) to values, in
/// pages of consecutive ids: no per-id hashing and no rehash of a big table on the create path.
type Shard<V> = RwLock<IdTable<V>>;

/// A map from actor id to `V`, sharded by id.
pub(crate) struct Directory<V> {
    shards: Box<[Shard<V>]>,
}

impl<V> Directory<V> {
    /// An empty directory.
    pub(crate) fn new() -> Directory<V> {
        Directory {
            shards: (0..SHARDS).map(|_| RwLock::new(IdTable::new())).collect(),
        }
    }

    fn shard(&self, id: u64) -> (&Shard<V>, u64) {
        (
            &self.shards[(id as usize) & (SHARDS - 1)],
            id / SHARDS as u64,
        )
    }

    /// Adds (or replaces) an entry.
    pub(crate) fn insert(&self, id: u64, value: V) {
        let (shard, key) = self.shard(id);
        shard.write().insert(key, value);
    }

    /// Removes an entry.
    pub(crate) fn remove(&self, id: u64) -> Option<V> {
        let (shard, key) = self.shard(id);
        shard.write().remove(key)
    }

    /// Runs `f` on the entry under the shard's read lock (no clone of the value needed).
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(Option<&V>) -> R) -> R {
        let (shard, key) = self.shard(id);
        let shard = shard.read();
        f(shard.get(key))
    }

    /// Removes and returns every entry.
    pub(crate) fn drain(&self) -> Vec<V> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(shard.write().drain());
        }
        out
    }

    /// The sum of `f` over every entry, one shard's read lock at a time (a status-time scan;
    /// never on the send path).
    pub(crate) fn sum(&self, f: impl Fn(&V) -> u64) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().iter().map(|(_, v)| f(v)).sum::<u64>())
            .sum()
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
