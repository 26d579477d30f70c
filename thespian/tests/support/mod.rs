//! Helpers shared by the multi-process test binaries (`multiprocess.rs`, `security.rs`).

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Ports handed out in this test process (tests run in parallel: no two may share a port).
static TAKEN_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// A port in 20000..32000 that is free on 127.0.0.1 for both TCP and UDP right now and was not
/// handed out before in this process.
pub(crate) fn admin_port() -> u16 {
    let mut taken = TAKEN_PORTS.lock().unwrap_or_else(|p| p.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    for _ in 0..10_000 {
        let port = 20_000 + (random_u64() % 12_000) as u16;
        if taken.contains(&port) {
            continue;
        }
        let at = (Ipv4Addr::LOCALHOST, port);
        let free = TcpListener::bind(at).is_ok() && UdpSocket::bind(at).is_ok();
        if free {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free port in 20000..32000 on 127.0.0.1");
}
