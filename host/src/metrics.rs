//! Prometheus metrics at `GET /metrics` (the `prometheus-client` crate, OpenMetrics text):
//! requests by route, method and status with their latency; each inference's stage times
//! per model (the task's own `latencies`) and its wait for a device slot; and, read at each
//! scrape, device queue depth, resident memory, CUDA devices' memory, loaded apps, mapped
//! libraries, live tensors and every number in the latest training stats (epoch,
//! iteration, loss, best metric).

use crate::api::AppState;
use axum::{
    extract::{MatchedPath, Request},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};
use serde_json::Value;
use std::sync::{atomic::AtomicU64, Arc};

type Labels = Vec<(String, String)>;
type Seconds = Family<Labels, Histogram, fn() -> Histogram>;
type Level = Family<Labels, Gauge<f64, AtomicU64>>;

/// 1 ms to about 2 minutes, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The server's metrics and the registry they are encoded from.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    request_seconds: Seconds,
    stage_seconds: Seconds,
    queue_wait_seconds: Seconds,
    queue: Level,
    memory: Level,
    device_memory: Level,
    apps: Level,
    training: Level,
    /// One scrape at a time: each clears and refills the levels.
    scraping: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("labelhost");
        let requests = Family::<Labels, Counter>::default();
        let request_seconds = Seconds::new_with_constructor(seconds);
        let stage_seconds = Seconds::new_with_constructor(seconds);
        let queue_wait_seconds = Seconds::new_with_constructor(seconds);
        let (queue, memory, device_memory, apps, training) = Default::default();
        registry.register(
            "http_requests",
            "Requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "Time to answer, by route",
            request_seconds.clone(),
        );
        registry.register(
            "infer_stage_seconds",
            "An inference's stages as its task times them (pre, infer, post, write, model, total), by model",
            stage_seconds.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "How long an inference waited for a slot on its device",
            queue_wait_seconds.clone(),
        );
        registry.register(
            "queue",
            "Device queues now: requests running and waiting, and slots",
            Level::clone(&queue),
        );
        registry.register(
            "memory_bytes",
            "The process's resident and peak resident bytes",
            Level::clone(&memory),
        );
        registry.register(
            "device_memory_bytes",
            "Each CUDA device's used and total bytes (device-wide; none without CUDA)",
            Level::clone(&device_memory),
        );
        registry.register(
            "apps",
            "Loaded apps, mapped plugin libraries and live executor tensors (by app)",
            Level::clone(&apps),
        );
        registry.register(
            "train_stat",
            "The latest training stats reported for each trainer (numbers only)",
            Level::clone(&training),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            stage_seconds,
            queue_wait_seconds,
            queue,
            memory,
            device_memory,
            apps,
            training,
            scraping: std::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    /// An inference's stage times (its result's `latencies`) for `model`.
    pub fn infer_stages(&self, model: &str, result: &Value) {
        let Some(latencies) = result.get("latencies").and_then(Value::as_object) else {
            return;
        };
        for (stage, v) in latencies {
            if let Some(s) = v.as_f64().filter(|s| s.is_finite()) {
                let key = labels(&[("model", model), ("stage", stage)]);
                self.stage_seconds.get_or_create(&key).observe(s);
            }
        }
    }

    /// An inference's wait for a slot on `device`.
    pub fn queue_wait(&self, device: &str, seconds: f64) {
        let key = labels(&[("device", device)]);
        self.queue_wait_seconds.get_or_create(&key).observe(seconds);
    }

    /// The levels read from the server now, then everything as OpenMetrics text.
    fn render(&self, state: &AppState) -> String {
        let _one = self.scraping.lock().unwrap_or_else(|p| p.into_inner());
        // Levels are read afresh: a retired app or a gone trainer leaves no stale series.
        let levels = [
            &self.queue,
            &self.memory,
            &self.device_memory,
            &self.apps,
            &self.training,
        ];
        for level in levels {
            level.clear();
        }
        let executor = &state.shared.executor;
        for (device, running, waiting, slots) in executor.queue_levels() {
            for (what, n) in [("running", running), ("waiting", waiting), ("slots", slots)] {
                let key = labels(&[("device", &device), ("state", what)]);
                self.queue.get_or_create(&key).set(n as f64);
            }
        }
        if let Some((rss, peak)) = crate::memory::resident() {
            for (what, n) in [("resident", rss), ("peak_resident", peak)] {
                self.memory
                    .get_or_create(&labels(&[("kind", what)]))
                    .set(n as f64);
            }
        }
        for m in executor.cuda_memory() {
            for (what, n) in [("used", m.used), ("total", m.total)] {
                let key = labels(&[("device", &m.device), ("kind", what)]);
                self.device_memory.get_or_create(&key).set(n as f64);
            }
        }
        let snapshot = state.registry.snapshot();
        let set = |key: Labels, v: f64| {
            self.apps.get_or_create(&key).set(v);
        };
        set(labels(&[("what", "loaded")]), snapshot.apps.len() as f64);
        set(
            labels(&[("what", "libraries_mapped")]),
            state.registry.libraries_mapped() as f64,
        );
        for (name, generation) in &snapshot.apps {
            let live = generation.scope.live_tensors() as f64;
            set(labels(&[("what", "live_tensors"), ("app", name)]), live);
        }
        for (model, stats) in state.shared.jobs.train_stats() {
            let Some(stats) = stats.as_object() else {
                continue;
            };
            for (stat, v) in stats {
                if let Some(v) = v.as_f64() {
                    let key = labels(&[("model", &model), ("stat", stat)]);
                    self.training.get_or_create(&key).set(v);
                }
            }
        }
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// `GET /metrics`.
pub async fn scrape(state: crate::api::State) -> Response {
    let text = state.metrics.render(&state);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Counts and times each routed request (its route's pattern, not its path: ids do not
/// become labels).
pub async fn track(state: crate::api::State, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let m: &Arc<Metrics> = &state.metrics;
    m.requests
        .get_or_create(&labels(&[
            ("route", &route),
            ("method", &method),
            ("status", &status),
        ]))
        .inc();
    m.request_seconds
        .get_or_create(&labels(&[("route", &route)]))
        .observe(started.elapsed().as_secs_f64());
    response
}
