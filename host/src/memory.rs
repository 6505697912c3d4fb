//! The process's memory: resident and peak bytes (from `/proc/self/status`), and handing
//! the heap's free pages back to the OS after a request. glibc keeps freed chunks below its
//! mmap threshold (which grows to 32 MiB as big blocks come and go), so without the trim a
//! second 256³ inference starts from the first one's leftovers and peaks higher.
//! LibTorch's CPU tensors of 2 MiB and more are asked to sit on transparent huge pages.

/// The environment variable LibTorch's CPU allocator reads (once, at its first
/// allocation) to align tensors of 2 MiB and more to huge pages and `madvise` them so.
pub const TENSOR_HUGE_PAGES_ENV: &str = "THP_MEM_ALLOC_ENABLE";

/// Turns LibTorch's huge-page tensors on unless the operator set the variable (`0` keeps
/// them off). A 256³ f32 tensor is 16,384 4-KiB pages, each faulted in on first touch:
/// deepbet's 256³ pass on a 2-core EPYC took 2.24-2.55 s with 4 KiB pages and 1.39-1.87 s
/// on huge pages, the same arithmetic. Call before any thread starts and before the
/// first tensor; answers whether huge pages are on.
pub fn tensor_huge_pages() -> bool {
    match std::env::var(TENSOR_HUGE_PAGES_ENV) {
        Ok(v) => v.trim() != "0" && !v.trim().is_empty(),
        Err(_) => {
            std::env::set_var(TENSOR_HUGE_PAGES_ENV, "1");
            true
        }
    }
}

/// Returns free heap pages to the OS (glibc's `malloc_trim`; nothing elsewhere).
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// (resident, peak resident) bytes of this process; `None` where `/proc` has no answer.
pub fn resident() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn resident_and_peak_bytes_are_read_and_trimming_is_harmless() {
        let block = std::hint::black_box(vec![1u8; 16 << 20]);
        let (rss, peak) = super::resident().expect("/proc/self/status");
        assert!(rss >= 16 << 20, "rss {rss} below a live 16 MiB block");
        assert!(peak >= rss, "rss {rss}, peak {peak}");
        drop(block);
        super::release_free_heap();
        let (after, _) = super::resident().unwrap();
        assert!(after > 0);
    }
}
