//! `cfg/host_deploy.yaml`: where the volumes live, where the other two configuration files
//! are, and which images users may pick.
//!
//! Admin-authored; the tools only read it. The optional `mail:` block is gpu-booking's own
//! (the original never had one): see [`super::mail`]. Read without the state lock: no tool writes it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::mail::MailSettings;
use super::yaml::{self, Findings, Parsed, without_blanks};
use crate::store::root::Root;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostDeploy {
    volume_work_dir: PathBuf,
    volume_dataset_dir: PathBuf,
    volume_backup_dir: PathBuf,
    users_config_yaml: PathBuf,
    capability_config_yaml: PathBuf,
    #[serde(default)]
    images: Option<Vec<Option<String>>>,
    /// gpu-booking's own: the mail server (see [`super::mail`]); none means no mail.
    #[serde(default)]
    mail: Option<super::mail::RawMail>,
}

/// The deployment, with every path resolved against the root.
#[derive(Debug, Clone)]
pub struct HostDeploy {
    /// Parent of each user's work folder (`<volume_work_dir>/<user>`).
    pub volume_work_dir: PathBuf,
    /// The shared dataset folder, mounted read-only.
    pub volume_dataset_dir: PathBuf,
    /// Parent of each user's backup folder.
    pub volume_backup_dir: PathBuf,
    pub users_config_yaml: PathBuf,
    pub capability_config_yaml: PathBuf,
    /// The images users may pick; the first is the default.
    pub images: Vec<String>,
    /// The mail server students are written from; `None`: no mail is sent.
    pub mail: Option<MailSettings>,
    /// What relative paths are resolved against.
    root: Root,
    /// The three volume paths as the file writes them (`./volumes/work`), for new user
    /// entries: the original stores `<volume_work_dir>/<user>` as written, so a root that
    /// uses relative paths can be moved or copied without rewriting `users_config.yaml`.
    written_work_dir: PathBuf,
    written_dataset_dir: PathBuf,
    written_backup_dir: PathBuf,
}

impl HostDeploy {
    pub fn parse(root: &Root, shown_path: &str, text: &str) -> Parsed<HostDeploy> {
        let raw: RawHostDeploy = yaml::parse(shown_path, text).map_err(|problem| vec![problem])?;
        let mut findings = Findings::new(shown_path, text);
        let images: Vec<String> =
            without_blanks(raw.images).into_iter().map(|image| image.trim().to_string()).collect();
        if images.is_empty() {
            findings.error(&["images"], "expected at least one image; the first one is the default");
        }
        for image in &images {
            if image.is_empty() || image.chars().any(char::is_whitespace) {
                findings.error(
                    &["images"],
                    format!("expected an image name such as \"repository:tag\", found {}", crate::error::quoted(image)),
                );
            }
        }
        for (field, path) in
            [("users_config_yaml", &raw.users_config_yaml), ("capability_config_yaml", &raw.capability_config_yaml)]
        {
            if path.as_os_str().is_empty() {
                findings.error(&[field], "expected a path (relative to the root)");
            }
        }
        let mail = raw.mail.and_then(|mail| super::mail::parse(root, mail, &mut findings));
        findings.finish(HostDeploy {
            volume_work_dir: root.resolve(&raw.volume_work_dir),
            volume_dataset_dir: root.resolve(&raw.volume_dataset_dir),
            volume_backup_dir: root.resolve(&raw.volume_backup_dir),
            users_config_yaml: root.resolve(&raw.users_config_yaml),
            capability_config_yaml: root.resolve(&raw.capability_config_yaml),
            images,
            mail,
            root: root.clone(),
            written_work_dir: raw.volume_work_dir,
            written_dataset_dir: raw.volume_dataset_dir,
            written_backup_dir: raw.volume_backup_dir,
        })
    }

    /// A path from a configuration file: relative ones are relative to the root.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.root.resolve(path)
    }

    /// A new user's work, dataset and backup folders as the original writes them in
    /// `users_config.yaml`: this file's paths as written, with the user id appended.
    pub fn new_user_folders(&self, user: &str) -> (PathBuf, PathBuf, PathBuf) {
        (self.written_work_dir.join(user), self.written_dataset_dir.clone(), self.written_backup_dir.join(user))
    }

    pub fn default_image(&self) -> &str {
        self.images.first().map(String::as_str).unwrap_or_default()
    }
}
