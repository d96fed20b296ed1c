//! Running the real binaries the way a script or the admin would: no terminal, the clock
//! fixed by `GPU_BOOKING_NOW`, none of the environment that would redirect them, a neutral
//! working folder, and a time limit, so that a binary that hangs fails its test rather than
//! the whole run.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::snapshot::{assert_unchanged, snapshot};

/// Monday 10:00, on a slot boundary: the clock of most tests.
pub const NOW: &str = "2026-11-23 10:00";

/// A Docker engine address where there is none, for the commands that would look for
/// containers.
pub const DEAD_DOCKER_HOST: &str = "unix:///nonexistent/docker.sock";

/// How long one run may take before it counts as a hang (a FIFO read without O_NONBLOCK, a
/// prompt waiting on a terminal that is not there).
pub const TIME_LIMIT: Duration = Duration::from_secs(180);

/// The environment variables that would make a run depend on where the tests run.
const REDIRECTING: [&str; 5] =
    ["GPU_BOOKING_ROOT", "GPU_BOOKING_NOW", "SSH_ORIGINAL_COMMAND", "SSH_CLIENT", "RUST_BACKTRACE"];

/// The path of one of the package's binaries, built by cargo for the integration tests.
pub fn binary(name: &str) -> PathBuf {
    match name {
        "book" => PathBuf::from(env!("CARGO_BIN_EXE_book")),
        "monitor" => PathBuf::from(env!("CARGO_BIN_EXE_monitor")),
        "run-container" => PathBuf::from(env!("CARGO_BIN_EXE_run-container")),
        "enroll" => PathBuf::from(env!("CARGO_BIN_EXE_enroll")),
        other => panic!("no binary named {other}"),
    }
}

/// Clears what would redirect `command`, sets the clock to `now` (`None`: no clock variable)
/// and runs it from the temporary folder.
pub fn hermetic(command: &mut Command, now: Option<&str>) {
    for name in REDIRECTING {
        command.env_remove(name);
    }
    if let Some(now) = now {
        command.env("GPU_BOOKING_NOW", now);
    }
    command.env("NO_COLOR", "1").current_dir(std::env::temp_dir());
}

/// Runs `command`, set up by [`hermetic`], with the clock at `now` and `stdin` (if any) on
/// standard input, killed after [`TIME_LIMIT`]. No checks: a run killed on purpose (by
/// `strace`, say) comes back with `code: None`.
pub fn run_at(mut command: Command, now: &str, stdin: Option<&str>) -> Run {
    hermetic(&mut command, Some(now));
    run_limited(command, stdin.unwrap_or_default(), TIME_LIMIT)
}

/// Runs `command` as it is set up, with `input` on standard input; a run still going after
/// `limit` is killed and comes back with `code: None` and a note on stderr, so a binary that
/// hangs fails its test rather than the whole run.
pub fn run_limited(mut command: Command, input: &str, limit: Duration) -> Run {
    let shown = shown(&command);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("run {shown}: {error}"));
    // A run refused before it reads its input closes the pipe early; that is its answer, not
    // a failure. Dropping the pipe closes it: the binary reads to its end.
    let _ = child.stdin.take().expect("stdin is piped").write_all(input.as_bytes());
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    // Waiting in another thread reads both pipes to their ends, so a long output cannot block
    // the child, and lets this one stop waiting at the limit.
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let (output, timed_out) = match receiver.recv_timeout(limit) {
        Ok(output) => (output, false),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            (receiver.recv().expect("the waiting thread reports"), true)
        }
    };
    let output = output.unwrap_or_else(|error| panic!("wait for {shown}: {error}"));
    let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if timed_out {
        stderr.push_str(&format!("\n[still running after {limit:?}: killed]\n"));
    }
    Run {
        command: shown,
        code: if timed_out { None } else { output.status.code() },
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    }
}

fn shown(command: &Command) -> String {
    let program = Path::new(command.get_program()).file_name().unwrap_or(command.get_program()).to_string_lossy();
    let args: Vec<String> = command.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
    format!("{program} {}", args.join(" "))
}

/// `book new` for `cpus`, `memory` (GB) and `gpus` from `start` to `end`; a test adds the
/// flags it is about (`--yes`, `--json`, `--image`…).
pub fn new_booking_args<'a>(
    cpus: &'a str,
    memory: &'a str,
    gpus: &'a str,
    start: &'a str,
    end: &'a str,
) -> Vec<&'a str> {
    vec!["new", "--cpus", cpus, "--memory", memory, "--gpus", gpus, "--start", start, "--end", end]
}

// ---- one run, built up before it runs -----------------------------------------------------

/// One run of a binary: `NAME [--root ROOT] [--user USER --password-stdin] ARGS…`.
pub struct Invocation {
    name: String,
    root: Option<PathBuf>,
    login: Vec<String>,
    args: Vec<OsString>,
    stdin: String,
    now: Option<String>,
    envs: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
    limit: Duration,
}

