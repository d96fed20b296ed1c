//! What `book` does to the schedule: book, cancel, extend, restart. Each operation takes the
//! [`ExclusiveLock`], reads the state fresh, applies the rules, and writes — so a dialogue
//! that lasted minutes is still checked against the schedule as it is at the moment of
//! writing, and any number of `book` processes can run at once.

use std::fmt;

use anyhow::{Result, bail};
use chrono::{Duration, NaiveDateTime};

use crate::account;
use crate::error::{Refused, UsageError};
use crate::model::{Booking, UserId};
use crate::model::{BookingState, Window, format_minutes};
use crate::rules::capacity::{self, Host, Request, Shortage};
use crate::rules::time_input::Horizon;
use crate::rules::{floor_to_slot, next_slot_boundary};
use crate::store::config::Config;
use crate::store::lock::{ExclusiveLock, LockHeld};
use crate::store::monitor_exec::{self, Request as MonitorRequest};
use crate::store::schedule::{self, ActiveFile};

/// Everything a decision needs: the configuration and the active schedule.
#[derive(Debug, Clone)]
pub struct State {
    pub config: Config,
    /// `booking.csv`: not started yet.
    pub booked: Vec<Booking>,
    /// `using.csv`: running.
    pub running: Vec<Booking>,
}

impl State {
    /// Reads `cfg/` and the two active files; never `used.csv`, so the history can grow
    /// without slowing anyone down.
    pub fn load(lock: &impl LockHeld) -> Result<State> {
        Ok(State {
            config: Config::load(lock)?,
            booked: schedule::read(lock, ActiveFile::Booking)?,
            running: schedule::read(lock, ActiveFile::Using)?,
        })
    }

    pub fn active(&self) -> Vec<Booking> {
        self.running.iter().chain(&self.booked).cloned().collect()
    }

    pub fn host(&self) -> Host {
        host_of(&self.config)
    }

    pub fn horizon(&self) -> Horizon {
        Horizon::default()
    }

    /// The user's active bookings, running first, then by start.
    pub fn bookings_of(&self, user: &UserId) -> Vec<(BookingState, Booking)> {
        let mut mine: Vec<(BookingState, Booking)> = self
            .running
            .iter()
            .filter(|booking| &booking.user_id == user)
            .map(|booking| (BookingState::Running, booking.clone()))
            .chain(
                self.booked
                    .iter()
                    .filter(|booking| &booking.user_id == user)
                    .map(|booking| (BookingState::Booked, booking.clone())),
            )
            .collect();
        mine.sort_by_key(|(state, booking)| (*state != BookingState::Running, booking.start));
        mine
    }
}

pub fn host_of(config: &Config) -> Host {
    Host { cpus: config.capability.max.cpus, memory: config.capability.max.memory, gpus: config.capability.max.gpus }
}

/// What a student asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBooking {
    pub user: UserId,
    pub cpus: f64,
    pub memory: u32,
    pub gpus: u32,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    /// For this booking only; `None`: the user's default.
    pub image: Option<String>,
    pub extra_command: Option<String>,
    /// For this booking only; `None`: the user's saved port.
    pub forward_port: Option<u16>,
}

/// A booking refused for lack of capacity, with the earliest window that fits the same
/// request (if any within the horizon). Exit code 3.
#[derive(Debug, Clone)]
pub struct NoCapacity {
    pub shortage: Shortage,
    pub earliest: Option<Window>,
}

impl fmt::Display for NoCapacity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.shortage)?;
        match &self.earliest {
            Some(window) => write!(
                formatter,
                "; the earliest window that fits is {} to {} (GPUs {})",
                format_minutes(window.start),
                format_minutes(window.end),
                crate::model::format_gpu_list(&window.gpus)
            ),
            None => write!(formatter, "; no window of this length fits within the booking horizon"),
        }
    }
}

impl std::error::Error for NoCapacity {}

impl NewBooking {
    fn request(&self, port: u16) -> Request {
        Request {
            user: Some(self.user.clone()),
            start: self.start,
            end: self.end,
            cpus: self.cpus,
            memory: self.memory,
            gpus: self.gpus,
            forward_port: Some(port),
        }
    }
}

