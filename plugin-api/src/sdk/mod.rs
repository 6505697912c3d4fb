//! The safe SDK: plugin authors implement [`App`] and its tasks in ordinary Rust and call
//! [`crate::export_app!`]; the SDK generates the FFI glue and catches every panic.

mod adapter;
mod error;
mod export;
mod host;
#[cfg(feature = "nifti")]
pub mod image;
#[cfg(feature = "nifti")]
pub mod pipeline;
#[cfg(feature = "nifti")]
pub mod scoring;
pub mod strategies;
mod tasks;
pub mod timing;
#[cfg(all(feature = "nifti", not(any(feature = "abi-1-0", feature = "abi-1-1"))))]
pub mod train;
#[cfg(feature = "nifti")]
pub mod transforms;
#[cfg(all(feature = "nifti", not(any(feature = "abi-1-0", feature = "abi-1-1"))))]
pub mod uncertainty;

pub use adapter::AppAdapter;
pub use error::{Error, Result};
#[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
pub use host::TrainableModel;
pub use host::{Datastore, Executor, Host, Model, Tensor};
pub use tasks::{
    input_image, App, InferResult, InferTask, InferTaskInfo, Request, ScoringMethod, Strategy,
    Tasks, TrainTask,
};

pub use crate::abi::{DType, ErrorCode, InferType, LogLevel, TensorData};
pub use serde_json::{json, Map, Value};
