//! Command-line configuration, in one place: the optional config file's settings become
//! flags ([`file`]), clap reads flags and environment as typed ([`Cli`]), then the settings
//! the server runs with are checked together ([`ServerConfig`]).

mod commands;
pub mod file;

pub use commands::{
    AppsAction, AppsArgs, DatastoreAction, DatastoreArgs, DicomAction, DicomArgs, InferArgs,
    PackArgs, TokenArgs,
};

use crate::{Error, Result};
use clap::{Args, Parser, Subcommand};
use std::{collections::BTreeMap, net::IpAddr, path::PathBuf};

/// labelhost: an active-learning annotation server that hosts compiled app plugins.
#[derive(Debug, Parser)]
#[command(name = "labelhost", version)]
pub struct Cli {
    /// A TOML file of settings: a table per verb, keyed by its long flags (`[serve]
    /// port = 8000`). The command line and the environment take precedence over it.
    #[arg(long, global = true, env = "LABELHOST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the apps of a plugins folder on a studies folder.
    Serve(Box<ServeArgs>),
    /// Make an app bundle from a plugin library and its assets.
    Pack(PackArgs),
    /// Make a new API token: prints the token (give it to its user) and the entry for the
    /// `tokens` list of the auth config file (it holds only the token's SHA-256).
    Token(TokenArgs),
    /// Manage the apps of a running server: list, load, reload (hot swap), retire.
    Apps(AppsArgs),
    /// Run one infer task on one image file, without a server.
    Infer(InferArgs),
    /// A studies folder's counts; import images and labels; export them as a dataset.
    Datastore(DatastoreArgs),
    /// DICOM: a series as NIfTI, a label as a DICOM SEG of its series (stored on a PACS by
    /// STOW-RS), a SEG read back as a label.
    Dicom(DicomArgs),
}

