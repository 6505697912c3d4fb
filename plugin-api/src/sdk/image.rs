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

/// A 4x4 voxel-to-world (RAS+ mm) matrix, row-major.
pub type Affine = [[f64; 4]; 4];

impl Volume {
    /// The voxel-to-world affine, chosen as nibabel does (see [`affine`]).
    pub fn affine(&self) -> Affine {
        affine(&self.header)
    }

    /// The first three dims (a 4-D volume's first frame is what 3-D tasks use).
    pub fn first_frame(&self) -> ArrayD<f32> {
        if self.data.ndim() > 3 {
            let mut frame = self.data.view();
            while frame.ndim() > 3 {
                let last = ndarray::Axis(frame.ndim() - 1);
                frame = frame.index_axis_move(last, 0);
            }
            frame.to_owned()
        } else {
            self.data.clone()
        }
    }
}

/// The affine nibabel's `get_best_affine` gives: the sform when `sform_code > 0`, else the
/// qform (quaternion, `pixdim[0]` as qfac) when `qform_code > 0`, else a centred diagonal
/// with the x axis flipped.
pub fn affine(h: &NiftiHeader) -> Affine {
    let p = |i: usize| f64::from(h.pixdim[i]);
    if h.sform_code > 0 {
        let row = |r: [f32; 4]| r.map(f64::from);
        return [
            row(h.srow_x),
            row(h.srow_y),
            row(h.srow_z),
            [0.0, 0.0, 0.0, 1.0],
        ];
    }
    if h.qform_code > 0 {
        let (b, c, d) = (
            f64::from(h.quatern_b),
            f64::from(h.quatern_c),
            f64::from(h.quatern_d),
        );
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - b * b - c * c,
            ],
        ];
        let qfac = if p(0) < 0.0 { -1.0 } else { 1.0 };
        let zooms = [p(1), p(2), p(3) * qfac];
        let offset = [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from);
        let mut m = [[0.0; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = r[i][j] * zooms[j];
            }
            m[i][3] = offset[i];
        }
        m[3][3] = 1.0;
        return m;
    }
    let dim = |i: usize| f64::from(h.dim[i].max(1));
    let zooms = [-p(1), p(2), p(3)];
    let mut m = [[0.0; 4]; 4];
    for i in 0..3 {
        m[i][i] = zooms[i];
        m[i][3] = -(dim(i + 1) - 1.0) / 2.0 * zooms[i];
    }
    m[3][3] = 1.0;
    m
}
