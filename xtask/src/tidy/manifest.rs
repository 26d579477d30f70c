//! Just enough of `Cargo.toml` for tidy: the workspace's members, a package's name and the
//! crates it depends on, each with its line. xtask uses the standard library only, so this is a
//! line-based reader of the few shapes Cargo manifests use for these, not a TOML parser.
//!
//! Understood: `[dependencies]`, `[build-dependencies]` and their `[target.<cfg>.…]` forms
//! (entries `name = …`, `name.workspace = true`, `"name" = …`, a rename's `package = "…"`,
//! values spanning lines), `[dependencies.name]` tables, and `members = [ … ]` under
//! `[workspace]`. `[dev-dependencies]` are skipped: tests may use anything.

/// A dependency that is part of a crate's build (normal or build dependency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dependency {
    /// The crate depended on (the `package = "…"` of a rename, else the key).
    pub(crate) name: String,
    /// 1-based line of the entry in the manifest.
    pub(crate) line: usize,
}

/// What tidy reads from one package manifest.
#[derive(Debug, Default)]
pub(crate) struct Manifest {
    /// `[package] name`, if the manifest has one.
    pub(crate) package_name: Option<String>,
    pub(crate) dependencies: Vec<Dependency>,
}

/// A workspace member path as written in the root manifest's `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) path: String,
    /// 1-based line of the path in the root manifest.
    pub(crate) line: usize,
}

/// The section a line of a manifest belongs to, as far as tidy cares.
enum Section {
    Package,
    Workspace,
    /// `[dependencies]`, `[build-dependencies]` or a `[target.<cfg>.…]` form of them.
    Dependencies,
    /// `[dependencies.<name>]` or a `[target.<cfg>.…]` form: one dependency's table.
    OneDependency,
    Other,
}

/// Reads a package manifest.
pub(crate) fn parse_package(text: &str) -> Manifest {
    let mut manifest = Manifest::default();
    let mut section = Section::Other;
    // An entry whose value spans several lines: its key, first line and text so far.
    let mut pending: Option<(String, usize, String)> = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = strip_comment(raw_line).trim();
        if let Some((key, first_line, mut entry)) = pending.take() {
            entry.push(' ');
            entry.push_str(line);
            if nesting(&entry) > 0 {
                pending = Some((key, first_line, entry));
            } else {
                manifest
                    .dependencies
                    .push(dependency(&key, &entry, first_line));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = section_of(line);
            if let (Section::OneDependency, Some(name)) = (&section, one_dependency_name(line)) {
                manifest.dependencies.push(Dependency {
                    name,
                    line: line_number,
                });
            }
            continue;
        }
        let Some((key, _value)) = line.split_once('=') else {
            continue;
        };
        let key = first_key_part(key.trim());
        match section {
            Section::Package if key == "name" => {
                manifest.package_name = quoted_strings(line).into_iter().next();
            }
            Section::Dependencies => {
                if nesting(line) > 0 {
                    pending = Some((key, line_number, line.to_string()));
                } else {
                    manifest
                        .dependencies
                        .push(dependency(&key, line, line_number));
                }
            }
            Section::OneDependency if key == "package" => {
                // A rename inside `[dependencies.<name>]`: the crate is the package.
                if let (Some(last), Some(package)) = (
                    manifest.dependencies.last_mut(),
                    quoted_strings(line).into_iter().next(),
                ) {
                    last.name = package;
                }
            }
            _ => {}
        }
    }
    manifest
}

/// Reads the `members` of the root manifest's `[workspace]`.
pub(crate) fn parse_workspace_members(text: &str) -> Vec<Member> {
    let mut members = Vec::new();
    let mut section = Section::Other;
    let mut in_members = false;
    for (index, raw_line) in text.lines().enumerate() {
        let line = strip_comment(raw_line).trim();
        if in_members {
            let (inside, closed) = match line.split_once(']') {
                Some((inside, _)) => (inside, true),
                None => (line, false),
            };
            members.extend(quoted_strings(inside).into_iter().map(|path| Member {
                path,
                line: index + 1,
            }));
            in_members = !closed;
            continue;
        }
        if line.starts_with('[') {
            section = section_of(line);
            continue;
        }
        if let (Section::Workspace, Some((key, value))) = (&section, line.split_once('=')) {
            if key.trim() == "members" {
                let value = value.trim_start().trim_start_matches('[');
                let (inside, closed) = match value.split_once(']') {
                    Some((inside, _)) => (inside, true),
                    None => (value, false),
                };
                members.extend(quoted_strings(inside).into_iter().map(|path| Member {
                    path,
                    line: index + 1,
                }));
                in_members = !closed;
            }
        }
    }
    members
}

