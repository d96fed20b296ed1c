//! Containers the admin starts and stops by hand (`run-container`), outside the schedule:
//! within the host's limits, on GPUs the schedule leaves free (or the ids the admin names),
//! with the same specification the monitor would build, labelled as started by hand.

use anyhow::{Context, Result, bail};
use chrono::{Duration, NaiveDateTime};

use crate::docker::spec::{ContainerSpec, LABEL_MANUAL};
use crate::docker::{Containers, Engine};
use crate::error::{Refused, UsageError};
use crate::lab::{Lab, State, host_of};
use crate::model::{Booking, UserId};
use crate::monitor::{self, Actor};
use crate::rules::capacity::{self, Request};
use crate::rules::{floor_to_slot, settings};
use crate::store::config::Config;
use crate::store::monitor_log::MonitorLog;

/// What the admin asks for; `None` takes the user's limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub user: UserId,
    pub cpus: Option<f64>,
    pub memory: Option<u32>,
    /// A number of GPUs (free ones are chosen) or ids such as `0,2`.
    pub gpus: String,
    pub image: Option<String>,
    pub extra_command: Option<String>,
    /// How long the container is labelled for (at least an hour).
    pub hours: u32,
}

/// The container an [`Order`] gives: its booking, and what its specification is built from.
#[derive(Debug, Clone)]
pub struct Planned {
    pub booking: Booking,
    config: Config,
    label: String,
}

/// Checks `order` against the user's settings, the host and the schedule as they are now,
/// and plans its container from the current slot on.
pub fn plan(lab: &Lab, order: &Order) -> Result<Planned> {
    let now = lab.now()?;
    let state = lab.state()?;
    let config = &state.config;
    let user = &order.user;
    let entry = config
        .users
        .get(user)
        .with_context(|| format!("{user} has no entry in users_config.yaml yet; enrol them or let them log in once"))?;
    if let Some(image) = &order.image {
        settings::check_image(image, &config.deploy.images)?;
    }
    let limits = config.capability.limits_for(user);
    let host = host_of(config);
    let cpus = order.cpus.unwrap_or(limits.cpus);
    let memory = order.memory.unwrap_or(limits.memory as u32);
    if let Some(problem) = capacity::cpus_problem(cpus) {
        bail!(Refused(problem));
    }
    if !(cpus > 0.0 && cpus <= host.cpus) || memory < 1 || f64::from(memory) > host.memory {
        bail!(Refused(format!(
            "{cpus} CPUs and {memory} GB do not fit the host ({} CPUs, {} GB)",
            host.cpus, host.memory
        )));
    }
    if let Some(command) = &order.extra_command {
        settings::check_extra_command(command).map_err(UsageError)?;
    }
    let start = floor_to_slot(now);
    let end = start + Duration::hours(i64::from(order.hours.max(1)));
    let gpus = choose_gpus(&state, &order.gpus, start, end, host.gpus)?;
    let booking = Booking {
        start,
        end,
        user_id: user.clone(),
        cpus,
        memory,
        gpus,
        forward_port: entry.forward_port,
        image: order.image.clone(),
        extra_command: order.extra_command.clone(),
    };
    Ok(Planned { booking, config: state.config, label: monitor::root_label(lab.root()) })
}

impl Planned {
    /// The exact container specification, from the configured folders, touching nothing
    /// (`--dry-run`).
    pub fn spec(&self) -> Result<ContainerSpec> {
        let mut spec = monitor::planned_spec(&self.config, &self.booking, &self.label)?;
        spec.labels.insert(LABEL_MANUAL.to_string(), "true".to_string());
        Ok(spec)
    }
}

/// Starts the planned container, unless one of that name exists already; `progress` draws a
/// bar while an image is pulled. Logged in the monitor's log.
pub async fn start(lab: &Lab, planned: &Planned, progress: bool) -> Result<()> {
    let root = lab.root();
    let user = &planned.booking.user_id;
    let mut log = MonitorLog::new(root, lab.now()?, true);
    let engine = Engine::connect().await?;
    if let Some(existing) = engine.container(user.as_str()).await? {
        bail!(Refused(format!(
            "a container named {user} exists already ({}); stop it first",
            if existing.running { "running" } else { "stopped" }
        )));
    }
    let actor = Actor::new(root, &planned.config, &engine, progress);
    let mut prepared = actor.prepare(&planned.booking)?;
    prepared.spec.labels.insert(LABEL_MANUAL.to_string(), "true".to_string());
    actor.launch(&prepared, &mut log).await?;
    log.info(&format!("{user}'s container was started by run-container (port {})", planned.booking.forward_port));
    Ok(())
}

/// Backs up, stops and removes the user's container, as the monitor does at a booking's end.
pub async fn stop(lab: &Lab, user: &UserId) -> Result<()> {
    let root = lab.root();
    let now = lab.now()?;
    let state = lab.state()?;
    let mut log = MonitorLog::new(root, now, true);
    let engine = Engine::connect().await?;
    if !Actor::new(root, &state.config, &engine, false).end(user, &mut log).await {
        bail!("{user}'s container was not stopped; see {}", root.jobs_dir().join("monitor.log").display());
    }
    Ok(())
}

/// `N` picks N GPUs free from `start` to `end` according to the schedule; `0,2` takes those ids.
fn choose_gpus(
    state: &State,
    text: &str,
    start: NaiveDateTime,
    end: NaiveDateTime,
    host_gpus: u32,
) -> Result<Vec<u32>> {
    let text = text.trim();
    if text.contains(',') {
        let ids: Vec<u32> = text
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| part.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| UsageError(format!("--gpus: expected a count or ids such as 0,2, found {text:?}")))?;
        if let Some(id) = ids.iter().find(|id| **id >= host_gpus) {
            bail!(Refused(format!("GPU {id} does not exist: the host has {host_gpus}")));
        }
        return Ok(ids);
    }
    let count: u32 =
        text.parse().map_err(|_| UsageError(format!("--gpus: expected a count or ids such as 0,2, found {text:?}")))?;
    if count == 0 {
        return Ok(Vec::new());
    }
    let request = Request { user: None, start, end, cpus: 0.001, memory: 0, gpus: count, forward_port: None };
    capacity::place(&state.active(), &host_of(&state.config), &request)
        .map_err(|shortage| Refused(format!("{shortage}; name the ids with --gpus 0,2 to override")).into())
}
