//! Property tests of the message boundary: any message value survives the wire form
//! (`Payload::to_wire` → `Payload::from_wire` → `get`/`take`, and `Payload`'s own serde form),
//! and any bytes under any wire name decode to a value or an error, never a panic.

use std::time::Duration;

use proptest::prelude::*;
use thespian_core::{
    ActorAddress, ActorExitRequest, ActorStatus, ChildActorExited, DeadEnvelope, Message,
    MessageError, Payload, PoisonMessage, SystemId, WakeupMessage,
};

/// Checks every way a `T` can cross the wire and come back equal.
fn round_trips<T: Message + PartialEq>(value: T) -> Result<(), TestCaseError> {
    let payload = Payload::new(value.clone());
    prop_assert_eq!(payload.type_name(), T::wire_name());
    let (name, bytes) = payload.to_wire().expect("a message encodes");
    prop_assert_eq!(&*name, &*T::wire_name());
    prop_assert_eq!(&*payload.encode().expect("encodes"), &*bytes);

    let wire = Payload::from_wire(name.clone(), bytes.clone());
    prop_assert!(wire.has_type::<T>());
    prop_assert!(wire.is::<T>());
    prop_assert_eq!(wire.get::<T>().expect("decodes"), &value);
    prop_assert_eq!(wire.get::<T>().expect("decodes again"), &value);
    prop_assert!(wire == payload);
    let _ = format!("{wire:?}");
    // Re-encoding a wire payload gives back the same bytes (forwarding undecoded).
    prop_assert_eq!(&*wire.clone().to_wire().expect("re-encodes").1, &*bytes);

    let taken = Payload::from_wire(name, bytes).take::<T>().expect("takes");
    prop_assert_eq!(&taken, &value);
    prop_assert_eq!(payload.clone().take::<T>().expect("takes"), value.clone());

    // The payload's own serde form (how it travels inside other messages).
    let encoded = postcard::to_allocvec(&payload).expect("a payload serialises");
    let decoded: Payload = postcard::from_bytes(&encoded).expect("and deserialises");
    prop_assert_eq!(decoded.get::<T>().expect("decodes"), &value);
    prop_assert!(decoded == payload);

    // Inside a system message, too.
    let poison = PoisonMessage::new(payload.clone(), "details");
    let (name, bytes) = Payload::new(poison).to_wire().expect("encodes");
    let crossed = Payload::from_wire(name, bytes)
        .take::<PoisonMessage>()
        .expect("decodes");
    prop_assert_eq!(crossed.poison_message.get::<T>().expect("decodes"), &value);
    Ok(())
}

/// Decoding `bytes` as a `T` (named `name`) may fail, but only with an error value.
fn decodes_or_errs<T: Message>(name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let payload = Payload::from_wire(name, bytes.to_vec());
    let _ = format!("{payload:?}");
    let result = payload.get::<T>().map(|_| ());
    if name != T::wire_name() {
        prop_assert!(
            matches!(result, Err(MessageError::WrongType { .. })),
            "{:?}",
            result
        );
    } else if let Err(e) = &result {
        prop_assert!(matches!(e, MessageError::Decode { .. }), "{:?}", e);
        let _ = e.to_string();
    }
    prop_assert_eq!(payload.is::<T>(), result.is_ok());
    let _ = format!("{payload:?}");
    let _ = payload.clone().to_wire();
    match payload.take::<T>() {
        Ok(value) => {
            prop_assert!(result.is_ok());
            let _ = format!("{value:?}");
        }
        Err(e) => {
            prop_assert!(result.is_err());
            let back = e.into_inner();
            prop_assert_eq!(&*back.type_name(), name);
            prop_assert_eq!(&*back.encode().expect("the bytes are kept"), bytes);
        }
    }
    Ok(())
}

