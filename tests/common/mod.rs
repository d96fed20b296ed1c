//! Helpers shared by the integration tests: scratch copies of the fixture roots, snapshots of
//! every file under a root, and running the real binaries.
//!
//! Each test crate uses only some of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join(name)
}

/// A fresh temporary folder holding a copy of `tests/fixtures/<name>` (its `cfg/` and `jobs/`).
/// The folder is removed when the returned guard is dropped.
pub fn copy_fixture(name: &str) -> TempDir {
    let scratch = tempfile::tempdir().expect("create a temporary folder");
    copy_tree(&fixture(name), scratch.path());
    scratch
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|error| panic!("create {}: {error}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|error| panic!("list {}: {error}", from.display())) {
        let entry = entry.expect("read a folder entry");
        let source = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&source, &target);
        } else {
            // Write the bytes rather than `fs::copy`, so a read-only checkout still gives a
            // writable scratch copy.
            let bytes = fs::read(&source).unwrap_or_else(|error| panic!("read {}: {error}", source.display()));
            fs::write(&target, bytes).unwrap_or_else(|error| panic!("write {}: {error}", target.display()));
        }
    }
}

/// What a file system entry under a root holds, for before/after comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Folder,
    File(Vec<u8>),
    /// A symbolic link, by where it points (never followed).
    Link(PathBuf),
    /// A FIFO, socket or device: never opened (a FIFO would block the reader).
    Special,
}

/// The lock file. Any command may create it (it is how the state lock is taken), and it never
/// holds data, so snapshots leave it out.
pub const LOCK_FILE: &str = "jobs/.lock";

/// Every folder and every file's bytes under `root`, keyed by the path relative to `root`
/// (with `/` separators), leaving out [`LOCK_FILE`].
pub fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    let mut entries = BTreeMap::new();
    walk(root, root, &mut entries);
    entries.remove(LOCK_FILE);
    entries
}

fn walk(root: &Path, folder: &Path, entries: &mut BTreeMap<String, Entry>) {
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

/// Asserts that nothing under the root changed between two snapshots, naming what did.
pub fn assert_unchanged(before: &BTreeMap<String, Entry>, after: &BTreeMap<String, Entry>, context: &str) {
    let mut differences = Vec::new();
    for (path, entry) in before {
        match after.get(path) {
            None => differences.push(format!("{path} was removed")),
            Some(now) if now != entry => differences.push(format!("{path} was changed")),
            Some(_) => {}
        }
    }
    for path in after.keys() {
        if !before.contains_key(path) {
            differences.push(format!("{path} was created"));
        }
    }
    assert!(differences.is_empty(), "{context}: files under the root changed: {}", differences.join("; "));
}

/// The output of one run of a binary, decoded.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout and stderr together, for "does the output mention …" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Fails the test if the binary panicked (the message or the exit code 101 gives it away).
    pub fn assert_no_panic(&self, context: &str) {
        assert!(!self.all_output().contains("panicked"), "{context}: the binary panicked:\n{self}");
        assert_ne!(self.code, Some(101), "{context}: exit code 101 (a panic):\n{self}");
        assert!(self.code.is_some(), "{context}: killed by a signal:\n{self}");
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "exit code: {:?}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// The path of one of the package's binaries, built by cargo for the integration tests.
pub fn binary(name: &str) -> PathBuf {
    match name {
        "book" => PathBuf::from(env!("CARGO_BIN_EXE_book")),
        "monitor" => PathBuf::from(env!("CARGO_BIN_EXE_monitor")),
        "run-container" => PathBuf::from(env!("CARGO_BIN_EXE_run-container")),
        "enroll" => PathBuf::from(env!("CARGO_BIN_EXE_enroll")),
        other => panic!("no binary named {other}"),
    }
}

/// Runs a binary with `args`, with the environment variables that would redirect it cleared,
/// from a neutral working folder, and no input.
pub fn run_binary(name: &str, args: &[&str]) -> Run {
    run_output(
        name,
        Command::new(binary(name))
            .args(args)
            .env_remove("GPU_BOOKING_ROOT")
            .env_remove("GPU_BOOKING_NOW")
            .env_remove("RUST_BACKTRACE")
            .current_dir(std::env::temp_dir())
            .stdin(std::process::Stdio::null())
            .output(),
    )
}

/// Runs a binary with `args` like [`run_binary`], but with the clock fixed at `now` and
/// `input` on standard input (a password for `--password-stdin`).
pub fn run_with_input(name: &str, args: &[&str], input: &str, now: &str) -> Run {
    use std::io::Write as _;
    let mut child = Command::new(binary(name))
        .args(args)
        .env_remove("GPU_BOOKING_ROOT")
        .env_remove("SSH_CLIENT")
        .env_remove("RUST_BACKTRACE")
        .env("GPU_BOOKING_NOW", now)
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("run {name}: {error}"));
    // A run refused before it reads its input closes the pipe early; that is not a failure.
    let _ = child.stdin.take().expect("stdin is piped").write_all(input.as_bytes());
    let run = run_output(name, child.wait_with_output());
    run.assert_no_panic(&format!("{name} {args:?}"));
    run
}

/// Runs `command` with `input` on standard input; a run still going after `limit` is killed
/// and reported with `code: None` and a note on stderr, so a binary that hangs (on a FIFO, say)
/// fails its test rather than the whole run.
pub fn run_limited(mut command: Command, input: &str, limit: std::time::Duration) -> Run {
    use std::io::{Read, Write as _};
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    // A run refused before it reads its input closes the pipe early; that is not a failure.
    let _ = child.stdin.take().expect("stdin is piped").write_all(input.as_bytes());
    // Read both pipes while waiting, so a long output cannot block the child.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let started = std::time::Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            timed_out = true;
            break child.wait().expect("reap the child");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let stdout = out_reader.join().expect("read stdout");
    let mut stderr = String::from_utf8_lossy(&err_reader.join().expect("read stderr")).into_owned();
    if timed_out {
        stderr.push_str(&format!("\n[still running after {limit:?}: killed]\n"));
    }
    Run {
        code: if timed_out { None } else { status.code() },
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    }
}

fn run_output(name: &str, output: std::io::Result<Output>) -> Run {
    let output = output.unwrap_or_else(|error| panic!("run {name}: {error}"));
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `enroll <args>`.
pub fn enroll(args: &[&str]) -> Run {
    run_binary("enroll", args)
}

/// `enroll --root <root> check`.
pub fn enroll_check(root: &Path) -> Run {
    let root = root.to_str().expect("a UTF-8 temporary path");
    enroll(&["--root", root, "check"])
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

/// Appends `text` to `root/relative`.
pub fn append(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    let mut contents = fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {relative}: {error}"));
    contents.push_str(text);
    fs::write(&path, contents).unwrap_or_else(|error| panic!("write {relative}: {error}"));
}
