//! `run-container`: the admin starts a container for a user now, outside the schedule, with
//! the same specification the monitor would build; `--dry-run` prints that specification.
//! This file parses and prints; the checks and the container work are in the library
//! ([`gpu_booking::monitor::manual`]).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use gpu_booking::cli::finish;
use gpu_booking::cli::run_container::{Cli, Command};
use gpu_booking::clock;
use gpu_booking::error::UsageError;
use gpu_booking::lab::Lab;
use gpu_booking::model::UserId;
use gpu_booking::monitor::manual::{self, Order};

fn main() -> ExitCode {
    gpu_booking::cli::end_quietly_on_closed_pipe();
    finish(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    let lab = Lab::at(cli.global.root(), clock::now()?);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cli.command {
        Some(Command::Stop { user }) => {
            let user = UserId::parse(&user).map_err(UsageError)?;
            runtime.block_on(manual::stop(&lab, &user))
        }
        None => {
            let arguments = cli.start;
            let user = arguments.user.clone().context("--user is required")?;
            let order = Order {
                user: UserId::parse(&user).map_err(UsageError)?,
                cpus: arguments.cpus,
                memory: arguments.memory,
                gpus: arguments.gpus,
                image: arguments.image,
                extra_command: arguments.extra_command,
                hours: arguments.hours,
            };
            let planned = manual::plan(&lab, &order)?;
            if arguments.dry_run {
                println!("{}", serde_json::to_string_pretty(&planned.spec()?)?);
                return Ok(());
            }
            runtime.block_on(manual::start(&lab, &planned, console::Term::stderr().is_term()))
        }
    }
}