/// `labelhost serve` flags; each also reads an environment variable.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder of app bundles.
    #[arg(long, env = "LABELHOST_PLUGINS")]
    pub plugins: PathBuf,
    /// Studies folder (the datastore), or a DICOMweb server's URL
    /// (`http://pacs:8042/dicom-web`): its series are the images, cached in
    /// `--dicomweb-cache`, and final labels go back to it as DICOM SEG.
    #[arg(long, env = "LABELHOST_STUDIES")]
    pub studies: PathBuf,
    /// With a DICOMweb `--studies`: a QIDO-RS filter, KEY=VALUE (`Modality=MR`; repeatable).
    #[arg(
        long = "dicomweb-filter",
        env = "LABELHOST_DICOMWEB_FILTERS",
        value_delimiter = ','
    )]
    pub dicomweb_filters: Vec<String>,
    /// With a DICOMweb `--studies`: HTTP basic credentials, USER:PASSWORD.
    #[arg(long, env = "LABELHOST_DICOMWEB_CREDENTIALS")]
    pub dicomweb_credentials: Option<String>,
    /// With a DICOMweb `--studies`: the folder of its cache and index (default: one per
    /// server URL under ~/.cache/labelhost/dicomweb).
    #[arg(long, env = "LABELHOST_DICOMWEB_CACHE")]
    pub dicomweb_cache: Option<PathBuf>,
    /// With a DICOMweb `--studies`: MiB of fetched volumes kept (least recently read go
    /// first).
    #[arg(long, env = "LABELHOST_DICOMWEB_CACHE_MIB", default_value_t = 10240)]
    pub dicomweb_cache_mib: u64,
    /// With a DICOMweb `--studies`: seconds a cached volume is kept after it was last read
    /// (MONAI Label's 7200); 0 keeps it until `--dicomweb-cache-mib` needs the room.
    #[arg(
        long,
        env = "LABELHOST_DICOMWEB_CACHE_EXPIRY",
        default_value_t = 7200.0
    )]
    pub dicomweb_cache_expiry: f64,
    /// With a DICOMweb `--studies`: series asked for per QIDO-RS page.
    #[arg(long, env = "LABELHOST_DICOMWEB_PAGE_SIZE", default_value_t = 500)]
    pub dicomweb_page_size: usize,
    /// With a DICOMweb `--studies`: seconds between searches of the server for new series.
    #[arg(long, env = "LABELHOST_DICOMWEB_POLL_SECONDS", default_value_t = 30.0)]
    pub dicomweb_poll: f64,
    /// The store several hosts over one studies folder or DICOMweb server share
    /// (`postgres://user@db:5432/labelhost`): active-learning claims, training jobs (one
    /// across the hosts), published models. Without it the host works alone.
    #[arg(long, env = "LABELHOST_CLUSTER")]
    pub cluster: Option<String>,
    /// With `--cluster`: this host's name among the hosts (default: the machine's name and
    /// the port), the same across its restarts.
    #[arg(long, env = "LABELHOST_HOST_NAME")]
    pub host_name: Option<String>,
    /// With `--cluster`: seconds between rounds over the store (heartbeat, other hosts'
    /// jobs, published models, labels saved elsewhere).
    #[arg(long, env = "LABELHOST_CLUSTER_POLL_SECONDS", default_value_t = 2.0)]
    pub cluster_poll: f64,
    /// Address to listen on.
    #[arg(long, env = "LABELHOST_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "LABELHOST_PORT", default_value_t = 8000)]
    pub port: u16,
    /// App configuration, KEY=VALUE (repeatable; the variable takes a comma-separated list).
    #[arg(long = "conf", env = "LABELHOST_CONF", value_delimiter = ',')]
    pub conf: Vec<String>,
    /// Where bundles are staged for loading and uploads received: a folder only this user
    /// can write (default: a fresh one in the temp dir, removed at exit).
    #[arg(long, env = "LABELHOST_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// How many requests may wait in each device's queue before new ones get 503.
    #[arg(long, env = "LABELHOST_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// How many requests run at once on each device; 0 chooses from the device and the
    /// cores (a GPU 2, a CPU of up to 4 cores 1, a bigger CPU 2; see
    /// `executor::default_workers`). Model passes run one at a time per device with all
    /// cores, so more workers only overlap CPU work with a pass and hold more tensors.
    #[arg(long, env = "LABELHOST_DEVICE_WORKERS", default_value_t = 0)]
    pub device_workers: usize,
    /// Let cuDNN time its convolution algorithms at each new input shape and keep the
    /// fastest (LibTorch's `cudnn.benchmark`). The first pass at each shape pays for the
    /// timing; a task whose model always sees the same shapes (deepbet's 128³ and 256³)
    /// gains after it. No effect without CUDA.
    #[arg(long, env = "LABELHOST_CUDNN_BENCHMARK")]
    pub cudnn_benchmark: bool,
    /// Run every tensor op through LibTorch's own ops, the path a GPU takes, instead of the
    /// CPU kernels (slower): for checking that path on a machine without a GPU.
    #[arg(long, env = "LABELHOST_GENERIC_OPS")]
    pub generic_ops: bool,
    /// How often (milliseconds) the studies folder is checked for files added or removed by hand.
    #[arg(long, env = "LABELHOST_DATASTORE_POLL_MS", default_value_t = 2000)]
    pub datastore_poll_ms: u64,
    /// How long (seconds) an image served by `/activelearning/` stays the client's: other
    /// clients are not served it meanwhile. 0 turns claims off.
    #[arg(long, env = "LABELHOST_CLAIM_SECONDS", default_value_t = crate::datastore::DEFAULT_CLAIM_SECS)]
    pub claim_seconds: u64,
    /// The most voxels a stored or read volume may have (uploads over it are refused; apps
    /// read the same variable).
    #[arg(long, env = "LABELHOST_MAX_VOXELS", default_value_t = labelhost_plugin_api::sdk::image::ReadOptions::DEFAULT_MAX_VOXELS)]
    pub max_voxels: u64,
    /// An origin web pages may call the API from (`https://host:port`, or `*` for any);
    /// repeatable. Without one, browsers get no cross-origin access.
    #[arg(
        long = "cors-origin",
        env = "LABELHOST_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Tell clients the server's file paths (`path` in samples, image info, sessions and
    /// the training list), for a 3D Slicer on this machine or one sharing the studies
    /// mount. Off: `path` is the API route that serves the file.
    #[arg(long, env = "LABELHOST_SHARE_PATHS")]
    pub share_paths: bool,
    /// Turn on authentication with this file (JSON: static tokens by SHA-256, JWT keys;
    /// see the README). Off: every route is open, and app management only on loopback.
    #[arg(long, env = "LABELHOST_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,
    /// Seconds an inference or an active-learning strategy may run before it is answered
    /// 504 and its work stopped (MONAI Label's MONAI_LABEL_INFER_TIMEOUT default).
    #[arg(long, env = "LABELHOST_INFER_TIMEOUT", default_value_t = 600.0)]
    pub infer_timeout: f64,
    /// An infer task's or strategy's own limit, TASK=SECONDS (repeatable; the variable
    /// takes a comma list).
    #[arg(
        long = "task-timeout",
        env = "LABELHOST_TASK_TIMEOUTS",
        value_delimiter = ','
    )]
    pub task_timeouts: Vec<String>,
    /// MiB of executor tensors one inference may hold at once (its input, intermediates
    /// and outputs); past it the request is answered 413 and its tensors freed. 0: no
    /// budget. Default: a quarter of the machine's memory.
    #[arg(long = "request-memory", env = "LABELHOST_REQUEST_MEMORY_MIB")]
    pub request_memory_mib: Option<u64>,
    /// Seconds the memory inferences freed stays with the process after the last one, so
    /// the next reuses it instead of faulting fresh pages in (deepbet's passes ran a
    /// quarter faster); then it goes back to the OS. 0: back after every inference.
    #[arg(
        long = "warm-heap",
        env = "LABELHOST_WARM_HEAP_SECONDS",
        default_value_t = 30.0
    )]
    pub warm_heap: f64,
    /// Plugin calls of one app generation that may still run after their requests ended
    /// (timed out, client gone; a plugin that never calls the executor cannot be stopped)
    /// before its inferences are answered 503 until some return.
    #[arg(long, env = "LABELHOST_MAX_ABANDONED", default_value_t = 4)]
    pub max_abandoned: usize,
    /// The most plugin libraries the server maps: each new build an app is reloaded to
    /// maps one until restart (an unchanged build reuses its mapping). Past it, loads are
    /// refused with 409.
    #[arg(long, env = "LABELHOST_MAX_LIBRARIES", default_value_t = crate::registry::DEFAULT_MAX_LIBRARIES)]
    pub max_libraries: u64,
    /// The most open connections; one more is closed at once.
    #[arg(long, env = "LABELHOST_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers; also how long a connection may
    /// sit idle between requests.
    #[arg(long, env = "LABELHOST_HEADER_TIMEOUT", default_value_t = 30.0)]
    pub header_timeout: f64,
    /// Read images and labels that are symbolic links in the studies folder (a linked
    /// dataset). Off: such files stay indexed but are refused, since a planted link could
    /// point at any file the server can read.
    #[arg(long, env = "LABELHOST_FOLLOW_SYMLINKS")]
    pub follow_symlinks: bool,
    /// Log as JSON lines.
    #[arg(long, env = "LABELHOST_JSON_LOGS")]
    pub json_logs: bool,
}

