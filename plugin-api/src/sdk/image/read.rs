//! Reading a NIfTI-1 file: which files a path names, the header check before anything is
//! allocated, then exactly the data bytes the header promises, from `vox_offset` on.

use super::super::error::{Error, Result};
use super::decode::decode;
use super::header::{self, Layout, HEADER_SIZE};
use super::{Volume, Voxels};
use crate::abi::DType;
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use nifti::object::GzDecodedFile;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Limits applied when reading a NIfTI file (start from [`ReadOptions::default`] or
/// [`ReadOptions::with_max_voxels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// The most voxels (the product of all dims) a file may declare; a larger one is refused
    /// with `INVALID_INPUT` before anything is allocated.
    pub max_voxels: u64,
}

impl ReadOptions {
    /// The default voxel limit: 512 Mi voxels (2 GiB of `f32`).
    pub const DEFAULT_MAX_VOXELS: u64 = 512 << 20;
    /// The environment variable that overrides the default voxel limit (a whole number).
    pub const MAX_VOXELS_ENV: &'static str = "LABELHOST_MAX_VOXELS";

    /// Options with the given voxel limit.
    pub fn with_max_voxels(max_voxels: u64) -> Self {
        ReadOptions { max_voxels }
    }

    /// Reads a NIfTI-1 file with these limits (see [`read`]).
    pub fn read(&self, path: &Path) -> Result<Volume> {
        if is_nrrd(path) {
            return super::nrrd::read(path, self.max_voxels);
        }
        let (layout, raw) = self.read_raw(path)?;
        decoded(path, layout, &raw)
    }

    /// Reads a volume's first 3-D frame for upload: a NIfTI file's voxel bytes as stored
    /// when the executor can take them as they are (native byte order, unscaled, a
    /// datatype it has), decoded to `f32` otherwise (see [`read`]). The volume's `data`
    /// is left empty; its header stays.
    pub fn read_voxels(&self, path: &Path) -> Result<(Volume, Voxels)> {
        let mut volume = if is_nrrd(path) {
            super::nrrd::read(path, self.max_voxels)?
        } else {
            let (layout, mut raw) = self.read_raw(path)?;
            let unscaled = layout.scaling.is_none_or(|s| s == (1.0, 0.0));
            let native = layout.big_endian == cfg!(target_endian = "big");
            match tensor_dtype(layout.datatype.name) {
                Some(dtype) if unscaled && native && layout.shape.len() >= 3 => {
                    let shape = layout.shape[..3].to_vec();
                    let frame: usize = shape.iter().product::<usize>() * dtype.size().unwrap_or(1);
                    raw.truncate(frame);
                    let volume = Volume {
                        data: ArrayD::zeros(IxDyn(&[0])),
                        header: layout.header,
                    };
                    return Ok((
                        volume,
                        Voxels::Raw {
                            bytes: raw,
                            dtype,
                            shape,
                        },
                    ));
                }
                _ => decoded(path, layout, &raw)?,
            }
        };
        let frame = volume.take_first_frame();
        Ok((volume, Voxels::Decoded(frame)))
    }

    /// The header's layout and exactly the data bytes it promises.
    fn read_raw(&self, path: &Path) -> Result<(Layout, Vec<u8>)> {
        let (header_path, image) = files(path);
        let gz = is_gz(&header_path);
        let mut source = Source::open(&header_path, gz)?;
        let head = source.read_header(&header_path)?;
        let layout = header::check(&head, &header_path, image.is_some(), self.max_voxels)?;
        let raw = match &image {
            None => {
                let name = header_path.display().to_string();
                source.read_data(&name, HEADER_SIZE as u64, &layout)?
            }
            Some(img) => {
                if !img.exists() {
                    return Err(Error::invalid_input(format!(
                        "{} is the header of a .hdr/.img pair whose image file {} is missing",
                        header_path.display(),
                        img.display()
                    )));
                }
                let name = format!(
                    "{} (the image file of {})",
                    img.display(),
                    header_path
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                );
                Source::open(img, gz)?.read_data(&name, 0, &layout)?
            }
        };
        Ok((layout, raw))
    }
}

