//! MONAI's supervised loop over a [`BasicTrainTask`]: epochs of patch batches trained by the
//! host, validation by sliding window with mean Dice, early stopping, checkpoints, the best
//! model published, MONAI Label's train stats reported to the host after every step (where
//! a stop request is noticed) and written after every epoch.

use super::{
    dataset::{self, CaseStore},
    outputs::{paths, publish_copy, write_json, Progress},
    sampler::{Batch, Rng},
    validate::validate,
    BasicTrainTask, TrainRequest,
};
use crate::sdk::{
    error::{Error, Result},
    host::Host,
    DType, ErrorCode,
};
use serde_json::{json, Value};
use std::{
    path::PathBuf,
    sync::{mpsc, Arc},
    time::Instant,
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
    let custom_val = task.val_pre_transforms(req).is_some();
    let val_transforms = || {
        task.val_pre_transforms(req)
            .unwrap_or_else(|| task.train_pre_transforms(req))
    };
    // Validating on the training cases with the train pre-processing: one store serves
    // both, so no case is pre-processed or cached twice.
    let own_val = custom_val || val_set != train_set;
    let mut store = make(task.train_pre_transforms(req), train_set);
    let mut val_store = own_val.then(|| make(val_transforms(), val_set));
    let mut bad = store.drop_bad_cases()?;
    if let Some(v) = &mut val_store {
        bad.extend(v.drop_bad_cases()?);
    }
    let mut skipped: Vec<String> = Vec::new();
    for bad in bad {
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
    let store = Arc::new(store);
    // No usable validation case: validate on the training cases.
    let val_store = match val_store {
        Some(v) if v.len() > 0 => Arc::new(v),
        _ if custom_val => Arc::new(make(val_transforms(), store.samples().to_vec())),
        _ => store.clone(),
    };
    if labels.is_empty() {
        return Err(Error::app("the task names no label above 0 to train"));
    }

    // The network, its optimiser, loss and schedule.
    let aug = task.train_augmentation(req);
    let steps_per_epoch =
        (store.len() * aug.num_samples.max(1)).div_ceil(req.train_batch_size) as u64;
    let mut total_iterations = steps_per_epoch.saturating_mul(req.max_epochs);
    if let Some(cap) = req.max_iterations {
        total_iterations = total_iterations.min(cap);
    }
    let mut lr_scheduler = task.lr_scheduler(req);
    if lr_scheduler.get("total_steps").is_none() {
        lr_scheduler["total_steps"] = json!(total_iterations);
    }
    // MONAI's LrScheduleHandler steps a StepLR once per epoch unless told otherwise; the
    // host steps per iteration.
    let epoch_level = lr_scheduler.get("epoch_level") != Some(&Value::Bool(false));
    if let (true, Some(size)) = (
        epoch_level,
        lr_scheduler.get("step_size").and_then(Value::as_u64),
    ) {
        lr_scheduler["step_size"] = json!(size.saturating_mul(steps_per_epoch));
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
    let clicks = task.click_simulation(req);
    let mut click_rng = Rng::new(req.seed.wrapping_add(1));
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
    let mut p = Progress::new(
        req.max_epochs,
        total_iterations,
        task.train_key_metric(),
        task.val_key_metric(),
    );
    let (mut stopped, mut early) = (false, false);
    let (mut loss_sum, mut dice_sum, mut in_epoch, mut without_gain) = (0f64, 0f64, 0u64, 0i64);
    let (mut dice_n, mut step_secs, mut wait_secs) = (0u64, 0f64, 0f64);
    let mut waited = Instant::now();
    let mut saved: Vec<PathBuf> = Vec::new();
    let outcome: Result<()> = (|| {
        for item in batches.iter() {
            let (e, batch) = item?;
            if e != p.epoch {
                p.epoch = e;
                (loss_sum, dice_sum, in_epoch) = (0.0, 0.0, 0);
                (dice_n, step_secs, wait_secs) = (0, 0.0, 0.0);
            }
            wait_secs += waited.elapsed().as_secs_f64();
            let x = match &clicks {
                Some(sim) => {
                    let (shape, input) =
                        sim.guide(&exec, &model, &batch, &req.device, &mut click_rng)?;
                    exec.tensor_f32(&shape, &input, &req.device)?
                }
                None => exec.tensor_f32(&batch.shape, &batch.image, &req.device)?,
            };
            let y = exec.tensor(DType::U8, &batch.shape, batch.label, &req.device)?;
            let out = model.step(&[&x], &[&y])?;
            drop((x, y));
            step_secs += out.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
            p.iteration += 1;
            in_epoch += 1;
            loss_sum += out.get("loss").and_then(Value::as_f64).unwrap_or(f64::NAN);
            // Labels missing from a batch's target come as null (NaN) and are left out.
            let dice: Vec<f64> = out
                .get("dice")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            if !dice.is_empty() {
                dice_sum += dice.iter().sum::<f64>() / dice.len() as f64;
                dice_n += 1;
            }
            let end_of_epoch = in_epoch == steps_per_epoch || p.iteration == total_iterations;
            if !end_of_epoch {
                let s = p.stats(false);
                if !report(&s, None) {
                    stopped = true;
                    return Ok(());
                }
                waited = Instant::now();
                continue;
            }
            let mean_dice = dice_sum / dice_n.max(1) as f64;
            p.train.insert(
                "iteration_seconds".into(),
                json!(step_secs / in_epoch as f64),
            );
            p.train.insert(
                "data_wait_seconds".into(),
                json!(wait_secs / in_epoch as f64),
            );
            p.train.insert(task.train_key_metric(), json!(mean_dice));
            p.train
                .insert("train_loss".into(), json!(loss_sum / in_epoch as f64));
            p.train
                .insert("lr".into(), out.get("lr").cloned().unwrap_or(Value::Null));
            p.best_train.offer(mean_dice, p.epoch);
            let last = p.epoch == req.max_epochs || p.iteration == total_iterations;
            if p.epoch.is_multiple_of(val_interval) || last {
                let (v, per) = validate(
                    &exec,
                    &model,
                    &val_store,
                    &labels,
                    (&inferer, clicks.as_ref()),
                    &req.device,
                )?;
                p.eval = per;
                p.eval.insert(task.val_key_metric(), json!(v));
                if p.best_val.offer(v, p.epoch) {
                    without_gain = 0;
                    let best_file = paths.output.join(&settings.key_metric_filename);
                    model.save(&best_file)?;
                    publish_copy(&best_file, &paths.publish)?;
                } else {
                    without_gain += 1;
                }
            }
            if p.epoch.is_multiple_of(settings.train_save_interval.max(1)) {
                let file = paths
                    .output
                    .join(format!("checkpoint_epoch={}.pt", p.epoch));
                model.save(&file)?;
                saved.push(file);
                if saved.len() > settings.n_saved.max(1) {
                    let _ = std::fs::remove_file(saved.remove(0));
                }
            }
            let s = p.stats(false);
            let _ = write_json(&paths.output.join("train_stats.json"), &s);
            if let Value::Object(m) = &s {
                handlers.iter().for_each(|h| h.epoch_completed(host, m));
            }
            let line = format!(
                "epoch {}/{} iteration {}/{total_iterations} loss {:.4} {} {:.4}{}",
                p.epoch,
                req.max_epochs,
                p.iteration,
                loss_sum / in_epoch as f64,
                task.train_key_metric(),
                mean_dice,
                p.eval
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
            if p.iteration == total_iterations {
                return Ok(());
            }
            waited = Instant::now();
        }
        Ok(())
    })();
    drop(batches);
    let worker_ended = worker.join();
    outcome?;
    let complete = stopped || early || p.iteration == total_iterations;
    if worker_ended.is_err() || !complete {
        return Err(Error::new(
            ErrorCode::APP_TRAIN_FAILED,
            format!(
                "the batches ran out after {} of {total_iterations} iterations (the sampler failed)",
                p.iteration
            ),
        ));
    }
    model.save(&paths.output.join(&settings.final_filename))?;
    if p.best_val.value.is_none() && !stopped {
        // No validation ran: the last weights are the published ones.
        publish_copy(&paths.output.join(&settings.final_filename), &paths.publish)?;
    }
    let mut s = p.stats(!stopped);
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
            "{how} after {} epochs, {} iterations, best {} {}",
            p.epoch,
            p.iteration,
            task.val_key_metric(),
            p.best_val.json()
        )),
    );
    Ok(s)
}
