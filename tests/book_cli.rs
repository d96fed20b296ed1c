//! Binary-level tests of `book`, the student's tool: every subcommand and every exit code
//! (0 ok, 1 error, 2 usage, 3 refused, 4 authentication), run as a student would run it —
//! the real binary, a temporary root written by the test, `GPU_BOOKING_NOW` in place of the
//! clock, no terminal (stdin piped) — checking what a user would check: the exit code, what
//! is printed, and the files afterwards.
//!
//! Every test has its own root (see [`Lab`]): a host of 8 CPUs, 16 GB RAM + 4 GB swap and
//! 4 GPUs; alice, bob and carol may book; the default limit is 4 CPUs, 8 GB, 2 GPUs per
//! booking, and carol has her own (all CPUs, 16 GB, all GPUs).

mod support;

use serde_json::Value;
use support::fixtures::ED25519_KEY;
use support::lab::{Lab, password_of};
use support::ports::port_other_than;
use support::run::{NOW, Run, new_booking_args};
use support::schedule::{BOOKING, HEADER, MONITOR_EXEC, USED, USING};
use support::snapshot::Entry;

const USERS_CONFIG: &str = "cfg/users_config.yaml";
const LOGIN_SETTINGS: &str = "cfg/login.yaml";
const LOGIN_FAILURES: &str = "jobs/login_failures.csv";
const AUTH_LOG: &str = "jobs/auth.log";

/// Everyone `allow_userIDs` lists.
const EVERYONE: [&str; 3] = ["alice", "bob", "carol"];

/// A root from `tests/fixtures/book` where `users` have registered by a first login each.
fn lab_with(users: &[&str]) -> Lab {
    let lab = Lab::fixture("book");
    for user in users {
        lab.register(user);
    }
    lab
}

/// `YYYY-MM-DD HH:MM`, as `--json` prints times.
fn is_minute_time(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let bytes = text.as_bytes();
    bytes.len() == 16
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            4 | 7 => *byte == b'-',
            10 => *byte == b' ',
            13 => *byte == b':',
            _ => byte.is_ascii_digit(),
        })
}

fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object.as_object().expect("a JSON object").keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(ToString::to_string).collect();
    names.sort();
    names
}

// ---- book new ----------------------------------------------------------------------------

#[test]
fn new_with_every_flag_prints_one_json_object_and_writes_the_row() {
    let lab = lab_with(&["alice"]);
    let port = port_other_than(&[lab.port_of("alice")]);
    let port_text = port.to_string();
    let run = lab
        .book_as("alice", &new_booking_args("2.5", "6", "2", "2026 11 24 09 30", "2026 11 24 18 00"))
        .args(["--image", "pytorch/pytorch:latest", "--extra-command", "python3 train.py --epochs 3"])
        .args(["--forward-port", &port_text, "--yes", "--json"])
        .expect(0, "a booking that fits");
    let booked = run.json();
    assert_eq!(
        keys(&booked),
        sorted(&["user_id", "start", "end", "cpus", "memory", "gpus", "forward_port", "image", "extra_command"]),
        "the --json object has exactly these keys:\n{run}"
    );
    assert_eq!(booked["user_id"], "alice");
    assert_eq!(booked["start"], "2026-11-24 09:30");
    assert_eq!(booked["end"], "2026-11-24 18:00");
    assert!(is_minute_time(&booked["start"]) && is_minute_time(&booked["end"]));
    assert_eq!(booked["cpus"].as_f64(), Some(2.5));
    assert_eq!(booked["memory"], 6);
    assert_eq!(booked["gpus"], serde_json::json!([0, 1]), "an empty host: the lowest ids");
    assert_eq!(booked["forward_port"], port);
    assert_eq!(booked["image"], "pytorch/pytorch:latest");
    assert_eq!(booked["extra_command"], "python3 train.py --epochs 3");

    let rows = lab.rows(BOOKING);
    assert_eq!(rows.len(), 1, "one row in booking.csv:\n{}", lab.read(BOOKING));
    let row = &rows[0];
    assert_eq!(row["start"], "2026-11-24 09:30:00");
    assert_eq!(row["end"], "2026-11-24 18:00:00");
    assert_eq!(row["user_id"], "alice");
    assert_eq!(row["cpus"].parse::<f64>().ok(), Some(2.5));
    assert_eq!(row["memory"], "6");
    assert_eq!(row["gpus"], "[0, 1]");
    assert_eq!(row["forward_port"], port_text);
    assert_eq!(row["image"], "pytorch/pytorch:latest");
    assert_eq!(row["extra_command"], "python3 train.py --epochs 3");
    assert!(
        !lab.read(MONITOR_EXEC).lines().any(|line| line.trim() == "now"),
        "a booking that starts tomorrow does not wake the monitor:\n{}",
        lab.read(MONITOR_EXEC)
    );
}

#[test]
fn new_starting_now_asks_the_monitor_to_run_and_a_future_start_does_not() {
    let lab = lab_with(&EVERYONE);
    let run = lab
        .book_as("alice", &new_booking_args("1", "2", "1", "now", "2-hour"))
        .args(["--json"])
        .now("2026-11-23 10:17")
        .expect(0, "a booking from now");
    let booked = run.json();
    assert_eq!(booked["start"], "2026-11-23 10:00", "`now` is the start of the current slot");
    assert_eq!(booked["end"], "2026-11-23 12:00", "a relative end counts from the start");
    assert_eq!(lab.read(MONITOR_EXEC), "now\n", "a booking that starts now appends `now` to jobs/monitor_exec");
    assert_eq!(lab.rows(BOOKING)[0]["start"], "2026-11-23 10:00:00");

    lab.book_new("bob", NOW, ("1", "2", "1"), "1-day", "3-hour");
    assert_eq!(lab.read(MONITOR_EXEC), "now\n", "a future start adds nothing to jobs/monitor_exec");
    assert_eq!(lab.rows(BOOKING).len(), 2);
}

#[test]
fn new_over_the_users_limit_is_refused_and_writes_nothing() {
    let lab = lab_with(&EVERYONE);
    for (flag, value, named) in [("--cpus", "6", "cpus"), ("--memory", "9", "memory"), ("--gpus", "3", "gpus")] {
        let mut args = new_booking_args("2", "4", "1", "1-day", "2-hour");
        let position = args.iter().position(|arg| *arg == flag).expect("the flag") + 1;
        args[position] = value;
        lab.book_as("alice", &args)
            .expect_no_change(3, &format!("alice asks {flag} {value}, over the default limit"))
            .says(&[named, "limit"]);
    }
    lab.book_as("carol", &new_booking_args("2", "17", "1", "1-day", "2-hour"))
        .expect_no_change(3, "carol asks 17 GB, over her own limit of 16")
        .says(&["memory", "16"]);

    // carol's own limits let her take what the default would refuse.
    let booked = lab.book_new("carol", NOW, ("6", "16", "4"), "1-day", "2-hour");
    assert_eq!(booked["gpus"], serde_json::json!([0, 1, 2, 3]));
}

#[test]
fn new_with_an_image_the_host_does_not_offer_is_refused() {
    let lab = lab_with(&["alice"]);
    lab.book_as("alice", &new_booking_args("1", "1", "0", "1-day", "1-hour"))
        .args(["--image", "evil/miner:latest"])
        .expect_no_change(3, "an image that is not in host_deploy.yaml")
        .says(&["evil/miner:latest"]);
}

#[test]
fn new_without_enough_gpus_names_gpus_and_offers_the_earliest_window() {
    let lab = lab_with(&EVERYONE);
    lab.book_new("carol", NOW, ("1", "1", "4"), "2026 11 24 09 00", "2026 11 24 12 00");
    lab.book_as("alice", &new_booking_args("1", "1", "1", "2026 11 24 10 00", "1-hour"))
        .expect_no_change(3, "every GPU is carol's from 09:00 to 12:00")
        .says(&["GPU", "earliest", "2026-11-24 12:00 to 2026-11-24 13:00"]);
}

