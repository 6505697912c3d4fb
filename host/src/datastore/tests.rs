//! Unit tests of the local datastore (index round trip, images, labels, reconcile, validation).

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};
use tempfile::tempdir;

use super::{DatastoreError, LocalDatastore};

mod checks;
mod validation;

fn put(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, bytes).expect("write");
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn read_index(root: &Path) -> (String, Value) {
    let text = fs::read_to_string(root.join("datastore_v2.json")).expect("index");
    let value = serde_json::from_str(&text).expect("index parses");
    (text, value)
}

/// A source file named `name` in a separate folder, holding `bytes`.
fn source(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    put(&p, bytes);
    p
}

const MONAI_INDEX: &str = r#"{
  "name": "spleen",
  "description": "Spleen CT",
  "images_dir": ".",
  "labels_dir": "labels",
  "version": 7,
  "objects": {
    "a": {
      "image": {"ext": ".nii.gz", "info": {"ts": 1642170799, "name": "a.nii.gz", "strategy": {"random": {"ts": 1, "client_id": "u"}}}},
      "labels": {"final": {"ext": ".nrrd", "info": {"ts": 0, "name": "a.nrrd", "label_info": [{"name": "spleen", "idx": 1}]}}},
      "custom_obj": true
    },
    "b": {"image": {"ext": ".nii", "info": {"ts": 2, "name": "b.nii"}}, "labels": {}}
  }
}"#;

#[test]
fn monai_index_round_trips_with_unknown_fields() {
    let dir = tempdir().expect("tempdir");
    let root = dir.path();
    put(&root.join("a.nii.gz"), b"A");
    put(&root.join("b.nii"), b"B");
    put(&root.join("labels/final/a.nrrd"), b"LA");
    put(&root.join("datastore_v2.json"), MONAI_INDEX.as_bytes());
    let original: Value = serde_json::from_str(MONAI_INDEX).expect("parse");

    let ds = LocalDatastore::open_unchecked(root).expect("open");
    assert_eq!(ds.json(), original);
    assert_eq!(
        read_index(root).1,
        original,
        "nothing changed, nothing rewritten"
    );
    assert_eq!(ds.name(), "spleen");
    assert_eq!(ds.list_images(), vec!["a", "b"]);
    let info = ds.get_label_info("a", "final").expect("label info");
    assert_eq!(info["label_info"][0]["name"], "spleen");

    ds.set_description("changed").expect("set");
    let (_, on_disk) = read_index(root);
    assert_eq!(on_disk["version"], 7);
    assert_eq!(on_disk["objects"]["a"]["custom_obj"], true);
    assert_eq!(on_disk["description"], "changed");
    assert_eq!(
        on_disk["objects"]["a"]["image"]["info"]["strategy"]["random"]["client_id"],
        "u"
    );
}

#[test]
fn fresh_store_has_defaults_and_two_space_index() {
    let dir = tempdir().expect("tempdir");
    let root = dir.path().join("studies");
    let ds = LocalDatastore::open_unchecked(&root).expect("open");
    assert!(root.join("labels").is_dir());
    assert_eq!(ds.name(), "new-dataset");
    assert_eq!(ds.description(), "New Dataset");
    ds.set_name("mine").expect("set name");

    let (text, value) = read_index(&root);
    let second = text.lines().nth(1).expect("second line");
    assert!(
        second.starts_with("  \"") && !second.starts_with("   "),
        "{second:?}"
    );
    assert_eq!(value["images_dir"], ".");
    assert_eq!(value["labels_dir"], "labels");
    assert_eq!(value["objects"], json!({}));
    assert_eq!(
        LocalDatastore::open_unchecked(&root)
            .expect("reopen")
            .name(),
        "mine"
    );
    let temps = fs::read_dir(&root).expect("ls").flatten();
    assert!(temps
        .into_iter()
        .all(|e| !e.file_name().to_string_lossy().contains(".tmp-")));
}

#[test]
fn add_and_remove_image() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("src"));
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    let file = source(src.path(), "upload.nii.gz", b"IMG");
    let id = ds
        .add_image("img1", &file, map(json!({"user": "bob"})))
        .expect("add");
    assert_eq!(id, "img1");
    assert_eq!(
        ds.get_image_uri("img1").expect("uri"),
        ds.root().join("img1.nii.gz")
    );
    assert_eq!(ds.get_image("img1").expect("bytes"), b"IMG");
    let info = ds.get_image_info("img1").expect("info");
    assert_eq!(info["name"], "img1.nii.gz");
    assert_eq!(info["user"], "bob");
    assert!(info["ts"].as_u64().expect("ts") > 1_600_000_000);

    // Replacing with another extension removes the old file.
    let other = source(src.path(), "x.nrrd", b"IMG2");
    ds.add_image("img1", &other, Map::new()).expect("replace");
    assert!(!ds.root().join("img1.nii.gz").exists());
    assert_eq!(fs::read(ds.root().join("img1.nrrd")).expect("new"), b"IMG2");

    let label = source(src.path(), "l.nii.gz", b"L");
    ds.save_label("img1", &label, "final", Map::new())
        .expect("label");
    ds.remove_image("img1").expect("remove");
    assert!(!ds.root().join("img1.nrrd").exists());
    assert!(!ds.root().join("labels/final/img1.nii.gz").exists());
    assert!(ds.list_images().is_empty());
    assert_eq!(read_index(ds.root()).1["objects"], json!({}));
    assert!(matches!(
        ds.remove_image("img1"),
        Err(DatastoreError::NotFound(_))
    ));
}

