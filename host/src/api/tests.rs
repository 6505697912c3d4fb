//! The router without a network (`oneshot`): routes, error mapping, `/info/` shape.

use super::{router, AppState};
use crate::{
    datastore::LocalDatastore, executor::TorchExecutor, registry::Registry, services::Shared,
};
use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

fn app(dir: &tempfile::TempDir) -> Router {
    let (plugins, studies) = (dir.path().join("plugins"), dir.path().join("studies"));
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    let shared = Shared::new(
        LocalDatastore::open(&studies).expect("datastore"),
        Arc::new(TorchExecutor::new()),
        Default::default(),
    );
    let registry = Registry::new(&plugins, &dir.path().join("runtime"), shared.clone());
    let sessions = crate::sessions::Sessions::new(&studies.join(".labelhost/sessions"));
    router(Arc::new(AppState {
        registry,
        shared,
        sessions,
        // In process, as a server on loopback would be.
        access: crate::api::Access {
            loopback_only: true,
            ..Default::default()
        },
        timeouts: Default::default(),
        request_memory: 0,
        max_abandoned: 4,
        metrics: Default::default(),
    }))
}

async fn call(app: Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_owned()));
    let res = app.oneshot(req.expect("request")).await.expect("response");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn info_has_monai_label_sections_with_no_apps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, info) = call(app(&dir), "GET", "/info/", "").await;
    assert_eq!(status, StatusCode::OK);
    for key in ["models", "trainers", "strategies", "scoring", "train_stats"] {
        assert!(
            info[key].as_object().is_some_and(|m| m.is_empty()),
            "{key}: {info}"
        );
    }
    assert_eq!(info["datastore"]["total"], 0);
}

#[tokio::test]
async fn errors_are_typed_json_with_the_right_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("GET", "/nowhere", "", 404, "NOT_FOUND"),
        ("POST", "/apps", r#"{"bundle": 3}"#, 400, "INVALID_INPUT"),
        (
            "POST",
            "/apps",
            r#"{"bundle": ".hidden"}"#,
            400,
            "INVALID_INPUT",
        ),
        (
            "POST",
            "/apps",
            r#"{"bundle": "nothing"}"#,
            404,
            "NOT_FOUND",
        ),
        ("POST", "/infer/m", "", 400, "INVALID_INPUT"),
        ("POST", "/infer/m?image=x", "", 404, "NOT_FOUND"),
        ("POST", "/infer/m?image=a&image=b", "", 400, "INVALID_INPUT"),
        (
            "POST",
            "/infer/m?image=x",
            r#"{"label_tag": "../up"}"#,
            400,
            "INVALID_INPUT",
        ),
        ("POST", "/activelearning/s", "[1]", 400, "INVALID_INPUT"),
        ("DELETE", "/apps/none", "", 404, "NOT_FOUND"),
    ];
    for (method, uri, body, status, code) in cases {
        let (got, json) = call(app(&dir), method, uri, body).await;
        assert_eq!(got.as_u16(), status, "{method} {uri}: {json}");
        assert_eq!(json["code"], code, "{method} {uri}");
        assert!(
            json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{method} {uri}"
        );
    }
}

#[tokio::test]
async fn health_counts_apps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, json) = call(app(&dir), "GET", "/health", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["apps"], 0);
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, spec) = call(app(&dir), "GET", "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let paths = spec["paths"].as_object().expect("paths");
    for must in [
        "/infer/{model}",
        "/datastore/label",
        "/train/{model}",
        "/session/{id}",
        "/apps/{name}/reload",
    ] {
        assert!(paths.contains_key(must), "{must} is documented");
    }
    let mut checked = 0;
    for (path, methods) in paths {
        let concrete = path
            .replace("{model}", "m")
            .replace("{name}", "n")
            .replace("{strategy}", "s")
            .replace("{method}", "m")
            .replace("{id}", "abc");
        for method in methods.as_object().expect("methods").keys() {
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .body(Body::empty());
            let res = app(&dir)
                .oneshot(req.expect("request"))
                .await
                .expect("response");
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .expect("body");
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let detail = body["detail"].as_str().unwrap_or("");
            assert!(
                !detail.starts_with("no route for"),
                "{method} {path} is documented but not routed"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked} routes checked");
}

#[tokio::test]
async fn a_file_swapped_for_a_link_after_its_check_is_not_sent() {
    // What the download routes do once the datastore has checked the path: the open itself
    // refuses a link (the check and the open are two steps; a swap between them is caught).
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "not for clients").expect("write");
    let planted = dir.path().join("img00.nii.gz");
    std::os::unix::fs::symlink(&secret, &planted).expect("link");
    let refused = super::upload::send_file(Ok(planted.clone()), "missing", libc::O_NOFOLLOW)
        .await
        .expect_err("a link is refused");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused.to_string().contains("--follow-symlinks"),
        "{refused}"
    );
    // With links followed (the operator's choice), the same file is sent.
    let sent = super::upload::send_file(Ok(planted), "missing", 0)
        .await
        .expect("followed");
    let bytes = axum::body::to_bytes(sent.into_body(), 1 << 20)
        .await
        .expect("body");
    assert_eq!(&bytes[..], b"not for clients");
    // A folder is not a file; nor is a FIFO, and opening one does not wait for a writer.
    let folder = super::upload::send_file(Ok(dir.path().into()), "missing", 0)
        .await
        .expect_err("a folder");
    assert_eq!(folder.status(), StatusCode::NOT_FOUND);
    let fifo = dir.path().join("img01.nii.gz");
    let name = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("c string");
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the file.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        super::upload::send_file(Ok(fifo), "missing", libc::O_NOFOLLOW),
    )
    .await
    .expect("the open did not block");
    assert_eq!(waited.expect_err("a fifo").status(), StatusCode::NOT_FOUND);
}
