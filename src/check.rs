//! `enroll check`: validates every configuration and state file under a root and lists every
//! problem found — the admin's `visudo -c` — and warns about every admin file the booking
//! account or any local user could write ([`crate::ownership`]). Reads only, under a shared
//! lock.

use std::collections::HashMap;

use anyhow::Result;

use crate::config::backup_list::BackupList;
use crate::config::{Config, read_text};
use crate::error::{FileProblem, Severity};
use crate::lock::SharedLock;
use crate::root::Root;
use crate::schedule::{self, ActiveFile, Row};

/// Every problem under `root`, errors and warnings, in file order.
pub fn check_root(root: &Root) -> Result<Vec<FileProblem>> {
    let lock = SharedLock::acquire(root)?;
    let (config, mut problems) = Config::load_collecting(&lock);

    let template = root.templates_dir().join("backup.yaml");
    if template.exists() {
        let shown = root.display(&template);
        match read_text(&template, &shown).and_then(|text| BackupList::parse(&shown, &text)) {
            Ok((_, warnings)) => problems.extend(warnings),
            Err(found) => problems.extend(found),
        }
    }

    let mut active: Vec<(String, Row)> = Vec::new();
    for file in [ActiveFile::Booking, ActiveFile::Using] {
        let path = file.path(root);
        let (rows, found) = schedule::read_rows(root, &path)?;
        problems.extend(found);
        let shown = root.display(&path);
        active.extend(rows.into_iter().map(|row| (shown.clone(), row)));
    }
    // The history can be long: stream it, keeping only its problems.
    let history = schedule::history_path(root);
    schedule::for_each_row(root, &history, |result| {
        if let Err(problem) = result {
            problems.push(problem);
        }
    })?;

    if let Some(config) = &config {
        check_active_rows(root, config, &active, &mut problems);
    }
    problems.extend(crate::ownership::warnings(root, config.as_ref()));
    Ok(problems)
}

pub fn count_errors(problems: &[FileProblem]) -> usize {
    problems.iter().filter(|problem| problem.severity == Severity::Error).count()
}

fn check_active_rows(root: &Root, config: &Config, active: &[(String, Row)], problems: &mut Vec<FileProblem>) {
    let host_gpus = config.capability.max.gpus;
    // For line numbers only; the file already parsed.
    let users_text =
        crate::state_folder::read_to_string(&config.deploy.users_config_yaml).ok().flatten().unwrap_or_default();
    // Named as everywhere else: relative to the root (`cfg/capability_config.yaml`).
    let capability_path = root.display(&config.deploy.capability_config_yaml);
    for (path, row) in active {
        let booking = &row.booking;
        let problem = |field: &str, message: String| FileProblem::error(path, Some(row.line), field, message);
        if !config.capability.is_allowed(&booking.user_id) {
            problems
                .push(problem("user_id", format!("{} is not in allow_userIDs ({capability_path})", booking.user_id)));
        }
        for gpu in &booking.gpus {
            if *gpu >= host_gpus {
                problems.push(problem(
                    "gpus",
                    format!(
                        "GPU {gpu} does not exist: the host has {host_gpus} (ids 0 to {})",
                        host_gpus.saturating_sub(1)
                    ),
                ));
            }
        }
        if booking.end <= booking.start {
            problems.push(problem("end", format!("{} is not after start {}", booking.end, booking.start)));
        }
        for (field, time) in [("start", booking.start), ("end", booking.end)] {
            if !crate::rules::is_on_grid(time) {
                problems
                    .push(problem(field, format!("{} is off the 30-minute grid (expected minutes :00 or :30)", time)));
            }
        }
    }

    // Pairwise conflicts between active rows. Rows are few (the active schedule), and each
    // pair is reported once, at the later row.
    let mut by_user: HashMap<&str, Vec<&(String, Row)>> = HashMap::new();
    for entry in active {
        by_user.entry(entry.1.booking.user_id.as_str()).or_default().push(entry);
    }
    for (index, (path, row)) in active.iter().enumerate() {
        let booking = &row.booking;
        for (earlier_path, earlier) in &active[..index] {
            if !earlier.booking.overlaps(booking.start, booking.end) {
                continue;
            }
            let place = format!("{earlier_path}:{}", earlier.line);
            if earlier.booking.user_id == booking.user_id {
                problems.push(FileProblem::error(
                    path,
                    Some(row.line),
                    "start",
                    format!("overlaps {}'s booking at {place}; a user's bookings never overlap", booking.user_id),
                ));
            }
            let shared: Vec<u32> =
                booking.gpus.iter().filter(|gpu| earlier.booking.gpus.contains(gpu)).copied().collect();
            if !shared.is_empty() {
                problems.push(FileProblem::error(
                    path,
                    Some(row.line),
                    "gpus",
                    format!(
                        "GPU {} is also booked by {} at {place} for an overlapping time",
                        shared.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
                        earlier.booking.user_id
                    ),
                ));
            }
        }
    }

    let users_path = root.display(&config.deploy.users_config_yaml);
    for (user, entry) in &config.users.users {
        let line = crate::yaml_lines::line_of_key(&users_text, &[user.as_str(), "forward_port"]);
        if !crate::account::PORT_RANGE.contains(&entry.forward_port) {
            problems.push(FileProblem::warning(
                &users_path,
                line,
                format!("{user}.forward_port"),
                format!(
                    "{} is outside {}–{}, the range enroll and book hand out",
                    entry.forward_port,
                    crate::account::PORT_RANGE.start(),
                    crate::account::PORT_RANGE.end()
                ),
            ));
        }
        // What `enroll add` creates and `enroll remove --purge` deletes: an allowed user
        // whose folders are gone cannot start a container until the monitor recreates them.
        if config.capability.is_allowed(user) {
            for (field, folder) in [
                ("volume_work_dir", entry.work_dir(&config.deploy, user)),
                ("volume_backup_dir", entry.backup_dir(&config.deploy, user)),
            ] {
                if !folder.is_dir() {
                    problems.push(FileProblem::warning(
                        &users_path,
                        crate::yaml_lines::line_of_key(&users_text, &[user.as_str(), field]),
                        format!("{user}.{field}"),
                        format!("the folder {} does not exist", folder.display()),
                    ));
                }
            }
        }
        if !config.capability.is_allowed(user) && !by_user.contains_key(user.as_str()) {
            problems.push(FileProblem::warning(
                root.display(&config.deploy.users_config_yaml),
                None,
                user.as_str(),
                format!(
                    "{user} has settings (port {}) but is not in allow_userIDs, so cannot book",
                    entry.forward_port
                ),
            ));
        }
    }
}
