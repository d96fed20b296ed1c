//! A temporary root for one test — `cfg/` and `jobs/` copied from a fixture under
//! `tests/fixtures/`, or from the shipped `cfg/` — with the real binaries run on it at a fixed
//! clock, and the files read back the way a person would. A Docker lab adds its own users,
//! their forward ports, and a volumes folder mounted the way a deployment mounts it; its
//! containers go when the test ends, also when it fails.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

use super::docker;
use super::fixtures;
use super::images;
use super::mounts::PrivateMount;
use super::ports;
use super::run::{self, Invocation, NOW, Run};
use super::schedule::{self, MONITOR_LOG, Row};
use super::snapshot::{self, Snapshot};

/// What every user of a Docker lab types as their password. Distinctive, so a search for it
/// in `docker inspect` and `docker logs` output cannot match anything else.
pub const PASSWORD: &str = "Vq8-nebula-4471";

/// The password a lab's user chooses at their first login.
pub fn password_of(user: &str) -> &'static str {
    match user {
        "alice" => "tulip-alice-7",
        "bob" => "maple-bob-3",
        "carol" => "cedar-carol-5",
        _ => PASSWORD,
    }
}

/// What a Docker lab holds on the engine and the host. Dropped first: the containers go
/// before the folders they mount, then the volumes mount, then the folder.
struct Engine {
    _containers: images::TestContainers,
    volumes: PrivateMount,
}

/// A temporary root for one test, removed when the test ends.
pub struct Lab {
    engine: Option<Engine>,
    dir: TempDir,
    users: Vec<String>,
    ports: RefCell<BTreeMap<String, u16>>,
    /// The clock of the runs on this root, unless a run says otherwise.
    now: String,
}

impl Lab {
    /// A copy of `tests/fixtures/<name>`, with a `jobs/` folder; its users are those in its
    /// `allow_userIDs`.
    pub fn fixture(name: &str) -> Lab {
        Lab::holding(fixtures::copy_fixture(name))
    }

    /// The shipped configuration (`cfg/` at the top of the checkout) and an empty `jobs/`.
    pub fn shipped() -> Lab {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let shipped = fixtures::shipped_cfg();
        for name in ["host_deploy.yaml", "capability_config.yaml", "users/users_config.yaml", "login.yaml"] {
            fixtures::copy_file(&shipped.join(name), &dir.path().join("cfg").join(name));
        }
        fixtures::copy_file(&shipped.join("templates/backup.yaml"), &dir.path().join("cfg/templates/backup.yaml"));
        Lab::holding(dir)
    }

    fn holding(dir: TempDir) -> Lab {
        fs::create_dir_all(dir.path().join("jobs")).expect("create jobs/");
        let mut lab =
            Lab { engine: None, dir, users: Vec::new(), ports: RefCell::new(BTreeMap::new()), now: NOW.to_string() };
        lab.users = lab.allowed_users();
        lab
    }

    /// A root for the tests on the real Docker engine (`tests/fixtures/docker`: a small host,
    /// the locally built busybox image) whose allowed users are `gbt<pid>-<name>-<tag>` for
    /// each tag: container names are user ids, so tests that run at once never share one.
    pub fn docker(name: &str, tags: &[&str]) -> Lab {
        let dir = fixtures::copy_fixture("docker");
        let users: Vec<String> = tags.iter().map(|tag| format!("gbt{}-{name}-{tag}", std::process::id())).collect();
        for user in &users {
            assert!(user.len() <= 64, "user id {user} is too long");
        }
        let root_label = dir.path().display().to_string();
        // A container left by an earlier run that had this process id would hold a name.
        drop(images::TestContainers { names: users.clone(), root_label: root_label.clone() });
        let containers = images::TestContainers { names: users.clone(), root_label };
        let volumes = PrivateMount::new(&dir.path().join("volumes"));
        let mut lab = Lab::holding(dir);
        lab.engine = Some(Engine { _containers: containers, volumes });
        lab.allow(&users);
        lab
    }

    /// The same root with its runs' clock at `now` in place of [`NOW`].
    pub fn at(mut self, now: &str) -> Lab {
        self.now = now.to_string();
        self
    }

    /// [`Lab::docker`] with every user registered, for a test that needs the engine and the
    /// busybox image (built here if need be); `None`, after a line saying why, when there is
    /// no engine (see [`images::engine_or_skip`]).
    pub fn on_engine(name: &str, tags: &[&str]) -> Option<Lab> {
        if !images::engine_or_skip(&images::current_test()) {
            return None;
        }
        images::busybox_image();
        let lab = Lab::docker(name, tags);
        lab.register_all();
        Some(lab)
    }

