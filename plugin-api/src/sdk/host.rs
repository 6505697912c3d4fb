//! Safe wrappers over the host services: [`Host`], its [`Datastore`] and [`Executor`].

use super::error::{Error, Result};
use crate::abi::{
    DType, DatastoreBox, ErrorCode, ExecutorBox, HostBox, LogLevel, ModelId, TensorData, TensorId,
};
use abi_stable::std_types::{RSlice, RStr, RString, RVec};
use serde_json::{Map, Value};
use std::{path::PathBuf, sync::Arc};

fn ok<T>(r: abi_stable::std_types::RResult<T, crate::abi::PluginError>) -> Result<T> {
    r.into_result().map_err(Error::from)
}

fn object(text: RString) -> Result<Map<String, Value>> {
    match serde_json::from_str(text.as_str())? {
        Value::Object(map) => Ok(map),
        other => Err(Error::app(format!("host returned a non-object: {other}"))),
    }
}

fn strings(v: RVec<RString>) -> Vec<String> {
    v.into_iter().map(RString::into_string).collect()
}

/// The host's services for this app generation. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostBox>,
}

impl Host {
    /// Wraps the trait object the host passed in.
    pub fn from_abi(host: HostBox) -> Self {
        Host {
            inner: Arc::new(host),
        }
    }
    /// The shared datastore.
    pub fn datastore(&self) -> Datastore {
        Datastore {
            inner: Arc::new(self.inner.datastore()),
        }
    }
    /// The shared executor (handles scoped to this generation).
    pub fn executor(&self) -> Executor {
        Executor {
            inner: Arc::new(self.inner.executor()),
        }
    }
    /// This generation's bundle folder.
    pub fn bundle_dir(&self) -> PathBuf {
        PathBuf::from(self.inner.bundle_dir().into_string())
    }
    /// A file of this app's bundle; `NOT_FOUND` when the bundle lacks it.
    pub fn asset(&self, relative: &str) -> Result<PathBuf> {
        let path = self.bundle_dir().join(relative);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::not_found(format!(
                "bundle asset {relative} is missing"
            )))
        }
    }
    /// MONAI Label's model path rule: of these bundle files (pretrained first, then
    /// published), the last that exists wins; `None` when none does.
    pub fn model_path(&self, candidates: &[&str]) -> Option<PathBuf> {
        candidates.iter().rev().find_map(|c| self.asset(c).ok())
    }
    /// A writable folder for results and caches.
    pub fn work_dir(&self) -> PathBuf {
        PathBuf::from(self.inner.work_dir().into_string())
    }
    /// A fresh, unused file path in the work dir for a result (`stem-<pid>-<n><ext>`).
    pub fn result_path(&self, stem: &str, ext: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.work_dir()
            .join(format!("{stem}-{}-{n}{ext}", std::process::id()))
    }
    /// A `--conf KEY=VALUE` value.
    pub fn conf(&self, key: &str) -> Option<String> {
        self.inner
            .conf(RStr::from(key))
            .into_option()
            .map(RString::into_string)
    }
    /// This app's persistent model folder (published weights, checkpoints, train stats),
    /// kept across restarts and hot swaps; the work dir under a host older than 1.2.
    pub fn model_dir(&self) -> PathBuf {
        #[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
        {
            let dir = self.inner.model_dir().into_string();
            if !dir.is_empty() {
                return PathBuf::from(dir);
            }
        }
        self.work_dir()
    }
    /// A model published by this app's trainer `name` (`<model_dir>/<name>.pt`), if any.
    pub fn published_model(&self, name: &str) -> Option<PathBuf> {
        let path = self.model_dir().join(format!("{name}.pt"));
        path.is_file().then_some(path)
    }
    /// Reports a running job's progress; `false` once the job was stopped (always `true`
    /// outside a job or under a host older than 1.2).
    pub fn job_progress(&self, job: Option<&str>, progress: &Value) -> bool {
        #[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
        if let Some(job) = job {
            let text = progress.to_string();
            return ok(self
                .inner
                .job_progress(RStr::from(job), RStr::from(text.as_str())))
            .unwrap_or(true);
        }
        let _ = (job, progress);
        true
    }
    /// Logs through the host (ignored by a host too old to take plugin logs).
    pub fn log(&self, level: LogLevel, message: &str) {
        #[cfg(not(feature = "abi-1-0"))]
        let _ = self.inner.log(level, RStr::from(message));
        #[cfg(feature = "abi-1-0")]
        let _ = (level, message);
    }
}

/// The shared studies datastore.
#[derive(Clone)]
pub struct Datastore {
    inner: Arc<DatastoreBox>,
}

