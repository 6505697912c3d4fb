//! MONAI Label's background-job routes: `/train/`, `/scoring/`, `/batch/infer`. A job runs
//! in the background (one per kind at a time, 429 when one is running and `enqueue` is
//! false) or inside the request with `run_sync=true`; either way it holds no device slot
//! and its model passes run at training or batch priority, behind interactive inference
//! (batch inference image by image in `batch.rs`).

use super::{call, json_object, owner, release, AppState, State};
use crate::{
    cluster::Turn,
    executor::{with_priority, Priority},
    jobs::{timestamp, Kind, Record, Status},
    Error, Result,
};
use abi_stable::std_types::{RStr, RString};
use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, PathRejection, QueryRejection},
        Path, Query,
    },
    Json,
};
use labelhost_plugin_api::abi::{PluginResult, TaskKind};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// `POST` query parameters.
#[derive(Debug, Deserialize)]
pub(super) struct RunQuery {
    #[serde(default)]
    run_sync: bool,
    #[serde(default)]
    enqueue: bool,
    images: Option<String>,
}

/// `GET` query parameters.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    check_if_running: bool,
}

fn priority(kind: Kind) -> Priority {
    if kind == Kind::Train {
        Priority::Training
    } else {
        Priority::Batch
    }
}

/// Runs the job: batch inference image by image in the host (`batch.rs`); scoring and
/// training as one plugin call each, holding no device slot: their model passes run at
/// the job's priority, behind waiting passes and in-flight requests of annotators (the
/// compute lock), and training also takes a slot per optimisation step (the executor's
/// `train_step`). `job` (the record
/// id) reaches the plugin as `_job`, for progress reports and stop requests.
async fn execute(
    state: &Arc<AppState>,
    kind: Kind,
    name: &str,
    request: &Value,
    job: Option<&str>,
) -> Result<Value> {
    if kind == Kind::BatchInfer {
        return super::batch::run(state, name, request, job).await;
    }
    let generation = owner(state, task_kind(kind), name)?;
    // An unknown device is a bad request; the job itself holds no device slot.
    let device = request.get("device").and_then(Value::as_str).unwrap_or("");
    state
        .shared
        .executor
        .queue(device)
        .map_err(Error::BadRequest)?;
    let mut request = request.clone();
    if let (Some(job), Some(map)) = (job, request.as_object_mut()) {
        map.insert("_job".into(), json!(job));
    }
    let (name, text) = (name.to_owned(), request.to_string());
    // The job's model passes yield to interactive ones (the compute lock's priority).
    let out = call(generation, move |g| -> PluginResult<RString> {
        let (name, text) = (RStr::from(name.as_str()), RStr::from(text.as_str()));
        with_priority(priority(kind), || match kind {
            Kind::Train => g.app.train(name, text),
            Kind::Scoring => g.app.scoring(name, text),
            Kind::BatchInfer => g.app.batch_infer(text),
        })
    })
    .await?;
    serde_json::from_str(out.as_str())
        .map_err(|e| Error::Internal(format!("the job returned bad JSON: {e}")))
}

async fn start(
    state: State,
    kind: Kind,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<RunQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    let (Path(name), Query(q), body) = (name?, query?, body?);
    launch(&state.0, kind, &name, &q, job_request(&body)?)
        .await
        .map(Json)
}

/// The most bytes of a job's request: it is kept in the job's record (100 per kind, in
/// `jobs.json`), which may not grow without bound.
const MAX_JOB_REQUEST: usize = 64 << 10;

/// A job's JSON request, refused past [`MAX_JOB_REQUEST`].
fn job_request(body: &[u8]) -> Result<serde_json::Map<String, Value>> {
    if body.len() > MAX_JOB_REQUEST {
        return Err(Error::BadRequest(format!(
            "a job's request is at most {MAX_JOB_REQUEST} bytes of JSON, not {}",
            body.len()
        )));
    }
    json_object(body)
}

fn task_kind(kind: Kind) -> TaskKind {
    match kind {
        Kind::Train => TaskKind::TRAIN,
        Kind::Scoring => TaskKind::SCORING,
        Kind::BatchInfer => TaskKind::INFER,
    }
}

