//! The root folder: the one that holds `cfg/` and `jobs/`.

use std::path::{Path, PathBuf};

/// Environment variable that names the root when `--root` is not given.
pub const ROOT_VARIABLE: &str = "GPU_BOOKING_ROOT";

/// Where a deployment lives. Every path the tools use is derived from here, so a test or a
/// rehearsal can point the binaries at a scratch copy.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cfg_dir(&self) -> PathBuf {
        self.dir.join("cfg")
    }

    pub fn jobs_dir(&self) -> PathBuf {
        self.dir.join("jobs")
    }

    pub fn host_deploy_path(&self) -> PathBuf {
        self.cfg_dir().join("host_deploy.yaml")
    }

    /// `cfg/login.yaml`, gpu-booking's own login settings (see [`crate::store::config::login`]).
    pub fn login_settings_path(&self) -> PathBuf {
        self.cfg_dir().join(crate::store::config::login::FILE_NAME)
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.cfg_dir().join("templates")
    }

    /// Paths written in `host_deploy.yaml` are relative to the root (the original ran from
    /// its checkout and wrote `./cfg/...`); absolute paths stay as they are.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            let relative = path.strip_prefix(".").unwrap_or(path);
            self.dir.join(relative)
        }
    }

    /// A path for messages: relative to the root when it lies inside, so errors read
    /// `cfg/capability_config.yaml:14: ...` rather than a long absolute path.
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.dir) {
            Ok(relative) if !relative.as_os_str().is_empty() => relative.display().to_string(),
            _ => path.display().to_string(),
        }
    }
}
