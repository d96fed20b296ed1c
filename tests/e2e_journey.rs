//! The student's whole journey, for real (issue 7): a real sshd with the shipped `booking`
//! account snippet, the real `book` and `monitor` binaries, a real Docker engine and an image
//! built from Debian's packages that meets the image contract (sshd inside).
//!
//! 1. An image: `debootstrap --variant=minbase --include=openssh-server,passwd bookworm`,
//!    imported with `docker import` (reused by later runs: tag + recipe label).
//! 2. A server, installed the README's way on a temporary folder: the binaries, a root with
//!    the shipped `cfg/`, `enroll check`, the `booking` account and its `chown`s, and an sshd
//!    on a loopback port whose only configuration besides port/key/pid file is an `Include` of
//!    a copy of `systemd/sshd-booking.conf` — with the forced command pointing at this `book`
//!    and this root, and the test's clock (sshd passes no `GPU_BOOKING_*` variable: the copy
//!    reads the clock from a file).
//! 3. The journey: `ssh -tt booking@127.0.0.1` — user id, a new password, a booking `now` for
//!    two hours through the dialogue (choosing a forward port free on this host) —;
//!    `ssh booking@… list --timeline`; `monitor` as the systemd unit runs it; `ssh root@…` into
//!    the container with the booking password, a file in `~/Work` and a line in `~/.bashrc`;
//!    the clock past the end; `monitor`: the container is gone, both files are on the host;
//!    `ssh booking@… new … --password-stdin`; `monitor`; the new container has `~/.bashrc`
//!    back; the clock past that end; `monitor` stops it.
//!
//! Each step is printed (command, exit code, output) so CI's log reads as the journey.
//! Needs root, Docker, OpenSSH (server and client), sshpass and debootstrap (and Debian's
//! mirror for the first build); without one it skips with the reason — or fails, when
//! `GPU_BOOKING_REQUIRE_DOCKER=1` (CI).

#[path = "e2e/debian_image.rs"]
mod debian_image;
#[path = "support/images.rs"]
mod images;
#[path = "support/screen.rs"]
mod screen;
#[path = "support/terminal.rs"]
mod terminal;

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use terminal::Terminal;

const TEST: &str = "e2e_journey";

/// The clock of the journey: a Monday morning; the first booking runs 10:00–12:00.
const NOW_FIRST: &str = "2026-11-23 10:00";
/// Past the first booking's end; the second booking runs 12:30–14:30.
const NOW_SECOND: &str = "2026-11-23 12:30";
/// Past the second booking's end.
const NOW_LAST: &str = "2026-11-23 15:00";

/// The student's booking password.
const PASSWORD: &str = "Kz7-orbit-e2e-3391";

/// What the shipped files say, replaced by the test's paths.
const SHIPPED_BOOK: &str = "/usr/local/bin/book";
const SHIPPED_MONITOR: &str = "/usr/local/bin/monitor";
const SHIPPED_ROOT: &str = "/srv/gpu-booking";

/// No single command may hang the test longer than this.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

// ---- prerequisites -----------------------------------------------------------------------

/// Prints why the test cannot run and returns false — or panics, under
/// `GPU_BOOKING_REQUIRE_DOCKER=1`.
fn unavailable(reason: &str) -> bool {
    if std::env::var(images::REQUIRE_DOCKER).as_deref() == Ok("1") {
        panic!("{TEST}: {reason}, and {}=1 requires the end-to-end test to run", images::REQUIRE_DOCKER);
    }
    eprintln!("{TEST}: skipped: {reason}");
    false
}

