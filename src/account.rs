//! A user's account: logging in, first-time registration, and the settings they keep in
//! `users_config.yaml` (password, forward port, default image and command, SSH keys, e-mail).
//!
//! Every change re-reads `users_config.yaml` under the [`ExclusiveLock`] and saves it
//! atomically, so two users registering at once cannot lose each other's entry.
//!
//! An allowed id without a password belongs to nobody yet. Only when the admin turns on
//! self-registration for it (`cfg/login.yaml`) may whoever logs in first choose its
//! password; otherwise the admin sets it (`enroll passwd`). Failed logins are counted and
//! lock the id for a while ([`crate::store::faillock`]).

use anyhow::{Context, Result, bail};
use chrono::NaiveDateTime;

use crate::error::{AuthenticationFailed, Refused, UsageError};
use crate::model::UserId;
use crate::password;
use crate::store::config::{Config, UserEntry};
use crate::store::faillock;
use crate::store::lock::{ExclusiveLock, LockHeld};
use crate::store::schedule::{self, ActiveFile};

/// The forward ports users get: the original's application range, above the well-known ports.
pub const PORT_RANGE: std::ops::RangeInclusive<u16> = 10001..=11000;

/// Where a user stands before logging in.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// Not in `allow_userIDs`.
    NotAllowed,
    /// Allowed, but without a password yet (no entry, or an entry without one).
    /// `may_self_register`: they may choose one now; otherwise the admin sets it.
    Unclaimed { may_self_register: bool },
    /// Has a password; `must_choose` when it is temporary.
    Known { must_choose: bool },
}

pub fn standing(config: &Config, user: &UserId) -> Standing {
    if !config.capability.is_allowed(user) {
        return Standing::NotAllowed;
    }
    match config.users.get(user) {
        Some(entry) if entry.has_password() => Standing::Known { must_choose: entry.must_change_password },
        _ => Standing::Unclaimed { may_self_register: config.login.may_self_register(user) },
    }
}

pub fn not_allowed(user: &UserId) -> anyhow::Error {
    AuthenticationFailed(format!("{user} may not book on this server; ask the admin to add you to allow_userIDs"))
        .into()
}

/// The answer for an allowed id without a password when self-registration is off for it.
pub fn no_password_yet(user: &UserId) -> anyhow::Error {
    AuthenticationFailed(format!(
        "{user} has no password yet; ask the admin to set one (enroll passwd {user}), then log in with it"
    ))
    .into()
}

/// What a password typed at login led to.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginOutcome {
    Verified,
    /// Wrong; `locked_until` when this failure locked the id.
    Wrong {
        locked_until: Option<NaiveDateTime>,
    },
    /// The id is locked: the password was not even checked.
    Locked {
        until: NaiveDateTime,
    },
}

/// Refuses a locked id before it is asked for a password, and logs the refusal.
pub fn check_not_locked(lock: &ExclusiveLock, user: &UserId, address: &str, now: NaiveDateTime) -> Result<()> {
    match faillock::lock_status(lock, user, now)? {
        Some(until) => {
            faillock::log_refused(lock, user, address, until, now);
            Err(faillock::locked_error(user, until))
        }
        None => Ok(()),
    }
}

/// Checks a password typed at login from `address`. A locked id is refused without looking
/// at the password; a wrong one is recorded (and may lock the id); a right one clears the
/// id's failures. A legacy plain-text password (or a hash crypt(3) cannot read) that matches
/// is replaced by a fresh hash.
pub fn log_in(
    lock: &ExclusiveLock,
    user: &UserId,
    typed: &str,
    address: &str,
    now: NaiveDateTime,
) -> Result<LoginOutcome> {
    if let Some(until) = faillock::lock_status(lock, user, now)? {
        faillock::log_refused(lock, user, address, until, now);
        return Ok(LoginOutcome::Locked { until });
    }
    let mut config = Config::load(lock)?;
    let stored = config.users.get(user).filter(|entry| entry.has_password()).and_then(|entry| entry.password.clone());
    let verified =
        config.capability.is_allowed(user) && stored.as_deref().is_some_and(|stored| password::verify(stored, typed));
    if !verified {
        let locked_until = faillock::record_failure(lock, user, address, now)?;
        return Ok(LoginOutcome::Wrong { locked_until });
    }
    if let (Some(stored), Some(entry)) = (stored, config.users.users.get_mut(user))
        && password::needs_rehash(&stored)
    {
        entry.password = Some(password::hash(typed)?);
        config.users.save(lock, &config.deploy)?;
    }
    faillock::clear(lock, user, now)?;
    Ok(LoginOutcome::Verified)
}

