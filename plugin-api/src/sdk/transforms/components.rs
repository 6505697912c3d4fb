//! Connected components of 3-D masks: MONAI's `KeepLargestConnectedComponent` (26-connected
//! foreground), `FillHoles` (background not 6-connected to the border becomes foreground)
//! and `BoundingBox`.

use ndarray::ArrayD;
use std::collections::VecDeque;

fn dims(mask: &ArrayD<u8>) -> Option<[usize; 3]> {
    <[usize; 3]>::try_from(mask.shape()).ok()
}

/// Linear offsets of the 6 or 26 neighbours in a C-ordered `d` volume.
fn neighbours(d: [usize; 3], full: bool) -> Vec<(i64, i64, i64, isize)> {
    let (sy, sz) = ((d[1] * d[2]) as isize, d[2] as isize);
    let mut out = Vec::new();
    for dx in -1i64..=1 {
        for dy in -1i64..=1 {
            for dz in -1i64..=1 {
                let steps = dx.abs() + dy.abs() + dz.abs();
                if steps == 0 || (!full && steps > 1) {
                    continue;
                }
                out.push((
                    dx,
                    dy,
                    dz,
                    dx as isize * sy + dy as isize * sz + dz as isize,
                ));
            }
        }
    }
    out
}

/// Flood-fills from `seed` over voxels where `take` holds, marking them in `seen`;
/// returns how many were reached. `full` selects 26- instead of 6-connectivity.
fn flood(
    d: [usize; 3],
    seed: usize,
    full: bool,
    seen: &mut [u32],
    label: u32,
    take: &dyn Fn(usize) -> bool,
) -> usize {
    let (sy, sz) = (d[1] * d[2], d[2]);
    let offsets = neighbours(d, full);
    let mut queue = VecDeque::from([seed]);
    seen[seed] = label;
    let mut count = 0;
    while let Some(at) = queue.pop_front() {
        count += 1;
        let (x, y, z) = (at / sy, (at / sz) % d[1], at % sz);
        let interior = x > 0 && y > 0 && z > 0 && x + 1 < d[0] && y + 1 < d[1] && z + 1 < d[2];
        for &(dx, dy, dz, step) in &offsets {
            if !interior {
                let (nx, ny, nz) = (x as i64 + dx, y as i64 + dy, z as i64 + dz);
                let inside = nx >= 0 && ny >= 0 && nz >= 0;
                if !inside || nx as usize >= d[0] || ny as usize >= d[1] || nz as usize >= d[2] {
                    continue;
                }
            }
            let n = at.wrapping_add_signed(step);
            if seen[n] == 0 && take(n) {
                seen[n] = label;
                queue.push_back(n);
            }
        }
    }
    count
}

/// Keeps only the largest 26-connected foreground component of a 3-D mask (in place).
/// Returns the number of components found.
pub fn keep_largest_connected_component(mask: &mut ArrayD<u8>) -> usize {
    let Some(d) = dims(mask) else { return 0 };
    let mut standard = mask.as_standard_layout().into_owned();
    let Some(flat) = standard.as_slice_mut() else {
        return 0;
    };
    let mut seen = vec![0u32; flat.len()];
    let (mut best, mut best_size, mut label) = (0u32, 0usize, 0u32);
    for i in 0..flat.len() {
        if flat[i] != 0 && seen[i] == 0 {
            label += 1;
            let size = flood(d, i, true, &mut seen, label, &|n| flat[n] != 0);
            if size > best_size {
                (best, best_size) = (label, size);
            }
        }
    }
    for (v, s) in flat.iter_mut().zip(&seen) {
        *v = u8::from(*s == best && best != 0);
    }
    *mask = standard;
    label as usize
}

/// Fills holes: background voxels that no 6-connected path links to the volume's border
/// become foreground (in place).
pub fn fill_holes(mask: &mut ArrayD<u8>) {
    let Some(d) = dims(mask) else { return };
    let mut standard = mask.as_standard_layout().into_owned();
    let Some(flat) = standard.as_slice_mut() else {
        return;
    };
    let mut seen = vec![0u32; flat.len()];
    let on_border = |i: usize| {
        let (x, y, z) = (i / (d[1] * d[2]), (i / d[2]) % d[1], i % d[2]);
        x == 0 || y == 0 || z == 0 || x + 1 == d[0] || y + 1 == d[1] || z + 1 == d[2]
    };
    for i in 0..flat.len() {
        if flat[i] == 0 && seen[i] == 0 && on_border(i) {
            flood(d, i, false, &mut seen, 1, &|n| flat[n] == 0);
        }
    }
    for (v, s) in flat.iter_mut().zip(&seen) {
        if *v == 0 && *s == 0 {
            *v = 1;
        }
    }
    *mask = standard;
}

/// The foreground's bounding box per axis, `[start, end)`; `None` for an empty mask.
pub fn bounding_box(mask: &ArrayD<u8>) -> Option<Vec<(usize, usize)>> {
    let mut lo = vec![usize::MAX; mask.ndim()];
    let mut hi = vec![0; mask.ndim()];
    for (index, &v) in mask.indexed_iter() {
        if v != 0 {
            for axis in 0..mask.ndim() {
                lo[axis] = lo[axis].min(index[axis]);
                hi[axis] = hi[axis].max(index[axis] + 1);
            }
        }
    }
    (lo[0] != usize::MAX).then(|| lo.into_iter().zip(hi).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn keeps_the_largest_diagonally_connected_component() {
        let mut m = ArrayD::<u8>::zeros(IxDyn(&[6, 6, 6]));
        // a diagonal chain of 3 voxels (26-connected) and a separate pair
        for i in 0..3 {
            m[[i, i, i]] = 1;
        }
        m[[5, 0, 0]] = 1;
        m[[5, 1, 0]] = 1;
        assert_eq!(keep_largest_connected_component(&mut m), 2);
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 3);
        assert_eq!(m[[5, 0, 0]], 0);
        assert_eq!(bounding_box(&m), Some(vec![(0, 3), (0, 3), (0, 3)]));
    }

    #[test]
    fn fills_an_enclosed_hole_but_not_an_open_one() {
        let mut m = ArrayD::<u8>::zeros(IxDyn(&[5, 5, 5]));
        for (i, v) in m.indexed_iter_mut() {
            let shell =
                (1..=3).contains(&i[0]) && (1..=3).contains(&i[1]) && (1..=3).contains(&i[2]);
            *v = u8::from(shell);
        }
        m[[2, 2, 2]] = 0; // enclosed
        fill_holes(&mut m);
        assert_eq!(m[[2, 2, 2]], 1);
        assert_eq!(m[[0, 0, 0]], 0);
        assert_eq!(bounding_box(&ArrayD::<u8>::zeros(IxDyn(&[2, 2, 2]))), None);
    }
}
