//! The server's private runtime folder: bundles staged for loading, app work dirs and
//! scratch files (uploads, dataset archives). Only the server's user may write there: a
//! configured folder owned by someone else, writable by others, or a link is refused; the
//! default is a fresh folder made with a random name. Scratch files are created exclusively
//! (never through a planted link), and what a crashed server left is removed at start.

use crate::{Error, Result};
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The scratch folder inside the runtime folder.
const SCRATCH: &str = "scratch";

static SCRATCH_DIR: OnceLock<PathBuf> = OnceLock::new();

/// An open runtime folder; a default one is deleted when this is dropped.
pub struct RuntimeDir {
    path: PathBuf,
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
        remove_leftovers(&path);
        let scratch = path.join(SCRATCH);
        fs::create_dir_all(&scratch)
            .map_err(|e| Error::Internal(format!("cannot create the scratch dir: {e}")))?;
        if SCRATCH_DIR.set(scratch.clone()).is_err() && SCRATCH_DIR.get() != Some(&scratch) {
            tracing::warn!("the scratch dir was already chosen; keeping it");
        }
        Ok(RuntimeDir {
            path,
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

/// The pid in a `<name>-<pid>-<n>` entry name.
fn pid_of(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(3, '-');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// Removes staged bundles, work dirs and scratch files whose process is gone (or is this
/// one, from before a restart that reused its pid).
fn remove_leftovers(root: &Path) {
    let me = std::process::id();
    for (dir, strip_ext) in [
        (root.to_path_buf(), false),
        (root.join("work"), false),
        (root.join(SCRATCH), true),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = if strip_ext {
                name.split('.').next().unwrap_or_default()
            } else {
                &name
            };
            let Some(pid) = pid_of(stem) else { continue };
            if pid == me || !Path::new(&format!("/proc/{pid}")).exists() {
                let path = entry.path();
                let removed = match entry.file_type() {
                    Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
                    _ => fs::remove_file(&path),
                };
                if let Err(e) = removed {
                    tracing::warn!(path = %path.display(), "cannot remove a leftover: {e}");
                }
            }
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
