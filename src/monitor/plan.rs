//! What a pass must do, decided by pure functions: from the schedule alone which bookings
//! end, start, were missed or go on ([`plan`]); from what the engine shows under a name what
//! to do with that container ([`decide`]); and from what succeeded what the schedule files
//! become ([`settle`]). `--dry-run` and the tests see exactly what a pass would act on;
//! [`super::act`] alone touches the engine.

use chrono::NaiveDateTime;

use crate::docker::ContainerState;
use crate::docker::spec::{LABEL_MANUAL, LABEL_START};
use crate::model::{Booking, UserId, format_time};
use crate::volumes::space::{self, FolderUse, Measured};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Running bookings whose end has come: back up, stop, remove, record.
    pub ending: Vec<Booking>,
    /// Booked windows that have begun: start their containers.
    pub starting: Vec<Booking>,
    /// Booked windows that ended before any pass could start them (the host was down).
    pub missed: Vec<Booking>,
    /// Running bookings that go on: their containers must be up.
    pub continuing: Vec<Booking>,
}

pub fn plan(now: NaiveDateTime, booked: &[Booking], running: &[Booking]) -> Plan {
    let mut plan = Plan::default();
    for booking in running {
        if booking.end <= now {
            plan.ending.push(booking.clone());
        } else {
            plan.continuing.push(booking.clone());
        }
    }
    for booking in booked {
        if booking.end <= now {
            plan.missed.push(booking.clone());
        } else if booking.start <= now {
            plan.starting.push(booking.clone());
        }
    }
    plan
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ending.is_empty() && self.starting.is_empty() && self.missed.is_empty()
    }
}

/// The same booking: a user never holds two bookings with the same start.
pub fn same_booking(left: &Booking, right: &Booking) -> bool {
    left.user_id == right.user_id && left.start == right.start
}

// ---- one container: what the engine shows, what to do ----------------------------------

/// What the engine holds under a user's container name, as the monitor sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The engine did not answer: why, as the log says it.
    Unanswered(String),
    Absent,
    /// A container of that name that gpu-booking did not start for this root.
    Foreign,
    /// One of ours: whether it runs, and whether it was made for the booking at hand.
    Ours {
        running: bool,
        this_booking: bool,
    },
}

/// The one reading of an inspection: answered? there? ours? made for the booking that
/// starts at `start`?
pub fn observe(
    inspected: anyhow::Result<Option<ContainerState>>,
    root_label: &str,
    start: Option<NaiveDateTime>,
) -> Observed {
    match inspected {
        Err(error) => Observed::Unanswered(format!("{error:#}")),
        Ok(None) => Observed::Absent,
        Ok(Some(container)) if !container.is_ours(root_label) => Observed::Foreign,
        Ok(Some(container)) => Observed::Ours {
            running: container.running,
            this_booking: start.is_some_and(|start| container.labels.get(LABEL_START) == Some(&format_time(start))),
        },
    }
}

/// How far over their quotas a running booking's folders are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrun {
    /// What is over, as the log says it (`the work_dir 12GB (quota 10GB)`).
    pub over: Vec<String>,
    /// Whether any folder is past its grace margin (see [`space::grace_bytes`]).
    pub past_grace: bool,
}

impl Overrun {
    fn text(&self) -> String {
        self.over.join(", and ")
    }
}

/// The folders of a running booking, each measured up to its quota and grace margin.
pub fn overrun(measured: &[FolderUse]) -> Overrun {
    let mut overrun = Overrun::default();
    for folder in measured {
        let over = |size: u64| format!("the {} {} (quota {}GB)", folder.what, space::gigabytes(size), folder.quota_gb);
        match folder.measured {
            Measured::Within(size) if size > folder.quota_bytes() => overrun.over.push(over(size)),
            Measured::Over(size) => {
                overrun.past_grace = true;
                overrun.over.push(over(size));
            }
            _ => {}
        }
    }
    overrun
}

