//! The named tensor operations plugins call through `Executor::op` (MONAI transform
//! semantics where a transform exists; `dice` is MONAI's `DiceMetric` per label). They run on the tensor's device; nothing is copied
//! to the host. Spatial ops take `[D,H,W]`, `[C,D,H,W]` or `[N,C,D,H,W]` tensors.

use super::scope::{err, kind_of, torch};
use labelhost_plugin_api::abi::{DType, ErrorCode, PluginError};
use serde_json::Value;
use tch::{Kind, Tensor};

type Res<T> = Result<T, PluginError>;

fn bad(msg: impl Into<String>) -> PluginError {
    err(ErrorCode::INVALID_INPUT, msg)
}

fn num(args: &Value, key: &str) -> Res<f64> {
    args.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| bad(format!("op needs a number '{key}'")))
}

fn triple(args: &Value, key: &str) -> Res<[i64; 3]> {
    let v: Vec<i64> = args
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    <[i64; 3]>::try_from(v).map_err(|_| bad(format!("op needs '{key}' as three integers")))
}

/// Views a spatial tensor as `[N,C,D,H,W]`; returns the view and the original shape.
fn as_5d(x: &Tensor) -> Res<(Tensor, Vec<i64>)> {
    let shape = x.size();
    let view = match shape.len() {
        3 => x.f_unsqueeze(0).and_then(|t| t.f_unsqueeze(0)),
        4 => x.f_unsqueeze(0),
        5 => Ok(x.shallow_clone()),
        n => return Err(bad(format!("expected a 3-, 4- or 5-D tensor, got {n}-D"))),
    };
    Ok((view.map_err(torch)?, shape))
}

/// Restores the leading dims of `shape` on a `[N,C,D,H,W]` result with new spatial size.
fn from_5d(y: Tensor, shape: &[i64]) -> Res<Tensor> {
    let spatial = &y.size()[2..];
    let lead = &shape[..shape.len() - 3];
    y.f_reshape([lead, spatial].concat()).map_err(torch)
}

fn interpolate(x: &Tensor, args: &Value) -> Res<Tensor> {
    let size = triple(args, "size")?;
    if size.iter().any(|s| *s <= 0) {
        return Err(bad("interpolate: sizes must be positive"));
    }
    let (x5, shape) = as_5d(x)?;
    let float = if x5.is_floating_point() {
        x5
    } else {
        x5.f_to_kind(Kind::Float).map_err(torch)?
    };
    let mode = args
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("nearest-exact");
    let y = match mode {
        "nearest-exact" => float.f_internal_upsample_nearest_exact3d(size, None, None, None),
        "nearest" => float.f_upsample_nearest3d(size, None, None, None),
        "trilinear" => float.f_upsample_trilinear3d(size, false, None, None, None),
        "area" => float.f_adaptive_avg_pool3d(size),
        other => return Err(bad(format!("interpolate: unknown mode '{other}'"))),
    };
    from_5d(y.map_err(torch)?, &shape)
}

fn crop(x: &Tensor, args: &Value) -> Res<Tensor> {
    let (start, end) = (triple(args, "start")?, triple(args, "end")?);
    let shape = x.size();
    let rank = shape.len();
    if rank < 3 {
        return Err(bad("crop: expected a tensor with 3 spatial dims"));
    }
    let mut y = x.shallow_clone();
    for i in 0..3 {
        let dim = rank - 3 + i;
        let (s, e) = (start[i], end[i]);
        if s < 0 || e > shape[dim] || s >= e {
            return Err(bad(format!(
                "crop: [{s}, {e}) is outside dim {dim} of size {}",
                shape[dim]
            )));
        }
        y = y.f_narrow(dim as i64, s, e - s).map_err(torch)?;
    }
    Ok(y)
}

fn paste(x: &Tensor, args: &Value) -> Res<Tensor> {
    let (shape, start) = (triple(args, "shape")?, triple(args, "start")?);
    let size = x.size();
    if size.len() != 3 || (0..3).any(|i| start[i] < 0 || start[i] + size[i] > shape[i]) {
        return Err(bad("paste: a 3-D input must fit inside 'shape' at 'start'"));
    }
    let out = Tensor::f_zeros(shape, (x.kind(), x.device())).map_err(torch)?;
    let mut region = out.shallow_clone();
    for i in 0..3 {
        region = region
            .f_narrow(i as i64, start[i], size[i])
            .map_err(torch)?;
    }
    region.f_copy_(x).map_err(torch)?;
    Ok(out)
}

