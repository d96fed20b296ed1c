//! `enroll`'s admin subcommands on scratch roots: add, remove, list, passwd, limits, check,
//! report, completions and man pages — with an admin-commented `capability_config.yaml`
//! whose hand-written lines must survive every edit byte for byte.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::fixtures::{copy_file, fixture_text};
use support::lab::Lab;
use support::run::{self, Run};
use support::schedule::{HEADER, USED};
use support::snapshot::{assert_unchanged, snapshot};

const NOW: &str = "2030-01-10 10:10";

/// The fixture's `capability_config.yaml`, written the way an admin would: comments
/// everywhere, odd spacing, a commented-out user.
fn admins_capability_config() -> String {
    fixture_text("admin/cfg/capability_config.yaml")
}

/// `<binary> --root <root> <args>` with the clock fixed and `input` on standard input.
fn run_in(binary: &str, root: &Path, args: &[&str], input: &str) -> Run {
    run::command(binary).root(root).now(NOW).args(args).stdin(input).run()
}

fn enroll_in(root: &Path, args: &[&str], input: &str) -> Run {
    run_in("enroll", root, args, input)
}

fn ok(root: &Path, args: &[&str], input: &str) -> Run {
    let run = enroll_in(root, args, input);
    assert_eq!(run.code, Some(0), "enroll {args:?}:\n{run}");
    run
}

fn read(root: &Path, relative: &str) -> String {
    fs::read_to_string(root.join(relative)).unwrap_or_else(|error| panic!("read {relative}: {error}"))
}

fn users_config(root: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&read(root, "cfg/users_config.yaml")).unwrap()
}

/// gpu-booking's additions per user (the must-change flag, SSH keys), kept out of
/// `users_config.yaml` so the original system can still read that file.
fn side_file(root: &Path) -> serde_yaml::Value {
    let path = root.join("cfg/users_config.gpu-booking.yaml");
    fs::read_to_string(path).map_or(serde_yaml::Value::Null, |text| serde_yaml::from_str(&text).unwrap())
}

/// Asserts every line of `before` is still in `after`, byte for byte and in order, except
/// those listed in `edited`; returns the lines `after` added.
fn assert_lines_kept(before: &str, after: &str, edited: &[&str]) -> Vec<String> {
    let mut added = Vec::new();
    let mut after_lines = after.split_inclusive('\n').peekable();
    for line in before.split_inclusive('\n') {
        if edited.contains(&line) {
            continue;
        }
        loop {
            match after_lines.next() {
                Some(candidate) if candidate == line => break,
                Some(candidate) => added.push(candidate.to_string()),
                None => panic!("the line {line:?} was lost:\n{after}"),
            }
        }
    }
    added.extend(after_lines.map(str::to_string));
    added
}

#[test]
fn add_and_limits_keep_every_hand_written_line() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    let run = ok(
        path,
        &["add", "alice", "--cpus", "12", "--gpus", "max", "--work-space", "300", "--password-stdin"],
        "tulip-42\n",
    );
    assert!(run.stdout.contains("enrolled alice"), "{run}");
    assert!(!run.stdout.contains("temporary"), "{run}");

    let after_add = read(path, "cfg/capability_config.yaml");
    let mut added = assert_lines_kept(&admins_capability_config(), &after_add, &[]);
    added.sort();
    assert_eq!(
        added,
        ["\n", "    cpus: 12\n", "    gpus: max\n", "    work_space: 300\n", "  - alice\n", "  alice:\n"],
        "{after_add}"
    );
    assert!(after_add.contains("  - bob      # PhD, until 2031\n  - alice\n  # - eve"), "{after_add}");
    assert!(after_add.contains("    gpus: 2\n\n  alice:\n    cpus: 12\n"), "{after_add}");

    let users = users_config(path);
    let alice = &users["alice"];
    let hash = alice["password"].as_str().unwrap();
    assert!(gpu_booking::password::verify(hash, "tulip-42"), "{alice:?}");
    let port = alice["forward_port"].as_u64().unwrap();
    assert!((10001..=11000).contains(&port), "{port}");
    assert!(side_file(path).get("alice").is_none());
    assert!(path.join("volumes/work/alice").is_dir());
    assert_eq!(read(path, "volumes/backup/alice/backup.yaml"), fixture_text("admin/cfg/templates/backup.yaml"));

    let run = ok(path, &["limits", "alice", "--memory", "24.5", "--clear", "gpus", "--cpus", "max"], "");
    assert!(run.stdout.contains("24 GB memory"), "{run}");
    let after_limits = read(path, "cfg/capability_config.yaml");
    let added = assert_lines_kept(&after_add, &after_limits, &["    cpus: 12\n", "    gpus: max\n"]);
    assert_eq!(added, ["    cpus: max\n", "    memory: 24.5\n"], "{after_limits}");
    // A key with its own comment keeps the comment when its value changes.
    ok(path, &["limits", "bob", "--cpus", "16"], "");
    let after_bob = read(path, "cfg/capability_config.yaml");
    let added = assert_lines_kept(&after_limits, &after_bob, &["    cpus: max   # agreed 2029-05\n"]);
    assert_eq!(added, ["    cpus: 16   # agreed 2029-05\n"]);

    let check = ok(path, &["check"], "");
    assert!(check.stdout.contains("ok:"), "{check}");
}

