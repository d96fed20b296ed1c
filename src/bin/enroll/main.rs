//! `enroll`: the admin's tool. This file parses, reads standard input and key files, and
//! prints; the changes are made in the library (`enrollment`, `report`, `check`).

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use gpu_booking::check;
use gpu_booking::cli::enroll::{AddArgs, Cli, Command, LimitsArgs, ReportArgs};
use gpu_booking::cli::{finish, generate};
use gpu_booking::enrollment::{self, NewUser, PasswordChoice, UserSummary};
use gpu_booking::error::UsageError;
use gpu_booking::lab::Lab;
use gpu_booking::model::{UserId, format_gpu_list};
use gpu_booking::report::{self, Report};
use gpu_booking::volumes::space::gigabytes;

fn main() -> ExitCode {
    gpu_booking::cli::end_quietly_on_closed_pipe();
    let cli = Cli::parse();
    finish(run(cli))
}

fn run(cli: Cli) -> Result<()> {
    let lab = Lab::new(cli.global.root());
    match cli.command {
        Command::Check => run_check(&lab),
        Command::Add(arguments) => add(&lab, arguments),
        Command::Remove { id, purge, force } => {
            let user = user_id(&id)?;
            let removed = enrollment::remove(&lab, &user, force, purge)?;
            for booking in &removed.cancelled {
                println!("cancelled: {}", booking.describe());
            }
            for (booking, end) in &removed.ending {
                println!("ends at {}: {}", gpu_booking::model::format_time(*end), booking.describe());
            }
            for folder in &removed.purged {
                println!("deleted: {}", folder.display());
            }
            for folder in &removed.kept {
                println!("kept: {} (use --purge to delete)", folder.display());
            }
            println!("removed {user}");
            Ok(())
        }
        Command::List { json } => {
            let users = enrollment::list(&lab, Duration::from_secs(2))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                print_list(&users);
            }
            Ok(())
        }
        Command::Passwd { id, password_stdin } => {
            let user = user_id(&id)?;
            let choice = password_choice(password_stdin)?;
            let reset = enrollment::reset_password(&lab, &user, &choice)?;
            match &reset.temporary {
                Some(temporary) => print_temporary(&user, temporary),
                None => println!("password of {user} changed"),
            }
            if let Some(until) = reset.was_locked_until {
                println!("{user} was locked by failed logins until {}; unlocked", until.format("%Y-%m-%d %H:%M"));
            }
            Ok(())
        }
        Command::Limits(arguments) => limits(&lab, arguments),
        Command::Report(arguments) => report(&lab, arguments),
        Command::AbsolutePaths { json } => {
            let done = enrollment::make_paths_absolute(&lab)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
                return Ok(());
            }
            for change in &done.changes {
                let from = change.from.as_ref().map_or("(missing)".to_string(), |from| from.display().to_string());
                println!("{}.{}: {from} -> {}", change.user, change.field, change.to.display());
            }
            if !done.moved_to_side_file.is_empty() {
                println!(
                    "moved SSH keys and must-change flags of {} out of users_config.yaml into its side file",
                    done.moved_to_side_file.join(", ")
                );
            }
            if done.changes.is_empty() && done.moved_to_side_file.is_empty() {
                println!("nothing to change: every volume folder is absolute");
            }
            if !done.hashed_passwords.is_empty() {
                println!(
                    "note: {} have hashed passwords, which the original system cannot check; see README, \
                     \"Going back to the original\"",
                    done.hashed_passwords.join(", ")
                );
            }
            Ok(())
        }
        Command::Completions { shell, binary } => {
            std::io::stdout().write_all(&generate::completions(shell, binary)).context("cannot write the script")
        }
        Command::Man { out } => {
            for path in generate::write_man_pages(&out)? {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

fn run_check(lab: &Lab) -> Result<()> {
    let root = lab.root();
    let problems = check::check_root(root)?;
    for problem in &problems {
        println!("{problem}");
    }
    let errors = check::count_errors(&problems);
    let warnings = problems.len() - errors;
    if errors > 0 {
        bail!("{errors} error(s), {warnings} warning(s) under {}", root.dir().display());
    }
    println!("ok: {} is consistent ({warnings} warning(s))", root.dir().display());
    Ok(())
}

fn user_id(text: &str) -> Result<UserId> {
    UserId::parse(text).map_err(|message| UsageError(message).into())
}

/// The first line of standard input, or a temporary password.
fn password_choice(from_stdin: bool) -> Result<PasswordChoice> {
    if !from_stdin {
        return Ok(PasswordChoice::Temporary);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!(UsageError("--password-stdin: standard input holds no password".into()));
    }
    Ok(PasswordChoice::Given(password))
}

fn print_temporary(user: &UserId, temporary: &str) {
    println!("temporary password for {user}: {temporary}");
    println!("(shown only now; {user} must choose their own at the first login)");
}

fn add(lab: &Lab, arguments: AddArgs) -> Result<()> {
    let user = UserId::parse_new(&arguments.id).map_err(UsageError)?;
    let mut ssh_keys = Vec::new();
    for file in &arguments.key {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read the key file {}", file.display()))?;
        let before = ssh_keys.len();
        ssh_keys.extend(
            text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).map(str::to_string),
        );
        if ssh_keys.len() == before {
            bail!(UsageError(format!("the key file {} holds no key", file.display())));
        }
    }
    let password = password_choice(arguments.password_stdin)?;
    let limits = arguments.limits.given().into_iter().map(|(field, value)| (field, Some(value))).collect();
    let new = NewUser {
        user: user.clone(),
        limits,
        forward_port: arguments.forward_port,
        password,
        ssh_keys,
        email: arguments.email,
    };
    let added = enrollment::add(lab, &new)?;
    println!("enrolled {user}: forward port {}", added.entry.forward_port);
    if let Some(temporary) = &added.temporary_password {
        print_temporary(&user, temporary);
    }
    Ok(())
}

fn limits(lab: &Lab, arguments: LimitsArgs) -> Result<()> {
    let user = user_id(&arguments.id)?;
    let mut changes: Vec<(&'static str, Option<_>)> =
        arguments.limits.given().into_iter().map(|(field, value)| (field, Some(value))).collect();
    for name in &arguments.clear {
        if changes.iter().any(|(field, _)| *field == name.field()) {
            bail!(UsageError(format!("--clear {} contradicts the value given for it", name.field())));
        }
        changes.push((name.field(), None));
    }
    let limits = enrollment::change_limits(lab, &user, &changes)?;
    let space = |value: Option<f64>| value.map_or("no quota".to_string(), |value| format!("{value} GB"));
    println!(
        "{user} may now book up to {} CPUs, {} GB memory, {} GPUs; work {}, backup {}",
        limits.cpus,
        limits.memory,
        limits.gpus,
        space(limits.work_space),
        space(limits.backup_space)
    );
    Ok(())
}

fn print_list(users: &[UserSummary]) {
    if users.is_empty() {
        println!("no users");
        return;
    }
    println!(
        "{:<20} {:<7} {:>6} {:>7} {:>4} {:>6} {:>9} {:>9}  bookings",
        "user", "allowed", "cpus", "memory", "gpus", "port", "work", "backup"
    );
    for user in users {
        let size = |folder: &Option<enrollment::FolderSize>| match folder {
            None => "-".to_string(),
            Some(folder) => match folder.bytes {
                None => "missing".to_string(),
                Some(bytes) if folder.complete => gigabytes(bytes),
                Some(bytes) => format!(">{}", gigabytes(bytes)),
            },
        };
        let bookings: Vec<String> = user
            .bookings
            .iter()
            .map(|booking| {
                format!("{} {}–{} GPUs {}", booking.state, booking.start, booking.end, format_gpu_list(&booking.gpus))
            })
            .collect();
        println!(
            "{:<20} {:<7} {:>6} {:>7} {:>4} {:>6} {:>9} {:>9}  {}{}",
            user.user,
            if user.allowed { "yes" } else { "no" },
            user.cpus,
            user.memory,
            user.gpus,
            user.forward_port.map_or("-".to_string(), |port| port.to_string()),
            size(&user.work),
            size(&user.backup),
            if bookings.is_empty() { "-".to_string() } else { bookings.join("; ") },
            if user.must_change_password { "  (temporary password)" } else { "" },
        );
    }
}

fn report(lab: &Lab, arguments: ReportArgs) -> Result<()> {
    if let (Some(from), Some(to)) = (arguments.from, arguments.to)
        && from > to
    {
        bail!(UsageError(format!("--from {from} is after --to {to}")));
    }
    let mut report = Report::new(arguments.from, arguments.to);
    let skipped = report::read_history(lab, &mut report, arguments.skip_bad_rows)?;
    for problem in &skipped.shown {
        eprintln!("warning: {problem} (row skipped)");
    }
    if skipped.count > skipped.shown.len() {
        eprintln!("warning: {} rows skipped in all", skipped.count);
    }
    let lines = report.lines();
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
    } else if arguments.csv {
        let mut writer = csv::Writer::from_writer(std::io::stdout());
        for line in &lines {
            writer.serialize(line)?;
        }
        writer.flush()?;
    } else if lines.is_empty() {
        println!("no usage in the period");
    } else {
        println!(
            "{:<20} {:<7} {:>8} {:>13} {:>10} {:>10} {:>12}",
            "user", "month", "bookings", "cancellations", "GPU-hours", "CPU-hours", "memory-GB-h"
        );
        for line in &lines {
            println!(
                "{:<20} {:<7} {:>8} {:>13} {:>10} {:>10} {:>12}",
                line.user,
                line.month,
                line.bookings,
                line.cancellations,
                line.gpu_hours,
                line.cpu_hours,
                line.memory_gb_hours
            );
        }
    }
    Ok(())
}
