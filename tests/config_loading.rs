//! The original system's files load as they are: its example root (config and a CSV its
//! `book` wrote), its `capability_config.yaml` template, and an empty or missing
//! `users_config.yaml`. Checked twice: `enroll check` must accept the root, and the library
//! must read the values a user would look for.

mod support;

use std::fs;
use std::path::Path;

use chrono::NaiveDateTime;
use gpu_booking::model::{Booking, UserId, UserLimits};
use gpu_booking::store::config::Config;
use gpu_booking::store::lock::SharedLock;
use gpu_booking::store::root::Root;
use gpu_booking::store::schedule::{self, ActiveFile};

use support::fixtures::copy_fixture;
use support::run::enroll_check;

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("a valid user id")
}

fn time(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("a test time")
}

fn load(dir: &Path) -> Config {
    let lock = SharedLock::acquire(&Root::new(dir)).expect("take the shared lock");
    Config::load(&lock).unwrap_or_else(|error| panic!("the configuration should load: {error}"))
}

fn assert_check_passes(dir: &Path) {
    let run = enroll_check(dir);
    run.assert_no_panic("enroll check");
    assert_eq!(run.code, Some(0), "enroll check should accept the root:\n{run}");
    assert!(run.stdout.contains("ok: "), "no ok line:\n{run}");
}

#[test]
fn enroll_check_accepts_the_originals_example_root() {
    let root = copy_fixture("upstream");
    assert_check_passes(root.path());
}

#[test]
fn the_originals_example_configuration_loads_with_the_right_values() {
    let root = copy_fixture("upstream");
    let config = load(root.path());

    // host_deploy.yaml: paths relative to the root, absolute volume folders kept.
    let deploy = &config.deploy;
    assert_eq!(deploy.volume_work_dir, Path::new("/mnt/Users"));
    assert_eq!(deploy.volume_dataset_dir, Path::new("/mnt/Dataset"));
    assert_eq!(deploy.volume_backup_dir, Path::new("/mnt/Backup"));
    assert_eq!(deploy.users_config_yaml, root.path().join("cfg/example/users_config.yaml"));
    assert_eq!(deploy.capability_config_yaml, root.path().join("cfg/example/capability_config.yaml"));
    assert_eq!(deploy.images.len(), 10);
    assert_eq!(deploy.default_image(), "rober5566a/aivc-server:latest");

    // capability_config.yaml: the host, with `ram + swap_size` and
    // `ram / (ram + swap_size)` evaluated.
    let max = &config.capability.max;
    assert_eq!(max.cpus, 62.0);
    assert_eq!(max.ram, 30.0);
    assert_eq!(max.swap_size, 10.0);
    assert_eq!(max.gpus, 4);
    assert_eq!(max.memory, 40.0);
    assert_eq!(max.shm_rate, 0.75);
    assert_eq!(max.backup_space, Some(200.0));
    assert_eq!(max.work_space, Some(500.0));
    assert_eq!(config.capability.allowed_users, ["m11007s05", "m11007s05-1", "m11007s05-2", "m11007s05-3"].map(user));

    // Nobody here has backup or work space of their own: the default's 50 and 200 GB.
    let limits =
        |cpus, memory, gpus| Some(UserLimits { cpus, memory, gpus, backup_space: Some(50.0), work_space: Some(200.0) });
    // `max` means the host's value.
    assert_eq!(config.limits_for(&user("m11007s05")), limits(62.0, 40.0, 4));
    // No `gpus` key: the default's 1.
    assert_eq!(config.limits_for(&user("m11007s05-1")), limits(62.0, 40.0, 1));
    // Numbers of their own; 64 GB is more than the host has, so the host's 40 applies.
    assert_eq!(config.limits_for(&user("m11007s05-2")), limits(12.0, 40.0, 4));
    // No entry of their own: the defaults.
    assert_eq!(config.limits_for(&user("m11007s05-3")), limits(8.0, 32.0, 1));
    assert_eq!(config.limits_for(&user("stranger")), None);
    // The over-the-host memory is a warning, not an error, and it names its line.
    assert!(
        config.warnings.iter().any(|warning| warning
            .to_string()
            .starts_with("cfg/example/capability_config.yaml:40: warning: max_custom_capability.m11007s05-2.memory")),
        "{:?}",
        config.warnings
    );

    // users_config.yaml: the original's plain-text passwords and null image/command.
    let users = &config.users.users;
    assert_eq!(users.len(), 2);
    let first = &users[&user("m11007s05")];
    assert_eq!(first.forward_port, 10001);
    assert_eq!(first.password.as_deref(), Some("0000"));
    assert!(!first.password_is_hashed());
    assert_eq!(first.image, None);
    assert_eq!(first.extra_command, None);
    assert_eq!(first.volume_work_dir.as_deref(), Some(Path::new("/mnt/Users/m11007s05")));
    assert_eq!(first.volume_backup_dir.as_deref(), Some(Path::new("/mnt/Backup/m11007s05")));
    let second = &users[&user("m11007s05-1")];
    assert_eq!(second.forward_port, 10002);
    assert_eq!(second.password.as_deref(), Some("0000"));
    assert!(!second.password_is_hashed());
    assert_eq!(second.image.as_deref(), Some("rober5566a/aivc-server:cuda11.8.0-cudnn8-devel-ubuntu20.04"));
    assert_eq!(second.extra_command, None);
}

