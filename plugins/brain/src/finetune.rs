//! Fine-tuning deepbet's 256³ model on the annotators' final masks
//! (`POST /train/brain_extraction`): cases prepared as deepbet's second stage sees them (RAS,
//! cropped to the brain's box grown by 20 %, resized to 256³, deepbet's normalisation with
//! the quantiles of the whole volume), whole 256³ inputs, DiceCE on the model's softmax output,
//! Adam at a low rate. The result is published to `brain_extraction`, which then runs it.

use crate::deepbet::{grow_box, normalize, quantiles, LARGE};
use labelhost_plugin_api::sdk::{
    json,
    pipeline::{
        Data, EnsureType, LoadImage, Orientation, Resize, SpatialCrop, Transform, Transforms,
    },
    train::{Augmentation, BasicTrainTask, TrainRequest},
    Error, Host, Map, Result, Value,
};
use std::path::PathBuf;

/// deepbet's second-stage input, from the label's box instead of the first stage's.
struct DeepBetCase;

impl Transform for DeepBetCase {
    fn name(&self) -> &'static str {
        "DeepBetCased"
    }

    fn apply(&self, d: &mut Data) -> Result<()> {
        let x = d
            .exec
            .op1("nan_to_num", d.tensor(self.name())?, &json!({}))?;
        let (lo, hi) = quantiles(&d.exec, &x)?;
        d.tensor = Some(x);
        let target = d
            .target
            .as_ref()
            .ok_or_else(|| Error::app("DeepBetCased needs the training label"))?;
        let b = d
            .exec
            .op1("foreground_bbox", target, &json!({}))?
            .to_data()?
            .to_i64()?;
        if b.len() != 6 || b[3..].iter().all(|v| *v == 0) {
            return Err(Error::invalid_input("the final label marks no brain"));
        }
        let shape = d.spatial_shape(self.name())?;
        let mut crop = SpatialCrop {
            roi_start: [0; 3],
            roi_end: [0; 3],
        };
        for axis in 0..3 {
            let (s, e) = grow_box(
                b[axis] as usize,
                b[3 + axis] as usize,
                1.0,
                shape[axis] as usize,
            );
            crop.roi_start[axis] = s as i64;
            crop.roi_end[axis] = e as i64;
        }
        crop.apply(d)?;
        Resize {
            spatial_size: [256; 3],
            mode: "nearest-exact",
        }
        .apply(d)?;
        let x = normalize(&d.exec, d.tensor(self.name())?, lo, hi, LARGE)?;
        d.tensor = Some(x);
        Ok(())
    }
}

/// The trainer.
pub(crate) struct DeepBetFineTune {
    pub(crate) model: PathBuf,
}

impl BasicTrainTask for DeepBetFineTune {
    fn description(&self) -> String {
        "Fine-tunes deepbet's 256³ model on the final brain masks".into()
    }

    fn labels(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("brain".into(), json!(1));
        m
    }

    fn network(&self, _: &Host) -> Result<PathBuf> {
        Ok(self.model.clone())
    }

    fn config(&self) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("max_epochs".into(), json!(4));
        c.insert("lr".into(), json!(1e-5));
        c
    }

    fn optimizer(&self, request: &TrainRequest) -> Value {
        json!({"name": "adam", "lr": request.lr.unwrap_or(1e-5)})
    }

    fn loss_function(&self, _: &TrainRequest) -> Value {
        // deepbet's model ends in a softmax: the loss takes probabilities.
        json!({"name": "dice_ce", "activation": "none"})
    }

    fn train_pre_transforms(&self, _: &TrainRequest) -> Transforms {
        vec![
            Box::new(LoadImage),
            Box::new(Orientation),
            Box::new(EnsureType),
            Box::new(DeepBetCase),
        ]
    }

    fn train_augmentation(&self, _: &TrainRequest) -> Augmentation {
        // The whole 256³ input: the model's instance norms see the statistics they were
        // trained with (a patch's differ).
        Augmentation {
            patch: [256; 3],
            num_samples: 1,
            ..Augmentation::default()
        }
    }

    fn val_inferer(&self, _: &TrainRequest) -> Value {
        json!({"roi_size": [256, 256, 256], "sw_batch_size": 1, "mode": "constant"})
    }
}
