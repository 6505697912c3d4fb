//! The voxel-to-world affine exactly as nibabel 5's `Nifti1Header.get_best_affine` gives it
//! for a loaded file (`img.affine`).

use super::header::{spatial_zoom, valid_xform_code};
use super::Affine;
use nifti::NiftiHeader;

/// The affine nibabel's `get_best_affine` gives, after the fixes nibabel makes on load:
///
/// - the sform (`srow_*`) when `sform_code` is a valid code other than 0 (1 to 5; invalid
///   codes count as 0);
/// - else the qform when `qform_code` is: rotation from the quaternion (`a` from
///   `1 - b² - c² - d²`, taken as 0 when within 3 float32 epsilons of 0 or below it), zooms
///   `|pixdim[1..=3]|` (0 read as 1), the third one times qfac (`pixdim[0]`, -1 only when it
///   is exactly -1), offsets `quatern_x/y/z`;
/// - else nibabel's base affine (`shape_zoom_affine`): the zooms on the diagonal with x
///   flipped and the volume centred, using dims and zooms 1 for the axes a 1-D or 2-D image
///   does not have.
pub fn affine(h: &NiftiHeader) -> Affine {
    if h.sform_code != 0 && valid_xform_code(h.sform_code) {
        let row = |r: [f32; 4]| r.map(f64::from);
        return [
            row(h.srow_x),
            row(h.srow_y),
            row(h.srow_z),
            [0.0, 0.0, 0.0, 1.0],
        ];
    }
    if h.qform_code != 0 && valid_xform_code(h.qform_code) {
        return qform(h);
    }
    base(h)
}

fn zooms(h: &NiftiHeader) -> [f64; 3] {
    [1, 2, 3].map(|i| f64::from(spatial_zoom(h.pixdim[i])))
}

fn qform(h: &NiftiHeader) -> Affine {
    let [b, c, d] = [h.quatern_b, h.quatern_c, h.quatern_d].map(f64::from);
    let w2 = 1.0 - (b * b + c * c + d * d);
    // nibabel's fillpositive: threshold at 3 float32 epsilons; it raises for a clearly
    // negative w² where the NIfTI C library normalises (b, c, d): quat2mat below does that
    let w = if w2.abs() < 3.0 * f64::from(f32::EPSILON) {
        0.0
    } else {
        w2.max(0.0).sqrt()
    };
    let r = quat2mat(w, b, c, d);
    let mut z = zooms(h);
    if h.pixdim[0] == -1.0 {
        z[2] = -z[2];
    }
    let offset = [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from);
    let mut m = [[0.0; 4]; 4];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = r[i][j] * z[j];
        }
        m[i][3] = offset[i];
    }
    m[3][3] = 1.0;
    m
}

/// nibabel's `quaternions.quat2mat`: the rotation of the normalised quaternion.
fn quat2mat(w: f64, x: f64, y: f64, z: f64) -> [[f64; 3]; 3] {
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// nibabel's `shape_zoom_affine(dim[1..=ndim], pixdim[1..=ndim], x_flip=True)`.
fn base(h: &NiftiHeader) -> Affine {
    let ndim = usize::from(h.dim[0]).min(7);
    let fixed = zooms(h);
    let mut m = [[0.0; 4]; 4];
    for i in 0..3 {
        let (size, zoom) = if i < ndim {
            // dims are int16 in the file
            (f64::from(h.dim[i + 1] as i16), fixed[i])
        } else {
            (1.0, 1.0)
        };
        let zoom = if i == 0 { -zoom } else { zoom };
        m[i][i] = zoom;
        m[i][3] = -(size - 1.0) / 2.0 * zoom;
    }
    m[3][3] = 1.0;
    m
}
