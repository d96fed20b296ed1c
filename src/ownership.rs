//! Who may write what under a root: the warnings `enroll check` gives about the deployment.
//!
//! The shared `booking` account may write only what `book` writes — `jobs/` and the folder of
//! `users_config.yaml` — and everything it can write is untrusted input to the root monitor.
//! The admin's files are the admin's: the root folder, `cfg/`, `host_deploy.yaml`,
//! `capability_config.yaml`, the templates and the volume folders. A booking account (named
//! `booking`, or any account whose login shell is `book`) or every local user being able to
//! write one of them is a way to root, and is reported. So is a booking account whose login
//! shell is a real shell (with its empty password, anyone local could `su` into it).
//!
//! Reads only: file metadata, `/etc/passwd` and `/etc/group`. Access control lists are not
//! looked at.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::FileProblem;
use crate::login_shell::{self, Account};
use crate::store::config::Config;
use crate::store::root::Root;

/// Someone who must not write the admin's files.
#[derive(Debug, Clone)]
enum Writer {
    /// A booking account, with every group it is in.
    Booking { name: String, uid: u32, groups: BTreeSet<u32> },
    /// Every local user (the "other" permission bits).
    Anyone,
}

impl Writer {
    fn can_write(&self, metadata: &std::fs::Metadata) -> bool {
        let mode = metadata.mode();
        match self {
            // The owner class decides alone when it matches, then the group class.
            Writer::Booking { uid, groups, .. } if *uid == metadata.uid() => mode & 0o200 != 0,
            Writer::Booking { groups, .. } if groups.contains(&metadata.gid()) => mode & 0o020 != 0,
            Writer::Booking { .. } | Writer::Anyone => mode & 0o002 != 0,
        }
    }

    fn describe(&self) -> String {
        match self {
            Writer::Booking { name, .. } => format!("the booking account `{name}`"),
            Writer::Anyone => "every local user".to_string(),
        }
    }
}

/// The accounts `book` serves: named `booking`, or with `book` as their login shell.
pub fn booking_accounts(accounts: &[Account]) -> Vec<Account> {
    accounts
        .iter()
        .filter(|account| account.name == "booking" || login_shell::names_book(&account.shell))
        .cloned()
        .collect()
}

fn groups_of(account: &Account, group_text: &str) -> BTreeSet<u32> {
    let mut groups = BTreeSet::from([account.gid]);
    for line in group_text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if let [_, _, gid, members] = fields.as_slice()
            && members.split(',').any(|member| member == account.name)
            && let Ok(gid) = gid.parse()
        {
            groups.insert(gid);
        }
    }
    groups
}

/// Every warning about who may write the admin's files, and about the booking accounts.
pub fn warnings(root: &Root, config: Option<&Config>) -> Vec<FileProblem> {
    let accounts = booking_accounts(&login_shell::local_accounts());
    let group_text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let mut writers: Vec<Writer> = accounts
        .iter()
        .map(|account| Writer::Booking {
            name: account.name.clone(),
            uid: account.uid,
            groups: groups_of(account, &group_text),
        })
        .collect();
    writers.push(Writer::Anyone);

    let mut problems = Vec::new();
    let users_file = config.map(|config| config.deploy.users_config_yaml.clone());
    let users_folder = users_file.as_deref().and_then(Path::parent).map(Path::to_path_buf);
    for (path, what) in admin_paths(root, config) {
        let Ok(metadata) = std::fs::metadata(&path) else { continue };
        for writer in &writers {
            if writer.can_write(&metadata) {
                let mut message = format!(
                    "{} can write it, so it could {what}; it must be root's and not writable by others \
                     (chown root: {}; chmod go-w {}; systemd/setup-booking-account does both)",
                    writer.describe(),
                    path.display(),
                    path.display()
                );
                if users_folder.as_deref() == Some(path.as_path()) {
                    message.push_str(
                        "; users_config.yaml needs a folder of its own that the booking account may write \
                         (users_config_yaml: ./cfg/users/users_config.yaml)",
                    );
                }
                problems.push(FileProblem::warning(root.display(&path), None, "", message));
            }
        }
    }
    // The booking account's own files are untrusted, but at least no one else's.
    let mut own = vec![root.jobs_dir()];
    own.extend(users_folder.clone());
    own.extend(users_file.clone());
    for path in own {
        let Ok(metadata) = std::fs::metadata(&path) else { continue };
        if Writer::Anyone.can_write(&metadata) {
            problems.push(FileProblem::warning(
                root.display(&path),
                None,
                "",
                "every local user can write it; only the booking account may (chmod o-w)",
            ));
        }
    }
    // Who may read the hashes is `check`'s modes check.
    problems.extend(account_warnings(root, &accounts));
    problems
}

