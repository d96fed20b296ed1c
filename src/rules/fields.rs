//! Size limits of the free-text fields a student fills in. Every other student's `book`
//! reads the schedule, so one oversized field would slow everyone down; and the monitor
//! writes these into containers. Checked where the value comes in and by `enroll check` in
//! hand-edited files.

/// The extra command run at a container's start (a booking's or the user's default).
pub const EXTRA_COMMAND_BYTES: usize = 4096;
/// An image name.
pub const IMAGE_NAME_BYTES: usize = 256;
/// SSH public keys one user may register, and the size of each.
pub const SSH_KEYS: usize = 16;
pub const SSH_KEY_BYTES: usize = 16 * 1024;

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
}
