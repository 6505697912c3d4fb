//! The voxel ops against plain LibTorch: `quantile`/`quantiles` bit for bit like
//! torch.quantile, `normalize_resize` like resizing first and normalising after.

use super::ops::run;
use serde_json::json;
use tch::{Kind, Tensor};

fn values(t: &Tensor) -> Vec<f32> {
    let flat = t.flatten(0, -1).to_kind(Kind::Float);
    (0..flat.size()[0])
        .map(|i| flat.double_value(&[i]) as f32)
        .collect()
}

#[test]
fn quantiles_equal_torch_quantile_bit_for_bit() {
    tch::manual_seed(7);
    // Ties (rounded values), an odd count, and the quantiles deepbet uses.
    let x = (Tensor::rand([37, 41, 29], (Kind::Float, tch::Device::Cpu)) * 300.0).round();
    let qs = [0.0, 0.005, 0.1, 0.25, 0.5, 0.61, 0.995, 1.0];
    let flat = x.flatten(0, -1);
    let expected: Vec<f32> = qs
        .iter()
        .map(|&q| {
            flat.quantile_scalar(q, None, false, "linear")
                .double_value(&[]) as f32
        })
        .collect();
    let one: Vec<f32> = qs
        .iter()
        .map(|&q| values(&run("quantile", &[x.shallow_clone()], &json!({ "q": q })).unwrap()[0])[0])
        .collect();
    assert_eq!(one, expected);
    let all = run("quantiles", &[x.shallow_clone()], &json!({ "q": qs })).unwrap();
    assert_eq!(values(&all[0]), expected);
    // The GPU's way (top-k) and the CPU's (selection) agree with torch, NaN included.
    for select in [false, true] {
        let got: Vec<f32> = super::ops::quantiles_by(&x, &qs, select)
            .unwrap()
            .iter()
            .map(|t| t.double_value(&[]) as f32)
            .collect();
        assert_eq!(got, expected, "select {select}");
        let nan = x.copy();
        let _ = nan.get(3).get(4).fill_(f64::NAN);
        let got = super::ops::quantiles_by(&nan, &[0.5], select).unwrap();
        assert!(got[0].double_value(&[]).is_nan(), "select {select}");
    }
    let bad = run("quantiles", &[x], &json!({"q": [0.5, 1.5]})).unwrap_err();
    assert_eq!(
        bad.code,
        labelhost_plugin_api::abi::ErrorCode::INVALID_INPUT
    );
}

#[test]
fn normalize_resize_equals_resizing_then_normalising() {
    tch::manual_seed(3);
    let crop = Tensor::rand([23, 31, 19], (Kind::Float, tch::Device::Cpu));
    for size in [[64, 64, 64], [23, 31, 19], [16, 40, 7]] {
        let args = json!({"size": size, "unbiased": true, "scale": 0.226, "shift": 0.449});
        let fast = run("normalize_resize", &[crop.shallow_clone()], &args).unwrap();
        let resize = json!({"size": size, "mode": "nearest-exact"});
        let big = run("interpolate", &[crop.shallow_clone()], &resize).unwrap();
        let z = run("normalize_intensity", &big, &json!({"unbiased": true})).unwrap();
        let slow = run("affine", &z, &json!({"scale": 0.226, "shift": 0.449})).unwrap();
        assert_eq!(fast[0].size(), slow[0].size());
        let diff = (&fast[0] - &slow[0]).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "size {size:?}: max difference {diff}");
    }
}

/// LibTorch's way (a GPU's, and a CPU's for layouts the kernel does not take: here a
/// leading channel) answers what the kernel answers.
#[test]
fn normalize_resize_by_libtorch_equals_the_kernel() {
    tch::manual_seed(4);
    let crop = Tensor::rand([23, 31, 19], (Kind::Float, tch::Device::Cpu));
    for (size, dtype) in [([64, 64, 64], "float32"), ([16, 40, 7], "bfloat16")] {
        let args =
            json!({"size": size, "unbiased": true, "scale": 0.226, "shift": 0.449, "dtype": dtype});
        let kernel = run("normalize_resize", &[crop.shallow_clone()], &args).unwrap();
        let channel = crop.unsqueeze(0);
        let generic = run("normalize_resize", &[channel], &args).unwrap();
        assert_eq!(generic[0].size()[1..], kernel[0].size()[..]);
        assert_eq!(generic[0].kind(), kernel[0].kind());
        let diff = (&generic[0].squeeze_dim(0) - &kernel[0])
            .abs()
            .max()
            .to_kind(Kind::Float)
            .double_value(&[]);
        // bf16 holds 8 bits of mantissa: one rounding step near 2 is 2^-6.
        let tolerance = if dtype == "float32" { 1e-5 } else { 1.6e-2 };
        assert!(diff <= tolerance, "{size:?} {dtype}: max difference {diff}");
    }
}

