//! Benchmark of the plugin lifecycle: load time, hot-swap time and resident memory per
//! leaked generation, each against a baseline measured in the same run (staging alone:
//! copying and hashing the same bundle).
//!
//! Run with `scripts/bench.sh` (it builds the brain plugin in release first).

use labelhost::{
    bundle, datastore::LocalDatastore, executor::TorchExecutor, loader, registry::Registry,
    services::Shared,
};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

const SWAPS: usize = 200;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("bench exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let lib = dir.join("liblabelhost_app_brain.so");
    assert!(
        lib.is_file(),
        "{} missing: run scripts/bench.sh",
        lib.display()
    );
    lib
}

fn main() {
    let work = tempfile::tempdir().expect("tempdir");
    let plugins = work.path().join("plugins");
    let probe = work.path().join("probe.so");
    std::fs::copy(library(), &probe).expect("copy");
    let manifest = loader::open(&probe).expect("open plugin").manifest();
    let asset = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/brain/assets/otsu.json");
    bundle::pack(
        &library(),
        &[(asset, "assets/otsu.json".into())],
        &plugins.join("brain"),
        &manifest,
    )
    .expect("pack");

    // Baseline: staging alone (copy + sha256 of every file), no dlopen, no ABI checks.
    let stage: Vec<Duration> = (0..SWAPS)
        .map(|i| {
            let t = Instant::now();
            bundle::stage(
                &bundle::BundleSource::Folder(plugins.join("brain")),
                &work.path().join(format!("stage-{i}")),
            )
            .expect("stage");
            t.elapsed()
        })
        .collect();

    let studies = work.path().join("studies");
    let shared = Shared::new(
        LocalDatastore::open(&studies).expect("datastore"),
        Arc::new(TorchExecutor::new()),
        Default::default(),
    );
    let registry = Registry::new(&plugins, &work.path().join("runtime"), shared);
    let t = Instant::now();
    registry.load("brain").expect("load");
    let first_load = t.elapsed();

    let rss_before = rss_bytes();
    let swaps: Vec<Duration> = (0..SWAPS)
        .map(|_| {
            let t = Instant::now();
            registry.reload("brain").expect("reload");
            t.elapsed()
        })
        .collect();
    let rss_after = rss_bytes();
    let t = Instant::now();
    registry.retire("brain").expect("retire");
    let retire = t.elapsed();
    let first_swaps = median(swaps[..20].to_vec());
    let last_swaps = median(swaps[SWAPS - 20..].to_vec());
    let (stage, swap) = (median(stage), median(swaps));
    let per_generation = rss_after.saturating_sub(rss_before) as f64 / SWAPS as f64;
    let lib_size = std::fs::metadata(library()).map_or(0, |m| m.len());

    println!(
        "plugin lifecycle ({} KiB brain plugin, {SWAPS} swaps)",
        lib_size / 1024
    );
    println!(
        "  baseline: stage bundle (copy + sha256)  p50 {:>8.3} ms",
        ms(stage)
    );
    println!(
        "  first load (stage+dlopen+check+init)        {:>8.3} ms  = {:.2}x baseline",
        ms(first_load),
        ratio(first_load, stage)
    );
    println!(
        "  hot swap (reload, switch)             p50 {:>8.3} ms  = {:.2}x baseline",
        ms(swap),
        ratio(swap, stage)
    );
    println!(
        "  resident memory per leaked generation     {:>8.1} KiB = {:.2}x library file size",
        per_generation / 1024.0,
        per_generation / lib_size.max(1) as f64
    );
    println!(
        "  swaps 1-20 p50 {:.3} ms, swaps {}-{SWAPS} p50 {:.3} ms = {:.2}x (growth with mapped libraries)",
        ms(first_swaps),
        SWAPS - 19,
        ms(last_swaps),
        ratio(last_swaps, first_swaps)
    );
    println!(
        "  retire (drop: on_retire, free, remove files)   {:>8.3} ms  = {:.2}x baseline",
        ms(retire),
        ratio(retire, stage)
    );
    println!("  libraries mapped: {}", registry.libraries_mapped());
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}
