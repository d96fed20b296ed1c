//! The volumes folder of a test root, mounted `nosuid,nodev` the way the README's deployment
//! mounts `/srv/gpu-booking/volumes`: the monitor refuses user folders on a mount that
//! honours setuid bits or device files. Needs root (as do the Docker tests in CI).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A folder bind-mounted onto itself with `nosuid,nodev`; unmounted when dropped.
pub struct PrivateMount {
    path: Option<PathBuf>,
}

impl PrivateMount {
    /// Without root there is no mount (and no Docker test to need it): a note says so.
    pub fn new(path: &Path) -> PrivateMount {
        std::fs::create_dir_all(path).unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
        if !is_root() {
            eprintln!(
                "not root: {} is not mounted nosuid,nodev; the monitor will refuse to start containers",
                path.display()
            );
            return PrivateMount { path: None };
        }
        for args in [vec!["--bind"], vec!["-o", "remount,bind,nosuid,nodev"]] {
            let output = Command::new("mount")
                .args(&args)
                .arg(path)
                .arg(path)
                .output()
                .unwrap_or_else(|error| panic!("run mount: {error}"));
            assert!(
                output.status.success(),
                "mount {args:?} {} failed (the Docker tests need root): {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        PrivateMount { path: Some(path.to_path_buf()) }
    }
}

impl PrivateMount {
    pub fn is_mounted(&self) -> bool {
        self.path.is_some()
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

impl Drop for PrivateMount {
    fn drop(&mut self) {
        // Lazy: a container still being removed may hold it for a moment.
        if let Some(path) = &self.path {
            let _ = Command::new("umount").arg("-l").arg(path).status();
        }
    }
}
