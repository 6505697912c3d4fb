//! NIfTI-1 reading and label writing for plugins (feature `nifti`).

use super::error::{Error, Result};
use ndarray::ArrayD;
use nifti::{writer::WriterOptions, IntoNdArray, NiftiHeader, NiftiObject, ReaderOptions};
use std::path::Path;

/// A volume read from a NIfTI file: voxels as `f32` (scaling applied) plus its header.
pub struct Volume {
    /// The voxels, indexed `[i, j, k(, t)]` as NIfTI orders them.
    pub data: ArrayD<f32>,
    /// The source header (geometry, affine), reused when writing labels.
    pub header: NiftiHeader,
}

/// Reads a `.nii` or `.nii.gz` file.
pub fn read(path: &Path) -> Result<Volume> {
    let bad = |e: nifti::NiftiError| {
        Error::invalid_input(format!("cannot read {} as NIfTI: {e}", path.display()))
    };
    let object = ReaderOptions::new().read_file(path).map_err(bad)?;
    let header = object.header().clone();
    let data = object.into_volume().into_ndarray::<f32>().map_err(bad)?;
    Ok(Volume { data, header })
}

/// Writes a `u8` label with the reference volume's geometry (gzip when the name ends in `.gz`).
pub fn write_label(path: &Path, reference: &Volume, label: &ArrayD<u8>) -> Result<()> {
    let mut header = reference.header.clone();
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    WriterOptions::new(path)
        .reference_header(&header)
        .write_nifti(label)
        .map_err(|e| Error::app(format!("cannot write {}: {e}", path.display())))
}
