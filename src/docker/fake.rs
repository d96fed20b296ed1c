//! [`Containers`] in memory, for tests of what the monitor decides and records: containers
//! are names with a state and labels, every call is written down, and each operation can be
//! told to fail the way the real engine does (engine down, start refused, container gone).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Result, bail};

use super::spec::{ContainerSpec, LABEL_MANAGED, LABEL_ROOT, LABEL_START};
use super::{ContainerState, Containers, Declined, Started};

/// One call to the fake, in the order made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Call {
    Ping,
    Inspect(String),
    ListOurs,
    /// A booking's container created and started (its name).
    Create(String),
    StartExisting(String),
    HasSetupFiles(String),
    Stop(String),
    Remove(String),
    Restart(String),
    /// A saved path copied out: the container and the path.
    CopyOut(String, String),
    ProcessIds(String),
    RunScript(String),
    Storage,
}

/// An operation that can be told to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Inspect,
    Create,
    StartExisting,
    Stop,
    Remove,
    Restart,
}

#[derive(Debug, Clone)]
struct Held {
    state: ContainerState,
    /// Whether the setup files were written (see [`Containers::has_setup_files`]).
    setup_files: bool,
}

#[derive(Debug, Default)]
struct Memory {
    containers: BTreeMap<String, Held>,
    calls: Vec<Call>,
    down: bool,
    refused: BTreeSet<Operation>,
    /// Images neither on the engine nor pullable.
    unavailable_images: BTreeSet<String>,
    created: usize,
}

/// The engine in memory. Everything is behind a lock, so a shared `&FakeContainers` serves
/// a whole pass.
#[derive(Debug, Default)]
pub struct FakeContainers {
    memory: Mutex<Memory>,
}

/// Labels that make a container one of gpu-booking's for `root_label`, made for the booking
/// that starts at `start` (as the schedule writes it).
pub fn booking_labels(root_label: &str, start: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_ROOT.to_string(), root_label.to_string()),
        (LABEL_START.to_string(), start.to_string()),
    ])
}

impl FakeContainers {
    pub fn new() -> FakeContainers {
        FakeContainers::default()
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        // A test that panicked while holding the lock has failed already.
        self.memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts a container on the engine, complete (with its setup files).
    pub fn add(&self, name: &str, running: bool, labels: BTreeMap<String, String>) {
        let mut memory = self.memory();
        memory.created += 1;
        let state = ContainerState {
            id: format!("fake{}", memory.created),
            name: name.to_string(),
            running,
            labels: labels.into_iter().collect(),
        };
        memory.containers.insert(name.to_string(), Held { state, setup_files: true });
    }

    /// Puts a container without its setup files: created by a pass killed before it wrote them.
    pub fn add_unfinished(&self, name: &str, labels: BTreeMap<String, String>) {
        self.add(name, false, labels);
        if let Some(held) = self.memory().containers.get_mut(name) {
            held.setup_files = false;
        }
    }

    /// The container goes away behind the monitor's back (removed by hand, lost in a crash).
    pub fn vanish(&self, name: &str) {
        self.memory().containers.remove(name);
    }

    /// The container stops by itself (killed, crashed), and stays.
    pub fn halt(&self, name: &str) {
        if let Some(held) = self.memory().containers.get_mut(name) {
            held.state.running = false;
        }
    }

    /// Every call fails as an engine that does not answer does.
    pub fn set_down(&self, down: bool) {
        self.memory().down = down;
    }

    /// `operation` fails from now on.
    pub fn refuse(&self, operation: Operation) {
        self.memory().refused.insert(operation);
    }

    /// `image` cannot be pulled.
    pub fn lack_image(&self, image: &str) {
        self.memory().unavailable_images.insert(image.to_string());
    }

    /// The containers now, by name.
    pub fn containers(&self) -> BTreeMap<String, ContainerState> {
        self.memory().containers.iter().map(|(name, held)| (name.clone(), held.state.clone())).collect()
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.memory().calls.clone()
    }

    /// The calls made so far that change something on the engine, in order: what an admin
    /// would find in the engine's events.
    pub fn changes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|call| {
                matches!(
                    call,
                    Call::Create(_) | Call::StartExisting(_) | Call::Stop(_) | Call::Remove(_) | Call::Restart(_)
                )
            })
            .collect()
    }

    /// Writes the call down, then fails it if the engine is down or `operation` is refused.
    fn answer(&self, call: Call, operation: Option<Operation>) -> Result<std::sync::MutexGuard<'_, Memory>> {
        let mut memory = self.memory();
        memory.calls.push(call.clone());
        if memory.down {
            bail!("Docker engine not reachable at fake: connection refused");
        }
        if operation.is_some_and(|operation| memory.refused.contains(&operation)) {
            bail!("the engine refused {call:?}");
        }
        Ok(memory)
    }

    fn named(&self, call: Call, operation: Option<Operation>, name: &str) -> Result<Option<ContainerState>> {
        let memory = self.answer(call, operation)?;
        Ok(memory.containers.get(name).map(|held| held.state.clone()))
    }

    fn set_running(&self, call: Call, operation: Operation, name: &str, running: bool) -> Result<()> {
        let mut memory = self.answer(call, Some(operation))?;
        match memory.containers.get_mut(name) {
            Some(held) => {
                held.state.running = running;
                Ok(())
            }
            None => bail!("no such container: {name}"),
        }
    }
}

