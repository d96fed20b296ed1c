//! Issue 14's speed table: the real binaries, timed whole (process start to exit), on
//! generated states of 0, 1,000 and 10,000 active bookings × 0 and 1,000,000 history rows.
//! Every state is built first; then each command runs on all six states in turn, run after
//! run, so a change in the machine's load falls on every column alike. Printed as Markdown:
//! the table (medians in ms) with the 1M/0 ratios, the same for CPU time, the rates
//! of 16 `book new` one after another and at once, and each target of the issue with PASS,
//! over or under beside it. Timing is here, never in the tests.
//!
//! Run: `cargo bench --bench speed`. `SPEED_RUNS` sets the runs per command and state
//! (default 15), `SPEED_HISTORY_ROWS` the size of the long history (default 1,000,000; less
//! for a quick look), `SPEED_KEEP=1` keeps the generated roots. `monitor` needs the Docker
//! engine (a pass pings it before anything else); without one the bench times
//! `monitor --dry-run` instead and says so in the table.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{Duration as Span, NaiveDateTime};

const NOW: &str = "2026-11-23 10:00";
const PASSWORD: &str = "bench-pass-42";
/// Students with bookings (`u0`…); each holds at most one booking at a time.
const USERS: usize = 500;
/// Students without bookings (`bench0`…) who book in the runs, on the ports after the others'
/// (all within 10001–11000, the range `enroll` hands out).
const BOOKERS: usize = 16;
const HOST_GPUS: u32 = 64;
/// GPUs 0–47 are booked one at a time, 48–63 in pairs: 56 lanes of back-to-back bookings.
const SINGLE_LANES: usize = 48;
const PAIR_LANES: usize = 8;
const LANES: usize = SINGLE_LANES + PAIR_LANES;
/// The active bookings fill the lanes over the coming 12 days (a full host), so `book free`
/// searches the whole schedule; days 12–14 stay free for the bookings the runs make.
const FILLED_HALF_HOURS: i64 = 12 * 48;
/// Where the runs book: day 13, free on every GPU.
const NEW_START: &str = "2026 12 06 10 00";
const ACTIVE: [usize; 3] = [0, 1_000, 10_000];

/// One generated root, and its twin for `monitor`: the same bookings and history, all still
/// to come at `monitor_now`, so a pass has nothing due (no container to start, stop or check).
struct State {
    active: usize,
    history: usize,
    root: PathBuf,
    monitor_root: PathBuf,
    monitor_now: String,
    /// `jobs/booking.csv` as generated: put back before each `book new`.
    booked: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Version,
    ListJson,
    Timeline,
    Free,
    New,
    Status,
    Monitor { dry_run: bool },
    Check,
    Report,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::Version => "`book --version` (start-up floor)",
            Case::ListJson => "`book list --json`",
            Case::Timeline => "`book list --timeline`",
            Case::Free => "`book free --cpus 1 --memory 4 --gpus 1 --duration 1-day`",
            Case::New => "`book new`",
            Case::Status => "`book status --json`",
            Case::Monitor { dry_run: false } => "`monitor`, nothing due",
            Case::Monitor { dry_run: true } => "`monitor --dry-run`, nothing due (no Docker engine here)",
            Case::Check => "`enroll check`",
            Case::Report => "`enroll report --json`",
        }
    }

    /// The command on `state`, and what it reads on stdin (the password, for a login).
    fn command(self, state: &State) -> (Command, Option<String>) {
        let book = |args: &[&str]| {
            let mut command = binary(env!("CARGO_BIN_EXE_book"), &state.root, NOW);
            command.args(args);
            command
        };
        let login = |user: &str, args: &[&str]| {
            let mut command = book(&["--user", user, "--password-stdin"]);
            command.args(args);
            (command, Some(format!("{PASSWORD}\n")))
        };
        match self {
            Case::Version => (book(&["--version"]), None),
            Case::ListJson => (book(&["list", "--json"]), None),
            Case::Timeline => (book(&["list", "--timeline"]), None),
            Case::Free => (book(&["free", "--cpus", "1", "--memory", "4", "--gpus", "1", "--duration", "1-day"]), None),
            Case::New => login("bench0", &new_args()),
            // u7 holds bookings in every state but the empty one.
            Case::Status => login("u7", &["status", "--json"]),
            Case::Monitor { dry_run } => {
                let mut command = binary(env!("CARGO_BIN_EXE_monitor"), &state.monitor_root, &state.monitor_now);
                if dry_run {
                    command.arg("--dry-run");
                }
                (command, None)
            }
            Case::Check => {
                let mut command = binary(env!("CARGO_BIN_EXE_enroll"), &state.root, NOW);
                command.arg("check");
                (command, None)
            }
            Case::Report => {
                let mut command = binary(env!("CARGO_BIN_EXE_enroll"), &state.root, NOW);
                command.args(["report", "--json"]);
                (command, None)
            }
        }
    }
}

