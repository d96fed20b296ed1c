//! The files of the queue (see [`crate::store::queue`]) as bytes, and what the first holder of
//! the exclusive lock does with those a killed process left: beneath the lock, which calls
//! [`finish_interrupted`] before it hands out a guard. Rows are the caller's bytes here.
//!
//! Locking: the caller holds the exclusive lock for every write here but [`create_request`],
//! which makes a name nobody else uses.

use std::ffi::{OsStr, OsString};
use std::fs::{File, TryLockError};
use std::io::Read;

use anyhow::Result;

use crate::store::state_folder::Folder;

const REQUEST_PREFIX: &str = ".request-";
const ANSWER_PREFIX: &str = ".answer-";
pub const BATCH: &str = ".batch";
const BATCH_FIRST_LINE: &str = "gpu-booking batch 1";
const BOOKED: &[u8] = b"booked\n";
const DECLINED: &[u8] = b"declined\n";
/// The file whose rewrite a batch is.
const BOOKING_CSV: &str = "booking.csv";
/// A request or an answer is one booking; anything longer is not ours.
pub const SIZE_LIMIT: u64 = 64 * 1024;
/// A batch holds at most one row per process waiting at once.
const BATCH_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// An answer as its file holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum RawAnswer {
    /// The row written for the request, as `booking.csv` holds it.
    Booked(Vec<u8>),
    Declined,
}

/// Creates the request file of `id`, which must not exist yet.
pub fn create_request(folder: &Folder, id: &str) -> Result<File> {
    folder.create_new(&request_name(id))
}

/// The ids of the requests waiting now (complete or not), in the order of their names.
pub fn request_ids(folder: &Folder) -> Result<Vec<String>> {
    Ok(folder.plain_files_starting(REQUEST_PREFIX)?.iter().filter_map(|name| id_of(name, REQUEST_PREFIX)).collect())
}

/// The request's text, if its waiter still holds its `flock` and it is complete (a request
/// still being written has no newline at its end yet).
pub fn wanted_request(folder: &Folder, id: &str) -> Option<String> {
    let name = request_name(id);
    if !is_wanted(folder, &name) {
        return None;
    }
    let text = read_limited(folder, &name, SIZE_LIMIT).ok()??;
    let text = String::from_utf8(text).ok()?;
    text.strip_suffix('\n').filter(|line| !line.contains('\n')).map(str::to_string)
}

pub fn has_answer(folder: &Folder, id: &str) -> bool {
    folder.exists(&answer_name(id))
}

/// The settled answer to `id`: none while a batch that a killed holder left waits to be settled.
pub fn read_answer(folder: &Folder, id: &str) -> Result<Option<RawAnswer>> {
    if folder.exists(OsStr::new(BATCH)) {
        return Ok(None);
    }
    let Some(bytes) = read_limited(folder, &answer_name(id), SIZE_LIMIT)? else { return Ok(None) };
    Ok(if bytes == DECLINED {
        Some(RawAnswer::Declined)
    } else {
        bytes.strip_prefix(BOOKED).map(|row| RawAnswer::Booked(row.to_vec()))
    })
}

pub fn write_declined(folder: &Folder, id: &str) -> Result<()> {
    folder.write_unflushed(&answer_name(id), DECLINED).map(drop)
}

/// Removes the request `id` and its answer.
pub fn remove(folder: &Folder, id: &str) -> Result<()> {
    folder.remove_unflushed(&answer_name(id))?;
    folder.remove_unflushed(&request_name(id))
}

/// Writes `.batch` before the rewrite of `booking.csv` that books `booked` (id, row).
pub fn write_batch(folder: &Folder, booked: &[(&str, Vec<u8>)]) -> Result<()> {
    let before = folder.identity(OsStr::new(BOOKING_CSV))?;
    folder.write_unflushed(OsStr::new(BATCH), &encode_batch(before, booked)).map(drop)
}

/// What the first holder of the exclusive lock does (see [`crate::store::lock`]): settles a
/// batch a killed holder left, removes the requests of processes that are gone with their
/// answers, and answers whose request is gone. Those removals are tidying only: one that
/// fails (something planted that cannot be removed as a file) stops no writer.
pub fn finish_interrupted(folder: &Folder) -> Result<()> {
    settle_batch(folder)?;
    for name in folder.plain_files_starting(".")? {
        if let Some(id) = id_of(&name, REQUEST_PREFIX)
            && !is_wanted(folder, &name)
        {
            let _ = remove(folder, &id);
        } else if let Some(id) = id_of(&name, ANSWER_PREFIX)
            && !folder.exists(&request_name(&id))
        {
            let _ = folder.remove_unflushed(&name);
        }
    }
    Ok(())
}

/// Settles `.batch`: when `booking.csv` is no longer the file it names, the rewrite was made,
/// and every request in it is answered with its row. A batch that cannot be read (a power
/// cut left half of it, or it was planted) answers nothing: a waiter then books on its own.
pub fn settle_batch(folder: &Folder) -> Result<()> {
    let Some(bytes) = read_limited(folder, OsStr::new(BATCH), BATCH_SIZE_LIMIT)? else {
        return Ok(());
    };
    if let Some((before, answers)) = decode_batch(&bytes)
        && folder.identity(OsStr::new(BOOKING_CSV))? != before
    {
        for (id, row) in answers {
            folder.write_unflushed(&answer_name(&id), &[BOOKED, &row].concat())?;
        }
    }
    folder.remove_unflushed(OsStr::new(BATCH))
}

