//! The shared harness of the tests that run the real binaries against the real Docker
//! engine: a temporary root with its own users and ports, the binaries run with a time limit,
//! and the engine read as an admin would (`docker inspect`, `docker exec`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::images;
use crate::mounts::PrivateMount;

/// Monday 10:00, on a slot boundary.
pub const NOW: &str = "2026-11-23 10:00";

/// The host in `capability_config.yaml`: RAM and swap in GB (the memory rule splits a
/// booking's memory by `ram / (ram + swap_size)`).
pub const HOST_RAM_GB: i64 = 12;
pub const HOST_SWAP_GB: i64 = 4;

/// What every user types as their password. Distinctive, so a search for it in `docker
/// inspect` and `docker logs` output cannot match anything else.
pub const PASSWORD: &str = "Vq8-nebula-4471";

pub const HEADER: &str = "start,end,user_id,cpus,memory,gpus,forward_port,image,extra_command\n";
pub const BOOKING: &str = "jobs/booking.csv";
pub const USING: &str = "jobs/using.csv";
pub const USED: &str = "jobs/used.csv";
pub const MONITOR_LOG: &str = "jobs/monitor.log";
pub const MONITOR_EXEC: &str = "jobs/monitor_exec";
pub const LOCK_FILE: &str = "jobs/.lock";

/// A binary that hangs fails its test rather than the whole run.
pub const TIME_LIMIT: Duration = Duration::from_secs(180);

/// Docker's `/dev/shm` size when none is asked for.
pub const DOCKER_DEFAULT_SHM: i64 = 64 * 1024 * 1024;
pub const GIB: i64 = 1024 * 1024 * 1024;

pub const DEAD_DOCKER_HOST: &str = "unix:///nonexistent/docker.sock";

// ---- the temporary root ------------------------------------------------------------------

/// A temporary root (`cfg/`, `jobs/`, the volume folders) for one test, and its users.
pub struct Lab {
    // Dropped first: the containers go before the folders they mount.
    _containers: images::TestContainers,
    // Then the volumes mount, then the folder.
    _volumes: PrivateMount,
    dir: TempDir,
    users: Vec<String>,
    ports: BTreeMap<String, u16>,
}

impl Lab {
    /// A root whose allowed users are `gbt<pid>-<test>-<tag>` for each tag.
    pub fn new(test: &str, tags: &[&str]) -> Lab {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let users: Vec<String> = tags.iter().map(|tag| format!("gbt{}-{test}-{tag}", std::process::id())).collect();
        for user in &users {
            assert!(user.len() <= 64, "user id {user} is too long");
        }
        let containers = images::TestContainers { names: users.clone(), root_label: dir.path().display().to_string() };
        // A container left by an earlier run that had this process id would hold a name.
        drop(images::TestContainers { names: users.clone(), root_label: containers.root_label.clone() });
        let volumes = PrivateMount::new(&dir.path().join("volumes"));
        let lab = Lab { _containers: containers, _volumes: volumes, dir, users, ports: BTreeMap::new() };
        lab.write(
            "cfg/host_deploy.yaml",
            &format!(
                "volume_work_dir: ./volumes/work\n\
                 volume_dataset_dir: ./volumes/dataset\n\
                 volume_backup_dir: ./volumes/backup\n\
                 users_config_yaml: ./cfg/users_config.yaml\n\
                 capability_config_yaml: ./cfg/capability_config.yaml\n\
                 images:\n  - {}\n",
                images::BUSYBOX_IMAGE
            ),
        );
        let allowed: String = lab.users.iter().map(|user| format!("  - {user}\n")).collect();
        lab.write(
            "cfg/capability_config.yaml",
            &format!(
                "max:\n  cpus: 2\n  ram: {HOST_RAM_GB}\n  swap_size: {HOST_SWAP_GB}\n  gpus: 2\n\
                 \n  shm_rate: ram / (ram + swap_size)\n  memory: ram + swap_size\n\
                 \n  backup_space: 20\n  work_space: 50\n\
                 \nallow_userIDs:\n{allowed}\
                 \nmax_default_capability:\n  cpus: 2\n  memory: 8\n  gpus: 1\n  backup_space: 5\n  work_space: 20\n"
            ),
        );
        lab.write("cfg/users_config.yaml", "");
        // Users register by a first login, which the admin turns on.
        lab.write("cfg/login.yaml", "self_registration: true\n");
        lab.write(
            "cfg/templates/backup.yaml",
            "Dir:\n  - - .default/.ssh\n    - /root/.ssh\nFile:\n  - - .default/.bashrc\n    - /root/.bashrc\n",
        );
        fs::create_dir_all(lab.path("jobs")).expect("create jobs/");
        lab
    }

