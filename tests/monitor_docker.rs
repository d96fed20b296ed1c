//! The monitor against the real Docker engine: the real `book` and `monitor` binaries on a
//! temporary root, a busybox image built locally (no registry here), and what an admin would
//! check afterwards — `docker inspect`, `docker logs`, the schedule files, the log and the
//! user's folders on the host.
//!
//! Every test that needs the engine skips (with a line saying so) when `docker info` fails,
//! unless `GPU_BOOKING_REQUIRE_DOCKER=1`, when it fails instead. Tests run in parallel on one
//! engine: container names are user ids, so each test has its own (test name and process id),
//! its own forward ports (free on the host), and removes its containers when it ends, also on
//! failure.
//!
//! The host here has no NVIDIA runtime: bookings without GPUs run, a GPU booking must fail
//! cleanly.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::docker::*;
use support::images;
use support::lab::*;
use support::run::*;
use support::schedule::*;
use support::snapshot::*;

// ---- the tests ---------------------------------------------------------------------------

/// A booking's whole life: booked, started with the right container, files written in it,
/// ended (backed up, removed, recorded), booked again with the saved files mounted back.
#[test]
fn a_booking_runs_with_its_limits_and_its_files_survive_to_the_next_booking() {
    let Some(lab) = Lab::on_engine("life", &["a"]) else { return };
    let image = images::BUSYBOX_IMAGE;
    let user = lab.user(0).to_string();
    let user = user.as_str();
    let port = lab.port(user);
    lab.book_new(user, NOW, ("1.5", "4", "0"), "now", "2-hour");
    let start = full("2026-11-23 10:00");
    let end = full("2026-11-23 12:00");

    lab.monitor(NOW).expect(0, "the pass that starts the booking");

    let container = inspect_existing(user, "after the start");
    assert!(is_running(&container), "the container runs: {}", container["State"]);
    assert_eq!(container["Config"]["Image"], image, "the host's default image");
    let host = &container["HostConfig"];
    assert_eq!(host["NanoCpus"], 1_500_000_000i64, "--cpus 1.5");
    let (ram, total, shm) = expected_memory(4);
    assert_eq!(host["Memory"], ram, "memory limit: ceil(4 × {HOST_RAM_GB}/{}) GB", HOST_RAM_GB + HOST_SWAP_GB);
    assert_eq!(host["MemorySwap"], total, "memory + swap limit: 4 GB");
    assert_eq!(host["ShmSize"], shm, "shared memory: the swap part");
    assert_eq!(
        host["PortBindings"]["22/tcp"][0]["HostPort"],
        port.to_string(),
        "forward port {port} → 22/tcp: {}",
        host["PortBindings"]
    );
    let mounted = binds(&container);
    let work = lab.work_dir(user).display().to_string();
    let backup = lab.backup_dir(user).display().to_string();
    let dataset = lab.dataset_dir().display().to_string();
    let work_bind = bind_to(&mounted, "/root/Work").unwrap_or_else(|| panic!("a work bind: {mounted:?}"));
    assert_eq!(work_bind.0, work);
    assert!(!work_bind.2.contains("ro"), "work is read-write: {work_bind:?}");
    let backup_bind = bind_to(&mounted, "/root/Backup").unwrap_or_else(|| panic!("a backup bind: {mounted:?}"));
    assert_eq!(backup_bind.0, backup);
    assert!(!backup_bind.2.contains("ro"), "backup is read-write: {backup_bind:?}");
    let dataset_bind = bind_to(&mounted, "/root/Dataset").unwrap_or_else(|| panic!("a dataset bind: {mounted:?}"));
    assert_eq!(dataset_bind.0, dataset);
    assert!(dataset_bind.2.split(',').any(|option| option == "ro"), "the dataset is read-only: {dataset_bind:?}");
    let labels = labels(&container);
    assert_eq!(labels.get("gpu-booking.managed").map(String::as_str), Some("true"), "{labels:?}");
    assert_eq!(labels.get("gpu-booking.user").map(String::as_str), Some(user), "{labels:?}");
    assert_eq!(labels.get("gpu-booking.start"), Some(&start), "{labels:?}");
    assert_eq!(labels.get("gpu-booking.end"), Some(&end), "{labels:?}");
    assert_eq!(labels.get("gpu-booking.root"), Some(&lab.root_label()), "{labels:?}");
    let environment: Vec<&str> =
        container["Config"]["Env"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert!(
        !environment.iter().any(|entry| entry.contains(PASSWORD)),
        "the password is in the environment: {environment:?}"
    );
    assert_eq!(host["Privileged"], false, "not privileged");
    assert_ne!(host["PidMode"], "host", "no --pid=host");
    assert_eq!(host["RestartPolicy"]["Name"], "unless-stopped", "kept up across reboots");
    assert!(lab.holds(USING, user, &start), "using.csv holds the running booking:\n{}", lab.read(USING));
    assert!(!lab.holds(BOOKING, user, &start), "booking.csv no longer holds it:\n{}", lab.read(BOOKING));
    lab.assert_logged("[WARNING] ImageWarning", &[user, "sshd", "chpasswd"], "busybox has neither sshd nor chpasswd");
    lab.assert_logged("[INFO]", &[user], "the start is logged");

    // The student works in the container.
    let bashrc = "alias ll='ls -l'\nexport LIFE_TEST=1\n";
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl life@test\n";
    exec(user, "mkdir -p /root/.ssh && printf 'result 42\\n' > /root/Work/result.txt");
    // The contents go in as the script's arguments, so no quoting can go wrong.
    docker_ok(&["exec", user, "sh", "-c", "printf '%s' \"$1\" > /root/.bashrc", "sh", bashrc]);
    docker_ok(&["exec", user, "sh", "-c", "printf '%s' \"$1\" > /root/.ssh/known_keys", "sh", key]);

    // The booking ends.
    let later = "2026-11-23 12:00";
    lab.monitor(later).expect(0, "the pass after the end");
    assert!(inspect(user).is_none(), "the container is gone after the end");
    assert!(lab.holds(USED, user, &start), "used.csv holds the finished booking:\n{}", lab.read(USED));
    assert!(!lab.holds(USING, user, &start), "using.csv no longer holds it:\n{}", lab.read(USING));
    let saved = lab.backup_dir(user).join(".default");
    assert_eq!(
        fs::read_to_string(saved.join(".bashrc")).unwrap_or_else(|error| panic!("the saved .bashrc: {error}")),
        bashrc
    );
    assert_eq!(
        fs::read_to_string(saved.join(".ssh/known_keys")).unwrap_or_else(|error| panic!("the saved .ssh: {error}")),
        key
    );
    assert_eq!(
        fs::read_to_string(lab.work_dir(user).join("result.txt")).expect("the work file on the host"),
        "result 42\n"
    );

    // The next booking gets the saved files back in place.
    lab.book_new(user, later, ("1.5", "4", "0"), "now", "2-hour");
    lab.monitor(later).expect(0, "the pass that starts the next booking");
    let container = inspect_existing(user, "the next booking");
    assert!(is_running(&container), "the next container runs: {}", container["State"]);
    assert_eq!(labels_start(&container), full(later));
    // Copied in before the start, not mounted: a mount would follow whatever link the user
    // planted in the backup folder at every restart.
    let mounted = binds(&container);
    assert_eq!(mounted.len(), 3, "only the work, backup and dataset folders are mounted: {mounted:?}");
    assert_eq!(exec(user, "cat /root/.bashrc"), bashrc, "the saved .bashrc, seen in the container");
    assert_eq!(exec(user, "cat /root/.ssh/known_keys"), key, "the saved .ssh, seen in the container");
    assert_eq!(exec(user, "cat /root/Work/result.txt"), "result 42\n", "the work folder");
}

fn labels_start(container: &Value) -> String {
    labels(container).get("gpu-booking.start").cloned().unwrap_or_default()
}

/// The password typed at registration reaches the container only as a hash in a file: it is
/// in no part of `docker inspect` (environment, command, labels) and in no log.
#[test]
fn the_password_is_nowhere_in_plain_text() {
    let Some(lab) = Lab::on_engine("secret", &["a"]) else { return };
    let user = lab.user(0).to_string();
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "1-hour");
    let pass = lab.monitor(NOW);
    let pass = pass.expect(0, "the pass that starts the booking");
    let container = inspect_existing(&user, "after the start");
    assert!(is_running(&container), "the container runs: {}", container["State"]);
    // The setup script has run by now (it printed its warnings, or the pass waited on it).
    std::thread::sleep(Duration::from_millis(500));

    let inspected = docker_ok(&["container", "inspect", &user]);
    assert!(!inspected.contains(PASSWORD), "the password is in `docker inspect`:\n{inspected}");
    let logs = docker(&["logs", &user]);
    let logs = format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
    assert!(!logs.contains(PASSWORD), "the password is in `docker logs`:\n{logs}");
    assert!(!lab.log().contains(PASSWORD), "the password is in monitor.log:\n{}", lab.log());
    assert!(
        !pass.stdout.contains(PASSWORD) && !pass.stderr.contains(PASSWORD),
        "the password is in the monitor's output"
    );
    assert!(!lab.read("cfg/users_config.yaml").contains(PASSWORD), "users_config.yaml stores the password itself");
    // What the container does get: the hash, in a file only root reads.
    let hash = exec(&user, "cat /.gpu-booking/password.hash");
    assert!(hash.starts_with('$'), "the container holds a crypt(3) hash, found {hash:?}");
}

