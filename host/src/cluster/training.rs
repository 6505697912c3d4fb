//! Training jobs across hosts: every host writes its training records to the store and
//! reads the others', so `GET /train/` on any host reports the job wherever it runs; one
//! job runs at a time across the hosts (the store's unique index on `RUNNING`), a job
//! whose host stopped reporting is marked ERROR by the others, and a stop asked on one
//! host reaches the host running it.

use super::{is_unique_violation, store_error, Cluster};
use crate::jobs::{Record, Status};
use crate::Result;
use serde_json::Value;

/// The store's kind column for training records (the only kind shared).
const TRAIN: &str = "train";

/// What the store answered a job asking to run.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// It runs now; this host holds the cluster's training.
    Go,
    /// Another job runs (on the named host); ask again later.
    Busy(String),
    /// It was stopped or is gone: do not run it.
    Gone,
}

fn status_text(s: Status) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Cluster {
    /// The host whose training is running, if any.
    async fn running_host(&self) -> Result<String> {
        let rows = self
            .query(
                "reading jobs",
                "SELECT host FROM labelhost_jobs WHERE kind = $1 AND status = 'RUNNING'",
                &[&TRAIN],
            )
            .await?;
        Ok(rows
            .first()
            .map_or_else(|| "another host".to_owned(), |r| r.get(0)))
    }

    /// Records a new training job of this host, running at once when `run_now` (else
    /// waiting for [`Cluster::take_turn`]). [`Turn::Busy`] when it was to run now and
    /// another runs: then nothing is recorded.
    pub async fn add_training(&self, record: &Record, run_now: bool) -> Result<Turn> {
        let mut record = record.clone();
        if run_now {
            record.status = Status::Running;
        }
        let json = serde_json::to_value(&record).unwrap_or(Value::Null);
        let added = self
            .client()
            .await?
            .execute(
                "INSERT INTO labelhost_jobs (id, kind, host, status, record) VALUES ($1, $2, $3, $4, $5)",
                &[&record.id, &TRAIN, &self.host, &status_text(record.status), &json],
            )
            .await;
        match added {
            Ok(_) => Ok(Turn::Go),
            Err(e) if is_unique_violation(&e) => Ok(Turn::Busy(self.running_host().await?)),
            Err(e) => Err(store_error("recording a job", &e)),
        }
    }

    /// Moves a waiting job of this host to RUNNING when no other job runs.
    pub async fn take_turn(&self, id: &str) -> Result<Turn> {
        let moved = self
            .client()
            .await?
            .execute(
                "UPDATE labelhost_jobs SET status = 'RUNNING', heartbeat = now(), \
                 record = jsonb_set(record, '{status}', '\"RUNNING\"') \
                 WHERE id = $1 AND host = $2 AND status IN ('SUBMITTED', 'RUNNING') \
                 AND NOT stop_requested",
                &[&id, &self.host],
            )
            .await;
        match moved {
            Ok(1) => Ok(Turn::Go),
            Ok(_) => Ok(Turn::Gone),
            Err(e) if is_unique_violation(&e) => Ok(Turn::Busy(self.running_host().await?)),
            Err(e) => Err(store_error("starting a job", &e)),
        }
    }

    /// Writes this host's record as it now is (status, progress, result).
    pub async fn write_record(&self, record: &Record) -> Result<()> {
        let json = serde_json::to_value(record).unwrap_or(Value::Null);
        self.execute(
            "writing a job record",
            "UPDATE labelhost_jobs SET status = $3, record = $4, heartbeat = now() \
                 WHERE id = $1 AND host = $2",
            &[&record.id, &self.host, &status_text(record.status), &json],
        )
        .await?;
        Ok(())
    }

    /// The other hosts' training records, oldest first (the latest 100).
    pub async fn others_training(&self) -> Result<Vec<Record>> {
        let rows = self
            .query(
                "reading jobs",
                "SELECT record FROM (SELECT record, created FROM labelhost_jobs \
                 WHERE kind = $1 AND host <> $2 ORDER BY created DESC LIMIT 100) r ORDER BY created",
                &[&TRAIN, &self.host],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_value(r.get::<_, Value>(0)).ok())
            .collect())
    }

    /// Asks the host running job `id` to stop it; answers whether such a job was active.
    pub async fn request_stop(&self, id: &str) -> Result<bool> {
        let n = self
            .execute(
                "stopping a job",
                "UPDATE labelhost_jobs SET stop_requested = true \
                 WHERE id = $1 AND status IN ('RUNNING', 'SUBMITTED')",
                &[&id],
            )
            .await?;
        Ok(n > 0)
    }

    /// This host's active jobs another host asked to stop.
    pub(super) async fn stops_asked(&self) -> Result<Vec<String>> {
        let rows = self
            .query(
                "reading jobs",
                "SELECT id FROM labelhost_jobs WHERE host = $1 AND stop_requested \
                 AND status IN ('RUNNING', 'SUBMITTED')",
                &[&self.host],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Keeps this host's active jobs alive and marks ERROR every active job whose host
    /// stopped reporting (it died); at start (`restarted`, before the host takes
    /// requests), this host's own active jobs from before are marked so too.
    pub(super) async fn heartbeat(&self, restarted: bool) -> Result<()> {
        let fail =
            "UPDATE labelhost_jobs SET status = 'ERROR', record = jsonb_set(jsonb_set(record, \
             '{status}', '\"ERROR\"'), '{details}', coalesce(record->'details', '[]'::jsonb) \
             || to_jsonb('interrupted: host ' || host || ' stopped reporting'::text)) \
             WHERE status IN ('RUNNING', 'SUBMITTED')";
        if restarted {
            let own = format!("{fail} AND host = $1");
            self.execute("marking interrupted jobs", &own, &[&self.host])
                .await?;
        }
        self.execute(
            "heartbeat",
            "UPDATE labelhost_jobs SET heartbeat = now() WHERE host = $1 \
             AND status IN ('RUNNING', 'SUBMITTED')",
            &[&self.host],
        )
        .await?;
        let stale = format!("{fail} AND heartbeat < now() - make_interval(secs => $1)");
        self.execute("marking stale jobs", &stale, &[&self.stale_secs])
            .await?;
        Ok(())
    }
}
