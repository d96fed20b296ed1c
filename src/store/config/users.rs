//! `users_config.yaml` (its path is set in `host_deploy.yaml`; shipped in `cfg/users/`): one
//! entry per user who has logged in or been enrolled — password hash, forward port, default
//! image and command, volume folders — and, merged in from its side file
//! ([`super::user_extras`]), what gpu-booking adds: SSH keys, the must-change-password flag.
//!
//! Written by the tools and hand-editable. Every change is a read-modify-write under the
//! [`ExclusiveLock`], saved atomically; readers hold a lock too. On a server its folder
//! belongs to the `booking` account (`book` saves it by renaming a new file into place) and
//! to nothing else of the admin's, so the file is read and written only as
//! [`crate::store::state_folder`] allows: never through a link, only a plain file with one name.
//!
//! The file is the original system's contract both ways: each entry is written with exactly
//! the original's seven keys (its reader rejects any other), every string so that YAML 1.1
//! and 1.2 read it back unchanged ([`super::yaml_scalar`]). A file written by an earlier
//! release, with `ssh_keys` or `must_change_password` inline, still loads; those keys move to
//! the side file at the next save, nothing lost.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::host_deploy::HostDeploy;
use super::user_extras::{self, UserExtras};
use super::yaml::{self, Findings, Parsed, UniqueMap};
use super::yaml_scalar::scalar;
use crate::error::FileProblem;
use crate::model::UserId;
use crate::store::atomic_file;
use crate::store::lock::{ExclusiveLock, LockHeld};

/// One user: the original's seven keys, and gpu-booking's additions (saved in the side file).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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
    #[serde(default)]
    pub volume_work_dir: Option<PathBuf>,
    #[serde(default)]
    pub volume_dataset_dir: Option<PathBuf>,
    #[serde(default)]
    pub volume_backup_dir: Option<PathBuf>,
    /// OpenSSH public keys that may log into the user's container. Saved in the side file;
    /// read here too, where an earlier release wrote it inline.
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    /// Set for a temporary password: the user must choose their own at the next login. Saved
    /// in the side file; read here too, where an earlier release wrote it inline.
    #[serde(default)]
    pub must_change_password: bool,
    /// Where the monitor writes to them. Only ever in the side file: never read from here.
    #[serde(skip)]
    pub email: Option<String>,
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
            email: None,
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
    /// Users whose SSH keys or must-change flag an earlier release wrote inline in
    /// `users_config.yaml`, where the original cannot read the file; the next save moves them.
    pub inline_extras: Vec<UserId>,
}

impl UsersConfig {
    /// Reads the file and its side file; a missing or empty file is no users yet. An entry of
    /// the side file without a user in `users_config.yaml` is ignored (with a warning) and
    /// dropped at the next save: removing a user by hand removes their keys too.
    pub fn load(_lock: &impl LockHeld, path: &Path, shown_path: &str) -> Parsed<UsersConfig> {
        // Its folder is the booking account's, and root tools read it too: never through a link.
        let text = match crate::store::state_folder::read_config(path, shown_path) {
            Ok(text) => text.unwrap_or_default(),
            Err(problem) => return Err(vec![problem]),
        };
        let side_path = user_extras::path_for(path);
        let side_shown = user_extras::path_for(Path::new(shown_path)).display().to_string();
        let ((mut config, mut warnings), ((extras, side_text), _)) =
            match (Self::parse(shown_path, &text), user_extras::load(&side_path, &side_shown)) {
                (Ok(main), Ok(side)) => (main, side),
                (main, side) => {
                    let mut problems = main.err().unwrap_or_default();
                    problems.extend(side.err().unwrap_or_default());
                    return Err(problems);
                }
            };
        for (user, extras) in extras {
            match config.users.get_mut(&user) {
                Some(entry) => merge(entry, extras),
                None => warnings.push(FileProblem::warning(
                    &side_shown,
                    crate::store::yaml_lines::line_of_key(&side_text, &[user.as_str()]),
                    user.as_str(),
                    format!(
                        "{user} has no entry in {shown_path}, so these settings are ignored (and dropped at \
                         the next change)"
                    ),
                )),
            }
        }
        let problems = config.field_problems((shown_path, &text), (&side_shown, &side_text));
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok((config, warnings))
    }

