//! Post-processing transforms, MONAI's names and semantics: activations and
//! discretisation on the device, then the label on the host (components, holes, restore,
//! centroids).

use super::{
    data::{Data, SpatialStep},
    Transform,
};
use crate::sdk::{
    error::{Error, Result},
    transforms, DType,
};
use ndarray::{s, ArrayD, IxDyn};
use serde_json::{json, Map, Value};

fn on_pred(d: &mut Data, who: &str, op: &str, args: Value) -> Result<()> {
    let out = d.exec.op1(op, d.pred(who)?, &args)?;
    d.pred = Some(out);
    Ok(())
}

/// `Activationsd`: softmax over channels, or sigmoid.
pub struct Activations {
    /// Softmax over the channel dim (else sigmoid).
    pub softmax: bool,
}

impl Transform for Activations {
    fn name(&self) -> &'static str {
        "Activationsd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        if self.softmax {
            on_pred(d, self.name(), "softmax", json!({"dim": 0}))
        } else {
            on_pred(d, self.name(), "sigmoid", json!({}))
        }
    }
}

/// `AsDiscreted`: argmax over channels, or a threshold; the result is `uint8`.
pub struct AsDiscrete {
    /// Threshold instead of argmax.
    pub threshold: Option<f64>,
}

impl Transform for AsDiscrete {
    fn name(&self) -> &'static str {
        "AsDiscreted"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        match self.threshold {
            Some(v) => on_pred(d, self.name(), "threshold", json!({"value": v})),
            None => {
                on_pred(d, self.name(), "argmax", json!({"dim": 0, "keepdim": true}))?;
                on_pred(d, self.name(), "to_dtype", json!({"dtype": DType::U8.0}))
            }
        }
    }
}

/// Copies the (single-channel, `uint8`) prediction to the host as `data.label`: the only
/// device-to-host copy, made after the prediction was reduced.
pub struct ToHost;

impl Transform for ToHost {
    fn name(&self) -> &'static str {
        "ToNumpyd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let t = d.pred(self.name())?;
        let data = t.to_data()?;
        if data.dtype != DType::U8 {
            return Err(Error::app(
                "ToNumpyd: discretise the prediction to uint8 first",
            ));
        }
        let spatial: Vec<usize> = data
            .shape
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(|&s| s as usize)
            .collect();
        let label = ArrayD::from_shape_vec(IxDyn(&spatial), data.bytes.into_vec())
            .map_err(|e| Error::app(format!("ToNumpyd: {e}")))?;
        d.label = Some(label);
        Ok(())
    }
}

fn label_mut<'a>(d: &'a mut Data, who: &str) -> Result<&'a mut ArrayD<u8>> {
    d.label
        .as_mut()
        .ok_or_else(|| Error::app(format!("{who}: ToNumpyd must come first")))
}

/// `KeepLargestConnectedComponentd` (26-connected foreground).
pub struct KeepLargestConnectedComponent;

impl Transform for KeepLargestConnectedComponent {
    fn name(&self) -> &'static str {
        "KeepLargestConnectedComponentd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        transforms::keep_largest_connected_component(label_mut(d, self.name())?);
        Ok(())
    }
}

/// `FillHolesd`.
pub struct FillHoles;

impl Transform for FillHoles {
    fn name(&self) -> &'static str {
        "FillHolesd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        transforms::fill_holes(label_mut(d, self.name())?);
        Ok(())
    }
}

/// `Restored`: back to the input's grid: nearest-neighbour resampling to the shape before
/// any resizing, then the input's own axis order.
pub struct Restore;

/// Nearest-exact resampling of a 3-D label (PyTorch's `nearest-exact` index rule).
pub(crate) fn resize_nearest(label: &ArrayD<u8>, to: [usize; 3]) -> ArrayD<u8> {
    let from = label.shape().to_vec();
    let pick = |o: usize, axis: usize| {
        (((o as f64 + 0.5) * from[axis] as f64 / to[axis] as f64) as usize).min(from[axis] - 1)
    };
    ArrayD::from_shape_fn(IxDyn(&to), |i| {
        label[[pick(i[0], 0), pick(i[1], 1), pick(i[2], 2)]]
    })
}

impl Transform for Restore {
    fn name(&self) -> &'static str {
        "Restored"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let steps = std::mem::take(&mut d.steps);
        let orientation = d.orientation;
        let label = label_mut(d, self.name())?;
        for step in steps.iter().rev() {
            *label = undo(label, step)?;
        }
        if let Some(o) = orientation {
            *label = o.from_ras(label);
        }
        Ok(())
    }
}

