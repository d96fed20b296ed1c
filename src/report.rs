//! `enroll report`: usage per user and calendar month from `jobs/used.csv`.
//!
//! The history only grows, so it is read as a stream: each row is folded into one running
//! total per (user, month) and then dropped. Memory grows with users × months, never with rows.
//!
//! - A row with `end == start` is a cancellation (how `book cancel` records a booking that
//!   never started); it counts in the month of its start and adds no hours.
//! - Any other row is a booking: it counts once, in the month its start falls in, and its
//!   hours are split at each month boundary it crosses.
//! - `--from`/`--to` (whole days, both included) clip the hours to that window; a booking or
//!   cancellation is counted when its start lies inside it.
//! - GPU-hours are the number of GPUs × hours, CPU-hours CPUs × hours, memory-GB-hours
//!   memory (GB) × hours. Hours are summed as whole minutes, so totals are exact.
//! - A row that cannot be read stops the report (exit 1, naming file, line and field), as it
//!   stops every other reader; `--skip-bad-rows` skips such rows with a warning instead.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use anyhow::Result;
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::error::{FileProblem, FileProblems};
use crate::lab::Lab;
use crate::model::Booking;
use crate::store::schedule::{self, RowRef};

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(time: NaiveDateTime) -> Month {
        Month { year: time.year(), month: time.month() }
    }

    /// Midnight on the first day of the month.
    pub fn start(self) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN).and_time(chrono::NaiveTime::MIN)
    }

    pub fn next(self) -> Month {
        if self.month == 12 { Month { year: self.year + 1, month: 1 } } else { Month { month: self.month + 1, ..self } }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{:04}-{:02}", self.year, self.month)
    }
}

/// One user's usage in one month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub bookings: u64,
    pub cancellations: u64,
    /// GPUs × minutes.
    pub gpu_minutes: u64,
    /// Hundredths of a CPU × minutes, for the rows whose CPUs are whole hundredths (every
    /// row gpu-booking writes): exact in any order of adding.
    pub cpu_hundredth_minutes: u64,
    /// CPUs × minutes of the other rows (the original took any number).
    pub other_cpu_minutes: f64,
    /// GB × minutes.
    pub memory_gb_minutes: u64,
}

impl Usage {
    pub fn gpu_hours(&self) -> f64 {
        self.gpu_minutes as f64 / 60.0
    }

    pub fn cpu_hours(&self) -> f64 {
        (self.cpu_hundredth_minutes as f64 / 100.0 + self.other_cpu_minutes) / 60.0
    }

    pub fn memory_gb_hours(&self) -> f64 {
        self.memory_gb_minutes as f64 / 60.0
    }
}

/// One line of the report, as `--json` and `--csv` print it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub user: String,
    pub month: String,
    pub bookings: u64,
    pub cancellations: u64,
    pub gpu_hours: f64,
    pub cpu_hours: f64,
    pub memory_gb_hours: f64,
}

/// Running totals, fed one booking at a time.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Inclusive window start (midnight of `--from`).
    from: Option<NaiveDateTime>,
    /// Exclusive window end (midnight after `--to`).
    until: Option<NaiveDateTime>,
    /// Per user, per month. Looked up by the id as it stands in the row, so a row costs no
    /// allocation (the history may hold millions).
    totals: HashMap<Box<str>, Months, BuildHasherDefault<Fnv>>,
}

/// One user's months in order, each with its usage. The history is written in time order, so
/// the month a row needs is nearly always the last one or a new one after it: looked at first,
/// before any search.
#[derive(Debug, Clone, Default)]
struct Months(Vec<(Month, Usage)>);

