//! The index's change journal, `.labelhost/index.journal`: every write of
//! `datastore_v2.json` by a store also appends one line with the entries it changed, chained
//! by the index file's stamps (`from` → `to`). Another process over the same folder (another
//! host) that finds the index changed applies the lines that chain from its own copy instead
//! of parsing the whole index again — a few hundred bytes per label instead of the whole
//! file. The index stays the truth: a line missing or torn, a journal rotated past, a write
//! by another program (no line reaches the file's stamp) all mean a full read.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::index::{DatastoreIndex, ObjectEntry, Stamp};

/// The journal's path under the studies folder.
pub(crate) const JOURNAL: &str = ".labelhost/index.journal";

/// Past this many bytes the next write starts a new journal (readers behind it read the
/// index whole once).
const MAX_BYTES: u64 = 8 << 20;

/// A stamp as the journal writes it: seconds, nanoseconds, length, inode.
type Key = (u64, u32, u64, u64);

fn key(stamp: Stamp) -> Option<Key> {
    let (t, len, ino) = stamp?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    Some((d.as_secs(), d.subsec_nanos(), len, ino))
}

/// One write of the index.
#[derive(Serialize, Deserialize)]
struct Line {
    from: Key,
    to: Key,
    /// Entries added or changed.
    set: BTreeMap<String, ObjectEntry>,
    /// Entries removed.
    del: Vec<String>,
    /// Everything but the objects (name, description, folders, unknown fields).
    meta: Map<String, Value>,
}

/// Where a reader stands in the journal: the file's inode and the bytes it has read.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Position {
    ino: u64,
    offset: u64,
}

/// The index without its objects.
fn meta_of(index: &DatastoreIndex) -> Map<String, Value> {
    let mut meta = index.extra.clone();
    for (k, v) in [
        ("name", &index.name),
        ("description", &index.description),
        ("images_dir", &index.images_dir),
        ("labels_dir", &index.labels_dir),
    ] {
        meta.insert(k.into(), Value::from(v.as_str()));
    }
    meta
}

fn set_meta(index: &mut DatastoreIndex, mut meta: Map<String, Value>) {
    let mut take = |k: &str| match meta.remove(k) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    if let Some(v) = take("name") {
        index.name = v;
    }
    if let Some(v) = take("description") {
        index.description = v;
    }
    if let Some(v) = take("images_dir") {
        index.images_dir = v;
    }
    if let Some(v) = take("labels_dir") {
        index.labels_dir = v;
    }
    index.extra = meta;
}

/// The line taking `old` (at stamp `from`) to `new` (at `to`); `None` when a stamp is
/// unknown.
fn line(old: &DatastoreIndex, from: Stamp, new: &DatastoreIndex, to: Stamp) -> Option<Line> {
    let set = new
        .objects
        .iter()
        .filter(|(id, entry)| old.objects.get(*id) != Some(*entry))
        .map(|(id, entry)| (id.clone(), entry.clone()))
        .collect();
    let del = old
        .objects
        .keys()
        .filter(|id| !new.objects.contains_key(*id))
        .cloned()
        .collect();
    Some(Line {
        from: key(from)?,
        to: key(to)?,
        set,
        del,
        meta: meta_of(new),
    })
}

/// Appends the line of a write (under the studies folder's lock) and answers the writer's
/// new position (past its own line). Failures only cost readers a full read.
pub(crate) fn append(
    root: &Path,
    old: &DatastoreIndex,
    from: Stamp,
    new: &DatastoreIndex,
    to: Stamp,
) -> Option<Position> {
    let path = root.join(JOURNAL);
    let mut text = serde_json::to_string(&line(old, from, new, to)?).ok()?;
    text.push('\n');
    let too_long = fs::metadata(&path).is_ok_and(|m| m.len() > MAX_BYTES);
    if too_long {
        // A new file (a new inode): readers past the old one's end start over.
        let tmp = path.with_extension("journal.new");
        fs::write(&tmp, b"").ok()?;
        fs::rename(&tmp, &path).ok()?;
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).ok()?;
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    file.write_all(text.as_bytes()).ok()?;
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata().ok()?;
    Some(Position {
        ino: m.ino(),
        offset: m.len(),
    })
}