/// Starts (or, with `run_sync`, runs) one job; answers its record (or its result).
async fn launch(
    state: &Arc<AppState>,
    kind: Kind,
    name: &str,
    q: &RunQuery,
    mut request: serde_json::Map<String, Value>,
) -> Result<Value> {
    let name = name.to_owned();
    // Underscored keys are the host's to set (`_job`), never the client's.
    request.retain(|k, _| !k.starts_with('_'));
    let key = if kind == Kind::Scoring {
        "method"
    } else {
        "model"
    };
    request.insert(key.into(), json!(name));
    if kind == Kind::BatchInfer {
        request.insert("images".into(), json!(q.images.as_deref().unwrap_or("all")));
    }
    let request = Value::Object(request);
    // Unknown names and image selections are refused now, not recorded as failed jobs.
    owner(state, task_kind(kind), &name)?;
    if kind == Kind::BatchInfer {
        super::batch::select(state, &request)?;
    }
    if kind == Kind::Train {
        if let Some(map) = request.as_object() {
            labelhost_wire::train::validate(map)?;
        }
    }
    let record = Record::submitted(crate::random::uuid(), request.clone());
    let cluster = state.shared.cluster.clone().filter(|_| kind == Kind::Train);
    if q.run_sync {
        // Training writes the trainer's output folder: one run at a time, synchronous too
        // (and across the hosts: the run is recorded in the cluster store while it lasts).
        let _one_at_a_time = match kind {
            Kind::Train => Some(state.shared.jobs.gates[&kind].clone().lock_owned().await),
            _ => None,
        };
        if let Some(c) = &cluster {
            if let Turn::Busy(host) = c.add_training(&record, true).await? {
                return Err(already_running(kind, Some(&host)));
            }
        }
        let out = execute(state, kind, &name, &request, None).await;
        if let Some(c) = &cluster {
            let mut record = record;
            finish(&mut record, kind, &name, &out);
            c.write_record(&record).await?;
            if out.is_ok() {
                publish_models(state, &name).await;
            }
        }
        return out;
    }
    if let Some(active) = state.shared.jobs.active(kind).filter(|_| !q.enqueue) {
        // Another host's job: the store says whether it still runs, and where.
        if cluster.is_none() || !state.shared.jobs.is_others(&active.id) {
            return Err(already_running(kind, None));
        }
    }
    if let Some(c) = &cluster {
        if let Turn::Busy(host) = c.add_training(&record, !q.enqueue).await? {
            return Err(already_running(kind, Some(&host)));
        }
    }
    state.shared.jobs.add(kind, record.clone());
    spawn_job(state.clone(), kind, record.id.clone(), name, request);
    Ok(serde_json::to_value(record).unwrap_or(Value::Null))
}

/// MONAI Label's 429 answer (naming the host that runs it, in a cluster).
fn already_running(kind: Kind, host: Option<&str>) -> Error {
    let title = kind.title();
    Error::TooManyRequests(match host {
        Some(host) => format!("{title} Task is Already Running (on {host})"),
        None => format!("{title} Task is Already Running"),
    })
}

/// `record` ended with `outcome`.
fn finish(record: &mut Record, kind: Kind, name: &str, outcome: &Result<Value>) {
    record.end_ts = Some(timestamp());
    match outcome {
        Ok(v) => {
            record.status = Status::Done;
            record
                .details
                .push(format!("{} {name} finished", kind.title()));
            record.result = Some(v.clone());
        }
        Err(e) => {
            record.status = Status::Error;
            record.details.push(format!("{}: {e}", e.code()));
        }
    }
}

/// After trainer `name` ended well: the files its app's model folder publishes go to the
/// cluster store, from where every other host takes them (`cluster::models`).
async fn publish_models(state: &Arc<AppState>, name: &str) {
    let Some(cluster) = state.shared.cluster.clone() else {
        return;
    };
    let Ok(generation) = owner(state, TaskKind::TRAIN, name) else {
        return;
    };
    let app = generation.name.clone();
    release(generation);
    let dir = state.shared.model_dir_of(&app);
    match cluster.publish_models(&app, &dir).await {
        Ok(n) => tracing::info!(%app, files = n, "models published to the cluster"),
        Err(e) => tracing::warn!(%app, "models not published: {e}"),
    }
}

