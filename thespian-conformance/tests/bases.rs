//! The conformance suite on the built-in bases: adding a base (or a variant of one) is one
//! line here; `cargo test simple::` runs one base, `wakeup::` one topic on every base.

use thespian_conformance::{conformance_tests, TestBase};

// The `#[test] fn thespian_process_entry` through which the processes the multi-process bases
// re-execute from this test binary enter; it must sit at the crate root.
thespian::test_entry_point!();

conformance_tests!(simple, TestBase::SIMPLE);
conformance_tests!(queue, TestBase::QUEUE);
conformance_tests!(tcp_spawn, TestBase::TCP_SPAWN);
conformance_tests!(tcp_thread, TestBase::TCP_THREAD);
conformance_tests!(udp_spawn, TestBase::UDP_SPAWN);
conformance_tests!(udp_thread, TestBase::UDP_THREAD);