/// A lab (no engine needed) where, at [`NOW`], one user's booking starts and another's ends;
/// the two users.
fn starting_and_ending(name: &str) -> (Lab, String, String) {
    let lab = Lab::docker(name, &["a", "b"]);
    lab.register_all();
    let (starting, ending) = (lab.user(0).to_string(), lab.user(1).to_string());
    lab.book_new(&starting, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.add_booking_row(USING, &ending, &full("2026-11-23 08:00"), &full(NOW), "1", "2");
    (lab, starting, ending)
}

/// A dead engine: the error is logged in the documented format, the pass fails, and no row
/// and no request moves.
#[test]
fn an_unreachable_engine_is_logged_and_nothing_moves() {
    let (lab, _, _) = starting_and_ending("down");
    lab.write(MONITOR_EXEC, "now\n");
    let before = lab.jobs_snapshot();

    let pass = lab.monitor_with(NOW, &[], &[("DOCKER_HOST", DEAD_DOCKER_HOST)]);
    let pass = pass.expect_failure("a pass without an engine");

    let expected = format!("20261123 10:00 [ERROR] DockerError, Docker engine not reachable at {DEAD_DOCKER_HOST}");
    assert!(
        lab.log().lines().any(|line| line.starts_with(&expected)),
        "monitor.log has a line starting {expected:?}; the log:\n{}",
        lab.log()
    );
    assert!(pass.stdout.contains(&expected), "the line also goes to stdout\n{pass}");
    assert_unchanged(&before, &lab.jobs_snapshot(), "a pass without an engine");
    assert_eq!(lab.read(MONITOR_EXEC), "now\n", "the request waits for the next pass");
}

/// No NVIDIA runtime here: a GPU booking's container cannot start. The pass says why, keeps
/// the booking for the next pass, and leaves no half-made container holding the name.
#[test]
fn a_gpu_booking_without_the_nvidia_runtime_fails_cleanly_and_stays_booked() {
    let test = "a_gpu_booking_without_the_nvidia_runtime_fails_cleanly_and_stays_booked";
    if !images::engine_or_skip(test) {
        return;
    }
    let runtimes = docker_ok(&["info", "--format", "{{json .Runtimes}}"]);
    if runtimes.contains("nvidia") || Command::new("nvidia-container-cli").arg("--version").output().is_ok() {
        eprintln!("{test}: skipped: this engine has an NVIDIA runtime");
        return;
    }
    let Some(lab) = Lab::on_engine("gpu", &["a"]) else { return };
    let user = lab.user(0).to_string();
    lab.book_new(&user, NOW, ("1", "2", "1"), "now", "2-hour");
    let start = full(NOW);

    lab.monitor(NOW).expect_failure("a GPU booking on a host without the NVIDIA runtime");

    let failures = lab.log_lines("[ERROR] StartError", &[&user]);
    assert!(!failures.is_empty(), "a StartError line for {user}; the log:\n{}", lab.log());
    let named = failures.iter().any(|line| {
        let line = line.to_lowercase();
        line.contains("nvidia") || line.contains("device driver") || line.contains("gpu")
    });
    assert!(named, "the StartError names the failure (the GPU driver): {failures:?}");
    assert!(lab.holds(BOOKING, &user, &start), "the booking stays in booking.csv:\n{}", lab.read(BOOKING));
    assert!(!lab.holds(USING, &user, &start), "and is not in using.csv:\n{}", lab.read(USING));
    assert!(inspect(&user).is_none(), "no container named {user} is left behind");
}

/// A container the monitor did not start holds the user's name: it is never touched, and
/// the booking waits.
#[test]
fn a_foreign_container_holding_the_name_is_left_alone() {
    let Some(lab) = Lab::on_engine("foreign", &["a"]) else { return };
    let image = images::BUSYBOX_IMAGE;
    let user = lab.user(0).to_string();
    docker_ok(&["run", "-d", "--name", &user, image, "sleep", "600"]);
    let before = inspect_existing(&user, "the foreign container");
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "2-hour");
    let start = full(NOW);

    let pass = lab.monitor(NOW);
    pass.assert_no_panic("a pass meeting a foreign container");

    lab.assert_logged("[ERROR] ForeignContainerError", &[&user], "the foreign container is reported");
    let after = inspect_existing(&user, "the foreign container after the pass");
    assert_eq!(after["Id"], before["Id"], "the same container");
    assert!(is_running(&after), "still running: {}", after["State"]);
    assert_eq!(after["State"]["StartedAt"], before["State"]["StartedAt"], "not restarted");
    assert_eq!(after["Config"]["Labels"], before["Config"]["Labels"], "no labels added");
    assert_eq!(after["HostConfig"], before["HostConfig"], "its settings unchanged");
    assert!(lab.holds(BOOKING, &user, &start), "the booking stays in booking.csv:\n{}", lab.read(BOOKING));
    assert!(!lab.holds(USING, &user, &start), "and is not in using.csv:\n{}", lab.read(USING));
}

