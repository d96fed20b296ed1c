//! The `backup.yaml` paths of a container: copied *out* of the stopped container into the
//! user's backup folder when a booking ends, and copied *into* the next container before it
//! starts.
//!
//! The user controls their backup folder from inside the container, so the folder is never
//! bind-mounted piecewise (Docker would resolve a planted link again at every restart) and
//! never walked by path: everything goes through [`SafeFolder`] handles that refuse links.
//! Saved copies never carry setuid/setgid bits, device files or fifos.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::safe_folder::{EntryType, SafeFolder, plain_components};
use crate::store::config::backup_list::{BackupEntry, BackupList, EntryKind};
use crate::store::root::Root;

/// A user's `backup.yaml` is a short list; anything larger is not read.
const LIST_SIZE_LIMIT: u64 = 256 * 1024;

/// Permission bits a saved or restored copy may carry: no setuid, setgid or sticky bit.
const PLAIN_MODE_BITS: u32 = 0o777;

/// The user's list (`<backup folder>/backup.yaml`, read without following a link), else the
/// template; with the problems found (a list that did not parse saves nothing).
pub fn load_list(root: &Root, backup: &SafeFolder) -> (BackupList, Vec<String>) {
    let own_shown = root.display(&backup.path().join("backup.yaml"));
    match backup.read_file(OsStr::new("backup.yaml"), LIST_SIZE_LIMIT) {
        Ok(Some(bytes)) => parse_list(&own_shown, &String::from_utf8_lossy(&bytes)),
        Ok(None) => {
            let template = root.templates_dir().join("backup.yaml");
            if !template.exists() {
                return (BackupList::default(), Vec::new());
            }
            let shown = root.display(&template);
            match crate::store::config::read_text(&template, &shown) {
                Ok(text) => parse_list(&shown, &text),
                Err(problems) => (BackupList::default(), problems.iter().map(ToString::to_string).collect()),
            }
        }
        Err(error) => (BackupList::default(), vec![format!("{error:#}; nothing is saved or restored")]),
    }
}

fn parse_list(shown: &str, text: &str) -> (BackupList, Vec<String>) {
    match BackupList::parse(shown, text) {
        Ok((list, warnings)) => (list, warnings.iter().map(ToString::to_string).collect()),
        Err(problems) => (BackupList::default(), problems.iter().map(ToString::to_string).collect()),
    }
}

/// The saved copies as one tar archive rooted at `/`, ready to be copied into a new
/// container before it starts, with a warning for each entry left out. Writes at most
/// `limit` bytes of file contents.
pub fn restore_archive(backup: &SafeFolder, list: &BackupList, limit: u64, out: impl Write) -> Result<Restored> {
    let mut writer = ArchiveWriter { builder: tar::Builder::new(out), budget: limit, skipped: Vec::new() };
    let mut restored = Restored::default();
    for entry in &list.entries {
        match writer.add_entry(backup, entry) {
            Ok(true) => restored.entries.push(entry.container_path.clone()),
            Ok(false) => {}
            Err(error) => restored.warnings.push(format!("{} was not restored: {error:#}", entry.container_path)),
        }
    }
    writer.builder.finish().context("cannot write the archive of saved files")?;
    restored.warnings.extend(writer.skipped);
    Ok(restored)
}

/// What [`restore_archive`] put in the archive.
#[derive(Debug, Default)]
pub struct Restored {
    /// Container paths restored.
    pub entries: Vec<String>,
    pub warnings: Vec<String>,
}

struct ArchiveWriter<W: Write> {
    builder: tar::Builder<W>,
    budget: u64,
    skipped: Vec<String>,
}

