//! The CPU kernels against LibTorch's own ops, bit for bit: `resample` against `orient`,
//! `crop` and `interpolate` in a row, the resize and threshold paths against LibTorch's
//! calls, and bracketed selection against a sort.

use super::kernels::{order_statistics, Out};
use super::ops::run;
use super::resample::{mul_add_resize, resample_by};
use serde_json::json;
use tch::{Device, Kind, Tensor};

fn bits(t: &Tensor) -> Vec<u32> {
    Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float))
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// Upsampled, downsampled and kept sizes, odd and even, with boxes and every kind of flip.
#[test]
fn resample_equals_orient_crop_interpolate() {
    tch::manual_seed(11);
    let cpu = (Kind::Float, Device::Cpu);
    let floats = Tensor::randn([23, 17, 30], cpu) * 100.0;
    // NaN and infinities where `nan_to_num` matters.
    let _ = floats.get(2).get(3).fill_(f64::NAN);
    let _ = floats.get(5).get(1).fill_(f64::INFINITY);
    let _ = floats.get(7).get(9).fill_(f64::NEG_INFINITY);
    let inputs = [
        (Tensor::rand([23, 17, 30], cpu) * 255.0).to_kind(Kind::Uint8),
        (Tensor::randn([23, 17, 30], cpu) * 900.0).to_kind(Kind::Int16),
        floats.shallow_clone(),
        floats.to_kind(Kind::Double),
    ];
    let cases = [
        json!({}),
        json!({"permute": [2, 1, 0], "flip": [0], "nan_to_num": true}),
        json!({"permute": [1, 2, 0], "flip": [0, 1, 2], "size": [64, 64, 64], "nan_to_num": true}),
        json!({"permute": [2, 0, 1], "flip": [2], "start": [3, 2, 1], "end": [29, 20, 16],
               "size": [50, 7, 33]}),
        json!({"start": [1, 0, 4], "end": [20, 17, 30], "size": [128, 9, 256], "nan_to_num": true}),
        json!({"permute": [0, 2, 1], "start": [0, 5, 3], "end": [23, 6, 17]}),
        json!({"permute": [2, 1, 0], "flip": [1], "start": [2, 2, 2], "end": [20, 15, 21],
               "size": [40, 40, 40], "nan_to_num": true,
               "range": {"a_min": -20.5, "a_max": 130.0, "b_min": 0.0, "b_max": 1.0, "clip": true}}),
        json!({"size": [9, 9, 9], "range": {"a_min": 3.0, "a_max": 1.0, "b_min": -1.0, "b_max": 2.0}}),
        json!({"permute": [1, 0, 2], "size": [11, 30, 14], "threshold": 0.25}),
        json!({"start": [0, 1, 2], "end": [20, 16, 28], "size": [64, 64, 64], "threshold": -3,
               "range": {"a_min": -100.0, "a_max": 100.0, "b_min": -10.0, "b_max": 10.0}}),
    ];
    for x in &inputs {
        for args in &cases {
            let fast = resample_by(x, args, true).unwrap();
            let torch = resample_by(x, args, false).unwrap();
            let kind = if args.get("threshold").is_some() {
                Kind::Uint8
            } else {
                Kind::Float
            };
            assert_eq!((fast.kind(), torch.kind()), (kind, kind), "{args}");
            assert_eq!(fast.size(), torch.size(), "{:?} {args}", x.kind());
            assert_eq!(bits(&fast), bits(&torch), "{:?} {args}", x.kind());
        }
    }
    let bad = run(
        "resample",
        &[inputs[0].shallow_clone()],
        &json!({"end": [24, 17, 30]}),
    );
    assert!(bad.unwrap_err().message.contains("not inside"));
    let bad = run(
        "resample",
        &[inputs[0].shallow_clone()],
        &json!({"permute": [0, 0, 1]}),
    );
    assert!(bad.unwrap_err().message.contains("permute"));
}

