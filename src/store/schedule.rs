//! The schedule: `jobs/booking.csv` (future bookings), `jobs/using.csv` (running ones) and
//! `jobs/used.csv` (history).
//!
//! The format is the original's, so either system can read the other's files: header
//! `start,end,user_id,cpus,memory,gpus,forward_port,image,extra_command`, times
//! `YYYY-MM-DD HH:MM:SS` (a fractional part is accepted), `gpus` a list literal `"[0, 1]"`,
//! empty `image`/`extra_command` meaning the user's default.
//!
//! Locking: reads take any lock guard, rewrites of `booking.csv`/`using.csv` take the
//! [`ExclusiveLock`] and are atomic; `used.csv` is only ever appended to (there is no
//! function that rewrites it). A missing file reads as empty and is created, header first, on
//! first write. `jobs/` is the booking account's folder and root runs the monitor on it, so
//! these files are read and written only as [`crate::store::state_folder`] allows: never through a
//! link, only a plain file with one name.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::NaiveDateTime;

use crate::error::{FileProblem, FileProblems, quoted};
use crate::model::text::{
    parse_gpu_list_into, parse_plain_gpu_list, parse_plain_gpu_list_prefix, parse_plain_time_remembering,
    push_gpu_list, push_time,
};
use crate::model::{Booking, UserId, format_time, parse_time, ranges};
use crate::store::atomic_file;
use crate::store::lock::{ExclusiveLock, LockHeld};
use crate::store::root::Root;
use crate::store::state_folder;

mod known;

pub use known::{FileCopy, KnownFile, KnownLayout};

pub const COLUMNS: [&str; 9] =
    ["start", "end", "user_id", "cpus", "memory", "gpus", "forward_port", "image", "extra_command"];

/// The files that hold active bookings and are rewritten as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveFile {
    /// `jobs/booking.csv`: bookings that have not started.
    Booking,
    /// `jobs/using.csv`: bookings whose container runs.
    Using,
}

impl ActiveFile {
    pub fn path(self, root: &Root) -> PathBuf {
        root.jobs_dir().join(match self {
            ActiveFile::Booking => "booking.csv",
            ActiveFile::Using => "using.csv",
        })
    }
}

/// The order of the rows of `booking.csv`: by start, then by user.
pub fn schedule_order(left: &Booking, right: &Booking) -> std::cmp::Ordering {
    left.start.cmp(&right.start).then_with(|| left.user_id.cmp(&right.user_id))
}

pub fn history_path(root: &Root) -> PathBuf {
    root.jobs_dir().join("used.csv")
}

/// A row read from a file, with the line it stands on (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub booking: Booking,
}

/// Reads an active file. Any bad row stops the read; the error lists every bad row.
pub fn read(lock: &impl LockHeld, file: ActiveFile) -> Result<Vec<Booking>> {
    let path = file.path(lock.root());
    let (rows, mut problems) = read_rows(lock, &path)?;
    problems.extend(active_row_problems(&lock.root().display(&path), &rows));
    if !problems.is_empty() {
        return Err(FileProblems(problems).into());
    }
    Ok(rows.into_iter().map(|row| row.booking).collect())
}

/// What may not stand in a row that is about to run (or runs): a CPU count the container
/// could not be limited to, a window that is empty or off the 30-minute grid, an image name
/// or extra command over the field limits. The history is read as it was written (the
/// original took any number), since nothing is started from it. Every reader of the active
/// files refuses these, as `enroll check` does; what depends on other rows or files (two
/// bookings on one GPU, a user no longer allowed) is `enroll check`'s to report, so that
/// the tools that mend it keep working.
pub fn active_row_problems(shown_path: &str, rows: &[Row]) -> Vec<FileProblem> {
    let mut problems = Vec::new();
    for row in rows {
        let booking = &row.booking;
        let mut problem = |field: &str, message: String| {
            problems.push(FileProblem::error(shown_path, Some(row.line), field, message));
        };
        if let Some(message) = crate::rules::capacity::cpus_problem(booking.cpus) {
            problem("cpus", message);
        }
        if let Some(Err(reason)) = booking.extra_command.as_deref().map(crate::rules::settings::check_extra_command) {
            problem("extra_command", reason);
        }
        if let Some(Err(reason)) = booking.image.as_deref().map(crate::rules::settings::check_image_name) {
            problem("image", reason);
        }
        if booking.end <= booking.start {
            problem("end", format!("{} is not after start {}", booking.end, booking.start));
        }
        for (field, time) in [("start", booking.start), ("end", booking.end)] {
            if !crate::rules::is_on_grid(time) {
                problem(field, format!("{time} is off the 30-minute grid (expected minutes :00 or :30)"));
            }
        }
    }
    problems
}

/// Reads a schedule file (any of the three), returning the good rows and a problem for each
/// bad one. Only an unreadable file is an `Err`.
pub fn read_rows(lock: &impl LockHeld, path: &Path) -> Result<(Vec<Row>, Vec<FileProblem>)> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for_each_row(lock, path, |result| match result {
        Ok(row) => rows.push(row),
        Err(problem) => problems.push(problem),
    })?;
    Ok((rows, problems))
}

/// Streams a schedule file row by row, so the history can be read in constant memory.
pub fn for_each_row(lock: &impl LockHeld, path: &Path, mut visit: impl FnMut(Result<Row, FileProblem>)) -> Result<()> {
    for_each_row_ref(lock, path, |result| visit(result.map(|row| Row { line: row.line, booking: row.to_booking() })))
}