/// Validated server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Absolute plugins folder.
    pub plugins: PathBuf,
    /// Absolute studies folder (a DICOMweb server's cache folder when `dicomweb` is set).
    pub studies: PathBuf,
    /// The DICOMweb server behind the datastore, if any.
    pub dicomweb: Option<DicomWebConfig>,
    /// The cluster store shared with other hosts, if any.
    pub cluster: Option<ClusterConfig>,
    /// Listen address.
    pub host: IpAddr,
    /// Listen port.
    pub port: u16,
    /// `--conf` settings.
    pub conf: BTreeMap<String, String>,
    /// The configured runtime folder (checked private at start); `None`: a fresh one.
    pub runtime_dir: Option<PathBuf>,
    /// Waiting requests per device queue.
    pub queue_capacity: usize,
    /// Running requests per device (0 = chosen per device, see `executor::default_workers`).
    pub device_workers: usize,
    /// cuDNN's algorithm timing per input shape (CUDA only).
    pub cudnn_benchmark: bool,
    /// Every op by LibTorch's path (the GPU's), CPU tensors too.
    pub generic_ops: bool,
    /// Studies-folder polling period in milliseconds.
    pub datastore_poll_ms: u64,
    /// Seconds an active-learning claim stays fresh (0: no claims).
    pub claim_seconds: u64,
    /// The voxel limit of stored and read volumes.
    pub max_voxels: u64,
    /// CORS and path exposure.
    pub access: crate::api::Access,
    /// Time limits of inference requests.
    pub timeouts: Timeouts,
    /// Bytes of executor tensors one inference may hold (0: no budget).
    pub request_memory: u64,
    /// How long freed memory stays with the process after the last inference.
    pub warm_heap: std::time::Duration,
    /// Abandoned plugin calls per app generation before its inferences answer 503.
    pub max_abandoned: usize,
    /// The cap on mapped plugin libraries.
    pub max_libraries: u64,
    /// Connection limits.
    pub connections: crate::serve::ConnLimits,
    /// Whether the datastore reads symbolic links.
    pub follow_symlinks: bool,
}

