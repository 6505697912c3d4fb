//! Interactive segmentation: scribbles on a real brain.

use crate::support::{
    cache_dir, client, dice, pack_first_party, read_volume, write_like, Workspace,
};
use ndarray::{ArrayD, Axis, Ix2};
use std::collections::VecDeque;
use std::path::Path;

/// City-block distance (in one slice) of each voxel to the other side of `inside`.
fn distance_to_edge(inside: &ndarray::Array2<bool>) -> ndarray::Array2<u32> {
    let (a, b) = inside.dim();
    let mut dist = ndarray::Array2::from_elem((a, b), u32::MAX);
    let mut queue = VecDeque::new();
    for ((i, j), &v) in inside.indexed_iter() {
        let edge = [(0i64, 1i64), (0, -1), (1, 0), (-1, 0)]
            .iter()
            .any(|(di, dj)| {
                let (x, y) = (i as i64 + di, j as i64 + dj);
                x >= 0
                    && y >= 0
                    && (x as usize) < a
                    && (y as usize) < b
                    && inside[[x as usize, y as usize]] != v
            });
        if edge {
            dist[[i, j]] = 0;
            queue.push_back((i, j));
        }
    }
    while let Some((i, j)) = queue.pop_front() {
        for (di, dj) in [(0i64, 1i64), (0, -1), (1, 0), (-1, 0)] {
            let (x, y) = (i as i64 + di, j as i64 + dj);
            if x < 0 || y < 0 || x as usize >= a || y as usize >= b {
                continue;
            }
            let (x, y) = (x as usize, y as usize);
            if inside[[x, y]] == inside[[i, j]] && dist[[x, y]] == u32::MAX {
                dist[[x, y]] = dist[[i, j]] + 1;
                queue.push_back((x, y));
            }
        }
    }
    dist
}

/// An annotator's strokes from the reference mask: on four axial and four coronal slices
/// (at 35-75 % of each axis), a foreground line `inner` voxels inside the brain's outline and
/// a background line `outer` voxels outside.
fn scribbles(mask: &ArrayD<f32>, inner: u32, outer: u32) -> ArrayD<u8> {
    let mut s = ArrayD::<u8>::zeros(mask.shape());
    for axis in [2usize, 1] {
        let n = mask.shape()[axis];
        for k in [35, 48, 61, 74].map(|pct| n * pct / 100) {
            let slice = mask
                .index_axis(Axis(axis), k)
                .into_dimensionality::<Ix2>()
                .expect("2-D");
            let inside = slice.mapv(|v| v > 0.0);
            let dist = distance_to_edge(&inside);
            let mut out = s.index_axis_mut(Axis(axis), k);
            for ((i, j), &d) in dist.indexed_iter() {
                let (x, y) = (i, j);
                if inside[[x, y]] && d == inner {
                    out[[x, y]] = 3;
                } else if !inside[[x, y]] && d == outer {
                    out[[x, y]] = 2;
                }
            }
        }
    }
    s
}

fn infer_with_label(
    server: &crate::support::Server,
    image: &str,
    label: &Path,
    params: &str,
) -> reqwest::blocking::Response {
    let form = reqwest::blocking::multipart::Form::new()
        .text("params", params.to_owned())
        .part(
            "label",
            reqwest::blocking::multipart::Part::bytes(std::fs::read(label).expect("label"))
                .file_name("scribbles.nii.gz"),
        );
    client()
        .post(server.at(&format!(
            "/infer/brain_scribbles?image={image}&output=image"
        )))
        .multipart(form)
        .send()
        .expect("infer")
}

