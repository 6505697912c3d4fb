//! Clicks into guidance channels (MONAI's deepgrow/deepedit pre-transforms): the request's
//! IJK clicks, as MONAI Label's clients send them, followed through the pipeline's
//! orientation and grid changes ([`Clicks::on_grid`]), cropped around
//! ([`CropAroundClicks`], `SpatialCropGuidanced`) and turned into one smoothed map per
//! label after the image channel ([`AddGuidance`], `AddGuidanceSignald`).
//!
//! Two request forms are read, as MONAI Label's tasks take them: DeepEdit's one key per
//! label name (`{"brain": [[i, j, k]], "background": []}`) and DeepGrow's `foreground` /
//! `background` lists (the foreground belongs to the label named by `label`, else to the
//! first label that is not background).

use super::{
    data::{Data, SpatialStep},
    pre::crop_to,
    Transform,
};
use crate::sdk::{
    error::{Error, Result},
    transforms::guidance_map,
};
use serde_json::{json, Map, Value};

/// The name of the background label in click requests.
pub const BACKGROUND: &str = "background";

/// Clicks per guidance channel, in the input image's voxel coordinates (IJK).
#[derive(Debug, Clone, PartialEq)]
pub struct Clicks {
    /// Channel names (label names, `background` included), in channel order.
    pub labels: Vec<String>,
    /// The clicks of each channel.
    pub points: Vec<Vec<[f64; 3]>>,
}

fn point(v: &Value, shape: [usize; 3], key: &str) -> Result<[f64; 3]> {
    let bad = || {
        Error::invalid_input(format!(
            "'{key}' clicks must be voxel indices [i, j, k] inside the image {shape:?}, got {v}"
        ))
    };
    let a = v.as_array().filter(|a| a.len() == 3).ok_or_else(bad)?;
    let mut p = [0f64; 3];
    for (axis, c) in a.iter().enumerate() {
        let c = c.as_f64().ok_or_else(bad)?;
        if !(c >= 0.0 && c < shape[axis] as f64) {
            return Err(bad());
        }
        p[axis] = c;
    }
    Ok(p)
}

fn list(request: &Map<String, Value>, key: &str, shape: [usize; 3]) -> Result<Vec<[f64; 3]>> {
    match request.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(|v| point(v, shape, key)).collect(),
        // Slicer's forms may send the list as JSON text.
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(a)) => a.iter().map(|v| point(v, shape, key)).collect(),
            _ => Err(Error::invalid_input(format!(
                "'{key}' must be a list of [i, j, k] clicks"
            ))),
        },
        Some(other) => Err(Error::invalid_input(format!(
            "'{key}' must be a list of [i, j, k] clicks, got {other}"
        ))),
    }
}

impl Clicks {
    /// Reads the clicks of `labels` (channel order) from a request on an image of `shape`;
    /// a click outside the image or not three numbers is refused (HTTP 400).
    pub fn from_request(
        request: &Map<String, Value>,
        labels: &[&str],
        shape: [usize; 3],
    ) -> Result<Self> {
        let mut points = labels
            .iter()
            .map(|l| list(request, l, shape))
            .collect::<Result<Vec<_>>>()?;
        let named = request
            .get("label")
            .and_then(Value::as_str)
            .filter(|l| labels.contains(l));
        let fg = named
            .or_else(|| labels.iter().copied().find(|l| *l != BACKGROUND))
            .and_then(|l| labels.iter().position(|x| *x == l));
        // DeepGrow's lists: "foreground" joins the named (or first) label; "background" is
        // also DeepEdit's background key, read above when the task has that label.
        let more = list(request, "foreground", shape)?;
        match fg {
            Some(c) => points[c].extend(more),
            None if !more.is_empty() => {
                return Err(Error::invalid_input(
                    "'foreground' clicks given but the task has no label to grow",
                ))
            }
            None => {}
        }
        if !labels.contains(&BACKGROUND) && !list(request, BACKGROUND, shape)?.is_empty() {
            return Err(Error::invalid_input(
                "'background' clicks given but the task has no such label",
            ));
        }
        Ok(Clicks {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            points,
        })
    }

