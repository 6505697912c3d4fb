//! A DICOM series as one volume, indexed `[column, row, slice]` as ITK and dcm2niix index
//! it, with its RAS affine: the first slice's `ImagePositionPatient`, the row and column
//! direction cosines of `ImageOrientationPatient` times `PixelSpacing`, and the slice
//! normal (row × column) times the median distance between consecutive slices.

use crate::{Error, Result};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, Tag};
use dicom_pixeldata::PixelDecoder;
use ndarray::Array3;
use std::path::{Path, PathBuf};

/// How far (mm) a slice may sit off the regular grid, or a direction cosine differ between
/// slices, before the series is refused as not one volume.
const TOLERANCE: f64 = 1e-2;

/// How far one slice step may differ from the median step, as a fraction of it, before the
/// series is refused as unevenly spaced.
const STEP_DRIFT: f64 = 0.05;

/// A series read into one volume.
#[derive(Debug, Clone)]
pub struct SeriesVolume {
    /// Voxels after the modality rescale, `[column, row, slice]`.
    pub data: Array3<f32>,
    /// Voxel indices to RAS mm.
    pub affine: [[f64; 4]; 4],
    /// What derived objects (a segmentation) need of the series.
    pub header: SeriesHeader,
}

/// The attributes of the source's patient and study a derived object copies (type 2 in the
/// Segmentation IOD: present, maybe empty).
pub(super) const SHARED: [(Tag, &str); 9] = [
    (tags::PATIENT_NAME, "PatientName"),
    (tags::PATIENT_ID, "PatientID"),
    (tags::PATIENT_BIRTH_DATE, "PatientBirthDate"),
    (tags::PATIENT_SEX, "PatientSex"),
    (tags::STUDY_DATE, "StudyDate"),
    (tags::STUDY_TIME, "StudyTime"),
    (tags::REFERRING_PHYSICIAN_NAME, "ReferringPhysicianName"),
    (tags::STUDY_ID, "StudyID"),
    (tags::ACCESSION_NUMBER, "AccessionNumber"),
];

/// A series' identity and geometry, slice by slice (kept in the image's info as JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesHeader {
    /// `StudyInstanceUID`.
    pub study_uid: String,
    /// `SeriesInstanceUID`.
    pub series_uid: String,
    /// `FrameOfReferenceUID` ("" when absent).
    pub frame_of_reference_uid: String,
    /// The instances' `SOPClassUID`.
    pub sop_class_uid: String,
    /// Each slice's `SOPInstanceUID`, in slice order.
    pub instance_uids: Vec<String>,
    /// Each slice's `ImagePositionPatient` (LPS mm), in slice order.
    pub positions: Vec<[f64; 3]>,
    /// `ImageOrientationPatient`: row then column direction cosines.
    pub orientation: [f64; 6],
    /// `PixelSpacing`: between rows, between columns (mm).
    pub pixel_spacing: [f64; 2],
    /// The distance between slices along the normal (mm).
    pub slice_step: f64,
    /// `Rows`.
    pub rows: usize,
    /// `Columns`.
    pub columns: usize,
    /// The patient and study attributes of [`SHARED`], by keyword, as text.
    pub shared: std::collections::BTreeMap<String, String>,
}

/// One instance's header fields that place it, and its pixels.
struct Slice {
    position: [f64; 3],
    orientation: [f64; 6],
    spacing: [f64; 2],
    rows: usize,
    columns: usize,
    pixels: Vec<f32>,
    series_uid: String,
    study_uid: String,
    instance_uid: String,
    sop_class_uid: String,
    frame_of_reference_uid: String,
    shared: std::collections::BTreeMap<String, String>,
}

fn bad(file: &Path, what: impl std::fmt::Display) -> Error {
    Error::Unprocessable(format!("{}: {what}", file.display()))
}

fn text(obj: &DefaultDicomObject, tag: Tag, name: &str, file: &Path) -> Result<String> {
    let e = obj
        .element(tag)
        .map_err(|_| bad(file, format!("no {name}")))?;
    let s = e.to_str().map_err(|e| bad(file, format!("{name}: {e}")))?;
    Ok(super::text::unpadded(&s))
}

fn floats<const N: usize>(
    obj: &DefaultDicomObject,
    tag: Tag,
    name: &str,
    file: &Path,
) -> Result<[f64; N]> {
    let v = obj
        .element(tag)
        .map_err(|_| bad(file, format!("no {name}")))?
        .to_multi_float64()
        .map_err(|e| bad(file, format!("{name}: {e}")))?;
    <[f64; N]>::try_from(v.as_slice())
        .map_err(|_| bad(file, format!("{name} has {} values, not {N}", v.len())))
}

