//! The questions `book` asks on a terminal. Each wrong answer says what is wrong and asks
//! again; each question has a flag that answers it without a terminal.

use std::io::IsTerminal;

use anyhow::Result;
use chrono::NaiveDateTime;
use dialoguer::{Confirm, Input, Password};
use gpu_booking::account::{self, DefaultsChange};
use gpu_booking::booking::NewBooking;
use gpu_booking::password;
use gpu_booking::rules::capacity::{Host, check_limits};
use gpu_booking::rules::time_input::{self, Horizon};
use gpu_booking::store::config::Config;
use gpu_booking::store::lock::{ExclusiveLock, SharedLock};

use crate::Session;
use gpu_booking::model::{UserId, UserLimits};

/// Questions need a person at a terminal: input from one and somewhere to show the prompt.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

pub fn user_id() -> Result<String> {
    Ok(Input::<String>::new()
        .with_prompt("User id")
        .validate_with(|text: &String| UserId::parse_typed(text).map(|_| ()))
        .interact_text()?)
}

pub fn password(attempt: u32) -> Result<String> {
    let prompt = if attempt == 1 { "Password".to_string() } else { format!("Password (try {attempt} of 3)") };
    Ok(Password::new().with_prompt(prompt).allow_empty_password(true).interact()?)
}

pub fn new_password(user: &str) -> Result<String> {
    // The rules are checked before the confirmation, so a weak password is typed only once.
    let owner = user.to_string();
    Ok(Password::new()
        .with_prompt("New password")
        .validate_with(move |chosen: &String| password::check_new(chosen, &owner))
        .with_confirmation("The same password again", "The two entries differ; try again.")
        .interact()?)
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

pub fn capability(limits: &UserLimits, host: &Host) -> Result<(f64, u32, u32)> {
    let text = Input::<String>::new()
        .with_prompt("cpus memory gpus (e.g. 4 16 1)")
        .validate_with(|text: &String| parse_capability(text, limits, host).map(|_| ()))
        .interact_text()?;
    parse_capability(&text, limits, host).map_err(anyhow::Error::msg)
}

pub fn start(now: NaiveDateTime, horizon: Horizon) -> Result<NaiveDateTime> {
    let text = Input::<String>::new()
        .with_prompt("Start (now, 2-day, YYYY MM DD hh mm)")
        .validate_with(|text: &String| time_input::parse_start(text, now, horizon).map(|_| ()))
        .interact_text()?;
    time_input::parse_start(&text, now, horizon).map_err(anyhow::Error::msg)
}

pub fn end(start: NaiveDateTime, horizon: Horizon) -> Result<NaiveDateTime> {
    let text = Input::<String>::new()
        .with_prompt("End (4-hour, 1-day, YYYY MM DD hh mm)")
        .validate_with(|text: &String| time_input::parse_end(text, start, horizon).map(|_| ()))
        .interact_text()?;
    time_input::parse_end(&text, start, horizon).map_err(anyhow::Error::msg)
}

pub fn confirm(question: &str) -> Result<bool> {
    Ok(Confirm::new().with_prompt(question).default(true).interact()?)
}

/// Offers per-booking options (image, extra command, port), and to save them as defaults.
pub fn booking_options(session: &Session, user: &UserId, request: &mut NewBooking, current_image: &str) -> Result<()> {
    if !Confirm::new()
        .with_prompt("Change options for this booking (image, extra command, port)?")
        .default(false)
        .interact()?
    {
        return Ok(());
    }
    let config = {
        let lock = SharedLock::acquire(&session.root)?;
        Config::load(&lock)?
    };
    let entry = config.users.get(user).cloned();
    println!("Images offered here: {}", config.deploy.images.join(", "));
    let image = Input::<String>::new()
        .with_prompt("Image")
        .with_initial_text(current_image)
        .validate_with(|text: &String| {
            account::check_image(&config, text.trim()).map_err(|error| crate::explain(&error))
        })
        .interact_text()?;
    let command = Input::<String>::new()
        .with_prompt("Extra command run in the container (empty: none)")
        .with_initial_text(entry.as_ref().and_then(|entry| entry.extra_command.clone()).unwrap_or_default())
        .allow_empty(true)
        .interact_text()?;
    let current_port = entry.as_ref().map_or(0, |entry| entry.forward_port);
    let port = Input::<u16>::new()
        .with_prompt("Forward port")
        .default(current_port)
        .validate_with(|port: &u16| account::check_port(&config, user, *port).map_err(|error| crate::explain(&error)))
        .interact_text()?;
    request.image = Some(image.trim().to_string());
    request.extra_command = Some(command.trim().to_string()).filter(|command| !command.is_empty());
    request.forward_port = (port != current_port).then_some(port);
    if Confirm::new().with_prompt("Save these as your defaults too?").default(false).interact()? {
        let change = DefaultsChange {
            forward_port: request.forward_port,
            image: Some(request.image.clone().filter(|image| image != config.deploy.default_image())),
            extra_command: Some(request.extra_command.clone()),
            ..DefaultsChange::default()
        };
        let lock = ExclusiveLock::acquire(&session.root)?;
        account::change_defaults(&lock, user, &change)?;
        println!("Saved as your defaults.");
    }
    Ok(())
}

/// `book options` on a terminal: asks for each default, showing the current value.
pub fn defaults(session: &Session, user: &UserId) -> Result<DefaultsChange> {
    let config = {
        let lock = SharedLock::acquire(&session.root)?;
        Config::load(&lock)?
    };
    let entry = config.users.get(user).cloned().ok_or_else(|| anyhow::anyhow!("{user} has no settings yet"))?;
    println!("Images offered here: {}", config.deploy.images.join(", "));
    let image = Input::<String>::new()
        .with_prompt("Default image")
        .with_initial_text(entry.image.clone().unwrap_or_else(|| config.deploy.default_image().to_string()))
        .validate_with(|text: &String| {
            account::check_image(&config, text.trim()).map_err(|error| crate::explain(&error))
        })
        .interact_text()?;
    let command = Input::<String>::new()
        .with_prompt("Default extra command (empty: none)")
        .with_initial_text(entry.extra_command.clone().unwrap_or_default())
        .allow_empty(true)
        .interact_text()?;
    let port = Input::<u16>::new()
        .with_prompt("Forward port")
        .default(entry.forward_port)
        .validate_with(|port: &u16| account::check_port(&config, user, *port).map_err(|error| crate::explain(&error)))
        .interact_text()?;
    let mut add_ssh_keys = Vec::new();
    while Confirm::new().with_prompt("Add an SSH public key?").default(false).interact()? {
        let key = Input::<String>::new()
            .with_prompt("Paste the line of your id_*.pub")
            .validate_with(|text: &String| {
                account::check_ssh_key(text).map(|_| ()).map_err(|error| crate::explain(&error))
            })
            .interact_text()?;
        add_ssh_keys.push(key);
    }
    Ok(DefaultsChange {
        forward_port: Some(port),
        image: Some(Some(image.trim().to_string()).filter(|image| image != config.deploy.default_image())),
        extra_command: Some(Some(command.trim().to_string()).filter(|command| !command.is_empty())),
        add_ssh_keys,
        remove_ssh_keys: Vec::new(),
        email: None,
    })
}
