//! `book`: the student's booking tool. Prompted by default (it is the forced command of the
//! shared `booking` SSH account); every prompt also has a flag, so scripts and tests need no
//! terminal. This file parses, prompts and prints; the decisions are in the library.

mod prompts;

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::NaiveDateTime;
use clap::Parser;
use gpu_booking::account::{self, DefaultsChange, LoginOutcome, Standing};
use gpu_booking::booking::{self, Cancelled, NewBooking, NoCapacity, State};
use gpu_booking::cli::book::{Cli, Command, FreeArgs, ListArgs, NewArgs, OptionsArgs};
use gpu_booking::cli::{describe, finish};
use gpu_booking::clock;
use gpu_booking::error::{AuthenticationFailed, Refused, UsageError};
use gpu_booking::login_shell;
use gpu_booking::model::{Booking, BookingState, UserId, format_gpu_list, format_minutes};
use gpu_booking::rules::{capacity, time_input};
use gpu_booking::store::config::Config;
use gpu_booking::store::faillock;
use gpu_booking::store::lock::{ExclusiveLock, SharedLock};
use gpu_booking::store::root::Root;
use gpu_booking::views::{self, BookingView, TimelineOptions};
use serde::Serialize;

fn main() -> ExitCode {
    gpu_booking::cli::end_quietly_on_closed_pipe();
    // As the booking account's login shell, book's command line is built from `-c STRING`
    // and the account's home folder (see gpu_booking::login_shell).
    let arguments = match login_shell::arguments() {
        Ok(arguments) => arguments,
        Err(error) => return finish(Err(error)),
    };
    let cli = Cli::parse_from(arguments);
    finish(run(cli))
}

fn run(cli: Cli) -> Result<()> {
    let root = cli.global.root();
    let now = clock::now()?;
    let session = Session {
        root,
        now,
        user: cli.user.clone(),
        password_stdin: cli.password_stdin,
        stdin_lines: std::cell::RefCell::new(None),
    };
    match cli.command {
        None => {
            let user = session.login()?;
            prompted_new(&session, &user, NewArgs::default())
        }
        Some(Command::New(arguments)) => {
            let user = session.login()?;
            if is_complete(&arguments) || !prompts::interactive() {
                scripted_new(&session, &user, arguments)
            } else {
                prompted_new(&session, &user, arguments)
            }
        }
        Some(Command::List(arguments)) => list(&session, arguments),
        Some(Command::Free(arguments)) => free(&session, arguments),
        Some(Command::Cancel { start }) => {
            let user = session.login()?;
            let start = start.map(|spec| parse_existing_start(&session, &spec)).transpose()?;
            let lock = ExclusiveLock::acquire(&session.root)?;
            match booking::cancel(&lock, &user, start, session.now)? {
                Cancelled::Removed(booking) => println!("Cancelled: {}", booking.describe()),
                Cancelled::EndsAt(booking, end) => {
                    println!(
                        "Your running booking now ends at {}; the monitor stops the container then.",
                        format_minutes(end)
                    );
                    println!("  {}", booking.describe());
                }
            }
            Ok(())
        }
        Some(Command::Extend { end, start }) => {
            let user = session.login()?;
            let start = start.map(|spec| parse_existing_start(&session, &spec)).transpose()?;
            let new_end = {
                let lock = SharedLock::acquire(&session.root)?;
                let state = State::load(&lock)?;
                let mine = state.bookings_of(&user);
                let current = match start {
                    Some(start) => mine.iter().find(|(_, booking)| booking.start == start),
                    None => mine.first().filter(|_| mine.len() == 1),
                };
                // A relative end counts from the current end; without one booking to count
                // from, the library explains what is missing.
                let base = current.map_or(session.now, |(_, booking)| booking.end);
                time_input::parse_end(&end, base, time_input::Horizon { start_within_days: 14, length_within_days: 28 })
                    .map_err(UsageError)?
            };
            let lock = ExclusiveLock::acquire(&session.root)?;
            let updated = booking::extend(&lock, &user, start, new_end, session.now)?;
            println!("Now ends at {}: {}", format_minutes(updated.end), updated.describe());
            Ok(())
        }
        Some(Command::Status { json }) => {
            let user = session.login()?;
            status(&session, &user, json)
        }
        Some(Command::Restart) => {
            let user = session.login()?;
            let lock = ExclusiveLock::acquire(&session.root)?;
            let running = booking::request_restart(&lock, &user)?;
            println!(
                "Restart requested: the monitor restarts container {} shortly (port {}).",
                running.user_id, running.forward_port
            );
            Ok(())
        }
        Some(Command::Options(arguments)) => {
            let user = session.login()?;
            options(&session, &user, arguments)
        }
    }
}

