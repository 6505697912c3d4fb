//! The host services each app generation receives across the ABI: the shared datastore,
//! its executor scope, its bundle, work and model folders, configuration, logging and job
//! progress.

mod datastore;

pub use datastore::DatastoreService;

use crate::{
    datastore::LocalDatastore,
    executor::{ExecutorScope, TorchExecutor},
};
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, ROption, RStr, RString},
};
use labelhost_plugin_api::abi::{
    self, DatastoreBox, Datastore_TO, ErrorCode, ExecutorBox, Executor_TO, HostBox, Host_TO,
    LogLevel, PluginError, PluginResult,
};
use std::{
    collections::BTreeMap,
    panic::{catch_unwind, AssertUnwindSafe},
    path::PathBuf,
    sync::Arc,
};

/// Runs host code called from a plugin, turning a panic into an error: a panic must not
/// unwind through the plugin's frames (abi_stable would abort the process).
pub(crate) fn host_guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> PluginResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(e),
        Err(_) => RErr(PluginError::new(
            ErrorCode::SERVER_ERROR,
            "host service panicked",
        )),
    }
}

/// Runs host code called from a plugin whose ABI method cannot return an error: a panic
/// is logged and answered with `fallback()` instead of unwinding into the plugin (which
/// would abort the process).
pub(crate) fn shielded<T>(what: &str, fallback: impl FnOnce() -> T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::error!("host service {what} panicked; answered with an empty value");
        fallback()
    })
}

/// What the host shares with every app.
#[derive(Clone)]
pub struct Shared {
    /// The studies datastore.
    pub datastore: Arc<LocalDatastore>,
    /// The LibTorch executor.
    pub executor: Arc<TorchExecutor>,
    /// `--conf KEY=VALUE` settings.
    pub conf: Arc<BTreeMap<String, String>>,
    /// Background job records (progress and stop requests reach plugins through them).
    pub jobs: Arc<crate::jobs::Jobs>,
    /// The store several hosts share (`--cluster`), once connected.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Shared {
    /// The shared services over a studies datastore; job records are kept in its
    /// `.labelhost/jobs.json`.
    pub fn new(
        datastore: LocalDatastore,
        executor: Arc<TorchExecutor>,
        conf: BTreeMap<String, String>,
    ) -> Self {
        Self::new_with_cluster(datastore, executor, conf, None)
    }

    /// [`Shared::new`], joined to the hosts sharing `cluster` when there is one: then this
    /// host's job records are kept in `.labelhost/jobs.<host>.json` (hosts over one
    /// studies folder must not write one file), and the cluster is reachable from the
    /// routes.
    pub fn new_with_cluster(
        datastore: LocalDatastore,
        executor: Arc<TorchExecutor>,
        conf: BTreeMap<String, String>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> Self {
        let file = match &cluster {
            None => "jobs.json".to_owned(),
            Some(cluster) => {
                let safe: String = cluster
                    .host()
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("jobs.{safe}.json")
            }
        };
        let file = datastore.root().join(".labelhost").join(file);
        Shared {
            datastore: Arc::new(datastore),
            executor,
            conf: Arc::new(conf),
            jobs: Arc::new(crate::jobs::Jobs::open_file(file)),
            cluster,
        }
    }

    /// The model folder of app `app`: `<studies>/.labelhost/models/<app>`.
    pub fn model_dir_of(&self, app: &str) -> std::path::PathBuf {
        let root = self.datastore.root().join(".labelhost");
        root.join("models").join(app)
    }
}

/// One app generation's services.
pub struct HostContext {
    app: String,
    shared: Shared,
    scope: Arc<ExecutorScope>,
    bundle_dir: PathBuf,
    work_dir: PathBuf,
    /// `<studies>/.labelhost/models/<app>`, made on first use ("" if it cannot be).
    model_dir: std::sync::OnceLock<RString>,
}

impl HostContext {
    /// Services for app `app`, whose staged bundle is `bundle_dir`.
    pub fn new(app: &str, shared: Shared, bundle_dir: PathBuf, work_dir: PathBuf) -> Self {
        let scope = Arc::new(ExecutorScope::new(shared.executor.clone()));
        HostContext {
            app: app.to_owned(),
            shared,
            scope,
            bundle_dir,
            work_dir,
            model_dir: std::sync::OnceLock::new(),
        }
    }