/// Opens an instance, up to and including its pixel data. Some scanners leave bytes after
/// the pixel data that are no data set (the real GE series in the tests: 2.4 MB of zeros),
/// which dicom-rs's reader trips on even when told to stop at the pixel data; then the
/// file is read again cut where the pixel data element ends.
fn open(file: &Path) -> Result<DefaultDicomObject> {
    let options = || dicom_object::OpenFileOptions::new().read_to(tags::PIXEL_DATA);
    let first = match options().open_file(file) {
        Ok(obj) => return Ok(obj),
        Err(e) => e,
    };
    let bytes = std::fs::read(file).map_err(|e| bad(file, e))?;
    let end = pixel_data_end(&bytes).ok_or_else(|| bad(file, format!("not DICOM: {first}")))?;
    options()
        .read_preamble(dicom_object::file::ReadPreamble::Never)
        .from_reader(&bytes[128..end])
        .map_err(|e| bad(file, format!("not DICOM: {e}")))
}

/// Where the last well-formed PixelData element (7FE0,0010) of a Part 10 file ends:
/// explicit VR (`OB`/`OW`, 12-byte header) or implicit VR (8 bytes), a defined length
/// within the file or an encapsulated one up to its sequence delimiter.
fn pixel_data_end(bytes: &[u8]) -> Option<usize> {
    const TAG: [u8; 4] = [0xE0, 0x7F, 0x10, 0x00];
    const DELIMITER: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
    let u32_at = |at: usize| {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    (132..bytes.len().saturating_sub(8))
        .rev()
        .filter(|&p| bytes[p..p + 4] == TAG)
        .find_map(|p| {
            let explicit =
                matches!(&bytes[p + 4..p + 6], b"OB" | b"OW") && bytes[p + 6..p + 8] == [0, 0];
            let (len, header) = if explicit {
                (u32_at(p + 8)?, 12)
            } else {
                (u32_at(p + 4)?, 8)
            };
            let start = p + header;
            if len == u32::MAX {
                let at = bytes[start..].windows(8).position(|w| w == DELIMITER)?;
                Some(start + at + 8)
            } else {
                let end = start.checked_add(len as usize)?;
                (end <= bytes.len()).then_some(end)
            }
        })
}

fn read_slice(file: &Path) -> Result<Slice> {
    let obj = open(file)?;
    let pixels = obj
        .decode_pixel_data()
        .map_err(|e| bad(file, format!("pixel data: {e}")))?;
    if pixels.number_of_frames() != 1 || pixels.samples_per_pixel() != 1 {
        return Err(bad(file, "only single-frame greyscale instances are read"));
    }
    let (rows, columns) = (pixels.rows() as usize, pixels.columns() as usize);
    let values: Vec<f32> = pixels
        .to_vec()
        .map_err(|e| bad(file, format!("pixel data: {e}")))?;
    if values.len() != rows * columns {
        return Err(bad(file, "pixel data does not fill Rows × Columns"));
    }
    Ok(Slice {
        position: floats(
            &obj,
            tags::IMAGE_POSITION_PATIENT,
            "ImagePositionPatient",
            file,
        )?,
        orientation: floats(
            &obj,
            tags::IMAGE_ORIENTATION_PATIENT,
            "ImageOrientationPatient",
            file,
        )?,
        spacing: floats(&obj, tags::PIXEL_SPACING, "PixelSpacing", file)?,
        rows,
        columns,
        pixels: values,
        series_uid: text(&obj, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID", file)?,
        study_uid: text(&obj, tags::STUDY_INSTANCE_UID, "StudyInstanceUID", file)?,
        instance_uid: text(&obj, tags::SOP_INSTANCE_UID, "SOPInstanceUID", file)?,
        sop_class_uid: text(&obj, tags::SOP_CLASS_UID, "SOPClassUID", file)?,
        frame_of_reference_uid: text(&obj, tags::FRAME_OF_REFERENCE_UID, "", file)
            .unwrap_or_default(),
        shared: SHARED
            .iter()
            .filter_map(|(tag, name)| {
                let v = text(&obj, *tag, name, file).ok()?;
                Some(((*name).to_owned(), v))
            })
            .collect(),
    })
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Reads the instances `files` (one series, single-frame greyscale) into one volume. A
/// series with mixed sizes, orientations or series UIDs, repeated slices, or a step more
/// than 5% off the median step is refused naming the problem.
pub fn read_series(files: &[PathBuf]) -> Result<SeriesVolume> {
    let mut slices = files
        .iter()
        .map(|f| read_slice(f))
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = slices.first() else {
        return Err(Error::Unprocessable(
            "a series needs at least one instance".into(),
        ));
    };
    let (o, rows, columns) = (first.orientation, first.rows, first.columns);
    let (row_dir, col_dir) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let normal = cross(row_dir, col_dir);
    for (s, file) in slices.iter().zip(files) {
        if s.series_uid != first.series_uid {
            return Err(bad(file, "belongs to another series"));
        }
        if (s.rows, s.columns) != (rows, columns) {
            return Err(bad(
                file,
                "its Rows × Columns differ from the first instance's",
            ));
        }
        if s.orientation
            .iter()
            .zip(&o)
            .any(|(a, b)| (a - b).abs() > TOLERANCE)
        {
            return Err(bad(
                file,
                "its ImageOrientationPatient differs from the first instance's",
            ));
        }
    }
    slices.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)));
    let along: Vec<f64> = slices.iter().map(|s| dot(s.position, normal)).collect();
    let mut gaps: Vec<f64> = along.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.iter().any(|g| *g < TOLERANCE) {
        return Err(Error::Unprocessable(
            "the series has two slices at one position".into(),
        ));
    }
    gaps.sort_by(f64::total_cmp);
    let step = gaps.get(gaps.len() / 2).copied().unwrap_or(1.0);
    // Real series drift a little (the GE series in the tests: 6.96 to 7.07 mm, as its
    // positions are rounded); the volume takes the median step, as nibabel and ITK do.
    if gaps
        .iter()
        .any(|g| (g - step).abs() > TOLERANCE.max(step * STEP_DRIFT))
    {
        return Err(Error::Unprocessable(format!(
            "the series' slices are not evenly spaced (steps from {:.3} to {:.3} mm)",
            gaps.first().unwrap_or(&0.0),
            gaps.last().unwrap_or(&0.0)
        )));
    }
    let mut data = Array3::<f32>::zeros((columns, rows, slices.len()));
    for (k, s) in slices.iter().enumerate() {
        for r in 0..rows {
            for c in 0..columns {
                data[[c, r, k]] = s.pixels[r * columns + c];
            }
        }
    }
    // PixelSpacing is (between rows, between columns): a step along a row (next column)
    // moves by the column spacing in the row direction.
    let [row_spacing, col_spacing] = slices[0].spacing;
    let origin = slices[0].position;
    let mut affine = [[0.0; 4]; 4];
    for axis in 0..3 {
        // LPS to RAS: x and y change sign.
        let sign = if axis < 2 { -1.0 } else { 1.0 };
        affine[axis] = [
            sign * row_dir[axis] * col_spacing,
            sign * col_dir[axis] * row_spacing,
            sign * normal[axis] * step,
            sign * origin[axis],
        ];
    }
    affine[3] = [0.0, 0.0, 0.0, 1.0];
    let first = &slices[0];
    let header = SeriesHeader {
        study_uid: first.study_uid.clone(),
        series_uid: first.series_uid.clone(),
        frame_of_reference_uid: first.frame_of_reference_uid.clone(),
        sop_class_uid: first.sop_class_uid.clone(),
        instance_uids: slices.iter().map(|s| s.instance_uid.clone()).collect(),
        positions: slices.iter().map(|s| s.position).collect(),
        orientation: o,
        pixel_spacing: first.spacing,
        slice_step: step,
        rows,
        columns,
        shared: first.shared.clone(),
    };
    Ok(SeriesVolume {
        data,
        affine,
        header,
    })
}

