//! MONAI Label's `/model/...` routes: a model's weights file and its checksum. Models ship
//! in app bundles, which are immutable once loaded: replacing or deleting one is a new
//! bundle and a hot swap (`POST /apps/{name}/reload`), so PUT and DELETE answer 409.

use super::{owner, upload::send_file, State};
use crate::{Error, Result};
use axum::{
    extract::{rejection::PathRejection, Path},
    response::{IntoResponse, Response},
    Json,
};
use labelhost_plugin_api::abi::TaskKind;
use serde_json::{json, Value};
use std::path::PathBuf;

fn model_file(state: &State, model: &str) -> Result<PathBuf> {
    let generation = owner(state, TaskKind::INFER, model)?;
    let task = generation
        .tasks
        .iter()
        .find(|t| t.kind == TaskKind::INFER && t.name == model);
    let path = task
        .and_then(|t| t.info.get("_model_path"))
        .and_then(Value::as_str);
    path.map(PathBuf::from)
        .ok_or_else(|| Error::NotFound(format!("Model File NOT Found for {model}")))
}

/// `GET /model/{model}`: the weights file, named `{model}{ext}`.
#[utoipa::path(get, path = "/model/{model}", tag = "MONAI Label", params(("model" = String, Path, description = "")), responses((status = 200, description = "A model's weights file")))]
pub(super) async fn download(
    state: State,
    model: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let Path(model) = model?;
    let path = model_file(&state, &model)?;
    let mut response = send_file(
        Ok(path.clone()),
        &format!("Model File NOT Found for {model}"),
    )
    .await?;
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let disposition = format!("attachment; filename=\"{model}{ext}\"");
    if let Ok(v) = axum::http::HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `GET /model/info/{model}`: `{"checksum": "SHA256:<hex>", "modified_time": secs}`.
#[utoipa::path(get, path = "/model/info/{model}", tag = "MONAI Label", params(("model" = String, Path, description = "")), responses((status = 200, description = "A model's checksum and modification time")))]
pub(super) async fn info(
    state: State,
    model: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let Path(model) = model?;
    let path = model_file(&state, &model)?;
    let (checksum, modified) = super::blocking(move || {
        let sum = crate::bundle::sha256_file(&path)
            .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Ok::<_, Error>((sum, modified))
    })
    .await?;
    Ok(Json(
        json!({"checksum": format!("SHA256:{checksum}"), "modified_time": modified}),
    ))
}

/// `PUT`/`DELETE /model/{model}`: refused, models change with their bundle.
#[utoipa::path(put, path = "/model/{model}", tag = "MONAI Label", params(("model" = String, Path, description = "")), responses((status = 200, description = "Refused (409): weights change with their bundle")))]
pub(super) async fn immutable(model: Result<Path<String>, PathRejection>) -> Result<Response> {
    let Path(model) = model?;
    Err::<Response, _>(Error::Conflict(format!(
        "the weights of '{model}' ship in its app bundle: publish a new bundle and hot-swap it with POST /apps/{{app}}/reload"
    )))
    .map(IntoResponse::into_response)
}
