//! What may never stand in the schedule at once: one user's bookings overlapping, or one GPU
//! given to two bookings at overlapping times. `enroll check` reports these and the monitor
//! warns of them among running bookings; both ask this module, so they cannot disagree.
//!
//! Found by sweeping each user's and each GPU's bookings sorted by start: O(n log n).

use std::collections::BTreeMap;

use crate::model::{Booking, UserId};

/// Bookings (indices into the slice given) that overlap one another, in file order. A group
/// is chained: each member overlaps another member, not necessarily all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict<'a> {
    /// One user's bookings overlap.
    OwnOverlap { user: &'a UserId, group: Vec<usize> },
    /// The GPUs listed are each given to every booking of the group at overlapping times.
    SharedGpus { gpus: Vec<u32>, group: Vec<usize> },
}

impl Conflict<'_> {
    pub fn group(&self) -> &[usize] {
        match self {
            Conflict::OwnOverlap { group, .. } | Conflict::SharedGpus { group, .. } => group,
        }
    }
}

/// Every conflict among `bookings`: first each user's overlaps (users in id order), then each
/// group that shares GPUs (a group holding several GPUs together is one conflict).
/// Bookings without a length are left out (they are a problem of their own).
pub fn conflicts(bookings: &[Booking]) -> Vec<Conflict<'_>> {
    conflicts_among(bookings, |booking| booking)
}

/// [`conflicts`] among any rows that hold a booking (`enroll check` keeps each with its file
/// and line).
pub fn conflicts_among<'a, T>(rows: &'a [T], booking_of: impl Fn(&'a T) -> &'a Booking) -> Vec<Conflict<'a>> {
    let bookings: Vec<&Booking> = rows.iter().map(booking_of).collect();
    let mut by_user: BTreeMap<&UserId, Vec<usize>> = BTreeMap::new();
    let mut by_gpu: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (index, booking) in bookings.iter().copied().enumerate() {
        by_user.entry(&booking.user_id).or_default().push(index);
        for gpu in &booking.gpus {
            by_gpu.entry(*gpu).or_default().push(index);
        }
    }
    let mut found = Vec::new();
    for (user, members) in by_user {
        for group in overlapping_groups(&bookings, members) {
            found.push(Conflict::OwnOverlap { user, group });
        }
    }
    let mut groups: BTreeMap<Vec<usize>, Vec<u32>> = BTreeMap::new();
    for (gpu, members) in by_gpu {
        for group in overlapping_groups(&bookings, members) {
            groups.entry(group).or_default().push(gpu);
        }
    }
    found.extend(groups.into_iter().map(|(group, gpus)| Conflict::SharedGpus { gpus, group }));
    found
}

/// The members that overlap others, in groups: sorted by start, a booking joins the group
/// before it when it starts before the group's last end. Groups of one are left out.
fn overlapping_groups(bookings: &[&Booking], members: Vec<usize>) -> Vec<Vec<usize>> {
    let mut sorted: Vec<usize> =
        members.into_iter().filter(|index| bookings[*index].start < bookings[*index].end).collect();
    sorted.sort_by_key(|index| (bookings[*index].start, *index));
    let mut groups = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_end = None;
    for index in sorted {
        let booking = bookings[index];
        if current_end.is_some_and(|end| booking.start < end) {
            current.push(index);
            current_end = current_end.max(Some(booking.end));
        } else {
            if current.len() > 1 {
                current.sort_unstable();
                groups.push(std::mem::take(&mut current));
            }
            current = vec![index];
            current_end = Some(booking.end);
        }
    }
    if current.len() > 1 {
        current.sort_unstable();
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::examples::{self, user};

    fn booking(name: &str, start: &str, end: &str, gpus: &[u32]) -> Booking {
        examples::booking(name, &format!("2030-01-01 {start}"), &format!("2030-01-01 {end}"), gpus)
    }

    #[test]
    fn back_to_back_bookings_do_not_conflict() {
        let bookings = [
            booking("alice", "09:00", "10:00", &[0]),
            booking("alice", "10:00", "11:00", &[0]),
            booking("bob", "11:00", "12:00", &[0]),
        ];
        assert_eq!(conflicts(&bookings), vec![]);
    }

    #[test]
    fn an_own_overlap_and_a_gpu_held_twice_are_each_one_conflict() {
        let bookings = [
            booking("alice", "09:00", "11:00", &[0, 1]),
            booking("bob", "10:00", "12:00", &[1, 0]),
            booking("alice", "10:30", "11:30", &[]),
            booking("carol", "13:00", "14:00", &[0]),
        ];
        let alice = user("alice");
        assert_eq!(
            conflicts(&bookings),
            vec![
                Conflict::OwnOverlap { user: &alice, group: vec![0, 2] },
                Conflict::SharedGpus { gpus: vec![0, 1], group: vec![0, 1] },
            ]
        );
    }

    #[test]
    fn a_chain_of_overlaps_is_one_group() {
        let bookings = [
            booking("alice", "09:00", "10:30", &[2]),
            booking("bob", "10:00", "11:30", &[2]),
            booking("carol", "11:00", "12:00", &[2]),
        ];
        assert_eq!(conflicts(&bookings), vec![Conflict::SharedGpus { gpus: vec![2], group: vec![0, 1, 2] }]);
    }

    #[test]
    fn a_booking_without_length_is_left_out() {
        let bookings = [booking("alice", "09:00", "09:00", &[0]), booking("alice", "08:00", "10:00", &[0])];
        assert_eq!(conflicts(&bookings), vec![]);
    }
}
