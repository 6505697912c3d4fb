//! `/datastore/label...` and the deprecated `/datastore/updatelabelinfo`: label save,
//! download, existence check, info and removal. A label's id is its image's id.

use super::super::call;
use super::{blocking, form_json, info_or_empty, read_upload, required, send_file, DatastoreQuery};
use crate::api::State;
use crate::datastore::{
    ids::{validate_id, validate_tag},
    DatastoreError,
};
use crate::{Error, Result};
use abi_stable::std_types::RStr;
use axum::{
    extract::{rejection::QueryRejection, Query, Request},
    response::Response,
    Json,
};
use serde_json::{json, Map, Value};

/// MONAI Label's detail for a missing label download.
const LABEL_MISSING: &str = "Label NOT Found or is a directory";

/// The tag a label is saved under when the request names none.
const FINAL_TAG: &str = "final";

/// `PUT /datastore/label?image=&tag=`: stores the multipart `label` file as `image`'s label
/// with `tag` (default `final`; the extension comes from the file name), with the
/// multipart `params` JSON as its info. Answers `{"image": id, "label": label_id}`.
#[utoipa::path(put, path = "/datastore/label", tag = "datastore", params(("image" = Option<String>, Query, description = ""), ("tag" = Option<String>, Query, description = "")), responses((status = 200, description = "Save a label (multipart label, params)")))]
pub(in crate::api) async fn save(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
    req: Request,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let image = required(q.image, "image")?;
    let tag = q
        .tag
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| FINAL_TAG.to_owned());
    validate_tag(&tag)?;
    // Refuse an unknown image before receiving the file.
    let known = image.clone();
    blocking(&state.shared.datastore, move |ds| {
        Ok(ds.get_image_uri(&known).map(drop)?)
    })
    .await?;
    // Under auth the label records who saved it (the dashboard counts labels by user); a
    // client cannot claim another name. Without auth, `user` is what the client sent.
    let user = req
        .extensions()
        .get::<crate::auth::Identity>()
        .map(|who| who.username.clone());
    let (file, mut params) = read_upload(req, "label").await?;
    if let Some(user) = user {
        params.insert("user".into(), Value::from(user));
    }
    let is_final = tag == FINAL_TAG;
    let label = blocking(&state.shared.datastore, {
        let image = image.clone();
        move |ds| {
            let label = ds.save_label(&image, file.path(), &tag, params)?;
            drop(file);
            Ok(label)
        }
    })
    .await?;
    // In a cluster the image's claim is done with; other hosts over the same DICOMweb
    // server read its SEG series again at once.
    if let Some(cluster) = state.shared.cluster.as_ref().filter(|_| is_final) {
        if let Err(e) = cluster.release(&image).await {
            tracing::warn!("{e}");
        }
        if state.shared.datastore.is_remote() {
            if let Err(e) = cluster.label_saved(&image, FINAL_TAG).await {
                tracing::warn!("{e}");
            }
        }
    }
    let mut answer = json!({ "image": image, "label": label });
    // Every loaded app hears of the new label (MONAI Label's on_save_label); what they
    // answer is merged into the reply.
    for generation in state.registry.snapshot().apps.values().cloned() {
        let (i, l) = (image.clone(), label.clone());
        let said = call(generation, move |g| {
            g.app
                .on_save_label(RStr::from(i.as_str()), RStr::from(l.as_str()))
        })
        .await;
        match said.map(|text| serde_json::from_str::<Value>(text.as_str())) {
            Ok(Ok(Value::Object(extra))) => {
                for (k, v) in extra {
                    answer.as_object_mut().map(|a| a.entry(k).or_insert(v));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("on_save_label: {e}"),
        }
    }
    Ok(Json(answer))
}

/// `DELETE /datastore/label?id=&tag=`: removes one label. Answers `{}`, also when there
/// was no such label (MONAI Label does the same).
#[utoipa::path(delete, path = "/datastore/label", tag = "datastore", params(("id" = Option<String>, Query, description = ""), ("tag" = Option<String>, Query, description = "")), responses((status = 200, description = "Remove a label")))]
pub(in crate::api) async fn remove(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let id = required(q.id, "id")?;
    let tag = required(q.tag, "tag")?;
    let (image, is_final) = (id.clone(), tag == FINAL_TAG);
    blocking(&state.shared.datastore, move |ds| {
        match ds.remove_label(&id, &tag) {
            Err(DatastoreError::NotFound(_)) => Ok(()),
            other => Ok(other?),
        }
    })
    .await?;
    // Unlabelled again: in a cluster its finished claim goes, so it may be served again.
    if let Some(cluster) = state.shared.cluster.as_ref().filter(|_| is_final) {
        cluster.reopen(&image).await?;
    }
    Ok(Json(json!({})))
}

/// `HEAD /datastore/label?image=&tag=` (MONAI Label names the label `image` here): 200 when
/// the label exists.
#[utoipa::path(head, path = "/datastore/label", tag = "datastore", params(("image" = Option<String>, Query, description = ""), ("tag" = Option<String>, Query, description = "")), responses((status = 200, description = "Whether an image has a label of a tag")))]
pub(in crate::api) async fn exists(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let image = required(q.image, "image")?;
    let tag = required(q.tag, "tag")?;
    blocking(&state.shared.datastore, move |ds| {
        match ds.get_label_uri(&image, &tag) {
            Ok(path) if path.is_file() => Ok(()),
            Ok(_) | Err(DatastoreError::NotFound(_)) => Err(Error::NotFound(LABEL_MISSING.into())),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    Ok(Json(json!({})))
}

/// `GET /datastore/label?label=&tag=`: the label file.
#[utoipa::path(get, path = "/datastore/label", tag = "datastore", params(("label" = Option<String>, Query, description = ""), ("tag" = Option<String>, Query, description = "")), responses((status = 200, description = "A label file")))]
pub(in crate::api) async fn download(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
) -> Result<Response> {
    let Query(q) = q?;
    let label = required(q.label, "label")?;
    let tag = required(q.tag, "tag")?;
    let path = blocking(&state.shared.datastore, move |ds| {
        Ok(ds.get_label_uri(&label, &tag)?)
    })
    .await;
    send_file(path, LABEL_MISSING, state.shared.datastore.open_flags()).await
}

/// `GET /datastore/label/info?label=&tag=`: the label's info, or `{}` when unknown.
#[utoipa::path(get, path = "/datastore/label/info", tag = "datastore", params(("label" = Option<String>, Query, description = ""), ("tag" = Option<String>, Query, description = "")), responses((status = 200, description = "A label's info")))]
pub(in crate::api) async fn info(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
) -> Result<Json<Map<String, Value>>> {
    let Query(q) = q?;
    let label = required(q.label, "label")?;
    let tag = required(q.tag, "tag")?;
    let info = blocking(&state.shared.datastore, move |ds| {
        info_or_empty(ds.get_label_info(&label, &tag))
    })
    .await?;
    Ok(Json(info))
}

/// `PUT /datastore/label/info?label=&tag=`: merges the form field `info` (a JSON object
/// string) into the label's info. Answers `null`; an unknown label is 404.
#[utoipa::path(put, path = "/datastore/label/info", tag = "datastore", params(("label" = Option<String>, Query, description = ""), ("tag" = Option<String>, Query, description = "")), responses((status = 200, description = "Merge form field info into a label's info")))]
pub(in crate::api) async fn update_info(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
    req: Request,
) -> Result<Json<Value>> {
    merge_info(state, q, req, "info").await
}

/// `PUT /datastore/updatelabelinfo?label=&tag=` (deprecated, the Slicer Reviewer's): as
/// [`update_info`] with the form field named `params`.
#[utoipa::path(put, path = "/datastore/updatelabelinfo", tag = "datastore", params(("label" = Option<String>, Query, description = ""), ("tag" = Option<String>, Query, description = "")), responses((status = 200, description = "Deprecated: merge form field params into label info")))]
pub(in crate::api) async fn update_info_deprecated(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
    req: Request,
) -> Result<Json<Value>> {
    merge_info(state, q, req, "params").await
}

async fn merge_info(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
    req: Request,
    field: &str,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let label = required(q.label, "label")?;
    let tag = required(q.tag, "tag")?;
    validate_id(&label)?;
    validate_tag(&tag)?;
    let info = form_json(req, field).await?;
    blocking(&state.shared.datastore, move |ds| {
        Ok(ds.update_label_info_from_client(&label, &tag, info)?)
    })
    .await?;
    Ok(Json(Value::Null))
}
