//! Making a booking's container: the user's folders checked and made, the quotas checked,
//! the saved files restored, the container created and started, and a container an
//! interrupted pass left taken over. Shared by the monitor and `run-container`.

use anyhow::{Context, Result};

use super::save::backup_byte_limit;
use super::{Actor, Outcome};
use crate::docker::spec::{self, ContainerSpec, SpecInputs};
use crate::docker::{Containers, Started, image_unavailable, is_name_taken};
use crate::model::{Booking, UserId, format_gpu_list};
use crate::monitor::backup;
use crate::monitor::plan::{self, Observed};
use crate::store::config::{Config, UserEntry};
use crate::store::monitor_log::MonitorLog;
use crate::store::notices::Refusal;
use crate::volumes::UserFolders;
use crate::volumes::space::{self, Measured};

/// A booking's container, prepared on the host: the user's folders checked (inside their
/// parents, reached without a link, on a nosuid,nodev mount) and made if missing, and the
/// specification.
pub struct Prepared {
    pub spec: ContainerSpec,
    folders: UserFolders,
}

/// The specification [`Actor::prepare`] would give, from the configured folders, without
/// touching anything (for `run-container --dry-run`).
pub fn planned_spec(config: &Config, booking: &Booking, label: &str) -> Result<ContainerSpec> {
    let user = &booking.user_id;
    let entry = config.users.get(user).with_context(|| format!("{user} has no entry in users_config.yaml"))?;
    let deploy = &config.deploy;
    let normal = |path: std::path::PathBuf| crate::safe_folder::lexically_normal(&path);
    let folders = (
        normal(entry.work_dir(deploy, user)),
        normal(entry.backup_dir(deploy, user)),
        normal(entry.dataset_dir(deploy)),
    );
    let inputs = SpecInputs { config, root_label: label.to_string(), user, entry, folders };
    Ok(spec::build(booking, &inputs))
}

