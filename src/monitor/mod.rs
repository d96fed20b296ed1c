//! The monitor pass: bring the Docker engine in line with the schedule.
//!
//! 1. Under the lock: read the state and the requests in `jobs/monitor_exec`, plan
//!    ([`plan`]).
//! 2. Without the lock (so `book` never waits on Docker), through [`act`]: back up, stop and
//!    remove the containers of ended bookings; check quotas and start the containers of
//!    bookings that began; restart on request; reconcile (a running booking without its
//!    container gets it back; a container of ours without a booking is stopped); GPU checks.
//! 3. Under the lock again, on freshly read state: settle what succeeded ([`plan::settle`])
//!    and remove the requests served, as one change through [`crate::store::journal`], so a pass
//!    killed at any moment and run again converges: each booking in exactly one file, no row
//!    twice, no request lost.
//!
//! Anything that fails is logged and its row stays where it was, for the next pass.

pub mod act;
pub mod backup;
pub mod manual;
pub mod notify;
pub mod plan;
pub mod report;

use anyhow::{Context, Result};
use chrono::NaiveDateTime;

use crate::booking::State;
use crate::docker::{Containers, Engine, spec};
use crate::gpu::GpuInfo;
use crate::model::{Booking, format_time};
use crate::store::config::Config;
use crate::store::lock::ExclusiveLock;
use crate::store::monitor_exec::{self, Request};
use crate::store::monitor_log::MonitorLog;
use crate::store::root::Root;
use crate::store::schedule::{self, ActiveFile};
use crate::volumes::UserFolders;
pub use act::{Actor, Prepared, planned_spec};
use plan::{Achieved, Plan};

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

/// Runs passes on the Docker engine until no request arrived during the last one.
pub async fn run(root: &Root, options: &PassOptions, gpus: &dyn GpuInfo) -> Result<PassSummary> {
    match Engine::new() {
        Ok(engine) => run_with(root, options, &engine, gpus).await,
        Err(error) => Err(engine_down(&mut MonitorLog::new(root, options.now, options.echo), error)),
    }
}

/// Runs passes on `containers` until no request arrived during the last one.
pub async fn run_with(
    root: &Root,
    options: &PassOptions,
    containers: &impl Containers,
    gpus: &dyn GpuInfo,
) -> Result<PassSummary> {
    passes(root, options, containers, gpus, UserFolders::check_mount_options).await
}

/// The engine is down: said once, and nothing is touched.
fn engine_down(log: &mut MonitorLog, error: anyhow::Error) -> anyhow::Error {
    log.error("DockerError", &format!("{error:#}; every booking stays where it was, the next pass retries"));
    error
}

/// [`run_with`], with the check that refuses folders Docker must not mount: the tests' scratch
/// folders are on the machine's ordinary mount, so they pass one that accepts them.
async fn passes(
    root: &Root,
    options: &PassOptions,
    containers: &impl Containers,
    gpus: &dyn GpuInfo,
    check_mounts: fn(&UserFolders) -> Result<()>,
) -> Result<PassSummary> {
    let mut log = MonitorLog::new(root, options.now, options.echo);
    if let Err(error) = containers.ping().await {
        return Err(engine_down(&mut log, error));
    }
    let mut summary = PassSummary::default();
    for _ in 0..MAX_PASSES {
        let reading = read(root, options.now, &mut log)?;
        let actor = Actor { check_mounts, ..Actor::new(root, &reading.state.config, containers, options.progress) };
        pass(&actor, &reading, gpus, &mut log, &mut summary).await?;
        let pending = monitor_exec::has_pending(&crate::store::lock::SharedLock::acquire(root)?)?;
        if !pending {
            break;
        }
    }
    summary.errors = log.errors;
    summary.warnings = log.warnings;
    Ok(summary)
}

/// What a pass reads under the lock.
struct Reading {
    now: NaiveDateTime,
    state: State,
    requests: monitor_exec::Pending,
    plan: Plan,
    /// `jobs/notices.csv`: what was told already.
    told: Result<Vec<crate::store::notices::Notice>>,
}

fn read(root: &Root, now: NaiveDateTime, log: &mut MonitorLog) -> Result<Reading> {
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
    Ok(Reading { now, state, requests, plan, told })
}

