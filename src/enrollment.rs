//! The admin's changes to who may book: `enroll add`, `remove`, `passwd`, `limits`, `list` and
//! `absolute-paths`.
//!
//! Each change loads and checks everything it needs first (configuration, schedule, the edited
//! `capability_config.yaml`, the folders to purge) and only then writes, under the
//! [`ExclusiveLock`]: nothing is written on bad input. `users_config.yaml` is the tools' file
//! and is saved whole; `capability_config.yaml` is the admin's and is changed by
//! [`capability_edit`], which keeps every line it does not need to touch.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::NaiveDateTime;
use serde::Serialize;

use crate::account;
use crate::booking;
use crate::error::{FileProblems, Refused, UsageError};
use crate::lab::Lab;
use crate::model::{Booking, BookingState, UserId, UserLimits, format_minutes};
use crate::password;
use crate::rules::settings;
use crate::store::config::capability::{self, LIMIT_FIELDS};
use crate::store::config::capability_edit::{self, Edit, LimitChange};
use crate::store::config::yaml::Limit;
use crate::store::config::{Config, UserEntry, read_text};
use crate::store::faillock;
use crate::store::lock::LockHeld;
use crate::store::schedule::{self, ActiveFile};
use crate::volumes;
use crate::volumes::space::{Measured, measure};

/// The password a user starts with.
#[derive(Debug, Clone)]
pub enum PasswordChoice {
    /// Chosen by the admin (checked against the password rules).
    Given(String),
    /// Generated; printed once, and the user must choose their own at first login.
    Temporary,
}

/// `enroll add`.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub user: UserId,
    pub limits: Vec<LimitChange>,
    pub forward_port: Option<u16>,
    pub password: PasswordChoice,
    /// OpenSSH public key lines.
    pub ssh_keys: Vec<String>,
    /// Where the monitor writes to them.
    pub email: Option<String>,
}

/// What `enroll add` did.
#[derive(Debug, Clone)]
pub struct Added {
    pub entry: UserEntry,
    /// The generated password, to be shown once; `None` when the admin gave one.
    pub temporary_password: Option<String>,
}

/// The file's text and where it is, for an edit.
fn capability_text(lock: &impl LockHeld, config: &Config) -> Result<(String, String)> {
    let path = &config.deploy.capability_config_yaml;
    let shown = lock.root().display(path);
    let text = read_text(path, &shown).map_err(FileProblems)?;
    Ok((text, shown))
}

fn new_password(user: &UserId, choice: &PasswordChoice) -> Result<(String, Option<String>)> {
    match choice {
        PasswordChoice::Given(chosen) => {
            password::check_new(chosen, user.as_str()).map_err(UsageError)?;
            Ok((password::hash(chosen)?, None))
        }
        PasswordChoice::Temporary => {
            let temporary = password::temporary()?;
            Ok((password::hash(&temporary)?, Some(temporary)))
        }
    }
}

/// Enrols a new user: allowed, limits set, folders created, a port and a password.
pub fn add(lab: &Lab, new: &NewUser) -> Result<Added> {
    let writing = lab.write()?;
    let lock = writing.lock();
    let mut config = writing.config_to_change()?;
    let user = &new.user;
    if config.capability.is_allowed(user) {
        bail!(Refused(format!("{user} is already in allow_userIDs; see enroll list, passwd and limits")));
    }
    if config.users.get(user).is_some() {
        bail!(Refused(format!(
            "{user} already has settings in {}; remove them first (enroll remove {user})",
            lock.root().display(&config.deploy.users_config_yaml)
        )));
    }
    let forward_port = match new.forward_port {
        Some(port) => {
            let mut bookings = schedule::read(lock, ActiveFile::Booking)?;
            bookings.extend(schedule::read(lock, ActiveFile::Using)?);
            settings::check_port(user, port, config.users.ports(), &bookings)?;
            port
        }
        None => account::free_port(lock, &config)?,
    };
    let keys: Vec<String> = new.ssh_keys.iter().map(|key| settings::check_ssh_key(key)).collect::<Result<_>>()?;
    settings::check_ssh_keys(&keys).map_err(Refused)?;
    let email = new.email.as_deref().map(crate::store::config::mail::check_address).transpose().map_err(UsageError)?;
    let (hash, temporary_password) = new_password(user, &new.password)?;

    let (text, shown) = capability_text(lock, &config)?;
    let mut edits = vec![Edit::Allow(user.clone())];
    if !new.limits.is_empty() {
        edits.push(Edit::SetLimits(user.clone(), new.limits.clone()));
    }
    let edited = capability_edit::apply(&shown, &text, &edits)?;

    let mut entry = UserEntry::fresh(&config.deploy, user, forward_port, hash);
    entry.ssh_keys = keys;
    entry.email = email;
    entry.must_change_password = temporary_password.is_some();
    volumes::create_user_folders(lock.root(), &config, user, &entry)?;
    config.users.users.insert(user.clone(), entry.clone());
    config.users.save(lock, &config.deploy)?;
    capability::save(lock, &config.deploy.capability_config_yaml, &edited)?;
    Ok(Added { entry, temporary_password })
}

