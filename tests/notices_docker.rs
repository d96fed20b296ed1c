//! Telling students before it matters, against the real Docker engine and a real mail server:
//! the warning that appears in a terminal open in the container (a pseudo-terminal attached
//! with `docker exec -it`, read as a person would), the login banner that follows `book
//! extend`, and mail received by a local SMTP server (Debian's `python3-aiosmtpd`, started by
//! the test, storing what it receives in a Maildir) — headers, body, and no mail twice; a mail
//! server that refuses the connection or never answers does not hold up the pass.
//!
//! The tests skip (saying why) without a Docker engine or without aiosmtpd, unless
//! `GPU_BOOKING_REQUIRE_DOCKER=1`, when they fail instead.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::docker::*;
use support::fixtures::{fixture_text, mail_settings};
use support::images;
use support::lab::*;
use support::ports::unused_local_port;
use support::run::*;
use support::schedule::*;
use support::terminal::Terminal;

/// The name students use for the host, set in `cfg/containers.yaml`.
const HOST: &str = "gpu.lab.test";
/// An image on the host's list that no engine has and no registry serves.
const ABSENT_IMAGE: &str = "gpu-booking-test/absent:never";
const PYTHON: &str = "/usr/bin/python3";

// ---- a local mail server -----------------------------------------------------------------

/// `python3 -m aiosmtpd` on 127.0.0.1, storing each mail it accepts as a file in a Maildir.
struct MailSink {
    child: Child,
    maildir: tempfile::TempDir,
    port: u16,
}

/// One mail as received: its header lines and its body, decoded.
#[derive(Debug)]
struct Received {
    headers: String,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> String {
        let prefix = format!("{name}: ");
        self.headers.lines().find_map(|line| line.strip_prefix(&prefix)).unwrap_or_default().to_string()
    }
}

fn aiosmtpd_or_skip(test: &str) -> bool {
    images::runs(PYTHON, &["-c", "import aiosmtpd"])
        || images::skip_or_fail(test, &format!("{PYTHON} cannot import aiosmtpd (apt-get install python3-aiosmtpd)"))
}

/// [`Lab::on_engine`] for a test that also needs `aiosmtpd`: `None`, after a line saying
/// why, without either.
fn mail_lab(name: &str, tags: &[&str]) -> Option<Lab> {
    if !aiosmtpd_or_skip(&images::current_test()) {
        return None;
    }
    Lab::on_engine(name, tags)
}

