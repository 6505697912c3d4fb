//! DICOM SEG objects read back: a binary SEG of a series as a label volume on the series'
//! grid, and the series UID of any Part 10 file's bytes.

use super::{seg::SegmentNames, series::SeriesHeader, text::string_of};
use crate::{Error, Result};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use ndarray::Array3;

/// A SEG (Part 10 bytes) of `header`'s series read back as a label volume
/// (`[column, row, slice]`): each segment's voxels get the label value its description
/// names ("label value N", as labelhost writes it), else its `SegmentNumber`; answers the
/// volume and the segments' (number, label). Frames are placed by the source image they
/// reference.
pub fn read_seg(bytes: &[u8], header: &SeriesHeader) -> Result<(Array3<u8>, SegmentNames)> {
    let bad = |what: &str| Error::Unprocessable(format!("the SEG: {what}"));
    let obj = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Never)
        .from_reader(bytes.get(128..).ok_or_else(|| bad("too short"))?)
        .map_err(|e| bad(&e.to_string()))?;
    let int = |o: &InMemDicomObject, tag: Tag, name: &str| -> Result<u32> {
        o.element(tag)
            .map_err(|_| bad(&format!("no {name}")))?
            .to_int::<u32>()
            .map_err(|e| bad(&format!("{name}: {e}")))
    };
    let (rows, columns) = (
        int(&obj, tags::ROWS, "Rows")? as usize,
        int(&obj, tags::COLUMNS, "Columns")? as usize,
    );
    if (rows, columns) != (header.rows, header.columns) {
        return Err(bad("its frames are not the series' size"));
    }
    let items = |o: &InMemDicomObject, tag: Tag| -> Vec<InMemDicomObject> {
        o.element(tag)
            .ok()
            .and_then(|e| e.items().map(<[InMemDicomObject]>::to_vec))
            .unwrap_or_default()
    };
    // What each segment's voxels become: the label value its description names (as
    // labelhost writes it: "label value N"), else its number.
    let values: std::collections::HashMap<u8, u8> = items(&obj, tags::SEGMENT_SEQUENCE)
        .iter()
        .filter_map(|s| {
            let n = s.element(tags::SEGMENT_NUMBER).ok()?.to_int::<u8>().ok()?;
            let value = s
                .element(tags::SEGMENT_DESCRIPTION)
                .ok()
                .and_then(|d| d.to_str().ok().map(|t| t.trim().to_owned()))
                .and_then(|t| t.strip_prefix("label value ")?.parse::<u8>().ok())
                .unwrap_or(n);
            Some((n, value))
        })
        .collect();
    let segments: Vec<(u16, String)> = items(&obj, tags::SEGMENT_SEQUENCE)
        .iter()
        .filter_map(|s| {
            let n = s.element(tags::SEGMENT_NUMBER).ok()?.to_int::<u16>().ok()?;
            let label = s
                .element(tags::SEGMENT_LABEL)
                .ok()?
                .to_str()
                .ok()?
                .trim()
                .to_owned();
            Some((n, label))
        })
        .collect();
    let bits = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| bad("no pixel data"))?
        .to_bytes()
        .map_err(|e| bad(&e.to_string()))?
        .into_owned();
    let mut label = Array3::<u8>::zeros((columns, rows, header.instance_uids.len()));
    for (f, frame) in items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .iter()
        .enumerate()
    {
        let number = items(frame, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .first()
            .and_then(|s| {
                s.element(tags::REFERENCED_SEGMENT_NUMBER)
                    .ok()?
                    .to_int::<u8>()
                    .ok()
            })
            .ok_or_else(|| bad("a frame names no segment"))?;
        let source = items(frame, tags::DERIVATION_IMAGE_SEQUENCE)
            .first()
            .and_then(|d| items(d, tags::SOURCE_IMAGE_SEQUENCE).first().cloned())
            .and_then(|s| string_of(&s, tags::REFERENCED_SOP_INSTANCE_UID));
        let k = source
            .and_then(|uid| header.instance_uids.iter().position(|u| *u == uid))
            .ok_or_else(|| bad("a frame references no image of the series"))?;
        let start = f * rows * columns;
        for r in 0..rows {
            for c in 0..columns {
                let bit = start + r * columns + c;
                let on = bits.get(bit / 8).is_some_and(|b| b >> (bit % 8) & 1 == 1);
                if on {
                    label[[c, r, k]] = values.get(&number).copied().unwrap_or(number);
                }
            }
        }
    }
    Ok((label, segments))
}

/// The `SeriesInstanceUID` of a DICOM Part 10 file's bytes (its header only is read).
pub fn series_uid_of(bytes: &[u8]) -> Option<String> {
    let obj = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Never)
        .read_until(tags::PIXEL_DATA)
        .from_reader(bytes.get(128..)?)
        .ok()?;
    string_of(&obj, tags::SERIES_INSTANCE_UID)
}
