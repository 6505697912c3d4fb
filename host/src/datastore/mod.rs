//! Local studies datastore compatible with MONAI Label's `datastore_v2.json`: the public API.
//!
//! Images live at the top level of the studies folder as `<id><ext>`, labels under
//! `labels/<tag>/<id><ext>`, and `datastore_v2.json` indexes both. All methods take `&self`;
//! the in-memory index is guarded by a mutex and every mutation rewrites the index atomically.

mod archive;
mod checks;
mod claims;
pub use claims::DEFAULT_CLAIM_SECS;
pub(crate) mod ids;
mod index;
mod journal;
mod labels;
mod reconcile;
mod remote;
pub use remote::Remote;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{atomic::AtomicU64, Mutex, MutexGuard};
use std::time::SystemTime;

use labelhost_plugin_api::sdk::image::ReadOptions;
use serde_json::{Map, Value};

use ids::{source_name_ext, validate_id};
use index::{check_dest, epoch_secs, io_err, read_file, remove_if_exists};
use index::{DatastoreIndex, FileEntry, INDEX_FILE};
use reconcile::{reconcile, Dirs};

/// The label tag that marks an image as labeled (MONAI Label's `DefaultLabelTag.FINAL`).
const FINAL_TAG: &str = "final";

/// Errors returned by [`LocalDatastore`].
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// The image or label is unknown.
    #[error("{0}")]
    NotFound(String),
    /// A bad id, tag or JSON value, or an attempted path traversal.
    #[error("{0}")]
    InvalidInput(String),
    /// A filesystem failure; the message names the path.
    #[error("{0}")]
    Io(String),
    /// The disk (or the user's quota) is full; nothing was changed.
    #[error("{0}")]
    Full(String),
    /// The DICOMweb server behind the store failed or refused; nothing was changed.
    #[error("{0}")]
    Upstream(String),
}

/// Result type of the datastore API.
pub type Result<T> = std::result::Result<T, DatastoreError>;

/// Mutable state behind the mutex.
struct State {
    /// The index as last written or read.
    index: DatastoreIndex,
    /// Modification time of `datastore_v2.json` when we last wrote or read it.
    mtime: index::Stamp,
    /// Image and label folders resolved from the index.
    dirs: Dirs,
    /// How far this store has read the index's change journal (`journal.rs`).
    journal: journal::Position,
}

/// A MONAI Label style local datastore rooted at a studies folder. Thread-safe.
pub struct LocalDatastore {
    root: PathBuf,
    index_path: PathBuf,
    state: Mutex<State>,
    /// Folder modification times at the last [`LocalDatastore::refresh_if_changed`].
    seen: Mutex<Vec<Option<SystemTime>>>,
    /// Seconds an active-learning claim stays fresh (`claims.rs`).
    claim_secs: AtomicU64,
    /// The voxel limit stored volumes are checked against (`checks.rs`).
    max_voxels: AtomicU64,
    /// Whether files are checked before they are stored (off only in unit tests that
    /// store stand-in bytes).
    check_files: bool,
    /// Whether symbolic links in the studies folder are read (`checks.rs`).
    follow_links: std::sync::atomic::AtomicBool,
    /// The DICOMweb server whose series the store lists and caches (`remote.rs`).
    remote: std::sync::OnceLock<Remote>,
    /// Where info merged into a remote image goes, for the other hosts (`cluster::info`).
    info_feed: std::sync::OnceLock<InfoFeed>,
}

/// A remote image's id and the info merged into it, for the other hosts.
pub type InfoFeed = tokio::sync::mpsc::UnboundedSender<(String, Map<String, Value>)>;

fn image_not_found(id: &str) -> DatastoreError {
    DatastoreError::NotFound(format!("image {id:?} not found"))
}

fn label_not_found(id: &str, tag: &str) -> DatastoreError {
    DatastoreError::NotFound(format!("label {id:?} with tag {tag:?} not found"))
}

/// Takes `<root>/.lock` exclusively (as MONAI Label's FileLock); released when dropped.
fn take_lock(root: &Path) -> Result<fs::File> {
    let path = root.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err("cannot open", &path, &e))?;
    file.lock().map_err(|e| io_err("cannot lock", &path, &e))?;
    Ok(file)
}

fn now_secs() -> u64 {
    epoch_secs(SystemTime::now())
}