/// Registers an allowed user who has no password yet, when self-registration is on for
/// them: hashes their password and, if they have no entry yet, gives them a free random
/// forward port. The claim is logged with the address it came
/// from, so the admin can tell who took an id. Returns their entry.
pub fn register(
    lock: &ExclusiveLock,
    user: &UserId,
    chosen_password: &str,
    address: &str,
    now: NaiveDateTime,
) -> Result<UserEntry> {
    let mut config = Config::load(lock)?;
    if !config.capability.is_allowed(user) {
        return Err(not_allowed(user));
    }
    // Checked here, under the lock, whatever the caller looked at before.
    if !config.login.may_self_register(user) {
        return Err(no_password_yet(user));
    }
    password::check_new(chosen_password, user.as_str()).map_err(UsageError)?;
    let hash = password::hash(chosen_password)?;
    let entry = match config.users.users.get_mut(user) {
        Some(entry) if entry.has_password() => {
            bail!(Refused(format!("{user} is already registered; log in with your password")))
        }
        Some(entry) => {
            entry.password = Some(hash);
            entry.must_change_password = false;
            entry.clone()
        }
        None => {
            let forward_port = free_port(lock, &config)?;
            // No folders here: `book` runs as the unprivileged booking account, which may
            // not write the volume parents; the monitor (root) makes them before the first
            // container starts.
            let entry = UserEntry::fresh(&config.deploy, user, forward_port, hash);
            config.users.users.insert(user.clone(), entry.clone());
            entry
        }
    };
    config.users.save(lock, &config.deploy)?;
    faillock::log_info(lock, now, &format!("{user} chose their first password from {address} (self-registration)"));
    Ok(entry)
}

/// Sets a new password (after checking the rules) and clears a temporary one.
pub fn set_password(lock: &ExclusiveLock, user: &UserId, chosen_password: &str) -> Result<()> {
    password::check_new(chosen_password, user.as_str()).map_err(UsageError)?;
    let mut config = Config::load(lock)?;
    let entry = config.users.users.get_mut(user).with_context(|| format!("{user} has no settings yet"))?;
    entry.password = Some(password::hash(chosen_password)?);
    entry.must_change_password = false;
    config.users.save(lock, &config.deploy)
}

/// A port in [`PORT_RANGE`] that no user has and no active booking uses, picked at random so
/// ports do not reveal the order users joined in.
pub fn free_port(lock: &impl LockHeld, config: &Config) -> Result<u16> {
    let mut taken: Vec<u16> = config.users.users.values().map(|entry| entry.forward_port).collect();
    for file in [ActiveFile::Booking, ActiveFile::Using] {
        taken.extend(schedule::read(lock, file)?.iter().map(|booking| booking.forward_port));
    }
    let free: Vec<u16> = PORT_RANGE.filter(|port| !taken.contains(port)).collect();
    if free.is_empty() {
        bail!(Refused(format!("every forward port from {} to {} is taken", PORT_RANGE.start(), PORT_RANGE.end())));
    }
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).map_err(|error| anyhow::anyhow!("no randomness available: {error}"))?;
    Ok(free[u32::from_le_bytes(random) as usize % free.len()])
}

/// Changes to a user's saved defaults. `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct DefaultsChange {
    pub forward_port: Option<u16>,
    /// `Some(None)` goes back to the host's default image.
    pub image: Option<Option<String>>,
    pub extra_command: Option<Option<String>>,
    pub add_ssh_keys: Vec<String>,
    /// Keys to remove, by their position in `book options` (1-based) or their comment.
    pub remove_ssh_keys: Vec<String>,
    /// `Some(None)` removes the address: no more mail.
    pub email: Option<Option<String>>,
}

