//! The stable ABI: every type that crosses the host/plugin boundary, all `StableAbi`.
//!
//! Rules (see ARCHITECTURE.md): within a major, only append. New trait methods go after
//! the `last_prefix_field` method and always have a default; new root-module fields go
//! at the end and are read through their `Option` getters; codes are open newtypes
//! (`ErrorCode`, `InferType`, `TaskKind`), never exhaustive enums; structured payloads
//! that will grow (requests, results, info dicts) travel as JSON text.

pub mod app;
pub mod error;
pub mod executor;
pub mod root;
pub mod services;
pub mod types;

pub use app::{App, AppBox, App_TO};
pub use error::{ErrorCode, PluginError, PluginResult};
pub use executor::{DType, Executor, ExecutorBox, Executor_TO, ModelId, TensorData, TensorId};
pub use root::{AppModule, AppModuleRef, ABI_VERSION};
pub use services::{Datastore, DatastoreBox, Datastore_TO, Host, HostBox, Host_TO, LogLevel};
pub use types::{InferOutput, InferType, Manifest, TaskInfo, TaskKind};
