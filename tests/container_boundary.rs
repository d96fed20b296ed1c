//! Attacks on the container boundary, run as a hostile student would against the real
//! Docker engine: root inside their container, they control every byte of `/root/Work` and
//! `/root/Backup` at every moment. Nothing they do may read, write or mount a host file
//! outside their own folders, or leave a setuid program or device file that works on the host.
//!
//! Each test fails on the release before the backup redesign (saved paths bind-mounted back,
//! the save unpacked by path while the container ran, folders mounted without nosuid,nodev).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::docker::*;
use support::lab::*;
use support::run::*;

/// A folder outside every user folder, with a file only the host should see.
fn plant_host_secret(lab: &Lab) -> std::path::PathBuf {
    let secret = lab.path("host-only");
    fs::create_dir_all(&secret).expect("create the host folder");
    fs::write(secret.join("secret.txt"), "host only\n").expect("write the host file");
    secret
}

fn only_own_folders_mounted(lab: &Lab, user: &str) {
    let container = inspect_existing(user, "the container");
    let mounted = binds(&container);
    let mut sources: Vec<String> = mounted.iter().map(|(host, _, _)| host.clone()).collect();
    sources.sort();
    let mut expected = vec![
        lab.work_dir(user).display().to_string(),
        lab.backup_dir(user).display().to_string(),
        lab.dataset_dir().display().to_string(),
    ];
    expected.sort();
    assert_eq!(sources, expected, "only the user's own folders are mounted: {mounted:?}");
}

/// Attack 1: a saved path's source replaced by a link to a host folder, then a restart (by
/// Docker's restart policy, by `book restart`, and at the next booking).
#[test]
fn a_link_planted_in_the_backup_folder_never_mounts_a_host_folder() {
    let Some((lab, user)) = Lab::running("plant") else { return };
    let secret = plant_host_secret(&lab);
    let script = format!(
        "busybox rm -rf /root/Backup/.default/.ssh; busybox mkdir -p /root/Backup/.default; \
         busybox ln -s {0} /root/Backup/.default/.ssh; busybox ln -sf {0}/secret.txt /root/Backup/.default/.bashrc",
        secret.display()
    );
    exec(&user, &script);

    docker_ok(&["restart", "-t", "1", &user]);
    lab.book_as(&user, &["restart"]).expect(0, "book restart");
    lab.monitor(NOW).expect(0, "the pass that serves the restart");
    only_own_folders_mounted(&lab, &user);
    let seen = exec(&user, "busybox cat /root/.ssh/secret.txt /root/.bashrc 2>/dev/null; true");
    assert!(!seen.contains("host only"), "the host file is visible in the container: {seen}");

    // The next booking restores the saved paths: the links are refused, never followed.
    lab.monitor("2026-11-23 12:00").expect(0, "the pass after the end");
    lab.book_new(&user, "2026-11-23 12:00", ("1", "2", "0"), "now", "2-hour");
    lab.monitor("2026-11-23 12:00").expect(0, "the pass that starts the next booking");
    only_own_folders_mounted(&lab, &user);
    let seen = exec(&user, "busybox cat /root/.ssh/secret.txt /root/.bashrc 2>/dev/null; true");
    assert!(!seen.contains("host only"), "the host file was restored into the container: {seen}");
    assert_eq!(fs::read_to_string(secret.join("secret.txt")).unwrap(), "host only\n", "the host file is untouched");
}

/// Attack 2: while the booking ends, the container keeps swapping `.default` for a link to
/// the deployment's `cfg/`; links are also planted at the saved names.
#[test]
fn links_swapped_in_around_the_end_of_booking_save_write_nothing_outside() {
    let Some((lab, user)) = Lab::running("swap") else { return };
    let secret = plant_host_secret(&lab);
    let cfg = lab.path("cfg");
    let cfg_before: Vec<(String, Vec<u8>)> = fs::read_dir(&cfg)
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().is_file())
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), fs::read(entry.path()).unwrap()))
        .collect();
    exec(&user, "busybox mkdir -p /root/.ssh && echo 'alias evil=1' > /root/.bashrc && echo key > /root/.ssh/k");
    // The swap loop runs in the container until it is stopped.
    let swapper = format!(
        "cd /root/Backup; while :; do busybox rm -rf .default; busybox ln -s {cfg} .default; \
         busybox rm -f .default; busybox mkdir -p .default; busybox ln -sf {secret}/secret.txt .default/.bashrc; \
         busybox ln -sfn {secret} .default/.ssh; done",
        cfg = cfg.display(),
        secret = secret.display()
    );
    docker_ok(&["exec", "-d", &user, "sh", "-c", &swapper]);

    lab.monitor("2026-11-23 12:00").assert_no_panic("the pass that ends the booking");
    assert!(inspect(&user).is_none(), "the container is gone at the end");
    for (name, bytes) in &cfg_before {
        assert_eq!(&fs::read(cfg.join(name)).unwrap(), bytes, "cfg/{name} was changed by the save");
    }
    let names: Vec<String> =
        fs::read_dir(&cfg).unwrap().flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|name| name == ".bashrc" || name == ".ssh"), "the save wrote into cfg/: {names:?}");
    assert_eq!(fs::read_to_string(secret.join("secret.txt")).unwrap(), "host only\n", "the host file is untouched");
    assert_eq!(fs::read_dir(&secret).unwrap().count(), 1, "nothing was written into the host folder");
}