/// Checks a forward port a user asks for: in range, and nobody else's.
pub fn check_port(config: &Config, user: &UserId, port: u16) -> Result<()> {
    if !PORT_RANGE.contains(&port) {
        bail!(Refused(format!("forward port {port} is outside {}–{}", PORT_RANGE.start(), PORT_RANGE.end())));
    }
    if let Some((owner, _)) =
        config.users.users.iter().find(|(owner, entry)| *owner != user && entry.forward_port == port)
    {
        bail!(Refused(format!("forward port {port} belongs to {owner}")));
    }
    Ok(())
}

/// Checks an image a user asks for: one of the host's.
pub fn check_image(config: &Config, image: &str) -> Result<()> {
    crate::rules::fields::check_image_name(image).map_err(UsageError)?;
    if !config.deploy.images.iter().any(|allowed| allowed == image) {
        bail!(Refused(format!(
            "image {image:?} is not offered here; choose one of: {}",
            config.deploy.images.join(", ")
        )));
    }
    Ok(())
}

/// Checks an OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
pub fn check_ssh_key(key: &str) -> Result<String> {
    let key = key.trim();
    if key.len() > crate::rules::fields::SSH_KEY_BYTES {
        bail!(UsageError(format!(
            "an SSH key of {} bytes; at most {} are allowed",
            key.len(),
            crate::rules::fields::SSH_KEY_BYTES
        )));
    }
    let mut words = key.split_whitespace();
    let kind = words.next().unwrap_or("");
    let body = words.next().unwrap_or("");
    let known = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    let body_ok = body.len() >= 16
        && body.chars().all(|character| character.is_ascii_alphanumeric() || "+/=".contains(character));
    if !known.contains(&kind) || !body_ok || key.contains('\n') {
        bail!(UsageError(format!(
            "not an OpenSSH public key (expected a line such as \"ssh-ed25519 AAAA… you@laptop\"), found {:?}",
            key.chars().take(40).collect::<String>()
        )));
    }
    Ok(key.to_string())
}

/// Applies `change` to the user's saved defaults and returns the new entry.
pub fn change_defaults(lock: &ExclusiveLock, user: &UserId, change: &DefaultsChange) -> Result<UserEntry> {
    let mut config = Config::load(lock)?;
    if let Some(port) = change.forward_port {
        check_port(&config, user, port)?;
        let clash = [ActiveFile::Booking, ActiveFile::Using]
            .into_iter()
            .map(|file| schedule::read(lock, file))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .find(|booking| booking.forward_port == port && &booking.user_id != user);
        if let Some(booking) = clash {
            bail!(Refused(format!("forward port {port} is used by {}'s booking", booking.user_id)));
        }
    }
    if let Some(Some(image)) = &change.image {
        check_image(&config, image)?;
    }
    let keys: Vec<String> = change.add_ssh_keys.iter().map(|key| check_ssh_key(key)).collect::<Result<_>>()?;
    let email = match &change.email {
        Some(Some(address)) => Some(Some(crate::store::config::mail::check_address(address).map_err(UsageError)?)),
        other => other.clone(),
    };
    let entry = config.users.users.get_mut(user).with_context(|| format!("{user} has no settings yet"))?;
    if let Some(port) = change.forward_port {
        entry.forward_port = port;
    }
    if let Some(image) = &change.image {
        entry.image = image.clone();
    }
    if let Some(email) = email {
        entry.email = email;
    }
    if let Some(Some(command)) = &change.extra_command {
        crate::rules::fields::check_extra_command(command).map_err(UsageError)?;
    }
    if let Some(command) = &change.extra_command {
        entry.extra_command = command.clone().filter(|command| !command.trim().is_empty());
    }
    for removal in &change.remove_ssh_keys {
        let before = entry.ssh_keys.len();
        let position = removal.parse::<usize>().ok();
        let mut index = 0;
        entry.ssh_keys.retain(|key| {
            index += 1;
            let matches = Some(index) == position || key.split_whitespace().nth(2) == Some(removal.as_str());
            !matches
        });
        if entry.ssh_keys.len() == before {
            bail!(UsageError(format!("no saved key matches {removal:?} (give its number or its comment)")));
        }
    }
    for key in keys {
        if !entry.ssh_keys.contains(&key) {
            entry.ssh_keys.push(key);
        }
    }
    crate::rules::fields::check_ssh_keys(&entry.ssh_keys).map_err(Refused)?;
    let updated = entry.clone();
    config.users.save(lock, &config.deploy)?;
    Ok(updated)
}
