//! What a student may type for a start or an end: `now`, `N-day` (1–14), `N-week` (1–2),
//! `N-hour`, combinations (`1-week 2-day`), or a date `YYYY MM DD hh mm` (`mm` 00 or 30;
//! `YYYY-MM-DD hh:mm` works too). A relative start counts from the current slot; a relative
//! end counts from the start.

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};

use crate::model::format_minutes;

use super::{floor_to_slot, is_on_grid};

/// How far ahead a booking may start, and how long it may last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    pub start_within_days: i64,
    pub length_within_days: i64,
}

impl Default for Horizon {
    fn default() -> Self {
        Horizon { start_within_days: 14, length_within_days: 14 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    Now,
    After(Duration),
    At(NaiveDateTime),
}

fn parse_spec(text: &str) -> Result<Spec, String> {
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() {
        return Err("nothing entered; type e.g. now, 2-day, 1-week 2-day or 2026 11 24 09 30".into());
    }
    if text == "now" {
        return Ok(Spec::Now);
    }
    if let Some(time) = parse_absolute(&text)? {
        return Ok(Spec::At(time));
    }
    let mut total = Duration::zero();
    for word in text.split_whitespace() {
        let (number, unit) = word.split_once('-').ok_or_else(|| {
            format!("{word:?} is not understood; type e.g. now, 2-day, 1-week 2-day or 2026 11 24 09 30")
        })?;
        let count: i64 = number.parse().map_err(|_| format!("{word:?}: {number:?} is not a whole number"))?;
        let (unit_length, range) = match unit {
            "day" | "days" => (Duration::days(1), 1..=14),
            "week" | "weeks" => (Duration::weeks(1), 1..=2),
            "hour" | "hours" => (Duration::hours(1), 1..=336),
            _ => {
                return Err(format!("{word:?}: unknown unit {unit:?}; use day, week or hour"));
            }
        };
        if !range.contains(&count) {
            return Err(format!("{word:?}: {unit} must be from {} to {}", range.start(), range.end()));
        }
        total += unit_length * count as i32;
    }
    Ok(Spec::After(total))
}

/// `YYYY MM DD hh mm` or `YYYY-MM-DD hh:mm`; `Ok(None)` when the text is not shaped like a date.
fn parse_absolute(text: &str) -> Result<Option<NaiveDateTime>, String> {
    let numbers: Vec<&str> = text.split([' ', '-', ':']).filter(|part| !part.is_empty()).collect();
    let looks_like_date = numbers.len() == 5
        && numbers.iter().all(|part| part.chars().all(|c| c.is_ascii_digit()))
        && numbers[0].len() == 4;
    if !looks_like_date {
        return Ok(None);
    }
    let value = |index: usize| numbers[index].parse::<u32>().unwrap_or(u32::MAX);
    let date = NaiveDate::from_ymd_opt(value(0) as i32, value(1), value(2))
        .ok_or_else(|| format!("{text:?}: there is no such date"))?;
    let time = NaiveTime::from_hms_opt(value(3), value(4), 0)
        .ok_or_else(|| format!("{text:?}: there is no such time of day"))?;
    let moment = date.and_time(time);
    if !is_on_grid(moment) {
        return Err(format!("{text:?}: minutes must be 00 or 30"));
    }
    Ok(Some(moment))
}

/// The start a student asked for, checked against the horizon. `now` is the current slot.
pub fn parse_start(text: &str, now: NaiveDateTime, horizon: Horizon) -> Result<NaiveDateTime, String> {
    let current_slot = floor_to_slot(now);
    let start = match parse_spec(text)? {
        Spec::Now => current_slot,
        Spec::After(length) => current_slot + length,
        Spec::At(time) => time,
    };
    if start < current_slot {
        return Err(format!("{} is in the past", format_minutes(start)));
    }
    let latest = current_slot + Duration::days(horizon.start_within_days);
    if start > latest {
        return Err(format!(
            "{} is more than {} days ahead; the latest start is {}",
            format_minutes(start),
            horizon.start_within_days,
            format_minutes(latest)
        ));
    }
    Ok(start)
}

/// The start of a booking a student already holds (for `cancel --start`, `extend --start`):
/// relative forms count from the current slot like a new start, but a date may be in the
/// past, since a running booking started before now.
pub fn parse_existing_start(text: &str, now: NaiveDateTime) -> Result<NaiveDateTime, String> {
    let current_slot = floor_to_slot(now);
    Ok(match parse_spec(text)? {
        Spec::Now => current_slot,
        Spec::After(length) => current_slot + length,
        Spec::At(time) => time,
    })
}

/// The end a student asked for: relative forms count from `start`.
pub fn parse_end(text: &str, start: NaiveDateTime, horizon: Horizon) -> Result<NaiveDateTime, String> {
    let end = resolve_end(text, start)?;
    check_end(start, end, horizon)?;
    Ok(end)
}

/// The moment an end typed as `text` means: a length (`2-hour`) counts from `base`, a time is
/// itself. Not checked against anything: `book extend` counts from a booking's current end
/// but checks the new end against its start (an earlier end shortens the booking).
pub fn resolve_end(text: &str, base: NaiveDateTime) -> Result<NaiveDateTime, String> {
    match parse_spec(text)? {
        Spec::Now => Err("an end cannot be `now`; type e.g. 2-day or 2026 11 24 18 00".into()),
        Spec::After(length) => Ok(base + length),
        Spec::At(time) => Ok(time),
    }
}

/// A booking length typed as `N-day`, `N-hour`, `1-week 2-day` (for `book free`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match parse_spec(text)? {
        Spec::After(length) if length >= super::slot() => Ok(length),
        _ => Err(format!("{text:?} is not a length; type e.g. 4-hour, 2-day or 1-week 2-day")),
    }
}

