//! The command-line verbs that work without a server: `infer` (one task on one file),
//! `datastore` (stats, import, export), `dicom` (series to NIfTI, labels to SEG and back)
//! and `pack` (app bundles); long work shows progress on stderr.

pub mod datastore;
pub mod dicom;
pub mod infer;
pub mod pack;
pub mod progress;
