//! The monitor pass: bring the Docker engine in line with the schedule.
//!
//! 1. Under the lock: read the state and the requests in `jobs/monitor_exec`, plan.
//! 2. Without the lock (so `book` never waits on Docker): back up, stop and remove the
//!    containers of ended bookings; check quotas and start the containers of bookings that
//!    began; restart on request; reconcile (a running booking without its container gets
//!    it back; a container of ours without a booking is stopped); GPU checks.
//! 3. Under the lock again, on freshly read state: record what succeeded and remove the
//!    requests served, as one change through [`crate::store::journal`], so a pass killed at any
//!    moment and run again converges: each booking in exactly one file, no row twice, no
//!    request lost.
//!
//! Anything that fails is logged and its row stays where it was, for the next pass.

pub mod backup;
pub mod notify;
pub mod plan;
pub mod space;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::NaiveDateTime;

use crate::booking::State;
use crate::container_spec::{self, ContainerSpec, LABEL_START, SpecInputs};
use crate::docker::{Engine, Started};
use crate::gpu::{self, GpuInfo};
use crate::model::{Booking, UserId, format_time};
use crate::store::config::Config;
use crate::store::lock::ExclusiveLock;
use crate::store::monitor_exec::{self, Request};
use crate::store::monitor_log::MonitorLog;
use crate::store::notices::Refusal;
use crate::store::root::Root;
use crate::store::schedule::{self, ActiveFile};
use crate::volumes::UserFolders;
use plan::{Plan, same_booking};
use space::Measured;

/// How long the quota walk of one folder may take.
const SPACE_WALK_LIMIT: Duration = Duration::from_secs(20);
/// How many passes one run makes when requests keep arriving while it works.
const MAX_PASSES: usize = 3;

/// The label that tells this root's containers from another deployment's on the same engine.
pub fn root_label(root: &Root) -> String {
    root.dir().display().to_string()
}

pub struct PassOptions {
    pub now: NaiveDateTime,
    /// Print each log line to stdout.
    pub echo: bool,
    /// Draw a progress bar while pulling an image.
    pub progress: bool,
}

/// What a run did, for the binary's exit status.
#[derive(Debug, Default, PartialEq)]
pub struct PassSummary {
    pub started: usize,
    pub stopped: usize,
    pub missed: usize,
    pub errors: usize,
    pub warnings: usize,
}

/// The plan for `--dry-run`: nothing is changed, no engine is needed.
pub fn dry_run(root: &Root, now: NaiveDateTime) -> Result<Plan> {
    let lock = crate::store::lock::SharedLock::acquire(root)?;
    let state = State::load(&lock)?;
    Ok(plan::plan(now, &state.booked, &state.running))
}

/// Runs passes until no request arrived during the last one.
pub async fn run(root: &Root, options: &PassOptions, gpus: &dyn GpuInfo) -> Result<PassSummary> {
    let mut log = MonitorLog::new(root, options.now, options.echo);
    let engine = match Engine::connect().await {
        Ok(engine) => engine,
        Err(error) => {
            log.error("DockerError", &format!("{error:#}; every booking stays where it was, the next pass retries"));
            return Err(error);
        }
    };
    let mut summary = PassSummary::default();
    for _ in 0..MAX_PASSES {
        pass(root, options, &engine, gpus, &mut log, &mut summary).await?;
        let pending = monitor_exec::has_pending(&crate::store::lock::SharedLock::acquire(root)?)?;
        if !pending {
            break;
        }
    }
    summary.errors = log.errors;
    summary.warnings = log.warnings;
    Ok(summary)
}

