//! Folders that someone less trusted than the caller can write, reached only through
//! directory handles.
//!
//! A student is root inside their container and can change every byte of their work and
//! backup folders at any moment, also between a check and a use. So nothing here checks a
//! path and then uses it: a folder is opened once, and every later step names a single
//! component relative to an open handle with `O_NOFOLLOW`, so a symbolic link planted
//! anywhere below is an error, never a way out. Only the admin's own paths (the volume
//! parents in `host_deploy.yaml`) are opened the ordinary way.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{self as unix, AtFlags, FileType, Mode, OFlags, RenameFlags};

/// How deep a tree the recursive walks here go; deeper is an error, never a stack overflow
/// (a student can nest folders tens of thousands deep).
pub const DEPTH_LIMIT: usize = 256;

const DIRECTORY_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// An open folder; everything below it is reached relative to this handle.
pub struct SafeFolder {
    handle: OwnedFd,
    shown: PathBuf,
}

/// What a folder entry is, as seen without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    Folder,
    File,
    SymbolicLink,
    /// Device, fifo or socket: never copied anywhere.
    Special,
}

impl EntryType {
    fn of(file_type: FileType) -> EntryType {
        match file_type {
            FileType::Directory => EntryType::Folder,
            FileType::RegularFile => EntryType::File,
            FileType::Symlink => EntryType::SymbolicLink,
            _ => EntryType::Special,
        }
    }
}

/// The plain components of a relative path; `None` for an absolute path, `..` or nothing.
pub fn plain_components(relative: &Path) -> Option<Vec<&OsStr>> {
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then_some(parts)
}

