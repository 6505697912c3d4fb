//! A studies folder written by MONAI Label 0.8.5 (its own LocalDatastore, from PyPI) opens
//! in labelhost, and one written by labelhost opens in MONAI Label.

use crate::support::{
    cache_dir, client, get_json, pack_first_party, repo_root, write_volume, Workspace,
};
use serde_json::Value;
use std::process::Command;

fn monailabel(args: &[&std::path::Path]) -> Value {
    let python = cache_dir().join("torch-2.11.0/bin/python");
    let out = Command::new(&python)
        .arg(repo_root().join("tests/clients/datastore_interop.py"))
        .args(args)
        .output()
        .expect("run MONAI Label's LocalDatastore (scripts/setup.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or("{}")).expect("JSON")
}

#[test]
fn monai_label_folders_open_in_labelhost_and_back() {
    // 1. MONAI Label writes a studies folder; labelhost serves it.
    let ws = Workspace::new(0, 8);
    let (image, label) = (
        ws.dir.path().join("in.nii.gz"),
        ws.dir.path().join("mask.nii.gz"),
    );
    write_volume(&image, 8, 120.0);
    write_volume(&label, 8, 1.0);
    let written = monailabel(&[std::path::Path::new("write"), &ws.studies(), &image, &label]);
    assert_eq!(written["labeled"][0], "mlimg");
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let all = get_json(&server, "/datastore/?output=all");
    let object = &all["objects"]["mlimg"];
    assert_eq!(object["image"]["info"]["from"], "monailabel", "{all}");
    assert_eq!(object["image"]["info"]["note"], "written by MONAI Label");
    assert_eq!(
        object["labels"]["final"]["info"]["label_info"][0]["name"],
        "brain"
    );
    assert_eq!(object["labels"]["original"]["info"]["model"], "brain_otsu");
    let stats = get_json(&server, "/datastore/");
    assert_eq!(
        (stats["total"].as_u64(), stats["completed"].as_u64()),
        (Some(1), Some(1))
    );

    // 2. labelhost adds an image and labels to the same folder; MONAI Label reads them.
    let r = client()
        .post(server.at("/infer/brain_otsu?image=mlimg&output=json"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    let form = reqwest::blocking::multipart::Form::new()
        .text("params", r#"{"from": "labelhost"}"#)
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(std::fs::read(&image).expect("read"))
                .file_name("x.nii.gz"),
        );
    let r = client()
        .put(server.at("/datastore/?image=lhimg"))
        .multipart(form)
        .send()
        .expect("upload");
    assert_eq!(r.status(), 200);
    drop(server);
    let seen = monailabel(&[std::path::Path::new("read"), &ws.studies()]);
    assert_eq!(
        seen["images"],
        serde_json::json!(["lhimg", "mlimg"]),
        "{seen}"
    );
    assert_eq!(seen["image_info"]["lhimg"]["from"], "labelhost");
    assert_eq!(seen["labels"]["mlimg"]["original"], "mlimg");
    assert_eq!(
        seen["label_info"]["mlimg"]["original"]["model"], "brain_otsu",
        "labelhost's infer label info"
    );
    assert_eq!(seen["labeled"], serde_json::json!(["mlimg"]));
}