    /// Whether the volumes folder got its `nosuid,nodev` mount (only root can make it).
    pub fn mounted_privately(&self) -> bool {
        self._volumes.is_mounted()
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn root_label(&self) -> String {
        self.root().display().to_string()
    }

    pub fn user(&self, index: usize) -> &str {
        &self.users[index]
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create the parent folder");
        fs::write(&path, text).unwrap_or_else(|error| panic!("write {relative}: {error}"));
    }

    /// The file's text; empty when it does not exist.
    pub fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).unwrap_or_default()
    }

    pub fn work_dir(&self, user: &str) -> PathBuf {
        self.path("volumes/work").join(user)
    }

    pub fn backup_dir(&self, user: &str) -> PathBuf {
        self.path("volumes/backup").join(user)
    }

    pub fn dataset_dir(&self) -> PathBuf {
        self.path("volumes/dataset")
    }

    pub fn port(&self, user: &str) -> u16 {
        self.ports[user]
    }

    /// `book --root R --user USER --password-stdin ARGS…` with the password on stdin.
    pub fn book(&self, user: &str, args: &[&str], now: &str) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_book"));
        command.arg("--root").arg(self.root()).args(["--user", user, "--password-stdin"]).args(args);
        run(command, now, Some(&format!("{PASSWORD}\n")))
    }

    /// A first login registers the user; then their forward port is set to one that is free
    /// on this host (ports are per root, but every test's containers share the host's ports).
    pub fn register(&mut self, user: &str) {
        self.book(user, &["list", "--mine"], NOW).expect(0, &format!("the first login of {user}"));
        let port = free_port();
        self.book(user, &["options", "--forward-port", &port.to_string()], NOW)
            .expect(0, &format!("set {user}'s forward port"));
        self.ports.insert(user.to_string(), port);
    }

    pub fn register_all(&mut self) {
        for user in self.users.clone() {
            self.register(&user);
        }
    }

    /// `book new` through the binary: `(cpus, memory, gpus)` from `start` to `end`.
    pub fn book_new(&self, user: &str, now: &str, (cpus, memory, gpus): (&str, &str, &str), start: &str, end: &str) {
        let args = ["new", "--start", start, "--end", end, "--cpus", cpus, "--memory", memory, "--gpus", gpus, "--yes"];
        self.book(user, &args, now).expect(0, &format!("{user} books {start} to {end}"));
    }

    /// `monitor --root R ARGS…` at `now`, with extra environment variables.
    pub fn monitor_with(&self, now: &str, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_monitor"));
        command.arg("--root").arg(self.root()).args(args);
        for (name, value) in envs {
            command.env(name, value);
        }
        run(command, now, None)
    }

    pub fn monitor(&self, now: &str) -> Run {
        self.monitor_with(now, &[], &[])
    }

    /// The rows of a schedule file, each as column name → value.
    pub fn rows(&self, relative: &str) -> Vec<BTreeMap<String, String>> {
        let text = self.read(relative);
        if text.is_empty() {
            return Vec::new();
        }
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap_or_else(|error| panic!("{relative}: no header: {error}")).clone();
        assert_eq!(header.iter().collect::<Vec<_>>().join(","), HEADER.trim_end(), "{relative} keeps the header");
        reader
            .records()
            .map(|record| {
                let record = record.unwrap_or_else(|error| panic!("{relative}: a bad row: {error}\n{text}"));
                header.iter().zip(record.iter()).map(|(name, value)| (name.to_string(), value.to_string())).collect()
            })
            .collect()
    }

    /// `(user, start)` of each row: a booking's identity.
    pub fn keys(&self, relative: &str) -> Vec<(String, String)> {
        self.rows(relative).iter().map(|row| (row["user_id"].clone(), row["start"].clone())).collect()
    }

    pub fn holds(&self, relative: &str, user: &str, start: &str) -> bool {
        self.keys(relative).contains(&(user.to_string(), start.to_string()))
    }

    /// Appends a row, written by hand as the monitor would, to a schedule file.
    pub fn add_row(&self, relative: &str, user: &str, start: &str, end: &str, cpus: &str, memory: &str) {
        let mut text = self.read(relative);
        if text.is_empty() {
            text.push_str(HEADER);
        }
        text.push_str(&format!("{start},{end},{user},{cpus},{memory},[],{},,\n", self.port(user)));
        self.write(relative, &text);
    }

    pub fn log(&self) -> String {
        self.read(MONITOR_LOG)
    }

    /// The log lines with this `[STATUS] SIGN` that mention every one of `words`.
    pub fn log_lines(&self, status_and_sign: &str, words: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| line.contains(status_and_sign) && words.iter().all(|word| line.contains(word)))
            .map(str::to_string)
            .collect()
    }

    pub fn assert_logged(&self, status_and_sign: &str, words: &[&str], context: &str) {
        assert!(
            !self.log_lines(status_and_sign, words).is_empty(),
            "{context}: expected a `{status_and_sign}` line in monitor.log mentioning {words:?}; the log:\n{}",
            self.log()
        );
    }

    /// Every file under `jobs/` except the log and the lock file, by path.
    pub fn jobs_snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = snapshot(self.root());
        files.retain(|path, _| path.starts_with("jobs/") && path != MONITOR_LOG);
        files
    }
}