#[test]
fn the_csv_written_by_the_original_gives_its_two_bookings() {
    let root = copy_fixture("upstream");
    let state = Root::new(root.path());
    let lock = SharedLock::acquire(&state).unwrap();
    let bookings = schedule::read(&lock, ActiveFile::Booking).unwrap();
    assert_eq!(
        bookings,
        vec![
            Booking {
                start: time("2026-11-24 09:30"),
                end: time("2026-11-25 09:30"),
                user_id: user("m11007s05"),
                cpus: 4.5,
                memory: 16,
                gpus: vec![0, 1],
                forward_port: 10001,
                image: None,
                extra_command: None,
            },
            Booking {
                start: time("2026-11-24 12:30"),
                end: time("2026-11-25 12:30"),
                user_id: user("m11007s05-1"),
                cpus: 4.5,
                memory: 16,
                gpus: vec![3],
                forward_port: 10002,
                image: Some("rober5566a/aivc-server:cuda11.8.0-cudnn8-devel-ubuntu20.04".into()),
                extra_command: Some("python3 -m http.server 8888".into()),
            },
        ]
    );
    // The other two files hold only the header.
    assert_eq!(schedule::read(&lock, ActiveFile::Using).unwrap(), vec![]);
    let (history, problems) = schedule::read_rows(&lock, &schedule::history_path(&state)).unwrap();
    assert!(history.is_empty() && problems.is_empty());
}

#[test]
fn the_originals_template_loads_with_its_blank_allow_entry_and_empty_custom_section() {
    let root = copy_fixture("template");
    assert_check_passes(root.path());

    let config = load(root.path());
    // `allow_userIDs:` holds one `-  #<user id>` line: a blank entry, skipped.
    assert!(config.capability.allowed_users.is_empty());
    // `max_custom_capability:` holds only comments: nobody has limits of their own.
    assert_eq!(config.capability.users_with_custom_limits().count(), 0);
    assert_eq!(config.capability.max.gpus, 1);
    assert_eq!(config.capability.max.memory, 40.0);
    assert_eq!(config.capability.max.shm_rate, 0.75);
    assert!(config.users.users.is_empty());
    // The template's schedule is a header with no rows.
    let lock = SharedLock::acquire(&Root::new(root.path())).unwrap();
    assert_eq!(schedule::read(&lock, ActiveFile::Booking).unwrap(), vec![]);
}

#[test]
fn an_empty_users_config_is_no_users() {
    let root = copy_fixture("upstream");
    fs::write(root.path().join("cfg/example/users_config.yaml"), "").unwrap();
    assert!(load(root.path()).users.users.is_empty());
    assert_check_passes(root.path());

    // Only comments and blank lines: also empty.
    fs::write(root.path().join("cfg/example/users_config.yaml"), "# nobody yet\n\n").unwrap();
    assert!(load(root.path()).users.users.is_empty());
    assert_check_passes(root.path());
}

#[test]
fn a_missing_users_config_is_no_users() {
    let root = copy_fixture("upstream");
    fs::remove_file(root.path().join("cfg/example/users_config.yaml")).unwrap();
    assert!(load(root.path()).users.users.is_empty());
    assert_check_passes(root.path());
    // Loading and checking read only: the file is not created behind the admin's back.
    assert!(!root.path().join("cfg/example/users_config.yaml").exists());
}