/// What `enroll remove` did.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    /// Future bookings cancelled (recorded in `used.csv` with end == start).
    pub cancelled: Vec<Booking>,
    /// Running bookings that now end at the next half hour.
    pub ending: Vec<(Booking, NaiveDateTime)>,
    /// Folders deleted (`--purge`).
    pub purged: Vec<PathBuf>,
    /// Folders kept (without `--purge`).
    pub kept: Vec<PathBuf>,
}

/// `enroll remove`: refused while the user has a booking, unless `force` (then cancelled
/// first). Removes them from `allow_userIDs`, their limits block and their settings; their
/// folders stay unless `purge`.
pub fn remove(lab: &Lab, user: &UserId, force: bool, purge: bool) -> Result<Removed> {
    let writing = lab.write()?;
    let lock = writing.lock();
    let state = writing.state()?;
    let mut config = state.config.clone();
    let allowed = config.capability.is_allowed(user);
    let entry = config.users.get(user).cloned();
    let has_block = config.capability.custom_entry(user).is_some();
    let folders = user_folders(&config, user, entry.as_ref());
    let existing_folders: Vec<PathBuf> =
        folders.iter().filter(|folder| folder.symlink_metadata().is_ok()).cloned().collect();
    // A user already removed may still have folders for `--purge` to delete.
    let anything_left = allowed || entry.is_some() || has_block || (purge && !existing_folders.is_empty());
    if !anything_left {
        bail!(Refused(format!("{user} is not enrolled (not in allow_userIDs, no settings, no limits)")));
    }

    let mine = state.bookings_of(user);
    if !mine.is_empty() && !force {
        let listed: Vec<String> = mine
            .iter()
            .map(|(booking_state, booking)| {
                format!("{booking_state} {} to {}", format_minutes(booking.start), format_minutes(booking.end))
            })
            .collect();
        bail!(Refused(format!(
            "{user} has {} active booking(s) ({}); cancel them first, or use --force",
            mine.len(),
            listed.join(", ")
        )));
    }
    if purge && let Some((_, running)) = mine.iter().find(|(booking_state, _)| *booking_state == BookingState::Running)
    {
        bail!(Refused(format!(
            "{user}'s container is running (booking from {}); its folders are mounted. Run `enroll remove {user} \
             --force` to end it at the next half hour, then `enroll remove {user} --purge` once the monitor has \
             stopped it",
            format_minutes(running.start)
        )));
    }
    if purge {
        for folder in &existing_folders {
            check_purgeable(&config, folder)?;
        }
    }

    let (text, shown) = capability_text(lock, &config)?;
    let edited =
        capability_edit::apply(&shown, &text, &[Edit::Disallow(user.clone()), Edit::RemoveLimits(user.clone())])?;

    let mut removed = Removed::default();
    for (_, booking) in &mine {
        match booking::cancel_under(&writing, user, Some(booking.start))? {
            booking::Cancelled::Removed(booking) => removed.cancelled.push(booking),
            booking::Cancelled::EndsAt(booking, end) => removed.ending.push((booking, end)),
        }
    }
    if config.users.users.shift_remove(user).is_some() {
        config.users.save(lock, &config.deploy)?;
    }
    if edited != text {
        capability::save(lock, &config.deploy.capability_config_yaml, &edited)?;
    }
    for folder in existing_folders {
        if purge {
            let is_folder = folder.symlink_metadata().is_ok_and(|metadata| metadata.is_dir());
            let result = if is_folder { std::fs::remove_dir_all(&folder) } else { std::fs::remove_file(&folder) };
            result.with_context(|| format!("cannot remove {}", folder.display()))?;
            removed.purged.push(folder);
        } else {
            removed.kept.push(folder);
        }
    }
    Ok(removed)
}

