//! Tests of [`super::inspect`] and [`super::geometry`] on files written and patched here:
//! what an upload check must refuse, and the grid comparison labels are held to.

use super::tests::{patched, reference};
use super::*;
use crate::sdk::ErrorCode;
use flate2::{write::GzEncoder, Compression};
use std::io::Write;
use std::path::{Path, PathBuf};

fn gzip(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).expect("gzip");
    let path = dir.join(name);
    std::fs::write(&path, gz.finish().expect("gzip")).expect("write");
    path
}

fn refused(path: &Path, words: &str) {
    let e = inspect(path, &ReadOptions::default()).expect_err("must be refused");
    assert_eq!(e.code, ErrorCode::INVALID_INPUT, "{e}");
    assert!(e.message.contains(words), "{e} lacks {words:?}");
}

#[test]
fn a_good_volume_gives_its_grid_plain_or_gzipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = patched(dir.path(), "ok.nii", |_| {});
    let bytes = std::fs::read(&plain).expect("read");
    let gz = gzip(dir.path(), "ok.nii.gz", &bytes);
    let want = Geometry {
        shape: vec![4, 5, 3],
        affine: reference().affine(),
    };
    for path in [&plain, &gz] {
        let options = ReadOptions::default();
        assert_eq!(inspect(path, &options).expect("valid"), want);
        assert_eq!(geometry(path, &options).expect("valid"), want);
    }
    let limit = inspect(&gz, &ReadOptions::with_max_voxels(59)).expect_err("60 voxels");
    assert!(limit.message.contains("voxel limit"), "{limit}");
}

#[test]
fn broken_files_are_refused_before_anything_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let good = std::fs::read(patched(d, "good.nii", |_| {})).expect("read");
    let gz = std::fs::read(gzip(d, "good.nii.gz", &good)).expect("read");

    std::fs::write(d.join("empty.nii.gz"), b"").expect("write");
    refused(&d.join("empty.nii.gz"), "gzip");
    std::fs::write(d.join("empty.nii"), b"").expect("write");
    refused(&d.join("empty.nii"), "too short");
    std::fs::write(d.join("garbage.nii.gz"), b"this is not gzip at all").expect("write");
    refused(&d.join("garbage.nii.gz"), "gzip");
    std::fs::write(d.join("cut.nii.gz"), &gz[..gz.len() - 20]).expect("write");
    refused(&d.join("cut.nii.gz"), "gzip");
    let mut bad_crc = gz.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    std::fs::write(d.join("crc.nii.gz"), &bad_crc).expect("write");
    refused(&d.join("crc.nii.gz"), "gzip");
    let lying = patched(d, "lying.nii", |b| {
        b[108..112].copy_from_slice(&4000f32.to_ne_bytes())
    });
    refused(&lying, "ends before its data");
    let far = patched(d, "far.nii", |b| {
        b[108..112].copy_from_slice(&1e9f32.to_ne_bytes())
    });
    refused(&far, "header extensions");
    let huge = patched(d, "huge.nii", |b| {
        for at in [42, 44, 46] {
            b[at..at + 2].copy_from_slice(&32767i16.to_ne_bytes());
        }
    });
    refused(&huge, "voxel limit");
    refused(&patched(d, "pair.hdr", |_| {}), "not a single-file volume");

    // A gzip bomb: a valid volume followed by 4 MiB of zeros in the same stream.
    let mut bomb = good.clone();
    bomb.extend(std::iter::repeat_n(0u8, 4 << 20));
    let bomb = gzip(d, "bomb.nii.gz", &bomb);
    refused(&bomb, "after its data");
}

#[test]
fn a_label_must_lie_on_its_images_grid() {
    let image = Geometry {
        shape: vec![4, 5, 3, 1],
        affine: reference().affine(),
    };
    let mut label = Geometry {
        shape: vec![4, 5, 3],
        affine: image.affine,
    };
    assert_eq!(label.mismatch(&image), None);
    label.affine[0][3] += 0.005;
    assert_eq!(label.mismatch(&image), None, "float32 rounding is kept");
    label.affine[0][3] += 1.0;
    let shifted = label.mismatch(&image).expect("moved 1 mm");
    assert!(shifted.contains("affine"), "{shifted}");
    label.affine = image.affine;
    label.shape = vec![5, 4, 3];
    let dims = label.mismatch(&image).expect("other dims");
    assert!(dims.contains("[5, 4, 3]"), "{dims}");
}

/// The fuzz targets' seeds (tests/fuzz/corpus, made by tests/fuzz/make_corpus.py) must be
/// volumes the check and the reader accept, or fuzzing starts from the refusal paths only.
#[test]
fn the_fuzz_seeds_are_accepted_volumes() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/corpus");
    let mut seen = 0;
    for (folder, ext) in [("nifti", None), ("nrrd", Some("nrrd"))] {
        for entry in std::fs::read_dir(corpus.join(folder)).expect("corpus folder") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("truncated") {
                refused(&path, "ends before its data");
                continue;
            }
            assert!(ext.is_none_or(|e| name.ends_with(e)), "{name}");
            let grid = inspect(&path, &ReadOptions::default()).expect(name);
            let volume = read(&path).expect(name);
            assert_eq!(volume.data.shape(), &grid.shape[..], "{name}");
            assert!(volume.data.iter().any(|v| *v != 0.0), "{name} has data");
            seen += 1;
        }
    }
    assert!(seen >= 9, "{seen} seeds");
}
