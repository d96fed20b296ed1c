//! Telling students before it matters, without a Docker engine: the e-mail address a student
//! or the admin sets (and where it is stored), the mail settings `enroll check` validates,
//! and what `monitor --dry-run` says a pass would tell. The real deliveries (terminals of a
//! running container, mail to a real SMTP server) are in `tests/notices_docker.rs`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use support::fixtures::{fixture_text, mail_settings};
use support::lab::Lab;
use support::schedule::{BOOKING, HEADER, MONITOR_EXEC, USING};

const NOW: &str = "2026-11-23 11:00";
const USERS_CONFIG: &str = "cfg/users/users_config.yaml";
const SIDE_FILE: &str = "cfg/users/users_config.gpu-booking.yaml";

/// A root whose `host_deploy.yaml` ends with `mail` (a `mail:` block, or nothing), alice and
/// bob allowed to register themselves, the clock at [`NOW`].
fn lab_with_mail(mail: &str) -> Lab {
    let lab = Lab::fixture("notices").at(NOW);
    lab.append("cfg/host_deploy.yaml", mail);
    lab
}

/// [`lab_with_mail`] without mail settings, where alice has set her address.
fn lab_with_alices_address() -> Lab {
    let lab = lab_with_mail("");
    lab.book_as("alice", &["options", "--email", "alice@lab.test"]).expect(0, "set the address");
    lab
}

#[test]
fn a_student_sets_and_removes_their_address_and_it_stays_out_of_users_config() {
    let lab = lab_with_alices_address();
    let side = lab.read(SIDE_FILE);
    assert!(side.contains("alice:\n  email: \"alice@lab.test\"\n"), "the side file holds it:\n{side}");
    let users = lab.read(USERS_CONFIG);
    assert!(!users.contains("email"), "users_config.yaml keeps the original's seven keys:\n{users}");
    let shown = lab.book_as("alice", &["options", "--json"]).expect(0, "book options --json");
    assert!(shown.stdout.contains("\"email\":\"alice@lab.test\""), "{shown}");

    let before = fs::read(lab.path(SIDE_FILE)).unwrap();
    let refused = lab.book_as("alice", &["options", "--email", "alice@lab.test\nBcc: all@lab.test"]).run();
    assert_eq!(refused.code, Some(2), "a broken address is a usage error:\n{refused}");
    assert!(refused.stderr.contains("expected an e-mail address"), "{refused}");
    assert_eq!(fs::read(lab.path(SIDE_FILE)).unwrap(), before, "nothing was written");

    lab.book_as("alice", &["options", "--email", "none"]).expect(0, "remove the address");
    let side = lab.read(SIDE_FILE);
    assert!(!side.contains("email"), "no address any more:\n{side}");
    let shown = lab.book_as("alice", &["options"]).expect(0, "book options");
    assert!(shown.stdout.contains("e-mail         (none: no mail from the monitor)"), "{shown}");
}

#[test]
fn the_admin_enrols_a_user_with_an_address() {
    let lab = lab_with_mail("");
    let added = lab.enroll(&["add", "carol", "--email", "carol@lab.test"], "");
    assert_eq!(added.code, Some(0), "{added}");
    let side = lab.read(SIDE_FILE);
    assert!(side.contains("carol:\n  must_change_password: true\n  email: \"carol@lab.test\"\n"), "{side}");
    let refused = lab.enroll(&["add", "dave", "--email", "dave"], "");
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(!lab.read(USERS_CONFIG).contains("dave"), "dave was not enrolled");
}

#[test]
fn a_hand_edited_address_that_is_no_address_names_its_line() {
    let lab = lab_with_alices_address();
    let side = lab.path(SIDE_FILE);
    let text = fs::read_to_string(&side).unwrap().replace("\"alice@lab.test\"", "\"alice at lab\"");
    fs::write(&side, &text).unwrap();
    let line = text.lines().position(|line| line.contains("email:")).unwrap() + 1;
    let check = lab.enroll(&["check"], "");
    assert_ne!(check.code, Some(0), "{check}");
    let expected = format!("cfg/users/users_config.gpu-booking.yaml:{line}: alice.email: expected an e-mail address");
    assert!(check.all_output().contains(&expected), "expected {expected:?} in:\n{check}");
}

#[test]
fn enroll_check_validates_the_mail_settings() {
    let lab = lab_with_mail("mail:\n  host: smtp.lab.test\n  port: 0\n  security: ssl\n  user: gpu\n  from: nobody\n");
    let check = lab.enroll(&["check"], "");
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
    let lab = lab_with_mail(
        "mail:\n  host: smtp.lab.test\n  user: gpu\n  password_file: ./cfg/smtp-password\n  from: gpu@lab.test\n",
    );
    let password_file = lab.root().join("cfg/smtp-password");
    fs::write(&password_file, "hunter2-secret\n").unwrap();
    fs::set_permissions(&password_file, fs::Permissions::from_mode(0o644)).unwrap();
    let check = lab.enroll(&["check"], "");
    assert_ne!(check.code, Some(0), "{check}");
    assert!(
        check.all_output().contains("cfg/host_deploy.yaml:11: mail.password_file: the mail password file"),
        "{check}"
    );
    assert!(check.all_output().contains("chmod 600"), "{check}");
    assert!(!check.all_output().contains("hunter2"), "the password is shown:\n{check}");
    fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600)).unwrap();
    let check = lab.enroll(&["check"], "");
    assert!(!check.all_output().contains("mail."), "a private password file is fine:\n{check}");
}

