//! The damage campaign (issue 12): damaged copies of every state file, each run through the
//! real binaries, counting what an admin or a student would see go wrong.
//!
//! The root is `tests/fixtures/campaign`: two registered users with password hashes and an
//! SSH key, bookings to come, one running, a history, a failed login, a pending request.
//! Each case copies it, damages one file one way, and runs `enroll check`, `book list`,
//! `book free`, `monitor --dry-run`, `enroll list` and a scripted `book new`
//! (`--password-stdin`, starting now), with `GPU_BOOKING_NOW` fixed. For every run:
//!
//! - no panic: no "panicked" on stderr, no exit 101, no signal, no hang;
//! - a command that reads the damaged file exits non-zero when the damage certainly breaks
//!   it; where a damage may leave a valid file (a flipped byte, a cut line, an empty list…),
//!   it may exit 0 only when `enroll check` accepts the file too. A byte-order mark or
//!   Windows line ends change nothing: every command exits as on the undamaged root;
//! - a command that fails leaves every file under the root byte for byte as it was;
//! - every error line of a failing command (stdout of `enroll check`, stderr of the others)
//!   names a file and a line number (a folder, link or FIFO in place of the file: the file);
//! - no line of stderr, or of `enroll check`'s report, is longer than 300 characters.
//!
//! Size: `GPU_BOOKING_CAMPAIGN_SIZE` damaged roots, by default one of each kind of damage for
//! each file (about 170; seconds). `GPU_BOOKING_CAMPAIGN_SEED` (a number) moves the places
//! damaged. Full size, with the figures printed (README, "Development"):
//!
//! ```text
//! GPU_BOOKING_CAMPAIGN_SIZE=3000 cargo test --release --test damage_campaign -- --nocapture
//! ```

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::fixtures::copy_fixture;
use support::run::{self, DEAD_DOCKER_HOST, NOW, Run, new_booking_args};
use support::snapshot::snapshot;

const ALICE_PASSWORD: &str = "tulip-alice-7";
const LINE_LIMIT: usize = 300;
const DEFAULT_SEED: u64 = 0x1207_2026;
/// A run still going after this is a hang (a FIFO read without O_NONBLOCK never returns).
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// A "very long value".
const LONG_VALUE_BYTES: usize = 100_000;

// ---- the campaign ------------------------------------------------------------------------

fn environment_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

fn combinations() -> Vec<(&'static Target, Kind)> {
    TARGETS
        .iter()
        .flat_map(|target| KINDS.iter().filter(|kind| kind.applies_to(target.format)).map(move |kind| (target, *kind)))
        .collect()
}

/// The undamaged root: every command succeeds, so a refusal in the campaign is the damage's.
fn pristine_codes() -> BTreeMap<Reader, Option<i32>> {
    let root = copy_fixture("campaign");
    let mut codes = BTreeMap::new();
    for reader in EVERY_READER.iter().copied() {
        let run = reader.run(root.path());
        assert_eq!(run.code, Some(0), "{reader:?} on the undamaged campaign root:\n{run}");
        codes.insert(reader, run.code);
    }
    codes
}

#[test]
fn every_command_succeeds_on_the_undamaged_root() {
    pristine_codes();
}

#[test]
fn damaged_files_are_refused_named_and_left_alone() {
    let seed = environment_number("GPU_BOOKING_CAMPAIGN_SEED").unwrap_or(DEFAULT_SEED);
    let combinations = combinations();
    let size = environment_number("GPU_BOOKING_CAMPAIGN_SIZE").map_or(combinations.len(), |size| size as usize);
    let pristine = pristine_codes();
    let tally = Mutex::new(Tally::default());
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |count| count.get()).min(8);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= size {
                        break;
                    }
                    let (target, kind) = combinations[index % combinations.len()];
                    run_case(&Case { index, target, kind }, seed, &pristine, &tally);
                }
            });
        }
    });
    let tally = tally.into_inner().unwrap();
    report(&tally, seed);
    let mut faults: BTreeMap<&Fault, usize> = BTreeMap::new();
    for finding in &tally.findings {
        *faults.entry(&finding.fault).or_default() += 1;
    }
    let shown: Vec<String> = tally
        .findings
        .iter()
        .take(12)
        .map(|finding| format!("{:?} by {:?} — {}\n{}", finding.fault, finding.reader, finding.case, finding.detail))
        .collect();
    assert!(
        tally.findings.is_empty(),
        "{} finding(s) ({faults:?}); the first:\n\n{}",
        tally.findings.len(),
        shown.join("\n\n")
    );
    assert!(tally.cases > 0 && tally.refusals > 0, "the campaign damaged nothing");
}

