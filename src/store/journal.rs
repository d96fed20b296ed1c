//! `jobs/.journal`: a change to several state files, written down in full before it is made.
//!
//! Moving a booking between files takes more than one write: a cancellation appends the row
//! to `used.csv` and rewrites `booking.csv`; a monitor pass appends to the history and rewrites
//! `using.csv`, `booking.csv` and `monitor_exec`. A process killed between two of those writes
//! would leave a booking in no file or in two. So such a change is first written here as a
//! list of steps (the whole new contents of each rewritten file; for `used.csv`, the bytes to
//! append and its length before), flushed, then made, then this file is removed.
//!
//! Whoever takes the exclusive lock next and finds this file makes the change again from the
//! first step ([`finish_interrupted`], called by [`crate::store::lock`] before it hands out a guard).
//! Every step can be made twice with the effect of once: a rewrite writes the same bytes
//! again, and an append first looks at how far `used.csv` already grew. A kill at any moment,
//! during a replay too, therefore ends with every booking in exactly one file and no history
//! row written twice.
//!
//! Locking: written only by holders of the [`crate::store::lock::ExclusiveLock`] (through
//! [`crate::store::schedule::commit`]), replayed only while it is held. The file lies in the booking
//! account's `jobs/`, so it is read and written only as [`crate::store::state_folder`] allows, and
//! may name nothing but the state files listed in [`JOURNALED_FILES`].

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result, bail};

use crate::store::state_folder::{FileMode, Folder};

pub const FILE_NAME: &str = ".journal";

/// The only files a journal may change: a planted journal must not name anything else.
pub const JOURNALED_FILES: [&str; 4] = ["booking.csv", "using.csv", "used.csv", "monitor_exec"];

/// A journal larger than this is refused rather than read into memory: 10,000 active
/// bookings take about a megabyte.
const SIZE_LIMIT: u64 = 256 * 1024 * 1024;

const FIRST_LINE: &str = "gpu-booking journal 1";

/// One write of a multi-file change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Replace the file with these bytes.
    Replace { name: &'static str, contents: Vec<u8> },
    /// Append these bytes to the file, which was `length_before` bytes long when the change
    /// was written down.
    Append { name: &'static str, length_before: u64, bytes: Vec<u8> },
}

/// Makes `steps` so that a kill at any moment loses none of them: written down, flushed,
/// made, and the journal removed. The caller holds the exclusive lock.
pub fn make(folder: &Folder, steps: &[Step]) -> Result<()> {
    for step in steps {
        check_name(step.name()).map_err(anyhow::Error::msg)?;
    }
    folder.replace(OsStr::new(FILE_NAME), &encode(steps), FileMode::KeepOr(0o644))?;
    apply(folder, steps)
}

/// Completes a change a killed process left half made. `Ok(true)` when there was one.
pub fn finish_interrupted(folder: &Folder) -> Result<bool> {
    let shown = folder.path().join(FILE_NAME);
    let Some(mut file) = folder.read(OsStr::new(FILE_NAME))? else {
        return Ok(false);
    };
    let mut bytes = Vec::new();
    (&mut file)
        .take(SIZE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", shown.display()))?;
    if bytes.len() as u64 > SIZE_LIMIT {
        bail!("{}: larger than {} MiB; {}", shown.display(), SIZE_LIMIT >> 20, UNREADABLE_ADVICE);
    }
    let steps = decode(&bytes)
        .map_err(|(line, problem)| anyhow::anyhow!("{}:{line}: {problem}; {}", shown.display(), UNREADABLE_ADVICE))?;
    apply(folder, &steps)?;
    Ok(true)
}

/// True when an interrupted change waits to be completed.
pub fn is_pending(folder: &Folder) -> bool {
    folder.exists(OsStr::new(FILE_NAME))
}

const UNREADABLE_ADVICE: &str = "it should hold a change to the schedule that a killed process left half made, but \
     cannot be read, so nothing was changed; check jobs/booking.csv, jobs/using.csv and jobs/used.csv by hand, then \
     remove jobs/.journal";

fn apply(folder: &Folder, steps: &[Step]) -> Result<()> {
    for step in steps {
        match step {
            Step::Append { name, length_before, bytes } => append_once(folder, name, *length_before, bytes)?,
            Step::Replace { name, contents } => folder.replace(OsStr::new(name), contents, FileMode::KeepOr(0o644))?,
        }
    }
    folder.remove(OsStr::new(FILE_NAME))
}

/// Appends `bytes` unless the file already grew by them since it was `length_before` long
/// (an earlier attempt got that far), finishing a partial append.
fn append_once(folder: &Folder, name: &str, length_before: u64, bytes: &[u8]) -> Result<()> {
    let shown = folder.path().join(name);
    let mut file = folder.append(OsStr::new(name))?;
    let length = file.metadata().with_context(|| format!("cannot read the size of {}", shown.display()))?.len();
    let end = length_before + bytes.len() as u64;
    let missing: &[u8] = if length == length_before {
        bytes
    } else if length > length_before && length < end {
        let mut written = vec![0u8; (length - length_before) as usize];
        file.seek(SeekFrom::Start(length_before))
            .and_then(|_| file.read_exact(&mut written))
            .with_context(|| format!("cannot read {}", shown.display()))?;
        if bytes.starts_with(&written) { &bytes[written.len()..] } else { bytes }
    } else if length >= end && ends_with(&mut file, length, bytes) {
        &[]
    } else {
        // The file changed in a way no attempt of ours explains (edited by hand between the
        // kill and now): append the rows again rather than lose them.
        bytes
    };
    if missing.is_empty() {
        return Ok(());
    }
    file.write_all(missing).with_context(|| format!("cannot append to {}", shown.display()))?;
    file.sync_data().with_context(|| format!("cannot flush {} to disk", shown.display()))
}

/// Whether the bytes `[length - bytes.len(), length)` of `file` are `bytes`. Only the file's
/// first append after the change could have written them, and nothing but our own appends
/// follow it while the lock is held, so the end of the file is where they would be.
fn ends_with(file: &mut std::fs::File, length: u64, bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    let mut tail = vec![0u8; bytes.len()];
    file.seek(SeekFrom::Start(length - bytes.len() as u64)).is_ok()
        && file.read_exact(&mut tail).is_ok()
        && tail == bytes
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::Replace { name, .. } | Step::Append { name, .. } => name,
        }
    }
}

