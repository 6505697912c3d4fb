//! One-dimensional k-means over voxel intensities as a segmentation infer task.

use labelhost_plugin_api::sdk::{
    image, input_image, json, pipeline, Error, Host, InferResult, InferTask, InferTaskInfo,
    InferType, Map, Result, Value,
};
use std::time::Instant;

/// Labels each voxel with its intensity class, 1 (darkest) to `classes`: by the class
/// means the trainer fitted to the annotated images when it has run, else by k-means on
/// the image itself.
pub(crate) struct KMeans {
    pub(crate) classes: usize,
    pub(crate) trained: crate::train::Trained,
}

/// Class centres of `values` after Lloyd iterations from evenly spaced quantiles.
pub(crate) fn centres(values: &[f32], k: usize, iterations: usize) -> Vec<f32> {
    let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() || k == 0 {
        return Vec::new();
    }
    sorted.sort_by(f32::total_cmp);
    let mut c: Vec<f32> = (0..k)
        .map(|i| sorted[(2 * i + 1) * (sorted.len() - 1) / (2 * k)])
        .collect();
    for _ in 0..iterations {
        let mut sums = vec![(0f64, 0u64); k];
        for &v in &sorted {
            let j = nearest(&c, v);
            sums[j].0 += f64::from(v);
            sums[j].1 += 1;
        }
        let next: Vec<f32> = sums
            .iter()
            .zip(&c)
            .map(|(&(s, n), &old)| if n == 0 { old } else { (s / n as f64) as f32 })
            .collect();
        if next == c {
            break;
        }
        c = next;
    }
    c.sort_by(f32::total_cmp);
    c
}

pub(crate) fn nearest(centres: &[f32], v: f32) -> usize {
    let mut best = 0;
    for (j, &c) in centres.iter().enumerate() {
        if (v - c).abs() < (v - centres[best]).abs() {
            best = j;
        }
    }
    best
}

impl InferTask for KMeans {
    fn info(&self) -> InferTaskInfo {
        let labels: Map<String, Value> = (1..=self.classes)
            .map(|i| (format!("class_{i}"), json!(i)))
            .collect();
        let mut config = Map::new();
        config.insert("iterations".into(), json!(20));
        InferTaskInfo {
            infer_type: InferType::SEGMENTATION,
            labels: Value::Object(labels),
            dimension: 3,
            description: format!("{} intensity classes by k-means", self.classes),
            config,
        }
    }

    fn infer(&self, host: &Host, request: &Map<String, Value>) -> Result<InferResult> {
        let path = input_image(request)?;
        let iterations = request
            .get("iterations")
            .and_then(Value::as_u64)
            .unwrap_or(20);
        let iterations = usize::try_from(iterations.min(1000)).unwrap_or(20);
        let t0 = Instant::now();
        let volume = image::read(path)?;
        let values: Vec<f32> = volume.data.iter().copied().collect();
        let trained = self.trained.lock().map(|t| t.clone()).unwrap_or(None);
        let c = trained
            .clone()
            .unwrap_or_else(|| centres(&values, self.classes, iterations));
        if c.is_empty() {
            return Err(Error::invalid_input("the image has no finite voxels"));
        }
        let label = volume
            .data
            .mapv(|v| u8::try_from(nearest(&c, v) + 1).unwrap_or(u8::MAX));
        let out = pipeline::write_label_for(host, request, &volume, &label)?;
        let mut params = Map::new();
        params.insert("centres".into(), json!(c));
        params.insert("trained".into(), json!(trained.is_some()));
        params.insert(
            "latencies".into(),
            json!({"total": t0.elapsed().as_secs_f64()}),
        );
        Ok(InferResult {
            label: Some(out),
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{centres, nearest};

    #[test]
    fn finds_three_intensity_classes() {
        let mut v = vec![0.0f32; 100];
        v.extend(std::iter::repeat_n(50.0, 100));
        v.extend(std::iter::repeat_n(100.0, 100));
        let c = centres(&v, 3, 20);
        assert_eq!(c, vec![0.0, 50.0, 100.0]);
        assert_eq!(nearest(&c, 60.0), 1);
    }
}
