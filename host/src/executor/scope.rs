//! One app generation's view of the executor: its tensor and model handles, freed with it.

use super::{train::Trainer, Priority};
use super::{Precision, TorchExecutor};
use crate::services::{host_guard, shielded};
use abi_stable::std_types::{RSlice, RStr, RString, RVec};
use labelhost_plugin_api::abi::{
    self, DType, ErrorCode, ModelId, PluginError, PluginResult, TensorData, TensorId,
};
use serde_json::Value;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};
use tch::{CModule, IValue, Kind, Tensor};

mod dropout;
mod reduced;
use reduced::{cast_in, cast_out};

/// A loaded model handle: the module, its device's name, the file and its precision.
#[derive(Clone)]
struct LoadedModel {
    module: Arc<CModule>,
    device: String,
    path: std::path::PathBuf,
    precision: Precision,
}

/// A tensor behind a handle, and the request account it is charged to (refunded when the
/// handle is released or the generation goes).
struct Kept {
    tensor: Tensor,
    account: Option<Arc<super::cancel::Cancel>>,
    bytes: u64,
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(account) = &self.account {
            account.refund(self.bytes);
        }
    }
}

/// Handles owned by one app generation.
pub struct ExecutorScope {
    exec: Arc<TorchExecutor>,
    next: AtomicU64,
    tensors: Mutex<HashMap<u64, Kept>>,
    models: Mutex<HashMap<u64, LoadedModel>>,
    trainers: Mutex<HashMap<u64, Arc<Mutex<Trainer>>>>,
}

type Res<T> = Result<T, PluginError>;

pub(super) fn err(code: ErrorCode, msg: impl Into<String>) -> PluginError {
    PluginError::new(code, msg)
}

/// A LibTorch failure as a typed error: an allocation the device could not make
/// (`OUT_OF_MEMORY`, answered 503) or a failed computation (`INFERENCE_ERROR`).
pub(super) fn torch(e: tch::TchError) -> PluginError {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let oom = [
        "can't allocate memory",
        "out of memory",
        "CUDA error: out of memory",
    ]
    .iter()
    .any(|s| text.contains(s));
    if oom {
        return err(
            ErrorCode::OUT_OF_MEMORY,
            format!("the device could not allocate what this needs: {first}"),
        );
    }
    err(ErrorCode::INFERENCE_ERROR, format!("libtorch: {e}"))
}

pub(super) fn kind_of(d: DType) -> Res<Kind> {
    Ok(match d {
        DType::U8 => Kind::Uint8,
        DType::I16 => Kind::Int16,
        DType::I32 => Kind::Int,
        DType::I64 => Kind::Int64,
        DType::F32 => Kind::Float,
        DType::F64 => Kind::Double,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        other => {
            return Err(err(
                ErrorCode::INVALID_INPUT,
                format!("unknown dtype {other:?}"),
            ))
        }
    })
}

pub(super) fn dtype_of(k: Kind) -> Res<DType> {
    Ok(match k {
        Kind::Uint8 => DType::U8,
        Kind::Int16 => DType::I16,
        Kind::Int => DType::I32,
        Kind::Int64 => DType::I64,
        Kind::Float => DType::F32,
        Kind::Double => DType::F64,
        Kind::Half => DType::F16,
        Kind::BFloat16 => DType::BF16,
        other => {
            return Err(err(
                ErrorCode::INFERENCE_ERROR,
                format!("unsupported kind {other:?}"),
            ))
        }
    })
}

impl ExecutorScope {
    /// A new, empty scope on the shared executor.
    pub fn new(exec: Arc<TorchExecutor>) -> Self {
        ExecutorScope {
            exec,
            next: AtomicU64::new(1),
            tensors: Mutex::new(HashMap::new()),
            models: Mutex::new(HashMap::new()),
            trainers: Mutex::new(HashMap::new()),
        }
    }

    /// How many models this scope is training.
    pub fn live_trainers(&self) -> usize {
        self.trainers.lock().map_or(0, |t| t.len())
    }

    /// How many tensors this scope holds.
    pub fn live_tensors(&self) -> usize {
        self.tensors.lock().map_or(0, |t| t.len())
    }

    fn id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Keeps `t` behind a new handle, charged to the thread's request (refused past its
    /// memory budget; the tensor is then freed here).
    fn put(&self, t: Tensor) -> Res<TensorId> {
        let bytes = (t.numel() as u64).saturating_mul(t.kind().elt_size_in_bytes() as u64);
        let account = super::cancel::charge(bytes)?;
        let kept = Kept {
            tensor: t,
            account,
            bytes,
        };
        let id = self.id();
        self.tensors
            .lock()
            .map_err(|_| poisoned())?
            .insert(id, kept);
        Ok(TensorId(id))
    }

