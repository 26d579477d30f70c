//! The preamble of the transports' wire formats: four bytes of magic, then the protocol version
//! (a postcard varint), checked before anything else in the bytes is decoded.
//!
//! This module exists so that both transports answer a stranger's bytes the same way: what does
//! not start with the transport's magic is not a thespian peer, and a peer of another protocol
//! version is told apart from a broken one. Each transport keeps its own magic, its own error
//! type (converted from [`PreambleError`]) and its own texts. Nothing here panics, whatever the
//! bytes.

use std::fmt;

/// Length of the magic.
pub const MAGIC_LEN: usize = 4;

/// Why bytes do not start with an acceptable preamble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreambleError {
    /// Fewer bytes than the magic.
    Short {
        /// How many there were.
        len: usize,
    },
    /// The bytes do not start with the expected magic: not a thespian peer.
    BadMagic {
        /// The four bytes found instead.
        found: [u8; MAGIC_LEN],
    },
    /// No valid protocol version after the magic.
    BadVersion(String),
    /// The peer speaks another protocol version ([`check`] only).
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
}

impl fmt::Display for PreambleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreambleError::Short { len } => write!(f, "{len} bytes is too short for a preamble"),
            PreambleError::BadMagic { found } => {
                write!(f, "magic {:?}", String::from_utf8_lossy(found))
            }
            PreambleError::BadVersion(e) => write!(f, "protocol version: {e}"),
            PreambleError::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: we speak version {ours}, the peer speaks version {theirs}"
            ),
        }
    }
}

impl std::error::Error for PreambleError {}

/// Reads the preamble at the start of `bytes`: the magic must be `magic`; returns the version
/// and the bytes after it.
pub fn read(bytes: &[u8], magic: [u8; MAGIC_LEN]) -> Result<(u16, &[u8]), PreambleError> {
    let Some(head) = bytes.first_chunk::<MAGIC_LEN>() else {
        return Err(PreambleError::Short { len: bytes.len() });
    };
    if *head != magic {
        return Err(PreambleError::BadMagic { found: *head });
    }
    postcard::take_from_bytes(&bytes[MAGIC_LEN..])
        .map_err(|e| PreambleError::BadVersion(e.to_string()))
}

/// [`read`], and the version must be `ours`; returns the bytes after the preamble.
pub fn check(bytes: &[u8], magic: [u8; MAGIC_LEN], ours: u16) -> Result<&[u8], PreambleError> {
    let (theirs, rest) = read(bytes, magic)?;
    if theirs != ours {
        return Err(PreambleError::VersionMismatch { ours, theirs });
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = *b"TEST";

    #[test]
    fn reads_what_postcard_wrote() {
        let mut bytes = postcard::to_allocvec(&(MAGIC, 300u16)).unwrap();
        bytes.push(7);
        assert_eq!(read(&bytes, MAGIC), Ok((300, &[7u8][..])));
        assert_eq!(check(&bytes, MAGIC, 300), Ok(&[7u8][..]));
        assert_eq!(
            check(&bytes, MAGIC, 2),
            Err(PreambleError::VersionMismatch {
                ours: 2,
                theirs: 300
            })
        );
    }

    #[test]
    fn strangers_and_scraps_are_told_apart() {
        assert_eq!(
            read(b"GET / HTTP/1.1", MAGIC),
            Err(PreambleError::BadMagic { found: *b"GET " })
        );
        assert_eq!(read(b"TE", MAGIC), Err(PreambleError::Short { len: 2 }));
        assert!(matches!(
            read(b"TEST", MAGIC),
            Err(PreambleError::BadVersion(_))
        ));
        // A varint longer than a u16 is no version.
        assert!(matches!(
            read(b"TEST\xff\xff\xff\x01", MAGIC),
            Err(PreambleError::BadVersion(_))
        ));
    }
}
