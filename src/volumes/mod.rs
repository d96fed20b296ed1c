//! Each user's folders on the host: work (their files, read-write), backup (the dotfiles
//! listed in their `backup.yaml`, saved between bookings) and the shared dataset folder.
//!
//! A user's entry in `users_config.yaml` names their folders, and that file is written by
//! the unprivileged booking account. So a folder is used only when it lies inside the
//! parent `host_deploy.yaml` names for it (the admin's file), reached below that parent one
//! component at a time without following a link. Root tools create missing folders (mode
//! 0700); the backup folder starts with a copy of `cfg/templates/backup.yaml`.

pub mod space;

use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::model::UserId;
use crate::safe_folder::{SafeFolder, lexically_normal};
use crate::store::config::{Config, UserEntry};
use crate::store::root::Root;

/// A user's three folders, opened.
pub struct UserFolders {
    pub work: SafeFolder,
    pub backup: SafeFolder,
    pub dataset: SafeFolder,
}

impl UserFolders {
    /// Opens (and with `create`, makes) the user's folders, refusing any that lies outside
    /// its parent in `host_deploy.yaml` or is reached through a link.
    pub fn open(root: &Root, config: &Config, user: &UserId, entry: &UserEntry, create: bool) -> Result<UserFolders> {
        let deploy = &config.deploy;
        if create {
            // The parents are the admin's paths; made if missing, as the original did.
            for parent in [&deploy.volume_work_dir, &deploy.volume_backup_dir, &deploy.volume_dataset_dir] {
                std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
        }
        let work = SafeFolder::open_beneath(&deploy.volume_work_dir, &entry.work_dir(deploy, user), create)
            .with_context(|| format!("{user}'s work folder"))?;
        let backup_folder =
            SafeFolder::open_beneath(&deploy.volume_backup_dir, &entry.backup_dir(deploy, user), create)
                .with_context(|| format!("{user}'s backup folder"))?;
        let dataset_path = entry.dataset_dir(deploy);
        // The dataset folder is shared: the parent itself, or a folder inside it.
        let dataset = if lexically_normal(&dataset_path) == lexically_normal(&deploy.volume_dataset_dir) {
            SafeFolder::open_trusted(&deploy.volume_dataset_dir)
        } else {
            SafeFolder::open_beneath(&deploy.volume_dataset_dir, &dataset_path, create)
        }
        .with_context(|| format!("{user}'s dataset folder"))?;
        if create {
            seed_backup_list(root, &backup_folder)?;
        }
        Ok(UserFolders { work, backup: backup_folder, dataset })
    }

    /// The paths Docker mounts. Their parents are the admin's and the last component was
    /// just opened without following a link, so they cannot lead elsewhere.
    pub fn mount_sources(&self) -> (PathBuf, PathBuf, PathBuf) {
        (self.work.path().to_path_buf(), self.backup.path().to_path_buf(), self.dataset.path().to_path_buf())
    }

    /// Refuses folders on a mount that honours setuid bits or device files: root inside the
    /// container can make both, and they would work on the host.
    pub fn check_mount_options(&self) -> Result<()> {
        for (what, folder) in [("work", &self.work), ("backup", &self.backup)] {
            if !folder.is_nosuid_nodev()? {
                bail!(
                    "the {what} folder {} is on a mount without nosuid,nodev: a container could leave a setuid-root \
                     program or a device file there for any local user; mount the volumes folder with \
                     nosuid,nodev (README, \"Deploying on a server\")",
                    folder.path().display()
                );
            }
        }
        Ok(())
    }
}

/// Creates the user's work and backup folders (and the shared dataset folder) if missing,
/// and seeds the backup folder's `backup.yaml` from the template if it has none.
pub fn create_user_folders(root: &Root, config: &Config, user: &UserId, entry: &UserEntry) -> Result<()> {
    UserFolders::open(root, config, user, entry, true).map(|_| ())
}

/// Seeds the user's `backup.yaml` from the template when they have none. Created with
/// `O_EXCL | O_NOFOLLOW`: a link planted under the name is never written through.
pub fn seed_backup_list(root: &Root, backup: &SafeFolder) -> Result<()> {
    let template = root.templates_dir().join("backup.yaml");
    if backup.entry_type(OsStr::new("backup.yaml"))?.is_some() || !template.exists() {
        return Ok(());
    }
    let text = std::fs::read(&template).with_context(|| format!("cannot read {}", template.display()))?;
    let mut file = backup.create_new_file(OsStr::new("backup.yaml"), 0o644)?;
    file.write_all(&text).with_context(|| format!("cannot write {}/backup.yaml", backup.path().display()))?;
    Ok(())
}
