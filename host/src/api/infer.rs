//! `POST /infer/{model}?image=ID|session_id=ID&output=image|json|all`.
//!
//! Params come as a multipart `params` field (a JSON string, as MONAI Label's clients send
//! them) or as a JSON body; a multipart `file` part is inferred instead of a stored image
//! and a `label` part reaches the task as `label`. The label of a datastore image is saved
//! (tag `original`) unless `save_label` is false.

use super::{
    blocking, call, generation_headers, json_object, owner,
    upload::{content_type, json_field, multipart_error, receive, small_field, Upload},
    Held, State,
};
use crate::executor::cancel::{with_cancel, Cancel, StopOnDrop, Why};
use crate::executor::Priority;
use crate::{Error, Result};
use abi_stable::std_types::RStr;
use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, Request,
    },
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};
use labelhost_plugin_api::abi::TaskKind;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Query parameters.
#[derive(Debug, Deserialize)]
pub(super) struct InferQuery {
    image: Option<String>,
    session_id: Option<String>,
    output: Option<String>,
}

/// What an infer request carried besides its query.
struct InferBody {
    params: Map<String, Value>,
    /// An uploaded image (`file` part), inferred instead of a datastore image.
    file: Option<Upload>,
    /// An uploaded label (`label` part, e.g. scribbles), passed to the task as `label`.
    label: Option<Upload>,
}

async fn read_body(req: Request) -> Result<InferBody> {
    let mut body = InferBody {
        params: Map::new(),
        file: None,
        label: None,
    };
    if !content_type(&req).starts_with("multipart/form-data") {
        let bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
            .await
            .map_err(|e| Error::BadRequest(format!("cannot read the body: {e}")))?;
        body.params = json_object(&bytes)?;
        return Ok(body);
    }
    let mut form = super::multipart::open(req).await?;
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("params") => body.params = json_field("params", &small_field(&mut field).await?)?,
            Some("file") => body.file = Some(receive(&mut field).await?),
            Some("label") => body.label = Some(receive(&mut field).await?),
            _ => {}
        }
    }
    Ok(body)
}