/// The program's path: on PATH, or in the sbin folders (a non-login PATH may lack them).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|folder| !folder.is_empty())
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|folder| Path::new(folder).join(name))
        .find(|candidate| {
            fs::metadata(candidate).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

struct Tools {
    sshd: PathBuf,
    ssh: PathBuf,
    ssh_keygen: PathBuf,
    sshpass: PathBuf,
    debootstrap: PathBuf,
}

/// The tools, or None (after a skip line) when something is missing.
fn tools() -> Option<Tools> {
    let uid =
        Command::new("id").arg("-u").output().map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string());
    if uid.as_deref().ok() != Some("0") {
        unavailable(
            "not running as root (the test creates the `booking` account and chowns the root, as the README's install does)",
        );
        return None;
    }
    if !images::engine_or_skip(TEST) {
        return None;
    }
    let mut missing = Vec::new();
    let mut find = |name: &str, package: &str| {
        find_program(name).or_else(|| {
            missing.push(format!("{name} (Debian package {package})"));
            None
        })
    };
    let found = (
        find("sshd", "openssh-server"),
        find("ssh", "openssh-client"),
        find("ssh-keygen", "openssh-client"),
        find("sshpass", "sshpass"),
        find("debootstrap", "debootstrap"),
        find("useradd", "passwd"),
    );
    match found {
        (Some(sshd), Some(ssh), Some(ssh_keygen), Some(sshpass), Some(debootstrap), Some(_)) => {
            Some(Tools { sshd, ssh, ssh_keygen, sshpass, debootstrap })
        }
        _ => {
            unavailable(&format!("missing: {}", missing.join(", ")));
            None
        }
    }
}

// ---- running commands, and the log -------------------------------------------------------

/// How one command ended.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// The journey's log: numbered steps, each command with its exit code and output.
struct Journal {
    step: u32,
    started: Instant,
}

impl Journal {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n==== [{:>5.1} s] step {}: {title}", self.started.elapsed().as_secs_f64(), self.step);
    }

    fn note(&self, text: &str) {
        for line in text.lines() {
            println!("     {line}");
        }
    }

    /// Runs `command` (with `stdin` written to it), logs it as `shown`, returns how it ended.
    fn run(&self, shown: &str, mut command: Command, stdin: Option<&str>) -> Outcome {
        println!("  $ {shown}");
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command.spawn().unwrap_or_else(|error| panic!("cannot start `{shown}`: {error}"));
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("a piped stdin");
            let _ = pipe.write_all(text.as_bytes());
        }
        let mut stdout = child.stdout.take().expect("a piped stdout");
        let mut stderr = child.stderr.take().expect("a piped stderr");
        let out_reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        });
        let err_reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stderr.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        });
        let code = loop {
            match child.try_wait().expect("wait for a command") {
                Some(status) => break status.code(),
                None if started.elapsed() > COMMAND_LIMIT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    println!("    → killed after {COMMAND_LIMIT:?}");
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let outcome = Outcome {
            code,
            stdout: out_reader.join().unwrap_or_default(),
            stderr: err_reader.join().unwrap_or_default(),
        };
        let shown_code = code.map_or_else(|| "none (killed)".to_string(), |code| code.to_string());
        println!("    → exit {shown_code} ({:.1} s)", started.elapsed().as_secs_f64());
        for (mark, text) in [("|", &outcome.stdout), ("!", &outcome.stderr)] {
            let lines: Vec<&str> = text.lines().collect();
            for line in lines.iter().take(40) {
                println!("    {mark} {line}");
            }
            if lines.len() > 40 {
                println!("    {mark} … ({} more lines)", lines.len() - 40);
            }
        }
        outcome
    }

    /// Runs and requires exit 0.
    fn run_ok(&self, shown: &str, command: Command, stdin: Option<&str>) -> Outcome {
        let outcome = self.run(shown, command, stdin);
        assert!(outcome.ok(), "`{shown}` failed (exit {:?}); its output is in the log above", outcome.code);
        outcome
    }
}

// ---- the server: binaries, root, account, sshd ---------------------------------------------

/// The test's sshd, stopped when dropped.
struct Sshd {
    child: Child,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|error| panic!("chmod {}: {error}", path.display()));
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("create the parent folder");
    fs::write(path, text).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// `cp -r`: a folder's files and subfolders.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|error| panic!("create {}: {error}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|error| panic!("read {}: {error}", from.display())) {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap_or_else(|error| panic!("copy {}: {error}", entry.path().display()));
        }
    }
}

/// A loopback port free now, from `first` on.
fn free_port(first: u16, count: u16, address: &str) -> u16 {
    let offset = (std::process::id() % u32::from(count)) as u16;
    (0..count)
        .map(|step| first + (offset + step) % count)
        .find(|port| TcpListener::bind((address, *port)).is_ok())
        .unwrap_or_else(|| panic!("no free port from {first} to {}", first + count - 1))
}

/// `ssh` options shared by every connection: no user or system ssh_config, no host-key
/// questions, no prompts that could hang.
fn ssh_command(tools: &Tools, port: u16, destination: &str) -> Command {
    let mut command = Command::new(&tools.ssh);
    command.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]);
    command.args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-p", &port.to_string(), destination]);
    command
}

