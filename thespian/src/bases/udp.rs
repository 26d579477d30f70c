//! The `Udp` base's transport: `thespian-transport-udp`, for `thespian-multiproc`, with the
//! timing a multi-process system wants.
//!
//! This file exists so the multi-process driver never names UDP: it binds sockets and builds a
//! [`UdpEndpoint`] on them through the [`TransportFactory`] seam.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use thespian_core::SystemId;
use thespian_multiproc::{Secret, TransportEndpoint, TransportFactory};
use thespian_transport_udp::{Config, EndpointConfig, UdpEndpoint};

use crate::system::SystemBase;

/// The UDP transport of the `Udp` base (`multiprocUDPBase`).
#[derive(Debug)]
pub(crate) struct UdpTransport;

/// The UDP machine's timing in a multi-process system: processes of one system sit on one
/// host or one network, so a peer silent for about 3 s (16 retransmissions, 20 ms backing off
/// to 250 ms) is taken for gone, and its messages become dead letters, instead of the
/// transport's cautious default of more than a minute.
fn udp_settings() -> Config {
    Config {
        initial_rto: Duration::from_millis(20),
        max_rto: Duration::from_millis(250),
        max_retransmits: 16,
        ..Config::default()
    }
}

impl TransportFactory for UdpTransport {
    fn name(&self) -> &'static str {
        "udp"
    }

    fn base_name(&self) -> &'static str {
        SystemBase::Udp.thespian_name()
    }

    fn default_admin_port(&self) -> u16 {
        1029
    }

    fn bind(&self, address: SocketAddr) -> io::Result<OwnedFd> {
        Ok(UdpSocket::bind(address)?.into())
    }

    fn max_payload(&self) -> usize {
        // The datagram's headers (addresses, wire name, counter, tag) take well under 1 KiB.
        udp_settings().datagram_limit() - 1024
    }

    fn local_addr(&self, socket: BorrowedFd<'_>) -> io::Result<SocketAddr> {
        UdpSocket::from(socket.try_clone_to_owned()?).local_addr()
    }

    fn endpoint(
        &self,
        socket: OwnedFd,
        incarnation: SystemId,
        secret: Secret,
    ) -> io::Result<TransportEndpoint> {
        let mut config = EndpointConfig::new(incarnation, secret);
        config.transport = udp_settings();
        let (endpoint, _) = UdpEndpoint::from_socket(UdpSocket::from(socket), config)?;
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
        assert_eq!(UdpTransport.default_admin_port(), 1029);
        assert_eq!(UdpTransport.base_name(), "multiprocUDPBase");
    }
}
