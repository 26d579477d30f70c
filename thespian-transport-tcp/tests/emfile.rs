//! Running out of file descriptors on accept: the endpoint closes the sockets that never
//! authenticated first (telling them it is overloaded), its longest-idle connections only when
//! there are none, and accepts again.
//!
//! The scenario needs a small descriptor limit, so the test re-runs itself in a child process
//! under `ulimit -n` (POSIX `sh`), where it exhausts the limit on purpose.

#![cfg(unix)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thespian_core::{ActorAddress, SystemId};
use thespian_transport_tcp::wire::{self, HandshakeKind, RejectKind};
use thespian_transport_tcp::{
    CloseReason, EndpointConfig, EndpointEvent, Event, FrameDecoder, Secret, TcpEndpoint,
    WireMessage, OVERLOADED,
};

const DEADLINE: Duration = Duration::from_secs(20);
const CHILD_TEST: &str = "emfile_child_process";

#[test]
fn accept_survives_running_out_of_file_descriptors() {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" \"$@\"")
        .arg(exe)
        .args([
            CHILD_TEST,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(DEADLINE + Duration::from_secs(10))
        .expect("the child finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{stderr}"
    );
}

fn message(n: u64) -> WireMessage {
    WireMessage {
        sender: ActorAddress::new(SystemId::from_raw(1), n),
        target: ActorAddress::new(SystemId::from_raw(2), n),
        type_name: Arc::from("test.N"),
        payload: Arc::from(n.to_be_bytes().to_vec()),
    }
}

fn endpoint(incarnation: u64) -> (TcpEndpoint, SocketAddr) {
    let secret = Secret::from_text(b"the secret of the emfile test").unwrap();
    TcpEndpoint::bind(EndpointConfig::new(SystemId::from_raw(incarnation), secret)).unwrap()
}

fn pump(endpoints: &mut [TcpEndpoint], events: &mut [Vec<EndpointEvent>]) {
    for (ep, ev) in endpoints.iter_mut().zip(events.iter_mut()) {
        ev.extend(ep.poll_events(Some(Duration::from_millis(1))).unwrap());
    }
}

fn count(events: &[EndpointEvent], pred: impl Fn(&Event) -> bool) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, EndpointEvent::Peer { event, .. } if pred(event)))
        .count()
}

/// Runs only in the child, under a small descriptor limit.
#[test]
#[ignore = "run by accept_survives_running_out_of_file_descriptors under ulimit -n"]
fn emfile_child_process() {
    // Index 0 is the server, 1..=4 idle peers, 5 the latecomer.
    let (server, server_addr) = endpoint(1);
    let mut endpoints = vec![server];
    for i in 2..=6 {
        endpoints.push(endpoint(i).0);
    }
    let mut events: Vec<Vec<EndpointEvent>> = endpoints.iter().map(|_| Vec::new()).collect();
    for (i, peer) in endpoints.iter().enumerate().skip(1).take(4) {
        peer.sender().send(server_addr, message(i as u64)).unwrap();
    }
    let deadline = Instant::now() + DEADLINE;
    while count(&events[0], |e| matches!(e, Event::Delivered(_))) < 4 {
        assert!(Instant::now() < deadline, "idle peers never connected");
        pump(&mut endpoints, &mut events);
    }
    assert_eq!(endpoints[0].open_sockets(), 4);

    // Three clients that connect and say nothing (half-open, as far as the server knows).
    let silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server_addr).unwrap())
        .collect();
    while endpoints[0].open_sockets() < 7 {
        assert!(
            Instant::now() < deadline,
            "the silent clients were never accepted"
        );
        pump(&mut endpoints, &mut events);
    }

    // Use up every descriptor, then free exactly one: for the latecomer's connect.
    let mut hog = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "expected EMFILE: {e}");
                break;
            }
        }
    }
    hog.pop();

    endpoints[5].sender().send(server_addr, message(5)).unwrap();
    while count(&events[0], |e| matches!(e, Event::Delivered(_))) < 5 {
        assert!(Instant::now() < deadline, "the latecomer was never served");
        pump(&mut endpoints, &mut events);
    }
    let idle_closed = count(&events[0], |e| {
        matches!(
            e,
            Event::Closed {
                reason: CloseReason::Idle,
                ..
            }
        )
    });
    assert_eq!(
        idle_closed, 0,
        "the unauthenticated sockets go first: no authenticated connection was closed"
    );
    assert_eq!(endpoints[0].stats().overloaded, 3);
    drop(hog);
    // Each silent client was told why.
    for mut client in silent {
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reply = Vec::new();
        let _ = client.read_to_end(&mut reply);
        let body = FrameDecoder::new(wire::MAX_HANDSHAKE_FRAME)
            .decode(&mut &reply[..])
            .unwrap()
            .expect("a whole reject frame");
        let kind = wire::decode_handshake(&body, wire::PROTOCOL_VERSION)
            .unwrap()
            .kind;
        assert!(
            matches!(&kind, HandshakeKind::Reject { kind: RejectKind::Overloaded, reason } if reason == OVERLOADED),
            "{kind:?}"
        );
    }
}
