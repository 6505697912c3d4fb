//! The dashboard at `/ui/` in a real browser (Debian's Chromium, headless; installed by
//! scripts/browser.sh): against a real server after a short training job, the page shows
//! the apps, the job's curve with a point per epoch, the datastore's progress by user and a
//! slice of an image with its labels. Screenshots are kept under `<target>/artefacts/`.

use crate::{
    support::{client, get_json, pack_segmentation, target_dir, write_label, Server, Workspace},
    training::{start, wait_done},
};
use serde_json::json;
use std::{path::Path, process::Command, time::Duration};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium, headless, on `url` with `action` (`--dump-dom` or `--screenshot=FILE`) after
/// the page's scripts ran for 15 s of virtual time (network waits included): its stdout.
fn chromium(url: &str, action: &str, profile: &Path) -> String {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run scripts/browser.sh (scripts/test.sh does)"
    );
    // The flags a closed network needs (no background connections, no component updates).
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,1500",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(action)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Saves `image`'s label of `tag` as `user` (MONAI Label's multipart `params`).
fn save_label(server: &Server, ws: &Workspace, image: &str, tag: &str, user: &str) {
    let src = ws.studies().join(format!("{image}.nii.gz"));
    let file = ws.dir.path().join(format!("{image}-{tag}.nii.gz"));
    write_label(&src, &file, |x| if x > 50.0 { 3 } else { 1 });
    let form = reqwest::blocking::multipart::Form::new()
        .text("params", json!({"user": user}).to_string())
        .part(
            "label",
            reqwest::blocking::multipart::Part::bytes(std::fs::read(&file).expect("label"))
                .file_name(format!("{image}.nii.gz")),
        );
    let r = client()
        .put(server.at(&format!("/datastore/label?image={image}&tag={tag}")))
        .multipart(form)
        .send()
        .expect("PUT label");
    assert_eq!(r.status(), 200);
}

#[test]
fn the_dashboard_shows_apps_a_training_curve_labelling_progress_and_a_slice() {
    let ws = Workspace::new(3, 24);
    pack_segmentation(&ws.plugins());
    let server = ws.serve(&[]);
    save_label(&server, &ws, "img00", "final", "alice");
    save_label(&server, &ws, "img01", "final", "bob");
    save_label(&server, &ws, "img00", "original", "segmentation_unet");
    start(
        &server,
        "segmentation_unet",
        &json!({"max_epochs": 3, "val_interval": 1, "train_batch_size": 1}),
    );
    let done = wait_done(&server, Duration::from_secs(300));
    assert_eq!(done["status"], "DONE", "{done}");
    let history = done["history"].as_array().expect("history");
    assert_eq!(history.len(), 3, "one point per epoch: {done}");
    assert!(history[2]["train"]["train_loss"].is_number(), "{done}");

    let status = get_json(&server, "/status");
    assert_eq!(status["devices"][0]["device"], "cpu", "{status}");

    let profile = tempfile::tempdir().expect("profile");
    let dom = chromium(&server.at("/ui/"), "--dump-dom", profile.path());
    assert!(
        dom.contains(r#"data-app="segmentation""#),
        "the apps table: {dom}"
    );
    assert!(
        dom.contains(r#"data-device="cpu""#),
        "the device queues: {dom}"
    );
    assert!(
        dom.contains(r#"data-points="3""#),
        "the curve has 3 epochs: {dom}"
    );
    assert!(
        dom.contains(r#"data-total="3" data-labelled="2""#),
        "progress: {dom}"
    );
    assert!(
        dom.contains("<td>alice</td>") && dom.contains("<td>bob</td>"),
        "by user: {dom}"
    );
    assert!(
        dom.contains(r#"data-image="img00" data-labels="final,original""#),
        "the slice with both labels: {dom}"
    );
    assert!(
        !dom.contains(r#"role="alert">4"#) && !dom.contains(r#"role="alert">5"#),
        "an error shown: {dom}"
    );

    let artefacts = target_dir().join("artefacts");
    std::fs::create_dir_all(&artefacts).expect("artefacts dir");
    let shot = artefacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().expect("profile");
    chromium(
        &server.at("/ui/"),
        &format!("--screenshot={}", shot.display()),
        profile.path(),
    );
    let png = std::fs::read(&shot).expect("screenshot");
    assert_eq!(&png[1..4], b"PNG", "a PNG");
    assert!(
        png.len() > 20_000,
        "a page, not a blank: {} bytes",
        png.len()
    );
    println!("dashboard screenshot: {}", shot.display());
}

#[test]
fn under_auth_the_page_takes_a_token_from_its_link_and_shows_app_buttons_to_admins_only() {
    let ws = Workspace::new(1, 16);
    crate::support::pack_first_party(&ws.plugins());
    let (user, user_entry) = crate::auth::make_token("viewer", "user");
    let (admin, admin_entry) = crate::auth::make_token("boss", "admin");
    let config = ws.dir.path().join("auth.json");
    let tokens = json!({"tokens": [user_entry, admin_entry]});
    std::fs::write(&config, tokens.to_string()).expect("auth config");
    let server = ws.serve_with(&[], &["--auth-config", config.to_str().expect("utf-8")]);

    let page = |token: &str| {
        let profile = tempfile::tempdir().expect("profile");
        chromium(
            &server.at(&format!("/ui/#token={token}")),
            "--dump-dom",
            profile.path(),
        )
    };
    let dom = page(&user);
    assert!(
        dom.contains(r#"data-app="brain""#),
        "a user reads the apps: {dom}"
    );
    assert!(dom.contains(r#"data-user="viewer""#), "{dom}");
    assert!(
        !dom.contains(">Reload</button>"),
        "no app buttons for a user: {dom}"
    );
    let dom = page(&admin);
    assert!(dom.contains(r#"data-user="boss""#), "{dom}");
    assert!(
        dom.contains(">Reload</button>") && dom.contains(">Retire</button>"),
        "{dom}"
    );
    // Without a token the page asks for one and shows nothing it may not.
    let dom = page("");
    assert!(!dom.contains("data-app="), "{dom}");
    assert!(
        dom.contains(r#"<form id="token-form">"#),
        "the token form shows: {dom}"
    );
}