async fn pass(
    root: &Root,
    options: &PassOptions,
    engine: &Engine,
    gpus: &dyn GpuInfo,
    log: &mut MonitorLog,
    summary: &mut PassSummary,
) -> Result<()> {
    let now = options.now;
    let label = root_label(root);
    let (state, requests, plan, told) = {
        let lock = ExclusiveLock::acquire(root)?;
        let state = match State::load(&lock) {
            Ok(state) => state,
            Err(error) => {
                log.error("ConfigError", &format!("{error:#}; nothing was started or stopped"));
                return Err(error);
            }
        };
        let requests = monitor_exec::read(&lock)?;
        for line in &requests.strangers {
            log.warning("RequestWarning", &format!("ignored the request {line:?} in jobs/monitor_exec"));
        }
        let plan = plan::plan(now, &state.booked, &state.running);
        let told = crate::store::notices::read(&lock);
        (state, requests, plan, told)
    };
    let config = &state.config;

    // Each user's containers are handled in a task of their own, all at once, each within a
    // deadline: one student's slow or hostile container never delays another's start or stop.
    let mut users: Vec<&UserId> =
        plan.ending.iter().chain(&plan.starting).chain(&plan.continuing).map(|booking| &booking.user_id).collect();
    users.extend(requests.requests.iter().filter_map(|request| match request {
        Request::Restart(user) => Some(user),
        _ => None,
    }));
    users.sort();
    users.dedup();
    let tasks = users.into_iter().map(|user| {
        let mut user_log = log.buffered();
        let label = label.as_str();
        let (plan, requests) = (&plan, &requests.requests);
        async move {
            let work = user_pass(root, config, engine, user, plan, requests, label, options.progress, &mut user_log);
            let outcome = match tokio::time::timeout(USER_DEADLINE, work).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    user_log.error(
                        "TimeoutError",
                        &format!(
                            "{user}'s containers took longer than {} minutes; what did not finish is retried at the next pass",
                            USER_DEADLINE.as_secs() / 60
                        ),
                    );
                    UserOutcome::default()
                }
            };
            (outcome, user_log)
        }
    });
    let mut ended_ok = Vec::new();
    let mut started_ok = Vec::new();
    let mut failed_restarts = Vec::new();
    let mut refused = Vec::new();
    for (outcome, user_log) in futures_util::future::join_all(tasks).await {
        log.absorb(user_log);
        ended_ok.extend(outcome.ended);
        started_ok.extend(outcome.started);
        failed_restarts.extend(outcome.failed_restarts);
        refused.extend(outcome.refused);
    }
    for booking in &plan.missed {
        log.warning(
            "MissedWarning",
            &format!(
                "{}'s booking from {} to {} passed while no pass ran; recorded as missed",
                booking.user_id,
                format_time(booking.start),
                format_time(booking.end)
            ),
        );
    }
    let mut running_now: Vec<Booking> = plan.continuing.clone();
    running_now.extend(started_ok.iter().cloned());
    // Banners, warnings and mail go out while the rest of the pass goes on; each is bounded.
    let due = notify_due(root, &state, &plan, &started_ok, &refused, told, now, log);
    let mut notice_log = log.buffered();
    let (told_now, ()) = tokio::join!(notify::deliver(root, config, engine, due, now, &mut notice_log), async {
        stop_orphans(root, config, engine, (&label, &running_now, &plan), log).await;
        check_gpus(engine, gpus, &running_now, log).await;
    });
    log.absorb(notice_log);

    record(
        root,
        now,
        &plan,
        Outcomes {
            ended_ok: &ended_ok,
            started_ok: &started_ok,
            requests: &requests,
            failed_restarts: &failed_restarts,
        },
        log,
    )?;
    if !told_now.is_empty() {
        notify::record(root, &told_now, log);
    }
    summary.started += started_ok.len();
    summary.stopped += ended_ok.len();
    summary.missed += plan.missed.len();
    Ok(())
}

/// How long one user's part of a pass may take: saving a large backup, pulling an image.
/// Well under the unit's `TimeoutStartSec` (20 minutes), so the pass records everyone's
/// outcome before systemd would stop it.
const USER_DEADLINE: Duration = Duration::from_secs(12 * 60);
/// How long saving one container's `backup.yaml` paths may take.
const SAVE_DEADLINE: Duration = Duration::from_secs(6 * 60);

/// What one user's part of a pass achieved.
#[derive(Default)]
struct UserOutcome {
    ended: Vec<Booking>,
    started: Vec<Booking>,
    failed_restarts: Vec<Request>,
    refused: Vec<notify::StartRefused>,
}

/// What the pass tells (see [`notify`]); without a readable `jobs/notices.csv` only the
/// banners, since nothing could tell what was told already.
#[allow(clippy::too_many_arguments)]
fn notify_due(
    root: &Root,
    state: &State,
    plan: &Plan,
    started: &[Booking],
    refused: &[notify::StartRefused],
    told: Result<Vec<crate::store::notices::Notice>>,
    now: NaiveDateTime,
    log: &mut MonitorLog,
) -> notify::Due {
    match told {
        Ok(told) => notify::due(root, state, plan, started, refused, &told, now),
        Err(error) => {
            log.warning("NoticeWarning", &format!("{error:#}; no warning or mail is given until it is fixed"));
            let mut due = notify::due(root, state, plan, started, refused, &[], now);
            due.mails.clear();
            due.containers.iter_mut().for_each(|notice| notice.warning = None);
            due
        }
    }
}