#[test]
fn without_a_password_a_temporary_one_is_printed_once_and_must_be_changed() {
    let lab = Lab::fixture("admin");
    let run = ok(lab.root(), &["add", "carol"], "");
    let temporary = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("temporary password for carol: "))
        .unwrap_or_else(|| panic!("no temporary password:\n{run}"))
        .to_string();
    let users = users_config(lab.root());
    assert!(gpu_booking::password::verify(users["carol"]["password"].as_str().unwrap(), &temporary));
    assert_eq!(side_file(lab.root())["carol"]["must_change_password"].as_bool(), Some(true));
    assert!(users["carol"].get("must_change_password").is_none(), "only the original's keys: {users:?}");
    assert!(!read(lab.root(), "cfg/users_config.yaml").contains(&temporary));

    // passwd from standard input clears the flag; passwd without it sets a new temporary one.
    ok(lab.root(), &["passwd", "carol", "--password-stdin"], "orchid-77\n");
    let users = users_config(lab.root());
    assert!(gpu_booking::password::verify(users["carol"]["password"].as_str().unwrap(), "orchid-77"));
    assert!(side_file(lab.root()).get("carol").is_none());
    let run = ok(lab.root(), &["passwd", "carol"], "");
    assert!(run.stdout.contains("temporary password for carol: "), "{run}");
    assert_eq!(side_file(lab.root())["carol"]["must_change_password"].as_bool(), Some(true));

    // bob is allowed by hand and never logged in: passwd gives him his settings.
    let run = ok(lab.root(), &["passwd", "bob"], "");
    assert!(run.stdout.contains("temporary password for bob"), "{run}");
    assert!(lab.root().join("volumes/work/bob").is_dir());
    // A password that breaks the rules is a usage error, and nothing changes.
    let before = snapshot(lab.root());
    let run = enroll_in(lab.root(), &["passwd", "carol", "--password-stdin"], "1234\n");
    assert_eq!(run.code, Some(2), "{run}");
    assert_unchanged(&before, &snapshot(lab.root()), "passwd with a weak password");
}

#[test]
fn duplicate_ids_and_ports_are_refused_with_exit_3_and_nothing_written() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    ok(path, &["add", "alice", "--forward-port", "10050", "--password-stdin"], "tulip-42\n");
    let before = snapshot(path);
    for (args, expected) in [
        (&["add", "alice", "--password-stdin"][..], "already"),
        (&["add", "bob", "--password-stdin"][..], "already"),
        (&["add", "dave", "--forward-port", "10050", "--password-stdin"][..], "10050"),
        (&["add", "dave", "--forward-port", "80", "--password-stdin"][..], "outside"),
    ] {
        let run = enroll_in(path, args, "tulip-42\n");
        assert_eq!(run.code, Some(3), "enroll {args:?}:\n{run}");
        assert!(run.stderr.contains(expected), "enroll {args:?}:\n{run}");
        assert_unchanged(&before, &snapshot(path), &format!("enroll {args:?}"));
    }
    // Usage errors: a bad id, a bad limit, a limit the checks reject; nothing written.
    for args in [
        &["add", "../etc", "--password-stdin"][..],
        &["add", "dave", "--cpus", "lots", "--password-stdin"][..],
        &["add", "dave", "--cpus", "0", "--password-stdin"][..],
    ] {
        let run = enroll_in(path, args, "tulip-42\n");
        assert_eq!(run.code, Some(2), "enroll {args:?}:\n{run}");
        assert_unchanged(&before, &snapshot(path), &format!("enroll {args:?}"));
    }
}

