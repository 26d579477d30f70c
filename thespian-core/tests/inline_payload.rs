//! Tests of the in-place storage of small payloads: values of every size and alignment class
//! (zero-sized, just at and just over [`INLINE_SIZE`], more strictly aligned than
//! [`INLINE_ALIGN`]) survive every operation of `Payload`; every value is dropped exactly once
//! (on drop, clone, take, a failed take, and a panic in `Clone`); and a message that fits is
//! stored without a heap allocation, counted by this test binary's allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use thespian_core::message::{INLINE_ALIGN, INLINE_SIZE};
use thespian_core::{ActorAddress, Envelope, Message, Payload, SystemId};

/// Counts the allocations of the current thread, then defers to the system allocator.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; the counter is a `const` thread-local without a destructor, so counting neither
// allocates nor reenters the allocator.
unsafe impl GlobalAlloc for Counting {
    /// Counts, then allocates with `System`.
    ///
    /// # Safety
    ///
    /// As `GlobalAlloc::alloc`.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's guarantees for `alloc` are passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    /// Frees with `System`.
    ///
    /// # Safety
    ///
    /// As `GlobalAlloc::dealloc`.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations the current thread makes while running `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (out, ALLOCATIONS.with(Cell::get) - before)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Unit;

/// Exactly `INLINE_SIZE` bytes (on 64-bit targets), aligned as a `u64`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AtLimit([u64; 4]);

/// One byte more than `AtLimit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OverLimit([u64; 4], u8);

/// Small but more strictly aligned than `INLINE_ALIGN`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[repr(align(32))]
struct OverAligned(u32);

/// A 16-byte message, as in the one-way tell benchmark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Small([u8; 16]);

/// A type no exercised payload holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct NotThis;

/// A small message with interior mutability.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter(AtomicU64);

impl Clone for Counter {
    fn clone(&self) -> Counter {
        Counter(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

thespian_core::message!(
    Unit = "test.Unit",
    AtLimit = "test.AtLimit",
    OverLimit = "test.OverLimit",
    OverAligned = "test.OverAligned",
    Small = "test.Small",
    Counter = "test.Counter",
    NotThis = "test.NotThis",
);

#[test]
fn the_limits_are_as_documented() {
    assert_eq!(INLINE_SIZE, 4 * std::mem::size_of::<usize>());
    assert_eq!(INLINE_ALIGN, std::mem::align_of::<usize>());
    assert!(std::mem::size_of::<OverAligned>() <= INLINE_SIZE);
    assert!(std::mem::align_of::<OverAligned>() > INLINE_ALIGN);
}

/// Every operation of `Payload` on `value`, checked against the value itself.
fn exercise<T: Message + PartialEq>(value: T) -> Result<(), TestCaseError> {
    let payload = Payload::new(value.clone());
    prop_assert!(payload.has_type::<T>());
    prop_assert!(payload.is::<T>());
    prop_assert!(!payload.has_type::<NotThis>());
    prop_assert!(payload.try_get::<NotThis>().is_none());
    prop_assert!(payload.get::<NotThis>().is_err());
    prop_assert_eq!(payload.type_name(), T::wire_name());
    prop_assert_eq!(payload.get::<T>().expect("gets"), &value);
    prop_assert_eq!(payload.try_get::<T>(), Some(&value));
    prop_assert_eq!(format!("{payload:?}"), format!("{value:?}"));
    let bytes = postcard::to_allocvec(&value).expect("encodes");
    prop_assert_eq!(&*payload.encode().expect("encodes"), &bytes[..]);
    let (name, wire_bytes) = payload.to_wire().expect("to wire");
    prop_assert_eq!(&*name, &*T::wire_name());
    let wire = Payload::from_wire(name, wire_bytes);
    prop_assert_eq!(wire.get::<T>().expect("decodes"), &value);
    prop_assert!(wire == payload);

    let copy = payload.clone();
    prop_assert_eq!(copy.get::<T>().expect("gets"), &value);
    // Moving a payload (into an envelope, a vector, another thread) keeps its value.
    let moved = vec![copy];
    let envelope = Envelope::new(
        ActorAddress::new(SystemId::from_raw(1), 2),
        moved.into_iter().next().expect("one"),
    );
    let envelope = std::thread::spawn(move || envelope)
        .join()
        .expect("the thread returns it");
    prop_assert_eq!(envelope.get::<T>().expect("gets"), &value);
    prop_assert_eq!(envelope.take::<T>().expect("takes"), value.clone());

    let refused = payload.take::<NotThis>().expect_err("not a NotThis");
    let back = refused.into_inner();
    prop_assert_eq!(back.get::<T>().expect("handed back intact"), &value);
    prop_assert_eq!(back.take::<T>().expect("takes"), value);
    Ok(())
}

proptest! {
    #[test]
    fn small_values_round_trip(v in any::<[u8; 16]>()) {
        exercise(Small(v))?;
    }

    #[test]
    fn values_at_the_limit_round_trip(v in any::<[u64; 4]>()) {
        exercise(AtLimit(v))?;
    }

    #[test]
    fn values_over_the_limit_round_trip(v in any::<[u64; 4]>(), b in any::<u8>()) {
        exercise(OverLimit(v, b))?;
    }

    #[test]
    fn over_aligned_values_round_trip(v in any::<u32>()) {
        exercise(OverAligned(v))?;
    }

    #[test]
    fn scalars_and_owned_values_round_trip(a in any::<u64>(), b in any::<u128>(), s in ".*", v in any::<Vec<u8>>()) {
        exercise(a)?;
        exercise(b)?;
        exercise((a, a))?;
        exercise(s)?;
        exercise(v)?;
    }
}

#[test]
fn zero_sized_values_round_trip() {
    exercise(Unit).expect("a unit struct");
    exercise(()).expect("the unit type");
}

#[test]
fn interior_mutability_works_through_a_shared_view() {
    let payload = Payload::new(Counter::default());
    payload
        .get::<Counter>()
        .expect("a counter")
        .0
        .fetch_add(5, Ordering::Relaxed);
    let seen = payload.get::<Counter>().expect("a counter");
    assert_eq!(seen.0.load(Ordering::Relaxed), 5);
    assert_eq!(payload.take::<Counter>().expect("takes").0.into_inner(), 5);
}

#[test]
fn messages_that_fit_are_stored_without_an_allocation() {
    let (payload, n) = allocations(|| Payload::new(Small([7; 16])));
    assert_eq!(n, 0, "a 16-byte message");
    let (copy, n) = allocations(|| payload.clone());
    assert_eq!(n, 0, "its clone");
    let (_, n) = allocations(|| {
        assert_eq!(copy.get::<Small>().expect("gets").0, [7; 16]);
        assert!(copy.take::<Small>().is_ok());
    });
    assert_eq!(n, 0, "get and take");
    let (_, n) = allocations(|| Payload::new(AtLimit([1, 2, 3, 4])));
    assert_eq!(n, 0, "a message of INLINE_SIZE bytes");
    let (_, n) = allocations(|| Payload::new(Unit));
    assert_eq!(n, 0, "a zero-sized message");
    let (_, n) = allocations(|| Payload::new(42u64));
    assert_eq!(n, 0, "a u64");
    let (_, n) = allocations(|| Payload::new(OverLimit([1, 2, 3, 4], 5)));
    assert_eq!(n, 1, "a message over INLINE_SIZE is boxed");
    let (_, n) = allocations(|| Payload::new(OverAligned(1)));
    assert_eq!(n, 1, "an over-aligned message is boxed");
}

/// Drop-counting messages: every value created (new or clone) and dropped is counted per
/// thread, and a clone panics when `PANIC_IN_CLONE` is set.
mod counted {
    use super::*;

    thread_local! {
        pub(super) static LIVE: Cell<i64> = const { Cell::new(0) };
        pub(super) static PANIC_IN_CLONE: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn live() -> i64 {
        LIVE.with(Cell::get)
    }

    macro_rules! counted {
        ($name:ident, $wire:literal, $($field:ty),*) => {
            #[derive(Debug, PartialEq, Serialize, Deserialize)]
            pub(super) struct $name($(pub(super) $field),*);

            impl $name {
                #[allow(clippy::new_without_default)]
                pub(super) fn new($(v: $field),*) -> $name {
                    LIVE.with(|n| n.set(n.get() + 1));
                    $name($(v as $field),*)
                }
            }

            impl Clone for $name {
                fn clone(&self) -> $name {
                    if PANIC_IN_CLONE.with(Cell::get) {
                        panic!("clone refused on purpose");
                    }
                    LIVE.with(|n| n.set(n.get() + 1));
                    #[allow(clippy::clone_on_copy)]
                    $name(self.0.clone())
                }
            }

            impl Drop for $name {
                fn drop(&mut self) {
                    LIVE.with(|n| n.set(n.get() - 1));
                }
            }

            thespian_core::message!($name = $wire);
        };
    }

    counted!(SmallCounted, "test.SmallCounted", u64);
    counted!(LargeCounted, "test.LargeCounted", [u64; 8]);

    /// Zero-sized and counted.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub(super) struct ZeroCounted;

    impl ZeroCounted {
        pub(super) fn new() -> ZeroCounted {
            LIVE.with(|n| n.set(n.get() + 1));
            ZeroCounted
        }
    }

    impl Clone for ZeroCounted {
        fn clone(&self) -> ZeroCounted {
            if PANIC_IN_CLONE.with(Cell::get) {
                panic!("clone refused on purpose");
            }
            ZeroCounted::new()
        }
    }

    impl Drop for ZeroCounted {
        fn drop(&mut self) {
            LIVE.with(|n| n.set(n.get() - 1));
        }
    }

    thespian_core::message!(ZeroCounted = "test.ZeroCounted");
}

use counted::{live, LargeCounted, SmallCounted, ZeroCounted, PANIC_IN_CLONE};

/// What a sequence of operations does to one payload.
#[derive(Clone, Copy, Debug)]
enum Op {
    Clone,
    Take,
    TakeWrong,
    DropOne,
    PanicInClone,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Clone),
        Just(Op::Take),
        Just(Op::TakeWrong),
        Just(Op::DropOne),
        Just(Op::PanicInClone),
    ]
}

/// Runs `ops` on payloads of `make()`, then drops everything: no value may be left alive or
/// dropped twice (the count would go below zero and then not return to zero).
fn drops_balance<T: Message>(make: fn() -> T, ops: &[Op]) -> Result<(), TestCaseError> {
    let start = live();
    {
        let mut payloads = vec![Payload::new(make())];
        let mut taken: Vec<T> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let Some(last) = payloads.pop() else {
                payloads.push(Payload::new(make()));
                continue;
            };
            match op {
                Op::Clone => {
                    let copy = last.clone();
                    payloads.push(last);
                    payloads.push(copy);
                }
                Op::Take => taken.push(last.take::<T>().expect("takes its own type")),
                Op::TakeWrong => payloads.push(
                    last.take::<String>()
                        .expect_err("not a String")
                        .into_inner(),
                ),
                Op::DropOne => drop(last),
                Op::PanicInClone => {
                    PANIC_IN_CLONE.with(|p| p.set(true));
                    let result = catch_unwind(AssertUnwindSafe(|| last.clone()));
                    PANIC_IN_CLONE.with(|p| p.set(false));
                    prop_assert!(result.is_err(), "step {i}: the clone panicked");
                    payloads.push(last);
                }
            }
            prop_assert!(live() >= start, "step {i}: a value was dropped twice");
        }
        for p in &payloads {
            prop_assert!(p.get::<T>().is_ok());
        }
    }
    prop_assert_eq!(live(), start, "every value dropped exactly once");
    Ok(())
}

proptest! {
    #[test]
    fn inline_values_are_dropped_exactly_once(ops in proptest::collection::vec(op(), 0..24)) {
        drops_balance(|| SmallCounted::new(7), &ops)?;
    }

    #[test]
    fn boxed_values_are_dropped_exactly_once(ops in proptest::collection::vec(op(), 0..24)) {
        drops_balance(|| LargeCounted::new([3; 8]), &ops)?;
    }

    #[test]
    fn zero_sized_values_are_dropped_exactly_once(ops in proptest::collection::vec(op(), 0..24)) {
        drops_balance(ZeroCounted::new, &ops)?;
    }
}
