//! Brain extraction with the real pretrained deepbet models on real volumes, scored by
//! Dice against the reference masks shipped beside them (see data-sources in the README).

use crate::support::{cache_dir, client, pack, repo_root, Workspace};
use ndarray::ArrayD;
use nifti::{IntoNdArray, NiftiObject, ReaderOptions};
use serde_json::{json, Value};
use std::path::Path;

fn read(path: &Path) -> ArrayD<f32> {
    let obj = ReaderOptions::new().read_file(path).expect("NIfTI");
    obj.into_volume().into_ndarray::<f32>().expect("voxels")
}

fn dice(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let (mut both, mut sum) = (0u64, 0u64);
    for (x, y) in a.iter().zip(b.iter()) {
        let (x, y) = (*x > 0.0, *y > 0.0);
        both += u64::from(x && y);
        sum += u64::from(x) + u64::from(y);
    }
    2.0 * both as f64 / sum as f64
}

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
