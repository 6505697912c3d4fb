//! `brain_deepedit` and `brain_deepgrow`: brain masks an annotator steers with clicks, from
//! one click network (a MONAI UNet taking the image plus a brain and a background guidance
//! channel) that labelhost trains on the final masks with simulated clicks
//! (`POST /train/brain_deepedit`, MONAI's DeepEdit training).
//!
//! DeepEdit (MONAI Label's flow): with no click the network segments on its own (the
//! automatic pass); then the client sends every click so far, per label name
//! (`{"brain": [[i, j, k]], "background": [[i, j, k]]}`), and each answer replaces the last.
//! DeepGrow 3-D: `foreground` / `background` clicks, a region of `roi_size` voxels (128³ by
//! default) cropped around them and segmented; with `previous_label` (a tag such as
//! `original`) the image's saved label is kept outside the region, so clicks refine it.
//!
//! Both run at the training grid (RAS, intensities scaled by percentiles, 3 mm voxels),
//! with 3-voxel Gaussian clicks, and answer the mask on the image's own grid, keeping the
//! largest brain component and those holding a brain click.

use crate::{scribbles::previous_label, unet::BrainUNetTrainer};
use labelhost_plugin_api::sdk::{
    input_image, json,
    pipeline::{
        request_clicks, sliding_window_inferer, sliding_window_params, Activations, AddGuidance,
        AsDiscrete, CropAroundClicks, Data, EnsureType, LoadImage, Orientation, Pipeline, Restore,
        ScaleIntensityRangePercentiles, Spacing, ToHost, Transform, Transforms, BACKGROUND,
    },
    train::{Augmentation, BasicTrainTask, ClickSimulation, TrainRequest},
    transforms::keep_largest_and_seeded,
    Error, ErrorCode, Host, InferTaskInfo, InferType, Map, Result, Value,
};
use ndarray::{Ix3, Zip};
use std::path::PathBuf;

/// The DeepEdit task's (and its trainer's) name.
pub(crate) const NAME: &str = "brain_deepedit";
/// The DeepGrow task's name (it runs the network `brain_deepedit` publishes).
pub(crate) const DEEPGROW: &str = "brain_deepgrow";
/// The guidance channels after the image, in the network's order.
const CHANNELS: [&str; 2] = ["brain", BACKGROUND];
/// The label values of those channels.
const VALUES: [u8; 2] = [1, 0];
/// Voxel size in mm (as `brain_unet`).
const SPACING: f64 = 3.0;
/// A click's Gaussian sigma in voxels of that grid.
const SIGMA: f64 = 3.0;
/// DeepGrow's default region, in voxels of the input.
const ROI: i64 = 128;

fn labels() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("brain".into(), json!(1));
    m.insert(BACKGROUND.into(), json!(0));
    m
}

fn channels() -> Vec<String> {
    CHANNELS.iter().map(|c| c.to_string()).collect()
}

/// The image's pre-processing, for training (no clicks) and inference.
fn image_transforms(crop: Option<[i64; 3]>) -> Transforms {
    let mut t: Transforms = vec![
        Box::new(LoadImage),
        Box::new(Orientation),
        Box::new(EnsureType),
        Box::new(ScaleIntensityRangePercentiles {
            lower: 0.5,
            upper: 99.5,
            b_min: 0.0,
            b_max: 1.0,
            clip: true,
        }),
    ];
    if let Some(size) = crop {
        t.push(Box::new(CropAroundClicks {
            labels: channels(),
            size,
        }));
    }
    t.push(Box::new(Spacing {
        pixdim: [SPACING; 3],
        mode: "trilinear",
    }));
    t
}

/// The infer tasks: DeepEdit over the whole image, or DeepGrow in a region around the
/// clicks.
pub(crate) struct ClickTask {
    pub(crate) host: Host,
    pub(crate) deepgrow: bool,
}

impl ClickTask {
    fn roi_size(&self, d: &Data) -> Result<[i64; 3]> {
        let Some(v) = d.request.get("roi_size").filter(|v| !v.is_null()) else {
            return Ok([ROI; 3]);
        };
        let sizes: Vec<i64> = match v {
            Value::Number(_) => vec![v.as_i64().unwrap_or(0); 3],
            _ => v
                .as_array()
                .map(|a| a.iter().map(|x| x.as_i64().unwrap_or(0)).collect())
                .unwrap_or_default(),
        };
        <[i64; 3]>::try_from(sizes)
            .ok()
            .filter(|s| s.iter().all(|v| (16..=1024).contains(v)))
            .ok_or_else(|| Error::invalid_input("roi_size must be 3 sizes (or one) in 16..1024"))
    }
}

impl Pipeline for ClickTask {
    fn info(&self) -> InferTaskInfo {
        let mut config = Map::new();
        config.insert("sigma".into(), json!(SIGMA));
        if self.deepgrow {
            config.insert("roi_size".into(), json!([ROI, ROI, ROI]));
            config.insert("previous_label".into(), json!(["", "original", "final"]));
        }
        let (infer_type, description) = if self.deepgrow {
            (InferType::DEEPGROW, "Brain in a region around your clicks (foreground/background), from the click network labelhost trains (POST /train/brain_deepedit first)")
        } else {
            (InferType::DEEPEDIT, "Brain mask, automatic then refined by clicks per label, from the click network labelhost trains (POST /train/brain_deepedit first)")
        };
        InferTaskInfo {
            infer_type,
            labels: Value::Object(labels()),
            dimension: 3,
            description: description.into(),
            config,
        }
    }

    fn model_path(&self) -> Option<PathBuf> {
        self.host.published_model(NAME)
    }