// ---- the commands ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reader {
    EnrollCheck,
    BookList,
    BookFree,
    MonitorDryRun,
    EnrollList,
    /// Last: it writes when it succeeds.
    BookNew,
}

const EVERY_READER: &[Reader] = &[
    Reader::EnrollCheck,
    Reader::BookList,
    Reader::BookFree,
    Reader::MonitorDryRun,
    Reader::EnrollList,
    Reader::BookNew,
];

impl Reader {
    fn run(self, root: &Path) -> Run {
        let (name, args): (&str, Vec<&str>) = match self {
            Reader::EnrollCheck => ("enroll", vec!["check"]),
            Reader::BookList => ("book", vec!["list"]),
            Reader::BookFree => {
                ("book", vec!["free", "--cpus", "1", "--memory", "1", "--gpus", "1", "--duration", "1-day"])
            }
            Reader::MonitorDryRun => ("monitor", vec!["--dry-run"]),
            Reader::EnrollList => ("enroll", vec!["list"]),
            Reader::BookNew => ("book", new_booking_args("1", "1", "1", "now", "2-hour")),
        };
        let mut command = run::command(name)
            .root(root)
            .now(NOW)
            .args(args)
            // `enroll list` and `monitor` look for containers only where none can be.
            .env("DOCKER_HOST", DEAD_DOCKER_HOST)
            .limit(TIME_LIMIT);
        if self == Reader::BookNew {
            command = command.login("alice", ALICE_PASSWORD).args(["--yes"]);
        }
        command.output()
    }
}

// ---- the files ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    /// The schedule files, and `login_failures.csv` (`numeric` says which columns hold numbers).
    Csv,
    /// `monitor_exec`: requests, not settings; only replaced by something that is not a file.
    Requests,
}

struct Target {
    path: &'static str,
    format: Format,
    /// The commands that read the file and so must refuse it when it is broken.
    readers: &'static [Reader],
    /// In a folder the booking account may write: read only as a plain file with one name,
    /// never through a link. The admin's own files under `cfg/` may be links.
    link_refused: bool,
}

const TARGETS: &[Target] = &[
    Target { path: "cfg/host_deploy.yaml", format: Format::Yaml, readers: EVERY_READER, link_refused: false },
    Target { path: "cfg/capability_config.yaml", format: Format::Yaml, readers: EVERY_READER, link_refused: false },
    Target { path: "cfg/users_config.yaml", format: Format::Yaml, readers: EVERY_READER, link_refused: true },
    Target {
        path: "cfg/users_config.gpu-booking.yaml",
        format: Format::Yaml,
        readers: EVERY_READER,
        link_refused: true,
    },
    Target { path: "cfg/containers.yaml", format: Format::Yaml, readers: EVERY_READER, link_refused: false },
    Target { path: "cfg/login.yaml", format: Format::Yaml, readers: EVERY_READER, link_refused: false },
    Target {
        path: "cfg/templates/backup.yaml",
        format: Format::Yaml,
        readers: &[Reader::EnrollCheck],
        link_refused: false,
    },
    Target { path: "jobs/booking.csv", format: Format::Csv, readers: EVERY_READER, link_refused: true },
    Target { path: "jobs/using.csv", format: Format::Csv, readers: EVERY_READER, link_refused: true },
    Target { path: "jobs/used.csv", format: Format::Csv, readers: &[Reader::EnrollCheck], link_refused: true },
    Target {
        path: "jobs/login_failures.csv",
        format: Format::Csv,
        readers: &[Reader::EnrollCheck, Reader::BookNew],
        link_refused: true,
    },
    Target { path: "jobs/monitor_exec", format: Format::Requests, readers: &[Reader::BookNew], link_refused: true },
];

// ---- the damages -------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    FlipByte,
    TruncateMidLine,
    InvalidUtf8,
    ByteOrderMark,
    WindowsLineEnds,
    HugeNumber,
    NegativeNumber,
    WrongType,
    DuplicateKey,
    EmptyList,
    LongValue,
    DeepNesting,
    AliasBomb,
    Folder,
    Symlink,
    Fifo,
}

