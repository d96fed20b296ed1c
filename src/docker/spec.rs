//! The container a booking gets, as plain data: built here from the booking, the user's
//! settings and the host's configuration, printed by `run-container --dry-run`, and turned
//! into Docker calls only by the engine next to it. One builder serves the monitor and
//! `run-container`, so both start exactly the same container for the same booking.
//!
//! Credentials travel as files written into the container before it starts (a crypt(3)
//! hash and the user's public keys), never in its environment, command line or labels.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::model::{Booking, UserId, format_gpu_list, format_time};
use crate::store::config::{Config, HostMax, UserEntry};

/// Label keys that mark a container as ours and say which booking it serves.
pub const LABEL_MANAGED: &str = "gpu-booking.managed";
pub const LABEL_ROOT: &str = "gpu-booking.root";
pub const LABEL_USER: &str = "gpu-booking.user";
pub const LABEL_START: &str = "gpu-booking.start";
pub const LABEL_END: &str = "gpu-booking.end";
pub const LABEL_GPUS: &str = "gpu-booking.gpus";
/// Set on containers `run-container` starts outside the schedule: the monitor leaves them be.
pub const LABEL_MANUAL: &str = "gpu-booking.manual";

/// Where the setup files go inside the container.
pub const SETUP_DIR: &str = "/.gpu-booking";
/// Where the user's folders appear inside the container.
pub const WORK_MOUNT: &str = "/root/Work";
pub const BACKUP_MOUNT: &str = "/root/Backup";
pub const DATASET_MOUNT: &str = "/root/Dataset";

const GIB: i64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Vec<String>,
    pub command: Vec<String>,
    /// CPUs × 10⁹ (Docker's `NanoCpus`).
    pub nano_cpus: i64,
    /// RAM limit in bytes: `ceil(memory × shm_rate)` GB.
    pub memory_bytes: i64,
    /// RAM + swap limit in bytes: `memory` GB.
    pub memory_swap_bytes: i64,
    /// `/dev/shm` in bytes: the swap part, `memory − ram`; `None`: Docker's default.
    pub shm_size_bytes: Option<i64>,
    pub device_request: Option<GpuRequest>,
    pub port_bindings: Vec<PortBinding>,
    pub mounts: Vec<FolderMount>,
    pub environment: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub restart_policy: String,
    /// Every capability is dropped, then these are added back (see [`CAPABILITIES`]).
    pub capabilities_dropped: Vec<String>,
    pub capabilities_added: Vec<String>,
    /// `no-new-privileges`: no setuid program raises a process's privileges.
    pub security_options: Vec<String>,
    pub pids_limit: i64,
    /// `nofile`, soft and hard.
    pub open_files_limit: i64,
    /// The container's own file system, in GB, where the storage driver can limit it.
    pub writable_layer_gb: Option<i64>,
    /// The network every booking's container joins; containers on it cannot reach each
    /// other (inter-container communication is off), only the host's published ports.
    pub network: String,
    /// Written into the container before it starts. Their contents are not printed.
    pub files: Vec<FileToInstall>,
}

/// GPUs by device id through the NVIDIA runtime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuRequest {
    pub driver: String,
    pub device_ids: Vec<String>,
    pub capabilities: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortBinding {
    /// The host address it listens on (`cfg/containers.yaml`'s `ssh_bind_address`).
    pub host_address: String,
    pub host_port: u16,
    pub container_port: String,
}

/// One of the user's folders, mounted by Docker as data (a bollard `Mount`), never as a
/// `host:container:options` string.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FolderMount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileToInstall {
    pub path: String,
    pub mode: u32,
    #[serde(skip)]
    pub contents: Vec<u8>,
}

/// What the builder needs besides the booking.
pub struct SpecInputs<'a> {
    pub config: &'a Config,
    pub root_label: String,
    pub user: &'a UserId,
    pub entry: &'a UserEntry,
    /// The user's work, backup and dataset folders, as the monitor checked them.
    pub folders: (PathBuf, PathBuf, PathBuf),
}

