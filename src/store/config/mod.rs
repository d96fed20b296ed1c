//! The configuration under `cfg/`: one module per file, and [`Config`], which loads them all.

pub mod backup_list;
pub mod capability;
pub mod capability_edit;
pub mod containers;
pub mod expression;
pub mod host_deploy;
pub mod login;
pub mod mail;
pub mod user_extras;
pub mod users;
pub mod yaml;
pub mod yaml_scalar;

use std::path::Path;

pub use capability::{CapabilityConfig, HostMax};
pub use containers::ContainerSettings;
pub use host_deploy::HostDeploy;
pub use login::LoginSettings;
pub use users::{UserEntry, UsersConfig};

use crate::error::{FileProblem, FileProblems, Severity};
use crate::model::{UserId, UserLimits};
use crate::store::lock::LockHeld;
use crate::store::root::Root;

/// Everything under `cfg/` that a binary needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub deploy: HostDeploy,
    pub capability: CapabilityConfig,
    pub users: UsersConfig,
    /// `cfg/containers.yaml` (defaults when it is missing).
    pub containers: ContainerSettings,
    /// `cfg/login.yaml` (defaults when it is missing).
    pub login: LoginSettings,
    /// Findings that do not stop anything (shown by `enroll check`).
    pub warnings: Vec<FileProblem>,
}

impl Config {
    /// Loads the files under `cfg/`; any error stops the load, and the error lists every problem found.
    pub fn load(lock: &impl LockHeld) -> anyhow::Result<Config> {
        let (config, problems) = Self::load_collecting(lock);
        match config {
            Some(config) => Ok(config),
            None => {
                Err(FileProblems(problems.into_iter().filter(|problem| problem.severity == Severity::Error).collect())
                    .into())
            }
        }
    }

    /// Loads what can be loaded and returns every problem met on the way.
    pub fn load_collecting(lock: &impl LockHeld) -> (Option<Config>, Vec<FileProblem>) {
        let root = lock.root();
        let mut problems = Vec::new();
        let deploy_path = root.host_deploy_path();
        let shown = root.display(&deploy_path);
        let deploy_text = read_text(&deploy_path, &shown);
        let deploy =
            deploy_text.clone().and_then(|text| HostDeploy::parse(root, &shown, &text)).map(|(deploy, warnings)| {
                problems.extend(warnings);
                deploy
            });
        let deploy_text = deploy_text.unwrap_or_default();
        // A file that cannot be read is named where host_deploy.yaml points at it.
        let where_set = |field: &str, found: Vec<FileProblem>| -> Vec<FileProblem> {
            let line = crate::store::yaml_lines::line_of_key(&deploy_text, &[field]);
            let place = match line {
                Some(line) => format!("{shown}:{line}"),
                None => shown.clone(),
            };
            found
                .into_iter()
                .map(|mut problem| {
                    // Said first: what follows may quote a path as long as the setting.
                    if problem.line.is_none()
                        && let Some(rest) = problem.message.strip_prefix("cannot read")
                    {
                        problem.message = format!("cannot read (the path is set by {field} in {place}){rest}");
                    }
                    problem
                })
                .collect()
        };
        let deploy = match deploy {
            Ok(deploy) => deploy,
            Err(found) => {
                problems.extend(found);
                return (None, problems);
            }
        };

        let capability_shown = root.display(&deploy.capability_config_yaml);
        let capability = read_text(&deploy.capability_config_yaml, &capability_shown)
            .map_err(|found| where_set("capability_config_yaml", found))
            .and_then(|text| CapabilityConfig::parse(&capability_shown, &text));
        let users_shown = root.display(&deploy.users_config_yaml);
        let users = UsersConfig::load(lock, &deploy.users_config_yaml, &users_shown)
            .map_err(|found| where_set("users_config_yaml", found));

        let containers_path = root.cfg_dir().join(containers::FILE_NAME);
        let containers = ContainerSettings::load(&containers_path, &root.display(&containers_path));
        let login_path = root.login_settings_path();
        let login = LoginSettings::load(&login_path, &root.display(&login_path));

        let capability = keep(capability, &mut problems);
        let users = keep(users, &mut problems);
        let containers = keep(containers, &mut problems);
        let login = keep(login, &mut problems);
        match (capability, users, containers, login) {
            (Some(capability), Some(users), Some(containers), Some(login)) => {
                let warnings = problems.clone();
                (Some(Config { deploy, capability, users, containers, login, warnings }), problems)
            }
            _ => (None, problems),
        }
    }

    /// The text of every file [`Config::load`] read to make this configuration, read again
    /// now the way the load reads each (`None`: a file that may be missing and is): if no text
    /// changed, neither did the configuration.
    pub fn source_texts(&self, root: &Root) -> Result<Vec<Option<String>>, FileProblem> {
        use crate::store::{state_folder, text_file};
        let users = &self.deploy.users_config_yaml;
        Ok(vec![
            text_file::read_config(&root.host_deploy_path(), "")?,
            text_file::read_config(&self.deploy.capability_config_yaml, "")?,
            // The booking account's folder: never through a link, as the load reads them.
            state_folder::read_config(users, "")?,
            state_folder::read_config(&user_extras::path_for(users), "")?,
            text_file::read_config(&root.cfg_dir().join(containers::FILE_NAME), "")?,
            text_file::read_config(&root.login_settings_path(), "")?,
        ])
    }

    /// The user's limits, or `None` when they are not allowed to book.
    pub fn limits_for(&self, user: &UserId) -> Option<UserLimits> {
        self.capability.is_allowed(user).then(|| self.capability.limits_for(user))
    }
}

/// The value of a parsed file, its warnings and errors added to `problems`.
fn keep<T>(result: yaml::Parsed<T>, problems: &mut Vec<FileProblem>) -> Option<T> {
    match result {
        Ok((value, warnings)) => {
            problems.extend(warnings);
            Some(value)
        }
        Err(found) => {
            problems.extend(found);
            None
        }
    }
}

/// Reads a whole configuration file (see [`crate::store::text_file::read_config`]), or says which
/// file could not be read and why.
pub fn read_text(path: &Path, shown_path: &str) -> Result<String, Vec<FileProblem>> {
    match crate::store::text_file::read_config(path, shown_path) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => Err(vec![FileProblem::error(shown_path, None, "", "cannot read: there is no such file")]),
        Err(problem) => Err(vec![problem]),
    }
}
