//! The `resample` op and the CPU paths of the spatial ops: a volume reoriented (`permute`,
//! `flip`), cropped and resized nearest-exact, as `f32`, in one pass over the output
//! (`kernels.rs`) where LibTorch's `orient`, `crop` and `interpolate` would make three
//! copies. On other devices (and layouts the kernel does not take) it is exactly those.

use super::kernels::{self, Out, Plan};
use super::ops::{bad, ints, orient, repeats, z_affine, IntensityRange, Res};
use super::scope::torch;
use serde_json::{json, Value};
use tch::Tensor;

/// What `resample` does to a 3-D tensor, validated.
struct Spec {
    /// For each output axis, the input axis it runs along.
    permute: [usize; 3],
    /// Per output axis, whether it runs the input's axis backwards.
    flip: [bool; 3],
    /// The box kept, in the reoriented frame.
    start: [i64; 3],
    end: [i64; 3],
    /// The output's size.
    size: [i64; 3],
    nan_to_num: bool,
    /// MONAI's `ScaleIntensityRange` on the values, last.
    range: Option<IntensityRange>,
    /// `uint8` of `value > threshold` instead of the values.
    threshold: Option<f64>,
}

fn three(args: &Value, key: &str, default: [i64; 3]) -> Res<[i64; 3]> {
    match args.get(key) {
        None => Ok(default),
        Some(_) => <[i64; 3]>::try_from(ints(args, key))
            .map_err(|_| bad(format!("resample: '{key}' must be three integers"))),
    }
}

fn spec(x: &Tensor, args: &Value) -> Res<Spec> {
    let dims = <[i64; 3]>::try_from(x.size()).map_err(|_| {
        bad(format!(
            "resample: expected a 3-D tensor, got {}-D",
            x.dim()
        ))
    })?;
    let order = three(args, "permute", [0, 1, 2])?;
    let mut seen = order;
    seen.sort_unstable();
    if seen != [0, 1, 2] {
        return Err(bad("resample: 'permute' must order the dims 0, 1, 2"));
    }
    let permute = order.map(|p| p as usize);
    let mut flip = [false; 3];
    for d in ints(args, "flip") {
        *flip
            .get_mut(usize::try_from(d).unwrap_or(3))
            .ok_or_else(|| bad("resample: 'flip' names dims below 3"))? = true;
    }
    let oriented = permute.map(|p| dims[p]);
    let start = three(args, "start", [0; 3])?;
    let end = three(args, "end", oriented)?;
    if (0..3).any(|i| start[i] < 0 || end[i] > oriented[i] || start[i] >= end[i]) {
        return Err(bad(format!(
            "resample: the box {start:?}..{end:?} is not inside {oriented:?}"
        )));
    }
    let size = three(args, "size", [0, 1, 2].map(|i| end[i] - start[i]))?;
    if size.iter().any(|s| *s <= 0) {
        return Err(bad("resample: sizes must be positive"));
    }
    let nan_to_num = args.get("nan_to_num") == Some(&Value::Bool(true));
    let range = match args.get("range") {
        None | Some(Value::Null) => None,
        Some(r) => Some(IntensityRange::parse(r)?),
    };
    let threshold = match args.get("threshold") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            t.as_f64()
                .ok_or_else(|| bad("resample: 'threshold' must be a number"))?,
        ),
    };
    Ok(Spec {
        permute,
        flip,
        start,
        end,
        size,
        nan_to_num,
        range,
        threshold,
    })
}

/// The gather plan of `spec` on a contiguous `x`: output voxel `o` along axis `k` reads
/// input index `start + nearest(o)` along `permute[k]`, counted from the far end when
/// flipped.
fn plan(x: &Tensor, spec: &Spec) -> Res<Plan> {
    let (dims, strides) = (x.size(), x.stride());
    let axis = |k: usize| -> Res<Vec<usize>> {
        let p = spec.permute[k];
        let table = kernels::nearest_exact(spec.end[k] - spec.start[k], spec.size[k]);
        Ok(table
            .map_err(torch)?
            .into_iter()
            .map(|t| {
                let r = spec.start[k] + t;
                let i = if spec.flip[k] { dims[p] - 1 - r } else { r };
                (i * strides[p]) as usize
            })
            .collect())
    };
    Ok(Plan {
        offsets: [axis(0)?, axis(1)?, axis(2)?],
    })
}

/// The plan of a plain resize of a 3-D `x` to `size`, when the CPU kernel can take `x`.
fn resize_plan(x: &Tensor, size: [i64; 3]) -> Res<Option<Plan>> {
    if !kernels::on_host(x.device()) || x.dim() != 3 || !x.is_contiguous() {
        return Ok(None);
    }
    let d = x.size();
    let spec = Spec {
        permute: [0, 1, 2],
        flip: [false; 3],
        start: [0; 3],
        end: [d[0], d[1], d[2]],
        size,
        nan_to_num: false,
        range: None,
        threshold: None,
    };
    plan(x, &spec).map(Some)
}

