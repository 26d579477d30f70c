//! Every convention message survives the wire: postcard encoding then decoding gives it back.

use std::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use thespian_conventions::{AdminRef, ConventionMessage};
use thespian_core::{Capabilities, CapabilityValue, SystemId};

fn admin() -> impl Strategy<Value = AdminRef> {
    (any::<[u8; 4]>(), any::<u16>(), any::<u64>()).prop_map(|(ip, port, id)| AdminRef {
        socket: SocketAddrV4::new(Ipv4Addr::from(ip), port),
        incarnation: SystemId::from_raw(id),
    })
}

fn value() -> impl Strategy<Value = CapabilityValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(CapabilityValue::Bool),
        any::<i64>().prop_map(CapabilityValue::Int),
        // NaN is not equal to itself; every other float must round-trip exactly.
        any::<f64>()
            .prop_filter("not NaN", |x| !x.is_nan())
            .prop_map(CapabilityValue::Float),
        ".{0,12}".prop_map(CapabilityValue::Str),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(CapabilityValue::List)
    })
}

fn capabilities() -> impl Strategy<Value = Capabilities> {
    prop::collection::vec((".{0,10}", value()), 0..6).prop_map(|pairs| pairs.into_iter().collect())
}

fn message() -> impl Strategy<Value = ConventionMessage> {
    prop_oneof![
        (admin(), capabilities(), any::<bool>()).prop_map(|(from, capabilities, first_time)| {
            ConventionMessage::Register {
                from,
                capabilities,
                first_time,
            }
        }),
        admin().prop_map(|from| ConventionMessage::DeRegister { from }),
        admin().prop_map(|from| ConventionMessage::Invite { from }),
        admin().prop_map(|from| ConventionMessage::Probe { from }),
        admin().prop_map(|from| ConventionMessage::Alive { from }),
    ]
}

/// The same 256 cases on every run.
fn config() -> ProptestConfig {
    ProptestConfig {
        rng_seed: RngSeed::Fixed(0x5EED_C0DE_2024_0002),
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn postcard_round_trip(message in message()) {
        let bytes = postcard::to_stdvec(&message).expect("encodes");
        let back: ConventionMessage = postcard::from_bytes(&bytes).expect("decodes");
        prop_assert_eq!(back, message);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        // Either a message or an error value; the point is that it returns.
        let decoded = postcard::from_bytes::<ConventionMessage>(&bytes);
        if let Ok(message) = decoded {
            let again = postcard::to_stdvec(&message).expect("a decoded message encodes");
            prop_assert_eq!(postcard::from_bytes::<ConventionMessage>(&again).ok(), Some(message));
        }
    }
}
