//! The `Actor` trait and the type-erased description the system uses to build actors.
//!
//! Thespian built actors from a class name in any process. [`ActorSpec`] is the Rust
//! equivalent: a copyable record of plain function pointers (construct, capability check) and a
//! stable type name, so a base can construct any actor type wherever it decides. A spec is only
//! ever made from a Rust type ([`ActorSpec::of`]); other processes find it by its name in a
//! table their own program built, never from bytes they were sent.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::capabilities::{Capabilities, CapabilityValue, RequireCapability, Requirements};
use crate::context::Context;
use crate::message::Envelope;

/// The error an actor returns from `receive` or its constructor: anything that is an error.
pub type ActorError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What `receive` returns. An `Err` (like a panic) is a failure: retried once, then returned to
/// the sender as a `PoisonMessage`.
pub type ActorResult = Result<(), ActorError>;

/// An actor: state plus a `receive` that handles one message at a time.
///
/// ```
/// use thespian_core::{Actor, ActorResult, Context, Envelope};
/// #[derive(Default)]
/// struct Echo;
/// impl Actor for Echo {
///     fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
///         if let Ok(text) = env.get::<String>() {
///             ctx.send(env.sender(), text.clone())?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Actor: Send + 'static {
    /// Handles one message. Never called concurrently for one actor.
    fn receive(&mut self, envelope: &Envelope, ctx: &mut Context<'_>) -> ActorResult;

    /// Thespian's `actorSystemCapabilityCheck`: may this actor run on a system with `caps`,
    /// given the create request's `requirements`? Checked at creation and after every capability
    /// change; a panic counts as `false`.
    fn capability_check(_caps: &Capabilities, _requirements: &Requirements) -> bool
    where
        Self: Sized,
    {
        true
    }

    /// Thespian's `@requireCapability`: conditions the hosting system's capabilities must meet
    /// (all of them, and [`Actor::capability_check`] too).
    fn required_capabilities() -> Vec<RequireCapability>
    where
        Self: Sized,
    {
        Vec::new()
    }

    /// The stable name this actor type is registered and created under in other processes.
    fn type_name() -> &'static str
    where
        Self: Sized,
    {
        std::any::type_name::<Self>()
    }
}

/// How the system constructs an actor: from `Default`, or from the hosting system's
/// capabilities and the create request's requirements (Thespian's `__init__(capabilities,
/// requirements)`). Every `Default` type gets it; implement it for the others.
pub trait NewActor: Sized {
    /// Builds the actor. An error (or panic) means the actor never starts.
    fn new_actor(
        capabilities: &Capabilities,
        requirements: &Requirements,
    ) -> Result<Self, ActorError>;
}

impl<T: Default> NewActor for T {
    fn new_actor(_: &Capabilities, _: &Requirements) -> Result<Self, ActorError> {
        Ok(T::default())
    }
}

/// Why a capability check rejected a system.
pub type Unmet = Vec<String>;

/// Builds a type-erased actor from capabilities and requirements.
type Constructor = fn(&Capabilities, &Requirements) -> Result<Box<dyn Actor>, ActorError>;

/// A copyable description of an actor type: everything a base needs to create one.
///
/// One pointer to a static table of the type's functions, so the copy that every live actor
/// keeps (in its cell and in the registry) costs 8 bytes, not 32.
#[derive(Clone, Copy)]
pub struct ActorSpec(&'static SpecFns);

/// An actor type's functions, one static table per type.
struct SpecFns {
    type_name: fn() -> &'static str,
    construct: Constructor,
    check: CapabilityCheck,
}

/// Runs an actor type's capability conditions.
type CapabilityCheck = fn(&Capabilities, &Requirements) -> Result<(), Unmet>;

impl ActorSpec {
    /// The spec of actor type `A`.
    pub fn of<A: Actor + NewActor>() -> ActorSpec {
        ActorSpec(
            const {
                &SpecFns {
                    type_name: A::type_name,
                    construct: construct_boxed::<A>,
                    check: check_capabilities::<A>,
                }
            },
        )
    }

    /// The actor type's stable name.
    pub fn type_name(&self) -> &'static str {
        (self.0.type_name)()
    }

    /// Runs the capability conditions against `caps`: `Err` lists the unmet ones.
    pub fn check(&self, caps: &Capabilities, requirements: &Requirements) -> Result<(), Unmet> {
        (self.0.check)(caps, requirements)
    }

    /// Constructs the actor; a constructor panic becomes an error.
    pub fn construct(
        &self,
        caps: &Capabilities,
        requirements: &Requirements,
    ) -> Result<Box<dyn Actor>, String> {
        match catch_unwind(AssertUnwindSafe(|| (self.0.construct)(caps, requirements))) {
            Ok(Ok(actor)) => Ok(actor),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(format!("constructor panicked: {}", panic_text(&*panic))),
        }
    }
}

impl fmt::Debug for ActorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ActorSpec").field(&self.type_name()).finish()
    }
}

fn construct_boxed<A: Actor + NewActor>(
    caps: &Capabilities,
    reqs: &Requirements,
) -> Result<Box<dyn Actor>, ActorError> {
    A::new_actor(caps, reqs).map(|a| Box::new(a) as Box<dyn Actor>)
}

