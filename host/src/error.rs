//! The host's error type and its one mapping to HTTP statuses and typed JSON bodies.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use labelhost_plugin_api::abi::{ErrorCode, PluginError};
use serde_json::json;

/// The host's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the host. Each kind has one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (400, `INVALID_INPUT`).
    #[error("{0}")]
    BadRequest(String),
    /// Something the request names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// A required query parameter or form part is missing (422, `INVALID_INPUT`), as
    /// FastAPI's validation answers it.
    #[error("{0}")]
    Unprocessable(String),
    /// The request clashes with the server's state, e.g. an app already loaded (409).
    #[error("{0}")]
    Conflict(String),
    /// A bundle or plugin was refused at load (422, `APP_INIT_ERROR`).
    #[error("{0}")]
    PluginLoad(String),
    /// A plugin's task returned an error; the status follows its code.
    #[error("{0}")]
    Plugin(PluginError),
    /// A job of that kind is already running (429, MONAI Label's answer).
    #[error("{0}")]
    TooManyRequests(String),
    /// A work queue is full (503 with Retry-After).
    #[error("{0}")]
    Overloaded(String),
    /// A failure of the host itself (500, `SERVER_ERROR`).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PluginLoad(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Plugin(e) => match e.code {
                ErrorCode::INVALID_INPUT => StatusCode::BAD_REQUEST,
                ErrorCode::NOT_FOUND => StatusCode::NOT_FOUND,
                ErrorCode::UNSUPPORTED => StatusCode::NOT_IMPLEMENTED,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The error code in the body (MONAI Label's names).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) | Error::Unprocessable(_) => "INVALID_INPUT",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Conflict(_) => "CONFLICT",
            Error::PluginLoad(_) => "APP_INIT_ERROR",
            Error::Overloaded(_) => "OVERLOADED",
            Error::TooManyRequests(_) => "ALREADY_RUNNING",
            Error::Internal(_) => "SERVER_ERROR",
            Error::Plugin(e) => e.code.as_str(),
        }
    }
}

impl From<PluginError> for Error {
    fn from(e: PluginError) -> Self {
        Error::Plugin(e)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), "{self}");
        } else {
            tracing::debug!(code = self.code(), "{self}");
        }
        let detail = match &self {
            Error::Plugin(e) => e.message.to_string(),
            other => other.to_string(),
        };
        let mut response =
            (status, Json(json!({"detail": detail, "code": self.code()}))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<crate::datastore::DatastoreError> for Error {
    fn from(e: crate::datastore::DatastoreError) -> Self {
        use crate::datastore::DatastoreError as D;
        match e {
            D::NotFound(m) => Error::NotFound(m),
            D::InvalidInput(m) => Error::BadRequest(m),
            D::Io(m) => Error::Internal(m),
        }
    }
}

/// axum's extractor rejections (bad query string, path, body) are client errors: answer
/// them with the same typed JSON as everything else, not axum's plain text.
macro_rules! rejections {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for Error {
            fn from(r: $rejection) -> Self {
                Error::BadRequest(r.body_text())
            }
        }
    )*};
}

rejections!(
    axum::extract::rejection::QueryRejection,
    axum::extract::rejection::PathRejection,
    axum::extract::rejection::BytesRejection
);