fn check_name(name: &str) -> Result<&'static str, String> {
    JOURNALED_FILES.iter().find(|known| **known == name).copied().ok_or_else(|| {
        format!("names the file {:?}; a journal may only change {}", cut(name), JOURNALED_FILES.join(", "))
    })
}

fn cut(text: &str) -> String {
    text.chars().take(60).collect()
}

/// `replace NAME COUNT` or `append NAME LENGTH-BEFORE COUNT`, a newline, COUNT bytes and a
/// newline; then `end`. Counted bytes need no escaping, and a file cut short (it cannot be:
/// it is written atomically, but it may be planted) lacks the `end` line.
fn encode(steps: &[Step]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(FIRST_LINE.as_bytes());
    out.push(b'\n');
    for step in steps {
        let (head, body) = match step {
            Step::Replace { name, contents } => (format!("replace {name} {}\n", contents.len()), contents),
            Step::Append { name, length_before, bytes } => {
                (format!("append {name} {length_before} {}\n", bytes.len()), bytes)
            }
        };
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(body);
        out.push(b'\n');
    }
    out.extend_from_slice(b"end\n");
    out
}

fn decode(bytes: &[u8]) -> Result<Vec<Step>, (usize, String)> {
    let mut steps = Vec::new();
    let mut rest = bytes;
    let mut line = 1usize;
    let next_line = |rest: &mut &[u8], line: &mut usize| -> Result<String, (usize, String)> {
        let end =
            rest.iter().position(|byte| *byte == b'\n').ok_or((*line, "ends in the middle of a line".to_string()))?;
        let text = std::str::from_utf8(&rest[..end]).map_err(|_| (*line, "is not UTF-8".to_string()))?.to_string();
        *rest = &rest[end + 1..];
        *line += 1;
        Ok(text)
    };
    let first = next_line(&mut rest, &mut line)?;
    if first != FIRST_LINE {
        return Err((1, format!("expected {FIRST_LINE:?}, found {:?}", cut(&first))));
    }
    loop {
        let at = line;
        let head = next_line(&mut rest, &mut line)?;
        let words: Vec<&str> = head.split(' ').collect();
        let number =
            |text: &str| text.parse::<u64>().map_err(|_| (at, format!("expected a byte count, found {:?}", cut(text))));
        let (step_name, length_before, count) = match words.as_slice() {
            ["end"] if rest.is_empty() => return Ok(steps),
            ["end"] => return Err((at, "has text after its end".to_string())),
            ["replace", name, count] => (*name, None, number(count)?),
            ["append", name, before, count] => (*name, Some(number(before)?), number(count)?),
            _ => return Err((at, format!("expected a step (replace, append or end), found {:?}", cut(&head)))),
        };
        let name = check_name(step_name).map_err(|problem| (at, problem))?;
        let count =
            usize::try_from(count).ok().filter(|count| *count < rest.len()).ok_or((at, "is cut short".to_string()))?;
        if rest[count] != b'\n' {
            return Err((at, "a step's bytes do not end where its count says".to_string()));
        }
        let body = rest[..count].to_vec();
        line += body.iter().filter(|byte| **byte == b'\n').count() + 1;
        rest = &rest[count + 1..];
        steps.push(match length_before {
            Some(length_before) => Step::Append { name, length_before, bytes: body },
            None => Step::Replace { name, contents: body },
        });
    }
}

