//! The synchronisation primitives of the scheduler and the mailboxes, behind one seam.
//!
//! This module exists so the lock-free parts of the scheduling protocol (the idle/searching
//! counters read without a lock, the queue-length hints) run under loom's model checker with
//! the very code the base ships: with `--cfg loom` these names are loom's instrumented mutexes,
//! condition variables and atomics; otherwise they are std's. The wrappers
//! give both the same small API (a `lock` that cannot fail, a by-value `wait`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize};

use std::time::Duration;

/// A mutual-exclusion lock whose `lock` never fails (no poisoning).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: std::sync::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The guard of a [`Mutex`].
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
/// The guard of a [`Mutex`].
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex {
            #[cfg(not(loom))]
            inner: std::sync::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Locks for a critical section of a few instructions: spins (then yields) on
    /// `try_lock` much longer than `lock` would before parking, so two threads hammering one
    /// mailbox never fall into a convoy of futex sleeps and wake-ups.
    pub(crate) fn lock_brief(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        {
            for round in 0..16u32 {
                match self.inner.try_lock() {
                    Ok(guard) => return guard,
                    Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => {}
                }
                if round < 10 {
                    for _ in 0..(1u32 << round) {
                        std::hint::spin_loop();
                    }
                } else {
                    std::thread::yield_now();
                }
            }
        }
        self.lock()
    }

    /// Locks, blocking until the lock is free.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A condition variable for [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar {
    #[cfg(not(loom))]
    inner: std::sync::Condvar,
    #[cfg(loom)]
    inner: loom::sync::Condvar,
}

impl Condvar {
    /// A new condition variable.
    pub(crate) fn new() -> Condvar {
        Condvar {
            #[cfg(not(loom))]
            inner: std::sync::Condvar::new(),
            #[cfg(loom)]
            inner: loom::sync::Condvar::new(),
        }
    }

    /// Releases the guard's lock, waits for a notification (or a spurious wakeup), relocks.
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.inner.wait(guard).unwrap_or_else(|p| p.into_inner())
    }

    /// As [`Condvar::wait`], giving up after `timeout` (loom never times out, so a lost
    /// wakeup shows up there as a deadlock).
    pub(crate) fn wait_for<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        self.inner
            .wait_timeout(guard, timeout)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0)
    }

    /// Wakes one waiter.
    pub(crate) fn notify_one(&self) {
        self.inner.notify_one();
    }

    /// Wakes every waiter.
    #[cfg(loom)]
    pub(crate) fn notify_all(&self) {
        self.inner.notify_all();
    }
}

/// A CPU hint inside a bounded spin (a scheduling point under loom).
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives the rest of the time slice to other threads (a scheduling point under loom).
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}