/// A second pass right after the first has nothing to do: no file under `jobs/` but the log
/// changes, and the container is the same one, not restarted.
#[test]
fn a_second_pass_changes_nothing() {
    let Some((lab, user)) = Lab::running("twice") else { return };
    let first = inspect_existing(&user, "after the first pass");
    let before = lab.jobs_snapshot();

    lab.monitor(NOW).expect(0, "the second pass");

    assert_unchanged(&before, &lab.jobs_snapshot(), "the second pass");
    let second = inspect_existing(&user, "after the second pass");
    assert_eq!(second["Id"], first["Id"], "the same container");
    assert_eq!(second["State"]["StartedAt"], first["State"]["StartedAt"], "not restarted");
    assert!(is_running(&second), "still running: {}", second["State"]);
}

/// xorshift64*: enough randomness to pick kill instants, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The pass killed (SIGKILL) at random instants, many times, then run to completion: each
/// booking ends up in exactly one file, no row twice, every running booking has its
/// container, and no container of ours runs without a running booking.
#[test]
fn killing_passes_at_random_instants_then_a_clean_pass_converges() {
    // a and b end at 12:00, e goes on; c and d start at 12:00; f's window passed unstarted.
    let tags = ["a", "b", "c", "d", "e", "f"];
    let Some(lab) = Lab::on_engine("kill", &tags) else { return };
    let user = |index: usize| lab.user(index).to_string();
    let (a, b, c, d, e, f) = (user(0), user(1), user(2), user(3), user(4), user(5));
    let earlier = "2026-11-23 11:30";
    let now = "2026-11-23 12:00";
    // One CPU each: the least a booking may hold.
    lab.add_booking_row(USING, &a, &full("2026-11-23 10:00"), &full(now), "1", "1");
    lab.add_booking_row(USING, &b, &full("2026-11-23 10:30"), &full(now), "1", "1");
    lab.add_booking_row(USING, &e, &full("2026-11-23 11:00"), &full("2026-11-23 14:00"), "1", "1");
    // The containers of the running bookings, started by a pass before their end.
    lab.monitor(earlier).expect(0, "the pass that starts the running bookings' containers");
    for running in [&a, &b, &e] {
        let container = inspect_existing(running, "before the kills");
        assert!(is_running(&container), "{running}'s container runs before the kills");
    }
    // Dotfiles the ending bookings' users leave, for the backup at the end.
    for ending in [&a, &b] {
        docker_ok(&["exec", ending, "sh", "-c", "printf 'saved %s\\n' \"$1\" > /root/.bashrc", "sh", ending]);
    }
    lab.add_booking_row(BOOKING, &c, &full(now), &full("2026-11-23 14:00"), "1", "1");
    lab.add_booking_row(BOOKING, &d, &full(now), &full("2026-11-23 13:00"), "1", "1");
    lab.add_booking_row(BOOKING, &f, &full("2026-11-23 10:00"), &full("2026-11-23 11:00"), "1", "1");
    lab.write(MONITOR_EXEC, "now\n");
    let mut all_bookings: BTreeSet<(String, String)> = BTreeSet::new();
    for file in [BOOKING, USING, USED] {
        all_bookings.extend(lab.keys(file));
    }
    assert_eq!(all_bookings.len(), 6, "six bookings before the kills");

    let seed =
        std::env::var("GPU_BOOKING_KILL_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or(0x5EED_CAFE_u64);
    let mut rng = Rng(seed);
    let mut delays = Vec::new();
    for _ in 0..15 {
        let delay = Duration::from_millis(rng.next() % 1501);
        delays.push(delay.as_millis());
        let (mut command, _) = lab.command("monitor", &[]).now(now).into_command();
        let mut child =
            command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn monitor");
        std::thread::sleep(delay);
        // SIGKILL; a pass that already finished is simply reaped.
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("kill loop: seed {seed:#x}, delays (ms) {delays:?}");

    let clean = lab.monitor(now);
    clean.expect(0, "the clean pass after the kills");
    let clean_log = lab.log();

    // Each booking in exactly one file, no row twice in any.
    let mut seen: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for file in [BOOKING, USING, USED] {
        let keys = lab.keys(file);
        let distinct: BTreeSet<_> = keys.iter().cloned().collect();
        assert_eq!(distinct.len(), keys.len(), "{file} holds a row twice:\n{}", lab.read(file));
        for key in keys {
            seen.entry(key).or_default().push(file);
        }
    }
    for booking in &all_bookings {
        let files = seen.get(booking).cloned().unwrap_or_default();
        assert_eq!(files.len(), 1, "{booking:?} is in {files:?}, expected exactly one file; the log:\n{clean_log}");
    }
    assert_eq!(seen.len(), all_bookings.len(), "no booking appeared from nowhere: {seen:?}");

    // Every running booking has its container, running, with our labels.
    let using = lab.rows(USING);
    for row in &using {
        let name = &row["user_id"];
        let container = inspect_existing(name, "a running booking's container");
        assert!(is_running(&container), "{name}'s container runs: {}", container["State"]);
        let labels = labels(&container);
        assert_eq!(labels.get("gpu-booking.managed").map(String::as_str), Some("true"), "{name}: {labels:?}");
        assert_eq!(labels.get("gpu-booking.root"), Some(&lab.root_label()), "{name}: {labels:?}");
        assert_eq!(labels.get("gpu-booking.user"), Some(name), "{name}: {labels:?}");
        assert_eq!(labels.get("gpu-booking.start"), Some(&row["start"]), "{name}: {labels:?}");
    }
    // No container of ours without a running booking (none stopped and left lying either).
    let ours = docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=gpu-booking.root={}", lab.root_label()),
        "--format",
        "{{.Names}} {{.State}}",
    ]);
    for line in ours.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            using.iter().any(|row| row["user_id"] == name),
            "container {line:?} is ours but has no row in using.csv:\n{}",
            lab.read(USING)
        );
    }

    // And the outcome the schedule asks for.
    let at = |file: &str, user: &str, start: &str| lab.holds(file, user, &full(start));
    assert!(at(USED, &a, "2026-11-23 10:00") && at(USED, &b, "2026-11-23 10:30"), "a and b ended:\n{}", lab.read(USED));
    assert!(at(USED, &f, "2026-11-23 10:00"), "f's window passed: history (missed):\n{}", lab.read(USED));
    assert!(
        at(USING, &c, now) && at(USING, &d, now) && at(USING, &e, "2026-11-23 11:00"),
        "c, d, e run:\n{}",
        lab.read(USING)
    );
    assert!(lab.rows(BOOKING).is_empty(), "nothing is left to start:\n{}", lab.read(BOOKING));
    for gone in [&a, &b, &f] {
        assert!(inspect(gone).is_none(), "{gone} has no container after the end");
    }

    // What a kill at an unlucky instant may lose or leave behind: reported, not asserted
    // (it breaks none of the invariants above, and whether it happens depends on the instant).
    for ending in [&a, &b] {
        let saved = lab.backup_dir(ending).join(".default/.bashrc");
        if fs::read_to_string(&saved).ok() != Some(format!("saved {ending}\n")) {
            eprintln!("kill loop: {ending}'s .bashrc was not saved to {} (lost by a killed pass)", saved.display());
        }
    }
    let debris: Vec<String> = snapshot(lab.root())
        .keys()
        .filter(|path| path.contains(".tmp") || path.contains(".gpu-booking-save-"))
        .cloned()
        .collect();
    if !debris.is_empty() {
        eprintln!("kill loop: left behind by killed passes: {debris:?}");
    }
}

