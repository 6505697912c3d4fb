//! Apps run in process, without the HTTP front: the one-off `labelhost infer` and the
//! plugin authors' test support (`labelhost-test-support`) call an app's tasks with the
//! same requests the server sends, over the same host services.

use crate::{
    datastore::LocalDatastore,
    executor::TorchExecutor,
    services::{HostContext, Shared},
    Error, Result,
};
use abi_stable::std_types::RStr;
use labelhost_plugin_api::abi::{AppBox, HostBox, PluginResult, TaskKind};
use serde_json::{json, Map, Value};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

/// The host services over a studies folder: its datastore, a fresh executor (CUDA device
/// 0 when present, else the CPU) and `conf` settings.
pub fn shared(studies: &Path, conf: BTreeMap<String, String>) -> Result<Shared> {
    let datastore = LocalDatastore::open(studies)?;
    Ok(Shared::new(datastore, Arc::new(TorchExecutor::new()), conf))
}

/// What an infer task answered.
#[derive(Debug, Clone)]
pub struct Inferred {
    /// The result JSON (`label_names`, `latencies`, task extras).
    pub params: Value,
    /// The result file the task wrote, if any (in the app's work folder).
    pub label: Option<PathBuf>,
}

/// One app constructed in process.
pub struct LocalApp {
    name: String,
    app: AppBox,
    work_dir: PathBuf,
}

impl LocalApp {
    /// Constructs app `name` with services over `shared`: assets come from `bundle_dir`,
    /// results go to `work_dir` (made if missing). `new_app` is the plugin's constructor:
    /// a loaded library's root-module entry, or the SDK's adapter for an app linked in.
    pub fn construct(
        name: &str,
        shared: &Shared,
        bundle_dir: &Path,
        work_dir: &Path,
        new_app: impl FnOnce(HostBox) -> PluginResult<AppBox>,
    ) -> Result<Self> {
        std::fs::create_dir_all(work_dir)
            .map_err(|e| Error::Internal(format!("{}: {e}", work_dir.display())))?;
        let ctx = HostContext::new(
            name,
            shared.clone(),
            bundle_dir.to_path_buf(),
            work_dir.to_path_buf(),
        );
        let app = new_app(ctx.into_abi())
            .into_result()
            .map_err(|e| Error::PluginLoad(format!("app '{name}' failed to initialise: {e}")))?;
        Ok(LocalApp {
            name: name.to_owned(),
            app,
            work_dir: work_dir.to_path_buf(),
        })
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The app's ABI object (for calls this type does not wrap).
    pub fn abi(&self) -> &AppBox {
        &self.app
    }

    /// The names of the app's tasks of one kind.
    pub fn task_names(&self, kind: TaskKind) -> Vec<String> {
        task_names(&self.app, kind)
    }

    /// Runs infer task `task` on the image file `image` with MONAI Label params.
    pub fn infer(&self, task: &str, image: &Path, params: Map<String, Value>) -> Result<Inferred> {
        let out = infer(&self.app, task, image, params)?;
        if let Some(label) = &out.label {
            let real = std::fs::canonicalize(label).map_err(|e| {
                Error::Internal(format!("'{task}' answered {}: {e}", label.display()))
            })?;
            let work = std::fs::canonicalize(&self.work_dir).unwrap_or_default();
            if !real.starts_with(&work) {
                return Err(Error::Internal(format!(
                    "'{task}' wrote its result outside the work folder: {}",
                    real.display()
                )));
            }
        }
        Ok(out)
    }

    /// Runs train task `trainer` to the end; answers its train stats.
    pub fn train(&self, trainer: &str, request: Map<String, Value>) -> Result<Value> {
        let mut request = request;
        request.insert("model".into(), json!(trainer));
        self.call(trainer, request, |app, name, text| app.train(name, text))
    }

    /// Asks strategy `strategy` for the next image: `{"id": ...}`, or `{}` when none is left.
    pub fn next_sample(&self, strategy: &str, request: Map<String, Value>) -> Result<Value> {
        self.call(strategy, request, |app, name, text| {
            app.next_sample(name, text)
        })
    }

    /// Runs scoring method `method`; answers its JSON.
    pub fn scoring(&self, method: &str, request: Map<String, Value>) -> Result<Value> {
        self.call(method, request, |app, name, text| app.scoring(name, text))
    }

    /// Calls task `name` of the app with `request` as JSON text; its JSON answer.
    fn call(
        &self,
        name: &str,
        request: Map<String, Value>,
        method: impl FnOnce(&AppBox, RStr<'_>, RStr<'_>) -> PluginResult<abi_stable::std_types::RString>,
    ) -> Result<Value> {
        let text = Value::Object(request).to_string();
        let out = method(&self.app, RStr::from(name), RStr::from(text.as_str())).into_result()?;
        parse(name, out.as_str())
    }

    /// Tells the app a label was saved (what `PUT /datastore/label` does after saving).
    pub fn on_save_label(&self, image_id: &str, label_id: &str) -> Result<Value> {
        let out = self
            .app
            .on_save_label(RStr::from(image_id), RStr::from(label_id))
            .into_result()?;
        parse("on_save_label", out.as_str())
    }
}

impl Drop for LocalApp {
    fn drop(&mut self) {
        // What the server does when a generation's last request is done.
        let _ = self.app.on_retire();
    }
}

/// The names of `app`'s tasks of one kind.
pub fn task_names(app: &AppBox, kind: TaskKind) -> Vec<String> {
    app.tasks()
        .into_iter()
        .filter(|t| t.kind == kind)
        .map(|t| t.name.into_string())
        .collect()
}

/// Runs infer task `task` of `app` on `image` with `params`, as `POST /infer` does (the
/// request names the image's absolute path and the task).
pub fn infer(
    app: &AppBox,
    task: &str,
    image: &Path,
    params: Map<String, Value>,
) -> Result<Inferred> {
    let image = std::path::absolute(image)
        .map_err(|e| Error::BadRequest(format!("{}: {e}", image.display())))?;
    let mut params = params;
    params.insert("image".into(), json!(image));
    params.insert("model".into(), json!(task));
    let text = Value::Object(params).to_string();
    let out = app
        .infer(RStr::from(task), RStr::from(text.as_str()))
        .into_result()?;
    Ok(Inferred {
        params: parse(task, out.params_json.as_str())?,
        label: out
            .label_path
            .into_option()
            .map(|p| PathBuf::from(p.as_str())),
    })
}

fn parse(task: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::Internal(format!("'{task}' returned bad JSON: {e}")))
}
