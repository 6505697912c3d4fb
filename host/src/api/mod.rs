//! The REST front: MONAI Label's routes plus app management, one router over all apps.
//!
//! Handlers validate input, pick the owning app generation from the registry, run the
//! plugin on a blocking thread and map every failure through [`crate::Error`].

mod access;
mod activelearning;
mod apps;
mod auth;
mod batch;
mod datastore;
mod drain;
mod infer;
mod info;
mod jobs;
mod logs;
mod model;
mod multipart;
mod openapi;
mod proxy;
pub mod request_id;
mod sessions;
mod status;
#[cfg(test)]
mod tests;
mod upload;

use crate::{
    registry::{AppGeneration, Registry},
    services::Shared,
    Error, Result,
};
use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderMap, HeaderValue},
    routing::{delete, get, post, put},
    Json, Router,
};
use labelhost_plugin_api::abi::{PluginResult, TaskKind};
use serde_json::{json, Value};
use std::sync::Arc;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use access::Access;

/// What every handler can reach.
pub struct AppState {
    /// Loaded apps.
    pub registry: Registry,
    /// The shared datastore, executor, configuration and job records.
    pub shared: Shared,
    /// Uploaded-once images (`/session/`).
    pub sessions: crate::sessions::Sessions,
    /// CORS and what answers reveal.
    pub access: Access,
    /// Time limits of inference requests.
    pub timeouts: crate::config::Timeouts,
    /// Bytes of executor tensors one inference may hold (0: no budget).
    pub request_memory: u64,
    /// Abandoned plugin calls an app generation may have running before its inferences
    /// are refused with 503.
    pub max_abandoned: usize,
    /// What `/metrics` serves.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Shared handler state.
pub type State = axum::extract::State<Arc<AppState>>;

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    let cors = state.access.cors();
    let router = Router::new()
        .route("/health", get(health))
        .route("/info/", get(info::info))
        .route("/info", get(info::info))
        .route("/apps", get(apps::list).post(apps::load))
        .route("/apps/{name}/reload", post(apps::reload))
        .route("/apps/{name}", delete(apps::retire))
        .route(
            "/infer/{model}",
            post(infer::infer).layer(upload::upload_limit()),
        )
        .route(
            "/activelearning/{strategy}",
            post(activelearning::next_sample),
        )
        .merge(datastore::routes())
        .route("/train/{model}", post(jobs::train_start))
        .route(
            "/train/",
            get(jobs::train_status)
                .delete(jobs::train_stop)
                .post(jobs::train_all),
        )
        .route("/train", get(jobs::train_status).delete(jobs::train_stop))
        .route("/scoring/{method}", post(jobs::scoring_start))
        .route(
            "/scoring/",
            get(jobs::scoring_status)
                .delete(jobs::scoring_stop)
                .post(jobs::scoring_all),
        )
        .route(
            "/scoring",
            get(jobs::scoring_status).delete(jobs::scoring_stop),
        )
        .route("/batch/infer/{model}", post(jobs::batch_start))
        .route(
            "/batch/infer",
            get(jobs::batch_status).delete(jobs::batch_stop),
        )
        .route(
            "/session/",
            put(sessions::create).layer(upload::upload_limit()),
        )
        .route(
            "/session",
            put(sessions::create).layer(upload::upload_limit()),
        )
        .route("/session/{id}", get(sessions::get).delete(sessions::remove))
        .route(
            "/model/{model}",
            get(model::download)
                .put(model::immutable)
                .delete(model::immutable),
        )
        .route("/model/info/{model}", get(model::info))
        .route("/logs/", get(logs::tail))
        .route("/logs", get(logs::tail))
        .route("/logs/gpu", get(logs::gpu))
        .route("/openapi.json", get(openapi::spec))
        .route("/docs", get(openapi::docs))
        .route("/auth/", get(auth::status))
        .route("/auth", get(auth::status))
        .route("/auth/token", post(auth::token))
        .route("/auth/token/valid", get(auth::valid))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/status", get(status::status))
        .route(
            "/proxy/dicom/{*path}",
            get(proxy::proxy)
                .post(proxy::proxy)
                .layer(upload::upload_limit()),
        )
        .merge(crate::ui::routes())
        // Every route above, after matching: its role checked against the credentials.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Counted and timed by route (the fallbacks' as "unmatched").
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        // An answer given before the body was read waits until the client has sent it.
        .layer(axum::middleware::from_fn_with_state(
            state.access.auth.is_some(),
            drain::drain_unread,
        ))
        // The span names the route, not the URI: query strings and path ids (sessions,
        // clients, images) stay out of the log that `/logs/` serves.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let path = req
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str);
            let id = req.extensions().get::<request_id::RequestId>();
            let id = id.map_or("-", |r| r.0.as_str());
            tracing::info_span!("request", id, method = %req.method(), route = path.unwrap_or("-"))
        })
        // One access-log line per answer: status and latency under the span's route.
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)))
        // Outermost: the request's id, before the span above names it.
        .layer(axum::middleware::from_fn(request_id::assign));
    match cors {
        Some(cors) => router.layer(cors).with_state(state),
        None => router.with_state(state),
    }
}