fn write_bookings(root: &Path) {
    fs::write(
        root.join("jobs/booking.csv"),
        format!("{HEADER}2030-01-12 09:00:00,2030-01-12 18:00:00,alice,4,16,[1],10050,,\n"),
    )
    .unwrap();
    fs::write(
        root.join("jobs/using.csv"),
        format!("{HEADER}2030-01-10 09:00:00,2030-01-11 09:00:00,alice,4,16,[0],10050,,\n"),
    )
    .unwrap();
}

#[test]
fn remove_is_refused_with_bookings_and_force_cancels_them() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    ok(path, &["add", "alice", "--forward-port", "10050", "--memory", "64", "--password-stdin"], "tulip-42\n");
    write_bookings(path);
    let with_alice = read(path, "cfg/capability_config.yaml");

    let before = snapshot(path);
    let run = enroll_in(path, &["remove", "alice"], "").expect(3, "enroll remove alice");
    assert!(run.stderr.contains("--force"), "{run}");
    assert_unchanged(&before, &snapshot(path), "remove with bookings");
    // --purge with a running container is refused outright.
    enroll_in(path, &["remove", "alice", "--force", "--purge"], "").expect(3, "enroll remove alice --force --purge");
    assert_unchanged(&before, &snapshot(path), "remove --force --purge with a running booking");

    let list = ok(path, &["list", "--json"], "");
    let users: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let alice = users.as_array().unwrap().iter().find(|user| user["user"] == "alice").unwrap();
    assert_eq!(alice["bookings"].as_array().unwrap().len(), 2, "{alice}");
    assert_eq!(alice["memory"], 40.0, "64 GB is capped at the host's 40:\n{alice}");
    assert_eq!(alice["forward_port"], 10050);

    let run = ok(path, &["remove", "alice", "--force"], "");
    assert!(run.stdout.contains("kept:"), "{run}");
    assert_eq!(read(path, "jobs/booking.csv"), HEADER);
    assert!(read(path, "jobs/using.csv").contains("2030-01-10 09:00:00,2030-01-10 10:30:00,alice"));
    assert!(read(path, "jobs/used.csv").contains("2030-01-12 09:00:00,2030-01-12 09:00:00,alice"));
    assert_eq!(
        read(path, "cfg/capability_config.yaml"),
        admins_capability_config(),
        "removing alice restores the admin's file"
    );
    assert!(users_config(path).get("alice").is_none());
    assert!(path.join("volumes/work/alice").is_dir(), "folders are kept without --purge");
    assert_ne!(with_alice, admins_capability_config());

    // Once the container has stopped, --purge deletes the folders of the removed user.
    fs::write(path.join("jobs/using.csv"), HEADER).unwrap();
    let run = ok(path, &["remove", "alice", "--purge"], "");
    assert!(run.stdout.contains("deleted:"), "{run}");
    assert!(!path.join("volumes/work/alice").exists());
    assert!(!path.join("volumes/backup/alice").exists());
    assert!(path.join("volumes/dataset").is_dir(), "the shared dataset folder stays");
    let run = enroll_in(path, &["remove", "alice"], "");
    assert_eq!(run.code, Some(3), "nobody left to remove:\n{run}");
}

#[test]
fn purge_refuses_a_folder_outside_the_volume_parents() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    ok(path, &["add", "alice", "--password-stdin"], "tulip-42\n");
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("precious"), "keep me").unwrap();
    let text = read(path, "cfg/users_config.yaml");
    // New entries keep host_deploy.yaml's relative form; the admin's edit points elsewhere.
    let edited = text.replace("./volumes/work/alice", outside.path().to_str().unwrap());
    assert_ne!(edited, text);
    fs::write(path.join("cfg/users_config.yaml"), edited).unwrap();
    let before = snapshot(path);
    let run = enroll_in(path, &["remove", "alice", "--purge"], "").expect(3, "enroll remove alice --purge");
    assert!(run.stderr.contains("will not purge"), "{run}");
    assert_unchanged(&before, &snapshot(path), "purge outside the volumes");
    assert!(outside.path().join("precious").exists());
}

