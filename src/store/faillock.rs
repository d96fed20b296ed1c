//! Failed logins, the way `pam_faillock` treats them: every failed login is recorded with its
//! time and the client's address; [`DENY`] failures of one id within [`FAIL_INTERVAL_MINUTES`]
//! lock that id for [`UNLOCK_MINUTES`] after the last of them, during which even the right
//! password is refused (and not even checked). A successful login, or the admin's
//! `enroll passwd`, clears the id's record.
//!
//! The record is `jobs/login_failures.csv` (header `time,user_id,address`, one row per
//! failure, times as in the schedule files): gpu-booking's own file, which the original never
//! reads. It is rewritten whole, atomically and owner-only, under the [`ExclusiveLock`], and
//! keeps only the rows that can still matter (the last half hour), so a guessing run cannot
//! grow it: a locked id's further tries are refused without being recorded.
//!
//! Every failure, lock and refusal (and each claim of an id by self-registration, and each
//! unlock) is also written where the admin looks: a line in `jobs/auth.log`, in the monitor
//! log's format (`yyyymmdd HH:MM [WARNING] AuthWarning, …`), and a message to the system log
//! (facility `authpriv`, as sshd and PAM use). No line says anything about the password that
//! was typed.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Duration, NaiveDateTime};

use crate::error::{AuthenticationFailed, FileProblem, FileProblems};
use crate::model::{UserId, format_minutes, format_time, parse_time};
use crate::store::atomic_file;
use crate::store::lock::{ExclusiveLock, LockHeld};
use crate::store::monitor_log::{MonitorLog, Status};
use crate::store::root::Root;

/// Failures that lock an id (`pam_faillock`'s `deny`).
pub const DENY: usize = 5;
/// The window those failures must fall in (`fail_interval`).
pub const FAIL_INTERVAL_MINUTES: i64 = 15;
/// How long the lock lasts after the last failure (`unlock_time`).
pub const UNLOCK_MINUTES: i64 = 15;

pub const FILE_NAME: &str = "login_failures.csv";
pub const LOG_FILE_NAME: &str = "auth.log";
const HEADER: &str = "time,user_id,address";
/// The sign of every line this module logs.
pub const SIGN: &str = "AuthWarning";

/// Where syslog and journald listen.
const SYSLOG_SOCKET: &str = "/dev/log";
/// syslog facility `authpriv` (10), shifted as the priority field wants it.
const AUTHPRIV: u8 = 10 << 3;
const SEVERITY_WARNING: u8 = 4;
const SEVERITY_INFO: u8 = 6;

fn fail_interval() -> Duration {
    Duration::minutes(FAIL_INTERVAL_MINUTES)
}

fn unlock_time() -> Duration {
    Duration::minutes(UNLOCK_MINUTES)
}

/// One failed login.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub time: NaiveDateTime,
    pub user: UserId,
    /// The client's IP address, `local` without `SSH_CLIENT`, `unknown` when it held no address.
    pub address: String,
}

pub fn path(root: &Root) -> PathBuf {
    root.jobs_dir().join(FILE_NAME)
}

pub fn log_path(root: &Root) -> PathBuf {
    root.jobs_dir().join(LOG_FILE_NAME)
}

/// Where this login comes from: the address sshd puts first in `SSH_CLIENT`. Only an IP
/// address is taken, so nothing a client controls reaches the record or the log as text.
pub fn client_address() -> String {
    match std::env::var("SSH_CLIENT") {
        Ok(value) if !value.trim().is_empty() => address_of(&value),
        _ => "local".to_string(),
    }
}

fn address_of(ssh_client: &str) -> String {
    ssh_client
        .split_whitespace()
        .next()
        .and_then(|word| word.parse::<IpAddr>().ok())
        .map_or_else(|| "unknown".to_string(), |address| address.to_string())
}

