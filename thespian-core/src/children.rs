//! An actor's live children, with removal in O(1) however many there are.
//!
//! The lifecycle machine removes a child on every `ChildActorExited`. A plain list made that
//! O(children) per notice, so a parent of a million children took minutes to exit. This list
//! keeps creation order while it is small (what users and tests see most). When a child leaves a
//! list of more than [`INDEX_ABOVE`], it builds an address → position index (once) and from then
//! on removes by swapping the last child into the gap; the index goes when the list is small
//! again. A parent whose children do not exit pays nothing for it.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::address::ActorAddress;
use crate::registry::AddressHasher;

/// Removing from more than this many children builds the index (and creation order is lost).
pub(crate) const INDEX_ABOVE: usize = 64;

type Index = HashMap<ActorAddress, usize, BuildHasherDefault<AddressHasher>>;

/// The live children of one actor.
#[derive(Debug, Default)]
pub(crate) struct Children {
    list: Vec<ActorAddress>,
    index: Option<Box<Index>>,
}

impl Children {
    /// The children, as a slice.
    pub(crate) fn as_slice(&self) -> &[ActorAddress] {
        &self.list
    }

    /// True when there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds a (new, never listed) child.
    pub(crate) fn push(&mut self, child: ActorAddress) {
        if let Some(index) = &mut self.index {
            index.insert(child.clone(), self.list.len());
        }
        self.list.push(child);
    }

    /// Removes `child` if listed.
    pub(crate) fn remove(&mut self, child: &ActorAddress) {
        if self.index.is_none() && self.list.len() > INDEX_ABOVE {
            let index: Index = self
                .list
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i))
                .collect();
            self.index = Some(Box::new(index));
        }
        match &mut self.index {
            Some(index) => {
                if let Some(i) = index.remove(child) {
                    self.list.swap_remove(i);
                    if let Some(moved) = self.list.get(i) {
                        index.insert(moved.clone(), i);
                    }
                }
                if self.list.len() <= INDEX_ABOVE / 2 {
                    self.index = None;
                }
            }
            None => {
                if let Some(i) = self.list.iter().position(|c| c == child) {
                    self.list.remove(i);
                }
            }
        }
    }

    /// Forgets every child.
    pub(crate) fn clear(&mut self) {
        self.list.clear();
        self.index = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::SystemId;

    fn a(id: u64) -> ActorAddress {
        ActorAddress::new(SystemId::from_raw(1), id)
    }

    #[test]
    fn small_lists_keep_order_large_ones_stay_consistent() {
        let mut c = Children::default();
        for i in 0..10 {
            c.push(a(i));
        }
        c.remove(&a(3));
        assert_eq!(c.as_slice()[..4], [a(0), a(1), a(2), a(4)]);
        for i in 10..1000 {
            c.push(a(i));
        }
        for i in (0..1000).filter(|i| i % 3 != 0) {
            c.remove(&a(i));
        }
        let mut left: Vec<u64> = c.as_slice().iter().map(ActorAddress::id).collect();
        left.sort_unstable();
        let expected: Vec<u64> = (0..1000).filter(|i| i % 3 == 0 && *i != 3).collect();
        assert_eq!(left, expected);
        for i in expected {
            c.remove(&a(i));
        }
        assert!(c.is_empty());
        c.remove(&a(5));
        assert!(c.is_empty());
    }
}