/// In a cluster, waits until the store lets training `id` run (none runs on another
/// host); answers whether it may run (`false`: it was stopped meanwhile).
async fn cluster_turn(state: &Arc<AppState>, kind: Kind, id: &str) -> bool {
    let Some(cluster) = state.shared.cluster.clone().filter(|_| kind == Kind::Train) else {
        return true;
    };
    loop {
        match cluster.take_turn(id).await {
            Ok(Turn::Go) => return true,
            Ok(Turn::Gone) => return false,
            Ok(Turn::Busy(host)) => tracing::debug!(%host, "waiting for another host's training"),
            Err(e) => tracing::warn!("{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let wanted = state
            .shared
            .jobs
            .list(kind)
            .into_iter()
            .find(|r| r.id == id);
        if wanted.is_none_or(|r| r.status != Status::Submitted) {
            return false;
        }
    }
}

/// Runs a submitted job in the background under its own `job` span (its id and kind on
/// every line it logs).
fn spawn_job(state: Arc<AppState>, kind: Kind, id: String, name: String, request: Value) {
    let span = tracing::info_span!("job", id = %id, kind = kind.title());
    tokio::spawn(tracing::Instrument::instrument(
        run_job(state, kind, id, name, request),
        span,
    ));
}

/// A background job's task: waits for its kind's turn, runs, records the outcome; after
/// a successful training, queues the app's scoring methods ([`rescore`]). Boxed with a
/// named type because it spawns itself through `rescore`.
fn run_job(
    st: Arc<AppState>,
    kind: Kind,
    id: String,
    name: String,
    request: Value,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let _one_at_a_time = st.shared.jobs.gates[&kind].clone().lock_owned().await;
        if !cluster_turn(&st, kind, &id).await {
            return;
        }
        let still_wanted = st.shared.jobs.update(kind, &id, |r| {
            if r.status == Status::Submitted {
                r.status = Status::Running;
            }
        });
        if still_wanted.is_none_or(|r| r.status != Status::Running) {
            return;
        }
        let outcome = execute(&st, kind, &name, &request, Some(&id)).await;
        let trained = kind == Kind::Train && outcome.is_ok();
        st.shared.jobs.update(kind, &id, |r| {
            if r.status != Status::Stopped {
                finish(r, kind, &name, &outcome);
            }
        });
        if trained {
            publish_models(&st, &name).await;
            rescore(&st, &name);
        }
    })
}

/// After a training job ends, queues every scoring method of the trainer's app, as MONAI
/// Label's auto-update does (scores such as epistemic uncertainty depend on the model);
/// `--conf auto_update_scoring=false` turns it off.
fn rescore(state: &Arc<AppState>, trainer: &str) {
    if state
        .shared
        .conf
        .get("auto_update_scoring")
        .map(String::as_str)
        == Some("false")
    {
        return;
    }
    let Ok(generation) = owner(state, TaskKind::TRAIN, trainer) else {
        return;
    };
    let methods: Vec<String> = generation
        .tasks
        .iter()
        .filter(|t| t.kind == TaskKind::SCORING)
        .map(|t| t.name.clone())
        .collect();
    release(generation);
    for method in methods {
        let request = json!({ "method": method });
        let record =
            state
                .shared
                .jobs
                .submit(Kind::Scoring, crate::random::uuid(), request.clone());
        tracing::info!(%method, %trainer, "scoring queued after training");
        spawn_job(state.clone(), Kind::Scoring, record.id, method, request);
    }
}