#[test]
fn scribbles_inside_and_outside_the_brain_segment_ch2() {
    let ws = Workspace::new(0, 8);
    let data = cache_dir().join("data");
    let image = ws.studies().join("ch2.nii.gz");
    std::fs::copy(data.join("ch2.nii.gz"), &image).expect("data (scripts/setup.sh)");
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let reference = read_volume(&data.join("ch2bet.nii.gz"));
    let strokes = scribbles(&reference, 8, 6);
    let file = ws.dir.path().join("scribbles.nii.gz");
    write_like(&image, &file, &strokes);
    let started = std::time::Instant::now();
    let r = infer_with_label(&server, "ch2", &file, "{}");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let seconds = started.elapsed().as_secs_f64();
    let out = ws.dir.path().join("brain.nii.gz");
    std::fs::write(&out, r.bytes().expect("label")).expect("write");
    let d = dice(&read_volume(&out), &reference);
    let scribbled = strokes.iter().filter(|&&v| v != 0).count();
    println!("scribbles ({scribbled} voxels) → Dice {d:.4} against ch2bet in {seconds:.1} s");
    assert!(d >= 0.8, "Dice {d:.4} < 0.8");

    // Other scribble values, named by the params.
    let swapped = strokes.mapv(|v| match v {
        3 => 7,
        2 => 5,
        v => v,
    });
    write_like(&image, &file, &swapped);
    let r = infer_with_label(
        &server,
        "ch2",
        &file,
        r#"{"scribbles_fg_label": 7, "scribbles_bg_label": 5}"#,
    );
    assert_eq!(r.status(), 200);
    std::fs::write(&out, r.bytes().expect("label")).expect("write");
    assert!((dice(&read_volume(&out), &reference) - d).abs() < 1e-9);
    // Foreground strokes alone cannot be told from the background: a 400 saying so.
    let fg_only = strokes.mapv(|v| if v == 2 { 0 } else { v });
    write_like(&image, &file, &fg_only);
    let r = infer_with_label(&server, "ch2", &file, "{}");
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap_or_default().contains("background"));

    // Refining a previous label: the saved `original` is the reference plus a block grown
    // out of the top of the brain; a background stroke across the block and one
    // foreground stroke remove it and keep the rest.
    let shape = reference.shape().to_vec();
    let (ci, cj) = (shape[0] / 2, shape[1] / 2);
    let top = (0..shape[2])
        .rev()
        .find(|&k| reference[[ci, cj, k]] > 0.0)
        .expect("brain");
    let in_block = |i: usize, j: usize, k: usize| {
        i.abs_diff(ci) <= 10 && j.abs_diff(cj) <= 10 && k + 5 >= top && k <= top + 14
    };
    let previous = ArrayD::from_shape_fn(shape.clone(), |ix| {
        u8::from(reference[&ix] > 0.0 || in_block(ix[0], ix[1], ix[2]))
    });
    let previous_file = ws.dir.path().join("previous.nii.gz");
    write_like(&image, &previous_file, &previous);
    crate::support::put_label(&server, "ch2", "original", &previous_file);
    let mut strokes = ArrayD::<u8>::zeros(shape.clone());
    for i in ci - 8..=ci + 8 {
        strokes[[i, cj, top + 9]] = 2;
        strokes[[i, cj, top - 30]] = 3;
    }
    write_like(&image, &file, &strokes);
    let r = infer_with_label(&server, "ch2", &file, r#"{"previous_label": "original"}"#);
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    std::fs::write(&out, r.bytes().expect("label")).expect("write");
    let refined = read_volume(&out);
    let block_outside: Vec<_> = refined
        .indexed_iter()
        .filter(|(ix, _)| in_block(ix[0], ix[1], ix[2]) && reference[ix.clone()] == 0.0)
        .map(|(_, &v)| v)
        .collect();
    let left =
        block_outside.iter().filter(|&&v| v > 0.0).count() as f64 / block_outside.len() as f64;
    let before = dice(&previous.mapv(f32::from), &reference);
    let after = dice(&refined, &reference);
    println!(
        "refined: {:.0} % of the block left, Dice {before:.4} → {after:.4}",
        100.0 * left
    );
    assert!(left < 0.2, "{:.0} % of the block is left", 100.0 * left);
    // Two strokes cannot make it better than a near-perfect previous label; the rest of it
    // is kept.
    assert!(after >= 0.95, "Dice {before:.4} → {after:.4}");

    // The same kind of strokes on another scanner's T1 (128×128×62, defaults untuned).
    let kmeans = ws.studies().join("kmeans.nii.gz");
    std::fs::copy(data.join("KmeansTest_T1UCharRaw.nii.gz"), &kmeans).expect("data");
    let reference = read_volume(&data.join("KmeansTest_T1RawSkullStrip.nii.gz"));
    write_like(&kmeans, &file, &scribbles(&reference, 4, 3));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while crate::support::get_json(&server, "/datastore/?output=stats")["total"] != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "kmeans never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = infer_with_label(&server, "kmeans", &file, "{}");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    std::fs::write(&out, r.bytes().expect("label")).expect("write");
    let d = dice(&read_volume(&out), &reference);
    println!("KmeansTest T1 → Dice {d:.4} against its skull strip");
    assert!(d >= 0.8, "Dice {d:.4} < 0.8");
}