impl MailSink {
    fn start(port: u16) -> MailSink {
        let maildir = tempfile::tempdir().expect("a Maildir folder");
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let sink = MailSink { child, maildir, port };
        // Ready when it accepts a connection (it takes a moment to start).
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    /// Every mail received so far.
    fn mails(&self) -> Vec<Received> {
        let folder = self.maildir.path().join("mail/new");
        let Ok(entries) = std::fs::read_dir(&folder) else { return Vec::new() };
        let mut mails: Vec<Received> = entries
            .map(|entry| {
                let text = std::fs::read_to_string(entry.expect("a Maildir entry").path()).expect("read a mail");
                let text = text.replace("\r\n", "\n");
                let (headers, body) = text.split_once("\n\n").unwrap_or((&text, ""));
                let body = if headers.to_lowercase().contains("content-transfer-encoding: quoted-printable") {
                    decode_quoted_printable(body)
                } else {
                    body.to_string()
                };
                Received { headers: headers.to_string(), body }
            })
            .collect();
        mails.sort_by_key(|mail| mail.header("Subject"));
        mails
    }

    fn mails_to(&self, address: &str) -> Vec<Received> {
        self.mails().into_iter().filter(|mail| mail.header("To") == address).collect()
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes.get(index + 1..index + 3).and_then(|pair| std::str::from_utf8(pair).ok());
        match (bytes[index], hex.and_then(|pair| u8::from_str_radix(pair, 16).ok())) {
            (b'=', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A mail server that accepts connections and never says a word.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(8) {
            held.push(stream);
        }
    });
    port
}

// ---- the lab's settings ------------------------------------------------------------------

/// Points the lab at a mail server (`mail` is the `mail:` block, or empty for none), names
/// the host, and offers a second image that no engine can get.
fn configure(lab: &Lab, mail: &str) {
    let host_deploy = fixture_text("docker/cfg/host_deploy.yaml");
    lab.write("cfg/host_deploy.yaml", &format!("{host_deploy}  - {ABSENT_IMAGE}\n{mail}"));
    lab.write("cfg/containers.yaml", &format!("ssh_host: {HOST}\n"));
}

/// `book new` for 1 CPU and 2 GB from now for two hours, on the image no engine can get.
fn with_absent_image() -> Vec<&'static str> {
    let mut args = new_booking_args("1", "2", "0", "now", "2-hour");
    args.extend(["--image", ABSENT_IMAGE, "--yes"]);
    args
}

fn address(user: &str) -> String {
    format!("{user}@lab.test")
}

fn set_address(lab: &Lab, user: &str) {
    lab.book_as(user, &["options", "--email", &address(user)]).expect(0, &format!("{user}'s address"));
}

// ---- the tests ---------------------------------------------------------------------------

/// A student with a shell open in their container reads, an hour before the end, when it
/// ends, what is kept and lost, and that it cannot be extended because the next booking
/// holds the CPUs. Once it can be (the next booking cancelled), they extend it; the login
/// banner shows the new end at once, and the warning comes again an hour before that end,
/// with the exact command that extends it further.
#[test]
fn a_shell_in_the_container_is_warned_before_the_end() {
    let Some(lab) = Lab::on_engine("warn", &["a", "b"]) else { return };
    configure(&lab, "");
    let (a, b) = (lab.user(0).to_string(), lab.user(1).to_string());
    // a holds both of the host's CPUs until 12:00; b has booked one from 12:00.
    lab.book_new(&a, NOW, ("2", "2", "0"), "now", "2-hour");
    lab.book_new(&b, NOW, ("1", "2", "0"), "2026 11 23 12 00", "2-hour");
    lab.monitor(NOW).expect(0, "the pass that starts a's booking");

    let banner = exec(&a, "cat /etc/motd");
    assert!(banner.contains(&format!("this container is {a}'s booking until 2026-11-23 12:00")), "{banner}");
    assert!(
        banner.contains(&format!("It cannot be extended: the resources are booked next by {b} from 2026-11-23 12:00.")),
        "{banner}"
    );

    // A shell open in the container, as after `ssh root@HOST -p PORT`.
    let mut shell = Terminal::start({
        let mut command = Command::new("docker");
        command.args(["exec", "-it", &a, "sh"]);
        command
    })
    .with_timeout(Duration::from_secs(60));
    shell.answer("echo shell-$((40 + 2))");
    shell.expect("shell-42");

    lab.monitor("2026-11-23 11:00").expect(0, "the pass an hour before the end");
    shell.expect("*** gpu-booking: your booking ends at 2026-11-23 12:00 (in 60 minutes). ***");
    shell.expect("At the end this container is backed up and removed.");
    shell.expect("kept: /root/Work and /root/Backup (your folders on the host), and what /root/Backup/backup.yaml lists: /root/.ssh, /root/.bashrc");
    shell.expect("lost: everything else in the container");
    shell.expect(&format!("It cannot be extended: the resources are booked next by {b} from 2026-11-23 12:00."));
    lab.assert_logged("[INFO]", &[&a, "warned in 1 open terminal(s)", "12:00"], "the warning is logged");

    // Another pass in the same half hour (one `book` asked for) does not warn again.
    lab.monitor("2026-11-23 11:10").expect(0, "a second pass in the same half hour");
    assert_eq!(lab.log_lines("[INFO]", &[&a, "warned in"]).len(), 1, "warned once:\n{}", lab.log());

    // b gives the slot up; a extends by an hour; the pass `book extend` asks for follows.
    lab.book_as(&b, &["cancel"]).now("2026-11-23 11:10").expect(0, "b cancels");
    lab.book_as(&a, &["extend", "--end", "1-hour"]).now("2026-11-23 11:10").expect(0, "a extends to 13:00");
    assert_eq!(lab.read(MONITOR_EXEC), "now\n", "book extend asks for a pass");
    lab.monitor("2026-11-23 11:10").expect(0, "the pass book extend asked for");
    let banner = exec(&a, "cat /etc/motd");
    assert!(banner.contains(&format!("this container is {a}'s booking until 2026-11-23 13:00")), "{banner}");
    let command = format!("ssh -t booking@{HOST} 'extend --user {a} --end \"2026 11 23 15 00\"'");
    assert!(banner.contains(&command), "the banner shows how to extend: {command}\n{banner}");
    assert!(banner.contains("free until 2026-12-07 10:00; then a booking lasts at most 14 days"), "{banner}");

    // Nothing at 11:30 (90 minutes left); the hour warning of the new end at 12:00.
    lab.monitor("2026-11-23 11:30").expect(0, "the pass at 11:30");
    lab.monitor("2026-11-23 12:00").expect(0, "the pass an hour before the new end");
    shell.expect("*** gpu-booking: your booking ends at 2026-11-23 13:00 (in 60 minutes). ***");
    shell.expect(&command);
    assert_eq!(lab.log_lines("[INFO]", &[&a, "warned in"]).len(), 2, "{}", lab.log());
    let notices = lab.read("jobs/notices.csv");
    assert!(notices.contains(&format!("{a},2026-11-23 10:00:00,2026-11-23 13:00:00,terminal-60,sent,1")), "{notices}");
}

/// Mail as the student receives it: the container is ready (host, port, ssh command, end),
/// the booking ends within the hour (with the extend command), a booking whose image is
/// missing did not start (with what to do) — each once, however many passes run.
#[test]
fn each_event_is_mailed_once() {
    let Some(lab) = mail_lab("mail", &["a", "b"]) else { return };
    let sink = MailSink::start(unused_local_port());
    configure(&lab, &mail_settings(sink.port));
    let (a, b) = (lab.user(0).to_string(), lab.user(1).to_string());
    set_address(&lab, &a);
    set_address(&lab, &b);
    lab.book_new(&a, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.book_as(&b, &with_absent_image()).expect(0, "b books with an image the engine cannot get");

    lab.monitor(NOW).expect_failure("the pass (b's start fails)");
    assert!(is_running(&inspect_existing(&a, "a's container")), "a's container runs");
    let ready = sink.mails_to(&address(&a));
    assert_eq!(ready.len(), 1, "one mail to a: {ready:?}");
    let ready = &ready[0];
    assert_eq!(ready.header("From"), "\"GPU booking\" <gpu@lab.test>");
    assert_eq!(ready.header("Subject"), format!("Your container on {HOST} is ready (until 2026-11-23 12:00)"));
    assert!(ready.headers.contains("Content-Type: text/plain; charset=utf-8"), "{}", ready.headers);
    let port = lab.port(&a);
    for expected in [
        format!("log in:  ssh root@{HOST} -p {port}"),
        format!("port:    {port}"),
        "until:   2026-11-23 12:00".to_string(),
        "kept: /root/Work and /root/Backup".to_string(),
    ] {
        assert!(ready.body.contains(&expected), "the ready mail says {expected:?}:\n{}", ready.body);
    }
    let refused = sink.mails_to(&address(&b));
    assert_eq!(refused.len(), 1, "one mail to b: {refused:?}");
    assert_eq!(refused[0].header("Subject"), format!("Your booking on {HOST} did not start"));
    for expected in [
        format!("Its image could not be found or pulled (cannot pull image {ABSENT_IMAGE}"),
        format!("This booking asked for the image {ABSENT_IMAGE}: cancel it and book again"),
        "The monitor tries again at every pass (every 30 minutes) while the booking lasts (until 2026-11-23 12:00)."
            .to_string(),
    ] {
        assert!(refused[0].body.contains(&expected), "the refusal says {expected:?}:\n{}", refused[0].body);
    }
    lab.assert_logged("[INFO]", &[&a, "was mailed (mail-ready)", &address(&a)], "the ready mail is logged");

    lab.monitor("2026-11-23 10:10").expect_failure("a second pass (b still fails)");
    assert_eq!(sink.mails().len(), 2, "nothing new on a second pass: {:?}", sink.mails());

    lab.monitor("2026-11-23 11:00").expect_failure("the pass an hour before the end");
    let to_a = sink.mails_to(&address(&a));
    assert_eq!(to_a.len(), 2, "the mail of the end: {to_a:?}");
    let end = to_a.iter().find(|mail| mail.header("Subject").contains("ends at")).expect("the mail of the end");
    assert_eq!(end.header("Subject"), format!("Your booking on {HOST} ends at 2026-11-23 12:00"));
    assert!(
        end.body.contains("your booking on gpu.lab.test ends at 2026-11-23 12:00 (in 60 minutes)."),
        "{}",
        end.body
    );
    let command = format!("ssh -t booking@{HOST} 'extend --user {a} --end \"2026 11 23 14 00\"'");
    assert!(end.body.contains(&command), "the mail gives {command}:\n{}", end.body);

    lab.monitor("2026-11-23 11:30").expect_failure("the pass half an hour before the end");
    assert_eq!(sink.mails().len(), 3, "the half hour brings no second mail: {:?}", sink.mails());
}

/// A mail server that refuses the connection: the pass ends as if there were no mail, says
/// so (`MailWarning`), and the next pass delivers it; none comes twice. One that accepts and
/// never answers: the pass still ends on time.
#[test]
fn a_mail_server_that_refuses_or_stalls_does_not_hold_up_the_pass() {
    let Some(lab) = mail_lab("stall", &["a", "b"]) else { return };
    let down = unused_local_port();
    configure(&lab, &mail_settings(down));
    let (a, b) = (lab.user(0).to_string(), lab.user(1).to_string());
    set_address(&lab, &a);
    set_address(&lab, &b);
    lab.book_new(&a, NOW, ("1", "2", "0"), "now", "2-hour");

    lab.monitor(NOW).expect(0, "a pass whose mail server refuses the connection");
    assert!(lab.holds(USING, &a, &full(NOW)), "the booking started all the same:\n{}", lab.read(USING));
    lab.assert_logged("[WARNING] MailWarning", &[&a, "mail-ready", "the next pass tries once more"], "the failure");
    assert!(lab.read("jobs/notices.csv").contains(",mail-ready,failed,1,"), "{}", lab.read("jobs/notices.csv"));

    let sink = MailSink::start(down);
    lab.monitor("2026-11-23 10:10").expect(0, "the next pass, the server up");
    assert_eq!(sink.mails_to(&address(&a)).len(), 1, "delivered at the retry");
    lab.monitor("2026-11-23 10:20").expect(0, "one more pass");
    assert_eq!(sink.mails().len(), 1, "never twice: {:?}", sink.mails());
    drop(sink);

    // b starts while the mail server accepts and never answers.
    configure(&lab, &mail_settings(silent_server()));
    lab.book_new(&b, "2026-11-23 10:30", ("1", "2", "0"), "now", "2-hour");
    let began = Instant::now();
    lab.monitor("2026-11-23 10:30").expect(0, "a pass whose mail server never answers");
    let took = began.elapsed();
    // A mail may take lettre's deadline (25 s): the pass waits for no more than that.
    assert!(took < Duration::from_secs(90), "the pass took {took:?}");
    assert!(lab.holds(USING, &b, &full("2026-11-23 10:30")), "b's booking started:\n{}", lab.read(USING));
    lab.assert_logged("[WARNING] MailWarning", &[&b, "mail-ready"], "the stalled mail");
}

/// The password of the mail account travels only to the mail server: a server that cannot
/// encrypt the connection gets neither it nor the mail, and it is in no log line, output,
/// or container.
#[test]
fn the_mail_password_is_never_sent_in_the_clear_nor_shown() {
    let Some(lab) = mail_lab("secret-mail", &["a"]) else { return };
    let sink = MailSink::start(unused_local_port());
    let secret = "Zx9-smtp-secret-5310";
    lab.write("cfg/smtp-password", &format!("{secret}\n"));
    set_private(&lab.path("cfg/smtp-password"));
    configure(
        &lab,
        &format!(
            "mail:\n  host: 127.0.0.1\n  port: {}\n  security: starttls\n  user: gpu\n  password_file: ./cfg/smtp-password\n  from: gpu@lab.test\n",
            sink.port
        ),
    );
    let a = lab.user(0).to_string();
    set_address(&lab, &a);
    lab.book_as(&a, &with_absent_image()).expect(0, "a books with an image the engine cannot get");
    let pass = lab.monitor(NOW);
    let pass = pass.expect_failure("the start fails");
    lab.assert_logged("[WARNING] MailWarning", &[&a, "mail-refused-image"], "the mail could not go out encrypted");
    assert!(sink.mails().is_empty(), "a server without STARTTLS got the mail: {:?}", sink.mails());
    for (what, text) in [("monitor.log", lab.log()), ("stdout", pass.stdout.clone()), ("stderr", pass.stderr.clone())] {
        assert!(!text.contains(secret), "the password is in {what}:\n{text}");
    }
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}
