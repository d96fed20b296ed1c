//! Going back to the original system must stay possible: what gpu-booking writes under `cfg/`
//! is read by the original's own reader (PyYAML's `safe_load`, YAML 1.1, and
//! `UserConfig(**entry)`, which rejects unknown keys) exactly as gpu-booking reads it.
//!
//! The real binaries write the files (`enroll add/remove/passwd/absolute-paths`,
//! `book options`); the files are then read with PyYAML and with the project's own reader.
//! Property tests push arbitrary strings through the writers. Tests that need `python3` with
//! PyYAML (Debian's `python3-yaml`) say why they skip when it is missing, unless
//! `GPU_BOOKING_REQUIRE_DOCKER=1` (CI), where they fail.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use gpu_booking::model::UserId;
use gpu_booking::store::config::capability_edit::{self, Edit};
use gpu_booking::store::config::yaml::Limit;
use gpu_booking::store::config::yaml_scalar::scalar;
use gpu_booking::store::config::{CapabilityConfig, HostDeploy, UserEntry, UsersConfig};
use gpu_booking::store::root::Root;
use indexmap::IndexMap;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::fixtures::ED25519_KEY;
use support::fixtures::fixture_text;
use support::images;
use support::lab::Lab;
use support::run::{self, Run};
use support::snapshot::{assert_unchanged, snapshot};

const NOW: &str = "2030-01-10 10:10";

const USERS_CONFIG: &str = "cfg/users/users_config.yaml";
const SIDE_FILE: &str = "cfg/users/users_config.gpu-booking.yaml";
const CAPABILITY: &str = "cfg/capability_config.yaml";

/// The fixture's `host_deploy.yaml`: users_config.yaml in a folder of its own, an image name
/// the admin quoted.
fn host_deploy_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| fixture_text("going-back/cfg/host_deploy.yaml"))
}

/// The fixture's `capability_config.yaml`: the lab's host, one allowed user, comments.
fn capability_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| fixture_text("going-back/cfg/capability_config.yaml"))
}

/// Passwords the original stored in plain text that YAML 1.1 reads as something else when
/// they lose their quotes.
const LEGACY_PASSWORDS: [&str; 12] =
    ["on", "12:30", "1_000", "2024-01-01", "0012", "~", "null", ".inf", "yes", "0x1f", "1e3", "n"];

/// Ids YAML 1.1 would read as a number, boolean, date or null if written bare.
const AMBIGUOUS_IDS: [&str; 9] = ["0012", "off", "12345678", "y", "2024-01-01", "1_000", "0x1f", "1e5", "null"];

/// The original's `UserConfig`: exactly these keyword arguments, no others.
const SEVEN_KEYS: [&str; 7] = [
    "password",
    "forward_port",
    "image",
    "extra_command",
    "volume_work_dir",
    "volume_dataset_dir",
    "volume_backup_dir",
];

// ---- the YAML 1.1 reader ------------------------------------------------------------------

/// Loads each file with PyYAML's `safe_load`, as the original's `HostInfo.py` does, builds
/// every `users_config.yaml` entry with a stand-in for the original's `UserConfig(**entry)`
/// (when `as_users` is set), and returns the documents as JSON. Anything JSON has no word for
/// comes back as a string naming its type (`"!int 10"`, `"!date 2024-01-01"`), so a value
/// read differently never compares equal to the text that was meant.
const PYTHON_READER: &str = r#"
import json, sys, yaml

def UserConfig(password, forward_port, image, extra_command, volume_work_dir, volume_dataset_dir, volume_backup_dir):
    return None

def typed(value, key=False):
    if isinstance(value, dict):
        return {typed(k, True): typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, str):
        return value
    if value is None or (not key and isinstance(value, (bool, int)) ) or (not key and isinstance(value, float) and value == value and abs(value) != float('inf')):
        return value
    return '!%s %s' % (type(value).__name__, value)

as_users = sys.argv[1] == 'users'
out = []
for path in sys.argv[2:]:
    with open(path, encoding='utf-8') as f:
        document = yaml.safe_load(f)
    if as_users:
        for entry in (document or {}).values():
            UserConfig(**entry)
    out.append(typed(document))
