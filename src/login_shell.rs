//! `book` as the login shell of the shared `booking` account, and `book`'s command line.
//!
//! Everyone shares that account and it has an empty Unix password, so that sshd lets every
//! student straight through to `book`, which then asks each for their own password. Any local
//! user can therefore `su booking` (Debian's `pam_unix` has `nullok`). What anyone gets that
//! way must be `book` and nothing else: the account's login shell is `book` itself. It is not
//! in `/etc/shells`, so `su --shell` is refused for it, and whoever starts a shell for the
//! account — sshd for `ssh booking@server [COMMAND]`, sftp and scp, `su booking [-c STRING]`,
//! `sudo -i -u booking` — starts `book`, as `book -c STRING` or as a login shell (`-book`).
//!
//! Started as the login shell of the account it runs as, `book` takes nothing its caller
//! chose as an instruction: STRING is read as `book`'s own words (split like a shell would,
//! never run by one) and may not move the root; the root is the account's home folder in
//! `/etc/passwd`, which only root writes, so neither `--root` nor `GPU_BOOKING_ROOT` counts;
//! the clock is the real one, since `su` hands over the caller's environment with
//! `GPU_BOOKING_NOW` in it; any other command line is refused as a usage error.
//!
//! Started any other way (by an admin, by a test, or by the forced command of an account whose
//! shell is a real one), the command line is taken as it is, plus — under sshd's forced
//! command — the words in `SSH_ORIGINAL_COMMAND`, which may not move the root either.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::error::UsageError;

/// An entry of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
}

/// The entries of a `/etc/passwd` text; lines that do not have its seven fields are skipped.
pub fn parse_passwd(text: &str) -> Vec<Account> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, uid, gid, _, home, shell] = fields.as_slice() else { return None };
            Some(Account {
                name: name.to_string(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                home: PathBuf::from(home),
                shell: PathBuf::from(shell),
            })
        })
        .collect()
}

/// The local accounts, from `/etc/passwd` (none when it cannot be read).
pub fn local_accounts() -> Vec<Account> {
    std::fs::read_to_string("/etc/passwd").map(|text| parse_passwd(&text)).unwrap_or_default()
}

/// True when `path` names a program called `book` (how the shell of the booking account is
/// recognised, whatever folder it was installed in).
pub fn names_book(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == "book")
}

/// The account this process runs as, when its login shell is this very program.
pub fn shell_account() -> Option<Account> {
    let uid = rustix::process::getuid().as_raw();
    let account = local_accounts().into_iter().find(|account| account.uid == uid)?;
    // Compared as files, so a link or another spelling of the path makes no difference.
    let shell = std::fs::metadata(&account.shell).ok()?;
    let me = std::fs::metadata("/proc/self/exe").ok()?;
    ((shell.dev(), shell.ino()) == (me.dev(), me.ino())).then_some(account)
}

/// What `book` should parse: its own command line, or — as a login shell — one built from
/// `-c STRING`, with the account's home folder as the root.
pub fn arguments() -> Result<Vec<OsString>> {
    let argv: Vec<String> = std::env::args_os()
        .map(|argument| {
            argument.into_string().map_err(|argument| UsageError(format!("{argument:?} is not UTF-8 text")))
        })
        .collect::<Result<_, _>>()?;
    let original = match std::env::var("SSH_ORIGINAL_COMMAND") {
        Ok(text) => Some(text),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => bail!(UsageError("SSH_ORIGINAL_COMMAND is not UTF-8 text".into())),
    };
    match shell_account() {
        Some(account) => {
            crate::clock::distrust_environment();
            gate_arguments(&argv, original.as_deref(), &account.home)
        }
        None if looks_like_a_shell_call(&argv) => bail!(UsageError(
            "book was started as a login shell, but it is not this account's login shell in /etc/passwd, \
             so it has no root it may trust"
                .into()
        )),
        None => command_arguments(argv, original.as_deref()),
    }
}

/// `-book` (a login shell) or `book -c STRING` (a shell asked to run a command).
fn looks_like_a_shell_call(argv: &[String]) -> bool {
    argv.first().is_some_and(|name| name.starts_with('-')) || argv.get(1).is_some_and(|flag| flag == "-c")
}

