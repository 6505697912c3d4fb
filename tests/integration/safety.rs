//! What a careless client or an attacker cannot do: store a broken, huge, unsupported or
//! off-grid file, or one under an id that aliases another image's file; read server paths,
//! ids or query strings from answers and the log; reach the API from another web origin;
//! make the server use a runtime folder others can write. Every refusal is a typed 4xx and
//! leaves the datastore as it was.

use crate::support::{
    binary, client, get_json, pack, pack_first_party, write_volume, Server, Workspace,
};
use flate2::{write::GzEncoder, Compression};
use reqwest::blocking::multipart::{Form, Part};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// Every file under `dir` (but the lock file) with its size, sorted.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list").filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.ends_with(".lock") {
                let size = e.metadata().expect("stat").len();
                out.push((p.display().to_string(), size));
            }
        }
    }
    out.sort();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// PUTs `bytes` as file `name` to `route`; asserts a typed 4xx whose detail has `words`.
fn refused(server: &Server, route: &str, part: &str, name: &str, bytes: &[u8], words: &str) {
    let file = Part::bytes(bytes.to_vec()).file_name(name.to_owned());
    let r = client()
        .put(server.at(route))
        .multipart(Form::new().part(part.to_owned(), file))
        .send()
        .expect("PUT");
    let status = r.status().as_u16();
    let body: Value = r.json().expect("typed JSON error");
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("INVALID_INPUT")),
        "{route} {name}: {body}"
    );
    let detail = body["detail"].as_str().expect("detail");
    assert!(
        detail.contains(words),
        "{route} {name}: {detail:?} lacks {words:?}"
    );
}

