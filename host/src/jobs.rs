//! Background jobs (train, scoring, batch inference) with MONAI Label's task records:
//! `{id, status, request, start_ts, end_ts, details, result}`. One job of a kind runs at a
//! time (others wait when enqueued, else the API answers 429); records are kept in
//! `<studies>/.labelhost/jobs.json` so they survive a restart (a job that was running when
//! the server stopped is recorded as ERROR).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

/// The kinds of background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `/train/`
    Train,
    /// `/scoring/`
    Scoring,
    /// `/batch/infer`
    BatchInfer,
}

impl Kind {
    /// MONAI Label's word for it in messages ("Train Task is Already Running").
    pub fn title(self) -> &'static str {
        match self {
            Kind::Train => "Train",
            Kind::Scoring => "Scoring",
            Kind::BatchInfer => "Batch_infer",
        }
    }
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Accepted, waiting to run.
    Submitted,
    /// Running.
    Running,
    /// Finished.
    Done,
    /// Failed.
    Error,
    /// Stopped by `DELETE`.
    Stopped,
}

/// MONAI Label's task record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Unique id.
    pub id: String,
    /// Its state.
    pub status: Status,
    /// What was asked.
    pub request: Value,
    /// `YYYY-mm-dd HH:MM:SS` (UTC).
    pub start_ts: String,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ts: Option<String>,
    /// The last 20 log lines.
    pub details: Vec<String>,
    /// What the job returned (labelhost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The latest progress a running job reported (MONAI Label's `train_stats` for
    /// training), kept after it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_stats: Option<Value>,
    /// One point per epoch a training job finished (labelhost; the dashboard's curves):
    /// `{"epoch", "train": {metric: value}, "eval": {metric: value}}` from its stats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Value>,
}

impl Record {
    /// A new SUBMITTED record of `request`, started now.
    pub fn submitted(id: String, request: Value) -> Record {
        Record {
            id,
            status: Status::Submitted,
            request,
            start_ts: timestamp(),
            end_ts: None,
            details: Vec::new(),
            result: None,
            train_stats: None,
            history: Vec::new(),
        }
    }
}

/// The most epochs a record's history keeps (the latest).
const MAX_HISTORY: usize = 2000;

/// An epoch's point from train stats (MONAI Label's layout: `epoch`, `train.metrics`,
/// `eval.metrics`), if they name an epoch.
fn epoch_point(stats: &Value) -> Option<Value> {
    let epoch = stats.get("epoch").and_then(Value::as_u64)?;
    let metrics = |k: &str| {
        stats
            .get(k)
            .and_then(|v| v.get("metrics"))
            .filter(|m| m.is_object())
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}))
    };
    Some(serde_json::json!({"epoch": epoch, "train": metrics("train"), "eval": metrics("eval")}))
}

/// Adds an epoch's point, replacing the last one when it is of the same epoch.
fn record_epoch(history: &mut Vec<Value>, point: Value) {
    if history.last().and_then(|p| p.get("epoch")) == point.get("epoch") {
        history.pop();
    }
    history.push(point);
    let excess = history.len().saturating_sub(MAX_HISTORY);
    history.drain(..excess);
}

/// `YYYY-mm-dd HH:MM:SS` in UTC.
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Every kind's records, oldest first, and the file they are kept in.
pub struct Jobs {
    file: PathBuf,
    records: Mutex<BTreeMap<Kind, Vec<Record>>>,
    /// One job of each kind runs at a time.
    pub gates: BTreeMap<Kind, Arc<tokio::sync::Mutex<()>>>,
    saving: Mutex<()>,
    /// With a cluster store: where this host's changed training records go
    /// (`cluster::watch` writes them to the store).
    mirror: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Record>>,
    /// With a cluster store: the other hosts' training records, as last read.
    others: Mutex<Vec<Record>>,
}

const KEEP: usize = 100;

impl Jobs {
    /// Loads `<studies>/.labelhost/jobs.json`; jobs left running by a previous process
    /// become ERROR.
    pub fn open(studies: &Path) -> Self {
        Self::open_file(studies.join(".labelhost").join("jobs.json"))
    }

