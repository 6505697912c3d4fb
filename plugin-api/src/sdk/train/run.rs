//! MONAI's supervised loop over a [`BasicTrainTask`]: epochs of patch batches trained by the
//! host, validation by sliding window with mean Dice, early stopping, checkpoints, the best
//! model published, MONAI Label's train stats reported to the host after every step (where
//! a stop request is noticed) and written after every epoch.

use super::{
    dataset::{self, CaseStore},
    outputs::{hms, paths, publish_copy, write_json, Best},
    sampler::{Batch, Rng},
    validate::validate,
    BasicTrainTask, TrainRequest,
};
use crate::sdk::{
    error::{Error, Result},
    host::Host,
    DType, ErrorCode,
};
use serde_json::{json, Map, Value};
use std::{
    path::PathBuf,
    sync::{mpsc, Arc},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

/// The batches of one run, made on a second thread while the host trains.
fn spawn_batches(
    store: Arc<CaseStore>,
    aug: super::Augmentation,
    batch_size: usize,
    epochs: u64,
    seed: u64,
) -> (
    mpsc::Receiver<Result<(u64, Batch)>>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::sync_channel(2);
    let worker = std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        for epoch in 1..=epochs {
            let mut order: Vec<usize> = (0..store.len())
                .flat_map(|i| std::iter::repeat_n(i, aug.num_samples.max(1)))
                .collect();
            rng.shuffle(&mut order);
            for chunk in order.chunks(batch_size) {
                let cases: Result<Vec<_>> = chunk.iter().map(|&i| store.get(i)).collect();
                let item = cases.map(|cases| {
                    let refs: Vec<&super::Case> = cases.iter().map(Arc::as_ref).collect();
                    (epoch, aug.batch(&refs, &mut rng))
                });
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    return;
                }
            }
        }
    });
    (rx, worker)
}

