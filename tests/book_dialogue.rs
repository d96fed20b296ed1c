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

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use support::lab::Lab;
use support::run::{self, NOW};
use support::schedule::{BOOKING, HEADER, MONITOR_EXEC};
use support::terminal::Terminal;

const TIMEOUT: Duration = Duration::from_secs(10);
const USERS_CONFIG: &str = "cfg/users_config.yaml";

/// A root with a host of 4 GPUs (`tests/fixtures/dialogue`), `users_config` as its
/// `users_config.yaml`, and an empty `jobs/`; the first login is self-registration, which the
/// admin turned on.
fn lab_with_users(users_config: &str) -> Lab {
    let lab = Lab::fixture("dialogue");
    lab.write(USERS_CONFIG, users_config);
    lab
}

/// The rows of `jobs/booking.csv`, header checked, each row as its fields in order.
fn booking_rows(lab: &Lab) -> Vec<Vec<String>> {
    let columns: Vec<&str> = HEADER.trim_end().split(',').collect();
    lab.rows(BOOKING).iter().map(|row| columns.iter().map(|column| row[*column].clone()).collect()).collect()
}

/// The entry of `user` in `cfg/users_config.yaml`.
fn user_entry(lab: &Lab, user: &str) -> serde_yaml::Value {
    let text = lab.read(USERS_CONFIG);
    let document: serde_yaml::Value = serde_yaml::from_str(&text).expect("users_config.yaml parses");
    document.get(user).unwrap_or_else(|| panic!("no entry for {user} in users_config.yaml:\n{text}")).clone()
}

fn stored_password(lab: &Lab, user: &str) -> String {
    user_entry(lab, user)
        .get("password")
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or_else(|| panic!("{user}: no password text in users_config.yaml"))
        .to_string()
}

/// Registers `user` without a terminal, the way a script would: `book --password-stdin
/// list --mine`, the password on standard input.
fn register(lab: &Lab, user: &str, password: &str) {
    lab.book(&["list", "--mine"]).login(user, password).expect(0, &format!("registering {user}"));
}

/// Logs in without a terminal and returns the exit code.
fn login_code(lab: &Lab, user: &str, password: &str) -> i32 {
    lab.book(&["status"]).login(user, password).run().code.expect("an exit code")
}

