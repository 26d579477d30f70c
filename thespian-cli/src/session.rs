//! An attached system, and the numbered address list (`#N`) that Thespian's shell keeps: every
//! listing numbers the actors it shows, and later commands may name them by number.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use thespian::{
    keys, ActorAddress, ActorExitRequest, ActorStatus, ActorSystem, LogConfig, StatusRequest,
    SystemBase, SystemStatus,
};

use crate::args::{Attach, Command};
use crate::{format, CliError, CliResult};

/// How long the admin may take to answer a status request.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the actors may take, together, to answer status requests.
const ACTOR_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// A system this command is attached to.
pub struct Session {
    sys: ActorSystem,
    attach: Attach,
    /// The addresses of the last listing: `#1` is the first.
    numbered: Vec<ActorAddress>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("port", &self.attach.port())
            .field("udp", &self.attach.udp)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Attaches to the admin of the system `attach` names; never starts one.
    pub fn attach(attach: &Attach) -> CliResult<Session> {
        let base = if attach.udp {
            SystemBase::Udp
        } else {
            SystemBase::Tcp
        };
        let mut builder = ActorSystem::builder()
            .base(base)
            .capability(keys::ADMIN_PORT, i64::from(attach.port()))
            .transient_unique(true)
            .attach_only(true)
            .log(LogConfig::Untouched);
        if let Some(file) = &attach.secret_file {
            builder = builder.capability(keys::SECRET_FILE, file.display().to_string());
        }
        let sys = builder.start().map_err(|e| {
            CliError(format!(
                "cannot attach to the actor system on {} port {}: {e}",
                attach.protocol(),
                attach.port()
            ))
        })?;
        Ok(Session {
            sys,
            attach: attach.clone(),
            numbered: Vec::new(),
        })
    }

    /// The attached system.
    pub fn system(&self) -> &ActorSystem {
        &self.sys
    }

    /// Where this session is attached.
    pub fn attached_to(&self) -> &Attach {
        &self.attach
    }

    /// The numbered address list (`#1` first).
    pub fn numbered(&self) -> &[ActorAddress] {
        &self.numbered
    }

    /// Replaces the numbered list (a new listing).
    pub fn number(&mut self, addresses: Vec<ActorAddress>) {
        self.numbered = addresses;
    }

    /// The system's status.
    pub fn status(&self) -> CliResult<SystemStatus> {
        Ok(self.sys.status(STATUS_TIMEOUT)?)
    }

