//! Property tests of the booking rules (`gpu_booking::rules`), checked against an independent
//! brute-force model that walks every 30-minute slot.
//!
//! A random host (fractional CPUs and memory, 0–8 GPUs) receives a random sequence of
//! requests from several users on a 30-minute grid spanning a few days. Each request goes to
//! [`capacity::place`]; an accepted one joins the active list with the GPU ids it got. The
//! model keeps, per slot, the CPUs (in half-CPU units, so sums are exact), memory, GPUs,
//! users and ports in use, and for every request decides on its own whether it fits:
//!
//! - accepted ⇒ the model agrees it fits: every slot of the window stays within the host's
//!   CPUs and memory, the user has no overlapping booking, no overlapping booking uses the
//!   port, and the GPU ids are distinct, `< host.gpus`, exactly as many as asked, and held by
//!   no booking at any slot of the window (and chosen as documented: least booked around the
//!   window, ties to lower ids);
//! - refused ⇒ the model agrees it does not fit (no wrong refusals), and the [`Shortage`]
//!   names a reason the model finds (the slot, the free amount and the wanted amount).
//!
//! After every step the same model also checks [`capacity::earliest_window`] (the window it
//! returns fits, and no earlier grid start from `from` fits; `None` only when no start up to
//! `latest_start` fits) and [`capacity::place_keeping`] (extending a booking with the same
//! GPUs). [`capacity::check_limits`] and the time input (`rules::time_input`) get their own
//! properties.
//!
//! `earliest_window` is a sweep; [`brute_force_earliest`], the search it replaced (try
//! [`capacity::place`] at `from` and at every booking's end, in order), is kept here as its
//! oracle: on every schedule, also ones no sequence of `place` could build (overlapping
//! bookings, a GPU held twice, times off the grid, CPUs in hundredths on a host of any size),
//! both give the same start and the same GPUs.

use chrono::{Duration, NaiveDate, NaiveDateTime, Timelike};
use gpu_booking::model::{Booking, UserId, UserLimits};
use gpu_booking::rules::capacity::{self, Host, Request, Shortage};
use gpu_booking::rules::time_input::{self, Horizon};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// Bookings start within this many 30-minute slots of [`base`] (three days).
const START_SLOTS: u32 = 3 * 48;
/// The longest window generated, in slots.
const MAX_LENGTH: u32 = 120;
/// The latest slot any window can reach (starts of `earliest_window` probes included).
const TABLE_SLOTS: usize = (2 * START_SLOTS + 2 * MAX_LENGTH) as usize;
const USERS: usize = 5;
const FIRST_PORT: u16 = 10001;

fn config() -> ProptestConfig {
    // No regression files: the test must not write next to itself.
    ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() }
}

fn base() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(0, 0, 0).unwrap()
}

fn at_slot(slot: u32) -> NaiveDateTime {
    base() + Duration::minutes(30 * i64::from(slot))
}

/// The slot index of a grid time; panics on a time off the grid (itself a finding).
fn slot_of(time: NaiveDateTime) -> u32 {
    let minutes = (time - base()).num_minutes();
    assert!(minutes >= 0 && minutes % 30 == 0 && time.second() == 0, "{time} is not on the 30-minute grid");
    u32::try_from(minutes / 30).unwrap()
}

fn user_name(user: usize) -> String {
    format!("u{user}")
}

fn user_id(user: usize) -> UserId {
    UserId::parse(&user_name(user)).unwrap()
}

fn halves(value: u32) -> f64 {
    f64::from(value) / 2.0
}

