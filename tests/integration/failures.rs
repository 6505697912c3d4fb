//! A panicking plugin and bad requests get typed JSON errors; the server keeps serving.

use crate::support::{client, get_json, pack, pack_first_party, Workspace};
use serde_json::Value;

#[test]
fn a_panicking_task_answers_json_and_the_server_keeps_serving() {
    let ws = Workspace::new(1, 16);
    pack_first_party(&ws.plugins());
    pack(&ws.plugins(), "panicky", "panic_app", &[]);
    let mut server = ws.serve(&[]);

    for _ in 0..3 {
        let r = client()
            .post(server.at("/infer/panic_infer?image=img00&output=json"))
            .send()
            .expect("infer");
        assert_eq!(r.status(), 500);
        let body: Value = r.json().expect("typed JSON error");
        assert_eq!(body["code"], "PLUGIN_PANIC");
        assert!(
            body["detail"]
                .as_str()
                .expect("detail")
                .contains("deliberate panic"),
            "{body}"
        );
    }
    assert!(server.alive());
    // The same app's other task and the other apps still answer.
    let r = client()
        .post(server.at("/activelearning/calm"))
        .send()
        .expect("calm");
    assert_eq!(r.json::<Value>().expect("json")["id"], "img00");
    crate::support::assert_still_serves(&server);
}

#[test]
fn bad_requests_get_typed_4xx_errors() {
    let ws = Workspace::new(1, 16);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let c = client();
    let cases: Vec<(reqwest::blocking::RequestBuilder, u16, &str)> = vec![
        (
            c.post(server.at("/infer/no_such_model?image=img00")),
            404,
            "NOT_FOUND",
        ),
        (
            c.post(server.at("/infer/brain_otsu?image=missing")),
            404,
            "NOT_FOUND",
        ),
        (
            c.post(server.at("/infer/brain_otsu?image=../../etc/passwd")),
            400,
            "INVALID_INPUT",
        ),
        (c.post(server.at("/infer/brain_otsu")), 400, "INVALID_INPUT"),
        (
            c.post(server.at("/infer/brain_otsu?image=img00&output=pdf")),
            400,
            "INVALID_INPUT",
        ),
        (
            c.post(server.at("/infer/brain_otsu?image=img00"))
                .body("{not json"),
            400,
            "INVALID_INPUT",
        ),
        (c.post(server.at("/activelearning/nope")), 404, "NOT_FOUND"),
        (c.post(server.at("/apps")).body("[]"), 400, "INVALID_INPUT"),
        (
            c.post(server.at("/apps"))
                .json(&serde_json::json!({"bundle": "../brain"})),
            400,
            "INVALID_INPUT",
        ),
        (
            c.post(server.at("/apps"))
                .json(&serde_json::json!({"bundle": "absent"})),
            404,
            "NOT_FOUND",
        ),
        (
            c.post(server.at("/apps"))
                .json(&serde_json::json!({"bundle": "brain"})),
            409,
            "CONFLICT",
        ),
        (c.post(server.at("/apps/absent/reload")), 404, "NOT_FOUND"),
        (c.delete(server.at("/apps/absent")), 404, "NOT_FOUND"),
        (c.get(server.at("/no/such/route")), 404, "NOT_FOUND"),
    ];
    for (req, status, code) in cases {
        let r = req.send().expect("send");
        let url = r.url().to_string();
        assert_eq!(r.status().as_u16(), status, "{url}");
        let body: Value = r.json().expect("typed JSON error");
        assert_eq!(body["code"], code, "{url}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{url}: {body}"
        );
    }
    assert_eq!(get_json(&server, "/health")["apps"], 2);
}

#[test]
fn a_full_device_queue_answers_503_with_retry_after() {
    let ws = Workspace::new(1, 8);
    pack(&ws.plugins(), "panicky", "panic_app", &[]);
    let server = ws.serve_with(&[], &["--queue-capacity", "1", "--device-workers", "1"]);
    let url = server.at("/infer/slow_infer?image=img00&output=json");
    let send = |url: String| {
        std::thread::spawn(move || {
            let r = client()
                .post(url)
                .json(&serde_json::json!({"ms": 1500}))
                .send()
                .expect("send");
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            let status = r.status().as_u16();
            (status, retry, r.json::<Value>().ok())
        })
    };
    let running = send(url.clone());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let waiting = send(url.clone());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, retry, body) = send(url).join().expect("third");
    assert_eq!(status, 503);
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body.expect("typed JSON")["code"], "OVERLOADED");
    assert_eq!(running.join().expect("first").0, 200);
    assert_eq!(
        waiting.join().expect("second").0,
        200,
        "the queued request ran after the first"
    );
}