#[utoipa::path(get, path = "/health", tag = "labelhost", responses((status = 200, description = "Liveness and the number of loaded apps")))]
async fn health(state: State) -> Json<Value> {
    let snap = state.registry.snapshot();
    Json(json!({"status": "ok", "apps": snap.apps.len()}))
}

async fn not_found(req: Request) -> Error {
    Error::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> Error {
    Error::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
}

/// The app generation that owns task `name` of `kind`, or a 404 naming what was asked for.
pub(crate) fn owner(state: &AppState, kind: TaskKind, name: &str) -> Result<Arc<AppGeneration>> {
    let what = match kind {
        TaskKind::INFER => "model",
        TaskKind::TRAIN => "trainer",
        TaskKind::STRATEGY => "strategy",
        _ => "scoring method",
    };
    state
        .registry
        .snapshot()
        .find(kind, name)
        .ok_or_else(|| Error::NotFound(format!("no {what} named '{name}'")))
}

/// Runs a plugin call on a blocking thread, holding the generation until it returns.
/// Dropped before the call returns (an inference past its time limit; a handler whose
/// client left), the call counts as abandoned in `generation.abandoned` until the plugin
/// returns.
pub(crate) async fn call<T, F>(generation: Arc<AppGeneration>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&AppGeneration) -> PluginResult<T> + Send + 'static,
{
    use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
    const RUNNING: u8 = 0;
    const DONE: u8 = 1;
    const ABANDONED: u8 = 2;
    /// Marks the call abandoned when the awaiting future goes first. The count goes up
    /// before the mark, so the call's end (which takes it down only when it sees the mark)
    /// can never take it below zero.
    struct Watch(Arc<AtomicU8>, Arc<AppGeneration>);
    impl Drop for Watch {
        fn drop(&mut self) {
            if self.0.load(SeqCst) == DONE {
                return;
            }
            self.1.abandoned.fetch_add(1, SeqCst);
            if self
                .0
                .compare_exchange(RUNNING, ABANDONED, SeqCst, SeqCst)
                .is_err()
            {
                self.1.abandoned.fetch_sub(1, SeqCst);
            }
        }
    }
    /// Marks the call done when the plugin returns, or unwinds.
    struct Done(Arc<AtomicU8>, Arc<AppGeneration>);
    impl Drop for Done {
        fn drop(&mut self) {
            if self.0.swap(DONE, SeqCst) == ABANDONED {
                self.1.abandoned.fetch_sub(1, SeqCst);
            }
        }
    }
    let state = Arc::new(AtomicU8::new(RUNNING));
    let _watch = Watch(state.clone(), generation.clone());
    blocking(move || {
        let _done = Done(state, generation.clone());
        f(&generation).into_result()
    })
    .await
}

/// 503 when `generation` already runs `--max-abandoned` calls whose requests ended: more
/// would tie up more threads.
pub(crate) fn refuse_if_stuck(state: &AppState, generation: &AppGeneration) -> Result<()> {
    let stuck = generation
        .abandoned
        .load(std::sync::atomic::Ordering::SeqCst);
    if stuck >= state.max_abandoned {
        return Err(Error::Overloaded(format!(
            "app '{}' still runs {stuck} calls whose requests ended (timed out or left); \
             retry when they return (--max-abandoned {})",
            generation.name, state.max_abandoned
        )));
    }
    Ok(())
}

/// Runs a plugin call as [`call`] does, under a cancel mark with the request's memory
/// budget: the work stops at its next executor call when its client leaves or `deadline`
/// passes, and then the answer is 504.
pub(crate) async fn call_within<T, F>(
    state: &AppState,
    generation: Arc<AppGeneration>,
    task: &str,
    deadline: tokio::time::Instant,
    f: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&AppGeneration) -> PluginResult<T> + Send + 'static,
{
    use crate::executor::cancel::{with_cancel, Cancel, StopOnDrop, Why};
    refuse_if_stuck(state, &generation)?;
    let limit = deadline.saturating_duration_since(tokio::time::Instant::now());
    let cancel = Cancel::with_budget(state.request_memory);
    let stop_if_dropped = StopOnDrop::new(cancel.clone());
    let ticket = cancel.clone();
    let running = call(generation, move |g| with_cancel(ticket, || f(g)));
    let Ok(out) = tokio::time::timeout_at(deadline, running).await else {
        cancel.stop(Why::TimedOut);
        return Err(Error::Timeout(format!(
            "'{task}' did not answer within its time limit ({} s left when called)",
            limit.as_secs_f64()
        )));
    };
    stop_if_dropped.disarm();
    out
}

/// Runs blocking work (file I/O, the datastore, the registry, plugin calls) on tokio's
/// blocking pool, inside the caller's span (its request id reaches the plugin's log lines).
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> std::result::Result<T, E> + Send + 'static,
) -> Result<T>
where
    T: Send + 'static,
    E: Send + 'static,
    Error: From<E>,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(f)).await {
        Ok(done) => done.map_err(Error::from),
        Err(e) => Err(Error::Internal(format!(
            "a blocking task did not complete: {e}"
        ))),
    }
}

