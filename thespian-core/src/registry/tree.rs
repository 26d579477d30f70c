//! The rules that look at a system's whole tree of live actors: who must exit after a
//! capability update, who the roots of a shutdown are, who the admin's children are.
//!
//! Each registry keeps its live actors in the table that suits it (the in-process
//! [`Registry`](super::Registry) in an id table, the multi-process admin by address, with the
//! host of each) and shows it to these functions as an [`ActorTree`].

use std::collections::HashSet;

use crate::actor::ActorSpec;
use crate::address::ActorAddress;
use crate::capabilities::{Capabilities, CapabilityValue, Requirements};

/// One live actor, as the tree rules see it.
#[derive(Debug)]
pub struct LiveActor<'a> {
    /// Its address.
    pub address: ActorAddress,
    /// Its parent (the admin for top-level actors).
    pub parent: &'a ActorAddress,
    /// Its type.
    pub spec: &'a ActorSpec,
    /// The requirements it was created with.
    pub requirements: &'a Requirements,
}

/// A registry's live actors.
pub trait ActorTree {
    /// Every live actor, in any order.
    fn live_actors(&self) -> impl Iterator<Item = LiveActor<'_>>;

    /// The parent of `address` if it is a live actor.
    fn parent_of(&self, address: &ActorAddress) -> Option<&ActorAddress>;

    /// Number of live actors.
    fn live_count(&self) -> usize;
}

/// Sets (`Some`) or removes (`None`) capability `name`. When the capabilities changed, returns
/// the live actors whose type no longer accepts them and whose ancestors all still do: they must
/// exit (their exits take their subtrees along). `None` when nothing changed.
pub fn update_capability(
    capabilities: &mut Capabilities,
    name: &str,
    value: Option<CapabilityValue>,
    tree: &impl ActorTree,
) -> Option<Vec<ActorAddress>> {
    if !capabilities.update(name, value) {
        return None;
    }
    Some(topmost_misfits(tree, capabilities))
}

/// The live actors whose type rejects `capabilities` and that have no such ancestor, sorted.
pub fn topmost_misfits(tree: &impl ActorTree, capabilities: &Capabilities) -> Vec<ActorAddress> {
    let misfits: HashSet<ActorAddress> = tree
        .live_actors()
        .filter(|actor| actor.spec.check(capabilities, actor.requirements).is_err())
        .map(|actor| actor.address)
        .collect();
    let mut topmost: Vec<ActorAddress> = misfits
        .iter()
        .filter(|address| !has_ancestor_in(tree, address, &misfits))
        .cloned()
        .collect();
    topmost.sort();
    topmost
}

/// True when an ancestor of `address` (through live actors) is in `set`. Bounded by the number
/// of live actors, so a cycle (which no registry makes) cannot loop.
fn has_ancestor_in(
    tree: &impl ActorTree,
    address: &ActorAddress,
    set: &HashSet<ActorAddress>,
) -> bool {
    let mut current = tree.parent_of(address);
    let mut hops = 0;
    while let Some(parent) = current {
        if set.contains(parent) {
            return true;
        }
        hops += 1;
        if hops > tree.live_count() {
            break;
        }
        current = tree.parent_of(parent);
    }
    false
}

/// The live actors whose parent is the admin or no longer alive (orphans), sorted: the roots a
/// system shutdown asks to exit.
pub fn roots(tree: &impl ActorTree) -> Vec<ActorAddress> {
    let mut roots: Vec<ActorAddress> = tree
        .live_actors()
        .filter(|actor| actor.parent.is_admin() || tree.parent_of(actor.parent).is_none())
        .map(|actor| actor.address)
        .collect();
    roots.sort();
    roots
}

