//! Connected components of 3-D masks: MONAI's `KeepLargestConnectedComponent` (26-connected
//! foreground), `FillHoles` (background not 6-connected to the border becomes foreground)
//! and `BoundingBox`.

use ndarray::ArrayD;

fn dims(mask: &ArrayD<u8>) -> Option<[usize; 3]> {
    <[usize; 3]>::try_from(mask.shape()).ok()
}

/// Runs the closure on the mask's voxels in C order, in place when they already are.
fn with_flat<R>(mask: &mut ArrayD<u8>, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
    if let Some(flat) = mask.as_slice_mut() {
        return Some(f(flat));
    }
    let mut standard = mask.as_standard_layout().into_owned();
    let out = f(standard.as_slice_mut()?);
    *mask = standard;
    Some(out)
}

/// Maximal stretches of voxels on one side of zero along the last axis: runs of row `r`
/// (`r = x * d[1] + y`) are `runs[starts[r]..starts[r + 1]]`, each `[z0, z1)`.
struct Runs {
    runs: Vec<(usize, usize)>,
    starts: Vec<usize>,
}

/// The first index from `z` whose voxel is foreground (`nonzero`) or background, or the
/// row's length; eight voxels at a time where a word holds none of them.
fn next(row: &[u8], mut z: usize, nonzero: bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    while z + 8 <= row.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&row[z..z + 8]);
        let w = u64::from_le_bytes(word);
        // A nonzero byte: w != 0. A zero byte: the classic has-zero-byte test.
        let any = if nonzero {
            w != 0
        } else {
            w.wrapping_sub(ONES) & !w & (ONES << 7) != 0
        };
        if any {
            break;
        }
        z += 8;
    }
    row[z.min(row.len())..]
        .iter()
        .position(|&v| (v != 0) == nonzero)
        .map_or(row.len(), |i| z + i)
}

impl Runs {
    fn new(flat: &[u8], d: [usize; 3], foreground: bool) -> Self {
        let mut runs = Vec::new();
        let mut starts = Vec::with_capacity(d[0] * d[1] + 1);
        for row in flat.chunks_exact(d[2]) {
            starts.push(runs.len());
            let mut z = next(row, 0, foreground);
            while z < d[2] {
                let end = next(row, z, !foreground);
                runs.push((z, end));
                z = next(row, end, foreground);
            }
        }
        starts.push(runs.len());
        Runs { runs, starts }
    }

    fn row(&self, r: usize) -> std::ops::Range<usize> {
        self.starts[r]..self.starts[r + 1]
    }

    /// Union-find over the runs: runs touching across rows (26-connected when `full`,
    /// else 6) share a root, the component's first run in C order.
    fn components(&self, d: [usize; 3], full: bool) -> Vec<usize> {
        let mut parent: Vec<usize> = (0..self.runs.len()).collect();
        let find = |parent: &mut Vec<usize>, mut i: usize| {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        };
        // With `full`, runs that only touch at a corner along z count (z1 == other z0).
        let slack = usize::from(full);
        for x in 0..d[0] {
            for y in 0..d[1] {
                let here = self.row(x * d[1] + y);
                if here.is_empty() {
                    continue;
                }
                let (mut earlier, mut n) = ([0usize; 4], 0);
                let mut add = |row: usize| {
                    earlier[n] = row;
                    n += 1;
                };
                if y > 0 {
                    add(x * d[1] + y - 1);
                }
                if x > 0 {
                    add((x - 1) * d[1] + y);
                    if full && y > 0 {
                        add((x - 1) * d[1] + y - 1);
                    }
                    if full && y + 1 < d[1] {
                        add((x - 1) * d[1] + y + 1);
                    }
                }
                for &other in &earlier[..n] {
                    let (mut i, mut j) = (here.start, self.starts[other]);
                    let j_end = self.starts[other + 1];
                    while i < here.end && j < j_end {
                        let (a, b) = (self.runs[i], self.runs[j]);
                        if a.0 < b.1 + slack && b.0 < a.1 + slack {
                            let (ra, rb) = (find(&mut parent, i), find(&mut parent, j));
                            let (lo, hi) = (ra.min(rb), ra.max(rb));
                            parent[hi] = lo;
                        }
                        if a.1 < b.1 {
                            i += 1;
                        } else {
                            j += 1;
                        }
                    }
                }
            }
        }
        (0..parent.len()).map(|i| find(&mut parent, i)).collect()
    }
}

