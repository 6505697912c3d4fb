//! Test helpers: where the built artifacts are, packing bundles, writing NIfTI volumes,
//! and a `labelhost serve` process on a free port.

use ndarray::{Array3, ArrayD};
use nifti::{IntoNdArray, NiftiObject, ReaderOptions};
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// `target/<profile>`, found from this test executable's location.
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Where scripts/setup.sh caches LibTorch, the sample data and the models.
pub(crate) fn cache_dir() -> PathBuf {
    match std::env::var_os("LABELHOST_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/labelhost"),
    }
}

/// The `labelhost` binary.
pub(crate) fn binary() -> PathBuf {
    let bin = target_dir().join("labelhost");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/test.sh (it builds it)",
        bin.display()
    );
    bin
}

/// A built plugin library `lib<name>.so`.
pub(crate) fn library(name: &str) -> PathBuf {
    let lib = target_dir().join(format!("lib{name}.so"));
    assert!(
        lib.is_file(),
        "{} is missing: run scripts/test.sh (it builds it)",
        lib.display()
    );
    lib
}

/// Packs a library (and assets `SOURCE=PATH`) into `plugins/<bundle>` with `labelhost pack`.
pub(crate) fn pack(plugins: &Path, bundle: &str, lib: &str, assets: &[String]) {
    pack_with(plugins, bundle, lib, assets, &[]);
}

