//! `jobs/monitor_exec`: requests for the monitor, in the original system's format. `book`
//! appends `now` when a booking starts at once and the bare user id when a user asks for a
//! restart (the original's watcher runs `docker restart <line>`); a systemd path unit runs the
//! monitor when the file changes, and the monitor consumes the requests. Read are `now`, a
//! bare id (the original's restart), and `restart <id>` (what an earlier release wrote).
//!
//! Locking: appends happen under the [`ExclusiveLock`]. A pass reads the requests at its
//! start and removes them only at its end, under the lock again and together with what it
//! records, keeping those that failed: a pass killed in between leaves every request for the
//! next one, and a request that arrives meanwhile stays. The file lies
//! in the booking account's `jobs/` and the monitor consumes it as root: it is read and
//! written only as [`crate::store::state_folder`] allows.

use std::path::PathBuf;

use anyhow::Result;

use crate::model::UserId;
use crate::store::atomic_file;
use crate::store::lock::{ExclusiveLock, LockHeld};
use crate::store::root::Root;

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
    atomic_file::append_durably(lock, &path(lock.root()), b"", line_of(request).as_bytes())
}

fn line_of(request: &Request) -> String {
    match request {
        Request::Now => "now\n".to_string(),
        // A user named `now` (possible in files from before ids were checked for it) keeps
        // the long form: the bare id would read as a request for a pass.
        Request::Restart(user) if user.as_str() == "now" => "restart now\n".to_string(),
        Request::Restart(user) => format!("{user}\n"),
    }
}

/// The requests a pass read at its start. They stay in the file until the pass is done with
/// them ([`after_pass`]): a pass killed half-way leaves them for the next one.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pending {
    pub requests: Vec<Request>,
    /// Lines that are not requests, for the log (and removed with the rest).
    pub strangers: Vec<String>,
    /// Every line read, as written.
    lines: Vec<String>,
}

/// Reads the pending requests without removing them.
pub fn read(lock: &impl LockHeld) -> Result<Pending> {
    let file = path(lock.root());
    let Some(text) = crate::store::state_folder::read_to_string(&file)? else {
        return Ok(Pending::default());
    };
    let (requests, strangers) = parse(&text);
    let lines = text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_string).collect();
    Ok(Pending { requests, strangers, lines })
}

/// Whether any request waits (one that arrived while a pass ran, or one kept for a retry).
pub fn has_pending(lock: &impl LockHeld) -> Result<bool> {
    Ok(!read(lock)?.lines.is_empty())
}

/// The contents `monitor_exec` gets when a pass is done with the requests it read: those lines
/// leave the file, except the requests in `kept` (to be tried again); lines that arrived while
/// the pass ran stay; `added` requests are appended. Written by the pass's last change
/// ([`crate::store::schedule::commit`]), together with what it records.
pub fn after_pass(lock: &ExclusiveLock, served: &Pending, kept: &[Request], added: &[Request]) -> Result<Vec<u8>> {
    let now = read(lock)?;
    let mut remaining = now.lines;
    let mut kept: Vec<String> = kept.iter().map(line_of).map(|line| line.trim_end().to_string()).collect();
    for line in &served.lines {
        if let Some(position) = kept.iter().position(|keep| keep == line) {
            kept.remove(position);
            continue;
        }
        if let Some(position) = remaining.iter().position(|current| current == line) {
            remaining.remove(position);
        }
    }
    let mut contents = String::new();
    for line in remaining {
        contents.push_str(&line);
        contents.push('\n');
    }
    for request in added {
        contents.push_str(&line_of(request));
    }
    Ok(contents.into_bytes())
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
        let pending = read(&lock).unwrap();
        assert_eq!(
            (pending.requests.clone(), pending.strangers.clone()),
            (vec![Request::Now, alice, now_user], Vec::new())
        );
    }

    #[test]
    fn a_pass_removes_what_it_served_and_keeps_what_failed_or_arrived_meanwhile() {
        let scratch = tempfile::tempdir().unwrap();
        let root = Root::new(scratch.path());
        std::fs::create_dir_all(root.jobs_dir()).unwrap();
        let lock = ExclusiveLock::acquire(&root).unwrap();
        let user = |id: &str| Request::Restart(UserId::parse(id).unwrap());
        std::fs::write(path(&root), "now\nalice\nbob\nrm -rf /\n").unwrap();
        let served = read(&lock).unwrap();
        assert_eq!(served.strangers, vec!["rm -rf /".to_string()]);
        // While the pass runs, carol asks for a restart and alice asks again.
        append(&lock, &user("carol")).unwrap();
        append(&lock, &user("alice")).unwrap();
        let contents = after_pass(&lock, &served, &[user("bob")], &[Request::Now]).unwrap();
        assert_eq!(String::from_utf8(contents).unwrap(), "bob\ncarol\nalice\nnow\n");
    }
}
