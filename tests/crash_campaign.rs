//! The crash and race campaign: commands killed with `kill -9` at every write, rename, flush
//! and removal they make (and at random moments), and `book` racing a monitor pass on the
//! real engine. After each, what a student and an admin would check: every booking in exactly
//! one of `booking.csv`, `using.csv` and `used.csv`, no history row twice, no request lost, no
//! temporary file left once the next normal run has been, and nothing reported done that did
//! not stay done.
//!
//! Size: `GPU_BOOKING_CAMPAIGN_SIZE` random kills per command and races per kind (CI runs the
//! default, 3; the figures in the README come from 200 kills and 100 races, see "Development").
//! The kills at system calls are exact: the command runs under `strace`, which sends SIGKILL at
//! the Nth call of one kind, for every N until the command gets through; so each test covers
//! every such point of every command whatever its size. `GPU_BOOKING_CAMPAIGN_SEED` picks the
//! random moments (printed, so a failure can be replayed).
//!
//! Needs `strace` (and the engine for the monitor and the races); without them each test says
//! why and skips, unless `GPU_BOOKING_REQUIRE_DOCKER=1` (CI), when it fails instead.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::docker::*;
use support::images;
use support::lab::*;
use support::run::*;
use support::schedule::*;
use support::snapshot::*;

/// The system calls a command is killed at: each is a step between two states of the files.
const KILL_POINTS: [&str; 9] =
    ["openat", "write", "fsync", "fdatasync", "rename", "renameat", "renameat2", "unlinkat", "flock"];
/// The same for a monitor pass, whose many reads and Docker calls are covered by the random
/// moments: the renames that commit a change (each file written, the journal, a backup swapped
/// in), and at full size the flushes and removals too.
const MONITOR_KILL_POINTS: [&str; 3] = ["rename", "renameat", "renameat2"];
const MONITOR_KILL_POINTS_FULL_SIZE: [&str; 3] = ["fsync", "fdatasync", "unlinkat"];

fn campaign_size() -> usize {
    std::env::var("GPU_BOOKING_CAMPAIGN_SIZE").ok().and_then(|text| text.parse().ok()).unwrap_or(3)
}

/// A small seeded generator: the campaign needs no statistics, only moments that differ.
struct Moments(u64);

impl Moments {
    fn new() -> Moments {
        let seed = std::env::var("GPU_BOOKING_CAMPAIGN_SEED")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15);
        println!("campaign seed: {seed} (GPU_BOOKING_CAMPAIGN_SEED replays it)");
        Moments(seed | 1)
    }

    fn below(&mut self, limit: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let micros = limit.as_micros().max(1) as u64;
        Duration::from_micros(self.0 % micros)
    }
}

fn strace_or_skip(test: &str) -> bool {
    images::runs("strace", &["-V"])
        || images::skip_or_fail(
            test,
            "strace is missing (install it to run the crash campaign: apt-get install strace)",
        )
}

/// `strace` around `binary`, killing it at the `occurrence`th call of `call` (counted per
/// thread, which for a single-threaded `book` is the process).
fn killed_at(call: &str, occurrence: usize, binary: &str) -> Command {
    let mut command = Command::new("strace");
    command.args([
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        &format!("--trace={call}"),
        &format!("--inject={call}:signal=KILL:when={occurrence}"),
        "--",
        binary,
    ]);
    command
}

/// Runs `command` and kills it after `delay` if it has not finished; whether it was killed.
fn run_killed_after(mut command: Command, now: &str, stdin: Option<&str>, delay: Duration) -> bool {
    hermetic(&mut command, Some(now));
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("start the command");
    if let Some(text) = stdin {
        use std::io::Write as _;
        let _ = child.stdin.take().expect("a piped stdin").write_all(text.as_bytes());
    }
    // The moment of the kill is what is random here; nothing waits on a result.
    std::thread::sleep(delay);
    let killed = child.kill().is_ok();
    let status = child.wait().expect("wait for the command");
    killed && status.code().is_none()
}

