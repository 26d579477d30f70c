//! A status fixture shared by the unit tests of [`crate::format`] and [`crate::top`], so a field
//! added to the status message is filled in one place.

use thespian::{ActorAddress, ActorSummary, Capabilities, SystemStatus};

/// The status of a system on `base` whose admin is `admin`, with `actors` (all top-level, one
/// process, nothing pending, nothing dead-lettered or poisoned).
pub(crate) fn system_status(
    admin: ActorAddress,
    base: &str,
    actors: Vec<ActorSummary>,
) -> SystemStatus {
    SystemStatus {
        admin_address: admin,
        capabilities: Capabilities::new(),
        in_shutdown: false,
        dead_letter_handler: None,
        global_actors: vec![],
        child_actors: vec![],
        live_actors: actors.len(),
        convention: None,
        base: base.into(),
        actors,
        processes: 1,
        dead_letters: 0,
        pending_messages: None,
        poison_messages: 0,
        pending_unanswered: 0,
    }
}