#[test]
fn malformed_images_get_a_4xx_naming_the_problem() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    let good = std::fs::read(ws.studies().join("img00.nii.gz")).expect("volume");
    std::fs::write(
        ws.studies().join("truncated.nii.gz"),
        &good[..good.len() / 2],
    )
    .expect("write");
    // A header claiming 2^15 x 2^15 x 2^15 voxels in a tiny file.
    let mut huge = vec![0u8; 352];
    huge[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (i, d) in [3i16, 32767, 32767, 32767, 1, 1, 1, 1].iter().enumerate() {
        huge[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    huge[70..72].copy_from_slice(&16i16.to_le_bytes()); // float32
    huge[72..74].copy_from_slice(&32i16.to_le_bytes());
    huge[108..112].copy_from_slice(&352f32.to_le_bytes());
    huge[344..348].copy_from_slice(b"n+1\0");
    std::fs::write(ws.studies().join("huge.nii"), huge).expect("write");
    let server = ws.serve(&[]);
    for image in ["truncated", "huge"] {
        let url = server.at(&format!("/infer/brain_otsu?image={image}&output=json"));
        let r = client().post(url).send().expect("infer");
        assert_eq!(r.status(), 400, "{image}");
        let body: Value = r.json().expect("typed JSON");
        assert_eq!(body["code"], "INVALID_INPUT", "{image}: {body}");
        assert!(
            body["detail"].as_str().expect("detail").contains(image),
            "{image}: {body}"
        );
    }
    assert_eq!(get_json(&server, "/health")["status"], "ok");
}

#[test]
fn the_server_log_is_served_as_text_and_html() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let r = client()
        .get(server.at("/logs/?text=true&lines=50"))
        .send()
        .expect("logs");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ctype")
        .starts_with("text/plain"));
    let text = r.text().expect("text");
    assert!(
        text.contains("app loaded") && !text.contains('\u{1b}'),
        "{text}"
    );
    let html = client()
        .get(server.at("/logs/?lines=5"))
        .send()
        .expect("logs")
        .text()
        .expect("html");
    assert!(
        html.starts_with("<!doctype html>") && html.contains("<pre>"),
        "{html}"
    );
    assert!(html.matches('\n').count() <= 5, "at most 5 lines");
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused_with_one_line() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    crate::support::hand_bundle(&ws.plugins(), "stranger", "not_a_plugin", "1.2.0");
    let server = ws.serve(&[]);
    let detail = crate::support::load_refused(&server, "stranger");
    assert!(
        detail.contains("not a loadable labelhost plugin"),
        "{detail}"
    );
    assert_eq!(get_json(&server, "/health")["apps"], 2);
}

#[test]
fn a_panic_in_new_tasks_drop_or_on_retire_is_contained() {
    for site in ["new", "tasks", "drop", "on_retire"] {
        let ws = Workspace::new(1, 8);
        pack_first_party(&ws.plugins());
        pack(&ws.plugins(), "panicky", "panic_app", &[]);
        let mut server = ws.serve(&[&format!("panicky_panic_in={site}")]);
        let loaded = crate::support::app_names(&server).contains(&"panicky".to_owned());
        match site {
            // Construction panicked: the bundle is skipped with a line, a load is a 422.
            "new" | "tasks" => {
                assert!(!loaded, "{site}");
                let detail = crate::support::load_refused(&server, "panicky");
                assert!(
                    detail.contains(&format!("deliberate panic in {site}")),
                    "{detail}"
                );
            }
            // Loaded and serving; retiring runs the panicking code and still drains.
            _ => {
                assert!(loaded, "{site}");
                let r = client()
                    .delete(server.at("/apps/panicky"))
                    .send()
                    .expect("retire");
                assert_eq!(r.status(), 200, "{site}");
                assert_eq!(r.json::<Value>().expect("json")["drained"], true);
                // The panic happened (the default hook printed it) and was caught.
                let said = format!("deliberate panic in {site}");
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while !server.log().contains(&said) && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                assert!(server.log().contains(&said), "{site}: {}", server.log());
            }
        }
        assert!(server.alive(), "{site} took the server down");
        let r = client()
            .post(server.at("/infer/brain_otsu?image=img00&output=json"))
            .send()
            .expect("infer");
        assert_eq!(r.status(), 200, "after a panic in {site}");
    }
}