/// One pass: act on the plan, tell the students, settle and commit.
async fn pass<C: Containers>(
    actor: &Actor<'_, C>,
    reading: &Reading,
    gpus: &dyn GpuInfo,
    log: &mut MonitorLog,
    summary: &mut PassSummary,
) -> Result<()> {
    let Reading { now, state, requests, plan, told } = reading;
    let (root, now) = (actor.root, *now);
    let acted = actor.users(plan, &requests.requests, log).await;
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
    running_now.extend(acted.started.iter().cloned());
    // Banners, warnings and mail go out while the rest of the pass goes on; each is bounded.
    let due = notify_due(root, state, plan, (&acted.started, &acted.refused), told, now, log);
    let mut notice_log = log.buffered();
    let (told_now, ()) =
        tokio::join!(notify::deliver(root, actor.config, actor.containers, due, now, &mut notice_log), async {
            actor.stop_orphans(&running_now, &plan.ending, log).await;
            actor.check_gpus(gpus, &running_now, log).await;
        });
    log.absorb(notice_log);

    let achieved = Achieved { ended: &acted.ended, started: &acted.started, missed: &plan.missed };
    record(root, now, achieved, requests, &acted.failed_restarts, log)?;
    if !told_now.is_empty() {
        notify::record(root, &told_now, log);
    }
    summary.started += acted.started.len();
    summary.stopped += acted.ended.len();
    summary.missed += plan.missed.len();
    Ok(())
}

/// What the pass tells (see [`notify`]) of the bookings `started` and `refused` their start;
/// without a readable `jobs/notices.csv` only the banners, since nothing could tell what was
/// told already.
fn notify_due(
    root: &Root,
    state: &State,
    plan: &Plan,
    (started, refused): (&[Booking], &[notify::StartRefused]),
    told: &Result<Vec<crate::store::notices::Notice>>,
    now: NaiveDateTime,
    log: &mut MonitorLog,
) -> notify::Due {
    match told {
        Ok(told) => notify::due(root, state, plan, started, refused, told, now),
        Err(error) => {
            log.warning("NoticeWarning", &notify::unreadable_record(error));
            notify::due(root, state, plan, started, refused, &[], now).banners_only()
        }
    }
}

/// Writes the outcome under the lock, on freshly read state, as one change (see
/// [`crate::store::journal`]): the history, the running and booked rows and the requests served.
/// Failed restarts stay in `jobs/monitor_exec`; written while this pass runs, they do not set
/// off the path unit again (systemd does not watch the file while the service runs): this
/// run's next pass or the timer's takes them, so a Docker engine that keeps failing is not
/// hammered.
fn record(
    root: &Root,
    now: NaiveDateTime,
    achieved: Achieved<'_>,
    requests: &monitor_exec::Pending,
    failed_restarts: &[Request],
    log: &mut MonitorLog,
) -> Result<()> {
    if achieved.is_empty() && *requests == Default::default() {
        return Ok(());
    }
    let lock = ExclusiveLock::acquire(root)?;
    let booked = schedule::read(&lock, ActiveFile::Booking)?;
    let running = schedule::read(&lock, ActiveFile::Using)?;
    let mut settled = plan::settle(booked, running, achieved, now);
    // A row already at the end of the history was written by a pass of an earlier release
    // that was killed before it rewrote `using.csv` (this release changes all files at once).
    let recent = schedule::recent_history(&lock).context("cannot read the end of used.csv")?;
    settled.history.retain(|row| !recent.contains(row));
    schedule::ensure_files(&lock)?;
    // What changed while this pass talked to Docker is put right by another pass at once (the
    // run goes on while `monitor_exec` holds a request): an extended booking gets its
    // container back, a cancelled one loses the container that just started.
    let again: &[Request] =
        if !settled.extended.is_empty() || !settled.stale.is_empty() { &[Request::Now] } else { &[] };
    let requests = monitor_exec::after_pass(&lock, requests, failed_restarts, again)?;
    schedule::commit(
        &lock,
        schedule::Change {
            booked: Some(&settled.booked),
            running: Some(&settled.running),
            history: &settled.history,
            requests: Some(requests),
        },
    )?;
    drop(lock);
    for booking in &settled.extended {
        log.warning(
            "ExtendWarning",
            &format!(
                "{}'s booking was extended to {} while its container was being stopped; it is started again now",
                booking.user_id,
                format_time(booking.end)
            ),
        );
    }
    for user in &settled.stale {
        log.warning(
            "OrphanWarning",
            &format!("{user}'s booking was cancelled while its container started; it is stopped now"),
        );
    }
    Ok(())
}

/// What this host enforces on every booking's container, said plainly for `monitor status`.
pub async fn enforcement_report(config: &Config, engine: Option<&impl Containers>) -> Vec<String> {
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
            spec::CAPABILITIES.join(", ")
        ),
        format!(
            "network: {} (containers cannot reach each other); SSH ports listen on {}",
            spec::NETWORK,
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

#[cfg(test)]
mod tests;
