//! Writing a label volume on a reference volume's grid, as `.nii` or `.nii.gz`, in the voxel
//! type MONAI Label's `result_dtype` names.

use super::super::error::{Error, Result};
use super::Volume;
use ndarray::ArrayD;
use nifti::{writer::WriterOptions, NiftiHeader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The `result_dtype` names [`write_label_as`] accepts (numpy's spelling; `uint8` is MONAI
/// Label's default).
pub const LABEL_DTYPES: [&str; 7] = [
    "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64",
];

/// Writes a `u8` label with the reference volume's geometry as `uint8` (see
/// [`write_label_as`]).
pub fn write_label(path: &Path, reference: &Volume, label: &ArrayD<u8>) -> Result<()> {
    write_label_as(path, reference, label, "uint8")
}

/// Writes a label with the reference volume's geometry: its sform and qform (codes,
/// `srow_*`, quaternion, offsets), pixdims and units, so every reader gives the reference's
/// affine; `scl_slope` 1 and `scl_inter` 0, no display range, intent or extensions. The
/// voxels are stored as `dtype`, one of [`LABEL_DTYPES`]; gzipped when `path` ends in
/// `.nii.gz`, plain when it ends in `.nii`. The file appears whole or not at all (it is
/// written under a temporary name beside `path`, then renamed).
///
/// Fails with `INVALID_INPUT` for another dtype or extension, with `APP_ERROR` when the
/// label's first three dims are not the reference's or the file cannot be written.
pub fn write_label_as(
    path: &Path,
    reference: &Volume,
    label: &ArrayD<u8>,
    dtype: &str,
) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase());
    let ext = match name.as_deref() {
        Some(n) if n.ends_with(".nii.gz") => ".nii.gz",
        Some(n) if n.ends_with(".nii") => ".nii",
        _ => {
            return Err(Error::invalid_input(format!(
                "cannot write a label to {}: the name must end in .nii or .nii.gz",
                path.display()
            )))
        }
    };
    // The header's dims, not `reference.data`: callers may have moved the voxels out.
    let ndim = usize::from(reference.header.dim[0]).clamp(1, 7);
    let reference_dims: Vec<usize> = (1..=ndim)
        .map(|i| usize::from(reference.header.dim[i]))
        .collect();
    let spatial = label.ndim().min(ndim).min(3);
    if label.shape()[..spatial] != reference_dims[..spatial] {
        return Err(Error::app(format!(
            "label dims {:?} do not match the reference volume's {:?}",
            label.shape(),
            reference_dims
        )));
    }
    let header = label_header(&reference.header);
    let tmp = temporary(path, ext);
    let options = WriterOptions::new(&tmp).reference_header(&header);
    let written = match dtype {
        "uint8" => options.write_nifti(label),
        "int16" => options.write_nifti(&label.mapv(i16::from)),
        "uint16" => options.write_nifti(&label.mapv(u16::from)),
        "int32" => options.write_nifti(&label.mapv(i32::from)),
        "uint32" => options.write_nifti(&label.mapv(u32::from)),
        "float32" => options.write_nifti(&label.mapv(f32::from)),
        "float64" => options.write_nifti(&label.mapv(f64::from)),
        other => {
            return Err(Error::invalid_input(format!(
                "unknown result_dtype {other:?}: use one of {}",
                LABEL_DTYPES.join(", ")
            )))
        }
    };
    let renamed = written.map_err(|e| e.to_string()).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))
    });
    renamed.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::app(format!("cannot write {}: {e}", path.display()))
    })
}

/// The reference header less what describes the reference's values rather than its grid.
fn label_header(reference: &NiftiHeader) -> NiftiHeader {
    NiftiHeader {
        scl_slope: 1.0,
        scl_inter: 0.0,
        cal_min: 0.0,
        cal_max: 0.0,
        glmax: 0,
        glmin: 0,
        intent_code: 0,
        intent_name: [0; 16],
        intent_p1: 0.0,
        intent_p2: 0.0,
        intent_p3: 0.0,
        ..reference.clone()
    }
}

/// A name beside `path` with no dot but the extension's: the `nifti` crate's writer
/// rebuilds the extension with `Path::with_extension`, which would cut a name like
/// `label.v2.nii` short.
fn temporary(path: &Path, ext: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("labelhost-tmp-{}-{n}{ext}", std::process::id());
    path.with_file_name(name)
}
