//! The shared LibTorch executor: one per process, CUDA when present, CPU otherwise.
//! TorchScript models are cached per (file, device, precision) and reloaded when the file
//! changes; Monte-Carlo dropout twins carry a model's weights (`dropout.rs`); model passes
//! take the device's priority compute lock (`compute.rs`).
//!
//! Apps reach it through an [`ExecutorScope`] per app generation (`scope.rs`): named tensor
//! ops (`ops.rs`) and sliding-window inference (`sliding.rs`) run on the tensor's device,
//! and TorchScript modules are trained there (`train.rs`).

mod cache;
pub mod cancel;
pub mod compute;
mod device_memory;
mod dropout;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod dropout_tests;
mod kernels;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod kernels_tests;
mod ops;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod ops_tests;
mod precision;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod precision_tests;
mod queue;
mod resample;
mod scope;
mod sliding;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
mod train;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod train_tests;

pub use compute::with_priority;
pub use device_memory::DeviceMemory;
pub use precision::Precision;
pub use queue::{DeviceQueue, Permit, Priority, QueueFull};
pub use scope::ExecutorScope;

/// The ABI handle plugins hold for a scope.
pub(crate) fn scope_handle(scope: Arc<ExecutorScope>) -> scope::ScopeHandle {
    scope::ScopeHandle(scope)
}

use cache::ModuleCache;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};
use tch::{CModule, Device};

/// A device's name as the queues and plugins know it (`cuda:N`, `cpu`).
pub(crate) fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_owned(),
    }
}

/// Runs every tensor op through LibTorch's own ops, the path tensors on a GPU take, also
/// for CPU tensors (instead of the CPU kernels): that path checked on a machine without a
/// GPU. Process-wide; set before the first request.
pub fn use_generic_ops(on: bool) {
    kernels::set_generic(on);
}

/// Requests running at once on a device when the operator does not say. Model passes run
/// one at a time per device (the compute lock) with LibTorch's intra-op threads, one per
/// core. A GPU: 2, so one request's CPU work overlaps another's pass. A CPU with up to 4
/// cores: 1, because the pass already uses every core and a second request's CPU work
/// stalls its threads (4 concurrent deepbet requests on 2 cores: 12.2 s with 1, 12.7 s
/// with 2) and holds its tensors meanwhile. A bigger CPU: 2.
pub fn default_workers(device: &str) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if device.starts_with("cuda") || cores > 4 {
        2
    } else {
        1
    }
}

/// The process-wide executor.
pub struct TorchExecutor {
    default: Device,
    cuda_devices: usize,
    models: Mutex<ModuleCache<(PathBuf, String, Precision), Option<SystemTime>>>,
    twins: Mutex<dropout::Twins>,
    queues: HashMap<String, Arc<DeviceQueue>>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TorchExecutor {
    /// Probes the devices (CUDA device 0 is the default when present); default queues.
    pub fn new() -> Self {
        TorchExecutor::with_queues(1024, 2)
    }

    /// Probes the devices; each gets a queue letting `workers` requests run at once (0 =
    /// [`default_workers`]) and `capacity` wait.
    pub fn with_queues(capacity: usize, workers: usize) -> Self {
        let cuda_devices = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        let default = if cuda_devices > 0 {
            Device::Cuda(0)
        } else {
            Device::Cpu
        };
        let mut exec = TorchExecutor {
            default,
            cuda_devices,
            models: Mutex::default(),
            twins: Mutex::default(),
            queues: HashMap::new(),
        };
        exec.queues = exec
            .devices()
            .into_iter()
            .map(|d| {
                let n = if workers == 0 {
                    default_workers(&d)
                } else {
                    workers
                };
                (d, DeviceQueue::new(capacity, n))
            })
            .collect();
        exec
    }

    /// How many requests each device's queue lets run at once (`cuda:0` → 2).
    pub fn workers(&self) -> Vec<(String, usize)> {
        self.devices()
            .into_iter()
            .filter_map(|d| Some((d.clone(), self.queues.get(&d)?.workers())))
            .collect()
    }

    /// The work queue of a device (`""` = the default device).
    pub fn queue(&self, name: &str) -> Result<Arc<DeviceQueue>, String> {
        let key = device_name(self.device(name)?);
        self.queues
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("no queue for {key}"))
    }

    /// Each device's queue now: (device, running, waiting, slots), the default first.
    pub fn queue_levels(&self) -> Vec<(String, usize, usize, usize)> {
        self.devices()
            .into_iter()
            .filter_map(|device| {
                let q = self.queue(&device).ok()?;
                let (running, waiting) = q.load();
                Some((device, running, waiting, q.workers()))
            })
            .collect()
    }

    /// Used and total bytes of each CUDA device (none without CUDA).
    pub fn cuda_memory(&self) -> Vec<DeviceMemory> {
        device_memory::cuda_memory(self.cuda_devices)
    }

    /// Device names, the default first (`cuda:0`, ..., `cpu`).
    pub fn devices(&self) -> Vec<String> {
        let mut out: Vec<String> = (0..self.cuda_devices)
            .map(|i| format!("cuda:{i}"))
            .collect();
        out.push("cpu".into());
        out
    }

    /// Parses `""`, `cpu`, `cuda` or `cuda:N`; refuses devices that are not present.
    pub fn device(&self, name: &str) -> Result<Device, String> {
        let device = match name.trim() {
            "" => self.default,
            "cpu" => Device::Cpu,
            "cuda" => Device::Cuda(0),
            other => match other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(i) => Device::Cuda(i),
                None => return Err(format!("unknown device '{other}' (cpu, cuda, cuda:N)")),
            },
        };
        if let Device::Cuda(i) = device {
            if i >= self.cuda_devices {
                return Err(format!(
                    "device cuda:{i} is not present ({} CUDA devices)",
                    self.cuda_devices
                ));
            }
        }
        Ok(device)
    }

    /// The TorchScript model at `path` on `device` in `precision` (its floating weights
    /// cast), loading it or reloading it when the file changed since it was cached.
    /// Requests holding the old module keep it.
    pub fn model(
        &self,
        path: &Path,
        device: Device,
        precision: Precision,
    ) -> Result<Arc<CModule>, String> {
        let key = (path.to_path_buf(), format!("{device:?}"), precision);
        let stamp = modified(path);
        if stamp.is_none() {
            return Err(format!("model file {} does not exist", path.display()));
        }
        let mut models = self
            .models
            .lock()
            .map_err(|_| "model cache poisoned".to_owned())?;
        if let Some(module) = models.get(&key, &stamp) {
            return Ok(module);
        }
        let mut module = CModule::load_on_device(path, device)
            .map_err(|e| format!("cannot load TorchScript model {}: {e}", path.display()))?;
        module
            .f_set_eval()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if precision != Precision::Fp32 {
            module.to(device, precision.kind(), false);
        }
        let module = Arc::new(module);
        models.put(key, stamp, &module);
        Ok(module)
    }
}

impl Default for TorchExecutor {
    fn default() -> Self {
        TorchExecutor::new()
    }
}