/// The memory rule: RAM `ceil(memory × shm_rate)` GB, RAM + swap `memory` GB, shared
/// memory the swap part.
pub fn memory_limits(memory_gb: u32, max: &HostMax) -> (i64, i64, Option<i64>) {
    let total = i64::from(memory_gb) * GIB;
    let ram_gb = (f64::from(memory_gb) * max.shm_rate).ceil().clamp(1.0, f64::from(memory_gb));
    let ram = (ram_gb as i64) * GIB;
    let shm = total - ram;
    (ram, total, (shm > 0).then_some(shm))
}

/// The capabilities a booking's container keeps; Docker's default set less `MKNOD` (device
/// files), `NET_RAW` (spoofing neighbours), `SETFCAP`, `SETPCAP` and `FSETID`. The image
/// contract needs the rest: sshd changes user and chroots for privilege separation
/// (`SETUID`, `SETGID`, `SYS_CHROOT`), writes the audit login record (`AUDIT_WRITE`) and
/// binds port 22 (`NET_BIND_SERVICE`); the student is root in the container and installs
/// packages (`CHOWN`, `DAC_OVERRIDE`, `FOWNER`, `KILL`).
pub const CAPABILITIES: &[&str] =
    &["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETUID", "SETGID", "SYS_CHROOT", "AUDIT_WRITE", "NET_BIND_SERVICE"];

/// The Docker network of every booking's container.
pub const NETWORK: &str = "gpu-booking";

/// The NVIDIA toolkit reads these: set to exactly the booked ids (`void`: none), so a CUDA
/// image's own `NVIDIA_VISIBLE_DEVICES=all` never shows a container every GPU on a host
/// whose default runtime is `nvidia`.
pub fn gpu_environment(gpus: &[u32]) -> Vec<String> {
    let devices = if gpus.is_empty() {
        "void".to_string()
    } else {
        gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    };
    vec![format!("NVIDIA_VISIBLE_DEVICES={devices}"), "NVIDIA_DRIVER_CAPABILITIES=compute,utility".to_string()]
}

/// The GPU request for a booking's device ids; none without GPUs.
pub fn gpu_request(gpus: &[u32]) -> Option<GpuRequest> {
    (!gpus.is_empty()).then(|| GpuRequest {
        driver: "nvidia".to_string(),
        device_ids: gpus.iter().map(u32::to_string).collect(),
        capabilities: vec![vec!["gpu".to_string()]],
    })
}

/// Builds the container for `booking`. The saved `backup.yaml` paths are not mounted: the
/// monitor copies them into the container before it starts.
pub fn build(booking: &Booking, inputs: &SpecInputs) -> ContainerSpec {
    let config = inputs.config;
    let deploy = &config.deploy;
    let image = booking
        .image
        .clone()
        .or_else(|| inputs.entry.image.clone())
        .unwrap_or_else(|| deploy.default_image().to_string());
    let (memory_bytes, memory_swap_bytes, shm_size_bytes) = memory_limits(booking.memory, &config.capability.max);
    let (work, backup, dataset) = inputs.folders.clone();
    let mounts = vec![
        FolderMount { host_path: work, container_path: WORK_MOUNT.into(), read_only: false },
        FolderMount { host_path: backup, container_path: BACKUP_MOUNT.into(), read_only: false },
        FolderMount { host_path: dataset, container_path: DATASET_MOUNT.into(), read_only: true },
    ];
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
    labels.insert(LABEL_ROOT.to_string(), inputs.root_label.clone());
    labels.insert(LABEL_USER.to_string(), booking.user_id.to_string());
    labels.insert(LABEL_START.to_string(), format_time(booking.start));
    labels.insert(LABEL_END.to_string(), format_time(booking.end));
    labels.insert(LABEL_GPUS.to_string(), format_gpu_list(&booking.gpus));

    let mut files = vec![FileToInstall {
        path: format!("{SETUP_DIR}/start"),
        mode: 0o755,
        contents: SETUP_SCRIPT.as_bytes().to_vec(),
    }];
    if let Some(hash) = inputs.entry.password.as_deref().filter(|stored| crate::password::is_hash(stored)) {
        files.push(FileToInstall {
            path: format!("{SETUP_DIR}/password.hash"),
            mode: 0o600,
            contents: format!("{hash}\n").into_bytes(),
        });
    }
    if !inputs.entry.ssh_keys.is_empty() {
        let keys: String = inputs.entry.ssh_keys.iter().map(|key| format!("{key}\n")).collect();
        files.push(FileToInstall {
            path: format!("{SETUP_DIR}/authorized_keys"),
            mode: 0o600,
            contents: keys.into_bytes(),
        });
    }
    let extra_command = booking.extra_command.clone().or_else(|| inputs.entry.extra_command.clone());
    if let Some(command) = extra_command.filter(|command| !command.trim().is_empty()) {
        files.push(FileToInstall {
            path: format!("{SETUP_DIR}/extra_command"),
            mode: 0o700,
            contents: format!("{command}\n").into_bytes(),
        });
    }

    ContainerSpec {
        name: booking.user_id.to_string(),
        image,
        entrypoint: vec!["/bin/sh".into(), format!("{SETUP_DIR}/start")],
        command: Vec::new(),
        // Docker reads 0 as "no limit": whatever a hand-edited row says, never ask for that.
        nano_cpus: ((booking.cpus * 1e9).round() as i64).max(10_000_000),
        memory_bytes,
        memory_swap_bytes,
        shm_size_bytes,
        device_request: gpu_request(&booking.gpus),
        port_bindings: vec![PortBinding {
            host_address: config.containers.ssh_bind_address.to_string(),
            host_port: booking.forward_port,
            container_port: "22/tcp".into(),
        }],
        mounts,
        environment: gpu_environment(&booking.gpus),
        labels,
        restart_policy: "unless-stopped".into(),
        capabilities_dropped: vec!["ALL".into()],
        capabilities_added: CAPABILITIES.iter().map(|name| name.to_string()).collect(),
        security_options: vec!["no-new-privileges:true".into()],
        pids_limit: config.containers.pids_limit,
        open_files_limit: config.containers.open_files_limit,
        writable_layer_gb: config.containers.writable_layer_gb,
        network: NETWORK.into(),
        files,
    }
}