/// The journal's end now (after a full read of the index).
pub(crate) fn end(root: &Path) -> Position {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(root.join(JOURNAL)).map_or(Position::default(), |m| Position {
        ino: m.ino(),
        offset: m.len(),
    })
}

/// Brings `index` (at stamp `at`) to the stamp `target` by the journal's lines from `pos`;
/// answers the new position when it got there, `None` when only a full read can (then
/// `index` may be partly updated and must be read again).
pub(crate) fn catch_up(
    root: &Path,
    index: &mut DatastoreIndex,
    at: Stamp,
    target: Stamp,
    pos: Position,
) -> Option<Position> {
    use std::os::unix::fs::MetadataExt;
    let (mut at, target) = (key(at)?, key(target)?);
    let mut file = fs::File::open(root.join(JOURNAL)).ok()?;
    let m = file.metadata().ok()?;
    let start = if m.ino() == pos.ino && m.len() >= pos.offset {
        pos.offset
    } else {
        0
    };
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    // Only whole lines: a writer may be mid-append.
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    for text in bytes[..whole].split(|&b| b == b'\n') {
        if at == target {
            break;
        }
        let Ok(line) = serde_json::from_slice::<Line>(text) else {
            continue;
        };
        if line.from != at {
            continue;
        }
        for id in line.del {
            index.objects.remove(&id);
        }
        index.objects.extend(line.set);
        set_meta(index, line.meta);
        at = line.to;
    }
    (at == target).then_some(Position {
        ino: m.ino(),
        offset: start + whole as u64,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn stamp(n: u64) -> Stamp {
        Some((SystemTime::UNIX_EPOCH + Duration::from_secs(n), n, n))
    }

    fn with(ids: &[&str]) -> DatastoreIndex {
        let mut idx = DatastoreIndex::default();
        for id in ids {
            idx.objects.insert((*id).into(), ObjectEntry::default());
        }
        idx
    }

    #[test]
    fn a_reader_applies_the_lines_that_chain_from_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = (with(&["a", "b"]), with(&["b", "c"]));
        let mut v3 = v2.clone();
        v3.name = "renamed".into();
        append(dir.path(), &v1, stamp(1), &v2, stamp(2)).unwrap();
        append(dir.path(), &v2, stamp(2), &v3, stamp(3)).unwrap();
        let mut copy = v1.clone();
        let pos = catch_up(
            dir.path(),
            &mut copy,
            stamp(1),
            stamp(3),
            Position::default(),
        );
        assert!(pos.is_some());
        assert_eq!(copy, v3);
        // From there, nothing new: at the target already.
        assert_eq!(
            catch_up(dir.path(), &mut copy, stamp(3), stamp(3), pos.unwrap()),
            pos
        );
    }

    #[test]
    fn a_gap_or_a_foreign_write_means_a_full_read() {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = (with(&["a"]), with(&["a", "b"]));
        append(dir.path(), &v1, stamp(1), &v2, stamp(2)).unwrap();
        let mut copy = v1.clone();
        // The file is at a stamp no line reaches (another program wrote it).
        assert!(catch_up(
            dir.path(),
            &mut copy,
            stamp(1),
            stamp(9),
            Position::default()
        )
        .is_none());
        // A copy older than any line's start.
        let mut old = with(&[]);
        assert!(catch_up(
            dir.path(),
            &mut old,
            stamp(0),
            stamp(2),
            Position::default()
        )
        .is_none());
        // A torn last line is not applied.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL))
            .unwrap();
        f.write_all(b"{\"from\":").unwrap();
        let mut copy = v1.clone();
        let pos = catch_up(
            dir.path(),
            &mut copy,
            stamp(1),
            stamp(2),
            Position::default(),
        );
        assert!(pos.is_some());
        assert_eq!(copy, v2);
    }
}
