//! The `cargo generate` template, through the real cargo-generate: the new crate's own
//! tests pass, it builds, packs and loads into a running server (`POST /apps`), answers an
//! inference, and a rebuilt edit of it hot-swaps in with `labelhost apps reload`.

use crate::support::{binary, cache_dir, client, get_json, repo_root, target_dir, Workspace};
use serde_json::{json, Value};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// cargo-generate 0.23 from crates.io, installed by scripts/tools.sh into the cache.
fn cargo_generate() -> PathBuf {
    let bin = cache_dir().join("cargo-tools/bin/cargo-generate");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/tools.sh (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Runs `cmd`, asserting it succeeds; its stdout and stderr.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// `cargo <verb>` on the generated crate, sharing this build's target folder (and
/// profile) so the host and LibTorch's bindings are not built again.
fn cargo(project: &Path, verb: &str) -> Command {
    let profile_dir = target_dir();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.arg(verb)
        .arg("--manifest-path")
        .arg(project.join("Cargo.toml"))
        .env(
            "CARGO_TARGET_DIR",
            profile_dir.parent().expect("target root"),
        );
    if profile_dir.ends_with("release") {
        cmd.arg("--release");
    }
    cmd
}

fn pack(ws: &Workspace, project: &Path) {
    let settings = project.join("assets/settings.json");
    let assets = [format!("{}=assets/settings.json", settings.display())];
    crate::support::pack(&ws.plugins(), "tpl-app", "tpl_app", &assets);
}

fn infer(server: &crate::support::Server) -> Value {
    let r = client()
        .post(server.at("/infer/tpl_app_threshold?image=img00&output=json"))
        .json(&json!({"save_label": false}))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    r.json().expect("json")
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} has no '{from}'", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn cargo_generate_makes_an_app_that_tests_loads_and_hot_swaps() {
    let ws = Workspace::new(1, 10);
    let dest = ws.dir.path().join("authoring");
    std::fs::create_dir_all(&dest).expect("mkdir");
    run(
        Command::new(cargo_generate())
            .arg("generate")
            .arg("--path")
            .arg(repo_root().join("templates/app"))
            .args(["--name", "tpl-app", "--vcs", "none", "--silent"])
            .arg("--define")
            .arg(format!("labelhost_path={}", repo_root().display()))
            .arg("--destination")
            .arg(&dest),
        "cargo generate",
    );
    let project = dest.join("tpl-app");
    for file in [
        "src/lib.rs",
        "tests/app.rs",
        "README.md",
        "assets/settings.json",
    ] {
        let text = std::fs::read_to_string(project.join(file)).expect(file);
        assert!(!text.contains("{{"), "{file} has an unrendered placeholder");
    }
    // The workspace's lock: the same dependency versions, so the shared build is reused.
    std::fs::copy(repo_root().join("Cargo.lock"), project.join("Cargo.lock")).expect("lock");

    // Its own tests: the tasks in process against a real host (labelhost-test-support).
    let tested = run(&mut cargo(&project, "test"), "the new crate's tests");
    assert!(tested.contains("test result: ok. 5 passed"), "{tested}");

    // A running server with no apps loads the new bundle over the API.
    let server = ws.serve(&[]);
    assert_eq!(get_json(&server, "/apps")["apps"], json!([]));
    run(&mut cargo(&project, "build"), "the new crate's build");
    pack(&ws, &project);
    let r = client()
        .post(server.at("/apps"))
        .json(&json!({"bundle": "tpl-app"}))
        .send()
        .expect("POST /apps");
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"][0]["name"], "tpl-app", "{apps}");
    assert_eq!(apps["apps"][0]["version"], "0.1.0", "{apps}");
    let params = infer(&server);
    assert_eq!(params["fraction"], 0.5, "{params}");
    assert_eq!(params["trained"], false, "{params}");

    // Edit, rebuild, pack over the bundle, hot-swap with the CLI.
    edit(
        &project.join("Cargo.toml"),
        "version = \"0.1.0\"",
        "version = \"0.2.0\"",
    );
    let (old, new) = (
        "Voxels above a fraction of the maximum",
        "Voxels above the fitted fraction of the maximum",
    );
    edit(&project.join("src/lib.rs"), old, new);
    run(&mut cargo(&project, "build"), "the edited crate's build");
    pack(&ws, &project);
    let swapped = run(
        Command::new(binary())
            .args(["apps", "--server", &server.at(""), "reload", "tpl-app"])
            .env_remove("LABELHOST_TOKEN"),
        "labelhost apps reload",
    );
    assert!(
        swapped.contains("reloaded tpl-app (generation 2)"),
        "{swapped}"
    );
    let apps = get_json(&server, "/apps");
    assert_eq!(apps["apps"][0]["version"], "0.2.0", "{apps}");
    let info = get_json(&server, "/info/");
    assert_eq!(
        info["models"]["tpl_app_threshold"]["description"], new,
        "{info}"
    );
    assert_eq!(infer(&server)["fraction"], 0.5);
}