print(json.dumps(out))
"#;

/// `Some(())` when `python3` can import PyYAML; otherwise the test says why it skips (or, in
/// CI, fails).
fn python_yaml() -> Option<()> {
    let found = images::runs("python3", &["-c", "import yaml"])
        || images::skip_or_fail("going_back", "python3 with PyYAML (apt-get install python3-yaml) is not available");
    found.then_some(())
}

/// Reads `paths` with PyYAML; `Err` with Python's message when it cannot (the original fails).
fn read_as_original(as_users: bool, paths: &[&Path]) -> Result<Vec<Value>, String> {
    let output = Command::new("python3")
        .args(["-c", PYTHON_READER, if as_users { "users" } else { "plain" }])
        .args(paths)
        .output()
        .expect("run python3");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).expect("the reader prints JSON"))
}

fn original_reads(path: &Path) -> Value {
    let as_users = path.ends_with("users_config.yaml");
    let mut documents = read_as_original(as_users, &[path]).unwrap_or_else(|error| {
        panic!("the original cannot load {}:\n{error}\n{}", path.display(), fs::read_to_string(path).unwrap())
    });
    documents.remove(0)
}

// ---- a scratch root and the binaries --------------------------------------------------------

/// The fixture's root with `users_config` as `users_config.yaml`.
fn lab_with_users(users_config: &str) -> Lab {
    let lab = Lab::fixture("going-back");
    lab.write(USERS_CONFIG, users_config);
    lab
}

fn run(binary: &str, root: &Path, args: &[&str], input: &str) -> Run {
    run::command(binary).root(root).now(NOW).args(args).stdin(input).run()
}

fn ok(binary: &str, root: &Path, args: &[&str], input: &str) -> Run {
    let outcome = run(binary, root, args, input);
    assert_eq!(outcome.code, Some(0), "{binary} {args:?}:\n{outcome}");
    outcome
}

fn read(root: &Path, relative: &str) -> String {
    fs::read_to_string(root.join(relative)).unwrap_or_else(|error| panic!("read {relative}: {error}"))
}

/// `enroll list --json`, keyed by user: what the project's own reader makes of the files.
fn listed(root: &Path) -> IndexMap<String, Value> {
    let run = ok("enroll", root, &["list", "--json"], "");
    let users: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    users.into_iter().map(|user| (user["user"].as_str().unwrap().to_string(), user)).collect()
}

/// The original's `users_config.yaml` entry for a user with a plain-text password.
fn legacy_entry(user: &str, password: &str, port: u16) -> String {
    format!(
        "{user}:\n  password: \"{password}\"\n  forward_port: {port}\n  image: null\n  extra_command: null\n  \
         volume_work_dir: /mnt/Users/{user}\n  volume_dataset_dir: /mnt/Dataset\n  volume_backup_dir: /mnt/Backup/{user}\n\n"
    )
}

// ---- through the binaries ---------------------------------------------------------------------