/// Puts `cfg/` and `jobs/` back to `saved` (made by [`snapshot`]): files that appeared are
/// removed, the others rewritten.
fn restore(root: &Path, saved: &Snapshot) {
    let in_state_folders = |path: &str| path.starts_with("cfg/") || path.starts_with("jobs/");
    for (path, entry) in snapshot(root) {
        if in_state_folders(&path) && entry != Entry::Folder && !saved.contains_key(&path) {
            fs::remove_file(root.join(&path)).unwrap_or_else(|error| panic!("remove {path}: {error}"));
        }
    }
    for (path, entry) in saved.iter().filter(|(path, _)| in_state_folders(path)) {
        if let Entry::File(bytes) = entry {
            fs::write(root.join(path), bytes).unwrap_or_else(|error| panic!("restore {path}: {error}"));
        }
    }
}

/// Temporary files, interrupted changes and queued requests left in the state folders.
fn debris(root: &Path) -> Vec<String> {
    snapshot(root)
        .into_keys()
        .filter(|path| path.starts_with("cfg/") || path.starts_with("jobs/"))
        .filter(|path| {
            let name = path.rsplit('/').next().unwrap_or("");
            name.ends_with(".tmp")
                || name == ".journal"
                || name == ".batch"
                || name.starts_with(".request-")
                || name.starts_with(".answer-")
        })
        .collect()
}

/// How many rows of `relative` belong to `(user, start)`.
fn count(lab: &Lab, relative: &str, user: &str, start: &str) -> usize {
    lab.keys(relative).iter().filter(|(row_user, row_start)| row_user == user && row_start == start).count()
}

/// Where the booking `(user, start)` is: the files holding it, each as often as it does.
fn whereabouts(lab: &Lab, user: &str, start: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for relative in [BOOKING, USING, USED] {
        for _ in 0..count(lab, relative, user, start) {
            found.push(relative);
        }
    }
    found
}

fn request_lines(lab: &Lab) -> Vec<String> {
    lab.read(MONITOR_EXEC).lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_string).collect()
}

// ---- killed `book` and `enroll` commands ---------------------------------------------------

/// The users of the command campaign: `g` has a booking tomorrow, `h` a running one, `i` books.
struct CommandScenario {
    lab: Lab,
    g: String,
    h: String,
    i: String,
    saved: Snapshot,
}

const TOMORROW: &str = "2026-11-24 10:00:00";
const RUNNING_SINCE: &str = "2026-11-23 09:00:00";

impl CommandScenario {
    fn new() -> CommandScenario {
        let lab = Lab::docker("crash", &["g", "h", "i"]);
        lab.register_all();
        let (g, h, i) = (lab.user(0).to_string(), lab.user(1).to_string(), lab.user(2).to_string());
        lab.add_booking_row(BOOKING, &g, TOMORROW, "2026-11-24 12:00:00", "1", "1");
        lab.add_booking_row(USING, &h, RUNNING_SINCE, "2026-11-23 12:00:00", "1", "1");
        lab.add_booking_row(USED, &g, "2026-11-20 10:00:00", "2026-11-20 11:00:00", "1", "1");
        // A request someone made earlier: no command may lose it.
        lab.write(MONITOR_EXEC, &format!("{g}\n"));
        let saved = snapshot(lab.root());
        CommandScenario { lab, g, h, i, saved }
    }

