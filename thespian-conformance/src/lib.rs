//! The conformance suite: Thespian's own test files (reference §10) and the conformance
//! checklist (reference §14), written once and run on every system base — the built-in ones
//! and any base from another crate.
//!
//! Running it on a base takes one macro call in a test target:
//!
//! ```
//! use thespian::{ActorSystem, ActorSystemBuilder};
//! use thespian_conformance::{conformance_tests, TestBase, Traits};
//!
//! // The test through which processes the multi-process bases re-execute enter.
//! thespian::test_entry_point!();
//!
//! conformance_tests!(simple, TestBase::SIMPLE);
//!
//! /// A system on the base under test: `ActorSystem::builder().driver(MyBase)` for a base from
//! /// another crate (here the Simple base stands in for it).
//! fn my_base() -> ActorSystemBuilder {
//!     ActorSystem::builder()
//! }
//!
//! conformance_tests!(mine, TestBase::custom("simpleSystemBase", my_base, Traits::SIMPLE));
//! # fn main() {}
//! ```
//!
//! which expands into one `#[test]` per scenario, named `<name>::<topic>::<scenario>`, so
//! `cargo test simple::` runs one base and `wakeup::` one topic on every base. A custom base is
//! a [`TestBase::custom`]: its name, a `fn` returning an [`ActorSystemBuilder`] configured for it
//! (`ActorSystemBuilder::driver`), and the [`Traits`] the suite may expect of it. A base opts
//! out of what it does not offer through its traits (no conventions, no source loading, a
//! message size limit, actors out of process…): the scenarios concerned then check the
//! documented refusal or the weaker guarantee instead; none is skipped.
//!
//! Layout:
//! - `bases` describes the bases ([`TestBase`]) and what the suite expects of each ([`Traits`]).
//! - `helpers` starts systems, asks with timeouts, and holds the small actors and messages
//!   many scenarios share.
//! - one private module per topic (named after the Thespian test file it mirrors); each scenario
//!   is a plain `fn scenario(base: TestBase)`, published through [`scenarios`] and [`SCENARIOS`].
//! - `__with_scenarios!` below is the one list of scenarios. A scenario written but not listed is
//!   dead code, which `clippy -D warnings` rejects.
//! - The actor types a multi-process system creates by name are registered
//!   (`thespian::register_actors!`) next to their definitions, here in the library: the
//!   registrations are linked into every test binary that runs the suite.
//!
//! Rules every scenario follows: each system is started with `transient_unique(true)` and
//! `LogConfig::Untouched` (tests run in parallel threads of one process); no sleep is used to
//! synchronise; every wait has a timeout (`REPLY_TIMEOUT` when a reply is due,
//! `NO_REPLY_TIMEOUT` when none may come).

#[cfg(doc)]
use thespian::ActorSystemBuilder;

pub use bases::{Startup, TestBase, Traits, UDP_MAX_MESSAGE};

/// Expands to one `#[test]` per scenario of the suite, all on one base:
/// `conformance_tests!(name, base)` defines `mod name { mod topic { #[test] fn scenario() } }`.
/// `base` is an expression of type [`TestBase`], evaluated in the caller's module (its names
/// resolve there) once per test.
///
/// Multi-process bases re-execute the test binary: the test target also needs
/// `thespian::test_entry_point!()` at its root.
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $base:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn conformance_base() -> $crate::TestBase {
                $base
            }

            $crate::__with_scenarios!(tests);
        }
    };
}

