//! App management: list, load, hot-swap and retire apps (labelhost's own routes).

use super::{json_object, State};
use crate::{registry::AppGeneration, Error, Result};
use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, PathRejection},
        Path,
    },
    http::StatusCode,
    Json,
};
use serde_json::{json, Value};
use std::{sync::Arc, time::Duration};

/// How long `DELETE /apps/{name}` waits for in-flight requests to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

fn describe(g: &AppGeneration) -> Value {
    let tasks: Vec<Value> = g
        .tasks
        .iter()
        .map(|t| {
            let kind = match t.kind.0 {
                1 => "infer",
                2 => "train",
                3 => "strategy",
                4 => "scoring",
                _ => "other",
            };
            json!({"kind": kind, "name": t.name})
        })
        .collect();
    json!({
        "name": g.name, "version": g.version, "plugin_api": g.plugin_api, "bundle": g.bundle,
        // The library's name in its bundle, not where the server staged it.
        "file": g.file.file_name().map(|n| n.to_string_lossy()), "sha256": g.sha256, "loaded_at": g.loaded_at,
        "generation": g.generation, "tasks": tasks,
        "live_tensors": g.scope.live_tensors(), "live_trainers": g.scope.live_trainers(),
        "abandoned_calls": g.abandoned.load(std::sync::atomic::Ordering::SeqCst),
    })
}

/// `GET /apps`
#[utoipa::path(get, path = "/apps", tag = "apps", responses((status = 200, description = "Loaded apps and their generations")))]
pub(super) async fn list(state: State) -> Json<Value> {
    let snap = state.registry.snapshot();
    let apps: Vec<Value> = snap.apps.values().map(|g| describe(g)).collect();
    let (rss, peak) = crate::memory::resident().unwrap_or((0, 0));
    Json(json!({
        "apps": apps, "libraries_mapped": state.registry.libraries_mapped(),
        "memory": {"rss_bytes": rss, "peak_rss_bytes": peak},
    }))
}

async fn blocking<F>(state: State, f: F) -> Result<Arc<AppGeneration>>
where
    F: FnOnce(&crate::registry::Registry) -> Result<Arc<AppGeneration>> + Send + 'static,
{
    let st = state.0.clone();
    super::blocking(move || f(&st.registry)).await
}

/// `POST /apps` with `{"bundle": NAME}`: loads a bundle from the plugins dir.
#[utoipa::path(post, path = "/apps", tag = "apps", responses((status = 200, description = "Load the bundle named by the body (bundle: NAME) from the plugins dir")))]
pub(super) async fn load(
    state: State,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>)> {
    let body = json_object(&body?)?;
    let bundle = body
        .get("bundle")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadRequest("expected {\"bundle\": NAME}".into()))?
        .to_owned();
    let g = blocking(state, move |r| r.load(&bundle)).await?;
    tracing::info!(app = %g.name, version = %g.version, "app loaded");
    Ok((StatusCode::CREATED, Json(describe(&g))))
}

/// `POST /apps/{name}/reload`: hot-swaps to the bundle now in the plugins dir.
#[utoipa::path(post, path = "/apps/{name}/reload", tag = "apps", params(("name" = String, Path, description = "app name")), responses((status = 200, description = "Hot-swap an app to the bundle now in its folder")))]
pub(super) async fn reload(
    state: State,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let Path(name) = name?;
    let g = blocking(state, move |r| r.reload(&name)).await?;
    tracing::info!(app = %g.name, generation = g.generation, "app hot-swapped");
    Ok(Json(describe(&g)))
}

/// `DELETE /apps/{name}`: stops routing to the app, waits for its requests to drain.
#[utoipa::path(delete, path = "/apps/{name}", tag = "apps", params(("name" = String, Path, description = "app name")), responses((status = 200, description = "Stop routing to an app and drain it")))]
pub(super) async fn retire(
    state: State,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let Path(name) = name?;
    let st = state.0.clone();
    let which = name.clone();
    let weak = super::blocking(move || st.registry.retire(&which)).await?;
    let started = tokio::time::Instant::now();
    while weak.strong_count() > 0 && started.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = weak.strong_count() == 0;
    tracing::info!(app = %name, drained, "app retired");
    Ok(Json(
        json!({"name": name, "retired": true, "drained": drained}),
    ))
}
