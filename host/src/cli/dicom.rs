//! `labelhost dicom`: a DICOM series as NIfTI, a label as a DICOM SEG of its series (and
//! onto a PACS by STOW-RS), a SEG back as a label.

use crate::{
    config::{DicomAction, DicomArgs},
    dicom::{self, Made, Segment},
    Error, Result,
};
use nifti::{IntoNdArray, NiftiObject};
use std::path::Path;

/// Runs the verb `args` names.
pub fn run(args: &DicomArgs) -> Result<()> {
    match &args.action {
        DicomAction::ToNifti { series, out } => {
            let volume = read(series)?;
            dicom::write_nifti(&volume, out)?;
            println!(
                "{} slices of {} written to {}",
                volume.header.instance_uids.len(),
                volume.header.series_uid,
                out.display()
            );
            Ok(())
        }
        DicomAction::FromNifti {
            volume,
            out,
            patient_id,
            description,
        } => {
            let facts = dicom::SeriesFacts {
                patient_id: patient_id.clone(),
                patient_name: patient_id.clone(),
                description: description.clone(),
            };
            let (files, uid) = dicom::write_series(volume, out, &facts)?;
            println!(
                "series {uid}: {} instances written to {}",
                files.len(),
                out.display()
            );
            Ok(())
        }
        DicomAction::Seg {
            series,
            label,
            segments,
            algorithm,
            out,
            stow,
        } => {
            let volume = read(series)?;
            let label = read_label(label, &volume)?;
            let segments = parse_segments(segments, &label)?;
            let made = if algorithm.is_some() {
                Made::Automatic
            } else {
                Made::Manual
            };
            let name = algorithm.as_deref().unwrap_or("labelhost");
            let bytes = dicom::write_seg(&label, &volume.header, &segments, made, name)?;
            if let Some(out) = out {
                std::fs::write(out, &bytes)
                    .map_err(|e| Error::Internal(format!("{}: {e}", out.display())))?;
                println!(
                    "SEG of {} segment(s) written to {}",
                    segments.len(),
                    out.display()
                );
            }
            if let Some(url) = stow {
                let web = dicom::DicomWeb::new(url, None, std::time::Duration::from_secs(300))?;
                let answer = web.store(&[bytes])?;
                println!("stored on {url}: {answer}");
            }
            Ok(())
        }
        DicomAction::ReadSeg { series, seg, out } => {
            let volume = read(series)?;
            let bytes = std::fs::read(seg)
                .map_err(|e| Error::BadRequest(format!("{}: {e}", seg.display())))?;
            let (label, segments) = dicom::read_seg(&bytes, &volume.header)?;
            let mut as_volume = volume;
            as_volume.data = label.mapv(f32::from);
            dicom::write_nifti(&as_volume, out)?;
            let names: Vec<String> = segments.iter().map(|(n, l)| format!("{n}={l}")).collect();
            println!("segments {} written to {}", names.join(", "), out.display());
            Ok(())
        }
    }
}

fn read(series: &Path) -> Result<dicom::SeriesVolume> {
    let mut found = dicom::series_in(series)?;
    let Some((uid, files)) = found.pop_first() else {
        return Err(Error::BadRequest(format!(
            "{} holds no DICOM series",
            series.display()
        )));
    };
    if !found.is_empty() {
        return Err(Error::BadRequest(format!(
            "{} holds {} series; give a folder of one ({uid} and others)",
            series.display(),
            found.len() + 1
        )));
    }
    dicom::read_series(&files)
}

/// A label NIfTI as `u8` voxels, refused unless it is on the series' grid (its shape, and
/// its affine within 0.01 mm).
fn read_label(path: &Path, volume: &dicom::SeriesVolume) -> Result<ndarray::Array3<u8>> {
    let bad = |what: String| Error::BadRequest(format!("{}: {what}", path.display()));
    let obj = nifti::ReaderOptions::new()
        .read_file(path)
        .map_err(|e| bad(e.to_string()))?;
    let h = obj.header().clone();
    let data = obj
        .into_volume()
        .into_ndarray::<f32>()
        .map_err(|e| bad(e.to_string()))?;
    let data = data
        .into_dimensionality::<ndarray::Ix3>()
        .map_err(|_| bad("not a 3-D volume".into()))?;
    if data.dim() != volume.data.dim() {
        return Err(bad(format!(
            "{:?} voxels, the series has {:?}",
            data.dim(),
            volume.data.dim()
        )));
    }
    for (row, srow) in [h.srow_x, h.srow_y, h.srow_z].iter().enumerate() {
        for (col, v) in srow.iter().enumerate() {
            if (f64::from(*v) - volume.affine[row][col]).abs() > 1e-2 {
                return Err(bad(
                    "its affine is not the series' (write it on the grid `to-nifti` makes)".into(),
                ));
            }
        }
    }
    Ok(data.mapv(|v| v.round().clamp(0.0, 255.0) as u8))
}

/// `NAME=VALUE` flags, or one segment per value the label holds.
fn parse_segments(flags: &[String], label: &ndarray::Array3<u8>) -> Result<Vec<Segment>> {
    if flags.is_empty() {
        return Ok(dicom::segments_of(label, |_| None));
    }
    flags
        .iter()
        .map(|f| {
            let bad = || Error::BadRequest(format!("--segment {f}: expected NAME=VALUE (1-255)"));
            let (name, value) = f.rsplit_once('=').ok_or_else(bad)?;
            let value: u8 = value.trim().parse().map_err(|_| bad())?;
            if value == 0 || name.trim().is_empty() {
                return Err(bad());
            }
            Ok(Segment {
                value,
                label: name.trim().to_owned(),
            })
        })
        .collect()
}
