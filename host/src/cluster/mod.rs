//! Several hosts as one service (`serve --cluster postgres://...`): what they must agree on
//! lives in one PostgreSQL database — active-learning claims ([`claims`]), training jobs
//! (one runs across the hosts, every host reports its record: [`training`]), the models a
//! training published ([`models`]), image info over a DICOMweb server ([`info`]) and label
//! events (a DICOMweb host re-reads the server's SEG series when another host saved a label). Images and labels stay where they are (the
//! shared studies folder or the DICOMweb server); [`watch`] is each host's loop over it.

mod claims;
mod info;
mod models;
mod training;
mod watch;

pub use training::Turn;
pub use watch::spawn_watch;

use crate::{Error, Result};
use std::sync::Arc;
use tokio_postgres::{Client, NoTls, Row};

/// The tables, created by the first host that connects (under an advisory lock, so hosts
/// starting together do not race). Claims: one row per image served, fresh while `ts` is
/// within the claim time, `done` once its final label is saved (never won again, no longer
/// listed). Jobs: every host's training records; at most one `RUNNING` (the
/// partial unique index is the cluster-wide "one training at a time"). Models: a trained
/// app's published files, newest `seq` last. Image info: what hosts over a DICOMweb server
/// merged into a remote image's info. Label events: a final label saved, by host.
const SCHEMA: &str = "
SELECT pg_advisory_lock(7411207);
CREATE TABLE IF NOT EXISTS labelhost_claims (
    image text PRIMARY KEY, client text, strategy text NOT NULL, ts bigint NOT NULL);
ALTER TABLE labelhost_claims ADD COLUMN IF NOT EXISTS done boolean NOT NULL DEFAULT false;
CREATE TABLE IF NOT EXISTS labelhost_jobs (
    id text PRIMARY KEY, kind text NOT NULL, host text NOT NULL, status text NOT NULL,
    record jsonb NOT NULL, stop_requested boolean NOT NULL DEFAULT false,
    heartbeat timestamptz NOT NULL DEFAULT now(), created bigserial);
CREATE UNIQUE INDEX IF NOT EXISTS labelhost_one_running_job
    ON labelhost_jobs (kind) WHERE status = 'RUNNING';
CREATE TABLE IF NOT EXISTS labelhost_models (
    app text NOT NULL, file text NOT NULL, sha256 text NOT NULL, bytes bytea NOT NULL,
    host text NOT NULL, seq bigserial, PRIMARY KEY (app, file));
CREATE TABLE IF NOT EXISTS labelhost_image_info (
    image text PRIMARY KEY, info jsonb NOT NULL, host text NOT NULL, seq bigserial);
CREATE TABLE IF NOT EXISTS labelhost_label_events (
    seq bigserial PRIMARY KEY, image text NOT NULL, tag text NOT NULL, host text NOT NULL);
SELECT pg_advisory_unlock(7411207);
";

/// One host's handle on the cluster store: its name among the hosts and a connection,
/// made again when it drops (the database restarted, the network blinked).
pub struct Cluster {
    url: String,
    host: String,
    /// After how long without a heartbeat another host's active job is taken for dead:
    /// ten rounds of this host's loop, at least 3 s.
    stale_secs: f64,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

fn store_error(what: &str, e: &tokio_postgres::Error) -> Error {
    let why = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned());
    Error::BadGateway(format!("cluster store: {what}: {why}"))
}

impl Cluster {
    /// Connects to the store at `url` (a `postgres://` URL or key=value string) as host
    /// `host`, whose loop ([`spawn_watch`]) runs every `poll`; creates the tables when
    /// missing.
    pub async fn connect(url: &str, host: &str, poll: std::time::Duration) -> Result<Arc<Self>> {
        if host.is_empty() {
            return Err(Error::BadRequest("--host-name: may not be empty".into()));
        }
        let cluster = Arc::new(Cluster {
            url: url.to_owned(),
            host: host.to_owned(),
            stale_secs: (poll.as_secs_f64() * 10.0).max(3.0),
            client: tokio::sync::Mutex::new(None),
        });
        let client = cluster.client().await?;
        client
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| store_error("creating the tables", &e))?;
        // Jobs this host left active when it stopped are over; before it takes requests.
        cluster.heartbeat(true).await?;
        Ok(cluster)
    }

    /// This host's name among the hosts.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The connection, made (again) when there is none or it closed.
    async fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(|e| store_error("cannot connect", &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("cluster store connection: {e}");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs one statement; `what` names it in the error. Answers the rows it changed.
    async fn execute(&self, what: &str, sql: &str, params: Params<'_>) -> Result<u64> {
        let client = self.client().await?;
        client
            .execute(sql, params)
            .await
            .map_err(|e| store_error(what, &e))
    }

    /// The rows of one query; `what` names it in the error.
    async fn query(&self, what: &str, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let client = self.client().await?;
        client
            .query(sql, params)
            .await
            .map_err(|e| store_error(what, &e))
    }
}

/// A statement's parameters.
type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

/// Whether `e` is PostgreSQL's unique violation (another host holds the row first).
fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}