#[test]
fn a_gpu_busy_for_part_of_the_window_is_not_handed_out() {
    // 10:00–11:00 one GPU is free, but bob takes it at 11:00: no GPU is free for the whole
    // 10:00–12:00 window (the original counted per slot and would have given it out).
    let lab = lab_with(&EVERYONE);
    lab.book_new("carol", NOW, ("1", "1", "3"), "2026 11 24 09 00", "2026 11 24 12 00");
    lab.book_new("bob", NOW, ("1", "1", "1"), "2026 11 24 11 00", "2026 11 24 13 00");
    lab.book_as("alice", &new_booking_args("1", "1", "1", "2026 11 24 10 00", "2-hour"))
        .expect_no_change(3, "no GPU free for the whole window")
        .says(&["GPU", "2026-11-24 12:00 to 2026-11-24 14:00"]);
}

#[test]
fn new_with_earliest_takes_the_offered_window() {
    let lab = lab_with(&EVERYONE);
    lab.book_new("carol", NOW, ("1", "1", "4"), "2026 11 24 09 00", "2026 11 24 12 00");
    let booked = lab
        .book_as("alice", &new_booking_args("1", "1", "1", "2026 11 24 10 00", "1-hour"))
        .args(["--earliest", "--json"])
        .expect(0, "--earliest takes the offered window")
        .json();
    assert_eq!(booked["start"], "2026-11-24 12:00");
    assert_eq!(booked["end"], "2026-11-24 13:00", "the same length as asked");
    let alice: Vec<_> = lab.rows(BOOKING).into_iter().filter(|row| row["user_id"] == "alice").collect();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0]["start"], "2026-11-24 12:00:00", "booking.csv shows the later start");
    assert_eq!(alice[0]["end"], "2026-11-24 13:00:00");
}

#[test]
fn new_overlapping_my_own_booking_is_refused() {
    let lab = lab_with(&["alice"]);
    lab.book_new("alice", NOW, ("1", "1", "0"), "2026 11 24 09 00", "2026 11 24 12 00");
    lab.book_as("alice", &new_booking_args("1", "1", "0", "2026 11 24 11 00", "2026 11 24 13 00"))
        .expect_no_change(3, "alice's own bookings never overlap")
        .says(&["2026-11-24 09:00", "overlap"]);
    // Back to back is not an overlap.
    lab.book_new("alice", NOW, ("1", "1", "0"), "2026 11 24 12 00", "2026 11 24 13 00");
    assert_eq!(lab.rows(BOOKING).len(), 2);
}

#[test]
fn new_with_a_bad_time_is_a_usage_error() {
    let lab = lab_with(&["alice"]);
    for (start, end, named) in [
        ("yesterday", "1-hour", "yesterday"),
        ("2026 11 24 09 15", "1-hour", "00 or 30"),
        ("2026 11 24 09 00", "2026 11 24 10 45", "00 or 30"),
        ("15-day", "1-hour", "15-day"),
        ("2026 12 08 10 30", "1-hour", "14 days"),
        ("2026 11 23 09 00", "1-hour", "past"),
        ("2026 11 24 12 00", "2026 11 24 10 00", "not after"),
        ("2026 11 24 12 00", "2026 12 09 12 00", "14 days"),
        ("now", "now", "end"),
    ] {
        lab.book_as("alice", &new_booking_args("1", "1", "0", start, end))
            .expect_no_change(2, &format!("--start {start:?} --end {end:?}"))
            .says(&[named]);
    }
}

#[test]
fn new_with_flags_missing_and_no_terminal_is_a_usage_error() {
    let lab = lab_with(&["alice"]);
    let before = lab.snapshot();
    lab.book_as("alice", &["new", "--cpus", "1", "--gpus", "0", "--start", "1-day"])
        .expect(2, "book new without --memory and --end, and no terminal to ask on")
        .says(&["--memory", "--end"]);
    // `book` alone asks for everything: without a terminal it says how to do it with flags.
    lab.book_as("alice", &[]).expect(2, "book with no subcommand and no terminal").says(&["terminal", "book new"]);
    lab.assert_unchanged(&before, "usage errors");
}

#[test]
fn an_unknown_subcommand_or_flag_is_a_usage_error() {
    let lab = Lab::fixture("book");
    let before = lab.snapshot();
    lab.book(&["frobnicate"]).expect(2, "an unknown subcommand").says(&["frobnicate"]);
    lab.book(&["list", "--colour"]).expect(2, "an unknown flag").says(&["--colour"]);
    lab.book(&["new", "--cpus", "many"]).expect(2, "a flag value that is not a number").says(&["many"]);
    lab.book(&["list", "--timeline", "--days", "15"]).expect(2, "--days beyond 14").says(&["15"]);
    lab.assert_unchanged(&before, "usage errors");
}

// ---- logging in --------------------------------------------------------------------------

#[test]
fn a_first_login_registers_the_user_with_a_hash_and_a_port() {
    let lab = lab_with(&["alice"]);
    let users = lab.read(USERS_CONFIG);
    assert!(users.contains("alice:"), "{users}");
    assert!(users.contains("$6$"), "the password is stored as a crypt(3) hash:\n{users}");
    assert!(!users.contains(password_of("alice")), "no plain-text password:\n{users}");
    let port = lab.port_of("alice");
    assert!((10001..=11000).contains(&port), "forward port {port}");
    // The booking account may not write the volume parents: the root monitor makes the
    // folders before the first container starts.
    assert!(!lab.path("volumes/work/alice").exists(), "book created a work folder");

    // A second user gets another port.
    lab.register("bob");
    assert_ne!(lab.port_of("bob"), port);

    // Too easy a password is not taken, and nothing is registered.
    lab.book(&["list"]).login("carol", "1234").expect_no_change(2, "a new user choosing 1234").says(&["password"]);
}

#[test]
fn a_wrong_password_fails_authentication() {
    let lab = lab_with(&["alice"]);
    let before = lab.snapshot();
    lab.book(&["status"]).login("alice", "not-her-password").expect(4, "a wrong password").says(&["wrong password"]);
    lab.book(&new_booking_args("1", "1", "0", "now", "1-hour"))
        .login("alice", password_of("bob"))
        .expect(4, "another user's password");
    // Only the record of failed logins and the log changed; nothing was booked.
    let mut after_failures = before.clone();
    for file in [LOGIN_FAILURES, AUTH_LOG] {
        after_failures.insert(file.to_string(), Entry::File(lab.read(file).into_bytes()));
    }
    lab.assert_unchanged(&after_failures, "failed logins");
}

#[test]
fn a_user_not_in_allow_user_ids_fails_authentication() {
    let lab = Lab::fixture("book");
    lab.book(&["list", "--mine"])
        .login("mallory", "mallory-pass-1")
        .expect_no_change(4, "mallory is not in allow_userIDs")
        .says(&["mallory", "allow_userIDs"]);
    lab.book(&new_booking_args("1", "1", "0", "now", "1-hour"))
        .login("mallory", "mallory-pass-1")
        .expect_no_change(4, "mallory cannot book");
    assert!(!lab.read(USERS_CONFIG).contains("mallory"));
}

#[test]
fn empty_stdin_with_password_stdin_fails_authentication() {
    let lab = lab_with(&["alice"]);
    lab.book_as("alice", &["status"]).stdin("").expect_no_change(4, "a known user, nothing on stdin");
    lab.book_as("bob", &["status"]).stdin("").expect_no_change(4, "a new user, nothing on stdin").says(&["password"]);
}

#[test]
fn a_login_without_a_terminal_or_password_stdin_is_a_usage_error() {
    let lab = lab_with(&["alice"]);
    lab.book(&["--user", "alice", "status"])
        .expect_no_change(2, "--user without --password-stdin and no terminal")
        .says(&["--password-stdin"]);
    lab.book(&["status"]).expect_no_change(2, "no --user and no terminal").says(&["--user"]);
}