/// The store several hosts share.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Its connection URL.
    pub url: String,
    /// This host's name among the hosts.
    pub host_name: String,
    /// Between rounds over the store.
    pub poll: std::time::Duration,
}

/// `--cluster`'s settings; the host name defaults to the machine's name and the port.
fn cluster(a: &ServeArgs) -> Result<Option<ClusterConfig>> {
    let Some(url) = a.cluster.clone().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let host_name = match &a.host_name {
        Some(name) if name.trim().is_empty() => {
            return Err(Error::BadRequest("--host-name: may not be empty".into()))
        }
        Some(name) => name.trim().to_owned(),
        None => {
            let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "host".into());
            format!("{machine}:{}", a.port)
        }
    };
    Ok(Some(ClusterConfig {
        url,
        host_name,
        poll: seconds("--cluster-poll", a.cluster_poll, false, 3600.0)?,
    }))
}

/// A DICOMweb server as the datastore.
#[derive(Debug, Clone)]
pub struct DicomWebConfig {
    /// Its URL.
    pub url: String,
    /// QIDO-RS filters.
    pub filters: Vec<(String, String)>,
    /// HTTP basic credentials.
    pub basic: Option<(String, String)>,
    /// Bytes of cached volumes.
    pub cache_bytes: u64,
    /// Between searches for new series.
    pub poll: std::time::Duration,
    /// Series per QIDO-RS page.
    pub page_size: usize,
    /// How long a cached volume stays unread before it is removed (zero: no expiry).
    pub cache_expiry: std::time::Duration,
}

/// `KEY=VALUE` items of flag `flag` as pairs.
pub fn key_values(flag: &str, items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| Error::BadRequest(format!("{flag} {kv}: expected KEY=VALUE")))
        })
        .collect()
}

/// `USER:PASSWORD` as a pair.
pub fn credentials(flag: &str, value: Option<&str>) -> Result<Option<(String, String)>> {
    value
        .map(|c| {
            c.split_once(':')
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .ok_or_else(|| Error::BadRequest(format!("{flag}: expected USER:PASSWORD")))
        })
        .transpose()
}

