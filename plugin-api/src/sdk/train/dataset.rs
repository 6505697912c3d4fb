//! The training data: labelled samples from the datastore, MONAI Label's train/validation
//! split, and pre-processed cases kept in memory up to a budget (MONAI's `CacheDataset`
//! with a cap); cases beyond the budget are pre-processed again each time they are used,
//! so memory stays bounded however many volumes are labelled.

use super::sampler::Rng;
use crate::sdk::{
    error::{Error, Result},
    host::Host,
    pipeline::{Data, Transforms},
    DType,
};
use serde_json::{json, Value};
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its datastore id.
    pub id: String,
    /// The image file.
    pub image: PathBuf,
    /// Its `final` label file.
    pub label: PathBuf,
}

/// Every datastore image with a `final` label, in id order.
pub(super) fn datalist(host: &Host) -> Result<Vec<Sample>> {
    let store = host.datastore();
    let mut ids = store.labeled_images();
    ids.sort();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(label_id) = store.label_by_image_id(&id, "final") else {
            continue;
        };
        out.push(Sample {
            image: store.image_uri(&id)?,
            label: store.label_uri(&label_id, "final")?,
            id,
        });
    }
    Ok(out)
}

/// MONAI Label's split: `floor(n * val_split)` cases (shuffled by `seed`) validate, the
/// rest train; with no validation case (one image, or a small split) the training cases
/// are validated on.
pub(super) fn partition(
    mut all: Vec<Sample>,
    val_split: f64,
    seed: u64,
) -> (Vec<Sample>, Vec<Sample>) {
    let n_val = ((all.len() as f64) * val_split).floor() as usize;
    if n_val == 0 || n_val >= all.len() {
        let val = all.clone();
        return (all, val);
    }
    Rng::new(seed ^ 0x5eed).shuffle(&mut all);
    let val = all.split_off(all.len() - n_val);
    (all, val)
}

/// A pre-processed case on the host: the image `[D, H, W]` and its label.
#[derive(Debug)]
pub struct Case {
    /// The sample it came from.
    pub id: String,
    /// Spatial shape.
    pub shape: [usize; 3],
    /// Image voxels, row-major.
    pub image: Vec<f32>,
    /// Label voxels, row-major.
    pub label: Vec<u8>,
    /// Indices of the voxels with a label other than 0 (for balanced sampling).
    pub foreground: Vec<u32>,
    /// What pads a patch running past the image: its smallest value, at most 0.
    pub fill: f32,
}

impl Case {
    fn bytes(&self) -> usize {
        self.image.len() * 4 + self.label.len() + self.foreground.len() * 4
    }
}

/// Runs `transforms` on one sample (image and label together) and brings the result to
/// the host; label values outside `known` are refused naming the image.
pub(super) fn prepare(
    host: &Host,
    transforms: &Transforms,
    sample: &Sample,
    device: &str,
    known: &[u8],
) -> Result<Case> {
    let request = json!({"image": sample.image.to_string_lossy(), "device": device});
    let request = request.as_object().cloned().unwrap_or_default();
    let mut d = Data::new(host, &request);
    d.target_path = Some(sample.label.clone());
    for t in transforms {
        t.apply(&mut d).map_err(|e| {
            Error::new(
                e.code,
                format!("{}: {}: {}", sample.id, t.name(), e.message),
            )
        })?;
    }
    let (Some(image), Some(label)) = (d.tensor.take(), d.target.take()) else {
        return Err(Error::app(format!(
            "{}: the train pre-transforms must load the image and send it to the device",
            sample.id
        )));
    };
    let image_data = image.to_data()?;
    let shape: Vec<usize> = image_data.shape.iter().map(|&s| s as usize).collect();
    let spatial = <[usize; 3]>::try_from(&shape[shape.len().saturating_sub(3)..])
        .map_err(|_| Error::invalid_input(format!("{}: the image is not 3-D", sample.id)))?;
    let label = d
        .exec
        .op1("to_dtype", &label, &json!({"dtype": DType::U8.0}))?;
    let label = label.to_data()?.bytes.into_vec();
    let image = image_data.to_f32()?;
    if spatial.contains(&0) {
        return Err(Error::invalid_input(format!(
            "{}: the image is empty",
            sample.id
        )));
    }
    if image.len() != label.len() || image.len() != spatial.iter().product::<usize>() {
        return Err(Error::invalid_input(format!(
            "{}: one channel of image and label expected after the pre-transforms",
            sample.id
        )));
    }
    let mut seen = [false; 256];
    for &v in &label {
        seen[v as usize] = true;
    }
    let unknown: Vec<usize> = (1..256)
        .filter(|&v| seen[v] && !known.contains(&(v as u8)))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::invalid_input(format!(
            "{}: the final label has values {unknown:?} the task does not know (labels: {known:?})",
            sample.id
        )));
    }
    let foreground = label
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != 0)
        .map(|(i, _)| i as u32)
        .collect();
    let fill = image.iter().copied().fold(f32::INFINITY, f32::min).min(0.0);
    Ok(Case {
        id: sample.id.clone(),
        shape: spatial,
        image,
        label,
        foreground,
        fill,
    })
}