#[test]
fn an_allowed_id_without_a_password_cannot_be_claimed() {
    let lab = Lab::fixture("book");
    // The default: nobody registers themselves (the file is the admin's; empty or missing).
    lab.write(LOGIN_SETTINGS, "# nothing set\n");
    let before = lab.snapshot();
    let claim = |context: &str| {
        // Whoever logs in first, with any password, for any subcommand.
        for args in [&["list", "--mine"][..], &["status"][..], &["options", "--json"][..]] {
            lab.book(args)
                .login("alice", "mallory-was-here-1")
                .expect(4, &format!("{context}: book {args:?}"))
                .says(&["alice has no password yet", "enroll passwd alice"]);
        }
        lab.book(&new_booking_args("1", "1", "0", "now", "1-hour"))
            .args(["--yes"])
            .login("alice", "mallory-was-here-1")
            .expect(4, &format!("{context}: book new"));
    };
    claim("no entry in users_config.yaml");
    lab.assert_unchanged(&before, "a claim of an allowed id without an entry");
    lab.write(LOGIN_SETTINGS, "");
    for entry in ["", "  password: null\n", "  password: \"\"\n", "  password: \"  \"\n"] {
        // An entry without a password: written by hand, or the original's with it deleted.
        lab.write(
            USERS_CONFIG,
            &format!("alice:\n{entry}  forward_port: 10042\n  image: null\n  extra_command: null\n"),
        );
        let before = lab.snapshot();
        claim(&format!("an entry with {entry:?}"));
        lab.assert_unchanged(&before, &format!("a claim of an entry with {entry:?}"));
    }
    assert!(!lab.exists(LOGIN_FAILURES), "an id nobody can log in to has no failures to count");

    // The admin sets the password; the entry keeps its port, and alice logs in with it.
    let reset = lab.enroll(&["passwd", "alice", "--password-stdin"], &format!("{}\n", password_of("alice")));
    assert_eq!(reset.code, Some(0), "enroll passwd alice:\n{reset}");
    assert_eq!(lab.port_of("alice"), 10042);
    lab.book_as("alice", &["status"]).stdin("mallory-was-here-1\n").expect(4, "mallory after the admin");
}

#[test]
fn self_registration_is_the_admins_choice_for_all_or_listed_ids() {
    let lab = Lab::fixture("book");
    lab.write(LOGIN_SETTINGS, "self_registration: [bob]\n");
    lab.book_as("alice", &["list", "--mine"])
        .expect_no_change(4, "alice is not listed, and may not register herself")
        .says(&["enroll passwd alice"]);
    lab.register("bob");
    assert!(lab.read(USERS_CONFIG).contains("bob:"));
    // Once bob has a password, the first-login path is closed for him: a second "first
    // login" is a wrong password.
    lab.book(&["status"])
        .login("bob", "mallory-was-here-1")
        .expect(4, "registering bob again")
        .says(&["wrong password"]);
    // An entry without a password (its other settings kept) is registered the same way.
    lab.write(LOGIN_SETTINGS, "self_registration: true\n");
    // bob's port was drawn at random from the range: carol's must differ from it.
    let carols_port = if lab.port_of("bob") == 10077 { 10078 } else { 10077 };
    let users = format!("{}carol:\n  password: null\n  forward_port: {carols_port}\n", lab.read(USERS_CONFIG));
    lab.write(USERS_CONFIG, &users);
    lab.register("carol");
    assert_eq!(lab.port_of("carol"), carols_port, "carol keeps the port of her entry");
    lab.register("alice");
    // A setting the file cannot mean stops every login, naming file, line and field.
    lab.write(LOGIN_SETTINGS, "# login\nself_registration: sometimes\n");
    lab.book_as("alice", &["status"]).expect(1, "a bad login.yaml").says(&["cfg/login.yaml:2: self_registration"]);
}

/// `book --user alice --password-stdin status` from `SSH_CLIENT` 203.0.113.9, with `typed`.
fn alice_from_afar(lab: &Lab, typed: &str, now: &str) -> Run {
    lab.book(&["status"]).login("alice", typed).env("SSH_CLIENT", "203.0.113.9 50022 22").now(now).run()
}

#[test]
fn five_failed_logins_within_15_minutes_lock_the_id_for_15_minutes() {
    let lab = lab_with(&EVERYONE);
    lab.book_new("alice", NOW, ("1", "1", "0"), "1-day", "2-hour");
    let wrong = "tulip-alice-8";
    // Four failures, and a fifth 15 minutes after the first: never five within 15 minutes.
    for now in ["2026-11-23 10:00", "2026-11-23 10:05", "2026-11-23 10:10", "2026-11-23 10:14", "2026-11-23 10:15"] {
        alice_from_afar(&lab, wrong, now).expect(4, &format!("a wrong password at {now}")).says(&["wrong password"]);
    }
    // The fifth within 15 minutes of the second locks alice until 15 minutes after it.
    alice_from_afar(&lab, wrong, "2026-11-23 10:19").expect(4, "the failure that locks").says(&[
        "wrong password",
        "alice is locked",
        "2026-11-23 10:34",
    ]);
    let bookings = lab.read(BOOKING);
    let users = lab.read(USERS_CONFIG);
    // Even her own password is refused while the lock lasts, without being looked at.
    for now in ["2026-11-23 10:20", "2026-11-23 10:33"] {
        alice_from_afar(&lab, password_of("alice"), now)
            .expect(4, &format!("the right password at {now}, while locked"))
            .says(&["alice is locked", "try again at 2026-11-23 10:34", "enroll passwd alice"]);
    }
    lab.book_as("bob", &["status"]).now("2026-11-23 10:20").expect(0, "bob is not locked");

    // The record: one row per failure, with time and address (no password in any file).
    let record = lab.read(LOGIN_FAILURES);
    let mut lines = record.lines();
    assert_eq!(lines.next(), Some("time,user_id,address"), "{record}");
    let times: Vec<&str> = lines
        .map(|line| line.strip_suffix(",alice,203.0.113.9").unwrap_or_else(|| panic!("{line:?} in\n{record}")))
        .collect();
    assert_eq!(
        times,
        [
            "2026-11-23 10:00:00",
            "2026-11-23 10:05:00",
            "2026-11-23 10:10:00",
            "2026-11-23 10:14:00",
            "2026-11-23 10:15:00",
            "2026-11-23 10:19:00"
        ]
    );
    // The log: how each id was claimed, then every failure, the lock and each refusal, in
    // the monitor log's format.
    let log = lab.read(AUTH_LOG);
    let (claims, lines): (Vec<&str>, Vec<&str>) = log.lines().partition(|line| line.contains("[INFO]"));
    assert_eq!(
        claims,
        ["alice", "bob", "carol"].map(|user| format!(
            "20261123 10:00 [INFO] {user} chose their first password from local (self-registration)."
        ))
    );
    assert_eq!(lines.len(), 9, "{log}");
    assert_eq!(
        lines[0],
        "20261123 10:00 [WARNING] AuthWarning, failed login as alice from 203.0.113.9 (1 of 5 within 15 minutes)."
    );
    assert!(lines[5].starts_with("20261123 10:19 [WARNING] AuthWarning, failed login as alice"), "{log}");
    assert_eq!(
        lines[6],
        "20261123 10:19 [WARNING] AuthWarning, alice is locked until 2026-11-23 10:34 after 5 failed logins \
         within 15 minutes, the last from 203.0.113.9."
    );
    assert_eq!(
        lines[7],
        "20261123 10:20 [WARNING] AuthWarning, login as alice from 203.0.113.9 refused: locked until 2026-11-23 10:34."
    );
    for (path, entry) in lab.snapshot() {
        let text = String::from_utf8_lossy(entry.bytes()).into_owned();
        assert!(!text.contains(wrong) && !text.contains(password_of("alice")), "{path} holds a typed password");
    }
    assert_eq!((lab.read(BOOKING), lab.read(USERS_CONFIG)), (bookings, users), "a lock changes nothing else");

    // The lock ends 15 minutes after the last failure; a good login clears alice's record.
    alice_from_afar(&lab, password_of("alice"), "2026-11-23 10:34").expect(0, "the right password after the lock");
    assert_eq!(lab.read(LOGIN_FAILURES), "time,user_id,address\n");
}

