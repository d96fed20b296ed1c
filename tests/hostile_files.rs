//! The booking account can write `jobs/` and the folder of `users_config.yaml`, and root runs
//! the monitor, `enroll` and `run-container` on them (issue 17). Whatever that account leaves
//! there in place of a state file — a symbolic link to a file it may not write, a hard link, a
//! FIFO, a planted temporary file — no tool reads or writes through it: it refuses, names the
//! file, exits non-zero, and the file the link points at is untouched.
//!
//! The tools behave the same whoever runs them, so these tests run as any user, on a root made
//! from the shipped `cfg/`, with targets outside the root standing in for `/etc/passwd`.
//! (`tests/e2e_journey.rs` makes the same attacks as the real `booking` account on a root-run
//! monitor.)

mod common;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Run;

const NOW: &str = "2026-11-23 10:00";
const PASSWORD: &str = "tulip-42";
const PRECIOUS: &str = "root:x:0:0:root:/root:/bin/bash\n";

/// A root from the shipped `cfg/` with `erin` enrolled, and a file outside it that stands in
/// for one the booking account must never write.
struct Lab {
    scratch: tempfile::TempDir,
    outside: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let scratch = tempfile::tempdir().expect("create a temporary folder");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("cfg");
        for name in ["host_deploy.yaml", "capability_config.yaml", "users/users_config.yaml", "templates/backup.yaml"] {
            let target = scratch.path().join("cfg").join(name);
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::copy(shipped.join(name), &target).unwrap_or_else(|error| panic!("copy cfg/{name}: {error}"));
        }
        fs::create_dir_all(scratch.path().join("jobs")).unwrap();
        let outside = tempfile::tempdir().expect("create a temporary folder");
        fs::write(outside.path().join("passwd"), PRECIOUS).unwrap();
        let lab = Lab { scratch, outside };
        let added = lab.run("enroll", &["add", "erin", "--password-stdin"], &format!("{PASSWORD}\n"));
        assert_eq!(added.code, Some(0), "enroll add:\n{added}");
        lab
    }

    fn root(&self) -> &Path {
        self.scratch.path()
    }

    fn target(&self) -> PathBuf {
        self.outside.path().join("passwd")
    }

    fn assert_target_untouched(&self, context: &str) {
        assert_eq!(
            fs::read_to_string(self.target()).unwrap(),
            PRECIOUS,
            "{context}: the file behind the link was written to"
        );
    }

    /// `jobs/<name>` becomes a symbolic link to the target.
    fn link(&self, relative: &str) {
        let path = self.root().join(relative);
        let _ = fs::remove_file(&path);
        symlink(self.target(), &path).unwrap();
    }

    fn run(&self, name: &str, args: &[&str], input: &str) -> Run {
        let mut child = Command::new(common::binary(name))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env("GPU_BOOKING_NOW", NOW)
            .env_remove("GPU_BOOKING_ROOT")
            .env_remove("SSH_ORIGINAL_COMMAND")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("run {name}: {error}"));
        // A command that refuses before reading its input closes the pipe first.
        if let Err(error) = child.stdin.take().unwrap().write_all(input.as_bytes()) {
            assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "writing to {name}'s input: {error}");
        }
        let output = child.wait_with_output().unwrap();
        let run = Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        run.assert_no_panic(name);
        run
    }

    fn book(&self, args: &[&str]) -> Run {
        let mut all = vec!["--user", "erin", "--password-stdin"];
        all.extend_from_slice(args);
        self.run("book", &all, &format!("{PASSWORD}\n"))
    }

    fn book_new(&self, start: &str) -> Run {
        self.book(&["new", "--cpus", "1", "--memory", "1", "--gpus", "0", "--start", start, "--end", "1-day", "--yes"])
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.root().join(relative)).unwrap_or_default()
    }
}

/// A refusal: a non-zero exit, and a message that names the file and says what it is.
fn assert_refused(run: &Run, file: &str, kind: &str, context: &str) {
    assert_eq!(run.code, Some(1), "{context}: expected a refusal (exit 1):\n{run}");
    assert!(
        run.stderr.contains(file) && run.stderr.contains(kind),
        "{context}: the message should name {file} and say it is {kind}:\n{run}"
    );
    assert!(!run.all_output().contains(PRECIOUS.trim()), "{context}: the target's contents were shown:\n{run}");
}

#[test]
fn a_history_swapped_for_a_link_is_neither_appended_to_nor_read() {
    let lab = Lab::new();
    assert_eq!(lab.book_new("2-day").code, Some(0));
    let booked = lab.read("jobs/booking.csv");
    lab.link("jobs/used.csv");
    let cancelled = lab.book(&["cancel", "--start", "2-day"]);
    assert_refused(&cancelled, "used.csv", "symbolic link", "book cancel");
    lab.assert_target_untouched("book cancel");
    assert_eq!(
        lab.read("jobs/booking.csv"),
        booked,
        "the cancelled booking must stay while its history cannot be written"
    );
    let report = lab.run("enroll", &["report"], "");
    assert_refused(&report, "used.csv", "symbolic link", "enroll report");
}

#[test]
fn a_schedule_swapped_for_a_link_is_not_read_and_not_written_through() {
    let lab = Lab::new();
    assert_eq!(lab.book_new("2-day").code, Some(0));
    lab.link("jobs/booking.csv");
    assert_refused(&lab.run("book", &["list"], ""), "booking.csv", "symbolic link", "book list");
    assert_refused(&lab.book_new("4-day"), "booking.csv", "symbolic link", "book new");
    assert_refused(&lab.run("enroll", &["check"], ""), "booking.csv", "symbolic link", "enroll check");
    lab.assert_target_untouched("booking.csv");
    assert!(fs::symlink_metadata(lab.root().join("jobs/booking.csv")).unwrap().is_symlink());
}

