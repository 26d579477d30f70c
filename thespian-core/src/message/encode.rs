//! The postcard encoding of a message, written straight into the shared buffer it travels in.
//!
//! This module exists because a message crossing a process boundary was encoded into a growing
//! `Vec` and then copied into an `Arc<[u8]>`, and zeroing a buffer first to encode into it costs
//! a pass of its own: a 64 KiB payload paid reallocations, a zeroing or a copy on top of the
//! encoding. Here the value is sized, an uninitialised `Arc<[u8]>` of that size is allocated and
//! the encoder writes every byte of it once. The `unsafe` (declaring the buffer initialised) is
//! confined to this file.

use std::mem::MaybeUninit;
use std::sync::Arc;

use serde::Serialize;

/// A postcard output that writes into uninitialised bytes and counts what it wrote.
struct Uninit<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    written: usize,
}

impl postcard::ser_flavors::Flavor for Uninit<'_> {
    type Output = usize;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        let slot = self
            .buf
            .get_mut(self.written)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        slot.write(byte);
        self.written += 1;
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.written + data.len();
        let slots = self
            .buf
            .get_mut(self.written..end)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        // A plain copy once compiled (`write_copy_of_slice` is newer than the supported Rust).
        for (slot, &byte) in slots.iter_mut().zip(data) {
            slot.write(byte);
        }
        self.written = end;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.written)
    }
}

/// The postcard encoding of `value` in a buffer of its own size, encoded in place. A value
/// whose encoding changes between sizing and encoding (a hand-written `Serialize`) is encoded
/// the plain way.
pub(super) fn to_arc<T: Serialize + ?Sized>(value: &T) -> postcard::Result<Arc<[u8]>> {
    let size = postcard::experimental::serialized_size(value)?;
    let mut bytes = Arc::<[u8]>::new_uninit_slice(size);
    let buf = Arc::get_mut(&mut bytes).expect("a fresh Arc is unique");
    match postcard::serialize_with_flavor(value, Uninit { buf, written: 0 }) {
        // SAFETY: the flavor writes its bytes in order from the start and never past the end,
        // and it wrote `size` of them: every byte of the buffer is initialised.
        Ok(written) if written == size => Ok(unsafe { bytes.assume_init() }),
        _ => postcard::to_allocvec(value).map(Arc::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_postcard_does() {
        let values: Vec<(String, Vec<u8>, u64)> = vec![
            (String::new(), vec![], 0),
            ("name".into(), vec![7; 70_000], u64::MAX),
        ];
        for value in &values {
            assert_eq!(
                &*to_arc(value).unwrap(),
                &postcard::to_allocvec(value).unwrap()[..]
            );
        }
    }
}
