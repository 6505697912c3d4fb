//! App lifecycle: hot swap under concurrent load, failed reloads, name clashes, retiring.

use crate::support::{
    app_names, brain_assets, client, get_json, pack, pack_first_party, pack_with, Workspace,
};
use serde_json::{json, Value};
use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Arc,
};

/// One answered request: the generation that answered, and the newest generation whose
/// reload had completed before the request was sent.
struct Answer {
    generation: u64,
    swapped_before_send: u64,
}

#[test]
fn hot_swap_under_load_loses_no_request() {
    const IN_FLIGHT: usize = 256;
    const RELOADS: u64 = 8;
    let ws = Workspace::new(1, 12);
    pack(
        &ws.plugins(),
        "brain",
        "labelhost_app_brain",
        &brain_assets(None),
    );
    let server = ws.serve(&[]);
    let url = server.at("/infer/brain_otsu?image=img00&output=json");
    let reload_url = server.at("/apps/brain/reload");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let answers: Vec<Answer> = runtime.block_on(async move {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(IN_FLIGHT)
            .build()
            .expect("client");
        let swapped = Arc::new(AtomicU64::new(1));
        let done = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for _ in 0..IN_FLIGHT {
            let (http, url, swapped, done) =
                (http.clone(), url.clone(), swapped.clone(), done.clone());
            workers.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                // Keep sending until the reloads are over, then a few more after the last swap.
                let mut after = 0;
                while after < 2 {
                    if done.load(Ordering::SeqCst) {
                        after += 1;
                    }
                    let swapped_before_send = swapped.load(Ordering::SeqCst);
                    let body = json!({"save_label": false}).to_string();
                    let r = http
                        .post(&url)
                        .body(body)
                        .send()
                        .await
                        .expect("request sent");
                    assert_eq!(r.status(), 200, "a request failed during hot swap");
                    let gens: Vec<_> = r
                        .headers()
                        .get_all("x-labelhost-generation")
                        .iter()
                        .collect();
                    assert_eq!(gens.len(), 1, "exactly one generation answers");
                    let generation = gens[0].to_str().expect("ascii").parse().expect("number");
                    let _: Value = r.json().await.expect("JSON answer");
                    answers.push(Answer {
                        generation,
                        swapped_before_send,
                    });
                }
                answers
            }));
        }
        for expected in 2..=RELOADS + 1 {
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            let r = http.post(&reload_url).send().await.expect("reload");
            assert_eq!(r.status(), 200, "reload");
            let g: Value = r.json().await.expect("json");
            assert_eq!(g["generation"], expected);
            swapped.store(expected, Ordering::SeqCst);
        }
        done.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.expect("worker"));
        }
        all
    });

    assert!(answers.len() >= IN_FLIGHT * 2, "{} answers", answers.len());
    for a in &answers {
        assert!(
            a.generation >= a.swapped_before_send,
            "generation {} answered a request sent after generation {} was installed",
            a.generation,
            a.swapped_before_send
        );
    }
    let generations: std::collections::BTreeSet<u64> =
        answers.iter().map(|a| a.generation).collect();
    assert!(
        generations.len() >= 3,
        "requests saw generations {generations:?}"
    );
    let last = answers
        .iter()
        .filter(|a| a.swapped_before_send == RELOADS + 1);
    assert!(
        last.clone().count() >= IN_FLIGHT,
        "requests after the last swap"
    );
    assert!(last.into_iter().all(|a| a.generation == RELOADS + 1));
    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"][0]["generation"], RELOADS + 1);
    // Every reload was of the same build: its one mapping is reused.
    assert_eq!(apps["libraries_mapped"], 1);

    // Retired generations leave no staged copies behind: only the serving one remains.
    let runtime = ws.dir.path().join("runtime");
    let staged = || {
        std::fs::read_dir(&runtime)
            .expect("runtime dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("brain-"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while staged() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(staged(), 1, "staged copies left in {}", runtime.display());
}

/// Replaces the brain bundle with one whose settings file is `settings`, then asks for a reload.
fn repack_and_reload(
    ws: &Workspace,
    server: &crate::support::Server,
    settings: &str,
) -> reqwest::blocking::Response {
    let file = ws.dir.path().join("settings.json");
    std::fs::write(&file, settings).expect("settings");
    std::fs::remove_dir_all(ws.plugins().join("brain")).expect("rm");
    pack(
        &ws.plugins(),
        "brain",
        "labelhost_app_brain",
        &brain_assets(Some(&file)),
    );
    client()
        .post(server.at("/apps/brain/reload"))
        .send()
        .expect("reload")
}

#[test]
fn a_failed_reload_keeps_the_old_generation_serving() {
    let ws = Workspace::new(1, 12);
    pack(
        &ws.plugins(),
        "brain",
        "labelhost_app_brain",
        &brain_assets(None),
    );
    let server = ws.serve(&[]);
    let infer = || {
        client()
            .post(server.at("/infer/brain_otsu?image=img00&output=json"))
            .send()
            .expect("infer")
    };
    assert_eq!(infer().json::<Value>().expect("json")["bins"], 256);

    // 1. A file that no longer matches the manifest: refused before anything is loaded.
    let asset = ws.plugins().join("brain/assets/otsu.json");
    std::fs::write(&asset, r#"{"bins": 64}"#).expect("tamper");
    let r = client()
        .post(server.at("/apps/brain/reload"))
        .send()
        .expect("reload");
    assert_eq!(r.status(), 422);
    let body: Value = r.json().expect("json");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("does not match the manifest"),
        "{body}"
    );

    // 2. A consistent bundle whose app fails to initialise (bad settings file).
    let r = repack_and_reload(&ws, &server, "{ not json");
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().expect("json")["code"], "APP_INIT_ERROR");

    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"][0]["generation"], 1);
    let r = infer();
    assert_eq!(r.headers()["x-labelhost-generation"], "1");
    assert_eq!(r.json::<Value>().expect("json")["bins"], 256);

    // 3. A good new bundle with other settings swaps in.
    let r = repack_and_reload(&ws, &server, r#"{"bins": 64}"#);
    assert_eq!(r.status(), 200);
    let r = infer();
    assert_eq!(r.headers()["x-labelhost-generation"], "2");
    assert_eq!(r.json::<Value>().expect("json")["bins"], 64);
}

#[test]
fn retiring_an_app_removes_its_tasks_and_it_can_come_back() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    assert!(get_json(&server, "/info/")["models"]["segmentation_kmeans"].is_object());

    let r = client()
        .delete(server.at("/apps/segmentation"))
        .send()
        .expect("retire");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().expect("json")["drained"], true);
    let info = get_json(&server, "/info/");
    assert!(
        info["models"].get("segmentation_kmeans").is_none(),
        "{info}"
    );
    assert!(info["strategies"].get("random").is_none(), "{info}");
    assert!(info["models"]["brain_otsu"].is_object());
    let r = client()
        .post(server.at("/infer/segmentation_kmeans?image=img00"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 404);

    let r = client()
        .post(server.at("/apps"))
        .json(&json!({"bundle": "segmentation"}))
        .send()
        .expect("load");
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().expect("json")["generation"], 2);
    assert!(get_json(&server, "/info/")["models"]["segmentation_kmeans"].is_object());
}

