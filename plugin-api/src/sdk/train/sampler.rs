//! The random part of training, on the host: MONAI's `RandCropByPosNegLabeld` (patch
//! centres on labelled or background voxels in the `pos:neg` ratio, images smaller than a
//! patch padded first), `RandFlipd` per axis, `RandRotate90d`, `RandScaleIntensityd` and
//! `RandShiftIntensityd`, assembled into `[B, 1, D, H, W]` batches.

use super::dataset::Case;

/// A small seeded generator (SplitMix64): reproducible runs without a dependency.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Patch sampling and augmentation settings (MONAI's transform arguments; the defaults
/// are MONAI Label's radiology app's: flips and rotations at 0.1, intensity at 0.5).
#[derive(Debug, Clone, PartialEq)]
pub struct Augmentation {
    /// Patch size `[D, H, W]` (`RandCropByPosNegLabeld.spatial_size`).
    pub patch: [usize; 3],
    /// Patches drawn from each training case per epoch (`num_samples`).
    pub num_samples: usize,
    /// Weight of centres on labelled voxels.
    pub pos: f64,
    /// Weight of centres on background voxels.
    pub neg: f64,
    /// Probability of flipping each axis.
    pub flip_prob: f64,
    /// Probability of a 90° rotation (k = 1..3) in the plane of `rot90_axes`.
    pub rot90_prob: f64,
    /// The plane of the rotation (two of 0, 1, 2; its two patch sides must be equal).
    pub rot90_axes: [usize; 2],
    /// Probability and ±factor of `x * (1 + f)`.
    pub scale_prob: f64,
    /// The largest |f| of the intensity scale.
    pub scale_factor: f32,
    /// Probability of `x + o`.
    pub shift_prob: f64,
    /// The largest |o| of the intensity shift.
    pub shift_offset: f32,
}

impl Default for Augmentation {
    fn default() -> Self {
        Augmentation {
            patch: [64, 64, 64],
            num_samples: 4,
            pos: 1.0,
            neg: 1.0,
            flip_prob: 0.1,
            rot90_prob: 0.1,
            rot90_axes: [0, 1],
            scale_prob: 0.5,
            scale_factor: 0.1,
            shift_prob: 0.5,
            shift_offset: 0.1,
        }
    }
}

/// One training batch on the host.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) shape: [i64; 5],
    pub(crate) image: Vec<f32>,
    pub(crate) label: Vec<u8>,
}

/// A voxel's `[z, y, x]` from its row-major index.
pub(super) fn index(shape: [usize; 3], i: usize) -> [usize; 3] {
    [
        i / (shape[1] * shape[2]),
        i / shape[2] % shape[1],
        i % shape[2],
    ]
}

/// Where a patch of size `p` centred near `centre` starts on an axis of size `n` (may be
/// negative or run past the end when the image is smaller: those voxels are padding).
fn start(centre: usize, p: usize, n: usize) -> isize {
    if n <= p {
        return -(((p - n) / 2) as isize);
    }
    (centre as isize - (p / 2) as isize).clamp(0, (n - p) as isize)
}

impl Augmentation {
    /// Draws one augmented patch from `case` into `image`/`label` (each `patch` voxels).
    pub(crate) fn draw(&self, case: &Case, rng: &mut Rng, image: &mut [f32], label: &mut [u8]) {
        let s = case.shape;
        let total = self.pos + self.neg;
        let want_fg = total > 0.0 && rng.unit() * total < self.pos;
        let centre = if want_fg && !case.foreground.is_empty() {
            case.foreground[rng.below(case.foreground.len())] as usize
        } else {
            // Background: rejection sampling, falling back to any voxel.
            let n = case.label.len();
            (0..64)
                .map(|_| rng.below(n))
                .find(|&i| case.label[i] == 0)
                .unwrap_or_else(|| rng.below(n))
        };
        let c = index(s, centre);
        let p = self.patch;
        let origin = [0, 1, 2].map(|a| start(c[a], p[a], s[a]));
        // The flips and the rotation map each output voxel to a source voxel of the crop.
        let flip = [0, 1, 2].map(|_| rng.unit() < self.flip_prob);
        let [ra, rb] = self.rot90_axes;
        let k = if rng.unit() < self.rot90_prob && p[ra] == p[rb] {
            1 + rng.below(3)
        } else {
            0
        };
        let mut q = [0usize; 3];
        for z in 0..p[0] {
            for y in 0..p[1] {
                for x in 0..p[2] {
                    let mut o = [z, y, x];
                    for _ in 0..k {
                        // One quarter turn in the (ra, rb) plane.
                        let (a, b) = (o[ra], o[rb]);
                        o[ra] = b;
                        o[rb] = p[ra] - 1 - a;
                    }
                    for a in 0..3 {
                        q[a] = if flip[a] { p[a] - 1 - o[a] } else { o[a] };
                    }
                    let src = [0, 1, 2].map(|a| origin[a] + q[a] as isize);
                    let inside = (0..3).all(|a| src[a] >= 0 && (src[a] as usize) < s[a]);
                    let out = (z * p[1] + y) * p[2] + x;
                    if inside {
                        let i = (src[0] as usize * s[1] + src[1] as usize) * s[2] + src[2] as usize;
                        image[out] = case.image[i];
                        label[out] = case.label[i];
                    } else {
                        image[out] = case.fill;
                        label[out] = 0;
                    }
                }
            }
        }
        if rng.unit() < self.scale_prob {
            let f = 1.0 + (rng.unit() as f32 * 2.0 - 1.0) * self.scale_factor;
            image.iter_mut().for_each(|v| *v *= f);
        }
        if rng.unit() < self.shift_prob {
            let o = (rng.unit() as f32 * 2.0 - 1.0) * self.shift_offset;
            image.iter_mut().for_each(|v| *v += o);
        }
    }