    /// Values over the field limits ([`crate::rules::settings`]), each at its line: what a
    /// student can only set within them, written by hand. A container is started with these,
    /// so no tool works from a file that holds one.
    fn field_problems(
        &self,
        (shown_path, text): (&str, &str),
        (side_shown, side_text): (&str, &str),
    ) -> Vec<FileProblem> {
        use crate::rules::settings;
        let mut problems = Vec::new();
        for (user, entry) in &self.users {
            let checks = [
                ("extra_command", entry.extra_command.as_deref().map(settings::check_extra_command)),
                ("image", entry.image.as_deref().map(settings::check_image_name)),
                ("ssh_keys", Some(settings::check_ssh_keys(&entry.ssh_keys))),
            ];
            for (field, result) in checks {
                let Some(Err(reason)) = result else { continue };
                // SSH keys live in the side file, unless an earlier release wrote them inline.
                let key = [user.as_str(), field];
                let (path, line) = match crate::store::yaml_lines::line_of_key(text, &key) {
                    None if field == "ssh_keys" => (side_shown, crate::store::yaml_lines::line_of_key(side_text, &key)),
                    line => (shown_path, line),
                };
                let line = line.or_else(|| crate::store::yaml_lines::line_of_key(text, &key[..1]));
                problems.push(FileProblem::error(path, line, format!("{user}.{field}"), reason));
            }
        }
        problems
    }

    /// Parses `users_config.yaml` alone (inline additions of an earlier release included).
    pub fn parse(shown_path: &str, text: &str) -> Parsed<UsersConfig> {
        // Every command reads this file, and a YAML parser takes about 1 ms per 100 users:
        // the form the tools write is read directly, anything else by the YAML parser (which
        // also reports a user written twice: the direct reading gives up on one).
        let users = match parse_written_form(text) {
            Some(users) => users,
            None => {
                let users: Option<UniqueMap<UserId, UserEntry>> =
                    yaml::parse(shown_path, text).map_err(|problem| vec![problem])?;
                users.map(|users| users.0).unwrap_or_default()
            }
        };
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
        let inline_extras =
            users.iter().filter(|(_, entry)| !extras_of(entry).is_empty()).map(|(user, _)| user.clone()).collect();
        findings.finish(UsersConfig { users, inline_extras })
    }

    pub fn get(&self, user: &UserId) -> Option<&UserEntry> {
        self.users.get(user)
    }

    /// Each user's saved forward port, as [`crate::rules::settings::check_port`] takes them.
    pub fn ports(&self) -> impl Iterator<Item = (&UserId, u16)> {
        self.users.iter().map(|(user, entry)| (user, entry.forward_port))
    }

    /// Writes both files atomically: the side file first, so that a crash between the two
    /// writes leaves keys moving out of `users_config.yaml` in both files rather than in
    /// neither. Comments in the files are not kept: they are the tools' files (the admin's
    /// hand-written settings live in `capability_config.yaml`).
    pub fn save(&self, lock: &ExclusiveLock, deploy: &HostDeploy) -> Result<()> {
        let path = &deploy.users_config_yaml;
        let side_path = user_extras::path_for(path);
        let extras: Vec<(&UserId, UserExtras)> =
            self.users.iter().map(|(user, entry)| (user, extras_of(entry))).collect();
        user_extras::save(lock, &side_path, &extras)?;
        let text = self.render(deploy)?;
        atomic_file::write_atomically_private(lock, path, text.as_bytes())
    }

    /// `users_config.yaml` as the original writes it: per user exactly its seven keys, in its
    /// order. A volume folder missing from a hand-written entry is written as the folder it
    /// stands for (the original needs every key).
    pub fn render(&self, deploy: &HostDeploy) -> Result<String> {
        let path = &deploy.users_config_yaml;
        let side_name =
            user_extras::path_for(path).file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let mut text = format!(
            "# The users of gpu-booking, in the original system's format (book and enroll write it;\n\
             # hand edits allowed). SSH keys and other additions are in {side_name} next to it.\n"
        );
        if self.users.is_empty() {
            // An empty mapping rather than an empty document, which YAML reads as null.
            text.push_str("{}\n");
        }
        let optional = |value: &Option<String>| value.as_deref().map_or_else(|| "null".to_string(), scalar);
        let folder = |field: &str, folder: &Path| -> Result<String> {
            let folder = folder.to_str().with_context(|| {
                format!("cannot write {}: {field} {} is not UTF-8", path.display(), folder.display())
            })?;
            Ok(scalar(folder))
        };
        for (index, (user, entry)) in self.users.iter().enumerate() {
            let (work, dataset, backup) = deploy.new_user_folders(user.as_str());
            let work = entry.volume_work_dir.clone().unwrap_or(work);
            let dataset = entry.volume_dataset_dir.clone().unwrap_or(dataset);
            let backup = entry.volume_backup_dir.clone().unwrap_or(backup);
            if index > 0 {
                text.push('\n');
            }
            text.push_str(&format!("{}:\n", scalar(user.as_str())));
            text.push_str(&format!("  password: {}\n", optional(&entry.password)));
            text.push_str(&format!("  forward_port: {}\n", entry.forward_port));
            text.push_str(&format!("  image: {}\n", optional(&entry.image)));
            text.push_str(&format!("  extra_command: {}\n", optional(&entry.extra_command)));
            text.push_str(&format!("  volume_work_dir: {}\n", folder("volume_work_dir", &work)?));
            text.push_str(&format!("  volume_dataset_dir: {}\n", folder("volume_dataset_dir", &dataset)?));
            text.push_str(&format!("  volume_backup_dir: {}\n", folder("volume_backup_dir", &backup)?));
        }
        Ok(text)
    }
}

