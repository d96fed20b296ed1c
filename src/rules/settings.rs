//! What a student (or the admin for them) may set: a forward port, an image, an extra
//! command, SSH public keys. Pure checks over plain data, so `book`, `enroll` and
//! `run-container` apply the same rule and say the same thing when a value is refused.
//!
//! The size limits matter beyond taste: every other student's `book` reads the schedule, so
//! one oversized field would slow everyone down, and the monitor writes these values into
//! containers. They are checked where a value comes in and, by `enroll check` and the file
//! loaders, in hand-edited files.

use anyhow::{Result, bail};

use crate::error::{Refused, UsageError};
use crate::model::{Booking, UserId};

/// The forward ports users get: the original's application range, above the well-known ports.
pub const PORT_RANGE: std::ops::RangeInclusive<u16> = 10001..=11000;

/// The extra command run at a container's start (a booking's or the user's default).
pub const EXTRA_COMMAND_BYTES: usize = 4096;
/// An image name.
pub const IMAGE_NAME_BYTES: usize = 256;
/// SSH public keys one user may register, and the size of each.
pub const SSH_KEYS: usize = 16;
pub const SSH_KEY_BYTES: usize = 16 * 1024;

/// The key types OpenSSH accepts in `authorized_keys` for a user's own key.
const SSH_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Checks a forward port `user` asks for: in [`PORT_RANGE`], nobody else's saved port
/// (`owners`: each user's), and used by none of `bookings` but the user's own. The one place
/// that says a port is taken. A new booking passes no bookings here: whether its port clashes
/// with another booking depends on the window, which the capacity rules check.
pub fn check_port<'a>(
    user: &UserId,
    port: u16,
    owners: impl IntoIterator<Item = (&'a UserId, u16)>,
    bookings: impl IntoIterator<Item = &'a Booking>,
) -> Result<()> {
    if !PORT_RANGE.contains(&port) {
        bail!(Refused(format!("forward port {port} is outside {}–{}", PORT_RANGE.start(), PORT_RANGE.end())));
    }
    if let Some((owner, _)) = owners.into_iter().find(|(owner, owned)| *owner != user && *owned == port) {
        bail!(Refused(format!("forward port {port} belongs to {owner}")));
    }
    if let Some(booking) = bookings.into_iter().find(|booking| booking.forward_port == port && &booking.user_id != user)
    {
        bail!(Refused(format!("forward port {port} is used by {}'s booking", booking.user_id)));
    }
    Ok(())
}

/// A port of [`PORT_RANGE`] that is not in `taken`, chosen by `random` (so that ports do
/// not reveal the order users joined in).
pub fn free_port(taken: impl IntoIterator<Item = u16>, random: u32) -> Result<u16> {
    let taken: std::collections::HashSet<u16> = taken.into_iter().collect();
    let free: Vec<u16> = PORT_RANGE.filter(|port| !taken.contains(port)).collect();
    if free.is_empty() {
        bail!(Refused(format!("every forward port from {} to {} is taken", PORT_RANGE.start(), PORT_RANGE.end())));
    }
    Ok(free[random as usize % free.len()])
}

/// Checks an image a user asks for: a name of sensible size, and one of the host's (`offered`).
pub fn check_image(image: &str, offered: &[String]) -> Result<()> {
    check_image_name(image).map_err(UsageError)?;
    if !offered.iter().any(|allowed| allowed == image) {
        bail!(Refused(format!("image {image:?} is not offered here; choose one of: {}", offered.join(", "))));
    }
    Ok(())
}

/// Checks an OpenSSH public key line (`ssh-ed25519 AAAA… comment`); returns it trimmed.
pub fn check_ssh_key(key: &str) -> Result<String> {
    let key = key.trim();
    if key.len() > SSH_KEY_BYTES {
        bail!(UsageError(format!("an SSH key of {} bytes; at most {SSH_KEY_BYTES} are allowed", key.len())));
    }
    let mut words = key.split_whitespace();
    let kind = words.next().unwrap_or("");
    let body = words.next().unwrap_or("");
    let body_ok = body.len() >= 16
        && body.chars().all(|character| character.is_ascii_alphanumeric() || "+/=".contains(character));
    if !SSH_KEY_TYPES.contains(&kind) || !body_ok || key.contains('\n') {
        bail!(UsageError(format!(
            "not an OpenSSH public key (expected a line such as \"ssh-ed25519 AAAA… you@laptop\"), found {:?}",
            key.chars().take(40).collect::<String>()
        )));
    }
    Ok(key.to_string())
}

/// `Err` with the reason when the extra command is too long or holds a NUL byte.
pub fn check_extra_command(command: &str) -> Result<(), String> {
    if command.len() > EXTRA_COMMAND_BYTES {
        return Err(format!(
            "the extra command is {} bytes; at most {EXTRA_COMMAND_BYTES} are allowed (put a long script in /root/Work and run that)",
            command.len()
        ));
    }
    if command.contains('\0') {
        return Err("the extra command holds a NUL byte".to_string());
    }
    Ok(())
}

