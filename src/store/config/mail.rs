//! The `mail:` block of `cfg/host_deploy.yaml`: how the monitor reaches the lab's mail server.
//! Optional: without it no mail is sent, and nothing complains.
//!
//! ```yaml
//! mail:
//!   host: smtp.lab.example.org
//!   port: 587                     # default: 587 for starttls, 465 for tls, 25 for none
//!   security: starttls            # starttls (default) | tls | none
//!   user: gpu-booking             # optional; then password_file is needed
//!   password_file: /etc/gpu-booking/smtp-password   # only root may read it
//!   from: "GPU booking <gpu-booking@lab.example.org>"
//! ```
//!
//! The password never sits in this file (which is world-readable on most hosts): it is read
//! from `password_file` at the moment a mail is sent, and only when that file is a plain file
//! owned by the user the monitor runs as (root) that nobody else may read. It never goes into
//! a command line, an environment, a log line or a label.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lettre::message::Mailbox;
use serde::Deserialize;

use super::yaml::Findings;
use crate::store::root::Root;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMail {
    host: Option<String>,
    port: Option<i64>,
    security: Option<String>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    from: Option<String>,
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which must succeed (submission, port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption at all: only for a relay on the host itself or the lab's own network.
    None,
}

impl Security {
    pub fn word(self) -> &'static str {
        match self {
            Security::Starttls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }
}

/// The mail server, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct MailSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Who to log in as; `None`: no login.
    pub user: Option<String>,
    /// Where the password is (resolved against the root); set exactly when `user` is.
    pub password_file: Option<PathBuf>,
    pub from: Mailbox,
}

/// How large a password file may be: a password, not a file someone pointed at by mistake.
const PASSWORD_FILE_BYTES: u64 = 4096;

/// Checks the block, recording each problem at its key; `None` when any is wrong.
pub fn parse(root: &Root, raw: RawMail, findings: &mut Findings) -> Option<MailSettings> {
    let before = findings.problems.len();
    let host = raw.host.as_deref().map(str::trim).unwrap_or_default().to_string();
    if host.is_empty() || host.chars().any(|character| character.is_whitespace() || character.is_control()) {
        findings.error(&["mail", "host"], "expected the mail server's name, such as smtp.lab.example.org");
    }
    let security = match raw.security.as_deref().map(str::trim) {
        None => Security::Starttls,
        Some("starttls") => Security::Starttls,
        Some("tls") => Security::Tls,
        Some("none") => Security::None,
        Some(other) => {
            findings.error(&["mail", "security"], format!("expected starttls, tls or none, found {other:?}"));
            Security::Starttls
        }
    };
    let port = match raw.port {
        None => security.default_port(),
        Some(port) => match u16::try_from(port) {
            Ok(port) if port > 0 => port,
            _ => {
                findings.error(&["mail", "port"], format!("expected a port from 1 to 65535, found {port}"));
                0
            }
        },
    };
    let user = raw.user.map(|user| user.trim().to_string()).filter(|user| !user.is_empty());
    let password_file = raw.password_file.filter(|path| !path.as_os_str().is_empty()).map(|path| root.resolve(&path));
    match (&user, &password_file) {
        (Some(_), None) => findings.error(
            &["mail", "user"],
            "a user needs password_file: the file (readable by root only) that holds the password",
        ),
        (None, Some(_)) => findings.error(&["mail", "password_file"], "a password_file needs the user it logs in as"),
        _ => {}
    }
    if user.is_some() && security == Security::None {
        findings.error(
            &["mail", "security"],
            "a password is never sent unencrypted: use starttls or tls, or log in as nobody (no user)",
        );
    }
    let from = match raw.from.as_deref().map(str::trim) {
        Some(text) => match text.parse::<Mailbox>() {
            Ok(mailbox) => Some(mailbox),
            Err(error) => {
                findings.error(
                    &["mail", "from"],
                    format!(
                        "expected an address such as \"GPU booking <gpu-booking@lab.example.org>\", found {text:?} \
                         ({error})"
                    ),
                );
                None
            }
        },
        None => {
            findings
                .error(&["mail", "from"], "expected the sender, such as \"GPU booking <gpu-booking@lab.example.org>\"");
            None
        }
    };
    if findings.problems.len() > before {
        return None;
    }
    Some(MailSettings { host, port, security, user, password_file, from: from? })
}

impl MailSettings {
    /// The password from `password_file`, when a user is set. Refused unless the file is a
    /// plain file owned by whoever runs this (root, for the monitor) that nobody else may read
    /// or write: anyone who could read it could send mail as the lab.
    pub fn password(&self) -> Result<Option<String>> {
        let Some(path) = &self.password_file else { return Ok(None) };
        let text = read_private(path)?;
        let password = text.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            bail!("the mail password file {} is empty", path.display());
        }
        Ok(Some(password))
    }
}

