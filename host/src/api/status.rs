//! `GET /status`: what the server is doing now, as JSON (the dashboard's and an operator's
//! view; `/metrics` has the same levels for Prometheus): device queues, memory (the
//! process's, and each CUDA device's used and total), loaded apps and mapped libraries, the
//! job of each kind now running or next.

use super::State;
use crate::jobs::Kind;
use axum::Json;
use serde_json::{json, Value};

/// `GET /status`
#[utoipa::path(get, path = "/status", tag = "labelhost", responses((status = 200, description = "Device queues, memory, apps and active jobs now")))]
pub(super) async fn status(state: State) -> Json<Value> {
    let executor = &state.shared.executor;
    let devices: Vec<Value> = executor
        .queue_levels()
        .into_iter()
        .map(|(device, running, waiting, slots)| {
            json!({"device": device, "running": running, "waiting": waiting, "slots": slots})
        })
        .collect();
    let memory = crate::memory::resident().map_or(
        Value::Null,
        |(rss, peak)| json!({"resident": rss, "peak_resident": peak}),
    );
    let cuda: Vec<Value> = executor
        .cuda_memory()
        .into_iter()
        .map(|m| json!({"device": m.device, "used": m.used, "total": m.total}))
        .collect();
    let snapshot = state.registry.snapshot();
    let apps: Vec<Value> = snapshot
        .apps
        .values()
        .map(|g| json!({"name": g.name, "generation": g.generation, "live_tensors": g.scope.live_tensors()}))
        .collect();
    let jobs: serde_json::Map<String, Value> = [Kind::Train, Kind::Scoring, Kind::BatchInfer]
        .into_iter()
        .map(|kind| {
            let active = state.shared.jobs.active(kind).map(|r| {
                json!({"id": r.id, "status": r.status, "request": r.request, "start_ts": r.start_ts})
            });
            let key = match kind {
                Kind::Train => "train",
                Kind::Scoring => "scoring",
                Kind::BatchInfer => "batch_infer",
            };
            (key.to_owned(), active.unwrap_or(Value::Null))
        })
        .collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "devices": devices,
        "memory": memory,
        "cuda_memory": cuda,
        "apps": apps,
        "libraries_mapped": state.registry.libraries_mapped(),
        "jobs": jobs,
    }))
}
