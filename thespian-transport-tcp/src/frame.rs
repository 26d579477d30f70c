//! Length-prefixed frames: the byte-level boundary of the TCP transport.
//!
//! TCP is a byte stream; the transport needs message boundaries. This module exists so that
//! exactly one place turns arbitrary chunks of bytes (however the kernel happens to split them)
//! into whole frames, and so that a hostile or broken peer can never make us allocate what it
//! claims: a frame is a `u32` big-endian body length followed by the body, and a length above
//! the configured maximum is an error before any body byte is buffered. [`FrameDecoder`] takes
//! bytes the caller holds; [`FrameReader`] owns the buffer a socket is read into, so a link's
//! records are never copied on their way in.
//!
//! Thespian used an ASCII decimal length and `'>'` (reference §5.1.2); a fixed 4-byte prefix is
//! simpler to bound and to parse.

use std::borrow::Cow;
use std::fmt;

/// Bytes in the length prefix of every frame.
pub const HEADER_LEN: usize = 4;

/// Default maximum frame body size: 64 MiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// The largest body a `u32` prefix can describe.
pub const ABSOLUTE_MAX_FRAME: usize = u32::MAX as usize;

/// How much body buffer is reserved up front; the rest grows as bytes actually arrive, so a
/// peer that announces a large (but allowed) frame and then stalls costs little memory.
const INITIAL_RESERVE: usize = 64 * 1024;

/// Why a byte stream could not be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A length prefix announced a body larger than the maximum.
    TooLarge {
        /// The announced (or attempted) body length.
        len: u64,
        /// The maximum in force.
        max: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max} bytes")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends one frame (prefix + `body`) to `out`.
