//! NIfTI volumes for tests: written from a function of the voxel index, read back as floats.

use labelhost::{Error, Result};
use ndarray::{Array3, ArrayD};
use nifti::{IntoNdArray, NiftiObject, ReaderOptions};
use std::path::Path;

/// Writes a float volume of `shape` voxels with `voxel(x, y, z)` (1 mm, identity affine;
/// gzipped when the name ends in `.gz`).
pub fn write_volume(
    path: &Path,
    shape: [usize; 3],
    voxel: impl Fn(usize, usize, usize) -> f32,
) -> Result<()> {
    let v = Array3::from_shape_fn((shape[0], shape[1], shape[2]), |(x, y, z)| voxel(x, y, z));
    nifti::writer::WriterOptions::new(path)
        .write_nifti(&v)
        .map_err(|e| failed(path, e))
}

/// Writes `label(x, y, z)` as a uint8 volume on `reference`'s grid (its header, affine
/// included).
pub fn write_label(
    reference: &Path,
    path: &Path,
    label: impl Fn(usize, usize, usize) -> u8,
) -> Result<()> {
    let obj = ReaderOptions::new()
        .read_file(reference)
        .map_err(|e| failed(reference, e))?;
    let header = obj.header().clone();
    let dim = header.dim().map_err(|e| failed(reference, e))?;
    if dim.len() < 3 {
        return Err(Error::BadRequest(format!(
            "{}: not a 3-D volume",
            reference.display()
        )));
    }
    let shape = (dim[0] as usize, dim[1] as usize, dim[2] as usize);
    let v = Array3::from_shape_fn(shape, |(x, y, z)| label(x, y, z));
    nifti::writer::WriterOptions::new(path)
        .reference_header(&header)
        .write_nifti(&v)
        .map_err(|e| failed(path, e))
}

/// Reads a NIfTI volume's voxels as floats, indexed `[x, y, z]` in file order.
pub fn read_volume(path: &Path) -> Result<ArrayD<f32>> {
    let obj = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| failed(path, e))?;
    obj.into_volume()
        .into_ndarray::<f32>()
        .map_err(|e| failed(path, e))
}

fn failed(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("{}: {e}", path.display()))
}