#[test]
fn what_the_binaries_write_reads_the_same_in_yaml_1_1_and_in_gpu_booking() {
    let mut legacy = legacy_entry("m11007s05", "0000", 10001);
    for (index, password) in LEGACY_PASSWORDS.iter().enumerate() {
        legacy.push_str(&legacy_entry(&format!("legacy{index}"), password, 10100 + index as u16));
    }
    let lab = lab_with_users(&legacy);
    let path = lab.root();
    let key_file = path.join("alice.pub");
    fs::write(&key_file, format!("{ED25519_KEY}\n")).unwrap();

    for id in AMBIGUOUS_IDS {
        ok("enroll", path, &["add", id, "--gpus", "2", "--password-stdin"], "tulip-42\n");
    }
    // A temporary password (must change) and an SSH key: gpu-booking's additions.
    ok("enroll", path, &["add", "alice", "--key", key_file.to_str().unwrap()], "");
    ok("enroll", path, &["passwd", "alice", "--password-stdin"], "tulip-42\n");
    ok("enroll", path, &["add", "carol", "--email", "carol@lab.example.org"], "");
    let options = ["options", "--extra-command", "12:30", "--image", "1.10", "--email", "alice@lab.example.org"];
    ok("book", path, &[&["--user", "alice", "--password-stdin"][..], &options].concat(), "tulip-42\n");

    // The original's reader: every file loads, every entry has exactly its seven keys, and
    // every string is the string gpu-booking meant.
    let Some(()) = python_yaml() else { return };
    let users = original_reads(&path.join(USERS_CONFIG));
    let users = users.as_object().unwrap();
    let mut expected_ids: Vec<String> = vec!["m11007s05".to_string()];
    expected_ids.extend((0..LEGACY_PASSWORDS.len()).map(|index| format!("legacy{index}")));
    expected_ids.extend(AMBIGUOUS_IDS.iter().map(ToString::to_string));
    expected_ids.extend(["alice".to_string(), "carol".to_string()]);
    // (serde_json sorts keys: the order of the file is not compared here.)
    expected_ids.sort();
    assert_eq!(users.keys().cloned().collect::<Vec<_>>(), expected_ids, "ids as the original reads them");
    for (user, entry) in users {
        let keys: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
        let mut seven = SEVEN_KEYS.to_vec();
        seven.sort();
        assert_eq!(keys, seven, "{user}'s entry");
        assert!(entry["forward_port"].is_u64(), "{user}: {entry}");
        for field in ["volume_work_dir", "volume_dataset_dir", "volume_backup_dir"] {
            assert!(entry[field].is_string(), "{user}.{field}: {entry}");
        }
    }
    // The original's key order, as gpu-booking's reader sees the file.
    let in_order: serde_yaml::Mapping = serde_yaml::from_str(&read(path, USERS_CONFIG)).unwrap();
    for (user, entry) in &in_order {
        let keys: Vec<&str> = entry.as_mapping().unwrap().keys().map(|key| key.as_str().unwrap()).collect();
        assert_eq!(keys, SEVEN_KEYS, "{user:?}'s entry in order");
    }
    for (index, password) in LEGACY_PASSWORDS.iter().enumerate() {
        assert_eq!(users[&format!("legacy{index}")]["password"], json!(password), "a legacy password");
    }
    assert_eq!(users["alice"]["image"], json!("1.10"));
    assert_eq!(users["alice"]["extra_command"], json!("12:30"));
    assert_eq!(users["m11007s05"]["volume_work_dir"], json!("/mnt/Users/m11007s05"));
    assert_eq!(users["0012"]["volume_work_dir"], json!("./volumes/work/0012"));

    let side = original_reads(&path.join(SIDE_FILE));
    // The e-mail addresses live in the side file, which the original never reads.
    assert_eq!(
        side,
        json!({
            "alice": {"ssh_keys": [ED25519_KEY], "email": "alice@lab.example.org"},
            "carol": {"must_change_password": true, "email": "carol@lab.example.org"}
        })
    );

    let capability = original_reads(&path.join(CAPABILITY));
    let mut allowed = vec!["m11007s05".to_string()];
    allowed.extend(AMBIGUOUS_IDS.iter().map(ToString::to_string));
    allowed.extend(["alice".to_string(), "carol".to_string()]);
    assert_eq!(capability["allow_userIDs"], json!(allowed));
    let custom = capability["max_custom_capability"].as_object().unwrap();
    let mut ambiguous = AMBIGUOUS_IDS.to_vec();
    ambiguous.sort();
    assert_eq!(custom.keys().cloned().collect::<Vec<_>>(), ambiguous, "limits blocks keyed by the ids as text");
    assert!(custom.values().all(|block| block == &json!({"gpus": 2})), "{custom:?}");

    // gpu-booking's own reader sees the same.
    let mine = listed(path);
    for id in AMBIGUOUS_IDS {
        assert!(
            mine[id]["allowed"].as_bool().unwrap() && mine[id]["gpus"].as_f64() == Some(2.0),
            "{id}: {:?}",
            mine[id]
        );
    }
    assert_eq!(mine["alice"]["ssh_keys"], json!(1));
    assert_eq!(mine["carol"]["must_change_password"], json!(true));
    let alice = ok("book", path, &["--user", "alice", "--password-stdin", "options", "--json"], "tulip-42\n");
    let alice: Value = serde_json::from_str(&alice.stdout).unwrap();
    assert_eq!((&alice["image"], &alice["extra_command"]), (&json!("1.10"), &json!("12:30")), "{alice}");
    assert_eq!(alice["ssh_keys"], json!([ED25519_KEY]));
    let check = run("enroll", path, &["check"], "");
    assert!(!check.stdout.contains("without quotes"), "gpu-booking wrote no bare ambiguous id:\n{check}");

    // Removing everyone leaves files the original still loads: an empty list, no users.
    let everyone: Vec<String> = mine.keys().cloned().collect();
    for user in &everyone {
        ok("enroll", path, &["remove", user], "");
    }
    assert_eq!(original_reads(&path.join(CAPABILITY))["allow_userIDs"], json!([]));
    assert!(read(path, CAPABILITY).contains("allow_userIDs: [] # who may book\n"), "{}", read(path, CAPABILITY));
    assert_eq!(original_reads(&path.join(USERS_CONFIG)), json!({}));
    assert_eq!(original_reads(&path.join(SIDE_FILE)), json!({}));
    assert!(listed(path).is_empty());
}