    /// Loads the records kept in `file` (hosts sharing a studies folder keep one each).
    pub fn open_file(file: PathBuf) -> Self {
        let mut records: BTreeMap<Kind, Vec<Record>> = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                // Keep an unreadable file for inspection instead of overwriting it.
                let aside = file.with_extension("json.unreadable");
                tracing::warn!("{}: {e}; kept as {}", file.display(), aside.display());
                let _ = std::fs::rename(&file, &aside);
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        for r in records.values_mut().flatten() {
            if matches!(r.status, Status::Submitted | Status::Running) {
                r.status = Status::Error;
                r.end_ts = Some(timestamp());
                r.details
                    .push("interrupted: the server stopped while this job was running".into());
            }
        }
        let gates = [Kind::Train, Kind::Scoring, Kind::BatchInfer]
            .into_iter()
            .map(|k| (k, Arc::new(tokio::sync::Mutex::new(()))))
            .collect();
        let jobs = Jobs {
            file,
            records: Mutex::new(records),
            gates,
            saving: Mutex::new(()),
            mirror: std::sync::OnceLock::new(),
            others: Mutex::new(Vec::new()),
        };
        jobs.save();
        jobs
    }

    /// Sends every later change of a training record to `tx` (the cluster store's writer).
    pub fn mirror_training(&self, tx: tokio::sync::mpsc::UnboundedSender<Record>) {
        let _ = self.mirror.set(tx);
    }

    /// Replaces the other hosts' training records (listed with this host's).
    pub fn set_others(&self, records: Vec<Record>) {
        if let Ok(mut others) = self.others.lock() {
            *others = records;
        }
    }

    /// Whether `id` is a record of another host.
    pub fn is_others(&self, id: &str) -> bool {
        self.others
            .lock()
            .is_ok_and(|o| o.iter().any(|r| r.id == id))
    }

    /// Whether changes of `kind`'s records go to a cluster store.
    fn mirrors(&self, kind: Kind) -> bool {
        kind == Kind::Train && self.mirror.get().is_some()
    }

    fn mirror(&self, kind: Kind, record: &Record) {
        if let (true, Some(tx)) = (self.mirrors(kind), self.mirror.get()) {
            let _ = tx.send(record.clone());
        }
    }

    /// Stops a submitted or running job as `DELETE` does (a training loop ends within
    /// one iteration; other plugin calls finish and their result is dropped); a finished
    /// record stays as it is. `None` when it is not this host's.
    pub fn stop(&self, kind: Kind, id: &str) -> Option<Record> {
        self.update(kind, id, |r| {
            if !matches!(r.status, Status::Running | Status::Submitted) {
                return;
            }
            r.status = Status::Stopped;
            r.end_ts = Some(timestamp());
            r.details.push(
                "stopped by request (a training loop ends within one iteration; other plugin calls finish and their result is dropped)".into(),
            );
        })
    }

