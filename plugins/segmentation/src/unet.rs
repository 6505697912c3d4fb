//! `segmentation_unet`: a TorchScript 3-D UNet run by sliding-window inference on the
//! shared executor, written as MONAI Label's `BasicInferTask` pipeline (LoadImaged,
//! Orientationd RAS, EnsureTyped, NormalizeIntensityd → SlidingWindowInferer →
//! Activationsd softmax, AsDiscreted argmax, ToNumpyd, Restored, GetCentroidsd).

use labelhost_plugin_api::sdk::{
    json,
    pipeline::{
        Activations, AsDiscrete, Data, EnsureType, GetCentroids, LoadImage, NormalizeIntensity,
        Orientation, Pipeline, Restore, ToHost, Transforms,
    },
    Error, InferTaskInfo, InferType, Map, Result, Value,
};
use std::path::PathBuf;

/// The task; `model` is the bundle's TorchScript file.
pub(crate) struct UNet {
    pub(crate) model: PathBuf,
    pub(crate) classes: usize,
}

impl UNet {
    fn labels(&self) -> Map<String, Value> {
        (1..=self.classes)
            .map(|i| (format!("class_{i}"), json!(i)))
            .collect()
    }
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

impl Pipeline for UNet {
    fn info(&self) -> InferTaskInfo {
        let mut config = Map::new();
        config.insert("roi_size".into(), json!([64, 64, 64]));
        config.insert("sw_batch_size".into(), json!(2));
        config.insert("sw_overlap".into(), json!(0.25));
        config.insert("sw_mode".into(), json!(["gaussian", "constant"]));
        config.insert("device".into(), json!(["", "cuda", "cpu"]));
        InferTaskInfo {
            infer_type: InferType::SEGMENTATION,
            labels: Value::Object(self.labels()),
            dimension: 3,
            description: "3-D UNet by sliding-window inference (untrained stand-in model)".into(),
            config,
        }
    }

    fn model_path(&self) -> Option<PathBuf> {
        Some(self.model.clone())
    }

    fn pre_transforms(&self, _: &Data) -> Transforms {
        vec![
            Box::new(LoadImage),
            Box::new(Orientation),
            Box::new(EnsureType),
            Box::new(NormalizeIntensity),
        ]
    }

    fn inferer(&self, d: &mut Data) -> Result<()> {
        let params = json!({
            "roi_size": roi(&d.request)?,
            "sw_batch_size": d.request.get("sw_batch_size").and_then(Value::as_u64).unwrap_or(2),
            "overlap": d.request.get("sw_overlap").and_then(Value::as_f64).unwrap_or(0.25),
            "mode": d.request.get("sw_mode").and_then(Value::as_str).unwrap_or("gaussian"),
            "amp": true,
        });
        let model = d.exec.load_model(&self.model, &d.device)?;
        let [a, b, c] = d.spatial_shape("inferer")?;
        let batch = d.exec.op1(
            "reshape",
            d.tensor("inferer")?,
            &json!({"shape": [1, 1, a, b, c]}),
        )?;
        let logits = d.exec.sliding_window(model, &batch, &params)?;
        d.pred = Some(
            d.exec
                .op1("select", &logits, &json!({"dim": 0, "index": 0}))?,
        );
        d.result.insert("sliding_window".into(), params);
        Ok(())
    }

    fn post_transforms(&self, _: &Data) -> Transforms {
        vec![
            Box::new(Activations { softmax: true }),
            Box::new(AsDiscrete { threshold: None }),
            Box::new(ToHost),
            Box::new(Restore),
            Box::new(GetCentroids {
                labels: self.labels(),
            }),
        ]
    }
}