    fn pre_transforms(&self, d: &Data) -> Transforms {
        let crop = if self.deepgrow {
            // A bad roi_size is refused by the first transform.
            match self.roi_size(d) {
                Ok(s) => Some(s),
                Err(e) => return vec![Box::new(Refuse(e))],
            }
        } else {
            None
        };
        let mut t = image_transforms(crop);
        t.push(Box::new(AddGuidance {
            labels: channels(),
            sigma: SIGMA,
        }));
        t
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
        let params = sliding_window_params(&d.request, [crate::unet::PATCH as i64; 3])?;
        sliding_window_inferer(d, &path, &params)
    }

    fn post_transforms(&self, _: &Data) -> Transforms {
        let mut t: Transforms = vec![
            Box::new(Activations { softmax: true }),
            Box::new(AsDiscrete { threshold: None }),
            Box::new(ToHost),
            Box::new(KeepBrain),
            Box::new(Restore),
        ];
        if self.deepgrow {
            t.push(Box::new(KeepPreviousOutside));
        }
        t
    }
}

/// A transform that fails with the error found while building the list.
struct Refuse(Error);

impl Transform for Refuse {
    fn name(&self) -> &'static str {
        "Refuse"
    }
    fn apply(&self, _: &mut Data) -> Result<()> {
        Err(self.0.clone())
    }
}

/// The largest brain component and every component holding a brain click: islands no
/// click asked for go (the brain is one piece), what the annotator clicked stays.
struct KeepBrain;

impl Transform for KeepBrain {
    fn name(&self) -> &'static str {
        "KeepLargestConnectedComponentd"
    }

    fn apply(&self, d: &mut Data) -> Result<()> {
        // On the network's grid, before Restored: a few hundred thousand voxels, not millions.
        let clicks = request_clicks(d, &CHANNELS, self.name())?;
        let on_grid = clicks.on_grid(d, self.name())?;
        let label = d
            .label
            .as_mut()
            .ok_or_else(|| Error::app("KeepLargestConnectedComponentd: no label yet"))?;
        let s = label.shape().to_vec();
        if s.len() != 3 {
            return Err(Error::app(
                "KeepLargestConnectedComponentd: the label is not 3-D",
            ));
        }
        let seeds: Vec<[usize; 3]> = on_grid[0]
            .iter()
            .map(|p| {
                [0, 1, 2].map(|a| (p[a].round().max(0.0) as usize).min(s[a].saturating_sub(1)))
            })
            .collect();
        keep_largest_and_seeded(label, &seeds);
        Ok(())
    }
}

/// DeepGrow's merge: outside the clicked region the `previous_label` stays as it was.
struct KeepPreviousOutside;

impl Transform for KeepPreviousOutside {
    fn name(&self) -> &'static str {
        "KeepPreviousOutside"
    }

    fn apply(&self, d: &mut Data) -> Result<()> {
        let Some(tag) = d
            .request
            .get("previous_label")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        else {
            return Ok(());
        };
        let roi: Vec<usize> = d
            .result
            .get("roi")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64().map(|v| v as usize))
                    .collect()
            })
            .unwrap_or_default();
        let mut previous = previous_label(&d.host, input_image(&d.request)?, tag)?;
        let previous = previous.take_first_frame();
        let label = d
            .label
            .as_mut()
            .ok_or_else(|| Error::app("KeepPreviousOutside: no label yet"))?;
        if roi.len() != 6 {
            return Err(Error::app(
                "KeepPreviousOutside: no roi (SpatialCropGuidanced first)",
            ));
        }
        if previous.shape() != label.shape() {
            return Err(Error::invalid_input(format!(
                "the '{tag}' label's grid {:?} is not the image's {:?}",
                previous.shape(),
                label.shape()
            )));
        }
        let three = |e: ndarray::ShapeError| Error::app(format!("KeepPreviousOutside: {e}"));
        let label = label
            .view_mut()
            .into_dimensionality::<Ix3>()
            .map_err(three)?;
        let previous = previous
            .view()
            .into_dimensionality::<Ix3>()
            .map_err(three)?;
        let inside = |i: [usize; 3]| (0..3).all(|a| roi[2 * a] <= i[a] && i[a] < roi[2 * a + 1]);
        Zip::indexed(label)
            .and(previous)
            .for_each(|(i, j, k), v, &p| {
                if !inside([i, j, k]) {
                    *v = u8::from(p > 0.5);
                }
            });
        Ok(())
    }
}

/// The trainer: `brain_unet`'s loop and schedule on the click network, with DeepEdit's
/// simulated clicks.
pub(crate) struct ClickTrainer {
    /// brain_unet's trainer holding the untrained click network
    /// (`models/brain_deepedit.pt` in the bundle).
    pub(crate) unet: BrainUNetTrainer,
}

impl BasicTrainTask for ClickTrainer {
    fn description(&self) -> String {
        "Trains the click network of brain_deepedit / brain_deepgrow with simulated clicks".into()
    }

    fn labels(&self) -> Map<String, Value> {
        labels()
    }

    fn network(&self, host: &Host) -> Result<PathBuf> {
        self.unet.network(host)
    }

    fn config(&self) -> Map<String, Value> {
        self.unet.config()
    }

    fn optimizer(&self, request: &TrainRequest) -> Value {
        self.unet.optimizer(request)
    }

    fn train_pre_transforms(&self, _: &TrainRequest) -> Transforms {
        image_transforms(None)
    }

    fn train_augmentation(&self, request: &TrainRequest) -> Augmentation {
        self.unet.train_augmentation(request)
    }

    fn click_simulation(&self, _: &TrainRequest) -> Option<ClickSimulation> {
        Some(ClickSimulation {
            channels: VALUES.to_vec(),
            sigma: SIGMA,
            ..ClickSimulation::default()
        })
    }
}
