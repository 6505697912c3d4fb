//! DeepEdit's click simulation while training (MONAI's `Interaction` run from
//! `train_iteration_update`): before each step, a batch item is given clicks with
//! probability `probability` (else all its guidance is zero: the automatic mode). A clicked
//! item starts with one click per label inside it (`AddInitialSeedPointMissingLabelsd`);
//! then, for 0 to `max_interactions` rounds, the live network segments the batch and each
//! label gets a click where it was missed (`FindDiscrepancyRegionsDeepEditd`,
//! `AddRandomGuidanceDeepEditd`). The step trains on the image with the final guidance.
//! Validation gives each case one click per label, at the label's deepest voxel.

use super::{
    dataset::Case,
    sampler::{index, Batch, Rng},
};
use crate::sdk::{
    error::{Error, Result},
    host::{Executor, TrainableModel},
    transforms::{click_in, guidance_map},
};
use serde_json::json;

/// How a click network is trained: the guidance channels and the simulated annotator.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickSimulation {
    /// The label value each guidance channel after the image stands for, in the network's
    /// order (0 is background): the inference side's [`crate::sdk::pipeline::AddGuidance`]
    /// labels in the same order.
    pub channels: Vec<u8>,
    /// The Gaussian sigma of a click, in voxels of the training grid.
    pub sigma: f64,
    /// The chance that a batch item is trained with clicks (MONAI's `deepgrow_probability`).
    pub probability: f64,
    /// The most correction rounds simulated before a step (drawn from `0..=max` per batch).
    pub max_interactions: usize,
}

impl Default for ClickSimulation {
    fn default() -> Self {
        ClickSimulation {
            channels: vec![1, 0],
            sigma: 2.0,
            probability: 0.6,
            max_interactions: 3,
        }
    }
}

/// A voxel's coordinates from its row-major index.
fn coords(i: usize, shape: [usize; 3]) -> [f64; 3] {
    index(shape, i).map(|v| v as f64)
}

impl ClickSimulation {
    /// The network input `[B, 1 + channels, D, H, W]` for one image of `n` voxels per item
    /// and the clicks of each item and channel.
    fn input(&self, image: &[f32], shape: [usize; 3], clicks: &[Vec<Vec<[f64; 3]>>]) -> Vec<f32> {
        let n: usize = shape.iter().product();
        let mut out = Vec::with_capacity(image.len() * (1 + self.channels.len()));
        for (b, item) in clicks.iter().enumerate() {
            out.extend_from_slice(&image[b * n..(b + 1) * n]);
            for points in item {
                out.extend(guidance_map(shape, points, self.sigma));
            }
        }
        out
    }

    /// The batch's input with simulated clicks; answers its shape and values.
    pub(super) fn guide(
        &self,
        exec: &Executor,
        model: &TrainableModel,
        batch: &Batch,
        device: &str,
        rng: &mut Rng,
    ) -> Result<([i64; 5], Vec<f32>)> {
        let [b, _, d, h, w] = batch.shape.map(|s| s.max(0) as usize);
        let spatial = [d, h, w];
        let n = d * h * w;
        let label = |item: usize| &batch.label[item * n..(item + 1) * n];
        let mut clicks = vec![vec![Vec::new(); self.channels.len()]; b];
        let active: Vec<bool> = (0..b).map(|_| rng.unit() < self.probability).collect();
        for item in (0..b).filter(|&i| active[i]) {
            for (c, &value) in self.channels.iter().enumerate() {
                let region: Vec<bool> = label(item).iter().map(|&v| v == value).collect();
                if let Some(i) = click_in(&region, spatial, Some(rng.unit())) {
                    clicks[item][c].push(coords(i, spatial));
                }
            }
        }
        let rounds = if active.contains(&true) {
            rng.below(self.max_interactions + 1)
        } else {
            0
        };
        let shape = [
            b as i64,
            1 + self.channels.len() as i64,
            d as i64,
            h as i64,
            w as i64,
        ];
        for _ in 0..rounds {
            let x = exec.tensor_f32(&shape, &self.input(&batch.image, spatial, &clicks), device)?;
            let logits = exec
                .forward(model.model(), &[&x])?
                .into_iter()
                .next()
                .ok_or_else(|| Error::app("the network gave no output"))?;
            let pred = exec
                .op1("argmax", &logits, &json!({"dim": 1}))?
                .to_data()?
                .to_i64()?;
            if pred.len() != b * n {
                return Err(Error::app("the network's output does not match its input"));
            }
            for item in (0..b).filter(|&i| active[i]) {
                let pred = &pred[item * n..(item + 1) * n];
                for (c, &value) in self.channels.iter().enumerate() {
                    let missed: Vec<bool> = label(item)
                        .iter()
                        .zip(pred)
                        .map(|(&l, &p)| l == value && p != i64::from(value))
                        .collect();
                    if let Some(i) = click_in(&missed, spatial, Some(rng.unit())) {
                        clicks[item][c].push(coords(i, spatial));
                    }
                }
            }
        }
        Ok((shape, self.input(&batch.image, spatial, &clicks)))
    }

    /// A validation case's input: one click per label at its deepest voxel.
    pub(super) fn validation_input(&self, case: &Case) -> Vec<f32> {
        let clicks: Vec<Vec<[f64; 3]>> = self
            .channels
            .iter()
            .map(|&value| {
                let region: Vec<bool> = case.label.iter().map(|&v| v == value).collect();
                click_in(&region, case.shape, None)
                    .map(|i| vec![coords(i, case.shape)])
                    .unwrap_or_default()
            })
            .collect();
        self.input(&case.image, case.shape, &[clicks])
    }
}