    fn save(&self) {
        // One save at a time, snapshot taken under the lock: a later state never loses the
        // rename race to an earlier one.
        let Ok(_saving) = self.saving.lock() else {
            return;
        };
        let Ok(text) = self.records.lock().map(|r| serde_json::to_vec_pretty(&*r)) else {
            return;
        };
        let Ok(text) = text else { return };
        if let Some(dir) = self.file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = self
            .file
            .with_extension(format!("json.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.file);
        }
    }

    /// Adds a SUBMITTED record; returns it.
    pub fn submit(&self, kind: Kind, id: String, request: Value) -> Record {
        let record = Record::submitted(id, request);
        self.add(kind, record.clone());
        record
    }

    /// Adds a record (the newest of its kind).
    pub fn add(&self, kind: Kind, record: Record) {
        if let Ok(mut all) = self.records.lock() {
            let list = all.entry(kind).or_default();
            list.push(record.clone());
            let excess = list.len().saturating_sub(KEEP);
            list.drain(..excess);
        }
        self.save();
        self.mirror(kind, &record);
    }

    /// Marks every submitted or running job stopped with `why` (a running one is told at
    /// its next progress report, as a `DELETE` would); answers how many.
    pub fn stop_all(&self, why: &str) -> usize {
        let mut stopped = Vec::new();
        if let Ok(mut all) = self.records.lock() {
            for (kind, list) in all.iter_mut() {
                for r in list {
                    if matches!(r.status, Status::Running | Status::Submitted) {
                        r.status = Status::Stopped;
                        r.end_ts = Some(timestamp());
                        r.details.push(why.to_owned());
                        stopped.push((*kind, r.clone()));
                    }
                }
            }
        }
        self.save();
        for (kind, r) in &stopped {
            self.mirror(*kind, r);
        }
        stopped.len()
    }

    /// Waits until no job of any kind runs, at most `limit`; answers whether they all ended.
    pub async fn wait_idle(&self, limit: std::time::Duration) -> bool {
        let all = async {
            for gate in self.gates.values() {
                drop(gate.clone().lock_owned().await);
            }
        };
        tokio::time::timeout(limit, all).await.is_ok()
    }

    /// Changes a record; `None` when it is gone.
    pub fn update(&self, kind: Kind, id: &str, f: impl FnOnce(&mut Record)) -> Option<Record> {
        let updated = self.records.lock().ok().and_then(|mut all| {
            let r = all.get_mut(&kind)?.iter_mut().find(|r| r.id == id)?;
            f(r);
            let excess = r.details.len().saturating_sub(20);
            r.details.drain(..excess);
            Some(r.clone())
        });
        self.save();
        if let Some(r) = &updated {
            self.mirror(kind, r);
        }
        updated
    }

    /// Takes a running job's progress report `{"stats": {...}, "log": "line"}` (both
    /// optional): the stats replace the record's `train_stats`, the line joins its details
    /// and the log. Answers whether the job should go on (`false` once it was stopped or
    /// is unknown). Only reports with a line are written to disk.
    pub fn progress(&self, id: &str, report: Value) -> bool {
        let line = report.get("log").and_then(Value::as_str).map(str::to_owned);
        let mut mirrored = None;
        let (go_on, changed) = match self.records.lock() {
            Ok(mut all) => {
                let found = all
                    .iter_mut()
                    .flat_map(|(k, list)| list.iter_mut().map(move |r| (*k, r)))
                    .find(|(_, r)| r.id == id);
                match found {
                    None => (false, false),
                    Some((kind, r)) => {
                        if let Some(stats) = report.get("stats") {
                            r.train_stats = Some(stats.clone());
                            // A report with a log line ends an epoch (the SDK's trainer
                            // logs once per epoch); the others are within one.
                            if let Some(point) = line.as_ref().and_then(|_| epoch_point(stats)) {
                                record_epoch(&mut r.history, point);
                            }
                        }
                        if let Some(line) = &line {
                            tracing::info!(job = id, "{line}");
                            r.details.push(line.clone());
                            let excess = r.details.len().saturating_sub(20);
                            r.details.drain(..excess);
                        }
                        // A copy only when a cluster store takes it (reports are many).
                        if self.mirrors(kind) {
                            mirrored = Some((kind, r.clone()));
                        }
                        (r.status == Status::Running, line.is_some())
                    }
                }
            }
            Err(_) => (true, false),
        };
        if changed {
            self.save();
        }
        if let Some((kind, r)) = mirrored {
            self.mirror(kind, &r);
        }
        go_on
    }

    /// The latest train stats reported for each trainer (`request.model`), newest job first.
    pub fn train_stats(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for r in self.list(Kind::Train).iter().rev() {
            let model = r.request.get("model").and_then(Value::as_str);
            if let (Some(model), Some(stats)) = (model, &r.train_stats) {
                out.entry(model.to_owned()).or_insert_with(|| stats.clone());
            }
        }
        out
    }

    /// The records of a kind, oldest first (by start time); with a cluster store,
    /// training records of every host.
    pub fn list(&self, kind: Kind) -> Vec<Record> {
        let mut list = self
            .records
            .lock()
            .map(|all| all.get(&kind).cloned().unwrap_or_default())
            .unwrap_or_default();
        if kind == Kind::Train {
            if let Ok(others) = self.others.lock() {
                if !others.is_empty() {
                    list.extend(others.iter().cloned());
                    list.sort_by(|a, b| a.start_ts.cmp(&b.start_ts));
                }
            }
        }
        list
    }

    /// The running record of a kind, else the oldest waiting one, if any.
    pub fn active(&self, kind: Kind) -> Option<Record> {
        let list = self.list(kind);
        let running = list.iter().rev().find(|r| r.status == Status::Running);
        running
            .or_else(|| list.iter().find(|r| r.status == Status::Submitted))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_restart_and_running_ones_become_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = Jobs::open(dir.path());
        jobs.submit(Kind::Scoring, "a".into(), serde_json::json!({"x": 1}));
        jobs.update(Kind::Scoring, "a", |r| r.status = Status::Done);
        jobs.submit(Kind::Scoring, "b".into(), Value::Null);
        jobs.update(Kind::Scoring, "b", |r| r.status = Status::Running);
        let again = Jobs::open(dir.path());
        let list = again.list(Kind::Scoring);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].status, Status::Done);
        assert_eq!(list[1].status, Status::Error);
        assert!(list[1].details[0].contains("interrupted"));
        assert!(again.active(Kind::Scoring).is_none());
        assert_eq!(timestamp().len(), 19);
    }

    #[test]
    fn progress_is_recorded_and_a_stopped_job_is_told_to_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = Jobs::open(dir.path());
        let request = serde_json::json!({"model": "net"});
        jobs.submit(Kind::Train, "t".into(), request);
        jobs.update(Kind::Train, "t", |r| r.status = Status::Running);
        let report = serde_json::json!({"stats": {"epoch": 1}, "log": "epoch 1/2"});
        assert!(jobs.progress("t", report));
        assert_eq!(jobs.train_stats()["net"]["epoch"], 1);
        jobs.update(Kind::Train, "t", |r| r.status = Status::Stopped);
        assert!(!jobs.progress("t", serde_json::json!({"stats": {"epoch": 2}})));
        assert!(!jobs.progress("unknown", Value::Null));
        let again = Jobs::open(dir.path());
        let r = &again.list(Kind::Train)[0];
        assert_eq!(r.details, vec!["epoch 1/2".to_owned()]);
        // Only reports with a line are written: the restart sees epoch 1's stats.
        assert_eq!(
            again.train_stats()["net"]["epoch"],
            1,
            "kept across a restart"
        );
    }

    #[test]
    fn each_finished_epoch_adds_one_point_to_the_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = Jobs::open(dir.path());
        jobs.submit(Kind::Train, "t".into(), serde_json::json!({"model": "net"}));
        jobs.update(Kind::Train, "t", |r| r.status = Status::Running);
        let stats = |epoch: u64, loss: f64, dice: f64| {
            serde_json::json!({"epoch": epoch,
                "train": {"metrics": {"train_loss": loss}},
                "eval": {"metrics": {"val_mean_dice": dice}}})
        };
        // Within an epoch (no line): no point.
        jobs.progress("t", serde_json::json!({"stats": stats(1, 0.9, 0.1)}));
        jobs.progress(
            "t",
            serde_json::json!({"stats": stats(1, 0.8, 0.2), "log": "epoch 1"}),
        );
        jobs.progress(
            "t",
            serde_json::json!({"stats": stats(1, 0.8, 0.2), "log": "again"}),
        );
        jobs.progress(
            "t",
            serde_json::json!({"stats": stats(2, 0.5, 0.6), "log": "epoch 2"}),
        );
        // A line with no epoch (a skipped case) adds nothing.
        jobs.progress("t", serde_json::json!({"stats": {}, "log": "skipped x"}));
        let again = Jobs::open(dir.path());
        let h = &again.list(Kind::Train)[0].history;
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h[0]["train"]["train_loss"], 0.8);
        assert_eq!(h[1]["eval"]["val_mean_dice"], 0.6);
    }
}