#[test]
fn enroll_passwd_unlocks_a_locked_id() {
    let lab = lab_with(&["alice"]);
    for _ in 0..5 {
        lab.book(&["status"]).login("alice", "tulip-alice-8").expect(4, "wrong");
    }
    lab.book_as("alice", &["status"]).expect(4, "locked").says(&["locked"]);
    assert!(lab.read(AUTH_LOG).contains("failed login as alice from local (5 of 5"), "{}", lab.read(AUTH_LOG));

    let reset = lab.enroll(&["passwd", "alice", "--password-stdin"], "fresh-alice-2\n");
    assert_eq!(reset.code, Some(0), "enroll passwd:\n{reset}");
    assert!(reset.stdout.contains("unlocked"), "{reset}");
    lab.book(&["status"]).login("alice", "fresh-alice-2").expect(0, "unlocked");
    assert_eq!(lab.read(LOGIN_FAILURES), "time,user_id,address\n");
    assert!(
        lab.read(AUTH_LOG)
            .lines()
            .any(|line| line
                == "20261123 10:00 [INFO] alice unlocked by enroll passwd (was locked until 2026-11-23 10:15)."),
        "{}",
        lab.read(AUTH_LOG)
    );
}

// ---- CPU requests ------------------------------------------------------------------------

/// CPU counts no container may get: Docker takes NanoCpus 0 as "no limit", and anything
/// below 1 or finer than hundredths is refused like any other limit.
const BAD_CPUS: [&str; 10] = ["1e-12", "0", "0.5", "0.99", "1.234", "1.005", "NaN", "inf", "-1", "-2.5"];

#[test]
fn cpus_below_one_or_finer_than_hundredths_are_refused_by_new_and_free() {
    let lab = lab_with(&["alice"]);
    for cpus in BAD_CPUS {
        lab.book_as("alice", &new_booking_args(cpus, "1", "0", "now", "2-hour"))
            .args(["--yes"])
            .expect_no_change(3, &format!("book new --cpus {cpus}"))
            .says(&["cpus must be at least 1, with at most two decimals"]);
        lab.book(&["free", "--cpus", cpus, "--memory", "1", "--duration", "1-hour"])
            .expect_no_change(3, &format!("book free --cpus {cpus}"))
            .says(&["cpus must be at least 1, with at most two decimals"]);
    }
    lab.book(&["free", "--cpus", "1", "--memory", "0", "--duration", "1-hour"]).expect_no_change(3, "no memory");

    let booked = lab.book_new("alice", NOW, ("1.25", "1", "0"), "now", "2-hour");
    assert_eq!(booked["cpus"], 1.25);
    assert_eq!(lab.rows(BOOKING)[0]["cpus"], "1.25");
}

#[test]
fn a_hand_edited_row_with_too_few_cpus_stops_book_naming_file_line_and_field() {
    let lab = lab_with(&["alice"]);
    lab.add_row(BOOKING, "2026-11-23 12:00:00,2026-11-23 14:00:00,bob,0.000000000001,1,[0],10999,,");
    lab.book(&["list"]).expect_no_change(1, "book list").says(&["jobs/booking.csv:2: cpus: cpus must be at least 1"]);
    lab.book_as("alice", &new_booking_args("1", "1", "0", "now", "1-hour"))
        .expect_no_change(1, "book new on a damaged row")
        .says(&["jobs/booking.csv:2: cpus"]);
}

// ---- book list ---------------------------------------------------------------------------

/// Writes into `file` by hand, as the monitor (or the original) would, `user`'s booking of 2 CPUs and 4 GB on
/// `gpus` (as the file writes them) from `start` to `end`, at their forward port.
fn add_row_by_hand(lab: &Lab, file: &str, user: &str, (start, end): (&str, &str), gpus: &str) {
    let port = lab.port_of(user);
    lab.add_row(file, &format!("{start}:00,{end}:00,{user},2,4,{gpus},{port},,"));
}

/// A root where alice, bob and carol each hold a booking; carol's is running (in using.csv, as
/// the monitor leaves it); they were booked in the reverse order of their starts.
fn lab_with_three_bookings() -> Lab {
    let lab = lab_with(&EVERYONE);
    lab.book_new("bob", NOW, ("2", "4", "1"), "2026 11 25 09 00", "2026 11 25 18 00");
    lab.book_new("alice", NOW, ("2", "4", "1"), "2026 11 24 09 00", "2026 11 24 18 00");
    add_row_by_hand(&lab, USING, "carol", ("2026-11-23 08:00", "2026-11-23 20:00"), "\"[2, 3]\"");
    lab
}

#[test]
fn list_needs_no_login_and_its_json_is_sorted_by_start_with_mine_marked() {
    let lab = lab_with_three_bookings();
    let before = lab.snapshot();

    let table = lab.book(&["list"]).expect(0, "book list without a login");
    for user in ["alice", "bob", "carol"] {
        assert!(table.stdout.contains(user), "the table shows {user}:\n{table}");
    }
    let position = |user: &str| table.stdout.find(user).expect("shown");
    assert!(position("carol") < position("alice") && position("alice") < position("bob"), "sorted by start:\n{table}");

    let anonymous = lab.book(&["list", "--json"]).expect(0, "book list --json without a login").json();
    let rows = anonymous.as_array().expect("a JSON array");
    let users: Vec<&str> = rows.iter().map(|row| row["user_id"].as_str().expect("user_id")).collect();
    assert_eq!(users, ["carol", "alice", "bob"], "sorted by start:\n{anonymous:#}");
    let starts: Vec<&str> = rows.iter().map(|row| row["start"].as_str().expect("start")).collect();
    assert_eq!(starts, ["2026-11-23 08:00", "2026-11-24 09:00", "2026-11-25 09:00"]);
    assert!(rows.iter().all(|row| row["mine"] == false), "nobody is logged in:\n{anonymous:#}");
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[1]["state"], "booked");
    assert_eq!(rows[0]["gpus"], serde_json::json!([2, 3]));

    let as_alice = lab.book_as("alice", &["list", "--json"]).expect(0, "book list --json as alice").json();
    let mine: Vec<(&str, bool)> = as_alice
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|row| (row["user_id"].as_str().expect("user_id"), row["mine"].as_bool().expect("mine")))
        .collect();
    assert_eq!(mine, [("carol", false), ("alice", true), ("bob", false)]);

    let only_mine = lab.book_as("alice", &["list", "--json", "--mine"]).expect(0, "book list --mine as alice").json();
    let only_mine = only_mine.as_array().expect("a JSON array");
    assert_eq!(only_mine.len(), 1);
    assert_eq!(only_mine[0]["user_id"], "alice");
    lab.assert_unchanged(&before, "listing");
}

#[test]
fn list_mine_without_a_user_is_a_usage_error() {
    let lab = lab_with_three_bookings();
    lab.book(&["list", "--mine"]).expect_no_change(2, "--mine needs --user").says(&["--user"]);
}

#[test]
fn list_timeline_fits_80_columns_with_a_row_per_gpu_and_a_legend() {
    let lab = lab_with_three_bookings();
    for (days, who) in
        [(None, None), (None, Some("alice")), (Some("7"), None), (Some("7"), Some("alice")), (Some("14"), None)]
    {
        let mut args = vec!["list", "--timeline"];
        if let Some(days) = days {
            args.extend(["--days", days]);
        }
        let run = match who {
            Some(user) => lab.book_as(user, &args),
            None => lab.book(&args),
        }
        .expect(0, "book list --timeline");
        for line in run.stdout.lines() {
            assert!(
                line.chars().count() <= 80,
                "a line of {} columns (days {days:?}):\n{line}\n\n{run}",
                line.chars().count()
            );
        }
        for gpu in 0..4 {
            assert!(
                run.stdout.lines().any(|line| line.starts_with(&format!("GPU {gpu}"))),
                "a row for GPU {gpu} (days {days:?}):\n{run}"
            );
        }
        assert!(!run.stdout.lines().any(|line| line.starts_with("GPU 4")), "the host has 4 GPUs:\n{run}");
        for user in ["alice", "bob", "carol"] {
            assert!(run.stdout.contains(&format!("= {user}")), "the legend names {user} (days {days:?}):\n{run}");
        }
        // carol runs on GPUs 2 and 3 today: her mark is on those rows, not on GPU 0's.
        let row = |gpu: u32| {
            run.stdout.lines().find(|line| line.starts_with(&format!("GPU {gpu}"))).expect("a GPU row").to_string()
        };
        let carol_mark = run
            .stdout
            .lines()
            .flat_map(|line| line.split([',', ';']))
            .find_map(|entry| {
                entry
                    .trim()
                    .trim_start_matches("Legend:")
                    .trim()
                    .strip_suffix("= carol")
                    .map(|mark| mark.trim().to_string())
            })
            .unwrap_or_else(|| panic!("carol's mark in the legend:\n{run}"));
        assert!(
            row(2)[7..].contains(&carol_mark) && row(3)[7..].contains(&carol_mark),
            "carol ({carol_mark}) on GPUs 2 and 3:\n{run}"
        );
        if who == Some("alice") {
            assert!(run.stdout.contains("alice (you)"), "the legend marks me:\n{run}");
        }
    }
}

