//! `cfg/login.yaml`: gpu-booking's own login settings, which the original system never had.
//!
//! Admin-authored; the tools only read it. It is a file of its own because the original's
//! readers reject unknown keys, in `users_config.yaml` entries as elsewhere: a lab that goes
//! back to the original simply leaves this file behind. A missing file means every setting
//! has its default.
//!
//! `self_registration` decides who may choose their own password at their first login. The
//! original let anyone do so for any id in `allow_userIDs`, so an id added by hand (or one
//! whose entry was lost) belonged to whoever logged in with it first. The default is nobody:
//! the admin sets the first password (`enroll add`, `enroll passwd`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::yaml::{self, Parsed};
use crate::model::UserId;

/// The file's name under `cfg/`.
pub const FILE_NAME: &str = "login.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoginSettings {
    #[serde(default)]
    self_registration: SelfRegistration,
}

/// Who may choose their own password at their first login.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SelfRegistration {
    /// Nobody: the admin sets every first password.
    #[default]
    Nobody,
    /// Every id in `allow_userIDs`, as the original worked.
    Everyone,
    /// Only these ids (and only while they are in `allow_userIDs`).
    Only(Vec<UserId>),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginSettings {
    pub self_registration: SelfRegistration,
}

impl LoginSettings {
    /// Parses the file's text. `shown_path` is how the file is named in problems.
    pub fn parse(shown_path: &str, text: &str) -> Parsed<LoginSettings> {
        let raw: Option<RawLoginSettings> = yaml::parse(shown_path, text).map_err(|problem| vec![problem])?;
        let settings = raw.map(|raw| LoginSettings { self_registration: raw.self_registration }).unwrap_or_default();
        Ok((settings, Vec::new()))
    }

    /// Reads the file; a missing file is the defaults.
    pub fn load(path: &std::path::Path, shown_path: &str) -> Parsed<LoginSettings> {
        match crate::store::text_file::read_config(path, shown_path) {
            Ok(Some(text)) => Self::parse(shown_path, &text),
            Ok(None) => Ok((LoginSettings::default(), Vec::new())),
            Err(problem) => Err(vec![problem]),
        }
    }

    /// True when `user` may choose their own first password (they must also be allowed).
    pub fn may_self_register(&self, user: &UserId) -> bool {
        match &self.self_registration {
            SelfRegistration::Nobody => false,
            SelfRegistration::Everyone => true,
            SelfRegistration::Only(users) => users.contains(user),
        }
    }
}

impl<'de> Deserialize<'de> for SelfRegistration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SelfRegistrationVisitor;
        impl<'de> Visitor<'de> for SelfRegistrationVisitor {
            type Value = SelfRegistration;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("true, false, or a list of user ids")
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<SelfRegistration, E> {
                Ok(if value { SelfRegistration::Everyone } else { SelfRegistration::Nobody })
            }
            fn visit_unit<E: de::Error>(self) -> Result<SelfRegistration, E> {
                Ok(SelfRegistration::Nobody)
            }
            fn visit_none<E: de::Error>(self) -> Result<SelfRegistration, E> {
                Ok(SelfRegistration::Nobody)
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<SelfRegistration, E> {
                Err(E::custom(format!(
                    "expected true, false or a list of user ids such as [alice, bob], found {}",
                    crate::error::quoted(value)
                )))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<SelfRegistration, E> {
                self.visit_str(&value.to_string())
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<SelfRegistration, E> {
                self.visit_str(&value.to_string())
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<SelfRegistration, E> {
                self.visit_str(&value.to_string())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<SelfRegistration, A::Error> {
                let mut users = Vec::new();
                // A blank `-` entry, as in the original's `allow_userIDs` template, is nobody.
                while let Some(user) = sequence.next_element::<Option<UserId>>()? {
                    users.extend(user);
                }
                Ok(SelfRegistration::Only(users))
            }
        }
        deserializer.deserialize_any(SelfRegistrationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples::user;

    fn parse(text: &str) -> Result<LoginSettings, String> {
        LoginSettings::parse("cfg/login.yaml", text)
            .map(|(settings, _)| settings)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    }

    #[test]
    fn nobody_self_registers_unless_the_admin_says_so() {
        assert_eq!(parse("").unwrap().self_registration, SelfRegistration::Nobody);
        assert_eq!(parse("# nothing yet\n").unwrap().self_registration, SelfRegistration::Nobody);
        assert_eq!(parse("self_registration: false\n").unwrap().self_registration, SelfRegistration::Nobody);
        assert_eq!(parse("self_registration:\n").unwrap().self_registration, SelfRegistration::Nobody);
        assert!(!LoginSettings::default().may_self_register(&user("alice")));
    }

    #[test]
    fn everyone_or_a_list_of_ids() {
        let everyone = parse("self_registration: true\n").unwrap();
        assert!(everyone.may_self_register(&user("alice")));
        let listed = parse("self_registration: [demo, 11007]\n").unwrap();
        assert!(listed.may_self_register(&user("demo")));
        assert!(listed.may_self_register(&user("11007")));
        assert!(!listed.may_self_register(&user("alice")));
        let block = parse("self_registration:\n  - demo\n  -\n").unwrap();
        assert_eq!(block.self_registration, SelfRegistration::Only(vec![user("demo")]));
    }

    #[test]
    fn anything_else_names_the_line_and_field() {
        let problem = parse("# login\nself_registration: yes please\n").unwrap_err();
        assert!(problem.starts_with("cfg/login.yaml:2: self_registration: expected true, false"), "{problem}");
        let problem = parse("self_registraton: true\n").unwrap_err();
        assert!(problem.contains("cfg/login.yaml:1") && problem.contains("unknown field"), "{problem}");
        let problem = parse("self_registration: [../etc]\n").unwrap_err();
        assert!(problem.contains("cfg/login.yaml:1"), "{problem}");
    }
}
