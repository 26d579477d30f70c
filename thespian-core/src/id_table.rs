//! A map from dense integer ids to values, without hashing every id or rehashing a big table.
//!
//! Actor ids are handed out in sequence by [`AddressAllocator`](crate::address::AddressAllocator),
//! so live actors cluster in runs of consecutive ids. This table stores values inline in pages of
//! [`PAGE`] consecutive ids, found through a small hash map of page numbers (one entry per
//! [`PAGE`] ids): an insert or lookup hashes one page number, a page is allocated once per
//! [`PAGE`] creates and freed when its last value leaves, and growing never moves the values.
//! Compared with a hash map of a million entries this saves the per-entry hash, the per-value
//! allocation (when values were boxed to keep buckets small) and the rehashes of a table of
//! millions of buckets. Worst case (one live value per page, the rest of its ids exited or used
//! for something else) a value costs [`PAGE`] slots.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;

use crate::registry::AddressHasher;

/// Ids per page (a power of two).
pub const PAGE: usize = 64;
const PAGE_BITS: u32 = PAGE.trailing_zeros();

struct Page<V> {
    live: usize,
    slots: [Option<V>; PAGE],
}

/// Dense ids to values, in pages of [`PAGE`] consecutive ids.
pub struct IdTable<V> {
    pages: HashMap<u64, Box<Page<V>>, BuildHasherDefault<AddressHasher>>,
    len: usize,
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        IdTable {
            pages: HashMap::default(),
            len: 0,
        }
    }
}

impl<V> fmt::Debug for IdTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTable")
            .field("len", &self.len)
            .field("pages", &self.pages.len())
            .finish()
    }
}

fn split(id: u64) -> (u64, usize) {
    (id >> PAGE_BITS, (id as usize) & (PAGE - 1))
}

impl<V> IdTable<V> {
    /// An empty table.
    pub fn new() -> IdTable<V> {
        IdTable::default()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds (or replaces) the value of `id`; returns the value replaced.
    pub fn insert(&mut self, id: u64, value: V) -> Option<V> {
        let (page, slot) = split(id);
        let page = self.pages.entry(page).or_insert_with(|| {
            Box::new(Page {
                live: 0,
                slots: [const { None }; PAGE],
            })
        });
        let old = page.slots[slot].replace(value);
        if old.is_none() {
            page.live += 1;
            self.len += 1;
        }
        old
    }

    /// Removes the value of `id`; frees its page when it was the page's last.
    pub fn remove(&mut self, id: u64) -> Option<V> {
        let (page_no, slot) = split(id);
        let page = self.pages.get_mut(&page_no)?;
        let old = page.slots[slot].take()?;
        page.live -= 1;
        self.len -= 1;
        if page.live == 0 {
            self.pages.remove(&page_no);
        }
        Some(old)
    }

    /// The value of `id`.
    pub fn get(&self, id: u64) -> Option<&V> {
        let (page, slot) = split(id);
        self.pages.get(&page)?.slots[slot].as_ref()
    }

    /// True when `id` has a value.
    pub fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    /// Every (id, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        self.pages.iter().flat_map(|(page, p)| {
            p.slots
                .iter()
                .enumerate()
                .filter_map(move |(i, v)| v.as_ref().map(|v| ((page << PAGE_BITS) | i as u64, v)))
        })
    }

    /// Removes and returns every value.
    pub fn drain(&mut self) -> Vec<V> {
        self.len = 0;
        std::mem::take(&mut self.pages)
            .into_values()
            .flat_map(|p| p.slots.into_iter().flatten())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_frees_pages() {
        let mut t = IdTable::new();
        for id in 1..=1000u64 {
            assert!(t.insert(id, id * 2).is_none());
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.get(517), Some(&1034));
        assert_eq!(t.insert(517, 1), Some(1034));
        assert_eq!(t.len(), 1000);
        assert_eq!(t.remove(517), Some(1));
        assert_eq!(t.remove(517), None);
        assert!(!t.contains(517));
        assert_eq!(t.get(u64::MAX), None);
        let mut ids: Vec<u64> = t.iter().map(|(id, _)| id).collect();
        ids.sort();
        assert_eq!(ids.len(), 999);
        assert_eq!(ids[0], 1);
        for id in 1..=1000u64 {
            t.remove(id);
        }
        assert!(t.is_empty());
        assert!(t.pages.is_empty(), "empty pages are freed");
        t.insert(u64::MAX, 7);
        assert_eq!(t.iter().collect::<Vec<_>>(), [(u64::MAX, &7)]);
        assert_eq!(t.drain(), [7]);
        assert!(t.is_empty());
    }
}
