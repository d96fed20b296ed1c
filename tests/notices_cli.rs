//! Telling students before it matters, without a Docker engine: the e-mail address a student
//! or the admin sets (and where it is stored), the mail settings `enroll check` validates,
//! and what `monitor --dry-run` says a pass would tell. The real deliveries (terminals of a
//! running container, mail to a real SMTP server) are in `tests/notices_docker.rs`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Run, run_with_input};
use tempfile::TempDir;

const NOW: &str = "2026-11-23 11:00";
const PASSWORD: &str = "Vq8-nebula-4471";
const USERS_CONFIG: &str = "cfg/users/users_config.yaml";
const SIDE_FILE: &str = "cfg/users/users_config.gpu-booking.yaml";
const HEADER: &str = "start,end,user_id,cpus,memory,gpus,forward_port,image,extra_command\n";

const HOST_DEPLOY: &str = "\
volume_work_dir: ./volumes/work
volume_dataset_dir: ./volumes/dataset
volume_backup_dir: ./volumes/backup
users_config_yaml: ./cfg/users/users_config.yaml
capability_config_yaml: ./cfg/capability_config.yaml
images:
  - lab/image:latest
";

const MAIL: &str = "\
mail:
  host: 127.0.0.1
  port: 2525
  security: none
  from: \"GPU booking <gpu@lab.test>\"
";

fn scratch_root(mail: &str) -> TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("cfg/users")).unwrap();
    fs::create_dir_all(root.path().join("jobs")).unwrap();
    fs::write(root.path().join("cfg/host_deploy.yaml"), format!("{HOST_DEPLOY}{mail}")).unwrap();
    fs::write(
        root.path().join("cfg/capability_config.yaml"),
        "max:\n  cpus: 8\n  ram: 16\n  swap_size: 0\n  gpus: 2\n  shm_rate: 1\n  memory: 16\n\
         allow_userIDs:\n  - alice\n  - bob\n\
         max_default_capability:\n  cpus: 8\n  memory: 16\n  gpus: 2\n",
    )
    .unwrap();
    fs::write(root.path().join(USERS_CONFIG), "").unwrap();
    fs::write(root.path().join("cfg/login.yaml"), "self_registration: true\n").unwrap();
    root
}

fn run(binary: &str, root: &Path, args: &[&str], input: &str, now: &str) -> Run {
    let mut all = vec!["--root", root.to_str().unwrap()];
    all.extend_from_slice(args);
    run_with_input(binary, &all, input, now)
}

fn book(root: &Path, user: &str, args: &[&str]) -> Run {
    let mut all = vec!["--user", user, "--password-stdin"];
    all.extend_from_slice(args);
    run("book", root, &all, &format!("{PASSWORD}\n"), NOW)
}

fn ok(outcome: Run, context: &str) -> Run {
    assert_eq!(outcome.code, Some(0), "{context}:\n{outcome}");
    outcome
}

/// The student's port, from `book options --json`.
fn port_of(root: &Path, user: &str) -> u16 {
    let outcome = ok(book(root, user, &["options", "--json"]), "book options --json");
    let object: serde_json::Value = serde_json::from_str(outcome.stdout.trim()).unwrap();
    object["forward_port"].as_u64().unwrap() as u16
}

#[test]
fn a_student_sets_and_removes_their_address_and_it_stays_out_of_users_config() {
    let root = scratch_root("");
    let root = root.path();
    ok(book(root, "alice", &["options", "--email", "alice@lab.test"]), "set the address");
    let side = fs::read_to_string(root.join(SIDE_FILE)).unwrap();
    assert!(side.contains("alice:\n  email: \"alice@lab.test\"\n"), "the side file holds it:\n{side}");
    let users = fs::read_to_string(root.join(USERS_CONFIG)).unwrap();
    assert!(!users.contains("email"), "users_config.yaml keeps the original's seven keys:\n{users}");
    let shown = ok(book(root, "alice", &["options", "--json"]), "book options --json");
    assert!(shown.stdout.contains("\"email\":\"alice@lab.test\""), "{shown}");

    let before = fs::read(root.join(SIDE_FILE)).unwrap();
    let refused = book(root, "alice", &["options", "--email", "alice@lab.test\nBcc: all@lab.test"]);
    assert_eq!(refused.code, Some(2), "a broken address is a usage error:\n{refused}");
    assert!(refused.stderr.contains("expected an e-mail address"), "{refused}");
    assert_eq!(fs::read(root.join(SIDE_FILE)).unwrap(), before, "nothing was written");

    ok(book(root, "alice", &["options", "--email", "none"]), "remove the address");
    let side = fs::read_to_string(root.join(SIDE_FILE)).unwrap();
    assert!(!side.contains("email"), "no address any more:\n{side}");
    let shown = ok(book(root, "alice", &["options"]), "book options");
    assert!(shown.stdout.contains("e-mail         (none: no mail from the monitor)"), "{shown}");
}

