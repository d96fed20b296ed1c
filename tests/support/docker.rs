//! The Docker engine as an admin reads it (`docker inspect`, `docker exec`), and what the
//! design's memory rule makes of a booking on the Docker labs' host.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// The host in `tests/fixtures/docker/cfg/capability_config.yaml`: RAM and swap in GB (the
/// memory rule splits a booking's memory by `ram / (ram + swap_size)`).
pub const HOST_RAM_GB: i64 = 12;
pub const HOST_SWAP_GB: i64 = 4;

/// Docker's `/dev/shm` size when none is asked for.
pub const DOCKER_DEFAULT_SHM: i64 = 64 * 1024 * 1024;
pub const GIB: i64 = 1024 * 1024 * 1024;

pub fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap_or_else(|error| panic!("run docker {args:?}: {error}"))
}

/// `docker ARGS…`, which must succeed; its stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `docker inspect NAME` as JSON; `None` when there is no such container.
pub fn inspect(name: &str) -> Option<Value> {
    let output = docker(&["container", "inspect", name]);
    if !output.status.success() {
        return None;
    }
    let parsed: Value = serde_json::from_slice(&output.stdout).expect("docker inspect prints JSON");
    parsed.as_array().and_then(|list| list.first()).cloned()
}

pub fn inspect_existing(name: &str, context: &str) -> Value {
    inspect(name).unwrap_or_else(|| panic!("{context}: there is no container named {name}"))
}

/// `docker exec NAME sh -c SCRIPT`, which must succeed; its stdout.
pub fn exec(name: &str, script: &str) -> String {
    docker_ok(&["exec", name, "sh", "-c", script])
}

pub fn labels(container: &Value) -> BTreeMap<String, String> {
    container["Config"]["Labels"]
        .as_object()
        .map(|labels| {
            labels.iter().map(|(key, value)| (key.clone(), value.as_str().unwrap_or("").to_string())).collect()
        })
        .unwrap_or_default()
}

/// Every host folder the container mounts, as `(host path, container path, "ro" or "rw")`:
/// `HostConfig.Mounts` and any `HostConfig.Binds` strings.
pub fn binds(container: &Value) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = container["HostConfig"]["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|mount| {
            let text = |key: &str| mount[key].as_str().unwrap_or_default().to_string();
            let mode = if mount["ReadOnly"].as_bool() == Some(true) { "ro" } else { "rw" };
            (text("Source"), text("Target"), mode.to_string())
        })
        .collect();
    for bind in container["HostConfig"]["Binds"].as_array().into_iter().flatten() {
        let mut parts = bind.as_str().unwrap_or_default().splitn(3, ':');
        let host = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        found.push((host, target, parts.next().unwrap_or("rw").to_string()));
    }
    found
}

pub fn bind_to<'a>(
    binds: &'a [(String, String, String)],
    container_path: &str,
) -> Option<&'a (String, String, String)> {
    binds.iter().find(|(_, container, _)| container == container_path)
}

pub fn is_running(container: &Value) -> bool {
    container["State"]["Running"].as_bool() == Some(true) && container["State"]["Status"] == "running"
}

/// The container limits the design's memory rule gives a booking of `memory` GB on this
/// host: RAM `ceil(memory × ram / (ram + swap))` GB (at least 1, at most `memory`), RAM + swap
/// `memory` GB, shared memory the swap part (Docker's default when there is none).
pub fn expected_memory(memory: i64) -> (i64, i64, i64) {
    let host = HOST_RAM_GB + HOST_SWAP_GB;
    let ram_gb = ((memory * HOST_RAM_GB + host - 1) / host).clamp(1, memory);
    let shm = (memory - ram_gb) * GIB;
    (ram_gb * GIB, memory * GIB, if shm > 0 { shm } else { DOCKER_DEFAULT_SHM })
}
