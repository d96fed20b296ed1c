//! `run-container`: the admin starts a container for a user now, outside the schedule, with
//! the same specification the monitor would build; `--dry-run` prints that specification.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::Duration;
use clap::Parser;
use gpu_booking::booking::{State, host_of};
use gpu_booking::cli::finish;
use gpu_booking::cli::run_container::{Cli, Command};
use gpu_booking::clock;
use gpu_booking::docker::spec::LABEL_MANUAL;
use gpu_booking::docker::{Containers, Engine};
use gpu_booking::error::{Refused, UsageError};
use gpu_booking::model::{Booking, UserId};
use gpu_booking::monitor::{self, Actor};
use gpu_booking::rules::capacity::{self, Request};
use gpu_booking::rules::floor_to_slot;
use gpu_booking::store::lock::SharedLock;
use gpu_booking::store::monitor_log::MonitorLog;

fn main() -> ExitCode {
    gpu_booking::cli::end_quietly_on_closed_pipe();
    finish(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    let root = cli.global.root();
    let now = clock::now()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cli.command {
        Some(Command::Stop { user }) => {
            let user = UserId::parse(&user).map_err(UsageError)?;
            let state = State::load(&SharedLock::acquire(&root)?)?;
            runtime.block_on(async {
                let mut log = MonitorLog::new(&root, now, true);
                let engine = Engine::connect().await?;
                let actor = Actor::new(&root, &state.config, &engine, false);
                if !actor.end(&user, &mut log).await {
                    bail!("{user}'s container was not stopped; see {}", root.jobs_dir().join("monitor.log").display());
                }
                Ok(())
            })
        }
        None => {
            let arguments = cli.start;
            let user = arguments.user.clone().context("--user is required")?;
            let user = UserId::parse(&user).map_err(UsageError)?;
            let state = State::load(&SharedLock::acquire(&root)?)?;
            let config = &state.config;
            let entry = config.users.get(&user).with_context(|| {
                format!("{user} has no entry in users_config.yaml yet; enrol them or let them log in once")
            })?;
            if let Some(image) = &arguments.image {
                gpu_booking::account::check_image(config, image)?;
            }
            let limits = config.capability.limits_for(&user);
            let host = host_of(config);
            let cpus = arguments.cpus.unwrap_or(limits.cpus);
            let memory = arguments.memory.unwrap_or(limits.memory as u32);
            if let Some(problem) = capacity::cpus_problem(cpus) {
                bail!(Refused(problem));
            }
            if !(cpus > 0.0 && cpus <= host.cpus) || memory < 1 || f64::from(memory) > host.memory {
                bail!(Refused(format!(
                    "{cpus} CPUs and {memory} GB do not fit the host ({} CPUs, {} GB)",
                    host.cpus, host.memory
                )));
            }
            if let Some(command) = &arguments.extra_command {
                gpu_booking::rules::fields::check_extra_command(command).map_err(UsageError)?;
            }
            let start = floor_to_slot(now);
            let end = start + Duration::hours(i64::from(arguments.hours.max(1)));
            let gpus = choose_gpus(&state, &arguments.gpus, start, end, host.gpus)?;
            let booking = Booking {
                start,
                end,
                user_id: user.clone(),
                cpus,
                memory,
                gpus,
                forward_port: entry.forward_port,
                image: arguments.image.clone(),
                extra_command: arguments.extra_command.clone(),
            };
            let label = monitor::root_label(&root);
            if arguments.dry_run {
                let mut spec = monitor::planned_spec(config, &booking, &label)?;
                spec.labels.insert(LABEL_MANUAL.to_string(), "true".to_string());
                println!("{}", serde_json::to_string_pretty(&spec)?);
                return Ok(());
            }
            runtime.block_on(async {
                let mut log = MonitorLog::new(&root, now, true);
                let engine = Engine::connect().await?;
                if let Some(existing) = engine.container(user.as_str()).await? {
                    bail!(Refused(format!(
                        "a container named {user} exists already ({}); stop it first",
                        if existing.running { "running" } else { "stopped" }
                    )));
                }
                let actor = Actor::new(&root, config, &engine, console::Term::stderr().is_term());
                let mut prepared = actor.prepare(&booking)?;
                prepared.spec.labels.insert(LABEL_MANUAL.to_string(), "true".to_string());
                actor.launch(&prepared, &mut log).await?;
                log.info(&format!("{user}'s container was started by run-container (port {})", booking.forward_port));
                Ok(())
            })
        }
    }
}

/// `N` picks N GPUs free now according to the schedule; `0,2` takes those ids.
fn choose_gpus(
    state: &State,
    text: &str,
    start: chrono::NaiveDateTime,
    end: chrono::NaiveDateTime,
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