/// The user's work and backup folders (never the shared dataset folder).
fn user_folders(config: &Config, user: &UserId, entry: Option<&UserEntry>) -> Vec<PathBuf> {
    match entry {
        Some(entry) => vec![entry.work_dir(&config.deploy, user), entry.backup_dir(&config.deploy, user)],
        None => {
            vec![config.deploy.volume_work_dir.join(user.as_str()), config.deploy.volume_backup_dir.join(user.as_str())]
        }
    }
}

/// Refuses to delete anything but a folder strictly inside the work or backup parent folder,
/// reached without a symbolic link: a hand-edited entry must not make `--purge` remove `/home`.
fn check_purgeable(config: &Config, folder: &Path) -> Result<()> {
    let refuse = |why: &str| -> Result<()> {
        bail!(Refused(format!(
            "will not purge {}: {why}; nothing was changed (remove it by hand if it is really theirs)",
            folder.display()
        )))
    };
    let metadata = folder.symlink_metadata().with_context(|| format!("cannot inspect {}", folder.display()))?;
    if metadata.file_type().is_symlink() {
        return refuse("it is a symbolic link");
    }
    let Ok(real) = folder.canonicalize() else {
        return refuse("its real path cannot be found");
    };
    let inside = [&config.deploy.volume_work_dir, &config.deploy.volume_backup_dir].iter().any(|parent| {
        parent.canonicalize().is_ok_and(|parent| real.parent() == Some(parent.as_path()) && real != parent)
    });
    let dataset = config.deploy.volume_dataset_dir.canonicalize().ok();
    if !inside || dataset.as_deref().is_some_and(|dataset| real.starts_with(dataset)) {
        return refuse(&format!(
            "it is not a user folder directly inside {} or {}",
            config.deploy.volume_work_dir.display(),
            config.deploy.volume_backup_dir.display()
        ));
    }
    Ok(())
}

/// What `enroll passwd` did.
#[derive(Debug, Clone, Default)]
pub struct PasswordReset {
    /// The generated password, to be shown once; `None` when the admin gave one.
    pub temporary: Option<String>,
    /// Until when the id was locked by failed logins, if it was; the lock is lifted.
    pub was_locked_until: Option<NaiveDateTime>,
}

/// `enroll passwd`: a new password for a user, which also lifts a lock left by failed logins
/// (their record is cleared). An allowed user who never logged in gets their settings (port,
/// folders) now.
pub fn reset_password(lab: &Lab, user: &UserId, choice: &PasswordChoice) -> Result<PasswordReset> {
    let (hash, temporary) = new_password(user, choice)?;
    let writing = lab.write()?;
    let (lock, now) = (writing.lock(), writing.now()?);
    let mut config = writing.config_to_change()?;
    let was_locked_until = faillock::lock_status(lock, user, now)?;
    match config.users.users.get_mut(user) {
        Some(entry) => {
            entry.password = Some(hash);
            entry.must_change_password = temporary.is_some();
        }
        None => {
            if !config.capability.is_allowed(user) {
                bail!(Refused(format!("{user} is not enrolled; use enroll add {user}")));
            }
            let port = account::free_port(lock, &config)?;
            let mut entry = UserEntry::fresh(&config.deploy, user, port, hash);
            entry.must_change_password = temporary.is_some();
            volumes::create_user_folders(lock.root(), &config, user, &entry)?;
            config.users.users.insert(user.clone(), entry);
        }
    }
    config.users.save(lock, &config.deploy)?;
    if faillock::clear(lock, user, now)? > 0 {
        let message = match was_locked_until {
            Some(until) => format!("{user} unlocked by enroll passwd (was locked until {})", format_minutes(until)),
            None => format!("{user}'s failed logins cleared by enroll passwd"),
        };
        faillock::log_info(lock, now, &message);
    }
    Ok(PasswordReset { temporary, was_locked_until })
}

