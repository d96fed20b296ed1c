//! `jobs/.request-*`, `jobs/.answer-*` and `jobs/.batch`: `book new` requests left for the
//! holder of the exclusive lock, so that many bookings made at once are written together.
//!
//! When a whole class books at the same minute, each `book new` would rewrite and flush
//! `booking.csv` in turn while all the others wait for the lock. Instead, a `book new` that
//! finds the exclusive lock taken leaves its request here and waits for the lock to be let go.
//! The holder, if it is a `book new`, decides every request it finds after its own, under the
//! same lock and against the schedule with each earlier booking added, exactly as the waiter
//! would have, and writes them all in one rewrite. Each waiter then reads its answer: booked
//! (with the row that was written), or declined, when it takes the lock itself and books on
//! its own (a refusal and its message, an error, come from the waiter, as without a queue).
//!
//! - `.request-<id>`: written by the waiter, which holds a `flock` on it for as long as it
//!   waits. A request whose `flock` is free belongs to a process that is gone (killed while it
//!   waited): it is never decided, and the next holder of the exclusive lock removes it.
//! - `.answer-<id>`: written under the exclusive lock, once the rows it reports are in
//!   `booking.csv` on disk; removed by the waiter after reading it.
//! - `.batch`: written under the exclusive lock just before the rewrite, removed after the
//!   answers: which requests get which rows, and which file `booking.csv` was before. A holder
//!   killed in between leaves it, and the next holder of the exclusive lock settles it before
//!   anything else ([`finish_interrupted`]): when `booking.csv` is another file now, the rewrite
//!   was made and the answers are written; when it is the same, nothing was booked and no
//!   answer is given, so each waiter books on its own.
//!
//! None of these files is flushed to disk: they matter only to processes that a power cut
//! would end too (`booking.csv` itself is, before any answer is written).
//!
//! Locking: a waiter leaves its request under no lock (the name is its own) and reads and
//! removes its answer under either lock; answers and `.batch` are written only under the
//! exclusive lock. The files' bytes, and what the lock's first holder does with those a killed
//! process left, are in [`files`], beneath the lock. The files lie in the booking account's `jobs/` and are opened only as
//! [`crate::store::state_folder`] allows; a request is text that the holder parses like any
//! input, and an answer or batch that cannot be read is no answer.

pub mod files;

use std::fs::File;
use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::model::Booking;
use crate::store::lock::{ExclusiveLock, LockHeld};
use crate::store::root::Root;
use crate::store::schedule::{encode_rows, parse_rows};
use crate::store::state_folder::Folder;
use files::RawAnswer;

/// A request left by this process, waiting to be answered. Its `flock` is held until this is
/// dropped (or the process ends), which tells the lock holder the request is still wanted.
#[derive(Debug)]
pub struct Waiting {
    folder: Folder,
    id: String,
    _held: File,
}

/// What the lock holder did with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// This row is in `booking.csv`.
    Booked(Booking),
    /// Not decided for the waiter: it books on its own.
    Declined,
}

/// Leaves `text` (one line) as a request for whoever holds the exclusive lock.
pub fn leave(root: &Root, text: &str) -> Result<Waiting> {
    if text.contains('\n') {
        bail!("a queued request is one line");
    }
    let folder = Folder::create(&root.jobs_dir())?;
    let id = files::new_id()?;
    let mut file = files::create_request(&folder, &id)?;
    let shown = || folder.path().join(format!(".request-{id}")).display().to_string();
    file.lock().with_context(|| format!("cannot lock {}", shown()))?;
    // One write: a holder that reads the file meanwhile sees no newline yet and passes it by.
    file.write_all(format!("{text}\n").as_bytes()).with_context(|| format!("cannot write {}", shown()))?;
    Ok(Waiting { folder, id, _held: file })
}

impl Waiting {
    /// The answer to this request, if one is settled: none while a batch that a killed holder
    /// left waits to be settled by the next holder of the exclusive lock. An answer that does
    /// not read as one is none.
    pub fn answer(&self, _lock: &impl LockHeld) -> Result<Option<Answer>> {
        Ok(match files::read_answer(&self.folder, &self.id)? {
            Some(RawAnswer::Declined) => Some(Answer::Declined),
            Some(RawAnswer::Booked(row)) => match parse_rows(&row).map(<[Booking; 1]>::try_from) {
                Some(Ok([booking])) => Some(Answer::Booked(booking)),
                _ => None,
            },
            None => None,
        })
    }