/// The good rows of the record, and a problem for each bad row. A missing file is no
/// failures.
pub fn read_rows(lock: &impl LockHeld) -> Result<(Vec<Failure>, Vec<FileProblem>)> {
    let root = lock.root();
    let path = path(root);
    let shown = root.display(&path);
    // In `jobs/`, the booking account's folder: never read through a link.
    let text = match crate::store::state_folder::read_config(&path, &shown) {
        Ok(Some(text)) => text,
        Ok(None) => return Ok((Vec::new(), Vec::new())),
        Err(problem) => return Ok((Vec::new(), vec![problem])),
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        if number == 1 {
            if line.trim() != HEADER {
                problems.push(FileProblem::error(&shown, Some(1), "", format!("expected the header {HEADER}")));
            }
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let problem = |field: &str, message: String| FileProblem::error(&shown, Some(number), field, message);
        let [time, user, address] = fields.as_slice() else {
            problems.push(problem("", format!("expected 3 fields like the header {HEADER}, found {}", fields.len())));
            continue;
        };
        let time = match parse_time(time) {
            Ok(time) => time,
            Err(message) => {
                problems.push(problem("time", message));
                continue;
            }
        };
        let user = match UserId::parse(user) {
            Ok(user) => user,
            Err(message) => {
                problems.push(problem("user_id", message));
                continue;
            }
        };
        if address.is_empty() {
            problems.push(problem("address", "expected an IP address, local or unknown, found nothing".into()));
            continue;
        }
        rows.push(Failure { time, user, address: address.to_string() });
    }
    Ok((rows, problems))
}

/// The record; a damaged one stops the login (naming file, line and field) rather than being
/// taken as "no failures", which would lift every lock.
pub fn read(lock: &impl LockHeld) -> Result<Vec<Failure>> {
    let (rows, problems) = read_rows(lock)?;
    if !problems.is_empty() {
        return Err(FileProblems(problems).into());
    }
    Ok(rows)
}

/// Until when `user` is locked at `now`, if they are: the end of [`UNLOCK_MINUTES`] after the
/// latest failure that closed a run of [`DENY`] failures less than [`FAIL_INTERVAL_MINUTES`]
/// apart.
pub fn locked_until(failures: &[Failure], user: &UserId, now: NaiveDateTime) -> Option<NaiveDateTime> {
    let mut times: Vec<NaiveDateTime> =
        failures.iter().filter(|failure| &failure.user == user).map(|failure| failure.time).collect();
    times.sort_unstable();
    times
        .windows(DENY)
        .filter(|run| run[DENY - 1] - run[0] < fail_interval())
        .map(|run| run[DENY - 1] + unlock_time())
        .max()
        .filter(|until| *until > now)
}

/// Failures of `user` that count towards a lock at `now`.
fn recent(failures: &[Failure], user: &UserId, now: NaiveDateTime) -> usize {
    failures.iter().filter(|failure| &failure.user == user && now - failure.time < fail_interval()).count()
}

/// Whether `user` is locked now.
pub fn lock_status(lock: &impl LockHeld, user: &UserId, now: NaiveDateTime) -> Result<Option<NaiveDateTime>> {
    Ok(locked_until(&read(lock)?, user, now))
}

/// The error a locked id gets (exit 4).
pub fn locked_error(user: &UserId, until: NaiveDateTime) -> anyhow::Error {
    AuthenticationFailed(format!(
        "{user} is locked after {DENY} failed logins within {FAIL_INTERVAL_MINUTES} minutes; try again at {} \
         or later, or ask the admin to set a new password (enroll passwd {user})",
        format_minutes(until)
    ))
    .into()
}

/// Records a failed login of `user` from `address` and logs it; returns until when the id is
/// locked if this failure locked it.
pub fn record_failure(
    lock: &ExclusiveLock,
    user: &UserId,
    address: &str,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>> {
    let mut failures = read(lock)?;
    failures.push(Failure { time: now, user: user.clone(), address: address.to_string() });
    write(lock, &failures, now)?;
    let count = recent(&failures, user, now);
    log(
        lock,
        now,
        Status::Warning,
        &format!("failed login as {user} from {address} ({count} of {DENY} within {FAIL_INTERVAL_MINUTES} minutes)"),
    );
    let until = locked_until(&failures, user, now);
    if let Some(until) = until {
        log(
            lock,
            now,
            Status::Warning,
            &format!(
                "{user} is locked until {} after {DENY} failed logins within {FAIL_INTERVAL_MINUTES} minutes, \
                 the last from {address}",
                format_minutes(until)
            ),
        );
    }
    Ok(until)
}

/// Logs a login refused because the id is locked (the password was not checked).
pub fn log_refused(lock: &ExclusiveLock, user: &UserId, address: &str, until: NaiveDateTime, now: NaiveDateTime) {
    log(
        lock,
        now,
        Status::Warning,
        &format!("login as {user} from {address} refused: locked until {}", format_minutes(until)),
    );
}

/// Forgets `user`'s failures (a successful login, or `enroll passwd`). Returns how many
/// there were; the file is written only when there were some.
pub fn clear(lock: &ExclusiveLock, user: &UserId, now: NaiveDateTime) -> Result<usize> {
    let failures = read(lock)?;
    let kept: Vec<Failure> = failures.iter().filter(|failure| &failure.user != user).cloned().collect();
    let cleared = failures.len() - kept.len();
    if cleared > 0 {
        write(lock, &kept, now)?;
    }
    Ok(cleared)
}

/// Logs an informational line (a self-registration, an unlock by the admin).
pub fn log_info(lock: &ExclusiveLock, now: NaiveDateTime, message: &str) {
    log(lock, now, Status::Info, message);
}

/// Rewrites the record, keeping only the rows that can still lock someone: a lock needs its
/// last failure within [`UNLOCK_MINUTES`] and its first within [`FAIL_INTERVAL_MINUTES`]
/// before that.
fn write(lock: &ExclusiveLock, failures: &[Failure], now: NaiveDateTime) -> Result<()> {
    let oldest_that_matters = now - fail_interval() - unlock_time();
    let mut kept: Vec<&Failure> = failures.iter().filter(|failure| failure.time > oldest_that_matters).collect();
    kept.sort_by_key(|failure| failure.time);
    let mut text = format!("{HEADER}\n");
    for failure in kept {
        text.push_str(&format!("{},{},{}\n", format_time(failure.time), failure.user, failure.address));
    }
    atomic_file::write_atomically_private(lock, &path(lock.root()), text.as_bytes())
}

/// One line to `jobs/auth.log` and one message to the system log. Logging never stops a
/// login: a log that cannot be written is reported on stderr.
fn log(lock: &ExclusiveLock, now: NaiveDateTime, status: Status, message: &str) {
    let sign = (status != Status::Info).then_some(SIGN);
    let line = MonitorLog::format(now, status, sign, message);
    let path = log_path(lock.root());
    if let Err(error) = append_line(lock, &path, &line) {
        eprintln!("cannot write {}: {error:#}", path.display());
    }
    let severity = if status == Status::Info { SEVERITY_INFO } else { SEVERITY_WARNING };
    let text = match sign {
        Some(sign) => format!("{sign}, {message}"),
        None => message.to_string(),
    };
    send_to_syslog(Path::new(SYSLOG_SOCKET), &syslog_datagram(severity, &text));
}

fn append_line(_lock: &ExclusiveLock, path: &Path, line: &str) -> Result<()> {
    // Owner-only: the log names who tried which id from where.
    let mut file = atomic_file::open_for_appending(path)?;
    rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(0o600))
        .with_context(|| format!("cannot make {} owner-only", path.display()))?;
    file.write_all(format!("{line}\n").as_bytes()).with_context(|| format!("cannot append to {}", path.display()))
}

/// A syslog message for the local socket: `<priority>tag[pid]: text`, which syslog daemons
/// and journald read (journald takes the tag as `SYSLOG_IDENTIFIER`).
pub fn syslog_datagram(severity: u8, text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ");
    format!("<{}>gpu-booking[{}]: {text}", AUTHPRIV | severity, std::process::id())
}

/// Sends one datagram to the system log, if one listens at `socket`; never waits for it.
pub fn send_to_syslog(socket: &Path, datagram: &str) {
    let Ok(sender) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    if sender.set_nonblocking(true).is_err() {
        return;
    }
    let _ = sender.send_to(datagram.as_bytes(), socket);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples::{at, user};

    fn failures(name: &str, times: &[&str]) -> Vec<Failure> {
        times.iter().map(|time| Failure { time: at(time), user: user(name), address: "local".into() }).collect()
    }

    #[test]
    fn five_failures_within_fifteen_minutes_lock_for_fifteen_minutes() {
        let record =
            failures("alice", &["2026-11-23 10:00", "2026-11-23 10:01", "2026-11-23 10:05", "2026-11-23 10:10"]);
        assert_eq!(locked_until(&record, &user("alice"), at("2026-11-23 10:10")), None, "four failures");
        let mut record = record;
        record.extend(failures("alice", &["2026-11-23 10:14"]));
        let until = at("2026-11-23 10:29");
        assert_eq!(locked_until(&record, &user("alice"), at("2026-11-23 10:14")), Some(until));
        assert_eq!(locked_until(&record, &user("alice"), at("2026-11-23 10:28")), Some(until));
        assert_eq!(locked_until(&record, &user("alice"), until), None, "unlocked at the end");
        assert_eq!(locked_until(&record, &user("bob"), at("2026-11-23 10:14")), None, "only alice");
    }

    #[test]
    fn failures_spread_over_fifteen_minutes_or_more_do_not_lock() {
        let record = failures(
            "alice",
            &["2026-11-23 10:00", "2026-11-23 10:04", "2026-11-23 10:08", "2026-11-23 10:12", "2026-11-23 10:15"],
        );
        assert_eq!(locked_until(&record, &user("alice"), at("2026-11-23 10:15")), None);
        // Five at once lock; one more right after the lock ends does not lock again.
        let mut burst = failures("alice", &["2026-11-23 10:00"; 5]);
        assert_eq!(locked_until(&burst, &user("alice"), at("2026-11-23 10:00")), Some(at("2026-11-23 10:15")));
        burst.extend(failures("alice", &["2026-11-23 10:15"]));
        assert_eq!(locked_until(&burst, &user("alice"), at("2026-11-23 10:15")), None);
    }

    #[test]
    fn only_an_ip_address_is_taken_from_ssh_client() {
        assert_eq!(address_of("203.0.113.9 53112 22"), "203.0.113.9");
        assert_eq!(address_of("2001:db8::7 53112 22"), "2001:db8::7");
        assert_eq!(address_of("evil,row\n 1 2"), "unknown");
        assert_eq!(address_of("[INFO] 1 2"), "unknown");
    }

    #[test]
    fn syslog_gets_one_authpriv_datagram_per_line() {
        let folder = tempfile::tempdir().unwrap();
        let socket = folder.path().join("log");
        let receiver = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
        send_to_syslog(&socket, &syslog_datagram(SEVERITY_WARNING, "AuthWarning, failed login as alice\nfrom x"));
        let mut buffer = [0u8; 512];
        let length = receiver.recv(&mut buffer).unwrap();
        let received = String::from_utf8_lossy(&buffer[..length]).into_owned();
        // authpriv (10) × 8 + warning (4) = 84.
        let expected = format!("<84>gpu-booking[{}]: AuthWarning, failed login as alice from x", std::process::id());
        assert_eq!(received, expected);
        // No listener: nothing happens, and nothing waits.
        send_to_syslog(&folder.path().join("absent"), "<84>x: y");
    }
}