/// The kill that lands between creating a container and writing its setup files into it
/// leaves a container of ours, for this booking, that never started and cannot (its
/// entrypoint, the setup script, is not there). The next pass must still give the booking a
/// working container.
#[test]
fn a_container_left_unstarted_by_a_killed_pass_is_made_to_run() {
    let Some(lab) = Lab::on_engine("halfmade", &["a"]) else { return };
    let image = images::BUSYBOX_IMAGE;
    let user = lab.user(0).to_string();
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "2-hour");
    let start = full(NOW);
    // What the killed pass had made: the container, labelled for this booking, created with
    // the setup script as its entrypoint, but no setup files written and never started.
    let root_label = format!("gpu-booking.root={}", lab.root_label());
    let user_label = format!("gpu-booking.user={user}");
    let start_label = format!("gpu-booking.start={start}");
    let end_label = format!("gpu-booking.end={}", full("2026-11-23 12:00"));
    docker_ok(&[
        "create",
        "--name",
        &user,
        "--label",
        "gpu-booking.managed=true",
        "--label",
        &root_label,
        "--label",
        &user_label,
        "--label",
        &start_label,
        "--label",
        &end_label,
        "--restart",
        "unless-stopped",
        "--entrypoint",
        "/bin/sh",
        image,
        "/.gpu-booking/start",
    ]);

    let pass = lab.monitor(NOW);
    pass.assert_no_panic("the pass after the kill");
    // Give a container that exits at once the time to show it.
    std::thread::sleep(Duration::from_millis(1500));
    let container = inspect_existing(&user, "after the pass");
    let logs = docker(&["logs", "--tail", "5", &user]);
    assert!(
        is_running(&container) && container["RestartCount"] == 0,
        "the booking's container runs (state {}, restarts {}; its logs: {}); the pass said:\n{pass}\nthe log:\n{}",
        container["State"],
        container["RestartCount"],
        String::from_utf8_lossy(&logs.stderr).trim(),
        lab.log()
    );
    assert!(lab.holds(USING, &user, &start), "the booking runs:\n{}", lab.read(USING));
}