fn new_args() -> [&'static str; 12] {
    ["new", "--cpus", "1", "--memory", "1", "--gpus", "1", "--start", NEW_START, "--end", "2-hour", "--json"]
}

fn binary(path: &str, root: &Path, now: &str) -> Command {
    let mut command = Command::new(path);
    command
        .arg("--root")
        .arg(root)
        .env("GPU_BOOKING_NOW", now)
        .env_remove("GPU_BOOKING_ROOT")
        .env_remove("SSH_ORIGINAL_COMMAND")
        .env_remove("SSH_CLIENT");
    command
}

fn main() {
    let runs = env_number("SPEED_RUNS", 15).max(1);
    let long_history = env_number("SPEED_HISTORY_ROWS", 1_000_000).max(1);
    let scratch = std::env::temp_dir().join(format!("gpu-booking-speed-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).expect("scratch folder");

    eprintln!("building the states under {} …", scratch.display());
    let users_config = users_config(&scratch);
    let history_file = scratch.join("used-long.csv");
    write_history(&history_file, long_history);
    let mut states = Vec::new();
    for active in ACTIVE {
        for history in [0, long_history] {
            let name = format!("active-{active}-history-{history}");
            let history_source = (history > 0).then_some(history_file.as_path());
            states.push(build_state(&scratch.join(name), active, history, history_source, &users_config));
        }
    }

    let monitor_case = Case::Monitor { dry_run: !docker_answers(&states[0]) };
    let cases = [
        Case::Version,
        Case::ListJson,
        Case::Timeline,
        Case::Free,
        Case::New,
        Case::Status,
        monitor_case,
        Case::Check,
        Case::Report,
    ];
    let mut table = Vec::new();
    for case in cases {
        eprintln!("timing {} ({runs} runs on each of {} states) …", case.label(), states.len());
        table.push(time_case(case, &states, runs));
    }
    eprintln!("timing 16 sequential and 16 parallel `book new` …");
    let rates: Vec<(usize, Rates)> = [1_000, 10_000]
        .into_iter()
        .map(|active| (active, booking_rates(find(&states, active, long_history), runs)))
        .collect();

    // Kept roots are left as generated, without the runs' bookings.
    states.iter().for_each(reset_bookings);
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let results = Results { table, rates, runs, long_history, load };
    print!("{}", results.markdown());
    if std::env::var_os("SPEED_KEEP").is_some() {
        println!("\nroots kept under {}", scratch.display());
    } else {
        let _ = fs::remove_dir_all(&scratch);
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|text| text.replace(['_', ','], "").parse().ok()).unwrap_or(default)
}

fn find(states: &[State], active: usize, history: usize) -> &State {
    states.iter().find(|state| state.active == active && state.history == history).expect("every state is built")
}

/// True when a real `monitor` pass runs: it pings the Docker engine before it reads anything.
/// Any other failure stops the bench.
fn docker_answers(state: &State) -> bool {
    let (mut command, _) = Case::Monitor { dry_run: false }.command(state);
    let output = command.output().expect("monitor runs");
    let errors = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && errors.contains("Docker engine not reachable") {
        eprintln!("no Docker engine ({}): timing `monitor --dry-run` instead", errors.trim());
        return false;
    }
    expect_success("monitor", &state.monitor_root, &output);
    true
}

// ---------------------------------------------------------------------------------------
// Timing

/// The medians of `case` on each state, in the order of `states`. One untimed run each
/// first, so the page cache holds the files.
struct Row {
    case: Case,
    wall: Vec<Duration>,
    /// User and system time of the process (all its threads): what other builders on the
    /// machine change least, so a noisy run can still be compared with a quiet one.
    cpu: Vec<Duration>,
}

fn time_case(case: Case, states: &[State], runs: usize) -> Row {
    for state in states {
        run_once(case, state);
    }
    let mut wall: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); states.len()];
    let mut cpu = wall.clone();
    for _ in 0..runs {
        for (index, state) in states.iter().enumerate() {
            let (elapsed, used) = run_once(case, state);
            wall[index].push(elapsed);
            cpu[index].push(used);
        }
    }
    Row { case, wall: wall.into_iter().map(median).collect(), cpu: cpu.into_iter().map(median).collect() }
}