const KINDS: [Kind; 16] = [
    Kind::FlipByte,
    Kind::TruncateMidLine,
    Kind::InvalidUtf8,
    Kind::ByteOrderMark,
    Kind::WindowsLineEnds,
    Kind::HugeNumber,
    Kind::NegativeNumber,
    Kind::WrongType,
    Kind::DuplicateKey,
    Kind::EmptyList,
    Kind::LongValue,
    Kind::DeepNesting,
    Kind::AliasBomb,
    Kind::Folder,
    Kind::Symlink,
    Kind::Fifo,
];

impl Kind {
    fn applies_to(self, format: Format) -> bool {
        match format {
            Format::Yaml => true,
            Format::Csv => !matches!(self, Kind::DeepNesting | Kind::AliasBomb),
            Format::Requests => matches!(self, Kind::Folder | Kind::Symlink | Kind::Fifo),
        }
    }

    /// Not the file's text but the file itself: the problem is the whole file, with no line.
    fn whole_file(self) -> bool {
        matches!(self, Kind::Folder | Kind::Symlink | Kind::Fifo)
    }
}

/// What a damaged file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Certainly invalid: every reader must refuse it.
    Broken,
    /// Certainly as valid as before: every command must do what it did on the undamaged root.
    Valid,
    /// May or may not be valid: a reader may accept it only when `enroll check` does.
    Unknown,
}

/// What `enroll check` reports as an error but the other commands accept on purpose: a
/// relation between rows or between files, not a value that cannot be read. Refusing them
/// would stop every student's `book` until the admin mends them, and would stop the tools
/// that mend them (`enroll remove --force` of a user taken out of `allow_userIDs` by hand);
/// and files carried over from the original system may hold GPU overlaps it allowed. The
/// monitor logs what it cannot start.
const CROSS_FILE: [&str; 5] = [
    "is not in allow_userIDs",
    "a user's bookings never overlap",
    "for an overlapping time",
    "does not exist: the host has",
    "the monitor will not mount it",
];

/// What a failed login writes, and only that.
const LOGIN_RECORDS: [&str; 2] = ["jobs/login_failures.csv", "jobs/auth.log"];

/// xorshift64*: small, seeded, and enough to spread damages over a file.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, case: usize) -> Rng {
        let mut rng = Rng(seed ^ (case as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() { None } else { Some(&items[self.below(items.len())]) }
    }
}

/// A damage ready to be done to a file: its new bytes, or something that is not a file.
enum Damaged {
    Bytes(Vec<u8>),
    Folder,
    Symlink,
    Fifo,
}

struct Damage {
    damaged: Damaged,
    expect: Expect,
    /// What was done, for the report of a failing case.
    what: String,
}

/// One YAML line that holds a value: `key: value` or `- value`.
struct Slot {
    line: usize,
    /// Where the value starts in the line.
    start: usize,
    /// Where it ends (before a comment).
    end: usize,
    key: String,
}

fn yaml_lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n').map(str::to_string).collect()
}

fn strip_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(position) if !line[..position].contains('"') => &line[..position],
        _ => line.trim_end_matches('\n'),
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn slots(lines: &[String]) -> Vec<Slot> {
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let content = strip_comment(line).trim_end();
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = content.len() - trimmed.len();
        if let Some(item) = trimmed.strip_prefix("- ") {
            if !item.starts_with('-') && !item.trim().is_empty() {
                let start = indent + 2 + (item.len() - item.trim_start().len());
                found.push(Slot { line: index, start, end: content.len(), key: "-".into() });
            }
        } else if let Some(colon) = trimmed.find(": ") {
            let value = &trimmed[colon + 2..];
            if !value.trim().is_empty() {
                let start = indent + colon + 2 + (value.len() - value.trim_start().len());
                found.push(Slot { line: index, start, end: content.len(), key: trimmed[..colon].to_string() });
            }
        }
    }
    found
}

fn replace_slot(lines: &[String], slot: &Slot, value: &str) -> Vec<u8> {
    let mut lines = lines.to_vec();
    let line = &lines[slot.line];
    lines[slot.line] = format!("{}{value}{}", &line[..slot.start], &line[slot.end..]);
    lines.concat().into_bytes()
}

fn is_number(value: &str) -> bool {
    value.trim().parse::<f64>().is_ok()
}