/// Checks what does not depend on the schedule: limits, image, port, times. Returns the port
/// the booking will use.
pub fn check_request(state: &State, new: &NewBooking, now: NaiveDateTime) -> Result<u16> {
    let config = &state.config;
    let limits = config.limits_for(&new.user).ok_or_else(|| account::not_allowed(&new.user))?;
    capacity::check_limits(new.cpus, new.memory, new.gpus, &limits, &state.host()).map_err(Refused)?;
    let entry = config
        .users
        .get(&new.user)
        .ok_or_else(|| anyhow::anyhow!("{} has no settings yet; log in once to create them", new.user))?;
    if let Some(image) = &new.image {
        account::check_image(config, image)?;
    }
    if let Some(command) = &new.extra_command {
        crate::rules::fields::check_extra_command(command).map_err(UsageError)?;
    }
    let port = match new.forward_port {
        Some(port) => {
            account::check_port(config, &new.user, port)?;
            port
        }
        None => entry.forward_port,
    };
    if new.start < floor_to_slot(now) {
        bail!(UsageError(format!("the start {} is in the past", format_minutes(new.start))));
    }
    crate::rules::time_input::check_end(new.start, new.end, state.horizon()).map_err(UsageError)?;
    Ok(port)
}

/// The earliest window at or after the asked start that fits the same request.
pub fn earliest_window(state: &State, new: &NewBooking, port: Option<u16>, now: NaiveDateTime) -> Option<Window> {
    let from = new.start.max(floor_to_slot(now));
    let latest_start = floor_to_slot(now) + Duration::days(state.horizon().start_within_days);
    let shape = Request { forward_port: port, ..new.request(0) };
    capacity::earliest_window(&state.active(), &state.host(), &shape, new.end - new.start, from, latest_start)
        .map(|(start, gpus)| Window { start, end: start + (new.end - new.start), gpus })
}

/// Books `new`: checks it under the lock against the schedule as it is now, writes it to
/// `booking.csv`, and asks the monitor to run at once if it starts in the current slot.
pub fn book(lock: &ExclusiveLock, new: &NewBooking, now: NaiveDateTime) -> Result<Booking> {
    let state = State::load(lock)?;
    let port = check_request(&state, new, now)?;
    let gpus = match capacity::place(&state.active(), &state.host(), &new.request(port)) {
        Ok(gpus) => gpus,
        Err(shortage) => {
            let earliest = earliest_window(&state, new, Some(port), now);
            return Err(anyhow::Error::new(NoCapacity { shortage, earliest }));
        }
    };
    let booking = Booking {
        start: new.start,
        end: new.end,
        user_id: new.user.clone(),
        cpus: new.cpus,
        memory: new.memory,
        gpus,
        forward_port: port,
        image: new.image.clone(),
        extra_command: new.extra_command.clone().filter(|command| !command.trim().is_empty()),
    };
    let mut booked = state.booked;
    booked.push(booking.clone());
    booked.sort_by(|left, right| left.start.cmp(&right.start).then_with(|| left.user_id.cmp(&right.user_id)));
    schedule::ensure_files(lock)?;
    // The request first: if it cannot be written (a swapped file is refused), nothing is
    // booked; a request without its booking only costs the monitor an idle pass.
    if booking.start <= floor_to_slot(now) {
        monitor_exec::append(lock, &MonitorRequest::Now)?;
    }
    schedule::write(lock, ActiveFile::Booking, &booked)?;
    Ok(booking)
}

/// What a cancellation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// A booking that had not started was removed (and recorded as cancelled in `used.csv`).
    Removed(Booking),
    /// A running booking now ends at the next slot boundary, when the monitor stops it.
    EndsAt(Booking, NaiveDateTime),
}

/// Picks one of the user's bookings: the one starting at `start`, or the only one they have.
fn select<'a>(
    mine: &'a [(BookingState, Booking)],
    user: &UserId,
    start: Option<NaiveDateTime>,
) -> Result<&'a (BookingState, Booking)> {
    match start {
        Some(start) => mine
            .iter()
            .find(|(_, booking)| booking.start == start)
            .ok_or_else(|| Refused(format!("{user} has no booking starting at {}", format_minutes(start))).into()),
        None => match mine {
            [] => Err(Refused(format!("{user} has no booking")).into()),
            [only] => Ok(only),
            several => {
                let starts: Vec<String> = several.iter().map(|(_, booking)| format_minutes(booking.start)).collect();
                Err(UsageError(format!(
                    "{user} has {} bookings; choose one with --start (one of: {})",
                    several.len(),
                    starts.join(", ")
                ))
                .into())
            }
        },
    }
}

