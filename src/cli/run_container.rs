//! `run-container`'s command line. In the library so `enroll` can generate completions and man
//! pages.

use clap::{Args, Parser, Subcommand};

use super::{ENVIRONMENT_HELP, GlobalArgs};

#[derive(Debug, Parser)]
#[command(
    name = "run-container",
    version,
    about = "Start a container for a user now, outside the schedule (admin), or stop it",
    after_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub start: StartArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The user whose container this is (they must have logged in or been enrolled once)
    #[arg(long, value_name = "ID")]
    pub user: Option<String>,
    /// CPUs, at least 1 with at most two decimals [default: the user's limit]
    #[arg(long, allow_negative_numbers = true)]
    pub cpus: Option<f64>,
    /// Memory in GB, RAM + swap [default: the user's limit]
    #[arg(long)]
    pub memory: Option<u32>,
    /// A number of GPUs (free ones are chosen) or a list of ids such as `0,2` (a single id: `3,`)
    #[arg(long, default_value = "0")]
    pub gpus: String,
    /// Image [default: the user's, else the host's]
    #[arg(long)]
    pub image: Option<String>,
    /// Command run in the container at start
    #[arg(long, value_name = "CMD")]
    pub extra_command: Option<String>,
    /// Hours the container is labelled for (it runs until `run-container stop`)
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Print the container specification as JSON and touch nothing (no Docker engine needed)
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up, stop and remove the user's container
    Stop {
        #[arg(long, value_name = "ID")]
        user: String,
    },
}
