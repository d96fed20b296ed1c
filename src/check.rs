//! `enroll check`: validates every configuration and state file under a root and lists every
//! problem found — the admin's `visudo -c` — and warns about every admin file the booking
//! account or any local user could write ([`crate::ownership`]). Reads only, under a shared
//! lock.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use crate::error::{FileProblem, Severity};
use crate::model::UserId;
use crate::rules::{self, conflicts::Conflict};
use crate::store::config::backup_list::BackupList;
use crate::store::config::capability_edit::ALLOWED_SECTION;
use crate::store::config::login::SelfRegistration;
use crate::store::config::{Config, read_text};
use crate::store::faillock;
use crate::store::lock::SharedLock;
use crate::store::root::Root;
use crate::store::schedule::{self, ActiveFile, Row};
use crate::store::yaml_lines::LineIndex;

/// What the original wrote as every new user's password.
const ORIGINAL_DEFAULT_PASSWORD: &str = "0000";

/// Every problem under `root`, errors and warnings, in file order.
pub fn check_root(root: &Root) -> Result<Vec<FileProblem>> {
    let lock = SharedLock::acquire(root)?;
    let (config, mut problems) = Config::load_collecting(&lock);

    let template = root.templates_dir().join("backup.yaml");
    if template.exists() {
        let shown = root.display(&template);
        match read_text(&template, &shown).and_then(|text| BackupList::parse(&shown, &text)) {
            Ok((_, warnings)) => problems.extend(warnings),
            Err(found) => problems.extend(found),
        }
    }

    let mut active: Vec<(String, Row)> = Vec::new();
    for file in [ActiveFile::Booking, ActiveFile::Using] {
        let path = file.path(root);
        let (rows, found) = schedule::read_rows(&lock, &path)?;
        problems.extend(found);
        let shown = root.display(&path);
        problems.extend(schedule::active_row_problems(&shown, &rows));
        active.extend(rows.into_iter().map(|row| (shown.clone(), row)));
    }
    // The history can be long: read it on every core, keeping only its problems.
    let history = schedule::history_path(root);
    schedule::fold_rows(
        &lock,
        &history,
        Vec::new,
        |found: &mut Vec<FileProblem>, result| {
            if let Err(problem) = result {
                found.push(problem);
            }
        },
        |found| problems.extend(found),
    )?;

    let (_, found) = faillock::read_rows(&lock)?;
    problems.extend(found);

    if let Err(error) = crate::store::notices::read(&lock) {
        match error.downcast::<crate::error::FileProblems>() {
            Ok(found) => problems.extend(found.0),
            Err(error) => problems.push(FileProblem::error(
                root.display(&crate::store::notices::path(root)),
                None,
                "",
                format!("{error:#}"),
            )),
        }
    }

    if let Some(config) = &config {
        check_mail(root, config, &mut problems);
        check_active_rows(root, config, &active, &mut problems);
        check_accounts(root, config, &mut problems);
        check_modes(root, config, &mut problems);
        check_original_compatibility(root, config, &active, &mut problems);
    }
    problems.extend(crate::ownership::warnings(root, config.as_ref()));
    Ok(problems)
}