#[test]
fn an_allocation_the_device_cannot_make_answers_503_and_the_next_request_works() {
    let ws = Workspace::new(1, 8);
    crate::support::pack_tensor(&ws.plugins());
    let server = ws.serve(&[]);
    // 8³ resized 1000 times per axis: 8000³ f32 voxels, 2 TB.
    let r = client()
        .post(server.at("/infer/tensor_double?image=img00&output=json"))
        .json(&serde_json::json!({"upsample": 1000}))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().expect("typed JSON");
    assert_eq!(body["code"], "OUT_OF_MEMORY", "{body}");
    let r = client()
        .post(server.at("/infer/tensor_double?image=img00&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    let apps = get_json(&server, "/apps");
    assert_eq!(
        apps["apps"][0]["live_tensors"], 0,
        "the failed request's tensors are freed"
    );
}

#[test]
fn a_request_past_its_memory_budget_answers_413_and_frees_its_tensors() {
    let ws = Workspace::new(1, 8);
    crate::support::pack_tensor(&ws.plugins());
    let server = ws.serve_with(&[], &["--request-memory", "1"]);
    let infer = |params: Value| {
        client()
            .post(server.at("/infer/tensor_double?image=img00&output=json"))
            .json(&params)
            .send()
            .expect("infer")
    };
    // 8³ resized 16 times per axis: 128³ f32, 8 MiB against a 1 MiB budget.
    let r = infer(serde_json::json!({"upsample": 16}));
    assert_eq!(r.status(), 413);
    assert!(r.headers().get("retry-after").is_none(), "no use retrying");
    let body: Value = r.json().expect("typed JSON");
    assert_eq!(body["code"], "OVER_BUDGET", "{body}");
    let detail = body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("budget of 1 MiB") && detail.contains("--request-memory"),
        "{detail}"
    );
    // Within the budget: 16³ and the plain image.
    assert_eq!(infer(serde_json::json!({"upsample": 2})).status(), 200);
    assert_eq!(infer(serde_json::json!({})).status(), 200);
    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"][0]["live_tensors"], 0, "{apps}");
}

#[test]
fn sigterm_answers_in_flight_requests_stops_jobs_and_their_records_survive() {
    let ws = Workspace::new(4, 8);
    pack(&ws.plugins(), "panicky", "panic_app", &[]);
    let mut server = ws.serve(&[]);
    // A batch job of four 3-second images, and an inference in flight.
    let r = client()
        .post(server.at("/batch/infer/slow_infer"))
        .json(&serde_json::json!({"ms": 3000}))
        .send()
        .expect("batch");
    assert_eq!(r.status(), 200);
    let url = server.at("/infer/slow_infer?image=img00&output=json");
    let in_flight = std::thread::spawn(move || {
        client()
            .post(url)
            .json(&serde_json::json!({"ms": 2000}))
            .send()
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let status = server.terminate().expect("the server exits");
    assert!(status.success(), "{status:?}");
    assert_eq!(in_flight.join().expect("thread").expect("answered"), 200);
    let log = server.log();
    assert!(log.contains("stopping background jobs"), "{log}");
    assert!(log.contains("shut down"), "{log}");
    // Restarted: the batch record is there, stopped by the shutdown (not "interrupted").
    let server = ws.serve(&[]);
    let record = get_json(&server, "/batch/infer");
    assert_eq!(record["status"], "STOPPED", "{record}");
    assert!(
        record["details"]
            .to_string()
            .contains("the server shut down"),
        "{record}"
    );
}

#[test]
fn sigkill_during_label_saves_loses_nothing_acknowledged() {
    let ws = Workspace::new(2, 8);
    let label = std::fs::read(ws.studies().join("img00.nii.gz")).expect("read");
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for round in 0..5 {
        let mut server = ws.serve(&[]);
        let url = server.url.clone();
        let bytes = label.clone();
        // Saves as fast as they are answered, until the server dies under them.
        let saver = std::thread::spawn(move || {
            let mut done = Vec::new();
            for n in 0.. {
                let (image, tag) = (format!("img0{}", n % 2), format!("r{round}n{n}"));
                let part = reqwest::blocking::multipart::Part::bytes(bytes.clone())
                    .file_name("label.nii.gz");
                let sent = client()
                    .put(format!("{url}/datastore/label?image={image}&tag={tag}"))
                    .multipart(reqwest::blocking::multipart::Form::new().part("label", part))
                    .send();
                match sent {
                    Ok(r) if r.status() == 200 => done.push((image, tag)),
                    _ => break,
                }
            }
            done
        });
        std::thread::sleep(std::time::Duration::from_millis(700 + 300 * round));
        server.kill();
        let saved = saver.join().expect("saver");
        assert!(
            !saved.is_empty(),
            "round {round} saved nothing before the kill"
        );
        acknowledged.extend(saved);
    }
    // After the last kill: the index parses and holds every acknowledged label, whose
    // file is whole.
    let server = ws.serve(&[]);
    let all = get_json(&server, "/datastore/?output=all");
    for (image, tag) in &acknowledged {
        let entry = &all["objects"][image]["labels"][tag];
        assert!(entry.is_object(), "{image}/{tag} lost from the index");
        let file = ws.studies().join(format!("labels/{tag}/{image}.nii.gz"));
        assert_eq!(
            std::fs::read(&file).expect("the label file"),
            label,
            "{image}/{tag}"
        );
    }
    assert!(acknowledged.len() >= 5, "{} saves", acknowledged.len());
}

#[test]
fn a_full_disk_refuses_the_save_with_507_and_keeps_what_was_saved() {
    // A 3 MiB tmpfs as the studies folder: needs mount (root here; skipped, saying so,
    // where the test runs without it).
    let ws = Workspace::new(1, 8);
    let small = ws.dir.path().join("small");
    std::fs::create_dir_all(&small).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    let studies = ws.studies();
    std::fs::rename(&studies, ws.dir.path().join("studies-big")).expect("move aside");
    std::os::unix::fs::symlink(&small, &studies).expect("studies on the tmpfs");
    let volume = ws.dir.path().join("noise.nii");
    crate::support::write_volume(&volume, 48, 150.0); // 48³ float32: 432 KiB, incompressible
    std::fs::copy(&volume, small.join("img00.nii")).expect("image");
    let server = ws.serve(&[]);
    let label = std::fs::read(&volume).expect("read");
    let mut saved = Vec::new();
    let mut full = None;
    for n in 0..20 {
        let part = reqwest::blocking::multipart::Part::bytes(label.clone()).file_name("l.nii");
        let r = client()
            .put(server.at(&format!("/datastore/label?image=img00&tag=t{n}")))
            .multipart(reqwest::blocking::multipart::Form::new().part("label", part))
            .send()
            .expect("save");
        if r.status() == 200 {
            saved.push(format!("t{n}"));
        } else {
            full = Some((r.status().as_u16(), r.json::<Value>().expect("typed JSON")));
            break;
        }
    }
    let (status, body) = full.expect("the disk filled up");
    assert_eq!(
        (status, &body["code"]),
        (507, &serde_json::json!("STORAGE_FULL")),
        "{body}"
    );
    assert!(!saved.is_empty());
    // Everything acknowledged is whole and indexed; no temp file is left behind.
    let all = get_json(&server, "/datastore/?output=all");
    for tag in &saved {
        assert!(
            all["objects"]["img00"]["labels"][tag].is_object(),
            "{tag} lost"
        );
        let file = small.join(format!("labels/{tag}/img00.nii"));
        assert_eq!(std::fs::read(&file).expect("label"), label, "{tag}");
    }
    let leftovers: Vec<_> = walk(&small)
        .into_iter()
        .filter(|p| p.contains(".labelhost-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(server);
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