/// MONAI Label's deprecated `POST /train/` and `POST /scoring/`: one queued job per trainer
/// (method); `params[name]` overrides are merged into that one's request.
async fn start_all(
    state: State,
    kind: Kind,
    query: Result<Query<RunQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    let (Query(mut q), body) = (query?, body?);
    q.enqueue = true;
    let params = job_request(&body)?;
    let names: Vec<String> = state
        .registry
        .snapshot()
        .apps
        .values()
        .flat_map(|g| {
            g.tasks
                .iter()
                .filter(|t| t.kind == task_kind(kind))
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut out = serde_json::Map::new();
    for name in names {
        let mut request = params.clone();
        if let Some(Value::Object(own)) = params.get(&name) {
            request.extend(own.clone());
        }
        let answer = match launch(&state.0, kind, &name, &q, request).await {
            Ok(v) => json!({"result": v, "detail": Value::Null}),
            Err(e) => json!({"result": Value::Null, "detail": e.to_string()}),
        };
        out.insert(name, answer);
    }
    Ok(Json(Value::Object(out)))
}

fn status(
    state: &State,
    kind: Kind,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = query?;
    let records = state.shared.jobs.list(kind);
    let as_json = |r: &Record| serde_json::to_value(r).unwrap_or(Value::Null);
    if q.check_if_running {
        let running = state.shared.jobs.active(kind);
        let r = running.ok_or_else(|| {
            Error::NotFound(format!("No {} Tasks are currently Running", kind.title()))
        })?;
        return Ok(Json(as_json(&r)));
    }
    if q.all {
        return Ok(Json(Value::Array(records.iter().map(as_json).collect())));
    }
    let last = records
        .last()
        .ok_or_else(|| Error::NotFound(format!("No {} Tasks Found", kind.title())))?;
    Ok(Json(as_json(last)))
}

async fn stop(state: &State, kind: Kind) -> Result<Json<Value>> {
    let Some(active) = state.shared.jobs.active(kind) else {
        return Ok(Json(Value::Null));
    };
    if state.shared.jobs.is_others(&active.id) {
        // Another host runs it: the store tells that host (within its next round).
        if let Some(c) = &state.shared.cluster {
            c.request_stop(&active.id).await?;
        }
        return Ok(Json(serde_json::to_value(active).unwrap_or(Value::Null)));
    }
    let stopped = state.shared.jobs.stop(kind, &active.id);
    Ok(Json(
        stopped
            .and_then(|r| serde_json::to_value(r).ok())
            .unwrap_or(Value::Null),
    ))
}

macro_rules! job_routes {
    ($start:ident, $status:ident, $stop:ident, $kind:expr, $start_path:literal, $list_path:literal, $name:literal) => {
        /// Starts a job of this kind.
        #[utoipa::path(post, path = $start_path, tag = "MONAI Label",
            params(($name = String, Path, description = "task name"),
                ("run_sync" = Option<bool>, Query, description = "run inside the request"),
                ("enqueue" = Option<bool>, Query, description = "queue behind a running job instead of 429")),
            responses((status = 200, description = "The job record (its result with run_sync)")))]
        pub(super) async fn $start(
            state: State,
            name: Result<Path<String>, PathRejection>,
            query: Result<Query<RunQuery>, QueryRejection>,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Json<Value>> {
            start(state, $kind, name, query, body).await
        }
        /// The last, every, or the running record of this kind.
        #[utoipa::path(get, path = $list_path, tag = "MONAI Label",
            params(("all" = Option<bool>, Query, description = "every record"),
                ("check_if_running" = Option<bool>, Query, description = "only the running one")),
            responses((status = 200, description = "Job record(s)"), (status = 404, description = "None")))]
        pub(super) async fn $status(
            state: State,
            query: Result<Query<ListQuery>, QueryRejection>,
        ) -> Result<Json<Value>> {
            status(&state, $kind, query)
        }
        /// Stops the running job of this kind.
        #[utoipa::path(delete, path = $list_path, tag = "MONAI Label",
            responses((status = 200, description = "The stopped record, or null")))]
        pub(super) async fn $stop(state: State) -> Result<Json<Value>> {
            stop(&state, $kind).await
        }
    };
}

job_routes!(
    train_start,
    train_status,
    train_stop,
    Kind::Train,
    "/train/{model}",
    "/train/",
    "model"
);

/// `POST /train/` (deprecated): every trainer.
#[utoipa::path(post, path = "/train/", tag = "MONAI Label", params(("run_sync" = Option<bool>, Query, description = "")), responses((status = 200, description = "Deprecated: start every trainer")))]
pub(super) async fn train_all(
    state: State,
    query: Result<Query<RunQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    start_all(state, Kind::Train, query, body).await
}

/// `POST /scoring/` (deprecated): every scoring method.
#[utoipa::path(post, path = "/scoring/", tag = "MONAI Label", params(("run_sync" = Option<bool>, Query, description = "")), responses((status = 200, description = "Deprecated: start every scoring method")))]
pub(super) async fn scoring_all(
    state: State,
    query: Result<Query<RunQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    start_all(state, Kind::Scoring, query, body).await
}
job_routes!(
    scoring_start,
    scoring_status,
    scoring_stop,
    Kind::Scoring,
    "/scoring/{method}",
    "/scoring/",
    "method"
);
job_routes!(
    batch_start,
    batch_status,
    batch_stop,
    Kind::BatchInfer,
    "/batch/infer/{model}",
    "/batch/infer",
    "model"
);