/// A nested flow sequence of aliases: nine to the power nine strings once expanded.
fn alias_bomb() -> String {
    let mut text = String::from("[&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(", ");
        text.push_str(&format!(", &{} [{refs}]", pair[1]));
    }
    text.push(']');
    text
}

fn damage_yaml(kind: Kind, text: &str, rng: &mut Rng) -> Option<Damage> {
    let lines = yaml_lines(text);
    let all_slots = slots(&lines);
    let numeric: Vec<&Slot> =
        all_slots.iter().filter(|slot| is_number(&lines[slot.line][slot.start..slot.end])).collect();
    let (damaged, expect, what) = match kind {
        Kind::HugeNumber => {
            let slot = rng.pick(&numeric)?;
            let value = *rng.pick(&["1e308", "99999999999", "1.7976931348623157e308", "4294967296"])?;
            (
                replace_slot(&lines, slot, value),
                Expect::Broken,
                format!("line {}: {} = {value}", slot.line + 1, slot.key),
            )
        }
        Kind::NegativeNumber => {
            let slot = rng.pick(&numeric)?;
            let value = *rng.pick(&["-1", "-99999999999", "-0.5"])?;
            (
                replace_slot(&lines, slot, value),
                Expect::Broken,
                format!("line {}: {} = {value}", slot.line + 1, slot.key),
            )
        }
        Kind::WrongType => {
            let slot = rng.pick(&all_slots)?;
            let value = *rng.pick(&["{a: 1}", "{x: [1, 2]}"])?;
            (
                replace_slot(&lines, slot, value),
                Expect::Broken,
                format!("line {}: {} = {value}", slot.line + 1, slot.key),
            )
        }
        Kind::LongValue => {
            let slot = rng.pick(&all_slots)?;
            let numeric_slot = is_number(&lines[slot.line][slot.start..slot.end]);
            let value = "a".repeat(LONG_VALUE_BYTES);
            let expect = if numeric_slot { Expect::Broken } else { Expect::Unknown };
            (
                replace_slot(&lines, slot, &value),
                expect,
                format!("line {}: {} = 100 KB of 'a'", slot.line + 1, slot.key),
            )
        }
        Kind::DeepNesting => {
            let slot = rng.pick(&all_slots)?;
            let depth = 10_000;
            let value = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            (
                replace_slot(&lines, slot, &value),
                Expect::Broken,
                format!("line {}: {} nested {depth} deep", slot.line + 1, slot.key),
            )
        }
        Kind::AliasBomb => {
            let slot = rng.pick(&all_slots)?;
            (
                replace_slot(&lines, slot, &alias_bomb()),
                Expect::Broken,
                format!("line {}: {} = alias bomb", slot.line + 1, slot.key),
            )
        }
        Kind::DuplicateKey => {
            // A key line with its block (the lines indented below it), written twice.
            let keys: Vec<usize> = (0..lines.len())
                .filter(|index| {
                    let content = strip_comment(&lines[*index]).trim();
                    !content.is_empty()
                        && !content.starts_with('#')
                        && !content.starts_with('-')
                        && content.contains(':')
                })
                .collect();
            let first = *rng.pick(&keys)?;
            let indent = indent_of(&lines[first]);
            let mut last = first;
            for (index, line) in lines.iter().enumerate().skip(first + 1) {
                let content = strip_comment(line);
                if content.trim().is_empty() || content.trim_start().starts_with('#') {
                    continue;
                }
                let deeper =
                    indent_of(line) > indent || (content.trim_start().starts_with('-') && indent_of(line) == indent);
                if !deeper {
                    break;
                }
                last = index;
            }
            let mut damaged = lines[..=last].to_vec();
            if !damaged[last].ends_with('\n') {
                damaged[last].push('\n');
            }
            damaged.extend_from_slice(&lines[first..=last]);
            damaged.extend_from_slice(&lines[last + 1..]);
            let key = strip_comment(&lines[first]).trim().split(':').next().unwrap_or("").to_string();
            (
                damaged.concat().into_bytes(),
                Expect::Broken,
                format!("lines {}-{}: {key} written twice", first + 1, last + 1),
            )
        }
        Kind::EmptyList => {
            // `key:` followed by `- item` lines becomes `key: []`.
            let lists: Vec<(usize, usize)> = (0..lines.len())
                .filter_map(|index| {
                    let content = strip_comment(&lines[index]).trim_end();
                    let key = content.trim_start().strip_suffix(':')?;
                    if key.starts_with('-') || key.contains(": ") {
                        return None;
                    }
                    let mut last = index;
                    for (next, line) in lines.iter().enumerate().skip(index + 1) {
                        let item = strip_comment(line).trim_start();
                        if item.is_empty() || item.starts_with('#') {
                            continue;
                        }
                        if item.starts_with('-') || indent_of(line) > indent_of(content) + 2 {
                            last = next;
                        } else {
                            break;
                        }
                    }
                    (last > index).then_some((index, last))
                })
                .collect();
            let (first, last) = *rng.pick(&lists)?;
            let key = strip_comment(&lines[first]).trim().trim_end_matches(':').to_string();
            let mut damaged = lines[..first].to_vec();
            damaged.push(format!("{}{key}: []\n", " ".repeat(indent_of(&lines[first]))));
            damaged.extend_from_slice(&lines[last + 1..]);
            // Only the list of images may not be empty; others may (nobody allowed, no keys).
            let expect = if key == "images" { Expect::Broken } else { Expect::Unknown };
            (damaged.concat().into_bytes(), expect, format!("lines {}-{}: {key} emptied", first + 1, last + 1))
        }
        _ => return damage_bytes(kind, text.as_bytes(), rng),
    };
    Some(Damage { damaged: Damaged::Bytes(damaged), expect, what })
}