#[test]
fn the_admin_enrols_a_user_with_an_address() {
    let root = scratch_root("");
    let root = root.path();
    let added = run("enroll", root, &["add", "carol", "--email", "carol@lab.test"], "", NOW);
    assert_eq!(added.code, Some(0), "{added}");
    let side = fs::read_to_string(root.join(SIDE_FILE)).unwrap();
    assert!(side.contains("carol:\n  must_change_password: true\n  email: \"carol@lab.test\"\n"), "{side}");
    let refused = run("enroll", root, &["add", "dave", "--email", "dave"], "", NOW);
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(!fs::read_to_string(root.join(USERS_CONFIG)).unwrap().contains("dave"), "dave was not enrolled");
}

#[test]
fn a_hand_edited_address_that_is_no_address_names_its_line() {
    let root = scratch_root("");
    let root = root.path();
    ok(book(root, "alice", &["options", "--email", "alice@lab.test"]), "set the address");
    let side = root.join(SIDE_FILE);
    let text = fs::read_to_string(&side).unwrap().replace("\"alice@lab.test\"", "\"alice at lab\"");
    fs::write(&side, &text).unwrap();
    let line = text.lines().position(|line| line.contains("email:")).unwrap() + 1;
    let check = run("enroll", root, &["check"], "", NOW);
    assert_ne!(check.code, Some(0), "{check}");
    let expected = format!("cfg/users/users_config.gpu-booking.yaml:{line}: alice.email: expected an e-mail address");
    assert!(check.all_output().contains(&expected), "expected {expected:?} in:\n{check}");
}

#[test]
fn enroll_check_validates_the_mail_settings() {
    let root = scratch_root("mail:\n  host: smtp.lab.test\n  port: 0\n  security: ssl\n  user: gpu\n  from: nobody\n");
    let check = run("enroll", root.path(), &["check"], "", NOW);
    assert_ne!(check.code, Some(0), "{check}");
    let output = check.all_output();
    for expected in [
        "cfg/host_deploy.yaml:10: mail.port: expected a port from 1 to 65535, found 0",
        "cfg/host_deploy.yaml:11: mail.security: expected starttls, tls or none, found \"ssl\"",
        "cfg/host_deploy.yaml:12: mail.user: a user needs password_file",
        "cfg/host_deploy.yaml:13: mail.from: expected an address",
    ] {
        assert!(output.contains(expected), "expected {expected:?} in:\n{output}");
    }

    // A password file others can read: named, and its contents never shown.
    let root = scratch_root(
        "mail:\n  host: smtp.lab.test\n  user: gpu\n  password_file: ./cfg/smtp-password\n  from: gpu@lab.test\n",
    );
    let password_file = root.path().join("cfg/smtp-password");
    fs::write(&password_file, "hunter2-secret\n").unwrap();
    fs::set_permissions(&password_file, fs::Permissions::from_mode(0o644)).unwrap();
    let check = run("enroll", root.path(), &["check"], "", NOW);
    assert_ne!(check.code, Some(0), "{check}");
    assert!(
        check.all_output().contains("cfg/host_deploy.yaml:11: mail.password_file: the mail password file"),
        "{check}"
    );
    assert!(check.all_output().contains("chmod 600"), "{check}");
    assert!(!check.all_output().contains("hunter2"), "the password is shown:\n{check}");
    fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600)).unwrap();
    let check = run("enroll", root.path(), &["check"], "", NOW);
    assert!(!check.all_output().contains("mail."), "a private password file is fine:\n{check}");
}

