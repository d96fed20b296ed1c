//! `enroll`: the admin's tool.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use gpu_booking::check;
use gpu_booking::cli::{ENVIRONMENT_HELP, GlobalArgs, finish};

#[derive(Debug, Parser)]
#[command(name = "enroll", version, about = "Enrol users, set their limits, and check the configuration", after_help = ENVIRONMENT_HELP)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every configuration and state file and list each problem with file, line and field
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    finish(run(cli))
}

fn run(cli: Cli) -> Result<()> {
    let root = cli.global.root();
    match cli.command {
        Command::Check => {
            let problems = check::check_root(&root)?;
            for problem in &problems {
                println!("{problem}");
            }
            let errors = check::count_errors(&problems);
            let warnings = problems.len() - errors;
            if errors > 0 {
                anyhow::bail!("{errors} error(s), {warnings} warning(s) under {}", root.dir().display());
            }
            println!("ok: {} is consistent ({warnings} warning(s))", root.dir().display());
            Ok(())
        }
    }
}
