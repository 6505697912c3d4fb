//! The executor's tensor ops as the contract between plugins and the host: each op's name
//! and typed arguments. A plugin builds one and runs it with `sdk::Executor::run` (the
//! same name and JSON also go through `Executor::op`); the host answers every name in
//! [`NAMES`] (a host test runs each), and a name it does not know with `UNSUPPORTED`.
//!
//! Ops live in the host, so adding one needs no ABI change; new semantics come as a new
//! name, never as a new argument an older host would ignore and compute something else
//! (ARCHITECTURE.md, "ABI rules"). Spatial ops take `[D,H,W]`, `[C,D,H,W]` or
//! `[N,C,D,H,W]` tensors unless they say otherwise; results stay on the tensor's device.

use crate::abi::DType;
use serde::{Serialize, Serializer};

/// A tensor op: the name the host dispatches on, and itself serialised as the arguments.
pub trait Op: Serialize {
    /// The op's name.
    const NAME: &'static str;
}

macro_rules! named {
    ($($op:ident = $name:literal),* $(,)?) => {
        $(impl Op for $op {
            const NAME: &'static str = $name;
        })*
        /// Every op's name, as the host must answer them.
        pub const NAMES: &[&str] = &[$($name),*];
    };
}

named!(
    Interpolate = "interpolate",
    Crop = "crop",
    Orient = "orient",
    Resample = "resample",
    Paste = "paste",
    ScaleIntensityRange = "scale_intensity_range",
    NormalizeIntensity = "normalize_intensity",
    NormalizeResize = "normalize_resize",
    Affine = "affine",
    Quantile = "quantile",
    Quantiles = "quantiles",
    Shape = "shape",
    Describe = "describe",
    ForegroundBbox = "foreground_bbox",
    Pad = "pad",
    Reshape = "reshape",
    Flip = "flip",
    NanToNum = "nan_to_num",
    Select = "select",
    Argmax = "argmax",
    Softmax = "softmax",
    Sigmoid = "sigmoid",
    Dice = "dice",
    Threshold = "threshold",
    ToDtype = "to_dtype",
);

/// How a resize samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Nearest voxel, centres aligned (MONAI's `Resize(mode="nearest-exact")`).
    #[default]
    NearestExact,
    /// Nearest voxel, corners aligned (LibTorch's legacy `nearest`).
    Nearest,
    /// Trilinear, corners not aligned.
    Trilinear,
    /// Adaptive average pooling (area).
    Area,
}

/// A floating element type an op writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Float {
    /// 32-bit.
    #[default]
    Float32,
    /// bfloat16, rounded to nearest even.
    Bfloat16,
    /// IEEE half, rounded to nearest even.
    Float16,
}

/// Resize the last three dims to `size`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Interpolate {
    /// The new `[D, H, W]`.
    pub size: [i64; 3],
    /// Sampling (nearest-exact).
    pub mode: ResizeMode,
}

/// The box `[start, end)` of the last three dims (a view).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Crop {
    /// First voxel per spatial dim.
    pub start: [i64; 3],
    /// One past the last.
    pub end: [i64; 3],
}

/// Dims permuted, then flipped, written once in C order (a volume uploaded in its file's
/// order becomes RAS+ in one pass).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Orient {
    /// A permutation of all dims.
    pub permute: Vec<i64>,
    /// Dims of the permuted tensor to reverse.
    pub flip: Vec<i64>,
    /// NaN to 0, infinities to the largest finite values (floating inputs).
    pub nan_to_num: bool,
    /// `float32` to convert (only that); `None` keeps the input's type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<Float>,
}

/// A 3-D tensor reoriented (as [`Orient`]), cropped (as [`Crop`], in the reoriented
/// frame), resized nearest-exact, then intensity-scaled, as `f32`, in one step; with
/// `threshold`, `u8` of the values above it. What a task needs of a stored volume without
/// its whole reoriented copy.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Resample {
    /// For each output dim, the input dim it runs along (default `[0, 1, 2]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permute: Option<[i64; 3]>,
    /// Output dims that run their input dim backwards.
    pub flip: Vec<i64>,
    /// The box, in the reoriented frame (default all of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<[i64; 3]>,
    /// One past the box's end (default the reoriented shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<[i64; 3]>,
    /// The output's size (default the box's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<[i64; 3]>,
    /// NaN to 0, infinities to the largest finite values.
    pub nan_to_num: bool,
    /// MONAI's `ScaleIntensityRange`, applied last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<ScaleIntensityRange>,
    /// Answer `u8` of `value > threshold` instead of the values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// A 3-D tensor placed at `start` in zeros of `shape`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Paste {
    /// The output's `[D, H, W]`.
    pub shape: [i64; 3],
    /// Where the input's first voxel goes.
    pub start: [i64; 3],
}