#[test]
fn a_task_name_clash_is_a_load_error_naming_both_apps() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    pack(&ws.plugins(), "panicky", "panic_app", &[]);
    let server = ws.serve(&["panicky_clash=true"]);
    let names = app_names(&server);
    assert_eq!(names, ["brain", "segmentation"], "panicky must be refused");
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("bundle skipped"))
        .expect("skip line");
    assert!(
        line.contains("'panicky'") && line.contains("'brain'") && line.contains("'first'"),
        "{line}"
    );
}

#[test]
fn an_archive_bundle_loads_serves_and_hot_swaps() {
    let ws = Workspace::new(1, 8);
    let assets = brain_assets(None);
    pack_with(
        &ws.plugins(),
        "brain",
        "labelhost_app_brain",
        &assets,
        &["--archive"],
    );
    assert!(ws.plugins().join("brain.tar.gz").is_file());
    assert!(!ws.plugins().join("brain").exists());
    let server = ws.serve(&[]);
    assert_eq!(app_names(&server), ["brain"]);
    let infer = server.at("/infer/brain_otsu?image=img00&output=json");
    assert_eq!(client().post(&infer).send().expect("infer").status(), 200);

    // A truncated archive is refused and generation 1 keeps serving.
    let archive = ws.plugins().join("brain.tar.gz");
    let bytes = std::fs::read(&archive).expect("read");
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).expect("truncate");
    let r = client()
        .post(server.at("/apps/brain/reload"))
        .send()
        .expect("reload");
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().expect("json")["code"], "APP_INIT_ERROR");
    let r = client().post(&infer).send().expect("infer");
    assert_eq!(r.headers()["x-labelhost-generation"], "1");

    std::fs::remove_file(&archive).expect("rm");
    pack_with(
        &ws.plugins(),
        "brain",
        "labelhost_app_brain",
        &assets,
        &["--archive"],
    );
    let r = client()
        .post(server.at("/apps/brain/reload"))
        .send()
        .expect("reload");
    assert_eq!(r.status(), 200);
    let r = client().post(&infer).send().expect("infer");
    assert_eq!(r.headers()["x-labelhost-generation"], "2");
}

