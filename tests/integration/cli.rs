//! The verbs that work without a server: `labelhost infer` on a file with a plugins
//! folder's apps, and `labelhost datastore stats|import|export` on a studies folder.

use crate::support::{binary, pack_first_party, write_mask, write_volume, Workspace};
use serde_json::Value;
use std::{path::Path, process::Command};

/// Runs `labelhost ARGS` in `dir`: exit code, stdout, stderr.
fn labelhost(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary())
        .current_dir(dir)
        .args(args)
        .env_remove("LABELHOST_PLUGINS")
        .env_remove("LABELHOST_STUDIES")
        .env_remove("LABELHOST_CONF")
        .output()
        .expect("run labelhost");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn infer_runs_a_task_of_the_plugins_folder_on_a_file_and_writes_its_label() {
    let ws = Workspace::new(1, 16);
    pack_first_party(&ws.plugins());
    let image = ws.studies().join("img00.nii.gz");
    let (dir, plugins) = (ws.dir.path(), ws.plugins());
    let plugins = plugins.to_str().expect("utf-8");
    let image = image.to_str().expect("utf-8");

    // `labelhost infer --model MODEL --plugins PLUGINS IMAGE EXTRA...` in the workspace.
    let infer = |model: &str, image: &str, extra: &[&str]| {
        let mut args = vec!["infer", "--model", model, "--plugins", plugins, image];
        args.extend(extra);
        labelhost(dir, &args)
    };

    let (code, out, err) = infer("segmentation_kmeans", image, &[]);
    assert_eq!(code, Some(0), "{err}");
    let result: Value = serde_json::from_str(&out).expect("the result JSON on stdout");
    assert_eq!(result["label_names"]["class_1"], 1, "{result}");
    let written = dir.join("img00_segmentation_kmeans.nii.gz");
    assert!(
        err.contains("label written to img00_segmentation_kmeans.nii.gz"),
        "{err}"
    );
    let label = crate::support::read_volume(&written);
    assert_eq!(label.shape(), [16, 16, 16]);
    assert!(
        label.iter().any(|&v| v == 3.0),
        "the bright ball is the third class"
    );

    // A request parameter and an explicit output path.
    let (code, out, err) = infer(
        "segmentation_kmeans",
        image,
        &["--param", "iterations=1", "-o", "mine.nii.gz"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"centres\""), "{out}");
    assert!(dir.join("mine.nii.gz").is_file());

    let (code, _, err) = infer("nope", image, &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no app in") && err.contains("'nope'") && err.contains("segmentation_kmeans"),
        "{err}"
    );
    let (code, _, err) = infer("segmentation_kmeans", "missing.nii.gz", &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("missing.nii.gz is not a file"), "{err}");
    let (code, _, err) = infer("segmentation_kmeans", image, &["--device", "tpu:7"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("tpu:7"), "{err}");
}

#[test]
fn datastore_imports_images_with_labels_counts_them_and_exports_a_dataset() {
    let ws = Workspace::new(0, 8);
    let (dir, studies) = (ws.dir.path(), ws.studies());
    let src = dir.join("incoming");
    let labels = dir.join("incoming-labels");
    std::fs::create_dir_all(&labels).expect("mkdir");
    std::fs::create_dir_all(&src).expect("mkdir");
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        write_volume(&src.join(format!("{id}.nii.gz")), 8, 100.0 + i as f32);
    }
    write_mask(&src.join("a.nii.gz"), &labels.join("a.nii.gz"), 1);
    std::fs::write(src.join("broken.nii"), b"not a volume").expect("junk");
    std::fs::write(src.join("notes.txt"), b"not an image name").expect("notes");
    let studies = studies.to_str().expect("utf-8");
    let ds = |args: &[&str]| {
        let mut all = vec!["datastore", "--studies", studies];
        all.extend(args);
        labelhost(dir, &all)
    };

    let (code, out, err) = ds(&[
        "import",
        src.to_str().expect("utf-8"),
        "--labels",
        labels.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(2), "the broken file fails the run: {out}");
    assert!(
        out.contains("imported 3 image(s) (1 with a 'final' label)"),
        "{out}"
    );
    assert!(
        err.contains("broken.nii") && err.contains("1 of 4 file(s)"),
        "{err}"
    );

    let (code, out, err) = ds(&["stats", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let status: Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status["total"], 3, "{status}");
    assert_eq!(status["completed"], 1, "{status}");
    assert_eq!(status["label_tags"]["final"], 1, "{status}");
    let (_, out, _) = ds(&["stats"]);
    assert!(out.contains("3 (1 labelled final, 2 not)"), "{out}");

    // Again: what is there is kept.
    let (code, out, _) = ds(&["import", src.join("a.nii.gz").to_str().expect("utf-8")]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("imported 0 image(s)") && out.contains("1 already there"),
        "{out}"
    );

    let export = dir.join("dataset");
    let (code, out, err) = ds(&["export", "--out", export.to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("exported 1 labelled and 2 unlabelled"),
        "{out}"
    );
    let dataset: Value = serde_json::from_str(
        &std::fs::read_to_string(export.join("dataset.json")).expect("dataset.json"),
    )
    .expect("JSON");
    assert_eq!(
        dataset["training"][0]["image"], "imagesTr/a.nii.gz",
        "{dataset}"
    );
    assert_eq!(
        dataset["training"][0]["label"], "labelsTr/a.nii.gz",
        "{dataset}"
    );
    assert_eq!(
        dataset["test"],
        serde_json::json!(["imagesTs/b.nii.gz", "imagesTs/c.nii.gz"])
    );
    let exported = std::fs::read(export.join("labelsTr/a.nii.gz")).expect("label");
    assert_eq!(
        exported,
        std::fs::read(labels.join("a.nii.gz")).expect("source label")
    );

    let (code, _, err) = ds(&["export", "--out", export.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not empty"), "{err}");
}

#[test]
fn a_config_file_supplies_flags_the_command_line_overrides_and_bad_settings_are_named() {
    let ws = Workspace::new(2, 8);
    let dir = ws.dir.path();
    let file = dir.join("labelhost.toml");
    let studies = ws.studies();
    let other = dir.join("empty-studies");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(
        &file,
        format!(
            "[datastore]\nstudies = {:?}\n",
            studies.to_str().expect("utf-8")
        ),
    )
    .expect("config");
    let config = file.to_str().expect("utf-8");
    let (code, out, err) = labelhost(dir, &["--config", config, "datastore", "stats"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("images:  2 "), "{out}");
    let (code, out, err) = labelhost(
        dir,
        &[
            "datastore",
            "--config",
            config,
            "--studies",
            other.to_str().expect("utf-8"),
            "stats",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("images:  0 "), "the command line wins: {out}");

    std::fs::write(&file, "[datastore]\nstudy = \"x\"\n").expect("config");
    let (code, _, err) = labelhost(dir, &["--config", config, "datastore", "stats"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("[datastore] study: no such setting"), "{err}");
}