/// Who is asking, and how to ask them things.
struct Session {
    root: Root,
    now: NaiveDateTime,
    user: Option<String>,
    password_stdin: bool,
    /// The lines of standard input (with `--password-stdin`), read once, taken in order:
    /// the password, then a new one where one is asked for.
    stdin_lines: std::cell::RefCell<Option<std::collections::VecDeque<String>>>,
}

impl Session {
    /// Logs the user in: their id (flag or prompt), then their password (three tries), or —
    /// for an allowed user without settings — a new password, a port and folders.
    fn login(&self) -> Result<UserId> {
        let user_text = match &self.user {
            Some(user) => user.clone(),
            None if prompts::interactive() => prompts::user_id()?,
            None => bail!(UsageError("--user is needed when there is no terminal to ask on".into())),
        };
        let user = UserId::parse_typed(&user_text).map_err(UsageError)?;
        let standing = {
            let lock = SharedLock::acquire(&self.root)?;
            account::standing(&Config::load(&lock)?, &user)
        };
        match standing {
            Standing::NotAllowed => Err(account::not_allowed(&user)),
            Standing::Unclaimed { may_self_register: false } => Err(account::no_password_yet(&user)),
            Standing::Unclaimed { may_self_register: true } => {
                let chosen = match (self.password_stdin, self.next_stdin_line()?) {
                    (true, Some(line)) => line,
                    (true, None) => {
                        bail!(AuthenticationFailed("--password-stdin: standard input held no password".into()))
                    }
                    (false, _) => {
                        require_terminal("choose a password")?;
                        println!(
                            "Welcome, {user}! You are new here: choose a password for your bookings and your container."
                        );
                        prompts::new_password(user.as_str())?
                    }
                };
                let lock = ExclusiveLock::acquire(&self.root)?;
                let entry = account::register(&lock, &user, &chosen, &faillock::client_address(), self.now)?;
                let config = Config::load(&lock)?;
                if !self.password_stdin {
                    println!("Your settings:");
                    println!(
                        "  forward port  {} (ssh root@{} -p {} during a booking)",
                        entry.forward_port,
                        host_name(),
                        entry.forward_port
                    );
                    println!("  image         {}", entry.image.as_deref().unwrap_or(config.deploy.default_image()));
                    println!("  work folder   {}", entry.work_dir(&config.deploy, &user).display());
                    println!("  backup folder {}", entry.backup_dir(&config.deploy, &user).display());
                }
                Ok(user)
            }
            Standing::Known { must_choose } => {
                let address = faillock::client_address();
                // A locked id is not even asked for its password.
                account::check_not_locked(&ExclusiveLock::acquire(&self.root)?, &user, &address, self.now)?;
                let mut verified = false;
                for attempt in 1..=3 {
                    let typed = if self.password_stdin {
                        match self.next_stdin_line()? {
                            Some(line) => line,
                            None => break,
                        }
                    } else {
                        require_terminal("ask for your password")?;
                        prompts::password(attempt)?
                    };
                    let lock = ExclusiveLock::acquire(&self.root)?;
                    match account::log_in(&lock, &user, &typed, &address, self.now)? {
                        LoginOutcome::Verified => {
                            verified = true;
                            break;
                        }
                        LoginOutcome::Locked { until } => return Err(faillock::locked_error(&user, until)),
                        LoginOutcome::Wrong { locked_until: Some(until) } => {
                            return Err(faillock::locked_error(&user, until).context("wrong password"));
                        }
                        LoginOutcome::Wrong { locked_until: None } => {}
                    }
                    if self.password_stdin {
                        break;
                    }
                    eprintln!("{}", console::style("Wrong password.").red());
                }
                if !verified {
                    bail!(AuthenticationFailed(format!("wrong password for {user}; bye")));
                }
                if must_choose {
                    let chosen = match self.next_stdin_line()? {
                        Some(line) => line,
                        None if self.password_stdin => bail!(AuthenticationFailed(
                            "your password is temporary: give a new one on the second line of standard input".into()
                        )),
                        None => {
                            require_terminal("choose a new password")?;
                            println!("Your password is temporary: choose your own now.");
                            prompts::new_password(user.as_str())?
                        }
                    };
                    let lock = ExclusiveLock::acquire(&self.root)?;
                    account::set_password(&lock, &user, &chosen)?;
                }
                Ok(user)
            }
        }
    }