/// The damages that do not depend on the format.
fn damage_bytes(kind: Kind, bytes: &[u8], rng: &mut Rng) -> Option<Damage> {
    let (damaged, expect, what) = match kind {
        Kind::FlipByte => {
            if bytes.is_empty() {
                return None;
            }
            let position = rng.below(bytes.len());
            let mask = 1 + rng.below(255) as u8;
            let mut damaged = bytes.to_vec();
            damaged[position] ^= mask;
            (damaged, Expect::Unknown, format!("byte {position} xor {mask:#04x}"))
        }
        Kind::TruncateMidLine => {
            // Cut inside a line: after at least one character of it, before its end.
            let cuts: Vec<usize> =
                (1..bytes.len()).filter(|at| bytes[*at - 1] != b'\n' && bytes[*at] != b'\n').collect();
            let at = *rng.pick(&cuts)?;
            (bytes[..at].to_vec(), Expect::Unknown, format!("cut at byte {at} of {}", bytes.len()))
        }
        Kind::InvalidUtf8 => {
            let sequence: &[u8] =
                rng.pick(&[&[0xff][..], &[0xc3, 0x28], &[0xed, 0xa0, 0x80], &[0xf8, 0x88, 0x80, 0x80]])?;
            // At a character boundary, so the bytes around stay as they were.
            let boundaries: Vec<usize> =
                (0..=bytes.len()).filter(|at| *at == bytes.len() || bytes[*at] & 0xc0 != 0x80).collect();
            let at = *rng.pick(&boundaries)?;
            let mut damaged = bytes[..at].to_vec();
            damaged.extend_from_slice(sequence);
            damaged.extend_from_slice(&bytes[at..]);
            (damaged, Expect::Broken, format!("{sequence:02x?} inserted at byte {at}"))
        }
        Kind::ByteOrderMark => {
            let mut damaged = b"\xef\xbb\xbf".to_vec();
            damaged.extend_from_slice(bytes);
            (damaged, Expect::Valid, "UTF-8 byte-order mark in front".to_string())
        }
        Kind::WindowsLineEnds => {
            let text = String::from_utf8_lossy(bytes).replace('\n', "\r\n");
            (text.into_bytes(), Expect::Valid, "every line ends with CR LF".to_string())
        }
        Kind::Folder => {
            return Some(Damage {
                damaged: Damaged::Folder,
                expect: Expect::Broken,
                what: "a folder in its place".into(),
            });
        }
        Kind::Fifo => {
            return Some(Damage { damaged: Damaged::Fifo, expect: Expect::Broken, what: "a FIFO in its place".into() });
        }
        Kind::Symlink => {
            return Some(Damage {
                damaged: Damaged::Symlink,
                expect: Expect::Unknown,
                what: "a link to a copy elsewhere".into(),
            });
        }
        _ => return None,
    };
    Some(Damage { damaged: Damaged::Bytes(damaged), expect, what })
}

