//! A user's account: logging in, first-time registration, and the settings they keep in
//! `users_config.yaml` (password, forward port, default image and command, SSH keys).
//!
//! Every change re-reads `users_config.yaml` under the [`ExclusiveLock`] and saves it
//! atomically, so two users registering at once cannot lose each other's entry.

use anyhow::{Context, Result, bail};

use crate::config::{Config, UserEntry, UserId};
use crate::error::{AuthenticationFailed, Refused, UsageError};
use crate::lock::{ExclusiveLock, LockHeld};
use crate::password;
use crate::schedule::{self, ActiveFile};
use crate::volumes;

/// The forward ports users get: the original's application range, above the well-known ports.
pub const PORT_RANGE: std::ops::RangeInclusive<u16> = 10001..=11000;

/// Where a user stands before logging in.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// Not in `allow_userIDs`.
    NotAllowed,
    /// Allowed, but has no entry yet: they choose a password now.
    New,
    /// Has an entry; `must_choose` when the password is temporary or missing.
    Known { must_choose: bool },
}

pub fn standing(config: &Config, user: &UserId) -> Standing {
    if !config.capability.is_allowed(user) {
        return Standing::NotAllowed;
    }
    match config.users.get(user) {
        None => Standing::New,
        Some(entry) => Standing::Known { must_choose: entry.must_change_password || entry.password.is_none() },
    }
}

pub fn not_allowed(user: &UserId) -> anyhow::Error {
    AuthenticationFailed(format!("{user} may not book on this server; ask the admin to add you to allow_userIDs"))
        .into()
}

/// Checks a password. A legacy plain-text password (or a hash crypt(3) cannot read) that
/// matches is replaced by a fresh hash.
pub fn verify_password(lock: &ExclusiveLock, user: &UserId, typed: &str) -> Result<bool> {
    let mut config = Config::load(lock)?;
    let Some(entry) = config.users.users.get_mut(user) else {
        return Ok(false);
    };
    let Some(stored) = entry.password.clone() else {
        return Ok(false);
    };
    if !password::verify(&stored, typed) {
        return Ok(false);
    }
    if password::needs_rehash(&stored) {
        entry.password = Some(password::hash(typed)?);
        config.users.save(lock, &config.deploy.users_config_yaml)?;
    }
    Ok(true)
}

/// Registers a new user (allowed, no entry yet): hashes their password, gives them a free
/// random forward port, creates their folders. Returns their new entry.
pub fn register(lock: &ExclusiveLock, user: &UserId, chosen_password: &str) -> Result<UserEntry> {
    password::check_new(chosen_password, user.as_str()).map_err(UsageError)?;
    let mut config = Config::load(lock)?;
    if !config.capability.is_allowed(user) {
        return Err(not_allowed(user));
    }
    if config.users.get(user).is_some() {
        bail!(Refused(format!("{user} is already registered; log in with your password")));
    }
    let forward_port = free_port(lock, &config)?;
    let entry = UserEntry::fresh(&config.deploy, user, forward_port, password::hash(chosen_password)?);
    // On a server the volume folders are root's (README, "Deploying"): `book`, running as the
    // booking account, may not create anything there, and the monitor creates the user's
    // folders before their first container starts.
    if let Err(error) = volumes::create_user_folders(lock.root(), &config, user, &entry)
        && !is_permission_denied(&error)
    {
        return Err(error);
    }
    config.users.users.insert(user.clone(), entry.clone());
    config.users.save(lock, &config.deploy.users_config_yaml)?;
    Ok(entry)
}

fn is_permission_denied(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|error| error.kind() == std::io::ErrorKind::PermissionDenied)
    })
}

/// Sets a new password (after checking the rules) and clears a temporary one.
pub fn set_password(lock: &ExclusiveLock, user: &UserId, chosen_password: &str) -> Result<()> {
    password::check_new(chosen_password, user.as_str()).map_err(UsageError)?;
    let mut config = Config::load(lock)?;
    let entry = config.users.users.get_mut(user).with_context(|| format!("{user} has no settings yet"))?;
    entry.password = Some(password::hash(chosen_password)?);
    entry.must_change_password = false;
    config.users.save(lock, &config.deploy.users_config_yaml)
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
    let entry = config.users.users.get_mut(user).with_context(|| format!("{user} has no settings yet"))?;
    if let Some(port) = change.forward_port {
        entry.forward_port = port;
    }
    if let Some(image) = &change.image {
        entry.image = image.clone();
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
    let updated = entry.clone();
    config.users.save(lock, &config.deploy.users_config_yaml)?;
    Ok(updated)
}
