//! Fuzzes everything in `thespian-transport-tcp` that reads bytes from the network: the frame
//! decoder and the link's frame reader (under arbitrary splits of the input, bounded as a
//! record), the handshake and frame-body decoders, the record check and the splitting of a
//! record into frames, the pre-handshake acceptor (`Incoming`, fresh and after its `Welcome`)
//! and an authenticated session (`Connection`), fed both raw bytes (which fail authentication)
//! and records sealed with the session's keys (which reach the record splitter and the frame
//! decoder behind the check): some records hold the fuzz bytes as one frame, some as their raw
//! content.
//! None of them may panic, and the decoder must never return a record above its maximum.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use thespian_auth::{Nonce, Responder, Secret};
use thespian_core::{ActorAddress, SystemId};
use thespian_transport_tcp::frame::{encode_frame, FrameReader};
use thespian_transport_tcp::wire::{self, Handshake, HandshakeKind, PeerInfo};
use thespian_transport_tcp::{
    Answer, Config, Connection, FrameDecoder, Incoming, IncomingOutcome, LocalIdentity,
    MessageId, WireMessage,
};

const MAX: usize = 4096;

fn secret() -> Secret {
    Secret::from_text(b"the secret of the fuzzed system").unwrap()
}

fn identity(incarnation: u64) -> LocalIdentity {
    LocalIdentity {
        incarnation: SystemId::from_raw(incarnation),
        listen: None,
        secret: secret(),
    }
}

fn info(incarnation: u64) -> PeerInfo {
    PeerInfo {
        incarnation: SystemId::from_raw(incarnation),
        session: 1,
        listen: None,
        max_frame: MAX as u32,
    }
}

