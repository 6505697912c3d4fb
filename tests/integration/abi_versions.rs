//! Plugin-api versioning: an older minor loads into this host, another major is refused
//! with one line naming both versions, and the other apps keep serving.

use crate::support::{client, get_json, pack, pack_first_party, Workspace};
use serde_json::{json, Value};

/// Loads an app built against an older frozen revision, uses it, retires it.
fn older_minor_loads_and_serves(crate_name: &str, plugin_api: &str) {
    let ws = Workspace::new(2, 8);
    pack(&ws.plugins(), crate_name, crate_name, &[]);
    let server = ws.serve(&[]);
    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"][0]["name"], crate_name);
    assert_eq!(apps["apps"][0]["plugin_api"], plugin_api);
    let r = client()
        .post(server.at(&format!("/activelearning/{crate_name}_first")))
        .send()
        .expect("sample");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().expect("json")["id"], "img00");
    // Retiring calls the 1.1 `on_retire` hook, which a 1.0 plugin lacks: the default runs.
    let r = client()
        .delete(server.at(&format!("/apps/{crate_name}")))
        .send()
        .expect("retire");
    assert_eq!(r.json::<Value>().expect("json")["drained"], true);
    assert_eq!(get_json(&server, "/health")["status"], "ok");
}

#[test]
fn a_plugin_built_against_the_previous_minor_loads_and_serves() {
    // 1.1: no training methods on the executor, no model_dir/job_progress on the host.
    older_minor_loads_and_serves("previous_app", "1.1.0");
}

#[test]
fn a_plugin_built_against_the_first_revision_loads_and_serves() {
    older_minor_loads_and_serves("legacy_app", "1.0.0");
}

#[test]
fn another_major_is_refused_with_one_line_and_the_others_serve() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    // `labelhost pack` itself refuses the library, so write its bundle by hand.
    let lib = crate::support::library("future_app");
    let dir = ws.plugins().join("future");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(&lib, dir.join("libfuture_app.so")).expect("copy");
    let sha = sha256(&dir.join("libfuture_app.so"));
    let manifest = json!({"name": "future", "version": "0.1.0", "plugin_api": "2.0.0",
        "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        "library": "libfuture_app.so", "files": [{"path": "libfuture_app.so", "sha256": sha}]});
    std::fs::write(dir.join("labelhost-bundle.json"), manifest.to_string()).expect("manifest");

    let server = ws.serve(&[]);
    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"].as_array().expect("apps").len(), 2, "{apps}");
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("bundle skipped"))
        .expect("a skip line in the log");
    assert!(
        line.contains("plugin-api 2.0.0") && line.contains("plugin-api 1.2.0"),
        "{line}"
    );

    let r = client()
        .post(server.at("/apps"))
        .json(&json!({"bundle": "future"}))
        .send()
        .expect("load");
    assert_eq!(r.status(), 422);
    let body: Value = r.json().expect("json");
    let detail = body["detail"].as_str().expect("detail");
    assert!(!detail.contains('\n'), "one line: {detail}");
    assert!(
        detail.contains("2.0.0") && detail.contains("1.2.0"),
        "{detail}"
    );
    let r = client()
        .post(server.at("/infer/brain_otsu?image=img00&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
}

fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_owned()
}