// ---------------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Random request sequences: every decision of `place`, `earliest_window` and
    /// `place_keeping` agrees with the slot-by-slot model, and the schedule never goes over.
    #[test]
    fn placement_agrees_with_the_slot_model(host in host_strategy(), steps in prop::collection::vec(step_strategy(), 1..40)) {
        let mut model = Model::new(host);
        for step in &steps {
            let request = request_of(step, &host);
            check_place(&mut model, &request)?;

            let mut shape = request.clone();
            if step.probe_anonymous {
                // `book free` without a login: no own-overlap and no port check.
                shape.user = None;
                shape.port = None;
            }
            check_earliest(&model, &shape, step.probe_from, step.probe_from + step.probe_span)?;
            check_extension(&model, step.extend_pick, step.extend_by)?;
        }
    }

    /// `earliest_window` gives exactly the start and GPUs of the search it replaced, on any
    /// schedule and host, for any request shape (with and without a user and a port).
    #[test]
    fn earliest_window_matches_the_search_it_replaced(
        active in prop::collection::vec(loose_booking_strategy(), 0..60),
        host in loose_host_strategy(),
        user in prop::option::of(0..USERS),
        port in prop::option::of(0u16..4),
        hundredths in 100u32..=2000,
        memory in 1u32..=96,
        gpus in 0u32..=9,
        slots in 1i64..=120,
        from in 0i64..5 * 48,
        span in 0i64..8 * 48,
    ) {
        let from = base() + Duration::minutes(30 * from);
        let length = Duration::minutes(30 * slots);
        let shape = Request {
            user: user.map(user_id),
            start: from,
            end: from + length,
            cpus: f64::from(hundredths) / 100.0,
            memory,
            gpus,
            forward_port: port.map(|port| FIRST_PORT + port),
        };
        let latest = from + Duration::minutes(30 * span);
        let found = capacity::earliest_window(&active, &host, &shape, length, from, latest);
        let searched = brute_force_earliest(&active, &host, &shape, length, from..=latest);
        prop_assert_eq!(found, searched, "host {:?}, shape {:?}", host, shape);
    }

    /// Back-to-back windows share resources: a booking ending at a slot boundary frees all
    /// of the host for one starting there.
    #[test]
    fn back_to_back_bookings_get_the_whole_host(host in host_strategy(), start in 0..START_SLOTS, first in 1u32..=48, second in 1u32..=48) {
        let whole = |user: usize, start: u32, end: u32| ModelRequest {
            user: Some(user),
            start,
            end,
            cpu_halves: host.cpu_halves,
            memory: (host.memory_halves / 2).max(1),
            gpus: host.gpus,
            port: Some(port_of(user)),
        };
        let mut model = Model::new(host);
        let a = whole(0, start, start + first);
        check_place(&mut model, &a)?;
        prop_assert_eq!(model.bookings.len(), 1, "the whole host, on an empty schedule, must fit");
        let b = whole(1, start + first, start + first + second);
        check_place(&mut model, &b)?;
        prop_assert_eq!(model.bookings.len(), 2, "a window starting where the other ends must fit");
        let c = whole(2, start + first - 1, start + first + 1);
        check_place(&mut model, &c)?;
        prop_assert_eq!(model.bookings.len(), 2);
    }

    /// A request larger than the whole host never fits, whatever the schedule — also when no
    /// booking overlaps its window (`book free` and `place` are not always behind
    /// `check_limits`).
    #[test]
    fn a_request_larger_than_the_host_is_refused(
        host in host_strategy(),
        start in 0..START_SLOTS,
        length in 1u32..=48,
        over_cpus in any::<bool>(),
        extra in 1u32..=8,
        others in prop::collection::vec(step_strategy(), 0..6),
    ) {
        let mut model = Model::new(host);
        for step in &others {
            check_place(&mut model, &request_of(step, &host))?;
        }
        let request = ModelRequest {
            user: Some(USERS),
            start,
            end: start + length,
            cpu_halves: if over_cpus { host.cpu_halves + extra } else { 1 },
            memory: if over_cpus { 1 } else { host.memory_halves / 2 + extra },
            gpus: 0,
            port: Some(port_of(USERS)),
        };
        let verdict = model.judge(&request);
        prop_assert!(!verdict.fits());
        let placed = capacity::place(&model.active(), &host.host(), &request.request());
        prop_assert!(placed.is_err(), "{:?} on host {:?} was accepted with GPUs {:?}", request.request(), host.host(), placed);
        model.check_shortage(&request, &verdict, placed.as_ref().unwrap_err())?;
        let shape = ModelRequest { user: None, port: None, ..request.clone() };
        let found = capacity::earliest_window(
            &model.active(), &host.host(), &shape.request(), Duration::minutes(30 * i64::from(length)),
            at_slot(start), at_slot(start + START_SLOTS));
        prop_assert_eq!(found.clone(), None, "earliest_window offered {:?} for {:?} on host {:?}", found, shape.request(), host.host());
    }

    /// `check_limits`: accepted exactly when cpus ≥ 1, memory ≥ 1, and each of cpus, memory,
    /// gpus is within both the user's limit and the host.
    #[test]
    fn limits_are_the_smaller_of_user_and_host(
        cpus in 0u32..=40,
        memory in 0u32..=70,
        gpus in 0u32..=10,
        limit_cpus in 1u32..=40,
        limit_memory in 1u32..=140,
        limit_gpus in 0u32..=10,
        host in host_strategy(),
    ) {
        let limits = UserLimits {
            cpus: halves(limit_cpus),
            memory: halves(limit_memory),
            gpus: limit_gpus,
            backup_space: None,
            work_space: None,
        };
        let expected = cpus >= 2
            && memory >= 1
            && cpus <= limit_cpus.min(host.cpu_halves)
            && 2 * memory <= limit_memory.min(host.memory_halves)
            && gpus <= limit_gpus.min(host.gpus);
        let result = capacity::check_limits(halves(cpus), memory, gpus, &limits, &host.host());
        prop_assert_eq!(result.is_ok(), expected, "cpus {} memory {} gpus {} limits {:?} host {:?}: {:?}",
            halves(cpus), memory, gpus, limits, host.host(), result);
    }

    /// A CPU count is taken exactly when it is at least 1 and a whole number of hundredths
    /// (so the container's NanoCpus is never 0, which Docker reads as "no limit"), whatever
    /// else is asked: anything finer, smaller, negative or not a number is refused.
    #[test]
    fn cpus_are_at_least_one_in_hundredths(
        hundredths in 0i64..=10_000,
        nudge in prop_oneof![3 => Just(0.0), 1 => (-1e-3f64..1e-3).prop_filter("a real nudge", |nudge| nudge.abs() > 1e-9)],
        negative in any::<bool>(),
        raw in any::<f64>(),
    ) {
        let limits = UserLimits { cpus: 1e6, memory: 1e6, gpus: 64, backup_space: None, work_space: None };
        let host = Host { cpus: 1e6, memory: 1e6, gpus: 64 };
        let typed = format!("{}{}.{:02}", if negative { "-" } else { "" }, hundredths / 100, hundredths % 100);
        let cpus: f64 = typed.parse().unwrap();
        let expected = !negative && hundredths >= 100;
        prop_assert_eq!(capacity::cpus_problem(cpus).is_none(), expected, "{}", typed);
        prop_assert_eq!(capacity::check_limits(cpus, 1, 0, &limits, &host).is_ok(), expected, "{}", typed);
        let nudged = cpus + nudge;
        if nudge != 0.0 {
            prop_assert!(capacity::cpus_problem(nudged).is_some(), "{} was accepted", nudged);
        }
        if capacity::cpus_problem(raw).is_none() {
            prop_assert!(raw >= 1.0 && (raw * 100.0).round() / 100.0 == raw, "{} was accepted", raw);
        }
    }

    /// Time input: `now`, `N-day`, `N-week`, `N-hour` (ends), combinations and absolute
    /// dates give exactly the moment they name, on the grid, within the 14-day horizons;
    /// anything else is an error.
    #[test]
    fn time_input_names_the_right_slot(
        now_minutes in 0i64..(14 * 24 * 60),
        weeks in 0i64..=3,
        days in 0i64..=15,
        absolute_slot in 0i64..(32 * 48),
        odd_minute in prop_oneof![3 => Just(None), 1 => (1u32..60).prop_filter("off the grid", |minute| *minute != 30).prop_map(Some)],
        use_absolute in any::<bool>(),
        hours in 1i64..=400,
    ) {
        let horizon = Horizon::default();
        let now = base() + Duration::minutes(now_minutes);
        let current = base() + Duration::minutes(now_minutes - now_minutes % 30);
        let latest = current + Duration::days(14);

        prop_assert_eq!(time_input::parse_start("now", now, horizon), Ok(current));

        // Relative: "N-week M-day" (a zero part is left out; out-of-range parts are errors).
        let mut words = Vec::new();
        if weeks > 0 { words.push(format!("{weeks}-week")); }
        if days > 0 { words.push(format!("{days}-day")); }
        if !words.is_empty() {
            let text = words.join(" ");
            let target = current + Duration::weeks(weeks) + Duration::days(days);
            let valid_words = weeks <= 2 && days <= 14;
            let result = time_input::parse_start(&text, now, horizon);
            if valid_words && target <= latest {
                prop_assert_eq!(result, Ok(target), "{}", text);
            } else {
                prop_assert!(result.is_err(), "{:?} from {} gave {:?}", text, now, result);
            }
        }

        // Absolute: "YYYY MM DD hh mm".
        if use_absolute {
            let target = base() - Duration::days(1) + Duration::minutes(30 * absolute_slot);
            let minute = odd_minute.unwrap_or(target.minute());
            let text = format!("{} {:02} {:02} {:02} {:02}", target.format("%Y"), target.format("%m"), target.format("%d"), target.hour(), minute);
            let named = target.with_minute(minute).unwrap();
            let result = time_input::parse_start(&text, now, horizon);
            if odd_minute.is_none() && named >= current && named <= latest {
                prop_assert_eq!(result, Ok(named), "{}", text);
            } else {
                prop_assert!(result.is_err(), "{:?} from {} gave {:?}", text, now, result);
            }
        }

        // Ends: "N-hour" counts from the start; at most 14 days long.
        let start = current + Duration::days(days.min(14));
        let result = time_input::parse_end(&format!("{hours}-hour"), start, horizon);
        if hours <= 14 * 24 {
            prop_assert_eq!(result, Ok(start + Duration::hours(hours)));
        } else {
            prop_assert!(result.is_err(), "{}-hour gave {:?}", hours, result);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The model: everything in whole units (half CPUs, half GB for the host's memory, slots).
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct ModelHost {
    cpu_halves: u32,
    memory_halves: u32,
    gpus: u32,
}

impl ModelHost {
    fn host(&self) -> Host {
        Host { cpus: halves(self.cpu_halves), memory: halves(self.memory_halves), gpus: self.gpus }
    }
}

#[derive(Debug, Clone)]
struct ModelRequest {
    user: Option<usize>,
    start: u32,
    end: u32,
    cpu_halves: u32,
    memory: u32,
    gpus: u32,
    port: Option<u16>,
}

impl ModelRequest {
    fn request(&self) -> Request {
        Request {
            user: self.user.map(user_id),
            start: at_slot(self.start),
            end: at_slot(self.end),
            cpus: halves(self.cpu_halves),
            memory: self.memory,
            gpus: self.gpus,
            forward_port: self.port,
        }
    }

    fn moved_to(&self, start: u32) -> ModelRequest {
        ModelRequest { start, end: start + (self.end - self.start), ..self.clone() }
    }
}

#[derive(Debug, Clone)]
struct ModelBooking {
    user: usize,
    start: u32,
    end: u32,
    cpu_halves: u32,
    memory: u32,
    gpus: Vec<u32>,
    port: u16,
}

impl ModelBooking {
    fn booking(&self) -> Booking {
        Booking {
            start: at_slot(self.start),
            end: at_slot(self.end),
            user_id: user_id(self.user),
            cpus: halves(self.cpu_halves),
            memory: self.memory,
            gpus: self.gpus.clone(),
            forward_port: self.port,
            image: None,
            extra_command: None,
        }
    }

    fn covers(&self, slot: u32) -> bool {
        self.start <= slot && slot < self.end
    }
}

/// What is in use during one slot.
#[derive(Debug, Clone, Default)]
struct SlotUse {
    cpu_halves: u32,
    memory: u32,
    /// Bit `g`: GPU `g` is held.
    gpus: u32,
    /// Bit `u`: user `u` holds a booking.
    users: u32,
    /// `(port, user)` of every booking in the slot.
    ports: Vec<(u16, usize)>,
}

/// The active bookings, slot by slot.
struct Model {
    host: ModelHost,
    bookings: Vec<ModelBooking>,
    slots: Vec<SlotUse>,
}

/// The model's view of one request.
#[derive(Debug, Default)]
struct Verdict {
    /// Own bookings that share a slot with the window.
    own: Vec<(u32, u32)>,
    /// Users whose booking in the window uses the requested port.
    port_holders: Vec<usize>,
    /// `(slot, CPU halves in use)` for each slot where the request would not fit.
    cpus_over: Vec<(u32, u32)>,
    /// `(slot, GB in use)` for each slot where the request would not fit.
    memory_over: Vec<(u32, u32)>,
    /// GPUs that no booking holds at any slot of the window.
    free_gpus: Vec<u32>,
    wanted_gpus: u32,
}

impl Verdict {
    fn fits(&self) -> bool {
        self.own.is_empty()
            && self.port_holders.is_empty()
            && self.cpus_over.is_empty()
            && self.memory_over.is_empty()
            && self.free_gpus.len() as u32 >= self.wanted_gpus
    }
}

impl Model {
    fn new(host: ModelHost) -> Model {
        Model { host, bookings: Vec::new(), slots: vec![SlotUse::default(); TABLE_SLOTS] }
    }

    fn active(&self) -> Vec<Booking> {
        self.bookings.iter().map(ModelBooking::booking).collect()
    }

    /// Adds an accepted booking and re-checks, slot by slot, that the whole schedule is
    /// still within the host: sums, GPUs, users and ports.
    fn add(&mut self, booking: ModelBooking) {
        for slot in booking.start..booking.end {
            let used = &mut self.slots[slot as usize];
            used.cpu_halves += booking.cpu_halves;
            used.memory += booking.memory;
            assert!(used.cpu_halves <= self.host.cpu_halves, "slot {} over the host's CPUs", at_slot(slot));
            assert!(2 * used.memory <= self.host.memory_halves, "slot {} over the host's memory", at_slot(slot));
            for gpu in &booking.gpus {
                assert!(used.gpus & (1 << gpu) == 0, "GPU {gpu} given twice at {}", at_slot(slot));
                used.gpus |= 1 << gpu;
            }
            assert!(
                used.users & (1 << booking.user) == 0,
                "{} holds two bookings at {}",
                user_name(booking.user),
                at_slot(slot)
            );
            used.users |= 1 << booking.user;
            assert!(
                used.ports.iter().all(|(port, _)| *port != booking.port),
                "port {} used twice at {}",
                booking.port,
                at_slot(slot)
            );
            used.ports.push((booking.port, booking.user));
        }
        self.bookings.push(booking);
    }

    fn judge(&self, request: &ModelRequest) -> Verdict {
        let mut verdict = Verdict { wanted_gpus: request.gpus, ..Verdict::default() };
        let mut busy_gpus = 0u32;
        let mut own_seen = false;
        for slot in request.start..request.end {
            let used = &self.slots[slot as usize];
            if let Some(user) = request.user
                && used.users & (1 << user) != 0
            {
                own_seen = true;
            }
            if let Some(port) = request.port {
                for (held, holder) in &used.ports {
                    if *held == port && !verdict.port_holders.contains(holder) {
                        verdict.port_holders.push(*holder);
                    }
                }
            }
            if used.cpu_halves + request.cpu_halves > self.host.cpu_halves {
                verdict.cpus_over.push((slot, used.cpu_halves));
            }
            if 2 * (used.memory + request.memory) > self.host.memory_halves {
                verdict.memory_over.push((slot, used.memory));
            }
            busy_gpus |= used.gpus;
        }
        if own_seen {
            let user = request.user.unwrap();
            verdict.own = self
                .bookings
                .iter()
                .filter(|booking| booking.user == user && (request.start..request.end).any(|slot| booking.covers(slot)))
                .map(|booking| (booking.start, booking.end))
                .collect();
            assert!(!verdict.own.is_empty());
        }
        verdict.free_gpus = (0..self.host.gpus).filter(|gpu| busy_gpus & (1 << gpu) == 0).collect();
        verdict
    }

    /// Minutes GPU `gpu` is booked from a day before `start` to a day after `end` (the
    /// documented meaning of "booked around the window").
    fn booked_around(&self, gpu: u32, start: u32, end: u32) -> u32 {
        let from = start.saturating_sub(48);
        let to = end + 48;
        self.bookings
            .iter()
            .filter(|booking| booking.gpus.contains(&gpu))
            .map(|booking| booking.end.min(to).saturating_sub(booking.start.max(from)) * 30)
            .sum()
    }

    /// The GPU ids a fitting request was given: exactly as many as asked, distinct, on the
    /// host, free for the whole window, and the least booked around it (ties: lower ids).
    fn check_given_gpus(&self, request: &ModelRequest, verdict: &Verdict, given: &[u32]) -> Result<(), TestCaseError> {
        prop_assert_eq!(given.len() as u32, request.gpus, "wrong number of GPUs: {:?}", given);
        let mut sorted = given.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), given.len(), "GPU ids given twice: {:?}", given);
        for gpu in given {
            prop_assert!(*gpu < self.host.gpus, "GPU {} does not exist on a {}-GPU host", gpu, self.host.gpus);
            prop_assert!(
                verdict.free_gpus.contains(gpu),
                "GPU {} is held during part of {}..{} (free for the whole window: {:?})",
                gpu,
                at_slot(request.start),
                at_slot(request.end),
                verdict.free_gpus
            );
        }
        let rank = |gpu: u32| (self.booked_around(gpu, request.start, request.end), gpu);
        for chosen in given {
            for other in verdict.free_gpus.iter().filter(|gpu| !given.contains(gpu)) {
                prop_assert!(
                    rank(*chosen) < rank(*other),
                    "GPU {} (booked {} min around) chosen over GPU {} (booked {} min around)",
                    chosen,
                    rank(*chosen).0,
                    other,
                    rank(*other).0
                );
            }
        }
        Ok(())
    }

    /// A refusal must name a reason the model finds, with the model's numbers.
    fn check_shortage(
        &self,
        request: &ModelRequest,
        verdict: &Verdict,
        shortage: &Shortage,
    ) -> Result<(), TestCaseError> {
        prop_assert!(!verdict.fits(), "wrongly refused ({shortage}); the model finds it fits: {request:?}");
        let host = self.host;
        match shortage {
            Shortage::OwnOverlap { start, end } => {
                let own = (slot_of(*start), slot_of(*end));
                prop_assert!(
                    verdict.own.contains(&own),
                    "OwnOverlap names {start}..{end}; the model's own overlaps: {:?}",
                    verdict.own
                );
            }
            Shortage::PortBusy { port, holder } => {
                prop_assert_eq!(Some(*port), request.port);
                let holders: Vec<String> = verdict.port_holders.iter().map(|user| user_name(*user)).collect();
                prop_assert!(
                    holders.contains(&holder.to_string()),
                    "PortBusy names {}; the model's holders: {:?}",
                    holder,
                    holders
                );
            }
            Shortage::Cpus { at, free, wanted } => {
                prop_assert_eq!(*wanted, halves(request.cpu_halves));
                check_first_short_slot("Cpus", *at, *free, &verdict.cpus_over, |in_use| {
                    halves(host.cpu_halves.saturating_sub(in_use))
                })?;
            }
            Shortage::Memory { at, free, wanted } => {
                prop_assert_eq!(*wanted, request.memory);
                check_first_short_slot("Memory", *at, *free, &verdict.memory_over, |in_use| {
                    halves(host.memory_halves.saturating_sub(2 * in_use))
                })?;
            }
            Shortage::Gpus { free, wanted, .. } => {
                prop_assert_eq!(*wanted, request.gpus);
                prop_assert_eq!(*free, verdict.free_gpus.len() as u32, "GPUs free for the whole window");
                prop_assert!(free < wanted);
            }
        }
        Ok(())
    }
}

/// A CPU or memory refusal (`kind`) names the first slot the model finds short (`short`:
/// each short slot with what is in use there), and what is free there: `free_for(in use)`.
fn check_first_short_slot(
    kind: &str,
    at: NaiveDateTime,
    free: f64,
    short: &[(u32, u32)],
    free_for: impl Fn(u32) -> f64,
) -> Result<(), TestCaseError> {
    let slot = slot_of(at);
    let over = short.iter().find(|(over, _)| *over == slot);
    prop_assert!(over.is_some(), "{} names {}, where the model finds room; short at {:?}", kind, at, short);
    prop_assert_eq!(short[0].0, slot, "{} names {}, not the first short slot", kind, at);
    let expected = free_for(over.unwrap().1);
    prop_assert!((free - expected).abs() < 1e-9, "{} free {} at {}, the model says {}", kind, free, at, expected);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------

fn host_strategy() -> impl Strategy<Value = ModelHost> {
    // CPUs 1–16 and memory 1–64 in halves (4.5 CPUs, 20.5 GB), 0–8 GPUs.
    (2u32..=32, 2u32..=128, 0u32..=8).prop_map(|(cpu_halves, memory_halves, gpus)| ModelHost {
        cpu_halves,
        memory_halves,
        gpus,
    })
}

/// A request before it is scaled to the host, plus the choices for the probes run after it.
#[derive(Debug, Clone)]
struct Step {
    user: usize,
    start: u32,
    length: u32,
    cpus: u32,
    memory: u32,
    gpus: u32,
    /// `Some(u)`: use user `u`'s port instead of one's own (a per-booking port).
    other_port: Option<usize>,
    probe_from: u32,
    probe_span: u32,
    probe_anonymous: bool,
    extend_pick: usize,
    extend_by: u32,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let length = prop_oneof![4 => 1u32..=12, 3 => 1u32..=48, 1 => 48u32..=MAX_LENGTH];
    let other_port = prop_oneof![6 => Just(None), 1 => (0..USERS).prop_map(Some)];
    (
        (0..USERS, 0..START_SLOTS, length, any::<u32>(), any::<u32>(), any::<u32>(), other_port),
        (0..START_SLOTS, 0..=START_SLOTS, any::<bool>(), any::<usize>(), 1u32..=24),
    )
        .prop_map(
            |(
                (user, start, length, cpus, memory, gpus, other_port),
                (probe_from, probe_span, probe_anonymous, extend_pick, extend_by),
            )| Step {
                user,
                start,
                length,
                cpus,
                memory,
                gpus,
                other_port,
                probe_from,
                probe_span,
                probe_anonymous,
                extend_pick,
                extend_by,
            },
        )
}

fn port_of(user: usize) -> u16 {
    FIRST_PORT + user as u16
}

/// Scales a step to the host: CPUs from half a CPU to all the host has, memory from 1 GB to
/// all the host has, GPUs from 0 to one more than the host has. (Requests larger than the
/// host itself have their own property below.)
fn request_of(step: &Step, host: &ModelHost) -> ModelRequest {
    let host_memory = (host.memory_halves / 2).max(1);
    ModelRequest {
        user: Some(step.user),
        start: step.start,
        end: step.start + step.length,
        cpu_halves: 1 + step.cpus % host.cpu_halves,
        memory: 1 + step.memory % host_memory,
        gpus: step.gpus % (host.gpus + 2),
        port: Some(port_of(step.other_port.unwrap_or(step.user))),
    }
}

// ---------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------

/// `place` on one request against the model; an accepted request is added.
fn check_place(model: &mut Model, request: &ModelRequest) -> Result<(), TestCaseError> {
    let verdict = model.judge(request);
    match capacity::place(&model.active(), &model.host.host(), &request.request()) {
        Ok(given) => {
            prop_assert!(
                verdict.fits(),
                "wrongly accepted {:?} with GPUs {:?}; the model finds {:?}",
                request,
                given,
                verdict
            );
            model.check_given_gpus(request, &verdict, &given)?;
            let user = request.user.unwrap();
            model.add(ModelBooking {
                user,
                start: request.start,
                end: request.end,
                cpu_halves: request.cpu_halves,
                memory: request.memory,
                gpus: given,
                port: request.port.unwrap(),
            });
        }
        Err(shortage) => model.check_shortage(request, &verdict, &shortage)?,
    }
    Ok(())
}

/// The search `earliest_window` replaced, as it was: the candidates are the first of `starts`
/// and every booking's end rounded up to the grid (within `starts`), and the first at which
/// [`capacity::place`] accepts the window wins, with the GPUs `place` gives.
fn brute_force_earliest(
    active: &[Booking],
    host: &Host,
    shape: &Request,
    length: Duration,
    starts: std::ops::RangeInclusive<NaiveDateTime>,
) -> Option<(NaiveDateTime, Vec<u32>)> {
    let (from, latest_start) = starts.into_inner();
    let ceil_to_slot = |time: NaiveDateTime| {
        let floor = gpu_booking::rules::floor_to_slot(time);
        if floor == time { time } else { floor + gpu_booking::rules::slot() }
    };
    // In order, each once: a set.
    let ends = active.iter().map(|booking| ceil_to_slot(booking.end)).filter(|end| *end > from && *end <= latest_start);
    let candidates: std::collections::BTreeSet<NaiveDateTime> = ends.chain([from]).collect();
    candidates.into_iter().find_map(|start| {
        let request = Request { start, end: start + length, ..shape.clone() };
        capacity::place(active, host, &request).ok().map(|gpus| (start, gpus))
    })
}

/// `earliest_window` for `shape` from `from` up to `latest`, against a brute force over every
/// grid start, and against the search it replaced.
fn check_earliest(model: &Model, shape: &ModelRequest, from: u32, latest: u32) -> Result<(), TestCaseError> {
    let length = Duration::minutes(30 * i64::from(shape.end - shape.start));
    let (active, host, request) = (model.active(), model.host.host(), shape.request());
    let found = capacity::earliest_window(&active, &host, &request, length, at_slot(from), at_slot(latest));
    let searched = brute_force_earliest(&active, &host, &request, length, at_slot(from)..=at_slot(latest));
    prop_assert_eq!(&found, &searched, "the sweep and the search it replaced disagree");
    let first_fit = (from..=latest).find(|start| model.judge(&shape.moved_to(*start)).fits());
    match found {
        Some((start, given)) => {
            let slot = slot_of(start);
            prop_assert!(
                (from..=latest).contains(&slot),
                "earliest_window returned {} outside {}..={}",
                start,
                at_slot(from),
                at_slot(latest)
            );
            let moved = shape.moved_to(slot);
            let verdict = model.judge(&moved);
            prop_assert!(verdict.fits(), "earliest_window returned {}, which the model refuses: {:?}", start, verdict);
            model.check_given_gpus(&moved, &verdict, &given)?;
            prop_assert_eq!(
                first_fit.map(at_slot),
                Some(start),
                "earliest_window returned {} but an earlier start fits (from {})",
                start,
                at_slot(from)
            );
        }
        None => prop_assert_eq!(
            first_fit.map(at_slot),
            None,
            "earliest_window found nothing from {} to {}",
            at_slot(from),
            at_slot(latest)
        ),
    }
    Ok(())
}

/// `place_keeping`: extend an existing booking by `by` slots with the same GPUs. The
/// extension `[end, end + by)` shares no slot with the booking itself, so the model's table
/// (which still holds it) judges it exactly as the schedule without it would.
fn check_extension(model: &Model, pick: usize, by: u32) -> Result<(), TestCaseError> {
    if model.bookings.is_empty() {
        return Ok(());
    }
    let index = pick % model.bookings.len();
    let booking = model.bookings[index].clone();
    let request = ModelRequest {
        user: Some(booking.user),
        start: booking.end,
        end: booking.end + by,
        cpu_halves: booking.cpu_halves,
        memory: booking.memory,
        gpus: booking.gpus.len() as u32,
        port: Some(booking.port),
    };
    let others: Vec<Booking> = model
        .bookings
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != index)
        .map(|(_, booking)| booking.booking())
        .collect();
    let verdict = model.judge(&request);
    let kept_free = booking.gpus.iter().filter(|gpu| verdict.free_gpus.contains(gpu)).count() as u32;
    let fits = verdict.own.is_empty()
        && verdict.port_holders.is_empty()
        && verdict.cpus_over.is_empty()
        && verdict.memory_over.is_empty()
        && kept_free == booking.gpus.len() as u32;
    match capacity::place_keeping(&others, &model.host.host(), &request.request(), &booking.gpus) {
        Ok(()) => prop_assert!(
            fits,
            "extension of {:?} by {} slots wrongly accepted; the model finds {:?}",
            booking,
            by,
            verdict
        ),
        Err(Shortage::Gpus { free, wanted, .. }) => {
            prop_assert!(!fits, "extension of {:?} by {} slots wrongly refused for GPUs", booking, by);
            prop_assert_eq!(wanted, booking.gpus.len() as u32);
            prop_assert_eq!(free, kept_free, "kept GPUs free for the whole extension");
            prop_assert!(free < wanted);
        }
        Err(shortage) => {
            // The same reasons as a new booking, except GPUs (handled above).
            let verdict = Verdict { wanted_gpus: 0, ..verdict };
            model.check_shortage(&request, &verdict, &shortage)?;
        }
    }
    Ok(())
}

/// A booking as a hand-edited file may hold it: any user and port, times off the grid, no
/// length at all, CPUs in hundredths, GPU ids the host may not have, overlaps of every kind.
fn loose_booking_strategy() -> impl Strategy<Value = Booking> {
    let minute = prop_oneof![4 => (0i64..6 * 48).prop_map(|slot| 30 * slot), 1 => 0i64..6 * 24 * 60];
    let length = prop_oneof![1 => Just(0i64), 6 => (1i64..=96).prop_map(|slots| 30 * slots), 1 => 1i64..3000];
    (minute, length, 0..USERS, 100u32..=1600, 1u32..=48, prop::collection::vec(0u32..10, 0..3), 0u16..4).prop_map(
        |(start, length, user, hundredths, memory, mut gpus, port)| {
            gpus.sort_unstable();
            gpus.dedup();
            Booking {
                start: base() + Duration::minutes(start),
                end: base() + Duration::minutes(start + length),
                user_id: user_id(user),
                cpus: f64::from(hundredths) / 100.0,
                memory,
                gpus,
                forward_port: FIRST_PORT + port,
                image: None,
                extra_command: None,
            }
        },
    )
}

/// A host of any size: CPUs in hundredths or in thirds (an expression's result), memory in
/// whole, half or third GB.
fn loose_host_strategy() -> impl Strategy<Value = Host> {
    (
        prop_oneof![
            (100u32..=4000).prop_map(|hundredths| f64::from(hundredths) / 100.0),
            (3u32..=100).prop_map(|thirds| f64::from(thirds) / 3.0)
        ],
        prop_oneof![
            (1u32..=128).prop_map(f64::from),
            (2u32..=256).prop_map(|halves| f64::from(halves) / 2.0),
            (3u32..=300).prop_map(|thirds| f64::from(thirds) / 3.0)
        ],
        0u32..=8,
    )
        .prop_map(|(cpus, memory, gpus)| Host { cpus, memory, gpus })
}