/// One row as it stands in the file, borrowed: reading the history this way allocates
/// nothing per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowRef<'a> {
    pub line: usize,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    /// A valid user id (see [`UserId::parse`]).
    pub user_id: &'a str,
    pub cpus: f64,
    pub memory: u32,
    pub gpus: &'a [u32],
    pub forward_port: u16,
    pub image: Option<&'a str>,
    pub extra_command: Option<&'a str>,
}

impl RowRef<'_> {
    pub fn to_booking(&self) -> Booking {
        Booking {
            start: self.start,
            end: self.end,
            user_id: UserId::parse(self.user_id).unwrap_or_else(|_| unreachable!("checked when the row was read")),
            cpus: self.cpus,
            memory: self.memory,
            gpus: self.gpus.to_vec(),
            forward_port: self.forward_port,
            image: self.image.map(str::to_string),
            extra_command: self.extra_command.map(str::to_string),
        }
    }
}

/// Streams a schedule file row by row, each row borrowed for the call (see [`RowRef`]).
pub fn for_each_row_ref(
    lock: &impl LockHeld,
    path: &Path,
    visit: impl FnMut(Result<RowRef<'_>, FileProblem>),
) -> Result<()> {
    let shown = lock.root().display(path);
    // `jobs/` is the booking account's: never read through a link (the rows would end up in
    // messages and in the log).
    let Some(file) = state_folder::read(path).with_context(|| format!("cannot read {shown}"))? else {
        return Ok(());
    };
    rows_in(&shown, file, visit).with_context(|| format!("cannot read {shown}"))
}

/// The rows of a schedule file's text, read from `reader` (see [`for_each_row_ref`]);
/// `shown` names the file in problems.
fn rows_in(
    shown: &str,
    reader: impl std::io::Read,
    visit: impl FnMut(Result<RowRef<'_>, FileProblem>),
) -> std::io::Result<()> {
    // What the header says; `None` until it is read, `Err` when it is bad.
    let columns: Option<Result<Columns, ()>> = None;
    let mut state = (columns, RowScratch::default(), visit);
    crate::store::csv_scan::for_each_record(
        reader,
        &mut state,
        |(columns, scratch, visit), unsplit| {
            let Some(Ok((_, _, true))) = columns else { return None };
            let (parsed, end) = parse_plain_row(unsplit, scratch)?;
            visit(Ok(parsed.with(unsplit.line, &scratch.gpus)));
            Some(end)
        },
        |(columns, scratch, visit), record| {
            let fields = record.fields();
            let Some(columns) = columns else {
                let header = match fields {
                    Ok(header) => header,
                    Err(at) => {
                        let message = format!("cannot read the header: not UTF-8 text (byte {} of the line)", at + 1);
                        visit(Err(FileProblem::error(shown, Some(record.line()), "", message)));
                        return false;
                    }
                };
                if header.len() == 1 && header.get(0).is_some_and(|name| name.trim().is_empty()) {
                    return false;
                }
                *columns = Some(match column_positions(header) {
                    Ok(positions) => Ok((positions, header.len(), in_file_order(&positions, header.len()))),
                    Err(message) => {
                        visit(Err(FileProblem::error(shown, Some(record.line()), "", message)));
                        Err(())
                    }
                });
                return columns.is_some_and(|columns| columns.is_ok());
            };
            let Ok(columns) = columns else { return false };
            if let Some(row) = read_row(shown, record, columns, scratch) {
                visit(row);
            }
            true
        },
    )
}

/// Reads a schedule file on every core (the history may hold millions of rows): each row, or
/// the problem with it, is folded into an accumulator made by `make`, and the accumulators
/// go to `merge` in file order (each covers a run of rows, the runs in order). A bad header
/// is one problem, and nothing else is read.
pub fn fold_rows<A: Send>(
    lock: &impl LockHeld,
    path: &Path,
    make: impl Fn() -> A + Sync,
    visit: impl Fn(&mut A, Result<RowRef<'_>, FileProblem>) + Sync,
    mut merge: impl FnMut(A),
) -> Result<()> {
    let shown = lock.root().display(path);
    let Some(file) = state_folder::read(path).with_context(|| format!("cannot read {shown}"))? else {
        return Ok(());
    };
    let columns: std::sync::OnceLock<Columns> = std::sync::OnceLock::new();
    let mut header_problem = None;
    let parts = std::thread::available_parallelism().map_or(1, |count| count.get()).min(8);
    crate::store::csv_scan::fold_records(
        file,
        parts,
        |record| {
            let found = match record.fields() {
                Err(at) => Err(format!("cannot read the header: not UTF-8 text (byte {} of the line)", at + 1)),
                Ok(header) if header.len() == 1 && header.get(0).is_some_and(|name| name.trim().is_empty()) => {
                    return false;
                }
                Ok(header) => column_positions(header)
                    .map(|positions| (positions, header.len(), in_file_order(&positions, header.len()))),
            };
            match found {
                Ok(found) => columns.set(found).is_ok(),
                Err(message) => {
                    header_problem = Some(FileProblem::error(&shown, Some(record.line()), "", message));
                    false
                }
            }
        },
        || (make(), RowScratch::default()),
        |(accumulator, scratch), unsplit| {
            let Some((_, _, true)) = columns.get() else { return None };
            let (parsed, end) = parse_plain_row(unsplit, scratch)?;
            visit(accumulator, Ok(parsed.with(unsplit.line, &scratch.gpus)));
            Some(end)
        },
        |(accumulator, scratch), record| {
            if let Some(columns) = columns.get()
                && let Some(row) = read_row(&shown, record, columns, scratch)
            {
                visit(accumulator, row);
            }
        },
        |(accumulator, _)| merge(accumulator),
    )
    .with_context(|| format!("cannot read {shown}"))?;
    if let Some(problem) = header_problem {
        let mut accumulator = make();
        visit(&mut accumulator, Err(problem));
        merge(accumulator);
    }
    Ok(())
}

/// A record after the header, split into fields the general way: its row, or the problem
/// with it; `None` for a blank row (skipped).
fn read_row<'a>(
    shown: &str,
    record: crate::store::csv_scan::Record<'a>,
    (positions, width, _): &Columns,
    scratch: &'a mut RowScratch,
) -> Option<Result<RowRef<'a>, FileProblem>> {
    let line = record.line();
    match record.fields() {
        Err(at) => Some(Err(FileProblem::error(
            shown,
            Some(line),
            "",
            format!("cannot read the row: not UTF-8 text (byte {} of the row)", at + 1),
        ))),
        Ok(fields) if is_blank(fields) => None,
        Ok(fields) => Some(match parse_fields(fields, positions, *width, scratch) {
            Ok(parsed) => Ok(parsed.with(line, &scratch.gpus)),
            Err((field, message)) => Err(FileProblem::error(shown, Some(line), field, message)),
        }),
    }
}

/// Reads a row written exactly as the tools write it (the columns in the header's order, each
/// value in the form the quick readers take, no quote but around a GPU list of more than one
/// id, an empty or plain image and extra command) straight from the file's text, without
/// splitting it first: the row, and where its line ends (see [`Unsplit`]). `None` for any
/// other row, which is then read the general way and gets the same values (or names the same
/// problem): every value taken here is one the general way takes, and takes to the same value.
///
/// Only for a file whose header is [`COLUMNS`] in order ([`in_file_order`]).
///
/// [`Unsplit`]: crate::store::csv_scan::Unsplit
fn parse_plain_row<'a>(
    unsplit: crate::store::csv_scan::Unsplit<'a>,
    scratch: &mut RowScratch,
) -> Option<(Parsed<'a>, usize)> {
    let text = unsplit.text;
    let bytes = text.as_bytes();
    let mut at = unsplit.start;
    // Moves past `byte`, if it is next.
    let expect = |at: &mut usize, byte: u8| (bytes.get(*at) == Some(&byte)).then(|| *at += 1);
    let mut time = |at: &mut usize, column: usize| {
        let time = scratch.time(column, bytes.get(*at..*at + 19)?)?;
        *at += 19;
        expect(at, b',')?;
        Some(time)
    };
    let start = time(&mut at, 0)?;
    let end = time(&mut at, 1)?;
    if end < start {
        return None;
    }
    // An id is at most 64 bytes: the comma is looked for no further.
    let mut comma = at;
    while *bytes.get(comma)? != b',' {
        comma += 1;
        if comma - at > 64 {
            return None;
        }
    }
    let user_id = text.get(at..comma)?;
    UserId::check(user_id).ok()?;
    at = comma + 1;
    let (cpus, length) = plain_decimal_prefix(&bytes[at..])?;
    let cpus = cpus_in_range(Some(cpus), || "").ok()?;
    at += length;
    expect(&mut at, b',')?;
    let (_, length) = digits_prefix(&bytes[at..], 9)?;
    let memory = plain_memory(&bytes[at..at + length])?;
    at += length;
    expect(&mut at, b',')?;
    if bytes.get(at) == Some(&b'"') {
        // `"[0, 1]"`: the quotes around the whole field.
        at += 1 + parse_plain_gpu_list_prefix(&bytes[at + 1..], &mut scratch.gpus)?;
        expect(&mut at, b'"')?;
    } else {
        at += parse_plain_gpu_list_prefix(&bytes[at..], &mut scratch.gpus)?;
        // A comma between two ids would end the field there.
        if scratch.gpus.len() > 1 {
            return None;
        }
    }
    expect(&mut at, b',')?;
    let (port, length) = digits_prefix(&bytes[at..], 5)?;
    let forward_port = u16::try_from(port).ok().filter(|port| ranges::PORTS.contains(port))?;
    at += length;
    expect(&mut at, b',')?;
    // The image, then the extra command up to the line end: plain text, visible at both
    // ends (one with spaces around it is read, trimmed, the general way), or nothing.
    let optional = |at: &mut usize, end: fn(u8) -> bool| {
        let from = *at;
        let length = bytes[from..].iter().position(|byte| matches!(byte, b',' | b'"' | b'\n' | b'\r'))?;
        *at += length;
        if !end(bytes[*at]) {
            return None;
        }
        match bytes[from..*at] {
            [] => Some(None),
            [first, .., last] | [first @ last] if first.is_ascii_graphic() && last.is_ascii_graphic() => {
                Some(optional_text(text.get(from..*at)?))
            }
            _ => None,
        }
    };
    let image = optional(&mut at, |byte| byte == b',')?;
    at += 1;
    let extra_command = optional(&mut at, |byte| matches!(byte, b'\n' | b'\r'))?;
    let parsed = Parsed { start, end, user_id, cpus, memory, forward_port, image, extra_command };
    Some((parsed, at))
}

