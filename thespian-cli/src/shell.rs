//! The interactive shell: `thespian` without a subcommand. Each line is one subcommand (the
//! same words as on the command line) or one of the shell's own commands (`attach`,
//! `addresses`, `help`, `quit`). It keeps Thespian's shell's numbered address list (`#N`), a
//! history (up and down arrows) and tab completion of commands, `#N` and `name:GLOBAL`.

use std::borrow::Cow;
use std::io::Write;

use clap::{CommandFactory, Parser};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};

use crate::args::{Attach, Command, ShellCommand, ShellLine};
use crate::session::Session;
use crate::{top, CliError, CliResult};

/// The shell's prompt.
pub const PROMPT: &str = "thespian> ";

/// The words the shell completes: its commands, then what the last listing numbered and the
/// global names it saw.
#[derive(Debug, Default)]
pub struct ShellHelper {
    words: Vec<String>,
}

impl ShellHelper {
    fn commands() -> Vec<String> {
        ShellLine::command()
            .get_subcommands()
            .flat_map(|c| {
                std::iter::once(c.get_name().to_owned())
                    .chain(c.get_all_aliases().map(str::to_owned))
            })
            .collect()
    }

    /// Sets the completions for the session's current state.
    fn refresh(&mut self, session: &Session, names: &[String]) {
        let mut words = ShellHelper::commands();
        words.extend((1..=session.numbered().len()).map(|n| format!("#{n}")));
        words.extend(names.iter().map(|n| format!("name:{n}")));
        self.words = words;
    }

    /// The completions of the word that ends at `pos` in `line`: where it starts and the
    /// candidates.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let start = line[..pos].rfind(' ').map_or(0, |i| i + 1);
        let word = &line[start..pos];
        let first = !line[..start].contains(|c: char| !c.is_whitespace());
        let matches = self
            .words
            .iter()
            .filter(|w| w.starts_with(word))
            // Commands complete only as the first word, addresses only after it.
            .filter(|w| first != (w.starts_with('#') || w.starts_with("name:")))
            .cloned()
            .collect();
        (start, matches)
    }
}

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

/// Splits a line into words: blanks separate, double or single quotes group.
pub fn split_words(line: &str) -> CliResult<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(CliError("a quote is not closed".into()));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// What the shell does after a line.
enum Next {
    Continue,
    Quit,
}

/// Runs the shell on the terminal until `quit`, Ctrl-D or Ctrl-C.
pub fn run(session: &mut Session, out: &mut dyn Write) -> CliResult {
    let mut editor: Editor<ShellHelper, DefaultHistory> =
        Editor::new().map_err(|e| CliError(format!("the shell cannot start: {e}")))?;
    let mut helper = ShellHelper::default();
    let names = global_names(session);
    helper.refresh(session, &names);
    editor.set_helper(Some(helper));
    let attach = session.attached_to().clone();
    writeln!(
        out,
        "Attached to the actor system on {} port {}. Type help for the commands, quit to leave.",
        attach.protocol(),
        attach.port()
    )?;
    out.flush()?;
    loop {
        let line = match editor.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => return Ok(()),
            Err(e) => return Err(CliError(format!("the shell cannot read a line: {e}"))),
        };
        if line.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        match one_line(session, &line, out) {
            Ok(Next::Quit) => return Ok(()),
            Ok(Next::Continue) => {}
            Err(e) => writeln!(out, "error: {e}")?,
        }
        out.flush()?;
        let names = global_names(session);
        if let Some(helper) = editor.helper_mut() {
            helper.refresh(session, &names);
        }
    }
}

fn global_names(session: &Session) -> Vec<String> {
    session
        .status()
        .map(|s| s.global_actors.into_iter().map(|(name, _)| name).collect())
        .unwrap_or_default()
}

fn one_line(session: &mut Session, line: &str, out: &mut dyn Write) -> CliResult<Next> {
    let words = split_words(line)?;
    let parsed = match ShellLine::try_parse_from(&words) {
        Ok(parsed) => parsed,
        Err(e) => {
            // clap's own text: usage, or the help a `--help` asked for.
            write!(out, "{}", e.render())?;
            return Ok(Next::Continue);
        }
    };
    match parsed.command {
        ShellCommand::Quit => return Ok(Next::Quit),
        ShellCommand::Help => {
            write!(out, "{}", ShellLine::command().render_help())?;
        }
        ShellCommand::Addresses => {
            for (i, address) in session.numbered().iter().enumerate() {
                writeln!(out, "  #{:<3} {address}", i + 1)?;
            }
        }
        ShellCommand::Attach { port, udp } => {
            let attach = Attach {
                port: Some(port),
                udp,
                secret_file: session.attached_to().secret_file.clone(),
            };
            *session = Session::attach(&attach)?;
            writeln!(out, "attached to port {port}")?;
        }
        ShellCommand::Run(Command::Top(args)) => top::run_terminal(session, &args)?,
        ShellCommand::Run(command) => session.execute(&command, out)?,
    }
    Ok(Next::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_blanks_and_group_in_quotes() {
        assert_eq!(
            split_words(r#"ask #1 "hello there"  'a b'"#).expect("splits"),
            vec!["ask", "#1", "hello there", "a b"]
        );
        assert_eq!(split_words("   ").expect("splits"), Vec::<String>::new());
        assert!(split_words("ask \"open").is_err());
    }

    /// The same cases on every run.
    fn config() -> proptest::test_runner::Config {
        proptest::test_runner::Config {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0C11_0002),
            cases: 256,
            ..proptest::test_runner::Config::default()
        }
    }

    proptest::proptest! {
        #![proptest_config(config())]

        #[test]
        fn plain_words_survive_splitting(words in proptest::collection::vec("[a-z#:0-9]{1,8}", 0..6)) {
            proptest::prop_assert_eq!(split_words(&words.join("  ")).expect("no quotes"), words);
        }

        #[test]
        fn any_line_splits_or_is_refused_without_panicking(line in "\\PC{0,60}") {
            let _ = split_words(&line);
        }
    }

    #[test]
    fn commands_complete_first_and_addresses_after() {
        let helper = ShellHelper {
            words: vec![
                "status".into(),
                "shutdown".into(),
                "#1".into(),
                "name:greeter".into(),
            ],
        };
        assert_eq!(helper.candidates("st", 2), (0, vec!["status".into()]));
        assert_eq!(
            helper.candidates("ask na", 6),
            (4, vec!["name:greeter".into()])
        );
        assert_eq!(helper.candidates("ask #", 5), (4, vec!["#1".into()]));
        assert!(ShellHelper::commands().contains(&"quit".to_owned()));
        assert!(ShellHelper::commands().contains(&"log-level".to_owned()));
    }
}