/// The columns of a schedule file that hold numbers, and those that must parse at all.
const SCHEDULE_NUMBERS: [&str; 4] = ["cpus", "memory", "gpus", "forward_port"];
const SCHEDULE_STRICT: [&str; 7] = ["start", "end", "user_id", "cpus", "memory", "gpus", "forward_port"];

fn damage_csv(kind: Kind, text: &str, rng: &mut Rng) -> Option<Damage> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|record| record.expect("the fixture is valid CSV").iter().map(str::to_string).collect())
        .collect();
    let header = records.first()?.clone();
    let schedule = header.len() == 9;
    let encode = |records: &[Vec<String>]| {
        let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
        for record in records {
            writer.write_record(record).expect("encode a row");
        }
        writer.into_inner().expect("encode the file")
    };
    let column = |name: &str| header.iter().position(|column| column == name);
    let cell = |columns: &[&str], rng: &mut Rng| -> Option<(usize, usize)> {
        let choices: Vec<usize> = columns.iter().filter_map(|name| column(name)).collect();
        let row = 1 + rng.below(records.len().checked_sub(1).filter(|rows| *rows > 0)?);
        Some((row, *rng.pick(&choices)?))
    };
    let set = |row: usize, column: usize, value: &str| {
        let mut damaged = records.clone();
        damaged[row][column] = value.to_string();
        encode(&damaged)
    };
    let (damaged, expect, what) = match kind {
        Kind::HugeNumber | Kind::NegativeNumber if schedule => {
            let (row, column) = cell(&SCHEDULE_NUMBERS, rng)?;
            let number = if kind == Kind::HugeNumber {
                *rng.pick(&["1e308", "99999999999", "4294967296", "65537"])?
            } else {
                *rng.pick(&["-1", "-99999999999", "-0.5"])?
            };
            let value = if header[column] == "gpus" { format!("[{number}]") } else { number.to_string() };
            (set(row, column, &value), Expect::Broken, format!("row {}: {} = {value}", row + 1, header[column]))
        }
        Kind::WrongType => {
            let strict: &[&str] = if schedule { &SCHEDULE_STRICT[..] } else { &["time"] };
            let strict: Vec<&str> = strict.iter().copied().filter(|name| *name != "user_id").collect();
            let (row, column) = cell(&strict, rng)?;
            let value = *rng.pick(&["abc", "[x]", "{}"])?;
            (set(row, column, value), Expect::Broken, format!("row {}: {} = {value}", row + 1, header[column]))
        }
        Kind::LongValue => {
            let names: Vec<&str> = header.iter().map(String::as_str).collect();
            let (row, column) = cell(&names, rng)?;
            let strict = SCHEDULE_STRICT.contains(&header[column].as_str())
                || ["time", "user_id"].contains(&header[column].as_str());
            let expect = if strict { Expect::Broken } else { Expect::Unknown };
            (
                set(row, column, &"a".repeat(LONG_VALUE_BYTES)),
                expect,
                format!("row {}: {} = 100 KB of 'a'", row + 1, header[column]),
            )
        }
        Kind::EmptyList if schedule => {
            let (row, column) = cell(&["gpus"], rng)?;
            (set(row, column, "[]"), Expect::Unknown, format!("row {}: gpus = []", row + 1))
        }
        Kind::DuplicateKey => {
            // A column written twice: its name added to the header, its cells to every row.
            let column = rng.below(header.len());
            let mut damaged = records.clone();
            for record in &mut damaged {
                let copy = record.get(column).cloned().unwrap_or_default();
                record.push(copy);
            }
            (encode(&damaged), Expect::Broken, format!("column {} written twice", header[column]))
        }
        Kind::HugeNumber | Kind::NegativeNumber | Kind::EmptyList | Kind::DeepNesting | Kind::AliasBomb => return None,
        _ => return damage_bytes(kind, text.as_bytes(), rng),
    };
    Some(Damage { damaged: Damaged::Bytes(damaged), expect, what })
}

fn damage(target: &Target, kind: Kind, original: &[u8], rng: &mut Rng) -> Option<Damage> {
    let mut damage = match target.format {
        Format::Yaml => damage_yaml(kind, std::str::from_utf8(original).expect("UTF-8 fixture"), rng),
        Format::Csv => damage_csv(kind, std::str::from_utf8(original).expect("UTF-8 fixture"), rng),
        Format::Requests => damage_bytes(kind, original, rng),
    }?;
    if matches!(damage.damaged, Damaged::Symlink) && target.link_refused {
        damage.expect = Expect::Broken;
    }
    Some(damage)
}

