//! The executor through the ABI, on real LibTorch with the committed TorchScript fixtures
//! (made by tests/fixtures/models/make_models.py).

use super::{scope_handle, ExecutorScope, TorchExecutor};
use abi_stable::std_types::{RSlice, RStr};
use labelhost_plugin_api::abi::{DType, ErrorCode, Executor, ModelId, TensorData, TensorId};
use std::{path::PathBuf, sync::Arc};

pub(super) fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name);
    p.to_string_lossy().into_owned()
}

pub(super) fn floats(values: &[f32], shape: &[i64]) -> TensorData {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    TensorData {
        dtype: DType::F32,
        shape: shape.into(),
        bytes: bytes.into(),
    }
}

pub(super) fn read_f32(d: &TensorData) -> Vec<f32> {
    d.bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub(super) fn handle() -> (Arc<ExecutorScope>, impl Executor) {
    let scope = Arc::new(ExecutorScope::new(Arc::new(TorchExecutor::new())));
    (scope.clone(), scope_handle(scope))
}

#[test]
fn runs_a_torchscript_model_and_frees_handles() {
    let (scope, ex) = handle();
    let model = ex
        .load_model(RStr::from(fixture("double.pt").as_str()), RStr::from("cpu"))
        .unwrap();
    let x = ex
        .tensor_from(floats(&[1.0, -2.5, 3.0, 0.0], &[2, 2]), RStr::from("cpu"))
        .unwrap();
    let out = ex.forward(model, RSlice::from(&[x][..])).unwrap();
    let data = ex.tensor_to(out[0]).unwrap();
    assert_eq!(data.shape.as_slice(), &[2, 2]);
    assert_eq!(read_f32(&data), vec![2.0, -5.0, 6.0, 0.0]);
    assert_eq!(scope.live_tensors(), 2);
    ex.release(RSlice::from(&[x, out[0]][..]));
    assert_eq!(scope.live_tensors(), 0);
}

#[test]
fn tuple_outputs_and_ops() {
    let (_scope, ex) = handle();
    let model = ex
        .load_model(RStr::from(fixture("two_heads.pt").as_str()), RStr::from(""))
        .unwrap();
    let x = ex
        .tensor_from(floats(&[0.1, 0.9, 0.7, 0.2], &[2, 2]), RStr::from("cpu"))
        .unwrap();
    let out = ex.forward(model, RSlice::from(&[x][..])).unwrap();
    assert_eq!(out.len(), 2);
    let sum = read_f32(&ex.tensor_to(out[1]).unwrap());
    assert!((sum[0] - 1.9).abs() < 1e-6);
    let arg = ex
        .op(
            RStr::from("argmax"),
            RSlice::from(&[x][..]),
            RStr::from("{\"dim\": 1}"),
        )
        .unwrap();
    let arg = ex.tensor_to(arg[0]).unwrap();
    assert_eq!(arg.dtype, DType::I64);
    let picked: Vec<i64> = arg
        .bytes
        .chunks_exact(8)
        .map(|c| i64::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(picked, vec![1, 0]);
    let mask = ex
        .op(
            RStr::from("threshold"),
            RSlice::from(&[x][..]),
            RStr::from("{\"value\": 0.5}"),
        )
        .unwrap();
    let mask = ex.tensor_to(mask[0]).unwrap();
    assert_eq!(
        (mask.dtype, mask.bytes.as_slice()),
        (DType::U8, &[0u8, 1, 1, 0][..])
    );
}

#[test]
fn failures_are_typed_errors() {
    let (_scope, ex) = handle();
    let missing = ex.load_model(RStr::from("/nonexistent/model.pt"), RStr::from("cpu"));
    assert_eq!(missing.unwrap_err().code, ErrorCode::MODEL_IMPORT_ERROR);
    let not_a_model = ex.load_model(
        RStr::from(fixture("make_models.py").as_str()),
        RStr::from("cpu"),
    );
    assert_eq!(not_a_model.unwrap_err().code, ErrorCode::MODEL_IMPORT_ERROR);
    let bad_device = ex.load_model(RStr::from(fixture("double.pt").as_str()), RStr::from("tpu"));
    assert_eq!(bad_device.unwrap_err().code, ErrorCode::INVALID_INPUT);
    let short = TensorData {
        dtype: DType::F32,
        shape: vec![4].into(),
        bytes: vec![0u8; 3].into(),
    };
    assert_eq!(
        ex.tensor_from(short, RStr::from("cpu")).unwrap_err().code,
        ErrorCode::INVALID_INPUT
    );
    assert_eq!(
        ex.tensor_to(TensorId(999)).unwrap_err().code,
        ErrorCode::INVALID_INPUT
    );
    // A shape mismatch inside libtorch (a C++ exception) is an error, not a panic.
    let model = ex
        .load_model(RStr::from(fixture("double.pt").as_str()), RStr::from("cpu"))
        .unwrap();
    let x = ex
        .tensor_from(floats(&[1.0, 2.0], &[2]), RStr::from("cpu"))
        .unwrap();
    let y = ex
        .tensor_from(floats(&[1.0, 2.0, 3.0], &[3]), RStr::from("cpu"))
        .unwrap();
    let e = ex.forward(model, RSlice::from(&[x, y][..])).unwrap_err();
    assert_eq!(e.code, ErrorCode::INFERENCE_ERROR);
    let e = ex
        .op(RStr::from("nope"), RSlice::from(&[x][..]), RStr::from("{}"))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UNSUPPORTED);
}

fn sliding(ex: &impl Executor, model: ModelId, x: TensorId, params: &str) -> Vec<f32> {
    let out = ex.sliding_window(model, x, RStr::from(params)).unwrap();
    read_f32(&ex.tensor_to(out).unwrap())
}

#[test]
fn sliding_window_reproduces_a_pointwise_model_exactly() {
    let (_scope, ex) = handle();
    let model = ex
        .load_model(RStr::from(fixture("double.pt").as_str()), RStr::from("cpu"))
        .unwrap();
    let (d, h, w) = (9usize, 7usize, 5usize);
    let values: Vec<f32> = (0..d * h * w).map(|i| (i % 13) as f32 - 4.0).collect();
    let shape = [1, 1, d as i64, h as i64, w as i64];
    let x = ex
        .tensor_from(floats(&values, &shape), RStr::from("cpu"))
        .unwrap();
    let doubled: Vec<f32> = values.iter().map(|v| 2.0 * v).collect();
    for params in [
        r#"{"roi_size": [4, 4, 4], "overlap": 0.25}"#,
        r#"{"roi_size": [4, 3, 2], "overlap": 0.5, "sw_batch_size": 3, "mode": "gaussian"}"#,
        // larger than the image on two axes: padded, then cropped back
        r#"{"roi_size": [12, 8, 4], "mode": "gaussian", "padding_mode": "replicate"}"#,
    ] {
        let got = sliding(&ex, model, x, params);
        assert_eq!(got.len(), doubled.len(), "{params}");
        let worst = got
            .iter()
            .zip(&doubled)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-4, "{params}: max error {worst}");
    }
}

