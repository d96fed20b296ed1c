//! Files in the folders the shared `booking` account can write: `jobs/` and the folder that
//! holds `users_config.yaml` and its side files.
//!
//! `monitor`, `enroll` and `run-container` run as root on those same folders, so everything in
//! them is the booking account's to swap for something else between two runs: a symbolic
//! link to `/etc/passwd` in place of `used.csv`, a hard link, a FIFO that would hang a
//! reader, a folder. Whoever runs, a file there is therefore
//! - opened relative to a handle on its folder (the folder's name is looked up once),
//! - never through a link (`O_NOFOLLOW`; a new file with `O_CREAT | O_EXCL`),
//! - used only when `fstat` on the open file says it is a plain file with exactly one name,
//! - given an owner or a mode only through the open file (`fchown`, `fchmod`), never by path.
//!
//! A file that fails those rules is refused with an error that names it; nothing is read
//! from or written through it.
//!
//! Locking: none of its own. Callers that change a file hold the state lock
//! ([`crate::store::lock::ExclusiveLock`], demanded by [`crate::store::atomic_file`]).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::error::FileProblem;

/// Flags every open here carries. `NONBLOCK`: opening a FIFO for reading would otherwise wait
/// for a writer, and a swapped file must be refused, not hang the monitor (it has no effect
/// on a plain file). `NOCTTY`: a terminal device must never become our controlling terminal.
const SAFE: OFlags = OFlags::NOFOLLOW.union(OFlags::NONBLOCK).union(OFlags::NOCTTY).union(OFlags::CLOEXEC);

/// A folder, opened once; every file operation is relative to this handle.
#[derive(Debug)]
pub struct Folder {
    handle: OwnedFd,
    path: PathBuf,
}

/// The folder part and the file name of `path`.
pub fn split(path: &Path) -> Result<(PathBuf, OsString)> {
    let name = path.file_name().with_context(|| format!("{} does not name a file", path.display()))?;
    let folder = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((folder.to_path_buf(), name.to_os_string()))
}

/// Opens `path` for reading; `None` when it (or its folder) does not exist.
pub fn read(path: &Path) -> Result<Option<File>> {
    let (folder, name) = split(path)?;
    match Folder::open(&folder)? {
        Some(folder) => folder.read(&name),
        None => Ok(None),
    }
}

/// Reads the whole of `path` as text (a byte-order mark dropped, see [`crate::store::text_file`]);
/// `None` when it does not exist.
pub fn read_to_string(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let Some(mut file) = read(path)? else { return Ok(None) };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(crate::store::text_file::decode(&path.display().to_string(), bytes)?))
}

/// Reads a configuration file in a folder the booking account may write (`users_config.yaml`
/// and its side file) whole, as [`crate::store::text_file::read_whole`] does; `None` when it does
/// not exist. Every problem is one of `shown_path`, with its line where there is one.
pub fn read_config(path: &Path, shown_path: &str) -> std::result::Result<Option<String>, FileProblem> {
    match read(path) {
        Ok(Some(file)) => crate::store::text_file::read_whole(file, shown_path).map(Some),
        Ok(None) => Ok(None),
        Err(error) => Err(FileProblem::error(shown_path, None, "", format!("cannot read: {error:#}"))),
    }
}

