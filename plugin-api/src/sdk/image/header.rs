//! The checks made on a NIfTI-1 header before any voxel is read: the format, the dims
//! against the voxel limit, the datatype and bitpix, `vox_offset` and the scaling; then the
//! fixes nibabel makes to a header on load.

use super::super::error::{Error, Result};
use nifti::NiftiHeader;
use std::path::Path;

/// The size of a NIfTI-1 header, and the smallest `vox_offset` of a single `.nii` file.
pub(super) const HEADER_SIZE: usize = 348;
const SINGLE_OFFSET: f32 = 352.0;
const NIFTI2_SIZE: i32 = 540;

/// A datatype the reader turns into `f32`: its NIfTI code, name and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DataType {
    pub(super) code: i16,
    pub(super) name: &'static str,
    pub(super) size: usize,
}

/// Every NIfTI-1 datatype: (code, nibabel's name, bytes, whether it is read).
const DATATYPES: [(i16, &str, usize, bool); 17] = [
    (1, "binary", 0, false),
    (2, "uint8", 1, true),
    (4, "int16", 2, true),
    (8, "int32", 4, true),
    (16, "float32", 4, true),
    (32, "complex64", 8, false),
    (64, "float64", 8, true),
    (128, "rgb24", 3, false),
    (256, "int8", 1, true),
    (512, "uint16", 2, true),
    (768, "uint32", 4, true),
    (1024, "int64", 8, true),
    (1280, "uint64", 8, true),
    (1536, "float128", 16, false),
    (1792, "complex128", 16, false),
    (2048, "complex256", 32, false),
    (2304, "rgba32", 4, false),
];

/// What a checked header says about the data that follows it.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// The parsed header, with nibabel's load-time fixes.
    pub(super) header: NiftiHeader,
    pub(super) big_endian: bool,
    pub(super) datatype: DataType,
    /// The dims, `dim[1..=dim[0]]`.
    pub(super) shape: Vec<usize>,
    /// Where the data starts, in the `.nii` or the `.img` file.
    pub(super) offset: u64,
    /// How many bytes of data the dims and datatype make.
    pub(super) bytes: usize,
    /// `(slope, intercept)` when the values are scaled (nibabel: a slope that is finite
    /// and not 0).
    pub(super) scaling: Option<(f64, f64)>,
}

/// Reads the fields of a raw header in its byte order.
struct Raw<'a> {
    bytes: &'a [u8],
    big: bool,
}

impl Raw<'_> {
    fn at<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut b = [0; N];
        b.copy_from_slice(&self.bytes[offset..offset + N]);
        if self.big == cfg!(target_endian = "little") {
            b.reverse();
        }
        b
    }
    fn i16(&self, offset: usize) -> i16 {
        i16::from_ne_bytes(self.at(offset))
    }
    fn f32(&self, offset: usize) -> f32 {
        f32::from_ne_bytes(self.at(offset))
    }
}

/// Checks a header (the first bytes of a `.nii` or a `.hdr`; `pair` when the path named a
/// `.hdr`/`.img` pair) and works out the data it describes.
pub(super) fn check(bytes: &[u8], path: &Path, pair: bool, max_voxels: u64) -> Result<Layout> {
    let p = path.display();
    let bad = |what: String| Error::invalid_input(format!("{p}: {what}"));
    if bytes.len() < 4 {
        return Err(bad(format!(
            "{} bytes is too short for a NIfTI-1 header",
            bytes.len()
        )));
    }
    let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let (le, be) = (i32::from_le_bytes(first), i32::from_be_bytes(first));
    let big = match (le, be) {
        (348, _) => false,
        (_, 348) => true,
        (NIFTI2_SIZE, _) | (_, NIFTI2_SIZE) => {
            return Err(bad(
                "this is a NIfTI-2 file, which is not supported: only NIfTI-1 \
                            is read (convert it, e.g. with nibabel)"
                    .into(),
            ))
        }
        _ => {
            return Err(bad(format!(
                "not a NIfTI-1 file: sizeof_hdr is {le}, not 348"
            )))
        }
    };
    if bytes.len() < HEADER_SIZE {
        return Err(bad(format!(
            "the file ends after {} bytes, inside its 348-byte header",
            bytes.len()
        )));
    }
    let raw = Raw { bytes, big };
    let magic_pair = match &bytes[344..348] {
        b"n+1\0" => false,
        b"ni1\0" => true,
        _ => {
            return Err(bad(
                "this is an Analyze 7.5 header (no NIfTI-1 magic), which is not \
                            supported: only NIfTI-1 is read"
                    .into(),
            ))
        }
    };
    if magic_pair && !pair {
        return Err(bad(
            "its magic 'ni1' marks the header of a .hdr/.img pair, but the file \
                        is named as a single .nii file"
                .into(),
        ));
    }
    if pair && !magic_pair {
        return Err(bad(
            "its magic 'n+1' marks a single .nii file, but the file is named as \
                        part of a .hdr/.img pair"
                .into(),
        ));
    }

    let shape = dims(&raw, max_voxels).map_err(bad)?;
    let datatype = datatype(&raw).map_err(bad)?;
    let voxels: usize = shape.iter().product();
    let nbytes = voxels
        .checked_mul(datatype.size)
        .ok_or_else(|| bad(format!("{voxels} voxels of {} overflow", datatype.name)))?;

    let vox_offset = raw.f32(108);
    if !vox_offset.is_finite() || vox_offset < 0.0 {
        return Err(bad(format!("vox_offset {vox_offset} is not a byte offset")));
    }
    if !pair && vox_offset < SINGLE_OFFSET {
        return Err(bad(format!(
            "vox_offset {vox_offset} points inside the 352-byte header of a single .nii file"
        )));
    }
    let (slope, inter) = (raw.f32(112), raw.f32(116));
    let scaling = if slope == 0.0 || !slope.is_finite() {
        None
    } else if !inter.is_finite() {
        return Err(bad(format!(
            "scl_inter {inter} is not a number while scl_slope {slope} is"
        )));
    } else {
        Some((f64::from(slope), f64::from(inter)))
    };

    let mut header = NiftiHeader::from_reader(&bytes[..HEADER_SIZE])
        .map_err(|e| bad(format!("cannot parse the header: {e}")))?;
    fix_like_nibabel(&mut header);
    Ok(Layout {
        header,
        big_endian: big,
        datatype,
        shape,
        // nibabel takes int(vox_offset)
        offset: vox_offset as u64,
        bytes: nbytes,
        scaling,
    })
}

