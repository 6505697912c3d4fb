//! Training on the shared executor, end to end: final labels saved through the API, a
//! `BasicTrainTask` trained by the host from fresh weights, the best model published to the
//! infer task of the same name (served right away, after a hot swap and after a restart),
//! inference on another app answered while a job trains, stop requests, bad input.

use crate::support::{
    cache_dir, client, dice, get_json, pack, put_label, read_volume, repo_root, write_label,
    write_mask, write_volume, Server, Workspace,
};
use serde_json::{json, Value};
use std::{
    path::Path,
    time::{Duration, Instant},
};

/// The brain bundle with the untrained brain_unet network and its dropout twin (no
/// deepbet: not needed here).
pub(crate) fn pack_brain_unet(ws: &Workspace) {
    let otsu = repo_root().join("plugins/brain/assets/otsu.json");
    let unet = cache_dir().join("models/brain/brain_unet.pt");
    let twin = cache_dir().join("models/brain/brain_unet_dropout.pt");
    let assets = vec![
        format!("{}=assets/otsu.json", otsu.display()),
        format!("{}=models/brain_unet.pt", unet.display()),
        format!("{}=models/brain_unet_dropout.pt", twin.display()),
    ];
    pack(&ws.plugins(), "brain", "labelhost_app_brain", &assets);
}

/// Starts a training job; asserts the answer is its SUBMITTED record.
pub(crate) fn start(server: &Server, trainer: &str, body: &Value) -> Value {
    let r = client()
        .post(server.at(&format!("/train/{trainer}")))
        .json(body)
        .send()
        .expect("POST /train");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    r.json().expect("record")
}

