//! Per-frame authentication: a keyed BLAKE3 tag over a counter and the frame's bytes.
//!
//! Each direction of a session has its own [`FrameKey`], derived from the handshake, so a frame
//! cannot be reflected back to its sender. The counter is the caller's: the TCP transport uses
//! the frame's index on its connection (so a replayed, dropped or reordered frame fails), the
//! UDP transport a value carried in the datagram itself.

use std::fmt;

use zeroize::Zeroize;

/// Bytes of a frame tag (128 bits: forging one takes 2^128 tries on average).
pub const TAG_LEN: usize = 16;

/// A frame's authentication tag.
pub type Tag = [u8; TAG_LEN];

/// The key that tags (or verifies) the frames of one direction of one session.
#[derive(Clone)]
pub struct FrameKey {
    key: [u8; 32],
}

impl FrameKey {
    pub(crate) fn from_bytes(key: [u8; 32]) -> FrameKey {
        FrameKey { key }
    }

    /// The tag of the frame made of `parts` (concatenated), the `counter`-th of its direction.
    pub fn tag(&self, counter: u64, parts: &[&[u8]]) -> Tag {
        self.tag_parts(counter, parts.iter().map(std::slice::from_ref))
    }

    /// The same tag as [`tag`](Self::tag) of the parts each made of `pieces` (concatenated),
    /// hashed where the pieces lie: a part need not be contiguous in memory.
    pub fn tag_pieces(&self, counter: u64, parts: &[&[&[u8]]]) -> Tag {
        self.tag_parts(counter, parts.iter().copied())
    }

    fn tag_parts<'a>(&self, counter: u64, parts: impl Iterator<Item = &'a [&'a [u8]]>) -> Tag {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(&counter.to_le_bytes());
        for pieces in parts {
            // Length-prefixed, so moving bytes from one part to the next changes the tag.
            let len: usize = pieces.iter().map(|piece| piece.len()).sum();
            hasher.update(&(len as u64).to_le_bytes());
            for piece in pieces {
                hasher.update(piece);
            }
        }
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&hasher.finalize().as_bytes()[..TAG_LEN]);
        tag
    }

    /// True when `tag` is the tag of `parts` as the `counter`-th frame. Takes the same time
    /// whichever byte differs.
    pub fn verify(&self, counter: u64, parts: &[&[u8]], tag: &[u8]) -> bool {
        tag.len() == TAG_LEN && constant_time_eq(&self.tag(counter, parts), tag)
    }
}

impl fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameKey(<redacted>)")
    }
}

impl Drop for FrameKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Compares two equally long byte strings without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_and_any_change_breaks_it() {
        let key = FrameKey::from_bytes([7; 32]);
        let tag = key.tag(3, &[b"head", b"payload"]);
        assert!(key.verify(3, &[b"head", b"payload"], &tag));
        assert!(!key.verify(4, &[b"head", b"payload"], &tag), "counter");
        assert!(!key.verify(3, &[b"head", b"payloaD"], &tag), "bytes");
        assert!(
            !key.verify(3, &[b"headp", b"ayload"], &tag),
            "part boundary"
        );
        assert!(
            !key.verify(3, &[b"head", b"payload"], &tag[..15]),
            "short tag"
        );
        let other = FrameKey::from_bytes([8; 32]);
        assert!(!other.verify(3, &[b"head", b"payload"], &tag), "key");
    }

    proptest::proptest! {
        /// Splitting a part into pieces anywhere never changes its tag.
        #[test]
        fn pieces_tag_as_their_concatenation(
            head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(0usize..3000, 0..6),
            counter in proptest::prelude::any::<u64>(),
        ) {
            let key = FrameKey::from_bytes([9; 32]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (body.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([body.len()]) {
                pieces.push(&body[start..cut]);
                start = cut;
            }
            let whole = key.tag(counter, &[&head, &body]);
            proptest::prop_assert_eq!(key.tag_pieces(counter, &[&[&head], &pieces]), whole);
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let text = format!("{:?}", FrameKey::from_bytes([0xab; 32]));
        assert!(!text.contains("ab") && !text.contains("171"), "{text}");
    }
}
