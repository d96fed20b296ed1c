//! Values for unit tests, written the way a person reads them.

use chrono::NaiveDateTime;

use super::text::MINUTES;
use super::{Booking, UserId};

/// `YYYY-MM-DD HH:MM`, or with seconds.
pub fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, MINUTES)
        .or_else(|_| super::parse_time(text).map_err(|_| ()))
        .unwrap_or_else(|()| panic!("{text:?} is not a time"))
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap_or_else(|reason| panic!("{reason}"))
}

/// `name`'s booking from `start` to `end` on the given GPUs: 1 CPU, 1 GB, port 10001, the
/// default image. Tests change what they care about with `Booking { cpus: 4.0, ..booking(…) }`.
pub fn booking(name: &str, start: &str, end: &str, gpus: &[u32]) -> Booking {
    Booking {
        start: at(start),
        end: at(end),
        user_id: user(name),
        cpus: 1.0,
        memory: 1,
        gpus: gpus.to_vec(),
        forward_port: 10001,
        image: None,
        extra_command: None,
    }
}