/// Writes the volume as NIfTI-1 (gzipped for `.nii.gz`), its affine as the sform (and the
/// voxel sizes in `pixdim`); integral values that fit `i16` are stored as `i16`, others as
/// `f32`.
pub fn write_nifti(volume: &SeriesVolume, path: &Path) -> Result<()> {
    let mut header = nifti::NiftiHeader::default();
    let a = volume.affine;
    header.sform_code = 1;
    let row = |r: usize| a[r].map(|v| v as f32);
    (header.srow_x, header.srow_y, header.srow_z) = (row(0), row(1), row(2));
    for (axis, pixdim) in header.pixdim[1..4].iter_mut().enumerate() {
        let norm = a[..3].iter().map(|r| r[axis] * r[axis]).sum::<f64>().sqrt();
        *pixdim = norm as f32;
    }
    header.xyzt_units = 2; // mm
    let fits = volume
        .data
        .iter()
        .all(|v| v.fract() == 0.0 && (f32::from(i16::MIN)..=f32::from(i16::MAX)).contains(v));
    let written = if fits {
        let ints = volume.data.mapv(|v| v as i16);
        nifti::writer::WriterOptions::new(path)
            .reference_header(&header)
            .write_nifti(&ints)
    } else {
        nifti::writer::WriterOptions::new(path)
            .reference_header(&header)
            .write_nifti(&volume.data)
    };
    written.map_err(|e| Error::Internal(format!("{}: {e}", path.display())))
}
