//! [`Containers`] on the real Docker engine, through bollard.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, Mount, MountBindOptions, MountType,
    PortBinding as DockerPortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions, ListContainersOptions,
    RemoveContainerOptions, RestartContainerOptions, StartContainerOptions, StopContainerOptions,
    UploadToContainerOptions,
};
use futures_util::StreamExt;

use super::spec::{CONTRACT_CHECK, ContainerSpec, FolderMount, LABEL_MANAGED, LABEL_ROOT, SETUP_DIR};
use super::{ContainerState, Containers, Declined, Started};

/// How long the first contact may take before the engine counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the image-contract check may run in a container.
const EXEC_DEADLINE: Duration = Duration::from_secs(15);
/// How much of its output is read.
const EXEC_OUTPUT_LIMIT: usize = 64 * 1024;
/// How long copying one saved path out of a container may take.
const COPY_DEADLINE: Duration = Duration::from_secs(5 * 60);
/// Seconds a container gets to stop before it is killed.
const STOP_GRACE_SECONDS: i32 = 10;
/// How long a pass waits for a removal or a creation the engine is still making for a
/// killed pass.
const REMOVAL_WAIT: Duration = Duration::from_secs(60);

/// The engine's address as the tools report it: `DOCKER_HOST`, else the local socket.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

pub struct Engine {
    docker: Docker,
    address: String,
}

/// A creation refused with the name taken is told apart (see [`Declined`]); the engine's
/// words stay the message.
fn creation_error(error: DockerError) -> anyhow::Error {
    match &error {
        DockerError::DockerResponseServerError { status_code: 409, message } if message.contains("already in use") => {
            Declined::NameTaken(error.to_string()).into()
        }
        _ => error.into(),
    }
}

fn is_not_found(error: &DockerError) -> bool {
    matches!(error, DockerError::DockerResponseServerError { status_code: 404, .. })
}

impl Engine {
    /// A client for the engine at [`engine_address`]; nothing is asked of it yet.
    pub fn new() -> Result<Engine> {
        let address = engine_address();
        let docker = Docker::connect_with_defaults()
            .map_err(|error| anyhow!("Docker engine not reachable at {address}: {error}"))?;
        Ok(Engine { docker, address })
    }

