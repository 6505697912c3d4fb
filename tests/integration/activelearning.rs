//! Active learning: claims shared by every strategy, uncertainty strategies, scoring.

use crate::support::{
    client, pack_first_party, put_label, read_volume, write_label, Server, Workspace,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `POST /activelearning/{strategy}` as `client_id`; asserts 200 and answers the sample.
pub(crate) fn next(server: &Server, strategy: &str, client_id: Option<&str>) -> Value {
    let body = client_id.map_or(json!({}), |c| json!({ "client_id": c }));
    let r = client()
        .post(server.at(&format!("/activelearning/{strategy}")))
        .json(&body)
        .send()
        .expect("next sample");
    assert_eq!(r.status(), 200);
    r.json().expect("json")
}

#[test]
fn annotators_asking_at_once_never_get_the_same_image_while_a_claim_is_fresh() {
    let ws = Workspace::new(3, 8);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    // Six annotators at once over three images: three are served, each a different one.
    let served: Vec<Value> = std::thread::scope(|s| {
        let asks: Vec<_> = (0..6)
            .map(|i| {
                let server = &server;
                s.spawn(move || next(server, "first", Some(&format!("ann{i}"))))
            })
            .collect();
        asks.into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut ids: Vec<&str> = served.iter().filter_map(|s| s["id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["img00", "img01", "img02"], "{served:?}");
    assert_eq!(served.iter().filter(|s| *s == &json!({})).count(), 3);
    // An annotator asking again gets their own image back, by any strategy.
    let mine = served.iter().find(|s| s["id"] == "img01").expect("img01");
    let holder = mine["strategy"]["first"]["client_id"]
        .as_str()
        .expect("holder");
    assert_eq!(next(&server, "first", Some(holder))["id"], "img01");
    assert_eq!(next(&server, "last", Some(holder))["id"], "img01");
    // Anonymous requests are each another client.
    assert_eq!(next(&server, "random", None), json!({}));
    drop(server);

    // With claims of one second, a stale claim is served to someone else.
    let server = ws.serve_with(&[], &["--claim-seconds", "1"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let s = next(&server, "first", Some("late"));
    assert_eq!(s["id"], "img00", "{s}");
    assert_eq!(s["strategy"]["first"]["client_id"], "late");
}

#[test]
fn dice_scoring_compares_final_and_original_per_label_and_records_it() {
    let ws = Workspace::new(2, 12);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let src = ws.studies().join("img00.nii.gz");
    let (f, o) = (
        ws.dir.path().join("final.nii.gz"),
        ws.dir.path().join("original.nii.gz"),
    );
    // Two labels each: the annotator's ball (1) and box (2); the model's tighter ball.
    write_label(&src, &f, |v| if v > 50.0 { 1 } else { 2 });
    write_label(&src, &o, |v| if v > 105.0 { 1 } else { 2 });
    put_label(&server, "img00", "final", &f);
    put_label(&server, "img00", "original", &o);
    let (a, b) = (read_volume(&f), read_volume(&o));
    let expected = |value: f32| {
        let both = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| **x == value && **y == value)
            .count();
        let n =
            a.iter().filter(|x| **x == value).count() + b.iter().filter(|y| **y == value).count();
        2.0 * both as f64 / n as f64
    };
    let (ball, box_) = (expected(1.0), expected(2.0));
    assert!(
        ball < 0.99 && box_ < 0.99,
        "the labels differ: {ball} {box_}"
    );

    let r = client()
        .post(server.at("/scoring/dice?run_sync=true"))
        .send()
        .expect("score");
    assert_eq!(r.status(), 200);
    let scored: Value = r.json().expect("json");
    let one = &scored["img00"];
    let close = |v: &Value, want: f64| (v.as_f64().expect("number") - want).abs() < 1e-9;
    assert!(close(&one["dice_per_label"]["brain"], ball), "{scored}");
    assert!(close(&one["dice_per_label"]["2"], box_), "{scored}");
    assert!(close(&one["dice"], (ball + box_) / 2.0), "{scored}");
    assert!(
        scored.get("img01").is_none(),
        "img01 has no labels: {scored}"
    );
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.studies().join("datastore_v2.json")).expect("index"),
    )
    .expect("json");
    let obj = &index["objects"]["img00"];
    assert_eq!(obj["image"]["info"]["dice"], one["dice"]);
    assert_eq!(
        obj["labels"]["original"]["info"]["dice_per_label"],
        one["dice_per_label"]
    );
}

/// Waits until `n` scoring records exist and none is waiting or running; returns them.
fn scoring_done(server: &Server, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let all = crate::support::get_json(server, "/scoring/?all=true");
        let all = all.as_array().cloned().unwrap_or_default();
        let busy = all
            .iter()
            .any(|r| r["status"] == "SUBMITTED" || r["status"] == "RUNNING");
        if (all.len() >= n && !busy) || Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn uncertainty_scores_follow_the_model_and_serve_the_most_uncertain_unclaimed_image() {
    // Five images, two labelled later: "a" may hold one by its first (random) answer and
    // then the most uncertain one; a third is left for "c".
    let ws = Workspace::new(5, 24);
    crate::training::pack_brain_unet(&ws);
    let server = ws.serve(&[]);
    // No model yet: the strategy says it fell back to random; scoring has nothing to do.
    let s = next(&server, "brain_unet_epistemic", Some("a"));
    assert_eq!(s["fallback"], "random", "{s}");
    let r: Value = client()
        .post(server.at("/scoring/brain_unet_tta?run_sync=true"))
        .send()
        .expect("score")
        .json()
        .expect("json");
    assert_eq!(r["executed"], 0, "{r}");

    for i in 0..2 {
        let src = ws.studies().join(format!("img0{i}.nii.gz"));
        let file = ws.dir.path().join(format!("mask{i}.nii.gz"));
        write_label(&src, &file, |x| u8::from(x > 50.0));
        put_label(&server, &format!("img0{i}"), "final", &file);
    }
    let r = client()
        .post(server.at("/train/brain_unet"))
        .json(&json!({"pretrained": false, "max_epochs": 2, "val_interval": 1}))
        .send()
        .expect("train");
    assert_eq!(r.status(), 200);
    // Training ends, then its app's four scoring methods run (sum, dice, TTA, epistemic).
    let records = scoring_done(&server, 4);
    let methods: Vec<&str> = records
        .iter()
        .filter_map(|r| r["request"]["method"].as_str())
        .collect();
    for m in ["brain_unet_epistemic", "brain_unet_tta"] {
        assert!(methods.contains(&m), "{methods:?}");
    }
    let epistemic = records
        .iter()
        .find(|r| r["request"]["method"] == "brain_unet_epistemic")
        .expect("epistemic record");
    assert_eq!(epistemic["status"], "DONE", "{epistemic}");
    let result = &epistemic["result"];
    assert_eq!(
        (result["total"].as_u64(), result["executed"].as_u64()),
        (Some(3), Some(3)),
        "{result}"
    );
    let scores = result["scores"].as_object().expect("scores");
    let (best, _) = scores
        .iter()
        .max_by(|a, b| {
            a.1.as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b.1.as_f64().unwrap_or(0.0))
        })
        .expect("a score");
    for (id, score) in scores {
        let score = score.as_f64().expect("number");
        assert!(score.is_finite() && score >= 0.0, "{id}: {score}");
        let info = crate::support::get_json(&server, &format!("/datastore/image/info?image={id}"));
        assert_eq!(info["brain_unet_epistemic"]["passes"], 5, "{info}");
        assert_eq!(info["epistemic_entropy"].as_f64(), Some(score), "{info}");
        assert!(info["brain_unet_tta"]["score"].as_f64().is_some(), "{info}");
    }
    // The most uncertain unlabelled image first (a client's own claim never hides an image
    // from it); the next annotator gets another one.
    let first = next(&server, "brain_unet_epistemic", Some("a"));
    assert_eq!(first["id"].as_str(), Some(best.as_str()), "{first}");
    assert!(first.get("fallback").is_none(), "{first}");
    let second = next(&server, "brain_unet_epistemic", Some("c"));
    assert!(
        second["id"]
            .as_str()
            .is_some_and(|id| id != best && scores.contains_key(id)),
        "{second}"
    );
    // The same model: the scores are reused, not recomputed.
    let again: Value = client()
        .post(server.at("/scoring/brain_unet_epistemic?run_sync=true"))
        .send()
        .expect("score")
        .json()
        .expect("json");
    assert_eq!(
        (again["skipped"].as_u64(), again["executed"].as_u64()),
        (Some(3), Some(0)),
        "{again}"
    );
}