impl Datastore {
    /// Every image id.
    pub fn list_images(&self) -> Vec<String> {
        strings(self.inner.list_images())
    }
    /// Images with a `final` label.
    pub fn labeled_images(&self) -> Vec<String> {
        strings(self.inner.get_labeled_images())
    }
    /// Images without a `final` label.
    pub fn unlabeled_images(&self) -> Vec<String> {
        strings(self.inner.get_unlabeled_images())
    }
    /// An image's absolute path.
    pub fn image_uri(&self, image_id: &str) -> Result<PathBuf> {
        ok(self.inner.get_image_uri(image_id.into())).map(|s| PathBuf::from(s.into_string()))
    }
    /// An image's info dict.
    pub fn image_info(&self, image_id: &str) -> Result<Map<String, Value>> {
        object(ok(self.inner.get_image_info(image_id.into()))?)
    }
    /// Merges keys into an image's info.
    pub fn update_image_info(&self, image_id: &str, info: &Map<String, Value>) -> Result<()> {
        let text = Value::Object(info.clone()).to_string();
        ok(self
            .inner
            .update_image_info(image_id.into(), RStr::from(text.as_str())))
    }
    /// The label id of an image for a tag.
    pub fn label_by_image_id(&self, image_id: &str, tag: &str) -> Option<String> {
        self.inner
            .get_label_by_image_id(image_id.into(), tag.into())
            .into_option()
            .map(RString::into_string)
    }
    /// A label's absolute path.
    pub fn label_uri(&self, label_id: &str, tag: &str) -> Result<PathBuf> {
        ok(self.inner.get_label_uri(label_id.into(), tag.into()))
            .map(|s| PathBuf::from(s.into_string()))
    }
    /// A label's info dict.
    pub fn label_info(&self, label_id: &str, tag: &str) -> Result<Map<String, Value>> {
        object(ok(self.inner.get_label_info(label_id.into(), tag.into()))?)
    }
    /// Merges keys into a label's info.
    pub fn update_label_info(
        &self,
        label_id: &str,
        tag: &str,
        info: &Map<String, Value>,
    ) -> Result<()> {
        let text = Value::Object(info.clone()).to_string();
        ok(self
            .inner
            .update_label_info(label_id.into(), tag.into(), RStr::from(text.as_str())))
    }
    /// Copies `file` in as the `tag` label of `image_id`; returns the label id.
    pub fn save_label(
        &self,
        image_id: &str,
        file: &std::path::Path,
        tag: &str,
        info: &Map<String, Value>,
    ) -> Result<String> {
        let file = file.to_string_lossy();
        let text = Value::Object(info.clone()).to_string();
        ok(self.inner.save_label(
            image_id.into(),
            RStr::from(file.as_ref()),
            tag.into(),
            RStr::from(text.as_str()),
        ))
        .map(RString::into_string)
    }
    /// `{"total", "completed", "label_tags"}`.
    pub fn status(&self) -> Result<Map<String, Value>> {
        object(self.inner.status())
    }
    /// The raw trait object, for the methods not wrapped here.
    pub fn raw(&self) -> &DatastoreBox {
        &self.inner
    }
}

/// The shared LibTorch executor.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<ExecutorBox>,
}

/// A tensor held by the executor; released when dropped.
pub struct Tensor {
    id: TensorId,
    exec: Executor,
}

/// A TorchScript model loaded by the executor.
#[derive(Clone, Copy, Debug)]
pub struct Model(ModelId);

