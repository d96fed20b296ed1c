//! The container is a cage: hostile students on the real Docker engine try to make device
//! files, fork without end, reach each other, fill the disk past their quota, and stall the
//! monitor with a slow program or a huge sparse file — and another student's booking, the host
//! and the next pass must not notice.
//!
//! Each test fails on the release before this change (Docker's default capabilities, no pids
//! limit, the shared default bridge, unbounded exec and copy, quotas checked only at start).

mod support;

use std::fs;

use serde_json::Value;
use support::docker::*;
use support::lab::*;
use support::run::*;

const LATER: &str = "2026-11-23 12:00";

/// The bits of a `Cap…:` line of `/proc/PID/status`.
fn capability_bits(status: &str, field: &str) -> u64 {
    let line = status.lines().find(|line| line.starts_with(field)).unwrap_or_else(|| panic!("{field} in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).expect("a value"), 16).expect("hex")
}

#[test]
fn a_container_keeps_only_what_sshd_needs_and_cannot_fork_without_end() {
    let Some(lab) = Lab::on_engine("caps", &["a"]) else { return };
    lab.write("cfg/containers.yaml", "pids_limit: 64\nssh_bind_address: 127.0.0.1\n");
    let user = lab.user(0).to_string();
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.monitor(NOW).expect(0, "the pass that starts the booking");
    let container = inspect_existing(&user, "after the start");
    let host = &container["HostConfig"];
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "{host}");
    assert_eq!(host["PidsLimit"], 64);
    assert!(
        host["SecurityOpt"].as_array().into_iter().flatten().any(|option| option == "no-new-privileges:true"),
        "{host}"
    );
    assert_eq!(host["PortBindings"]["22/tcp"][0]["HostIp"], "127.0.0.1", "the admin's address");
    let status = exec(&user, "cat /proc/1/status");
    let effective = capability_bits(&status, "CapEff:");
    for (name, bit) in [("NET_RAW", 13), ("MKNOD", 27), ("SETFCAP", 31), ("SYS_ADMIN", 21)] {
        assert_eq!(effective & (1 << bit), 0, "the container holds CAP_{name}: {effective:x}");
    }
    for (name, bit) in [("SETUID", 7), ("SETGID", 6), ("SYS_CHROOT", 18)] {
        assert_ne!(effective & (1 << bit), 0, "sshd needs CAP_{name}: {effective:x}");
    }
    assert!(status.lines().any(|line| line.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]));
    assert!(exec(&user, "echo $NVIDIA_VISIBLE_DEVICES").trim() == "void", "no GPU booked, none visible");

    // A fork bomb stops at the limit, inside the container.
    let forked = docker(&["exec", &user, "sh", "-c", "i=0; while [ $i -lt 150 ]; do sleep 60 & i=$((i+1)); done"]);
    assert!(String::from_utf8_lossy(&forked.stderr).contains("can't fork"), "the limit stops the loop: {forked:?}");
    let counted = docker_ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", &user]);
    let processes: u32 = counted.trim().parse().unwrap_or_else(|_| panic!("a count: {counted}"));
    assert!((2..=64).contains(&processes), "{processes} processes run in a container limited to 64");
}

#[test]
fn students_containers_cannot_reach_each_other() {
    let Some(lab) = Lab::on_engine("icc", &["a", "b"]) else { return };
    let (first, second) = (lab.user(0).to_string(), lab.user(1).to_string());
    for user in [&first, &second] {
        lab.book_new(user, NOW, ("1", "2", "0"), "now", "2-hour");
    }
    lab.monitor(NOW).expect(0, "the pass that starts both");
    let address = |user: &str| -> String {
        let container = inspect_existing(user, "a running container");
        container["NetworkSettings"]["Networks"]["gpu-booking"]["IPAddress"]
            .as_str()
            .unwrap_or_else(|| panic!("{user} is on the gpu-booking network: {}", container["NetworkSettings"]))
            .to_string()
    };
    let target = address(&second);
    docker_ok(&["exec", "-d", &second, "busybox", "nc", "-l", "-p", "8080"]);
    let attempt = exec(&first, &format!("busybox nc -w 3 {target} 8080 </dev/null && echo reached || echo blocked"));
    assert_eq!(attempt.trim(), "blocked", "{first} reached {second}'s container at {target}:8080");
    // The listener was there: the host itself reaches it.
    let from_host = std::process::Command::new("busybox")
        .args(["nc", "-w", "3", &target, "8080"])
        .stdin(std::process::Stdio::null())
        .status()
        .expect("run busybox nc on the host");
    assert!(from_host.success(), "the host could not reach the listener at {target}:8080");
}

/// A student whose saved paths replace the container's `/bin/sh` with a program that never
/// returns: the monitor's check inside the container gives up, the pass ends, and another
/// student's container starts in the same pass.
#[test]
fn a_program_that_never_returns_does_not_stall_the_pass() {
    let Some(lab) = Lab::on_engine("stall", &["a", "b"]) else { return };
    let (hostile, other) = (lab.user(0).to_string(), lab.user(1).to_string());
    lab.monitor(NOW).expect(0, "a pass that makes the folders");
    lab.write_in_backup(&hostile, ".default/sh", "#!/bin/busybox sh\nexec /bin/busybox sleep 100000\n");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(lab.backup_dir(&hostile).join(".default/sh"), fs::Permissions::from_mode(0o755)).unwrap();
    lab.write_in_backup(&hostile, "backup.yaml", "File:\n  - - .default/sh\n    - /bin/sh\n");
    for user in [&hostile, &other] {
        lab.book_new(user, NOW, ("1", "2", "0"), "now", "2-hour");
    }
    lab.monitor(NOW).assert_no_panic("the pass with a stalling container");
    let shell = docker_ok(&["exec", &hostile, "busybox", "cat", "/bin/sh"]);
    assert!(shell.contains("sleep 100000"), "the saved /bin/sh was put in place: {shell}");
    for user in [&hostile, &other] {
        assert!(is_running(&inspect_existing(user, "after the pass")), "{user}'s container runs");
        assert!(lab.holds("jobs/using.csv", user, "2026-11-23 10:00:00"), "{user}'s start is recorded");
    }
}

