//! The domain's types and their one canonical text form each: who (`UserId`), what a
//! booking holds (`Booking`), where it stands (`BookingState`), a window offered
//! (`Window`), a user's limits (`UserLimits`). Plain data: the file codecs in `store`
//! read and write them, the pure `rules` reason over them.

#[cfg(test)]
pub mod examples;
pub mod ranges;
pub mod text;

use std::fmt;
use std::fmt::Write as _;

use chrono::NaiveDateTime;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

pub use text::{format_gpu_list, format_minutes, format_time, parse_gpu_list, parse_time, serialize_minutes};

/// A user id. Containers are named after it and folders are made from it, so only letters,
/// digits and `_ . -` are allowed, starting with a letter or digit. YAML reads an id such as
/// `11007` as a number; it is taken as the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

impl UserId {
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::check(text).map(|()| UserId(text.to_string()))
    }

    /// Whether `text` is a valid id, without making one (a long history is read without an
    /// allocation per row).
    pub fn check(text: &str) -> Result<(), String> {
        let valid_start = text.bytes().next().is_some_and(|first| first.is_ascii_alphanumeric());
        let valid_rest = text.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
        if valid_start && valid_rest && text.len() <= 64 {
            Ok(())
        } else {
            Err(format!(
                "expected a user id (letters, digits, '_', '.', '-'; starting with a letter or digit; at most 64), found {}",
                crate::error::quoted(text)
            ))
        }
    }

    /// An id as a person typed it (`book --user`, the login prompt): lower-cased first, as
    /// the original did with the id it was given, so both systems agree on who `Alice` is.
    pub fn parse_typed(text: &str) -> Result<Self, String> {
        Self::parse(&text.trim().to_lowercase())
    }

    /// A new user's id (`enroll add`): besides [`UserId::parse`], lower-case only (`book`
    /// and the original lower-case the id typed at login, so `Alice` could never log in),
    /// and not `now` (a line `now` in `jobs/monitor_exec` asks for a monitor pass, where a
    /// restart request is the bare user id).
    pub fn parse_new(text: &str) -> Result<Self, String> {
        let user = Self::parse(text)?;
        if user.has_upper_case() {
            return Err(format!(
                "user ids are lower-case ({text:?} could never log in: book, like the original system, \
                 lower-cases the id typed at login); use {}",
                text.to_lowercase()
            ));
        }
        if text == "now" {
            return Err("\"now\" cannot be a user id: in jobs/monitor_exec the line `now` asks for a monitor pass, \
                 and a restart request is the bare user id"
                .to_string());
        }
        Ok(user)
    }

    /// True for an id with an upper-case letter, which nobody can log in as (see
    /// [`UserId::parse_typed`]); `enroll check` names such ids.
    pub fn has_upper_case(&self) -> bool {
        self.0.chars().any(|character| character.is_ascii_uppercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UserIdVisitor;
        impl Visitor<'_> for UserIdVisitor {
            type Value = UserId;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a user id")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<UserId, E> {
                UserId::parse(value).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<UserId, E> {
                self.visit_str(&value.to_string())
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<UserId, E> {
                self.visit_str(&value.to_string())
            }
        }
        deserializer.deserialize_any(UserIdVisitor)
    }
}

/// One booking: a user's window `[start, end)` with the resources their container gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub user_id: UserId,
    pub cpus: f64,
    /// GB of RAM + swap.
    pub memory: u32,
    /// GPU device ids, kept for the whole window.
    pub gpus: Vec<u32>,
    pub forward_port: u16,
    /// `None`: the user's default image.
    pub image: Option<String>,
    pub extra_command: Option<String>,
}

impl Booking {
    pub fn overlaps(&self, start: NaiveDateTime, end: NaiveDateTime) -> bool {
        self.start < end && start < self.end
    }

    /// A one-line description for messages.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} from {} to {}: {} CPUs, {} GB",
            self.user_id,
            format_minutes(self.start),
            format_minutes(self.end),
            self.cpus,
            self.memory
        );
        let _ = write!(text, ", GPUs {}", format_gpu_list(&self.gpus));
        text
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BookingState {
    Booked,
    Running,
}

impl fmt::Display for BookingState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            BookingState::Booked => "booked",
            BookingState::Running => "running",
        })
    }
}

/// A window that fits, offered when the one asked for does not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    #[serde(serialize_with = "serialize_minutes")]
    pub start: NaiveDateTime,
    #[serde(serialize_with = "serialize_minutes")]
    pub end: NaiveDateTime,
    pub gpus: Vec<u32>,
}

/// What one booking of one user may ask for, `max` already replaced by the host's value.
#[derive(Debug, Clone, PartialEq)]
pub struct UserLimits {
    pub cpus: f64,
    pub memory: f64,
    pub gpus: u32,
    /// GB; `None`: no quota.
    pub backup_space: Option<f64>,
    pub work_space: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_user_ids_are_read_as_text() {
        let ids: Vec<UserId> = serde_yaml::from_str("[11007, alice]").unwrap();
        assert_eq!(ids[0].as_str(), "11007");
        assert!(UserId::parse("../etc").is_err());
        assert!(UserId::parse("").is_err());
    }
}