#[test]
fn retiring_waits_for_in_flight_requests_then_calls_on_retire() {
    let ws = Workspace::new(1, 8);
    pack(&ws.plugins(), "panicky", "panic_app", &[]);
    let marker = ws.dir.path().join("retired.txt");
    let server = ws.serve(&[&format!("panicky_retire_marker={}", marker.display())]);
    let slow = server.at("/infer/slow_infer?image=img00&output=json");
    let in_flight = std::thread::spawn(move || {
        client()
            .post(slow)
            .json(&json!({"ms": 1500}))
            .send()
            .expect("slow request")
            .status()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let r = client()
        .delete(server.at("/apps/panicky"))
        .send()
        .expect("retire");
    let waited = started.elapsed();
    assert_eq!(r.json::<Value>().expect("json")["drained"], true);
    assert!(
        waited >= std::time::Duration::from_millis(800),
        "DELETE returned after {waited:?}"
    );
    assert_eq!(
        in_flight.join().expect("thread"),
        200,
        "the in-flight request finished"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !marker.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(&marker).expect("on_retire wrote its marker"),
        "retired"
    );
    assert!(app_names(&server).is_empty());
}

#[test]
fn unchanged_builds_reuse_their_mapping_and_new_ones_stop_at_the_cap() {
    let ws = Workspace::new(1, 8);
    crate::support::pack_first_party(&ws.plugins());
    crate::support::pack(&ws.plugins(), "panicky", "panic_app", &[]);
    std::fs::rename(ws.plugins().join("panicky"), ws.dir.path().join("panicky"))
        .expect("keep panicky aside");
    let server = ws.serve_with(&[], &["--max-libraries", "2"]);
    let c = crate::support::client();
    for _ in 0..5 {
        let r = c
            .post(server.at("/apps/brain/reload"))
            .send()
            .expect("reload");
        assert_eq!(r.status(), 200);
    }
    assert_eq!(get_json(&server, "/apps")["libraries_mapped"], 2);
    // A third library would pass the cap.
    std::fs::rename(ws.dir.path().join("panicky"), ws.plugins().join("panicky"))
        .expect("bring panicky in");
    let r = c
        .post(server.at("/apps"))
        .json(&serde_json::json!({"bundle": "panicky"}))
        .send()
        .expect("load");
    assert_eq!(r.status(), 409);
    let body: Value = r.json().expect("typed JSON");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("--max-libraries 2"),
        "{body}"
    );
    assert_eq!(get_json(&server, "/apps")["libraries_mapped"], 2);
    crate::support::assert_still_serves(&server);
}
