//! An active file read under the shared lock and brought up to date under the exclusive one.
//!
//! `book new` decides on the whole schedule, and every other writer waits while it holds the
//! exclusive lock. So it copies the file's bytes under the shared lock and parses them after
//! letting it go (side by side with everyone else), and under the exclusive lock reads the
//! bytes again and parses only the rows that differ — usually the few another `book new` added
//! meanwhile. Its booking is then written in by copying the other rows' bytes, not encoding
//! them again.
//!
//! Only a file in exactly the form [`super::write`] gives it qualifies (the header, then rows
//! as [`super::encode`] writes them, none with a problem): its rows are then independent
//! lines of bytes, and a run of equal bytes is a run of equal rows. Anything else — a hand
//! edit, a bad row, a missing file — is `None`, and the caller reads the file the ordinary way
//! (and reports its problems as every reader does). Locking: reads take any guard, the write
//! the exclusive lock, as for the rest of the schedule.

use std::io::Read;

use anyhow::Result;

use super::{ActiveFile, RowRef, active_row_problems, encode_row, header_line, rows_in, schedule_order};
use crate::model::Booking;
use crate::store::atomic_file;
use crate::store::lock::{ExclusiveLock, LockHeld};
use crate::store::state_folder;

/// An active file as last read: its bytes, its rows, and where each row starts.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownFile {
    file: ActiveFile,
    bytes: Vec<u8>,
    rows: Vec<Booking>,
    /// Where each row starts in `bytes`, then the end of the file: `rows.len() + 1` entries,
    /// the first just after the header.
    starts: Vec<usize>,
}

impl KnownFile {
    /// The file as it is now; `None` when it is missing, cannot be read (the ordinary read
    /// says why) or is not in the tools' own form.
    pub fn read(lock: &impl LockHeld, file: ActiveFile) -> Option<KnownFile> {
        KnownFile::copy(lock, file)?.parse()
    }

    /// The file's bytes as they are now, to be parsed after the lock is let go (see
    /// [`FileCopy::parse`]): a long parse under the shared lock would hold up every writer.
    pub fn copy(lock: &impl LockHeld, file: ActiveFile) -> Option<FileCopy> {
        Some(FileCopy { file, bytes: read_bytes(lock, file)? })
    }

    /// The file as it is now, under whatever lock is held: the rows in the unchanged bytes at
    /// its start and at its end are kept, only those between are parsed. `None` when the file
    /// is gone or no longer in the tools' own form.
    pub fn refresh(self, lock: &impl LockHeld) -> Option<KnownFile> {
        let bytes = read_bytes(lock, self.file)?;
        if bytes == self.bytes {
            return Some(self);
        }
        let header = header_line().len();
        let same_start = common_prefix(&self.bytes, &bytes);
        if same_start < header {
            return None;
        }
        // What is equal at the end, not counting bytes already counted at the start.
        let shorter = self.bytes.len().min(bytes.len());
        let same_end = common_suffix(&self.bytes, &bytes).min(shorter - same_start);
        // Whole rows only: the first row that does not lie wholly in the equal start, and
        // the first of the rows that lie wholly in the equal end.
        let first = self.starts.partition_point(|start| *start <= same_start) - 1;
        let kept_end = self.starts.partition_point(|start| *start < self.bytes.len() - same_end).max(first);
        let old_len = self.bytes.len();
        let middle = &bytes[self.starts[first]..bytes.len() - (old_len - self.starts[kept_end])];
        let (middle_rows, middle_lengths) = canonical_rows(middle)?;

        let shift = |start: usize| start + bytes.len() - old_len;
        let mut starts = self.starts[..first].to_vec();
        let mut next = self.starts[first];
        for length in &middle_lengths {
            starts.push(next);
            next += length;
        }
        // The kept rows at the end, and the end of the file, moved by the change in length.
        starts.extend(self.starts[kept_end..].iter().map(|start| shift(*start)));
        let mut rows = self.rows;
        let tail = rows.split_off(kept_end);
        rows.truncate(first);
        rows.extend(middle_rows);
        rows.extend(tail);
        debug_assert_eq!(starts.len(), rows.len() + 1);
        Some(KnownFile { file: self.file, bytes, rows, starts })
    }

