//! Many `book new` processes at once, on temporary roots: no booking lost, no slot over
//! capacity, no GPU given twice, and exactly as many successes as fit.
//!
//! Each scenario copies `tests/fixtures/concurrency` with its own host (CPUs, GPUs) and
//! `allow_userIDs`, and an empty `jobs/`, registers every user by running the real `book` once (a first login sets the password from
//! standard input), then starts all the booking processes before any of them can go on: each
//! one waits for its password on standard input, and the passwords are written only once
//! every process is running. Nothing here sleeps on the clock (one test waits until files
//! appear); the assertions look only at exit codes, outputs and `jobs/booking.csv`, read by
//! the `csv` crate rather than the code under test.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Child, Output, Stdio};

use chrono::{Duration, NaiveDateTime};
use support::lab::Lab;
use support::schedule::BOOKING;

/// Everyone may book: u0 to u11.
const USERS: usize = 12;

/// The host of one scenario. Each user may book 4 CPUs, 8 GB and one GPU at a time
/// (`tests/fixtures/concurrency`).
struct Host {
    cpus: &'static str,
    gpus: u32,
}

fn user(index: usize) -> String {
    format!("u{index}")
}

/// A root with the host's configuration and every user registered (each by one real first
/// login).
fn registered_lab(host: &Host) -> Lab {
    let mut lab = Lab::fixture("concurrency");
    lab.edit_line("cfg/capability_config.yaml", 2, "cpus: 64", &format!("cpus: {}", host.cpus));
    lab.edit_line("cfg/capability_config.yaml", 5, "gpus: 3", &format!("gpus: {}", host.gpus));
    lab.allow(&(0..USERS).map(user).collect::<Vec<_>>());
    lab.register_all();
    let users = lab.read("cfg/users_config.yaml");
    for index in 0..USERS {
        assert!(users.contains(&user(index)), "{} is missing from users_config.yaml:\n{users}", user(index));
    }
    lab
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Starts one `book` process per argument list, all before any can get past its login (each
/// waits for its password on standard input), then lets them all go at once, and collects
/// their outputs.
fn race(lab: &Lab, requests: &[(usize, Vec<String>)]) -> Vec<Output> {
    start_all(lab, requests).into_iter().map(|child| child.wait_with_output().unwrap()).collect()
}

/// Starts one `book` process per argument list and gives each its password.
fn start_all(lab: &Lab, requests: &[(usize, Vec<String>)]) -> Vec<Child> {
    let mut children: Vec<(Child, String)> = requests
        .iter()
        .map(|(index, arguments)| {
            let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
            let (mut command, password) = lab.book_as(&user(*index), &arguments).into_command();
            let child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start book");
            (child, password)
        })
        .collect();
    for (child, password) in &mut children {
        // Dropping the pipe closes it: the process reads at most two lines.
        child.stdin.take().expect("piped stdin").write_all(password.as_bytes()).expect("write the password");
    }
    children.into_iter().map(|(child, _)| child).collect()
}

fn new_booking(cpus: &str, gpus: u32, start: &str, end: &str) -> Vec<String> {
    ["new", "--cpus", cpus, "--memory", "1", "--gpus", &gpus.to_string(), "--start", start, "--end", end, "--json"]
        .map(String::from)
        .to_vec()
}

/// One row of `jobs/booking.csv`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    start: NaiveDateTime,
    end: NaiveDateTime,
    user: String,
    cpus: f64,
    memory: f64,
    gpus: Vec<u32>,
    port: u16,
}

fn parse_time(text: &str) -> NaiveDateTime {
    let text = text.trim();
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .unwrap_or_else(|error| panic!("time {text:?}: {error}"))
}

fn parse_gpus(text: &str) -> Vec<u32> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap_or_else(|error| panic!("GPU id {part:?} in {text:?}: {error}")))
        .collect()
}

/// The rows of `jobs/booking.csv`, read by the `csv` crate (by header names), independent of
/// the code under test.
fn booking_rows(lab: &Lab) -> Vec<Row> {
    lab.rows(BOOKING)
        .iter()
        .map(|row| Row {
            start: parse_time(&row["start"]),
            end: parse_time(&row["end"]),
            user: row["user_id"].trim().to_string(),
            cpus: row["cpus"].trim().parse().unwrap(),
            memory: row["memory"].trim().parse().unwrap(),
            gpus: parse_gpus(&row["gpus"]),
            port: row["forward_port"].trim().parse().unwrap(),
        })
        .collect()
}

