//! The student's whole journey, for real (issue 7), and the ways around it that must not work
//! (issue 17): a real sshd with the shipped `booking` account snippet, the `booking` account
//! made by the README's own script, the real `book` and `monitor` binaries, a real Docker
//! engine and an image built from Debian's packages that meets the image contract.
//!
//! The server, for both tests (`install`):
//! 1. An image: `debootstrap --variant=minbase --include=openssh-server,passwd bookworm`,
//!    imported with `docker import` (reused by later runs: tag + recipe label).
//! 2. Installed the README's way on a temporary folder: the binaries, a root with the shipped
//!    `cfg/`, the `booking` account and the owners and modes of the root made by
//!    `systemd/setup-booking-account ROOT BOOK` — the script the README runs —, `enroll check`
//!    with no warning about who may write what, and an sshd on a loopback port whose only
//!    configuration besides port/key/pid file is an `Include` of `systemd/sshd-booking.conf`
//!    as shipped.
//!
//! The journey: `ssh -tt booking@127.0.0.1` — user id, a new password, a booking `now` for two
//! hours through the dialogue —; `ssh booking@… list --timeline`; `monitor` as the systemd unit
//! runs it; `ssh root@…` into the container with the booking password, a file in `~/Work` and a
//! line in `~/.bashrc`; the clock past the end; `monitor`: the container is gone, both files are
//! on the host; `ssh booking@… new … --password-stdin`; `monitor`; the new container has
//! `~/.bashrc` back; the clock past that end; `monitor` stops it. `book` runs as the account's
//! login shell and takes no clock from its environment, so the bookings are made at the real
//! time; the monitor (root, as systemd runs it) is given the times of the journey in
//! `GPU_BOOKING_NOW`.
//!
//! The attacks: an unprivileged local user tries to become `booking` (`su`, `su -s /bin/sh`,
//! `sudo -u`, `ssh … id`, sftp) and gets nothing but the dialogue or a refusal; the booking
//! account cannot replace an admin file, and `enroll check` reports one it could write; the
//! booking account swaps `jobs/used.csv` and `jobs/monitor.log` for links to a root-owned file
//! and plants links at the temporary names, and the root monitor refuses and writes nothing
//! through them.
//!
//! Each step is printed (command, exit code, output) so CI's log reads as the journey.
//! Needs root, Docker, OpenSSH (server and client), sshpass and debootstrap (and Debian's
//! mirror for the first build); without one it skips with the reason — or fails, when
//! `GPU_BOOKING_REQUIRE_DOCKER=1` (CI). Both tests make the one `booking` account, so they run
//! one at a time.

mod support;

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Timelike};
use support::fixtures::copy_tree;
use support::ports::free_port_in;
use support::schedule::HEADER;
use support::terminal::Terminal;
use support::{debian_image, images};

const TEST: &str = "e2e_journey";

/// The student's booking password.
const PASSWORD: &str = "Kz7-orbit-e2e-3391";

/// What the shipped files say, replaced by the test's paths where a path matters.
const SHIPPED_FORCE: &str = "ForceCommand /usr/local/bin/book";
const SHIPPED_MONITOR: &str = "/usr/local/bin/monitor";
const SHIPPED_ROOT: &str = "/srv/gpu-booking";

/// No single command may hang the test longer than this.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// Both tests make the one `booking` account of this machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What a root-owned file such as `/etc/passwd` holds, for the file the attacks aim at.
const PRECIOUS: &str = "root:x:0:0:root:/root:/bin/bash\n";

// ---- prerequisites -----------------------------------------------------------------------

/// Prints why the test cannot run and returns false — or panics, under
/// `GPU_BOOKING_REQUIRE_DOCKER=1`.
fn unavailable(reason: &str) -> bool {
    images::skip_or_fail(TEST, reason)
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

/// The home folder of this machine's `booking` account, if it has one.
fn booking_home() -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let entry = passwd.lines().find(|line| line.starts_with("booking:"))?;
    entry.split(':').nth(5).map(str::to_string)
}

/// Whether a `booking` account's home is the root of an earlier run of this test (killed
/// before it removed the account), not a deployment's.
fn made_by_this_test(home: &str) -> bool {
    Path::new(home).starts_with(std::env::temp_dir())
        && Path::new(home).components().any(|part| part.as_os_str().to_string_lossy().starts_with("gpu-booking-e2e-"))
}

