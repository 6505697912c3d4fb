//! SEG objects written and read back on a small grid whose frames are not whole bytes
//! (3 × 5 pixels: frames share bytes in the bit-packed pixel data).

use super::{
    seg::{write_seg, Made, Segment},
    seg_read::read_seg,
    series::SeriesHeader,
};
use ndarray::Array3;

fn header() -> SeriesHeader {
    SeriesHeader {
        study_uid: "2.25.1".into(),
        series_uid: "2.25.2".into(),
        frame_of_reference_uid: "2.25.3".into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".into(),
        instance_uids: (0..4).map(|k| format!("2.25.1{k}")).collect(),
        positions: (0..4).map(|k| [0.0, 0.0, 2.5 * f64::from(k)]).collect(),
        orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        pixel_spacing: [0.7, 0.7],
        slice_step: 2.5,
        rows: 3,
        columns: 5,
        shared: [("PatientID".to_owned(), "p-1".to_owned())].into(),
    }
}

#[test]
fn a_label_survives_a_seg_round_trip_bit_for_bit() {
    // [column, row, slice]: value 2 on slice 1, value 5 on slices 1 and 3, nothing on 0, 2.
    let mut label = Array3::<u8>::zeros((5, 3, 4));
    label[[0, 0, 1]] = 2;
    label[[4, 2, 1]] = 5;
    label[[2, 1, 3]] = 5;
    label[[3, 1, 3]] = 5;
    let segments = [
        Segment {
            value: 2,
            label: "small".into(),
        },
        Segment {
            value: 5,
            label: "big".into(),
        },
        Segment {
            value: 7,
            label: "absent".into(),
        },
    ];
    let bytes = write_seg(&label, &header(), &segments, Made::Automatic, "test").expect("SEG");
    assert_eq!(&bytes[128..132], b"DICM");
    let (back, names) = read_seg(&bytes, &header()).expect("read");
    // Segments are numbered from 1 in value order; an absent one is left out.
    assert_eq!(names, [(1, "small".to_owned()), (2, "big".to_owned())]);
    // Each segment's voxels come back as the value its description names.
    assert_eq!(back, label);
}

#[test]
fn a_label_off_the_series_grid_is_refused() {
    let label = Array3::<u8>::zeros((5, 3, 3));
    let e = write_seg(&label, &header(), &[], Made::Manual, "x").expect_err("refused");
    assert!(e.to_string().contains("5×3×3, the series 5×3×4"), "{e}");
}
