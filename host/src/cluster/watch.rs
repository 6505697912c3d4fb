//! Each host's loop over the cluster store: its training records written as they change,
//! a heartbeat for its running jobs (and jobs of dead hosts marked ERROR), stops asked
//! from other hosts, the other hosts' training records, models published elsewhere
//! written into its own model folder, and — over a DICOMweb server — the server's SEG
//! series read again when another host saved a label, and image info other hosts merged.

use super::Cluster;
use crate::jobs::{Kind, Record};
use crate::services::Shared;
use crate::Result;
use std::sync::Arc;
use std::time::Duration;

impl Cluster {
    /// Records that this host saved `tag` of `image` (other hosts over a DICOMweb server
    /// read its SEG series again).
    pub async fn label_saved(&self, image: &str, tag: &str) -> Result<()> {
        self.execute(
            "recording a label",
            "INSERT INTO labelhost_label_events (image, tag, host) VALUES ($1, $2, $3)",
            &[&image, &tag, &self.host],
        )
        .await?;
        Ok(())
    }

    /// The newest label event's `seq` (`after` when none is newer), and whether another
    /// host saved a label after `after`; with no `after`, only the newest `seq`.
    async fn labels_after(&self, after: Option<i64>) -> Result<(i64, bool)> {
        let what = "reading label events";
        let rows = match after {
            None => {
                let sql = "SELECT coalesce(max(seq), 0), false FROM labelhost_label_events";
                self.query(what, sql, &[]).await?
            }
            Some(after) => {
                let sql = "SELECT coalesce(max(seq), $1), coalesce(bool_or(host <> $2), false) \
                           FROM labelhost_label_events WHERE seq > $1";
                self.query(what, sql, &[&after, &self.host]).await?
            }
        };
        // An aggregate: always one row.
        Ok(rows
            .first()
            .map_or((after.unwrap_or(0), false), |r| (r.get(0), r.get(1))))
    }
}

/// Where the loop stands between rounds.
#[derive(Default)]
struct Seen {
    models: i64,
    labels: Option<i64>,
    info: i64,
}

/// One round of the loop.
async fn round(cluster: &Cluster, shared: &Shared, seen: &mut Seen) -> Result<()> {
    cluster.heartbeat(false).await?;
    for id in cluster.stops_asked().await? {
        tracing::info!(job = %id, "stop asked by another host");
        shared.jobs.stop(Kind::Train, &id);
    }
    shared.jobs.set_others(cluster.others_training().await?);
    let dirs = shared.clone();
    let (last, written) = cluster
        .fetch_models(seen.models, &move |app| dirs.model_dir_of(app))
        .await?;
    seen.models = last;
    for file in written {
        tracing::info!(%file, "model published by another host");
    }
    let (last, others_saved) = cluster.labels_after(seen.labels).await?;
    if others_saved && shared.datastore.is_remote() {
        let store = shared.datastore.clone();
        match tokio::task::spawn_blocking(move || store.sync_remote()).await {
            Ok(Err(e)) => tracing::warn!("DICOMweb search after another host's label: {e}"),
            Ok(Ok(_)) => tracing::debug!("labels of other hosts read"),
            Err(e) => tracing::warn!("DICOMweb search: {e}"),
        }
    }
    seen.labels = Some(last);
    if shared.datastore.is_remote() {
        let (last, changed) = cluster.shared_info_after(seen.info).await?;
        seen.info = last;
        if !changed.is_empty() {
            let store = shared.datastore.clone();
            let merged = tokio::task::spawn_blocking(move || {
                for (image, info) in changed {
                    // An image this host does not list (yet): its next search brings it.
                    if let Err(e) = store.merge_image_info_here(&image, info) {
                        tracing::debug!(%image, "shared info not merged: {e}");
                    }
                }
            });
            let _ = merged.await;
        }
    }
    Ok(())
}

/// Starts this host's loop (every `every`) and the writer of its training records; the
/// job records of `shared` are mirrored to the store from now on.
pub fn spawn_watch(cluster: Arc<Cluster>, shared: Shared, every: Duration) {
    if shared.datastore.is_remote() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        shared.datastore.share_image_info(tx);
        let writer = cluster.clone();
        tokio::spawn(async move {
            while let Some((image, info)) = rx.recv().await {
                if let Err(e) = writer.share_info(&image, &info).await {
                    tracing::warn!("{e}");
                }
            }
        });
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Record>();
    shared.jobs.mirror_training(tx);
    let writer = cluster.clone();
    tokio::spawn(async move {
        while let Some(mut record) = rx.recv().await {
            // Only the latest of a burst (progress reports) needs writing.
            while let Ok(next) = rx.try_recv() {
                if next.id != record.id {
                    if let Err(e) = writer.write_record(&record).await {
                        tracing::warn!("{e}");
                    }
                }
                record = next;
            }
            if let Err(e) = writer.write_record(&record).await {
                tracing::warn!("{e}");
            }
        }
    });
    tokio::spawn(async move {
        let mut seen = Seen::default();
        loop {
            if let Err(e) = round(&cluster, &shared, &mut seen).await {
                tracing::warn!("{e}");
            }
            tokio::time::sleep(every).await;
        }
    });
}
