//! MONAI Label's own Python client (0.8.5, from PyPI) drives labelhost:
//! tests/clients/monailabel_client.py makes the calls and checks every answer.

use crate::support::{cache_dir, pack_first_party, repo_root, write_volume, Workspace};

#[test]
fn monai_label_python_client_drives_labelhost() {
    let python = cache_dir().join("monailabel-client-0.8.5/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let ws = Workspace::new(1, 16);
    pack_first_party(&ws.plugins());
    // The client checks the sample's path on disk: a client on the server's machine,
    // which is what --share-paths is for.
    let server = ws.serve_with(&[], &["--share-paths"]);
    let image = ws.dir.path().join("to-upload.nii.gz");
    write_volume(&image, 16, 150.0);
    let work = ws.dir.path().join("client");
    std::fs::create_dir_all(&work).expect("mkdir");
    let out = std::process::Command::new(python)
        .arg(repo_root().join("tests/clients/monailabel_client.py"))
        .arg(&server.url)
        .arg(&image)
        .arg(&work)
        .output()
        .expect("run the MONAI Label client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log()
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or("{}")).expect("report");
    assert_eq!(
        report["ok"].as_array().expect("checks").len(),
        15,
        "{report}"
    );
}
