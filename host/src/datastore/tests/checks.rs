//! What the checked store refuses before anything is written: broken or unsupported
//! files, labels off their image's grid, ids that would alias another id's file or not fit
//! a file name, invisible characters; and crash leftovers removed at open.

use super::*;
use ndarray::Array3;
use nifti::writer::WriterOptions;

/// A real `n`³ NIfTI volume (uint8) at `path`, its origin moved `shift` mm along x.
fn volume(path: &Path, n: usize, shift: f32) -> std::path::PathBuf {
    let data = Array3::from_shape_fn((n, n, n), |(i, j, k)| ((i + j + k) % 3) as u8);
    let header = nifti::NiftiHeader {
        sform_code: 1,
        srow_x: [1.0, 0.0, 0.0, shift],
        srow_y: [0.0, 1.0, 0.0, 0.0],
        srow_z: [0.0, 0.0, 1.0, 0.0],
        ..Default::default()
    };
    WriterOptions::new(path)
        .reference_header(&header)
        .write_nifti(&data)
        .expect("write volume");
    path.to_path_buf()
}

/// Every file under the studies folder with its bytes, and the index.
fn snapshot(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("list").filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.ends_with(".lock") && !p.ends_with("index.journal") {
                // (the lock, and the journal: a log of the writes, not their data)
                out.push((p.clone(), fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

fn refused(result: super::super::Result<String>, words: &str) {
    match result {
        Err(DatastoreError::InvalidInput(m)) => assert!(m.contains(words), "{m} lacks {words:?}"),
        other => panic!("expected INVALID_INPUT with {words:?}, got {other:?}"),
    }
}

#[test]
fn broken_unsupported_and_off_grid_files_leave_the_store_as_it_was() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("tempdir"));
    let ds = LocalDatastore::open(dir.path()).expect("open");
    let image = volume(&src.path().join("a.nii.gz"), 6, 0.0);
    ds.add_image("a", &image, Map::new())
        .expect("a real volume");
    let before = snapshot(dir.path());

    let garbage = source(src.path(), "g.nii.gz", b"not gzip");
    refused(ds.add_image("g", &garbage, Map::new()), "gzip");
    let bytes = fs::read(&image).expect("read");
    let cut = source(src.path(), "cut.nii.gz", &bytes[..bytes.len() / 2]);
    refused(ds.add_image("cut", &cut, Map::new()), "gzip");
    let empty = source(src.path(), "e.png", b"");
    refused(ds.add_image("e", &empty, Map::new()), "empty");
    let fake_png = source(src.path(), "f.png", b"GIF89a....");
    refused(ds.add_image("f", &fake_png, Map::new()), "signature");
    let exe = source(src.path(), "x.exe", b"MZ");
    refused(ds.add_image("x", &exe, Map::new()), "unsupported file type");
    refused(ds.save_label("a", &garbage, "final", Map::new()), "gzip");
    let other_dims = volume(&src.path().join("l7.nii.gz"), 7, 0.0);
    refused(ds.save_label("a", &other_dims, "final", Map::new()), "dims");
    let moved = volume(&src.path().join("moved.nii.gz"), 6, 2.0);
    refused(ds.save_label("a", &moved, "final", Map::new()), "affine");
    let png = source(src.path(), "l.png", b"\x89PNG\r\n\x1a\n....");
    refused(
        ds.save_label("a", &png, "final", Map::new()),
        "must be one too",
    );
    assert_eq!(snapshot(dir.path()), before, "nothing written");

    let label = volume(&src.path().join("label.nii.gz"), 6, 0.0);
    ds.save_label("a", &label, "final", Map::new())
        .expect("a label on the image's grid");
    assert_eq!(ds.get_labeled_images(), vec!["a".to_owned()]);
}

#[test]
fn an_id_cannot_alias_another_ids_file() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("tempdir"));
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    let image = source(src.path(), "a.nii.gz", b"stand-in");
    ds.add_image("itk_t1", &image, Map::new()).expect("add");
    ds.save_label("itk_t1", &image, "final", Map::new())
        .expect("label");
    let before = snapshot(dir.path());
    // `itk_t1.nii` + `.gz` would be `itk_t1.nii.gz`: image itk_t1's file.
    let gz = source(src.path(), "x.gz", b"other bytes");
    refused(
        ds.add_image("itk_t1.nii", &gz, Map::new()),
        "the file of id \"itk_t1\"",
    );
    refused(
        ds.add_image("itk_t1.nii", &gz, Map::new()),
        "drop the extension",
    );
    assert_eq!(snapshot(dir.path()), before);
    // A label of another image cannot land on itk_t1's label file either.
    ds.add_image("itk_t1.nii", &image, Map::new())
        .expect("its own file, itk_t1.nii.nii.gz");
    refused(
        ds.save_label("itk_t1.nii", &gz, "final", Map::new()),
        "drop the extension",
    );
    ds.remove_image("itk_t1.nii").expect("remove");
    assert_eq!(snapshot(dir.path()), before, "itk_t1 and its label kept");
}

