//! `book`: the student's booking tool. Prompted by default (it is the forced command of the
//! shared `booking` SSH account); every prompt also has a flag, so scripts and tests need no
//! terminal. This file parses, calls the library once per command, prints (`print`) and
//! returns the exit code; `prompts` asks on a terminal. The decisions are in the library.

mod print;
mod prompts;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Parser;
use gpu_booking::account::{self, Answers, NewPassword};
use gpu_booking::booking::{self, NewBooking, Outcome};
use gpu_booking::cli::book::{Cli, Command, OptionsArgs};
use gpu_booking::cli::finish;
use gpu_booking::clock;
use gpu_booking::error::UsageError;
use gpu_booking::lab::Lab;
use gpu_booking::login_shell;
use gpu_booking::model::{UserId, format_minutes};

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

/// Who is asking, and where their answers come from.
struct Session {
    lab: Lab,
    user: Option<String>,
    password_stdin: bool,
    answers: Box<dyn Answers>,
}

impl Session {
    /// Logs the user in; a first login is shown the settings it created (unless a script
    /// logs in with `--password-stdin`).
    fn login(&mut self) -> Result<UserId> {
        let logged_in = account::login(&self.lab, self.user.as_deref(), self.answers.as_mut())?;
        if let Some(registered) = &logged_in.registered
            && !self.password_stdin
        {
            print::registered(registered);
        }
        Ok(logged_in.user)
    }

    /// Logs in only when a user id was given (list and free work without one).
    fn optional_login(&mut self) -> Result<Option<UserId>> {
        if self.user.is_some() { self.login().map(Some) } else { Ok(None) }
    }
}

fn run(cli: Cli) -> Result<()> {
    let answers: Box<dyn Answers> =
        if cli.password_stdin { Box::new(prompts::StdinLines::default()) } else { Box::new(prompts::Terminal) };
    let mut session = Session {
        lab: Lab::at(cli.global.root(), clock::now()?),
        user: cli.user.clone(),
        password_stdin: cli.password_stdin,
        answers,
    };
    let now = session.lab.now()?;
    match cli.command {
        None => {
            let user = session.login()?;
            prompts::new_booking(&session.lab, &user, Default::default())
        }
        Some(Command::New(arguments)) => {
            let user = session.login()?;
            if !arguments.is_complete() && prompts::interactive() {
                return prompts::new_booking(&session.lab, &user, arguments);
            }
            let request = NewBooking::parse(&user, &arguments.asked()?, now)?;
            match booking::book_or_offer(&session.lab, &request, arguments.earliest)? {
                Outcome::Booked { booking, default_image } => print::booked(&booking, arguments.json, &default_image),
                Outcome::NoCapacity(refused) => Err(refused.refusal()),
            }
        }
        Some(Command::List(arguments)) => {
            let me = session.optional_login()?;
            if arguments.mine && me.is_none() {
                bail!(UsageError("--mine needs --user (and your password)".into()));
            }
            print::list(&session.lab.state()?, now, me.as_ref(), &arguments)
        }
        Some(Command::Free(arguments)) => {
            let me = session.optional_login()?;
            print::window(&booking::free(&session.lab, me.as_ref(), &arguments.wanted())?, arguments.json)
        }
        Some(Command::Cancel { start }) => {
            let user = session.login()?;
            print::cancelled(&booking::cancel(&session.lab, &user, start.as_deref())?);
            Ok(())
        }
        Some(Command::Extend { end, start }) => {
            let user = session.login()?;
            let updated = booking::extend(&session.lab, &user, start.as_deref(), &end)?;
            println!("Now ends at {}: {}", format_minutes(updated.end), updated.describe());
            Ok(())
        }
        Some(Command::Status { json }) => {
            let user = session.login()?;
            print::status(&user, &session.lab.state()?.bookings_of(&user), now, json)
        }
        Some(Command::Restart) => {
            let user = session.login()?;
            let running = booking::request_restart(&session.lab, &user)?;
            println!(
                "Restart requested: the monitor restarts container {} shortly (port {}).",
                running.user_id, running.forward_port
            );
            Ok(())
        }
        Some(Command::Options(arguments)) => {
            let user = session.login()?;
            options(&mut session, &user, &arguments)
        }
    }
}

fn options(session: &mut Session, user: &UserId, arguments: &OptionsArgs) -> Result<()> {
    let change = if arguments.nothing_asked() && prompts::interactive() && !arguments.json {
        prompts::defaults(&session.lab, user)?
    } else {
        arguments.change()
    };
    if arguments.change_password {
        let chosen = session.answers.new_password(user, NewPassword::Change)?;
        account::set_password(&session.lab, user, &chosen)?;
        eprintln!("Password changed.");
    }
    let defaults = account::change_defaults(&session.lab, user, &change)?;
    print::defaults(user, &defaults, arguments.json)
}
