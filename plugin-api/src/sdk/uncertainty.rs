//! How unsure a model is about an image, one score per image, for active learning
//! (feature `nifti`): [`Uncertainty`] is both a scoring method (scores the unlabelled
//! images into their info, reusing scores until the model file changes) and a strategy
//! (serves the unlabelled, unclaimed image with the highest fresh score).
//!
//! Two ways to disagree with itself, each over `passes` sliding-window passes on the
//! task's own pre-processing: [`Method::Epistemic`], Monte-Carlo dropout (the model's
//! weights in a twin network with dropout, in training mode, [`Executor::mc_dropout`]);
//! [`Method::Tta`], test-time augmentation (flips of the spatial axes and intensity scaled
//! by ±5 %, each prediction flipped back). Per voxel, with p̄ the mean class probabilities
//! and H the entropy: `disagreement` = H(p̄) − mean H(pₖ) (the mutual information between
//! prediction and pass, BALD), `entropy` = H(p̄), `variance` = mean over classes of the
//! probabilities' variance; each averaged over the voxels. The score is the disagreement.

use super::{
    error::{Error, Result},
    host::{Executor, Host},
    pipeline::{sliding_window_params, Data, Pipeline},
    strategies::{self, candidates},
    tasks::{Request, ScoringMethod, Strategy},
};
use serde_json::{json, Map, Value};
use std::{path::PathBuf, sync::Arc};

/// How the passes differ.
#[derive(Clone, Debug)]
pub enum Method {
    /// Monte-Carlo dropout through `network`, the model's architecture built with dropout.
    Epistemic {
        /// The TorchScript twin with dropout layers.
        network: PathBuf,
    },
    /// Test-time augmentation: flips and intensity scaling.
    Tta,
}

/// An uncertainty scoring method and strategy over an infer task's pipeline.
#[derive(Clone)]
pub struct Uncertainty {
    /// Its name, and its key in image info (`{"score", "entropy", "variance", ...}`).
    pub name: String,
    /// How the passes differ.
    pub method: Method,
    /// Passes per image (at least 2).
    pub passes: usize,
    /// The infer task: its pre-transforms prepare the input, its `model_path` is the model.
    pub pipeline: Arc<dyn Pipeline>,
    /// Sliding-window ROI of the model.
    pub roi: [i64; 3],
}

/// The flips (dims of a `[1, C, D, H, W]` tensor) and intensity factor of TTA pass `k`.
fn augmentation(k: usize) -> (Vec<i64>, f64) {
    const FLIPS: [&[i64]; 8] = [&[], &[2], &[3], &[4], &[2, 3], &[2, 4], &[3, 4], &[2, 3, 4]];
    const FACTORS: [f64; 3] = [1.0, 0.95, 1.05];
    (FLIPS[k % 8].to_vec(), FACTORS[k % 3])
}

/// Running sums over passes, per voxel.
struct Sums {
    classes: usize,
    passes: usize,
    p: Vec<f64>,
    p2: Vec<f64>,
    h: Vec<f64>,
}

fn entropy(p: impl Iterator<Item = f64>) -> f64 {
    -p.filter(|&v| v > 0.0).map(|v| v * v.ln()).sum::<f64>()
}

impl Sums {
    fn new(classes: usize, voxels: usize) -> Self {
        Sums {
            classes,
            passes: 0,
            p: vec![0.0; classes * voxels],
            p2: vec![0.0; classes * voxels],
            h: vec![0.0; voxels],
        }
    }

    /// Adds one pass's probabilities, class-major (`[C, V]`).
    fn add(&mut self, probs: &[f32]) {
        let voxels = self.h.len();
        for (i, &v) in probs.iter().enumerate() {
            let v = f64::from(v);
            self.p[i] += v;
            self.p2[i] += v * v;
        }
        for (x, h) in self.h.iter_mut().enumerate() {
            *h += entropy((0..self.classes).map(|c| f64::from(probs[c * voxels + x])));
        }
        self.passes += 1;
    }

