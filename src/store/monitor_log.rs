//! `jobs/monitor.log`: one line per action, `yyyymmdd HH:MM [STATUS] SIGN, message.` — the
//! original's format (`[INFO]` lines carry no SIGN). Each line also goes to stdout, where
//! journald picks it up.
//!
//! Locking: lines are appended with one `write` each on a file opened for appending, so
//! lines from the monitor and `run-container` never mix; no lock is needed and none is
//! taken, so logging never waits on a booking. `jobs/` is the booking account's and the
//! monitor writes this file as root: it is opened as [`crate::store::state_folder`] allows (never
//! through a link, only a plain file with one name), and a refusal counts as an error.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDateTime;

use crate::store::root::Root;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Info,
    Warning,
    Error,
}

pub struct MonitorLog {
    path: PathBuf,
    now: NaiveDateTime,
    /// Lines written, for the caller's summary and exit status.
    pub errors: usize,
    pub warnings: usize,
    /// Print to stdout as well (off in tests of the library).
    echo: bool,
    /// A buffered log (one user's part of a pass) keeps its lines here until absorbed, so
    /// each user's lines stay together in the file.
    held: Option<Vec<String>>,
}

impl MonitorLog {
    pub fn new(root: &Root, now: NaiveDateTime, echo: bool) -> MonitorLog {
        MonitorLog { path: root.jobs_dir().join("monitor.log"), now, errors: 0, warnings: 0, echo, held: None }
    }

    /// A log whose lines are held until [`MonitorLog::absorb`] writes them.
    pub fn buffered(&self) -> MonitorLog {
        MonitorLog {
            path: self.path.clone(),
            now: self.now,
            errors: 0,
            warnings: 0,
            echo: self.echo,
            held: Some(Vec::new()),
        }
    }

    /// Writes a buffered log's lines and counts them as this log's.
    pub fn absorb(&mut self, other: MonitorLog) {
        self.errors += other.errors;
        self.warnings += other.warnings;
        for line in other.held.unwrap_or_default() {
            self.write_line(&line);
        }
    }

    pub fn info(&mut self, message: &str) {
        self.write(Status::Info, None, message);
    }

    pub fn warning(&mut self, sign: &str, message: &str) {
        self.warnings += 1;
        self.write(Status::Warning, Some(sign), message);
    }

    pub fn error(&mut self, sign: &str, message: &str) {
        self.errors += 1;
        self.write(Status::Error, Some(sign), message);
    }

    /// The line as it is written.
    pub fn format(now: NaiveDateTime, status: Status, sign: Option<&str>, message: &str) -> String {
        let status = match status {
            Status::Info => "[INFO]",
            Status::Warning => "[WARNING]",
            Status::Error => "[ERROR]",
        };
        // One line per action, whatever the message holds.
        let message = message.replace(['\n', '\r'], " ");
        let message = message.trim_end_matches('.');
        match sign {
            Some(sign) => format!("{} {status} {sign}, {message}.", now.format("%Y%m%d %H:%M")),
            None => format!("{} {status} {message}.", now.format("%Y%m%d %H:%M")),
        }
    }

    fn write(&mut self, status: Status, sign: Option<&str>, message: &str) {
        let line = Self::format(self.now, status, sign, message);
        match &mut self.held {
            Some(held) => held.push(line),
            None => self.write_line(&line),
        }
    }

    fn write_line(&mut self, line: &str) {
        if self.echo {
            println!("{line}");
        }
        let appended = crate::store::atomic_file::open_for_appending(&self.path).and_then(|mut file| {
            file.write_all(format!("{line}\n").as_bytes())
                .with_context(|| format!("cannot append to {}", self.path.display()))
        });
        if let Err(error) = appended {
            // A log that cannot be written (a link swapped in, a full disk) fails the run:
            // the line itself is on stdout, and the exit status tells systemd.
            self.errors += 1;
            eprintln!("cannot write {}: {error:#}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_originals_format() {
        let now = crate::model::examples::at("2023-01-01 13:30");
        assert_eq!(
            MonitorLog::format(
                now,
                Status::Warning,
                Some("SpaceWarning"),
                "m11007s05 is over-use the work_dir 10GB, and backup_dir 2GB."
            ),
            "20230101 13:30 [WARNING] SpaceWarning, m11007s05 is over-use the work_dir 10GB, and backup_dir 2GB."
        );
        assert_eq!(
            MonitorLog::format(now, Status::Info, None, "m11007s05 is successfully run the container"),
            "20230101 13:30 [INFO] m11007s05 is successfully run the container."
        );
    }
}