#[test]
fn a_request_file_swapped_for_a_link_or_a_fifo_is_refused_and_nothing_is_booked() {
    let lab = Lab::new();
    lab.link("jobs/monitor_exec");
    assert_refused(&lab.book_new("now"), "monitor_exec", "symbolic link", "book new --start now");
    lab.assert_target_untouched("monitor_exec");
    assert!(!lab.read("jobs/booking.csv").contains("erin"), "nothing may be booked when the request is refused");

    fs::remove_file(lab.root().join("jobs/monitor_exec")).unwrap();
    let made = Command::new("mkfifo").arg(lab.root().join("jobs/monitor_exec")).status();
    if !made.is_ok_and(|status| status.success()) {
        eprintln!("hostile_files: mkfifo is missing; the FIFO case is skipped");
        return;
    }
    assert_refused(&lab.book_new("now"), "monitor_exec", "FIFO", "book new --start now, a FIFO");
}

#[test]
fn users_config_swapped_for_a_link_is_refused_by_book_and_enroll() {
    let lab = Lab::new();
    lab.link("cfg/users/users_config.yaml");
    assert_refused(&lab.book(&["status"]), "users_config.yaml", "symbolic link", "book status");
    assert_refused(
        &lab.run("enroll", &["passwd", "erin", "--password-stdin"], "daffodil-77\n"),
        "users_config.yaml",
        "symbolic link",
        "enroll passwd",
    );
    lab.assert_target_untouched("users_config.yaml");
}

#[test]
fn the_lock_file_swapped_for_a_link_stops_every_tool() {
    let lab = Lab::new();
    lab.link("jobs/.lock");
    assert_refused(&lab.run("book", &["list"], ""), ".lock", "symbolic link", "book list");
    assert_refused(&lab.run("enroll", &["list"], ""), ".lock", "symbolic link", "enroll list");
    lab.assert_target_untouched(".lock");
}

#[test]
fn a_history_with_a_second_name_is_not_appended_to() {
    let lab = Lab::new();
    assert_eq!(lab.book_new("2-day").code, Some(0));
    let history = lab.root().join("jobs/used.csv");
    fs::write(&history, "start,end,user_id,cpus,memory,gpus,forward_port,image,extra_command\n").unwrap();
    let other_name = lab.outside.path().join("other-name");
    fs::hard_link(&history, &other_name).unwrap();
    let before = fs::read(&other_name).unwrap();
    assert_refused(&lab.book(&["cancel", "--start", "2-day"]), "used.csv", "2 hard links", "book cancel");
    assert_eq!(fs::read(&other_name).unwrap(), before, "the other name of used.csv was appended to");
}

#[test]
fn a_planted_temporary_file_is_not_followed() {
    use gpu_booking::store::lock::ExclusiveLock;
    use gpu_booking::store::root::Root;
    use gpu_booking::store::schedule::{self, ActiveFile};
    let lab = Lab::new();
    // Every name a rewrite of booking.csv might use for its temporary file, this process's
    // id included, planted as a link to the target.
    for name in [format!(".booking.csv.{}.tmp", std::process::id()), ".booking.csv.tmp".to_string()] {
        symlink(lab.target(), lab.root().join("jobs").join(name)).unwrap();
    }
    let root = Root::new(lab.root());
    let lock = ExclusiveLock::acquire(&root).unwrap();
    schedule::write(&lock, ActiveFile::Booking, &[]).unwrap();
    lab.assert_target_untouched("a rewrite of booking.csv");
    assert!(lab.read("jobs/booking.csv").starts_with("start,end,user_id"));
}

#[test]
fn book_as_a_login_shell_call_is_refused_outside_the_booking_account() {
    let lab = Lab::new();
    // This account's login shell is not this book: it has no root it could trust.
    let as_shell = Command::new(common::binary("book"))
        .args(["-c", "id"])
        .env_remove("SSH_ORIGINAL_COMMAND")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(as_shell.status.code(), Some(2), "book -c id: {as_shell:?}");
    assert!(!String::from_utf8_lossy(&as_shell.stdout).contains("uid="));
    use std::os::unix::process::CommandExt as _;
    let login = Command::new(common::binary("book"))
        .arg0("-book")
        .env("GPU_BOOKING_ROOT", lab.root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(login.status.code(), Some(2), "-book: {login:?}");
}

#[test]
fn enroll_check_warns_about_admin_files_others_can_write() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = Lab::new();
    let clean = lab.run("enroll", &["check"], "");
    assert_eq!(clean.code, Some(0), "{clean}");
    assert!(!clean.stdout.contains("can write it"), "a fresh root has no writable admin file:\n{clean}");
    fs::set_permissions(lab.root().join("cfg/capability_config.yaml"), fs::Permissions::from_mode(0o666)).unwrap();
    fs::set_permissions(lab.root().join("cfg/templates"), fs::Permissions::from_mode(0o777)).unwrap();
    let warned = lab.run("enroll", &["check"], "");
    assert_eq!(warned.code, Some(0), "warnings do not fail the check:\n{warned}");
    for path in ["cfg/capability_config.yaml", "cfg/templates"] {
        assert!(
            warned.stdout.contains(&format!("{path}: warning: every local user can write it")),
            "{path} should be reported:\n{warned}"
        );
    }
}
