//! The server's private runtime folder: bundles staged for loading, app work dirs and
//! scratch files (uploads, dataset archives). Only the server's user may write there: a
//! configured folder owned by someone else, writable by others, or a link is refused; the
//! default is a fresh folder made with a random name. One server uses a folder at a time
//! (an exclusive lock on its `.lock`), so what it finds at start is a crashed server's and
//! is removed: staged bundles and everything under `work/` and `scratch/`. Scratch files
//! are created exclusively (never through a planted link).

use crate::{Error, Result};
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The scratch folder inside the runtime folder.
const SCRATCH: &str = "scratch";

static SCRATCH_DIR: OnceLock<PathBuf> = OnceLock::new();

/// An open runtime folder, locked while this lives; a default one is deleted when this
/// is dropped.
pub struct RuntimeDir {
    path: PathBuf,
    _lock: File,
    _fresh: Option<tempfile::TempDir>,
}

impl RuntimeDir {
    /// Opens `configured` (created when missing) after checking it is private, or makes a
    /// fresh private folder in the temp dir; removes a crash's leftovers; makes it the
    /// process's scratch folder.
    pub fn open(configured: Option<&Path>) -> Result<Self> {
        let (path, fresh) = match configured {
            Some(dir) => (private_dir(dir)?, None),
            None => {
                let fresh = tempfile::Builder::new()
                    .prefix("labelhost-")
                    .tempdir()
                    .map_err(|e| Error::Internal(format!("cannot make a runtime dir: {e}")))?;
                (fresh.path().to_path_buf(), Some(fresh))
            }
        };
        let lock = lock(&path)?;
        remove_leftovers(&path);
        let scratch = path.join(SCRATCH);
        fs::create_dir_all(&scratch)
            .map_err(|e| Error::Internal(format!("cannot create the scratch dir: {e}")))?;
        if SCRATCH_DIR.set(scratch.clone()).is_err() && SCRATCH_DIR.get() != Some(&scratch) {
            tracing::warn!("the scratch dir was already chosen; keeping it");
        }
        Ok(RuntimeDir {
            path,
            _lock: lock,
            _fresh: fresh,
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `dir`, created (mode 0700) when missing, else checked: a real folder (not a link),
/// owned by this user, writable by no one else.
fn private_dir(dir: &Path) -> Result<PathBuf> {
    let refuse = |why: &str| {
        Error::BadRequest(format!(
            "--runtime-dir {}: {why}; give a folder only this user can write",
            dir.display()
        ))
    };
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| refuse(&format!("cannot create it: {e}")))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| refuse(&format!("cannot make it private: {e}")))?;
        }
        Err(e) => return Err(refuse(&e.to_string())),
        Ok(meta) if meta.file_type().is_symlink() => return Err(refuse("it is a symbolic link")),
        Ok(meta) if !meta.is_dir() => return Err(refuse("it is not a folder")),
        // SAFETY: geteuid has no preconditions and cannot fail.
        Ok(meta) if meta.uid() != unsafe { libc::geteuid() } => {
            return Err(refuse("it belongs to another user"))
        }
        Ok(meta) if meta.mode() & 0o022 != 0 => return Err(refuse("other users can write to it")),
        Ok(_) => {}
    }
    std::path::absolute(dir).map_err(|e| refuse(&e.to_string()))
}

/// Takes the folder's `.lock` exclusively without waiting: another live server using the
/// same folder is refused with one line.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Internal(format!("cannot open the runtime lock: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => Err(Error::BadRequest(format!(
            "--runtime-dir {}: another labelhost server is using it; give each server its own",
            dir.display()
        ))),
    }
}

/// Removes what a crashed server left (call holding the lock): staged bundles (folders
/// holding a bundle manifest) and everything in `work/` and `scratch/`. Nothing else in
/// the folder is touched.
fn remove_leftovers(root: &Path) {
    let mut doomed: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = fs::read_dir(root) {
        doomed.extend(
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .filter(|p| p.join(crate::bundle::MANIFEST_FILE).is_file()),
        );
    }
    for own in ["work", SCRATCH] {
        if let Ok(entries) = fs::read_dir(root.join(own)) {
            doomed.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    for path in doomed {
        let removed = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        if let Err(e) = removed {
            tracing::warn!(path = %path.display(), "cannot remove a leftover: {e}");
        }
    }
}

/// The scratch folder: the runtime folder's, or (before one is opened: tools, tests) a
/// private folder made in the temp dir for the process.
pub fn scratch_dir() -> &'static Path {
    SCRATCH_DIR.get_or_init(|| {
        let made = tempfile::Builder::new()
            .prefix("labelhost-scratch-")
            .tempdir();
        match made {
            Ok(dir) => dir.keep(),
            Err(_) => std::env::temp_dir(),
        }
    })
}

/// Creates a new scratch file `<kind>-<pid>-<n><ext>`, exclusively.
pub fn scratch_file(kind: &str, ext: &str) -> Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{kind}-{}-{n}{ext}", std::process::id());
        let path = scratch_dir().join(name);
        let opened = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        match opened {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::Internal(format!(
                    "cannot create a scratch file: {e}"
                )))
            }
        }
    }
}