    /// The number of clicks.
    pub fn len(&self) -> usize {
        self.points.iter().map(Vec::len).sum()
    }

    /// Whether there is no click.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The clicks on the pipeline's current grid: reordered as [`super::Orientation`] did,
    /// then through each resize, crop and pad since (fractional after resizing).
    pub fn on_grid(&self, d: &Data, who: &str) -> Result<Vec<Vec<[f64; 3]>>> {
        let source = source_shape(d, who)?;
        let mut shapes: Vec<[i64; 3]> = d.steps.iter().skip(1).map(from_shape).collect();
        shapes.push(d.spatial_shape(who)?);
        let map = |p: &[f64; 3]| {
            let mut q = *p;
            if let Some(o) = d.orientation {
                q = [0, 1, 2].map(|a| {
                    let s = o.source_axis[a];
                    if o.flipped[a] {
                        source[s] as f64 - 1.0 - p[s]
                    } else {
                        p[s]
                    }
                });
            }
            for (step, to) in d.steps.iter().zip(&shapes) {
                for a in 0..3 {
                    q[a] = match *step {
                        SpatialStep::Resized { from } => {
                            (q[a] + 0.5) * to[a] as f64 / from[a].max(1) as f64 - 0.5
                        }
                        SpatialStep::Cropped { start, .. } => q[a] - start[a] as f64,
                        SpatialStep::Padded { before, .. } => q[a] + before[a] as f64,
                    };
                }
            }
            q
        };
        Ok(self
            .points
            .iter()
            .map(|ps| ps.iter().map(map).collect())
            .collect())
    }

    /// Per label, how many clicks (for the result).
    pub fn counts(&self) -> Value {
        let m: Map<String, Value> = self
            .labels
            .iter()
            .zip(&self.points)
            .map(|(l, p)| (l.clone(), json!(p.len())))
            .collect();
        Value::Object(m)
    }
}

fn from_shape(step: &SpatialStep) -> [i64; 3] {
    match *step {
        SpatialStep::Resized { from }
        | SpatialStep::Cropped { from, .. }
        | SpatialStep::Padded { from, .. } => from,
    }
}

/// The input image's spatial shape as loaded (the clicks' grid), from its header (the
/// voxels may have moved on to the device).
fn source_shape(d: &Data, who: &str) -> Result<[usize; 3]> {
    let image = d
        .image
        .as_ref()
        .ok_or_else(|| Error::app(format!("{who}: LoadImaged must come first")))?;
    let dim = image.header.dim;
    Ok([1, 2, 3].map(|a| usize::from(dim[a]).max(1)))
}

/// Reads the request's clicks for `labels` (channel order) on the loaded image.
pub fn request_clicks(d: &Data, labels: &[&str], who: &str) -> Result<Clicks> {
    Clicks::from_request(&d.request, labels, source_shape(d, who)?)
}

/// `AddGuidanceSignald`: one guidance channel per label after the image channel, each the
/// label's clicks smoothed by a Gaussian of `sigma` voxels on the current grid and scaled to
/// [0, 1]; zeros for a label without clicks (with no click at all the network segments on
/// its own, DeepEdit's automatic mode). The clicks per label go into the result
/// (`guidance`).
pub struct AddGuidance {
    /// Channel names (label names, `background` included), in the network's order.
    pub labels: Vec<String>,
    /// Gaussian sigma in voxels of the current grid.
    pub sigma: f64,
}

