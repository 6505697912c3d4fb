//! MONAI's `SlidingWindowInferer` as a pipeline's inferer: the working image as a batch of
//! one, a TorchScript model run window by window on the executor, the first item's output
//! as the prediction.

use super::data::Data;
use crate::sdk::{
    error::{Error, Result},
    tasks::Request,
};
use serde_json::{json, Value};
use std::path::Path;

/// Sliding-window parameters for `roi` from a request's MONAI Label keys: `sw_batch_size`
/// (2; 1 to 64), `sw_overlap` (0.25; at least 0, below 1), `sw_mode` (`gaussian` or
/// `constant`); autocast where the device is CUDA. A value of another type or out of range
/// is `INVALID_INPUT` naming the key. (The executor also refuses more than its window
/// limit: too small a `roi_size` with too high an overlap.)
pub fn sliding_window_params(request: &Request, roi: [i64; 3]) -> Result<Value> {
    let bad = |key: &str, want: &str| {
        Error::invalid_input(format!(
            "{key} must be {want}, not {}",
            request.get(key).unwrap_or(&Value::Null)
        ))
    };
    let given = |key: &str| request.get(key).filter(|v| !v.is_null());
    let batch = match given("sw_batch_size") {
        None => 2,
        Some(v) => v
            .as_u64()
            .filter(|b| (1..=64).contains(b))
            .ok_or_else(|| bad("sw_batch_size", "a whole number from 1 to 64"))?,
    };
    let overlap = match given("sw_overlap") {
        None => 0.25,
        Some(v) => v
            .as_f64()
            .filter(|o| (0.0..1.0).contains(o))
            .ok_or_else(|| bad("sw_overlap", "a number from 0 up to (not including) 1"))?,
    };
    let mode = match given("sw_mode") {
        None => "gaussian",
        Some(v) => v
            .as_str()
            .filter(|m| matches!(*m, "gaussian" | "constant"))
            .ok_or_else(|| bad("sw_mode", "gaussian or constant"))?,
    };
    Ok(json!({
        "roi_size": roi,
        "sw_batch_size": batch,
        "overlap": overlap,
        "mode": mode,
        "amp": true,
    }))
}

/// Runs `model` over `data.tensor` (`[C, D, H, W]`: the image, then any guidance channels)
/// by sliding window; sets `data.pred` (`[C', D, H, W]`).
pub fn sliding_window_inferer(d: &mut Data, model: &Path, params: &Value) -> Result<()> {
    const WHO: &str = "SlidingWindowInferer";
    let model = d.exec.load_model(model, &d.device)?;
    let [a, b, c] = d.spatial_shape(WHO)?;
    let batch = d.exec.op1(
        "reshape",
        d.tensor(WHO)?,
        &json!({"shape": [1, -1, a, b, c]}),
    )?;
    let logits = d.exec.sliding_window(model, &batch, params)?;
    d.pred = Some(
        d.exec
            .op1("select", &logits, &json!({"dim": 0, "index": 0}))?,
    );
    Ok(())
}
