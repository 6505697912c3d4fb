//! The process's memory: resident and peak bytes (from `/proc/self/status`), and handing
//! the heap's free pages back to the OS after a request. glibc keeps freed chunks below its
//! mmap threshold (which grows to 32 MiB as big blocks come and go), so without the trim a
//! second 256³ inference starts from the first one's leftovers and peaks higher.
//! LibTorch's huge-page tensors are the operator's choice (`THP_MEM_ALLOC_ENABLE=1`).

/// The environment variable LibTorch's CPU allocator reads (once, at its first
/// allocation) to align tensors of 2 MiB and more to huge pages and `madvise` them so.
pub const TENSOR_HUGE_PAGES_ENV: &str = "THP_MEM_ALLOC_ENABLE";

/// Whether LibTorch's huge-page tensors are on: only when the operator sets the variable
/// (`1`). Not the default: PyTorch alone ran deepbet's 256³ pass ~20% faster on huge pages
/// on a 2-core EPYC, but in the server (two labelhost processes side by side, ch2
/// requests interleaved) the model's median was 3.02 vs 2.71 s and 2.60 vs 2.62 s with
/// and without, and its spread 1.8-4.3 s against 2.5-2.9 s.
pub fn tensor_huge_pages() -> bool {
    std::env::var(TENSOR_HUGE_PAGES_ENV).is_ok_and(|v| !matches!(v.trim(), "" | "0"))
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
