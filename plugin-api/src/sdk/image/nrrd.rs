//! NRRD reading (what 3D Slicer saves labels as: `.nrrd`, `.seg.nrrd`), into the same
//! [`Volume`] as NIfTI: voxels as `f32` and a NIfTI header carrying the geometry (LPS space
//! directions turned into a RAS sform), so affines, orientation and label writing work
//! unchanged. Attached data only, raw or gzip encoded; the header is checked (voxel limit,
//! data length) before anything is allocated.

use super::Volume;
use crate::sdk::error::{Error, Result};
use flate2::read::GzDecoder;
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use nifti::NiftiHeader;
use std::{collections::HashMap, io::Read, path::Path};

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::invalid_input(format!("cannot read {} as NRRD: {what}", path.display()))
}

/// (bytes per voxel, NIfTI datatype code, decoder) of an NRRD `type`.
fn kind(t: &str) -> Option<(usize, i16)> {
    Some(match t {
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => (1, 2),
        "signed char" | "int8" | "int8_t" | "char" => (1, 256),
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => (2, 4),
        "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => (2, 512),
        "int" | "signed int" | "int32" | "int32_t" => (4, 8),
        "uint" | "unsigned int" | "uint32" | "uint32_t" => (4, 768),
        "longlong" | "long long" | "int64" | "int64_t" => (8, 1024),
        "ulonglong" | "unsigned long long" | "uint64" | "uint64_t" => (8, 1280),
        "float" => (4, 16),
        "double" => (8, 64),
        _ => return None,
    })
}

fn value(code: i16, b: &[u8], little: bool) -> f32 {
    macro_rules! num {
        ($t:ty) => {{
            let a = b.try_into().unwrap_or_default();
            (if little {
                <$t>::from_le_bytes(a)
            } else {
                <$t>::from_be_bytes(a)
            }) as f32
        }};
    }
    match code {
        2 => f32::from(b[0]),
        256 => f32::from(b[0] as i8),
        4 => num!(i16),
        512 => num!(u16),
        8 => num!(i32),
        768 => num!(u32),
        1024 => num!(i64),
        1280 => num!(u64),
        16 => num!(f32),
        _ => num!(f64),
    }
}

fn vector(text: &str) -> Option<Vec<f64>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner.split(',').map(|v| v.trim().parse().ok()).collect()
}

