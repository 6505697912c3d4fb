//! `segmentation_unet`: a TorchScript 3-D UNet run by sliding-window inference on the
//! shared executor, written as MONAI Label's `BasicInferTask` pipeline (LoadImaged,
//! Orientationd RAS, EnsureTyped, NormalizeIntensityd → SlidingWindowInferer →
//! Activationsd softmax, AsDiscreted argmax, ToNumpyd, Restored, GetCentroidsd), and its
//! trainer (`POST /train/segmentation_unet`), which fine-tunes the bundle's network on the
//! final labels (values 1..classes) and publishes to this task.

use labelhost_plugin_api::sdk::{
    json,
    pipeline::{
        sliding_window_inferer, sliding_window_params, Activations, AsDiscrete, Data, EnsureType,
        GetCentroids, LoadImage, NormalizeIntensity, Orientation, Pipeline, Restore, ToHost,
        Transforms,
    },
    train::{Augmentation, BasicTrainTask, TrainRequest},
    Error, Host, InferTaskInfo, InferType, Map, Result, Value,
};
use std::path::PathBuf;

/// The task's (and its trainer's) name.
pub(crate) const NAME: &str = "segmentation_unet";

/// The task; `model` is the bundle's TorchScript file, overridden by the model the trainer
/// published (MONAI Label's last-existing path rule).
pub(crate) struct UNet {
    pub(crate) host: Host,
    pub(crate) model: PathBuf,
    pub(crate) classes: usize,
}

fn labels(classes: usize) -> Map<String, Value> {
    (1..=classes)
        .map(|i| (format!("class_{i}"), json!(i)))
        .collect()
}

fn pre_transforms() -> Transforms {
    vec![
        Box::new(LoadImage),
        Box::new(Orientation),
        Box::new(EnsureType),
        Box::new(NormalizeIntensity),
    ]
}

impl UNet {
    fn labels(&self) -> Map<String, Value> {
        labels(self.classes)
    }

    fn current_model(&self) -> PathBuf {
        self.host
            .published_model(NAME)
            .unwrap_or_else(|| self.model.clone())
    }
}

/// The trainer: fine-tunes the bundle's network (or, with `pretrained: false`, trains it
/// from fresh weights) on 64³ patches with DiceCE and Adam.
pub(crate) struct UNetTrainer {
    pub(crate) network: PathBuf,
    pub(crate) classes: usize,
}

impl BasicTrainTask for UNetTrainer {
    fn description(&self) -> String {
        "Trains segmentation_unet (3-D UNet, DiceCE, Adam) on the final labels".into()
    }

    fn labels(&self) -> Map<String, Value> {
        labels(self.classes)
    }

    fn network(&self, _: &Host) -> Result<PathBuf> {
        Ok(self.network.clone())
    }

    fn config(&self) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("max_epochs".into(), json!(20));
        c.insert("train_batch_size".into(), json!(2));
        c
    }

    fn train_pre_transforms(&self, _: &TrainRequest) -> Transforms {
        pre_transforms()
    }

    fn train_augmentation(&self, _: &TrainRequest) -> Augmentation {
        Augmentation {
            num_samples: 2,
            ..Augmentation::default()
        }
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
    // The UNet halves the grid four times: each side a multiple of 16; at most 256.
    match <[i64; 3]>::try_from(r) {
        Ok(r) if r.iter().all(|d| (16..=256).contains(d) && d % 16 == 0) => Ok(r),
        _ => Err(Error::invalid_input(format!(
            "roi_size must be three multiples of 16 from 16 to 256, not {v}"
        ))),
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
            description: "3-D UNet by sliding-window inference (an untrained stand-in until POST /train/segmentation_unet)".into(),
            config,
        }
    }

    fn model_path(&self) -> Option<PathBuf> {
        Some(self.current_model())
    }

    fn pre_transforms(&self, _: &Data) -> Transforms {
        pre_transforms()
    }

    fn inferer(&self, d: &mut Data) -> Result<()> {
        let params = sliding_window_params(&d.request, roi(&d.request)?)?;
        sliding_window_inferer(d, &self.current_model(), &params)?;
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
