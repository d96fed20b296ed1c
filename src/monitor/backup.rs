//! Saving a container's `backup.yaml` paths into the user's backup folder before removal,
//! and reading the list. The user controls both the container and the folder (it is
//! mounted in the container), so nothing is written through a symbolic link and nothing
//! lands outside the folder.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::backup_list::{BackupEntry, BackupList, check_backup_path};
use crate::config::read_text;
use crate::root::Root;

/// The user's list (`<backup folder>/backup.yaml`), else the template; with the problems of
/// a list that did not parse (then no path is backed up).
pub fn load_list(root: &Root, backup_dir: &Path) -> (BackupList, Vec<String>) {
    let own = backup_dir.join("backup.yaml");
    let path = if own.exists() { own } else { root.templates_dir().join("backup.yaml") };
    if !path.exists() {
        return (BackupList::default(), Vec::new());
    }
    let shown = root.display(&path);
    match read_text(&path, &shown).and_then(|text| BackupList::parse(&shown, &text)) {
        Ok((list, warnings)) => (list, warnings.iter().map(ToString::to_string).collect()),
        Err(problems) => {
            // Keep the entries that are fine: parse again without the bad ones is not
            // possible for a syntax error, so report and back up nothing from this list.
            (BackupList::default(), problems.iter().map(ToString::to_string).collect())
        }
    }
}

const SCRATCH_PREFIX: &str = ".gpu-booking-save-";

/// A folder for scratch work inside the backup folder (same file system, so the final
/// rename is atomic), removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(backup_dir: &Path) -> Result<Scratch> {
        // Passes run one at a time (systemd's oneshot unit), so any scratch folder found here
        // is debris of a killed pass: remove it, it sits in the user's quota and view.
        if let Ok(entries) = fs::read_dir(backup_dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let path = backup_dir.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Unpacks `archive` (what Docker's archive API returned for the entry's container path: one
/// top-level member named after its last component) and puts it at
/// `<backup_dir>/<entry.backup_path>`, replacing what was there.
pub fn install_archive(backup_dir: &Path, entry: &BackupEntry, archive: &Path, scratch: &Path) -> Result<()> {
    check_backup_path(&entry.backup_path).map_err(anyhow::Error::msg)?;
    let destination = backup_dir.join(&entry.backup_path);
    // Every folder on the way must be a real folder inside the backup folder.
    let mut walked = backup_dir.to_path_buf();
    let components: Vec<_> = Path::new(&entry.backup_path).components().collect();
    for component in &components[..components.len().saturating_sub(1)] {
        walked.push(component);
        match fs::symlink_metadata(&walked) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                bail!("{} is a symbolic link; not written through", walked.display())
            }
            Ok(metadata) if !metadata.is_dir() => bail!("{} is not a folder", walked.display()),
            Ok(_) => {}
            Err(_) => fs::create_dir(&walked).with_context(|| format!("cannot create {}", walked.display()))?,
        }
    }
    let unpack_dir = scratch.join("unpack");
    let _ = fs::remove_dir_all(&unpack_dir);
    fs::create_dir_all(&unpack_dir).with_context(|| format!("cannot create {}", unpack_dir.display()))?;
    let file = fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut reader = tar::Archive::new(file);
    reader.set_preserve_permissions(true);
    reader.set_overwrite(true);
    // `unpack` refuses members that would land outside unpack_dir (`..`, absolute paths,
    // writing through a link the archive made).
    reader.unpack(&unpack_dir).with_context(|| format!("cannot unpack the saved copy of {}", entry.container_path))?;
    let name = Path::new(&entry.container_path).file_name().context("the container path has no last component")?;
    let unpacked = unpack_dir.join(name);
    if fs::symlink_metadata(&unpacked).is_err() {
        bail!("the archive of {} did not hold {}", entry.container_path, name.to_string_lossy());
    }
    // Replace: move the old copy aside first, so a failure never leaves neither.
    let old = scratch.join("old");
    let _ = fs::remove_dir_all(&old);
    if fs::symlink_metadata(&destination).is_ok() {
        fs::rename(&destination, &old).with_context(|| format!("cannot move {} aside", destination.display()))?;
    }
    fs::rename(&unpacked, &destination)
        .with_context(|| format!("cannot put the saved copy at {}", destination.display()))?;
    let _ = fs::remove_dir_all(&old).or_else(|_| fs::remove_file(&old));
    Ok(())
}