pub fn check_end(start: NaiveDateTime, end: NaiveDateTime, horizon: Horizon) -> Result<(), String> {
    if end <= start {
        return Err(format!("the end {} is not after the start {}", format_minutes(end), format_minutes(start)));
    }
    if !is_on_grid(end) {
        return Err(format!("the end {} is not on :00 or :30", format_minutes(end)));
    }
    let latest = start + Duration::days(horizon.length_within_days);
    if end > latest {
        return Err(format!(
            "a booking lasts at most {} days; the latest end for this start is {}",
            horizon.length_within_days,
            format_minutes(latest)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples::at;

    const NOW: &str = "2026-11-23 10:47";

    #[test]
    fn starts() {
        let horizon = Horizon::default();
        let now = at(NOW);
        assert_eq!(parse_start("now", now, horizon), Ok(at("2026-11-23 10:30")));
        assert_eq!(parse_start("NOW ", now, horizon), Ok(at("2026-11-23 10:30")));
        assert_eq!(parse_start("2-day", now, horizon), Ok(at("2026-11-25 10:30")));
        assert_eq!(parse_start("1-week 2-day", now, horizon), Ok(at("2026-12-02 10:30")));
        assert_eq!(parse_start("2026 11 24 09 30", now, horizon), Ok(at("2026-11-24 09:30")));
        assert_eq!(parse_start("2026-11-24 09:00", now, horizon), Ok(at("2026-11-24 09:00")));
        assert!(parse_start("2026 11 24 09 15", now, horizon).unwrap_err().contains("00 or 30"));
        assert!(parse_start("2026 11 23 09 30", now, horizon).unwrap_err().contains("past"));
        assert!(parse_start("2026 12 08 11 00", now, horizon).unwrap_err().contains("14 days"));
        assert!(parse_start("15-day", now, horizon).is_err());
        assert!(parse_start("3-week", now, horizon).is_err());
        assert!(parse_start("2026 02 30 09 30", now, horizon).unwrap_err().contains("no such date"));
        assert!(parse_start("tomorrow", now, horizon).is_err());
        assert!(parse_start("", now, horizon).is_err());
    }

    #[test]
    fn starts_of_existing_bookings_count_from_now_and_may_be_past() {
        let now = at(NOW);
        assert_eq!(parse_existing_start("2-day", now), Ok(at("2026-11-25 10:30")));
        assert_eq!(parse_existing_start("now", now), Ok(at("2026-11-23 10:30")));
        assert_eq!(parse_existing_start("2026 11 20 09 30", now), Ok(at("2026-11-20 09:30")));
        assert!(parse_existing_start("yesterday", now).is_err());
    }

    #[test]
    fn ends() {
        let horizon = Horizon::default();
        let start = at("2026-11-24 09:30");
        assert_eq!(parse_end("1-day", start, horizon), Ok(at("2026-11-25 09:30")));
        assert_eq!(parse_end("2-week", start, horizon), Ok(at("2026-12-08 09:30")));
        assert_eq!(parse_end("3-hour", start, horizon), Ok(at("2026-11-24 12:30")));
        assert_eq!(parse_end("2026 11 24 18 00", start, horizon), Ok(at("2026-11-24 18:00")));
        assert!(parse_end("now", start, horizon).is_err());
        assert!(parse_end("2026 11 24 09 30", start, horizon).unwrap_err().contains("not after"));
        assert!(parse_end("2-week 1-day", start, horizon).unwrap_err().contains("at most 14 days"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("4-hour"), Ok(Duration::hours(4)));
        assert!(parse_duration("now").is_err());
        assert!(parse_duration("2026 11 24 09 30").is_err());
    }
}
