//! The bytes one transmit hands the driver, gathered without copying large payloads.
//!
//! This module exists so that a record can be written where its parts lie: the frames' small
//! bytes (record prefix, acknowledgement, data headers, small payloads, the tag) are copied into
//! one owned buffer, while a large payload stays in the message's shared buffer and is written
//! from there by one vectored write. It also keeps the write position across partial writes, so
//! the driver only asks for slices and reports how many bytes the socket took.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

/// Payloads at least this long are written from their own buffer; shorter ones are copied
/// beside the headers (an extra slice costs more than copying a few bytes).
pub const SHARE_MIN: usize = 4096;

/// At most this many slices go to one vectored write (well below every system's `IOV_MAX`).
pub const MAX_SLICES: usize = 64;

#[derive(Debug, Clone)]
enum Piece {
    /// Owned bytes `start..end` of `Transmit::bytes`.
    Own { start: usize, end: usize },
    /// A payload written from where it lies.
    Shared(Arc<[u8]>),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Own { start, end } => end - start,
            Piece::Shared(payload) => payload.len(),
        }
    }
}

/// Bytes to write to one socket, in order: owned bytes and shared payloads.
///
/// Built by [`Connection::poll_transmit_vectored`](crate::Connection::poll_transmit_vectored);
/// written by the driver with [`slices`](Self::slices) and [`advance`](Self::advance).
#[derive(Debug, Clone, Default)]
pub struct Transmit {
    bytes: Vec<u8>,
    pieces: VecDeque<Piece>,
    /// Bytes not written yet.
    remaining: usize,
    /// Bytes already written from the front piece.
    front_written: usize,
    /// True once anything was written.
    started: bool,
}

/// Where a record starts in a [`Transmit`] (from [`wire::begin_record_in`](crate::wire::begin_record_in)).
#[derive(Debug, Clone, Copy)]
pub struct RecordStart {
    /// Offset of its prefix in the owned bytes.
    prefix: usize,
    /// Index of the piece holding the prefix.
    piece: usize,
}

impl From<Vec<u8>> for Transmit {
    fn from(bytes: Vec<u8>) -> Transmit {
        let mut transmit = Transmit {
            remaining: bytes.len(),
            bytes,
            ..Transmit::default()
        };
        if transmit.remaining > 0 {
            transmit.pieces.push_back(Piece::Own {
                start: 0,
                end: transmit.remaining,
            });
        }
        transmit
    }
}