///
/// Fails, leaving `out` untouched, when `body` is longer than `max`.
pub fn encode_frame(out: &mut Vec<u8>, body: &[u8], max: usize) -> Result<(), FrameError> {
    let max = max.min(ABSOLUTE_MAX_FRAME);
    if body.len() > max {
        return Err(FrameError::TooLarge {
            len: body.len() as u64,
            max,
        });
    }
    out.reserve(HEADER_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Writes the length prefix of a frame whose body was built in place.
///
/// `frame` must start with [`HEADER_LEN`] placeholder bytes followed by the body; the prefix is
/// filled in. Fails when the body is longer than `max`.
pub fn finish_frame(frame: &mut [u8], max: usize) -> Result<(), FrameError> {
    let max = max.min(ABSOLUTE_MAX_FRAME);
    let body = frame.len().saturating_sub(HEADER_LEN);
    if body > max {
        return Err(FrameError::TooLarge {
            len: body as u64,
            max,
        });
    }
    frame[..HEADER_LEN].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(())
}

/// A streaming frame decoder: feed it chunks, take out whole frame bodies.
///
/// ```
/// use thespian_transport_tcp::frame::{encode_frame, FrameDecoder};
/// let mut wire = Vec::new();
/// encode_frame(&mut wire, b"hello", 1024).unwrap();
/// let mut decoder = FrameDecoder::new(1024);
/// let (first, second) = wire.split_at(3);
/// let mut input = first;
/// assert_eq!(decoder.decode(&mut input).unwrap(), None);
/// let mut input = second;
/// assert_eq!(decoder.decode(&mut input).unwrap().as_deref(), Some(&b"hello"[..]));
/// ```
///
/// After an error the decoder is poisoned: every later call returns the same error, because the
/// stream has lost its frame boundaries and the connection must be closed.
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Body length of the frame being read, once its prefix is complete.
    body_len: Option<usize>,
    body: Vec<u8>,
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that rejects bodies longer than `max` bytes (capped at `u32::MAX`).
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder {
            max: max.min(ABSOLUTE_MAX_FRAME),
            header: [0; HEADER_LEN],
            header_len: 0,
            body_len: None,
            body: Vec::new(),
            error: None,
        }
    }

    /// The maximum body length accepted.
    pub fn max_frame(&self) -> usize {
        self.max
    }

    /// Changes the maximum for frames whose prefix has not been read yet.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max = max.min(ABSOLUTE_MAX_FRAME);
    }

    /// True when no partial frame is buffered (a clean frame boundary).
    pub fn is_empty(&self) -> bool {
        self.header_len == 0 && self.body_len.is_none()
    }

    /// Bytes of the partial frame buffered so far (prefix and body).
    pub fn buffered(&self) -> usize {
        self.header_len + self.body.len()
    }

    /// Bytes allocated for the partial frame: at most twice [`buffered`](Self::buffered) (plus
    /// the first 64 KiB), and never more than the frame's announced length, because the buffer
    /// grows as bytes arrive rather than to the announced length up front.
    pub fn allocated(&self) -> usize {
        self.body.capacity()
    }

    /// How many more bytes complete the prefix or, once it is read, the frame.
    pub fn wants(&self) -> usize {
        match self.body_len {
            None => HEADER_LEN - self.header_len,
            Some(len) => len - self.body.len(),
        }
    }

    /// The body length announced by the partial frame's prefix, once the prefix is complete.
    pub fn announced(&self) -> Option<usize> {
        self.body_len
    }

    /// Consumes bytes from the front of `input` and returns the next whole frame body, if one
    /// completed.
    ///
    /// Call it in a loop until it returns `Ok(None)`: then `input` is empty and every byte is
    /// either in a returned frame or buffered for the next call. On `Err` the stream is
    /// unusable; close the connection.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        Ok(self.decode_borrowed(input)?.map(Cow::into_owned))
    }

    /// As [`decode`](Self::decode), but a frame that arrives whole within one `input` is
    /// borrowed from it rather than copied; only a frame split over several inputs is buffered
    /// (and handed out owned).
    pub fn decode_borrowed<'a>(
        &mut self,
        input: &mut &'a [u8],
    ) -> Result<Option<Cow<'a, [u8]>>, FrameError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        loop {
            let len = match self.body_len {
                Some(len) => len,
                None => {
                    let want = HEADER_LEN - self.header_len;
                    let take = want.min(input.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&input[..take]);
                    self.header_len += take;
                    *input = &input[take..];
                    if self.header_len < HEADER_LEN {
                        return Ok(None);
                    }
                    let len = match announced_len(self.header, self.max) {
                        Ok(len) => len,
                        Err(error) => {
                            self.error = Some(error);
                            return Err(error);
                        }
                    };
                    self.body_len = Some(len);
                    if len == 0 {
                        return Ok(Some(Cow::Owned(self.finish())));
                    }
                    // Fast path: the whole body is already in `input`: lend it.
                    if input.len() >= len {
                        let (body, rest) = input.split_at(len);
                        *input = rest;
                        self.finish();
                        return Ok(Some(Cow::Borrowed(body)));
                    }
                    self.body = Vec::with_capacity(len.min(INITIAL_RESERVE).max(input.len()));
                    len
                }
            };
            let want = len - self.body.len();
            let take = want.min(input.len());
            // Grow geometrically (amortised copies) but never past the announced length.
            let needed = self.body.len() + take;
            if needed > self.body.capacity() {
                let target = needed.max(self.body.capacity() * 2).min(len);
                self.body.reserve_exact(target - self.body.len());
            }
            self.body.extend_from_slice(&input[..take]);
            *input = &input[take..];
            if self.body.len() == len {
                return Ok(Some(Cow::Owned(self.finish())));
            }
            if input.is_empty() {
                return Ok(None);
            }
        }
    }

    /// Resets to a frame boundary and hands out the finished body.
    fn finish(&mut self) -> Vec<u8> {
        self.header_len = 0;
        self.body_len = None;
        std::mem::take(&mut self.body)
    }
}

/// The body length a frame's prefix announces, refused above `max`.
fn announced_len(prefix: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    Ok(len)
}

