//! MONAI Label's `/session/` routes: upload once, infer many times with `session_id`.

use super::{
    blocking,
    upload::{multipart_error, receive, send_file, Upload},
    State,
};
use crate::{sessions::SessionInfo, Error, Result};
use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, Request,
    },
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// `PUT /session/` query.
#[derive(Debug, Deserialize)]
pub(super) struct PutQuery {
    #[serde(default)]
    uncompress: bool,
    #[serde(default)]
    expiry: u64,
}

/// `GET /session/{id}` query.
#[derive(Debug, Deserialize)]
pub(super) struct GetQuery {
    #[serde(default)]
    update_ts: bool,
    #[serde(default)]
    image: bool,
}

/// A session's info as answered: its folder and image as the server's paths only when
/// paths are shared, else as the routes that serve them.
fn info_json(access: &super::Access, info: &SessionInfo) -> Value {
    let mut answer = serde_json::to_value(info).unwrap_or(Value::Null);
    let route = format!("/session/{}", super::access::query_value(&info.name));
    answer["path"] = json!(access.path(std::path::Path::new(&info.path), route.clone()));
    answer["image"] = json!(access.path(
        std::path::Path::new(&info.image),
        format!("{route}?image=true")
    ));
    answer
}

/// `PUT /session/`: multipart `files` (one image, or several files of a series).
#[utoipa::path(put, path = "/session/", tag = "MONAI Label", params(("expiry" = Option<u64>, Query, description = ""), ("uncompress" = Option<bool>, Query, description = "")), responses((status = 200, description = "Upload files (multipart files) as a session")))]
pub(super) async fn create(
    state: State,
    query: Result<Query<PutQuery>, QueryRejection>,
    req: Request,
) -> Result<Json<Value>> {
    let Query(q) = query?;
    if q.uncompress {
        return Err(Error::BadRequest(
            "uncompress=true (archives) is not supported by this server".into(),
        ));
    }
    let mut form = super::multipart::open(req).await?;
    let mut files: Vec<Upload> = Vec::new();
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        if field.name() == Some("files") {
            files.push(receive(&mut field).await?);
        }
    }
    if files.is_empty() {
        return Err(Error::NotFound("No Files to create a session".into()));
    }
    let id = crate::random::uuid();
    let st = state.0.clone();
    let session = id.clone();
    let info = blocking(move || {
        let named: Vec<(String, std::path::PathBuf)> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                (
                    f.file_name()
                        .map_or_else(|| format!("file{i}.nii.gz"), str::to_owned),
                    f.path().to_path_buf(),
                )
            })
            .collect();
        let made = st.sessions.create(&session, named, q.expiry);
        drop(files);
        let made = made?;
        // One image file is checked as an upload to the datastore is; a refused one
        // leaves no session behind. (Several files are a series, read by no app yet.)
        let image = std::path::Path::new(&made.image);
        if image.is_file() {
            if let Err(e) = st.shared.datastore.check_image(image) {
                let _ = st.sessions.remove(&session);
                return Err(Error::from(e));
            }
        }
        Ok(made)
    })
    .await?;
    Ok(Json(
        json!({"session_id": id, "session_info": info_json(&state.access, &info)}),
    ))
}

/// `GET /session/{id}`: its info, or its image file with `image=true`.
#[utoipa::path(get, path = "/session/{id}", tag = "MONAI Label", params(("id" = String, Path, description = ""), ("update_ts" = Option<bool>, Query, description = ""), ("image" = Option<bool>, Query, description = "")), responses((status = 200, description = "A session's info or image")))]
pub(super) async fn get(
    state: State,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Response> {
    let (Path(id), Query(q)) = (id?, query?);
    let st = state.0.clone();
    let info = blocking(move || st.sessions.get(&id, q.update_ts)).await?;
    if q.image {
        return send_file(Ok(info.image.into()), "Session image not found", 0).await;
    }
    Ok(Json(info_json(&state.access, &info)).into_response())
}

/// `DELETE /session/{id}`.
#[utoipa::path(delete, path = "/session/{id}", tag = "MONAI Label", params(("id" = String, Path, description = "")), responses((status = 200, description = "Remove a session")))]
pub(super) async fn remove(
    state: State,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let Path(id) = id?;
    let st = state.0.clone();
    let info = blocking(move || st.sessions.remove(&id)).await?;
    Ok(Json(info_json(&state.access, &info)))
}
