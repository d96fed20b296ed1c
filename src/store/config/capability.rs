//! `cfg/capability_config.yaml`: the host's size, who may book, and per-booking limits.
//!
//! Admin-authored. The one exception to "the tools never rewrite it" (issue 6): `enroll add`,
//! `remove` and `limits` change `allow_userIDs` and a user's block under
//! `max_custom_capability`, and nothing else. They do so by surgical text edits
//! ([`super::capability_edit`]) that leave every other line byte for byte as the admin wrote
//! it, comments and layout included; the edited text is parsed again and must mean exactly
//! what was intended, or nothing is written. [`save`] writes it atomically under the
//! [`ExclusiveLock`]. Plain readers need no lock: a reader sees the old file or the new one.

use std::path::Path;

use anyhow::Result;
use indexmap::IndexMap;
use serde::Deserialize;

use super::expression::Expression;
use super::yaml::{self, Amount, Findings, Limit, Parsed, UniqueMap, without_blanks};
use crate::model::{UserId, UserLimits, ranges};
use crate::store::atomic_file;
use crate::store::lock::ExclusiveLock;

/// The keys a limits block may hold, in the order the original's files list them.
pub const LIMIT_FIELDS: [&str; 5] = ["cpus", "memory", "gpus", "backup_space", "work_space"];

