//! Whole passes on a scratch root against [`FakeContainers`]: what an admin would check
//! afterwards — the schedule files, `jobs/monitor.log`, `jobs/monitor_exec` — and what the
//! engine was asked to do. The real engine's side is `tests/monitor_docker.rs`.

use super::act::{Actor, Outcome};
use super::plan::{Action, Goal, Leave};
use super::*;
use crate::docker::fake::{Call, FakeContainers, Operation, booking_labels};
use crate::gpu::FakeGpus;
use crate::model::UserId;
use crate::store::lock::SharedLock;

pub(super) use crate::model::examples::at;

/// A booking of one CPU and 2 GB, without GPUs, on the user's port.
pub(super) fn booking(user: &str, start: &str, end: &str) -> Booking {
    Booking {
        memory: 2,
        forward_port: if user == "alice" { 10001 } else { 10002 },
        ..crate::model::examples::booking(user, start, end, &[])
    }
}

/// Alice's booking in most tests: 10:00 to 12:00.
fn alice() -> Booking {
    booking("alice", "2026-11-23 10:00", "2026-11-23 12:00")
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

/// A root with alice and bob enrolled, a backup list that names one path, and an engine in
/// memory.
pub(super) struct Lab {
    _scratch: tempfile::TempDir,
    root: Root,
    engine: FakeContainers,
}

/// A host of 8 CPUs and 2 GPUs; a booking may take 4 CPUs, 8 GB and a GPU.
const CAPABILITY: &str = "max:\n  cpus: 8\n  ram: 16\n  swap_size: 0\n  gpus: 2\n  shm_rate: 1\n  memory: 16\n\
                          allow_userIDs: [alice, bob]\n\
                          max_default_capability:\n  cpus: 4\n  memory: 8\n  gpus: 1\n";

impl Lab {
    fn new() -> Lab {
        Lab::with_capability(CAPABILITY)
    }

    /// The lab with `capability` as `cfg/capability_config.yaml`.
    pub(super) fn with_capability(capability: &str) -> Lab {
        let scratch = tempfile::tempdir().unwrap();
        let root = Root::new(scratch.path());
        std::fs::create_dir_all(root.jobs_dir()).unwrap();
        std::fs::create_dir_all(root.templates_dir()).unwrap();
        let files = [
            (
                root.host_deploy_path(),
                "volume_work_dir: ./volumes/work\nvolume_dataset_dir: ./volumes/dataset\n\
                 volume_backup_dir: ./volumes/backup\nusers_config_yaml: ./cfg/users_config.yaml\n\
                 capability_config_yaml: ./cfg/capability_config.yaml\nimages:\n  - lab/ssh:latest\n",
            ),
            (root.cfg_dir().join("capability_config.yaml"), capability),
            (root.cfg_dir().join("users_config.yaml"), "alice:\n  forward_port: 10001\nbob:\n  forward_port: 10002\n"),
            (root.templates_dir().join("backup.yaml"), "File:\n  - - .default/.bashrc\n    - /root/.bashrc\n"),
        ];
        for (path, text) in files {
            std::fs::write(&path, text).unwrap();
        }
        Lab { _scratch: scratch, root, engine: FakeContainers::new() }
    }

    fn label(&self) -> String {
        root_label(&self.root)
    }

    fn write(&self, file: ActiveFile, booking: Booking) -> Booking {
        schedule::write(&ExclusiveLock::acquire(&self.root).unwrap(), file, std::slice::from_ref(&booking)).unwrap();
        booking
    }

    /// `booking` alone in `booking.csv`.
    fn booked(&self, booking: Booking) -> Booking {
        self.write(ActiveFile::Booking, booking)
    }

    /// `booking` alone in `using.csv`.
    fn running(&self, booking: Booking) -> Booking {
        self.write(ActiveFile::Using, booking)
    }

    fn rows(&self, file: ActiveFile) -> Vec<Booking> {
        schedule::read(&SharedLock::acquire(&self.root).unwrap(), file).unwrap()
    }

    fn history(&self) -> Vec<Booking> {
        let lock = SharedLock::acquire(&self.root).unwrap();
        let (rows, problems) = schedule::read_rows(&lock, &schedule::history_path(&self.root)).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        rows.into_iter().map(|row| row.booking).collect()
    }

    fn request(&self, request: Request) {
        monitor_exec::append(&ExclusiveLock::acquire(&self.root).unwrap(), &request).unwrap();
    }

    fn requests(&self) -> Vec<Request> {
        monitor_exec::read(&SharedLock::acquire(&self.root).unwrap()).unwrap().requests
    }

    /// Ours, made for the booking that starts at `start`.
    fn add_ours(&self, name: &str, start: &str, running: bool) {
        self.engine.add(name, running, booking_labels(&self.label(), &format!("{start}:00")));
    }

    /// A run at `now`. The scratch folders are on the machine's ordinary mount, which the
    /// mount check would refuse (`tests/container_boundary.rs` tests that refusal).
    async fn run(&self, now: &str) -> Result<PassSummary> {
        let options = PassOptions { now: at(now), echo: false, progress: false };
        let gpus = FakeGpus { devices: Vec::new(), failure: None };
        passes(&self.root, &options, &self.engine, &gpus, |_| Ok(())).await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.jobs_dir().join("monitor.log")).unwrap_or_default()
    }

    fn assert_logged(&self, words: &[&str]) {
        let log = self.log();
        assert!(
            log.lines().any(|line| words.iter().all(|word| line.contains(word))),
            "no line of monitor.log holds {words:?}:\n{log}"
        );
    }

    pub(super) fn config(&self) -> Config {
        Config::load(&SharedLock::acquire(&self.root).unwrap()).unwrap()
    }
}