/// Whether a file's header is [`COLUMNS`] in order, as the tools write it (then most rows are
/// read by [`parse_plain_row`]).
fn in_file_order(positions: &[usize; 9], width: usize) -> bool {
    width == COLUMNS.len() && positions.iter().enumerate().all(|(index, position)| *position == index)
}

/// Whether every field of a row is empty or spaces (such a row is skipped). Looked at first:
/// whether the first field begins with a visible character, as nearly every row's does.
fn is_blank(fields: crate::store::csv_scan::Fields<'_>) -> bool {
    let visible_first = fields.bytes(0).and_then(<[u8]>::first).is_some_and(u8::is_ascii_graphic);
    !visible_first && fields.iter().all(|field| field.trim().is_empty())
}

/// What a file's header says: where each column is, how many columns there are, and whether
/// they are [`COLUMNS`] in order (then rows can be read the quick way, [`parse_plain_row`]).
type Columns = ([usize; 9], usize, bool);

fn column_positions(header: crate::store::csv_scan::Fields<'_>) -> Result<[usize; 9], String> {
    let mut positions = [usize::MAX; 9];
    for (position, name) in header.iter().enumerate() {
        let name = name.trim();
        match COLUMNS.iter().position(|column| *column == name) {
            Some(index) if positions[index] == usize::MAX => positions[index] = position,
            Some(_) => return Err(format!("the column {} appears twice", quoted(name))),
            None => {
                return Err(format!("unknown column {}; expected the header {}", quoted(name), COLUMNS.join(",")));
            }
        }
    }
    if let Some(missing) = positions.iter().position(|position| *position == usize::MAX) {
        return Err(format!("the column {:?} is missing; expected the header {}", COLUMNS[missing], COLUMNS.join(",")));
    }
    Ok(positions)
}