    /// The next line of standard input, with `--password-stdin`; `None` without it or at the end.
    fn next_stdin_line(&self) -> Result<Option<String>> {
        if !self.password_stdin {
            return Ok(None);
        }
        let mut lines = self.stdin_lines.borrow_mut();
        if lines.is_none() {
            *lines = Some(read_stdin_lines()?);
        }
        Ok(lines.as_mut().and_then(|lines| lines.pop_front()))
    }

    /// Logs in only when a user id was given (list and free work without one).
    fn optional_login(&self) -> Result<Option<UserId>> {
        if self.user.is_some() { self.login().map(Some) } else { Ok(None) }
    }
}

fn require_terminal(what: &str) -> Result<()> {
    if prompts::interactive() {
        Ok(())
    } else {
        bail!(UsageError(format!("there is no terminal to {what} on; use --password-stdin")))
    }
}

fn read_stdin_lines() -> Result<std::collections::VecDeque<String>> {
    let mut lines = std::collections::VecDeque::new();
    for line in std::io::stdin().lock().lines().take(3) {
        lines.push_back(
            line.context("cannot read the password from standard input")?.trim_end_matches('\r').to_string(),
        );
    }
    Ok(lines)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "this-server".into())
}

fn parse_existing_start(session: &Session, spec: &str) -> Result<NaiveDateTime> {
    gpu_booking::model::parse_time(spec.trim())
        .or_else(|_| time_input::parse_existing_start(spec, session.now))
        .map_err(|message| UsageError(format!("--start: {message}")).into())
}

/// True when every flag a booking needs was given, so nothing has to be asked.
fn is_complete(arguments: &NewArgs) -> bool {
    arguments.cpus.is_some()
        && arguments.memory.is_some()
        && arguments.gpus.is_some()
        && arguments.start.is_some()
        && arguments.end.is_some()
}

/// The object `book new --json` prints.
#[derive(Serialize)]
struct BookedJson<'a> {
    user_id: &'a str,
    start: String,
    end: String,
    cpus: f64,
    memory: u32,
    gpus: &'a [u32],
    forward_port: u16,
    image: Option<&'a str>,
    extra_command: Option<&'a str>,
}

fn print_booked(booking: &Booking, json: bool, default_image: &str) -> Result<()> {
    if json {
        let object = BookedJson {
            user_id: booking.user_id.as_str(),
            start: format_minutes(booking.start),
            end: format_minutes(booking.end),
            cpus: booking.cpus,
            memory: booking.memory,
            gpus: &booking.gpus,
            forward_port: booking.forward_port,
            image: booking.image.as_deref(),
            extra_command: booking.extra_command.as_deref(),
        };
        println!("{}", serde_json::to_string(&object)?);
        return Ok(());
    }
    println!("{}", console::style("Booking successful!").green().bold());
    println!("  from {} to {}", views::friendly(booking.start), views::friendly(booking.end));
    println!(
        "  {}, {} GB memory, {}",
        views::cpus_text(booking.cpus),
        booking.memory,
        views::gpu_ids_text(&booking.gpus)
    );
    println!("  image {}", booking.image.as_deref().unwrap_or(default_image));
    println!(
        "  log in once it has started: ssh root@{} -p {}   (your booking password or SSH key)",
        host_name(),
        booking.forward_port
    );
    Ok(())
}