impl Executor {
    /// Devices, default first.
    pub fn devices(&self) -> Vec<String> {
        strings(self.inner.devices())
    }
    /// Loads a TorchScript model (`device` "" = default).
    pub fn load_model(&self, path: &std::path::Path, device: &str) -> Result<Model> {
        let path = path.to_string_lossy();
        ok(self
            .inner
            .load_model(RStr::from(path.as_ref()), device.into()))
        .map(Model)
    }
    /// (1.2) Loads a TorchScript model in a precision: `auto` (one of `validated` the CPU
    /// runs natively, else fp32; see the host's README), `fp32`, `bf16` or `fp16`; `validated`
    /// lists the reduced precisions the task checked against fp32. A named precision the
    /// device would emulate, or the task did not validate, is refused (`INVALID_INPUT`).
    /// Answers the handle and the precision it runs in; the model's inputs and outputs
    /// stay f32 to the caller. `auto` on a host without precisions loads fp32.
    #[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
    pub fn load_model_in(
        &self,
        path: &std::path::Path,
        device: &str,
        precision: &str,
        validated: &[&str],
    ) -> Result<(Model, String)> {
        let model = self.load_model(path, device)?;
        if precision.trim().eq_ignore_ascii_case("fp32") {
            return Ok((model, "fp32".into()));
        }
        let args = serde_json::json!({"precision": precision, "allowed": validated}).to_string();
        let answer =
            ok(self
                .inner
                .model_op(model.0, "precision".into(), RStr::from(args.as_str())))
            .and_then(object);
        match answer {
            Ok(map) => {
                let id = map.get("model").and_then(Value::as_u64);
                let name = map.get("precision").and_then(Value::as_str);
                match (id, name) {
                    (Some(id), Some(name)) => Ok((Model(ModelId(id)), name.to_owned())),
                    _ => Err(Error::inference(
                        "the host answered precision without a model",
                    )),
                }
            }
            Err(_) if precision.trim().is_empty() || precision.eq_ignore_ascii_case("auto") => {
                Ok((model, "fp32".into()))
            }
            Err(e) => Err(e),
        }
    }
    /// (1.2) Monte-Carlo dropout: a handle on `model`'s weights in `network`, the same
    /// architecture built with dropout layers (TorchScript), kept in training mode so each
    /// pass drops other units. The host checks the parameter names and shapes match
    /// (`INVALID_INPUT` otherwise); only dropout may differ between the network's training
    /// and evaluation modes (no batch norm). Hosts before this answer `UNSUPPORTED`-style
    /// errors.
    #[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
    pub fn mc_dropout(&self, model: Model, network: &std::path::Path) -> Result<Model> {
        let args = serde_json::json!({ "network": network.to_string_lossy() }).to_string();
        let map = ok(self
            .inner
            .model_op(model.0, "mc_dropout".into(), RStr::from(args.as_str())))
        .and_then(object)?;
        map.get("model")
            .and_then(Value::as_u64)
            .map(|id| Model(ModelId(id)))
            .ok_or_else(|| Error::inference("the host answered mc_dropout without a model"))
    }
    /// Uploads host data as a tensor.
    pub fn tensor(
        &self,
        dtype: DType,
        shape: &[i64],
        bytes: Vec<u8>,
        device: &str,
    ) -> Result<Tensor> {
        let data = TensorData {
            dtype,
            shape: shape.into(),
            bytes: bytes.into(),
        };
        let id = ok(self.inner.tensor_from(data, device.into()))?;
        Ok(Tensor {
            id,
            exec: self.clone(),
        })
    }
    /// Uploads `f32` voxels (row-major for `shape`) as a tensor.
    pub fn tensor_f32(&self, shape: &[i64], values: &[f32], device: &str) -> Result<Tensor> {
        let mut bytes = vec![0u8; values.len() * 4];
        for (out, v) in bytes.chunks_exact_mut(4).zip(values) {
            out.copy_from_slice(&v.to_ne_bytes());
        }
        self.tensor(DType::F32, shape, bytes, device)
    }
    /// Runs a model's forward pass.
    pub fn forward(&self, model: Model, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let ids: Vec<TensorId> = inputs.iter().map(|t| t.id).collect();
        let out = ok(self.inner.forward(model.0, RSlice::from(ids.as_slice())))?;
        Ok(self.wrap(out))
    }
    /// A named tensor operation with JSON arguments.
    pub fn op(&self, name: &str, inputs: &[&Tensor], args: &Value) -> Result<Vec<Tensor>> {
        let ids: Vec<TensorId> = inputs.iter().map(|t| t.id).collect();
        let args = args.to_string();
        let out = ok(self.inner.op(
            name.into(),
            RSlice::from(ids.as_slice()),
            RStr::from(args.as_str()),
        ))?;
        Ok(self.wrap(out))
    }
    /// Runs a typed op ([`crate::ops`]): its name and its arguments as JSON.
    pub fn run<O: crate::ops::Op>(&self, op: &O, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let args = serde_json::to_value(op)
            .map_err(|e| Error::inference(format!("op {}: {e}", O::NAME)))?;
        self.op(O::NAME, inputs, &args)
    }
    /// [`Executor::run`] with one input and one output.
    pub fn run1<O: crate::ops::Op>(&self, op: &O, input: &Tensor) -> Result<Tensor> {
        let args = serde_json::to_value(op)
            .map_err(|e| Error::inference(format!("op {}: {e}", O::NAME)))?;
        self.op1(O::NAME, input, &args)
    }
    /// A named op with one output.
    pub fn op1(&self, name: &str, input: &Tensor, args: &Value) -> Result<Tensor> {
        self.op(name, &[input], args)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::INFERENCE_ERROR,
                    format!("op {name} gave no output"),
                )
            })
    }
    /// Sliding-window inference with JSON parameters.
    pub fn sliding_window(&self, model: Model, input: &Tensor, params: &Value) -> Result<Tensor> {
        let params = params.to_string();
        let id = ok(self
            .inner
            .sliding_window(model.0, input.id, RStr::from(params.as_str())))?;
        Ok(Tensor {
            id,
            exec: self.clone(),
        })
    }
    /// (1.2) Loads a TorchScript module for training with `config` (optimiser, loss,
    /// schedule: see the host's executor docs); released when the handle drops.
    #[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
    pub fn trainable(
        &self,
        path: &std::path::Path,
        device: &str,
        config: &Value,
    ) -> Result<TrainableModel> {
        let path = path.to_string_lossy();
        let config = config.to_string();
        let id = ok(self.inner.trainable(
            RStr::from(path.as_ref()),
            device.into(),
            RStr::from(config.as_str()),
        ))?;
        Ok(TrainableModel {
            model: Model(id),
            exec: self.clone(),
        })
    }
    fn wrap(&self, ids: RVec<TensorId>) -> Vec<Tensor> {
        ids.into_iter()
            .map(|id| Tensor {
                id,
                exec: self.clone(),
            })
            .collect()
    }
}

