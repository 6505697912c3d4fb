//! MONAI's `SlidingWindowInferer` as a pipeline's inferer: the working image as a batch of
//! one, a TorchScript model run window by window on the executor, the first item's output
//! as the prediction.

use super::data::Data;
use crate::sdk::{error::Result, tasks::Request};
use serde_json::{json, Value};
use std::path::Path;

/// Sliding-window parameters for `roi` from a request's MONAI Label keys: `sw_batch_size`
/// (2), `sw_overlap` (0.25), `sw_mode` (`gaussian`); autocast where the device is CUDA.
pub fn sliding_window_params(request: &Request, roi: [i64; 3]) -> Value {
    json!({
        "roi_size": roi,
        "sw_batch_size": request.get("sw_batch_size").and_then(Value::as_u64).unwrap_or(2),
        "overlap": request.get("sw_overlap").and_then(Value::as_f64).unwrap_or(0.25),
        "mode": request.get("sw_mode").and_then(Value::as_str).unwrap_or("gaussian"),
        "amp": true,
    })
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
