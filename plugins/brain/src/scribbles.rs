//! `brain_scribbles`: a brain mask from an annotator's scribbles, no trained model (MONAI
//! Label's scribbles apps): the scribbles arrive as `/infer`'s `label` part on the image's
//! grid (background 2, foreground 3 unless `scribbles_bg_label` / `scribbles_fg_label` say
//! otherwise; an optional `roi` `[i0, i1, j0, j1, k0, k1]` whose outside is background;
//! `previous_label`, a tag such as `original`, names the image's saved label to refine);
//! the SDK's histogram graph cut segments, then the largest component is kept and its holes
//! filled.

use labelhost_plugin_api::sdk::{
    image, input_image, json, pipeline,
    transforms::{
        fill_holes, histogram_graph_cut, keep_largest_connected_component, ScribbleOptions,
    },
    Error, Host, InferResult, InferTask, InferTaskInfo, InferType, Map, Result, Value,
};
use ndarray::{Array3, Ix3};
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
    o.prior_weight = num("prior_weight").unwrap_or(o.prior_weight);
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

/// A volume's voxels as 3-D (a 4-D file's first frame), moved out of it (the header stays
/// for the writer).
fn voxels(v: &mut image::Volume, what: &str) -> Result<Array3<f32>> {
    v.take_first_frame()
        .into_dimensionality::<Ix3>()
        .map_err(|_| Error::invalid_input(format!("the {what} is not a 3-D volume")))
}

/// The saved label tagged `tag` of the datastore image at `image` (the request's path).
pub(crate) fn previous_label(
    host: &Host,
    image: &std::path::Path,
    tag: &str,
) -> Result<image::Volume> {
    let store = host.datastore();
    let same =
        |p: &std::path::Path| std::fs::canonicalize(p).ok() == std::fs::canonicalize(image).ok();
    let id = store
        .list_images()
        .into_iter()
        .find(|id| store.image_uri(id).is_ok_and(|p| same(&p)))
        .ok_or_else(|| {
            Error::invalid_input("previous_label needs a datastore image (?image=ID)")
        })?;
    let label = store.label_by_image_id(&id, tag).ok_or_else(|| {
        Error::invalid_input(format!("image {id} has no '{tag}' label to refine"))
    })?;
    image::read(&store.label_uri(&label, tag)?)
}

impl InferTask for Scribbles {
    fn info(&self) -> InferTaskInfo {
        let mut config = Map::new();
        config.insert("scribbles_fg_label".into(), json!(3));
        config.insert("scribbles_bg_label".into(), json!(2));
        config.insert("lambda".into(), json!(ScribbleOptions::default().lambda));
        config.insert("sigma".into(), json!(ScribbleOptions::default().sigma));
        config.insert("previous_label".into(), json!(["", "original", "final"]));
        config.insert(
            "prior_weight".into(),
            json!(ScribbleOptions::default().prior_weight),
        );
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
        let mut volume = image::read(input_image(request)?)?;
        let scribbles = request
            .get("label")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::invalid_input("send the scribbles as the 'label' part of /infer")
            })?;
        let mut scribbles = image::read(std::path::Path::new(scribbles))?;
        let mut previous = match request.get("previous_label").and_then(Value::as_str) {
            Some(tag) if !tag.is_empty() => Some(previous_label(host, input_image(request)?, tag)?),
            _ => None,
        };
        let prior = previous
            .as_mut()
            .map(|p| voxels(p, "previous label"))
            .transpose()?;
        let read = started.elapsed().as_secs_f64();
        let cut = Instant::now();
        let mask = histogram_graph_cut(
            &voxels(&mut volume, "image")?.view(),
            &voxels(&mut scribbles, "scribbles")?.view(),
            prior.as_ref().map(|p| p.view()).as_ref(),
            &options,
        )?;
        let cut = cut.elapsed().as_secs_f64();
        let post = Instant::now();
        let mut mask = mask.into_dyn();
        keep_largest_connected_component(&mut mask);
        fill_holes(&mut mask);
        let post = post.elapsed().as_secs_f64();
        let write = Instant::now();
        let out = pipeline::write_label_for(host, request, &volume, &mask)?;
        let mut params = Map::new();
        params.insert(
            "brain_voxels".into(),
            json!(mask.iter().filter(|&&v| v != 0).count()),
        );
        params.insert(
            "latencies".into(),
            json!({"pre": read, "infer": cut, "post": post, "write": write.elapsed().as_secs_f64(),
                   "total": started.elapsed().as_secs_f64()}),
        );
        Ok(InferResult {
            label: Some(out),
            params,
        })
    }
}