impl Months {
    fn entry(&mut self, month: Month) -> &mut Usage {
        let index = match self.0.last() {
            Some((last, _)) if *last == month => self.0.len() - 1,
            Some((last, _)) if *last > month => match self.0.binary_search_by_key(&month, |(known, _)| *known) {
                Ok(index) => index,
                Err(index) => {
                    self.0.insert(index, (month, Usage::default()));
                    index
                }
            },
            _ => {
                self.0.push((month, Usage::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }
}

/// FNV-1a for the user ids: short keys the tools wrote, where the default hasher's defence
/// against chosen collisions buys nothing and its cost shows over millions of rows.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Report {
    /// A report over the days `from` to `to`, both included; `None` leaves that side open.
    pub fn new(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Report {
        Report {
            from: from.map(|day| day.and_time(chrono::NaiveTime::MIN)),
            until: to.map(|day| (day + Duration::days(1)).and_time(chrono::NaiveTime::MIN)),
            totals: HashMap::default(),
        }
    }

    pub fn add(&mut self, booking: &Booking) {
        self.add_row(
            booking.user_id.as_str(),
            booking.start,
            booking.end,
            booking.cpus,
            booking.memory,
            booking.gpus.len(),
        );
    }

    /// Adds one row of the history as it was read.
    pub fn add_row_ref(&mut self, row: &RowRef<'_>) {
        self.add_row(row.user_id, row.start, row.end, row.cpus, row.memory, row.gpus.len());
    }

    fn add_row(&mut self, user: &str, start: NaiveDateTime, end: NaiveDateTime, cpus: f64, memory: u32, gpus: usize) {
        let months = match self.totals.get_mut(user) {
            Some(months) => months,
            None => self.totals.entry(user.into()).or_default(),
        };
        let cancelled = end <= start;
        let inside = self.from.is_none_or(|from| start >= from) && self.until.is_none_or(|until| start < until);
        if inside {
            let usage = months.entry(Month::of(start));
            if cancelled {
                usage.cancellations += 1;
                return;
            }
            usage.bookings += 1;
        }
        if cancelled {
            return;
        }
        let start = self.from.map_or(start, |from| start.max(from));
        let end = self.until.map_or(end, |until| end.min(until));
        let scaled = cpus * 100.0;
        let rounded = scaled.round();
        let cpu_hundredths =
            ((rounded - scaled).abs() < 1e-6 && (0.0..1e9).contains(&scaled)).then_some(rounded as u64);
        let mut month = Month::of(start);
        let end_month = Month::of(end);
        let mut piece_start = start;
        while piece_start < end {
            let next_month = month.next();
            // Most bookings lie within one month: the month's end is only worked out when the
            // booking could reach it.
            let piece_end = if month == end_month { end } else { end.min(next_month.start()) };
            let minutes = minutes_between(piece_start, piece_end).max(0) as u64;
            let usage = months.entry(month);
            usage.gpu_minutes += gpus as u64 * minutes;
            match cpu_hundredths {
                Some(hundredths) => usage.cpu_hundredth_minutes += hundredths * minutes,
                None => usage.other_cpu_minutes += cpus * minutes as f64,
            }
            usage.memory_gb_minutes += u64::from(memory) * minutes;
            piece_start = piece_end;
            month = next_month;
        }
    }

    /// Adds the totals of `other` (a report over other rows, for the same days).
    fn absorb(&mut self, other: Report) {
        for (user, months) in other.totals {
            let mine = self.totals.entry(user).or_default();
            for (month, usage) in months.0 {
                let total = mine.entry(month);
                total.bookings += usage.bookings;
                total.cancellations += usage.cancellations;
                total.gpu_minutes += usage.gpu_minutes;
                total.cpu_hundredth_minutes += usage.cpu_hundredth_minutes;
                total.other_cpu_minutes += usage.other_cpu_minutes;
                total.memory_gb_minutes += usage.memory_gb_minutes;
            }
        }
    }

    /// Per user (by id), then per month.
    pub fn lines(&self) -> Vec<Line> {
        let mut users: Vec<(&Box<str>, &Months)> = self.totals.iter().collect();
        users.sort_unstable_by_key(|(user, _)| *user);
        users
            .into_iter()
            .flat_map(|(user, months)| months.0.iter().map(move |(month, usage)| (user, month, usage)))
            .map(|(user, month, usage)| Line {
                user: user.to_string(),
                month: month.to_string(),
                bookings: usage.bookings,
                cancellations: usage.cancellations,
                gpu_hours: round(usage.gpu_hours()),
                cpu_hours: round(usage.cpu_hours()),
                memory_gb_hours: round(usage.memory_gb_hours()),
            })
            .collect()
    }
}

/// Whole minutes from `from` to `to`, as `(to - from).num_minutes()` counts them, without
/// chrono's calendar arithmetic for times on whole seconds (every time the tools write).
fn minutes_between(from: NaiveDateTime, to: NaiveDateTime) -> i64 {
    use chrono::Timelike;
    if from.nanosecond() != 0 || to.nanosecond() != 0 {
        return (to - from).num_minutes();
    }
    let days = if from.date() == to.date() {
        0
    } else {
        i64::from(to.num_days_from_ce()) - i64::from(from.num_days_from_ce())
    };
    // The time of day's own count (the date-time's would work it out from hours and minutes).
    let seconds = i64::from(to.time().num_seconds_from_midnight()) - i64::from(from.time().num_seconds_from_midnight());
    (days * 86_400 + seconds) / 60
}

/// How many problems with the history are shown; the rest are counted.
pub const SHOWN_PROBLEMS: usize = 20;

/// Rows of `used.csv` that could not be read and were skipped (`--skip-bad-rows`).
#[derive(Debug, Default)]
pub struct Skipped {
    /// The first [`SHOWN_PROBLEMS`].
    pub shown: Vec<FileProblem>,
    pub count: usize,
}

/// Adds every row of `used.csv` to `report`. A row (or header) that cannot be read is an
/// error naming file, line and field, with every other bad row found (the first
/// [`SHOWN_PROBLEMS`] named, the rest counted); with `skip_bad_rows` such rows are skipped
/// and returned instead. A missing file is an empty history. Read under a shared lock.
pub fn read_history(lab: &Lab, report: &mut Report, skip_bad_rows: bool) -> Result<Skipped> {
    let reading = lab.read()?;
    let root = reading.root();
    let path = schedule::history_path(root);
    let mut skipped = Skipped::default();
    let (from, until) = (report.from, report.until);
    schedule::fold_rows(
        reading.lock(),
        &path,
        || (Report { from, until, totals: HashMap::default() }, Skipped::default()),
        |(part, skipped), row| match row {
            Ok(row) => part.add_row_ref(&row),
            Err(problem) => {
                // Counted, and the first few kept: a long history with many bad rows must not
                // fill memory.
                skipped.count += 1;
                if skipped.shown.len() < SHOWN_PROBLEMS {
                    skipped.shown.push(problem);
                }
            }
        },
        |(part, part_skipped)| {
            report.absorb(part);
            skipped.count += part_skipped.count;
            let room = SHOWN_PROBLEMS.saturating_sub(skipped.shown.len());
            skipped.shown.extend(part_skipped.shown.into_iter().take(room));
        },
    )?;
    if skipped.count == 0 || skip_bad_rows {
        return Ok(skipped);
    }
    let mut problems = skipped.shown;
    if skipped.count > problems.len() {
        let shown = root.display(&path);
        let more = skipped.count - problems.len();
        problems.push(FileProblem::error(
            shown,
            None,
            "",
            format!("{more} more row(s) cannot be read; nothing was reported (--skip-bad-rows reports without them)"),
        ));
    } else if let Some(last) = problems.last_mut() {
        last.message.push_str("; nothing was reported (--skip-bad-rows reports without the rows that cannot be read)");
    }
    Err(FileProblems(problems).into())
}

/// Two decimals: minutes make thirds of an hour, and 0.33 is what an admin expects to read.
fn round(hours: f64) -> f64 {
    (hours * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples;

    fn booking(user: &str, start: &str, end: &str, cpus: f64, memory: u32, gpus: &[u32]) -> Booking {
        Booking { cpus, memory, ..examples::booking(user, start, end, gpus) }
    }

    #[test]
    fn a_booking_across_a_month_boundary_is_split_there() {
        let mut report = Report::new(None, None);
        // 2 h in January, 3 h in February.
        report.add(&booking("alice", "2024-01-31 22:00", "2024-02-01 03:00", 4.5, 16, &[0, 1]));
        let lines = report.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].month.as_str(), lines[0].bookings, lines[0].gpu_hours), ("2024-01", 1, 4.0));
        assert_eq!((lines[0].cpu_hours, lines[0].memory_gb_hours), (9.0, 32.0));
        assert_eq!((lines[1].month.as_str(), lines[1].bookings, lines[1].gpu_hours), ("2024-02", 0, 6.0));
        assert_eq!((lines[1].cpu_hours, lines[1].memory_gb_hours), (13.5, 48.0));
    }

    #[test]
    fn a_cancellation_counts_and_adds_no_hours() {
        let mut report = Report::new(None, None);
        report.add(&booking("bob", "2024-03-05 10:00", "2024-03-05 10:00", 2.0, 8, &[0]));
        let line = &report.lines()[0];
        assert_eq!((line.bookings, line.cancellations, line.gpu_hours, line.cpu_hours), (0, 1, 0.0, 0.0));
    }

    #[test]
    fn the_window_clips_hours_and_counts_by_start() {
        let from = NaiveDate::from_ymd_opt(2024, 1, 10);
        let to = NaiveDate::from_ymd_opt(2024, 1, 20);
        let mut report = Report::new(from, to);
        // Starts before the window: 6 h inside it, not counted as a booking.
        report.add(&booking("carol", "2024-01-09 18:00", "2024-01-10 06:00", 1.0, 1, &[2]));
        // Ends after the window: 1.5 h inside (until midnight after the 20th).
        report.add(&booking("carol", "2024-01-20 22:30", "2024-01-21 10:00", 1.0, 1, &[]));
        // Entirely outside.
        report.add(&booking("carol", "2024-02-01 00:00", "2024-02-02 00:00", 1.0, 1, &[0]));
        let lines = report.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!((lines[0].bookings, lines[0].gpu_hours, lines[0].cpu_hours), (1, 6.0, 7.5));
    }

    proptest::proptest! {
        /// Minutes between two times are those chrono counts, whole seconds or not, across
        /// days, months and years.
        #[test]
        fn minutes_between_are_those_chrono_counts(
            from in 0i64..4_000_000_000,
            length in -200_000_000i64..200_000_000,
            nanoseconds in proptest::sample::select(vec![0u32, 0, 0, 1, 500_000_000, 999_999_999]),
        ) {
            let from = chrono::DateTime::from_timestamp(from, 0).unwrap().naive_utc();
            let to = from + Duration::seconds(length) + Duration::nanoseconds(i64::from(nanoseconds));
            proptest::prop_assert_eq!(minutes_between(from, to), (to - from).num_minutes());
        }

        /// Rows in any order make the same report (each user's months are kept in order,
        /// whichever comes first).
        #[test]
        fn the_order_of_the_rows_does_not_change_the_report(
            rows in proptest::collection::vec((0usize..3, 0i64..3 * 365 * 48, 0i64..2_000, 100u32..400), 0..40),
            shuffle in proptest::collection::vec(proptest::num::usize::ANY, 40),
        ) {
            let users = ["ann", "bo", "cy"];
            let mut bookings: Vec<Booking> = rows
                .iter()
                .map(|(user, start, length, hundredths)| {
                    let start = examples::at("2024-01-01 00:00") + Duration::minutes(30 * start);
                    Booking {
                        start,
                        end: start + Duration::minutes(*length),
                        cpus: f64::from(*hundredths) / 100.0,
                        ..examples::booking(users[*user], "2024-01-01 00:00", "2024-01-01 00:30", &[0])
                    }
                })
                .collect();
            // In time order, as the history is written: each month a user's last or a new one.
            bookings.sort_by_key(|booking| booking.start);
            let mut shuffled = bookings.clone();
            for (index, swap) in shuffle.iter().enumerate().take(shuffled.len()) {
                let other = swap % shuffled.len();
                shuffled.swap(index, other);
            }
            let report = |bookings: &[Booking]| {
                let mut report = Report::new(None, None);
                bookings.iter().for_each(|booking| report.add(booking));
                report.lines()
            };
            proptest::prop_assert_eq!(report(&shuffled), report(&bookings));
        }
    }

    #[test]
    fn december_rolls_into_the_next_year() {
        let mut report = Report::new(None, None);
        report.add(&booking("dave", "2023-12-31 23:00", "2024-01-01 01:00", 1.0, 2, &[0]));
        let months: Vec<String> = report.lines().into_iter().map(|line| line.month).collect();
        assert_eq!(months, ["2023-12", "2024-01"]);
    }
}
