//! What the configuration files share: parsing with errors that name file, line and field,
//! and the small value types the original's YAML uses (user ids that may look like numbers,
//! limits that may be the word `max`).

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};

use crate::error::FileProblem;

/// Parses `text` (the contents of `shown_path`) into `T`. A file that is empty or holds only
/// comments parses as `T::default()`-like `null`, which `T` must accept.
pub fn parse<T: DeserializeOwned>(shown_path: &str, text: &str) -> Result<T, FileProblem> {
    let text = crate::store::text_file::strip_bom(text);
    let blank = text.lines().all(|line| crate::store::yaml_lines::strip_comment(line).trim().is_empty());
    serde_yaml::from_str(if text.trim().is_empty() { "~" } else { text }).map_err(|error| {
        if blank {
            return FileProblem::error(
                shown_path,
                Some(1),
                "",
                "the file is empty (or holds only comments); expected its settings",
            );
        }
        let mut problem = problem_from(shown_path, &error);
        // The parser places a key written twice at the start of its mapping; the admin
        // wants the second one.
        if let Some(key) = problem.message.strip_suffix(WRITTEN_TWICE) {
            problem.line = crate::store::yaml_lines::line_of_second_key(text, key).or(problem.line);
        }
        problem
    })
}

/// Turns the parser's `field: message at line L column C` into our `file:L: field: message`.
pub fn problem_from(shown_path: &str, error: &serde_yaml::Error) -> FileProblem {
    let full = error.to_string();
    // Drop the problem's own ` at line L column C` (the line goes in front), but keep the
    // parser's context and its place: in `found unexpected end of stream at line 18 column 1,
    // while scanning a quoted scalar at line 11 column 13` the second place is where the
    // unclosed quote is.
    let without_location = match error.location().and_then(|location| {
        let mark = format!(" at line {} column {}", location.line(), location.column());
        full.rfind(&mark).map(|position| (position, mark.len()))
    }) {
        Some((position, length)) => {
            format!("{}{}", &full[..position], &full[position + length..])
        }
        None => full.clone(),
    };
    let line = error.location().map(|location| location.line());
    // The parser names our internal types (`expected struct RawHostDeploy`).
    let without_location = match without_location.find("expected struct ") {
        Some(position) => {
            let rest = &without_location[position + "expected struct ".len()..];
            let name_end = rest.find(|character: char| !character.is_alphanumeric()).unwrap_or(rest.len());
            format!("{}expected a mapping of keys and values{}", &without_location[..position], &rest[name_end..])
        }
        None => without_location,
    };
    // The parser prefixes the dotted field path (`max.cpus: ...`) when it knows it.
    let (field, message) = match without_location.split_once(": ") {
        Some((field, message)) if is_field_path(field) => (field.to_string(), message.to_string()),
        _ => (String::new(), without_location),
    };
    FileProblem::error(shown_path, line, field, message)
}

fn is_field_path(candidate: &str) -> bool {
    !candidate.is_empty()
        && !candidate.contains(' ')
        && candidate.chars().all(|character| character.is_alphanumeric() || "._-[]".contains(character))
}

