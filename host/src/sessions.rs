//! MONAI Label's sessions: files uploaded once (`PUT /session/`) and inferred on many times
//! (`session_id=`), each in `<root>/<id>/` with a one-line `meta.info`, expiring after
//! `expiry` seconds without access (MONAI Label's `SessionInfo`).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::{
    fs,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

/// The default and longest expiry (MONAI Label's `MONAI_LABEL_SESSION_EXPIRY`).
pub const MAX_EXPIRY: u64 = 3600;

/// `meta.info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session id.
    pub name: String,
    /// Its folder.
    pub path: String,
    /// The uploaded image (a file, or a folder for several files).
    pub image: String,
    /// Free-form metadata.
    pub meta: Value,
    /// Created (epoch seconds).
    pub create_ts: u64,
    /// Last used (epoch seconds).
    pub last_access_ts: u64,
    /// Seconds without access before it is removed.
    pub expiry: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("{what} {}: {e}", path.display()))
}

/// The session store.
pub struct Sessions {
    root: PathBuf,
}

impl Sessions {
    /// Sessions kept under `root`.
    pub fn new(root: &Path) -> Self {
        Sessions {
            root: root.to_path_buf(),
        }
    }

    fn folder(&self, id: &str) -> Result<PathBuf> {
        let plain = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        if plain {
            Ok(self.root.join(id))
        } else {
            Err(Error::BadRequest(format!("'{id}' is not a session id")))
        }
    }

    fn write_meta(info: &SessionInfo) -> Result<()> {
        let meta = Path::new(&info.path).join("meta.info");
        let text = serde_json::to_string(info).map_err(|e| Error::Internal(e.to_string()))?;
        // Written aside and renamed: a reader never sees a half-written file.
        let tmp = meta.with_extension(format!("info.{}.tmp", crate::random::bits()));
        fs::write(&tmp, text).map_err(|e| io("cannot write", &tmp, e))?;
        fs::rename(&tmp, &meta).map_err(|e| io("cannot write", &meta, e))
    }

    /// Moves uploaded files (`(file name, temp path)`) into a new session.
    pub fn create(
        &self,
        id: &str,
        files: Vec<(String, PathBuf)>,
        expiry: u64,
    ) -> Result<SessionInfo> {
        let dir = self.folder(id)?;
        fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        let single = files.len() == 1;
        let target = if single {
            dir.clone()
        } else {
            dir.join("image")
        };
        fs::create_dir_all(&target).map_err(|e| io("cannot create", &target, e))?;
        let mut image = target.clone();
        for (name, tmp) in files {
            let base = Path::new(&name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let base = base.filter(|b| !b.is_empty() && b != "meta.info" && !b.starts_with('.'));
            let base =
                base.ok_or_else(|| Error::BadRequest(format!("'{name}' is not a file name")))?;
            let dest = target.join(&base);
            fs::copy(&tmp, &dest).map_err(|e| io("cannot store", &dest, e))?;
            if single {
                image = dest;
            }
        }
        let expiry = if expiry <= 60 {
            MAX_EXPIRY
        } else {
            expiry.min(MAX_EXPIRY)
        };
        let info = SessionInfo {
            name: id.to_owned(),
            path: dir.to_string_lossy().into_owned(),
            image: image.to_string_lossy().into_owned(),
            meta: Value::Object(Default::default()),
            create_ts: now(),
            last_access_ts: now(),
            expiry,
        };
        Sessions::write_meta(&info)?;
        Ok(info)
    }

    /// A live session; expired or dangling ones are removed and reported missing.
    pub fn get(&self, id: &str, update_ts: bool) -> Result<SessionInfo> {
        let dir = self.folder(id)?;
        let missing = || Error::NotFound(format!("Session ({id}) Not Found"));
        let text = fs::read_to_string(dir.join("meta.info")).map_err(|_| missing())?;
        let mut info: SessionInfo = serde_json::from_str(&text).map_err(|_| missing())?;
        if now().saturating_sub(info.last_access_ts) > info.expiry
            || !Path::new(&info.image).exists()
        {
            let _ = fs::remove_dir_all(&dir);
            return Err(missing());
        }
        if update_ts {
            info.last_access_ts = now();
            Sessions::write_meta(&info)?;
        }
        Ok(info)
    }

    /// Removes a session; returns what it was.
    pub fn remove(&self, id: &str) -> Result<SessionInfo> {
        let info = self.get(id, false)?;
        let dir = self.folder(id)?;
        fs::remove_dir_all(&dir).map_err(|e| io("cannot remove", &dir, e))?;
        Ok(info)
    }

    /// Removes every expired session; returns how many.
    pub fn cleanup(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|id| matches!(self.get(id, false), Err(Error::NotFound(_))))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_store_expire_and_refuse_bad_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let upload = dir.path().join("upload.tmp");
        fs::write(&upload, b"volume").expect("write");
        let store = Sessions::new(&dir.path().join("sessions"));
        let info = store
            .create("abc-123", vec![("ct.nii.gz".into(), upload.clone())], 10)
            .expect("create");
        assert_eq!(info.expiry, MAX_EXPIRY, "<= 60 s means the default");
        assert!(info.image.ends_with("abc-123/ct.nii.gz"));
        assert_eq!(fs::read(&info.image).expect("stored"), b"volume");
        assert_eq!(store.get("abc-123", true).expect("live").name, "abc-123");
        assert!(matches!(
            store.get("../etc", false),
            Err(Error::BadRequest(_))
        ));
        // An expired session is removed on access.
        let mut stale = store.get("abc-123", false).expect("live");
        stale.last_access_ts = 0;
        Sessions::write_meta(&stale).expect("meta");
        assert!(matches!(
            store.get("abc-123", false),
            Err(Error::NotFound(_))
        ));
        assert!(!dir.path().join("sessions/abc-123").exists());
        let several = vec![("a.dcm".into(), upload.clone()), ("b.dcm".into(), upload)];
        let series = store.create("def", several, 600).expect("series");
        assert!(series.image.ends_with("def/image") && series.expiry == 600);
        assert_eq!(store.remove("def").expect("removed").name, "def");
        assert_eq!(store.cleanup(), 0);
    }
}
