//! The `thespian` command, as a library: what each subcommand does, so tests can drive it in
//! process and the binary (`src/main.rs`) stays a thin wrapper.
//!
//! This crate exists because a running Tcp or Udp system is otherwise a black box: only the
//! program that started it can ask it anything. The command attaches to the admin on its port
//! like any program of the system (same secret, same authentication; it never starts a daemon),
//! then reads status, lists actors, tells and asks them, kills them, shuts the system down,
//! changes the admin's log level, shows a live view (`top`), or runs an interactive shell.
//!
//! - [`args`]: the command line (clap), shared by the binary and the shell's lines;
//! - [`session`]: an attached system and the numbered address list (`#N`);
//! - [`mod@format`]: how status, actors and replies are printed;
//! - [`top`]: the live view's model (sampled, pure) and its rendering (ratatui);
//! - [`shell`]: the interactive shell (rustyline).

#![warn(missing_docs)]

pub mod args;
pub mod format;
pub mod session;
pub mod shell;
pub mod top;

#[cfg(test)]
mod test_support;

use std::fmt;
use std::io::Write;

pub use args::{Cli, Command};
pub use session::Session;

/// A command's failure: a sentence for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<thespian::Error> for CliError {
    fn from(e: thespian::Error) -> CliError {
        CliError(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError(format!("output: {e}"))
    }
}

/// What a command returns.
pub type CliResult<T = ()> = Result<T, CliError>;

/// Runs the command line `cli`, writing what it prints to `out`: one subcommand, or the
/// interactive shell when there is none.
pub fn run(cli: &Cli, out: &mut dyn Write) -> CliResult {
    let mut session = Session::attach(&cli.attach)?;
    match &cli.command {
        None => shell::run(&mut session, out),
        Some(Command::Top(top)) => top::run_terminal(&mut session, top),
        Some(command) => session.execute(command, out),
    }
}
