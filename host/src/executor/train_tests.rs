//! Training through the ABI on real LibTorch: the committed `tiny_seg.pt` (a seeded
//! Conv3d, made by tests/fixtures/models/make_models.py) learns a threshold, its current
//! weights serve inference, a save is a TorchScript file the executor loads again.

use super::{scope_handle, ExecutorScope, TorchExecutor};
use abi_stable::std_types::{RSlice, RStr};
use labelhost_plugin_api::abi::{DType, ErrorCode, Executor, TensorData};
use serde_json::{json, Value};
use std::{path::PathBuf, sync::Arc};

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name);
    p.to_string_lossy().into_owned()
}

fn data<T: Copy>(
    values: &[T],
    shape: &[i64],
    dtype: DType,
    bytes: impl Fn(T) -> Vec<u8>,
) -> TensorData {
    TensorData {
        dtype,
        shape: shape.into(),
        bytes: values
            .iter()
            .flat_map(|v| bytes(*v))
            .collect::<Vec<u8>>()
            .into(),
    }
}

/// A 1x1x4x4x4 image whose voxels above 0.5 are class 1.
fn batch(
    ex: &impl Executor,
    seed: u32,
) -> (
    labelhost_plugin_api::abi::TensorId,
    labelhost_plugin_api::abi::TensorId,
) {
    let x: Vec<f32> = (0..64u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97)) % 1000) as f32 / 1000.0)
        .collect();
    let y: Vec<u8> = x.iter().map(|v| u8::from(*v > 0.5)).collect();
    let shape = [1, 1, 4, 4, 4];
    let xt = ex
        .tensor_from(
            data(&x, &shape, DType::F32, |v| v.to_ne_bytes().to_vec()),
            RStr::from("cpu"),
        )
        .unwrap();
    let yt = ex
        .tensor_from(data(&y, &shape, DType::U8, |v| vec![v]), RStr::from("cpu"))
        .unwrap();
    (xt, yt)
}

#[test]
fn a_model_learns_serves_its_weights_saves_and_is_released() {
    let scope = Arc::new(ExecutorScope::new(Arc::new(TorchExecutor::new())));
    let ex = scope_handle(scope.clone());
    let config = json!({"optimizer": {"name": "adam", "lr": 0.05}, "loss": {"name": "dice_ce"},
        "labels": [1]});
    let model = ex
        .trainable(
            RStr::from(fixture("tiny_seg.pt").as_str()),
            RStr::from("cpu"),
            RStr::from(config.to_string().as_str()),
        )
        .unwrap();
    let mut losses = Vec::new();
    let mut last = Value::Null;
    for step in 0..150 {
        let (x, y) = batch(&ex, step % 7);
        let out = ex
            .train_step(model, RSlice::from(&[x][..]), RSlice::from(&[y][..]))
            .unwrap();
        last = serde_json::from_str(out.as_str()).unwrap();
        losses.push(last["loss"].as_f64().unwrap());
        ex.release(RSlice::from(&[x, y][..]));
    }
    assert!(
        losses[149] < 0.5 * losses[0],
        "the loss fell: {} -> {}",
        losses[0],
        losses[149]
    );
    assert_eq!(last["step"], 150);
    assert!(last["dice"][0].as_f64().unwrap() > 0.9, "{last}");

    // The handle serves inference with the current weights; a saved copy gives the same.
    let (x, y) = batch(&ex, 3);
    let params = json!({"roi_size": [4, 4, 4]}).to_string();
    let live = ex
        .sliding_window(model, x, RStr::from(params.as_str()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("sub/tiny.pt");
    let args = json!({"path": saved}).to_string();
    ex.model_op(model, RStr::from("save"), RStr::from(args.as_str()))
        .unwrap();
    let reloaded = ex
        .load_model(
            RStr::from(saved.to_string_lossy().as_ref()),
            RStr::from("cpu"),
        )
        .unwrap();
    let again = ex.forward(reloaded, RSlice::from(&[x][..])).unwrap();
    let (a, b) = (ex.tensor_to(live).unwrap(), ex.tensor_to(again[0]).unwrap());
    assert_eq!(a.shape, b.shape);
    assert_eq!(a.bytes, b.bytes, "saved weights are the trained ones");
    let first = ex
        .op(
            RStr::from("select"),
            RSlice::from(&[again[0]][..]),
            RStr::from(r#"{"dim": 0, "index": 0}"#),
        )
        .unwrap();
    let dice = ex
        .op(
            RStr::from("dice"),
            RSlice::from(&[first[0], y][..]),
            RStr::from(r#"{"labels": [1], "argmax": true}"#),
        )
        .unwrap();
    let d = ex.tensor_to(dice[0]).unwrap();
    assert!(f32::from_ne_bytes(d.bytes[..4].try_into().unwrap()) > 0.9);

    let info: Value = serde_json::from_str(
        ex.model_op(model, RStr::from("info"), RStr::from("{}"))
            .unwrap()
            .as_str(),
    )
    .unwrap();
    assert_eq!(
        (info["step"].as_u64(), info["parameters"].as_u64()),
        (Some(150), Some(2 * 27 + 2))
    );
    assert_eq!(scope.live_trainers(), 1);
    ex.model_op(model, RStr::from("release"), RStr::from("{}"))
        .unwrap();
    assert_eq!(scope.live_trainers(), 0);
    let gone = ex.train_step(model, RSlice::from(&[x][..]), RSlice::from(&[y][..]));
    assert_eq!(
        gone.into_result().unwrap_err().code,
        ErrorCode::INVALID_INPUT
    );
}

#[test]
fn fresh_weights_and_bad_configs() {
    let scope = Arc::new(ExecutorScope::new(Arc::new(TorchExecutor::new())));
    let ex = scope_handle(scope);
    let path = fixture("tiny_seg.pt");
    let load = |config: Value| {
        ex.trainable(
            RStr::from(path.as_str()),
            RStr::from("cpu"),
            RStr::from(config.to_string().as_str()),
        )
        .into_result()
    };
    // Fresh weights differ from the file's; the same seed draws the same ones.
    let (x, _) = batch(&ex, 1);
    let params = json!({"roi_size": [4, 4, 4]}).to_string();
    let out = |m| {
        ex.tensor_to(
            ex.sliding_window(m, x, RStr::from(params.as_str()))
                .unwrap(),
        )
        .unwrap()
        .bytes
    };
    let file = out(load(json!({})).unwrap());
    let fresh = out(load(json!({"init": "fresh", "seed": 4})).unwrap());
    assert_ne!(file, fresh);
    assert_eq!(
        fresh,
        out(load(json!({"init": "fresh", "seed": 4})).unwrap())
    );
    for bad in [
        json!({"optimizer": {"name": "lbfgs"}}),
        json!({"loss": {"name": "focal"}}),
        json!({"lr_scheduler": {"name": "cosine"}}),
        json!({"init": "zeros"}),
        json!({"optimizer": {"lr": -1}}),
    ] {
        let e = load(bad.clone()).expect_err("refused");
        assert_eq!(e.code, ErrorCode::INVALID_INPUT, "{bad}: {}", e.message);
    }
    let missing = ex.trainable(
        RStr::from("/nonexistent.pt"),
        RStr::from("cpu"),
        RStr::from("{}"),
    );
    assert_eq!(
        missing.into_result().unwrap_err().code,
        ErrorCode::MODEL_IMPORT_ERROR
    );
}