/// Cancels one of the user's bookings. A cancelled booking that never started goes to
/// `used.csv` with its end equal to its start: nothing was used, the original's reader
/// accepts the row, and a report can count it as a cancellation.
pub fn cancel(
    lock: &ExclusiveLock,
    user: &UserId,
    start: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<Cancelled> {
    let state = State::load(lock)?;
    let mine = state.bookings_of(user);
    let (booking_state, chosen) = select(&mine, user, start)?.clone();
    match booking_state {
        BookingState::Booked => {
            let booked: Vec<Booking> = state
                .booked
                .into_iter()
                .filter(|booking| !(booking.user_id == *user && booking.start == chosen.start))
                .collect();
            let record = Booking { end: chosen.start, ..chosen.clone() };
            schedule::commit(
                lock,
                schedule::Change { booked: Some(&booked), history: &[record], ..Default::default() },
            )?;
            Ok(Cancelled::Removed(chosen))
        }
        BookingState::Running => {
            let new_end = next_slot_boundary(now);
            if new_end >= chosen.end {
                return Ok(Cancelled::EndsAt(chosen.clone(), chosen.end));
            }
            let running: Vec<Booking> = state
                .running
                .into_iter()
                .map(|booking| {
                    if booking.user_id == *user && booking.start == chosen.start {
                        Booking { end: new_end, ..booking }
                    } else {
                        booking
                    }
                })
                .collect();
            schedule::write(lock, ActiveFile::Using, &running)?;
            Ok(Cancelled::EndsAt(chosen, new_end))
        }
    }
}

/// Moves the end of one of the user's bookings (later: checked for capacity with the same
/// GPU ids; earlier: always allowed, but not into the past).
pub fn extend(
    lock: &ExclusiveLock,
    user: &UserId,
    start: Option<NaiveDateTime>,
    new_end: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<Booking> {
    let state = State::load(lock)?;
    let mine = state.bookings_of(user);
    let (booking_state, chosen) = select(&mine, user, start)?.clone();
    crate::rules::time_input::check_end(chosen.start, new_end, state.horizon()).map_err(UsageError)?;
    if new_end <= floor_to_slot(now) {
        bail!(UsageError(format!("the new end {} is in the past", format_minutes(new_end))));
    }
    if new_end > chosen.end {
        let others: Vec<Booking> = state
            .active()
            .into_iter()
            .filter(|booking| !(booking.user_id == *user && booking.start == chosen.start))
            .collect();
        let request = Request {
            user: Some(user.clone()),
            start: chosen.end.max(floor_to_slot(now)),
            end: new_end,
            cpus: chosen.cpus,
            memory: chosen.memory,
            gpus: chosen.gpus.len() as u32,
            forward_port: Some(chosen.forward_port),
        };
        capacity::place_keeping(&others, &state.host(), &request, &chosen.gpus)
            .map_err(|shortage| Refused(format!("cannot extend to {}: {shortage}", format_minutes(new_end))))?;
    }
    let file = match booking_state {
        BookingState::Booked => ActiveFile::Booking,
        BookingState::Running => ActiveFile::Using,
    };
    let rows = if file == ActiveFile::Booking { state.booked } else { state.running };
    let updated = Booking { end: new_end, ..chosen.clone() };
    let rows: Vec<Booking> = rows
        .into_iter()
        .map(
            |booking| {
                if booking.user_id == *user && booking.start == chosen.start { updated.clone() } else { booking }
            },
        )
        .collect();
    // A running booking's container shows its end (the login banner, the warnings): the
    // request runs a pass at once, which writes the new end there. The request first, as in
    // `book`: if it cannot be written, nothing is changed.
    if booking_state == BookingState::Running {
        monitor_exec::append(lock, &MonitorRequest::Now)?;
    }
    schedule::write(lock, file, &rows)?;
    Ok(updated)
}

/// Asks the monitor to restart the user's running container.
pub fn request_restart(lock: &ExclusiveLock, user: &UserId) -> Result<Booking> {
    let state = State::load(lock)?;
    let Some(running) = state.running.iter().find(|booking| &booking.user_id == user) else {
        bail!(Refused(format!("{user} has no running booking, so there is no container to restart")));
    };
    let request = MonitorRequest::Restart(user.clone());
    // Asking again before the monitor came round (a retry after a dropped connection) adds
    // nothing: one restart was asked for.
    if !monitor_exec::read(lock)?.requests.contains(&request) {
        monitor_exec::append(lock, &request)?;
    }
    Ok(running.clone())
}

/// The earliest window for a request by shape only (`book free`).
pub fn free_window(
    state: &State,
    user: Option<&UserId>,
    cpus: f64,
    memory: u32,
    gpus: u32,
    length: Duration,
    now: NaiveDateTime,
) -> Option<Window> {
    let from = floor_to_slot(now);
    let port = user.and_then(|user| state.config.users.get(user)).map(|entry| entry.forward_port);
    let shape =
        Request { user: user.cloned(), start: from, end: from + length, cpus, memory, gpus, forward_port: port };
    let latest_start = from + Duration::days(state.horizon().start_within_days);
    capacity::earliest_window(&state.active(), &state.host(), &shape, length, from, latest_start)
        .map(|(start, gpus)| Window { start, end: start + length, gpus })
}