/// MONAI's `ScaleIntensityRange`: `[a_min, a_max]` mapped onto `[b_min, b_max]`, clipped
/// to that when `clip`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ScaleIntensityRange {
    /// Source range start.
    pub a_min: f64,
    /// Source range end (not `a_min`).
    pub a_max: f64,
    /// Target range start.
    pub b_min: f64,
    /// Target range end.
    pub b_max: f64,
    /// Clip to the target range.
    pub clip: bool,
}

/// MONAI's `NormalizeIntensity`: `(x - mean) / std`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NormalizeIntensity {
    /// The sample std (n − 1).
    pub unbiased: bool,
}

/// What [`NormalizeIntensity`] then `scale * x + shift` gives on the input resized
/// nearest-exact to `size`, without making the resized volume first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NormalizeResize {
    /// The new `[D, H, W]`.
    pub size: [i64; 3],
    /// The sample std (n − 1).
    pub unbiased: bool,
    /// Multiplies the z-score.
    pub scale: f64,
    /// Then added.
    pub shift: f64,
    /// The element type written (an older host writes `float32`, the same values before
    /// rounding).
    pub dtype: Float,
}

impl Default for NormalizeResize {
    fn default() -> Self {
        NormalizeResize {
            size: [1, 1, 1],
            unbiased: false,
            scale: 1.0,
            shift: 0.0,
            dtype: Float::Float32,
        }
    }
}

/// `x * scale + shift`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Affine {
    /// Multiplier.
    pub scale: f64,
    /// Then added.
    pub shift: f64,
}

/// One quantile with linear interpolation (torch.quantile's rule), a 0-dim tensor.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Quantile {
    /// In `[0, 1]`.
    pub q: f64,
}

/// Several quantiles of one tensor, a 1-D tensor in their order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Quantiles {
    /// Each in `[0, 1]`.
    pub q: Vec<f64>,
}

/// The input's shape, as an `i64` tensor.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Shape {}

/// The input's element type (its [`DType`] code) and shape, as an `i64` tensor
/// `[dtype, d0, d1, ...]`, read from the tensor's header: no element is copied
/// (`sdk::Tensor::describe`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Describe {}

/// The `[start, end)` box of the voxels above `threshold` (any channel), as an `i64`
/// tensor `[s0, s1, s2, e0, e1, e2]`; all zeros when none is.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ForegroundBbox {
    /// Voxels above it count.
    pub threshold: f64,
}

/// Pads the last three dims with `value`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Pad {
    /// Voxels before, per spatial dim.
    pub before: [i64; 3],
    /// Voxels after.
    pub after: [i64; 3],
    /// The fill.
    pub value: f64,
}

/// The same elements in `shape` (a view where the layout allows).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Reshape {
    /// The new shape (one entry may be -1).
    pub shape: Vec<i64>,
}

/// Reverses `dims`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Flip {
    /// The dims.
    pub dims: Vec<i64>,
}

/// NaN to 0, infinities to the largest finite values.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NanToNum {}

/// The slice at `index` of `dim` (a view, one dim fewer).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Select {
    /// The dim.
    pub dim: i64,
    /// The index along it.
    pub index: i64,
}

/// Indices of the maxima along `dim`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Argmax {
    /// The dim.
    pub dim: i64,
    /// Keep `dim` with size 1.
    pub keepdim: bool,
}

/// Softmax along `dim`, as `f32`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Softmax {
    /// The dim.
    pub dim: i64,
}

/// The logistic function.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Sigmoid {}

/// MONAI's `DiceMetric` per label between a prediction and a target (two inputs), one
/// `f32` per label; 1 where both are empty.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Dice {
    /// The labels, in the answer's order.
    pub labels: Vec<i64>,
    /// Argmax the prediction's scores over dim 0 first.
    pub argmax: bool,
}

/// `u8` of `x > value`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Threshold {
    /// The threshold.
    pub value: f64,
}

/// The elements converted to `dtype`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToDtype {
    /// The element type.
    pub dtype: DType,
}

impl Serialize for ToDtype {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ToDtype", 1)?;
        st.serialize_field("dtype", &self.dtype.0)?;
        st.end()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn json<O: Op>(op: &O) -> String {
        serde_json::to_string(op).unwrap()
    }

    #[test]
    fn ops_serialise_as_the_json_the_host_reads() {
        assert_eq!(
            json(&Interpolate {
                size: [2, 3, 4],
                ..Default::default()
            }),
            r#"{"size":[2,3,4],"mode":"nearest-exact"}"#
        );
        assert_eq!(
            json(&Resample {
                flip: vec![0],
                threshold: Some(0.5),
                ..Default::default()
            }),
            r#"{"flip":[0],"nan_to_num":false,"threshold":0.5}"#
        );
        let dtype = NormalizeResize {
            dtype: Float::Bfloat16,
            ..Default::default()
        };
        assert!(json(&dtype).contains(r#""dtype":"bfloat16""#));
        assert_eq!(json(&ToDtype { dtype: DType::U8 }), r#"{"dtype":1}"#);
        let mut names = NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), NAMES.len(), "a name listed twice");
        assert!(NAMES.contains(&Resample::NAME) && NAMES.contains(&Dice::NAME));
    }
}
