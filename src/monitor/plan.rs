//! What a pass must do, decided from the schedule alone (a pure function, so `--dry-run`
//! and the tests see exactly what the pass would act on).

use chrono::NaiveDateTime;

use crate::model::Booking;

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