/// `ssh booking@127.0.0.1 -p PORT`, the student's way in: sshd's "none" authentication with
/// the account's empty password, so no prompt (BatchMode: a prompt would be a failure).
fn booking_ssh(tools: &Tools, port: u16) -> Command {
    let mut command = ssh_command(tools, port, "booking@127.0.0.1");
    command.args(["-o", "BatchMode=yes"]);
    command
}

/// `sshpass -e ssh root@127.0.0.1 -p FORWARD_PORT COMMAND`: into the container with the
/// booking password (given to sshpass in its environment, not on a command line).
fn container_ssh(tools: &Tools, forward_port: u16, remote: &str) -> Command {
    let mut command = Command::new(&tools.sshpass);
    command.arg("-e").arg(&tools.ssh).env("SSHPASS", PASSWORD);
    command.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]);
    command.args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-o", "PreferredAuthentications=password"]);
    command.args(["-o", "PubkeyAuthentication=no", "-p", &forward_port.to_string(), "root@127.0.0.1", remote]);
    command
}

/// The container's state: `Some(running)`, or None when there is no such container.
fn container_running(name: &str) -> Option<bool> {
    let output = Command::new("docker")
        .args(["inspect", "--format", "{{.State.Running}}", name])
        .output()
        .expect("run docker inspect");
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim() == "true")
}