#[test]
fn list_shows_limits_ports_and_folder_sizes() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    ok(path, &["add", "alice", "--forward-port", "10077", "--gpus", "2", "--password-stdin"], "tulip-42\n");
    fs::write(path.join("volumes/work/alice/data.bin"), vec![7u8; 200_000]).unwrap();
    let list = ok(path, &["list"], "");
    assert!(list.stdout.contains("alice"), "{list}");
    assert!(list.stdout.contains("10077"), "{list}");
    assert!(list.stdout.contains("bob"), "bob is allowed by hand:\n{list}");
    let users: serde_json::Value = serde_json::from_str(&ok(path, &["list", "--json"], "").stdout).unwrap();
    let alice = users.as_array().unwrap().iter().find(|user| user["user"] == "alice").unwrap();
    assert_eq!((alice["gpus"].as_u64(), alice["cpus"].as_f64()), (Some(2), Some(8.0)));
    assert!(alice["work"]["bytes"].as_u64().unwrap() >= 200_000, "{alice}");
    let bob = users.as_array().unwrap().iter().find(|user| user["user"] == "bob").unwrap();
    assert_eq!((bob["allowed"].as_bool(), bob["custom_limits"].as_bool()), (Some(true), Some(true)));
    assert_eq!(bob["cpus"].as_f64(), Some(62.0));
}

#[test]
fn check_names_folders_outside_their_parents_and_ports_out_of_range() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    ok(path, &["add", "alice", "--forward-port", "10050", "--password-stdin"], "tulip-42\n");
    let text = read(path, "cfg/users_config.yaml").replace("forward_port: 10050", "forward_port: 2222");
    fs::write(path.join("cfg/users_config.yaml"), &text).unwrap();
    let run = ok(path, &["check"], "");
    assert!(run.stdout.contains("alice.forward_port: 2222 is outside"), "{run}");

    // The booking account writes this file: a folder pointed at the host is an error.
    let pointed = text.replace("volume_backup_dir: ./volumes/backup/alice", "volume_backup_dir: /etc");
    assert_ne!(pointed, text, "alice's entry names her backup folder:\n{text}");
    fs::write(path.join("cfg/users_config.yaml"), pointed).unwrap();
    let run = enroll_in(path, &["check"], "").expect(1, "enroll check");
    assert!(run.stdout.contains("alice.volume_backup_dir: /etc is not inside"), "{run}");

    // Hand edits get the same size limits as `book`.
    let long = format!("extra_command: \"{}\"", "x".repeat(5000));
    fs::write(path.join("cfg/users_config.yaml"), text.replacen("extra_command: null", &long, 1)).unwrap();
    let run = enroll_in(path, &["check"], "").expect(1, "enroll check");
    assert!(run.stdout.contains("alice.extra_command: the extra command is 5000 bytes"), "{run}");
}

#[test]
fn check_lists_allowed_ids_without_a_password_and_guessable_ones() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    // bob is allowed by hand and has never had a password: nobody can log in as him.
    let run = ok(path, &["check"], "");
    assert!(
        run.stdout.lines().any(|line| line
            == "cfg/capability_config.yaml:16: warning: allow_userIDs: bob has no password yet and cannot log \
                in until you set one: enroll passwd bob"),
        "{run}"
    );
    // With self-registration on for him, whoever comes first would choose it: said so.
    fs::write(path.join("cfg/login.yaml"), "self_registration: [bob, zed]\n").unwrap();
    let run = ok(path, &["check"], "");
    assert!(run.stdout.contains("16: warning: allow_userIDs: bob has no password yet, and self-registration"), "{run}");
    assert!(run.stdout.contains("whoever first logs in as bob chooses it"), "{run}");
    assert!(run.stdout.contains("cfg/login.yaml:1: warning: self_registration: zed is not in allow_userIDs"), "{run}");
    // The original's default password is anyone's.
    ok(path, &["passwd", "bob", "--password-stdin"], "tulip-42\n");
    let users = read(path, "cfg/users_config.yaml");
    let hash = users_config(path)["bob"]["password"].as_str().unwrap().to_string();
    fs::write(path.join("cfg/users_config.yaml"), users.replace(&hash, "\"0000\"")).unwrap();
    let run = ok(path, &["check"], "");
    assert!(run.stdout.contains("bob still has the original system's default password \"0000\""), "{run}");
    assert!(!run.stdout.contains("bob has no password"), "{run}");
    // A bad login.yaml is an error like any other file's.
    fs::write(path.join("cfg/login.yaml"), "self_registration: [bob]\nlockout: off\n").unwrap();
    let run = enroll_in(path, &["check"], "").expect(1, "enroll check");
    assert!(run.stdout.contains("cfg/login.yaml:2: unknown field `lockout`"), "{run}");
}

