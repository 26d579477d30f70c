//! Global names and the order in which a create is decided.
//!
//! Both registries of thespian-rs (the in-process [`Registry`](super::Registry) and the
//! multi-process admin) keep their global names here, and decide every create with
//! [`GlobalNames::plan_create`]: the system must not be shutting down, a known global name
//! answers with its actor before the type is even looked at, then the type is resolved, then
//! its capability check runs, and only then is the name reserved for the new actor.

use std::collections::HashMap;

use crate::actor::{ActorSpec, Unmet};
use crate::address::ActorAddress;
use crate::capabilities::{Capabilities, Requirements};

/// What holds a global name: an actor's address, or, in a registry that learns a new actor's
/// address only once it is placed (the multi-process admin), a create still in progress.
pub trait NameHolder: Clone + PartialEq {
    /// The actor the name names, once it has an address.
    fn address(&self) -> Option<&ActorAddress>;
}

impl NameHolder for ActorAddress {
    fn address(&self) -> Option<&ActorAddress> {
        Some(self)
    }
}

/// The global names of one system: each names one holder at a time.
#[derive(Debug)]
pub struct GlobalNames<H> {
    names: HashMap<String, H>,
}

impl<H> Default for GlobalNames<H> {
    fn default() -> Self {
        GlobalNames {
            names: HashMap::new(),
        }
    }
}

/// A create the rules accept (see [`GlobalNames::plan_create`]).
#[derive(Clone, Debug)]
pub enum NamePlan<H> {
    /// The global name is taken: the create answers with its holder (not as a child).
    Existing(H),
    /// A new actor of this type; its global name, if any, is now reserved for `holder`.
    New {
        /// The actor type.
        spec: ActorSpec,
        /// The new actor's holder (its address, or the create in progress).
        holder: H,
    },
}

/// Why a create is refused, in the order the rules check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateRefusal<E> {
    /// The system is shutting down.
    ShuttingDown,
    /// The type could not be found or is not allowed (the caller's reason).
    Type(E),
    /// The type's capability check failed on these conditions.
    Unfit(Unmet),
}

impl<H: NameHolder> GlobalNames<H> {
    /// No names.
    pub fn new() -> GlobalNames<H> {
        GlobalNames::default()
    }

    /// Who holds `name`.
    pub fn holder(&self, name: &str) -> Option<&H> {
        self.names.get(name)
    }

