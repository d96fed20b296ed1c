//! `users_config.yaml` (its path is set in `host_deploy.yaml`; shipped in `cfg/users/`): one
//! entry per user who has logged in or been enrolled — password hash, forward port, default
//! image and command, volume folders, SSH keys.
//!
//! Written by the tools and hand-editable. Every change is a read-modify-write under the
//! [`ExclusiveLock`], saved atomically; readers hold a lock too. On a server its folder
//! belongs to the `booking` account (`book` saves it by renaming a new file into place) and
//! to nothing else of the admin's, so the file is read and written only as
//! [`crate::state_folder`] allows: never through a link, only a plain file with one name. Fields gpu-booking added
//! (`ssh_keys`, `must_change_password`) are optional, so the original's files load as they
//! are and files without those fields are written as the original would expect.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indexmap::IndexMap;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::host_deploy::HostDeploy;
use super::yaml::{self, Findings, Parsed, UserId};
use crate::atomic_file;
use crate::lock::{ExclusiveLock, LockHeld};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// A crypt(3) hash (`$6$…`), or — as the original stored it — the password itself, which
    /// is replaced by a hash at the user's next login.
    #[serde(default, deserialize_with = "text_or_number")]
    pub password: Option<String>,
    pub forward_port: u16,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub extra_command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_work_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_dataset_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_backup_dir: Option<PathBuf>,
    /// OpenSSH public keys that may log into the user's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    /// Set for a temporary password: the user must choose their own at the next login.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub must_change_password: bool,
}

impl UserEntry {
    /// A new user's entry: no image or extra command of their own, and the folders the
    /// original would write.
    pub fn fresh(deploy: &HostDeploy, user: &UserId, forward_port: u16, password_hash: String) -> UserEntry {
        let (work, dataset, backup) = deploy.new_user_folders(user.as_str());
        UserEntry {
            password: Some(password_hash),
            forward_port,
            image: None,
            extra_command: None,
            volume_work_dir: Some(work),
            volume_dataset_dir: Some(dataset),
            volume_backup_dir: Some(backup),
            ssh_keys: Vec::new(),
            must_change_password: false,
        }
    }

    /// The user's work folder: their entry's (relative to the root when relative), else
    /// `<volume_work_dir>/<user>`.
    pub fn work_dir(&self, deploy: &HostDeploy, user: &UserId) -> PathBuf {
        match &self.volume_work_dir {
            Some(folder) => deploy.resolve(folder),
            None => deploy.volume_work_dir.join(user.as_str()),
        }
    }

    pub fn backup_dir(&self, deploy: &HostDeploy, user: &UserId) -> PathBuf {
        match &self.volume_backup_dir {
            Some(folder) => deploy.resolve(folder),
            None => deploy.volume_backup_dir.join(user.as_str()),
        }
    }

    pub fn dataset_dir(&self, deploy: &HostDeploy) -> PathBuf {
        match &self.volume_dataset_dir {
            Some(folder) => deploy.resolve(folder),
            None => deploy.volume_dataset_dir.clone(),
        }
    }

    /// True when the entry holds a password (a hash, or legacy plain text) someone could log
    /// in with. An empty one is none: it must not let the first comer claim the id.
    pub fn has_password(&self) -> bool {
        self.password.as_deref().is_some_and(|password| !password.trim().is_empty())
    }

    /// True when the stored password is a crypt(3) hash rather than legacy plain text.
    pub fn password_is_hashed(&self) -> bool {
        self.password.as_deref().is_some_and(|password| password.starts_with('$'))
    }
}

/// All users, in file order (so a save keeps the admin's order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsersConfig {
    pub users: IndexMap<UserId, UserEntry>,
}

impl UsersConfig {
    /// Reads the file; a missing or empty file is no users yet.
    pub fn load(_lock: &impl LockHeld, path: &Path, shown_path: &str) -> Parsed<UsersConfig> {
        // Its folder is the booking account's, and root tools read it too: never through a link.
        let text = match crate::state_folder::read_to_string(path) {
            Ok(text) => text.unwrap_or_default(),
            Err(error) => {
                return Err(vec![crate::error::FileProblem::error(
                    shown_path,
                    None,
                    "",
                    format!("cannot read: {error:#}"),
                )]);
            }
        };
        Self::parse(shown_path, &text)
    }

    pub fn parse(shown_path: &str, text: &str) -> Parsed<UsersConfig> {
        let users: Option<IndexMap<UserId, UserEntry>> =
            yaml::parse(shown_path, text).map_err(|problem| vec![problem])?;
        let users = users.unwrap_or_default();
        let mut findings = Findings::new(shown_path, text);
        let mut owners: IndexMap<u16, &UserId> = IndexMap::new();
        for (user, entry) in &users {
            if entry.forward_port == 0 {
                findings.error(&[user.as_str(), "forward_port"], "expected a port from 1 to 65535, found 0");
            }
            if let Some(owner) = owners.insert(entry.forward_port, user) {
                findings.error(
                    &[user.as_str(), "forward_port"],
                    format!("{} is also {owner}'s forward port; each user needs their own", entry.forward_port),
                );
            }
        }
        findings.finish(UsersConfig { users })
    }

    pub fn get(&self, user: &UserId) -> Option<&UserEntry> {
        self.users.get(user)
    }

    /// Writes the whole file atomically. Comments in the file are not kept: it is the tools'
    /// file (the admin's hand-written settings live in `capability_config.yaml`).
    pub fn save(&self, lock: &ExclusiveLock, path: &Path) -> Result<()> {
        let text = if self.users.is_empty() {
            String::new()
        } else {
            serde_yaml::to_string(&self.users).with_context(|| format!("cannot encode {}", path.display()))?
        };
        atomic_file::write_atomically_private(lock, path, text.as_bytes())
    }
}

/// The original quoted passwords (`"0000"`), but a hand edit may not; YAML then reads a number.
fn text_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct TextVisitor;
    impl Visitor<'_> for TextVisitor {
        type Value = Option<String>;
        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a password hash or text")
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(Some(value.to_string()))
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value.to_string()))
        }
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(TextVisitor)
}
