//! `book`'s command line (the student's tool). The types live in the library so `enroll` can
//! generate completions and man pages for all four binaries from one place; below them, how
//! the flags read as the library's requests.

use clap::{Args, Parser, Subcommand};

use super::{ENVIRONMENT_HELP, GlobalArgs};
use crate::account::DefaultsChange;
use crate::booking::{Asked, Wanted};
use crate::error::UsageError;

#[derive(Debug, Parser)]
#[command(
    name = "book",
    version,
    about = "Book time on the shared GPU server",
    long_about = "Book time on the shared GPU server. Without a command, asks for your booking step by step.\n\
                  Over SSH (`ssh booking@server list --timeline`), the words after the host are the command.",
    after_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Your user id (asked when missing)
    #[arg(long, global = true, value_name = "ID")]
    pub user: Option<String>,
    /// Read the password from the first line of standard input (a new user: the password to set)
    #[arg(long, global = true)]
    pub password_stdin: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Book a window (asks for anything not given as a flag)
    New(NewArgs),
    /// Show the active bookings (no login needed)
    List(ListArgs),
    /// Find the earliest window that fits a request (no login needed)
    Free(FreeArgs),
    /// Cancel a booking: a future one is removed, a running one ends at the next half hour
    Cancel {
        /// Which booking, by its start (needed when you hold several)
        #[arg(long, value_name = "SPEC")]
        start: Option<String>,
    },
    /// Move the end of a booking: later if the same GPUs stay free, or earlier
    Extend {
        /// The new end: `YYYY MM DD hh mm` (before the current end shortens the booking), or
        /// `N-hour`/`N-day` counted from the current end
        #[arg(long, value_name = "SPEC")]
        end: String,
        /// Which booking, by its start (needed when you hold several)
        #[arg(long, value_name = "SPEC")]
        start: Option<String>,
    },
    /// Your bookings, container name, port and time left
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Ask the monitor to restart your running container
    Restart,
    /// Your saved defaults: forward port, image, extra command, password, SSH keys, e-mail
    Options(OptionsArgs),
}

