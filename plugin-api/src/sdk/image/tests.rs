//! Tests of the NIfTI I/O that need no cached files: the affine rules on headers built here,
//! label round trips in every dtype, and refusals of files patched byte by byte. The
//! conformance against nibabel on real files is `plugin-api/tests/nifti_conformance.rs`.

use super::read::limit_from;
use super::*;
use crate::sdk::{Error, ErrorCode};
use ndarray::{ArrayD, IxDyn};
use nifti::NiftiHeader;
use std::path::Path;

/// A 4x5x3 float32 reference with an sform (code 2) and a qform (code 1, qfac -1).
pub(super) fn reference() -> Volume {
    let header = NiftiHeader {
        dim: [3, 4, 5, 3, 1, 1, 1, 1],
        datatype: 16,
        bitpix: 32,
        pixdim: [-1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0],
        sform_code: 2,
        srow_x: [0.0, -3.0, 0.0, 10.0],
        srow_y: [2.0, 0.0, 0.0, -20.0],
        srow_z: [0.0, 0.0, -4.0, 30.0],
        qform_code: 1,
        quatern_d: 1.0,
        quatern_x: 1.0,
        quatern_y: 2.0,
        quatern_z: 3.0,
        ..NiftiHeader::default()
    };
    let data = ArrayD::from_shape_fn(IxDyn(&[4, 5, 3]), |ix| {
        (ix[0] * 15 + ix[1] * 3 + ix[2]) as f32
    });
    Volume { data, header }
}

fn close(a: &Affine, b: &Affine) -> bool {
    (0..16).all(|i| (a[i / 4][i % 4] - b[i / 4][i % 4]).abs() < 1e-9)
}

