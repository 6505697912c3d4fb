//! What the datastore lets in: a file in a supported format, checked whole before it is
//! stored (a volume decoded to its last byte within the voxel limit, a 2-D image by its
//! signature), a label on its image's voxel grid, a stored name that maps back to exactly
//! its id (so no id can overwrite or delete another's file), and info of bounded size,
//! each and all together.

use std::io::Read;
use std::path::{Path, PathBuf};

use labelhost_plugin_api::sdk::image::{self, ReadOptions};

use super::ids::{ext_of, split_name};
use super::{DatastoreError, LocalDatastore, Result};

/// The longest stored file name (a common file-system limit).
const MAX_NAME: usize = 255;

/// The most bytes of JSON one image's or label's info may hold: clients merge into it, and
/// the whole index is rewritten on each change, so it may not grow without bound.
pub(crate) const MAX_INFO_BYTES: usize = 256 << 10;

/// The most bytes of JSON all images' and labels' info may hold together, checked when a
/// client's merge makes an info larger (an upload's own info is bounded per entry only:
/// refusing a label for the index's size would lose the annotator's work; apps' own
/// writes, scores and the like, are not refused either).
pub(crate) const MAX_TOTAL_INFO_BYTES: usize = 64 << 20;

/// Bytes of `info` as JSON (`usize::MAX` if it cannot be written).
fn json_len(info: &serde_json::Map<String, serde_json::Value>) -> usize {
    serde_json::to_vec(info).map_or(usize::MAX, |v| v.len())
}

/// Merges `info` into `into` (Python's `dict.update`) within the per-entry limit;
/// whether the entry grew (only then is the index's total checked).
pub(crate) fn merge_info(
    into: &mut serde_json::Map<String, serde_json::Value>,
    info: serde_json::Map<String, serde_json::Value>,
) -> Result<bool> {
    let before = json_len(into);
    into.extend(info);
    let after = json_len(into);
    within_info_limit(after)?;
    Ok(after > before)
}

/// Refuses an index whose infos together are over `limit` bytes of JSON.
pub(crate) fn total_info_size(index: &super::index::DatastoreIndex, limit: usize) -> Result<()> {
    let mut total = 0usize;
    for obj in index.objects.values() {
        total = total.saturating_add(json_len(&obj.image.info));
        for label in obj.labels.values() {
            total = total.saturating_add(json_len(&label.info));
        }
    }
    if total > limit {
        return Err(invalid(format!(
            "the datastore's info would be {total} bytes of JSON in all, over the limit of \
             {limit}"
        )));
    }
    Ok(())
}

/// Refuses an info over [`MAX_INFO_BYTES`] (as JSON).
pub(crate) fn info_size(info: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    within_info_limit(json_len(info))
}

/// Refuses an info of `size` bytes of JSON over [`MAX_INFO_BYTES`].
fn within_info_limit(size: usize) -> Result<()> {
    if size > MAX_INFO_BYTES {
        return Err(invalid(format!(
            "the info would be {size} bytes of JSON, over the limit of {MAX_INFO_BYTES}"
        )));
    }
    Ok(())
}

/// How a stored file is checked, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// NIfTI-1 or NRRD: decoded in full.
    Volume,
    /// A 2-D image or slide: its leading bytes must be one of these signatures.
    Signed(&'static [&'static [u8]]),
    /// XML text: its first non-blank character is `<`.
    Xml,
}

/// The formats the datastore stores, by extension (MONAI Label's default patterns).
fn format(ext: &str) -> Option<Format> {
    const PNG: &[&[u8]] = &[b"\x89PNG\r\n\x1a\n"];
    const JPEG: &[&[u8]] = &[b"\xff\xd8\xff"];
    const TIFF: &[&[u8]] = &[b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"];
    Some(match ext {
        ".nii" | ".nii.gz" | ".nrrd" | ".seg.nrrd" => Format::Volume,
        ".png" => Format::Signed(PNG),
        ".jpg" => Format::Signed(JPEG),
        ".tif" | ".svs" => Format::Signed(TIFF),
        ".xml" => Format::Xml,
        _ => return None,
    })
}

fn invalid(message: String) -> DatastoreError {
    DatastoreError::InvalidInput(message)
}

/// `<id><ext>`, refused unless splitting it again gives back exactly `id` and `ext` (so
/// `?image=a.nii` with a `.gz` file cannot become `a.nii.gz`, image `a`'s file) and it
/// fits a file name.
pub(crate) fn stored_name(id: &str, ext: &str) -> Result<String> {
    let name = format!("{id}{ext}");
    if name.len() > MAX_NAME {
        return Err(invalid(format!(
            "id {:?}… is too long: with its extension {ext} the file name would be {} bytes \
             (at most {MAX_NAME})",
            id.chars().take(32).collect::<String>(),
            name.len()
        )));
    }
    if split_name(&name) != Some((id.to_owned(), ext.to_owned())) {
        let (other, _) = split_name(&name).unwrap_or_default();
        return Err(invalid(format!(
            "id {id:?} with a {ext} file would be stored as {name}, the file of id {other:?}: \
             drop the extension from the id"
        )));
    }
    Ok(name)
}

/// The format of a file about to be stored, from its name's extension.
fn format_of(file: &Path) -> Result<(String, Format)> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let ext = ext_of(name.as_deref().unwrap_or_default());
    match format(&ext) {
        Some(f) => Ok((ext, f)),
        None => Err(invalid(format!(
            "unsupported file type {ext:?}: the datastore stores .nii.gz, .nii, .nrrd, \
             .seg.nrrd, .png, .jpg, .tif, .svs and .xml files"
        ))),
    }
}

