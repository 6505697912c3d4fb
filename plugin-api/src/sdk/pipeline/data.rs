//! [`Data`]: what flows through a pipeline (MONAI's data dictionary, typed).

use crate::sdk::{
    error::{Error, Result},
    host::{Executor, Host, Tensor},
    image::Volume,
    tasks::Request,
    transforms,
};
use ndarray::ArrayD;
use serde_json::{Map, Value};

/// A change of the spatial grid made by a pre-transform, undone by [`super::Restore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpatialStep {
    /// Resampled from shape `from` (`Resized`, `Spacingd`).
    Resized {
        /// The shape before.
        from: [i64; 3],
    },
    /// Cropped out of shape `from` at `start` (`SpatialCropd`, `CropForegroundd`).
    Cropped {
        /// Where the crop started.
        start: [i64; 3],
        /// The shape before.
        from: [i64; 3],
    },
    /// Padded by `before` voxels at the start of each axis (`SpatialPadd`).
    Padded {
        /// Padding before each axis.
        before: [i64; 3],
        /// The shape before.
        from: [i64; 3],
    },
}

/// The state of one inference as it moves through the stages.
pub struct Data {
    /// The request (`image` is the input's absolute path).
    pub request: Request,
    /// The host services.
    pub host: Host,
    /// The executor (tensors live there).
    pub exec: Executor,
    /// The device asked for (`""` = the executor's default).
    pub device: String,
    /// The input as loaded ([`super::LoadImage`]); the writer copies its geometry.
    pub image: Option<Volume>,
    /// The image on the host before it is sent to the device.
    pub array: Option<ArrayD<f32>>,
    /// How the input's axes were reordered to RAS ([`super::Orientation`]).
    pub orientation: Option<transforms::Orientation>,
    /// Grid changes made since [`super::EnsureType`], in order.
    pub steps: Vec<SpatialStep>,
    /// The working image tensor, channel first `[C, D, H, W]`.
    pub tensor: Option<Tensor>,
    /// The model's output, channel first.
    pub pred: Option<Tensor>,
    /// The label on the host (after [`super::ToHost`]), spatial `[D, H, W]`.
    pub label: Option<ArrayD<u8>>,
    /// Extra result JSON (`centroids`, task extras); `label_names` is added by the SDK.
    pub result: Map<String, Value>,
    /// Training only: the label file read by [`super::LoadImage`] beside the image (its
    /// grid must be the image's).
    pub target_path: Option<std::path::PathBuf>,
    /// Training only: the label on the host, moved along with the image until
    /// [`super::EnsureType`] sends it to the device.
    pub target_array: Option<ArrayD<f32>>,
    /// Training only: the label on the device, `[1, D, H, W]`; every grid-changing transform
    /// applies to it too (nearest-neighbour where it resamples).
    pub target: Option<Tensor>,
}

impl Data {
    /// Fresh data for a request.
    pub fn new(host: &Host, request: &Request) -> Self {
        let device = request
            .get("device")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Data {
            request: request.clone(),
            host: host.clone(),
            exec: host.executor(),
            device,
            image: None,
            array: None,
            orientation: None,
            steps: Vec::new(),
            tensor: None,
            pred: None,
            label: None,
            result: Map::new(),
            target_path: None,
            target_array: None,
            target: None,
        }
    }

    /// The working tensor, or an error naming the transform that needed it.
    pub fn tensor(&self, who: &str) -> Result<&Tensor> {
        self.tensor
            .as_ref()
            .ok_or_else(|| Error::app(format!("{who}: no image tensor yet (EnsureType first)")))
    }

    /// The working tensor's spatial shape (its last three dims).
    pub fn spatial_shape(&self, who: &str) -> Result<[i64; 3]> {
        let dims = self
            .exec
            .op1("shape", self.tensor(who)?, &serde_json::json!({}))?
            .to_data()?
            .to_i64()?;
        dims.len()
            .checked_sub(3)
            .and_then(|n| <[i64; 3]>::try_from(&dims[n..]).ok())
            .ok_or_else(|| Error::app(format!("{who}: the image is not 3-D")))
    }

    /// The prediction, or an error naming the transform that needed it.
    pub fn pred(&self, who: &str) -> Result<&Tensor> {
        self.pred
            .as_ref()
            .ok_or_else(|| Error::app(format!("{who}: no prediction yet")))
    }
}
