//! What `book` does to the schedule: book (or offer the earliest window that fits), cancel,
//! extend, restart, and find a free window. Each change takes the exclusive lock through
//! the command's [`Lab`], reads the state fresh, applies the rules, and writes — so a dialogue
//! that lasted minutes is still checked against the schedule as it is at the moment of
//! writing, and any number of `book` processes can run at once.

use std::fmt;

use anyhow::{Result, bail};
use chrono::{Duration, NaiveDateTime};

use crate::account;
use crate::error::{Refused, UsageError};
use crate::lab::{Held, Lab, Writing};
use crate::model::{Booking, UserId};
use crate::model::{BookingState, Window, format_minutes};
use crate::rules::capacity::{self, Host, Request, Shortage};
use crate::rules::settings;
use crate::rules::time_input::{self, Horizon};
use crate::rules::{floor_to_slot, next_slot_boundary};
use crate::store::config::Config;
use crate::store::lock::LockHeld;
use crate::store::monitor_exec::{self, Request as MonitorRequest};
use crate::store::queue;
use crate::store::root::Root;
use crate::store::schedule::{self, ActiveFile};

pub use crate::lab::{State, host_of};

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

/// A request as typed (flags, or answers in the dialogue): times as `book` takes them
/// (`now`, `2-day`, `2026 11 24 09 30`; the end may count from the start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Asked {
    pub cpus: f64,
    pub memory: u32,
    pub gpus: u32,
    pub start: String,
    pub end: String,
    pub image: Option<String>,
    pub extra_command: Option<String>,
    pub forward_port: Option<u16>,
}

impl NewBooking {
    /// Reads the times of `asked` at `now`; the rest is checked when it is booked.
    pub fn parse(user: &UserId, asked: &Asked, now: NaiveDateTime) -> Result<NewBooking> {
        let start = parse_start(&asked.start, now)?;
        let end = parse_end(&asked.end, start)?;
        Ok(NewBooking {
            user: user.clone(),
            cpus: asked.cpus,
            memory: asked.memory,
            gpus: asked.gpus,
            start,
            end,
            image: asked.image.clone(),
            extra_command: asked.extra_command.clone(),
            forward_port: asked.forward_port,
        })
    }

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

/// A new booking's start (`--start`), within the booking horizon from `now`.
pub fn parse_start(spec: &str, now: NaiveDateTime) -> Result<NaiveDateTime> {
    time_input::parse_start(spec, now, Horizon::default())
        .map_err(|message| UsageError(format!("--start: {message}")).into())
}

/// A new booking's end (`--end`); a relative one counts from `start`.
pub fn parse_end(spec: &str, start: NaiveDateTime) -> Result<NaiveDateTime> {
    time_input::parse_end(spec, start, Horizon::default())
        .map_err(|message| UsageError(format!("--end: {message}")).into())
}

/// The start of a booking the user holds (`--start` of cancel and extend): as written in
/// the schedule, or as typed for a new booking.
pub fn parse_existing_start(spec: &str, now: NaiveDateTime) -> Result<NaiveDateTime> {
    crate::model::parse_time(spec.trim())
        .or_else(|_| time_input::parse_existing_start(spec, now))
        .map_err(|message| UsageError(format!("--start: {message}")).into())
}

/// A booking refused for lack of capacity, with the earliest window that fits the same
/// request (if any within the horizon).
#[derive(Debug, Clone, PartialEq)]
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

impl NoCapacity {
    /// The refusal as the error a command ends with (exit code 3).
    pub fn refusal(&self) -> anyhow::Error {
        Refused(self.to_string()).into()
    }
}

/// What [`book_or_offer`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Written to `booking.csv`; `default_image` is the host's, which it runs when it names none.
    Booked { booking: Booking, default_image: String },
    /// Nothing written: the resources are not free for the whole window.
    NoCapacity(NoCapacity),
}