// ---- book free ---------------------------------------------------------------------------

#[test]
fn free_finds_the_earliest_window() {
    let lab = lab_with(&EVERYONE);
    let window = lab
        .book(&["free", "--cpus", "2", "--memory", "4", "--gpus", "1", "--duration", "4-hour", "--json"])
        .expect(0, "an empty host")
        .json();
    assert_eq!(window["start"], "2026-11-23 10:00");
    assert_eq!(window["end"], "2026-11-23 14:00");
    assert_eq!(window["gpus"], serde_json::json!([0]));

    // carol takes every GPU until tomorrow noon.
    lab.book_new("carol", NOW, ("1", "1", "4"), "now", "2026 11 24 12 00");
    let before = lab.snapshot();
    let window = lab
        .book(&["free", "--cpus", "2", "--memory", "4", "--gpus", "1", "--duration", "4-hour", "--json"])
        .expect(0, "a GPU is free from tomorrow noon")
        .json();
    assert_eq!(window["start"], "2026-11-24 12:00");
    assert_eq!(window["end"], "2026-11-24 16:00");
    let text = lab
        .book(&["free", "--cpus", "2", "--memory", "4", "--gpus", "1", "--duration", "4-hour"])
        .expect(0, "free as text");
    assert!(text.stdout.contains("2026-11-24 12:00"), "{text}");
    let window = lab
        .book(&["free", "--cpus", "2", "--memory", "4", "--gpus", "0", "--duration", "1-day", "--json"])
        .expect(0, "no GPU")
        .json();
    assert_eq!(window["start"], "2026-11-23 10:00", "without GPUs the window starts now");
    // Logged in, my own bookings count: carol cannot hold two at once.
    let window = lab
        .book_as("carol", &["free", "--cpus", "1", "--memory", "1", "--gpus", "0", "--duration", "1-hour", "--json"])
        .expect(0, "free as carol")
        .json();
    assert_eq!(window["start"], "2026-11-24 12:00", "carol's own booking runs until then");
    lab.assert_unchanged(&before, "book free");
}

#[test]
fn free_exits_3_when_no_window_fits() {
    let lab = lab_with(&["carol"]);
    lab.book(&["free", "--cpus", "1", "--memory", "1", "--gpus", "5", "--duration", "1-hour"])
        .expect_no_change(3, "5 GPUs on a 4-GPU host")
        .says(&["1-hour"]);
    // carol holds every GPU, back to back, beyond the last start anyone may book.
    lab.book_new("carol", NOW, ("1", "1", "4"), "now", "2-week");
    lab.book_new("carol", NOW, ("1", "1", "4"), "2-week", "1-week");
    lab.book(&["free", "--cpus", "1", "--memory", "1", "--gpus", "1", "--duration", "1-hour", "--json"])
        .expect_no_change(3, "no GPU free within the booking horizon")
        .says(&["14 days"]);
}

#[test]
fn free_exits_3_when_the_request_is_bigger_than_the_host() {
    let lab = Lab::fixture("book");
    lab.book(&["free", "--cpus", "9", "--memory", "1", "--duration", "1-hour", "--json"])
        .expect_no_change(3, "9 CPUs on an 8-CPU host, empty schedule");
    lab.book(&["free", "--cpus", "1", "--memory", "21", "--duration", "1-hour"])
        .expect_no_change(3, "21 GB on a 20 GB host, empty schedule");
    // The same once the schedule holds something: no window opens after the last booking.
    lab.register("alice");
    lab.book_new("alice", NOW, ("1", "1", "0"), "now", "1-day");
    lab.book(&["free", "--cpus", "9", "--memory", "1", "--duration", "1-hour", "--json"])
        .expect_no_change(3, "9 CPUs on an 8-CPU host, one booking");
}

#[test]
fn free_with_a_bad_request_is_a_usage_error() {
    let lab = Lab::fixture("book");
    lab.book(&["free", "--cpus", "1", "--memory", "1", "--duration", "soon"])
        .expect_no_change(2, "a duration that is not one")
        .says(&["soon"]);
    lab.book(&["free", "--cpus", "1", "--memory", "1", "--duration", "now"])
        .expect_no_change(2, "`now` is not a length");
    lab.book(&["free", "--cpus", "1", "--memory", "1"]).expect_no_change(2, "--duration is required");
}

// ---- book cancel -------------------------------------------------------------------------

#[test]
fn cancel_removes_a_future_booking_and_records_it_in_history() {
    let lab = lab_with(&EVERYONE);
    let history = format!("{HEADER}2026-11-20 09:00:00,2026-11-20 12:00:00,bob,1,1,[],10999,,\n");
    lab.write(USED, &history);
    lab.book_new("alice", NOW, ("2", "4", "1"), "2026 11 24 09 00", "2026 11 24 12 00");
    lab.book_new("bob", NOW, ("2", "4", "1"), "2026 11 24 09 00", "2026 11 24 12 00");
    let run = lab.book_as("alice", &["cancel"]).expect(0, "alice cancels her only booking");
    assert!(run.stdout.contains("2026-11-24 09:00"), "{run}");

    let rows = lab.rows(BOOKING);
    assert!(rows.iter().all(|row| row["user_id"] != "alice"), "alice's booking is gone:\n{}", lab.read(BOOKING));
    assert_eq!(rows.len(), 1, "bob's booking stays");
    let used = lab.read(USED);
    assert!(used.starts_with(&history), "used.csv is only appended to:\n{used}");
    let history_rows = lab.rows(USED);
    assert_eq!(history_rows.len(), 2, "{used}");
    let record = &history_rows[1];
    assert_eq!(record["user_id"], "alice");
    assert_eq!(record["start"], "2026-11-24 09:00:00");
    assert_eq!(record["end"], record["start"], "a cancelled booking is recorded with end == start");

    // Nothing left to cancel.
    lab.book_as("alice", &["cancel"]).expect_no_change(3, "alice has no booking left").says(&["no booking"]);
}

#[test]
fn cancel_ends_a_running_booking_at_the_next_half_hour() {
    let lab = lab_with(&["alice"]);
    add_row_by_hand(&lab, USING, "alice", ("2026-11-23 08:00", "2026-11-23 18:00"), "[1]");
    let run = lab.book_as("alice", &["cancel"]).now("2026-11-23 10:17").expect(0, "cancelling a running booking");
    assert!(run.stdout.contains("10:30"), "says when it ends:\n{run}");
    let rows = lab.rows(USING);
    assert_eq!(rows.len(), 1, "the running booking stays for the monitor to stop:\n{}", lab.read(USING));
    assert_eq!(rows[0]["start"], "2026-11-23 08:00:00");
    assert_eq!(rows[0]["end"], "2026-11-23 10:30:00", "ends at the next half hour");
    assert_eq!(rows[0]["gpus"], "[1]");
    assert!(lab.rows(USED).is_empty(), "the monitor, not book, moves it to used.csv");
}

