//! What a training run is told: the task's [`TrainSettings`] (MONAI's `BasicTrainTask`
//! constructor arguments) and the request's [`TrainRequest`] (MONAI Label's train request
//! over the task's defaults).

use crate::sdk::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// MONAI's `BasicTrainTask` arguments. Paths left `None` take MONAI Label's layout under
/// the app's model dir: `<model_dir>/<trainer>/<name>/` for checkpoints and stats,
/// `<model_dir>/<trainer>.pt` for the published model.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    /// Where this trainer's outputs go (default: the host's model dir for the app).
    pub model_dir: Option<PathBuf>,
    /// Mixed precision on CUDA (ignored on the CPU).
    pub amp: bool,
    /// Weights to start from when `pretrained` is true (default: the published model,
    /// else the network file).
    pub load_path: Option<PathBuf>,
    /// A TorchScript file whose parameters of matching name and shape are copied in after
    /// loading (MONAI's `load_dict`); with `load_strict` every parameter must match.
    pub load_dict: Option<PathBuf>,
    /// Where the best model is published (default `<model_dir>/<trainer>.pt`, which the
    /// infer task of the same name serves).
    pub publish_path: Option<PathBuf>,
    /// Where the train stats are copied (default `<model_dir>/<trainer>_stats.json`).
    pub stats_path: Option<PathBuf>,
    /// Every this many epochs the trainer's checkpoint is written.
    pub train_save_interval: u64,
    /// Validate every this many epochs (a request's `val_interval` overrides it).
    pub val_interval: u64,
    /// How many periodic checkpoints to keep.
    pub n_saved: usize,
    /// The last weights, written when the run ends.
    pub final_filename: String,
    /// The best weights by the key metric.
    pub key_metric_filename: String,
    /// MONAI's checkpoint dict key; TorchScript files hold the module itself, so it is only
    /// recorded in the stats.
    pub model_dict_key: String,
    /// For distributed training (not used by a single-process run).
    pub find_unused_parameters: bool,
    /// `load_dict` must match every parameter.
    pub load_strict: bool,
    /// MONAI's meta-tensor tracking switch (labelhost's tensors carry no metadata).
    pub disable_meta_tracking: bool,
    /// Experiment tracking: only `None` (the stats file and job records) is supported.
    pub tracking: Option<String>,
    /// Memory for pre-processed cases; cases beyond it are re-read when sampled.
    pub cache_bytes: usize,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            model_dir: None,
            amp: true,
            load_path: None,
            load_dict: None,
            publish_path: None,
            stats_path: None,
            train_save_interval: 20,
            val_interval: 1,
            n_saved: 5,
            final_filename: "checkpoint_final.pt".into(),
            key_metric_filename: "model.pt".into(),
            model_dict_key: "model".into(),
            find_unused_parameters: false,
            load_strict: false,
            disable_meta_tracking: false,
            tracking: None,
            cache_bytes: 512 << 20,
        }
    }
}

/// MONAI Label's default train config (what `/info/` shows for a `BasicTrainTask`).
pub(super) fn monai_defaults() -> Map<String, Value> {
    let v = json!({
        "name": "train_01", "pretrained": true, "device": ["", "cuda", "cpu"],
        "max_epochs": 50, "early_stop_patience": -1, "val_split": 0.2,
        "train_batch_size": 1, "val_batch_size": 1, "multi_gpu": false, "gpus": "all",
        "dataset": ["CacheDataset"], "dataloader": ["ThreadDataLoader"], "tracking": ["None"],
    });
    v.as_object().cloned().unwrap_or_default()
}

/// A train request, parsed over the task's defaults (a list default is a choice whose
/// first element applies).
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// The trainer (and the infer task it publishes to).
    pub trainer: String,
    /// The run's name (`train_01`): its outputs go to `<model_dir>/<trainer>/<name>/`.
    pub name: String,
    /// Start from the published (or `load_path`) weights; `false` starts from the network
    /// file with freshly drawn weights.
    pub pretrained: bool,
    /// Device (`""` = the executor's default).
    pub device: String,
    /// Epochs to run.
    pub max_epochs: u64,
    /// Validations without improvement before stopping early (`<= 0`: never).
    pub early_stop_patience: i64,
    /// Fraction of labelled cases kept for validation.
    pub val_split: f64,
    /// Patches per training step.
    pub train_batch_size: usize,
    /// Volumes per validation step (validation runs one volume at a time).
    pub val_batch_size: usize,
    /// Validate every this many epochs.
    pub val_interval: u64,
    /// Mixed precision (CUDA only).
    pub amp: bool,
    /// Learning rate override.
    pub lr: Option<f64>,
    /// Seed of the split, the sampling and a fresh initialisation.
    pub seed: u64,
    /// Stop after this many iterations in all (labelhost's extra; none by default).
    pub max_iterations: Option<u64>,
    /// The host's job id, for progress reports and stop requests.
    pub job: Option<String>,
    /// Everything the request held, over the defaults (task-specific keys too).
    pub raw: Map<String, Value>,
}

