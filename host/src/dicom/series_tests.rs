//! The series reader on synthetic series written with dicom-rs: slices found in any file
//! order, geometry and the rescale, and the series that are not one volume refused.

use super::series::{read_series, write_nifti};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::{Path, PathBuf};

/// One slice: 3 rows × 4 columns, pixel (r, c) = 100 k + 10 r + c stored as u16, rescaled
/// by `slope` and -1000; oblique about x, at `z` mm along the normal.
struct Spec<'a> {
    k: u16,
    z: f64,
    series: &'a str,
    rows: u16,
    slope: &'a str,
}

fn write(dir: &Path, name: &str, s: &Spec) -> PathBuf {
    let (c, si) = (0.8f64, 0.6f64); // row direction x; column direction (0, c, s)
    let normal = [0.0, -si, c];
    let pos = [10.0, 20.0 + normal[1] * s.z, 30.0 + normal[2] * s.z];
    let columns = 4u16;
    let pixels: Vec<u16> = (0..s.rows)
        .flat_map(|r| (0..columns).map(move |col| 100 * s.k + 10 * r + col))
        .collect();
    let ds = |v: String| PrimitiveValue::from(v);
    let elements = [
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.4"),
        ),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, ds(format!("1.2.3.{}", s.k))),
        DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.9"),
        ),
        DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(s.series),
        ),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("MR")),
        DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            ds(format!("{}\\{}\\{}", pos[0], pos[1], pos[2])),
        ),
        DataElement::new(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            ds(format!("1\\0\\0\\0\\{c}\\{si}")),
        ),
        DataElement::new(tags::PIXEL_SPACING, VR::DS, PrimitiveValue::from("2\\0.5")),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(s.rows)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(columns)),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from("MONOCHROME2"),
        ),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16)),
        DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ),
        DataElement::new(tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from(s.slope)),
        DataElement::new(
            tags::RESCALE_INTERCEPT,
            VR::DS,
            PrimitiveValue::from("-1000"),
        ),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())),
    ];
    let obj = InMemDicomObject::from_element_iter(elements);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax("1.2.840.10008.1.2.1")
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.4")
                .media_storage_sop_instance_uid(format!("1.2.3.{}", s.k)),
        )
        .expect("meta");
    let path = dir.join(name);
    file.write_to_file(&path).expect("write DICOM");
    path
}

fn spec(k: u16, z: f64) -> Spec<'static> {
    Spec {
        k,
        z,
        series: "1.2.8",
        rows: 3,
        slope: "1",
    }
}

#[test]
fn slices_are_ordered_along_the_normal_whatever_the_file_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Files named against the slice order.
    let files: Vec<PathBuf> = [(2, 6.0), (0, 0.0), (1, 3.0)]
        .iter()
        .enumerate()
        .map(|(i, &(k, z))| write(dir.path(), &format!("f{i}.dcm"), &spec(k, z)))
        .collect();
    let v = read_series(&files).expect("series");
    assert_eq!(v.data.shape(), [4, 3, 3], "[column, row, slice]");
    let h = &v.header;
    assert_eq!(h.instance_uids, ["1.2.3.0", "1.2.3.1", "1.2.3.2"]);
    assert_eq!(
        (h.series_uid.as_str(), h.study_uid.as_str()),
        ("1.2.8", "1.2.9")
    );
    assert_eq!(h.sop_class_uid, "1.2.840.10008.5.1.4.1.1.4");
    assert_eq!((h.rows, h.columns), (3, 4));
    assert!((h.slice_step - 3.0).abs() < 1e-9, "{}", h.slice_step);
    assert_eq!(h.positions[0], [10.0, 20.0, 30.0]);
    // pixel (r=2, c=3) of slice k=1, rescaled by -1000
    assert_eq!(v.data[[3, 2, 1]], 100.0 + 20.0 + 3.0 - 1000.0);
    // Columns step 0.5 mm along x, rows 2 mm along (0, .8, .6), slices 3 mm along the
    // normal (0, -.6, .8); LPS x and y flip to RAS.
    let a = v.affine;
    let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
    assert!(
        close(a[0][0], -0.5) && close(a[1][1], -1.6) && close(a[2][1], 1.2),
        "{a:?}"
    );
    assert!(close(a[1][2], 1.8) && close(a[2][2], 2.4), "{a:?}");
    assert!(
        close(a[0][3], -10.0) && close(a[1][3], -20.0) && close(a[2][3], 30.0),
        "{a:?}"
    );
}

