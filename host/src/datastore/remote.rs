//! Images that live on a DICOMweb server (a PACS) behind the same datastore: the index lists
//! every series the server's QIDO-RS search finds (image id = SeriesInstanceUID, its image
//! info `dicomweb = {study_uid, series_uid}`), the volume is fetched by WADO-RS and made a
//! NIfTI file the first time it is read, and the studies folder keeps those files as a cache
//! of bounded size (the least recently read go first; a remote image's entry stays without
//! its file). A `final` label of a remote image is stored on the server as a DICOM SEG
//! (STOW-RS) before it is saved here, so a refused store saves nothing.

use super::{index::FileEntry, DatastoreError, LocalDatastore, Result, FINAL_TAG};
use crate::dicom::{self, DicomWeb, Made, SeriesHeader};
use serde_json::{json, Map, Value};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// The extension of a remote image's cached file.
pub(crate) const REMOTE_EXT: &str = ".nii.gz";

/// The label info key naming the SEG series on the server a final label is (or came from).
pub(crate) const SEG_SERIES: &str = "dicomweb_seg_series";

/// A DICOMweb server behind a datastore.
pub struct Remote {
    web: DicomWeb,
    filters: Vec<(String, String)>,
    cache_bytes: u64,
    /// One fetch per image at a time (others wait for it, then read the file).
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Cached volumes not read for this long are removed (`None`: kept until the bound).
    expiry: Option<std::time::Duration>,
}

fn upstream(e: crate::Error) -> DatastoreError {
    match e {
        crate::Error::BadRequest(m) | crate::Error::Unprocessable(m) => {
            DatastoreError::InvalidInput(m)
        }
        other => DatastoreError::Upstream(other.to_string()),
    }
}

/// The `dicomweb` info of a remote image entry: (study, series).
pub(crate) fn remote_of(entry: &FileEntry) -> Option<(String, String)> {
    let r = entry.info.get("dicomweb")?;
    let study = r.get("study_uid")?.as_str()?.to_owned();
    let series = r.get("series_uid")?.as_str()?.to_owned();
    Some((study, series))
}

impl Remote {
    /// The server at `web`, searched with QIDO-RS `filters` (`Modality=MR`), its volumes
    /// cached up to `cache_bytes`.
    pub fn new(web: DicomWeb, filters: Vec<(String, String)>, cache_bytes: u64) -> Self {
        Remote {
            web,
            filters,
            cache_bytes,
            fetching: Mutex::default(),
            expiry: None,
        }
    }

    /// Removes cached volumes not read for `expiry` (checked after each fetch and each
    /// search of the server); zero keeps them until the size bound.
    pub fn with_expiry(mut self, expiry: std::time::Duration) -> Self {
        self.expiry = (!expiry.is_zero()).then_some(expiry);
        self
    }
}

impl LocalDatastore {
    /// The DICOMweb server behind the store, if any: its URL and credentials.
    pub fn dicomweb(&self) -> Option<(String, Option<(String, String)>)> {
        let r = self.remote.get()?;
        Some((r.web.base().to_owned(), r.web.basic().cloned()))
    }

    /// Whether a DICOMweb server is behind the store.
    pub fn is_remote(&self) -> bool {
        self.remote.get().is_some()
    }

    /// Puts the datastore in front of a DICOMweb server (once; later calls are ignored).
    pub fn set_remote(&self, remote: Remote) {
        let _ = self.remote.set(remote);
    }

    /// Brings the index in line with the server: an entry for each series its search finds
    /// and the index lacks, no entry for a remote series it no longer finds (with its
    /// cached file and labels), and the final labels others stored there as SEG. Answers
    /// how many entries and labels came, and how many entries went.
    pub fn sync_remote(&self) -> Result<(usize, usize)> {
        let Some(remote) = self.remote.get() else {
            return Ok((0, 0));
        };
        let found = remote
            .web
            .search_series(&remote.filters)
            .map_err(upstream)?;
        let now = super::now_secs();
        let gone_files = std::sync::Mutex::new(Vec::new());
        let counts = self.mutate(|idx, dirs| {
            let mut added = 0;
            for s in &found {
                if super::ids::validate_id(&s.series_uid).is_err()
                    || idx.objects.contains_key(&s.series_uid)
                {
                    continue;
                }
                let info = json!({"dicomweb": {"study_uid": s.study_uid, "series_uid": s.series_uid},
                                  "modality": s.modality, "description": s.description});
                let info = info.as_object().cloned().unwrap_or_default();
                let name = format!("{}{REMOTE_EXT}", s.series_uid);
                let obj = idx.objects.entry(s.series_uid.clone()).or_default();
                obj.image = FileEntry::new(REMOTE_EXT, info, now, &name);
                added += 1;
            }
            let keep: std::collections::HashSet<&str> =
                found.iter().map(|s| s.series_uid.as_str()).collect();
            let before = idx.objects.len();
            idx.objects.retain(|id, obj| {
                let stays = remote_of(&obj.image).is_none() || keep.contains(id.as_str());
                if !stays {
                    if let Ok(mut files) = gone_files.lock() {
                        files.push(dirs.image(id, &obj.image.ext));
                        for (tag, l) in &obj.labels {
                            files.push(dirs.label(tag, id, &l.ext));
                        }
                    }
                }
                stays
            });
            Ok((added, before - idx.objects.len()))
        })?;
        for f in gone_files.into_inner().unwrap_or_default() {
            let _ = std::fs::remove_file(f);
        }
        let labels = self.sync_remote_labels(remote)?;
        self.trim_cache(remote, Path::new(""));
        Ok((counts.0 + labels, counts.1))
    }

