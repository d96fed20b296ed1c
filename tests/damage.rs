//! Damaged files: `enroll check` on a copy of the original's example root with one kind of
//! damage must exit 1, name the file, the exact line and (where the file parsed that far)
//! the field, never panic, and leave every file under the root byte-for-byte as it was.
//!
//! The snapshots compare every file and folder under the root except `jobs/.lock`: taking
//! the state lock may create that file, and it never holds data (see `support::snapshot::LOCK_FILE`).

mod support;

use std::fs;

use gpu_booking::store::config::Config;
use gpu_booking::store::lock::SharedLock;
use gpu_booking::store::root::Root;
use gpu_booking::store::schedule::{self, ActiveFile};

use support::fixtures::{append, copy_fixture, edit_line};
use support::run::{self, NOW, Run, enroll, enroll_check};
use support::schedule::{BOOKING, USED, USING};
use support::snapshot::{assert_unchanged, snapshot};

const CAPABILITY: &str = "cfg/example/capability_config.yaml";
const USERS: &str = "cfg/example/users_config.yaml";
const HOST_DEPLOY: &str = "cfg/host_deploy.yaml";

/// One change to one line: in `file` at `line`, `from` becomes `to`.
type Edit<'a> = (&'a str, usize, &'a str, &'a str);

/// Damages a fresh copy of the upstream root, runs `enroll check` on it, and asserts the
/// common promises: exit 1, no panic, every line of `expected` in the output, exactly
/// `errors` errors counted, and no file changed.
fn check_damaged(edits: &[Edit], expected: &[&str], errors: usize) -> Run {
    let root = copy_fixture("upstream");
    for (file, line, from, to) in edits {
        edit_line(root.path(), file, *line, from, to);
    }
    let before = snapshot(root.path());
    let run = enroll_check(root.path());
    let after = snapshot(root.path());

    run.assert_no_panic("enroll check on a damaged root");
    assert_eq!(run.code, Some(1), "a damaged root must fail the check:\n{run}");
    let output = run.all_output();
    for wanted in expected {
        assert!(output.contains(wanted), "the output should contain {wanted:?}:\n{run}");
    }
    assert!(run.stderr.contains(&format!("error: {errors} error(s)")), "expected exactly {errors} error(s):\n{run}");
    assert_unchanged(&before, &after, "enroll check");
    run
}

/// One test per kind of damage, each a call of [`check_damaged`]:
/// `name: edits => lines the output must hold, errors counted;`.
macro_rules! damage_tests {
    ($($(#[$doc:meta])* $name:ident: $edits:expr => $expected:expr, $errors:expr;)+) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                check_damaged($edits, $expected, $errors);
            }
        )+
    };
}

// ---- YAML syntax -------------------------------------------------------------------------

damage_tests! {
    /// The parser stops before it knows a field: file and line are all it can give.
    bad_yaml_syntax_a_tab_names_its_line:
        &[(CAPABILITY, 20, "  cpus: 8", "\tcpus: 8")]
        => &["cfg/example/capability_config.yaml:20: found character that cannot start any token"], 1;
    bad_yaml_syntax_a_second_colon_names_its_line:
        &[(CAPABILITY, 21, "memory: 32", "memory: 32: 5")]
        => &["cfg/example/capability_config.yaml:21: mapping values are not allowed in this context"], 1;
}

#[test]
fn bad_yaml_syntax_an_unclosed_quote_says_where_the_quote_opened() {
    // The parser only notices at the end of the file (line 18); the message must still lead
    // the admin to line 11, where the quote opens.
    let run = check_damaged(
        &[(USERS, 11, "\"0000\"", "\"0000")],
        &["cfg/example/users_config.yaml:", "at line 11 column 13"],
        1,
    );
    assert!(run.stdout.contains("while scanning a quoted scalar"), "{run}");
}

// ---- unknown keys ------------------------------------------------------------------------

damage_tests! {
    an_unknown_key_in_the_capability_config_names_line_and_section:
        &[(CAPABILITY, 23, "", "  disk: 5")]
        => &["cfg/example/capability_config.yaml:23: max_default_capability: unknown field `disk`"], 1;
    an_unknown_key_in_the_users_config_names_line_and_user:
        &[(USERS, 11, "password:", "passwd:")]
        => &["cfg/example/users_config.yaml:11: m11007s05-1: unknown field `passwd`"], 1;
    an_unknown_key_in_host_deploy_names_its_line:
        &[(HOST_DEPLOY, 4, "", "volume_tmp_dir: /tmp")]
        => &["cfg/host_deploy.yaml:4: unknown field `volume_tmp_dir`"], 1;
}

