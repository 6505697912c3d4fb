//! CUDA devices' memory for `/metrics` and `/status`: used and total bytes per device
//! (device-wide, every process's allocations and LibTorch's cache included), asked of the
//! CUDA runtime LibTorch already loaded (`cudaMemGetInfo`). Nothing on a host without CUDA.

use std::sync::OnceLock;

/// One device's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMemory {
    /// `cuda:N`.
    pub device: String,
    /// Bytes in use on the device.
    pub used: u64,
    /// The device's bytes.
    pub total: u64,
}

type SetDevice = unsafe extern "C" fn(i32) -> i32;
type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> i32;

struct Runtime {
    set_device: SetDevice,
    mem_get_info: MemGetInfo,
    _library: libloading::Library,
}

/// The CUDA runtime already in the process (LibTorch's CUDA library links it), never a
/// fresh load: `RTLD_NOLOAD` finds it by its soname wherever the wheel put it.
fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            ["libcudart.so.12", "libcudart.so.13", "libcudart.so"]
                .iter()
                .find_map(|name| {
                    // SAFETY: RTLD_NOLOAD only returns a library already loaded (and so
                    // initialised); nothing runs on open.
                    let lib = unsafe {
                        libloading::os::unix::Library::open(
                            Some(name),
                            libc::RTLD_NOLOAD | libc::RTLD_LAZY,
                        )
                    }
                    .ok()?;
                    let library = libloading::Library::from(lib);
                    // SAFETY: the CUDA runtime's documented C signatures.
                    let (set_device, mem_get_info) = unsafe {
                        (
                            *library.get::<SetDevice>(b"cudaSetDevice\0").ok()?,
                            *library.get::<MemGetInfo>(b"cudaMemGetInfo\0").ok()?,
                        )
                    };
                    Some(Runtime {
                        set_device,
                        mem_get_info,
                        _library: library,
                    })
                })
        })
        .as_ref()
}

/// Used and total bytes of CUDA devices `0..devices`; empty without a CUDA runtime.
pub(super) fn cuda_memory(devices: usize) -> Vec<DeviceMemory> {
    if devices == 0 {
        return Vec::new();
    }
    let Some(rt) = runtime() else {
        return Vec::new();
    };
    // cudaSetDevice changes the calling thread's current device: asked on a thread of its
    // own, so no executor thread's device changes under it.
    std::thread::scope(|s| {
        s.spawn(|| {
            (0..devices)
                .filter_map(|d| {
                    let (mut free, mut total) = (0usize, 0usize);
                    let index = i32::try_from(d).ok()?;
                    // SAFETY: plain CUDA runtime calls with valid out-pointers.
                    let ok = unsafe {
                        (rt.set_device)(index) == 0 && (rt.mem_get_info)(&mut free, &mut total) == 0
                    };
                    ok.then(|| DeviceMemory {
                        device: format!("cuda:{d}"),
                        used: (total - free.min(total)) as u64,
                        total: total as u64,
                    })
                })
                .collect()
        })
        .join()
        .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_devices_or_no_cuda_runtime_is_an_empty_answer() {
        assert!(super::cuda_memory(0).is_empty());
        if tch::Cuda::device_count() == 0 {
            // A CPU-only host: no runtime in the process, and nothing made up.
            assert!(super::cuda_memory(2).is_empty());
        } else {
            let m = super::cuda_memory(1);
            assert_eq!(m.len(), 1, "{m:?}");
            assert!(m[0].total > 0 && m[0].used <= m[0].total, "{m:?}");
        }
    }
}