    /// The statuses of `actors`, asked all at once; an actor that does not answer within the
    /// deadline is left out.
    pub fn actor_statuses(
        &self,
        actors: &[ActorAddress],
    ) -> CliResult<HashMap<ActorAddress, ActorStatus>> {
        let private = self.sys.private()?;
        let mut statuses = HashMap::new();
        for actor in actors {
            // An actor that exited since the listing is a dead letter: skipped.
            let _ = private.tell(actor, StatusRequest);
        }
        let deadline = Instant::now() + ACTOR_STATUS_TIMEOUT;
        while statuses.len() < actors.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match private.listen(left)? {
                Some(envelope) => {
                    if let Ok(status) = envelope.get::<ActorStatus>() {
                        statuses.insert(status.actor_address.clone(), status.clone());
                    }
                }
                None => break,
            }
        }
        Ok(statuses)
    }

    /// The actor `spec` names: `#N` (the numbered list, or this system's actors in address
    /// order when there is none yet), `name:GLOBAL`, or an address; an error unless it is a
    /// live actor of this system.
    pub fn resolve(&mut self, spec: &str) -> CliResult<ActorAddress> {
        let spec = spec.trim();
        let status = self.status()?;
        let address = if let Some(number) = spec.strip_prefix('#') {
            let n: usize = number
                .parse()
                .map_err(|_| CliError(format!("{spec:?} is not #N with a number N")))?;
            if self.numbered.is_empty() {
                self.numbered = status.actors.iter().map(|a| a.address.clone()).collect();
            }
            n.checked_sub(1)
                .and_then(|i| self.numbered.get(i))
                .cloned()
                .ok_or_else(|| {
                    CliError(format!(
                        "there is no {spec}: the list has {} addresses (run `actors` to number them)",
                        self.numbered.len()
                    ))
                })?
        } else if let Some(name) = spec.strip_prefix("name:") {
            return status
                .global_actors
                .iter()
                .find(|(global, _)| global == name)
                .map(|(_, address)| address.clone())
                .ok_or_else(|| CliError(format!("no actor has the global name {name:?}")));
        } else {
            parse_address(spec)?
        };
        if status.actors.iter().any(|a| a.address == address) {
            Ok(address)
        } else {
            Err(CliError(format!(
                "{address} is not an actor of this system (it may have exited)"
            )))
        }
    }

    /// Runs one subcommand (not `top`, which needs a terminal), printing to `out`.
    pub fn execute(&mut self, command: &Command, out: &mut dyn Write) -> CliResult {
        match command {
            Command::Status { json } => {
                let status = self.status()?;
                if *json {
                    let text = serde_json::to_string_pretty(&status)
                        .map_err(|e| CliError(format!("status as JSON: {e}")))?;
                    writeln!(out, "{text}")?;
                } else {
                    self.number(status.actors.iter().map(|a| a.address.clone()).collect());
                    format::status(out, &self.attach, &status)?;
                }
            }
            Command::Actors { tree, json } => {
                let status = self.status()?;
                let addresses: Vec<ActorAddress> =
                    status.actors.iter().map(|a| a.address.clone()).collect();
                let statuses = self.actor_statuses(&addresses)?;
                if *json {
                    let mut listed: Vec<&ActorStatus> = statuses.values().collect();
                    listed.sort_by(|a, b| a.actor_address.cmp(&b.actor_address));
                    let text = serde_json::to_string_pretty(&listed)
                        .map_err(|e| CliError(format!("actors as JSON: {e}")))?;
                    writeln!(out, "{text}")?;
                } else {
                    let order = format::actors(out, &status, &statuses, *tree)?;
                    self.number(order);
                }
            }
            Command::Tell { actor, text } => {
                let to = self.resolve(actor)?;
                self.sys.tell(&to, text.join(" "))?;
                writeln!(out, "told {to}")?;
            }
            Command::Ask {
                actor,
                text,
                timeout,
            } => {
                let to = self.resolve(actor)?;
                let private = self.sys.private()?;
                match private.ask(&to, text.join(" "), *timeout)? {
                    Some(reply) => format::reply(out, &reply)?,
                    None => return Err(CliError(format!("no reply from {to} within {timeout:?}"))),
                }
            }
            Command::Kill { actor } => {
                let to = self.resolve(actor)?;
                self.sys.tell(&to, ActorExitRequest::new())?;
                writeln!(out, "asked {to} to exit")?;
            }
            Command::Shutdown => {
                self.sys.shutdown()?;
                writeln!(
                    out,
                    "the actor system on port {} is shut down",
                    self.attach.port()
                )?;
            }
            Command::LogLevel { level } => {
                let (before, now) = self.sys.set_admin_log_level(level)?;
                writeln!(out, "admin log level: {now} (was {before})")?;
            }
            Command::Top(_) => {
                return Err(CliError("top needs a terminal of its own".into()));
            }
        }
        Ok(())
    }
}

/// Parses an address as actors print it: `ActorAddr-(<system in hex>|<number>)`.
pub fn parse_address(text: &str) -> CliResult<ActorAddress> {
    let bad = || {
        CliError(format!(
            "{text:?} is not an actor: give an address (ActorAddr-(5f3a|2)), #N or name:GLOBAL"
        ))
    };
    let inner = text
        .strip_prefix("ActorAddr-(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (system, id) = inner.split_once('|').ok_or_else(bad)?;
    let system = u64::from_str_radix(system, 16).map_err(|_| bad())?;
    let id: u64 = id.parse().map_err(|_| bad())?;
    Ok(ActorAddress::new(
        thespian::core::SystemId::from_raw(system),
        id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_back_from_their_display() {
        let address = ActorAddress::new(thespian::core::SystemId::from_raw(0x5f3a), 12);
        assert_eq!(parse_address(&address.to_string()), Ok(address));
    }

    /// The same cases on every run.
    fn config() -> proptest::test_runner::Config {
        proptest::test_runner::Config {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0C11_0001),
            cases: 256,
            ..proptest::test_runner::Config::default()
        }
    }

    proptest::proptest! {
        #![proptest_config(config())]

        #[test]
        fn every_address_parses_back(system: u64, id: u64) {
            let address = ActorAddress::new(thespian::core::SystemId::from_raw(system), id);
            proptest::prop_assert_eq!(parse_address(&address.to_string()), Ok(address));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,40}") {
            if let Ok(address) = parse_address(&text) {
                // What parses names the same address as its printed form.
                proptest::prop_assert_eq!(parse_address(&address.to_string()), Ok(address));
            }
        }
    }

    #[test]
    fn malformed_addresses_are_clear_errors() {
        for text in [
            "",
            "greeter",
            "ActorAddr-(zz|1)",
            "ActorAddr-(12|x)",
            "ActorAddr-(12)",
        ] {
            let error = parse_address(text).expect_err(text);
            assert!(error.0.contains("is not an actor"), "{error}");
        }
    }
}