/// A huge sparse file in a saved path: the save stops at the backup quota, says what it left
/// out, keeps the rest, and the container is still removed on time; another student's
/// container starts in the same pass.
#[test]
fn a_huge_sparse_file_in_a_saved_path_is_left_out_and_the_booking_still_ends() {
    let Some(lab) = Lab::on_engine("sparse", &["a", "b"]) else { return };
    let (hostile, other) = (lab.user(0).to_string(), lab.user(1).to_string());
    let text = lab.read("cfg/capability_config.yaml");
    lab.write(
        "cfg/capability_config.yaml",
        &format!("{text}\nmax_custom_capability:\n  {hostile}:\n    backup_space: 1\n"),
    );
    lab.book_new(&hostile, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.monitor(NOW).expect(0, "the pass that starts the booking");
    exec(
        &hostile,
        "busybox mkdir -p /root/.ssh && busybox dd if=/dev/zero of=/root/.ssh/huge bs=1 count=0 seek=50G 2>/dev/null \
         && echo 'export KEPT=1' > /root/.bashrc",
    );
    lab.book_new(&other, LATER, ("1", "2", "0"), "now", "2-hour");

    lab.monitor(LATER).assert_no_panic("the pass that ends the booking");
    assert!(inspect(&hostile).is_none(), "the container is removed on time");
    assert!(lab.holds("jobs/used.csv", &hostile, "2026-11-23 10:00:00"), "the booking is recorded as ended");
    lab.assert_logged("[WARNING] BackupWarning", &[&hostile, "/root/.ssh", "not saved"], "what was left out");
    let saved = lab.backup_dir(&hostile).join(".default");
    assert_eq!(fs::read_to_string(saved.join(".bashrc")).unwrap(), "export KEPT=1\n", "the other entry is saved");
    assert!(!saved.join(".ssh/huge").exists(), "the huge file is not in the backup folder");
    assert!(is_running(&inspect_existing(&other, "the other student")), "the other student's container runs");
}

/// The work quota holds while the booking runs: over it, a warning at every pass; past the
/// grace margin the container stops (files kept), `book restart` gives it a pass to clean up.
#[test]
fn the_work_quota_holds_while_the_booking_runs() {
    let Some(lab) = Lab::on_engine("quota", &["a"]) else { return };
    let user = lab.user(0).to_string();
    let text = lab.read("cfg/capability_config.yaml");
    lab.write("cfg/capability_config.yaml", &format!("{text}\nmax_custom_capability:\n  {user}:\n    work_space: 1\n"));
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "4-hour");
    lab.monitor(NOW).expect(0, "the pass that starts the booking");

    exec(&user, "busybox dd if=/dev/zero of=/root/Work/first bs=1M count=1300 2>/dev/null");
    lab.monitor("2026-11-23 10:30").assert_no_panic("a pass over the quota");
    assert!(is_running(&inspect_existing(&user, "within the grace margin")), "still running within the grace");
    lab.assert_logged("[WARNING] SpaceWarning", &[&user, "work_dir", "while the booking runs"], "warned");

    exec(&user, "busybox dd if=/dev/zero of=/root/Work/second bs=1M count=900 2>/dev/null");
    lab.monitor("2026-11-23 11:00").assert_no_panic("a pass past the grace margin");
    let container: Value = inspect_existing(&user, "past the grace margin");
    assert!(!is_running(&container), "the container is stopped past the grace margin");
    assert!(lab.work_dir(&user).join("second").exists(), "the files are kept");
    lab.monitor("2026-11-23 11:30").assert_no_panic("the next pass");
    assert!(!is_running(&inspect_existing(&user, "the next pass")), "it stays stopped without a restart");

    lab.book_as(&user, &["restart"]).now("2026-11-23 11:30").expect(0, "book restart");
    lab.monitor("2026-11-23 11:30").assert_no_panic("the pass that serves the restart");
    assert!(is_running(&inspect_existing(&user, "after the restart")), "a restart gives the student a pass");
    exec(&user, "busybox rm /root/Work/first /root/Work/second");
    lab.monitor("2026-11-23 12:00").expect(0, "a pass back under the quota");
    assert!(is_running(&inspect_existing(&user, "under the quota")), "under the quota it keeps running");
}

/// The container's own file system is limited where the storage driver can do it; where it
/// cannot, the container still runs and the log says the limit is missing.
#[test]
fn the_writable_layer_is_limited_where_the_driver_can_and_said_where_not() {
    let Some(lab) = Lab::on_engine("layer", &["a"]) else { return };
    lab.write("cfg/containers.yaml", "writable_layer_gb: 5\n");
    let user = lab.user(0).to_string();
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.monitor(NOW).assert_no_panic("the pass that starts the booking");
    let container = inspect_existing(&user, "after the start");
    assert!(is_running(&container), "the container runs either way");
    let limited = container["HostConfig"]["StorageOpt"]["size"].as_str() == Some("5G");
    let warned = !lab.log_lines("[WARNING] StorageWarning", &[&user, "not limited to 5 GB"]).is_empty();
    println!("writable layer limited here: {limited}");
    assert!(limited != warned, "limited ({limited}) or said not to be ({warned}), exactly one:\n{}", lab.log());
}
