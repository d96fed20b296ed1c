//! Capacity: does a request fit the host next to the active bookings, and which GPUs does it
//! get?
//!
//! For every 30-minute slot of the window, the CPUs and memory of the overlapping bookings
//! plus the request stay within the host's `max`; the request gets GPU ids that no
//! overlapping booking holds at any moment of the window (a container keeps its devices
//! from start to end); a user's own bookings never overlap; a forward port is not used by
//! two bookings at once. Usage only changes at booking boundaries, so the checks sweep those
//! boundaries instead of walking every slot.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{Duration, NaiveDateTime};

use crate::model::{Booking, UserId, UserLimits, format_minutes};

/// Slack for comparing a request with a limit (4.35 CPUs against a limit of 4.35).
const EPSILON: f64 = 1e-9;

/// The host's shareable resources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Host {
    pub cpus: f64,
    /// GB of RAM + swap.
    pub memory: f64,
    pub gpus: u32,
}

/// What a booking asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `None` when nobody is logged in (`book free`): no own-overlap check.
    pub user: Option<UserId>,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub cpus: f64,
    pub memory: u32,
    pub gpus: u32,
    /// `None` when nobody is logged in: no port check.
    pub forward_port: Option<u16>,
}

/// Why a request does not fit.
#[derive(Debug, Clone, PartialEq)]
pub enum Shortage {
    /// The user already holds a booking that overlaps.
    OwnOverlap {
        start: NaiveDateTime,
        end: NaiveDateTime,
    },
    Cpus {
        at: NaiveDateTime,
        free: f64,
        wanted: f64,
    },
    Memory {
        at: NaiveDateTime,
        free: f64,
        wanted: u32,
    },
    /// Fewer GPUs than wanted are free for the whole window.
    Gpus {
        free: u32,
        wanted: u32,
        /// The bookings holding GPUs during the window: who, from, until.
        holders: Vec<(UserId, NaiveDateTime, NaiveDateTime)>,
    },
    /// Another booking in the window uses the same forward port.
    PortBusy {
        port: u16,
        holder: UserId,
    },
}

impl fmt::Display for Shortage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |time: &NaiveDateTime| format_minutes(*time);
        match self {
            Shortage::OwnOverlap { start, end } => {
                write!(formatter, "you already have a booking from {} to {} that overlaps", time(start), time(end))
            }
            Shortage::Cpus { at, free, wanted } => {
                write!(formatter, "not enough CPUs at {}: {} free, {} wanted", time(at), round(*free), wanted)
            }
            Shortage::Memory { at, free, wanted } => {
                write!(formatter, "not enough memory at {}: {} GB free, {} GB wanted", time(at), round(*free), wanted)
            }
            Shortage::Gpus { free, wanted, holders } => {
                write!(
                    formatter,
                    "not enough GPUs: {free} GPU{} free for the whole window, {wanted} wanted",
                    if *free == 1 { " is" } else { "s are" }
                )?;
                let shown: Vec<String> = holders
                    .iter()
                    .take(3)
                    .map(|(user, start, end)| format!("{user} {} to {}", time(start), time(end)))
                    .collect();
                if !shown.is_empty() {
                    let more =
                        if holders.len() > 3 { format!(" and {} more", holders.len() - 3) } else { String::new() };
                    write!(formatter, " (held by {}{more})", shown.join(", "))?;
                }
                Ok(())
            }
            Shortage::PortBusy { port, holder } => {
                write!(formatter, "forward port {port} is used by {holder} during this window")
            }
        }
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The smallest CPU share a booking may hold.
pub const MIN_CPUS: f64 = 1.0;

/// Why `cpus` cannot be a booking's CPU count, if it cannot: at least [`MIN_CPUS`], with at
/// most two decimals. The container gets `cpus × 10⁹` NanoCpus, and Docker reads 0 as "no
/// limit at all": a tiny request (1e-12) would count as nothing against capacity yet take
/// the whole host. Hundredths keep every count exact in the CSV and in NanoCpus.
pub fn cpus_problem(cpus: f64) -> Option<String> {
    let hundredths = (cpus * 100.0).round() / 100.0;
    if cpus.is_finite() && cpus >= MIN_CPUS && hundredths == cpus {
        None
    } else {
        Some(format!("cpus must be at least 1, with at most two decimals (such as 1, 2.5 or 12.25), found {cpus}"))
    }
}