fn scripted_new(session: &Session, user: &UserId, arguments: NewArgs) -> Result<()> {
    let missing: Vec<&str> = [
        ("--cpus", arguments.cpus.is_none()),
        ("--memory", arguments.memory.is_none()),
        ("--gpus", arguments.gpus.is_none()),
        ("--start", arguments.start.is_none()),
        ("--end", arguments.end.is_none()),
    ]
    .into_iter()
    .filter_map(|(flag, missing)| missing.then_some(flag))
    .collect();
    if !missing.is_empty() {
        bail!(UsageError(format!("without a terminal, book new needs {}", missing.join(", "))));
    }
    let horizon = time_input::Horizon::default();
    let start = time_input::parse_start(arguments.start.as_deref().unwrap_or_default(), session.now, horizon)
        .map_err(|message| UsageError(format!("--start: {message}")))?;
    let end = time_input::parse_end(arguments.end.as_deref().unwrap_or_default(), start, horizon)
        .map_err(|message| UsageError(format!("--end: {message}")))?;
    let mut request = NewBooking {
        user: user.clone(),
        cpus: arguments.cpus.unwrap_or_default(),
        memory: arguments.memory.unwrap_or_default(),
        gpus: arguments.gpus.unwrap_or_default(),
        start,
        end,
        image: arguments.image.clone(),
        extra_command: arguments.extra_command.clone(),
        forward_port: arguments.forward_port,
    };
    let lock = ExclusiveLock::acquire(&session.root)?;
    let result = booking::book(&lock, &request, session.now);
    let booked = match result {
        Err(error) if arguments.earliest => {
            match error.downcast_ref::<NoCapacity>().and_then(|refused| refused.earliest.clone()) {
                Some(window) => {
                    request.start = window.start;
                    request.end = window.end;
                    booking::book(&lock, &request, session.now)?
                }
                None => return Err(error),
            }
        }
        other => other?,
    };
    drop(lock);
    if arguments.json {
        return print_booked(&booked, true, "");
    }
    let default_image = Config::load(&SharedLock::acquire(&session.root)?)?.deploy.default_image().to_string();
    print_booked(&booked, false, &default_image)
}

fn prompted_new(session: &Session, user: &UserId, arguments: NewArgs) -> Result<()> {
    if !prompts::interactive() {
        bail!(UsageError(
            "there is no terminal to ask on; use `book new --cpus F --memory N --gpus N --start SPEC --end SPEC`"
                .into()
        ));
    }
    let (limits, host, default_image, user_image) = {
        let lock = SharedLock::acquire(&session.root)?;
        let state = State::load(&lock)?;
        let limits = state.config.limits_for(user).ok_or_else(|| account::not_allowed(user))?;
        let user_image = state.config.users.get(user).and_then(|entry| entry.image.clone());
        (limits, state.host(), state.config.deploy.default_image().to_string(), user_image)
    };
    println!(
        "Your maximum per booking: cpus={} memory={} GB gpus={}   (the host: {} CPUs, {} GB, {} GPUs)",
        limits.cpus.min(host.cpus),
        limits.memory.min(host.memory),
        limits.gpus.min(host.gpus),
        host.cpus,
        host.memory,
        host.gpus
    );
    let (cpus, memory, gpus) = match (arguments.cpus, arguments.memory, arguments.gpus) {
        (Some(cpus), Some(memory), Some(gpus)) => (cpus, memory, gpus),
        _ => prompts::capability(&limits, &host)?,
    };
    let horizon = time_input::Horizon::default();
    let start = match &arguments.start {
        Some(spec) => time_input::parse_start(spec, session.now, horizon).map_err(UsageError)?,
        None => prompts::start(session.now, horizon)?,
    };
    let end = match &arguments.end {
        Some(spec) => time_input::parse_end(spec, start, horizon).map_err(UsageError)?,
        None => prompts::end(start, horizon)?,
    };
    let mut request = NewBooking {
        user: user.clone(),
        cpus,
        memory,
        gpus,
        start,
        end,
        image: arguments.image.clone(),
        extra_command: arguments.extra_command.clone(),
        forward_port: arguments.forward_port,
    };
    if arguments.image.is_none() && arguments.extra_command.is_none() && arguments.forward_port.is_none() {
        prompts::booking_options(session, user, &mut request, user_image.as_deref().unwrap_or(&default_image))?;
    }
    if !arguments.yes
        && !prompts::confirm(&format!(
            "Book {}, {} GB, {} from {} to {}?",
            views::cpus_text(request.cpus),
            request.memory,
            views::gpu_count_text(request.gpus),
            views::friendly(request.start),
            views::friendly(request.end)
        ))?
    {
        println!("Nothing booked.");
        return Ok(());
    }
    loop {
        let lock = ExclusiveLock::acquire(&session.root)?;
        match booking::book(&lock, &request, session.now) {
            Ok(booked) => return print_booked(&booked, arguments.json, &default_image),
            Err(error) => {
                let Some(refused) = error.downcast_ref::<NoCapacity>() else {
                    return Err(error);
                };
                drop(lock);
                println!("{} {}", console::style("Not available:").red().bold(), refused.shortage);
                let Some(window) = refused.earliest.clone() else {
                    bail!(error);
                };
                println!(
                    "The earliest window that fits: {} to {}, GPUs {}.",
                    views::friendly(window.start),
                    views::friendly(window.end),
                    format_gpu_list(&window.gpus)
                );
                let question = "Book it instead?";
                if !prompts::confirm(question)? {
                    bail!(error);
                }
                // Checked again under the lock: if it went meanwhile, the loop offers the next.
                request.start = window.start;
                request.end = window.end;
            }
        }
    }
}

