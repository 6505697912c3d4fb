//! Where bundles sit in the plugins dir (a folder `NAME/`, or `NAME.tar.gz` / `NAME.tar`)
//! and the archive form: unpacking (plain files and folders only) and writing.

use super::MANIFEST_FILE;
use crate::{Error, Result};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use std::{
    fs::File,
    io::Read,
    path::{Component, Path, PathBuf},
};

/// A bundle in the plugins dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSource {
    /// `plugins/NAME/` with a manifest inside.
    Folder(PathBuf),
    /// `plugins/NAME.tar.gz` or `plugins/NAME.tar`.
    Archive(PathBuf),
}

const ARCHIVE_SUFFIXES: [&str; 2] = [".tar.gz", ".tar"];

/// The bundle called `name` in `plugins`, a folder first, then an archive.
pub fn locate(plugins: &Path, name: &str) -> Option<BundleSource> {
    let folder = plugins.join(name);
    if folder.join(MANIFEST_FILE).is_file() {
        return Some(BundleSource::Folder(folder));
    }
    ARCHIVE_SUFFIXES
        .iter()
        .map(|s| plugins.join(format!("{name}{s}")))
        .find(|p| p.is_file())
        .map(BundleSource::Archive)
}

/// The names of every bundle in `plugins`, sorted and without duplicates.
pub fn list(plugins: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(plugins)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names = names
        .into_iter()
        .map(|n| {
            ARCHIVE_SUFFIXES
                .iter()
                .find_map(|s| n.strip_suffix(s).map(str::to_owned))
                .unwrap_or(n)
        })
        .filter(|n| locate(plugins, n).is_some())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn reader(file: &Path) -> Result<Box<dyn Read>> {
    let f = File::open(file).map_err(|e| Error::PluginLoad(format!("{}: {e}", file.display())))?;
    Ok(if file.to_string_lossy().ends_with(".gz") {
        Box::new(GzDecoder::new(f))
    } else {
        Box::new(f)
    })
}

/// Unpacks an archive into `into`; only plain files and folders with relative paths are taken.
pub(super) fn unpack(file: &Path, into: &Path) -> Result<()> {
    let bad =
        |what: String| Error::PluginLoad(format!("bundle archive {}: {what}", file.display()));
    std::fs::create_dir_all(into).map_err(|e| bad(format!("{}: {e}", into.display())))?;
    let mut archive = tar::Archive::new(reader(file)?);
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let plain = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        let kind = entry.header().entry_type();
        if !plain || !(kind.is_file() || kind.is_dir()) {
            return Err(bad(format!(
                "entry {} is not a plain relative file or folder",
                path.display()
            )));
        }
        entry.unpack_in(into).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

/// Writes the bundle folder `folder` as `archive` (`.tar.gz`), files at the archive's root.
pub fn write_archive(folder: &Path, archive: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Internal(format!("{}: {e}", archive.display()));
    let out = File::create(archive).map_err(io)?;
    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::default()));
    tar.follow_symlinks(false);
    tar.append_dir_all(".", folder).map_err(io)?;
    tar.into_inner().map_err(io)?.finish().map_err(io)?;
    Ok(())
}
