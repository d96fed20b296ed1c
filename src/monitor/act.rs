//! Carries out what [`super::plan`] decides, on any [`Containers`]: each container is
//! inspected once ([`Actor::observe`]), [`plan::decide`] says what to do, and one handler
//! ([`Actor::perform`]) does it and logs it. Also here: one user's part of a pass, in
//! order, the orphans, and the GPU checks.

mod launch;
mod save;

use std::time::Duration;

use anyhow::Result;

use super::notify::StartRefused;
use super::plan::{self, Action, Goal, Leave, Observed, Plan};
use crate::docker::Containers;
use crate::gpu::{self, GpuInfo};
use crate::model::{Booking, UserId};
use crate::rules::conflicts::{Conflict, conflicts};
use crate::store::config::Config;
use crate::store::monitor_exec::Request;
use crate::store::monitor_log::MonitorLog;
use crate::store::notices::Refusal;
use crate::store::root::Root;
use crate::volumes::UserFolders;
use crate::volumes::space;
pub use launch::{Prepared, planned_spec};

/// How long one user's part of a pass may take: saving a large backup, pulling an image.
/// Well under the unit's `TimeoutStartSec` (20 minutes), so the pass records everyone's
/// outcome before systemd would stop it.
pub const USER_DEADLINE: Duration = Duration::from_secs(12 * 60);

/// What the monitor works with: the root and its configuration, the engine, and how it
/// starts containers. Shared by a pass and by `run-container`.
pub struct Actor<'a, C> {
    pub root: &'a Root,
    pub config: &'a Config,
    pub containers: &'a C,
    /// This root's label on the containers it starts (see [`super::root_label`]).
    pub label: String,
    /// Draw a progress bar while pulling an image.
    pub progress: bool,
    /// Refuses folders Docker must not mount (see [`UserFolders::check_mount_options`]).
    pub(super) check_mounts: fn(&UserFolders) -> Result<()>,
}

/// What acting on one container came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// The engine failed: the row or the request stays, for the next pass.
    Retry,
    /// The booking's container was not started, and why (for the student's mail).
    Refused(Refusal, String),
}

/// What one user's part of a pass achieved.
#[derive(Default)]
pub struct UserOutcome {
    pub ended: Vec<Booking>,
    pub started: Vec<Booking>,
    pub failed_restarts: Vec<Request>,
    pub refused: Vec<StartRefused>,
}

impl<'a, C: Containers> Actor<'a, C> {
    pub fn new(root: &'a Root, config: &'a Config, containers: &'a C, progress: bool) -> Self {
        Actor {
            root,
            config,
            containers,
            label: super::root_label(root),
            progress,
            check_mounts: UserFolders::check_mount_options,
        }
    }

    /// What the engine holds under the goal's name: the one place a container is inspected
    /// and told foreign or ours.
    pub async fn observe(&self, goal: &Goal<'_>) -> Observed {
        plan::observe(self.containers.container(goal.user().as_str()).await, &self.label, goal.start())
    }

    /// Inspects, decides, acts.
    pub async fn pursue(&self, goal: Goal<'_>, log: &mut MonitorLog) -> Outcome {
        let observed = self.observe(&goal).await;
        let action = plan::decide(&goal, &observed);
        self.perform(&goal, action, log).await
    }

    /// Does what was decided, and logs it.
    pub async fn perform(&self, goal: &Goal<'_>, action: Action, log: &mut MonitorLog) -> Outcome {
        let name = goal.user().as_str();
        match (action, goal) {
            (Action::Leave(reason), _) => self.leave(goal, reason, log),
            (Action::SaveAndRemove, _) => self.save_and_remove(goal.user(), log).await,
            (Action::Create, Goal::Start(booking)) => self.create(booking, log).await,
            (Action::Replace, Goal::Start(booking)) => {
                // An earlier booking's container that was not stopped: make way.
                if let Err(error) = self.containers.stop_and_remove(name).await {
                    log.error("DockerError", &format!("{error:#}"));
                    return Outcome::Refused(Refusal::Docker, "the previous container could not be removed".into());
                }
                self.create(booking, log).await
            }
            (Action::Resume { running }, Goal::Start(booking)) => match self.resume(name, running, log).await {
                Some(true) => Outcome::Done,
                Some(false) => Outcome::Refused(Refusal::Docker, "its container could not be started again".into()),
                None => self.create(booking, log).await,
            },
            (Action::StopForQuota(over), _) => {
                match self.containers.stop(name).await {
                    Ok(()) => log.warning(
                        "SpaceWarning",
                        &format!(
                            "{name} is over-use {over} past the grace margin; the container was stopped with its \
                             files kept, and `book restart` starts it again until the next pass to make room"
                        ),
                    ),
                    Err(error) => log.error("DockerError", &format!("{error:#}")),
                }
                Outcome::Done
            }
            (Action::Revive { gone }, Goal::Keep { booking, .. }) => {
                let message = if gone {
                    format!("{name}'s booking is running but its container is gone; starting it again")
                } else {
                    format!("{name}'s container had stopped; starting it again")
                };
                log.warning("ContainerWarning", &message);
                // What keeps it from starting is logged; the next pass tries again.
                Box::pin(self.pursue(Goal::Start(booking), log)).await;
                Outcome::Done
            }
            (Action::Restart, _) => match self.containers.restart(name).await {
                Ok(()) => {
                    log.info(&format!("{name}'s container was restarted on request"));
                    Outcome::Done
                }
                Err(error) => {
                    log.error("DockerError", &format!("{error:#}; the restart is tried again at the next pass"));
                    Outcome::Retry
                }
            },
            // `decide` gives the booking's actions only for a booking's goals.
            (action, goal) => unreachable!("{action:?} for {goal:?}"),
        }
    }

