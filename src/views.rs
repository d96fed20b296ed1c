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

    let mut users: Vec<&UserId> = Vec::new();
    for (_, booking) in &active {
        if booking.overlaps(origin, origin + Duration::days(days)) && !users.contains(&&booking.user_id) {
            users.push(&booking.user_id);
        }
    }
    users.sort();
    let mark_of = |user: &UserId| -> char {
        let index = users.iter().position(|known| *known == user).unwrap_or(0);
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

    for gpu in 0..state.config.capability.max.gpus {
        let mut cells = String::new();
        for column in 0..columns {
            let from = origin + column_length * column as i32;
            let to = from + column_length;
            let holders: Vec<&UserId> = active
                .iter()
                .filter(|(_, booking)| booking.gpus.contains(&gpu) && booking.overlaps(from, to))
                .map(|(_, booking)| &booking.user_id)
                .collect();
            let cell = match holders.as_slice() {
                [] => ".".to_string(),
                [first, rest @ ..] if rest.iter().all(|other| other == first) => {
                    let mark = mark_of(first).to_string();
                    if options.color && Some(*first) == me {
                        console::style(mark).bold().reverse().to_string()
                    } else {
                        mark
                    }
                }
                _ => "+".to_string(),
            };
            cells.push_str(&cell);
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

/// The highest summed CPUs and memory of the bookings at any moment in `[from, to)`.
fn peak_usage(active: &[(BookingState, &Booking)], from: NaiveDateTime, to: NaiveDateTime) -> (f64, f64) {
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
