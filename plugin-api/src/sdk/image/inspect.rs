//! Checking a volume file without keeping its voxels: what a server does before it stores
//! an upload. [`inspect`] decodes the whole file (every gzip byte, to its checksum) with
//! memory bounded by a buffer; [`geometry`] reads only what the grid needs.

use super::super::error::{Error, Result};
use super::header::{self, HEADER_SIZE};
use super::read::{is_gz, is_nrrd, Source};
use super::{Affine, ReadOptions};
use std::io::{self, Read};
use std::path::Path;

/// The most decompressed bytes a gzipped `.nii.gz` may hold after its voxel data before it
/// is refused (nothing belongs there; a gzip bomb would otherwise be decompressed whole).
pub const MAX_TRAILING_BYTES: u64 = 1 << 20;

/// The most bytes of header extensions (between the header and `vox_offset`) a checked
/// file may have.
pub const MAX_EXTENSION_BYTES: u64 = 16 << 20;

/// A volume's grid: its dims and voxel-to-world affine (RAS+ mm, as [`super::affine`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Every dim the file declares (`[i, j, k]` or more).
    pub shape: Vec<usize>,
    /// Voxel to world.
    pub affine: Affine,
}

impl Geometry {
    /// The three spatial dims (missing ones are 1).
    pub fn spatial(&self) -> [usize; 3] {
        let dim = |i: usize| self.shape.get(i).copied().unwrap_or(1);
        [dim(0), dim(1), dim(2)]
    }

    /// Why a label on `self` does not lie on `image`'s voxel grid (`None` when it does):
    /// the spatial dims must be equal and the affines within 1e-3 mm per voxel (rotation
    /// and zoom) and 1e-2 mm (origin), what float32 headers written by other tools keep.
    pub fn mismatch(&self, image: &Geometry) -> Option<String> {
        if self.spatial() != image.spatial() {
            return Some(format!(
                "its dims {:?} are not the image's {:?}",
                self.spatial(),
                image.spatial()
            ));
        }
        for r in 0..3 {
            for c in 0..4 {
                let tol = if c == 3 { 1e-2 } else { 1e-3 };
                let (a, b) = (self.affine[r][c], image.affine[r][c]);
                let close = (a - b).abs() <= tol;
                if !close {
                    return Some(format!(
                        "its affine is not the image's (row {r}, column {c}: {a} vs {b})"
                    ));
                }
            }
        }
        None
    }
}

/// Checks a `.nii`, `.nii.gz`, `.nrrd` or `.seg.nrrd` file the way reading it would,
/// without keeping its voxels: the header (see [`super::read`]), the voxel limit, every
/// data byte present, a gzip stream intact to its end (CRC and length) with at most
/// [`MAX_TRAILING_BYTES`] after the data. `.hdr`/`.img` pairs are not single files and are
/// refused. Any failure is `INVALID_INPUT` naming what is wrong.
pub fn inspect(path: &Path, options: &ReadOptions) -> Result<Geometry> {
    if is_nrrd(path) {
        let volume = options.read(path)?;
        return Ok(Geometry {
            shape: volume.data.shape().to_vec(),
            affine: volume.affine(),
        });
    }
    let name = path.display().to_string();
    let (mut source, layout) = open_single(path, options)?;
    let (offset, want) = (layout.offset, layout.bytes as u64);
    if offset > HEADER_SIZE as u64 + MAX_EXTENSION_BYTES {
        return Err(Error::invalid_input(format!(
            "{name}: vox_offset {offset} leaves more than {MAX_EXTENSION_BYTES} bytes of header \
             extensions before the data"
        )));
    }
    let short = |got: u64| {
        Error::invalid_input(format!(
            "{name} ends before its data does: vox_offset {offset} + {want} bytes for dims {:?} \
             need {} bytes, the file has {got}",
            layout.shape,
            u128::from(offset) + u128::from(want)
        ))
    };
    match &mut source {
        Source::Plain { len, .. } => {
            if u128::from(offset) + u128::from(want) > u128::from(*len) {
                return Err(short(*len));
            }
        }
        Source::Gz(_) => {
            let upto = offset + want;
            let mut skip = source.reader().take(upto - HEADER_SIZE as u64);
            let got = io::copy(&mut skip, &mut io::sink()).map_err(|e| source.error(&name, e))?;
            if got < upto - HEADER_SIZE as u64 {
                return Err(short(HEADER_SIZE as u64 + got));
            }
            let mut rest = source.reader().take(MAX_TRAILING_BYTES + 1);
            let extra = io::copy(&mut rest, &mut io::sink()).map_err(|e| source.error(&name, e))?;
            if extra > MAX_TRAILING_BYTES {
                return Err(Error::invalid_input(format!(
                    "{name} goes on for more than {MAX_TRAILING_BYTES} decompressed bytes after \
                     its data"
                )));
            }
        }
    }
    Ok(Geometry {
        shape: layout.shape,
        affine: super::affine(&layout.header),
    })
}

/// The grid of a volume file from its header alone (a NIfTI file is not decoded past its
/// 348 header bytes; an NRRD file is read).
pub fn geometry(path: &Path, options: &ReadOptions) -> Result<Geometry> {
    if is_nrrd(path) {
        return inspect(path, options);
    }
    let (_, layout) = open_single(path, options)?;
    Ok(Geometry {
        shape: layout.shape,
        affine: super::affine(&layout.header),
    })
}

/// Opens a single-file NIfTI and checks its header.
fn open_single(path: &Path, options: &ReadOptions) -> Result<(Source, header::Layout)> {
    let lower = path.to_string_lossy().to_ascii_lowercase();
    if !(lower.ends_with(".nii") || lower.ends_with(".nii.gz")) {
        return Err(Error::invalid_input(format!(
            "{} is not a single-file volume (.nii, .nii.gz, .nrrd)",
            path.display()
        )));
    }
    let mut source = Source::open(path, is_gz(path))?;
    let head = source.read_header(path)?;
    let layout = header::check(&head, path, false, options.max_voxels)?;
    Ok((source, layout))
}
