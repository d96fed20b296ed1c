//! The end of a container: stopped, its `backup.yaml` paths saved into the user's backup
//! folder, removed.

use std::time::Duration;

use super::{Actor, Outcome};
use crate::docker::Containers;
use crate::model::UserId;
use crate::monitor::backup;
use crate::store::config::Config;
use crate::store::monitor_log::MonitorLog;

/// How long saving one container's `backup.yaml` paths may take.
const SAVE_DEADLINE: Duration = Duration::from_secs(6 * 60);

/// How many bytes of saved files a user may have copied out or in: their backup quota,
/// else a cap that keeps one user from filling the host's disk.
pub(super) fn backup_byte_limit(config: &Config, user: &UserId) -> u64 {
    const WITHOUT_QUOTA_GB: f64 = 100.0;
    let gigabytes = config.capability.limits_for(user).backup_space.unwrap_or(WITHOUT_QUOTA_GB);
    (gigabytes.clamp(0.0, 1e6) * 1e9) as u64
}

impl<C: Containers> Actor<'_, C> {
    /// Stops, saves and removes the user's container (known to be ours). `Retry` when the
    /// engine failed: the booking stays in `using.csv`.
    pub(super) async fn save_and_remove(&self, user: &UserId, log: &mut MonitorLog) -> Outcome {
        let name = user.as_str();
        // Stopped before anything is copied out: nothing in the container runs while its files
        // are saved, so nothing can race the copy. Saved before the container is removed: a
        // pass killed in between finds it stopped and saves it then.
        if let Err(error) = self.containers.stop(name).await {
            log.error(
                "DockerError",
                &format!("{error:#}; {name}'s booking stays in using.csv and the next pass retries"),
            );
            return Outcome::Retry;
        }
        // The save has one deadline: past it, what was not copied keeps its previous copy, and
        // the container still goes, so the next booking is not held up.
        if tokio::time::timeout(SAVE_DEADLINE, self.save_backup(user, log)).await.is_err() {
            log.warning(
                "BackupWarning",
                &format!(
                    "{name}: saving took longer than {} minutes; paths not saved by then keep their previous copy",
                    SAVE_DEADLINE.as_secs() / 60
                ),
            );
        }
        if let Err(error) = self.containers.remove(name).await {
            log.error(
                "DockerError",
                &format!("{error:#}; {name}'s booking stays in using.csv and the next pass retries"),
            );
            return Outcome::Retry;
        }
        log.info(&format!("{name}'s container was backed up, stopped and removed"));
        Outcome::Done
    }

    /// Copies each `backup.yaml` path out of the (stopped) container into a private staging
    /// folder, then into the backup folder through directory handles.
    async fn save_backup(&self, user: &UserId, log: &mut MonitorLog) {
        let Some(entry) = self.config.users.get(user) else {
            log.warning("BackupWarning", &format!("{user} has no entry in users_config.yaml; nothing was saved"));
            return;
        };
        let folders = match self.user_folders(user, entry) {
            Ok(folders) => folders,
            Err(error) => {
                log.warning("BackupWarning", &format!("{user}: {error:#}; nothing was saved"));
                return;
            }
        };
        let (list, problems) = backup::load_list(self.root, &folders.backup);
        for problem in problems {
            log.warning("BackupPathWarning", &format!("{user}: {problem}"));
        }
        if list.entries.is_empty() {
            return;
        }
        // Not in the backup folder: the user must not see, or swap, a half-made copy.
        let staging = match tempfile::Builder::new().prefix("gpu-booking-save-").tempdir() {
            Ok(staging) => staging,
            Err(error) => {
                log.warning(
                    "BackupWarning",
                    &format!("{user}: cannot create a staging folder: {error}; nothing was saved"),
                );
                return;
            }
        };
        let mut budget = backup_byte_limit(self.config, user);
        for (index, entry) in list.entries.iter().enumerate() {
            let archive = staging.path().join(format!("{index}.tar"));
            let saved = match self.containers.copy_out(user.as_str(), &entry.container_path, &archive, budget).await {
                Ok(false) => continue,
                // Unpacking may be long: off the runtime's thread, so other users' work goes on.
                Ok(true) => match folders.backup.duplicate() {
                    Ok(backup_folder) => {
                        let (entry, archive) = (entry.clone(), archive.clone());
                        tokio::task::spawn_blocking(move || {
                            backup::install_archive(&backup_folder, &entry, &archive, budget)
                        })
                        .await
                        .unwrap_or_else(|error| Err(anyhow::anyhow!("the save stopped: {error}")))
                    }
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
            // What was streamed counts, saved or not: one oversized path must not be copied
            // again and again under other names.
            let streamed = std::fs::metadata(&archive).map(|metadata| metadata.len()).unwrap_or(0);
            budget = budget.saturating_sub(streamed);
            match saved {
                Ok(installed) => {
                    if !installed.skipped.is_empty() {
                        let shown: Vec<&str> = installed.skipped.iter().take(5).map(String::as_str).collect();
                        log.warning(
                            "BackupWarning",
                            &format!(
                                "{user}: {}: {} item(s) kept out of the saved copy, such as {}",
                                entry.container_path,
                                installed.skipped.len(),
                                shown.join("; ")
                            ),
                        );
                    }
                }
                Err(error) => {
                    log.warning("BackupWarning", &format!("{user}: {} was not saved: {error:#}", entry.container_path))
                }
            }
            let _ = std::fs::remove_file(&archive);
        }
    }
}