#[test]
fn check_warns_when_the_password_hashes_are_open_to_others() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::fixture("admin");
    let path = lab.root();
    ok(path, &["add", "alice", "--password-stdin"], "tulip-42\n");
    let mode = |relative: &str, mode: u32| {
        fs::set_permissions(path.join(relative), fs::Permissions::from_mode(mode)).unwrap();
    };
    mode("cfg/users_config.yaml", 0o644);
    mode("cfg", 0o755);
    let run = ok(path, &["check"], "");
    assert!(
        run.stdout.contains("cfg/users_config.yaml: warning: mode 0644: others can read the password hashes"),
        "{run}"
    );
    assert!(run.stdout.contains("cfg/: warning: mode 0755: others can list and read"), "{run}");
    mode("cfg", 0o777);
    let run = ok(path, &["check"], "");
    assert!(run.stdout.contains("cfg/: warning: mode 0777: others can change what is in it"), "{run}");
    mode("cfg/users_config.yaml", 0o600);
    mode("cfg", 0o700);
    let run = ok(path, &["check"], "");
    assert!(!run.stdout.contains("mode 0"), "{run}");
}

/// `run-container` takes CPUs like `book`: at least 1, in hundredths, so the container's
/// NanoCpus is never 0 (no limit at all).
#[test]
fn run_container_refuses_cpus_below_one_or_finer_than_hundredths() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    ok(path, &["add", "alice", "--password-stdin"], "tulip-42\n");
    let before = snapshot(path);
    for cpus in ["1e-12", "0", "0.5", "1.234", "NaN", "inf", "-1"] {
        let run = run_in("run-container", path, &["--user", "alice", "--cpus", cpus, "--dry-run"], "");
        assert_eq!(run.code, Some(3), "run-container --cpus {cpus}:\n{run}");
        assert!(run.stderr.contains("cpus must be at least 1, with at most two decimals"), "{run}");
    }
    assert_unchanged(&before, &snapshot(path), "run-container with refused CPUs");
    let run = run_in("run-container", path, &["--user", "alice", "--cpus", "1.5", "--dry-run"], "");
    assert_eq!(run.code, Some(0), "run-container --cpus 1.5:\n{run}");
}

#[test]
fn report_counts_hours_per_user_and_month_exactly() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    let history = "2030-01-31 20:00:00,2030-02-01 04:00:00,alice,4.5,16,\"[0, 1]\",10050,,\n\
                   2030-02-03 10:00:00,2030-02-03 10:00:00,alice,2,8,[2],10050,,\n\
                   2030-02-05 09:30:00,2030-02-05 12:00:00,bob,8,32,[],10051,,\n\
                   2030-03-01 00:00:00,2030-03-02 00:00:00,bob,1,1,[3],10051,,\n";
    lab.write(USED, &format!("{HEADER}{history}"));
    let run = ok(path, &["report", "--csv"], "");
    assert_eq!(
        run.stdout,
        "user,month,bookings,cancellations,gpu_hours,cpu_hours,memory_gb_hours\n\
         alice,2030-01,1,0,8.0,18.0,64.0\n\
         alice,2030-02,0,1,8.0,18.0,64.0\n\
         bob,2030-02,1,0,0.0,20.0,80.0\n\
         bob,2030-03,1,0,24.0,24.0,24.0\n"
    );
    // Clipped to February: alice's January start is not counted, her hours after midnight are.
    let run = ok(path, &["report", "--from", "2030-02-01", "--to", "2030-02-28", "--json"], "");
    let lines: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let lines = lines.as_array().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["user"], "alice");
    assert_eq!((lines[0]["bookings"].as_u64(), lines[0]["cancellations"].as_u64()), (Some(0), Some(1)));
    assert_eq!(lines[0]["gpu_hours"].as_f64(), Some(8.0));
    assert_eq!(lines[1]["cpu_hours"].as_f64(), Some(20.0));
    let table = ok(path, &["report"], "");
    assert!(table.stdout.contains("GPU-hours"), "{table}");
    enroll_in(path, &["report", "--from", "2030-03-01", "--to", "2030-02-01"], "").expect(2, "dates in reverse");
}