/// The arguments of `book` as a login shell: `[-]book` alone, or `book -c STRING`; the root
/// is `home`.
pub fn gate_arguments(argv: &[String], original: Option<&str>, home: &Path) -> Result<Vec<OsString>> {
    let mut words = match argv {
        [_] => Vec::new(),
        [_, flag, command] if flag == "-c" => book_words(command)?,
        _ => bail!(UsageError(format!(
            "book is this account's login shell: it takes nothing, or -c with book's own words \
             (`ssh booking@server list`); refused the arguments {:?}",
            argv.get(1..).unwrap_or_default()
        ))),
    };
    // sshd runs the forced command as `book -c FORCED` and leaves the student's words here.
    if let Some(original) = original {
        words.extend(book_words(original)?);
    }
    let mut arguments: Vec<OsString> = vec!["book".into(), "--root".into(), home.as_os_str().to_os_string()];
    arguments.extend(words.into_iter().map(OsString::from));
    Ok(arguments)
}

/// The command line as given, plus the words of sshd's forced command.
pub fn command_arguments(argv: Vec<String>, original: Option<&str>) -> Result<Vec<OsString>> {
    let mut arguments: Vec<OsString> = argv.into_iter().map(OsString::from).collect();
    if let Some(original) = original {
        arguments.extend(book_words(original)?.into_iter().map(OsString::from));
    }
    Ok(arguments)
}

/// `book`'s words in `text`, split like a shell would (never run by one). A leading word that
/// names `book` is dropped (`ssh booking@server book list` works as well as `… list`); the
/// root is never the caller's to choose.
fn book_words(text: &str) -> Result<Vec<String>> {
    let words = shlex::split(text)
        .ok_or_else(|| UsageError(format!("cannot split {text:?} into words (unbalanced quotes?)")))?;
    if words.iter().any(|word| word == "--root" || word.starts_with("--root=")) {
        bail!(UsageError("--root cannot be given over SSH or to the booking account".into()));
    }
    let skip = usize::from(words.first().is_some_and(|word| names_book(Path::new(word))));
    Ok(words.into_iter().skip(skip).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(arguments: &[&str]) -> Vec<String> {
        arguments.iter().map(|argument| argument.to_string()).collect()
    }

    fn gate(argv: &[&str], original: Option<&str>) -> Result<Vec<String>> {
        gate_arguments(&strings(argv), original, Path::new("/srv/gpu-booking"))
            .map(|arguments| arguments.into_iter().map(|argument| argument.into_string().unwrap()).collect())
    }

    #[test]
    fn a_login_and_the_forced_command_open_the_dialogue_on_the_home_root() {
        assert_eq!(gate(&["-book"], None).unwrap(), strings(&["book", "--root", "/srv/gpu-booking"]));
        assert_eq!(
            gate(&["book", "-c", "/usr/local/bin/book"], None).unwrap(),
            strings(&["book", "--root", "/srv/gpu-booking"])
        );
        assert_eq!(
            gate(&["book", "-c", "/usr/local/bin/book"], Some("list --timeline")).unwrap(),
            strings(&["book", "--root", "/srv/gpu-booking", "list", "--timeline"])
        );
    }

    #[test]
    fn a_command_is_book_words_never_a_shell_command() {
        // `su booking -c id`: `id` reaches clap as a subcommand it does not know (exit 2).
        assert_eq!(gate(&["book", "-c", "id"], None).unwrap(), strings(&["book", "--root", "/srv/gpu-booking", "id"]));
        assert_eq!(
            gate(&["book", "-c", "list; id $(whoami)"], None).unwrap(),
            strings(&["book", "--root", "/srv/gpu-booking", "list;", "id", "$(whoami)"])
        );
    }

    #[test]
    fn the_root_and_other_command_lines_are_refused() {
        for (argv, original) in [
            (vec!["book", "-c", "list --root /tmp/mine"], None),
            (vec!["book", "-c", "/usr/local/bin/book"], Some("list --root=/tmp/mine")),
            (vec!["book", "--root", "/tmp/mine"], None),
            (vec!["book", "-c", "list", "extra"], None),
            (vec!["book", "-l"], None),
            (vec!["book", "-c", "list \"unbalanced"], None),
        ] {
            let error = gate(&argv, original).unwrap_err();
            assert!(error.downcast_ref::<UsageError>().is_some(), "{argv:?} {original:?}: {error:#}");
        }
    }

    #[test]
    fn passwd_lines_are_read_field_by_field() {
        let accounts = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbooking::998:998::/srv/gpu-booking:/usr/local/bin/book\nbroken\n",
        );
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[1].name, "booking");
        assert_eq!(accounts[1].home, Path::new("/srv/gpu-booking"));
        assert!(names_book(&accounts[1].shell));
        assert!(!names_book(&accounts[0].shell));
    }
}
