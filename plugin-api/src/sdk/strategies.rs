//! Active-learning strategies every app may reuse: MONAI Label's `random`, `first`, `last`,
//! and [`candidates`], the images a strategy may serve.

use super::{
    error::Result,
    host::Host,
    tasks::{Request, Strategy},
};
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The images a strategy may serve, sorted: unlabeled ones (no `final` label) that no
/// other client holds a fresh claim on (the host lists those in the request's `_claimed`;
/// an older host lists none).
pub fn candidates(host: &Host, request: &Request) -> Vec<String> {
    let claimed: std::collections::HashSet<&str> = request
        .get("_claimed")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut ids = host.datastore().unlabeled_images();
    ids.retain(|id| !claimed.contains(id.as_str()));
    ids.sort();
    ids
}

fn sample(id: String) -> Option<Map<String, Value>> {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    Some(m)
}

/// The first unlabeled image in id order.
pub struct First;

impl Strategy for First {
    fn description(&self) -> String {
        "Get First Sample".into()
    }
    fn next_sample(&self, host: &Host, request: &Request) -> Result<Option<Map<String, Value>>> {
        Ok(candidates(host, request)
            .into_iter()
            .next()
            .and_then(sample))
    }
}

/// The last unlabeled image in id order.
pub struct Last;

impl Strategy for Last {
    fn description(&self) -> String {
        "Get Last Sample".into()
    }
    fn next_sample(&self, host: &Host, request: &Request) -> Result<Option<Map<String, Value>>> {
        Ok(candidates(host, request)
            .into_iter()
            .last()
            .and_then(sample))
    }
}

/// A weighted random unlabeled image: the longer since an image was last served by this
/// strategy, the likelier it is (never-served images are likeliest), as MONAI Label does.
pub struct Random {
    /// The name the strategy is registered under (its key in image info `strategy`).
    pub name: String,
}

impl Strategy for Random {
    fn description(&self) -> String {
        "Random Strategy".into()
    }
    fn next_sample(&self, host: &Host, request: &Request) -> Result<Option<Map<String, Value>>> {
        let store = host.datastore();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let weights: Vec<(String, u64)> = candidates(host, request)
            .into_iter()
            .map(|id| {
                let served = store
                    .image_info(&id)
                    .ok()
                    .and_then(|info| info.get("strategy")?.get(&self.name)?.get("ts")?.as_u64());
                let w = served.map_or(now.max(1), |ts| now.saturating_sub(ts).max(1));
                (id, w)
            })
            .collect();
        let total: u64 = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Ok(None);
        }
        let mut pick = random_below(total);
        for (id, w) in weights {
            if pick < w {
                let mut m = sample(id).unwrap_or_default();
                m.insert("weight".into(), json!(w));
                return Ok(Some(m));
            }
            pick -= w;
        }
        Ok(None)
    }
}

/// A number in `0..n` from the std hasher's per-process random keys (no extra crate).
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() % n
}
