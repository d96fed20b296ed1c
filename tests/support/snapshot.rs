//! Every folder, file and link under a root, for "a refused command changes nothing" checks.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What a file system entry under a root holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Folder,
    File(Vec<u8>),
    /// A symbolic link, by where it points (never followed).
    Link(PathBuf),
    /// A FIFO, socket or device: never opened (a FIFO would block the reader).
    Special,
}

impl Entry {
    /// A file's bytes; nothing for anything else.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Entry::File(bytes) => bytes,
            _ => &[],
        }
    }
}

/// Entries keyed by their path relative to the root, with `/` separators.
pub type Snapshot = BTreeMap<String, Entry>;

/// The lock file. Any command may create it (it is how the state lock is taken), and it never
/// holds data, so snapshots leave it out.
pub const LOCK_FILE: &str = "jobs/.lock";

/// Every entry under `root`, leaving out [`LOCK_FILE`].
pub fn snapshot(root: &Path) -> Snapshot {
    let mut entries = BTreeMap::new();
    walk(root, root, &mut entries);
    entries.remove(LOCK_FILE);
    entries
}

fn walk(root: &Path, folder: &Path, entries: &mut Snapshot) {
    for entry in fs::read_dir(folder).unwrap_or_else(|error| panic!("list {}: {error}", folder.display())) {
        let entry = entry.expect("read a folder entry");
        let path = entry.path();
        let relative = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            entries.insert(relative, Entry::Folder);
            walk(root, &path, entries);
        } else if kind.is_symlink() {
            let target =
                fs::read_link(&path).unwrap_or_else(|error| panic!("read the link {}: {error}", path.display()));
            entries.insert(relative, Entry::Link(target));
        } else if !kind.is_file() {
            entries.insert(relative, Entry::Special);
        } else {
            let bytes = fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
            entries.insert(relative, Entry::File(bytes));
        }
    }
}

/// Asserts that nothing under the root changed between two snapshots, naming what did (and,
/// for a short text file, how).
pub fn assert_unchanged(before: &Snapshot, after: &Snapshot, context: &str) {
    let mut differences = Vec::new();
    for (path, entry) in before {
        match after.get(path) {
            None => differences.push(format!("{path} was removed")),
            Some(now) if now != entry => differences.push(changed(path, entry, now)),
            Some(_) => {}
        }
    }
    differences
        .extend(after.keys().filter(|path| !before.contains_key(*path)).map(|path| format!("{path} was created")));
    assert!(differences.is_empty(), "{context}: files under the root changed:\n{}", differences.join("\n"));
}

/// How a file changed, with both versions when they are short enough to read.
fn changed(path: &str, before: &Entry, after: &Entry) -> String {
    const READABLE: usize = 2000;
    match (before, after) {
        (Entry::File(old), Entry::File(new)) if old.len() + new.len() <= READABLE => format!(
            "{path} was changed:\n--- before ---\n{}--- after ---\n{}",
            String::from_utf8_lossy(old),
            String::from_utf8_lossy(new)
        ),
        _ => format!("{path} was changed"),
    }
}