#[test]
fn refused_uploads_and_ids_leave_the_datastore_as_it_was() {
    let ws = Workspace::new(1, 16);
    let server = ws.serve(&[]);
    let before = (
        get_json(&server, "/datastore/?output=all"),
        files(&ws.studies()),
    );

    let real = ws.dir.path().join("real.nii");
    write_volume(&real, 16, 150.0);
    let nii = std::fs::read(&real).expect("read");
    let gz = gzip(&nii);
    let patched = |at: usize, bytes: &[u8]| {
        let mut b = nii.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    let huge_dims: Vec<u8> = [3i16, 32767, 32767, 32767]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    let mut bomb = nii.clone();
    bomb.resize(nii.len() + (64 << 20), 0);
    let bomb = gzip(&bomb);
    assert!(bomb.len() < 1 << 20, "64 MiB of zeros compress small");

    let image = "/datastore/image?image=bad";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("cut.nii.gz", gz[..gz.len() / 2].to_vec(), "gzip"),
        ("garbage.nii.gz", b"this is not gzip".to_vec(), "gzip"),
        ("empty.nii.gz", Vec::new(), "gzip"),
        ("empty.nii", Vec::new(), "too short"),
        ("huge.nii", patched(40, &huge_dims), "voxel limit"),
        (
            "lying.nii",
            patched(108, &1e6f32.to_le_bytes()),
            "ends before its data",
        ),
        ("bomb.nii.gz", bomb, "after its data"),
        ("label.exe", b"MZ".to_vec(), "unsupported file type"),
        ("fake.png", b"GIF89a".to_vec(), "signature"),
    ];
    for (name, bytes, words) in &cases {
        refused(&server, image, "file", name, bytes, words);
    }
    // `img00.nii` + `.gz` is img00's own file name; so is `img00` + `.nii.gz` for id
    // `img00.seg` + `.nrrd`... as `img00.seg.nrrd` splits to `img00`.
    refused(
        &server,
        "/datastore/image?image=img00.nii",
        "file",
        "x.gz",
        &gz,
        "the file of id \"img00\"",
    );
    refused(
        &server,
        "/datastore/image?image=img00.seg",
        "file",
        "x.nrrd",
        b"NRRD0004\n",
        "drop the extension",
    );
    // Ids that do not fit a file name, or hide characters.
    let long = format!("/datastore/image?image={}", "x".repeat(250));
    refused(&server, &long, "file", "a.nii.gz", &gz, "too long");
    refused(
        &server,
        "/datastore/image?image=a%E2%80%AEgpj.exe",
        "file",
        "a.nii.gz",
        &gz,
        "text-direction",
    );
    refused(
        &server,
        "/datastore/image?image=tab%09id",
        "file",
        "a.nii.gz",
        &gz,
        "control",
    );

    // A part whose headers would be buffered whole: a 1 MiB file name.
    let name = format!("{}.nii.gz", "n".repeat(1 << 20));
    refused(
        &server,
        image,
        "file",
        &name,
        &gz,
        "headers are over 65536 bytes",
    );

    // Labels: whole, a volume, on the image's grid.
    let label = "/datastore/label?image=img00";
    refused(
        &server,
        label,
        "label",
        "l.nii.gz",
        &gz[..gz.len() / 2],
        "gzip",
    );
    let other = ws.dir.path().join("other.nii.gz");
    write_volume(&other, 12, 1.0);
    let other = std::fs::read(&other).expect("read");
    refused(
        &server,
        label,
        "label",
        "l.nii.gz",
        &other,
        "[12, 12, 12] are not the image's [16, 16, 16]",
    );
    refused(
        &server,
        label,
        "label",
        "l.png",
        b"\x89PNG\r\n\x1a\n",
        "must be one too",
    );

    // A session's image (uploaded once, inferred by id) is checked the same way, and a
    // refused one leaves no session folder (they live under the studies folder).
    for (name, bytes, words) in &cases[..3] {
        refused(&server, "/session/", "files", name, bytes, words);
    }

    let after = (
        get_json(&server, "/datastore/?output=all"),
        files(&ws.studies()),
    );
    assert_eq!(after, before, "nothing stored, nothing changed");
    let scratch = ws.dir.path().join("runtime/scratch");
    assert_eq!(files(&scratch), vec![], "no upload left behind");

    // The same volume, whole, is taken.
    let file = Part::bytes(gz.clone()).file_name("good.nii.gz");
    let r = client()
        .put(server.at("/datastore/image?image=good"))
        .multipart(Form::new().part("file", file))
        .send()
        .expect("PUT");
    assert_eq!(r.status(), 200);
}

#[test]
fn an_early_answer_reaches_a_client_still_uploading() {
    // 16 MiB for an image that does not exist: the 404 is decided before the body is read,
    // and the client, still sending, must get it rather than a broken connection.
    let ws = Workspace::new(1, 8);
    let server = ws.serve(&[]);
    let big = vec![7u8; 16 << 20];
    for (route, part) in [
        ("/datastore/label?image=nobody", "label"),
        ("/datastore/label?image=img00&tag=bad%2Ftag", "label"),
        ("/nowhere", "file"),
    ] {
        let file = Part::bytes(big.clone()).file_name("l.nii.gz");
        let r = client()
            .put(server.at(route))
            .multipart(Form::new().part(part, file))
            .send()
            .unwrap_or_else(|e| panic!("{route}: the answer was lost: {e:?}"));
        assert!(r.status().is_client_error(), "{route}: {}", r.status());
        let body: Value = r.json().expect("typed JSON");
        assert!(body["detail"].is_string(), "{route}: {body}");
    }
    assert_eq!(get_json(&server, "/health")["status"], "ok");
}