/// A request outside the user's own limits (or the host's size) is refused before any
/// capacity is looked at: no window would ever fit it.
pub fn check_limits(cpus: f64, memory: u32, gpus: u32, limits: &UserLimits, host: &Host) -> Result<(), String> {
    if let Some(problem) = cpus_problem(cpus) {
        return Err(problem);
    }
    if memory < 1 {
        return Err("memory must be at least 1 GB".into());
    }
    let mut over = Vec::new();
    if cpus > limits.cpus.min(host.cpus) + EPSILON {
        over.push(format!("cpus {cpus} (your limit is {})", limits.cpus.min(host.cpus)));
    }
    if f64::from(memory) > limits.memory.min(host.memory) + EPSILON {
        over.push(format!("memory {memory} GB (your limit is {} GB)", limits.memory.min(host.memory).floor()));
    }
    if gpus > limits.gpus.min(host.gpus) {
        over.push(format!("gpus {gpus} (your limit is {})", limits.gpus.min(host.gpus)));
    }
    if over.is_empty() { Ok(()) } else { Err(format!("over your maximum: {}", over.join(", "))) }
}

/// Checks `request` against the `active` bookings (booking.csv + using.csv, minus any
/// booking being replaced) and returns the GPU ids it gets.
pub fn place(active: &[Booking], host: &Host, request: &Request) -> Result<Vec<u32>, Shortage> {
    let overlapping: Vec<&Booking> =
        active.iter().filter(|booking| booking.overlaps(request.start, request.end)).collect();
    check_without_gpus(&overlapping, host, request)?;
    let free = free_gpus(&overlapping, host.gpus);
    if (free.len() as u32) < request.gpus {
        return Err(Shortage::Gpus {
            free: free.len() as u32,
            wanted: request.gpus,
            holders: gpu_holders(&overlapping),
        });
    }
    Ok(choose_gpus(&free, request.gpus, active, request.start, request.end))
}

/// Like [`place`], but the request must keep exactly `gpus` (an extension keeps its devices).
pub fn place_keeping(active: &[Booking], host: &Host, request: &Request, gpus: &[u32]) -> Result<(), Shortage> {
    let overlapping: Vec<&Booking> =
        active.iter().filter(|booking| booking.overlaps(request.start, request.end)).collect();
    check_without_gpus(&overlapping, host, request)?;
    let free = free_gpus(&overlapping, host.gpus);
    let kept_free = gpus.iter().filter(|gpu| free.contains(gpu)).count() as u32;
    if kept_free < gpus.len() as u32 {
        return Err(Shortage::Gpus { free: kept_free, wanted: gpus.len() as u32, holders: gpu_holders(&overlapping) });
    }
    Ok(())
}

fn check_without_gpus(overlapping: &[&Booking], host: &Host, request: &Request) -> Result<(), Shortage> {
    if let Some(own) = overlapping.iter().find(|booking| Some(&booking.user_id) == request.user.as_ref()) {
        return Err(Shortage::OwnOverlap { start: own.start, end: own.end });
    }
    if let Some(port) = request.forward_port
        && let Some(holder) = overlapping.iter().find(|booking| booking.forward_port == port)
    {
        return Err(Shortage::PortBusy { port, holder: holder.user_id.clone() });
    }
    let limits = Limits::new(host, request);
    if let Some((at, peak)) =
        first_over(overlapping, request.start, |booking| cpu_hundredths(booking.cpus), limits.cpus)
    {
        return Err(Shortage::Cpus { at, free: (host.cpus - peak as f64 / 100.0).max(0.0), wanted: request.cpus });
    }
    if let Some((at, peak)) = first_over(overlapping, request.start, |booking| i64::from(booking.memory), limits.memory)
    {
        return Err(Shortage::Memory { at, free: (host.memory - peak as f64).max(0.0), wanted: request.memory });
    }
    Ok(())
}

/// The most a value is counted as: far beyond any host, and small enough that the sum over
/// any schedule stays far from `i64::MAX` (a value from a hand-edited file may be absurd).
const COUNT_LIMIT: f64 = 1e12;

