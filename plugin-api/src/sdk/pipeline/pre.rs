//! Pre-processing transforms, MONAI's names and semantics. Heavy arithmetic runs on the
//! executor's device; only loading and the axis reordering touch host memory. When a
//! training label rides along ([`Data::target`]), every grid change applies to it too.

use super::{
    data::{Data, SpatialStep},
    Transform,
};
use crate::sdk::{
    error::{Error, Result},
    image,
    tasks::input_image,
    transforms,
};
use serde_json::json;

/// `LoadImaged`: reads the request's image (its first frame for 4-D files).
pub struct LoadImage;

impl Transform for LoadImage {
    fn name(&self) -> &'static str {
        "LoadImaged"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let path = input_image(&d.request)?.to_path_buf();
        let mut volume = image::read(&path)?;
        if let Some(label_path) = d.target_path.clone() {
            let mut label = image::read(&label_path)?;
            same_grid(&path, &volume, &label)?;
            d.target_array = Some(label.take_first_frame());
        }
        d.array = Some(volume.take_first_frame());
        d.image = Some(volume);
        Ok(())
    }
}

/// A training label must lie on its image's voxel grid (shape and affine).
fn same_grid(path: &std::path::Path, image: &image::Volume, label: &image::Volume) -> Result<()> {
    let (a, b) = (
        &image.data.shape()[..3.min(image.data.ndim())],
        &label.data.shape()[..3.min(label.data.ndim())],
    );
    let (fa, fb) = (image.affine(), label.affine());
    let scale = fa.iter().flatten().fold(1.0f64, |m, v| m.max(v.abs()));
    let off = fa
        .iter()
        .flatten()
        .zip(fb.iter().flatten())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    if a != b || off > 1e-3 * scale {
        return Err(Error::invalid_input(format!(
            "{}: the final label's grid differs from its image's (shape {b:?} vs {a:?}, affine off by {off:.3})",
            path.display()
        )));
    }
    Ok(())
}

/// `Orientationd(axcodes="RAS")`: reorders the voxel axes to the closest canonical RAS+.
pub struct Orientation;

impl Transform for Orientation {
    fn name(&self) -> &'static str {
        "Orientationd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let (Some(image), Some(array)) = (&d.image, d.array.take()) else {
            return Err(Error::app("Orientationd: LoadImaged must come first"));
        };
        let o = transforms::Orientation::from_affine(&image.affine());
        d.array = Some(o.into_ras(array));
        d.target_array = d.target_array.take().map(|t| o.into_ras(t));
        d.orientation = Some(o);
        Ok(())
    }
}

/// `EnsureTyped(device=...)` + `EnsureChannelFirstd`: sends the image to the requested
/// device as `float32 [1, D, H, W]`.
pub struct EnsureType;

impl Transform for EnsureType {
    fn name(&self) -> &'static str {
        "EnsureTyped"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let array = d
            .array
            .take()
            .ok_or_else(|| Error::app("EnsureTyped: no image loaded"))?;
        let spatial: Vec<i64> = array.shape().iter().take(3).map(|&s| s as i64).collect();
        let spatial = <[i64; 3]>::try_from(spatial)
            .map_err(|_| Error::invalid_input("the image is not 3-D"))?;
        let shape = [1, spatial[0], spatial[1], spatial[2]];
        let upload = |array: ndarray::ArrayD<f32>| {
            let array = array.as_standard_layout();
            let values = array
                .as_slice()
                .ok_or_else(|| Error::app("EnsureTyped: voxels are not contiguous"))?;
            d.exec.tensor_f32(&shape, values, &d.device)
        };
        let tensor = upload(array)?;
        if let Some(target) = d.target_array.take() {
            d.target = Some(upload(target)?);
        }
        d.tensor = Some(tensor);
        Ok(())
    }
}

fn on_tensor(d: &mut Data, who: &str, op: &str, args: serde_json::Value) -> Result<()> {
    let out = d.exec.op1(op, d.tensor(who)?, &args)?;
    d.tensor = Some(out);
    Ok(())
}

/// A grid change applied to the image and, when training, to its label as well (labels
/// are resampled nearest-neighbour, centre-aligned).
fn on_grid(d: &mut Data, who: &str, op: &str, args: serde_json::Value) -> Result<()> {
    if let Some(target) = &d.target {
        let mut label_args = args.clone();
        if op == "interpolate" {
            // Centre-aligned like the image's resampling (legacy `nearest` is shifted by
            // half an input voxel).
            label_args["mode"] = json!("nearest-exact");
        }
        d.target = Some(d.exec.op1(op, target, &label_args)?);
    }
    on_tensor(d, who, op, args)
}

/// `ScaleIntensityRanged`: maps `[a_min, a_max]` to `[b_min, b_max]`, optionally clipped;
/// the executor's op's own arguments ([`crate::ops::ScaleIntensityRange`]) as a transform.
pub use crate::ops::ScaleIntensityRange;

impl Transform for ScaleIntensityRange {
    fn name(&self) -> &'static str {
        "ScaleIntensityRanged"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let args = serde_json::to_value(self).map_err(|e| Error::inference(e.to_string()))?;
        on_tensor(d, self.name(), <Self as crate::ops::Op>::NAME, args)
    }
}

/// `ScaleIntensityRangePercentilesd`: like [`ScaleIntensityRange`] with the input range
/// taken from the image's `lower`/`upper` percentiles (0-100).
pub struct ScaleIntensityRangePercentiles {
    /// Lower percentile.
    pub lower: f64,
    /// Upper percentile.
    pub upper: f64,
    /// Output range start.
    pub b_min: f64,
    /// Output range end.
    pub b_max: f64,
    /// Clip to the output range.
    pub clip: bool,
}