/// Checks what does not depend on the schedule: limits, image, port, times. Returns the port
/// the booking will use.
fn check_request(config: &Config, new: &NewBooking, now: NaiveDateTime) -> Result<u16> {
    let limits = config.limits_for(&new.user).ok_or_else(|| account::not_allowed(&new.user))?;
    capacity::check_limits(new.cpus, new.memory, new.gpus, &limits, &host_of(config)).map_err(Refused)?;
    let entry = config
        .users
        .get(&new.user)
        .ok_or_else(|| anyhow::anyhow!("{} has no settings yet; log in once to create them", new.user))?;
    if let Some(image) = &new.image {
        settings::check_image(image, &config.deploy.images)?;
    }
    if let Some(command) = &new.extra_command {
        settings::check_extra_command(command).map_err(UsageError)?;
    }
    let port = match new.forward_port {
        Some(port) => {
            settings::check_port(&new.user, port, config.users.ports(), [])?;
            port
        }
        None => entry.forward_port,
    };
    if new.start < floor_to_slot(now) {
        bail!(UsageError(format!("the start {} is in the past", format_minutes(new.start))));
    }
    time_input::check_end(new.start, new.end, Horizon::default()).map_err(UsageError)?;
    Ok(port)
}

/// The earliest window at or after the asked start that fits the same request.
fn earliest_window(active: &[Booking], host: &Host, new: &NewBooking, port: u16, now: NaiveDateTime) -> Option<Window> {
    let from = new.start.max(floor_to_slot(now));
    let latest_start = floor_to_slot(now) + Duration::days(Horizon::default().start_within_days);
    capacity::earliest_window(active, host, &new.request(port), new.end - new.start, from, latest_start)
        .map(|(start, gpus)| Window { start, end: start + (new.end - new.start), gpus })
}

/// Books `new` if the resources are free for its whole window; otherwise offers the earliest
/// window that fits the same request — and books that one at once when `take_earliest`.
/// Checked under the lock against the schedule as it is now; a booking that starts in the
/// current slot asks the monitor to run at once.
///
/// The schedule is read first under the shared lock, beside every other reader, and under
/// the exclusive lock only what changed meanwhile is read again (see
/// [`schedule::KnownFile`]): the exclusive lock, which every other writer waits for, is held
/// for little more than the write. When another process holds it, the request is left for
/// that process (see [`queue`]), which books every request waiting with its own in one write;
/// a request it does not book is decided here, under the lock, as if there were no queue.
pub fn book_or_offer(lab: &Lab, new: &NewBooking, take_earliest: bool) -> Result<Outcome> {
    let (booked, running) = {
        let reading = lab.read()?;
        let lock = reading.lock();
        (schedule::KnownFile::copy(lock, ActiveFile::Booking), schedule::KnownFile::copy(lock, ActiveFile::Using))
    };
    let known = (booked.and_then(schedule::FileCopy::parse), running.and_then(schedule::FileCopy::parse));
    let writing = match lab.try_write()? {
        Some(writing) => writing,
        None => match wait_in_queue(lab, new, take_earliest)? {
            Waited::Answered(outcome) => return Ok(outcome),
            Waited::OnOwn(writing) => writing,
        },
    };
    // The configuration's problems first, as every command reports them.
    let config = writing.config()?;
    let mut active = Active::read(&writing, known)?;
    let outcome = decide(&writing, &config, &active, new, take_earliest);
    if let Ok(Outcome::Booked { booking, .. }) = &outcome {
        active.add(booking.clone());
    }
    let mut decided = Vec::new();
    for queued in queue::waiting(writing.lock())? {
        let booked = match decode_request(&queued.text) {
            Some((theirs, their_earliest)) => match decide(&writing, &config, &active, &theirs, their_earliest) {
                Ok(Outcome::Booked { booking, .. }) => Some(booking),
                _ => None,
            },
            None => None,
        };
        if let Some(booking) = &booked {
            active.add(booking.clone());
        }
        decided.push(queue::Decided { id: queued.id, booked });
    }
    if decided.is_empty() {
        if active.has_added() {
            active.write_added(&writing)?;
        }
    } else {
        let has_added = active.has_added();
        queue::commit(writing.lock(), &decided, || if has_added { active.write_added(&writing) } else { Ok(()) })?;
    }
    outcome
}

/// How a request left in the queue ended.
enum Waited<'lab> {
    /// Another process booked it.
    Answered(Outcome),
    /// Not booked by another process: the exclusive lock is held now, to decide it here.
    OnOwn(Writing<'lab>),
}