    /// Keeps every tensor of one call's answer, or none: when one is refused (the
    /// request's budget) those kept before it are let go too, not left behind handles
    /// the plugin never got.
    fn put_all<R: FromIterator<TensorId>>(&self, tensors: Vec<Tensor>) -> Res<R> {
        let mut ids = Vec::with_capacity(tensors.len());
        for t in tensors {
            match self.put(t) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    self.let_go(&ids);
                    return Err(e);
                }
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// Lets go of the tensors behind `ids` (their bytes go back to their request).
    fn let_go<'a>(&self, ids: impl IntoIterator<Item = &'a TensorId>) {
        if let Ok(mut map) = self.tensors.lock() {
            for id in ids {
                map.remove(&id.0);
            }
        }
    }

    fn get(&self, id: TensorId) -> Res<Tensor> {
        let tensors = self.tensors.lock().map_err(|_| poisoned())?;
        tensors
            .get(&id.0)
            .map(|k| k.tensor.shallow_clone())
            .ok_or_else(|| {
                err(
                    ErrorCode::INVALID_INPUT,
                    format!("no tensor with handle {}", id.0),
                )
            })
    }

    fn trainer(&self, id: ModelId) -> Res<Option<Arc<Mutex<Trainer>>>> {
        let trainers = self.trainers.lock().map_err(|_| poisoned())?;
        Ok(trainers.get(&id.0).cloned())
    }

    fn trainable(&self, id: ModelId) -> Res<Arc<Mutex<Trainer>>> {
        self.trainer(id)?.ok_or_else(|| {
            err(
                ErrorCode::INVALID_INPUT,
                format!("no trainable model with handle {}", id.0),
            )
        })
    }

    /// Runs `f` on a model handle's module, precision and device under the device's compute
    /// lock: a loaded model, or a trainable one in eval mode with its current weights
    /// (holding its lock, so no step runs meanwhile).
    fn with_model<T>(
        &self,
        id: ModelId,
        f: impl FnOnce(&CModule, Precision, tch::Device) -> Res<T>,
    ) -> Res<T> {
        if let Some(trainer) = self.trainer(id)? {
            let mut t = trainer.lock().map_err(|_| poisoned())?;
            let (name, on) = (t.device_name.clone(), t.device);
            return self.compute(&name, || f(t.eval_module()?, Precision::Fp32, on));
        }
        let m = self.loaded(id)?;
        let on = self
            .exec
            .device(&m.device)
            .map_err(|e| err(ErrorCode::INVALID_INPUT, e))?;
        self.compute(&m.device, || f(&m.module, m.precision, on))
    }

    fn loaded(&self, id: ModelId) -> Res<LoadedModel> {
        let model = self
            .models
            .lock()
            .map_err(|_| poisoned())?
            .get(&id.0)
            .cloned();
        model.ok_or_else(|| {
            err(
                ErrorCode::INVALID_INPUT,
                format!("no model with handle {}", id.0),
            )
        })
    }

    /// The loaded model `id` (not a trainable one) a model op `op` applies to, and its
    /// device; anything else is the caller's mistake (`INVALID_INPUT`).
    fn loaded_for(&self, op: &str, id: ModelId) -> Res<(LoadedModel, tch::Device)> {
        let m = self.loaded(id).map_err(|_| {
            err(
                ErrorCode::INVALID_INPUT,
                format!("{op} applies to loaded models; {} is not one", id.0),
            )
        })?;
        let device = self
            .exec
            .device(&m.device)
            .map_err(|e| err(ErrorCode::INVALID_INPUT, e))?;
        Ok((m, device))
    }

    /// A handle for `model`: the generation's existing one for the same module in the
    /// same precision (so loading per request does not grow the map), or a new one.
    fn insert_model(&self, model: LoadedModel) -> Res<ModelId> {
        let mut models = self.models.lock().map_err(|_| poisoned())?;
        let same = models
            .iter()
            .find(|(_, m)| Arc::ptr_eq(&m.module, &model.module) && m.precision == model.precision);
        if let Some((id, _)) = same {
            return Ok(ModelId(*id));
        }
        let id = self.id();
        models.insert(id, model);
        Ok(ModelId(id))
    }

