//! SPEC §2: a context call the base cannot serve returns `ThespianError::NotSupported` naming
//! the operation and the base, never a silent no-op. Which calls a base serves is in
//! [`crate::bases::traits`] (conventions, loadable sources) and its `Thespian Watch Supported`
//! capability (file-descriptor watches).

use thespian::prelude::*;
use thespian::{keys, RemoteSystem, ThespianError};

use crate::bases::{traits, TestBase};
use crate::helpers::{ask, listen_none, start};

/// `try` performs every optional context call and replies `(call, outcome)` pairs.
#[derive(Default)]
struct Prober;

fn outcome(result: thespian::Result<impl Sized>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(ThespianError::NotSupported { operation, base }) => {
            format!("not supported: {operation} on {base}")
        }
        Err(other) => format!("error: {other}"),
    }
}

impl Actor for Prober {
    fn receive(&mut self, env: &Envelope, ctx: &mut Context<'_>) -> ActorResult {
        if env.get::<String>().is_ok_and(|t| t == "try") {
            let remote = RemoteSystem::Address("127.0.0.1:1".into());
            let results: Vec<(String, String)> = vec![
                (
                    "notify_on_system_registration_changes".into(),
                    outcome(ctx.notify_on_system_registration_changes(true)),
                ),
                (
                    "pre_register_remote_system".into(),
                    outcome(ctx.pre_register_remote_system("127.0.0.1:1", Capabilities::new())),
                ),
                (
                    "de_register_remote_system".into(),
                    outcome(ctx.de_register_remote_system(remote)),
                ),
                (
                    "load_actor_source".into(),
                    outcome(ctx.load_actor_source(b"not a source".to_vec(), None)),
                ),
                (
                    "unload_actor_source".into(),
                    outcome(ctx.unload_actor_source("0123abcd")),
                ),
                (
                    "notify_on_source_availability".into(),
                    outcome(ctx.notify_on_source_availability(true)),
                ),
                (
                    "register_source_authority".into(),
                    outcome(ctx.register_source_authority()),
                ),
                ("watch".into(), outcome(ctx.watch(&[0]))),
            ];
            ctx.send(env.sender(), results)?;
        }
        Ok(())
    }
}

pub(crate) fn unservable_context_calls_are_not_supported(base: TestBase) {
    let sys = start(base);
    let t = traits(base);
    let watch_supported = sys.capabilities().is_truthy(keys::WATCH_SUPPORTED);
    let prober = sys.create_actor::<Prober>().expect("create");
    let results = ask::<Vec<(String, String)>>(&sys, &prober, "try");
    assert_eq!(results.len(), 8);
    for (call, outcome) in &results {
        let supported = match call.as_str() {
            "notify_on_system_registration_changes"
            | "pre_register_remote_system"
            | "de_register_remote_system" => t.conventions,
            "watch" => watch_supported,
            _ => t.source_loading,
        };
        let not_supported = outcome.starts_with("not supported: ");
        assert_eq!(not_supported, !supported, "{call} on {base}: {outcome}");
        if not_supported {
            assert!(
                outcome.ends_with(&format!(" on {}", base.thespian_name())),
                "the error names the base: {outcome}"
            );
            let operation = call.split('_').next().expect("a word");
            assert!(
                outcome.contains(operation),
                "the error names the call: {outcome}"
            );
        }
    }
    listen_none(&sys);
    assert_eq!(
        ask::<Vec<(String, String)>>(&sys, &prober, "try").len(),
        8,
        "the actor is unharmed"
    );
}

// The types a multi-process system creates here, by name.
thespian::register_actors!(Prober);
