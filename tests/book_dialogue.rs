//! The prompted `book` dialogue, driven through a real pseudo-terminal.
//!
//! Each test writes a small root (a host with 4 GPUs) into a temporary folder, starts the
//! real `book` binary on an 80x24 pseudo-terminal with `TERM=xterm` and a fixed clock
//! (`GPU_BOOKING_NOW`), answers its questions the way a person would — wrong answers
//! included — and then reads the files it left behind.
//!
//! How the terminal is driven:
//! - The terminal starts the way a login terminal does: echo on, 80 columns, 24 rows (set by
//!   `stty` just before `book` is executed, so nothing races the first prompt).
//! - Text is matched on the output with escape sequences and carriage returns removed, so
//!   colours and dialoguer's redraws do not split the words a person reads.
//! - A hidden password is typed only once the terminal's echo has been switched off: the
//!   password prompt flushes pending input when it starts reading (`TCSAFLUSH`), so typing
//!   earlier could lose the keystrokes. Echo off is the sign that the prompt is reading.
//! - Every wait has a deadline ([`TIMEOUT`]); a missed one fails the test with the whole
//!   transcript so far. `BOOK_DIALOGUE_TRANSCRIPT=1 cargo test --test book_dialogue --
//!   --nocapture` prints each transcript even when the tests pass.

#[path = "support/screen.rs"]
mod screen;
#[path = "support/terminal.rs"]
mod terminal;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use tempfile::TempDir;
use terminal::Terminal;

const BOOK: &str = env!("CARGO_BIN_EXE_book");
const NOW: &str = "2026-11-23 10:00";
const TIMEOUT: Duration = Duration::from_secs(10);
const CSV_HEADER: &str = "start,end,user_id,cpus,memory,gpus,forward_port,image,extra_command";

const HOST_DEPLOY: &str = "\
volume_work_dir: ./volumes/work # users work_dir
volume_dataset_dir: ./volumes/dataset # data_dir
volume_backup_dir: ./volumes/backup # backup_dir

users_config_yaml: ./cfg/users_config.yaml
capability_config_yaml: ./cfg/capability_config.yaml

images:
  - gpu-booking/ssh:latest
  - gpu-booking/ssh:cuda12
";

const CAPABILITY: &str = "\
max:
  cpus: 16 # cores
  ram: 64 # GB
  swap_size: 16 # GB
  gpus: 4

  shm_rate: ram / (ram + swap_size)
  memory: ram + swap_size

  backup_space: 200 # GB
  work_space: 500 # GB

allow_userIDs:
  - alice
  - bob
  - carol
  - dave
  - erin

max_default_capability:
  cpus: 4
  memory: 16
  gpus: 2

  backup_space: 50
  work_space: 200

max_custom_capability:
  dave:
    gpus: max
";

/// A root in a temporary folder: the three configuration files and an empty `jobs/`.
fn root_with_users(users_config: &str) -> TempDir {
    let root = tempfile::tempdir().expect("create a temporary root");
    fs::create_dir_all(root.path().join("cfg")).expect("create cfg/");
    fs::create_dir_all(root.path().join("jobs")).expect("create jobs/");
    fs::write(root.path().join("cfg/host_deploy.yaml"), HOST_DEPLOY).expect("write host_deploy.yaml");
    fs::write(root.path().join("cfg/capability_config.yaml"), CAPABILITY).expect("write capability_config.yaml");
    fs::write(root.path().join("cfg/users_config.yaml"), users_config).expect("write users_config.yaml");
    // The dialogue's first login is self-registration, which the admin turns on.
    fs::write(root.path().join("cfg/login.yaml"), "self_registration: true\n").expect("write login.yaml");
    root
}

fn read(root: &Path, file: &str) -> String {
    fs::read_to_string(root.join(file)).unwrap_or_else(|error| panic!("read {file}: {error}"))
}

