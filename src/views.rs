//! What `book list` shows: the schedule as a table, as JSON, and as a per-GPU timeline that
//! fits an 80-column terminal. Pure functions from the state to text.

use chrono::{Datelike, Duration, NaiveDateTime, Timelike};
use serde::Serialize;

use crate::booking::State;
use crate::model::{Booking, BookingState, UserId, format_gpu_list, serialize_minutes};
use crate::rules::floor_to_slot;

/// One booking as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct BookingView {
    pub user_id: String,
    #[serde(serialize_with = "serialize_minutes")]
    pub start: NaiveDateTime,
    #[serde(serialize_with = "serialize_minutes")]
    pub end: NaiveDateTime,
    pub cpus: f64,
    pub memory: u32,
    pub gpus: Vec<u32>,
    pub forward_port: u16,
    pub image: Option<String>,
    pub extra_command: Option<String>,
    pub state: BookingState,
    pub mine: bool,
}

impl BookingView {
    pub fn new(booking: &Booking, state: BookingState, me: Option<&UserId>) -> Self {
        BookingView {
            user_id: booking.user_id.to_string(),
            start: booking.start,
            end: booking.end,
            cpus: booking.cpus,
            memory: booking.memory,
            gpus: booking.gpus.clone(),
            forward_port: booking.forward_port,
            image: booking.image.clone(),
            // Others' extra commands often hold secrets (a notebook token): only the owner's.
            extra_command: booking.extra_command.clone().filter(|_| me == Some(&booking.user_id)),
            state,
            mine: me == Some(&booking.user_id),
        }
    }
}

/// Active bookings (running and booked), sorted by start.
pub fn active_views(state: &State, me: Option<&UserId>, only_mine: bool) -> Vec<BookingView> {
    let mut views: Vec<BookingView> = state
        .running
        .iter()
        .map(|booking| BookingView::new(booking, BookingState::Running, me))
        .chain(state.booked.iter().map(|booking| BookingView::new(booking, BookingState::Booked, me)))
        .filter(|view| !only_mine || view.mine)
        .collect();
    views.sort_by(|left, right| left.start.cmp(&right.start).then_with(|| left.user_id.cmp(&right.user_id)));
    views
}