fn list(session: &Session, arguments: ListArgs) -> Result<()> {
    let me = session.optional_login()?;
    if arguments.mine && me.is_none() {
        bail!(UsageError("--mine needs --user (and your password)".into()));
    }
    let lock = SharedLock::acquire(&session.root)?;
    let state = State::load(&lock)?;
    drop(lock);
    if arguments.timeline {
        let width = console::Term::stdout().size_checked().map_or(80, |(_, columns)| columns as usize).max(60);
        let color = std::io::stdout().is_terminal();
        print!(
            "{}",
            views::timeline(&state, session.now, me.as_ref(), &TimelineOptions { days: arguments.days, width, color })
        );
        return Ok(());
    }
    let views = views::active_views(&state, me.as_ref(), arguments.mine);
    if arguments.json {
        println!("{}", serde_json::to_string(&views)?);
    } else {
        print!("{}", views::table(&views));
    }
    Ok(())
}

fn free(session: &Session, arguments: FreeArgs) -> Result<()> {
    let me = session.optional_login()?;
    let length = time_input::parse_duration(&arguments.duration)
        .map_err(|message| UsageError(format!("--duration: {message}")))?;
    if let Some(problem) = capacity::cpus_problem(arguments.cpus) {
        bail!(Refused(problem));
    }
    if arguments.memory < 1 {
        bail!(Refused("memory must be at least 1 GB".into()));
    }
    let lock = SharedLock::acquire(&session.root)?;
    let state = State::load(&lock)?;
    drop(lock);
    match booking::free_window(
        &state,
        me.as_ref(),
        arguments.cpus,
        arguments.memory,
        arguments.gpus,
        length,
        session.now,
    ) {
        Some(window) if arguments.json => println!("{}", serde_json::to_string(&window)?),
        Some(window) => println!(
            "Earliest window: {} to {}, GPUs {}",
            format_minutes(window.start),
            format_minutes(window.end),
            format_gpu_list(&window.gpus)
        ),
        None => bail!(Refused(format!(
            "no window of {} fits within the next {} days",
            arguments.duration,
            state.horizon().start_within_days
        ))),
    }
    Ok(())
}

#[derive(Serialize)]
struct StatusJson {
    #[serde(flatten)]
    booking: BookingView,
    container: String,
    /// Minutes until the end (running) or the start (booked).
    minutes_left: i64,
}