    /// `(binary, arguments, standard input)` of each command.
    fn command(&self, name: &str) -> (&'static str, Vec<String>, Option<String>) {
        let root = self.lab.root().display().to_string();
        let book = |user: &str, args: &[&str]| {
            let mut all: Vec<String> =
                ["--root", &root, "--user", user, "--password-stdin"].iter().map(|word| word.to_string()).collect();
            all.extend(args.iter().map(|word| word.to_string()));
            (env!("CARGO_BIN_EXE_book"), all, Some(format!("{PASSWORD}\n")))
        };
        match name {
            "book new" => book(&self.i, &[&new_booking_args("1", "1", "0", "now", "1-hour")[..], &["--yes"]].concat()),
            "book cancel" => book(&self.g, &["cancel", "--start", "2026 11 24 10 00"]),
            "book extend" => book(&self.h, &["extend", "--end", "2026 11 23 14 00"]),
            "book restart" => book(&self.h, &["restart"]),
            "enroll remove --force" => (
                env!("CARGO_BIN_EXE_enroll"),
                vec!["--root".into(), root, "remove".into(), self.g.clone(), "--force".into()],
                None,
            ),
            other => panic!("no command {other}"),
        }
    }

    fn spawnable(&self, name: &str, under_strace: Option<(&str, usize)>) -> (Command, Option<String>) {
        let (binary, args, stdin) = self.command(name);
        let mut command = match under_strace {
            Some((call, occurrence)) => killed_at(call, occurrence, binary),
            None => Command::new(binary),
        };
        command.args(args);
        (command, stdin)
    }

    /// What must hold after a killed run: `done` says whether the command may have finished
    /// (after the kill it may or may not have; after a normal run it has).
    fn check(&self, name: &str, context: &str, done: Option<bool>) {
        let lab = &self.lab;
        // A reader first: it completes what a killed writer left half made, as any next run does.
        let listed = lab.book_as(&self.h, &["list", "--json"]).run();
        listed.expect(0, &format!("{context}: book list after it"));
        let (g, h, i) = (&self.g, &self.h, &self.i);
        let requests = request_lines(lab);
        assert!(requests.contains(g), "{context}: the earlier request {g:?} was lost: {requests:?}");
        let g_booking = whereabouts(lab, g, TOMORROW);
        let h_booking = whereabouts(lab, h, RUNNING_SINCE);
        let i_booking = whereabouts(lab, i, "2026-11-23 10:00:00");
        assert_eq!(count(lab, USED, g, "2026-11-20 10:00:00"), 1, "{context}: the history row of g");
        assert_eq!(h_booking, [USING], "{context}: h's running booking, in exactly one file");
        let h_end = lab.rows(USING).into_iter().find(|row| &row["user_id"] == h).map(|row| row["end"].clone());
        match name {
            "book new" => {
                assert!(i_booking.is_empty() || i_booking == [BOOKING], "{context}: i's new booking: {i_booking:?}");
                if !i_booking.is_empty() {
                    assert!(requests.iter().any(|line| line == "now"), "{context}: booked now, but no `now` request");
                }
            }
            "book cancel" | "enroll remove --force" => {
                assert!(
                    g_booking == [BOOKING] || g_booking == [USED],
                    "{context}: g's booking must be in one file: {g_booking:?}"
                );
                if g_booking == [USED] {
                    let row = lab.rows(USED).into_iter().find(|row| &row["user_id"] == g && row["start"] == TOMORROW);
                    assert_eq!(row.map(|row| row["end"].clone()), Some(TOMORROW.to_string()), "{context}: cancelled");
                }
            }
            "book extend" => {
                assert!(
                    matches!(h_end.as_deref(), Some("2026-11-23 12:00:00" | "2026-11-23 14:00:00")),
                    "{context}: h's end {h_end:?}"
                );
            }
            "book restart" => {
                let asked = requests.iter().filter(|line| *line == h).count();
                assert!(asked <= 1, "{context}: one restart asked, {asked} recorded");
            }
            _ => unreachable!(),
        }
        if name != "book new" {
            assert!(i_booking.is_empty(), "{context}: a booking of i appeared");
        }
        if name != "book cancel" && name != "enroll remove --force" {
            assert_eq!(g_booking, [BOOKING], "{context}: g's booking moved");
        }
        if done == Some(true) {
            match name {
                "book new" => assert_eq!(i_booking, [BOOKING], "{context}: the new booking"),
                "book cancel" | "enroll remove --force" => assert_eq!(g_booking, [USED], "{context}: cancelled"),
                "book extend" => assert_eq!(h_end.as_deref(), Some("2026-11-23 14:00:00"), "{context}: extended"),
                "book restart" => assert!(requests.contains(h), "{context}: the restart request"),
                _ => unreachable!(),
            }
            if name == "enroll remove --force" {
                assert!(!lab.read("cfg/capability_config.yaml").contains(g.as_str()), "{context}: g is still allowed");
            }
        }
    }