/// Every file's bytes under `root` (folders as empty entries ending in `/`), without the lock.
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    pub fn walk(root: &Path, folder: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(folder).unwrap_or_else(|error| panic!("list {}: {error}", folder.display())) {
            let entry = entry.expect("a folder entry");
            let path = entry.path();
            let relative = path.strip_prefix(root).expect("under the root").to_string_lossy().into_owned();
            let kind = entry.file_type().expect("a file type");
            if kind.is_dir() {
                files.insert(format!("{relative}/"), Vec::new());
                walk(root, &path, files);
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).expect("read a link");
                files.insert(relative, format!("-> {}", target.display()).into_bytes());
            } else {
                files.insert(
                    relative,
                    fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display())),
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files.remove(LOCK_FILE);
    files
}

pub fn assert_same_files(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>, context: &str) {
    let mut differences = Vec::new();
    for (path, bytes) in before {
        match after.get(path) {
            None => differences.push(format!("{path} was removed")),
            Some(now) if now != bytes => differences.push(format!(
                "{path} was changed:\n--- before ---\n{}--- after ---\n{}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(now)
            )),
            Some(_) => {}
        }
    }
    differences
        .extend(after.keys().filter(|path| !before.contains_key(*path)).map(|path| format!("{path} was created")));
    assert!(differences.is_empty(), "{context}: files changed:\n{}", differences.join("\n"));
}

/// A forward port (10001–11000) that nothing on this host listens on, different for each
/// call in this process.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7919);
    for _ in 0..1000 {
        let port = 10001 + (offset.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 1000) as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port from 10001 to 11000 on this host");
}

// ---- running the binaries ----------------------------------------------------------------

