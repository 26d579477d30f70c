//! An in-process message value, stored in place when it is small.
//!
//! This module exists because the in-process hot path (one-way tells, ping-pong, asks) spent
//! much of its time in the allocator: every `Payload::new` boxed its value, usually on one
//! worker thread, and another worker freed it. A message of at most [`INLINE_SIZE`] bytes and
//! an alignment of at most [`INLINE_ALIGN`] is now stored in [`Local`]'s own bytes; a larger or
//! more strictly aligned one is boxed and the box pointer is stored there instead. Which of the
//! two depends on the type alone ([`fits`]), so typed code (`downcast_ref`, `take`) knows it
//! and reaches the value without an indirect call once the `TypeId` matched; erased code goes
//! through a static table of functions made for the type when the value was stored. Keeping both in one type
//! (rather than two variants of `Payload`'s representation) keeps a payload as small as before:
//! the representation's tag stays in the niche of the wire variant's first pointer.
//!
//! The `unsafe` is confined to this file: writing the value in, viewing it, moving it out and
//! dropping it.

use std::any::TypeId;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop, MaybeUninit};
use std::ptr;

use super::{ErasedMessage, Message};

/// Words of storage.
const WORDS: usize = 4;

/// The largest message, in bytes, that a `Payload` stores without a heap allocation (32 on
/// 64-bit targets). Larger messages are boxed.
pub const INLINE_SIZE: usize = WORDS * mem::size_of::<usize>();

/// The strictest alignment, in bytes, of a message that a `Payload` stores without a heap
/// allocation (that of `usize`: 8 on 64-bit targets). More strictly aligned messages (`u128`
/// on some targets, `#[repr(align(16))]` types) are boxed.
pub const INLINE_ALIGN: usize = mem::align_of::<usize>();

/// The raw bytes of the storage.
type Raw = MaybeUninit<[usize; WORDS]>;

/// True when an `M` is stored in place rather than boxed (decided at compile time per type).
const fn fits<M>() -> bool {
    mem::size_of::<M>() <= INLINE_SIZE && mem::align_of::<M>() <= INLINE_ALIGN
}

/// An in-process message value.
///
/// Invariant: `slot` holds, for the one type `M` that `vtable` was made for
/// (`Table::<M>::VTABLE`), an initialised `M` when [`fits::<M>()`](fits), else an initialised
/// `Box<M>`. The value is dropped exactly once: by `Drop`, or moved out by
/// [`Local::take`], which skips `Drop`. The `UnsafeCell` lets a message with interior
/// mutability (atomics, locks) be used through a shared view, as it could be in a `Box`.
pub(super) struct Local {
    slot: UnsafeCell<Raw>,
    vtable: &'static VTable,
}

/// The functions of one message type, for a slot holding one.
struct VTable {
    /// The message type's `TypeId`.
    type_id: fn() -> TypeId,
    /// [`view_as`] for the type.
    ///
    /// # Safety
    ///
    /// As [`view_as`]: only for a slot holding a value for the type.
    view: unsafe fn(*mut Raw) -> *mut dyn ErasedMessage,
    /// [`drop_as`] for the type.
    ///
    /// # Safety
    ///
    /// As [`drop_as`]: only for a slot holding a value for the type, once.
    drop: unsafe fn(*mut Raw),
}

/// Carries the static [`VTable`] of `M`.
struct Table<M>(PhantomData<M>);

impl<M: Message> Table<M> {
    const VTABLE: VTable = VTable {
        type_id: TypeId::of::<M>,
        view: view_as::<M>,
        drop: drop_as::<M>,
    };
}

/// Points at the `M` of a slot holding one for `M` (in place or through its box).
///
/// # Safety
///
/// `slot` holds an initialised value for `M` as [`Local`]'s invariant says (when `M` does not
/// fit, the box pointer is read from it).
unsafe fn view_as<M: Message>(slot: *mut Raw) -> *mut dyn ErasedMessage {
    if fits::<M>() {
        slot.cast::<M>() as *mut dyn ErasedMessage
    } else {
        let boxed: *const Box<M> = slot.cast::<Box<M>>();
        // SAFETY: the caller guarantees an initialised `Box<M>` in the slot (`fits::<M>()` is
        // false here), written aligned by `Local::new`; copying the pointer out neither moves
        // nor frees the box.
        let raw: *const M = unsafe { &**boxed };
        raw.cast_mut() as *mut dyn ErasedMessage
    }
}

