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

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::lab::Lab;
use support::run::{self, Run, new_booking_args};
use support::schedule::HEADER;

const PASSWORD: &str = "tulip-42";
const PRECIOUS: &str = "root:x:0:0:root:/root:/bin/bash\n";

/// A root from the shipped `cfg/` with `erin` enrolled, and a file outside it that stands in
/// for one the booking account must never write.
struct Attack {
    lab: Lab,
    outside: tempfile::TempDir,
}

impl Attack {
    fn new() -> Attack {
        let lab = Lab::shipped();
        let outside = tempfile::tempdir().expect("create a temporary folder");
        fs::write(outside.path().join("passwd"), PRECIOUS).unwrap();
        let attack = Attack { lab, outside };
        let added = attack.run("enroll", &["add", "erin", "--password-stdin"], &format!("{PASSWORD}\n"));
        assert_eq!(added.code, Some(0), "enroll add:\n{added}");
        attack
    }

    fn root(&self) -> &Path {
        self.lab.root()
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
        self.lab.command(name, args).stdin(input).run()
    }

    /// erin's `book ARGS…`.
    fn book(&self, args: &[&str]) -> Run {
        self.lab.book(args).login("erin", PASSWORD).run()
    }

    /// erin's `book new --yes` for 1 CPU, 1 GB and no GPU from `start`, for a day.
    fn book_new(&self, start: &str) -> Run {
        let mut args = new_booking_args("1", "1", "0", start, "1-day");
        args.push("--yes");
        self.book(&args)
    }

