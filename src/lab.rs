//! One command's view of the lab: the root it works on, the moment it runs at, and the
//! configuration under `cfg/`, parsed once however often the command looks at it.
//!
//! A command takes the state lock through its [`Lab`] ([`Lab::read`], [`Lab::write`]) and
//! reads the configuration through the held lock ([`Held::config`]). The first read parses
//! `cfg/`; each later one, under whatever lock is held then, reads the files again (as the
//! parse reads them: no link where the booking account writes, no FIFO anywhere), compares
//! them with the texts that were parsed, and parses again only when one of them changed. So a decision made under
//! the exclusive lock is made on the files as they are at that moment (another `book` may have
//! registered a user meanwhile), and a command that logs in, checks and books parses the
//! configuration once instead of three or four times.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use anyhow::Result;
use chrono::NaiveDateTime;

use crate::model::{Booking, BookingState, UserId};
use crate::rules::capacity::Host;
use crate::rules::time_input::Horizon;
use crate::store::config::Config;
use crate::store::lock::{ExclusiveLock, LockHeld, SharedLock};
use crate::store::root::Root;
use crate::store::schedule::{self, ActiveFile};

/// The root, the time and the configuration of one command.
#[derive(Debug)]
pub struct Lab {
    root: Root,
    now: OnceCell<NaiveDateTime>,
    parsed: RefCell<Option<Parsed>>,
    parses: Cell<usize>,
}

/// The configuration and the text of each file it was parsed from (`None`: a file that may
/// be missing and was), read under the same lock.
#[derive(Debug)]
struct Parsed {
    config: Rc<Config>,
    sources: Vec<Option<String>>,
}

impl Lab {
    /// A lab whose "now" is read from the clock ([`crate::clock::now`]) when first needed.
    pub fn new(root: Root) -> Lab {
        Lab { root, now: OnceCell::new(), parsed: RefCell::new(None), parses: Cell::new(0) }
    }

    /// A lab at a given moment.
    pub fn at(root: Root, now: NaiveDateTime) -> Lab {
        let lab = Lab::new(root);
        let _ = lab.now.set(now);
        lab
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The moment this command runs at: the same every time it is asked.
    pub fn now(&self) -> Result<NaiveDateTime> {
        if let Some(now) = self.now.get() {
            return Ok(*now);
        }
        let now = crate::clock::now()?;
        Ok(*self.now.get_or_init(|| now))
    }

    /// Takes the lock for reading (see [`SharedLock`]); it is released when the result is dropped.
    pub fn read(&self) -> Result<Reading<'_>> {
        Ok(Held { lab: self, lock: SharedLock::acquire(&self.root)? })
    }

    /// Takes the lock for changing state (see [`ExclusiveLock`]); released when dropped.
    pub fn write(&self) -> Result<Writing<'_>> {
        Ok(Held { lab: self, lock: ExclusiveLock::acquire(&self.root)? })
    }

    /// Takes the lock for changing state if no other process holds it; `None` when one does.
    pub fn try_write(&self) -> Result<Option<Writing<'_>>> {
        Ok(ExclusiveLock::try_acquire(&self.root)?.map(|lock| Held { lab: self, lock }))
    }

    /// The configuration and the active schedule, read under a shared lock that is released
    /// before this returns: for showing, never for deciding a change.
    pub fn state(&self) -> Result<State> {
        self.read()?.state()
    }

    /// How often this command has parsed `cfg/` (once, unless a file changed meanwhile).
    pub fn config_parses(&self) -> usize {
        self.parses.get()
    }

    fn config_under(&self, lock: &impl LockHeld) -> Result<Rc<Config>> {
        let root = lock.root();
        if let Some(parsed) = self.parsed.borrow().as_ref()
            && parsed.config.source_texts(root).is_ok_and(|texts| texts == parsed.sources)
        {
            return Ok(Rc::clone(&parsed.config));
        }
        let config = Rc::new(Config::load(lock)?);
        self.parses.set(self.parses.get() + 1);
        // Read right after the parse under the same lock, so they are the texts it parsed:
        // every writer of `cfg/` takes the exclusive lock. One that cannot be read now is
        // not kept, and the next look parses again.
        *self.parsed.borrow_mut() =
            config.source_texts(root).ok().map(|sources| Parsed { config: Rc::clone(&config), sources });
        Ok(config)
    }
}

/// A lock taken through a [`Lab`]: what the files say may be read while it is held.
#[derive(Debug)]
pub struct Held<'lab, L> {
    lab: &'lab Lab,
    lock: L,
}

/// Held while reading.
pub type Reading<'lab> = Held<'lab, SharedLock>;
/// Held while changing state: one process at a time.
pub type Writing<'lab> = Held<'lab, ExclusiveLock>;

impl<L: LockHeld> Held<'_, L> {
    pub fn lock(&self) -> &L {
        &self.lock
    }

    pub fn root(&self) -> &Root {
        self.lab.root()
    }

    pub fn now(&self) -> Result<NaiveDateTime> {
        self.lab.now()
    }

    /// The configuration as the files are now (parsed again only if one changed).
    pub fn config(&self) -> Result<Rc<Config>> {
        self.lab.config_under(&self.lock)
    }

    /// A copy of the configuration, to change and save.
    pub fn config_to_change(&self) -> Result<Config> {
        Ok(Config::clone(&*self.config()?))
    }

    /// The configuration and the active schedule as the files are now.
    pub fn state(&self) -> Result<State> {
        let config = Config::clone(&*self.config()?);
        Ok(State {
            config,
            booked: schedule::read(&self.lock, ActiveFile::Booking)?,
            running: schedule::read(&self.lock, ActiveFile::Using)?,
        })
    }
}