/// One user's part of a pass, in order: the ended booking is saved and stopped before the
/// next one starts (both use the container name), then the running one is reconciled and
/// restart requests served.
#[allow(clippy::too_many_arguments)]
async fn user_pass(
    root: &Root,
    config: &Config,
    engine: &Engine,
    user: &UserId,
    plan: &Plan,
    requests: &[Request],
    label: &str,
    progress: bool,
    log: &mut MonitorLog,
) -> UserOutcome {
    let mut outcome = UserOutcome::default();
    let mine = |bookings: &[Booking]| -> Vec<Booking> {
        bookings.iter().filter(|booking| &booking.user_id == user).cloned().collect()
    };
    for booking in mine(&plan.ending) {
        if stop_booking(root, config, engine, &booking, label, log).await {
            outcome.ended.push(booking);
        }
    }
    for booking in mine(&plan.starting) {
        match start_booking(root, config, engine, &booking, label, progress, log).await {
            Ok(()) => outcome.started.push(booking),
            Err((refusal, detail)) => outcome.refused.push(notify::StartRefused { booking, refusal, detail }),
        }
    }
    let continuing = mine(&plan.continuing);
    let restart_requested =
        requests.iter().any(|request| matches!(request, Request::Restart(requested) if requested == user));
    for booking in &continuing {
        reconcile_running(root, config, engine, booking, label, progress, restart_requested, log).await;
    }
    let mut running = continuing;
    running.extend(outcome.started.iter().cloned());
    for request in requests {
        if let Request::Restart(requested) = request
            && requested == user
            && !restart(engine, &running, user, label, log).await
        {
            outcome.failed_restarts.push(request.clone());
        }
    }
    outcome
}

/// Backs up, stops and removes an ended booking's container. `true` when the row may go to
/// the history (also when there was no container of ours to stop).
async fn stop_booking(
    root: &Root,
    config: &Config,
    engine: &Engine,
    booking: &Booking,
    label: &str,
    log: &mut MonitorLog,
) -> bool {
    stop_container_of(root, config, engine, &booking.user_id, label, log).await
}

/// Backs up, stops and removes the user's container (if it is ours). `true` when no
/// container of ours is left running for the user.
pub async fn stop_container_of(
    root: &Root,
    config: &Config,
    engine: &Engine,
    user: &UserId,
    label: &str,
    log: &mut MonitorLog,
) -> bool {
    let name = user.as_str();
    match engine.container(name).await {
        Err(error) => {
            log.error("DockerError", &format!("{error:#}"));
            return false;
        }
        Ok(None) => {
            log.warning(
                "ContainerWarning",
                &format!("{name}'s container was already gone when the booking ended; nothing to back up"),
            );
            return true;
        }
        Ok(Some(container)) if !container.is_ours(label) => {
            log.error(
                "ForeignContainerError",
                &format!("a container named {name} exists but was not started by gpu-booking; it was not touched"),
            );
            return true;
        }
        Ok(Some(_)) => {}
    }
    // Stopped before anything is copied out: nothing in the container runs while its files
    // are saved, so nothing can race the copy. Saved before the container is removed: a
    // pass killed in between finds it stopped and saves it then.
    if let Err(error) = engine.stop(name).await {
        log.error("DockerError", &format!("{error:#}; {name}'s booking stays in using.csv and the next pass retries"));
        return false;
    }
    // The save has one deadline: past it, what was not copied keeps its previous copy, and
    // the container still goes, so the next booking is not held up.
    if tokio::time::timeout(SAVE_DEADLINE, save_backup(root, config, engine, user, log)).await.is_err() {
        log.warning(
            "BackupWarning",
            &format!(
                "{name}: saving took longer than {} minutes; paths not saved by then keep their previous copy",
                SAVE_DEADLINE.as_secs() / 60
            ),
        );
    }
    if let Err(error) = engine.remove(name).await {
        log.error("DockerError", &format!("{error:#}; {name}'s booking stays in using.csv and the next pass retries"));
        return false;
    }
    log.info(&format!("{name}'s container was backed up, stopped and removed"));
    true
}

/// How many bytes of saved files a user may have copied out or in: their backup quota,
/// else a cap that keeps one user from filling the host's disk.
fn backup_byte_limit(config: &Config, user: &UserId) -> u64 {
    const WITHOUT_QUOTA_GB: f64 = 100.0;
    let gigabytes = config.capability.limits_for(user).backup_space.unwrap_or(WITHOUT_QUOTA_GB);
    (gigabytes.clamp(0.0, 1e6) * 1e9) as u64
}