    fn read(&self, relative: &str) -> String {
        self.lab.read(relative)
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
    let attack = Attack::new();
    assert_eq!(attack.book_new("2-day").code, Some(0));
    let booked = attack.read("jobs/booking.csv");
    attack.link("jobs/used.csv");
    let cancelled = attack.book(&["cancel", "--start", "2-day"]);
    assert_refused(&cancelled, "used.csv", "symbolic link", "book cancel");
    attack.assert_target_untouched("book cancel");
    assert_eq!(
        attack.read("jobs/booking.csv"),
        booked,
        "the cancelled booking must stay while its history cannot be written"
    );
    let report = attack.run("enroll", &["report"], "");
    assert_refused(&report, "used.csv", "symbolic link", "enroll report");
}

#[test]
fn a_schedule_swapped_for_a_link_is_not_read_and_not_written_through() {
    let attack = Attack::new();
    assert_eq!(attack.book_new("2-day").code, Some(0));
    attack.link("jobs/booking.csv");
    assert_refused(&attack.run("book", &["list"], ""), "booking.csv", "symbolic link", "book list");
    assert_refused(&attack.book_new("4-day"), "booking.csv", "symbolic link", "book new");
    assert_refused(&attack.run("enroll", &["check"], ""), "booking.csv", "symbolic link", "enroll check");
    attack.assert_target_untouched("booking.csv");
    assert!(fs::symlink_metadata(attack.root().join("jobs/booking.csv")).unwrap().is_symlink());
}

#[test]
fn a_request_file_swapped_for_a_link_or_a_fifo_is_refused_and_nothing_is_booked() {
    let attack = Attack::new();
    attack.link("jobs/monitor_exec");
    assert_refused(&attack.book_new("now"), "monitor_exec", "symbolic link", "book new --start now");
    attack.assert_target_untouched("monitor_exec");
    assert!(!attack.read("jobs/booking.csv").contains("erin"), "nothing may be booked when the request is refused");

    fs::remove_file(attack.root().join("jobs/monitor_exec")).unwrap();
    let made = Command::new("mkfifo").arg(attack.root().join("jobs/monitor_exec")).status();
    if !made.is_ok_and(|status| status.success()) {
        eprintln!("hostile_files: mkfifo is missing; the FIFO case is skipped");
        return;
    }
    assert_refused(&attack.book_new("now"), "monitor_exec", "FIFO", "book new --start now, a FIFO");
}

#[test]
fn users_config_swapped_for_a_link_is_refused_by_book_and_enroll() {
    let attack = Attack::new();
    attack.link("cfg/users/users_config.yaml");
    assert_refused(&attack.book(&["status"]), "users_config.yaml", "symbolic link", "book status");
    assert_refused(
        &attack.run("enroll", &["passwd", "erin", "--password-stdin"], "daffodil-77\n"),
        "users_config.yaml",
        "symbolic link",
        "enroll passwd",
    );
    attack.assert_target_untouched("users_config.yaml");
}

#[test]
fn the_lock_file_swapped_for_a_link_stops_every_tool() {
    let attack = Attack::new();
    attack.link("jobs/.lock");
    assert_refused(&attack.run("book", &["list"], ""), ".lock", "symbolic link", "book list");
    assert_refused(&attack.run("enroll", &["list"], ""), ".lock", "symbolic link", "enroll list");
    attack.assert_target_untouched(".lock");
}

#[test]
fn a_history_with_a_second_name_is_not_appended_to() {
    let attack = Attack::new();
    assert_eq!(attack.book_new("2-day").code, Some(0));
    let history = attack.root().join("jobs/used.csv");
    fs::write(&history, HEADER).unwrap();
    let other_name = attack.outside.path().join("other-name");
    fs::hard_link(&history, &other_name).unwrap();
    let before = fs::read(&other_name).unwrap();
    assert_refused(&attack.book(&["cancel", "--start", "2-day"]), "used.csv", "2 hard links", "book cancel");
    assert_eq!(fs::read(&other_name).unwrap(), before, "the other name of used.csv was appended to");
}

#[test]
fn a_planted_temporary_file_is_not_followed() {
    use gpu_booking::store::lock::ExclusiveLock;
    use gpu_booking::store::root::Root;
    use gpu_booking::store::schedule::{self, ActiveFile};
    let attack = Attack::new();
    // Every name a rewrite of booking.csv might use for its temporary file, this process's
    // id included, planted as a link to the target.
    for name in [format!(".booking.csv.{}.tmp", std::process::id()), ".booking.csv.tmp".to_string()] {
        symlink(attack.target(), attack.root().join("jobs").join(name)).unwrap();
    }
    let root = Root::new(attack.root());
    let lock = ExclusiveLock::acquire(&root).unwrap();
    schedule::write(&lock, ActiveFile::Booking, &[]).unwrap();
    attack.assert_target_untouched("a rewrite of booking.csv");
    assert!(attack.read("jobs/booking.csv").starts_with("start,end,user_id"));
}

/// The queue of `book new` requests (`jobs/.request-*`, `.answer-*`, `.batch`) is tidied by
/// every tool that takes the exclusive lock, the root-run monitor included: links planted
/// there are never read or written through, and a planted `.batch` stops writers with its name.
#[test]
fn queue_files_planted_as_links_are_never_followed() {
    let attack = Attack::new();
    attack.link("jobs/.request-1-planted");
    attack.link("jobs/.answer-2-planted");
    // A request nobody waits for, whose answer is a link: both names go, the target stays.
    fs::write(attack.root().join("jobs/.request-3-gone"), "{}\n").unwrap();
    attack.link("jobs/.answer-3-gone");
    assert_eq!(attack.book_new("2-day").code, Some(0), "book new beside planted queue files");
    assert!(!attack.root().join("jobs/.answer-3-gone").exists());
    assert_eq!(attack.run("monitor", &["--dry-run"], "").code, Some(0));
    attack.assert_target_untouched("queue files");

    attack.link("jobs/.batch");
    assert_refused(&attack.book_new("4-day"), ".batch", "symbolic link", "book new, .batch a link");
    attack.assert_target_untouched(".batch");
    fs::remove_file(attack.root().join("jobs/.batch")).unwrap();
    assert_eq!(attack.book_new("4-day").code, Some(0), "book new once the link is gone");
}

#[test]
fn book_as_a_login_shell_call_is_refused_outside_the_booking_account() {
    let attack = Attack::new();
    // This account's login shell is not this book: it has no root it could trust.
    let as_shell = Command::new(run::binary("book"))
        .args(["-c", "id"])
        .env_remove("SSH_ORIGINAL_COMMAND")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(as_shell.status.code(), Some(2), "book -c id: {as_shell:?}");
    assert!(!String::from_utf8_lossy(&as_shell.stdout).contains("uid="));
    use std::os::unix::process::CommandExt as _;
    let login = Command::new(run::binary("book"))
        .arg0("-book")
        .env("GPU_BOOKING_ROOT", attack.root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(login.status.code(), Some(2), "-book: {login:?}");
}

#[test]
fn enroll_check_warns_about_admin_files_others_can_write() {
    use std::os::unix::fs::PermissionsExt as _;
    let attack = Attack::new();
    let clean = attack.run("enroll", &["check"], "");
    assert_eq!(clean.code, Some(0), "{clean}");
    assert!(!clean.stdout.contains("can write it"), "a fresh root has no writable admin file:\n{clean}");
    fs::set_permissions(attack.root().join("cfg/capability_config.yaml"), fs::Permissions::from_mode(0o666)).unwrap();
    fs::set_permissions(attack.root().join("cfg/templates"), fs::Permissions::from_mode(0o777)).unwrap();
    let warned = attack.run("enroll", &["check"], "");
    assert_eq!(warned.code, Some(0), "warnings do not fail the check:\n{warned}");
    for path in ["cfg/capability_config.yaml", "cfg/templates"] {
        assert!(
            warned.stdout.contains(&format!("{path}: warning: every local user can write it")),
            "{path} should be reported:\n{warned}"
        );
    }
}
