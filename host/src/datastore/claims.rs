//! Active-learning claims: an image served to a client by any strategy (image info
//! `strategy.<name>.{ts, client_id}`, as MONAI Label records it) is that client's while the
//! claim is fresh, so two annotators asking at once never get the same image.

use super::{ids::validate_id, image_not_found, LocalDatastore, Result};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;

/// How long a claim stays fresh when the operator does not say: one hour.
pub const DEFAULT_CLAIM_SECS: u64 = 3600;

/// Whether `info`'s strategy records hold a claim, fresh at `now`, of a client other than
/// `client`. Anonymous requests (no client id) are all different clients.
fn claimed_by_other(info: &Map<String, Value>, client: Option<&str>, now: u64, fresh: u64) -> bool {
    let Some(served) = info.get("strategy").and_then(Value::as_object) else {
        return false;
    };
    served.values().any(|record| {
        let ts = record.get("ts").and_then(Value::as_u64).unwrap_or(0);
        let holder = record.get("client_id").and_then(Value::as_str);
        let mine = matches!((holder, client), (Some(a), Some(b)) if a == b);
        !mine && now.saturating_sub(ts) < fresh
    })
}

impl LocalDatastore {
    /// How many seconds a claim stays fresh (0: no claims).
    pub fn set_claim_secs(&self, secs: u64) {
        self.claim_secs.store(secs, Ordering::Relaxed);
    }

    /// How many seconds a claim stays fresh.
    pub fn claim_secs(&self) -> u64 {
        self.claim_secs.load(Ordering::Relaxed)
    }

    /// Unlabelled images that another client than `client` holds a fresh claim on, sorted.
    pub fn claimed_by_others(&self, client: Option<&str>, now: u64) -> Vec<String> {
        let fresh = self.claim_secs();
        let st = self.lock();
        st.index
            .objects
            .iter()
            .filter(|(_, obj)| !obj.labels.contains_key(super::FINAL_TAG))
            .filter(|(_, obj)| claimed_by_other(&obj.image.info, client, now, fresh))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Records that `strategy` served `id` to `client` at `now` (MONAI Label's
    /// `strategy.<name> = {ts, client_id}`), unless another client's claim on it is still
    /// fresh: then nothing changes and the answer is `None`. Otherwise the image's info.
    /// Checked and written under the datastore's lock (and its cross-process file lock).
    pub fn claim(
        &self,
        id: &str,
        strategy: &str,
        client: Option<&str>,
        now: u64,
    ) -> Result<Option<Map<String, Value>>> {
        validate_id(id)?;
        let fresh = self.claim_secs();
        self.mutate(|idx, _| {
            let obj = idx.objects.get_mut(id).ok_or_else(|| image_not_found(id))?;
            if claimed_by_other(&obj.image.info, client, now, fresh) {
                return Ok(None);
            }
            let slot = obj
                .image
                .info
                .entry("strategy")
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Some(map) = slot.as_object_mut() {
                map.insert(strategy.to_owned(), json!({"ts": now, "client_id": client}));
            }
            Ok(Some(obj.image.info.clone()))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(records: Value) -> Map<String, Value> {
        json!({ "strategy": records }).as_object().cloned().unwrap()
    }

    #[test]
    fn a_claim_is_another_clients_only_while_fresh() {
        let i = info(json!({"first": {"ts": 100, "client_id": "ann"}}));
        assert!(claimed_by_other(&i, Some("bob"), 150, 60));
        assert!(!claimed_by_other(&i, Some("ann"), 150, 60), "own claim");
        assert!(!claimed_by_other(&i, Some("bob"), 160, 60), "stale");
        assert!(
            claimed_by_other(&i, None, 150, 60),
            "anonymous is another client"
        );
        assert!(!claimed_by_other(&i, Some("bob"), 150, 0), "claims off");
        let anon = info(json!({"random": {"ts": 100, "client_id": null}}));
        assert!(claimed_by_other(&anon, None, 101, 60));
        assert!(!claimed_by_other(&Map::new(), None, 101, 60));
    }
}