/// Everything a decision needs: the configuration and the active schedule.
#[derive(Debug, Clone)]
pub struct State {
    pub config: Config,
    /// `booking.csv`: not started yet.
    pub booked: Vec<Booking>,
    /// `using.csv`: running.
    pub running: Vec<Booking>,
}

impl State {
    /// Reads `cfg/` and the two active files; never `used.csv`, so the history can grow
    /// without slowing anyone down.
    pub fn load(lock: &impl LockHeld) -> Result<State> {
        Ok(State {
            config: Config::load(lock)?,
            booked: schedule::read(lock, ActiveFile::Booking)?,
            running: schedule::read(lock, ActiveFile::Using)?,
        })
    }

    pub fn active(&self) -> Vec<Booking> {
        self.running.iter().chain(&self.booked).cloned().collect()
    }

    pub fn host(&self) -> Host {
        host_of(&self.config)
    }

    pub fn horizon(&self) -> Horizon {
        Horizon::default()
    }

    /// The user's active bookings, running first, then by start.
    pub fn bookings_of(&self, user: &UserId) -> Vec<(BookingState, Booking)> {
        let mut mine: Vec<(BookingState, Booking)> = self
            .running
            .iter()
            .filter(|booking| &booking.user_id == user)
            .map(|booking| (BookingState::Running, booking.clone()))
            .chain(
                self.booked
                    .iter()
                    .filter(|booking| &booking.user_id == user)
                    .map(|booking| (BookingState::Booked, booking.clone())),
            )
            .collect();
        mine.sort_by_key(|(state, booking)| (*state != BookingState::Running, booking.start));
        mine
    }
}

pub fn host_of(config: &Config) -> Host {
    Host { cpus: config.capability.max.cpus, memory: config.capability.max.memory, gpus: config.capability.max.gpus }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A root with two GPUs, alice and bob allowed (bob may choose his first password), and
    /// files old enough that nothing about them looks just written.
    pub(crate) fn scratch_root() -> tempfile::TempDir {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path();
        std::fs::create_dir_all(root.join("cfg")).unwrap();
        std::fs::create_dir_all(root.join("jobs")).unwrap();
        std::fs::write(
            root.join("cfg/host_deploy.yaml"),
            "volume_work_dir: ./w\nvolume_dataset_dir: ./d\nvolume_backup_dir: ./b\n\
             users_config_yaml: ./cfg/users_config.yaml\ncapability_config_yaml: ./cfg/capability.yaml\n\
             images:\n  - lab/ssh:latest\n  - lab/cuda:12\n",
        )
        .unwrap();
        std::fs::write(
            root.join("cfg/capability.yaml"),
            "max:\n  cpus: 8\n  ram: 16\n  swap_size: 0\n  gpus: 2\n  shm_rate: 1\n  memory: 16\n\
             allow_userIDs: [alice, bob]\nmax_default_capability:\n  cpus: 4\n  memory: 8\n  gpus: 2\n",
        )
        .unwrap();
        std::fs::write(root.join("cfg/users_config.yaml"), "").unwrap();
        std::fs::write(root.join("cfg/login.yaml"), "self_registration: [bob]\n").unwrap();
        scratch
    }

    pub(crate) fn at(text: &str) -> NaiveDateTime {
        crate::model::parse_time(text).unwrap()
    }

    #[test]
    fn the_configuration_is_parsed_once_until_a_file_changes() {
        let scratch = scratch_root();
        let lab = Lab::at(Root::new(scratch.path()), at("2026-11-23 10:00"));
        let first = lab.read().unwrap().config().unwrap();
        let again = lab.write().unwrap().config().unwrap();
        assert_eq!(lab.read().unwrap().state().unwrap().config.deploy.images.len(), 2);
        assert_eq!(lab.config_parses(), 1, "parsed once for three looks");
        assert!(Rc::ptr_eq(&first, &again));

        // Another process allows carol: the next look sees her.
        let capability = scratch.path().join("cfg/capability.yaml");
        let text = std::fs::read_to_string(&capability).unwrap().replace("[alice, bob]", "[alice, bob, carol]");
        std::fs::write(&capability, text).unwrap();
        let changed = lab.write().unwrap().config().unwrap();
        assert!(changed.capability.is_allowed(&UserId::parse("carol").unwrap()));
        assert_eq!(lab.config_parses(), 2);

        // A file that was missing and appears counts as a change too.
        std::fs::write(scratch.path().join("cfg/containers.yaml"), "pids_limit: 4096\n").unwrap();
        lab.read().unwrap().config().unwrap();
        assert_eq!(lab.config_parses(), 3);
    }

    #[test]
    fn a_file_swapped_for_a_fifo_after_the_parse_is_refused_not_waited_on() {
        let scratch = scratch_root();
        let lab = Lab::at(Root::new(scratch.path()), at("2026-11-23 10:00"));
        lab.read().unwrap().config().unwrap();
        let users = scratch.path().join("cfg/users_config.yaml");
        std::fs::remove_file(&users).unwrap();
        let path = std::ffi::CString::new(users.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        let error = lab.read().unwrap().config().unwrap_err();
        assert!(format!("{error:#}").contains("users_config.yaml"), "{error:#}");
    }

    #[test]
    fn now_is_read_once_and_stays() {
        let scratch = scratch_root();
        let lab = Lab::at(Root::new(scratch.path()), at("2026-11-23 10:00"));
        assert_eq!(lab.now().unwrap(), at("2026-11-23 10:00"));
        assert_eq!(lab.read().unwrap().now().unwrap(), at("2026-11-23 10:00"));
    }
}
