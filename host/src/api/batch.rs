//! `POST /batch/infer/{model}`, run by the host image by image (MONAI Label's
//! `BatchInferTask`): each image's inference runs at batch priority and holds no device
//! slot, so its model passes wait while an annotator's pass waits (an interactive request
//! is delayed by at most the one pass already running); its label is saved as `original`
//! (or `label_tag`); the job record's progress moves after each image, and a stop request
//! ends the job before the next one. The result kept in the job record is bounded: each
//! image's `params` at most [`PARAMS_LIMIT`] bytes of JSON, all of them [`RESULT_LIMIT`]
//! (past either, the image keeps its label and tag and its params say what was left out),
//! and a failed image's detail at most [`DETAIL_LIMIT`] bytes.

use super::{
    infer::{run_task, take_label},
    owner, release, AppState,
};
use crate::{executor::Priority, Error, Result};
use labelhost_plugin_api::abi::TaskKind;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The most bytes of JSON one image's `params` keeps in the job's result.
const PARAMS_LIMIT: usize = 16 << 10;
/// The most bytes of JSON all images' `params` keep in the job's result (failures'
/// details count too).
const RESULT_LIMIT: usize = 1 << 20;
/// The most bytes of an image's error detail kept in the job's result.
const DETAIL_LIMIT: usize = 4 << 10;

/// `params` as the result keeps it, `used` bytes of [`RESULT_LIMIT`] taken before.
fn kept_params(params: Value, used: &mut usize) -> Value {
    let size = serde_json::to_vec(&params).map_or(usize::MAX, |v| v.len());
    if size > PARAMS_LIMIT {
        return json!({"omitted": format!("{size} bytes of params, over {PARAMS_LIMIT} per image")});
    }
    if used.saturating_add(size) > RESULT_LIMIT {
        return json!({"omitted": format!("the batch's params are over {RESULT_LIMIT} bytes")});
    }
    *used += size;
    params
}

/// The images asked for (`images` = `all` | `labeled` | `unlabeled` | a list of ids,
/// sorted, cut to `max_batch_size` when that is above 0) and the tag their labels are
/// saved under (`label_tag`, `original` by default; `None` when `save_label` is false).
pub(super) fn select(state: &AppState, request: &Value) -> Result<(Vec<String>, Option<String>)> {
    let fields = request.as_object().cloned().unwrap_or_default();
    let tag = super::text_param(&fields, "label_tag", "original")?;
    crate::datastore::ids::validate_tag(&tag)?;
    let tag = super::flag(&fields, "save_label", true)?.then_some(tag);
    let store = &state.shared.datastore;
    let mut images = match request.get("images").unwrap_or(&json!("all")) {
        Value::String(s) if s == "all" => store.list_images(),
        Value::String(s) if s == "labeled" => store.get_labeled_images(),
        Value::String(s) if s == "unlabeled" => store.get_unlabeled_images(),
        Value::Array(ids) => ids
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::BadRequest(format!("images: {v} is not an image id")))
            })
            .collect::<Result<_>>()?,
        other => {
            return Err(Error::BadRequest(format!(
                "images must be all, labeled, unlabeled or a list of ids, not {other}"
            )))
        }
    };
    images.sort();
    let max = request
        .get("max_batch_size")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if max > 0 {
        images.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }
    Ok((images, tag))
}

/// Runs the batch; answers `{image id: {"label", "tag", "params"} | {"detail", "code"}}`.
pub(super) async fn run(
    state: &Arc<AppState>,
    model: &str,
    request: &Value,
    job: Option<&str>,
) -> Result<Value> {
    let (images, tag) = select(state, request)?;
    let (total, mut failed) = (images.len(), 0);
    let mut out = Map::new();
    let mut used = 0;
    for (done, id) in images.into_iter().enumerate() {
        let progress =
            json!({"stats": {"done": done, "total": total, "failed": failed, "image": id}});
        if job.is_some_and(|job| !state.shared.jobs.progress(job, progress)) {
            break;
        }
        let one = match infer_one(state, model, request, &id, tag.clone()).await {
            Ok(mut v) => {
                if let Some(params) = v.get_mut("params") {
                    *params = kept_params(params.take(), &mut used);
                }
                v
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(model, image = %id, "batch inference: {e}");
                let mut detail = e.to_string();
                if detail.len() > DETAIL_LIMIT {
                    let mut cut = DETAIL_LIMIT;
                    while !detail.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    detail.truncate(cut);
                    detail.push_str(" …");
                }
                used = used.saturating_add(detail.len());
                json!({"detail": detail, "code": e.code()})
            }
        };
        out.insert(id, one);
    }
    if let Some(job) = job {
        let line = format!("{} of {total} images inferred, {failed} failed", out.len());
        let stats = json!({"done": out.len(), "total": total, "failed": failed});
        state
            .shared
            .jobs
            .progress(job, json!({"stats": stats, "log": line}));
    }
    Ok(Value::Object(out))
}

/// One image: the model's generation as it is now (a hot swap mid-batch moves the rest of
/// the batch to the new one), held until the label is taken, its inference at batch
/// priority, its label saved as `tag`.
async fn infer_one(
    state: &Arc<AppState>,
    model: &str,
    request: &Value,
    id: &str,
    tag: Option<String>,
) -> Result<Value> {
    let generation = owner(state, TaskKind::INFER, model)?;
    let store = state.shared.datastore.clone();
    let lookup = id.to_owned();
    let path = super::blocking(move || store.get_image_uri(&lookup)).await?;
    let mut params = request.as_object().cloned().unwrap_or_default();
    for key in ["images", "max_batch_size", "label_tag", "save_label"] {
        params.remove(key);
    }
    params.insert("image".into(), json!(path));
    // The generation stays held until the label is taken: its work dir holds the file.
    let answer = async {
        let (result, label) = run_task(
            generation.clone(),
            model,
            params,
            Priority::Batch,
            crate::executor::cancel::Cancel::with_budget(state.request_memory),
        )
        .await?;
        let saved = match label {
            Some(file) => {
                let save_as = tag.clone().map(|t| (id.to_owned(), t));
                take_label(&state.shared.datastore, &file, save_as, model, &result).await?;
                tag.is_some()
            }
            None => false,
        };
        Ok(json!({
            "label": if saved { json!(id) } else { Value::Null },
            "tag": tag,
            "params": result,
        }))
    }
    .await;
    release(generation);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_params_a_batch_keeps_are_bounded_per_image_and_in_all() {
        let mut used = 0;
        let small = json!({"latencies": {"total": 1.5}});
        assert_eq!(kept_params(small.clone(), &mut used), small);
        let big = json!({"blob": "x".repeat(PARAMS_LIMIT)});
        let kept = kept_params(big, &mut used);
        assert!(kept["omitted"]
            .as_str()
            .expect("omitted")
            .contains("per image"));
        // Many images of 15 KiB each: kept until the whole passes the limit, then omitted.
        let medium = json!({"blob": "y".repeat(15 << 10)});
        let kept: Vec<Value> = (0..100)
            .map(|_| kept_params(medium.clone(), &mut used))
            .collect();
        let whole = kept.iter().filter(|v| v.get("blob").is_some()).count();
        assert!((60..70).contains(&whole), "{whole} kept whole");
        assert!(used <= RESULT_LIMIT);
        assert!(kept[99]["omitted"]
            .as_str()
            .expect("omitted")
            .contains("batch"));
    }
}
