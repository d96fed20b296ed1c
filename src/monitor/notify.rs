//! The student knows before it matters: what a pass tells them, and how.
//!
//! - **In the container**, at every pass: `/etc/motd` (the login banner) with when the
//!   booking ends, what is kept and lost, and the command that extends it or who holds the
//!   resources next. `book extend` asks for a pass, so the banner follows an extension at once.
//! - **In every open terminal** of the container, at the pass an hour before the end and the
//!   one half an hour before: the same facts, with the time left.
//! - **By mail**, to students with an address, when the mail server is configured: the
//!   container is ready; the booking ends within the hour; the booking's container was
//!   refused its start (over quota, image missing, Docker error), with what to do.
//!
//! Which pass is "an hour before": the first pass with more than 30 and at most 60 minutes
//! left; "half an hour before": the first with at most 30 minutes left. Passes run at :00 and
//! :30 and bookings end on :00 or :30, so those are the passes at end − 60 and end − 30; a
//! late pass (11:07 for an end at 12:00) still counts, and `jobs/notices.csv`
//! ([`crate::store::notices`]) keeps a second pass in the same half hour from telling it again.
//!
//! The container is the student's and treated as hostile: one `docker exec` of `/bin/sh` per
//! container and pass, with a deadline and a cap on what it prints, whose output only counts
//! the terminals written to. Terminals are written in the background, so a terminal that
//! does not read cannot hold the exec. Nothing here can fail a pass: each problem is a
//! `NoticeWarning` or `MailWarning` line, and what was not told is tried at the next pass.

use anyhow::Result;
use chrono::{Duration, NaiveDateTime};

use super::plan::{Plan, same_booking};
use crate::booking::State;
use crate::docker::Containers;
use crate::mail::{Mail, Mailer};
use crate::model::{Booking, UserId, format_minutes};
use crate::monitor::backup;
use crate::rules::capacity::{self, Request, Shortage};
use crate::rules::slot;
use crate::store::config::Config;
use crate::store::lock::ExclusiveLock;
use crate::store::monitor_log::MonitorLog;
use crate::store::notices::{self, Event, Notice, Outcome, Refusal};
use crate::store::root::Root;
use crate::store::schedule::{self, ActiveFile};
use crate::volumes::UserFolders;

/// Written in every container at every pass; `$1` the banner, `$2` the warning for the
/// terminals (empty: none). Prints how many terminals it wrote to.
const CONTAINER_SCRIPT: &str = r#"umask 022
printf '%s' "$1" > /etc/motd 2>/dev/null
n=0
if [ -n "$2" ]; then
  for p in /dev/pts/[0-9]*; do
    [ -c "$p" ] || continue
    printf '%s' "$2" > "$p" 2>/dev/null &
    n=$((n+1))
  done
fi
echo "terminals $n""#;

/// How much longer the suggested extension is than the current end, at most.
const SUGGESTED_EXTENSION_HOURS: i64 = 2;

/// A booking's container refused its start this pass, and why (for the mail).
#[derive(Debug, Clone)]
pub struct StartRefused {
    pub booking: Booking,
    pub refusal: Refusal,
    pub detail: String,
}

/// Which warning of the end a pass at `now` gives, if any.
pub fn warning_stage(now: NaiveDateTime, end: NaiveDateTime) -> Option<Event> {
    let left = end - now;
    if left <= Duration::zero() {
        None
    } else if left <= Duration::minutes(30) {
        Some(Event::TerminalHalfHour)
    } else if left <= Duration::minutes(60) {
        Some(Event::TerminalHour)
    } else {
        None
    }
}

/// Whether a booking can be extended past its end, with the same GPUs, by the rules `book
/// extend` applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    /// The latest end that fits (the current end when none later does).
    pub latest: NaiveDateTime,
    /// Why no later end fits: who holds the resources next, or the longest booking allowed.
    pub limit: Option<String>,
}

