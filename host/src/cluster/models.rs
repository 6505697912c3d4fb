//! Published models across hosts: after a training ends, the files at the top of the
//! app's model folder (`<trainer>.pt`, stats, fitted parameters: what the SDK publishes
//! there; run folders below are the trainer's own) go to the store when they changed, and
//! every host writes the newer ones into its own model folder (atomically: an inference
//! reads the old file or the new one), where the executor's model cache sees the new
//! modification time and reloads.

use super::Cluster;
use crate::Result;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The largest model file shared through the store.
const MAX_FILE: u64 = 1 << 30;

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `name` is a plain file name (no separators, not hidden or a temp file).
fn plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with(".tmp")
        && !name.contains(['/', '\\', '\0'])
}

/// The published files of a model folder: `(name, bytes)` of the regular files at its top.
fn published(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.metadata().is_ok_and(|m| m.len() <= MAX_FILE))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .filter(|(name, _)| plain(name))
        .filter_map(|(name, path)| Some((name, std::fs::read(path).ok()?)))
        .collect()
}

impl Cluster {
    /// Publishes `app`'s model folder `dir`: each top-level file whose content the store
    /// does not already hold. Answers how many were new.
    pub async fn publish_models(&self, app: &str, dir: &Path) -> Result<usize> {
        let files = {
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || published(&dir))
                .await
                .unwrap_or_default()
        };
        let mut n = 0;
        for (file, bytes) in files {
            n += self
                .execute(
                    "publishing a model",
                    "INSERT INTO labelhost_models (app, file, sha256, bytes, host) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, file) DO UPDATE SET \
                     sha256 = EXCLUDED.sha256, bytes = EXCLUDED.bytes, host = EXCLUDED.host, \
                     seq = DEFAULT WHERE labelhost_models.sha256 <> EXCLUDED.sha256",
                    &[&app, &file, &sha256(&bytes), &bytes, &self.host],
                )
                .await?;
        }
        Ok(n as usize)
    }

    /// Writes every file published after `after` (a `seq`) whose content this host's
    /// model folder (`dir_of(app)`) lacks; answers the last `seq` seen and the files
    /// written as `app/file`.
    pub(super) async fn fetch_models(
        &self,
        after: i64,
        dir_of: &(dyn Fn(&str) -> std::path::PathBuf + Send + Sync),
    ) -> Result<(i64, Vec<String>)> {
        let rows = self
            .query(
                "reading models",
                "SELECT app, file, sha256, seq FROM labelhost_models WHERE seq > $1 ORDER BY seq",
                &[&after],
            )
            .await?;
        let mut last = after;
        let mut written = Vec::new();
        for row in rows {
            let (app, file, sha, seq): (String, String, String, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            last = last.max(seq);
            if !plain(&file) || crate::datastore::ids::validate_id(&app).is_err() {
                continue;
            }
            let path = dir_of(&app).join(&file);
            let have = std::fs::read(&path).map(|b| sha256(&b)).unwrap_or_default();
            if have == sha {
                continue;
            }
            let found = self
                .query(
                    "reading a model",
                    "SELECT bytes FROM labelhost_models WHERE app = $1 AND file = $2 AND sha256 = $3",
                    &[&app, &file, &sha],
                )
                .await?;
            let Some(bytes) = found.first().map(|r| r.get::<_, Vec<u8>>(0)) else {
                continue; // replaced meanwhile: a later seq brings it
            };
            write_atomically(&path, &bytes)
                .map_err(|e| crate::Error::Internal(format!("{}: {e}", path.display())))?;
            written.push(format!("{app}/{file}"));
        }
        Ok((last, written))
    }
}

/// Writes `bytes` to a temp file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn only_plain_names_are_shared() {
        assert!(plain("segmentation_unet.pt"));
        assert!(!plain(".hidden"));
        assert!(!plain("x.pt.123.tmp"));
        assert!(!plain("../x"));
        assert!(!plain(""));
    }
}