/// `enroll limits`: sets or clears keys of the user's block. Returns their limits after.
pub fn change_limits(lab: &Lab, user: &UserId, changes: &[LimitChange]) -> Result<UserLimits> {
    let writing = lab.write()?;
    let lock = writing.lock();
    let config = writing.config()?;
    if !config.capability.is_allowed(user) && config.capability.custom_entry(user).is_none() {
        bail!(Refused(format!("{user} is not enrolled; use enroll add {user}")));
    }
    if changes.is_empty() {
        bail!(UsageError(
            "nothing to change: give --cpus, --memory, --gpus, --work-space, --backup-space or --clear".into()
        ));
    }
    let (text, shown) = capability_text(lock, &config)?;
    let edited = capability_edit::apply(&shown, &text, &[Edit::SetLimits(user.clone(), changes.to_vec())])?;
    let (after, _) = crate::store::config::CapabilityConfig::parse(&shown, &edited).map_err(FileProblems)?;
    if edited != text {
        capability::save(lock, &config.deploy.capability_config_yaml, &edited)?;
    }
    Ok(after.limits_for(user))
}

/// A folder's size, measured with a time bound.
#[derive(Debug, Clone, Serialize)]
pub struct FolderSize {
    pub path: PathBuf,
    /// Bytes counted (a lower bound when `complete` is false).
    pub bytes: Option<u64>,
    /// False when the folder is missing or the walk ran out of time.
    pub complete: bool,
}

/// One line of `enroll list`.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub user: String,
    pub allowed: bool,
    /// True when the user has their own block under `max_custom_capability`.
    pub custom_limits: bool,
    pub cpus: f64,
    pub memory: f64,
    pub gpus: u32,
    pub work_space: Option<f64>,
    pub backup_space: Option<f64>,
    pub forward_port: Option<u16>,
    pub must_change_password: bool,
    pub ssh_keys: usize,
    pub bookings: Vec<ActiveBooking>,
    pub work: Option<FolderSize>,
    pub backup: Option<FolderSize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveBooking {
    pub state: BookingState,
    pub start: String,
    pub end: String,
    pub cpus: f64,
    pub memory: u32,
    pub gpus: Vec<u32>,
}

/// Every user who is allowed, has settings, or has limits, in that order of discovery.
pub fn list(lab: &Lab, measure_for: Duration) -> Result<Vec<UserSummary>> {
    let state = lab.read()?.state()?;
    let config = &state.config;
    let mut users: Vec<UserId> = Vec::new();
    for user in config
        .capability
        .allowed_users
        .iter()
        .chain(config.users.users.keys())
        .chain(config.capability.users_with_custom_limits())
    {
        if !users.contains(user) {
            users.push(user.clone());
        }
    }
    let size = |path: PathBuf| {
        if !path.is_dir() {
            return FolderSize { path, bytes: None, complete: false };
        }
        let Ok(folder) = crate::safe_folder::SafeFolder::open_trusted(&path) else {
            return FolderSize { path, bytes: None, complete: false };
        };
        match measure(&folder, u64::MAX, measure_for) {
            Measured::Within(bytes) | Measured::Over(bytes) => FolderSize { path, bytes: Some(bytes), complete: true },
            Measured::Unknown(bytes) => FolderSize { path, bytes: Some(bytes), complete: false },
        }
    };
    Ok(users
        .into_iter()
        .map(|user| {
            let limits = config.capability.limits_for(&user);
            let entry = config.users.get(&user);
            UserSummary {
                user: user.to_string(),
                allowed: config.capability.is_allowed(&user),
                custom_limits: config.capability.custom_entry(&user).is_some(),
                cpus: limits.cpus,
                memory: limits.memory,
                gpus: limits.gpus,
                work_space: limits.work_space,
                backup_space: limits.backup_space,
                forward_port: entry.map(|entry| entry.forward_port),
                must_change_password: entry.is_some_and(|entry| entry.must_change_password),
                ssh_keys: entry.map_or(0, |entry| entry.ssh_keys.len()),
                bookings: state
                    .bookings_of(&user)
                    .into_iter()
                    .map(|(booking_state, booking)| ActiveBooking {
                        state: booking_state,
                        start: format_minutes(booking.start),
                        end: format_minutes(booking.end),
                        cpus: booking.cpus,
                        memory: booking.memory,
                        gpus: booking.gpus,
                    })
                    .collect(),
                work: entry.map(|entry| size(entry.work_dir(&config.deploy, &user))),
                backup: entry.map(|entry| size(entry.backup_dir(&config.deploy, &user))),
            }
        })
        .collect())
}