/// A run of the binary `name`, with no clock, nothing on standard input and no arguments yet.
pub fn command(name: &str) -> Invocation {
    Invocation {
        name: name.to_string(),
        root: None,
        login: Vec::new(),
        args: Vec::new(),
        stdin: String::new(),
        now: None,
        envs: Vec::new(),
        current_dir: None,
        limit: TIME_LIMIT,
    }
}

impl Invocation {
    pub fn root(mut self, root: &Path) -> Self {
        self.root = Some(root.to_path_buf());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|arg| arg.as_ref().to_os_string()));
        self
    }

    /// Logs in as `user`, with `password` on the first line of standard input.
    pub fn login(mut self, user: &str, password: &str) -> Self {
        self.login = vec!["--user".into(), user.into(), "--password-stdin".into()];
        self.stdin = format!("{password}\n");
        self
    }

    /// Standard input, in place of what [`Invocation::login`] set.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = text.to_string();
        self
    }

    pub fn now(mut self, now: &str) -> Self {
        self.now = Some(now.to_string());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.envs.push((name.to_string(), value.to_string()));
        self
    }

    /// The working folder, in place of the temporary folder.
    pub fn current_dir(mut self, folder: &Path) -> Self {
        self.current_dir = Some(folder.to_path_buf());
        self
    }

    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// The command as it would run, and its standard input, for a test that starts it
    /// itself (processes that race, a pipe closed early).
    pub fn into_command(self) -> (Command, String) {
        let mut command = Command::new(binary(&self.name));
        hermetic(&mut command, self.now.as_deref());
        if let Some(root) = &self.root {
            command.arg("--root").arg(root);
        }
        command.args(&self.login).args(&self.args);
        for (name, value) in &self.envs {
            command.env(name, value);
        }
        if let Some(folder) = &self.current_dir {
            command.current_dir(folder);
        }
        (command, self.stdin)
    }

    /// Runs it without judging the outcome (a campaign counts what went wrong itself).
    pub fn output(self) -> Run {
        let limit = self.limit;
        let (command, stdin) = self.into_command();
        run_limited(command, &stdin, limit)
    }

    /// Runs it; a panic, a signal or a hang fails the test.
    pub fn run(self) -> Run {
        let run = self.output();
        run.assert_no_panic(&run.command);
        run
    }

    /// Runs it and asserts the exit code.
    pub fn expect(self, code: i32, context: &str) -> Run {
        self.run().expect(code, context)
    }

    /// Runs it, asserts the exit code, and that nothing under its root changed: what a
    /// refused command, a usage error or a failed login must leave behind.
    pub fn expect_no_change(self, code: i32, context: &str) -> Run {
        let root = self.root.clone().expect("a run on a root");
        let before = snapshot(&root);
        let run = self.expect(code, context);
        assert_unchanged(&before, &snapshot(&root), context);
        run
    }

    /// Runs it with standard output closed before the binary writes, as `… | head -c0` would;
    /// returns what it wrote on stderr and its exit code.
    pub fn run_with_stdout_closed(self) -> (String, Option<i32>) {
        let (mut command, _) = self.into_command();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait for the binary");
        (String::from_utf8_lossy(&output.stderr).into_owned(), output.status.code())
    }
}

/// `NAME ARGS…` with nothing on standard input and no clock.
pub fn run_binary(name: &str, args: &[&str]) -> Run {
    command(name).args(args).run()
}

/// `enroll ARGS…` with nothing on standard input and no clock.
pub fn enroll(args: &[&str]) -> Run {
    run_binary("enroll", args)
}

/// `enroll --root ROOT check`.
pub fn enroll_check(root: &Path) -> Run {
    command("enroll").root(root).args(["check"]).run()
}

// ---- what a run did -----------------------------------------------------------------------

/// The outcome of one run of a binary, decoded.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout and stderr together, for "does the output mention …" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Fails the test if the binary panicked (the message or the exit code 101 gives it
    /// away), was killed by a signal or hung.
    pub fn assert_no_panic(&self, context: &str) {
        assert!(!self.all_output().contains("panicked"), "{context}: the binary panicked:\n{self}");
        assert_ne!(self.code, Some(101), "{context}: exit code 101 (a panic):\n{self}");
        assert!(self.code.is_some(), "{context}: killed by a signal:\n{self}");
    }

    /// Asserts the exit code (and no panic), showing everything the run printed when it differs.
    pub fn expect(self, code: i32, context: &str) -> Run {
        self.assert_no_panic(context);
        assert_eq!(self.code, Some(code), "{context}: expected exit {code}:\n{self}");
        self
    }

    pub fn expect_failure(self, context: &str) -> Run {
        self.assert_no_panic(context);
        assert_ne!(self.code, Some(0), "{context}: expected a non-zero exit code:\n{self}");
        self
    }

    /// Asserts stderr mentions every one of `words` (case-insensitive).
    pub fn says(self, words: &[&str]) -> Run {
        let stderr = self.stderr.to_lowercase();
        for word in words {
            assert!(stderr.contains(&word.to_lowercase()), "stderr should mention {word:?}:\n{self}");
        }
        self
    }

    /// Stdout as exactly one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not one JSON document ({error}):\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "$ {}\nexit code: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}