    /// Logs why the engine is left alone, as the goal sees it.
    fn leave(&self, goal: &Goal<'_>, reason: Leave, log: &mut MonitorLog) -> Outcome {
        let name = goal.user().as_str();
        match reason {
            Leave::EngineDown(error) => match goal {
                Goal::Restart(_) => {
                    log.error("DockerError", &format!("{error}; the restart is tried again at the next pass"));
                    Outcome::Retry
                }
                Goal::Start(_) => {
                    log.error("DockerError", &error);
                    Outcome::Refused(Refusal::Docker, "the Docker engine did not answer".into())
                }
                Goal::End(_) | Goal::Keep { .. } => {
                    log.error("DockerError", &error);
                    Outcome::Retry
                }
            },
            Leave::Foreign => {
                let consequence = match goal {
                    Goal::Start(_) => format!("{name}'s booking was not started"),
                    Goal::Restart(_) => "it was not restarted".to_string(),
                    Goal::End(_) | Goal::Keep { .. } => "it was not touched".to_string(),
                };
                log.error(
                    "ForeignContainerError",
                    &format!("a container named {name} exists but was not started by gpu-booking; {consequence}"),
                );
                match goal {
                    Goal::Start(_) => Outcome::Refused(Refusal::Setup, format!("another container is named {name}")),
                    _ => Outcome::Done,
                }
            }
            Leave::AlreadyGone => {
                log.warning(
                    "ContainerWarning",
                    &format!("{name}'s container was already gone when the booking ended; nothing to back up"),
                );
                Outcome::Done
            }
            Leave::NoContainer => {
                log.warning("RestartWarning", &format!("{name} asked for a restart but has no container to restart"));
                Outcome::Done
            }
            Leave::WithinQuota => Outcome::Done,
            Leave::OverQuota(over) => {
                log.warning(
                    "SpaceWarning",
                    &format!(
                        "{name} is over-use {over} while the booking runs; past the grace margin the container is stopped"
                    ),
                );
                Outcome::Done
            }
            Leave::StaysStopped(over) => {
                log.warning(
                    "SpaceWarning",
                    &format!("{name} is over-use {over}; the container stays stopped until `book restart`"),
                );
                Outcome::Done
            }
        }
    }

    /// Backs up, stops and removes the user's container (if it is ours). `true` when no
    /// container of ours is left running for the user.
    pub async fn end(&self, user: &UserId, log: &mut MonitorLog) -> bool {
        self.pursue(Goal::End(user), log).await == Outcome::Done
    }

    /// A running booking that goes on: its container runs, within its quotas. The folders
    /// are measured first, so one pure decision covers every case.
    async fn keep(&self, booking: &Booking, restart_requested: bool, log: &mut MonitorLog) {
        let overrun = match self.config.users.get(&booking.user_id) {
            Some(entry) => {
                let folders = space::quota_folders(self.config, &booking.user_id, entry);
                plan::overrun(&space::measure_all(folders, true).await)
            }
            None => plan::Overrun::default(),
        };
        self.pursue(Goal::Keep { booking, restart_requested, overrun }, log).await;
    }

    /// Serves a restart request. A request from a user with nothing running is answered
    /// (with a warning), not retried.
    async fn restart(&self, running: &[Booking], user: &UserId, log: &mut MonitorLog) -> Outcome {
        if !running.iter().any(|booking| &booking.user_id == user) {
            log.warning("RestartWarning", &format!("{user} asked for a restart but has no running booking"));
            return Outcome::Done;
        }
        self.pursue(Goal::Restart(user), log).await
    }

