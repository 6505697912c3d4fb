//! The process's memory: resident and peak bytes (from `/proc/self/status`), and the heap
//! kept warm while inferences come ([`keep_heap_warm`]) and handed back to the OS when they
//! stop. LibTorch's huge-page tensors are the operator's choice (`THP_MEM_ALLOC_ENABLE=1`).
//!
//! Why warm: glibc serves blocks over 32 MiB (a 256³ `f32` volume is 64 MiB; a model's
//! activations are hundreds) with fresh `mmap`s, so every big tensor of every request
//! faults its pages in again and the kernel zeroes them. On the 2-core Sapphire Rapids VM
//! that was a quarter of deepbet's model time (0.92 s against 0.69 s for both passes on
//! ch2) and a third of the work around it. Served from one heap that keeps its free pages,
//! the next request reuses them; after `idle` without inferences, when more than 1 GiB
//! above the last trim's resident size is held, or past half the machine's memory, they
//! go back, as the trim after every request did before.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// Seconds of no inference before the warm heap is trimmed; 0 when it is not kept warm.
static WARM_IDLE_MS: AtomicU64 = AtomicU64::new(0);
/// Inferences running, and when the last one began or ended (ms since [`epoch`]).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static LAST_USE_MS: AtomicU64 = AtomicU64::new(0);
static TRIMMED: AtomicBool = AtomicBool::new(true);
/// Resident bytes after the last trim: the warm heap keeps at most [`KEPT`] above it.
static BASELINE: AtomicU64 = AtomicU64::new(0);
/// Half the machine's memory, read once: past it the free heap goes back at once.
static HALF_MEMORY: AtomicU64 = AtomicU64::new(u64::MAX);
/// The most freed memory kept warm above what the process held after its last trim: one
/// 256³ request's intermediates (deepbet's two passes free about 400 MiB) with room; under
/// sustained concurrent load, fragments beyond it go back as requests end (the load run
/// grew to 2.1 GB without the cap).
const KEPT: u64 = 1 << 30;

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// Keeps freed heap pages for the next inference: every block comes from one heap (no
/// `mmap` per big block, one arena) that is not trimmed as blocks are freed; a thread hands
/// the free pages back once `idle` has passed with no inference running. `idle` zero: glibc's
/// defaults, and a trim after each inference. Call before any other thread starts.
pub fn keep_heap_warm(idle: Duration) {
    if idle.is_zero() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; no thread allocates yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
    WARM_IDLE_MS.store(idle.as_millis().max(1) as u64, Ordering::Relaxed);
    BASELINE.store(resident().map_or(0, |(rss, _)| rss), Ordering::Relaxed);
    HALF_MEMORY.store(total_memory() / 2, Ordering::Relaxed);
    let tick = idle.min(Duration::from_secs(1));
    let spawned = std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            let quiet = now_ms().saturating_sub(LAST_USE_MS.load(Ordering::Relaxed));
            if RUNNING.load(Ordering::Acquire) == 0
                && u128::from(quiet) >= idle.as_millis()
                && !TRIMMED.swap(true, Ordering::AcqRel)
            {
                trim();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no heap-trim thread ({e}); the heap is trimmed after each inference");
        WARM_IDLE_MS.store(0, Ordering::Relaxed);
    }
}

/// Marks an inference running until dropped; when the heap is not kept warm, or the
/// process holds more than [`KEPT`] above what it held after its last trim (or over half
/// the machine's memory), the free heap goes back as it ends.
pub struct HeapUse(());

impl HeapUse {
    /// An inference starts.
    pub fn begin() -> HeapUse {
        RUNNING.fetch_add(1, Ordering::AcqRel);
        LAST_USE_MS.store(now_ms(), Ordering::Relaxed);
        HeapUse(())
    }
}

impl Drop for HeapUse {
    fn drop(&mut self) {
        LAST_USE_MS.store(now_ms(), Ordering::Relaxed);
        TRIMMED.store(false, Ordering::Release);
        RUNNING.fetch_sub(1, Ordering::AcqRel);
        let warm = WARM_IDLE_MS.load(Ordering::Relaxed) > 0;
        let kept = BASELINE.load(Ordering::Relaxed).saturating_add(KEPT);
        let limit = kept.min(HALF_MEMORY.load(Ordering::Relaxed));
        if !warm || resident().is_some_and(|(rss, _)| rss > limit) {
            // Off the caller's thread: the trim walks the whole heap.
            std::thread::spawn(trim);
        }
    }
}

/// The machine's memory (`MemTotal`), or 8 GiB where `/proc` has no answer.
pub fn total_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    });
    total.map_or(8 << 30, |kb| kb * 1024)
}

/// [`release_free_heap`], then what the process holds is the new baseline.
fn trim() {
    release_free_heap();
    if let Some((rss, _)) = resident() {
        BASELINE.store(rss, Ordering::Relaxed);
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