/// A row's values before its GPU list is attached (it lives in a buffer the caller reuses).
struct Parsed<'a> {
    start: NaiveDateTime,
    end: NaiveDateTime,
    user_id: &'a str,
    cpus: f64,
    memory: u32,
    forward_port: u16,
    image: Option<&'a str>,
    extra_command: Option<&'a str>,
}

impl<'a> Parsed<'a> {
    fn with(self, line: usize, gpus: &'a [u32]) -> RowRef<'a> {
        RowRef {
            line,
            start: self.start,
            end: self.end,
            user_id: self.user_id,
            cpus: self.cpus,
            memory: self.memory,
            gpus,
            forward_port: self.forward_port,
            image: self.image,
            extra_command: self.extra_command,
        }
    }
}

/// Reads one row; the GPU ids go to `gpus`. On a bad value: the column and what is wrong.
fn parse_fields<'a>(
    record: crate::store::csv_scan::Fields<'a>,
    columns: &[usize; 9],
    width: usize,
    scratch: &mut RowScratch,
) -> Result<Parsed<'a>, (String, String)> {
    if record.len() != width {
        return Err((String::new(), format!("expected {width} fields like the header, found {}", record.len())));
    }
    let field = |index: usize| trim(record.get(columns[index]).unwrap_or(""));
    // A field's bytes as they stand, for the quick readers: each takes only a form that begins
    // and ends with a visible character (which trimming leaves as it is); any other form is
    // read from the trimmed text by the general reader, which names what is wrong.
    let bytes = |index: usize| record.bytes(columns[index]).unwrap_or_default();
    let fail = |index: usize, message: String| (COLUMNS[index].to_string(), message);

    let start = match scratch.time(0, bytes(0)) {
        Some(time) => time,
        None => parse_time(field(0)).map_err(|message| fail(0, message))?,
    };
    let end = match scratch.time(1, bytes(1)) {
        Some(time) => time,
        None => parse_time(field(1)).map_err(|message| fail(1, message))?,
    };
    let user_id = field(2);
    UserId::check(user_id).map_err(|message| fail(2, message))?;
    let cpus = match plain_decimal(bytes(3)) {
        Some(cpus) => cpus_in_range(Some(cpus), || field(3)),
        None => parse_cpus(field(3)),
    }
    .map_err(|message| fail(3, message))?;
    let memory = match plain_memory(bytes(4)) {
        Some(memory) => memory,
        None => parse_memory(field(4)).map_err(|message| fail(4, message))?,
    };
    if parse_plain_gpu_list(bytes(5), &mut scratch.gpus).is_none() {
        parse_gpu_list_into(field(5), &mut scratch.gpus).map_err(|message| fail(5, message))?;
    }
    let forward_port = plain_port(bytes(6))
        .or_else(|| field(6).parse::<u16>().ok())
        .filter(|port| ranges::PORTS.contains(port))
        .ok_or_else(|| {
            let (first, last) = (ranges::PORTS.start(), ranges::PORTS.end());
            fail(6, format!("expected a port from {first} to {last}, found {}", quoted(field(6))))
        })?;
    // `end == start` is allowed: the history marks a booking that was cancelled or missed
    // before it started that way. Active files are held to `end > start` by the checks.
    if end < start {
        return Err(fail(1, format!("{} is before start {}", format_time(end), format_time(start))));
    }
    Ok(Parsed {
        start,
        end,
        user_id,
        cpus,
        memory,
        forward_port,
        image: if bytes(7).is_empty() { None } else { optional_text(field(7)) },
        extra_command: if bytes(8).is_empty() { None } else { optional_text(field(8)) },
    })
}

/// `text.trim()`, without the search for Unicode spaces when the ends are plain ASCII (the
/// history is long, and nearly every field has nothing to trim).
fn trim(text: &str) -> &str {
    let plain = |byte: Option<&u8>| byte.is_some_and(|byte| byte.is_ascii_graphic());
    if text.is_empty() || (plain(text.as_bytes().first()) && plain(text.as_bytes().last())) {
        text
    } else {
        text.trim()
    }
}

