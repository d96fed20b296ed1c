//! A user's account: logging in, first-time registration, and the settings they keep in
//! `users_config.yaml` (password, forward port, default image and command, SSH keys, e-mail).
//!
//! [`login`] holds the whole login policy: who may log in, three tries, a temporary password
//! replaced at once, registration by the first login where the admin allows it, and the
//! record of failures that locks an id for a while ([`crate::store::faillock`]). Where the
//! answers come from (a terminal, lines of standard input) is the caller's [`Answers`].
//!
//! Every change re-reads `users_config.yaml` under the exclusive lock and saves it
//! atomically, so two users registering at once cannot lose each other's entry. Hashing and
//! checking a password (milliseconds, by design) happen outside that lock, so that nobody
//! waits behind another student's login.
//!
//! An allowed id without a password belongs to nobody yet. Only when the admin turns on
//! self-registration for it (`cfg/login.yaml`) may whoever logs in first choose its
//! password; otherwise the admin sets it (`enroll passwd`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::NaiveDateTime;

use crate::error::{AuthenticationFailed, Refused, UsageError};
use crate::lab::{Lab, host_of};
use crate::model::{UserId, UserLimits};
use crate::password;
use crate::rules::capacity::Host;
use crate::rules::settings;
use crate::store::config::{Config, UserEntry};
use crate::store::faillock;
use crate::store::lock::LockHeld;
use crate::store::schedule::{self, ActiveFile};

/// Passwords a user may type before the session ends.
pub const TRIES: u32 = 3;

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

/// Why a user is asked to choose a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewPassword {
    /// Their first login (self-registration).
    First,
    /// The admin gave them a temporary one, which they just used.
    InsteadOfTemporary,
    /// They asked to change theirs (`book options --change-password`).
    Change,
}

/// What a login asks the user, answered from wherever the caller reads them.
pub trait Answers {
    /// The id to log in as, asked only when none was given.
    fn user_id(&mut self) -> Result<String>;
    /// The password, try `attempt` of [`TRIES`]; `None` when no more will come (the input
    /// ended, or it gives one password only).
    fn password(&mut self, attempt: u32) -> Result<Option<String>>;
    /// Told after each wrong password.
    fn wrong_password(&mut self);
    /// A password `user` chooses now, for `reason`.
    fn new_password(&mut self, user: &UserId, reason: NewPassword) -> Result<String>;
}

/// Who logged in, and what they were given if this was their first login.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedIn {
    pub user: UserId,
    pub registered: Option<Registered>,
}

/// The settings a first login created, to be shown to the new user.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub forward_port: u16,
    /// Their image: the host's default.
    pub image: String,
    pub work_dir: PathBuf,
    pub backup_dir: PathBuf,
}

/// Logs a user in: `given` (their id from the command line) or an id asked for; then their
/// password ([`TRIES`] tries), and a new one if theirs is temporary — or, for an allowed id
/// without a password whose owner may register, a first password, a port and folders.
/// A locked id is refused before it is asked for anything.
pub fn login(lab: &Lab, given: Option<&str>, answers: &mut (impl Answers + ?Sized)) -> Result<LoggedIn> {
    let text = match given {
        Some(user) => user.to_string(),
        None => answers.user_id()?,
    };
    let user = UserId::parse_typed(&text).map_err(UsageError)?;
    let address = faillock::client_address();
    let (standing, seen, locked) = {
        let reading = lab.read()?;
        let config = reading.config()?;
        let standing = standing(&config, &user);
        let locked = match standing {
            Standing::Known { .. } => faillock::lock_status(reading.lock(), &user, reading.now()?)?,
            _ => None,
        };
        (standing, Seen::of(&config, &user), locked)
    };
    let must_choose = match standing {
        Standing::NotAllowed => return Err(not_allowed(&user)),
        Standing::Unclaimed { may_self_register: false } => return Err(no_password_yet(&user)),
        Standing::Unclaimed { may_self_register: true } => {
            let chosen = answers.new_password(&user, NewPassword::First)?;
            let registered = register(lab, &user, &chosen, &address)?;
            return Ok(LoggedIn { user, registered: Some(registered) });
        }
        Standing::Known { must_choose } => must_choose,
    };
    if locked.is_some() {
        refuse_if_locked(lab, &user, &address)?;
    }
    let mut verified = false;
    for attempt in 1..=TRIES {
        let Some(typed) = answers.password(attempt)? else {
            break;
        };
        match try_password(lab, &user, &typed, &address, &seen)? {
            Try::Verified => {
                verified = true;
                break;
            }
            Try::Locked { until } => return Err(faillock::locked_error(&user, until)),
            Try::Wrong { locked_until: Some(until) } => {
                return Err(faillock::locked_error(&user, until).context("wrong password"));
            }
            Try::Wrong { locked_until: None } => answers.wrong_password(),
        }
    }
    if !verified {
        bail!(AuthenticationFailed(format!("wrong password for {user}; bye")));
    }
    if must_choose {
        let chosen = answers.new_password(&user, NewPassword::InsteadOfTemporary)?;
        set_password(lab, &user, &chosen)?;
    }
    Ok(LoggedIn { user, registered: None })
}