impl LocalDatastore {
    /// Whether files that are symbolic links (or in a linked label folder) are read.
    pub fn set_follow_links(&self, follow: bool) {
        self.follow_links
            .store(follow, std::sync::atomic::Ordering::Relaxed);
    }

    /// `path` (an indexed image or label) when the store may read it: a link planted in
    /// the studies folder could point anywhere the server can read, so links are refused
    /// unless the operator allowed them. The index keeps the entry either way.
    pub(crate) fn readable(&self, what: &str, path: PathBuf) -> Result<PathBuf> {
        if self.follow_links.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(path);
        }
        let linked =
            |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
        if linked(&path) || path.parent().is_some_and(linked) {
            return Err(invalid(format!(
                "{what} is a symbolic link in the studies folder: the server reads links only \
                 when started with --follow-symlinks"
            )));
        }
        Ok(path)
    }

    /// Flags for opening an indexed file the server reads itself (downloads, the dataset
    /// archive): `O_NOFOLLOW` unless links are followed, so a file swapped for a link after
    /// [`LocalDatastore::readable`] looked at it is refused when opened, not read.
    pub fn open_flags(&self) -> i32 {
        if self.follow_links.load(std::sync::atomic::Ordering::Relaxed) {
            0
        } else {
            libc::O_NOFOLLOW
        }
    }

    /// The voxel limit uploads are checked against.
    pub fn set_max_voxels(&self, max_voxels: u64) {
        self.max_voxels
            .store(max_voxels, std::sync::atomic::Ordering::Relaxed);
    }

    fn read_options(&self) -> ReadOptions {
        ReadOptions::with_max_voxels(self.max_voxels.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Checks a file before it becomes an image: a supported format, whole and readable.
    pub fn check_image(&self, file: &Path) -> Result<()> {
        let (_, format) = format_of(file)?;
        self.check_whole(file, format).map(drop)
    }

    /// Checks a file before it becomes `image_id`'s label: as [`Self::check_image`], and
    /// for a volume image a volume on the image's grid (dims and affine).
    pub fn check_label(&self, image_id: &str, file: &Path) -> Result<()> {
        let (_, format) = format_of(file)?;
        let grid = self.check_whole(file, format)?;
        let image = self.get_image_uri(image_id)?;
        let (_, image_format) = format_of(&image)?;
        if image_format != Format::Volume {
            return Ok(());
        }
        let Some(label) = grid else {
            return Err(invalid(format!(
                "image {image_id:?} is a volume: its label must be one too (.nii.gz, .nii, \
                 .nrrd, .seg.nrrd)"
            )));
        };
        match image::geometry(&image, &self.read_options()) {
            Ok(image_grid) => match label.mismatch(&image_grid) {
                Some(why) => Err(invalid(format!(
                    "the label is not on image {image_id:?}'s voxel grid: {why}"
                ))),
                None => Ok(()),
            },
            Err(e) => {
                tracing::warn!(image = image_id, "label grid not checked: {e}");
                Ok(())
            }
        }
    }

    /// Reads `file` whole as `format`; a volume's grid.
    fn check_whole(&self, file: &Path, format: Format) -> Result<Option<image::Geometry>> {
        let bad = |why: &str| invalid(format!("the file is not a valid {why}"));
        match format {
            Format::Volume => {
                let grid = image::inspect(file, &self.read_options()).map_err(|e| {
                    let text = e.message.to_string();
                    let named = file.display().to_string();
                    invalid(text.replace(&named, "the file"))
                })?;
                Ok(Some(grid))
            }
            Format::Signed(signatures) => {
                let head = leading_bytes(file, 8)?;
                match signatures.iter().any(|s| head.starts_with(s)) {
                    true => Ok(None),
                    false => Err(bad("image for its extension (wrong signature)")),
                }
            }
            Format::Xml => {
                let head = leading_bytes(file, 4096)?;
                let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&head);
                match text.iter().find(|b| !b.is_ascii_whitespace()) {
                    Some(b'<') => Ok(None),
                    _ => Err(bad("XML file")),
                }
            }
        }
    }
}

/// Up to the first `n` bytes of a file; an empty file is refused.
fn leading_bytes(file: &Path, n: u64) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(n).read_to_end(&mut head))
        .map_err(|e| DatastoreError::Io(format!("cannot read the upload: {e}")))?;
    if head.is_empty() {
        return Err(invalid("the file is empty".into()));
    }
    Ok(head)
}