    /// Connects and pings, so a dead engine is one clear error up front.
    pub async fn connect() -> Result<Engine> {
        let engine = Engine::new()?;
        engine.ping().await?;
        Ok(engine)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Pulls `image` unless the engine has it. `progress` draws a bar on stderr.
    pub async fn ensure_image(&self, image: &str, progress: bool) -> Result<()> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(error).with_context(|| format!("cannot inspect image {image}")),
        }
        let bar = progress.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(format!("pulling {image}"));
            bar
        });
        let options = CreateImageOptions { from_image: Some(image.to_string()), ..Default::default() };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail.and_then(|detail| detail.message) {
                        return Err(Declined::ImageUnavailable(format!("cannot pull image {image}: {detail}")).into());
                    }
                    if let (Some(bar), Some(status)) = (&bar, info.status) {
                        bar.set_message(format!("pulling {image}: {status}"));
                        bar.tick();
                    }
                }
                Err(error) => {
                    return Err(Declined::ImageUnavailable(format!("cannot pull image {image}: {error}")).into());
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(())
    }

    /// Creates the network every booking's container joins, if missing: a bridge with
    /// inter-container communication off, so students reach each other only through the
    /// host's published ports. Returns its id.
    pub async fn ensure_network(&self, name: &str) -> Result<String> {
        if let Some(id) = self.network_id(name).await? {
            return Ok(id);
        }
        let request = bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            options: Some(HashMap::from([("com.docker.network.bridge.enable_icc".to_string(), "false".to_string())])),
            labels: Some(HashMap::from([(LABEL_MANAGED.to_string(), "true".to_string())])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => {}
            // Made by a concurrent start meanwhile.
            Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => {}
            Err(error) => return Err(error).with_context(|| format!("cannot create the network {name}")),
        }
        self.network_id(name).await?.with_context(|| format!("the network {name} vanished as it was created"))
    }

    /// The id of the network named exactly `name`. Engines before API 1.44 let two concurrent
    /// creations (two monitors, on two roots, starting their first containers at once) make
    /// two networks of one name, after which a start by name fails as "ambiguous": every
    /// caller picks the oldest, and removes the others of ours that nothing uses.
    async fn network_id(&self, name: &str) -> Result<Option<String>> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let options = bollard::query_parameters::ListNetworksOptions { filters: Some(filters) };
        let listed = self.docker.list_networks(Some(options)).await.context("cannot list the networks")?;
        let mut found: Vec<_> = listed.into_iter().filter(|network| network.name.as_deref() == Some(name)).collect();
        found.sort_by(|left, right| left.created.cmp(&right.created).then_with(|| left.id.cmp(&right.id)));
        let mut found = found.into_iter();
        let Some(chosen) = found.next().and_then(|network| network.id) else {
            return Ok(None);
        };
        for duplicate in found {
            let ours = duplicate.labels.as_ref().is_some_and(|labels| labels.contains_key(LABEL_MANAGED));
            if let (true, Some(id)) = (ours, duplicate.id) {
                // Refused while a container uses it; that container keeps working.
                let _ = self.docker.remove_network(&id).await;
            }
        }
        Ok(Some(chosen))
    }

    /// Starts a container just created on the network `network_name`. The engine finds a
    /// container's network by name when it starts it, so a start in the instant between a
    /// concurrent creation of a duplicate network and its removal (see
    /// [`Engine::network_id`]) fails as "ambiguous": the duplicate is removed here and the
    /// start tried again.
    async fn start_created(&self, name: &str, network_name: &str) -> Result<()> {
        const TRIES: u64 = 4;
        for attempt in 1..=TRIES {
            match self.docker.start_container(name, None::<StartContainerOptions>).await {
                Ok(()) => return Ok(()),
                Err(DockerError::DockerResponseServerError { message, .. })
                    if attempt < TRIES && message.contains("ambiguous") =>
                {
                    self.network_id(network_name).await?;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(error) => return Err(error).with_context(|| format!("cannot start container {name}")),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Copies a tar archive (rooted at `/`) into a container, streamed from the file.
    async fn upload_file(&self, name: &str, archive: &Path) -> Result<()> {
        use std::io::Read;
        let mut file = std::fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
        let chunks = futures_util::stream::poll_fn(move |_| {
            let mut buffer = vec![0u8; 256 * 1024];
            std::task::Poll::Ready(match file.read(&mut buffer) {
                Ok(0) => None,
                Ok(read) => {
                    buffer.truncate(read);
                    Some(Ok(buffer.into()))
                }
                Err(error) => Some(Err(error)),
            })
        });
        let upload = UploadToContainerOptions { path: "/".to_string(), ..Default::default() };
        self.docker
            .upload_to_container(name, Some(upload), bollard::body_try_stream(chunks))
            .await
            .with_context(|| format!("cannot copy the saved files into container {name}"))
    }

    async fn wait_until_gone(&self, name: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + REMOVAL_WAIT;
        loop {
            match self.container(name).await? {
                None => return Ok(()),
                Some(_) if tokio::time::Instant::now() >= deadline => {
                    bail!("container {name} was still being removed after {} seconds", REMOVAL_WAIT.as_secs())
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn copy_out_unbounded(&self, name: &str, path: &str, archive: &Path, limit: u64) -> Result<bool> {
        use std::io::Write;
        let options = DownloadFromContainerOptions { path: path.to_string() };
        let mut stream = self.docker.download_from_container(name, Some(options));
        let mut file =
            std::fs::File::create(archive).with_context(|| format!("cannot create {}", archive.display()))?;
        let mut written: u64 = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    written += bytes.len() as u64;
                    if written > limit {
                        bail!("{path} is larger than the {limit} bytes the backup quota leaves; not saved");
                    }
                    // Docker spells a sparse file out in zeros: holes here keep the staging
                    // copy from taking that much of the host's disk.
                    if bytes.iter().all(|byte| *byte == 0) {
                        use std::io::Seek;
                        file.seek(std::io::SeekFrom::Current(bytes.len() as i64))
                    } else {
                        file.write_all(&bytes).map(|()| 0)
                    }
                    .with_context(|| format!("cannot write {}", archive.display()))?;
                }
                Err(error) if is_not_found(&error) => return Ok(false),
                Err(error) => return Err(error).with_context(|| format!("cannot copy {path} out of container {name}")),
            }
        }
        file.set_len(written).with_context(|| format!("cannot write {}", archive.display()))?;
        file.sync_all().with_context(|| format!("cannot flush {}", archive.display()))?;
        Ok(true)
    }

    /// Runs a shell command in a running container and returns what it printed.
    async fn run(&self, name: &str, command: &str) -> Result<String> {
        self.run_command(name, vec!["/bin/sh".to_string(), "-c".to_string(), command.to_string()]).await
    }

    async fn run_command(&self, name: &str, command: Vec<String>) -> Result<String> {
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(false),
            cmd: Some(command),
            ..Default::default()
        };
        let exec = match self.docker.create_exec(name, options).await {
            Ok(exec) => exec,
            // Kept as it is, so a caller can tell "not running" (409) from other failures.
            Err(error @ DockerError::DockerResponseServerError { status_code: 409, .. }) => return Err(error.into()),
            Err(error) => return Err(error).with_context(|| format!("cannot run a command in {name}")),
        };
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut stream, .. } = self.docker.start_exec(&exec.id, None).await? {
            while let Some(Ok(chunk)) = stream.next().await {
                output.push_str(&chunk.to_string());
                if output.len() > EXEC_OUTPUT_LIMIT {
                    break;
                }
            }
        }
        Ok(output)
    }
}

impl Containers for Engine {
    async fn ping(&self) -> Result<()> {
        let address = &self.address;
        match tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => bail!("Docker engine not reachable at {address}: {error}"),
            Err(_) => bail!("Docker engine not reachable at {address}: no answer within {} s", PING_TIMEOUT.as_secs()),
        }
    }

    async fn container(&self, name: &str) -> Result<Option<ContainerState>> {
        match self.docker.inspect_container(name, None).await {
            Ok(inspect) => Ok(Some(ContainerState {
                id: inspect.id.unwrap_or_default(),
                name: inspect.name.unwrap_or_default().trim_start_matches('/').to_string(),
                running: inspect.state.and_then(|state| state.running).unwrap_or(false),
                labels: inspect.config.and_then(|config| config.labels).unwrap_or_default(),
            })),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot inspect container {name}")),
        }
    }

    async fn wait_for_container(&self, name: &str) -> Result<Option<ContainerState>> {
        let deadline = tokio::time::Instant::now() + REMOVAL_WAIT;
        loop {
            match self.container(name).await? {
                Some(container) => return Ok(Some(container)),
                None if tokio::time::Instant::now() >= deadline => return Ok(None),
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn list_ours(&self, root_label: &str) -> Result<Vec<ContainerState>> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_ROOT}={root_label}")],
        )]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let summaries = self.docker.list_containers(Some(options)).await.context("cannot list containers")?;
        Ok(summaries
            .into_iter()
            .map(|summary| ContainerState {
                id: summary.id.unwrap_or_default(),
                name: summary
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|name| name.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                running: summary.state.map(|state| state.to_string() == "running").unwrap_or(false),
                labels: summary.labels.unwrap_or_default(),
            })
            .collect())
    }

    /// Creates and starts a booking's container: image pulled if missing, the setup files and
    /// the user's saved files (`restore`, a tar archive rooted at `/`) copied in before the
    /// start. Returns what went wrong with the saved files (the container starts without
    /// them) and the parts of the image contract the container lacks (`sshd`, `chpasswd`):
    /// it runs all the same, and the caller warns.
    async fn start_booking_container(
        &self,
        spec: &ContainerSpec,
        restore: Option<&Path>,
        progress: bool,
    ) -> Result<Started> {
        self.ensure_image(&spec.image, progress).await?;
        // By id: a name another monitor is creating at this moment could be ambiguous.
        let network_name = spec.network.clone();
        let network = self.ensure_network(&network_name).await?;
        let spec = &ContainerSpec { network, ..spec.clone() };
        let options = CreateContainerOptions { name: Some(spec.name.clone()), ..Default::default() };
        let mut layer_not_limited = None;
        match self.docker.create_container(Some(options.clone()), create_body(spec)).await {
            Ok(_) => {}
            // Only overlay2 on xfs with pquota can limit the writable layer: elsewhere the
            // container runs without that limit, and the caller says so.
            Err(DockerError::DockerResponseServerError { message, .. })
                if spec.writable_layer_gb.is_some() && message.to_lowercase().contains("storage-opt") =>
            {
                layer_not_limited = Some(message);
                let unlimited = ContainerSpec { writable_layer_gb: None, ..spec.clone() };
                self.docker
                    .create_container(Some(options), create_body(&unlimited))
                    .await
                    .map_err(creation_error)
                    .with_context(|| format!("cannot create container {} from {}", spec.name, spec.image))?;
            }
            Err(error) => {
                return Err(creation_error(error))
                    .with_context(|| format!("cannot create container {} from {}", spec.name, spec.image));
            }
        }
        let started = async {
            // The saved files first, the setup files last: a container that holds its setup
            // files is complete (an interrupted pass keeps it), so one without its saved
            // files is never taken over, and never saved back over the good copies.
            let mut restore_problem = None;
            if let Some(archive) = restore {
                restore_problem = self.upload_file(&spec.name, archive).await.err();
            }
            let archive = setup_archive(spec)?;
            let upload = UploadToContainerOptions { path: "/".to_string(), ..Default::default() };
            self.docker
                .upload_to_container(&spec.name, Some(upload), bollard::body_full(archive.into()))
                .await
                .with_context(|| format!("cannot write the setup files into container {}", spec.name))?;
            self.start_created(&spec.name, &network_name).await?;
            Ok(restore_problem)
        }
        .await;
        let restore_problem = match started {
            Ok(problem) => problem,
            Err(error) => {
                // A container that never ran holds the name; remove it so the next pass can retry.
                let _ = self.remove(&spec.name).await;
                return Err(error);
            }
        };
        // The image is the student's to change (a restored path may replace /bin/sh): the
        // check gets a deadline and a little output, and failing it only skips the warning.
        let missing = match tokio::time::timeout(EXEC_DEADLINE, self.run(&spec.name, CONTRACT_CHECK)).await {
            Ok(Ok(output)) => output,
            _ => String::new(),
        };
        Ok(Started {
            layer_not_limited,
            restore_problem: restore_problem.map(|error| format!("{error:#}")),
            missing: missing.split_whitespace().map(str::to_string).collect(),
        })
    }

    async fn start_existing(&self, name: &str) -> Result<()> {
        self.docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .with_context(|| format!("cannot start container {name}"))
    }

    async fn has_setup_files(&self, name: &str) -> Result<bool> {
        let path = format!("{}/start", SETUP_DIR);
        let options = DownloadFromContainerOptions { path: path.clone() };
        let mut stream = self.docker.download_from_container(name, Some(options));
        // The first bytes answer the question: the file is the student's to make huge.
        match stream.next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(error)) if is_not_found(&error) => Ok(false),
            Some(Err(error)) => Err(error).with_context(|| format!("cannot look for {path} in container {name}")),
            None => Ok(false),
        }
    }

    /// Stops a container (with a grace period) and keeps it; one that is stopped or gone
    /// already is fine.
    async fn stop(&self, name: &str) -> Result<()> {
        let options = StopContainerOptions { t: Some(STOP_GRACE_SECONDS), ..Default::default() };
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(DockerError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot stop container {name}")),
        }
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptions { force: true, ..Default::default() };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            // A pass killed while the engine removed the container: the engine finishes that
            // removal by itself, so this pass waits for it rather than failing.
            Err(DockerError::DockerResponseServerError { status_code: 409, message })
                if message.contains("already in progress") =>
            {
                self.wait_until_gone(name).await
            }
            Err(error) => Err(error).with_context(|| format!("cannot remove container {name}")),
        }
    }

    async fn restart(&self, name: &str) -> Result<()> {
        let options = RestartContainerOptions { t: Some(STOP_GRACE_SECONDS), ..Default::default() };
        self.docker
            .restart_container(name, Some(options))
            .await
            .with_context(|| format!("cannot restart container {name}"))
    }

    /// Writes a tar archive of `path` inside the container to `archive`; `false` when the
    /// path does not exist there. Streamed to disk (a saved folder can be large), and given
    /// up past `limit` bytes.
    async fn copy_out(&self, name: &str, path: &str, archive: &Path, limit: u64) -> Result<bool> {
        match tokio::time::timeout(COPY_DEADLINE, self.copy_out_unbounded(name, path, archive, limit)).await {
            Ok(result) => result,
            Err(_) => bail!(
                "copying {path} out of {name} took longer than {} minutes; not saved",
                COPY_DEADLINE.as_secs() / 60
            ),
        }
    }

    async fn process_ids(&self, name: &str) -> Result<Vec<u32>> {
        let top = self
            .docker
            .top_processes(name, None::<bollard::query_parameters::TopOptions>)
            .await
            .with_context(|| format!("cannot list processes of {name}"))?;
        let titles = top.titles.unwrap_or_default();
        let Some(column) = titles.iter().position(|title| title == "PID") else { return Ok(Vec::new()) };
        Ok(top.processes.unwrap_or_default().iter().filter_map(|row| row.get(column)?.parse().ok()).collect())
    }

    /// Runs `script` with `/bin/sh -c` in a running container, its `arguments` as `$1`, `$2`…
    /// (data, never parsed as shell), within `EXEC_DEADLINE`, and returns at most
    /// `EXEC_OUTPUT_LIMIT` of what it printed; `None` when the container does not run. The
    /// container is the student's: its shell may print anything, or nothing, or never end.
    async fn run_script(&self, name: &str, script: &str, arguments: &[String]) -> Result<Option<String>> {
        let mut command = vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string(), "gpu-booking".to_string()];
        command.extend(arguments.iter().cloned());
        match tokio::time::timeout(EXEC_DEADLINE, self.run_command(name, command)).await {
            Ok(Ok(output)) => Ok(Some(output)),
            Ok(Err(error))
                if error.downcast_ref::<DockerError>().is_some_and(|error| {
                    matches!(error, DockerError::DockerResponseServerError { status_code: 409, .. })
                }) =>
            {
                Ok(None)
            }
            Ok(Err(error)) => Err(error),
            Err(_) => bail!("a command in container {name} took longer than {} s", EXEC_DEADLINE.as_secs()),
        }
    }

    async fn storage(&self) -> Result<(String, String)> {
        let info = self.docker.info().await.context("cannot ask the engine for its storage driver")?;
        let backing = info
            .driver_status
            .unwrap_or_default()
            .into_iter()
            .find(|pair| pair.first().map(String::as_str) == Some("Backing Filesystem"))
            .and_then(|pair| pair.get(1).cloned())
            .unwrap_or_else(|| "unknown".to_string());
        Ok((info.driver.unwrap_or_else(|| "unknown".to_string()), backing))
    }
}

fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let port_bindings = spec
        .port_bindings
        .iter()
        .map(|binding| {
            (
                binding.container_port.clone(),
                Some(vec![DockerPortBinding {
                    host_ip: Some(binding.host_address.clone()),
                    host_port: Some(binding.host_port.to_string()),
                }]),
            )
        })
        .collect();
    let device_requests = spec.device_request.as_ref().map(|request| {
        vec![DeviceRequest {
            driver: Some(request.driver.clone()),
            count: None,
            device_ids: Some(request.device_ids.clone()),
            capabilities: Some(request.capabilities.clone()),
            options: None,
        }]
    });
    let restart = match spec.restart_policy.as_str() {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "no" => RestartPolicyNameEnum::NO,
        _ => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        hostname: Some(spec.name.clone()),
        entrypoint: Some(spec.entrypoint.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(spec.environment.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports: Some(spec.port_bindings.iter().map(|binding| binding.container_port.clone()).collect()),
        host_config: Some(HostConfig {
            nano_cpus: Some(spec.nano_cpus),
            memory: Some(spec.memory_bytes),
            memory_swap: Some(spec.memory_swap_bytes),
            shm_size: spec.shm_size_bytes,
            device_requests,
            port_bindings: Some(port_bindings),
            mounts: Some(spec.mounts.iter().map(folder_mount).collect()),
            restart_policy: Some(RestartPolicy { name: Some(restart), maximum_retry_count: None }),
            privileged: Some(false),
            cap_drop: Some(spec.capabilities_dropped.clone()),
            cap_add: Some(spec.capabilities_added.clone()),
            security_opt: Some(spec.security_options.clone()),
            pids_limit: Some(spec.pids_limit),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".to_string()),
                soft: Some(spec.open_files_limit),
                hard: Some(spec.open_files_limit),
            }]),
            network_mode: Some(spec.network.clone()),
            storage_opt: spec.writable_layer_gb.map(|gb| HashMap::from([("size".to_string(), format!("{gb}G"))])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A bind mount as data: Docker never parses a path as options, and refuses a source that
/// does not exist instead of creating it.
fn folder_mount(mount: &FolderMount) -> Mount {
    Mount {
        typ: Some(MountType::BIND),
        source: Some(mount.host_path.display().to_string()),
        target: Some(mount.container_path.clone()),
        read_only: Some(mount.read_only),
        bind_options: Some(MountBindOptions { create_mountpoint: Some(false), ..Default::default() }),
        ..Default::default()
    }
}

/// The setup files as a tar archive rooted at `/`.
fn setup_archive(spec: &ContainerSpec) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o700);
    header.set_size(0);
    header.set_cksum();
    builder.append_data(&mut header, SETUP_DIR.trim_start_matches('/'), std::io::empty())?;
    for file in &spec.files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.contents.len() as u64);
        header.set_mode(file.mode);
        header.set_cksum();
        builder.append_data(&mut header, file.path.trim_start_matches('/'), file.contents.as_slice())?;
    }
    Ok(builder.into_inner()?)
}
