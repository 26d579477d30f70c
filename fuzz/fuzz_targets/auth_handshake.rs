//! Fuzzes the handshake of `thespian-auth` as a peer drives it: arbitrary bytes decoded (as the
//! transports decode them, postcard) into each handshake message and fed to the machine waiting
//! for it. None may panic, and none may complete a handshake without the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thespian_auth::{Confirm, Hello, Initiator, Nonce, Responder, Secret, Welcome};

const PROTOCOL: &str = "thespian fuzz 1";

fuzz_target!(|data: &[u8]| {
    let secret = Secret::from_text(b"the fuzzed system's secret").expect("long enough");
    // A responder answering an arbitrary Hello, then an arbitrary Confirm.
    if let Ok(hello) = postcard::from_bytes::<Hello>(data) {
        if let Ok((responder, _welcome)) =
            Responder::new(&secret, PROTOCOL, 2, Nonce([2; 32]), b"r", &hello, data)
        {
            let confirm =
                postcard::from_bytes::<Confirm>(data).unwrap_or(Confirm { proof: [0; 32] });
            assert!(
                responder.finish(&confirm).is_err(),
                "a Confirm forged without the secret"
            );
        }
    }
    // An initiator checking an arbitrary Welcome.
    if let Ok(welcome) = postcard::from_bytes::<Welcome>(data) {
        let initiator = Initiator::new(&secret, PROTOCOL, 1, Nonce([1; 32]), b"i".to_vec());
        assert!(
            initiator.finish(&welcome, data).is_err(),
            "a Welcome forged without the secret"
        );
    }
});