/// `dim[1..=dim[0]]`, checked: 1 to 7 dims, each at least 1, at most `max_voxels` in all.
fn dims(raw: &Raw<'_>, max_voxels: u64) -> std::result::Result<Vec<usize>, String> {
    let dim: Vec<i16> = (0..8).map(|i| raw.i16(40 + 2 * i)).collect();
    let ndim = dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(format!(
            "dim[0] = {ndim} is not a number of dimensions (1 to 7)"
        ));
    }
    let dims = &dim[1..=ndim as usize];
    if let Some(i) = dims.iter().position(|&d| d < 1) {
        return Err(format!(
            "dim[{}] = {} is not a size (dims must be at least 1)",
            i + 1,
            dims[i]
        ));
    }
    let text = dims
        .iter()
        .map(i16::to_string)
        .collect::<Vec<_>>()
        .join("x");
    let voxels = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .ok_or_else(|| format!("dims {text} overflow the voxel count"))?;
    if voxels > max_voxels {
        return Err(format!(
            "dims {text} make {voxels} voxels, over the voxel limit of {max_voxels} \
             (LABELHOST_MAX_VOXELS sets the default limit)"
        ));
    }
    dims.iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("dims {text} do not fit in memory")))
        .collect()
}

/// The datatype, if it is one read as real numbers and bitpix agrees with it.
fn datatype(raw: &Raw<'_>) -> std::result::Result<DataType, String> {
    let code = raw.i16(70);
    let Some(&(code, name, size, readable)) = DATATYPES.iter().find(|d| d.0 == code) else {
        return Err(format!("unknown datatype code {code}"));
    };
    if !readable {
        return Err(format!(
            "datatype {name} ({code}) is not supported: only real numbers \
             (int8 to uint64, float32, float64) are read"
        ));
    }
    let bitpix = raw.i16(72);
    if usize::try_from(bitpix).ok() != Some(size * 8) {
        return Err(format!(
            "bitpix {bitpix} does not match datatype {name} ({} bits)",
            size * 8
        ));
    }
    Ok(DataType { code, name, size })
}

/// What nibabel's header checks fix when it loads a file (`check_fix` below error level
/// 40): zero spatial pixdims become 1 and negative ones positive, a qfac other than -1 or 1
/// becomes 1, sform/qform codes outside 0..=5 become 0.
pub(super) fn fix_like_nibabel(h: &mut NiftiHeader) {
    for p in &mut h.pixdim[1..4] {
        *p = spatial_zoom(*p);
    }
    if h.pixdim[0] != 1.0 && h.pixdim[0] != -1.0 {
        h.pixdim[0] = 1.0;
    }
    for code in [&mut h.sform_code, &mut h.qform_code] {
        if !valid_xform_code(*code) {
            *code = 0;
        }
    }
}

/// A spatial `pixdim` as nibabel uses it: `abs`, and 1 for 0.
pub(super) fn spatial_zoom(p: f32) -> f32 {
    if p == 0.0 {
        1.0
    } else {
        p.abs()
    }
}

/// NIFTI_XFORM_UNKNOWN (0) to NIFTI_XFORM_TEMPLATE_OTHER (5).
pub(super) fn valid_xform_code(code: i16) -> bool {
    (0..=5).contains(&code)
}