#[test]
fn cancel_with_several_bookings_needs_start_and_start_selects() {
    let lab = lab_with(&["alice"]);
    lab.book_new("alice", NOW, ("1", "1", "0"), "2026 11 24 09 00", "2026 11 24 12 00");
    lab.book_new("alice", NOW, ("1", "1", "0"), "2026 11 25 09 00", "2026 11 25 12 00");
    lab.book_as("alice", &["cancel"]).expect_no_change(2, "two bookings, no --start").says(&[
        "--start",
        "2026-11-24 09:00",
        "2026-11-25 09:00",
    ]);
    lab.book_as("alice", &["cancel", "--start", "2026 11 26 09 00"]).expect_no_change(3, "no booking starts then");
    lab.book_as("alice", &["cancel", "--start", "someday"]).expect_no_change(2, "--start that is not a time");

    lab.book_as("alice", &["cancel", "--start", "2026 11 25 09 00"]).expect(0, "--start selects");
    let rows = lab.rows(BOOKING);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["start"], "2026-11-24 09:00:00", "the other booking stays");
    assert_eq!(lab.rows(USED)[0]["start"], "2026-11-25 09:00:00");
}

// ---- book extend -------------------------------------------------------------------------

#[test]
fn extend_moves_the_end_and_keeps_the_gpus() {
    let lab = lab_with(&EVERYONE);
    // Written by hand on GPU 2, where a fresh placement would pick GPU 0.
    add_row_by_hand(&lab, BOOKING, "alice", ("2026-11-24 09:00", "2026-11-24 12:00"), "[2]");
    lab.book_new("bob", NOW, ("1", "1", "1"), "2026 11 24 12 00", "2026 11 24 14 00");
    let run = lab.book_as("alice", &["extend", "--end", "2026 11 24 14 00"]).expect(0, "GPU 2 is free until 14:00");
    assert!(run.stdout.contains("2026-11-24 14:00"), "{run}");
    let alice = || lab.rows(BOOKING).into_iter().find(|row| row["user_id"] == "alice").expect("alice's row");
    assert_eq!(alice()["end"], "2026-11-24 14:00:00");
    assert_eq!(alice()["start"], "2026-11-24 09:00:00");
    assert_eq!(alice()["gpus"], "[2]", "the same GPU ids");

    // A relative end counts from the current end.
    lab.book_as("alice", &["extend", "--end", "2-hour"]).expect(0, "two more hours");
    assert_eq!(alice()["end"], "2026-11-24 16:00:00");
    assert_eq!(alice()["gpus"], "[2]");

    // An earlier end shortens the booking; one at or before its start is refused.
    lab.book_as("alice", &["extend", "--end", "2026 11 24 11 00"]).expect(0, "shortened to 11:00");
    assert_eq!(alice()["end"], "2026-11-24 11:00:00");
    lab.book_as("alice", &["extend", "--end", "2026 11 24 09 00"])
        .expect_no_change(2, "an end at the start")
        .says(&["2026-11-24 09:00", "not after the start"]);
}

#[test]
fn extend_is_refused_when_another_booking_holds_the_gpu() {
    let lab = lab_with(&EVERYONE);
    lab.book_new("alice", NOW, ("1", "1", "1"), "2026 11 24 09 00", "2026 11 24 12 00");
    lab.book_new("carol", NOW, ("1", "1", "4"), "2026 11 24 13 00", "2026 11 24 15 00");
    lab.book_as("alice", &["extend", "--end", "2026 11 24 14 00"])
        .expect_no_change(3, "carol holds every GPU from 13:00")
        .says(&["2026-11-24 14:00", "GPU"]);
    lab.book_as("alice", &["extend", "--end", "2026 11 24 12 15"]).expect_no_change(2, "an end off the half-hour grid");
    // Up to carol's start is fine.
    lab.book_as("alice", &["extend", "--end", "2026 11 24 13 00"]).expect(0, "until carol's start");
    let alice = lab.rows(BOOKING).into_iter().find(|row| row["user_id"] == "alice").expect("alice's row");
    assert_eq!(alice["end"], "2026-11-24 13:00:00");
}

#[test]
fn extend_a_running_booking_changes_using_csv() {
    let lab = lab_with(&["alice"]);
    add_row_by_hand(&lab, USING, "alice", ("2026-11-23 08:00", "2026-11-23 12:00"), "[3]");
    lab.book_as("alice", &["extend", "--end", "2026 11 23 20 00"]).expect(0, "extending a running booking");
    let rows = lab.rows(USING);
    assert_eq!(rows[0]["end"], "2026-11-23 20:00:00");
    assert_eq!(rows[0]["gpus"], "[3]");
    assert!(lab.rows(BOOKING).is_empty());
}

// ---- book status -------------------------------------------------------------------------

#[test]
fn status_shows_running_and_booked_with_container_and_minutes_left() {
    let lab = lab_with(&EVERYONE);
    let port = lab.port_of("alice");
    add_row_by_hand(&lab, USING, "alice", ("2026-11-23 08:00", "2026-11-23 18:00"), "[1]");
    lab.book_new("alice", NOW, ("1", "2", "1"), "2026 11 24 09 00", "2026 11 24 12 00");
    lab.book_new("bob", NOW, ("1", "2", "1"), "2026 11 24 09 00", "2026 11 24 12 00");
    let before = lab.snapshot();

    let status = lab.book_as("alice", &["status", "--json"]).expect(0, "status --json").json();
    let rows = status.as_array().expect("a JSON array");
    assert_eq!(rows.len(), 2, "only alice's bookings:\n{status:#}");
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["container"], "alice", "the container is named after the user");
    assert_eq!(rows[0]["minutes_left"], 480, "10:00 to 18:00");
    assert_eq!(rows[0]["forward_port"], port);
    assert_eq!(rows[1]["state"], "booked");
    assert_eq!(rows[1]["start"], "2026-11-24 09:00");
    assert_eq!(rows[1]["minutes_left"], 23 * 60, "until the start");
    assert!(rows.iter().all(|row| row["user_id"] == "alice" && row["mine"] == true));

    let text = lab.book_as("alice", &["status"]).expect(0, "status");
    assert!(text.stdout.contains("running") && text.stdout.contains("booked"), "{text}");
    assert!(text.stdout.contains("container alice"), "{text}");
    assert!(text.stdout.contains(&port.to_string()), "{text}");
    assert!(text.stdout.contains("8 h 00 min"), "time left:\n{text}");

    let carol = lab.book_as("carol", &["status", "--json"]).expect(0, "status of someone without bookings").json();
    assert_eq!(carol, serde_json::json!([]));
    lab.book_as("carol", &["status"]).expect(0, "status as text without bookings");
    lab.assert_unchanged(&before, "book status");
}

/// A booking whose start has come but that no monitor pass has moved yet says so, instead
/// of "starts in 0 min".
#[test]
fn status_of_a_booking_due_now_says_the_monitor_starts_it() {
    let lab = lab_with(&EVERYONE);
    lab.book_new("alice", NOW, ("1", "2", "0"), "now", "2-hour");
    let text = lab.book_as("alice", &["status"]).expect(0, "status");
    assert!(text.stdout.contains("due now: the monitor's next pass starts the container"), "{text}");
    assert!(text.stdout.contains("1 CPU, 2 GB, no GPU"), "{text}");
    assert!(!text.stdout.contains("starts in 0 min"), "{text}");
}

// ---- book restart ------------------------------------------------------------------------

#[test]
fn restart_with_a_running_booking_asks_the_monitor() {
    let lab = lab_with(&["alice"]);
    add_row_by_hand(&lab, USING, "alice", ("2026-11-23 08:00", "2026-11-23 18:00"), "[1]");
    let run = lab.book_as("alice", &["restart"]).expect(0, "restart a running container");
    assert!(run.stdout.contains("alice"), "{run}");
    // The original's format: the bare id (its watcher runs `docker restart <line>`).
    assert_eq!(lab.read(MONITOR_EXEC), "alice\n");
}