/// What reading rows one after another reuses: the GPU ids' buffer, the last date read, and
/// the last start and end read (as written, and as read).
#[derive(Debug, Default)]
struct RowScratch {
    gpus: Vec<u32>,
    last_date: Option<([u8; 10], chrono::NaiveDate)>,
    last_times: [Option<([u8; 19], NaiveDateTime)>; 2],
}

impl RowScratch {
    /// The time `bytes` write in the start (`column` 0) or end (1) column, if written as the
    /// tools write it: rows in a row often share one (the monitor appends the bookings that
    /// ended in one pass together, and bookings start and end on the half hour), and then it is
    /// not read again.
    #[inline]
    fn time(&mut self, column: usize, bytes: &[u8]) -> Option<NaiveDateTime> {
        let written: &[u8; 19] = bytes.try_into().ok()?;
        if let Some((known, time)) = &self.last_times[column]
            && known == written
        {
            return Some(*time);
        }
        let time = parse_plain_time_remembering(written, &mut self.last_date)?;
        self.last_times[column] = Some((*written, time));
        Some(time)
    }
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    cpus_in_range(plain_decimal(text.as_bytes()).or_else(|| text.parse::<f64>().ok()), || text)
}

/// The CPUs read (`None`: not a number) if they are a count a booking may hold; `text` is
/// what the row says, for the message.
#[inline]
fn cpus_in_range<'a>(cpus: Option<f64>, text: impl FnOnce() -> &'a str) -> Result<f64, String> {
    match cpus {
        Some(cpus) if cpus.is_finite() && cpus > 0.0 && cpus <= *ranges::CPUS.end() => Ok(cpus),
        _ => Err(cpus_problem(cpus, text())),
    }
}

/// What is wrong with the CPUs `text` gives (read as `cpus`), for [`cpus_in_range`].
#[cold]
fn cpus_problem(cpus: Option<f64>, text: &str) -> String {
    match cpus {
        Some(cpus) if cpus.is_finite() && cpus > *ranges::CPUS.end() => {
            format!("expected at most {} CPUs, found {}", crate::error::number(*ranges::CPUS.end()), quoted(text))
        }
        _ => format!("expected a number of CPUs above 0, found {}", quoted(text)),
    }
}

/// A number written as plain digits with an optional fraction (`4`, `3.5`, `12.25`), read
/// without the general float parser (the history is long): the digits make an exact integer
/// and the power of ten is exact, so the one rounded division gives the nearest double to the
/// number written, which is what `str::parse` gives. `None` for any other form.
fn plain_decimal(bytes: &[u8]) -> Option<f64> {
    plain_decimal_prefix(bytes).filter(|(_, length)| *length == bytes.len()).map(|(value, _)| value)
}