    /// A batch of patches, one from each case given.
    pub(crate) fn batch(&self, cases: &[&Case], rng: &mut Rng) -> Batch {
        let n: usize = self.patch.iter().product();
        let mut image = vec![0f32; n * cases.len()];
        let mut label = vec![0u8; n * cases.len()];
        for (i, case) in cases.iter().enumerate() {
            let r = i * n..(i + 1) * n;
            self.draw(case, rng, &mut image[r.clone()], &mut label[r]);
        }
        let p = self.patch.map(|v| v as i64);
        Batch {
            shape: [cases.len() as i64, 1, p[0], p[1], p[2]],
            image,
            label,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> Case {
        // 4x6x8 with one labelled voxel at (1, 2, 3); image value = its flat index.
        let shape = [4, 6, 8];
        let n = 4 * 6 * 8;
        let mut label = vec![0u8; n];
        let fg = (6 + 2) * 8 + 3;
        label[fg] = 1;
        Case {
            id: "c".into(),
            shape,
            image: (0..n).map(|i| i as f32).collect(),
            label,
            foreground: vec![fg as u32],
            fill: 0.0,
        }
    }

    #[test]
    fn positive_patches_hold_the_label_and_padding_fills_small_images() {
        let aug = Augmentation {
            patch: [2, 2, 2],
            num_samples: 1,
            pos: 1.0,
            neg: 0.0,
            flip_prob: 0.0,
            rot90_prob: 0.0,
            scale_prob: 0.0,
            shift_prob: 0.0,
            ..Augmentation::default()
        };
        let c = case();
        let mut rng = Rng::new(3);
        for _ in 0..20 {
            let b = aug.batch(&[&c], &mut rng);
            assert_eq!(b.shape, [1, 1, 2, 2, 2]);
            assert_eq!(
                b.label.iter().filter(|&&v| v == 1).count(),
                1,
                "the centre voxel is in"
            );
        }
        let big = Augmentation {
            patch: [8, 8, 8],
            ..aug.clone()
        };
        let b = big.batch(&[&c], &mut rng);
        // Axis 0 (4) and 1 (6) are padded; every source voxel appears exactly once.
        assert_eq!(b.label.iter().filter(|&&v| v == 1).count(), 1);
        let real: Vec<f32> = b.image.iter().copied().filter(|v| *v > 0.0).collect();
        assert_eq!(real.len(), 4 * 6 * 8 - 1);
    }

    #[test]
    fn flips_and_rotations_move_voxels_without_losing_any() {
        let aug = Augmentation {
            patch: [4, 6, 6],
            flip_prob: 1.0,
            rot90_prob: 1.0,
            rot90_axes: [1, 2],
            scale_prob: 0.0,
            shift_prob: 0.0,
            ..Augmentation::default()
        };
        let mut c = case();
        c.shape = [4, 6, 6];
        c.image.truncate(4 * 6 * 6);
        c.label = vec![0; 4 * 6 * 6];
        c.foreground.clear();
        let b = aug.batch(&[&c], &mut Rng::new(9));
        let mut got = b.image.clone();
        got.sort_by(f32::total_cmp);
        assert_eq!(got, c.image, "a permutation of the volume");
        assert_ne!(b.image, c.image, "and not the identity");
    }
}
