//! Otsu's threshold over the intensity histogram, as a segmentation infer task.

use labelhost_plugin_api::sdk::{
    image, input_image, json, pipeline, Error, Host, InferResult, InferTask, InferTaskInfo,
    InferType, Map, Result, Value,
};
use std::time::Instant;

/// Foreground mask: voxels above Otsu's threshold.
pub(crate) struct OtsuMask {
    pub(crate) bins: usize,
}

/// The threshold maximising between-class variance of `values` over `bins` bins.
pub(crate) fn otsu_threshold(values: &[f32], bins: usize) -> Option<f32> {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            if v.is_finite() {
                (lo.min(v), hi.max(v))
            } else {
                (lo, hi)
            }
        });
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let width = (hi - lo) / bins as f32;
    let mut hist = vec![0u64; bins];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = (((v - lo) / width) as usize).min(bins - 1);
        hist[b] += 1;
    }
    let total: u64 = hist.iter().sum();
    let weighted: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum();
    let (mut below, mut below_sum, mut best, mut best_bin) = (0u64, 0f64, -1f64, 0usize);
    for (i, &c) in hist.iter().enumerate() {
        below += c;
        below_sum += i as f64 * c as f64;
        let above = total - below;
        if below == 0 || above == 0 {
            continue;
        }
        let m0 = below_sum / below as f64;
        let m1 = (weighted - below_sum) / above as f64;
        let between = below as f64 * above as f64 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_bin = i;
        }
    }
    Some(lo + width * (best_bin + 1) as f32)
}

impl InferTask for OtsuMask {
    fn info(&self) -> InferTaskInfo {
        let mut config = Map::new();
        config.insert("bins".into(), json!(self.bins));
        InferTaskInfo {
            infer_type: InferType::SEGMENTATION,
            labels: json!({"brain": 1}),
            dimension: 3,
            description: "Head foreground mask by Otsu's threshold".into(),
            config,
        }
    }

    fn infer(&self, host: &Host, request: &Map<String, Value>) -> Result<InferResult> {
        let path = input_image(request)?;
        let t0 = Instant::now();
        let volume = image::read(path)?;
        let t1 = Instant::now();
        let values = volume
            .data
            .as_slice_memory_order()
            .map(<[f32]>::to_vec)
            .unwrap_or_else(|| volume.data.iter().copied().collect());
        let threshold = otsu_threshold(&values, self.bins)
            .ok_or_else(|| Error::invalid_input("the image is constant: no threshold exists"))?;
        let mask = volume.data.mapv(|v| u8::from(v > threshold));
        let foreground = mask.iter().filter(|&&v| v == 1).count();
        let t2 = Instant::now();
        let out = pipeline::write_label_for(host, request, &volume, &mask)?;
        let t3 = Instant::now();
        let mut params = Map::new();
        params.insert("threshold".into(), json!(threshold));
        params.insert("bins".into(), json!(self.bins));
        params.insert("foreground_voxels".into(), json!(foreground));
        params.insert(
            "latencies".into(),
            json!({
                "pre": (t1 - t0).as_secs_f64(), "infer": (t2 - t1).as_secs_f64(),
                "invert": 0.0, "post": 0.0, "write": (t3 - t2).as_secs_f64(),
                "total": (t3 - t0).as_secs_f64(), "transform": {}
            }),
        );
        Ok(InferResult {
            label: Some(out),
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::otsu_threshold;

    #[test]
    fn separates_two_clusters() {
        let mut v = vec![10.0f32; 500];
        v.extend(std::iter::repeat_n(200.0, 300));
        let t = otsu_threshold(&v, 256).expect("threshold");
        assert!(t > 10.0 && t < 200.0, "threshold {t}");
    }

    #[test]
    fn constant_image_has_no_threshold() {
        assert_eq!(otsu_threshold(&[3.0; 10], 64), None);
    }
}
