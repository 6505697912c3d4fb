//! MONAI Label's `BasicTrainTask` for plugins (feature `nifti`, plugin-api 1.2): implement
//! [`BasicTrainTask`]'s hooks (network, optimiser, loss, schedule, pre-transforms,
//! augmentation, inferer, partition, metrics, handlers) and register it with
//! [`Tasks::basic_train`](super::Tasks::basic_train). The SDK runs MONAI's loop; every tensor
//! operation runs in the host's executor through the ABI.
//!
//! The loop (`run.rs`): the datastore's images with `final` labels, split by `val_split`
//! (`partition_datalist`); each case pre-processed once (`dataset.rs`, cached within a
//! memory budget, re-read when over it); random patches balanced by label with flips, 90°
//! rotations and intensity scale/shift (`sampler.rs`), prepared on a second thread while the
//! current step trains; validation by sliding-window inference with mean Dice per label;
//! a click network's guidance simulated before each step (`clicks.rs`);
//! checkpoints and train stats in MONAI Label's layout under the app's model dir; the best
//! model published to the infer task of the same name.

mod clicks;
mod dataset;
mod outputs;
mod run;
mod sampler;
mod settings;
mod validate;

pub use clicks::ClickSimulation;
pub use dataset::{Case, Sample};
pub use sampler::Augmentation;
pub use settings::{TrainRequest, TrainSettings};

use super::{
    error::Result,
    host::Host,
    pipeline::Transforms,
    tasks::{Request, TrainTask},
};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// Called at the end of each epoch with the train stats so far (MONAI's train handlers).
pub trait TrainHandler: Send + Sync {
    /// One epoch finished.
    fn epoch_completed(&self, host: &Host, stats: &Map<String, Value>);
}

/// A trainer written as MONAI Label's `BasicTrainTask`: the hooks name what to train and
/// how; the defaults are MONAI's.
pub trait BasicTrainTask: Send + Sync + 'static {
    /// One line about it.
    fn description(&self) -> String;
    /// `{"label name": value}` (0 is background); the network has `max value + 1` outputs.
    fn labels(&self) -> Map<String, Value>;
    /// The network: a TorchScript file (architecture and initial weights). Training from
    /// scratch (`pretrained: false`) starts from it; otherwise from `load_path` or the last
    /// published model when there is one.
    fn network(&self, host: &Host) -> Result<PathBuf>;
    /// The constructor arguments of MONAI's `BasicTrainTask`.
    fn settings(&self) -> TrainSettings {
        TrainSettings::default()
    }
    /// Defaults shown in `/info/` under `trainers` and merged under every request.
    fn config(&self) -> Map<String, Value> {
        Map::new()
    }
    /// The optimiser (`{"name": "adam"|"adamw"|"sgd", "lr", "weight_decay", "momentum"}`).
    fn optimizer(&self, request: &TrainRequest) -> Value {
        json!({"name": "adam", "lr": request.lr.unwrap_or(1e-4)})
    }
    /// The loss (`{"name": "dice_ce"|"dice"|"ce", "include_background", ...}`).
    fn loss_function(&self, request: &TrainRequest) -> Value {
        let _ = request;
        json!({"name": "dice_ce"})
    }
    /// The learning-rate schedule; MONAI Label's default is `StepLR(1000, 0.1)` stepped once
    /// per epoch (a `step_size` counts epochs unless `"epoch_level": false`).
    fn lr_scheduler(&self, request: &TrainRequest) -> Value {
        let _ = request;
        json!({"name": "step", "step_size": 1000, "gamma": 0.1})
    }
    /// Loading and deterministic pre-processing of a training case (the image and its
    /// label travel together through [`crate::sdk::pipeline`] transforms).
    fn train_pre_transforms(&self, request: &TrainRequest) -> Transforms;
    /// Other pre-processing for validation cases; `None` (the default) uses the train
    /// pre-transforms, and validating on the training cases then reuses them as they are.
    fn val_pre_transforms(&self, request: &TrainRequest) -> Option<Transforms> {
        let _ = request;
        None
    }
    /// The random part of training: patch sampling and augmentation.
    fn train_augmentation(&self, request: &TrainRequest) -> Augmentation {
        let _ = request;
        Augmentation::default()
    }
    /// The validation inferer's sliding-window parameters.
    fn val_inferer(&self, request: &TrainRequest) -> Value {
        let patch = self.train_augmentation(request).patch;
        json!({"roi_size": patch, "sw_batch_size": 2, "overlap": 0.25, "mode": "gaussian"})
    }
    /// Splits labelled cases into (train, validation); MONAI Label's rule by default.
    fn partition_datalist(
        &self,
        datalist: Vec<Sample>,
        request: &TrainRequest,
    ) -> (Vec<Sample>, Vec<Sample>) {
        dataset::partition(datalist, request.val_split, request.seed)
    }
    /// The name of the training metric (mean Dice over labels on training batches).
    fn train_key_metric(&self) -> String {
        "train_mean_dice".into()
    }
    /// The name of the validation metric (mean Dice over labels, sliding window).
    fn val_key_metric(&self) -> String {
        "val_mean_dice".into()
    }
    /// For a click network (DeepEdit, DeepGrow): the guidance channels after the image and
    /// the annotator simulated before each step (MONAI's `train_iteration_update`);
    /// `None` (the default) trains on the image alone.
    fn click_simulation(&self, request: &TrainRequest) -> Option<ClickSimulation> {
        let _ = request;
        None
    }
    /// Handlers called after each epoch.
    fn train_handlers(&self) -> Vec<Box<dyn TrainHandler>> {
        Vec::new()
    }
}

/// The defaults of MONAI Label's train request plus the task's own config.
fn default_config<T: BasicTrainTask>(task: &T) -> Map<String, Value> {
    let mut c = settings::monai_defaults();
    c.extend(task.config());
    c
}

/// A [`BasicTrainTask`] as a [`TrainTask`].
pub struct BasicTrain<T: BasicTrainTask>(pub T);

impl<T: BasicTrainTask> TrainTask for BasicTrain<T> {
    fn description(&self) -> String {
        self.0.description()
    }

    fn config(&self) -> Map<String, Value> {
        default_config(&self.0)
    }

    fn labels(&self) -> Option<Value> {
        Some(Value::Object(self.0.labels()))
    }

    fn train(&self, host: &Host, request: &Request) -> Result<Value> {
        let request = TrainRequest::parse(&default_config(&self.0), request)?;
        run::train(&self.0, host, &request)
    }
}
