//! The mutual challenge–response that opens every session, as a sans-IO machine.
//!
//! ```text
//!   initiator                                   responder
//!   Hello { incarnation_i, nonce_i, suite }  ──►
//!                                            ◄──  Welcome { incarnation_r, nonce_r, suite, proof_r }
//!   (checks proof_r)
//!   Confirm { proof_i }                      ──►  (checks proof_i)
//! ```
//!
//! Both proofs are keyed hashes, under a key derived from the [`Secret`], of the *transcript*:
//! the protocol name, the suite, both incarnation ids, both fresh nonces and both sides'
//! transport context (whatever the transport wants bound to the session: its listening address,
//! its frame limit). Each proof carries its role, so one side's proof is useless as the other's;
//! each nonce is fresh, so no proof is worth anything in another session. The session keys (one
//! per direction) are derived from the same transcript. Someone without the secret learns
//! nothing from a proof and cannot make one, and a handshake message changed in flight makes
//! both proofs fail.
//!
//! The machines take nonces as arguments ([`Nonce::random`] makes them from the operating
//! system) and never read the clock: the transport owns the handshake timeout.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::mac::{constant_time_eq, FrameKey};
use crate::secret::Secret;

/// Bytes of a nonce and of a proof.
const LEN: usize = 32;

/// A fresh random value each side contributes to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nonce(pub [u8; LEN]);

impl Nonce {
    /// A nonce from the operating system's random source.
    pub fn random() -> Result<Nonce, AuthError> {
        let mut bytes = [0u8; LEN];
        getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(Nonce(bytes))
    }

    /// A nonce derived from `key` (a random value the caller keeps to itself, such as a
    /// stateless responder's cookie key) and `parts`: the keyed BLAKE3 hash of the parts,
    /// each length-prefixed, so moving bytes from one part to the next changes the result.
    ///
    /// Whoever does not hold `key` can neither predict nor recompute it; whoever holds it gets
    /// the same nonce from the same parts, which is what lets a responder keep no state
    /// between its answer and the initiator's proof. Put a label among the parts so nonces
    /// derived for different purposes never coincide.
    pub fn derive(key: &Nonce, parts: &[&[u8]]) -> Nonce {
        let mut hasher = blake3::Hasher::new_keyed(&key.0);
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Nonce(*hasher.finalize().as_bytes())
    }
}

/// What a session protects. Named in the handshake so another suite can be added without a
/// protocol break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Suite {
    /// Every frame is authenticated (a MAC); payloads travel in the clear.
    Authenticated,
}

/// The initiator's first message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The initiator's incarnation id.
    pub incarnation: u64,
    /// The initiator's challenge.
    pub nonce: Nonce,
    /// The suite the initiator asks for.
    pub suite: Suite,
}

/// The responder's answer: its own challenge, and its proof that it holds the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The responder's incarnation id.
    pub incarnation: u64,
    /// The responder's challenge.
    pub nonce: Nonce,
    /// The suite of the session.
    pub suite: Suite,
    /// The responder's proof over the transcript.
    pub proof: [u8; LEN],
}

/// The initiator's proof that it holds the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    /// The initiator's proof over the transcript.
    pub proof: [u8; LEN],
}

