//! `cfg/containers.yaml`: gpu-booking's own settings for the containers it starts, which the
//! original system never had (it is a file of its own because the original's readers reject
//! unknown keys; a lab that goes back simply leaves it behind). A missing file, or a missing
//! key, means the default.
//!
//! Admin-authored; the tools only read it.

use std::net::IpAddr;

use serde::Deserialize;

use super::yaml::{self, Findings, Parsed};

/// The file's name under `cfg/`.
pub const FILE_NAME: &str = "containers.yaml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainerSettings {
    ssh_bind_address: Option<String>,
    pids_limit: Option<i64>,
    open_files_limit: Option<i64>,
    writable_layer_gb: Option<i64>,
    ssh_host: Option<String>,
}

/// What every booking's container gets besides its booked resources.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSettings {
    /// Where the forward ports listen on the host (all addresses by default, as before).
    pub ssh_bind_address: IpAddr,
    /// Processes (and threads) one container may run: a fork bomb stays inside it.
    pub pids_limit: i64,
    /// Open files per process (`nofile`, soft and hard).
    pub open_files_limit: i64,
    /// The size limit of a container's own file system (its writable layer), where the
    /// storage driver can enforce one (overlay2 on xfs with `pquota`); `None`: no limit.
    pub writable_layer_gb: Option<i64>,
    /// The name students reach this host by (`ssh root@NAME -p PORT`, `ssh booking@NAME`), as
    /// the monitor writes it in warnings, the login banner and mail; `None`: the machine's
    /// host name.
    pub ssh_host: Option<String>,
}

use crate::model::ranges::{
    OPEN_FILES_LIMIT as OPEN_FILES_RANGE, PIDS_LIMIT as PIDS_RANGE, WRITABLE_LAYER_GB as WRITABLE_LAYER_RANGE,
};

impl Default for ContainerSettings {
    fn default() -> ContainerSettings {
        ContainerSettings {
            ssh_bind_address: IpAddr::from([0, 0, 0, 0]),
            pids_limit: 4096,
            open_files_limit: 16_384,
            writable_layer_gb: None,
            ssh_host: None,
        }
    }
}

impl ContainerSettings {
    pub fn parse(shown_path: &str, text: &str) -> Parsed<ContainerSettings> {
        let raw: Option<RawContainerSettings> = yaml::parse(shown_path, text).map_err(|problem| vec![problem])?;
        let raw = raw.unwrap_or_default();
        let mut findings = Findings::new(shown_path, text);
        let mut settings = ContainerSettings::default();
        if let Some(address) = raw.ssh_bind_address {
            match address.trim().parse::<IpAddr>() {
                Ok(parsed) => settings.ssh_bind_address = parsed,
                Err(_) => findings.error(
                    &["ssh_bind_address"],
                    format!(
                        "expected an IP address of this host such as 0.0.0.0 or 192.0.2.10, found {}",
                        crate::error::quoted(&address)
                    ),
                ),
            }
        }
        for (key, value, range, target) in [
            ("pids_limit", raw.pids_limit, PIDS_RANGE, &mut settings.pids_limit),
            ("open_files_limit", raw.open_files_limit, OPEN_FILES_RANGE, &mut settings.open_files_limit),
        ] {
            match value {
                Some(value) if range.contains(&value) => *target = value,
                Some(value) => findings.error(
                    &[key],
                    format!("expected a whole number from {} to {}, found {value}", range.start(), range.end()),
                ),
                None => {}
            }
        }
        match raw.writable_layer_gb {
            Some(value) if WRITABLE_LAYER_RANGE.contains(&value) => settings.writable_layer_gb = Some(value),
            Some(value) => findings.error(
                &["writable_layer_gb"],
                format!(
                    "expected a whole number of GB from {} to {}, found {value}",
                    WRITABLE_LAYER_RANGE.start(),
                    WRITABLE_LAYER_RANGE.end()
                ),
            ),
            None => {}
        }
        if let Some(host) = raw.ssh_host.map(|host| host.trim().to_string()) {
            let allowed = |character: char| character.is_ascii_alphanumeric() || ".-:[]_".contains(character);
            if host.is_empty() || !host.chars().all(allowed) {
                findings.error(
                    &["ssh_host"],
                    format!("expected the name or address students use, such as gpu1.lab.example.org, found {host:?}"),
                );
            } else {
                settings.ssh_host = Some(host);
            }
        }
        findings.finish(settings)
    }

    /// The name students reach this host by: `ssh_host`, else the machine's host name.
    pub fn host_name(&self) -> String {
        self.ssh_host.clone().unwrap_or_else(machine_host_name)
    }

    /// Reads the file; a missing file is the defaults.
    pub fn load(path: &std::path::Path, shown_path: &str) -> Parsed<ContainerSettings> {
        match crate::store::text_file::read_config(path, shown_path) {
            Ok(Some(text)) => Self::parse(shown_path, &text),
            Ok(None) => Ok((ContainerSettings::default(), Vec::new())),
            Err(problem) => Err(vec![problem]),
        }
    }
}

/// The kernel's host name; `this-server` when it cannot be read.
pub fn machine_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "this-server".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_out_of_range_are_named_with_their_line() {
        let (settings, _) = ContainerSettings::parse("cfg/containers.yaml", "").unwrap();
        assert_eq!(settings, ContainerSettings::default());
        let (settings, _) = ContainerSettings::parse("f", "ssh_bind_address: 127.0.0.1\npids_limit: 512\n").unwrap();
        assert_eq!(settings.ssh_bind_address, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(settings.pids_limit, 512);
        let problems = ContainerSettings::parse("f", "pids_limit: 0\nssh_bind_address: everywhere\n").unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text.iter().any(|line| line.contains("f:1") && line.contains("pids_limit")), "{text:?}");
        assert!(text.iter().any(|line| line.contains("f:2") && line.contains("ssh_bind_address")), "{text:?}");
        assert!(ContainerSettings::parse("f", "unknown: 1\n").is_err());
    }
}