/// The `booking` account the setup script made for the test, removed (with its group) when
/// dropped, so that the machine is left as it was.
struct RemoveBookingAccount;

impl Drop for RemoveBookingAccount {
    fn drop(&mut self) {
        if booking_home().is_some_and(|home| made_by_this_test(&home)) {
            let _ = Command::new("userdel").arg("booking").stderr(Stdio::null()).status();
            let _ = Command::new("groupdel").arg("booking").stderr(Stdio::null()).status();
        }
    }
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
    if let Some(home) = booking_home().filter(|home| !made_by_this_test(home)) {
        unavailable(&format!(
            "this machine has an account `booking` (home {home}), as a deployed gpu-booking has: the test would \
             point it at a temporary root; run the tests on a machine without one"
        ));
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

/// In the shipped file at `path`, replaces `from`, which it must hold, with `to`.
fn edit_shipped(path: &Path, from: &str, to: &str) {
    let text = read(path);
    assert!(text.contains(from), "the shipped {} no longer holds {from:?}:\n{text}", path.display());
    write(path, &text.replacen(from, to, 1));
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

// ---- the server ----------------------------------------------------------------------------

/// A server installed the README's way on a temporary folder, with its sshd running.
struct Server {
    // Dropped first: the folders the setup script mounted nosuid,nodev go before the files.
    _volume_mounts: UnmountOnDrop,
    _account: RemoveBookingAccount,
    base: tempfile::TempDir,
    bin: PathBuf,
    root: PathBuf,
    /// The student, allowed in `capability_config.yaml`.
    user: String,
    ssh_port: u16,
    sshd: Sshd,
    /// The monitor's command line, from the systemd unit.
    monitor_words: Vec<String>,
    /// The `booking` account's uid and gid.
    booking: (u32, u32),
    _containers: images::TestContainers,
}

/// The slot (:00 or :30) that holds `time`.
fn slot_of(time: NaiveDateTime) -> NaiveDateTime {
    let minute = if time.minute() < 30 { 0 } else { 30 };
    time.with_minute(minute)
        .and_then(|time| time.with_second(0))
        .and_then(|time| time.with_nanosecond(0))
        .unwrap_or(time)
}

fn clock_text(time: NaiveDateTime) -> String {
    time.format("%Y-%m-%d %H:%M").to_string()
}

fn real_slot() -> NaiveDateTime {
    slot_of(chrono::Local::now().naive_local())
}

/// Installs the server; None (after a skip line) when the image cannot be built.
fn install(tools: &Tools, journal: &mut Journal, prefix: &str) -> Option<Server> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    journal.step("an image that meets the image contract, from Debian's packages");
    let image = match debian_image::debian_ssh_image(&tools.debootstrap, &mut |line| println!("  {line}")) {
        Ok(image) => image,
        Err(reason) => {
            unavailable(&format!("cannot build the Debian image: {reason}"));
            return None;
        }
    };

    journal.step("install: binaries, root folder with the shipped cfg/");
    let base = tempfile::Builder::new().prefix("gpu-booking-e2e-").tempdir().expect("create a temporary folder");
    // The booking account must reach the binary and the root, as under /usr/local and /srv.
    chmod(base.path(), 0o755);
    let bin = base.path().join("bin");
    let root = base.path().join("srv/gpu-booking");
    let user = format!(
        "{prefix}{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |time| time.as_secs() % 100_000)
    );
    let containers = images::TestContainers { names: vec![user.clone()], root_label: root.display().to_string() };
    // As `cargo install --path . --root /usr/local` would: the four binaries in bin/.
    fs::create_dir_all(&bin).expect("create bin/");
    for name in ["book", "monitor", "enroll", "run-container"] {
        let built = Path::new(env!("CARGO_BIN_EXE_book")).with_file_name(name);
        fs::copy(&built, bin.join(name)).unwrap_or_else(|error| panic!("install {}: {error}", built.display()));
        chmod(&bin.join(name), 0o755);
    }
    journal.note(&format!("installed book, monitor, enroll, run-container in {}", bin.display()));
    // README: `install -d ROOT`, the shipped cfg/ into it, edit the two admin files.
    fs::create_dir_all(&root).expect("create the root");
    copy_tree(&repo.join("cfg"), &root.join("cfg"));
    edit_shipped(&root.join("cfg/host_deploy.yaml"), "  - gpu-booking/ssh:latest", &format!("  - {image}"));
    let allowed = "allow_userIDs: # who may book\n  - demo\n";
    edit_shipped(&root.join("cfg/capability_config.yaml"), allowed, &format!("{allowed}  - {user}\n"));
    // The student chooses their own password at the first login: the admin turns
    // self-registration on for them in cfg/login.yaml (without it, `enroll passwd` first).
    let registering = "\nself_registration: [demo]";
    edit_shipped(&root.join("cfg/login.yaml"), registering, &format!("\nself_registration: [demo, {user}]"));
    journal.note(&format!(
        "cfg/host_deploy.yaml: images = [{image}]; cfg/capability_config.yaml: allow_userIDs += {user}; \
         cfg/login.yaml: self_registration += {user}"
    ));

    journal
        .step("the `booking` account and the owners of the root: systemd/setup-booking-account, as the README runs it");
    // Removed again however the test ends, from here on.
    let account = RemoveBookingAccount;
    let script = repo.join("systemd/setup-booking-account");
    let mut setup = Command::new(&script);
    setup.arg(&root).arg(bin.join("book"));
    journal.run_ok(
        &format!("systemd/setup-booking-account {} {}", root.display(), bin.join("book").display()),
        setup,
        None,
    );
    let mut status = Command::new("passwd");
    status.args(["-S", "booking"]);
    let status = journal.run_ok("passwd -S booking", status, None);
    assert_eq!(
        status.stdout.split_whitespace().nth(1),
        Some("NP"),
        "the account `booking` must have an empty password, so that sshd lets students straight in to book"
    );
    let entry = read(Path::new("/etc/passwd"))
        .lines()
        .find(|line| line.starts_with("booking:"))
        .map(str::to_string)
        .expect("an account `booking` in /etc/passwd");
    journal.note(&format!("/etc/passwd: {entry}"));
    let fields: Vec<&str> = entry.split(':').collect();
    assert_eq!(fields.get(5).copied(), root.to_str(), "the booking account's home folder must be the root");
    assert_eq!(fields.get(6).copied(), bin.join("book").to_str(), "the booking account's login shell must be book");
    let mut enroll = Command::new(bin.join("enroll"));
    enroll.arg("--root").arg(&root).arg("check");
    let checked = journal.run_ok(&format!("enroll --root {} check", root.display()), enroll, None);
    for line in checked.stdout.lines() {
        assert!(
            !line.contains("can write it") && !line.starts_with("/etc/passwd") && !line.contains("can read it"),
            "the README's deployment must leave nothing for enroll check to warn about who may write what: {line}"
        );
    }

    journal.step("sshd on a loopback port with systemd/sshd-booking.conf as shipped");
    let sshd_dir = base.path().join("sshd");
    fs::create_dir_all(&sshd_dir).expect("create sshd/");
    let host_key = sshd_dir.join("host_key");
    let mut keygen = Command::new(&tools.ssh_keygen);
    keygen.args(["-q", "-t", "ed25519", "-N", "", "-C", "gpu-booking-e2e", "-f"]).arg(&host_key);
    journal.run_ok(&format!("ssh-keygen -q -t ed25519 -N '' -f {}", host_key.display()), keygen, None);
    let snippet = repo.join("systemd/sshd-booking.conf");
    assert_eq!(
        read(&snippet).lines().filter(|line| line.trim() == SHIPPED_FORCE).count(),
        1,
        "systemd/sshd-booking.conf no longer holds `{SHIPPED_FORCE}`"
    );
    let ssh_port = free_port_in(2222, 5000, "127.0.0.1");
    let config = sshd_dir.join("sshd_config");
    write(
        &config,
        &format!(
            "# gpu-booking's end-to-end test: its own sshd, loopback only.\n\
             Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {dir}/sshd.pid\n\
             UsePAM yes\nKbdInteractiveAuthentication no\nPermitRootLogin no\nAllowUsers booking\nLogLevel VERBOSE\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\nInclude {snippet}\n",
            key = host_key.display(),
            dir = sshd_dir.display(),
            snippet = snippet.display()
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

    let unit = read(&repo.join("systemd/gpu-booking-monitor.service"));
    let (monitor_words, _) = monitor_from_unit(&unit, &bin.join("monitor"), &root);
    let booking = unix_account("booking");
    let _volume_mounts = UnmountOnDrop(vec![root.join("volumes/work"), root.join("volumes/backup")]);
    Some(Server {
        _volume_mounts,
        _account: account,
        base,
        bin,
        root,
        user,
        ssh_port,
        sshd,
        monitor_words,
        booking,
        _containers: containers,
    })
}

/// The mounts `systemd/setup-booking-account` made (a server keeps them in /etc/fstab).
struct UnmountOnDrop(Vec<PathBuf>);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = Command::new("umount").arg("-l").arg(path).stderr(Stdio::null()).status();
        }
    }
}

impl Server {
    /// One monitor pass as the systemd unit runs it (as root), at `now`.
    fn monitor(&self, journal: &Journal, now: NaiveDateTime) -> Outcome {
        let now = clock_text(now);
        let mut command = Command::new(&self.monitor_words[0]);
        command.args(&self.monitor_words[1..]).current_dir(&self.root).env("GPU_BOOKING_NOW", &now);
        journal.run(
            &format!("GPU_BOOKING_NOW='{now}' {}   (the unit's ExecStart)", self.monitor_words.join(" ")),
            command,
            None,
        )
    }

