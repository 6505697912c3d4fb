//! Benchmark of the brain-extraction pipeline (deepbet, two passes) on ch2: the brain app
//! called in process, the same through `POST /infer/brain_extraction` on the real server,
//! and, in the same run, the same pipeline in plain Python PyTorch
//! (`reference/brain_pipeline.py`), with per-stage times, end-to-end latency, peak RSS and
//! ratios. Run with `scripts/bench.sh` (it builds the release binary and plugins).
//! `LABELHOST_BENCH_DEVICE=cuda` runs the model passes on the GPU.

use labelhost::{
    bundle, datastore::LocalDatastore, executor::TorchExecutor, loader, registry::Registry,
    services::Shared,
};
use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::Instant,
};

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak_rss(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status.lines().find(|l| l.starts_with("VmHWM:"));
    kb.and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn cache() -> PathBuf {
    std::env::var_os("LABELHOST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/labelhost")
        })
}

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// One POST over a fresh connection; returns (status, body length, seconds).
fn post(addr: &str, path: &str, body: &str) -> (u16, usize, f64) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read");
    let status = String::from_utf8_lossy(&answer[..12.min(answer.len())])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer.len(), started.elapsed().as_secs_f64())
}

fn pack_brain(plugins: &Path) {
    let lib = release_dir().join("liblabelhost_app_brain.so");
    let probe = plugins.with_file_name("probe.so");
    std::fs::copy(&lib, &probe).expect("brain plugin (scripts/bench.sh builds it)");
    let manifest = loader::open(&probe).expect("open plugin").manifest();
    let models = cache().join("models/deepbet");
    let otsu = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/brain/assets/otsu.json");
    let assets = [
        (otsu, "assets/otsu.json".to_owned()),
        (
            models.join("bbox_model.pt"),
            "models/bbox_model.pt".to_owned(),
        ),
        (models.join("model.pt"), "models/model.pt".to_owned()),
    ];
    bundle::pack(&lib, &assets, &plugins.join("brain"), &manifest).expect("pack");
}

fn main() {
    let device = std::env::var("LABELHOST_BENCH_DEVICE").unwrap_or_default();
    let work = tempfile::tempdir().expect("tempdir");
    let (plugins, studies) = (work.path().join("plugins"), work.path().join("studies"));
    std::fs::create_dir_all(&plugins).expect("mkdir");
    std::fs::create_dir_all(&studies).expect("mkdir");
    let ch2 = studies.join("ch2.nii.gz");
    std::fs::copy(cache().join("data/ch2.nii.gz"), &ch2).expect("ch2 (scripts/setup.sh)");
    pack_brain(&plugins);

    // 1. In process: the plugin called through the registry, as a handler would.
    let shared = Shared::new(
        LocalDatastore::open(&studies).expect("datastore"),
        Arc::new(TorchExecutor::new()),
        Default::default(),
    );
    let registry = Registry::new(&plugins, &work.path().join("runtime"), shared);
    let brain = registry.load("brain").expect("load brain");
    let request = json!({"image": ch2, "device": device, "model": "brain_extraction"}).to_string();
    let mut stages: Vec<Value> = Vec::new();
    let mut totals = Vec::new();
    for run in 0..=RUNS {
        let t = Instant::now();
        let out = brain
            .app
            .infer("brain_extraction".into(), request.as_str().into())
            .into_result()
            .expect("infer");
        let label = PathBuf::from(out.label_path.into_option().expect("label").as_str());
        let bytes = std::fs::read(&label).expect("label").len();
        let _ = std::fs::remove_file(&label);
        if run > 0 {
            totals.push(t.elapsed().as_secs_f64());
            stages.push(
                serde_json::from_str::<Value>(&out.params_json).expect("json")["latencies"].clone(),
            );
            assert!(bytes > 0);
        }
    }
    let stage = |k: &str| {
        median(
            stages
                .iter()
                .map(|s| s[k].as_f64().unwrap_or(0.0))
                .collect(),
        )
    };
    let in_process = median(totals);
    let bench_rss = peak_rss("self");
    drop(brain);

    // 2. Through HTTP on the real release server.
    let mut server = Command::new(release_dir().join("labelhost"))
        .args(["serve", "--port", "0", "--plugins"])
        .arg(&plugins)
        .arg("--studies")
        .arg(&studies)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start labelhost (release)");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("url");
    let addr = line
        .trim()
        .trim_start_matches("labelhost listening on http://")
        .to_owned();
    let body = json!({"device": device, "save_label": false}).to_string();
    let mut http = Vec::new();
    for run in 0..=RUNS {
        let (status, len, secs) = post(
            &addr,
            "/infer/brain_extraction?image=ch2&output=image",
            &body,
        );
        assert_eq!(status, 200, "HTTP infer");
        assert!(len > 1000);
        if run > 0 {
            http.push(secs);
        }
    }
    let http = median(http);
    let server_rss = peak_rss(&server.id().to_string());
    let _ = server.kill();
    let _ = server.wait();

    // 3. The plain-PyTorch reference, same files, same machine, same run.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/brain_pipeline.py");
    let models = cache().join("models/deepbet");
    let py = Command::new("python3")
        .arg(script)
        .arg(&ch2)
        .arg(models.join("bbox_model.pt"))
        .arg(models.join("model.pt"))
        .arg(work.path().join("reference.nii.gz"))
        .args([
            "--runs",
            &RUNS.to_string(),
            "--device",
            if device.is_empty() { "cpu" } else { &device },
        ])
        .output()
        .expect("python3 reference (scripts/bench.sh installs nibabel, scipy)");
    let py: Value = serde_json::from_slice(
        py.stdout
            .rsplit(|b| *b == b'\n')
            .find(|l| !l.is_empty())
            .unwrap_or(b"{}"),
    )
    .expect("reference JSON");
    let py_total = py["p50"]["total"].as_f64().unwrap_or(f64::NAN);

    println!(
        "brain extraction on ch2 (181x217x181), {RUNS} runs after a warm-up, p50, device '{}'",
        if device.is_empty() {
            "default"
        } else {
            &device
        }
    );
    println!("  stage     rust (in process)   python reference");
    for k in ["pre", "infer", "post", "write"] {
        println!(
            "  {k:<8} {:>10.3} s {:>18.3} s",
            stage(k),
            py["p50"][k].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!("  total (in process, label read back)   {in_process:>8.3} s");
    println!(
        "  total (POST /infer, output=image)     {http:>8.3} s = {:.3}x in process",
        http / in_process
    );
    println!("  total (python reference)              {py_total:>8.3} s");
    println!(
        "  rust in process / python              {:.3}x",
        in_process / py_total
    );
    println!(
        "  peak RSS: bench process {:.0} MiB, server {:.0} MiB, python {:.0} MiB",
        bench_rss as f64 / 1048576.0,
        server_rss as f64 / 1048576.0,
        py["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
    );
}
