//! `tests/fixtures/`: the roots the tests start from (the original system's example, the
//! configurations each suite writes its scenarios on), scratch copies of them, and the line
//! edits that damage a copy.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join(name)
}

/// The text of `tests/fixtures/<relative>`.
pub fn fixture_text(relative: &str) -> String {
    let path = fixture(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// The shipped configuration folder, `cfg/` at the top of the checkout.
pub fn shipped_cfg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cfg")
}

/// A fresh temporary folder holding a copy of `tests/fixtures/<name>` (its `cfg/` and `jobs/`).
/// The folder is removed when the returned guard is dropped.
pub fn copy_fixture(name: &str) -> TempDir {
    let scratch = tempfile::tempdir().expect("create a temporary folder");
    copy_tree(&fixture(name), scratch.path());
    scratch
}

/// Copies every folder and file under `from` to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|error| panic!("create {}: {error}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|error| panic!("list {}: {error}", from.display())) {
        let entry = entry.expect("read a folder entry");
        let source = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&source, &target);
        } else {
            copy_file(&source, &target);
        }
    }
}

/// Copies one file with its mode (a script stays executable), creating the folders on the
/// way. The copy is always writable by its owner, so a read-only checkout still gives a
/// writable scratch copy.
pub fn copy_file(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::create_dir_all(to.parent().expect("a parent folder"))
        .unwrap_or_else(|error| panic!("create the folder of {}: {error}", to.display()));
    let bytes = fs::read(from).unwrap_or_else(|error| panic!("read {}: {error}", from.display()));
    fs::write(to, bytes).unwrap_or_else(|error| panic!("write {}: {error}", to.display()));
    let mode = fs::metadata(from).unwrap_or_else(|error| panic!("{}: {error}", from.display())).permissions().mode();
    fs::set_permissions(to, fs::Permissions::from_mode(mode | 0o200))
        .unwrap_or_else(|error| panic!("chmod {}: {error}", to.display()));
}

/// In line `line` (1-based) of `root/relative`, replaces the text `from`, which must occur
/// there exactly once, with `to`. Checking the old text first keeps the line numbers in the
/// tests honest: if a fixture moves, the test says so instead of damaging the wrong line.
pub fn edit_line(root: &Path, relative: &str, line: usize, from: &str, to: &str) {
    let path = root.join(relative);
    let text = fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {relative}: {error}"));
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    assert!(line >= 1 && line <= lines.len(), "{relative} has no line {line}");
    let old = &lines[line - 1];
    assert_eq!(
        old.matches(from).count(),
        1,
        "{relative}:{line} reads {old:?}, which should hold {from:?} exactly once"
    );
    lines[line - 1] = old.replacen(from, to, 1);
    fs::write(&path, lines.join("\n")).unwrap_or_else(|error| panic!("write {relative}: {error}"));
}

/// Appends `text` to `root/relative`, creating the file (and its folder) when missing.
pub fn append(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    let mut contents = fs::read_to_string(&path).unwrap_or_default();
    contents.push_str(text);
    write(root, relative, &contents);
}

/// Writes `text` to `root/relative`, creating its folder.
pub fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().expect("a parent folder")).expect("create the parent folder");
    fs::write(&path, text).unwrap_or_else(|error| panic!("write {relative}: {error}"));
}

/// The text of `root/relative`, which must exist.
pub fn read(root: &Path, relative: &str) -> String {
    fs::read_to_string(root.join(relative)).unwrap_or_else(|error| panic!("read {relative}: {error}"))
}

/// The names in `folder`, sorted: what `ls -A` shows.
pub fn names_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .unwrap_or_else(|error| panic!("list {}: {error}", folder.display()))
        .map(|entry| entry.expect("read a folder entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The `mail:` block of `host_deploy.yaml` for a mail server on 127.0.0.1 at `port`, without
/// encryption or login (the test servers are local).
pub fn mail_settings(port: u16) -> String {
    format!("mail:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n  from: \"GPU booking <gpu@lab.test>\"\n")
}

/// An SSH public key as a student pastes it, with its comment.
pub const ED25519_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";