impl Transform for ScaleIntensityRangePercentiles {
    fn name(&self) -> &'static str {
        "ScaleIntensityRangePercentilesd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let x = d.tensor(self.name())?;
        let lo = d
            .exec
            .op1("quantile", x, &json!({"q": self.lower / 100.0}))?
            .scalar_f32()?;
        let hi = d
            .exec
            .op1("quantile", x, &json!({"q": self.upper / 100.0}))?
            .scalar_f32()?;
        if hi <= lo {
            return Err(Error::invalid_input(
                "the image has no intensity range between the percentiles",
            ));
        }
        let scale = ScaleIntensityRange {
            a_min: lo.into(),
            a_max: hi.into(),
            b_min: self.b_min,
            b_max: self.b_max,
            clip: self.clip,
        };
        scale.apply(d)
    }
}

/// `NormalizeIntensityd`: zero mean, unit (population) standard deviation.
pub struct NormalizeIntensity;

impl Transform for NormalizeIntensity {
    fn name(&self) -> &'static str {
        "NormalizeIntensityd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        on_tensor(d, self.name(), "normalize_intensity", json!({}))
    }
}

/// `Resized`: resamples the spatial dims to `spatial_size` (`nearest`, `nearest-exact`,
/// `trilinear`, `area`).
pub struct Resize {
    /// Target `[D, H, W]`.
    pub spatial_size: [i64; 3],
    /// Interpolation mode.
    pub mode: &'static str,
}

impl Transform for Resize {
    fn name(&self) -> &'static str {
        "Resized"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        resize_to(d, self.name(), self.spatial_size, self.mode)
    }
}

fn resize_to(d: &mut Data, who: &str, size: [i64; 3], mode: &str) -> Result<()> {
    let from = d.spatial_shape(who)?;
    on_grid(d, who, "interpolate", json!({"size": size, "mode": mode}))?;
    d.steps.push(SpatialStep::Resized { from });
    Ok(())
}

pub(super) fn crop_to(d: &mut Data, who: &str, start: [i64; 3], end: [i64; 3]) -> Result<()> {
    let from = d.spatial_shape(who)?;
    on_grid(d, who, "crop", json!({"start": start, "end": end}))?;
    d.steps.push(SpatialStep::Cropped { start, from });
    Ok(())
}

/// `Spacingd`: resamples to `pixdim` millimetres per voxel (trilinear for images).
pub struct Spacing {
    /// Target voxel size along the current axes.
    pub pixdim: [f64; 3],
    /// Interpolation mode.
    pub mode: &'static str,
}

impl Transform for Spacing {
    fn name(&self) -> &'static str {
        "Spacingd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let image = d
            .image
            .as_ref()
            .ok_or_else(|| Error::app("Spacingd: LoadImaged must come first"))?;
        let a = image.affine();
        let zoom = |voxel_axis: usize| (0..3).map(|r| a[r][voxel_axis].powi(2)).sum::<f64>().sqrt();
        let axes = d.orientation.map_or([0, 1, 2], |o| o.source_axis);
        let shape = d.spatial_shape(self.name())?;
        let mut size = [0i64; 3];
        for i in 0..3 {
            if self.pixdim[i] <= 0.0 {
                return Err(Error::invalid_input("Spacingd: pixdim must be positive"));
            }
            size[i] = ((shape[i] as f64 * zoom(axes[i]) / self.pixdim[i]).round() as i64).max(1);
        }
        resize_to(d, self.name(), size, self.mode)
    }
}

/// `SpatialCropd`: keeps `[roi_start, roi_end)`.
pub struct SpatialCrop {
    /// First voxel kept per axis.
    pub roi_start: [i64; 3],
    /// One past the last voxel kept per axis.
    pub roi_end: [i64; 3],
}

impl Transform for SpatialCrop {
    fn name(&self) -> &'static str {
        "SpatialCropd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        crop_to(d, self.name(), self.roi_start, self.roi_end)
    }
}

/// `CropForegroundd`: crops to the voxels above `threshold`, grown by `margin`.
pub struct CropForeground {
    /// Voxels above this are foreground (MONAI's default select_fn is `x > 0`).
    pub threshold: f64,
    /// Voxels added on each side.
    pub margin: i64,
}

impl Transform for CropForeground {
    fn name(&self) -> &'static str {
        "CropForegroundd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let shape = d.spatial_shape(self.name())?;
        let args = json!({"threshold": self.threshold});
        let b = d
            .exec
            .op1("foreground_bbox", d.tensor(self.name())?, &args)?
            .to_data()?
            .to_i64()?;
        if b.len() != 6 || b[3..].iter().all(|v| *v == 0) {
            return Err(Error::invalid_input(
                "CropForegroundd: the image has no foreground",
            ));
        }
        let start = [0, 1, 2].map(|i| (b[i] - self.margin).max(0));
        let end = [0, 1, 2].map(|i| (b[3 + i] + self.margin).min(shape[i]));
        crop_to(d, self.name(), start, end)
    }
}

/// `SpatialPadd`: pads (zeros, split evenly) to at least `spatial_size`.
pub struct SpatialPad {
    /// Minimum shape.
    pub spatial_size: [i64; 3],
}

impl Transform for SpatialPad {
    fn name(&self) -> &'static str {
        "SpatialPadd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let from = d.spatial_shape(self.name())?;
        let total = [0, 1, 2].map(|i| (self.spatial_size[i] - from[i]).max(0));
        let before = total.map(|t| t / 2);
        let after = [0, 1, 2].map(|i| total[i] - before[i]);
        if total.iter().any(|t| *t > 0) {
            on_grid(
                d,
                self.name(),
                "pad",
                json!({"before": before, "after": after}),
            )?;
            d.steps.push(SpatialStep::Padded { before, from });
        }
        Ok(())
    }
}
