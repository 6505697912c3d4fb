//! `brain_scribbles`: a brain mask from an annotator's scribbles, no trained model (MONAI
//! Label's scribbles apps): the scribbles arrive as `/infer`'s `label` part on the image's
//! grid (background 2, foreground 3 unless `scribbles_bg_label` / `scribbles_fg_label` say
//! otherwise; an optional `roi` `[i0, i1, j0, j1, k0, k1]` whose outside is background);
//! the SDK's histogram graph cut segments, then the largest component is kept and its holes
//! filled.

use labelhost_plugin_api::sdk::{
    image, input_image, json, pipeline,
    transforms::{
        fill_holes, histogram_graph_cut, keep_largest_connected_component, ScribbleOptions,
    },
    Error, Host, InferResult, InferTask, InferTaskInfo, InferType, Map, Result, Value,
};
use ndarray::Ix3;
use std::time::Instant;

/// The task.
pub(crate) struct Scribbles;

fn options(request: &Map<String, Value>) -> Result<ScribbleOptions> {
    let mut o = ScribbleOptions::default();
    let int = |k: &str| request.get(k).and_then(Value::as_i64);
    let num = |k: &str| request.get(k).and_then(Value::as_f64);
    o.fg_label = int("scribbles_fg_label").unwrap_or(o.fg_label);
    o.bg_label = int("scribbles_bg_label").unwrap_or(o.bg_label);
    if o.fg_label == o.bg_label {
        return Err(Error::invalid_input(
            "scribbles_fg_label and scribbles_bg_label are equal",
        ));
    }
    o.lambda = num("lambda").unwrap_or(o.lambda);
    o.sigma = num("sigma").unwrap_or(o.sigma);
    if !(o.lambda >= 0.0 && o.lambda <= 1e3 && o.sigma > 0.0 && o.sigma <= 10.0) {
        return Err(Error::invalid_input(
            "lambda must be in [0, 1000] and sigma in (0, 10]",
        ));
    }
    if let Some(roi) = request.get("roi").filter(|v| !v.is_null()) {
        let r: Vec<usize> = roi
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_u64)
                    .map(|v| v as usize)
                    .collect()
            })
            .unwrap_or_default();
        let r = <[usize; 6]>::try_from(r).map_err(|_| {
            Error::invalid_input("roi must be 6 voxel bounds [i0, i1, j0, j1, k0, k1]")
        })?;
        o.roi = Some(r);
    }
    Ok(o)
}

impl InferTask for Scribbles {
    fn info(&self) -> InferTaskInfo {
        let mut config = Map::new();
        config.insert("scribbles_fg_label".into(), json!(3));
        config.insert("scribbles_bg_label".into(), json!(2));
        config.insert("lambda".into(), json!(ScribbleOptions::default().lambda));
        config.insert("sigma".into(), json!(ScribbleOptions::default().sigma));
        InferTaskInfo {
            infer_type: InferType::SCRIBBLES,
            labels: json!({"brain": 1}),
            dimension: 3,
            description: "Brain mask from scribbles (histogram likelihood + graph cut)".into(),
            config,
        }
    }

    fn infer(&self, host: &Host, request: &Map<String, Value>) -> Result<InferResult> {
        let started = Instant::now();
        let options = options(request)?;
        let volume = image::read(input_image(request)?)?;
        let scribbles = request
            .get("label")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::invalid_input("send the scribbles as the 'label' part of /infer")
            })?;
        let scribbles = image::read(std::path::Path::new(scribbles))?;
        fn three<'a>(v: &'a image::Volume, what: &str) -> Result<ndarray::ArrayView3<'a, f32>> {
            let frame = if v.data.ndim() == 4 {
                v.data.index_axis(ndarray::Axis(3), 0)
            } else {
                v.data.view()
            };
            frame
                .into_dimensionality::<Ix3>()
                .map_err(|_| Error::invalid_input(format!("the {what} is not a 3-D volume")))
        }
        let read = started.elapsed().as_secs_f64();
        let cut = Instant::now();
        let mask = histogram_graph_cut(
            &three(&volume, "image")?,
            &three(&scribbles, "scribbles")?,
            &options,
        )?;
        let cut = cut.elapsed().as_secs_f64();
        let mut mask = mask.into_dyn();
        keep_largest_connected_component(&mut mask);
        fill_holes(&mut mask);
        let write = Instant::now();
        let out = pipeline::write_label_for(host, request, &volume, &mask)?;
        let mut params = Map::new();
        params.insert(
            "brain_voxels".into(),
            json!(mask.iter().filter(|&&v| v != 0).count()),
        );
        params.insert(
            "latencies".into(),
            json!({"pre": read, "infer": cut, "post": 0.0, "write": write.elapsed().as_secs_f64(),
                   "total": started.elapsed().as_secs_f64()}),
        );
        Ok(InferResult {
            label: Some(out),
            params,
        })
    }
}