    /// The retry a user makes after a killed command, then the checks of a finished one.
    fn retry_and_check(&self, name: &str, context: &str) {
        let (command, stdin) = self.spawnable(name, None);
        let retried = run_at(command, NOW, stdin.as_deref());
        retried.assert_no_panic(&format!("{context}: the retry"));
        self.check(name, &format!("{context}, then retried ({retried})"), Some(true));
        let left = debris(self.lab.root());
        assert!(left.is_empty(), "{context}: left after the next normal run: {left:?}");
    }
}

const COMMANDS: [&str; 5] = ["book new", "book cancel", "book extend", "book restart", "enroll remove --force"];

#[test]
fn commands_killed_at_any_step_lose_nothing() {
    if !strace_or_skip("commands_killed_at_any_step_lose_nothing") {
        return;
    }
    let scenario = CommandScenario::new();
    let mut moments = Moments::new();
    for name in COMMANDS {
        let mut kills = 0;
        // Every kill point of the command, exactly.
        for call in KILL_POINTS {
            for occurrence in 1.. {
                restore(scenario.lab.root(), &scenario.saved);
                let (command, stdin) = scenario.spawnable(name, Some((call, occurrence)));
                let outcome = run_at(command, NOW, stdin.as_deref());
                let context = format!("{name} killed at {call} #{occurrence}");
                if outcome.code.is_some() {
                    // Got through: no more calls of this kind to kill at.
                    outcome.assert_no_panic(&context);
                    scenario.check(name, &format!("{context} (it got through)"), Some(true));
                    break;
                }
                kills += 1;
                scenario.check(name, &context, None);
                scenario.retry_and_check(name, &context);
                assert!(occurrence < 500, "{context}: the command never got through");
            }
        }
        // And at random moments, as a power cut or an OOM kill would.
        restore(scenario.lab.root(), &scenario.saved);
        let (command, stdin) = scenario.spawnable(name, None);
        let started = Instant::now();
        run_at(command, NOW, stdin.as_deref()).expect(0, &format!("{name}, not killed"));
        let length = started.elapsed();
        for round in 0..campaign_size() {
            restore(scenario.lab.root(), &scenario.saved);
            let delay = moments.below(length);
            let (command, stdin) = scenario.spawnable(name, None);
            let killed = run_killed_after(command, NOW, stdin.as_deref(), delay);
            let context = format!("{name} killed after {delay:?} (round {round}, killed: {killed})");
            scenario.check(name, &context, None);
            scenario.retry_and_check(name, &context);
            kills += usize::from(killed);
        }
        println!("{name}: {kills} kills, nothing lost");
    }
}

// ---- a `book new` killed while another waits for it ----------------------------------------