/// Replaces the file with `text` (already checked by [`super::capability_edit`]), atomically.
pub fn save(lock: &ExclusiveLock, path: &Path, text: &str) -> Result<()> {
    atomic_file::write_atomically(lock, path, text.as_bytes())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapabilityConfig {
    max: RawHostMax,
    #[serde(default, rename = "allow_userIDs")]
    allow_user_ids: Option<Vec<Option<UserId>>>,
    max_default_capability: RawLimits,
    #[serde(default)]
    max_custom_capability: Option<UniqueMap<UserId, Option<RawLimits>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostMax {
    cpus: Amount,
    ram: Amount,
    #[serde(default)]
    swap_size: Option<Amount>,
    gpus: Amount,
    #[serde(default)]
    shm_rate: Option<Expression>,
    #[serde(default)]
    memory: Option<Expression>,
    #[serde(default)]
    backup_space: Option<Amount>,
    #[serde(default)]
    work_space: Option<Amount>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    cpus: Option<Limit>,
    #[serde(default)]
    memory: Option<Limit>,
    #[serde(default)]
    gpus: Option<Limit>,
    #[serde(default)]
    backup_space: Option<Limit>,
    #[serde(default)]
    work_space: Option<Limit>,
}

/// The host, with expressions evaluated. Memory figures are GB; `memory` is RAM + swap.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMax {
    pub cpus: f64,
    pub ram: f64,
    pub swap_size: f64,
    pub gpus: u32,
    pub memory: f64,
    pub shm_rate: f64,
    pub backup_space: Option<f64>,
    pub work_space: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct CapabilityConfig {
    pub max: HostMax,
    pub allowed_users: Vec<UserId>,
    default_limits: RawLimits,
    custom_limits: IndexMap<UserId, RawLimits>,
}

impl CapabilityConfig {
    /// Parses the file's text. `shown_path` is how the file is named in problems.
    pub fn parse(shown_path: &str, text: &str) -> Parsed<CapabilityConfig> {
        let raw: RawCapabilityConfig = yaml::parse(shown_path, text).map_err(|problem| vec![problem])?;
        let mut findings = Findings::new(shown_path, text);
        let max = resolve_host(&raw.max, &mut findings);
        let allowed_users = without_blanks(raw.allow_user_ids);
        let custom_limits: IndexMap<UserId, RawLimits> = raw
            .max_custom_capability
            .map(|custom| custom.0)
            .unwrap_or_default()
            .into_iter()
            .map(|(user, limits)| (user, limits.unwrap_or_default()))
            .collect();

        for field in ["cpus", "memory", "gpus"] {
            if raw.max_default_capability.get(field).is_none() {
                findings.error(&["max_default_capability"], format!("missing {field:?}: every user falls back to it"));
            }
        }
        check_limits(&raw.max_default_capability, &max, &mut findings, &["max_default_capability"]);
        for (user, limits) in &custom_limits {
            let section = ["max_custom_capability", user.as_str()];
            check_limits(limits, &max, &mut findings, &section);
            if !allowed_users.contains(user) {
                findings.warning(&section, format!("{user} has limits but is not in allow_userIDs, so cannot book"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for user in &allowed_users {
            if !seen.insert(user) {
                findings.warning(&["allow_userIDs"], format!("{user} is listed more than once"));
            }
        }

        findings.finish(CapabilityConfig {
            max,
            allowed_users,
            default_limits: raw.max_default_capability,
            custom_limits,
        })
    }

    pub fn is_allowed(&self, user: &UserId) -> bool {
        self.allowed_users.contains(user)
    }

    /// The user's limits: their own entry, else the default, field by field.
    pub fn limits_for(&self, user: &UserId) -> UserLimits {
        let custom = self.custom_limits.get(user);
        let pick = |field: &str| custom.and_then(|limits| limits.get(field)).or_else(|| self.default_limits.get(field));
        let resolve = |field: &str, host: f64| match pick(field) {
            Some(Limit::Number(value)) => value.min(host),
            Some(Limit::Max) | None => host,
        };
        let resolve_space = |field: &str, host: Option<f64>| match pick(field) {
            Some(Limit::Number(value)) => Some(host.map_or(value, |host| value.min(host))),
            Some(Limit::Max) | None => host,
        };
        UserLimits {
            cpus: resolve("cpus", self.max.cpus),
            memory: resolve("memory", self.max.memory).floor(),
            gpus: resolve("gpus", f64::from(self.max.gpus)).floor() as u32,
            backup_space: resolve_space("backup_space", self.max.backup_space),
            work_space: resolve_space("work_space", self.max.work_space),
        }
    }

    /// The keys written in the user's own block under `max_custom_capability`, as written
    /// (`max` not replaced); `None` when the user has no block.
    pub fn custom_entry(&self, user: &UserId) -> Option<Vec<(&'static str, Limit)>> {
        self.custom_limits.get(user).map(RawLimits::written)
    }

    /// The keys written under `max_default_capability`.
    pub fn default_entry(&self) -> Vec<(&'static str, Limit)> {
        self.default_limits.written()
    }

    /// Users with an entry of their own under `max_custom_capability`.
    pub fn users_with_custom_limits(&self) -> impl Iterator<Item = &UserId> {
        self.custom_limits.keys()
    }
}

impl RawLimits {
    fn written(&self) -> Vec<(&'static str, Limit)> {
        LIMIT_FIELDS.iter().filter_map(|field| self.get(field).map(|limit| (*field, limit))).collect()
    }

    fn get(&self, field: &str) -> Option<Limit> {
        match field {
            "cpus" => self.cpus,
            "memory" => self.memory,
            "gpus" => self.gpus,
            "backup_space" => self.backup_space,
            "work_space" => self.work_space,
            _ => None,
        }
    }
}

fn resolve_host(raw: &RawHostMax, findings: &mut Findings) -> HostMax {
    let swap_size = raw.swap_size.map_or(0.0, |amount| amount.0);
    let lookup = |name: &str| match name {
        "cpus" => raw.cpus.0,
        "ram" => raw.ram.0,
        "swap_size" => swap_size,
        "gpus" => raw.gpus.0,
        "backup_space" => raw.backup_space.map_or(0.0, |amount| amount.0),
        "work_space" => raw.work_space.map_or(0.0, |amount| amount.0),
        _ => f64::NAN,
    };
    let mut evaluate = |field: &str, expression: &Option<Expression>, default: &str| -> f64 {
        let expression =
            expression.clone().unwrap_or_else(|| Expression::parse(default).expect("built-in default parses"));
        match expression.evaluate(&lookup) {
            Ok(value) if value.is_finite() => value,
            Ok(value) => {
                findings.error(&["max", field], format!("evaluates to {value}, expected a finite number"));
                0.0
            }
            Err(reason) => {
                findings.error(&["max", field], reason);
                0.0
            }
        }
    };
    let memory = evaluate("memory", &raw.memory, "ram + swap_size");
    let shm_rate = evaluate("shm_rate", &raw.shm_rate, "ram / (ram + swap_size)");

    let number = crate::error::number;
    if crate::rules::capacity::cpus_problem(raw.cpus.0).is_some() || raw.cpus.0 > *ranges::CPUS.end() {
        findings.error(
            &["max", "cpus"],
            format!(
                "expected at least 1 core, with at most two decimals, up to {}, found {}",
                number(*ranges::CPUS.end()),
                number(raw.cpus.0)
            ),
        );
    }
    if raw.ram.0 <= 0.0 {
        findings.error(&["max", "ram"], "expected more than 0 GB");
    } else if let Err(message) = ranges::check(raw.ram.0, &ranges::MEMORY_GB, "a number of GB") {
        findings.error(&["max", "ram"], message);
    }
    if let Err(message) = ranges::check(swap_size, &ranges::MEMORY_GB, "a number of GB") {
        findings.error(&["max", "swap_size"], message);
    }
    if raw.gpus.0.fract() != 0.0 || raw.gpus.0 > f64::from(ranges::MAX_GPUS) {
        findings.error(
            &["max", "gpus"],
            format!(
                "expected a whole number of GPUs from {} to {}, found {}",
                ranges::GPUS.start(),
                ranges::GPUS.end(),
                number(raw.gpus.0)
            ),
        );
    }
    if memory < raw.ram.0 {
        findings.error(
            &["max", "memory"],
            format!("is {} GB, expected at least ram ({} GB): memory is RAM + swap", number(memory), number(raw.ram.0)),
        );
    } else if memory > *ranges::MEMORY_GB.end() {
        findings.error(
            &["max", "memory"],
            format!("is {} GB, expected at most {} GB (RAM + swap)", number(memory), number(*ranges::MEMORY_GB.end())),
        );
    }
    if !(shm_rate > *ranges::SHM_RATE.start() && shm_rate <= *ranges::SHM_RATE.end()) {
        findings
            .error(&["max", "shm_rate"], format!("is {}, expected a share above 0 and at most 1", number(shm_rate)));
    }
    for (field, space) in [("backup_space", raw.backup_space), ("work_space", raw.work_space)] {
        if let Some(Err(message)) = space.map(|space| ranges::check(space.0, &ranges::SPACE_GB, "a number of GB")) {
            findings.error(&["max", field], message);
        }
    }
    HostMax {
        cpus: raw.cpus.0,
        ram: raw.ram.0,
        swap_size,
        gpus: raw.gpus.0 as u32,
        memory,
        shm_rate,
        backup_space: raw.backup_space.map(|amount| amount.0),
        work_space: raw.work_space.map(|amount| amount.0),
    }
}

fn check_limits(limits: &RawLimits, host: &HostMax, findings: &mut Findings, section: &[&str]) {
    let host_value = |field: &str| match field {
        "cpus" => Some(host.cpus),
        "memory" => Some(host.memory),
        "gpus" => Some(f64::from(host.gpus)),
        "backup_space" => host.backup_space,
        "work_space" => host.work_space,
        _ => None,
    };
    for field in ["cpus", "memory", "gpus", "backup_space", "work_space"] {
        let Some(Limit::Number(value)) = limits.get(field) else {
            continue;
        };
        let mut key_path = section.to_vec();
        key_path.push(field);
        let number = crate::error::number;
        let errors_before = findings.problems.len();
        if field == "gpus" && (value.fract() != 0.0 || value > f64::from(ranges::MAX_GPUS)) {
            findings.error(
                &key_path,
                format!(
                    "expected a whole number of GPUs from {} to {} or \"max\", found {}",
                    ranges::GPUS.start(),
                    ranges::GPUS.end(),
                    number(value)
                ),
            );
        }
        // A limit no booking could meet, or one finer than a booking may be (see
        // `cpus_problem`): the admin meant something else.
        if field == "cpus" && (crate::rules::capacity::cpus_problem(value).is_some() || value > *ranges::CPUS.end()) {
            findings.error(
                &key_path,
                format!(
                    "expected at least 1 CPU, with at most two decimals, up to {}, or \"max\", found {}",
                    number(*ranges::CPUS.end()),
                    number(value)
                ),
            );
        }
        if field == "memory" && value == 0.0 {
            findings.error(&key_path, format!("expected more than 0 or \"max\", found {value}: nobody could book"));
        }
        let range = match field {
            "memory" => Some((&ranges::MEMORY_GB, "a number of GB")),
            "backup_space" | "work_space" => Some((&ranges::SPACE_GB, "a number of GB")),
            _ => None,
        };
        if let Some((range, what)) = range
            && let Err(message) = ranges::check(value, range, what)
        {
            findings.error(&key_path, format!("{message} (or \"max\")"));
        }
        if findings.problems.len() > errors_before {
            continue;
        }
        if let Some(host_value) = host_value(field)
            && value > host_value
        {
            findings.warning(
                &key_path,
                format!(
                    "{} is more than the host's {}; the host's value applies",
                    crate::error::number(value),
                    crate::error::number(host_value)
                ),
            );
        }
    }
}