pub fn extension(state: &State, booking: &Booking, now: NaiveDateTime) -> Extension {
    let others: Vec<Booking> = state.active().into_iter().filter(|other| !same_booking(other, booking)).collect();
    let host = state.host();
    let days = state.horizon().length_within_days;
    let from = booking.end.max(crate::rules::floor_to_slot(now));
    let fits = |until: NaiveDateTime| {
        let request = Request {
            user: Some(booking.user_id.clone()),
            start: from,
            end: until,
            cpus: booking.cpus,
            memory: booking.memory,
            gpus: booking.gpus.len() as u32,
            forward_port: Some(booking.forward_port),
        };
        capacity::place_keeping(&others, &host, &request, &booking.gpus)
    };
    // Slots after the end that a booking may still reach; a window that fits stays fitting
    // when it is cut shorter, so the last slot that fits is found by halving.
    let longest = booking.start + Duration::days(days);
    let slots = ((longest - booking.end).num_minutes() / slot().num_minutes()).max(0);
    let at = |count: i64| booking.end + slot() * count as i32;
    if slots > 0 && fits(at(slots)).is_ok() {
        return Extension { latest: at(slots), limit: Some(format!("a booking lasts at most {days} days")) };
    }
    let (mut fitting, mut failing) = (0, slots);
    while failing - fitting > 1 {
        let middle = (fitting + failing) / 2;
        if fits(at(middle)).is_ok() { fitting = middle } else { failing = middle }
    }
    let limit = match fits(at(fitting + 1)) {
        Err(shortage) if fitting < slots => holder_of(&others, booking, at(fitting), &shortage),
        _ => format!("a booking lasts at most {days} days"),
    };
    Extension { latest: at(fitting), limit: Some(limit) }
}

/// Who holds what is short from `at` on, in words.
fn holder_of(others: &[Booking], booking: &Booking, at: NaiveDateTime, shortage: &Shortage) -> String {
    let slot_end = at + slot();
    let in_slot = |other: &&Booking| other.overlaps(at, slot_end);
    let describe = |holders: Vec<&Booking>| -> String {
        let mut names: Vec<String> =
            holders.iter().map(|other| format!("{} from {}", other.user_id, format_minutes(other.start))).collect();
        names.dedup();
        names.join(" and ")
    };
    let newcomers: Vec<&Booking> = match shortage {
        Shortage::OwnOverlap { start, .. } => {
            return format!("your own next booking starts at {}", format_minutes(*start));
        }
        Shortage::PortBusy { holder, .. } => {
            others.iter().filter(in_slot).filter(|other| &other.user_id == holder).collect()
        }
        Shortage::Gpus { .. } => others
            .iter()
            .filter(in_slot)
            .filter(|other| other.gpus.iter().any(|gpu| booking.gpus.contains(gpu)))
            .collect(),
        Shortage::Cpus { .. } | Shortage::Memory { .. } => {
            others.iter().filter(in_slot).filter(|other| other.start >= booking.end).collect()
        }
    };
    if newcomers.is_empty() {
        return format!("the host is fully booked from {} ({shortage})", format_minutes(at));
    }
    format!("the resources are booked next by {}", describe(newcomers))
}

/// What a student reads about their running booking, in the banner, a warning or a mail.
pub struct Facts {
    pub user: UserId,
    pub host: String,
    pub end: NaiveDateTime,
    /// Container paths that `backup.yaml` saves; `None` when it could not be read.
    pub saved: Option<Vec<String>>,
    pub extension: Extension,
    /// The command that extends it, when it can be.
    pub extend_command: Option<String>,
}