/// Tries `bytes` under `name` as every type of the suite.
fn decode_all(name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    decodes_or_errs::<String>(name, bytes)?;
    decodes_or_errs::<bool>(name, bytes)?;
    decodes_or_errs::<char>(name, bytes)?;
    decodes_or_errs::<u8>(name, bytes)?;
    decodes_or_errs::<u32>(name, bytes)?;
    decodes_or_errs::<u64>(name, bytes)?;
    decodes_or_errs::<i64>(name, bytes)?;
    decodes_or_errs::<i128>(name, bytes)?;
    decodes_or_errs::<f64>(name, bytes)?;
    decodes_or_errs::<Vec<u8>>(name, bytes)?;
    decodes_or_errs::<Vec<String>>(name, bytes)?;
    decodes_or_errs::<Vec<Vec<u32>>>(name, bytes)?;
    decodes_or_errs::<Option<String>>(name, bytes)?;
    decodes_or_errs::<(String, u32)>(name, bytes)?;
    decodes_or_errs::<(u8, i64, String, bool)>(name, bytes)?;
    decodes_or_errs::<Vec<Option<(u16, bool)>>>(name, bytes)?;
    decodes_or_errs::<ActorExitRequest>(name, bytes)?;
    decodes_or_errs::<ChildActorExited>(name, bytes)?;
    decodes_or_errs::<PoisonMessage>(name, bytes)?;
    decodes_or_errs::<DeadEnvelope>(name, bytes)?;
    decodes_or_errs::<WakeupMessage>(name, bytes)?;
    decodes_or_errs::<ActorStatus>(name, bytes)?;
    Ok(())
}

fn wire_names() -> Vec<String> {
    fn n<T: Message>() -> String {
        T::wire_name().into_owned()
    }
    vec![
        n::<String>(),
        n::<bool>(),
        n::<char>(),
        n::<u8>(),
        n::<u32>(),
        n::<u64>(),
        n::<i64>(),
        n::<i128>(),
        n::<f64>(),
        n::<Vec<u8>>(),
        n::<Vec<String>>(),
        n::<Vec<Vec<u32>>>(),
        n::<Option<String>>(),
        n::<(String, u32)>(),
        n::<(u8, i64, String, bool)>(),
        n::<Vec<Option<(u16, bool)>>>(),
        n::<ActorExitRequest>(),
        n::<ChildActorExited>(),
        n::<PoisonMessage>(),
        n::<DeadEnvelope>(),
        n::<WakeupMessage>(),
        n::<ActorStatus>(),
    ]
}

fn address() -> impl Strategy<Value = ActorAddress> {
    (any::<u64>(), any::<u64>()).prop_map(|(s, id)| ActorAddress::new(SystemId::from_raw(s), id))
}