/// Allowed ids that nobody has a password for yet, and passwords anyone could guess.
fn check_accounts(root: &Root, config: &Config, problems: &mut Vec<FileProblem>) {
    let capability_path = root.display(&config.deploy.capability_config_yaml);
    let capability_text = text_for_lines(&config.deploy.capability_config_yaml);
    let capability_lines = LineIndex::new(&capability_text, Some(ALLOWED_SECTION));
    let login_path = root.display(&root.login_settings_path());
    for user in &config.capability.allowed_users {
        let line = capability_lines.item(user.as_str());
        let warn = |message: String| FileProblem::warning(&capability_path, line, ALLOWED_SECTION, message);
        match config.users.get(user) {
            Some(entry) if entry.has_password() => {
                // The original gave every new user "0000"; an entry still holding it is
                // anyone's who read the original's documentation.
                if entry.password.as_deref() == Some(ORIGINAL_DEFAULT_PASSWORD) {
                    problems.push(warn(format!(
                        "{user} still has the original system's default password {ORIGINAL_DEFAULT_PASSWORD:?}: \
                         anyone can log in as {user}; set a new one with enroll passwd {user}"
                    )));
                }
            }
            _ if config.login.may_self_register(user) => problems.push(warn(format!(
                "{user} has no password yet, and self-registration is on for it ({login_path}): whoever \
                 first logs in as {user} chooses it; set one with enroll passwd {user}"
            ))),
            _ => problems.push(warn(format!(
                "{user} has no password yet and cannot log in until you set one: enroll passwd {user}"
            ))),
        }
    }
    if let SelfRegistration::Only(listed) = &config.login.self_registration {
        let text = text_for_lines(&root.login_settings_path());
        for user in listed.iter().filter(|user| !config.capability.is_allowed(user)) {
            problems.push(FileProblem::warning(
                &login_path,
                crate::store::yaml_lines::line_of_item(&text, "self_registration", user.as_str())
                    .or_else(|| crate::store::yaml_lines::line_of_key(&text, &["self_registration"])),
                "self_registration",
                format!("{user} is not in allow_userIDs ({capability_path}), so cannot register"),
            ));
        }
    }
}

/// The mail settings parse with the rest of `host_deploy.yaml`; here the password file is
/// read as the monitor will read it (run `enroll check` as root, as the monitor runs).
fn check_mail(root: &Root, config: &Config, problems: &mut Vec<FileProblem>) {
    let Some(mail) = &config.deploy.mail else { return };
    if let Err(error) = mail.password() {
        let path = root.host_deploy_path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        problems.push(FileProblem::error(
            root.display(&path),
            crate::store::yaml_lines::line_of_key(&text, &["mail", "password_file"]),
            "mail.password_file",
            format!("{error:#}; no mail can be sent"),
        ));
    }
}

/// `users_config.yaml` holds every password hash: it and the folders it lies in must be
/// closed to everyone but their owner (a folder others may write lets them swap the file).
fn check_modes(root: &Root, config: &Config, problems: &mut Vec<FileProblem>) {
    use std::os::unix::fs::PermissionsExt;
    let users_path = &config.deploy.users_config_yaml;
    let shown = root.display(users_path);
    if let Ok(metadata) = std::fs::metadata(users_path) {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            problems.push(FileProblem::warning(
                &shown,
                None,
                "",
                format!(
                    "mode {mode:04o}: others can read the password hashes in it; chmod 600 {shown} \
                     (every tool that writes it leaves it 600)"
                ),
            ));
        }
    }
    // The folder that holds the hashes (cfg/users/, or cfg/ itself in the original's layout).
    if let Some(folder) = users_path.parent() {
        let Ok(metadata) = std::fs::metadata(folder) else {
            return;
        };
        let mode = metadata.permissions().mode() & 0o777;
        let what = if mode & 0o022 != 0 {
            format!("others can change what is in it, and replace {}", root.display(users_path))
        } else {
            "others can list and read what is in it".to_string()
        };
        if mode & 0o066 != 0 {
            let shown = root.display(folder);
            problems.push(FileProblem::warning(
                format!("{shown}/"),
                None,
                "",
                format!("mode {mode:04o}: {what}; chmod 700 {shown}"),
            ));
        }
    }
}