/// The monitor's command line, taken from the systemd unit's `ExecStart=` and
/// `WorkingDirectory=` with the shipped paths replaced by the test's.
fn monitor_from_unit(unit: &str, monitor: &Path, root: &Path) -> (Vec<String>, PathBuf) {
    let value = |key: &str| {
        unit.lines()
            .find_map(|line| line.strip_prefix(key))
            .unwrap_or_else(|| panic!("systemd/gpu-booking-monitor.service has no {key} line"))
            .trim()
            .to_string()
    };
    let exec_start = value("ExecStart=");
    let working_directory = value("WorkingDirectory=");
    let words: Vec<String> = exec_start
        .split_whitespace()
        .map(|word| match word {
            SHIPPED_MONITOR => monitor.display().to_string(),
            SHIPPED_ROOT => root.display().to_string(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some(monitor.to_str().expect("a UTF-8 path")),
        "ExecStart= no longer runs {SHIPPED_MONITOR}: {exec_start}"
    );
    assert_eq!(working_directory, SHIPPED_ROOT, "WorkingDirectory= is no longer {SHIPPED_ROOT}");
    (words, root.to_path_buf())
}

/// The rows of a `jobs/*.csv` file that belong to `user`.
fn rows_of(root: &Path, file: &str, user: &str) -> Vec<String> {
    fs::read_to_string(root.join(file))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.split(',').nth(2) == Some(user))
        .map(str::to_string)
        .collect()
}

// ---- the journey ---------------------------------------------------------------------------

#[test]
fn a_student_books_over_ssh_uses_the_container_and_gets_the_files_back() {
    let Some(tools) = tools() else { return };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut journal = Journal { step: 0, started: Instant::now() };
    println!("{TEST}: the student's journey, end to end (issue 7)");

    // -- 1. the image
    journal.step("an image that meets the image contract, from Debian's packages");
    let image = match debian_image::debian_ssh_image(&tools.debootstrap, &mut |line| println!("  {line}")) {
        Ok(image) => image,
        Err(reason) => {
            unavailable(&format!("cannot build the Debian image: {reason}"));
            return;
        }
    };

    // -- 2. the server
    journal.step("install: binaries, root folder with the shipped cfg/, enroll check");
    let base = tempfile::Builder::new().prefix("gpu-booking-e2e-").tempdir().expect("create a temporary folder");
    // The booking account must reach the binary and the root, as under /usr/local and /srv.
    chmod(base.path(), 0o755);
    let bin = base.path().join("bin");
    let root = base.path().join("srv/gpu-booking");
    let user = format!(
        "e2e{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |time| time.as_secs() % 100_000)
    );
    let _containers = images::TestContainers { names: vec![user.clone()], root_label: root.display().to_string() };
    // As `cargo install --path . --root /usr/local` would: the four binaries in bin/.
    fs::create_dir_all(&bin).expect("create bin/");
    for name in ["book", "monitor", "enroll", "run-container"] {
        let built = Path::new(env!("CARGO_BIN_EXE_book")).with_file_name(name);
        fs::copy(&built, bin.join(name)).unwrap_or_else(|error| panic!("install {}: {error}", built.display()));
        chmod(&bin.join(name), 0o755);
    }
    journal.note(&format!("installed book, monitor, enroll, run-container in {}", bin.display()));
    // README step 3: `install -d ROOT/jobs ROOT/volumes`, `cp -r cfg ROOT/`, edit the two
    // admin files. (Step 4, the image, is step 1 here.)
    fs::create_dir_all(root.join("jobs")).expect("create jobs/");
    fs::create_dir_all(root.join("volumes")).expect("create volumes/");
    copy_tree(&repo.join("cfg"), &root.join("cfg"));
    let deploy_path = root.join("cfg/host_deploy.yaml");
    let deploy = read(&deploy_path);
    assert!(
        deploy.contains("  - gpu-booking/ssh:latest"),
        "the shipped host_deploy.yaml no longer lists gpu-booking/ssh:latest"
    );
    write(&deploy_path, &deploy.replacen("  - gpu-booking/ssh:latest", &format!("  - {image}"), 1));
    let capability_path = root.join("cfg/capability_config.yaml");
    let capability = read(&capability_path);
    assert!(
        capability.contains("allow_userIDs: # who may book\n  - demo\n"),
        "the shipped capability_config.yaml changed its allow_userIDs"
    );
    write(
        &capability_path,
        &capability.replacen(
            "allow_userIDs: # who may book\n  - demo\n",
            &format!("allow_userIDs: # who may book\n  - demo\n  - {user}\n"),
            1,
        ),
    );
    // The student chooses their own password at the first login: the admin turns
    // self-registration on for them in cfg/login.yaml (without it, `enroll passwd` first).
    let login_path = root.join("cfg/login.yaml");
    let login = read(&login_path);
    assert!(
        login.contains("\nself_registration: [demo]"),
        "the shipped login.yaml changed its self_registration:\n{login}"
    );
    write(
        &login_path,
        &login.replacen("\nself_registration: [demo]", &format!("\nself_registration: [demo, {user}]"), 1),
    );
    journal.note(&format!(
        "cfg/host_deploy.yaml: images = [{image}]; cfg/capability_config.yaml: allow_userIDs += {user}; \
         cfg/login.yaml: self_registration += {user}"
    ));
    let mut enroll = Command::new(bin.join("enroll"));
    enroll.arg("--root").arg(&root).arg("check");
    journal.run_ok(&format!("enroll --root {} check", root.display()), enroll, None);

    journal.step("the `booking` account (README step 6)");
    let exists = Command::new("id")
        .arg("booking")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if exists {
        journal.note("the account `booking` exists already");
    } else {
        let mut useradd = Command::new("sh");
        useradd.args(["-c", "useradd --create-home --shell /bin/sh booking && passwd -d booking"]);
        journal.run_ok("useradd --create-home --shell /bin/sh booking && passwd -d booking", useradd, None);
    }
    let mut status = Command::new("passwd");
    status.args(["-S", "booking"]);
    let status = journal.run_ok("passwd -S booking", status, None);
    assert_eq!(
        status.stdout.split_whitespace().nth(1),
        Some("NP"),
        "the account `booking` must have an empty password (`passwd -d booking`), so that sshd lets students straight in to book"
    );
    // The README's chowns. NOTE: the README's step 3 creates no volumes/ folder, so its
    // `chown -R booking: /srv/gpu-booking/volumes` fails on a fresh install; created here.
    fs::create_dir_all(root.join("volumes")).expect("create volumes/");
    let r = root.display();
    let chowns = format!("chown booking: {r}/cfg {r}/cfg/users_config.yaml && chown -R booking: {r}/jobs {r}/volumes");
    let mut chown = Command::new("sh");
    chown.args(["-c", &chowns]);
    journal.run_ok(&chowns, chown, None);

    journal.step("sshd on a loopback port with (a copy of) systemd/sshd-booking.conf");
    let sshd_dir = base.path().join("sshd");
    fs::create_dir_all(&sshd_dir).expect("create sshd/");
    let host_key = sshd_dir.join("host_key");
    let mut keygen = Command::new(&tools.ssh_keygen);
    keygen.args(["-q", "-t", "ed25519", "-N", "", "-C", "gpu-booking-e2e", "-f"]).arg(&host_key);
    journal.run_ok(&format!("ssh-keygen -q -t ed25519 -N '' -f {}", host_key.display()), keygen, None);
    // The clock the forced command reads: sshd passes no GPU_BOOKING_* variable, rightly.
    let clock = sshd_dir.join("clock");
    let set_clock = |now: &str| {
        write(&clock, &format!("{now}\n"));
        chmod(&clock, 0o644);
    };
    set_clock(NOW_FIRST);
    let snippet = read(&repo.join("systemd/sshd-booking.conf"));
    let shipped_force = format!("ForceCommand {SHIPPED_BOOK} --root {SHIPPED_ROOT}");
    assert_eq!(
        snippet.matches(&shipped_force).count(),
        1,
        "systemd/sshd-booking.conf no longer holds `{shipped_force}`"
    );
    let test_force = format!(
        "ForceCommand env GPU_BOOKING_NOW=\"$(cat {})\" {} --root {}",
        clock.display(),
        bin.join("book").display(),
        root.display()
    );
    let snippet_copy = sshd_dir.join("booking.conf");
    write(&snippet_copy, &snippet.replacen(&shipped_force, &test_force, 1));
    journal.note(&format!("{}: the shipped snippet with\n  {test_force}", snippet_copy.display()));
    let ssh_port = free_port(2222, 5000, "127.0.0.1");
    let config = sshd_dir.join("sshd_config");
    write(
        &config,
        &format!(
            "# gpu-booking's end-to-end test: its own sshd, loopback only.\n\
             Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {dir}/sshd.pid\n\
             UsePAM yes\nKbdInteractiveAuthentication no\nPermitRootLogin no\nAllowUsers booking\nLogLevel VERBOSE\n\
             Include {snippet}\n",
            key = host_key.display(),
            dir = sshd_dir.display(),
            snippet = snippet_copy.display()
        ),
    );
    journal.note(&read(&config));
    // sshd refuses to start without its privilege-separation folder; on a server the ssh
    // service's `RuntimeDirectory=sshd` makes it, here no systemd runs.
    let mut separation = Command::new("install");
    separation.args(["-d", "-m", "0755", "/run/sshd"]);
    journal.run_ok("install -d -m 0755 /run/sshd", separation, None);
    let mut check = Command::new(&tools.sshd);
    check.arg("-t").arg("-f").arg(&config);
    journal.run_ok(&format!("{} -t -f {}", tools.sshd.display(), config.display()), check, None);
    let sshd_log = sshd_dir.join("sshd.log");
    println!(
        "  $ {} -D -e -f {} 2> {}   (in the background)",
        tools.sshd.display(),
        config.display(),
        sshd_log.display()
    );
    let child = Command::new(&tools.sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&sshd_log).expect("create sshd.log"))
        .spawn()
        .expect("start sshd");
    let mut sshd = Sshd { child, log: sshd_log };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", ssh_port)).is_err() {
        if let Ok(Some(status)) = sshd.child.try_wait() {
            panic!("sshd ended ({status}) before listening:\n{}", read(&sshd.log));
        }
        assert!(Instant::now() < deadline, "sshd is not listening on 127.0.0.1:{ssh_port}:\n{}", read(&sshd.log));
        std::thread::sleep(Duration::from_millis(50));
    }
    journal.note(&format!("sshd listens on 127.0.0.1:{ssh_port}"));

    // -- 3. the journey
    journal.step(&format!("first login and a booking through the dialogue: ssh -tt booking@127.0.0.1 -p {ssh_port}"));
    let forward_port = free_port(10001, 1000, "0.0.0.0");
    let mut command = booking_ssh(&tools, ssh_port);
    command.arg("-tt");
    println!("  $ ssh -tt booking@127.0.0.1 -p {ssh_port}   (on a terminal, clock {NOW_FIRST})");
    let mut screen = Terminal::start(command);
    screen.expect("User id");
    screen.answer(&user);
    screen.expect("choose a password");
    screen.expect("New password");
    screen.answer_hidden_retrying(PASSWORD, "The same password again");
    screen.answer_hidden_retrying(PASSWORD, "Your settings:");
    screen.expect("cpus memory gpus");
    screen.answer("1 2 0");
    screen.expect("Start (");
    screen.answer("now");
    screen.expect("End (");
    screen.answer("2-hour");
    screen.expect("Change options for this booking");
    screen.type_text("y");
    screen.expect("Images offered here");
    screen.expect("Image");
    screen.answer("");
    screen.expect("Extra command");
    screen.answer("");
    screen.expect("Forward port");
    screen.answer(&forward_port.to_string());
    screen.expect("Save these as your defaults too?");
    screen.type_text("y");
    screen.expect("Book 1 CPU, 2 GB, no GPU");
    screen.type_text("y");
    screen.expect("Booking successful!");
    let (code, _) = screen.finish();
    for line in screen.transcript().lines() {
        println!("    ▏{line}");
    }
    println!("    → exit {code}");
    assert_eq!(code, 0, "the dialogue over SSH did not end well (transcript above)");
    let booked = rows_of(&root, "jobs/booking.csv", &user);
    assert_eq!(
        booked.len(),
        1,
        "jobs/booking.csv should hold the new booking of {user}:\n{}",
        read(&root.join("jobs/booking.csv"))
    );
    assert!(booked[0].starts_with("2026-11-23 10:00:00,2026-11-23 12:00:00,"), "the booking's window: {}", booked[0]);
    assert!(
        booked[0].contains(&format!(",{forward_port},")),
        "the booking's forward port is {forward_port}: {}",
        booked[0]
    );
    let users_config = read(&root.join("cfg/users_config.yaml"));
    assert!(
        users_config.contains(&format!("{user}:")),
        "cfg/users_config.yaml has no entry for {user}:\n{users_config}"
    );
    assert!(!users_config.contains(PASSWORD), "cfg/users_config.yaml holds the password in plain text");

    journal.step("the timeline through SSH_ORIGINAL_COMMAND: ssh booking@… list --timeline");
    let mut command = booking_ssh(&tools, ssh_port);
    command.args(["list", "--timeline"]);
    journal.run_ok(&format!("ssh booking@127.0.0.1 -p {ssh_port} list --timeline"), command, None);
    let mut command = booking_ssh(&tools, ssh_port);
    command.arg("list");
    let table = journal.run_ok(&format!("ssh booking@127.0.0.1 -p {ssh_port} list"), command, None);
    assert!(table.stdout.contains(&user), "`list` over SSH does not show {user}'s booking");
    let mut command = booking_ssh(&tools, ssh_port);
    command.args(["list", "--root", "/"]);
    let refused =
        journal.run(&format!("ssh booking@127.0.0.1 -p {ssh_port} list --root /   (must be refused)"), command, None);
    assert_eq!(refused.code, Some(2), "--root over SSH must be refused as a usage error");

    let unit = read(&repo.join("systemd/gpu-booking-monitor.service"));
    let (monitor_words, working_directory) = monitor_from_unit(&unit, &bin.join("monitor"), &root);
    let booking_account = unix_account("booking");
    let monitor = |journal: &Journal, now: &str| {
        let mut command = Command::new(&monitor_words[0]);
        command.args(&monitor_words[1..]).current_dir(&working_directory).env("GPU_BOOKING_NOW", now);
        let outcome = journal.run_ok(
            &format!("GPU_BOOKING_NOW='{now}' {}   (the unit's ExecStart)", monitor_words.join(" ")),
            command,
            None,
        );
        // The monitor runs as root (the unit has no User=), `book` as `booking`: whatever the
        // pass wrote must stay writable for the next `book`.
        booking_can_still_write(journal, &root, booking_account);
        outcome
    };

    journal.step("the monitor starts the booking's container");
    monitor(&journal, NOW_FIRST);
    assert_eq!(container_running(&user), Some(true), "container {user} should be running");
    assert_eq!(rows_of(&root, "jobs/using.csv", &user).len(), 1, "jobs/using.csv should hold {user}'s booking");
    let mut inspect = Command::new("docker");
    inspect.args([
        "inspect",
        "--format",
        "{{.Config.Image}} {{json .HostConfig.PortBindings}} {{.HostConfig.Memory}}",
        &user,
    ]);
    journal.run_ok(&format!("docker inspect {user}"), inspect, None);

    journal
        .step(&format!("into the container: sshpass ssh root@127.0.0.1 -p {forward_port}, with the booking password"));
    let token = format!("journey-{user}");
    wait_for_container_ssh(&journal, &tools, &root, &user, forward_port);
    let remote = format!(
        "echo 'work of {token}' > ~/Work/e2e-work.txt && echo 'export E2E_MARKER={token}' >> ~/.bashrc && ls -la ~ ~/Work"
    );
    journal.run_ok(
        &format!("sshpass ssh root@127.0.0.1 -p {forward_port} \"{remote}\""),
        container_ssh(&tools, forward_port, &remote),
        None,
    );

    journal.step(&format!("the clock past the end ({NOW_SECOND}): the monitor backs up and removes the container"));
    set_clock(NOW_SECOND);
    monitor(&journal, NOW_SECOND);
    assert_eq!(container_running(&user), None, "container {user} should be gone after its booking ended");
    assert_eq!(rows_of(&root, "jobs/used.csv", &user).len(), 1, "jobs/used.csv should hold the ended booking");
    let work_file = root.join("volumes/work").join(&user).join("e2e-work.txt");
    let backed_up = root.join("volumes/backup").join(&user).join(".default/.bashrc");
    journal.note(&format!(
        "{}: {}",
        work_file.display(),
        fs::read_to_string(&work_file).unwrap_or_else(|error| error.to_string()).trim()
    ));
    let backup_text = fs::read_to_string(&backed_up).unwrap_or_else(|error| error.to_string());
    journal.note(&format!("{}: …{}", backed_up.display(), backup_text.lines().last().unwrap_or("")));
    assert_eq!(read(&work_file).trim(), format!("work of {token}"), "the work file on the host");
    assert!(
        backup_text.contains(&format!("export E2E_MARKER={token}")),
        "the backed-up ~/.bashrc lacks the line written in the container"
    );

    journal.step("book again, without a terminal: ssh booking@… new … --password-stdin");
    let mut command = booking_ssh(&tools, ssh_port);
    command.args(["new", "--cpus", "1", "--memory", "2", "--gpus", "0", "--start", "now", "--end", "2-hour"]);
    command.args(["--user", &user, "--password-stdin"]);
    let again = journal.run_ok(
        &format!("echo '<password>' | ssh booking@127.0.0.1 -p {ssh_port} new --cpus 1 --memory 2 --gpus 0 --start now --end 2-hour --user {user} --password-stdin"),
        command,
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(
        again.stdout.contains(&format!("-p {forward_port}")),
        "the saved default port {forward_port} is the booking's"
    );
    let mut command = booking_ssh(&tools, ssh_port);
    command.args(["list", "--timeline", "--user", &user, "--password-stdin"]);
    journal.run_ok(
        &format!(
            "echo '<password>' | ssh booking@127.0.0.1 -p {ssh_port} list --timeline --user {user} --password-stdin"
        ),
        command,
        Some(&format!("{PASSWORD}\n")),
    );

    journal.step("the monitor starts the new container; ~/.bashrc is back in it");
    monitor(&journal, NOW_SECOND);
    assert_eq!(container_running(&user), Some(true), "the second container of {user} should be running");
    wait_for_container_ssh(&journal, &tools, &root, &user, forward_port);
    let seen = journal.run_ok(
        &format!("sshpass ssh root@127.0.0.1 -p {forward_port} 'grep E2E_MARKER ~/.bashrc; cat ~/Work/e2e-work.txt'"),
        container_ssh(&tools, forward_port, "grep E2E_MARKER ~/.bashrc; cat ~/Work/e2e-work.txt"),
        None,
    );
    assert!(
        seen.stdout.contains(&format!("export E2E_MARKER={token}")),
        "the new container's ~/.bashrc is not the backed-up one"
    );
    assert!(seen.stdout.contains(&format!("work of {token}")), "the new container does not see the work folder");

    journal.step(&format!("the clock past the second end ({NOW_LAST}): the monitor removes it"));
    set_clock(NOW_LAST);
    monitor(&journal, NOW_LAST);
    assert_eq!(container_running(&user), None, "container {user} should be gone after its second booking");
    assert_eq!(rows_of(&root, "jobs/used.csv", &user).len(), 2, "jobs/used.csv should hold both bookings");
    journal.note("jobs/monitor.log:");
    journal.note(&fs::read_to_string(root.join("jobs/monitor.log")).unwrap_or_default());
    journal.note("sshd's log:");
    journal.note(&fs::read_to_string(&sshd.log).unwrap_or_default());
    println!("\n{TEST}: the whole journey passed in {:.1} s", journal.started.elapsed().as_secs_f64());
    drop(sshd);
}

