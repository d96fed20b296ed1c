//! `jobs/notices.csv`: what the monitor has told each student — the warnings written into a
//! container's terminals before the end, and every mail — so that no event is told twice,
//! whatever passes run (the timer's, one requested by `book`, one run by hand).
//!
//! ```text
//! user_id,start,end,event,outcome,attempts,at
//! alice,2026-11-23 10:00:00,2026-11-23 12:00:00,mail-ready,sent,1,2026-11-23 10:00:00
//! alice,2026-11-23 10:00:00,2026-11-23 12:00:00,terminal-60,sent,1,2026-11-23 11:00:00
//! ```
//!
//! A booking is `(user_id, start)`; warnings about the end (`terminal-60`, `terminal-30`,
//! `mail-end`) are about one end, so a booking extended after its warning is warned again
//! before its new end. A mail is written down as `sending` under the lock *before* it is
//! sent, then as `sent` or `failed` after: a pass killed in between leaves `sending`, which
//! is never sent again (an event is mailed at most once, never twice). A `failed` mail is
//! tried once more at the next pass, then `gave-up`.
//!
//! Locking: read under any lock guard, rewritten whole under the [`ExclusiveLock`], atomically.
//! Rows of bookings that are no longer active are dropped at each rewrite, so the file stays
//! as small as the schedule. It lies in the booking account's `jobs/` and the monitor reads
//! it as root: only as [`crate::store::state_folder`] allows. A file that does not parse stops every
//! notice (a MailWarning names the line), never a pass.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDateTime;

use crate::error::{FileProblem, FileProblems};
use crate::model::{Booking, UserId, format_time, parse_time};
use crate::store::atomic_file;
use crate::store::lock::{ExclusiveLock, LockHeld};
use crate::store::root::Root;

pub const HEADER: &str = "user_id,start,end,event,outcome,attempts,at";

/// Why a booking's container did not start, in the words a mail is chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The work or backup folder is over its quota.
    Quota,
    /// The image could not be found or pulled.
    Image,
    /// The Docker engine failed.
    Docker,
    /// The host's side: the user's folders, their entry, a foreign container with their name.
    Setup,
}

/// What a student is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The terminals of the container, at the pass an hour before the end.
    TerminalHour,
    /// The terminals, at the pass half an hour before the end.
    TerminalHalfHour,
    /// Mail: the container is ready.
    MailReady,
    /// Mail: the booking ends within the hour.
    MailEnd,
    /// Mail: the booking's container was refused its start.
    MailRefused(Refusal),
}

impl Event {
    pub fn word(self) -> &'static str {
        match self {
            Event::TerminalHour => "terminal-60",
            Event::TerminalHalfHour => "terminal-30",
            Event::MailReady => "mail-ready",
            Event::MailEnd => "mail-end",
            Event::MailRefused(Refusal::Quota) => "mail-refused-quota",
            Event::MailRefused(Refusal::Image) => "mail-refused-image",
            Event::MailRefused(Refusal::Docker) => "mail-refused-docker",
            Event::MailRefused(Refusal::Setup) => "mail-refused-setup",
        }
    }

    fn from_word(word: &str) -> Option<Event> {
        [
            Event::TerminalHour,
            Event::TerminalHalfHour,
            Event::MailReady,
            Event::MailEnd,
            Event::MailRefused(Refusal::Quota),
            Event::MailRefused(Refusal::Image),
            Event::MailRefused(Refusal::Docker),
            Event::MailRefused(Refusal::Setup),
        ]
        .into_iter()
        .find(|event| event.word() == word)
    }

    /// Warnings about one end: the same event for another end is another event.
    fn is_about_the_end(self) -> bool {
        matches!(self, Event::TerminalHour | Event::TerminalHalfHour | Event::MailEnd)
    }

    pub fn is_mail(self) -> bool {
        matches!(self, Event::MailReady | Event::MailEnd | Event::MailRefused(_))
    }
}

