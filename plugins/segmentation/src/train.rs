//! The `segmentation_kmeans` trainer: fits each class's mean intensity to the voxels the
//! annotators labelled (images with a `final` label), the supervised counterpart of the
//! infer task's k-means. The fitted means replace k-means in `segmentation_kmeans` for this
//! generation of the app.

use labelhost_plugin_api::sdk::{image, json, Error, Host, Map, Request, Result, TrainTask, Value};
use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

/// The fitted class means, shared with the infer task.
pub(crate) type Trained = Arc<Mutex<Option<Vec<f32>>>>;

/// The trainer.
pub(crate) struct ClassMeans {
    pub(crate) classes: usize,
    pub(crate) trained: Trained,
}

impl TrainTask for ClassMeans {
    fn description(&self) -> String {
        "Fits each class's mean intensity to the final labels".into()
    }

    fn config(&self) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("max_epochs".into(), json!(1));
        c
    }

    fn train(&self, host: &Host, _: &Request) -> Result<Value> {
        let started = Instant::now();
        let store = host.datastore();
        let mut sums = vec![(0f64, 0u64); self.classes];
        let labeled = store.labeled_images();
        for id in &labeled {
            let img = image::read(&store.image_uri(id)?)?;
            let label = image::read(&store.label_uri(id, "final")?)?;
            if img.data.shape() != label.data.shape() {
                return Err(Error::invalid_input(format!(
                    "{id}: the final label's shape differs from the image's"
                )));
            }
            for (&v, &l) in img.data.iter().zip(label.data.iter()) {
                let class = l as usize;
                if (1..=self.classes).contains(&class) && v.is_finite() {
                    sums[class - 1].0 += f64::from(v);
                    sums[class - 1].1 += 1;
                }
            }
        }
        if sums.iter().any(|(_, n)| *n == 0) {
            return Err(Error::new(
                labelhost_plugin_api::sdk::ErrorCode::APP_TRAIN_FAILED,
                format!(
                    "every class needs labelled voxels in the final labels ({} images)",
                    labeled.len()
                ),
            ));
        }
        let means: Vec<f32> = sums.iter().map(|(s, n)| (s / *n as f64) as f32).collect();
        if let Ok(mut t) = self.trained.lock() {
            *t = Some(means.clone());
        }
        Ok(json!({
            "epoch": 1, "total_epochs": 1, "images": labeled.len(), "centres": means,
            "total_time": format!("{:.3}s", started.elapsed().as_secs_f64()),
        }))
    }
}