/// Keeps only the largest 26-connected foreground component of a 3-D mask (in place; the
/// first in C order among equals). Returns the number of components found. Labels runs
/// along the last axis with a union-find instead of visiting voxels one by one.
pub fn keep_largest_connected_component(mask: &mut ArrayD<u8>) -> usize {
    keep_largest_and_seeded(mask, &[])
}

/// [`keep_largest_connected_component`], also keeping every component that holds one of
/// `seeds` (voxel indices; those outside the mask or on background are ignored): the brain
/// plus whatever an annotator clicked as foreground.
pub fn keep_largest_and_seeded(mask: &mut ArrayD<u8>, seeds: &[[usize; 3]]) -> usize {
    let Some(d) = dims(mask) else { return 0 };
    if d.contains(&0) {
        return 0;
    }
    with_flat(mask, |flat| {
        let runs = Runs::new(flat, d, true);
        let roots = runs.components(d, true);
        let mut size = vec![0usize; roots.len()];
        for (i, &r) in roots.iter().enumerate() {
            size[r] += runs.runs[i].1 - runs.runs[i].0;
        }
        let count = roots.iter().enumerate().filter(|(i, r)| i == *r).count();
        // max_by_key keeps the last maximum; scanning backwards makes it the first root.
        let mut keep: Vec<usize> = (0..size.len())
            .rev()
            .max_by_key(|&r| size[r])
            .into_iter()
            .collect();
        for s in seeds.iter().filter(|s| (0..3).all(|a| s[a] < d[a])) {
            let seeded = runs
                .row(s[0] * d[1] + s[1])
                .find(|&i| runs.runs[i].0 <= s[2] && s[2] < runs.runs[i].1);
            keep.extend(seeded.map(|i| roots[i]));
        }
        flat.fill(0);
        for row in 0..d[0] * d[1] {
            for i in runs.row(row) {
                if keep.contains(&roots[i]) {
                    let (z0, z1) = runs.runs[i];
                    flat[row * d[2] + z0..row * d[2] + z1].fill(1);
                }
            }
        }
        count
    })
    .unwrap_or(0)
}

