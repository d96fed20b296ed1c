//! Each user's folders on the host: work (their files, read-write), backup (the dotfiles
//! listed in their `backup.yaml`, saved between bookings) and the shared dataset folder.
//! Created on demand; the backup folder starts with a copy of `cfg/templates/backup.yaml`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::config::{Config, UserEntry, UserId};
use crate::root::Root;

/// Creates the user's work and backup folders (and the shared dataset folder) if missing,
/// and seeds the backup folder's `backup.yaml` from the template if it has none.
pub fn create_user_folders(root: &Root, config: &Config, user: &UserId, entry: &UserEntry) -> Result<()> {
    let work = entry.work_dir(&config.deploy, user);
    let backup = entry.backup_dir(&config.deploy, user);
    let dataset = entry.dataset_dir(&config.deploy);
    for folder in [&work, &backup, &dataset] {
        fs::create_dir_all(folder).with_context(|| format!("cannot create the folder {}", folder.display()))?;
    }
    let list = backup.join("backup.yaml");
    let template = root.templates_dir().join("backup.yaml");
    if !list.exists() && template.exists() {
        copy_file(&template, &list)?;
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}