pub fn check_image_name(image: &str) -> Result<(), String> {
    if image.len() > IMAGE_NAME_BYTES {
        return Err(format!("the image name is {} bytes; at most {IMAGE_NAME_BYTES} are allowed", image.len()));
    }
    Ok(())
}

pub fn check_ssh_keys(keys: &[String]) -> Result<(), String> {
    if keys.len() > SSH_KEYS {
        return Err(format!("{} SSH keys; at most {SSH_KEYS} may be registered (remove one first)", keys.len()));
    }
    if let Some(key) = keys.iter().find(|key| key.len() > SSH_KEY_BYTES) {
        return Err(format!("an SSH key of {} bytes; at most {SSH_KEY_BYTES} are allowed", key.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code_for;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    fn booking_of(name: &str, port: u16) -> Booking {
        let start = crate::model::parse_time("2026-11-23 10:00").unwrap();
        Booking {
            start,
            end: start + chrono::Duration::hours(1),
            user_id: user(name),
            cpus: 1.0,
            memory: 1,
            gpus: vec![],
            forward_port: port,
            image: None,
            extra_command: None,
        }
    }

    #[test]
    fn limits_are_inclusive() {
        assert!(check_extra_command(&"x".repeat(EXTRA_COMMAND_BYTES)).is_ok());
        assert!(check_extra_command(&"x".repeat(EXTRA_COMMAND_BYTES + 1)).is_err());
        assert!(check_image_name(&"i".repeat(IMAGE_NAME_BYTES + 1)).is_err());
        let keys = vec!["k".to_string(); SSH_KEYS];
        assert!(check_ssh_keys(&keys).is_ok());
        assert!(check_ssh_keys(&[keys.clone(), vec!["k".to_string()]].concat()).is_err());
        assert!(check_ssh_keys(&["k".repeat(SSH_KEY_BYTES + 1)]).is_err());
    }

    #[test]
    fn a_port_is_refused_outside_the_range_when_another_user_has_it_or_another_users_booking_uses_it() {
        let (alice, bob) = (user("alice"), user("bob"));
        let owners = [(&alice, 10001), (&bob, 10002)];
        let refusal = |port: u16, bookings: &[Booking]| {
            check_port(&alice, port, owners, bookings).map(|_| ()).map_err(|error| error.to_string())
        };
        assert_eq!(refusal(10001, &[]), Ok(()), "her own port");
        assert_eq!(refusal(10003, &[]), Ok(()));
        assert_eq!(refusal(80, &[]), Err("forward port 80 is outside 10001–11000".into()));
        assert_eq!(refusal(10002, &[]), Err("forward port 10002 belongs to bob".into()));
        let bookings = [booking_of("alice", 10004), booking_of("carol", 10003)];
        assert_eq!(refusal(10003, &bookings), Err("forward port 10003 is used by carol's booking".into()));
        assert_eq!(refusal(10004, &bookings), Ok(()), "her own booking's port");
        let error = check_port(&alice, 10002, owners, &[]).unwrap_err();
        assert_eq!(exit_code_for(&error), crate::error::EXIT_REFUSED);
    }

    #[test]
    fn a_free_port_is_one_nobody_has_and_none_is_left_when_all_are_taken() {
        let taken: Vec<u16> = PORT_RANGE.filter(|port| *port != 10500).collect();
        assert_eq!(free_port(taken.iter().copied(), 12345).unwrap(), 10500);
        let error = free_port(PORT_RANGE, 0).unwrap_err();
        assert_eq!(error.to_string(), "every forward port from 10001 to 11000 is taken");
        assert!(PORT_RANGE.contains(&free_port([], u32::MAX).unwrap()));
    }

    #[test]
    fn an_image_must_be_offered_and_a_key_must_look_like_an_openssh_key() {
        let offered = vec!["lab/ssh:latest".to_string(), "lab/cuda:12".to_string()];
        assert!(check_image("lab/cuda:12", &offered).is_ok());
        let refused = check_image("ubuntu", &offered).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "image \"ubuntu\" is not offered here; choose one of: lab/ssh:latest, lab/cuda:12"
        );
        assert_eq!(exit_code_for(&refused), crate::error::EXIT_REFUSED);
        let too_long = check_image(&"i".repeat(IMAGE_NAME_BYTES + 1), &offered).unwrap_err();
        assert_eq!(exit_code_for(&too_long), crate::error::EXIT_USAGE);
        let key = "  ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBB alice@laptop \n";
        assert_eq!(check_ssh_key(key).unwrap(), key.trim());
        for bad in ["ssh-dss AAAAB3NzaC1kc3MAAACBAAAAAAAA x", "ssh-ed25519 short x", "hello"] {
            assert_eq!(exit_code_for(&check_ssh_key(bad).unwrap_err()), crate::error::EXIT_USAGE, "{bad}");
        }
    }
}
