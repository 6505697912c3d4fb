//! The default writer: `data.label` with the input's geometry, as NIfTI (`.nii.gz`,
//! `.nii`) or NRRD (`.nrrd`, `.seg.nrrd`, what 3D Slicer asks for), honouring MONAI
//! Label's `result_extension` and `result_dtype` request params.

use super::data::Data;
use crate::sdk::{
    error::{Error, Result},
    image::{self, Volume},
};
use crate::sdk::{host::Host, tasks::Request};
use flate2::{write::GzEncoder, Compression};
use ndarray::ArrayD;
use serde_json::Value;
use std::{io::Write, path::PathBuf};

/// Writes `data.label` into the work dir; `None` when the pipeline made no label.
pub fn write_result(data: &mut Data) -> Result<Option<PathBuf>> {
    let Some(label) = &data.label else {
        return Ok(None);
    };
    let image = data
        .image
        .as_ref()
        .ok_or_else(|| Error::app("writer: no input image to copy geometry from"))?;
    write_label_for(&data.host, &data.request, image, label).map(Some)
}

/// Writes a label with `reference`'s geometry into the work dir as the request asks:
/// `result_extension` (`.nii.gz` default, `.nii`, `.nrrd`, `.seg.nrrd`) and `result_dtype`
/// (`uint8` default). Every task's writer should go through here, as MONAI Label's does.
pub fn write_label_for(
    host: &Host,
    request: &Request,
    reference: &Volume,
    label: &ArrayD<u8>,
) -> Result<PathBuf> {
    let ext = request
        .get("result_extension")
        .and_then(Value::as_str)
        .unwrap_or(".nii.gz");
    let dtype = request
        .get("result_dtype")
        .and_then(Value::as_str)
        .unwrap_or("uint8");
    let path = host.result_path("result", ext);
    match ext {
        ".nii.gz" | ".nii" => image::write_label_as(&path, reference, label, dtype)?,
        ".nrrd" | ".seg.nrrd" => write_nrrd(&path, reference, label, dtype)?,
        other => {
            return Err(Error::invalid_input(format!(
                "result_extension '{other}' is not supported (.nii.gz, .nii, .nrrd, .seg.nrrd)"
            )))
        }
    }
    Ok(path)
}

/// A gzip-encoded NRRD of a `uint8` label, in LPS space as 3D Slicer writes it.
fn write_nrrd(
    path: &std::path::Path,
    image: &Volume,
    label: &ArrayD<u8>,
    dtype: &str,
) -> Result<()> {
    if dtype != "uint8" {
        return Err(Error::invalid_input(
            "NRRD results are written as uint8 only",
        ));
    }
    if label.ndim() != 3 {
        return Err(Error::app("NRRD writer: the label is not 3-D"));
    }
    let a = image.affine();
    let lps = |r: usize, c: usize| if r < 2 { -a[r][c] } else { a[r][c] };
    let dir = |c: usize| format!("({},{},{})", lps(0, c), lps(1, c), lps(2, c));
    let s = label.shape();
    let header = format!(
        "NRRD0004\n# labelhost\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: {} {} {}\nspace directions: {} {} {}\nkinds: domain domain domain\nendian: little\nencoding: gzip\nspace origin: ({},{},{})\n\n",
        s[0], s[1], s[2], dir(0), dir(1), dir(2), lps(0, 3), lps(1, 3), lps(2, 3)
    );
    let io = |e: std::io::Error| Error::app(format!("cannot write {}: {e}", path.display()));
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(header.as_bytes()).map_err(io)?;
    // NRRD's first axis varies fastest: walk the transposed view.
    let voxels: Vec<u8> = label.t().iter().copied().collect();
    let mut gz = GzEncoder::new(file, Compression::fast());
    gz.write_all(&voxels).map_err(io)?;
    gz.finish().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::write_nrrd;
    use crate::sdk::image::{self, Volume};
    use ndarray::{ArrayD, IxDyn, ShapeBuilder};

    #[test]
    fn a_label_written_as_nrrd_reads_back_with_its_voxels_and_affine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let header = nifti::NiftiHeader {
            dim: [3, 4, 3, 2, 1, 1, 1, 1],
            pixdim: [1.0, 2.0, 1.5, 3.0, 1.0, 1.0, 1.0, 1.0],
            sform_code: 1,
            srow_x: [0.0, -1.5, 0.0, 10.0],
            srow_y: [2.0, 0.0, 0.0, -20.0],
            srow_z: [0.0, 0.0, 3.0, 5.0],
            ..Default::default()
        };
        let data = ArrayD::from_shape_fn(IxDyn(&[4, 3, 2]).f(), |i| {
            (i[0] * 6 + i[1] * 2 + i[2]) as f32
        });
        let reference = Volume { data, header };
        let label =
            ArrayD::from_shape_fn(IxDyn(&[4, 3, 2]), |i| (i[0] + 10 * i[1] + 100 * i[2]) as u8);
        let path = dir.path().join("label.seg.nrrd");
        write_nrrd(&path, &reference, &label, "uint8").expect("write");
        let back = image::read(&path).expect("read NRRD");
        assert_eq!(back.data.shape(), &[4, 3, 2]);
        for (i, v) in label.indexed_iter() {
            assert_eq!(back.data[&i], f32::from(*v), "voxel {i:?}");
        }
        let (a, b) = (reference.affine(), back.affine());
        for r in 0..3 {
            for c in 0..4 {
                assert!(
                    (a[r][c] - b[r][c]).abs() < 1e-5,
                    "affine[{r}][{c}] {} vs {}",
                    a[r][c],
                    b[r][c]
                );
            }
        }
        let nifti = dir.path().join("again.nii.gz");
        image::write_label(&nifti, &back, &label).expect("NIfTI from an NRRD reference");
        assert_eq!(image::read(&nifti).expect("read").affine(), back.affine());
    }
}
