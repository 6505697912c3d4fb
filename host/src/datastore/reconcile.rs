//! Reconciliation of the in-memory index with the files in the studies folder.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Map;

use super::ids::{candidate_splits, is_image_name, split_name, validate_id, validate_tag};
use super::index::{epoch_secs, io_err, resolve_dir, DatastoreIndex, FileEntry};
use super::Result;

/// Where images and label tags live on disk.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    /// Folder of the images.
    pub(crate) images: PathBuf,
    /// Folder holding one sub-folder per label tag.
    pub(crate) labels: PathBuf,
}

impl Dirs {
    /// Resolves the image and label folders named by `index` under `root` and creates them.
    pub(crate) fn create(root: &Path, index: &DatastoreIndex) -> Result<Self> {
        let dirs = Self {
            images: resolve_dir(root, &index.images_dir)?,
            labels: resolve_dir(root, &index.labels_dir)?,
        };
        for dir in [&dirs.images, &dirs.labels] {
            fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, &e))?;
        }
        Ok(dirs)
    }

    /// Removes crash leftovers ([`super::index::remove_stale_temps`]) from the studies
    /// folder (the index's), the image folder and every label tag's folder.
    pub(crate) fn remove_stale_temps(&self, root: &Path) {
        let mut dirs = vec![root.to_path_buf(), self.images.clone()];
        if let Ok(tags) = fs::read_dir(&self.labels) {
            dirs.extend(tags.filter_map(|e| e.ok()).map(|e| e.path()));
        }
        for dir in dirs {
            super::index::remove_stale_temps(&dir);
        }
    }

    /// Path of the image `<id><ext>`.
    pub(crate) fn image(&self, id: &str, ext: &str) -> PathBuf {
        self.images.join(format!("{id}{ext}"))
    }

    /// Path of the label `<tag>/<id><ext>`.
    pub(crate) fn label(&self, tag: &str, id: &str, ext: &str) -> PathBuf {
        self.labels.join(tag).join(format!("{id}{ext}"))
    }
}

/// True when an extension read from the index is safe to join onto a path.
fn valid_ext(ext: &str) -> bool {
    !ext.contains(['/', '\\', '\0'])
}

/// Plain (non-hidden, UTF-8) file names in `dir`, sorted; a missing folder is empty.
fn list_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("cannot list", dir, &e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("cannot list", dir, &e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        if !name.starts_with('.') && path.is_file() {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Non-hidden sub-folders of `dir` with valid tag names, sorted.
fn list_tags(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("cannot list", dir, &e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("cannot list", dir, &e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if validate_tag(&name).is_ok() && entry.path().is_dir() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// `{"ts": mtime secs, "name": name}` for a file found on disk.
fn found_entry(path: &Path, name: &str, ext: &str) -> FileEntry {
    let mtime = fs::metadata(path)
        .and_then(|m| m.modified())
        .map(epoch_secs)
        .unwrap_or(0);
    FileEntry::new(ext, Map::new(), mtime, name)
}

/// Drops objects whose image file is missing (but remote ones) or whose id/ext is unsafe,
/// and labels whose file is missing; returns whether anything was dropped.
fn drop_missing(index: &mut DatastoreIndex, dirs: &Dirs) -> bool {
    let objects_before = index.objects.len();
    // A remote image (on a DICOMweb server) stays without its cached file.
    index.objects.retain(|id, obj| {
        validate_id(id).is_ok()
            && valid_ext(&obj.image.ext)
            && (dirs.image(id, &obj.image.ext).is_file()
                || super::remote::remote_of(&obj.image).is_some())
    });
    let mut changed = objects_before != index.objects.len();
    for (id, obj) in index.objects.iter_mut() {
        let labels_before = obj.labels.len();
        obj.labels.retain(|tag, label| {
            validate_tag(tag).is_ok()
                && valid_ext(&label.ext)
                && dirs.label(tag, id, &label.ext).is_file()
        });
        changed |= labels_before != obj.labels.len();
    }
    changed
}

/// Adds image files not yet in the index; returns whether any was added.
fn add_new_images(index: &mut DatastoreIndex, dirs: &Dirs) -> Result<bool> {
    let mut changed = false;
    for (name, path) in list_files(&dirs.images)? {
        if !is_image_name(&name) {
            continue;
        }
        let Some((id, ext)) = split_name(&name) else {
            continue;
        };
        if validate_id(&id).is_err() || index.objects.contains_key(&id) {
            continue;
        }
        let obj = index.objects.entry(id).or_default();
        obj.image = found_entry(&path, &name, &ext);
        changed = true;
    }
    Ok(changed)
}

/// Adds label files under `labels/<tag>/` whose id is a known image without that tag;
/// returns whether any was added.
fn add_new_labels(index: &mut DatastoreIndex, dirs: &Dirs) -> Result<bool> {
    let mut changed = false;
    for tag in list_tags(&dirs.labels)? {
        let known: BTreeSet<String> = index
            .objects
            .iter()
            .filter_map(|(id, obj)| obj.labels.get(&tag).map(|l| format!("{id}{}", l.ext)))
            .collect();
        for (name, path) in list_files(&dirs.labels.join(&tag))? {
            if known.contains(&name) {
                continue;
            }
            let Some((id, ext)) = candidate_splits(&name)
                .into_iter()
                .find(|(id, _)| index.objects.contains_key(id))
            else {
                continue;
            };
            let Some(obj) = index.objects.get_mut(&id) else {
                continue;
            };
            if obj.labels.contains_key(&tag) {
                continue;
            }
            obj.labels
                .insert(tag.clone(), found_entry(&path, &name, &ext));
            changed = true;
        }
    }
    Ok(changed)
}

/// Brings `index` in line with the folder (MONAI Label's `_reconcile_datastore`);
/// returns whether the index changed.
pub(crate) fn reconcile(index: &mut DatastoreIndex, dirs: &Dirs) -> Result<bool> {
    let mut changed = drop_missing(index, dirs);
    changed |= add_new_images(index, dirs)?;
    changed |= add_new_labels(index, dirs)?;
    Ok(changed)
}