fn choice(v: &Value) -> &Value {
    match v {
        Value::Array(a) if !a.is_empty() => &a[0],
        other => other,
    }
}

impl TrainRequest {
    /// `request` over `defaults`; wrong types are refused naming the parameter.
    pub fn parse(defaults: &Map<String, Value>, request: &Map<String, Value>) -> Result<Self> {
        let mut raw = defaults.clone();
        for (k, v) in request {
            raw.insert(k.clone(), v.clone());
        }
        let get = |k: &str| raw.get(k).map(choice);
        let bad = |k: &str, want: &str| Error::invalid_input(format!("{k} must be {want}"));
        let uint = |k: &str, d: u64| -> Result<u64> {
            get(k).map_or(Ok(d), |v| {
                v.as_u64().ok_or_else(|| bad(k, "a whole number >= 0"))
            })
        };
        let text = |k: &str, d: &str| -> Result<String> {
            get(k).map_or(Ok(d.to_owned()), |v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(k, "a string"))
            })
        };
        let flag = |k: &str, d: bool| -> Result<bool> {
            get(k).map_or(Ok(d), |v| {
                v.as_bool().ok_or_else(|| bad(k, "true or false"))
            })
        };
        let val_split = get("val_split").map_or(Ok(0.2), |v| {
            v.as_f64()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or_else(|| bad("val_split", "a number in [0, 1]"))
        })?;
        let positive = |k: &str, d: u64| -> Result<u64> {
            let n = uint(k, d)?;
            if n == 0 {
                return Err(bad(k, "at least 1"));
            }
            Ok(n)
        };
        let name = text("name", "train_01")?;
        // It names a folder: one plain path component.
        let plain = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
        if name.is_empty() || name.starts_with('.') || !name.chars().all(plain) {
            return Err(bad(
                "name",
                "letters, digits, '_', '-' or '.' (not leading)",
            ));
        }
        Ok(TrainRequest {
            trainer: text("model", "")?,
            name,
            pretrained: flag("pretrained", true)?,
            device: text("device", "")?,
            max_epochs: positive("max_epochs", 50)?,
            early_stop_patience: get("early_stop_patience").map_or(Ok(-1), |v| {
                v.as_i64()
                    .ok_or_else(|| bad("early_stop_patience", "a whole number"))
            })?,
            val_split,
            train_batch_size: positive("train_batch_size", 1)? as usize,
            val_batch_size: positive("val_batch_size", 1)? as usize,
            val_interval: positive("val_interval", 1)?,
            amp: flag("amp", true)?,
            lr: match get("lr") {
                None => None,
                Some(v) => Some(
                    v.as_f64()
                        .filter(|x| *x > 0.0)
                        .ok_or_else(|| bad("lr", "a number > 0"))?,
                ),
            },
            seed: uint("seed", 0)?,
            max_iterations: match get("max_iterations") {
                None => None,
                Some(_) => Some(positive("max_iterations", 1)?),
            },
            job: get("_job").and_then(Value::as_str).map(str::to_owned),
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fill_from_defaults_and_refuse_bad_types() {
        let mut defaults = monai_defaults();
        defaults.insert("max_epochs".into(), json!(75));
        let req = json!({"model": "brain_unet", "pretrained": false, "train_batch_size": 2,
            "_job": "j1"});
        let r = TrainRequest::parse(&defaults, req.as_object().expect("object")).expect("ok");
        assert_eq!(
            (r.trainer.as_str(), r.max_epochs, r.train_batch_size),
            ("brain_unet", 75, 2)
        );
        assert!(!r.pretrained);
        assert_eq!(
            r.device, "",
            "a list default is a choice: its first element"
        );
        assert_eq!(r.job.as_deref(), Some("j1"));
        let sneaky = json!({"name": "../../etc"});
        let e = TrainRequest::parse(&defaults, sneaky.as_object().expect("object"));
        assert!(e.expect_err("refused").message.starts_with("name must be"));
        let bad = json!({"max_epochs": "many"});
        let e =
            TrainRequest::parse(&defaults, bad.as_object().expect("object")).expect_err("refused");
        assert!(e.message.contains("max_epochs"), "{}", e.message);
    }
}