impl Facts {
    pub fn gather(root: &Root, state: &State, booking: &Booking, host: &str, now: NaiveDateTime) -> Facts {
        let extension = extension(state, booking, now);
        let extend_command = (extension.latest > booking.end).then(|| {
            let suggested = extension.latest.min(booking.end + Duration::hours(SUGGESTED_EXTENSION_HOURS));
            let several = state.bookings_of(&booking.user_id).len() > 1;
            // The words after the host are split like a shell would on the server, so the
            // date keeps its quotes inside the single-quoted command.
            let start = if several {
                format!(" --start \"{}\"", booking.start.format("%Y %m %d %H %M"))
            } else {
                String::new()
            };
            format!(
                "ssh -t booking@{host} 'extend --user {}{start} --end \"{}\"'",
                booking.user_id,
                suggested.format("%Y %m %d %H %M")
            )
        });
        Facts {
            user: booking.user_id.clone(),
            host: host.to_string(),
            end: booking.end,
            saved: saved_paths(root, &state.config, &booking.user_id),
            extension,
            extend_command,
        }
    }

    fn kept(&self) -> String {
        let listed = match &self.saved {
            Some(paths) if paths.is_empty() => "(it lists nothing now)".to_string(),
            Some(paths) => paths.join(", "),
            None => "(it could not be read)".to_string(),
        };
        format!(
            "/root/Work and /root/Backup (your folders on the host), and what /root/Backup/backup.yaml lists: {listed}"
        )
    }

    fn lost() -> &'static str {
        "everything else in the container: installed packages, files elsewhere, running programs"
    }

    fn extend_lines(&self) -> Vec<String> {
        match (&self.extend_command, &self.extension.limit) {
            (Some(command), limit) => {
                let mut lines = vec![format!(
                    "To keep it longer (free until {}{}):",
                    format_minutes(self.extension.latest),
                    limit.as_ref().map(|limit| format!("; then {limit}")).unwrap_or_default()
                )];
                lines.push(format!("  {command}"));
                lines
            }
            (None, Some(limit)) => vec![format!("It cannot be extended: {limit}.")],
            (None, None) => Vec::new(),
        }
    }

    /// `/etc/motd`: the same facts, without the time left (it stays until the next pass).
    pub fn banner(&self) -> String {
        let mut lines = vec![
            format!("gpu-booking: this container is {}'s booking until {}.", self.user, format_minutes(self.end)),
            "At the end it is backed up and removed.".to_string(),
            format!("  kept: {}", self.kept()),
            format!("  lost: {}", Self::lost()),
        ];
        lines.extend(self.extend_lines());
        sanitize(&(lines.join("\n") + "\n"))
    }

    /// The warning written into the terminals.
    pub fn warning(&self, now: NaiveDateTime) -> String {
        let minutes = (self.end - now).num_minutes().max(0);
        let mut lines = vec![
            String::new(),
            format!("*** gpu-booking: your booking ends at {} (in {minutes} minutes). ***", format_minutes(self.end)),
            "At the end this container is backed up and removed.".to_string(),
            format!("  kept: {}", self.kept()),
            format!("  lost: {}", Self::lost()),
        ];
        lines.extend(self.extend_lines());
        lines.push(String::new());
        // Raw-mode programs (editors) need the carriage returns; a bell calls attention.
        format!("\x07{}", sanitize(&lines.join("\r\n")).replace('\n', "\r\n").replace("\r\r\n", "\r\n"))
    }
}

/// Control characters (from a student's `backup.yaml`, say) become `?`: the text goes into
/// terminals and mail.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|character| if character.is_control() && character != '\n' && character != '\r' { '?' } else { character })
        .collect()
}

/// The container paths the user's `backup.yaml` saves (its folders opened by handle).
fn saved_paths(root: &Root, config: &Config, user: &UserId) -> Option<Vec<String>> {
    let entry = config.users.get(user)?;
    let folders = UserFolders::open(root, config, user, entry, false).ok()?;
    let (list, _) = backup::load_list(root, &folders.backup);
    Some(list.entries.into_iter().map(|entry| entry.container_path).collect())
}

// ---- the mails ---------------------------------------------------------------------------

fn signature(host: &str) -> String {
    format!("\n-- \ngpu-booking on {host}\n")
}