/// Leaves the request for the holder of the exclusive lock and waits until it lets go (under
/// the shared lock, beside the other waiters); when it did not book the request, takes the
/// exclusive lock (another holder may book it meanwhile).
fn wait_in_queue<'lab>(lab: &'lab Lab, new: &NewBooking, take_earliest: bool) -> Result<Waited<'lab>> {
    let waiting = leave_request(lab.root(), new, take_earliest)?;
    {
        let reading = lab.read()?;
        if let Some(queue::Answer::Booked(booking)) = waiting.answer(reading.lock())? {
            waiting.withdraw(reading.lock());
            return Ok(Waited::Answered(answered(&reading, booking)?));
        }
    }
    let writing = lab.write()?;
    let answer = waiting.answer(writing.lock())?;
    waiting.withdraw(writing.lock());
    match answer {
        Some(queue::Answer::Booked(booking)) => Ok(Waited::Answered(answered(&writing, booking)?)),
        _ => Ok(Waited::OnOwn(writing)),
    }
}

/// The outcome of a request another process booked.
fn answered<L: LockHeld>(held: &Held<'_, L>, booking: Booking) -> Result<Outcome> {
    let default_image = held.config()?.deploy.default_image().to_string();
    Ok(Outcome::Booked { booking, default_image })
}

/// Leaves `new` for the next `book new` that holds the exclusive lock (see [`queue`]); it is
/// wanted until the result is dropped.
pub fn leave_request(root: &Root, new: &NewBooking, take_earliest: bool) -> Result<queue::Waiting> {
    queue::leave(root, &encode_request(new, take_earliest))
}

/// A request as it waits in the queue: one line of JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct QueuedRequest {
    user: UserId,
    cpus: f64,
    memory: u32,
    gpus: u32,
    start: String,
    end: String,
    image: Option<String>,
    extra_command: Option<String>,
    forward_port: Option<u16>,
    take_earliest: bool,
}

/// Times to the nanosecond, so the holder decides exactly the request that was made.
const QUEUED_TIME: &str = "%Y-%m-%dT%H:%M:%S%.f";

fn encode_request(new: &NewBooking, take_earliest: bool) -> String {
    let request = QueuedRequest {
        user: new.user.clone(),
        cpus: new.cpus,
        memory: new.memory,
        gpus: new.gpus,
        start: new.start.format(QUEUED_TIME).to_string(),
        end: new.end.format(QUEUED_TIME).to_string(),
        image: new.image.clone(),
        extra_command: new.extra_command.clone(),
        forward_port: new.forward_port,
        take_earliest,
    };
    serde_json::to_string(&request).expect("a request is plain data")
}

/// The request and `take_earliest`; `None` for anything that is not one.
fn decode_request(text: &str) -> Option<(NewBooking, bool)> {
    let request: QueuedRequest = serde_json::from_str(text).ok()?;
    let time = |text: &str| NaiveDateTime::parse_from_str(text, QUEUED_TIME).ok();
    let new = NewBooking {
        user: request.user,
        cpus: request.cpus,
        memory: request.memory,
        gpus: request.gpus,
        start: time(&request.start)?,
        end: time(&request.end)?,
        image: request.image,
        extra_command: request.extra_command,
        forward_port: request.forward_port,
    };
    Some((new, request.take_earliest))
}

/// The outcome of `new` against `active`: booked as asked, or refused with the earliest window
/// that fits — booked there when `take_earliest`.
fn decide(
    writing: &Writing,
    config: &Config,
    active: &Active,
    new: &NewBooking,
    take_earliest: bool,
) -> Result<Outcome> {
    match book_under(writing, config, active, new)? {
        Outcome::NoCapacity(NoCapacity { earliest: Some(window), .. }) if take_earliest => {
            book_under(writing, config, active, &NewBooking { start: window.start, end: window.end, ..new.clone() })
        }
        outcome => Ok(outcome),
    }
}

/// The active bookings, running first, then the rows of `booking.csv`, then the bookings
/// added by this command, as one list (the rules take them so, without a copy of each), and
/// how `booking.csv` is to be written back.
struct Active {
    bookings: Vec<Booking>,
    running: usize,
    /// Where the rows of `booking.csv` end and the bookings added begin.
    in_file: usize,
    layout: Option<schedule::KnownLayout>,
}

