//! What `monitor --dry-run` and `monitor status` show, as lines of text: the binary only
//! prints them.

use anyhow::Result;
use chrono::NaiveDateTime;

use crate::booking::State;
use crate::docker::{Containers, Engine};
use crate::gpu::GpuInfo;
use crate::model::{format_gpu_list, format_minutes};
use crate::store::lock::SharedLock;
use crate::store::root::Root;

/// What a pass at `now` would do, and the notices it would send; nothing is changed and no
/// Docker engine is needed.
pub fn dry_run_lines(root: &Root, now: NaiveDateTime) -> Result<Vec<String>> {
    let plan = super::dry_run(root, now)?;
    let mut lines = Vec::new();
    if plan.is_empty() {
        lines.push(format!("Nothing to start or stop at {}.", format_minutes(now)));
    }
    for booking in &plan.ending {
        lines.push(format!(
            "would back up, stop and remove {}'s container (ended {})",
            booking.user_id,
            format_minutes(booking.end)
        ));
    }
    lines.extend(plan.starting.iter().map(|booking| format!("would start {}", booking.describe())));
    lines.extend(plan.missed.iter().map(|booking| format!("would record as missed {}", booking.describe())));
    for booking in &plan.continuing {
        lines.push(format!(
            "would check that {}'s container runs (until {})",
            booking.user_id,
            format_minutes(booking.end)
        ));
    }
    lines.extend(super::notify::dry_run_lines(root, now)?);
    Ok(lines)
}

/// Each GPU (memory, utilisation, who holds it, its processes and whose container they run
/// in), what this host enforces, and the running bookings.
pub async fn status_lines(root: &Root, now: NaiveDateTime, gpus: &dyn GpuInfo) -> Result<Vec<String>> {
    let state = State::load(&SharedLock::acquire(root)?)?;
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
    let mut lines = vec!["GPUs:".to_string()];
    match gpus.devices() {
        Ok(devices) => {
            for device in devices {
                let holder = running
                    .iter()
                    .find(|booking| booking.gpus.contains(&device.index))
                    .map(|booking| format!("{} until {}", booking.user_id, format_minutes(booking.end)))
                    .unwrap_or_else(|| "free".into());
                lines.push(format!(
                    "  GPU {}  {}  {:.1}/{:.1} GiB  {}%  held by {}",
                    device.index,
                    device.name,
                    device.memory_used_bytes as f64 / 1073741824.0,
                    device.memory_total_bytes as f64 / 1073741824.0,
                    device.utilization_percent,
                    holder
                ));
                for process_id in device.process_ids {
                    let owner = owners
                        .iter()
                        .find(|(_, process_ids)| process_ids.contains(&process_id))
                        .map_or("not in a booking's container".to_string(), |(name, _)| format!("container {name}"));
                    lines.push(format!("      process {process_id}: {owner}"));
                }
            }
        }
        Err(error) => lines.push(format!("  {error:#}")),
    }
    if let Err(error) = &engine {
        lines.push(format!("  ({error:#}: processes not matched to containers)"));
    }
    lines.push("What this host enforces:".to_string());
    for line in super::enforcement_report(&state.config, engine.as_ref().ok()).await {
        lines.push(format!("  {line}"));
    }
    lines.push("Running bookings:".to_string());
    if running.is_empty() {
        lines.push("  none".to_string());
    }
    for booking in running {
        lines.push(format!(
            "  {}  until {}  {} CPUs, {} GB, GPUs {}, port {}",
            booking.user_id,
            format_minutes(booking.end),
            booking.cpus,
            booking.memory,
            format_gpu_list(&booking.gpus),
            booking.forward_port
        ));
    }
    Ok(lines)
}
