//! The handshake machines end to end: both sides agree on keys exactly when they share the
//! secret, and any change to what crosses the wire makes the handshake fail.

use proptest::prelude::*;
use thespian_auth::{AuthError, Initiator, Nonce, Responder, Secret, SessionKeys};

const PROTOCOL: &str = "thespian test 1";

fn secret(byte: u8) -> Secret {
    Secret::from_text(&[byte; 32]).expect("long enough")
}

/// Runs a whole handshake; returns (initiator's keys, responder's keys) or the first error.
fn run(
    initiator_secret: &Secret,
    responder_secret: &Secret,
    nonces: (u8, u8),
) -> Result<(SessionKeys, SessionKeys), (bool, AuthError)> {
    let initiator = Initiator::new(
        initiator_secret,
        PROTOCOL,
        11,
        Nonce([nonces.0; 32]),
        b"initiator listens on 1".to_vec(),
    );
    let (responder, welcome) = Responder::new(
        responder_secret,
        PROTOCOL,
        22,
        Nonce([nonces.1; 32]),
        b"responder listens on 2",
        initiator.hello(),
        b"initiator listens on 1",
    )
    .map_err(|e| (false, e))?;
    let (confirm, initiator_keys) = initiator
        .finish(&welcome, b"responder listens on 2")
        .map_err(|e| (true, e))?;
    let responder_keys = responder.finish(&confirm).map_err(|e| (false, e))?;
    Ok((initiator_keys, responder_keys))
}

fn keys_match(i: &SessionKeys, r: &SessionKeys) -> bool {
    let tag = i.send.tag(0, &[b"frame"]);
    let back = r.send.tag(0, &[b"frame"]);
    r.receive.verify(0, &[b"frame"], &tag)
        && i.receive.verify(0, &[b"frame"], &back)
        && tag != back
        && !r.send.verify(0, &[b"frame"], &tag)
}

#[test]
fn a_shared_secret_gives_both_sides_the_same_keys() {
    let (i, r) = run(&secret(1), &secret(1), (3, 4)).expect("handshake");
    assert!(keys_match(&i, &r));
}

#[test]
fn another_secret_fails_at_the_initiator_with_a_clear_error() {
    let (initiator_side, error) = run(&secret(1), &secret(2), (3, 4)).expect_err("refused");
    assert!(
        initiator_side,
        "the initiator checks the responder's proof first"
    );
    assert_eq!(error, AuthError::WrongSecret);
    assert_eq!(
        error.to_string(),
        "authentication failed: this system uses another secret"
    );
}

#[test]
fn a_forged_confirm_fails_at_the_responder() {
    let initiator = Initiator::new(&secret(1), PROTOCOL, 1, Nonce([1; 32]), Vec::new());
    let (responder, welcome) = Responder::new(
        &secret(1),
        PROTOCOL,
        2,
        Nonce([2; 32]),
        b"",
        initiator.hello(),
        b"",
    )
    .expect("welcome");
    // Reflection: the responder's own proof is not a valid initiator proof.
    let reflected = thespian_auth::Confirm {
        proof: welcome.proof,
    };
    assert_eq!(
        responder.finish(&reflected).expect_err("refused"),
        AuthError::WrongSecret
    );
}

#[test]
fn a_proof_from_another_session_is_worthless() {
    let first = Initiator::new(&secret(1), PROTOCOL, 1, Nonce([1; 32]), Vec::new());
    let (_, old_welcome) = Responder::new(
        &secret(1),
        PROTOCOL,
        2,
        Nonce([2; 32]),
        b"",
        first.hello(),
        b"",
    )
    .expect("welcome");
    // A replayed welcome against a handshake with a fresh initiator nonce.
    let second = Initiator::new(&secret(1), PROTOCOL, 1, Nonce([9; 32]), Vec::new());
    assert_eq!(
        second.finish(&old_welcome, b"").expect_err("refused"),
        AuthError::WrongSecret
    );
}

