//! MONAI Label's `sum` scoring: voxel count and non-empty slices of each saved label.

use labelhost_plugin_api::sdk::{image, json, Host, Map, Result, ScoringMethod, Value};

/// Writes `sum` and `slices` into the info of every `final` and `original` label.
pub(crate) struct Sum;

const TAGS: [&str; 2] = ["final", "original"];

impl ScoringMethod for Sum {
    fn description(&self) -> String {
        "Voxel sum and labelled slice count of each label".into()
    }

    fn score(&self, host: &Host, _: &Map<String, Value>) -> Result<Value> {
        let store = host.datastore();
        let mut scored = Map::new();
        for id in store.list_images() {
            for tag in TAGS {
                let Some(label) = store.label_by_image_id(&id, tag) else {
                    continue;
                };
                let volume = image::read(&store.label_uri(&label, tag)?)?;
                let sum: f64 = volume.data.iter().map(|&v| f64::from(v)).sum();
                let slices = volume
                    .data
                    .outer_iter()
                    .filter(|s| s.iter().any(|&v| v > 0.0))
                    .count();
                let mut info = Map::new();
                info.insert("sum".into(), json!(sum as i64));
                info.insert("slices".into(), json!(slices));
                store.update_label_info(&label, tag, &info)?;
                scored.insert(format!("{id}/{tag}"), Value::Object(info));
            }
        }
        Ok(Value::Object(scored))
    }
}