impl<C: Containers> Actor<'_, C> {
    /// The user's folders, made if missing: the one place the monitor makes them.
    pub(super) fn user_folders(&self, user: &UserId, entry: &UserEntry) -> Result<UserFolders> {
        UserFolders::open(self.root, self.config, user, entry, true)
    }

    pub fn prepare(&self, booking: &Booking) -> Result<Prepared> {
        let user = &booking.user_id;
        let entry = self.config.users.get(user).with_context(|| format!("{user} has no entry in users_config.yaml"))?;
        let folders = self.user_folders(user, entry)?;
        (self.check_mounts)(&folders)?;
        let inputs = SpecInputs {
            config: self.config,
            root_label: self.label.clone(),
            user,
            entry,
            folders: folders.mount_sources(),
        };
        Ok(Prepared { spec: spec::build(booking, &inputs), folders })
    }

    /// Makes a booking's container that the engine does not hold. `Done` when it runs (also
    /// when a killed pass's creation is taken over); otherwise why not, for the student's mail.
    pub(super) async fn create(&self, booking: &Booking, log: &mut MonitorLog) -> Outcome {
        let name = booking.user_id.as_str();
        let Some(entry) = self.config.users.get(&booking.user_id) else {
            log.error("UserError", &format!("{name} has no entry in users_config.yaml; the booking was not started"));
            return Outcome::Refused(Refusal::Setup, "you have no settings on this host".into());
        };
        let prepared = match self.prepare(booking) {
            Ok(prepared) => prepared,
            Err(error) => {
                log.error(
                    "VolumeError",
                    &format!("{error:#}; {name}'s booking was not started, it stays in booking.csv"),
                );
                return Outcome::Refused(Refusal::Setup, "your folders could not be prepared".into());
            }
        };
        if let Err(over) = self.within_quota(&booking.user_id, entry, log).await {
            return Outcome::Refused(Refusal::Quota, over);
        }
        let mut launched = self.launch(&prepared, log).await;
        if launched.as_ref().is_err_and(is_name_taken) {
            // A pass killed just after asking the engine for this container: the engine made it
            // after that pass had gone, and after this one looked. Taken over, or made again,
            // like any container an interrupted pass left.
            let waited = self.containers.wait_for_container(name).await;
            if let Observed::Ours { running, this_booking: true } =
                plan::observe(waited, &self.label, Some(booking.start))
            {
                match self.resume(name, running, log).await {
                    Some(true) => return Outcome::Done,
                    Some(false) => {
                        return Outcome::Refused(Refusal::Docker, "its container could not be started again".into());
                    }
                    None => launched = self.launch(&prepared, log).await,
                }
            }
        }
        match launched {
            Ok(_) => {
                log.info(&format!(
                    "{name} is successfully run the container (port {}, GPUs {})",
                    booking.forward_port,
                    format_gpu_list(&booking.gpus)
                ));
                Outcome::Done
            }
            Err(error) => {
                log.error("StartError", &format!("{name}'s container did not start: {error:#}; the booking stays in booking.csv and the next pass retries"));
                match image_unavailable(&error) {
                    Some(unavailable) => Outcome::Refused(Refusal::Image, unavailable.to_string()),
                    None => Outcome::Refused(Refusal::Docker, format!("{error:#}")),
                }
            }
        }
    }

    /// Takes over a container this booking already has. `Some(true)` when it runs now,
    /// `Some(false)` when it could not be started, `None` when it was removed to be made again
    /// (it never received its setup files: a pass was killed between creating and starting it).
    pub(super) async fn resume(&self, name: &str, running: bool, log: &mut MonitorLog) -> Option<bool> {
        match self.containers.has_setup_files(name).await {
            Ok(true) if running => {
                log.info(&format!("{name}'s container was already running for this booking"));
                Some(true)
            }
            Ok(true) => match self.containers.start_existing(name).await {
                Ok(()) => {
                    log.info(&format!("{name}'s container for this booking was started again"));
                    Some(true)
                }
                Err(error) => {
                    log.error("StartError", &format!("{error:#}"));
                    Some(false)
                }
            },
            Ok(false) => match self.containers.stop_and_remove(name).await {
                Ok(()) => None,
                Err(error) => {
                    log.error("DockerError", &format!("{error:#}"));
                    Some(false)
                }
            },
            Err(error) => {
                log.error("DockerError", &format!("{error:#}"));
                Some(false)
            }
        }
    }

    /// `Err` with what is over when the user's folders are over their quotas.
    async fn within_quota(&self, user: &UserId, entry: &UserEntry, log: &mut MonitorLog) -> Result<(), String> {
        let mut over = Vec::new();
        for folder in space::measure_all(space::quota_folders(self.config, user, entry), false).await {
            let (what, quota) = (folder.what, folder.quota_gb);
            match folder.measured {
                Measured::Within(_) => {}
                Measured::Over(size) => over.push(format!("the {what} {} (quota {quota}GB)", space::gigabytes(size))),
                Measured::Unknown(size) => log.warning(
                    "SpaceWarning",
                    &format!(
                        "{user}'s {what} holds at least {} and could not be measured in time; started anyway",
                        space::gigabytes(size)
                    ),
                ),
            }
        }
        if over.is_empty() {
            return Ok(());
        }
        log.warning(
            "SpaceWarning",
            &format!(
                "{user} is over-use {}; the container was not started, the next pass checks again",
                over.join(", and ")
            ),
        );
        Err(over.join(", and "))
    }

    /// Starts a prepared container with the user's saved files copied in. Problems with the
    /// saved files are logged; the container starts all the same.
    pub async fn launch(&self, prepared: &Prepared, log: &mut MonitorLog) -> Result<Started> {
        let name = prepared.spec.name.as_str();
        let user = UserId::parse(name).map_err(anyhow::Error::msg)?;
        let (list, problems) = backup::load_list(self.root, &prepared.folders.backup);
        for problem in problems {
            log.warning("BackupPathWarning", &format!("{name}: {problem}"));
        }
        let mut archive = None;
        if !list.entries.is_empty() {
            let limit = backup_byte_limit(self.config, &user);
            let made = match prepared.folders.backup.duplicate() {
                Ok(backup_folder) => tokio::task::spawn_blocking(move || {
                    let file = tempfile::Builder::new()
                        .prefix("gpu-booking-restore-")
                        .tempfile()
                        .context("cannot create a staging file")?;
                    let restored = backup::restore_archive(&backup_folder, &list, limit, file.as_file())?;
                    Ok((file, restored))
                })
                .await
                .unwrap_or_else(|error| Err(anyhow::anyhow!("the restore stopped: {error}"))),
                Err(error) => Err(error),
            };
            match made {
                Ok((file, restored)) => {
                    for warning in restored.warnings {
                        log.warning("BackupPathWarning", &format!("{name}: {warning}"));
                    }
                    if !restored.entries.is_empty() {
                        archive = Some(file);
                    }
                }
                Err(error) => {
                    log.warning("BackupWarning", &format!("{name}: the saved files were not restored: {error:#}"))
                }
            }
        }
        let restore = archive.as_ref().map(|file| file.path());
        let started = self.containers.start_booking_container(&prepared.spec, restore, self.progress).await?;
        if let Some(refusal) = &started.layer_not_limited {
            log.warning(
                "StorageWarning",
                &format!(
                    "{name}'s container file system is not limited to {} GB: the storage driver refused ({refusal}); \
                     Docker limits it only on overlay2 over xfs mounted with pquota",
                    prepared.spec.writable_layer_gb.unwrap_or_default()
                ),
            );
        }
        if let Some(problem) = &started.restore_problem {
            log.warning("BackupWarning", &format!("{name}: the saved files were not restored: {problem}"));
        }
        if !started.missing.is_empty() {
            log.warning(
                "ImageWarning",
                &format!(
                    "{name}'s image {} lacks {}: the container runs, but logging in by SSH may not work",
                    prepared.spec.image,
                    started.missing.join(" and ")
                ),
            );
        }
        Ok(started)
    }
}