    /// [`Lab::on_engine`] with one user, whose booking (1 CPU, 2 GB, no GPU, for two hours
    /// from [`NOW`]) a first pass has started; the user's id.
    pub fn running(name: &str) -> Option<(Lab, String)> {
        let lab = Lab::on_engine(name, &["a"])?;
        let user = lab.user(0).to_string();
        lab.book_new(&user, NOW, ("1", "2", "0"), "now", "2-hour");
        lab.monitor(NOW).expect(0, "the pass that starts the booking");
        assert!(docker::is_running(&docker::inspect_existing(&user, "after the start")), "the container runs");
        Some((lab, user))
    }

    /// Adds `users` to `allow_userIDs` (a block list in the fixture) and makes them this lab's.
    pub fn allow(&mut self, users: &[String]) {
        let text = self.read("cfg/capability_config.yaml");
        assert_eq!(text.matches("allow_userIDs:\n").count(), 1, "one allow_userIDs list:\n{text}");
        let listed: String = users.iter().map(|user| format!("  - {user}\n")).collect();
        self.write(
            "cfg/capability_config.yaml",
            &text.replacen("allow_userIDs:\n", &format!("allow_userIDs:\n{listed}"), 1),
        );
        self.users = self.allowed_users();
    }

    fn allowed_users(&self) -> Vec<String> {
        let text = self.read("cfg/capability_config.yaml");
        let document: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or(serde_yaml::Value::Null);
        document["allow_userIDs"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|user| user.as_str().map(str::to_string))
            .collect()
    }

    /// A new root with this one's `cfg/` (and volume folders) and an empty `jobs/`, so a
    /// scenario can be repeated without registering everyone again.
    pub fn fresh_copy(&self) -> Lab {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        for folder in ["cfg", "volumes"] {
            if self.path(folder).exists() {
                fixtures::copy_tree(&self.path(folder), &dir.path().join(folder));
            }
        }
        Lab::holding(dir)
    }

    // ---- the files ----------------------------------------------------------------------

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The root as the Docker labels and messages show it.
    pub fn root_label(&self) -> String {
        self.root().display().to_string()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) {
        fixtures::write(self.root(), relative, text);
    }

    pub fn append(&self, relative: &str, text: &str) {
        fixtures::append(self.root(), relative, text);
    }

    /// See [`fixtures::edit_line`].
    pub fn edit_line(&self, relative: &str, line: usize, from: &str, to: &str) {
        fixtures::edit_line(self.root(), relative, line, from, to);
    }

