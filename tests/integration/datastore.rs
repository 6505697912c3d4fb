//! MONAI Label's `/datastore/...` routes: upload, list, download, checksums, labels, info,
//! removal, and their typed JSON errors.

use crate::support::{client, get_json, write_volume, Server, Workspace};
use reqwest::blocking::multipart::{Form, Part};
use serde_json::{json, Value};

/// A small real NIfTI volume, as bytes.
fn volume_bytes(ws: &Workspace) -> Vec<u8> {
    let path = ws.dir.path().join("upload-source.nii.gz");
    write_volume(&path, 8, 150.0);
    std::fs::read(&path).expect("read volume")
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(bytes)?;
            child.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

/// A multipart form with a file part `part` named `file_name` and an optional `params`.
fn upload_form(part: &str, bytes: &[u8], file_name: &str, params: Option<Value>) -> Form {
    let form = Form::new().part(
        part.to_owned(),
        Part::bytes(bytes.to_vec()).file_name(file_name.to_owned()),
    );
    match params {
        Some(p) => form.text("params", p.to_string()),
        None => form,
    }
}

/// Sends a PUT with a multipart form; asserts 200 and returns the JSON answer.
fn put_form(server: &Server, path: &str, form: Form) -> Value {
    let r = client()
        .put(server.at(path))
        .multipart(form)
        .send()
        .expect("PUT");
    assert_eq!(r.status(), 200, "PUT {path}");
    r.json().expect("JSON answer")
}

/// Asserts a typed JSON error.
fn assert_error(r: reqwest::blocking::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "{:?}", r.url().as_str());
    let body: Value = r.json().expect("typed JSON error");
    assert_eq!(body["code"], code, "{body}");
    body
}

#[test]
fn images_upload_list_download_check_and_delete() {
    let ws = Workspace::new(1, 8);
    let server = ws.serve(&[]);
    let c = client();
    let bytes = volume_bytes(&ws);

    // The deprecated alias with an id, then the new route with the id from the file name.
    let params = json!({"source": "scanner", "series": 3});
    let form = upload_form("file", &bytes, "whatever.nii.gz", Some(params));
    assert_eq!(
        put_form(&server, "/datastore/?image=x", form),
        json!({"image": "x"})
    );
    let form = upload_form("file", &bytes, "abc.nii.gz", None);
    assert_eq!(
        put_form(&server, "/datastore/image", form),
        json!({"image": "abc"})
    );
    assert!(ws.studies().join("x.nii.gz").is_file());

    // Bigger than axum's default 2 MiB body limit (128³ float32, 8 MiB); stored and served
    // back whole.
    let big_path = ws.dir.path().join("big-source.nii");
    write_volume(&big_path, 128, 150.0);
    let big = std::fs::read(&big_path).expect("read volume");
    let form = upload_form("file", &big, "big.nii", None);
    assert_eq!(
        put_form(&server, "/datastore/image", form),
        json!({"image": "big"})
    );
    let r = c
        .get(server.at("/datastore/image?image=big"))
        .send()
        .expect("GET");
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().expect("bytes").as_ref(), big.as_slice());
    let r = c
        .delete(server.at("/datastore/image?id=big"))
        .send()
        .expect("DELETE");
    assert_eq!(r.status(), 200);

    let all = get_json(&server, "/datastore/?output=all");
    let x = &all["objects"]["x"]["image"];
    assert_eq!(x["ext"], ".nii.gz");
    assert_eq!(x["info"]["source"], "scanner");
    assert_eq!(x["info"]["series"], 3);
    assert_eq!(x["info"]["name"], "x.nii.gz");
    assert!(all["objects"]["abc"].is_object(), "{all}");
    assert!(all.get("base_path").is_none());
    for path in ["/datastore/", "/datastore", "/datastore/?output=stats"] {
        let stats = get_json(&server, path);
        assert_eq!(stats["total"], 3, "{path}: {stats}");
        assert_eq!(stats["completed"], 0);
    }

    let r = c
        .get(server.at("/datastore/image?image=x"))
        .send()
        .expect("GET");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"x.nii.gz\""
    );
    assert_eq!(r.bytes().expect("bytes").as_ref(), bytes.as_slice());

    let digest = sha256_hex(&bytes);
    let head = |query: String| {
        c.head(server.at(&format!("/datastore/image?{query}")))
            .send()
            .expect("HEAD")
            .status()
    };
    assert_eq!(head("image=x".into()), 200);
    assert_eq!(head(format!("image=x&check_sum=SHA256:{digest}")), 200);
    assert_eq!(head(format!("image=x&check_sum={digest}")), 200);
    assert_eq!(
        head(format!("image=x&check_sum=SHA256:{}", "0".repeat(64))),
        404
    );
    assert_eq!(head("image=nope".into()), 404);

    let info = get_json(&server, "/datastore/image/info?image=x");
    assert_eq!(info["source"], "scanner");
    assert_eq!(info["path"], "/datastore/image?image=x");
    let r = c
        .put(server.at("/datastore/image/info?image=x"))
        .form(&[("info", r#"{"reviewed": true}"#)])
        .send()
        .expect("PUT info");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().expect("json"), Value::Null);
    let info = get_json(&server, "/datastore/image/info?image=x");
    assert_eq!(
        (info["reviewed"].clone(), info["source"].clone()),
        (json!(true), json!("scanner"))
    );
    assert_eq!(
        get_json(&server, "/datastore/image/info?image=nope"),
        json!({})
    );

    for (path, id) in [
        ("/datastore/image?id=abc", "abc"),
        ("/datastore/?id=x", "x"),
    ] {
        let r = c.delete(server.at(path)).send().expect("DELETE");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.json::<Value>().expect("json"), json!({}));
        assert!(!ws.studies().join(format!("{id}.nii.gz")).exists());
    }
    assert_eq!(get_json(&server, "/datastore/")["total"], 1);
    let r = c
        .delete(server.at("/datastore/image?id=x"))
        .send()
        .expect("DELETE");
    assert_error(r, 404, "NOT_FOUND");
}