#[derive(Debug, Default, Args)]
pub struct NewArgs {
    /// CPUs: at least 1, with at most two decimals (e.g. 4.5)
    #[arg(long, allow_negative_numbers = true)]
    pub cpus: Option<f64>,
    /// Memory in GB (RAM + swap)
    #[arg(long)]
    pub memory: Option<u32>,
    /// Number of GPUs
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Start: now, N-day, N-week, `1-week 2-day`, or `YYYY MM DD hh mm` (mm 00 or 30)
    #[arg(long, value_name = "SPEC")]
    pub start: Option<String>,
    /// End: N-hour, N-day, N-week (counted from the start), or `YYYY MM DD hh mm`
    #[arg(long, value_name = "SPEC")]
    pub end: Option<String>,
    /// Image for this booking only (one of the host's)
    #[arg(long)]
    pub image: Option<String>,
    /// Command run in the container at start, for this booking only
    #[arg(long, value_name = "CMD")]
    pub extra_command: Option<String>,
    /// Forward port for this booking only
    #[arg(long, value_name = "PORT")]
    pub forward_port: Option<u16>,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// If the window does not fit, take the earliest one that does
    #[arg(long)]
    pub earliest: bool,
    /// Print the booking as one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
    /// Only my bookings (needs --user and a login)
    #[arg(long)]
    pub mine: bool,
    /// A per-GPU timeline of the coming days
    #[arg(long)]
    pub timeline: bool,
    /// Days the timeline shows
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=14))]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct FreeArgs {
    /// CPUs: at least 1, with at most two decimals
    #[arg(long, allow_negative_numbers = true)]
    pub cpus: f64,
    #[arg(long)]
    pub memory: u32,
    #[arg(long, default_value_t = 0)]
    pub gpus: u32,
    /// How long: N-hour, N-day, N-week, or combinations (`1-week 2-day`)
    #[arg(long, value_name = "SPEC")]
    pub duration: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OptionsArgs {
    /// Your forward port (10001-11000, not another user's)
    #[arg(long, value_name = "PORT")]
    pub forward_port: Option<u16>,
    /// Your default image; `default` for the host's
    #[arg(long)]
    pub image: Option<String>,
    /// Your default extra command; empty for none
    #[arg(long, value_name = "CMD")]
    pub extra_command: Option<String>,
    /// Add an SSH public key (the whole line of your id_*.pub)
    #[arg(long, value_name = "KEY")]
    pub add_ssh_key: Vec<String>,
    /// Remove a saved key, by its number or its comment
    #[arg(long, value_name = "N|COMMENT")]
    pub remove_ssh_key: Vec<String>,
    /// Change your password (asked twice; with --password-stdin, the second line)
    #[arg(long)]
    pub change_password: bool,
    /// Where the monitor writes to you (container ready, an hour before the end, start refused); `none` for no mail
    #[arg(long, value_name = "ADDR|none")]
    pub email: Option<String>,
    #[arg(long)]
    pub json: bool,
}

impl NewArgs {
    /// True when every flag a booking needs was given, so nothing has to be asked.
    pub fn is_complete(&self) -> bool {
        self.missing().is_empty()
    }

    fn missing(&self) -> Vec<&'static str> {
        [
            ("--cpus", self.cpus.is_none()),
            ("--memory", self.memory.is_none()),
            ("--gpus", self.gpus.is_none()),
            ("--start", self.start.is_none()),
            ("--end", self.end.is_none()),
        ]
        .into_iter()
        .filter_map(|(flag, missing)| missing.then_some(flag))
        .collect()
    }

    /// The request the flags make; a usage error naming the flags that are missing.
    pub fn asked(&self) -> Result<Asked, UsageError> {
        let missing = self.missing();
        if !missing.is_empty() {
            return Err(UsageError(format!("without a terminal, book new needs {}", missing.join(", "))));
        }
        Ok(Asked {
            cpus: self.cpus.unwrap_or_default(),
            memory: self.memory.unwrap_or_default(),
            gpus: self.gpus.unwrap_or_default(),
            start: self.start.clone().unwrap_or_default(),
            end: self.end.clone().unwrap_or_default(),
            image: self.image.clone(),
            extra_command: self.extra_command.clone(),
            forward_port: self.forward_port,
        })
    }

    /// True when an option of the booking itself (image, extra command, port) was given.
    pub fn has_booking_options(&self) -> bool {
        self.image.is_some() || self.extra_command.is_some() || self.forward_port.is_some()
    }
}

impl FreeArgs {
    pub fn wanted(&self) -> Wanted {
        Wanted { cpus: self.cpus, memory: self.memory, gpus: self.gpus, duration: self.duration.clone() }
    }
}

impl OptionsArgs {
    /// True when no flag asks for a change.
    pub fn nothing_asked(&self) -> bool {
        self.forward_port.is_none()
            && self.image.is_none()
            && self.extra_command.is_none()
            && self.add_ssh_key.is_empty()
            && self.remove_ssh_key.is_empty()
            && self.email.is_none()
            && !self.change_password
    }

    /// The change the flags ask for: `--image default` is the host's image, an empty extra
    /// command none, `--email none` no mail.
    pub fn change(&self) -> DefaultsChange {
        DefaultsChange {
            forward_port: self.forward_port,
            image: self.image.clone().map(|image| (image != "default").then_some(image)),
            extra_command: self
                .extra_command
                .clone()
                .map(|command| Some(command).filter(|command| !command.trim().is_empty())),
            add_ssh_keys: self.add_ssh_key.clone(),
            remove_ssh_keys: self.remove_ssh_key.clone(),
            email: self.email.clone().map(|address| Some(address).filter(|address| address.trim() != "none")),
        }
    }
}
