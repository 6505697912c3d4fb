//! `brain_unet`: brain extraction by a MONAI 3-D UNet that labelhost trains itself, from
//! freshly initialised weights, on the annotators' `final` brain masks
//! (`POST /train/brain_unet`). The trainer publishes to the infer task of the same name.
//!
//! Both sides share the pre-processing: RAS, 2 mm voxels, intensities scaled from their
//! 0.5/99.5 percentiles to [0, 1]. Inference runs 64³ windows (gaussian blending), keeps the
//! largest component and fills holes on the image's own grid.

use labelhost_plugin_api::sdk::{
    json,
    pipeline::{
        sliding_window_inferer, sliding_window_params, Activations, AsDiscrete, Data, EnsureType,
        FillHoles, GetCentroids, KeepLargestConnectedComponent, LoadImage, Orientation, Pipeline,
        Restore, ScaleIntensityRangePercentiles, Spacing, ToHost, Transforms,
    },
    train::{Augmentation, BasicTrainTask, TrainRequest},
    Error, ErrorCode, Host, InferTaskInfo, InferType, Map, Result, Value,
};
use std::path::PathBuf;

/// The task's (and its trainer's) name.
pub(crate) const NAME: &str = "brain_unet";
pub(crate) const PATCH: usize = 64;
/// Voxel size of training and inference, in mm: 64³ patches then see 19 cm of anatomy.
const SPACING: f64 = 3.0;

fn labels() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("brain".into(), json!(1));
    m
}

/// The pre-processing both training and inference run.
fn pre_transforms() -> Transforms {
    vec![
        Box::new(LoadImage),
        Box::new(Orientation),
        Box::new(EnsureType),
        Box::new(Spacing {
            pixdim: [SPACING; 3],
            mode: "trilinear",
        }),
        Box::new(ScaleIntensityRangePercentiles {
            lower: 0.5,
            upper: 99.5,
            b_min: 0.0,
            b_max: 1.0,
            clip: true,
        }),
    ]
}

/// The infer task: serves the last model the trainer published.
pub(crate) struct BrainUNet {
    pub(crate) host: Host,
}

impl Pipeline for BrainUNet {
    fn info(&self) -> InferTaskInfo {
        let mut config = Map::new();
        config.insert("device".into(), json!(["", "cuda", "cpu"]));
        config.insert("sw_batch_size".into(), json!(2));
        config.insert("sw_overlap".into(), json!(0.25));
        InferTaskInfo {
            infer_type: InferType::SEGMENTATION,
            labels: Value::Object(labels()),
            dimension: 3,
            description: "Brain extraction by a 3-D UNet trained by labelhost on your labels (POST /train/brain_unet first)".into(),
            config,
        }
    }

    fn model_path(&self) -> Option<PathBuf> {
        self.host.published_model(NAME)
    }

    fn pre_transforms(&self, _: &Data) -> Transforms {
        pre_transforms()
    }

    fn inferer(&self, d: &mut Data) -> Result<()> {
        let path = self.host.published_model(NAME).ok_or_else(|| {
            Error::new(
                ErrorCode::MODEL_IMPORT_ERROR,
                format!(
                    "{NAME} has no trained model yet: save final labels and POST /train/{NAME}"
                ),
            )
        })?;
        let params = sliding_window_params(&d.request, [PATCH as i64; 3])?;
        sliding_window_inferer(d, &path, &params)?;
        d.result
            .insert("model".into(), json!(path.to_string_lossy()));
        Ok(())
    }

    fn post_transforms(&self, _: &Data) -> Transforms {
        vec![
            Box::new(Activations { softmax: true }),
            Box::new(AsDiscrete { threshold: None }),
            Box::new(ToHost),
            Box::new(Restore),
            Box::new(KeepLargestConnectedComponent),
            Box::new(FillHoles),
            Box::new(GetCentroids { labels: labels() }),
        ]
    }
}

/// The trainer: MONAI's supervised loop with DiceCE and Adam on balanced 64³ patches.
pub(crate) struct BrainUNetTrainer {
    /// The untrained network (`models/brain_unet.pt` in the bundle).
    pub(crate) network: PathBuf,
}

impl BasicTrainTask for BrainUNetTrainer {
    fn description(&self) -> String {
        "Trains brain_unet (MONAI UNet, DiceCE, Adam) on the final brain masks".into()
    }

    fn labels(&self) -> Map<String, Value> {
        labels()
    }

    fn network(&self, _: &Host) -> Result<PathBuf> {
        Ok(self.network.clone())
    }

    fn config(&self) -> Map<String, Value> {
        // About 300 iterations of 2 patches on two labelled volumes: a few minutes on a
        // 2-core CPU (a MONAI UNet reaches Dice 0.91-0.95 on an unseen T1 by then).
        let mut c = Map::new();
        c.insert("max_epochs".into(), json!(75));
        c.insert("train_batch_size".into(), json!(2));
        c.insert("val_interval".into(), json!(5));
        c.insert("lr".into(), json!(1e-3));
        c
    }

    fn optimizer(&self, request: &TrainRequest) -> Value {
        json!({"name": "adam", "lr": request.lr.unwrap_or(1e-3)})
    }

    fn train_pre_transforms(&self, _: &TrainRequest) -> Transforms {
        pre_transforms()
    }

    fn train_augmentation(&self, _: &TrainRequest) -> Augmentation {
        Augmentation {
            patch: [PATCH; 3],
            ..Augmentation::default()
        }
    }
}