/// Every 30-minute slot any row covers.
fn slots(rows: &[Row]) -> BTreeSet<NaiveDateTime> {
    let mut all = BTreeSet::new();
    for row in rows {
        let mut slot = row.start;
        while slot < row.end {
            all.insert(slot);
            slot += Duration::minutes(30);
        }
    }
    all
}

/// Slot by slot: CPUs and memory within the host, no GPU held twice, no user or port twice.
fn assert_within_host(rows: &[Row], cpus: f64, memory: f64, gpus: u32) {
    for slot in slots(rows) {
        let here: Vec<&Row> = rows.iter().filter(|row| row.start <= slot && slot < row.end).collect();
        let used_cpus: f64 = here.iter().map(|row| row.cpus).sum();
        let used_memory: f64 = here.iter().map(|row| row.memory).sum();
        assert!(used_cpus <= cpus + 1e-9, "{slot}: {used_cpus} CPUs booked on a {cpus}-CPU host: {here:#?}");
        assert!(used_memory <= memory + 1e-9, "{slot}: {used_memory} GB booked on a {memory} GB host");
        let mut held = BTreeSet::new();
        let mut users = BTreeSet::new();
        let mut ports = BTreeSet::new();
        for row in &here {
            for gpu in &row.gpus {
                assert!(*gpu < gpus, "{slot}: GPU {gpu} does not exist on a {gpus}-GPU host");
                assert!(held.insert(*gpu), "{slot}: GPU {gpu} given twice: {here:#?}");
            }
            assert!(users.insert(&row.user), "{slot}: {} holds two bookings", row.user);
            assert!(ports.insert(row.port), "{slot}: port {} used twice", row.port);
        }
    }
}

/// The JSON `book new --json` printed, checked against the row of the same user in the file.
fn assert_json_matches(output: &Output, rows: &[Row]) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("not one JSON object ({error}):\n{}", describe(output)));
    let user = json["user_id"].as_str().expect("user_id");
    let row = rows
        .iter()
        .find(|row| row.user == user)
        .unwrap_or_else(|| panic!("{user} succeeded but has no row: {rows:#?}"));
    let gpus: Vec<u32> = json["gpus"]
        .as_array()
        .expect("gpus is a list")
        .iter()
        .map(|gpu| u32::try_from(gpu.as_u64().expect("a GPU id")).unwrap())
        .collect();
    assert_eq!(gpus, row.gpus, "{user}: GPUs printed vs. written");
    assert_eq!(parse_time(json["start"].as_str().unwrap()), row.start, "{user}: start");
    assert_eq!(parse_time(json["end"].as_str().unwrap()), row.end, "{user}: end");
    assert_eq!(json["cpus"].as_f64(), Some(row.cpus), "{user}: cpus");
    assert_eq!(json["forward_port"].as_u64(), Some(u64::from(row.port)), "{user}: port");
}

/// Splits outputs into successes (exit 0) and refusals (exit 3); anything else fails.
fn split<'a>(outputs: &'a [Output], resource: &str) -> (Vec<&'a Output>, Vec<&'a Output>) {
    let (mut booked, mut refused) = (Vec::new(), Vec::new());
    for output in outputs {
        match output.status.code() {
            Some(0) => booked.push(output),
            Some(3) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(stderr.contains(resource), "refused without naming {resource}:\n{}", describe(output));
                refused.push(output);
            }
            _ => panic!("neither booked nor refused:\n{}", describe(output)),
        }
    }
    (booked, refused)
}

const RACES: usize = 4;

