//! The traits plugin authors implement: an [`App`] and its infer tasks, train tasks,
//! active-learning strategies and scoring methods (MONAI Label's task model).

use super::{error::Result, host::Host};
use crate::abi::InferType;
use serde_json::{json, Map, Value};
use std::{collections::BTreeMap, path::PathBuf};

/// A request: MONAI Label's params object (for infer, `image` is an absolute path).
pub type Request = Map<String, Value>;

/// The input image of an infer request (`request["image"]`, an absolute path).
pub fn input_image(request: &Request) -> Result<&std::path::Path> {
    request
        .get("image")
        .and_then(Value::as_str)
        .map(std::path::Path::new)
        .ok_or_else(|| super::Error::invalid_input("the request has no image"))
}

/// An app: constructed once per loaded generation with the host's services.
pub trait App: Send + Sync + Sized + 'static {
    /// The app's name (unique on a server; `/apps/{name}`).
    const NAME: &'static str;
    /// The labels the app's models produce (shown in `/info/` and the manifest).
    const LABELS: &'static [&'static str] = &[];

    /// Builds the app. Errors are reported as a load failure of this plugin.
    fn new(host: &Host) -> Result<Self>;

    /// The app's tasks; called once, right after [`App::new`].
    fn tasks(&self) -> Tasks;

    /// Called after a label was saved; the JSON object returned is merged into the reply.
    fn on_save_label(&self, host: &Host, image_id: &str, label_id: &str) -> Result<Value> {
        let _ = (host, image_id, label_id);
        Ok(json!({}))
    }

    /// Called when this generation is retired, after its last request finished.
    fn on_retire(&self) {}
}

/// What an infer task tells `/info/` about itself.
#[derive(Debug, Clone)]
pub struct InferTaskInfo {
    /// MONAI Label's InferType.
    pub infer_type: InferType,
    /// Label names: a list, or a `{name: index}` object.
    pub labels: Value,
    /// 2 or 3.
    pub dimension: u32,
    /// One line about the task.
    pub description: String,
    /// Settable parameters (a list value is a choice whose first element is the default).
    pub config: Map<String, Value>,
}

/// What an infer task produced.
#[derive(Debug, Clone, Default)]
pub struct InferResult {
    /// The result file, written under the host's work dir.
    pub label: Option<PathBuf>,
    /// The result JSON (the SDK adds `label_names` and `latencies` when missing).
    pub params: Map<String, Value>,
}

/// An infer task ("model" in MONAI Label's API).
pub trait InferTask: Send + Sync {
    /// Its `/info/` entry.
    fn info(&self) -> InferTaskInfo;
    /// Runs it. `request["image"]` is the absolute path of the input image.
    fn infer(&self, host: &Host, request: &Request) -> Result<InferResult>;

    /// The model file it runs, if any (served by `GET /model/{name}`).
    fn model_path(&self) -> Option<PathBuf> {
        None
    }
}

/// A train task ("trainer").
pub trait TrainTask: Send + Sync {
    /// One line about it.
    fn description(&self) -> String;
    /// Its default config (shown in `/info/`).
    fn config(&self) -> Map<String, Value> {
        Map::new()
    }
    /// The labels it trains (shown in `/info/`), if it says.
    fn labels(&self) -> Option<Value> {
        None
    }
    /// Trains; returns the train stats. `request["model"]` is the trainer's name and
    /// `request["_job"]` the host's job id (for [`Host::job_progress`]).
    fn train(&self, host: &Host, request: &Request) -> Result<Value>;
}

/// An active-learning strategy: picks the next image to annotate.
pub trait Strategy: Send + Sync {
    /// One line about it.
    fn description(&self) -> String;
    /// The chosen sample (`{"id": ..., extras}`), or `None` when nothing is left.
    fn next_sample(&self, host: &Host, request: &Request) -> Result<Option<Map<String, Value>>>;
}

/// A scoring method: computes scores over the datastore.
pub trait ScoringMethod: Send + Sync {
    /// One line about it.
    fn description(&self) -> String;
    /// Scores; returns its JSON result.
    fn score(&self, host: &Host, request: &Request) -> Result<Value>;
}

/// The tasks of an app, by name. Built with the `infer`/`train`/`strategy`/`scoring` methods.
#[derive(Default)]
pub struct Tasks {
    pub(crate) infers: BTreeMap<String, Box<dyn InferTask>>,
    pub(crate) trainers: BTreeMap<String, Box<dyn TrainTask>>,
    pub(crate) strategies: BTreeMap<String, Box<dyn Strategy>>,
    pub(crate) scoring: BTreeMap<String, Box<dyn ScoringMethod>>,
}

impl Tasks {
    /// No tasks yet.
    pub fn new() -> Self {
        Tasks::default()
    }
    /// Adds an infer task.
    pub fn infer(mut self, name: &str, task: impl InferTask + 'static) -> Self {
        self.infers.insert(name.to_owned(), Box::new(task));
        self
    }
    /// Adds an infer task written as a MONAI Label `BasicInferTask` pipeline.
    #[cfg(feature = "nifti")]
    pub fn pipeline(self, name: &str, pipeline: impl super::pipeline::Pipeline + 'static) -> Self {
        self.infer(name, super::pipeline::PipelineTask(pipeline))
    }
    /// Adds a train task.
    pub fn train(mut self, name: &str, task: impl TrainTask + 'static) -> Self {
        self.trainers.insert(name.to_owned(), Box::new(task));
        self
    }
    /// Adds a train task written as MONAI Label's `BasicTrainTask`.
    #[cfg(all(feature = "nifti", not(any(feature = "abi-1-0", feature = "abi-1-1"))))]
    pub fn basic_train(self, name: &str, task: impl super::train::BasicTrainTask) -> Self {
        self.train(name, super::train::BasicTrain(task))
    }
    /// Adds a strategy.
    pub fn strategy(mut self, name: &str, strategy: impl Strategy + 'static) -> Self {
        self.strategies.insert(name.to_owned(), Box::new(strategy));
        self
    }
    /// Adds a scoring method.
    pub fn scoring(mut self, name: &str, method: impl ScoringMethod + 'static) -> Self {
        self.scoring.insert(name.to_owned(), Box::new(method));
        self
    }
}