impl<W: Write> ArchiveWriter<W> {
    /// `false` when nothing is saved for the entry yet.
    fn add_entry(&mut self, backup: &SafeFolder, entry: &BackupEntry) -> Result<bool> {
        let (parent, name) = split_backup_path(backup, &entry.backup_path, false)?;
        let Some(parent) = parent else { return Ok(false) };
        let Some(kind) = parent.entry_type(&name)? else { return Ok(false) };
        let member = entry.container_path.trim_start_matches('/').to_string();
        match (entry.kind, kind) {
            (EntryKind::Dir, EntryType::Folder) => {
                let folder = parent.child_folder(&name, false)?.ok_or_else(|| anyhow!("vanished"))?;
                self.add_folder(&folder, &member, 0)?;
            }
            (EntryKind::File, EntryType::File) => self.add_file(&parent, &name, &member)?,
            (_, EntryType::SymbolicLink) => {
                bail!("{} is a symbolic link; it is not followed", parent.path().join(&name).display())
            }
            (EntryKind::Dir, _) => bail!("{} is not a folder", parent.path().join(&name).display()),
            (EntryKind::File, _) => bail!("{} is not a regular file", parent.path().join(&name).display()),
        }
        Ok(true)
    }

    fn add_folder(&mut self, folder: &SafeFolder, member: &str, depth: usize) -> Result<()> {
        if depth > crate::safe_folder::DEPTH_LIMIT {
            bail!("{} is nested more than {} folders deep", folder.path().display(), crate::safe_folder::DEPTH_LIMIT);
        }
        let stat = rustix::fs::fstat(folder.as_fd()).context("cannot look at a saved folder")?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(stat.st_mode & PLAIN_MODE_BITS);
        header.set_mtime(stat.st_mtime.max(0) as u64);
        header.set_size(0);
        self.builder
            .append_data(&mut header, format!("{member}/"), io::empty())
            .context("cannot write the archive of saved files")?;
        for (name, kind) in folder.entries()? {
            let child = format!("{member}/{}", name.to_string_lossy());
            match kind {
                EntryType::Folder => {
                    if let Some(sub) = folder.child_folder(&name, false)? {
                        self.add_folder(&sub, &child, depth + 1)?;
                    }
                }
                EntryType::File => self.add_file(folder, &name, &child)?,
                EntryType::SymbolicLink => {
                    // Restored as a link: Docker resolves it inside the container, where the
                    // user is root anyway.
                    let target = folder.link_target(&name)?;
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    header.set_mode(0o777);
                    self.builder
                        .append_link(&mut header, &child, &target)
                        .context("cannot write the archive of saved files")?;
                }
                EntryType::Special => self.skipped.push(format!("{child}: not a file or folder; not restored")),
            }
        }
        Ok(())
    }

    fn add_file(&mut self, folder: &SafeFolder, name: &OsStr, member: &str) -> Result<()> {
        let Some(file) = folder.open_file(name)? else { return Ok(()) };
        let stat = rustix::fs::fstat(&file).context("cannot look at a saved file")?;
        let size = stat.st_size.max(0) as u64;
        if size > self.budget {
            bail!("the saved files are larger than the backup quota allows");
        }
        self.budget -= size;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(stat.st_mode & PLAIN_MODE_BITS);
        header.set_mtime(stat.st_mtime.max(0) as u64);
        header.set_size(size);
        // Exactly `size` bytes, even if the file shrank meanwhile.
        let contents = file.take(size).chain(io::repeat(0)).take(size);
        self.builder.append_data(&mut header, member, contents).context("cannot write the archive of saved files")?;
        Ok(())
    }
}

/// The folder that holds `backup_path`'s last component (created on the way when `create`)
/// and that component.
fn split_backup_path(backup: &SafeFolder, backup_path: &str, create: bool) -> Result<(Option<SafeFolder>, OsString)> {
    let parts = plain_components(Path::new(backup_path))
        .ok_or_else(|| anyhow!("{backup_path:?} is not a plain relative path"))?;
    let name = parts[parts.len() - 1].to_os_string();
    let parent_path: PathBuf = parts[..parts.len() - 1].iter().collect();
    let parent = if parent_path.as_os_str().is_empty() {
        Some(backup.duplicate()?)
    } else {
        backup.folder_at(&parent_path, create)?
    };
    Ok((parent, name))
}