impl Transform for AddGuidance {
    fn name(&self) -> &'static str {
        "AddGuidanceSignald"
    }

    fn apply(&self, d: &mut Data) -> Result<()> {
        let labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        let clicks = request_clicks(d, &labels, self.name())?;
        let on_grid = clicks.on_grid(d, self.name())?;
        let shape = d.spatial_shape(self.name())?;
        let grid = shape.map(|s| s.max(0) as usize);
        let mut values = d.tensor(self.name())?.to_data()?.to_f32()?;
        let n: usize = grid.iter().product();
        if values.len() != n {
            return Err(Error::app(format!(
                "{}: the image must have one channel before guidance is added",
                self.name()
            )));
        }
        values.reserve(n * labels.len());
        for points in &on_grid {
            values.extend(guidance_map(grid, points, self.sigma));
        }
        let dims = [1 + labels.len() as i64, shape[0], shape[1], shape[2]];
        d.tensor = Some(d.exec.tensor_f32(&dims, &values, &d.device)?);
        d.result.insert("guidance".into(), clicks.counts());
        Ok(())
    }
}

/// `SpatialCropGuidanced` (DeepGrow 3-D): crops `size` voxels (less where the image is
/// smaller) centred on the box around the clicks, or the request's `roi` when it sends one,
/// on the grid as it is now (place it right after [`super::EnsureType`]). The crop, in
/// the input's IJK, goes into the result as `roi` `[i0, i1, j0, j1, k0, k1]` (end
/// exclusive). At least one click is needed.
pub struct CropAroundClicks {
    /// Channel names whose clicks count (label names, `background` included).
    pub labels: Vec<String>,
    /// The region's size in voxels.
    pub size: [i64; 3],
}

impl Transform for CropAroundClicks {
    fn name(&self) -> &'static str {
        "SpatialCropGuidanced"
    }

    fn apply(&self, d: &mut Data) -> Result<()> {
        if !d.steps.is_empty() {
            return Err(Error::app(format!(
                "{}: must come before any resize, crop or pad",
                self.name()
            )));
        }
        let labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        let clicks = request_clicks(d, &labels, self.name())?;
        let points: Vec<[f64; 3]> = clicks
            .on_grid(d, self.name())?
            .into_iter()
            .flatten()
            .collect();
        if points.is_empty() {
            return Err(Error::invalid_input(
                "click at least once (foreground) for a region to segment",
            ));
        }
        let shape = d.spatial_shape(self.name())?;
        let source = source_shape(d, self.name())?;
        let (mut start, mut end) = ([0i64; 3], [0i64; 3]);
        let axis_of = |a: usize| {
            d.orientation
                .map_or((a, false), |o| (o.source_axis[a], o.flipped[a]))
        };
        // A span on RAS axis `a` as a span on the input's axis, and back (the same map: a
        // flip reverses it).
        let across = |a: usize, (s, e): (usize, usize)| {
            let (axis, flipped) = axis_of(a);
            if flipped {
                (source[axis] - e, source[axis] - s)
            } else {
                (s, e)
            }
        };
        if let Some(roi) = requested_roi(&d.request, source)? {
            // The client's box, in the input's voxel axes, onto the RAS grid.
            for a in 0..3 {
                let axis = axis_of(a).0;
                let (s, e) = across(a, (roi[2 * axis], roi[2 * axis + 1]));
                (start[a], end[a]) = (s as i64, e as i64);
            }
        } else {
            for a in 0..3 {
                let lo = points.iter().map(|p| p[a]).fold(f64::INFINITY, f64::min);
                let hi = points
                    .iter()
                    .map(|p| p[a])
                    .fold(f64::NEG_INFINITY, f64::max);
                let size = self.size[a].clamp(1, shape[a]);
                let centre = ((lo + hi) / 2.0).round() as i64;
                start[a] = (centre - size / 2).clamp(0, shape[a] - size);
                end[a] = start[a] + size;
            }
        }
        // The region in the input's voxel axes, for the client and for merging back.
        let mut roi = [0usize; 6];
        for a in 0..3 {
            let axis = axis_of(a).0;
            (roi[2 * axis], roi[2 * axis + 1]) = across(a, (start[a] as usize, end[a] as usize));
        }
        crop_to(d, self.name(), start, end)?;
        d.result.insert("roi".into(), json!(roi));
        Ok(())
    }
}

