//! Two first-party apps served at once by one server.

use crate::support::{app_names, client, get_json, pack_first_party, Workspace};
use serde_json::Value;

#[test]
fn two_apps_are_loaded_and_both_answer() {
    let ws = Workspace::new(3, 24);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);

    let names = app_names(&server);
    assert_eq!(names, ["brain", "segmentation"]);

    let info = get_json(&server, "/info/");
    assert_eq!(info["models"]["brain_otsu"]["type"], "segmentation");
    assert_eq!(
        info["models"]["segmentation_kmeans"]["labels"]["class_3"],
        3
    );
    for s in ["first", "last", "random"] {
        assert!(
            info["strategies"][s]["description"].is_string(),
            "strategy {s} in {info}"
        );
    }
    assert!(info["scoring"]["sum"].is_object());
    assert_eq!(info["datastore"]["total"], 3);
    assert_eq!(
        info["labels"],
        serde_json::json!(["brain", "class_1", "class_2", "class_3"])
    );

    // brain: JSON answer; the ball (value ~100) is foreground, the box (~10) is not.
    let r = client()
        .post(server.at("/infer/brain_otsu?image=img00&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-labelhost-app"], "brain");
    let params: Value = r.json().expect("json");
    let threshold = params["threshold"].as_f64().expect("threshold");
    assert!(
        threshold > 20.0 && threshold < 100.0,
        "threshold {threshold}"
    );
    let ball = params["foreground_voxels"].as_u64().expect("count") as f64;
    let expected = 4.0 / 3.0 * std::f64::consts::PI * 6f64.powi(3);
    assert!(
        (ball / expected - 1.0).abs() < 0.25,
        "{ball} voxels vs {expected}"
    );

    // segmentation: MONAI Label's multipart answer; the label is a NIfTI of the same shape.
    let r = client()
        .post(server.at("/infer/segmentation_kmeans?image=img01"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-labelhost-app"], "segmentation");
    let ctype = r.headers()["content-type"]
        .to_str()
        .expect("ctype")
        .to_owned();
    assert!(
        ctype.starts_with("multipart/form-data; boundary="),
        "{ctype}"
    );
    let body = r.bytes().expect("body");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("name=\"params\"") && text.contains("name=\"image\""));
    let label = ws.studies().join("labels/original/img01.nii.gz");
    let obj = nifti::ReaderOptions::new()
        .read_file(&label)
        .expect("saved label is NIfTI");
    use nifti::NiftiObject;
    assert_eq!(&obj.header().dim[1..4], &[24, 24, 24]);

    // Both results were saved as `original` labels in the shared datastore.
    let info = get_json(&server, "/info/");
    assert_eq!(info["datastore"]["label_tags"]["original"], 2);
    assert!(ws.studies().join("labels/original/img00.nii.gz").is_file());
    let r = client()
        .post(server.at("/activelearning/random"))
        .json(&serde_json::json!({"client_id": "t"}))
        .send()
        .expect("next sample");
    assert_eq!(r.status(), 200);
    let sample: Value = r.json().expect("json");
    let id = sample["id"].as_str().expect("id");
    assert!(id.starts_with("img"), "{sample}");
    assert_eq!(sample["strategy"]["random"]["client_id"], "t");
    // Without --share-paths the client is told the route, not where the server keeps it.
    assert_eq!(sample["path"], format!("/datastore/image?image={id}"));
    // The same client may be served its own claim again.
    let r = client()
        .post(server.at("/activelearning/last"))
        .json(&serde_json::json!({"client_id": "t"}))
        .send()
        .expect("last");
    assert_eq!(r.json::<Value>().expect("json")["id"], "img02");
}

