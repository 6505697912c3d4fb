//! Plugin-api versioning: an older or newer minor loads into this host, another major is
//! refused with one line naming both versions, and the other apps keep serving. A plugin
//! built with `panic = "abort"`, one whose layout differs from what its version claims,
//! and one whose root module panics are refused the same way.

use crate::support::{client, get_json, pack, pack_first_party, Server, Workspace};
use serde_json::{json, Value};

/// App `name`'s strategy `<name>_first` answers the first image.
fn samples(server: &Server, name: &str) {
    let r = client()
        .post(server.at(&format!("/activelearning/{name}_first")))
        .send()
        .expect("sample");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().expect("json")["id"], "img00");
}

/// App `name` retires drained, and the server serves on.
fn retires(server: &Server, name: &str) {
    let r = client()
        .delete(server.at(&format!("/apps/{name}")))
        .send()
        .expect("retire");
    assert_eq!(r.json::<Value>().expect("json")["drained"], true);
    assert_eq!(get_json(server, "/health")["status"], "ok");
}

/// A server over the two first-party apps and a bundle `name` of fixture `lib` claiming
/// `plugin_api`, which start-up skips: the first-party apps serve, and loading `name` by
/// hand is refused with one line, its detail returned.
fn refused_at_load(name: &str, lib: &str, plugin_api: &str) -> (Workspace, Server, String) {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    crate::support::hand_bundle(&ws.plugins(), name, lib, plugin_api);
    let server = ws.serve(&[]);
    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"].as_array().expect("apps").len(), 2, "{apps}");
    let detail = crate::support::load_refused(&server, name);
    (ws, server, detail)
}

/// Loads an app built against an older frozen revision, uses it, retires it.
fn older_minor_loads_and_serves(crate_name: &str, plugin_api: &str) {
    let ws = Workspace::new(2, 8);
    pack(&ws.plugins(), crate_name, crate_name, &[]);
    let server = ws.serve(&[]);
    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"][0]["name"], crate_name);
    assert_eq!(apps["apps"][0]["plugin_api"], plugin_api);
    samples(&server, crate_name);
    // Retiring calls the 1.1 `on_retire` hook, which a 1.0 plugin lacks: the default runs.
    retires(&server, crate_name);
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
    let (_ws, server, detail) = refused_at_load("future", "future_app", "2.0.0");
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("bundle skipped"))
        .expect("a skip line in the log");
    assert!(
        line.contains("plugin-api 2.0.0") && line.contains("plugin-api 1.2.0"),
        "{line}"
    );
    assert!(
        detail.contains("2.0.0") && detail.contains("1.2.0"),
        "{detail}"
    );
    crate::support::assert_still_serves(&server);
}

#[test]
fn a_plugin_built_with_panic_abort_is_refused_with_one_line() {
    let (ws, server, detail) = refused_at_load("panicky", "abort_app", "1.2.0");
    assert!(detail.contains("panic = \"abort\""), "{detail}");
    // The same source built to unwind loads, and its panics are errors.
    pack(&ws.plugins(), "unwinding", "panic_app", &[]);
    let r = client()
        .post(server.at("/apps"))
        .json(&json!({"bundle": "unwinding"}))
        .send()
        .expect("load");
    assert_eq!(r.status(), 201);
    let r = client()
        .post(server.at("/infer/panic_infer?image=img00&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 500);
    assert_eq!(get_json(&server, "/health")["status"], "ok");
}

#[test]
fn a_plugin_built_against_a_newer_minor_loads_and_serves() {
    // 1.3.0: its root module has a field this host does not know; the host's layout must
    // be a prefix of the plugin's, then the loader's one unchecked init runs.
    let ws = Workspace::new(2, 8);
    pack_first_party(&ws.plugins());
    crate::support::hand_bundle(&ws.plugins(), "newer_app", "newer_app", "1.3.0");
    let server = ws.serve(&[]);
    let apps = get_json(&server, "/apps");
    let newer = apps["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["name"] == "newer_app")
        .unwrap_or_else(|| panic!("newer_app loaded: {apps}\n{}", server.log()));
    assert_eq!(newer["plugin_api"], "1.3.0");
    samples(&server, "newer_app");
    let r = client()
        .post(server.at("/apps/newer_app/reload"))
        .send()
        .expect("reload");
    assert_eq!(r.status(), 200);
    retires(&server, "newer_app");
}

#[test]
fn the_same_version_with_another_layout_is_refused_on_the_layout() {
    let (_ws, server, detail) = refused_at_load("mismatch_app", "mismatch_app", "1.2.0");
    assert!(
        detail.contains("plugin-api 1.2.0 layout does not match"),
        "{detail}"
    );
    // The report names what differs (the swapped fields), in the log only.
    let log = server.log();
    assert!(log.contains("layout mismatch"), "{log}");
    assert!(
        log.contains("plugin_api") && log.contains("version"),
        "{log}"
    );
    crate::support::assert_still_serves(&server);
}

#[test]
fn a_root_module_that_panics_is_refused_with_one_line() {
    let (_ws, server, detail) = refused_at_load("root_panic", "root_panic_app", "1.2.0");
    assert!(
        detail.contains("root module failed to initialise") && detail.contains("panicked"),
        "{detail}"
    );
    assert_eq!(get_json(&server, "/health")["status"], "ok");
    crate::support::assert_still_serves(&server);
}
