//! Unit tests of id/tag validation, unsafe index entries and file-name splitting.

use std::fs;

use serde_json::{json, Map};
use tempfile::tempdir;

use super::super::ids::{file_ext, is_image_name, split_name};
use super::super::{DatastoreError, LocalDatastore};
use super::{put, read_index, source};

#[test]
fn bad_ids_and_tags_are_rejected() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("src"));
    let root = dir.path().join("studies");
    let ds = LocalDatastore::open_unchecked(&root).expect("open");
    let file = source(src.path(), "f.nii", b"F");
    ds.add_image("ok", &file, Map::new()).expect("add");
    let long = "x".repeat(256);
    for bad in [
        "../x",
        "a/b",
        "",
        ".hidden",
        "..",
        "a\\b",
        "a\0b",
        long.as_str(),
    ] {
        let err = ds.add_image(bad, &file, Map::new());
        match err {
            Err(DatastoreError::InvalidInput(msg)) => {
                assert!(msg.contains(&format!("{bad:?}")), "{msg}")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        let e = ds.save_label("ok", &file, bad, Map::new());
        assert!(matches!(e, Err(DatastoreError::InvalidInput(_))), "{bad:?}");
        assert!(matches!(
            ds.get_image_uri(bad),
            Err(DatastoreError::InvalidInput(_))
        ));
        assert!(matches!(
            ds.remove_label_by_tag(bad),
            Err(DatastoreError::InvalidInput(_))
        ));
    }
    assert!(!dir.path().join("x.nii").exists() && !dir.path().join("labels").exists());
    let json_src = source(src.path(), "x.json", b"{}");
    let e = ds.add_image("datastore_v2", &json_src, Map::new());
    assert!(matches!(e, Err(DatastoreError::InvalidInput(_))), "{e:?}");
    let bare = source(src.path(), "noext", b"N");
    let e = ds.add_image("labels", &bare, Map::new());
    assert!(matches!(e, Err(DatastoreError::InvalidInput(_))), "{e:?}");
    assert!(read_index(&root).1["objects"]["ok"].is_object());
    assert_eq!(ds.list_images(), vec!["ok"]);
}

#[test]
fn unknown_image_or_label_is_not_found() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("src"));
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    let file = source(src.path(), "l.nrrd", b"L");
    let e = ds.save_label("ghost", &file, "final", Map::new());
    assert!(matches!(e, Err(DatastoreError::NotFound(_))), "{e:?}");
    assert!(!dir.path().join("labels/final/ghost.nrrd").exists());
    assert!(matches!(
        ds.get_image("ghost"),
        Err(DatastoreError::NotFound(_))
    ));
    assert!(matches!(
        ds.get_label_info("ghost", "final"),
        Err(DatastoreError::NotFound(_))
    ));
    let upd = ds.update_label_info("ghost", "final", Map::new());
    assert!(matches!(upd, Err(DatastoreError::NotFound(_))));
}

#[test]
fn unsafe_index_entries_are_refused() {
    let dir = tempdir().expect("tempdir");
    let root = dir.path().join("s");
    put(&root.join("a.nii"), b"A");
    fs::create_dir_all(root.join("labels/final/a")).expect("decoy dir");
    let evil = json!({"objects": {"a": {"image": {"ext": ".nii", "info": {}},
        "labels": {"final": {"ext": "/../../../a.nii", "info": {}}}}}});
    put(&root.join("datastore_v2.json"), evil.to_string().as_bytes());
    let ds = LocalDatastore::open_unchecked(&root).expect("open");
    assert!(ds.get_labels_by_image_id("a").expect("labels").is_empty());
    put(
        &root.join("datastore_v2.json"),
        br#"{"images_dir": "../out"}"#,
    );
    let e = LocalDatastore::open_unchecked(&root);
    assert!(matches!(e, Err(DatastoreError::InvalidInput(_))));
}

#[test]
fn file_names_split_like_monai_label() {
    let split = |n: &str| split_name(n).map(|(a, b)| format!("{a}|{b}"));
    assert_eq!(split("a.nii.gz").as_deref(), Some("a|.nii.gz"));
    assert_eq!(split("a.seg.nrrd").as_deref(), Some("a|.seg.nrrd"));
    assert_eq!(split("1.2.840.nii").as_deref(), Some("1.2.840|.nii"));
    assert_eq!(split("x.tar.gz").as_deref(), Some("x|.tar.gz"));
    assert_eq!(file_ext("x.averyverylongsuffix.gz"), ".gz");
    assert_eq!(file_ext("noext"), "");
    assert!(is_image_name("a.svs") && !is_image_name("A.NII") && !is_image_name(".a.nii"));
}
