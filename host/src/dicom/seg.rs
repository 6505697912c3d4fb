//! DICOM Segmentation objects (SEG, binary) of a label volume on a series' grid, and back:
//! one frame per slice that holds a segment, each referencing its source image and placed by
//! its ImagePositionPatient; the patient, study and frame of reference are the source's.

use super::{
    series::{SeriesHeader, SHARED},
    text::{ds, ds_multi},
};
use crate::{Error, Result};
use dicom_core::{value::DataSetSequence, DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use ndarray::Array3;

/// Segmentation Storage.
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// One segment: the label value it is made of, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The label value (1..=255).
    pub value: u8,
    /// Its name (`SegmentLabel`).
    pub label: String,
}

/// A SEG's segments as (SegmentNumber, SegmentLabel).
pub type SegmentNames = Vec<(u16, String)>;

/// Who made the segmentation (`SegmentAlgorithmType`): a model, or an annotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// AUTOMATIC, by the named algorithm.
    Automatic,
    /// MANUAL.
    Manual,
}

/// A fresh UID under `2.25` (a random 128-bit number, as PS3.5 B.2 allows).
pub fn new_uid() -> String {
    let hi = u128::from(crate::random::bits());
    let lo = u128::from(crate::random::bits());
    format!("2.25.{}", (hi << 64 | lo) >> 1)
}

