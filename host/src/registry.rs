//! The app registry: which generation of which app serves each task, swapped atomically.
//!
//! A request takes an `Arc` of the current snapshot's generation and keeps it to the end,
//! so a hot swap never disturbs it: the old generation is dropped (and its `on_retire`
//! called) when its last request finishes. Its library stays mapped (never dlclosed).

use crate::{
    bundle::{self, StagedBundle},
    loader,
    services::{HostContext, Shared},
    Error, Result,
};
use arc_swap::ArcSwap;
use labelhost_plugin_api::abi::{AppBox, InferType, TaskKind};
use serde_json::Value;
use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{SystemTime, UNIX_EPOCH},
};

/// One task of a loaded app, as `/info/` shows it.
#[derive(Debug, Clone)]
pub struct Task {
    /// Infer, train, strategy or scoring.
    pub kind: TaskKind,
    /// Its name.
    pub name: String,
    /// For infer tasks, the InferType.
    pub infer_type: InferType,
    /// Its `/info/` entry.
    pub info: Value,
}

/// One loaded build of an app.
pub struct AppGeneration {
    /// The app's name.
    pub name: String,
    /// The app's version.
    pub version: String,
    /// The plugin-api version it was built against.
    pub plugin_api: String,
    /// The bundle folder (in the plugins dir) it came from.
    pub bundle: String,
    /// The staged library file that was loaded.
    pub file: PathBuf,
    /// The library's sha256.
    pub sha256: String,
    /// When it was loaded (seconds since the epoch).
    pub loaded_at: u64,
    /// 1 for the first load of this name in this process, +1 per reload.
    pub generation: u64,
    /// Its tasks.
    pub tasks: Vec<Task>,
    /// The plugin's app object.
    pub app: AppBox,
    /// Its handles on the executor (live tensors, models in training).
    pub scope: Arc<crate::executor::ExecutorScope>,
    /// Plugin calls still running whose requests ended (timed out, client gone): their
    /// threads stay busy until the plugin returns (see `api::call`).
    pub abandoned: std::sync::atomic::AtomicUsize,
    /// The folders whose files it may hand the host (its staged bundle, its work dir, its
    /// published models), resolved.
    roots: Vec<PathBuf>,
    /// Removes the staged copy and work dir; declared after `app` so it runs after the
    /// plugin's objects are gone.
    _files: StagedFiles,
}

/// Folders a generation owns on disk, removed when it is dropped (its library file can go
/// too: a mapped file stays valid after unlinking, and its path is never reused).
struct StagedFiles(Vec<PathBuf>);

impl Drop for StagedFiles {
    fn drop(&mut self) {
        for dir in &self.0 {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), "cannot remove: {e}");
            }
        }
    }
}

impl Drop for AppGeneration {
    fn drop(&mut self) {
        tracing::info!(app = %self.name, generation = self.generation, "generation retired");
        // Older plugins lack the hook and answer UNSUPPORTED; either way we go on.
        let _ = self.app.on_retire();
    }
}

/// An immutable view of the loaded apps.
#[derive(Default)]
pub struct Snapshot {
    /// Apps by name.
    pub apps: BTreeMap<String, Arc<AppGeneration>>,
}

impl Snapshot {
    /// The generation that owns task `name` of `kind`.
    pub fn find(&self, kind: TaskKind, name: &str) -> Option<Arc<AppGeneration>> {
        self.apps
            .values()
            .find(|g| g.tasks.iter().any(|t| t.kind == kind && t.name == name))
            .cloned()
    }
}

/// The registry of loaded apps.
pub struct Registry {
    current: ArcSwap<Snapshot>,
    admin: Mutex<HashMap<String, u64>>,
    plugins_dir: PathBuf,
    runtime_dir: PathBuf,
    shared: Shared,
    staged: AtomicU64,
    mapped: AtomicU64,
    /// Libraries loaded, by their file's SHA-256: a reload of an unchanged build reuses
    /// its mapping instead of mapping another copy.
    libraries: Mutex<HashMap<String, loader::PluginLibrary>>,
    /// The most libraries this process maps ([`DEFAULT_MAX_LIBRARIES`] unless set).
    max_libraries: u64,
}

/// How many plugin libraries a process maps by default. None is ever unmapped (a plugin's
/// code may still run in a retiring generation's threads), so each new build of an app
/// costs its code's memory until the server restarts.
pub const DEFAULT_MAX_LIBRARIES: u64 = 64;

fn poisoned() -> Error {
    Error::Internal("registry lock poisoned".into())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn check_bundle_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if plain {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "'{name}' is not a bundle name (letters, digits, - _ .)"
        )))
    }
}