/// CPUs in whole hundredths (the finest a booking may ask for), so that sums are exact:
/// 0.1 + 0.2 never drifts past 0.3.
fn cpu_hundredths(cpus: f64) -> i64 {
    (cpus * 100.0).round().clamp(-COUNT_LIMIT, COUNT_LIMIT) as i64
}

/// What the bookings beside a request may use at most at any moment, in hundredths of a CPU
/// and in GB; negative when the request alone is bigger than the host.
#[derive(Debug, Clone, Copy)]
struct Limits {
    cpus: i64,
    memory: i64,
}

impl Limits {
    fn new(host: &Host, request: &Request) -> Limits {
        // A host size may be any number (a fraction of a CPU or GB from an expression); what
        // fits is what stays within it, so it is rounded down to whole units. The slack
        // keeps 7.999999999 (an expression's rounding) as 8.
        let whole = |value: f64| (value + 1e-9).floor().clamp(-COUNT_LIMIT, COUNT_LIMIT) as i64;
        Limits {
            cpus: whole(host.cpus * 100.0) - cpu_hundredths(request.cpus),
            memory: whole(host.memory) - i64::from(request.memory),
        }
    }
}

/// Sweeps the boundaries of the overlapping bookings and returns the first moment (not
/// before `window_start`) at which their summed `amount` exceeds `limit`, with that sum.
fn first_over(
    overlapping: &[&Booking],
    window_start: NaiveDateTime,
    amount: impl Fn(&Booking) -> i64,
    limit: i64,
) -> Option<(NaiveDateTime, i64)> {
    if limit < 0 {
        // The request alone is bigger than the host: short from the first moment.
        let at_start = overlapping
            .iter()
            .filter(|booking| booking.start <= window_start && window_start < booking.end)
            .map(|booking| amount(booking))
            .sum();
        return Some((window_start, at_start));
    }
    let mut events: Vec<(NaiveDateTime, i64)> = Vec::with_capacity(overlapping.len() * 2);
    for booking in overlapping {
        events.push((booking.start.max(window_start), amount(booking)));
        events.push((booking.end, -amount(booking)));
    }
    events.sort_unstable();
    let mut usage = 0;
    let mut index = 0;
    while index < events.len() {
        // Every change at one moment at once: a booking ending at 10:00 frees its resources
        // for one starting at 10:00.
        let time = events[index].0;
        while index < events.len() && events[index].0 == time {
            usage += events[index].1;
            index += 1;
        }
        if usage > limit {
            return Some((time, usage));
        }
    }
    None
}

fn gpu_holders(overlapping: &[&Booking]) -> Vec<(UserId, NaiveDateTime, NaiveDateTime)> {
    let mut holders: Vec<(UserId, NaiveDateTime, NaiveDateTime)> = overlapping
        .iter()
        .filter(|booking| !booking.gpus.is_empty())
        .map(|booking| (booking.user_id.clone(), booking.start, booking.end))
        .collect();
    holders.sort_by_key(|holder| holder.1);
    holders
}

/// The GPUs no overlapping booking holds, in ascending order.
fn free_gpus(overlapping: &[&Booking], host_gpus: u32) -> Vec<u32> {
    (0..host_gpus).filter(|gpu| !overlapping.iter().any(|booking| booking.gpus.contains(gpu))).collect()
}

/// Among the free GPUs, prefer those least booked around the window (from a day before its
/// start to a day after its end), which spreads the load over the devices; ties go to lower ids.
fn choose_gpus(free: &[u32], count: u32, active: &[Booking], start: NaiveDateTime, end: NaiveDateTime) -> Vec<u32> {
    let around_start = start - Duration::days(1);
    let around_end = end + Duration::days(1);
    // One pass over the bookings (not one per free GPU): each adds its minutes near the
    // window to the free GPUs it holds. `free` is in ascending order (see `free_gpus`).
    let mut booked_minutes = vec![0i64; free.len()];
    for booking in active.iter().filter(|booking| booking.overlaps(around_start, around_end)) {
        let minutes = (booking.end.min(around_end) - booking.start.max(around_start)).num_minutes();
        for gpu in &booking.gpus {
            if let Ok(index) = free.binary_search(gpu) {
                booked_minutes[index] += minutes;
            }
        }
    }
    let mut ranked: Vec<(i64, u32)> = booked_minutes.into_iter().zip(free.iter().copied()).collect();
    ranked.sort();
    let mut chosen: Vec<u32> = ranked.into_iter().take(count as usize).map(|(_, gpu)| gpu).collect();
    chosen.sort_unstable();
    chosen
}