#[test]
fn a_plugin_runs_a_bundled_torchscript_model_on_the_host_executor() {
    let ws = Workspace::new(1, 8);
    crate::support::pack_tensor(&ws.plugins());
    let server = ws.serve(&[]);
    let r = client()
        .post(server.at("/infer/tensor_double?image=img00&output=json"))
        .header("x-request-id", "req-tensor-7")
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req-tensor-7");
    let params: Value = r.json().expect("json");
    // The plugin's own log line carries the request's id (its span followed the call).
    let log = server.log();
    let line = log.lines().find(|l| l.contains("doubling"));
    assert!(
        line.is_some_and(|l| l.contains("req-tensor-7")),
        "no plugin line with the request id in\n{log}"
    );
    // A client's id that could forge a log line is replaced by a fresh one.
    let r = client()
        .get(server.at("/info/"))
        .header("x-request-id", "two words")
        .send()
        .expect("info");
    let id = r.headers()["x-request-id"].to_str().expect("id").to_owned();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let (input, output) = (
        params["input_sum"].as_f64().expect("in"),
        params["output_sum"].as_f64().expect("out"),
    );
    assert!(
        input > 0.0 && (output - 2.0 * input).abs() < 1e-3 * input,
        "{params}"
    );
    assert!(params["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .any(|d| d == "cpu"));
}

#[test]
fn grid_changing_transforms_are_undone_by_restore() {
    let ws = Workspace::new(1, 24);
    let model = crate::support::repo_root().join("tests/fixtures/models/double.pt");
    let asset = format!("{}=models/double.pt", model.display());
    crate::support::pack(&ws.plugins(), "tensor", "tensor_app", &[asset]);
    let server = ws.serve(&[]);
    let url = server.at("/infer/tensor_pipeline?image=img00&output=json");
    let r = client().post(url).send().expect("infer");
    assert_eq!(r.status(), 200);
    let params: Value = r.json().expect("json");
    // cropped to the ball (about 13 voxels + 2 margin each side), doubled in size: past 48
    assert!(
        params["padded_shape"][0].as_i64().expect("shape") >= 48,
        "{params}"
    );
    let t = &params["latencies"]["transform"]["pre"];
    for name in ["CropForegroundd", "Spacingd", "SpatialPadd"] {
        assert!(t[name].as_f64().is_some(), "{name}: {params}");
    }

    use nifti::{IntoNdArray, NiftiObject, ReaderOptions};
    let read = |p: std::path::PathBuf| {
        ReaderOptions::new()
            .read_file(p)
            .expect("nifti")
            .into_volume()
            .into_ndarray::<f32>()
            .expect("voxels")
    };
    let label = read(ws.studies().join("labels/original/img00.nii.gz"));
    let input = read(ws.studies().join("img00.nii.gz"));
    assert_eq!(label.shape(), input.shape(), "restored to the input grid");
    let (mut both, mut sum) = (0.0, 0.0);
    for (l, x) in label.iter().zip(input.iter()) {
        let (l, x) = (*l > 0.0, *x > 50.0);
        both += f64::from(u8::from(l && x));
        sum += f64::from(u8::from(l)) + f64::from(u8::from(x));
    }
    let dice = 2.0 * both / sum;
    assert!(dice > 0.95, "restored label vs input > 50: Dice {dice}");
    let bbox = &params["bbox"];
    assert!(
        bbox[0][0].as_u64().expect("start") >= 5 && bbox[0][1].as_u64().expect("end") <= 19,
        "{bbox}"
    );
    assert_eq!(
        params["extreme_points"].as_array().expect("points").len(),
        6
    );
    let centroid: Vec<i64> = params["centroids"]["ball"]
        .as_array()
        .expect("centroid")
        .iter()
        .map(|v| v.as_str().expect("string").parse().expect("number"))
        .collect();
    assert!(
        centroid.iter().all(|c| (11..=13).contains(c)),
        "{centroid:?}"
    );

    // Chained: the pipeline's label feeds the next task, which counts it.
    let url = server.at("/infer/tensor_chain?image=img00&output=json");
    let chained: Value = client()
        .post(url)
        .send()
        .expect("chain")
        .json()
        .expect("json");
    let voxels = label.iter().filter(|v| **v > 0.0).count();
    assert_eq!(chained["label_voxels"], voxels, "{chained}");
    assert_eq!(chained["chain"].as_array().expect("steps").len(), 2);
}

#[test]
fn files_dropped_into_the_studies_folder_appear_and_disappear_without_a_restart() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    let server = ws.serve_with(&[], &["--datastore-poll-ms", "100"]);
    let total = || {
        get_json(&server, "/info/")["datastore"]["total"]
            .as_u64()
            .expect("total")
    };
    let wait_until = |want: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while total() != want && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        total()
    };
    assert_eq!(total(), 1);
    crate::support::write_volume(&ws.studies().join("dropped.nii.gz"), 8, 50.0);
    assert_eq!(wait_until(2), 2, "a dropped image appears");
    let r = client()
        .post(server.at("/infer/brain_otsu?image=dropped&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200, "and can be segmented");
    std::fs::remove_file(ws.studies().join("img00.nii.gz")).expect("rm");
    assert_eq!(wait_until(1), 1, "a removed image disappears");
}

/// `labelhost apps` against a running server: list, retire, load back, hot-swap, and the
/// server's typed error as the message (exit 2) for an unknown app.
#[test]
fn the_cli_lists_retires_loads_and_reloads_the_apps_of_a_running_server() {
    let ws = Workspace::new(1, 24);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::binary())
            .args(["apps", "--server", &server.at("")])
            .args(args)
            .output()
            .expect("labelhost apps");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, out, err) = cli(&["list"]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].starts_with("brain ") && rows[0].contains("infer:brain_otsu"),
        "{out}"
    );
    assert!(rows[1].starts_with("segmentation "), "{out}");

    let (code, out, err) = cli(&["retire", "segmentation"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("retired segmentation"), "{out}");
    assert_eq!(app_names(&server), ["brain"]);
    let (code, out, err) = cli(&["load", "segmentation"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("loaded segmentation"), "{out}");
    let (code, out, err) = cli(&["reload", "brain"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("reloaded brain (generation 2)"), "{out}");
    assert_eq!(app_names(&server), ["brain", "segmentation"]);

    let (code, _, err) = cli(&["retire", "nonesuch"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("404") && err.contains("nonesuch"), "{err}");
}