/// Waits (up to 40 s) until the container's sshd accepts the booking password.
fn wait_for_container_ssh(journal: &Journal, tools: &Tools, root: &Path, name: &str, forward_port: u16) {
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let output = container_ssh(tools, forward_port, "true").stdin(Stdio::null()).output().expect("run sshpass");
        if output.status.success() {
            journal.note(&format!(
                "the container's sshd accepts the booking password ({tries} tries, {:.1} s)",
                started.elapsed().as_secs_f64()
            ));
            return;
        }
        if started.elapsed() > Duration::from_secs(40) {
            let logs = Command::new("docker").args(["logs", "--tail", "30", name]).output();
            let logs = logs.map_or_else(
                |error| error.to_string(),
                |logs| format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr)),
            );
            let inside = Command::new("docker")
                .args(["exec", name, "sh", "-c"])
                .arg("ls -la /.gpu-booking; grep '^root:' /etc/shadow | cut -c1-12; ls /proc | grep -c '^[0-9]'; cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
                .output();
            let inside = inside.map_or_else(
                |error| error.to_string(),
                |out| format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            );
            let diagnosis = salt_diagnosis(root, name);
            panic!(
                "{diagnosis}no login into container {name} on port {forward_port} within 40 s: exit {:?}: {}\ndocker logs {name}:\n{logs}\ninside:\n{inside}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The uid and gid of a Unix account, from /etc/passwd.
fn unix_account(name: &str) -> (u32, u32) {
    read(Path::new("/etc/passwd"))
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name) && fields.len() > 3)
                .then(|| (fields[2].parse().ok(), fields[3].parse().ok()))
                .and_then(|(uid, gid)| Some((uid?, gid?)))
        })
        .unwrap_or_else(|| panic!("no account {name} in /etc/passwd"))
}

