//! The serde model of `datastore_v2.json`, its loading, and atomic file writes and copies.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{DatastoreError, Result};

/// File name of the index inside the studies folder.
pub(crate) const INDEX_FILE: &str = "datastore_v2.json";

/// Default dataset name written into a new index.
const DEFAULT_NAME: &str = "new-dataset";
/// Default dataset description written into a new index.
const DEFAULT_DESCRIPTION: &str = "New Dataset";

fn default_name() -> String {
    DEFAULT_NAME.to_string()
}
fn default_description() -> String {
    DEFAULT_DESCRIPTION.to_string()
}
fn default_images_dir() -> String {
    ".".to_string()
}
fn default_labels_dir() -> String {
    "labels".to_string()
}

/// The whole index (`LocalDatastoreModel`); unknown top-level keys are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DatastoreIndex {
    /// Dataset name.
    #[serde(default = "default_name")]
    pub(crate) name: String,
    /// Dataset description.
    #[serde(default = "default_description")]
    pub(crate) description: String,
    /// Folder of the images, relative to the root.
    #[serde(default = "default_images_dir")]
    pub(crate) images_dir: String,
    /// Folder of the label tags, relative to the root.
    #[serde(default = "default_labels_dir")]
    pub(crate) labels_dir: String,
    /// One entry per image id.
    #[serde(default)]
    pub(crate) objects: BTreeMap<String, ObjectEntry>,
    /// Unknown top-level fields, written back unchanged.
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

impl Default for DatastoreIndex {
    fn default() -> Self {
        Self {
            name: default_name(),
            description: default_description(),
            images_dir: default_images_dir(),
            labels_dir: default_labels_dir(),
            objects: BTreeMap::new(),
            extra: Map::new(),
        }
    }
}

/// One image and its labels (`ImageLabelModel`); unknown keys are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ObjectEntry {
    /// The image file.
    #[serde(default)]
    pub(crate) image: FileEntry,
    /// Labels by tag.
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, FileEntry>,
    /// Unknown per-object fields, written back unchanged.
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

/// One stored file (`DataModel`): its extension and free-form info.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// Extension including the leading dot, e.g. `.nii.gz`.
    #[serde(default)]
    pub(crate) ext: String,
    /// Free-form info (`ts`, `name`, and whatever clients stored).
    #[serde(default)]
    pub(crate) info: Map<String, Value>,
    /// Unknown fields, written back unchanged.
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

impl FileEntry {
    /// A new entry whose info holds `ts` and `name` on top of `info`.
    pub(crate) fn new(ext: &str, mut info: Map<String, Value>, ts: u64, name: &str) -> Self {
        info.insert("ts".to_string(), Value::from(ts));
        info.insert("name".to_string(), Value::from(name));
        Self {
            ext: ext.to_string(),
            info,
            extra: Map::new(),
        }
    }
}

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_err(what: &str, path: &Path, err: &std::io::Error) -> DatastoreError {
    let message = format!("{what} {}: {err}", path.display());
    match err.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            DatastoreError::Full(message)
        }
        _ => DatastoreError::Io(message),
    }
}

/// Seconds since the Unix epoch for `t` (0 before the epoch).
pub(crate) fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Resolves a relative folder from the index (`images_dir`, `labels_dir`) under `root`,
/// refusing absolute paths and `..`.
pub(crate) fn resolve_dir(root: &Path, rel: &str) -> Result<PathBuf> {
    let mut out = root.to_path_buf();
    for comp in Path::new(rel).components() {
        match comp {
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            _ => {
                return Err(DatastoreError::InvalidInput(format!(
                    "invalid folder {rel:?} in {INDEX_FILE}: must stay inside the studies folder"
                )))
            }
        }
    }
    Ok(out)
}

/// Reads and parses the index at `path`; `Ok(None)` when it does not exist.
/// What identifies one version of the index file: (mtime, length, inode). Every atomic
/// write renames a new inode in, so a write by anyone changes it even within one clock tick.
pub(crate) type Stamp = Option<(SystemTime, u64, u64)>;