/// The earliest window of `length`, starting at `from` or later (up to `latest_start`), in
/// which `shape` fits; with the GPUs it would get. The earliest fitting start is always
/// `from` or the moment some booking ends (moving a window earlier only loses fit where a
/// booking ends inside it), so only those moments are tried, in order.
///
/// The answer is exactly that of trying [`place`] at each of those moments (the property
/// tests hold it to that search), found in O(n log n): the boundaries are sorted once, and
/// each moment is tested against the CPU and memory in use over its window (a range maximum),
/// against the starts its own and its port's bookings rule out, and against each GPU's busy
/// spans. Only the moment that passes all of these is given to [`place`], which also picks
/// its GPUs.
pub fn earliest_window(
    active: &[Booking],
    host: &Host,
    shape: &Request,
    length: Duration,
    from: NaiveDateTime,
    latest_start: NaiveDateTime,
) -> Option<(NaiveDateTime, Vec<u32>)> {
    let mut candidates: Vec<NaiveDateTime> = active
        .iter()
        .map(|booking| ceil_to_slot(booking.end))
        .filter(|end| *end > from && *end <= latest_start)
        .collect();
    candidates.push(from);
    candidates.sort_unstable();
    candidates.dedup();
    let limits = Limits::new(host, shape);
    if limits.cpus < 0 || limits.memory < 0 || shape.gpus > host.gpus {
        return None;
    }
    let cpus = Usage::new(active, |booking| cpu_hundredths(booking.cpus));
    let memory = Usage::new(active, |booking| i64::from(booking.memory));
    // Starts ruled out by the user's own bookings and by those using the same port.
    let blocked = Blocked::new(
        active
            .iter()
            .filter(|booking| {
                Some(&booking.user_id) == shape.user.as_ref() || Some(booking.forward_port) == shape.forward_port
            })
            .map(|booking| (booking.start, booking.end)),
        length,
    );
    // Per GPU that some booking holds, the starts at which it is busy for part of the
    // window; the host's other GPUs are free for any window.
    let mut held: BTreeMap<u32, Vec<(NaiveDateTime, NaiveDateTime)>> = BTreeMap::new();
    for booking in active {
        for gpu in booking.gpus.iter().filter(|gpu| **gpu < host.gpus) {
            held.entry(*gpu).or_default().push((booking.start, booking.end));
        }
    }
    let never_held = host.gpus - held.len() as u32;
    let gpu_busy: Vec<Blocked> = if shape.gpus <= never_held {
        Vec::new()
    } else {
        held.into_values().map(|spans| Blocked::new(spans.into_iter(), length)).collect()
    };
    let gpus_wanted = shape.gpus.saturating_sub(never_held) as usize;
    candidates.into_iter().find_map(|start| {
        let end = start + length;
        let fits = !blocked.contains(start)
            && cpus.peak(start, end) <= limits.cpus
            && memory.peak(start, end) <= limits.memory
            && gpu_busy.iter().filter(|busy| !busy.contains(start)).take(gpus_wanted).count() == gpus_wanted;
        if !fits {
            return None;
        }
        let request = Request { start, end, ..shape.clone() };
        place(active, host, &request).ok().map(|gpus| (start, gpus))
    })
}

/// The summed amount of the active bookings over time, as a step function: `values[i]` holds
/// from `times[i]` until `times[i + 1]` (and 0 before `times[0]`), with a sparse table for the
/// highest value over any run of steps.
struct Usage {
    times: Vec<NaiveDateTime>,
    /// `maxima[k][i]`: the highest of `values[i .. i + 2^k]`; `maxima[0]` are the values.
    maxima: Vec<Vec<i64>>,
}