pub fn ready_mail(to: &str, booking: &Booking, facts: &Facts) -> Mail {
    let host = &facts.host;
    let gpus = if booking.gpus.is_empty() {
        "no GPU".to_string()
    } else {
        format!("GPUs {}", crate::model::format_gpu_list(&booking.gpus))
    };
    let body = format!(
        "Hello {user},\n\nyour booking has started: its container runs on {host}.\n\n\
         \x20 log in:  ssh root@{host} -p {port}   (your booking password or SSH key)\n\
         \x20 host:    {host}\n\
         \x20 port:    {port}\n\
         \x20 until:   {end}\n\
         \x20 size:    {cpus} CPUs, {memory} GB memory, {gpus}\n\n\
         At the end the container is backed up and removed.\n\
         \x20 kept: {kept}\n\
         \x20 lost: {lost}\n\n\
         You get a mail an hour before the end.\n{signature}",
        user = booking.user_id,
        port = booking.forward_port,
        end = format_minutes(booking.end),
        cpus = booking.cpus,
        memory = booking.memory,
        kept = facts.kept(),
        lost = Facts::lost(),
        signature = signature(host),
    );
    Mail {
        to: to.to_string(),
        subject: format!("Your container on {host} is ready (until {})", format_minutes(booking.end)),
        body: sanitize(&body),
    }
}

pub fn end_mail(to: &str, booking: &Booking, facts: &Facts, now: NaiveDateTime) -> Mail {
    let host = &facts.host;
    let minutes = (booking.end - now).num_minutes().max(0);
    let mut lines = vec![
        format!("Hello {},", booking.user_id),
        String::new(),
        format!("your booking on {host} ends at {} (in {minutes} minutes).", format_minutes(booking.end)),
        String::new(),
        "At the end the container is backed up and removed.".to_string(),
        format!("  kept: {}", facts.kept()),
        format!("  lost: {}", Facts::lost()),
        String::new(),
    ];
    lines.extend(facts.extend_lines());
    Mail {
        to: to.to_string(),
        subject: format!("Your booking on {host} ends at {}", format_minutes(booking.end)),
        body: sanitize(&(lines.join("\n") + "\n" + &signature(host))),
    }
}

pub fn refused_mail(to: &str, refused: &StartRefused, config: &Config, host: &str) -> Mail {
    let booking = &refused.booking;
    let user = &booking.user_id;
    let detail: String = refused.detail.chars().take(300).collect();
    let retry = format!(
        "The monitor tries again at every pass (every 30 minutes) while the booking lasts (until {}).",
        format_minutes(booking.end)
    );
    let what = match refused.refusal {
        Refusal::Quota => format!(
            "Your folders are over their quota ({detail}), so the container was not started.\n\
             Nothing can be deleted without a container: ask the admin to raise your quota or to make room.\n{retry}"
        ),
        Refusal::Image => {
            let images = config.deploy.images.join(", ");
            let change = match &booking.image {
                Some(image) => format!(
                    "This booking asked for the image {image}: cancel it and book again with another image\n\
                     (book new … --image IMAGE), one of: {images}."
                ),
                None => format!(
                    "It starts with your default image: choose another one, which the next pass uses:\n\
                     \x20 ssh -t booking@{host} 'options --user {user} --image IMAGE'\n\
                     with IMAGE one of: {images}."
                ),
            };
            format!("Its image could not be found or pulled ({detail}).\n{change}\n{retry}")
        }
        Refusal::Docker => format!(
            "The Docker engine on {host} failed to start it ({detail}).\n\
             The admin sees this in the monitor's log. {retry}\nIf it goes on, write to the admin."
        ),
        Refusal::Setup => format!(
            "The host could not prepare your container ({detail}).\n\
             The admin sees this in the monitor's log. {retry}\nIf it goes on, write to the admin."
        ),
    };
    let body = format!(
        "Hello {user},\n\nyour booking on {host} from {} to {} could not start.\n\n{what}\n{}",
        format_minutes(booking.start),
        format_minutes(booking.end),
        signature(host)
    );
    Mail { to: to.to_string(), subject: format!("Your booking on {host} did not start"), body: sanitize(&body) }
}

