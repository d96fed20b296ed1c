//! Passwords: crypt(3) SHA-512 hashes (`$6$…`, what `/etc/shadow` and `chpasswd -e` use, so
//! a container can take the hash as it is), the rules for a new password, and the legacy
//! plain-text entries the original stored.

use anyhow::{Result, anyhow};
use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};

/// Passwords nobody should pick: the original's default, keyboard runs, the obvious words.
const OBVIOUS: &[&str] = &[
    "0000",
    "1234",
    "12345",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "4321",
    "abcd",
    "abcd1234",
    "admin",
    "booking",
    "changeme",
    "gpu",
    "gpus",
    "letmein",
    "password",
    "password1",
    "passw0rd",
    "qwerty",
    "qwertyuiop",
    "root",
    "secret",
    "test",
    "welcome",
];

/// glibc's crypt(3) reads at most 16 salt characters and ignores the rest, so a longer salt
/// makes a hash that `chpasswd -e` accepts but no login ever matches.
const CRYPT_SALT_CHARACTERS: usize = 16;

/// Random bytes whose crypt-base64 form is exactly [`CRYPT_SALT_CHARACTERS`] long.
const SALT_BYTES: usize = CRYPT_SALT_CHARACTERS / 4 * 3;

pub fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|error| anyhow!("cannot get random bytes for a password salt: {error}"))?;
    let hashed = ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|error| anyhow!("cannot hash the password: {error}"))?;
    Ok(hashed.as_str().to_string())
}

/// True when `typed` matches `stored`, a crypt(3) hash or (legacy) the password itself.
pub fn verify(stored: &str, typed: &str) -> bool {
    if is_hash(stored) {
        ShaCrypt::default().verify_password(typed.as_bytes(), stored).is_ok()
    } else {
        constant_time_equal(stored.as_bytes(), typed.as_bytes())
    }
}

pub fn is_hash(stored: &str) -> bool {
    stored.starts_with("$6$") || stored.starts_with("$5$")
}

/// True when a stored password should be replaced by a fresh hash at the next successful
/// login: a legacy plain-text entry, or a hash whose salt is longer than crypt(3) reads
/// (early builds wrote 22 characters), which would fail inside the container.
pub fn needs_rehash(stored: &str) -> bool {
    if !is_hash(stored) {
        return true;
    }
    let mut fields = stored.split('$').skip(2);
    let salt = match fields.next() {
        Some(field) if field.starts_with("rounds=") => fields.next(),
        other => other,
    };
    salt.is_none_or(|salt| salt.len() > CRYPT_SALT_CHARACTERS)
}

/// Why `password` may not be chosen, if it may not.
pub fn check_new(password: &str, user: &str) -> Result<(), String> {
    let characters: Vec<char> = password.chars().collect();
    if characters.len() < 4 {
        return Err("a password needs at least 4 characters".into());
    }
    if characters.iter().all(|character| *character == characters[0]) {
        return Err("a password cannot be one character repeated".into());
    }
    let lower = password.to_lowercase();
    if OBVIOUS.contains(&lower.as_str()) || lower == user.to_lowercase() {
        return Err("that password is too easy to guess".into());
    }
    if password.chars().any(char::is_control) {
        return Err("a password cannot hold control characters".into());
    }
    Ok(())
}

fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

/// A random password for `enroll add` without one: 12 letters and digits, no look-alikes.
pub fn temporary() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|error| anyhow!("no randomness available: {error}"))?;
    Ok(bytes.iter().map(|byte| ALPHABET[*byte as usize % ALPHABET.len()] as char).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_legacy_text_still_works() {
        let stored = hash("correct horse").unwrap();
        assert!(stored.starts_with("$6$"));
        assert!(verify(&stored, "correct horse"));
        assert!(!verify(&stored, "wrong horse"));
        assert!(verify("0000", "0000"));
        assert!(!verify("0000", "00000"));
    }

    #[test]
    fn new_hashes_carry_a_salt_crypt3_reads_whole() {
        let stored = hash("correct horse").unwrap();
        let salt = stored.split('$').filter(|field| !field.starts_with("rounds=")).nth(2).unwrap();
        assert_eq!(salt.len(), 16, "{stored}");
        assert!(!needs_rehash(&stored));
        assert_ne!(stored, hash("correct horse").unwrap(), "each hash gets its own salt");
    }

    #[test]
    fn verifies_hashes_written_by_glibc() {
        // The SHA-crypt specification's own examples, as glibc writes them.
        assert!(verify(
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            "Hello world!"
        ));
        assert!(verify(
            "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
            "This is just a test"
        ));
    }

    #[test]
    fn plain_text_and_over_long_salts_are_renewed() {
        assert!(needs_rehash("0000"));
        assert!(needs_rehash("$6$abcdefghijklmnopqrstuv$hash"));
        assert!(needs_rehash("$6$rounds=5000$abcdefghijklmnopqrstuv$hash"));
        assert!(!needs_rehash("$6$saltstring$hash"));
        assert!(!needs_rehash("$6$rounds=5000$abcdefghijklmnop$hash"));
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new("abc", "alice").is_err());
        assert!(check_new("aaaa", "alice").is_err());
        assert!(check_new("password", "alice").is_err());
        assert!(check_new("Alice", "alice").is_err());
        assert!(check_new("tulip-42", "alice").is_ok());
    }
}
