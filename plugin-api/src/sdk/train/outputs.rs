//! What a run leaves behind: MONAI Label's output layout under the model dir, atomic
//! copies and JSON files, durations as MONAI Label writes them, the running best metric.

use super::{BasicTrainTask, TrainRequest};
use crate::sdk::{error::Result, host::Host};
use serde_json::{json, Map, Value};
use std::{
    path::{Path, PathBuf},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

/// `H:MM:SS`, as MONAI Label writes durations.
fn hms(secs: f64) -> String {
    let s = secs as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Where a run writes.
pub(super) struct Paths {
    pub(super) output: PathBuf,
    pub(super) publish: PathBuf,
    pub(super) stats: PathBuf,
}

pub(super) fn paths<T: BasicTrainTask>(task: &T, host: &Host, req: &TrainRequest) -> Result<Paths> {
    let s = task.settings();
    let model_dir = s.model_dir.clone().unwrap_or_else(|| host.model_dir());
    let output = model_dir.join(&req.trainer).join(&req.name);
    std::fs::create_dir_all(&output)?;
    Ok(Paths {
        publish: s
            .publish_path
            .clone()
            .unwrap_or_else(|| model_dir.join(format!("{}.pt", req.trainer))),
        stats: s
            .stats_path
            .clone()
            .unwrap_or_else(|| model_dir.join(format!("{}_stats.json", req.trainer))),
        output,
    })
}

/// Copies a file atomically (temp file in the same folder, then rename).
pub(super) fn publish_copy(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension(format!("pt.{}.tmp", std::process::id()));
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(())
}

pub(super) fn write_json(path: &Path, v: &Value) -> Result<()> {
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Running best of a metric.
#[derive(Default, Clone, Copy)]
pub(super) struct Best {
    pub(super) value: Option<f64>,
    pub(super) epoch: u64,
}

impl Best {
    pub(super) fn offer(&mut self, v: f64, epoch: u64) -> bool {
        if v.is_finite() && self.value.is_none_or(|b| v > b) {
            *self = Best {
                value: Some(v),
                epoch,
            };
            return true;
        }
        false
    }
    pub(super) fn json(&self) -> Value {
        json!(self.value.unwrap_or(-1.0))
    }
}

/// Where a run stands, reported as MONAI Label's train stats.
pub(super) struct Progress {
    pub(super) epoch: u64,
    pub(super) iteration: u64,
    /// The last epoch's training metrics.
    pub(super) train: Map<String, Value>,
    /// The last validation's metrics.
    pub(super) eval: Map<String, Value>,
    pub(super) best_train: Best,
    pub(super) best_val: Best,
    started: Instant,
    start_ts: u64,
    total_epochs: u64,
    total_iterations: u64,
    train_key: String,
    val_key: String,
}

impl Progress {
    pub(super) fn new(
        total_epochs: u64,
        total_iterations: u64,
        train_key: String,
        val_key: String,
    ) -> Self {
        Progress {
            epoch: 0,
            iteration: 0,
            train: Map::new(),
            eval: Map::new(),
            best_train: Best::default(),
            best_val: Best::default(),
            started: Instant::now(),
            start_ts: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            total_epochs,
            total_iterations,
            train_key,
            val_key,
        }
    }

    /// MONAI Label's `train_stats`; `done` reports `total_time` instead of `current_time`.
    pub(super) fn stats(&self, done: bool) -> Value {
        let (bt, bv) = (self.best_train, self.best_val);
        let best = if bv.value.is_some() { bv } else { bt };
        let mut s = json!({
            "rank": 0, "current_epoch": self.epoch, "current_iteration": self.iteration,
            "total_epochs": self.total_epochs, "total_iterations": self.total_iterations,
            "epoch": self.epoch, "start_ts": self.start_ts,
            "best_metric": best.json(), "best_metric_epoch": best.epoch,
            "train": {"metrics": self.train, "key_metric_name": self.train_key,
                "best_metric": bt.json(), "best_metric_epoch": bt.epoch},
            "eval": {"metrics": self.eval, "key_metric_name": self.val_key,
                "best_metric": bv.json(), "best_metric_epoch": bv.epoch},
        });
        s[if done { "total_time" } else { "current_time" }] =
            json!(hms(self.started.elapsed().as_secs_f64()));
        s
    }
}
