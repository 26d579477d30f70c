//! The system bases the conformance suite runs on, and what the suite expects of each.
//!
//! To run the suite on a new base, add one line to `conformance_suite!` below (and check its
//! row in [`traits`]).

use thespian::SystemBase;

conformance_suite! {
    simple => SystemBase::Simple,
    queue => SystemBase::Queue,
    // tcp => SystemBase::Tcp,
    // udp => SystemBase::Udp,
}

/// What a base offers, where the suite's expectations depend on it (SPEC §3).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Traits {
    /// Actors run in the test's own process (a static in the test binary is shared with them).
    pub(crate) in_process: bool,
    /// The base takes part in conventions (`notify_on_system_registration_changes`,
    /// `pre_register_remote_system`, `de_register_remote_system`).
    pub(crate) conventions: bool,
    /// The base loads actor sources (`load_actor_source` and the Source Authority calls).
    pub(crate) source_loading: bool,
}

/// The expectations for `base`. Whether file-descriptor watches work is read from the system's
/// `Thespian Watch Supported` capability instead.
pub(crate) fn traits(base: SystemBase) -> Traits {
    match base {
        SystemBase::Simple => Traits {
            in_process: true,
            conventions: false,
            source_loading: false,
        },
        SystemBase::Queue => Traits {
            in_process: true,
            conventions: false,
            // Update when loadable sources land on this base.
            source_loading: false,
        },
        SystemBase::Tcp | SystemBase::Udp => Traits {
            // With `Process Startup Method` = `thread` actors would share the process, but the
            // default (`spawn`) gives each its own.
            in_process: false,
            conventions: true,
            // Update when loadable sources land on this base.
            source_loading: false,
        },
    }
}