/// Calls the expansion named by its argument with every scenario of the suite: the one list.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_scenarios {
    ($mode:ident) => {
        $crate::__expand! { $mode;
        simple_actor {
            create_tell_ask,
            silence_returns_none,
            message_to_self_then_reply,
        }
        actor_sys_api {
            tell_is_delivered_before_a_later_ask,
            ask_returns_reply_or_none,
            listen_receives_a_second_reply,
            ask_is_tell_plus_listen,
            replies_from_any_actor,
        }
        actors {
            fifty_actors_have_unique_addresses,
            address_text_uses_only_expected_characters,
            address_equality_and_hash,
            sub_actor_creation,
            romeo_and_juliet,
        }
        create_actor {
            unknown_registered_name_is_invalid_specification,
            registered_name_creates_the_actor,
            children_created_by_actors,
            hundred_child_creations_are_answered,
            unregistered_type_is_refused_by_multi_process_bases,
        }
        actor_adder {
            chain_of_10,
            chain_of_50,
            chain_built_by_an_actor,
        }
        address_passing {
            bouncing_keeps_identities,
            sibling_addresses_passed_by_the_parent,
        }
        actor_failures {
            constructor_failure_fails_top_level_create,
            constructor_panic_fails_top_level_create,
            child_constructor_failure_notifies_parent_and_aborts_messages,
            parent_restarts_failed_child_five_times,
            deep_tree_exit_at_every_level,
            poison_keeps_actor_identity_and_state,
            confused_exit_error_still_exits,
            confused_exit_panic_still_exits,
        }
        bad_startup_message {
            restart_loop_does_not_hang,
        }
        bad_message {
            always_failing_message_is_returned_as_poison,
            failing_once_is_retried_and_answered,
            retry_happens_at_once_before_other_messages,
            poison_never_wraps_poison,
        }
        big_messages {
            echo_of_growing_messages,
        }
        common_capabilities {
            capability_check_sees_common_capabilities,
            constructor_sees_common_capabilities,
        }
        dead_lettering {
            dead_letters_with_top_level_handlers,
            dead_letters_with_child_handlers,
            no_handler_drops_dead_letters,
            dead_letters_from_an_actor_that_sent_before,
        }
        generators {
            named_workers_matched_by_sender,
        }
        global_name {
            same_name_same_actor_top_level,
            same_name_same_actor_from_actors,
            same_name_across_top_level_and_actors,
            different_or_no_names_are_different_actors,
            messages_right_after_create_keep_order,
            actor_knows_its_global_name,
            existing_name_wins_over_unknown_type,
            unknown_type_with_new_name_is_invalid,
            name_is_freed_when_the_actor_exits,
            requester_is_parent_and_is_told_of_exit,
        }
        poison_message {
            poison_returns_to_the_sending_actor,
            ask_of_poisonous_message_returns_poison,
        }
        require_capability {
            truthy_and_equality_table,
            stacked_conditions,
            requirements_based_check,
            failure_names_type_and_unmet_conditions,
            failure_inside_an_actor,
        }
        type_dispatcher {
            exact_handlers,
            super_continues_to_the_next_handler,
            system_messages_reach_on_system_message,
            unrecognised_messages_reach_otherwise,
            on_any_catches_the_rest_after_exact_handlers,
            finish_discards_silently,
            handler_errors_are_failures,
        }
        update_system_capabilities {
            adding_a_capability_enables_creation,
            removing_a_capability_exits_actors_that_need_it,
            nested_child_exits_parent_stays,
            unchanged_or_nonexistent_removal_has_no_effect,
            actor_updates_capability_itself,
            constructor_receives_updated_capabilities,
        }
        wakeup {
            wakeup_not_delivered_before_due,
            wakeup_delay_counts_from_the_call,
            payload_distinguishes_wakeups,
            two_then_five_pending,
            sender_is_the_actor_itself,
            exit_with_pending_wakeups_is_clean,
            status_shows_pending_wakeups,
        }
        with_possible_args {
            default_constructor,
            constructor_receives_capabilities_and_requirements,
            child_constructor_receives_requirements,
        }
        system_messages {
            ask_never_returns_internal_system_messages,
            actor_replying_exit_request_to_outside_is_harmless,
        }
        stats {
            actor_status_children_and_wakeups,
            system_status_from_admin,
            system_status_counts_pending_and_poison,
            actor_status_keeps_last_activity,
        }
        private_endpoints {
            threads_get_only_their_own_replies,
            private_endpoint_is_a_distinct_sender,
        }
        shutdown {
            double_shutdown_is_harmless,
            tell_after_shutdown_fails,
            actor_system_shutdown_from_an_actor,
            shutdown_runs_exit_handlers_children_first,
        }
        exit {
            recursive_exit_is_bottom_up,
            not_recursive_from_handler_leaves_children_running,
            non_recursive_request_leaves_children_running,
        }
        errors {
            wrong_type_is_an_error_not_a_panic,
            wrong_type_inside_an_actor,
            bad_capability_type_fails_start,
        }
        ordering {
            per_sender_order_is_kept,
        }
        not_supported {
            unservable_context_calls_are_not_supported,
        }
        watch {
            readable_descriptor_delivers_a_watch_message,
        }
        back_pressure {
            sender_over_the_bound_gets_queue_full_and_later_succeeds,
            message_to_an_address_no_system_issued_is_an_error_or_poison,
        }
        troupe {
            one_message_to_one_worker,
            max_count_respected_under_a_burst_of_100,
            idle_count_kept_after_the_burst,
            extra_workers_are_dismissed,
            worker_killed_mid_work_completes_on_another,
            work_in_progress_keeps_its_worker,
            status_and_settings_commands,
            leader_exit_exits_every_worker,
            ten_thousand_messages_each_handled_once,
            pending_bound_sheds_load_as_poison,
            failing_work_returns_to_its_sender_as_poison,
            keyed_work_keeps_its_order,
        }
        typed_requests {
            request_returns_the_declared_reply,
            a_poisoned_request_is_told_apart,
            a_reply_of_another_type_is_handed_back,
            timeout_and_a_gone_system_are_told_apart,
            handles_attribute_builds_the_dispatch_chain,
        }
        }
    };
}