/// Twelve users, three GPUs, everyone wants one GPU for the same window: exactly three win,
/// each with a different GPU, and the file holds exactly those three.
#[test]
fn twelve_processes_race_for_three_gpus() {
    let host = Host { cpus: "64", gpus: 3 };
    let template = registered_lab(&host);
    for round in 0..RACES {
        let lab = template.fresh_copy();
        let requests: Vec<(usize, Vec<String>)> =
            (0..USERS).map(|index| (index, new_booking("1", 1, "1-day", "2-hour"))).collect();
        let outputs = race(&lab, &requests);
        let (booked, refused) = split(&outputs, "GPU");
        let all: Vec<String> = outputs.iter().map(describe).collect();
        assert_eq!(booked.len(), 3, "round {round}: exactly 3 bookings must succeed:\n{}", all.join("\n"));
        assert_eq!(refused.len(), 9, "round {round}");

        let rows = booking_rows(&lab);
        assert_eq!(rows.len(), 3, "round {round}: booking.csv: {rows:#?}");
        let gpus: BTreeSet<u32> = rows.iter().flat_map(|row| row.gpus.clone()).collect();
        assert_eq!(gpus, BTreeSet::from([0, 1, 2]), "round {round}: three distinct GPUs: {rows:#?}");
        for row in &rows {
            assert_eq!(row.gpus.len(), 1);
            assert_eq!(row.start, parse_time("2026-11-24 10:00"));
            assert_eq!(row.end, parse_time("2026-11-24 12:00"));
        }
        let users: BTreeSet<&str> = rows.iter().map(|row| row.user.as_str()).collect();
        assert_eq!(users.len(), 3);
        for output in &booked {
            assert_json_matches(output, &rows);
        }
        assert_within_host(&rows, 64.0, 80.0, host.gpus);
    }
}

