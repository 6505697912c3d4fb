//! `POST /activelearning/{strategy}`: the next image to annotate, as MONAI Label answers it.

use super::{call_within, generation_headers, json_object, owner, State};
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

/// How often the strategy is asked again when another client claimed its answer first.
const CLAIM_ATTEMPTS: usize = 3;

/// Runs the strategy over the images no other client holds a fresh claim on, claims its
/// answer for the client (image info `strategy.<name>`, checked and written under the
/// datastore's lock; with several hosts, in the cluster store instead), answers with the
/// image's info and path; `{}` when nothing is left.
/// The strategy has the time limit of an inference (`--infer-timeout`, `--task-timeout`).
#[utoipa::path(post, path = "/activelearning/{strategy}", tag = "MONAI Label", params(("strategy" = String, Path, description = "")), responses((status = 200, description = "The next image to annotate")))]
pub(super) async fn next_sample(
    state: State,
    strategy: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(HeaderMap, Json<Value>)> {
    let (Path(strategy), body) = (strategy?, body?);
    let mut request = json_object(&body)?;
    // Underscored keys are the host's to set (`_claimed`), never the client's.
    request.retain(|k, _| !k.starts_with('_'));
    let generation = owner(&state, TaskKind::STRATEGY, &strategy)?;
    let headers = generation_headers(&generation);
    let client = request
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let store = state.shared.datastore.clone();
    // One limit for the whole request, however many times the strategy is asked.
    let deadline = tokio::time::Instant::now() + state.timeouts.for_task(&strategy);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for _ in 0..CLAIM_ATTEMPTS {
        let claimed = match &state.shared.cluster {
            Some(cluster) => {
                let fresh = store.claim_secs();
                cluster
                    .claimed_by_others(client.as_deref(), now, fresh)
                    .await?
            }
            None => {
                let (s, c) = (store.clone(), client.clone());
                super::blocking(move || Ok::<_, Error>(s.claimed_by_others(c.as_deref(), now)))
                    .await?
            }
        };
        request.insert("_claimed".into(), json!(claimed));
        let text = Value::Object(request.clone()).to_string();
        let name = strategy.clone();
        let answer = call_within(&state, generation.clone(), &strategy, deadline, move |g| {
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
        // With several hosts the store decides (one client wins the image) and keeps the
        // claim; alone, the claim is checked and recorded in the image's info.
        let in_cluster = match &state.shared.cluster {
            Some(cluster) => {
                let fresh = store.claim_secs();
                let won = cluster
                    .claim(&id, &strategy, client.as_deref(), now, fresh)
                    .await?;
                if !won {
                    continue;
                }
                true
            }
            None => false,
        };
        let (s, c, name) = (store.clone(), client.clone(), strategy.clone());
        let claim = super::blocking(move || {
            let info = if in_cluster {
                s.get_image_info(&id)?
            } else {
                let Some(info) = s.claim(&id, &name, c.as_deref(), now)? else {
                    return Ok::<_, Error>(None);
                };
                info
            };
            Ok(Some((info, s.get_image_uri(&id)?)))
        })
        .await?;
        // Another client claimed it between the listing and now: ask again.
        let Some((info, path)) = claim else { continue };
        let path = state
            .access
            .path(&path, super::access::image_route(&id_of(&sample)));
        sample.insert("path".into(), json!(path));
        for (k, v) in info {
            sample.entry(k).or_insert(v);
        }
        return Ok((headers, Json(Value::Object(sample))));
    }
    tracing::warn!(%strategy, "every answer of the strategy was claimed by another client");
    Ok((headers, Json(json!({}))))
}

/// The sample's image id (checked present above).
fn id_of(sample: &Map<String, Value>) -> String {
    sample
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