/// Whether the waiter of the request `name` still holds its `flock`. A request that cannot be
/// opened is not.
fn is_wanted(folder: &Folder, name: &OsStr) -> bool {
    let Ok(Some(file)) = folder.read(name) else { return false };
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

fn read_limited(folder: &Folder, name: &OsStr, limit: u64) -> Result<Option<Vec<u8>>> {
    use anyhow::Context;
    let Some(file) = folder.read(name)? else { return Ok(None) };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", folder.path().join(name).display()))?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// The first line, the file `booking.csv` was (`none` when missing), then for each request
/// a line `<id> <length of its row>` and the row's bytes.
fn encode_batch(before: Option<(u64, u64)>, booked: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = format!("{BATCH_FIRST_LINE}\n").into_bytes();
    match before {
        Some((device, inode)) => bytes.extend(format!("{device} {inode}\n").bytes()),
        None => bytes.extend(b"none\n"),
    }
    for (id, row) in booked {
        bytes.extend(format!("{id} {}\n", row.len()).bytes());
        bytes.extend_from_slice(row);
    }
    bytes
}

type BatchAnswers = Vec<(String, Vec<u8>)>;

fn decode_batch(bytes: &[u8]) -> Option<(Option<(u64, u64)>, BatchAnswers)> {
    let mut rest = bytes.strip_prefix(BATCH_FIRST_LINE.as_bytes())?.strip_prefix(b"\n")?;
    let mut line = || -> Option<&str> {
        let end = rest.iter().position(|byte| *byte == b'\n')?;
        let text = std::str::from_utf8(&rest[..end]).ok()?;
        rest = &rest[end + 1..];
        Some(text)
    };
    let before = match line()? {
        "none" => None,
        identity => {
            let (device, inode) = identity.split_once(' ')?;
            Some((device.parse().ok()?, inode.parse().ok()?))
        }
    };
    let mut answers = Vec::new();
    while !rest.is_empty() {
        let end = rest.iter().position(|byte| *byte == b'\n')?;
        let (id, length) = std::str::from_utf8(&rest[..end]).ok()?.split_once(' ')?;
        let length: usize = length.parse().ok()?;
        let row = rest.get(end + 1..end + 1 + length)?;
        if !is_id(id) {
            return None;
        }
        answers.push((id.to_string(), row.to_vec()));
        rest = &rest[end + 1 + length..];
    }
    Some((before, answers))
}

/// `<process id>-<16 random hex digits>`: never the same twice, so an answer cannot reach
/// another request.
pub fn new_id() -> Result<String> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|error| anyhow::anyhow!("cannot draw a request id: {error}"))?;
    Ok(format!("{}-{:016x}", std::process::id(), u64::from_le_bytes(random)))
}

fn is_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

fn id_of(name: &OsStr, prefix: &str) -> Option<String> {
    let id = name.to_str()?.strip_prefix(prefix)?;
    is_id(id).then(|| id.to_string())
}

fn request_name(id: &str) -> OsString {
    OsString::from(format!("{REQUEST_PREFIX}{id}"))
}

fn answer_name(id: &str) -> OsString {
    OsString::from(format!("{ANSWER_PREFIX}{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_be_tidied_stops_no_writer() {
        let scratch = tempfile::tempdir().unwrap();
        let jobs = scratch.path().join("jobs");
        std::fs::create_dir_all(jobs.join(".answer-1-dead")).unwrap();
        std::fs::write(jobs.join(".request-1-dead"), "{}\n").unwrap();
        std::fs::write(jobs.join(".answer-2-orphan"), DECLINED).unwrap();
        let folder = Folder::open(&jobs).unwrap().unwrap();
        finish_interrupted(&folder).unwrap();
        assert!(!jobs.join(".answer-2-orphan").exists(), "an answer without its request");
        assert!(jobs.join(".answer-1-dead").is_dir(), "a folder is never removed");
    }

    #[test]
    fn a_batch_reads_back_and_one_that_is_not_ours_answers_nothing() {
        let rows = [("7-ab", b"row, with \"a\nline\"\n".to_vec()), ("8-cd", b"other\n".to_vec())];
        let bytes = encode_batch(Some((1, 2)), &rows);
        let expected: BatchAnswers = rows.iter().map(|(id, row)| (id.to_string(), row.clone())).collect();
        assert_eq!(decode_batch(&bytes), Some((Some((1, 2)), expected)));
        assert_eq!(decode_batch(&encode_batch(None, &[])), Some((None, vec![])));
        let text = String::from_utf8(bytes.clone()).unwrap();
        for broken in [
            text.replace("1 2\n", "1\n"),
            text.replace("7-ab", "../x"),
            text.replace("8-cd 6", "8-cd 60"),
            text[..text.len() - 2].to_string(),
            String::new(),
        ] {
            assert_eq!(decode_batch(broken.as_bytes()), None, "{broken:?}");
        }
    }
}
