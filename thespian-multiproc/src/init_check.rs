//! Whether the program called `thespian::init()`, and what a multi-process `start()` does when
//! it did not.
//!
//! This module exists because a forgotten `init()` used to show up far from its cause: the
//! admin daemon (this same program, re-executed) ran `main` again instead of taking its role,
//! and the program that started it waited for an admin that never answered. Now
//! [`enter_role_if_any`](crate::enter_role_if_any) (what `init()` calls) sets a flag, and
//! [`ProgramBase::start`](crate::ProgramBase::start) checks it first: a program that never
//! called it gets [`forgotten_init`] at once, and a re-executed process that reaches `start()`
//! without taking its role prints that error and exits (its starter then fails at once, since
//! it watches the daemon's process). [`decide`] is the rule, free of process state.

use std::sync::atomic::{AtomicBool, Ordering};

use thespian_core::ThespianError;

/// Set by `enter_role_if_any`, i.e. by `thespian::init()`.
static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Records that `init()` ran in this process.
pub(crate) fn mark_init_called() {
    INIT_CALLED.store(true, Ordering::Release);
}

/// True once `thespian::init()` (that is, [`enter_role_if_any`](crate::enter_role_if_any)) has
/// run in this process.
///
/// ```
/// // In an ordinary run (no role to take) init returns at once and is recorded.
/// thespian_multiproc::enter_role_if_any(&[]);
/// assert!(thespian_multiproc::init_called());
/// ```
pub fn init_called() -> bool {
    INIT_CALLED.load(Ordering::Acquire)
}

/// What `start()` does about `init()`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum InitCheck {
    /// Go on.
    Proceed,
    /// Fail the call with [`forgotten_init`].
    Refuse,
    /// This process was started in a role it never took: print [`forgotten_init`] and exit.
    ExitProcess,
}

/// The rule. `init_called`: `init()` ran in this process; `entry_point`: the program named an
/// entry point for its re-executed processes (a test binary, whose `init()` runs in the entry
/// test of those processes only); `role_pending`: this process was started in a role (the role
/// variable is still set, so `init()` never read it).
pub(crate) fn decide(init_called: bool, entry_point: bool, role_pending: bool) -> InitCheck {
    if role_pending && !init_called {
        InitCheck::ExitProcess
    } else if init_called || entry_point {
        InitCheck::Proceed
    } else {
        InitCheck::Refuse
    }
}

/// The error of a multi-process `start()` in a program that never called `init()`.
///
/// ```
/// let text = thespian_multiproc::forgotten_init().to_string();
/// assert!(text.contains("thespian::init() was never called"));
/// ```
pub fn forgotten_init() -> ThespianError {
    ThespianError::StartupFailure(
        "thespian::init() was never called: a program that starts a Tcp or Udp system must call \
         it first in main (or mark main with #[thespian::main]), because the system runs this \
         program again as its admin daemon and as actor processes, which take their role there"
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert_eq!(decide(true, false, false), InitCheck::Proceed);
        assert_eq!(decide(false, true, false), InitCheck::Proceed);
        assert_eq!(decide(false, false, false), InitCheck::Refuse);
        assert_eq!(decide(false, false, true), InitCheck::ExitProcess);
        assert_eq!(decide(false, true, true), InitCheck::ExitProcess);
        assert_eq!(decide(true, false, true), InitCheck::Proceed);
    }

    #[test]
    fn the_error_says_what_to_do() {
        let text = forgotten_init().to_string();
        assert!(text.contains("thespian::init()"), "{text}");
        assert!(text.contains("#[thespian::main]"), "{text}");
    }
}