impl Usage {
    fn new(active: &[Booking], amount: impl Fn(&Booking) -> i64) -> Usage {
        let mut events: Vec<(NaiveDateTime, i64)> = Vec::with_capacity(active.len() * 2);
        for booking in active.iter().filter(|booking| booking.start < booking.end) {
            events.push((booking.start, amount(booking)));
            events.push((booking.end, -amount(booking)));
        }
        events.sort_unstable();
        let mut times = Vec::with_capacity(events.len());
        let mut values = Vec::with_capacity(events.len());
        let mut usage = 0;
        for (index, (time, change)) in events.iter().enumerate() {
            usage += change;
            if events.get(index + 1).is_none_or(|next| next.0 != *time) {
                times.push(*time);
                values.push(usage);
            }
        }
        let mut maxima = vec![values];
        let mut span = 1;
        while 2 * span <= maxima[0].len() {
            let previous = maxima.last().expect("the values");
            let next = (0..previous.len() - span).map(|index| previous[index].max(previous[index + span])).collect();
            maxima.push(next);
            span *= 2;
        }
        Usage { times, maxima }
    }

    /// The highest summed amount at any moment of `[start, end)`.
    fn peak(&self, start: NaiveDateTime, end: NaiveDateTime) -> i64 {
        // The step holding `start` (none before the first boundary: nothing is in use
        // there), through the last step that begins before `end`.
        let first = self.times.partition_point(|time| *time <= start);
        let last = self.times.partition_point(|time| *time < end);
        let mut peak = if first == 0 { 0 } else { self.maxima[0][first - 1] };
        if first < last {
            let level = (usize::BITS - 1 - (last - first).leading_zeros()) as usize;
            let span = 1 << level;
            peak = peak.max(self.maxima[level][first]).max(self.maxima[level][last - span]);
        }
        peak
    }
}

/// The window starts ruled out by some bookings: a window `[s, s + length)` shares a moment
/// with a booking `[b, e)` exactly when `b - length < s < e` (also for a booking with
/// `e == b`, which [`Booking::overlaps`] counts when it lies strictly inside the window). Kept
/// as the disjoint open spans of their union, sorted.
struct Blocked {
    spans: Vec<(NaiveDateTime, NaiveDateTime)>,
}

impl Blocked {
    /// From the bookings' `(start, end)`.
    fn new(bookings: impl Iterator<Item = (NaiveDateTime, NaiveDateTime)>, length: Duration) -> Blocked {
        let mut open: Vec<(NaiveDateTime, NaiveDateTime)> =
            bookings.map(|(start, end)| (start - length, end)).filter(|(low, high)| low < high).collect();
        open.sort_unstable();
        let mut spans: Vec<(NaiveDateTime, NaiveDateTime)> = Vec::with_capacity(open.len());
        for (low, high) in open {
            match spans.last_mut() {
                // Open spans that share more than an end point make one; `(a, b)` and
                // `(b, c)` leave `b` itself free.
                Some(last) if low < last.1 => last.1 = last.1.max(high),
                _ => spans.push((low, high)),
            }
        }
        Blocked { spans }
    }

    fn contains(&self, start: NaiveDateTime) -> bool {
        let before = self.spans.partition_point(|(low, _)| *low < start);
        before > 0 && start < self.spans[before - 1].1
    }
}

