//! Sliding-window inference with MONAI's `SlidingWindowInferer` semantics: pad an image
//! smaller than the ROI (split evenly, MONAI's order), windows at MONAI's
//! `dense_patch_slices` starts, batches of `sw_batch_size` windows, `constant` or
//! `gaussian` blending (MONAI's `compute_importance_map`: σ = `sigma_scale` · ROI, centred at
//! `(n - 1) / 2`, floored at 1e-3), crop the padding away. Everything stays
//! on the input's device; with `amp` on a CUDA device the model runs under autocast.

use super::scope::{err, torch};
use labelhost_plugin_api::abi::{ErrorCode, PluginError};
use serde_json::Value;
use tch::{CModule, Device, IValue, Kind, Tensor};

type Res<T> = Result<T, PluginError>;

/// The most windows one call may run (a 512³ volume in 64³ windows at overlap 0.5 is
/// 3,375): beyond it, too small a `roi_size` with too high an overlap would hold a device
/// for hours.
pub(super) const MAX_WINDOWS: usize = 20_000;

/// The most voxels one batch of windows may hold (`sw_batch_size` × the ROI's voxels):
/// two 256³ windows. Memory grows with it (and the network's activations with that).
pub(super) const MAX_BATCH_VOXELS: i64 = 2 << 24;

/// Parsed `params` of a sliding-window call.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Params {
    roi: [i64; 3],
    overlap: f64,
    batch: usize,
    gaussian: bool,
    sigma_scale: f64,
    padding_mode: String,
    cval: f64,
    amp: bool,
}

fn bad(msg: impl Into<String>) -> PluginError {
    err(ErrorCode::INVALID_INPUT, msg)
}

impl Params {
    pub(super) fn parse(v: &Value) -> Res<Self> {
        let roi: Vec<i64> = v
            .get("roi_size")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        let roi = <[i64; 3]>::try_from(roi)
            .map_err(|_| bad("sliding_window needs roi_size: [d, h, w]"))?;
        let overlap = v.get("overlap").and_then(Value::as_f64).unwrap_or(0.25);
        let batch = v.get("sw_batch_size").and_then(Value::as_u64).unwrap_or(1);
        let mode = v.get("mode").and_then(Value::as_str).unwrap_or("constant");
        let padding_mode = v
            .get("padding_mode")
            .and_then(Value::as_str)
            .unwrap_or("constant");
        if roi.iter().any(|r| *r <= 0)
            || !(0.0..1.0).contains(&overlap)
            || batch == 0
            || batch > 1024
        {
            return Err(bad(
                "sliding_window: roi_size > 0, 0 <= overlap < 1, 1 <= sw_batch_size <= 1024",
            ));
        }
        let voxels = roi
            .iter()
            .try_fold(batch as i64, |a, &r| a.checked_mul(r))
            .unwrap_or(i64::MAX);
        if voxels > MAX_BATCH_VOXELS {
            return Err(bad(format!(
                "sliding_window: sw_batch_size {batch} × roi_size {roi:?} is {voxels} voxels \
                 per batch, over the limit of {MAX_BATCH_VOXELS}: use a smaller roi_size or \
                 sw_batch_size"
            )));
        }
        if !matches!(mode, "constant" | "gaussian") {
            return Err(bad(format!(
                "sliding_window: mode '{mode}' is not constant or gaussian"
            )));
        }
        if !matches!(
            padding_mode,
            "constant" | "reflect" | "replicate" | "circular"
        ) {
            return Err(bad(format!(
                "sliding_window: unknown padding_mode '{padding_mode}'"
            )));
        }
        Ok(Params {
            roi,
            overlap,
            batch: batch as usize,
            gaussian: mode == "gaussian",
            sigma_scale: v
                .get("sigma_scale")
                .and_then(Value::as_f64)
                .unwrap_or(0.125),
            padding_mode: padding_mode.to_owned(),
            cval: v.get("cval").and_then(Value::as_f64).unwrap_or(0.0),
            amp: v.get("amp") == Some(&Value::Bool(true)),
        })
    }
}