/// The expansions of the scenario list: `tests` (one `#[test]` each, calling the enclosing
/// module's `conformance_base()`) and `table` (the library's public scenario table).
#[doc(hidden)]
#[macro_export]
macro_rules! __expand {
    (tests; $($topic:ident { $($scenario:ident),* $(,)? })*) => {
        $(
            mod $topic {
                $(
                    #[test]
                    fn $scenario() {
                        $crate::scenarios::$topic::$scenario(super::conformance_base())
                    }
                )*
            }
        )*
    };
    (table; $($topic:ident { $($scenario:ident),* $(,)? })*) => {
        /// Every scenario, by topic: `scenarios::<topic>::<scenario>(base)` runs one.
        pub mod scenarios {
            $(
                #[allow(missing_docs)]
                pub mod $topic {
                    $(
                        #[allow(missing_docs)]
                        pub fn $scenario(base: $crate::TestBase) {
                            $crate::$topic::$scenario(base)
                        }
                    )*
                }
            )*
        }

        /// Every scenario as `(topic, name, function)`, in the suite's order.
        pub const SCENARIOS: &[Scenario] = &[
            $($(
                Scenario {
                    topic: stringify!($topic),
                    name: stringify!($scenario),
                    run: scenarios::$topic::$scenario,
                },
            )*)*
        ];
    };
}

__with_scenarios!(table);

/// One scenario of the suite, for harnesses other than `conformance_tests!`.
#[derive(Copy, Clone, Debug)]
pub struct Scenario {
    /// Its topic (the module, named after the Thespian test file it mirrors).
    pub topic: &'static str,
    /// Its name within the topic.
    pub name: &'static str,
    /// Runs it on a base; panics when the base does not conform.
    pub run: fn(TestBase),
}

mod bases;
mod helpers;

mod actor_adder;
mod actor_failures;
mod actor_sys_api;
mod actors;
mod address_passing;
mod back_pressure;
mod bad_message;
mod bad_startup_message;
mod big_messages;
mod common_capabilities;
mod create_actor;
mod dead_lettering;
mod errors;
mod exit;
mod generators;
mod global_name;
mod not_supported;
mod ordering;
mod poison_message;
mod private_endpoints;
mod require_capability;
mod shutdown;
mod simple_actor;
mod stats;
mod system_messages;
mod troupe;
mod type_dispatcher;
mod typed_requests;
mod update_system_capabilities;
mod wakeup;
mod watch;
mod with_possible_args;