/// What the pass wants of a user's container.
#[derive(Debug, Clone, PartialEq)]
pub enum Goal<'a> {
    /// The booking ended, or nothing accounts for the container: save, stop, remove.
    End(&'a UserId),
    /// The booking began: its container must run.
    Start(&'a Booking),
    /// The booking goes on: its container must run, within its quotas.
    Keep { booking: &'a Booking, restart_requested: bool, overrun: Overrun },
    /// The student asked for a restart (`book restart`).
    Restart(&'a UserId),
}

impl Goal<'_> {
    pub fn user(&self) -> &UserId {
        match self {
            Goal::End(user) | Goal::Restart(user) => user,
            Goal::Start(booking) | Goal::Keep { booking, .. } => &booking.user_id,
        }
    }

    /// The start of the booking the container should serve, if the goal is a booking's.
    pub fn start(&self) -> Option<NaiveDateTime> {
        match self {
            Goal::End(_) | Goal::Restart(_) => None,
            Goal::Start(booking) | Goal::Keep { booking, .. } => Some(booking.start),
        }
    }
}

/// What to do with one container.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing to do on the engine, for this reason.
    Leave(Leave),
    /// Stop it, save its `backup.yaml` paths, remove it.
    SaveAndRemove,
    /// Make the booking's container: folders, quotas, saved files, create, start.
    Create,
    /// Remove an earlier booking's container that was not stopped, then create this one's.
    Replace,
    /// Take over this booking's container that an interrupted pass left.
    Resume {
        running: bool,
    },
    /// Stop it and keep it: the booking's folders are past their grace margin (what is over).
    StopForQuota(String),
    /// Start the running booking's container again: it stopped, or it is gone.
    Revive {
        gone: bool,
    },
    Restart,
}

/// Why the engine is left alone.
#[derive(Debug, Clone, PartialEq)]
pub enum Leave {
    /// The engine did not answer (why).
    EngineDown(String),
    /// The name is held by a container gpu-booking did not start.
    Foreign,
    /// The ended booking's container is gone: nothing to back up.
    AlreadyGone,
    /// A restart was asked for, and there is no container to restart.
    NoContainer,
    WithinQuota,
    /// Over quota within the grace margin, running on (what is over).
    OverQuota(String),
    /// Stopped for its quota, and nobody asked for a restart (what is over).
    StaysStopped(String),
}

/// What to do with the container `observed` under the goal's name.
pub fn decide(goal: &Goal<'_>, observed: &Observed) -> Action {
    match (goal, observed) {
        (_, Observed::Unanswered(error)) => Action::Leave(Leave::EngineDown(error.clone())),
        (_, Observed::Foreign) => Action::Leave(Leave::Foreign),
        (Goal::End(_), Observed::Absent) => Action::Leave(Leave::AlreadyGone),
        (Goal::End(_), Observed::Ours { .. }) => Action::SaveAndRemove,
        (Goal::Start(_), Observed::Absent) => Action::Create,
        (Goal::Start(_), Observed::Ours { running, this_booking: true }) => Action::Resume { running: *running },
        (Goal::Start(_), Observed::Ours { this_booking: false, .. }) => Action::Replace,
        (Goal::Keep { overrun, .. }, Observed::Ours { running: true, .. }) => {
            if overrun.over.is_empty() {
                Action::Leave(Leave::WithinQuota)
            } else if overrun.past_grace {
                Action::StopForQuota(overrun.text())
            } else {
                Action::Leave(Leave::OverQuota(overrun.text()))
            }
        }
        // Stopped for its quota: it stays stopped until the student asks for a restart.
        (Goal::Keep { overrun, restart_requested, .. }, Observed::Ours { running: false, this_booking: true }) => {
            if overrun.past_grace && !restart_requested {
                Action::Leave(Leave::StaysStopped(overrun.text()))
            } else {
                Action::Revive { gone: false }
            }
        }
        (Goal::Keep { .. }, Observed::Absent | Observed::Ours { running: false, this_booking: false }) => {
            Action::Revive { gone: true }
        }
        (Goal::Restart(_), Observed::Ours { .. }) => Action::Restart,
        (Goal::Restart(_), Observed::Absent) => Action::Leave(Leave::NoContainer),
    }
}

/// The containers of ours that nothing accounts for: no running or ending booking has their
/// name, and `run-container` did not start them by hand.
pub fn orphans(ours: Vec<ContainerState>, running: &[Booking], ending: &[Booking]) -> Vec<String> {
    ours.into_iter()
        .filter(|container| {
            let accounted = running.iter().chain(ending).any(|booking| booking.user_id.as_str() == container.name);
            !accounted && !container.labels.contains_key(LABEL_MANUAL)
        })
        .map(|container| container.name)
        .collect()
}

// ---- the schedule after a pass ---------------------------------------------------------

/// What a pass achieved on the engine.
#[derive(Debug, Clone, Copy)]
pub struct Achieved<'a> {
    /// Running bookings whose containers were saved, stopped and removed.
    pub ended: &'a [Booking],
    /// Booked windows whose containers run now.
    pub started: &'a [Booking],
    /// Booked windows that passed unstarted.
    pub missed: &'a [Booking],
}

