//! A NIfTI (or NRRD) volume written as a DICOM MR series, one instance per slice along its
//! third voxel axis: geometry from its affine (RAS to LPS), voxels as 16-bit integers (with
//! a rescale when they are not integers in range), fresh UIDs under `2.25`.

use super::{seg::new_uid, text::ds};
use crate::{Error, Result};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::{Path, PathBuf};

const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";

/// Who and what the series is about.
#[derive(Debug, Clone)]
pub struct SeriesFacts {
    /// `PatientID`.
    pub patient_id: String,
    /// `PatientName`.
    pub patient_name: String,
    /// `SeriesDescription`.
    pub description: String,
}

/// Writes `volume` as `dir/slice_NNNN.dcm`; answers the files and the series UID.
pub fn write_series(
    volume: &Path,
    dir: &Path,
    facts: &SeriesFacts,
) -> Result<(Vec<PathBuf>, String)> {
    let v = labelhost_plugin_api::sdk::image::read(volume)
        .map_err(|e| Error::BadRequest(format!("{}: {e}", volume.display())))?;
    let a = v.affine();
    let data = v
        .first_frame()
        .into_dimensionality::<ndarray::Ix3>()
        .map_err(|_| Error::BadRequest(format!("{}: not a 3-D volume", volume.display())))?;
    let (ni, nj, nk) = data.dim();
    // LPS columns of the affine: steps along i (a row: next column), j (next row), k.
    let lps = |c: usize| [-a[0][c], -a[1][c], a[2][c]];
    let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let (ci, cj) = (lps(0), lps(1));
    let (si, sj) = (norm(ci), norm(cj));
    if si == 0.0 || sj == 0.0 {
        return Err(Error::BadRequest(format!(
            "{}: a zero voxel size",
            volume.display()
        )));
    }
    let row_dir = ci.map(|x| x / si);
    let col_dir = cj.map(|x| x / sj);
    let (lo, hi) = data.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| {
        (lo.min(f64::from(x)), hi.max(f64::from(x)))
    });
    let integral = data.iter().all(|x| x.fract() == 0.0)
        && lo >= f64::from(i16::MIN)
        && hi <= f64::from(i16::MAX);
    let (slope, intercept) = if integral {
        (1.0, 0.0)
    } else {
        (
            ((hi - lo) / 65535.0).max(f64::MIN_POSITIVE),
            lo + 32768.0 * ((hi - lo) / 65535.0),
        )
    };
    let (study, series, frame) = (new_uid(), new_uid(), new_uid());
    std::fs::create_dir_all(dir).map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
    let text = |tag, vr, s: &str| DataElement::new(tag, vr, PrimitiveValue::from(s));
    let mut files = Vec::new();
    for k in 0..nk {
        let pos = [
            -(a[0][2] * k as f64 + a[0][3]),
            -(a[1][2] * k as f64 + a[1][3]),
            a[2][2] * k as f64 + a[2][3],
        ];
        let mut pixels = Vec::with_capacity(ni * nj);
        for j in 0..nj {
            for i in 0..ni {
                let x = f64::from(data[[i, j, k]]);
                pixels.push(((x - intercept) / slope).round().clamp(-32768.0, 32767.0) as i16);
            }
        }
        let sop = new_uid();
        let elements = vec![
            text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
            text(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY"),
            text(tags::SOP_CLASS_UID, VR::UI, MR_IMAGE_STORAGE),
            text(tags::SOP_INSTANCE_UID, VR::UI, &sop),
            text(tags::STUDY_DATE, VR::DA, ""),
            text(tags::STUDY_TIME, VR::TM, ""),
            text(tags::ACCESSION_NUMBER, VR::SH, ""),
            text(tags::MODALITY, VR::CS, "MR"),
            text(tags::MANUFACTURER, VR::LO, "labelhost"),
            text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
            text(tags::SERIES_DESCRIPTION, VR::LO, &facts.description),
            text(tags::PATIENT_NAME, VR::PN, &facts.patient_name),
            text(tags::PATIENT_ID, VR::LO, &facts.patient_id),
            text(tags::PATIENT_BIRTH_DATE, VR::DA, ""),
            text(tags::PATIENT_SEX, VR::CS, ""),
            text(tags::SCANNING_SEQUENCE, VR::CS, "RM"),
            text(tags::SEQUENCE_VARIANT, VR::CS, "NONE"),
            text(tags::SCAN_OPTIONS, VR::CS, ""),
            text(tags::MR_ACQUISITION_TYPE, VR::CS, "3D"),
            text(tags::SLICE_THICKNESS, VR::DS, &ds(norm(lps(2)))),
            text(tags::ECHO_TIME, VR::DS, ""),
            text(tags::ECHO_TRAIN_LENGTH, VR::IS, ""),
            text(tags::STUDY_INSTANCE_UID, VR::UI, &study),
            text(tags::SERIES_INSTANCE_UID, VR::UI, &series),
            text(tags::STUDY_ID, VR::SH, ""),
            text(tags::SERIES_NUMBER, VR::IS, "1"),
            text(tags::INSTANCE_NUMBER, VR::IS, &(k + 1).to_string()),
            text(tags::PATIENT_ORIENTATION, VR::CS, ""),
            text(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                &pos.map(ds).join("\\"),
            ),
            text(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                &row_dir
                    .iter()
                    .chain(col_dir.iter())
                    .map(|x| ds(*x))
                    .collect::<Vec<_>>()
                    .join("\\"),
            ),
            text(tags::FRAME_OF_REFERENCE_UID, VR::UI, &frame),
            text(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
            DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
            text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
            DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(nj as u16)),
            DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(ni as u16)),
            text(
                tags::PIXEL_SPACING,
                VR::DS,
                &format!("{}\\{}", ds(sj), ds(si)),
            ),
            DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
            DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16)),
            DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16)),
            DataElement::new(
                tags::PIXEL_REPRESENTATION,
                VR::US,
                PrimitiveValue::from(1u16),
            ),
            text(tags::RESCALE_INTERCEPT, VR::DS, &ds(intercept)),
            text(tags::RESCALE_SLOPE, VR::DS, &format!("{slope:.8e}")),
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::I16(pixels.into())),
        ];
        let file = InMemDicomObject::from_element_iter(elements)
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax("1.2.840.10008.1.2.1")
                    .media_storage_sop_class_uid(MR_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid(sop.as_str()),
            )
            .map_err(|e| Error::Internal(format!("file meta: {e}")))?;
        let path = dir.join(format!("slice_{k:04}.dcm"));
        file.write_to_file(&path)
            .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        files.push(path);
    }
    Ok((files, series))
}
