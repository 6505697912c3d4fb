//! MONAI Label's `/model/...` routes: a model's weights file and its checksum, as the infer
//! task runs it now (a trainer's published model, else the bundle's). Bundles are
//! immutable once loaded: replacing or deleting weights by hand is a new bundle and a hot
//! swap (`POST /apps/{name}/reload`), so PUT and DELETE answer 409.

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

/// The file the infer task runs now: the plugin is asked again (not the task list cached
/// at load), since a trainer's published model replaces the bundle's.
async fn model_file(state: &State, model: &str) -> Result<PathBuf> {
    let generation = owner(state, TaskKind::INFER, model)?;
    let name = model.to_owned();
    let path = super::call(generation.clone(), move |g| {
        let path = g
            .app
            .tasks()
            .into_iter()
            .find(|t| t.kind == TaskKind::INFER && t.name.as_str() == name)
            .and_then(|t| serde_json::from_str::<Value>(t.info_json.as_str()).ok())
            .and_then(|info| info.get("_model_path")?.as_str().map(PathBuf::from));
        abi_stable::std_types::ROk(path)
    })
    .await?;
    let path = path.ok_or_else(|| Error::NotFound(format!("Model File NOT Found for {model}")))?;
    // Served to clients: only a file of the generation's own.
    generation.own_file(&path).map_err(|e| {
        tracing::warn!("model '{model}': {e}");
        Error::NotFound(format!("Model File NOT Found for {model}"))
    })
}

/// `GET /model/{model}`: the weights file, named `{model}{ext}`.
#[utoipa::path(get, path = "/model/{model}", tag = "MONAI Label", params(("model" = String, Path, description = "")), responses((status = 200, description = "A model's weights file")))]
pub(super) async fn download(
    state: State,
    model: Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let Path(model) = model?;
    let path = model_file(&state, &model).await?;
    let mut response = send_file(
        Ok(path.clone()),
        &format!("Model File NOT Found for {model}"),
        0,
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
    let path = model_file(&state, &model).await?;
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
    let mut answer = json!({"checksum": format!("SHA256:{checksum}"), "modified_time": modified});
    // MONAI Label adds the stats of the trainer that publishes to this model.
    if let Some(stats) = state.shared.jobs.train_stats().remove(&model) {
        answer["train_stats"] = stats;
    }
    Ok(Json(answer))
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
