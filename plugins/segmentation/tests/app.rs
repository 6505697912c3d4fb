//! The segmentation app's tasks run in process against a real host (labelhost-test-support):
//! k-means inference, training the class means, Dice scoring, the random strategy, and the
//! UNet on the shared executor.

use labelhost_app_segmentation::SegmentationApp;
use labelhost_test_support::{json, read_volume, TaskKind, TestHost};

/// Three tissues along x: dark (x < 8), mid (8..16) and bright (16..), with a little noise.
fn tissue(x: usize, y: usize, z: usize) -> f32 {
    let base = match x {
        0..8 => 20.0,
        8..16 => 100.0,
        _ => 200.0,
    };
    base + ((x * 7 + y * 13 + z * 29) % 5) as f32
}

fn class_of(x: usize) -> u8 {
    match x {
        0..8 => 1,
        8..16 => 2,
        _ => 3,
    }
}

#[test]
fn kmeans_finds_the_three_tissues() {
    let host = TestHost::new().expect("host");
    host.add_volume("t", [24, 12, 10], tissue).expect("image");
    let app = host.app::<SegmentationApp>().expect("app");
    assert_eq!(app.tasks(TaskKind::INFER), ["segmentation_kmeans"]);
    let out = app
        .infer("segmentation_kmeans", "t", json!({}))
        .expect("infer");
    assert_eq!(out.params["trained"], false, "{}", out.params);
    let label = read_volume(out.label.as_deref().expect("a label")).expect("label");
    assert_eq!(label.shape(), [24, 12, 10]);
    for ((x, _, _), &v) in label
        .view()
        .into_dimensionality::<ndarray::Ix3>()
        .expect("3-D")
        .indexed_iter()
    {
        assert_eq!(v as u8, class_of(x), "voxel at x={x}");
    }
}

#[test]
fn training_fits_the_class_means_to_the_final_labels_and_dice_scores_them() {
    let host = TestHost::new().expect("host");
    for id in ["a", "b"] {
        host.add_volume(id, [24, 12, 10], tissue).expect("image");
    }
    let app = host.app::<SegmentationApp>().expect("app");
    let random = || {
        app.next_sample("random", json!({})).expect("strategy")["id"]
            .as_str()
            .map(str::to_owned)
    };
    assert!(random().is_some(), "two unlabelled images");
    // The model's answer for "a" is its original label; the annotator's is the final one.
    let out = app
        .infer("segmentation_kmeans", "a", json!({}))
        .expect("infer");
    let original = out.label.expect("label");
    host.datastore()
        .save_label("a", &original, "original", Default::default())
        .expect("original");
    host.save_label("a", "final", |x, _, _| class_of(x))
        .expect("final");
    host.save_label("b", "final", |x, _, _| class_of(x))
        .expect("final");
    assert_eq!(random(), None, "every image is labelled");

    let stats = app.train("segmentation_kmeans", json!({})).expect("train");
    assert_eq!(stats["images"], 2, "{stats}");
    let centres: Vec<f64> = serde_json::from_value(stats["centres"].clone()).expect("centres");
    for (c, want) in centres.iter().zip([22.0, 102.0, 202.0]) {
        assert!((c - want).abs() < 2.0, "{centres:?}");
    }
    let again = app
        .infer("segmentation_kmeans", "b", json!({}))
        .expect("infer");
    assert_eq!(again.params["trained"], true);

    let scores = app.scoring("segmentation_dice", json!({})).expect("score");
    assert_eq!(scores["a"]["dice"], 1.0, "{scores}");
    assert!(
        scores.get("b").is_none(),
        "b has no original label: {scores}"
    );
}

#[test]
fn training_without_labels_is_a_train_failure_not_a_panic() {
    let host = TestHost::new().expect("host");
    host.add_volume("a", [8, 8, 8], |x, _, _| x as f32)
        .expect("image");
    let app = host.app::<SegmentationApp>().expect("app");
    let e = app
        .train("segmentation_kmeans", json!({}))
        .expect_err("no labels");
    assert!(
        e.to_string().contains("every class needs labelled voxels"),
        "{e}"
    );
}

#[test]
fn a_bad_class_count_fails_the_app_s_construction() {
    let host = TestHost::with_conf(&[("segmentation_classes", "1")]).expect("host");
    let e = host.app::<SegmentationApp>().err().expect("refused");
    assert!(e.to_string().contains("between 2 and 255"), "{e}");
}

#[test]
fn the_unet_runs_on_the_shared_executor_when_its_model_is_in_the_bundle() {
    // scripts/setup.sh makes the stand-in UNet (scripts/make-models.sh).
    let cache = std::env::var("LABELHOST_CACHE").expect("LABELHOST_CACHE (source scripts/env.sh)");
    let model = std::path::Path::new(&cache).join("models/segmentation/unet.pt");
    assert!(
        model.is_file(),
        "{} missing: run scripts/setup.sh",
        model.display()
    );
    let host = TestHost::new().expect("host");
    let bundle = host.scratch().expect("scratch").join("bundle");
    std::fs::create_dir_all(bundle.join("models")).expect("mkdir");
    std::fs::copy(&model, bundle.join("models/unet.pt")).expect("copy model");
    host.add_volume("t", [24, 24, 24], tissue).expect("image");
    let app = host.app_in::<SegmentationApp>(&bundle).expect("app");
    let infers = app.tasks(TaskKind::INFER);
    assert!(
        infers.contains(&"segmentation_unet".to_owned()),
        "{infers:?}"
    );
    let out = app
        .infer("segmentation_unet", "t", json!({}))
        .expect("infer");
    let label = read_volume(out.label.as_deref().expect("label")).expect("label");
    assert_eq!(label.shape(), [24, 24, 24]);
    assert!(
        label.iter().all(|&v| (0.0..=3.0).contains(&v)),
        "classes 0-3"
    );
}