/// Runs a whole training job; answers its final train stats.
pub(super) fn train<T: BasicTrainTask>(task: &T, host: &Host, req: &TrainRequest) -> Result<Value> {
    let started = Instant::now();
    let start_ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let settings = task.settings();
    let paths = paths(task, host, req)?;
    let mut labels: Vec<(String, u8)> = task
        .labels()
        .into_iter()
        .filter_map(|(k, v)| Some((k, u8::try_from(v.as_u64()?).ok().filter(|v| *v > 0)?)))
        .collect();
    labels.sort_by_key(|(_, v)| *v);
    let known: Vec<u8> = labels.iter().map(|(_, v)| *v).collect();
    let report = |stats: &Value, line: Option<String>| -> bool {
        let mut r = json!({"stats": stats});
        if let Some(line) = line {
            host.log(
                crate::sdk::LogLevel::INFO,
                &format!("{}: {line}", req.trainer),
            );
            r["log"] = json!(line);
        }
        host.job_progress(req.job.as_deref(), &r)
    };

    // Data: labelled cases, checked and split; cases with bad labels are skipped.
    let all = dataset::datalist(host)?;
    if all.is_empty() {
        return Err(Error::new(
            ErrorCode::APP_TRAIN_FAILED,
            "no image has a final label to train on",
        ));
    }
    let (train_set, val_set) = task.partition_datalist(all, req);
    let budget = settings.cache_bytes / 2;
    let make = |t, s| CaseStore::new(host, t, s, &req.device, known.clone(), budget);
    let mut store = make(task.train_pre_transforms(req), train_set);
    let mut val_store = make(task.val_pre_transforms(req), val_set);
    let mut skipped: Vec<String> = Vec::new();
    for bad in [store.drop_bad_cases()?, val_store.drop_bad_cases()?].concat() {
        if !skipped.contains(&bad.message) {
            report(&json!({}), Some(format!("skipped {}", bad.message)));
            skipped.push(bad.message);
        }
    }
    if store.len() == 0 {
        return Err(Error::new(
            ErrorCode::APP_TRAIN_FAILED,
            format!("no usable training case: {}", skipped.join("; ")),
        ));
    }
    if val_store.len() == 0 {
        let samples = store.samples().to_vec();
        val_store = make(task.val_pre_transforms(req), samples);
    }
    let (store, val_store) = (Arc::new(store), val_store);

    // The network, its optimiser, loss and schedule.
    let aug = task.train_augmentation(req);
    let steps_per_epoch =
        (store.len() * aug.num_samples.max(1)).div_ceil(req.train_batch_size) as u64;
    let mut total_iterations = steps_per_epoch * req.max_epochs;
    if let Some(cap) = req.max_iterations {
        total_iterations = total_iterations.min(cap);
    }
    let mut lr_scheduler = task.lr_scheduler(req);
    if lr_scheduler.get("total_steps").is_none() {
        lr_scheduler["total_steps"] = json!(total_iterations);
    }
    let network = task.network(host)?;
    let start_from = match (req.pretrained, &settings.load_path) {
        (false, _) => network.clone(),
        (true, Some(p)) if p.is_file() => p.clone(),
        (true, _) => host
            .published_model(&req.trainer)
            .unwrap_or_else(|| network.clone()),
    };
    let config = json!({
        "optimizer": task.optimizer(req), "loss": task.loss_function(req),
        "lr_scheduler": lr_scheduler, "amp": req.amp && settings.amp,
        "init": if req.pretrained { "file" } else { "fresh" }, "seed": req.seed,
        "labels": known,
    });
    let exec = host.executor();
    let model = exec.trainable(&start_from, &req.device, &config)?;
    if let (Some(dict), true) = (&settings.load_dict, req.pretrained) {
        model.op(
            "load_weights",
            &json!({"path": dict, "strict": settings.load_strict}),
        )?;
    }
    let inferer = task.val_inferer(req);
    let handlers = task.train_handlers();
    let val_interval = if req.raw.contains_key("val_interval") {
        req.val_interval
    } else {
        settings.val_interval.max(1)
    };

    let (batches, worker) = spawn_batches(
        store.clone(),
        aug,
        req.train_batch_size,
        req.max_epochs,
        req.seed,
    );
    let (mut best_train, mut best_val) = (Best::default(), Best::default());
    let (mut iteration, mut epoch, mut stopped, mut early) = (0u64, 0u64, false, false);
    let (mut loss_sum, mut dice_sum, mut in_epoch, mut without_gain) = (0f64, 0f64, 0u64, 0i64);
    let (mut train_metrics, mut val_metrics) = (Map::new(), Map::new());
    let mut saved: Vec<PathBuf> = Vec::new();
    let stats = |epoch: u64,
                 iteration: u64,
                 train_m: &Map<String, Value>,
                 val_m: &Map<String, Value>,
                 bt: Best,
                 bv: Best,
                 done: bool| {
        let secs = started.elapsed().as_secs_f64();
        let best = if bv.value.is_some() { bv } else { bt };
        let mut s = json!({
            "rank": 0, "current_epoch": epoch, "current_iteration": iteration,
            "total_epochs": req.max_epochs, "total_iterations": total_iterations,
            "epoch": epoch, "start_ts": start_ts,
            "best_metric": best.json(), "best_metric_epoch": best.epoch,
            "train": {"metrics": train_m, "key_metric_name": task.train_key_metric(),
                "best_metric": bt.json(), "best_metric_epoch": bt.epoch},
            "eval": {"metrics": val_m, "key_metric_name": task.val_key_metric(),
                "best_metric": bv.json(), "best_metric_epoch": bv.epoch},
        });
        s[if done { "total_time" } else { "current_time" }] = json!(hms(secs));
        s
    };
    let outcome: Result<()> = (|| {
        for item in batches.iter() {
            let (e, batch) = item?;
            if e != epoch {
                epoch = e;
                (loss_sum, dice_sum, in_epoch) = (0.0, 0.0, 0);
            }
            let x = exec.tensor_f32(&batch.shape, &batch.image, &req.device)?;
            let y = exec.tensor(DType::U8, &batch.shape, batch.label, &req.device)?;
            let out = model.step(&[&x], &[&y])?;
            drop((x, y));
            iteration += 1;
            in_epoch += 1;
            loss_sum += out.get("loss").and_then(Value::as_f64).unwrap_or(f64::NAN);
            let dice: Vec<f64> = out
                .get("dice")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            dice_sum += dice.iter().sum::<f64>() / dice.len().max(1) as f64;
            let end_of_epoch = in_epoch == steps_per_epoch || iteration == total_iterations;
            if !end_of_epoch {
                let s = stats(
                    epoch,
                    iteration,
                    &train_metrics,
                    &val_metrics,
                    best_train,
                    best_val,
                    false,
                );
                if !report(&s, None) {
                    stopped = true;
                    return Ok(());
                }
                continue;
            }
            let mean_dice = dice_sum / in_epoch as f64;
            train_metrics.insert(task.train_key_metric(), json!(mean_dice));
            train_metrics.insert("train_loss".into(), json!(loss_sum / in_epoch as f64));
            train_metrics.insert("lr".into(), out.get("lr").cloned().unwrap_or(Value::Null));
            best_train.offer(mean_dice, epoch);
            let last = epoch == req.max_epochs || iteration == total_iterations;
            if epoch % val_interval == 0 || last {
                let (v, per) = validate(&exec, &model, &val_store, &labels, &inferer, &req.device)?;
                val_metrics = per;
                val_metrics.insert(task.val_key_metric(), json!(v));
                if best_val.offer(v, epoch) {
                    without_gain = 0;
                    let best_file = paths.output.join(&settings.key_metric_filename);
                    model.save(&best_file)?;
                    publish_copy(&best_file, &paths.publish)?;
                } else {
                    without_gain += 1;
                }
            }
            if epoch % settings.train_save_interval.max(1) == 0 {
                let file = paths.output.join(format!("checkpoint_epoch={epoch}.pt"));
                model.save(&file)?;
                saved.push(file);
                if saved.len() > settings.n_saved.max(1) {
                    let _ = std::fs::remove_file(saved.remove(0));
                }
            }
            let s = stats(
                epoch,
                iteration,
                &train_metrics,
                &val_metrics,
                best_train,
                best_val,
                false,
            );
            let _ = write_json(&paths.output.join("train_stats.json"), &s);
            if let Value::Object(m) = &s {
                handlers.iter().for_each(|h| h.epoch_completed(host, m));
            }
            let line = format!(
                "epoch {epoch}/{} iteration {iteration}/{total_iterations} loss {:.4} {} {:.4}{}",
                req.max_epochs,
                loss_sum / in_epoch as f64,
                task.train_key_metric(),
                mean_dice,
                val_metrics
                    .get(&task.val_key_metric())
                    .and_then(Value::as_f64)
                    .map(|v| format!(" {} {v:.4}", task.val_key_metric()))
                    .unwrap_or_default(),
            );
            if !report(&s, Some(line)) {
                stopped = true;
                return Ok(());
            }
            if req.early_stop_patience > 0 && without_gain >= req.early_stop_patience {
                early = true;
                return Ok(());
            }
            if iteration == total_iterations {
                return Ok(());
            }
        }
        Ok(())
    })();
    drop(batches);
    let _ = worker.join();
    outcome?;
    model.save(&paths.output.join(&settings.final_filename))?;
    if best_val.value.is_none() {
        // No validation ran: the last weights are the published ones.
        publish_copy(&paths.output.join(&settings.final_filename), &paths.publish)?;
    }
    let mut s = stats(
        epoch,
        iteration,
        &train_metrics,
        &val_metrics,
        best_train,
        best_val,
        !stopped,
    );
    s["stopped"] = json!(stopped);
    s["early_stopped"] = json!(early);
    s["published"] = json!(paths.publish.to_string_lossy());
    s["output_dir"] = json!(paths.output.to_string_lossy());
    s["model_dict_key"] = json!(settings.model_dict_key);
    s["cache"] = json!({"train": store.stats(), "val": val_store.stats()});
    s["skipped"] = json!(skipped);
    s["model"] = Value::Object(model.op("info", &json!({}))?);
    write_json(&paths.output.join("train_stats.json"), &s)?;
    write_json(&paths.stats, &s)?;
    let how = if stopped {
        "stopped"
    } else if early {
        "stopped early"
    } else {
        "finished"
    };
    report(
        &s,
        Some(format!(
            "{how} after {epoch} epochs, {iteration} iterations, best {} {}",
            task.val_key_metric(),
            best_val.json()
        )),
    );
    Ok(s)
}