#[tokio::test]
async fn a_booking_that_began_gets_its_container_and_moves_to_using() {
    let lab = Lab::new();
    let alice = lab.booked(alice());

    let summary = lab.run("2026-11-23 10:00").await.unwrap();

    assert_eq!((summary.started, summary.errors), (1, 0));
    assert_eq!(lab.rows(ActiveFile::Booking), vec![]);
    assert_eq!(lab.rows(ActiveFile::Using), vec![alice]);
    assert_eq!(lab.engine.changes(), vec![Call::Create("alice".into())]);
    let container = &lab.engine.containers()["alice"];
    assert!(container.running && container.is_ours(&lab.label()));
    assert_eq!(container.labels.get(spec::LABEL_START).map(String::as_str), Some("2026-11-23 10:00:00"));
    lab.assert_logged(&["[INFO]", "alice is successfully run the container (port 10001"]);
    assert!(lab.root.dir().join("volumes/work/alice").is_dir(), "the work folder was made");
}

#[tokio::test]
async fn an_ended_booking_is_stopped_saved_removed_and_recorded() {
    let lab = Lab::new();
    let alice = lab.running(alice());
    lab.add_ours("alice", "2026-11-23 10:00", true);

    let summary = lab.run("2026-11-23 12:00").await.unwrap();

    assert_eq!((summary.stopped, summary.errors), (1, 0));
    assert_eq!(lab.rows(ActiveFile::Using), vec![]);
    assert_eq!(lab.history(), vec![alice]);
    assert!(lab.engine.containers().is_empty());
    let calls = lab.engine.calls();
    let position = |call: Call| calls.iter().position(|made| *made == call).unwrap();
    assert!(
        position(Call::Stop("alice".into())) < position(Call::CopyOut("alice".into(), "/root/.bashrc".into()))
            && position(Call::CopyOut("alice".into(), "/root/.bashrc".into())) < position(Call::Remove("alice".into())),
        "stopped, then saved, then removed: {calls:?}"
    );
    lab.assert_logged(&["[INFO]", "alice's container was backed up, stopped and removed"]);
}

