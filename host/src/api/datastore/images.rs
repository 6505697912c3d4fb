//! `/datastore/` and `/datastore/image...`: the index, image upload, download, existence
//! check (with checksum), info and removal.

use super::{
    blocking, form_json, info_or_empty, read_upload, required, send_file, stem, DatastoreQuery,
};
use crate::api::access::{image_route, label_route};
use crate::api::State;
use crate::datastore::ids::validate_id;
use crate::{Error, Result};
use axum::{
    extract::{rejection::QueryRejection, Query, Request},
    response::Response,
    Json,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256, Sha512};
use std::io::Read;
use std::path::Path;

/// MONAI Label's detail for a missing image download.
const IMAGE_MISSING: &str = "Image NOT Found or is a directory";

/// `GET /datastore/?output=stats|all|train`: counts (default), the whole index without a
/// base path, or the `[{"image","label"}]` datalist of final labels.
#[utoipa::path(get, path = "/datastore/", tag = "datastore", params(("output" = Option<String>, Query, description = "stats | all | train")), responses((status = 200, description = "Datastore stats, index or training list")))]
pub(in crate::api) async fn list(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let output = q.output.unwrap_or_default();
    let access = state.access.clone();
    let answer = blocking(&state.shared.datastore, move |ds| match output.as_str() {
        "" | "stats" => Ok(ds.status()),
        "all" => {
            let mut all = ds.json();
            if let Some(top) = all.as_object_mut() {
                top.remove("base_path");
            }
            Ok(all)
        }
        "train" if access.share_paths => Ok(Value::from(ds.datalist())),
        "train" => Ok(Value::from(
            ds.get_labeled_images()
                .iter()
                .map(|id| json!({"image": image_route(id), "label": label_route(id, "final")}))
                .collect::<Vec<_>>(),
        )),
        other => Err(Error::BadRequest(format!(
            "output must be stats, all or train, not '{other}'"
        ))),
    })
    .await?;
    Ok(Json(answer))
}

/// `PUT /datastore/image` (and the deprecated `PUT /datastore/`): stores the multipart
/// `file` as image `image` (default: the file name without its suffixes), with the
/// multipart `params` JSON as its info. Answers `{"image": id}`.
#[utoipa::path(put, path = "/datastore/image", tag = "datastore", params(("image" = Option<String>, Query, description = "")), responses((status = 200, description = "Add an image (multipart file, params)")))]
pub(in crate::api) async fn upload(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
    req: Request,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let named = q.image.filter(|id| !id.is_empty());
    // The body is received before the id is judged: an answer mid-upload would break the
    // client's connection before it reads the 400.
    let (file, params) = read_upload(req, "file").await?;
    if let Some(id) = &named {
        validate_id(id)?;
    }
    let id = match named {
        Some(id) => id,
        None => file.file_name().map(stem).ok_or_else(|| {
            Error::BadRequest("name the image: give ?image=ID or a file name".into())
        })?,
    };
    let id = blocking(&state.shared.datastore, move |ds| {
        let id = ds.add_image(&id, file.path(), params)?;
        drop(file);
        Ok(id)
    })
    .await?;
    Ok(Json(json!({ "image": id })))
}

/// `DELETE /datastore/image?id=` (and the deprecated `DELETE /datastore/`): removes an
/// image and its labels. Answers `{}`; an unknown image is 404.
#[utoipa::path(delete, path = "/datastore/image", tag = "datastore", params(("id" = Option<String>, Query, description = "")), responses((status = 200, description = "Remove an image and its labels")))]
pub(in crate::api) async fn remove(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let id = required(q?.0.id, "id")?;
    blocking(&state.shared.datastore, move |ds| Ok(ds.remove_image(&id)?)).await?;
    Ok(Json(json!({})))
}

/// `GET /datastore/image?image=`: the image file.
#[utoipa::path(get, path = "/datastore/image", tag = "datastore", params(("image" = Option<String>, Query, description = "")), responses((status = 200, description = "An image file")))]
pub(in crate::api) async fn download(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
) -> Result<Response> {
    let image = required(q?.0.image, "image")?;
    let path = blocking(&state.shared.datastore, move |ds| {
        Ok(ds.get_image_uri(&image)?)
    })
    .await;
    send_file(path, IMAGE_MISSING, state.shared.datastore.open_flags()).await
}