/// The requests waiting in the queue (`jobs/.request-*`) and their answers.
fn queue_files(lab: &Lab) -> Vec<String> {
    std::fs::read_dir(lab.root().join("jobs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".request-") || name.starts_with(".answer-") || name == ".batch")
        .collect()
}

/// Twelve `book new` that all find the lock taken (held here, shared, as a long `book list`
/// would hold it) leave their requests in the queue and wait. When the lock is let go, the
/// first to take it books the others' requests with its own in one write: the outcome is the
/// race's, three booked on three GPUs, nine refused with their own message, and no queue file
/// is left behind.
#[test]
fn requests_queued_behind_a_held_lock_are_decided_as_if_each_came_alone() {
    let host = Host { cpus: "64", gpus: 3 };
    let lab = registered_lab(&host);
    let root = gpu_booking::store::root::Root::new(lab.root());
    let held = gpu_booking::store::lock::SharedLock::acquire(&root).expect("the shared lock");
    let requests: Vec<(usize, Vec<String>)> =
        (0..USERS).map(|index| (index, new_booking("1", 1, "1-day", "2-hour"))).collect();
    let children = start_all(&lab, &requests);
    // Each logs in beside the shared lock, finds the exclusive one out of reach, and queues.
    let waiting_since = std::time::Instant::now();
    while queue_files(&lab).len() < USERS {
        assert!(
            waiting_since.elapsed() < std::time::Duration::from_secs(120),
            "not every request reached the queue: {:?}",
            queue_files(&lab)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(held);
    let outputs: Vec<Output> = children.into_iter().map(|child| child.wait_with_output().unwrap()).collect();
    let (booked, refused) = split(&outputs, "GPU");
    let all: Vec<String> = outputs.iter().map(describe).collect();
    assert_eq!((booked.len(), refused.len()), (3, 9), "{}", all.join("\n"));
    for output in &refused {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("the earliest window that fits is"), "{}", describe(output));
    }
    let rows = booking_rows(&lab);
    let gpus: BTreeSet<u32> = rows.iter().flat_map(|row| row.gpus.clone()).collect();
    assert_eq!((rows.len(), gpus), (3, BTreeSet::from([0, 1, 2])), "{rows:#?}");
    for output in &booked {
        assert_json_matches(output, &rows);
    }
    assert_eq!(queue_files(&lab), Vec::<String>::new(), "every waiter removed its request and answer");
}

/// Twelve users, a 10-CPU host, everyone wants 2.5 CPUs (no GPU) for the same window: exactly
/// four fit, and no slot is over the host's CPUs.
#[test]
fn twelve_processes_race_for_the_cpus() {
    let host = Host { cpus: "10", gpus: 2 };
    let template = registered_lab(&host);
    for round in 0..RACES {
        let lab = template.fresh_copy();
        let requests: Vec<(usize, Vec<String>)> =
            (0..USERS).map(|index| (index, new_booking("2.5", 0, "2-day", "1-day"))).collect();
        let outputs = race(&lab, &requests);
        let (booked, refused) = split(&outputs, "CPU");
        let all: Vec<String> = outputs.iter().map(describe).collect();
        assert_eq!(booked.len(), 4, "round {round}: exactly 4 bookings must succeed:\n{}", all.join("\n"));
        assert_eq!(refused.len(), 8, "round {round}");
        let rows = booking_rows(&lab);
        assert_eq!(rows.len(), 4, "round {round}: booking.csv: {rows:#?}");
        for output in &booked {
            assert_json_matches(output, &rows);
        }
        assert_within_host(&rows, 10.0, 80.0, host.gpus);
    }
}

/// Overlapping but different windows, CPUs and GPUs both scarce: whatever order the lock
/// gives, nothing is over capacity, every success is in the file, and every refusal is right
/// — the refused request does not fit even the final schedule (which holds everything its
/// own check saw, and more).
#[test]
fn staggered_windows_never_overbook_and_refuse_only_what_does_not_fit() {
    let host = Host { cpus: "8", gpus: 3 };
    let (host_cpus, host_memory) = (8.0, 80.0);
    let template = registered_lab(&host);
    for round in 0..RACES {
        let lab = template.fresh_copy();
        // Starts 2026-11-24 09:00 + 1 h per user (mod 4), 3 or 4 hours long; 2 or 3 CPUs;
        // one GPU each, except every third user who asks for none.
        let requests: Vec<(usize, Vec<String>)> = (0..USERS)
            .map(|index| {
                let hour = 9 + (index + round) % 4;
                let start = format!("2026 11 24 {hour:02} 00");
                let end = format!("{}-hour", 3 + index % 2);
                let cpus = if index % 2 == 0 { "2" } else { "3" };
                let gpus = u32::from(index % 3 != 0);
                (index, new_booking(cpus, gpus, &start, &end))
            })
            .collect();
        let outputs = race(&lab, &requests);
        let rows = booking_rows(&lab);
        assert_within_host(&rows, host_cpus, host_memory, host.gpus);
        let by_user: BTreeMap<&str, &Row> = rows.iter().map(|row| (row.user.as_str(), row)).collect();
        let mut successes = 0;
        for ((index, arguments), output) in requests.iter().zip(&outputs) {
            match output.status.code() {
                Some(0) => {
                    successes += 1;
                    assert_json_matches(output, &rows);
                }
                Some(3) => {
                    assert!(!by_user.contains_key(user(*index).as_str()), "{} refused but written", user(*index));
                    let cpus: f64 = arguments[2].parse().unwrap();
                    let gpus: u32 = arguments[6].parse().unwrap();
                    let start = parse_time(&{
                        let parts: Vec<&str> = arguments[8].split(' ').collect();
                        format!("{}-{}-{} {}:{}", parts[0], parts[1], parts[2], parts[3], parts[4])
                    });
                    let hours: i64 = arguments[10].trim_end_matches("-hour").parse().unwrap();
                    let end = start + Duration::hours(hours);
                    assert!(
                        !fits(&rows, host_cpus, host.gpus, start, end, cpus, gpus),
                        "round {round}: {} was refused, yet {cpus} CPUs and {gpus} GPUs from {start} to {end} fit the final schedule \
                         {rows:#?}\n{}",
                        user(*index),
                        describe(output)
                    );
                }
                _ => panic!("neither booked nor refused:\n{}", describe(output)),
            }
        }
        assert_eq!(successes, rows.len(), "round {round}: every success is one row, and only those");
        assert!(successes >= 2, "round {round}: the first two of any order always fit");
    }
}

/// Slot-by-slot: would `cpus` CPUs and `gpus` GPUs (free for the whole window) fit next to
/// `rows` from `start` to `end`?
fn fits(
    rows: &[Row],
    host_cpus: f64,
    host_gpus: u32,
    start: NaiveDateTime,
    end: NaiveDateTime,
    cpus: f64,
    gpus: u32,
) -> bool {
    let mut busy = BTreeSet::new();
    let mut slot = start;
    while slot < end {
        let here: Vec<&Row> = rows.iter().filter(|row| row.start <= slot && slot < row.end).collect();
        let used: f64 = here.iter().map(|row| row.cpus).sum();
        if used + cpus > host_cpus + 1e-9 {
            return false;
        }
        busy.extend(here.iter().flat_map(|row| row.gpus.iter().copied()));
        slot += Duration::minutes(30);
    }
    (host_gpus as usize).saturating_sub(busy.len()) >= gpus as usize
}