/// The studies folder and the DICOMweb server of `--studies`: a URL's cache folder is
/// `--dicomweb-cache`, or one per URL under `~/.cache/labelhost/dicomweb`.
fn studies(a: &ServeArgs) -> Result<(PathBuf, Option<DicomWebConfig>)> {
    let text = a.studies.to_string_lossy().into_owned();
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Ok((absolute(&a.studies, "--studies")?, None));
    }
    let cache = match &a.dicomweb_cache {
        Some(dir) => absolute(dir, "--dicomweb-cache")?,
        None => {
            let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
            let key = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())[..8]);
            home.join(".cache/labelhost/dicomweb").join(key)
        }
    };
    let config = DicomWebConfig {
        url: text,
        filters: key_values("--dicomweb-filter", &a.dicomweb_filters)?,
        basic: credentials("--dicomweb-credentials", a.dicomweb_credentials.as_deref())?,
        cache_bytes: a.dicomweb_cache_mib.saturating_mul(1 << 20),
        poll: seconds("--dicomweb-poll", a.dicomweb_poll, false, 86_400.0)?,
        page_size: a.dicomweb_page_size.max(1),
        cache_expiry: seconds(
            "--dicomweb-cache-expiry",
            a.dicomweb_cache_expiry,
            true,
            1e9,
        )?,
    };
    Ok((cache, Some(config)))
}

/// A quarter of the machine's memory (`MemTotal`, or 8 GiB where `/proc` has no answer).
fn default_request_memory() -> u64 {
    crate::memory::total_memory() / 4
}

/// A flag's seconds: finite, at most `max`, above 0 (or 0 itself when `zero` is allowed).
fn seconds(flag: &str, t: f64, zero: bool, max: f64) -> Result<std::time::Duration> {
    if t.is_finite() && t <= max && (t > 0.0 || zero && t == 0.0) {
        Ok(std::time::Duration::from_secs_f64(t))
    } else {
        Err(Error::BadRequest(format!(
            "{flag} {t}: expected seconds from 0 to {max}"
        )))
    }
}

/// How long an inference may run: a default and per-task limits.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// The limit of tasks not listed.
    pub default: std::time::Duration,
    /// Per task name.
    pub tasks: BTreeMap<String, std::time::Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            default: std::time::Duration::from_secs(600),
            tasks: BTreeMap::new(),
        }
    }
}

impl Timeouts {
    /// The limit of task `name`.
    pub fn for_task(&self, name: &str) -> std::time::Duration {
        self.tasks.get(name).copied().unwrap_or(self.default)
    }

    fn parse(default: f64, tasks: &[String]) -> Result<Self> {
        let secs = |what: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 86_400.0 {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                Err(Error::BadRequest(format!(
                    "{what}: {v} is not a number of seconds from 0 to 86400"
                )))
            }
        };
        let mut out = Timeouts {
            default: secs("--infer-timeout", default)?,
            tasks: BTreeMap::new(),
        };
        for item in tasks.iter().filter(|s| !s.is_empty()) {
            let bad = || Error::BadRequest(format!("--task-timeout {item}: expected TASK=SECONDS"));
            let (task, v) = item.split_once('=').ok_or_else(bad)?;
            let v: f64 = v.trim().parse().map_err(|_| bad())?;
            out.tasks
                .insert(task.trim().to_owned(), secs("--task-timeout", v)?);
        }
        Ok(out)
    }
}

/// `--conf KEY=VALUE` flags as settings (empty items, from a trailing comma, ignored).
pub fn parse_conf(flags: &[String]) -> Result<BTreeMap<String, String>> {
    let mut conf = BTreeMap::new();
    for kv in flags.iter().filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::BadRequest(format!("--conf {kv}: expected KEY=VALUE")))?;
        conf.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(conf)
}