#[test]
fn answers_and_the_log_keep_server_paths_and_ids_private() {
    let ws = Workspace::new(1, 16);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let c = client();
    let secret = ws.dir.path().display().to_string();

    // A session (its id is a capability), a sample, an inference, image info, the lists.
    let image = std::fs::read(ws.studies().join("img00.nii.gz")).expect("read");
    let part = Part::bytes(image).file_name("scan.nii.gz");
    let r = c
        .put(server.at("/session/"))
        .multipart(Form::new().part("files", part))
        .send()
        .expect("session");
    let session: Value = r.json().expect("json");
    let id = session["session_id"].as_str().expect("id").to_owned();
    let mut answers = vec![session.to_string()];
    for path in [
        format!("/session/{id}"),
        "/datastore/?output=all".into(),
        "/datastore/?output=train".into(),
        "/datastore/image/info?image=img00".into(),
        "/info/".into(),
        "/apps".into(),
    ] {
        answers.push(get_json(&server, &path).to_string());
    }
    let sample = c
        .post(server.at("/activelearning/random"))
        .json(&json!({"client_id": "someone"}))
        .send()
        .expect("sample");
    answers.push(sample.text().expect("text"));
    let infer = c
        .post(server.at(&format!("/infer/brain_otsu?session_id={id}&output=json")))
        .send()
        .expect("infer");
    assert_eq!(infer.status(), 200);
    answers.push(infer.text().expect("text"));
    // An error's detail.
    let missing = c
        .get(server.at("/datastore/image?image=nope%2F..%2Fx"))
        .send()
        .expect("bad id");
    answers.push(missing.text().expect("text"));
    for answer in &answers {
        assert!(!answer.contains(&secret), "a server path in {answer}");
    }
    assert_eq!(
        get_json(&server, "/datastore/image/info?image=img00")["path"],
        "/datastore/image?image=img00"
    );

    // The log names routes, not URIs: no session id, no query string.
    let log = c
        .get(server.at("/logs/?text=true&lines=5000"))
        .send()
        .expect("logs")
        .text()
        .expect("text");
    assert!(log.contains("/session/{id}"), "the route is logged");
    assert!(!log.contains(&id), "the session id leaked into the log");
    assert!(
        !log.contains("session_id="),
        "a query string leaked into the log"
    );

    // `save_label` is a yes/no: the text "false" saves nothing, a number is refused.
    let infer = |params: Value| {
        let form = Form::new().text("params", params.to_string());
        c.post(server.at("/infer/brain_otsu?image=img00&output=json"))
            .multipart(form)
            .send()
            .expect("infer")
    };
    assert_eq!(infer(json!({"save_label": "false"})).status(), 200);
    let original = c
        .head(server.at("/datastore/label?image=img00&tag=original"))
        .send()
        .expect("head");
    assert_eq!(original.status(), 404, "\"false\" saved a label");
    let r = infer(json!({"save_label": 3}));
    assert_eq!(r.status(), 400);
    let body: Value = r.json().expect("json");
    assert!(body["detail"]
        .as_str()
        .expect("detail")
        .contains("save_label"));

    // A method a route lacks: 405 with the same typed JSON as every error.
    let r = c
        .patch(server.at("/datastore/image"))
        .send()
        .expect("patch");
    assert_eq!(r.status(), 405);
    let body: Value = r.json().expect("typed JSON 405");
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
}

