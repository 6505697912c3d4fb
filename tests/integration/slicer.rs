//! 3D Slicer's MONAI Label module, replayed call by call (the order and the params it
//! sends, from its source): connect, next sample, download, auto-segment to NRRD, upload a
//! local image, a session, submit an NRRD label, retrain.

use crate::support::{client, get_json, pack_first_party, write_volume, Workspace};
use reqwest::blocking::multipart::{Form, Part};
use serde_json::{json, Value};

fn multipart_params(params: &Value) -> Form {
    Form::new().text("params", params.to_string())
}

#[test]
fn the_3d_slicer_module_call_order_works_against_labelhost() {
    let ws = Workspace::new(2, 16);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let c = client();

    // 1. Every action starts with GET /auth/: 404 means auth is disabled.
    assert_eq!(
        c.get(server.at("/auth/")).send().expect("auth").status(),
        404
    );
    // 2. Connect: /info/, then is training running?
    let info = get_json(&server, "/info/");
    assert!(info["models"]["segmentation_kmeans"].is_object());
    assert_eq!(
        c.get(server.at("/train/?check_if_running=true"))
            .send()
            .expect("train?")
            .status(),
        404
    );
    // 3. Next sample, with the strategy config and client_id.
    let sample: Value = c
        .post(server.at("/activelearning/random"))
        .json(&json!({"client_id": "slicer"}))
        .send()
        .expect("next")
        .json()
        .expect("json");
    let id = sample["id"].as_str().expect("id").to_owned();
    //    Slicer downloads the image when its path is not local, and reads the index.
    let image = c
        .get(server.at(&format!("/datastore/image?image={id}")))
        .send()
        .expect("download");
    assert_eq!(image.status(), 200);
    assert!(image.bytes().expect("bytes").len() > 100);
    assert!(get_json(&server, "/datastore/?output=all")["objects"][&id].is_object());
    // 4. Auto-segmentation: multipart params with Slicer's result_extension/result_dtype.
    let params = json!({"client_id": "slicer", "result_extension": ".nrrd", "result_dtype": "uint8", "iterations": 10});
    let url = server.at(&format!("/infer/segmentation_kmeans?image={id}"));
    let r = c
        .post(url)
        .multipart(multipart_params(&params))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    let ctype = r.headers()["content-type"]
        .to_str()
        .expect("ctype")
        .to_owned();
    let body = r.bytes().expect("multipart");
    assert!(ctype.starts_with("multipart/form-data"), "{ctype}");
    let start = body
        .windows(8)
        .position(|w| w == b"NRRD0004")
        .expect("an NRRD part");
    let boundary = ctype.split("boundary=").nth(1).expect("boundary");
    let end = body[start..]
        .windows(boundary.len())
        .position(|w| w == boundary.as_bytes())
        .expect("end")
        + start;
    let nrrd = body[start..end - 4].to_vec(); // minus "\r\n--"
                                              // 5. A local image not on the server: the deprecated PUT /datastore/ alias.
    let local = ws.dir.path().join("local.nii.gz");
    write_volume(&local, 16, 140.0);
    let form = multipart_params(&json!({"client_id": "slicer"})).part(
        "file",
        Part::bytes(std::fs::read(&local).expect("read")).file_name("local.nii.gz"),
    );
    let r: Value = c
        .put(server.at("/datastore/?image=local"))
        .multipart(form)
        .send()
        .expect("upload")
        .json()
        .expect("json");
    assert_eq!(r["image"], "local");
    //    Or session mode: PUT /session/, GET /session/{id}, infer with session_id.
    let form = Form::new().part(
        "files",
        Part::bytes(std::fs::read(&local).expect("read")).file_name("local.nii.gz"),
    );
    let s: Value = c
        .put(server.at("/session/"))
        .multipart(form)
        .send()
        .expect("session")
        .json()
        .expect("json");
    let sid = s["session_id"].as_str().expect("sid");
    assert_eq!(get_json(&server, &format!("/session/{sid}"))["name"], sid);
    let url = server.at(&format!("/infer/brain_otsu?image=&session_id={sid}"));
    assert_eq!(
        c.post(url)
            .multipart(multipart_params(&params))
            .send()
            .expect("infer")
            .status(),
        200
    );
    // 6. Submit label: PUT /datastore/label (no tag = final) with the NRRD from step 4.
    let label_params = json!({"label_info": [{"name": "class_1", "idx": 1}], "model": "segmentation_kmeans", "client_id": "slicer"});
    let form =
        multipart_params(&label_params).part("label", Part::bytes(nrrd).file_name("label.nrrd"));
    let r: Value = c
        .put(server.at(&format!("/datastore/label?image={id}")))
        .multipart(form)
        .send()
        .expect("save")
        .json()
        .expect("json");
    assert_eq!(
        (r["image"].as_str(), r["label"].as_str()),
        (Some(id.as_str()), Some(id.as_str()))
    );
    assert_eq!(get_json(&server, "/info/")["datastore"]["completed"], 1);
    // 7. Auto-retrain: running? stop, then train the model on the submitted NRRD label.
    assert_eq!(
        c.get(server.at("/train/?check_if_running=true"))
            .send()
            .expect("train?")
            .status(),
        404
    );
    assert_eq!(
        c.delete(server.at("/train/"))
            .send()
            .expect("stop")
            .json::<Value>()
            .expect("json"),
        Value::Null
    );
    let started: Value = c
        .post(server.at("/train/segmentation_kmeans"))
        .json(&json!({}))
        .send()
        .expect("train")
        .json()
        .expect("json");
    assert_eq!(started["status"], "SUBMITTED");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        last = get_json(&server, "/train/");
        if last["status"] != "SUBMITTED" && last["status"] != "RUNNING" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        last["status"], "DONE",
        "trained on Slicer's NRRD label: {last}"
    );
    // 8. The original (model) label is downloadable too.
    let r = c
        .get(server.at(&format!("/datastore/label?label={id}&tag=original")))
        .send()
        .expect("label");
    assert_eq!(r.status(), 200);
}
