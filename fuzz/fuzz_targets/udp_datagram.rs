//! Fuzzes everything in `thespian-transport-udp` that reads bytes from the network: the
//! datagram decoder, and the machine's datagram handling, fresh and mid-conversation (with a
//! stream in each direction, so acknowledgements, held datagrams and restarts are reachable).
//! None of them may panic; a decoded datagram must re-encode to a decodable one.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use thespian_core::{ActorAddress, SystemId};
use thespian_transport_udp::wire::{self, Datagram, Position, Route};
use thespian_transport_udp::{Config, Machine, WireMessage, PROTOCOL_VERSION};

fuzz_target!(|data: &[u8]| {
    // 1. The decoder, and a round trip of whatever it accepts.
    if let Ok(datagram) = wire::decode(data, PROTOCOL_VERSION) {
        let again = match &datagram {
            Datagram::Data {
                from,
                to,
                header,
                payload,
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
                wire::encode_data(route, position, &message, header.ack.as_ref())
            }
            Datagram::Ack { from, to, ack } => {
                let route = Route {
                    version: PROTOCOL_VERSION,
                    from: *from,
                    to: *to,
                };
                wire::encode_ack(route, ack)
            }
            Datagram::VersionNotice { version } => wire::encode_version_notice(*version),
        };
        assert_eq!(wire::decode(&again, PROTOCOL_VERSION).unwrap(), datagram);
    }

    // 2. A fresh machine.
    let now = Instant::now();
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut fresh = Machine::new(Config::default(), SystemId::from_raw(2));
    fresh.handle_datagram(now, peer, data);
    drain(&mut fresh);

    // 3. Mid-conversation: a sends to b and b to a, both datagrams delivered, then the bytes
    // (split in up to four datagrams) arrive at a as if from b.
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
    );
    let mut a = Machine::new(Config::default(), SystemId::from_raw(1));
    let mut b = Machine::new(Config::default(), SystemId::from_raw(2));
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
    while let Some((_, bytes)) = a.poll_transmit() {
        b.handle_datagram(now, a_addr, &bytes);
    }
    while let Some((_, bytes)) = b.poll_transmit() {
        a.handle_datagram(now, b_addr, &bytes);
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