/// The live actors whose parent is the admin, sorted: a status report's child actors.
pub fn top_level(tree: &impl ActorTree) -> Vec<ActorAddress> {
    let mut top: Vec<ActorAddress> = tree
        .live_actors()
        .filter(|actor| actor.parent.is_admin())
        .map(|actor| actor.address)
        .collect();
    top.sort();
    top
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Actor;
    use crate::address::SystemId;
    use crate::capabilities::RequireCapability;
    use crate::context::Context;
    use crate::message::Envelope;
    use crate::ActorResult;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Plain;
    impl Actor for Plain {
        fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
            Ok(())
        }
    }

    #[derive(Default)]
    struct NeedsBlue;
    impl Actor for NeedsBlue {
        fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
            Ok(())
        }
        fn required_capabilities() -> Vec<RequireCapability> {
            vec![RequireCapability::truthy("Blue")]
        }
    }

    /// A tree as a map from id to (parent id, spec); id 0 is the admin.
    struct Tree(
        BTreeMap<ActorAddress, (ActorAddress, ActorSpec)>,
        Requirements,
    );

    fn a(id: u64) -> ActorAddress {
        ActorAddress::new(SystemId::from_raw(1), id)
    }

    impl Tree {
        fn of(actors: &[(u64, u64, ActorSpec)]) -> Tree {
            let map = actors
                .iter()
                .map(|&(id, parent, spec)| (a(id), (a(parent), spec)))
                .collect();
            Tree(map, Requirements::new())
        }
    }

    impl ActorTree for Tree {
        fn live_actors(&self) -> impl Iterator<Item = LiveActor<'_>> {
            self.0.iter().map(|(address, (parent, spec))| LiveActor {
                address: address.clone(),
                parent,
                spec,
                requirements: &self.1,
            })
        }
        fn parent_of(&self, address: &ActorAddress) -> Option<&ActorAddress> {
            self.0.get(address).map(|(parent, _)| parent)
        }
        fn live_count(&self) -> usize {
            self.0.len()
        }
    }

    #[test]
    fn only_the_topmost_misfits_exit_and_only_when_the_capabilities_changed() {
        let (plain, blue) = (ActorSpec::of::<Plain>(), ActorSpec::of::<NeedsBlue>());
        // 1 (blue) > 2 (blue) > 3 (plain); 4 (plain) > 5 (blue) > 6 (blue); 7 (blue) with a
        // dead parent 99.
        let tree = Tree::of(&[
            (1, 0, blue),
            (2, 1, blue),
            (3, 2, plain),
            (4, 0, plain),
            (5, 4, blue),
            (6, 5, blue),
            (7, 99, blue),
        ]);
        let mut caps = Capabilities::new().with("Blue", true);
        assert_eq!(
            update_capability(&mut caps, "Blue", Some(true.into()), &tree),
            None
        );
        assert_eq!(
            update_capability(&mut caps, "Other", Some(1.into()), &tree),
            Some(vec![])
        );
        assert_eq!(
            update_capability(&mut caps, "Blue", None, &tree),
            Some(vec![a(1), a(5), a(7)])
        );
        assert_eq!(caps.get("Blue"), None);
        assert_eq!(update_capability(&mut caps, "Blue", None, &tree), None);
    }

    #[test]
    fn a_parent_cycle_cannot_loop() {
        let blue = ActorSpec::of::<NeedsBlue>();
        let tree = Tree::of(&[(1, 2, blue), (2, 1, blue), (3, 3, blue)]);
        // Every one of them has a misfit ancestor: none is topmost, and the walk ends.
        assert_eq!(topmost_misfits(&tree, &Capabilities::new()), vec![]);
    }

    #[test]
    fn roots_are_the_admins_children_and_orphans_and_top_level_is_the_admins_children() {
        let plain = ActorSpec::of::<Plain>();
        let tree = Tree::of(&[(3, 0, plain), (1, 0, plain), (2, 1, plain), (4, 99, plain)]);
        assert_eq!(roots(&tree), vec![a(1), a(3), a(4)]);
        assert_eq!(top_level(&tree), vec![a(1), a(3)]);
        assert_eq!(roots(&Tree::of(&[])), vec![]);
    }
}