// ---- wrong types -------------------------------------------------------------------------

#[test]
fn a_word_for_a_number_gives_the_exact_message() {
    let run = check_damaged(&[(CAPABILITY, 20, "cpus: 8", "cpus: eight")], &[], 1);
    assert!(
        run.stdout.lines().any(|line| line
            == "cfg/example/capability_config.yaml:20: max_default_capability.cpus: \
                expected a number or \"max\", found \"eight\""),
        "{run}"
    );
}

#[test]
fn the_library_gives_the_same_message_for_a_wrong_type() {
    let root = copy_fixture("upstream");
    edit_line(root.path(), CAPABILITY, 20, "cpus: 8", "cpus: eight");
    let lock = SharedLock::acquire(&Root::new(root.path())).unwrap();
    let error = Config::load(&lock).expect_err("a wrong type must not load");
    assert_eq!(
        error.to_string(),
        "cfg/example/capability_config.yaml:20: max_default_capability.cpus: \
         expected a number or \"max\", found \"eight\""
    );
}

damage_tests! {
    a_word_for_a_port_names_user_and_field:
        &[(USERS, 12, "10002", "ten")]
        => &["cfg/example/users_config.yaml:12: m11007s05-1.forward_port: "], 1;
}

// ---- the schedule files ------------------------------------------------------------------

damage_tests! {
    a_bad_time_in_a_booking_names_row_and_column:
        &[(BOOKING, 2, "2026-11-24 09:30:00", "2026-11-31 09:30:00")]
        => &["jobs/booking.csv:2: start: expected a time YYYY-MM-DD HH:MM:SS, found \"2026-11-31 09:30:00\""], 1;
}

#[test]
fn a_bad_time_in_the_history_is_found_too() {
    let root_edit: Edit =
        (USED, 1, "extra_command", "extra_command\n2023-01-01 25:00:00,2023-01-02 13:30:00,m11007s05,2,8,[],10001,,");
    check_damaged(&[root_edit], &["jobs/used.csv:2: start: expected a time"], 1);
}

#[test]
fn a_bad_gpu_list_names_row_and_column() {
    check_damaged(
        &[(BOOKING, 3, "[3]", "[3; 4]")],
        &["jobs/booking.csv:3: gpus: expected a list of GPU ids such as \"[0, 1]\", found \"[3; 4]\""],
        1,
    );
    check_damaged(&[(BOOKING, 2, "\"[0, 1]\"", "\"[0, one]\"")], &["jobs/booking.csv:2: gpus: "], 1);
}

damage_tests! {
    an_end_before_the_start_names_row_and_column:
        &[(BOOKING, 2, "2026-11-25 09:30:00", "2026-11-24 09:00:00")]
        => &["jobs/booking.csv:2: end: 2026-11-24 09:00:00 ", "start 2026-11-24 09:30:00"], 1;
    an_end_equal_to_the_start_is_refused_too:
        &[(BOOKING, 3, "2026-11-25 12:30:00", "2026-11-24 12:30:00")]
        => &["jobs/booking.csv:3: end: "], 1;
}

#[test]
fn negative_cpus_in_yaml_name_line_and_field() {
    check_damaged(
        &[(CAPABILITY, 20, "cpus: 8", "cpus: -8")],
        &["cfg/example/capability_config.yaml:20: max_default_capability.cpus: "],
        1,
    );
    check_damaged(
        &[(CAPABILITY, 2, "cpus: 62", "cpus: -62")],
        &["cfg/example/capability_config.yaml:2: max.cpus: "],
        1,
    );
}

damage_tests! {
    negative_cpus_in_a_booking_name_row_and_column:
        &[(BOOKING, 2, ",4.5,", ",-4.5,")]
        => &["jobs/booking.csv:2: cpus: expected a number of CPUs above 0, found \"-4.5\""], 1;
}

