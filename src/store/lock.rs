//! The state lock: `jobs/.lock`.
//!
//! Every read-modify-write of `users_config.yaml` or a `jobs/*.csv` file happens while an
//! [`ExclusiveLock`] is held; plain readers take a [`SharedLock`]. Functions that write demand
//! `&ExclusiveLock`, so the compiler proves the lock is held. The lock lives on a side file
//! that is never renamed over: locking a state file itself would be lost at the first atomic
//! rename. The lock is released when the guard is dropped (the file is closed).

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::store::journal;
use crate::store::queue::files as queue_files;
use crate::store::root::Root;
use crate::store::state_folder::Folder;

const LOCK_FILE_NAME: &str = ".lock";

/// Proof that some lock is held: enough to read state consistently.
pub trait LockHeld {
    fn root(&self) -> &Root;
}

/// Held while changing state. Only one process holds it at a time.
#[derive(Debug)]
pub struct ExclusiveLock {
    root: Root,
    _file: File,
}

/// Held while reading state, so no writer is half-way through a multi-file change.
#[derive(Debug)]
pub struct SharedLock {
    root: Root,
    _file: File,
}

fn open_lock_file(root: &Root) -> Result<(File, PathBuf, Folder)> {
    // `jobs/` is created on first use, but only inside a root that exists: a mistyped
    // `--root` must be an error, not a new folder tree.
    if !root.dir().is_dir() {
        anyhow::bail!("the root folder {} does not exist (set by --root or GPU_BOOKING_ROOT)", root.dir().display());
    }
    let jobs = root.jobs_dir();
    let path = jobs.join(LOCK_FILE_NAME);
    // Created by root (the monitor) or by `booking` (book): either must open it afterwards.
    // `jobs/` is the booking account's, so the lock file is opened like every file there
    // (never through a link, only a plain file).
    let folder = Folder::create(&jobs)?;
    let file = folder
        .open_or_create(OsStr::new(LOCK_FILE_NAME), rustix::fs::OFlags::RDWR)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    Ok((file, path, folder))
}

/// What the first holder of the exclusive lock does before anything else: complete a change
/// a killed writer left half made, settle the queue it left (see [`crate::store::queue`]),
/// and remove the temporary files it left (no writer of ours is half-way through one while
/// the lock is held).
fn tidy_up_after_killed_writers(folder: &Folder) -> Result<()> {
    journal::finish_interrupted(folder)?;
    queue_files::finish_interrupted(folder)?;
    folder.remove_debris(journal::is_temporary_name)?;
    Ok(())
}

impl ExclusiveLock {
    /// Waits until no other process holds the lock, then takes it. A change that a killed
    /// writer left half made is completed first (see [`crate::store::journal`]).
    pub fn acquire(root: &Root) -> Result<Self> {
        let (file, path, folder) = open_lock_file(root)?;
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        tidy_up_after_killed_writers(&folder)?;
        Ok(ExclusiveLock { root: root.clone(), _file: file })
    }

    /// Takes the lock if no other process holds it; `None` when one does.
    pub fn try_acquire(root: &Root) -> Result<Option<Self>> {
        let (file, path, folder) = open_lock_file(root)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        tidy_up_after_killed_writers(&folder)?;
        Ok(Some(ExclusiveLock { root: root.clone(), _file: file }))
    }
}

impl SharedLock {
    /// Waits until no writer holds the lock, then takes a shared hold on it.
    /// A change that a killed writer left half made is completed first: a reader never sees
    /// a booking in two files.
    pub fn acquire(root: &Root) -> Result<Self> {
        let (file, path, folder) = open_lock_file(root)?;
        file.lock_shared().with_context(|| format!("cannot lock {}", path.display()))?;
        if journal::is_pending(&folder) {
            // Upgraded for the repair, then shared again: a writer may come in between, and
            // leaves the files whole.
            file.unlock().with_context(|| format!("cannot unlock {}", path.display()))?;
            file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
            tidy_up_after_killed_writers(&folder)?;
            file.unlock().with_context(|| format!("cannot unlock {}", path.display()))?;
            file.lock_shared().with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Ok(SharedLock { root: root.clone(), _file: file })
    }
}

impl LockHeld for ExclusiveLock {
    fn root(&self) -> &Root {
        &self.root
    }
}

impl LockHeld for SharedLock {
    fn root(&self) -> &Root {
        &self.root
    }
}

impl ExclusiveLock {
    pub fn root(&self) -> &Root {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exclusive_lock_shuts_out_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let first = ExclusiveLock::acquire(&root).unwrap();
        // A second open file description on the same file must not get the lock.
        let (second, _, _) = open_lock_file(&root).unwrap();
        assert!(second.try_lock().is_err());
        assert!(second.try_lock_shared().is_err());
        drop(first);
        assert!(second.try_lock().is_ok());
    }

    #[test]
    fn shared_locks_coexist_but_exclude_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let _reader_one = SharedLock::acquire(&root).unwrap();
        let _reader_two = SharedLock::acquire(&root).unwrap();
        let (writer, _, _) = open_lock_file(&root).unwrap();
        assert!(writer.try_lock().is_err());
    }
}
