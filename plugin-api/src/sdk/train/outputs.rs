//! What a run leaves behind: MONAI Label's output layout under the model dir, atomic
//! copies and JSON files, durations as MONAI Label writes them, the running best metric.

use super::{BasicTrainTask, TrainRequest};
use crate::sdk::{error::Result, host::Host};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `H:MM:SS`, as MONAI Label writes durations.
pub(super) fn hms(secs: f64) -> String {
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
        if self.value.is_none_or(|b| v > b) {
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
