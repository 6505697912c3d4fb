//! Validation of image ids and label tags, and splitting file names into `(id, ext)`.

use std::path::Path;

use super::{DatastoreError, Result};

/// Image file patterns recognised at the top level of the studies folder
/// (MONAI Label's default `MONAI_LABEL_DATASTORE_FILE_EXT`, without the leading `*`).
pub(crate) const IMAGE_EXTS: &[&str] = &[
    ".nii.gz", ".nii", ".nrrd", ".jpg", ".png", ".tif", ".svs", ".xml",
];

/// Multi-suffix extensions tried before [`IMAGE_EXTS`] when splitting a file name.
pub(crate) const MULTI_EXTS: &[&str] = &[".seg.nrrd", ".nii.gz"];

/// Longest accepted id or tag, in bytes (a typical file-name limit).
const MAX_LEN: usize = 255;

/// Longest single suffix that `file_ext` keeps (MONAI Label's rule).
const MAX_SUFFIX_LEN: usize = 10;

/// Checks one path-component-like value; `what` names it in the error message.
fn validate_component(what: &str, value: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(DatastoreError::InvalidInput(format!(
            "invalid {what} {value:?}: {why}"
        )))
    };
    if value.is_empty() {
        return bad("must not be empty");
    }
    if value.len() > MAX_LEN {
        return bad("must be at most 255 bytes");
    }
    if value == "." || value == ".." {
        return bad("must not be '.' or '..'");
    }
    if value.starts_with('.') {
        return bad("must not start with '.'");
    }
    if value.contains(['/', '\\']) {
        return bad("must not contain '/' or '\\' (path traversal)");
    }
    if value.contains('\0') {
        return bad("must not contain NUL");
    }
    if let Some(c) = value
        .chars()
        .find(|&c| c.is_control() || is_bidi_control(c))
    {
        return bad(&format!(
            "must not contain control or text-direction characters (U+{:04X})",
            u32::from(c)
        ));
    }
    Ok(())
}

/// Unicode's explicit direction marks, embeddings, overrides and isolates: invisible, and
/// able to make a file name read as another.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Validates an image (or label) id: non-empty, at most 255 bytes, no separators,
/// no NUL or other control or direction characters, no leading '.', not "." or "..".
pub(crate) fn validate_id(id: &str) -> Result<()> {
    validate_component("id", id)
}

/// Validates a label tag with the same rules as [`validate_id`].
pub(crate) fn validate_tag(tag: &str) -> Result<()> {
    validate_component("label tag", tag)
}

/// True when `name` matches one of the image patterns (case-sensitive, like fnmatch on Linux)
/// and is not hidden.
pub(crate) fn is_image_name(name: &str) -> bool {
    !name.starts_with('.') && IMAGE_EXTS.iter().any(|ext| name.ends_with(ext))
}

/// MONAI Label's `file_ext`: the trailing suffixes of `name`, each at most 10 characters,
/// stopping at the first longer one. Leading dots of the name are not suffixes.
pub(crate) fn file_ext(name: &str) -> String {
    let stem = name.trim_start_matches('.');
    let mut parts: Vec<&str> = stem.split('.').collect();
    if parts.len() < 2 {
        return String::new();
    }
    parts.remove(0);
    let mut kept: Vec<&str> = Vec::new();
    for part in parts.iter().rev() {
        if part.is_empty() || part.chars().count() + 1 > MAX_SUFFIX_LEN {
            break;
        }
        kept.push(part);
    }
    kept.iter().rev().map(|p| format!(".{p}")).collect()
}

/// The extension of a file name: a known multi-suffix extension, else an image
/// pattern, else [`file_ext`].
pub(crate) fn ext_of(name: &str) -> String {
    MULTI_EXTS
        .iter()
        .chain(IMAGE_EXTS.iter())
        .find(|ext| name.len() > ext.len() && name.ends_with(*ext))
        .map(|ext| (*ext).to_string())
        .unwrap_or_else(|| file_ext(name))
}

/// Splits a file name into `(id, ext)` using [`ext_of`]; `None` when the id would be empty.
pub(crate) fn split_name(name: &str) -> Option<(String, String)> {
    let ext = ext_of(name);
    let id = name.strip_suffix(ext.as_str())?;
    if id.is_empty() {
        return None;
    }
    Some((id.to_string(), ext))
}

/// All ways to split `name` at a '.' into a non-empty id and an extension, the
/// standard split ([`split_name`]) first, then from the longest extension down.
pub(crate) fn candidate_splits(name: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = split_name(name).into_iter().collect();
    for (pos, _) in name.match_indices('.') {
        if pos == 0 {
            continue;
        }
        let pair = (name[..pos].to_string(), name[pos..].to_string());
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

/// The extension implied by the file name of `file` (which must be UTF-8).
pub(crate) fn source_name_ext(file: &Path) -> Result<String> {
    let name = file.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        DatastoreError::InvalidInput(format!("invalid source file name {}", file.display()))
    })?;
    Ok(ext_of(name))
}
