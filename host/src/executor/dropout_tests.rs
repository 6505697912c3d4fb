//! Monte-Carlo dropout through the ABI (`model_op "mc_dropout"`), on the tiny committed conv
//! fixture and its dropout twins.

use super::tests::{fixture, floats, handle, read_f32};
use abi_stable::std_types::{RSlice, RStr};
use labelhost_plugin_api::abi::{ErrorCode, Executor, ModelId, TensorId};
use serde_json::{json, Value};

fn input(ex: &impl Executor) -> TensorId {
    let values: Vec<f32> = (0..512)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    ex.tensor_from(floats(&values, &[1, 1, 8, 8, 8]), RStr::from("cpu"))
        .unwrap()
}

fn twin(ex: &impl Executor, model: ModelId, network: &str) -> Result<ModelId, ErrorCode> {
    let args = json!({ "network": fixture(network) }).to_string();
    let answer = ex
        .model_op(model, RStr::from("mc_dropout"), RStr::from(args.as_str()))
        .into_result()
        .map_err(|e| e.code)?;
    let v: Value = serde_json::from_str(answer.as_str()).unwrap();
    Ok(ModelId(v["model"].as_u64().unwrap()))
}

#[test]
fn dropout_twins_carry_the_models_weights_and_drop_differently_each_pass() {
    let (scope, ex) = handle();
    let model = ex
        .load_model(
            RStr::from(fixture("tiny_seg.pt").as_str()),
            RStr::from("cpu"),
        )
        .unwrap();
    let x = input(&ex);
    let run = |m| {
        let out = ex.forward(m, RSlice::from(&[x][..])).unwrap();
        read_f32(&ex.tensor_to(out[0]).unwrap())
    };
    let eval = run(model);
    // With p = 0 the twin is the model: its own (other) weights were replaced.
    let same = twin(&ex, model, "tiny_seg_dropout0.pt").unwrap();
    assert_ne!(same, model);
    assert_eq!(run(same), eval);
    // With p = 0.5 each pass zeroes other units and doubles the rest.
    let mc = twin(&ex, model, "tiny_seg_dropout.pt").unwrap();
    assert_eq!(
        twin(&ex, model, "tiny_seg_dropout.pt").unwrap(),
        mc,
        "cached"
    );
    let (a, b) = (run(mc), run(mc));
    assert_ne!(a, b, "two passes drop differently");
    for (v, e) in a.iter().zip(&eval) {
        assert!(
            *v == 0.0 || (v - 2.0 * e).abs() <= 1e-5 * e.abs().max(1.0),
            "{v} {e}"
        );
    }
    assert_eq!(scope.live_models(), 3);
    // The served model stays in evaluation mode.
    assert_eq!(run(model), eval);
}

#[test]
fn a_twin_of_another_architecture_or_a_missing_file_is_refused() {
    let (_scope, ex) = handle();
    let double = ex
        .load_model(RStr::from(fixture("double.pt").as_str()), RStr::from("cpu"))
        .unwrap();
    assert_eq!(
        twin(&ex, double, "tiny_seg_dropout.pt"),
        Err(ErrorCode::INVALID_INPUT)
    );
    assert_eq!(
        twin(&ex, double, "no_such_network.pt"),
        Err(ErrorCode::MODEL_IMPORT_ERROR)
    );
}
