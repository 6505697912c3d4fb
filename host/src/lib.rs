//! labelhost's host: loads app plugins, owns the shared executor and datastore, and serves
//! MONAI Label's REST API plus app management over axum.
//!
//! Data flow: `api` validates a request → `registry` picks the app generation that owns the
//! task → the plugin runs on a blocking thread with `services` (datastore, executor) → `api`
//! maps the result or error to HTTP.

pub mod api;
pub mod auth;
pub mod bundle;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod datastore;
pub mod dicom;
pub mod error;
pub mod executor;
pub mod jobs;
pub mod loader;
pub mod local;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod random;
pub mod registry;
pub mod remote;
pub mod runtime;
pub mod serve;
pub mod services;
pub mod sessions;
pub mod ui;

pub use error::{Error, Result};