#[test]
fn a_users_config_with_inline_additions_moves_them_to_the_side_file_at_the_next_write() {
    // As the previous release wrote it: the additions inline, where the original rejects them.
    let written_before = format!(
        "alice:\n  password: $6$abc$def\n  forward_port: 10001\n  image: null\n  extra_command: null\n  \
         volume_work_dir: ./volumes/work/alice\n  volume_dataset_dir: ./volumes/dataset\n  \
         volume_backup_dir: ./volumes/backup/alice\n  ssh_keys:\n  - {ED25519_KEY}\n  must_change_password: true\n\
         bob:\n  password: '0000'\n  forward_port: 10002\n  image: null\n  extra_command: null\n"
    );
    let lab = lab_with_users(&written_before);
    let path = lab.root();
    fs::write(
        path.join(CAPABILITY),
        capability_text().replace("  - m11007s05\n", "  - alice\n  - bob\n  - \"0012\"\n  - 0013\n"),
    )
    .unwrap();

    // Read as it is, and `enroll check` says what will happen.
    let before = listed(path);
    assert_eq!((&before["alice"]["ssh_keys"], &before["alice"]["must_change_password"]), (&json!(1), &json!(true)));
    let check = run("enroll", path, &["check"], "");
    assert!(
        check.stdout.contains(&format!("{USERS_CONFIG}:9: warning: ssh_keys or must_change_password of alice"))
            && check.stdout.contains(SIDE_FILE),
        "{check}"
    );
    // A bare id that YAML 1.1 reads as a number is named too; the quoted one is fine.
    assert!(
        check
            .stdout
            .contains(&format!("{CAPABILITY}:18: warning: allow_userIDs: the id 0013 is written without quotes"))
    );
    assert!(!check.stdout.contains("the id 0012"), "{check}");
    if python_yaml().is_some() {
        let error = read_as_original(true, &[&path.join(USERS_CONFIG)]).unwrap_err();
        assert!(error.contains("unexpected keyword argument"), "the original rejects the file as it was:\n{error}");
    }

    // Any write splits the file: here a new password for bob.
    ok("enroll", path, &["passwd", "bob", "--password-stdin"], "orchid-77\n");
    let users_text = read(path, USERS_CONFIG);
    assert!(!users_text.contains("ssh_keys") && !users_text.contains("must_change"), "{users_text}");
    assert!(users_text.contains("  volume_work_dir: ./volumes/work/bob\n"), "bob's missing keys are written out");
    let side = read(path, SIDE_FILE);
    assert!(side.contains(&format!("alice:\n  ssh_keys:\n    - \"{ED25519_KEY}\"\n  must_change_password: true\n")));
    let mode = fs::metadata(path.join(SIDE_FILE)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the side file is private like users_config.yaml");

    // Nothing lost, and the original now loads the file.
    let after = listed(path);
    assert_eq!(after["alice"], before["alice"]);
    assert_eq!(after["bob"]["forward_port"], json!(10002));
    let check = run("enroll", path, &["check"], "");
    assert!(!check.stdout.contains("ssh_keys or must_change_password"), "{check}");
    if python_yaml().is_some() {
        let users = original_reads(&path.join(USERS_CONFIG));
        assert_eq!(users["alice"]["password"], json!("$6$abc$def"));
        assert_eq!(users["bob"]["volume_backup_dir"], json!("./volumes/backup/bob"));
    }
}

#[test]
fn ids_are_lower_case_in_both_systems() {
    let lab = lab_with_users("");
    let path = lab.root();
    let before = snapshot(path);
    let refused = run("enroll", path, &["add", "Alice", "--password-stdin"], "tulip-42\n");
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(refused.stderr.contains("lower-case") && refused.stderr.contains("use alice"), "{refused}");
    let refused = run("enroll", path, &["add", "now", "--password-stdin"], "tulip-42\n");
    assert_eq!(refused.code, Some(2), "`now` would read as a request for a pass:\n{refused}");
    assert_unchanged(&before, &snapshot(path), "refused ids");

    // `book` lower-cases the id typed, as the original did.
    ok("enroll", path, &["add", "alice", "--password-stdin"], "tulip-42\n");
    let before = snapshot(path);
    ok("book", path, &["--user", "ALICE", "--password-stdin", "status"], "tulip-42\n");
    assert_unchanged(&before, &snapshot(path), "ALICE logged in as alice");

    // Upper-case ids already in the files are named, with file and line.
    let capability = read(path, CAPABILITY).replace("  - alice\n", "  - alice\n  - Bob\n");
    fs::write(path.join(CAPABILITY), capability).unwrap();
    let check = run("enroll", path, &["check"], "");
    assert!(
        check.stdout.contains(&format!("{CAPABILITY}:17: warning: allow_userIDs: Bob has upper-case letters"))
            && check.stdout.contains("rename it bob"),
        "{check}"
    );
}

#[test]
fn check_names_an_allow_list_the_original_reads_as_null() {
    let lab = lab_with_users("");
    let path = lab.root();
    fs::write(path.join(CAPABILITY), capability_text().replace("  - m11007s05\n", "  # nobody yet\n")).unwrap();
    let check = run("enroll", path, &["check"], "");
    assert!(
        check.stdout.contains(&format!("{CAPABILITY}:14: warning: allow_userIDs: empty, which YAML reads as null")),
        "{check}"
    );
    fs::write(path.join(CAPABILITY), capability_text().replace("  - m11007s05\n", "")).unwrap();
    ok("enroll", path, &["add", "alice", "--password-stdin"], "tulip-42\n");
    ok("enroll", path, &["remove", "alice"], "");
    let check = run("enroll", path, &["check"], "");
    assert!(!check.stdout.contains("reads as null"), "enroll remove left `allow_userIDs: []`:\n{check}");
}

#[test]
fn absolute_paths_rewrites_relative_volume_folders_and_nothing_else() {
    let lab = lab_with_users(&legacy_entry("m11007s05", "0000", 10001));
    let path = lab.root();
    ok("enroll", path, &["add", "alice", "--password-stdin"], "tulip-42\n");
    ok("enroll", path, &["add", "bob"], "");
    let users_before = read(path, USERS_CONFIG);
    assert!(users_before.contains("  volume_work_dir: ./volumes/work/alice\n"), "{users_before}");
    let before = snapshot(path);

    let run_output = ok("enroll", path, &["absolute-paths"], "");
    let absolute = |relative: &str| path.join(relative).to_str().unwrap().to_string();
    assert!(
        run_output
            .stdout
            .contains(&format!("alice.volume_work_dir: ./volumes/work/alice -> {}", absolute("volumes/work/alice"))),
        "{run_output}"
    );
    assert!(run_output.stdout.contains("alice, bob have hashed passwords"), "{run_output}");
    let users_after = read(path, USERS_CONFIG);
    let changed: Vec<(&str, &str)> =
        users_before.lines().zip(users_after.lines()).filter(|(old, new)| old != new).collect();
    let mut expected = Vec::new();
    for user in ["alice", "bob"] {
        for (field, folder) in [
            ("volume_work_dir", format!("volumes/work/{user}")),
            ("volume_dataset_dir", "volumes/dataset".to_string()),
            ("volume_backup_dir", format!("volumes/backup/{user}")),
        ] {
            expected.push((format!("  {field}: ./{folder}"), format!("  {field}: {}", absolute(&folder))));
        }
    }
    let expected: Vec<(&str, &str)> = expected.iter().map(|(old, new)| (old.as_str(), new.as_str())).collect();
    assert_eq!(changed, expected);
    assert_eq!(users_before.lines().count(), users_after.lines().count());
    let mut after = snapshot(path);
    after.insert(USERS_CONFIG.to_string(), before[USERS_CONFIG].clone());
    assert_unchanged(&before, &after, "enroll absolute-paths: only users_config.yaml changes");

    // Done once; a second run finds nothing and writes nothing.
    let before = snapshot(path);
    let again = ok("enroll", path, &["absolute-paths"], "");
    assert!(again.stdout.contains("nothing to change"), "{again}");
    assert_unchanged(&before, &snapshot(path), "a second enroll absolute-paths");
    if python_yaml().is_some() {
        let users = original_reads(&path.join(USERS_CONFIG));
        assert_eq!(users["alice"]["volume_backup_dir"], json!(absolute("volumes/backup/alice")));
    }
}

#[test]
fn a_link_in_place_of_the_side_file_is_refused() {
    let lab = lab_with_users("");
    let path = lab.root();
    let target = path.join("precious");
    fs::write(&target, "precious\n").unwrap();
    std::os::unix::fs::symlink(&target, path.join(SIDE_FILE)).unwrap();
    let before = snapshot(path);
    let refused = run("enroll", path, &["add", "alice", "--password-stdin"], "tulip-42\n");
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("users_config.gpu-booking.yaml") && refused.stderr.contains("symbolic link"));
    assert_unchanged(&before, &snapshot(path), "a linked side file");
}