/// A `backup.yaml` with entries that lead outside the backup folder (`..`, an absolute path,
/// a symbolic link to `/etc`): each is refused and logged, the container starts anyway, and
/// nothing of the host but the user's own folders is mounted.
#[test]
fn backup_entries_leading_out_of_the_backup_folder_are_refused() {
    let Some(lab) = Lab::on_engine("escape", &["a"]) else { return };
    let user = lab.user(0).to_string();
    let backup = lab.backup_dir(&user);
    lab.link_in_backup(&user, ".default/evil", Path::new("/etc"));
    let list =
        "Dir:\n  - - ../../etc\n    - /mnt/etc\n  - - /etc\n    - /mnt/etc2\n  - - .default/evil\n    - /mnt/evil\n";
    lab.write_in_backup(&user, "backup.yaml", list);
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "2-hour");

    let pass = lab.monitor(NOW);
    pass.assert_no_panic("a pass with a hostile backup.yaml");

    let container = inspect_existing(&user, "the container starts anyway");
    assert!(is_running(&container), "the container runs: {}", container["State"]);
    let mounted = binds(&container);
    let allowed = [lab.work_dir(&user), lab.dataset_dir()];
    let backup_real = backup.canonicalize().expect("the backup folder");
    for (host, container_path, _) in &mounted {
        assert!(!host.starts_with("/etc"), "/etc is mounted: {host}:{container_path}");
        assert!(!container_path.starts_with("/mnt/"), "a refused entry is mounted: {host}:{container_path}");
        let host = PathBuf::from(host);
        if allowed.contains(&host) {
            continue;
        }
        let real = host.canonicalize().unwrap_or_else(|error| panic!("{}: {error}", host.display()));
        assert!(
            host.starts_with(&backup) && real.starts_with(&backup_real),
            "{} ({}) is outside the backup folder {}",
            host.display(),
            real.display(),
            backup.display()
        );
    }
    for entry in ["../../etc", "\"/etc\"", ".default/evil"] {
        lab.assert_logged("[WARNING] BackupPathWarning", &[&user, entry], &format!("the entry {entry} is refused"));
    }
}