impl Default for ReadOptions {
    /// The limit from `LABELHOST_MAX_VOXELS` when it is set to a whole number, else
    /// [`ReadOptions::DEFAULT_MAX_VOXELS`].
    fn default() -> Self {
        let max_voxels = limit_from(std::env::var(Self::MAX_VOXELS_ENV).ok().as_deref());
        ReadOptions { max_voxels }
    }
}

/// The voxel limit an `LABELHOST_MAX_VOXELS` value gives.
/// The executor's element type for a NIfTI datatype it can take as stored.
fn tensor_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "uint8" => DType::U8,
        "int16" => DType::I16,
        "int32" => DType::I32,
        "int64" => DType::I64,
        "float32" => DType::F32,
        "float64" => DType::F64,
        _ => return None,
    })
}

pub(super) fn is_nrrd(path: &Path) -> bool {
    name_ends(path, ".nrrd")
}

/// The voxels of `raw` decoded to `f32` with the header's scaling.
fn decoded(path: &Path, layout: Layout, raw: &[u8]) -> Result<Volume> {
    let values = decode(raw, layout.datatype, layout.big_endian, layout.scaling);
    let data = ArrayD::from_shape_vec(IxDyn(&layout.shape).f(), values)
        .map_err(|e| Error::app(format!("{}: {e}", path.display())))?;
    Ok(Volume {
        data,
        header: layout.header,
    })
}

pub(super) fn limit_from(value: Option<&str>) -> u64 {
    value
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(ReadOptions::DEFAULT_MAX_VOXELS)
}

/// Reads a NIfTI-1 file: `.nii`, `.nii.gz`, or a `.hdr`/`.img` pair (either name, both
/// plain or both gzipped), with the default voxel limit ([`ReadOptions::default`]). Every
/// real datatype is read as `f32` with `scl_slope`/`scl_inter` applied (a slope of 0 or
/// not finite means no scaling, as in nibabel).
///
/// Fails with `INVALID_INPUT` for a file that cannot be opened or decompressed, NIfTI-2,
/// Analyze 7.5, a `.hdr` without its `.img`, dims over the limit, a datatype that is not a
/// real number (complex, RGB, float128), a bitpix that disagrees with the datatype, or data
/// shorter than the header says.
pub fn read(path: &Path) -> Result<Volume> {
    ReadOptions::default().read(path)
}

/// [`ReadOptions::read_voxels`] with the default limits.
pub fn read_voxels(path: &Path) -> Result<(Volume, Voxels)> {
    ReadOptions::default().read_voxels(path)
}

/// [`read`] with a voxel limit of `max_voxels`.
pub fn read_with_limit(path: &Path, max_voxels: u64) -> Result<Volume> {
    ReadOptions::with_max_voxels(max_voxels).read(path)
}

fn name_ends(path: &Path, suffix: &str) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(suffix))
        .unwrap_or(false)
}

pub(super) fn is_gz(path: &Path) -> bool {
    name_ends(path, ".gz")
}

/// The path with its last `old.len()` characters (an ASCII suffix the name ends with, in
/// any case) replaced by `new`, upper-cased when they were.
fn swap_suffix(path: &Path, old: &str, new: &str) -> PathBuf {
    let text = path.to_string_lossy();
    let Some((stem, suffix)) = text.split_at_checked(text.len().saturating_sub(old.len())) else {
        return PathBuf::from(format!("{text}{new}"));
    };
    let upper = suffix.bytes().all(|b| !b.is_ascii_lowercase());
    let new = if upper {
        new.to_ascii_uppercase()
    } else {
        new.to_owned()
    };
    PathBuf::from(format!("{stem}{new}"))
}

/// The header file and, for a pair, the image file a path names (nibabel's convention:
/// `x.hdr` + `x.img`, `x.hdr.gz` + `x.img.gz`, from either name).
fn files(path: &Path) -> (PathBuf, Option<PathBuf>) {
    for (hdr, img) in [(".hdr", ".img"), (".hdr.gz", ".img.gz")] {
        if name_ends(path, hdr) {
            return (path.to_path_buf(), Some(swap_suffix(path, hdr, img)));
        }
        if name_ends(path, img) {
            return (swap_suffix(path, img, hdr), Some(path.to_path_buf()));
        }
    }
    (path.to_path_buf(), None)
}