/// One volume folder `enroll absolute-paths` rewrote.
#[derive(Debug, Clone, Serialize)]
pub struct PathChange {
    pub user: String,
    pub field: &'static str,
    /// As the entry had it (`None`: the key was missing, and the default folder applied).
    pub from: Option<PathBuf>,
    pub to: PathBuf,
}

/// What `enroll absolute-paths` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AbsolutePaths {
    pub changes: Vec<PathChange>,
    /// Users whose SSH keys or must-change flag were still inline in `users_config.yaml`
    /// (an earlier release); they moved to the side file with this write.
    pub moved_to_side_file: Vec<String>,
    /// Users whose password is a hash: the original compares plain text, so these cannot log
    /// in there until the admin gives them one (README, "Going back to the original").
    pub hashed_passwords: Vec<String>,
}

/// `enroll absolute-paths`: rewrites every relative volume folder in `users_config.yaml` as
/// the absolute path it stands for (relative paths are relative to the root here, but to
/// its working folder in the original). A missing folder key is written as the absolute
/// folder it stood for. Nothing else in the file changes; nothing is written when there is
/// nothing to change.
pub fn make_paths_absolute(lab: &Lab) -> Result<AbsolutePaths> {
    let writing = lab.write()?;
    let lock = writing.lock();
    let mut config = writing.config_to_change()?;
    let deploy = config.deploy.clone();
    let absolute = |path: PathBuf| -> Result<PathBuf> {
        let resolved = std::path::absolute(&path)
            .with_context(|| format!("cannot make {} absolute (is the current folder gone?)", path.display()))?;
        Ok(crate::safe_folder::lexically_normal(&resolved))
    };
    let mut done = AbsolutePaths {
        moved_to_side_file: config.users.inline_extras.iter().map(ToString::to_string).collect(),
        ..AbsolutePaths::default()
    };
    for (user, entry) in config.users.users.iter_mut() {
        let resolved = [entry.work_dir(&deploy, user), entry.dataset_dir(&deploy), entry.backup_dir(&deploy, user)];
        if entry.password_is_hashed() {
            done.hashed_passwords.push(user.to_string());
        }
        let slots = [
            ("volume_work_dir", &mut entry.volume_work_dir),
            ("volume_dataset_dir", &mut entry.volume_dataset_dir),
            ("volume_backup_dir", &mut entry.volume_backup_dir),
        ];
        for ((field, slot), resolved) in slots.into_iter().zip(resolved) {
            if slot.as_deref().is_some_and(Path::is_absolute) {
                continue;
            }
            let to = absolute(resolved)?;
            done.changes.push(PathChange { user: user.to_string(), field, from: slot.clone(), to: to.clone() });
            *slot = Some(to);
        }
    }
    if !done.changes.is_empty() || !done.moved_to_side_file.is_empty() {
        config.users.save(lock, &config.deploy)?;
    }
    Ok(done)
}

/// The limit keys by their command-line names (`work-space`) or file names (`work_space`).
pub fn limit_field(name: &str) -> Option<&'static str> {
    let name = name.replace('-', "_");
    LIMIT_FIELDS.iter().copied().find(|field| *field == name)
}

/// Reads a limit as typed: a number of at least 0, or `max`.
pub fn parse_limit(text: &str) -> Result<Limit, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("max") {
        return Ok(Limit::Max);
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(Limit::Number(value)),
        _ => Err(format!("expected a number of at least 0 or \"max\", found {text:?}")),
    }
}
