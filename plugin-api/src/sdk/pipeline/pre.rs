//! Pre-processing transforms, MONAI's names and semantics. Heavy arithmetic runs on the
//! executor's device; only loading and the axis reordering touch host memory.

use super::{data::Data, Transform};
use crate::sdk::{
    error::{Error, Result},
    image,
    tasks::input_image,
    transforms, DType,
};
use serde_json::json;

/// `LoadImaged`: reads the request's image (its first frame for 4-D files).
pub struct LoadImage;

impl Transform for LoadImage {
    fn name(&self) -> &'static str {
        "LoadImaged"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let volume = image::read(input_image(&d.request)?)?;
        d.array = Some(volume.first_frame());
        d.image = Some(volume);
        Ok(())
    }
}

/// `Orientationd(axcodes="RAS")`: reorders the voxel axes to the closest canonical RAS+.
pub struct Orientation;

impl Transform for Orientation {
    fn name(&self) -> &'static str {
        "Orientationd"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let (Some(image), Some(array)) = (&d.image, &d.array) else {
            return Err(Error::app("Orientationd: LoadImaged must come first"));
        };
        let o = transforms::Orientation::from_affine(&image.affine());
        d.array = Some(o.to_ras(array));
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
        let bytes: Vec<u8> = array.iter().flat_map(|v| v.to_ne_bytes()).collect();
        d.tensor = Some(d.exec.tensor(DType::F32, &shape, bytes, &d.device)?);
        d.original_shape.get_or_insert(spatial);
        Ok(())
    }
}

fn on_tensor(d: &mut Data, who: &str, op: &str, args: serde_json::Value) -> Result<()> {
    let out = d.exec.op1(op, d.tensor(who)?, &args)?;
    d.tensor = Some(out);
    Ok(())
}

/// `ScaleIntensityRanged`: maps `[a_min, a_max]` to `[b_min, b_max]`, optionally clipped.
pub struct ScaleIntensityRange {
    /// Input range start.
    pub a_min: f64,
    /// Input range end.
    pub a_max: f64,
    /// Output range start.
    pub b_min: f64,
    /// Output range end.
    pub b_max: f64,
    /// Clip to the output range.
    pub clip: bool,
}

impl Transform for ScaleIntensityRange {
    fn name(&self) -> &'static str {
        "ScaleIntensityRanged"
    }
    fn apply(&self, d: &mut Data) -> Result<()> {
        let args = json!({"a_min": self.a_min, "a_max": self.a_max, "b_min": self.b_min, "b_max": self.b_max, "clip": self.clip});
        on_tensor(d, self.name(), "scale_intensity_range", args)
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
        on_tensor(
            d,
            self.name(),
            "interpolate",
            json!({"size": self.spatial_size, "mode": self.mode}),
        )
    }
}