/// `i`'s `book new` killed at every step while `g`'s request waits for it in the queue (left by
/// this test, which holds the request's `flock` as a waiting `book new` does). After the kill,
/// this test takes the lock as the waiter would: the answer it reads says booked exactly when
/// `g`'s row is in `booking.csv`, and the row is there once. A holder that got through books
/// and answers the request.
#[test]
fn a_holder_killed_at_any_step_answers_a_waiting_request_truly() {
    use gpu_booking::booking::{NewBooking, leave_request};
    use gpu_booking::store::queue::Answer;
    use gpu_booking::store::root::Root;

    if !strace_or_skip("a_holder_killed_at_any_step_answers_a_waiting_request_truly") {
        return;
    }
    let scenario = CommandScenario::new();
    let root = Root::new(scenario.lab.root());
    let time = |text: &str| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
    const WAITING_START: &str = "2026-11-25 10:00:00";
    let request = NewBooking {
        user: gpu_booking::model::UserId::parse(&scenario.g).unwrap(),
        cpus: 1.0,
        memory: 1,
        gpus: 1,
        start: time(WAITING_START),
        end: time("2026-11-25 11:00:00"),
        image: None,
        extra_command: None,
        forward_port: None,
    };
    let (mut kills, mut answered) = (0, 0);
    for call in KILL_POINTS {
        for occurrence in 1.. {
            restore(scenario.lab.root(), &scenario.saved);
            let waiting = leave_request(&root, &request, false).expect("the request is left");
            let (command, stdin) = scenario.spawnable("book new", Some((call, occurrence)));
            let outcome = run_at(command, NOW, stdin.as_deref());
            let context = format!("book new killed at {call} #{occurrence} while a request waited");
            {
                // The holder's end lets the lock go; the waiter takes it, which settles what
                // the holder left, and reads its answer.
                let lab = gpu_booking::lab::Lab::new(root.clone());
                let writing = lab.write().unwrap_or_else(|error| panic!("{context}: the lock: {error:#}"));
                let answer = waiting.answer(writing.lock()).unwrap_or_else(|error| panic!("{context}: {error:#}"));
                let g_rows = whereabouts(&scenario.lab, &scenario.g, WAITING_START);
                match &answer {
                    Some(Answer::Booked(row)) => {
                        assert_eq!(g_rows, [BOOKING], "{context}: answered booked, so in booking.csv once");
                        assert_eq!(row.start, request.start, "{context}: the row answered");
                        answered += 1;
                    }
                    _ => assert!(g_rows.is_empty(), "{context}: booked, but answered {answer:?}"),
                }
                if outcome.code.is_some() {
                    assert!(
                        matches!(answer, Some(Answer::Booked(_))),
                        "{context}: the holder got through without booking the request: {answer:?}"
                    );
                }
                waiting.withdraw(writing.lock());
            }
            if outcome.code.is_some() {
                outcome.assert_no_panic(&context);
                scenario.check("book new", &format!("{context} (it got through)"), Some(true));
                break;
            }
            kills += 1;
            scenario.check("book new", &context, None);
            scenario.retry_and_check("book new", &context);
            assert!(occurrence < 500, "{context}: the command never got through");
        }
    }
    println!("book new holding a queued request: {kills} kills, {answered} answered booked, nothing lost");
}

// ---- killed monitor passes -----------------------------------------------------------------

/// The users of the monitor campaign: at 10:00 `d`'s booking ends, `e`'s starts, and `f`, who
/// runs on, has asked for a restart.
struct PassScenario {
    lab: Lab,
    d: String,
    e: String,
    f: String,
    saved: Snapshot,
    day: i64,
}

impl PassScenario {
    fn new() -> PassScenario {
        let lab = Lab::docker("crashpass", &["d", "e", "f"]);
        lab.register_all();
        let (d, e, f) = (lab.user(0).to_string(), lab.user(1).to_string(), lab.user(2).to_string());
        let saved = snapshot(lab.root());
        PassScenario { lab, d, e, f, saved, day: 0 }
    }

    /// `hh:mm` on this round's day (each round has its own day, so no row repeats).
    fn at(&self, time: &str) -> String {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap() + chrono::Days::new(self.day as u64);
        format!("{day} {time}:00")
    }

    fn now(&self, time: &str) -> String {
        self.at(time)[..16].to_string()
    }

