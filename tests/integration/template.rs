//! The `cargo generate` template renders into a plugin that builds and loads.

use crate::support::{client, get_json, repo_root, target_dir, Workspace};
use serde_json::{json, Value};
use std::{path::Path, process::Command};

/// Renders `templates/app` as `cargo generate --name tpl-app` would.
fn render(into: &Path) {
    let from = repo_root().join("templates/app");
    for entry in ["Cargo.toml", "src/lib.rs", "assets/settings.json"] {
        let text = std::fs::read_to_string(from.join(entry)).expect("template file");
        let text = text
            .replace("{{project-name}}", "tpl-app")
            .replace("{{crate_name}}", "tpl_app")
            .replace("{{labelhost_path}}", &repo_root().display().to_string());
        let dst = into.join(entry);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::write(dst, text).expect("write");
    }
}

#[test]
fn the_app_template_builds_and_loads() {
    let ws = Workspace::new(1, 10);
    let project = ws.dir.path().join("tpl-app");
    render(&project);
    let profile_dir = target_dir();
    let target_root = profile_dir.parent().expect("target root");
    let mut build = Command::new(env!("CARGO"));
    build
        .arg("build")
        .arg("--manifest-path")
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_root);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    let out = build.output().expect("cargo build");
    assert!(
        out.status.success(),
        "template build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let settings = project.join("assets/settings.json");
    let assets = [format!("{}=assets/settings.json", settings.display())];
    crate::support::pack(&ws.plugins(), "tpl-app", "tpl_app", &assets);
    let server = ws.serve(&[]);
    assert_eq!(get_json(&server, "/apps")["apps"][0]["name"], "tpl-app");
    let r = client()
        .post(server.at("/infer/tpl_app_threshold?image=img00&output=json"))
        .json(&json!({"save_label": false}))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    let params: Value = r.json().expect("json");
    assert!(
        params["threshold"].as_f64().expect("threshold") > 50.0,
        "{params}"
    );
}