#[test]
fn a_series_that_is_not_one_volume_is_refused_naming_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let err = |files: &[PathBuf]| read_series(files).expect_err("refused").to_string();
    let a = write(d, "a.dcm", &spec(0, 0.0));
    let b = write(d, "b.dcm", &spec(1, 3.0));
    let gap = write(d, "gap.dcm", &spec(2, 10.0));
    assert!(err(&[a.clone(), b.clone(), gap]).contains("not evenly spaced"));
    let twin = write(d, "twin.dcm", &spec(3, 3.0));
    assert!(err(&[a.clone(), b.clone(), twin]).contains("two slices at one position"));
    let other = write(
        d,
        "other.dcm",
        &Spec {
            series: "9.9",
            ..spec(4, 6.0)
        },
    );
    assert!(err(&[a.clone(), other]).contains("another series"));
    let taller = write(
        d,
        "taller.dcm",
        &Spec {
            rows: 5,
            ..spec(5, 6.0)
        },
    );
    assert!(err(&[a.clone(), taller]).contains("Rows × Columns"));
    std::fs::write(d.join("text.dcm"), "not DICOM").expect("write");
    assert!(err(&[a, d.join("text.dcm")]).contains("not DICOM"));
    assert!(err(&[]).contains("at least one"));
}

#[test]
fn integral_values_are_written_as_i16_and_others_as_f32_with_the_affine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let read = |p: &Path| {
        use nifti::NiftiObject;
        let obj = nifti::ReaderOptions::new().read_file(p).expect("NIfTI");
        (obj.header().datatype, obj.header().srow_y)
    };
    let files = [
        write(dir.path(), "a.dcm", &spec(0, 0.0)),
        write(dir.path(), "b.dcm", &spec(1, 3.0)),
    ];
    let v = read_series(&files).expect("series");
    let out = dir.path().join("v.nii.gz");
    write_nifti(&v, &out).expect("write");
    let (datatype, srow_y) = read(&out);
    assert_eq!(datatype, 4, "int16");
    assert!(
        (srow_y[1] + 1.6).abs() < 1e-6 && (srow_y[3] + 20.0).abs() < 1e-6,
        "{srow_y:?}"
    );
    let half = [
        write(
            dir.path(),
            "c.dcm",
            &Spec {
                slope: "0.5",
                ..spec(0, 0.0)
            },
        ),
        write(
            dir.path(),
            "d.dcm",
            &Spec {
                slope: "0.5",
                ..spec(1, 3.0)
            },
        ),
    ];
    let v = read_series(&half).expect("series");
    assert_eq!(v.data[[1, 0, 0]], 0.5 - 1000.0);
    write_nifti(&v, &out).expect("write");
    assert_eq!(read(&out).0, 16, "float32");
}

#[test]
fn zero_bytes_after_the_pixel_data_are_left_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = [
        write(dir.path(), "a.dcm", &spec(0, 0.0)),
        write(dir.path(), "b.dcm", &spec(1, 3.0)),
    ];
    let clean = read_series(&files).expect("series");
    // What the GE series in the integration test has: padding no reader can parse.
    for f in &files {
        let mut bytes = std::fs::read(f).expect("read");
        bytes.extend(std::iter::repeat_n(0u8, 4096));
        std::fs::write(f, bytes).expect("write");
    }
    let padded = read_series(&files).expect("series despite the padding");
    assert_eq!(padded.data, clean.data);
    assert_eq!(padded.header, clean.header);
}