fn undo(label: &ArrayD<u8>, step: &SpatialStep) -> Result<ArrayD<u8>> {
    let u = |a: [i64; 3]| a.map(|v| v.max(0) as usize);
    Ok(match *step {
        SpatialStep::Resized { from } => resize_nearest(label, u(from)),
        SpatialStep::Cropped { start, from } => {
            let (start, s) = (u(start), label.shape().to_vec());
            let mut full = ArrayD::<u8>::zeros(IxDyn(&u(from)));
            let fits = (0..3).all(|i| start[i] + s[i] <= full.shape()[i]);
            if !fits {
                return Err(Error::app(
                    "Restored: the label does not fit the crop it came from",
                ));
            }
            full.slice_mut(s![
                start[0]..start[0] + s[0],
                start[1]..start[1] + s[1],
                start[2]..start[2] + s[2]
            ])
            .assign(
                &label
                    .view()
                    .into_dimensionality::<ndarray::Ix3>()
                    .map_err(|e| Error::app(e.to_string()))?,
            );
            full
        }
        SpatialStep::Padded { before, from } => {
            let (b, f) = (u(before), u(from));
            label
                .slice(s![b[0]..b[0] + f[0], b[1]..b[1] + f[1], b[2]..b[2] + f[2]])
                .into_dyn()
                .to_owned()
        }
    })
}

/// `BoundingBoxd`: the label's foreground box `[[start, end), ...]` in the result (`bbox`).
pub struct BoundingBox;

impl Transform for BoundingBox {
    fn name(&self) -> &'static str {
        "BoundingBoxd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let label = d
            .label
            .as_ref()
            .ok_or_else(|| Error::app("BoundingBoxd: no label"))?;
        let bbox = transforms::bounding_box(label);
        d.result.insert(
            "bbox".into(),
            json!(bbox.map(|b| b.iter().map(|(s, e)| [*s, *e]).collect::<Vec<_>>())),
        );
        Ok(())
    }
}

/// `ExtremePointsd`: the label's six extreme foreground voxels (lowest and highest along
/// each axis), in the result as `extreme_points`.
pub struct ExtremePoints;

impl Transform for ExtremePoints {
    fn name(&self) -> &'static str {
        "ExtremePointsd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let label = d
            .label
            .as_ref()
            .ok_or_else(|| Error::app("ExtremePointsd: no label"))?;
        let mut best: Vec<Option<Vec<usize>>> = vec![None; 6];
        for (i, &v) in label.indexed_iter() {
            if v == 0 {
                continue;
            }
            for axis in 0..3 {
                let lo = &mut best[2 * axis];
                if lo.as_ref().is_none_or(|p| i[axis] < p[axis]) {
                    *lo = Some(ndarray::Dimension::slice(&i).to_vec());
                }
                let hi = &mut best[2 * axis + 1];
                if hi.as_ref().is_none_or(|p| i[axis] > p[axis]) {
                    *hi = Some(ndarray::Dimension::slice(&i).to_vec());
                }
            }
        }
        let points: Vec<Vec<usize>> = best.into_iter().flatten().collect();
        d.result.insert("extreme_points".into(), json!(points));
        Ok(())
    }
}

/// `GetCentroidsd`: the centroid voxel `[i, j, k]` of each label, as MONAI Label reports it.
pub struct GetCentroids {
    /// `{name: value}` of the labels to report.
    pub labels: Map<String, Value>,
}

impl Transform for GetCentroids {
    fn name(&self) -> &'static str {
        "GetCentroidsd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let label = d
            .label
            .as_ref()
            .ok_or_else(|| Error::app("GetCentroidsd: no label"))?;
        let mut sums = vec![([0f64; 3], 0u64); 256];
        for (i, &v) in label.indexed_iter() {
            let s = &mut sums[usize::from(v)];
            for a in 0..3 {
                s.0[a] += i[a] as f64;
            }
            s.1 += 1;
        }
        let mut centroids = Map::new();
        for (name, value) in &self.labels {
            let Some(v) = value.as_u64().filter(|v| (1..256).contains(v)) else {
                continue;
            };
            let (sum, n) = sums[v as usize];
            if n > 0 {
                let c: Vec<String> = sum
                    .iter()
                    .map(|s| ((s / n as f64).round() as i64).to_string())
                    .collect();
                centroids.insert(name.clone(), json!(c));
            }
        }
        d.result
            .insert("centroids".into(), Value::Object(centroids));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::resize_nearest;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn nearest_exact_resizing_picks_the_covering_voxel() {
        let label = ArrayD::from_shape_vec(IxDyn(&[2, 1, 1]), vec![1u8, 2]).expect("shape");
        let up = resize_nearest(&label, [4, 1, 1]);
        assert_eq!(up.iter().copied().collect::<Vec<_>>(), vec![1, 1, 2, 2]);
        let down = resize_nearest(&up, [2, 1, 1]);
        assert_eq!(down, label);
        let odd = resize_nearest(
            &ArrayD::from_shape_vec(IxDyn(&[3, 1, 1]), vec![1u8, 2, 3]).expect("shape"),
            [2, 1, 1],
        );
        assert_eq!(odd.iter().copied().collect::<Vec<_>>(), vec![1, 3]);
    }
}