/// Reads `users_config.yaml` when it is in the form [`UsersConfig::render`] writes (comment
/// and blank lines, each user a plain or double-quoted key at the start of a line, then the
/// original's keys indented by two spaces, each value `null`, a port, a plain string or a
/// double-quoted string without escapes). `None` for anything else, even a small difference
/// (a tab, a trailing space, a quoted number, a key twice, an inline list): the YAML parser
/// then reads the file. What is read here is exactly what the YAML parser reads from the
/// same text (the property tests hold it to that), only faster.
pub fn parse_written_form(text: &str) -> Option<IndexMap<UserId, UserEntry>> {
    let mut users: IndexMap<UserId, UserEntry> = IndexMap::new();
    // The entry being read and the keys it has had.
    let mut current: Option<(UserId, UserEntry, u8)> = None;
    let mut empty_mapping = false;
    let finish = |current: Option<(UserId, UserEntry, u8)>, users: &mut IndexMap<UserId, UserEntry>| {
        match current {
            // Without a forward port the YAML parser reports the missing field.
            Some((_, _, seen)) if seen & FORWARD_PORT_SEEN == 0 => None,
            Some((user, entry, _)) => users.insert(user, entry).is_none().then_some(()),
            None => Some(()),
        }
    };
    for line in text.split('\n') {
        if line.bytes().any(|byte| byte == b'\r' || byte == b'\t') {
            return None;
        }
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if line == "{}" && users.is_empty() && current.is_none() && !empty_mapping {
            empty_mapping = true;
            continue;
        }
        if empty_mapping {
            return None;
        }
        if let Some(field_line) = line.strip_prefix("  ") {
            let (_, entry, seen) = current.as_mut()?;
            let (field, value) = field_line.split_once(": ")?;
            let bit = written_field(entry, field, value)?;
            if *seen & bit != 0 {
                return None;
            }
            *seen |= bit;
        } else {
            let key = line.strip_suffix(':')?;
            let user = UserId::parse(&written_string(key)?).ok()?;
            finish(current.take(), &mut users)?;
            current = Some((user, UserEntry::default(), 0));
        }
    }
    finish(current, &mut users)?;
    Some(users)
}

const FORWARD_PORT_SEEN: u8 = 1 << 1;

/// Sets the field a line of the written form names; the field's bit, or `None` when the line
/// is not in the written form.
fn written_field(entry: &mut UserEntry, field: &str, value: &str) -> Option<u8> {
    let text = || if value == "null" { Some(None) } else { written_string(value).map(Some) };
    match field {
        "password" => entry.password = text()?,
        "forward_port" => {
            // Digits as YAML reads a port: no sign, no leading zero, within u16.
            if value.is_empty()
                || value.len() > 5
                || value.starts_with('0')
                || !value.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            entry.forward_port = value.parse().ok()?;
            return Some(FORWARD_PORT_SEEN);
        }
        "image" => entry.image = text()?,
        "extra_command" => entry.extra_command = text()?,
        "volume_work_dir" => entry.volume_work_dir = text()?.map(PathBuf::from),
        "volume_dataset_dir" => entry.volume_dataset_dir = text()?.map(PathBuf::from),
        "volume_backup_dir" => entry.volume_backup_dir = text()?.map(PathBuf::from),
        _ => return None,
    }
    let bit = match field {
        "password" => 1 << 0,
        "image" => 1 << 2,
        "extra_command" => 1 << 3,
        "volume_work_dir" => 1 << 4,
        "volume_dataset_dir" => 1 << 5,
        _ => 1 << 6,
    };
    Some(bit)
}

/// A string scalar as [`scalar`] writes it: plain (text to every YAML reader), or in double
/// quotes holding printable ASCII without escapes. `None` for anything else.
fn written_string(value: &str) -> Option<String> {
    if super::yaml_scalar::is_plain_text(value) {
        return Some(value.to_string());
    }
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    inner.bytes().all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\').then(|| inner.to_string())
}

/// What of `entry` goes into the side file.
fn extras_of(entry: &UserEntry) -> UserExtras {
    UserExtras {
        ssh_keys: entry.ssh_keys.clone(),
        must_change_password: entry.must_change_password,
        email: entry.email.clone(),
    }
}

/// Adds the side file's settings to an entry. When an earlier release's inline keys are there
/// too (a crash between the two writes of a save), nothing is dropped: keys from both, and a
/// must-change flag from either.
fn merge(entry: &mut UserEntry, extras: UserExtras) {
    let inline = std::mem::replace(&mut entry.ssh_keys, extras.ssh_keys);
    for key in inline {
        if !entry.ssh_keys.contains(&key) {
            entry.ssh_keys.push(key);
        }
    }
    entry.must_change_password |= extras.must_change_password;
    entry.email = extras.email;
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
