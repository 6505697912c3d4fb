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
    /// No valid credentials (401 with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the role the route needs (403).
    #[error("{0}")]
    Forbidden(String),
    /// The route exists but not with this method (405).
    #[error("{0}")]
    MethodNotAllowed(String),
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
    /// The studies folder's disk is full (507); what was saved before is intact.
    #[error("{0}")]
    StorageFull(String),
    /// A task ran past its time limit (504).
    #[error("{0}")]
    Timeout(String),
    /// A service the server relies on (the sign-in realm) failed (502, `UPSTREAM_ERROR`).
    #[error("{0}")]
    BadGateway(String),
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
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PluginLoad(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Error::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Plugin(e) => match e.code {
                ErrorCode::INVALID_INPUT => StatusCode::BAD_REQUEST,
                ErrorCode::NOT_FOUND => StatusCode::NOT_FOUND,
                ErrorCode::UNSUPPORTED => StatusCode::NOT_IMPLEMENTED,
                ErrorCode::OUT_OF_MEMORY => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::OVER_BUDGET => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The error code in the body (MONAI Label's names).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) | Error::Unprocessable(_) => "INVALID_INPUT",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Unauthorized(_) => "UNAUTHORIZED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Error::Conflict(_) => "CONFLICT",
            Error::PluginLoad(_) => "APP_INIT_ERROR",
            Error::Overloaded(_) => "OVERLOADED",
            Error::TooManyRequests(_) => "ALREADY_RUNNING",
            Error::Timeout(_) => "TIMEOUT",
            Error::BadGateway(_) => "UPSTREAM_ERROR",
            Error::StorageFull(_) => "STORAGE_FULL",
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
        let detail = redact_paths(&match &self {
            Error::Plugin(e) => e.message.to_string(),
            other => other.to_string(),
        });
        let mut response =
            (status, Json(json!({"detail": detail, "code": self.code()}))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The server's own folders (studies, plugins, runtime), hidden from answers first.
static SERVER_ROOTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Names the server's folders for [`redact_paths`] (once, at start).
pub fn hide_paths(roots: &[&std::path::Path]) {
    let mut roots: Vec<String> = roots
        .iter()
        .map(|r| r.to_string_lossy().trim_end_matches('/').to_owned())
        .filter(|r| r.len() > 1)
        .collect();
    roots.sort_by_key(|r| std::cmp::Reverse(r.len()));
    let _ = SERVER_ROOTS.set(roots);
}

/// Top-level folders whose paths are the server's, never an API route.
const SYSTEM_TOPS: &[&str] = &[
    "home", "root", "tmp", "var", "srv", "opt", "usr", "etc", "mnt", "media", "data", "work",
    "nix", "proc", "sys", "run", "dev", "boot", "lib", "lib64", "bin", "sbin", "snap",
];

/// `text` with server paths taken out: the server's own folders ([`hide_paths`]) become
/// `…`, and any other absolute path under a system folder loses its folders
/// (`/srv/studies/a.nii.gz` → `…/a.nii.gz`). Answers name the file a client sent or asked
/// for, never where the server keeps it; API routes (`/datastore/image`) stay. Nothing is
/// looked up on disk, so an answer says nothing about which folders exist. The log keeps
/// the whole message.
pub(crate) fn redact_paths(text: &str) -> String {
    let mut text = text.to_owned();
    for root in SERVER_ROOTS.get().into_iter().flatten() {
        text = text.replace(&format!("{root}/"), "…/");
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find('/') {
        let starts_path = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || "\"'`(=:,[{<".contains(c));
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || "\"'`),]}>".contains(c))
            .map_or(rest.len(), |n| at + n);
        let token = &rest[at..end];
        out.push_str(&rest[..at]);
        let top = token[1..].split('/').next().unwrap_or_default();
        match token.rfind('/') {
            Some(last) if starts_path && last > 0 && SYSTEM_TOPS.contains(&top) => {
                out.push('…');
                out.push_str(&token[last..]);
            }
            _ => out.push_str(token),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl From<crate::datastore::DatastoreError> for Error {
    fn from(e: crate::datastore::DatastoreError) -> Self {
        use crate::datastore::DatastoreError as D;
        match e {
            D::NotFound(m) => Error::NotFound(m),
            D::InvalidInput(m) => Error::BadRequest(m),
            D::Io(m) => Error::Internal(m),
            D::Full(m) => Error::StorageFull(m),
            D::Upstream(m) => Error::BadGateway(m),
        }
    }
}

impl From<labelhost_wire::Refused> for Error {
    fn from(e: labelhost_wire::Refused) -> Self {
        match e {
            labelhost_wire::Refused::BadRequest(m) => Error::BadRequest(m),
            labelhost_wire::Refused::Unprocessable(m) => Error::Unprocessable(m),
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

#[cfg(test)]
mod tests {
    use super::redact_paths;

    #[test]
    fn answers_lose_server_folders_but_keep_routes_and_names() {
        let file = std::path::Path::new("/tmp/labelhost-upload-1-0.nii.gz");
        let text = format!(
            "cannot open {} as NIfTI: (\"{}\")",
            file.display(),
            file.display()
        );
        assert_eq!(
            redact_paths(&text),
            "cannot open …/labelhost-upload-1-0.nii.gz as NIfTI: (\"…/labelhost-upload-1-0.nii.gz\")"
        );
        let route = "no route for GET /datastore/imagez and a/b/c or 3/4";
        assert_eq!(redact_paths(route), route);
        assert_eq!(redact_paths("x=/usr/lib/libtorch.so"), "x=…/libtorch.so");
    }
}