/// A symbolic link in the backup folder (which the user controls from inside the container)
/// is refused on its own, and the list's other entries are mounted as usual.
#[test]
fn a_symlinked_backup_entry_is_refused_and_the_others_are_restored() {
    let Some(lab) = Lab::on_engine("symlink", &["a"]) else { return };
    let user = lab.user(0).to_string();
    lab.link_in_backup(&user, ".default/evil", Path::new("/etc"));
    lab.write_in_backup(&user, ".default/.bashrc", "export SYMLINK_TEST=1\n");
    let list = "Dir:\n  - - .default/evil\n    - /mnt/evil\nFile:\n  - - .default/.bashrc\n    - /root/.bashrc\n";
    lab.write_in_backup(&user, "backup.yaml", list);
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "2-hour");

    lab.monitor(NOW).assert_no_panic("a pass with a symlinked entry");

    let container = inspect_existing(&user, "the container starts anyway");
    assert!(is_running(&container), "the container runs: {}", container["State"]);
    let mounted = binds(&container);
    assert!(bind_to(&mounted, "/mnt/evil").is_none(), "the symlink is not mounted: {mounted:?}");
    assert!(!mounted.iter().any(|(host, _, _)| host.starts_with("/etc")), "/etc is not mounted: {mounted:?}");
    assert_eq!(exec(&user, "cat /root/.bashrc"), "export SYMLINK_TEST=1\n", "the good entry is restored");
    assert!(exec(&user, "ls /mnt 2>/dev/null || true").trim().is_empty(), "nothing of /etc is restored");
    lab.assert_logged("[WARNING] BackupPathWarning", &[&user, ".default/evil"], "the symlink is refused");
}

/// `monitor --dry-run` prints what the pass would do and changes nothing — no file, no
/// container — and needs no engine.
#[test]
fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let (lab, starting, ending) = starting_and_ending("dry");
    let before = snapshot(lab.root());
    let engine = images::docker_engine().is_ok();

    for envs in [vec![], vec![("DOCKER_HOST", DEAD_DOCKER_HOST)]] {
        let context = format!("monitor --dry-run with {envs:?}");
        let run = lab.monitor_with(NOW, &["--dry-run"], &envs);
        let run = run.expect(0, &context);
        assert!(run.stdout.contains(&format!("would start {starting}")), "{context}: the start is planned\n{run}");
        assert!(
            run.stdout.contains(&format!("would back up, stop and remove {ending}'s container")),
            "{context}: the end is planned\n{run}"
        );
        assert_unchanged(&before, &snapshot(lab.root()), &context);
        if engine {
            assert!(inspect(&starting).is_none() && inspect(&ending).is_none(), "{context}: no container was created");
        }
    }
    assert!(lab.read(MONITOR_LOG).is_empty(), "a dry run writes no log");
}

// ---- requests, pulls, run-container, status ----------------------------------------------

fn started_at(container: &Value) -> String {
    container["State"]["StartedAt"].as_str().unwrap_or_default().to_string()
}

/// A lab (see [`Lab::on_engine`]) whose one user has a running container (started by a first
/// pass) and has asked for a restart (`book restart`), and that user's id. The container's
/// `StartedAt` before the restart is returned too: Docker keeps nanoseconds, so a restart
/// always moves it on.
fn lab_with_a_restart_request(name: &str) -> Option<(Lab, String, String)> {
    let (lab, user) = Lab::running(name)?;
    let started = started_at(&inspect_existing(&user, "after the first pass"));
    lab.book_as(&user, &["restart"]).expect(0, "book restart with a running booking");
    Some((lab, user, started))
}

#[test]
fn a_restart_request_restarts_the_container_and_is_consumed() {
    let Some((lab, user, before)) = lab_with_a_restart_request("restart") else { return };
    // The original's format, the bare id: its watcher runs `docker restart <line>`.
    assert_eq!(lab.read(MONITOR_EXEC), format!("{user}\n"), "the request waits in monitor_exec");
    lab.monitor(NOW).expect(0, "the pass that serves the request");
    let after = inspect_existing(&user, "after the restart");
    assert!(is_running(&after), "the container runs after the restart");
    assert_ne!(started_at(&after), before, "the container was restarted");
    assert_eq!(lab.read(MONITOR_EXEC), "", "the requests were consumed");
    lab.assert_logged("[INFO]", &[&user, "restarted on request"], "the restart is logged");
}

/// A restart Docker fails to do is not lost: the request goes back into `jobs/monitor_exec`
/// for the next pass, and the failure is logged.
#[test]
fn a_restart_that_docker_fails_is_kept_for_the_next_pass() {
    let Some((lab, user, _)) = lab_with_a_restart_request("restart-fails") else { return };
    // The container's entrypoint is `/bin/sh …`: without it, Docker cannot start it again.
    exec(&user, "rm -f /bin/sh");

    lab.monitor(NOW).expect_failure("a pass whose restart fails");

    assert_eq!(lab.read(MONITOR_EXEC), format!("{user}\n"), "the request waits for the next pass");
    lab.assert_logged("[ERROR] DockerError", &[&user, "tried again at the next pass"], "the failed restart is logged");
}