    /// `{"score", "disagreement", "entropy", "variance"}`, averaged over the voxels.
    fn scores(&self) -> Value {
        let (k, voxels) = (self.passes.max(1) as f64, self.h.len());
        let (mut h_mean, mut mi, mut var) = (0.0, 0.0, 0.0);
        for x in 0..voxels {
            let mean = |c: usize| self.p[c * voxels + x] / k;
            let h = entropy((0..self.classes).map(mean));
            h_mean += h;
            mi += (h - self.h[x] / k).max(0.0);
            var += (0..self.classes)
                .map(|c| (self.p2[c * voxels + x] / k - mean(c).powi(2)).max(0.0))
                .sum::<f64>()
                / self.classes as f64;
        }
        let n = voxels.max(1) as f64;
        json!({"score": mi / n, "disagreement": mi / n, "entropy": h_mean / n, "variance": var / n})
    }
}

/// The model file's modification time in milliseconds: scores made with another are stale.
fn stamp(model: &std::path::Path) -> Option<u64> {
    let t = std::fs::metadata(model).and_then(|m| m.modified()).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
}

impl Uncertainty {
    /// The scores of one image under the model at `model`.
    pub fn measure(
        &self,
        host: &Host,
        image: &std::path::Path,
        model: &std::path::Path,
    ) -> Result<Value> {
        let mut request = Map::new();
        request.insert("image".into(), json!(image.to_string_lossy()));
        let mut d = Data::new(host, &request);
        for t in self.pipeline.pre_transforms(&d) {
            t.apply(&mut d)?;
        }
        let [a, b, c] = d.spatial_shape(&self.name)?;
        let exec: &Executor = &d.exec;
        let x = exec.op1(
            "reshape",
            d.tensor(&self.name)?,
            &json!({"shape": [1, -1, a, b, c]}),
        )?;
        let mut net = exec.load_model(model, &d.device)?;
        if let Method::Epistemic { network } = &self.method {
            net = exec.mc_dropout(net, network)?;
        }
        let params = sliding_window_params(&request, self.roi)?;
        let voxels = usize::try_from(a * b * c).map_err(|_| Error::app("bad shape"))?;
        let mut sums: Option<Sums> = None;
        for k in 0..self.passes.max(2) {
            let (flips, factor) = match self.method {
                Method::Tta => augmentation(k),
                Method::Epistemic { .. } => (Vec::new(), 1.0),
            };
            let flip = |t: &super::host::Tensor| exec.op1("flip", t, &json!({ "dims": flips }));
            let flipped = if flips.is_empty() {
                None
            } else {
                Some(flip(&x)?)
            };
            let input = flipped.as_ref().unwrap_or(&x);
            let scaled = if factor == 1.0 {
                None
            } else {
                Some(exec.op1("affine", input, &json!({"scale": factor, "shift": 0.0}))?)
            };
            let mut logits = exec.sliding_window(net, scaled.as_ref().unwrap_or(input), &params)?;
            if !flips.is_empty() {
                logits = flip(&logits)?;
            }
            let probs = exec
                .op1("softmax", &logits, &json!({"dim": 1}))?
                .to_data()?
                .to_f32()?;
            let classes = probs.len() / voxels.max(1);
            sums.get_or_insert_with(|| Sums::new(classes, voxels))
                .add(&probs);
        }
        Ok(sums.map_or(Value::Null, |s| s.scores()))
    }

    /// The image's stored scores when they were made with the model stamped `stamp`.
    fn fresh(&self, host: &Host, id: &str, stamp: Option<u64>) -> Option<Value> {
        let info = host.datastore().image_info(id).ok()?;
        let mine = info.get(&self.name)?;
        (stamp.is_some() && mine.get("model_ts")?.as_u64() == stamp).then(|| mine.clone())
    }
}

impl ScoringMethod for Uncertainty {
    fn description(&self) -> String {
        match self.method {
            Method::Epistemic { .. } => format!(
                "Epistemic uncertainty (Monte-Carlo dropout, {} passes) of the unlabelled images",
                self.passes
            ),
            Method::Tta => format!(
                "Disagreement under test-time augmentation ({} passes) of the unlabelled images",
                self.passes
            ),
        }
    }

