//! `monitor`'s command line. In the library so `enroll` can generate completions and man pages.

use clap::{Parser, Subcommand};

use super::{ENVIRONMENT_HELP, GlobalArgs};

#[derive(Debug, Parser)]
#[command(
    name = "monitor",
    version,
    about = "Start and stop booked containers on time (one pass), or show the GPUs and running bookings",
    after_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Show what the pass would do, and change nothing (no Docker engine needed)
    #[arg(long)]
    pub dry_run: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Each GPU (memory, utilisation, who holds it, its processes) and the running bookings
    Status,
}