/// Whether `(uid, gid)` may write the file, by its owner, group and mode.
fn writable_by(path: &Path, (uid, gid): (u32, u32)) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = fs::metadata(path) else { return false };
    let mode = meta.mode();
    (meta.uid() == uid && mode & 0o200 != 0) || (meta.gid() == gid && mode & 0o020 != 0) || mode & 0o002 != 0
}

/// Checks that the `booking` account can still write what `book` writes in place — the lock
/// file, `jobs/monitor_exec` and `jobs/used.csv` (appended to) — and the folders `jobs/` and
/// `cfg/` (where `book` replaces files by renaming). The monitor runs as root (the unit has no
/// `User=`); a file it re-creates must not lock `book` out.
fn booking_can_still_write(journal: &Journal, root: &Path, account: (u32, u32)) {
    use std::os::unix::fs::MetadataExt as _;
    let mut entries: Vec<PathBuf> =
        fs::read_dir(root.join("jobs")).expect("read jobs/").flatten().map(|entry| entry.path()).collect();
    entries.sort();
    let mut listing = String::new();
    let mut refused = Vec::new();
    for path in [root.join("cfg"), root.join("cfg/users_config.yaml"), root.join("jobs")].iter().chain(&entries) {
        let meta = fs::metadata(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let shown = path.strip_prefix(root).unwrap_or(path).display().to_string();
        listing.push_str(&format!("{:o} {}:{} {shown}\n", meta.mode() & 0o7777, meta.uid(), meta.gid()));
        let written_in_place =
            ["cfg", "jobs", "jobs/.lock", "jobs/monitor_exec", "jobs/used.csv"].contains(&shown.as_str());
        if written_in_place && !writable_by(path, account) {
            refused.push(shown);
        }
    }
    journal.note(&format!("mode uid:gid of what `book` (uid {}) writes, after the pass:\n{listing}", account.0));
    assert!(
        refused.is_empty(),
        "PRODUCT BUG: after a monitor pass run as root (as the systemd unit runs it), the `booking` account \
         can no longer write {refused:?}: the monitor re-created it owned by root, so the next `book` that \
         appends to it fails (`cannot open jobs/monitor_exec for appending: Permission denied`)"
    );
}

/// When the stored password hash has a salt longer than crypt(3)'s 16 characters, says so:
/// glibc/libxcrypt (the container's `chpasswd -e` and PAM) use only the first 16 and then
/// compare strings, so the booking password can never log in.
fn salt_diagnosis(root: &Path, user: &str) -> String {
    let text = fs::read_to_string(root.join("cfg/users_config.yaml")).unwrap_or_default();
    let mut in_user = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_user = line.trim_end() == format!("{user}:");
        } else if in_user && let Some(hash) = line.trim().strip_prefix("password:") {
            let hash = hash.trim().trim_matches(|c| c == '"' || c == '\'');
            let fields: Vec<&str> = hash.split('$').collect();
            // "", "6", ["rounds=N",] salt, hash
            let salt = if fields.get(2).is_some_and(|field| field.starts_with("rounds=")) {
                fields.get(3)
            } else {
                fields.get(2)
            };
            if let Some(salt) = salt.filter(|salt| salt.len() > 16) {
                return format!(
                    "PRODUCT BUG: the stored password hash of {user} has a {}-character salt; crypt(3) \
                     (glibc/libxcrypt, used by chpasswd -e and PAM in the container) reads at most 16, \
                     so the hash it computes never equals the stored string and the booking password \
                     cannot log in (src/password.rs: hash()).\n",
                    salt.len()
                );
            }
        }
    }
    String::new()
}