#[test]
fn the_library_refuses_a_damaged_row_with_the_same_message() {
    let root = copy_fixture("upstream");
    edit_line(root.path(), BOOKING, 2, ",4.5,", ",-4.5,");
    let lock = SharedLock::acquire(&Root::new(root.path())).unwrap();
    let error = schedule::read(&lock, ActiveFile::Booking).expect_err("a bad row must not load");
    assert_eq!(error.to_string(), "jobs/booking.csv:2: cpus: expected a number of CPUs above 0, found \"-4.5\"");
}

damage_tests! {
    a_bad_header_names_line_one:
        &[(BOOKING, 1, ",cpus,", ",cpu,")]
        => &["jobs/booking.csv:1: unknown column \"cpu\""], 1;
}

// ---- cross-file checks -------------------------------------------------------------------

damage_tests! {
    a_booking_of_a_user_who_may_not_book_is_reported:
        &[(BOOKING, 3, "m11007s05-1,", "stranger,")]
        => &[
            "jobs/booking.csv:3: user_id: stranger is not in allow_userIDs",
            // The message points at the file that decides, by its path under the root.
            CAPABILITY,
        ], 1;
    a_gpu_the_host_does_not_have_is_reported:
        &[(BOOKING, 3, "[3]", "[4]")]
        => &["jobs/booking.csv:3: gpus: GPU 4 does not exist: the host has 4"], 1;
    a_time_off_the_half_hour_grid_is_reported:
        &[(BOOKING, 2, "2026-11-24 09:30:00", "2026-11-24 09:45:00")]
        => &["jobs/booking.csv:2: start: 2026-11-24 09:45:00 is off the 30-minute grid"], 1;
    a_running_booking_on_a_gpu_booked_by_another_is_reported:
        &[(
            USING,
            1,
            "extra_command",
            "extra_command\n2026-11-24 09:30:00,2026-11-24 10:00:00,m11007s05-2,2,8,[1],10003,,",
        )]
        => &["jobs/using.csv:2: gpus: GPU 1 is also booked by m11007s05 at jobs/booking.csv:2"], 1;
    duplicate_forward_ports_are_reported:
        &[(USERS, 12, "10002", "10001")]
        => &["cfg/example/users_config.yaml:12: m11007s05-1.forward_port: 10001 is also m11007s05's forward port"], 1;
}

// ---- several problems at once ------------------------------------------------------------

damage_tests! {
    errors_in_two_files_are_both_reported_in_one_run:
        &[(CAPABILITY, 20, "cpus: 8", "cpus: eight"), (BOOKING, 3, "[3]", "[3; 4]")]
        => &["cfg/example/capability_config.yaml:20: max_default_capability.cpus: ", "jobs/booking.csv:3: gpus: "], 2;
}

#[test]
fn cpus_no_container_can_be_held_to_name_file_line_and_field() {
    // Docker reads NanoCpus 0 as "no limit": a hand-edited 1e-12 would take the whole host.
    for cpus in ["1e-12", "0.000000001", "0.5", "1.234"] {
        check_damaged(
            &[(BOOKING, 2, ",4.5,", &format!(",{cpus},"))],
            &["jobs/booking.csv:2: cpus: cpus must be at least 1, with at most two decimals"],
            1,
        );
    }
    for cpus in ["NaN", "inf", "0"] {
        check_damaged(&[(BOOKING, 3, ",4.5,", &format!(",{cpus},"))], &["jobs/booking.csv:3: cpus: "], 1);
    }
    // The limits a booking is checked against, and the host itself.
    for (line, from, key) in
        [(20, "cpus: 8", "max_default_capability.cpus"), (29, "cpus: max", "max_custom_capability.m11007s05.cpus")]
    {
        for cpus in ["0.5", "1.234", "1e-12"] {
            check_damaged(
                &[(CAPABILITY, line, from, &format!("cpus: {cpus}"))],
                &[&format!(
                    "cfg/example/capability_config.yaml:{line}: {key}: expected at least 1 CPU, with at most two decimals"
                )],
                1,
            );
        }
    }
    check_damaged(
        &[(CAPABILITY, 2, "cpus: 62", "cpus: 0.25")],
        &["cfg/example/capability_config.yaml:2: max.cpus: expected at least 1 core"],
        1,
    );
}

damage_tests! {
    every_bad_row_of_a_file_is_reported:
        &[(BOOKING, 2, ",4.5,", ",-4.5,"), (BOOKING, 3, "2026-11-24 12:30:00", "2026-11-24 12:31:00")]
        => &["jobs/booking.csv:2: cpus: ", "jobs/booking.csv:3: start: "], 2;
}