fn scale_intensity_range(x: &Tensor, args: &Value) -> Res<Tensor> {
    let (a_min, a_max) = (num(args, "a_min")?, num(args, "a_max")?);
    let (b_min, b_max) = (num(args, "b_min")?, num(args, "b_max")?);
    if a_max == a_min {
        return Err(bad("scale_intensity_range: a_max equals a_min"));
    }
    let scale = (b_max - b_min) / (a_max - a_min);
    let y = x
        .f_sub_scalar(a_min)
        .and_then(|t| t.f_mul_scalar(scale))
        .and_then(|t| t.f_add_scalar(b_min));
    let y = y.map_err(torch)?;
    if args.get("clip") == Some(&Value::Bool(true)) {
        y.f_clamp(b_min.min(b_max), b_max.max(b_min)).map_err(torch)
    } else {
        Ok(y)
    }
}

fn normalize_intensity(x: &Tensor, args: &Value) -> Res<Tensor> {
    let unbiased = args.get("unbiased") == Some(&Value::Bool(true));
    let mean = x.f_mean(Kind::Float).map_err(torch)?;
    let std = x.f_std(unbiased).map_err(torch)?;
    let y = x
        .f_sub(&mean)
        .and_then(|t| t.f_div(&std.f_clamp_min(1e-8)?));
    y.map_err(torch)
}

/// The `[start, end)` box of the voxels above `threshold` over the last three dims, as an
/// `i64` tensor `[s0, s1, s2, e0, e1, e2]`; all zeros when nothing is above it.
fn foreground_bbox(x: &Tensor, threshold: f64) -> Res<Tensor> {
    let rank = x.size().len();
    if rank < 3 {
        return Err(bad("foreground_bbox: expected 3 spatial dims"));
    }
    let mask = x.f_gt(threshold).map_err(torch)?;
    // Collapse leading dims (channels): a voxel is foreground in any channel.
    let mut m = mask;
    while m.size().len() > 3 {
        m = m.f_any_dim(0, false).map_err(torch)?;
    }
    let idx = m.f_nonzero().map_err(torch)?;
    if idx.size()[0] == 0 {
        return Tensor::f_zeros([6], (tch::Kind::Int64, tch::Device::Cpu)).map_err(torch);
    }
    let lo = idx.f_amin([0i64].as_slice(), false).map_err(torch)?;
    let hi = idx
        .f_amax([0i64].as_slice(), false)
        .and_then(|t| t.f_add_scalar(1))
        .map_err(torch)?;
    Tensor::f_cat(&[lo, hi], 0)
        .and_then(|t| t.f_to_device(tch::Device::Cpu))
        .map_err(torch)
}

/// The `q` quantile with linear interpolation (torch.quantile's rule). torch.quantile
/// refuses more than 2^24 elements; bigger tensors take the two order statistics around
/// the position with `kthvalue` instead.
fn quantile(x: &Tensor, q: f64) -> Res<Tensor> {
    if !(0.0..=1.0).contains(&q) {
        return Err(bad("quantile: q must be between 0 and 1"));
    }
    let flat = x
        .f_to_kind(Kind::Float)
        .and_then(|t| t.f_flatten(0, -1))
        .map_err(torch)?;
    let n = flat.size()[0];
    if n == 0 {
        return Err(bad("quantile of an empty tensor"));
    }
    if n <= 1 << 24 {
        return flat
            .f_quantile_scalar(q, None, false, "linear")
            .map_err(torch);
    }
    let pos = q * (n - 1) as f64;
    let (lo, hi) = (pos.floor() as i64, pos.ceil() as i64);
    let kth = |k: i64| {
        flat.f_kthvalue(k + 1, 0, false)
            .map(|(v, _)| v)
            .map_err(torch)
    };
    let (a, b) = (kth(lo)?, kth(hi)?);
    let frac = pos - lo as f64;
    b.f_sub(&a)
        .and_then(|d| d.f_mul_scalar(frac))
        .and_then(|d| d.f_add(&a))
        .map_err(torch)
}