#[test]
fn long_and_invisible_ids_are_refused_as_input() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("tempdir"));
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    let image = source(src.path(), "a.nii.gz", b"stand-in");
    for n in [249, 255] {
        refused(ds.add_image(&"x".repeat(n), &image, Map::new()), "too long");
    }
    // 240-248 bytes used to fail on the temp file's longer name (a 500).
    for n in [240, 248] {
        ds.add_image(&"x".repeat(n), &image, Map::new())
            .expect("a file name of at most 255 bytes fits");
    }
    for id in [
        "a\u{202E}gpj.exe",
        "tab\there",
        "bell\u{7}",
        "isolate\u{2066}",
    ] {
        refused(
            ds.add_image(id, &image, Map::new()),
            "control or text-direction",
        );
    }
}

#[test]
fn crash_leftovers_are_removed_at_open() {
    let dir = tempdir().expect("tempdir");
    drop(LocalDatastore::open(dir.path()).expect("open"));
    // Writers create temp files only while holding the folder's lock, which open takes:
    // whatever it finds is a crash's (any pid, this one's included).
    let leftovers = [
        dir.path().join(".labelhost-tmp-4000000000-1"),
        dir.path().join("labels/final/.labelhost-tmp-4000000000-2"),
        dir.path()
            .join(format!(".labelhost-tmp-{}-0", std::process::id())),
    ];
    for file in &leftovers {
        put(file, b"half a copy");
    }
    let ds = LocalDatastore::open(dir.path()).expect("open");
    for file in &leftovers {
        assert!(!file.exists(), "{}", file.display());
    }
    // A temp name left by a crashed process with this pid does not block a write.
    put(
        &dir.path()
            .join(format!(".labelhost-tmp-{}-1", std::process::id())),
        b"x",
    );
    ds.set_name("still writes").expect("index write");
}

#[test]
fn info_cannot_grow_past_its_limit_and_a_refused_merge_changes_nothing() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("tempdir"));
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    let image = source(src.path(), "a.nii.gz", b"stand-in");
    ds.add_image("a", &image, Map::new()).expect("add");
    let chunk = |k: &str| map(json!({ k: "x".repeat(100 << 10) }));
    ds.update_image_info("a", chunk("one")).expect("100 KiB");
    ds.update_image_info("a", chunk("two")).expect("200 KiB");
    let (before, _) = read_index(dir.path());
    match ds.update_image_info("a", chunk("three")) {
        Err(DatastoreError::InvalidInput(m)) => assert!(m.contains("over the limit"), "{m}"),
        other => panic!("a 300 KiB info was kept: {other:?}"),
    }
    assert_eq!(read_index(dir.path()).0, before, "the index is unchanged");
    assert!(ds.get_image_info("a").expect("info").get("three").is_none());
    refused(
        ds.save_label(
            "a",
            &image,
            "final",
            chunk("big")
                .into_iter()
                .chain(chunk("bigger"))
                .chain(chunk("biggest"))
                .collect(),
        ),
        "over the limit",
    );
}

#[test]
fn the_info_of_all_entries_together_is_bounded() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("tempdir"));
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    let image = source(src.path(), "a.nii.gz", b"stand-in");
    for id in ["a", "b", "c"] {
        ds.add_image(id, &image, Map::new()).expect("add");
        ds.update_image_info(id, map(json!({"note": "x".repeat(200 << 10)})))
            .expect("200 KiB each");
    }
    let index = ds.lock().index.clone();
    assert!(
        crate::datastore::checks::total_info_size(&index, 1 << 20).is_ok(),
        "600 KiB of 1 MiB"
    );
    match crate::datastore::checks::total_info_size(&index, 512 << 10) {
        Err(DatastoreError::InvalidInput(m)) => {
            assert!(m.contains("in all, over the limit"), "{m}")
        }
        other => panic!("600 KiB passed a 512 KiB limit: {other:?}"),
    }
    // Only a merge that makes an info larger is checked against the total.
    let mut info = map(json!({"note": "x".repeat(1000)}));
    let merge = crate::datastore::checks::merge_info;
    assert!(!merge(&mut info, map(json!({"note": "short"}))).expect("smaller"));
    assert!(merge(&mut info, map(json!({"more": 1}))).expect("larger"));
}

#[test]
fn links_in_the_studies_folder_are_indexed_but_not_read_unless_followed() {
    let (dir, src) = (tempdir().expect("tempdir"), tempdir().expect("tempdir"));
    let secret = source(src.path(), "secret.txt", b"not for clients");
    std::os::unix::fs::symlink(&secret, dir.path().join("evil.nii.gz")).expect("link");
    let outside = src.path().join("tags");
    put(&outside.join("plain.nii.gz"), b"label bytes");
    put(&dir.path().join("plain.nii.gz"), b"image bytes");
    fs::create_dir_all(dir.path().join("labels")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, dir.path().join("labels/linked")).expect("link");
    let ds = LocalDatastore::open_unchecked(dir.path()).expect("open");
    assert!(
        ds.list_images().contains(&"evil".to_owned()),
        "the index keeps it"
    );
    match ds.get_image("evil") {
        Err(DatastoreError::InvalidInput(m)) => assert!(m.contains("--follow-symlinks"), "{m}"),
        other => panic!("a planted link was read: {other:?}"),
    }
    assert!(
        ds.get_label_uri("plain", "linked").is_err(),
        "a linked label folder"
    );
    assert_eq!(ds.get_image("plain").expect("a plain file"), b"image bytes");
    ds.set_follow_links(true);
    assert_eq!(ds.get_image("evil").expect("followed"), b"not for clients");
    assert_eq!(
        ds.get_label("plain", "linked").expect("followed"),
        b"label bytes"
    );
}