fn one_body(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = FrameDecoder::new(usize::MAX);
    let mut input = bytes;
    decoder.decode(&mut input).ok().flatten()
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split % 64) + 1;

    // 1. Records (and handshake frames) and their bodies.
    let mut decoder = FrameDecoder::new(wire::record_limit(MAX));
    let (_, keys) = session(split);
    'frames: for piece in bytes.chunks(chunk) {
        let mut input = piece;
        loop {
            match decoder.decode_borrowed(&mut input) {
                Ok(Some(body)) => {
                    assert!(body.len() <= wire::record_limit(MAX));
                    let _ = wire::decode_handshake(&body, wire::PROTOCOL_VERSION);
                    let _ = wire::decode_frame(&body);
                    assert!(wire::open(&body, &keys.receive, 0).is_err());
                    if let Ok(frames) = wire::frames(&body, MAX) {
                        for frame in frames {
                            assert!(frame.len() <= MAX);
                            let _ = wire::decode_frame(frame);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => break 'frames,
            }
        }
    }

    // 1b. The reader that owns its buffer (the link's), read in pieces of `chunk` bytes at
    // most: the same frames, never one above its maximum.
    let mut reader = FrameReader::new(wire::record_limit(MAX));
    let mut input = bytes;
    'reads: while !input.is_empty() {
        let space = reader.space(chunk);
        let n = space.len().min(chunk).min(input.len());
        space[..n].copy_from_slice(&input[..n]);
        reader.filled(n);
        input = &input[n..];
        loop {
            match reader.next_frame() {
                Ok(Some(range)) => assert!(range.len() <= wire::record_limit(MAX)),
                Ok(None) => break,
                Err(_) => break 'reads,
            }
        }
    }

    let config = Config {
        max_frame: MAX,
        ..Config::default()
    };
    let now = Instant::now();

    // 2. The acceptor before its handshake: fresh, and after a genuine Hello and its Welcome.
    let mut incoming = Incoming::new(&config, now);
    for piece in bytes.chunks(chunk) {
        incoming.handle_input(now, piece);
        let _ = incoming.poll_transmit();
        let _ = incoming.poll_outcome();
    }
    let acceptor = Connection::new(Arc::new(config.clone()), identity(1), 1, None, now);
    let mut incoming = Incoming::new(&config, now);
    let hello = thespian_auth::Initiator::new(
        &secret(),
        wire::AUTH_PROTOCOL,
        2,
        Nonce([split; 32]),
        wire::peer_context(&info(2)),
    );
    incoming.handle_input(
        now,
        &wire::encode_handshake(&Handshake::new(HandshakeKind::Hello {
            auth: hello.hello().clone(),
            info: info(2),
        })),
    );
    if let Some(IncomingOutcome::Hello(h)) = incoming.poll_outcome() {
        if let Answer::Welcome(w) = acceptor.answer(&h, Nonce([3; 32])) {
            incoming.welcome(w);
        }
    }
    let _ = incoming.poll_transmit();
    for piece in bytes.chunks(chunk) {
        incoming.handle_input(now, piece);
        let _ = incoming.poll_transmit();
        let _ = incoming.poll_outcome();
    }

    // 3. An authenticated session (the peer's genuine Welcome fed first), then the fuzz bytes:
    //    once as they are, once cut into records sealed with the peer's key.
    for sealed in [false, true] {
        let mut conn = Connection::new(
            Arc::new(config.clone()),
            identity(1),
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
        conn.connected(now, link, Nonce([split; 32]));
        let Some(hello_bytes) = conn.poll_transmit() else {
            return;
        };
        let Some(body) = one_body(&hello_bytes) else {
            return;
        };
        let Ok(Handshake {
            kind: HandshakeKind::Hello { auth, info: theirs },
            ..
        }) = wire::decode_handshake(&body, wire::PROTOCOL_VERSION)
        else {
            return;
        };
        let Ok((responder, welcome)) = Responder::new(
            &secret(),
            wire::AUTH_PROTOCOL,
            2,
            Nonce([5; 32]),
            &wire::peer_context(&info(2)),
            &auth,
            &wire::peer_context(&theirs),
        ) else {
            return;
        };
        conn.handle_input(
            now,
            &wire::encode_handshake(&Handshake::new(HandshakeKind::Welcome {
                auth: welcome,
                info: info(2),
            })),
        );
        // The session's Confirm gives the peer's side of its keys.
        let mut written = Vec::new();
        while let Some(b) = conn.poll_transmit() {
            written.extend_from_slice(&b);
        }
        let Some(body) = one_body(&written) else {
            return;
        };
        let Ok(Handshake {
            kind: HandshakeKind::Confirm(confirm),
            ..
        }) = wire::decode_handshake(&body, wire::PROTOCOL_VERSION)
        else {
            return;
        };
        let Ok(peer_keys) = responder.finish(&confirm) else {
            return;
        };
        let input = if sealed {
            let mut out = Vec::new();
            for (counter, piece) in bytes.chunks(chunk).enumerate() {
                let start = wire::begin_record(&mut out);
                if piece.first().is_some_and(|b| b & 1 == 1) {
                    // The piece is the record's content: its own idea of frames.
                    wire::push_frame(&mut out, &[piece]);
                } else {
                    // The piece is one frame's body.
                    let mut frame = Vec::new();
                    encode_frame(&mut frame, piece, usize::MAX).expect("a chunk is small");
                    wire::push_frame(&mut out, &[&frame]);
                }
                wire::seal_record(&mut out, start, &peer_keys.send, counter as u64);
            }
            out
        } else {
            bytes.to_vec()
        };
        for piece in input.chunks(chunk) {
            conn.handle_input(now, piece);
            while conn.poll_transmit().is_some() {}
            while conn.poll_event().is_some() {}
        }
        conn.handle_timeout(now + Duration::from_secs(3600));
        while conn.poll_event().is_some() {}
    }
});

/// Both sides' keys of a session of the fuzzed system.
fn session(seed: u8) -> (thespian_auth::SessionKeys, thespian_auth::SessionKeys) {
    let initiator = thespian_auth::Initiator::new(
        &secret(),
        wire::AUTH_PROTOCOL,
        1,
        Nonce([seed; 32]),
        vec![1],
    );
    let (responder, welcome) = Responder::new(
        &secret(),
        wire::AUTH_PROTOCOL,
        2,
        Nonce([2; 32]),
        &[2],
        initiator.hello(),
        &[1],
    )
    .unwrap();
    let (confirm, i_keys) = initiator.finish(&welcome, &[2]).unwrap();
    (i_keys, responder.finish(&confirm).unwrap())
}