/// Copies each `backup.yaml` path out of the (stopped) container into a private staging
/// folder, then into the backup folder through directory handles.
async fn save_backup(root: &Root, config: &Config, engine: &Engine, user: &UserId, log: &mut MonitorLog) {
    let Some(entry) = config.users.get(user) else {
        log.warning("BackupWarning", &format!("{user} has no entry in users_config.yaml; nothing was saved"));
        return;
    };
    let folders = match UserFolders::open(root, config, user, entry, true) {
        Ok(folders) => folders,
        Err(error) => {
            log.warning("BackupWarning", &format!("{user}: {error:#}; nothing was saved"));
            return;
        }
    };
    let (list, problems) = backup::load_list(root, &folders.backup);
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
    let mut budget = backup_byte_limit(config, user);
    for (index, entry) in list.entries.iter().enumerate() {
        let archive = staging.path().join(format!("{index}.tar"));
        let saved = match engine.copy_out(user.as_str(), &entry.container_path, &archive, budget).await {
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

/// A booking's container, prepared on the host: the user's folders checked (inside their
/// parents, reached without a link, on a nosuid,nodev mount) and made if missing, and the
/// specification. Shared by the monitor and `run-container`.
pub struct Prepared {
    pub spec: ContainerSpec,
    folders: UserFolders,
}

pub fn prepare(root: &Root, config: &Config, booking: &Booking, label: &str) -> Result<Prepared> {
    let user = &booking.user_id;
    let entry = config.users.get(user).with_context(|| format!("{user} has no entry in users_config.yaml"))?;
    let folders = UserFolders::open(root, config, user, entry, true)?;
    folders.check_mount_options()?;
    let inputs = SpecInputs { config, root_label: label.to_string(), user, entry, folders: folders.mount_sources() };
    Ok(Prepared { spec: container_spec::build(booking, &inputs), folders })
}

/// The specification `prepare` would give, from the configured folders, without touching
/// anything (for `run-container --dry-run`).
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
    Ok(container_spec::build(booking, &inputs))
}

/// Starts a prepared container with the user's saved files copied in. Problems with the
/// saved files are logged; the container starts all the same.
pub async fn launch(
    root: &Root,
    config: &Config,
    engine: &Engine,
    prepared: &Prepared,
    progress: bool,
    log: &mut MonitorLog,
) -> Result<Started> {
    let name = prepared.spec.name.as_str();
    let user = UserId::parse(name).map_err(anyhow::Error::msg)?;
    let (list, problems) = backup::load_list(root, &prepared.folders.backup);
    for problem in problems {
        log.warning("BackupPathWarning", &format!("{name}: {problem}"));
    }
    let mut archive = None;
    if !list.entries.is_empty() {
        let limit = backup_byte_limit(config, &user);
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
    let started =
        engine.start_booking_container(&prepared.spec, archive.as_ref().map(|file| file.path()), progress).await?;
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

/// Starts a booking's container. `Ok` when it runs (started now, or found already running
/// for this booking after an interrupted pass); otherwise why not, for the student's mail.
async fn start_booking(
    root: &Root,
    config: &Config,
    engine: &Engine,
    booking: &Booking,
    label: &str,
    progress: bool,
    log: &mut MonitorLog,
) -> Result<(), (Refusal, String)> {
    let name = booking.user_id.as_str();
    match engine.container(name).await {
        Err(error) => {
            log.error("DockerError", &format!("{error:#}"));
            return Err((Refusal::Docker, "the Docker engine did not answer".into()));
        }
        Ok(Some(container)) if !container.is_ours(label) => {
            log.error("ForeignContainerError", &format!("a container named {name} exists but was not started by gpu-booking; {name}'s booking was not started"));
            return Err((Refusal::Setup, format!("another container is named {name}")));
        }
        Ok(Some(container)) if container.labels.get(LABEL_START) == Some(&format_time(booking.start)) => {
            // This booking's container, left by an interrupted pass: keep it if it was fully
            // set up, else make it again.
            if let Some(kept) = resume(engine, name, container.running, log).await {
                return if kept {
                    Ok(())
                } else {
                    Err((Refusal::Docker, "its container could not be started again".into()))
                };
            }
        }
        Ok(Some(_)) => {
            // An earlier booking's container that was not stopped: make way.
            if let Err(error) = engine.stop_and_remove(name).await {
                log.error("DockerError", &format!("{error:#}"));
                return Err((Refusal::Docker, "the previous container could not be removed".into()));
            }
        }
        Ok(None) => {}
    }
    let Some(entry) = config.users.get(&booking.user_id) else {
        log.error("UserError", &format!("{name} has no entry in users_config.yaml; the booking was not started"));
        return Err((Refusal::Setup, "you have no settings on this host".into()));
    };
    let prepared = match prepare(root, config, booking, label) {
        Ok(prepared) => prepared,
        Err(error) => {
            log.error("VolumeError", &format!("{error:#}; {name}'s booking was not started, it stays in booking.csv"));
            return Err((Refusal::Setup, "your folders could not be prepared".into()));
        }
    };
    if let Err(over) = within_quota(config, &booking.user_id, entry, log).await {
        return Err((Refusal::Quota, over));
    }
    let mut launched = launch(root, config, engine, &prepared, progress, log).await;
    if launched.as_ref().is_err_and(crate::docker::is_name_taken) {
        // A pass killed just after asking the engine for this container: the engine made it
        // after that pass had gone, and after this one looked. Taken over, or made again,
        // like any container an interrupted pass left.
        if let Ok(Some(container)) = engine.wait_for_container(name).await
            && container.is_ours(label)
            && container.labels.get(LABEL_START) == Some(&format_time(booking.start))
        {
            match resume(engine, name, container.running, log).await {
                Some(true) => return Ok(()),
                Some(false) => return Err((Refusal::Docker, "its container could not be started again".into())),
                None => launched = launch(root, config, engine, &prepared, progress, log).await,
            }
        }
    }
    match launched {
        Ok(_) => {
            log.info(&format!(
                "{name} is successfully run the container (port {}, GPUs {})",
                booking.forward_port,
                crate::model::format_gpu_list(&booking.gpus)
            ));
            Ok(())
        }
        Err(error) => {
            log.error("StartError", &format!("{name}'s container did not start: {error:#}; the booking stays in booking.csv and the next pass retries"));
            match error.chain().find_map(|cause| cause.downcast_ref::<crate::docker::ImageUnavailable>()) {
                Some(unavailable) => Err((Refusal::Image, unavailable.to_string())),
                None => Err((Refusal::Docker, format!("{error:#}"))),
            }
        }
    }
}

/// Takes over a container this booking already has. `Some(true)` when it runs now,
/// `Some(false)` when it could not be started, `None` when it was removed to be made again
/// (it never received its setup files: a pass was killed between creating and starting it).
async fn resume(engine: &Engine, name: &str, running: bool, log: &mut MonitorLog) -> Option<bool> {
    match engine.has_setup_files(name).await {
        Ok(true) if running => {
            log.info(&format!("{name}'s container was already running for this booking"));
            Some(true)
        }
        Ok(true) => match engine.start_existing(name).await {
            Ok(()) => {
                log.info(&format!("{name}'s container for this booking was started again"));
                Some(true)
            }
            Err(error) => {
                log.error("StartError", &format!("{error:#}"));
                Some(false)
            }
        },
        Ok(false) => match engine.stop_and_remove(name).await {
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

/// The user's work and backup folders with their parents and quotas (GB).
fn quota_folders(
    config: &Config,
    user: &UserId,
    entry: &crate::store::config::UserEntry,
) -> Vec<(&'static str, PathBuf, PathBuf, f64)> {
    let limits = config.capability.limits_for(user);
    let deploy = &config.deploy;
    [
        ("work_dir", deploy.volume_work_dir.clone(), entry.work_dir(deploy, user), limits.work_space),
        ("backup_dir", deploy.volume_backup_dir.clone(), entry.backup_dir(deploy, user), limits.backup_space),
    ]
    .into_iter()
    .filter_map(|(what, parent, folder, quota)| Some((what, parent, folder, quota?.clamp(0.0, 1e6))))
    .collect()
}

/// `Err` with what is over when the user's folders are over their quotas.
async fn within_quota(
    config: &Config,
    user: &UserId,
    entry: &crate::store::config::UserEntry,
    log: &mut MonitorLog,
) -> Result<(), String> {
    let mut over = Vec::new();
    for (what, parent, folder, quota) in quota_folders(config, user, entry) {
        let quota_bytes = (quota * 1e9) as u64;
        match space::measure_beneath(parent, folder, quota_bytes, SPACE_WALK_LIMIT).await {
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

#[allow(clippy::too_many_arguments)]
async fn reconcile_running(
    root: &Root,
    config: &Config,
    engine: &Engine,
    booking: &Booking,
    label: &str,
    progress: bool,
    restart_requested: bool,
    log: &mut MonitorLog,
) {
    let name = booking.user_id.as_str();
    match engine.container(name).await {
        Ok(Some(container)) if container.is_ours(label) && container.running => {
            enforce_quota_while_running(config, engine, booking, log).await
        }
        Ok(Some(container))
            if container.is_ours(label) && container.labels.get(LABEL_START) == Some(&format_time(booking.start)) =>
        {
            // Stopped for its quota: it stays stopped until the student asks for a restart.
            let (over, past_grace) = quota_overrun(config, booking).await;
            if past_grace && !restart_requested {
                log.warning(
                    "SpaceWarning",
                    &format!(
                        "{name} is over-use {}; the container stays stopped until `book restart`",
                        over.join(", and ")
                    ),
                );
                return;
            }
            log.warning("ContainerWarning", &format!("{name}'s container had stopped; starting it again"));
            let _ = start_booking(root, config, engine, booking, label, progress, log).await;
        }
        Ok(Some(container)) if !container.is_ours(label) => {
            log.error(
                "ForeignContainerError",
                &format!("a container named {name} exists but was not started by gpu-booking; it was not touched"),
            );
        }
        Ok(_) => {
            log.warning(
                "ContainerWarning",
                &format!("{name}'s booking is running but its container is gone; starting it again"),
            );
            let _ = start_booking(root, config, engine, booking, label, progress, log).await;
        }
        Err(error) => log.error("DockerError", &format!("{error:#}")),
    }
}

/// What this host enforces on every booking's container, said plainly for `monitor status`.
pub async fn enforcement_report(config: &Config, engine: Option<&Engine>) -> Vec<String> {
    let deploy = &config.deploy;
    let settings = &config.containers;
    let mut lines = vec![
        "work and backup quotas: checked when a container starts and at every pass; a container past its quota \
         by the grace margin (a tenth, at least 1 GB) is stopped, files kept. Filesystem project quotas: not used"
            .to_string(),
        format!(
            "processes: at most {} per container; open files: {} per process; capabilities: {}; no-new-privileges",
            settings.pids_limit,
            settings.open_files_limit,
            container_spec::CAPABILITIES.join(", ")
        ),
        format!(
            "network: {} (containers cannot reach each other); SSH ports listen on {}",
            container_spec::NETWORK,
            settings.ssh_bind_address
        ),
    ];
    for (what, parent) in [("work", &deploy.volume_work_dir), ("backup", &deploy.volume_backup_dir)] {
        // A folder not made yet lands on the mount of its nearest existing parent.
        let existing = parent.ancestors().find(|folder| folder.is_dir()).unwrap_or(parent);
        let verdict =
            match crate::safe_folder::SafeFolder::open_trusted(existing).and_then(|folder| folder.is_nosuid_nodev()) {
                Ok(true) => "mounted nosuid,nodev".to_string(),
                Ok(false) => "NOT mounted nosuid,nodev: the monitor starts no container until it is".to_string(),
                Err(error) => format!("{error:#}"),
            };
        lines.push(format!("{what} folders ({}): {verdict}", parent.display()));
    }
    let asked = match settings.writable_layer_gb {
        Some(gb) => format!("{gb} GB asked in containers.yaml"),
        None => "no limit asked (writable_layer_gb in containers.yaml)".to_string(),
    };
    lines.push(match engine {
        Some(engine) => match engine.storage().await {
            Ok((driver, backing))
                if settings.writable_layer_gb.is_some() && driver == "overlay2" && backing == "xfs" =>
            {
                format!(
                    "container file system: {asked}; {driver} on {backing} limits it when xfs is mounted with pquota"
                )
            }
            Ok((driver, backing)) => format!(
                "container file system: not limited ({asked}; {driver} on {backing}, and Docker limits it only on \
                 overlay2 over xfs with pquota)"
            ),
            Err(error) => format!("container file system: unknown ({error:#})"),
        },
        None => "container file system: unknown (no Docker engine)".to_string(),
    });
    lines
}

/// How far past their quota a running booking's folders may grow before the container is
/// stopped: a tenth of the quota, at least 1 GB.
fn grace_bytes(quota_bytes: u64) -> u64 {
    (quota_bytes / 10).max(1_000_000_000)
}

/// How far over their quotas a running booking's folders are: what is over, and whether any
/// is past the grace margin.
async fn quota_overrun(config: &Config, booking: &Booking) -> (Vec<String>, bool) {
    let user = &booking.user_id;
    let Some(entry) = config.users.get(user) else { return (Vec::new(), false) };
    let mut over = Vec::new();
    let mut past_grace = false;
    for (what, parent, folder, quota) in quota_folders(config, user, entry) {
        let quota_bytes = (quota * 1e9) as u64;
        let stop_at = quota_bytes + grace_bytes(quota_bytes);
        match space::measure_beneath(parent, folder, stop_at, SPACE_WALK_LIMIT).await {
            Measured::Within(size) if size > quota_bytes => {
                over.push(format!("the {what} {} (quota {quota}GB)", space::gigabytes(size)))
            }
            Measured::Over(size) => {
                past_grace = true;
                over.push(format!("the {what} {} (quota {quota}GB)", space::gigabytes(size)));
            }
            _ => {}
        }
    }
    (over, past_grace)
}

/// The quotas hold during the booking, not only at its start: over quota is warned at every
/// pass; past the grace margin the container is stopped (files kept, booking still running),
/// and `book restart` starts it again until the next pass so the student can make room.
async fn enforce_quota_while_running(config: &Config, engine: &Engine, booking: &Booking, log: &mut MonitorLog) {
    let user = &booking.user_id;
    let (over, past_grace) = quota_overrun(config, booking).await;
    if over.is_empty() {
        return;
    }
    if !past_grace {
        log.warning(
            "SpaceWarning",
            &format!(
                "{user} is over-use {} while the booking runs; past the grace margin the container is stopped",
                over.join(", and ")
            ),
        );
        return;
    }
    match engine.stop(user.as_str()).await {
        Ok(()) => log.warning(
            "SpaceWarning",
            &format!(
                "{user} is over-use {} past the grace margin; the container was stopped with its files kept, \
                 and `book restart` starts it again until the next pass to make room",
                over.join(", and ")
            ),
        ),
        Err(error) => log.error("DockerError", &format!("{error:#}")),
    }
}

/// `false` when Docker failed, so the request should be tried again; a request from a user
/// with nothing running is answered (with a warning), not retried.
async fn restart(engine: &Engine, running: &[Booking], user: &UserId, label: &str, log: &mut MonitorLog) -> bool {
    if !running.iter().any(|booking| &booking.user_id == user) {
        log.warning("RestartWarning", &format!("{user} asked for a restart but has no running booking"));
        return true;
    }
    let name = user.as_str();
    match engine.container(name).await {
        Ok(Some(container)) if container.is_ours(label) => {}
        Ok(Some(_)) => {
            log.error(
                "ForeignContainerError",
                &format!("a container named {name} exists but was not started by gpu-booking; it was not restarted"),
            );
            return true;
        }
        Ok(None) => {
            log.warning("RestartWarning", &format!("{user} asked for a restart but has no container to restart"));
            return true;
        }
        Err(error) => {
            log.error("DockerError", &format!("{error:#}; the restart is tried again at the next pass"));
            return false;
        }
    }
    match engine.restart(name).await {
        Ok(()) => {
            log.info(&format!("{user}'s container was restarted on request"));
            true
        }
        Err(error) => {
            log.error("DockerError", &format!("{error:#}; the restart is tried again at the next pass"));
            false
        }
    }
}

/// Stops containers of ours that no running booking accounts for (a hand-deleted row, a
/// cancelled booking whose container had already started). Their `backup.yaml` paths are
/// saved first, as at the end of a booking: the student's files are not the row's fault.
/// All at once, each within the user deadline, like the users' own parts of the pass.
async fn stop_orphans(
    root: &Root,
    config: &Config,
    engine: &Engine,
    (label, running, plan): (&str, &[Booking], &Plan),
    log: &mut MonitorLog,
) {
    let ours = match engine.list_ours(label).await {
        Ok(ours) => ours,
        Err(error) => {
            log.error("DockerError", &format!("{error:#}"));
            return;
        }
    };
    let orphans = ours.into_iter().filter(|container| {
        let accounted = running.iter().chain(&plan.ending).any(|booking| booking.user_id.as_str() == container.name);
        !accounted && !container.labels.contains_key(container_spec::LABEL_MANUAL)
    });
    let tasks = orphans.map(|container| {
        let mut orphan_log = log.buffered();
        async move {
            let name = container.name;
            let stopped = match UserId::parse(&name) {
                Ok(user) => {
                    let work = stop_container_of(root, config, engine, &user, label, &mut orphan_log);
                    tokio::time::timeout(USER_DEADLINE, work).await.unwrap_or(false)
                }
                // Not a name `book` could have given; nothing of a user's to save.
                Err(_) => match engine.stop_and_remove(&name).await {
                    Ok(()) => true,
                    Err(error) => {
                        orphan_log.error("DockerError", &format!("{error:#}"));
                        false
                    }
                },
            };
            if stopped {
                orphan_log.warning(
                    "OrphanWarning",
                    &format!("container {name} had no running booking; its saved paths were kept and it was removed"),
                );
            } else {
                orphan_log.error(
                    "OrphanError",
                    &format!("container {name} has no running booking but could not be removed; the next pass retries"),
                );
            }
            orphan_log
        }
    });
    for orphan_log in futures_util::future::join_all(tasks).await {
        log.absorb(orphan_log);
    }
}

async fn check_gpus(engine: &Engine, gpus: &dyn GpuInfo, running: &[Booking], log: &mut MonitorLog) {
    for (index, booking) in running.iter().enumerate() {
        for other in &running[index + 1..] {
            let shared: Vec<String> =
                booking.gpus.iter().filter(|gpu| other.gpus.contains(gpu)).map(u32::to_string).collect();
            if !shared.is_empty() && booking.overlaps(other.start, other.end) {
                log.warning(
                    "GPUDuplicateWarning",
                    &format!(
                        "GPU {} is given to both {} and {} at once",
                        shared.join(", "),
                        booking.user_id,
                        other.user_id
                    ),
                );
            }
        }
    }
    if running.iter().all(|booking| booking.gpus.is_empty()) {
        return;
    }
    let devices = match gpus.devices() {
        Ok(devices) => devices,
        Err(error) => {
            log.info(&format!("{error:#}; GPU process checks skipped"));
            return;
        }
    };
    let mut containers = Vec::new();
    for booking in running {
        if let Ok(process_ids) = engine.process_ids(booking.user_id.as_str()).await {
            containers.push((booking.user_id.to_string(), booking.gpus.clone(), process_ids));
        }
    }
    for misuse in gpu::find_misuse(&devices, &containers) {
        log.warning(
            "GPUMisuseWarning",
            &format!(
                "process {} of {}'s container runs on GPU {}, which its booking was not given",
                misuse.process_id, misuse.container, misuse.gpu
            ),
        );
    }
}

/// What a pass achieved, to be recorded.
struct Outcomes<'a> {
    ended_ok: &'a [Booking],
    started_ok: &'a [Booking],
    /// The requests read at the start of the pass: served now, except `failed_restarts`.
    requests: &'a monitor_exec::Pending,
    failed_restarts: &'a [Request],
}

/// Writes the outcome under the lock, on freshly read state, as one change (see
/// [`crate::store::journal`]): the history, the running and booked rows and the requests served.
/// Failed restarts stay in `jobs/monitor_exec`; written while this pass runs, they do not set
/// off the path unit again (systemd does not watch the file while the service runs): this
/// run's next pass or the timer's takes them, so a Docker engine that keeps failing is not
/// hammered.
fn record(root: &Root, now: NaiveDateTime, plan: &Plan, outcomes: Outcomes<'_>, log: &mut MonitorLog) -> Result<()> {
    let Outcomes { ended_ok, started_ok, requests, failed_restarts } = outcomes;
    if ended_ok.is_empty() && started_ok.is_empty() && plan.missed.is_empty() && *requests == Default::default() {
        return Ok(());
    }
    let lock = ExclusiveLock::acquire(root)?;
    let booked = schedule::read(&lock, ActiveFile::Booking)?;
    let running = schedule::read(&lock, ActiveFile::Using)?;

    let (mut history, extended) = split_ended(&running, ended_ok, now);
    let missed_now: Vec<&Booking> =
        booked.iter().filter(|row| plan.missed.iter().any(|missed| same_booking(row, missed))).collect();
    // A missed booking used nothing: recorded with its end at its start (read as zero hours).
    history.extend(missed_now.iter().map(|row| Booking { end: row.start, ..(*row).clone() }));
    // A row already at the end of the history was written by a pass of an earlier release
    // that was killed before it rewrote `using.csv` (this release changes all files at once).
    let recent = schedule::recent_history(&lock).context("cannot read the end of used.csv")?;
    history.retain(|row| !recent.contains(row));
    schedule::ensure_files(&lock)?;

    let mut new_running: Vec<Booking> = running
        .into_iter()
        .filter(|row| !ended_ok.iter().any(|ended| same_booking(row, ended)) || extended.contains(row))
        .collect();
    let mut stale = Vec::new();
    for started in started_ok {
        match booked.iter().find(|row| same_booking(row, started)) {
            Some(row) if !new_running.iter().any(|running| same_booking(running, row)) => new_running.push(row.clone()),
            Some(_) => {}
            // Cancelled while its container was starting: the next pass stops the orphan.
            None => stale.push(started.user_id.to_string()),
        }
    }
    let new_booked: Vec<Booking> = booked
        .into_iter()
        .filter(|row| {
            !started_ok.iter().any(|started| same_booking(row, started))
                && !plan.missed.iter().any(|missed| same_booking(row, missed))
        })
        .collect();
    // What changed while this pass talked to Docker is put right by another pass at once (the
    // run goes on while `monitor_exec` holds a request): an extended booking gets its
    // container back, a cancelled one loses the container that just started.
    let again: &[Request] = if !extended.is_empty() || !stale.is_empty() { &[Request::Now] } else { &[] };
    let requests = monitor_exec::after_pass(&lock, requests, failed_restarts, again)?;
    schedule::commit(
        &lock,
        schedule::Change {
            booked: Some(&new_booked),
            running: Some(&new_running),
            history: &history,
            requests: Some(requests),
        },
    )?;
    drop(lock);
    for booking in &extended {
        log.warning(
            "ExtendWarning",
            &format!(
                "{}'s booking was extended to {} while its container was being stopped; it is started again now",
                booking.user_id,
                format_time(booking.end)
            ),
        );
    }
    for user in stale {
        log.warning(
            "OrphanWarning",
            &format!("{user}'s booking was cancelled while its container started; it is stopped now"),
        );
    }
    Ok(())
}

/// Of the running rows (read afresh under the lock) whose containers this pass stopped: those
/// that still end by `now` go to the history; those extended meanwhile (`book extend` does not
/// wait for the pass) stay running.
fn split_ended(running: &[Booking], ended_ok: &[Booking], now: NaiveDateTime) -> (Vec<Booking>, Vec<Booking>) {
    running
        .iter()
        .filter(|row| ended_ok.iter().any(|ended| same_booking(row, ended)))
        .cloned()
        .partition(|row| row.end <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn booking(user: &str, start: &str, end: &str) -> Booking {
        Booking {
            start: at(start),
            end: at(end),
            user_id: UserId::parse(user).unwrap(),
            cpus: 1.0,
            memory: 2,
            gpus: vec![0],
            forward_port: 10001,
            image: None,
            extra_command: None,
        }
    }

    /// `book extend` does not wait for a pass: a booking extended while the pass stopped its
    /// container stays running (and is started again), never recorded as ended.
    #[test]
    fn a_booking_extended_during_the_pass_stays_running() {
        let now = at("2026-11-23 12:00");
        let planned = [
            booking("alice", "2026-11-23 10:00", "2026-11-23 12:00"),
            booking("bob", "2026-11-23 09:00", "2026-11-23 12:00"),
        ];
        let fresh = [booking("alice", "2026-11-23 10:00", "2026-11-23 14:00"), planned[1].clone()];
        let (history, extended) = split_ended(&fresh, &planned, now);
        assert_eq!(history, vec![planned[1].clone()], "bob's ended booking goes to the history");
        assert_eq!(extended, vec![fresh[0].clone()], "alice's extension wins");
    }
}