#[test]
fn restart_without_a_running_booking_is_refused() {
    let lab = lab_with(&EVERYONE);
    lab.book_new("alice", NOW, ("1", "1", "0"), "2026 11 24 09 00", "2026 11 24 12 00");
    add_row_by_hand(&lab, USING, "bob", ("2026-11-23 08:00", "2026-11-23 18:00"), "[1]");
    lab.book_as("alice", &["restart"]).expect_no_change(3, "alice's booking has not started").says(&["running"]);
    lab.book_as("carol", &["restart"]).expect_no_change(3, "carol has no booking");
    assert!(!lab.exists(MONITOR_EXEC));
}

// ---- book options ------------------------------------------------------------------------

/// `book options FLAGS… --json` as alice: the settings it prints.
fn alice_sets(lab: &Lab, flags: &[&str], context: &str) -> Value {
    lab.book_as("alice", &[&["options"][..], flags, &["--json"]].concat()).expect(0, context).json()
}

#[test]
fn options_forward_port_must_be_in_range_and_nobody_elses() {
    let lab = lab_with(&EVERYONE);
    let (alice, bob) = (lab.port_of("alice"), lab.port_of("bob"));
    let carol = lab.port_of("carol");
    let wanted = port_other_than(&[alice, bob, carol]);
    let changed = alice_sets(&lab, &["--forward-port", &wanted.to_string()], "a free port");
    assert_eq!(changed["forward_port"], wanted);
    assert_eq!(changed["user_id"], "alice");
    assert_eq!(lab.port_of("alice"), wanted, "saved");
    assert!(lab.read(USERS_CONFIG).contains(&format!("forward_port: {wanted}")));

    // bob books with a port of his own for one booking only: it is in use during it.
    let borrowed = port_other_than(&[wanted, bob, carol]);
    lab.book_as("bob", &new_booking_args("1", "1", "0", "1-day", "2-hour"))
        .args(["--forward-port", &borrowed.to_string()])
        .expect(0, "bob books with another port");

    for (port, why, named) in [
        (bob.to_string(), "bob's port", "bob"),
        (borrowed.to_string(), "the port of bob's booking", "bob"),
        ("10000".to_string(), "below 10001", "10001"),
        ("11001".to_string(), "above 11000", "11000"),
    ] {
        lab.book_as("alice", &["options", "--forward-port", &port, "--json"])
            .expect_no_change(3, why)
            .says(&[&port, named]);
    }
    lab.book_as("alice", &["options", "--forward-port", "70000"]).expect_no_change(2, "not a port at all");
}

#[test]
fn options_image_must_be_one_of_the_hosts() {
    let lab = lab_with(&["alice"]);
    lab.book_as("alice", &["options", "--image", "evil/miner:latest"])
        .expect_no_change(3, "an image the host does not offer")
        .says(&["evil/miner:latest"]);
    let changed = alice_sets(&lab, &["--image", "pytorch/pytorch:latest"], "an offered image");
    assert_eq!(changed["image"], "pytorch/pytorch:latest");
    assert_eq!(lab.options_of("alice")["image"], "pytorch/pytorch:latest", "saved");
    let changed = alice_sets(&lab, &["--image", "default"], "back to the host's default");
    assert_eq!(changed["image"], Value::Null);
}

#[test]
fn options_extra_command_and_ssh_keys() {
    let lab = lab_with(&["alice"]);
    let changed = alice_sets(&lab, &["--extra-command", "jupyter lab --port 8888"], "an extra command");
    assert_eq!(changed["extra_command"], "jupyter lab --port 8888");
    assert_eq!(lab.options_of("alice")["extra_command"], "jupyter lab --port 8888", "saved");

    let changed = alice_sets(&lab, &["--add-ssh-key", ED25519_KEY], "a valid ed25519 key");
    assert_eq!(changed["ssh_keys"], serde_json::json!([ED25519_KEY]));
    let text = lab.book_as("alice", &["options"]).expect(0, "options as text");
    assert!(text.stdout.contains("alice@laptop"), "the key is listed by its comment:\n{text}");

    for garbage in ["not a key", "ssh-ed25519 not!base64 x", "ssh-dss AAAAB3NzaC1kc3MAAACBAP0 x", "ssh-ed25519"] {
        lab.book_as("alice", &["options", "--add-ssh-key", garbage])
            .expect_no_change(2, &format!("{garbage:?} is not a public key"));
    }
    lab.book_as("alice", &["options", "--remove-ssh-key", "2"]).expect_no_change(2, "there is no key 2");

    let changed = alice_sets(&lab, &["--remove-ssh-key", "1"], "remove key 1");
    assert_eq!(changed["ssh_keys"], serde_json::json!([]));
    let changed = alice_sets(&lab, &["--extra-command", ""], "no extra command");
    assert_eq!(changed["extra_command"], Value::Null);
}

#[test]
fn options_change_password_then_only_the_new_one_works() {
    let lab = lab_with(&["alice"]);
    let old = password_of("alice");
    let new = "violet-alice-42";
    let run = lab
        .book_as("alice", &["options", "--change-password", "--json"])
        .stdin(&format!("{old}\n{new}\n"))
        .expect(0, "--change-password with the new password on the second line of stdin");
    assert!(run.json().is_object(), "--json shows the result as one object:\n{run}");
    lab.book(&["status"]).login("alice", new).expect(0, "the new password works");
    lab.book(&["status"]).login("alice", old).expect(4, "the old password no longer works");
}

#[test]
fn options_change_password_refuses_an_easy_password() {
    let lab = lab_with(&["alice"]);
    let before = lab.snapshot();
    let run = lab
        .book_as("alice", &["options", "--change-password"])
        .stdin(&format!("{}\npassword\n", password_of("alice")))
        .run();
    assert_ne!(run.code, Some(0), "`password` must not be accepted:\n{run}");
    lab.assert_unchanged(&before, "a refused new password");
    lab.book_as("alice", &["status"]).expect(0, "the old password still works");
}

// ---- SSH_ORIGINAL_COMMAND ----------------------------------------------------------------

#[test]
fn ssh_original_command_acts_as_the_arguments() {
    let lab = lab_with_three_bookings();
    let direct = lab.book(&["list", "--json"]).expect(0, "book list --json");
    let over_ssh =
        lab.book(&[]).env("SSH_ORIGINAL_COMMAND", "list --json").expect(0, "SSH_ORIGINAL_COMMAND=\"list --json\"");
    assert_eq!(over_ssh.stdout, direct.stdout);
    let with_book = lab
        .book(&[])
        .env("SSH_ORIGINAL_COMMAND", "book list --json")
        .expect(0, "SSH_ORIGINAL_COMMAND=\"book list --json\"");
    assert_eq!(with_book.stdout, direct.stdout);
    let login = lab
        .book(&[])
        .env("SSH_ORIGINAL_COMMAND", "--user alice --password-stdin status --json")
        .stdin(&format!("{}\n", password_of("alice")))
        .expect(0, "a login over SSH")
        .json();
    assert_eq!(login[0]["user_id"], "alice");
}

#[test]
fn ssh_original_command_keeps_quoted_words_together() {
    let lab = lab_with(&["alice"]);
    let changed = lab
        .book(&[])
        .env(
            "SSH_ORIGINAL_COMMAND",
            r#"--user alice --password-stdin options --extra-command "python3 -m http.server 8888" --json"#,
        )
        .stdin(&format!("{}\n", password_of("alice")))
        .expect(0, "a quoted extra command over SSH")
        .json();
    assert_eq!(changed["extra_command"], "python3 -m http.server 8888");
    assert!(lab.read(USERS_CONFIG).contains("python3 -m http.server 8888"));
    lab.book(&[])
        .env("SSH_ORIGINAL_COMMAND", "options --extra-command \"unbalanced")
        .expect_no_change(2, "an unbalanced quote")
        .says(&["quote"]);
}