/// Attack 3: setuid-root programs and device files made in the container.
#[test]
fn a_setuid_program_or_device_made_in_the_container_gains_nothing_on_the_host() {
    let Some((lab, user)) = Lab::running("suid") else { return };
    // A program that honours setuid (busybox drops it), put where the student can reach it.
    fs::copy("/usr/bin/id", lab.work_dir(&user).join("id")).expect("copy id into the work folder");
    exec(
        &user,
        "chmod 4755 /root/Work/id && busybox mkdir -p /root/.ssh && busybox cp /root/Work/id /root/.ssh/id && \
         chmod 4755 /root/.ssh/id && chmod 755 /root/Work /root/Backup",
    );
    // No device file can be made in the container (no MKNOD capability)…
    let made = docker(&["exec", &user, "busybox", "mknod", "/root/Work/disk", "b", "7", "0"]);
    assert!(!made.status.success(), "mknod works in the container: {made:?}");
    assert!(!lab.work_dir(&user).join("disk").exists());
    // …and one that gets there another way opens neither on the host nor in the container.
    let made = Command::new("mknod").arg(lab.work_dir(&user).join("null")).args(["c", "1", "3"]).status().unwrap();
    assert!(made.success());
    fs::set_permissions(lab.work_dir(&user).join("null"), fs::Permissions::from_mode(0o666)).unwrap();
    let inside = docker(&["exec", &user, "sh", "-c", "echo x > /root/Work/null"]);
    assert!(!inside.status.success(), "the device opens in the container: {inside:?}");
    for folder in ["/root/Work", "/root/Backup"] {
        let line = exec(&user, &format!("grep ' {folder} ' /proc/mounts"));
        assert!(line.contains("nosuid") && line.contains("nodev"), "{folder} is mounted without nosuid,nodev: {line}");
    }
    // Every folder on the way is open to other users, so only the mount protects the host.
    for folder in [lab.root().to_path_buf(), lab.path("volumes"), lab.path("volumes/work")] {
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).expect("open the folder to others");
    }
    let program = lab.work_dir(&user).join("id");
    assert_ne!(fs::metadata(&program).unwrap().permissions().mode() & 0o4000, 0, "the bit was set in the container");
    let as_nobody = |command: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", command])
            .output()
            .expect("run setpriv")
    };
    let output = as_nobody(&format!("{} -u", program.display()));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "65534",
        "an unprivileged user running the setuid program stays unprivileged: {output:?}"
    );
    let device = as_nobody(&format!("echo x > {}", lab.work_dir(&user).join("null").display()));
    assert!(!device.status.success(), "the device file made in the container opens on the host: {device:?}");

    lab.monitor("2026-11-23 12:00").expect(0, "the pass after the end");
    let saved = lab.backup_dir(&user).join(".default/.ssh/id");
    let mode = fs::metadata(&saved).unwrap_or_else(|error| panic!("{}: {error}", saved.display())).permissions().mode();
    assert_eq!(mode & 0o7000, 0, "the saved copy keeps no setuid bit: {mode:o}");
}

