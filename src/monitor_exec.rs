//! `jobs/monitor_exec`: requests for the monitor, in the original system's format. `book`
//! appends `now` when a booking starts at once and the bare user id when a user asks for a
//! restart (the original's watcher runs `docker restart <line>`); a systemd path unit runs the
//! monitor when the file changes, and the monitor consumes the requests. Read are `now`, a
//! bare id (the original's restart), and `restart <id>` (what an earlier release wrote).
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
        // A user named `now` (possible in files from before ids were checked for it) keeps
        // the long form: the bare id would read as a request for a pass.
        Request::Restart(user) if user.as_str() == "now" => "restart now\n".to_string(),
        Request::Restart(user) => format!("{user}\n"),
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
            ["restart", user] | [user] => match UserId::parse(user) {
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
        let (requests, unknown) = parse("now\nrestart alice\n\nbob\nrestart ../x\n../y\nrm -rf /\n");
        let user = |id: &str| Request::Restart(UserId::parse(id).unwrap());
        assert_eq!(requests, vec![Request::Now, user("alice"), user("bob")]);
        assert_eq!(unknown, vec!["restart ../x".to_string(), "../y".to_string(), "rm -rf /".to_string()]);
    }

    #[test]
    fn a_restart_is_written_as_the_original_writes_it_and_read_back() {
        let scratch = tempfile::tempdir().unwrap();
        let root = Root::new(scratch.path());
        std::fs::create_dir_all(root.jobs_dir()).unwrap();
        let lock = ExclusiveLock::acquire(&root).unwrap();
        let alice = Request::Restart(UserId::parse("alice").unwrap());
        let now_user = Request::Restart(UserId::parse("now").unwrap());
        for request in [&Request::Now, &alice, &now_user] {
            append(&lock, request).unwrap();
        }
        assert_eq!(std::fs::read_to_string(path(&root)).unwrap(), "now\nalice\nrestart now\n");
        assert_eq!(take_all(&lock).unwrap(), (vec![Request::Now, alice, now_user], Vec::new()));
    }
}