/// Polls `GET /train/` until the last record leaves SUBMITTED/RUNNING; returns it.
pub(crate) fn wait_done(server: &Server, limit: Duration) -> Value {
    let t = Instant::now();
    loop {
        let record = get_json(server, "/train/");
        let status = record["status"].as_str().unwrap_or_default().to_owned();
        if status != "RUNNING" && status != "SUBMITTED" {
            return record;
        }
        assert!(
            t.elapsed() < limit,
            "training still {status} after {limit:?}: {record}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn infer_json(server: &Server, model: &str, image: &str) -> reqwest::blocking::Response {
    client()
        .post(server.at(&format!("/infer/{model}?image={image}&output=json")))
        .json(&json!({"device": "cpu"}))
        .send()
        .expect("infer")
}

/// brain_unet's Dice against `reference` on a volume uploaded as a file (nothing is saved).
fn held_out_dice(server: &Server, image: &Path, reference: &Path, out: &Path) -> f64 {
    let form = reqwest::blocking::multipart::Form::new()
        .text("params", r#"{"device": "cpu"}"#)
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(std::fs::read(image).expect("image"))
                .file_name("held_out.nii.gz"),
        );
    let r = client()
        .post(server.at("/infer/brain_unet?output=image"))
        .multipart(form)
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    std::fs::write(out, r.bytes().expect("label")).expect("write label");
    dice(&read_volume(out), &read_volume(reference))
}

/// MONAI Label's active-learning loop on real brains with the real binary, twice round:
/// no model → the epistemic strategy falls back to random → a pre-annotation (infer) → the
/// annotator's final label (the reference mask) → training from fresh weights → scoring
/// (queued by the training) → the epistemic strategy serves the most uncertain unlabelled
/// image → its final label → training again from the first model. The held-out T1 (never in
/// the datastore) is segmented better after the second round than after the first.
#[test]
fn active_learning_loop_trains_brain_unet_and_picks_the_uncertain_image_next() {
    let ws = Workspace::new(0, 8);
    let data = cache_dir().join("data");
    std::fs::copy(data.join("ch2.nii.gz"), ws.studies().join("ch2.nii.gz"))
        .expect("data (scripts/setup.sh)");
    std::fs::copy(
        data.join("KmeansTest_T1UCharRaw.nii.gz"),
        ws.studies().join("kmeans.nii.gz"),
    )
    .expect("data");
    // A third candidate: ch2 mirrored left-right, with its mirrored mask as reference.
    crate::support::write_mirrored(
        &data.join("ch2.nii.gz"),
        &ws.studies().join("ch2_mirrored.nii.gz"),
    );
    let mirrored_mask = ws.dir.path().join("ch2bet_mirrored.nii.gz");
    crate::support::write_mirrored(&data.join("ch2bet.nii.gz"), &mirrored_mask);
    let references = [
        ("ch2", data.join("ch2bet.nii.gz")),
        ("kmeans", data.join("KmeansTest_T1RawSkullStrip.nii.gz")),
        ("ch2_mirrored", mirrored_mask),
    ];
    let (held_out, held_out_mask) = (
        data.join("heldout/robex_t1.nii.gz"),
        data.join("heldout/robex_mask.nii.gz"),
    );
    let out = ws.dir.path().join("held_out_label.nii.gz");
    pack_brain_unet(&ws);
    pack(
        &ws.plugins(),
        "segmentation",
        "labelhost_app_segmentation",
        &[],
    );
    let server = ws.serve(&[]);
    let annotate = |image: &str| {
        let (_, reference) = references
            .iter()
            .find(|(id, _)| *id == image)
            .expect("reference");
        let file = ws.dir.path().join(format!("{image}_final.nii.gz"));
        write_mask(reference, &file, 1);
        put_label(&server, image, "final", &file);
    };
    let next = || crate::activelearning::next(&server, "brain_unet_epistemic", Some("annotator"));

    // 1. No model yet: the strategy falls back to random; brain_unet cannot answer.
    let first = next();
    assert_eq!(first["fallback"], "random", "{first}");
    let r = infer_json(&server, "brain_unet", "ch2");
    assert!(r.status().is_client_error() || r.status().is_server_error());
    assert!(r
        .text()
        .unwrap_or_default()
        .contains("no trained model yet"));
    // 2. A pre-annotation, then the annotator's final label for ch2.
    assert_eq!(infer_json(&server, "brain_otsu", "ch2").status(), 200);
    annotate("ch2");

    // 3. Round one: a short training on ch2 alone.
    let started = Instant::now();
    let record = start(
        &server,
        "brain_unet",
        &json!({"pretrained": false, "max_epochs": 25}),
    );
    assert_eq!(record["status"], "SUBMITTED");
    let r = client()
        .post(server.at("/train/brain_unet"))
        .json(&json!({}))
        .send()
        .expect("second");
    assert_eq!(r.status(), 429, "one training at a time");
    // While it trains: progress in GET /train/, and another app's inference is answered.
    let mut served_while_training = 0;
    let mut saw_stats = false;
    while served_while_training < 3 || !saw_stats {
        let record = get_json(&server, "/train/");
        if record["status"] != "RUNNING" && record["status"] != "SUBMITTED" {
            break;
        }
        saw_stats |= record["train_stats"]["current_iteration"].as_u64() > Some(0);
        if record["status"] == "RUNNING" && served_while_training < 3 {
            let r = infer_json(&server, "segmentation_kmeans", "kmeans");
            assert_eq!(r.status(), 200, "inference must be answered while training");
            served_while_training += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        served_while_training, 3,
        "the job ended before inference could be checked"
    );
    assert!(saw_stats, "train_stats appear in GET /train/ while running");
    let record = wait_done(&server, Duration::from_secs(1500));
    assert_eq!(record["status"], "DONE", "{record}");
    let published = ws.studies().join(".labelhost/models/brain/brain_unet.pt");
    assert!(
        published.is_file(),
        "published to the infer task's model path"
    );
    let d1 = held_out_dice(&server, &held_out, &held_out_mask, &out);
    println!(
        "round 1 (ch2, 25 epochs, {:.1} min): held-out Dice {d1:.4}",
        started.elapsed().as_secs_f64() / 60.0
    );

    // 4. The training queued the app's scoring; the epistemic scores rank the unlabelled.
    let deadline = Instant::now() + Duration::from_secs(600);
    let epistemic = loop {
        let all = get_json(&server, "/scoring/?all=true");
        let done =
            all.as_array().into_iter().flatten().find(|r| {
                r["request"]["method"] == "brain_unet_epistemic" && r["status"] == "DONE"
            });
        if let Some(r) = done {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no epistemic scoring: {all}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let scores = epistemic["result"]["scores"]
        .as_object()
        .expect("scores")
        .clone();
    assert_eq!(scores.len(), 2, "kmeans and ch2_mirrored: {epistemic}");
    println!("epistemic scores after round 1: {scores:?}");
    let chosen = next();
    assert!(chosen.get("fallback").is_none(), "{chosen}");
    let id = chosen["id"].as_str().expect("id").to_owned();
    let top = scores
        .values()
        .filter_map(Value::as_f64)
        .fold(f64::MIN, f64::max);
    assert_eq!(
        scores[&id].as_f64(),
        Some(top),
        "the most uncertain: {chosen}"
    );
    assert_eq!(chosen["brain_unet_epistemic"]["score"].as_f64(), Some(top));

    // 5. Round two: its final label, then training on from round one's model.
    annotate(&id);
    let started = Instant::now();
    start(&server, "brain_unet", &json!({"pretrained": true}));
    let record = wait_done(&server, Duration::from_secs(1500));
    assert_eq!(record["status"], "DONE", "{record}");
    let stats = &record["result"];
    assert_eq!(stats["total_epochs"], 75);
    assert!(stats["total_time"].is_string());
    assert_eq!(
        get_json(&server, "/info/")["train_stats"]["brain_unet"]["epoch"],
        stats["epoch"]
    );
    let output = ws
        .studies()
        .join(".labelhost/models/brain/brain_unet/train_01");
    for f in ["model.pt", "checkpoint_final.pt", "train_stats.json"] {
        assert!(output.join(f).is_file(), "{f} in {}", output.display());
    }
    let d2 = held_out_dice(&server, &held_out, &held_out_mask, &out);
    println!(
        "round 2 (+{id}, {:.1} min): held-out Dice {d2:.4} (was {d1:.4})",
        started.elapsed().as_secs_f64() / 60.0
    );
    assert!(d2 >= 0.90, "Dice {d2:.4} < 0.90 on the held-out T1");
    assert!(
        d2 > d1,
        "round two ({d2:.4}) is no better than round one ({d1:.4})"
    );

    // Still served after a hot swap of the same app version, and after a restart.
    let r = client()
        .post(server.at("/apps/brain/reload"))
        .send()
        .expect("reload");
    assert_eq!(r.status(), 200);
    assert!((held_out_dice(&server, &held_out, &held_out_mask, &out) - d2).abs() < 1e-9);
    drop(server);
    let server = ws.serve(&[]);
    assert!((held_out_dice(&server, &held_out, &held_out_mask, &out) - d2).abs() < 1e-9);
    assert_eq!(
        get_json(&server, "/info/")["train_stats"]["brain_unet"]["epoch"],
        stats["epoch"]
    );
}

/// Small synthetic volumes with ball labels, for the fast tests.
fn ball_workspace(images: usize) -> Workspace {
    let ws = Workspace::new(images, 24);
    pack_brain_unet(&ws);
    ws
}

fn label_all(ws: &Workspace, server: &Server, images: usize) {
    for i in 0..images {
        let src = ws.studies().join(format!("img{i:02}.nii.gz"));
        let file = ws.dir.path().join(format!("mask{i:02}.nii.gz"));
        // The ball is bright (100+), the box dim (<= 20): a threshold makes the mask.
        write_label(&src, &file, |x| u8::from(x > 50.0));
        put_label(server, &format!("img{i:02}"), "final", &file);
    }
}

#[test]
fn a_stopped_job_ends_within_an_iteration_and_frees_the_device() {
    let ws = ball_workspace(2);
    let server = ws.serve(&[]);
    label_all(&ws, &server, 2);
    let record = start(
        &server,
        "brain_unet",
        &json!({"pretrained": false, "max_epochs": 1000}),
    );
    let id = record["id"].clone();
    // Wait for the first steps, then stop.
    let t = Instant::now();
    while get_json(&server, "/train/")["train_stats"]["current_iteration"].as_u64() < Some(2) {
        assert!(t.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = client().delete(server.at("/train/")).send().expect("stop");
    let stopped: Value = r.json().expect("json");
    assert_eq!(
        (&stopped["id"], &stopped["status"]),
        (&id, &json!("STOPPED"))
    );
    // The loop notices at its next step and ends: its last line says so.
    let t = Instant::now();
    loop {
        let record = get_json(&server, "/train/");
        let details = record["details"].to_string();
        if details.contains("stopped after") {
            assert_eq!(record["status"], "STOPPED");
            assert_eq!(record["train_stats"]["stopped"], true);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "still training: {record}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing left running: a new job starts at once (not 429) and runs to the end.
    let r = start(
        &server,
        "brain_unet",
        &json!({"pretrained": false, "max_iterations": 2}),
    );
    assert_eq!(r["status"], "SUBMITTED");
    let done = wait_done(&server, Duration::from_secs(300));
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(done["result"]["current_iteration"], 2);
    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"][0]["live_trainers"], 0, "{apps}");
}

#[test]
fn bad_train_requests_and_bad_labels_get_clear_answers() {
    let ws = ball_workspace(2);
    let server = ws.serve(&[]);
    // Wrong types and ranges: 422 naming the parameter, no job recorded.
    for (body, name) in [
        (json!({"max_epochs": "ten"}), "max_epochs"),
        (json!({"val_split": 2}), "val_split"),
        (json!({"train_batch_size": 0}), "train_batch_size"),
        (json!({"pretrained": "no"}), "pretrained"),
    ] {
        let r = client()
            .post(server.at("/train/brain_unet"))
            .json(&body)
            .send()
            .expect("post");
        assert_eq!(r.status(), 422, "{body}");
        let e: Value = r.json().expect("json");
        assert!(
            e["detail"].as_str().unwrap_or_default().starts_with(name),
            "{e}"
        );
    }
    let r = client().get(server.at("/train/")).send().expect("get");
    assert_eq!(r.status(), 404, "no job was recorded");

    // No labels at all: the job ends as ERROR saying so.
    start(&server, "brain_unet", &json!({"max_iterations": 1}));
    let done = wait_done(&server, Duration::from_secs(120));
    assert_eq!(done["status"], "ERROR");
    assert!(
        done["details"]
            .to_string()
            .contains("no image has a final label"),
        "{done}"
    );

    // img00's label is on another grid, img01's holds a value the task does not know:
    // both are skipped with a line naming them, and with nothing left the job fails
    // naming both. The saved labels are untouched. (An upload on another grid is refused;
    // this one is put into the folder by hand, where the store finds it.)
    let other = ws.dir.path().join("other.nii.gz");
    write_volume(&other, 16, 100.0);
    let small = ws.dir.path().join("small.nii.gz");
    write_mask(&other, &small, 1);
    let part = reqwest::blocking::multipart::Part::bytes(std::fs::read(&small).expect("read"))
        .file_name("small.nii.gz");
    let r = client()
        .put(server.at("/datastore/label?image=img00"))
        .multipart(reqwest::blocking::multipart::Form::new().part("label", part))
        .send()
        .expect("label");
    assert_eq!(r.status(), 400, "an upload on another grid");
    std::fs::create_dir_all(ws.studies().join("labels/final")).expect("mkdir");
    std::fs::copy(&small, ws.studies().join("labels/final/img00.nii.gz")).expect("by hand");
    let found = |server: &crate::support::Server| {
        client()
            .head(server.at("/datastore/label?image=img00&tag=final"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !found(&server) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(found(&server), "the hand-placed label is indexed");
    let src = ws.studies().join("img01.nii.gz");
    let two = ws.dir.path().join("two.nii.gz");
    write_mask(&src, &two, 2);
    put_label(&server, "img01", "final", &two);
    start(&server, "brain_unet", &json!({"max_iterations": 1}));
    let done = wait_done(&server, Duration::from_secs(120));
    assert_eq!(done["status"], "ERROR", "{done}");
    let details = done["details"].to_string();
    assert!(
        details.contains("img00") && details.contains("grid"),
        "{details}"
    );
    assert!(
        details.contains("img01") && details.contains("[2]"),
        "{details}"
    );
    assert!(ws.studies().join("labels/final/img00.nii.gz").is_file());
    assert!(ws.studies().join("labels/final/img01.nii.gz").is_file());
    assert_eq!(get_json(&server, "/health")["status"], "ok");
}

#[test]
fn deepbet_fine_tuned_on_the_labels_keeps_its_dice() {
    let ws = Workspace::new(0, 8);
    let data = cache_dir().join("data");
    for (from, to) in [
        ("ch2.nii.gz", "ch2.nii.gz"),
        ("KmeansTest_T1UCharRaw.nii.gz", "kmeans.nii.gz"),
    ] {
        std::fs::copy(data.join(from), ws.studies().join(to)).expect("data (scripts/setup.sh)");
    }
    let assets = crate::brain::brain_bundle_assets();
    pack(&ws.plugins(), "brain", "labelhost_app_brain", &assets);
    let server = ws.serve(&[]);
    for (image, mask) in [
        ("ch2", "ch2bet.nii.gz"),
        ("kmeans", "KmeansTest_T1RawSkullStrip.nii.gz"),
    ] {
        let file = ws.dir.path().join(format!("{image}.nii.gz"));
        write_mask(&data.join(mask), &file, 1);
        put_label(&server, image, "final", &file);
    }
    let before = get_json(&server, "/model/info/brain_extraction")["checksum"].clone();
    start(&server, "brain_extraction", &json!({}));
    let done = wait_done(&server, Duration::from_secs(900));
    assert_eq!(done["status"], "DONE", "{done}");
    println!("fine-tuned: {}", done["result"]);
    let after = get_json(&server, "/model/info/brain_extraction")["checksum"].clone();
    assert_ne!(before, after, "the fine-tuned model is the one served now");
    let r = infer_json(&server, "brain_extraction", "ch2");
    assert_eq!(r.status(), 200);
    let label = ws.studies().join("labels/original/ch2.nii.gz");
    let d = dice(
        &read_volume(&label),
        &read_volume(&data.join("ch2bet.nii.gz")),
    );
    println!("fine-tuned deepbet on ch2: Dice {d:.4}");
    assert!(d >= 0.93, "Dice {d:.4} < 0.93 after fine-tuning");
}

#[test]
fn segmentation_unet_fine_tunes_and_serves_the_published_weights() {
    let ws = Workspace::new(2, 24);
    let unet = cache_dir().join("models/segmentation/unet.pt");
    let assets = vec![format!("{}=models/unet.pt", unet.display())];
    pack(
        &ws.plugins(),
        "segmentation",
        "labelhost_app_segmentation",
        &assets,
    );
    let server = ws.serve(&[]);
    label_all(&ws, &server, 2);
    let info = get_json(&server, "/info/");
    assert_eq!(
        info["trainers"]["segmentation_unet"]["labels"]["class_3"],
        3
    );
    let before = get_json(&server, "/model/info/segmentation_unet")["checksum"].clone();
    start(&server, "segmentation_unet", &json!({"max_iterations": 3}));
    let done = wait_done(&server, Duration::from_secs(300));
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(done["result"]["current_iteration"], 3);
    let after = get_json(&server, "/model/info/segmentation_unet")["checksum"].clone();
    assert_ne!(before, after);
    assert_eq!(
        infer_json(&server, "segmentation_unet", "img00").status(),
        200
    );
}

#[test]
fn early_stopping_ends_a_run_that_no_longer_improves() {
    let ws = ball_workspace(2);
    let server = ws.serve(&[]);
    label_all(&ws, &server, 2);
    // A learning rate too small to change a prediction: the key metric stays put, so
    // after two validations without improvement the run ends.
    let body = json!({"pretrained": false, "max_epochs": 50, "val_interval": 1,
        "early_stop_patience": 2, "lr": 1e-12});
    start(&server, "brain_unet", &body);
    let done = wait_done(&server, Duration::from_secs(300));
    assert_eq!(done["status"], "DONE", "{done}");
    let stats = &done["result"];
    assert_eq!(stats["early_stopped"], true, "{stats}");
    assert_eq!(
        stats["epoch"], 3,
        "best at epoch 1, no gain at 2 and 3: {stats}"
    );
    assert_eq!(stats["eval"]["best_metric_epoch"], 1);
}