fn status(session: &Session, user: &UserId, json: bool) -> Result<()> {
    let lock = SharedLock::acquire(&session.root)?;
    let state = State::load(&lock)?;
    drop(lock);
    let mine = state.bookings_of(user);
    if json {
        let rows: Vec<StatusJson> = mine
            .iter()
            .map(|(booking_state, booking)| StatusJson {
                booking: BookingView::new(booking, *booking_state, Some(user)),
                container: booking.user_id.to_string(),
                minutes_left: match booking_state {
                    BookingState::Running => (booking.end - session.now).num_minutes(),
                    BookingState::Booked => (booking.start - session.now).num_minutes(),
                },
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    if mine.is_empty() {
        println!("You have no bookings. `book` makes one.");
    }
    for (booking_state, booking) in &mine {
        match booking_state {
            BookingState::Running => println!(
                "running  container {} on port {}: {} left (until {})",
                booking.user_id,
                booking.forward_port,
                human_duration(booking.end - session.now),
                format_minutes(booking.end)
            ),
            // Its start has come but no monitor pass has moved it yet.
            BookingState::Booked if booking.start <= session.now => println!(
                "booked   due now: the monitor's next pass starts the container; ends {}, port {}",
                format_minutes(booking.end),
                booking.forward_port
            ),
            BookingState::Booked => println!(
                "booked   starts in {} ({}), ends {}, port {}",
                human_duration(booking.start - session.now),
                format_minutes(booking.start),
                format_minutes(booking.end),
                booking.forward_port
            ),
        }
        println!(
            "         {}, {} GB, {}",
            views::cpus_text(booking.cpus),
            booking.memory,
            views::gpu_ids_text(&booking.gpus)
        );
    }
    Ok(())
}

fn human_duration(length: chrono::Duration) -> String {
    let minutes = length.num_minutes().max(0);
    let (days, hours, minutes) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes} min"),
        (0, _) => format!("{hours} h {minutes:02} min"),
        _ => format!("{days} d {hours} h"),
    }
}

fn options(session: &Session, user: &UserId, arguments: OptionsArgs) -> Result<()> {
    let nothing_asked = arguments.forward_port.is_none()
        && arguments.image.is_none()
        && arguments.extra_command.is_none()
        && arguments.add_ssh_key.is_empty()
        && arguments.remove_ssh_key.is_empty()
        && arguments.email.is_none()
        && !arguments.change_password;
    let change = if nothing_asked && prompts::interactive() && !arguments.json {
        prompts::defaults(session, user)?
    } else {
        DefaultsChange {
            forward_port: arguments.forward_port,
            image: arguments.image.map(|image| (image != "default").then_some(image)),
            extra_command: arguments
                .extra_command
                .map(|command| Some(command).filter(|command| !command.trim().is_empty())),
            add_ssh_keys: arguments.add_ssh_key,
            remove_ssh_keys: arguments.remove_ssh_key,
            email: arguments.email.map(|address| Some(address).filter(|address| address.trim() != "none")),
        }
    };
    if arguments.change_password {
        let chosen = if session.password_stdin {
            session.next_stdin_line()?.context(
                "--change-password with --password-stdin: put the new password on the line after your password",
            )?
        } else {
            require_terminal("ask for the new password")?;
            prompts::new_password(user.as_str())?
        };
        let lock = ExclusiveLock::acquire(&session.root)?;
        account::set_password(&lock, user, &chosen)?;
        eprintln!("Password changed.");
    }
    let lock = ExclusiveLock::acquire(&session.root)?;
    let entry = account::change_defaults(&lock, user, &change)?;
    let config = Config::load(&lock)?;
    if arguments.json {
        #[derive(Serialize)]
        struct OptionsJson<'a> {
            user_id: &'a str,
            forward_port: u16,
            image: Option<&'a str>,
            extra_command: Option<&'a str>,
            ssh_keys: &'a [String],
            email: Option<&'a str>,
        }
        let object = OptionsJson {
            user_id: user.as_str(),
            forward_port: entry.forward_port,
            image: entry.image.as_deref(),
            extra_command: entry.extra_command.as_deref(),
            ssh_keys: &entry.ssh_keys,
            email: entry.email.as_deref(),
        };
        println!("{}", serde_json::to_string(&object)?);
        return Ok(());
    }
    println!("Your defaults:");
    println!("  forward port   {}", entry.forward_port);
    println!(
        "  image          {}",
        entry.image.as_deref().unwrap_or(&format!("{} (the host's default)", config.deploy.default_image()))
    );
    println!("  extra command  {}", entry.extra_command.as_deref().unwrap_or("(none)"));
    println!("  e-mail         {}", entry.email.as_deref().unwrap_or("(none: no mail from the monitor)"));
    if entry.ssh_keys.is_empty() {
        println!("  SSH keys       (none)");
    }
    for (index, key) in entry.ssh_keys.iter().enumerate() {
        let words: Vec<&str> = key.split_whitespace().collect();
        let comment = words.get(2..).map(|rest| rest.join(" ")).unwrap_or_default();
        println!(
            "  SSH key {}      {} …{} {}",
            index + 1,
            words[0],
            &words[1][words[1].len().saturating_sub(8)..],
            comment
        );
    }
    Ok(())
}

/// Used by the prompts module for errors it prints and asks again.
pub(crate) fn explain(error: &anyhow::Error) -> String {
    describe(error)
}
