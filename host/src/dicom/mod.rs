//! DICOM for the datastore: a series of instances read into one volume (slices sorted along
//! their normal, geometry from the headers, the modality rescale applied) and written as the
//! NIfTI file apps read; a DICOMweb client (QIDO-RS, WADO-RS, STOW-RS) for a PACS. Decoding
//! is dicom-rs's, pure Rust (native, JPEG, RLE, deflate transfer syntaxes).

mod folder;
mod seg;
mod seg_read;
#[cfg(test)]
mod seg_tests;
mod series;
#[cfg(test)]
mod series_tests;
mod text;
mod volume_to_series;
mod web;

pub use folder::{is_dicom_file, series_in};
pub use seg::{
    new_uid, read_label_file, seg_of_label_file, segments_of, write_seg, Made, Segment,
    SegmentNames, SEGMENTATION_STORAGE,
};
pub use seg_read::{read_seg, series_uid_of};
pub use series::{read_series, write_nifti, SeriesHeader, SeriesVolume};
pub use volume_to_series::{write_series, SeriesFacts};
pub use web::{DicomWeb, SeriesRef};
