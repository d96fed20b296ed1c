//! What `book` prints: each command's answer as text for a person or JSON for a script.

use std::io::IsTerminal;

use anyhow::Result;
use chrono::NaiveDateTime;
use gpu_booking::account::{Defaults, Registered};
use gpu_booking::booking::{Cancelled, State};
use gpu_booking::cli::book::ListArgs;
use gpu_booking::model::{Booking, BookingState, UserId, Window, format_gpu_list, format_minutes};
use gpu_booking::views::{self, BookingView, TimelineOptions};
use serde::Serialize;

/// The settings a first login created.
pub fn registered(registered: &Registered) {
    println!("Your settings:");
    println!(
        "  forward port  {} (ssh root@{} -p {} during a booking)",
        registered.forward_port,
        host_name(),
        registered.forward_port
    );
    println!("  image         {}", registered.image);
    println!("  work folder   {}", registered.work_dir.display());
    println!("  backup folder {}", registered.backup_dir.display());
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

pub fn booked(booking: &Booking, json: bool, default_image: &str) -> Result<()> {
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

pub fn cancelled(cancelled: &Cancelled) {
    match cancelled {
        Cancelled::Removed(booking) => println!("Cancelled: {}", booking.describe()),
        Cancelled::EndsAt(booking, end) => {
            println!(
                "Your running booking now ends at {}; the monitor stops the container then.",
                format_minutes(*end)
            );
            println!("  {}", booking.describe());
        }
    }
}

pub fn list(state: &State, now: NaiveDateTime, me: Option<&UserId>, arguments: &ListArgs) -> Result<()> {
    if arguments.timeline {
        let width = console::Term::stdout().size_checked().map_or(80, |(_, columns)| columns as usize).max(60);
        let color = std::io::stdout().is_terminal();
        let options = TimelineOptions { days: arguments.days, width, color };
        print!("{}", views::timeline(state, now, me, &options));
        return Ok(());
    }
    let views = views::active_views(state, me, arguments.mine);
    if arguments.json {
        println!("{}", serde_json::to_string(&views)?);
    } else {
        print!("{}", views::table(&views));
    }
    Ok(())
}

pub fn window(window: &Window, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(window)?);
    } else {
        println!(
            "Earliest window: {} to {}, GPUs {}",
            format_minutes(window.start),
            format_minutes(window.end),
            format_gpu_list(&window.gpus)
        );
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

pub fn status(user: &UserId, mine: &[(BookingState, Booking)], now: NaiveDateTime, json: bool) -> Result<()> {
    if json {
        let rows: Vec<StatusJson> = mine
            .iter()
            .map(|(booking_state, booking)| StatusJson {
                booking: BookingView::new(booking, *booking_state, Some(user)),
                container: booking.user_id.to_string(),
                minutes_left: match booking_state {
                    BookingState::Running => (booking.end - now).num_minutes(),
                    BookingState::Booked => (booking.start - now).num_minutes(),
                },
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    if mine.is_empty() {
        println!("You have no bookings. `book` makes one.");
    }
    for (booking_state, booking) in mine {
        match booking_state {
            BookingState::Running => println!(
                "running  container {} on port {}: {} left (until {})",
                booking.user_id,
                booking.forward_port,
                human_duration(booking.end - now),
                format_minutes(booking.end)
            ),
            // Its start has come but no monitor pass has moved it yet.
            BookingState::Booked if booking.start <= now => println!(
                "booked   due now: the monitor's next pass starts the container; ends {}, port {}",
                format_minutes(booking.end),
                booking.forward_port
            ),
            BookingState::Booked => println!(
                "booked   starts in {} ({}), ends {}, port {}",
                human_duration(booking.start - now),
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

pub fn defaults(user: &UserId, defaults: &Defaults, json: bool) -> Result<()> {
    let entry = &defaults.entry;
    if json {
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
        entry.image.as_deref().unwrap_or(&format!("{} (the host's default)", defaults.default_image))
    );
    println!("  extra command  {}", entry.extra_command.as_deref().unwrap_or("(none)"));
    println!("  e-mail         {}", entry.email.as_deref().unwrap_or("(none: no mail from the monitor)"));
    if entry.ssh_keys.is_empty() {
        println!("  SSH keys       (none)");
    }
    for (index, key) in entry.ssh_keys.iter().enumerate() {
        let words: Vec<&str> = key.split_whitespace().collect();
        // A hand-edited key may lack a word: shown as it is rather than stopping the listing.
        let kind = words.first().copied().unwrap_or_default();
        let body: Vec<char> = words.get(1).copied().unwrap_or_default().chars().collect();
        let tail: String = body[body.len().saturating_sub(8)..].iter().collect();
        let comment = words.get(2..).map(|rest| rest.join(" ")).unwrap_or_default();
        println!("  SSH key {}      {} …{} {}", index + 1, kind, tail, comment);
    }
    Ok(())
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "this-server".into())
}
