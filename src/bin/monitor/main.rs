//! `monitor`: one pass that brings the Docker engine in line with the schedule (run by
//! systemd at :00 and :30, at boot, and when `jobs/monitor_exec` changes), and a status view.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Parser;
use gpu_booking::booking::State;
use gpu_booking::cli::finish;
use gpu_booking::cli::monitor::{Cli, Command};
use gpu_booking::clock;
use gpu_booking::docker::{Containers, Engine};
use gpu_booking::gpu::{GpuInfo, Nvml};
use gpu_booking::model::{format_gpu_list, format_minutes};
use gpu_booking::monitor::{self, PassOptions};
use gpu_booking::store::lock::SharedLock;

fn main() -> ExitCode {
    gpu_booking::cli::end_quietly_on_closed_pipe();
    finish(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    let root = cli.global.root();
    let now = clock::now()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cli.command {
        Some(Command::Status) => runtime.block_on(status(&root, now)),
        None if cli.dry_run => {
            let plan = monitor::dry_run(&root, now)?;
            if plan.is_empty() {
                println!("Nothing to start or stop at {}.", format_minutes(now));
            }
            for booking in &plan.ending {
                println!(
                    "would back up, stop and remove {}'s container (ended {})",
                    booking.user_id,
                    format_minutes(booking.end)
                );
            }
            for booking in &plan.starting {
                println!("would start {}", booking.describe());
            }
            for booking in &plan.missed {
                println!("would record as missed {}", booking.describe());
            }
            for booking in &plan.continuing {
                println!(
                    "would check that {}'s container runs (until {})",
                    booking.user_id,
                    format_minutes(booking.end)
                );
            }
            for line in monitor::notify::dry_run_lines(&root, now)? {
                println!("{line}");
            }
            Ok(())
        }
        None => {
            let options = PassOptions { now, echo: true, progress: console::Term::stderr().is_term() };
            let summary = runtime.block_on(monitor::run(&root, &options, &Nvml))?;
            if summary.errors > 0 {
                bail!(
                    "the pass met {} error(s); see {}",
                    summary.errors,
                    root.jobs_dir().join("monitor.log").display()
                );
            }
            Ok(())
        }
    }
}

async fn status(root: &gpu_booking::store::root::Root, now: chrono::NaiveDateTime) -> Result<()> {
    let state = {
        let lock = SharedLock::acquire(root)?;
        State::load(&lock)?
    };
    let running: Vec<_> = state.running.iter().filter(|booking| booking.start <= now && now < booking.end).collect();
    let engine = Engine::connect().await;
    let mut owners: Vec<(String, Vec<u32>)> = Vec::new();
    if let Ok(engine) = &engine {
        for booking in &state.running {
            if let Ok(process_ids) = engine.process_ids(booking.user_id.as_str()).await {
                owners.push((booking.user_id.to_string(), process_ids));
            }
        }
    }
    println!("GPUs:");
    match Nvml.devices() {
        Ok(devices) => {
            for device in devices {
                let holder = running
                    .iter()
                    .find(|booking| booking.gpus.contains(&device.index))
                    .map(|booking| format!("{} until {}", booking.user_id, format_minutes(booking.end)))
                    .unwrap_or_else(|| "free".into());
                println!(
                    "  GPU {}  {}  {:.1}/{:.1} GiB  {}%  held by {}",
                    device.index,
                    device.name,
                    device.memory_used_bytes as f64 / 1073741824.0,
                    device.memory_total_bytes as f64 / 1073741824.0,
                    device.utilization_percent,
                    holder
                );
                for process_id in device.process_ids {
                    let owner = owners
                        .iter()
                        .find(|(_, process_ids)| process_ids.contains(&process_id))
                        .map_or("not in a booking's container".to_string(), |(name, _)| format!("container {name}"));
                    println!("      process {process_id}: {owner}");
                }
            }
        }
        Err(error) => println!("  {error:#}"),
    }
    if let Err(error) = &engine {
        println!("  ({error:#}: processes not matched to containers)");
    }
    println!("What this host enforces:");
    for line in gpu_booking::monitor::enforcement_report(&state.config, engine.as_ref().ok()).await {
        println!("  {line}");
    }
    println!("Running bookings:");
    if running.is_empty() {
        println!("  none");
    }
    for booking in running {
        println!(
            "  {}  until {}  {} CPUs, {} GB, GPUs {}, port {}",
            booking.user_id,
            format_minutes(booking.end),
            booking.cpus,
            booking.memory,
            format_gpu_list(&booking.gpus),
            booking.forward_port
        );
    }
    Ok(())
}