    /// Fetches a remote image's volume into `path` when it is not there (WADO-RS, then a
    /// NIfTI file written next to it and renamed into place), keeps its series header in
    /// the image's info, then trims the cache. Nothing for a local image.
    pub(crate) fn fetch_if_remote(&self, id: &str, path: &Path) -> Result<()> {
        let Some(remote) = self.remote.get() else {
            return Ok(());
        };
        let Some((study, series)) = self.with_image(id, |entry, _| remote_of(entry))? else {
            return Ok(());
        };
        let gate = {
            let mut all = remote.fetching.lock().unwrap_or_else(|e| e.into_inner());
            all.entry(id.to_owned()).or_default().clone()
        };
        let _one = gate.lock().unwrap_or_else(|e| e.into_inner());
        if path.is_file() {
            return Ok(());
        }
        let scratch = tempfile::Builder::new()
            .prefix(".labelhost-fetch-")
            .tempdir_in(self.root())
            .map_err(|e| DatastoreError::Io(format!("a scratch folder: {e}")))?;
        let instances = remote
            .web
            .retrieve_series(&study, &series, &scratch.path().join("instances"))
            .map_err(upstream)?;
        let volume = dicom::read_series(&instances).map_err(upstream)?;
        let made = scratch.path().join(format!("volume{REMOTE_EXT}"));
        dicom::write_nifti(&volume, &made).map_err(upstream)?;
        std::fs::rename(&made, path)
            .map_err(|e| DatastoreError::Io(format!("{}: {e}", path.display())))?;
        let mut info = Map::new();
        info.insert("dicom".into(), json!(volume.header));
        // Every host derives the header itself: not shared.
        self.merge_image_info_here(id, info)?;
        self.trim_cache(remote, path);
        Ok(())
    }