impl fmt::Display for Event {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.word())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Claimed by a pass that is sending it now (or was killed while sending it).
    Sending,
    Sent,
    /// Not delivered; tried again at the next pass.
    Failed,
    /// Not delivered twice; not tried again.
    GaveUp,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Sending => "sending",
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
            Outcome::GaveUp => "gave-up",
        }
    }

    fn from_word(word: &str) -> Option<Outcome> {
        [Outcome::Sending, Outcome::Sent, Outcome::Failed, Outcome::GaveUp].into_iter().find(|o| o.word() == word)
    }
}

/// One event told (or being told) to one booking's student.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub user_id: UserId,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub event: Event,
    pub outcome: Outcome,
    /// Tries so far.
    pub attempts: u32,
    /// When it was last tried.
    pub at: NaiveDateTime,
}

impl Notice {
    pub fn new(booking: &Booking, event: Event, outcome: Outcome, attempts: u32, at: NaiveDateTime) -> Notice {
        Notice {
            user_id: booking.user_id.clone(),
            start: booking.start,
            end: booking.end,
            event,
            outcome,
            attempts,
            at,
        }
    }

    /// Whether this row is about `event` for `booking` (its end too, for warnings of the end).
    pub fn is_for(&self, booking: &Booking, event: Event) -> bool {
        self.user_id == booking.user_id
            && self.start == booking.start
            && self.event == event
            && (!event.is_about_the_end() || self.end == booking.end)
    }

    fn same_event(&self, other: &Notice) -> bool {
        self.user_id == other.user_id
            && self.start == other.start
            && self.event == other.event
            && (!self.event.is_about_the_end() || self.end == other.end)
    }
}

/// What is known of an event for a booking: nothing, or its row.
pub fn find<'a>(notices: &'a [Notice], booking: &Booking, event: Event) -> Option<&'a Notice> {
    notices.iter().find(|notice| notice.is_for(booking, event))
}

pub fn path(root: &Root) -> PathBuf {
    root.jobs_dir().join("notices.csv")
}

/// Reads the file; a missing one is nothing told yet. Any bad row is an error naming its line
/// and field.
pub fn read(lock: &impl LockHeld) -> Result<Vec<Notice>> {
    let path = path(lock.root());
    let shown = lock.root().display(&path);
    let Some(text) =
        crate::store::state_folder::read_to_string(&path).with_context(|| format!("cannot read {shown}"))?
    else {
        return Ok(Vec::new());
    };
    parse(&shown, &text).map_err(|problems| FileProblems(problems).into())
}

fn parse(shown: &str, text: &str) -> Result<Vec<Notice>, Vec<FileProblem>> {
    let mut notices = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() || (index == 0 && line.trim() == HEADER) {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 7 {
            problems.push(FileProblem::error(
                shown,
                Some(number),
                "",
                format!("expected 7 fields ({HEADER}), found {}", fields.len()),
            ));
            continue;
        }
        let mut bad =
            |field: &str, message: String| problems.push(FileProblem::error(shown, Some(number), field, message));
        let user = UserId::parse(fields[0]).map_err(|message| bad("user_id", message)).ok();
        let time = |field: &str, text: &str, bad: &mut dyn FnMut(&str, String)| {
            parse_time(text).map_err(|message| bad(field, message)).ok()
        };
        let start = time("start", fields[1], &mut bad);
        let end = time("end", fields[2], &mut bad);
        let event = Event::from_word(fields[3]);
        if event.is_none() {
            bad(
                "event",
                format!(
                    "expected one of terminal-60, terminal-30, mail-ready, mail-end, mail-refused-…, found {:?}",
                    fields[3]
                ),
            );
        }
        let outcome = Outcome::from_word(fields[4]);
        if outcome.is_none() {
            bad("outcome", format!("expected sending, sent, failed or gave-up, found {:?}", fields[4]));
        }
        let attempts = fields[5]
            .parse::<u32>()
            .map_err(|_| bad("attempts", format!("expected a whole number, found {:?}", fields[5])))
            .ok();
        let at = time("at", fields[6], &mut bad);
        if let (Some(user_id), Some(start), Some(end), Some(event), Some(outcome), Some(attempts), Some(at)) =
            (user, start, end, event, outcome, attempts, at)
        {
            notices.push(Notice { user_id, start, end, event, outcome, attempts, at });
        }
    }
    if problems.is_empty() { Ok(notices) } else { Err(problems) }
}

