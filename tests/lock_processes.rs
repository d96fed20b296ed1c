//! The state lock (`jobs/.lock`) excludes a second writer in another process.
//!
//! The second process is this test binary itself, started again with `--exact` on
//! [`lock_helper_child`] and an environment variable that tells that test what to do; without
//! the variable it does nothing, so in a normal run it simply passes. Parent and child talk
//! through pipes (the child reports on stderr, the parent answers on the child's stdin), and
//! a marker file written just before the parent lets go proves the order of events, so no
//! assertion depends on how long anything takes.

mod support;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use gpu_booking::model::{Booking, UserId};
use gpu_booking::store::lock::{ExclusiveLock, SharedLock};
use gpu_booking::store::root::Root;
use gpu_booking::store::schedule::{self, ActiveFile};
use support::fixtures::{copy_fixture, names_in};
use support::run;

/// Names the root for the child, and so switches [`lock_helper_child`] on.
const CHILD_ROOT: &str = "GPU_BOOKING_TEST_LOCK_CHILD_ROOT";
/// What the child does: `hold` or `append <count>`.
const CHILD_MODE: &str = "GPU_BOOKING_TEST_LOCK_CHILD_MODE";
/// Written by the parent in the root just before it drops its lock.
const RELEASED_MARKER: &str = "parent-released";
/// Prefix of the child's reports, so they stand out from anything libtest prints.
const REPORT: &str = "@lock-child@ ";

fn report(message: &str) {
    let mut stderr = std::io::stderr().lock();
    writeln!(stderr, "{REPORT}{message}").unwrap();
    stderr.flush().unwrap();
}

fn lock_file(root: &Path) -> PathBuf {
    root.join("jobs").join(".lock")
}

/// `busy` when another open file holds a conflicting lock, `free` when the try succeeded.
fn try_outcome(result: Result<(), fs::TryLockError>) -> String {
    match result {
        Ok(()) => "free".into(),
        Err(fs::TryLockError::WouldBlock) => "busy".into(),
        Err(fs::TryLockError::Error(error)) => format!("error {error}"),
    }
}

/// The child's side. Does nothing unless started by one of the tests below.
#[test]
fn lock_helper_child() {
    let Some(dir) = std::env::var_os(CHILD_ROOT) else { return };
    let root = Root::new(PathBuf::from(dir));
    let mode = std::env::var(CHILD_MODE).unwrap_or_default();
    if let Some(count) = mode.strip_prefix("append ") {
        append_bookings(&root, count.parse().unwrap());
        return;
    }
    assert_eq!(mode, "hold", "unknown child mode");

    // While the parent holds the lock, a try from here must fail, exclusive and shared alike.
    let probe = File::options().read(true).write(true).open(lock_file(root.dir())).unwrap();
    report(&format!("exclusive-try {}", try_outcome(probe.try_lock())));
    report(&format!("shared-try {}", try_outcome(probe.try_lock_shared())));
    drop(probe);

    report("waiting");
    let lock = ExclusiveLock::acquire(&root).unwrap();
    let released = root.dir().join(RELEASED_MARKER).exists();
    report(&format!("acquired parent-had-released={released}"));

    // Hold it until the parent has looked (a line on stdin, or the parent going away).
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(lock);
    report("done");
}

/// `count` read-modify-write rounds on `booking.csv`, each adding one booking, each under the
/// exclusive lock: with a working lock no round's update is lost.
fn append_bookings(root: &Root, count: u32) {
    for _ in 0..count {
        let lock = ExclusiveLock::acquire(root).unwrap();
        let mut bookings = schedule::read(&lock, ActiveFile::Booking).unwrap();
        let index = bookings.len() as i64;
        let start = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap()
            + chrono::Duration::minutes(30 * index);
        bookings.push(Booking {
            start,
            end: start + chrono::Duration::minutes(30),
            user_id: UserId::parse("demo").unwrap(),
            cpus: 1.0,
            memory: 1,
            gpus: vec![],
            forward_port: 10001,
            image: None,
            extra_command: Some(format!("child {}", std::process::id())),
        });
        schedule::write(&lock, ActiveFile::Booking, &bookings).unwrap();
    }
}

/// A child process running [`lock_helper_child`] in `mode` on `root`; killed if a test fails
/// before it has finished with it.
struct HelperChild {
    child: Child,
    reports: Lines<BufReader<ChildStderr>>,
}

