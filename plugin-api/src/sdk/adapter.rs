//! Turns an SDK [`App`] into the ABI's app object; every call is panic-guarded here.

use super::{
    error::{Error, Result},
    host::Host,
    tasks::{App, InferResult, Request, Tasks},
};
use crate::abi::{
    self, AppBox, ErrorCode, HostBox, InferOutput, InferType, Manifest, PluginError, PluginResult,
    TaskInfo, TaskKind,
};
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, ROption, RStr, RString, RVec},
};
use serde_json::{json, Map, Value};
use std::{
    any::Any,
    mem::ManuallyDrop,
    panic::{catch_unwind, AssertUnwindSafe},
    time::Instant,
};

/// Runs `f`, turning a panic into a `PLUGIN_PANIC` error instead of letting it reach the
/// FFI boundary (where abi_stable would abort the whole server).
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> PluginResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => ROk(value),
        Ok(Err(error)) => RErr(error.into()),
        Err(payload) => RErr(PluginError::new(
            ErrorCode::PLUGIN_PANIC,
            format!("{what} panicked: {}", panic_message(payload.as_ref())),
        )),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

fn parse_request(text: RStr<'_>) -> Result<Request> {
    match serde_json::from_str(text.as_str())? {
        Value::Object(map) => Ok(map),
        _ => Err(Error::invalid_input("the request must be a JSON object")),
    }
}

fn unknown(kind: &str, name: &str) -> Error {
    Error::invalid_input(format!("this app has no {kind} named '{name}'"))
}

/// The ABI app object wrapping an SDK app and its tasks.
pub struct AppAdapter<A: App> {
    app: ManuallyDrop<A>,
    tasks: ManuallyDrop<Tasks>,
    host: Host,
}

/// The host drops the app object through the ABI; a panic in the app's or a task's `Drop`
/// must not unwind there either.
impl<A: App> Drop for AppAdapter<A> {
    fn drop(&mut self) {
        let (app, tasks) = (&mut self.app, &mut self.tasks);
        // SAFETY: each field is dropped exactly once, here, and never used afterwards.
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
            ManuallyDrop::drop(tasks);
            ManuallyDrop::drop(app);
        }));
        if dropped.is_err() {
            eprintln!(
                "labelhost plugin {}: a panic while dropping the app was caught",
                A::NAME
            );
        }
    }
}

impl<A: App> AppAdapter<A> {
    /// The manifest for the plugin's root module (`export_app!` passes the crate's metadata).
    pub fn manifest(version: &str, description: &str) -> Manifest {
        Manifest {
            name: A::NAME.into(),
            version: version.into(),
            plugin_api: abi::ABI_VERSION.into(),
            description: description.into(),
            labels: A::LABELS.iter().map(|l| RString::from(*l)).collect(),
        }
    }

    /// Constructs the app with the host's services (the root module's `new_app`).
    pub fn construct(host: HostBox) -> PluginResult<AppBox> {
        guard("app construction", || {
            let host = Host::from_abi(host);
            let app = A::new(&host)?;
            let tasks = app.tasks();
            Ok(abi::App_TO::from_value(
                AppAdapter {
                    app: ManuallyDrop::new(app),
                    tasks: ManuallyDrop::new(tasks),
                    host,
                },
                TD_Opaque,
            ))
        })
    }

    fn run_infer(&self, model: &str, request: &Request) -> Result<InferResult> {
        let task = self
            .tasks
            .infers
            .get(model)
            .ok_or_else(|| unknown("model", model))?;
        let started = Instant::now();
        let mut result = task.infer(&self.host, request)?;
        let params = &mut result.params;
        if !params.contains_key("label_names") {
            params.insert("label_names".into(), task.info().labels);
        }
        params.entry("centroids").or_insert_with(|| json!({}));
        let latencies = params.entry("latencies").or_insert_with(|| json!({}));
        if let Value::Object(lat) = latencies {
            lat.entry("total")
                .or_insert_with(|| json!(started.elapsed().as_secs_f64()));
        }
        Ok(result)
    }

    fn batch(&self, request: &Request) -> Result<Value> {
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid_input("batch_infer needs a 'model'"))?;
        let store = self.host.datastore();
        let mut images = match request.get("images").unwrap_or(&json!("all")) {
            Value::String(s) if s == "all" => store.list_images(),
            Value::String(s) if s == "labeled" => store.labeled_images(),
            Value::String(s) if s == "unlabeled" => store.unlabeled_images(),
            Value::Array(ids) => ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            other => return Err(Error::invalid_input(format!("bad 'images': {other}"))),
        };
        images.sort();
        let max = request
            .get("max_batch_size")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        if max > 0 {
            images.truncate(max);
        }
        let tag = request
            .get("label_tag")
            .and_then(Value::as_str)
            .unwrap_or("original");
        let save = request
            .get("save_label")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let mut out = Map::new();
        for id in images {
            let one = self.batch_one(&store, model, &id, request, tag, save);
            out.insert(id, one.unwrap_or_else(|_| json!({})));
        }
        Ok(Value::Object(out))
    }

    fn batch_one(
        &self,
        store: &super::host::Datastore,
        model: &str,
        id: &str,
        request: &Request,
        tag: &str,
        save: bool,
    ) -> Result<Value> {
        let mut req = request.clone();
        req.insert(
            "image".into(),
            json!(store.image_uri(id)?.to_string_lossy()),
        );
        let result = self.run_infer(model, &req)?;
        let mut label = Value::Null;
        if let (Some(file), true) = (&result.label, save) {
            let info = json!({"model": model, "params": Value::Object(result.params.clone())});
            let info = info.as_object().cloned().unwrap_or_default();
            label = json!(store.save_label(id, file, tag, &info)?);
        }
        Ok(json!({"label": label, "tag": tag, "params": Value::Object(result.params)}))
    }
}