/// `HEAD /datastore/image?image=&check_sum=`: 200 when the image exists and, if a checksum
/// (`SHA256:<hex>`, `SHA512:<hex>` or bare SHA-256 hex) is given, its content matches.
#[utoipa::path(head, path = "/datastore/image", tag = "datastore", params(("image" = Option<String>, Query, description = ""), ("check_sum" = Option<String>, Query, description = "")), responses((status = 200, description = "Whether an image exists (and matches a checksum)")))]
pub(in crate::api) async fn exists(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let image = required(q.image, "image")?;
    let expected = match q.check_sum.filter(|c| !c.is_empty()) {
        Some(c) => Some(Checksum::parse(&c)?),
        None => None,
    };
    blocking(&state.shared.datastore, move |ds| {
        let path = ds.get_image_uri(&image).map_err(|e| match e {
            crate::datastore::DatastoreError::NotFound(_) => Error::NotFound(IMAGE_MISSING.into()),
            other => other.into(),
        })?;
        if !path.is_file() {
            return Err(Error::NotFound(IMAGE_MISSING.into()));
        }
        match expected {
            Some(sum) if !sum.matches(&path)? => {
                Err(Error::NotFound("Image NOT Found (checksum failed)".into()))
            }
            _ => Ok(()),
        }
    })
    .await?;
    Ok(Json(json!({})))
}

/// `GET /datastore/image/info?image=`: the image's info plus `"path"`, or `{}` when unknown.
#[utoipa::path(get, path = "/datastore/image/info", tag = "datastore", params(("image" = Option<String>, Query, description = "")), responses((status = 200, description = "An image's info")))]
pub(in crate::api) async fn info(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
) -> Result<Json<Map<String, Value>>> {
    let image = required(q?.0.image, "image")?;
    let id = image.clone();
    let mut info = blocking(&state.shared.datastore, move |ds| {
        info_or_empty(ds.get_image_info(&image))
    })
    .await?;
    if let Some(Value::String(path)) = info.get_mut("path") {
        *path = state
            .access
            .path(Path::new(path.as_str()), image_route(&id));
    }
    Ok(Json(info))
}

/// `PUT /datastore/image/info?image=`: merges the form field `info` (a JSON object string)
/// into the image's info. Answers `null`; an unknown image is 404.
#[utoipa::path(put, path = "/datastore/image/info", tag = "datastore", params(("image" = Option<String>, Query, description = "")), responses((status = 200, description = "Merge form field info into an image's info")))]
pub(in crate::api) async fn update_info(
    state: State,
    q: Result<Query<DatastoreQuery>, QueryRejection>,
    req: Request,
) -> Result<Json<Value>> {
    let image = required(q?.0.image, "image")?;
    validate_id(&image)?;
    let info = form_json(req, "info").await?;
    blocking(&state.shared.datastore, move |ds| {
        Ok(ds.update_image_info_from_client(&image, info)?)
    })
    .await?;
    Ok(Json(Value::Null))
}

/// A checksum to verify, as MONAI Label's clients send it.
#[derive(Debug, PartialEq)]
pub(super) enum Checksum {
    /// Lowercase SHA-256 hex.
    Sha256(String),
    /// Lowercase SHA-512 hex.
    Sha512(String),
}

impl Checksum {
    /// Parses `ALGO:hex` (SHA256 or SHA512, any case) or bare SHA-256 hex.
    pub(super) fn parse(text: &str) -> Result<Self> {
        let (algo, digest) = text.split_once(':').unwrap_or(("SHA256", text));
        let digest = digest.trim().to_ascii_lowercase();
        match algo.to_ascii_uppercase().as_str() {
            "SHA256" => Ok(Checksum::Sha256(digest)),
            "SHA512" => Ok(Checksum::Sha512(digest)),
            other => Err(Error::BadRequest(format!(
                "unsupported checksum algorithm '{other}' (SHA256 or SHA512)"
            ))),
        }
    }

    /// Whether the file's digest equals this one (reads the file; call off the async threads).
    fn matches(&self, path: &Path) -> Result<bool> {
        match self {
            Checksum::Sha256(hex) => Ok(digest_file::<Sha256>(path)? == *hex),
            Checksum::Sha512(hex) => Ok(digest_file::<Sha512>(path)? == *hex),
        }
    }
}

/// Lowercase hex digest of a file, read in blocks.
fn digest_file<D: Digest>(path: &Path) -> Result<String> {
    let io = |e: std::io::Error| Error::Internal(format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = D::new();
    let mut block = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut block).map_err(io)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&block[..n]);
    }
}
