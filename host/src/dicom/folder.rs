//! DICOM files in a folder, grouped into series by `SeriesInstanceUID` (headers only are
//! read, up to the pixel data).

use crate::{Error, Result};
use dicom_dictionary_std::tags;
use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
};

/// Whether `path` is a DICOM Part 10 file: `DICM` after the 128-byte preamble.
pub fn is_dicom_file(path: &Path) -> bool {
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head[128..] == b"DICM")
}

/// The DICOM files directly in `folder`, by series UID (in name order within a series).
/// Other files are left out; a DICOM file without a series UID is an error naming it.
pub fn series_in(folder: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| Error::BadRequest(format!("{}: {e}", folder.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_dicom_file(p))
        .collect();
    files.sort();
    let mut series: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        let obj = dicom_object::OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(&file)
            .map_err(|e| Error::Unprocessable(format!("{}: not DICOM: {e}", file.display())))?;
        let uid = super::text::string_of(&obj, tags::SERIES_INSTANCE_UID)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::Unprocessable(format!("{}: no SeriesInstanceUID", file.display()))
            })?;
        series.entry(uid).or_default().push(file);
    }
    Ok(series)
}