    /// A handle on the model at `path` on `device` in `precision` (the executor's cached
    /// module, loaded or cast as needed).
    fn load_as(
        &self,
        path: std::path::PathBuf,
        device: tch::Device,
        precision: Precision,
    ) -> Res<ModelId> {
        let module = self
            .exec
            .model(&path, device, precision)
            .map_err(|m| err(ErrorCode::MODEL_IMPORT_ERROR, m))?;
        self.insert_model(LoadedModel {
            module,
            device: super::device_name(device),
            path,
            precision,
        })
    }

    /// How many model handles this scope holds.
    pub fn live_models(&self) -> usize {
        self.models.lock().map_or(0, |m| m.len())
    }

    /// Runs `f` under the compute lock of `device` (see [`super::DeviceQueue::compute`]).
    /// Refused at once when the thread's request was cancelled (`cancel.rs`).
    fn compute<T>(&self, device: &str, f: impl FnOnce() -> Res<T>) -> Res<T> {
        super::cancel::check()?;
        match self.exec.queue(device) {
            Ok(queue) => queue.compute(f),
            Err(_) => f(),
        }
    }

    fn tensors(&self, ids: RSlice<'_, TensorId>) -> Res<Vec<Tensor>> {
        ids.iter().map(|id| self.get(*id)).collect()
    }

    fn device(&self, name: RStr<'_>) -> Res<tch::Device> {
        self.exec
            .device(name.as_str())
            .map_err(|m| err(ErrorCode::INVALID_INPUT, m))
    }
}

fn poisoned() -> PluginError {
    err(
        ErrorCode::SERVER_ERROR,
        "executor state poisoned by an earlier panic",
    )
}

/// The ABI object handed to plugins (shares the scope).
pub(crate) struct ScopeHandle(pub(crate) Arc<ExecutorScope>);

impl abi::Executor for ScopeHandle {
    fn devices(&self) -> RVec<RString> {
        shielded("devices", RVec::new, || {
            self.0
                .exec
                .devices()
                .into_iter()
                .map(RString::from)
                .collect()
        })
    }

    fn load_model(&self, path: RStr<'_>, device: RStr<'_>) -> PluginResult<ModelId> {
        host_guard(|| {
            let device = self.0.device(device)?;
            self.0
                .load_as(path.as_str().into(), device, Precision::Fp32)
        })
    }

    fn tensor_from(&self, data: TensorData, device: RStr<'_>) -> PluginResult<TensorId> {
        host_guard(|| {
            let kind = kind_of(data.dtype)?;
            let numel: i64 = data.shape.iter().product();
            let want = usize::try_from(numel)
                .ok()
                .zip(data.dtype.size())
                .map(|(n, s)| n * s);
            if data.shape.iter().any(|d| *d < 0) || want != Some(data.bytes.len()) {
                return Err(err(
                    ErrorCode::INVALID_INPUT,
                    "tensor bytes do not match shape and dtype",
                ));
            }
            let t = Tensor::f_from_data_size(&data.bytes, &data.shape, kind).map_err(torch)?;
            let t = t.f_to_device(self.0.device(device)?).map_err(torch)?;
            self.0.put(t)
        })
    }

    fn tensor_to(&self, tensor: TensorId) -> PluginResult<TensorData> {
        host_guard(|| {
            let t = self
                .0
                .get(tensor)?
                .f_to_device(tch::Device::Cpu)
                .map_err(torch)?;
            let t = t.f_contiguous().map_err(torch)?;
            let dtype = dtype_of(t.kind())?;
            let numel = t.numel();
            let mut bytes = vec![0u8; numel * dtype.size().unwrap_or(1)];
            t.f_copy_data_u8(&mut bytes, numel).map_err(torch)?;
            Ok(TensorData {
                dtype,
                shape: t.size().into(),
                bytes: bytes.into(),
            })
        })
    }

    fn forward(
        &self,
        model: ModelId,
        inputs: RSlice<'_, TensorId>,
    ) -> PluginResult<RVec<TensorId>> {
        host_guard(|| {
            let inputs = self.0.tensors(inputs)?;
            let out = self.0.with_model(model, |module, precision, device| {
                let args = inputs
                    .iter()
                    .map(|t| cast_in(t, precision, device).map(IValue::Tensor))
                    .collect::<Res<Vec<_>>>()?;
                tch::no_grad(|| module.forward_is(&args)).map_err(torch)
            })?;
            let tensors = match out {
                IValue::Tensor(t) => vec![t],
                IValue::Tuple(items) | IValue::GenericList(items) => items
                    .into_iter()
                    .filter_map(|v| {
                        if let IValue::Tensor(t) = v {
                            Some(t)
                        } else {
                            None
                        }
                    })
                    .collect(),
                IValue::TensorList(ts) => ts,
                _ => return Err(err(ErrorCode::INFERENCE_ERROR, "model returned no tensor")),
            };
            let outputs = tensors.into_iter().map(cast_out).collect::<Res<Vec<_>>>()?;
            self.0.put_all(outputs)
        })
    }