/// What a login read of the user's entry before asking for the password.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    allowed: bool,
    stored: Option<String>,
}

impl Seen {
    fn of(config: &Config, user: &UserId) -> Seen {
        Seen {
            allowed: config.capability.is_allowed(user),
            stored: config
                .users
                .get(user)
                .filter(|entry| entry.has_password())
                .and_then(|entry| entry.password.clone()),
        }
    }

    fn accepts(&self, typed: &str) -> bool {
        self.allowed && self.stored.as_deref().is_some_and(|stored| password::verify(stored, typed))
    }

    /// A fresh hash to store instead of a legacy plain-text password (or a hash crypt(3)
    /// cannot read) that `typed` matched.
    fn rehash(&self, typed: &str) -> Result<Option<String>> {
        match &self.stored {
            Some(stored) if password::needs_rehash(stored) => Ok(Some(password::hash(typed)?)),
            _ => Ok(None),
        }
    }
}

/// What one typed password led to.
#[derive(Debug, Clone, PartialEq)]
enum Try {
    Verified,
    /// Wrong; `locked_until` when this failure locked the id.
    Wrong {
        locked_until: Option<NaiveDateTime>,
    },
    /// The id was locked meanwhile (by failures elsewhere).
    Locked {
        until: NaiveDateTime,
    },
}

/// Logs the refusal of a locked id under the exclusive lock, and refuses; returns normally
/// when the id is no longer locked by then (the admin lifted it).
fn refuse_if_locked(lab: &Lab, user: &UserId, address: &str) -> Result<()> {
    let writing = lab.write()?;
    let now = writing.now()?;
    match faillock::lock_status(writing.lock(), user, now)? {
        Some(until) => {
            faillock::log_refused(writing.lock(), user, address, until, now);
            Err(faillock::locked_error(user, until))
        }
        None => Ok(()),
    }
}

/// Checks `typed` against the entry as `seen` — outside any lock, since the check takes
/// milliseconds by design — then, under the exclusive lock, records the outcome: a failure
/// (which may lock the id), or a success (which clears the id's failures and replaces a
/// legacy password by a hash). If the entry changed meanwhile, the password is checked
/// again against the entry as it is now.
fn try_password(lab: &Lab, user: &UserId, typed: &str, address: &str, seen: &Seen) -> Result<Try> {
    let mut verified = seen.accepts(typed);
    let mut fresh_hash = if verified { seen.rehash(typed)? } else { None };
    if verified && fresh_hash.is_none() && nothing_to_record(lab, user, seen)? {
        return Ok(Try::Verified);
    }
    let writing = lab.write()?;
    let (lock, now) = (writing.lock(), writing.now()?);
    if let Some(until) = faillock::lock_status(lock, user, now)? {
        faillock::log_refused(lock, user, address, until, now);
        return Ok(Try::Locked { until });
    }
    let config = writing.config()?;
    let current = Seen::of(&config, user);
    if current != *seen {
        // Rare (a new password saved by another session, the id removed): worth the wait.
        verified = current.accepts(typed);
        fresh_hash = if verified { current.rehash(typed)? } else { None };
    }
    if !verified {
        let locked_until = faillock::record_failure(lock, user, address, now)?;
        return Ok(Try::Wrong { locked_until });
    }
    if let Some(hash) = fresh_hash {
        let mut config = Config::clone(&config);
        if let Some(entry) = config.users.users.get_mut(user) {
            entry.password = Some(hash);
            config.users.save(lock, &config.deploy)?;
        }
    }
    faillock::clear(lock, user, now)?;
    Ok(Try::Verified)
}