fn absolute(p: &std::path::Path, what: &str) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::BadRequest(format!("{what} {}: {e}", p.display())))
}

impl TryFrom<&ServeArgs> for ServerConfig {
    type Error = Error;

    fn try_from(a: &ServeArgs) -> Result<Self> {
        let plugins = absolute(&a.plugins, "--plugins")?;
        if !plugins.is_dir() {
            return Err(Error::BadRequest(format!(
                "--plugins {} is not a folder",
                plugins.display()
            )));
        }
        let conf = parse_conf(&a.conf)?;
        let (studies, dicomweb) = studies(a)?;
        let runtime_dir = match &a.runtime_dir {
            Some(d) => Some(absolute(d, "--runtime-dir")?),
            None => None,
        };
        Ok(ServerConfig {
            plugins,
            studies,
            dicomweb,
            cluster: cluster(a)?,
            host: a.host,
            port: a.port,
            conf,
            runtime_dir,
            queue_capacity: a.queue_capacity,
            device_workers: a.device_workers,
            cudnn_benchmark: a.cudnn_benchmark,
            generic_ops: a.generic_ops,
            datastore_poll_ms: a.datastore_poll_ms.max(50),
            claim_seconds: a.claim_seconds,
            max_voxels: a.max_voxels,
            access: crate::api::Access {
                cors_origins: crate::api::Access::parse_origins(&a.cors_origins)
                    .map_err(Error::BadRequest)?,
                share_paths: a.share_paths,
                auth: match &a.auth_config {
                    Some(path) => Some(std::sync::Arc::new(
                        crate::auth::AuthConfig::load(path).map_err(Error::BadRequest)?,
                    )),
                    None => None,
                },
                loopback_only: a.host.is_loopback(),
            },
            timeouts: Timeouts::parse(a.infer_timeout, &a.task_timeouts)?,
            request_memory: match a.request_memory_mib {
                Some(mib) => mib.saturating_mul(1 << 20),
                None => default_request_memory(),
            },
            warm_heap: seconds("--warm-heap", a.warm_heap, true, 86_400.0)?,
            max_abandoned: a.max_abandoned.max(1),
            max_libraries: a.max_libraries,
            follow_symlinks: a.follow_symlinks,
            connections: crate::serve::ConnLimits {
                max_connections: a.max_connections.max(1),
                header_timeout: seconds("--header-timeout", a.header_timeout, false, 3600.0)?,
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{Cli, Command, ServerConfig};
    use clap::Parser;

    /// The server's settings from `serve` flags over two empty folders.
    fn config(flags: &[&str]) -> Result<ServerConfig, String> {
        let (plugins, studies) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut argv = vec!["labelhost", "serve", "--plugins"];
        argv.push(plugins.path().to_str().unwrap());
        argv.extend(["--studies", studies.path().to_str().unwrap()]);
        argv.extend(flags);
        let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not serve");
        };
        ServerConfig::try_from(&*args).map_err(|e| e.to_string())
    }

    #[test]
    fn cudnn_timing_is_off_unless_asked_for() {
        let on = |flags: &[&str]| config(flags).map(|c| c.cudnn_benchmark);
        assert_eq!(on(&[]), Ok(false));
        assert_eq!(on(&["--cudnn-benchmark"]), Ok(true));
    }

    #[test]
    fn warm_heap_takes_seconds_up_to_a_day() {
        let secs = |flags: &[&str]| config(flags).map(|c| c.warm_heap.as_secs_f64());
        assert_eq!(secs(&[]), Ok(30.0));
        assert_eq!(secs(&["--warm-heap", "0"]), Ok(0.0));
        assert_eq!(secs(&["--warm-heap", "2.5"]), Ok(2.5));
        for bad in ["-1", "86401", "inf", "NaN"] {
            let e = secs(&[&format!("--warm-heap={bad}")]).unwrap_err();
            assert!(e.contains("--warm-heap"), "{bad}: {e}");
        }
    }
}
