//! Background jobs as MONAI Label runs them: `/scoring/`, `/batch/infer`, `/train/`.

use crate::support::{client, get_json, pack, pack_first_party, Server, Workspace};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn wait_for(server: &Server, path: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let record = get_json(server, path);
        if record["status"] == status || Instant::now() > deadline {
            return record;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn scoring_runs_in_the_request_or_in_the_background_and_records_survive_a_restart() {
    let ws = Workspace::new(2, 12);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let r = client()
        .post(server.at("/infer/brain_otsu?image=img00&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);

    let sync: Value = client()
        .post(server.at("/scoring/sum?run_sync=true"))
        .send()
        .expect("score")
        .json()
        .expect("json");
    let sum = sync["img00/original"]["sum"].as_i64().expect("sum");
    assert!(sum > 0, "{sync}");
    let index = std::fs::read_to_string(ws.studies().join("datastore_v2.json")).expect("index");
    let index: Value = serde_json::from_str(&index).expect("json");
    assert_eq!(
        index["objects"]["img00"]["labels"]["original"]["info"]["sum"],
        sum
    );

    let r = client()
        .post(server.at("/scoring/sum"))
        .send()
        .expect("score");
    assert_eq!(r.status(), 200);
    let record: Value = r.json().expect("record");
    assert_eq!(record["status"], "SUBMITTED");
    assert_eq!(record["request"]["method"], "sum");
    let done = wait_for(&server, "/scoring/", "DONE");
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(done["id"], record["id"]);
    assert_eq!(done["result"]["img00/original"]["sum"], sum);
    assert!(done["end_ts"].as_str().is_some_and(|t| t.len() == 19));
    drop(server);

    let server = ws.serve(&[]);
    let all = get_json(&server, "/scoring/?all=true");
    assert_eq!(
        all.as_array().expect("list").len(),
        1,
        "the async job survived the restart"
    );
    let r = client()
        .get(server.at("/scoring/?check_if_running=true"))
        .send()
        .expect("running?");
    assert_eq!(r.status(), 404, "nothing runs now");
}

#[test]
fn one_batch_job_at_a_time_unless_enqueued_and_delete_stops() {
    let ws = Workspace::new(1, 8);
    pack(&ws.plugins(), "panicky", "panic_app", &[]);
    let server = ws.serve(&[]);
    let url = server.at("/batch/infer/slow_infer");
    let first: Value = client()
        .post(&url)
        .json(&json!({"ms": 1500}))
        .send()
        .expect("batch")
        .json()
        .expect("json");
    assert_eq!(first["status"], "SUBMITTED");
    assert_eq!(first["request"]["images"], "all");
    let r = client()
        .post(&url)
        .json(&json!({"ms": 10}))
        .send()
        .expect("batch again");
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().expect("json")["detail"],
        "Batch_infer Task is Already Running"
    );
    let r = client()
        .get(server.at("/batch/infer?check_if_running=true"))
        .send()
        .expect("running?");
    assert_eq!(r.status(), 200);
    let queued: Value = client()
        .post(format!("{url}?enqueue=true"))
        .json(&json!({"ms": 10}))
        .send()
        .expect("enqueue")
        .json()
        .expect("json");
    assert_eq!(queued["status"], "SUBMITTED");
    // DELETE stops the running one; the queued one then runs to the end.
    let stopped: Value = client()
        .delete(server.at("/batch/infer"))
        .send()
        .expect("stop")
        .json()
        .expect("json");
    assert_eq!(stopped["status"], "STOPPED");
    assert_eq!(stopped["id"], first["id"]);
    let last = wait_for(&server, "/batch/infer", "DONE");
    assert_eq!(last["id"], queued["id"], "{last}");
    assert_eq!(last["status"], "DONE");
    assert!(last["result"]["img00"].is_object(), "{last}");
    let all = get_json(&server, "/batch/infer?all=true");
    assert_eq!(
        all[0]["status"], "STOPPED",
        "a stopped job stays stopped when its call returns"
    );
}

#[test]
fn unknown_jobs_and_empty_histories_are_404() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    for (method, path, detail) in [
        ("POST", "/train/nothing", "no trainer named 'nothing'"),
        ("GET", "/train/", "No Train Tasks Found"),
        (
            "GET",
            "/train/?check_if_running=true",
            "No Train Tasks are currently Running",
        ),
        (
            "POST",
            "/scoring/nothing",
            "no scoring method named 'nothing'",
        ),
        ("POST", "/batch/infer/nothing", "no model named 'nothing'"),
    ] {
        let req = if method == "POST" {
            client().post(server.at(path))
        } else {
            client().get(server.at(path))
        };
        let r = req.send().expect("send");
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.json::<Value>().expect("json")["detail"], detail, "{path}");
    }
    let r = client().delete(server.at("/train/")).send().expect("stop");
    assert_eq!(
        r.json::<Value>().expect("json"),
        Value::Null,
        "nothing to stop"
    );
}

#[test]
fn batch_inference_runs_image_by_image_saves_labels_and_never_holds_the_device() {
    let ws = Workspace::new(3, 8);
    pack_first_party(&ws.plugins());
    pack(&ws.plugins(), "panicky", "panic_app", &[]);
    let server = ws.serve_with(&[], &["--device-workers", "1"]);
    let r = client()
        .post(server.at("/batch/infer/slow_infer"))
        .json(&json!({"ms": 1200}))
        .send()
        .expect("batch");
    assert_eq!(r.json::<Value>().expect("json")["status"], "SUBMITTED");
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let record = get_json(&server, "/batch/infer");
        if record["train_stats"]["done"] == 1 || Instant::now() > deadline {
            break record;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(running["train_stats"]["total"], 3, "{running}");
    // With one device slot, an annotator's request is served mid-batch.
    let r = client()
        .post(server.at("/infer/brain_otsu?image=img00&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    let during = get_json(&server, "/batch/infer");
    assert_eq!(
        during["status"], "RUNNING",
        "served before the batch ended: {during}"
    );
    let done = wait_for(&server, "/batch/infer", "DONE");
    assert_eq!(done["train_stats"]["done"], 3, "{done}");
    let result = done["result"].as_object().expect("result");
    assert_eq!(result.len(), 3, "{done}");
    assert!(result["img02"]["params"].is_object(), "{done}");

    // A synchronous batch over the unlabeled images saves each label as `original`.
    let r = client()
        .post(server.at("/batch/infer/brain_otsu?images=unlabeled&run_sync=true"))
        .json(&json!({"max_batch_size": 2}))
        .send()
        .expect("sync batch");
    assert_eq!(r.status(), 200);
    let sync: Value = r.json().expect("json");
    assert_eq!(sync.as_object().expect("map").len(), 2, "{sync}");
    assert_eq!(sync["img01"]["label"], "img01", "{sync}");
    assert!(ws.studies().join("labels/original/img01.nii.gz").is_file());
    assert!(
        !ws.studies().join("labels/original/img02.nii.gz").is_file(),
        "cut at 2"
    );
    let r = client()
        .post(server.at("/batch/infer/brain_otsu?images=everything"))
        .send()
        .expect("bad images");
    assert_eq!(r.status(), 400);
}

#[test]
fn a_finished_training_queues_its_apps_scoring_methods() {
    let ws = Workspace::new(2, 12);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let r = client()
        .post(server.at("/infer/segmentation_kmeans?image=img00&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    let label = ws.dir.path().join("final.nii.gz");
    crate::support::write_label(&ws.studies().join("img00.nii.gz"), &label, |v| {
        // The three classes the app's k-means needs: the ball, and the box in two halves.
        if v > 50.0 {
            1
        } else if v < 15.0 {
            2
        } else {
            3
        }
    });
    crate::support::put_label(&server, "img00", "final", &label);
    let r = client()
        .post(server.at("/train/segmentation_kmeans"))
        .json(&json!({}))
        .send()
        .expect("train");
    assert_eq!(r.status(), 200);
    let trained = wait_for(&server, "/train/", "DONE");
    assert_eq!(trained["status"], "DONE", "{trained}");
    let scored = wait_for(&server, "/scoring/", "DONE");
    assert_eq!(scored["request"]["method"], "segmentation_dice", "{scored}");
    let dice = scored["result"]["img00"]["dice"].as_f64().expect("dice");
    assert!((0.0..=1.0).contains(&dice), "{scored}");
}
