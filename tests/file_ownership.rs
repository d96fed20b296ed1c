//! On a server, `monitor` and `enroll` run as root while `book` runs as the shared `booking`
//! account, all on the same `cfg/` and `jobs/`. Every file root rewrites or creates there must
//! stay owned by whoever owns it (or its folder), or the next `book` fails with "Permission
//! denied". Only root can hand files to another owner, so these tests need root; as anyone
//! else they print why they skip.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use support::lab::Lab;
use support::run::{Run, new_booking_args};

/// `nobody`/`nogroup` on Debian: an owner that is surely not the one running the test.
const OTHER_OWNER: u32 = 65534;

fn running_as_root() -> bool {
    // The owner of /proc/self is the process's effective user.
    fs::metadata("/proc/self").map(|metadata| metadata.uid() == 0).unwrap_or(false)
}

fn give_tree_to(path: &Path, owner: u32) {
    std::os::unix::fs::lchown(path, Some(owner), Some(owner)).unwrap();
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            give_tree_to(&entry.unwrap().path(), owner);
        }
    }
}

/// `NAME --root ROOT ARGS…` with `input` on standard input.
fn run_with_input(name: &str, lab: &Lab, args: &[&str], input: &str) -> Run {
    lab.command(name, args).stdin(input).run()
}

/// erin's `book ARGS…`, with her password.
fn as_erin(lab: &Lab, args: &[&str]) -> Run {
    lab.book(args).login("erin", "tulip-42").run()
}

/// erin's `book new --yes` for 1 CPU, 1 GB and no GPU from `start` to `end`.
fn erin_books(lab: &Lab, start: &str, end: &str) -> Run {
    let mut args = new_booking_args("1", "1", "0", start, end);
    args.push("--yes");
    as_erin(lab, &args)
}

/// Every file under `cfg/` and `jobs/` whose owner is not `owner`, with its owner.
fn files_not_owned_by(root: &Path, owner: u32) -> Vec<String> {
    let mut wrong = Vec::new();
    for folder in ["cfg", "cfg/users", "jobs"] {
        for entry in fs::read_dir(root.join(folder)).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_file() && (metadata.uid(), metadata.gid()) != (owner, owner) {
                wrong.push(format!(
                    "{folder}/{} ({}:{})",
                    entry.file_name().to_string_lossy(),
                    metadata.uid(),
                    metadata.gid()
                ));
            }
        }
    }
    wrong
}

#[test]
fn files_root_rewrites_or_creates_keep_the_owner_of_the_state_folders() {
    if !running_as_root() {
        eprintln!("skipped: only root can give files to another owner, and this test runs as a normal user");
        return;
    }
    let lab = Lab::shipped();
    let root = lab.root();
    fs::set_permissions(root.join("cfg/users/users_config.yaml"), fs::Permissions::from_mode(0o600)).unwrap();
    give_tree_to(root, OTHER_OWNER);

    // As root, the way an admin and the monitor's side of the tools would write: a new user
    // (users_config.yaml and capability_config.yaml rewritten), a booking that starts now
    // (booking.csv created, monitor_exec appended to, the lock file created), a cancellation
    // of a future one (used.csv created).
    let added = run_with_input("enroll", &lab, &["add", "erin", "--password-stdin"], "tulip-42\n");
    added.assert_no_panic("enroll add");
    assert_eq!(added.code, Some(0), "enroll add:\n{added}");
    for (start, end) in [("now", "1-day"), ("2-day", "3-day")] {
        let booked = erin_books(&lab, start, end);
        assert_eq!(booked.code, Some(0), "book new --start {start}:\n{booked}");
    }
    let cancelled = as_erin(&lab, &["cancel", "--start", "2-day"]);
    assert_eq!(cancelled.code, Some(0), "book cancel:\n{cancelled}");

    for written in
        ["jobs/booking.csv", "jobs/used.csv", "jobs/monitor_exec", "jobs/.lock", "cfg/users/users_config.yaml"]
    {
        assert!(root.join(written).is_file(), "{written} should have been written");
    }
    assert_eq!(
        files_not_owned_by(root, OTHER_OWNER),
        Vec::<String>::new(),
        "files root left behind with its own owner"
    );
    let mode = fs::metadata(root.join("cfg/users/users_config.yaml")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "users_config.yaml holds password hashes and must stay private");
}