/// A buffer past this size is given back when it empties (the next frames start small again).
const RETAIN: usize = 512 * 1024;

/// What a reader offers between frames at first; the offer doubles (up to the caller's chunk)
/// each time a read fills it, so a link that carries little keeps a small buffer.
const FIRST_READ: usize = 16 * 1024;

/// A frame decoder that owns the buffer the socket is read into, so that no byte is copied
/// on its way to a frame: the driver reads into [`space`](Self::space), reports how many bytes
/// came with [`filled`](Self::filled), and takes whole frames out where they lie with
/// [`next_frame`](Self::next_frame).
///
/// When a frame is in progress, `space` offers exactly the rest of it (so a frame longer than
/// one read completes at the end of the buffer and the next read starts afresh), growing the
/// buffer at most by what has arrived of the frame (or by the read size), never to the
/// announced length up front. Only the bytes of a frame cut by a read and not at the start of
/// the buffer are ever moved, once, to its start. Frames and their bounds are as for
/// [`FrameDecoder`]; after an error the reader is poisoned.
#[derive(Debug)]
pub struct FrameReader {
    max: usize,
    /// Bytes read are `buf[start..end]`; the rest is room for the next read.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// True when the last read filled all the room it was offered.
    filled_all: bool,
    error: Option<FrameError>,
}

impl FrameReader {
    /// A reader that rejects bodies longer than `max` bytes (capped at `u32::MAX`).
    pub fn new(max: usize) -> FrameReader {
        FrameReader {
            max: max.min(ABSOLUTE_MAX_FRAME),
            buf: Vec::new(),
            start: 0,
            end: 0,
            filled_all: false,
            error: None,
        }
    }

    /// The maximum body length accepted.
    pub fn max_frame(&self) -> usize {
        self.max
    }

    /// Changes the maximum for frames whose prefix has not been checked yet.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max = max.min(ABSOLUTE_MAX_FRAME);
    }

    /// True when no partial frame is buffered (a clean frame boundary).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes of the partial frame buffered (prefix and body), once every whole frame was
    /// taken out.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Bytes allocated for the buffer: at most twice the partial frame's bytes plus one read
    /// (or the 512 KiB it keeps between frames), never the announced length up front.
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// The body length announced by the partial frame's prefix, once the prefix is complete.
    pub fn announced(&self) -> Option<usize> {
        let prefix = self.buf.get(self.start..self.start + HEADER_LEN)?;
        if self.buffered() < HEADER_LEN {
            return None;
        }
        announced_len(prefix.try_into().expect("four bytes"), self.max).ok()
    }

    /// How many more bytes complete the prefix or, once it is read, the frame.
    pub fn wants(&self) -> usize {
        match self.announced() {
            Some(len) => (HEADER_LEN + len).saturating_sub(self.buffered()),
            None => HEADER_LEN - self.buffered(),
        }
    }

    /// Room to read the next bytes into: the rest of the frame in progress (at most what has
    /// arrived of it, or `chunk`, at once), else the free room of the buffer, at first 16 KiB
    /// and doubled (up to `chunk`) after each read that filled it. Never empty.
    pub fn space(&mut self, chunk: usize) -> &mut [u8] {
        let chunk = chunk.max(1);
        if self.is_empty() {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > RETAIN.max(chunk) {
                self.buf = Vec::new();
            }
        }
        let exact = match self.announced() {
            Some(_) if self.error.is_none() => {
                Some(self.wants().min(self.buffered().max(chunk)).max(1))
            }
            _ => None,
        };
        let want = exact.unwrap_or_else(|| {
            let room = self.buf.len() - self.end;
            let grown = if self.filled_all { 2 * room } else { room };
            grown.max(FIRST_READ).min(chunk)
        });
        if self.buf.len() - self.end < want {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < want {
                self.buf.resize(self.end + want, 0);
            }
        }
        match exact {
            Some(want) => &mut self.buf[self.end..self.end + want],
            None => &mut self.buf[self.end..],
        }
    }

    /// Records that `n` bytes were read into the start of [`space`](Self::space).
    ///
    /// Panics if `n` is more than the space offered.
    pub fn filled(&mut self, n: usize) {
        assert!(n <= self.buf.len() - self.end, "filled past the space");
        self.end += n;
        self.filled_all = self.end == self.buf.len();
    }

    /// Takes out the next whole frame body among the bytes read, as its place in the buffer
    /// (read it with [`frame`](Self::frame)); `Ok(None)` when only a partial frame is left.
    /// On `Err` the stream is unusable; close the connection.
    pub fn next_frame(&mut self) -> Result<Option<std::ops::Range<usize>>, FrameError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.buffered() < HEADER_LEN {
            return Ok(None);
        }
        let prefix = self.buf[self.start..self.start + HEADER_LEN]
            .try_into()
            .expect("four bytes");
        let len = match announced_len(prefix, self.max) {
            Ok(len) => len,
            Err(error) => {
                self.error = Some(error);
                return Err(error);
            }
        };
        if self.buffered() - HEADER_LEN < len {
            return Ok(None);
        }
        let body = self.start + HEADER_LEN..self.start + HEADER_LEN + len;
        self.start = body.end;
        Ok(Some(body))
    }

    /// The bytes at `range` (from [`next_frame`](Self::next_frame)), valid until the next
    /// [`space`](Self::space).
    pub fn frame(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
    }
}