#[test]
fn another_transport_protocol_cannot_reuse_a_proof() {
    let initiator = Initiator::new(&secret(1), "thespian tcp 2", 1, Nonce([1; 32]), Vec::new());
    let (_, welcome) = Responder::new(
        &secret(1),
        "thespian udp 2",
        2,
        Nonce([2; 32]),
        b"",
        initiator.hello(),
        b"",
    )
    .expect("welcome");
    assert!(initiator.finish(&welcome, b"").is_err());
}

#[test]
fn debug_output_never_holds_key_material() {
    let (i, _) = run(&secret(1), &secret(1), (3, 4)).expect("handshake");
    let text = format!("{:?} {:?}", i, secret(1));
    assert!(text.contains("redacted"), "{text}");
    assert!(!text.contains("[1, 1"), "{text}");
}

proptest! {
    /// Any change to any field of the welcome, or to either context, fails the handshake.
    #[test]
    fn tampering_with_the_welcome_fails(
        which in 0usize..5,
        flip in any::<u8>().prop_filter("a real change", |b| *b != 0),
        at in 0usize..32,
        seed in any::<[u8; 2]>(),
    ) {
        let initiator = Initiator::new(&secret(5), PROTOCOL, 7, Nonce([seed[0]; 32]), b"ci".to_vec());
        let (_, mut welcome) = Responder::new(
            &secret(5), PROTOCOL, 8, Nonce([seed[1]; 32]), b"cr", initiator.hello(), b"ci",
        ).expect("welcome");
        let mut responder_context = b"cr".to_vec();
        match which {
            0 => welcome.incarnation ^= u64::from(flip),
            1 => welcome.nonce.0[at] ^= flip,
            2 => welcome.proof[at] ^= flip,
            3 => responder_context.push(flip),
            _ => responder_context[0] ^= flip,
        }
        prop_assert_eq!(
            initiator.finish(&welcome, &responder_context).expect_err("tampered"),
            AuthError::WrongSecret
        );
    }

    /// Handshake messages survive postcard (the transports' encoding) and arbitrary bytes never
    /// decode into something that panics the machines.
    #[test]
    fn arbitrary_bytes_never_panic_the_machines(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(hello) = postcard::from_bytes::<thespian_auth::Hello>(&bytes) {
            let _ = Responder::new(&secret(1), PROTOCOL, 1, Nonce([0; 32]), b"", &hello, &bytes);
        }
        if let Ok(welcome) = postcard::from_bytes::<thespian_auth::Welcome>(&bytes) {
            let initiator = Initiator::new(&secret(1), PROTOCOL, 1, Nonce([0; 32]), Vec::new());
            prop_assert!(initiator.finish(&welcome, &bytes).is_err());
        }
        if let Ok(confirm) = postcard::from_bytes::<thespian_auth::Confirm>(&bytes) {
            let initiator = Initiator::new(&secret(1), PROTOCOL, 1, Nonce([0; 32]), Vec::new());
            let (responder, _) = Responder::new(
                &secret(1), PROTOCOL, 2, Nonce([1; 32]), b"", initiator.hello(), b"",
            ).expect("welcome");
            prop_assert!(responder.finish(&confirm).is_err());
        }
    }
}

#[test]
fn derived_nonces_depend_on_the_key_and_every_part_and_its_boundaries() {
    let key = Nonce([3; 32]);
    let n = Nonce::derive(&key, &[b"label", b"abc", b"def"]);
    assert_eq!(n, Nonce::derive(&key, &[b"label", b"abc", b"def"]));
    assert_ne!(
        n,
        Nonce::derive(&Nonce([4; 32]), &[b"label", b"abc", b"def"])
    );
    assert_ne!(n, Nonce::derive(&key, &[b"label", b"abc", b"deF"]));
    assert_ne!(n, Nonce::derive(&key, &[b"label", b"abcd", b"ef"]));
    assert_ne!(n, Nonce::derive(&key, &[b"label", b"abc"]));
    assert_ne!(n.0, key.0);
}