/// What would keep the original system from reading these files as gpu-booking does (a lab
/// must be able to go back): ids with upper-case letters, which neither `book` nor the
/// original can log in as (both lower-case the id typed); ids written bare that YAML 1.1
/// reads as a number, boolean or date (`- 0012` is 10 there); and SSH keys or must-change
/// flags that an earlier release wrote inline in `users_config.yaml`, which the original
/// rejects.
fn check_original_compatibility(
    root: &Root,
    config: &Config,
    active: &[(String, Row)],
    problems: &mut Vec<FileProblem>,
) {
    use crate::store::config::capability_edit::CUSTOM_SECTION;
    use crate::store::config::yaml_scalar::is_plain_text;
    use crate::store::yaml_lines::line_of_key;

    let capability_path = root.display(&config.deploy.capability_config_yaml);
    let capability_text = text_for_lines(&config.deploy.capability_config_yaml);
    let users_path = root.display(&config.deploy.users_config_yaml);
    let users_text =
        crate::store::state_folder::read_to_string(&config.deploy.users_config_yaml).ok().flatten().unwrap_or_default();
    let capability_lines = LineIndex::new(&capability_text, Some(ALLOWED_SECTION));
    let users_lines = LineIndex::new(&users_text, None);
    let upper = |user: &UserId| {
        format!(
            "{user} has upper-case letters: book, like the original system, lower-cases the id typed at login, \
             so nobody can log in as {user}; rename it {} (enroll remove {user}, enroll add {})",
            user.as_str().to_lowercase(),
            user.as_str().to_lowercase()
        )
    };
    // Each file's lines, to look at how an id is written there (split once: hundreds of ids
    // are looked up).
    let capability_lines_text: Vec<&str> = capability_text.lines().collect();
    let users_lines_text: Vec<&str> = users_text.lines().collect();
    // Each id once per place it is written: the file, its lines, the line of the id there.
    struct Place<'a> {
        path: &'a str,
        lines: &'a [&'a str],
        line: Option<usize>,
        user: &'a UserId,
        field: String,
    }
    let mut places: Vec<Place> = Vec::new();
    for user in &config.capability.allowed_users {
        let line = capability_lines.item(user.as_str());
        let field = ALLOWED_SECTION.to_string();
        places.push(Place { path: &capability_path, lines: &capability_lines_text, line, user, field });
    }
    for user in config.capability.users_with_custom_limits() {
        let line = capability_lines.key(&[CUSTOM_SECTION, user.as_str()]);
        let field = format!("{CUSTOM_SECTION}.{user}");
        places.push(Place { path: &capability_path, lines: &capability_lines_text, line, user, field });
    }
    for user in config.users.users.keys() {
        let line = users_lines.key(&[user.as_str()]);
        places.push(Place { path: &users_path, lines: &users_lines_text, line, user, field: user.to_string() });
    }
    for Place { path, lines, line, user, field } in places {
        if user.has_upper_case() {
            problems.push(FileProblem::warning(path, line, field.clone(), upper(user)));
        }
        let written = line.and_then(|line| lines.get(line - 1)).map(|line| line.trim_start());
        let bare = written.is_some_and(|written| {
            let written = written.strip_prefix('-').map_or(written, str::trim_start);
            !written.starts_with(['"', '\''])
        });
        if bare && !is_plain_text(user.as_str()) {
            problems.push(FileProblem::warning(
                path,
                line,
                field,
                format!(
                    "the id {user} is written without quotes, and the original system (YAML 1.1) reads it as \
                     something else (a number, a boolean or a date); write it as {}",
                    crate::store::config::yaml_scalar::scalar(user.as_str())
                ),
            ));
        }
    }
    // A bare `allow_userIDs:` reads as null; the original then fails every login with
    // `argument of type 'NoneType' is not iterable`.
    if config.capability.allowed_users.is_empty()
        && let Some(line) = line_of_key(&capability_text, &[ALLOWED_SECTION])
    {
        let lines: Vec<&str> = capability_text.lines().collect();
        let value = lines[line - 1].split_once(':').map_or("", |(_, value)| value);
        let inline_empty = crate::store::yaml_lines::strip_comment(value).trim().is_empty();
        let has_items = lines[line..]
            .iter()
            .map(|line| crate::store::yaml_lines::strip_comment(line))
            .take_while(|line| line.trim().is_empty() || line.starts_with([' ', '-']))
            .any(|line| line.trim_start().starts_with('-'));
        if inline_empty && !has_items {
            problems.push(FileProblem::warning(
                &capability_path,
                Some(line),
                ALLOWED_SECTION,
                "empty, which YAML reads as null: the original system then fails every login; write \
                 allow_userIDs: []",
            ));
        }
    }
    let mut named: Vec<&UserId> = Vec::new();
    for (path, row) in active {
        let user = &row.booking.user_id;
        if user.has_upper_case() && !named.contains(&user) {
            named.push(user);
            problems.push(FileProblem::warning(path, Some(row.line), "user_id", upper(user)));
        }
    }
    if !config.users.inline_extras.is_empty() {
        let side = crate::store::config::user_extras::path_for(&config.deploy.users_config_yaml);
        let first = &config.users.inline_extras[0];
        let line = line_of_key(&users_text, &[first.as_str(), "ssh_keys"])
            .or_else(|| line_of_key(&users_text, &[first.as_str(), "must_change_password"]));
        problems.push(FileProblem::warning(
            &users_path,
            line,
            "",
            format!(
                "ssh_keys or must_change_password of {} are written here (by an earlier release), which the \
                 original system rejects; they move to {} at the next change, or now with enroll absolute-paths",
                config.users.inline_extras.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                root.display(&side)
            ),
        ));
    }
}

