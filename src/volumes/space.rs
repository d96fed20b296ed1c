//! How much a user's folders hold, for the quota checks: before a container starts, and at
//! every pass while it runs (up to a grace margin past the quota). The walk stops as soon as
//! the total passes what is asked, and after a time limit, so a huge tree never holds up a
//! pass; it never follows symbolic links.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::model::UserId;
use crate::safe_folder::{DEPTH_LIMIT, EntryType, SafeFolder};
use crate::store::config::{Config, UserEntry};

/// How long the quota walk of one folder may take.
pub const WALK_LIMIT: Duration = Duration::from_secs(20);

/// The outcome of measuring a folder against a quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measured {
    /// The whole folder was walked: its size in bytes.
    Within(u64),
    /// The walk passed the quota (the size is at least this many bytes).
    Over(u64),
    /// The time limit came first; the size is at least this many bytes.
    Unknown(u64),
}

/// Sums the disk usage under `folder` until it exceeds `quota_bytes` or `limit` passes. The
/// walk goes through directory handles and never follows a link (the container may swap a
/// folder for a link to `/` while it is measured); it holds one handle per level, so a wide
/// tree cannot run it out of open files. Anything it cannot read makes the size unknown.
pub fn measure(folder: &SafeFolder, quota_bytes: u64, limit: Duration) -> Measured {
    let mut walk = Walk { deadline: Instant::now() + limit, quota_bytes, total: 0 };
    match walk.folder(folder, 0) {
        Ok(()) => Measured::Within(walk.total),
        Err(Stop::Over) => Measured::Over(walk.total),
        Err(Stop::Unknown) => Measured::Unknown(walk.total),
    }
}

/// The user's folder at `path`, reached below `parent` without following a link, measured in
/// a blocking thread so a huge tree never holds up the other users' part of the pass.
pub async fn measure_beneath(parent: PathBuf, path: PathBuf, quota_bytes: u64, limit: Duration) -> Measured {
    tokio::task::spawn_blocking(move || match SafeFolder::open_beneath(&parent, &path, false) {
        Ok(folder) => measure(&folder, quota_bytes, limit),
        // Not made yet: nothing in it.
        Err(_) if !path.exists() => Measured::Within(0),
        Err(_) => Measured::Unknown(0),
    })
    .await
    .unwrap_or(Measured::Unknown(0))
}

enum Stop {
    Over,
    Unknown,
}

struct Walk {
    deadline: Instant,
    quota_bytes: u64,
    total: u64,
}

impl Walk {
    fn folder(&mut self, folder: &SafeFolder, depth: usize) -> Result<(), Stop> {
        if depth > DEPTH_LIMIT {
            return Err(Stop::Unknown);
        }
        let entries = folder.entries().map_err(|_| Stop::Unknown)?;
        for (name, kind) in entries {
            if Instant::now() > self.deadline {
                return Err(Stop::Unknown);
            }
            // Blocks, not length: a sparse file takes only what it uses.
            self.total += folder.blocks_of(&name).unwrap_or(0) * 512;
            if self.total > self.quota_bytes {
                return Err(Stop::Over);
            }
            if kind == EntryType::Folder {
                match folder.child_folder(&name, false) {
                    Ok(Some(child)) => self.folder(&child, depth + 1)?,
                    // Gone meanwhile: nothing to count.
                    Ok(None) => {}
                    Err(_) => return Err(Stop::Unknown),
                }
            }
        }
        Ok(())
    }
}

pub fn gigabytes(bytes: u64) -> String {
    let value = bytes as f64 / 1e9;
    if value >= 10.0 { format!("{value:.0}GB") } else { format!("{value:.1}GB") }
}

/// One of a user's folders under a quota.
pub struct FolderQuota {
    pub what: &'static str,
    /// The parent `host_deploy.yaml` names; the folder is reached below it.
    pub parent: PathBuf,
    pub folder: PathBuf,
    pub quota_gb: f64,
}

/// A folder measured against its quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FolderUse {
    pub what: &'static str,
    pub quota_gb: f64,
    pub measured: Measured,
}

impl FolderUse {
    pub fn quota_bytes(&self) -> u64 {
        (self.quota_gb * 1e9) as u64
    }
}

/// The user's work and backup folders with their parents, where a quota is set.
pub fn quota_folders(config: &Config, user: &UserId, entry: &UserEntry) -> Vec<FolderQuota> {
    let limits = config.capability.limits_for(user);
    let deploy = &config.deploy;
    [
        ("work_dir", deploy.volume_work_dir.clone(), entry.work_dir(deploy, user), limits.work_space),
        ("backup_dir", deploy.volume_backup_dir.clone(), entry.backup_dir(deploy, user), limits.backup_space),
    ]
    .into_iter()
    .filter_map(|(what, parent, folder, quota)| {
        Some(FolderQuota { what, parent, folder, quota_gb: quota?.clamp(0.0, 1e6) })
    })
    .collect()
}

/// How far past their quota a running booking's folders may grow before the container is
/// stopped: a tenth of the quota, at least 1 GB.
pub fn grace_bytes(quota_bytes: u64) -> u64 {
    (quota_bytes / 10).max(1_000_000_000)
}

/// Measures each folder, one after the other, up to its quota or, `with_grace`, up to its
/// quota and grace margin.
pub async fn measure_all(folders: Vec<FolderQuota>, with_grace: bool) -> Vec<FolderUse> {
    let mut measured = Vec::new();
    for FolderQuota { what, parent, folder, quota_gb } in folders {
        let quota_bytes = (quota_gb * 1e9) as u64;
        let stop_at = if with_grace { quota_bytes + grace_bytes(quota_bytes) } else { quota_bytes };
        measured.push(FolderUse {
            what,
            quota_gb,
            measured: measure_beneath(parent, folder, stop_at, WALK_LIMIT).await,
        });
    }
    measured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_deeper_than_the_limit_is_unknown_not_a_crash() {
        let folder = tempfile::tempdir().unwrap();
        let mut deep = folder.path().to_path_buf();
        for _ in 0..(DEPTH_LIMIT + 5) {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        let handle = SafeFolder::open_trusted(folder.path()).unwrap();
        assert!(matches!(measure(&handle, u64::MAX, Duration::from_secs(5)), Measured::Unknown(_)));
    }

    #[test]
    fn stops_once_over_the_quota_and_ignores_symlinks() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::create_dir(folder.path().join("sub")).unwrap();
        std::fs::write(folder.path().join("sub/b"), vec![1u8; 64 * 1024]).unwrap();
        std::os::unix::fs::symlink("/usr", folder.path().join("link")).unwrap();
        let handle = SafeFolder::open_trusted(folder.path()).unwrap();
        let within = measure(&handle, 10 * 1024 * 1024, Duration::from_secs(5));
        assert!(matches!(within, Measured::Within(size) if (128 * 1024..1024 * 1024).contains(&size)), "{within:?}");
        assert!(matches!(measure(&handle, 70 * 1024, Duration::from_secs(5)), Measured::Over(_)));
    }
}