    /// A fresh round: the files as saved, the three bookings, `d` and `f` started by a pass at
    /// 09:00, and `f`'s restart request.
    fn next_round(&mut self) -> usize {
        self.day += 1;
        let lab = &self.lab;
        let _ = docker(&["rm", "-f", &self.d, &self.e, &self.f]);
        restore(lab.root(), &self.saved);
        lab.add_booking_row(BOOKING, &self.d, &self.at("09:00"), &self.at("10:00"), "1", "1");
        lab.add_booking_row(BOOKING, &self.f, &self.at("09:00"), &self.at("12:00"), "1", "1");
        lab.add_booking_row(BOOKING, &self.e, &self.at("10:00"), &self.at("11:00"), "1", "1");
        lab.monitor(&self.now("09:00")).expect(0, "the pass at 09:00 that starts d and f");
        lab.write(MONITOR_EXEC, &format!("{}\n", self.f));
        self.restarts_of_f()
    }

    fn restarts_of_f(&self) -> usize {
        self.lab.log_lines("", &[&format!("{}'s container was restarted on request", self.f)]).len()
    }

    fn pass_at_ten(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_monitor"));
        command.arg("--root").arg(self.lab.root());
        command
    }

    fn check_after_kill(&self, context: &str) {
        let lab = &self.lab;
        lab.book_as(&self.d, &["list", "--json"])
            .now(&self.now("10:00"))
            .expect(0, &format!("{context}: book list after it"));
        let (d, e, f) = (
            whereabouts(lab, &self.d, &self.at("09:00")),
            whereabouts(lab, &self.e, &self.at("10:00")),
            whereabouts(lab, &self.f, &self.at("09:00")),
        );
        assert!(d == [USING] || d == [USED], "{context}: d's ending booking must be in one file: {d:?}");
        assert!(e == [BOOKING] || e == [USING], "{context}: e's starting booking must be in one file: {e:?}");
        assert_eq!(f, [USING], "{context}: f's running booking");
    }

    fn finish_and_check(&self, restarts_before: usize, context: &str) {
        let lab = &self.lab;
        let pass = run_at(self.pass_at_ten(), &self.now("10:00"), None);
        pass.expect(0, &format!("{context}: the next pass"));
        let context = format!("{context}, then the next pass");
        let (d, e, f) = (
            whereabouts(lab, &self.d, &self.at("09:00")),
            whereabouts(lab, &self.e, &self.at("10:00")),
            whereabouts(lab, &self.f, &self.at("09:00")),
        );
        assert_eq!(d, [USED], "{context}: d's booking ended, recorded once");
        assert_eq!(e, [USING], "{context}: e's booking runs");
        assert_eq!(f, [USING], "{context}: f's booking runs");
        assert!(inspect(&self.d).is_none(), "{context}: d's container is gone");
        assert!(inspect(&self.e).is_some_and(|container| is_running(&container)), "{context}: e's container runs");
        assert!(inspect(&self.f).is_some_and(|container| is_running(&container)), "{context}: f's container runs");
        assert!(self.restarts_of_f() > restarts_before, "{context}: f's restart was never served:\n{}", lab.log());
        let requests = request_lines(lab);
        assert!(requests.is_empty(), "{context}: requests left after the pass: {requests:?}");
        let left = debris(lab.root());
        assert!(left.is_empty(), "{context}: left after the next pass: {left:?}");
    }
}

