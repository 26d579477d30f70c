//! Fuzzes everything in `thespian-transport-tcp` that reads bytes from the network: the frame
//! decoder (under arbitrary splits of the input), the handshake and frame-body decoders, the
//! pre-handshake acceptor (`Incoming`) and an established session (`Connection`).
//! None of them may panic, and the decoder must never return a frame above its maximum.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use thespian_core::{ActorAddress, SystemId};
use thespian_transport_tcp::wire::{self, Handshake, HandshakeKind, PeerInfo};
use thespian_transport_tcp::{
    Config, Connection, FrameDecoder, Incoming, LocalIdentity, MessageId, WireMessage,
};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split % 64) + 1;

    // 1. Frames and their bodies.
    let mut decoder = FrameDecoder::new(MAX);
    'frames: for piece in bytes.chunks(chunk) {
        let mut input = piece;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(body)) => {
                    assert!(body.len() <= MAX);
                    let _ = wire::decode_handshake(&body, wire::PROTOCOL_VERSION);
                    let _ = wire::decode_frame(&body);
                }
                Ok(None) => break,
                Err(_) => break 'frames,
            }
        }
    }

    let config = Config {
        max_frame: MAX,
        ..Config::default()
    };
    let now = Instant::now();

    // 2. The acceptor before its handshake.
    let mut incoming = Incoming::new(&config, now);
    for piece in bytes.chunks(chunk) {
        incoming.handle_input(now, piece);
        let _ = incoming.poll_transmit();
        let _ = incoming.poll_outcome();
    }

    // 3. An established session (the peer's Welcome fed first), then the fuzz bytes.
    let mut conn = Connection::new(
        Arc::new(config),
        LocalIdentity {
            incarnation: SystemId::from_raw(1),
            listen: None,
        },
        1,
        Some("127.0.0.1:9".parse().unwrap()),
        now,
    );
    let message = WireMessage {
        sender: ActorAddress::new(SystemId::from_raw(1), 1),
        target: ActorAddress::new(SystemId::from_raw(2), 1),
        type_name: Arc::from("fuzz"),
        payload: Arc::from(&b"payload"[..]),
    };
    conn.send(now, MessageId(1), &message).unwrap();
    let link = conn.poll_connect().unwrap();
    conn.connected(now, link);
    let welcome = wire::encode_handshake(&Handshake::new(HandshakeKind::Welcome(PeerInfo {
        incarnation: SystemId::from_raw(2),
        session: 1,
        listen: None,
        max_frame: MAX as u32,
    })));
    conn.handle_input(now, &welcome);
    while conn.poll_transmit().is_some() {}
    for piece in bytes.chunks(chunk) {
        conn.handle_input(now, piece);
        while conn.poll_transmit().is_some() {}
        while conn.poll_event().is_some() {}
    }
    conn.handle_timeout(now + Duration::from_secs(3600));
    while conn.poll_event().is_some() {}
});