#[test]
fn labels_save_download_info_and_delete() {
    let ws = Workspace::new(1, 8);
    let server = ws.serve(&[]);
    let c = client();
    let label_path = ws.dir.path().join("label.nii.gz");
    crate::support::write_label(&ws.studies().join("img00.nii.gz"), &label_path, |v| {
        u8::from(v > 100.0)
    });
    let label = std::fs::read(&label_path).expect("read label");

    let params = json!({"label_info": [{"name": "brain", "idx": 1}], "client_id": "t"});
    let form = upload_form("label", &label, "label.nii.gz", Some(params));
    assert_eq!(
        put_form(&server, "/datastore/label?image=img00", form),
        json!({"image": "img00", "label": "img00"})
    );
    assert!(ws.studies().join("labels/final/img00.nii.gz").is_file());

    let r = c
        .get(server.at("/datastore/label?label=img00&tag=final"))
        .send()
        .expect("GET label");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"img00.nii.gz\""
    );
    assert_eq!(r.bytes().expect("bytes").as_ref(), label.as_slice());

    let stats = get_json(&server, "/datastore/");
    assert_eq!(stats["completed"], 1, "{stats}");
    assert_eq!(stats["label_tags"]["final"], 1);
    let train = get_json(&server, "/datastore/?output=train");
    let rows = train.as_array().expect("datalist");
    assert_eq!(rows.len(), 1);
    // Without --share-paths: the routes that serve them, not the server's paths.
    assert_eq!(rows[0]["image"], "/datastore/image?image=img00");
    assert_eq!(rows[0]["label"], "/datastore/label?label=img00&tag=final");

    let head = |tag: &str| {
        c.head(server.at(&format!("/datastore/label?image=img00&tag={tag}")))
            .send()
            .expect("HEAD")
            .status()
    };
    assert_eq!(head("final"), 200);
    assert_eq!(head("original"), 404);

    let info_path = "/datastore/label/info?label=img00&tag=final";
    assert_eq!(
        get_json(&server, info_path)["label_info"][0]["name"],
        "brain"
    );
    let r = c
        .put(server.at(info_path))
        .form(&[("info", r#"{"reviewed": 1}"#)])
        .send()
        .expect("PUT label info");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().expect("json"), Value::Null);
    let r = c
        .put(server.at("/datastore/updatelabelinfo?label=img00&tag=final"))
        .multipart(Form::new().text("params", r#"{"status": "approved"}"#))
        .send()
        .expect("PUT updatelabelinfo");
    assert_eq!(r.status(), 200);
    let info = get_json(&server, info_path);
    assert_eq!(
        (&info["reviewed"], &info["status"], &info["client_id"]),
        (&json!(1), &json!("approved"), &json!("t"))
    );
    assert_eq!(
        get_json(&server, "/datastore/label/info?label=img00&tag=original"),
        json!({})
    );

    let r = c
        .delete(server.at("/datastore/label?id=img00&tag=final"))
        .send()
        .expect("DELETE label");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().expect("json"), json!({}));
    assert_eq!(get_json(&server, "/datastore/")["completed"], 0);
    let r = c
        .get(server.at("/datastore/label?label=img00&tag=final"))
        .send()
        .expect("GET label");
    let body = assert_error(r, 404, "NOT_FOUND");
    assert_eq!(body["detail"], "Label NOT Found or is a directory");

    let r = c
        .delete(server.at("/datastore/image?id=img00"))
        .send()
        .expect("DELETE image");
    assert_eq!(r.status(), 200);
    assert_eq!(get_json(&server, "/datastore/")["total"], 0);
}

#[test]
fn bad_datastore_requests_get_typed_errors() {
    let ws = Workspace::new(1, 8);
    let server = ws.serve(&[]);
    let c = client();
    let bytes = volume_bytes(&ws);

    let r = c
        .get(server.at("/datastore/image?image=nope"))
        .send()
        .expect("GET");
    let body = assert_error(r, 404, "NOT_FOUND");
    assert_eq!(body["detail"], "Image NOT Found or is a directory");

    let r = c
        .get(server.at("/datastore/image?image=../x"))
        .send()
        .expect("GET");
    assert_error(r, 400, "INVALID_INPUT");
    let form = upload_form("file", &bytes, "x.nii.gz", None);
    let r = c
        .put(server.at("/datastore/image?image=../x"))
        .multipart(form)
        .send()
        .expect("PUT");
    assert_error(r, 400, "INVALID_INPUT");

    // No `file` part, no multipart body at all, no `label` part: FastAPI's 422.
    let r = c
        .put(server.at("/datastore/image?image=y"))
        .multipart(Form::new().text("params", "{}"))
        .send()
        .expect("PUT");
    assert_error(r, 422, "INVALID_INPUT");
    let r = c.put(server.at("/datastore/?image=y")).send().expect("PUT");
    assert_error(r, 422, "INVALID_INPUT");
    let r = c
        .put(server.at("/datastore/label?image=img00"))
        .multipart(Form::new().text("params", "{}"))
        .send()
        .expect("PUT");
    assert_error(r, 422, "INVALID_INPUT");
    let r = c
        .get(server.at("/datastore/label?label=img00"))
        .send()
        .expect("GET");
    assert_error(r, 422, "INVALID_INPUT");

    let form = upload_form("file", &bytes, "y.nii.gz", None).text("params", "{not json");
    let r = c
        .put(server.at("/datastore/image?image=y"))
        .multipart(form)
        .send()
        .expect("PUT");
    assert_error(r, 400, "INVALID_INPUT");
    let form = upload_form("label", &bytes, "l.nii.gz", None);
    let r = c
        .put(server.at("/datastore/label?image=nope"))
        .multipart(form)
        .send()
        .expect("PUT");
    assert_error(r, 404, "NOT_FOUND");
    let r = c
        .put(server.at("/datastore/image/info?image=nope"))
        .form(&[("info", "{}")])
        .send()
        .expect("PUT");
    assert_error(r, 404, "NOT_FOUND");
    let r = c
        .get(server.at("/datastore/?output=pdf"))
        .send()
        .expect("GET");
    assert_error(r, 400, "INVALID_INPUT");

    // Nothing was stored.
    assert_eq!(get_json(&server, "/datastore/")["total"], 1);
}

#[test]
fn sessions_and_uploaded_files_are_inferred_like_stored_images() {
    use reqwest::blocking::multipart::{Form, Part};
    let ws = crate::support::Workspace::new(1, 12);
    crate::support::pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let volume = std::fs::read(ws.studies().join("img00.nii.gz")).expect("volume");
    let part = || Part::bytes(volume.clone()).file_name("upload.nii.gz");

    // A session: upload once, infer by id, read it back, delete it.
    let form = Form::new().part("files", part());
    let r = crate::support::client()
        .put(server.at("/session/"))
        .multipart(form)
        .send()
        .expect("session");
    assert_eq!(r.status(), 200);
    let created: serde_json::Value = r.json().expect("json");
    let id = created["session_id"].as_str().expect("id").to_owned();
    // Without --share-paths: where the API serves it, not where the server keeps it.
    assert_eq!(
        created["session_info"]["image"],
        format!("/session/{id}?image=true")
    );
    let info = crate::support::get_json(&server, &format!("/session/{id}?update_ts=true"));
    assert_eq!(info["name"], id.as_str());
    let bytes = crate::support::client()
        .get(server.at(&format!("/session/{id}?image=true")))
        .send()
        .expect("image")
        .bytes()
        .expect("bytes");
    assert_eq!(bytes.as_ref(), volume.as_slice());
    let url = server.at(&format!("/infer/brain_otsu?session_id={id}&output=json"));
    let r = crate::support::client().post(url).send().expect("infer");
    assert_eq!(r.status(), 200);
    assert!(r.json::<serde_json::Value>().expect("json")["threshold"]
        .as_f64()
        .is_some());
    let r = crate::support::client()
        .delete(server.at(&format!("/session/{id}")))
        .send()
        .expect("delete");
    assert_eq!(r.status(), 200);
    let r = crate::support::client()
        .get(server.at(&format!("/session/{id}")))
        .send()
        .expect("gone");
    assert_eq!(r.status(), 404);

    // An uploaded file with multipart params and a label part (accepted; passed as `label`).
    let form = Form::new()
        .text("params", r#"{"save_label": true}"#)
        .part("file", part())
        .part("label", part());
    let url = server.at("/infer/brain_otsu?output=all");
    let r = crate::support::client()
        .post(url)
        .multipart(form)
        .send()
        .expect("infer upload");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ctype")
        .starts_with("multipart/form-data"));
    let stats = crate::support::get_json(&server, "/datastore/?output=stats");
    assert_eq!(stats["total"], 1, "an upload is not added to the datastore");
    assert!(
        stats["label_tags"].get("original").is_none(),
        "nor is its label saved"
    );
    let r = crate::support::client()
        .post(server.at("/infer/brain_otsu?output=json"))
        .send()
        .expect("no input");
    assert_eq!(r.status(), 400);
    let r = crate::support::client()
        .put(server.at("/session/"))
        .multipart(Form::new().text("x", "y"))
        .send()
        .expect("empty");
    assert_eq!(r.status(), 404);
}

#[test]
fn the_dataset_archive_holds_labelled_images_their_labels_and_the_index() {
    let ws = crate::support::Workspace::new(3, 8);
    crate::support::pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let c = crate::support::client();
    let r = c
        .get(server.at("/datastore/dataset"))
        .send()
        .expect("empty");
    assert_eq!(r.status(), 404, "no final labels yet");
    for id in ["img00", "img02"] {
        let label = std::fs::read(ws.studies().join(format!("{id}.nii.gz"))).expect("volume");
        let part = reqwest::blocking::multipart::Part::bytes(label).file_name("label.nii.gz");
        let form = reqwest::blocking::multipart::Form::new().part("label", part);
        let r = c
            .put(server.at(&format!("/datastore/label?image={id}")))
            .multipart(form)
            .send()
            .expect("label");
        assert_eq!(r.status(), 200);
    }
    let names = |url: &str| -> Vec<String> {
        let r = c.get(server.at(url)).send().expect("dataset");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/zip");
        let bytes = r.bytes().expect("zip");
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a zip");
        let mut names: Vec<String> = (0..zip.len())
            .map(|i| {
                zip.by_index(i)
                    .expect("entry")
                    .name()
                    .expect("name")
                    .to_string()
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names("/datastore/dataset"),
        [
            "image/img00.nii.gz",
            "image/img02.nii.gz",
            "label/img00.nii.gz",
            "label/img02.nii.gz",
            "metadata.json"
        ]
    );
    assert_eq!(names("/datastore/dataset?limit_cases=1").len(), 3);
}
