//! `POST /activelearning/{strategy}`: the next image to annotate, as MONAI Label answers it.

use super::{call, generation_headers, json_object, owner, State};
use crate::{Error, Result};
use abi_stable::std_types::RStr;
use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, PathRejection},
        Path,
    },
    http::HeaderMap,
    Json,
};
use labelhost_plugin_api::abi::TaskKind;
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs the strategy, records that the image was served, answers with its info and path.
#[utoipa::path(post, path = "/activelearning/{strategy}", tag = "MONAI Label", params(("strategy" = String, Path, description = "")), responses((status = 200, description = "The next image to annotate")))]
pub(super) async fn next_sample(
    state: State,
    strategy: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(HeaderMap, Json<Value>)> {
    let (Path(strategy), body) = (strategy?, body?);
    let request = json_object(&body)?;
    let generation = owner(&state, TaskKind::STRATEGY, &strategy)?;
    let headers = generation_headers(&generation);
    let client_id = request.get("client_id").cloned().unwrap_or(Value::Null);
    let text = Value::Object(request).to_string();
    let name = strategy.clone();
    let answer = call(generation, move |g| {
        g.app
            .next_sample(RStr::from(name.as_str()), RStr::from(text.as_str()))
    })
    .await?;
    let mut sample: Map<String, Value> = match serde_json::from_str(answer.as_str()) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(Error::Internal(format!(
                "strategy '{strategy}' returned a non-object"
            )))
        }
    };
    let Some(id) = sample.get("id").and_then(Value::as_str).map(str::to_owned) else {
        return Ok((headers, Json(json!({}))));
    };
    let store = state.shared.datastore.clone();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // MONAI Label records who was served what in the image's info (strategy.<name>).
    let (served, path) = super::blocking(move || {
        let served = store.set_image_info_entry(
            &id,
            "strategy",
            &strategy,
            json!({"ts": ts, "client_id": client_id}),
        )?;
        Ok::<_, Error>((served, store.get_image_uri(&id)?))
    })
    .await?;
    sample.insert("path".into(), json!(path));
    for (k, v) in served {
        sample.entry(k).or_insert(v);
    }
    Ok((headers, Json(Value::Object(sample))))
}
