//! Brain extraction with the pretrained deepbet 1.0.2 TorchScript models (PyPI, MIT), in
//! deepbet's two stages: a 128³ pass finds the brain's bounding box, a 256³ pass on the
//! cropped box segments it. Tensors stay on the executor's device from upload to the
//! thresholded uint8 mask; connected components and hole filling run here on the CPU.
//! `finetune.rs` trains the 256³ model further on the user's labels.

use labelhost_plugin_api::ops::{
    Float, Interpolate, NormalizeResize, Resample, ResizeMode, ScaleIntensityRange, Threshold,
};
use labelhost_plugin_api::sdk::{
    image, input_image, json, pipeline,
    timing::Laps,
    transforms::{fill_holes, keep_largest_connected_component, Orientation},
    DType, Error, Executor, Host, InferResult, InferTask, InferTaskInfo, InferType, Map, Model,
    Result, Tensor, Value,
};
use ndarray::{ArrayD, IxDyn};
use std::path::PathBuf;

const SMALL: i64 = 128;
pub(crate) const LARGE: i64 = 256;

/// The reduced precisions checked against fp32 on the real volumes (ch2, the held-out
/// ROBEX T1, KmeansTest) by host/benches/reference/precision_dice.py: Dice between the bf16
/// and fp32 masks 0.99979-0.99985, fp16 0.99998 (LibTorch 2.11, emulated on an AVX2 CPU).
/// The integration test checks Dice within 0.005 of fp32 wherever a device runs them.
pub(crate) const VALIDATED: &[&str] = &["bf16", "fp16"];

/// The task's (and its fine-tuning trainer's) name.
pub(crate) const NAME: &str = "brain_extraction";

/// The two-stage deepbet task. The 256³ model is the bundle's, or the one its trainer
/// published (MONAI Label's last-existing path rule).
pub(crate) struct DeepBet {
    pub(crate) host: Host,
    pub(crate) bbox_model: PathBuf,
    pub(crate) model: PathBuf,
}

impl DeepBet {
    fn current_model(&self) -> PathBuf {
        self.host
            .published_model(NAME)
            .unwrap_or_else(|| self.model.clone())
    }
}

/// deepbet's intensity range: the 0.5 % and 99.5 % quantiles of the volume resized to 128³
/// (nearest-exact).
pub(crate) fn quantiles(exec: &Executor, x: &Tensor) -> Result<(f32, f32)> {
    let small = exec.op1(
        "interpolate",
        x,
        &json!({"size": [SMALL, SMALL, SMALL], "mode": "nearest-exact"}),
    )?;
    range(exec, &small)
}

/// The 0.5 % and 99.5 % quantiles of `small`.
fn range(exec: &Executor, small: &Tensor) -> Result<(f32, f32)> {
    let range = exec
        .op1("quantiles", small, &json!({"q": [0.005, 0.995]}))?
        .to_data()?
        .to_f32()?;
    let [lo, hi] = <[f32; 2]>::try_from(range)
        .map_err(|_| Error::inference("quantile answered the wrong number of values"))?;
    if hi <= lo {
        return Err(Error::invalid_input("the image has no intensity range"));
    }
    Ok((lo, hi))
}

/// deepbet's box growth: `[first, end)` (in units `scale` times smaller than the volume's)
/// scaled, grown by 20 % around its centre with halves rounded to even, clamped to `n`.
pub(crate) fn grow_box(first: usize, end: usize, scale: f64, n: usize) -> (usize, usize) {
    let centre = ((end + first) as f64 / 2.0 * scale).round_ties_even();
    let size = (((end - first) as f64) * scale * 1.2).round_ties_even();
    let lo = ((centre - size / 2.0) as i64).max(0) as usize;
    let hi = ((centre + size / 2.0) as i64).clamp(0, n as i64) as usize;
    (lo, hi)
}

/// deepbet's `normalize` of `x` resized nearest-exact to `side`³: scale [lo, hi] to [0, 1]
/// (clipped), then [`standardize`].
pub(crate) fn normalize(
    exec: &Executor,
    x: &Tensor,
    lo: f32,
    hi: f32,
    side: i64,
) -> Result<Tensor> {
    let x = exec.run1(&intensity(lo, hi), x)?;
    standardize(exec, &x, side, "fp32")
}

/// deepbet's intensity scaling: [lo, hi] to [0, 1], clipped.
fn intensity(lo: f32, hi: f32) -> ScaleIntensityRange {
    ScaleIntensityRange {
        a_min: f64::from(lo),
        a_max: f64::from(hi),
        b_min: 0.0,
        b_max: 1.0,
        clip: true,
    }
}

