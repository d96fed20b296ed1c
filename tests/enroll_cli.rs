//! The command line as an admin meets it: `--help` and `--version` of all four binaries, the
//! ways to name the root, and usage errors.

mod support;

use support::fixtures::copy_fixture;
use support::run::{self, DEAD_DOCKER_HOST, NOW, Run, enroll, run_binary};

#[test]
fn help_and_version_work_for_all_four_binaries() {
    for name in ["book", "monitor", "run-container", "enroll"] {
        let help = run_binary(name, &["--help"]);
        help.assert_no_panic(name);
        assert_eq!(help.code, Some(0), "{name} --help:\n{help}");
        assert!(help.stdout.contains(&format!("Usage: {name}")), "{name} --help:\n{help}");
        assert!(help.stdout.contains("--root"), "{name} --help:\n{help}");
        assert!(
            help.stdout.contains("GPU_BOOKING_ROOT") && help.stdout.contains("GPU_BOOKING_NOW"),
            "{name} --help should document the environment:\n{help}"
        );

        let version = run_binary(name, &["--version"]);
        version.assert_no_panic(name);
        assert_eq!(version.code, Some(0), "{name} --version:\n{version}");
        assert_eq!(version.stdout.trim(), format!("{name} {}", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn enroll_help_lists_check_and_check_has_its_own_help() {
    let help = enroll(&["--help"]);
    assert!(help.stdout.contains("check"), "{help}");
    let check_help = enroll(&["check", "--help"]);
    assert_eq!(check_help.code, Some(0), "{check_help}");
    assert!(check_help.stdout.contains("Usage: enroll check"), "{check_help}");
}

#[test]
fn usage_errors_exit_2_without_a_panic() {
    for args in [&[][..], &["frobnicate"][..], &["check", "--no-such-flag"][..]] {
        let run = enroll(args);
        run.assert_no_panic(&format!("enroll {args:?}"));
        assert_eq!(run.code, Some(2), "enroll {args:?}:\n{run}");
    }
}

fn enroll_check_in(current_dir: &std::path::Path, root_variable: Option<&std::path::Path>) -> Run {
    let check = run::command("enroll").args(["check"]).current_dir(current_dir);
    match root_variable {
        Some(root) => check.env("GPU_BOOKING_ROOT", root.to_str().expect("a UTF-8 temporary path")).run(),
        None => check.run(),
    }
}

#[test]
fn the_root_comes_from_the_flag_the_variable_or_the_current_folder() {
    let root = copy_fixture("upstream");
    let elsewhere = tempfile::tempdir().unwrap();
    let path = root.path().to_str().unwrap();

    // The flag, before or after the subcommand.
    for args in [["--root", path, "check"], ["check", "--root", path]] {
        let run = enroll(&args);
        assert_eq!(run.code, Some(0), "enroll {args:?}:\n{run}");
    }
    // The variable.
    let run = enroll_check_in(elsewhere.path(), Some(root.path()));
    assert_eq!(run.code, Some(0), "GPU_BOOKING_ROOT:\n{run}");
    // The current folder.
    let run = enroll_check_in(root.path(), None);
    assert_eq!(run.code, Some(0), "current folder:\n{run}");
    // A folder that is not a root: an error naming the missing file, not a crash.
    let run = enroll_check_in(elsewhere.path(), None);
    run.assert_no_panic("enroll check in an empty folder");
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stdout.contains("cfg/host_deploy.yaml"), "{run}");
}

#[test]
fn a_mistyped_root_is_an_error_and_creates_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("no-such-root");
    let run = enroll(&["--root", missing.to_str().unwrap(), "check"]);
    run.assert_no_panic("enroll check on a missing root");
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("no-such-root"), "{run}");
    assert!(!missing.exists(), "enroll check created {}", missing.display());
}

/// A reader that stops early (`enroll list | head -1`) ends every binary quietly, as it ends
/// `ls`: no panic, nothing on stderr (Rust ignores SIGPIPE unless told otherwise, and
/// `println!` then panics with "failed printing to stdout: Broken pipe"). `book list --json`
/// is covered in book_cli.rs.
#[test]
fn a_reader_that_stops_early_ends_each_binary_quietly() {
    let root = copy_fixture("campaign");
    let path = root.path().to_str().unwrap();
    for (name, args) in [
        ("enroll", &["--root", path, "list"][..]),
        ("enroll", &["--root", path, "check"][..]),
        ("enroll", &["completions", "bash", "--binary", "book"][..]),
        ("monitor", &["--root", path, "status"][..]),
        ("monitor", &["--root", path, "--dry-run"][..]),
        ("book", &["--root", path, "list", "--timeline"][..]),
        ("run-container", &["--help"][..]),
    ] {
        let (stderr, code) = run::command(name)
            .args(args)
            .now(NOW)
            // `monitor status` asks Docker for the containers' processes: none here.
            .env("DOCKER_HOST", DEAD_DOCKER_HOST)
            .run_with_stdout_closed();
        assert!(stderr.trim().is_empty(), "{name} {args:?} said on a closed pipe:\n{stderr}");
        assert_ne!(code, Some(101), "{name} {args:?}: a panic's exit code");
    }
}