/// The rows of a `jobs/*.csv` file, header checked, each row as its fields.
fn csv_rows(root: &Path, file: &str) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(root.join(file)).unwrap_or_else(|error| panic!("open {file}: {error}"));
    let header: Vec<String> = reader.headers().expect("a header").iter().map(str::to_string).collect();
    assert_eq!(header.join(","), CSV_HEADER, "{file}: header");
    reader.records().map(|record| record.expect("a CSV row").iter().map(str::to_string).collect()).collect()
}

/// The entry of `user` in `cfg/users_config.yaml`.
fn user_entry(root: &Path, user: &str) -> serde_yaml::Value {
    let text = read(root, "cfg/users_config.yaml");
    let document: serde_yaml::Value = serde_yaml::from_str(&text).expect("users_config.yaml parses");
    document.get(user).unwrap_or_else(|| panic!("no entry for {user} in users_config.yaml:\n{text}")).clone()
}

fn stored_password(root: &Path, user: &str) -> String {
    user_entry(root, user)
        .get("password")
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or_else(|| panic!("{user}: no password text in users_config.yaml"))
        .to_string()
}

/// Registers `user` without a terminal, the way a script would: `book --password-stdin
/// list --mine`, the password on standard input.
fn register(root: &Path, user: &str, password: &str) {
    let mut child = Command::new(BOOK)
        .args(["--root", root.to_str().expect("a UTF-8 path"), "--user", user, "--password-stdin", "list", "--mine"])
        .env("GPU_BOOKING_NOW", NOW)
        .env_remove("GPU_BOOKING_ROOT")
        .env_remove("SSH_ORIGINAL_COMMAND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start book");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write the password");
    let output = child.wait_with_output().expect("wait for book");
    assert!(
        output.status.success(),
        "registering {user} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Logs in without a terminal and returns the exit code.
fn login_code(root: &Path, user: &str, password: &str) -> i32 {
    let mut child = Command::new(BOOK)
        .args(["--root", root.to_str().expect("a UTF-8 path"), "--user", user, "--password-stdin", "status"])
        .env("GPU_BOOKING_NOW", NOW)
        .env_remove("GPU_BOOKING_ROOT")
        .env_remove("SSH_ORIGINAL_COMMAND")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start book");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write the password");
    child.wait().expect("wait for book").code().expect("an exit code")
}

/// Starts `book --root ROOT ARGS…` on an 80x24 terminal with echo on, `TERM=xterm` and the
/// clock at [`NOW`]. `stty` runs just before `book` is executed, so nothing races the first
/// prompt; the terminal starts the way a login terminal does.
fn start_book(root: &Path, arguments: &[&str]) -> Terminal {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(r#"stty echo cols 80 rows 24 && exec "$0" "$@""#)
        .arg(BOOK)
        .arg("--root")
        .arg(root)
        .args(arguments)
        .env("GPU_BOOKING_NOW", NOW)
        .env_remove("GPU_BOOKING_ROOT")
        .env_remove("SSH_ORIGINAL_COMMAND");
    Terminal::start(command)
        .with_timeout(TIMEOUT)
        .printing_transcript_at_end(std::env::var_os("BOOK_DIALOGUE_TRANSCRIPT").is_some())
}

/// Test 1: a new user's first login and first booking, with wrong answers on the way.
#[test]
fn a_new_user_chooses_a_password_and_books_with_wrong_answers_on_the_way() {
    let root = root_with_users("");
    let mut terminal = start_book(root.path(), &["--user", "alice"]);

    // First login: choose a password. Too short (refused before the confirmation), then a
    // good one, typed twice.
    terminal.expect("choose a password");
    terminal.expect("New password: ");
    terminal.answer_hidden_when_echo_off("ab");
    terminal.expect("a password needs at least 4 characters");
    terminal.expect("New password: ");
    terminal.answer_hidden_when_echo_off("Tr1cky-horse");
    terminal.expect("The same password again: ");
    terminal.answer_hidden_when_echo_off("Tr1cky-horse");

    // The settings a new user is told.
    terminal.expect("Your settings:");
    let port: u16 = terminal
        .expect_line_after("forward port")
        .split_whitespace()
        .next()
        .and_then(|word| word.parse().ok())
        .unwrap_or_else(|| terminal.fail("the forward port is not a number"));
    assert!((10001..=11000).contains(&port), "forward port {port} out of 10001-11000");

    // The booking dialogue: limits, then capability with two wrong answers.
    terminal.expect("Your maximum per booking: cpus=4 memory=16 GB gpus=2");
    terminal.expect("cpus memory gpus (e.g. 4 16 1)");
    terminal.answer("9999 1 1");
    terminal.expect("over your maximum: cpus 9999 (your limit is 4)");
    terminal.expect("cpus memory gpus (e.g. 4 16 1)");
    terminal.answer("abc");
    terminal.expect("type three numbers");
    terminal.expect("cpus memory gpus (e.g. 4 16 1)");
    terminal.answer("0.001 8 1");
    terminal.expect("cpus must be at least 1, with at most two decimals");
    terminal.expect("cpus memory gpus (e.g. 4 16 1)");
    terminal.answer("2 8 1");

    // Start: a word it does not know, a time in the past, then now.
    terminal.expect("Start (now, 2-day, YYYY MM DD hh mm): ");
    terminal.answer("yesterday");
    terminal.expect("is not understood");
    terminal.expect("Start (now, 2-day, YYYY MM DD hh mm): ");
    terminal.answer("2026 11 23 08 00");
    terminal.expect("2026-11-23 08:00 is in the past");
    terminal.expect("Start (now, 2-day, YYYY MM DD hh mm): ");
    terminal.answer("now");

    // End: two hours.
    terminal.expect("End (4-hour, 1-day, YYYY MM DD hh mm): ");
    terminal.answer("2-hour");

    // No options; confirm with one key each.
    terminal.expect("Change options for this booking");
    terminal.type_text("n");
    terminal.expect("Book 2 CPUs, 8 GB, 1 GPU from Mon 23 Nov 10:00 to Mon 23 Nov 12:00?");
    terminal.type_text("y");

    terminal.expect("Booking successful!");
    terminal.expect("from Mon 23 Nov 10:00 to Mon 23 Nov 12:00");
    let gpus = terminal.expect_line_after("GB memory, ");
    assert_eq!(gpus, "GPU 0", "the GPU ids printed");
    let login = terminal.expect_line_after("ssh root@");
    assert!(login.contains(&format!("-p {port}")), "the login line names port {port}: {login:?}");
    let (code, rest) = terminal.finish();
    assert_eq!(code, 0, "exit status; the end of the output:\n{rest}");

    // The files: the booking row, a hash (never the password), the monitor woken up.
    let rows = csv_rows(root.path(), "jobs/booking.csv");
    let expected = ["2026-11-23 10:00:00", "2026-11-23 12:00:00", "alice", "2", "8", "[0]", &port.to_string(), "", ""];
    assert_eq!(rows, vec![expected.map(str::to_string).to_vec()], "jobs/booking.csv");
    let stored = stored_password(root.path(), "alice");
    assert!(stored.starts_with("$6$"), "alice's password is stored as {stored:?}, not a $6$ hash");
    let users_config = read(root.path(), "cfg/users_config.yaml");
    assert!(!users_config.contains("Tr1cky-horse"), "the plain password is in users_config.yaml:\n{users_config}");
    assert_eq!(
        user_entry(root.path(), "alice").get("forward_port").and_then(serde_yaml::Value::as_u64),
        Some(port.into())
    );
    let requests = read(root.path(), "jobs/monitor_exec");
    assert!(requests.lines().any(|line| line.trim() == "now"), "jobs/monitor_exec holds no `now`: {requests:?}");
    // The new password works for the next login.
    assert_eq!(login_code(root.path(), "alice", "Tr1cky-horse"), 0, "logging in again with the chosen password");
}

/// Test 2: three wrong passwords end the session with exit status 4 and change nothing but
/// the record of failures; two more in another session lock the id.
#[test]
fn three_wrong_passwords_end_the_session_with_status_4() {
    let root = root_with_users("");
    register(root.path(), "bob", "bobs-secret");
    let users_before = read(root.path(), "cfg/users_config.yaml");

    let mut terminal = start_book(root.path(), &["--user", "bob"]);
    terminal.expect("Password: ");
    terminal.answer_hidden_when_echo_off("wrong-1");
    terminal.expect("Wrong password.");
    terminal.expect("Password (try 2 of 3): ");
    terminal.answer_hidden_when_echo_off("wrong-2");
    terminal.expect("Wrong password.");
    terminal.expect("Password (try 3 of 3): ");
    terminal.answer_hidden_when_echo_off("wrong-3");
    terminal.expect("wrong password for bob");
    let (code, rest) = terminal.finish();
    assert_eq!(code, 4, "exit status after three wrong passwords; the end of the output:\n{rest}");
    assert!(!rest.contains("Capability"), "the booking dialogue started after a failed login:\n{rest}");

    assert_eq!(read(root.path(), "cfg/users_config.yaml"), users_before, "users_config.yaml changed");
    let booking = root.path().join("jobs/booking.csv");
    assert!(!booking.exists() || csv_rows(root.path(), "jobs/booking.csv").is_empty(), "a booking was written");

    // Another session does not start the count again: the fifth failure locks bob.
    let mut terminal = start_book(root.path(), &["--user", "bob"]);
    terminal.expect("Password: ");
    terminal.answer_hidden_when_echo_off("wrong-4");
    terminal.expect("Wrong password.");
    terminal.expect("Password (try 2 of 3): ");
    terminal.answer_hidden_when_echo_off("wrong-5");
    terminal.expect("bob is locked after 5 failed logins within 15 minutes; try again at 2026-11-23 10:15");
    let (code, _) = terminal.finish();
    assert_eq!(code, 4, "exit status of the session that locked bob");
    // Locked: not even asked, and his own password does not help.
    let mut terminal = start_book(root.path(), &["--user", "bob"]);
    terminal.expect("bob is locked");
    let (code, _) = terminal.finish();
    assert_eq!(code, 4, "exit status while locked");
    let transcript = terminal.transcript();
    assert!(!transcript.contains("Password"), "a locked id was asked for its password:\n{transcript}");
    assert_eq!(login_code(root.path(), "bob", "bobs-secret"), 4, "the right password while locked");
    assert_eq!(read(root.path(), "cfg/users_config.yaml"), users_before, "users_config.yaml changed");
}

/// Test 3: the request does not fit; the dialogue says why and offers the earliest window
/// that does, taken with a single key.
#[test]
fn a_refused_request_is_offered_the_earliest_window_and_takes_it_with_one_key() {
    let root = root_with_users(
        "carol:\n  password: \"carols-pass\"\n  forward_port: 10002\n  image: null\n  extra_command: null\n",
    );
    let carol = "2026-11-24 09:00:00,2026-11-24 12:00:00,carol,2,8,\"[0, 1, 2, 3]\",10002,,\n";
    fs::write(root.path().join("jobs/booking.csv"), format!("{CSV_HEADER}\n{carol}")).expect("write booking.csv");
    register(root.path(), "dave", "daves-secret");
    let dave_port =
        user_entry(root.path(), "dave").get("forward_port").and_then(serde_yaml::Value::as_u64).expect("dave's port");

    let mut terminal = start_book(root.path(), &["--user", "dave"]);
    terminal.expect("Password: ");
    terminal.answer_hidden_when_echo_off("daves-secret");
    terminal.expect("Your maximum per booking: cpus=4 memory=16 GB gpus=4");
    terminal.expect("cpus memory gpus (e.g. 4 16 1)");
    terminal.answer("2 8 4");
    terminal.expect("Start (now, 2-day, YYYY MM DD hh mm): ");
    terminal.answer("2026 11 24 10 00");
    terminal.expect("End (4-hour, 1-day, YYYY MM DD hh mm): ");
    terminal.answer("1-hour");
    terminal.expect("Change options for this booking");
    terminal.type_text("n");
    terminal.expect("Book 2 CPUs, 8 GB, 4 GPUs from Tue 24 Nov 10:00 to Tue 24 Nov 11:00?");
    terminal.type_text("y");

    terminal.expect("Not available:");
    let reason = terminal.expect_line_after("");
    assert!(reason.contains("not enough GPUs"), "the reason should name the GPUs: {reason:?}");
    assert!(reason.contains("held by carol"), "the reason should say who holds the GPUs: {reason:?}");
    terminal.expect("The earliest window that fits: Tue 24 Nov 12:00 to Tue 24 Nov 13:00, GPUs [0, 1, 2, 3].");
    terminal.expect("Book it instead?");
    // One key, no Enter.
    terminal.type_text("y");
    terminal.expect("Booking successful!");
    terminal.expect("from Tue 24 Nov 12:00 to Tue 24 Nov 13:00");
    assert_eq!(terminal.expect_line_after("GB memory, "), "GPUs 0, 1, 2, 3", "the GPU ids printed");
    let (code, rest) = terminal.finish();
    assert_eq!(code, 0, "exit status; the end of the output:\n{rest}");

    let rows = csv_rows(root.path(), "jobs/booking.csv");
    let carol_row = ["2026-11-24 09:00:00", "2026-11-24 12:00:00", "carol", "2", "8", "[0, 1, 2, 3]", "10002", "", ""];
    let dave_row = [
        "2026-11-24 12:00:00",
        "2026-11-24 13:00:00",
        "dave",
        "2",
        "8",
        "[0, 1, 2, 3]",
        &dave_port.to_string(),
        "",
        "",
    ];
    assert_eq!(
        rows,
        vec![carol_row.map(str::to_string).to_vec(), dave_row.map(str::to_string).to_vec()],
        "jobs/booking.csv"
    );
    let requests = fs::read_to_string(root.path().join("jobs/monitor_exec")).unwrap_or_default();
    assert!(!requests.contains("now"), "a booking for tomorrow asked the monitor to run now: {requests:?}");
}

/// Test 4: the original's plain-text password is accepted once and replaced by a hash.
#[test]
fn a_legacy_plain_text_password_is_accepted_and_replaced_by_a_hash() {
    let root = root_with_users(
        "erin:\n  password: \"0000\"\n  forward_port: 10005\n  image: null\n  extra_command: null\n  \
         volume_work_dir: ./volumes/work/erin\n  volume_dataset_dir: ./volumes/dataset\n  \
         volume_backup_dir: ./volumes/backup/erin\n",
    );

    let mut terminal = start_book(root.path(), &["--user", "erin"]);
    terminal.expect("Password: ");
    terminal.answer_hidden_when_echo_off("0000");
    // Logged in: the booking dialogue begins, and the file already holds the hash.
    terminal.expect("Your maximum per booking: cpus=4 memory=16 GB gpus=2");
    terminal.expect("cpus memory gpus (e.g. 4 16 1)");
    let stored = stored_password(root.path(), "erin");
    assert!(stored.starts_with("$6$"), "erin's password is still stored as {stored:?}");
    let entry = user_entry(root.path(), "erin");
    assert_eq!(entry.get("forward_port").and_then(serde_yaml::Value::as_u64), Some(10005), "the port was kept");
    let users_config = read(root.path(), "cfg/users_config.yaml");
    assert!(!users_config.contains("\"0000\""), "the plain password is still in the file:\n{users_config}");

    // Leave the dialogue with Ctrl-C: nothing is booked.
    terminal.type_text("\u{3}");
    let (status, rest) = terminal.end();
    assert!(
        !matches!(status, WaitStatus::Exited(_, 0)),
        "Ctrl-C should not end with success ({status:?}); the end of the output:\n{rest}"
    );
    let booking = root.path().join("jobs/booking.csv");
    assert!(!booking.exists() || csv_rows(root.path(), "jobs/booking.csv").is_empty(), "a booking was written");

    // The hash is of the same password: it still logs in, and a wrong one does not.
    assert_eq!(login_code(root.path(), "erin", "0000"), 0, "logging in with the legacy password after the rehash");
    assert_eq!(login_code(root.path(), "erin", "1111"), 4, "a wrong password after the rehash");
}