#[tokio::test]
async fn an_ended_booking_whose_container_will_not_stop_stays_in_using() {
    let lab = Lab::new();
    let alice = lab.running(alice());
    lab.add_ours("alice", "2026-11-23 10:00", true);
    lab.engine.refuse(Operation::Stop);

    let summary = lab.run("2026-11-23 12:00").await.unwrap();

    assert_eq!(summary.stopped, 0);
    assert_eq!(lab.rows(ActiveFile::Using), vec![alice], "the next pass retries");
    assert_eq!(lab.history(), vec![]);
    lab.assert_logged(&["[ERROR] DockerError", "alice's booking stays in using.csv and the next pass retries"]);
}

#[tokio::test]
async fn a_restart_request_restarts_the_container_and_is_served() {
    let lab = Lab::new();
    let alice = lab.running(alice());
    lab.add_ours("alice", "2026-11-23 10:00", true);
    lab.request(Request::Restart(user("alice")));

    lab.run("2026-11-23 11:00").await.unwrap();

    assert_eq!(lab.engine.changes(), vec![Call::Restart("alice".into())]);
    assert_eq!(lab.requests(), vec![]);
    assert_eq!(lab.rows(ActiveFile::Using), vec![alice]);
    lab.assert_logged(&["[INFO]", "alice's container was restarted on request"]);
}

#[tokio::test]
async fn a_restart_the_engine_refuses_stays_requested() {
    let lab = Lab::new();
    lab.running(alice());
    lab.add_ours("alice", "2026-11-23 10:00", true);
    lab.request(Request::Restart(user("alice")));
    lab.engine.refuse(Operation::Restart);

    lab.run("2026-11-23 11:00").await.unwrap();

    assert_eq!(lab.requests(), vec![Request::Restart(user("alice"))], "kept for the next pass");
    lab.assert_logged(&["[ERROR] DockerError", "the restart is tried again at the next pass"]);
}

#[tokio::test]
async fn a_restart_request_without_a_running_booking_is_answered_with_a_warning() {
    let lab = Lab::new();
    lab.request(Request::Restart(user("bob")));

    lab.run("2026-11-23 11:00").await.unwrap();

    assert_eq!(lab.requests(), vec![]);
    assert_eq!(lab.engine.changes(), vec![]);
    lab.assert_logged(&["[WARNING] RestartWarning", "bob asked for a restart but has no running booking"]);
}

#[tokio::test]
async fn a_container_of_ours_without_a_booking_is_saved_and_removed() {
    let lab = Lab::new();
    lab.add_ours("bob", "2026-11-23 08:00", true);

    lab.run("2026-11-23 11:00").await.unwrap();

    assert!(lab.engine.containers().is_empty());
    assert!(lab.engine.calls().contains(&Call::CopyOut("bob".into(), "/root/.bashrc".into())), "saved first");
    lab.assert_logged(&["[WARNING] OrphanWarning", "container bob had no running booking"]);
}

#[tokio::test]
async fn a_container_started_by_hand_is_no_orphan() {
    let lab = Lab::new();
    let mut labels = booking_labels(&lab.label(), "2026-11-23 08:00:00");
    labels.insert(spec::LABEL_MANUAL.to_string(), "true".to_string());
    lab.engine.add("bob", true, labels);

    lab.run("2026-11-23 11:00").await.unwrap();

    assert_eq!(lab.engine.changes(), vec![]);
    assert!(lab.engine.containers()["bob"].running);
}

#[tokio::test]
async fn a_foreign_container_holding_the_name_is_not_touched_and_the_booking_waits() {
    let lab = Lab::new();
    let alice = lab.booked(alice());
    lab.engine.add("alice", true, Default::default());

    let summary = lab.run("2026-11-23 10:00").await.unwrap();

    assert_eq!((summary.started, summary.errors), (0, 1));
    assert_eq!(lab.rows(ActiveFile::Booking), vec![alice], "it stays booked");
    assert_eq!(lab.engine.changes(), vec![]);
    lab.assert_logged(&[
        "[ERROR] ForeignContainerError",
        "a container named alice exists but was not started by gpu-booking; alice's booking was not started",
    ]);
}

