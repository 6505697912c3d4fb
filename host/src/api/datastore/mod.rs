//! MONAI Label's `/datastore/...` routes over the shared [`LocalDatastore`]: listing, image
//! and label upload, download, existence checks, info updates and removal.
//!
//! Uploads are streamed to a temp file under the system temp folder, then copied into the
//! studies folder by the datastore (atomically) and deleted. Every datastore call runs on a
//! blocking thread: its mutex is held across file copies and index writes.

pub(in crate::api) mod images;
pub(in crate::api) mod labels;
#[cfg(test)]
mod tests;

use super::upload::{
    base_name, content_type, json_field, multipart_error, read_upload, send_file, small_field,
    stream_file,
};
use super::AppState;
use crate::datastore::{DatastoreError, LocalDatastore};
use crate::{Error, Result};
use axum::{
    body::Bytes,
    extract::{rejection::QueryRejection, DefaultBodyLimit, Form, FromRequest, Query, Request},
    response::Response,
    routing::{get, put},
    Router,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

use super::upload::UPLOAD_LIMIT;

/// The `/datastore/...` routes; mounted by [`super::router`].
pub(super) fn routes() -> Router<Arc<AppState>> {
    let limit = DefaultBodyLimit::max(usize::try_from(UPLOAD_LIMIT).unwrap_or(usize::MAX));
    // `PUT /datastore/` and `DELETE /datastore/` are MONAI Label's deprecated image aliases;
    // FastAPI redirects the slash-less form, so it answers the same here.
    let root = get(images::list)
        .put(images::upload)
        .delete(images::remove)
        .layer(limit);
    let image = get(images::download)
        .head(images::exists)
        .put(images::upload)
        .delete(images::remove)
        .layer(limit);
    let label = get(labels::download)
        .head(labels::exists)
        .put(labels::save)
        .delete(labels::remove)
        .layer(limit);
    Router::new()
        .route("/datastore/", root.clone())
        .route("/datastore", root)
        .route("/datastore/image", image)
        .route(
            "/datastore/image/info",
            get(images::info).put(images::update_info),
        )
        .route("/datastore/label", label)
        .route(
            "/datastore/label/info",
            get(labels::info).put(labels::update_info),
        )
        .route(
            "/datastore/updatelabelinfo",
            put(labels::update_info_deprecated),
        )
        .route("/datastore/dataset", get(dataset))
}

/// `GET /datastore/dataset?limit_cases=N`: a zip of the labelled images, their final labels
/// and the index (`dataset.zip`).
#[utoipa::path(get, path = "/datastore/dataset", tag = "datastore", params(("limit_cases" = Option<usize>, Query, description = "")), responses((status = 200, description = "A zip of labelled images, final labels and the index")))]
pub(in crate::api) async fn dataset(
    state: super::State,
    q: Result<Query<DatasetQuery>, QueryRejection>,
) -> Result<Response> {
    let Query(q) = q?;
    let written = blocking(&state.shared.datastore, move |ds| {
        Ok(ds.dataset_archive(q.limit_cases)?)
    })
    .await?;
    // Open, then unlink at once: the stream reads the open file, and nothing is left in the
    // temp folder whether or not the client reads to the end.
    let file = tokio::fs::File::open(&written).await;
    let _ = tokio::fs::remove_file(&written).await;
    let file = file.map_err(|e| Error::Internal(format!("dataset archive: {e}")))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| Error::Internal(format!("dataset archive: {e}")))?
        .len();
    Ok(stream_file(file, len, "application/zip", "dataset.zip"))
}

/// `GET /datastore/dataset` query.
#[derive(Debug, Deserialize)]
pub(in crate::api) struct DatasetQuery {
    limit_cases: Option<usize>,
}

/// Every query parameter the datastore routes read (MONAI Label's names); each handler
/// uses its own and insists on the required ones with [`required`].
#[derive(Debug, Default, Deserialize)]
pub(super) struct DatastoreQuery {
    output: Option<String>,
    image: Option<String>,
    id: Option<String>,
    label: Option<String>,
    tag: Option<String>,
    check_sum: Option<String>,
}

/// A required query parameter, or 422 naming it (FastAPI's answer).
fn required(value: Option<String>, name: &str) -> Result<String> {
    value.ok_or_else(|| Error::Unprocessable(format!("the '{name}' query parameter is required")))
}

/// Runs `f` with the datastore on a blocking thread.
async fn blocking<T, F>(store: &Arc<LocalDatastore>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&LocalDatastore) -> Result<T> + Send + 'static,
{
    let store = store.clone();
    super::blocking(move || f(&store)).await
}

/// An info lookup that answers `{}` for an unknown image or label, as MONAI Label does.
fn info_or_empty(
    found: std::result::Result<Map<String, Value>, DatastoreError>,
) -> Result<Map<String, Value>> {
    match found {
        Err(DatastoreError::NotFound(_)) => Ok(Map::new()),
        other => Ok(other?),
    }
}

/// The JSON object in form field `name` (multipart or urlencoded), `{}` when absent.
async fn form_json(req: Request, name: &str) -> Result<Map<String, Value>> {
    let kind = content_type(&req);
    if kind.starts_with("multipart/form-data") {
        let mut form = super::multipart::open(req).await?;
        let mut info = Map::new();
        while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
            if field.name() == Some(name) {
                info = json_field(name, &small_field(&mut field).await?)?;
            }
        }
        return Ok(info);
    }
    if kind.starts_with("application/x-www-form-urlencoded") {
        let Form(fields) = Form::<Vec<(String, String)>>::from_request(req, &())
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?;
        let text = fields.into_iter().rev().find(|(k, _)| k == name);
        return json_field(name, text.map(|(_, v)| v).unwrap_or_default().as_bytes());
    }
    let body = Bytes::from_request(req, &()).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    Err(Error::BadRequest(format!(
        "send '{name}' as a form field (multipart/form-data or application/x-www-form-urlencoded)"
    )))
}

/// MONAI Label's default image id: the file name without folders and all its suffixes
/// (`abc.nii.gz` → `abc`).
fn stem(name: &str) -> String {
    let base = base_name(name);
    let dots = base.len() - base.trim_start_matches('.').len();
    let rest = &base[dots..];
    let first = rest.split('.').next().unwrap_or(rest);
    base[..dots + first.len()].to_owned()
}