// ---- properties of the writers ------------------------------------------------------------------

/// Strings of every kind, weighted towards what YAML reads as something other than text.
fn tricky_string() -> impl Strategy<Value = String> {
    let words: Vec<&str> = [
        // Booleans and nulls, in YAML 1.1 or 1.2.
        &["on", "Off", "YES", "no", "y", "N", "true", "False", "null", "Null", "~", ""][..],
        // Numbers, times and dates, in either version.
        &[".inf", "-.Inf", ".NaN", "nan", "0", "-0", "+1", "0012", "0o17", "0x1F", "0b11", "1_000", "1e3"],
        &["1.5e-3", "12:30", "190:20:30.15", "2024-01-01", "2001-12-14t21:59:43.10-05:00"],
        // Indicators that start or end YAML syntax.
        &["=", "<<", "- a", "? a", "a: b", "a #b", "#", "&a", "*a", "!a", "|", ">", "%a", "@a", "`a", "[a]"],
        &["{a: 1}", "'a'", "\"a\"", "a\\b"],
        // Line breaks and a byte order mark that YAML does not count as text.
        &["\u{85}", "\u{2028}", "\u{feff}"],
    ]
    .concat();
    let words = prop::sample::select(words).prop_map(str::to_string);
    prop_oneof![
        3 => words,
        3 => "[-+.0-9:_eExXoObBa-z ~#'\"\\\\]{0,10}",
        2 => any::<String>(),
        1 => "[ \\t\\r\\n\\x00-\\x1f\\x7f-\\u{a0}]{0,6}",
    ]
}