/// Pre-processed cases by index, cached while they fit the budget.
pub(super) struct CaseStore {
    host: Host,
    transforms: Transforms,
    samples: Vec<Sample>,
    device: String,
    known: Vec<u8>,
    budget: usize,
    cache: Mutex<(HashMap<usize, Arc<Case>>, usize)>,
}

impl CaseStore {
    pub(super) fn new(
        host: &Host,
        transforms: Transforms,
        samples: Vec<Sample>,
        device: &str,
        known: Vec<u8>,
        budget: usize,
    ) -> Self {
        CaseStore {
            host: host.clone(),
            transforms,
            samples,
            device: device.to_owned(),
            known,
            budget,
            cache: Mutex::new((HashMap::new(), 0)),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.samples.len()
    }

    /// Case `i`, from the cache or pre-processed now (and cached if it fits).
    pub(super) fn get(&self, i: usize) -> Result<Arc<Case>> {
        if let Some(case) = self.cache.lock().ok().and_then(|c| c.0.get(&i).cloned()) {
            return Ok(case);
        }
        let case = Arc::new(prepare(
            &self.host,
            &self.transforms,
            &self.samples[i],
            &self.device,
            &self.known,
        )?);
        if let Ok(mut c) = self.cache.lock() {
            if c.1 + case.bytes() <= self.budget {
                c.1 += case.bytes();
                c.0.insert(i, case.clone());
            }
        }
        Ok(case)
    }

    /// Pre-processes every case once and drops those refused as bad input (a label on
    /// another grid, label values the task does not know); answers their errors. Cases
    /// that fit the budget stay cached.
    pub(super) fn drop_bad_cases(&mut self) -> Result<Vec<Error>> {
        let (mut keep, mut bad, mut cached) = (Vec::new(), Vec::new(), HashMap::new());
        for i in 0..self.samples.len() {
            match self.get(i) {
                Ok(case) => {
                    if self.cache.lock().is_ok_and(|c| c.0.contains_key(&i)) {
                        cached.insert(keep.len(), case);
                    }
                    keep.push(self.samples[i].clone());
                }
                Err(e) if e.code == crate::sdk::ErrorCode::INVALID_INPUT => bad.push(e),
                Err(e) => return Err(e),
            }
        }
        let bytes = cached.values().map(|c| c.bytes()).sum();
        self.samples = keep;
        self.cache = Mutex::new((cached, bytes));
        Ok(bad)
    }

    /// The samples it holds.
    pub(super) fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// `{"cached", "cached_bytes", "cases"}`.
    pub(super) fn stats(&self) -> Value {
        let (n, bytes) = self.cache.lock().map_or((0, 0), |c| (c.0.len(), c.1));
        json!({"cases": self.samples.len(), "cached": n, "cached_bytes": bytes})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                id: format!("img{i}"),
                image: PathBuf::from(format!("/i/{i}")),
                label: PathBuf::from(format!("/l/{i}")),
            })
            .collect()
    }

    #[test]
    fn the_split_follows_monai_label() {
        let (train, val) = partition(samples(10), 0.2, 1);
        assert_eq!((train.len(), val.len()), (8, 2));
        assert!(val.iter().all(|v| !train.contains(v)));
        // One image, or too few for a validation case: validate on the training cases.
        let (train, val) = partition(samples(1), 0.2, 1);
        assert_eq!((train.len(), val), (1, samples(1)));
        let (train, val) = partition(samples(2), 0.2, 1);
        assert_eq!((train.len(), val.len()), (2, 2));
        assert_eq!(
            partition(samples(10), 0.2, 1),
            partition(samples(10), 0.2, 1)
        );
    }
}
