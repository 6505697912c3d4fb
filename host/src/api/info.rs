//! `GET /info/`: MONAI Label's app info, built from every loaded app.

use super::State;
use axum::Json;
use labelhost_plugin_api::abi::TaskKind;
use serde_json::{json, Map, Value};

/// Adds the labels of a task's `labels` value (list or `{name: idx}`) to `out`.
fn collect_labels(labels: &Value, out: &mut Vec<String>) {
    let names: Vec<String> = match labels {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Value::Object(map) => {
            let mut pairs: Vec<(&String, i64)> = map
                .iter()
                .map(|(k, v)| (k, v.as_i64().unwrap_or(0)))
                .collect();
            pairs.sort_by_key(|(_, i)| *i);
            pairs.into_iter().map(|(k, _)| k.clone()).collect()
        }
        _ => Vec::new(),
    };
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
}

/// `GET /info/`
#[utoipa::path(get, path = "/info/", tag = "MONAI Label", responses((status = 200, description = "All loaded apps' models, trainers, strategies, scoring methods and datastore stats")))]
pub(super) async fn info(state: State) -> Json<Value> {
    let snap = state.registry.snapshot();
    let (mut models, mut trainers, mut strategies, mut scoring) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    let mut labels = Vec::new();
    for g in snap.apps.values() {
        for t in &g.tasks {
            let section = match t.kind {
                TaskKind::INFER => {
                    collect_labels(&t.info["labels"], &mut labels);
                    &mut models
                }
                TaskKind::TRAIN => &mut trainers,
                TaskKind::STRATEGY => &mut strategies,
                TaskKind::SCORING => &mut scoring,
                _ => continue,
            };
            let mut entry = t.info.clone();
            if let Some(map) = entry.as_object_mut() {
                map.retain(|k, _| !k.starts_with('_'));
            }
            section.insert(t.name.clone(), entry);
        }
    }
    // MONAI Label shows each trainer's last stats: the latest a train job reported.
    let mut reported = state.shared.jobs.train_stats();
    let train_stats: Map<String, Value> = trainers
        .keys()
        .map(|k| (k.clone(), reported.remove(k).unwrap_or_else(|| json!({}))))
        .collect();
    let store = state.shared.datastore.clone();
    let datastore = super::blocking(move || Ok::<_, crate::Error>(store.status()))
        .await
        .unwrap_or(Value::Null);
    Json(json!({
        "name": "labelhost",
        "description": "Active-learning annotation server hosting compiled app plugins",
        "version": env!("CARGO_PKG_VERSION"),
        "labels": labels,
        "models": models,
        "trainers": trainers,
        "strategies": strategies,
        "scoring": scoring,
        "train_stats": train_stats,
        "datastore": datastore,
    }))
}
