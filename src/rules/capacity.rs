//! Capacity: does a request fit the host next to the active bookings, and which GPUs does it
//! get?
//!
//! For every 30-minute slot of the window, the CPUs and memory of the overlapping bookings
//! plus the request stay within the host's `max`; the request gets GPU ids that no
//! overlapping booking holds at any moment of the window (a container keeps its devices
//! from start to end); a user's own bookings never overlap; a forward port is not used by
//! two bookings at once. Usage only changes at booking boundaries, so the checks sweep those
//! boundaries instead of walking every slot.

use std::fmt;

use chrono::{Duration, NaiveDateTime};

use crate::config::{UserId, UserLimits};
use crate::schedule::Booking;

/// Slack for sums of fractional CPUs (4.5 + 3.5 must fit 8).
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
        let time = |time: &NaiveDateTime| time.format("%Y-%m-%d %H:%M").to_string();
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
    let (cpu_peak_at, cpu_peak) = peak(overlapping, request.start, |booking| booking.cpus, host.cpus - request.cpus);
    if let Some(at) = cpu_peak_at {
        return Err(Shortage::Cpus { at, free: (host.cpus - cpu_peak).max(0.0), wanted: request.cpus });
    }
    let memory_room = host.memory - f64::from(request.memory);
    let (memory_peak_at, memory_peak) =
        peak(overlapping, request.start, |booking| f64::from(booking.memory), memory_room);
    if let Some(at) = memory_peak_at {
        return Err(Shortage::Memory { at, free: (host.memory - memory_peak).max(0.0), wanted: request.memory });
    }
    Ok(())
}

/// Sweeps the boundaries of the overlapping bookings and returns the first moment (not
/// before `window_start`) at which their summed `amount` exceeds `room`, with that sum.
fn peak(
    overlapping: &[&Booking],
    window_start: NaiveDateTime,
    amount: impl Fn(&Booking) -> f64,
    room: f64,
) -> (Option<NaiveDateTime>, f64) {
    if room < -EPSILON {
        // The request alone is bigger than the host: short from the first moment.
        let at_start = overlapping
            .iter()
            .filter(|booking| booking.start <= window_start && window_start < booking.end)
            .map(|booking| amount(booking))
            .sum();
        return (Some(window_start), at_start);
    }
    let mut events: Vec<(NaiveDateTime, f64)> = Vec::with_capacity(overlapping.len() * 2);
    for booking in overlapping {
        events.push((booking.start.max(window_start), amount(booking)));
        events.push((booking.end, -amount(booking)));
    }
    // At equal times, ends (negative) come first: a booking ending at 10:00 frees its
    // resources for one starting at 10:00.
    events.sort_by(|left, right| left.0.cmp(&right.0).then(left.1.total_cmp(&right.1)));
    let mut usage = 0.0;
    let mut index = 0;
    while index < events.len() {
        let time = events[index].0;
        while index < events.len() && events[index].0 == time {
            usage += events[index].1;
            index += 1;
        }
        if usage > room + EPSILON {
            return (Some(time), usage);
        }
    }
    (None, usage)
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

fn free_gpus(overlapping: &[&Booking], host_gpus: u32) -> Vec<u32> {
    (0..host_gpus).filter(|gpu| !overlapping.iter().any(|booking| booking.gpus.contains(gpu))).collect()
}

/// Among the free GPUs, prefer those least booked around the window (from a day before its
/// start to a day after its end), which spreads the load over the devices; ties go to lower ids.
fn choose_gpus(free: &[u32], count: u32, active: &[Booking], start: NaiveDateTime, end: NaiveDateTime) -> Vec<u32> {
    let around_start = start - Duration::days(1);
    let around_end = end + Duration::days(1);
    let mut ranked: Vec<(i64, u32)> = free
        .iter()
        .map(|gpu| {
            let booked_minutes: i64 = active
                .iter()
                .filter(|booking| booking.gpus.contains(gpu) && booking.overlaps(around_start, around_end))
                .map(|booking| (booking.end.min(around_end) - booking.start.max(around_start)).num_minutes())
                .sum();
            (booked_minutes, *gpu)
        })
        .collect();
    ranked.sort();
    let mut chosen: Vec<u32> = ranked.into_iter().take(count as usize).map(|(_, gpu)| gpu).collect();
    chosen.sort_unstable();
    chosen
}

/// The earliest window of `length`, starting at `from` or later (up to `latest_start`), in
/// which `shape` fits; with the GPUs it would get. The earliest fitting start is always
/// `from` or the moment some booking ends (moving a window earlier only loses fit where a
/// booking ends inside it), so only those moments are tried.
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
    candidates.into_iter().find_map(|start| {
        let request = Request { start, end: start + length, ..shape.clone() };
        place(active, host, &request).ok().map(|gpus| (start, gpus))
    })
}

fn ceil_to_slot(time: NaiveDateTime) -> NaiveDateTime {
    let floor = super::floor_to_slot(time);
    if floor == time { time } else { floor + super::slot() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    fn booking(name: &str, start: &str, end: &str, cpus: f64, memory: u32, gpus: &[u32], port: u16) -> Booking {
        Booking {
            start: at(start),
            end: at(end),
            user_id: user(name),
            cpus,
            memory,
            gpus: gpus.to_vec(),
            forward_port: port,
            image: None,
            extra_command: None,
        }
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