/// A restart request never reaches a container gpu-booking did not start, even one that took
/// the name of a running booking's container.
#[test]
fn a_restart_request_leaves_a_foreign_container_alone() {
    let Some((lab, user, _)) = lab_with_a_restart_request("restart-foreign") else { return };
    let image = images::BUSYBOX_IMAGE;
    // Someone replaces the booking's container with one of their own, under the same name.
    docker_ok(&["rm", "-f", &user]);
    docker_ok(&["run", "-d", "--name", &user, image, "sleep", "600"]);
    let before = inspect_existing(&user, "the foreign container");

    let pass = lab.monitor(NOW);
    pass.assert_no_panic("a pass with a restart request for a foreign container's name");

    let after = inspect_existing(&user, "the foreign container after the pass");
    assert_eq!(after["Id"], before["Id"], "the same container");
    assert_eq!(started_at(&after), started_at(&before), "the foreign container was not restarted");
    lab.assert_logged("[ERROR] ForeignContainerError", &[&user, "not restarted"], "the refused restart is reported");
    assert_eq!(lab.read(MONITOR_EXEC), "", "the request was answered, not kept for a retry");
}

#[test]
fn an_image_that_cannot_be_pulled_is_reported_and_the_booking_kept() {
    let Some(lab) = Lab::on_engine("pull", &["a"]) else { return };
    let absent = format!("gpu-booking-test/absent-{}:latest", std::process::id());
    let deploy = lab.read("cfg/host_deploy.yaml").replace(
        &format!("images:\n  - {}\n", images::BUSYBOX_IMAGE),
        &format!("images:\n  - {}\n  - {absent}\n", images::BUSYBOX_IMAGE),
    );
    lab.write("cfg/host_deploy.yaml", &deploy);
    let user = lab.user(0).to_string();
    lab.book_as(&user, &new_booking_args("1", "2", "0", "now", "2-hour"))
        .args(["--image", &absent])
        .expect(0, "book with an image the engine lacks");
    lab.monitor(NOW).expect_failure("a pass whose image cannot be pulled");
    lab.assert_logged("[ERROR] StartError", &[&user, "cannot pull image", &absent], "the failed pull is named");
    assert!(lab.holds(BOOKING, &user, &full(NOW)), "the booking stays in booking.csv for the next pass");
    assert!(inspect(&user).is_none(), "no container is left behind");
}