impl Folder {
    /// Opens an existing folder; `None` when there is none. The last component of `path` is
    /// not followed when it is a link (what lies above it is the admin's).
    pub fn open(path: &Path) -> Result<Option<Folder>> {
        match rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | SAFE, Mode::empty()) {
            Ok(handle) => Ok(Some(Folder { handle, path: path.to_path_buf() })),
            Err(Errno::NOENT) => Ok(None),
            // With O_DIRECTORY, Linux says ENOTDIR for a link as well.
            Err(Errno::LOOP | Errno::NOTDIR) if path.symlink_metadata().is_ok_and(|found| found.is_symlink()) => {
                Err(refusal(path, "a symbolic link"))
            }
            Err(Errno::NOTDIR) => Err(anyhow!("{} is not a folder", path.display())),
            Err(error) => Err(error).with_context(|| format!("cannot open the folder {}", path.display())),
        }
    }

    /// Opens the folder, creating it (and its parents) first when it is missing.
    pub fn create(path: &Path) -> Result<Folder> {
        std::fs::create_dir_all(path).with_context(|| format!("cannot create the folder {}", path.display()))?;
        Folder::open(path)?.with_context(|| format!("the folder {} vanished as it was created", path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file_path(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Opens a file for reading; `None` when it does not exist.
    pub fn read(&self, name: &OsStr) -> Result<Option<File>> {
        let path = self.file_path(name);
        match rustix::fs::openat(&self.handle, name, OFlags::RDONLY | SAFE, Mode::empty()) {
            Ok(handle) => {
                let file = File::from(handle);
                check_plain(&file, &path)?;
                Ok(Some(file))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(error) => Err(open_error(error, &path, "read")),
        }
    }

    /// Opens a file for appending, creating it when missing (then it belongs to the folder's
    /// owner, see [`crate::store::atomic_file`]).
    pub fn append(&self, name: &OsStr) -> Result<File> {
        self.open_or_create(name, OFlags::RDWR | OFlags::APPEND)
    }

    /// Opens a file for reading and writing without truncating it, creating it when missing
    /// (the lock file).
    pub fn open_or_create(&self, name: &OsStr, access: OFlags) -> Result<File> {
        let path = self.file_path(name);
        // O_EXCL first: then this call knows whether it made the file, and a name that is
        // taken (by anything, a dangling link included) is opened below, with the checks.
        match rustix::fs::openat(&self.handle, name, access | SAFE | OFlags::CREATE | OFlags::EXCL, Mode::from(0o666)) {
            Ok(handle) => {
                let file = File::from(handle);
                let owner = self.owner()?;
                give_owner(&file, &path, owner)?;
                return Ok(file);
            }
            Err(Errno::EXIST) => {}
            Err(error) => return Err(open_error(error, &path, "create")),
        }
        match rustix::fs::openat(&self.handle, name, access | SAFE, Mode::empty()) {
            Ok(handle) => {
                let file = File::from(handle);
                check_plain(&file, &path)?;
                Ok(file)
            }
            Err(error) => Err(open_error(error, &path, "open")),
        }
    }

    /// Replaces a file with `contents`: written to a temporary file in this folder, flushed,
    /// renamed over the old one, and the folder flushed. The new file keeps the old one's
    /// owner and permissions; a file that did not exist gets the folder's owner and
    /// `new_file_mode`.
    pub fn replace(&self, name: &OsStr, contents: &[u8], wanted: FileMode) -> Result<()> {
        let path = self.file_path(name);
        let (mode, owner) = match rustix::fs::statat(&self.handle, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => {
                check_plain_stat(&stat, &path)?;
                // Permission bits only: a state file never needs set-id or sticky bits.
                (stat.st_mode & 0o777, (stat.st_uid, stat.st_gid))
            }
            Err(Errno::NOENT) => (wanted.bits(), self.owner()?),
            Err(error) => return Err(error).with_context(|| format!("cannot inspect {}", path.display())),
        };
        let mode = match wanted {
            FileMode::Always(fixed) => fixed,
            FileMode::KeepOr(_) => mode,
        };
        // One name per file: writers hold the state lock, so no two of ours use it at once,
        // and whatever sits there (debris of a killed run, or something planted) is removed
        // as a name (unlink never follows a link) before the name is made afresh with O_EXCL.
        let mut temporary_name = OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(".tmp");
        let temporary = self.file_path(&temporary_name);
        match rustix::fs::unlinkat(&self.handle, &temporary_name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot remove the stale {}", temporary.display()));
            }
        }
        let handle = rustix::fs::openat(
            &self.handle,
            &temporary_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | SAFE,
            // Private while being written; the final permissions are set before the rename.
            Mode::from(0o600),
        )
        .map_err(|error| open_error(error, &temporary, "create"))?;
        let mut file = File::from(handle);
        let result = (|| -> Result<()> {
            file.write_all(contents).with_context(|| format!("cannot write {}", temporary.display()))?;
            file.sync_all().with_context(|| format!("cannot flush {} to disk", temporary.display()))?;
            give_owner(&file, &temporary, owner)?;
            rustix::fs::fchmod(&file, Mode::from(mode))
                .with_context(|| format!("cannot set permissions on {}", temporary.display()))?;
            rustix::fs::renameat(&self.handle, &temporary_name, &self.handle, name)
                .with_context(|| format!("cannot replace {} with {}", path.display(), temporary.display()))?;
            rustix::fs::fsync(&self.handle)
                .with_context(|| format!("cannot flush the folder {} to disk", self.path.display()))
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.handle, &temporary_name, AtFlags::empty());
        }
        result
    }

    /// Writes `contents` to a new file `name` (whatever stood there removed first, as a name),
    /// owned by the folder's owner and readable by it only, without flushing anything: for
    /// the side files of [`crate::store::queue`], which matter only to processes that a
    /// power cut ends too.
    pub fn write_unflushed(&self, name: &OsStr, contents: &[u8]) -> Result<File> {
        let path = self.file_path(name);
        match rustix::fs::unlinkat(&self.handle, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(error) => return Err(error).with_context(|| format!("cannot remove the stale {}", path.display())),
        }
        let mut file = self.create_new(name)?;
        file.write_all(contents).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(file)
    }

    /// Creates the file `name`, which must not exist yet, owned by the folder's owner and
    /// readable by it only.
    pub fn create_new(&self, name: &OsStr) -> Result<File> {
        let path = self.file_path(name);
        let handle = rustix::fs::openat(
            &self.handle,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | SAFE,
            Mode::from(0o600),
        )
        .map_err(|error| open_error(error, &path, "create"))?;
        let file = File::from(handle);
        give_owner(&file, &path, self.owner()?)?;
        Ok(file)
    }

    /// Removes the name `name` without flushing the folder (see [`Folder::write_unflushed`]).
    pub fn remove_unflushed(&self, name: &OsStr) -> Result<()> {
        match rustix::fs::unlinkat(&self.handle, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot remove {}", self.file_path(name).display())),
        }
    }

    /// Which file stands at `name` now (device and inode, never through a link); `None` when
    /// nothing does. A file replaced by [`Folder::replace`] is always another one.
    pub fn identity(&self, name: &OsStr) -> Result<Option<(u64, u64)>> {
        match rustix::fs::statat(&self.handle, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some((stat.st_dev, stat.st_ino))),
            Err(Errno::NOENT) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot inspect {}", self.file_path(name).display())),
        }
    }

    /// The names of the plain files whose names start with `prefix`.
    pub fn plain_files_starting(&self, prefix: &str) -> Result<Vec<OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let listing = rustix::fs::Dir::read_from(&self.handle)
            .with_context(|| format!("cannot list the folder {}", self.path.display()))?;
        let mut names = Vec::new();
        for entry in listing {
            let entry = entry.with_context(|| format!("cannot list the folder {}", self.path.display()))?;
            let name = entry.file_name().to_bytes();
            if name.starts_with(prefix.as_bytes()) && entry.file_type() == FileType::RegularFile {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether anything (a link included) stands at `name`.
    pub fn exists(&self, name: &OsStr) -> bool {
        rustix::fs::statat(&self.handle, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Removes the name `name` (never what a link points to) and flushes the folder, so the
    /// removal survives a power cut. A name that is already gone is not an error.
    pub fn remove(&self, name: &OsStr) -> Result<()> {
        let path = self.file_path(name);
        match rustix::fs::unlinkat(&self.handle, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(error) => return Err(error).with_context(|| format!("cannot remove {}", path.display())),
        }
        rustix::fs::fsync(&self.handle)
            .with_context(|| format!("cannot flush the folder {} to disk", self.path.display()))
    }

    /// Removes the files whose names `is_debris` picks (temporary files a killed writer left).
    /// Only plain files are removed; returns how many.
    pub fn remove_debris(&self, is_debris: impl Fn(&OsStr) -> bool) -> Result<usize> {
        use std::os::unix::ffi::OsStrExt;
        let listing = rustix::fs::Dir::read_from(&self.handle)
            .with_context(|| format!("cannot list the folder {}", self.path.display()))?;
        let mut debris = Vec::new();
        for entry in listing {
            let entry = entry.with_context(|| format!("cannot list the folder {}", self.path.display()))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if is_debris(name) && entry.file_type() == FileType::RegularFile {
                debris.push(name.to_os_string());
            }
        }
        for name in &debris {
            match rustix::fs::unlinkat(&self.handle, name.as_os_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot remove {}", self.file_path(name).display()));
                }
            }
        }
        Ok(debris.len())
    }

    fn owner(&self) -> Result<(u32, u32)> {
        let stat = rustix::fs::fstat(&self.handle)
            .with_context(|| format!("cannot read the owner of {}", self.path.display()))?;
        Ok((stat.st_uid, stat.st_gid))
    }
}

/// The permissions a rewritten file gets.
#[derive(Debug, Clone, Copy)]
pub enum FileMode {
    /// The old file's, or these for a new file.
    KeepOr(u32),
    /// These, always (`users_config.yaml` holds password hashes, and a copy of the original's
    /// file or a fresh checkout arrives world-readable).
    Always(u32),
}

impl FileMode {
    fn bits(self) -> u32 {
        match self {
            FileMode::KeepOr(bits) | FileMode::Always(bits) => bits,
        }
    }
}

/// Gives `file` the owner and group `owner`. Only root may give a file away; for anyone else
/// the file already belongs to them and a refusal is not an error.
fn give_owner(file: &File, path: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    let current = rustix::fs::fstat(file).with_context(|| format!("cannot read the owner of {}", path.display()))?;
    if (current.st_uid, current.st_gid) == (uid, gid) {
        return Ok(());
    }
    match rustix::fs::fchown(file, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid))) {
        Ok(()) | Err(Errno::PERM) => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot change the owner of {}", path.display())),
    }
}

/// Refuses an open file that is not a plain file with exactly one name.
fn check_plain(file: &impl AsFd, path: &Path) -> Result<()> {
    let stat = rustix::fs::fstat(file).with_context(|| format!("cannot inspect {}", path.display()))?;
    check_plain_stat(&stat, path)
}

fn check_plain_stat(stat: &Stat, path: &Path) -> Result<()> {
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile if stat.st_nlink == 1 => return Ok(()),
        // Another name for the same file could be anything, `/etc/shadow` included, and
        // appending to it would write there.
        FileType::RegularFile => format!("a file with {} hard links", stat.st_nlink),
        FileType::Directory => "a folder".to_string(),
        FileType::Symlink => "a symbolic link".to_string(),
        FileType::Fifo => "a named pipe (FIFO)".to_string(),
        FileType::Socket => "a socket".to_string(),
        FileType::CharacterDevice | FileType::BlockDevice => "a device".to_string(),
        FileType::Unknown => "not a plain file".to_string(),
    };
    Err(refusal(path, &kind))
}

fn refusal(path: &Path, kind: &str) -> anyhow::Error {
    anyhow!(
        "refused {}: it is {kind}, not a plain file with one name; the booking account can write this \
         folder, so gpu-booking never reads or writes through anything else there (remove it, or put \
         the plain file back)",
        path.display()
    )
}

fn open_error(error: Errno, path: &Path, verb: &str) -> anyhow::Error {
    match error {
        Errno::LOOP => refusal(path, "a symbolic link"),
        Errno::ISDIR => refusal(path, "a folder"),
        // What open(2) says for a socket.
        Errno::NXIO => refusal(path, "a socket or a device"),
        _ => anyhow::Error::new(std::io::Error::from(error)).context(format!("cannot {verb} {}", path.display())),
    }
}

/// A folder handle on a fresh temporary folder, for unit tests.
#[cfg(test)]
pub(crate) fn scratch_folder() -> (tempfile::TempDir, Folder) {
    let scratch = tempfile::tempdir().unwrap();
    let folder = Folder::open(scratch.path()).unwrap().unwrap();
    (scratch, folder)
}

#[cfg(test)]
mod tests {
    use super::scratch_folder as folder;
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symbolic_link_is_neither_read_nor_appended_to_nor_replaced() {
        let (scratch, folder) = folder();
        let target = scratch.path().join("target");
        std::fs::write(&target, "precious\n").unwrap();
        symlink(&target, scratch.path().join("used.csv")).unwrap();
        let name = OsStr::new("used.csv");
        for error in [
            folder.read(name).map(|_| ()).unwrap_err(),
            folder.append(name).map(|_| ()).unwrap_err(),
            folder.replace(name, b"x\n", FileMode::KeepOr(0o644)).unwrap_err(),
        ] {
            let message = format!("{error:#}");
            assert!(message.contains("used.csv") && message.contains("symbolic link"), "{message}");
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    }

    #[test]
    fn a_dangling_link_is_not_created_through() {
        let (scratch, folder) = folder();
        let target = scratch.path().join("would-be-created");
        symlink(&target, scratch.path().join("monitor.log")).unwrap();
        assert!(folder.append(OsStr::new("monitor.log")).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn a_fifo_a_folder_and_a_second_name_are_refused_without_hanging() {
        let (scratch, folder) = folder();
        std::fs::create_dir(scratch.path().join("booking.csv")).unwrap();
        let fifo = scratch.path().join("monitor_exec");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        std::fs::write(scratch.path().join("using.csv"), "x\n").unwrap();
        std::fs::hard_link(scratch.path().join("using.csv"), scratch.path().join("other")).unwrap();
        assert!(format!("{:#}", folder.read(OsStr::new("booking.csv")).unwrap_err()).contains("a folder"));
        assert!(format!("{:#}", folder.append(OsStr::new("using.csv")).unwrap_err()).contains("2 hard links"));
        assert!(format!("{:#}", folder.read(OsStr::new("using.csv")).unwrap_err()).contains("2 hard links"));
        if made.is_ok_and(|status| status.success()) {
            assert!(format!("{:#}", folder.read(OsStr::new("monitor_exec")).unwrap_err()).contains("FIFO"));
            assert!(format!("{:#}", folder.append(OsStr::new("monitor_exec")).unwrap_err()).contains("FIFO"));
        }
    }

    #[test]
    fn a_planted_temporary_name_is_removed_not_followed() {
        let (scratch, folder) = folder();
        let target = scratch.path().join("target");
        std::fs::write(&target, "precious\n").unwrap();
        symlink(&target, scratch.path().join(".booking.csv.tmp")).unwrap();
        folder.replace(OsStr::new("booking.csv"), b"new\n", FileMode::KeepOr(0o644)).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert_eq!(std::fs::read_to_string(scratch.path().join("booking.csv")).unwrap(), "new\n");
        assert!(!scratch.path().join(".booking.csv.tmp").exists());
    }

    #[test]
    fn a_linked_folder_is_refused() {
        let scratch = tempfile::tempdir().unwrap();
        std::fs::create_dir(scratch.path().join("real")).unwrap();
        symlink(scratch.path().join("real"), scratch.path().join("jobs")).unwrap();
        let message = format!("{:#}", Folder::open(&scratch.path().join("jobs")).unwrap_err());
        assert!(message.contains("jobs") && message.contains("symbolic link"), "{message}");
    }
}