    /// `sh -c SCRIPT` in the root as the booking account — what that account could do, were
    /// anyone ever to get a shell as it.
    fn as_booking(&self, script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(script).current_dir(&self.root).uid(self.booking.0).gid(self.booking.1);
        command
    }
}

// ---- the journey ---------------------------------------------------------------------------

#[test]
fn a_student_books_over_ssh_uses_the_container_and_gets_the_files_back() {
    let Some(tools) = tools() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut journal = Journal { step: 0, started: Instant::now() };
    println!("{TEST}: the student's journey, end to end (issue 7)");
    let Some(server) = install(&tools, &mut journal, "e2e") else { return };
    let (root, user, ssh_port) = (&server.root, &server.user, server.ssh_port);

    journal.step(&format!("first login and a booking through the dialogue: ssh -tt booking@127.0.0.1 -p {ssh_port}"));
    let forward_port = free_port_in(10001, 1000, "0.0.0.0");
    let mut command = booking_ssh(&tools, ssh_port);
    command.arg("-tt");
    println!("  $ ssh -tt booking@127.0.0.1 -p {ssh_port}   (on a terminal)");
    let slot_before = real_slot();
    let mut screen = Terminal::start(command);
    screen.expect("User id");
    screen.answer(user);
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
    let slot_after = real_slot();
    for line in screen.transcript().lines() {
        println!("    ▏{line}");
    }
    println!("    → exit {code}");
    assert_eq!(code, 0, "the dialogue over SSH did not end well (transcript above)");
    let booked = rows_of(root, "jobs/booking.csv", user);
    assert_eq!(
        booked.len(),
        1,
        "jobs/booking.csv should hold the new booking of {user}:\n{}",
        read(&root.join("jobs/booking.csv"))
    );
    // `now` is the real slot: book, as the account's login shell, has no other clock.
    let start = booked[0]
        .split(',')
        .next()
        .and_then(|text| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok())
        .unwrap_or_else(|| panic!("the booking's start: {}", booked[0]));
    assert!(start == slot_before || start == slot_after, "the booking starts {start}, not in the slot it was made");
    let end = start + chrono::Duration::hours(2);
    assert!(
        booked[0].starts_with(&format!("{},{},", start.format("%Y-%m-%d %H:%M:%S"), end.format("%Y-%m-%d %H:%M:%S"))),
        "the booking's window: {}",
        booked[0]
    );
    assert!(
        booked[0].contains(&format!(",{forward_port},")),
        "the booking's forward port is {forward_port}: {}",
        booked[0]
    );
    let users_config = read(&root.join("cfg/users/users_config.yaml"));
    assert!(
        users_config.contains(&format!("{user}:")),
        "cfg/users/users_config.yaml has no entry for {user}:\n{users_config}"
    );
    assert!(!users_config.contains(PASSWORD), "cfg/users/users_config.yaml holds the password in plain text");

    journal.step("the timeline through SSH_ORIGINAL_COMMAND: ssh booking@… list --timeline");
    let mut command = booking_ssh(&tools, ssh_port);
    command.args(["list", "--timeline"]);
    journal.run_ok(&format!("ssh booking@127.0.0.1 -p {ssh_port} list --timeline"), command, None);
    let mut command = booking_ssh(&tools, ssh_port);
    command.arg("list");
    let table = journal.run_ok(&format!("ssh booking@127.0.0.1 -p {ssh_port} list"), command, None);
    assert!(table.stdout.contains(user.as_str()), "`list` over SSH does not show {user}'s booking");
    let mut command = booking_ssh(&tools, ssh_port);
    command.args(["list", "--root", "/"]);
    let refused =
        journal.run(&format!("ssh booking@127.0.0.1 -p {ssh_port} list --root /   (must be refused)"), command, None);
    assert_eq!(refused.code, Some(2), "--root over SSH must be refused as a usage error");

    let monitor = |journal: &Journal, now: NaiveDateTime| {
        let outcome = server.monitor(journal, now);
        assert!(outcome.ok(), "the monitor pass at {now} failed; its output is in the log above");
        // The monitor runs as root (the unit has no User=), `book` as `booking`: whatever the
        // pass wrote must stay writable for the next `book`.
        booking_can_still_write(journal, root, server.booking);
        outcome
    };

    journal.step(&format!("the monitor starts the booking's container (clock {start})"));
    monitor(&journal, start);
    assert_eq!(container_running(user), Some(true), "container {user} should be running");
    assert_eq!(rows_of(root, "jobs/using.csv", user).len(), 1, "jobs/using.csv should hold {user}'s booking");
    let mut inspect = Command::new("docker");
    inspect.args([
        "inspect",
        "--format",
        "{{.Config.Image}} {{json .HostConfig.PortBindings}} {{.HostConfig.Memory}}",
        user,
    ]);
    journal.run_ok(&format!("docker inspect {user}"), inspect, None);

    journal
        .step(&format!("into the container: sshpass ssh root@127.0.0.1 -p {forward_port}, with the booking password"));
    let token = format!("journey-{user}");
    wait_for_container_ssh(&journal, &tools, root, user, forward_port);
    let remote = format!(
        "echo 'work of {token}' > ~/Work/e2e-work.txt && echo 'export E2E_MARKER={token}' >> ~/.bashrc && ls -la ~ ~/Work"
    );
    journal.run_ok(
        &format!("sshpass ssh root@127.0.0.1 -p {forward_port} \"{remote}\""),
        container_ssh(&tools, forward_port, &remote),
        None,
    );

    journal.step(&format!("the clock past the end ({end}): the monitor backs up and removes the container"));
    monitor(&journal, end);
    assert_eq!(container_running(user), None, "container {user} should be gone after its booking ended");
    assert_eq!(rows_of(root, "jobs/used.csv", user).len(), 1, "jobs/used.csv should hold the ended booking");
    let work_file = root.join("volumes/work").join(user).join("e2e-work.txt");
    let backed_up = root.join("volumes/backup").join(user).join(".default/.bashrc");
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

    // The second booking starts where the first ended: still ahead of the real clock.
    let second_end = end + chrono::Duration::hours(2);
    let second_start = end.format("'%Y %m %d %H %M'").to_string();
    journal.step("book again, without a terminal: ssh booking@… new … --password-stdin");
    let mut command = booking_ssh(&tools, ssh_port);
    command.args(["new", "--cpus", "1", "--memory", "2", "--gpus", "0", "--start", &second_start, "--end", "2-hour"]);
    command.args(["--user", user, "--password-stdin"]);
    let again = journal.run_ok(
        &format!("echo '<password>' | ssh booking@127.0.0.1 -p {ssh_port} new --cpus 1 --memory 2 --gpus 0 --start {second_start} --end 2-hour --user {user} --password-stdin"),
        command,
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(
        again.stdout.contains(&format!("-p {forward_port}")),
        "the saved default port {forward_port} is the booking's"
    );
    let mut command = booking_ssh(&tools, ssh_port);
    command.args(["list", "--timeline", "--user", user, "--password-stdin"]);
    journal.run_ok(
        &format!(
            "echo '<password>' | ssh booking@127.0.0.1 -p {ssh_port} list --timeline --user {user} --password-stdin"
        ),
        command,
        Some(&format!("{PASSWORD}\n")),
    );

    journal.step(&format!("the monitor starts the new container ({end}); ~/.bashrc is back in it"));
    monitor(&journal, end);
    assert_eq!(container_running(user), Some(true), "the second container of {user} should be running");
    wait_for_container_ssh(&journal, &tools, root, user, forward_port);
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

    let last = second_end + chrono::Duration::minutes(30);
    journal.step(&format!("the clock past the second end ({last}): the monitor removes it"));
    monitor(&journal, last);
    assert_eq!(container_running(user), None, "container {user} should be gone after its second booking");
    assert_eq!(rows_of(root, "jobs/used.csv", user).len(), 2, "jobs/used.csv should hold both bookings");
    journal.note("jobs/monitor.log:");
    journal.note(&fs::read_to_string(root.join("jobs/monitor.log")).unwrap_or_default());
    journal.note("sshd's log:");
    journal.note(&fs::read_to_string(&server.sshd.log).unwrap_or_default());
    println!("\n{TEST}: the whole journey passed in {:.1} s", journal.started.elapsed().as_secs_f64());
}

// ---- the attacks ---------------------------------------------------------------------------

/// An unprivileged local account, removed (with its home) when dropped.
struct LocalUser {
    name: String,
    id: (u32, u32),
    home: PathBuf,
}

impl LocalUser {
    fn create(journal: &Journal, name: &str) -> LocalUser {
        let _ = Command::new("userdel").args(["--remove", name]).stderr(Stdio::null()).status();
        let mut useradd = Command::new("useradd");
        useradd.args(["--create-home", "--shell", "/bin/sh", name]);
        journal.run_ok(&format!("useradd --create-home --shell /bin/sh {name}"), useradd, None);
        let home = PathBuf::from(format!("/home/{name}"));
        LocalUser { name: name.to_string(), id: unix_account(name), home }
    }

    /// `program` run as this user, with an environment that tries to move book's root and
    /// clock (su hands the caller's environment on).
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .uid(self.id.0)
            .gid(self.id.1)
            .current_dir(&self.home)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("GPU_BOOKING_ROOT", "/nonexistent-root-of-the-intruder")
            .env("GPU_BOOKING_NOW", "2020-01-01 00:00");
        command
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").args(["--remove", &self.name]).stderr(Stdio::null()).status();
    }
}

/// Nothing but the dialogue or a refusal: no output of `id`, and no success.
fn assert_no_way_in(outcome: &Outcome, what: &str) {
    let output = format!("{}{}", outcome.stdout, outcome.stderr);
    assert!(!output.contains("uid="), "{what}: `id` ran as the booking account:\n{output}");
    assert!(!outcome.ok(), "{what} must be refused");
}

#[test]
fn no_local_user_becomes_booking_and_booking_cannot_make_root_write_through_links() {
    let Some(tools) = tools() else { return };
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut journal = Journal { step: 0, started: Instant::now() };
    println!("{TEST}: the ways around the booking account (issue 17)");
    let Some(server) = install(&tools, &mut journal, "e2a") else { return };
    let root = &server.root;
    let port = server.ssh_port.to_string();

    journal.step("the booking account swaps jobs/ files for links to a root-owned file; the root monitor refuses");
    let target = server.base.path().join("etc-passwd");
    write(&target, PRECIOUS);
    chmod(&target, 0o644);
    let now = real_slot();
    let missed_start = now - chrono::Duration::days(1);
    let row = format!(
        "{},{},{},1,1,[],10999,,\"touch /tmp/pwned\nmallory::0:0::/:/bin/sh\"",
        missed_start.format("%Y-%m-%d %H:%M:%S"),
        (missed_start + chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M:%S"),
        server.user
    );
    let (t, header) = (target.display(), HEADER.trim_end());
    let plant = format!(
        "printf '%s\\n%s\\n' '{header}' '{row}' > jobs/booking.csv && \
         ln -sfn {t} jobs/used.csv && ln -sfn {t} jobs/monitor.log && \
         ln -sfn {t} jobs/.booking.csv.tmp && ln -sfn {t} jobs/.using.csv.tmp && ln -sfn {t} jobs/.monitor_exec.tmp"
    );
    journal.run_ok(
        "(booking) a missed booking, and links to a root-owned file in jobs/",
        server.as_booking(&plant),
        None,
    );
    let refused = server.monitor(&journal, now);
    assert!(!refused.ok(), "the monitor must fail when it cannot record or log");
    for name in ["used.csv", "monitor.log"] {
        assert!(
            refused.stderr.contains(name) && refused.stderr.contains("symbolic link"),
            "the monitor's error must name jobs/{name} as a link:\n{}",
            refused.stderr
        );
    }
    assert_eq!(read(&target), PRECIOUS, "the root monitor wrote through a link in jobs/");
    assert!(read(&root.join("jobs/booking.csv")).contains(server.user.as_str()), "the row must stay where it was");

    journal.step("the links to used.csv and monitor.log removed: the pass records the missed booking");
    journal.run_ok(
        "(booking) rm jobs/used.csv jobs/monitor.log",
        server.as_booking("rm jobs/used.csv jobs/monitor.log"),
        None,
    );
    let recorded = server.monitor(&journal, now);
    assert!(recorded.ok(), "the monitor pass should succeed once the links are gone");
    assert_eq!(read(&target), PRECIOUS, "the root monitor wrote through a planted temporary name");
    assert!(
        !read(&root.join("jobs/booking.csv")).contains(server.user.as_str()),
        "the missed booking stays in booking.csv"
    );
    assert_eq!(rows_of(root, "jobs/used.csv", &server.user).len(), 1, "used.csv should hold the missed booking");
    for planted in [".booking.csv.tmp", ".using.csv.tmp"] {
        assert!(fs::symlink_metadata(root.join("jobs").join(planted)).is_err(), "jobs/{planted} was left in place");
    }
    booking_can_still_write(&journal, root, server.booking);

    journal.step("the booking account cannot replace the admin's files");
    let capability = read(&root.join("cfg/capability_config.yaml"));
    let deploy = read(&root.join("cfg/host_deploy.yaml"));
    for script in [
        "echo 'allow_userIDs: [mallory]' >> cfg/capability_config.yaml",
        "echo 'allow_userIDs: [mallory]' > jobs/mine.yaml && mv -f jobs/mine.yaml cfg/capability_config.yaml",
        "cp cfg/users/users_config.yaml cfg/users/mine.yaml && mv -f cfg/users/mine.yaml cfg/host_deploy.yaml",
        "mv cfg/host_deploy.yaml cfg/host_deploy.old",
        "ln -s / cfg/templates/evil",
        "mkdir volumes/work/mallory",
        "ln -s /etc volumes/backup/mallory",
    ] {
        let outcome = journal.run(&format!("(booking) {script}"), server.as_booking(script), None);
        assert!(!outcome.ok(), "the booking account could: {script}");
    }
    let _ = server.as_booking("rm -f jobs/mine.yaml cfg/users/mine.yaml").status();
    assert_eq!(read(&root.join("cfg/capability_config.yaml")), capability, "capability_config.yaml changed");
    assert_eq!(read(&root.join("cfg/host_deploy.yaml")), deploy, "host_deploy.yaml changed");
    let check = |journal: &Journal| {
        let mut enroll = Command::new(server.bin.join("enroll"));
        enroll.arg("--root").arg(root).arg("check");
        journal.run(&format!("enroll --root {} check", root.display()), enroll, None)
    };
    let capability_path = root.join("cfg/capability_config.yaml");
    std::os::unix::fs::chown(&capability_path, Some(server.booking.0), None).expect("chown");
    journal.note("chown booking cfg/capability_config.yaml");
    let warned = check(&journal);
    assert!(
        warned.stdout.contains("cfg/capability_config.yaml: warning: the booking account `booking` can write it"),
        "enroll check must warn about capability_config.yaml owned by the booking account"
    );
    std::os::unix::fs::chown(&capability_path, Some(0), None).expect("chown");
    chmod(&root.join("cfg"), 0o777);
    journal.note("chmod 777 cfg");
    let warned = check(&journal);
    assert!(
        warned.stdout.contains("cfg: warning: the booking account `booking` can write it")
            && warned.stdout.contains("cfg: warning: every local user can write it"),
        "enroll check must warn about a cfg/ others can write"
    );
    chmod(&root.join("cfg"), 0o755);

    journal.step("an unprivileged local user tries to become `booking`");
    let intruder = LocalUser::create(&journal, &format!("gbintruder{}", std::process::id() % 100_000));
    let attempts: Vec<(String, Command, Option<&str>)> = {
        let mut attempts = Vec::new();
        let mut su = |args: &[&str], stdin: Option<&'static str>| {
            let mut command = intruder.command("su");
            command.args(args);
            attempts.push((format!("su {}", args.join(" ")), command, stdin));
        };
        su(&["booking", "-c", "id"], None);
        su(&["-s", "/bin/sh", "booking", "-c", "id"], None);
        su(&["-s", "/bin/sh", "booking"], Some("id\n"));
        su(&["booking"], Some("id\n"));
        su(&["-", "booking", "-c", "id"], None);
        su(&["-m", "booking", "-c", "id"], None);
        su(&["booking", "-c", "list --root /"], None);
        su(&["booking", "--", "--root", "/", "list"], None);
        if find_program("sudo").is_some() {
            let mut command = intruder.command("sudo");
            command.args(["-n", "-u", "booking", "id"]);
            attempts.push(("sudo -n -u booking id".to_string(), command, None));
            let mut command = intruder.command("sudo");
            command.args(["-n", "-u", "booking", "-s"]);
            attempts.push(("sudo -n -u booking -s".to_string(), command, Some("id\n")));
        }
        let ssh_options = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"];
        let ssh_options = [&ssh_options[..], &["-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-p", &port]].concat();
        let mut command = intruder.command(tools.ssh.to_str().expect("a UTF-8 path"));
        command.args(&ssh_options).args(["booking@127.0.0.1", "id"]);
        attempts.push((format!("ssh booking@127.0.0.1 -p {port} id"), command, None));
        let mut command = intruder.command(tools.ssh.to_str().expect("a UTF-8 path"));
        command.args(&ssh_options).args(["booking@127.0.0.1", "/bin/sh -c id"]);
        attempts.push((format!("ssh booking@127.0.0.1 -p {port} '/bin/sh -c id'"), command, None));
        let mut command = intruder.command(tools.ssh.to_str().expect("a UTF-8 path"));
        command.args(&ssh_options).args(["-s", "booking@127.0.0.1", "sftp"]);
        attempts.push((format!("ssh -s booking@127.0.0.1 -p {port} sftp"), command, None));
        if let Some(sftp) = find_program("sftp") {
            let mut command = intruder.command(sftp.to_str().expect("a UTF-8 path"));
            command.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]);
            command.args(["-o", "BatchMode=yes", "-P", &port, "-b", "-", "booking@127.0.0.1"]);
            attempts.push((format!("sftp -P {port} -b - booking@127.0.0.1 <<< 'ls /'"), command, Some("ls /\n")));
        }
        attempts
    };
    for (shown, command, stdin) in attempts {
        let outcome = journal.run(&format!("({}) {shown}", intruder.name), command, stdin);
        assert_no_way_in(&outcome, &shown);
    }
    // What `su booking` does give: book, on the real root whatever the caller's environment says.
    let mut listed = intruder.command("su");
    listed.args(["booking", "-c", "list"]);
    let listed = journal.run(&format!("({}) su booking -c list", intruder.name), listed, None);
    assert!(listed.ok(), "`su booking -c list` should run book's list on the account's root");
    let mut dialogue = Command::new("su");
    dialogue.args([intruder.name.as_str(), "-c", "su booking"]);
    println!("  $ ({}) su booking   (on a terminal)", intruder.name);
    let mut screen = Terminal::start(dialogue);
    screen.expect("User id");
    screen.answer("nobody-here");
    screen.expect("may not book");
    let (code, _) = screen.finish();
    for line in screen.transcript().lines() {
        println!("    ▏{line}");
    }
    assert_eq!(code, 4, "`su booking` gives the booking dialogue, which refuses a stranger (exit 4)");

    println!("\n{TEST}: every attack failed, in {:.1} s", journal.started.elapsed().as_secs_f64());
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
/// `cfg/users/` (where `book` replaces files by renaming). The monitor runs as root (the unit
/// has no `User=`); a file it re-creates must not lock `book` out.
fn booking_can_still_write(journal: &Journal, root: &Path, account: (u32, u32)) {
    use std::os::unix::fs::MetadataExt as _;
    let mut entries: Vec<PathBuf> =
        fs::read_dir(root.join("jobs")).expect("read jobs/").flatten().map(|entry| entry.path()).collect();
    entries.sort();
    let mut listing = String::new();
    let mut refused = Vec::new();
    for path in
        [root.join("cfg/users"), root.join("cfg/users/users_config.yaml"), root.join("jobs")].iter().chain(&entries)
    {
        let meta = fs::metadata(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let shown = path.strip_prefix(root).unwrap_or(path).display().to_string();
        listing.push_str(&format!("{:o} {}:{} {shown}\n", meta.mode() & 0o7777, meta.uid(), meta.gid()));
        let written_in_place =
            ["cfg/users", "jobs", "jobs/.lock", "jobs/monitor_exec", "jobs/used.csv"].contains(&shown.as_str());
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
    let text = fs::read_to_string(root.join("cfg/users/users_config.yaml")).unwrap_or_default();
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