/// The rest of deepbet's `normalize`: z-score, then `0.226 z + 0.449`, of `x` resized to
/// `side`³, in the element type the model runs in (`precision`, as the executor names it:
/// the same values it would round them to). The host's `normalize_resize` takes the
/// statistics of the resized volume from `x` and applies them as it resizes (same volume,
/// fewer passes over the big one).
fn standardize(exec: &Executor, x: &Tensor, side: i64, precision: &str) -> Result<Tensor> {
    let dtype = match precision {
        "bf16" => Float::Bfloat16,
        "fp16" => Float::Float16,
        _ => Float::Float32,
    };
    let z = NormalizeResize {
        size: [side; 3],
        unbiased: true,
        scale: 0.226,
        shift: 0.449,
        dtype,
    };
    exec.run1(&z, x)
}

/// Runs a model on a `[D,H,W]` volume; returns its brain-probability channel `[D,H,W]`.
fn brain_probability(exec: &Executor, model: Model, x: &Tensor, side: i64) -> Result<Tensor> {
    let batch = exec.op1("reshape", x, &json!({"shape": [1, 1, side, side, side]}))?;
    let out = exec.forward(model, &[&batch])?;
    let out = out
        .first()
        .ok_or_else(|| Error::inference("the model returned nothing"))?;
    let first = exec.op1("select", out, &json!({"dim": 0, "index": 0}))?;
    exec.op1("select", &first, &json!({"dim": 0, "index": 1}))
}

/// deepbet's way back: `x` resized nearest-exact to `size`, then `> 0.5` as `uint8`, in
/// one step (the host's `resample`; `interpolate` and `threshold` where a host predates it).
fn resize_threshold(exec: &Executor, x: &Tensor, size: [usize; 3]) -> Result<Tensor> {
    let size = size.map(|s| s as i64);
    let op = Resample {
        size: Some(size),
        threshold: Some(0.5),
        ..Default::default()
    };
    match exec.run1(&op, x) {
        Err(e) if e.code == labelhost_plugin_api::abi::ErrorCode::UNSUPPORTED => {
            let back = exec.run1(
                &Interpolate {
                    size,
                    mode: ResizeMode::NearestExact,
                },
                x,
            )?;
            exec.run1(&Threshold { value: 0.5 }, &back)
        }
        other => other,
    }
}

fn download_mask(t: &Tensor, shape: &[usize]) -> Result<ArrayD<u8>> {
    let data = t.to_data()?;
    if data.dtype != DType::U8 {
        return Err(Error::inference("expected a uint8 mask"));
    }
    ArrayD::from_shape_vec(IxDyn(shape), data.bytes.into_vec())
        .map_err(|e| Error::inference(format!("mask shape: {e}")))
}

/// deepbet's box: per axis, the slices whose mean mask value exceeds 0.02, scaled from
/// 128³ to the volume, grown by 10% each side, rounded half to even, clamped.
fn bounding_box(mask: &ArrayD<u8>, shape: &[usize]) -> Result<[(usize, usize); 3]> {
    let n = SMALL as usize;
    let flat = mask
        .as_slice()
        .filter(|f| f.len() == n * n * n)
        .ok_or_else(|| Error::inference("expected a 128³ mask in C order"))?;
    // Per axis, the mask's sum over each slice, in one pass.
    let mut sums = [vec![0u64; n], vec![0u64; n], vec![0u64; n]];
    for (i, plane) in flat.chunks(n * n).enumerate() {
        for (j, row) in plane.chunks(n).enumerate() {
            let mut total = 0u64;
            for (k, &v) in row.iter().enumerate() {
                sums[2][k] += u64::from(v);
                total += u64::from(v);
            }
            sums[1][j] += total;
            sums[0][i] += total;
        }
    }
    let mut bbox = [(0, 0); 3];
    for axis in 0..3 {
        let per_slice = (n * n) as f64;
        let hits: Vec<usize> = (0..n)
            .filter(|&i| sums[axis][i] as f64 / per_slice > 0.02)
            .collect();
        let (Some(&first), Some(&last)) = (hits.first(), hits.last()) else {
            return Err(Error::invalid_input(
                "not enough brain found to place a bounding box",
            ));
        };
        let scale = shape[axis] as f64 / SMALL as f64;
        let (lo, hi) = grow_box(first, last + 1, scale, shape[axis]);
        if hi <= lo {
            return Err(Error::invalid_input("the brain's bounding box is empty"));
        }
        bbox[axis] = (lo, hi);
    }
    Ok(bbox)
}

/// MONAI Label's latencies from the laps: pre (read to normalised input), infer (both
/// passes and the mask back on the CPU), post, write; the laps under `transform`, and
/// `model`, the seconds in the two forward passes.
fn latencies(laps: Laps) -> Value {
    let sum = |names: &[&str]| names.iter().map(|n| laps.get(n)).sum::<f64>();
    let pre = sum(&["read", "upload", "resize_quantiles"]);
    let infer = sum(&["bbox_model", "bbox", "crop_resize", "model", "resize_back"]);
    let post = sum(&["largest_component", "fill_holes", "paste"]);
    let write = laps.get("write");
    let model = sum(&["bbox_model", "model"]);
    json!({
        "pre": pre, "infer": infer, "invert": 0.0, "post": post, "write": write,
        "total": pre + infer + post + write, "model": model, "transform": laps.into_map()
    })
}

