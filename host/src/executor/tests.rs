//! The executor through the ABI, on real LibTorch with the committed TorchScript fixtures
//! (made by tests/fixtures/models/make_models.py).

use super::{scope_handle, ExecutorScope, TorchExecutor};
use abi_stable::std_types::{RSlice, RStr};
use labelhost_plugin_api::abi::{DType, ErrorCode, Executor, TensorData, TensorId};
use std::{path::PathBuf, sync::Arc};

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name);
    p.to_string_lossy().into_owned()
}

fn floats(values: &[f32], shape: &[i64]) -> TensorData {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    TensorData {
        dtype: DType::F32,
        shape: shape.into(),
        bytes: bytes.into(),
    }
}

fn read_f32(d: &TensorData) -> Vec<f32> {
    d.bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn handle() -> (Arc<ExecutorScope>, impl Executor) {
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