#[test]
fn monitor_passes_killed_at_any_step_lose_nothing() {
    if !images::engine_or_skip("monitor_passes_killed_at_any_step_lose_nothing")
        || !strace_or_skip("monitor_passes_killed_at_any_step_lose_nothing")
    {
        return;
    }
    images::busybox_image();
    let mut scenario = PassScenario::new();
    let mut moments = Moments::new();
    let mut kills = 0;
    let full_size = campaign_size() > 3;
    let points: Vec<&str> = MONITOR_KILL_POINTS
        .iter()
        .chain(if full_size { &MONITOR_KILL_POINTS_FULL_SIZE[..] } else { &[] })
        .copied()
        .collect();
    for call in points {
        for occurrence in 1.. {
            let restarts = scenario.next_round();
            let mut command = killed_at(call, occurrence, env!("CARGO_BIN_EXE_monitor"));
            command.arg("--root").arg(scenario.lab.root());
            let outcome = run_at(command, &scenario.now("10:00"), None);
            let context = format!("a pass killed at {call} #{occurrence}");
            if outcome.code.is_some() {
                outcome.expect(0, &format!("{context} (it got through)"));
                break;
            }
            kills += 1;
            scenario.check_after_kill(&context);
            scenario.finish_and_check(restarts, &context);
            assert!(occurrence < 200, "{context}: the pass never got through");
        }
    }
    // A whole pass, to know how long one takes, then kills at random moments within it.
    scenario.next_round();
    let started = Instant::now();
    run_at(scenario.pass_at_ten(), &scenario.now("10:00"), None).expect(0, "a pass, not killed");
    let length = started.elapsed();
    for round in 0..campaign_size() {
        let restarts = scenario.next_round();
        let delay = moments.below(length);
        let killed = run_killed_after(scenario.pass_at_ten(), &scenario.now("10:00"), None, delay);
        let context = format!("a pass killed after {delay:?} (round {round}, killed: {killed})");
        kills += usize::from(killed);
        scenario.check_after_kill(&context);
        scenario.finish_and_check(restarts, &context);
    }
    println!("monitor passes: {kills} kills, nothing lost");
}

// ---- `book` racing a pass ----------------------------------------------------------------

/// `a` extends a booking the pass is ending; `b` cancels one it is starting; `c` asks for a
/// restart while the pass starts (even rounds) or ends (odd rounds) their booking.
struct RaceScenario {
    lab: Lab,
    saved: Snapshot,
    day: u64,
}

impl RaceScenario {
    fn at(&self, time: &str) -> String {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap() + chrono::Days::new(self.day);
        format!("{day} {time}:00")
    }

    fn now(&self, time: &str) -> String {
        self.at(time)[..16].to_string()
    }

    /// The same time as `book` reads it (`YYYY MM DD hh mm`).
    fn typed(&self, time: &str) -> String {
        self.now(time).replace(['-', ':'], " ")
    }

    /// A fresh day with `user`'s booking from `start` to `end`, started by a pass at `start`
    /// when it begins before 10:00.
    fn next_round(&mut self, user: &str, start: &str, end: &str) {
        self.day += 1;
        let _ = docker(&["rm", "-f", user]);
        restore(self.lab.root(), &self.saved);
        self.lab.add_booking_row(BOOKING, user, &self.at(start), &self.at(end), "1", "1");
        if start < "10:00" {
            self.lab.monitor(&self.now(start)).expect(0, &format!("the pass that starts {user}'s booking"));
        }
    }

    /// Runs the pass at 10:00 and, `delay` after it began, `book ARGS` as `user`.
    fn race(&self, user: &str, args: &[&str], delay: Duration) -> (Run, Run) {
        let pass = {
            let pass = self.lab.command("monitor", &[]).now(&self.now("10:00"));
            std::thread::spawn(move || pass.output())
        };
        // The moment `book` comes in is what is random here; nothing waits on a result.
        std::thread::sleep(delay);
        let booked = self.lab.book_as(user, args).now(&self.now("10:00")).run();
        let pass = pass.join().expect("the pass thread");
        pass.assert_no_panic("the pass");
        booked.assert_no_panic(&format!("book {args:?}"));
        (pass, booked)
    }
}

