//! How `book` asks: the answers of a login ([`Terminal`] prompts, or [`StdinLines`] with
//! `--password-stdin`) and the booking dialogue on a terminal. Each wrong answer says what is
//! wrong and asks again; each question has a flag that answers it without a terminal.

use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use chrono::NaiveDateTime;
use dialoguer::{Confirm, Input, Password};
use gpu_booking::account::{self, Answers, DefaultsChange, NewPassword};
use gpu_booking::booking::{self, NewBooking, Outcome};
use gpu_booking::cli::book::NewArgs;
use gpu_booking::cli::describe;
use gpu_booking::error::{AuthenticationFailed, UsageError};
use gpu_booking::lab::Lab;
use gpu_booking::model::{UserId, UserLimits, format_gpu_list};
use gpu_booking::password;
use gpu_booking::rules::capacity::{Host, check_limits};
use gpu_booking::rules::time_input::{self, Horizon};
use gpu_booking::views;

use crate::print;

/// Questions need a person at a terminal: input from one and somewhere to show the prompt.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn require_terminal(what: &str) -> Result<()> {
    if interactive() {
        Ok(())
    } else {
        bail!(UsageError(format!("there is no terminal to {what} on; use --password-stdin")))
    }
}

fn user_id() -> Result<String> {
    if !interactive() {
        bail!(UsageError("--user is needed when there is no terminal to ask on".into()));
    }
    Ok(Input::<String>::new()
        .with_prompt("User id")
        .validate_with(|text: &String| UserId::parse_typed(text).map(|_| ()))
        .interact_text()?)
}

fn new_password(user: &str) -> Result<String> {
    // The rules are checked before the confirmation, so a weak password is typed only once.
    let owner = user.to_string();
    Ok(Password::new()
        .with_prompt("New password")
        .validate_with(move |chosen: &String| password::check_new(chosen, &owner))
        .with_confirmation("The same password again", "The two entries differ; try again.")
        .interact()?)
}

/// A login's answers typed at the terminal.
pub struct Terminal;

impl Answers for Terminal {
    fn user_id(&mut self) -> Result<String> {
        user_id()
    }

    fn password(&mut self, attempt: u32) -> Result<Option<String>> {
        require_terminal("ask for your password")?;
        let prompt = if attempt == 1 {
            "Password".to_string()
        } else {
            format!("Password (try {attempt} of {})", account::TRIES)
        };
        Ok(Some(Password::new().with_prompt(prompt).allow_empty_password(true).interact()?))
    }

    fn wrong_password(&mut self) {
        eprintln!("{}", console::style("Wrong password.").red());
    }

    fn new_password(&mut self, user: &UserId, reason: NewPassword) -> Result<String> {
        match reason {
            NewPassword::First => {
                require_terminal("choose a password")?;
                println!("Welcome, {user}! You are new here: choose a password for your bookings and your container.");
            }
            NewPassword::InsteadOfTemporary => {
                require_terminal("choose a new password")?;
                println!("Your password is temporary: choose your own now.");
            }
            NewPassword::Change => require_terminal("ask for the new password")?,
        }
        new_password(user.as_str())
    }
}

/// A login's answers from standard input (`--password-stdin`), one line each, read once and
/// taken in order: the password, then a new one where one is asked for. One password only:
/// a script that gives a wrong one gets no second try.
#[derive(Default)]
pub struct StdinLines {
    lines: Option<VecDeque<String>>,
}

impl StdinLines {
    fn next_line(&mut self) -> Result<Option<String>> {
        if self.lines.is_none() {
            let mut lines = VecDeque::new();
            for line in std::io::stdin().lock().lines().take(3) {
                let line = line.context("cannot read the password from standard input")?;
                lines.push_back(line.trim_end_matches('\r').to_string());
            }
            self.lines = Some(lines);
        }
        Ok(self.lines.as_mut().and_then(VecDeque::pop_front))
    }
}

impl Answers for StdinLines {
    fn user_id(&mut self) -> Result<String> {
        user_id()
    }

    fn password(&mut self, attempt: u32) -> Result<Option<String>> {
        if attempt > 1 { Ok(None) } else { self.next_line() }
    }

    fn wrong_password(&mut self) {}