    /// Removes the request and its answer. Best effort: what is left behind belongs to a
    /// request whose `flock` is free once this process ends, and the next holder of the
    /// exclusive lock removes it.
    pub fn withdraw(self, _lock: &impl LockHeld) {
        let _ = files::remove(&self.folder, &self.id);
    }
}

/// A request found waiting.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub id: String,
    pub text: String,
}

/// The requests that wait for an answer now, in the order of their names: complete, not
/// answered yet, and still wanted (their waiter holds their `flock`).
pub fn waiting(lock: &ExclusiveLock) -> Result<Vec<Queued>> {
    let folder = Folder::create(&lock.root().jobs_dir())?;
    Ok(files::request_ids(&folder)?
        .into_iter()
        .filter(|id| !files::has_answer(&folder, id))
        .filter_map(|id| Some(Queued { text: files::wanted_request(&folder, &id)?, id }))
        .collect())
}

/// What the holder decided for one request: `Some(row)` booked, `None` declined.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub id: String,
    pub booked: Option<Booking>,
}

/// Makes the rewrite `write` that holds the rows of every request in `decided` that is
/// booked, and answers each request. A kill at any moment leaves either the rewrite made and
/// every booked request answered (at once, or by the next holder of the exclusive lock), or
/// no rewrite and no request answered as booked.
pub fn commit(lock: &ExclusiveLock, decided: &[Decided], write: impl FnOnce() -> Result<()>) -> Result<()> {
    let folder = Folder::create(&lock.root().jobs_dir())?;
    let booked: Vec<(&str, Vec<u8>)> = decided
        .iter()
        .filter_map(|one| {
            let mut row = String::new();
            encode_rows(&mut row, std::slice::from_ref(one.booked.as_ref()?));
            Some((one.id.as_str(), row.into_bytes()))
        })
        .collect();
    if !booked.is_empty() {
        files::write_batch(&folder, &booked)?;
    }
    let written = write();
    // Settled whether or not the rewrite was made: the batch says which.
    let settled = files::settle_batch(&folder);
    written?;
    settled?;
    for one in decided.iter().filter(|one| one.booked.is_none()) {
        files::write_declined(&folder, &one.id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples::booking;
    use std::ffi::OsStr;

    const BOOKING_CSV: &str = "booking.csv";

    fn scratch() -> (tempfile::TempDir, Root, Folder) {
        let scratch = tempfile::tempdir().unwrap();
        let root = Root::new(scratch.path());
        std::fs::create_dir_all(root.jobs_dir()).unwrap();
        std::fs::write(root.jobs_dir().join(BOOKING_CSV), "before\n").unwrap();
        let folder = Folder::open(&root.jobs_dir()).unwrap().unwrap();
        (scratch, root, folder)
    }

    /// `booking.csv` replaced as every writer replaces it: another file renamed over it.
    fn replace_booking_csv(root: &Root) {
        let temporary = root.jobs_dir().join(".booking.csv.tmp");
        std::fs::write(&temporary, "after\n").unwrap();
        std::fs::rename(temporary, root.jobs_dir().join(BOOKING_CSV)).unwrap();
    }

    /// `.batch` as a holder writes it just before its rewrite, for the request of `waiting`.
    fn batch_for(folder: &Folder, waiting: &Waiting, row: &Booking) {
        let mut text = String::new();
        encode_rows(&mut text, std::slice::from_ref(row));
        files::write_batch(folder, &[(waiting.id.as_str(), text.into_bytes())]).unwrap();
    }

    fn request_file(root: &Root, waiting: &Waiting) -> std::path::PathBuf {
        root.jobs_dir().join(format!(".request-{}", waiting.id))
    }

    #[test]
    fn a_holder_killed_after_its_rewrite_has_its_answers_given_by_the_next_holder() {
        let (_scratch, root, folder) = scratch();
        let waiting = leave(&root, "{}").unwrap();
        let row = booking("bob", "2026-11-23 10:00", "2026-11-23 12:00", &[1]);
        batch_for(&folder, &waiting, &row);
        replace_booking_csv(&root);
        // Until the batch is settled, there is no answer to read.
        assert_eq!(waiting.answer(&crate::store::lock::SharedLock::acquire(&root).unwrap()).unwrap(), None);
        let lock = ExclusiveLock::acquire(&root).unwrap();
        assert_eq!(waiting.answer(&lock).unwrap(), Some(Answer::Booked(row)));
        assert!(!folder.exists(OsStr::new(files::BATCH)));
    }

    #[test]
    fn a_holder_killed_before_its_rewrite_answers_nothing() {
        let (_scratch, root, folder) = scratch();
        let waiting = leave(&root, "{}").unwrap();
        batch_for(&folder, &waiting, &booking("bob", "2026-11-23 10:00", "2026-11-23 12:00", &[1]));
        let lock = ExclusiveLock::acquire(&root).unwrap();
        assert_eq!(waiting.answer(&lock).unwrap(), None, "the waiter books on its own");
        assert!(!folder.exists(OsStr::new(files::BATCH)));
        assert_eq!(std::fs::read_to_string(root.jobs_dir().join(BOOKING_CSV)).unwrap(), "before\n");
    }

    #[test]
    fn a_failed_rewrite_is_settled_by_the_holder_itself() {
        let (_scratch, root, _folder) = scratch();
        let row = booking("bob", "2026-11-23 10:00", "2026-11-23 12:00", &[1]);
        for renamed in [false, true] {
            let waiting = leave(&root, "{}").unwrap();
            let lock = ExclusiveLock::acquire(&root).unwrap();
            let decided = [Decided { id: waiting.id.clone(), booked: Some(row.clone()) }];
            let result = commit(&lock, &decided, || {
                if renamed {
                    replace_booking_csv(&root);
                }
                bail!("the disk is full")
            });
            assert!(result.is_err());
            let expected = renamed.then(|| Answer::Booked(row.clone()));
            assert_eq!(waiting.answer(&lock).unwrap(), expected, "renamed: {renamed}");
            waiting.withdraw(&lock);
        }
    }

    #[test]
    fn waiting_requests_are_those_complete_unanswered_and_still_wanted() {
        let (_scratch, root, folder) = scratch();
        let wanted = leave(&root, "first").unwrap();
        let answered = leave(&root, "second").unwrap();
        let gone = leave(&root, "third").unwrap();
        let gone_file = request_file(&root, &gone);
        drop(gone);
        let being_written = leave(&root, "fourth").unwrap();
        std::fs::write(request_file(&root, &being_written), "half a req").unwrap();
        let lock = ExclusiveLock::acquire(&root).unwrap();
        assert!(!gone_file.exists(), "a request nobody waits for is removed");
        files::write_declined(&folder, &answered.id).unwrap();
        let found = waiting(&lock).unwrap();
        assert_eq!(found, [Queued { id: wanted.id.clone(), text: "first".into() }]);
        assert!(leave(&root, "two\nlines").is_err());
    }

    #[test]
    fn an_answer_that_is_not_one_row_answers_nothing() {
        let (_scratch, root, folder) = scratch();
        let waiting = leave(&root, "{}").unwrap();
        let lock = ExclusiveLock::acquire(&root).unwrap();
        let row = booking("bob", "2026-11-23 10:00", "2026-11-23 12:00", &[0, 1]);
        let mut rows = String::new();
        encode_rows(&mut rows, &[row.clone(), row.clone()]);
        let answer_file = root.jobs_dir().join(format!(".answer-{}", waiting.id));
        for (text, expected) in [
            (format!("booked\n{}", &rows[..rows.len() / 2]), Some(Answer::Booked(row.clone()))),
            (format!("booked\n{rows}"), None),
            ("booked\n".to_string(), None),
            ("booked\nnot a row\n".to_string(), None),
            ("declined\n".to_string(), Some(Answer::Declined)),
            ("maybe\n".to_string(), None),
        ] {
            std::fs::write(&answer_file, &text).unwrap();
            assert_eq!(waiting.answer(&lock).unwrap(), expected, "{text:?}");
        }
        waiting.withdraw(&lock);
        assert!(!answer_file.exists());
        assert!(!folder.exists(OsStr::new(files::BATCH)));
    }
}