/// The names a stale temporary file may have in a journaled folder: ours (`.NAME.tmp`) and
/// those of earlier releases (`.NAME.PID.tmp`).
pub fn is_temporary_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else { return false };
    name.starts_with('.') && name.ends_with(".tmp") && name.len() > ".tmp".len() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::state_folder::scratch_folder as folder;

    fn steps() -> Vec<Step> {
        vec![
            Step::Append { name: "used.csv", length_before: 6, bytes: b"row 1\nrow 2\n".to_vec() },
            Step::Replace { name: "booking.csv", contents: b"header\n".to_vec() },
            Step::Replace { name: "monitor_exec", contents: Vec::new() },
        ]
    }

    #[test]
    fn a_journal_reads_back_as_written() {
        let written = steps();
        assert_eq!(decode(&encode(&written)), Ok(written));
    }

    #[test]
    fn a_replay_after_a_kill_anywhere_appends_once() {
        // The used.csv a killed attempt may have left: untouched, half appended, or done.
        for already in [&b""[..], b"row", b"row 1\n", b"row 1\nrow 2\n"] {
            let (scratch, folder) = folder();
            let mut used = b"header".to_vec();
            used.extend_from_slice(already);
            std::fs::write(scratch.path().join("used.csv"), &used).unwrap();
            std::fs::write(scratch.path().join(FILE_NAME), encode(&steps())).unwrap();
            assert!(finish_interrupted(&folder).unwrap());
            assert!(finish_interrupted(&folder).is_ok_and(|found| !found), "the journal is gone after a replay");
            let used = std::fs::read_to_string(scratch.path().join("used.csv")).unwrap();
            assert_eq!(used, "headerrow 1\nrow 2\n", "after {:?}", String::from_utf8_lossy(already));
            assert_eq!(std::fs::read_to_string(scratch.path().join("booking.csv")).unwrap(), "header\n");
        }
    }

    #[test]
    fn a_journal_that_names_another_file_or_is_cut_short_changes_nothing() {
        let (scratch, folder) = folder();
        let planted = b"gpu-booking journal 1\nreplace ../../etc/passwd 3\nx:0\nend\n";
        std::fs::write(scratch.path().join(FILE_NAME), planted).unwrap();
        let message = format!("{:#}", finish_interrupted(&folder).unwrap_err());
        assert!(message.contains(".journal:2") && message.contains("may only change"), "{message}");
        let mut cut_short = encode(&steps());
        cut_short.truncate(cut_short.len() - 4);
        std::fs::write(scratch.path().join(FILE_NAME), cut_short).unwrap();
        let message = format!("{:#}", finish_interrupted(&folder).unwrap_err());
        assert!(message.contains(".journal:") && message.contains("remove jobs/.journal"), "{message}");
        assert!(!scratch.path().join("used.csv").exists() && !scratch.path().join("booking.csv").exists());
    }
}