    fn sliding_window(
        &self,
        model: ModelId,
        input: TensorId,
        params: RStr<'_>,
    ) -> PluginResult<TensorId> {
        host_guard(|| {
            let params: Value = serde_json::from_str(params.as_str()).map_err(|e| {
                err(
                    ErrorCode::INVALID_INPUT,
                    format!("sliding_window params: {e}"),
                )
            })?;
            let x = self.0.get(input)?;
            let out = self.0.with_model(model, |module, precision, device| {
                let x = cast_in(&x, precision, device)?;
                tch::no_grad(|| super::sliding::infer(module, &x, &params))
            })?;
            self.0.put(out)
        })
    }

    fn op(
        &self,
        name: RStr<'_>,
        inputs: RSlice<'_, TensorId>,
        args: RStr<'_>,
    ) -> PluginResult<RVec<TensorId>> {
        host_guard(|| {
            super::cancel::check()?;
            let args: Value = serde_json::from_str(args.as_str())
                .map_err(|e| err(ErrorCode::INVALID_INPUT, format!("op args: {e}")))?;
            let inputs: Vec<Tensor> = inputs
                .iter()
                .map(|id| self.0.get(*id))
                .collect::<Res<_>>()?;
            let out = tch::no_grad(|| super::ops::run(name.as_str(), &inputs, &args))?;
            self.0.put_all(out)
        })
    }

    fn release(&self, tensors: RSlice<'_, TensorId>) {
        shielded("release", || (), || self.0.let_go(tensors.iter()))
    }

    fn trainable(
        &self,
        path: RStr<'_>,
        device: RStr<'_>,
        config: RStr<'_>,
    ) -> PluginResult<ModelId> {
        host_guard(|| {
            let config: Value = serde_json::from_str(config.as_str())
                .map_err(|e| err(ErrorCode::INVALID_INPUT, format!("trainable config: {e}")))?;
            let dev = self.0.device(device)?;
            let name = super::device_name(dev);
            let trainer = Trainer::load(std::path::Path::new(path.as_str()), dev, &name, &config)?;
            let id = self.0.id();
            self.0
                .trainers
                .lock()
                .map_err(|_| poisoned())?
                .insert(id, Arc::new(Mutex::new(trainer)));
            Ok(ModelId(id))
        })
    }

    fn train_step(
        &self,
        model: ModelId,
        inputs: RSlice<'_, TensorId>,
        targets: RSlice<'_, TensorId>,
    ) -> PluginResult<RString> {
        host_guard(|| {
            let trainer = self.0.trainable(model)?;
            let (inputs, targets) = (self.0.tensors(inputs)?, self.0.tensors(targets)?);
            let device = trainer.lock().map_err(|_| poisoned())?.device_name.clone();
            // Wait for the device behind interactive and batch work, one step at a time.
            let _permit = self
                .0
                .exec
                .queue(&device)
                .ok()
                .and_then(|q| q.acquire_blocking(Priority::Training));
            let mut t = trainer.lock().map_err(|_| poisoned())?;
            let step = super::with_priority(Priority::Training, || {
                self.0.compute(&device, || t.step(&inputs, &targets))
            })?;
            Ok(step.to_string().into())
        })
    }

    fn model_op(&self, model: ModelId, name: RStr<'_>, args: RStr<'_>) -> PluginResult<RString> {
        host_guard(|| {
            if name.as_str() == "release" {
                let gone = self
                    .0
                    .trainers
                    .lock()
                    .map_err(|_| poisoned())?
                    .remove(&model.0);
                let gone = gone.is_some()
                    || self
                        .0
                        .models
                        .lock()
                        .map_err(|_| poisoned())?
                        .remove(&model.0)
                        .is_some();
                return Ok(serde_json::json!({"released": gone}).to_string().into());
            }
            let args: Value = serde_json::from_str(args.as_str())
                .map_err(|e| err(ErrorCode::INVALID_INPUT, format!("model_op args: {e}")))?;
            if name.as_str() == "precision" {
                return Ok(self.0.with_precision(model, &args)?.to_string().into());
            }
            if name.as_str() == "mc_dropout" {
                return Ok(self.0.with_dropout(model, &args)?.to_string().into());
            }
            let trainer = self.0.trainable(model)?;
            let mut t = trainer.lock().map_err(|_| poisoned())?;
            Ok(t.op(name.as_str(), &args)?.to_string().into())
        })
    }
}