    /// A file's text; a missing file reads as empty.
    pub fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).unwrap_or_default()
    }

    pub fn exists(&self, relative: &str) -> bool {
        self.path(relative).exists()
    }

    /// Every folder, file and link under the root, but the lock file.
    pub fn snapshot(&self) -> Snapshot {
        snapshot::snapshot(self.root())
    }

    /// Asserts that nothing under the root changed since `before`, naming what did.
    pub fn assert_unchanged(&self, before: &Snapshot, context: &str) {
        snapshot::assert_unchanged(before, &self.snapshot(), context);
    }

    /// Every file under `jobs/` except the log and the lock file.
    pub fn jobs_snapshot(&self) -> Snapshot {
        let mut files = self.snapshot();
        files.retain(|path, _| path.starts_with("jobs/") && path != MONITOR_LOG);
        files
    }

    /// The rows of a schedule file, each as column name → value.
    pub fn rows(&self, relative: &str) -> Vec<Row> {
        schedule::rows(self.root(), relative)
    }

    /// `(user, start)` of each row: a booking's identity.
    pub fn keys(&self, relative: &str) -> Vec<(String, String)> {
        self.rows(relative).iter().map(|row| (row["user_id"].clone(), row["start"].clone())).collect()
    }

    pub fn holds(&self, relative: &str, user: &str, start: &str) -> bool {
        self.keys(relative).contains(&(user.to_string(), start.to_string()))
    }

    /// Appends a row, written by hand as the monitor (or the original) would, to a schedule
    /// file, starting the file with its header.
    pub fn add_row(&self, relative: &str, row: &str) {
        if self.read(relative).is_empty() {
            self.write(relative, schedule::HEADER);
        }
        self.append(relative, &format!("{row}\n"));
    }

    /// [`Lab::add_row`] for `user`'s booking on no GPU, at their registered port.
    pub fn add_booking_row(&self, relative: &str, user: &str, start: &str, end: &str, cpus: &str, memory: &str) {
        self.add_row(relative, &format!("{start},{end},{user},{cpus},{memory},[],{},,", self.port(user)));
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

    // ---- the users ----------------------------------------------------------------------

    pub fn user(&self, index: usize) -> &str {
        &self.users[index]
    }

    pub fn users(&self) -> &[String] {
        &self.users
    }

    /// A first login registers the user. In a Docker lab their forward port is then set to
    /// one that is free on this host (ports are per root, but every test's containers share
    /// the host's ports).
    pub fn register(&self, user: &str) {
        self.book_as(user, &["list", "--mine"]).expect(0, &format!("the first login of {user}"));
        if self.engine.is_some() {
            let port = ports::free_port();
            self.book_as(user, &["options", "--forward-port", &port.to_string()])
                .expect(0, &format!("set {user}'s forward port"));
            self.ports.borrow_mut().insert(user.to_string(), port);
        }
    }

    pub fn register_all(&self) {
        for user in &self.users {
            self.register(user);
        }
    }

    /// The forward port a Docker lab gave `user` at registration.
    pub fn port(&self, user: &str) -> u16 {
        self.ports.borrow()[user]
    }

    /// The user's saved settings, as `book options --json` shows them.
    pub fn options_of(&self, user: &str) -> Value {
        self.book_as(user, &["options", "--json"]).expect(0, "book options --json").json()
    }

    /// The user's forward port, as `book options --json` shows it.
    pub fn port_of(&self, user: &str) -> u16 {
        let port = self.options_of(user)["forward_port"].as_u64().expect("forward_port is a number");
        u16::try_from(port).expect("a port")
    }

    // ---- the binaries -------------------------------------------------------------------

    /// `NAME --root ROOT ARGS…` at the lab's clock, nothing on standard input.
    pub fn command(&self, name: &str, args: &[&str]) -> Invocation {
        run::command(name).root(self.root()).now(&self.now).args(args)
    }

    /// `book --root ROOT ARGS…` with nobody logged in.
    pub fn book(&self, args: &[&str]) -> Invocation {
        self.command("book", args)
    }

    /// `book --root ROOT --user USER --password-stdin ARGS…` with USER's password on stdin.
    pub fn book_as(&self, user: &str, args: &[&str]) -> Invocation {
        self.book(args).login(user, password_of(user))
    }

    /// `book new --yes --json` at `now`: `(cpus, memory, gpus)` from `start` to `end`; the
    /// booking as `--json` prints it.
    pub fn book_new(
        &self,
        user: &str,
        now: &str,
        (cpus, memory, gpus): (&str, &str, &str),
        start: &str,
        end: &str,
    ) -> Value {
        let mut args = run::new_booking_args(cpus, memory, gpus, start, end);
        args.extend(["--yes", "--json"]);
        self.book_as(user, &args).now(now).expect(0, &format!("{user} books {start} to {end}")).json()
    }

    /// `enroll --root ROOT ARGS…` at the lab's clock, with `input` on standard input.
    pub fn enroll(&self, args: &[&str], input: &str) -> Run {
        self.command("enroll", args).stdin(input).run()
    }

    /// `monitor --root ROOT ARGS…` at `now`, with extra environment variables.
    pub fn monitor_with(&self, now: &str, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut monitor = self.command("monitor", args).now(now);
        for (name, value) in envs {
            monitor = monitor.env(name, value);
        }
        monitor.output()
    }

    pub fn monitor(&self, now: &str) -> Run {
        self.monitor_with(now, &[], &[])
    }

    // ---- a Docker lab's folders ---------------------------------------------------------

    /// Whether the volumes folder got its `nosuid,nodev` mount (only root can make it).
    pub fn mounted_privately(&self) -> bool {
        self.engine.as_ref().is_some_and(|engine| engine.volumes.is_mounted())
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

    /// Writes `text` at `relative` in `user`'s backup folder, as the student can from inside
    /// their container, making the folders on the way.
    pub fn write_in_backup(&self, user: &str, relative: &str, text: &str) {
        self.write(&format!("volumes/backup/{user}/{relative}"), text);
    }

    /// Puts a symbolic link to `target` at `relative` in `user`'s backup folder, in place of
    /// whatever was there, making the folders on the way.
    pub fn link_in_backup(&self, user: &str, relative: &str, target: &Path) {
        let link = self.backup_dir(user).join(relative);
        fs::create_dir_all(link.parent().expect("a parent folder")).expect("create the parent folder");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).unwrap_or_else(|error| panic!("link {}: {error}", link.display()));
    }
}