/// MONAI's `DiceMetric` per label: Dice between a prediction (`[C, ...]` scores, argmax'd
/// over dim 0 when `argmax` is true, else integer labels) and integer target labels, one
/// `f32` per entry of `labels`; 1 where both are empty (nothing to find, nothing found).
pub(super) fn dice(pred: &Tensor, target: &Tensor, args: &Value) -> Res<Tensor> {
    let labels: Vec<i64> = args
        .get("labels")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if labels.is_empty() {
        return Err(bad("dice needs 'labels': [1, ...]"));
    }
    let pred = if args.get("argmax") == Some(&Value::Bool(true)) {
        pred.f_argmax(0, false).map_err(torch)?
    } else {
        pred.shallow_clone()
    };
    let target = target.f_to_device(pred.device()).map_err(torch)?;
    let (p, t) = (
        pred.f_flatten(0, -1).map_err(torch)?,
        target.f_flatten(0, -1).map_err(torch)?,
    );
    if p.size() != t.size() {
        return Err(bad(format!(
            "dice: prediction {:?} and target {:?} differ in size",
            pred.size(),
            target.size()
        )));
    }
    let t = t.f_to_kind(p.kind()).map_err(torch)?;
    let mut out = Vec::with_capacity(labels.len());
    for l in labels {
        let (a, b) = (p.f_eq(l).map_err(torch)?, t.f_eq(l).map_err(torch)?);
        let count = |x: &Tensor| x.f_sum(Kind::Float).and_then(|s| s.f_double_value(&[]));
        let inter = count(&a.f_logical_and(&b).map_err(torch)?).map_err(torch)?;
        let total = count(&a).map_err(torch)? + count(&b).map_err(torch)?;
        out.push(if total == 0.0 {
            1.0
        } else {
            (2.0 * inter / total) as f32
        });
    }
    Ok(Tensor::from_slice(&out))
}

/// Runs op `name` on `inputs` with JSON `args`.
pub(super) fn run(name: &str, inputs: &[Tensor], args: &Value) -> Res<Vec<Tensor>> {
    let x = inputs
        .first()
        .ok_or_else(|| bad(format!("op {name} needs an input")))?;
    let int = |k: &str, d: i64| args.get(k).and_then(Value::as_i64).unwrap_or(d);
    let out = match name {
        "interpolate" => interpolate(x, args)?,
        "crop" => crop(x, args)?,
        "paste" => paste(x, args)?,
        "scale_intensity_range" => scale_intensity_range(x, args)?,
        "normalize_intensity" => normalize_intensity(x, args)?,
        "affine" => {
            let (scale, shift) = (num(args, "scale")?, num(args, "shift")?);
            x.f_mul_scalar(scale)
                .and_then(|t| t.f_add_scalar(shift))
                .map_err(torch)?
        }
        "quantile" => quantile(x, num(args, "q")?)?,
        "shape" => Tensor::from_slice(&x.size()),
        "foreground_bbox" => foreground_bbox(
            x,
            args.get("threshold").and_then(Value::as_f64).unwrap_or(0.0),
        )?,
        "pad" => {
            let (before, after) = (triple(args, "before")?, triple(args, "after")?);
            if before.iter().chain(&after).any(|p| *p < 0) {
                return Err(bad("pad: amounts must not be negative"));
            }
            let pad = [
                before[2], after[2], before[1], after[1], before[0], after[0],
            ];
            let value = args.get("value").and_then(Value::as_f64).unwrap_or(0.0);
            x.f_constant_pad_nd(pad)
                .and_then(|t| {
                    if value == 0.0 {
                        Ok(t)
                    } else {
                        // constant_pad_nd pads with zeros; shift, pad, shift back for another value
                        x.f_sub_scalar(value)?
                            .f_constant_pad_nd(pad)?
                            .f_add_scalar(value)
                    }
                })
                .map_err(torch)?
        }
        "reshape" => {
            let shape: Vec<i64> = args
                .get("shape")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            x.f_reshape(shape).map_err(torch)?
        }
        "nan_to_num" => x.f_nan_to_num(0.0, None, None).map_err(torch)?,
        "select" => x.f_select(int("dim", 0), int("index", 0)).map_err(torch)?,
        "argmax" => x
            .f_argmax(
                int("dim", 0),
                args.get("keepdim") == Some(&Value::Bool(true)),
            )
            .map_err(torch)?,
        "softmax" => x.f_softmax(int("dim", 0), Kind::Float).map_err(torch)?,
        "sigmoid" => x.f_sigmoid().map_err(torch)?,
        "dice" => dice(
            x,
            inputs
                .get(1)
                .ok_or_else(|| bad("dice needs [prediction, target]"))?,
            args,
        )?,
        "threshold" => {
            let v = args.get("value").and_then(Value::as_f64).unwrap_or(0.5);
            x.f_gt(v)
                .and_then(|t| t.f_to_kind(Kind::Uint8))
                .map_err(torch)?
        }
        "to_dtype" => {
            let d = DType(u32::try_from(int("dtype", 5)).unwrap_or(0));
            x.f_to_kind(kind_of(d)?).map_err(torch)?
        }
        other => return Err(err(ErrorCode::UNSUPPORTED, format!("unknown op '{other}'"))),
    };
    Ok(vec![out])
}
