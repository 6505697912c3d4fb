//! The `segmentation` app's UNet by sliding-window inference on volumes larger than its ROI
//! (and one thinner than it, which is padded).

use crate::support::{cache_dir, client, pack_segmentation, Workspace};
use nifti::{NiftiObject, ReaderOptions};
use serde_json::{json, Value};

#[test]
fn the_unet_segments_volumes_larger_and_thinner_than_its_roi() {
    let ws = Workspace::new(1, 80);
    let t1 = cache_dir().join("data/KmeansTest_T1UCharRaw.nii.gz");
    std::fs::copy(&t1, ws.studies().join("t1.nii.gz")).expect("sample volume (scripts/setup.sh)");
    pack_segmentation(&ws.plugins());
    let unet = cache_dir().join("models/segmentation/unet.pt");
    let server = ws.serve(&[]);
    // img00 is 80³ (windows overlap), t1 is 128x128x62 (padded to 64 along its last axis).
    for (image, dims) in [("img00", [80u16, 80, 80]), ("t1", [128, 128, 62])] {
        let url = server.at(&format!(
            "/infer/segmentation_unet?image={image}&output=json"
        ));
        let r = client()
            .post(url)
            .json(&json!({"sw_batch_size": 4, "device": "cpu"}))
            .send()
            .expect("infer");
        assert_eq!(r.status(), 200, "{image}");
        let params: Value = r.json().expect("json");
        assert_eq!(params["sliding_window"]["roi_size"], json!([64, 64, 64]));
        // MONAI Label's latencies, per stage and per transform.
        let lat = &params["latencies"];
        for stage in ["pre", "infer", "invert", "post", "write", "total"] {
            assert!(lat[stage].as_f64().is_some(), "{stage} in {lat}");
        }
        for t in [
            "LoadImaged",
            "Orientationd",
            "EnsureTyped",
            "NormalizeIntensityd",
        ] {
            assert!(
                lat["transform"]["pre"][t].as_f64().is_some(),
                "{t} in {lat}"
            );
        }
        assert!(lat["transform"]["post"]["Restored"].as_f64().is_some());
        assert!(params["centroids"].is_object());
        assert_eq!(params["sliding_window"]["sw_batch_size"], 4);
        let label = ws.studies().join(format!("labels/original/{image}.nii.gz"));
        let obj = ReaderOptions::new().read_file(&label).expect("label");
        assert_eq!(&obj.header().dim[1..4], &dims, "{image}");
        assert_eq!(obj.header().datatype, 2, "uint8 label");
        use nifti::IntoNdArray;
        let values = obj.into_volume().into_ndarray::<f32>().expect("voxels");
        assert!(
            values.iter().all(|v| (0.0..=3.0).contains(v)),
            "{image}: labels outside 0..=3"
        );
    }
    // 3D Slicer asks for NRRD.
    let url = server.at("/infer/segmentation_unet?image=img00&output=image");
    let body = json!({"result_extension": ".nrrd", "save_label": false});
    let nrrd = client()
        .post(url)
        .json(&body)
        .send()
        .expect("infer")
        .bytes()
        .expect("body");
    assert!(nrrd.starts_with(b"NRRD0004\n"), "an NRRD file");
    let text = String::from_utf8_lossy(&nrrd[..400.min(nrrd.len())]);
    assert!(
        text.contains("sizes: 80 80 80") && text.contains("encoding: gzip"),
        "{text}"
    );
    let url = server.at("/infer/segmentation_unet?image=img00&output=json");
    let r = client()
        .post(url)
        .json(&json!({"result_extension": ".png"}))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 400);
    // The model's weights and checksum (MONAI Label's /model routes).
    let weights = client()
        .get(server.at("/model/segmentation_unet"))
        .send()
        .expect("model");
    assert_eq!(weights.status(), 200);
    let disposition = weights.headers()["content-disposition"]
        .to_str()
        .expect("header")
        .to_owned();
    assert!(
        disposition.contains("segmentation_unet.pt"),
        "{disposition}"
    );
    assert_eq!(
        weights.bytes().expect("bytes").as_ref(),
        std::fs::read(&unet).expect("unet").as_slice()
    );
    let info: Value = client()
        .get(server.at("/model/info/segmentation_unet"))
        .send()
        .expect("info")
        .json()
        .expect("json");
    assert!(
        info["checksum"]
            .as_str()
            .expect("checksum")
            .starts_with("SHA256:"),
        "{info}"
    );
    assert_eq!(
        client()
            .put(server.at("/model/segmentation_unet"))
            .send()
            .expect("put")
            .status(),
        409
    );
    assert_eq!(
        client()
            .get(server.at("/model/segmentation_kmeans"))
            .send()
            .expect("no file")
            .status(),
        404
    );
    let listed = crate::support::get_json(&server, "/info/");
    assert!(
        listed["models"]["segmentation_unet"]
            .get("_model_path")
            .is_none(),
        "host-only keys stay hidden"
    );

    let bad = server.at("/infer/segmentation_unet?image=img00&output=json");
    let r = client()
        .post(bad)
        .json(&json!({"roi_size": [62, 64, 64]}))
        .send()
        .expect("infer");
    assert_eq!(r.status(), 400);
}
