//! The conformance suite: Thespian's own test files (reference §10) and the conformance
//! checklist (reference §14), written once and run on every system base.
//!
//! Layout:
//! - [`bases`] lists the bases the suite runs on: adding a base is one line there.
//! - [`helpers`] starts systems, asks with timeouts, and holds the small actors and messages
//!   many scenarios share.
//! - one module per topic (named after the Thespian test file it mirrors); each scenario is a
//!   plain `pub fn scenario(base: TestBase)`: a [`bases::TestBase`] is a system base and, for the
//!   multi-process bases, its `Process Startup Method`.
//! - `with_scenarios!` below is the one list of scenarios; `conformance_suite!` (invoked in
//!   `bases.rs`) expands it into a `#[test]` per base and scenario, named
//!   `bases::<base>::<topic>::<scenario>`, so `cargo test -p thespian --test conformance
//!   simple::` runs one base and `wakeup::` one topic on every base.
//! - [`messages`] holds the base-independent `test_msg_*` checks as plain tests.
//!
//! A scenario written but not listed is dead code, which `clippy -D warnings` rejects.
//!
//! Rules every scenario follows: each system is started with `transient_unique(true)` and
//! `LogConfig::Untouched` (tests run in parallel threads of one process); no sleep is used to
//! synchronise; every wait has a timeout ([`helpers::REPLY_TIMEOUT`] when a reply is due,
//! [`helpers::NO_REPLY_TIMEOUT`] when none may come).

/// Calls `$callback! { $base; topic { scenario, ... } ... }` with every scenario of the suite.
macro_rules! with_scenarios {
    ($callback:ident, $base:expr) => {
        $callback! { $base;
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
        }
    };
}

/// Expands to one module per topic with one `#[test]` per scenario, all on `$base`.
macro_rules! instantiate_scenarios {
    ($base:expr; $($topic:ident { $($scenario:ident),* $(,)? })*) => {
        $(
            mod $topic {
                #[allow(unused_imports)]
                use crate::bases::TestBase;
                $(
                    #[test]
                    fn $scenario() {
                        crate::$topic::$scenario($base)
                    }
                )*
            }
        )*
    };
}

/// `conformance_suite!(name => TestBase::VARIANT, ...)`: every scenario on every listed base,
/// as `#[test] fn name::topic::scenario()`.
macro_rules! conformance_suite {
    ($($name:ident => $base:expr),+ $(,)?) => {
        $(
            mod $name {
                with_scenarios!(instantiate_scenarios, $base);
            }
        )+
    };
}

// The `#[test] fn thespian_process_entry` through which the processes the multi-process bases
// re-execute from this test binary enter; it must sit at the crate root.
thespian::test_entry_point!();

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
mod messages;
mod not_supported;
mod ordering;
mod poison_message;
mod private_endpoints;
mod require_capability;
mod shutdown;
mod simple_actor;
mod stats;
mod system_messages;
mod type_dispatcher;
mod update_system_capabilities;
mod wakeup;
mod watch;
mod with_possible_args;