#[test]
fn book_commands_racing_a_pass_are_never_lost() {
    let Some(lab) = Lab::on_engine("race", &["a", "b", "c"]) else { return };
    let (a, b, c) = (lab.user(0).to_string(), lab.user(1).to_string(), lab.user(2).to_string());
    let saved = snapshot(lab.root());
    let mut scenario = RaceScenario { lab, saved, day: 0 };
    let mut moments = Moments::new();
    // How long a pass that starts a container takes: the window `book` is thrown into.
    scenario.next_round(&b, "10:00", "11:00");
    let started = Instant::now();
    scenario.lab.monitor(&scenario.now("10:00")).expect(0, "a pass that starts a container");
    let window = started.elapsed() + started.elapsed() / 4;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut tally = |kind: &str, won: bool| {
        *outcomes.entry(format!("{kind}: {}", if won { "book won" } else { "the pass won" })).or_default() += 1
    };

    for round in 0..campaign_size() {
        // An extension of a booking the pass is ending.
        scenario.next_round(&a, "09:00", "10:00");
        let (_, extended) = scenario.race(&a, &["extend", "--end", &scenario.typed("12:00")], moments.below(window));
        let lab = &scenario.lab;
        let context = format!("extend, round {round}: {extended}");
        let start = scenario.at("09:00");
        if extended.code == Some(0) {
            assert_eq!(whereabouts(lab, &a, &start), [USING], "{context}: extended, then not running");
            let row = lab.rows(USING).into_iter().find(|row| row["user_id"] == a).expect("a's row");
            assert_eq!(row["end"], scenario.at("12:00"), "{context}: with its new end");
            assert!(
                inspect(&a).is_some_and(|container| is_running(&container)),
                "{context}: the extended booking has its container"
            );
        } else {
            assert_eq!(whereabouts(lab, &a, &start), [USED], "{context}: refused, so it ended");
            assert!(inspect(&a).is_none(), "{context}: refused, and its container is gone");
        }
        tally("extend", extended.code == Some(0));

        // A cancellation of a booking the pass is starting.
        scenario.next_round(&b, "10:00", "11:00");
        let (_, cancelled) = scenario.race(&b, &["cancel"], moments.below(window));
        let lab = &scenario.lab;
        let context = format!("cancel, round {round}: {cancelled}");
        let start = scenario.at("10:00");
        let place = whereabouts(lab, &b, &start);
        let end = lab.rows(USING).into_iter().find(|row| row["user_id"] == b).map(|row| row["end"].clone());
        if cancelled.code == Some(0) {
            if place == [USED] {
                assert!(
                    inspect(&b).is_none_or(|container| !is_running(&container)),
                    "{context}: cancelled, yet its container runs"
                );
            } else {
                assert_eq!(place, [USING], "{context}: in one file");
                assert_eq!(
                    end,
                    Some(scenario.at("10:30")),
                    "{context}: cancelled once running, so it ends at the next half hour"
                );
            }
        } else {
            assert_eq!((place, end), (vec![USING], Some(scenario.at("11:00"))), "{context}: refused, so it runs on");
        }
        tally("cancel", cancelled.code == Some(0));

        // A restart while the pass starts the booking, or ends it.
        let ending = round % 2 == 1;
        if ending {
            scenario.next_round(&c, "09:00", "10:00");
        } else {
            scenario.next_round(&c, "10:00", "11:00");
        }
        let answered_before = scenario.lab.log_lines("", &[&c, "restart"]).len();
        let (_, restarted) = scenario.race(&c, &["restart"], moments.below(window));
        let lab = &scenario.lab;
        let context = format!(
            "restart while the pass {} the booking, round {round}: {restarted}",
            if ending { "ends" } else { "starts" }
        );
        if !request_lines(lab).is_empty() {
            // Asked after the run last looked at `monitor_exec`: the path unit (or the timer)
            // runs the next pass, which must serve it.
            lab.monitor(&scenario.now("10:00")).expect(0, &format!("{context}: the next pass"));
        }
        let requests = request_lines(lab);
        assert!(requests.is_empty(), "{context}: requests left after the next pass: {requests:?}");
        if restarted.code == Some(0) {
            assert!(
                lab.log_lines("", &[&c, "restart"]).len() > answered_before,
                "{context}: accepted, but the monitor never answered it:\n{}",
                lab.log()
            );
        }
        tally(if ending { "restart at the end" } else { "restart at the start" }, restarted.code == Some(0));
    }
    println!("races: {outcomes:?}");
}