/// A file, read plainly or through gzip.
pub(super) enum Source {
    Plain { file: BufReader<File>, len: u64 },
    Gz(Box<MultiGz>),
}

impl Source {
    pub(super) fn open(path: &Path, gz: bool) -> Result<Source> {
        let open = |e: io::Error| {
            Error::invalid_input(format!("cannot open {} as NIfTI: {e}", path.display()))
        };
        let file = File::open(path).map_err(open)?;
        let len = file.metadata().map_err(open)?.len();
        // Big reads: the decoder inflates more per call.
        let file = BufReader::with_capacity(1 << 18, file);
        Ok(if gz {
            Source::Gz(Box::new(MultiGz(Some(GzDecodedFile::new(file)))))
        } else {
            Source::Plain { file, len }
        })
    }

    pub(super) fn reader(&mut self) -> &mut dyn Read {
        match self {
            Source::Plain { file, .. } => file,
            Source::Gz(gz) => gz.as_mut(),
        }
    }

    pub(super) fn error(&self, name: &str, e: io::Error) -> Error {
        match self {
            Source::Gz(_) => Error::invalid_input(format!(
                "cannot decompress {name}: {e} (a truncated or corrupt gzip file)"
            )),
            Source::Plain { .. } => Error::invalid_input(format!("cannot read {name}: {e}")),
        }
    }

    /// Up to the first 348 bytes (fewer only when the file is shorter).
    pub(super) fn read_header(&mut self, path: &Path) -> Result<Vec<u8>> {
        let mut head = Vec::with_capacity(HEADER_SIZE);
        let read = self
            .reader()
            .take(HEADER_SIZE as u64)
            .read_to_end(&mut head);
        read.map_err(|e| self.error(&path.display().to_string(), e))?;
        Ok(head)
    }

    /// The `layout.bytes` data bytes at `layout.offset`, `pos` bytes having been read
    /// (`name` says which file in messages).
    fn read_data(&mut self, name: &str, pos: u64, layout: &Layout) -> Result<Vec<u8>> {
        let (offset, want) = (layout.offset, layout.bytes);
        let short = |got: u64| {
            Error::invalid_input(format!(
                "{name} ends before its data does: vox_offset {offset} + {want} bytes of {} for \
                 dims {:?} need {} bytes, the file has {got} bytes",
                layout.datatype.name,
                layout.shape,
                offset as u128 + want as u128,
            ))
        };
        match self {
            Source::Plain { file, len } => {
                if offset as u128 + want as u128 > u128::from(*len) {
                    return Err(short(*len));
                }
                let seek = file.seek(SeekFrom::Start(offset));
                seek.map_err(|e| self.error(name, e))?;
            }
            Source::Gz(gz) => {
                let skip = offset.saturating_sub(pos);
                let skipped = io::copy(&mut gz.as_mut().take(skip), &mut io::sink());
                let skipped = skipped.map_err(|e| self.error(name, e))?;
                if skipped < skip {
                    return Err(short(pos + skipped));
                }
            }
        }
        let mut raw = Vec::new();
        raw.try_reserve_exact(want)
            .map_err(|e| Error::app(format!("cannot allocate {want} bytes for {name}: {e}")))?;
        let read = self.reader().take(want as u64).read_to_end(&mut raw);
        read.map_err(|e| self.error(name, e))?;
        if raw.len() < want {
            return Err(short(offset.max(pos) + raw.len() as u64));
        }
        Ok(raw)
    }
}

/// A gzip reader that goes on through every member of a multi-member file (as Python's
/// gzip, hence nibabel, does), built on the `nifti` crate's single-member decoder.
pub(super) struct MultiGz(Option<GzDecodedFile>);

impl Read for MultiGz {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.0.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(decoder) = self.0.take() else {
                return Ok(0);
            };
            let mut rest = decoder.into_inner();
            if rest.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.0 = Some(GzDecodedFile::new(rest));
        }
    }
}