// ---- files that are not there or not text ------------------------------------------------

#[test]
fn a_missing_capability_config_says_which_file_and_who_points_at_it() {
    let root = copy_fixture("upstream");
    fs::remove_file(root.path().join(CAPABILITY)).unwrap();
    let before = snapshot(root.path());
    let run = enroll_check(root.path());
    run.assert_no_panic("enroll check");
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.contains("cfg/example/capability_config.yaml: cannot read")
            && run.stdout.contains("capability_config_yaml in cfg/host_deploy.yaml:6)"),
        "{run}"
    );
    assert_unchanged(&before, &snapshot(root.path()), "enroll check");
}

#[test]
fn binary_garbage_in_a_booking_file_does_not_panic() {
    let root = copy_fixture("upstream");
    append(root.path(), BOOKING, "\u{0}\u{1}\"unterminated,\u{7f}\n\u{feff}");
    let mut bytes = fs::read(root.path().join(BOOKING)).unwrap();
    bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
    fs::write(root.path().join(BOOKING), bytes).unwrap();
    let before = snapshot(root.path());
    let run = enroll_check(root.path());
    run.assert_no_panic("enroll check");
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stdout.contains("jobs/booking.csv:4"), "{run}");
    assert_unchanged(&before, &snapshot(root.path()), "enroll check");
}

// ---- absurd numbers (issue 12, item 6) ---------------------------------------------------

/// `book --root ROOT ARGS…` on a damaged root, nobody logged in, the clock at [`NOW`] (the
/// fixture's bookings lie after it).
fn book(root: &std::path::Path, args: &[&str]) -> Run {
    run::command("book").root(root).now(NOW).args(args).run()
}

/// Every line an admin reads from a run, as they would count it.
fn assert_short_lines(run: &Run) {
    for line in run.stdout.lines().chain(run.stderr.lines()) {
        assert!(line.chars().count() <= 300, "a line of {} characters:\n{run}", line.chars().count());
    }
}

#[test]
fn max_gpus_of_1e308_is_refused_at_load_and_book_free_stops_at_once() {
    // Once `enroll check` passed this, and `book free` walked four billion GPU ids (44 s, 16.8 GB).
    let expected = "cfg/example/capability_config.yaml:5: max.gpus: expected a whole number of GPUs from 0 to 64, \
                    found 1e308";
    check_damaged(&[(CAPABILITY, 5, "gpus: 4", "gpus: 1e308")], &[expected], 1);
    let root = copy_fixture("upstream");
    edit_line(root.path(), CAPABILITY, 5, "gpus: 4", "gpus: 1e308");
    let before = snapshot(root.path());
    let run = book(root.path(), &["free", "--cpus", "1", "--memory", "1", "--gpus", "1", "--duration", "1-day"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains(expected), "{run}");
    assert_unchanged(&before, &snapshot(root.path()), "book free");
}

#[test]
fn every_number_of_the_host_and_the_limits_has_a_range_named_in_the_error() {
    // (line, from, to, errors: the lines expected)
    let cases: [(usize, &str, &str, &[&str]); 8] = [
        (
            2,
            "cpus: 62",
            "cpus: 99999999999",
            &[":2: max.cpus: expected at least 1 core, with at most two decimals, up to 4096, found 99999999999"],
        ),
        (
            3,
            "ram: 30",
            "ram: 1e308",
            &[
                ":3: max.ram: expected a number of GB from 0 to 65536, found 1e308",
                ":8: max.memory: is 1e308 GB, expected at most 65536 GB (RAM + swap)",
            ],
        ),
        (
            4,
            "swap_size: 10",
            "swap_size: 99999999999",
            &[
                ":4: max.swap_size: expected a number of GB from 0 to 65536, found 99999999999",
                ":8: max.memory: is 100000000029 GB, expected at most 65536 GB",
            ],
        ),
        (
            10,
            "backup_space: 200",
            "backup_space: 1e308",
            &[":10: max.backup_space: expected a number of GB from 0 to 1000000, found 1e308"],
        ),
        (
            11,
            "work_space: 500",
            "work_space: 99999999999",
            &[":11: max.work_space: expected a number of GB from 0 to 1000000"],
        ),
        (
            20,
            "cpus: 8",
            "cpus: 1e308",
            &[
                ":20: max_default_capability.cpus: expected at least 1 CPU, with at most two decimals, up to 4096, or \"max\", found 1e308",
            ],
        ),
        (
            21,
            "memory: 32",
            "memory: 99999999999",
            &[
                ":21: max_default_capability.memory: expected a number of GB from 0 to 65536, found 99999999999 (or \"max\")",
            ],
        ),
        (
            22,
            "gpus: 1",
            "gpus: 1e308",
            &[":22: max_default_capability.gpus: expected a whole number of GPUs from 0 to 64 or \"max\", found 1e308"],
        ),
    ];
    for (line, from, to, expected) in cases {
        let expected: Vec<String> = expected.iter().map(|tail| format!("{CAPABILITY}{tail}")).collect();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        let run = check_damaged(&[(CAPABILITY, line, from, to)], &expected, expected.len());
        assert_short_lines(&run);
    }
}

#[test]
fn absurd_numbers_in_a_booking_row_stop_every_reader() {
    for (from, to, expected) in [
        (",4.5,16,", ",99999999999,16,", "jobs/booking.csv:2: cpus: expected at most 4096 CPUs, found \"99999999999\""),
        (",4.5,16,", ",4.5,99999,", "jobs/booking.csv:2: memory: expected at most 65536 GB, found \"99999\""),
        (
            "\"[0, 1]\"",
            "\"[0, 4000000000]\"",
            "jobs/booking.csv:2: gpus: GPU 4000000000 is beyond any host (ids are 0 to 63)",
        ),
    ] {
        check_damaged(&[(BOOKING, 2, from, to)], &[expected], 1);
        let root = copy_fixture("upstream");
        edit_line(root.path(), BOOKING, 2, from, to);
        let run = book(root.path(), &["list"]);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains(expected), "{run}");
    }
}