/// Drops the value of a slot holding one for `M`.
///
/// # Safety
///
/// `slot` holds an initialised value for `M` as [`Local`]'s invariant says, nothing uses it
/// afterwards, and nothing else drops it.
unsafe fn drop_as<M: Message>(slot: *mut Raw) {
    if fits::<M>() {
        // SAFETY: the caller guarantees an initialised `M` in place, dropped only here.
        unsafe { ptr::drop_in_place(slot.cast::<M>()) }
    } else {
        // SAFETY: the caller guarantees an initialised `Box<M>`, dropped (freed) only here.
        unsafe { ptr::drop_in_place(slot.cast::<Box<M>>()) }
    }
}

impl Local {
    /// Stores `message`: in place when it fits, else boxed.
    pub(super) fn new<M: Message>(message: M) -> Local {
        let slot: UnsafeCell<Raw> = UnsafeCell::new(MaybeUninit::uninit());
        if fits::<M>() {
            // SAFETY: the slot is `INLINE_SIZE` bytes aligned to `INLINE_ALIGN` and
            // `fits::<M>()` holds, so the pointer is valid and aligned for an `M` (a zero-sized
            // `M` needs only the alignment); the slot is uninitialised, so nothing is
            // overwritten without being dropped.
            unsafe { ptr::write(slot.get().cast::<M>(), message) };
        } else {
            // SAFETY: a `Box<M>` is one pointer (`M` is sized), which fits the slot and its
            // alignment; the slot is uninitialised, as above.
            unsafe { ptr::write(slot.get().cast::<Box<M>>(), Box::new(message)) };
        }
        Local {
            slot,
            vtable: &Table::<M>::VTABLE,
        }
    }

    /// The message, type-erased.
    pub(super) fn get(&self) -> &dyn ErasedMessage {
        // SAFETY: by the invariant `view` points at the initialised message of this slot; the
        // reference lives no longer than `&self`, and nothing moves or drops the value while
        // `self` is borrowed. Writes through it can only come from the message's own interior
        // mutability, which the `UnsafeCell` (or the box) allows.
        unsafe { &*(self.vtable.view)(self.slot.get()) }
    }

    /// The `TypeId` of the message.
    pub(super) fn message_type_id(&self) -> TypeId {
        (self.vtable.type_id)()
    }

    /// True when the message is an `M`. The table's address answers without a call when the
    /// slot was filled where this is compiled (different types never share a table, as each
    /// table's `type_id` differs); a table promoted twice falls back to the `TypeId`.
    pub(super) fn is<M: Message>(&self) -> bool {
        ptr::eq(self.vtable, &Table::<M>::VTABLE) || self.message_type_id() == TypeId::of::<M>()
    }

    /// The message as an `M`, if it is one.
    pub(super) fn downcast_ref<M: Message>(&self) -> Option<&M> {
        if !self.is::<M>() {
            return None;
        }
        let value: *const M = if fits::<M>() {
            self.slot.get().cast::<M>()
        } else {
            // SAFETY: the slot holds an initialised `Box<M>` (`is::<M>()` held and `M`
            // does not fit), aligned; reading the pointer neither moves nor frees the box.
            unsafe { &**self.slot.get().cast::<Box<M>>() }
        };
        // SAFETY: `value` points at the initialised `M` of this slot (in place or boxed), as
        // just established; the reference lives no longer than `&self`, during which nothing
        // moves or drops the value.
        Some(unsafe { &*value })
    }

    /// Moves the message out as an `M`, or hands `self` back when it holds another type.
    pub(super) fn take<M: Message>(self) -> Result<M, Local> {
        if !self.is::<M>() {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        if fits::<M>() {
            // SAFETY: the slot holds an initialised `M` in place (the `is::<M>()` check above and
            // `fits::<M>()`), aligned; `ManuallyDrop` keeps `Drop` from dropping it again and
            // `this` is not used after the read, so the value moves out exactly once.
            Ok(unsafe { ptr::read(this.slot.get().cast::<M>()) })
        } else {
            // SAFETY: as above, for the `Box<M>` the slot holds when `M` does not fit.
            let boxed = unsafe { ptr::read(this.slot.get().cast::<Box<M>>()) };
            Ok(*boxed)
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // SAFETY: by the invariant the slot holds an initialised value for the type `drop`
        // was made for, which nothing else drops (`take` skips this `Drop`); the slot is not
        // used afterwards.
        unsafe { (self.vtable.drop)(self.slot.get()) }
    }
}

// SAFETY: the slot only ever holds a `Message` (or a box of one), which is `Send + Sync`;
// `Local` has no shared state of its own (the `UnsafeCell` is written only in `new`, before
// anything can share it), so moving it to another thread is as safe as moving the message.
unsafe impl Send for Local {}
// SAFETY: as for `Send`: shared access only hands out `&dyn ErasedMessage`, which is `Sync`
// because every `Message` is.
unsafe impl Sync for Local {}