/// `users_config.yaml` holds every password hash. Whatever its mode was (the original's file
/// and a fresh checkout are 0644), every tool that rewrites it leaves it 0600, still owned by
/// whoever owned it (root can check the owner; anyone can check the mode).
#[test]
fn every_tool_that_writes_users_config_leaves_it_owner_only() {
    let lab = Lab::shipped();
    let root = lab.root();
    let users = root.join("cfg/users/users_config.yaml");
    let as_root = running_as_root();
    let owner = if as_root { OTHER_OWNER } else { fs::metadata(&users).unwrap().uid() };
    let mut writers: Vec<(&str, Vec<&str>, String)> = vec![
        ("enroll", vec!["add", "erin", "--password-stdin"], "tulip-42\n".into()),
        // The shipped login.yaml lets demo choose a password at the first login.
        ("book", vec!["--user", "demo", "--password-stdin", "list", "--mine"], "plum-tree-9\n".into()),
        ("book", vec!["--user", "erin", "--password-stdin", "options", "--forward-port", "10999"], "tulip-42\n".into()),
        (
            "book",
            vec!["--user", "erin", "--password-stdin", "options", "--change-password"],
            "tulip-42\nbirch-erin-7\n".into(),
        ),
        ("enroll", vec!["passwd", "erin", "--password-stdin"], "cedar-erin-5\n".into()),
        ("enroll", vec!["remove", "erin"], String::new()),
    ];
    // A legacy plain-text password is replaced by a hash at the next login: a write too.
    writers.push(("book", vec!["--user", "demo", "--password-stdin", "status"], "legacy-demo-3\n".into()));
    for (name, args, input) in &writers {
        if args.contains(&"status") {
            let text = fs::read_to_string(&users).unwrap();
            let hash = text.lines().find_map(|line| line.trim().strip_prefix("password: ")).unwrap().to_string();
            fs::write(&users, text.replacen(&hash, "legacy-demo-3", 1)).unwrap();
        }
        fs::set_permissions(&users, fs::Permissions::from_mode(0o644)).unwrap();
        if as_root {
            std::os::unix::fs::chown(&users, Some(OTHER_OWNER), Some(OTHER_OWNER)).unwrap();
        }
        let before = fs::read(&users).unwrap();
        let run = run_with_input(name, &lab, args, input);
        run.assert_no_panic(&format!("{name} {args:?}"));
        assert_eq!(run.code, Some(0), "{name} {args:?}:\n{run}");
        assert_ne!(fs::read(&users).unwrap(), before, "{name} {args:?} should have rewritten users_config.yaml");
        let metadata = fs::metadata(&users).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "after {name} {args:?}");
        assert_eq!(metadata.uid(), owner, "after {name} {args:?}: the owner is kept");
    }
    assert!(!fs::read_to_string(&users).unwrap().contains("legacy-demo-3"));
}

#[test]
fn root_never_writes_through_a_link_the_state_folders_owner_planted() {
    if !running_as_root() {
        eprintln!(
            "skipped: the point is root writing into a folder another account owns, and this test runs as a normal user"
        );
        return;
    }
    let lab = Lab::shipped();
    let root = lab.root();
    let added = run_with_input("enroll", &lab, &["add", "erin", "--password-stdin"], "tulip-42\n");
    assert_eq!(added.code, Some(0), "enroll add:\n{added}");
    let booked = erin_books(&lab, "2-day", "3-day");
    assert_eq!(booked.code, Some(0), "book new:\n{booked}");
    give_tree_to(root, OTHER_OWNER);
    // A root-owned file outside the root, as /etc/passwd would be.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("passwd");
    fs::write(&target, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    // What the owner of jobs/ could do: put links where root writes.
    fs::remove_file(root.join("jobs/used.csv")).unwrap();
    std::os::unix::fs::symlink(&target, root.join("jobs/used.csv")).unwrap();
    std::os::unix::fs::lchown(root.join("jobs/used.csv"), Some(OTHER_OWNER), Some(OTHER_OWNER)).unwrap();
    std::os::unix::fs::symlink(&target, root.join("jobs/.booking.csv.tmp")).unwrap();
    let cancelled = as_erin(&lab, &["cancel", "--start", "2-day"]);
    cancelled.assert_no_panic("book cancel as root");
    assert_eq!(cancelled.code, Some(1), "a link in place of used.csv must be refused:\n{cancelled}");
    assert!(cancelled.stderr.contains("used.csv") && cancelled.stderr.contains("symbolic link"), "{cancelled}");
    fs::remove_file(root.join("jobs/used.csv")).unwrap();
    let cancelled = as_erin(&lab, &["cancel", "--start", "2-day"]);
    assert_eq!(cancelled.code, Some(0), "book cancel once the link is gone:\n{cancelled}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "root:x:0:0:root:/root:/bin/bash\n", "root wrote through a link");
    assert_eq!(files_not_owned_by(root, OTHER_OWNER), Vec::<String>::new(), "files root left with its own owner");
}