impl Active {
    /// Both files as they are now: `known` brought up to date where it could be read before,
    /// each file read in full otherwise (in the order, and with the errors, of every reader).
    fn read(writing: &Writing, known: (Option<schedule::KnownFile>, Option<schedule::KnownFile>)) -> Result<Active> {
        let lock = writing.lock();
        let refreshed = |file: Option<schedule::KnownFile>| file.and_then(|file| file.refresh(lock));
        let (booked, layout) = match refreshed(known.0) {
            Some(file) => {
                let (rows, layout) = file.into_parts();
                (rows, Some(layout))
            }
            None => (schedule::read(lock, ActiveFile::Booking)?, None),
        };
        let mut bookings = match refreshed(known.1) {
            Some(file) => file.into_parts().0,
            None => schedule::read(lock, ActiveFile::Using)?,
        };
        let running = bookings.len();
        bookings.extend(booked);
        let in_file = bookings.len();
        Ok(Active { bookings, running, in_file, layout })
    }

    fn add(&mut self, booking: Booking) {
        self.bookings.push(booking);
    }

    fn has_added(&self) -> bool {
        self.bookings.len() > self.in_file
    }

    /// Writes `booking.csv` with the bookings added.
    fn write_added(self, writing: &Writing) -> Result<()> {
        let lock = writing.lock();
        let (booked, added) = self.bookings[self.running..].split_at(self.in_file - self.running);
        schedule::ensure_files(lock)?;
        // The request first: if it cannot be written (a swapped file is refused), nothing is
        // booked; a request without its booking only costs the monitor an idle pass.
        let slot = floor_to_slot(writing.now()?);
        if added.iter().any(|booking| booking.start <= slot) {
            monitor_exec::append(lock, &MonitorRequest::Now)?;
        }
        match self.layout {
            Some(layout) => layout.write_adding(lock, booked, added),
            None => {
                let mut all = booked.to_vec();
                all.extend_from_slice(added);
                all.sort_by(schedule::schedule_order);
                schedule::write(lock, ActiveFile::Booking, &all)
            }
        }
    }
}