fn ceil_to_slot(time: NaiveDateTime) -> NaiveDateTime {
    let floor = super::floor_to_slot(time);
    if floor == time { time } else { floor + super::slot() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples::{self, at, user};

    fn booking(name: &str, start: &str, end: &str, cpus: f64, memory: u32, gpus: &[u32], port: u16) -> Booking {
        Booking { cpus, memory, forward_port: port, ..examples::booking(name, start, end, gpus) }
    }

    fn request(name: &str, start: &str, end: &str, cpus: f64, memory: u32, gpus: u32, port: u16) -> Request {
        Request { user: Some(user(name)), start: at(start), end: at(end), cpus, memory, gpus, forward_port: Some(port) }
    }

    const HOST: Host = Host { cpus: 8.0, memory: 40.0, gpus: 4 };

    #[test]
    fn cpus_are_whole_or_hundredths_and_at_least_one() {
        for accepted in [1.0, 1.5, 2.25, 4.35, 8.0, 62.0, 12.01] {
            assert_eq!(cpus_problem(accepted), None, "{accepted}");
        }
        for refused in [1e-12, 0.0, 0.5, 0.99, 1.234, 1.005, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(cpus_problem(refused).is_some(), "{refused} was accepted");
        }
        let limits = UserLimits { cpus: 8.0, memory: 8.0, gpus: 1, backup_space: None, work_space: None };
        let refused = check_limits(1e-12, 1, 0, &limits, &HOST).unwrap_err();
        assert!(refused.contains("at least 1"), "{refused}");
    }

    #[test]
    fn a_gpu_busy_for_part_of_the_window_is_not_given() {
        // GPU 0 is taken 12:00-13:00 only; the original would have handed it out for 10:00-14:00.
        let active = vec![
            booking("a", "2026-11-24 12:00", "2026-11-24 13:00", 1.0, 1, &[0], 10001),
            booking("b", "2026-11-24 09:00", "2026-11-24 10:00", 1.0, 1, &[1, 2], 10002),
        ];
        let gpus =
            place(&active, &HOST, &request("c", "2026-11-24 10:00", "2026-11-24 14:00", 1.0, 1, 2, 10003)).unwrap();
        assert!(!gpus.contains(&0));
        assert_eq!(gpus.len(), 2);
        let refused = place(&active, &HOST, &request("c", "2026-11-24 10:00", "2026-11-24 14:00", 1.0, 1, 4, 10003));
        assert!(matches!(refused, Err(Shortage::Gpus { free: 3, wanted: 4, .. })));
    }

    #[test]
    fn back_to_back_bookings_share_resources() {
        let active = vec![booking("a", "2026-11-24 09:00", "2026-11-24 10:00", 8.0, 40, &[0, 1, 2, 3], 10001)];
        let gpus =
            place(&active, &HOST, &request("b", "2026-11-24 10:00", "2026-11-24 11:00", 8.0, 40, 4, 10002)).unwrap();
        assert_eq!(gpus, vec![0, 1, 2, 3]);
    }

    #[test]
    fn cpu_shortage_names_the_first_short_slot() {
        let active = vec![
            booking("a", "2026-11-24 09:00", "2026-11-24 12:00", 4.5, 1, &[], 10001),
            booking("b", "2026-11-24 11:00", "2026-11-24 12:00", 3.5, 1, &[], 10002),
        ];
        assert!(place(&active, &HOST, &request("c", "2026-11-24 09:00", "2026-11-24 11:00", 3.5, 1, 0, 10003)).is_ok());
        let refused = place(&active, &HOST, &request("c", "2026-11-24 09:00", "2026-11-24 12:00", 0.5, 1, 0, 10003));
        assert_eq!(refused, Err(Shortage::Cpus { at: at("2026-11-24 11:00"), free: 0.0, wanted: 0.5 }));
    }

    #[test]
    fn own_overlap_and_port_clash_are_refused() {
        let active = vec![booking("a", "2026-11-24 09:00", "2026-11-24 12:00", 1.0, 1, &[], 10001)];
        assert!(matches!(
            place(&active, &HOST, &request("a", "2026-11-24 11:30", "2026-11-24 13:00", 1.0, 1, 0, 10001)),
            Err(Shortage::OwnOverlap { .. })
        ));
        assert!(matches!(
            place(&active, &HOST, &request("b", "2026-11-24 11:30", "2026-11-24 13:00", 1.0, 1, 0, 10001)),
            Err(Shortage::PortBusy { .. })
        ));
    }

    #[test]
    fn gpu_choice_prefers_devices_busy_nearby_then_low_ids() {
        let active = vec![booking("a", "2026-11-24 06:00", "2026-11-24 09:00", 1.0, 1, &[2], 10001)];
        let gpus =
            place(&active, &HOST, &request("b", "2026-11-24 09:00", "2026-11-24 10:00", 1.0, 1, 1, 10002)).unwrap();
        assert_eq!(gpus, vec![0]);
    }

    #[test]
    fn earliest_window_is_found_after_the_blocking_booking() {
        let active = vec![booking("a", "2026-11-24 09:00", "2026-11-25 09:00", 1.0, 1, &[0, 1, 2, 3], 10001)];
        let shape = request("b", "2026-11-24 09:00", "2026-11-24 10:00", 1.0, 1, 1, 10002);
        let found =
            earliest_window(&active, &HOST, &shape, Duration::hours(2), at("2026-11-24 09:00"), at("2026-12-08 09:00"));
        assert_eq!(found, Some((at("2026-11-25 09:00"), vec![0])));
        let too_big = Request { gpus: 5, ..shape };
        assert_eq!(
            earliest_window(
                &active,
                &HOST,
                &too_big,
                Duration::hours(2),
                at("2026-11-24 09:00"),
                at("2026-12-08 09:00")
            ),
            None
        );
    }
}
