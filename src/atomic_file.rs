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

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::lock::ExclusiveLock;

pub fn write_atomically(lock: &ExclusiveLock, path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(lock, path, contents, Mode::KeepOr(0o644))
}

/// Like [`write_atomically`], but the file is left readable and writable by its owner only,
/// whatever its mode was: `users_config.yaml` holds password hashes, and a copy of the
/// original's file or a fresh checkout arrives world-readable.
pub fn write_atomically_private(lock: &ExclusiveLock, path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(lock, path, contents, Mode::Always(0o600))
}

/// The permissions a rewritten file gets.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The old file's, or these for a new file.
    KeepOr(u32),
    /// These, always.
    Always(u32),
}

fn write_with_mode(_lock: &ExclusiveLock, path: &Path, contents: &[u8], mode: Mode) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let folder = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(folder).with_context(|| format!("cannot create the folder {}", folder.display()))?;
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = folder.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| -> Result<()> {
        // Private while being written; the final permissions are set before the rename.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("cannot create {}", temporary.display()))?;
        file.write_all(contents).with_context(|| format!("cannot write {}", temporary.display()))?;
        file.sync_all().with_context(|| format!("cannot flush {} to disk", temporary.display()))?;
        // Keep the old file's owner, and its permissions unless they are fixed.
        let (mut permissions, owner) = match (fs::metadata(path), mode) {
            (Ok(metadata), _) => (metadata.permissions(), metadata),
            (Err(_), Mode::KeepOr(new_file_mode) | Mode::Always(new_file_mode)) => (
                fs::Permissions::from_mode(new_file_mode),
                fs::metadata(folder).with_context(|| format!("cannot read the owner of {}", folder.display()))?,
            ),
        };
        if let Mode::Always(fixed) = mode {
            permissions = fs::Permissions::from_mode(fixed);
        }
        give_owner(&file, &temporary, &owner)?;
        fs::set_permissions(&temporary, permissions)
            .with_context(|| format!("cannot set permissions on {}", temporary.display()))?;
        fs::rename(&temporary, path)
            .with_context(|| format!("cannot replace {} with {}", path.display(), temporary.display()))?;
        sync_folder(folder)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
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

/// Opens `path` for appending, creating it (owned like its folder, see the module comment)
/// when it does not exist yet.
pub fn open_for_appending(path: &Path) -> Result<File> {
    open_creating(path, OpenOptions::new().read(true).append(true).create(true))
        .with_context(|| format!("cannot open {} for appending", path.display()))
}

/// Opens `path` with `options` (which must include `create`); a file this call creates is
/// given the owner of its folder.
pub fn open_creating(path: &Path, options: &OpenOptions) -> Result<File> {
    let existed = fs::symlink_metadata(path).is_ok();
    let file = options.open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if !existed {
        let folder = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let owner = fs::metadata(folder).with_context(|| format!("cannot read the owner of {}", folder.display()))?;
        give_owner(&file, path, &owner)?;
    }
    Ok(file)
}

/// Gives `file` the owner and group of `owner`. Only root may give a file away; for anyone
/// else the file already belongs to them and a refusal is not an error.
fn give_owner(file: &File, path: &Path, owner: &Metadata) -> Result<()> {
    let current = file.metadata().with_context(|| format!("cannot read the owner of {}", path.display()))?;
    if (current.uid(), current.gid()) == (owner.uid(), owner.gid()) {
        return Ok(());
    }
    match std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid())) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::PermissionDenied => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot change the owner of {}", path.display())),
    }
}

fn ends_with_newline(file: &mut File, length: u64) -> bool {
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(length - 1)).is_ok() && file.read_exact(&mut last).is_ok() && last[0] == b'\n'
}

fn sync_folder(folder: &Path) -> Result<()> {
    let handle = File::open(folder).with_context(|| format!("cannot open the folder {}", folder.display()))?;
    handle.sync_all().with_context(|| format!("cannot flush the folder {} to disk", folder.display()))
}