/// `path` with `.` dropped and `..` applied, without asking the file system.
pub fn lexically_normal(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

fn io_error(error: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(error.raw_os_error())
}

impl SafeFolder {
    /// Opens a folder the admin named, following the admin's own links on the way.
    pub fn open_trusted(path: &Path) -> Result<SafeFolder> {
        let handle = unix::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(io_error)
            .with_context(|| format!("cannot open the folder {}", path.display()))?;
        Ok(SafeFolder { handle, shown: path.to_path_buf() })
    }

    /// Opens `folder`, which must lie below the admin's `parent`: the part below `parent` is
    /// walked one component at a time, refusing symbolic links, and missing folders are
    /// created (mode 0700) when `create` is set.
    pub fn open_beneath(parent: &Path, folder: &Path, create: bool) -> Result<SafeFolder> {
        let parent = lexically_normal(parent);
        let normal = lexically_normal(folder);
        let below = normal.strip_prefix(&parent).ok().and_then(plain_components).ok_or_else(|| {
            anyhow!("{} is not inside {}, the folder host_deploy.yaml names for it", folder.display(), parent.display())
        })?;
        let mut current = SafeFolder::open_trusted(&parent)?;
        for part in below {
            current = current
                .child_folder(part, create)?
                .ok_or_else(|| anyhow!("{} does not exist", current.shown.join(part).display()))?;
        }
        Ok(current)
    }

    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// A second handle on the same folder.
    pub fn duplicate(&self) -> Result<SafeFolder> {
        let handle = unix::openat(&self.handle, ".", DIRECTORY_FLAGS, Mode::empty())
            .map_err(io_error)
            .with_context(|| format!("cannot open {}", self.shown.display()))?;
        Ok(SafeFolder { handle, shown: self.shown.clone() })
    }

    /// The folder `name` directly below, never through a link; `None` when it is missing
    /// and `create` is not set.
    pub fn child_folder(&self, name: &OsStr, create: bool) -> Result<Option<SafeFolder>> {
        let shown = self.shown.join(name);
        let opened = match unix::openat(&self.handle, name, DIRECTORY_FLAGS, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) if create => {
                match unix::mkdirat(&self.handle, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(error) => {
                        return Err(io_error(error)).with_context(|| format!("cannot create {}", shown.display()));
                    }
                }
                unix::openat(&self.handle, name, DIRECTORY_FLAGS, Mode::empty())
            }
            other => other,
        };
        match opened {
            Ok(handle) => Ok(Some(SafeFolder { handle, shown })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                bail!("{} is not a folder (a symbolic link or a file); not followed", shown.display())
            }
            Err(error) => Err(io_error(error)).with_context(|| format!("cannot open {}", shown.display())),
        }
    }

    /// The folder at `relative` (plain components only), created on the way when `create`.
    pub fn folder_at(&self, relative: &Path, create: bool) -> Result<Option<SafeFolder>> {
        let Some(parts) = plain_components(relative) else {
            bail!("{} is not a plain relative path", relative.display())
        };
        let mut current = self.child_folder(parts[0], create)?;
        for part in &parts[1..] {
            current = match current {
                Some(folder) => folder.child_folder(part, create)?,
                None => return Ok(None),
            };
        }
        Ok(current)
    }

    /// What `name` is, without following it; `None` when it does not exist.
    pub fn entry_type(&self, name: &OsStr) -> Result<Option<EntryType>> {
        match unix::statat(&self.handle, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(EntryType::of(FileType::from_raw_mode(stat.st_mode)))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(error) => {
                Err(io_error(error)).with_context(|| format!("cannot look at {}", self.shown.join(name).display()))
            }
        }
    }

    /// The 512-byte blocks `name` takes on disk (not following it).
    pub fn blocks_of(&self, name: &OsStr) -> Result<u64> {
        let stat = unix::statat(&self.handle, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_error)
            .with_context(|| format!("cannot look at {}", self.shown.join(name).display()))?;
        Ok(stat.st_blocks as u64)
    }

    /// The names in this folder (without `.` and `..`), each with its type.
    pub fn entries(&self) -> Result<Vec<(OsString, EntryType)>> {
        // A listing reads through its own handle: sharing this one would move its offset.
        let duplicate = self.duplicate()?;
        let mut listing = unix::Dir::read_from(&duplicate.handle)
            .map_err(io_error)
            .with_context(|| format!("cannot read {}", self.shown.display()))?;
        let mut entries = Vec::new();
        while let Some(entry) = listing.read() {
            let entry = entry.map_err(io_error).with_context(|| format!("cannot read {}", self.shown.display()))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name).to_os_string();
            // The type in the listing may be unknown on some file systems: ask without following.
            if let Some(kind) = self.entry_type(&name)? {
                entries.push((name, kind));
            }
        }
        Ok(entries)
    }

    /// Opens the regular file `name` for reading, never through a link; `None` when missing.
    pub fn open_file(&self, name: &OsStr) -> Result<Option<File>> {
        let shown = self.shown.join(name);
        // O_NONBLOCK: a fifo planted under the name must not hang the caller.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let handle = match unix::openat(&self.handle, name, flags, Mode::empty()) {
            Ok(handle) => handle,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => bail!("{} is a symbolic link; not followed", shown.display()),
            Err(error) => return Err(io_error(error)).with_context(|| format!("cannot open {}", shown.display())),
        };
        let stat =
            unix::fstat(&handle).map_err(io_error).with_context(|| format!("cannot look at {}", shown.display()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            bail!("{} is not a regular file", shown.display());
        }
        Ok(Some(File::from(handle)))
    }

    /// Reads the regular file `name` (at most `limit` bytes, else an error); `None` when missing.
    pub fn read_file(&self, name: &OsStr, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(file) = self.open_file(name)? else { return Ok(None) };
        let mut contents = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut contents)
            .with_context(|| format!("cannot read {}", self.shown.join(name).display()))?;
        if contents.len() as u64 > limit {
            bail!("{} is larger than {limit} bytes", self.shown.join(name).display());
        }
        Ok(Some(contents))
    }

    /// Creates the file `name`, which must not exist yet (not even as a dangling link).
    pub fn create_new_file(&self, name: &OsStr, mode: u32) -> Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let handle = unix::openat(&self.handle, name, flags, Mode::from_raw_mode(mode & 0o777))
            .map_err(io_error)
            .with_context(|| format!("cannot create {}", self.shown.join(name).display()))?;
        Ok(File::from(handle))
    }

    /// Creates the folder `name` (mode 0700), which must not exist yet, and opens it.
    pub fn create_new_folder(&self, name: &OsStr) -> Result<SafeFolder> {
        unix::mkdirat(&self.handle, name, Mode::from_raw_mode(0o700))
            .map_err(io_error)
            .with_context(|| format!("cannot create {}", self.shown.join(name).display()))?;
        self.child_folder(name, false)?.ok_or_else(|| anyhow!("{} vanished", self.shown.join(name).display()))
    }

    pub fn create_symbolic_link(&self, name: &OsStr, target: &Path) -> Result<()> {
        unix::symlinkat(target, &self.handle, name)
            .map_err(io_error)
            .with_context(|| format!("cannot create the link {}", self.shown.join(name).display()))
    }

    /// Where the link `name` points (the link itself is never followed).
    pub fn link_target(&self, name: &OsStr) -> Result<PathBuf> {
        let target = unix::readlinkat(&self.handle, name, Vec::new())
            .map_err(io_error)
            .with_context(|| format!("cannot read the link {}", self.shown.join(name).display()))?;
        Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
    }

    /// Moves `name` of this folder to `new_name` of `into`: swapping the two atomically when
    /// `new_name` exists (the old one then sits at `name`), else a plain move. `true` when
    /// something was swapped out.
    pub fn move_into(&self, name: &OsStr, into: &SafeFolder, new_name: &OsStr) -> Result<bool> {
        let shown = into.shown.join(new_name);
        match unix::renameat_with(&self.handle, name, &into.handle, new_name, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(false),
            Err(rustix::io::Errno::EXIST) => {
                unix::renameat_with(&self.handle, name, &into.handle, new_name, RenameFlags::EXCHANGE)
                    .map_err(io_error)
                    .with_context(|| format!("cannot put the new copy at {}", shown.display()))?;
                Ok(true)
            }
            Err(error) => {
                Err(io_error(error)).with_context(|| format!("cannot put the new copy at {}", shown.display()))
            }
        }
    }

    /// Removes `name` and, for a folder, everything in it; links are removed, never followed.
    pub fn remove_tree(&self, name: &OsStr) -> Result<()> {
        self.remove_tree_at_depth(name, 0)
    }

    fn remove_tree_at_depth(&self, name: &OsStr, depth: usize) -> Result<()> {
        match self.entry_type(name)? {
            None => Ok(()),
            Some(EntryType::Folder) => {
                if depth > DEPTH_LIMIT {
                    bail!("{} is nested more than {DEPTH_LIMIT} folders deep", self.shown.join(name).display());
                }
                if let Some(folder) = self.child_folder(name, false)? {
                    for (child, _) in folder.entries()? {
                        folder.remove_tree_at_depth(&child, depth + 1)?;
                    }
                }
                unix::unlinkat(&self.handle, name, AtFlags::REMOVEDIR)
                    .map_err(io_error)
                    .with_context(|| format!("cannot remove {}", self.shown.join(name).display()))
            }
            Some(_) => unix::unlinkat(&self.handle, name, AtFlags::empty())
                .map_err(io_error)
                .with_context(|| format!("cannot remove {}", self.shown.join(name).display())),
        }
    }

    /// Whether the folder sits on a mount that ignores setuid bits and device files.
    pub fn is_nosuid_nodev(&self) -> Result<bool> {
        let flags = unix::fstatvfs(&self.handle)
            .map_err(io_error)
            .with_context(|| format!("cannot ask how {} is mounted", self.shown.display()))?
            .f_flag;
        Ok(flags.contains(unix::StatVfsMountFlags::NOSUID) && flags.contains(unix::StatVfsMountFlags::NODEV))
    }

    /// The folder's permission bits.
    pub fn mode(&self) -> Result<u32> {
        let stat = unix::fstat(&self.handle)
            .map_err(io_error)
            .with_context(|| format!("cannot look at {}", self.shown.display()))?;
        Ok(stat.st_mode & 0o7777)
    }

    /// Sets the folder's permission bits, through the handle (never through a path).
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        unix::fchmod(&self.handle, Mode::from_raw_mode(mode))
            .map_err(io_error)
            .with_context(|| format!("cannot change the mode of {}", self.shown.display()))
    }

    pub fn sync(&self) -> Result<()> {
        unix::fsync(&self.handle).map_err(io_error).with_context(|| format!("cannot flush {}", self.shown.display()))
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.handle.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_anywhere_below_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(parent.path().join("alice/real")).unwrap();
        std::os::unix::fs::symlink(outside.path(), parent.path().join("alice/link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), parent.path().join("mallory")).unwrap();
        let alice = SafeFolder::open_beneath(parent.path(), &parent.path().join("alice"), false).unwrap();
        assert!(alice.folder_at(Path::new("real"), false).unwrap().is_some());
        let error = alice.folder_at(Path::new("link/x"), true).err().expect("a link is refused");
        assert!(format!("{error:#}").contains("not followed"), "{error:#}");
        assert!(SafeFolder::open_beneath(parent.path(), &parent.path().join("mallory"), true).is_err());
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none(), "nothing was created outside");
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), parent.path().join("alice/file")).unwrap();
        assert!(alice.read_file(OsStr::new("file"), 100).is_err(), "a linked file is not read");
        assert!(alice.create_new_file(OsStr::new("file"), 0o600).is_err(), "nor written through");
        assert_eq!(std::fs::read_to_string(outside.path().join("secret")).unwrap(), "x");
    }

    #[test]
    fn a_folder_outside_the_parent_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        for outside in ["/etc", "../elsewhere"] {
            let folder = parent.path().join(outside);
            let error = SafeFolder::open_beneath(parent.path(), &folder, true).err().expect("refused");
            assert!(format!("{error:#}").contains("is not inside"), "{error:#}");
        }
        assert!(SafeFolder::open_beneath(parent.path(), parent.path(), true).is_err(), "the parent itself");
    }

    #[test]
    fn move_into_swaps_an_existing_entry() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(parent.path().join("new/x")).unwrap();
        std::fs::create_dir_all(parent.path().join("old")).unwrap();
        let folder = SafeFolder::open_trusted(parent.path()).unwrap();
        assert!(folder.move_into(OsStr::new("new"), &folder, OsStr::new("old")).unwrap());
        assert!(parent.path().join("old/x").exists(), "the new copy is in place");
        folder.remove_tree(OsStr::new("new")).unwrap();
        assert!(!parent.path().join("new").exists());
    }
}