/// [`plain_decimal`] of the longest start of `bytes` in that form (digits, then a point and
/// digits or not), and its length; `None` when that start has no digit or too many.
#[inline(always)]
fn plain_decimal_prefix(bytes: &[u8]) -> Option<(f64, usize)> {
    const POWERS_OF_TEN: [f64; 16] =
        [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let (mut value, whole) = digits_prefix(bytes, 15)?;
    let mut length = whole;
    let mut fraction = 0;
    if bytes.get(whole) == Some(&b'.')
        && let Some((decimals, count)) = digits_prefix(&bytes[whole + 1..], 15 - whole)
    {
        value = value * 10u64.pow(count as u32) + decimals;
        fraction = count;
        length += 1 + count;
    }
    Some((value as f64 / POWERS_OF_TEN[fraction], length))
}

/// The plain digits `bytes` starts with, as a number, and how many there are: `None` when
/// there are none or more than `most` (at most 19).
#[inline(always)]
fn digits_prefix(bytes: &[u8], most: usize) -> Option<(u64, usize)> {
    let mut value = 0;
    for (count, byte) in bytes.iter().enumerate() {
        let digit = byte.wrapping_sub(b'0');
        if digit >= 10 {
            return (count > 0).then_some((value, count));
        }
        if count == most {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    (!bytes.is_empty()).then_some((value, bytes.len()))
}

/// Up to `digits` (at most 9) plain digits as a number; `None` for any other form.
fn plain_digits(bytes: &[u8], digits: usize) -> Option<u32> {
    let (value, count) = digits_prefix(bytes, digits)?;
    (count == bytes.len()).then_some(value as u32)
}

/// Memory written as plain digits (what the tools write) within the limits; `None` for
/// anything else, which [`parse_memory`] reads.
#[inline]
fn plain_memory(bytes: &[u8]) -> Option<u32> {
    plain_digits(bytes, 9).filter(|memory| *memory >= 1 && f64::from(*memory) <= *ranges::MEMORY_GB.end())
}

/// A port written as plain digits, as `str::parse::<u16>` reads it; `None` for any other
/// form (a sign, a leading zero too many, a number beyond 65535).
fn plain_port(bytes: &[u8]) -> Option<u16> {
    plain_digits(bytes, 5).and_then(|port| u16::try_from(port).ok())
}

fn parse_memory(text: &str) -> Result<u32, String> {
    if let Some(memory) = plain_memory(text.as_bytes()) {
        return Ok(memory);
    }
    // pandas writes an integer column as `16.0` once it has held an empty cell.
    match text.parse::<f64>() {
        Ok(memory) if memory > *ranges::MEMORY_GB.end() => Err(format!(
            "expected at most {} GB, found {}",
            crate::error::number(*ranges::MEMORY_GB.end()),
            quoted(text)
        )),
        Ok(memory) if memory >= 1.0 && memory.fract() == 0.0 => Ok(memory as u32),
        _ => Err(format!("expected a whole number of GB, at least 1, found {}", quoted(text))),
    }
}

fn optional_text(text: &str) -> Option<&str> {
    // The original's docs show `null` for "none"; pandas may write `None` or `nan`.
    match text {
        "" | "null" | "None" | "nan" | "NaN" => None,
        other => Some(other),
    }
}

fn header_line() -> String {
    format!("{}\n", COLUMNS.join(","))
}

/// The rows of `bookings` as CSV, exactly as the `csv` crate writes them (a field is quoted
/// only when it holds a comma, a quote or a line break; a quote inside is doubled), written
/// straight into one buffer: `book new` rewrites the whole of `booking.csv` while every
/// other writer waits for the lock, so each row costs no allocation.
fn encode(bookings: &[Booking]) -> Result<Vec<u8>> {
    let mut text = String::with_capacity(bookings.len() * 72);
    for booking in bookings {
        encode_row(&mut text, booking);
    }
    Ok(text.into_bytes())
}

/// Rows as `booking.csv` holds them, without its header (for side files that carry rows).
pub fn encode_rows(text: &mut String, bookings: &[Booking]) {
    for booking in bookings {
        encode_row(text, booking);
    }
}

/// The rows of `bytes` written by [`encode_rows`]; `None` unless every row reads without a
/// problem and is exactly as [`encode_rows`] writes it.
pub fn parse_rows(bytes: &[u8]) -> Option<Vec<Booking>> {
    known::canonical_rows(bytes).map(|(rows, _)| rows)
}

/// Appends one row (its line end included) as [`encode`] writes it.
fn encode_row(text: &mut String, booking: &Booking) {
    use std::fmt::Write as _;
    push_time(text, booking.start);
    text.push(',');
    push_time(text, booking.end);
    text.push(',');
    push_field(text, booking.user_id.as_str());
    text.push(',');
    push_number(text, booking.cpus);
    let _ = write!(text, ",{},", booking.memory);
    // Two ids or more hold ", ", so the list is quoted (as the csv crate would).
    let quoted = booking.gpus.len() > 1;
    if quoted {
        text.push('"');
    }
    push_gpu_list(text, &booking.gpus);
    if quoted {
        text.push('"');
    }
    let _ = write!(text, ",{},", booking.forward_port);
    push_field(text, booking.image.as_deref().unwrap_or(""));
    text.push(',');
    push_field(text, booking.extra_command.as_deref().unwrap_or(""));
    text.push('\n');
}

/// One CSV field, quoted when it must be.
fn push_field(text: &mut String, field: &str) {
    if field.bytes().any(|byte| matches!(byte, b',' | b'"' | b'\n' | b'\r')) {
        text.push('"');
        text.push_str(&field.replace('"', "\"\""));
        text.push('"');
    } else {
        text.push_str(field);
    }
}

/// A CPU count as Rust displays an `f64` (`2`, `3.5`); whole counts without the float
/// formatter, which is most of a row's cost.
fn push_number(text: &mut String, number: f64) {
    use std::fmt::Write as _;
    if number.fract() == 0.0 && number.abs() < 1e15 && !(number == 0.0 && number.is_sign_negative()) {
        let _ = write!(text, "{}", number as i64);
    } else {
        let _ = write!(text, "{number}");
    }
}

/// Replaces an active file with `bookings`, atomically.
pub fn write(lock: &ExclusiveLock, file: ActiveFile, bookings: &[Booking]) -> Result<()> {
    let mut contents = header_line().into_bytes();
    contents.extend(encode(bookings)?);
    atomic_file::write_atomically(lock, &file.path(lock.root()), &contents)
}

/// Appends finished bookings to `used.csv`.
pub fn append_history(lock: &ExclusiveLock, bookings: &[Booking]) -> Result<()> {
    atomic_file::append_durably(lock, &history_path(lock.root()), header_line().as_bytes(), &encode(bookings)?)
}

/// A change to more than one of the schedule files (and `monitor_exec`), made at once: a kill
/// at any moment leaves either the old files or, once the next holder of the lock has looked,
/// the new ones (see [`crate::store::journal`]). A booking moved from one file to another is
/// therefore never in none of them, nor in two.
#[derive(Debug, Default)]
pub struct Change<'a> {
    pub booked: Option<&'a [Booking]>,
    pub running: Option<&'a [Booking]>,
    /// Rows appended to `used.csv`.
    pub history: &'a [Booking],
    /// The new contents of `jobs/monitor_exec` (see [`crate::store::monitor_exec`]).
    pub requests: Option<Vec<u8>>,
}

pub fn commit(lock: &ExclusiveLock, change: Change<'_>) -> Result<()> {
    use crate::store::journal::Step;
    let mut steps = Vec::new();
    if !change.history.is_empty() {
        let (length_before, bytes) = atomic_file::planned_append(
            lock,
            &history_path(lock.root()),
            header_line().as_bytes(),
            &encode(change.history)?,
        )?;
        steps.push(Step::Append { name: "used.csv", length_before, bytes });
    }
    for (file, rows, name) in
        [(ActiveFile::Using, change.running, "using.csv"), (ActiveFile::Booking, change.booked, "booking.csv")]
    {
        if let Some(rows) = rows {
            debug_assert_eq!(file.path(lock.root()).file_name().and_then(|name| name.to_str()), Some(name));
            let mut contents = header_line().into_bytes();
            contents.extend(encode(rows)?);
            steps.push(Step::Replace { name, contents });
        }
    }
    if let Some(contents) = change.requests {
        steps.push(Step::Replace { name: "monitor_exec", contents });
    }
    match steps.as_slice() {
        [] => Ok(()),
        [Step::Append { .. }] => append_history(lock, change.history),
        [Step::Replace { name, contents }] => {
            atomic_file::write_atomically(lock, &lock.root().jobs_dir().join(name), contents)
        }
        _ => atomic_file::change_together(lock, &lock.root().jobs_dir(), &steps),
    }
}

/// The rows at the end of `used.csv` (its last 64 KiB), so the monitor can tell a row it
/// already appended in an interrupted pass without reading a long history.
pub fn recent_history(lock: &ExclusiveLock) -> Result<Vec<Booking>> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 64 * 1024;
    let path = history_path(lock.root());
    let Some(mut file) = state_folder::read(&path)? else {
        return Ok(Vec::new());
    };
    let length = file.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
    let start = length.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start)).with_context(|| format!("cannot read {}", path.display()))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).with_context(|| format!("cannot read {}", path.display()))?;
    // Drop a partial first line when the tail starts mid-file.
    let text = String::from_utf8_lossy(&tail);
    let text = if start > 0 { text.split_once('\n').map_or("", |(_, rest)| rest) } else { &text };
    let positions: [usize; 9] = std::array::from_fn(|index| index);
    let mut state = (Vec::new(), RowScratch::default());
    crate::store::csv_scan::for_each_record(
        text.as_bytes(),
        &mut state,
        |(rows, scratch), unsplit| {
            let (parsed, end) = parse_plain_row(unsplit, scratch)?;
            rows.push(parsed.with(unsplit.line, &scratch.gpus).to_booking());
            Some(end)
        },
        |(rows, scratch), record| {
            if let Ok(fields) = record.fields()
                && fields.get(0) != Some("start")
                && let Ok(parsed) = parse_fields(fields, &positions, 9, scratch)
            {
                rows.push(parsed.with(record.line(), &scratch.gpus).to_booking());
            }
            true
        },
    )
    .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(state.0)
}