fn deploy(root: &Path) -> HostDeploy {
    HostDeploy::parse(&Root::new(root), "cfg/host_deploy.yaml", host_deploy_text()).unwrap().0
}

/// `users_config.yaml` with one user per string: every field that holds text holds it.
fn users_with(strings: &[String]) -> UsersConfig {
    let mut users = UsersConfig::default();
    for (index, text) in strings.iter().enumerate() {
        let entry = UserEntry {
            password: Some(text.clone()),
            forward_port: 10001 + index as u16,
            image: Some(text.clone()),
            extra_command: Some(text.clone()),
            volume_work_dir: Some(PathBuf::from(text)),
            volume_dataset_dir: Some(PathBuf::from(format!("/mnt/{text}"))),
            volume_backup_dir: Some(PathBuf::from(text)),
            ssh_keys: Vec::new(),
            must_change_password: false,
            email: None,
        };
        users.users.insert(UserId::parse(&format!("u{index}")).unwrap(), entry);
    }
    users
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever a user or an admin types survives a write and a read by gpu-booking.
    #[test]
    fn any_string_survives_users_config(text in tricky_string()) {
        let scratch = tempfile::tempdir().unwrap();
        let users = users_with(std::slice::from_ref(&text));
        let written = users.render(&deploy(scratch.path())).unwrap();
        let (read, _) = UsersConfig::parse("users_config.yaml", &written)
            .map_err(|problems| TestCaseError::fail(format!("{problems:?}\n{written}")))?;
        prop_assert_eq!(read.users, users.users, "{}", written);
    }

    /// Ids that enroll writes as list items and keys of capability_config.yaml read back as
    /// the same ids, and lines the edit does not touch stay as they were.
    #[test]
    fn any_id_survives_capability_config(id in "[a-z0-9][a-z0-9_.-]{0,12}") {
        let user = UserId::parse(&id).unwrap();
        let edits = [Edit::Allow(user.clone()), Edit::SetLimits(user.clone(), vec![("gpus", Some(Limit::Max))])];
        let edited = capability_edit::apply("c.yaml", capability_text(), &edits)
            .map_err(|error| TestCaseError::fail(format!("{error:#}")))?;
        let (config, _) = CapabilityConfig::parse("c.yaml", &edited).unwrap();
        prop_assert!(config.is_allowed(&user));
        prop_assert_eq!(config.custom_entry(&user), Some(vec![("gpus", Limit::Max)]));
        prop_assert!(edited.starts_with(&capability_text()[..capability_text().find("allow_userIDs").unwrap()]));
    }
}

