//! Training on the shared executor, end to end: final labels saved through the API, a
//! `BasicTrainTask` trained by the host from fresh weights, the best model published to the
//! infer task of the same name (served right away, after a hot swap and after a restart),
//! inference on another app answered while a job trains, stop requests, bad input.

use crate::support::{
    cache_dir, client, dice, get_json, pack, put_label, read_volume, repo_root, write_label,
    write_mask, write_volume, Server, Workspace,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

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
fn start(server: &Server, trainer: &str, body: &Value) -> Value {
    let r = client()
        .post(server.at(&format!("/train/{trainer}")))
        .json(body)
        .send()
        .expect("POST /train");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    r.json().expect("record")
}

/// Polls `GET /train/` until the last record leaves SUBMITTED/RUNNING; returns it.
fn wait_done(server: &Server, limit: Duration) -> Value {
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

#[test]
fn brain_unet_trained_from_scratch_segments_a_brain_it_never_saw() {
    let ws = Workspace::new(0, 8);
    let data = cache_dir().join("data");
    let copies = [
        ("ch2.nii.gz", "ch2.nii.gz"),
        ("KmeansTest_T1UCharRaw.nii.gz", "kmeans.nii.gz"),
        ("heldout/robex_t1.nii.gz", "robex.nii.gz"),
    ];
    for (from, to) in copies {
        std::fs::copy(data.join(from), ws.studies().join(to)).expect("data (scripts/setup.sh)");
    }
    pack_brain_unet(&ws);
    pack(
        &ws.plugins(),
        "segmentation",
        "labelhost_app_segmentation",
        &[],
    );
    let server = ws.serve(&[]);

    // Not trained yet: a clear error, not a crash.
    let r = infer_json(&server, "brain_unet", "robex");
    assert!(r.status().is_client_error() || r.status().is_server_error());
    assert!(r
        .text()
        .unwrap_or_default()
        .contains("no trained model yet"));

    // The annotators' final brain masks for the two training volumes.
    let masks = [
        ("ch2", "ch2bet.nii.gz"),
        ("kmeans", "KmeansTest_T1RawSkullStrip.nii.gz"),
    ];
    for (image, mask) in masks {
        let file = ws.dir.path().join(format!("{image}.nii.gz"));
        write_mask(&data.join(mask), &file, 1);
        put_label(&server, image, "final", &file);
    }
    let info = get_json(&server, "/info/");
    assert_eq!(info["trainers"]["brain_unet"]["config"]["max_epochs"], 75);
    assert_eq!(info["trainers"]["brain_unet"]["labels"]["brain"], 1);

    let started = Instant::now();
    let record = start(&server, "brain_unet", &json!({"pretrained": false}));
    assert_eq!(record["status"], "SUBMITTED");
    // A second start is refused while it runs.
    let r = client()
        .post(server.at("/train/brain_unet"))
        .json(&json!({}))
        .send()
        .expect("second");
    assert_eq!(r.status(), 429);

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
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    assert_eq!(record["status"], "DONE", "{record}");
    let stats = &record["result"];
    println!("trained in {minutes:.1} min: {stats}");
    assert_eq!(stats["total_epochs"], 75);
    assert!(stats["total_time"].is_string());
    assert!(stats["eval"]["best_metric"].as_f64() > Some(0.8), "{stats}");
    assert_eq!(
        get_json(&server, "/info/")["train_stats"]["brain_unet"]["epoch"],
        stats["epoch"]
    );
    let published = ws.studies().join(".labelhost/models/brain/brain_unet.pt");
    assert!(
        published.is_file(),
        "published to the infer task's model path"
    );
    let output = ws
        .studies()
        .join(".labelhost/models/brain/brain_unet/train_01");
    for f in ["model.pt", "checkpoint_final.pt", "train_stats.json"] {
        assert!(output.join(f).is_file(), "{f} in {}", output.display());
    }

    // The published model serves the next request: Dice on a real T1 it never saw.
    let check = |server: &Server| -> f64 {
        let r = infer_json(server, "brain_unet", "robex");
        assert_eq!(r.status(), 200);
        let params: Value = r.json().expect("json");
        assert_eq!(params["model"], published.to_string_lossy().as_ref());
        let label = ws.studies().join("labels/original/robex.nii.gz");
        let reference = data.join("heldout/robex_mask.nii.gz");
        dice(&read_volume(&label), &read_volume(&reference))
    };
    let d = check(&server);
    println!("brain_unet on the held-out T1: Dice {d:.4}");
    assert!(d >= 0.90, "Dice {d:.4} < 0.90 on the held-out T1");

    // Still served after a hot swap of the same app version, and after a restart.
    let r = client()
        .post(server.at("/apps/brain/reload"))
        .send()
        .expect("reload");
    assert_eq!(r.status(), 200);
    assert!((check(&server) - d).abs() < 1e-9);
    drop(server);
    let server = ws.serve(&[]);
    assert!((check(&server) - d).abs() < 1e-9);
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
    // naming both. The saved labels are untouched.
    let other = ws.dir.path().join("other.nii.gz");
    write_volume(&other, 16, 100.0);
    let small = ws.dir.path().join("small.nii.gz");
    write_mask(&other, &small, 1);
    put_label(&server, "img00", "final", &small);
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