/// Attack 4: a `:` in a container path would pass into Docker's bind syntax as options.
#[test]
fn a_container_path_that_is_not_clean_is_refused() {
    let Some(lab) = Lab::on_engine("colon", &["a"]) else { return };
    let user = lab.user(0).to_string();
    lab.monitor(NOW).expect(0, "a pass that makes nothing");
    lab.write_in_backup(&user, ".default/ok/file", "x");
    lab.write_in_backup(
        &user,
        "backup.yaml",
        "Dir:\n  - - .default/ok\n    - /root/ok:ro\n  - - .default/ok\n    - /root/../etc\n",
    );
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.monitor(NOW).expect(0, "the pass that starts the booking");
    only_own_folders_mounted(&lab, &user);
    for path in ["/root/ok:ro", "/root/../etc"] {
        lab.assert_logged("[WARNING] BackupPathWarning", &[&user, path], "an unclean container path is refused");
    }
}

/// The booking account writes `users_config.yaml`: a folder pointed outside the volume
/// parents, or a user folder replaced by a link, is never mounted.
#[test]
fn user_folders_outside_the_volume_parents_are_refused() {
    let Some(lab) = Lab::on_engine("outside", &["a", "b"]) else { return };
    let (first, second) = (lab.user(0).to_string(), lab.user(1).to_string());
    let secret = plant_host_secret(&lab);
    let users = lab.read("cfg/users_config.yaml");
    let pointed = users.replacen(
        &format!("volume_work_dir: ./volumes/work/{first}"),
        &format!("volume_work_dir: {}", secret.display()),
        1,
    );
    assert_ne!(pointed, users, "the entry names its work folder:\n{users}");
    lab.write("cfg/users_config.yaml", &pointed);
    fs::create_dir_all(lab.path("volumes/work")).unwrap();
    std::os::unix::fs::symlink(&secret, lab.work_dir(&second)).expect("plant a link as the second user's folder");
    lab.book_new(&first, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.book_new(&second, NOW, ("1", "2", "0"), "now", "2-hour");

    lab.monitor(NOW).expect_failure("a pass with hostile folders");
    for user in [&first, &second] {
        assert!(inspect(user).is_none(), "{user}'s container was started");
        assert!(lab.holds("jobs/booking.csv", user, "2026-11-23 10:00:00"), "{user}'s booking is kept for a retry");
        lab.assert_logged("[ERROR] VolumeError", &[user], "the folder is refused");
    }
    lab.assert_logged("[ERROR] VolumeError", &[&first, "is not inside"], "outside the parent");
    lab.assert_logged("[ERROR] VolumeError", &[&second, "not followed"], "a link is not followed");
    assert_eq!(fs::read_dir(&secret).unwrap().count(), 1, "nothing was created in the host folder");
}

/// Without `nosuid,nodev` on the volumes, the monitor starts nothing and says how to fix it.
#[test]
fn folders_on_a_mount_that_honours_setuid_are_refused() {
    let Some(lab) = Lab::on_engine("nosuid", &["a"]) else { return };
    let user = lab.user(0).to_string();
    let unmounted = Command::new("umount").arg(lab.path("volumes")).status().expect("run umount");
    assert!(unmounted.success(), "unmount the test's private volumes mount");
    lab.book_new(&user, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.monitor(NOW).expect_failure("a pass on a plain mount");
    assert!(inspect(&user).is_none(), "the container was started");
    lab.assert_logged("[ERROR] VolumeError", &[&user, "nosuid,nodev"], "the reason and the fix");
}

/// `backup.yaml` itself is in the user's hands: a link there is neither read nor written.
#[test]
fn a_backup_list_planted_as_a_link_is_neither_read_nor_written_through() {
    let Some(lab) = Lab::on_engine("listlink", &["a", "b"]) else { return };
    let (first, second) = (lab.user(0).to_string(), lab.user(1).to_string());
    lab.monitor(NOW).expect(0, "a pass that makes nothing");
    let secret = plant_host_secret(&lab);
    lab.link_in_backup(&first, "backup.yaml", &secret.join("secret.txt"));
    // A dangling link where the template would be copied to.
    let target = lab.path("written-through");
    lab.link_in_backup(&second, "backup.yaml", &target);
    lab.book_new(&first, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.book_new(&second, NOW, ("1", "2", "0"), "now", "2-hour");
    lab.monitor(NOW).assert_no_panic("a pass with planted lists");
    assert!(!lab.log().contains("host only"), "the host file's text reached the log:\n{}", lab.log());
    lab.assert_logged("[WARNING] BackupPathWarning", &[&first, "not followed"], "the link is refused");
    assert!(!Path::new(&target).exists(), "the template was written through the dangling link");
    assert!(is_running(&inspect_existing(&first, "the container starts anyway")));
}
