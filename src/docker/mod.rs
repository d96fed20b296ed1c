//! The Docker engine, behind intent-level operations. Nothing else in the crate builds bollard
//! option structs: callers say "start this booking's container", "stop and remove it", "copy
//! this path out of it" through [`Containers`]. [`Engine`] does it on the real engine;
//! [`fake::FakeContainers`] keeps containers in memory, so the monitor's decisions are tested
//! without one. The container a booking gets is plain data in [`spec`].

mod engine;
pub mod fake;
pub mod spec;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;

use anyhow::Result;

pub use engine::{Engine, engine_address};
use spec::{ContainerSpec, LABEL_MANAGED, LABEL_ROOT};

/// What the monitor needs to know of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub labels: HashMap<String, String>,
}

impl ContainerState {
    /// Started by gpu-booking for this root.
    pub fn is_ours(&self, root_label: &str) -> bool {
        self.labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
            && self.labels.get(LABEL_ROOT).map(String::as_str) == Some(root_label)
    }
}

/// What [`Containers::start_booking_container`] reports besides success.
#[derive(Debug, Default)]
pub struct Started {
    /// Why the writable layer could not be limited (the storage driver's refusal).
    pub layer_not_limited: Option<String>,
    /// Why the saved files could not be copied in (the container runs without them).
    pub restore_problem: Option<String>,
    /// Parts of the image contract the container lacks.
    pub missing: Vec<String>,
}

/// A refusal of the engine that callers tell apart; the message is the engine's words.
#[derive(Debug)]
pub enum Declined {
    /// An image that is neither on the engine nor pullable: the student can pick another.
    ImageUnavailable(String),
    /// A creation refused because a container of that name exists already.
    NameTaken(String),
}

impl std::fmt::Display for Declined {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declined::ImageUnavailable(message) | Declined::NameTaken(message) => formatter.write_str(message),
        }
    }
}

impl std::error::Error for Declined {}

fn declined(error: &anyhow::Error) -> impl Iterator<Item = &Declined> {
    error.chain().filter_map(|cause| cause.downcast_ref::<Declined>())
}

/// Whether `error` says a container of that name exists already.
pub fn is_name_taken(error: &anyhow::Error) -> bool {
    declined(error).any(|declined| matches!(declined, Declined::NameTaken(_)))
}

/// Why the image could not be had, when that is what `error` says.
pub fn image_unavailable(error: &anyhow::Error) -> Option<&str> {
    declined(error).find_map(|declined| match declined {
        Declined::ImageUnavailable(message) => Some(message.as_str()),
        Declined::NameTaken(_) => None,
    })
}

/// The engine as the monitor, `run-container` and `monitor status` use it. Names are
/// container names (a booking's container is named after its user).
///
/// The futures are not `Send`: a pass runs on one thread and joins its users' parts, it
/// never spawns them, so no caller needs more.
pub trait Containers {
    /// Whether the engine answers, within a deadline; the error says where it was looked for.
    fn ping(&self) -> impl Future<Output = Result<()>>;

    /// The container called `name`, if any.
    fn container(&self, name: &str) -> impl Future<Output = Result<Option<ContainerState>>>;

    /// The container `name` once the engine shows it: a name can be taken by a creation the
    /// engine is still making (for a pass that was killed) before the container can be read.
    fn wait_for_container(&self, name: &str) -> impl Future<Output = Result<Option<ContainerState>>>;

    /// Every container (running or not) that gpu-booking started for `root_label`.
    fn list_ours(&self, root_label: &str) -> impl Future<Output = Result<Vec<ContainerState>>>;

    /// Creates and starts a booking's container: image pulled if missing, the setup files and
    /// the user's saved files (`restore`, a tar archive rooted at `/`) copied in before the
    /// start. Fails with [`Declined`] where the image or the name is why.
    fn start_booking_container(
        &self,
        spec: &ContainerSpec,
        restore: Option<&Path>,
        progress: bool,
    ) -> impl Future<Output = Result<Started>>;

    /// Starts an existing, stopped container.
    fn start_existing(&self, name: &str) -> impl Future<Output = Result<()>>;

    /// Whether the container holds the setup files (a container created by a pass that was
    /// killed before writing them does not, and would fail at every start).
    fn has_setup_files(&self, name: &str) -> impl Future<Output = Result<bool>>;

    /// Stops a container (with a grace period) and keeps it; one that is stopped or gone
    /// already is fine.
    fn stop(&self, name: &str) -> impl Future<Output = Result<()>>;

    /// Removes a container; one that is gone already is fine.
    fn remove(&self, name: &str) -> impl Future<Output = Result<()>>;

    /// Stops (with a grace period) and removes a container; one that is gone already is fine.
    fn stop_and_remove(&self, name: &str) -> impl Future<Output = Result<()>> {
        async move {
            self.stop(name).await?;
            self.remove(name).await
        }
    }

    fn restart(&self, name: &str) -> impl Future<Output = Result<()>>;

    /// Writes a tar archive of `path` inside the container to `archive`; `false` when the
    /// path does not exist there. Given up past `limit` bytes.
    fn copy_out(&self, name: &str, path: &str, archive: &Path, limit: u64) -> impl Future<Output = Result<bool>>;

    /// The host PIDs of the processes in a running container (to match the GPUs' processes).
    fn process_ids(&self, name: &str) -> impl Future<Output = Result<Vec<u32>>>;

    /// Runs `script` with `/bin/sh -c` in a running container, its `arguments` as `$1`, `$2`…,
    /// and returns (a bounded part of) what it printed; `None` when the container does not run.
    fn run_script(
        &self,
        name: &str,
        script: &str,
        arguments: &[String],
    ) -> impl Future<Output = Result<Option<String>>>;

    /// The storage driver and the file system under it (`overlay2`, `extfs`).
    fn storage(&self) -> impl Future<Output = Result<(String, String)>>;
}
