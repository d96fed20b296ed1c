//! Shell completions and man pages for the four binaries, generated from their clap
//! definitions (`enroll completions`, `enroll man`), so they never drift from `--help`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::enroll::{Binary, Shell};

pub const BINARIES: [Binary; 4] = [Binary::Book, Binary::Monitor, Binary::RunContainer, Binary::Enroll];

/// The binary's clap command, as its `--help` shows it.
pub fn command(binary: Binary) -> clap::Command {
    match binary {
        Binary::Book => super::book::Cli::command(),
        Binary::Monitor => super::monitor::Cli::command(),
        Binary::RunContainer => super::run_container::Cli::command(),
        Binary::Enroll => super::enroll::Cli::command(),
    }
}

/// The completion script for one binary and shell.
pub fn completions(shell: Shell, binary: Binary) -> Vec<u8> {
    let mut command = command(binary);
    let name = command.get_name().to_string();
    let mut script = Vec::new();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut command, name, &mut script),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut command, name, &mut script),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut command, name, &mut script),
    }
    script
}

/// Writes `<binary>.1` for each binary and `<binary>-<subcommand>.1` for each subcommand into
/// `folder` (created if missing). Returns the files written, by name.
pub fn write_man_pages(folder: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(folder).with_context(|| format!("cannot create the folder {}", folder.display()))?;
    for binary in BINARIES {
        clap_mangen::generate_to(command(binary), folder)
            .with_context(|| format!("cannot write man pages into {}", folder.display()))?;
    }
    let mut written: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("cannot list {}", folder.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "1"))
        .collect();
    written.sort();
    Ok(written)
}
