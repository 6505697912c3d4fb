//! `GET /ui/slice?image=ID&axis=A&index=N&tags=original,final`: one plane of a datastore
//! image, windowed to 8 bits (its 1st to 99th percentile), with the same plane of each
//! named label tag the image has, for the dashboard's viewer. Planes are in voxel order
//! (not reoriented): columns along the first remaining axis, rows along the second, the
//! second axis upwards.

use crate::{api::State, Error, Result};
use axum::{
    extract::{rejection::QueryRejection, Query},
    Json,
};
use labelhost_plugin_api::sdk::image;
use ndarray::{ArrayD, Axis, Ix2};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The query.
#[derive(Debug, Deserialize)]
pub(super) struct SliceQuery {
    image: String,
    /// 0, 1 or 2 (default 2: the third voxel axis, axial for most scans).
    axis: Option<usize>,
    /// Default: the middle plane.
    index: Option<usize>,
    /// Comma-separated label tags (default `original,final`).
    tags: Option<String>,
}

/// `GET /ui/slice`.
pub(super) async fn slice(
    state: State,
    q: std::result::Result<Query<SliceQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let store = state.shared.datastore.clone();
    let work = move || -> Result<Value> {
        let path = store.get_image_uri(&q.image)?;
        let volume = read3(&path, "image")?;
        let axis = q.axis.unwrap_or(2);
        if axis > 2 {
            return Err(Error::BadRequest(format!(
                "axis {axis}: expected 0, 1 or 2"
            )));
        }
        let depth = volume.shape()[axis];
        let index = q.index.unwrap_or(depth / 2);
        if index >= depth {
            return Err(Error::BadRequest(format!(
                "index {index}: axis {axis} has {depth} planes"
            )));
        }
        let (width, height, pixels) = plane(&volume, axis, index)?;
        let image = window(&pixels);
        let mut labels = Map::new();
        let tags = q.tags.as_deref().unwrap_or("original,final");
        for tag in tags.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let Some(label_id) = store.get_label_by_image_id(&q.image, tag) else {
                continue;
            };
            let label = read3(&store.get_label_uri(&label_id, tag)?, "label")?;
            if label.shape() != volume.shape() {
                labels.insert(
                    tag.into(),
                    json!({"error": "the label's grid differs from the image's"}),
                );
                continue;
            }
            let (_, _, values) = plane(&label, axis, index)?;
            let values: Vec<u8> = values
                .iter()
                .map(|v| v.round().clamp(0.0, 255.0) as u8)
                .collect();
            labels.insert(tag.into(), json!(values));
        }
        Ok(json!({
            "image": q.image, "shape": volume.shape(), "axis": axis, "index": index,
            "width": width, "height": height, "pixels": image, "labels": labels,
        }))
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("slice: {e}")))?
        .map(Json)
}

/// A volume's first 3-D frame.
fn read3(path: &std::path::Path, what: &str) -> Result<ArrayD<f32>> {
    let v = image::read(path).map_err(|e| Error::Unprocessable(format!("the {what}: {e}")))?;
    let data = v.first_frame();
    if data.ndim() != 3 {
        return Err(Error::Unprocessable(format!(
            "the {what} is not a 3-D volume"
        )));
    }
    Ok(data)
}

/// Plane `index` across `axis`: (width, height, values row by row, top row first).
fn plane(volume: &ArrayD<f32>, axis: usize, index: usize) -> Result<(usize, usize, Vec<f32>)> {
    let p = volume
        .index_axis(Axis(axis), index)
        .into_dimensionality::<Ix2>()
        .map_err(|e| Error::Internal(format!("plane: {e}")))?;
    let (width, height) = p.dim();
    let mut out = Vec::with_capacity(width * height);
    for row in (0..height).rev() {
        out.extend((0..width).map(|col| p[[col, row]]));
    }
    Ok((width, height, out))
}

/// Values windowed to 0-255 between their 1st and 99th percentiles (finite ones).
fn window(values: &[f32]) -> Vec<u8> {
    let mut finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return vec![0; values.len()];
    }
    let mut at = |q: f64| {
        let k = ((finite.len() - 1) as f64 * q).round() as usize;
        *finite.select_nth_unstable_by(k, f32::total_cmp).1
    };
    let (lo, hi) = (at(0.01), at(0.99));
    let span = (hi - lo).max(f32::EPSILON);
    values
        .iter()
        .map(|&v| {
            if v.is_finite() {
                ((v - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8
            } else {
                0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{plane, window};
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn a_plane_runs_row_by_row_from_the_top_with_the_second_axis_upwards() {
        // v[x, y, z] = 100x + 10y + z
        let v = ArrayD::from_shape_fn(IxDyn(&[3, 2, 4]), |i| {
            (100 * i[0] + 10 * i[1] + i[2]) as f32
        });
        let (w, h, p) = plane(&v, 2, 1).expect("plane");
        assert_eq!((w, h), (3, 2));
        assert_eq!(p, [11.0, 111.0, 211.0, 1.0, 101.0, 201.0]);
        let (w, h, p) = plane(&v, 0, 2).expect("plane");
        assert_eq!((w, h), (2, 4));
        assert_eq!(&p[..2], [203.0, 213.0]);
    }

    #[test]
    fn the_window_spans_the_1st_to_99th_percentile() {
        let mut values: Vec<f32> = (0..=100).map(|i| i as f32).collect();
        values.push(f32::NAN);
        let w = window(&values);
        assert_eq!(w[1], 0);
        assert_eq!(w[99], 255);
        assert_eq!(w[50], 128);
        assert_eq!(w[101], 0, "NaN is black");
        assert_eq!(window(&[5.0; 4]), [0; 4], "a flat plane");
    }
}