/// Why a handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The peer's proof is wrong: it holds another secret (or the handshake was tampered with).
    WrongSecret,
    /// The peer asked for a suite this build does not have.
    UnsupportedSuite(Suite),
    /// The operating system gave no random bytes.
    Random(String),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::WrongSecret => {
                f.write_str("authentication failed: this system uses another secret")
            }
            AuthError::UnsupportedSuite(suite) => {
                write!(
                    f,
                    "authentication failed: the suite {suite:?} is not supported"
                )
            }
            AuthError::Random(e) => write!(f, "no random bytes for a handshake nonce: {e}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// The keys of an established session: one to tag what this side sends, one to verify what it
/// receives.
#[derive(Debug)]
pub struct SessionKeys {
    /// Tags this side's frames.
    pub send: FrameKey,
    /// Verifies the peer's frames.
    pub receive: FrameKey,
}

/// The key proofs and session keys are derived under: the secret, never used directly.
struct HandshakeKey([u8; LEN]);

impl HandshakeKey {
    fn of(secret: &Secret) -> HandshakeKey {
        HandshakeKey(blake3::derive_key(
            "thespian-rs 2026-12 handshake key v1",
            secret.key_material(),
        ))
    }

    fn derive(&self, label: &[u8], transcript: &[u8; LEN]) -> [u8; LEN] {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(&(label.len() as u64).to_le_bytes());
        hasher.update(label);
        hasher.update(transcript);
        *hasher.finalize().as_bytes()
    }

    fn keys(&self, transcript: &[u8; LEN], initiator: bool) -> SessionKeys {
        let i2r = FrameKey::from_bytes(self.derive(b"initiator to responder", transcript));
        let r2i = FrameKey::from_bytes(self.derive(b"responder to initiator", transcript));
        if initiator {
            SessionKeys {
                send: i2r,
                receive: r2i,
            }
        } else {
            SessionKeys {
                send: r2i,
                receive: i2r,
            }
        }
    }
}

impl Drop for HandshakeKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The hash of everything both sides said, which both proofs and the session keys cover.
fn transcript(
    protocol: &str,
    hello: &Hello,
    initiator_context: &[u8],
    welcome_incarnation: u64,
    welcome_nonce: &Nonce,
    responder_context: &[u8],
) -> [u8; LEN] {
    let mut hasher = blake3::Hasher::new_derive_key("thespian-rs 2026-12 transcript v1");
    let mut field = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(protocol.as_bytes());
    field(&[suite_code(hello.suite)]);
    field(&hello.incarnation.to_le_bytes());
    field(&hello.nonce.0);
    field(initiator_context);
    field(&welcome_incarnation.to_le_bytes());
    field(&welcome_nonce.0);
    field(responder_context);
    *hasher.finalize().as_bytes()
}

fn suite_code(suite: Suite) -> u8 {
    match suite {
        Suite::Authenticated => 0,
    }
}

/// The side that opens a session.
pub struct Initiator {
    key: HandshakeKey,
    protocol: &'static str,
    hello: Hello,
    context: Vec<u8>,
}

impl Initiator {
    /// Starts a handshake for `protocol` (a name and version of the transport, such as
    /// `"thespian tcp 2"`, so a proof made for one transport is refused by another). `context`
    /// is what this side's transport binds to the session.
    pub fn new(
        secret: &Secret,
        protocol: &'static str,
        incarnation: u64,
        nonce: Nonce,
        context: Vec<u8>,
    ) -> Initiator {
        Initiator {
            key: HandshakeKey::of(secret),
            protocol,
            hello: Hello {
                incarnation,
                nonce,
                suite: Suite::Authenticated,
            },
            context,
        }
    }

    /// The first message to send.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Checks the responder's [`Welcome`] (with the context its transport sent beside it) and
    /// returns the [`Confirm`] to send and the session's keys.
    pub fn finish(
        self,
        welcome: &Welcome,
        responder_context: &[u8],
    ) -> Result<(Confirm, SessionKeys), AuthError> {
        if welcome.suite != self.hello.suite {
            return Err(AuthError::UnsupportedSuite(welcome.suite));
        }
        let transcript = transcript(
            self.protocol,
            &self.hello,
            &self.context,
            welcome.incarnation,
            &welcome.nonce,
            responder_context,
        );
        let expected = self.key.derive(b"responder proof", &transcript);
        if !constant_time_eq(&expected, &welcome.proof) {
            return Err(AuthError::WrongSecret);
        }
        let confirm = Confirm {
            proof: self.key.derive(b"initiator proof", &transcript),
        };
        Ok((confirm, self.key.keys(&transcript, true)))
    }
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("protocol", &self.protocol)
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

/// The side that accepts a session.
pub struct Responder {
    key: HandshakeKey,
    transcript: [u8; LEN],
}

impl Responder {
    /// Answers the initiator's [`Hello`] (with the context its transport sent beside it):
    /// returns the machine that waits for the [`Confirm`], and the [`Welcome`] to send.
    pub fn new(
        secret: &Secret,
        protocol: &'static str,
        incarnation: u64,
        nonce: Nonce,
        context: &[u8],
        hello: &Hello,
        initiator_context: &[u8],
    ) -> Result<(Responder, Welcome), AuthError> {
        if hello.suite != Suite::Authenticated {
            return Err(AuthError::UnsupportedSuite(hello.suite));
        }
        let key = HandshakeKey::of(secret);
        let transcript = transcript(
            protocol,
            hello,
            initiator_context,
            incarnation,
            &nonce,
            context,
        );
        let welcome = Welcome {
            incarnation,
            nonce,
            suite: hello.suite,
            proof: key.derive(b"responder proof", &transcript),
        };
        Ok((Responder { key, transcript }, welcome))
    }

    /// Checks the initiator's [`Confirm`]; returns the session's keys.
    pub fn finish(self, confirm: &Confirm) -> Result<SessionKeys, AuthError> {
        let expected = self.key.derive(b"initiator proof", &self.transcript);
        if !constant_time_eq(&expected, &confirm.proof) {
            return Err(AuthError::WrongSecret);
        }
        Ok(self.key.keys(&self.transcript, false))
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}