    fn new_password(&mut self, _user: &UserId, reason: NewPassword) -> Result<String> {
        match (self.next_line()?, reason) {
            (Some(line), _) => Ok(line),
            (None, NewPassword::First) => {
                bail!(AuthenticationFailed("--password-stdin: standard input held no password".into()))
            }
            (None, NewPassword::InsteadOfTemporary) => bail!(AuthenticationFailed(
                "your password is temporary: give a new one on the second line of standard input".into()
            )),
            (None, NewPassword::Change) => {
                bail!("--change-password with --password-stdin: put the new password on the line after your password")
            }
        }
    }
}

/// Reads `cpus memory gpus`, e.g. `4 16 1`.
pub fn parse_capability(text: &str, limits: &UserLimits, host: &Host) -> Result<(f64, u32, u32), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [cpus, memory, gpus] = words.as_slice() else {
        return Err("type three numbers: cpus memory gpus, e.g. 4 16 1".into());
    };
    let cpus: f64 = cpus.parse().map_err(|_| format!("cpus: {cpus:?} is not a number"))?;
    let memory: u32 = memory.parse().map_err(|_| format!("memory: {memory:?} is not a whole number of GB"))?;
    let gpus: u32 = gpus.parse().map_err(|_| format!("gpus: {gpus:?} is not a whole number"))?;
    check_limits(cpus, memory, gpus, limits, host)?;
    Ok((cpus, memory, gpus))
}

fn capability(limits: &UserLimits, host: &Host) -> Result<(f64, u32, u32)> {
    let text = Input::<String>::new()
        .with_prompt("cpus memory gpus (e.g. 4 16 1)")
        .validate_with(|text: &String| parse_capability(text, limits, host).map(|_| ()))
        .interact_text()?;
    parse_capability(&text, limits, host).map_err(anyhow::Error::msg)
}

/// The start as typed, once it reads.
fn start(now: NaiveDateTime) -> Result<String> {
    Ok(Input::<String>::new()
        .with_prompt("Start (now, 2-day, YYYY MM DD hh mm)")
        .validate_with(|text: &String| time_input::parse_start(text, now, Horizon::default()).map(|_| ()))
        .interact_text()?)
}

/// The end as typed, once it reads.
fn end(start: NaiveDateTime) -> Result<String> {
    Ok(Input::<String>::new()
        .with_prompt("End (4-hour, 1-day, YYYY MM DD hh mm)")
        .validate_with(|text: &String| time_input::parse_end(text, start, Horizon::default()).map(|_| ()))
        .interact_text()?)
}

fn confirm(question: &str) -> Result<bool> {
    Ok(Confirm::new().with_prompt(question).default(true).interact()?)
}

/// `book` (or `book new` with flags missing) on a terminal: asks for what the flags did not
/// give, confirms, books; a request that does not fit is offered the earliest window that
/// does, until one is booked or declined.
pub fn new_booking(lab: &Lab, user: &UserId, mut arguments: NewArgs) -> Result<()> {
    if !interactive() {
        bail!(UsageError(
            "there is no terminal to ask on; use `book new --cpus F --memory N --gpus N --start SPEC --end SPEC`"
                .into()
        ));
    }
    let choices = account::choices(lab, user)?;
    let (limits, host) = (choices.limits()?, choices.host);
    println!(
        "Your maximum per booking: cpus={} memory={} GB gpus={}   (the host: {} CPUs, {} GB, {} GPUs)",
        limits.cpus.min(host.cpus),
        limits.memory.min(host.memory),
        limits.gpus.min(host.gpus),
        host.cpus,
        host.memory,
        host.gpus
    );
    if arguments.cpus.is_none() || arguments.memory.is_none() || arguments.gpus.is_none() {
        let (cpus, memory, gpus) = capability(&limits, &host)?;
        (arguments.cpus, arguments.memory, arguments.gpus) = (Some(cpus), Some(memory), Some(gpus));
    }
    let now = lab.now()?;
    if arguments.start.is_none() {
        arguments.start = Some(start(now)?);
    }
    if arguments.end.is_none() {
        let start = booking::parse_start(arguments.start.as_deref().unwrap_or_default(), now)?;
        arguments.end = Some(end(start)?);
    }
    let mut request = NewBooking::parse(user, &arguments.asked()?, now)?;
    if !arguments.has_booking_options() {
        booking_options(lab, user, &mut request, choices.image())?;
    }
    let question = format!(
        "Book {}, {} GB, {} from {} to {}?",
        views::cpus_text(request.cpus),
        request.memory,
        views::gpu_count_text(request.gpus),
        views::friendly(request.start),
        views::friendly(request.end)
    );
    if !arguments.yes && !confirm(&question)? {
        println!("Nothing booked.");
        return Ok(());
    }
    loop {
        let refused = match booking::book_or_offer(lab, &request, false)? {
            Outcome::Booked { booking, default_image } => {
                return print::booked(&booking, arguments.json, &default_image);
            }
            Outcome::NoCapacity(refused) => refused,
        };
        println!("{} {}", console::style("Not available:").red().bold(), refused.shortage);
        let Some(window) = refused.earliest.clone() else {
            return Err(refused.refusal());
        };
        println!(
            "The earliest window that fits: {} to {}, GPUs {}.",
            views::friendly(window.start),
            views::friendly(window.end),
            format_gpu_list(&window.gpus)
        );
        if !confirm("Book it instead?")? {
            return Err(refused.refusal());
        }
        // Checked again under the lock: if it went meanwhile, the loop offers the next.
        request.start = window.start;
        request.end = window.end;
    }
}