impl Achieved<'_> {
    pub fn is_empty(&self) -> bool {
        self.ended.is_empty() && self.started.is_empty() && self.missed.is_empty()
    }
}

/// The schedule files after a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    /// `booking.csv`: less what started and what was missed.
    pub booked: Vec<Booking>,
    /// `using.csv`: less what ended, with what started.
    pub running: Vec<Booking>,
    /// Rows for `used.csv`: what ended, then what was missed (its end at its start, read as
    /// zero hours).
    pub history: Vec<Booking>,
    /// Extended while their containers were stopped (`book extend` does not wait for the
    /// pass): they stay running, and a pass starts them again.
    pub extended: Vec<Booking>,
    /// Users whose booking was cancelled while its container started: a pass stops it.
    pub stale: Vec<UserId>,
}

/// The schedule after a pass, from the rows read afresh under the lock (`book` may have
/// changed them while the pass talked to the engine).
pub fn settle(booked: Vec<Booking>, running: Vec<Booking>, achieved: Achieved<'_>, now: NaiveDateTime) -> Settled {
    let Achieved { ended, started, missed } = achieved;
    let (mut history, extended) = split_ended(&running, ended, now);
    history.extend(
        booked
            .iter()
            .filter(|row| missed.iter().any(|missed| same_booking(row, missed)))
            .map(|row| Booking { end: row.start, ..row.clone() }),
    );
    let mut new_running: Vec<Booking> = running
        .into_iter()
        .filter(|row| !ended.iter().any(|ended| same_booking(row, ended)) || extended.contains(row))
        .collect();
    let mut stale = Vec::new();
    for started in started {
        match booked.iter().find(|row| same_booking(row, started)) {
            Some(row) if !new_running.iter().any(|running| same_booking(running, row)) => new_running.push(row.clone()),
            Some(_) => {}
            None => stale.push(started.user_id.clone()),
        }
    }
    let new_booked = booked
        .into_iter()
        .filter(|row| {
            !started.iter().any(|started| same_booking(row, started))
                && !missed.iter().any(|missed| same_booking(row, missed))
        })
        .collect();
    Settled { booked: new_booked, running: new_running, history, extended, stale }
}