#[test]
fn cross_origin_access_only_for_configured_origins() {
    let ws = Workspace::new(1, 8);
    let preflight = |server: &Server, origin: &str| {
        let r = client()
            .request(
                reqwest::Method::OPTIONS,
                server.at("/datastore/image?id=img00"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "DELETE")
            .send()
            .expect("preflight");
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let closed = ws.serve(&[]);
    assert_eq!(preflight(&closed, "https://evil.example"), None);
    // A page elsewhere cannot even send (a simple POST needs no preflight), and a page
    // reaching 127.0.0.1 under its own name (DNS rebinding) is refused by its Host.
    let r = client()
        .delete(closed.at("/datastore/image?id=img00"))
        .header("origin", "https://evil.example")
        .send()
        .expect("delete");
    assert_eq!(r.status(), 403);
    let port = closed.url.rsplit(':').next().expect("port").to_owned();
    let r = client()
        .get(closed.at("/datastore/"))
        .header("host", format!("evil.example:{port}"))
        .send()
        .expect("rebound");
    assert_eq!(r.status(), 403);
    let own = client()
        .delete(closed.at("/datastore/label?id=img00&tag=final"))
        .header("origin", closed.url.clone())
        .send()
        .expect("same origin");
    assert_eq!(own.status(), 200, "the server's own pages");
    assert_eq!(
        get_json(&closed, "/datastore/")["total"],
        1,
        "img00 is still there"
    );
    let r = client()
        .get(closed.at("/datastore/"))
        .header("origin", "https://evil.example")
        .send()
        .expect("get");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    drop(closed);

    let open = ws.serve_with(&[], &["--cors-origin", "https://viewer.example:8443"]);
    assert_eq!(
        preflight(&open, "https://viewer.example:8443").as_deref(),
        Some("https://viewer.example:8443")
    );
    assert_eq!(preflight(&open, "https://evil.example"), None);
}

#[test]
fn the_runtime_folder_is_private_and_a_crashs_leftovers_go() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new(1, 8);
    let start = |runtime: &Path| {
        std::process::Command::new(binary())
            .args(["serve", "--port", "0", "--plugins"])
            .arg(ws.plugins())
            .arg("--studies")
            .arg(ws.studies())
            .arg("--runtime-dir")
            .arg(runtime)
            .output()
            .expect("run labelhost")
    };
    let shared = ws.dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = start(&shared);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("other users can write to it"));
    let link = ws.dir.path().join("link");
    std::os::unix::fs::symlink(ws.dir.path().join("runtime"), &link).expect("symlink");
    let out = start(&link);
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));

    // What a crashed server left behind, and an operator's own folder.
    let runtime = ws.dir.path().join("runtime");
    let stale = [
        runtime.join("scratch/upload-4000000000-3.nii.gz"),
        runtime.join("brain-4000000000-0/labelhost-bundle.json"),
        runtime.join("work/brain-4000000000-0/out.nii.gz"),
    ];
    let mine = runtime.join("backup-2024-05/notes.txt");
    for file in stale.iter().chain([&mine]) {
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, b"left over").expect("write");
    }
    let server = ws.serve(&[]);
    for file in &stale {
        assert!(!file.exists(), "{} survived the start", file.display());
    }
    assert!(!runtime.join("brain-4000000000-0").exists());
    assert!(
        mine.is_file(),
        "a folder labelhost did not make was removed"
    );
    // One server per runtime folder: a second one is refused while the first runs.
    let out = start(&runtime);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another labelhost server is using it"));
    drop(server);
}

#[test]
fn a_plugin_cannot_make_the_host_read_serve_or_delete_files_it_does_not_own() {
    let ws = Workspace::new(1, 8);
    pack(&ws.plugins(), "panicky", "panic_app", &[]);
    let server = ws.serve(&[]);
    // A file of the studies folder and one outside: neither read back nor deleted.
    let outside = ws.dir.path().join("precious.txt");
    std::fs::write(&outside, b"keep me").expect("write");
    let image = ws.studies().join("img00.nii.gz");
    for target in [outside.clone(), image.clone()] {
        let r = client()
            .post(server.at("/infer/stray_infer?image=img00"))
            .json(&json!({"label_at": target}))
            .send()
            .expect("infer");
        assert_eq!(r.status(), 500, "{}", target.display());
        let body: Value = r.json().expect("typed JSON");
        assert!(body["detail"]
            .as_str()
            .expect("detail")
            .contains("outside its bundle"));
        assert!(target.is_file(), "{} was deleted", target.display());
    }
    assert_eq!(std::fs::read(&outside).expect("read"), b"keep me");
    let r = client()
        .get(server.at("/model/stray_infer"))
        .send()
        .expect("model");
    assert_eq!(r.status(), 404, "/etc/hostname was served");
}