/// Offers per-booking options (image, extra command, port), and to save them as defaults.
fn booking_options(lab: &Lab, user: &UserId, request: &mut NewBooking, current_image: &str) -> Result<()> {
    if !Confirm::new()
        .with_prompt("Change options for this booking (image, extra command, port)?")
        .default(false)
        .interact()?
    {
        return Ok(());
    }
    let choices = account::choices(lab, user)?;
    println!("Images offered here: {}", choices.images.join(", "));
    let image = Input::<String>::new()
        .with_prompt("Image")
        .with_initial_text(current_image)
        .validate_with(|text: &String| choices.check_image(text.trim()).map_err(|error| describe(&error)))
        .interact_text()?;
    let command = Input::<String>::new()
        .with_prompt("Extra command run in the container (empty: none)")
        .with_initial_text(choices.entry.as_ref().and_then(|entry| entry.extra_command.clone()).unwrap_or_default())
        .allow_empty(true)
        .interact_text()?;
    let current_port = choices.entry.as_ref().map_or(0, |entry| entry.forward_port);
    let port = Input::<u16>::new()
        .with_prompt("Forward port")
        .default(current_port)
        .validate_with(|port: &u16| choices.check_port(*port).map_err(|error| describe(&error)))
        .interact_text()?;
    request.image = Some(image.trim().to_string());
    request.extra_command = Some(command.trim().to_string()).filter(|command| !command.is_empty());
    request.forward_port = (port != current_port).then_some(port);
    if Confirm::new().with_prompt("Save these as your defaults too?").default(false).interact()? {
        let change = DefaultsChange {
            forward_port: request.forward_port,
            image: Some(request.image.clone().filter(|image| image != choices.default_image())),
            extra_command: Some(request.extra_command.clone()),
            ..DefaultsChange::default()
        };
        account::change_defaults(lab, user, &change)?;
        println!("Saved as your defaults.");
    }
    Ok(())
}

/// `book options` on a terminal: asks for each default, showing the current value.
pub fn defaults(lab: &Lab, user: &UserId) -> Result<DefaultsChange> {
    let choices = account::choices(lab, user)?;
    let entry = choices.entry()?;
    println!("Images offered here: {}", choices.images.join(", "));
    let image = Input::<String>::new()
        .with_prompt("Default image")
        .with_initial_text(choices.image())
        .validate_with(|text: &String| choices.check_image(text.trim()).map_err(|error| describe(&error)))
        .interact_text()?;
    let command = Input::<String>::new()
        .with_prompt("Default extra command (empty: none)")
        .with_initial_text(entry.extra_command.clone().unwrap_or_default())
        .allow_empty(true)
        .interact_text()?;
    let port = Input::<u16>::new()
        .with_prompt("Forward port")
        .default(entry.forward_port)
        .validate_with(|port: &u16| choices.check_port(*port).map_err(|error| describe(&error)))
        .interact_text()?;
    let mut add_ssh_keys = Vec::new();
    while Confirm::new().with_prompt("Add an SSH public key?").default(false).interact()? {
        let key = Input::<String>::new()
            .with_prompt("Paste the line of your id_*.pub")
            .validate_with(|text: &String| {
                gpu_booking::rules::settings::check_ssh_key(text).map(|_| ()).map_err(|error| describe(&error))
            })
            .interact_text()?;
        add_ssh_keys.push(key);
    }
    Ok(DefaultsChange {
        forward_port: Some(port),
        image: Some(Some(image.trim().to_string()).filter(|image| image != choices.default_image())),
        extra_command: Some(Some(command.trim().to_string()).filter(|command| !command.is_empty())),
        add_ssh_keys,
        remove_ssh_keys: Vec::new(),
        email: None,
    })
}
