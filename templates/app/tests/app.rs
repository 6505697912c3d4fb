//! The app's tasks run in process against a real labelhost host (labelhost-test-support):
//! no server, a temporary datastore, the host's own executor.

use labelhost_test_support::{json, read_volume, TaskKind, TestHost};
use {{crate_name}}::MyApp;

/// A ramp along x: 0, 10, 20 ... 90.
fn ramp(x: usize, _: usize, _: usize) -> f32 {
    x as f32 * 10.0
}

#[test]
fn the_app_has_its_four_tasks() {
    let host = TestHost::new().expect("host");
    let app = host.app::<MyApp>().expect("app");
    assert_eq!(app.tasks(TaskKind::INFER), ["{{crate_name}}_threshold"]);
    assert_eq!(app.tasks(TaskKind::TRAIN), ["{{crate_name}}_threshold"]);
    assert_eq!(app.tasks(TaskKind::STRATEGY), ["{{crate_name}}_first"]);
    assert_eq!(app.tasks(TaskKind::SCORING), ["{{crate_name}}_dice"]);
}

#[test]
fn infer_marks_voxels_above_half_the_maximum() {
    let host = TestHost::new().expect("host");
    host.add_volume("ramp", [10, 4, 4], ramp).expect("image");
    let app = host.app::<MyApp>().expect("app");
    let out = app.infer("{{crate_name}}_threshold", "ramp", json!({})).expect("infer");
    assert_eq!(out.params["trained"], false);
    assert_eq!(out.params["threshold"], 45.0);
    let label = read_volume(out.label.as_deref().expect("a label")).expect("label");
    assert_eq!(label.shape(), [10, 4, 4]);
    assert_eq!(label.sum(), 5.0 * 16.0, "x = 5..9 are above 45");
}

#[test]
fn training_fits_the_fraction_to_the_final_labels() {
    let host = TestHost::new().expect("host");
    for id in ["a", "b"] {
        host.add_volume(id, [10, 4, 4], ramp).expect("image");
    }
    let app = host.app::<MyApp>().expect("app");
    assert_eq!(app.next_sample("{{crate_name}}_first", json!({})).expect("next")["id"], "a");
    // The annotator keeps only x >= 8 (above 0.8 of the maximum).
    host.save_label("a", "final", |x, _, _| u8::from(x >= 8)).expect("label");
    assert_eq!(app.next_sample("{{crate_name}}_first", json!({})).expect("next")["id"], "b");

    let stats = app.train("{{crate_name}}_threshold", json!({})).expect("train");
    assert_eq!(stats["best_metric"], 1.0, "{stats}");
    let out = app.infer("{{crate_name}}_threshold", "b", json!({})).expect("infer");
    assert_eq!(out.params["trained"], true);
    let label = read_volume(out.label.as_deref().expect("a label")).expect("label");
    assert_eq!(label.sum(), 2.0 * 16.0, "x = 8, 9");
}

#[test]
fn dice_compares_the_original_label_with_the_final_one() {
    let host = TestHost::new().expect("host");
    host.add_volume("a", [10, 4, 4], ramp).expect("image");
    let app = host.app::<MyApp>().expect("app");
    let out = app.infer("{{crate_name}}_threshold", "a", json!({})).expect("infer");
    let original = out.label.expect("label");
    host.datastore()
        .save_label("a", &original, "original", Default::default())
        .expect("original");
    host.save_label("a", "final", |x, _, _| u8::from(x >= 8)).expect("final");
    let scores = app.scoring("{{crate_name}}_dice", json!({})).expect("score");
    // original: x = 5..9 (80 voxels); final: x = 8, 9 (32); both 32.
    let dice = scores["a"]["dice"].as_f64().expect("dice");
    assert!((dice - 64.0 / 112.0).abs() < 1e-9, "{scores}");
}

#[test]
fn training_with_no_final_label_fails_clearly() {
    let host = TestHost::new().expect("host");
    host.add_volume("a", [4, 4, 4], ramp).expect("image");
    let app = host.app::<MyApp>().expect("app");
    let e = app.train("{{crate_name}}_threshold", json!({})).expect_err("nothing to learn");
    assert!(e.to_string().contains("no image has a final label"), "{e}");
}