/// What installing a saved copy left out, for the log.
#[derive(Debug, Default)]
pub struct Installed {
    pub skipped: Vec<String>,
}

/// Unpacks `archive` (Docker's archive of the entry's container path: one top-level member
/// named after its last component) into a fresh folder next to the destination, then swaps
/// it in, so a failure leaves the old copy. At most `limit` bytes of file contents.
pub fn install_archive(backup: &SafeFolder, entry: &BackupEntry, archive: &Path, limit: u64) -> Result<Installed> {
    let (parent, name) = split_backup_path(backup, &entry.backup_path, true)?;
    let parent = parent.ok_or_else(|| anyhow!("cannot create the folders of {}", entry.backup_path))?;
    let top = Path::new(&entry.container_path)
        .file_name()
        .context("the container path has no last component")?
        .to_os_string();
    // One fixed name: a user's saves run one at a time, and debris of a killed pass is
    // removed here before it is made afresh.
    let staging_name = OsString::from(STAGING_NAME);
    parent.remove_tree(&staging_name)?;
    let staging = parent.create_new_folder(&staging_name)?;
    let result = unpack(&staging, archive, limit).and_then(|installed| {
        match staging.entry_type(&top)? {
            Some(EntryType::Folder) if entry.kind == EntryKind::Dir => {}
            Some(EntryType::File) if entry.kind == EntryKind::File => {}
            Some(_) => bail!("{} is not a {} in the container", entry.container_path, entry.kind.word()),
            None => bail!("the archive of {} did not hold it", entry.container_path),
        }
        staging.move_into(&top, &parent, &name)?;
        Ok(installed)
    });
    // The staging folder now holds the old copy (or what was unpacked before a failure).
    let cleaned = parent.remove_tree(&staging_name);
    let installed = result?;
    cleaned?;
    Ok(installed)
}

/// The scratch folder next to a saved path.
const STAGING_NAME: &str = ".gpu-booking-save";