#[test]
fn ssh_original_command_cannot_move_the_root() {
    let lab = lab_with_three_bookings();
    let elsewhere = Lab::fixture("book");
    let before = (lab.snapshot(), elsewhere.snapshot());
    let other = elsewhere.root().display().to_string();
    for command in
        [format!("--root {other} list"), format!("list --root={other}"), format!("list --json --root {other}")]
    {
        lab.book(&[])
            .env("SSH_ORIGINAL_COMMAND", &command)
            .expect(2, &format!("SSH_ORIGINAL_COMMAND={command:?}"))
            .says(&["--root"]);
    }
    lab.assert_unchanged(&before.0, "--root over SSH");
    elsewhere.assert_unchanged(&before.1, "--root over SSH");
}

#[test]
fn ssh_original_command_is_never_run_by_a_shell() {
    let lab = lab_with(&["alice"]);
    let marker = lab.path("PWNED");
    let shown = marker.display().to_string();
    let before = lab.snapshot();
    for command in [
        format!("list; touch {shown}"),
        format!("list && touch {shown}"),
        format!("list | touch {shown}"),
        format!("list $(touch {shown})"),
        format!("list `touch {shown}`"),
        format!("$(touch {shown})"),
        format!("list\ntouch {shown}"),
    ] {
        let run = lab.book(&[]).env("SSH_ORIGINAL_COMMAND", &command).run();
        assert_eq!(run.code, Some(2), "{command:?} is just words, which clap rejects:\n{run}");
        assert!(!marker.exists(), "{command:?} ran a shell");
    }
    lab.assert_unchanged(&before, "shell syntax over SSH");
}

// ---- a damaged configuration -------------------------------------------------------------

#[test]
fn a_damaged_capability_config_stops_every_subcommand_naming_the_file_and_line() {
    let lab = lab_with(&EVERYONE);
    lab.book_new("alice", NOW, ("1", "1", "1"), "2026 11 24 09 00", "2026 11 24 12 00");
    add_row_by_hand(&lab, USING, "bob", ("2026-11-23 08:00", "2026-11-23 18:00"), "[1]");
    let damaged = lab.read("cfg/capability_config.yaml").replacen("  cpus: 8 # cores", "  cpus: eight # cores", 1);
    let line = damaged.lines().position(|line| line.contains("eight")).expect("the damaged line") + 1;
    lab.write("cfg/capability_config.yaml", &damaged);
    let before = lab.snapshot();
    let commands: &[(&[&str], bool)] = &[
        (&["list"], false),
        (&["list", "--json"], false),
        (&["list", "--timeline"], false),
        (&["free", "--cpus", "1", "--memory", "1", "--duration", "1-hour"], false),
        (&["list", "--mine"], true),
        (&[], true),
        (&new_booking_args("1", "1", "0", "now", "1-hour"), true),
        (&["cancel"], true),
        (&["extend", "--end", "2026 11 24 13 00"], true),
        (&["status", "--json"], true),
        (&["restart"], true),
        (&["options", "--extra-command", "x", "--json"], true),
    ];
    for (args, login) in commands {
        let book = if *login { lab.book_as("alice", args) } else { lab.book(args) };
        book.expect(1, &format!("book {} with a damaged capability_config.yaml", args.join(" ")))
            .says(&[&format!("cfg/capability_config.yaml:{line}"), "eight"]);
    }
    let over_ssh = lab.book(&[]).env("SSH_ORIGINAL_COMMAND", "list --json").run();
    assert_eq!(over_ssh.code, Some(1), "{over_ssh}");
    lab.assert_unchanged(&before, "a damaged configuration");
}

#[test]
fn a_damaged_users_config_or_schedule_row_stops_book_naming_the_file_and_line() {
    let lab = lab_with(&EVERYONE);
    let users = lab.read(USERS_CONFIG);
    let damaged = users.replacen("forward_port: ", "forward_port: lots # was ", 1);
    let line = damaged.lines().position(|line| line.contains("lots")).expect("the damaged line") + 1;
    lab.write(USERS_CONFIG, &damaged);
    for (user, args) in [(None, &["list", "--json"][..]), (Some("bob"), &["status"][..])] {
        let book = if let Some(user) = user { lab.book_as(user, args) } else { lab.book(args) };
        book.expect_no_change(1, "a damaged users_config.yaml").says(&[&format!("cfg/users_config.yaml:{line}")]);
    }

    lab.write(USERS_CONFIG, &users);
    lab.write(BOOKING, &format!("{HEADER}2026-11-24 09:00:00,2026-11-24 12:00:00,bob,two,4,[0],10999,,\n"));
    for args in [&["list", "--json"][..], &["free", "--cpus", "1", "--memory", "1", "--duration", "1-hour"][..]] {
        lab.book(args).expect_no_change(1, "a damaged booking.csv").says(&["jobs/booking.csv:2", "cpus"]);
    }
    lab.book_as("alice", &new_booking_args("1", "1", "0", "1-day", "1-hour"))
        .expect_no_change(1, "booking on a damaged booking.csv")
        .says(&["jobs/booking.csv:2"]);
}

/// `book new` for 1 CPU, 2 GB, no GPU, tomorrow for two hours, with this extra command.
fn tomorrow_with_extra_command(command: &str) -> Vec<&str> {
    let mut args = new_booking_args("1", "2", "0", "1-day", "2-hour");
    args.extend(["--extra-command", command, "--yes"]);
    args
}

/// An extra command often holds a secret (a notebook token): `book list`, which needs no
/// login, never shows anyone's; the owner sees theirs in `status` and `options`.
#[test]
fn nobody_reads_another_students_extra_command() {
    let lab = lab_with(&EVERYONE);
    let token = "jupyter lab --NotebookApp.token=9f2c41d7e0b3";
    let args = tomorrow_with_extra_command(token);
    lab.book_as("alice", &args).expect(0, "alice books with a token in her extra command");
    for (who, run) in [
        ("nobody logged in, as text", lab.book(&["list"]).run()),
        ("nobody logged in, as JSON", lab.book(&["list", "--json"]).run()),
        ("nobody logged in, the timeline", lab.book(&["list", "--timeline"]).run()),
        ("bob, logged in", lab.book_as("bob", &["list", "--json"]).run()),
    ] {
        let run = run.expect(0, who);
        assert!(run.stdout.contains("alice"), "{who}: alice's booking is listed:\n{run}");
        assert!(!run.stdout.contains("9f2c41d7e0b3"), "{who} sees alice's token:\n{run}");
    }
    let own = lab.book_as("alice", &["list", "--json"]).expect(0, "alice lists her own");
    assert!(own.stdout.contains("9f2c41d7e0b3"), "alice sees her own extra command:\n{own}");
}

/// Every free-text field has a size limit, so one student cannot make the schedule huge for
/// everyone; a refusal writes nothing.
#[test]
fn oversized_fields_are_refused_and_nothing_is_written() {
    let lab = lab_with(&["alice"]);
    let long = "x".repeat(4097);
    let args = tomorrow_with_extra_command(&long);
    lab.book_as("alice", &args).expect_no_change(2, "a 4097-byte extra command").says(&["4096"]);
    lab.book_as("alice", &["options", "--extra-command", &long]).expect_no_change(2, "the same as a default");
    let image = "i".repeat(300);
    lab.book_as("alice", &["options", "--image", &image]).expect_no_change(2, "a 300-byte image name").says(&["256"]);

    let key = |index: usize| format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{index:020} key{index}@laptop");
    for index in 0..16 {
        lab.book_as("alice", &["options", "--add-ssh-key", &key(index)]).expect(0, "a key within the limit");
    }
    lab.book_as("alice", &["options", "--add-ssh-key", &key(16)]).expect_no_change(3, "a 17th key").says(&["16"]);
}

/// A reader that stops early (`book list --json | head -1`) ends `book` quietly, as it ends
/// `ls`: no panic, nothing on stderr.
#[test]
fn a_closed_pipe_ends_the_listing_quietly() {
    let lab = lab_with(&EVERYONE);
    for day in 1..=6 {
        lab.book_new("alice", NOW, ("1", "2", "0"), &format!("{day}-day"), "1-hour");
    }
    // Read nothing and close the pipe, as `head -c0` would.
    let (stderr, code) = lab.book(&["list", "--json"]).run_with_stdout_closed();
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    assert_ne!(code, Some(101), "a panic's exit code");
}
