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

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::config::UserId;
use crate::schedule::Booking;

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
    /// CPUs × minutes (CPUs may be fractional).
    pub cpu_minutes: f64,
    /// GB × minutes.
    pub memory_gb_minutes: u64,
}

impl Usage {
    pub fn gpu_hours(&self) -> f64 {
        self.gpu_minutes as f64 / 60.0
    }

    pub fn cpu_hours(&self) -> f64 {
        self.cpu_minutes / 60.0
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
    totals: BTreeMap<(UserId, Month), Usage>,
}

impl Report {
    /// A report over the days `from` to `to`, both included; `None` leaves that side open.
    pub fn new(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Report {
        Report {
            from: from.map(|day| day.and_time(chrono::NaiveTime::MIN)),
            until: to.map(|day| (day + Duration::days(1)).and_time(chrono::NaiveTime::MIN)),
            totals: BTreeMap::new(),
        }
    }

    fn inside(&self, time: NaiveDateTime) -> bool {
        self.from.is_none_or(|from| time >= from) && self.until.is_none_or(|until| time < until)
    }

    pub fn add(&mut self, booking: &Booking) {
        if self.inside(booking.start) {
            let usage = self.totals.entry((booking.user_id.clone(), Month::of(booking.start))).or_default();
            if booking.end <= booking.start {
                usage.cancellations += 1;
                return;
            }
            usage.bookings += 1;
        }
        if booking.end <= booking.start {
            return;
        }
        let start = self.from.map_or(booking.start, |from| booking.start.max(from));
        let end = self.until.map_or(booking.end, |until| booking.end.min(until));
        let mut month = Month::of(start);
        let mut piece_start = start;
        while piece_start < end {
            let piece_end = end.min(month.next().start());
            let minutes = (piece_end - piece_start).num_minutes().max(0) as u64;
            let usage = self.totals.entry((booking.user_id.clone(), month)).or_default();
            usage.gpu_minutes += booking.gpus.len() as u64 * minutes;
            usage.cpu_minutes += booking.cpus * minutes as f64;
            usage.memory_gb_minutes += u64::from(booking.memory) * minutes;
            piece_start = piece_end;
            month = month.next();
        }
    }

    /// Per user (by id), then per month.
    pub fn lines(&self) -> Vec<Line> {
        self.totals
            .iter()
            .map(|((user, month), usage)| Line {
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

/// Two decimals: minutes make thirds of an hour, and 0.33 is what an admin expects to read.
fn round(hours: f64) -> f64 {
    (hours * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn booking(user: &str, start: &str, end: &str, cpus: f64, memory: u32, gpus: &[u32]) -> Booking {
        Booking {
            start: time(start),
            end: time(end),
            user_id: UserId::parse(user).unwrap(),
            cpus,
            memory,
            gpus: gpus.to_vec(),
            forward_port: 10001,
            image: None,
            extra_command: None,
        }
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

    #[test]
    fn december_rolls_into_the_next_year() {
        let mut report = Report::new(None, None);
        report.add(&booking("dave", "2023-12-31 23:00", "2024-01-01 01:00", 1.0, 2, &[0]));
        let months: Vec<String> = report.lines().into_iter().map(|line| line.month).collect();
        assert_eq!(months, ["2023-12", "2024-01"]);
    }
}