impl Registry {
    /// A registry loading bundles from `plugins_dir`, staging them under `runtime_dir`.
    pub fn new(plugins_dir: &Path, runtime_dir: &Path, shared: Shared) -> Self {
        Registry {
            current: ArcSwap::from_pointee(Snapshot::default()),
            admin: Mutex::new(HashMap::new()),
            plugins_dir: plugins_dir.to_path_buf(),
            runtime_dir: runtime_dir.to_path_buf(),
            shared,
            staged: AtomicU64::new(0),
            mapped: AtomicU64::new(0),
            libraries: Mutex::new(HashMap::new()),
            max_libraries: DEFAULT_MAX_LIBRARIES,
        }
    }

    /// The same registry mapping at most `n` libraries; a load that would map another is
    /// refused with 409.
    pub fn with_max_libraries(mut self, n: u64) -> Self {
        self.max_libraries = n;
        self
    }

    /// The library of a staged bundle: the one already mapped for the same file contents,
    /// else the staged file opened (counted against the cap).
    fn library(&self, staged: &StagedBundle) -> Result<loader::PluginLibrary> {
        let mut libraries = self.libraries.lock().map_err(|_| poisoned())?;
        if let Some(library) = libraries.get(&staged.library_sha256) {
            return Ok(*library);
        }
        let mapped = self.mapped.load(Ordering::Relaxed);
        if mapped >= self.max_libraries {
            return Err(Error::Conflict(format!(
                "{mapped} plugin libraries are mapped, the cap (--max-libraries {}): a new \
                 build is not loaded until the server restarts (which unmaps the old ones)",
                self.max_libraries
            )));
        }
        let library = loader::open(&staged.library).map_err(|e| {
            if e.mapped() {
                self.mapped.fetch_add(1, Ordering::Relaxed);
            }
            Error::PluginLoad(e.to_string())
        })?;
        self.mapped.fetch_add(1, Ordering::Relaxed);
        libraries.insert(staged.library_sha256.clone(), library);
        Ok(library)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Libraries mapped so far (each new build maps one; none is ever unmapped).
    pub fn libraries_mapped(&self) -> u64 {
        self.mapped.load(Ordering::Relaxed)
    }

    /// Loads every bundle in the plugins dir; failures are returned, the rest serve.
    pub fn load_all(&self) -> Vec<(String, Error)> {
        bundle::list(&self.plugins_dir)
            .into_iter()
            .filter_map(|n| self.load(&n).err().map(|e| (n, e)))
            .collect()
    }

    /// Loads bundle `bundle` as a new app; refused if an app of that name is loaded.
    pub fn load(&self, bundle: &str) -> Result<Arc<AppGeneration>> {
        self.install(bundle, None)
    }

    /// Hot-swaps app `name` to the bundle now in its folder. On failure the old
    /// generation keeps serving.
    pub fn reload(&self, name: &str) -> Result<Arc<AppGeneration>> {
        let old = self.snapshot().apps.get(name).cloned();
        let old = old.ok_or_else(|| Error::NotFound(format!("no app named '{name}' is loaded")))?;
        self.install(&old.bundle, Some(name))
    }

    /// Stops routing to app `name`; returns its generation so the caller can wait for it to drain.
    pub fn retire(&self, name: &str) -> Result<std::sync::Weak<AppGeneration>> {
        let admin = self.admin.lock().map_err(|_| poisoned())?;
        let snap = self.snapshot();
        let gone = snap.apps.get(name).cloned();
        let gone =
            gone.ok_or_else(|| Error::NotFound(format!("no app named '{name}' is loaded")))?;
        let mut apps = snap.apps.clone();
        apps.remove(name);
        let previous = self.current.swap(Arc::new(Snapshot { apps }));
        let weak = Arc::downgrade(&gone);
        // An idle generation is dropped here, outside the lock (its drop runs plugin code).
        drop(admin);
        drop((previous, snap, gone));
        Ok(weak)
    }

    fn install(&self, bundle: &str, replacing: Option<&str>) -> Result<Arc<AppGeneration>> {
        check_bundle_name(bundle)?;
        let source = bundle::locate(&self.plugins_dir, bundle)
            .ok_or_else(|| Error::NotFound(format!("no bundle '{bundle}' in the plugins dir")))?;
        let mut counters = self.admin.lock().map_err(|_| poisoned())?;
        let snap = self.snapshot();
        if let Some(old) = replacing {
            if !snap.apps.contains_key(old) {
                return Err(Error::NotFound(format!("no app named '{old}' is loaded")));
            }
        }
        let seq = self.staged.fetch_add(1, Ordering::Relaxed);
        let dest = self
            .runtime_dir
            .join(format!("{bundle}-{}-{seq}", std::process::id()));
        let staged = bundle::stage(&source, &dest)?;
        let files = StagedFiles(vec![staged.dir.clone()]);
        let name = staged.manifest.name.clone();
        match replacing {
            Some(old) if old != name => {
                return Err(Error::PluginLoad(format!(
                    "bundle '{bundle}' now holds app '{name}', not '{old}'"
                )))
            }
            None if snap.apps.contains_key(&name) => {
                return Err(Error::Conflict(format!("app '{name}' is already loaded")))
            }
            _ => {}
        }
        let generation = counters.get(&name).copied().unwrap_or(0) + 1;
        let app = self.build(bundle, staged, files, generation)?;
        check_clashes(&snap, &app)?;
        counters.insert(name.clone(), generation);
        let app = Arc::new(app);
        let mut apps = snap.apps.clone();
        apps.insert(name, app.clone());
        let previous = self.current.swap(Arc::new(Snapshot { apps }));
        // The replaced generation, if idle, is dropped here, outside the lock.
        drop(counters);
        drop((previous, snap));
        Ok(app)
    }

    fn build(
        &self,
        bundle: &str,
        staged: StagedBundle,
        mut files: StagedFiles,
        generation: u64,
    ) -> Result<AppGeneration> {
        let library = self.library(&staged)?;
        let m = library.manifest();
        let bm = &staged.manifest;
        if m.name.as_str() != bm.name
            || m.version.as_str() != bm.version
            || m.plugin_api.as_str() != bm.plugin_api
        {
            return Err(Error::PluginLoad(format!(
                "bundle '{bundle}' manifest says {} {} (plugin-api {}) but its library is {} {} (plugin-api {})",
                bm.name, bm.version, bm.plugin_api, m.name, m.version, m.plugin_api
            )));
        }
        let stem = staged
            .dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let work = self.runtime_dir.join("work").join(stem);
        std::fs::create_dir_all(&work)
            .map_err(|e| Error::Internal(format!("{}: {e}", work.display())))?;
        files.0.push(work.clone());
        let models = self
            .shared
            .datastore
            .root()
            .join(".labelhost/models")
            .join(&bm.name);
        let roots = [&staged.dir, &work]
            .iter()
            .filter_map(|d| std::fs::canonicalize(d).ok())
            .chain(std::iter::once(models))
            .collect();
        let ctx = HostContext::new(&bm.name, self.shared.clone(), staged.dir.clone(), work);
        let scope = ctx.scope().clone();
        let app = (library.module.new_app())(ctx.into_abi())
            .into_result()
            .map_err(|e| {
                Error::PluginLoad(format!("app '{}' failed to initialise: {e}", bm.name))
            })?;
        let tasks = app
            .tasks()
            .into_iter()
            .map(|t| Task {
                kind: t.kind,
                name: t.name.into_string(),
                infer_type: t.infer_type,
                info: serde_json::from_str(t.info_json.as_str()).unwrap_or(Value::Null),
            })
            .collect();
        Ok(AppGeneration {
            name: bm.name.clone(),
            version: bm.version.clone(),
            plugin_api: bm.plugin_api.clone(),
            bundle: bundle.to_owned(),
            file: staged.library,
            sha256: staged.library_sha256,
            loaded_at: now(),
            generation,
            tasks,
            app,
            scope,
            abandoned: Default::default(),
            roots,
            _files: files,
        })
    }
}

impl AppGeneration {
    /// `path` resolved (links followed) when it is a file inside one of the generation's
    /// own folders; a plugin's answer naming any other file (the host would read it, serve
    /// it or delete it) is an error naming the plugin.
    pub fn own_file(&self, path: &std::path::Path) -> Result<PathBuf> {
        let refused = || {
            Error::Internal(format!(
                "app '{}' named a file outside its bundle, work and model folders",
                self.name
            ))
        };
        let real = std::fs::canonicalize(path).map_err(|_| refused())?;
        if real.is_file() && self.roots.iter().any(|root| real.starts_with(root)) {
            Ok(real)
        } else {
            tracing::warn!(app = %self.name, path = %path.display(), "refused a plugin's file");
            Err(refused())
        }
    }
}

fn check_clashes(snap: &Snapshot, new: &AppGeneration) -> Result<()> {
    for other in snap.apps.values().filter(|g| g.name != new.name) {
        for t in &new.tasks {
            if other
                .tasks
                .iter()
                .any(|o| o.kind == t.kind && o.name == t.name)
            {
                return Err(Error::PluginLoad(format!(
                    "app '{}' cannot load: its task '{}' clashes with app '{}'",
                    new.name, t.name, other.name
                )));
            }
        }
    }
    Ok(())
}
