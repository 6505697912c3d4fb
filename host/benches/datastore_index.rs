//! What sharing one studies folder costs each host: `datastore_v2.json` of 4000 images
//! (each with a final label) written by one `LocalDatastore` and re-read by another (as
//! a second host over the same folder does at its next read), against parsing the same
//! bytes as a plain `serde_json::Value` in the same process.
//!
//! `cargo bench -p labelhost --bench datastore_index`

use labelhost::datastore::LocalDatastore;
use std::time::Instant;

const IMAGES: usize = 4000;
const ROUNDS: usize = 40;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let vol = ndarray::Array3::<f32>::from_elem((4, 4, 4), 1.0);
    let img = root.join("one.nii.gz");
    nifti::writer::WriterOptions::new(&img)
        .write_nifti(&vol)
        .expect("volume");
    let label = root.join("label.nii.gz");
    nifti::writer::WriterOptions::new(&label)
        .write_nifti(&vol.mapv(|_| 1u8))
        .expect("label");
    let studies = root.join("studies");
    let writer = LocalDatastore::open(&studies).expect("open");
    for i in 0..IMAGES {
        let id = format!("img{i:04}");
        writer
            .add_image(&id, &img, serde_json::Map::new())
            .expect("add");
        writer
            .save_label(&id, &label, "final", serde_json::Map::new())
            .expect("label");
    }
    let reader = LocalDatastore::open(&studies).expect("open");
    let bytes = std::fs::read(studies.join("datastore_v2.json")).expect("index");

    let (mut write, mut reread, mut plain) = (0.0, 0.0, 0.0);
    for round in 0..ROUNDS {
        let t = Instant::now();
        writer.set_name(&format!("round {round}")).expect("write");
        write += t.elapsed().as_secs_f64();
        let t = Instant::now();
        assert_eq!(reader.name(), format!("round {round}"), "re-read");
        reread += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        plain += t.elapsed().as_secs_f64();
        assert!(v["objects"].is_object());
    }
    let ms = |s: f64| 1000.0 * s / ROUNDS as f64;
    println!(
        "datastore_v2.json of {IMAGES} images ({} KiB): write {:.2} ms, re-read by another \
         store {:.2} ms, serde_json::Value parse {:.2} ms; re-read / Value parse = {:.2}",
        bytes.len() / 1024,
        ms(write),
        ms(reread),
        ms(plain),
        reread / plain
    );
}
