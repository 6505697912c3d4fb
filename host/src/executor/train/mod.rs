//! Training on the shared executor: a TorchScript module whose parameters a LibTorch
//! optimiser updates (Adam, AdamW, SGD with momentum), MONAI's losses (`DiceLoss`,
//! `DiceCELoss`, `CrossEntropyLoss` semantics), a learning-rate schedule, mixed precision
//! with dynamic loss scaling on CUDA, fresh initialisation and atomic TorchScript saves.
//!
//! `config` (JSON, every key optional):
//! `{"optimizer": {"name": "adam"|"adamw"|"sgd", "lr", "weight_decay", "momentum", "nesterov",
//!   "betas": [b1, b2], "eps"},
//!  "loss": {"name": "dice_ce"|"dice"|"ce", "activation": "softmax"|"none",
//!   "include_background", "lambda_dice", "lambda_ce", "smooth_nr", "smooth_dr"},
//!  "lr_scheduler": {"name": "step"|"constant"|"cosine"|"poly", "step_size", "gamma",
//!   "total_steps", "power"},
//!  "amp": bool, "init": "file"|"fresh", "seed": u64}`

mod config;
mod loss;
mod schedule;

use super::scope::{err, torch};
use config::{bad, section, Res};
use labelhost_plugin_api::abi::ErrorCode;
use loss::Loss;
use schedule::{build_optimizer, fresh_init, Schedule};
use serde_json::{json, Value};
use std::path::Path;
use tch::{CModule, COptimizer, Device, IValue, Kind, Tensor};

/// Dynamic loss scaling for fp16 autocast (PyTorch's `GradScaler` rule: halve and skip the
/// step on overflow, double after 2000 clean steps).
#[derive(Debug, Clone)]
struct Scaler {
    scale: f64,
    clean: u32,
}

/// A module being trained, its optimiser and its settings.
pub(crate) struct Trainer {
    module: CModule,
    params: Vec<Tensor>,
    optimizer: COptimizer,
    loss: Loss,
    schedule: Schedule,
    base_lr: f64,
    scaler: Option<Scaler>,
    step: u64,
    skipped: u64,
    /// Labels whose Dice on each training batch `step` reports.
    metric_labels: Vec<i64>,
    /// The device name the work queues know it by.
    pub(crate) device_name: String,
    /// The device its weights live on; inputs and targets are moved there.
    pub(crate) device: Device,
}