impl Transmit {
    /// Bytes still to write.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// True when nothing is left to write.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// Appends owned bytes (copied).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        self.remaining += bytes.len();
        let end = self.bytes.len();
        match self.pieces.back_mut() {
            Some(Piece::Own { end: last, .. }) if *last == start => *last = end,
            _ => self.pieces.push_back(Piece::Own { start, end }),
        }
    }

    /// Appends a payload: copied when shorter than [`SHARE_MIN`], else written from where it
    /// lies.
    pub fn push_payload(&mut self, payload: &Arc<[u8]>) {
        if payload.len() < SHARE_MIN {
            self.extend_from_slice(payload);
        } else {
            self.remaining += payload.len();
            self.pieces.push_back(Piece::Shared(payload.clone()));
        }
    }

    /// Starts a record: a placeholder for its length prefix of `prefix_len` bytes, filled in
    /// by [`record_parts`](Self::record_parts).
    pub(crate) fn begin_record(&mut self, prefix_len: usize) -> RecordStart {
        const ZEROS: [u8; 8] = [0; 8];
        self.extend_from_slice(&ZEROS[..prefix_len]);
        RecordStart {
            prefix: self.bytes.len() - prefix_len,
            piece: self.pieces.len() - 1,
        }
    }

    /// Bytes of the record started at `start` after its prefix of `prefix_len` bytes.
    pub(crate) fn record_content_len(&self, start: RecordStart, prefix_len: usize) -> usize {
        let first = match &self.pieces[start.piece] {
            Piece::Own { end, .. } => end - start.prefix - prefix_len,
            Piece::Shared(_) => unreachable!("a record starts in owned bytes"),
        };
        first
            + self
                .pieces
                .iter()
                .skip(start.piece + 1)
                .map(Piece::len)
                .sum::<usize>()
    }

    /// Writes the record's `prefix` and returns its content as the pieces where they lie, for
    /// the MAC. Must be called before anything of the transmit is written.
    pub(crate) fn record_parts(&mut self, start: RecordStart, prefix: &[u8]) -> Vec<&[u8]> {
        assert!(!self.started, "a record is sealed before it is written");
        self.bytes[start.prefix..start.prefix + prefix.len()].copy_from_slice(prefix);
        let mut parts = Vec::new();
        for (i, piece) in self.pieces.iter().enumerate().skip(start.piece) {
            let part = match piece {
                // The first piece holds the prefix itself: the content starts after it.
                Piece::Own { end, .. } if i == start.piece => {
                    &self.bytes[start.prefix + prefix.len()..*end]
                }
                Piece::Own { start, end } => &self.bytes[*start..*end],
                Piece::Shared(payload) => &payload[..],
            };
            if !part.is_empty() {
                parts.push(part);
            }
        }
        parts
    }

    /// Drops the record started at `start` and everything after it. Must be called before
    /// anything of the transmit is written.
    pub(crate) fn truncate(&mut self, start: RecordStart) {
        assert!(!self.started, "a record is dropped before it is written");
        self.pieces.truncate(start.piece + 1);
        if let Some(Piece::Own { start: first, end }) = self.pieces.back_mut() {
            *end = start.prefix;
            if *first == *end {
                self.pieces.pop_back();
            }
        }
        self.bytes.truncate(start.prefix);
        self.remaining = self.pieces.iter().map(Piece::len).sum();
    }

    /// Appends to `out` the next slices to write (at most `max` in all), from the write
    /// position on.
    pub fn slices<'a>(&'a self, out: &mut Vec<IoSlice<'a>>, max: usize) {
        for (i, piece) in self.pieces.iter().enumerate() {
            if out.len() >= max {
                break;
            }
            let skip = if i == 0 { self.front_written } else { 0 };
            let slice = match piece {
                Piece::Own { start, end } => &self.bytes[start + skip..*end],
                Piece::Shared(payload) => &payload[skip..],
            };
            out.push(IoSlice::new(slice));
        }
    }

    /// Records that the socket took `n` more bytes.
    ///
    /// Panics if `n` is more than [`remaining`](Self::remaining).
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.remaining, "advanced past the end");
        self.started |= n > 0;
        self.remaining -= n;
        while n > 0 {
            let front = self.pieces.front().expect("bytes remain");
            let left = front.len() - self.front_written;
            if n < left {
                self.front_written += n;
                return;
            }
            n -= left;
            self.pieces.pop_front();
            self.front_written = 0;
        }
    }

    /// All bytes still to write, in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut slices = Vec::new();
        self.slices(&mut slices, usize::MAX);
        let mut out = Vec::with_capacity(self.remaining);
        for slice in slices {
            out.extend_from_slice(&slice);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the pieces and however the socket splits the writes, the bytes written are
        /// the bytes appended, in order.
        #[test]
        fn partial_writes_write_everything_in_order(
            parts in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..6000)), 0..8),
            takes in proptest::collection::vec(0usize..9000, 1..20),
            max in 1usize..5,
        ) {
            let mut transmit = Transmit::from(b"head".to_vec());
            let mut expected = b"head".to_vec();
            for (shared, bytes) in &parts {
                if *shared {
                    transmit.push_payload(&Arc::from(&bytes[..]));
                } else {
                    transmit.extend_from_slice(bytes);
                }
                expected.extend_from_slice(bytes);
            }
            prop_assert_eq!(transmit.remaining(), expected.len());
            prop_assert_eq!(transmit.to_vec(), expected.clone());
            let mut written = Vec::new();
            let mut takes = takes.into_iter().cycle();
            while !transmit.is_empty() {
                let mut slices = Vec::new();
                transmit.slices(&mut slices, max);
                prop_assert!(slices.len() <= max);
                // A socket that takes some of what is offered (at least a byte).
                let offered: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
                let n = (takes.next().expect("cycles") % offered.len()).max(1);
                written.extend_from_slice(&offered[..n]);
                transmit.advance(n);
            }
            prop_assert_eq!(written, expected);
        }
    }
}