#[test]
fn an_expression_nested_100_000_deep_is_refused_not_a_stack_overflow() {
    let deep = format!("memory: {}ram{}", "(".repeat(100_000), ")".repeat(100_000));
    let run = check_damaged(
        &[(CAPABILITY, 8, "memory: ram + swap_size", &deep)],
        &[
            "cfg/example/capability_config.yaml:8: max.memory: expected a number or an expression such as \"ram + swap_size\": \
           the expression is 200003 bytes long; at most 256 are allowed",
        ],
        1,
    );
    assert_short_lines(&run);
}

// ---- messages (issue 12, item 8) ---------------------------------------------------------

#[test]
fn a_byte_order_mark_is_accepted_in_every_yaml_and_csv_file() {
    let root = copy_fixture("upstream");
    for file in [HOST_DEPLOY, CAPABILITY, USERS, BOOKING, USING, USED] {
        let path = root.path().join(file);
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend(fs::read(&path).unwrap());
        fs::write(&path, bytes).unwrap();
    }
    let run = enroll_check(root.path());
    run.assert_no_panic("enroll check");
    assert_eq!(run.code, Some(0), "{run}");
    // Lines are still counted from the first: the mark is not a line of its own.
    assert!(run.stdout.contains("cfg/example/capability_config.yaml:14: warning: allow_userIDs"), "{run}");
    let run = book(root.path(), &["list"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("m11007s05-1"), "{run}");
}

#[test]
fn a_byte_order_mark_is_dropped_when_enroll_rewrites_the_file() {
    let root = copy_fixture("upstream");
    let path = root.path().join(CAPABILITY);
    let original = fs::read(&path).unwrap();
    let mut marked = b"\xef\xbb\xbf".to_vec();
    marked.extend(&original);
    fs::write(&path, &marked).unwrap();
    let run = enroll(&["--root", root.path().to_str().unwrap(), "limits", "m11007s05-3", "--cpus", "4"]);
    assert_eq!(run.code, Some(0), "{run}");
    let rewritten = fs::read_to_string(&path).unwrap();
    assert!(!rewritten.starts_with('\u{feff}'), "the mark is kept:\n{rewritten}");
    // Everything else is the admin's file, plus the new block.
    let original = String::from_utf8(original).unwrap();
    assert!(rewritten.starts_with(&original), "{rewritten}");
    assert!(rewritten[original.len()..].contains("m11007s05-3:\n    cpus: 4"), "{rewritten}");
}

#[test]
fn bytes_that_are_not_utf8_are_named_by_line_and_column() {
    let root = copy_fixture("upstream");
    for (file, line) in [(USERS, 13), (CAPABILITY, 21), (HOST_DEPLOY, 9)] {
        let path = root.path().join(file);
        let text = fs::read_to_string(&path).unwrap();
        let mut bytes = Vec::new();
        for (index, content) in text.split_inclusive('\n').enumerate() {
            bytes.extend(content.as_bytes());
            if index + 1 == line {
                let end = bytes.len() - 1;
                bytes.insert(end, 0xff);
            }
        }
        fs::write(&path, bytes).unwrap();
        let column = text.lines().nth(line - 1).unwrap().chars().count() + 1;
        let before = snapshot(root.path());
        let run = enroll_check(root.path());
        assert_eq!(run.code, Some(1), "{run}");
        let expected = format!("{file}:{line}: not UTF-8 text: byte 0xff at column {column}; save the file as UTF-8");
        assert!(run.stdout.contains(&expected), "expected {expected:?}:\n{run}");
        assert_unchanged(&before, &snapshot(root.path()), "enroll check");
        fs::write(&path, text).unwrap();
    }
}

#[test]
fn a_100_kb_value_is_quoted_cut_with_its_length() {
    let long = "x".repeat(100_000);
    let run = check_damaged(
        &[(USERS, 12, "10002", &long)],
        &[&format!(
            "cfg/example/users_config.yaml:12: m11007s05-1.forward_port: invalid type: string \"{}…\" (100000 characters), expected u16",
            "x".repeat(60)
        )],
        1,
    );
    assert_short_lines(&run);
    let run = check_damaged(
        &[(BOOKING, 2, ",4.5,", &format!(",{long},"))],
        &[&format!(
            "jobs/booking.csv:2: cpus: expected a number of CPUs above 0, found \"{}…\" (100000 bytes)",
            "x".repeat(60)
        )],
        1,
    );
    assert_short_lines(&run);
    let root = copy_fixture("upstream");
    edit_line(root.path(), BOOKING, 2, ",4.5,", &format!(",{long},"));
    let run = book(root.path(), &["list"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("(100000 bytes)"), "{run}");
    assert_short_lines(&run);
}

#[test]
fn a_missing_or_empty_image_list_names_its_line() {
    let root = copy_fixture("upstream");
    let text = fs::read_to_string(root.path().join(HOST_DEPLOY)).unwrap();
    let settings: String = text.split_inclusive('\n').take(7).collect();
    for (images, line) in [("images: []\n", 8), ("images:\n", 8), ("", 1)] {
        fs::write(root.path().join(HOST_DEPLOY), format!("{settings}{images}")).unwrap();
        let run = enroll_check(root.path());
        assert_eq!(run.code, Some(1), "{run}");
        // Without an `images:` line to point at: the line the file's settings start on.
        let expected = format!("cfg/host_deploy.yaml:{line}: images: expected at least one image");
        assert!(run.stdout.contains(&expected), "{images:?}: expected {expected:?}:\n{run}");
        let run = book(root.path(), &["list"]);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stderr.contains(&expected), "{run}");
    }
}

#[test]
fn a_user_written_twice_is_an_error_at_the_second() {
    // YAML keeps the last of two equal keys, and the next save would have lost the first.
    let entry = "m11007s05-1:\n  password: \"1234\"\n  forward_port: 10009\n";
    let run = check_damaged(
        &[(USERS, 18, "", &format!("\n{entry}"))],
        &["cfg/example/users_config.yaml:19: m11007s05-1 is written twice; keep one of the two"],
        1,
    );
    assert_short_lines(&run);
}

#[test]
fn a_fifo_in_place_of_a_configuration_file_is_refused_without_waiting() {
    let root = copy_fixture("upstream");
    let fifo = root.path().join("cfg/containers.yaml");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o644), 0).unwrap();
    // Before, the read waited for a writer forever.
    let run = run::command("enroll").root(root.path()).args(["check"]).limit(std::time::Duration::from_secs(60)).run();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.contains("cfg/containers.yaml: cannot read: it is a named pipe (FIFO), expected a plain file"),
        "{run}"
    );
}

