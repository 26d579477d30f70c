//! The `thespian` command: see `thespian --help`, and the crate's library for what each
//! subcommand does.

use clap::Parser;

fn main() {
    let cli = thespian_cli::Cli::parse();
    // The command's own warnings (a lost connection, say) on stderr; RUST_LOG overrides.
    let _ = env_logger_init();
    let mut out = std::io::stdout().lock();
    if let Err(e) = thespian_cli::run(&cli, &mut out) {
        eprintln!("thespian: {e}");
        std::process::exit(1);
    }
}

/// Logs warnings and errors of the libraries to stderr.
fn env_logger_init() -> Result<(), log::SetLoggerError> {
    log::set_max_level(log::LevelFilter::Warn);
    log::set_boxed_logger(Box::new(Stderr))
}

/// A minimal stderr logger: the command prints its results on stdout, problems here.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("thespian: {}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}