/// The outcome of one run of a binary.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn expect(&self, code: i32, context: &str) -> &Self {
        self.assert_no_panic(context);
        assert_eq!(self.code, Some(code), "{context}: unexpected exit code\n{self}");
        self
    }

    pub fn expect_failure(&self, context: &str) -> &Self {
        self.assert_no_panic(context);
        assert_ne!(self.code, Some(0), "{context}: expected a non-zero exit code\n{self}");
        self
    }

    pub fn assert_no_panic(&self, context: &str) {
        assert!(!self.stderr.contains("panicked"), "{context}: the binary panicked\n{self}");
        assert_ne!(self.code, Some(101), "{context}: exit code 101 (a panic)\n{self}");
        assert!(self.code.is_some(), "{context}: killed by a signal\n{self}");
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "exit code: {:?}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `command` at `now` (`GPU_BOOKING_NOW`), from a neutral folder, with `stdin`; killed
/// after [`TIME_LIMIT`].
pub fn run(mut command: Command, now: &str, stdin: Option<&str>) -> Run {
    command
        .env("GPU_BOOKING_NOW", now)
        .env_remove("GPU_BOOKING_ROOT")
        .env_remove("SSH_ORIGINAL_COMMAND")
        .env_remove("RUST_BACKTRACE")
        .current_dir(std::env::temp_dir())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("a piped stdin");
        // The binary may exit before reading everything (a refused login): that is its answer.
        let _ = pipe.write_all(text.as_bytes());
    }
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = match receiver.recv_timeout(TIME_LIMIT) {
        Ok(output) => output.expect("wait for the binary"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{command:?} ran longer than {TIME_LIMIT:?}");
        }
    };
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

// ---- the engine, as an admin sees it -----------------------------------------------------

pub fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap_or_else(|error| panic!("run docker {args:?}: {error}"))
}

/// `docker ARGS…`, which must succeed; its stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `docker inspect NAME` as JSON; `None` when there is no such container.
pub fn inspect(name: &str) -> Option<Value> {
    let output = docker(&["container", "inspect", name]);
    if !output.status.success() {
        return None;
    }
    let parsed: Value = serde_json::from_slice(&output.stdout).expect("docker inspect prints JSON");
    parsed.as_array().and_then(|list| list.first()).cloned()
}

pub fn inspect_existing(name: &str, context: &str) -> Value {
    inspect(name).unwrap_or_else(|| panic!("{context}: there is no container named {name}"))
}

/// `docker exec NAME sh -c SCRIPT`, which must succeed; its stdout.
pub fn exec(name: &str, script: &str) -> String {
    docker_ok(&["exec", name, "sh", "-c", script])
}

pub fn labels(container: &Value) -> BTreeMap<String, String> {
    container["Config"]["Labels"]
        .as_object()
        .map(|labels| {
            labels.iter().map(|(key, value)| (key.clone(), value.as_str().unwrap_or("").to_string())).collect()
        })
        .unwrap_or_default()
}

/// Every host folder the container mounts, as `(host path, container path, "ro" or "rw")`:
/// `HostConfig.Mounts` and any `HostConfig.Binds` strings.
pub fn binds(container: &Value) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = container["HostConfig"]["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|mount| {
            let text = |key: &str| mount[key].as_str().unwrap_or_default().to_string();
            let mode = if mount["ReadOnly"].as_bool() == Some(true) { "ro" } else { "rw" };
            (text("Source"), text("Target"), mode.to_string())
        })
        .collect();
    for bind in container["HostConfig"]["Binds"].as_array().into_iter().flatten() {
        let mut parts = bind.as_str().unwrap_or_default().splitn(3, ':');
        let host = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        found.push((host, target, parts.next().unwrap_or("rw").to_string()));
    }
    found
}

pub fn bind_to<'a>(
    binds: &'a [(String, String, String)],
    container_path: &str,
) -> Option<&'a (String, String, String)> {
    binds.iter().find(|(_, container, _)| container == container_path)
}

pub fn is_running(container: &Value) -> bool {
    container["State"]["Running"].as_bool() == Some(true) && container["State"]["Status"] == "running"
}

/// The container limits the design's memory rule gives a booking of `memory` GB on this
/// host: RAM `ceil(memory × ram / (ram + swap))` GB (at least 1, at most `memory`), RAM + swap
/// `memory` GB, shared memory the swap part (Docker's default when there is none).
pub fn expected_memory(memory: i64) -> (i64, i64, i64) {
    let host = HOST_RAM_GB + HOST_SWAP_GB;
    let ram_gb = ((memory * HOST_RAM_GB + host - 1) / host).clamp(1, memory);
    let shm = (memory - ram_gb) * GIB;
    (ram_gb * GIB, memory * GIB, if shm > 0 { shm } else { DOCKER_DEFAULT_SHM })
}

/// A time in the state files' form.
pub fn full(time: &str) -> String {
    format!("{time}:00")
}