/// Of the running rows whose containers this pass stopped: those that still end by `now` go
/// to the history; those extended meanwhile stay running.
fn split_ended(running: &[Booking], ended: &[Booking], now: NaiveDateTime) -> (Vec<Booking>, Vec<Booking>) {
    running
        .iter()
        .filter(|row| ended.iter().any(|ended| same_booking(row, ended)))
        .cloned()
        .partition(|row| row.end <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::tests::{at, booking};

    const LABEL: &str = "/srv/gpu-booking";

    fn container(name: &str, running: bool, labels: &[(&str, &str)]) -> ContainerState {
        ContainerState {
            id: "id".into(),
            name: name.into(),
            running,
            labels: labels.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect(),
        }
    }

    /// Ours for the booking that starts at `start`.
    fn ours(name: &str, running: bool, start: &str) -> ContainerState {
        use crate::docker::spec::{LABEL_MANAGED, LABEL_ROOT};
        container(name, running, &[(LABEL_MANAGED, "true"), (LABEL_ROOT, LABEL), (LABEL_START, start)])
    }

    fn keep<'a>(booking: &'a Booking, restart_requested: bool, over: &[&str], past_grace: bool) -> Goal<'a> {
        let overrun = Overrun { over: over.iter().map(|text| text.to_string()).collect(), past_grace };
        Goal::Keep { booking, restart_requested, overrun }
    }

    #[test]
    fn an_inspection_reads_as_unanswered_absent_foreign_or_ours_for_this_booking_or_not() {
        let start = Some(at("2026-11-23 10:00"));
        let down = observe(Err(anyhow::anyhow!("Docker engine not reachable")), LABEL, start);
        assert_eq!(down, Observed::Unanswered("Docker engine not reachable".into()));
        assert_eq!(observe(Ok(None), LABEL, start), Observed::Absent);
        let foreign = container("alice", true, &[]);
        assert_eq!(observe(Ok(Some(foreign)), LABEL, start), Observed::Foreign);
        let other_root = ours("alice", true, "2026-11-23 10:00:00");
        assert_eq!(observe(Ok(Some(other_root)), "/elsewhere", start), Observed::Foreign, "another root's");
        let this = ours("alice", false, "2026-11-23 10:00:00");
        assert_eq!(
            observe(Ok(Some(this.clone())), LABEL, start),
            Observed::Ours { running: false, this_booking: true }
        );
        assert_eq!(observe(Ok(Some(this)), LABEL, None), Observed::Ours { running: false, this_booking: false });
        let earlier = ours("alice", true, "2026-11-22 10:00:00");
        assert_eq!(observe(Ok(Some(earlier)), LABEL, start), Observed::Ours { running: true, this_booking: false });
    }

    #[test]
    fn an_ended_booking_s_container_is_saved_and_removed_only_when_ours() {
        let alice = UserId::parse("alice").unwrap();
        let end = Goal::End(&alice);
        assert_eq!(decide(&end, &Observed::Ours { running: true, this_booking: false }), Action::SaveAndRemove);
        assert_eq!(decide(&end, &Observed::Ours { running: false, this_booking: false }), Action::SaveAndRemove);
        assert_eq!(decide(&end, &Observed::Absent), Action::Leave(Leave::AlreadyGone));
        assert_eq!(decide(&end, &Observed::Foreign), Action::Leave(Leave::Foreign));
    }

    #[test]
    fn a_starting_booking_creates_takes_over_or_makes_way() {
        let alice = booking("alice", "2026-11-23 10:00", "2026-11-23 12:00");
        let start = Goal::Start(&alice);
        assert_eq!(decide(&start, &Observed::Absent), Action::Create);
        let left = Observed::Ours { running: true, this_booking: true };
        assert_eq!(decide(&start, &left), Action::Resume { running: true }, "an interrupted pass's container");
        let earlier = Observed::Ours { running: true, this_booking: false };
        assert_eq!(decide(&start, &earlier), Action::Replace, "an earlier booking's container that was not stopped");
        assert_eq!(decide(&start, &Observed::Foreign), Action::Leave(Leave::Foreign));
    }

    #[test]
    fn a_running_booking_over_quota_is_warned_within_the_grace_and_stopped_past_it() {
        let alice = booking("alice", "2026-11-23 10:00", "2026-11-23 12:00");
        let running = Observed::Ours { running: true, this_booking: true };
        assert_eq!(decide(&keep(&alice, false, &[], false), &running), Action::Leave(Leave::WithinQuota));
        let over = ["the work_dir 11GB (quota 10GB)", "backup_dir 6GB (quota 5GB)"];
        let within_grace = decide(&keep(&alice, false, &over, false), &running);
        let text = "the work_dir 11GB (quota 10GB), and backup_dir 6GB (quota 5GB)".to_string();
        assert_eq!(within_grace, Action::Leave(Leave::OverQuota(text.clone())));
        assert_eq!(decide(&keep(&alice, true, &over, true), &running), Action::StopForQuota(text));
    }

    #[test]
    fn a_container_stopped_for_its_quota_stays_stopped_until_a_restart_is_asked() {
        let alice = booking("alice", "2026-11-23 10:00", "2026-11-23 12:00");
        let stopped = Observed::Ours { running: false, this_booking: true };
        let over = ["the work_dir 12GB (quota 10GB)"];
        let stays = decide(&keep(&alice, false, &over, true), &stopped);
        assert_eq!(stays, Action::Leave(Leave::StaysStopped("the work_dir 12GB (quota 10GB)".into())));
        assert_eq!(decide(&keep(&alice, true, &over, true), &stopped), Action::Revive { gone: false });
        assert_eq!(
            decide(&keep(&alice, false, &over, false), &stopped),
            Action::Revive { gone: false },
            "within grace"
        );
    }

    #[test]
    fn a_running_booking_whose_container_vanished_gets_it_back() {
        let alice = booking("alice", "2026-11-23 10:00", "2026-11-23 12:00");
        let goal = keep(&alice, false, &[], false);
        assert_eq!(decide(&goal, &Observed::Absent), Action::Revive { gone: true });
        let earlier_stopped = Observed::Ours { running: false, this_booking: false };
        assert_eq!(decide(&goal, &earlier_stopped), Action::Revive { gone: true });
        assert_eq!(decide(&goal, &Observed::Foreign), Action::Leave(Leave::Foreign));
    }

    #[test]
    fn a_restart_needs_a_container_of_ours() {
        let alice = UserId::parse("alice").unwrap();
        let restart = Goal::Restart(&alice);
        assert_eq!(decide(&restart, &Observed::Ours { running: false, this_booking: false }), Action::Restart);
        assert_eq!(decide(&restart, &Observed::Absent), Action::Leave(Leave::NoContainer));
        assert_eq!(decide(&restart, &Observed::Foreign), Action::Leave(Leave::Foreign));
    }

    #[test]
    fn an_engine_that_does_not_answer_leaves_every_container_alone() {
        let alice = booking("alice", "2026-11-23 10:00", "2026-11-23 12:00");
        let down = Observed::Unanswered("Docker engine not reachable".into());
        let goals = [
            Goal::End(&alice.user_id),
            Goal::Start(&alice),
            keep(&alice, true, &["x"], true),
            Goal::Restart(&alice.user_id),
        ];
        for goal in &goals {
            assert_eq!(decide(goal, &down), Action::Leave(Leave::EngineDown("Docker engine not reachable".into())));
        }
    }

    #[test]
    fn the_overrun_counts_what_is_over_and_whether_past_the_grace() {
        let folder = |what, measured| FolderUse { what, quota_gb: 10.0, measured };
        let within = overrun(&[folder("work_dir", Measured::Within(9_000_000_000))]);
        assert_eq!(within, Overrun::default());
        let over = overrun(&[
            folder("work_dir", Measured::Within(10_500_000_000)),
            folder("backup_dir", Measured::Unknown(20_000_000_000)),
        ]);
        assert_eq!(over, Overrun { over: vec!["the work_dir 10GB (quota 10GB)".into()], past_grace: false });
        let past = overrun(&[folder("backup_dir", Measured::Over(12_000_000_000))]);
        assert_eq!(past, Overrun { over: vec!["the backup_dir 12GB (quota 10GB)".into()], past_grace: true });
    }

    #[test]
    fn orphans_are_ours_without_a_booking_and_not_started_by_hand() {
        let running = [booking("alice", "2026-11-23 10:00", "2026-11-23 12:00")];
        let ending = [booking("bob", "2026-11-23 08:00", "2026-11-23 10:00")];
        let mut by_hand = ours("dave", true, "2026-11-23 09:00:00");
        by_hand.labels.insert(LABEL_MANUAL.into(), "true".into());
        let listed = vec![
            ours("alice", true, "2026-11-23 10:00:00"),
            ours("bob", false, "2026-11-23 08:00:00"),
            ours("carol", true, "2026-11-23 09:00:00"),
            by_hand,
        ];
        assert_eq!(orphans(listed, &running, &ending), vec!["carol".to_string()]);
    }

    #[test]
    fn what_started_moves_to_using_and_what_ended_to_the_history() {
        let now = at("2026-11-23 12:00");
        let ended = booking("alice", "2026-11-23 10:00", "2026-11-23 12:00");
        let started = booking("bob", "2026-11-23 12:00", "2026-11-23 14:00");
        let later = booking("carol", "2026-11-24 12:00", "2026-11-24 14:00");
        let achieved =
            Achieved { ended: std::slice::from_ref(&ended), started: std::slice::from_ref(&started), missed: &[] };
        let settled = settle(vec![started.clone(), later.clone()], vec![ended.clone()], achieved, now);
        assert_eq!(
            settled,
            Settled { booked: vec![later], running: vec![started], history: vec![ended], ..Default::default() }
        );
    }

    #[test]
    fn a_missed_booking_goes_to_the_history_as_zero_hours() {
        let now = at("2026-11-23 12:00");
        let missed = booking("alice", "2026-11-23 08:00", "2026-11-23 09:00");
        let achieved = Achieved { ended: &[], started: &[], missed: std::slice::from_ref(&missed) };
        let settled = settle(vec![missed.clone()], vec![], achieved, now);
        assert_eq!(settled.booked, vec![]);
        assert_eq!(settled.history, vec![Booking { end: missed.start, ..missed }]);
    }

    /// `book extend` does not wait for a pass: a booking extended while the pass stopped its
    /// container stays running (and is started again), never recorded as ended.
    #[test]
    fn a_booking_extended_during_the_pass_stays_running() {
        let now = at("2026-11-23 12:00");
        let planned = [
            booking("alice", "2026-11-23 10:00", "2026-11-23 12:00"),
            booking("bob", "2026-11-23 09:00", "2026-11-23 12:00"),
        ];
        let fresh = vec![booking("alice", "2026-11-23 10:00", "2026-11-23 14:00"), planned[1].clone()];
        let settled = settle(vec![], fresh.clone(), Achieved { ended: &planned, started: &[], missed: &[] }, now);
        assert_eq!(settled.history, vec![planned[1].clone()], "bob's ended booking goes to the history");
        assert_eq!(settled.extended, vec![fresh[0].clone()], "alice's extension wins");
        assert_eq!(settled.running, vec![fresh[0].clone()]);
    }

    /// Cancelled while its container started: not made running again; a pass stops it.
    #[test]
    fn a_booking_cancelled_while_its_container_started_is_stale() {
        let now = at("2026-11-23 12:00");
        let cancelled = booking("alice", "2026-11-23 12:00", "2026-11-23 14:00");
        let achieved = Achieved { ended: &[], started: std::slice::from_ref(&cancelled), missed: &[] };
        let settled = settle(vec![], vec![], achieved, now);
        assert_eq!(settled.running, vec![]);
        assert_eq!(settled.stale, vec![cancelled.user_id]);
    }
}
