//! Clicks as a network sees them (MONAI's deepgrow/deepedit transforms): a guidance map per
//! label from its clicks (`AddGuidanceSignald`: a unit impulse per click, Gaussian-smoothed,
//! scaled to [0, 1]), the distance of each voxel of a region to its outside
//! (`distance_transform_cdt`, chessboard), and where a simulated annotator clicks into an
//! error region (`AddRandomGuidanced`: a voxel drawn with weight `exp(distance) - 1`, so deep
//! inside the region; or the deepest voxel, for a deterministic annotator).

/// One click per point, smoothed by a Gaussian of `sigma` voxels, the sum scaled so its
/// largest value is 1; all zeros without points. Points are in voxel coordinates of a
/// `shape` grid (fractional after resampling) and may lie outside it (they then count
/// through their tails only).
pub fn guidance_map(shape: [usize; 3], points: &[[f64; 3]], sigma: f64) -> Vec<f32> {
    let n = shape.iter().product();
    let mut out = vec![0f32; n];
    if points.is_empty() || sigma <= 0.0 {
        return out;
    }
    let reach = (3.0 * sigma).ceil() as isize;
    let two_s2 = 2.0 * sigma * sigma;
    for p in points {
        // The separable weights of this click on each axis, within 3 sigma.
        let axis = |a: usize| -> Vec<(usize, f64)> {
            let c = p[a].round() as isize;
            (c - reach..=c + reach)
                .filter(|&i| i >= 0 && (i as usize) < shape[a])
                .map(|i| (i as usize, (-(i as f64 - p[a]).powi(2) / two_s2).exp()))
                .collect()
        };
        let (z, y, x) = (axis(0), axis(1), axis(2));
        for &(zi, wz) in &z {
            for &(yi, wy) in &y {
                let row = (zi * shape[1] + yi) * shape[2];
                for &(xi, wx) in &x {
                    out[row + xi] += (wz * wy * wx) as f32;
                }
            }
        }
    }
    let max = out.iter().copied().fold(0f32, f32::max);
    if max > 0.0 {
        out.iter_mut().for_each(|v| *v /= max);
    }
    out
}

/// For each voxel of `region` (row-major on `shape`), its chessboard distance to the nearest
/// voxel outside it (1 on the region's border; the grid's edge counts as outside); 0 outside.
pub fn distance_inside(region: &[bool], shape: [usize; 3]) -> Vec<u32> {
    let [d, h, w] = shape;
    let big = u32::MAX / 2;
    let mut dist: Vec<u32> = region.iter().map(|&r| if r { big } else { 0 }).collect();
    let at = |z: isize, y: isize, x: isize| -> Option<usize> {
        let inside =
            z >= 0 && y >= 0 && x >= 0 && (z as usize) < d && (y as usize) < h && (x as usize) < w;
        inside.then(|| (z as usize * h + y as usize) * w + x as usize)
    };
    // Two chamfer passes over the 26-neighbourhood: forward with the neighbours already
    // visited, backward with the others.
    let half: Vec<(isize, isize, isize)> = (-1..=1)
        .flat_map(|a| (-1..=1).flat_map(move |b| (-1..=1).map(move |c| (a, b, c))))
        .filter(|&(a, b, c)| (a, b, c) < (0, 0, 0))
        .collect();
    let relax = |dist: &mut Vec<u32>, z: usize, y: usize, x: usize, sign: isize| {
        let i = (z * h + y) * w + x;
        if dist[i] == 0 {
            return;
        }
        for &(a, b, c) in &half {
            let (a, b, c) = (a * sign, b * sign, c * sign);
            let n = at(z as isize + a, y as isize + b, x as isize + c);
            let v = n.map_or(0, |n| dist[n]);
            dist[i] = dist[i].min(v + 1);
        }
    };
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                relax(&mut dist, z, y, x, 1);
            }
        }
    }
    for z in (0..d).rev() {
        for y in (0..h).rev() {
            for x in (0..w).rev() {
                relax(&mut dist, z, y, x, -1);
            }
        }
    }
    dist
}