    fn score(&self, host: &Host, request: &Request) -> Result<Value> {
        let Some(model) = self.pipeline.model_path() else {
            return Ok(
                json!({"total": 0, "skipped": 0, "executed": 0, "detail": "no model to score with yet"}),
            );
        };
        let stamp = stamp(&model);
        let job = request.get("_job").and_then(Value::as_str);
        let store = host.datastore();
        let mut ids = store.unlabeled_images();
        ids.sort();
        let (mut skipped, mut failed, mut scores) = (0, Map::new(), Map::new());
        for (done, id) in ids.iter().enumerate() {
            let stats = json!({"stats": {"done": done, "total": ids.len(), "image": id}});
            if !host.job_progress(job, &stats) {
                break;
            }
            if let Some(s) = self.fresh(host, id, stamp) {
                skipped += 1;
                scores.insert(id.clone(), s["score"].clone());
                continue;
            }
            let started = std::time::Instant::now();
            let measured = store
                .image_uri(id)
                .and_then(|path| self.measure(host, &path, &model));
            let mut s = match measured {
                Ok(Value::Object(s)) => s,
                Ok(_) => continue,
                Err(e) => {
                    failed.insert(id.clone(), json!(e.to_string()));
                    continue;
                }
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            s.insert("model_ts".into(), json!(stamp));
            s.insert("passes".into(), json!(self.passes.max(2)));
            s.insert("ts".into(), json!(now));
            s.insert("latency".into(), json!(started.elapsed().as_secs_f64()));
            scores.insert(id.clone(), s["score"].clone());
            let mut info = Map::new();
            if matches!(self.method, Method::Epistemic { .. }) {
                // MONAI Label's keys, read by its epistemic strategy.
                info.insert("epistemic_entropy".into(), s["score"].clone());
                info.insert("epistemic_ts".into(), json!(stamp));
            }
            info.insert(self.name.clone(), Value::Object(s));
            store.update_image_info(id, &info)?;
        }
        let executed = scores.len() - skipped;
        Ok(
            json!({"total": ids.len(), "skipped": skipped, "executed": executed, "failed": failed, "scores": scores}),
        )
    }
}

impl Strategy for Uncertainty {
    fn description(&self) -> String {
        format!(
            "The most uncertain unlabelled image by {} (random until scored)",
            self.name
        )
    }

    fn next_sample(&self, host: &Host, request: &Request) -> Result<Option<Map<String, Value>>> {
        let stamp = self.pipeline.model_path().as_deref().and_then(stamp);
        let best = candidates(host, request)
            .into_iter()
            .filter_map(|id| {
                let s = self.fresh(host, &id, stamp)?;
                Some((s["score"].as_f64()?, id, s))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, id, scores)) = best {
            let mut m = Map::new();
            m.insert("id".into(), json!(id));
            m.insert(self.name.clone(), scores);
            return Ok(Some(m));
        }
        // Nothing scored with the current model (none trained yet, or scoring has not run):
        // MONAI Label's random choice, said so.
        let random = strategies::Random {
            name: self.name.clone(),
        };
        Ok(random.next_sample(host, request)?.map(|mut m| {
            m.insert("fallback".into(), json!("random"));
            m
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreeing_passes_have_no_disagreement_and_split_ones_have_ln2() {
        let mut same = Sums::new(2, 2);
        same.add(&[0.5, 0.5, 0.5, 0.5]);
        same.add(&[0.5, 0.5, 0.5, 0.5]);
        let s = same.scores();
        assert!(
            s["disagreement"].as_f64().unwrap_or(1.0).abs() < 1e-12,
            "{s}"
        );
        assert!(
            (s["entropy"].as_f64().unwrap_or(0.0) - 2f64.ln()).abs() < 1e-12,
            "{s}"
        );
        let mut split = Sums::new(2, 1);
        split.add(&[1.0, 0.0]);
        split.add(&[0.0, 1.0]);
        let s = split.scores();
        assert!(
            (s["disagreement"].as_f64().unwrap_or(0.0) - 2f64.ln()).abs() < 1e-12,
            "{s}"
        );
        assert!(
            (s["variance"].as_f64().unwrap_or(0.0) - 0.25).abs() < 1e-12,
            "{s}"
        );
    }

    #[test]
    fn tta_passes_start_with_the_identity_and_cover_every_flip() {
        assert_eq!(augmentation(0), (vec![], 1.0));
        let flips: std::collections::HashSet<Vec<i64>> =
            (0..8).map(|k| augmentation(k).0).collect();
        assert_eq!(flips.len(), 8);
    }
}
