//! What the GPUs are doing, through NVML (the NVIDIA driver's management library), behind a
//! small trait so the monitor's checks can be tested with a fake. Without a driver the
//! monitor says so in one line and skips its GPU checks.

use anyhow::{Result, anyhow};

/// One GPU as `monitor status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuDevice {
    pub index: u32,
    pub name: String,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub utilization_percent: u32,
    /// Host process ids of the compute and graphics processes on this GPU.
    pub process_ids: Vec<u32>,
}

pub trait GpuInfo {
    /// Every GPU, or why they cannot be read (e.g. no NVIDIA driver).
    fn devices(&self) -> Result<Vec<GpuDevice>>;
}

/// The real GPUs, through NVML. Loading the library is deferred to the first question, so a
/// host without a driver pays nothing until a GPU check runs.
#[derive(Debug, Default)]
pub struct Nvml;

impl GpuInfo for Nvml {
    fn devices(&self) -> Result<Vec<GpuDevice>> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|error| anyhow!("no NVIDIA driver: {error}"))?;
        let count = nvml.device_count().map_err(|error| anyhow!("NVML cannot count the GPUs: {error}"))?;
        let mut devices = Vec::new();
        for index in 0..count {
            let device =
                nvml.device_by_index(index).map_err(|error| anyhow!("NVML cannot open GPU {index}: {error}"))?;
            let memory =
                device.memory_info().map_err(|error| anyhow!("NVML cannot read GPU {index}'s memory: {error}"))?;
            let mut process_ids: Vec<u32> =
                device.running_compute_processes().unwrap_or_default().iter().map(|process| process.pid).collect();
            process_ids
                .extend(device.running_graphics_processes().unwrap_or_default().iter().map(|process| process.pid));
            process_ids.sort_unstable();
            process_ids.dedup();
            devices.push(GpuDevice {
                index,
                name: device.name().unwrap_or_else(|_| "unknown GPU".into()),
                memory_used_bytes: memory.used,
                memory_total_bytes: memory.total,
                utilization_percent: device.utilization_rates().map(|rates| rates.gpu).unwrap_or(0),
                process_ids,
            });
        }
        Ok(devices)
    }
}

/// A fixed answer, for tests.
#[derive(Debug, Clone, Default)]
pub struct FakeGpus {
    pub devices: Vec<GpuDevice>,
    /// When set, `devices` fails with this message (a host without a driver).
    pub failure: Option<String>,
}

impl GpuInfo for FakeGpus {
    fn devices(&self) -> Result<Vec<GpuDevice>> {
        match &self.failure {
            Some(message) => Err(anyhow!("{message}")),
            None => Ok(self.devices.clone()),
        }
    }
}

/// A GPU process running in a container that was not given that GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Misuse {
    pub gpu: u32,
    pub process_id: u32,
    pub container: String,
}

/// Finds processes on GPUs their container was not given. `containers` pairs each running
/// booking's container name and GPU ids with the host PIDs of its processes.
pub fn find_misuse(devices: &[GpuDevice], containers: &[(String, Vec<u32>, Vec<u32>)]) -> Vec<Misuse> {
    let mut found = Vec::new();
    for device in devices {
        for process_id in &device.process_ids {
            for (name, gpus, process_ids) in containers {
                if process_ids.contains(process_id) && !gpus.contains(&device.index) {
                    found.push(Misuse { gpu: device.index, process_id: *process_id, container: name.clone() });
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(index: u32, process_ids: Vec<u32>) -> GpuDevice {
        GpuDevice {
            index,
            name: "Fake GPU".into(),
            memory_used_bytes: 0,
            memory_total_bytes: 1,
            utilization_percent: 0,
            process_ids,
        }
    }

    #[test]
    fn a_process_on_a_gpu_its_container_was_not_given_is_found() {
        let gpus = FakeGpus { devices: vec![device(0, vec![100]), device(1, vec![200, 300])], failure: None };
        let containers = vec![("alice".to_string(), vec![0], vec![100, 300]), ("bob".to_string(), vec![1], vec![200])];
        let misuse = find_misuse(&gpus.devices().unwrap(), &containers);
        assert_eq!(misuse, vec![Misuse { gpu: 1, process_id: 300, container: "alice".into() }]);
    }

    #[test]
    fn a_missing_driver_is_one_clear_error() {
        let gpus = FakeGpus { devices: vec![], failure: Some("no NVIDIA driver: library not found".into()) };
        assert!(gpus.devices().unwrap_err().to_string().starts_with("no NVIDIA driver"));
    }
}
