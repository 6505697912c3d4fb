//! Several hosts as one service over a real PostgreSQL (Debian's, started per test by
//! scripts/postgres.sh): hosts over one studies folder share claims, labels and one
//! training (a dead host's job is taken for dead); over one PACS, a model trained on one
//! host reaches the other, and a label saved or image info merged on one is read by the
//! other within a round.

use crate::{
    pacs::{dicom, dicom_files, Pacs},
    support::{client, get_json, pack_segmentation, put_label, repo_root, Server, Workspace},
    training::{start, wait_done},
};
use serde_json::{json, Value};
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A PostgreSQL on 127.0.0.1 with its data in a temporary folder; killed when dropped.
pub(crate) struct Postgres {
    child: Child,
    /// `postgres://labelhost@127.0.0.1:PORT/postgres`
    pub(crate) url: String,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Starts one (scripts/postgres.sh run) and waits until it takes connections.
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // As root the server runs as the postgres user, which must reach its folder.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("log");
        let child = Command::new(repo_root().join("scripts/postgres.sh"))
            .arg("run")
            .arg(dir.path().join("db"))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("scripts/postgres.sh run (scripts/postgres.sh install first)");
        let mut pg = Postgres {
            child,
            url: format!("postgres://labelhost@127.0.0.1:{port}/postgres"),
            dir,
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = pg.child.try_wait() {
                panic!("PostgreSQL exited ({status}): {}", pg.log());
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no PostgreSQL in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A host of the cluster at `pg`, named `name`, on `ws` with `extra` flags.
pub(crate) fn host(ws: &Workspace, pg: &Postgres, name: &str, extra: &[&str]) -> Server {
    let runtime = ws.dir.path().join(format!("runtime-{name}"));
    let mut flags = vec![
        "--cluster",
        &pg.url,
        "--host-name",
        name,
        "--cluster-poll",
        "0.2",
        "--runtime-dir",
        runtime.to_str().expect("utf-8"),
    ];
    flags.extend(extra);
    ws.serve_with(&[], &flags)
}

fn next_sample(server: &Server, client_id: &str) -> Value {
    let r = client()
        .post(server.at("/activelearning/random"))
        .json(&json!({"client_id": client_id}))
        .send()
        .expect("next sample");
    assert_eq!(r.status(), 200);
    r.json().expect("json")
}

/// Polls `f` until it holds (at most `limit`), explaining `what` if it never does.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what} (after {limit:?})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last training record a host reports (`null` before any).
fn last_training(server: &Server) -> Value {
    let r = client()
        .get(server.at("/train/"))
        .send()
        .expect("GET /train/");
    if r.status() == 404 {
        return Value::Null;
    }
    r.json().expect("json")
}

fn a_label(ws: &Workspace, image: &str) -> std::path::PathBuf {
    let path = ws.dir.path().join(format!("{image}-label.nii.gz"));
    crate::support::write_label(&ws.studies().join(format!("{image}.nii.gz")), &path, |v| {
        u8::from(v > 50.0)
    });
    path
}

#[test]
fn hosts_over_one_folder_share_claims_labels_and_one_training() {
    let pg = Postgres::start();
    let ws = Workspace::new(4, 16);
    pack_segmentation(&ws.plugins());
    let (a, mut b) = (host(&ws, &pg, "a", &[]), host(&ws, &pg, "b", &[]));

    // Claims: four annotators, two on each host, get the four images, each once; a fifth
    // gets nothing while the claims are fresh; an annotator asking again keeps theirs.
    let mut served = Vec::new();
    for (i, who) in ["ann", "bob", "cat", "dan"].iter().enumerate() {
        let server = if i % 2 == 0 { &a } else { &b };
        let s = next_sample(server, who);
        served.push(s["id"].as_str().expect("an image").to_owned());
    }
    let mut distinct = served.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "each image served once: {served:?}");
    assert_eq!(next_sample(&b, "eve"), json!({}), "all four are claimed");
    assert_eq!(next_sample(&a, "bob")["id"], served[1], "bob keeps his");

    // Labels: saved on one host, read on the other at once.
    put_label(&a, &served[0], "final", &a_label(&ws, &served[0]));
    put_label(&b, &served[1], "final", &a_label(&ws, &served[1]));
    for server in [&a, &b] {
        assert_eq!(get_json(server, "/datastore/?output=stats")["completed"], 2);
    }

    // One training across the hosts: while a trains, b answers 429 naming a, reports a's
    // record, and a stop asked on b stops a's job within an iteration.
    let long = json!({"max_epochs": 1000, "train_batch_size": 1});
    let running = start(&a, "segmentation_unet", &long);
    eventually(Duration::from_secs(10), "b sees it run", || {
        let r = last_training(&b);
        r["id"] == running["id"] && r["status"] == "RUNNING"
    });
    let r = client()
        .post(b.at("/train/segmentation_unet"))
        .json(&json!({"max_epochs": 1}))
        .send()
        .expect("train on b");
    assert_eq!(r.status(), 429);
    assert!(
        r.text().unwrap_or_default().contains("on a"),
        "names host a"
    );
    let r = client().delete(b.at("/train/")).send().expect("stop");
    assert_eq!(r.status(), 200);
    eventually(
        Duration::from_secs(60),
        "a stops its job, b reports it",
        || {
            get_json(&a, "/train/")["status"] == "STOPPED"
                && last_training(&b)["status"] == "STOPPED"
        },
    );
    // A job to its end on a, reported by b.
    let started = start(
        &a,
        "segmentation_unet",
        &json!({"max_epochs": 2, "train_batch_size": 1}),
    );
    eventually(Duration::from_secs(10), "b reports a's job", || {
        last_training(&b)["id"] == started["id"]
    });
    let done = wait_done(&b, Duration::from_secs(300));
    assert_eq!(done["id"], started["id"]);
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(get_json(&a, "/train/")["status"], "DONE");

    // A host that dies with a job running: the others take it for dead (no heartbeat for
    // ten of their rounds, at least 3 s) and may train.
    let doomed = start(&b, "segmentation_unet", &long);
    eventually(Duration::from_secs(10), "a sees b's job", || {
        last_training(&a)["id"] == doomed["id"]
    });
    b.kill();
    eventually(Duration::from_secs(30), "b's job taken for dead", || {
        let r = get_json(&a, "/train/");
        r["id"] == doomed["id"] && r["status"] == "ERROR"
    });
    let last = get_json(&a, "/train/");
    assert!(
        last.to_string().contains("host b stopped reporting"),
        "{last}"
    );
    let again = start(&a, "segmentation_unet", &json!({"max_epochs": 1}));
    let done = wait_done(&a, Duration::from_secs(300));
    assert_eq!(
        (done["id"].clone(), done["status"].clone()),
        (again["id"].clone(), json!("DONE"))
    );
    // Each host keeps its own records file in the shared folder.
    let files = |name: &str| ws.studies().join(".labelhost").join(name).is_file();
    assert!(files("jobs.a.json") && files("jobs.b.json"));

    // A final label deleted: its finished claim goes, and the image is served again.
    let r = client()
        .delete(a.at(&format!("/datastore/label?id={}&tag=final", served[0])))
        .send()
        .expect("delete label");
    assert_eq!(r.status(), 200);
    assert_eq!(next_sample(&a, "fay")["id"], served[0].as_str());
    drop(pg);
}

/// `n` small volumes written as DICOM MR series (one patient each) and sent to `pacs`.
fn upload_volumes(pacs: &Pacs, dir: &Path, n: usize) {
    for i in 0..n {
        let nifti = dir.join(format!("v{i}.nii.gz"));
        crate::support::write_volume(&nifti, 16, 100.0 + i as f32);
        let series = dir.join(format!("s{i}"));
        dicom(&[
            "from-nifti",
            nifti.to_str().expect("utf-8"),
            "-o",
            series.to_str().expect("utf-8"),
            "--patient-id",
            &format!("p{i}"),
        ]);
        pacs.upload(&dicom_files(&series));
    }
}

#[test]
fn over_one_pacs_a_model_trained_on_one_host_reaches_the_other() {
    let (pg, pacs) = (Postgres::start(), Pacs::start());
    let files = tempfile::tempdir().expect("tempdir");
    upload_volumes(&pacs, files.path(), 2);
    let (wa, wb) = (Workspace::new(0, 8), Workspace::new(0, 8));
    pack_segmentation(&wa.plugins());
    pack_segmentation(&wb.plugins());
    let dicomweb = pacs.dicomweb();
    let over = |ws: &Workspace, name: &str| {
        let cache = ws.dir.path().join("cache");
        let flags = [
            "--studies",
            &dicomweb,
            "--dicomweb-cache",
            cache.to_str().expect("utf-8"),
            "--dicomweb-poll",
            "3600",
            // One series per QIDO-RS page: the search goes through the pages.
            "--dicomweb-page-size",
            "1",
        ];
        host(ws, &pg, name, &flags)
    };
    let (a, b) = (over(&wa, "a"), over(&wb, "b"));
    let images: Vec<String> = get_json(&a, "/datastore/?output=all")["objects"]
        .as_object()
        .expect("objects")
        .keys()
        .cloned()
        .collect();
    assert_eq!(images.len(), 2);

    // A label saved on a reaches b at once (its DICOMweb search is an hour away).
    for image in &images {
        let label = client()
            .post(a.at(&format!(
                "/infer/segmentation_kmeans?image={image}&output=image"
            )))
            .send()
            .expect("infer")
            .bytes()
            .expect("bytes");
        let file = files.path().join(format!("{image}.nii.gz"));
        std::fs::write(&file, &label).expect("write");
        put_label(&a, image, "final", &file);
    }
    eventually(Duration::from_secs(30), "b reads a's labels", || {
        get_json(&b, "/datastore/?output=stats")["completed"] == 2
    });

    // Image info a client merges on a (each host's cache has its own index) reaches b.
    let form =
        reqwest::blocking::multipart::Form::new().text("info", r#"{"reviewed_by": "alice"}"#);
    let r = client()
        .put(a.at(&format!("/datastore/image/info?image={}", images[1])))
        .multipart(form)
        .send()
        .expect("PUT image info");
    assert_eq!(r.status(), 200);
    eventually(Duration::from_secs(30), "b has a's image info", || {
        get_json(&b, &format!("/datastore/image/info?image={}", images[1]))["reviewed_by"]
            == "alice"
    });

    // A training on a publishes its model; b's model (its checksum in MONAI Label's
    // /model/info) becomes a's, and b's inference gives what a's does.
    let checksum =
        |server: &Server| get_json(server, "/model/info/segmentation_unet")["checksum"].clone();
    let before = checksum(&b);
    start(
        &a,
        "segmentation_unet",
        &json!({"max_epochs": 2, "train_batch_size": 1}),
    );
    assert_eq!(wait_done(&a, Duration::from_secs(300))["status"], "DONE");
    let trained = checksum(&a);
    assert_ne!(trained, before, "the training published a new model on a");
    eventually(Duration::from_secs(30), "the model reaches b", || {
        checksum(&b) == trained
    });
    let infer = |server: &Server| {
        client()
            .post(server.at(&format!(
                "/infer/segmentation_unet?image={}&output=image",
                images[0]
            )))
            .send()
            .expect("infer")
            .bytes()
            .expect("bytes")
    };
    assert_eq!(infer(&a), infer(&b), "the same model on both hosts");
}
