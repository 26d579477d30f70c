//! The command line: the options every subcommand takes and the subcommands. The interactive
//! shell parses each of its lines with the same [`Command`] type, so both speak one language.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Attach to a running Thespian actor system (Tcp or Udp base), look inside it, talk to its
/// actors, watch it live.
///
/// The command attaches to the system's admin on its Admin Port like any program of the
/// system: with the system's secret (`~/.config/thespian/secret`, or `--secret-file`, or
/// `THESPIAN_SECRET_FILE`). It never starts a system: when nothing listens on the port it
/// says so. Without a subcommand it runs an interactive shell.
///
/// Actors are named by their address (`ActorAddr-(5f3a|2)`), by their number in the last
/// listing (`#2`, as `thespian actors` numbers them), or by global name (`name:greeter`).
#[derive(Clone, Debug, Parser)]
#[command(name = "thespian", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Where the system is.
    #[command(flatten)]
    pub attach: Attach,
    /// What to do; none runs the interactive shell.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Examples shown after `--help`.
const EXAMPLES: &str = "\
Examples:
  thespian status                      the system on TCP port 1900
  thespian --udp status                the system on UDP port 1029
  thespian --port 1901 --udp actors --tree
  thespian ask name:greeter hi         ask the actor named \"greeter\", print its reply
  thespian tell '#2' hello             tell the second actor of `thespian actors`
  thespian kill 'ActorAddr-(5f3a|2)'   ask an actor to exit (ActorExitRequest)
  thespian log-level debug             the admin logs debug records from now on
  thespian top                         live view, refreshed every second; q quits
  thespian                             interactive shell (help lists its commands)";

/// Which system to attach to: every subcommand takes these.
#[derive(Clone, Debug, Args)]
pub struct Attach {
    /// The system's Admin Port [default: 1900, or 1029 with --udp: Thespian's defaults].
    #[arg(long, short, global = true)]
    pub port: Option<u16>,
    /// The system runs on the Udp base (default: Tcp).
    #[arg(long, global = true)]
    pub udp: bool,
    /// The system's secret file (default: THESPIAN_SECRET_FILE, else ~/.config/thespian/secret).
    #[arg(long, global = true, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
}

impl Attach {
    /// The Admin Port: the one given, else the base's default (Thespian's: TCP 1900, UDP 1029).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.udp { 1029 } else { 1900 })
    }

    /// The transport's name, for messages.
    pub fn protocol(&self) -> &'static str {
        if self.udp {
            "UDP"
        } else {
            "TCP"
        }
    }
}

/// One thing to do on the attached system.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// The system's status: base, counts, capabilities, convention, actors.
    Status {
        /// Print the status as JSON (the `SystemStatus` message's fields).
        #[arg(long)]
        json: bool,
    },
    /// Every actor of the system, numbered (#N), with its own counters.
    Actors {
        /// Show the parent/child tree instead of a flat list.
        #[arg(long)]
        tree: bool,
        /// Print the actors' statuses as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send an actor a text message (a `String`).
    Tell {
        /// The actor: an address, #N or name:GLOBAL.
        actor: String,
        /// The text (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Send an actor a text message and print its reply, whatever its type.
    Ask {
        /// The actor: an address, #N or name:GLOBAL.
        actor: String,
        /// The text (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// How long to wait for the reply (5s, 500ms, or seconds).
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Ask an actor to exit (an `ActorExitRequest`); its children exit first.
    Kill {
        /// The actor: an address, #N or name:GLOBAL.
        actor: String,
    },
    /// Shut the whole system down: every actor exits, then the admin.
    Shutdown,
    /// Change the admin's log level at run time.
    LogLevel {
        /// off, error, warn, info, debug or trace.
        level: String,
    },
    /// A live full-screen view, refreshed every second; q quits.
    Top(TopArgs),
}

/// Options of `thespian top`.
#[derive(Clone, Debug, Args)]
pub struct TopArgs {
    /// The refresh period (1s, 250ms, or seconds).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
}

/// A line of the interactive shell: a subcommand, or one of the shell's own commands.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "",
    no_binary_name = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
pub struct ShellLine {
    /// What to do.
    #[command(subcommand)]
    pub command: ShellCommand,
}

/// The shell's commands: every subcommand, plus its own.
#[derive(Clone, Debug, Subcommand)]
pub enum ShellCommand {
    /// A subcommand of `thespian`.
    #[command(flatten)]
    Run(Command),
    /// Attach to another system.
    Attach {
        /// Its Admin Port.
        port: u16,
        /// It runs on the Udp base.
        #[arg(long)]
        udp: bool,
    },
    /// The numbered address list (#N).
    Addresses,
    /// List the shell's commands.
    Help,
    /// Leave the shell (the system keeps running).
    #[command(alias = "exit")]
    Quit,
}

/// Parses `5s`, `500ms`, `2m` or a plain number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (5s, 500ms, 2m or seconds)"))?;
    let seconds = value * scale;
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?} is not a duration between 0 and a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        ShellLine::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("1e30").is_err());
    }

    #[test]
    fn ask_joins_its_words_and_takes_global_options_after_the_subcommand() {
        let cli = Cli::try_parse_from(["thespian", "ask", "name:g", "hi", "there", "--port", "7"])
            .expect("parses");
        assert_eq!(cli.attach.port(), 7);
        let udp = Cli::try_parse_from(["thespian", "--udp", "status"]).expect("parses");
        assert_eq!(udp.attach.port(), 1029);
        match cli.command {
            Some(Command::Ask { actor, text, .. }) => {
                assert_eq!(actor, "name:g");
                assert_eq!(text.join(" "), "hi there");
            }
            other => panic!("not ask: {other:?}"),
        }
    }

    #[test]
    fn shell_lines_parse_subcommands_and_shell_commands() {
        let line = ShellLine::try_parse_from(["status", "--json"]).expect("parses");
        assert!(matches!(
            line.command,
            ShellCommand::Run(Command::Status { json: true })
        ));
        let line = ShellLine::try_parse_from(["exit"]).expect("parses");
        assert!(matches!(line.command, ShellCommand::Quit));
    }
}
