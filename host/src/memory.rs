//! The process's memory: resident and peak bytes (from `/proc/self/status`), and handing
//! the heap's free pages back to the OS after a request. glibc keeps freed chunks below its
//! mmap threshold (which grows to 32 MiB as big blocks come and go), so without the trim a
//! second 256³ inference starts from the first one's leftovers and peaks higher.

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