// ---- one case ----------------------------------------------------------------------------

struct Case {
    index: usize,
    target: &'static Target,
    kind: Kind,
}

/// Something a run did that it must not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Panic,
    Hang,
    AcceptedBroken,
    AcceptedWhatCheckRefuses,
    ChangedByValidDamage,
    ChangedFiles,
    NoFileOrLine,
    LongLine,
}

struct Finding {
    fault: Fault,
    case: String,
    reader: Reader,
    detail: String,
}

#[derive(Default)]
struct Tally {
    cases: usize,
    not_applicable: usize,
    runs: usize,
    refusals: usize,
    longest_line: usize,
    by_kind: BTreeMap<Kind, (usize, usize)>,
    findings: Vec<Finding>,
}

fn run_case(case: &Case, seed: u64, pristine: &BTreeMap<Reader, Option<i32>>, tally: &Mutex<Tally>) {
    let root = copy_fixture("campaign");
    let elsewhere = tempfile::tempdir().expect("a folder outside the root");
    let path = root.path().join(case.target.path);
    let original = fs::read(&path).expect("the fixture file");
    let mut rng = Rng::new(seed, case.index);
    let Some(damage) = damage(case.target, case.kind, &original, &mut rng) else {
        tally.lock().unwrap().not_applicable += 1;
        return;
    };
    match &damage.damaged {
        Damaged::Bytes(bytes) => fs::write(&path, bytes).expect("write the damaged file"),
        Damaged::Folder => {
            fs::remove_file(&path).expect("remove the file");
            fs::create_dir(&path).expect("make a folder in its place");
            fs::write(path.join("inside"), &original).expect("a file in the folder");
        }
        Damaged::Symlink => {
            let copy = elsewhere.path().join("copy");
            fs::write(&copy, &original).expect("the copy elsewhere");
            fs::remove_file(&path).expect("remove the file");
            std::os::unix::fs::symlink(&copy, &path).expect("link to the copy");
        }
        Damaged::Fifo => {
            fs::remove_file(&path).expect("remove the file");
            rustix::fs::mknodat(rustix::fs::CWD, &path, rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o644), 0)
                .expect("make a FIFO");
        }
    }
    let label = format!("case {} (seed {seed:#x}): {} {:?}: {}", case.index, case.target.path, case.kind, damage.what);
    let mut findings = Vec::new();
    let mut find = |fault: Fault, reader: Reader, detail: String| {
        findings.push(Finding { fault, case: label.clone(), reader, detail });
    };
    let mut check_accepts = None;
    let mut runs = 0;
    let mut refusals = 0;
    let mut longest = 0;
    for reader in EVERY_READER.iter().copied() {
        let before = snapshot(root.path());
        let run = reader.run(root.path());
        runs += 1;
        let excerpt = || excerpt(&run);
        if run.all_output().contains("panicked") || run.code == Some(101) {
            find(Fault::Panic, reader, excerpt());
        }
        if run.code.is_none() {
            find(Fault::Hang, reader, excerpt());
            continue;
        }
        let code = run.code.unwrap_or_default();
        if reader == Reader::EnrollCheck {
            // Exit 1 with only problems between rows or files is what the readers allow.
            let errors = error_lines(reader, &run);
            check_accepts =
                Some(code == 0 || errors.iter().all(|line| CROSS_FILE.iter().any(|said| line.contains(said))));
        }
        let reads = case.target.readers.contains(&reader);
        if code != 0 {
            refusals += 1;
        }
        match damage.expect {
            Expect::Broken if reads && code == 0 => find(Fault::AcceptedBroken, reader, excerpt()),
            Expect::Valid if Some(run.code) != pristine.get(&reader).copied() => {
                find(Fault::ChangedByValidDamage, reader, excerpt());
            }
            Expect::Unknown if reads && code == 0 && check_accepts == Some(false) => {
                find(Fault::AcceptedWhatCheckRefuses, reader, excerpt());
            }
            _ => {}
        }
        if code != 0 {
            let after = snapshot(root.path());
            let changed: std::collections::BTreeSet<&String> = before
                .keys()
                .chain(after.keys())
                .filter(|key| before.get(*key) != after.get(*key))
                // A failed login (exit 4: the damage changed the password) is recorded: that
                // record is what locks out a guesser.
                .filter(|key| !(code == 4 && LOGIN_RECORDS.contains(&key.as_str())))
                .collect();
            if !changed.is_empty() {
                find(Fault::ChangedFiles, reader, format!("changed: {changed:?}\n{}", excerpt()));
            }
        }
        let mut shown: Vec<&str> = run.stderr.lines().collect();
        if reader == Reader::EnrollCheck {
            shown.extend(run.stdout.lines());
        }
        for line in &shown {
            let length = line.chars().count();
            longest = longest.max(length);
            if length > LINE_LIMIT {
                find(
                    Fault::LongLine,
                    reader,
                    format!("{length} characters: {}…", line.chars().take(120).collect::<String>()),
                );
            }
        }
        // File errors exit 1; a refusal (3) or a failed login (4) is about the request.
        if code == 1 {
            for line in error_lines(reader, &run) {
                if !names_file_and_line(line, case.target.path, case.kind.whole_file()) {
                    find(Fault::NoFileOrLine, reader, format!("{line}\n{}", excerpt()));
                }
            }
        }
    }
    let mut tally = tally.lock().unwrap();
    tally.cases += 1;
    tally.runs += runs;
    tally.refusals += refusals;
    tally.longest_line = tally.longest_line.max(longest);
    let entry = tally.by_kind.entry(case.kind).or_default();
    entry.0 += 1;
    entry.1 += runs;
    tally.findings.extend(findings);
}

