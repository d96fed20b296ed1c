//! Whole-binary timing of `book list --json` and `book new` on a schedule of 1,000 active
//! bookings, with an empty history and with 1,000,000 history rows: both must stay fast, and
//! the history must not change their time (they never read `used.csv`).
//!
//! Run: `cargo bench --bench book_speed` (set BOOK_SPEED_RUNS to change the number of runs).

use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ACTIVE_BOOKINGS: usize = 1_000;
const HISTORY_ROWS: usize = 1_000_000;
/// Each user holds two of the active bookings, 25 hours apart; ports 10001–10500 are theirs.
const USERS: usize = 500;
const NOW: &str = "2026-11-23 10:00";
const PASSWORD: &str = "bench-pass-42";

fn main() {
    let runs: usize = std::env::var("BOOK_SPEED_RUNS").ok().and_then(|text| text.parse().ok()).unwrap_or(30);
    let scratch = std::env::temp_dir().join(format!("gpu-booking-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    println!("book_speed: {ACTIVE_BOOKINGS} active bookings, {runs} runs per case");
    for history in [0, HISTORY_ROWS] {
        let root = scratch.join(format!("history-{history}"));
        build_root(&root, history);
        let list = time_runs(runs, || {
            let output = book(&root).args(["list", "--json"]).output().expect("book runs");
            assert!(output.status.success(), "book list failed: {}", String::from_utf8_lossy(&output.stderr));
            assert!(output.stdout.len() > ACTIVE_BOOKINGS * 50, "book list printed too little");
        });
        let saved = fs::read(root.join("jobs/booking.csv")).expect("booking.csv");
        let new = time_runs_with_reset(
            runs,
            || fs::write(root.join("jobs/booking.csv"), &saved).expect("reset booking.csv"),
            || {
                let mut child = book(&root)
                    .args(["--user", "bench", "--password-stdin", "new", "--cpus", "1", "--memory", "1", "--gpus", "1"])
                    .args(["--start", "2026 11 30 10 00", "--end", "2-hour", "--json"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("book runs");
                child.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("password");
                let output = child.wait_with_output().expect("book finishes");
                assert!(output.status.success(), "book new failed: {}", String::from_utf8_lossy(&output.stderr));
            },
        );
        println!("history {history:>9} rows   list --json: {}   new: {}", summary(&list), summary(&new));
    }
    if std::env::var_os("BOOK_SPEED_KEEP").is_some() {
        println!("roots kept under {}", scratch.display());
    } else {
        let _ = fs::remove_dir_all(&scratch);
    }
}

fn book(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_book"));
    command.arg("--root").arg(root).env("GPU_BOOKING_NOW", NOW).env_remove("SSH_ORIGINAL_COMMAND");
    command
}

fn time_runs(runs: usize, mut body: impl FnMut()) -> Vec<Duration> {
    time_runs_with_reset(runs, || {}, &mut body)
}

fn time_runs_with_reset(runs: usize, mut reset: impl FnMut(), mut body: impl FnMut()) -> Vec<Duration> {
    body(); // warm the page cache
    (0..runs)
        .map(|_| {
            reset();
            let started = Instant::now();
            body();
            started.elapsed()
        })
        .collect()
}

fn summary(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |share: f64| sorted[((sorted.len() - 1) as f64 * share).round() as usize];
    format!("median {:>5.2} ms, p90 {:>5.2} ms", at(0.5).as_secs_f64() * 1e3, at(0.9).as_secs_f64() * 1e3)
}

/// A root with a 64-GPU host, 500 users holding 1,000 bookings (10 at a time, one after
/// another over the coming days), the bench user registered, and `history` rows in used.csv.
fn build_root(root: &Path, history: usize) {
    fs::create_dir_all(root.join("cfg")).unwrap();
    fs::create_dir_all(root.join("jobs")).unwrap();
    let mut allowed = String::from("  - bench\n");
    for user in 0..USERS {
        let _ = writeln!(allowed, "  - u{user}");
    }
    fs::write(
        root.join("cfg/host_deploy.yaml"),
        "volume_work_dir: ./volumes/work\nvolume_dataset_dir: ./volumes/dataset\nvolume_backup_dir: ./volumes/backup\n\
         users_config_yaml: ./cfg/users_config.yaml\ncapability_config_yaml: ./cfg/capability_config.yaml\nimages:\n  - bench:latest\n",
    )
    .unwrap();
    fs::write(
        root.join("cfg/capability_config.yaml"),
        format!(
            "max:\n  cpus: 256\n  ram: 1024\n  swap_size: 0\n  gpus: 64\n  backup_space: 1000\n  work_space: 1000\n\
             allow_userIDs:\n{allowed}max_default_capability:\n  cpus: 8\n  memory: 32\n  gpus: 2\n"
        ),
    )
    .unwrap();
    fs::write(root.join("cfg/users_config.yaml"), "").unwrap();
    // The bench user registers by a first login, which the admin turns on for them.
    fs::write(root.join("cfg/login.yaml"), "self_registration: [bench]\n").unwrap();
    let mut booking = String::from("start,end,user_id,cpus,memory,gpus,forward_port,image,extra_command\n");
    let base = chrono::NaiveDateTime::parse_from_str("2026-11-23 10:00", "%Y-%m-%d %H:%M").unwrap();
    for index in 0..ACTIVE_BOOKINGS {
        let start = base + chrono::Duration::minutes(30 * (index / 10) as i64);
        let end = start + chrono::Duration::minutes(30);
        let user = index % USERS;
        let _ = writeln!(
            booking,
            "{},{},u{user},2,8,[{}],{},,",
            start.format("%Y-%m-%d %H:%M:%S"),
            end.format("%Y-%m-%d %H:%M:%S"),
            index % 10,
            10001 + user
        );
    }
    fs::write(root.join("jobs/booking.csv"), booking).unwrap();
    let mut used = BufWriter::new(fs::File::create(root.join("jobs/used.csv")).unwrap());
    writeln!(used, "start,end,user_id,cpus,memory,gpus,forward_port,image,extra_command").unwrap();
    for row in 0..history {
        let start = base - chrono::Duration::minutes(30 * (row as i64 + 1));
        let end = start + chrono::Duration::minutes(30);
        writeln!(
            used,
            "{},{},u{},4.5,16,\"[0, 1]\",10001,,",
            start.format("%Y-%m-%d %H:%M:%S"),
            end.format("%Y-%m-%d %H:%M:%S"),
            row % USERS
        )
        .unwrap();
    }
    used.flush().unwrap();
    // Register the bench user through the binary, as a student's first login would.
    let mut child = book(root)
        .args(["--user", "bench", "--password-stdin", "list", "--mine"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "registering the bench user failed");
}