/// Runs infer task `model` on a datastore image.
#[utoipa::path(post, path = "/infer/{model}", tag = "MONAI Label", params(("model" = String, Path, description = "infer task"), ("image" = Option<String>, Query, description = "datastore image id"), ("session_id" = Option<String>, Query, description = "session id"), ("output" = Option<String>, Query, description = "image | json | all")), responses((status = 200, description = "Run an infer task (multipart params, optional file and label parts)")))]
pub(super) async fn infer(
    state: State,
    model: Result<Path<String>, PathRejection>,
    q: Result<Query<InferQuery>, QueryRejection>,
    req: Request,
) -> Result<Response> {
    let (Path(model), Query(q)) = (model?, q?);
    let output = q.output.as_deref().unwrap_or("all").to_owned();
    if !matches!(output.as_str(), "image" | "json" | "all" | "dicom_seg") {
        return Err(Error::BadRequest(format!(
            "output must be image, json, all or dicom_seg, not '{output}'"
        )));
    }
    if output == "dicom_seg" && (q.image.is_none() || q.session_id.is_some()) {
        return Err(Error::BadRequest(
            "output=dicom_seg answers for a datastore image made from a DICOM series (?image=ID)"
                .into(),
        ));
    }
    let body = read_body(req).await?;
    if q.session_id.is_none() && body.file.is_none() && q.image.is_none() {
        return Err(Error::BadRequest(
            "Neither Image nor File not Session ID input is provided".into(),
        ));
    }
    let mut params = body.params.clone();
    let save = super::flag(&params, "save_label", true)?;
    let tag = super::text_param(&params, "label_tag", "original")?;
    crate::datastore::ids::validate_tag(&tag)?;
    let generation = owner(&state, TaskKind::INFER, &model)?;
    super::refuse_if_stuck(&state, &generation)?;
    let headers = generation_headers(&generation);
    let st = state.0.clone();
    let limit = state.timeouts.for_task(&model);
    // If the client goes away, its work is marked to stop (the executor fails the plugin's
    // next call); past the task's time limit the same, and the answer is 504.
    let cancel = Cancel::with_budget(state.request_memory);
    let stop_if_dropped = StopOnDrop::new(cancel.clone());
    // The rest runs as its own task: if the client goes away mid-inference, the queue slot
    // is still held until the plugin returns and the result and upload files are cleaned up.
    let wants_seg = output == "dicom_seg";
    let job = async move {
        let heap = crate::memory::HeapUse::begin();
        let held = Held::new(generation);
        let store = st.shared.datastore.clone();
        // MONAI Label's order: a session's image, else an uploaded file, else a datastore id.
        let (image_path, image_id) = if let Some(sid) = q.session_id.clone() {
            let sessions = st.clone();
            let info = blocking(move || sessions.sessions.get(&sid, true)).await?;
            params.insert(
                "session".into(),
                serde_json::to_value(&info).unwrap_or(Value::Null),
            );
            (std::path::PathBuf::from(info.image), None)
        } else if let Some(file) = &body.file {
            (file.path().to_path_buf(), None)
        } else if let Some(id) = q.image.clone() {
            let (ds, lookup) = (store.clone(), id.clone());
            let path = blocking(move || ds.get_image_uri(&lookup)).await?;
            (path, Some(id))
        } else {
            return Err(Error::BadRequest(
                "Neither Image nor File not Session ID input is provided".into(),
            ));
        };
        if let Some(label) = &body.label {
            params.insert("label".into(), json!(label.path()));
        }
        let save = save && image_id.is_some();
        let device = params
            .get("device")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let queue = st
            .shared
            .executor
            .queue(&device)
            .map_err(Error::BadRequest)?;
        let asked = std::time::Instant::now();
        let permit = queue.acquire(Priority::Interactive).await.map_err(|full| {
            Error::Overloaded(format!(
                "the device queue is full ({} waiting); retry later",
                full.waiting
            ))
        })?;
        // By the queue's own device name, as `/metrics` names the queues.
        if let Ok(d) = st.shared.executor.device(&device) {
            let waited = asked.elapsed().as_secs_f64();
            st.metrics
                .queue_wait(&crate::executor::device_name(d), waited);
        }
        if cancel.why().is_some() {
            return Err(Error::BadRequest("the client left while queued".into()));
        }
        params.insert("image".into(), json!(image_path));
        // The generation stays held until the answer is built: its work dir holds the result.
        let generation = held
            .get()
            .cloned()
            .ok_or_else(|| Error::Internal("no generation".into()))?;
        let running = run_task(
            generation,
            &model,
            params,
            Priority::Interactive,
            cancel.clone(),
        );
        let Ok(out) = tokio::time::timeout(limit, running).await else {
            // The slot goes back now; the plugin's thread stops at its next executor call.
            cancel.stop(Why::TimedOut);
            drop(permit);
            return Err(Error::Timeout(format!(
                "model '{model}' did not answer within {} s (its time limit)",
                limit.as_secs_f64()
            )));
        };
        drop(permit);
        drop(heap);
        let (result, label_file) = out?;
        st.metrics.infer_stages(&model, &result);
        // MONAI Label's output=dicom_seg: the result as a SEG of the image's series.
        let seg = match (&label_file, image_id.as_deref()) {
            (Some(path), Some(id)) if wants_seg => {
                let (ds, id, path) = (store.clone(), id.to_owned(), path.clone());
                let (names, model) = (result["label_names"].clone(), model.clone());
                Some(blocking(move || dicom_seg(&ds, &id, &path, &names, &model)).await?)
            }
            _ => None,
        };
        let save_as = image_id.clone().filter(|_| save).map(|id| (id, tag));
        let label_bytes = match &label_file {
            Some(path) => Some(take_label(&store, path, save_as, &model, &result).await?),
            None => None,
        };
        let mut file_name = label_file
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let label_bytes = match seg {
            Some(bytes) => {
                file_name = format!("{}.dcm", image_id.as_deref().unwrap_or("seg"));
                Some(bytes)
            }
            None => label_bytes,
        };
        drop(body);
        drop(held);
        Ok::<_, Error>((result, label_bytes, file_name))
    };
    let work = tokio::spawn(tracing::Instrument::instrument(
        job,
        tracing::Span::current(),
    ));
    let done = work.await;
    stop_if_dropped.disarm();
    let (result, label_bytes, file_name) =
        done.map_err(|e| Error::Internal(format!("inference did not complete: {e}")))??;
    Ok(respond(&output, headers, result, label_bytes, &file_name))
}