impl Containers for FakeContainers {
    async fn ping(&self) -> Result<()> {
        self.answer(Call::Ping, None).map(|_| ())
    }

    async fn container(&self, name: &str) -> Result<Option<ContainerState>> {
        self.named(Call::Inspect(name.to_string()), Some(Operation::Inspect), name)
    }

    async fn wait_for_container(&self, name: &str) -> Result<Option<ContainerState>> {
        self.container(name).await
    }

    async fn list_ours(&self, root_label: &str) -> Result<Vec<ContainerState>> {
        let memory = self.answer(Call::ListOurs, None)?;
        Ok(memory
            .containers
            .values()
            .map(|held| held.state.clone())
            .filter(|state| state.is_ours(root_label))
            .collect())
    }

    async fn start_booking_container(
        &self,
        spec: &ContainerSpec,
        _restore: Option<&Path>,
        _progress: bool,
    ) -> Result<Started> {
        let memory = self.answer(Call::Create(spec.name.clone()), Some(Operation::Create))?;
        if memory.unavailable_images.contains(&spec.image) {
            return Err(Declined::ImageUnavailable(format!("cannot pull image {}: not found", spec.image)).into());
        }
        if memory.containers.contains_key(&spec.name) {
            let taken = Declined::NameTaken(format!("the container name \"/{}\" is already in use", spec.name));
            return Err(anyhow::Error::new(taken).context(format!("cannot create container {}", spec.name)));
        }
        drop(memory);
        self.add(&spec.name, true, spec.labels.clone());
        Ok(Started::default())
    }

    async fn start_existing(&self, name: &str) -> Result<()> {
        self.set_running(Call::StartExisting(name.to_string()), Operation::StartExisting, name, true)
    }

    async fn has_setup_files(&self, name: &str) -> Result<bool> {
        let memory = self.answer(Call::HasSetupFiles(name.to_string()), None)?;
        Ok(memory.containers.get(name).is_some_and(|held| held.setup_files))
    }

    async fn stop(&self, name: &str) -> Result<()> {
        let mut memory = self.answer(Call::Stop(name.to_string()), Some(Operation::Stop))?;
        // One that is stopped or gone already is fine, as on the memory.
        if let Some(held) = memory.containers.get_mut(name) {
            held.state.running = false;
        }
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let mut memory = self.answer(Call::Remove(name.to_string()), Some(Operation::Remove))?;
        memory.containers.remove(name);
        Ok(())
    }

    async fn restart(&self, name: &str) -> Result<()> {
        self.set_running(Call::Restart(name.to_string()), Operation::Restart, name, true)
    }

    async fn copy_out(&self, name: &str, path: &str, _archive: &Path, _limit: u64) -> Result<bool> {
        // The fake's containers hold no files: every saved path is missing from them.
        self.named(Call::CopyOut(name.to_string(), path.to_string()), None, name).map(|_| false)
    }

    async fn process_ids(&self, name: &str) -> Result<Vec<u32>> {
        match self.named(Call::ProcessIds(name.to_string()), None, name)? {
            Some(_) => Ok(Vec::new()),
            None => bail!("cannot list processes of {name}: no such container"),
        }
    }

    async fn run_script(&self, name: &str, _script: &str, _arguments: &[String]) -> Result<Option<String>> {
        match self.named(Call::RunScript(name.to_string()), None, name)? {
            Some(state) if state.running => Ok(Some("terminals 0\n".to_string())),
            Some(_) => Ok(None),
            None => bail!("cannot run a command in {name}: no such container"),
        }
    }

    async fn storage(&self) -> Result<(String, String)> {
        self.answer(Call::Storage, None).map(|_| ("overlay2".to_string(), "extfs".to_string()))
    }
}
