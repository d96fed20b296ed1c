//! Error kinds that decide a binary's exit code, and the file problems `enroll check` lists.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | ok |
//! | 1 | error (bad file, I/O, Docker) |
//! | 2 | usage (bad flags or arguments) |
//! | 3 | refused: no capacity, a conflict, or over a quota |
//! | 4 | authentication failed |

use std::fmt;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_REFUSED: u8 = 3;
pub const EXIT_AUTHENTICATION: u8 = 4;

/// The request was understood but cannot be granted: no capacity, a conflict, a quota.
#[derive(Debug)]
pub struct Refused(pub String);

/// The user could not prove who they are.
#[derive(Debug)]
pub struct AuthenticationFailed(pub String);

/// The command line (or an answer that stands for one) was malformed.
#[derive(Debug)]
pub struct UsageError(pub String);

macro_rules! message_error {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
        impl std::error::Error for $name {}
    };
}
message_error!(Refused);
message_error!(AuthenticationFailed);
message_error!(UsageError);

/// The exit code a binary returns for an error: the first kind found along its chain.
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<Refused>() {
            return EXIT_REFUSED;
        }
        if cause.is::<AuthenticationFailed>() {
            return EXIT_AUTHENTICATION;
        }
        if cause.is::<UsageError>() {
            return EXIT_USAGE;
        }
    }
    EXIT_ERROR
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One thing wrong in one file: where, which field, and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct FileProblem {
    pub severity: Severity,
    /// As shown to the admin: relative to the root where possible.
    pub path: String,
    pub line: Option<usize>,
    /// Dotted path of the field (`max_default_capability.cpus`), empty when the whole file is at fault.
    pub field: String,
    pub message: String,
}

impl FileProblem {
    pub fn error(
        path: impl Into<String>,
        line: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FileProblem { severity: Severity::Error, path: path.into(), line, field: field.into(), message: message.into() }
    }

    pub fn warning(
        path: impl Into<String>,
        line: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FileProblem { severity: Severity::Warning, ..Self::error(path, line, field, message) }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A path from a damaged setting may itself be 100 KB long.
        let mut text =
            if self.path.chars().count() > 2 * QUOTED_VALUE_CHARS { quoted(&self.path) } else { self.path.clone() };
        if let Some(line) = self.line {
            text.push_str(&format!(":{line}"));
        }
        if self.severity == Severity::Warning {
            text.push_str(": warning");
        }
        if !self.field.is_empty() {
            text.push_str(&format!(": {}", self.field));
        }
        text.push_str(&format!(": {}", self.message));
        // Every problem is shown through here (`enroll check`, every binary's error), so this
        // is where a value copied from a damaged file is cut down to size.
        formatter.write_str(&fit_lines(&text, PROBLEM_CHARS))
    }
}

impl std::error::Error for FileProblem {}

/// Several problems at once, so one run can report everything that is wrong in a file.
#[derive(Debug, Clone)]
pub struct FileProblems(pub Vec<FileProblem>);