/// The wall-clock and CPU time of one run.
fn run_once(case: Case, state: &State) -> (Duration, Duration) {
    if case == Case::New {
        reset_bookings(state);
    }
    let (command, stdin) = case.command(state);
    let cpu_before = children_cpu();
    let started = Instant::now();
    let child = spawn(command, stdin.as_deref());
    let output = child.wait_with_output().expect("the command finishes");
    let elapsed = started.elapsed();
    expect_success(case.label(), &state.root, &output);
    (elapsed, children_cpu().saturating_sub(cpu_before))
}

/// User plus system time of every child waited for so far; one run at a time, the
/// difference across a run is that run's.
fn children_cpu() -> Duration {
    // SAFETY: a zeroed rusage is a valid value of the plain C struct, and getrusage only
    // writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec.max(0) as u64) + Duration::from_micros(value.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn spawn(mut command: Command, stdin: Option<&str>) -> Child {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).expect("the password is read");
    }
    drop(pipe);
    child
}

fn expect_success(label: &str, root: &Path, output: &Output) {
    assert!(
        output.status.success(),
        "{label} failed on {}: {}\n{}",
        root.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn reset_bookings(state: &State) {
    fs::write(state.root.join("jobs/booking.csv"), &state.booked).expect("booking.csv is put back");
}

/// Bookings per second: the same 16 `book new` (16 students, one free GPU each, at the same
/// time on day 13) one after another, and all at once.
struct Rates {
    sequential: f64,
    parallel: f64,
}

fn booking_rates(state: &State, runs: usize) -> Rates {
    let batch = |parallel: bool| {
        reset_bookings(state);
        let commands = (0..BOOKERS).map(|index| {
            let mut command = binary(env!("CARGO_BIN_EXE_book"), &state.root, NOW);
            command.args(["--user", &format!("bench{index}"), "--password-stdin"]).args(new_args());
            command
        });
        let stdin = format!("{PASSWORD}\n");
        let started = Instant::now();
        let outputs: Vec<Output> = if parallel {
            let children: Vec<Child> = commands.map(|command| spawn(command, Some(&stdin))).collect();
            children.into_iter().map(|child| child.wait_with_output().expect("book finishes")).collect()
        } else {
            commands.map(|command| spawn(command, Some(&stdin)).wait_with_output().expect("book finishes")).collect()
        };
        let elapsed = started.elapsed();
        for output in &outputs {
            expect_success("book new", &state.root, output);
        }
        elapsed
    };
    batch(false);
    let mut sequential = Vec::with_capacity(runs);
    let mut parallel = Vec::with_capacity(runs);
    for _ in 0..runs {
        sequential.push(batch(false));
        parallel.push(batch(true));
    }
    let rate = |times: Vec<Duration>| BOOKERS as f64 / median(times).as_secs_f64();
    Rates { sequential: rate(sequential), parallel: rate(parallel) }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    let middle = times.len() / 2;
    if times.len() % 2 == 1 { times[middle] } else { (times[middle - 1] + times[middle]) / 2 }
}

// ---------------------------------------------------------------------------------------
// The report

struct Results {
    table: Vec<Row>,
    rates: Vec<(usize, Rates)>,
    runs: usize,
    long_history: usize,
    load: String,
}

impl Results {
    /// The median wall-clock time of `case` at `active` bookings and `history` rows, in ms.
    fn ms(&self, case: Case, active: usize, history: usize) -> f64 {
        self.ms_of(Clock::Wall, case, active, history)
    }

    fn ms_of(&self, clock: Clock, case: Case, active: usize, history: usize) -> f64 {
        let row = self.table.iter().find(|row| row.case == case).expect("every case is timed");
        let medians = match clock {
            Clock::Wall => &row.wall,
            Clock::Cpu => &row.cpu,
        };
        let index = states_order(self.long_history).position(|state| state == (active, history)).expect("a state");
        medians[index].as_secs_f64() * 1e3
    }

    fn ratio(&self, clock: Clock, case: Case, active: usize) -> f64 {
        self.ms_of(clock, case, active, self.long_history) / self.ms_of(clock, case, active, 0)
    }

    fn report_rows_per_second(&self, active: usize) -> f64 {
        self.long_history as f64 / (self.ms(Case::Report, active, self.long_history) / 1e3)
    }

    fn markdown(&self) -> String {
        let long = count(self.long_history);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nMedians of {} runs in ms, whole process (1k = 1,000 active bookings, {long} = {} rows of history; \
             load average {}):\n",
            self.runs,
            thousands(self.long_history),
            self.load
        );
        self.write_table(&mut out, Clock::Wall);
        let _ = writeln!(
            out,
            "\nCPU time (user + system, all threads) of the same runs, medians in ms: less changed by other \
             work on the machine than the times above.\n"
        );
        self.write_table(&mut out, Clock::Cpu);
        let _ = writeln!(
            out,
            "\n16 `book new` at once (16 students, one GPU each) against the same 16 one after another:\n"
        );
        let _ = writeln!(out, "| state | sequential | 16 parallel | parallel / sequential |");
        let _ = writeln!(out, "|---|---|---|---|");
        for (active, rates) in &self.rates {
            let _ = writeln!(
                out,
                "| {} / {long} | {:.0} bookings/s | {:.0} bookings/s | {:.2}× |",
                count(*active),
                rates.sequential,
                rates.parallel,
                rates.parallel / rates.sequential
            );
        }
        let _ = writeln!(out, "\nIssue 14's targets:\n");
        let _ = writeln!(out, "| target | measured | |");
        let _ = writeln!(out, "|---|---|---|");
        for target in self.targets() {
            let verdict = if target.met() {
                "PASS"
            } else if target.at_most {
                "over"
            } else {
                "under"
            };
            let _ = writeln!(out, "| {} | {} | {verdict} |", target.name, target.shown);
        }
        out
    }

    /// The table: the empty state, then the long history at 1k and at 10k; and the
    /// long history's cost at 1k and at 10k.
    fn write_table(&self, out: &mut String, clock: Clock) {
        let long = count(self.long_history);
        let _ = writeln!(out, "| command | 0 active | 1k / {long} | 10k / {long} | {long}/0 at 1k | {long}/0 at 10k |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for row in &self.table {
            let case = row.case;
            let columns = [(0, 0), (1_000, self.long_history), (10_000, self.long_history)];
            let mut cells: Vec<String> = columns
                .iter()
                .map(|&(active, history)| milliseconds(self.ms_of(clock, case, active, history)))
                .collect();
            if case == Case::Report && clock == Clock::Wall {
                cells[1] = format!("{} (≈{:.1} M rows/s)", cells[1], self.report_rows_per_second(1_000) / 1e6);
            }
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} |",
                case.label(),
                cells.join(" | "),
                self.ratio(clock, case, 1_000),
                self.ratio(clock, case, 10_000)
            );
        }
    }

    fn targets(&self) -> Vec<Target> {
        let long = count(self.long_history);
        let mut targets = Vec::new();
        let at_1k =
            [(Case::ListJson, 8.0), (Case::Free, 8.0), (Case::Timeline, 8.0), (Case::New, 10.0), (Case::Status, 10.0)];
        for (case, limit) in at_1k {
            targets.push(Target::ms(
                format!("{} at 1k / {long} ≤ {limit} ms", case.label()),
                self.ms(case, 1_000, self.long_history),
                limit,
            ));
        }
        for (case, _) in at_1k {
            let name = format!("{} at 10k / {long} ≤ 20 ms", case.label());
            targets.push(Target::ms(name, self.ms(case, 10_000, self.long_history), 20.0));
        }
        for (case, _) in at_1k {
            for active in [1_000, 10_000] {
                let name = format!("{} at {}: {long} / 0 history ≤ 1.1", case.label(), count(active));
                targets.push(Target::ratio(name, self.ratio(Clock::Wall, case, active), 1.1));
            }
        }
        for (active, rates) in &self.rates {
            let name = format!("16 parallel `book new` at {} / {long} ≥ 1.7 × sequential", count(*active));
            targets.push(Target::at_least(
                name,
                rates.parallel / rates.sequential,
                1.7,
                format!("{:.2}×", rates.parallel / rates.sequential),
            ));
        }
        if let Some((_, rates)) = self.rates.iter().find(|(active, _)| *active == 1_000) {
            let name = format!("sequential `book new` at 1k / {long} ≥ 150 bookings/s");
            targets.push(Target::at_least(
                name,
                rates.sequential,
                150.0,
                format!("{:.0} bookings/s", rates.sequential),
            ));
        }
        let monitor = self.table.iter().map(|row| row.case).find(|case| matches!(case, Case::Monitor { .. }));
        if let Some(monitor) = monitor {
            let name = format!("{} at 10k / {long} ≤ 8 ms", monitor.label());
            targets.push(Target::ms(name, self.ms(monitor, 10_000, self.long_history), 8.0));
        }
        let name = format!("`enroll check` at 10k / {long} ≤ 100 ms");
        targets.push(Target::ms(name, self.ms(Case::Check, 10_000, self.long_history), 100.0));
        for active in [1_000, 10_000] {
            let rate = self.report_rows_per_second(active);
            let name = format!("`enroll report` at {} / {long} ≥ 5 M history rows/s", count(active));
            targets.push(Target::at_least(name, rate, 5e6, format!("{:.1} M rows/s", rate / 1e6)));
        }
        targets
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Clock {
    Wall,
    Cpu,
}

struct Target {
    name: String,
    value: f64,
    limit: f64,
    /// The value may be at most the limit (a time); otherwise at least (a rate).
    at_most: bool,
    shown: String,
}

impl Target {
    fn ms(name: String, value: f64, limit: f64) -> Target {
        Target { name, value, limit, at_most: true, shown: format!("{} ms", milliseconds(value)) }
    }

    fn ratio(name: String, value: f64, limit: f64) -> Target {
        Target { name, value, limit, at_most: true, shown: format!("{value:.2}") }
    }

    fn at_least(name: String, value: f64, limit: f64, shown: String) -> Target {
        Target { name, value, limit, at_most: false, shown }
    }

    fn met(&self) -> bool {
        if self.at_most { self.value <= self.limit } else { self.value >= self.limit }
    }
}

/// `(active, history)` of each state, in the order `main` builds them.
fn states_order(long_history: usize) -> impl Iterator<Item = (usize, usize)> {
    ACTIVE.into_iter().flat_map(move |active| [(active, 0), (active, long_history)])
}

/// As the issue writes them: one decimal under 10 ms, whole milliseconds above.
fn milliseconds(value: f64) -> String {
    if value < 10.0 { format!("{value:.1}") } else { thousands(value.round() as usize) }
}

fn thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// 1,000,000 as `1M`, 10,000 as `10k`.
fn count(value: usize) -> String {
    match value {
        0 => "0".into(),
        _ if value.is_multiple_of(1_000_000) => format!("{}M", value / 1_000_000),
        _ if value.is_multiple_of(1_000) => format!("{}k", value / 1_000),
        _ => thousands(value),
    }
}

// ---------------------------------------------------------------------------------------
// The generated states

fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("a time")
}