/// One line a hand edit may leave in `users_config.yaml`: close to the written form, or not.
fn edited_line() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "  image: ~",
        "  image: Null",
        "  image: 'lab/image'",
        "  image: \"a\\tb\"",
        "  image: null # the default",
        "  image:",
        "  image: ",
        "  image:  lab",
        "  extra_command: \"a: b # c\"",
        "  forward_port: 0012",
        "  forward_port: 70000",
        "  forward_port: 0",
        "  forward_port: +10005",
        "  forward_port: 10005.0",
        "  forward_port: \"10005\"",
        "  password: 1234",
        "  password: \"1234\"",
        "  password: $6$rounds=5000$abc$def",
        "  password: yes",
        "  ssh_keys: []",
        "  must_change_password: true",
        "  volume_work_dir: ./volumes/work/x",
        "   volume_work_dir: ./x",
        " u1:",
        "u1:",
        "u9:",
        "\"0012\":",
        "0012:",
        "u1: {}",
        "{}",
        "---",
        "# a comment",
        "  # an indented comment",
        "",
        "\t",
        "u2:\r",
    ])
    .prop_map(str::to_string);
    prop_oneof![4 => fixed, 1 => "[ a-z0-9:_\"'#.$-]{0,16}"]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// The quick reader of `users_config.yaml` reads what the tools write, and reads exactly
    /// what the YAML parser reads from the same text; whatever it does not take (a hand edit
    /// in another form) it leaves to the YAML parser.
    #[test]
    fn the_quick_reader_of_users_config_reads_what_yaml_reads(
        strings in prop::collection::vec(tricky_string(), 0..6),
        plain in prop::collection::vec("[a-z][a-z0-9./_$-]{0,12}", 0..6),
        edits in prop::collection::vec((any::<prop::sample::Index>(), edited_line(), 0u8..3), 0..4),
    ) {
        let scratch = tempfile::tempdir().unwrap();
        let deploy = deploy(scratch.path());
        // Files as the tools write them, from ordinary strings, are read by the quick reader.
        let written = users_with(&plain).render(&deploy).unwrap();
        prop_assert_eq!(
            gpu_booking::store::config::users::parse_written_form(&written),
            Some(users_with(&plain).users),
            "{}",
            written
        );
        let mut lines: Vec<String> = users_with(&strings).render(&deploy).unwrap().lines().map(str::to_string).collect();
        for (at, line, how) in edits {
            let index = at.index(lines.len() + 1);
            match how {
                0 => lines.insert(index, line),
                _ if index < lines.len() => lines[index] = line,
                _ => lines.push(line),
            }
        }
        let text = lines.join("\n") + "\n";
        if let Some(quick) = gpu_booking::store::config::users::parse_written_form(&text) {
            let parsed: Result<Option<IndexMap<UserId, UserEntry>>, _> =
                gpu_booking::store::config::yaml::parse("users_config.yaml", &text);
            prop_assert_eq!(Some(quick), parsed.ok().map(Option::unwrap_or_default), "{}", text);
        }
    }
}

