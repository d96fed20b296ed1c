//! `jobs/monitor_exec`: requests for the monitor. `book` appends `now` when a booking starts
//! at once and `restart <user>` when a user asks for a restart; a systemd path unit runs the
//! monitor when the file changes, and the monitor consumes the requests.
//!
//! Locking: appends and the consume (read, then empty the file) happen under the
//! [`ExclusiveLock`], so no request is lost between the read and the emptying. The file lies
//! in the booking account's `jobs/` and the monitor consumes it as root: it is read and
//! written only as [`crate::state_folder`] allows.

use std::path::PathBuf;

use anyhow::Result;

use crate::atomic_file;
use crate::config::UserId;
use crate::lock::ExclusiveLock;
use crate::root::Root;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A booking starts in the current slot: run a pass now.
    Now,
    /// Restart this user's container.
    Restart(UserId),
}

pub fn path(root: &Root) -> PathBuf {
    root.jobs_dir().join("monitor_exec")
}

pub fn append(lock: &ExclusiveLock, request: &Request) -> Result<()> {
    let line = match request {
        Request::Now => "now\n".to_string(),
        Request::Restart(user) => format!("restart {user}\n"),
    };
    atomic_file::append_durably(lock, &path(lock.root()), b"", line.as_bytes())
}

/// Reads every pending request and empties the file. Lines that are not requests are
/// returned as text so the monitor can log them.
pub fn take_all(lock: &ExclusiveLock) -> Result<(Vec<Request>, Vec<String>)> {
    let file = path(lock.root());
    let Some(text) = crate::state_folder::read_to_string(&file)? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let (requests, unknown) = parse(&text);
    if !text.is_empty() {
        atomic_file::write_atomically(lock, &file, b"")?;
    }
    Ok((requests, unknown))
}

fn parse(text: &str) -> (Vec<Request>, Vec<String>) {
    let mut requests = Vec::new();
    let mut unknown = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["now"] => requests.push(Request::Now),
            ["restart", user] => match UserId::parse(user) {
                Ok(user) => requests.push(Request::Restart(user)),
                Err(_) => unknown.push(line.to_string()),
            },
            _ => unknown.push(line.to_string()),
        }
    }
    (requests, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_and_strangers_kept_for_the_log() {
        let (requests, unknown) = parse("now\nrestart alice\n\nreboot\nrestart ../x\n");
        assert_eq!(requests, vec![Request::Now, Request::Restart(UserId::parse("alice").unwrap())]);
        assert_eq!(unknown, vec!["reboot".to_string(), "restart ../x".to_string()]);
    }
}