/// A broken `used.csv` stops the report like every other reader: exit 1, file, line and field,
/// nothing reported; `--skip-bad-rows` reports the rows that read, and names each one skipped.
#[test]
fn report_refuses_a_broken_history_unless_told_to_skip_bad_rows() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    let good = "2030-02-05 09:30:00,2030-02-05 12:00:00,bob,8,32,[],10051,,\n";
    fs::write(
        path.join("jobs/used.csv"),
        format!("{HEADER}{good}2030-02-06 09:30:00,2030-02-06 12:00:00,bob,eight,32,[],10051,,\nnot a row\n"),
    )
    .unwrap();
    let run = enroll_in(path, &["report", "--csv"], "").expect(1, "enroll report --csv");
    assert!(run.stderr.contains("jobs/used.csv:3: cpus: expected a number of CPUs above 0, found \"eight\""), "{run}");
    assert!(run.stderr.contains("jobs/used.csv:4: expected 9 fields like the header, found 1"), "{run}");
    assert!(run.stderr.contains("--skip-bad-rows"), "the message says how to report anyway:\n{run}");
    assert_eq!(run.stdout, "", "nothing is reported from a broken history");

    let run = ok(path, &["report", "--csv", "--skip-bad-rows"], "");
    assert_eq!(
        run.stdout,
        "user,month,bookings,cancellations,gpu_hours,cpu_hours,memory_gb_hours\nbob,2030-02,1,0,0.0,20.0,80.0\n"
    );
    assert!(run.stderr.contains("warning: jobs/used.csv:3: cpus: "), "{run}");
    assert!(run.stderr.contains("warning: jobs/used.csv:4: "), "{run}");

    // A broken header is no longer "no usage".
    fs::write(path.join("jobs/used.csv"), format!("start,end,user\n{good}")).unwrap();
    let run = enroll_in(path, &["report"], "").expect(1, "enroll report");
    assert!(run.stderr.contains("jobs/used.csv:1: unknown column \"user\""), "{run}");
    assert!(!run.stdout.contains("no usage"), "{run}");
    let run = ok(path, &["report", "--skip-bad-rows"], "");
    assert!(run.stderr.contains("warning: jobs/used.csv:1: unknown column"), "{run}");

    // A folder in place of the file.
    fs::remove_file(path.join("jobs/used.csv")).unwrap();
    fs::create_dir(path.join("jobs/used.csv")).unwrap();
    let run = enroll_in(path, &["report"], "").expect(1, "enroll report");
    assert!(run.stderr.contains("jobs/used.csv"), "{run}");
}

/// A history longer than one block of the reader, with rows quoted across lines and a bad
/// row near its end: every row counts once, and the bad one is named by its line.
#[test]
fn report_reads_a_long_history_row_by_row() {
    let lab = Lab::fixture("admin");
    let path = lab.root();
    let mut text = String::from(HEADER);
    let rows = 150_000;
    for row in 0..rows {
        // One booking of one hour a day per user, a quoted command with a line break in every tenth.
        let day = chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap() + chrono::Duration::days(row / 3);
        let command = if row % 10 == 0 { "\"echo a,\nb\"" } else { "" };
        text.push_str(&format!("{day} 10:00:00,{day} 11:00:00,u{},1.25,4,\"[0, 1]\",10051,,{command}\n", row % 3));
    }
    let lines_before_bad = text.matches('\n').count();
    text.push_str("2030-01-01 10:00:00,2030-01-01 11:00:00,u0,1,4,[0;1],10051,,\n");
    fs::write(path.join("jobs/used.csv"), &text).unwrap();
    let run = enroll_in(path, &["report", "--json"], "").expect(1, "enroll report --json");
    assert!(run.stderr.contains(&format!("jobs/used.csv:{}: gpus: ", lines_before_bad + 1)), "{run}");
    let run = ok(path, &["report", "--json", "--skip-bad-rows"], "");
    let lines: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let bookings: u64 = lines.as_array().unwrap().iter().map(|line| line["bookings"].as_u64().unwrap()).sum();
    assert_eq!(bookings, rows as u64);
    let gpu_hours: f64 = lines.as_array().unwrap().iter().map(|line| line["gpu_hours"].as_f64().unwrap()).sum();
    assert_eq!(gpu_hours, 2.0 * rows as f64);
}

