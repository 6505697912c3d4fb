//! Brain extraction with the real pretrained deepbet models on real volumes, scored by
//! Dice against the reference masks shipped beside them (see data-sources in the README).

use crate::support::{cache_dir, client, dice, pack, read_volume as read, repo_root, Workspace};
use serde_json::{json, Value};

/// The brain bundle with deepbet's models, as scripts/serve.sh packs it.
pub(crate) fn brain_bundle_assets() -> Vec<String> {
    let models = cache_dir().join("models/deepbet");
    let otsu = repo_root().join("plugins/brain/assets/otsu.json");
    vec![
        format!("{}=assets/otsu.json", otsu.display()),
        format!(
            "{}=models/bbox_model.pt",
            models.join("bbox_model.pt").display()
        ),
        format!("{}=models/model.pt", models.join("model.pt").display()),
    ]
}

#[test]
fn deepbet_reaches_the_reference_dice_on_ch2_and_a_real_t1() {
    let ws = Workspace::new(0, 8);
    let data = cache_dir().join("data");
    for f in ["ch2.nii.gz", "KmeansTest_T1UCharRaw.nii.gz"] {
        std::fs::copy(data.join(f), ws.studies().join(f))
            .expect("sample volume (scripts/setup.sh)");
    }
    pack(
        &ws.plugins(),
        "brain",
        "labelhost_app_brain",
        &brain_bundle_assets(),
    );
    let server = ws.serve(&[]);
    let cases = [
        ("ch2", "ch2bet.nii.gz", 0.93),
        (
            "KmeansTest_T1UCharRaw",
            "KmeansTest_T1RawSkullStrip.nii.gz",
            0.96,
        ),
    ];
    for (image, reference, floor) in cases {
        let url = server.at(&format!(
            "/infer/brain_extraction?image={image}&output=json"
        ));
        let r = client()
            .post(url)
            .json(&json!({"device": "cpu"}))
            .send()
            .expect("infer");
        assert_eq!(r.status(), 200, "{image}");
        let params: Value = r.json().expect("json");
        let label = ws.studies().join(format!("labels/original/{image}.nii.gz"));
        let d = dice(&read(&label), &read(&data.join(reference)));
        println!("{image}: Dice {d:.4}, {params}");
        assert!(d >= floor, "{image}: Dice {d:.4} < {floor}");
    }
}

/// The masks of one precision on the three real volumes, each with its Dice against the
/// reference; `Err` with the server's refusal when the device would emulate it.
fn masks_in(
    server: &crate::support::Server,
    ws: &Workspace,
    precision: &str,
) -> Result<Vec<(String, f64, Value)>, Value> {
    let data = cache_dir().join("data");
    let cases = [
        ("ch2", "ch2bet.nii.gz"),
        ("robex_t1", "heldout/robex_mask.nii.gz"),
        ("KmeansTest_T1UCharRaw", "KmeansTest_T1RawSkullStrip.nii.gz"),
    ];
    let mut out = Vec::new();
    for (image, reference) in cases {
        let url = server.at(&format!(
            "/infer/brain_extraction?image={image}&output=json"
        ));
        let r = client()
            .post(url)
            .json(&json!({ "precision": precision }))
            .send()
            .expect("infer");
        let status = r.status();
        let body: Value = r.json().expect("json");
        if status == 400 {
            return Err(body);
        }
        assert_eq!(status, 200, "{image} in {precision}: {body}");
        let label = ws.studies().join(format!("labels/original/{image}.nii.gz"));
        let d = dice(&read(&label), &read(&data.join(reference)));
        out.push((image.to_owned(), d, body));
    }
    Ok(out)
}