// ---- what a pass tells -------------------------------------------------------------------

/// One container's part: the banner, and a warning for its terminals if one is due.
pub struct ContainerNotice {
    pub booking: Booking,
    pub banner: String,
    pub warning: Option<(Event, String)>,
}

/// One mail due.
pub struct MailNotice {
    pub booking: Booking,
    pub event: Event,
    pub mail: Mail,
}

/// Everything a pass tells.
#[derive(Default)]
pub struct Due {
    pub containers: Vec<ContainerNotice>,
    pub mails: Vec<MailNotice>,
}

impl Due {
    /// Only the login banners: what a pass gives when it cannot read what it told before (a
    /// warning or mail could then be given twice, or never stop).
    pub fn banners_only(mut self) -> Due {
        self.mails.clear();
        self.containers.iter_mut().for_each(|notice| notice.warning = None);
        self
    }
}

/// The warning a pass logs when `jobs/notices.csv` cannot be read.
pub fn unreadable_record(error: &anyhow::Error) -> String {
    format!("{error:#}; no warning or mail is given until it is fixed")
}

/// What the pass is to tell, from the plan, what it achieved and what was told before.
/// `running` holds the bookings whose containers run after this pass; `started` those that
/// started in it; `refused` those whose start was refused.
#[allow(clippy::too_many_arguments)]
pub fn due(
    root: &Root,
    state: &State,
    plan: &Plan,
    started: &[Booking],
    refused: &[StartRefused],
    told: &[Notice],
    now: NaiveDateTime,
) -> Due {
    let config = &state.config;
    let host = config.containers.host_name();
    let mailing = config.deploy.mail.is_some();
    let address = |booking: &Booking| -> Option<String> {
        config.users.get(&booking.user_id).and_then(|entry| entry.email.clone()).filter(|_| mailing)
    };
    // A mail is due unless it was sent, is being sent, or was given up; a failed one once more.
    let untold = |booking: &Booking, event: Event| -> bool {
        notices::find(told, booking, event).is_none_or(|notice| notice.outcome == Outcome::Failed)
    };
    let mut due = Due::default();
    let mut running: Vec<&Booking> = plan.continuing.iter().collect();
    running.extend(started.iter().filter(|booking| !plan.continuing.iter().any(|other| same_booking(other, booking))));
    for booking in running {
        let facts = Facts::gather(root, state, booking, &host, now);
        let just_started = started.iter().any(|other| same_booking(other, booking));
        // A container that just started has no terminal open yet: its warnings wait.
        let warning = warning_stage(now, booking.end)
            .filter(|_| !just_started)
            .filter(|stage| notices::find(told, booking, *stage).is_none())
            .map(|stage| (stage, facts.warning(now)));
        due.containers.push(ContainerNotice { booking: booking.clone(), banner: facts.banner(), warning });
        if let Some(to) = address(booking) {
            let ready_now = just_started && plan.starting.iter().any(|other| same_booking(other, booking));
            let ready_failed_before =
                notices::find(told, booking, Event::MailReady).is_some_and(|notice| notice.outcome == Outcome::Failed);
            if (ready_now || ready_failed_before) && untold(booking, Event::MailReady) {
                due.mails.push(MailNotice {
                    booking: booking.clone(),
                    event: Event::MailReady,
                    mail: ready_mail(&to, booking, &facts),
                });
            }
            if !just_started && warning_stage(now, booking.end).is_some() && untold(booking, Event::MailEnd) {
                due.mails.push(MailNotice {
                    booking: booking.clone(),
                    event: Event::MailEnd,
                    mail: end_mail(&to, booking, &facts, now),
                });
            }
        }
    }
    for refusal in refused {
        let event = Event::MailRefused(refusal.refusal);
        if let Some(to) = address(&refusal.booking)
            && untold(&refusal.booking, event)
        {
            due.mails.push(MailNotice {
                booking: refusal.booking.clone(),
                event,
                mail: refused_mail(&to, refusal, config, &host),
            });
        }
    }
    due
}