/// Whether a right password needs no writer: the id is not locked, has no failures to
/// clear, and its entry is still as `seen`. Looked at under the shared lock, so that logins
/// (a `book new` at the start of a lab session, say) run side by side instead of queueing
/// behind each other for the exclusive one; anything else goes the writer's way.
fn nothing_to_record(lab: &Lab, user: &UserId, seen: &Seen) -> Result<bool> {
    let reading = lab.read()?;
    let failures = faillock::read(reading.lock())?;
    if failures.iter().any(|failure| &failure.user == user) {
        return Ok(false);
    }
    Ok(Seen::of(&*reading.config()?, user) == *seen)
}

/// Registers an allowed user who has no password yet, when self-registration is on for
/// them: stores their password's hash and, if they have no entry yet, gives them a free
/// random forward port. The claim is logged with the address it came from, so the admin can
/// tell who took an id.
fn register(lab: &Lab, user: &UserId, chosen_password: &str, address: &str) -> Result<Registered> {
    password::check_new(chosen_password, user.as_str()).map_err(UsageError)?;
    let hash = password::hash(chosen_password)?;
    let writing = lab.write()?;
    let lock = writing.lock();
    let mut config = writing.config_to_change()?;
    if !config.capability.is_allowed(user) {
        return Err(not_allowed(user));
    }
    // Checked here, under the lock, whatever the login looked at before.
    if !config.login.may_self_register(user) {
        return Err(no_password_yet(user));
    }
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
    faillock::log_info(
        lock,
        writing.now()?,
        &format!("{user} chose their first password from {address} (self-registration)"),
    );
    Ok(Registered {
        forward_port: entry.forward_port,
        image: entry.image.clone().unwrap_or_else(|| config.deploy.default_image().to_string()),
        work_dir: entry.work_dir(&config.deploy, user),
        backup_dir: entry.backup_dir(&config.deploy, user),
    })
}

/// Sets a new password (after checking the rules) and clears a temporary one.
pub fn set_password(lab: &Lab, user: &UserId, chosen_password: &str) -> Result<()> {
    password::check_new(chosen_password, user.as_str()).map_err(UsageError)?;
    let hash = password::hash(chosen_password)?;
    let writing = lab.write()?;
    let mut config = writing.config_to_change()?;
    let entry = config.users.users.get_mut(user).with_context(|| format!("{user} has no settings yet"))?;
    entry.password = Some(hash);
    entry.must_change_password = false;
    config.users.save(writing.lock(), &config.deploy)
}

/// A port of [`settings::PORT_RANGE`] that no user has and no active booking uses, picked at
/// random so ports do not reveal the order users joined in.
pub fn free_port(lock: &impl LockHeld, config: &Config) -> Result<u16> {
    let mut taken: Vec<u16> = config.users.ports().map(|(_, port)| port).collect();
    for file in [ActiveFile::Booking, ActiveFile::Using] {
        taken.extend(schedule::read(lock, file)?.iter().map(|booking| booking.forward_port));
    }
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).map_err(|error| anyhow::anyhow!("no randomness available: {error}"))?;
    settings::free_port(taken, u32::from_le_bytes(random))
}

/// What a user may choose from, as a dialogue shows it and checks each answer against.
#[derive(Debug, Clone)]
pub struct Choices {
    user: UserId,
    /// `None` when they may not book.
    limits: Option<UserLimits>,
    pub host: Host,
    /// The images offered here; the first is the default.
    pub images: Vec<String>,
    /// Their saved settings, if they have any.
    pub entry: Option<UserEntry>,
    ports: Vec<(UserId, u16)>,
}

