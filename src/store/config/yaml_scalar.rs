//! How gpu-booking writes a string into YAML so that it reads back as the same string under
//! YAML 1.2 (our own reader) *and* YAML 1.1 (PyYAML's `safe_load`, the original system's
//! reader). The two disagree on plain words: 1.1 reads `on`, `no` and `y` as booleans,
//! `0012` as octal 10, `12:30` as 750 (sexagesimal), `1_000` as 1000 and `2024-01-01` as a
//! date, where 1.2 reads strings. A lab must be able to go back to the original, so a string
//! is written plain only when it is plainly text to both, and double-quoted otherwise.
//!
//! The rule for plain is deliberately narrow (quoting a string that did not need it costs
//! two characters; not quoting one that did changes a password or an id):
//! - it starts with a letter, `_`, `/` or `$` (a crypt hash), or with `.` followed by `/`,
//!   `.` or a letter that cannot begin `.inf`/`.nan`. Every number, date and sexagesimal
//!   value of either version starts with a digit, a sign or a dot, and every indicator
//!   (`-`, `?`, `:`, `#`, `&`, `*`, `!`, `|`, `>`, `'`, `"`, `%`, `@`, `` ` ``, `=`, `<<`,
//!   `~`, flow brackets) is left out of that set;
//! - it holds only letters, digits and `_ . / $ + = -`, and `:` when a non-space follows
//!   (no spaces, so no `: ` or ` #`; no control or non-ASCII characters);
//! - it is not one of the words either version reads as a boolean or null, in any case.
//!
//! Everything else is written in double quotes, with every character a reader could take
//! for a line break, a non-printable or a byte-order mark escaped.

use std::fmt::Write as _;

/// `text` as a YAML scalar: plain when both YAML versions read it as this very string,
/// otherwise double-quoted.
pub fn scalar(text: &str) -> String {
    if is_plain_text(text) { text.to_string() } else { double_quoted(text) }
}

/// True when `text` may be written without quotes.
pub fn is_plain_text(text: &str) -> bool {
    let mut characters = text.chars().peekable();
    let Some(first) = characters.next() else {
        return false;
    };
    let start_ok = match first {
        'A'..='Z' | 'a'..='z' | '_' | '/' | '$' => true,
        // `./work`, `../x`, `.default`: paths. `.5`, `.inf`, `.NaN` are numbers.
        '.' => {
            matches!(characters.peek(), Some('/' | '.'))
                || characters
                    .peek()
                    .is_some_and(|next| next.is_ascii_alphabetic() && !matches!(next, 'i' | 'I' | 'n' | 'N'))
        }
        _ => false,
    };
    if !start_ok {
        return false;
    }
    let bytes = text.as_bytes();
    let body_ok = bytes.iter().enumerate().all(|(index, byte)| match byte {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'/' | b'$' | b'+' | b'=' | b'-' => true,
        // `repository:tag`; a trailing `:` would make a mapping key.
        b':' => index + 1 < bytes.len(),
        _ => false,
    });
    body_ok && !is_reserved_word(text)
}

/// The words YAML 1.1 (including the spec's `y`/`n`) or 1.2 read as a boolean or null.
fn is_reserved_word(text: &str) -> bool {
    const WORDS: [&str; 9] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    WORDS.iter().any(|word| word.eq_ignore_ascii_case(text))
}

/// `text` in double quotes. Printable ASCII and non-ASCII characters that both readers
/// accept raw are kept; the rest is escaped (`\n`, `\x7f`, `\u2028`, …).
fn double_quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\0' => quoted.push_str("\\0"),
            '\t' => quoted.push_str("\\t"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            ' '..='~' => quoted.push(character),
            // Line breaks in YAML 1.1 (NEL, LS, PS), the byte-order mark, and what neither
            // reader accepts raw (C0/C1 controls, DEL, the non-characters U+FFFE/U+FFFF).
            '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(quoted, "\\u{:04x}", u32::from(character));
            }
            character if u32::from(character) < 0xa0 => {
                let _ = write!(quoted, "\\x{:02x}", u32::from(character));
            }
            character => quoted.push(character),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(text: &str) -> serde_yaml::Value {
        let document = format!("key: {}\nlist:\n  - {}\n{}: value\n", scalar(text), scalar(text), scalar(text));
        let parsed: serde_yaml::Mapping = serde_yaml::from_str(&document).unwrap_or_else(|error| {
            panic!("{document:?} does not parse: {error}");
        });
        let key = parsed.get("key").unwrap().clone();
        assert_eq!(parsed.get("list").unwrap()[0], key, "{document:?}");
        assert!(parsed.contains_key(serde_yaml::Value::String(text.to_string())), "{document:?}");
        key
    }

    #[test]
    fn words_and_numbers_either_version_reads_differently_are_quoted() {
        for ambiguous in [
            "on",
            "Off",
            "YES",
            "no",
            "y",
            "N",
            "true",
            "False",
            "null",
            "NULL",
            "~",
            "",
            "0012",
            "12",
            "1_000",
            "0x1f",
            "0o17",
            "0b101",
            "12:30",
            "190:20:30.15",
            "1e5",
            "1.5",
            ".5",
            ".inf",
            "-.INF",
            ".NaN",
            "2024-01-01",
            "2024-01-01 12:00:00",
            "-1",
            "+1",
            "=",
            "<<",
            "-",
            "a:",
            "a: b",
            "a #b",
            "- x",
            "? x",
            "*alias",
            "&anchor",
            "!tag",
            "|",
            ">",
            "%dir",
            "@x",
            "`x",
            "[a]",
            "{a}",
            "'a'",
            "\"a\"",
            " a",
            "a ",
        ] {
            assert!(scalar(ambiguous).starts_with('"'), "{ambiguous:?} must be quoted, written {}", scalar(ambiguous));
            assert_eq!(read_back(ambiguous), serde_yaml::Value::String(ambiguous.to_string()));
        }
    }

    #[test]
    fn everyday_values_stay_plain() {
        for plain in [
            "alice",
            "m11007s05-1",
            "rober5566a/aivc-server:cuda11.8.0-cudnn8-devel-ubuntu20.04",
            "/mnt/Users/alice",
            "./volumes/work/alice",
            "../shared",
            "$6$rounds=5000$salt$Hash./09",
            "yess",
            "nan",
            "inf",
        ] {
            assert_eq!(scalar(plain), plain);
            assert_eq!(read_back(plain), serde_yaml::Value::String(plain.to_string()));
        }
    }

    #[test]
    fn line_breaks_controls_and_marks_are_escaped() {
        for text in ["a\nb", "tab\there", "nul\0", "del\u{7f}", "nel\u{85}", "ls\u{2028}ps\u{2029}", "\u{feff}bom"] {
            let written = scalar(text);
            assert!(!written.contains(['\n', '\t', '\0', '\u{7f}', '\u{85}', '\u{2028}', '\u{feff}']), "{written:?}");
            assert_eq!(read_back(text), serde_yaml::Value::String(text.to_string()));
        }
        assert_eq!(scalar("café \"x\" \\"), "\"café \\\"x\\\" \\\\\"");
    }
}