#[test]
fn orient_permutes_flips_and_zeroes_nan_into_c_order() {
    tch::manual_seed(5);
    let x = Tensor::rand([4, 5, 6], (Kind::Float, tch::Device::Cpu));
    let _ = x.get(1).get(2).get(3).fill_(f64::NAN);
    let out = run(
        "orient",
        &[x.shallow_clone()],
        &json!({"permute": [2, 0, 1], "flip": [1, 2], "nan_to_num": true}),
    )
    .unwrap()
    .remove(0);
    let want = x
        .permute([2, 0, 1])
        .flip([1, 2])
        .nan_to_num(0.0, None, None);
    assert!(out.is_contiguous());
    assert_eq!(out.size(), vec![6, 4, 5]);
    assert!(out.equal(&want));
    let kept = run(
        "orient",
        &[x.shallow_clone()],
        &json!({"permute": [0, 1, 2]}),
    )
    .unwrap();
    assert!(
        kept[0].isnan().any().int64_value(&[]) == 1,
        "NaN kept unless asked"
    );
    for bad in [
        json!({"permute": [0, 0, 1]}),
        json!({"permute": [0, 1, 2], "flip": [3]}),
    ] {
        assert!(run("orient", &[x.shallow_clone()], &bad).is_err(), "{bad}");
    }
}

/// The contract's op list (plugin-api's `ops::NAMES`) against the host: every name is
/// answered (bad or missing arguments are an error of their own, never UNSUPPORTED), and
/// a name off the list is UNSUPPORTED.
#[test]
fn every_op_the_contract_lists_is_answered() {
    use labelhost_plugin_api::abi::ErrorCode;
    let x = Tensor::rand([4, 5, 6], (Kind::Float, tch::Device::Cpu));
    for name in labelhost_plugin_api::ops::NAMES {
        let answer = run(name, &[x.shallow_clone(), x.shallow_clone()], &json!({}));
        if let Err(e) = answer {
            assert_ne!(e.code, ErrorCode::UNSUPPORTED, "{name}: {}", e.message);
        }
    }
    let e = run("no_such_op", &[x], &json!({})).unwrap_err();
    assert_eq!(e.code, ErrorCode::UNSUPPORTED);
}

/// Typed ops reach the host as the arguments they mean.
#[test]
fn typed_ops_run_as_their_json() {
    use labelhost_plugin_api::{abi::DType, ops::*};
    fn go<O: Op>(op: O, x: &Tensor) -> Tensor {
        run(
            O::NAME,
            &[x.shallow_clone()],
            &serde_json::to_value(op).unwrap(),
        )
        .unwrap()
        .remove(0)
    }
    let x = Tensor::rand([6, 7, 8], (Kind::Float, tch::Device::Cpu));
    let r = go(
        Resample {
            permute: Some([2, 1, 0]),
            flip: vec![0],
            start: Some([1, 1, 1]),
            end: Some([7, 6, 5]),
            size: Some([9, 9, 9]),
            range: Some(ScaleIntensityRange {
                a_min: 0.0,
                a_max: 0.5,
                b_min: 0.0,
                b_max: 1.0,
                clip: true,
            }),
            ..Default::default()
        },
        &x,
    );
    assert_eq!((r.size(), r.kind()), (vec![9, 9, 9], Kind::Float));
    assert!(r.max().double_value(&[]) <= 1.0);
    let m = go(
        Resample {
            threshold: Some(0.5),
            ..Default::default()
        },
        &x,
    );
    assert!(m.equal(&x.gt(0.5).to_kind(Kind::Uint8)));
    let i = go(
        Interpolate {
            size: [3, 14, 8],
            ..Default::default()
        },
        &x,
    );
    assert_eq!(i.size(), vec![3, 14, 8]);
    let n = go(
        NormalizeResize {
            size: [12, 12, 12],
            dtype: Float::Bfloat16,
            ..Default::default()
        },
        &x,
    );
    assert_eq!((n.size(), n.kind()), (vec![12, 12, 12], Kind::BFloat16));
    assert_eq!(go(ToDtype { dtype: DType::U8 }, &x).kind(), Kind::Uint8);
    let q = go(Quantiles { q: vec![0.0, 1.0] }, &x);
    assert_eq!(values(&q), vec![values(&x.min())[0], values(&x.max())[0]]);
}