/// The choices `user` has now.
pub fn choices(lab: &Lab, user: &UserId) -> Result<Choices> {
    let config = lab.read()?.config()?;
    Ok(Choices {
        user: user.clone(),
        limits: config.limits_for(user),
        host: host_of(&config),
        images: config.deploy.images.clone(),
        entry: config.users.get(user).cloned(),
        ports: config.users.ports().map(|(owner, port)| (owner.clone(), port)).collect(),
    })
}

impl Choices {
    /// Their limits per booking, or the refusal of someone who may not book.
    pub fn limits(&self) -> Result<UserLimits> {
        self.limits.clone().ok_or_else(|| not_allowed(&self.user))
    }

    /// Their settings, which a dialogue about them needs.
    pub fn entry(&self) -> Result<&UserEntry> {
        self.entry.as_ref().ok_or_else(|| anyhow::anyhow!("{} has no settings yet", self.user))
    }

    pub fn default_image(&self) -> &str {
        self.images.first().map(String::as_str).unwrap_or_default()
    }

    /// The image their bookings run: their own default, or the host's.
    pub fn image(&self) -> &str {
        self.entry.as_ref().and_then(|entry| entry.image.as_deref()).unwrap_or(self.default_image())
    }

    pub fn check_image(&self, image: &str) -> Result<()> {
        settings::check_image(image, &self.images)
    }

    pub fn check_port(&self, port: u16) -> Result<()> {
        settings::check_port(&self.user, port, self.ports.iter().map(|(owner, port)| (owner, *port)), [])
    }
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

/// A user's saved defaults after a change, and the host's default image they fall back to.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub entry: UserEntry,
    pub default_image: String,
}

