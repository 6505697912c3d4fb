//! `labelhost datastore`: a studies folder's counts, and images with their labels copied in
//! (checked as uploads are; a folder's DICOM series each become one NIfTI image) or out (as
//! a Decathlon-style dataset folder), without a server.
//! A server on the same folder sees the changes at its next poll; the datastore's file lock
//! keeps the two from writing the index at once.

use super::progress;
use crate::{
    config::{DatastoreAction, DatastoreArgs},
    datastore::{ids, LocalDatastore},
    Error, Result,
};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Runs the datastore verb `args` names.
pub fn run(args: &DatastoreArgs) -> Result<()> {
    if !args.studies.is_dir() {
        return Err(Error::BadRequest(format!(
            "--studies {} is not a folder",
            args.studies.display()
        )));
    }
    let store = LocalDatastore::open(&args.studies)?;
    match &args.action {
        DatastoreAction::Stats { json } => stats(&store, *json),
        DatastoreAction::Import {
            sources,
            labels,
            tag,
            replace,
            filters,
            dicomweb_credentials,
        } => {
            let web = Web::new(filters, dicomweb_credentials.as_deref())?;
            import(&store, sources, &web, labels.as_deref(), tag, *replace)
        }
        DatastoreAction::Export {
            out,
            tag,
            labelled_only,
        } => export(&store, out, tag, *labelled_only),
    }
}

/// Images, how many have a `final` label, labels per tag.
fn stats(store: &LocalDatastore, as_json: bool) -> Result<()> {
    let status = store.status();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
        return Ok(());
    }
    let count = |k: &str| status[k].as_u64().unwrap_or(0);
    let (total, done) = (count("total"), count("completed"));
    println!("studies: {}", store.root().display());
    println!(
        "images:  {total} ({done} labelled final, {} not)",
        total - done
    );
    let tags: Vec<String> = status["label_tags"]
        .as_object()
        .map(|m| m.iter().map(|(t, n)| format!("{t} {n}")).collect())
        .unwrap_or_default();
    println!(
        "labels:  {}",
        if tags.is_empty() {
            "none".into()
        } else {
            tags.join(", ")
        }
    );
    Ok(())
}

/// What one image is imported from.
enum Source {
    /// An image file.
    File(PathBuf),
    /// A DICOM series: its instances (the image's id is the series UID).
    Series(String, Vec<PathBuf>),
    /// A series on a DICOMweb server.
    Remote(
        std::sync::Arc<crate::dicom::DicomWeb>,
        crate::dicom::SeriesRef,
    ),
}

impl Source {
    fn label(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Series(uid, files) => format!("DICOM series {uid} ({} files)", files.len()),
            Source::Remote(_, s) => format!("DICOMweb series {} ({})", s.series_uid, s.modality),
        }
    }
}

/// How DICOMweb sources are searched: QIDO-RS filters and credentials.
struct Web {
    filters: Vec<(String, String)>,
    basic: Option<(String, String)>,
}

impl Web {
    fn new(filters: &[String], credentials: Option<&str>) -> Result<Self> {
        Ok(Web {
            filters: crate::config::key_values("--filter", filters)?,
            basic: crate::config::credentials("DICOMweb credentials", credentials)?,
        })
    }
}

