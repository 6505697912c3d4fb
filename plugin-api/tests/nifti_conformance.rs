//! NIfTI conformance against nibabel 5.4.2, on the files scripts/fetch-data.sh caches in
//! `$LABELHOST_CACHE/nifti-conformance` (packaged files from nibabel, dipy and nifti-js, plus
//! what tests/fixtures/nifti/make_expected.py generates and records in `expected.json`):
//! every readable file gives nibabel's shape, affine, sum and sampled voxels; every malformed
//! or unsupported one an `INVALID_INPUT` error that names the file and the problem; labels
//! written in every `result_dtype` on real references read back with their values and the
//! reference's geometry.
#![cfg(feature = "nifti")]

use labelhost_plugin_api::sdk::image::{self, Volume, LABEL_DTYPES};
use labelhost_plugin_api::sdk::ErrorCode;
use ndarray::{ArrayD, Axis, IxDyn, ShapeBuilder};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Expected {
    nibabel: String,
    readable: Vec<Readable>,
    refused: Vec<Refused>,
}

#[derive(Deserialize)]
struct Readable {
    file: String,
    shape: Vec<usize>,
    affine: [[f64; 4]; 4],
    sum: f64,
    nan_count: usize,
    samples: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    index: Vec<usize>,
    /// `None` for NaN.
    value: Option<f64>,
}

#[derive(Deserialize)]
struct Refused {
    file: String,
    error_contains: Vec<String>,
    why: String,
    nibabel: String,
}

/// The conformance folder; fails (never skips) when setup has not fetched it.
fn folder() -> PathBuf {
    let cache = std::env::var_os("LABELHOST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/labelhost")
        });
    let dir = cache.join("nifti-conformance");
    assert!(
        dir.join(".complete").is_file() && dir.join("expected.json").is_file(),
        "the NIfTI conformance files are not in {}: run scripts/setup.sh (its \
         scripts/fetch-data.sh step fetches them and runs tests/fixtures/nifti/make_expected.py)",
        dir.display()
    );
    dir
}

fn expected(dir: &Path) -> Expected {
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("read expected.json");
    let expected: Expected = serde_json::from_str(&text).expect("parse expected.json");
    assert_eq!(
        expected.nibabel, "5.4.2",
        "expected.json was made with another nibabel"
    );
    expected
}

fn check_readable(dir: &Path, want: &Readable) -> Vec<String> {
    let volume = match image::read(&dir.join(&want.file)) {
        Ok(v) => v,
        Err(e) => return vec![format!("not read: {e}")],
    };
    let mut wrong = Vec::new();
    if volume.data.shape() != want.shape.as_slice() {
        wrong.push(format!(
            "shape {:?}, nibabel {:?}",
            volume.data.shape(),
            want.shape
        ));
        return wrong;
    }
    match image::read_voxels(&dir.join(&want.file)) {
        Ok((_, voxels)) => {
            let frame = volume.first_frame();
            let got = voxels_f32(&voxels);
            let same = |(a, b): (&f32, &f32)| a == b || (a.is_nan() && b.is_nan());
            if got.shape() != frame.shape() || !got.iter().zip(frame.iter()).all(same) {
                wrong.push("read_voxels differs from read's first frame".into());
            }
        }
        Err(e) => wrong.push(format!("read_voxels: {e}")),
    }
    let affine = volume.affine();
    let off = (0..16).any(|i| (affine[i / 4][i % 4] - want.affine[i / 4][i % 4]).abs() > 1e-4);
    if off {
        wrong.push(format!("affine {affine:?}, nibabel {:?}", want.affine));
    }
    let nans = volume.data.iter().filter(|v| v.is_nan()).count();
    let sum: f64 = volume
        .data
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| f64::from(v))
        .sum();
    if nans != want.nan_count {
        wrong.push(format!("{nans} NaNs, nibabel {}", want.nan_count));
    }
    if (sum - want.sum).abs() > 1e-4 * want.sum.abs().max(1.0) {
        wrong.push(format!("sum {sum}, nibabel {}", want.sum));
    }
    for s in &want.samples {
        let got = volume.data[s.index.as_slice()];
        let same = match s.value {
            None => got.is_nan(),
            // decoding and scaling in f64 as nibabel does, then one rounding to f32
            Some(v) => got == v as f32,
        };
        if !same {
            wrong.push(format!(
                "voxel {:?} = {got}, nibabel {:?}",
                s.index, s.value
            ));
        }
    }
    wrong
}