/// MONAI Label's `roi` param, `[i0, i1, j0, j1, k0, k1]` (end exclusive) in the input's
/// voxels; `None` when absent or empty, refused (HTTP 400) when not a box inside the image.
fn requested_roi(request: &Map<String, Value>, shape: [usize; 3]) -> Result<Option<[usize; 6]>> {
    let v = match request.get("roi") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) if a.is_empty() => return Ok(None),
        Some(v) => v,
    };
    let bad = || {
        Error::invalid_input(format!(
            "roi must be [i0, i1, j0, j1, k0, k1] with i0 < i1 inside the image {shape:?}, got {v}"
        ))
    };
    let r: Vec<usize> = v
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|x| x.as_u64().map(|x| x as usize).ok_or_else(bad))
        .collect::<Result<_>>()?;
    let r = <[usize; 6]>::try_from(r).map_err(|_| bad())?;
    if (0..3).any(|a| r[2 * a] >= r[2 * a + 1] || r[2 * a + 1] > shape[a]) {
        return Err(bad());
    }
    Ok(Some(r))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn deepedit_and_deepgrow_clicks_land_on_their_channels() {
        let labels = ["brain", BACKGROUND];
        let shape = [10, 10, 10];
        let c = Clicks::from_request(
            &req(json!({"brain": [[1, 2, 3]], "background": [[4, 5, 6], [0, 0, 0]]})),
            &labels,
            shape,
        )
        .unwrap();
        assert_eq!(c.points[0], vec![[1.0, 2.0, 3.0]]);
        assert_eq!(c.points[1].len(), 2);
        assert_eq!(c.len(), 3);
        let g = Clicks::from_request(
            &req(json!({"foreground": "[[9, 9, 9]]", "background": [[1, 1, 1]]})),
            &labels,
            shape,
        )
        .unwrap();
        assert_eq!(g.points, vec![vec![[9.0; 3]], vec![[1.0; 3]]]);
        assert_eq!(g.counts(), json!({"brain": 1, "background": 1}));
        assert!(Clicks::from_request(&req(json!({})), &labels, shape)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_requested_roi_must_be_a_box_inside_the_image() {
        let shape = [10, 20, 30];
        let roi = |v: Value| requested_roi(&req(json!({ "roi": v })), shape);
        assert_eq!(roi(json!([])).unwrap(), None);
        assert_eq!(roi(Value::Null).unwrap(), None);
        assert_eq!(
            roi(json!([0, 10, 5, 6, 1, 30])).unwrap(),
            Some([0, 10, 5, 6, 1, 30])
        );
        for bad in [
            json!([0, 11, 0, 1, 0, 1]),
            json!([3, 3, 0, 1, 0, 1]),
            json!([0, 1, 0, 1]),
            json!([0, 1, 0, 1, 0, -1]),
            json!("0,1"),
        ] {
            let e = roi(bad.clone()).unwrap_err();
            assert_eq!(e.code, crate::sdk::ErrorCode::INVALID_INPUT, "{bad}");
        }
    }

    #[test]
    fn clicks_outside_the_image_or_malformed_are_refused() {
        let labels = ["brain", BACKGROUND];
        for bad in [
            json!({"brain": [[10, 0, 0]]}),
            json!({"foreground": [[1, 2]]}),
            json!({"foreground": [["a", 1, 2]]}),
            json!({"background": [[-1, 0, 0]]}),
            json!({"brain": 3}),
            json!({"foreground": "not json"}),
        ] {
            let e = Clicks::from_request(&req(bad.clone()), &labels, [10, 10, 10]).unwrap_err();
            assert_eq!(e.code, crate::sdk::ErrorCode::INVALID_INPUT, "{bad}");
        }
        let e = Clicks::from_request(&req(json!({"background": [[1, 1, 1]]})), &["brain"], [4; 3])
            .unwrap_err();
        assert!(e.message.contains("no such label"), "{}", e.message);
    }
}