/// Applies `change` to the user's saved defaults.
pub fn change_defaults(lab: &Lab, user: &UserId, change: &DefaultsChange) -> Result<Defaults> {
    let writing = lab.write()?;
    let lock = writing.lock();
    let mut config = writing.config_to_change()?;
    if let Some(port) = change.forward_port {
        let mut bookings = schedule::read(lock, ActiveFile::Booking)?;
        bookings.extend(schedule::read(lock, ActiveFile::Using)?);
        settings::check_port(user, port, config.users.ports(), &bookings)?;
    }
    if let Some(Some(image)) = &change.image {
        settings::check_image(image, &config.deploy.images)?;
    }
    let keys: Vec<String> =
        change.add_ssh_keys.iter().map(|key| settings::check_ssh_key(key)).collect::<Result<_>>()?;
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
        settings::check_extra_command(command).map_err(UsageError)?;
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
    settings::check_ssh_keys(&entry.ssh_keys).map_err(Refused)?;
    let updated = entry.clone();
    config.users.save(lock, &config.deploy)?;
    Ok(Defaults { entry: updated, default_image: config.deploy.default_image().to_string() })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::error::{EXIT_AUTHENTICATION, exit_code_for};
    use crate::lab::tests::{at, scratch_root};
    use crate::store::root::Root;

    /// Answers written in advance, and a record of what the login asked and told.
    #[derive(Default)]
    struct Scripted {
        passwords: VecDeque<String>,
        new_passwords: VecDeque<String>,
        passwords_asked: u32,
        told_wrong: u32,
        new_asked: Vec<NewPassword>,
        /// Done when the first password is asked for: after the login looked at the entry,
        /// before it checks what was typed (another process at work meanwhile).
        meanwhile: Option<Box<dyn FnOnce()>>,
    }

    impl Scripted {
        fn new(passwords: &[&str], new_passwords: &[&str]) -> Scripted {
            Scripted {
                passwords: passwords.iter().map(ToString::to_string).collect(),
                new_passwords: new_passwords.iter().map(ToString::to_string).collect(),
                ..Scripted::default()
            }
        }
    }

    impl Answers for Scripted {
        fn user_id(&mut self) -> Result<String> {
            bail!("no id was scripted")
        }

        fn password(&mut self, _attempt: u32) -> Result<Option<String>> {
            self.passwords_asked += 1;
            if let Some(meanwhile) = self.meanwhile.take() {
                meanwhile();
            }
            Ok(self.passwords.pop_front())
        }

        fn wrong_password(&mut self) {
            self.told_wrong += 1;
        }

        fn new_password(&mut self, _user: &UserId, reason: NewPassword) -> Result<String> {
            self.new_asked.push(reason);
            self.new_passwords.pop_front().context("no new password was scripted")
        }
    }

    fn lab_in(scratch: &tempfile::TempDir) -> Lab {
        Lab::at(Root::new(scratch.path()), at("2026-11-23 10:00"))
    }

    fn id(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    /// Gives `user` an entry with `password` (temporary or their own), as the admin would.
    fn give_password(scratch: &tempfile::TempDir, user: &str, password: &str, temporary: bool) {
        let lab = lab_in(scratch);
        let writing = lab.write().unwrap();
        let mut config = writing.config_to_change().unwrap();
        let mut entry = UserEntry::fresh(&config.deploy, &id(user), 10001, password::hash(password).unwrap());
        entry.must_change_password = temporary;
        config.users.users.insert(id(user), entry);
        config.users.save(writing.lock(), &config.deploy).unwrap();
    }

    fn failures_of(scratch: &tempfile::TempDir, user: &str) -> usize {
        let lab = lab_in(scratch);
        let reading = lab.read().unwrap();
        faillock::read(reading.lock()).unwrap().iter().filter(|failure| failure.user == id(user)).count()
    }

    fn accepts(scratch: &tempfile::TempDir, user: &str, typed: &str) -> bool {
        let lab = lab_in(scratch);
        let config = lab.read().unwrap().config().unwrap();
        Seen::of(&config, &id(user)).accepts(typed)
    }

    #[test]
    fn three_wrong_passwords_end_the_login_and_each_is_recorded() {
        let scratch = scratch_root();
        give_password(&scratch, "alice", "alices-secret", false);
        let mut answers = Scripted::new(&["wrong-1", "wrong-2", "wrong-3", "alices-secret"], &[]);
        let error = login(&lab_in(&scratch), Some("alice"), &mut answers).unwrap_err();
        assert_eq!(error.to_string(), "wrong password for alice; bye");
        assert_eq!(exit_code_for(&error), EXIT_AUTHENTICATION);
        assert_eq!((answers.passwords_asked, answers.told_wrong), (3, 3), "three tries, each told it was wrong");
        assert_eq!(failures_of(&scratch, "alice"), 3);
    }

    #[test]
    fn the_right_password_on_a_later_try_logs_in_and_clears_the_failures() {
        let scratch = scratch_root();
        give_password(&scratch, "alice", "alices-secret", false);
        let mut answers = Scripted::new(&["wrong-1", "alices-secret"], &[]);
        let logged_in = login(&lab_in(&scratch), Some("alice"), &mut answers).unwrap();
        assert_eq!(logged_in, LoggedIn { user: id("alice"), registered: None });
        assert_eq!(answers.told_wrong, 1);
        assert_eq!(failures_of(&scratch, "alice"), 0, "a login clears the record");
    }

    #[test]
    fn answers_that_give_one_password_get_one_try() {
        let scratch = scratch_root();
        give_password(&scratch, "alice", "alices-secret", false);
        let mut answers = Scripted::new(&["wrong-1"], &[]);
        let error = login(&lab_in(&scratch), Some("alice"), &mut answers).unwrap_err();
        assert_eq!(exit_code_for(&error), EXIT_AUTHENTICATION);
        assert_eq!(answers.passwords_asked, 2, "asked again, and nothing came");
        assert_eq!(failures_of(&scratch, "alice"), 1);
    }

    #[test]
    fn a_locked_id_is_refused_before_it_is_asked_for_a_password() {
        let scratch = scratch_root();
        give_password(&scratch, "alice", "alices-secret", false);
        let lab = lab_in(&scratch);
        {
            let writing = lab.write().unwrap();
            for _ in 0..faillock::DENY {
                faillock::record_failure(writing.lock(), &id("alice"), "203.0.113.9", at("2026-11-23 09:55")).unwrap();
            }
        }
        let mut answers = Scripted::new(&["alices-secret"], &[]);
        let error = login(&lab, Some("alice"), &mut answers).unwrap_err();
        assert!(error.to_string().starts_with("alice is locked after 5 failed logins"), "{error}");
        assert_eq!(exit_code_for(&error), EXIT_AUTHENTICATION);
        assert_eq!(answers.passwords_asked, 0);
    }

    #[test]
    fn a_temporary_password_is_replaced_by_one_the_user_chooses() {
        let scratch = scratch_root();
        give_password(&scratch, "alice", "temporary-7kq2", true);
        let mut answers = Scripted::new(&["temporary-7kq2"], &["Alices-own-42"]);
        login(&lab_in(&scratch), Some("alice"), &mut answers).unwrap();
        assert_eq!(answers.new_asked, vec![NewPassword::InsteadOfTemporary]);
        assert!(accepts(&scratch, "alice", "Alices-own-42"));
        assert!(!accepts(&scratch, "alice", "temporary-7kq2"));
        let config = lab_in(&scratch).read().unwrap().config().unwrap();
        assert!(!config.users.get(&id("alice")).unwrap().must_change_password);
    }

    #[test]
    fn a_first_login_registers_only_where_the_admin_allows_it() {
        let scratch = scratch_root();
        // bob may choose his first password.
        let mut answers = Scripted::new(&[], &["Bobs-secret-7"]);
        let logged_in = login(&lab_in(&scratch), Some("bob"), &mut answers).unwrap();
        let registered = logged_in.registered.expect("bob's settings");
        assert!(settings::PORT_RANGE.contains(&registered.forward_port));
        assert_eq!(registered.image, "lab/ssh:latest");
        assert!(registered.work_dir.ends_with("w/bob"), "{}", registered.work_dir.display());
        assert_eq!((answers.new_asked, answers.passwords_asked), (vec![NewPassword::First], 0));
        assert!(login(&lab_in(&scratch), Some("bob"), &mut Scripted::new(&["Bobs-secret-7"], &[])).is_ok());

        // alice may not (the admin sets hers); carol may not book at all. Nothing is asked.
        for (user, message) in [("alice", "alice has no password yet"), ("carol", "carol may not book on this server")]
        {
            let mut answers = Scripted::new(&["anything"], &["Anything-42"]);
            let error = login(&lab_in(&scratch), Some(user), &mut answers).unwrap_err();
            assert!(error.to_string().starts_with(message), "{error}");
            assert_eq!(exit_code_for(&error), EXIT_AUTHENTICATION);
            assert_eq!((answers.passwords_asked, answers.new_asked.len()), (0, 0));
        }
    }

    #[test]
    fn a_password_changed_while_the_typed_one_was_checked_is_checked_again() {
        for (typed, logs_in) in [("alices-old-1", false), ("alices-new-2", true)] {
            let scratch = scratch_root();
            give_password(&scratch, "alice", "alices-old-1", false);
            let mut answers = Scripted::new(&[typed], &[]);
            let root = scratch.path().to_path_buf();
            // Another session sets a new password after this login read the old entry.
            answers.meanwhile = Some(Box::new(move || {
                let other = Lab::at(Root::new(root), at("2026-11-23 10:00"));
                set_password(&other, &id("alice"), "alices-new-2").unwrap();
            }));
            let result = login(&lab_in(&scratch), Some("alice"), &mut answers);
            assert_eq!(result.is_ok(), logs_in, "typed {typed}: {result:?}");
            assert_eq!(failures_of(&scratch, "alice"), usize::from(!logs_in));
        }
    }

    #[test]
    fn a_legacy_plain_text_password_is_replaced_by_a_hash_at_login() {
        let scratch = scratch_root();
        std::fs::write(
            scratch.path().join("cfg/users_config.yaml"),
            "alice:\n  password: \"plain-secret\"\n  forward_port: 10001\n  image: null\n  extra_command: null\n",
        )
        .unwrap();
        login(&lab_in(&scratch), Some("alice"), &mut Scripted::new(&["plain-secret"], &[])).unwrap();
        let config = lab_in(&scratch).read().unwrap().config().unwrap();
        let stored = config.users.get(&id("alice")).unwrap().password.clone().unwrap();
        assert!(stored.starts_with("$6$"), "{stored}");
        assert!(password::verify(&stored, "plain-secret"));
    }
}
