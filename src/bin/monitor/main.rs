//! `monitor`: one pass that brings the Docker engine in line with the schedule (run by
//! systemd at :00 and :30, at boot, and when `jobs/monitor_exec` changes), and a status view.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Parser;
use gpu_booking::cli::finish;
use gpu_booking::cli::monitor::{Cli, Command};
use gpu_booking::clock;
use gpu_booking::gpu::Nvml;
use gpu_booking::monitor::{self, PassOptions, report};

fn main() -> ExitCode {
    gpu_booking::cli::end_quietly_on_closed_pipe();
    finish(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    let root = cli.global.root();
    let now = clock::now()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let lines = match cli.command {
        Some(Command::Status) => runtime.block_on(report::status_lines(&root, now, &Nvml))?,
        None if cli.dry_run => report::dry_run_lines(&root, now)?,
        None => {
            let options = PassOptions { now, echo: true, progress: console::Term::stderr().is_term() };
            let summary = runtime.block_on(monitor::run(&root, &options, &Nvml))?;
            if summary.errors > 0 {
                bail!(
                    "the pass met {} error(s); see {}",
                    summary.errors,
                    root.jobs_dir().join("monitor.log").display()
                );
            }
            Vec::new()
        }
    };
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
