//! `backup.yaml`: the files and folders of a container that are saved into the user's backup
//! folder when a booking ends and mounted back at the next one. The template lives at
//! `cfg/templates/backup.yaml`; each user's copy at `<backup folder>/backup.yaml`.
//!
//! The format is the original's: `Dir:` and `File:` lists of
//! `[path under the backup folder, absolute path in the container]`.
//! Read only; the tools copy the template but never rewrite a user's list.

use std::path::{Component, Path};

use serde::Deserialize;

use super::yaml::{self, Findings, Parsed};
use crate::error::FileProblem;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackupList {
    #[serde(default, rename = "Dir")]
    dirs: Option<Vec<(String, String)>>,
    #[serde(default, rename = "File")]
    files: Option<Vec<(String, String)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
}

impl EntryKind {
    pub fn word(self) -> &'static str {
        match self {
            EntryKind::Dir => "folder",
            EntryKind::File => "file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupEntry {
    pub kind: EntryKind,
    /// Relative to the user's backup folder; never leaves it.
    pub backup_path: String,
    /// Absolute, inside the container.
    pub container_path: String,
}

#[derive(Debug, Clone, Default)]
pub struct BackupList {
    pub entries: Vec<BackupEntry>,
}

impl BackupList {
    /// Parses the list. An entry that could reach outside the backup folder (`..`, an
    /// absolute path) or that names a relative container path is left out and reported as a
    /// warning at its line; the other entries still count (one bad line must not stop a
    /// user's dotfiles being saved).
    pub fn parse(shown_path: &str, text: &str) -> Parsed<BackupList> {
        let raw: Option<RawBackupList> = yaml::parse(shown_path, text).map_err(|problem| vec![problem])?;
        let raw = raw.unwrap_or_default();
        let mut findings = Findings::new(shown_path, text);
        let mut entries = Vec::new();
        for (kind, key, list) in [(EntryKind::Dir, "Dir", raw.dirs), (EntryKind::File, "File", raw.files)] {
            for (backup_path, container_path) in list.unwrap_or_default() {
                let problem = match (check_backup_path(&backup_path), check_container_path(&container_path)) {
                    (Err(reason), _) => Some(format!("{backup_path:?}: {reason}; entry left out")),
                    (Ok(()), Err(reason)) => Some(format!("{container_path:?}: {reason}; entry left out")),
                    (Ok(()), Ok(())) => None,
                };
                if let Some(message) = problem {
                    let mut warning = FileProblem::warning(shown_path, line_of_text(text, &backup_path), key, message);
                    if warning.line.is_none() {
                        warning.line = crate::store::yaml_lines::line_of_key(text, &[key]);
                    }
                    findings.problems.push(warning);
                    continue;
                }
                if entries.len() == ENTRY_LIMIT {
                    let mut warning = FileProblem::warning(
                        shown_path,
                        line_of_text(text, &backup_path),
                        key,
                        format!("more than {ENTRY_LIMIT} entries; {backup_path:?} and the rest are left out"),
                    );
                    if warning.line.is_none() {
                        warning.line = crate::store::yaml_lines::line_of_key(text, &[key]);
                    }
                    findings.problems.push(warning);
                    break;
                }
                entries.push(BackupEntry { kind, backup_path, container_path });
            }
        }
        findings.finish(BackupList { entries })
    }
}

/// The first line holding `needle` (a list item has no key to look up).
fn line_of_text(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|line| line.contains(needle)).map(|index| index + 1)
}

/// Paths one list may name: each is copied out of the container, one after another.
pub const ENTRY_LIMIT: usize = 64;

/// Where nothing is restored: the kernel's file systems, the setup files, and the user's
/// own folders (mounted from the host already).
const RESERVED_CONTAINER_PATHS: &[&str] =
    &["/proc", "/sys", "/dev", "/.gpu-booking", "/root/Work", "/root/Backup", "/root/Dataset"];

/// A container path must be clean and absolute: `/` then plain names, no `.`, `..`, empty
/// part or trailing `/`, no control character or `:` (which Docker's own syntax would read as
/// an option), and not inside the places the container's setup owns.
pub fn check_container_path(path: &str) -> Result<(), String> {
    let clean = path.len() > 1
        && path.starts_with('/')
        && path[1..].split('/').all(|part| !part.is_empty() && part != "." && part != "..")
        && !path.chars().any(|character| character.is_control() || character == ':');
    if !clean {
        return Err("expected a clean absolute path in the container, such as /root/.ssh".into());
    }
    if let Some(reserved) = RESERVED_CONTAINER_PATHS
        .iter()
        .find(|reserved| path == **reserved || path.strip_prefix(**reserved).is_some_and(|rest| rest.starts_with('/')))
    {
        return Err(format!("{reserved} is not a place files are restored to"));
    }
    Ok(())
}

/// A backup path must stay inside the backup folder: relative, with no `..`.
pub fn check_backup_path(path: &str) -> Result<(), String> {
    let candidate = Path::new(path);
    if path.is_empty() {
        return Err("expected a path relative to the backup folder, found nothing".into());
    }
    for component in candidate.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("'..' would lead outside the backup folder".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("expected a path relative to the backup folder, found an absolute path".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_must_be_clean_and_absolute() {
        for good in ["/root/.ssh", "/root/.local/share/virtualenvs", "/etc/hosts.d", "/root/Workshop"] {
            assert_eq!(check_container_path(good), Ok(()), "{good}");
        }
        for bad in [
            "/",
            "",
            "root/.ssh",
            "/root/ok:ro",
            "/root/../etc",
            "/root/./x",
            "/root//x",
            "/root/x/",
            "/root/a\nb",
            "/proc/self",
            "/root/Work",
            "/root/Work/x",
            "/.gpu-booking/start",
            "/dev/sda",
        ] {
            assert!(check_container_path(bad).is_err(), "{bad:?} is accepted");
        }
    }
}