#[test]
fn rows_off_the_grid_or_over_the_field_limits_stop_every_reader_as_they_stop_the_check() {
    let long_command = "x".repeat(5000);
    for (from, to, expected) in [
        (
            "2026-11-24 12:30:00",
            "2026-11-24 12:40:00",
            "jobs/booking.csv:3: start: 2026-11-24 12:40:00 is off the 30-minute grid",
        ),
        (
            "python3 -m http.server 8888",
            long_command.as_str(),
            "jobs/booking.csv:3: extra_command: the extra command is 5000 bytes",
        ),
    ] {
        check_damaged(&[(BOOKING, 3, from, to)], &[expected], 1);
        let root = copy_fixture("upstream");
        edit_line(root.path(), BOOKING, 3, from, to);
        let run = book(root.path(), &["list"]);
        assert_eq!(run.code, Some(1), "book list took what enroll check refuses:\n{run}");
        assert!(run.stderr.contains(expected), "{run}");
    }
    // The same for a user's own settings.
    let image = format!("image: {}", "i".repeat(300));
    let expected = "cfg/example/users_config.yaml:13: m11007s05-1.image: the image name is 300 bytes";
    check_damaged(
        &[(USERS, 13, "image: rober5566a/aivc-server:cuda11.8.0-cudnn8-devel-ubuntu20.04", &image)],
        &[expected],
        1,
    );
    let root = copy_fixture("upstream");
    edit_line(root.path(), USERS, 13, "image: rober5566a/aivc-server:cuda11.8.0-cudnn8-devel-ubuntu20.04", &image);
    let run = book(root.path(), &["list"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains(expected), "{run}");
}

// ---- conflicts between rows --------------------------------------------------------------

/// 2,000 copies of one booking: each conflict is reported once, grouped, with how many rows
/// take part and where some of the others are, not once per pair (which printed 2 million
/// lines).
#[test]
fn identical_rows_are_reported_once_per_conflict_with_a_count() {
    let root = copy_fixture("upstream");
    let row = "2026-11-24 09:30:00,2026-11-25 09:30:00,m11007s05,4.5,16,\"[0, 1]\",10001,,\n";
    append(root.path(), BOOKING, &row.repeat(1999));
    let run = enroll_check(root.path());
    run.assert_no_panic("enroll check on 2,000 identical rows");
    assert_eq!(run.code, Some(1), "{run}");
    let output = run.all_output();
    assert!(
        output.contains(
            "jobs/booking.csv:2: start: 2000 bookings of m11007s05 overlap one another: this one and those at \
             jobs/booking.csv:4, jobs/booking.csv:5, jobs/booking.csv:6 and 1996 more"
        ),
        "{run}"
    );
    assert!(
        output.contains(
            "jobs/booking.csv:2: gpus: GPU 0, 1 are each booked by 2000 bookings at overlapping times: this one and \
             m11007s05 at jobs/booking.csv:4"
        ),
        "{run}"
    );
    assert!(run.stderr.contains("error: 2 error(s)"), "{run}");
    assert!(output.lines().count() < 20, "a few lines, not one per pair:\n{run}");
}

/// Three bookings of one user in a chain (the first overlaps the second, the second the
/// third): one problem naming all three; two that overlap: the later one names the earlier.
#[test]
fn overlapping_bookings_of_one_user_are_grouped() {
    let root = copy_fixture("upstream");
    append(
        root.path(),
        BOOKING,
        "2026-11-25 09:00:00,2026-11-25 12:00:00,m11007s05,1,1,[],10001,,\n\
         2026-11-25 11:30:00,2026-11-25 13:00:00,m11007s05,1,1,[],10001,,\n\
         2026-11-26 10:00:00,2026-11-26 11:00:00,m11007s05-2,1,1,[2],10003,,\n\
         2026-11-26 10:30:00,2026-11-26 11:30:00,m11007s05-2,1,1,[],10003,,\n",
    );
    let run = enroll_check(root.path());
    assert_eq!(run.code, Some(1), "{run}");
    let output = run.all_output();
    assert!(
        output.contains(
            "jobs/booking.csv:2: start: 3 bookings of m11007s05 overlap one another: this one and those at \
             jobs/booking.csv:4 and jobs/booking.csv:5"
        ),
        "{run}"
    );
    assert!(
        output.contains("jobs/booking.csv:7: start: overlaps m11007s05-2's booking at jobs/booking.csv:6"),
        "{run}"
    );
    assert!(run.stderr.contains("error: 2 error(s)"), "{run}");
}