#[test]
fn save_label_replaces_other_extension() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("src"));
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    ds.add_image("ct", &source(src.path(), "ct.nii.gz", b"I"), Map::new())
        .expect("add");

    let first = source(src.path(), "pred.nii.gz", b"L1");
    let info = map(json!({"model": "seg", "ts": 5}));
    assert_eq!(
        ds.save_label("ct", &first, "final", info).expect("save"),
        "ct"
    );
    assert!(ds.root().join("labels/final/ct.nii.gz").is_file());
    assert_eq!(
        ds.get_label_info("ct", "final").expect("info")["model"],
        "seg"
    );

    let second = source(src.path(), "pred.seg.nrrd", b"L2");
    ds.save_label("ct", &second, "final", Map::new())
        .expect("save again");
    assert!(!ds.root().join("labels/final/ct.nii.gz").exists());
    assert_eq!(ds.get_label("ct", "final").expect("bytes"), b"L2");
    let info = ds.get_label_info("ct", "final").expect("info");
    assert_eq!(info["name"], "ct.seg.nrrd");
    assert_ne!(info["ts"], 5);
    assert_eq!(
        read_index(ds.root()).1["objects"]["ct"]["labels"]["final"]["ext"],
        ".seg.nrrd"
    );
    assert_eq!(
        ds.get_label_by_image_id("ct", "final").as_deref(),
        Some("ct")
    );
    assert_eq!(ds.get_label_by_image_id("ct", "original"), None);

    ds.remove_label("ct", "final").expect("remove label");
    assert!(!ds.root().join("labels/final/ct.seg.nrrd").exists());
    assert!(matches!(
        ds.remove_label("ct", "final"),
        Err(DatastoreError::NotFound(_))
    ));
}

#[test]
fn labeled_unlabeled_status_and_datalist() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("src"));
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    let img = source(src.path(), "i.png", b"I");
    let lab = source(src.path(), "l.png", b"L");
    for id in ["c", "a", "b"] {
        ds.add_image(id, &img, Map::new()).expect("add");
    }
    ds.save_label("a", &lab, "final", Map::new())
        .expect("final");
    ds.save_label("a", &lab, "original", Map::new())
        .expect("orig a");
    ds.save_label("b", &lab, "original", Map::new())
        .expect("orig b");

    assert_eq!(ds.list_images(), vec!["a", "b", "c"]);
    assert_eq!(ds.get_labeled_images(), vec!["a"]);
    assert_eq!(ds.get_unlabeled_images(), vec!["b", "c"]);
    let expected = json!({"total": 3, "completed": 1, "label_tags": {"final": 1, "original": 2}});
    assert_eq!(ds.status(), expected);
    let labels = ds.get_labels_by_image_id("a").expect("labels");
    assert_eq!(
        Value::Object(labels),
        json!({"final": "a", "original": "a"})
    );

    let list = ds.datalist();
    assert_eq!(list.len(), 1);
    let image = list[0]["image"].as_str().expect("image");
    let label = list[0]["label"].as_str().expect("label");
    assert!(Path::new(image).is_absolute() && Path::new(image).is_file());
    assert!(label.ends_with("labels/final/a.png") && Path::new(label).is_file());

    ds.remove_label_by_tag("original").expect("by tag");
    assert!(!ds.root().join("labels/original").exists());
    assert_eq!(ds.status()["label_tags"], json!({"final": 1}));
}

#[test]
fn refresh_picks_up_and_drops_hand_made_changes() {
    let dir = tempdir().expect("tempdir");
    let root = dir.path();
    let ds = LocalDatastore::open_unchecked(root).expect("open");
    put(&root.join("new.nii.gz"), b"N");
    put(&root.join("notes.txt"), b"x");
    put(&root.join(".hidden.nii"), b"x");
    put(&root.join("UPPER.NII"), b"x");
    fs::create_dir_all(root.join("dir.nii")).expect("dir");
    put(&root.join("labels/final/new.seg.nrrd"), b"L");
    put(&root.join("labels/final/orphan.nrrd"), b"L");
    ds.refresh().expect("refresh");

    assert_eq!(ds.list_images(), vec!["new"]);
    let info = ds.get_image_info("new").expect("info");
    assert_eq!(info["name"], "new.nii.gz");
    assert!(info["ts"].as_u64().expect("ts") > 0);
    assert_eq!(
        ds.get_label_info("new", "final").expect("label")["name"],
        "new.seg.nrrd"
    );
    assert_eq!(
        read_index(root).1["objects"]["new"]["labels"]["final"]["ext"],
        ".seg.nrrd"
    );

    fs::remove_file(root.join("labels/final/new.seg.nrrd")).expect("rm label");
    ds.refresh().expect("refresh");
    assert!(ds.get_labeled_images().is_empty());
    fs::remove_file(root.join("new.nii.gz")).expect("rm image");
    ds.refresh().expect("refresh");
    assert!(ds.list_images().is_empty());
    assert_eq!(read_index(root).1["objects"], json!({}));
}