#[test]
fn every_readable_file_reads_as_nibabel_reads_it() {
    let dir = folder();
    let expected = expected(&dir);
    let files: Vec<&str> = expected.readable.iter().map(|r| r.file.as_str()).collect();
    for required in [
        "nibabel/anatomical.nii",
        "nibabel/reoriented_anat_moved.nii",
        "nibabel/functional.nii",
        "nibabel/example4d.nii.gz",
        "nibabel/standard.nii.gz",
        "generated/int8.nii",
        "generated/int64.nii",
        "generated/uint64_be.nii",
        "generated/float64_be.nii",
        "generated/pair.hdr",
        "generated/scaled_int16.nii",
        "generated/qform_only_qfac_neg.nii",
    ] {
        assert!(files.contains(&required), "expected.json lacks {required}");
    }
    let failures: Vec<String> = expected
        .readable
        .iter()
        .flat_map(|want| {
            let problems = check_readable(&dir, want);
            problems
                .into_iter()
                .map(move |p| format!("{}: {p}", want.file))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_malformed_or_unsupported_file_is_refused_with_a_specific_error() {
    let dir = folder();
    let expected = expected(&dir);
    assert!(
        expected.refused.len() >= 20,
        "too few refused files in expected.json"
    );
    let mut failures = Vec::new();
    for want in &expected.refused {
        let path = dir.join(&want.file);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        match image::read(&path) {
            Ok(v) => failures.push(format!(
                "{} ({}): read as {:?}; nibabel: {}",
                want.file,
                want.why,
                v.data.shape(),
                want.nibabel
            )),
            Err(e) => {
                let specific = want
                    .error_contains
                    .iter()
                    .all(|w| e.message.contains(w.as_str()));
                if e.code != ErrorCode::INVALID_INPUT || !specific || !e.message.contains(&name) {
                    failures.push(format!(
                        "{} ({}): {e}; wanted INVALID_INPUT naming {name} and {:?}",
                        want.file, want.why, want.error_contains
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_voxel_limit_applies_before_reading() {
    let path = folder().join("nibabel/anatomical.nii"); // 33 x 41 x 25 = 33825 voxels
    let err = image::read_with_limit(&path, 33824).expect_err("over the limit");
    assert_eq!(err.code, ErrorCode::INVALID_INPUT);
    assert!(err
        .message
        .contains("33x41x25 make 33825 voxels, over the voxel limit of 33824"));
    let volume = image::read_with_limit(&path, 33825).expect("at the limit");
    assert_eq!(volume.data.len(), 33825);
    // without a limit, an uncompressed file's size still refuses dims it cannot hold
    let huge = folder().join("malformed/huge_dims.nii");
    let err = image::read_with_limit(&huge, u64::MAX).expect_err("larger than the file");
    assert!(err.message.contains("ends before its data does"), "{err}");
}

#[test]
fn a_4d_volume_gives_its_first_frame() {
    let volume = image::read(&folder().join("nibabel/example4d.nii.gz")).expect("read");
    let frame = volume.first_frame();
    assert_eq!(frame.shape(), &[128, 96, 24]);
    assert_eq!(frame, volume.data.index_axis(Axis(3), 0));
}

/// What [`image::read_voxels`] gave, as `f32` indexed `[i, j, k]`.
fn voxels_f32(v: &image::Voxels) -> ArrayD<f32> {
    use labelhost_plugin_api::sdk::DType;
    let (bytes, dtype, shape) = match v {
        image::Voxels::Decoded(a) => return a.clone(),
        image::Voxels::Raw {
            bytes,
            dtype,
            shape,
        } => (bytes, *dtype, shape),
    };
    let size = dtype.size().expect("a sized dtype");
    let value = |c: &[u8]| -> f32 {
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(c);
        match dtype {
            DType::U8 => f32::from(c[0]),
            DType::I16 => f32::from(i16::from_ne_bytes([b[0], b[1]])),
            DType::I32 => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f32,
            DType::I64 => i64::from_ne_bytes(b) as f32,
            DType::F32 => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            DType::F64 => f64::from_ne_bytes(b) as f32,
            other => panic!("unexpected dtype {other:?}"),
        }
    };
    let values: Vec<f32> = bytes.chunks_exact(size).map(value).collect();
    ArrayD::from_shape_vec(IxDyn(shape).f(), values).expect("shape")
}

/// A label with values 0 to 255 spread over the volume.
fn label_for(volume: &Volume) -> ArrayD<u8> {
    volume.first_frame().mapv(|v| (v.abs() as u64 % 256) as u8)
}

#[test]
fn labels_written_in_every_dtype_read_back_on_the_reference_grid() {
    let dir = folder();
    let out = tempfile::tempdir().expect("temp dir");
    for reference in [
        "nibabel/anatomical.nii",             // big-endian, sform and qform, qfac -1
        "generated/qform_only_qfac_neg.nii",  // qform only
        "generated/no_xform_zero_pixdim.nii", // neither: the base affine
        "nibabel/example4d.nii.gz",           // 4-D with extensions: a 3-D label
        "generated/pair.hdr",                 // a .hdr/.img pair
    ] {
        let volume = image::read(&dir.join(reference)).expect("read the reference");
        let label = label_for(&volume);
        for dtype in LABEL_DTYPES {
            for ext in [".nii", ".nii.gz"] {
                let path = out.path().join(format!("label.{dtype}{ext}"));
                image::write_label_as(&path, &volume, &label, dtype).expect("write");
                let back = image::read(&path).expect("read the label back");
                let what = format!("{reference} as {dtype}{ext}");
                assert_eq!(back.data, label.mapv(f32::from), "{what}: values");
                assert_eq!(back.affine(), volume.affine(), "{what}: affine");
                let (h, r) = (&back.header, &volume.header);
                assert_eq!(
                    (h.sform_code, h.qform_code),
                    (r.sform_code, r.qform_code),
                    "{what}"
                );
                assert_eq!(
                    (h.srow_x, h.srow_y, h.srow_z),
                    (r.srow_x, r.srow_y, r.srow_z)
                );
                let q = |h: &nifti::NiftiHeader| {
                    [
                        h.quatern_b,
                        h.quatern_c,
                        h.quatern_d,
                        h.quatern_x,
                        h.quatern_y,
                        h.quatern_z,
                    ]
                };
                assert_eq!(q(h), q(r), "{what}: quaternion");
                assert_eq!(h.pixdim[..4], r.pixdim[..4], "{what}: pixdim");
                assert_eq!((h.scl_slope, h.scl_inter), (1.0, 0.0), "{what}: scaling");
            }
        }
    }
}
