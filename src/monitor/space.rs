//! How much a user's folders hold, for the quota check before a container starts. The walk
//! stops as soon as the total passes the quota, and after a time limit, so a huge tree never
//! holds up a pass; it never follows symbolic links.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::safe_folder::{EntryType, SafeFolder};

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
/// walk goes through directory handles and never follows a link: the container may swap a
/// folder for a link to `/` while it is measured.
pub fn measure(folder: &Path, quota_bytes: u64, limit: Duration) -> Measured {
    let deadline = Instant::now() + limit;
    let Ok(top) = SafeFolder::open_trusted(folder) else { return Measured::Within(0) };
    let mut total: u64 = 0;
    let mut pending = vec![top];
    let mut visited = 0u64;
    while let Some(current) = pending.pop() {
        let Ok(entries) = current.entries() else { continue };
        for (name, kind) in entries {
            // Blocks, not length: a sparse file takes only what it uses.
            total += current.blocks_of(&name).unwrap_or(0) * 512;
            if kind == EntryType::Folder
                && let Ok(Some(child)) = current.child_folder(&name, false)
            {
                pending.push(child);
            }
            if total > quota_bytes {
                return Measured::Over(total);
            }
            visited += 1;
            if visited.is_multiple_of(1024) && Instant::now() > deadline {
                return Measured::Unknown(total);
            }
        }
    }
    Measured::Within(total)
}

pub fn gigabytes(bytes: u64) -> String {
    let value = bytes as f64 / 1e9;
    if value >= 10.0 { format!("{value:.0}GB") } else { format!("{value:.1}GB") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_once_over_the_quota_and_ignores_symlinks() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::create_dir(folder.path().join("sub")).unwrap();
        std::fs::write(folder.path().join("sub/b"), vec![1u8; 64 * 1024]).unwrap();
        std::os::unix::fs::symlink("/usr", folder.path().join("link")).unwrap();
        let within = measure(folder.path(), 10 * 1024 * 1024, Duration::from_secs(5));
        assert!(matches!(within, Measured::Within(size) if (128 * 1024..1024 * 1024).contains(&size)), "{within:?}");
        assert!(matches!(measure(folder.path(), 70 * 1024, Duration::from_secs(5)), Measured::Over(_)));
    }
}
