//! Property tests of the typed layer's reading of replies: `Envelope::reply_as` gives the value
//! exactly when the reply is of the asked type (in-process or from the wire), tells a returned
//! `PoisonMessage` apart from any other type, and hands a mismatched envelope back untouched.
//! Also: an address is a message that survives the wire, and derived wire names are full paths.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use thespian_core::{
    ActorAddress, Envelope, Message, Payload, PoisonMessage, RequestError, SystemId,
};

/// A reply as it may arrive.
#[derive(Clone, Debug)]
enum Reply {
    Text(String),
    Number(u64),
    Poison(String, String),
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        any::<String>().prop_map(Reply::Text),
        any::<u64>().prop_map(Reply::Number),
        (any::<String>(), any::<String>()).prop_map(|(m, d)| Reply::Poison(m, d)),
    ]
}

fn payload(reply: &Reply, from_wire: bool) -> Payload {
    let local = match reply {
        Reply::Text(t) => Payload::new(t.clone()),
        Reply::Number(n) => Payload::new(*n),
        Reply::Poison(m, d) => Payload::new(PoisonMessage::new(Payload::new(m.clone()), d.clone())),
    };
    if from_wire {
        let (name, bytes) = local.to_wire().expect("encodes");
        Payload::from_wire(name, bytes)
    } else {
        local
    }
}

fn sender() -> ActorAddress {
    ActorAddress::new(SystemId::from_raw(3), 9)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reply_as_tells_the_cases_apart(reply in reply(), from_wire in any::<bool>()) {
        let envelope = Envelope::new(sender(), payload(&reply, from_wire));
        match (&reply, envelope.clone().reply_as::<String>()) {
            (Reply::Text(t), Ok(v)) => prop_assert_eq!(&v, t),
            (Reply::Poison(m, d), Err(RequestError::Poisoned { from, poison })) => {
                prop_assert_eq!(from, sender());
                prop_assert_eq!(&poison.details, d);
                prop_assert_eq!(poison.poison_message.get::<String>().expect("the request"), m);
            }
            (Reply::Number(n), Err(RequestError::WrongType { expected, envelope })) => {
                prop_assert_eq!(expected, String::wire_name());
                prop_assert_eq!(envelope.sender(), &sender());
                prop_assert_eq!(envelope.get::<u64>().expect("handed back"), n);
            }
            (reply, other) => prop_assert!(false, "{reply:?} read as String gave {other:?}"),
        }
        // Asking for the poison itself gives the poison, not an error.
        let as_poison = envelope.reply_as::<PoisonMessage>();
        prop_assert_eq!(as_poison.is_ok(), matches!(reply, Reply::Poison(..)));
    }

    #[test]
    fn an_address_is_a_message(system in any::<u64>(), id in any::<u64>()) {
        let address = ActorAddress::new(SystemId::from_raw(system >> 16), id);
        let (name, bytes) = Payload::new(address.clone()).to_wire().expect("encodes");
        prop_assert_eq!(&*name, "ActorAddress");
        let back = Envelope::new(sender(), Payload::from_wire(name, bytes));
        prop_assert_eq!(back.reply_as::<ActorAddress>().expect("decodes"), address);
    }
}

mod one {
    use super::*;

    /// One crate's `Greet`.
    #[derive(Clone, Debug, Serialize, Deserialize, thespian_core::Message)]
    pub(crate) struct Greet;
}

mod two {
    use super::*;

    /// Another's, under the same type name.
    #[derive(Clone, Debug, Serialize, Deserialize, thespian_core::Message)]
    pub(crate) struct Greet;
}

#[test]
fn derived_default_names_are_full_paths_and_never_collide() {
    assert_eq!(one::Greet::wire_name(), "typed_props::one::Greet");
    assert_eq!(two::Greet::wire_name(), "typed_props::two::Greet");
    let wire = Payload::new(one::Greet).to_wire().expect("encodes");
    assert!(!Payload::from_wire(wire.0, wire.1).is::<two::Greet>());
}

#[test]
fn std_and_system_names_are_unchanged() {
    assert_eq!(String::wire_name(), "String");
    assert_eq!(<Vec<u8>>::wire_name(), "Vec<u8>");
    assert_eq!(<(u32, String)>::wire_name(), "(u32,String)");
    assert_eq!(PoisonMessage::wire_name(), "thespian.PoisonMessage");
}
