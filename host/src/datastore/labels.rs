//! Label operations of [`LocalDatastore`]: lookup, save, remove and info updates.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::ids::{source_name_ext, validate_id, validate_tag};
use super::index::{self, check_dest, io_err, read_file, remove_if_exists, FileEntry};
use super::{image_not_found, label_not_found, now_secs, LocalDatastore, Result};

impl LocalDatastore {
    /// Looks up a label entry and its absolute path.
    fn label_entry(&self, label_id: &str, tag: &str) -> Result<(FileEntry, PathBuf)> {
        validate_id(label_id)?;
        validate_tag(tag)?;
        let st = self.lock();
        let label = st
            .index
            .objects
            .get(label_id)
            .and_then(|obj| obj.labels.get(tag))
            .ok_or_else(|| label_not_found(label_id, tag))?;
        Ok((label.clone(), st.dirs.label(tag, label_id, &label.ext)))
    }

    /// Absolute path of a label (refused when it is a link the store does not follow).
    pub fn get_label_uri(&self, label_id: &str, tag: &str) -> Result<PathBuf> {
        let path = self.label_entry(label_id, tag)?.1;
        self.readable(&format!("label {label_id:?} ({tag})"), path)
    }

    /// Bytes of a label.
    pub fn get_label(&self, label_id: &str, tag: &str) -> Result<Vec<u8>> {
        read_file(&self.get_label_uri(label_id, tag)?)
    }

    /// Info of a label.
    pub fn get_label_info(&self, label_id: &str, tag: &str) -> Result<Map<String, Value>> {
        Ok(self.label_entry(label_id, tag)?.0.info)
    }

    /// The label id (equal to the image id) of `image_id`'s label with `tag`, if any.
    pub fn get_label_by_image_id(&self, image_id: &str, tag: &str) -> Option<String> {
        let st = self.lock();
        let obj = st.index.objects.get(image_id)?;
        obj.labels.contains_key(tag).then(|| image_id.to_string())
    }

    /// `{tag: label_id}` for all labels of an image.
    pub fn get_labels_by_image_id(&self, image_id: &str) -> Result<Map<String, Value>> {
        validate_id(image_id)?;
        let st = self.lock();
        let obj = st
            .index
            .objects
            .get(image_id)
            .ok_or_else(|| image_not_found(image_id))?;
        Ok(obj
            .labels
            .keys()
            .map(|tag| (tag.clone(), Value::from(image_id)))
            .collect())
    }

    /// Copies `file` to `labels/<tag>/<image_id><ext>` (ext from the source file name),
    /// removing an older label of that tag with another ext; returns the label id. The file
    /// is checked first ([`LocalDatastore::check_label`]: whole, on the image's grid); a
    /// refused one leaves the store as it was.
    pub fn save_label(
        &self,
        image_id: &str,
        file: &Path,
        tag: &str,
        info: Map<String, Value>,
    ) -> Result<String> {
        self.save_label_as(image_id, file, tag, info, true)
    }

    /// [`LocalDatastore::save_label`]; `to_server`: a remote image's final label also goes
    /// to its DICOMweb server (not when it came from there).
    pub(crate) fn save_label_as(
        &self,
        image_id: &str,
        file: &Path,
        tag: &str,
        mut info: Map<String, Value>,
        to_server: bool,
    ) -> Result<String> {
        validate_id(image_id)?;
        validate_tag(tag)?;
        let ext = source_name_ext(file)?;
        super::checks::stored_name(image_id, &ext)?;
        super::checks::info_size(&info)?;
        if self.check_files {
            self.check_label(image_id, file)?;
        }
        // A remote image's final label goes to its server first: refused there, not saved.
        if to_server {
            if let Some(seg) = self.store_label_remotely(image_id, tag, file, &info)? {
                info.insert(super::remote::SEG_SERIES.into(), Value::from(seg));
            }
        }
        self.mutate(|idx, dirs| {
            let obj = idx
                .objects
                .get_mut(image_id)
                .ok_or_else(|| image_not_found(image_id))?;
            let dest = dirs.label(tag, image_id, &ext);
            let tag_dir = dirs.labels.join(tag);
            fs::create_dir_all(&tag_dir).map_err(|e| io_err("cannot create", &tag_dir, &e))?;
            check_dest(&dest, &self.index_path)?;
            index::atomic_copy(file, &dest)?;
            let name = format!("{image_id}{ext}");
            let entry = FileEntry::new(&ext, info, now_secs(), &name);
            if let Some(old) = obj.labels.insert(tag.to_string(), entry) {
                if old.ext != ext {
                    remove_if_exists(&dirs.label(tag, image_id, &old.ext))?;
                }
            }
            Ok(image_id.to_string())
        })
    }

    /// Deletes one label file and drops it from the index.
    pub fn remove_label(&self, label_id: &str, tag: &str) -> Result<()> {
        validate_id(label_id)?;
        validate_tag(tag)?;
        self.mutate(|idx, dirs| {
            let obj = idx.objects.get_mut(label_id);
            let label = obj
                .and_then(|obj| obj.labels.remove(tag))
                .ok_or_else(|| label_not_found(label_id, tag))?;
            remove_if_exists(&dirs.label(tag, label_id, &label.ext))
        })
    }

    /// Deletes every label with `tag` (and its folder when left empty).
    pub fn remove_label_by_tag(&self, tag: &str) -> Result<()> {
        validate_tag(tag)?;
        let failed = self.mutate(|idx, dirs| {
            let mut failed = None;
            for (id, obj) in idx.objects.iter_mut() {
                let Some(label) = obj.labels.get(tag) else {
                    continue;
                };
                match remove_if_exists(&dirs.label(tag, id, &label.ext)) {
                    Ok(()) => {
                        obj.labels.remove(tag);
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            let _ = fs::remove_dir(dirs.labels.join(tag));
            Ok(failed)
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Shallow-merges `info` into a label's info (Python `dict.update`), as an app does.
    pub fn update_label_info(
        &self,
        label_id: &str,
        tag: &str,
        info: Map<String, Value>,
    ) -> Result<()> {
        self.merge_label_info(label_id, tag, info, None)
    }

    /// [`LocalDatastore::update_label_info`] for a client: a merge that makes the info
    /// larger is refused when all info would pass the index's total limit.
    pub fn update_label_info_from_client(
        &self,
        label_id: &str,
        tag: &str,
        info: Map<String, Value>,
    ) -> Result<()> {
        let limit = super::checks::MAX_TOTAL_INFO_BYTES;
        self.merge_label_info(label_id, tag, info, Some(limit))
    }

    fn merge_label_info(
        &self,
        label_id: &str,
        tag: &str,
        info: Map<String, Value>,
        total: Option<usize>,
    ) -> Result<()> {
        validate_id(label_id)?;
        validate_tag(tag)?;
        self.mutate(|idx, _| {
            let label = idx
                .objects
                .get_mut(label_id)
                .and_then(|obj| obj.labels.get_mut(tag))
                .ok_or_else(|| label_not_found(label_id, tag))?;
            let grew = super::checks::merge_info(&mut label.info, info)?;
            match total {
                Some(limit) if grew => super::checks::total_info_size(idx, limit),
                _ => Ok(()),
            }
        })
    }
}