impl LocalDatastore {
    /// Opens (creating if needed) the datastore at `root`: creates `root` and `labels/`,
    /// loads `datastore_v2.json` if present (keeping unknown fields), reconciles it with the
    /// folder and writes the index if it changed or did not exist.
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| io_err("cannot create", root, &e))?;
        let root = fs::canonicalize(root).map_err(|e| io_err("cannot resolve", root, &e))?;
        let index_path = root.join(INDEX_FILE);
        let loaded = index::load(&index_path)?;
        let existed = loaded.is_some();
        let (mut idx, mut mtime) = loaded.unwrap_or_default();
        let dirs = Dirs::create(&root, &idx)?;
        {
            // Under the lock no other process is mid-write: every temp file is stale.
            let _cross_process = take_lock(&root)?;
            dirs.remove_stale_temps(&root);
        }
        if reconcile(&mut idx, &dirs)? || !existed {
            mtime = index::save(&index_path, &idx)?;
        }
        let state = State {
            index: idx,
            mtime,
            dirs,
            journal: journal::end(&root),
        };
        Ok(Self {
            root,
            index_path,
            state: Mutex::new(state),
            seen: Mutex::new(Vec::new()),
            claim_secs: AtomicU64::new(claims::DEFAULT_CLAIM_SECS),
            max_voxels: AtomicU64::new(ReadOptions::default().max_voxels),
            check_files: true,
            follow_links: std::sync::atomic::AtomicBool::new(false),
            remote: std::sync::OnceLock::new(),
            info_feed: std::sync::OnceLock::new(),
        })
    }

    /// [`LocalDatastore::open`] without checking the files stored (unit tests of the
    /// index with stand-in bytes).
    #[cfg(test)]
    pub(crate) fn open_unchecked(root: &Path) -> Result<Self> {
        Ok(Self {
            check_files: false,
            ..Self::open(root)?
        })
    }

    /// Locks the state, recovering from a poisoned mutex (the index is always consistent),
    /// with the index read again if another process (another host over the same studies
    /// folder) wrote it since: what any host saved is what every host reads next. The
    /// index is replaced by rename, so it is read whole without the file lock.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.reload_if_changed(&mut st) {
            tracing::warn!("datastore index: {e}");
        }
        st
    }

    /// Runs `f` on a copy of the index; if it succeeds and changed the index, writes it
    /// to disk and only then makes it current. Writers in other processes are kept out by
    /// an exclusive lock on `<root>/.lock` (as MONAI Label's FileLock), and the index is
    /// re-read first when another process changed it, so no update is lost.
    fn mutate<R>(&self, f: impl FnOnce(&mut DatastoreIndex, &Dirs) -> Result<R>) -> Result<R> {
        let mut st = self.lock();
        let _cross_process = self.file_lock()?;
        self.reload_if_changed(&mut st)?;
        let mut next = st.index.clone();
        let out = f(&mut next, &st.dirs)?;
        if next != st.index {
            self.write(&mut st, next)?;
        }
        Ok(out)
    }

    /// Writes `next` as the index (under the file lock, `st` current) and journals what
    /// changed for the other processes over the folder.
    fn write(&self, st: &mut State, next: DatastoreIndex) -> Result<()> {
        let to = index::save(&self.index_path, &next)?;
        if let Some(pos) = journal::append(&self.root, &st.index, st.mtime, &next, to) {
            st.journal = pos;
        }
        st.mtime = to;
        st.index = next;
        Ok(())
    }

    /// Re-reads the index when another process changed it since we last read or wrote it;
    /// returns the file's current stamp (`None` when there is no index file yet).
    fn reload_if_changed(&self, st: &mut State) -> Result<index::Stamp> {
        let on_disk = index::stamp(&self.index_path);
        if on_disk.is_some() && on_disk != st.mtime {
            // The lines another store journalled, when they reach the file; else all of it.
            let folders = (st.index.images_dir.clone(), st.index.labels_dir.clone());
            let caught_up =
                journal::catch_up(&self.root, &mut st.index, st.mtime, on_disk, st.journal);
            if let Some(pos) = caught_up {
                st.journal = pos;
                st.mtime = on_disk;
                if folders != (st.index.images_dir.clone(), st.index.labels_dir.clone()) {
                    st.dirs = Dirs::create(&self.root, &st.index)?;
                }
            } else if let Some((idx, mtime)) = index::load(&self.index_path)? {
                st.dirs = Dirs::create(&self.root, &idx)?;
                st.index = idx;
                st.mtime = mtime;
                st.journal = journal::end(&self.root);
            }
        }
        Ok(on_disk)
    }

    /// Takes the studies folder's `.lock` exclusively; released when the file is dropped.
    fn file_lock(&self) -> Result<fs::File> {
        take_lock(&self.root)
    }

    /// Absolute path of the studies folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Dataset name.
    pub fn name(&self) -> String {
        self.lock().index.name.clone()
    }

    /// Sets the dataset name and writes the index.
    pub fn set_name(&self, name: &str) -> Result<()> {
        self.mutate(|idx, _| {
            idx.name = name.to_string();
            Ok(())
        })
    }

    /// Dataset description.
    pub fn description(&self) -> String {
        self.lock().index.description.clone()
    }

    /// Sets the dataset description and writes the index.
    pub fn set_description(&self, d: &str) -> Result<()> {
        self.mutate(|idx, _| {
            idx.description = d.to_string();
            Ok(())
        })
    }

    /// `[{"image": abs path, "label": abs path}]` for images with a "final" label, sorted by id
    /// (without those the store may not read: links it does not follow); a remote image not
    /// in the cache is fetched.
    pub fn datalist(&self) -> Vec<Value> {
        let labelled: Vec<(String, PathBuf)> = {
            let st = self.lock();
            st.index
                .objects
                .iter()
                .filter_map(|(id, obj)| {
                    let label = obj.labels.get(FINAL_TAG)?;
                    Some((id.clone(), st.dirs.label(FINAL_TAG, id, &label.ext)))
                })
                .collect()
        };
        labelled
            .into_iter()
            .filter_map(|(id, label)| {
                let image = self.get_image_uri(&id).ok()?;
                let label = self.readable(&id, label).ok()?;
                Some(serde_json::json!({
                    "image": image.to_string_lossy(),
                    "label": label.to_string_lossy(),
                }))
            })
            .collect()
    }

    /// All image ids, sorted.
    pub fn list_images(&self) -> Vec<String> {
        self.lock().index.objects.keys().cloned().collect()
    }

    /// Absolute path of an image (refused when it is a link the store does not follow); a
    /// remote image not in the cache is fetched first.
    pub fn get_image_uri(&self, id: &str) -> Result<PathBuf> {
        let (path, remote) =
            self.with_image(id, |e, path| (path, remote::remote_of(e).is_some()))?;
        if remote && path.is_file() {
            // The cache drops the least recently read first.
            remote::touch(&path);
        } else if !path.is_file() {
            self.fetch_if_remote(id, &path)?;
        }
        self.readable(&format!("image {id:?}"), path)
    }

    /// `f` on an image's index entry and path, under the lock (checked id, 404 when
    /// unknown); nothing is copied that `f` does not take.
    fn with_image<T>(&self, id: &str, f: impl FnOnce(&FileEntry, PathBuf) -> T) -> Result<T> {
        validate_id(id)?;
        let st = self.lock();
        let obj = st
            .index
            .objects
            .get(id)
            .ok_or_else(|| image_not_found(id))?;
        Ok(f(&obj.image, st.dirs.image(id, &obj.image.ext)))
    }

    /// Bytes of an image.
    pub fn get_image(&self, id: &str) -> Result<Vec<u8>> {
        read_file(&self.get_image_uri(id)?)
    }

    /// Info of an image, plus `"path"` (its absolute path) as MONAI Label adds.
    pub fn get_image_info(&self, id: &str) -> Result<Map<String, Value>> {
        self.with_image(id, |entry, path| {
            let mut info = entry.info.clone();
            info.insert("path".to_string(), Value::from(path.to_string_lossy()));
            info
        })
    }

    /// Ids of images with a "final" label, sorted.
    pub fn get_labeled_images(&self) -> Vec<String> {
        self.filter_images(true)
    }

    /// Ids of images without a "final" label, sorted.
    pub fn get_unlabeled_images(&self) -> Vec<String> {
        self.filter_images(false)
    }

    fn filter_images(&self, labeled: bool) -> Vec<String> {
        let st = self.lock();
        st.index
            .objects
            .iter()
            .filter(|(_, obj)| obj.labels.contains_key(FINAL_TAG) == labeled)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Copies `file` into the store as `<id><ext>` (ext from the source file name), sets
    /// `info["ts"]` and `info["name"]`, and replaces any image of that id (its labels stay).
    /// The file is checked first ([`LocalDatastore::check_image`]); a refused one leaves
    /// the store as it was.
    pub fn add_image(&self, id: &str, file: &Path, info: Map<String, Value>) -> Result<String> {
        validate_id(id)?;
        let ext = source_name_ext(file)?;
        checks::stored_name(id, &ext)?;
        checks::info_size(&info)?;
        if self.check_files {
            self.check_image(file)?;
        }
        self.mutate(|idx, dirs| {
            let dest = dirs.image(id, &ext);
            check_dest(&dest, &self.index_path)?;
            index::atomic_copy(file, &dest)?;
            if let Some(old) = idx.objects.get(id).filter(|old| old.image.ext != ext) {
                remove_if_exists(&dirs.image(id, &old.image.ext))?;
            }
            let obj = idx.objects.entry(id.to_string()).or_default();
            obj.image = FileEntry::new(&ext, info, now_secs(), &format!("{id}{ext}"));
            Ok(id.to_string())
        })
    }

    /// Deletes an image file and all its label files, and drops it from the index.
    pub fn remove_image(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let failed = self.mutate(|idx, dirs| {
            let obj = idx.objects.remove(id).ok_or_else(|| image_not_found(id))?;
            remove_if_exists(&dirs.image(id, &obj.image.ext))?;
            let mut failed = None;
            for (tag, label) in &obj.labels {
                if let Err(e) = remove_if_exists(&dirs.label(tag, id, &label.ext)) {
                    failed.get_or_insert(e);
                }
            }
            Ok(failed)
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Shallow-merges `info` into an image's info (Python `dict.update`), as an app does.
    pub fn update_image_info(&self, id: &str, info: Map<String, Value>) -> Result<()> {
        self.merge_image_info(id, info, None, true)
    }

    /// [`LocalDatastore::update_image_info`] for a client: a merge that makes the info
    /// larger is refused when all info would pass [`checks::MAX_TOTAL_INFO_BYTES`].
    pub fn update_image_info_from_client(&self, id: &str, info: Map<String, Value>) -> Result<()> {
        self.merge_image_info(id, info, Some(checks::MAX_TOTAL_INFO_BYTES), true)
    }

    /// Merges `info` into this store's copy only: info another host shared, or what this
    /// host derives itself (a fetched series' header).
    pub fn merge_image_info_here(&self, id: &str, info: Map<String, Value>) -> Result<()> {
        self.merge_image_info(id, info, None, false)
    }

    /// Sends what is merged into a remote image's info from now on to `feed` (the
    /// cluster's writer), for the other hosts over the same DICOMweb server.
    pub fn share_image_info(&self, feed: InfoFeed) {
        let _ = self.info_feed.set(feed);
    }

    fn merge_image_info(
        &self,
        id: &str,
        info: Map<String, Value>,
        total: Option<usize>,
        share: bool,
    ) -> Result<()> {
        validate_id(id)?;
        // A copy for the other hosts only when they take it (a cluster over a PACS).
        let feed = self.info_feed.get().filter(|_| share);
        let copy = feed.map(|_| info.clone());
        let remote = self.mutate(|idx, _| {
            let obj = idx.objects.get_mut(id).ok_or_else(|| image_not_found(id))?;
            let remote = remote::remote_of(&obj.image).is_some();
            let grew = checks::merge_info(&mut obj.image.info, info)?;
            match total {
                Some(limit) if grew => checks::total_info_size(idx, limit)?,
                _ => {}
            }
            Ok(remote)
        })?;
        if let (Some(feed), Some(info), true) = (feed, copy, remote) {
            let _ = feed.send((id.to_owned(), info));
        }
        Ok(())
    }

    /// `{"total": images, "completed": images with "final", "label_tags": {tag: count}}`.
    pub fn status(&self) -> Value {
        let st = self.lock();
        let mut tags = Map::new();
        for obj in st.index.objects.values() {
            for tag in obj.labels.keys() {
                let n = tags.get(tag).and_then(Value::as_u64).unwrap_or(0);
                tags.insert(tag.clone(), Value::from(n + 1));
            }
        }
        let completed = st
            .index
            .objects
            .values()
            .filter(|o| o.labels.contains_key(FINAL_TAG));
        serde_json::json!({
            "total": st.index.objects.len(),
            "completed": completed.count(),
            "label_tags": tags,
        })
    }

    /// Reloads the index if it changed on disk, then reconciles it with the folder (files
    /// added by hand appear, deleted ones disappear) and writes it if anything changed.
    pub fn refresh(&self) -> Result<()> {
        let mut guard = self.lock();
        let _cross_process = self.file_lock()?;
        let st = &mut *guard;
        let on_disk = self.reload_if_changed(st)?;
        let mut next = st.index.clone();
        if reconcile(&mut next, &st.dirs)? || on_disk.is_none() {
            self.write(st, next)?;
        }
        Ok(())
    }

    /// [`LocalDatastore::refresh`] only when a folder's entries (or the index) changed since
    /// the last call: cheap enough to poll (a few `stat`s when nothing changed).
    pub fn refresh_if_changed(&self) -> Result<bool> {
        let stamp = {
            let st = self.lock();
            let mut dirs = vec![
                st.dirs.images.clone(),
                st.dirs.labels.clone(),
                self.index_path.clone(),
            ];
            if let Ok(tags) = fs::read_dir(&st.dirs.labels) {
                dirs.extend(tags.filter_map(|e| e.ok()).map(|e| e.path()));
            }
            dirs.iter().map(|d| index::modified(d)).collect::<Vec<_>>()
        };
        let mut last = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if *last == stamp {
            return Ok(false);
        }
        self.refresh()?;
        *last = stamp;
        Ok(true)
    }

    /// The whole index exactly as `datastore_v2.json` holds it.
    pub fn json(&self) -> Value {
        serde_json::to_value(&self.lock().index).unwrap_or(Value::Null)
    }
}
