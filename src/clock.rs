//! The clock. `GPU_BOOKING_NOW` replaces it in every binary, so tests and rehearsals never
//! depend on the wall clock — except in `book` started as the booking account's login shell
//! (see [`crate::login_shell`]), whose environment is whoever started it.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use chrono::{Local, NaiveDateTime, Timelike};

/// Environment variable that fixes "now": `YYYY-MM-DD HH:MM`.
pub const NOW_VARIABLE: &str = "GPU_BOOKING_NOW";

/// Set once `book` knows it runs as the booking account's login shell: its environment is
/// then its caller's (`su` keeps it), and the caller may not move the clock.
static ENVIRONMENT_DISTRUSTED: AtomicBool = AtomicBool::new(false);

/// From now on, [`now`] reads the wall clock whatever `GPU_BOOKING_NOW` says.
pub fn distrust_environment() {
    ENVIRONMENT_DISTRUSTED.store(true, Ordering::Relaxed);
}

/// Local wall-clock time, as the state files store it (the original wrote naive local times).
pub fn now() -> Result<NaiveDateTime> {
    if ENVIRONMENT_DISTRUSTED.load(Ordering::Relaxed) {
        return Ok(Local::now().naive_local());
    }
    match std::env::var(NOW_VARIABLE) {
        Ok(text) => parse_now(&text).with_context(|| format!("{NOW_VARIABLE}={text:?}: expected \"YYYY-MM-DD HH:MM\"")),
        Err(std::env::VarError::NotPresent) => Ok(Local::now().naive_local()),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{NOW_VARIABLE} is not valid UTF-8"),
    }
}

fn parse_now(text: &str) -> Result<NaiveDateTime> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.with_nanosecond(0).unwrap_or(time));
        }
    }
    bail!("not a time")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format_and_rejects_others() {
        let time = parse_now("2026-11-24 09:30").unwrap();
        assert_eq!(time.to_string(), "2026-11-24 09:30:00");
        assert!(parse_now("24.11.2026 09:30").is_err());
        assert!(parse_now("").is_err());
    }
}