/// Run as the container's entrypoint (written into the container before it starts, so any
/// image works; `cfg/templates/Dockerfile` bakes the same script in). It needs only a POSIX shell; each part of the image
/// contract it cannot use (sshd, chpasswd) is reported on stderr and skipped, so the
/// container still runs.
pub const SETUP_SCRIPT: &str = include_str!("../../cfg/templates/entrypoint.sh");

/// A shell command that prints the parts of the image contract the container lacks, one
/// word per line (`sshd`, `chpasswd`).
pub const CONTRACT_CHECK: &str = "command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || echo sshd; \
                                  command -v chpasswd >/dev/null 2>&1 || echo chpasswd";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_request_names_device_ids_and_is_absent_without_gpus() {
        let request = gpu_request(&[0, 2]).unwrap();
        assert_eq!(request.driver, "nvidia");
        assert_eq!(request.device_ids, vec!["0", "2"]);
        assert_eq!(request.capabilities, vec![vec!["gpu".to_string()]]);
        assert_eq!(gpu_request(&[]), None);
    }

    #[test]
    fn the_visible_devices_are_exactly_the_booked_ones() {
        assert_eq!(gpu_environment(&[0, 2])[0], "NVIDIA_VISIBLE_DEVICES=0,2");
        assert_eq!(gpu_environment(&[])[0], "NVIDIA_VISIBLE_DEVICES=void");
    }

    #[test]
    fn memory_rule_splits_ram_and_swap() {
        let max = HostMax {
            cpus: 62.0,
            ram: 30.0,
            swap_size: 10.0,
            gpus: 4,
            memory: 40.0,
            shm_rate: 0.75,
            backup_space: None,
            work_space: None,
        };
        let (ram, total, shm) = memory_limits(16, &max);
        assert_eq!(ram, 12 * GIB);
        assert_eq!(total, 16 * GIB);
        assert_eq!(shm, Some(4 * GIB));
        let (ram, total, shm) = memory_limits(5, &max);
        assert_eq!((ram, total, shm), (4 * GIB, 5 * GIB, Some(GIB)), "ceil(5 × 0.75) = 4");
        let no_swap = HostMax { shm_rate: 1.0, ..max };
        assert_eq!(memory_limits(8, &no_swap), (8 * GIB, 8 * GIB, None));
    }
}