    /// The executor scope (to report its live handles).
    pub fn scope(&self) -> &Arc<ExecutorScope> {
        &self.scope
    }

    /// Boxes a copy for the plugin.
    pub fn into_abi(self) -> HostBox {
        Host_TO::from_value(self, TD_Opaque)
    }
}

impl abi::Host for HostContext {
    // Constructing the boxes allocates and cannot panic short of an allocation failure
    // (which aborts regardless); every other method is guarded.
    fn datastore(&self) -> DatastoreBox {
        Datastore_TO::from_value(DatastoreService(self.shared.datastore.clone()), TD_Opaque)
    }

    fn executor(&self) -> ExecutorBox {
        let handle = crate::executor::scope_handle(self.scope.clone());
        Executor_TO::from_value(handle, TD_Opaque)
    }

    fn bundle_dir(&self) -> RString {
        shielded("bundle_dir", RString::new, || {
            self.bundle_dir.to_string_lossy().as_ref().into()
        })
    }

    fn work_dir(&self) -> RString {
        shielded("work_dir", RString::new, || {
            self.work_dir.to_string_lossy().as_ref().into()
        })
    }

    fn conf(&self, key: RStr<'_>) -> ROption<RString> {
        shielded(
            "conf",
            || ROption::RNone,
            || {
                self.shared
                    .conf
                    .get(key.as_str())
                    .map(|v| RString::from(v.as_str()))
                    .into()
            },
        )
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) -> PluginResult<()> {
        host_guard(|| {
            let (app, msg) = (self.app.as_str(), message.as_str());
            match level {
                LogLevel::ERROR => tracing::error!(app, "{msg}"),
                LogLevel::WARN => tracing::warn!(app, "{msg}"),
                LogLevel::INFO => tracing::info!(app, "{msg}"),
                _ => tracing::debug!(app, "{msg}"),
            }
            Ok(())
        })
    }

    fn model_dir(&self) -> RString {
        shielded("model_dir", RString::new, || {
            self.model_dir
                .get_or_init(|| {
                    let dir = self.shared.model_dir_of(&self.app);
                    match std::fs::create_dir_all(&dir) {
                        Ok(()) => dir.to_string_lossy().as_ref().into(),
                        Err(e) => {
                            tracing::warn!(app = %self.app, "model dir {}: {e}", dir.display());
                            RString::new()
                        }
                    }
                })
                .clone()
        })
    }

    fn job_progress(&self, job: RStr<'_>, progress: RStr<'_>) -> PluginResult<bool> {
        host_guard(|| {
            let progress: serde_json::Value =
                serde_json::from_str(progress.as_str()).map_err(|e| {
                    PluginError::new(ErrorCode::INVALID_INPUT, format!("progress: {e}"))
                })?;
            Ok(self.shared.jobs.progress(job.as_str(), progress))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{host_guard, shielded};
    use labelhost_plugin_api::abi::{ErrorCode, PluginError};

    #[test]
    fn a_host_panic_becomes_an_error_or_the_fallback_never_an_unwind() {
        let r = host_guard::<u8>(|| panic!("boom"));
        let e = r.into_result().expect_err("an error");
        assert_eq!(e.code, ErrorCode::SERVER_ERROR);
        let r = host_guard(|| Err::<u8, _>(PluginError::new(ErrorCode::NOT_FOUND, "x")));
        assert_eq!(
            r.into_result().expect_err("passed on").code,
            ErrorCode::NOT_FOUND
        );
        assert_eq!(shielded("t", || 7, || panic!("boom")), 7);
        assert_eq!(shielded("t", || 7, || 3), 3);
    }
}
