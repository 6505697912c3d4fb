//! Scoring methods every app may reuse (feature `nifti`): [`Dice`], MONAI Label's `dice`
//! done per label.

use super::{
    error::Result,
    host::Host,
    image,
    tasks::{Request, ScoringMethod},
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Dice between each image's `final` label (the annotator's) and its `original` one (the
/// model's), per label value — MONAI Label's `dice` compares raw values, so a two-organ label
/// scores by how its numbers happen to multiply. Writes `dice` (the mean over the label
/// values either mask holds) and `dice_per_label` (by label name where the app names the
/// value) into the image's info and the `original` label's info; answers `{id: {...}}`.
/// Images whose two labels are on different grids are reported, not scored.
pub struct Dice {
    /// Label names by value (`{"brain": 1}`); other values are named by their number.
    pub labels: Map<String, Value>,
}

/// Voxel counts per label value over pairs of voxels: (in the first, in the second, in
/// both).
fn overlaps<'a>(pairs: impl Iterator<Item = (&'a f32, &'a f32)>) -> BTreeMap<i64, (u64, u64, u64)> {
    let mut counts: BTreeMap<i64, (u64, u64, u64)> = BTreeMap::new();
    for (&x, &y) in pairs {
        let (x, y) = (x.round() as i64, y.round() as i64);
        if x != 0 {
            counts.entry(x).or_default().0 += 1;
        }
        if y != 0 {
            counts.entry(y).or_default().1 += 1;
        }
        if x != 0 && x == y {
            counts.entry(x).or_default().2 += 1;
        }
    }
    counts
}

impl Dice {
    fn name_of(&self, value: i64) -> String {
        self.labels
            .iter()
            .find(|(_, v)| v.as_i64() == Some(value))
            .map_or_else(|| value.to_string(), |(k, _)| k.clone())
    }

    /// Scores one image's pair of labels.
    fn score_one(&self, final_path: &std::path::Path, original: &std::path::Path) -> Result<Value> {
        let (f, o) = (image::read(final_path)?, image::read(original)?);
        if f.data.shape() != o.data.shape() {
            return Ok(json!({"error": format!(
                "the labels' grids differ: final {:?}, original {:?}",
                f.data.shape(), o.data.shape()
            )}));
        }
        let mut per_label = Map::new();
        let mut sum = 0.0;
        let counts = overlaps(f.data.iter().zip(o.data.iter()));
        for (&value, &(in_final, in_original, both)) in &counts {
            let dice = 2.0 * both as f64 / (in_final + in_original) as f64;
            sum += dice;
            per_label.insert(self.name_of(value), json!(dice));
        }
        // Two empty masks agree completely.
        let mean = if counts.is_empty() {
            1.0
        } else {
            sum / counts.len() as f64
        };
        Ok(json!({"dice": mean, "dice_per_label": per_label}))
    }
}

impl ScoringMethod for Dice {
    fn description(&self) -> String {
        "Dice per label between the final and the original label of each image".into()
    }

    fn score(&self, host: &Host, _: &Request) -> Result<Value> {
        let store = host.datastore();
        let mut scored = Map::new();
        for id in store.labeled_images() {
            let Some(original) = store.label_by_image_id(&id, "original") else {
                continue;
            };
            let Some(final_label) = store.label_by_image_id(&id, "final") else {
                continue;
            };
            let score = self.score_one(
                &store.label_uri(&final_label, "final")?,
                &store.label_uri(&original, "original")?,
            )?;
            if let Value::Object(info) = &score {
                if !info.contains_key("error") {
                    store.update_image_info(&id, info)?;
                    store.update_label_info(&original, "original", info)?;
                }
            }
            scored.insert(id, score);
        }
        Ok(Value::Object(scored))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_count_each_label_value_apart() {
        let a = [0.0, 1.0, 1.0, 2.0, 2.0, 0.0];
        let b = [0.0, 1.0, 2.0, 2.0, 0.0, 1.0];
        let c = overlaps(a.iter().zip(&b));
        assert_eq!(c[&1], (2, 2, 1));
        assert_eq!(c[&2], (2, 2, 1));
        let d = Dice {
            labels: json!({"brain": 1}).as_object().cloned().unwrap(),
        };
        assert_eq!(d.name_of(1), "brain");
        assert_eq!(d.name_of(2), "2");
    }
}