fn half_hours(count: i64) -> Span {
    Span::minutes(30 * count)
}

fn stamp(time: NaiveDateTime) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A fixed sequence of numbers that look random, so every run builds the same states.
fn scatter(index: usize) -> u64 {
    let mut value = (index as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

/// What a booking on `lane` holds: its GPUs, CPUs and memory. Every lane at its largest at
/// once fits the host (240 of 256 CPUs, 1,024 of 1,024 GB).
fn lane_shape(lane: usize, index: usize) -> (String, &'static str, u32) {
    if lane < SINGLE_LANES {
        let (cpus, memory) = [("2", 8), ("3.5", 12), ("4", 16)][(scatter(index) % 3) as usize];
        (format!("[{lane}]"), cpus, memory)
    } else {
        let first = SINGLE_LANES + 2 * (lane - SINGLE_LANES);
        (format!("\"[{first}, {}]\"", first + 1), "6", 32)
    }
}

/// `count` active bookings as CSV rows (no header): the lanes filled back to back over the
/// coming 12 days, each booking in a slot of the same grid on every lane and ending 0 to a
/// third of a slot early; the first slot began before now, so its bookings are running. A
/// student holds at most one booking per slot, so nobody's bookings overlap.
/// Returns the rows that have begun at `NOW`, those still to come, and the first start.
fn active_rows(count: usize) -> (String, String, NaiveDateTime) {
    let per_lane = count.div_ceil(LANES).max(1);
    let slot = (FILLED_HALF_HOURS / per_lane as i64).max(1);
    let now = at(NOW);
    let first_start = if count == 0 { now } else { now - half_hours(slot / 2) };
    let (mut running, mut booked) = (String::new(), String::new());
    for index in 0..count {
        let (position, lane) = (index / LANES, index % LANES);
        let start = first_start + half_hours(position as i64 * slot);
        let early = (scatter(index) % (slot as u64 / 3 + 1)) as i64;
        let end = start + half_hours(slot - early);
        let user = index % USERS;
        let (gpus, cpus, memory) = lane_shape(lane, index);
        let rows = if start <= now { &mut running } else { &mut booked };
        let _ = writeln!(rows, "{},{},u{user},{cpus},{memory},{gpus},{},,", stamp(start), stamp(end), 10_001 + user);
    }
    (running, in_booking_order(&booked), first_start)
}

/// The rows by start, then user id, as `book` and the monitor keep `booking.csv`: a file
/// the tools wrote is in this order.
fn in_booking_order(rows: &str) -> String {
    let key = |line: &&str| {
        let fields: Vec<&str> = line.splitn(4, ',').collect();
        (fields[0].to_string(), fields.get(2).copied().unwrap_or("").to_string())
    };
    let mut lines: Vec<&str> = rows.lines().collect();
    lines.sort_by_key(key);
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// `rows` of history: the same lanes going back from the day before now, four-hour slots,
/// each booking ending up to 1.5 hours early, one in twenty cancelled before it started
/// (recorded with its end at its start).
fn write_history(path: &Path, rows: usize) {
    let file = fs::File::create(path).expect("the history file");
    let mut out = BufWriter::new(file);
    writeln!(out, "{HEADER}").expect("history");
    let slots = rows.div_ceil(LANES) as i64;
    let first_start = at(NOW) - Span::days(1) - half_hours(8 * slots);
    for index in 0..rows {
        let (position, lane) = (index / LANES, index % LANES);
        let start = first_start + half_hours(8 * position as i64);
        let end =
            if scatter(index).is_multiple_of(20) { start } else { start + half_hours(8 - (scatter(index) % 4) as i64) };
        let user = (index * 7) % USERS;
        let (gpus, cpus, memory) = lane_shape(lane, index);
        writeln!(out, "{},{},u{user},{cpus},{memory},{gpus},{},,", stamp(start), stamp(end), 10_001 + user)
            .expect("history");
    }
    out.flush().expect("history");
}

const HEADER: &str = "start,end,user_id,cpus,memory,gpus,forward_port,image,extra_command";

/// `users_config.yaml` with every student registered, all with one password: one student
/// registers through the binary (as at a first login) in a scratch root, and their hash is
/// given to everyone.
fn users_config(scratch: &Path) -> String {
    let seed = scratch.join("seed");
    write_config(&seed, "", "self_registration: [bench0]\n");
    write_jobs(&seed, "", "", None);
    let mut command = binary(env!("CARGO_BIN_EXE_book"), &seed, NOW);
    command.args(["--user", "bench0", "--password-stdin", "list", "--mine"]);
    let output = spawn(command, Some(&format!("{PASSWORD}\n"))).wait_with_output().expect("book finishes");
    expect_success("registering bench0", &seed, &output);
    let written = fs::read_to_string(seed.join("cfg/users/users_config.yaml")).expect("users_config.yaml");
    let hash = written
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .expect("bench0's password hash")
        .to_string();
    let mut config = String::new();
    let names = (0..USERS)
        .map(|user| (format!("u{user}"), 10_001 + user))
        .chain((0..BOOKERS).map(|index| (format!("bench{index}"), 10_001 + USERS + index)));
    for (name, port) in names {
        let _ = writeln!(
            config,
            "{name}:\n  password: {hash}\n  forward_port: {port}\n  image: null\n  extra_command: null\n  \
             volume_work_dir: ./volumes/work/{name}\n  volume_dataset_dir: ./volumes/dataset\n  \
             volume_backup_dir: ./volumes/backup/{name}\n"
        );
    }
    config
}

fn write_config(root: &Path, users_config: &str, login: &str) {
    let users = root.join("cfg/users");
    fs::create_dir_all(&users).expect("cfg/users");
    // The folder the booking account writes: private, as `enroll check` wants it.
    fs::set_permissions(&users, fs::Permissions::from_mode(0o700)).expect("cfg/users mode");
    fs::write(
        root.join("cfg/host_deploy.yaml"),
        "volume_work_dir: ./volumes/work\nvolume_dataset_dir: ./volumes/dataset\nvolume_backup_dir: ./volumes/backup\n\
         users_config_yaml: ./cfg/users/users_config.yaml\ncapability_config_yaml: ./cfg/capability_config.yaml\n\
         images:\n  - bench:latest\n",
    )
    .expect("host_deploy.yaml");
    let mut allowed = String::new();
    for user in 0..USERS {
        let _ = writeln!(allowed, "  - u{user}");
    }
    for index in 0..BOOKERS {
        let _ = writeln!(allowed, "  - bench{index}");
    }
    fs::write(
        root.join("cfg/capability_config.yaml"),
        format!(
            "max:\n  cpus: 256\n  ram: 1024\n  swap_size: 0\n  gpus: {HOST_GPUS}\n  memory: ram + swap_size\n  \
             shm_rate: ram / (ram + swap_size)\n  backup_space: 1000\n  work_space: 1000\n\
             allow_userIDs:\n{allowed}max_default_capability:\n  cpus: 8\n  memory: 32\n  gpus: 2\n  \
             backup_space: 50\n  work_space: 200\n"
        ),
    )
    .expect("capability_config.yaml");
    let users_file = users.join("users_config.yaml");
    fs::write(&users_file, users_config).expect("users_config.yaml");
    fs::set_permissions(&users_file, fs::Permissions::from_mode(0o600)).expect("users_config.yaml mode");
    if !login.is_empty() {
        fs::write(root.join("cfg/login.yaml"), login).expect("login.yaml");
    }
}

/// `jobs/` with the given rows. The history is a copy of the one generated file (a hard link
/// would be refused: the tools read only files with one name in the folders they write).
fn write_jobs(root: &Path, booked: &str, running: &str, history: Option<&Path>) {
    let jobs = root.join("jobs");
    fs::create_dir_all(&jobs).expect("jobs");
    fs::write(jobs.join("booking.csv"), format!("{HEADER}\n{booked}")).expect("booking.csv");
    fs::write(jobs.join("using.csv"), format!("{HEADER}\n{running}")).expect("using.csv");
    match history {
        Some(source) => {
            fs::copy(source, jobs.join("used.csv")).expect("used.csv");
        }
        None => fs::write(jobs.join("used.csv"), format!("{HEADER}\n")).expect("used.csv"),
    }
}

fn build_state(folder: &Path, active: usize, history: usize, history_file: Option<&Path>, users_config: &str) -> State {
    let (running, booked, first_start) = active_rows(active);
    let root = folder.join("root");
    write_config(&root, users_config, "");
    write_jobs(&root, &booked, &running, history_file);
    // The monitor's twin: everything booked, nothing begun half an hour before the first start.
    let monitor_root = folder.join("monitor");
    write_config(&monitor_root, users_config, "");
    write_jobs(&monitor_root, &format!("{running}{booked}"), "", history_file);
    let monitor_now = (first_start - half_hours(1)).format("%Y-%m-%d %H:%M").to_string();
    let booked = fs::read(root.join("jobs/booking.csv")).expect("booking.csv");
    State { active, history, root, monitor_root, monitor_now, booked }
}