/// (1.2) A model being trained by the host; its weights serve [`Executor::forward`] and
/// [`Executor::sliding_window`] through [`TrainableModel::model`]. Released on drop.
#[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
pub struct TrainableModel {
    model: Model,
    exec: Executor,
}

#[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
impl TrainableModel {
    /// The handle for inference with the current weights.
    pub fn model(&self) -> Model {
        self.model
    }
    /// One optimisation step; answers `{"loss", "lr", "step"}`.
    pub fn step(&self, inputs: &[&Tensor], targets: &[&Tensor]) -> Result<Map<String, Value>> {
        let ins: Vec<TensorId> = inputs.iter().map(|t| t.id).collect();
        let outs: Vec<TensorId> = targets.iter().map(|t| t.id).collect();
        object(ok(self.exec.inner.train_step(
            self.model.0,
            RSlice::from(ins.as_slice()),
            RSlice::from(outs.as_slice()),
        ))?)
    }
    /// A named model operation (`save`, `info`, `set_lr`).
    pub fn op(&self, name: &str, args: &Value) -> Result<Map<String, Value>> {
        let args = args.to_string();
        object(ok(self.exec.inner.model_op(
            self.model.0,
            name.into(),
            RStr::from(args.as_str()),
        ))?)
    }
    /// Writes the current weights as TorchScript to `path` (atomically).
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        self.op("save", &serde_json::json!({"path": path.to_string_lossy()}))
            .map(drop)
    }
}

#[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
impl Drop for TrainableModel {
    fn drop(&mut self) {
        let _ = self
            .exec
            .inner
            .model_op(self.model.0, "release".into(), RStr::from("{}"));
    }
}

impl Tensor {
    /// Copies the tensor back to host memory.
    pub fn to_data(&self) -> Result<TensorData> {
        ok(self.exec.inner.tensor_to(self.id))
    }
    /// The raw handle.
    pub fn id(&self) -> TensorId {
        self.id
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        self.exec
            .inner
            .release(RSlice::from(std::slice::from_ref(&self.id)));
    }
}

impl Tensor {
    /// The tensor's element type and shape, without copying its elements (the `describe`
    /// op: a few bytes cross the boundary, however big the tensor).
    pub fn describe(&self) -> Result<(DType, Vec<i64>)> {
        let meta = self
            .exec
            .run1(&crate::ops::Describe {}, self)?
            .to_data()?
            .to_i64()?;
        match meta.split_first() {
            Some((&dtype, shape)) => Ok((DType(u32::try_from(dtype).unwrap_or(0)), shape.to_vec())),
            None => Err(Error::new(
                ErrorCode::INFERENCE_ERROR,
                "describe answered nothing",
            )),
        }
    }
    /// The tensor's shape, outermost first (see [`Tensor::describe`]).
    pub fn shape(&self) -> Result<Vec<i64>> {
        self.describe().map(|(_, shape)| shape)
    }
    /// The tensor's element type (see [`Tensor::describe`]).
    pub fn dtype(&self) -> Result<DType> {
        self.describe().map(|(dtype, _)| dtype)
    }
    /// Reads a one-element `f32` tensor (a quantile, a mean).
    pub fn scalar_f32(&self) -> Result<f32> {
        let values = self.to_data()?.to_f32()?;
        match values.as_slice() {
            [v] => Ok(*v),
            _ => Err(Error::new(
                ErrorCode::INFERENCE_ERROR,
                "expected a one-element tensor",
            )),
        }
    }
}

impl TensorData {
    /// Reads the elements as `i64` (only for `I64` data: shapes, boxes).
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        if self.dtype != DType::I64 {
            return Err(Error::new(ErrorCode::INFERENCE_ERROR, "tensor is not i64"));
        }
        Ok(self
            .bytes
            .chunks_exact(8)
            .map(|c| i64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
    /// Reads the elements as `f32` (only for `F32` data).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        if self.dtype != DType::F32 {
            return Err(Error::new(ErrorCode::INFERENCE_ERROR, "tensor is not f32"));
        }
        Ok(self
            .bytes
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}