#[tokio::test]
async fn a_running_booking_whose_container_vanished_gets_it_back() {
    let lab = Lab::new();
    let alice = lab.running(alice());

    lab.run("2026-11-23 11:00").await.unwrap();

    assert_eq!(lab.engine.changes(), vec![Call::Create("alice".into())]);
    assert!(lab.engine.containers()["alice"].running);
    assert_eq!(lab.rows(ActiveFile::Using), vec![alice]);
    lab.assert_logged(&["[WARNING] ContainerWarning", "alice's booking is running but its container is gone"]);
}

#[tokio::test]
async fn a_stopped_container_of_a_running_booking_is_started_again() {
    let lab = Lab::new();
    lab.running(alice());
    lab.add_ours("alice", "2026-11-23 10:00", false);

    lab.run("2026-11-23 11:00").await.unwrap();

    assert_eq!(lab.engine.changes(), vec![Call::StartExisting("alice".into())], "taken over, not made again");
    assert!(lab.engine.containers()["alice"].running);
    lab.assert_logged(&["[WARNING] ContainerWarning", "alice's container had stopped; starting it again"]);
}

#[tokio::test]
async fn a_container_an_interrupted_pass_left_unfinished_is_made_again() {
    let lab = Lab::new();
    let alice = lab.booked(alice());
    lab.engine.add_unfinished("alice", booking_labels(&lab.label(), "2026-11-23 10:00:00"));

    lab.run("2026-11-23 10:00").await.unwrap();

    assert_eq!(
        lab.engine.changes(),
        vec![Call::Stop("alice".into()), Call::Remove("alice".into()), Call::Create("alice".into())]
    );
    assert_eq!(lab.rows(ActiveFile::Using), vec![alice]);
}

#[tokio::test]
async fn a_booking_that_passed_while_no_pass_ran_is_recorded_as_missed() {
    let lab = Lab::new();
    let alice = lab.booked(booking("alice", "2026-11-23 08:00", "2026-11-23 09:00"));

    let summary = lab.run("2026-11-23 10:00").await.unwrap();

    assert_eq!(summary.missed, 1);
    assert_eq!(lab.rows(ActiveFile::Booking), vec![]);
    assert_eq!(lab.history(), vec![Booking { end: alice.start, ..alice }], "zero hours used");
    assert_eq!(lab.engine.changes(), vec![]);
    lab.assert_logged(&["[WARNING] MissedWarning", "alice's booking from 2026-11-23 08:00:00 to 2026-11-23 09:00:00"]);
}

#[tokio::test]
async fn a_start_the_engine_refuses_leaves_the_booking_for_the_next_pass() {
    let lab = Lab::new();
    let alice = lab.booked(alice());
    lab.engine.lack_image("lab/ssh:latest");

    let summary = lab.run("2026-11-23 10:00").await.unwrap();

    assert_eq!((summary.started, summary.errors), (0, 1));
    assert_eq!(lab.rows(ActiveFile::Booking), vec![alice]);
    assert!(lab.engine.containers().is_empty());
    lab.assert_logged(&["[ERROR] StartError", "alice's container did not start", "cannot pull image lab/ssh:latest"]);
}

