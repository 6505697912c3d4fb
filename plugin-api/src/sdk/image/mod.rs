//! NIfTI-1 reading and label writing for plugins (feature `nifti`), checked against nibabel.
//!
//! [`read`] takes `.nii`, `.nii.gz` and `.hdr`/`.img` pairs (plain or gzipped) of every real
//! datatype (int8 to uint64, float32, float64), applies `scl_slope`/`scl_inter` as nibabel's
//! `get_fdata` does and gives the affine nibabel's `img.affine` gives ([`affine`]). Before any
//! voxel is read the header is checked: NIfTI-2 and Analyze 7.5 are refused by name, and so
//! are dims over the voxel limit ([`ReadOptions`]), a datatype that is not a real number,
//! a bitpix that disagrees with the datatype and a `vox_offset` the file cannot satisfy; every
//! such refusal is an `INVALID_INPUT` error that names the file and the field.
//!
//! NRRD files (`.nrrd`, `.seg.nrrd`, what 3D Slicer saves) are read into the same
//! [`Volume`], with their geometry as a NIfTI sform.
//!
//! [`inspect`] checks a file as reading it would without keeping its voxels (what a server
//! does before storing an upload); [`geometry`] reads a volume's grid from its header.
//!
//! Labels are written with the reference volume's geometry ([`write_label`],
//! [`write_label_as`] for MONAI Label's `result_dtype`).

mod affine;
mod decode;
mod header;
mod inspect;
mod nrrd;
mod read;
mod write;

#[cfg(test)]
mod inspect_tests;
#[cfg(test)]
mod tests;

pub use affine::affine;
pub use inspect::{geometry, inspect, Geometry, MAX_EXTENSION_BYTES, MAX_TRAILING_BYTES};
pub use read::{read, read_voxels, read_with_limit, ReadOptions};
pub use write::{write_label, write_label_as, LABEL_DTYPES};

use ndarray::ArrayD;
use nifti::NiftiHeader;

/// A volume read from a NIfTI file: voxels as `f32` (scaling applied) plus its header.
#[derive(Debug, Clone)]
pub struct Volume {
    /// The voxels, indexed `[i, j, k(, t)]` as NIfTI orders them (memory in Fortran order).
    pub data: ArrayD<f32>,
    /// The source header (geometry, affine), reused when writing labels. It carries the
    /// fixes nibabel makes on load: `pixdim[1..=3]` made positive (0 becomes 1), a `qfac`
    /// (`pixdim[0]`) other than -1 or 1 set to 1, invalid `sform_code`/`qform_code` set to 0.
    pub header: NiftiHeader,
}

/// A volume's first 3-D frame as [`ReadOptions::read_voxels`] gives it for upload.
#[derive(Debug, Clone)]
pub enum Voxels {
    /// The bytes as the file stores them (native byte order, no scaling): `dtype`
    /// values of `shape` (`[i, j, k]`) in Fortran order.
    Raw {
        /// The voxel bytes.
        bytes: Vec<u8>,
        /// Their element type.
        dtype: crate::abi::DType,
        /// `[i, j, k]`.
        shape: Vec<usize>,
    },
    /// Decoded to `f32` with the scaling applied, indexed `[i, j, k]`.
    Decoded(ArrayD<f32>),
}

impl Voxels {
    /// `[i, j, k]`.
    pub fn shape(&self) -> &[usize] {
        match self {
            Voxels::Raw { shape, .. } => shape,
            Voxels::Decoded(a) => a.shape(),
        }
    }
}

/// A 4x4 voxel-to-world (RAS+ mm) matrix, row-major.
pub type Affine = [[f64; 4]; 4];

impl Volume {
    /// The voxel-to-world affine, chosen as nibabel does (see [`affine`]).
    pub fn affine(&self) -> Affine {
        affine(&self.header)
    }

    /// Like [`Volume::first_frame`], without copying a 3-D volume: the voxels move out and
    /// `data` is left empty (the header, which writers need, stays).
    pub fn take_first_frame(&mut self) -> ArrayD<f32> {
        if self.data.ndim() > 3 {
            self.first_frame()
        } else {
            std::mem::replace(&mut self.data, ArrayD::zeros(ndarray::IxDyn(&[0])))
        }
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