/// A workspace with the three real volumes (uint8 ch2, 4-D float32 ROBEX, int16
/// KmeansTest) and the brain bundle with deepbet's models.
fn three_volumes() -> Workspace {
    let ws = Workspace::new(0, 8);
    let data = cache_dir().join("data");
    for f in [
        "ch2.nii.gz",
        "heldout/robex_t1.nii.gz",
        "KmeansTest_T1UCharRaw.nii.gz",
    ] {
        let name = std::path::Path::new(f).file_name().expect("name");
        std::fs::copy(data.join(f), ws.studies().join(name)).expect("sample volume");
    }
    let assets = brain_bundle_assets();
    pack(&ws.plugins(), "brain", "labelhost_app_brain", &assets);
    ws
}

#[test]
fn deepbet_runs_reduced_precision_only_where_native_and_within_0_005_dice_of_fp32() {
    let ws = three_volumes();
    let server = ws.serve(&[]);
    let fp32 = masks_in(&server, &ws, "fp32").expect("fp32 always runs");
    // uint8 (ch2), float32 4-D (ROBEX), int16 (KmeansTest) volumes, each uploaded as stored.
    for ((image, d, body), floor) in fp32.iter().zip([0.93, 0.96, 0.96]) {
        println!("{image}: Dice fp32 {d:.4}");
        assert_eq!(body["precision"], "fp32", "{image}: {body}");
        assert!(*d >= floor, "{image}: Dice {d:.4} < {floor}");
    }
    let bad = masks_in(&server, &ws, "int8").expect_err("int8 is no precision");
    assert_eq!(bad["code"], "INVALID_INPUT", "{bad}");
    let auto = masks_in(&server, &ws, "auto").expect("auto always runs");
    let mut ran = vec!["fp32".to_owned()];
    for precision in ["bf16", "fp16"] {
        match masks_in(&server, &ws, precision) {
            Ok(masks) => {
                for ((image, d32, _), (_, d, body)) in fp32.iter().zip(&masks) {
                    println!("{image}: Dice fp32 {d32:.4}, {precision} {d:.4}");
                    assert_eq!(body["precision"], precision, "{body}");
                    assert!(
                        (d - d32).abs() <= 0.005,
                        "{image} {precision}: {d} vs {d32}"
                    );
                }
                ran.push(precision.to_owned());
            }
            Err(body) => {
                let detail = body["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("not native"), "{precision}: {body}");
                println!("{precision} refused here: {detail}");
            }
        }
    }
    // auto takes a precision the device runs natively: fp32 where nothing else ran.
    let chosen = auto[0].2["precision"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(ran.contains(&chosen), "auto chose {chosen}, ran {ran:?}");
    if ran.len() == 1 {
        assert_eq!(chosen, "fp32");
    }
}

/// The ops' LibTorch path, the one tensors on a GPU take (no GPU is needed to run it:
/// `--generic-ops` sends CPU tensors down it too), gives deepbet the CPU kernels' masks on
/// the three real volumes (uint8, 4-D float32, int16 as stored).
#[test]
fn deepbet_on_the_gpu_s_op_path_gives_the_cpu_kernels_masks() {
    let ws = three_volumes();
    let labels = ws.studies().join("labels/original");
    let masks = |flags: &[&str]| {
        let server = ws.serve_with(&[], flags);
        let found = masks_in(&server, &ws, "fp32").expect("fp32 runs");
        let volumes: Vec<_> = found
            .iter()
            .map(|(image, _, _)| read(&labels.join(format!("{image}.nii.gz"))))
            .collect();
        (found, volumes, server.log())
    };
    let (kernels, kernel_masks, _) = masks(&[]);
    let (generic, generic_masks, log) = masks(&["--generic-ops"]);
    assert!(log.contains("generic_ops=true"), "{log}");
    for ((k, g), (km, gm)) in kernels
        .iter()
        .zip(&generic)
        .zip(kernel_masks.iter().zip(&generic_masks))
    {
        let agree = dice(km, gm);
        println!(
            "{}: Dice kernels {:.4}, generic {:.4}, between {agree:.5}",
            k.0, k.1, g.1
        );
        assert!(agree >= 0.999, "{}: masks differ (Dice {agree})", k.0);
        assert!((k.1 - g.1).abs() <= 0.002, "{}: {} vs {}", k.0, k.1, g.1);
    }
}