impl Trainer {
    /// Loads `path` on `device` and sets it up for training as `config` says.
    pub(crate) fn load(
        path: &Path,
        device: Device,
        device_name: &str,
        config: &Value,
    ) -> Res<Self> {
        if !config.is_object() && !config.is_null() {
            return Err(bad("trainable: config must be a JSON object"));
        }
        let loss = Loss::parse(section(config, "loss")?)?;
        let schedule = Schedule::parse(section(config, "lr_scheduler")?)?;
        let (mut optimizer, base_lr) = build_optimizer(section(config, "optimizer")?)?;
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            err(
                ErrorCode::MODEL_IMPORT_ERROR,
                format!("cannot load TorchScript model {}: {e}", path.display()),
            )
        })?;
        module.f_set_train().map_err(torch)?;
        let named = module.named_parameters().map_err(torch)?;
        let seed = config.get("seed").and_then(Value::as_u64).unwrap_or(0);
        match config.get("init").and_then(Value::as_str).unwrap_or("file") {
            "file" => {}
            "fresh" => fresh_init(&named, seed)?,
            other => return Err(bad(format!("unknown init '{other}' (file, fresh)"))),
        }
        let mut params: Vec<Tensor> = named
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| t.is_floating_point())
            .collect();
        if params.is_empty() {
            return Err(bad(format!(
                "{} has no parameters to train",
                path.display()
            )));
        }
        if !params.iter().any(Tensor::requires_grad) {
            for p in &mut params {
                let _ = p.f_requires_grad_(true).map_err(torch)?;
            }
        }
        params.retain(Tensor::requires_grad);
        for p in &params {
            optimizer.add_parameters(p, 0).map_err(torch)?;
        }
        let amp = config.get("amp").and_then(Value::as_bool).unwrap_or(false);
        let scaler = (amp && device.is_cuda()).then_some(Scaler {
            scale: 65536.0,
            clean: 0,
        });
        Ok(Trainer {
            module,
            params,
            optimizer,
            loss,
            schedule,
            base_lr,
            scaler,
            step: 0,
            skipped: 0,
            metric_labels: config
                .get("labels")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default(),
            device_name: device_name.to_owned(),
            device,
        })
    }

    /// One optimisation step; answers `{"loss", "lr", "step"}`.
    pub(crate) fn step(&mut self, inputs: &[Tensor], targets: &[Tensor]) -> Res<Value> {
        let target = targets
            .first()
            .ok_or_else(|| bad("train_step needs a target tensor"))?
            .f_to_device(self.device)
            .map_err(torch)?;
        self.module.f_set_train().map_err(torch)?;
        self.optimizer.zero_grad().map_err(torch)?;
        let args: Vec<IValue> = inputs
            .iter()
            .map(|t| t.f_to_device(self.device).map(IValue::Tensor))
            .collect::<Result<_, _>>()
            .map_err(torch)?;
        let started = std::time::Instant::now();
        let amp = self.scaler.is_some();
        let out = tch::autocast(amp, || self.module.forward_is(&args)).map_err(torch)?;
        let out = first_tensor(out)?.f_to_kind(Kind::Float).map_err(torch)?;
        let loss = self.loss.compute(&out, &target)?;
        let value = loss.f_double_value(&[]).map_err(torch)?;
        match (&mut self.scaler, value.is_finite()) {
            (None, false) => {
                return Err(err(
                    ErrorCode::APP_TRAIN_FAILED,
                    format!("the loss is {value} at step {}", self.step + 1),
                ))
            }
            // Mixed precision overflowed: skip the step with a smaller scale (GradScaler).
            (Some(scaler), false) => {
                scaler.scale /= 2.0;
                scaler.clean = 0;
                self.skipped += 1;
            }
            (scaler, true) => {
                let skipped =
                    backward_and_step(&loss, &self.optimizer, &self.params, scaler.as_mut())?;
                self.skipped += u64::from(skipped);
            }
        }
        self.step += 1;
        let lr = self.schedule.lr(self.base_lr, self.step);
        self.optimizer.set_learning_rate(lr).map_err(torch)?;
        let mut answer = json!({"loss": value, "lr": lr, "step": self.step,
            "seconds": started.elapsed().as_secs_f64()});
        if !self.metric_labels.is_empty() {
            let dice = tch::no_grad(|| -> Res<Vec<f64>> {
                let pred = out.f_argmax(1, false).map_err(torch)?;
                let args = json!({"labels": self.metric_labels});
                let d = super::ops::dice(&pred, &target, &args)?;
                Ok(Vec::<f32>::try_from(&d)
                    .map_err(torch)?
                    .into_iter()
                    .map(f64::from)
                    .collect())
            })?;
            answer["dice"] = json!(dice);
        }
        Ok(answer)
    }

    /// The module in eval mode, for inference with the current weights.
    pub(crate) fn eval_module(&mut self) -> Res<&CModule> {
        self.module.f_set_eval().map_err(torch)?;
        Ok(&self.module)
    }

    /// `save`, `info`, `set_lr`.
    pub(crate) fn op(&mut self, name: &str, args: &Value) -> Res<Value> {
        match name {
            "save" => {
                let path = args
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("save needs a 'path'"))?;
                self.save(Path::new(path))?;
                Ok(json!({"path": path}))
            }
            "set_lr" => {
                let lr = args
                    .get("lr")
                    .and_then(Value::as_f64)
                    .filter(|l| *l > 0.0)
                    .ok_or_else(|| bad("set_lr needs 'lr' > 0"))?;
                self.base_lr = lr;
                let now = self.schedule.lr(lr, self.step);
                self.optimizer.set_learning_rate(now).map_err(torch)?;
                Ok(json!({"lr": now}))
            }
            "load_weights" => {
                let path = args
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("load_weights needs a 'path'"))?;
                let strict = args.get("strict").and_then(Value::as_bool).unwrap_or(false);
                self.load_weights(Path::new(path), strict)
            }
            "info" => Ok(json!({
                "step": self.step,
                "lr": self.schedule.lr(self.base_lr, self.step),
                "parameters": self.params.iter().map(Tensor::numel).sum::<usize>(),
                "tensors": self.params.len(),
                "amp": self.scaler.is_some(),
                "skipped_steps": self.skipped,
                "device": self.device_name,
            })),
            other => Err(err(
                ErrorCode::UNSUPPORTED,
                format!("unknown model op '{other}' (save, info, set_lr, load_weights, release)"),
            )),
        }
    }

    /// MONAI's `load_dict`: copies the parameters of another TorchScript file whose name and
    /// shape match; with `strict`, every parameter must match.
    fn load_weights(&mut self, path: &Path, strict: bool) -> Res<Value> {
        let other = CModule::load_on_device(path, tch::Device::Cpu).map_err(|e| {
            err(
                ErrorCode::MODEL_IMPORT_ERROR,
                format!("{}: {e}", path.display()),
            )
        })?;
        let theirs: std::collections::HashMap<String, Tensor> = other
            .named_parameters()
            .map_err(torch)?
            .into_iter()
            .collect();
        let mine = self.module.named_parameters().map_err(torch)?;
        let mut copied = 0;
        tch::no_grad(|| -> Res<()> {
            for (name, p) in &mine {
                match theirs.get(name) {
                    Some(t) if t.size() == p.size() => {
                        let mut p = p.shallow_clone();
                        p.f_copy_(t).map_err(torch)?;
                        copied += 1;
                    }
                    _ if strict => {
                        return Err(bad(format!(
                            "load_dict: {name} has no match in {}",
                            path.display()
                        )))
                    }
                    _ => {}
                }
            }
            Ok(())
        })?;
        Ok(json!({"copied": copied, "parameters": mine.len()}))
    }

    /// Writes the module as TorchScript (eval mode) next to `path`, then renames it there,
    /// so a reader never sees half a file.
    fn save(&mut self, path: &Path) -> Res<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| err(ErrorCode::SERVER_ERROR, format!("{}: {e}", dir.display())))?;
        }
        let file = path
            .file_name()
            .ok_or_else(|| bad("save: the path has no file name"))?;
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_file_name(format!(
            ".{}.{}-{n}.tmp",
            file.to_string_lossy(),
            std::process::id()
        ));
        self.module.f_set_eval().map_err(torch)?;
        self.module.save(&tmp).map_err(torch)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(ErrorCode::SERVER_ERROR, format!("{}: {e}", path.display()))
        })
    }
}