fn check_capabilities<A: Actor>(caps: &Capabilities, reqs: &Requirements) -> Result<(), Unmet> {
    let mut unmet: Unmet = A::required_capabilities()
        .iter()
        .filter(|r| !r.is_met(caps))
        .map(|r| format!("requires capability {r}"))
        .collect();
    match catch_unwind(AssertUnwindSafe(|| A::capability_check(caps, reqs))) {
        Ok(true) => {}
        Ok(false) => unmet.push(format!("capability_check rejected requirements {reqs:?}")),
        Err(panic) => unmet.push(format!(
            "capability_check panicked: {}",
            panic_text(&*panic)
        )),
    }
    if unmet.is_empty() {
        Ok(())
    } else {
        Err(unmet)
    }
}

/// The text of a caught panic.
pub fn panic_text(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The options of a create request: requirements, a global name, a source hash. The one
/// builder for both ways to create: `ActorSystem::create_actor_with` from outside and
/// [`Context::create_actor_with`] inside an actor; [`CreateOptions::request`] joins it to the
/// actor type.
///
/// ```
/// use thespian_core::{ActorSpec, CreateOptions};
/// # #[derive(Default)]
/// # struct Keeper;
/// # impl thespian_core::Actor for Keeper {
/// #     fn receive(&mut self, _: &thespian_core::Envelope, _: &mut thespian_core::Context<'_>)
/// #         -> thespian_core::ActorResult { Ok(()) }
/// # }
/// let request = CreateOptions::new()
///     .global_name("keeper")
///     .requirement("Size", 3i64)
///     .request(ActorSpec::of::<Keeper>());
/// assert_eq!(request.global_name.as_deref(), Some("keeper"));
/// assert_eq!(request.requirements.get("Size"), Some(&3i64.into()));
/// ```
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    requirements: Requirements,
    global_name: Option<String>,
    source_hash: Option<String>,
}

impl CreateOptions {
    /// No options.
    pub fn new() -> CreateOptions {
        CreateOptions::default()
    }

    /// Requirements the hosting system must meet (given to the capability check and the
    /// constructor).
    pub fn requirements(mut self, requirements: Requirements) -> Self {
        self.requirements = requirements;
        self
    }

    /// One requirement.
    pub fn requirement(
        mut self,
        key: impl Into<String>,
        value: impl Into<CapabilityValue>,
    ) -> Self {
        self.requirements.set(key, value);
        self
    }

    /// A system-wide name: if a live actor has it, that actor is returned instead.
    pub fn global_name(mut self, name: impl Into<String>) -> Self {
        self.global_name = Some(name.into());
        self
    }

    /// Take the actor type from this loaded source.
    pub fn source_hash(mut self, hash: impl Into<String>) -> Self {
        self.source_hash = Some(hash.into());
        self
    }

    /// True when a global name is set.
    pub fn has_global_name(&self) -> bool {
        self.global_name.is_some()
    }

    /// The request to create an actor of `spec` with these options.
    pub fn request(self, spec: ActorSpec) -> CreateRequest {
        CreateRequest {
            spec,
            requirements: self.requirements,
            global_name: self.global_name,
            source_hash: self.source_hash,
        }
    }
}

/// What to create: the actor type and the options of `create_actor` (see [`CreateOptions`],
/// which builds one from outside and inside actors alike).
#[derive(Clone, Debug)]
pub struct CreateRequest {
    /// The actor type.
    pub spec: ActorSpec,
    /// Requirements for the hosting system, given to the capability check and constructor.
    pub requirements: Requirements,
    /// A system-wide name: an existing live actor with this name is returned instead.
    pub global_name: Option<String>,
    /// A loaded source to take the type from (loadable-source bases only).
    pub source_hash: Option<String>,
}

impl CreateRequest {
    /// A request for actor type `A` with no options.
    pub fn of<A: Actor + NewActor>() -> CreateRequest {
        CreateRequest::new(ActorSpec::of::<A>())
    }

    /// A request for `spec` with no options.
    pub fn new(spec: ActorSpec) -> CreateRequest {
        CreateOptions::new().request(spec)
    }

    /// Sets the requirements.
    pub fn requirements(mut self, requirements: Requirements) -> Self {
        self.requirements = requirements;
        self
    }

    /// Sets the global name.
    pub fn global_name(mut self, name: impl Into<String>) -> Self {
        self.global_name = Some(name.into());
        self
    }

    /// Sets the source hash.
    pub fn source_hash(mut self, hash: impl Into<String>) -> Self {
        self.source_hash = Some(hash.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    #[derive(Default)]
    struct Picky;

    impl Actor for Picky {
        fn receive(&mut self, _: &Envelope, _: &mut Context<'_>) -> ActorResult {
            Ok(())
        }
        fn capability_check(caps: &Capabilities, _: &Requirements) -> bool {
            caps.is_truthy("picky")
        }
    }

    #[test]
    fn a_spec_checks_and_constructs_its_type() {
        let spec = ActorSpec::of::<Picky>();
        assert!(spec.type_name().ends_with("Picky"), "{}", spec.type_name());
        let mut caps = Capabilities::new();
        assert!(spec.check(&caps, &Requirements::new()).is_err());
        caps.set("picky", true);
        assert!(spec.check(&caps, &Requirements::new()).is_ok());
        assert!(spec.construct(&caps, &Requirements::new()).is_ok());
    }

    /// Every live actor keeps its spec twice (cell and registry): one pointer each.
    #[test]
    fn a_spec_is_one_pointer() {
        assert_eq!(
            std::mem::size_of::<ActorSpec>(),
            std::mem::size_of::<usize>()
        );
    }
}
