//! The bases the facade starts besides Simple, each behind its cargo feature.
//!
//! This module exists so that a program links only the bases it asked for: the Queue base
//! (`queue`) and the multi-process bases (`tcp`, `udp`, which bring `thespian-multiproc` and
//! their transport crate). Selecting a base that is not built in is a startup error naming the
//! feature. [`tcp`] and [`udp`] are the only files of the workspace above the transport crates
//! that name a concrete transport.

use std::net::IpAddr;
use std::sync::Arc;

use thespian_core::{BaseDriver, Capabilities, Result, SystemId, ThespianError};

use crate::system::SystemBase;

#[cfg(feature = "tcp")]
pub(crate) mod tcp;
#[cfg(feature = "udp")]
pub(crate) mod udp;

/// The error of a base whose feature is off.
fn not_built_in(base: SystemBase, feature: &str) -> ThespianError {
    ThespianError::StartupFailure(format!(
        "the {base:?} base is not built in: enable the thespian feature \"{feature}\""
    ))
}

/// Starts the Queue base.
#[cfg(feature = "queue")]
pub(crate) fn queue(
    system: SystemId,
    capabilities: Capabilities,
    queue_limit: usize,
) -> Result<Arc<dyn BaseDriver>> {
    Ok(Arc::new(thespian_transport_queue::QueueBase::start_with(
        system,
        capabilities,
        thespian_transport_queue::QueueConfig { queue_limit },
    )?))
}

/// The Queue base is not built in.
#[cfg(not(feature = "queue"))]
pub(crate) fn queue(_: SystemId, _: Capabilities, _: usize) -> Result<Arc<dyn BaseDriver>> {
    Err(not_built_in(SystemBase::Queue, "queue"))
}

/// What a multi-process base is started with.
#[derive(Debug)]
#[cfg_attr(not(any(feature = "tcp", feature = "udp")), allow(dead_code))]
pub(crate) struct MultiprocSettings {
    pub(crate) capabilities: Capabilities,
    pub(crate) advertise_ip: Option<IpAddr>,
    pub(crate) entry_args: Vec<String>,
    pub(crate) log_filter: Option<String>,
    pub(crate) attach_only: bool,
}

/// Starts (or attaches to) the multi-process system of `base` (`Tcp` or `Udp`).
pub(crate) fn multiproc(
    base: SystemBase,
    settings: MultiprocSettings,
) -> Result<Arc<dyn BaseDriver>> {
    #[cfg(any(feature = "tcp", feature = "udp"))]
    {
        let transport = transport(base)?;
        let MultiprocSettings {
            capabilities,
            advertise_ip,
            entry_args,
            log_filter,
            attach_only,
        } = settings;
        Ok(Arc::new(thespian_multiproc::ProgramBase::start(
            thespian_multiproc::StartSettings {
                transport,
                capabilities,
                advertise_ip,
                entry_args,
                log_filter,
                attach_only,
            },
        )?))
    }
    #[cfg(not(any(feature = "tcp", feature = "udp")))]
    {
        let _ = settings;
        Err(not_built_in(base, &base.to_feature()))
    }
}

impl SystemBase {
    /// The cargo feature that builds this base in.
    fn to_feature(self) -> String {
        format!("{self:?}").to_ascii_lowercase()
    }
}

/// The transport of multi-process base `base`, when it is built in.
#[cfg(any(feature = "tcp", feature = "udp"))]
fn transport(base: SystemBase) -> Result<Arc<dyn thespian_multiproc::TransportFactory>> {
    match base {
        #[cfg(feature = "tcp")]
        SystemBase::Tcp => Ok(Arc::new(tcp::TcpTransport)),
        #[cfg(feature = "udp")]
        SystemBase::Udp => Ok(Arc::new(udp::UdpTransport)),
        other => Err(not_built_in(other, &other.to_feature())),
    }
}

/// The transports built into this program: a process it re-executes finds its role's
/// transport among them.
#[cfg(any(feature = "tcp", feature = "udp"))]
pub(crate) fn transports() -> Vec<Arc<dyn thespian_multiproc::TransportFactory>> {
    vec![
        #[cfg(feature = "tcp")]
        Arc::new(tcp::TcpTransport),
        #[cfg(feature = "udp")]
        Arc::new(udp::UdpTransport),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_not_built_in_names_its_feature() {
        let error = not_built_in(SystemBase::Tcp, &SystemBase::Tcp.to_feature());
        assert_eq!(
            error.to_string(),
            ThespianError::StartupFailure(
                "the Tcp base is not built in: enable the thespian feature \"tcp\"".into()
            )
            .to_string()
        );
    }
}