impl fmt::Display for FileProblems {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(formatter)?;
            }
            write!(formatter, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FileProblems {}

/// The most characters of a value from a file that a message quotes (`"aaaa…" (100000 bytes)`
/// beyond that): a damaged file may hold a 100 KB value, and the admin needs to recognise it,
/// not to read it.
pub const QUOTED_VALUE_CHARS: usize = 60;
/// The longest line of an error message, prefix (`error: `) included.
pub const MESSAGE_LINE_CHARS: usize = 300;
/// The longest line of one [`FileProblem`], leaving room for a prefix such as `error: ` or
/// `warning: ` and a suffix such as ` (row skipped)`.
pub const PROBLEM_CHARS: usize = 270;

/// `value` quoted for a message: in full (escaped like `{:?}`) when short, else its first
/// [`QUOTED_VALUE_CHARS`] characters, an ellipsis and its full length.
pub fn quoted(value: &str) -> String {
    let mut escaped = String::new();
    for character in value.chars() {
        let piece: String = character.escape_debug().collect();
        if escaped.chars().count() + piece.chars().count() > QUOTED_VALUE_CHARS {
            return format!("\"{escaped}…\" ({} bytes)", value.len());
        }
        escaped.push_str(&piece);
    }
    format!("\"{escaped}\"")
}

/// Text from a file (a path, say) for a message: as it is when short and plain, else quoted
/// and cut as [`quoted`] does.
pub fn shown(text: &str) -> String {
    if text.chars().count() <= QUOTED_VALUE_CHARS && !text.chars().any(char::is_control) {
        text.to_string()
    } else {
        quoted(text)
    }
}

/// A number from a file for a message: as written when it is of a sensible size, in
/// scientific notation otherwise (`1e308`, not 309 digits).
pub fn number(value: f64) -> String {
    let size = value.abs();
    if value.is_finite() && (size == 0.0 || (1e-6..1e15).contains(&size)) {
        value.to_string()
    } else {
        format!("{value:e}")
    }
}

/// Each line of `text` made fit for a message: every quoted value in it longer than
/// [`QUOTED_VALUE_CHARS`] cut as [`quoted`] cuts it (messages from the YAML and CSV parsers
/// quote what they found in full), then any line still longer than `limit` characters cut,
/// saying how long it was.
pub fn fit_lines(text: &str, limit: usize) -> String {
    text.split('\n').map(|line| fit_line(line, limit)).collect::<Vec<_>>().join("\n")
}

fn fit_line(line: &str, limit: usize) -> String {
    let line = shorten_quoted(line);
    let length = line.chars().count();
    if length <= limit {
        return line;
    }
    let tail = format!("… ({length} characters in all)");
    let kept: String = line.chars().take(limit.saturating_sub(tail.chars().count())).collect();
    format!("{kept}{tail}")
}

/// Replaces each double-quoted, backslash-escaped string in `line` whose content is longer
/// than [`QUOTED_VALUE_CHARS`] (with some slack, so that a value [`quoted`] already cut is
/// left alone) by its start, an ellipsis and its length. A quote that is never closed is
/// left as it is.
fn shorten_quoted(line: &str) -> String {
    const SLACK: usize = 4;
    let characters: Vec<char> = line.chars().collect();
    let mut result = String::with_capacity(line.len().min(4 * MESSAGE_LINE_CHARS));
    let mut index = 0;
    while index < characters.len() {
        if characters[index] != '"' {
            result.push(characters[index]);
            index += 1;
            continue;
        }
        // Find the closing quote, skipping escaped characters.
        let mut end = index + 1;
        while end < characters.len() && characters[end] != '"' {
            end += if characters[end] == '\\' { 2 } else { 1 };
        }
        if end >= characters.len() {
            result.extend(&characters[index..]);
            break;
        }
        let content = &characters[index + 1..end];
        if content.len() > QUOTED_VALUE_CHARS + SLACK {
            // Cut between escapes, never inside one (`\u{1f}` stays whole or goes).
            let mut kept = 0;
            let mut position = 0;
            while position < content.len() {
                let width = if content[position] == '\\' { escape_width(&content[position..]) } else { 1 };
                if kept + width > QUOTED_VALUE_CHARS {
                    break;
                }
                kept += width;
                position += width;
            }
            let head: String = content[..position].iter().collect();
            result.push_str(&format!("\"{head}…\" ({} characters)", content.len()));
        } else {
            result.extend(&characters[index..=end]);
        }
        index = end + 1;
    }
    result
}

/// The length of the escape sequence at the start of `text` (`\n`, `\"`, `\u{1f}`).
fn escape_width(text: &[char]) -> usize {
    match text.get(1) {
        Some('u') if text.get(2) == Some(&'{') => {
            text.iter().position(|character| *character == '}').map_or(text.len(), |close| close + 1)
        }
        Some(_) => 2,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_quoted_cut_with_its_length() {
        assert_eq!(quoted("eight"), "\"eight\"");
        let long = "a".repeat(100_000);
        let shown = quoted(&long);
        assert_eq!(shown, format!("\"{}…\" (100000 bytes)", "a".repeat(QUOTED_VALUE_CHARS)));
        // Escapes count as what is shown, and are never split.
        let controls = "\u{1}".repeat(100);
        assert!(quoted(&controls).starts_with("\"\\u{1}"), "{}", quoted(&controls));
        assert!(quoted(&controls).contains("…\" (100 bytes)"), "{}", quoted(&controls));
    }

    #[test]
    fn huge_numbers_are_shown_short() {
        assert_eq!(number(1e308), "1e308");
        assert_eq!(number(99999999999.0), "99999999999");
        assert_eq!(number(-2.5), "-2.5");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(f64::INFINITY), "inf");
    }

    #[test]
    fn a_problem_quoting_a_long_value_fits_one_short_line() {
        // What the YAML parser says about a 100 KB value where a port belongs.
        let value = "x".repeat(100_000);
        let problem = FileProblem::error(
            "cfg/users_config.yaml",
            Some(12),
            "alice.forward_port",
            format!("invalid type: string {value:?}, expected u16"),
        );
        let shown = problem.to_string();
        assert!(shown.chars().count() <= PROBLEM_CHARS, "{shown}");
        assert!(
            shown.starts_with("cfg/users_config.yaml:12: alice.forward_port: invalid type: string \"xxx"),
            "{shown}"
        );
        assert!(shown.ends_with("…\" (100000 characters), expected u16"), "{shown}");
        // A value already cut is left as it is.
        let cut = FileProblem::error("f", Some(1), "", format!("found {}", quoted(&value)));
        assert_eq!(cut.to_string(), format!("f:1: found {}", quoted(&value)));
    }

    #[test]
    fn a_line_too_long_without_quotes_is_cut_saying_how_long_it_was() {
        let message = "9".repeat(5000);
        let shown = fit_lines(&format!("first\n{message}"), MESSAGE_LINE_CHARS);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0], "first");
        assert!(lines[1].chars().count() <= MESSAGE_LINE_CHARS, "{}", lines[1]);
        assert!(lines[1].ends_with("… (5000 characters in all)"), "{}", lines[1]);
        // An unclosed quote is not mistaken for a value.
        assert_eq!(fit_lines("found \"abc", 300), "found \"abc");
    }
}