/// A per-booking limit: a number, or `max` for the host's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Number(f64),
    Max,
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LimitVisitor;
        impl Visitor<'_> for LimitVisitor {
            type Value = Limit;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a number or \"max\"")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Limit, E> {
                if value.trim() == "max" {
                    Ok(Limit::Max)
                } else {
                    Err(E::custom(format!("expected a number or \"max\", found {}", crate::error::quoted(value))))
                }
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Limit, E> {
                Ok(Limit::Number(value as f64))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Limit, E> {
                self.visit_f64(value as f64)
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Limit, E> {
                if value.is_finite() && value >= 0.0 {
                    Ok(Limit::Number(value))
                } else {
                    Err(E::custom(format!(
                        "expected a number of at least 0 or \"max\", found {}",
                        crate::error::number(value)
                    )))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Limit, E> {
                Err(E::custom("expected a number or \"max\", found nothing"))
            }
        }
        deserializer.deserialize_any(LimitVisitor)
    }
}

/// A plain quantity of at least zero (cores, GB, GPUs).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Amount(pub f64);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl Visitor<'_> for AmountVisitor {
            type Value = Amount;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a number of at least 0")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Amount, E> {
                Err(E::custom(format!("expected a number of at least 0, found {}", crate::error::quoted(value))))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Amount, E> {
                Ok(Amount(value as f64))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Amount, E> {
                self.visit_f64(value as f64)
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Amount, E> {
                if value.is_finite() && value >= 0.0 {
                    Ok(Amount(value))
                } else {
                    Err(E::custom(format!("expected a number of at least 0, found {}", crate::error::number(value))))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Amount, E> {
                Err(E::custom("expected a number of at least 0, found nothing"))
            }
        }
        deserializer.deserialize_any(AmountVisitor)
    }
}

/// A mapping whose keys are each written once. YAML readers differ on a key written twice,
/// and ours kept the last silently: a user entered twice in `users_config.yaml` would lose
/// one entry at the next save. The key's own line is the one named.
#[derive(Debug, Clone)]
pub struct UniqueMap<K, V>(pub IndexMap<K, V>);

const WRITTEN_TWICE: &str = " is written twice; keep one of the two";

impl<'de, K, V> Deserialize<'de> for UniqueMap<K, V>
where
    K: Deserialize<'de> + Hash + Eq + fmt::Display,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);
        impl<'de, K, V> Visitor<'de> for MapVisitor<K, V>
        where
            K: Deserialize<'de> + Hash + Eq + fmt::Display,
            V: Deserialize<'de>,
        {
            type Value = UniqueMap<K, V>;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a mapping of user ids")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = IndexMap::new();
                // The key is checked before its value is read, so the parser still stands on
                // the key's line.
                while let Some(key) = map.next_key::<K>()? {
                    if entries.contains_key(&key) {
                        return Err(de::Error::custom(format!("{key}{WRITTEN_TWICE}")));
                    }
                    let value = map.next_value()?;
                    entries.insert(key, value);
                }
                Ok(UniqueMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// A list in which YAML may hold empty entries: the original's template ships
/// `allow_userIDs:` with a single `-  #<user id>` line, which reads as one null entry.
pub fn without_blanks<T>(entries: Option<Vec<Option<T>>>) -> Vec<T> {
    entries.unwrap_or_default().into_iter().flatten().collect()
}

/// A parsed file and its warnings, or all its problems (at least one an error).
pub type Parsed<T> = Result<(T, Vec<FileProblem>), Vec<FileProblem>>;

/// Collects problems found after a file parsed, each placed at the line of its key.
pub struct Findings<'a> {
    shown_path: &'a str,
    text: &'a str,
    pub problems: Vec<FileProblem>,
}

impl<'a> Findings<'a> {
    pub fn new(shown_path: &'a str, text: &'a str) -> Self {
        Findings { shown_path, text, problems: Vec::new() }
    }

    pub fn error(&mut self, key_path: &[&str], message: impl Into<String>) {
        let problem = self.problem(key_path, message);
        self.problems.push(problem);
    }

    pub fn warning(&mut self, key_path: &[&str], message: impl Into<String>) {
        let mut problem = self.problem(key_path, message);
        problem.severity = crate::error::Severity::Warning;
        self.problems.push(problem);
    }

    /// The parsed value with any warnings, or every problem when at least one is an error.
    pub fn finish<T>(self, value: T) -> Parsed<T> {
        if self.problems.iter().any(|problem| problem.severity == crate::error::Severity::Error) {
            Err(self.problems)
        } else {
            Ok((value, self.problems))
        }
    }

    /// A problem at the line of the key, else of the nearest enclosing key that is there (a
    /// key may be missing, or written in flow style inside its section), else at the first
    /// line, where the file's mapping starts.
    fn problem(&self, key_path: &[&str], message: impl Into<String>) -> FileProblem {
        let line = (1..=key_path.len())
            .rev()
            .find_map(|length| crate::store::yaml_lines::line_of_key(self.text, &key_path[..length]))
            .unwrap_or(1);
        FileProblem::error(self.shown_path, Some(line), key_path.join("."), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        section: Section,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        #[allow(dead_code)]
        cpus: Limit,
    }

    #[test]
    fn a_bad_limit_names_file_line_and_field() {
        let problem = parse::<Sample>("cfg/x.yaml", "section:\n  cpus: eight\n").unwrap_err();
        assert_eq!(problem.to_string(), "cfg/x.yaml:2: section.cpus: expected a number or \"max\", found \"eight\"");
    }

    #[test]
    fn a_negative_limit_is_refused() {
        let problem = parse::<Sample>("c.yaml", "section:\n  cpus: -2\n").unwrap_err();
        assert_eq!(problem.line, Some(2));
        assert!(problem.message.contains("at least 0"), "{problem}");
    }
}