/// The index file's current [`Stamp`].
pub(crate) fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Reads the index and the stamp of the very file read (taken from the open file, so a
/// write renamed in meanwhile cannot lend its stamp to older content).
pub(crate) fn load(path: &Path) -> Result<Option<(DatastoreIndex, Stamp)>> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot read", path, &e)),
    };
    let read = file.metadata().and_then(|m| {
        let mut text = String::with_capacity(m.len() as usize);
        file.read_to_string(&mut text)?;
        Ok((text, m))
    });
    let (text, m) = read.map_err(|e| io_err("cannot read", path, &e))?;
    let index = serde_json::from_str(&text).map_err(|e| {
        DatastoreError::InvalidInput(format!("cannot parse {}: {e}", path.display()))
    })?;
    let stamp = m.modified().ok().map(|t| (t, m.len(), m.ino()));
    Ok(Some((index, stamp)))
}

/// Modification time of `path`, if it can be read.
pub(crate) fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// How the datastore's temporary files start (`.labelhost-tmp-<pid>-<n>`): hidden, so the
/// folder scan never takes one for an image. Writers create them only while holding the
/// studies folder's lock, so any found under the lock are a crash's leftovers.
pub(crate) const TEMP_PREFIX: &str = ".labelhost-tmp-";

/// A new temp file next to `dest`, created exclusively (never through a planted link; a
/// name already taken, say by a crashed process with the same pid, is skipped). Its name
/// does not derive from `dest`'s: one near the 255-byte limit plus a suffix would not fit.
fn create_temp(dest: &Path) -> std::io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dest.with_file_name(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes the datastore's temporary files in `dir`; call holding the studies folder's
/// lock (every temp file then belongs to a writer that crashed).
pub(crate) fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let stale = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && entry.file_type().is_ok_and(|t| t.is_file());
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Fsyncs the folder holding `path` so a rename survives a crash (no-op off Unix).
fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("cannot sync folder", dir, &e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Moves a finished temp file over `dest` and syncs the folder; removes the temp on failure.
fn commit(tmp: &Path, dest: &Path) -> Result<()> {
    if let Err(e) = fs::rename(tmp, dest) {
        let _ = fs::remove_file(tmp);
        return Err(io_err("cannot rename into", dest, &e));
    }
    sync_parent(dest)
}

/// Writes `bytes` to `dest` atomically: temp file in the same folder, fsync, rename, fsync folder.
pub(crate) fn atomic_write(dest: &Path, bytes: &[u8]) -> Result<()> {
    let (mut file, tmp) = create_temp(dest).map_err(|e| io_err("cannot write", dest, &e))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("cannot write", &tmp, &e));
    }
    commit(&tmp, dest)
}

/// Copies `src` to `dest` atomically: copy to a temp file next to `dest`, fsync, rename.
pub(crate) fn atomic_copy(src: &Path, dest: &Path) -> Result<()> {
    let copy = |e: std::io::Error| io_err(&format!("cannot copy {} to", src.display()), dest, &e);
    let mut from = File::open(src).map_err(copy)?;
    let (mut to, tmp) = create_temp(dest).map_err(copy)?;
    let copied = std::io::copy(&mut from, &mut to).and_then(|_| to.sync_all());
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(
            &format!("cannot copy {} to", src.display()),
            dest,
            &e,
        ));
    }
    commit(&tmp, dest)
}

/// Serialises `index` with 2-space indentation and writes it atomically to `path`;
/// returns the new modification time.
pub(crate) fn save(path: &Path, index: &DatastoreIndex) -> Result<Stamp> {
    let text = serde_json::to_string_pretty(index)
        .map_err(|e| DatastoreError::InvalidInput(format!("cannot serialise index: {e}")))?;
    atomic_write(path, text.as_bytes())?;
    Ok(stamp(path))
}

/// Deletes `path`; a file that is already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io_err("cannot delete", path, &e))
        }
        _ => Ok(()),
    }
}

/// Reads a stored file; a missing file is `NotFound`.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            DatastoreError::NotFound(format!("file {} not found", path.display()))
        }
        _ => io_err("cannot read", path, &e),
    })
}

/// Refuses a destination that is a folder or the index itself.
pub(crate) fn check_dest(dest: &Path, index_path: &Path) -> Result<()> {
    if dest == index_path || dest.is_dir() {
        return Err(DatastoreError::InvalidInput(format!(
            "refusing to overwrite reserved path {}",
            dest.display()
        )));
    }
    Ok(())
}