/// Tells what is due: the containers' banners and warnings and the mails, all at once, each
/// bounded. Returns the rows to record in `jobs/notices.csv`.
pub async fn deliver(
    root: &Root,
    config: &Config,
    containers: &impl Containers,
    due: Due,
    now: NaiveDateTime,
    log: &mut MonitorLog,
) -> Vec<Notice> {
    let mut told = Vec::new();
    let mailer = match (&config.deploy.mail, due.mails.is_empty()) {
        (Some(settings), false) => match Mailer::new(settings, &config.containers.host_name()) {
            Ok(mailer) => Some(mailer),
            Err(error) => {
                log.warning("MailWarning", &format!("{error:#}; {} mail(s) wait for the next pass", due.mails.len()));
                None
            }
        },
        _ => None,
    };
    let claimed = match &mailer {
        Some(_) => claim(root, &due.mails, now, log),
        None => Vec::new(),
    };
    let containers = futures_util::future::join_all(due.containers.iter().map(|notice| async move {
        let (_, text) = notice.warning.clone().unwrap_or((Event::TerminalHour, String::new()));
        let arguments = [notice.banner.clone(), text];
        (notice, containers.run_script(notice.booking.user_id.as_str(), CONTAINER_SCRIPT, &arguments).await)
    }));
    let mails = futures_util::future::join_all(claimed.iter().map(|(index, _)| {
        let mailer = mailer.as_ref();
        let mail = &due.mails[*index];
        async move {
            match mailer {
                Some(mailer) => mailer.send(&mail.mail).await,
                None => Err(anyhow::anyhow!("no mailer")),
            }
        }
    }));
    let (containers, mails) = tokio::join!(containers, mails);
    for (notice, result) in containers {
        let user = &notice.booking.user_id;
        match (result, &notice.warning) {
            // Not running (stopped for its quota, say): nobody is logged in to warn.
            (Ok(None), _) => {}
            (Ok(Some(output)), Some((stage, _))) => match terminals_written(&output) {
                Some(count) => {
                    log.info(&format!(
                        "{user} was warned in {count} open terminal(s) that the booking ends at {}",
                        format_minutes(notice.booking.end)
                    ));
                    told.push(Notice::new(&notice.booking, *stage, Outcome::Sent, 1, now));
                }
                None => log.warning(
                    "NoticeWarning",
                    &format!("{user}'s container did not confirm the warning of the end; the next pass tries again"),
                ),
            },
            (Ok(Some(_)), None) => {}
            (Err(error), _) => log.warning(
                "NoticeWarning",
                &format!("{user}'s login banner and warnings were not written: {error:#}; the next pass tries again"),
            ),
        }
    }
    for ((index, attempts), result) in claimed.iter().zip(mails) {
        let notice = &due.mails[*index];
        let user = &notice.booking.user_id;
        match result {
            Ok(()) => {
                log.info(&format!("{user} was mailed ({}) at {}", notice.event, notice.mail.to));
                told.push(Notice::new(&notice.booking, notice.event, Outcome::Sent, *attempts, now));
            }
            Err(error) => {
                let again = *attempts < 2;
                log.warning(
                    "MailWarning",
                    &format!(
                        "{user}'s mail ({}) was not sent: {error:#}; {}",
                        notice.event,
                        if again { "the next pass tries once more" } else { "given up" }
                    ),
                );
                let outcome = if again { Outcome::Failed } else { Outcome::GaveUp };
                told.push(Notice::new(&notice.booking, notice.event, outcome, *attempts, now));
            }
        }
    }
    told
}

