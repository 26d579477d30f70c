//! The API a tool attaching to a system uses: `admin_port()`, attach-only starts, and the
//! admin's run-time log level, on the bases that have no admin daemon and on a port where
//! nothing listens. (A system on a port the OS chose, and the log level of a live admin, are
//! exercised by `thespian-cli`'s tests.)

#[path = "support/held_port.rs"]
mod held_port;
use held_port::held_tcp_port;
use std::time::Duration;

use thespian::prelude::*;
use thespian::{keys, ThespianError};

thespian::test_entry_point!();

#[test]
fn in_process_bases_have_no_admin_port_and_no_admin_log_level() {
    for base in [SystemBase::Simple, SystemBase::Queue] {
        let sys = ActorSystem::builder()
            .base(base)
            .transient_unique(true)
            .start()
            .expect("starts");
        assert_eq!(sys.admin_port(), None);
        assert!(matches!(
            sys.set_admin_log_level("debug"),
            Err(ThespianError::NotSupported { .. })
        ));
        let status = sys.status(Duration::from_secs(5)).expect("a status");
        assert_eq!(status.processes, 1);
        assert_eq!(
            sys.global_actor("nobody", Duration::from_secs(5)).ok(),
            Some(None)
        );
        sys.shutdown().expect("shut down");
    }
}

#[test]
fn attach_only_fails_clearly_where_nothing_listens() {
    // TCP: a port held for the whole test where nothing listens. UDP: a socket there would be
    // a listener, so the port is one the OS found free just before (another port-0 bind could
    // take it in between: the window is this loop's few instructions).
    let (held, tcp_port) = held_tcp_port();
    for base in [SystemBase::Tcp, SystemBase::Udp] {
        let port = match base {
            SystemBase::Udp => std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .expect("a free port")
                .port(),
            _ => tcp_port,
        };
        let error = ActorSystem::builder()
            .base(base)
            .capability(keys::ADMIN_PORT, i64::from(port))
            .attach_only(true)
            .transient_unique(true)
            .test_entry_point()
            .start()
            .expect_err("nothing to attach to");
        assert!(
            matches!(&error, ThespianError::StartupFailure(text) if text.contains("nothing listens")),
            "{error}"
        );
    }
    drop(held);
    let error = ActorSystem::builder()
        .base(SystemBase::Tcp)
        .capability(keys::ADMIN_PORT, 0i64)
        .attach_only(true)
        .transient_unique(true)
        .test_entry_point()
        .start()
        .expect_err("port 0 names no system");
    assert!(
        error.to_string().contains("names no running system"),
        "{error}"
    );
}