impl InferTask for DeepBet {
    fn info(&self) -> InferTaskInfo {
        let mut config = Map::new();
        config.insert("device".into(), json!(["", "cuda", "cpu"]));
        config.insert("precision".into(), json!(["auto", "fp32", "bf16", "fp16"]));
        InferTaskInfo {
            infer_type: InferType::SEGMENTATION,
            labels: json!({"brain": 1}),
            dimension: 3,
            description: "Brain extraction (deepbet 1.0.2, two-stage 3-D UNet)".into(),
            config,
        }
    }

    fn model_path(&self) -> Option<PathBuf> {
        Some(self.current_model())
    }

    fn infer(&self, host: &Host, request: &Map<String, Value>) -> Result<InferResult> {
        let device = request.get("device").and_then(Value::as_str).unwrap_or("");
        let precision = request.get("precision").and_then(Value::as_str);
        let precision = precision.unwrap_or("auto");
        let exec = host.executor();
        let (bbox_model, precision) =
            exec.load_model_in(&self.bbox_model, device, precision, VALIDATED)?;
        let (model, _) =
            exec.load_model_in(&self.current_model(), device, &precision, VALIDATED)?;
        let mut laps = Laps::new();
        let (volume, voxels) = image::read_voxels(input_image(request)?)?;
        laps.lap("read");
        let orientation = Orientation::from_affine(&volume.affine());
        // The volume stays as stored; the 128³ and the cropped views come from it directly.
        let file_shape = voxels.shape().to_vec();
        let stored = orientation.upload_stored(&exec, voxels, device)?;
        let shape = stored.shape.to_vec();
        laps.lap("upload");
        let small = stored.resample(&exec, [0; 3], stored.shape, [SMALL as usize; 3])?;
        let (lo, hi) = range(&exec, &small)?;
        let small = exec.run1(&intensity(lo, hi), &small)?;
        let small = standardize(&exec, &small, SMALL, &precision)?;
        laps.lap("resize_quantiles");

        let p_small = brain_probability(&exec, bbox_model, &small, SMALL)?;
        laps.lap("bbox_model");
        let m_small = exec.op1("threshold", &p_small, &json!({"value": 0.5}))?;
        let mut m_small = download_mask(&m_small, &[SMALL as usize; 3])?;
        keep_largest_connected_component(&mut m_small);
        let bbox = bounding_box(&m_small, &shape)?;
        let (start, end) = (bbox.map(|b| b.0), bbox.map(|b| b.1));
        laps.lap("bbox");
        let crop_size = [0, 1, 2].map(|i| end[i] - start[i]);
        let range = intensity(lo, hi);
        let crop = stored.resample_scaled(&exec, start, end, crop_size, Some(range))?;
        let big = standardize(&exec, &crop, LARGE, &precision)?;
        // Only the 256³ input is needed from here: the volume goes before the big pass.
        drop((crop, stored, small, p_small));
        laps.lap("crop_resize");
        let p_big = brain_probability(&exec, model, &big, LARGE)?;
        drop(big);
        laps.lap("model");
        let m_crop = resize_threshold(&exec, &p_big, crop_size)?;
        let mut m_crop = download_mask(&m_crop, &crop_size)?;
        laps.lap("resize_back");
        // The mask is empty outside the box: its largest component and its holes (background
        // not linked to the border: what touches the box's border reaches the volume's
        // through the empty outside) are the box's.
        keep_largest_connected_component(&mut m_crop);
        laps.lap("largest_component");
        fill_holes(&mut m_crop);
        laps.lap("fill_holes");
        // Straight into the file's voxel order and layout (what MONAI's `Restore` gives).
        let mask = orientation.paste_from_ras(&m_crop, start, &file_shape)?;
        laps.lap("paste");
        let out = pipeline::write_label_for(host, request, &volume, &mask)?;
        laps.lap("write");

        // In memory order: the mask is in the file's (Fortran) layout.
        let voxels = match mask.as_slice_memory_order() {
            Some(all) => all.iter().filter(|&&v| v != 0).count(),
            None => mask.iter().filter(|&&v| v != 0).count(),
        };
        let zooms: f64 = (1..4).map(|i| f64::from(volume.header.pixdim[i])).product();
        let mut params = Map::new();
        params.insert("brain_voxels".into(), json!(voxels));
        params.insert("tiv_cm3".into(), json!(1e-3 * voxels as f64 * zooms));
        params.insert("bbox".into(), json!({"start": start, "end": end}));
        params.insert("orientation".into(), json!(orientation.codes()));
        params.insert("precision".into(), json!(precision));
        params.insert("latencies".into(), latencies(laps));
        Ok(InferResult {
            label: Some(out),
            params,
        })
    }
}