fn el(tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, value.into())
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn item(elements: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item(vec![
        el(tags::CODE_VALUE, VR::SH, value),
        el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        el(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

/// `YYYYMMDD` and `HHMMSS` now (UTC).
fn now() -> (String, String) {
    let ts = crate::jobs::timestamp(); // YYYY-mm-dd HH:MM:SS
    (ts[..10].replace('-', ""), ts[11..].replace(':', ""))
}

/// The VR each shared attribute is written with.
fn shared_vr(tag: Tag) -> VR {
    match tag {
        tags::PATIENT_NAME | tags::REFERRING_PHYSICIAN_NAME => VR::PN,
        tags::PATIENT_BIRTH_DATE | tags::STUDY_DATE => VR::DA,
        tags::STUDY_TIME => VR::TM,
        tags::PATIENT_SEX => VR::CS,
        tags::STUDY_ID | tags::ACCESSION_NUMBER => VR::SH,
        _ => VR::LO,
    }
}

/// A binary SEG (a DICOM Part 10 file) of `label` (`[column, row, slice]` on the series'
/// grid): one segment per entry of `segments` that the label holds, one frame per slice
/// where it does. Refused when the label's grid is not the series'.
pub fn write_seg(
    label: &Array3<u8>,
    header: &SeriesHeader,
    segments: &[Segment],
    made: Made,
    algorithm: &str,
) -> Result<Vec<u8>> {
    let (columns, rows, slices) = label.dim();
    if (columns, rows, slices) != (header.columns, header.rows, header.instance_uids.len()) {
        return Err(Error::Unprocessable(format!(
            "the label is {columns}×{rows}×{slices}, the series {}×{}×{}",
            header.columns,
            header.rows,
            header.instance_uids.len()
        )));
    }
    let present: Vec<&Segment> = segments
        .iter()
        .filter(|s| s.value > 0 && label.iter().any(|&v| v == s.value))
        .collect();
    let (date, time) = now();
    let (sop_uid, series_uid, dimensions) = (new_uid(), new_uid(), new_uid());
    let frame_of_reference = if header.frame_of_reference_uid.is_empty() {
        new_uid()
    } else {
        header.frame_of_reference_uid.clone()
    };

    // Frames: each segment's slices that hold it, in segment then slice order.
    let mut frames = Vec::new();
    let mut bits: Vec<u8> = Vec::new();
    let mut nbits = 0usize;
    for (number, segment) in present.iter().enumerate() {
        for k in 0..slices {
            let plane = label.index_axis(ndarray::Axis(2), k);
            if !plane.iter().any(|&v| v == segment.value) {
                continue;
            }
            for r in 0..rows {
                for c in 0..columns {
                    if nbits.is_multiple_of(8) {
                        bits.push(0);
                    }
                    if plane[[c, r]] == segment.value {
                        if let Some(last) = bits.last_mut() {
                            *last |= 1 << (nbits % 8);
                        }
                    }
                    nbits += 1;
                }
            }
            frames.push((number as u16 + 1, k));
        }
    }
    if bits.len() % 2 == 1 {
        bits.push(0);
    }

    let per_frame: Vec<InMemDicomObject> = frames
        .iter()
        .map(|&(number, k)| {
            let source = item(vec![
                el(
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    header.sop_class_uid.as_str(),
                ),
                el(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    header.instance_uids[k].as_str(),
                ),
                seq(
                    tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                    vec![code(
                        "121322",
                        "DCM",
                        "Source image for image processing operation",
                    )],
                ),
            ]);
            item(vec![
                seq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![item(vec![
                        seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source]),
                        seq(
                            tags::DERIVATION_CODE_SEQUENCE,
                            vec![code("113076", "DCM", "Segmentation")],
                        ),
                    ])],
                ),
                seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![item(vec![el(
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        PrimitiveValue::U32([u32::from(number), k as u32 + 1].into()),
                    )])],
                ),
                seq(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![item(vec![el(
                        tags::IMAGE_POSITION_PATIENT,
                        VR::DS,
                        ds_multi(&header.positions[k]),
                    )])],
                ),
                seq(
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    vec![item(vec![el(
                        tags::REFERENCED_SEGMENT_NUMBER,
                        VR::US,
                        number,
                    )])],
                ),
            ])
        })
        .collect();

    let segment_items: Vec<InMemDicomObject> = present
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut e = vec![
                seq(
                    tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                    vec![code("85756007", "SCT", "Tissue")],
                ),
                el(tags::SEGMENT_NUMBER, VR::US, i as u16 + 1),
                el(tags::SEGMENT_LABEL, VR::LO, s.label.as_str()),
                el(
                    tags::SEGMENT_DESCRIPTION,
                    VR::ST,
                    format!("label value {}", s.value),
                ),
                seq(
                    tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                    vec![code("85756007", "SCT", "Tissue")],
                ),
            ];
            match made {
                Made::Automatic => {
                    e.push(el(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"));
                    e.push(el(tags::SEGMENT_ALGORITHM_NAME, VR::LO, algorithm));
                }
                Made::Manual => e.push(el(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "MANUAL")),
            }
            item(e)
        })
        .collect();

    let referenced: Vec<InMemDicomObject> = header
        .instance_uids
        .iter()
        .map(|uid| {
            item(vec![
                el(
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    header.sop_class_uid.as_str(),
                ),
                el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid.as_str()),
            ])
        })
        .collect();
    let dimension = |pointer: Tag, group: Tag, label: &str| {
        item(vec![
            el(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                dimensions.as_str(),
            ),
            el(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags([pointer][..].into()),
            ),
            el(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags([group][..].into()),
            ),
            el(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };
    let spacing = header.pixel_spacing;

    let mut elements = vec![
        el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        el(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY"),
        el(tags::SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE),
        el(tags::SOP_INSTANCE_UID, VR::UI, sop_uid.as_str()),
        el(tags::SERIES_DATE, VR::DA, date.as_str()),
        el(tags::CONTENT_DATE, VR::DA, date.as_str()),
        el(tags::SERIES_TIME, VR::TM, time.as_str()),
        el(tags::CONTENT_TIME, VR::TM, time.as_str()),
        el(tags::MODALITY, VR::CS, "SEG"),
        el(tags::MANUFACTURER, VR::LO, "labelhost"),
        el(tags::SERIES_DESCRIPTION, VR::LO, algorithm),
        el(tags::MANUFACTURER_MODEL_NAME, VR::LO, "labelhost"),
        seq(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![item(vec![
                seq(tags::REFERENCED_INSTANCE_SEQUENCE, referenced),
                el(
                    tags::SERIES_INSTANCE_UID,
                    VR::UI,
                    header.series_uid.as_str(),
                ),
            ])],
        ),
        el(tags::DEVICE_SERIAL_NUMBER, VR::LO, "1"),
        el(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
        el(tags::STUDY_INSTANCE_UID, VR::UI, header.study_uid.as_str()),
        el(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.as_str()),
        el(tags::SERIES_NUMBER, VR::IS, "9001"),
        el(tags::INSTANCE_NUMBER, VR::IS, "1"),
        el(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            frame_of_reference.as_str(),
        ),
        el(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
        seq(
            tags::DIMENSION_ORGANIZATION_SEQUENCE,
            vec![item(vec![el(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                dimensions.as_str(),
            )])],
        ),
        el(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D"),
        seq(
            tags::DIMENSION_INDEX_SEQUENCE,
            vec![
                dimension(
                    tags::REFERENCED_SEGMENT_NUMBER,
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    "ReferencedSegmentNumber",
                ),
                dimension(
                    tags::IMAGE_POSITION_PATIENT,
                    tags::PLANE_POSITION_SEQUENCE,
                    "ImagePositionPatient",
                ),
            ],
        ),
        el(tags::SAMPLES_PER_PIXEL, VR::US, 1u16),
        el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        el(tags::NUMBER_OF_FRAMES, VR::IS, frames.len().to_string()),
        el(tags::ROWS, VR::US, rows as u16),
        el(tags::COLUMNS, VR::US, columns as u16),
        el(tags::BITS_ALLOCATED, VR::US, 1u16),
        el(tags::BITS_STORED, VR::US, 1u16),
        el(tags::HIGH_BIT, VR::US, 0u16),
        el(tags::PIXEL_REPRESENTATION, VR::US, 0u16),
        el(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        el(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        seq(tags::SEGMENT_SEQUENCE, segment_items),
        el(tags::CONTENT_LABEL, VR::CS, "LABELHOST"),
        el(tags::CONTENT_DESCRIPTION, VR::LO, algorithm),
        el(tags::CONTENT_CREATOR_NAME, VR::PN, ""),
        seq(
            tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            vec![item(vec![
                seq(
                    tags::PLANE_ORIENTATION_SEQUENCE,
                    vec![item(vec![el(
                        tags::IMAGE_ORIENTATION_PATIENT,
                        VR::DS,
                        ds_multi(&header.orientation),
                    )])],
                ),
                seq(
                    tags::PIXEL_MEASURES_SEQUENCE,
                    vec![item(vec![
                        el(tags::SLICE_THICKNESS, VR::DS, ds(header.slice_step)),
                        el(tags::SPACING_BETWEEN_SLICES, VR::DS, ds(header.slice_step)),
                        el(tags::PIXEL_SPACING, VR::DS, ds_multi(&spacing)),
                    ])],
                ),
            ])],
        ),
        seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame),
        el(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(bits.into())),
    ];
    for (tag, name) in SHARED {
        let value = header.shared.get(name).cloned().unwrap_or_default();
        elements.push(el(tag, shared_vr(tag), value));
    }
    let obj = InMemDicomObject::from_element_iter(elements)
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_VR_LE)
                .media_storage_sop_class_uid(SEGMENTATION_STORAGE)
                .media_storage_sop_instance_uid(sop_uid.as_str()),
        )
        .map_err(|e| Error::Internal(format!("SEG file meta: {e}")))?;
    let mut out = Vec::new();
    obj.write_all(&mut out)
        .map_err(|e| Error::Internal(format!("SEG: {e}")))?;
    Ok(out)
}

/// A label file (NIfTI or NRRD) as `u8` voxels, `[i, j, k]`; the error is a sentence.
pub fn read_label_file(path: &std::path::Path) -> std::result::Result<Array3<u8>, String> {
    let volume = labelhost_plugin_api::sdk::image::read(path).map_err(|e| e.to_string())?;
    let data = volume
        .first_frame()
        .into_dimensionality::<ndarray::Ix3>()
        .map_err(|_| "not a 3-D volume".to_owned())?;
    Ok(data.mapv(|v| v.round().clamp(0.0, 255.0) as u8))
}

/// One segment per value a label holds (above 0), in value order, named by `name` or
/// "label N".
pub fn segments_of(label: &Array3<u8>, name: impl Fn(u8) -> Option<String>) -> Vec<Segment> {
    let mut values: Vec<u8> = label.iter().copied().filter(|v| *v > 0).collect();
    values.sort_unstable();
    values.dedup();
    values
        .into_iter()
        .map(|value| Segment {
            value,
            label: name(value).unwrap_or_else(|| format!("label {value}")),
        })
        .collect()
}

/// A SEG of the label file `label` (NIfTI or NRRD, on the series' grid) made by `algorithm`,
/// its segments named by `names` (`{name: value}`, as a task's `label_names`; values it does
/// not name are "label N").
pub fn seg_of_label_file(
    label: &std::path::Path,
    header: &SeriesHeader,
    names: &serde_json::Value,
    algorithm: &str,
) -> Result<Vec<u8>> {
    let data =
        read_label_file(label).map_err(|e| Error::Internal(format!("the result label: {e}")))?;
    let segments = segments_of(&data, |value| {
        names.as_object().and_then(|m| {
            m.iter()
                .find(|(_, v)| v.as_u64() == Some(u64::from(value)))
                .map(|(k, _)| k.clone())
        })
    });
    write_seg(&data, header, &segments, Made::Automatic, algorithm)
}