    /// True when no name is taken.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every taken name with its holder, in any order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &H)> {
        self.names
            .iter()
            .map(|(name, holder)| (name.as_str(), holder))
    }

    /// Decides a create: refused while `in_shutdown`; the holder of a known `global_name`
    /// (checked before the type); the type from `resolve` (a refusal is the caller's); its
    /// capability check against `capabilities` and `requirements`; and only then a new holder
    /// from `new_holder`, for which the global name is reserved.
    pub fn plan_create<E>(
        &mut self,
        in_shutdown: bool,
        global_name: Option<&str>,
        (capabilities, requirements): (&Capabilities, &Requirements),
        resolve: impl FnOnce() -> Result<ActorSpec, E>,
        new_holder: impl FnOnce() -> H,
    ) -> Result<NamePlan<H>, CreateRefusal<E>> {
        if in_shutdown {
            return Err(CreateRefusal::ShuttingDown);
        }
        if let Some(holder) = global_name.and_then(|name| self.names.get(name)) {
            return Ok(NamePlan::Existing(holder.clone()));
        }
        let spec = resolve().map_err(CreateRefusal::Type)?;
        spec.check(capabilities, requirements)
            .map_err(CreateRefusal::Unfit)?;
        let holder = new_holder();
        if let Some(name) = global_name {
            self.names.insert(name.to_owned(), holder.clone());
        }
        Ok(NamePlan::New { spec, holder })
    }

    /// Hands `name` from `from` to `to`, if `from` still holds it; true when it did.
    pub fn rebind(&mut self, name: &str, from: &H, to: H) -> bool {
        match self.names.get_mut(name) {
            Some(holder) if holder == from => {
                *holder = to;
                true
            }
            _ => false,
        }
    }

    /// Frees `name` if `holder` still holds it (a name that has passed to another holder stays
    /// with it); true when it did.
    pub fn release(&mut self, name: &str, holder: &H) -> bool {
        if self.names.get(name) == Some(holder) {
            self.names.remove(name);
            true
        } else {
            false
        }
    }

    /// Frees every name `holder` holds (when its name is not at hand, e.g. an aborted create).
    pub fn release_all_of(&mut self, holder: &H) {
        self.names.retain(|_, h| h != holder);
    }

    /// Frees every name.
    pub fn clear(&mut self) {
        self.names.clear();
    }

    /// The names that name an actor, with it, sorted: a status report's global actors.
    pub fn listing(&self) -> Vec<(String, ActorAddress)> {
        let mut listing: Vec<(String, ActorAddress)> = self
            .names
            .iter()
            .filter_map(|(name, holder)| Some((name.clone(), holder.address()?.clone())))
            .collect();
        listing.sort();
        listing
    }
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

    /// A holder that may not have an address yet.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Holder {
        Pending(u32),
        Actor(ActorAddress),
    }
    impl NameHolder for Holder {
        fn address(&self) -> Option<&ActorAddress> {
            match self {
                Holder::Pending(_) => None,
                Holder::Actor(a) => Some(a),
            }
        }
    }

    fn a(id: u64) -> ActorAddress {
        ActorAddress::new(SystemId::from_raw(1), id)
    }

    fn blue() -> Capabilities {
        Capabilities::new().with("Blue", true)
    }

    type Plan = Result<NamePlan<ActorAddress>, CreateRefusal<&'static str>>;

    fn plan(
        names: &mut GlobalNames<ActorAddress>,
        in_shutdown: bool,
        name: Option<&str>,
        caps: &Capabilities,
        resolve: Result<ActorSpec, &'static str>,
        new: u64,
    ) -> Plan {
        let reqs = Requirements::new();
        names.plan_create(in_shutdown, name, (caps, &reqs), || resolve, || a(new))
    }

    /// The holder of a new actor, or the existing one (`Err`), or the refusal.
    fn outcome(
        plan: Plan,
    ) -> Result<Result<ActorAddress, ActorAddress>, CreateRefusal<&'static str>> {
        plan.map(|p| match p {
            NamePlan::New { holder, .. } => Ok(holder),
            NamePlan::Existing(holder) => Err(holder),
        })
    }

    #[test]
    fn a_create_checks_shutdown_then_the_name_then_the_type_then_capabilities() {
        let mut names = GlobalNames::new();
        let spec = ActorSpec::of::<NeedsBlue>();
        let none = Capabilities::new();
        let new = plan(&mut names, false, Some("n"), &blue(), Ok(spec), 1);
        assert!(
            matches!(new, Ok(NamePlan::New { spec, holder }) if holder == a(1) && spec.type_name() == NeedsBlue::type_name())
        );
        // Shutdown comes first, even for a known name.
        let refused = plan(&mut names, true, Some("n"), &blue(), Ok(spec), 2);
        assert_eq!(outcome(refused), Err(CreateRefusal::ShuttingDown));
        // A known name answers before the type or the capabilities are looked at.
        let existing = plan(&mut names, false, Some("n"), &none, Err("no such type"), 3);
        assert_eq!(outcome(existing), Ok(Err(a(1))));
        // Then the type, then its capability check; a refused create reserves nothing.
        let untyped = plan(&mut names, false, Some("m"), &none, Err("no such type"), 4);
        assert_eq!(outcome(untyped), Err(CreateRefusal::Type("no such type")));
        let unfit = plan(&mut names, false, Some("m"), &none, Ok(spec), 5);
        assert!(matches!(outcome(unfit), Err(CreateRefusal::Unfit(unmet)) if unmet.len() == 1));
        assert_eq!(names.holder("m"), None);
        // Without a name nothing is reserved.
        let unnamed = plan(&mut names, false, None, &blue(), Ok(spec), 6);
        assert_eq!(outcome(unnamed), Ok(Ok(a(6))));
        assert_eq!(names.listing(), vec![("n".to_owned(), a(1))]);
    }

    #[test]
    fn a_name_is_freed_or_rebound_only_by_its_current_holder() {
        let mut names: GlobalNames<Holder> = GlobalNames::new();
        let reqs = Requirements::new();
        let spec = ActorSpec::of::<NeedsBlue>();
        let planned = names.plan_create::<()>(
            false,
            Some("n"),
            (&blue(), &reqs),
            || Ok(spec),
            || Holder::Pending(7),
        );
        assert!(matches!(
            planned,
            Ok(NamePlan::New {
                holder: Holder::Pending(7),
                ..
            })
        ));
        // A name held by a create in progress is taken, but not listed.
        assert_eq!(names.holder("n"), Some(&Holder::Pending(7)));
        assert!(names.listing().is_empty());
        assert!(!names.rebind("n", &Holder::Pending(8), Holder::Actor(a(9))));
        assert!(names.rebind("n", &Holder::Pending(7), Holder::Actor(a(1))));
        assert_eq!(names.listing(), vec![("n".to_owned(), a(1))]);
        assert!(!names.release("n", &Holder::Actor(a(2))));
        assert!(names.release("n", &Holder::Actor(a(1))));
        assert_eq!(names.holder("n"), None);

        let mut names: GlobalNames<ActorAddress> = GlobalNames::new();
        for (name, id) in [("x", 1), ("y", 1), ("z", 2)] {
            let planned =
                names.plan_create::<()>(false, Some(name), (&blue(), &reqs), || Ok(spec), || a(id));
            assert!(planned.is_ok());
        }
        names.release_all_of(&a(1));
        assert_eq!(names.listing(), vec![("z".to_owned(), a(2))]);
        assert_eq!(names.iter().collect::<Vec<_>>(), vec![("z", &a(2))]);
        names.clear();
        assert!(names.is_empty() && names.listing().is_empty());
    }
}
