//! `segmentation_unet`: a TorchScript 3-D UNet run by sliding-window inference on the
//! shared executor (MONAI Label's `segmentation` pipeline: Orientation RAS,
//! NormalizeIntensity, SlidingWindowInferer, softmax, argmax, Restore).

use labelhost_plugin_api::sdk::{
    image, input_image, json, transforms::Orientation, DType, Error, Host, InferResult, InferTask,
    InferTaskInfo, InferType, Map, Result, Value,
};
use ndarray::{ArrayD, IxDyn};
use std::{path::PathBuf, time::Instant};

/// The task; `model` is the bundle's TorchScript file.
pub(crate) struct UNet {
    pub(crate) model: PathBuf,
    pub(crate) classes: usize,
}

fn roi(request: &Map<String, Value>) -> Result<[i64; 3]> {
    let Some(v) = request.get("roi_size") else {
        return Ok([64, 64, 64]);
    };
    let r: Vec<i64> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    match <[i64; 3]>::try_from(r) {
        Ok(r) if r.iter().all(|d| *d > 0 && d % 4 == 0) => Ok(r),
        _ => Err(Error::invalid_input(
            "roi_size must be three positive multiples of 4",
        )),
    }
}

impl InferTask for UNet {
    fn info(&self) -> InferTaskInfo {
        let labels: Map<String, Value> = (1..=self.classes)
            .map(|i| (format!("class_{i}"), json!(i)))
            .collect();
        let mut config = Map::new();
        config.insert("roi_size".into(), json!([64, 64, 64]));
        config.insert("sw_batch_size".into(), json!(2));
        config.insert("sw_overlap".into(), json!(0.25));
        config.insert("sw_mode".into(), json!(["gaussian", "constant"]));
        config.insert("device".into(), json!(["", "cuda", "cpu"]));
        InferTaskInfo {
            infer_type: InferType::SEGMENTATION,
            labels: Value::Object(labels),
            dimension: 3,
            description: "3-D UNet by sliding-window inference (untrained stand-in model)".into(),
            config,
        }
    }

    fn infer(&self, host: &Host, request: &Map<String, Value>) -> Result<InferResult> {
        let device = request.get("device").and_then(Value::as_str).unwrap_or("");
        let t0 = Instant::now();
        let volume = image::read(input_image(request)?)?;
        let orientation = Orientation::from_affine(&volume.affine());
        let ras = orientation.to_ras(&volume.first_frame());
        let shape = ras.shape().to_vec();
        let dims: Vec<i64> = [1, 1]
            .into_iter()
            .chain(shape.iter().map(|&d| d as i64))
            .collect();
        let exec = host.executor();
        let bytes: Vec<u8> = ras.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let x = exec.tensor(DType::F32, &dims, bytes, device)?;
        let x = exec.op1("normalize_intensity", &x, &json!({}))?;
        let t1 = Instant::now();
        let model = exec.load_model(&self.model, device)?;
        let params = json!({
            "roi_size": roi(request)?,
            "sw_batch_size": request.get("sw_batch_size").and_then(Value::as_u64).unwrap_or(2),
            "overlap": request.get("sw_overlap").and_then(Value::as_f64).unwrap_or(0.25),
            "mode": request.get("sw_mode").and_then(Value::as_str).unwrap_or("gaussian"),
            "amp": true,
        });
        let logits = exec.sliding_window(model, &x, &params)?;
        let t2 = Instant::now();
        let probs = exec.op1("softmax", &logits, &json!({"dim": 1}))?;
        let classes = exec.op1("argmax", &probs, &json!({"dim": 1}))?;
        let classes = exec.op1("to_dtype", &classes, &json!({"dtype": DType::U8.0}))?;
        let data = classes.to_data()?;
        let label = ArrayD::from_shape_vec(IxDyn(&shape), data.bytes.into_vec())
            .map_err(|e| Error::inference(format!("label shape: {e}")))?;
        let label = orientation.from_ras(&label);
        let t3 = Instant::now();
        let out = host.result_path("segmentation_unet", ".nii.gz");
        image::write_label(&out, &volume, &label)?;
        let t4 = Instant::now();
        let secs = |a: Instant, b: Instant| (b - a).as_secs_f64();
        let mut result = Map::new();
        result.insert("sliding_window".into(), params);
        result.insert(
            "latencies".into(),
            json!({
                "pre": secs(t0, t1), "infer": secs(t1, t2), "invert": 0.0, "post": secs(t2, t3),
                "write": secs(t3, t4), "total": secs(t0, t4), "transform": {}
            }),
        );
        Ok(InferResult {
            label: Some(out),
            params: result,
        })
    }
}
