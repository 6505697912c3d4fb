//! The dataset archive (`GET /datastore/dataset`): a zip of the images that have a `final`
//! label, their labels and the index, laid out as MONAI Label lays it out
//! (`image/<file>`, `label/<file>`, `metadata.json`).

use super::{DatastoreError, LocalDatastore, Result};
use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
};
use zip::{write::SimpleFileOptions, CompressionMethod, ZipWriter};

fn zip_err(e: impl std::fmt::Display) -> DatastoreError {
    DatastoreError::Io(format!("cannot write the dataset archive: {e}"))
}

fn add(
    zip: &mut ZipWriter<File>,
    name: &str,
    (path, flags): (&Path, i32),
    options: SimpleFileOptions,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| DatastoreError::Io(format!("cannot read {}: {e}", path.display())))?;
    zip.start_file(name, options).map_err(zip_err)?;
    io::copy(&mut src, zip).map_err(zip_err)?;
    Ok(())
}

impl LocalDatastore {
    /// Writes the archive of at most `limit_cases` labelled images (all when `None`) to a
    /// new scratch file (`crate::runtime`, created exclusively; the caller removes it);
    /// `NotFound` when no image has a final label.
    pub fn dataset_archive(&self, limit_cases: Option<usize>) -> Result<PathBuf> {
        let (file, dest) = crate::runtime::scratch_file("dataset", ".zip")
            .map_err(|e| DatastoreError::Io(e.to_string()))?;
        let written = self.write_archive(limit_cases, file, &dest);
        if written.is_err() {
            let _ = std::fs::remove_file(&dest);
        }
        written
    }

    fn write_archive(
        &self,
        limit_cases: Option<usize>,
        file: File,
        dest: &Path,
    ) -> Result<PathBuf> {
        let mut cases = self.get_labeled_images();
        if cases.is_empty() {
            return Err(DatastoreError::NotFound(
                "the datastore has no final labels to export".into(),
            ));
        }
        cases.truncate(limit_cases.unwrap_or(usize::MAX).max(1));
        // Volumes are already compressed: store them as they are.
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(true);
        let mut zip = ZipWriter::new(file);
        for id in &cases {
            let image = self.get_image_uri(id)?;
            let label = self.get_label_uri(id, "final")?;
            let name = |p: &Path| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            add(
                &mut zip,
                &format!("image/{}", name(&image)),
                (&image, self.open_flags()),
                options,
            )?;
            add(
                &mut zip,
                &format!("label/{}", name(&label)),
                (&label, self.open_flags()),
                options,
            )?;
        }
        zip.start_file("metadata.json", options).map_err(zip_err)?;
        let index = serde_json::to_vec_pretty(&self.json()).map_err(zip_err)?;
        zip.write_all(&index).map_err(zip_err)?;
        zip.finish().map_err(zip_err)?;
        Ok(dest.to_path_buf())
    }
}