/// An admin file's text, only to find the line of a problem (the file already loaded).
fn text_for_lines(path: &std::path::Path) -> String {
    crate::store::text_file::read_config(path, "").ok().flatten().unwrap_or_default()
}

pub fn count_errors(problems: &[FileProblem]) -> usize {
    problems.iter().filter(|problem| problem.severity == Severity::Error).count()
}

fn check_active_rows(root: &Root, config: &Config, active: &[(String, Row)], problems: &mut Vec<FileProblem>) {
    let host_gpus = config.capability.max.gpus;
    let allowed: HashSet<&UserId> = config.capability.allowed_users.iter().collect();
    // For line numbers only; the file already parsed.
    let users_text =
        crate::store::state_folder::read_to_string(&config.deploy.users_config_yaml).ok().flatten().unwrap_or_default();
    // Named as everywhere else: relative to the root (`cfg/capability_config.yaml`).
    let capability_path = root.display(&config.deploy.capability_config_yaml);
    for (path, row) in active {
        let booking = &row.booking;
        let problem = |field: &str, message: String| FileProblem::error(path, Some(row.line), field, message);
        if !allowed.contains(&booking.user_id) {
            problems
                .push(problem("user_id", format!("{} is not in allow_userIDs ({capability_path})", booking.user_id)));
        }
        for gpu in &booking.gpus {
            if *gpu >= host_gpus {
                problems.push(problem(
                    "gpus",
                    format!(
                        "GPU {gpu} does not exist: the host has {host_gpus} (ids 0 to {})",
                        host_gpus.saturating_sub(1)
                    ),
                ));
            }
        }
        // Row by row (field limits, an empty or off-grid window): `schedule::active_row_problems`.
    }

    let mut by_user: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, (_, row)) in active.iter().enumerate() {
        by_user.entry(row.booking.user_id.as_str()).or_default().push(index);
    }
    problems.extend(conflicts(active));
    let users_path = root.display(&config.deploy.users_config_yaml);
    for (user, entry) in &config.users.users {
        if !crate::rules::settings::PORT_RANGE.contains(&entry.forward_port) {
            problems.push(FileProblem::warning(
                &users_path,
                crate::store::yaml_lines::line_of_key(&users_text, &[user.as_str(), "forward_port"]),
                format!("{user}.forward_port"),
                format!(
                    "{} is outside {}–{}, the range enroll and book hand out",
                    entry.forward_port,
                    crate::rules::settings::PORT_RANGE.start(),
                    crate::rules::settings::PORT_RANGE.end()
                ),
            ));
        }
        // The booking account writes this file: a folder outside its parent in
        // host_deploy.yaml is never mounted (the monitor refuses it), so say so here first.
        let deploy = &config.deploy;
        for (field, folder, parent) in [
            ("volume_work_dir", entry.work_dir(deploy, user), &deploy.volume_work_dir),
            ("volume_backup_dir", entry.backup_dir(deploy, user), &deploy.volume_backup_dir),
        ] {
            let normal = crate::safe_folder::lexically_normal(&folder);
            let parent = crate::safe_folder::lexically_normal(parent);
            if normal == parent || !normal.starts_with(&parent) {
                problems.push(FileProblem::error(
                    &users_path,
                    crate::store::yaml_lines::line_of_key(&users_text, &[user.as_str(), field]),
                    format!("{user}.{field}"),
                    format!(
                        "{} is not inside {}, the folder host_deploy.yaml names for it; the monitor will not mount it",
                        crate::error::shown(&folder.display().to_string()),
                        crate::error::shown(&parent.display().to_string())
                    ),
                ));
            }
        }
        // Field limits (extra command, image, SSH keys): checked as the file loads.
        if !allowed.contains(user) && !by_user.contains_key(user.as_str()) {
            problems.push(FileProblem::warning(
                root.display(&config.deploy.users_config_yaml),
                None,
                user.as_str(),
                format!(
                    "{user} has settings (port {}) but is not in allow_userIDs, so cannot book",
                    entry.forward_port
                ),
            ));
        }
    }
}

