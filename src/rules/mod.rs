//! The booking rules, as pure functions over plain data: time input and the slot grid,
//! per-user limits, capacity per slot, GPU choice, and the earliest window that fits.
//! Nothing here reads a file or the clock, so each rule can be tested on its own.

pub mod capacity;
pub mod conflicts;
pub mod settings;
pub mod time_input;

use chrono::{Duration, NaiveDateTime, Timelike};

/// Bookings start and end on :00 or :30.
pub const SLOT_MINUTES: i64 = 30;

pub fn slot() -> Duration {
    Duration::minutes(SLOT_MINUTES)
}

/// The start of the slot that holds `time` (`now` means this).
pub fn floor_to_slot(time: NaiveDateTime) -> NaiveDateTime {
    let minute = time.minute() - time.minute() % SLOT_MINUTES as u32;
    time.with_minute(minute)
        .and_then(|time| time.with_second(0))
        .and_then(|time| time.with_nanosecond(0))
        .unwrap_or(time)
}

/// The next slot boundary strictly after `time`.
pub fn next_slot_boundary(time: NaiveDateTime) -> NaiveDateTime {
    floor_to_slot(time) + slot()
}

pub fn is_on_grid(time: NaiveDateTime) -> bool {
    floor_to_slot(time) == time
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples::at;

    #[test]
    fn slots_are_half_hours() {
        assert_eq!(floor_to_slot(at("2026-11-23 09:47:12")), at("2026-11-23 09:30:00"));
        assert_eq!(floor_to_slot(at("2026-11-23 09:00:00")), at("2026-11-23 09:00:00"));
        assert_eq!(next_slot_boundary(at("2026-11-23 09:00:00")), at("2026-11-23 09:30:00"));
        assert_eq!(next_slot_boundary(at("2026-11-23 23:59:00")), at("2026-11-24 00:00:00"));
        assert!(!is_on_grid(at("2026-11-23 09:15:00")));
    }
}