/// Starts `book --root ROOT ARGS…` on an 80x24 terminal with echo on, `TERM=xterm` and the
/// clock at [`NOW`]. `stty` runs just before `book` is executed, so nothing races the first
/// prompt; the terminal starts the way a login terminal does.
fn start_book(root: &Path, arguments: &[&str]) -> Terminal {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(r#"stty echo cols 80 rows 24 && exec "$0" "$@""#)
        .arg(run::binary("book"))
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

/// At `prompt`, types `password`, which is wrong, and is told so.
fn type_a_wrong_password(terminal: &mut Terminal, prompt: &str, password: &str) {
    terminal.expect(prompt);
    terminal.answer_hidden_when_echo_off(password);
    terminal.expect("Wrong password.");
}

/// Test 1: a new user's first login and first booking, with wrong answers on the way.
#[test]
fn a_new_user_chooses_a_password_and_books_with_wrong_answers_on_the_way() {
    let lab = lab_with_users("");
    let mut terminal = start_book(lab.root(), &["--user", "alice"]);

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
    let rows = booking_rows(&lab);
    let expected = ["2026-11-23 10:00:00", "2026-11-23 12:00:00", "alice", "2", "8", "[0]", &port.to_string(), "", ""];
    assert_eq!(rows, vec![expected.map(str::to_string).to_vec()], "jobs/booking.csv");
    let stored = stored_password(&lab, "alice");
    assert!(stored.starts_with("$6$"), "alice's password is stored as {stored:?}, not a $6$ hash");
    let users_config = lab.read(USERS_CONFIG);
    assert!(!users_config.contains("Tr1cky-horse"), "the plain password is in users_config.yaml:\n{users_config}");
    assert_eq!(user_entry(&lab, "alice").get("forward_port").and_then(serde_yaml::Value::as_u64), Some(port.into()));
    let requests = lab.read(MONITOR_EXEC);
    assert!(requests.lines().any(|line| line.trim() == "now"), "jobs/monitor_exec holds no `now`: {requests:?}");
    // The new password works for the next login.
    assert_eq!(login_code(&lab, "alice", "Tr1cky-horse"), 0, "logging in again with the chosen password");
}

/// Test 2: three wrong passwords end the session with exit status 4 and change nothing but
/// the record of failures; two more in another session lock the id.
#[test]
fn three_wrong_passwords_end_the_session_with_status_4() {
    let lab = lab_with_users("");
    register(&lab, "bob", "bobs-secret");
    let users_before = lab.read(USERS_CONFIG);

    let mut terminal = start_book(lab.root(), &["--user", "bob"]);
    type_a_wrong_password(&mut terminal, "Password: ", "wrong-1");
    type_a_wrong_password(&mut terminal, "Password (try 2 of 3): ", "wrong-2");
    terminal.expect("Password (try 3 of 3): ");
    terminal.answer_hidden_when_echo_off("wrong-3");
    terminal.expect("wrong password for bob");
    let (code, rest) = terminal.finish();
    assert_eq!(code, 4, "exit status after three wrong passwords; the end of the output:\n{rest}");
    assert!(!rest.contains("Capability"), "the booking dialogue started after a failed login:\n{rest}");

    assert_eq!(lab.read(USERS_CONFIG), users_before, "users_config.yaml changed");
    assert!(booking_rows(&lab).is_empty(), "a booking was written");

    // Another session does not start the count again: the fifth failure locks bob.
    let mut terminal = start_book(lab.root(), &["--user", "bob"]);
    type_a_wrong_password(&mut terminal, "Password: ", "wrong-4");
    terminal.expect("Password (try 2 of 3): ");
    terminal.answer_hidden_when_echo_off("wrong-5");
    terminal.expect("bob is locked after 5 failed logins within 15 minutes; try again at 2026-11-23 10:15");
    let (code, _) = terminal.finish();
    assert_eq!(code, 4, "exit status of the session that locked bob");
    // Locked: not even asked, and his own password does not help.
    let mut terminal = start_book(lab.root(), &["--user", "bob"]);
    terminal.expect("bob is locked");
    let (code, _) = terminal.finish();
    assert_eq!(code, 4, "exit status while locked");
    let transcript = terminal.transcript();
    assert!(!transcript.contains("Password"), "a locked id was asked for its password:\n{transcript}");
    assert_eq!(login_code(&lab, "bob", "bobs-secret"), 4, "the right password while locked");
    assert_eq!(lab.read(USERS_CONFIG), users_before, "users_config.yaml changed");
}

/// Test 3: the request does not fit; the dialogue says why and offers the earliest window
/// that does, taken with a single key.
#[test]
fn a_refused_request_is_offered_the_earliest_window_and_takes_it_with_one_key() {
    let lab = lab_with_users(
        "carol:\n  password: \"carols-pass\"\n  forward_port: 10002\n  image: null\n  extra_command: null\n",
    );
    let carol = "2026-11-24 09:00:00,2026-11-24 12:00:00,carol,2,8,\"[0, 1, 2, 3]\",10002,,\n";
    lab.write(BOOKING, &format!("{HEADER}{carol}"));
    register(&lab, "dave", "daves-secret");
    let dave_port =
        user_entry(&lab, "dave").get("forward_port").and_then(serde_yaml::Value::as_u64).expect("dave's port");

    let mut terminal = start_book(lab.root(), &["--user", "dave"]);
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

    let rows = booking_rows(&lab);
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
    let requests = lab.read(MONITOR_EXEC);
    assert!(!requests.contains("now"), "a booking for tomorrow asked the monitor to run now: {requests:?}");
}

/// Test 4: the original's plain-text password is accepted once and replaced by a hash.
#[test]
fn a_legacy_plain_text_password_is_accepted_and_replaced_by_a_hash() {
    let lab = lab_with_users(
        "erin:\n  password: \"0000\"\n  forward_port: 10005\n  image: null\n  extra_command: null\n  \
         volume_work_dir: ./volumes/work/erin\n  volume_dataset_dir: ./volumes/dataset\n  \
         volume_backup_dir: ./volumes/backup/erin\n",
    );

    let mut terminal = start_book(lab.root(), &["--user", "erin"]);
    terminal.expect("Password: ");
    terminal.answer_hidden_when_echo_off("0000");
    // Logged in: the booking dialogue begins, and the file already holds the hash.
    terminal.expect("Your maximum per booking: cpus=4 memory=16 GB gpus=2");
    terminal.expect("cpus memory gpus (e.g. 4 16 1)");
    let stored = stored_password(&lab, "erin");
    assert!(stored.starts_with("$6$"), "erin's password is still stored as {stored:?}");
    let entry = user_entry(&lab, "erin");
    assert_eq!(entry.get("forward_port").and_then(serde_yaml::Value::as_u64), Some(10005), "the port was kept");
    let users_config = lab.read(USERS_CONFIG);
    assert!(!users_config.contains("\"0000\""), "the plain password is still in the file:\n{users_config}");

    // Leave the dialogue with Ctrl-C: nothing is booked.
    terminal.type_text("\u{3}");
    let (status, rest) = terminal.end();
    assert!(
        !matches!(status, WaitStatus::Exited(_, 0)),
        "Ctrl-C should not end with success ({status:?}); the end of the output:\n{rest}"
    );
    assert!(booking_rows(&lab).is_empty(), "a booking was written");

    // The hash is of the same password: it still logs in, and a wrong one does not.
    assert_eq!(login_code(&lab, "erin", "0000"), 0, "logging in with the legacy password after the rehash");
    assert_eq!(login_code(&lab, "erin", "1111"), 4, "a wrong password after the rehash");
}
