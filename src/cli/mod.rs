//! What the four binaries share on the command line: the global flags and the mapping from
//! an error to an exit code (see [`crate::error`] for the table). The submodules hold each
//! binary's clap definitions (types only, no logic), so `enroll completions` and `enroll man`
//! can generate shell completions and man pages for all four binaries from one place.

pub mod book;
pub mod enroll;
pub mod generate;
pub mod monitor;
pub mod run_container;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::error::{EXIT_OK, MESSAGE_LINE_CHARS, exit_code_for, fit_lines};
use crate::store::root::Root;

/// Flags every binary takes, before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Folder holding cfg/ and jobs/ [default: the current directory]
    #[arg(long, global = true, env = crate::store::root::ROOT_VARIABLE, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl GlobalArgs {
    pub fn root(&self) -> Root {
        // Absolute, because paths derived from it end up in users_config.yaml and in
        // container mounts, which must not depend on where a command was started.
        let dir = self.root.clone().unwrap_or_else(|| PathBuf::from("."));
        // Canonical too: the root names this deployment's containers in their labels, and
        // `/srv/x/` and `/srv/x` must be the same deployment.
        let absolute = std::fs::canonicalize(&dir).or_else(|_| std::path::absolute(&dir)).unwrap_or(dir);
        Root::new(absolute)
    }
}

/// Text appended to each binary's `--help`.
pub const ENVIRONMENT_HELP: &str = "\
Environment:
  GPU_BOOKING_ROOT   folder holding cfg/ and jobs/ (same as --root)
  GPU_BOOKING_NOW    \"YYYY-MM-DD HH:MM\" used in place of the clock (tests, rehearsals)

Exit status: 0 ok, 1 error, 2 usage, 3 refused (no capacity, conflict, quota), 4 authentication";

/// Lets a closed pipe end the program quietly, as it ends `ls | head`: Rust ignores SIGPIPE,
/// so `book list --json | head -1` would otherwise panic in `println!`. Called first in
/// every binary's `main`.
pub fn end_quietly_on_closed_pipe() {
    // SAFETY: called at the start of `main`, before any other thread exists; SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Prints an error the way every binary does and turns it into the exit code.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => {
            eprintln!("{ERROR_PREFIX}{}", describe(&error));
            ExitCode::from(exit_code_for(&error))
        }
    }
}

const ERROR_PREFIX: &str = "error: ";

/// The error and its causes on one line each, without repeating a cause that already
/// appears in the message above it; each line short enough to read even when the error
/// quotes a damaged file (see [`fit_lines`]), with room for [`ERROR_PREFIX`].
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
    }
    fit_lines(&text, MESSAGE_LINE_CHARS - ERROR_PREFIX.len())
}
