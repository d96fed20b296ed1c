//! The side file of `users_config.yaml`: what gpu-booking keeps per user beyond the
//! original's seven keys (SSH public keys, the must-change-password flag, the e-mail address,
//! and whatever later versions add).
//!
//! Why a file of its own: the original builds each user with `UserConfig(**entry)`, which
//! rejects any key it does not know, so one `ssh_keys:` in `users_config.yaml` stops both its
//! booking tool and its monitor. Keeping `users_config.yaml` to exactly the original's keys
//! lets a lab go back to the original; the original never looks at this file.
//!
//! The file lies next to `users_config.yaml` (same folder, the one the booking account may
//! write) and is named after it: `users_config.yaml` → `users_config.gpu-booking.yaml`.
//! It is read and written like `users_config.yaml`: under the state lock, never through a
//! link ([`crate::store::state_folder`]), replaced atomically, mode 0600, owner kept. Only users with
//! something to keep are listed; a missing file is nobody with anything.
//!
//! ```yaml
//! alice:
//!   ssh_keys:
//!     - "ssh-ed25519 AAAAC3Nza… alice@laptop"
//!   must_change_password: true
//!   email: alice@lab.example.org
//! ```
//!
//! [`crate::store::config::users`] is its only user: it merges this file into each user's entry
//! when loading and splits the entries over the two files when saving.

use std::path::{Path, PathBuf};

use anyhow::Result;
use indexmap::IndexMap;
use serde::Deserialize;

use super::yaml::{self, Findings, Parsed, UniqueMap};
use super::yaml_scalar::scalar;
use crate::model::UserId;
use crate::store::atomic_file;
use crate::store::lock::ExclusiveLock;

/// What the side file holds for one user.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserExtras {
    /// OpenSSH public keys that may log into the user's container.
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    /// Set for a temporary password: the user must choose their own at the next login.
    #[serde(default)]
    pub must_change_password: bool,
    /// Where the monitor writes to them (container ready, end near, start refused); none: no mail.
    #[serde(default)]
    pub email: Option<String>,
}

impl UserExtras {
    /// True when there is nothing to keep (the user is left out of the file).
    pub fn is_empty(&self) -> bool {
        self.ssh_keys.is_empty() && !self.must_change_password && self.email.is_none()
    }
}

/// The side file of the `users_config.yaml` at `users_config`: same folder, its name with
/// `.gpu-booking` before the extension.
pub fn path_for(users_config: &Path) -> PathBuf {
    let stem = users_config.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match users_config.extension() {
        Some(extension) => format!("{stem}.gpu-booking.{}", extension.to_string_lossy()),
        None => format!("{stem}.gpu-booking.yaml"),
    };
    users_config.with_file_name(name)
}

/// Reads the side file; a missing or empty one is nobody with anything. The text is returned
/// too, so [`save`] can leave an unchanged file alone and `enroll check` can place lines.
pub fn load(path: &Path, shown_path: &str) -> Parsed<(IndexMap<UserId, UserExtras>, String)> {
    let text = match crate::store::state_folder::read_config(path, shown_path) {
        Ok(text) => text.unwrap_or_default(),
        Err(problem) => return Err(vec![problem]),
    };
    let users: Option<UniqueMap<UserId, Option<UserExtras>>> =
        yaml::parse(shown_path, &text).map_err(|problem| vec![problem])?;
    let users: IndexMap<UserId, UserExtras> = users
        .map(|users| users.0)
        .unwrap_or_default()
        .into_iter()
        .map(|(user, extras)| (user, extras.unwrap_or_default()))
        .collect();
    // The booking account writes this file: an address with a line break in it would be a
    // header of the monitor's mail.
    let mut findings = Findings::new(shown_path, &text);
    for (user, extras) in &users {
        if let Some(email) = &extras.email
            && let Err(message) = super::mail::check_address(email)
        {
            findings.error(&[user.as_str(), "email"], message);
        }
    }
    let problems = findings.problems;
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(((users, text), Vec::new()))
}

/// The file's text for `users` (those with nothing to keep are left out).
pub fn render<'a>(users: impl IntoIterator<Item = (&'a UserId, &'a UserExtras)>) -> String {
    let mut text = String::from(
        "# gpu-booking's own settings per user, kept out of users_config.yaml so that the original\n\
         # system (whose reader rejects unknown keys) can still load that file. Written by book and\n\
         # enroll under the state lock; see README \"Files\".\n",
    );
    let mut any = false;
    for (user, extras) in users.into_iter().filter(|(_, extras)| !extras.is_empty()) {
        any = true;
        text.push_str(&format!("{}:\n", scalar(user.as_str())));
        if !extras.ssh_keys.is_empty() {
            text.push_str("  ssh_keys:\n");
            for key in &extras.ssh_keys {
                text.push_str(&format!("    - {}\n", scalar(key)));
            }
        }
        if extras.must_change_password {
            text.push_str("  must_change_password: true\n");
        }
        if let Some(email) = &extras.email {
            text.push_str(&format!("  email: {}\n", scalar(email)));
        }
    }
    if !any {
        // An empty mapping rather than an empty document, which YAML reads as null.
        text.push_str("{}\n");
    }
    text
}

/// Writes the side file for `users` unless it already holds exactly that, or unless it does
/// not exist and there is nothing to keep (a lab that never uses keys gets no extra file).
pub fn save(lock: &ExclusiveLock, path: &Path, users: &[(&UserId, UserExtras)]) -> Result<()> {
    let text = render(users.iter().map(|(user, extras)| (*user, extras)));
    match crate::store::state_folder::read_to_string(path)? {
        Some(current) if current == text => Ok(()),
        None if users.iter().all(|(_, extras)| extras.is_empty()) => Ok(()),
        _ => atomic_file::write_atomically_private(lock, path, text.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_file_is_named_after_users_config() {
        assert_eq!(
            path_for(Path::new("/srv/cfg/users/users_config.yaml")),
            Path::new("/srv/cfg/users/users_config.gpu-booking.yaml")
        );
        assert_eq!(path_for(Path::new("cfg/people.yml")), Path::new("cfg/people.gpu-booking.yml"));
    }

    #[test]
    fn render_and_parse_agree() {
        let mut users = IndexMap::new();
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq alice@laptop".to_string();
        users.insert(
            UserId::parse("alice").unwrap(),
            UserExtras { ssh_keys: vec![key], must_change_password: true, email: Some("alice@lab.test".into()) },
        );
        users.insert(
            UserId::parse("0012").unwrap(),
            UserExtras { ssh_keys: vec![], must_change_password: true, email: None },
        );
        users.insert(UserId::parse("bob").unwrap(), UserExtras::default());
        let text = render(&users);
        assert!(!text.contains("bob"), "{text}");
        assert!(text.contains("\"0012\":\n"), "{text}");
        let parsed: IndexMap<UserId, UserExtras> = serde_yaml::from_str(&text).unwrap();
        users.shift_remove(&UserId::parse("bob").unwrap());
        assert_eq!(parsed, users);
        let empty = render(&IndexMap::new());
        assert_eq!(serde_yaml::from_str::<IndexMap<UserId, UserExtras>>(&empty).unwrap(), IndexMap::new());
    }
}