fn excerpt(run: &Run) -> String {
    let cut = |text: &str| {
        text.lines().take(6).map(|line| line.chars().take(200).collect::<String>()).collect::<Vec<_>>().join("\n")
    };
    format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", run.code, cut(&run.stdout), cut(&run.stderr))
}

/// The lines of a failing run that state a problem: `enroll check`'s errors on stdout, the
/// `error:` lines of the others and the problems listed under them (not `caused by` lines).
fn error_lines(reader: Reader, run: &Run) -> Vec<&str> {
    if reader == Reader::EnrollCheck {
        return run.stdout.lines().filter(|line| !line.contains(": warning") && !line.starts_with("ok:")).collect();
    }
    let mut lines = Vec::new();
    let mut in_error = false;
    for line in run.stderr.lines() {
        if let Some(rest) = line.strip_prefix("error: ") {
            in_error = true;
            lines.push(rest);
        } else if in_error && !line.starts_with(' ') && !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// A `FILE:LINE` somewhere in the line (`cfg/x.yaml:5: max.gpus: …`, or `… (the path is set
/// by capability_config_yaml in cfg/host_deploy.yaml:7)`), FILE a YAML or CSV file; for a
/// damage of the file itself (a folder in its place), the damaged file named will do.
fn names_file_and_line(line: &str, damaged: &str, whole_file: bool) -> bool {
    let with_line = line.split_whitespace().any(|word| {
        let word = word.trim_start_matches('(').trim_end_matches([')', ',', ';', ':']);
        word.rsplit_once(':').is_some_and(|(path, number)| {
            [".yaml", ".yml", ".csv"].iter().any(|extension| path.ends_with(extension))
                && !number.is_empty()
                && number.chars().all(|digit| digit.is_ascii_digit())
        })
    });
    with_line || (whole_file && line.contains(damaged))
}

fn report(tally: &Tally, seed: u64) {
    let mut text = format!(
        "damage campaign (seed {seed:#x}): {} damaged roots ({} not applicable), {} runs, {} refused, \
         longest message line {} characters, {} finding(s)\n",
        tally.cases,
        tally.not_applicable,
        tally.runs,
        tally.refusals,
        tally.longest_line,
        tally.findings.len()
    );
    for (kind, (cases, runs)) in &tally.by_kind {
        text.push_str(&format!("  {kind:<16?} {cases:>6} roots {runs:>7} runs\n"));
    }
    // One line per finding (the first 200), to see the pattern before the details.
    for finding in tally.findings.iter().take(200) {
        let first = finding.detail.lines().next().unwrap_or_default().chars().take(150).collect::<String>();
        text.push_str(&format!("  {:?} by {:?}: {} | {first}\n", finding.fault, finding.reader, finding.case));
    }
    eprintln!("{text}");
}

impl fmt::Display for Reader {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, formatter)
    }
}
