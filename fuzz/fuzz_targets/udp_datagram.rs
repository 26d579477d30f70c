//! Fuzzes everything in `thespian-transport-udp` that reads bytes from the network: the
//! datagram decoder, and the machine's datagram handling, fresh and mid-conversation (with a
//! session and a stream in each direction, so acknowledgements, held datagrams, handshake
//! messages and restarts are reachable). None of them may panic; a decoded datagram must
//! re-encode to the same datagram (data, batches and acknowledgements under a key of the
//! fuzzer's own, so only the tag differs).
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use thespian_auth::{Initiator, Nonce, Responder, SessionKeys};
use thespian_core::{ActorAddress, SystemId};
use thespian_transport_udp::wire::{self, Datagram, HandshakeRef, Kind, Position, Route, Seal};
use thespian_transport_udp::{Config, Machine, Nonces, Secret, WireMessage, PROTOCOL_VERSION};

fn secret() -> Secret {
    Secret::from_text(b"the fuzzer's shared secret").expect("long enough")
}

/// Deterministic nonces, so a crash reproduces.
fn machine(incarnation: u64) -> Machine {
    let mut n = 0u8;
    let nonces = Nonces::from_fn(move || {
        n = n.wrapping_add(1);
        let mut bytes = [n; 32];
        bytes[0] = incarnation as u8;
        Ok(Nonce(bytes))
    });
    Machine::new(
        Config::default(),
        SystemId::from_raw(incarnation),
        SocketAddr::from(([127, 0, 0, 1], 9000)),
        secret(),
        nonces,
    )
}

/// A session key of the fuzzer's own, to re-encode what it decoded.
fn key() -> &'static SessionKeys {
    static KEYS: OnceLock<SessionKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let initiator = Initiator::new(&secret(), "fuzz", 1, Nonce([1; 32]), Vec::new());
        let (_, welcome) = Responder::new(
            &secret(),
            "fuzz",
            2,
            Nonce([2; 32]),
            b"",
            initiator.hello(),
            b"",
        )
        .expect("a suite we have");
        initiator.finish(&welcome, b"").expect("same secret").1
    })
}

