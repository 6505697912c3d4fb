//! Models in reduced precision through the ABI: the casts on any CPU (the tiny committed
//! conv fixture), `auto`, and the refusals.

use super::tests::{fixture, floats, handle, read_f32};
use super::Precision;
use abi_stable::std_types::{RSlice, RStr};
use labelhost_plugin_api::abi::{DType, ErrorCode, Executor};
use serde_json::Value;

fn input(ex: &impl Executor) -> labelhost_plugin_api::abi::TensorId {
    let values: Vec<f32> = (0..512)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    ex.tensor_from(floats(&values, &[1, 1, 8, 8, 8]), RStr::from("cpu"))
        .unwrap()
}

fn load_on_cpu(ex: &impl Executor, path: &str) -> labelhost_plugin_api::abi::ModelId {
    ex.load_model(RStr::from(path), RStr::from("cpu")).unwrap()
}

#[test]
fn a_bf16_model_takes_and_answers_f32_close_to_fp32() {
    let (scope, ex) = handle();
    let path = fixture("tiny_seg.pt");
    let (fp32, again) = (load_on_cpu(&ex, &path), load_on_cpu(&ex, &path));
    assert_eq!(fp32, again, "one handle per module and precision");
    let bf16 = scope.load_on_cpu_in(&path, Precision::Bf16).unwrap();
    assert_ne!(fp32, bf16);
    assert_eq!(scope.live_models(), 2);
    let x = input(&ex);
    let run = |m| {
        let out = ex.forward(m, RSlice::from(&[x][..])).unwrap();
        let data = ex.tensor_to(out[0]).unwrap();
        assert_eq!(data.dtype, DType::F32, "outputs come back in f32");
        read_f32(&data)
    };
    let (a, b) = (run(fp32), run(bf16));
    assert_eq!(a.len(), 1024);
    let worst = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    let scale = a.iter().map(|v| v.abs()).fold(0f32, f32::max);
    assert!(worst > 0.0, "bf16 rounds somewhere");
    assert!(worst <= 0.02 * scale, "worst {worst} of {scale}");
    let sw = r#"{"roi_size": [4, 4, 4], "sw_batch_size": 2, "overlap": 0.25}"#;
    let out = ex.sliding_window(bf16, x, RStr::from(sw)).unwrap();
    let data = ex.tensor_to(out).unwrap();
    assert_eq!(
        (data.dtype, data.shape.as_slice()),
        (DType::F32, &[1i64, 2, 8, 8, 8][..])
    );
}

#[test]
fn precision_op_resolves_auto_and_refuses_what_the_cpu_would_emulate() {
    let (_scope, ex) = handle();
    let path = fixture("tiny_seg.pt");
    let model = load_on_cpu(&ex, &path);
    let op = |args: &str| ex.model_op(model, RStr::from("precision"), RStr::from(args));
    let native = super::precision::native(tch::Device::Cpu);
    let auto: Value =
        serde_json::from_str(&op(r#"{"precision": "auto", "allowed": ["bf16"]}"#).unwrap())
            .unwrap();
    let want = if native.contains(&Precision::Bf16) {
        "bf16"
    } else {
        "fp32"
    };
    assert_eq!(auto["precision"], want, "{auto}");
    let unvalidated = op(r#"{"precision": "auto", "allowed": []}"#).unwrap();
    assert!(unvalidated.contains("\"fp32\""), "{unvalidated}");
    let named = op(r#"{"precision": "bf16", "allowed": ["bf16"]}"#);
    match named.into_result() {
        Ok(answer) => assert!(native.contains(&Precision::Bf16) && answer.contains("bf16")),
        Err(e) => {
            assert!(!native.contains(&Precision::Bf16));
            assert_eq!(e.code, ErrorCode::INVALID_INPUT);
            assert!(e.message.contains("not native"), "{}", e.message);
        }
    }
    let e = op(r#"{"precision": "fp16", "allowed": ["bf16"]}"#).unwrap_err();
    assert!(e.message.contains("not validated"), "{}", e.message);
    let e = op(r#"{"precision": "int4"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::INVALID_INPUT);
}