#[test]
fn cpu_resize_and_threshold_equal_libtorch() {
    tch::manual_seed(5);
    let x = Tensor::rand([31, 26, 19], (Kind::Float, Device::Cpu));
    for size in [[256, 256, 256], [31, 26, 19], [12, 77, 5]] {
        let expected = x
            .unsqueeze(0)
            .unsqueeze(0)
            .internal_upsample_nearest_exact3d(size, None, None, None)
            .reshape(size);
        let got = run("interpolate", &[x.shallow_clone()], &json!({"size": size})).unwrap();
        assert_eq!(bits(&got[0]), bits(&expected), "{size:?}");
        let u8s = (&x * 200.0).to_kind(Kind::Uint8);
        let got = run(
            "interpolate",
            &[u8s.shallow_clone()],
            &json!({"size": size}),
        )
        .unwrap();
        let expected = u8s
            .to_kind(Kind::Float)
            .unsqueeze(0)
            .unsqueeze(0)
            .internal_upsample_nearest_exact3d(size, None, None, None)
            .reshape(size);
        assert_eq!(bits(&got[0]), bits(&expected), "u8 {size:?}");
        // The z-score's multiply-add fused into the resize rounds as LibTorch's two ops.
        let (a, b) = (0.226 / 0.287_f64, 0.449 - 0.51 * 0.226 / 0.287);
        let fused = mul_add_resize(&x, a, b, size, Out::F32).unwrap().unwrap();
        let two = (&x * a + b)
            .unsqueeze(0)
            .unsqueeze(0)
            .internal_upsample_nearest_exact3d(size, None, None, None)
            .reshape(size);
        assert_eq!(bits(&fused), bits(&two), "mul-add {size:?}");
        // Written as a half precision, rounded as LibTorch's conversion rounds.
        for (out, kind) in [(Out::Bf16, Kind::BFloat16), (Out::F16, Kind::Half)] {
            let half = mul_add_resize(&x, a, b, size, out).unwrap().unwrap();
            assert_eq!(half.kind(), kind);
            assert!(half.equal(&two.to_kind(kind)), "{kind:?} {size:?}");
        }
    }
    let with_nan = x.copy();
    let _ = with_nan.get(1).fill_(f64::NAN);
    let got = run(
        "threshold",
        &[with_nan.shallow_clone()],
        &json!({"value": 0.4}),
    )
    .unwrap();
    let expected = with_nan.gt(0.4).to_kind(Kind::Uint8);
    assert_eq!(got[0].kind(), Kind::Uint8);
    assert!(got[0].equal(&expected));
}

/// Ranks near both ends and the middle, on smooth, tied, sorted and constant values: the
/// bracket and its fallback both answer what a full sort does.
#[test]
fn bracketed_selection_equals_a_sort() {
    tch::manual_seed(2);
    let n = 200_003;
    let smooth = Vec::<f32>::try_from(Tensor::randn([n], (Kind::Float, Device::Cpu))).unwrap();
    let tied: Vec<f32> = smooth.iter().map(|v| (v * 3.0).round()).collect();
    let sorted: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let reversed: Vec<f32> = sorted.iter().rev().copied().collect();
    let constant = vec![4.5_f32; n as usize];
    // Rows with an edge of one value: a stride that falls on it sees only that.
    let edges: Vec<f32> = (0..n as usize)
        .map(|i| if i % 128 == 0 { 0.0 } else { i as f32 % 1000.0 })
        .collect();
    // A volume's background: most values one number, the rest spread above it.
    let background: Vec<f32> = smooth
        .iter()
        .map(|v| if *v < 0.8 { 0.0 } else { v * 50.0 })
        .collect();
    for values in [smooth, tied, sorted, reversed, constant, edges, background] {
        let mut all = values.clone();
        all.sort_unstable_by(f32::total_cmp);
        for lo in [
            0, 1, 999, 1000, 50_000, 100_001, 160_000, 199_000, 200_001, 200_002,
        ] {
            let hi = (lo + 1).min(values.len() - 1);
            let got = order_statistics(&values, &[(lo, hi), (lo, lo)]).unwrap();
            assert_eq!(got, vec![(all[lo], all[hi]), (all[lo], all[lo])], "{lo}");
        }
    }
}