proptest! {
    #[test]
    fn strings_round_trip(v in any::<String>()) {
        round_trips(v)?;
    }

    #[test]
    fn integers_round_trip(
        a in any::<u8>(),
        b in any::<u32>(),
        c in any::<u64>(),
        d in any::<i64>(),
        e in any::<i128>(),
        f in any::<bool>(),
        g in any::<char>(),
    ) {
        round_trips(a)?;
        round_trips(b)?;
        round_trips(c)?;
        round_trips(d)?;
        round_trips(e)?;
        round_trips(f)?;
        round_trips(g)?;
    }

    #[test]
    fn floats_round_trip(x in proptest::num::f64::NORMAL | proptest::num::f64::ZERO) {
        round_trips(x)?;
    }

    #[test]
    fn bytes_round_trip(v in proptest::collection::vec(any::<u8>(), 0..2048)) {
        round_trips(v)?;
    }

    #[test]
    fn tuples_round_trip(
        pair in (any::<String>(), any::<u32>()),
        quad in (any::<u8>(), any::<i64>(), any::<String>(), any::<bool>()),
    ) {
        round_trips(pair)?;
        round_trips(quad)?;
    }

    #[test]
    fn options_round_trip(a in any::<Option<String>>(), b in any::<Option<u32>>()) {
        round_trips(a)?;
        round_trips(b)?;
    }

    #[test]
    fn nested_vecs_round_trip(
        a in proptest::collection::vec(proptest::collection::vec(any::<u32>(), 0..8), 0..8),
        b in proptest::collection::vec(any::<String>(), 0..8),
        c in proptest::collection::vec(any::<Option<(u16, bool)>>(), 0..16),
    ) {
        round_trips(a)?;
        round_trips(b)?;
        round_trips(c)?;
    }

    #[test]
    fn system_messages_round_trip(
        child in address(),
        dead in address(),
        text in any::<String>(),
        delay in any::<u64>(),
        tag in any::<Option<u32>>(),
        recursive in any::<bool>(),
    ) {
        round_trips(ChildActorExited::new(child))?;
        round_trips(DeadEnvelope::new(dead, Payload::new(text.clone())))?;
        round_trips(PoisonMessage::new(Payload::new(text), "details"))?;
        let wakeup = WakeupMessage::new(Duration::from_nanos(delay), tag.map(Payload::new));
        round_trips(wakeup)?;
        let exit = if recursive { ActorExitRequest::new() } else { ActorExitRequest::non_recursive() };
        let (name, bytes) = Payload::new(exit).to_wire().expect("encodes");
        let back = Payload::from_wire(name, bytes).take::<ActorExitRequest>().expect("decodes");
        prop_assert_eq!(back.is_recursive(), recursive);
    }

    #[test]
    fn random_bytes_under_known_names_never_panic(
        which in 0usize..22,
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let names = wire_names();
        prop_assert_eq!(names.len(), 22);
        decode_all(&names[which], &bytes)?;
    }

    #[test]
    fn random_bytes_under_random_names_never_panic(
        name in any::<String>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        decode_all(&name, &bytes)?;
    }

    #[test]
    fn random_payload_serde_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(payload) = postcard::from_bytes::<Payload>(&bytes) {
            let _ = format!("{payload:?}");
            let name = payload.type_name().into_owned();
            decode_all(&name, &payload.encode().expect("wire bytes are kept"))?;
            let _ = payload.get::<String>();
            let _ = payload.is_system();
            let again = postcard::to_allocvec(&payload).expect("re-serialises");
            let twice: Payload = postcard::from_bytes(&again).expect("and back");
            prop_assert_eq!(twice.type_name(), payload.type_name());
        }
        // Payloads nested in system messages, from random bytes too.
        let _ = postcard::from_bytes::<PoisonMessage>(&bytes).map(|p| format!("{p:?}"));
        let _ = postcard::from_bytes::<DeadEnvelope>(&bytes).map(|d| format!("{d:?}"));
    }
}

/// A message whose hand-written encoding grows by one byte each time it is serialised, so the
/// size measured before encoding is never the size encoded.
#[derive(Debug, Default)]
struct Growing(std::sync::atomic::AtomicUsize);

impl Clone for Growing {
    fn clone(&self) -> Growing {
        Growing(std::sync::atomic::AtomicUsize::new(
            self.0.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }
}

impl serde::Serialize for Growing {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        serializer.collect_seq(std::iter::repeat_n(7u8, n))
    }
}

impl<'de> serde::Deserialize<'de> for Growing {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Growing, D::Error> {
        let bytes: Vec<u8> = serde::Deserialize::deserialize(deserializer)?;
        Ok(Growing(std::sync::atomic::AtomicUsize::new(bytes.len())))
    }
}

thespian_core::message!(Growing);

#[test]
fn an_encoding_that_changes_between_passes_is_still_whole() {
    let payload = Payload::new(Growing::default());
    for _ in 0..3 {
        let (_, bytes) = payload.to_wire().expect("encodes");
        let length = bytes[0] as usize;
        assert_eq!(bytes.len(), 1 + length, "the bytes are one whole encoding");
        assert!(bytes[1..].iter().all(|&b| b == 7));
    }
}