#[test]
fn the_dry_run_lists_the_warnings_and_mails_a_pass_would_give() {
    let lab = lab_with_mail(&mail_settings(2525));
    let root = lab.root();
    lab.book_as("alice", &["options", "--email", "alice@lab.test"]).expect(0, "alice's address");
    lab.book_as("bob", &["options", "--email", "bob@lab.test"]).expect(0, "bob's address");
    let (alice, bob) = (lab.port_of("alice"), lab.port_of("bob"));
    // alice's booking ends at 12:00, an hour from now; bob's starts now.
    lab.write(USING, &format!("{HEADER}2026-11-23 10:00:00,2026-11-23 12:00:00,alice,2,4,[],{alice},,\n"));
    lab.write(BOOKING, &format!("{HEADER}2026-11-23 11:00:00,2026-11-23 15:00:00,bob,2,4,[],{bob},,\n"));
    let before = lab.snapshot();
    let dry = lab.command("monitor", &["--dry-run"]).expect(0, "monitor --dry-run");
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
    lab.assert_unchanged(&before, "a dry run");

    // What was told is not told again: the end mail is written down as sent.
    fs::write(
        root.join("jobs/notices.csv"),
        "user_id,start,end,event,outcome,attempts,at\n\
         alice,2026-11-23 10:00:00,2026-11-23 12:00:00,mail-end,sent,1,2026-11-23 11:00:00\n\
         alice,2026-11-23 10:00:00,2026-11-23 12:00:00,terminal-60,sent,1,2026-11-23 11:00:00\n",
    )
    .unwrap();
    let dry = lab.command("monitor", &["--dry-run"]).expect(0, "monitor --dry-run after the warning");
    assert!(!dry.stdout.contains("mail-end"), "{dry}");
    assert!(!dry.stdout.contains("terminal-60"), "{dry}");
    // At 11:30 the half-hour warning is due; the mail of the end was sent already.
    let later = lab.command("monitor", &["--dry-run"]).now("2026-11-23 11:30").expect(0, "monitor --dry-run at 11:30");
    assert!(later.stdout.contains("(terminal-30)"), "{later}");
    assert!(!later.stdout.contains("mail-end"), "{later}");

    // Without mail settings, no mail and a line saying why.
    lab.write("cfg/host_deploy.yaml", &fixture_text("notices/cfg/host_deploy.yaml"));
    let dry = lab.command("monitor", &["--dry-run"]).expect(0, "monitor --dry-run without mail");
    assert!(!dry.stdout.contains("would mail"), "{dry}");
    assert!(dry.stdout.contains("no mail: host_deploy.yaml has no mail settings"), "{dry}");
}

/// A record of what was told that cannot be read: the dry run still shows the plan, and says
/// what the pass would: a warning, the banners, and no terminal warning or mail.
#[test]
fn the_dry_run_with_an_unreadable_record_says_what_the_pass_would() {
    let lab = lab_with_mail(&mail_settings(2525));
    lab.book_as("alice", &["options", "--email", "alice@lab.test"]).expect(0, "alice's address");
    let (alice, bob) = (lab.port_of("alice"), lab.port_of("bob"));
    lab.write(USING, &format!("{HEADER}2026-11-23 10:00:00,2026-11-23 12:00:00,alice,2,4,[],{alice},,\n"));
    lab.write(BOOKING, &format!("{HEADER}2026-11-23 11:00:00,2026-11-23 15:00:00,bob,2,4,[],{bob},,\n"));
    lab.write("jobs/notices.csv", "user_id,start,end,event,outcome,attempts,at\nalice,yesterday,,,,,\n");
    let before = lab.snapshot();
    let dry = lab.command("monitor", &["--dry-run"]).expect(0, "monitor --dry-run with a damaged notices.csv");
    let out = &dry.stdout;
    assert!(out.contains("would start bob"), "the plan is shown:\n{out}");
    assert!(out.contains("would warn (NoticeWarning): jobs/notices.csv:2"), "{out}");
    assert!(out.contains("no warning or mail is given until it is fixed"), "{out}");
    assert!(out.contains("would write alice's login banner (ends 2026-11-23 12:00)"), "{out}");
    assert!(!out.contains("would warn every open terminal"), "{out}");
    assert!(!out.contains("would mail"), "{out}");
    lab.assert_unchanged(&before, "a dry run");
}

#[test]
fn extending_a_running_booking_asks_for_a_pass() {
    let lab = lab_with_mail("");
    let port = lab.port_of("alice");
    lab.write(USING, &format!("{HEADER}2026-11-23 10:00:00,2026-11-23 12:00:00,alice,2,4,[],{port},,\n"));
    lab.book_as("alice", &["extend", "--end", "2-hour"]).expect(0, "book extend");
    assert_eq!(
        lab.read(MONITOR_EXEC),
        "now\n",
        "the monitor is asked to run, so the container's banner shows the new end"
    );
}