/// Backward and optimiser step, through the loss scaler when there is one; `true` when
/// the scaler skipped the step (inf or NaN gradients).
fn backward_and_step(
    loss: &Tensor,
    optimizer: &COptimizer,
    params: &[Tensor],
    scaler: Option<&mut Scaler>,
) -> Res<bool> {
    let Some(scaler) = scaler else {
        loss.f_backward().map_err(torch)?;
        optimizer.step().map_err(torch)?;
        return Ok(false);
    };
    loss.f_mul_scalar(scaler.scale)
        .and_then(|l| l.f_backward())
        .map_err(torch)?;
    if !tch::no_grad(|| unscale(params, scaler.scale))? {
        scaler.scale /= 2.0;
        scaler.clean = 0;
        return Ok(true);
    }
    optimizer.step().map_err(torch)?;
    scaler.clean += 1;
    if scaler.clean >= 2000 {
        scaler.scale *= 2.0;
        scaler.clean = 0;
    }
    Ok(false)
}

/// Divides every gradient by `scale`; `false` when one holds an inf or NaN.
fn unscale(params: &[Tensor], scale: f64) -> Res<bool> {
    let mut finite = true;
    for p in params {
        let mut g = p.f_grad().map_err(torch)?;
        if !g.defined() {
            continue;
        }
        let _ = g.f_div_scalar_(scale).map_err(torch)?;
        let ok = g
            .f_isfinite()
            .and_then(|t| t.f_all())
            .and_then(|t| t.f_int64_value(&[]))
            .map_err(torch)?;
        finite &= ok != 0;
    }
    Ok(finite)
}

/// The first tensor of a model's output.
pub(crate) fn first_tensor(out: IValue) -> Res<Tensor> {
    match out {
        IValue::Tensor(t) => Ok(t),
        IValue::Tuple(mut items) | IValue::GenericList(mut items) if !items.is_empty() => {
            match items.remove(0) {
                IValue::Tensor(t) => Ok(t),
                _ => Err(err(
                    ErrorCode::INFERENCE_ERROR,
                    "the model's first output is not a tensor",
                )),
            }
        }
        IValue::TensorList(mut ts) if !ts.is_empty() => Ok(ts.remove(0)),
        _ => Err(err(
            ErrorCode::INFERENCE_ERROR,
            "the model returned no tensor",
        )),
    }
}