#[test]
fn the_affine_is_the_valid_sform_then_the_qform_then_the_base() {
    let mut h = reference().header;
    let sform = [
        [0.0, -3.0, 0.0, 10.0],
        [2.0, 0.0, 0.0, -20.0],
        [0.0, 0.0, -4.0, 30.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert!(close(&affine(&h), &sform));
    // quaternion (0, 0, 1): 180 degrees about z; qfac -1 flips the third zoom
    let qform = [
        [-2.0, 0.0, 0.0, 1.0],
        [0.0, -3.0, 0.0, 2.0],
        [0.0, 0.0, -4.0, 3.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    for invalid in [0, -1, 6, 7] {
        h.sform_code = invalid; // nibabel sets invalid codes to 0
        assert!(close(&affine(&h), &qform), "sform_code {invalid}");
    }
    h.pixdim[0] = -0.5; // nibabel: a qfac other than -1 or 1 is 1
    assert_eq!(affine(&h)[2][2], 4.0);
    h.pixdim[2] = -3.0; // nibabel: abs of negative pixdims
    assert_eq!(affine(&h)[1][1], -3.0);
    h.qform_code = 0;
    h.pixdim[1] = 0.0; // nibabel: 0 becomes 1
    let base = [
        [-1.0, 0.0, 0.0, 1.5],
        [0.0, 3.0, 0.0, -6.0],
        [0.0, 0.0, 4.0, -4.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert!(close(&affine(&h), &base), "{:?}", affine(&h));
}

#[test]
fn the_base_affine_of_a_2d_image_ignores_its_third_dim() {
    let h = NiftiHeader {
        dim: [2, 4, 6, 9, 1, 1, 1, 1],
        pixdim: [1.0, 2.0, 3.0, 5.0, 1.0, 1.0, 1.0, 1.0],
        sform_code: 0,
        qform_code: 0,
        ..NiftiHeader::default()
    };
    let want = [
        [-2.0, 0.0, 0.0, 3.0],
        [0.0, 3.0, 0.0, -7.5],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert!(close(&affine(&h), &want), "{:?}", affine(&h));
}

#[test]
fn labels_round_trip_in_every_dtype_under_any_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reference = reference();
    let label = reference.data.mapv(|v| (v as u8).wrapping_mul(17));
    for dtype in LABEL_DTYPES {
        // a dotted name: the nifti crate's writer alone would write `label.nii`
        for name in [
            format!("label.{dtype}.nii"),
            format!("label.{dtype}.nii.gz"),
        ] {
            let path = dir.path().join(&name);
            write_label_as(&path, &reference, &label, dtype).expect("write");
            let back = read(&path).expect("read back");
            assert_eq!(back.data, label.mapv(f32::from), "{name}");
            assert_eq!(back.affine(), reference.affine(), "{name}");
            assert_eq!(back.header.qform_code, 1, "{name}");
        }
    }
    write_label(&dir.path().join("plain.nii.gz"), &reference, &label).expect("write");
    assert_eq!(
        read(&dir.path().join("plain.nii.gz"))
            .expect("read")
            .header
            .datatype,
        2
    );
    let names = std::fs::read_dir(dir.path()).expect("list").count();
    assert_eq!(
        names,
        2 * LABEL_DTYPES.len() + 1,
        "no temporary file is left behind"
    );
}

#[test]
fn writing_refuses_an_unknown_dtype_or_extension_and_another_grid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reference = reference();
    let label = reference.data.mapv(|v| v as u8);
    let e = write_label_as(&dir.path().join("l.nii"), &reference, &label, "int128")
        .expect_err("unknown dtype");
    assert_eq!(e.code, ErrorCode::INVALID_INPUT);
    assert!(e
        .message
        .contains("unknown result_dtype \"int128\": use one of uint8, int16"));
    let e = write_label(&dir.path().join("l.nrrd"), &reference, &label).expect_err("bad extension");
    assert_eq!(e.code, ErrorCode::INVALID_INPUT);
    assert!(e.message.contains(".nii or .nii.gz"), "{e}");
    let other = ArrayD::zeros(IxDyn(&[4, 5, 2]));
    let e = write_label(&dir.path().join("l.nii"), &reference, &other).expect_err("another grid");
    assert_eq!(e.code, ErrorCode::APP_ERROR);
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
}

/// Writes the reference as a uint8 `.nii`, edits its bytes, saves them as `name`.
pub(super) fn patched(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut Vec<u8>),
) -> std::path::PathBuf {
    let reference = reference();
    let source = dir.join("source.nii");
    write_label(&source, &reference, &reference.data.mapv(|v| v as u8)).expect("write");
    let mut bytes = std::fs::read(&source).expect("read");
    edit(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

fn refused(path: &Path, words: &str) -> Error {
    let e = read(path).expect_err("must be refused");
    assert_eq!(e.code, ErrorCode::INVALID_INPUT, "{e}");
    assert!(e.message.contains(words), "{e} lacks {words:?}");
    e
}

#[test]
fn malformed_headers_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let le = cfg!(target_endian = "little");
    let i32_bytes = |v: i32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let nifti2 = patched(d, "two.nii", |b| b[..4].copy_from_slice(&i32_bytes(540)));
    refused(&nifti2, "NIfTI-2");
    let analyze = patched(d, "old.hdr", |b| b[344..348].copy_from_slice(&[0; 4]));
    refused(&analyze, "Analyze 7.5");
    let lonely = patched(d, "lonely.hdr", |b| b[344..348].copy_from_slice(b"ni1\0"));
    refused(&lonely, "lonely.img is missing");
    refused(&patched(d, "single.hdr", |_| {}), "magic 'n+1'");
    let zero_dim = patched(d, "zero.nii", |b| b[44..46].copy_from_slice(&[0, 0]));
    refused(&zero_dim, "dim[2] = 0");
    let limit = read_with_limit(&patched(d, "ok.nii", |_| {}), 59).expect_err("60 voxels");
    assert!(limit
        .message
        .contains("4x5x3 make 60 voxels, over the voxel limit of 59"));
}

#[test]
fn a_truncated_gzip_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reference = reference();
    let path = dir.path().join("cut.nii.gz");
    write_label_as(
        &path,
        &reference,
        &reference.data.mapv(|v| v as u8),
        "float64",
    )
    .expect("w");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("cut");
    refused(&path, "gzip");
    refused(&dir.path().join("absent.nii"), "cannot open");
}

#[test]
fn the_voxel_limit_defaults_to_512_mi_unless_the_variable_says_otherwise() {
    assert_eq!(limit_from(None), 512 * 1024 * 1024);
    assert_eq!(limit_from(Some(" 1000 ")), 1000);
    assert_eq!(limit_from(Some("lots")), ReadOptions::DEFAULT_MAX_VOXELS);
}

#[test]
fn a_pair_is_found_from_either_name_in_either_case() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let header = patched(d, "PAIR.HDR", |b| {
        b[344..348].copy_from_slice(b"ni1\0");
        b[108..112].copy_from_slice(&[0; 4]); // vox_offset 0: the data starts the .img
    });
    let bytes = std::fs::read(d.join("source.nii")).expect("read");
    std::fs::write(d.join("PAIR.IMG"), &bytes[352..]).expect("write the .img");
    let want = reference().data.mapv(|v| f32::from(v as u8));
    assert_eq!(read(&header).expect("from the .hdr").data, want);
    assert_eq!(read(&d.join("PAIR.IMG")).expect("from the .img").data, want);
}