/// `pack` with extra `labelhost pack` flags (such as `--archive`).
pub(crate) fn pack_with(
    plugins: &Path,
    bundle: &str,
    lib: &str,
    assets: &[String],
    flags: &[&str],
) {
    let mut cmd = Command::new(binary());
    cmd.args(["pack", "--library"])
        .arg(library(lib))
        .arg("--out")
        .arg(plugins.join(bundle))
        .args(flags);
    for a in assets {
        cmd.args(["--asset", a]);
    }
    let out = cmd.output().expect("run labelhost pack");
    assert!(
        out.status.success(),
        "pack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The brain app's bundle assets, optionally with another Otsu config file.
pub(crate) fn brain_assets(otsu_json: Option<&Path>) -> Vec<String> {
    let default = repo_root().join("plugins/brain/assets/otsu.json");
    let src = otsu_json.map(Path::to_path_buf).unwrap_or(default);
    vec![format!("{}=assets/otsu.json", src.display())]
}

/// Packs the two first-party apps into `plugins`.
pub(crate) fn pack_first_party(plugins: &Path) {
    pack(plugins, "brain", "labelhost_app_brain", &brain_assets(None));
    pack(plugins, "segmentation", "labelhost_app_segmentation", &[]);
}

/// Writes a float volume: a bright ball (`value`) in a dim, noisy box.
pub(crate) fn write_volume(path: &Path, n: usize, value: f32) {
    let c = n as f32 / 2.0;
    let vol = Array3::from_shape_fn((n, n, n), |(i, j, k)| {
        let d = ((i as f32 - c).powi(2) + (j as f32 - c).powi(2) + (k as f32 - c).powi(2)).sqrt();
        let noise = ((i * 7 + j * 13 + k * 29) % 11) as f32;
        if d < n as f32 / 4.0 {
            value + noise
        } else {
            10.0 + noise
        }
    });
    nifti::writer::WriterOptions::new(path)
        .write_nifti(&vol)
        .expect("write volume");
}

/// A plugins dir, a studies dir with `images` small volumes, and a runtime dir.
pub(crate) struct Workspace {
    /// Keeps the folders alive.
    pub(crate) dir: tempfile::TempDir,
}

impl Workspace {
    /// Creates the folders and `images` volumes of `n`³ voxels.
    pub(crate) fn new(images: usize, n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["plugins", "studies", "runtime"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        for i in 0..images {
            write_volume(
                &dir.path().join(format!("studies/img{i:02}.nii.gz")),
                n,
                100.0 + i as f32,
            );
        }
        Workspace { dir }
    }
    /// `plugins/`
    pub(crate) fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }
    /// `studies/`
    pub(crate) fn studies(&self) -> PathBuf {
        self.dir.path().join("studies")
    }
    /// Starts a server on this workspace.
    pub(crate) fn serve(&self, conf: &[&str]) -> Server {
        Server::start(self, conf, &[])
    }
    /// Starts a server with extra `labelhost serve` flags.
    pub(crate) fn serve_with(&self, conf: &[&str], flags: &[&str]) -> Server {
        Server::start(self, conf, flags)
    }
}

/// A running `labelhost serve`; killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub(crate) url: String,
    log: PathBuf,
}

impl Server {
    fn start(ws: &Workspace, conf: &[&str], flags: &[&str]) -> Self {
        let log = ws.dir.path().join(format!("server-{}.log", rand_suffix()));
        let mut cmd = Command::new(binary());
        cmd.arg("serve").arg("--plugins").arg(ws.plugins());
        // The workspace's studies folder unless the flags name other studies.
        if !flags.contains(&"--studies") {
            cmd.arg("--studies").arg(ws.studies());
        }
        // The workspace's runtime folder unless the flags name one (hosts sharing a
        // workspace need their own).
        if !flags.contains(&"--runtime-dir") {
            cmd.arg("--runtime-dir").arg(ws.dir.path().join("runtime"));
        }
        cmd.args(["--port", "0"])
            .env("RUST_LOG", "labelhost=info,tower_http=info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for c in conf {
            cmd.args(["--conf", c]);
        }
        cmd.args(flags);
        let mut child = cmd.spawn().expect("start labelhost");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let url = line
            .trim()
            .strip_prefix("labelhost listening on ")
            .map(str::to_owned);
        let Some(url) = url else {
            let _ = child.kill();
            panic!(
                "server did not start; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Server { child, url, log }
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `url + path`
    pub(crate) fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (at most two minutes) for the process to exit.
    pub(crate) fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds the process has used (user + system, from /proc).
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command's closing parenthesis: utime and stime are the
        // 12th and 13th of them.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let ticks: f64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse::<f64>().ok())
            .sum();
        ticks / 100.0
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// A blocking client with a generous timeout.
pub(crate) fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// GET a JSON document, asserting 200.
pub(crate) fn get_json(server: &Server, path: &str) -> serde_json::Value {
    let r = client().get(server.at(path)).send().expect("GET");
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().expect("JSON body")
}

/// The names of the loaded apps, from `GET /apps`.
pub(crate) fn app_names(server: &Server) -> Vec<String> {
    let apps = get_json(server, "/apps");
    let list = apps["apps"].as_array().expect("apps list");
    list.iter()
        .map(|a| a["name"].as_str().expect("name").to_owned())
        .collect()
}

/// A NIfTI file's voxels (first frame kept as stored, trailing unit dims dropped).
pub(crate) fn read_volume(path: &Path) -> ArrayD<f32> {
    read_with_header(path).1
}

fn read_with_header(path: &Path) -> (nifti::NiftiHeader, ArrayD<f32>) {
    let obj = ReaderOptions::new().read_file(path).expect("NIfTI");
    let header = obj.header().clone();
    let mut v = obj.into_volume().into_ndarray::<f32>().expect("voxels");
    while v.ndim() > 3 && v.shape()[v.ndim() - 1] == 1 {
        let last = ndarray::Axis(v.ndim() - 1);
        v = v.index_axis_move(last, 0);
    }
    (header, v)
}

/// Dice between the voxels above zero of two volumes of one shape.
pub(crate) fn dice(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let (mut both, mut sum) = (0u64, 0u64);
    for (x, y) in a.iter().zip(b.iter()) {
        let (x, y) = (*x > 0.0, *y > 0.0);
        both += u64::from(x && y);
        sum += u64::from(x) + u64::from(y);
    }
    2.0 * both as f64 / sum as f64
}

/// Writes `value` where `src`'s voxels are above zero (0 elsewhere) as a uint8 label on
/// `src`'s grid.
pub(crate) fn write_mask(src: &Path, dst: &Path, value: u8) {
    write_label(src, dst, |x| if x > 0.0 { value } else { 0 });
}

/// Writes `label(voxel)` for each of `src`'s voxels as a uint8 label on `src`'s grid.
pub(crate) fn write_label(src: &Path, dst: &Path, label: impl Fn(f32) -> u8) {
    let (header, v) = read_with_header(src);
    nifti::writer::WriterOptions::new(dst)
        .reference_header(&header)
        .write_nifti(&v.mapv(label))
        .expect("write label");
}

/// PUTs a file as a datastore label (`PUT /datastore/label?image=ID&tag=TAG`); asserts 200.
pub(crate) fn put_label(server: &Server, image: &str, tag: &str, file: &Path) {
    let bytes = std::fs::read(file).expect("label file");
    let name = file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let form = reqwest::blocking::multipart::Form::new().part(
        "label",
        reqwest::blocking::multipart::Part::bytes(bytes).file_name(name),
    );
    let r = client()
        .put(server.at(&format!("/datastore/label?image={image}&tag={tag}")))
        .multipart(form)
        .send()
        .expect("PUT label");
    assert_eq!(r.status(), 200, "PUT label for {image}");
}

/// Writes `src` mirrored along its first voxel axis (same header, float voxels).
pub(crate) fn write_mirrored(src: &Path, dst: &Path) {
    let (header, mut v) = read_with_header(src);
    v.invert_axis(ndarray::Axis(0));
    let v = v.as_standard_layout().into_owned();
    nifti::writer::WriterOptions::new(dst)
        .reference_header(&header)
        .write_nifti(&v)
        .expect("write mirrored");
}

/// Writes `voxels` as a uint8 volume with `src`'s header (grid and affine).
pub(crate) fn write_like(src: &Path, dst: &Path, voxels: &ArrayD<u8>) {
    let (header, _) = read_with_header(src);
    nifti::writer::WriterOptions::new(dst)
        .reference_header(&header)
        .write_nifti(voxels)
        .expect("write volume");
}

/// Writes bundle `name` of fixture library `lib` by hand (`labelhost pack` itself refuses
/// the libraries these tests load).
pub(crate) fn hand_bundle(plugins: &std::path::Path, name: &str, lib: &str, plugin_api: &str) {
    let file = format!("lib{lib}.so");
    let dir = plugins.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(crate::support::library(lib), dir.join(&file)).expect("copy");
    let sha = sha256_file(&dir.join(&file));
    let manifest = serde_json::json!({"name": name, "version": "0.1.0", "plugin_api": plugin_api,
        "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        "library": file, "files": [{"path": file, "sha256": sha}]});
    std::fs::write(dir.join("labelhost-bundle.json"), manifest.to_string()).expect("manifest");
}

/// A file's SHA-256 (hex), by `sha256sum`.
pub(crate) fn sha256_file(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_owned()
}

/// Packs the `segmentation` app with its stand-in UNet (made by scripts/setup.sh).
pub(crate) fn pack_segmentation(plugins: &Path) {
    let unet = cache_dir().join("models/segmentation/unet.pt");
    pack(
        plugins,
        "segmentation",
        "labelhost_app_segmentation",
        &[format!("{}=models/unet.pt", unet.display())],
    );
}

/// Packs the `tensor` fixture app with its committed `double.pt`.
pub(crate) fn pack_tensor(plugins: &Path) {
    let model = repo_root().join("tests/fixtures/models/double.pt");
    pack(
        plugins,
        "tensor",
        "tensor_app",
        &[format!("{}=models/double.pt", model.display())],
    );
}

/// Asserts that the first-party `brain_otsu` still answers an inference (the server
/// serves on after what the test did to it).
pub(crate) fn assert_still_serves(server: &Server) {
    let r = client()
        .post(server.at("/infer/brain_otsu?image=img00&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200, "brain_otsu still answers");
}

/// `POST /apps {"bundle": NAME}`, asserting a one-line 422; the detail.
pub(crate) fn load_refused(server: &Server, bundle: &str) -> String {
    let r = client()
        .post(server.at("/apps"))
        .json(&serde_json::json!({"bundle": bundle}))
        .send()
        .expect("load");
    assert_eq!(r.status(), 422, "{bundle}");
    let body: serde_json::Value = r.json().expect("typed JSON");
    let detail = body["detail"].as_str().expect("detail").to_owned();
    assert!(!detail.contains('\n'), "one line: {detail}");
    detail
}