/// `terminals N` from the container's script; `None` for anything else.
fn terminals_written(output: &str) -> Option<u32> {
    output.lines().rev().find_map(|line| line.trim().strip_prefix("terminals ")?.parse().ok())
}

/// Writes each due mail down as `sending` under the lock before it is sent, unless another
/// pass did meanwhile: a mail is never sent twice. Returns `(index in mails, attempt)`.
fn claim(root: &Root, mails: &[MailNotice], now: NaiveDateTime, log: &mut MonitorLog) -> Vec<(usize, u32)> {
    let claimed = (|| -> Result<Vec<(usize, u32)>> {
        let lock = ExclusiveLock::acquire(root)?;
        let told = notices::read(&lock)?;
        let mut claimed = Vec::new();
        let mut rows = Vec::new();
        for (index, mail) in mails.iter().enumerate() {
            let attempts = match notices::find(&told, &mail.booking, mail.event) {
                None => 1,
                Some(notice) if notice.outcome == Outcome::Failed => notice.attempts + 1,
                Some(_) => continue,
            };
            claimed.push((index, attempts));
            rows.push(Notice::new(&mail.booking, mail.event, Outcome::Sending, attempts, now));
        }
        notices::update(&lock, &rows, &active(&lock)?)?;
        Ok(claimed)
    })();
    claimed.unwrap_or_else(|error| {
        log.warning("MailWarning", &format!("{error:#}; no mail is sent in this pass"));
        Vec::new()
    })
}

fn active(lock: &ExclusiveLock) -> Result<Vec<Booking>> {
    let mut active = schedule::read(lock, ActiveFile::Booking)?;
    active.extend(schedule::read(lock, ActiveFile::Using)?);
    Ok(active)
}

/// Records what was told, under the lock, dropping rows of bookings no longer active.
pub fn record(root: &Root, told: &[Notice], log: &mut MonitorLog) {
    let result = (|| -> Result<()> {
        let lock = ExclusiveLock::acquire(root)?;
        notices::update(&lock, told, &active(&lock)?)
    })();
    if let Err(error) = result {
        log.warning("NoticeWarning", &format!("cannot record what was told: {error:#}"));
    }
}

/// What `monitor --dry-run` lists about telling students, read under a shared lock.
pub fn dry_run_lines(root: &Root, now: NaiveDateTime) -> Result<Vec<String>> {
    let (state, told) = {
        let lock = crate::store::lock::SharedLock::acquire(root)?;
        (State::load(&lock)?, notices::read(&lock))
    };
    let plan = super::plan::plan(now, &state.booked, &state.running);
    Ok(dry_run(root, &state, &plan, &told, now))
}