/// The admin's files and folders under `root`, each with what a writer could do with it.
fn admin_paths(root: &Root, config: Option<&Config>) -> Vec<(PathBuf, &'static str)> {
    let mut paths: Vec<(PathBuf, &'static str)> = Vec::new();
    let mut add = |path: PathBuf, what: &'static str| {
        if !paths.iter().any(|(known, _)| *known == path) {
            paths.push((path, what));
        }
    };
    // Above the root, a folder with the sticky bit (/tmp) lets no one rename another's entry.
    for ancestor in root.dir().ancestors().skip(1) {
        if std::fs::metadata(ancestor).is_ok_and(|metadata| metadata.mode() & 0o1000 == 0) {
            add(ancestor.to_path_buf(), "move the root folder aside and put another in its place");
        }
    }
    add(root.dir().to_path_buf(), "replace cfg/ or jobs/ with folders of its own");
    add(root.cfg_dir(), "replace host_deploy.yaml and capability_config.yaml with files of its own");
    add(root.host_deploy_path(), "choose the folders root mounts into containers and the images it starts");
    if let Some(config) = config {
        let capability = &config.deploy.capability_config_yaml;
        if let Some(folder) = capability.parent() {
            add(folder.to_path_buf(), "replace capability_config.yaml with a file of its own");
        }
        add(capability.clone(), "change who may book and every limit");
        for (folder, what) in [
            (
                &config.deploy.volume_work_dir,
                "plant a user's work folder (or a link) that root mounts into a container",
            ),
            (
                &config.deploy.volume_backup_dir,
                "plant a user's backup folder (or a link) that root mounts into a container",
            ),
            (&config.deploy.volume_dataset_dir, "change the data every container reads"),
        ] {
            if let Some(parent) = folder.parent() {
                add(parent.to_path_buf(), "replace a volume folder with one of its own, or a link");
            }
            add(folder.clone(), what);
        }
    }
    let templates = root.templates_dir();
    add(templates.clone(), "change the setup script every container runs as root, and new users' backup lists");
    if let Ok(entries) = std::fs::read_dir(&templates) {
        let mut entries: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        entries.sort();
        for entry in entries {
            add(entry, "change the setup script every container runs as root, and new users' backup lists");
        }
    }
    paths
}

/// A booking account whose login shell is a real shell, or whose home is another root.
fn account_warnings(root: &Root, accounts: &[Account]) -> Vec<FileProblem> {
    let mut problems = Vec::new();
    for account in accounts {
        if !login_shell::names_book(&account.shell) {
            problems.push(FileProblem::warning(
                "/etc/passwd",
                None,
                account.name.as_str(),
                format!(
                    "the login shell is {}: the account has no password, so any local user can `su {}` \
                     and get a shell that writes jobs/ and users_config.yaml; make book its shell \
                     (systemd/setup-booking-account)",
                    account.shell.display(),
                    account.name
                ),
            ));
            continue;
        }
        let home = std::fs::canonicalize(&account.home).unwrap_or_else(|_| account.home.clone());
        if home != root.dir() {
            problems.push(FileProblem::warning(
                "/etc/passwd",
                None,
                account.name.as_str(),
                format!(
                    "the home folder {} is the root its book serves, not {} (systemd/setup-booking-account \
                     sets it)",
                    account.home.display(),
                    root.dir().display()
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_world_writable_capability_config_and_cfg_folder_are_reported() {
        let scratch = tempfile::tempdir().unwrap();
        let root = Root::new(std::fs::canonicalize(scratch.path()).unwrap());
        std::fs::create_dir_all(root.cfg_dir()).unwrap();
        std::fs::write(root.host_deploy_path(), "").unwrap();
        std::fs::set_permissions(root.host_deploy_path(), std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::set_permissions(root.cfg_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let found: Vec<String> = warnings(&root, None).iter().map(ToString::to_string).collect();
        assert!(
            found.iter().any(|line| line.starts_with("cfg/host_deploy.yaml: warning: every local user")),
            "{found:?}"
        );
        assert!(found.iter().any(|line| line.starts_with("cfg: warning: every local user")), "{found:?}");
    }

    #[test]
    fn group_membership_counts() {
        let account = Account {
            name: "booking".into(),
            uid: 998,
            gid: 998,
            home: "/srv/gpu-booking".into(),
            shell: "/usr/local/bin/book".into(),
        };
        let groups = groups_of(&account, "staff:x:50:alice,booking\nother:x:51:alice\n");
        assert_eq!(groups, BTreeSet::from([50, 998]));
    }
}