    /// The rows, in file order.
    pub fn rows(&self) -> &[Booking] {
        &self.rows
    }

    /// The rows, to be handed back with [`KnownLayout::write_adding`].
    pub fn into_parts(self) -> (Vec<Booking>, KnownLayout) {
        (self.rows, KnownLayout { file: self.file, bytes: self.bytes, starts: self.starts })
    }
}

/// An active file's bytes, read under a lock.
#[derive(Debug, Clone, PartialEq)]
pub struct FileCopy {
    file: ActiveFile,
    bytes: Vec<u8>,
}

impl FileCopy {
    /// The rows the bytes hold; `None` when they are not in the tools' own form. No lock is
    /// needed: the bytes were read under one, and a file is only ever replaced whole.
    pub fn parse(self) -> Option<KnownFile> {
        let header = header_line().len();
        if !self.bytes.starts_with(header_line().as_bytes()) {
            return None;
        }
        let (rows, lengths) = canonical_rows(&self.bytes[header..])?;
        let starts = starts_from(header, &lengths);
        Some(KnownFile { file: self.file, bytes: self.bytes, rows, starts })
    }
}

/// A [`KnownFile`]'s bytes and row starts, without its rows (which the caller holds).
#[derive(Debug, Clone, PartialEq)]
pub struct KnownLayout {
    file: ActiveFile,
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl KnownLayout {
    /// Writes the file with `added` added to `rows` (the rows [`KnownFile::into_parts`]
    /// gave), exactly as [`super::write`] would write them all sorted (`added` after `rows`,
    /// in its own order, where the order puts rows level): when the rows are in order, by
    /// copying the bytes around each new row's place.
    pub fn write_adding(self, lock: &ExclusiveLock, rows: &[Booking], added: &[Booking]) -> Result<()> {
        let in_order = rows.is_sorted_by(|left, right| schedule_order(left, right).is_le());
        if !in_order || rows.len() + 1 != self.starts.len() {
            let mut rows = rows.to_vec();
            rows.extend_from_slice(added);
            rows.sort_by(schedule_order);
            return super::write(lock, self.file, &rows);
        }
        // A stable sort, as the full write's: level rows keep their order.
        let mut added: Vec<&Booking> = added.iter().collect();
        added.sort_by(|left, right| schedule_order(left, right));
        let mut bytes = Vec::with_capacity(self.bytes.len() + added.len() * 96);
        let mut copied = 0;
        let mut row = String::new();
        for booking in added {
            let at = self.starts[rows.partition_point(|row| schedule_order(row, booking).is_le())];
            bytes.extend_from_slice(&self.bytes[copied..at]);
            copied = at;
            row.clear();
            encode_row(&mut row, booking);
            bytes.extend_from_slice(row.as_bytes());
        }
        bytes.extend_from_slice(&self.bytes[copied..]);
        atomic_file::write_atomically(lock, &self.file.path(lock.root()), &bytes)
    }
}

/// The file's bytes, read as every schedule file is (never through a link, only a plain
/// file); `None` when that fails.
fn read_bytes(lock: &impl LockHeld, file: ActiveFile) -> Option<Vec<u8>> {
    let mut handle = state_folder::read(&file.path(lock.root())).ok()??;
    let mut bytes = Vec::new();
    handle.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// The rows of `text` (rows without the header) and the length of each, when every row
/// reads without a problem and is exactly as [`encode_row`] writes it.
pub(super) fn canonical_rows(text: &[u8]) -> Option<(Vec<Booking>, Vec<usize>)> {
    let mut rows = Vec::new();
    let mut bad = false;
    let reader = header_line().into_bytes();
    rows_in("", reader.chain(text), |row: Result<RowRef<'_>, _>| match row {
        Ok(row) => rows.push(super::Row { line: row.line, booking: row.to_booking() }),
        Err(_) => bad = true,
    })
    .ok()?;
    if bad || !active_row_problems("", &rows).is_empty() {
        return None;
    }
    let mut written = String::with_capacity(text.len());
    let mut lengths = Vec::with_capacity(rows.len());
    for row in &rows {
        let before = written.len();
        encode_row(&mut written, &row.booking);
        lengths.push(written.len() - before);
    }
    (written.as_bytes() == text).then(|| (rows.into_iter().map(|row| row.booking).collect(), lengths))
}

fn starts_from(first: usize, lengths: &[usize]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(lengths.len() + 1);
    starts.push(first);
    for length in lengths {
        starts.push(starts[starts.len() - 1] + length);
    }
    starts
}

fn common_prefix(left: &[u8], right: &[u8]) -> usize {
    left.iter().zip(right).take_while(|(left, right)| left == right).count()
}

fn common_suffix(left: &[u8], right: &[u8]) -> usize {
    left.iter().rev().zip(right.iter().rev()).take_while(|(left, right)| left == right).count()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::examples::{at, booking};
    use crate::store::root::Root;

    fn scratch() -> (tempfile::TempDir, Root) {
        let scratch = tempfile::tempdir().unwrap();
        let root = Root::new(scratch.path());
        std::fs::create_dir_all(root.jobs_dir()).unwrap();
        (scratch, root)
    }

    fn path(root: &Root) -> std::path::PathBuf {
        ActiveFile::Booking.path(root)
    }

    /// What the ordinary reader reads from the file now.
    fn read_in_full(lock: &impl LockHeld) -> Vec<Booking> {
        super::super::read(lock, ActiveFile::Booking).unwrap()
    }

    /// A row of the generated schedules: one of a few users, one of a few days, with or
    /// without an image and an extra command that need quoting.
    fn any_booking() -> impl Strategy<Value = Booking> {
        (0usize..6, 0i64..20, 1i64..8, proptest::collection::btree_set(0u32..8, 0..3), 0u8..4).prop_map(
            |(user, slot, length, gpus, kind)| {
                let start = at("2026-11-23 10:00") + chrono::Duration::minutes(30 * slot);
                let mut row = booking(&format!("user{user}"), "2026-11-23 10:00", "2026-11-23 10:30", &[]);
                row.start = start;
                row.end = start + chrono::Duration::minutes(30 * length);
                row.gpus = gpus.into_iter().collect();
                row.cpus = [1.0_f64, 2.5, 12.0, 4.25][usize::from(kind)];
                if kind == 1 {
                    row.image = Some("lab/cuda:12.1".to_string());
                }
                if kind == 2 {
                    row.extra_command = Some("echo \"a, b\"".to_string());
                }
                row
            },
        )
    }

    proptest::proptest! {
        /// Whatever another writer did between the read and the refresh (rows added, removed
        /// or changed anywhere, in order or not), the refreshed rows are those the ordinary
        /// reader reads, and the bookings added are written exactly as sorting all rows and
        /// writing them would write them.
        #[test]
        fn a_refreshed_file_is_the_file_and_a_row_is_added_as_a_full_write_adds_it(
            before in proptest::collection::vec(any_booking(), 0..12),
            after in proptest::collection::vec(any_booking(), 0..12),
            keep_start in 0usize..12,
            keep_end in 0usize..12,
            repeated in 0usize..3,
            doubled in 0usize..3,
            sort_after in proptest::bool::ANY,
            added in proptest::collection::vec(any_booking(), 0..5),
            twin_added in proptest::bool::ANY,
        ) {
            let (_scratch, root) = scratch();
            let lock = ExclusiveLock::acquire(&root).unwrap();
            let mut before = before;
            before.sort_by(schedule_order);
            // Twins in the file read first, some of which the other writer drops.
            if let Some(row) = before.get(keep_start.min(before.len().saturating_sub(1))).cloned() {
                let at = keep_start.min(before.len());
                before.splice(at..at, std::iter::repeat_n(row, doubled));
            }
            super::super::write(&lock, ActiveFile::Booking, &before).unwrap();
            let known = KnownFile::read(&lock, ActiveFile::Booking).expect("a file the tools wrote is known");
            prop_assert_eq!(known.rows(), &before[..]);

            // The other writer keeps some rows at the start and at the end, and puts others
            // between them (some the same as the rows kept).
            let keep_start = keep_start.min(before.len());
            let keep_end = keep_end.min(before.len() - keep_start);
            let mut now: Vec<Booking> = before[..keep_start].to_vec();
            // Copies of the last kept row: equal bytes on both sides of the change.
            if let Some(last) = now.last().cloned() {
                now.extend(std::iter::repeat_n(last, repeated));
            }
            now.extend(after);
            now.extend_from_slice(&before[before.len() - keep_end..]);
            if sort_after {
                now.sort_by(schedule_order);
            }
            super::super::write(&lock, ActiveFile::Booking, &now).unwrap();

            let refreshed = known.refresh(&lock).expect("a file the tools wrote is known");
            prop_assert_eq!(refreshed.rows(), &read_in_full(&lock)[..]);
            prop_assert_eq!(refreshed.clone(), KnownFile::read(&lock, ActiveFile::Booking).unwrap());

            let (rows, layout) = refreshed.into_parts();
            // Level rows among those added, and beside one in the file.
            let mut added = added;
            if twin_added && let Some(row) = added.first().cloned() {
                added.push(row);
                added.extend(rows.last().cloned());
            }
            layout.write_adding(&lock, &rows, &added).unwrap();
            let written = std::fs::read(path(&root)).unwrap();
            let mut expected_rows = now;
            expected_rows.extend(added);
            expected_rows.sort_by(schedule_order);
            super::super::write(&lock, ActiveFile::Booking, &expected_rows).unwrap();
            prop_assert_eq!(written, std::fs::read(path(&root)).unwrap());
        }
    }

    /// A row written again right after its twin, and dropped again: the equal bytes at the
    /// start and at the end overlap, and the rows must be read all the same.
    #[test]
    fn a_row_added_beside_its_twin_is_read() {
        let (_scratch, root) = scratch();
        let lock = ExclusiveLock::acquire(&root).unwrap();
        let first = booking("alice", "2026-11-23 10:00", "2026-11-23 12:00", &[0]);
        let second = booking("bob", "2026-11-23 11:00", "2026-11-23 12:00", &[1]);
        super::super::write(&lock, ActiveFile::Booking, &[first.clone(), second.clone()]).unwrap();
        let known = KnownFile::read(&lock, ActiveFile::Booking).unwrap();
        let twins = [first.clone(), first.clone(), second.clone()];
        super::super::write(&lock, ActiveFile::Booking, &twins).unwrap();
        let known = known.refresh(&lock).unwrap();
        assert_eq!(known.rows(), &twins[..]);
        // And the twin dropped again.
        super::super::write(&lock, ActiveFile::Booking, &[first.clone(), second.clone()]).unwrap();
        assert_eq!(known.refresh(&lock).unwrap().rows(), &[first, second][..]);
    }

    /// A file the tools would not have written is left to the ordinary reader, which reports
    /// what is wrong with it or reads what a person wrote.
    #[test]
    fn a_file_in_any_other_form_is_not_known() {
        let (_scratch, root) = scratch();
        let lock = ExclusiveLock::acquire(&root).unwrap();
        assert_eq!(KnownFile::read(&lock, ActiveFile::Booking), None, "a missing file");
        let header = header_line();
        let row = "2026-11-23 10:00:00,2026-11-23 12:00:00,alice,2,8,\"[0, 1]\",10001,,\n";
        std::fs::write(path(&root), format!("{header}{row}")).unwrap();
        let known = KnownFile::read(&lock, ActiveFile::Booking).expect("the tools' own form");
        for (text, what) in [
            (format!("\u{feff}{header}{row}"), "a byte-order mark"),
            (format!("{header}{}", row.replace('\n', "\r\n")), "Windows line ends"),
            (format!("{header}\n{row}"), "a blank line"),
            (format!("{header}{}", row.trim_end()), "no line end after the last row"),
            (format!("{header}{}", row.replace(":00:00,2026", ":00,2026")), "a time without seconds"),
            (format!("{header}{}", row.replace(",2,8,", ",2.0,8,")), "2.0 CPUs"),
            (format!("{header}{}", row.replace("12:00:00", "10:00:00")), "a row that ends where it starts"),
            (format!("{header}{row}{row}").replace("alice", "al ice"), "a bad user id"),
        ] {
            std::fs::write(path(&root), &text).unwrap();
            assert_eq!(KnownFile::read(&lock, ActiveFile::Booking), None, "{what}");
            assert_eq!(known.clone().refresh(&lock), None, "{what}, after a known read");
        }
        std::fs::remove_file(path(&root)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", path(&root)).unwrap();
        assert_eq!(KnownFile::read(&lock, ActiveFile::Booking), None, "a link");
    }
}