#[test]
fn the_dry_run_lists_the_warnings_and_mails_a_pass_would_give() {
    let root = scratch_root(MAIL);
    let root = root.path();
    ok(book(root, "alice", &["options", "--email", "alice@lab.test"]), "alice's address");
    ok(book(root, "bob", &["options", "--email", "bob@lab.test"]), "bob's address");
    let (alice, bob) = (port_of(root, "alice"), port_of(root, "bob"));
    // alice's booking ends at 12:00, an hour from now; bob's starts now.
    fs::write(
        root.join("jobs/using.csv"),
        format!("{HEADER}2026-11-23 10:00:00,2026-11-23 12:00:00,alice,2,4,[],{alice},,\n"),
    )
    .unwrap();
    fs::write(
        root.join("jobs/booking.csv"),
        format!("{HEADER}2026-11-23 11:00:00,2026-11-23 15:00:00,bob,2,4,[],{bob},,\n"),
    )
    .unwrap();
    let before = common::snapshot(root);
    let dry = ok(run("monitor", root, &["--dry-run"], "", NOW), "monitor --dry-run");
    let out = &dry.stdout;
    assert!(out.contains("would write alice's login banner (ends 2026-11-23 12:00)"), "{out}");
    assert!(
        out.contains(
            "would warn every open terminal of alice's container (terminal-60) that the booking ends at 2026-11-23 12:00"
        ),
        "{out}"
    );
    assert!(out.contains("would mail mail-end to alice@lab.test"), "{out}");
    assert!(out.contains("would mail mail-ready to bob@lab.test"), "{out}");
    assert!(out.contains("(once the container starts)"), "{out}");
    assert!(!out.contains("terminal of bob"), "a container that just starts has no terminal to warn:\n{out}");
    common::assert_unchanged(&before, &common::snapshot(root), "a dry run");

    // What was told is not told again: the end mail is written down as sent.
    fs::write(
        root.join("jobs/notices.csv"),
        "user_id,start,end,event,outcome,attempts,at\n\
         alice,2026-11-23 10:00:00,2026-11-23 12:00:00,mail-end,sent,1,2026-11-23 11:00:00\n\
         alice,2026-11-23 10:00:00,2026-11-23 12:00:00,terminal-60,sent,1,2026-11-23 11:00:00\n",
    )
    .unwrap();
    let dry = ok(run("monitor", root, &["--dry-run"], "", NOW), "monitor --dry-run after the warning");
    assert!(!dry.stdout.contains("mail-end"), "{dry}");
    assert!(!dry.stdout.contains("terminal-60"), "{dry}");
    // At 11:30 the half-hour warning is due; the mail of the end was sent already.
    let later = ok(run("monitor", root, &["--dry-run"], "", "2026-11-23 11:30"), "monitor --dry-run at 11:30");
    assert!(later.stdout.contains("(terminal-30)"), "{later}");
    assert!(!later.stdout.contains("mail-end"), "{later}");

    // Without mail settings, no mail and a line saying why.
    fs::write(root.join("cfg/host_deploy.yaml"), HOST_DEPLOY).unwrap();
    let dry = ok(run("monitor", root, &["--dry-run"], "", NOW), "monitor --dry-run without mail");
    assert!(!dry.stdout.contains("would mail"), "{dry}");
    assert!(dry.stdout.contains("no mail: host_deploy.yaml has no mail settings"), "{dry}");
}

#[test]
fn extending_a_running_booking_asks_for_a_pass() {
    let root = scratch_root("");
    let root = root.path();
    let port = port_of(root, "alice");
    fs::write(
        root.join("jobs/using.csv"),
        format!("{HEADER}2026-11-23 10:00:00,2026-11-23 12:00:00,alice,2,4,[],{port},,\n"),
    )
    .unwrap();
    ok(book(root, "alice", &["extend", "--end", "2-hour"]), "book extend");
    assert_eq!(
        fs::read_to_string(root.join("jobs/monitor_exec")).unwrap(),
        "now\n",
        "the monitor is asked to run, so the container's banner shows the new end"
    );
}