#[test]
fn refresh_reloads_index_edited_on_disk() {
    let dir = tempdir().expect("tempdir");
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    let path = dir.path().join("datastore_v2.json");
    let (_, mut value) = read_index(dir.path());
    value["name"] = json!("edited");
    fs::write(&path, serde_json::to_string_pretty(&value).expect("ser")).expect("write");
    let later = SystemTime::now() + Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(&path)
        .expect("open")
        .set_modified(later)
        .expect("mtime");
    ds.refresh().expect("refresh");
    assert_eq!(ds.name(), "edited");
}

#[test]
fn update_image_info_is_a_shallow_merge() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("src"));
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    let file = source(src.path(), "i.jpg", b"I");
    ds.add_image("i", &file, map(json!({"a": 1, "b": {"x": 1}})))
        .expect("add");
    ds.update_image_info("i", map(json!({"b": {"y": 2}, "c": 3})))
        .expect("update");
    let info = ds.get_image_info("i").expect("info");
    assert_eq!(
        (info["a"].clone(), info["b"].clone(), info["c"].clone()),
        (json!(1), json!({"y": 2}), json!(3))
    );
    assert_eq!(info["name"], "i.jpg");
    let reopened = LocalDatastore::open_unchecked(dir.path()).expect("reopen");
    assert_eq!(reopened.get_image_info("i").expect("info")["c"], 3);
    let e = ds.update_image_info("nope", Map::new());
    assert!(matches!(e, Err(DatastoreError::NotFound(_))));
}

#[test]
fn concurrent_adds_are_all_kept() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("src"));
    let ds = Arc::new(LocalDatastore::open_unchecked(dir.path()).expect("open"));
    let file = source(src.path(), "i.png", b"I");
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let (ds, file) = (Arc::clone(&ds), file.clone());
            std::thread::spawn(move || {
                for i in 0..5 {
                    ds.add_image(&format!("t{t}_{i}"), &file, Map::new())
                        .expect("add");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("join");
    }
    assert_eq!(ds.list_images().len(), 20);
    assert_eq!(
        read_index(dir.path()).1["objects"]
            .as_object()
            .map(Map::len),
        Some(20)
    );
}

#[test]
fn two_processes_writing_at_once_lose_no_update() {
    // Two instances on one folder stand for two processes: each has its own in-memory
    // index, and the `.lock` file (flock per open file) serialises them.
    let dir = tempfile::tempdir().expect("tempdir");
    let a = LocalDatastore::open_unchecked(dir.path()).expect("open a");
    let img = dir.path().join("src.nii.gz");
    std::fs::write(&img, b"not really an image").expect("write");
    a.add_image("x", &img, Map::new()).expect("add");
    let b = LocalDatastore::open_unchecked(dir.path()).expect("open b");
    std::thread::scope(|s| {
        for (store, who) in [(&a, "a"), (&b, "b")] {
            s.spawn(move || {
                for i in 0..40 {
                    let mut info = Map::new();
                    info.insert(format!("{who}{i}"), Value::from(i));
                    store.update_image_info("x", info).expect("update");
                }
            });
        }
    });
    let fresh = LocalDatastore::open_unchecked(dir.path()).expect("reopen");
    let info = fresh.get_image_info("x").expect("info");
    for who in ["a", "b"] {
        for i in 0..40 {
            assert!(
                info.contains_key(&format!("{who}{i}")),
                "lost update {who}{i}"
            );
        }
    }
    // Each kept up by the other's journal lines: the same index as a full read.
    assert_eq!(a.json(), fresh.json());
    assert_eq!(b.json(), fresh.json());
}

#[test]
fn a_write_by_another_program_is_read_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = LocalDatastore::open_unchecked(dir.path()).expect("open a");
    let b = LocalDatastore::open_unchecked(dir.path()).expect("open b");
    a.set_name("by a").expect("name");
    assert_eq!(b.name(), "by a", "through the journal");
    // Another program (MONAI Label, an editor) writes the index and no journal line.
    let (text, _) = read_index(dir.path());
    let text = text.replace("by a", "by hand");
    std::thread::sleep(Duration::from_millis(20));
    fs::write(dir.path().join("datastore_v2.json"), text).expect("write");
    assert_eq!(b.name(), "by hand");
    assert_eq!(a.name(), "by hand");
    // And the journal goes on from there.
    b.set_description("by b").expect("description");
    assert_eq!(a.description(), "by b");
}
