//! The `Tcp` base's transport: `thespian-transport-tcp`, for `thespian-multiproc`.
//!
//! This file exists so the multi-process driver never names TCP: it binds listeners and
//! builds a [`TcpEndpoint`] on them through the [`TransportFactory`] seam.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{BorrowedFd, OwnedFd};

use thespian_core::SystemId;
use thespian_multiproc::{Secret, TransportEndpoint, TransportFactory};
use thespian_transport_tcp::{EndpointConfig, TcpEndpoint, DEFAULT_MAX_FRAME};

use crate::system::SystemBase;

/// The TCP transport of the `Tcp` base (`multiprocTCPBase`).
#[derive(Debug)]
pub(crate) struct TcpTransport;

impl TransportFactory for TcpTransport {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn base_name(&self) -> &'static str {
        SystemBase::Tcp.thespian_name()
    }

    fn default_admin_port(&self) -> u16 {
        1900
    }

    fn bind(&self, address: SocketAddr) -> io::Result<OwnedFd> {
        Ok(TcpListener::bind(address)?.into())
    }

    fn max_payload(&self) -> usize {
        // A data frame's header (addresses, wire name, sequence) takes well under 1 KiB.
        DEFAULT_MAX_FRAME - 1024
    }

    fn local_addr(&self, socket: BorrowedFd<'_>) -> io::Result<SocketAddr> {
        TcpListener::from(socket.try_clone_to_owned()?).local_addr()
    }

    fn endpoint(
        &self,
        socket: OwnedFd,
        incarnation: SystemId,
        secret: Secret,
    ) -> io::Result<TransportEndpoint> {
        let config = EndpointConfig::new(incarnation, secret);
        let (endpoint, _) = TcpEndpoint::from_listener(TcpListener::from(socket), config)?;
        let sender = endpoint.sender();
        Ok(TransportEndpoint {
            poll: Box::new(endpoint),
            sender: Box::new(sender),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thespians_admin_port_and_base_name() {
        assert_eq!(TcpTransport.default_admin_port(), 1900);
        assert_eq!(TcpTransport.base_name(), "multiprocTCPBase");
    }
}