/// The section a `[header]` line opens.
fn section_of(header: &str) -> Section {
    if header.starts_with("[[") {
        return Section::Other;
    }
    let inner = header.trim_start_matches('[');
    let inner = inner.split(']').next().unwrap_or_default();
    let parts = dotted_key_parts(inner);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    // `[target.<cfg>.X]` is read as `[X]`.
    let parts = match parts.as_slice() {
        ["target", _cfg, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    match parts {
        ["package"] => Section::Package,
        ["workspace"] => Section::Workspace,
        ["dependencies" | "build-dependencies"] => Section::Dependencies,
        ["dependencies" | "build-dependencies", _name] => Section::OneDependency,
        _ => Section::Other,
    }
}

/// The dependency a `[dependencies.<name>]` header names.
fn one_dependency_name(header: &str) -> Option<String> {
    let inner = header.trim_start_matches('[').split(']').next()?;
    dotted_key_parts(inner).pop()
}

/// A dependency from its entry (`key = value`, the value possibly joined from several lines).
fn dependency(key: &str, entry: &str, line: usize) -> Dependency {
    let name = package_rename(entry).unwrap_or_else(|| key.to_string());
    Dependency { name, line }
}

/// The `package = "…"` of an entry's inline table, if it renames the crate.
fn package_rename(entry: &str) -> Option<String> {
    let (_, value) = entry.split_once('=')?;
    let mut rest = value;
    while let Some(at) = rest.find("package") {
        let before = rest[..at].chars().next_back();
        let after = rest[at + "package".len()..].trim_start();
        if matches!(before, Some('{' | ',' | ' ')) && after.starts_with('=') {
            return quoted_strings(after).into_iter().next();
        }
        rest = &rest[at + "package".len()..];
    }
    None
}

/// The first part of a dotted key (`serde.workspace` → `serde`), unquoted.
fn first_key_part(key: &str) -> String {
    dotted_key_parts(key).into_iter().next().unwrap_or_default()
}

/// A dotted key split at the dots outside quotes, each part trimmed and unquoted.
fn dotted_key_parts(key: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in key.chars() {
        match (quote, c) {
            (None, '.') => parts.push(std::mem::take(&mut current)),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|part| {
            let part = part.trim();
            part.trim_matches(|c| c == '"' || c == '\'').to_string()
        })
        .collect()
}

/// The contents of the `"…"` and `'…'` strings of `text`, in order.
fn quoted_strings(text: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            let mut string = String::new();
            for inner in chars.by_ref() {
                if inner == c {
                    break;
                }
                string.push(inner);
            }
            strings.push(string);
        }
    }
    strings
}

/// `line` without its `# comment` (a `#` inside a string is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..at],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

/// Brackets and braces opened and not closed in `text` (outside strings).
fn nesting(text: &str) -> i32 {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(manifest: &Manifest) -> Vec<(&str, usize)> {
        manifest
            .dependencies
            .iter()
            .map(|d| (d.name.as_str(), d.line))
            .collect()
    }

    #[test]
    fn reads_every_shape_of_dependency_and_skips_dev_dependencies() {
        let manifest = parse_package(
            r#"[package]
name = "demo" # the crate
version.workspace = true

[dependencies]
serde.workspace = true
"log" = "0.4"
renamed = { package = "mio", version = "1" }
spread = { version = "1", features = [
    "a", # a comment with ] in it
] }

[target.'cfg(target_os = "linux")'.dependencies]
libc.workspace = true

[build-dependencies]
cc = "1"

[dependencies.blake3]
version = "1"

[dependencies.alias]
package = "zeroize"

[dev-dependencies]
proptest.workspace = true

[target.'cfg(loom)'.dev-dependencies]
loom = "0.7"

[[bin]]
name = "not-a-dependency"
"#,
        );
        assert_eq!(manifest.package_name.as_deref(), Some("demo"));
        assert_eq!(
            names(&manifest),
            [
                ("serde", 6),
                ("log", 7),
                ("mio", 8),
                ("spread", 9),
                ("libc", 14),
                ("cc", 17),
                ("blake3", 19),
                ("zeroize", 22),
            ]
        );
    }

    #[test]
    fn reads_members_over_several_lines_with_comments() {
        let members = parse_workspace_members(
            r#"[workspace]
resolver = "2"
members = [
    "core", # the core, "quoted" in a comment
    "facade",
    "benches/bench", "xtask",
]
default-members = ["core"]
exclude = ["fuzz"]
"#,
        );
        let paths: Vec<(&str, usize)> = members.iter().map(|m| (m.path.as_str(), m.line)).collect();
        assert_eq!(
            paths,
            [
                ("core", 4),
                ("facade", 5),
                ("benches/bench", 6),
                ("xtask", 6)
            ]
        );
        let one_line = parse_workspace_members("[workspace]\nmembers = [\"a\", \"b\"]\n");
        assert_eq!(one_line.len(), 2);
    }
}