#[test]
fn sliding_window_refuses_bad_parameters() {
    let (_scope, ex) = handle();
    let model = ex
        .load_model(RStr::from(fixture("double.pt").as_str()), RStr::from("cpu"))
        .unwrap();
    let x = ex
        .tensor_from(floats(&[0.0; 8], &[1, 1, 2, 2, 2]), RStr::from("cpu"))
        .unwrap();
    let flat = ex
        .tensor_from(floats(&[0.0; 8], &[8]), RStr::from("cpu"))
        .unwrap();
    // 40³ voxels in 2³ windows at overlap 0.5: 39³ = 59,319 windows, over the limit.
    let cube = ex
        .tensor_from(
            floats(&[0.0; 64_000], &[1, 1, 40, 40, 40]),
            RStr::from("cpu"),
        )
        .unwrap();
    for (input, params, words) in [
        (x, r#"{"roi_size": [2, 2]}"#, "roi_size"),
        (x, r#"{"roi_size": [2, 2, 2], "overlap": 1.0}"#, "overlap"),
        (x, r#"{"roi_size": [2, 2, 2], "mode": "median"}"#, "median"),
        (flat, r#"{"roi_size": [2, 2, 2]}"#, "[N, C, D, H, W]"),
        (
            cube,
            r#"{"roi_size": [2, 2, 2], "overlap": 0.5}"#,
            "59319 windows",
        ),
        (x, r#"{"roi_size": [384, 384, 384]}"#, "over the limit"),
    ] {
        let e = ex
            .sliding_window(model, input, RStr::from(params))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_INPUT, "{params}");
        assert!(e.message.contains(words), "{e:?} lacks {words}");
    }
}

#[test]
fn spatial_and_intensity_ops() {
    let (_scope, ex) = handle();
    let values: Vec<f32> = (0..8).map(|v| v as f32).collect();
    let x = ex
        .tensor_from(floats(&values, &[2, 2, 2]), RStr::from("cpu"))
        .unwrap();
    let op = |name: &str, input: TensorId, args: &str| -> TensorData {
        let out = ex
            .op(
                RStr::from(name),
                RSlice::from(&[input][..]),
                RStr::from(args),
            )
            .unwrap();
        ex.tensor_to(out[0]).unwrap()
    };
    let up = op(
        "interpolate",
        x,
        r#"{"size": [4, 4, 4], "mode": "nearest-exact"}"#,
    );
    assert_eq!(up.shape.as_slice(), &[4, 4, 4]);
    assert_eq!(read_f32(&up).iter().sum::<f32>(), 224.0);
    let area = op("interpolate", x, r#"{"size": [1, 1, 1], "mode": "area"}"#);
    assert_eq!(read_f32(&area), vec![3.5]);
    assert_eq!(read_f32(&op("quantile", x, r#"{"q": 0.5}"#)), vec![3.5]);
    assert_eq!(
        read_f32(&op("crop", x, r#"{"start": [0, 0, 0], "end": [1, 2, 2]}"#)),
        vec![0.0, 1.0, 2.0, 3.0]
    );
    let pasted = read_f32(&op(
        "paste",
        x,
        r#"{"shape": [3, 3, 3], "start": [1, 1, 1]}"#,
    ));
    assert_eq!(
        (pasted.iter().sum::<f32>(), pasted[13], pasted[26]),
        (28.0, 0.0, 7.0)
    );
    let scaled = op(
        "scale_intensity_range",
        x,
        r#"{"a_min": 0, "a_max": 3.5, "b_min": 0, "b_max": 1, "clip": true}"#,
    );
    let expected = [0.0, 2.0 / 7.0, 4.0 / 7.0, 6.0 / 7.0];
    let close = read_f32(&scaled)
        .iter()
        .zip(expected)
        .all(|(a, b)| (a - b).abs() < 1e-6);
    assert!(close, "{:?}", read_f32(&scaled));
    assert_eq!(read_f32(&scaled)[7], 1.0);
    let z = read_f32(&op("normalize_intensity", x, "{}"));
    assert!(z.iter().sum::<f32>().abs() < 1e-5 && (z[7] - 1.527_525).abs() < 1e-4);
    let bad = ex.op(
        RStr::from("crop"),
        RSlice::from(&[x][..]),
        RStr::from(r#"{"start": [0, 0, 0], "end": [3, 2, 2]}"#),
    );
    assert_eq!(bad.unwrap_err().code, ErrorCode::INVALID_INPUT);
}

#[test]
fn a_model_file_changed_on_disk_is_reloaded_and_the_old_one_keeps_serving() {
    let (_scope, ex) = handle();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pt");
    std::fs::copy(fixture("double.pt"), &path).unwrap();
    let p = RStr::from(path.to_str().unwrap());
    let old = ex.load_model(p, RStr::from("cpu")).unwrap();
    // Replace the file (a new mtime); the next load sees the new model.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(fixture("two_heads.pt"), dir.path().join("next.pt")).unwrap();
    std::fs::rename(dir.path().join("next.pt"), &path).unwrap();
    let new = ex.load_model(p, RStr::from("cpu")).unwrap();
    let x = ex
        .tensor_from(floats(&[1.0, 2.0], &[2]), RStr::from("cpu"))
        .unwrap();
    assert_eq!(
        ex.forward(new, RSlice::from(&[x][..])).unwrap().len(),
        2,
        "two_heads now"
    );
    let doubled = ex.forward(old, RSlice::from(&[x][..])).unwrap();
    assert_eq!(
        read_f32(&ex.tensor_to(doubled[0]).unwrap()),
        vec![2.0, 4.0],
        "old handle still doubles"
    );
}

#[test]
fn quantiles_of_tensors_over_torch_quantiles_limit() {
    let (_scope, ex) = handle();
    // 2^24 + 2 elements: 0, 1, 2, ... ; the median is exact, 0.25 interpolates.
    let n = (1usize << 24) + 2;
    let values: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let x = ex
        .tensor_from(floats(&values, &[n as i64]), RStr::from("cpu"))
        .unwrap();
    let q = |v: f64| {
        let out = ex
            .op(
                RStr::from("quantile"),
                RSlice::from(&[x][..]),
                RStr::from(format!("{{\"q\": {v}}}").as_str()),
            )
            .unwrap();
        read_f32(&ex.tensor_to(out[0]).unwrap())[0]
    };
    assert_eq!(q(0.0), 0.0);
    assert_eq!(q(1.0), 999.0);
    assert!((q(0.5) - 499.5).abs() < 1.0, "{}", q(0.5));
    let e = ex
        .op(
            RStr::from("quantile"),
            RSlice::from(&[x][..]),
            RStr::from(r#"{"q": 2}"#),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::INVALID_INPUT);
}