/// Creates any missing schedule file with its header, so an admin finds all three.
pub fn ensure_files(lock: &ExclusiveLock) -> Result<()> {
    // Whatever stands at a name, a dangling link included, counts as present: the write that
    // follows refuses anything but a plain file.
    let present = |path: PathBuf| path.symlink_metadata().is_ok();
    for file in [ActiveFile::Booking, ActiveFile::Using] {
        if !present(file.path(lock.root())) {
            write(lock, file, &[])?;
        }
    }
    if !present(history_path(lock.root())) {
        append_history(lock, &[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::csv_scan::Unsplit;
    use proptest::prelude::*;

    const IN_ORDER: ([usize; 9], usize) = ([0, 1, 2, 3, 4, 5, 6, 7, 8], 9);

    /// `row` (one line, its line end included) read the general way: split into fields, then
    /// parsed; and where its line ends.
    fn read_in_general(row: &str) -> (Result<Booking, (String, String)>, usize) {
        let mut found = None;
        crate::store::csv_scan::for_each_record(
            row.as_bytes(),
            &mut found,
            |_, _| None,
            |found, record| {
                let fields = record.fields().expect("UTF-8");
                let mut scratch = RowScratch::default();
                let parsed = parse_fields(fields, &IN_ORDER.0, IN_ORDER.1, &mut scratch);
                *found = Some(parsed.map(|parsed| parsed.with(1, &scratch.gpus).to_booking()));
                false
            },
        )
        .unwrap();
        (found.expect("one record"), row.find(['\n', '\r']).unwrap_or(row.len()))
    }

    /// A row close to what the tools write, each field now and then something else.
    fn any_row() -> impl Strategy<Value = String> {
        let time = prop_oneof![
            4 => (0i64..40_000, 0i64..48).prop_map(|(day, slot)| format_time(
                crate::model::examples::at("2020-01-01 00:00") + chrono::Duration::days(day) + chrono::Duration::minutes(30 * slot)
            )),
            1 => "[0-9 :.-]{0,21}",
        ];
        let user = prop_oneof![4 => "[a-z][a-z0-9_.-]{0,6}", 1 => "[A-Za-z0-9 _.\"-]{0,6}"];
        let cpus = prop_oneof![4 => "[1-9][0-9]?(\\.[0-9]{1,2})?", 1 => "[0-9. e+-]{0,6}"];
        let memory = prop_oneof![4 => "[1-9][0-9]{0,3}", 1 => "[0-9. ]{0,6}"];
        let gpus = prop_oneof![
            2 => "\\[[0-9]{1,2}\\]",
            2 => "\"\\[[0-9]{1,2}, [0-9]{1,2}\\]\"",
            1 => "\"?[\\[\\]0-9 ,\"]{0,9}\"?",
        ];
        let port = prop_oneof![4 => "1[0-9]{4}", 1 => "[0-9+ ]{0,6}"];
        let text =
            prop_oneof![4 => Just(String::new()), 1 => "[a-z:/ ]{1,6}", 1 => "null|None|nan|NaN", 1 => "[ a-z\"]{1,4}"];
        (time.clone(), time, user, cpus, memory, gpus, port, text.clone(), text, "\n|\r\n|\r|,x\n").prop_map(
            |(start, end, user, cpus, memory, gpus, port, image, extra, line_end)| {
                format!("{start},{end},{user},{cpus},{memory},{gpus},{port},{image},{extra}{line_end}")
            },
        )
    }

    proptest::proptest! {
        /// A row the quick way takes has the values the general way reads, and ends where
        /// the general way ends it.
        #[test]
        fn rows_read_the_quick_way_are_those_read_in_general(row in any_row()) {
            let mut scratch = RowScratch::default();
            let quick = parse_plain_row(Unsplit { text: &row, start: 0, line: 1 }, &mut scratch);
            if let Some((parsed, end)) = quick {
                let (general, general_end) = read_in_general(&row);
                proptest::prop_assert_eq!(Ok(parsed.with(1, &scratch.gpus).to_booking()), general, "{:?}", row);
                proptest::prop_assert_eq!(end, general_end, "{:?}", row);
            }
        }

        /// Every row the tools write is taken the quick way.
        #[test]
        fn rows_the_tools_write_are_read_the_quick_way(
            day in 0i64..40_000,
            slots in 1i64..100,
            user in "[a-z][a-z0-9_.-]{0,10}",
            hundredths in 100u32..25_600,
            memory in 1u32..1_024,
            gpus in proptest::collection::btree_set(0u32..64, 0..5),
            port in 10_001u16..11_000,
            image in proptest::option::of("[a-z]{1,8}:[a-z0-9.]{1,6}"),
        ) {
            let start = crate::model::examples::at("2020-01-01 00:00") + chrono::Duration::days(day);
            let booking = Booking {
                start,
                end: start + chrono::Duration::minutes(30 * slots),
                user_id: UserId::parse(&user).unwrap(),
                cpus: f64::from(hundredths) / 100.0,
                memory,
                gpus: gpus.into_iter().collect(),
                forward_port: port,
                image,
                extra_command: None,
            };
            let row = String::from_utf8(encode(std::slice::from_ref(&booking)).unwrap()).unwrap();
            let mut scratch = RowScratch::default();
            let quick = parse_plain_row(Unsplit { text: &row, start: 0, line: 1 }, &mut scratch);
            let (parsed, end) = quick.expect("taken the quick way");
            proptest::prop_assert_eq!(parsed.with(1, &scratch.gpus).to_booking(), booking);
            proptest::prop_assert_eq!(end, row.len() - 1);
        }

        /// The rows are byte for byte what the `csv` crate writes (the original's files were
        /// written that way since the start), whatever the fields hold.
        #[test]
        fn rows_are_written_as_the_csv_crate_writes_them(
            day in 0i64..40_000,
            user in "[a-z][a-z0-9_.-]{0,10}",
            cpus in proptest::prop_oneof![
                (0u32..100_000).prop_map(|hundredths| f64::from(hundredths) / 100.0),
                proptest::num::f64::ANY,
            ],
            memory in proptest::num::u32::ANY,
            gpus in proptest::collection::btree_set(0u32..100_000, 0..5),
            port in proptest::num::u16::ANY,
            image in proptest::option::of("[a-z:,\"\r\n .]{0,8}"),
            extra_command in proptest::option::of(".{0,12}"),
        ) {
            let start = crate::model::examples::at("2020-01-01 00:00") + chrono::Duration::days(day);
            let booking = Booking {
                start,
                end: start + chrono::Duration::minutes(30),
                user_id: UserId::parse(&user).unwrap(),
                cpus,
                memory,
                gpus: gpus.into_iter().collect(),
                forward_port: port,
                image,
                extra_command,
            };
            let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
            writer.write_record([
                format_time(booking.start),
                format_time(booking.end),
                booking.user_id.to_string(),
                booking.cpus.to_string(),
                booking.memory.to_string(),
                crate::model::format_gpu_list(&booking.gpus),
                booking.forward_port.to_string(),
                booking.image.clone().unwrap_or_default(),
                booking.extra_command.clone().unwrap_or_default(),
            ]).unwrap();
            let expected = String::from_utf8(writer.into_inner().unwrap()).unwrap();
            let written = String::from_utf8(encode(std::slice::from_ref(&booking)).unwrap()).unwrap();
            proptest::prop_assert_eq!(written, expected);
        }

        /// A number the quick reader takes is the double `str::parse` gives, to the bit; and
        /// every count of CPUs the tools write is taken.
        #[test]
        fn numbers_read_quickly_are_those_str_parse_reads(
            text in "[0-9.]{0,18}",
            hundredths in 0u64..100_000_000,
        ) {
            if let Some(quick) = plain_decimal(text.as_bytes()) {
                proptest::prop_assert_eq!(Ok(quick.to_bits()), text.parse::<f64>().map(f64::to_bits), "{:?}", text);
            }
            let written = (hundredths as f64 / 100.0).to_string();
            proptest::prop_assert_eq!(plain_decimal(written.as_bytes()).map(f64::to_bits), Some(written.parse::<f64>().unwrap().to_bits()));
        }

        /// A port or memory the quick readers take is the one the general reading gives.
        #[test]
        fn ports_and_memory_read_quickly_are_those_read_in_general(text in "[0-9+ .-]{0,11}") {
            if let Some(port) = plain_port(text.as_bytes()) {
                proptest::prop_assert_eq!(Ok(port), text.parse::<u16>(), "{:?}", text);
            }
            if let Some(memory) = plain_memory(text.as_bytes()) {
                proptest::prop_assert_eq!(Ok(memory), parse_memory(&text), "{:?}", text);
                proptest::prop_assert_eq!(text.parse::<f64>().ok(), Some(f64::from(memory)), "{:?}", text);
            }
        }
    }
}