/// Reads a `.nrrd` / `.seg.nrrd` file.
pub(super) fn read(path: &Path, max_voxels: u64) -> Result<Volume> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
    let split = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or_else(|| bad(path, "no end of header"))?;
    let head =
        std::str::from_utf8(&bytes[..split]).map_err(|_| bad(path, "the header is not text"))?;
    let mut lines = head.lines();
    if !lines.next().is_some_and(|l| l.starts_with("NRRD000")) {
        return Err(bad(path, "no NRRD magic"));
    }
    let fields: HashMap<String, String> = lines
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once(':').map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    v.trim_start_matches('=').trim().to_owned(),
                )
            })
        })
        .collect();
    let get = |k: &str| fields.get(k).map(String::as_str);
    if get("data file").or(get("datafile")).is_some()
        || get("byte skip")
            .or(get("byteskip"))
            .is_some_and(|v| v != "0")
    {
        return Err(bad(path, "detached data and byte skips are not supported"));
    }
    let (size, code) = get("type")
        .and_then(kind)
        .ok_or_else(|| bad(path, format!("unsupported type {:?}", get("type"))))?;
    let mut sizes: Vec<usize> = get("sizes")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let kinds: Vec<&str> = get("kinds")
        .map(|k| k.split_whitespace().collect())
        .unwrap_or_default();
    let mut dirs: Vec<Option<Vec<f64>>> = Vec::new();
    let spec = get("space directions").unwrap_or("");
    let mut rest = spec;
    while !rest.trim().is_empty() {
        let t = rest.trim_start();
        if let Some(r) = t.strip_prefix("none") {
            dirs.push(None);
            rest = r;
        } else {
            let end = t
                .find(')')
                .ok_or_else(|| bad(path, "bad space directions"))?;
            dirs.push(Some(
                vector(&t[..=end]).ok_or_else(|| bad(path, "bad space directions"))?,
            ));
            rest = &t[end + 1..];
        }
    }
    // A leading non-spatial axis of length 1 (a one-segment .seg.nrrd) is dropped.
    if sizes.len() == 4 && sizes[0] == 1 && dirs.first().is_some_and(Option::is_none) {
        sizes.remove(0);
        dirs.remove(0);
    } else if sizes.len() != 3 {
        return Err(bad(
            path,
            format!("only 3-D volumes are supported (sizes {sizes:?}, kinds {kinds:?})"),
        ));
    }
    let voxels = sizes
        .iter()
        .try_fold(1u64, |a, &s| a.checked_mul(s as u64))
        .unwrap_or(u64::MAX);
    if voxels == 0 || voxels > max_voxels {
        return Err(bad(path, format!("{voxels} voxels (limit {max_voxels})")));
    }
    let want = voxels as usize * size;
    let body = &bytes[split + 2..];
    let raw = match get("encoding").unwrap_or("raw") {
        "raw" => body
            .get(..want)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| bad(path, "the data is shorter than the sizes say"))?,
        "gzip" | "gz" => {
            let mut out = Vec::with_capacity(want);
            GzDecoder::new(body)
                .take(want as u64)
                .read_to_end(&mut out)
                .map_err(|e| bad(path, e))?;
            if out.len() < want {
                return Err(bad(path, "the data is shorter than the sizes say"));
            }
            out
        }
        other => return Err(bad(path, format!("unsupported encoding {other}"))),
    };
    let little = get("endian").is_none_or(|e| e == "little");
    let values: Vec<f32> = raw
        .chunks_exact(size)
        .map(|b| value(code, b, little))
        .collect();
    let data = ArrayD::from_shape_vec(IxDyn(&sizes).f(), values).map_err(|e| bad(path, e))?;
    Ok(Volume {
        data,
        header: header(
            path,
            &sizes,
            &dirs,
            get("space").unwrap_or(""),
            get("space origin"),
            code,
            size,
        )?,
    })
}

/// A NIfTI header for the NRRD geometry: dims, voxel sizes, and a RAS sform.
fn header(
    path: &Path,
    sizes: &[usize],
    dirs: &[Option<Vec<f64>>],
    space: &str,
    origin: Option<&str>,
    code: i16,
    size: usize,
) -> Result<NiftiHeader> {
    let lps = matches!(space, "left-posterior-superior" | "LPS");
    if !(lps || matches!(space, "right-anterior-superior" | "RAS" | "")) {
        return Err(bad(path, format!("unsupported space {space:?}")));
    }
    let flip = |v: f64, axis: usize| if lps && axis < 2 { -v } else { v };
    let mut h = NiftiHeader {
        dim: [3, 1, 1, 1, 1, 1, 1, 1],
        ..Default::default()
    };
    let mut srow = [[0f32; 4]; 3];
    for (i, &s) in sizes.iter().enumerate() {
        h.dim[i + 1] = u16::try_from(s).map_err(|_| bad(path, "a dimension over 65535"))?;
        let d = dirs
            .get(i)
            .cloned()
            .flatten()
            .unwrap_or_else(|| (0..3).map(|r| f64::from(u8::from(r == i))).collect());
        let norm = d.iter().map(|v| v * v).sum::<f64>().sqrt();
        h.pixdim[i + 1] = if norm > 0.0 { norm as f32 } else { 1.0 };
        for (r, row) in srow.iter_mut().enumerate() {
            row[i] = flip(d.get(r).copied().unwrap_or(0.0), r) as f32;
        }
    }
    let o = origin.and_then(vector).unwrap_or_else(|| vec![0.0; 3]);
    for (r, row) in srow.iter_mut().enumerate() {
        row[3] = flip(o.get(r).copied().unwrap_or(0.0), r) as f32;
    }
    h.pixdim[0] = 1.0;
    (h.srow_x, h.srow_y, h.srow_z) = (srow[0], srow[1], srow[2]);
    (h.sform_code, h.qform_code) = (1, 0);
    h.datatype = code;
    h.bitpix = (size * 8) as i16;
    (h.scl_slope, h.scl_inter) = (1.0, 0.0);
    h.vox_offset = 352.0;
    h.magic = *b"n+1\0";
    Ok(h)
}