#[tokio::test]
async fn with_the_engine_down_the_run_fails_clearly_and_nothing_moves() {
    let lab = Lab::new();
    let ended = lab.running(booking("alice", "2026-11-23 08:00", "2026-11-23 10:00"));
    let begun = lab.booked(booking("bob", "2026-11-23 10:00", "2026-11-23 12:00"));
    lab.request(Request::Restart(user("alice")));
    lab.engine.set_down(true);

    let error = lab.run("2026-11-23 10:00").await.unwrap_err();

    assert!(format!("{error:#}").contains("Docker engine not reachable"), "{error:#}");
    assert_eq!(lab.engine.calls(), vec![Call::Ping], "nothing else was tried");
    assert_eq!(lab.rows(ActiveFile::Using), vec![ended]);
    assert_eq!(lab.rows(ActiveFile::Booking), vec![begun]);
    assert_eq!(lab.requests(), vec![Request::Restart(user("alice"))]);
    lab.assert_logged(&["[ERROR] DockerError", "every booking stays where it was, the next pass retries"]);
}

/// Over quota while the booking runs: a warning within the grace margin, a stop past it.
/// (The folders are not filled past a gigabyte here: [`plan::decide`] takes the measure, and
/// its tests cover the margin.)
#[tokio::test]
async fn over_quota_is_warned_within_the_grace_and_stopped_past_it() {
    let lab = Lab::new();
    let config = lab.config();
    let alice = alice();
    lab.add_ours("alice", "2026-11-23 10:00", true);
    let actor = Actor::new(&lab.root, &config, &lab.engine, false);
    let mut log = MonitorLog::new(&lab.root, at("2026-11-23 11:00"), false);
    let goal = Goal::Keep { booking: &alice, restart_requested: false, overrun: Default::default() };
    let over = "the work_dir 12GB (quota 10GB)".to_string();

    let warned = actor.perform(&goal, Action::Leave(Leave::OverQuota(over.clone())), &mut log).await;
    assert_eq!((warned, lab.engine.changes()), (Outcome::Done, vec![]));
    lab.assert_logged(&[
        "[WARNING] SpaceWarning",
        "alice is over-use the work_dir 12GB (quota 10GB) while the booking runs",
    ]);

    let stopped = actor.perform(&goal, Action::StopForQuota(over), &mut log).await;
    assert_eq!((stopped, lab.engine.changes()), (Outcome::Done, vec![Call::Stop("alice".into())]));
    assert!(!lab.engine.containers()["alice"].running, "stopped, and kept with its files");
    lab.assert_logged(&[
        "[WARNING] SpaceWarning",
        "past the grace margin; the container was stopped with its files kept",
    ]);
}

#[tokio::test]
async fn run_container_stop_ends_only_a_container_of_ours() {
    let lab = Lab::new();
    let config = lab.config();
    lab.engine.add("bob", true, Default::default());
    let actor = Actor::new(&lab.root, &config, &lab.engine, false);
    let mut log = MonitorLog::new(&lab.root, at("2026-11-23 11:00"), false);

    assert!(actor.end(&user("bob"), &mut log).await, "nothing of ours is left running");
    assert_eq!(lab.engine.changes(), vec![]);
    lab.assert_logged(&["[ERROR] ForeignContainerError", "it was not touched"]);
    assert!(actor.end(&user("alice"), &mut log).await);
    lab.assert_logged(&["[WARNING] ContainerWarning", "alice's container was already gone"]);
}

#[tokio::test]
async fn a_gpu_given_to_two_running_bookings_is_warned_of() {
    let lab = Lab::new();
    let running = [
        Booking { gpus: vec![1], ..alice() },
        Booking { gpus: vec![1], ..booking("bob", "2026-11-23 11:00", "2026-11-23 13:00") },
    ];
    schedule::write(&ExclusiveLock::acquire(&lab.root).unwrap(), ActiveFile::Using, &running).unwrap();
    lab.add_ours("alice", "2026-11-23 10:00", true);
    lab.add_ours("bob", "2026-11-23 11:00", true);

    lab.run("2026-11-23 11:00").await.unwrap();

    assert_eq!(lab.engine.changes(), vec![], "both containers run on");
    lab.assert_logged(&["[WARNING] GPUDuplicateWarning", "GPU 1 is given to both alice and bob at once"]);
}