/// Window starts along one axis (MONAI's `dense_patch_slices`).
pub(super) fn starts(size: i64, roi: i64, overlap: f64) -> Vec<i64> {
    let interval = if roi == size {
        roi
    } else {
        ((roi as f64 * (1.0 - overlap)) as i64).max(1)
    };
    let mut count = 1;
    while (count - 1) * interval + roi < size {
        count += 1;
    }
    (0..count)
        .map(|i| (i * interval).min(size - roi).max(0))
        .collect()
}

/// The blending weights of one window, `[1, 1, d, h, w]`.
fn importance(p: &Params, device: Device) -> Res<Tensor> {
    if !p.gaussian {
        return Tensor::f_ones(p.roi, (Kind::Float, device))
            .and_then(|t| t.f_reshape([1, 1, p.roi[0], p.roi[1], p.roi[2]]))
            .map_err(torch);
    }
    // MONAI's compute_importance_map: a sampled gaussian centred at (n - 1) / 2 on each axis,
    // their product, weights floored at max(smallest, 1e-3).
    let axis = |n: i64| -> Res<Tensor> {
        let sigma = (n as f64 * p.sigma_scale).max(1e-6);
        let centre = (n - 1) as f64 / 2.0;
        let x = Tensor::f_arange(n, (Kind::Float, device)).map_err(torch)?;
        x.f_sub_scalar(centre)
            .and_then(|t| t.f_square())
            .and_then(|t| t.f_div_scalar(-2.0 * sigma * sigma))
            .and_then(|t| t.f_exp())
            .map_err(torch)
    };
    let (a, b, c) = (axis(p.roi[0])?, axis(p.roi[1])?, axis(p.roi[2])?);
    let map = a
        .f_reshape([-1, 1, 1])
        .and_then(|a| a.f_mul(&b.f_reshape([1, -1, 1])?))
        .and_then(|ab| ab.f_mul(&c.f_reshape([1, 1, -1])?))
        .map_err(torch)?;
    let smallest = map
        .f_min()
        .and_then(|m| m.f_double_value(&[]))
        .map_err(torch)?
        .max(1e-3);
    let map = map.f_clamp_min(smallest).map_err(torch)?;
    map.f_reshape([1, 1, p.roi[0], p.roi[1], p.roi[2]])
        .map_err(torch)
}

fn run_model(module: &CModule, batch: &Tensor, amp: bool) -> Res<Tensor> {
    let call = || module.forward_is(&[IValue::Tensor(batch.shallow_clone())]);
    let out = if amp {
        tch::autocast(true, call)
    } else {
        call()
    }
    .map_err(torch)?;
    match out {
        IValue::Tensor(t) => t.f_to_kind(Kind::Float).map_err(torch),
        IValue::Tuple(mut items) | IValue::GenericList(mut items) if !items.is_empty() => {
            match items.remove(0) {
                IValue::Tensor(t) => t.f_to_kind(Kind::Float).map_err(torch),
                _ => Err(err(
                    ErrorCode::INFERENCE_ERROR,
                    "the model's first output is not a tensor",
                )),
            }
        }
        _ => Err(err(
            ErrorCode::INFERENCE_ERROR,
            "the model returned no tensor",
        )),
    }
}