/// `resample`: `orient` (`permute`, `flip`, `nan_to_num`; as `float32`), then `crop`
/// (`start`, `end` in the reoriented frame; default all), then a nearest-exact resize to
/// `size` (default the box's size), then `scale_intensity_range` with the arguments in
/// `range` (when given), in one step; with `threshold`, `uint8` of the values above it.
pub(super) fn resample(x: &Tensor, args: &Value) -> Res<Tensor> {
    resample_by(x, args, true)
}

/// [`resample`] by the CPU kernel where it applies (`kernel`), else by LibTorch's ops.
pub(super) fn resample_by(x: &Tensor, args: &Value, kernel: bool) -> Res<Tensor> {
    let spec = spec(x, args)?;
    if kernel && kernels::on_host(x.device()) && x.is_contiguous() {
        let plan = plan(x, &spec)?;
        let out = match spec.threshold {
            Some(t) => Out::Above(t as f32),
            None => Out::F32,
        };
        let gathered = match spec.range {
            Some(r) => kernels::gather_as(x, &plan, spec.nan_to_num, r.on_f32(), out),
            None => kernels::gather_as(x, &plan, spec.nan_to_num, |v| v, out),
        };
        if let Some(t) = gathered.map_err(torch)? {
            return Ok(t);
        }
    }
    let permute: Vec<usize> = spec.permute.to_vec();
    let flip: Vec<usize> = (0..3).filter(|&k| spec.flip[k]).collect();
    let oriented = orient(
        x,
        &json!({"permute": permute, "flip": flip, "nan_to_num": spec.nan_to_num, "dtype": "float32"}),
    )?;
    let mut y = oriented;
    for k in 0..3 {
        y = y
            .f_narrow(k as i64, spec.start[k], spec.end[k] - spec.start[k])
            .map_err(torch)?;
    }
    let y = if y.size() == spec.size {
        y.f_contiguous()
    } else {
        y.f_unsqueeze(0)
            .and_then(|t| t.f_unsqueeze(0))
            .and_then(|t| t.f_internal_upsample_nearest_exact3d(spec.size, None, None, None))
            .and_then(|t| t.f_reshape(spec.size))
    };
    let y = y.map_err(torch)?;
    let y = match spec.range {
        Some(r) => r.apply(&y)?,
        None => y,
    };
    match spec.threshold {
        Some(t) => y
            .f_gt(t)
            .and_then(|m| m.f_to_kind(tch::Kind::Uint8))
            .map_err(torch),
        None => Ok(y),
    }
}

/// `interpolate` nearest-exact of a 3-D CPU tensor (integer or `f32`) by the gather
/// kernel; `None` where LibTorch's way is needed (another device, layout or type).
pub(super) fn resize(x: &Tensor, size: [i64; 3]) -> Res<Option<Tensor>> {
    if matches!(
        x.kind(),
        tch::Kind::Double | tch::Kind::Half | tch::Kind::BFloat16
    ) {
        return Ok(None);
    }
    match resize_plan(x, size)? {
        Some(plan) => kernels::gather_f32(x, &plan, false, |v| v).map_err(torch),
        None => Ok(None),
    }
}

/// `x * a + b` (each step rounded to `f32`, as LibTorch's two scalar ops) resized
/// nearest-exact to `size`, in one pass, for a 3-D contiguous CPU `f32` tensor, written as
/// `out`.
pub(super) fn mul_add_resize(
    x: &Tensor,
    a: f64,
    b: f64,
    size: [i64; 3],
    out: Out,
) -> Res<Option<Tensor>> {
    if x.kind() != tch::Kind::Float {
        return Ok(None);
    }
    let (a, b) = (a as f32, b as f32);
    match resize_plan(x, size)? {
        Some(plan) => kernels::gather_as(x, &plan, false, |v| v * a + b, out).map_err(torch),
        None => Ok(None),
    }
}

/// `normalize_resize` of a 3-D contiguous CPU `f32` tensor in two passes: the resized
/// volume's mean and std from `x` with each voxel counted as often as the resize repeats
/// it, then the resize with `scale * (v - mean) / std + shift` applied as it copies,
/// written as `out`. `None` where LibTorch's way is needed.
pub(super) fn normalize_resize(
    x: &Tensor,
    size: [i64; 3],
    unbiased: bool,
    (scale, shift): (f64, f64),
    out: Out,
) -> Res<Option<Tensor>> {
    let Some(src) = (x.dim() == 3).then(|| kernels::f32_elements(x)).flatten() else {
        return Ok(None);
    };
    let d = x.size();
    // Small whole numbers: exact in f32.
    let counts = |k: usize| -> Res<Vec<f32>> {
        Ok(repeats(d[k], size[k])?
            .into_iter()
            .map(|c| c as f32)
            .collect())
    };
    let weights = [counts(0)?, counts(1)?, counts(2)?];
    let (mean, std) = kernels::repeated_mean_std(src, &weights, unbiased);
    let (a, b) = z_affine(mean, std, scale, shift);
    mul_add_resize(x, a, b, size, out)
}