/// Reads a secret file: not through a link, a plain file, owned by this process's user,
/// readable by nobody else.
fn read_private(path: &Path) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot read the mail password file {}", path.display()))?;
    let metadata = file.metadata().with_context(|| format!("cannot inspect {}", path.display()))?;
    if !metadata.is_file() {
        bail!("the mail password file {} is not a plain file", path.display());
    }
    let owner = rustix::process::geteuid().as_raw();
    if metadata.uid() != owner {
        bail!(
            "the mail password file {} belongs to uid {}, not to the user the tools run as (uid {owner}); \
             chown it to root",
            path.display(),
            metadata.uid()
        );
    }
    if metadata.mode() & 0o077 != 0 {
        bail!(
            "the mail password file {} can be read or written by others (mode {:o}); chmod 600 it",
            path.display(),
            metadata.mode() & 0o777
        );
    }
    if metadata.len() > PASSWORD_FILE_BYTES {
        bail!("the mail password file {} is larger than {PASSWORD_FILE_BYTES} bytes", path.display());
    }
    let mut text = String::new();
    file.take(PASSWORD_FILE_BYTES)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read the mail password file {}", path.display()))?;
    Ok(text)
}

/// Checks an e-mail address a student or the admin gives; the canonical form is returned.
pub fn check_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    text.parse::<lettre::Address>()
        .map(|address| address.to_string())
        .map_err(|error| format!("expected an e-mail address such as alice@lab.example.org, found {text:?} ({error})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (Option<MailSettings>, Vec<String>) {
        #[derive(Deserialize)]
        struct Wrapper {
            mail: RawMail,
        }
        let root = Root::new(Path::new("/srv/gpu-booking"));
        let raw: Wrapper = serde_yaml::from_str(text).unwrap();
        let mut findings = Findings::new("cfg/host_deploy.yaml", text);
        let settings = parse(&root, raw.mail, &mut findings);
        (settings, findings.problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_follow_the_security() {
        let (settings, problems) = parsed("mail:\n  host: smtp.lab.test\n  from: GPU <gpu@lab.test>\n");
        assert!(problems.is_empty(), "{problems:?}");
        let settings = settings.unwrap();
        assert_eq!((settings.security, settings.port), (Security::Starttls, 587));
        let (settings, _) = parsed("mail:\n  host: smtp.lab.test\n  security: tls\n  from: gpu@lab.test\n");
        assert_eq!(settings.unwrap().port, 465);
    }

    #[test]
    fn each_mistake_names_its_line_and_key() {
        let text =
            "mail:\n  host: smtp.lab.test\n  port: 70000\n  security: ssl\n  user: gpu\n  from: not an address\n";
        let (settings, problems) = parsed(text);
        assert!(settings.is_none());
        let joined = problems.join("\n");
        assert!(joined.contains("cfg/host_deploy.yaml:3: mail.port: expected a port from 1 to 65535"), "{joined}");
        assert!(joined.contains("cfg/host_deploy.yaml:4: mail.security: expected starttls, tls or none"), "{joined}");
        assert!(joined.contains("cfg/host_deploy.yaml:5: mail.user: a user needs password_file"), "{joined}");
        assert!(joined.contains("cfg/host_deploy.yaml:6: mail.from: expected an address"), "{joined}");
    }

    #[test]
    fn a_password_is_never_sent_in_the_clear() {
        let text = "mail:\n  host: relay\n  security: none\n  user: gpu\n  password_file: /etc/pw\n  from: g@l.test\n";
        let (settings, problems) = parsed(text);
        assert!(settings.is_none());
        assert!(problems.join("\n").contains("mail.security: a password is never sent unencrypted"), "{problems:?}");
    }

    #[test]
    fn the_password_file_must_be_private() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("smtp-password");
        std::fs::write(&path, "s3cret-value\n").unwrap();
        let settings = MailSettings {
            host: "smtp".into(),
            port: 587,
            security: Security::Starttls,
            user: Some("gpu".into()),
            password_file: Some(path.clone()),
            from: "g@l.test".parse().unwrap(),
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let message = format!("{:#}", settings.password().unwrap_err());
        assert!(message.contains("chmod 600") && !message.contains("s3cret"), "{message}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(settings.password().unwrap().as_deref(), Some("s3cret-value"));
        let link = scratch.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(MailSettings { password_file: Some(link), ..settings }.password().is_err(), "never through a link");
    }

    #[test]
    fn addresses_are_checked() {
        assert_eq!(check_address(" alice@lab.test ").unwrap(), "alice@lab.test");
        assert!(check_address("alice").is_err());
        assert!(check_address("alice@lab.test\r\nBcc: x@y.z").is_err());
    }
}