/// The images of `sources`: each file as given; in each folder, its image files (by name:
/// `.nii`, `.nii.gz`, `.nrrd`...) in name order, then each DICOM series of its DICOM files;
/// for a DICOMweb URL, each series its QIDO-RS search finds.
fn image_files(sources: &[PathBuf], web: &Web) -> Result<Vec<Source>> {
    let mut files = Vec::new();
    for src in sources {
        let text = src.to_string_lossy();
        if text.starts_with("http://") || text.starts_with("https://") {
            let client = crate::dicom::DicomWeb::new(
                &text,
                web.basic.clone(),
                std::time::Duration::from_secs(300),
            )?;
            let client = std::sync::Arc::new(client);
            for series in client.search_series(&web.filters)? {
                files.push(Source::Remote(client.clone(), series));
            }
        } else if src.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(src)
                .map_err(|e| Error::BadRequest(format!("{}: {e}", src.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && ids::is_image_name(&name(p)))
                .collect();
            found.sort();
            files.extend(found.into_iter().map(Source::File));
            for (uid, instances) in crate::dicom::series_in(src)? {
                files.push(Source::Series(uid, instances));
            }
        } else if src.is_file() {
            files.push(Source::File(src.clone()));
        } else {
            return Err(Error::BadRequest(format!(
                "{} is neither a file nor a folder",
                src.display()
            )));
        }
    }
    Ok(files)
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The label for image `id` in `labels`: a file named `<id><image ext>` there.
fn label_for(labels: &Path, id: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(labels).ok()?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .find(|p| ids::split_name(&name(p)).is_some_and(|(i, _)| i == id))
}

/// Copies image files (and labels named as they are) into the store. A file that fails
/// its checks is reported and skipped; the others go in. Fails at the end if any did.
fn import(
    store: &LocalDatastore,
    sources: &[PathBuf],
    web: &Web,
    labels: Option<&Path>,
    tag: &str,
    replace: bool,
) -> Result<()> {
    ids::validate_tag(tag)?;
    if let Some(dir) = labels.filter(|d| !d.is_dir()) {
        return Err(Error::BadRequest(format!(
            "--labels {} is not a folder",
            dir.display()
        )));
    }
    let files = image_files(sources, web)?;
    let existing: std::collections::BTreeSet<String> = store.list_images().into_iter().collect();
    let bar = progress::bar(files.len() as u64, "importing");
    let (mut added, mut skipped, mut labelled, mut failed) = (0, 0, 0, Vec::new());
    for source in &files {
        bar.set_message(source.label());
        let id = match source {
            Source::File(file) => ids::split_name(&name(file)).map(|(id, _)| id),
            Source::Series(uid, _) => Some(uid.clone()),
            Source::Remote(_, s) => Some(s.series_uid.clone()),
        };
        let Some(id) = id else {
            failed.push(format!("{}: no image id in the name", source.label()));
            bar.inc(1);
            continue;
        };
        if existing.contains(&id) && !replace {
            skipped += 1;
            bar.inc(1);
            continue;
        }
        let done = add(store, &id, source).and_then(|()| {
            match labels.and_then(|dir| label_for(dir, &id)) {
                Some(label) => Ok(store
                    .save_label(&id, &label, tag, Map::new())
                    .map(|_| true)?),
                None => Ok(false),
            }
        });
        match done {
            Ok(with_label) => {
                added += 1;
                labelled += usize::from(with_label);
            }
            Err(e) => failed.push(format!("{}: {e}", source.label())),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "imported {added} image(s) ({labelled} with a '{tag}' label); {skipped} already there{}",
        if replace {
            ""
        } else {
            " (kept; --replace to overwrite)"
        }
    );
    if failed.is_empty() {
        return Ok(());
    }
    for f in &failed {
        eprintln!("labelhost: not imported: {f}");
    }
    Err(Error::BadRequest(format!(
        "{} of {} file(s) were not imported",
        failed.len(),
        files.len()
    )))
}

/// Adds one image: a file as it is; a DICOM series as the NIfTI volume it makes, with
/// its header (UIDs, slice positions, what a segmentation of it copies) in the image's
/// info under `dicom`.
fn add(store: &LocalDatastore, id: &str, source: &Source) -> Result<()> {
    match source {
        Source::File(file) => {
            store.add_image(id, file, Map::new())?;
        }
        Source::Remote(web, series) => {
            let scratch = tempfile::tempdir()
                .map_err(|e| Error::Internal(format!("a scratch folder: {e}")))?;
            let dir = scratch.path().join("instances");
            let instances = web.retrieve_series(&series.study_uid, &series.series_uid, &dir)?;
            return add(
                store,
                id,
                &Source::Series(series.series_uid.clone(), instances),
            );
        }
        Source::Series(_, instances) => {
            let volume = crate::dicom::read_series(instances)?;
            let scratch = tempfile::tempdir()
                .map_err(|e| Error::Internal(format!("a scratch folder: {e}")))?;
            let file = scratch.path().join(format!("{id}.nii.gz"));
            crate::dicom::write_nifti(&volume, &file)?;
            let info = json!({ "dicom": volume.header });
            let info = info.as_object().cloned().unwrap_or_default();
            store.add_image(id, &file, info)?;
        }
    }
    Ok(())
}

/// Writes `out/imagesTr` (images with a `tag` label), `out/labelsTr` (those labels),
/// `out/imagesTs` (the rest, unless `labelled_only`) and `out/dataset.json` listing them
/// as MONAI's `load_decathlon_datalist` reads it. `out` must be missing or empty: nothing
/// there is overwritten.
fn export(store: &LocalDatastore, out: &Path, tag: &str, labelled_only: bool) -> Result<()> {
    ids::validate_tag(tag)?;
    let empty = std::fs::read_dir(out).map_or(true, |mut d| d.next().is_none());
    if !empty {
        return Err(Error::Conflict(format!(
            "--out {} is not empty; export writes into a new or empty folder",
            out.display()
        )));
    }
    let io = |e: std::io::Error, p: &Path| Error::Internal(format!("{}: {e}", p.display()));
    for sub in ["imagesTr", "labelsTr", "imagesTs"] {
        std::fs::create_dir_all(out.join(sub)).map_err(|e| io(e, out))?;
    }
    let images = store.list_images();
    let bar = progress::bar(images.len() as u64, "exporting");
    let (mut training, mut test) = (Vec::new(), Vec::new());
    for id in &images {
        bar.set_message(id.clone());
        let image = store.get_image_uri(id)?;
        let label = match store.get_label_by_image_id(id, tag) {
            Some(label_id) => Some(store.get_label_uri(&label_id, tag)?),
            None => None,
        };
        if label.is_none() && labelled_only {
            bar.inc(1);
            continue;
        }
        let folder = if label.is_some() {
            "imagesTr"
        } else {
            "imagesTs"
        };
        let image_rel = format!("{folder}/{}", name(&image));
        std::fs::copy(&image, out.join(&image_rel)).map_err(|e| io(e, &image))?;
        match label {
            Some(label) => {
                let label_rel = format!("labelsTr/{id}{}", ids::ext_of(&name(&label)));
                std::fs::copy(&label, out.join(&label_rel)).map_err(|e| io(e, &label))?;
                training.push(json!({"image": image_rel, "label": label_rel}));
            }
            None => test.push(Value::from(image_rel)),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let dataset = json!({
        "name": store.name(),
        "description": store.description(),
        "labelTag": tag,
        "numTraining": training.len(),
        "numTest": test.len(),
        "training": training,
        "test": test,
    });
    let path = out.join("dataset.json");
    let text = serde_json::to_string_pretty(&dataset).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| io(e, &path))?;
    println!(
        "exported {} labelled and {} unlabelled image(s) to {}",
        dataset["numTraining"],
        dataset["numTest"],
        out.display()
    );
    Ok(())
}
