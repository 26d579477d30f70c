//! The troupe's messages: the leader↔worker protocol (private in meaning, public in type so
//! they travel between processes) and the status and settings requests users send.
//!
//! Wire names start with `thespian-troupe.`, not `thespian.`: they are not system messages, so
//! the actor lifecycle treats them as ordinary messages (retried once, returned as poison).

use serde::{Deserialize, Serialize};
use thespian_core::{ActorAddress, Payload};

use crate::policy::WorkId;

/// Work the leader hands a worker: the original message and sender, and the work's number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TroupeWork {
    /// The message sent to the troupe.
    pub message: Payload,
    /// Who sent it to the troupe: the worker's `receive` sees it as the sender.
    pub sender: ActorAddress,
    /// The leader's number for this work.
    pub id: WorkId,
}

/// A worker tells its leader it has finished the work it named and is ready for more
/// (Thespian's `_TroupeMemberReady`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TroupeReady {
    /// The work finished (`None` when it was not troupe work).
    pub id: Option<WorkId>,
}

/// Asks a troupe leader for a [`TroupeStatus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TroupeStatusRequest;

/// A troupe's counts and settings, the typed answer to [`TroupeStatusRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TroupeStatus {
    /// The most workers at once.
    pub max_count: u32,
    /// Idle workers kept once work dries up.
    pub idle_count: u32,
    /// Live workers.
    pub workers: usize,
    /// Idle workers.
    pub idle: usize,
    /// Extra workers awaiting dismissal.
    pub extra: usize,
    /// Work waiting for a worker.
    pub pending: usize,
    /// Work finished by a worker.
    pub handled: u64,
    /// Work given back to its sender (pending queue full, failures, no worker).
    pub rejected: u64,
    /// The live workers' addresses, in creation order.
    pub worker_addresses: Vec<ActorAddress>,
}

/// Changes a troupe's `max_count` and/or `idle_count` at run time; the leader replies with an
/// `UpdateTroupeSettings` carrying the values in effect (Thespian 3.10.0). Build it with
/// [`UpdateTroupeSettings::new`], which refuses 0 as Thespian's constructor does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateTroupeSettings {
    /// The new `max_count`, if it changes.
    pub max_count: Option<u32>,
    /// The new `idle_count`, if it changes.
    pub idle_count: Option<u32>,
}

impl UpdateTroupeSettings {
    /// A settings change; a value of 0 is an error (Thespian asserts values above 0).
    pub fn new(
        max_count: Option<u32>,
        idle_count: Option<u32>,
    ) -> Result<UpdateTroupeSettings, String> {
        for (name, value) in [("max_count", max_count), ("idle_count", idle_count)] {
            if value == Some(0) {
                return Err(format!("troupe {name} must be greater than 0"));
            }
        }
        Ok(UpdateTroupeSettings {
            max_count,
            idle_count,
        })
    }
}

thespian_core::message!(
    TroupeWork = "thespian-troupe.Work",
    TroupeReady = "thespian-troupe.Ready",
    TroupeStatusRequest = "thespian-troupe.StatusRequest",
    TroupeStatus = "thespian-troupe.Status",
    UpdateTroupeSettings = "thespian-troupe.UpdateTroupeSettings",
);