/// What `monitor --dry-run` lists: the banners, warnings and mails a pass at `now` would give,
/// taking every start as successful — with a record of what was told that cannot be read, the
/// warning the pass would log and only the banners, as the pass does.
pub fn dry_run(root: &Root, state: &State, plan: &Plan, told: &Result<Vec<Notice>>, now: NaiveDateTime) -> Vec<String> {
    let mut lines = Vec::new();
    let due = match told {
        Ok(told) => due(root, state, plan, &plan.starting, &[], told, now),
        Err(error) => {
            lines.push(format!("would warn (NoticeWarning): {}", unreadable_record(error)));
            due(root, state, plan, &plan.starting, &[], &[], now).banners_only()
        }
    };
    for notice in &due.containers {
        lines.push(format!(
            "would write {}'s login banner (ends {})",
            notice.booking.user_id,
            format_minutes(notice.booking.end)
        ));
        if let Some((stage, _)) = &notice.warning {
            lines.push(format!(
                "would warn every open terminal of {}'s container ({stage}) that the booking ends at {}",
                notice.booking.user_id,
                format_minutes(notice.booking.end)
            ));
        }
    }
    for mail in &due.mails {
        lines.push(format!(
            "would mail {} to {}: {:?}{}",
            mail.event,
            mail.mail.to,
            mail.mail.subject,
            if mail.event == Event::MailReady && !plan.continuing.iter().any(|b| same_booking(b, &mail.booking)) {
                " (once the container starts)"
            } else {
                ""
            }
        ));
    }
    if state.config.deploy.mail.is_none() {
        lines.push("no mail: host_deploy.yaml has no mail settings".to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::tests::{Lab, at};

    #[test]
    fn the_hour_and_the_half_hour_before_the_end() {
        let end = at("2026-11-23 12:00");
        assert_eq!(warning_stage(at("2026-11-23 10:30"), end), None);
        assert_eq!(warning_stage(at("2026-11-23 10:59"), end), None);
        assert_eq!(warning_stage(at("2026-11-23 11:00"), end), Some(Event::TerminalHour));
        assert_eq!(warning_stage(at("2026-11-23 11:07"), end), Some(Event::TerminalHour), "a late pass counts");
        assert_eq!(warning_stage(at("2026-11-23 11:29"), end), Some(Event::TerminalHour));
        assert_eq!(warning_stage(at("2026-11-23 11:30"), end), Some(Event::TerminalHalfHour));
        assert_eq!(warning_stage(at("2026-11-23 11:59"), end), Some(Event::TerminalHalfHour));
        assert_eq!(warning_stage(end, end), None, "the pass at the end stops it");
    }

    fn booking(user: &str, start: &str, end: &str, cpus: f64) -> Booking {
        Booking {
            start: at(start),
            end: at(end),
            user_id: UserId::parse(user).unwrap(),
            cpus,
            memory: 2,
            gpus: vec![],
            forward_port: if user == "alice" { 10001 } else { 10002 },
            image: None,
            extra_command: None,
        }
    }

    /// A host of 2 CPUs with alice running from 10:00 to 12:00 on both, and `others` booked.
    fn extension_with(others: Vec<Booking>) -> Extension {
        let lab = Lab::with_capability(
            "max:\n  cpus: 2\n  ram: 16\n  swap_size: 0\n  gpus: 0\n  shm_rate: 1\n  memory: 16\n\
             allow_userIDs: [alice, bob]\nmax_default_capability:\n  cpus: 2\n  memory: 8\n  gpus: 0\n",
        );
        let alice = booking("alice", "2026-11-23 10:00", "2026-11-23 12:00", 2.0);
        let state = State { config: lab.config(), booked: others, running: vec![alice.clone()] };
        extension(&state, &alice, at("2026-11-23 11:00"))
    }

    #[test]
    fn an_extension_reaches_the_next_booking_or_the_longest_booking() {
        let free = extension_with(vec![]);
        assert_eq!(free.latest, at("2026-12-07 10:00"), "14 days from the start");
        assert_eq!(free.limit.as_deref(), Some("a booking lasts at most 14 days"));
        let later = extension_with(vec![booking("bob", "2026-11-23 15:00", "2026-11-23 17:00", 1.0)]);
        assert_eq!(later.latest, at("2026-11-23 15:00"));
        assert_eq!(later.limit.as_deref(), Some("the resources are booked next by bob from 2026-11-23 15:00"));
        let next = extension_with(vec![booking("bob", "2026-11-23 12:00", "2026-11-23 13:00", 1.0)]);
        assert_eq!(next.latest, at("2026-11-23 12:00"), "no later end fits");
        assert_eq!(next.limit.as_deref(), Some("the resources are booked next by bob from 2026-11-23 12:00"));
    }

    #[test]
    fn terminal_text_has_no_control_characters_but_its_own() {
        assert_eq!(sanitize("a\x1b[31mb\u{7}c\nd"), "a?[31mb?c\nd");
        assert_eq!(terminals_written("noise\nterminals 2\n"), Some(2));
        assert_eq!(terminals_written("terminals lots"), None);
    }
}