/// Decides `new` against the active bookings: the booking it would be, or the refusal with
/// the earliest window that fits.
fn book_under(writing: &Writing, config: &Config, active: &Active, new: &NewBooking) -> Result<Outcome> {
    let now = writing.now()?;
    let port = check_request(config, new, now)?;
    let host = host_of(config);
    let gpus = match capacity::place(&active.bookings, &host, &new.request(port)) {
        Ok(gpus) => gpus,
        Err(shortage) => {
            let earliest = earliest_window(&active.bookings, &host, new, port, now);
            return Ok(Outcome::NoCapacity(NoCapacity { shortage, earliest }));
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
    Ok(Outcome::Booked { booking, default_image: config.deploy.default_image().to_string() })
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

/// Cancels one of the user's bookings: the one starting at `start` (as typed), or the only
/// one they hold. A cancelled booking that never started goes to `used.csv` with its end
/// equal to its start: nothing was used, the original's reader accepts the row, and a report
/// can count it as a cancellation.
pub fn cancel(lab: &Lab, user: &UserId, start: Option<&str>) -> Result<Cancelled> {
    let start = start.map(|spec| parse_existing_start(spec, lab.now()?)).transpose()?;
    cancel_under(&lab.write()?, user, start)
}

/// [`cancel`] under a lock the caller holds (`enroll remove` cancels several).
pub fn cancel_under(writing: &Writing, user: &UserId, start: Option<NaiveDateTime>) -> Result<Cancelled> {
    let now = writing.now()?;
    let lock = writing.lock();
    let state = writing.state()?;
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

/// Moves the end of one of the user's bookings (the one starting at `start`, or the only one):
/// later is checked for capacity with the same GPU ids; earlier is always allowed, but not
/// into the past. A relative `end` (`2-hour`) counts from the booking's current end.
pub fn extend(lab: &Lab, user: &UserId, start: Option<&str>, end: &str) -> Result<Booking> {
    let now = lab.now()?;
    let start = start.map(|spec| parse_existing_start(spec, now)).transpose()?;
    let writing = lab.write()?;
    let lock = writing.lock();
    let state = writing.state()?;
    let mine = state.bookings_of(user);
    let current = match start {
        Some(start) => mine.iter().find(|(_, booking)| booking.start == start),
        None => mine.first().filter(|_| mine.len() == 1),
    };
    // Without one booking to count from, `select` below explains what is missing.
    let base = current.map_or(now, |(_, booking)| booking.end);
    // Checked against the booking's start below, so an earlier end shortens it and the
    // booking's own length limit is the one a student is told about.
    let new_end = time_input::resolve_end(end, base).map_err(UsageError)?;
    let (booking_state, chosen) = select(&mine, user, start)?.clone();
    time_input::check_end(chosen.start, new_end, state.horizon()).map_err(UsageError)?;
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
pub fn request_restart(lab: &Lab, user: &UserId) -> Result<Booking> {
    let writing = lab.write()?;
    let lock = writing.lock();
    let state = writing.state()?;
    let Some(running) = state.running.into_iter().find(|booking| &booking.user_id == user) else {
        bail!(Refused(format!("{user} has no running booking, so there is no container to restart")));
    };
    let request = MonitorRequest::Restart(user.clone());
    // Asking again before the monitor came round (a retry after a dropped connection) adds
    // nothing: one restart was asked for.
    if !monitor_exec::read(lock)?.requests.contains(&request) {
        monitor_exec::append(lock, &request)?;
    }
    Ok(running)
}

/// What `book free` looks for: resources for a length of time, as typed (`4-hour`).
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub cpus: f64,
    pub memory: u32,
    pub gpus: u32,
    pub duration: String,
}

/// The earliest window within the booking horizon where `wanted` fits (`book free`); with a
/// user, their own bookings and port count too.
pub fn free(lab: &Lab, user: Option<&UserId>, wanted: &Wanted) -> Result<Window> {
    let length =
        time_input::parse_duration(&wanted.duration).map_err(|message| UsageError(format!("--duration: {message}")))?;
    if let Some(problem) = capacity::cpus_problem(wanted.cpus) {
        bail!(Refused(problem));
    }
    if wanted.memory < 1 {
        bail!(Refused("memory must be at least 1 GB".into()));
    }
    let state = lab.state()?;
    let now = lab.now()?;
    let from = floor_to_slot(now);
    let port = user.and_then(|user| state.config.users.get(user)).map(|entry| entry.forward_port);
    let shape = Request {
        user: user.cloned(),
        start: from,
        end: from + length,
        cpus: wanted.cpus,
        memory: wanted.memory,
        gpus: wanted.gpus,
        forward_port: port,
    };
    let latest_start = from + Duration::days(state.horizon().start_within_days);
    capacity::earliest_window(&state.active(), &state.host(), &shape, length, from, latest_start)
        .map(|(start, gpus)| Window { start, end: start + length, gpus })
        .ok_or_else(|| {
            Refused(format!(
                "no window of {} fits within the next {} days",
                wanted.duration,
                state.horizon().start_within_days
            ))
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{EXIT_REFUSED, exit_code_for};
    use crate::lab::tests::{at, scratch_root};
    use crate::store::root::Root;

    /// A lab at 10:00 where alice (port 10001) and bob (port 10002) have settings.
    fn lab_with_users(scratch: &tempfile::TempDir) -> Lab {
        std::fs::write(
            scratch.path().join("cfg/users_config.yaml"),
            "alice:\n  password: \"alices-secret\"\n  forward_port: 10001\n  image: null\n  extra_command: null\n\
             bob:\n  password: \"bobs-secret\"\n  forward_port: 10002\n  image: null\n  extra_command: null\n",
        )
        .unwrap();
        Lab::at(Root::new(scratch.path()), at("2026-11-23 10:00"))
    }

    fn asked(gpus: u32, start: &str, end: &str) -> Asked {
        Asked { cpus: 1.0, memory: 2, gpus, start: start.into(), end: end.into(), ..Asked::default() }
    }

    fn request(lab: &Lab, user: &str, asked: &Asked) -> NewBooking {
        NewBooking::parse(&UserId::parse(user).unwrap(), asked, lab.now().unwrap()).unwrap()
    }

    fn rows(lab: &Lab) -> Vec<Booking> {
        schedule::read(lab.read().unwrap().lock(), ActiveFile::Booking).unwrap()
    }

    #[test]
    fn a_request_that_does_not_fit_gets_the_earliest_window_as_a_value_and_writes_nothing() {
        let scratch = scratch_root();
        let lab = lab_with_users(&scratch);
        let bobs = request(&lab, "bob", &asked(2, "now", "2-hour"));
        let Outcome::Booked { booking, default_image } = book_or_offer(&lab, &bobs, false).unwrap() else {
            panic!("bob's booking on a free host was refused");
        };
        assert_eq!((booking.gpus, default_image.as_str()), (vec![0, 1], "lab/ssh:latest"));

        let alices = request(&lab, "alice", &asked(1, "now", "1-hour"));
        let Outcome::NoCapacity(refused) = book_or_offer(&lab, &alices, false).unwrap() else {
            panic!("alice got a GPU that bob holds");
        };
        assert!(matches!(refused.shortage, Shortage::Gpus { free: 0, wanted: 1, .. }), "{:?}", refused.shortage);
        let window = refused.earliest.clone().expect("a window later today");
        assert_eq!((window.start, window.end), (at("2026-11-23 12:00"), at("2026-11-23 13:00")));
        assert_eq!(rows(&lab).len(), 1, "nothing written for alice");
        let error = refused.refusal();
        assert_eq!(exit_code_for(&error), EXIT_REFUSED);
        assert!(error.to_string().contains("the earliest window that fits is 2026-11-23 12:00 to 2026-11-23 13:00"));

        // Taking the offer books that window under the same lock.
        let Outcome::Booked { booking, .. } = book_or_offer(&lab, &alices, true).unwrap() else {
            panic!("the earliest window was not taken");
        };
        assert_eq!((booking.start, booking.end), (window.start, window.end));
        assert_eq!(rows(&lab).len(), 2);
    }

    /// The queue files left in `jobs/`.
    fn queue_files(lab: &Lab) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(lab.root().jobs_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".request-") || name.starts_with(".answer-") || name == ".batch")
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_lock_holder_books_a_waiting_request_after_its_own_in_the_same_write() {
        let scratch = scratch_root();
        let lab = lab_with_users(&scratch);
        // bob found the lock taken and waits.
        let waiting = leave_request(lab.root(), &request(&lab, "bob", &asked(1, "now", "2-hour")), false).unwrap();
        let Outcome::Booked { booking: alices, .. } =
            book_or_offer(&lab, &request(&lab, "alice", &asked(1, "now", "1-hour")), false).unwrap()
        else {
            panic!("alice's booking on a free host was refused");
        };
        assert_eq!(alices.gpus, vec![0], "the holder's own request is decided first");
        let reading = lab.read().unwrap();
        let Some(queue::Answer::Booked(bobs)) = waiting.answer(reading.lock()).unwrap() else {
            panic!("bob's request was not booked by the holder");
        };
        assert_eq!((bobs.user_id.as_str(), bobs.gpus.as_slice(), bobs.end), ("bob", &[1][..], at("2026-11-23 12:00")));
        waiting.withdraw(reading.lock());
        drop(reading);
        assert_eq!(rows(&lab), vec![alices, bobs], "both rows, as the answer says, in one file");
        assert_eq!(queue_files(&lab), Vec::<String>::new(), "the waiter removed its request and answer");
    }

    #[test]
    fn a_waiting_request_that_does_not_fit_is_left_to_its_waiter() {
        let scratch = scratch_root();
        let lab = lab_with_users(&scratch);
        let bobs = request(&lab, "bob", &asked(2, "now", "2-hour"));
        let waiting = leave_request(lab.root(), &bobs, false).unwrap();
        book_or_offer(&lab, &request(&lab, "alice", &asked(1, "now", "1-hour")), false).unwrap();
        let answer = waiting.answer(lab.read().unwrap().lock()).unwrap();
        assert_eq!(answer, Some(queue::Answer::Declined));
        assert_eq!(rows(&lab).len(), 1, "only alice's booking");
        waiting.withdraw(lab.write().unwrap().lock());
        // The waiter then decides on its own, and gets the refusal with its offer.
        let Outcome::NoCapacity(refused) = book_or_offer(&lab, &bobs, false).unwrap() else {
            panic!("bob got a GPU that alice holds");
        };
        assert!(refused.earliest.is_some());
        assert_eq!(queue_files(&lab), Vec::<String>::new());
    }

    #[test]
    fn a_request_whose_waiter_is_gone_is_never_booked_and_is_removed() {
        let scratch = scratch_root();
        let lab = lab_with_users(&scratch);
        let waiting = leave_request(lab.root(), &request(&lab, "bob", &asked(1, "now", "2-hour")), false).unwrap();
        // Killed while it waited: its `flock` goes with it, its file stays.
        drop(waiting);
        assert_eq!(queue_files(&lab).len(), 1);
        book_or_offer(&lab, &request(&lab, "alice", &asked(1, "now", "1-hour")), false).unwrap();
        let users: Vec<String> = rows(&lab).iter().map(|row| row.user_id.to_string()).collect();
        assert_eq!(users, ["alice"], "nobody is waiting for bob's answer, so nothing is booked for him");
        assert_eq!(queue_files(&lab), Vec::<String>::new());
    }

    #[test]
    fn a_queued_request_reads_back_as_it_was_made() {
        let lab = Lab::at(Root::new("/nonexistent"), at("2026-11-23 10:07"));
        let mut new = request(&lab, "alice", &asked(1, "now", "1-hour"));
        new.cpus = 2.75;
        new.image = Some("lab/cuda:12.1".into());
        new.extra_command = Some("echo \"a\nb\"".into());
        new.forward_port = Some(10009);
        new.start += chrono::Duration::nanoseconds(123_456_789);
        for take_earliest in [false, true] {
            let text = encode_request(&new, take_earliest);
            assert!(!text.contains('\n'), "one line: {text}");
            assert_eq!(decode_request(&text), Some((new.clone(), take_earliest)));
        }
        for garbage in ["", "{}", "not json", "{\"user\":\"../x\"}"] {
            assert_eq!(decode_request(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn extend_counts_a_relative_end_from_the_current_end() {
        let scratch = scratch_root();
        let lab = lab_with_users(&scratch);
        let alice = UserId::parse("alice").unwrap();
        book_or_offer(&lab, &request(&lab, "alice", &asked(1, "1-day", "2-hour")), false).unwrap();
        let extended = extend(&lab, &alice, None, "3-hour").unwrap();
        assert_eq!((extended.start, extended.end), (at("2026-11-24 10:00"), at("2026-11-24 15:00")));
        assert_eq!(rows(&lab)[0].end, at("2026-11-24 15:00"));
        let error = extend(&lab, &UserId::parse("bob").unwrap(), None, "1-hour").unwrap_err();
        assert_eq!(error.to_string(), "bob has no booking");
    }

    /// A script's answers: one password.
    struct OnePassword(Option<String>);

    impl crate::account::Answers for OnePassword {
        fn user_id(&mut self) -> Result<String> {
            bail!("no id was scripted")
        }
        fn password(&mut self, _attempt: u32) -> Result<Option<String>> {
            Ok(self.0.take())
        }
        fn wrong_password(&mut self) {}
        fn new_password(&mut self, _user: &UserId, _reason: crate::account::NewPassword) -> Result<String> {
            bail!("no new password was scripted")
        }
    }

    #[test]
    fn a_login_and_the_bookings_after_it_parse_the_configuration_once() {
        let scratch = scratch_root();
        // The first login replaces alice's plain-text password by a hash (a write to cfg/).
        let setup = lab_with_users(&scratch);
        crate::account::login(&setup, Some("alice"), &mut OnePassword(Some("alices-secret".into()))).unwrap();
        // A new command, as `book new` runs: log in, then book (twice here).
        let lab = Lab::at(Root::new(scratch.path()), at("2026-11-23 10:00"));
        let answers = &mut OnePassword(Some("alices-secret".into()));
        let logged_in = crate::account::login(&lab, Some("alice"), answers).unwrap();
        let request = request(&lab, logged_in.user.as_str(), &asked(2, "now", "1-hour"));
        let first = book_or_offer(&lab, &request, false).unwrap();
        assert!(matches!(first, Outcome::Booked { .. }), "{first:?}");
        let again = book_or_offer(&lab, &request, false).unwrap();
        assert!(matches!(again, Outcome::NoCapacity(_)), "{again:?}");
        assert_eq!(lab.config_parses(), 1, "one parse for the login and two bookings");
    }
}
