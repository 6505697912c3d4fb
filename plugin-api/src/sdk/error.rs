//! The SDK's error type: an [`ErrorCode`] and a message, convertible to the ABI's.

use crate::abi::{ErrorCode, PluginError};
use std::fmt;

/// The SDK result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error a plugin returns; the host maps its code to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// MONAI Label error code.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
}

impl Error {
    /// An error with any code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
    /// `INVALID_INPUT`: the request is wrong.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::INVALID_INPUT, message)
    }
    /// `NOT_FOUND`: something named does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::NOT_FOUND, message)
    }
    /// `APP_INFERENCE_FAILED`.
    pub fn inference(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::APP_INFERENCE_FAILED, message)
    }
    /// `APP_ERROR`.
    pub fn app(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::APP_ERROR, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<PluginError> for Error {
    fn from(e: PluginError) -> Self {
        Error {
            code: e.code,
            message: e.message.into_string(),
        }
    }
}

impl From<Error> for PluginError {
    fn from(e: Error) -> Self {
        PluginError::new(e.code, e.message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::invalid_input(format!("bad JSON: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::app(format!("I/O error: {e}"))
    }
}