fn task_info(kind: TaskKind, name: &str, infer_type: InferType, info: Value) -> TaskInfo {
    TaskInfo {
        kind,
        name: name.into(),
        infer_type,
        info_json: info.to_string().into(),
    }
}

impl<A: App> abi::App for AppAdapter<A> {
    fn info(&self) -> PluginResult<RString> {
        guard("info", || {
            Ok(json!({"labels": A::LABELS}).to_string().into())
        })
    }

    fn tasks(&self) -> RVec<TaskInfo> {
        let listed = guard("tasks", || {
            let t = &self.tasks;
            let mut out = Vec::new();
            for (name, task) in &t.infers {
                let i = task.info();
                let mut info = json!({"type": i.infer_type.as_str(), "labels": i.labels,
                    "dimension": i.dimension, "description": i.description, "config": i.config});
                if let Some(path) = task.model_path() {
                    // Underscored keys are for the host only; `/info/` leaves them out.
                    info["_model_path"] = json!(path.to_string_lossy());
                }
                out.push(task_info(TaskKind::INFER, name, i.infer_type, info));
            }
            for (name, task) in &t.trainers {
                let mut info = json!({"description": task.description(), "config": task.config()});
                if let Some(labels) = task.labels() {
                    info["labels"] = labels;
                }
                out.push(task_info(TaskKind::TRAIN, name, InferType::OTHERS, info));
            }
            for (name, s) in &t.strategies {
                let info = json!({"description": s.description()});
                out.push(task_info(TaskKind::STRATEGY, name, InferType::OTHERS, info));
            }
            for (name, s) in &t.scoring {
                let info = json!({"description": s.description()});
                out.push(task_info(TaskKind::SCORING, name, InferType::OTHERS, info));
            }
            Ok(RVec::from(out))
        });
        listed.unwrap_or_default()
    }

    fn infer(&self, model: RStr<'_>, request: RStr<'_>) -> PluginResult<InferOutput> {
        guard("infer", || {
            let result = self.run_infer(model.as_str(), &parse_request(request)?)?;
            let label_path = result
                .label
                .map(|p| RString::from(p.to_string_lossy().as_ref()));
            Ok(InferOutput {
                label_path: ROption::from(label_path),
                params_json: Value::Object(result.params).to_string().into(),
            })
        })
    }

    fn batch_infer(&self, request: RStr<'_>) -> PluginResult<RString> {
        guard("batch_infer", || {
            Ok(self.batch(&parse_request(request)?)?.to_string().into())
        })
    }

    fn train(&self, trainer: RStr<'_>, request: RStr<'_>) -> PluginResult<RString> {
        guard("train", || {
            let name = trainer.as_str();
            let task = self
                .tasks
                .trainers
                .get(name)
                .ok_or_else(|| unknown("trainer", name))?;
            Ok(task
                .train(&self.host, &parse_request(request)?)?
                .to_string()
                .into())
        })
    }

    fn next_sample(&self, strategy: RStr<'_>, request: RStr<'_>) -> PluginResult<RString> {
        guard("next_sample", || {
            let name = strategy.as_str();
            let s = self
                .tasks
                .strategies
                .get(name)
                .ok_or_else(|| unknown("strategy", name))?;
            let sample = s.next_sample(&self.host, &parse_request(request)?)?;
            Ok(Value::Object(sample.unwrap_or_default()).to_string().into())
        })
    }

    fn scoring(&self, method: RStr<'_>, request: RStr<'_>) -> PluginResult<RString> {
        guard("scoring", || {
            let name = method.as_str();
            let m = self
                .tasks
                .scoring
                .get(name)
                .ok_or_else(|| unknown("scoring method", name))?;
            Ok(m.score(&self.host, &parse_request(request)?)?
                .to_string()
                .into())
        })
    }

    fn on_save_label(&self, image_id: RStr<'_>, label_id: RStr<'_>) -> PluginResult<RString> {
        guard("on_save_label", || {
            let v = self
                .app
                .on_save_label(&self.host, image_id.as_str(), label_id.as_str())?;
            Ok(v.to_string().into())
        })
    }

    #[cfg(not(feature = "abi-1-0"))]
    fn on_retire(&self) -> PluginResult<()> {
        guard("on_retire", || {
            self.app.on_retire();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::guard;
    use crate::abi::ErrorCode;
    use crate::sdk::Error;

    #[test]
    fn a_panic_becomes_a_plugin_panic_error() {
        let r = guard::<()>("infer", || panic!("boom {}", 7));
        let e = r.into_result().expect_err("must be an error");
        assert_eq!(e.code, ErrorCode::PLUGIN_PANIC);
        assert_eq!(e.message.as_str(), "infer panicked: boom 7");
    }

    #[test]
    fn errors_and_values_pass_through() {
        let e = guard::<()>("x", || Err(Error::invalid_input("bad"))).into_result();
        assert_eq!(e.expect_err("error").code, ErrorCode::INVALID_INPUT);
        assert_eq!(guard("x", || Ok(5)).into_result().ok(), Some(5));
    }
}