#[test]
fn run_container_dry_run_prints_the_exact_spec_and_touches_nothing() {
    let lab = Lab::docker("rcdry", &["a"]);
    let user = lab.user(0).to_string();
    lab.register(&user);
    let before = snapshot(lab.root());
    let run = lab
        .command("run-container", &["--user", &user, "--cpus", "1.5", "--memory", "4", "--gpus", "0,1"])
        .args(["--extra-command", "python3 -m http.server 8888", "--dry-run"])
        .env("DOCKER_HOST", DEAD_DOCKER_HOST)
        .expect(0, "run-container --dry-run with no engine");
    let spec = run.json();
    assert_eq!(spec["name"], user.as_str());
    assert_eq!(spec["image"], images::BUSYBOX_IMAGE);
    assert_eq!(spec["nano_cpus"], 1_500_000_000i64);
    let (memory, swap, shm) = expected_memory(4);
    assert_eq!((spec["memory_bytes"].as_i64(), spec["memory_swap_bytes"].as_i64()), (Some(memory), Some(swap)));
    assert_eq!(spec["shm_size_bytes"].as_i64().unwrap_or(DOCKER_DEFAULT_SHM), shm);
    assert_eq!(spec["device_request"]["driver"], "nvidia");
    assert_eq!(spec["device_request"]["device_ids"], serde_json::json!(["0", "1"]));
    assert_eq!(spec["port_bindings"][0]["host_port"], lab.port(&user));
    assert_eq!(spec["port_bindings"][0]["container_port"], "22/tcp");
    assert_eq!(
        spec["environment"],
        serde_json::json!(["NVIDIA_VISIBLE_DEVICES=0,1", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"]),
        "only the booked GPUs, so no secret in the environment"
    );
    assert_eq!(spec["labels"]["gpu-booking.manual"], "true");
    assert_eq!(spec["labels"]["gpu-booking.user"], user.as_str());
    let binds = spec["mounts"].as_array().expect("mounts");
    let dataset = binds.iter().find(|bind| bind["container_path"] == "/root/Dataset").expect("the dataset bind");
    assert_eq!(dataset["read_only"], true);
    assert!(!run.stdout.contains("$6$") && !run.stdout.contains(PASSWORD), "no password or hash is printed");
    assert!(run.stdout.contains("extra_command"), "the extra command file is listed by path");
    assert_unchanged(&before, &snapshot(lab.root()), "run-container --dry-run");

    lab.command("run-container", &["--user", &user, "--cpus", "64", "--dry-run"])
        .expect(3, "more CPUs than the host has");
}

#[test]
fn run_container_starts_a_container_the_monitor_leaves_alone_and_stop_removes_it() {
    let Some(lab) = Lab::on_engine("rc", &["a"]) else { return };
    let user = lab.user(0).to_string();
    lab.command("run-container", &["--user", &user, "--cpus", "1", "--memory", "2"])
        .expect(0, "run-container starts a container");
    let container = inspect_existing(&user, "after run-container");
    assert!(is_running(&container));
    assert_eq!(labels(&container).get("gpu-booking.manual").map(String::as_str), Some("true"));
    assert_eq!(container["HostConfig"]["NanoCpus"], 1_000_000_000i64);

    lab.monitor(NOW).expect(0, "a pass with a hand-started container and no booking");
    let after = inspect_existing(&user, "after the pass");
    assert!(is_running(&after), "the monitor leaves a run-container container alone");
    assert_eq!(after["Id"], container["Id"]);

    exec(&user, "echo 'alias ll=ls' > /root/.bashrc");
    lab.command("run-container", &["stop", "--user", &user]).expect(0, "run-container stop");
    assert!(inspect(&user).is_none(), "the container is gone");
    let saved = fs::read_to_string(lab.backup_dir(&user).join(".default/.bashrc")).expect("the dotfile was saved");
    assert_eq!(saved, "alias ll=ls\n");
}

#[test]
fn monitor_status_names_the_missing_driver_and_the_running_bookings() {
    let lab = Lab::docker("status", &["a"]);
    lab.register_all();
    let user = lab.user(0).to_string();
    lab.add_booking_row(USING, &user, &full("2026-11-23 09:00"), &full("2026-11-23 12:00"), "1", "2");
    let run = lab.monitor_with(NOW, &["status"], &[("DOCKER_HOST", DEAD_DOCKER_HOST)]);
    let run = run.expect(0, "monitor status without a driver or an engine");
    assert!(run.stdout.contains("no NVIDIA driver"), "the missing driver is one clear line\n{run}");
    assert!(run.stdout.contains(&user) && run.stdout.contains("until 2026-11-23 12:00"), "the running booking\n{run}");
    // What the host enforces, said plainly: quotas, limits, and the mount of the folders.
    for words in [
        &["quotas", "every pass", "project quotas: not used"][..],
        &["processes: at most 4096", "no-new-privileges"],
        &["container file system", "unknown"],
    ] {
        assert!(
            run.stdout.lines().any(|line| words.iter().all(|word| line.contains(word))),
            "a status line with {words:?}\n{run}"
        );
    }
    let mounted = if lab.mounted_privately() { "mounted nosuid,nodev" } else { "NOT mounted nosuid,nodev" };
    assert!(run.stdout.lines().any(|line| line.contains("work folders") && line.contains(mounted)), "{run}");
}

/// `book extend` does not wait for a pass that is ending the same booking. Whichever wins,
/// the student is never told "extended" and then loses the booking: an extension that lands
/// while the pass stops the container keeps the booking running and gets its container back
/// in the same run.
#[test]
fn an_extension_racing_the_end_of_its_booking_is_never_lost() {
    let Some((lab, user)) = Lab::running("extendrace") else { return };
    let end = "2026-11-23 12:00";
    let pass = {
        let pass = lab.command("monitor", &[]).now(end);
        std::thread::spawn(move || pass.output())
    };
    let extended = lab.book_as(&user, &["extend", "--end", "2026-11-23 14:00"]).now(end).run();
    let pass = pass.join().expect("the pass thread");
    pass.assert_no_panic("the pass that ends the booking");
    extended.assert_no_panic("book extend");
    let start = full("2026-11-23 10:00");
    println!(
        "the race went to {}{}",
        if extended.code == Some(0) { "the extension" } else { "the pass" },
        if lab.log().contains("ExtendWarning") { ", during the pass's Docker work" } else { "" }
    );
    if extended.code == Some(0) {
        assert!(!lab.holds(USED, &user, &start), "extended, then recorded as ended:\n{}\n{extended}", lab.read(USED));
        let row = lab.rows(USING).into_iter().find(|row| row["user_id"] == user).expect("still running");
        assert_eq!(row["end"], full("2026-11-23 14:00"), "with its new end");
        let container = inspect_existing(&user, "after the race");
        assert!(is_running(&container), "the extended booking has its container");
    } else {
        assert!(lab.holds(USED, &user, &start), "refused, and the booking ended:\n{extended}");
        assert!(inspect(&user).is_none(), "its container is gone");
    }
}

/// An admin deletes a running row by hand (or a booking is cancelled as its container starts):
/// the pass removes the container, but the student's saved paths are kept, as at an end.
#[test]
fn a_container_without_a_booking_is_removed_and_its_saved_paths_kept() {
    let Some((lab, user)) = Lab::running("orphan") else { return };
    docker_ok(&["exec", &user, "sh", "-c", "printf 'kept\\n' > /root/.bashrc"]);
    lab.write(USING, HEADER);

    let later = "2026-11-23 10:30";
    lab.monitor(later).expect(0, "the pass that finds the container without a booking");
    assert!(inspect(&user).is_none(), "the orphan is removed");
    lab.assert_logged("[WARNING] OrphanWarning", &[&user, "saved paths were kept"], "the orphan");
    let saved = lab.backup_dir(&user).join(".default/.bashrc");
    assert_eq!(
        fs::read_to_string(&saved).unwrap_or_else(|error| panic!("{}: {error}", saved.display())),
        "kept\n",
        "the saved path of a container without a booking"
    );
}