/// Runs infer task `model` of `generation` on `params` (which name the image), its model
/// passes at `priority`; answers the task's result params and the label file it wrote.
pub(super) async fn run_task(
    generation: std::sync::Arc<crate::registry::AppGeneration>,
    model: &str,
    mut params: Map<String, Value>,
    priority: Priority,
    cancel: std::sync::Arc<Cancel>,
) -> Result<(Value, Option<std::path::PathBuf>)> {
    params.insert("model".into(), json!(model));
    let text = Value::Object(params).to_string();
    let name = model.to_owned();
    let out = call(generation.clone(), move |g| {
        with_cancel(cancel, || {
            crate::executor::with_priority(priority, || {
                g.app
                    .infer(RStr::from(name.as_str()), RStr::from(text.as_str()))
            })
        })
    })
    .await?;
    let result: Value = serde_json::from_str(out.params_json.as_str())
        .map_err(|e| Error::Internal(format!("model '{model}' returned bad JSON: {e}")))?;
    // The host reads and then deletes this file: only one of the generation's own.
    let label = match out.label_path.into_option() {
        Some(p) => Some(generation.own_file(std::path::Path::new(p.as_str()))?),
        None => None,
    };
    Ok((result, label))
}

/// Saves the result label as `(image id, tag)` (when given), reads it for the answer, and
/// removes the result file whatever happens. File work runs off the async threads.
pub(super) async fn take_label(
    store: &std::sync::Arc<crate::datastore::LocalDatastore>,
    path: &std::path::Path,
    save_as: Option<(String, String)>,
    model: &str,
    result: &Value,
) -> Result<Vec<u8>> {
    let saved = match save_as {
        Some((image_id, tag)) => {
            let info = json!({"model": model, "params": result});
            let info = info.as_object().cloned().unwrap_or_default();
            let (ds, file) = (store.clone(), path.to_path_buf());
            blocking(move || ds.save_label(&image_id, &file, &tag, info).map(drop)).await
        }
        None => Ok(()),
    };
    let bytes = tokio::fs::read(path).await;
    let _ = tokio::fs::remove_file(path).await;
    saved?;
    bytes.map_err(|e| Error::Internal(format!("result file {}: {e}", path.display())))
}

fn respond(
    output: &str,
    headers: HeaderMap,
    result: Value,
    label: Option<Vec<u8>>,
    name: &str,
) -> Response {
    match (output, label) {
        ("dicom_seg", Some(bytes)) => {
            let mut r = (headers, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/dicom"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        ("image", Some(bytes)) => {
            let disposition = format!("attachment; filename=\"{name}\"");
            let mut r = (headers, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        ("all", Some(bytes)) => multipart(headers, &result, &bytes, name),
        _ => (headers, axum::Json(result)).into_response(),
    }
}

/// MONAI Label's multipart answer: a `params` JSON part and an `image` file part.
fn multipart(headers: HeaderMap, result: &Value, bytes: &[u8], name: &str) -> Response {
    let boundary = format!("labelhost-{:016x}", crate::random::bits());
    let mut body = Vec::with_capacity(bytes.len() + 512);
    body.extend_from_slice(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"params\"\r\nContent-Type: application/json\r\n\r\n{result}\r\n"
    ).as_bytes());
    body.extend_from_slice(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).as_bytes());
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut r = (headers, body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}")) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// The result label of an inference on datastore image `id` as a DICOM SEG of its series
/// (the series header its info keeps: an image imported from DICOM, or a DICOMweb one).
fn dicom_seg(
    store: &crate::datastore::LocalDatastore,
    id: &str,
    label: &std::path::Path,
    names: &Value,
    model: &str,
) -> Result<Vec<u8>> {
    let info = store.get_image_info(id)?;
    let header: crate::dicom::SeriesHeader = info
        .get("dicom")
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "output=dicom_seg: image {id} was not made from a DICOM series"
            ))
        })?;
    crate::dicom::seg_of_label_file(label, &header, names, model)
}