/// Fills holes: background voxels that no 6-connected path links to the volume's border
/// become foreground (in place), by runs of background like
/// [`keep_largest_connected_component`].
pub fn fill_holes(mask: &mut ArrayD<u8>) {
    let Some(d) = dims(mask) else { return };
    if d.contains(&0) {
        return;
    }
    with_flat(mask, |flat| {
        let runs = Runs::new(flat, d, false);
        let roots = runs.components(d, false);
        let mut open = vec![false; roots.len()];
        for row in 0..d[0] * d[1] {
            let (x, y) = (row / d[1], row % d[1]);
            let edge_row = x == 0 || y == 0 || x + 1 == d[0] || y + 1 == d[1];
            for i in runs.row(row) {
                let (z0, z1) = runs.runs[i];
                if edge_row || z0 == 0 || z1 == d[2] {
                    open[roots[i]] = true;
                }
            }
        }
        for row in 0..d[0] * d[1] {
            for i in runs.row(row) {
                if !open[roots[i]] {
                    let (z0, z1) = runs.runs[i];
                    flat[row * d[2] + z0..row * d[2] + z1].fill(1);
                }
            }
        }
    });
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
    use ndarray::{IxDyn, ShapeBuilder};
    use std::collections::VecDeque;

    /// The voxel-by-voxel reference: breadth-first flood fill from every unseen voxel.
    fn reference_labels(m: &ArrayD<u8>, full: bool, take: impl Fn(u8) -> bool) -> Vec<u32> {
        let d = dims(m).expect("a 3-D mask");
        let flat: Vec<u8> = m.iter().copied().collect();
        let mut seen = vec![0u32; flat.len()];
        let mut label = 0;
        for seed in 0..flat.len() {
            if !take(flat[seed]) || seen[seed] != 0 {
                continue;
            }
            label += 1;
            seen[seed] = label;
            let mut queue = VecDeque::from([seed]);
            while let Some(at) = queue.pop_front() {
                let p = [at / (d[1] * d[2]), (at / d[2]) % d[1], at % d[2]];
                for dx in -1i64..=1 {
                    for dy in -1i64..=1 {
                        for dz in -1i64..=1 {
                            let steps = dx.abs() + dy.abs() + dz.abs();
                            if steps == 0 || (!full && steps > 1) {
                                continue;
                            }
                            let q = [p[0] as i64 + dx, p[1] as i64 + dy, p[2] as i64 + dz];
                            if (0..3).any(|a| q[a] < 0 || q[a] >= d[a] as i64) {
                                continue;
                            }
                            let n = (q[0] as usize * d[1] + q[1] as usize) * d[2] + q[2] as usize;
                            if take(flat[n]) && seen[n] == 0 {
                                seen[n] = label;
                                queue.push_back(n);
                            }
                        }
                    }
                }
            }
        }
        seen
    }

    #[test]
    fn run_labelling_matches_a_voxel_flood_fill_on_random_masks() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        // Short rows and long ones (runs longer than the eight-voxel words), sparse to dense.
        for case in 0..90 {
            let d = [1 + case % 7, 2 + case % 5, 3 + (case * 7) % 41];
            let density = [3, 20, 45, 60, 75, 97][case % 6];
            let mut m = ArrayD::<u8>::zeros(IxDyn(&d));
            for v in m.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *v = u8::from(state % 100 < density) * (1 + (state % 3) as u8);
            }
            // Largest 26-connected component: the first in C order among equals.
            let labels = reference_labels(&m, true, |v| v != 0);
            let mut sizes = vec![0usize; labels.iter().max().map_or(0, |&l| l as usize + 1)];
            labels.iter().for_each(|&l| sizes[l as usize] += 1);
            let best = (1..sizes.len()).rev().max_by_key(|&l| sizes[l]);
            let mut lcc = m.clone();
            assert_eq!(
                keep_largest_connected_component(&mut lcc),
                sizes.len().saturating_sub(1)
            );
            let expected: Vec<u8> = labels
                .iter()
                .map(|&l| u8::from(Some(l as usize) == best))
                .collect();
            assert_eq!(
                lcc.iter().copied().collect::<Vec<_>>(),
                expected,
                "lcc, case {case}"
            );
            // Holes: background components (6-connected) that touch no border face.
            let labels = reference_labels(&m, false, |v| v == 0);
            let mut open = vec![false; labels.len() + 1];
            for (i, &l) in labels.iter().enumerate() {
                let p = [i / (d[1] * d[2]), (i / d[2]) % d[1], i % d[2]];
                if (0..3).any(|a| p[a] == 0 || p[a] + 1 == d[a]) {
                    open[l as usize] = true;
                }
            }
            let mut filled = m.clone();
            fill_holes(&mut filled);
            let expected: Vec<u8> = m
                .iter()
                .zip(&labels)
                .map(|(&v, &l)| if v == 0 && !open[l as usize] { 1 } else { v })
                .collect();
            assert_eq!(
                filled.iter().copied().collect::<Vec<_>>(),
                expected,
                "holes, case {case}"
            );
        }
    }

    #[test]
    fn works_on_fortran_ordered_masks_too() {
        let mut m = ArrayD::<u8>::zeros(IxDyn(&[4, 5, 6]).f());
        m[[0, 0, 0]] = 1;
        m[[2, 2, 2]] = 1;
        m[[2, 2, 3]] = 1;
        assert_eq!(keep_largest_connected_component(&mut m), 2);
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 2);
        assert_eq!((m[[2, 2, 2]], m[[0, 0, 0]]), (1, 0));
    }

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
    fn keeps_seeded_components_besides_the_largest() {
        let mut m = ArrayD::<u8>::zeros(IxDyn(&[6, 6, 6]));
        for i in 0..3 {
            m[[i, i, i]] = 1;
        }
        m[[5, 0, 0]] = 1;
        m[[5, 1, 0]] = 1;
        m[[5, 5, 5]] = 1;
        // Seeds: in the pair, on background, outside the mask.
        let seeds = [[5, 1, 0], [4, 4, 4], [9, 0, 0]];
        assert_eq!(keep_largest_and_seeded(&mut m, &seeds), 3);
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 5);
        assert_eq!((m[[5, 0, 0]], m[[5, 5, 5]]), (1, 0));
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
