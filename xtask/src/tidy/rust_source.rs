//! The code of a Rust source file without its comments and literals, so tidy's token searches
//! (`unsafe`, …) are not fooled by a comment or a string that mentions them, and the unsafe
//! check can tell the `unsafe` keyword from the word in prose. A small lexer, not a parser:
//! it knows comments (nested block comments too), strings, raw strings, char literals and
//! lifetimes, which is all that decides whether a character is code.

/// `text` with every comment and the contents of every string and char literal replaced by
/// spaces. Newlines are kept, so a line number in the result is the line number in `text`.
pub(crate) fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let starts_token = i == 0 || !is_ident_char(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                code.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    code.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    code.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    code.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == '"' {
            code.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let skip = if chars[i] == '\\' { 2 } else { 1 };
                for &skipped in chars.iter().skip(i).take(skip) {
                    code.push(blank(skipped));
                }
                i += skip;
            }
            if i < chars.len() {
                code.push('"');
                i += 1;
            }
        } else if let Some(hashes) = raw_string_start(&chars, i).filter(|_| starts_token) {
            // `r"…"`, `r#"…"#`, `br#"…"#`: everything up to the opening quote is kept.
            let open = chars[i..]
                .iter()
                .position(|&c| c == '"')
                .map_or(chars.len(), |at| i + at);
            code.extend(&chars[i..=open.min(chars.len() - 1)]);
            i = open + 1;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while i < chars.len() && !chars[i..].starts_with(&closing) {
                code.push(blank(chars[i]));
                i += 1;
            }
            code.extend(chars.iter().skip(i).take(closing.len()));
            i += closing.len();
        } else if c == '\'' {
            // A char literal (`'x'`, `'\n'`, `'\u{1F600}'`), else a lifetime or label.
            let literal_end = if next == Some('\\') {
                // The escaped character is at `i + 2`, so the closing quote is after it.
                chars
                    .get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&c| c == '\''))
                    .map(|at| i + 3 + at)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match literal_end {
                Some(end) => {
                    code.push('\'');
                    code.extend(chars[i + 1..end].iter().map(|&c| blank(c)));
                    code.push('\'');
                    i = end + 1;
                }
                None => {
                    code.push('\'');
                    i += 1;
                }
            }
        } else {
            code.push(c);
            i += 1;
        }
    }
    code
}

/// The number of `#`s of a raw string starting at `i` (`r"`, `r#"`, `br"`, `cr#"`, …).
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    let mut at = i;
    if matches!(chars.get(at), Some('b' | 'c')) {
        at += 1;
    }
    if chars.get(at) != Some(&'r') {
        return None;
    }
    at += 1;
    let hashes = chars[at..].iter().take_while(|&&c| c == '#').count();
    (chars.get(at + hashes) == Some(&'"')).then_some(hashes)
}

/// True for the characters of an identifier.
pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The 0-based byte offsets of `word` in `code` where it stands as a whole word.
pub(crate) fn word_offsets<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(word).filter_map(move |(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        let standalone = !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char);
        standalone.then_some(at)
    })
}

/// The 1-based line of byte offset `at` in `text`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// The 1-based, inclusive line ranges of the inline test modules in `code` (as returned by
/// [`code_only`], so braces in comments and literals do not count): a `#[cfg(test)]`
/// attribute followed by `mod <name> {`, through its closing brace.
pub(crate) fn test_module_lines(code: &str) -> Vec<(usize, usize)> {
    const ATTRIBUTE: &str = "#[cfg(test)]";
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find(ATTRIBUTE) {
        let at = from + found;
        from = at + ATTRIBUTE.len();
        let rest = code[from..].trim_start();
        let is_module = rest
            .strip_prefix("mod")
            .is_some_and(|after| after.starts_with(char::is_whitespace));
        if !is_module {
            continue;
        }
        let module = code.len() - rest.len();
        // An inline module opens a brace before any `;` (`mod tests;` is a file of its own).
        let Some(open) = code[module..]
            .find(['{', ';'])
            .map(|i| module + i)
            .filter(|&i| code.as_bytes()[i] == b'{')
        else {
            continue;
        };
        let mut depth = 0usize;
        let mut close = code.len();
        for (i, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        ranges.push((line_of(code, at), line_of(code, close)));
        from = close;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_test_modules_are_found_with_their_lines() {
        let text = "fn a() {}\n\
                    #[cfg(test)]\n\
                    fn helper() { \"}\" }\n\
                    #[cfg(test)]\n\
                    mod tests {\n\
                        fn b() { let s = \"}\"; }\n\
                    }\n\
                    fn c() {}\n\
                    #[cfg(test)]\n\
                    mod more;\n";
        assert_eq!(test_module_lines(&code_only(text)), vec![(4, 7)]);
    }

    #[test]
    fn comments_and_literals_become_spaces_and_lines_stay() {
        let source = r####"let a = "unsafe { \" }"; // unsafe {
/* unsafe { /* nested */ unsafe impl */ let b = 'x';
let c = r#"unsafe "{ "#; let q = '"'; fn f<'a>(x: &'a str) {}
let d = b'\''; unsafe { e() }"####;
        let code = code_only(source);
        assert_eq!(code.lines().count(), source.lines().count());
        assert_eq!(code.len(), source.len());
        let unsafe_lines: Vec<usize> = word_offsets(&code, "unsafe")
            .map(|at| line_of(&code, at))
            .collect();
        assert_eq!(unsafe_lines, [4]);
        assert!(code.contains("let b = ' ';"));
        assert!(code.contains("fn f<'a>(x: &'a str) {}"));
    }

    #[test]
    fn words_stand_alone() {
        let code = "unsafe_code; unsafe {} not_unsafe";
        assert_eq!(word_offsets(code, "unsafe").collect::<Vec<_>>(), [13]);
    }
}
