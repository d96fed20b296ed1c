//! Durable writes. Only the state modules call these; each passes its lock guard so a
//! write can never happen without the lock.
//!
//! A whole-file rewrite goes to a temporary file in the same folder, is flushed to disk, and
//! is renamed over the old file; then the folder itself is flushed so the rename survives a
//! power cut. A reader therefore sees either the old file or the new one, never half of it.
//!
//! Ownership: the monitor and `enroll` run as root, `book` as the shared `booking` account.
//! A file root replaces keeps the old file's owner and mode; a file root creates gets the
//! owner of its folder. Otherwise one monitor pass would leave `jobs/` full of root-owned
//! files that `book` can no longer change.
//!
//! The folders written here are the booking account's (`jobs/`, the `users_config.yaml`
//! folder), so every file is opened as [`crate::store::state_folder`] prescribes: relative to the
//! folder's handle, never through a link, only when it is a plain file with one name, and
//! owners and modes are set through the open file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::store::journal;
use crate::store::lock::ExclusiveLock;
use crate::store::state_folder::{self, FileMode as Mode, Folder};

pub fn write_atomically(lock: &ExclusiveLock, path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(lock, path, contents, Mode::KeepOr(0o644))
}

/// Like [`write_atomically`], but the file is left readable and writable by its owner only,
/// whatever its mode was: `users_config.yaml` holds password hashes, and a copy of the
/// original's file or a fresh checkout arrives world-readable.
pub fn write_atomically_private(lock: &ExclusiveLock, path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(lock, path, contents, Mode::Always(0o600))
}

fn write_with_mode(_lock: &ExclusiveLock, path: &Path, contents: &[u8], mode: Mode) -> Result<()> {
    let (folder, name) = state_folder::split(path)?;
    Folder::create(&folder)?.replace(&name, contents, mode)
}

/// Appends to a file that only ever grows (`used.csv`, the log), creating it with `header`
/// first when it does not exist yet.
pub fn append_durably(_lock: &ExclusiveLock, path: &Path, header: &[u8], contents: &[u8]) -> Result<()> {
    let mut file = open_for_appending(path)?;
    let length = file.metadata().with_context(|| format!("cannot read the size of {}", path.display()))?.len();
    let mut bytes = Vec::with_capacity(header.len() + contents.len());
    if length == 0 {
        bytes.extend_from_slice(header);
    } else if !ends_with_newline(&mut file, length) {
        // A hand edit left the last line open; without this the next row would be glued to it.
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(contents);
    file.write_all(&bytes).with_context(|| format!("cannot append to {}", path.display()))?;
    file.sync_data().with_context(|| format!("cannot flush {} to disk", path.display()))?;
    Ok(())
}

/// What appending `contents` to `path` would write (the header first on an empty file, a
/// newline after an open last line), and the file's length now: one step of a multi-file
/// change (see [`crate::store::journal`]). The file is created when missing.
pub fn planned_append(_lock: &ExclusiveLock, path: &Path, header: &[u8], contents: &[u8]) -> Result<(u64, Vec<u8>)> {
    let mut file = open_for_appending(path)?;
    let length = file.metadata().with_context(|| format!("cannot read the size of {}", path.display()))?.len();
    let mut bytes = Vec::with_capacity(header.len() + contents.len() + 1);
    if length == 0 {
        bytes.extend_from_slice(header);
    } else if !ends_with_newline(&mut file, length) {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(contents);
    Ok((length, bytes))
}

/// Makes a change to several files of the folder `folder` so that a kill at any moment
/// leaves either none or all of it made, once the next holder of the lock has looked.
pub fn change_together(_lock: &ExclusiveLock, folder: &Path, steps: &[journal::Step]) -> Result<()> {
    let handle = Folder::open(folder)?.with_context(|| format!("the folder {} does not exist", folder.display()))?;
    journal::make(&handle, steps)
}

/// Opens `path` for appending, creating it (owned like its folder, see the module comment)
/// when it does not exist yet.
pub fn open_for_appending(path: &Path) -> Result<File> {
    let (folder, name) = state_folder::split(path)?;
    // Not created here: the lock makes `jobs/`, and only inside a root that exists.
    let folder = Folder::open(&folder)?.with_context(|| format!("the folder {} does not exist", folder.display()))?;
    folder.append(&name).with_context(|| format!("cannot open {} for appending", path.display()))
}

fn ends_with_newline(file: &mut File, length: u64) -> bool {
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(length - 1)).is_ok() && file.read_exact(&mut last).is_ok() && last[0] == b'\n'
}