proptest! {
    // Each case is one Python run over many strings.
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// The same strings, read by the original's reader (YAML 1.1): every one comes back as
    /// the same string, in users_config.yaml, its side file and capability_config.yaml.
    #[test]
    fn any_string_reads_the_same_in_yaml_1_1(
        strings in prop::collection::vec(tricky_string(), 100..200),
        ids in prop::collection::vec("[a-z0-9][a-z0-9_.-]{0,8}", 20..40),
    ) {
        let Some(()) = python_yaml() else { return Ok(()) };
        let scratch = tempfile::tempdir().unwrap();
        let users_path = scratch.path().join("users_config.yaml");
        fs::write(&users_path, users_with(&strings).render(&deploy(scratch.path())).unwrap()).unwrap();
        // The side file's writer: keys, as a list.
        let keys = gpu_booking::store::config::user_extras::UserExtras {
            ssh_keys: strings.clone(),
            must_change_password: true,
            email: None,
        };
        let alice = UserId::parse("alice").unwrap();
        let side_path = scratch.path().join("side.yaml");
        fs::write(&side_path, gpu_booking::store::config::user_extras::render([(&alice, &keys)])).unwrap();
        let mut capability = capability_text().to_string();
        let mut unique: Vec<String> = Vec::new();
        for id in ids.into_iter().filter(|id| id.as_str() != "m11007s05") {
            if unique.contains(&id) { continue; }
            let user = UserId::parse(&id).unwrap();
            capability = capability_edit::apply("c.yaml", &capability, &[
                Edit::Allow(user.clone()), Edit::SetLimits(user, vec![("cpus", Some(Limit::Number(2.0)))]),
            ]).unwrap();
            unique.push(id);
        }
        let capability_path = scratch.path().join("capability_config.yaml");
        fs::write(&capability_path, &capability).unwrap();

        let users = read_as_original(true, &[&users_path]).map_err(TestCaseError::fail)?.remove(0);
        for (index, text) in strings.iter().enumerate() {
            let entry = &users[format!("u{index}")];
            let shown = scalar(text);
            prop_assert_eq!(&entry["password"], &json!(text), "written as {}", shown);
            prop_assert_eq!(&entry["image"], &json!(text), "written as {}", shown);
            prop_assert_eq!(&entry["extra_command"], &json!(text), "written as {}", shown);
            prop_assert_eq!(&entry["volume_work_dir"], &json!(text), "written as {}", shown);
            prop_assert_eq!(&entry["volume_dataset_dir"], &json!(format!("/mnt/{text}")), "written as {}", shown);
        }
        let documents = read_as_original(false, &[&side_path, &capability_path]).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&documents[0]["alice"]["ssh_keys"], &json!(strings));
        let mut allowed = vec!["m11007s05".to_string()];
        allowed.extend(unique.iter().cloned());
        prop_assert_eq!(&documents[1]["allow_userIDs"], &json!(allowed));
        let custom: Vec<String> = documents[1]["max_custom_capability"].as_object().unwrap().keys().cloned().collect();
        unique.sort();
        prop_assert_eq!(custom, unique);
    }
}
