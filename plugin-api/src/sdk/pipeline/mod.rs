//! MONAI Label's `BasicInferTask` contract for plugins (feature `nifti`): pre-transforms →
//! inferer → inverse transforms → post-transforms → writer, each stage and each transform
//! timed into the result's `latencies` as MONAI Label reports them. Implement [`Pipeline`]
//! and register it with [`Tasks::pipeline`](super::Tasks::pipeline); override `inferer` or
//! `writer` where the defaults do not fit. [`run_stages`] runs a pipeline without its
//! writer, so one task's output can feed the next (MONAI Label's pipelines).

mod chain;
mod data;
mod guidance;
mod inferer;
mod post;
mod pre;
mod writer;

pub use chain::Chain;
pub use data::{Data, SpatialStep};
pub use guidance::{request_clicks, AddGuidance, Clicks, CropAroundClicks, BACKGROUND};
pub use inferer::{sliding_window_inferer, sliding_window_params};
pub use post::{
    Activations, AsDiscrete, BoundingBox, ExtremePoints, FillHoles, GetCentroids,
    KeepLargestConnectedComponent, Restore, ToHost,
};
pub use pre::{
    CropForeground, EnsureType, LoadImage, NormalizeIntensity, Orientation, Resize,
    ScaleIntensityRange, ScaleIntensityRangePercentiles, Spacing, SpatialCrop, SpatialPad,
};
pub use writer::{write_label_for, write_result};

use super::{
    error::Result,
    host::Host,
    tasks::{InferResult, InferTask, InferTaskInfo, Request},
};
use serde_json::{json, Map, Value};
use std::{path::PathBuf, time::Instant};

/// One step of a pipeline, named as MONAI names it.
pub trait Transform: Send + Sync {
    /// MONAI's class name (`"ScaleIntensityRanged"`).
    fn name(&self) -> &'static str;
    /// Applies the step.
    fn apply(&self, data: &mut Data) -> Result<()>;
}

/// A boxed transform list.
pub type Transforms = Vec<Box<dyn Transform>>;

/// An infer task written as MONAI Label's `BasicInferTask`.
pub trait Pipeline: Send + Sync {
    /// The task's `/info/` entry.
    fn info(&self) -> InferTaskInfo;
    /// Loading and pre-processing (usually starts with [`LoadImage`]).
    fn pre_transforms(&self, data: &Data) -> Transforms;
    /// Runs the model: `data.tensor` in, `data.pred` out.
    fn inferer(&self, data: &mut Data) -> Result<()>;
    /// Transforms undoing pre-processing on the prediction (none by default).
    fn inverse_transforms(&self, data: &Data) -> Transforms {
        let _ = data;
        Vec::new()
    }
    /// Post-processing (activations, discretisation, [`ToHost`], [`Restore`]...).
    fn post_transforms(&self, data: &Data) -> Transforms;
    /// The model file it runs, if any (served by `GET /model/{name}`).
    fn model_path(&self) -> Option<PathBuf> {
        None
    }
    /// Writes `data.label`; the default honours `result_extension` and `result_dtype`.
    fn writer(&self, data: &mut Data) -> Result<Option<PathBuf>> {
        write_result(data)
    }
}

fn run_list(
    stage: &str,
    list: Transforms,
    data: &mut Data,
    times: &mut Map<String, Value>,
) -> Result<f64> {
    let started = Instant::now();
    let mut mine = Map::new();
    for t in list {
        let t0 = Instant::now();
        t.apply(data)?;
        let secs = t0.elapsed().as_secs_f64();
        let slot = mine.entry(t.name()).or_insert(json!(0.0));
        *slot = json!(slot.as_f64().unwrap_or(0.0) + secs);
    }
    if !mine.is_empty() {
        times.insert(stage.into(), Value::Object(mine));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Runs every stage but the writer; returns the data and the latencies so far.
pub fn run_stages(
    p: &dyn Pipeline,
    host: &Host,
    request: &Request,
) -> Result<(Data, Map<String, Value>)> {
    let mut data = Data::new(host, request);
    let mut per_transform = Map::new();
    let list = p.pre_transforms(&data);
    let pre = run_list("pre", list, &mut data, &mut per_transform)?;
    let t = Instant::now();
    p.inferer(&mut data)?;
    let infer = t.elapsed().as_secs_f64();
    let list = p.inverse_transforms(&data);
    let invert = run_list("invert", list, &mut data, &mut per_transform)?;
    let list = p.post_transforms(&data);
    let post = run_list("post", list, &mut data, &mut per_transform)?;
    let mut lat = Map::new();
    for (k, v) in [
        ("pre", pre),
        ("infer", infer),
        ("invert", invert),
        ("post", post),
    ] {
        lat.insert(k.into(), json!(v));
    }
    lat.insert("transform".into(), Value::Object(per_transform));
    Ok((data, lat))
}

/// A [`Pipeline`] as an [`InferTask`].
pub struct PipelineTask<P>(pub P);

impl<P: Pipeline> InferTask for PipelineTask<P> {
    fn info(&self) -> InferTaskInfo {
        self.0.info()
    }

    fn model_path(&self) -> Option<PathBuf> {
        self.0.model_path()
    }

    fn infer(&self, host: &Host, request: &Request) -> Result<InferResult> {
        let started = Instant::now();
        let (mut data, mut lat) = run_stages(&self.0, host, request)?;
        let t = Instant::now();
        let label = self.0.writer(&mut data)?;
        lat.insert("write".into(), json!(t.elapsed().as_secs_f64()));
        lat.insert("total".into(), json!(started.elapsed().as_secs_f64()));
        let mut params = std::mem::take(&mut data.result);
        params.insert("latencies".into(), Value::Object(lat));
        Ok(InferResult { label, params })
    }
}