/// The bound on the bytes buffered for frames in progress over many streams (all the sockets
/// of an endpoint), as a sans-IO ledger the driver consults before each read.
///
/// Each stream has a [`Share`]: the bytes its decoder buffers, and a *reservation*: the whole
/// announced length of its frame in progress, granted when the prefix is seen and the bound
/// has room for all of it. A stream may read its reservation's headroom plus what nobody has
/// committed ([`allowance`](Self::allowance)), so the sum over streams of
/// `max(reserved, buffered)` never exceeds the bound, and the buffered bytes with it. A frame
/// with a reservation always has room to complete (no deadlock among large frames); a frame
/// without one waits, unread (back-pressure), until others complete and room frees. A stream
/// that stops sending mid-frame keeps its share until its frame deadline closes it.
#[derive(Debug, Clone)]
pub struct InputBudget {
    max: usize,
    committed: usize,
    buffered: usize,
    peak: usize,
}

/// One stream's part of an [`InputBudget`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    reserved: usize,
    buffered: usize,
}

impl Share {
    fn committed(&self) -> usize {
        self.reserved.max(self.buffered)
    }

    /// Bytes its decoder buffers, as last reported.
    pub fn buffered(&self) -> usize {
        self.buffered
    }
}

impl InputBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> InputBudget {
        InputBudget {
            max,
            committed: 0,
            buffered: 0,
            peak: 0,
        }
    }

    /// How many bytes the stream with `share` may read now, at most `chunk`.
    pub fn allowance(&self, share: &Share, chunk: usize) -> usize {
        let headroom = share.reserved.saturating_sub(share.buffered);
        let free = self.max.saturating_sub(self.committed);
        headroom.saturating_add(free).min(chunk)
    }

    /// Records a stream's decoder after input: it buffers `buffered` bytes of a frame that
    /// announced `announced` body bytes (if its prefix is complete). Reserves the whole frame
    /// when it fits. Returns true when room was freed for others.
    pub fn update(&mut self, share: &mut Share, buffered: usize, announced: Option<usize>) -> bool {
        let old = share.committed();
        self.buffered = self.buffered - share.buffered + buffered;
        self.peak = self.peak.max(self.buffered);
        share.buffered = buffered;
        share.reserved = 0;
        let others = self.committed - old;
        if buffered > 0 {
            if let Some(len) = announced {
                let whole = len.saturating_add(HEADER_LEN);
                if others.saturating_add(whole) <= self.max {
                    share.reserved = whole;
                }
            }
        }
        let new = share.committed();
        self.committed = others + new;
        new < old
    }

    /// Forgets a stream (closed); true when room was freed.
    pub fn release(&mut self, share: &mut Share) -> bool {
        self.update(share, 0, None)
    }

    /// Bytes buffered now, over all streams.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// The most ever buffered at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(frames: &[Vec<u8>], max: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for f in frames {
            encode_frame(&mut wire, f, max).unwrap();
        }
        wire
    }

    /// Feeds `wire` split at `cuts` and returns the frames and the buffered remainder size.
    fn decode_split(wire: &[u8], cuts: &[usize], max: usize) -> (Vec<Vec<u8>>, usize) {
        let mut decoder = FrameDecoder::new(max);
        let mut frames = Vec::new();
        let mut start = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        for end in points {
            let mut input = &wire[start..end];
            while let Some(frame) = decoder.decode(&mut input).unwrap() {
                frames.push(frame);
            }
            assert!(input.is_empty());
            start = end;
        }
        (frames, decoder.buffered())
    }

    /// Reads `wire` through a [`FrameReader`] as a socket would deliver it, `reads` bytes at
    /// most at a time (cycled); returns the frames, the bytes left buffered and the largest
    /// allocation.
    fn read_split(
        wire: &[u8],
        reads: &[usize],
        chunk: usize,
        max: usize,
    ) -> Result<(Vec<Vec<u8>>, usize, usize), FrameError> {
        let mut reader = FrameReader::new(max);
        let mut frames = Vec::new();
        let mut input = wire;
        let mut peak = 0;
        for &read in reads.iter().cycle() {
            if input.is_empty() {
                break;
            }
            let space = reader.space(chunk);
            assert!(!space.is_empty());
            let n = space.len().min(read).min(input.len());
            space[..n].copy_from_slice(&input[..n]);
            reader.filled(n);
            input = &input[n..];
            peak = peak.max(reader.allocated());
            while let Some(range) = reader.next_frame()? {
                frames.push(reader.frame(range).to_vec());
            }
        }
        Ok((frames, reader.buffered(), peak))
    }

    #[test]
    fn the_reader_never_allocates_the_announced_length_up_front() {
        let mut reader = FrameReader::new(DEFAULT_MAX_FRAME);
        let space = reader.space(1024);
        space[..HEADER_LEN].copy_from_slice(&(60_000_000u32).to_be_bytes());
        space[HEADER_LEN..100].fill(1);
        reader.filled(100);
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(reader.announced(), Some(60_000_000));
        // Each offer is at most what arrived, or a chunk: the buffer doubles as bytes come.
        for _ in 0..5 {
            let arrived = reader.buffered();
            let space = reader.space(1024);
            assert!(space.len() <= arrived.max(1024));
            let n = space.len();
            reader.filled(n);
            assert!(reader.allocated() <= 2 * reader.buffered() + 1024);
        }
        // An announcement above the maximum is refused before anything more is offered for it.
        let mut reader = FrameReader::new(1000);
        let space = reader.space(16);
        space[..HEADER_LEN].copy_from_slice(&1001u32.to_be_bytes());
        reader.filled(HEADER_LEN);
        assert!(matches!(
            reader.next_frame(),
            Err(FrameError::TooLarge {
                len: 1001,
                max: 1000
            })
        ));
        assert!(reader.next_frame().is_err(), "poisoned");
    }

    #[test]
    fn a_reader_that_reads_little_keeps_a_small_buffer_a_busy_one_grows() {
        let chunk = 256 * 1024;
        let mut reader = FrameReader::new(DEFAULT_MAX_FRAME);
        let mut small = Vec::new();
        encode_frame(&mut small, &[1; 96], DEFAULT_MAX_FRAME).unwrap();
        for _ in 0..50 {
            let space = reader.space(chunk);
            space[..small.len()].copy_from_slice(&small);
            reader.filled(small.len());
            assert_eq!(reader.next_frame().unwrap().map(|r| r.len()), Some(96));
        }
        assert_eq!(reader.allocated(), FIRST_READ);
        // Reads that fill what is offered: the offer doubles up to the chunk, no further.
        let mut offers = Vec::new();
        for _ in 0..8 {
            let space = reader.space(chunk);
            offers.push(space.len());
            let n = space.len();
            // Whole frames of zero bytes: four-byte prefixes of length 0.
            space.fill(0);
            reader.filled(n);
            while reader.next_frame().unwrap().is_some() {}
        }
        assert_eq!(offers[..5], [16_384, 32_768, 65_536, 131_072, 262_144]);
        assert!(offers[5..].iter().all(|&o| o == chunk));
    }

    #[test]
    fn a_frame_longer_than_a_read_completes_where_it_started() {
        let frames = vec![vec![5; 10_000], vec![6; 10_000]];
        let wire = encode_all(&frames, 20_000);
        let mut reader = FrameReader::new(20_000);
        let mut input = &wire[..];
        let mut got = Vec::new();
        let mut offers = Vec::new();
        while !input.is_empty() {
            let space = reader.space(4096);
            offers.push(space.len());
            let n = space.len().min(input.len());
            space[..n].copy_from_slice(&input[..n]);
            reader.filled(n);
            input = &input[n..];
            while let Some(range) = reader.next_frame().unwrap() {
                assert_eq!(range.start, HEADER_LEN, "no frame was moved");
                got.push(reader.frame(range).to_vec());
            }
        }
        assert_eq!(got, frames);
        // A chunk, then the rest of the first frame (at most what arrived at a time: never
        // bytes of the next frame behind the end of one); then the whole buffer, kept.
        assert_eq!(offers, vec![4096, 4096, 1812, 10_004]);
    }

    #[test]
    fn every_split_point_of_two_frames() {
        let frames = vec![b"first frame".to_vec(), b"second".to_vec()];
        let wire = encode_all(&frames, 1024);
        for cut in 0..=wire.len() {
            let (got, rest) = decode_split(&wire, &[cut], 1024);
            assert_eq!(got, frames, "split at {cut}");
            assert_eq!(rest, 0);
        }
    }

    #[test]
    fn byte_at_a_time() {
        let frames = vec![vec![], b"a".to_vec(), vec![7; 300], b"tail".to_vec()];
        let wire = encode_all(&frames, 1024);
        let mut decoder = FrameDecoder::new(1024);
        let mut got = Vec::new();
        for b in &wire {
            let mut input = std::slice::from_ref(b);
            while let Some(f) = decoder.decode(&mut input).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert!(decoder.is_empty());
    }

    #[test]
    fn large_frame_in_chunks() {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let frames = vec![big, b"after".to_vec()];
        let wire = encode_all(&frames, DEFAULT_MAX_FRAME);
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        for chunk in wire.chunks(8192) {
            let mut input = chunk;
            while let Some(f) = decoder.decode(&mut input).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn incomplete_frame_is_kept_and_trailing_data_stays_buffered() {
        let mut wire = encode_all(&[b"complete".to_vec()], 64);
        wire.extend_from_slice(&10u32.to_be_bytes());
        wire.extend_from_slice(b"part");
        let (got, rest) = decode_split(&wire, &[], 64);
        assert_eq!(got, vec![b"complete".to_vec()]);
        assert_eq!(rest, 4 + 4);
    }

    #[test]
    fn oversized_length_is_an_error_without_allocation() {
        let mut decoder = FrameDecoder::new(1024);
        let mut input = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3][..];
        let err = decoder.decode(&mut input).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u32::MAX as u64,
                max: 1024
            }
        );
        assert!(decoder.body.capacity() == 0);
        // Poisoned: the same error again.
        let mut more = &b"x"[..];
        assert_eq!(decoder.decode(&mut more).unwrap_err(), err);
    }

    #[test]
    fn the_buffer_grows_with_the_bytes_not_with_the_announcement() {
        let len = 64 * 1024 * 1024 - 1;
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut input = &(len as u32).to_be_bytes()[..];
        assert_eq!(decoder.decode(&mut input).unwrap(), None);
        assert_eq!(decoder.announced(), Some(len));
        assert!(
            decoder.allocated() <= INITIAL_RESERVE,
            "little allocated for a bare prefix"
        );
        let chunk = vec![0u8; 100_000];
        let mut fed = 0;
        for _ in 0..30 {
            let mut input = &chunk[..];
            assert_eq!(decoder.decode(&mut input).unwrap(), None);
            fed += chunk.len();
            assert_eq!(decoder.buffered(), HEADER_LEN + fed);
            assert!(decoder.allocated() <= 2 * fed + INITIAL_RESERVE, "{fed}");
        }
        assert!(decoder.allocated() < len / 10);
    }

    /// Streams announcing `frames` (body lengths), read round-robin as the budget allows, each
    /// with endless bytes; returns the frames completed per stream and the decoders.
    fn run_budget(
        budget: &mut InputBudget,
        frames: &[usize],
        rounds: usize,
    ) -> (Vec<usize>, Vec<(FrameDecoder, Share)>) {
        let mut streams: Vec<(FrameDecoder, Share)> = frames
            .iter()
            .map(|_| (FrameDecoder::new(DEFAULT_MAX_FRAME), Share::default()))
            .collect();
        // Each stream's bytes: its frames back to back, forever.
        let wire: Vec<Vec<u8>> = frames
            .iter()
            .map(|&len| {
                let mut w = Vec::new();
                encode_frame(&mut w, &vec![1u8; len], DEFAULT_MAX_FRAME).unwrap();
                w
            })
            .collect();
        let mut position = vec![0usize; frames.len()];
        let mut done = vec![0usize; frames.len()];
        for _ in 0..rounds {
            for (i, (decoder, share)) in streams.iter_mut().enumerate() {
                let allowance = budget.allowance(share, 256 * 1024);
                let mut chunk = Vec::new();
                while chunk.len() < allowance {
                    let at = position[i] % wire[i].len();
                    let take = (wire[i].len() - at).min(allowance - chunk.len());
                    chunk.extend_from_slice(&wire[i][at..at + take]);
                    position[i] += take;
                }
                let mut input = &chunk[..];
                while let Some(_frame) = decoder.decode(&mut input).unwrap() {
                    done[i] += 1;
                }
                budget.update(share, decoder.buffered(), decoder.announced());
                assert!(budget.buffered() <= budget.max());
            }
        }
        (done, streams)
    }

    #[test]
    fn eight_announced_64_mib_frames_stay_within_the_input_budget() {
        let max = 20 * 1024 * 1024;
        let mut budget = InputBudget::new(max);
        let (done, streams) = run_budget(&mut budget, &[64 * 1024 * 1024 - 1; 8], 200);
        assert_eq!(done, vec![0; 8]);
        let total: usize = streams.iter().map(|(d, _)| d.buffered()).sum();
        assert_eq!(total, budget.buffered());
        assert_eq!(
            budget.buffered(),
            max,
            "the whole budget is used, and no more"
        );
        assert!(budget.peak() <= max);
        let allocated: usize = streams.iter().map(|(d, _)| d.allocated()).sum();
        assert!(allocated <= 2 * max + 8 * INITIAL_RESERVE);
        // A stream that goes away frees its room for the others.
        let mut streams = streams;
        let (_, mut share) = streams.pop().unwrap();
        assert!(budget.release(&mut share));
        assert!(budget.allowance(&streams[0].1, usize::MAX) > 0);
    }

    #[test]
    fn frames_that_fit_the_budget_always_complete() {
        // Five streams of 3 MiB frames under a 10 MiB budget: at most three are reserved at
        // once, and every stream still completes frames (no deadlock among partial frames).
        let mut budget = InputBudget::new(10 * 1024 * 1024);
        let (done, _) = run_budget(&mut budget, &[3 * 1024 * 1024; 5], 400);
        assert!(done.iter().all(|&n| n >= 3), "{done:?}");
        assert!(budget.peak() <= 10 * 1024 * 1024);
        // Small frames flow at full speed beside them.
        let mut budget = InputBudget::new(1024 * 1024);
        let (done, _) = run_budget(&mut budget, &[100, 2000, 700 * 1024], 50);
        assert!(done[0] > 1000 && done[1] > 1000 && done[2] > 10, "{done:?}");
    }

    #[test]
    fn oversized_body_is_refused_at_the_sender() {
        let mut out = Vec::new();
        let err = encode_frame(&mut out, &[0; 11], 10).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { len: 11, max: 10 });
        assert!(out.is_empty());
        let mut frame = vec![0u8; HEADER_LEN + 11];
        assert!(finish_frame(&mut frame, 10).is_err());
        assert!(finish_frame(&mut frame, 11).is_ok());
        assert_eq!(&frame[..4], &11u32.to_be_bytes());
    }

    #[test]
    fn announced_large_frame_reserves_little() {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut input = &(DEFAULT_MAX_FRAME as u32).to_be_bytes()[..];
        assert_eq!(decoder.decode(&mut input).unwrap(), None);
        let mut input = &[1u8, 2, 3][..];
        assert_eq!(decoder.decode(&mut input).unwrap(), None);
        assert!(decoder.body.capacity() <= INITIAL_RESERVE);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Thespian's test_streamBuffer: any split of the stream decodes to the same frames,
        /// including a trailing incomplete frame that stays buffered.
        #[test]
        fn any_split_decodes_the_same(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
            trailing in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            let mut wire = encode_all(&frames, 1024);
            let whole = wire.len();
            wire.extend_from_slice(&trailing);
            let (got, rest) = decode_split(&wire, &cuts, 1024);
            prop_assert_eq!(got, frames);
            prop_assert_eq!(rest, wire.len() - whole);
        }

        /// The reader that owns its buffer takes out the frames the decoder does, whatever the
        /// reads' sizes and the chunk, and never allocates more than twice the partial frame's
        /// bytes plus one chunk (or what it retains between frames).
        #[test]
        fn the_reader_reads_what_the_decoder_decodes(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..12),
            reads in proptest::collection::vec(1usize..5000, 1..20),
            chunk in 1usize..4096,
            trailing in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            let mut wire = encode_all(&frames, 4096);
            let whole = wire.len();
            wire.extend_from_slice(&trailing);
            let (got, rest, peak) = read_split(&wire, &reads, chunk, 4096).unwrap();
            prop_assert_eq!(got, frames);
            prop_assert_eq!(rest, wire.len() - whole);
            prop_assert!(peak <= RETAIN.max(2 * 4100 + chunk), "allocated {}", peak);
        }

        /// Arbitrary bytes never panic the reader; it never hands out a frame above the max.
        #[test]
        fn arbitrary_bytes_never_panic_the_reader(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            reads in proptest::collection::vec(1usize..700, 1..10),
            max in 0usize..600,
        ) {
            if let Ok((frames, _, _)) = read_split(&bytes, &reads, 64, max) {
                prop_assert!(frames.iter().all(|f| f.len() <= max));
            }
        }

        /// Arbitrary bytes never panic the decoder, and it never buffers more than the max.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
            max in 0usize..600,
        ) {
            let mut decoder = FrameDecoder::new(max);
            let mut start = 0;
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.push(bytes.len());
            points.sort_unstable();
            'outer: for end in points {
                let mut input = &bytes[start..end];
                loop {
                    match decoder.decode(&mut input) {
                        Ok(Some(f)) => prop_assert!(f.len() <= max),
                        Ok(None) => break,
                        Err(_) => break 'outer,
                    }
                }
                prop_assert!(decoder.buffered() <= max + HEADER_LEN);
                start = end;
            }
        }
    }
}