fn render(notices: &[Notice]) -> String {
    let mut text = format!("{HEADER}\n");
    for notice in notices {
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            notice.user_id,
            format_time(notice.start),
            format_time(notice.end),
            notice.event,
            notice.outcome.word(),
            notice.attempts,
            format_time(notice.at)
        ));
    }
    text
}

/// Writes `changes` over what the file holds (a row for the same event is replaced), keeping
/// only rows of bookings in `active` (the schedule as read under this same lock).
pub fn update(lock: &ExclusiveLock, changes: &[Notice], active: &[Booking]) -> Result<()> {
    let mut notices = read(lock)?;
    for change in changes {
        match notices.iter_mut().find(|notice| notice.same_event(change)) {
            Some(notice) => *notice = change.clone(),
            None => notices.push(change.clone()),
        }
    }
    let before = crate::store::state_folder::read_to_string(&path(lock.root()))?;
    notices.retain(|notice| {
        active.iter().any(|booking| booking.user_id == notice.user_id && booking.start == notice.start)
    });
    let text = render(&notices);
    // Nothing to keep and no file yet: a lab without warnings or mail gets no extra file.
    if before.as_deref() == Some(text.as_str()) || (before.is_none() && notices.is_empty()) {
        return Ok(());
    }
    atomic_file::write_atomically(lock, &path(lock.root()), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples::at;

    fn booking(end: &str) -> Booking {
        Booking {
            start: at("2026-11-23 10:00"),
            end: at(end),
            user_id: UserId::parse("alice").unwrap(),
            cpus: 1.0,
            memory: 2,
            gpus: vec![],
            forward_port: 10001,
            image: None,
            extra_command: None,
        }
    }

    #[test]
    fn rows_read_back_and_bad_ones_name_line_and_field() {
        let notices = vec![
            Notice::new(&booking("2026-11-23 12:00"), Event::MailReady, Outcome::Sent, 1, at("2026-11-23 10:00")),
            Notice::new(
                &booking("2026-11-23 12:00"),
                Event::MailRefused(Refusal::Quota),
                Outcome::Failed,
                1,
                at("2026-11-23 10:00"),
            ),
        ];
        assert_eq!(parse("jobs/notices.csv", &render(&notices)).unwrap(), notices);
        let bad = format!(
            "{HEADER}\nalice,2026-11-23 10:00:00,2026-11-23 12:00:00,mail-everything,sent,1,2026-11-23 10:00:00\nx\n"
        );
        let problems: Vec<String> =
            parse("jobs/notices.csv", &bad).unwrap_err().iter().map(ToString::to_string).collect();
        assert!(problems[0].starts_with("jobs/notices.csv:2: event: expected one of"), "{problems:?}");
        assert!(problems[1].starts_with("jobs/notices.csv:3: expected 7 fields"), "{problems:?}");
    }

    #[test]
    fn a_warning_of_the_end_is_for_one_end() {
        let told =
            [Notice::new(&booking("2026-11-23 12:00"), Event::TerminalHour, Outcome::Sent, 1, at("2026-11-23 11:00"))];
        assert!(find(&told, &booking("2026-11-23 12:00"), Event::TerminalHour).is_some());
        assert!(find(&told, &booking("2026-11-23 14:00"), Event::TerminalHour).is_none(), "extended: warned again");
        let ready =
            [Notice::new(&booking("2026-11-23 12:00"), Event::MailReady, Outcome::Sent, 1, at("2026-11-23 10:00"))];
        assert!(find(&ready, &booking("2026-11-23 14:00"), Event::MailReady).is_some(), "ready is told once");
    }
}
