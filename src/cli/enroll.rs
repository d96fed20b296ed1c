//! `enroll`'s command line (the admin's tool). In the library so completions and man pages can
//! be generated for all four binaries from one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{ENVIRONMENT_HELP, GlobalArgs};
use crate::enrollment::parse_limit;
use crate::store::config::yaml::Limit;

#[derive(Debug, Parser)]
#[command(name = "enroll", version, about = "Enrol users, set their limits, and check the configuration", after_help = ENVIRONMENT_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every configuration and state file and list each problem with file, line and field
    Check,
    /// Enrol a user: allow them, set limits, create their folders, give a port and a password
    Add(AddArgs),
    /// Remove a user: from allow_userIDs, their limits and their settings (folders kept unless --purge)
    Remove {
        /// The user id
        id: String,
        /// Also delete their work and backup folders
        #[arg(long)]
        purge: bool,
        /// Cancel their future bookings and end a running one at the next half hour first
        #[arg(long)]
        force: bool,
    },
    /// List users: limits, ports, active bookings and folder sizes
    List {
        #[arg(long)]
        json: bool,
    },
    /// Reset a user's password (a temporary one is printed once unless --password-stdin)
    Passwd {
        /// The user id
        id: String,
        /// Read the new password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set or clear a user's own limits in capability_config.yaml (comments are kept)
    Limits(LimitsArgs),
    /// Usage per user and month from jobs/used.csv: bookings, cancellations, GPU/CPU/memory hours
    Report(ReportArgs),
    /// Rewrite relative volume folders in users_config.yaml as absolute paths, as the original
    /// system needs them (it resolves relative paths against its own working folder)
    AbsolutePaths {
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script
    Completions {
        shell: Shell,
        /// The binary to complete
        #[arg(long, value_enum, default_value_t = Binary::Enroll, value_name = "NAME")]
        binary: Binary,
    },
    /// Write man pages for all four binaries (and their subcommands) into a folder
    Man {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Limits given on the command line; each is a number or `max` (the host's value).
#[derive(Debug, Clone, Default, Args)]
pub struct LimitFlags {
    /// CPUs per booking
    #[arg(long, value_name = "N|max", value_parser = parse_limit)]
    pub cpus: Option<Limit>,
    /// Memory (RAM + swap) per booking, GB
    #[arg(long, value_name = "N|max", value_parser = parse_limit)]
    pub memory: Option<Limit>,
    /// GPUs per booking
    #[arg(long, value_name = "N|max", value_parser = parse_limit)]
    pub gpus: Option<Limit>,
    /// Work folder quota, GB
    #[arg(long, value_name = "GB|max", value_parser = parse_limit)]
    pub work_space: Option<Limit>,
    /// Backup folder quota, GB
    #[arg(long, value_name = "GB|max", value_parser = parse_limit)]
    pub backup_space: Option<Limit>,
}

impl LimitFlags {
    /// The flags given, as (key in capability_config.yaml, value).
    pub fn given(&self) -> Vec<(&'static str, Limit)> {
        [
            ("cpus", self.cpus),
            ("memory", self.memory),
            ("gpus", self.gpus),
            ("backup_space", self.backup_space),
            ("work_space", self.work_space),
        ]
        .into_iter()
        .filter_map(|(field, value)| value.map(|value| (field, value)))
        .collect()
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user id (lower-case letters, digits, '_', '.', '-')
    pub id: String,
    #[command(flatten)]
    pub limits: LimitFlags,
    /// Their forward port (10001-11000, nobody else's) [default: a free one at random]
    #[arg(long, value_name = "PORT")]
    pub forward_port: Option<u16>,
    /// Read their password from the first line of standard input [default: a temporary one]
    #[arg(long)]
    pub password_stdin: bool,
    /// A file of OpenSSH public keys (one per line) that may log into their container
    #[arg(long, value_name = "FILE")]
    pub key: Vec<PathBuf>,
    /// Their e-mail address: the monitor writes when their container is ready, an hour before
    /// the end, and when a booking could not start
    #[arg(long, value_name = "ADDR")]
    pub email: Option<String>,
}

#[derive(Debug, Args)]
pub struct LimitsArgs {
    /// The user id
    pub id: String,
    #[command(flatten)]
    pub limits: LimitFlags,
    /// Remove a limit from their block, so the default applies
    #[arg(long, value_enum, value_name = "FIELD")]
    pub clear: Vec<LimitName>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// First day counted (YYYY-MM-DD)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<chrono::NaiveDate>,
    /// Last day counted, included (YYYY-MM-DD)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<chrono::NaiveDate>,
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    #[arg(long)]
    pub csv: bool,
    /// Report without the rows of used.csv that cannot be read (each named in a warning)
    /// instead of stopping at them
    #[arg(long)]
    pub skip_bad_rows: bool,
}

/// A limit key, as `--clear` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LimitName {
    Cpus,
    Memory,
    Gpus,
    WorkSpace,
    BackupSpace,
}

impl LimitName {
    /// The key in capability_config.yaml.
    pub fn field(self) -> &'static str {
        match self {
            LimitName::Cpus => "cpus",
            LimitName::Memory => "memory",
            LimitName::Gpus => "gpus",
            LimitName::WorkSpace => "work_space",
            LimitName::BackupSpace => "backup_space",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The package's binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Binary {
    Book,
    Monitor,
    RunContainer,
    Enroll,
}