    /// Every user's part of the pass, all at once, each within [`USER_DEADLINE`] and with
    /// its log lines kept together: one student's slow or hostile container never delays
    /// another's start or stop.
    pub async fn users(&self, plan: &Plan, requests: &[Request], log: &mut MonitorLog) -> UserOutcome {
        let mut users: Vec<&UserId> =
            plan.ending.iter().chain(&plan.starting).chain(&plan.continuing).map(|booking| &booking.user_id).collect();
        users.extend(requests.iter().filter_map(|request| match request {
            Request::Restart(user) => Some(user),
            _ => None,
        }));
        users.sort();
        users.dedup();
        let tasks = users.into_iter().map(|user| {
            let mut user_log = log.buffered();
            async move {
                let work = self.user_part(user, plan, requests, &mut user_log);
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
        let mut all = UserOutcome::default();
        for (outcome, user_log) in futures_util::future::join_all(tasks).await {
            log.absorb(user_log);
            all.ended.extend(outcome.ended);
            all.started.extend(outcome.started);
            all.failed_restarts.extend(outcome.failed_restarts);
            all.refused.extend(outcome.refused);
        }
        all
    }

    /// One user's part of a pass, in order: the ended booking is saved and stopped before the
    /// next one starts (both use the container name), then the running one is kept up and
    /// restart requests served.
    async fn user_part(&self, user: &UserId, plan: &Plan, requests: &[Request], log: &mut MonitorLog) -> UserOutcome {
        let mut outcome = UserOutcome::default();
        let mine = |bookings: &[Booking]| -> Vec<Booking> {
            bookings.iter().filter(|booking| &booking.user_id == user).cloned().collect()
        };
        for booking in mine(&plan.ending) {
            if self.end(&booking.user_id, log).await {
                outcome.ended.push(booking);
            }
        }
        for booking in mine(&plan.starting) {
            match self.pursue(Goal::Start(&booking), log).await {
                Outcome::Refused(refusal, detail) => outcome.refused.push(StartRefused { booking, refusal, detail }),
                Outcome::Done => outcome.started.push(booking),
                // Not given for a start; the row would stay in booking.csv for the next pass.
                Outcome::Retry => {}
            }
        }
        let continuing = mine(&plan.continuing);
        let restart_requested =
            requests.iter().any(|request| matches!(request, Request::Restart(requested) if requested == user));
        for booking in &continuing {
            self.keep(booking, restart_requested, log).await;
        }
        let mut running = continuing;
        running.extend(outcome.started.iter().cloned());
        for request in requests {
            if let Request::Restart(requested) = request
                && requested == user
                && self.restart(&running, user, log).await == Outcome::Retry
            {
                outcome.failed_restarts.push(request.clone());
            }
        }
        outcome
    }

    /// Stops containers of ours that no running booking accounts for (a hand-deleted row, a
    /// cancelled booking whose container had already started). Their `backup.yaml` paths are
    /// saved first, as at the end of a booking: the student's files are not the row's fault.
    /// All at once, each within the user deadline, like the users' own parts of the pass.
    pub async fn stop_orphans(&self, running: &[Booking], ending: &[Booking], log: &mut MonitorLog) {
        let ours = match self.containers.list_ours(&self.label).await {
            Ok(ours) => ours,
            Err(error) => {
                log.error("DockerError", &format!("{error:#}"));
                return;
            }
        };
        let tasks = plan::orphans(ours, running, ending).into_iter().map(|name| {
            let mut orphan_log = log.buffered();
            async move {
                let stopped = match UserId::parse(&name) {
                    Ok(user) => {
                        let work = self.end(&user, &mut orphan_log);
                        tokio::time::timeout(USER_DEADLINE, work).await.unwrap_or(false)
                    }
                    // Not a name `book` could have given; nothing of a user's to save.
                    Err(_) => match self.containers.stop_and_remove(&name).await {
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
                        &format!(
                            "container {name} had no running booking; its saved paths were kept and it was removed"
                        ),
                    );
                } else {
                    orphan_log.error(
                        "OrphanError",
                        &format!(
                            "container {name} has no running booking but could not be removed; the next pass retries"
                        ),
                    );
                }
                orphan_log
            }
        });
        for orphan_log in futures_util::future::join_all(tasks).await {
            log.absorb(orphan_log);
        }
    }

    /// Warns of a GPU given to two running bookings at once, and of a process in a booking's
    /// container on a GPU the booking was not given.
    pub async fn check_gpus(&self, gpus: &dyn GpuInfo, running: &[Booking], log: &mut MonitorLog) {
        for conflict in conflicts(running) {
            let Conflict::SharedGpus { gpus, group } = conflict else { continue };
            let ids = gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            let holders: Vec<String> = group.iter().map(|index| running[*index].user_id.to_string()).collect();
            let holders = match holders.split_last() {
                Some((last, [only])) => format!("both {only} and {last}"),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => continue,
            };
            log.warning("GPUDuplicateWarning", &format!("GPU {ids} is given to {holders} at once"));
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
            if let Ok(process_ids) = self.containers.process_ids(booking.user_id.as_str()).await {
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
}