impl HelperChild {
    fn start(root: &Path, mode: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["lock_helper_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ROOT, root)
            .env(CHILD_MODE, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the helper child");
        let reports = BufReader::new(child.stderr.take().unwrap()).lines();
        HelperChild { child, reports }
    }

    /// The next report of the child; fails if it exits first.
    fn next_report(&mut self) -> String {
        for line in self.reports.by_ref() {
            let line = line.expect("read the child's stderr");
            if let Some(position) = line.find(REPORT) {
                return line[position + REPORT.len()..].trim_end().to_string();
            }
        }
        panic!("the helper child ended before its next report");
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn tell_to_finish(&mut self) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"finish\n").unwrap();
    }

    fn wait_success(mut self) {
        // Drain what is left so the child never blocks on a full pipe.
        for line in self.reports.by_ref() {
            line.unwrap();
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the helper child failed: {status}");
    }
}

impl Drop for HelperChild {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// On Linux, waits (bounded) until `/proc/locks` shows some process blocked on the lock
/// file: proof that a waiter is inside `acquire`, not merely about to call it. Fails at once
/// if `waiter_running` says the waiter has finished instead. Returns false where
/// `/proc/locks` cannot be read; the ordering checks still hold there.
#[cfg(target_os = "linux")]
fn wait_for_a_blocked_waiter(lock_path: &Path, mut waiter_running: impl FnMut() -> bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let inode = fs::metadata(lock_path).unwrap().ino();
    let suffix = format!(":{inode} ");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Ok(table) = fs::read_to_string("/proc/locks") else {
            return false;
        };
        // Blocked requests are listed as `N: -> FLOCK  ADVISORY  WRITE pid maj:min:inode ...`.
        if table.lines().any(|line| line.contains("->") && line.contains(&suffix)) {
            return true;
        }
        assert!(waiter_running(), "the waiter finished while the lock on {} was held", lock_path.display());
        assert!(Instant::now() < deadline, "no process blocked on {} within 30 s:\n{table}", lock_path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(not(target_os = "linux"))]
fn wait_for_a_blocked_waiter(_lock_path: &Path, _waiter_running: impl FnMut() -> bool) -> bool {
    false
}

#[test]
fn an_exclusive_lock_keeps_a_second_process_out_until_it_is_dropped() {
    let scratch = tempfile::tempdir().unwrap();
    let root = Root::new(scratch.path());
    let parent_lock = ExclusiveLock::acquire(&root).unwrap();

    let mut child = HelperChild::start(scratch.path(), "hold");
    assert_eq!(child.next_report(), "exclusive-try busy");
    assert_eq!(child.next_report(), "shared-try busy");
    assert_eq!(child.next_report(), "waiting");
    wait_for_a_blocked_waiter(&lock_file(scratch.path()), || child.is_running());

    // Mark the moment, then let go: the child may only report the lock after the mark.
    fs::write(scratch.path().join(RELEASED_MARKER), "").unwrap();
    drop(parent_lock);
    assert_eq!(child.next_report(), "acquired parent-had-released=true");

    // Now the child holds it: this process is shut out in turn.
    let probe = File::options().read(true).write(true).open(lock_file(scratch.path())).unwrap();
    assert_eq!(try_outcome(probe.try_lock()), "busy");
    assert_eq!(try_outcome(probe.try_lock_shared()), "busy");

    child.tell_to_finish();
    assert_eq!(child.next_report(), "done");
    child.wait_success();
    // The child is gone and its lock with it.
    assert_eq!(try_outcome(probe.try_lock()), "free");
}

#[test]
fn concurrent_writers_in_several_processes_lose_no_update() {
    const CHILDREN: usize = 4;
    const ROUNDS: u32 = 25;
    let scratch = tempfile::tempdir().unwrap();
    let root = Root::new(scratch.path());
    {
        let lock = ExclusiveLock::acquire(&root).unwrap();
        schedule::ensure_files(&lock).unwrap();
    }
    let children: Vec<HelperChild> =
        (0..CHILDREN).map(|_| HelperChild::start(scratch.path(), &format!("append {ROUNDS}"))).collect();
    for child in children {
        child.wait_success();
    }
    let lock = SharedLock::acquire(&root).unwrap();
    let bookings = schedule::read(&lock, ActiveFile::Booking).unwrap();
    assert_eq!(bookings.len(), CHILDREN * ROUNDS as usize);
    // Each round appended right after the previous one: no two rounds saw the same file.
    for (index, pair) in bookings.windows(2).enumerate() {
        assert_eq!(pair[0].end, pair[1].start, "rows {index} and {}", index + 1);
    }
    // No temporary file was left behind by any writer.
    assert_eq!(names_in(&root.jobs_dir()), [".lock", "booking.csv", "used.csv", "using.csv"]);
}

#[test]
fn enroll_check_waits_for_a_writer_to_finish() {
    let scratch = copy_fixture("upstream");
    let root = Root::new(scratch.path());
    let writer = ExclusiveLock::acquire(&root).unwrap();
    let (mut check, _) = run::command("enroll").root(scratch.path()).args(["check"]).into_command();
    let mut check = check.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if wait_for_a_blocked_waiter(&lock_file(scratch.path()), || check.try_wait().unwrap().is_none()) {
        // Blocked on the lock, so it cannot have finished.
        assert!(check.try_wait().unwrap().is_none());
    }
    drop(writer);
    let output = check.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
