//! How the multi-process driver gets a transport without naming one.
//!
//! This module exists because the driver must bind sockets before their endpoints exist (an
//! actor's address is its socket's, known before its process starts, and the socket is handed
//! to that process as its stdin), and then build an endpoint on them: a [`TransportFactory`]
//! does both for one transport, and the endpoint it builds speaks `thespian-core`'s transport
//! seam. The program supplies the factories it was built with (the `thespian` facade's `tcp`
//! and `udp` features); nothing in this crate names a concrete transport.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use thespian_auth::Secret;
use thespian_core::transport::{TransportPoll, TransportSend};
use thespian_core::SystemId;

/// Binds sockets of one transport and builds its endpoints on them.
///
/// The processes of a system find the factory by [`name`](TransportFactory::name): the program
/// that starts the admin names it in the admin's settings, the admin in each actor process's,
/// and every process looks it up among the factories its own executable was built with.
pub trait TransportFactory: Send + Sync + 'static {
    /// The transport's short name (`"tcp"`, `"udp"`): how re-executed processes find it.
    fn name(&self) -> &'static str;
    /// Thespian's name of the base this transport serves (`"multiprocTCPBase"`).
    fn base_name(&self) -> &'static str;
    /// The Admin Port when the `Admin Port` capability names none.
    fn default_admin_port(&self) -> u16;
    /// Binds a socket of this transport at `address` (a listener for a stream transport).
    fn bind(&self, address: SocketAddr) -> io::Result<OwnedFd>;
    /// The largest payload, in bytes of its wire form, that one message of this transport
    /// carries: replies the admin builds (a status listing every actor) are kept under it.
    fn max_payload(&self) -> usize;
    /// The address a socket of this transport is bound to.
    fn local_addr(&self, socket: BorrowedFd<'_>) -> io::Result<SocketAddr>;
    /// Builds the endpoint on `socket` (one [`bind`](TransportFactory::bind) made, here or in
    /// the process that started this one) for incarnation `incarnation`; it authenticates
    /// every session with `secret`.
    fn endpoint(
        &self,
        socket: OwnedFd,
        incarnation: SystemId,
        secret: Secret,
    ) -> io::Result<TransportEndpoint>;
}

/// An endpoint, as the driver uses it: polled by one thread, sent through from any.
pub struct TransportEndpoint {
    /// The polling half.
    pub poll: Box<dyn TransportPoll>,
    /// The sending half.
    pub sender: Box<dyn TransportSend>,
}

impl std::fmt::Debug for TransportEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportEndpoint").finish_non_exhaustive()
    }
}

/// A socket bound before its endpoint exists, with its address known, ready to be handed to
/// another process or turned into an endpoint of its transport.
pub(crate) struct BoundSocket {
    fd: OwnedFd,
    local: SocketAddr,
    transport: Arc<dyn TransportFactory>,
}

impl std::fmt::Debug for BoundSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundSocket")
            .field("transport", &self.transport.name())
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl BoundSocket {
    /// Binds a socket of `transport` at `address`.
    pub(crate) fn bind(
        transport: &Arc<dyn TransportFactory>,
        address: SocketAddr,
    ) -> io::Result<BoundSocket> {
        let fd = transport.bind(address)?;
        BoundSocket::adopt(transport, fd)
    }

    /// Takes a socket of `transport` that this process was given.
    pub(crate) fn adopt(
        transport: &Arc<dyn TransportFactory>,
        fd: OwnedFd,
    ) -> io::Result<BoundSocket> {
        let local = transport.local_addr(fd.as_fd())?;
        Ok(BoundSocket {
            fd,
            local,
            transport: transport.clone(),
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The socket as an owned descriptor (to become a child process's stdin).
    pub(crate) fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Builds the transport's endpoint on this socket; it authenticates every session with
    /// `secret`.
    pub(crate) fn into_endpoint(
        self,
        incarnation: SystemId,
        secret: Secret,
    ) -> io::Result<TransportEndpoint> {
        self.transport.endpoint(self.fd, incarnation, secret)
    }
}
