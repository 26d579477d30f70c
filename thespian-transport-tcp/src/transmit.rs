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

/// Bytes to write to one socket, in order: owned bytes with shared payloads between them.
///
/// Built by [`Connection::poll_transmit_vectored`](crate::Connection::poll_transmit_vectored);
/// written by the driver with [`slices`](Self::slices) and [`advance`](Self::advance). A
/// transmit of owned bytes only (the usual one for small messages) allocates nothing beside
/// its buffer.
#[derive(Debug, Clone, Default)]
pub struct Transmit {
    bytes: Vec<u8>,
    /// Payloads written from where they lie, each after `bytes[..at]`, in order.
    shared: VecDeque<(usize, Arc<[u8]>)>,
    /// Bytes of `bytes` already written.
    own_written: usize,
    /// Bytes already written of the front shared payload (once `bytes` is written up to it).
    shared_written: usize,
    /// Bytes not written yet.
    remaining: usize,
    /// True once anything was written.
    started: bool,
}

/// Where a record starts in a [`Transmit`] (from [`wire::begin_record_in`](crate::wire::begin_record_in)).
#[derive(Debug, Clone, Copy)]
pub struct RecordStart {
    /// Offset of its prefix in the owned bytes.
    prefix: usize,
    /// Index of the first shared payload after it.
    shared: usize,
}

impl From<Vec<u8>> for Transmit {
    fn from(bytes: Vec<u8>) -> Transmit {
        Transmit {
            remaining: bytes.len(),
            bytes,
            ..Transmit::default()
        }
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
        self.bytes.extend_from_slice(bytes);
        self.remaining += bytes.len();
    }

    /// Appends a payload: copied when shorter than [`SHARE_MIN`], else written from where it
    /// lies.
    pub fn push_payload(&mut self, payload: &Arc<[u8]>) {
        if payload.len() < SHARE_MIN {
            self.extend_from_slice(payload);
        } else {
            self.remaining += payload.len();
            self.shared.push_back((self.bytes.len(), payload.clone()));
        }
    }

    /// Starts a record: a placeholder for its length prefix of `prefix_len` bytes, filled in
    /// by [`with_record_parts`](Self::with_record_parts).
    pub(crate) fn begin_record(&mut self, prefix_len: usize) -> RecordStart {
        const ZEROS: [u8; 8] = [0; 8];
        let start = RecordStart {
            prefix: self.bytes.len(),
            shared: self.shared.len(),
        };
        self.extend_from_slice(&ZEROS[..prefix_len]);
        start
    }

    /// Bytes of the record started at `start` after its prefix of `prefix_len` bytes.
    pub(crate) fn record_content_len(&self, start: RecordStart, prefix_len: usize) -> usize {
        let own = self.bytes.len() - start.prefix - prefix_len;
        let shared: usize = self
            .shared
            .iter()
            .skip(start.shared)
            .map(|(_, payload)| payload.len())
            .sum();
        own + shared
    }

    /// Writes the record's `prefix` and hands `f` its content as the pieces where they lie (for
    /// the MAC). Must be called before anything of the transmit is written.
    pub(crate) fn with_record_parts<R>(
        &mut self,
        start: RecordStart,
        prefix: &[u8],
        f: impl FnOnce(&[&[u8]]) -> R,
    ) -> R {
        assert!(!self.started, "a record is sealed before it is written");
        self.bytes[start.prefix..start.prefix + prefix.len()].copy_from_slice(prefix);
        let content = start.prefix + prefix.len();
        if self.shared.len() == start.shared {
            // Owned bytes only: no list of parts to build.
            return f(&[&self.bytes[content..]]);
        }
        let mut parts = Vec::with_capacity(2 * (self.shared.len() - start.shared) + 1);
        let mut own = content;
        for (at, payload) in self.shared.iter().skip(start.shared) {
            if own < *at {
                parts.push(&self.bytes[own..*at]);
                own = *at;
            }
            parts.push(&payload[..]);
        }
        if own < self.bytes.len() {
            parts.push(&self.bytes[own..]);
        }
        f(&parts)
    }

    /// Drops the record started at `start` and everything after it. Must be called before
    /// anything of the transmit is written.
    pub(crate) fn truncate(&mut self, start: RecordStart) {
        assert!(!self.started, "a record is dropped before it is written");
        self.bytes.truncate(start.prefix);
        self.shared.truncate(start.shared);
        self.remaining = self.bytes.len() + self.shared.iter().map(|(_, p)| p.len()).sum::<usize>();
    }

    /// Fills the start of `out` with the next slices to write, from the write position on;
    /// returns how many it filled.
    pub fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        let mut own = self.own_written;
        let mut skip = self.shared_written;
        for (at, payload) in &self.shared {
            if own < *at {
                if filled == out.len() {
                    return filled;
                }
                out[filled] = IoSlice::new(&self.bytes[own..*at]);
                filled += 1;
                own = *at;
            }
            if filled == out.len() {
                return filled;
            }
            out[filled] = IoSlice::new(&payload[skip..]);
            filled += 1;
            skip = 0;
        }
        if own < self.bytes.len() && filled < out.len() {
            out[filled] = IoSlice::new(&self.bytes[own..]);
            filled += 1;
        }
        filled
    }

    /// Records that the socket took `n` more bytes.
    ///
    /// Panics if `n` is more than [`remaining`](Self::remaining).
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.remaining, "advanced past the end");
        self.started |= n > 0;
        self.remaining -= n;
        while n > 0 {
            let next = self.shared.front().map_or(self.bytes.len(), |(at, _)| *at);
            if self.own_written < next {
                let take = n.min(next - self.own_written);
                self.own_written += take;
                n -= take;
                continue;
            }
            let (_, payload) = self.shared.front().expect("bytes remain");
            let left = payload.len() - self.shared_written;
            if n < left {
                self.shared_written += n;
                return;
            }
            n -= left;
            self.shared.pop_front();
            self.shared_written = 0;
        }
    }

    /// All bytes still to write, in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut slices = vec![IoSlice::new(&[]); 2 * self.shared.len() + 1];
        let filled = self.slices(&mut slices);
        let mut out = Vec::with_capacity(self.remaining);
        for slice in &slices[..filled] {
            out.extend_from_slice(slice);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_dropped_record_leaves_what_came_before() {
        let mut transmit = Transmit::from(b"before".to_vec());
        transmit.push_payload(&Arc::from(vec![1u8; SHARE_MIN]));
        let expected = transmit.to_vec();
        let start = transmit.begin_record(4);
        transmit.extend_from_slice(b"head");
        transmit.push_payload(&Arc::from(vec![2u8; 2 * SHARE_MIN]));
        transmit.extend_from_slice(b"tail");
        transmit.truncate(start);
        assert_eq!(transmit.remaining(), expected.len());
        assert_eq!(transmit.to_vec(), expected);
    }

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
                let mut slices = vec![IoSlice::new(&[]); max];
                let filled = transmit.slices(&mut slices);
                prop_assert!(filled > 0);
                // A socket that takes some of what is offered (at least a byte).
                let offered: Vec<u8> =
                    slices[..filled].iter().flat_map(|s| s.iter().copied()).collect();
                let n = (takes.next().expect("cycles") % offered.len()).max(1);
                written.extend_from_slice(&offered[..n]);
                transmit.advance(n);
            }
            prop_assert_eq!(written, expected);
        }
    }
}