#[test]
fn bash_loads_the_completions_of_every_binary() {
    let lab = Lab::fixture("admin");
    for binary in ["book", "monitor", "run-container", "enroll"] {
        let script = ok(lab.root(), &["completions", "bash", "--binary", binary], "").stdout;
        assert!(script.contains(binary), "{script}");
        let file = lab.root().join(format!("{binary}.bash"));
        fs::write(&file, &script).unwrap();
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!("source {} && complete -p {binary}", file.display()))
            .output()
            .expect("bash runs");
        assert!(output.status.success(), "bash could not load {binary}'s completions: {output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains(binary));
    }
    for shell in ["zsh", "fish"] {
        let script = ok(lab.root(), &["completions", shell], "").stdout;
        assert!(script.contains("enroll") && script.contains("limits"), "{shell}:\n{script}");
    }
    let run = enroll_in(lab.root(), &["completions", "tcsh"], "");
    assert_eq!(run.code, Some(2), "{run}");
}

#[test]
fn man_writes_a_page_per_binary_and_subcommand() {
    let out = tempfile::tempdir().unwrap();
    let lab = Lab::fixture("admin");
    let folder = out.path().join("man1");
    ok(lab.root(), &["man", "--out", folder.to_str().unwrap()], "");
    for page in ["book.1", "monitor.1", "run-container.1", "enroll.1", "enroll-add.1", "enroll-report.1"] {
        let text = fs::read_to_string(folder.join(page)).unwrap_or_else(|error| panic!("{page}: {error}"));
        assert!(text.starts_with(".ie") || text.contains("\n.TH "), "{page} has no .TH header:\n{text}");
        let has_man = Command::new("man").arg("--version").output().is_ok_and(|output| output.status.success());
        if has_man {
            let output = Command::new("man").arg("-l").arg(folder.join(page)).env("MANPAGER", "cat").output().unwrap();
            assert!(output.status.success(), "man -l {page}: {output:?}");
        }
    }
}

/// New users' folders are written the original's way, `<volume_work_dir>/<user>` as
/// `host_deploy.yaml` spells it; relative ones are relative to the root, so a root copied or
/// moved elsewhere (a test install promoted to /srv, a restored backup) uses its own folders.
#[test]
fn relative_user_folders_follow_the_root_when_it_moves() {
    let first = Lab::fixture("admin");
    ok(first.root(), &["add", "alice", "--password-stdin"], "tulip-42\n");
    let users = read(first.root(), "cfg/users_config.yaml");
    assert!(users.contains("volume_work_dir: ./volumes/work/alice"), "{users}");
    assert!(users.contains("volume_backup_dir: ./volumes/backup/alice"), "{users}");
    assert!(!users.contains(first.root().to_str().unwrap()), "no absolute path of the first root:\n{users}");

    let moved = tempfile::tempdir().unwrap();
    for name in ["host_deploy.yaml", "capability_config.yaml", "users_config.yaml", "templates/backup.yaml"] {
        copy_file(&first.path(&format!("cfg/{name}")), &moved.path().join("cfg").join(name));
    }
    fs::create_dir_all(moved.path().join("jobs")).unwrap();
    let output = run_in("run-container", moved.path(), &["--user", "alice", "--dry-run"], "")
        .expect(0, "run-container --dry-run");
    let spec = output.json();
    let work = spec["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|bind| bind["container_path"] == "/root/Work")
        .expect("the work folder bind")["host_path"]
        .as_str()
        .expect("a path")
        .to_string();
    assert_eq!(Path::new(&work), moved.path().join("volumes/work/alice"), "the moved root's own folder");
}