/// Runs `module` over `x` (`[N, C, D, H, W]`) window by window and blends the outputs.
pub(super) fn infer(module: &CModule, x: &Tensor, params: &Value) -> Res<Tensor> {
    let p = Params::parse(params)?;
    let shape = x.size();
    if shape.len() != 5 {
        return Err(bad(format!(
            "sliding_window expects [N, C, D, H, W], got {shape:?}"
        )));
    }
    let amp = p.amp && matches!(x.device(), Device::Cuda(_));
    // Pad dims smaller than the ROI; torch's pad list runs from the last dim backwards.
    let mut pad = Vec::new();
    for i in (0..3).rev() {
        let diff = (p.roi[i] - shape[2 + i]).max(0);
        pad.extend([diff / 2, diff - diff / 2]);
    }
    let padded = if pad.iter().any(|v| *v > 0) {
        x.f_pad(pad.as_slice(), &p.padding_mode, p.cval)
            .map_err(torch)?
    } else {
        x.shallow_clone()
    };
    let size = padded.size();
    let grid: Vec<Vec<i64>> = (0..3)
        .map(|i| starts(size[2 + i], p.roi[i], p.overlap))
        .collect();
    let count: usize = grid.iter().map(Vec::len).product();
    if count > MAX_WINDOWS {
        return Err(bad(format!(
            "sliding_window: roi_size {:?} with overlap {} makes {} windows over a {:?} image, \
             over the limit of {MAX_WINDOWS}: use a larger roi_size or a smaller sw_overlap",
            p.roi,
            p.overlap,
            count,
            &shape[2..]
        )));
    }
    let mut windows = Vec::with_capacity(count);
    for &a in &grid[0] {
        for &b in &grid[1] {
            for &c in &grid[2] {
                windows.push([a, b, c]);
            }
        }
    }
    let weight = importance(&p, x.device())?;
    let window = |t: &Tensor, s: &[i64; 3]| -> Res<Tensor> {
        t.f_narrow(2, s[0], p.roi[0])
            .and_then(|t| t.f_narrow(3, s[1], p.roi[1]))
            .and_then(|t| t.f_narrow(4, s[2], p.roi[2]))
            .map_err(torch)
    };
    let (mut output, mut count): (Option<Tensor>, Option<Tensor>) = (None, None);
    for group in windows.chunks(p.batch) {
        super::cancel::check()?;
        let crops: Vec<Tensor> = group
            .iter()
            .map(|s| window(&padded, s))
            .collect::<Res<_>>()?;
        let batch = Tensor::f_cat(&crops, 0).map_err(torch)?;
        let pred = run_model(module, &batch, amp)?;
        let n = shape[0];
        let channels = pred.size().get(1).copied().unwrap_or(1);
        let (out, cnt) = match (&output, &count) {
            (Some(o), Some(c)) => (o.shallow_clone(), c.shallow_clone()),
            _ => {
                let o = Tensor::f_zeros(
                    [n, channels, size[2], size[3], size[4]],
                    (Kind::Float, x.device()),
                )
                .map_err(torch)?;
                let c =
                    Tensor::f_zeros([1, 1, size[2], size[3], size[4]], (Kind::Float, x.device()))
                        .map_err(torch)?;
                output = Some(o.shallow_clone());
                count = Some(c.shallow_clone());
                (o, c)
            }
        };
        for (k, s) in group.iter().enumerate() {
            let piece = pred.f_narrow(0, k as i64 * n, n).map_err(torch)?;
            if piece.size()[2..] != p.roi[..] {
                return Err(err(
                    ErrorCode::INFERENCE_ERROR,
                    "the model changed the window's spatial size",
                ));
            }
            let weighted = piece.f_mul(&weight).map_err(torch)?;
            let _ = window(&out, s)?.f_add_(&weighted).map_err(torch)?;
            let _ = window(&cnt, s)?.f_add_(&weight).map_err(torch)?;
        }
    }
    let (Some(out), Some(cnt)) = (output, count) else {
        return Err(err(ErrorCode::INFERENCE_ERROR, "no windows"));
    };
    let blended = out.f_div(&cnt).map_err(torch)?;
    // Crop the padding away again.
    let mut result = blended;
    for i in 0..3 {
        let before = pad[2 * (2 - i)];
        result = result
            .f_narrow(2 + i as i64, before, shape[2 + i])
            .map_err(torch)?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::starts;

    #[test]
    fn window_starts_follow_monai() {
        assert_eq!(starts(96, 96, 0.25), vec![0]);
        assert_eq!(starts(100, 64, 0.25), vec![0, 36]);
        assert_eq!(starts(181, 64, 0.25), vec![0, 48, 96, 117]);
        assert_eq!(starts(10, 4, 0.5), vec![0, 2, 4, 6]);
    }
}