/// A plain table; `*` marks the logged-in user's rows.
pub fn table(views: &[BookingView]) -> String {
    if views.is_empty() {
        return "No active bookings.\n".to_string();
    }
    let header = ["", "USER", "START", "END", "CPUS", "MEM", "GPUS", "PORT", "STATE"];
    let rows: Vec<[String; 9]> = views
        .iter()
        .map(|view| {
            [
                if view.mine { "*".into() } else { String::new() },
                view.user_id.clone(),
                view.start.format("%a %m-%d %H:%M").to_string(),
                view.end.format("%a %m-%d %H:%M").to_string(),
                view.cpus.to_string(),
                format!("{}G", view.memory),
                format_gpu_list(&view.gpus),
                view.forward_port.to_string(),
                view.state.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let line: Vec<String> = cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        text.push_str(line.join(" ").trim_end());
        text.push('\n');
    };
    push_row(header.to_vec());
    for row in &rows {
        push_row(row.iter().map(String::as_str).collect());
    }
    text
}

/// Options for the timeline.
#[derive(Debug, Clone)]
pub struct TimelineOptions {
    pub days: u32,
    /// Total width available, in columns.
    pub width: usize,
    /// Wrap the logged-in user's marks in terminal emphasis.
    pub color: bool,
}

const LABEL_WIDTH: usize = 7;
const MARKS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A per-GPU timeline from today 00:00 for `days` days: a column per hour (or per 2, 3, 4, 6,
/// 8, 12 or 24 hours, whatever fits), a letter per user, `+` where two users share a column,
/// the logged-in user's marks in capitals (and bold on a terminal), then the CPU and memory
/// headroom of each day and a legend.
pub fn timeline(state: &State, now: NaiveDateTime, me: Option<&UserId>, options: &TimelineOptions) -> String {
    let days = options.days.clamp(1, 14) as i64;
    let columns_available = options.width.saturating_sub(LABEL_WIDTH).max(24);
    let hours_per_column = [1i64, 2, 3, 4, 6, 8, 12, 24]
        .into_iter()
        .find(|hours| (days * 24 / hours) as usize <= columns_available)
        .unwrap_or(24);
    let columns = (days * 24 / hours_per_column) as usize;
    let origin = now.date().and_hms_opt(0, 0, 0).unwrap_or(now);
    let column_length = Duration::hours(hours_per_column);
    let active: Vec<(BookingState, &Booking)> = state
        .running
        .iter()
        .map(|booking| (BookingState::Running, booking))
        .chain(state.booked.iter().map(|booking| (BookingState::Booked, booking)))
        .collect();

    let window_end = origin + Duration::days(days);
    // Sorted once, so a user's mark is a binary search away (a long schedule has hundreds).
    let mut users: Vec<&UserId> = active
        .iter()
        .filter(|(_, booking)| booking.overlaps(origin, window_end))
        .map(|(_, booking)| &booking.user_id)
        .collect();
    users.sort();
    users.dedup();
    let mark_of = |user: &UserId| -> char {
        let index = users.binary_search(&user).unwrap_or(0);
        let mark = MARKS[index % MARKS.len()] as char;
        if Some(user) == me { mark.to_ascii_uppercase() } else { mark }
    };

    let mut text = String::new();
    // Day labels, each at its day's first column.
    let mut day_line = vec![' '; columns];
    let mut hour_line = vec![' '; columns];
    for day in 0..days {
        let column = (day * 24 / hours_per_column) as usize;
        let date = origin + Duration::days(day);
        let label = date.format("%a %d").to_string();
        let room = (24 / hours_per_column) as usize;
        for (offset, character) in label.chars().take(room.max(1)).enumerate() {
            if column + offset < columns {
                day_line[column + offset] = character;
            }
        }
        if hours_per_column <= 2 {
            for hour in (0..24).step_by(6) {
                let column = ((day * 24 + hour) / hours_per_column) as usize;
                for (offset, character) in format!("{hour:02}").chars().enumerate() {
                    if column + offset < columns && (hour != 0 || hours_per_column <= 3) {
                        hour_line[column + offset] = character;
                    }
                }
            }
        }
    }
    text.push_str(&format!("{:<LABEL_WIDTH$}{}\n", "", day_line.iter().collect::<String>().trim_end()));
    if hour_line.iter().any(|character| *character != ' ') {
        text.push_str(&format!("{:<LABEL_WIDTH$}{}\n", "hour", hour_line.iter().collect::<String>().trim_end()));
    }
    let now_column = ((now - origin).num_minutes() / (hours_per_column * 60)) as usize;
    if now_column < columns {
        text.push_str(&format!("{:<LABEL_WIDTH$}{}v now\n", "", " ".repeat(now_column)));
    }

    let gpu_count = state.config.capability.max.gpus;
    let bookings: Vec<&Booking> = active.iter().map(|(_, booking)| *booking).collect();
    let grid = Grid { origin, column_length, columns };
    let holders = grid.holders(&bookings, gpu_count, |booking| users.binary_search(&&booking.user_id).unwrap_or(0));
    for (gpu, row) in holders.chunks(columns.max(1)).take(gpu_count as usize).enumerate() {
        let mut cells = String::new();
        for holder in row {
            match *holder {
                Holders::Nobody => cells.push('.'),
                Holders::One(index) => {
                    let user = users[index];
                    let mark = mark_of(user);
                    if options.color && Some(user) == me {
                        cells.push_str(&console::style(mark.to_string()).bold().reverse().to_string());
                    } else {
                        cells.push(mark);
                    }
                }
                Holders::Several => cells.push('+'),
            }
        }
        text.push_str(&format!("{:<LABEL_WIDTH$}{}\n", format!("GPU {gpu}"), cells));
    }
    if state.config.capability.max.gpus == 0 {
        text.push_str("(this host has no GPUs)\n");
    }

    text.push_str("\nHeadroom (the least free at any moment of the day, from now on):\n");
    let host = state.host();
    for day in 0..days {
        let day_start = (origin + Duration::days(day)).max(floor_to_slot(now));
        let day_end = origin + Duration::days(day + 1);
        if day_start >= day_end {
            continue;
        }
        let (cpus, memory) = peak_usage(&active, day_start, day_end);
        text.push_str(&format!(
            "  {}  CPUs {:>5} of {} free   memory {:>4} of {} GB free\n",
            (origin + Duration::days(day)).format("%a %d"),
            trim_number(host.cpus - cpus),
            trim_number(host.cpus),
            trim_number(host.memory - memory),
            trim_number(host.memory)
        ));
    }

    if !users.is_empty() {
        let legend: Vec<String> = users
            .iter()
            .map(|user| {
                if Some(*user) == me {
                    format!("{} = {user} (you)", mark_of(user))
                } else {
                    format!("{} = {user}", mark_of(user))
                }
            })
            .collect();
        text.push_str("\nLegend: ");
        let mut line_length = 8;
        for (index, entry) in legend.iter().enumerate() {
            let piece = if index == 0 { entry.clone() } else { format!(", {entry}") };
            if line_length + piece.len() > options.width.max(40) {
                text.push_str(",\n        ");
                line_length = 8;
                text.push_str(entry);
                line_length += entry.len();
            } else {
                line_length += piece.len();
                text.push_str(&piece);
            }
        }
        text.push_str("; . = free, + = shared column\n");
    }
    let step = if hours_per_column == 1 { "1 hour".to_string() } else { format!("{hours_per_column} hours") };
    text.push_str(&format!("One column = {step}.\n"));
    text
}

/// Who holds a cell of the timeline (one GPU, one column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holders {
    Nobody,
    /// Bookings of one user only (their index among the timeline's users).
    One(usize),
    /// Bookings of two users or more.
    Several,
}

/// The timeline's columns: `columns` of `column_length` each, from `origin`.
#[derive(Debug, Clone, Copy)]
struct Grid {
    origin: NaiveDateTime,
    column_length: Duration,
    columns: usize,
}

impl Grid {
    /// Who holds each GPU in each column (GPU by GPU, a row of `columns` each): every booking
    /// marks the columns it overlaps on each of its GPUs, so the work grows with the bookings
    /// and the cells they cover, not with bookings × cells.
    fn holders(&self, bookings: &[&Booking], gpu_count: u32, user_index: impl Fn(&Booking) -> usize) -> Vec<Holders> {
        let columns = self.columns;
        let mut cells = vec![Holders::Nobody; gpu_count as usize * columns];
        for booking in bookings {
            let covered = self.columns_overlapping(booking.start, booking.end);
            if covered.is_empty() {
                continue;
            }
            let user = user_index(booking);
            for gpu in booking.gpus.iter().filter(|gpu| **gpu < gpu_count) {
                let row = *gpu as usize * columns;
                for cell in &mut cells[row + covered.start..row + covered.end] {
                    *cell = match *cell {
                        Holders::Nobody => Holders::One(user),
                        Holders::One(holder) if holder == user => Holders::One(user),
                        _ => Holders::Several,
                    };
                }
            }
        }
        cells
    }

    /// The columns `[from, to)` overlaps (as [`Booking::overlaps`] decides): column `c` spans
    /// `origin + c × length` to `origin + (c + 1) × length`, so it overlaps when
    /// `from < origin + (c + 1) × length` and `origin + c × length < to`, that is from
    /// ⌊(from − origin) / length⌋ up to, not including, ⌈(to − origin) / length⌉.
    fn columns_overlapping(&self, from: NaiveDateTime, to: NaiveDateTime) -> std::ops::Range<usize> {
        let length = self.column_length.num_nanoseconds().unwrap_or(i64::MAX).max(1);
        // Nanoseconds from the origin; a time centuries away is as good as far beyond the grid.
        let offset = |time: NaiveDateTime| {
            (time - self.origin).num_nanoseconds().unwrap_or(if time < self.origin {
                i64::MIN / 2
            } else {
                i64::MAX / 2
            })
        };
        let clamp = |column: i64| column.clamp(0, self.columns as i64) as usize;
        let first = clamp(offset(from).div_euclid(length));
        let to = offset(to);
        let last = clamp(to.div_euclid(length) + i64::from(to.rem_euclid(length) != 0));
        first..last.max(first)
    }
}

/// The highest summed CPUs and memory of the bookings at any moment in `[from, to)`.
///
/// The moments are `from` and every start inside; at each, the bookings under way are summed
/// in the order of `active` (CPUs are fractions: another order could round differently).
/// Only the bookings that overlap `[from, to)` can be under way, so they are picked out first,
/// and each moment is summed once (active bookings start on the 30-minute grid: a day has at
/// most 48 moments however many bookings start in it).
fn peak_usage(active: &[(BookingState, &Booking)], from: NaiveDateTime, to: NaiveDateTime) -> (f64, f64) {
    let overlapping: Vec<&Booking> =
        active.iter().map(|(_, booking)| *booking).filter(|booking| booking.overlaps(from, to)).collect();
    let mut moments: Vec<NaiveDateTime> = vec![from];
    moments.extend(active.iter().map(|(_, booking)| booking.start).filter(|start| *start > from && *start < to));
    moments.sort_unstable();
    moments.dedup();
    moments
        .into_iter()
        .map(|moment| {
            overlapping
                .iter()
                .filter(|booking| booking.start <= moment && moment < booking.end)
                .fold((0.0, 0.0), |(cpus, memory), booking| (cpus + booking.cpus, memory + f64::from(booking.memory)))
        })
        .fold((0.0, 0.0), |(cpus, memory), (c, m)| (f64::max(cpus, c), f64::max(memory, m)))
}

fn trim_number(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 { format!("{}", rounded as i64) } else { format!("{rounded}") }
}

/// `1 CPU`, `2 CPUs`, `0.5 CPUs`: a count of CPUs for messages.
pub fn cpus_text(cpus: f64) -> String {
    if cpus == 1.0 { "1 CPU".to_string() } else { format!("{cpus} CPUs") }
}

/// `no GPU`, `1 GPU`, `2 GPUs`: how many GPUs a request asks for.
pub fn gpu_count_text(gpus: u32) -> String {
    match gpus {
        0 => "no GPU".to_string(),
        1 => "1 GPU".to_string(),
        count => format!("{count} GPUs"),
    }
}

/// `no GPU`, `GPU 3`, `GPUs 0, 1`: which GPUs a booking holds.
pub fn gpu_ids_text(gpus: &[u32]) -> String {
    let ids: Vec<String> = gpus.iter().map(u32::to_string).collect();
    match ids.len() {
        0 => "no GPU".to_string(),
        1 => format!("GPU {}", ids[0]),
        _ => format!("GPUs {}", ids.join(", ")),
    }
}

/// The day name and time, for messages (`Tue 24 Nov 09:30`).
pub fn friendly(time: NaiveDateTime) -> String {
    let _ = (time.weekday(), time.hour());
    time.format("%a %d %b %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples;

    /// A booking from the minute offsets `start` and `end` (either may come first) after
    /// 2026-11-20 00:00, with whole and fractional CPUs.
    fn booking(user: usize, start: i64, end: i64, gpus: &[u32], cpus_hundredths: u32) -> Booking {
        let base = examples::at("2026-11-20 00:00");
        Booking {
            start: base + Duration::minutes(start),
            end: base + Duration::minutes(end),
            cpus: f64::from(cpus_hundredths) / 100.0,
            memory: cpus_hundredths % 7 + 1,
            ..examples::booking(&format!("user{user}"), "2026-11-20 00:00", "2026-11-20 00:30", gpus)
        }
    }

    fn any_bookings() -> impl proptest::strategy::Strategy<Value = Vec<Booking>> {
        use proptest::prelude::*;
        let one =
            (0usize..4, 0i64..20 * 24 * 60, -60i64..3 * 24 * 60, proptest::collection::vec(0u32..7, 0..3), 100u32..500)
                .prop_map(|(user, start, length, mut gpus, cpus)| {
                    gpus.sort_unstable();
                    gpus.dedup();
                    booking(user, start, start + length, &gpus, cpus)
                });
        proptest::collection::vec(one, 0..25)
    }

    /// The timeline's cells as first written: for each GPU and column, every booking looked at.
    fn holders_one_by_one(grid: &Grid, bookings: &[&Booking], gpu_count: u32, users: &[&UserId]) -> Vec<Holders> {
        let mut cells = Vec::new();
        for gpu in 0..gpu_count {
            for column in 0..grid.columns {
                let from = grid.origin + grid.column_length * column as i32;
                let to = from + grid.column_length;
                let holders: Vec<&UserId> = bookings
                    .iter()
                    .filter(|booking| booking.gpus.contains(&gpu) && booking.overlaps(from, to))
                    .map(|booking| &booking.user_id)
                    .collect();
                cells.push(match holders.as_slice() {
                    [] => Holders::Nobody,
                    [first, rest @ ..] if rest.iter().all(|other| other == first) => {
                        Holders::One(users.iter().position(|user| user == first).unwrap_or(0))
                    }
                    _ => Holders::Several,
                });
            }
        }
        cells
    }

    /// [`peak_usage`] as first written: every booking summed at every start.
    fn peak_usage_one_by_one(
        active: &[(BookingState, &Booking)],
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> (f64, f64) {
        let mut moments: Vec<NaiveDateTime> = vec![from];
        for (_, booking) in active {
            if booking.start > from && booking.start < to {
                moments.push(booking.start);
            }
        }
        moments
            .into_iter()
            .map(|moment| {
                active
                    .iter()
                    .filter(|(_, booking)| booking.start <= moment && moment < booking.end)
                    .fold((0.0, 0.0), |(cpus, memory), (_, booking)| {
                        (cpus + booking.cpus, memory + f64::from(booking.memory))
                    })
            })
            .fold((0.0, 0.0), |(cpus, memory), (c, m)| (f64::max(cpus, c), f64::max(memory, m)))
    }

    proptest::proptest! {
        /// Marking each booking's columns gives the cells that looking at every booking for
        /// every cell gives, at every column width, for bookings on and off the grid, on GPUs
        /// the host has and has not, and ones whose end comes before their start.
        #[test]
        fn timeline_cells_are_those_of_every_booking_looked_at_for_every_cell(
            bookings in any_bookings(),
            origin_minutes in 0i64..6 * 24 * 60,
            hours in proptest::sample::select(vec![1i64, 2, 3, 4, 6, 8, 12, 24]),
            days in 1i64..15,
            gpu_count in 0u32..6,
        ) {
            let origin = examples::at("2026-11-20 00:00") + Duration::minutes(origin_minutes);
            let grid = Grid { origin, column_length: Duration::hours(hours), columns: (days * 24 / hours) as usize };
            let bookings: Vec<&Booking> = bookings.iter().collect();
            let mut users: Vec<&UserId> = bookings.iter().map(|booking| &booking.user_id).collect();
            users.sort();
            users.dedup();
            let fast = grid.holders(&bookings, gpu_count, |booking| users.binary_search(&&booking.user_id).unwrap_or(0));
            proptest::prop_assert_eq!(fast, holders_one_by_one(&grid, &bookings, gpu_count, &users));
        }

        /// The day's peak is the one summing every booking at every start gives, to the bit.
        #[test]
        fn peak_usage_is_that_of_every_booking_summed_at_every_start(
            bookings in any_bookings(),
            from_minutes in 0i64..20 * 24 * 60,
            length in 1i64..2 * 24 * 60,
        ) {
            let from = examples::at("2026-11-20 00:00") + Duration::minutes(from_minutes);
            let to = from + Duration::minutes(length);
            let active: Vec<(BookingState, &Booking)> =
                bookings.iter().map(|booking| (BookingState::Booked, booking)).collect();
            let (cpus, memory) = peak_usage(&active, from, to);
            let (expected_cpus, expected_memory) = peak_usage_one_by_one(&active, from, to);
            proptest::prop_assert_eq!((cpus.to_bits(), memory.to_bits()), (expected_cpus.to_bits(), expected_memory.to_bits()));
        }
    }

    #[test]
    fn resource_words_read_naturally() {
        assert_eq!(cpus_text(1.0), "1 CPU");
        assert_eq!(cpus_text(2.0), "2 CPUs");
        assert_eq!(cpus_text(0.5), "0.5 CPUs");
        assert_eq!(gpu_count_text(0), "no GPU");
        assert_eq!(gpu_count_text(1), "1 GPU");
        assert_eq!(gpu_count_text(4), "4 GPUs");
        assert_eq!(gpu_ids_text(&[]), "no GPU");
        assert_eq!(gpu_ids_text(&[3]), "GPU 3");
        assert_eq!(gpu_ids_text(&[0, 1]), "GPUs 0, 1");
    }
}
