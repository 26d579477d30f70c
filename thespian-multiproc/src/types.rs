//! The actor types this executable knows by name.
//!
//! A multi-process system creates an actor in another process from its type's name alone: the
//! admin and every actor process look the name up in a table their own program built, so no
//! bytes received from a peer ever become code, a path or an argument. The table is filled at
//! link time by `thespian::register_actors!`: each invocation submits one
//! [`ActorRegistration`] per type to the `inventory` crate, which gathers them wherever they
//! are in the program (any module, a test binary too) without a list kept in `main`.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::OnceLock;

use thespian_core::{Actor, ActorSpec, NewActor, ThespianError};

/// One actor type registered by `thespian::register_actors!`.
#[derive(Debug)]
pub struct ActorRegistration {
    spec: fn() -> ActorSpec,
    type_id: fn() -> TypeId,
}

impl ActorRegistration {
    /// The registration of actor type `A` (what the macro submits).
    pub const fn of<A: Actor + NewActor>() -> ActorRegistration {
        ActorRegistration {
            spec: ActorSpec::of::<A>,
            type_id: TypeId::of::<A>,
        }
    }
}

inventory::collect!(ActorRegistration);

/// What a name stands for in the table.
#[derive(Clone, Copy, Debug)]
enum Entry {
    One(ActorSpec, TypeId),
    /// Two different types registered the same name: neither is created by it.
    Ambiguous,
}

fn table() -> &'static HashMap<&'static str, Entry> {
    static TABLE: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for registration in inventory::iter::<ActorRegistration> {
            let spec = (registration.spec)();
            let type_id = (registration.type_id)();
            let entry = table
                .entry(spec.type_name())
                .or_insert(Entry::One(spec, type_id));
            if let Entry::One(_, known) = entry {
                if *known != type_id {
                    log::error!(
                        "two actor types are registered under the name {:?}; give one of them \
                         another Actor::type_name()",
                        spec.type_name()
                    );
                    *entry = Entry::Ambiguous;
                }
            }
        }
        table
    })
}

/// The actor type registered under `name` in this executable, if exactly one is.
pub(crate) fn lookup(name: &str) -> Option<ActorSpec> {
    match table().get(name) {
        Some(Entry::One(spec, _)) => Some(*spec),
        _ => None,
    }
}

/// [`lookup`], or the `InvalidActorSpecification` that names this program and says how to
/// register the type.
pub(crate) fn resolve(name: &str) -> Result<ActorSpec, ThespianError> {
    lookup(name).ok_or_else(|| ThespianError::InvalidActorSpecification {
        spec: name.to_owned(),
        reason: unknown_reason(name),
    })
}

/// Why `name` cannot be created by this executable, and what to do about it.
pub(crate) fn unknown_reason(name: &str) -> String {
    let program = this_program_name();
    if matches!(table().get(name), Some(Entry::Ambiguous)) {
        return format!(
            "{program} registers two different actor types under this name; give one of them \
             another Actor::type_name()"
        );
    }
    format!(
        "{program} (the executable that runs this system's actors) has no actor type registered \
         under this name; register it with thespian::register_actors!"
    )
}

/// The file name of this process's executable, for messages.
fn this_program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "this program".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use thespian_core::{ActorResult, Context, Envelope};

    #[derive(Default)]
    struct Listed;

    impl Actor for Listed {
        fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
            Ok(())
        }
        fn type_name() -> &'static str {
            "types.test.Listed"
        }
    }

    #[derive(Default)]
    struct SameNameA;
    #[derive(Default)]
    struct SameNameB;

    impl Actor for SameNameA {
        fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
            Ok(())
        }
        fn type_name() -> &'static str {
            "types.test.SameName"
        }
    }

    impl Actor for SameNameB {
        fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
            Ok(())
        }
        fn type_name() -> &'static str {
            "types.test.SameName"
        }
    }

    // What `thespian::register_actors!(Listed, SameNameA, SameNameB)` submits.
    inventory::submit! { ActorRegistration::of::<Listed>() }
    inventory::submit! { ActorRegistration::of::<SameNameA>() }
    inventory::submit! { ActorRegistration::of::<SameNameB>() }
    // Registering a type twice is harmless.
    inventory::submit! { ActorRegistration::of::<Listed>() }

    #[test]
    fn a_registered_type_is_found_by_its_name() {
        let spec = lookup("types.test.Listed").expect("registered");
        assert_eq!(spec.type_name(), "types.test.Listed");
        assert!(resolve("types.test.Listed").is_ok());
    }

    #[test]
    fn an_unknown_name_names_this_program_and_the_fix() {
        assert!(lookup("/bin/sh").is_none());
        match resolve("/bin/sh") {
            Err(ThespianError::InvalidActorSpecification { spec, reason }) => {
                assert_eq!(spec, "/bin/sh");
                assert!(reason.contains(&this_program_name()), "{reason}");
                assert!(
                    reason.contains("register it with thespian::register_actors!"),
                    "{reason}"
                );
            }
            other => panic!("expected InvalidActorSpecification, got {other:?}"),
        }
    }

    #[test]
    fn two_types_under_one_name_create_neither() {
        assert!(lookup("types.test.SameName").is_none());
        assert!(unknown_reason("types.test.SameName").contains("two different actor types"));
    }
}