/// The datagram with its tag left out, for comparing a re-encoding.
fn untagged(datagram: Datagram<'_>) -> Datagram<'_> {
    let blank = wire::Mac {
        signed: &[],
        tag: &[],
    };
    match datagram {
        Datagram::Data {
            from,
            to,
            header,
            payload,
            ..
        } => Datagram::Data {
            from,
            to,
            header,
            payload,
            mac: blank,
        },
        Datagram::Batch {
            from,
            to,
            header,
            payloads,
            ..
        } => Datagram::Batch {
            from,
            to,
            header,
            payloads,
            mac: blank,
        },
        Datagram::Ack {
            from,
            to,
            counter,
            ack,
            ..
        } => Datagram::Ack {
            from,
            to,
            counter,
            ack,
            mac: blank,
        },
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. The decoder, and a round trip of whatever it accepts.
    if let Ok(datagram) = wire::decode(data, PROTOCOL_VERSION) {
        let again = match &datagram {
            Datagram::Data {
                from,
                to,
                header,
                payload,
                ..
            } => {
                let message = WireMessage {
                    sender: header.sender.clone(),
                    target: header.target.clone(),
                    type_name: Arc::from(header.type_name.as_str()),
                    payload: Arc::from(*payload),
                };
                let route = Route {
                    version: PROTOCOL_VERSION,
                    from: *from,
                    to: *to,
                };
                let position = Position {
                    stream: header.stream,
                    seq: header.seq,
                    base: header.base,
                };
                let seal = Seal {
                    key: &key().send,
                    counter: header.counter,
                };
                wire::encode_data(route, seal, position, &message, header.ack.as_ref())
            }
            Datagram::Batch {
                from,
                to,
                header,
                payloads,
                ..
            } => {
                // The decoder checked that the lengths add up to the payload bytes.
                let mut rest = *payloads;
                let messages: Vec<WireMessage> = header
                    .messages
                    .iter()
                    .map(|entry| {
                        let (payload, tail) = rest.split_at(entry.len as usize);
                        rest = tail;
                        WireMessage {
                            sender: entry.sender.clone(),
                            target: entry.target.clone(),
                            type_name: Arc::from(entry.type_name.as_str()),
                            payload: Arc::from(payload),
                        }
                    })
                    .collect();
                let refs: Vec<&WireMessage> = messages.iter().collect();
                let route = Route {
                    version: PROTOCOL_VERSION,
                    from: *from,
                    to: *to,
                };
                let position = Position {
                    stream: header.stream,
                    seq: header.first_seq,
                    base: header.base,
                };
                let seal = Seal {
                    key: &key().send,
                    counter: header.counter,
                };
                wire::encode_batch(route, seal, position, &refs, header.ack.as_ref())
            }
            Datagram::Ack {
                from,
                to,
                counter,
                ack,
                ..
            } => {
                let route = Route {
                    version: PROTOCOL_VERSION,
                    from: *from,
                    to: *to,
                };
                let seal = Seal {
                    key: &key().send,
                    counter: *counter,
                };
                wire::encode_ack(route, seal, ack)
            }
            Datagram::Handshake { from, to, kind } => {
                let route = Route {
                    version: PROTOCOL_VERSION,
                    from: *from,
                    to: *to,
                };
                let message = match kind {
                    Kind::Hello(h) => HandshakeRef::Hello(h),
                    Kind::Welcome(w) => HandshakeRef::Welcome(w),
                    Kind::Confirm(c) => HandshakeRef::Confirm(c),
                    Kind::Reject(r) => HandshakeRef::Reject(*r),
                    Kind::Data(_) | Kind::Ack(_) | Kind::Batch(_) => {
                        unreachable!("decoded as data, batch or ack")
                    }
                };
                wire::encode_handshake(route, message)
            }
            Datagram::VersionNotice { version } => wire::encode_version_notice(*version),
        };
        assert_eq!(
            untagged(wire::decode(&again, PROTOCOL_VERSION).unwrap()),
            untagged(datagram)
        );
    }

    // 2. A fresh machine.
    let now = Instant::now();
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut fresh = machine(2);
    fresh.handle_datagram(now, peer, data);
    drain(&mut fresh);

    // 3. Mid-conversation: a sends to b and b to a, both datagrams delivered, then the bytes
    // (split in up to four datagrams) arrive at a as if from b.
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
    );
    let mut a = machine(1);
    let mut b = machine(2);
    let message = WireMessage {
        sender: ActorAddress::new(SystemId::from_raw(1), 1),
        target: ActorAddress::new(SystemId::from_raw(2), 1),
        type_name: Arc::from("fuzz"),
        payload: Arc::from(&b"payload"[..]),
    };
    for _ in 0..3 {
        a.send(now, b_addr, message.clone()).unwrap();
        b.send(now, a_addr, message.clone()).unwrap();
    }
    // The handshake and the messages: a few rounds carry everything.
    for _ in 0..4 {
        while let Some((_, bytes)) = a.poll_transmit() {
            b.handle_datagram(now, a_addr, &bytes);
        }
        while let Some((_, bytes)) = b.poll_transmit() {
            a.handle_datagram(now, b_addr, &bytes);
        }
    }
    for piece in data.chunks(data.len().div_ceil(4).max(1)) {
        a.handle_datagram(now, b_addr, piece);
    }
    a.handle_datagram(now, b_addr, data);
    drain(&mut a);
    a.handle_timeout(now + Duration::from_secs(1));
    drain(&mut a);
    a.handle_timeout(now + Duration::from_secs(3600));
    drain(&mut a);
});

fn drain(machine: &mut Machine) {
    while machine.poll_transmit().is_some() {}
    while machine.poll_event().is_some() {}
    let _ = machine.poll_timeout();
}
