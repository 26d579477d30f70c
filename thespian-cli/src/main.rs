//! The `thespian` command: see `thespian --help`, and the crate's library for what each
//! subcommand does.

use clap::Parser;

fn main() {
    let cli = thespian_cli::Cli::parse();
    // The libraries' errors on stderr (their warnings repeat what the command's error says).
    let _ = stderr_logger();
    let mut out = std::io::stdout().lock();
    if let Err(e) = thespian_cli::run(&cli, &mut out) {
        eprintln!("thespian: {e}");
        std::process::exit(1);
    }
}

/// Logs the libraries' errors to stderr.
fn stderr_logger() -> Result<(), log::SetLoggerError> {
    log::set_max_level(log::LevelFilter::Error);
    log::set_boxed_logger(Box::new(Stderr))
}

/// A minimal stderr logger: the command prints its results on stdout, problems here.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Error
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("thespian: {}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}