/// Where to click into `region`: the voxel index drawn with weight `exp(distance) - 1`
/// (MONAI's `AddRandomGuidanced`) when `uniform` (a number in [0, 1)) is given, else the
/// first voxel of greatest distance. `None` when the region is empty.
pub fn click_in(region: &[bool], shape: [usize; 3], uniform: Option<f64>) -> Option<usize> {
    let dist = distance_inside(region, shape);
    let max = *dist.iter().max()?;
    if max == 0 {
        return None;
    }
    let Some(u) = uniform else {
        return dist.iter().position(|&v| v == max);
    };
    // Weights relative to the deepest voxel (exp(d - max)) so nothing overflows.
    let weight = |v: u32| {
        if v == 0 {
            0.0
        } else {
            (f64::from(v) - f64::from(max)).exp() - (-f64::from(max)).exp()
        }
    };
    let total: f64 = dist.iter().map(|&v| weight(v)).sum();
    let mut target = u * total;
    for (i, &v) in dist.iter().enumerate() {
        target -= weight(v);
        if target < 0.0 && v > 0 {
            return Some(i);
        }
    }
    dist.iter().rposition(|&v| v == max)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_guidance_map_peaks_at_one_on_the_click_and_falls_off_as_a_gaussian() {
        let g = guidance_map([9, 9, 9], &[[4.0, 4.0, 4.0]], 2.0);
        let at = |z: usize, y: usize, x: usize| g[(z * 9 + y) * 9 + x];
        assert_eq!(at(4, 4, 4), 1.0);
        assert!((at(4, 4, 6) - (-1.0f32 / 2.0).exp()).abs() < 1e-6);
        assert!((at(6, 4, 4) - at(4, 2, 4)).abs() < 1e-6);
        let narrow = guidance_map([9, 9, 9], &[[4.0, 4.0, 4.0]], 1.0);
        assert_eq!(narrow[0], 0.0, "beyond 3 sigma");
        assert!(guidance_map([4, 4, 4], &[], 2.0).iter().all(|&v| v == 0.0));
        // Two clicks: scaled by the larger sum, both peaks near 1.
        let g = guidance_map([1, 1, 20], &[[0.0, 0.0, 2.0], [0.0, 0.0, 17.0]], 1.0);
        assert_eq!(g.iter().copied().fold(0f32, f32::max), 1.0);
        assert!(g[2] > 0.99 && g[17] > 0.99 && g[9] < 0.01);
    }

    #[test]
    fn distances_count_chessboard_steps_to_the_outside() {
        // A 5x5x5 block inside a 7x7x7 grid: the centre is 3 steps from the outside.
        let shape = [7, 7, 7];
        let region: Vec<bool> = (0..343)
            .map(|i| {
                let (z, y, x) = (i / 49, i / 7 % 7, i % 7);
                [z, y, x].iter().all(|&c| (1..=5).contains(&c))
            })
            .collect();
        let d = distance_inside(&region, shape);
        assert_eq!(d[(3 * 7 + 3) * 7 + 3], 3);
        assert_eq!(d[(7 + 3) * 7 + 3], 1);
        assert_eq!(d[(2 * 7 + 2) * 7 + 4], 2);
        assert_eq!(d[0], 0);
        // The deepest voxel is the deterministic click; random clicks stay inside.
        assert_eq!(click_in(&region, shape, None), Some((3 * 7 + 3) * 7 + 3));
        for u in [0.0, 0.3, 0.999] {
            let i = click_in(&region, shape, Some(u)).unwrap();
            assert!(region[i]);
        }
        assert_eq!(click_in(&[false; 8], [2, 2, 2], Some(0.5)), None);
    }

    #[test]
    fn random_clicks_favour_the_deep_inside() {
        let shape = [9, 9, 9];
        let region = vec![true; 729];
        let d = distance_inside(&region, shape);
        let deep = (0..200)
            .filter(|&k| {
                let i = click_in(&region, shape, Some(f64::from(k) / 200.0)).unwrap();
                d[i] >= 4
            })
            .count();
        // 27 of 729 voxels (4 %) are at depth >= 4; they hold a quarter of the weight.
        assert!(deep > 30, "{deep} of 200 clicks deep inside");
    }
}