    /// Removes cached remote volumes not read within the expiry, then the least recently
    /// read until they take at most the bound (never `keep`, the one just fetched).
    fn trim_cache(&self, remote: &Remote, keep: &Path) {
        let bound = remote.cache_bytes;
        let cached: Vec<PathBuf> = {
            let st = self.lock();
            st.index
                .objects
                .iter()
                .filter(|(_, o)| remote_of(&o.image).is_some())
                .map(|(id, o)| st.dirs.image(id, &o.image.ext))
                .filter(|p| p.is_file())
                .collect()
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = cached
            .into_iter()
            .filter_map(|p| {
                let m = std::fs::metadata(&p).ok()?;
                Some((m.accessed().or_else(|_| m.modified()).ok()?, m.len(), p))
            })
            .collect();
        if let Some(expiry) = remote.expiry {
            let now = std::time::SystemTime::now();
            files.retain(|(read, _, path)| {
                let stale = now.duration_since(*read).is_ok_and(|age| age > expiry);
                !(stale && path != keep && std::fs::remove_file(path).is_ok())
            });
        }
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= bound {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    /// Before a `final` label of a remote image is saved: the label as a SEG of the image's
    /// series, stored on the server (STOW-RS). Segments are named from the label's info
    /// (`label_info` `[{name, idx}]` as 3D Slicer sends it) or by value. Nothing for a
    /// local image or another tag.
    pub(crate) fn store_label_remotely(
        &self,
        image_id: &str,
        tag: &str,
        file: &Path,
        info: &Map<String, Value>,
    ) -> Result<Option<String>> {
        let Some(remote) = self.remote.get() else {
            return Ok(None);
        };
        if tag != FINAL_TAG {
            return Ok(None);
        }
        let header = self.with_image(image_id, |entry, _| {
            remote_of(entry)?;
            serde_json::from_value::<SeriesHeader>(entry.info.get("dicom")?.clone()).ok()
        })?;
        let Some(header) = header else {
            return Ok(None);
        };
        let label = dicom::read_label_file(file)
            .map_err(|e| DatastoreError::InvalidInput(format!("the label: {e}")))?;
        let names: HashMap<u64, String> = info
            .get("label_info")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        let idx = i.get("idx").or_else(|| i.get("id"))?.as_u64()?;
                        Some((idx, i.get("name")?.as_str()?.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let segments = dicom::segments_of(&label, |v| names.get(&u64::from(v)).cloned());
        let seg = dicom::write_seg(&label, &header, &segments, Made::Manual, "annotator")
            .map_err(upstream)?;
        let series = dicom::series_uid_of(&seg);
        remote.web.store(&[seg]).map_err(upstream)?;
        Ok(series)
    }

    /// Final labels stored on the server by anyone (SEG series found by QIDO-RS): a SEG of
    /// a listed image that its final label did not come from (or go to) becomes that
    /// final label, so every host over the server sees every label. Answers how many.
    fn sync_remote_labels(&self, remote: &Remote) -> Result<usize> {
        let filter = [("Modality".to_owned(), "SEG".to_owned())];
        let segs = remote.web.search_series(&filter).map_err(upstream)?;
        let known: std::collections::HashSet<String> = {
            let st = self.lock();
            st.index
                .objects
                .values()
                .filter_map(|o| {
                    o.labels
                        .get(FINAL_TAG)?
                        .info
                        .get(SEG_SERIES)?
                        .as_str()
                        .map(str::to_owned)
                })
                .collect()
        };
        let mut taken = 0;
        for seg in segs.iter().filter(|s| !known.contains(&s.series_uid)) {
            match self.take_remote_label(remote, &seg.study_uid, &seg.series_uid) {
                Ok(true) => taken += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(seg = %seg.series_uid, "a SEG on the DICOMweb server: {e}")
                }
            }
        }
        Ok(taken)
    }

    /// One SEG series of the server as the final label of the image it references (if the
    /// index lists that image); whether it was taken.
    fn take_remote_label(&self, remote: &Remote, study: &str, seg_series: &str) -> Result<bool> {
        let metadata = remote
            .web
            .series_metadata(study, seg_series)
            .map_err(upstream)?;
        let referenced = metadata.first().and_then(|m| {
            m.get("00081115")?
                .get("Value")?
                .get(0)?
                .get("0020000E")?
                .get("Value")?
                .get(0)?
                .as_str()
        });
        let Some(image) = referenced.map(str::to_owned) else {
            return Ok(false);
        };
        if self
            .with_image(&image, |entry, _| remote_of(entry).is_some())
            .unwrap_or(false)
        {
            // The image's header (and grid) come with its volume.
            let volume = self.get_image_uri(&image)?;
            let header = self.with_image(&image, |entry, _| {
                serde_json::from_value::<SeriesHeader>(entry.info.get("dicom")?.clone()).ok()
            })?;
            let Some(header) = header else {
                return Ok(false);
            };
            let scratch = tempfile::Builder::new()
                .prefix(".labelhost-seg-")
                .tempdir_in(self.root())
                .map_err(|e| DatastoreError::Io(format!("a scratch folder: {e}")))?;
            let files = remote
                .web
                .retrieve_series(study, seg_series, &scratch.path().join("seg"))
                .map_err(upstream)?;
            let bytes = std::fs::read(&files[0]).map_err(|e| DatastoreError::Io(e.to_string()))?;
            let (label, _) = dicom::read_seg(&bytes, &header).map_err(upstream)?;
            let file = scratch.path().join(format!("{image}{REMOTE_EXT}"));
            write_like(&volume, &file, &label)?;
            let mut info = Map::new();
            info.insert(SEG_SERIES.into(), Value::from(seg_series));
            info.insert("source".into(), Value::from("dicomweb"));
            self.save_label_as(&image, &file, FINAL_TAG, info, false)?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Writes `label` (`[i, j, k]`) as a uint8 NIfTI with the header (grid, affine) of the
/// NIfTI file `like`.
fn write_like(like: &Path, out: &Path, label: &ndarray::Array3<u8>) -> Result<()> {
    use nifti::NiftiObject;
    let io = |e: String| DatastoreError::Io(format!("{}: {e}", out.display()));
    let header = nifti::ReaderOptions::new()
        .read_file(like)
        .map_err(|e| io(e.to_string()))?
        .header()
        .clone();
    nifti::writer::WriterOptions::new(out)
        .reference_header(&header)
        .write_nifti(label)
        .map_err(|e| io(e.to_string()))
}

/// Marks a file read now (the cache's order), where the file system keeps access times.
pub(crate) fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::open(path) {
        let now = std::time::SystemTime::now();
        let _ = f.set_times(std::fs::FileTimes::new().set_accessed(now));
    }
}