/// Unpacks every member below `into`, by handle, refusing links on the way.
fn unpack(into: &SafeFolder, archive: &Path, limit: u64) -> Result<Installed> {
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut reader = tar::Archive::new(file);
    let mut installed = Installed::default();
    let mut budget = limit;
    let mut folder_modes: Vec<(PathBuf, u32)> = Vec::new();
    for member in reader.entries().context("cannot read the saved archive")? {
        let mut member = member.context("cannot read the saved archive")?;
        let path = member.path().context("a member of the saved archive has no usable name")?.into_owned();
        let Some(parts) = plain_components(&path) else {
            installed.skipped.push(format!("{}: not a plain relative name", path.display()));
            continue;
        };
        if parts.len() > crate::safe_folder::DEPTH_LIMIT {
            bail!("the copy is nested more than {} folders deep", crate::safe_folder::DEPTH_LIMIT);
        }
        let name = parts[parts.len() - 1];
        let parent_path: PathBuf = parts[..parts.len() - 1].iter().collect();
        let parent = if parent_path.as_os_str().is_empty() {
            into.duplicate()?
        } else {
            into.folder_at(&parent_path, true)?.ok_or_else(|| anyhow!("cannot create {}", parent_path.display()))?
        };
        let mode = member.header().mode().unwrap_or(0o644) & PLAIN_MODE_BITS;
        match member.header().entry_type() {
            tar::EntryType::Directory => {
                parent.child_folder(name, true)?;
                folder_modes.push((path.clone(), mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = member.header().size().unwrap_or(0);
                if size > budget {
                    bail!("the copy is larger than the backup quota allows ({limit} bytes)");
                }
                budget -= size;
                let mut file = parent.create_new_file(name, 0o600)?;
                copy_sparse(&mut member, &mut file, size).context("cannot write a saved file")?;
                rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(mode)).context("cannot set a mode")?;
                if let Ok(mtime) = member.header().mtime() {
                    let time = rustix::fs::Timespec { tv_sec: mtime as i64, tv_nsec: 0 };
                    let _ = rustix::fs::futimens(
                        &file,
                        &rustix::fs::Timestamps { last_access: time, last_modification: time },
                    );
                }
                file.sync_all().context("cannot flush a saved file")?;
            }
            tar::EntryType::Symlink => match member.link_name() {
                Ok(Some(target)) => parent.create_symbolic_link(name, &target)?,
                _ => installed.skipped.push(format!("{}: a link without a target", path.display())),
            },
            other => installed.skipped.push(format!(
                "{}: {} not saved",
                path.display(),
                match other {
                    tar::EntryType::Char | tar::EntryType::Block => "device file",
                    tar::EntryType::Fifo => "fifo",
                    tar::EntryType::Link => "hard link",
                    _ => "special member",
                }
            )),
        }
    }
    // Folder modes last, deepest first: a read-only folder must not stop its own contents.
    folder_modes.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
    for (path, mode) in folder_modes {
        if let Some(folder) = into.folder_at(&path, false)? {
            folder.set_mode(mode | 0o700)?;
        }
    }
    into.sync()?;
    Ok(installed)
}

/// Copies `size` bytes, leaving holes where whole blocks are zero: Docker's archive spells a
/// sparse file out in full, and the saved copy must not take more disk than the original.
fn copy_sparse(from: &mut impl Read, to: &mut File, size: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut block = vec![0u8; 64 * 1024];
    loop {
        let read = from.read(&mut block)?;
        if read == 0 {
            break;
        }
        if block[..read].iter().all(|byte| *byte == 0) {
            to.seek(SeekFrom::Current(read as i64))?;
        } else {
            to.write_all(&block[..read])?;
        }
    }
    to.set_len(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, backup_path: &str, container_path: &str) -> BackupEntry {
        BackupEntry { kind, backup_path: backup_path.into(), container_path: container_path.into() }
    }

    fn archive_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> tempfile::NamedTempFile {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&builder.into_inner().unwrap()).unwrap();
        file
    }

    fn regular(builder: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32, contents: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(mode);
        header.set_size(contents.len() as u64);
        builder.append_data(&mut header, name, contents).unwrap();
    }

    #[test]
    fn a_saved_copy_loses_setuid_bits_and_device_files() {
        use std::os::unix::fs::PermissionsExt;
        let backup_dir = tempfile::tempdir().unwrap();
        let backup = SafeFolder::open_trusted(backup_dir.path()).unwrap();
        let archive = archive_of(|builder| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, ".ssh/", io::empty()).unwrap();
            regular(builder, ".ssh/shell", 0o4755, b"#!/bin/sh\n");
            let mut device = tar::Header::new_gnu();
            device.set_entry_type(tar::EntryType::Block);
            device.set_mode(0o666);
            device.set_size(0);
            builder.append_data(&mut device, ".ssh/disk", io::empty()).unwrap();
        });
        let installed =
            install_archive(&backup, &entry(EntryKind::Dir, ".default/.ssh", "/root/.ssh"), archive.path(), 1 << 20)
                .unwrap();
        let shell = backup_dir.path().join(".default/.ssh/shell");
        assert_eq!(std::fs::read(&shell).unwrap(), b"#!/bin/sh\n");
        assert_eq!(std::fs::metadata(&shell).unwrap().permissions().mode() & 0o7777, 0o755, "setuid dropped");
        assert!(!backup_dir.path().join(".default/.ssh/disk").exists(), "no device file");
        assert!(installed.skipped.iter().any(|line| line.contains("device file")), "{:?}", installed.skipped);
    }

    #[test]
    fn a_sparse_file_stays_sparse() {
        use std::os::unix::fs::MetadataExt;
        let backup_dir = tempfile::tempdir().unwrap();
        let backup = SafeFolder::open_trusted(backup_dir.path()).unwrap();
        let mut contents = vec![0u8; 8 << 20];
        contents[..5].copy_from_slice(b"start");
        let archive = archive_of(|builder| regular(builder, "big", 0o644, &contents));
        install_archive(&backup, &entry(EntryKind::File, "big", "/root/big"), archive.path(), 16 << 20).unwrap();
        let metadata = std::fs::metadata(backup_dir.path().join("big")).unwrap();
        assert_eq!(metadata.len(), 8 << 20);
        assert!(metadata.blocks() * 512 < 1 << 20, "{} bytes on disk", metadata.blocks() * 512);
        assert_eq!(&std::fs::read(backup_dir.path().join("big")).unwrap()[..5], b"start");
    }

    #[test]
    fn a_copy_over_the_limit_keeps_the_old_one() {
        let backup_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(backup_dir.path().join(".default")).unwrap();
        std::fs::write(backup_dir.path().join(".default/.bashrc"), "old\n").unwrap();
        let backup = SafeFolder::open_trusted(backup_dir.path()).unwrap();
        let archive = archive_of(|builder| regular(builder, ".bashrc", 0o644, &[b'x'; 4096]));
        let saved = entry(EntryKind::File, ".default/.bashrc", "/root/.bashrc");
        assert!(install_archive(&backup, &saved, archive.path(), 1000).is_err());
        assert_eq!(std::fs::read_to_string(backup_dir.path().join(".default/.bashrc")).unwrap(), "old\n");
        install_archive(&backup, &saved, archive.path(), 10_000).unwrap();
        assert_eq!(std::fs::read(backup_dir.path().join(".default/.bashrc")).unwrap().len(), 4096);
        let names: Vec<_> = std::fs::read_dir(backup_dir.path().join(".default")).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no staging folder is left: {names:?}");
    }

    #[test]
    fn a_tree_nested_deeper_than_the_limit_is_refused_not_a_crash() {
        let backup_dir = tempfile::tempdir().unwrap();
        let mut deep = backup_dir.path().join(".default/.ssh");
        for _ in 0..(crate::safe_folder::DEPTH_LIMIT + 10) {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        let backup = SafeFolder::open_trusted(backup_dir.path()).unwrap();
        let list = BackupList { entries: vec![entry(EntryKind::Dir, ".default/.ssh", "/root/.ssh")] };
        let restored = restore_archive(&backup, &list, 1 << 20, io::sink()).unwrap();
        assert!(restored.entries.is_empty(), "{restored:?}");
        assert!(restored.warnings.iter().any(|warning| warning.contains("deep")), "{restored:?}");
        let default = SafeFolder::open_trusted(&backup_dir.path().join(".default")).unwrap();
        assert!(default.remove_tree(OsStr::new(".ssh")).is_err(), "refused, not a stack overflow");
    }

    #[test]
    fn the_restore_archive_never_follows_a_planted_link() {
        let backup_dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host secret").unwrap();
        std::fs::create_dir_all(backup_dir.path().join(".default")).unwrap();
        std::os::unix::fs::symlink(outside.path(), backup_dir.path().join(".default/.ssh")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), backup_dir.path().join(".default/.bashrc")).unwrap();
        let backup = SafeFolder::open_trusted(backup_dir.path()).unwrap();
        let list = BackupList {
            entries: vec![
                entry(EntryKind::Dir, ".default/.ssh", "/root/.ssh"),
                entry(EntryKind::File, ".default/.bashrc", "/root/.bashrc"),
            ],
        };
        let mut bytes = Vec::new();
        let restored = restore_archive(&backup, &list, 1 << 20, &mut bytes).unwrap();
        assert!(restored.entries.is_empty(), "{restored:?}");
        assert_eq!(restored.warnings.len(), 2, "{restored:?}");
        assert!(!String::from_utf8_lossy(&bytes).contains("host secret"));
    }
}