/// Rows that share a moment with another (own bookings that overlap, a GPU held twice), each
/// conflict reported once: two rows at the later one, naming the earlier; more, chained
/// (each overlaps another of the group), at the first, with how many and where the others
/// are. Found by sweeping each user's and each GPU's rows sorted by start: O(n log n), where
/// pairing every row with every other took seconds and printed a line per pair.
fn conflicts(active: &[(String, Row)]) -> Vec<FileProblem> {
    let place = |index: usize| format!("{}:{}", active[index].0, active[index].1.line);
    let holder = |index: usize| format!("{} at {}", active[index].1.booking.user_id, place(index));
    let others = |group: &[usize], describe: &dyn Fn(usize) -> String| {
        const SHOWN: usize = 3;
        let mut text: Vec<String> = group[1..].iter().take(SHOWN).map(|index| describe(*index)).collect();
        if group.len() - 1 > SHOWN {
            text.push(format!("{} more", group.len() - 1 - SHOWN));
        }
        match text.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => text.join(""),
        }
    };
    let at = |index: usize, field: &str, message: String| {
        FileProblem::error(&active[index].0, Some(active[index].1.line), field, message)
    };
    // (row, order within the row, problem), sorted at the end into file order.
    let mut found: Vec<(usize, u8, FileProblem)> = Vec::new();
    for conflict in rules::conflicts::conflicts_among(active, |(_, row)| &row.booking) {
        let problem = match (&conflict, conflict.group()) {
            (Conflict::OwnOverlap { user, .. }, [earlier, later]) => (
                *later,
                0,
                at(
                    *later,
                    "start",
                    format!("overlaps {user}'s booking at {}; a user's bookings never overlap", place(*earlier)),
                ),
            ),
            (Conflict::OwnOverlap { user, .. }, group) => (
                group[0],
                0,
                at(
                    group[0],
                    "start",
                    format!(
                        "{} bookings of {user} overlap one another: this one and those at {}; a user's bookings never overlap",
                        group.len(),
                        others(group, &place)
                    ),
                ),
            ),
            (Conflict::SharedGpus { gpus, .. }, group) => {
                let ids = gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
                match group {
                    [earlier, later] => (
                        *later,
                        1,
                        at(
                            *later,
                            "gpus",
                            format!("GPU {ids} is also booked by {} for an overlapping time", holder(*earlier)),
                        ),
                    ),
                    _ => (
                        group[0],
                        1,
                        at(
                            group[0],
                            "gpus",
                            format!(
                                "GPU {ids} {} booked by {} bookings at overlapping times: this one and {}",
                                if gpus.len() == 1 { "is" } else { "are each" },
                                group.len(),
                                others(group, &holder)
                            ),
                        ),
                    ),
                }
            }
        };
        found.push(problem);
    }
    found.sort_by_key(|(index, order, _)| (*index, *order));
    found.into_iter().map(|(_, _, problem)| problem).collect()
}