/// Lets go of a generation off the async threads: if it was the last holder of a retired
/// generation, dropping it calls the plugin's `on_retire` and removes its files.
pub(crate) fn release(generation: Arc<AppGeneration>) {
    tokio::task::spawn_blocking(move || drop(generation));
}

/// A generation held for a request, let go off the async threads ([`release`]) however
/// the request ends (early returns included).
pub(crate) struct Held(Option<Arc<AppGeneration>>);

impl Held {
    /// Holds `generation`.
    pub(crate) fn new(generation: Arc<AppGeneration>) -> Self {
        Held(Some(generation))
    }

    /// The generation.
    pub(crate) fn get(&self) -> Option<&Arc<AppGeneration>> {
        self.0.as_ref()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            release(g);
        }
    }
}

/// Headers naming the app generation that answered.
pub(crate) fn generation_headers(g: &AppGeneration) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut set = |k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set("x-labelhost-app", &g.name);
    set("x-labelhost-app-version", &g.version);
    set("x-labelhost-generation", &g.generation.to_string());
    h
}

/// A JSON object from a body or form field (`labelhost_wire::params::json_object`).
pub(crate) fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>> {
    Ok(labelhost_wire::params::json_object(body)?)
}

/// A yes/no request parameter (`labelhost_wire::params::flag`).
pub(crate) fn flag(
    params: &serde_json::Map<String, Value>,
    key: &str,
    default: bool,
) -> Result<bool> {
    Ok(labelhost_wire::params::flag(params, key, default)?)
}

/// A text request parameter (`labelhost_wire::params::text_param`).
pub(crate) fn text_param(
    params: &serde_json::Map<String, Value>,
    key: &str,
    default: &str,
) -> Result<String> {
    Ok(labelhost_wire::params::text_param(params, key, default)?)
}
