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
